/*
 * tok_decode.c — ids back to text: each token's bytes (U+2581 -> ' ', <0xNN> -> the byte,
 * GPT-2 characters -> their bytes, control tokens -> nothing, unk -> " \u2047 "), the one
 * leading space of the dummy prefix dropped, and the bytes repaired into valid UTF-8 (per byte
 * for SentencePiece-style vocabularies, per maximal subpart for byte-level ones). The streaming
 * decoder holds back an incomplete UTF-8 sequence until the bytes that complete it arrive.
 */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"
#include "unicode.h"

static const char unk_surface[] = " \xE2\x81\x87 "; /* SentencePiece's default " ⁇ " */

typedef struct out {
    char *p;
    size_t n, cap;
    bool oom;
} out;

static void put(out *o, const void *s, size_t n)
{
    if (o->oom || n == 0) return;
    if (o->n + n > o->cap) {
        size_t cap = o->cap ? o->cap : 64;
        while (cap < o->n + n) cap *= 2;
        char *p = realloc(o->p, cap);
        if (!p) {
            o->oom = true;
            return;
        }
        o->p = p;
        o->cap = cap;
    }
    memcpy(o->p + o->n, s, n);
    o->n += n;
}

/* Appends the bytes of token id. for_text: as decoded text (control tokens vanish, unk shows
 * as " ⁇ "); else the piece as written. *at_start (decoding only): no text yet, so a leading
 * dummy-prefix space is to be dropped; cleared by any token that is not a control token. */
static void token_bytes(const vkm_tokenizer *t, int32_t id, bool for_text, bool *at_start, out *o)
{
    const vkm_tok_piece *p = &t->pieces[id];
    const char *s = t->arena + p->off;
    bool first = at_start && *at_start;
    if (for_text && p->type == VKM_TOKT_CONTROL) return;
    if (at_start) *at_start = false;
    if (p->type == VKM_TOKT_BYTE) {
        for (int b = 0; b < 256; b++)
            if (t->byte_tok[b] == id) {
                uint8_t c = (uint8_t)b;
                put(o, &c, 1);
                return;
            }
        put(o, s, p->len); /* a second <0xNN> token for the same byte: as written */
        return;
    }
    if (for_text && (p->type == VKM_TOKT_UNKNOWN || id == t->unk) && !t->byte_level) {
        put(o, unk_surface, sizeof unk_surface - 1);
        return;
    }
    if (p->type == VKM_TOKT_CONTROL || p->type == VKM_TOKT_UNKNOWN || p->type == VKM_TOKT_USER) {
        put(o, s, p->len);
        return;
    }
    if (t->byte_level) {
        for (size_t i = 0; i < p->len;) {
            uint32_t cp;
            size_t k = vkm_utf8_decode((const uint8_t *)s + i, p->len - i, &cp);
            int b = k ? vkm_bytelevel_byte(cp) : -1;
            if (!k) k = 1;
            if (b >= 0) {
                uint8_t c = (uint8_t)b;
                put(o, &c, 1);
            } else {
                put(o, s + i, k); /* not a byte-level character: as written */
            }
            i += k;
        }
        return;
    }
    size_t i = 0;
    if (first && t->dec_strip) {
        if (t->dec_spaces && p->len >= 3 && !memcmp(s, "\xE2\x96\x81", 3)) i = 3;
        else if (p->len >= 1 && s[0] == ' ') i = 1;
    }
    while (i < p->len) {
        if (t->dec_spaces && i + 3 <= p->len && !memcmp(s + i, "\xE2\x96\x81", 3)) {
            put(o, " ", 1);
            i += 3;
        } else {
            put(o, s + i, 1);
            i++;
        }
    }
}

static vkm_utf8_repair_mode repair_mode(const vkm_tokenizer *t)
{
    return t->byte_level ? VKM_UTF8_MAXIMAL : VKM_UTF8_PER_BYTE;
}

vkm_status vkm_detokenize(const vkm_tokenizer *t, const int32_t *ids, size_t n, char *buf,
                          size_t cap, size_t *n_out)
{
    if (n_out) *n_out = 0;
    if (!t || !n_out || (!ids && n) || (!buf && cap)) return VKM_ERR_INVALID_ARGUMENT;
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= t->n_vocab) return VKM_ERR_INVALID_ARGUMENT;
    out o = {0};
    bool at_start = true;
    for (size_t i = 0; i < n; i++) token_bytes(t, ids[i], true, &at_start, &o);
    if (o.oom) {
        free(o.p);
        return VKM_ERR_OUT_OF_HOST_MEMORY;
    }
    size_t need;
    vkm_utf8_repair((const uint8_t *)o.p, o.n, true, repair_mode(t), (uint8_t *)buf, cap, &need);
    free(o.p);
    *n_out = need;
    if (need < cap) buf[need] = 0;
    return need > cap ? VKM_ERR_LIMIT : VKM_OK;
}

vkm_status vkm_token_piece(const vkm_tokenizer *t, int32_t id, char *buf, size_t cap,
                           size_t *n_out)
{
    if (n_out) *n_out = 0;
    if (!t || !n_out || (!buf && cap) || id < 0 || id >= t->n_vocab) return VKM_ERR_INVALID_ARGUMENT;
    out o = {0};
    token_bytes(t, id, false, NULL, &o);
    if (o.oom) {
        free(o.p);
        return VKM_ERR_OUT_OF_HOST_MEMORY;
    }
    *n_out = o.n;
    if (cap && o.n) memcpy(buf, o.p, o.n < cap ? o.n : cap);
    if (o.n < cap) buf[o.n] = 0;
    free(o.p);
    return o.n > cap ? VKM_ERR_LIMIT : VKM_OK;
}

/* ---- streaming ---------------------------------------------------------------------------- */
void vkm_detok_init(vkm_detok *d, const vkm_tokenizer *t)
{
    if (!d) return;
    memset(d, 0, sizeof *d);
    d->tok = t;
    d->at_start = true;
}

/* Repairs pending + more; with room, writes the complete part to buf and keeps the rest. */
static vkm_status emit(vkm_detok *d, const char *more, size_t n_more, bool final, bool at_start,
                       char *buf, size_t cap, size_t *n_out)
{
    out o = {0};
    put(&o, d->pending, d->n_pending);
    put(&o, more, n_more);
    if (o.oom) {
        free(o.p);
        return VKM_ERR_OUT_OF_HOST_MEMORY;
    }
    size_t need, used = vkm_utf8_repair((const uint8_t *)o.p, o.n, final, repair_mode(d->tok), NULL, 0, &need);
    *n_out = need;
    if (need > cap) {
        free(o.p);
        return VKM_ERR_LIMIT; /* nothing consumed: call again with a larger buffer */
    }
    vkm_utf8_repair((const uint8_t *)o.p, o.n, final, repair_mode(d->tok), (uint8_t *)buf, cap, &need);
    if (need < cap) buf[need] = 0;
    d->n_pending = o.n - used; /* at most 3 bytes: an incomplete sequence */
    if (d->n_pending) memcpy(d->pending, o.p + used, d->n_pending);
    d->at_start = at_start;
    free(o.p);
    return VKM_OK;
}

vkm_status vkm_detok_push(vkm_detok *d, int32_t id, char *buf, size_t cap, size_t *n_out)
{
    if (n_out) *n_out = 0;
    if (!d || !d->tok || !n_out || (!buf && cap) || id < 0 || id >= d->tok->n_vocab)
        return VKM_ERR_INVALID_ARGUMENT;
    out o = {0};
    bool at_start = d->at_start;
    token_bytes(d->tok, id, true, &at_start, &o);
    vkm_status st = o.oom ? VKM_ERR_OUT_OF_HOST_MEMORY : emit(d, o.p, o.n, false, at_start, buf, cap, n_out);
    free(o.p);
    return st;
}

vkm_status vkm_detok_flush(vkm_detok *d, char *buf, size_t cap, size_t *n_out)
{
    if (n_out) *n_out = 0;
    if (!d || !d->tok || !n_out || (!buf && cap)) return VKM_ERR_INVALID_ARGUMENT;
    return emit(d, NULL, 0, true, d->at_start, buf, cap, n_out);
}
