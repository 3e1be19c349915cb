#!/usr/bin/env bash
# Builds and runs the whole test suite: unit tests, fuzz corpora, and the
# privileged end-to-end tests (root, cgroup v2, BPF; under CI they must run).
#
#   tools/test.sh              the release build (./build), as users run it
#   tools/test.sh --sanitize   a clang build with AddressSanitizer and
#                              UndefinedBehaviorSanitizer (./build-asan): the
#                              same tests against the instrumented daemon and
#                              egressctl; any report fails the run
#   tools/test.sh --tsan       a clang build with ThreadSanitizer (./build-tsan),
#                              by hand (not in CI: see docs/testing.md)
#
# Other arguments go to ctest (for example -R e2e_test_http).
set -euo pipefail
. "$(dirname "$0")/require-root.sh"
cd "$(dirname "$0")/.."

build_dir=build
if [ "${1:-}" = "--sanitize" ]; then
  shift
  build_dir=build-asan
  cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEGRESSD_SANITIZE=ON \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >/dev/null
  cmake --build "$build_dir" -j"$(nproc)"
  # Abort at the first report, with a stack; leaks are reported at exit.
  export ASAN_OPTIONS="abort_on_error=1:halt_on_error=1:detect_leaks=1:detect_stack_use_after_return=0"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
elif [ "${1:-}" = "--tsan" ]; then
  shift
  build_dir=build-tsan
  cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEGRESSD_TSAN=ON \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >/dev/null
  cmake --build "$build_dir" -j"$(nproc)"
  export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1"
else
  ./tools/build.sh
fi

# bpffs for the pinned programs and maps (the daemon also mounts it if needed).
if ! mount | grep -q ' /sys/fs/bpf type bpf'; then mount -t bpf bpf /sys/fs/bpf; fi
ctest --test-dir "$build_dir" --output-on-failure --no-tests=error "$@"
