#!/bin/sh
# bench_test.sh BENCH_MOE BENCH_MODEL BENCH_MERGE TMP_DIR VKMOE — the microbenchmarks of apps/bench
# and the kernel ones of `vkmoe bench` run end to end on small shapes with the validation layer on (any validation message fails), and
# their JSON carries every figure with a sane value. Timings are not judged here (docs/
# performance.md has the figures): this keeps the benchmarks themselves from rotting.
set -u
bench_moe=${1:?usage: bench_test.sh BENCH_MOE BENCH_MODEL BENCH_MERGE TMP_DIR VKMOE}
bench_model=${2:?}
bench_merge=${3:?}
tmp=${4:?}/bench
vkmoe=${5:?}
. "$(dirname "$0")/sh_common.sh"
# runs a benchmark (run, sh_common.sh); a non-zero exit fails
bench() { run "$@" || { fail "exit $rc from: $* ($(tail -c 300 "$tmp/err"))"; return 1; }; }
# has KEY [KEY...]: each "key": followed by a positive number (not nan, inf or negative) in $tmp/out
has() {
    for k in "$@"; do
        grep -qE "\"$k\": *[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?[,}]" "$tmp/out" && ! grep -qE "\"$k\": *(0|0\.0+)[,}]" "$tmp/out" ||
            { fail "\"$k\" missing or not positive in: $(head -c 600 "$tmp/out")"; return 1; }
    done
}

# their options: --help exits 0 with the usage, unknown options and values exit 2
for b in "$bench_moe" "$bench_model"; do
    run "$b" --help
    [ "$rc" = 0 ] && grep -q '^usage: ' "$tmp/out" && ok "$(basename "$b") --help" || fail "$b --help: exit $rc"
    for args in "--bogus" "--decode"; do
        # shellcheck disable=SC2086
        run "$b" $args
        [ "$rc" = 2 ] && grep -q -- "$args" "$tmp/err" && ok "$(basename "$b") $args: exit 2" ||
            fail "$b $args: exit $rc: $(cat "$tmp/err")"
    done
done
run "$bench_model" --types f16,bogus
[ "$rc" = 2 ] && grep -q bogus "$tmp/err" && ok "bench_model --types bogus: exit 2" || fail "bench_model --types bogus: exit $rc"
run "$bench_moe" --type bogus
[ "$rc" = 2 ] && grep -q bogus "$tmp/err" && ok "bench_moe --type bogus: exit 2" || fail "bench_moe --type bogus: exit $rc"

# the LoRA bank against the bare base (testbed shape), two rounds of one step, the routers
# inside the shrinks and apart (the router's share timed, not zero, either way); with the
# expands in the matrix products and apart, timed in the same rounds
for apart in "" --separate-routers; do
    if bench "$bench_moe" --shape testbed --experts 3 --rank 4 --decode 1 --rounds 2 --dir "$tmp/moe" --json $apart; then
        want=false; [ -n "$apart" ] && want=true
        has copy_gbps base_ms moe_ms base_roofline moe_roofline four_singles_ms batch4_ms &&
            grep -q "\"separate_routers\": $want" "$tmp/out" &&
            grep -qE '"overhead": *-?[0-9.]+, "router_share": *0\.[0-9]*[1-9][0-9]*, "overhead_rounds": \[-?[0-9.]+, -?[0-9.]+\], "overhead_median": *-?[0-9.]+, "rounds": 2' "$tmp/out" &&
            ok "bench_moe $apart: $(cat "$tmp/out" | cut -c1-160)" || fail "bench_moe $apart: $(cat "$tmp/out")"
    fi
done
if bench "$bench_moe" --shape testbed --experts 3 --rank 4 --decode 1 --rounds 2 --dir "$tmp/moe" --json --separate-expands --cpu-time; then
    grep -q '"cpu_time": true' "$tmp/out" && grep -qE '"separate_expands_ms": *[0-9.]+, "separate_expands_overhead": *-?[0-9.]+, "separate_expands_median": *-?[0-9.]+\}' "$tmp/out" &&
        ok "bench_moe --separate-expands: $(grep -o '"separate_expands.*' "$tmp/out")" ||
        fail "bench_moe --separate-expands: $(cat "$tmp/out")"
fi
# one side alone, nothing timed (what tools/count_decode.sh counts); a side it does not know: exit 2
for side in base routed apart; do
    if bench "$bench_moe" --shape testbed --experts 3 --rank 4 --decode 2 --dir "$tmp/moe" --only $side; then
        grep -qx "bench_moe --only $side: the prompt and 3 decode steps" "$tmp/out" && ok "bench_moe --only $side" ||
            fail "bench_moe --only $side: $(cat "$tmp/out")"
    fi
done
run "$bench_moe" --only bogus
[ "$rc" = 2 ] && grep -q bogus "$tmp/err" && ok "bench_moe --only bogus: exit 2" || fail "bench_moe --only bogus: exit $rc"
# a Mixtral-style model and its dense equivalent, per weight type: four rows
if bench "$bench_model" --shape tiny --types f16,q4_0 --experts 4 --top-k 2 --prefill 8 --decode 2 --json; then
    rows=$(grep -o '"decode_tps"' "$tmp/out" | wc -l)
    [ "$rows" -eq 4 ] && has copy_gbps bytes_per_token prefill_tps decode_tps roofline_tps fraction &&
        ok "bench_model: $rows rows" || fail "bench_model: $(cat "$tmp/out")"
fi
# merge throughput on the quick shape, the output checked for nothing but its figures
if bench "$bench_merge" --quick --dir "$tmp/merge" --json --clean; then
    [ "$(grep -o '"gbps"' "$tmp/out" | wc -l)" -eq 2 ] && has copy_gbps inputs_bytes peak_rss_bytes seconds gbps fraction_of_copy &&
        ok "bench_merge: $(cat "$tmp/out" | tr -d '\n' | cut -c1-200)" || fail "bench_merge: $(cat "$tmp/out")"
fi
# a kernel microbenchmark: the merge kernel, its spot check against the host within f16 rounding
if bench "$vkmoe" bench --quick --only merge --json; then
    [ "$(grep -o '"name"' "$tmp/out" | wc -l)" -eq 1 ] && has copy_gbps seconds gbps fraction &&
        grep -qE '"max_err": *([0-9]e-0[4-9]|[0-9.]+e-[1-9][0-9]|0\.000[0-9]*|0)[,}]' "$tmp/out" &&
        ok "vkmoe bench --only merge: $(cut -c1-200 "$tmp/out")" || fail "vkmoe bench: $(cat "$tmp/out")"
fi
# matvec with a LoRA site's expands in its epilogue, and apart, spot-checked against the host
# (a device with fewer than 9 storage buffers per stage skips matvec_lora, saying so)
for k in matvec_lora matvec_expand; do
if bench "$vkmoe" bench --quick --only $k --json; then
    if grep -q "^vkmoe bench: $k skipped: .*storage buffers per stage" "$tmp/err" && ! grep -q '"name"' "$tmp/out"; then
        ok "vkmoe bench --only $k: $(cat "$tmp/err")"
        continue
    fi
    [ "$(grep -o '"name"' "$tmp/out" | wc -l)" -eq 1 ] && has copy_gbps seconds gbps fraction &&
        grep -qE '"max_err": *([0-9.]+e-(0[5-9]|[1-9][0-9])|0\.0000[0-9]*|0)[,}]' "$tmp/out" &&
        ok "vkmoe bench --only $k: $(cut -c1-200 "$tmp/out")" || fail "vkmoe bench: $(cat "$tmp/out")"
fi
done

finish benches
