#!/usr/bin/env bash
# The main job: set up, build, and run the overhead benchmark on its defaults
# (sysbench-style cpu, memory, mutex and threads natively and in a guest,
# 5 alternated rounds of 2 s; a few minutes), writing build/overhead.json and
# the self-contained report build/overhead.html. Extra arguments go to
# `minivmm-bench overhead` (e.g. --lock per-listener,global,rcu or --full).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2
exec ./build/bin/minivmm-bench overhead --json build/overhead.json --html build/overhead.html "$@"
