/*
 * tok_encode.c — encoding: special tokens split out first (leftmost, longest), then each stretch
 * of text between them normalised (invalid UTF-8, SentencePiece whitespace rules, prepends and
 * replacements), pre-tokenised, and handed to the merge model.
 */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"
#include "unicode.h"

bool vkm_tok_ids_push(vkm_tok_ids *ids, int32_t id)
{
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? ids->cap * 2 : 64;
        int32_t *v = realloc(ids->v, cap * sizeof *v);
        if (!v) return false;
        ids->v = v;
        ids->cap = cap;
    }
    ids->v[ids->n++] = id;
    return true;
}

/* A growable byte string. */
typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf;

static bool sb_put(sbuf *b, const void *s, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return false;
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    return true;
}

/* SentencePiece's rule for bytes that are not UTF-8: each one becomes U+FFFD. */
static bool sanitize(const char *s, size_t n, sbuf *out)
{
    static const char fffd[3] = {(char)0xEF, (char)0xBF, (char)0xBD};
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t k = vkm_utf8_decode((const uint8_t *)s + i, n - i, &cp);
        if (k) {
            if (!sb_put(out, s + i, k)) return false;
            i += k;
        } else {
            if (!sb_put(out, fffd, 3)) return false;
            i++;
        }
    }
    return true;
}

static bool apply_norm(const vkm_tok_norm *op, const char *s, size_t n, bool at_start, sbuf *out)
{
    switch (op->kind) {
    case VKM_TOK_NORM_COLLAPSE: {
        bool pending = false; /* a space seen after some text */
        for (size_t i = 0; i < n; i++) {
            if (s[i] == ' ') {
                pending = out->n > 0;
                continue;
            }
            if (pending && !sb_put(out, " ", 1)) return false;
            pending = false;
            if (!sb_put(out, s + i, 1)) return false;
        }
        return true;
    }
    case VKM_TOK_NORM_PREPEND: {
        bool add = n > 0 && (!op->first_only || at_start) &&
                   !(op->unless_prefixed && n >= op->na && !memcmp(s, op->a, op->na));
        return (!add || sb_put(out, op->a, op->na)) && sb_put(out, s, n);
    }
    case VKM_TOK_NORM_REPLACE:
        for (size_t i = 0; i < n;) {
            if (op->na && i + op->na <= n && !memcmp(s + i, op->a, op->na)) {
                if (!sb_put(out, op->b, op->nb)) return false;
                i += op->na;
            } else {
                if (!sb_put(out, s + i, 1)) return false;
                i++;
            }
        }
        return true;
    }
    return false;
}

static vkm_status model_piece(const vkm_tokenizer *t, const char *s, size_t n, vkm_tok_ids *out)
{
    return t->model == VKM_TOK_SPM ? vkm_tok_spm_encode(t, s, n, out) : vkm_tok_bpe_encode(t, s, n, out);
}

vkm_status vkm_tok_encode_text(const vkm_tokenizer *t, const char *s, size_t n, bool at_start,
                               vkm_tok_ids *out)
{
    if (n == 0) return VKM_OK;
    sbuf a = {0}, b = {0};
    vkm_status st = VKM_ERR_OUT_OF_HOST_MEMORY;
    const char *cur = s;
    size_t len = n;
    if (!t->byte_level) {
        if (!sanitize(s, n, &a)) goto done;
        cur = a.p;
        len = a.n;
    }
    for (int i = 0; i < t->n_norm; i++) {
        b.n = 0;
        if (!apply_norm(&t->norm[i], cur, len, at_start, &b)) goto done;
        sbuf tmp = a;
        a = b;
        b = tmp;
        cur = a.p;
        len = a.n;
    }
    if (len == 0) st = VKM_OK;
    else if (t->n_pre) st = vkm_tok_pretokenize(t, cur, len, model_piece, out);
    else st = model_piece(t, cur, len, out);
done:
    free(a.p);
    free(b.p);
    return st;
}

/* Byte length of the whitespace character (Unicode White_Space) that starts s / ends s[0..n),
 * 0 if there is none. */
static size_t space_after(const char *s, size_t n)
{
    uint32_t cp;
    size_t k = vkm_utf8_decode((const uint8_t *)s, n, &cp);
    return k && (vkm_uni_flags(cp) & VKM_UNI_SPACE) ? k : 0;
}

static size_t space_before(const char *s, size_t n)
{
    size_t k = 1;
    while (k < 4 && k < n && ((uint8_t)s[n - k] & 0xC0) == 0x80) k++;
    return space_after(s + n - k, k) == k ? k : 0;
}

/* Length of the special token that starts at s (0 if none) and its id. */
static size_t match_special(const vkm_tokenizer *t, const char *s, size_t n, bool parse_special,
                            int32_t *id)
{
    uint8_t c = (uint8_t)s[0];
    for (uint32_t k = t->special_at[c]; k < t->special_at[c + 1]; k++) {
        int32_t sid = t->specials[k];
        const vkm_tok_piece *p = &t->pieces[sid];
        if (!parse_special && p->type != VKM_TOKT_USER) continue;
        if (p->len <= n && !memcmp(t->arena + p->off, s, p->len)) {
            *id = sid;
            return p->len;
        }
    }
    return 0;
}

vkm_status vkm_tokenize(const vkm_tokenizer *t, const char *text, size_t len, bool add_bos,
                        bool parse_special, int32_t *ids, size_t cap, size_t *n_out)
{
    if (n_out) *n_out = 0;
    if (!t || !n_out || (!text && len) || (!ids && cap)) return VKM_ERR_INVALID_ARGUMENT;
    if (!t->n_vocab) return VKM_ERR_STATE;
    vkm_tok_ids out = {0};
    vkm_status st = VKM_OK;
    if (add_bos && t->bos >= 0 && !vkm_tok_ids_push(&out, t->bos)) st = VKM_ERR_OUT_OF_HOST_MEMORY;
    size_t start = 0, i = 0;
    bool any = false; /* a special token could match somewhere */
    for (uint32_t k = 0; k < t->n_specials && !any; k++)
        any = parse_special || t->pieces[t->specials[k]].type == VKM_TOKT_USER;
    while (st == VKM_OK && any && i < len) {
        int32_t sid;
        size_t sl = match_special(t, text + i, len - i, parse_special, &sid);
        if (!sl) {
            i++;
            continue;
        }
        uint8_t strip = t->pieces[sid].strip;
        size_t end = i;
        if (strip & VKM_TOK_LSTRIP)
            while (end > start && space_before(text + start, end - start)) end -= space_before(text + start, end - start);
        st = vkm_tok_encode_text(t, text + start, end - start, start == 0, &out);
        if (st == VKM_OK && !vkm_tok_ids_push(&out, sid)) st = VKM_ERR_OUT_OF_HOST_MEMORY;
        i += sl;
        if (strip & VKM_TOK_RSTRIP)
            while (i < len && space_after(text + i, len - i)) i += space_after(text + i, len - i);
        start = i;
    }
    if (st == VKM_OK) st = vkm_tok_encode_text(t, text + start, len - start, start == 0, &out);
    if (st == VKM_OK) {
        *n_out = out.n;
        if (cap && out.n) memcpy(ids, out.v, (out.n < cap ? out.n : cap) * sizeof *ids);
        if (out.n > cap) st = VKM_ERR_LIMIT;
    }
    free(out.v);
    return st;
}
