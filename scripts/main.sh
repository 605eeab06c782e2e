#!/usr/bin/env bash
# The main job: set up, build, and run the default guest.
# (Until the overhead benchmark lands, that is the hello guest.)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2
exec ./build/bin/minivmm-run build/guest-images/hello.bin "$@"
