#!/usr/bin/env bash
# Runs every libFuzzer target (ASan + UBSan) for SECONDS each, starting from
# its committed corpus (tests/fuzz/corpus/<target>/).
#
#   tools/fuzz.sh            30 s per target (what CI runs)
#   tools/fuzz.sh 3600       an hour per target, by hand
#   tools/fuzz.sh 600 fuzz_http_request   one target
#
# New inputs go to build-fuzz/work/<target>/ (not the committed corpus). A
# crash stops the run with exit 1 and leaves its input in
# build-fuzz/artifacts/<target>/: fix the bug, then copy the input into the
# committed corpus so the replay test (fuzz_corpus_<target>) keeps it fixed.
# Record long runs (CPU-hours, findings) in docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-30}"
shift || true
build_dir=build-fuzz
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEGRESSD_FUZZ=ON \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >/dev/null
# The targets are listed once, in tests/fuzz/CMakeLists.txt.
mapfile -t all < <(sed -n '/^set(EGRESSD_FUZZ_TARGETS/,/^)/p' tests/fuzz/CMakeLists.txt | grep -o 'fuzz_[a-z0-9_]*')
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
cmake --build "$build_dir" -j"$(nproc)" --target "${targets[@]}"

export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
failed=()
for t in "${targets[@]}"; do
  work="$build_dir/work/$t" artifacts="$build_dir/artifacts/$t/"
  mkdir -p "$work" "$artifacts"
  echo "== $t: ${seconds}s from tests/fuzz/corpus/$t"
  if ! "$build_dir/tests/fuzz/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$artifacts" "$work" "tests/fuzz/corpus/$t" \
      >"$build_dir/$t.log" 2>&1; then
    failed+=("$t")
    tail -60 "$build_dir/$t.log"
  else
    grep -E '^stat::number_of_executed_units|^stat::new_units_added' "$build_dir/$t.log" | tr '\n' ' '
    echo
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: crashes in: ${failed[*]} (inputs in $build_dir/artifacts/)" >&2
  exit 1
fi
