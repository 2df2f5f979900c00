#!/usr/bin/env bash
# test.sh — builds everything and runs the whole test suite, as CI does (.ci/run):
#   1. the release build with warnings as errors, every cmocka test (validation layer on)
#   2. the AddressSanitizer + UndefinedBehaviorSanitizer build and its tests
#   3. the libFuzzer targets for a bounded time each (tests/fuzz/run.sh)
#   4. the aarch64 Linux cross build of the library and CLI
# Installs what is missing first (tools/deps.sh). Build folders: build/, build-san/, build-fuzz/,
# build-aarch64/. FUZZ_SECONDS (default 60) bounds each fuzzer.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh test
jobs=$(nproc)

echo "== release build + tests"
cmake -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVKMOE_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs")

echo "== sanitizer build (ASan + UBSan) + tests"
cmake -B build-san -G Ninja -DCMAKE_BUILD_TYPE=Debug -DVKMOE_SANITIZE=ON -DVKMOE_WERROR=ON >/dev/null
cmake --build build-san -j"$jobs"
(cd build-san && ctest --output-on-failure -j"$jobs" -LE slow)

if [ -x tests/fuzz/run.sh ]; then
  echo "== fuzzers (${FUZZ_SECONDS:-60} s each)"
  tests/fuzz/run.sh "${FUZZ_SECONDS:-60}"
fi

echo "== aarch64 cross build"
cmake -B build-aarch64 -G Ninja -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/aarch64-linux-gnu.cmake" \
      -DVKMOE_TESTS=OFF -DVKMOE_WERROR=ON >/dev/null
cmake --build build-aarch64 -j"$jobs"
file build-aarch64/apps/vkmoe | grep -q "ARM aarch64"
echo "== all passed"
