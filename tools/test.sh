#!/usr/bin/env bash
# Builds and runs the whole test suite: unit tests, fuzz corpora, and the
# privileged end-to-end tests (root, cgroup v2, BPF; under CI=true they must run).
set -euo pipefail
cd "$(dirname "$0")/.."
./tools/build.sh
# bpffs for the pinned programs and maps (the daemon also mounts it if needed).
if ! mount | grep -q ' /sys/fs/bpf type bpf'; then mount -t bpf bpf /sys/fs/bpf; fi
ctest --test-dir build --output-on-failure "$@"
