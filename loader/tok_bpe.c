/*
 * tok_bpe.c — BPE by merge rank (Hugging Face tokenizer.json "BPE", GGUF "gpt2"): start from
 * the tokens of single characters (byte-level: of single bytes; else with <0xNN> byte fallback
 * or unk for characters not in the vocabulary) and repeatedly apply the merge of lowest rank,
 * leftmost on ties, until none applies.
 */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"
#include "unicode.h"

typedef struct sym {
    int32_t id;
    int32_t prev, next;
    bool gone; /* merged into its left neighbour                                          */
    bool unk;
} sym;

static bool before(const vkm_tok_cand *a, const vkm_tok_cand *b)
{
    return a->key < b->key || (a->key == b->key && a->left < b->left);
}

bool vkm_tok_heap_push(vkm_tok_heap *h, vkm_tok_cand c)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        vkm_tok_cand *v = realloc(h->v, cap * sizeof *v);
        if (!v) return false;
        h->v = v;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0 && before(&c, &h->v[(i - 1) / 2])) {
        h->v[i] = h->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->v[i] = c;
    return true;
}

vkm_tok_cand vkm_tok_heap_pop(vkm_tok_heap *h)
{
    vkm_tok_cand top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const vkm_tok_cand *best = &last;
        if (l < h->n && before(&h->v[l], best)) m = l, best = &h->v[l];
        if (r < h->n && before(&h->v[r], best)) m = r;
        if (m == i) break;
        h->v[i] = h->v[m];
        i = m;
    }
    if (h->n) h->v[i] = last;
    return top;
}

/* Queues the merge of symbols l and r if there is one (a, b: their tokens at this time). */
static bool try_pair(const vkm_tokenizer *t, const sym *sy, int32_t l, int32_t r, vkm_tok_heap *h)
{
    if (l < 0 || r < 0) return true;
    const vkm_tok_merge *m = vkm_tok_merge_find(t, sy[l].id, sy[r].id);
    if (!m) return true;
    return vkm_tok_heap_push(h, (vkm_tok_cand){m->rank, (uint32_t)l, (uint32_t)r, sy[l].id, sy[r].id, m->id});
}

typedef struct syms {
    sym *v;
    int32_t n;
} syms;

static void add_sym(syms *s, int32_t id, bool unk)
{
    s->v[s->n] = (sym){id, s->n - 1, s->n + 1, false, unk};
    s->n++;
}

/* The initial symbols: one per byte (byte-level) or per character. */
static void initial(const vkm_tokenizer *t, const char *s, size_t n, syms *out)
{
    if (t->byte_level) {
        for (size_t i = 0; i < n; i++) {
            int32_t id = t->char_tok[(uint8_t)s[i]];
            if (id >= 0) add_sym(out, id, false); /* a byte with no token is dropped (as HF) */
        }
        return;
    }
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = vkm_utf8_decode((const uint8_t *)s + i, n - i, &cp);
        if (!k) k = 1;
        int32_t id = vkm_tok_find(t, s + i, k);
        if (id >= 0) {
            add_sym(out, id, false);
        } else {
            bool bytes = t->byte_fallback;
            for (size_t j = 0; bytes && j < k; j++) bytes = t->byte_tok[(uint8_t)s[i + j]] >= 0;
            if (bytes) {
                for (size_t j = 0; j < k; j++) add_sym(out, t->byte_tok[(uint8_t)s[i + j]], false);
            } else if (t->unk >= 0 && !(t->fuse_unk && out->n && out->v[out->n - 1].unk)) {
                add_sym(out, t->unk, true);
            }
        }
        i += k;
    }
}

/* With ignore_merges, a pre-token that is a whole token is that token (-1: it is not; -2: out
 * of memory). */
static int32_t whole_token(const vkm_tokenizer *t, const char *s, size_t n)
{
    if (!t->byte_level) return vkm_tok_find(t, s, n);
    char small[512], *buf = 2 * n <= sizeof small ? small : malloc(2 * n);
    if (!buf) return -2;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) m += vkm_utf8_encode(vkm_bytelevel_char((uint8_t)s[i]), (uint8_t *)buf + m);
    int32_t id = vkm_tok_find(t, buf, m);
    if (buf != small) free(buf);
    return id;
}

vkm_status vkm_tok_bpe_encode(const vkm_tokenizer *t, const char *s, size_t n, vkm_tok_ids *out)
{
    if (n == 0) return VKM_OK;
    if (n > INT32_MAX / 4) return VKM_ERR_LIMIT;
    if (t->ignore_merges) {
        int32_t id = whole_token(t, s, n);
        if (id == -2) return VKM_ERR_OUT_OF_HOST_MEMORY;
        if (id >= 0) return vkm_tok_ids_push(out, id) ? VKM_OK : VKM_ERR_OUT_OF_HOST_MEMORY;
    }
    syms sy = {malloc(n * sizeof *sy.v), 0};
    vkm_tok_heap h = {0};
    vkm_status st = VKM_ERR_OUT_OF_HOST_MEMORY;
    if (!sy.v) goto done;
    initial(t, s, n, &sy);
    if (sy.n == 0) {
        st = VKM_OK;
        goto done;
    }
    sy.v[sy.n - 1].next = -1;
    for (int32_t i = 0; i + 1 < sy.n; i++)
        if (!try_pair(t, sy.v, i, i + 1, &h)) goto done;
    while (h.n) {
        vkm_tok_cand c = vkm_tok_heap_pop(&h);
        sym *l = &sy.v[c.left], *r = &sy.v[c.right];
        if (l->gone || r->gone || l->next != (int32_t)c.right || l->id != c.a || r->id != c.b)
            continue; /* stale */
        l->id = c.id;
        l->unk = false;
        r->gone = true;
        l->next = r->next;
        if (l->next >= 0) sy.v[l->next].prev = (int32_t)c.left;
        if (!try_pair(t, sy.v, l->prev, (int32_t)c.left, &h) ||
            !try_pair(t, sy.v, (int32_t)c.left, l->next, &h))
            goto done;
    }
    for (int32_t i = 0; i >= 0; i = sy.v[i].next)
        if (!vkm_tok_ids_push(out, sy.v[i].id)) goto done;
    st = VKM_OK;
done:
    free(sy.v);
    free(h.v);
    return st;
}
