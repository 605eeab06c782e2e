#!/usr/bin/env bash
# Sets up, checks formatting, then builds and runs the whole test suite in
# three configurations: default (RelWithDebInfo, plus the API reference and
# the packaging tests), ASan+UBSan, and TSan; then `fuzz`: a bounded run of
# each libFuzzer target (scripts/fuzz.sh, 30 s each).
# MINIVMM_TEST_CONFIGS="default" (or any subset) narrows it for a quick run.
# Set MINIVMM_REQUIRE_KVM=1 to make a skipped KVM test a failure (CI does).
#
# The KVM tests (ctest label "kvm") run on this machine's /dev/kvm, or where
# it has none (or with MINIVMM_EMULATED_KVM=1) inside an emulated machine
# that has a KVM of its own (scripts/kvm-tests.sh, scripts/kvm-vm.sh); the
# first line says which. Emulated, every configuration runs every KVM test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
kvm_way=$(scripts/kvm-vm.sh --which)
echo "== KVM tests run on: $([ "$kvm_way" = real ] && echo "this machine's /dev/kvm" || echo "$kvm_way KVM, in a software virtual machine")"

echo "== clang-format check"
git ls-files '*.cpp' '*.hpp' '*.h' '*.c' | xargs clang-format --dry-run --Werror

configs=${MINIVMM_TEST_CONFIGS:-default asan tsan fuzz}
for config in $configs; do
  [ "$config" != fuzz ] || continue # after the test suites, below
  # The configurations are CMakePresets.json's; the default one also builds
  # the API reference and runs the packaging tests (install + consumer,
  # .deb), once: they do not depend on sanitizers.
  case " default asan tsan " in
    *" $config "*) ;;
    *) echo "unknown configuration '$config' (default, asan, tsan, fuzz)" >&2; exit 2 ;;
  esac
  echo "== $config: configure and build (cmake --preset $config)"
  dir=$(cmake --preset "$config" | sed -n 's/^-- Build files have been written to: //p')
  [ -d "$dir" ] || { echo "cmake --preset $config: no build folder" >&2; exit 1; }
  cmake --build --preset "$config"
  echo "== $config: tests"
  # halt_on_error: any sanitizer report fails the run.
  export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
  export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
  if [ "$kvm_way" = real ]; then
    # One run: the unit tests go on beside the KVM tests (which run one at a
    # time among themselves: RESOURCE_LOCK kvm).
    ctest --test-dir "$dir" --output-on-failure --no-tests=error -j2
  else
    ctest --test-dir "$dir" --output-on-failure --no-tests=error -j2 -LE kvm
    start=$SECONDS
    scripts/kvm-tests.sh "$dir"
    echo "== $config: KVM tests on emulated KVM took $((SECONDS - start)) s"
  fi
done

if [[ " $configs " == *" fuzz "* ]]; then
  scripts/fuzz.sh
fi
echo "== test.sh: every configuration passed ($configs); KVM tests ran on" \
     "$([ "$kvm_way" = real ] && echo "this machine's /dev/kvm" || echo "$kvm_way KVM")"
