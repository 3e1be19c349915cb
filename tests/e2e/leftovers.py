"""What end-to-end tests leave on the host, found by name, and removed.

Everything a test makes on the host is named so that this script can find it:
cgroups, bpffs pin directories and network namespaces `egressd-test-*`, veth
host ends `egh` + 8 hex digits, bind mounts under pytest's temporary
directories (the daemon's netns references), daemons whose command line names
a test bpffs.

  leftovers.py sweep   removes what a killed earlier run left (before a run)
  leftovers.py check   lists what is left, removes it, and exits 1 if there
                       was anything (after a run: a test that leaks fails CI)
"""
import os
import re
import signal
import subprocess
import sys
import time

PREFIX = "egressd-test-"
BPFFS = "/sys/fs/bpf"
VETH = re.compile(r"^egh[0-9a-f]{8}$")


def cgroup2_mount():
    with open("/proc/self/mounts") as f:
        for line in f:
            dev, path, fstype = line.split()[:3]
            if fstype == "cgroup2":
                return path
    return None


def test_cgroups():
    """Test-named cgroups, deepest first (children before parents)."""
    root = cgroup2_mount()
    found = []
    if not root:
        return found
    for top in os.listdir(root):
        path = os.path.join(root, top)
        if top.startswith(PREFIX) and os.path.isdir(path):
            for dirpath, dirnames, _ in os.walk(path):
                found.append(dirpath)
    # Sandboxes one level further down (a test's cgroup root under a slice).
    return sorted(found, key=lambda p: p.count("/"), reverse=True)


def test_pins():
    if not os.path.isdir(BPFFS):
        return []
    return [os.path.join(BPFFS, n) for n in os.listdir(BPFFS) if n.startswith(PREFIX)]


def test_netns():
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10)
    return [line.split()[0] for line in r.stdout.splitlines() if line.startswith(PREFIX)]


def test_veths():
    r = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, timeout=10)
    names = []
    for line in r.stdout.splitlines():
        parts = line.split(":")
        if len(parts) > 1:
            name = parts[1].strip().split("@")[0]
            if VETH.match(name):
                names.append(name)
    return names


def test_mounts():
    """Bind mounts a test daemon made under pytest's temporary directories."""
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if "/pytest-of-" in point or f"/{PREFIX}" in point and not point.startswith("/run/netns/"):
                points.append(point)
    return sorted(points, key=len, reverse=True)


def test_processes():
    """Daemons (and anything else) whose command line names a test bpffs or cgroup."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if f"{BPFFS}/{PREFIX}" in cmdline and "leftovers.py" not in cmdline:
            pids.append(int(name))
    return pids


def inventory():
    return {
        "processes": test_processes(),
        "cgroups": test_cgroups(),
        "bpffs pins": test_pins(),
        "network namespaces": test_netns(),
        "veths": test_veths(),
        "mounts": test_mounts(),
    }


def kill_cgroup(path, timeout=5):
    try:
        with open(os.path.join(path, "cgroup.kill"), "w") as f:
            f.write("1")
    except OSError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(os.path.join(path, "cgroup.events")) as f:
                if "populated 0" in f.read():
                    return
        except OSError:
            return
        time.sleep(0.05)  # cgroup.kill is asynchronous; cgroup.events is the signal


def remove(found):
    """Removes everything in `found`; each step on its own, so one failure skips nothing."""
    errors = []

    def step(what, fn):
        try:
            fn()
        except Exception as e:  # keep going: the next item may still be removable
            errors.append(f"{what}: {e}")

    for pid in found["processes"]:
        step(f"kill {pid}", lambda pid=pid: os.kill(pid, signal.SIGKILL))
    for path in found["cgroups"]:
        step(f"kill {path}", lambda path=path: kill_cgroup(path))
    for point in found["mounts"]:
        step(f"umount {point}", lambda point=point: subprocess.run(
            ["umount", "-l", point], capture_output=True, timeout=10))
    for path in found["bpffs pins"]:
        step(f"rm {path}", lambda path=path: subprocess.run(["rm", "-rf", path], check=True, timeout=30))
    for name in found["network namespaces"]:
        def delete_netns(name=name):
            pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True,
                                  timeout=10).stdout.split()
            for pid in pids:
                os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", name], check=True, capture_output=True, timeout=10)
        step(f"netns {name}", delete_netns)
    for name in found["veths"]:
        step(f"veth {name}", lambda name=name: subprocess.run(
            ["ip", "link", "del", name], capture_output=True, timeout=10))
    for path in found["cgroups"]:  # deepest first
        step(f"rmdir {path}", lambda path=path: os.rmdir(path) if os.path.isdir(path) else None)
    return errors


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in ("sweep", "check"):
        print(__doc__, file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("leftovers.py: not root, nothing to look at")
        return 0
    found = inventory()
    left = {k: v for k, v in found.items() if v}
    for kind, items in left.items():
        print(f"{kind}: {' '.join(str(i) for i in items)}")
    errors = remove(found)
    for e in errors:
        print(f"could not remove {e}", file=sys.stderr)
    still = {k: v for k, v in inventory().items() if v}
    if still:
        print(f"still left after removal: {still}", file=sys.stderr)
    if sys.argv[1] == "check" and left:
        print("FAIL: the end-to-end tests left the above behind (a test does not clean up)",
              file=sys.stderr)
        return 1
    return 1 if still else 0


if __name__ == "__main__":
    sys.exit(main())
