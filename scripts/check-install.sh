#!/usr/bin/env bash
# Packaging check: installs a build tree into a temporary prefix, checks what
# is installed where, builds the out-of-tree consumer (examples/consumer)
# against that prefix with find_package (shared and static library) and with
# pkg-config (shared and static), and runs the consumers and the installed
# minivmm-run on guest images.
#
#   scripts/check-install.sh BUILD_DIR     (ctest runs it: label "packaging")
#
# The consumers run on this machine's /dev/kvm or, where it has none (or
# with MINIVMM_EMULATED_KVM=1), in the emulated machine of scripts/kvm-vm.sh,
# as the KVM tests do. CC and CXX name the compilers (default cc, c++).
# Everything happens in a fresh temporary folder, removed at exit.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:?usage: check-install.sh BUILD_DIR}" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/minivmm-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
cc=${CC:-cc}
cxx=${CXX:-c++}

fail() {
    echo "FAILED: $*" >&2
    exit 1
}
step() { echo "== check-install: $*"; }
cache_value() { sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt"; }
# need_file PATH...: each must exist (as a file or a symlink to one).
need_file() {
    local f
    for f in "$@"; do [ -f "$f" ] || fail "not installed: ${f#"$prefix"/}"; done
}
# needs BINARY LIB: true if LIB is among its DT_NEEDED libraries. (Never
# pipe into grep -q here: with pipefail, grep quitting early fails the pipe.)
needs() {
    local list
    list=$(readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
    grep -qx -- "$2" <<<"$list"
}

libdir_rel=$(cache_value CMAKE_INSTALL_LIBDIR)
[ -n "$libdir_rel" ] || fail "CMAKE_INSTALL_LIBDIR not in $build/CMakeCache.txt"
libdir=$prefix/$libdir_rel
version=$(cache_value CMAKE_PROJECT_VERSION)

step "cmake --install $build --prefix <tmp>"
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" || {
    cat "$tmp/install.log" >&2
    fail "cmake --install"
}

step "installed files"
need_file "$libdir/libminivmm.so.$version" "$libdir/libminivmm.a"
[ "$(readlink "$libdir/libminivmm.so.0")" = "libminivmm.so.$version" ] ||
    fail "libminivmm.so.0 is not a symlink to libminivmm.so.$version"
[ "$(readlink "$libdir/libminivmm.so")" = "libminivmm.so.0" ] ||
    fail "libminivmm.so is not a symlink to libminivmm.so.0"
soname=$(readelf -d "$libdir/libminivmm.so.$version" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = "libminivmm.so.0" ] || fail "SONAME is '$soname', not libminivmm.so.0"
# Every public header, and nothing else, under include/.
(cd "$src/include" && find . -type f | sort) >"$tmp/headers.src"
(cd "$prefix/include" && find . -type f | sort) >"$tmp/headers.installed"
diff -u "$tmp/headers.src" "$tmp/headers.installed" ||
    fail "installed headers differ from include/ (above)"
for tool in minivmm-run minivmm-bench minivmm-bare-run; do
    [ -x "$prefix/bin/$tool" ] || fail "not installed: bin/$tool"
done
sdk=$prefix/share/minivmm/guest
need_file "$sdk/sdk/start.S" "$sdk/sdk/guest.ld" "$sdk/sdk/entry.c" "$sdk/sdk/hypercall.c" \
    "$sdk/sdk/console.c" "$sdk/sdk/string.c" "$sdk/cmake/MinivmmGuest.cmake" \
    "$sdk/examples/hello.c" "$sdk/README.md"
for h in "$src"/guest/sdk/include/mvg/*.h; do need_file "$sdk/sdk/include/mvg/${h##*/}"; done
# The SDK's copy of the ABI headers: the very files of include/minivmm/abi.
for h in "$src"/include/minivmm/abi/*.h; do
    cmp -s "$h" "$sdk/sdk/include/minivmm/abi/${h##*/}" ||
        fail "the SDK's minivmm/abi/${h##*/} is missing or differs from include/minivmm/abi"
done
images=$libdir/minivmm/guest-images
for g in hello smp hcloop regloop tscloop sb_cpu sb_memory sb_mutex sb_threads sb_fileio; do
    need_file "$images/$g.bin"
done
need_file "$libdir/cmake/minivmm/minivmmConfig.cmake" \
    "$libdir/cmake/minivmm/minivmmConfigVersion.cmake" \
    "$libdir/cmake/minivmm/minivmmTargets.cmake" "$libdir/pkgconfig/minivmm.pc"
need_file "$prefix/share/doc/minivmm/README.md" "$prefix/share/doc/minivmm/LICENSE" \
    "$prefix/share/doc/minivmm/copyright" "$prefix/share/doc/minivmm/docs/guest-abi.md" \
    "$prefix/share/doc/minivmm/docs/architecture.md" "$prefix/share/doc/minivmm/docs/benchmarks.md"
if [ "$(cache_value MINIVMM_BUILD_DOCS)" = ON ]; then
    need_file "$prefix/share/doc/minivmm/html/index.html" \
        "$prefix/share/doc/minivmm/html/classminivmm_1_1Vm.html"
fi
# Nothing of the build tree may leak into the installed CMake files.
if grep -rl -e "$build" -e "$src" "$libdir/cmake/minivmm" "$libdir/pkgconfig"; then
    fail "installed CMake/pkg-config files name the build or source tree (above)"
fi

step "exported link interface (the public headers need spdlog only)"
targets=$libdir/cmake/minivmm/minivmmTargets.cmake
# The first INTERFACE_LINK_LIBRARIES line after each add_library.
link_interface() {
    awk -v t="minivmm::$1" '$1 == "add_library(" t { f = 1 }
        f && /INTERFACE_LINK_LIBRARIES/ { print; exit }' "$targets" |
        sed -e 's/.*INTERFACE_LINK_LIBRARIES "\(.*\)"/\1/' -e 's/\\\$/$/g'
}
shared_if=$(link_interface minivmm)
static_if=$(link_interface minivmm_static)
[ "$shared_if" = 'spdlog::spdlog' ] ||
    fail "minivmm::minivmm links '$shared_if', expected spdlog::spdlog"
[ "$static_if" = 'spdlog::spdlog;$<LINK_ONLY:fmt::fmt>;$<LINK_ONLY:Threads::Threads>;$<LINK_ONLY:PkgConfig::libseccomp>' ] ||
    fail "minivmm::minivmm_static links '$static_if'"
needs "$libdir/libminivmm.so.$version" libseccomp.so.2 ||
    fail "libminivmm.so does not link libseccomp"

step "find_package consumer (examples/consumer)"
cmake -S "$src/examples/consumer" -B "$tmp/cmake-consumer" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" \
    -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
    >"$tmp/consumer-configure.log" || {
    cat "$tmp/consumer-configure.log" >&2
    fail "configuring examples/consumer against the installed prefix"
}
found_dir=$(sed -n 's/^minivmm_DIR:PATH=//p' "$tmp/cmake-consumer/CMakeCache.txt")
[ "$found_dir" = "$libdir/cmake/minivmm" ] || fail "find_package found minivmm in '$found_dir'"
cmake --build "$tmp/cmake-consumer" -j2 >"$tmp/consumer-build.log" || {
    cat "$tmp/consumer-build.log" >&2
    fail "building examples/consumer"
}
consumer=$tmp/cmake-consumer/consumer
consumer_static=$tmp/cmake-consumer/consumer_static
greeter=$tmp/cmake-consumer/guest-images/greeter.bin
need_file "$greeter" "$tmp/cmake-consumer/guest-images/greeter.elf"

step "pkg-config consumer"
export PKG_CONFIG_PATH="$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
[ "$(pkg-config --modversion minivmm)" = "$version" ] || fail "pkg-config --modversion minivmm"
pc_images=$(pkg-config --variable=guestimagesdir minivmm)
[ "$(realpath "$pc_images")" = "$images" ] || fail "guestimagesdir is $pc_images"
[ "$(realpath "$(pkg-config --variable=guestsdkdir minivmm)")" = "$sdk/sdk" ] ||
    fail "guestsdkdir is wrong"
cflags=$(pkg-config --cflags minivmm)
libs=$(pkg-config --libs minivmm)
static_libs=$(pkg-config --static --libs minivmm)
for want in -lminivmm -lspdlog -lfmt; do
    [[ " $libs " == *" $want "* ]] || fail "pkg-config --libs minivmm lacks $want: $libs"
done
[[ " $static_libs " == *" -pthread "* ]] || fail "pkg-config --static --libs lacks -pthread"
[[ " $static_libs " == *" -lseccomp "* ]] || fail "pkg-config --static --libs lacks -lseccomp"
# libseccomp is the shared library's own business.
[[ " $libs " != *" -lseccomp "* ]] || fail "pkg-config --libs minivmm names -lseccomp: $libs"
[[ "$cflags $libs $static_libs" != *boost* ]] || fail "pkg-config names Boost: $cflags $libs"
# All installed headers compile with just these flags (nothing from the
# source tree on the path).
for h in "$prefix"/include/minivmm/*.hpp; do echo "#include \"minivmm/${h##*/}\""; done \
    >"$tmp/all_headers.cpp"
# shellcheck disable=SC2086 # word splitting of pkg-config output is intended
"$cxx" -std=c++20 -Wall -Wextra -Werror $cflags -fsyntax-only "$tmp/all_headers.cpp" ||
    fail "the installed headers do not compile with pkg-config's flags"
# shellcheck disable=SC2086
"$cxx" -std=c++20 -O2 $cflags -c "$src/examples/consumer/consumer.cpp" -o "$tmp/consumer.o"
# shellcheck disable=SC2086
"$cxx" -o "$tmp/consumer_pc" "$tmp/consumer.o" $libs -Wl,-rpath,"$libdir"
# Static: --static's flags with libminivmm.a in place of -lminivmm.
static_args=()
for word in $static_libs; do
    [ "$word" = -lminivmm ] && word=-l:libminivmm.a
    static_args+=("$word")
done
[[ " ${static_args[*]} " == *" -l:libminivmm.a "* ]] || fail "no -lminivmm in $static_libs"
"$cxx" -o "$tmp/consumer_pc_static" "$tmp/consumer.o" "${static_args[@]}"

step "linked libraries"
for exe in "$consumer" "$tmp/consumer_pc"; do
    needs "$exe" libminivmm.so.0 || fail "${exe##*/} does not need libminivmm.so.0"
    resolved=$(ldd "$exe" | sed -n 's/^[[:space:]]*libminivmm.so.0 => \([^ ]*\).*/\1/p')
    [ "$(realpath "$resolved")" = "$libdir/libminivmm.so.$version" ] ||
        fail "${exe##*/} loads libminivmm.so.0 from '$resolved', not the installed copy"
done
for exe in "$consumer_static" "$tmp/consumer_pc_static"; do
    if needs "$exe" libminivmm.so.0; then fail "${exe##*/} needs libminivmm.so.0"; fi
    needs "$exe" libfmt.so.9 || fail "${exe##*/} does not link libfmt"
    needs "$exe" libspdlog.so.1.10 || fail "${exe##*/} does not link libspdlog"
    needs "$exe" libseccomp.so.2 || fail "${exe##*/} does not link libseccomp"
done

# The consumers run on a KVM: this machine's /dev/kvm, or where there is
# none an emulated machine with a KVM of its own (scripts/kvm-vm.sh), as the
# KVM tests do; the temporary folder is shared with it read-write.
# run_consumers runs in either, from the variables passed to it below.
run_consumers() {
    # expect STATUS PATTERN COMMAND...: runs it, checks its status and that
    # its output holds the (grep -F) pattern.
    expect() {
        local want=$1 pattern=$2 status=0
        shift 2
        "$@" >"$tmp/out" 2>&1 || status=$?
        if [ "$status" -ne "$want" ] || ! grep -qF -- "$pattern" "$tmp/out"; then
            cat "$tmp/out" >&2
            fail "$* exited $status (expected $want) or did not print '$pattern'"
        fi
    }
    local exe
    for exe in "$consumer" "$consumer_static" "$tmp/consumer_pc" "$tmp/consumer_pc_static"; do
        expect 42 "greeter: 1 vcpu(s), cmdline 'from ${exe##*/}'" "$exe" "$greeter" "from ${exe##*/}"
        expect 42 "libminivmm $version" "$exe" "$greeter"
    done
    expect 0 "Hello from minivmm guest: vcpu 0 of 1, 64 MiB RAM" "$tmp/consumer_pc" \
        "$pc_images/hello.bin" "installed hello"
    expect 0 "Hello from minivmm guest: vcpu 0 of 2" "$prefix/bin/minivmm-run" --vcpus 2 \
        "$images/hello.bin"
    expect 0 "minivmm-run $version" "$prefix/bin/minivmm-run" --version
    expect 0 "$images" "$prefix/bin/minivmm-bench" --help
}
way=$("$src/scripts/kvm-vm.sh" --which)
step "running the consumers and the installed tools (on $way KVM)"
if [ "$way" = real ]; then
    run_consumers
else
    # One retry when the emulated machine itself fails (status 125, never
    # the consumers' fault; kvm-vm.sh says why).
    for attempt in 1 2; do
        status=0
        "$src/scripts/kvm-vm.sh" --rw "$tmp" --timeout 500 -- bash -c "set -euo pipefail
            $(declare -f fail run_consumers)
            $(declare -p tmp prefix consumer consumer_static greeter version pc_images images)
            run_consumers" || status=$?
        [ "$status" -eq 125 ] && [ "$attempt" -eq 1 ] && continue
        [ "$status" -eq 0 ] || fail "the consumers failed on the emulated KVM (status $status, above)"
        break
    done
fi
echo "check-install: OK (installed to a temporary prefix; find_package and pkg-config" \
    "consumers, shared and static, built and run)"
