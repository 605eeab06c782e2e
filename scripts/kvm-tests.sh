#!/usr/bin/env bash
# Runs the KVM tests (ctest label "kvm") of one build directory where a KVM
# is: on this machine's /dev/kvm, or, where it has none (or with
# MINIVMM_EMULATED_KVM=1), inside the emulated machine of scripts/kvm-vm.sh.
#   scripts/kvm-tests.sh BUILD_DIR [CTEST_ARGS...]
# Prints one line saying which way the tests run.
#
# The emulated machine itself can fail (seen with multi-threaded TCG: a
# stall, a CPU locked up in its kernel, a kernel panic; kvm-vm.sh exits 125
# and says which). That is not a test failure:
# the tests that had not finished run again in a new machine, and the
# output says so. Bounded: a test cut short by two machine failures counts
# as failed (it may be what breaks the machine), and after
# MINIVMM_KVM_VM_RETRIES (default 4) machine failures the run fails.
# Exit status: 0 when every KVM test passed (or was skipped where nothing
# requires it), else non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: scripts/kvm-tests.sh BUILD_DIR [CTEST_ARGS...]" >&2; exit 2; }
dir=$1; shift

way=$(scripts/kvm-vm.sh --which)
if [ "$way" = real ]; then
  kind="hardware KVM"; [ ! -d /sys/module/kvm_pvm ] || kind=kvm_pvm
  echo "== KVM tests: on this machine's /dev/kvm ($kind)"
  exec ctest --test-dir "$dir" -L kvm --output-on-failure --no-tests=error "$@"
fi
echo "== KVM tests: on an emulated KVM in a software virtual machine ${way#emulated }"

# Every KVM test's number, to know which ones a failed machine left unrun.
declare -A pending=() # test number -> 1 until it finished
for n in $(ctest --test-dir "$dir" -N -L kvm "$@" | sed -n 's/^ *Test *#\([0-9]*\):.*/\1/p'); do
  pending[$n]=1
done
total=${#pending[@]}
[ "$total" -gt 0 ] || { echo "kvm-tests: no KVM tests in $dir" >&2; exit 1; }
log=$(mktemp "${TMPDIR:-/tmp}/minivmm-kvm-tests.XXXXXX")
trap 'rm -f "$log"' EXIT
retries=${MINIVMM_KVM_VM_RETRIES:-4}
done_re='^ *[0-9]+/[0-9]+ Test +#([0-9]+):'
passed=0 failed=0 skipped=0 machine_failures=0
declare -A cut=() # test number -> machine failures it was cut short by
while [ ${#pending[@]} -gt 0 ]; do
  # One machine runs them all with -j1: its CPUs are emulated on one host
  # thread. ctest ends a hung test at its TIMEOUT and goes on.
  list=$(printf '%s\n' "${!pending[@]}" | sort -n | paste -sd,)
  set +e
  scripts/kvm-vm.sh --timeout "${MINIVMM_KVM_VM_TIMEOUT:-3600}" -- \
    ctest --test-dir "$dir" --output-on-failure -j1 -I "0,0,0,$list" | tee "$log"
  status=${PIPESTATUS[0]}
  set -e
  # Each finished test keeps its result, whatever came after it.
  while read -r n result; do
    case "$result" in
      Passed) passed=$((passed + 1)) ;;
      Skipped) skipped=$((skipped + 1)) ;;
      *) failed=$((failed + 1)) ;;
    esac
    unset "pending[$n]"
  done < <(grep -E "$done_re" "$log" | sed -E "s|$done_re.*\\.\\.\\. *\\**([A-Za-z]+).*|\\1 \\2|")
  [ "$status" -eq 125 ] || break
  machine_failures=$((machine_failures + 1))
  # The test that was running when the machine failed.
  running=$(sed -n 's/^ *Start \([0-9]*\):.*/\1/p' "$log" | tail -1)
  if [ -n "$running" ] && [ -n "${pending[$running]:-}" ]; then
    cut[$running]=$((${cut[$running]:-0} + 1))
    if [ "${cut[$running]}" -ge 2 ]; then
      echo "kvm-tests: test #$running was running at two machine failures: counted as failed"
      failed=$((failed + 1))
      unset "pending[$running]"
    fi
  fi
  if [ "$machine_failures" -gt "$retries" ]; then
    echo "kvm-tests: the emulated machine failed $machine_failures times; ${#pending[@]} KVM test(s) did not run" >&2
    exit 1
  fi
  [ ${#pending[@]} -gt 0 ] || break
  echo "== KVM tests: the emulated machine failed (the line above says how; failure" \
       "$machine_failures of at most $retries retried); running the ${#pending[@]} unfinished test(s) again in a new machine"
done
[ "$status" -eq 0 ] || [ "$status" -eq 125 ] || [ "$failed" -gt 0 ] || failed=1 # ctest itself failed
echo "== KVM tests on emulated KVM: $total tests, $((passed + failed + skipped)) finished," \
     "$machine_failures machine failure(s) retried"
echo "kvm: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
