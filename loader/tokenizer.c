/*
 * tokenizer.c — the tokenizer's common part: building the vocabulary (pieces, text -> id index,
 * merge table, byte tokens, special tokens), loading from any source file, and the public
 * encode entry point that splits out special tokens, normalises each stretch of text between
 * them and hands it to the merge model.
 */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"
#include "unicode.h"

/* ---- building ----------------------------------------------------------------------------- */
vkm_tokenizer *vkm_tok_new(void)
{
    vkm_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->bos = t->eos = t->unk = t->pad = -1;
    for (int i = 0; i < 256; i++) t->byte_tok[i] = t->char_tok[i] = -1;
    return t;
}

void vkm_tokenizer_free(vkm_tokenizer *t)
{
    if (!t) return;
    free(t->pieces);
    free(t->arena);
    free(t->index);
    free(t->merges);
    free(t->specials);
    free(t);
}

vkm_status vkm_tok_resize(vkm_tokenizer *t, int64_t n_vocab, vkm_err *e)
{
    if (n_vocab <= 0) return vkm_fail(e, VKM_ERR_FORMAT, "the vocabulary is empty");
    if (n_vocab > VKM_TOK_MAX_VOCAB)
        return vkm_fail(e, VKM_ERR_LIMIT, "%lld tokens, more than the %d allowed",
                        (long long)n_vocab, VKM_TOK_MAX_VOCAB);
    free(t->pieces);
    t->pieces = calloc((size_t)n_vocab, sizeof *t->pieces);
    if (!t->pieces) return vkm_fail(e, VKM_ERR_OUT_OF_HOST_MEMORY, "out of memory for the vocabulary");
    t->n_vocab = (int32_t)n_vocab;
    return VKM_OK;
}

vkm_status vkm_tok_set(vkm_tokenizer *t, int32_t id, const char *s, size_t n, float score,
                       int type, vkm_err *e)
{
    if (id < 0 || id >= t->n_vocab)
        return vkm_fail(e, VKM_ERR_FORMAT, "token id %d outside the vocabulary of %d", id,
                        t->n_vocab);
    if (n > VKM_TOK_MAX_PIECE)
        return vkm_fail(e, VKM_ERR_LIMIT, "token %d is %zu bytes long (at most %d)", id, n,
                        VKM_TOK_MAX_PIECE);
    if (type == 0) type = VKM_TOKT_NORMAL; /* GGUF "undefined" */
    if (type < VKM_TOKT_NORMAL || type > VKM_TOKT_BYTE)
        return vkm_fail(e, VKM_ERR_FORMAT, "token %d has the unknown type %d", id, type);
    if (t->arena_len + n + 1 > t->arena_cap) {
        size_t cap = t->arena_cap ? t->arena_cap : 4096;
        while (cap < t->arena_len + n + 1) cap *= 2;
        if (cap > UINT32_MAX) return vkm_fail(e, VKM_ERR_LIMIT, "token texts over 4 GiB");
        char *a = realloc(t->arena, cap);
        if (!a) return vkm_fail(e, VKM_ERR_OUT_OF_HOST_MEMORY, "out of memory for token texts");
        t->arena = a;
        t->arena_cap = cap;
    }
    if (n) memcpy(t->arena + t->arena_len, s, n);
    t->arena[t->arena_len + n] = 0;
    t->pieces[id] = (vkm_tok_piece){(uint32_t)t->arena_len, (uint32_t)n, score, (uint8_t)type, 0};
    t->arena_len += n + 1;
    return VKM_OK;
}

bool vkm_tok_add_norm(vkm_tokenizer *t, vkm_tok_norm_kind kind, const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    if (t->n_norm >= VKM_TOK_MAX_NORM || na >= sizeof t->norm[0].a || nb >= sizeof t->norm[0].b)
        return false;
    vkm_tok_norm *op = &t->norm[t->n_norm++];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    op->na = (uint8_t)na;
    memcpy(op->a, a, na);
    op->nb = (uint8_t)nb;
    memcpy(op->b, b, nb);
    return true;
}

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static uint32_t table_size(uint64_t n)
{
    uint32_t sz = 16;
    while (sz < 2 * n) sz *= 2;
    return sz;
}

vkm_status vkm_tok_index(vkm_tokenizer *t, vkm_err *e)
{
    for (int32_t i = 0; i < t->n_vocab; i++)
        if (t->pieces[i].type == 0) return vkm_fail(e, VKM_ERR_FORMAT, "token id %d has no text", i);
    uint32_t sz = table_size((uint64_t)t->n_vocab);
    free(t->index);
    t->index = malloc(sz * sizeof *t->index);
    if (!t->index) return vkm_fail(e, VKM_ERR_OUT_OF_HOST_MEMORY, "out of memory for the index");
    memset(t->index, 0xff, sz * sizeof *t->index);
    t->index_mask = sz - 1;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        const vkm_tok_piece *p = &t->pieces[id];
        uint32_t h = (uint32_t)hash_bytes(t->arena + p->off, p->len) & t->index_mask;
        for (;; h = (h + 1) & t->index_mask) {
            int32_t o = t->index[h];
            if (o < 0) {
                t->index[h] = id;
                break;
            }
            if (t->pieces[o].len == p->len && !memcmp(vkm_tok_text(t, o), t->arena + p->off, p->len)) {
                t->index[h] = id; /* the last of equal texts wins (as llama.cpp) */
                break;
            }
        }
    }
    return VKM_OK;
}

int32_t vkm_tok_find(const vkm_tokenizer *t, const char *s, size_t n)
{
    if (!t->index) return -1;
    uint32_t h = (uint32_t)hash_bytes(s, n) & t->index_mask;
    for (;; h = (h + 1) & t->index_mask) {
        int32_t o = t->index[h];
        if (o < 0) return -1;
        if (t->pieces[o].len == n && !memcmp(vkm_tok_text(t, o), s, n)) return o;
    }
}

vkm_status vkm_tok_merges_reserve(vkm_tokenizer *t, uint64_t n, vkm_err *e)
{
    if (n > (uint64_t)VKM_TOK_MAX_VOCAB * 4)
        return vkm_fail(e, VKM_ERR_LIMIT, "%llu merges, too many", (unsigned long long)n);
    uint32_t sz = table_size(n);
    free(t->merges);
    t->merges = malloc(sz * sizeof *t->merges);
    if (!t->merges) return vkm_fail(e, VKM_ERR_OUT_OF_HOST_MEMORY, "out of memory for merges");
    for (uint32_t i = 0; i < sz; i++) t->merges[i] = (vkm_tok_merge){0, -1, -1};
    t->merge_mask = sz - 1;
    t->n_merges = 0;
    return VKM_OK;
}

static uint32_t merge_slot(uint64_t key, uint32_t mask)
{
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    return (uint32_t)(h >> 32) & mask;
}

const vkm_tok_merge *vkm_tok_merge_find(const vkm_tokenizer *t, int32_t left, int32_t right)
{
    if (!t->merges) return NULL;
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    for (uint32_t h = merge_slot(key, t->merge_mask);; h = (h + 1) & t->merge_mask) {
        const vkm_tok_merge *m = &t->merges[h];
        if (m->rank < 0) return NULL;
        if (m->key == key) return m;
    }
}

vkm_status vkm_tok_merge_add(vkm_tokenizer *t, const char *left, size_t nl, const char *right,
                             size_t nr, int32_t rank, const char *what, vkm_err *e)
{
    int32_t l = vkm_tok_find(t, left, nl), r = vkm_tok_find(t, right, nr);
    if (l < 0 || r < 0) {
        const char *bad = l < 0 ? left : right;
        size_t nb = l < 0 ? nl : nr;
        return vkm_fail(e, VKM_ERR_FORMAT, "%s (\"%.*s %.*s\"): \"%.*s\" is not in the vocabulary",
                        what, (int)nl, left, (int)nr, right, (int)(nb > 64 ? 64 : nb), bad);
    }
    if (nl + nr > VKM_TOK_MAX_PIECE)
        return vkm_fail(e, VKM_ERR_FORMAT, "%s: the merged token is too long", what);
    char small[256], *joined = nl + nr <= sizeof small ? small : malloc(nl + nr);
    if (!joined) return vkm_fail(e, VKM_ERR_OUT_OF_HOST_MEMORY, "out of memory");
    memcpy(joined, left, nl);
    memcpy(joined + nl, right, nr);
    int32_t id = vkm_tok_find(t, joined, nl + nr);
    if (joined != small) free(joined);
    if (id < 0)
        return vkm_fail(e, VKM_ERR_FORMAT, "%s: the merged token \"%.*s%.*s\" is not in the vocabulary",
                        what, (int)(nl > 64 ? 64 : nl), left, (int)(nr > 64 ? 64 : nr), right);
    if (t->n_merges >= (t->merge_mask + 1) / 2)
        return vkm_fail(e, VKM_ERR_LIMIT, "%s: more merges than reserved", what);
    uint64_t key = ((uint64_t)(uint32_t)l << 32) | (uint32_t)r;
    for (uint32_t h = merge_slot(key, t->merge_mask);; h = (h + 1) & t->merge_mask) {
        vkm_tok_merge *m = &t->merges[h];
        if (m->rank < 0) {
            *m = (vkm_tok_merge){key, rank, id};
            t->n_merges++;
            return VKM_OK;
        }
        if (m->key == key) return VKM_OK; /* a repeated merge keeps its first rank */
    }
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* The byte of a "<0xNN>" text, or -1. */
static int byte_piece(const char *s, size_t n)
{
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int hi = hexval(s[3]), lo = hexval(s[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

/* Specials sort by first byte, then longest first, then id (keys precomputed: no context). */
typedef struct special_key {
    uint32_t key;
    int32_t id;
} special_key;

static int cmp_special(const void *a, const void *b)
{
    const special_key *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static bool is_special_type(int ty)
{
    return ty == VKM_TOKT_CONTROL || ty == VKM_TOKT_UNKNOWN || ty == VKM_TOKT_USER;
}

vkm_status vkm_tok_finish(vkm_tokenizer *t, vkm_err *e)
{
    /* byte tokens, and for byte-level vocabularies the token of each byte's character */
    for (int32_t id = 0; id < t->n_vocab; id++) {
        if (t->pieces[id].type != VKM_TOKT_BYTE) continue;
        int b = byte_piece(vkm_tok_text(t, id), t->pieces[id].len);
        if (b < 0)
            return vkm_fail(e, VKM_ERR_FORMAT, "byte token %d is \"%.16s\", not <0xNN>", id,
                            vkm_tok_text(t, id));
        if (t->byte_tok[b] < 0) t->byte_tok[b] = id;
    }
    if (t->byte_level)
        for (int b = 0; b < 256; b++) {
            uint8_t u[4];
            size_t n = vkm_utf8_encode(vkm_bytelevel_char((uint8_t)b), u);
            t->char_tok[b] = vkm_tok_find(t, (const char *)u, n);
        }
    /* special tokens: matched in the text before the model runs */
    uint32_t n = 0;
    for (int32_t id = 0; id < t->n_vocab; id++)
        if (is_special_type(t->pieces[id].type) && t->pieces[id].len) n++;
    free(t->specials);
    t->specials = malloc((n ? n : 1) * sizeof *t->specials);
    special_key *keys = malloc((n ? n : 1) * sizeof *keys);
    if (!t->specials || !keys) {
        free(keys);
        return vkm_fail(e, VKM_ERR_OUT_OF_HOST_MEMORY, "out of memory");
    }
    n = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        const vkm_tok_piece *p = &t->pieces[id];
        if (!is_special_type(p->type) || !p->len) continue;
        uint32_t first = (uint8_t)t->arena[p->off];
        keys[n++] = (special_key){(first << 24) | (0xFFFFFFu - p->len), id};
    }
    qsort(keys, n, sizeof *keys, cmp_special);
    for (uint32_t i = 0; i < n; i++) t->specials[i] = keys[i].id;
    free(keys);
    t->n_specials = n;
    for (uint32_t b = 0, k = 0; b <= 256; b++) {
        while (k < n && (uint8_t)vkm_tok_text(t, t->specials[k])[0] < b) k++;
        t->special_at[b] = k;
    }
    const struct { const char *name; int32_t id; } ids[] = {
        {"bos", t->bos}, {"eos", t->eos}, {"unk", t->unk}, {"pad", t->pad}};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        if (ids[i].id < -1 || ids[i].id >= t->n_vocab)
            return vkm_fail(e, VKM_ERR_FORMAT, "the %s token id %d is outside the vocabulary of %d",
                            ids[i].name, ids[i].id, t->n_vocab);
    return VKM_OK;
}

/* ---- loading ------------------------------------------------------------------------------ */
static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

static vkm_status load_gguf_file(vkm_tokenizer *t, const char *path, vkm_err *e)
{
    vkm_gguf g;
    memset(&g, 0, sizeof g);
    vkm_status s = vkm_gguf_open(path, &g, e);
    if (s != VKM_OK) return s;
    s = vkm_tok_load_gguf(t, &g, e);
    vkm_gguf_close(&g);
    if (s != VKM_OK) vkm_err_prefix(e, "%s", path);
    return s;
}

static vkm_status load_path(vkm_tokenizer *t, const char *path);

/* Loads one file, its kind told by its first bytes (GGUF magic, JSON object) or else taken to
 * be a SentencePiece model. */
static vkm_status load_file(vkm_tokenizer *t, const char *path, vkm_err *e)
{
    vkm_map m;
    vkm_status s = vkm_map_open(path, &m, e);
    if (s != VKM_OK) return s;
    size_t i = 0;
    while (i < m.size && (m.data[i] == ' ' || m.data[i] == '\n' || m.data[i] == '\r' || m.data[i] == '\t'))
        i++;
    bool gguf = m.size >= 4 && !memcmp(m.data, "GGUF", 4);
    bool json = (i < m.size && (m.data[i] == '{' || m.data[i] == '[')) || ends_with(path, ".json");
    const bool small = m.size < (1u << 20); /* a manifest is; a tokenizer.json seldom (not parsed twice) */
    vkm_map_close(&m);
    if (gguf) return load_gguf_file(t, path, e);
    char base[1024];
    if (json && small && vkm_manifest_sniff(path, base, sizeof base)) { /* a manifest: its base model's */
        if (!base[0] || vkm_manifest_sniff(base, NULL, 0))
            return vkm_fail(e, VKM_ERR_FORMAT, "%s: a manifest whose base is not a model", path);
        s = load_path(t, base);
        if (s != VKM_OK) vkm_err_prefix(e, "%s: base", path);
        return s;
    }
    if (json) return vkm_tok_load_json(t, path, e);
    return vkm_tok_load_spmodel(t, path, e);
}

/* Empties a tokenizer whose loading failed, keeping its message: it then encodes nothing
 * (VKM_ERR_STATE) instead of working on a half-built vocabulary. */
static vkm_status unusable(vkm_tokenizer *t, vkm_status s)
{
    if (s == VKM_OK) return s;
    vkm_err err = t->err;
    free(t->pieces);
    free(t->arena);
    free(t->index);
    free(t->merges);
    free(t->specials);
    vkm_tokenizer *fresh = vkm_tok_new();
    if (fresh) {
        *t = *fresh;
        free(fresh);
    } else {
        memset(t, 0, sizeof *t);
    }
    t->err = err;
    return s;
}

vkm_status vkm_tokenizer_load(const char *path, vkm_tokenizer **out)
{
    if (!out) return VKM_ERR_INVALID_ARGUMENT;
    *out = NULL;
    vkm_tokenizer *t = vkm_tok_new();
    if (!t) return VKM_ERR_OUT_OF_HOST_MEMORY;
    *out = t;
    return unusable(t, load_path(t, path));
}

static vkm_status load_path(vkm_tokenizer *t, const char *path)
{
    if (!path || !path[0])
        return vkm_fail(&t->err, VKM_ERR_INVALID_ARGUMENT, "vkm_tokenizer_load: no path");
    if (!vkm_is_dir(path)) return load_file(t, path, &t->err);
    static const char *const names[] = {"tokenizer.json", "tokenizer.model", "model.gguf"};
    char p[1100];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!vkm_path_join(p, sizeof p, path, names[i]))
            return vkm_fail(&t->err, VKM_ERR_INVALID_ARGUMENT, "%s: path too long", path);
        if (vkm_exists(p)) return load_file(t, p, &t->err);
    }
    return vkm_fail(&t->err, VKM_ERR_NOT_FOUND,
                    "%s: no tokenizer.json, tokenizer.model or model.gguf in this folder", path);
}

vkm_status vkm_tok_from_gguf(const vkm_gguf *g, vkm_tokenizer **out, vkm_err *e)
{
    if (!out || !g) return vkm_fail(e, VKM_ERR_INVALID_ARGUMENT, "vkm_tok_from_gguf: NULL argument");
    *out = NULL;
    vkm_tokenizer *t = vkm_tok_new();
    if (!t) return vkm_fail(e, VKM_ERR_OUT_OF_HOST_MEMORY, "out of memory");
    vkm_status s = vkm_tok_load_gguf(t, g, e);
    if (s != VKM_OK) {
        vkm_err_prefix(e, "%s", g->path);
        vkm_tokenizer_free(t);
        return s;
    }
    *out = t;
    return VKM_OK;
}

/* ---- accessors ---------------------------------------------------------------------------- */
const char *vkm_tokenizer_errmsg(const vkm_tokenizer *t)
{
    if (!t) return "no tokenizer (NULL handle)";
    return t->err.msg;
}

int32_t vkm_tokenizer_n_vocab(const vkm_tokenizer *t) { return t ? t->n_vocab : 0; }
int32_t vkm_tokenizer_bos(const vkm_tokenizer *t) { return t ? t->bos : -1; }
int32_t vkm_tokenizer_eos(const vkm_tokenizer *t) { return t ? t->eos : -1; }
bool vkm_tokenizer_adds_bos(const vkm_tokenizer *t) { return t && t->add_bos && t->bos >= 0; }

const char *vkm_tokenizer_kind(const vkm_tokenizer *t)
{
    if (!t || !t->n_vocab) return "none";
    if (t->model == VKM_TOK_SPM) return "spm";
    return t->byte_level ? "byte-level-bpe" : "bpe";
}

vkm_token_type vkm_tokenizer_token_type(const vkm_tokenizer *t, int32_t id)
{
    if (!t || id < 0 || id >= t->n_vocab) return VKM_TOKEN_INVALID;
    switch (t->pieces[id].type) {
    case VKM_TOKT_CONTROL: return VKM_TOKEN_CONTROL;
    case VKM_TOKT_UNKNOWN: return VKM_TOKEN_UNKNOWN;
    case VKM_TOKT_USER: return VKM_TOKEN_USER;
    case VKM_TOKT_BYTE: return VKM_TOKEN_BYTE;
    case VKM_TOKT_UNUSED: return VKM_TOKEN_UNUSED;
    default: return VKM_TOKEN_NORMAL;
    }
}
