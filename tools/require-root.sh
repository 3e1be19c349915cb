# Sourced by the scripts that need root (they install packages, load BPF
# programs, create cgroups): stops with a clear message otherwise.
# A fresh Debian used as root has no sudo; from a user account, run the
# script through `su -c` (root's password), or sudo where it is installed.
if [ "$(id -u)" -ne 0 ]; then
  cmd="$0${*:+ $*}"
  echo "$(basename "$0"): must run as root; you are $(id -un)." >&2
  echo "  from a user account: su -c '$cmd'   (or: sudo $cmd, where sudo is installed)" >&2
  exit 1
fi
