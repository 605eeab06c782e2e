#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/, clang with -DMINIVMM_FUZZ=ON) in
# build-fuzz and runs each for a bounded time on a scratch copy of its seed
# corpus (nothing is written into the tree), failing on any crash, leak,
# sanitizer report, broken invariant or input slower than 25 s. Called by
# scripts/test.sh for the `fuzz` configuration; usable on its own:
#   MINIVMM_FUZZ_TIME=300 scripts/fuzz.sh          # 5 minutes per target
#   MINIVMM_FUZZ_TARGETS="image control" scripts/fuzz.sh -only_ascii=1
# Extra arguments go to every fuzzer. Crashing inputs are kept in
# build-fuzz/crashes/; each run's log in build-fuzz/logs/<target>.log. The
# control target needs a KVM: where this machine has none it runs in the
# emulated machine of scripts/kvm-vm.sh (far fewer executions there).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${MINIVMM_FUZZ_TIME:-30}
targets=${MINIVMM_FUZZ_TARGETS:-image hypercall block_ring control elf syscalls}
dir=build-fuzz

echo "== fuzz: configure and build in $dir (clang, libFuzzer, ASan+UBSan)"
cmake --preset fuzz >/dev/null # CMakePresets.json: binaryDir build-fuzz
nice -n 10 cmake --build --preset fuzz

scratch=$(mktemp -d "${TMPDIR:-/tmp}/minivmm-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$dir/crashes" "$dir/logs"
passed=0 failed=0 skipped=0
for t in $targets; do
  exe=$dir/bin/fuzz_$t
  [ -x "$exe" ] || { echo "fuzz: no target '$t'" >&2; exit 2; }
  cp -r "tests/fuzz/corpus/$t" "$scratch/$t"
  args=(-max_total_time="$seconds" -timeout=25 -print_final_stats=1
        -artifact_prefix="$dir/crashes/$t-")
  [ -f "tests/fuzz/$t.dict" ] && args+=(-dict="tests/fuzz/$t.dict")
  log=$dir/logs/$t.log
  echo "== fuzz: $t for ${seconds}s"
  # The control target runs VMs: where KVM is emulated, it fuzzes there.
  on=(); [ "$t" != control ] || on=(scripts/kvm-vm.sh --timeout $((seconds + 600)) --rw "$PWD" --rw "$scratch" --)
  set +e
  ASAN_OPTIONS=halt_on_error=1:detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    nice -n 10 "${on[@]}" "$exe" "${args[@]}" "$@" "$scratch/$t" >"$log" 2>&1
  rc=$?
  set -e
  if [ "$rc" -eq 77 ]; then
    grep -m1 SKIPPED "$log" || true
    skipped=$((skipped + 1))
    continue
  fi
  # The last status line ("#N DONE cov: ... ft: ... exec/s: ...") and the totals.
  grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n1 || true
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' \
    "$log" | tr '\n' ' ' && echo
  if [ "$rc" -ne 0 ]; then
    echo "fuzz: $t FAILED (exit $rc); the end of $log:"
    tail -n 60 "$log"
    failed=$((failed + 1))
  else
    passed=$((passed + 1))
  fi
done
if [ "$skipped" -ne 0 ]; then
  echo "fuzz: $passed passed, $failed failed, $skipped skipped"
else
  echo "fuzz: $passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
