#!/usr/bin/env bash
# Installs what minivmm needs to build and test, from Debian 12 packages.
# Idempotent: installs only what is missing, and does nothing when all is there.
set -euo pipefail

packages=(
  build-essential cmake linux-libc-dev   # toolchain and the KVM UAPI headers
  libboost-dev libfmt-dev libspdlog-dev  # Asio, formatting, logging
  libcli11-dev                           # command-line parsing
  nlohmann-json3-dev                     # JSON output of minivmm-bench
  catch2                                 # tests (2.13 on Debian 12)
  clang-format                           # the format check in scripts/test.sh
  clang libclang-rt-14-dev               # libFuzzer targets (scripts/fuzz.sh)
  chromium                               # headless check of minivmm-bench overhead's HTML
  sysbench                               # the reference the native workloads are checked against
  doxygen                                # the API reference (warnings are errors)
  pkgconf dpkg-dev                       # packaging checks: pkg-config consumer, CPack's .deb
  lintian                                # the .deb check (about 30 s to install)
)

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
