# sh_common.sh — sourced by the shell tests (cli_test.sh, bench_test.sh) after they set $tmp:
# a fresh $tmp, the validation layer on (VKMOE_VALIDATE=1, read by the CLI and the benchmarks),
# no pipeline cache on disk, and the helpers below.
rm -rf "$tmp" && mkdir -p "$tmp"
export VKMOE_VALIDATE=1 VKMOE_PIPELINE_CACHE=
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }
# runs a command, stdout to $tmp/out, stderr to $tmp/err, its exit status in $rc and returned;
# any validation message (the CLI's "vkmoe: warning:", a benchmark's "warning:") is a failure
run() {
    "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    if grep -qE 'VUID|SYNC-HAZARD|Validation (Error|Warning)|^(vkmoe: )?(warning|error): |validation messages' "$tmp/err"; then
        fail "validation messages from: $*"
        grep -E 'VUID|SYNC-HAZARD|Validation|^(vkmoe: )?(warning|error)|validation messages' "$tmp/err" | head -5
    fi
    return $rc
}
# prints the summary line of test NAME; exits non-zero when anything failed
finish() {
    [ "$fails" = 0 ] && echo "$1: all passed" || echo "$1: $fails failed"
    [ "$fails" = 0 ]
}
