#!/usr/bin/env bash
# Installs what minivmm needs, from Debian 12 packages, by group:
#   scripts/setup.sh main           build the tools and run the main job (scripts/main.sh)
#   scripts/setup.sh test           main, plus what the test suite uses (scripts/test.sh)
#   scripts/setup.sh emulated-kvm   the software machine for KVM tests where the
#                                   host has no /dev/kvm (scripts/kvm-vm.sh)
# Several groups may be named; none means "test". Idempotent: installs only
# what is missing, and does nothing (not even apt-get update) when all is there.
set -euo pipefail

main=(
  build-essential cmake linux-libc-dev   # toolchain and the KVM UAPI headers
  libboost-dev libfmt-dev libspdlog-dev  # Asio, formatting, logging
  libcli11-dev                           # command-line parsing
  libseccomp-dev pkgconf                 # the seccomp allowlists (found with pkg-config)
  nlohmann-json3-dev                     # JSON output of minivmm-bench
  sysbench                               # the reference the native workloads are checked against
)
test=(
  catch2                                 # tests (2.13 on Debian 12)
  clang-format                           # the format check in scripts/test.sh
  clang libclang-rt-14-dev               # libFuzzer targets (scripts/fuzz.sh)
  chromium                               # headless check of minivmm-bench overhead's HTML
  doxygen                                # the API reference (warnings are errors)
  dpkg-dev                               # packaging checks: CPack's .deb
  lintian                                # the .deb check (about 30 s to install)
  musl-tools                             # musl-gcc: the static musl programs (tests/linux/, sb_static)
)
emulated_kvm=(
  qemu-system-x86                        # TCG with AMD SVM emulated
  busybox-static cpio                    # the initramfs
  xz-utils zstd                          # the kernel's compressed modules
)

packages=()
[ $# -gt 0 ] || set -- test
for group in "$@"; do
  case "$group" in
    main) packages+=("${main[@]}") ;;
    test) packages+=("${main[@]}" "${test[@]}") ;;
    emulated-kvm) packages+=("${emulated_kvm[@]}") ;;
    *) echo "setup: unknown group '$group' (main, test, emulated-kvm)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "setup: installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
