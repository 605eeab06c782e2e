#!/usr/bin/env bash
# Sets up, checks formatting, then builds and runs the whole test suite in
# three configurations: default (RelWithDebInfo, plus the API reference and
# the packaging tests), ASan+UBSan, and TSan; then `fuzz`: a bounded run of
# each libFuzzer target (scripts/fuzz.sh, 30 s each).
# MINIVMM_TEST_CONFIGS="default" (or any subset) narrows it for a quick run.
# Set MINIVMM_REQUIRE_KVM=1 to make a missing /dev/kvm a failure (CI does).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

echo "== clang-format check"
git ls-files '*.cpp' '*.hpp' '*.h' '*.c' | xargs clang-format --dry-run --Werror

configs=${MINIVMM_TEST_CONFIGS:-default asan tsan fuzz}
for config in $configs; do
  case "$config" in
    fuzz)    continue ;; # after the test suites, below
    # The default build also builds the API reference and runs the
    # packaging tests (install + consumer, .deb), once: they do not depend on
    # sanitizers. Prefix /usr: the .deb needs Debian's multiarch libdir.
    default) dir=build;      flags=(-DCMAKE_INSTALL_PREFIX=/usr -DMINIVMM_BUILD_DOCS=ON
                                    -DMINIVMM_PACKAGING_TESTS=ON) ;;
    asan)    dir=build-asan; flags=(-DMINIVMM_SANITIZE=address,undefined) ;;
    tsan)    dir=build-tsan; flags=(-DMINIVMM_SANITIZE=thread) ;;
    *) echo "unknown configuration '$config' (default, asan, tsan, fuzz)" >&2; exit 2 ;;
  esac
  echo "== $config: configure and build in $dir"
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMINIVMM_BUILD_TESTS=ON "${flags[@]}" >/dev/null
  cmake --build "$dir" -j2
  echo "== $config: tests"
  # halt_on_error: any sanitizer report fails the run.
  ASAN_OPTIONS=halt_on_error=1:detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
    ctest --test-dir "$dir" --output-on-failure --no-tests=error -j2
done

if [[ " $configs " == *" fuzz "* ]]; then
  scripts/fuzz.sh
fi
