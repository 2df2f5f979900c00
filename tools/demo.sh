#!/usr/bin/env bash
# demo.sh [vkmoe args...] — builds vkmoe (installing what is missing) and runs it. With no
# arguments: the device list and a quick benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh runtime
cmake -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target vkmoe_cli
if [ $# -eq 0 ]; then
  build/apps/vkmoe devices
  exec build/apps/vkmoe bench --quick
fi
exec build/apps/vkmoe "$@"
