/*
 * tok_pretok.c — pre-tokenisation: the splits a tokenizer makes before BPE runs on each piece.
 * The regexes of GPT-2, Llama 3 and Qwen 2 are matched by hand, alternative by alternative,
 * with the backtracking the regex engines would do (no regex library); then digits isolated,
 * Metaspace split and ByteLevel's prefix space. Bytes that are not UTF-8 count as one
 * character each, of no class (like U+FFFD: not a letter, number or space).
 */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"
#include "unicode.h"

#define NOCHAR 0xFFFFFFFFu

/* The character at s[i] (n bytes in all) and its length. */
static uint32_t char_at(const char *s, size_t n, size_t i, size_t *len)
{
    uint32_t cp;
    size_t k = vkm_utf8_decode((const uint8_t *)s + i, n - i, &cp);
    if (!k) {
        *len = 1;
        return NOCHAR;
    }
    *len = k;
    return cp;
}

static unsigned cls(uint32_t cp) { return cp == NOCHAR ? 0 : vkm_uni_flags(cp); }
static bool is_l(uint32_t cp) { return cls(cp) & VKM_UNI_LETTER; }
static bool is_n(uint32_t cp) { return cls(cp) & VKM_UNI_NUMBER; }
static bool is_s(uint32_t cp) { return cls(cp) & VKM_UNI_SPACE; }
/* [^\s\p{L}\p{N}] */
static bool is_o(uint32_t cp) { return !(cls(cp) & (VKM_UNI_LETTER | VKM_UNI_NUMBER | VKM_UNI_SPACE)); }
static bool is_crlf(uint32_t cp) { return cp == '\r' || cp == '\n'; }

/* End of the run of characters from i satisfying pred (at most max characters). */
static size_t run(const char *s, size_t n, size_t i, bool (*pred)(uint32_t), size_t max)
{
    size_t len, count = 0;
    while (i < n && count < max && pred(char_at(s, n, i, &len))) {
        i += len;
        count++;
    }
    return i;
}

/* 's|'t|'re|'ve|'m|'ll|'d at s (n bytes), case-insensitive when ci: the match length or 0. */
static size_t contraction(const vkm_tokenizer *t, const char *s, size_t n, bool ci)
{
    if (n < 2 || s[0] != '\'') return 0;
    char a = s[1], b = n > 2 ? s[2] : 0;
    if (ci) {
        if (a >= 'A' && a <= 'Z') a = (char)(a - 'A' + 'a');
        if (b >= 'A' && b <= 'Z') b = (char)(b - 'A' + 'a');
        /* Oniguruma folds U+017F LATIN SMALL LETTER LONG S to 's' */
        if (t->fold_long_s && n > 2 && (uint8_t)s[1] == 0xC5 && (uint8_t)s[2] == 0xBF) return 3;
    }
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

/* Whitespace run from 0: the end of \s+(?!\S) or, failing that, of \s+. */
static size_t spaces(const char *s, size_t n)
{
    size_t i = 0, last = 0, len, count = 0;
    while (i < n && is_s(char_at(s, n, i, &len))) {
        last = i;
        i += len;
        count++;
    }
    if (i == n || count < 2) return i; /* at the end, or a single space before \S      */
    return last;                       /* leave the last space to the next piece        */
}

static size_t match_gpt2(const vkm_tokenizer *t, const char *s, size_t n)
{
    size_t k = contraction(t, s, n, false), l0, l1;
    if (k) return k;
    uint32_t c0 = char_at(s, n, 0, &l0);
    if (c0 == ' ' && l0 < n) {
        uint32_t c1 = char_at(s, n, l0, &l1);
        if (is_l(c1)) return run(s, n, l0, is_l, SIZE_MAX);
        if (is_n(c1)) return run(s, n, l0, is_n, SIZE_MAX);
        if (is_o(c1)) return run(s, n, l0, is_o, SIZE_MAX);
    }
    if (is_l(c0)) return run(s, n, 0, is_l, SIZE_MAX);
    if (is_n(c0)) return run(s, n, 0, is_n, SIZE_MAX);
    if (is_o(c0)) return run(s, n, 0, is_o, SIZE_MAX);
    return spaces(s, n);
}

static size_t match_llama3(const vkm_tokenizer *t, const char *s, size_t n, size_t max_digits)
{
    size_t k = contraction(t, s, n, true), l0, l1;
    if (k) return k;
    uint32_t c0 = char_at(s, n, 0, &l0), c1 = l0 < n ? char_at(s, n, l0, &l1) : NOCHAR;
    bool has1 = l0 < n;
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (!is_crlf(c0) && !is_l(c0) && !is_n(c0) && has1 && is_l(c1)) return run(s, n, l0, is_l, SIZE_MAX);
    if (is_l(c0)) return run(s, n, 0, is_l, SIZE_MAX);
    /* \p{N}{1,3} */
    if (is_n(c0)) return run(s, n, 0, is_n, max_digits);
    /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
    if (c0 == ' ' && has1 && is_o(c1)) return run(s, n, run(s, n, l0, is_o, SIZE_MAX), is_crlf, SIZE_MAX);
    if (is_o(c0)) return run(s, n, run(s, n, 0, is_o, SIZE_MAX), is_crlf, SIZE_MAX);
    /* \s*[\r\n]+ : up to the last CR or LF of the whitespace run */
    size_t i = 0, len, end_crlf = 0;
    uint32_t c;
    while (i < n && is_s(c = char_at(s, n, i, &len))) {
        i += len;
        if (is_crlf(c)) end_crlf = i;
    }
    if (end_crlf) return end_crlf;
    /* \s+(?!\S)|\s+ */
    return spaces(s, n);
}

size_t vkm_tok_regex_match(const vkm_tokenizer *t, vkm_tok_pre pre, const char *s, size_t n)
{
    switch (pre) {
    case VKM_TOK_PRE_GPT2: return match_gpt2(t, s, n);
    case VKM_TOK_PRE_LLAMA3: return match_llama3(t, s, n, 3);
    case VKM_TOK_PRE_QWEN2: return match_llama3(t, s, n, 1);
    default: return n;
    }
}

/* ---- the pipeline ------------------------------------------------------------------------- */
typedef struct span {
    const char *p;
    size_t n;
} span;

typedef struct spans {
    span *v;
    size_t n, cap;
} spans;

static bool add(spans *l, const char *p, size_t n)
{
    if (n == 0) return true;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        span *v = realloc(l->v, cap * sizeof *v);
        if (!v) return false;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = (span){p, n};
    return true;
}

/* Splits one span by step pre into out; extra holds text the step makes (prefix spaces). */
static bool split(const vkm_tokenizer *t, vkm_tok_pre pre, span in, spans *out, char *extra,
                  size_t *used)
{
    const char *s = in.p;
    size_t n = in.n, i = 0, start = 0, len;
    switch (pre) {
    case VKM_TOK_PRE_DIGITS:
        while (i < n) {
            uint32_t c = char_at(s, n, i, &len);
            if (is_n(c)) {
                if (!add(out, s + start, i - start) || !add(out, s + i, len)) return false;
                start = i + len;
            }
            i += len;
        }
        return add(out, s + start, n - start);
    case VKM_TOK_PRE_METASPACE:
        for (; i + 3 <= n; i++)
            if (!memcmp(s + i, "\xE2\x96\x81", 3) && i > start) {
                if (!add(out, s + start, i - start)) return false;
                start = i;
            }
        return add(out, s + start, n - start);
    case VKM_TOK_PRE_PREFIX_SPACE: {
        if (s[0] == ' ') return add(out, s, n);
        char *p = extra + *used;
        p[0] = ' ';
        memcpy(p + 1, s, n);
        *used += n + 1;
        return add(out, p, n + 1);
    }
    default:
        while (i < n) {
            size_t k = vkm_tok_regex_match(t, pre, s + i, n - i);
            if (k == 0) k = 1; /* not reached: every character matches some alternative */
            if (!add(out, s + i, k)) return false;
            i += k;
        }
        return true;
    }
}

vkm_status vkm_tok_pretokenize(const vkm_tokenizer *t, const char *s, size_t n,
                               vkm_tok_piece_fn fn, vkm_tok_ids *out)
{
    spans a = {0}, b = {0};
    char *extra[VKM_TOK_MAX_PRE] = {0};
    vkm_status st = VKM_ERR_OUT_OF_HOST_MEMORY;
    if (!add(&a, s, n)) goto done;
    for (int k = 0; k < t->n_pre; k++) {
        size_t used = 0;
        if (t->pre[k] == VKM_TOK_PRE_PREFIX_SPACE) {
            size_t total = 0;
            for (size_t i = 0; i < a.n; i++) total += a.v[i].n + 1;
            if (!(extra[k] = malloc(total))) goto done;
        }
        b.n = 0;
        for (size_t i = 0; i < a.n; i++)
            if (!split(t, t->pre[k], a.v[i], &b, extra[k], &used)) goto done;
        spans tmp = a;
        a = b;
        b = tmp;
    }
    for (size_t i = 0; i < a.n; i++)
        if ((st = fn(t, a.v[i].p, a.v[i].n, out)) != VKM_OK) goto done;
    st = VKM_OK;
done:
    free(a.v);
    free(b.v);
    for (int k = 0; k < VKM_TOK_MAX_PRE; k++) free(extra[k]);
    return st;
}
