#!/usr/bin/env bash
# demo.sh [vkmoe run args...] — builds vkmoe (installing what is missing) and runs it on the
# bundled default MoErged model (the testbed base + python, c, shell, english and legal LoRA
# experts, routed per sequence): the prompt routes to the python expert, and the run prints
# which experts it used, its speed and the roofline fraction.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh runtime
cmake -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target vkmoe_cli
if [ $# -eq 0 ]; then
  set -- -p $'import argparse\n\ndef parse_args(argv):\n    parser = argparse.ArgumentParser(' -n 64 --temp 0
fi
exec build/apps/vkmoe run "$@"
