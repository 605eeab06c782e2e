#!/usr/bin/env bash
# Packaging check: builds the .deb with CPack from a build tree configured
# with -DCMAKE_INSTALL_PREFIX=/usr, checks its control fields (declared
# Debian dependencies) and contents with dpkg-deb, and runs lintian on it
# when lintian is installed (scripts/setup.sh installs it). The package is
# built in a temporary folder (removed at exit) and never installed.
#
#   scripts/check-deb.sh BUILD_DIR     (ctest runs it: label "packaging")
#   MINIVMM_DEB_OUT=DIR scripts/check-deb.sh BUILD_DIR   also keeps the .deb in DIR
set -euo pipefail
build=$(cd "${1:?usage: check-deb.sh BUILD_DIR}" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/minivmm-deb.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

fail() {
    echo "FAILED: $*" >&2
    exit 1
}
step() { echo "== check-deb: $*"; }
cache_value() { sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt"; }

[ "$(cache_value CMAKE_INSTALL_PREFIX)" = /usr ] ||
    fail "$build is not configured with -DCMAKE_INSTALL_PREFIX=/usr (Debian's multiarch libdir)"
libdir=$(cache_value CMAKE_INSTALL_LIBDIR)
[ "$libdir" = lib/x86_64-linux-gnu ] || fail "CMAKE_INSTALL_LIBDIR is '$libdir'"
version=$(cache_value CMAKE_PROJECT_VERSION)

step "cpack -G DEB"
(cd "$build" && cpack -G DEB -B "$tmp" >"$tmp/cpack.log" 2>&1) || {
    cat "$tmp/cpack.log" >&2
    fail "cpack"
}
deb=$tmp/minivmm_${version}-1_amd64.deb
[ -f "$deb" ] || fail "cpack made no $(basename "$deb"): $(ls "$tmp")"

step "control fields"
field() { dpkg-deb --field "$deb" "$1"; }
[ "$(field Package)" = minivmm ] || fail "Package: $(field Package)"
[ "$(field Version)" = "$version-1" ] || fail "Version: $(field Version)"
[ "$(field Architecture)" = amd64 ] || fail "Architecture: $(field Architecture)"
depends=$(field Depends)
echo "Depends: $depends"
# Run time (found by dpkg-shlibdeps; Debian 12's spdlog shlibs name
# libspdlog1.10-fmt9, which libspdlog1.10 provides: spdlog built with fmt 9),
# then what the headers, the CMake package (libseccomp through pkg-config)
# and the static library need.
for pkg in libc6 libstdc++6 libgcc-s1 libfmt9 libspdlog1.10-fmt9 libseccomp2 libfmt-dev \
    libspdlog-dev libseccomp-dev linux-libc-dev pkgconf; do
    [[ ", $depends," == *", $pkg "* || ", $depends," == *", $pkg,"* ]] ||
        fail "Depends lacks $pkg"
done
[[ "$depends" != *boost* ]] || fail "Depends names Boost, a private header-only dependency"
# (Whole outputs compared, never piped into grep -q: with pipefail, grep
# quitting early would fail the pipeline.)
shlibs=$(dpkg-deb --info "$deb" shlibs) || fail "no shlibs control file"
[ "$shlibs" = "libminivmm 0 minivmm (= $version-1)" ] || fail "shlibs is '$shlibs'"
[ "$(dpkg-deb --info "$deb" triggers)" = "activate-noawait ldconfig" ] || fail "no ldconfig trigger"

step "contents"
dpkg-deb --contents "$deb" >"$tmp/contents"
# "path" for files, "path -> target" for symlinks.
awk '{ p = $6; sub(/^\.\//, "/", p); if ($7 == "->") p = p " -> " $8; print p }' \
    "$tmp/contents" >"$tmp/paths"
L=/usr/$libdir
for want in \
    "$L/libminivmm.so.$version" \
    "$L/libminivmm.so.0 -> libminivmm.so.$version" \
    "$L/libminivmm.so -> libminivmm.so.0" \
    "$L/libminivmm.a" \
    "$L/cmake/minivmm/minivmmConfig.cmake" \
    "$L/cmake/minivmm/minivmmConfigVersion.cmake" \
    "$L/cmake/minivmm/minivmmTargets.cmake" \
    "$L/pkgconfig/minivmm.pc" \
    "$L/minivmm/guest-images/hello.bin" \
    "$L/minivmm/guest-images/sb_cpu.bin" \
    /usr/include/minivmm/vm.hpp \
    /usr/include/minivmm/kvm.hpp \
    /usr/include/minivmm/log.hpp \
    /usr/bin/minivmm-run \
    /usr/bin/minivmm-bench \
    /usr/bin/minivmm-bare-run \
    /usr/share/minivmm/guest/sdk/start.S \
    /usr/share/minivmm/guest/sdk/guest.ld \
    /usr/share/minivmm/guest/sdk/entry.c \
    /usr/share/minivmm/guest/sdk/include/mvg/mvg.h \
    /usr/share/minivmm/guest/sdk/include/minivmm/abi/hypercall.h \
    /usr/include/minivmm/abi/hypercall.h \
    /usr/share/minivmm/guest/cmake/MinivmmGuest.cmake \
    /usr/share/doc/minivmm/README.md \
    /usr/share/doc/minivmm/copyright; do
    grep -qxF -- "$want" "$tmp/paths" || fail "not in the package: $want"
done
if [ "$(cache_value MINIVMM_BUILD_DOCS)" = ON ]; then
    grep -qx /usr/share/doc/minivmm/html/index.html "$tmp/paths" ||
        fail "not in the package: the API reference (share/doc/minivmm/html)"
fi
if grep -v -e '^/usr/' -e '^/$' "$tmp/paths"; then fail "files outside /usr (above)"; fi
if grep -E '^/usr/include/.*/(devices|vcpu|kvm|memory|boot|vm)/' "$tmp/paths"; then
    fail "private headers in the package (above)"
fi
echo "$(grep -c . "$tmp/paths") entries"

if command -v lintian >/dev/null; then
    step "lintian"
    # Errors fail; warnings and notes are shown.
    lintian --fail-on error "$deb" || fail "lintian found errors (above)"
else
    echo "check-deb: lintian is not installed: checked with dpkg-deb only"
fi

if [ -n "${MINIVMM_DEB_OUT:-}" ]; then
    mkdir -p "$MINIVMM_DEB_OUT"
    cp "$deb" "$MINIVMM_DEB_OUT/"
fi
echo "check-deb: OK ($(basename "$deb"))"
