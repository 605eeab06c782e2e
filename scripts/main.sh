#!/usr/bin/env bash
# The main job: set up, build, and run the overhead benchmark on its defaults
# (sysbench-style cpu, memory, mutex and threads natively and in a guest,
# 5 alternated rounds of 2 s; a few minutes), writing build/overhead.json and
# the self-contained report build/overhead.html. Extra arguments go to
# `minivmm-bench overhead` (e.g. --lock per-listener,global,rcu or --full).
# Installs only what the main job needs (scripts/setup.sh main).
#
# It needs a real KVM. Where this machine has none, it stops with one line,
# unless given --allow-emulated: then it runs in the emulated machine of
# scripts/kvm-vm.sh and every figure is marked emulated (they mean nothing).
set -euo pipefail
cd "$(dirname "$0")/.."
way=$(scripts/kvm-vm.sh --which)
if [ "$way" != real ] && [[ " $* " != *" --allow-emulated "* ]]; then
  echo "main: no real KVM here ($way): the benchmark's timings would mean nothing; run it on a machine with /dev/kvm, or pass --allow-emulated" >&2
  exit 1
fi
scripts/setup.sh main
# Tests, API reference and packaging checks are scripts/test.sh's.
cmake --preset main >/dev/null # CMakePresets.json: binaryDir build
cmake --build --preset main
exec scripts/kvm-vm.sh -- ./build/bin/minivmm-bench overhead --json build/overhead.json \
  --html build/overhead.html "$@"
