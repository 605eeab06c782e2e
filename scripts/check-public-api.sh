#!/usr/bin/env bash
# The public API is what examples and tools use: no file under examples/,
# src/cli/ or src/bench/ may include one of libminivmm's private headers
# (src/devices, src/vcpu, src/kvm, src/memory, src/boot, src/vm), however the
# path is spelled ("devices/x.hpp", "../vm/x.hpp", "src/kvm/x.hpp").
#
#   scripts/check-public-api.sh              check the tree (run by ctest)
#   scripts/check-public-api.sh DIR...       check these folders instead
#
# Before checking, it makes sure that it does catch such an include (and
# passes a clean file), so the check itself cannot silently stop working.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
private='(devices|vcpu|kvm|memory|boot|vm)'
pattern="^[[:space:]]*#[[:space:]]*include[[:space:]]*[<\"]((\\.\\./)*(src/)?)${private}/"

# Prints offending lines; true when there are none.
scan() {
    ! grep -rnE --include='*.c' --include='*.cc' --include='*.cpp' --include='*.h' \
        --include='*.hpp' "$pattern" "$@"
}

self_test() {
    local tmp
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/minivmm-api-check.XXXXXX")
    trap 'rm -rf "$tmp"' RETURN
    mkdir -p "$tmp/clean" "$tmp/bad1" "$tmp/bad2" "$tmp/bad3"
    printf '#include "minivmm/vm.hpp"\n#include "cli/stats.hpp"\n#include <memory>\n' \
        >"$tmp/clean/a.cpp"
    printf '#include "devices/block_device.hpp"\n' >"$tmp/bad1/a.cpp"
    printf '  #  include "../vcpu/vcpu_loop.hpp"\n' >"$tmp/bad2/a.hpp"
    printf '#include <src/kvm/x.hpp>\n' >"$tmp/bad3/a.c"
    scan "$tmp/clean" >/dev/null || { echo "check-public-api: self-test: clean file rejected" >&2; return 1; }
    local d
    for d in bad1 bad2 bad3; do
        if scan "$tmp/$d" >/dev/null; then
            echo "check-public-api: self-test: private include in $d not caught" >&2
            return 1
        fi
    done
}

self_test
if [ $# -eq 0 ]; then
    set -- "$root/examples" "$root/src/cli" "$root/src/bench"
fi
if ! scan "$@"; then
    echo "FAILED: the files above include private libminivmm headers; use include/minivmm/ only" >&2
    exit 1
fi
echo "check-public-api: $* use the public headers only"
