#!/bin/sh
# count_decode.sh [bench_moe options] — a decode step's cost per token in instructions, for the
# bare base, the routed LoRA bank (expands in the matvec epilogue) and the routed bank with the
# expands apart: bench_moe --only SIDE under cachegrind, at 1 + 1 and 1 + 4 decode steps, per
# token = the difference / 3. Steady where a shared VM's clocks are not (two runs agree within
# 0.01%); it counts host, driver and (on lavapipe) kernel instructions, not memory stalls.
# LP_NUM_THREADS=0 keeps llvmpipe's work on the counted thread. A first run of each side fills
# Mesa's shader cache for valgrind's CPU, so the counted runs compile nothing (compiling varies
# by a few hundred million instructions from run to run, and two cold runs side by side fill the
# cache for each other). Needs valgrind (apt-get install valgrind); slow: the 1.1B shape takes
# about 45 minutes on 2 cores (--shape testbed: 3 minutes). BENCH_MOE names the binary.
set -eu
bench=${BENCH_MOE:-$(dirname "$0")/../build/apps/bench_moe}
command -v valgrind >/dev/null || { echo "count_decode.sh: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
[ -x "$bench" ] || { echo "count_decode.sh: no $bench (build first, or set BENCH_MOE)" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$bench" "$@" --only base --decode 1 >/dev/null # writes the model files once
count() { # SIDE LABEL STEPS [bench_moe options]: the run's instruction count into $out/cg.SIDE.LABEL
    c=$1.$2 c_side=$1 c_steps=$3
    shift 3
    LP_NUM_THREADS=0 valgrind --tool=cachegrind --cache-sim=no --branch-sim=no \
        --cachegrind-out-file="$out/cg.$c" "$bench" --only "$c_side" --decode "$c_steps" "$@" >/dev/null 2>"$out/log.$c" ||
        { echo "count_decode.sh: $c failed: $(tail -n 3 "$out/log.$c")" >&2; exit 1; }
}
for side in base routed apart; do
    count "$side" warm 1 "$@" # fills the shader cache: not counted
    count "$side" 1 1 "$@" &
    pid=$!
    count "$side" 4 4 "$@"
    wait "$pid" || exit 1
done
ir() { sed -n 's/^summary: //p' "$out/cg.$1.$2"; }
base=$(( ($(ir base 4) - $(ir base 1)) / 3 ))
printf '%-8s %16s %10s\n' side 'instr/token' 'vs base'
for side in base routed apart; do
    t=$(( ($(ir "$side" 4) - $(ir "$side" 1)) / 3 ))
    printf '%-8s %16d %+9.1f%%\n' "$side" "$t" "$(echo "$t $base" | awk '{print 100 * ($1 / $2 - 1)}')"
done
