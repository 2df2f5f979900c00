#!/bin/sh
# run.sh SECONDS [BUILD_DIR] — builds the loader fuzz targets with clang (libFuzzer + ASan +
# UBSan), writes seed corpora from ../shared into a temporary folder, runs each target for
# SECONDS, prints how many inputs each one executed, and fails on any finding (crash, leak,
# timeout, broken invariant). BUILD_DIR defaults to build-fuzz/ in the checkout; findings are
# copied to build-fuzz-findings/.
set -eu
secs=${1:?usage: tests/fuzz/run.sh SECONDS [BUILD_DIR]}
root=$(cd "$(dirname "$0")/../.." && pwd)
shared=${VKM_SHARED_DIR:-$root/../shared}
build=${2:-$root/build-fuzz}
work=$(mktemp -d "${TMPDIR:-/tmp}/vkmoe-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

CC=${CC:-clang} cmake -S "$root" -B "$build" -G Ninja -DVKMOE_FUZZ=ON -DVKMOE_ENGINE=OFF \
    -DVKMOE_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVKMOE_SHARED_DIR="$shared" >/dev/null
cmake --build "$build" --target fuzz_gguf fuzz_safetensors fuzz_json fuzz_peft fuzz_tokenizer \
    fuzz_make_seeds >/dev/null

for t in gguf safetensors json peft tokenizer; do mkdir -p "$work/$t" "$work/$t.findings"; done
"$build/tests/fuzz/fuzz_make_seeds" "$work" "$shared"

status=0
for t in gguf safetensors json peft tokenizer; do
    log="$work/$t.log"
    if VKM_SHARED_DIR="$shared" "$build/tests/fuzz/fuzz_$t" "$work/$t" -max_total_time="$secs" \
        -timeout=20 -rss_limit_mb=2048 -max_len=400000 -print_final_stats=1 \
        -artifact_prefix="$work/$t.findings/" >"$log" 2>&1; then
        result=ok
    else
        result=FAILED
        status=1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    echo "fuzz_$t: $result, ${runs:-?} executions in ${secs}s"
    if [ "$result" = FAILED ]; then
        grep -E 'ERROR|invariant|SUMMARY|Test unit written' "$log" | head -n 20
        mkdir -p "$root/build-fuzz-findings" && cp -r "$work/$t.findings" "$root/build-fuzz-findings/$t"
        echo "  findings copied to build-fuzz-findings/$t"
    fi
done
exit $status
