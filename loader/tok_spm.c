/*
 * tok_spm.c — SentencePiece BPE encoding (tokenizer.model, GGUF "llama"): start from single
 * characters and repeatedly join the adjacent pair whose joined text is a piece of the vocabulary
 * with the highest score (leftmost on ties); then map each symbol to its piece, or to its
 * <0xNN> byte tokens (byte fallback), or to unk (consecutive unknowns fused, as SentencePiece).
 */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"
#include "unicode.h"

typedef struct sym {
    uint32_t off, n; /* bytes of the input; n == 0 once joined into its left neighbour   */
    int32_t prev, next;
} sym;

/* Pieces SentencePiece may join into (its "pieces_" map): normal, user-defined, unused. */
static bool joinable(int type)
{
    return type == VKM_TOKT_NORMAL || type == VKM_TOKT_USER || type == VKM_TOKT_UNUSED;
}

/* Queues the join of symbols l and r if it makes a piece (a: the joined length then). */
static bool try_pair(const vkm_tokenizer *t, const char *s, const sym *sy, int32_t l, int32_t r,
                     vkm_tok_heap *h)
{
    if (l < 0 || r < 0) return true;
    uint32_t size = sy[l].n + sy[r].n;
    int32_t id = vkm_tok_find(t, s + sy[l].off, size);
    if (id < 0 || !joinable(t->pieces[id].type)) return true;
    return vkm_tok_heap_push(h, (vkm_tok_cand){-(double)t->pieces[id].score, (uint32_t)l, (uint32_t)r,
                                               (int32_t)size, 0, id});
}

vkm_status vkm_tok_spm_encode(const vkm_tokenizer *t, const char *s, size_t n, vkm_tok_ids *out)
{
    if (n == 0) return VKM_OK;
    if (n > INT32_MAX) return VKM_ERR_LIMIT;
    sym *sy = malloc(n * sizeof *sy);
    vkm_tok_heap h = {0};
    vkm_status st = VKM_ERR_OUT_OF_HOST_MEMORY;
    if (!sy) goto done;
    int32_t ns = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = vkm_utf8_decode((const uint8_t *)s + i, n - i, &cp);
        if (!k) k = 1; /* not reached after sanitising; one byte is one symbol */
        sy[ns] = (sym){(uint32_t)i, (uint32_t)k, ns - 1, ns + 1};
        ns++;
        i += k;
    }
    sy[ns - 1].next = -1;
    for (int32_t i = 0; i + 1 < ns; i++)
        if (!try_pair(t, s, sy, i, i + 1, &h)) goto done;
    while (h.n) {
        vkm_tok_cand c = vkm_tok_heap_pop(&h);
        sym *l = &sy[c.left], *r = &sy[c.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != (uint32_t)c.a) continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (l->next >= 0) sy[l->next].prev = (int32_t)c.left;
        if (!try_pair(t, s, sy, l->prev, (int32_t)c.left, &h) ||
            !try_pair(t, s, sy, (int32_t)c.left, l->next, &h))
            goto done;
    }
    bool prev_unk = false;
    for (int32_t i = 0; i >= 0; i = sy[i].next) {
        const char *p = s + sy[i].off;
        int32_t id = vkm_tok_find(t, p, sy[i].n);
        if (id >= 0) {
            if (!vkm_tok_ids_push(out, id)) goto done;
            prev_unk = false;
            continue;
        }
        bool bytes = t->byte_fallback;
        for (uint32_t k = 0; bytes && k < sy[i].n; k++) bytes = t->byte_tok[(uint8_t)p[k]] >= 0;
        if (bytes) {
            for (uint32_t k = 0; k < sy[i].n; k++)
                if (!vkm_tok_ids_push(out, t->byte_tok[(uint8_t)p[k]])) goto done;
            prev_unk = false;
        } else if (t->unk >= 0 && !(prev_unk && t->fuse_unk)) {
            if (!vkm_tok_ids_push(out, t->unk)) goto done;
            prev_unk = true;
        }
    }
    st = VKM_OK;
done:
    free(sy);
    free(h.v);
    return st;
}
