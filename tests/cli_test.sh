#!/bin/sh
# cli_test.sh VKMOE SHARED_DIR TMP_DIR — the vkmoe command line end to end on lavapipe with the
# validation layer on (VKMOE_VALIDATE=1; any validation message fails): routing outputs of
# `vkmoe route` and `vkmoe run --route-*` (CSV rows per token against the tokenizer's ids, JSON,
# PNG), `vkmoe ppl --json`, `vkmoe tokenize`, and broken files refused with the loader's message.
set -u
vkmoe=${1:?usage: cli_test.sh VKMOE SHARED_DIR TMP_DIR}
shared=${2:?}
tmp=${3:?}/cli
. "$(dirname "$0")/sh_common.sh"
lines() { wc -l <"$1" | tr -d ' '; }
png_magic() { [ "$(od -An -tx1 -N8 "$1" | tr -d ' \n')" = 89504e470d0a1a0a ]; }

base=$shared/testbed/base/model.gguf
manifest=$(dirname "$0")/../third_party/models/testbed-moe/manifest.json

# ---- vkmoe route: 40 tokens of the python eval text, sequence-level router (one row per token)
if run "$vkmoe" route -M "$manifest" --file "$shared/testbed/eval/python.txt" --limit 40 \
    --csv "$tmp/r.csv" --json "$tmp/r.json" --png "$tmp/r.png"; then
    # one row per (token, chosen expert): the default router merges its top two
    [ "$(lines "$tmp/r.csv")" = 81 ] && ok "route: 80 CSV rows" || fail "route: $(lines "$tmp/r.csv") CSV lines, want 81"
    [ "$(tail -n +2 "$tmp/r.csv" | cut -d, -f2 | sort -u | wc -l)" = 40 ] && ok "route: 40 tokens" || fail "route: tokens in the CSV"
    head -n 1 "$tmp/r.csv" | grep -qx 'token,text_index,layer,module,expert,name,weight' || fail "route: CSV header"
    [ "$(grep -c '"index"' "$tmp/r.json")" = 40 ] && ok "route: 40 JSON tokens" || fail "route: JSON tokens"
    grep -q '"top_choice_by_layer"' "$tmp/r.json" || fail "route: JSON has no top_choice_by_layer"
    png_magic "$tmp/r.png" && ok "route: PNG" || fail "route: not a PNG"
else
    fail "route exited $rc: $(tail -n 3 "$tmp/err")"
fi

# ---- route's JSON is UTF-8 even where a character's bytes are separate tokens (byte fallback:
# each stray byte becomes U+FFFD); an expert name with a comma and a quote is one CSV field
# and an escaped JSON string
printf 'na\303\257ve caf\303\251 \342\202\254 \346\227\245\346\234\254 \360\237\231\202 def f(x): return x\n' >"$tmp/utf8.txt"
mdir=$(cd "$(dirname "$manifest")" && pwd)
sed -e "s#\"\(base\|experts\|calib\)/#\"$mdir/\1/#g" -e "s#\"router-lda#\"$mdir/router-lda#" \
    -e 's/"name": "legal"/"name": "le,\\"gal"/' "$manifest" >"$tmp/names.json"
if run "$vkmoe" route -M "$tmp/names.json" --file "$tmp/utf8.txt" --json "$tmp/u.json" --csv "$tmp/u.csv"; then
    iconv -f UTF-8 -t UTF-8 "$tmp/u.json" >/dev/null 2>&1 && grep -q 'ufffd' "$tmp/u.json" &&
        ok "route: JSON of byte-fallback pieces is UTF-8 ($(grep -o 'ufffd' "$tmp/u.json" | wc -l) U+FFFD)" ||
        fail "route: JSON not UTF-8 or no U+FFFD: $(head -c 300 "$tmp/u.json")"
    grep -q '"le,\\"gal"' "$tmp/u.json" && ok "route: expert name escaped in JSON" || fail "route: name in JSON"
    # (this text routes to legal and english)
    grep -q ',"le,""gal",' "$tmp/u.csv" && ok "route: expert name quoted in CSV" || fail "route: CSV: $(head -n 3 "$tmp/u.csv")"
else
    fail "route (UTF-8 text) exited $rc: $(tail -n 3 "$tmp/err")"
fi

# ---- vkmoe run --route-*: prompt tokens + generated tokens, ids as vkmoe tokenize gives them
prompt='def fibonacci(n):'
if run "$vkmoe" run -M "$manifest" -p "$prompt" -n 8 --temp 0 --no-roofline \
    --route-csv "$tmp/g.csv" --route-json "$tmp/g.json" --route-png "$tmp/g.png"; then
    head -c ${#prompt} "$tmp/out" | grep -qxF "$prompt" || fail "run: stdout does not start with the prompt"
    run "$vkmoe" tokenize -m "$base" -p "$prompt"
    want=$(cat "$tmp/out")
    n_prompt=$(echo "$want" | wc -w)
    # positions fed: the prompt's tokens and every generated token but the last
    # positions (text_index) with their token id, one line each (the CSV has a row per expert)
    tail -n +2 "$tmp/g.csv" | cut -d, -f1,2 | uniq >"$tmp/pos"
    rows=$(lines "$tmp/pos")
    [ "$rows" = $((n_prompt + 7)) ] && ok "run: $rows routed positions" || fail "run: $rows positions, want $((n_prompt + 7))"
    got=$(head -n "$n_prompt" "$tmp/pos" | cut -d, -f1 | tr '\n' ' ' | sed 's/ $//')
    [ "$got" = "$want" ] && ok "run: CSV token ids = tokenize ($want)" || fail "run: CSV ids '$got', tokenize '$want'"
    png_magic "$tmp/g.png" || fail "run: not a PNG"
    grep -q '"tokens"' "$tmp/g.json" || fail "run: JSON"
else
    fail "run --route-csv exited $rc: $(tail -n 3 "$tmp/err")"
fi
if run "$vkmoe" run -m "$base" -p x -n 2 --no-roofline --route-csv "$tmp/x.csv"; then
    fail "run --route-csv on a model without experts succeeded"
else
    grep -q 'no experts' "$tmp/err" && ok "run: --route-csv refused without experts" || fail "run: message: $(cat "$tmp/err")"
fi

# ---- the default router decides once for the model (depth model): the heat map shows that
# decision in every layer
rows=$(sed -n 's/.*"top_choice_by_layer": \[\[\(.*\)\]\], "tokens".*/\1/p' "$tmp/r.json" | sed 's/\], \[/\n/g')
[ "$(echo "$rows" | wc -l)" = 4 ] && [ "$(echo "$rows" | sort -u | wc -l)" = 1 ] && ! echo "$rows" | grep -qx '[0., ]*' &&
    ok "route: model depth, the same top choices in all 4 layers" || fail "route: heat map rows by layer: $rows"

# ---- logits aggregation (each token runs as one row per chosen expert): one trace row per
# token, the mixture's experts and weights
dir=$(cd "$(dirname "$manifest")" && pwd)
sed -e "s#\"\(base\|experts\|calib\)/#\"$dir/\1/#g" -e "s#\"router-lda#\"$dir/router-lda#" \
    -e 's/"aggregate": "parameter",/"aggregate": "logits"/' -e '/"merge": "exact"/d' "$manifest" >"$tmp/logits.json"
grep -q '"aggregate": "logits"' "$tmp/logits.json" || fail "logits manifest not made"
if run "$vkmoe" route -M "$tmp/logits.json" --file "$shared/testbed/eval/python.txt" --limit 40 --json "$tmp/l.json" \
    --csv "$tmp/l.csv"; then
    [ "$(grep -c '"index"' "$tmp/l.json")" = 40 ] && ok "route, logits aggregation: 40 JSON tokens" ||
        fail "route, logits aggregation: $(grep -c '"index"' "$tmp/l.json") JSON tokens, want 40"
    [ "$(tail -n +2 "$tmp/l.csv" | cut -d, -f2 | sort -n | tail -n 1)" = 39 ] && [ "$(lines "$tmp/l.csv")" = 81 ] &&
        ok "route, logits aggregation: two experts for each of tokens 0..39" || fail "route, logits aggregation: CSV positions"
else
    fail "route, logits aggregation exited $rc: $(tail -n 3 "$tmp/err")"
fi
if run "$vkmoe" run -M "$tmp/logits.json" -p 'import os' -n 4 --temp 0 --no-roofline --route-json "$tmp/lr.json"; then
    [ "$(grep -c '"index"' "$tmp/lr.json")" -ge 4 ] && ok "run --route-json, logits aggregation" ||
        fail "run --route-json, logits aggregation: $(grep -c '"index"' "$tmp/lr.json") tokens"
else
    fail "run --route-json, logits aggregation exited $rc: $(tail -n 3 "$tmp/err")"
fi

# ---- an output that cannot be written in full fails the command
if [ -w /dev/full ]; then
    if run "$vkmoe" route -M "$manifest" --file "$shared/testbed/eval/python.txt" --limit 8 --csv /dev/full; then
        fail "route --csv /dev/full succeeded"
    else
        grep -q 'cannot write /dev/full' "$tmp/err" && ok "route --csv /dev/full: $(tail -n 1 "$tmp/err")" ||
            fail "route --csv /dev/full: $(cat "$tmp/err")"
    fi
fi

# ---- vkmoe ppl --json
if run "$vkmoe" ppl -m "$base" --file "$shared/testbed/eval/legal.txt" --ctx 64 --stride 64 --limit 256 --json; then
    grep -qE '"perplexity": *[0-9.]+' "$tmp/out" && grep -q '"tokens": *256' "$tmp/out" && ok "ppl --json" ||
        fail "ppl --json: $(cat "$tmp/out")"
else
    fail "ppl exited $rc"
fi

# ---- --ctx-size is ppl's window too (not overridden)
if run "$vkmoe" ppl -m "$base" --file "$shared/testbed/eval/legal.txt" --ctx-size 32 --limit 64 --json; then
    grep -q '"ctx": 32, "stride": 32' "$tmp/out" && ok "ppl --ctx-size 32" || fail "ppl --ctx-size: $(cat "$tmp/out")"
else
    fail "ppl --ctx-size exited $rc"
fi

# ---- a manifest as a tokenizer (its base's), and `info` on a manifest says what it is
run "$vkmoe" tokenize -m "$base" -p 'def parse_args(' && want=$(cat "$tmp/out")
if run "$vkmoe" tokenize -m "$manifest" -p 'def parse_args(' && [ "$(cat "$tmp/out")" = "$want" ]; then
    ok "tokenize -m manifest = its base ($want)"
else
    fail "tokenize -m manifest: exit $rc, '$(cat "$tmp/out")' want '$want': $(cat "$tmp/err")"
fi
run "$vkmoe" info "$manifest"
[ "$rc" = 1 ] && grep -q 'a MoErged manifest' "$tmp/err" && ok "info on a manifest: $(cut -c1-90 "$tmp/err")" ||
    fail "info on a manifest: exit $rc: $(cat "$tmp/err")"

# ---- bad option values: exit 2 and a message naming the option
# (counts above 2^31 - 1 too: a --stride of 2^32 once became 0 and ppl never ended)
for args in "run -n abc -p x" "run -n -2 -p x" "run -p x --temp nan" "ppl -c 0 --file x" "ppl --limit 0 --file x" \
    "route --limit 0" "merge --model a --weight nan --model b -o $tmp/w.gguf" "bench --only" \
    "ppl --stride 4294967296 --file x" "route --ctx 4294967296" "run -n 4294967296 -p x"; do
    # shellcheck disable=SC2086
    "$vkmoe" $args >"$tmp/out" 2>"$tmp/err"
    rc=$?
    opt=$(echo "$args" | tr ' ' '\n' | grep -m1 -E '^-(n|c|-temp|-limit|-weight|-only|-stride|-ctx)$')
    if [ "$rc" = 2 ] && grep -q -- "$opt" "$tmp/err"; then
        ok "$args: exit 2, $(head -n 1 "$tmp/err")"
    else
        fail "$args: exit $rc, stderr: $(cat "$tmp/err")"
    fi
done

# ---- a refused session with --route-*: the reason said (it once exited 2 in silence)
run "$vkmoe" run -m "$base" -p x -n 1 --top-p 0 --route-csv "$tmp/r.csv"
[ "$rc" = 1 ] && grep -q 'top_p' "$tmp/err" && ok "run --top-p 0 --route-csv: exit 1, $(grep -m1 top_p "$tmp/err" | cut -c1-80)" ||
    fail "run --top-p 0 --route-csv: exit $rc: $(cat "$tmp/err")"

# ---- broken files: the loader's message, a non-zero exit, no crash
head -c 100000 "$base" >"$tmp/cut.gguf"
for cmd in "run -m $tmp/cut.gguf -p x -n 1" "info $tmp/cut.gguf" "ppl -m $tmp/cut.gguf --file $shared/testbed/eval/c.txt"; do
    # shellcheck disable=SC2086
    "$vkmoe" $cmd >"$tmp/out" 2>"$tmp/err"
    rc=$?
    if [ "$rc" -ne 0 ] && [ "$rc" -lt 128 ] && grep -q 'cut.gguf' "$tmp/err"; then
        ok "${cmd%% *} on a truncated GGUF: exit $rc, $(grep -m1 cut.gguf "$tmp/err" | cut -c1-100)"
    else
        fail "${cmd%% *} on a truncated GGUF: exit $rc: $(cat "$tmp/err")"
    fi
done

finish cli
