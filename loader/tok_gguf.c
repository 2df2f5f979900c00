/*
 * tok_gguf.c — the tokenizer of a GGUF file (llama.cpp's tokenizer.ggml.* keys): "llama"
 * (SentencePiece BPE by score with byte fallback) and "gpt2" (byte-level BPE by merge rank,
 * with the pre-tokenizer named by tokenizer.ggml.pre). A "llama" GGUF usually cannot say that
 * its SentencePiece model collapses runs of spaces (remove_extra_whitespaces; stories260K's
 * does): it then encodes like llama.cpp, keeping every space. The key llama.cpp defines for
 * T5-style vocabularies, tokenizer.ggml.remove_extra_whitespaces, is honoured when present
 * (llama.cpp's own SentencePiece path ignores it; no converter writes it for "llama").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

/* An optional array of integers (ints) or floats of the same length as the token list. */
static vkm_status side_array(const vkm_gguf *g, const char *key, bool ints, uint64_t n_tokens,
                             const vkm_gguf_arr **out, vkm_err *e)
{
    *out = NULL;
    const vkm_gguf_kv *kv = vkm_gguf_find(g, key);
    if (!kv) return VKM_OK;
    int64_t i;
    double d;
    if (kv->type != VKM_GGUF_ARRAY ||
        (kv->v.a.n && !(ints ? vkm_gguf_arr_i64(&kv->v.a, 0, &i) : vkm_gguf_arr_f64(&kv->v.a, 0, &d))))
        return vkm_fail(e, VKM_ERR_FORMAT, "%s is not an array of %s", key, ints ? "integers" : "floats");
    if (kv->v.a.n != n_tokens)
        return vkm_fail(e, VKM_ERR_FORMAT, "%s has %llu entries but tokenizer.ggml.tokens has %llu",
                        key, (unsigned long long)kv->v.a.n, (unsigned long long)n_tokens);
    *out = &kv->v.a;
    return VKM_OK;
}

/* A token id key: -1 when absent; an error when present but not a valid id. */
static vkm_status id_key(const vkm_gguf *g, const char *key, int32_t dflt, int32_t n_vocab,
                         int32_t *out, vkm_err *e)
{
    *out = dflt;
    if (!vkm_gguf_find(g, key)) return VKM_OK;
    int64_t v;
    if (!vkm_gguf_get_i64(g, key, &v))
        return vkm_fail(e, VKM_ERR_FORMAT, "%s is not an integer", key);
    if (v == -1 || v == 0xFFFFFFFFll) { /* "none" as some writers say it */
        *out = -1;
        return VKM_OK;
    }
    if (v < 0 || v >= n_vocab)
        return vkm_fail(e, VKM_ERR_FORMAT, "%s = %lld is outside the vocabulary of %d", key,
                        (long long)v, n_vocab);
    *out = (int32_t)v;
    return VKM_OK;
}

/* tokenizer.ggml.pre -> pre-tokenizer steps (llama.cpp's names). */
static vkm_status set_pre(vkm_tokenizer *t, const char *pre, vkm_err *e)
{
    if (!pre[0] || !strcmp(pre, "default") || !strcmp(pre, "gpt2") || !strcmp(pre, "gpt-2")) {
        t->pre[t->n_pre++] = VKM_TOK_PRE_GPT2;
    } else if (!strcmp(pre, "smollm")) {
        t->pre[t->n_pre++] = VKM_TOK_PRE_DIGITS;
        t->pre[t->n_pre++] = VKM_TOK_PRE_GPT2;
    } else if (!strcmp(pre, "llama3") || !strcmp(pre, "llama-v3") || !strcmp(pre, "llama-bpe")) {
        t->pre[t->n_pre++] = VKM_TOK_PRE_LLAMA3;
        t->ignore_merges = true;
    } else if (!strcmp(pre, "qwen2")) {
        t->pre[t->n_pre++] = VKM_TOK_PRE_QWEN2;
    } else {
        return vkm_fail(e, VKM_ERR_UNSUPPORTED,
                        "tokenizer.ggml.pre = \"%s\" is not supported (supported: default, gpt2, "
                        "smollm, llama3, llama-bpe, qwen2)", pre);
    }
    return VKM_OK;
}

vkm_status vkm_tok_load_gguf(vkm_tokenizer *t, const vkm_gguf *g, vkm_err *e)
{
    char model[64];
    if (!vkm_gguf_find(g, "tokenizer.ggml.model"))
        return vkm_fail(e, VKM_ERR_NOT_FOUND, "no tokenizer (tokenizer.ggml.model is missing)");
    if (!vkm_gguf_get_str(g, "tokenizer.ggml.model", model, sizeof model))
        return vkm_fail(e, VKM_ERR_FORMAT, "tokenizer.ggml.model is not a short string");
    bool spm = !strcmp(model, "llama"), bpe = !strcmp(model, "gpt2");
    if (!strcmp(model, "none") || !strcmp(model, "no_vocab"))
        return vkm_fail(e, VKM_ERR_NOT_FOUND, "the file has no vocabulary (tokenizer.ggml.model = \"%s\")", model);
    if (!spm && !bpe)
        return vkm_fail(e, VKM_ERR_UNSUPPORTED,
                        "tokenizer.ggml.model = \"%s\" is not supported (llama, gpt2 are)", model);
    snprintf(t->source, sizeof t->source, "gguf");

    const vkm_gguf_kv *tk = vkm_gguf_find(g, "tokenizer.ggml.tokens");
    if (!tk) return vkm_fail(e, VKM_ERR_FORMAT, "tokenizer.ggml.tokens is missing");
    if (tk->type != VKM_GGUF_ARRAY || tk->v.a.elem_type != VKM_GGUF_STRING)
        return vkm_fail(e, VKM_ERR_FORMAT, "tokenizer.ggml.tokens is not an array of strings");
    const vkm_gguf_arr *tokens = &tk->v.a, *scores, *types;
    vkm_status s;
    if ((s = vkm_tok_resize(t, (int64_t)tokens->n, e)) != VKM_OK) return s;
    if ((s = side_array(g, "tokenizer.ggml.scores", false, tokens->n, &scores, e)) != VKM_OK) return s;
    if ((s = side_array(g, "tokenizer.ggml.token_type", true, tokens->n, &types, e)) != VKM_OK) return s;
    for (uint64_t i = 0; i < tokens->n; i++) {
        double score = 0;
        int64_t type = VKM_TOKT_NORMAL;
        if (scores && !vkm_gguf_arr_f64(scores, i, &score)) score = 0;
        if (types && !vkm_gguf_arr_i64(types, i, &type)) type = -1;
        if (type < 0 || type > VKM_TOKT_BYTE)
            return vkm_fail(e, VKM_ERR_FORMAT, "tokenizer.ggml.token_type[%llu] = %lld is not a token type",
                            (unsigned long long)i, (long long)type);
        s = vkm_tok_set(t, (int32_t)i, tokens->strs[i].p, tokens->strs[i].n, (float)score, (int)type, e);
        if (s != VKM_OK) {
            vkm_err_prefix(e, "tokenizer.ggml.tokens[%llu]", (unsigned long long)i);
            return s;
        }
    }
    if ((s = vkm_tok_index(t, e)) != VKM_OK) return s;

    int32_t n = t->n_vocab;
    if ((s = id_key(g, "tokenizer.ggml.bos_token_id", spm ? 1 : -1, n, &t->bos, e)) ||
        (s = id_key(g, "tokenizer.ggml.eos_token_id", spm ? 2 : -1, n, &t->eos, e)) ||
        (s = id_key(g, "tokenizer.ggml.unknown_token_id", spm ? 0 : -1, n, &t->unk, e)) ||
        (s = id_key(g, "tokenizer.ggml.padding_token_id", -1, n, &t->pad, e)))
        return s;
    t->add_bos = spm;
    vkm_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &t->add_bos);
    vkm_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &t->add_eos);

    if (spm) {
        bool prefix = true, collapse = false;
        vkm_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &prefix);
        vkm_gguf_get_bool(g, "tokenizer.ggml.remove_extra_whitespaces", &collapse);
        t->model = VKM_TOK_SPM;
        if (collapse) vkm_tok_add_norm(t, VKM_TOK_NORM_COLLAPSE, "", "");
        if (prefix) vkm_tok_add_norm(t, VKM_TOK_NORM_PREPEND, "\xE2\x96\x81", "");
        vkm_tok_add_norm(t, VKM_TOK_NORM_REPLACE, " ", "\xE2\x96\x81");
        t->byte_fallback = t->fuse_unk = true;
        t->dec_spaces = true;
        t->dec_strip = prefix;
        if (t->unk >= 0 && t->pieces[t->unk].type == VKM_TOKT_NORMAL) t->pieces[t->unk].type = VKM_TOKT_UNKNOWN;
        return vkm_tok_finish(t, e);
    }

    t->model = VKM_TOK_BPE;
    t->byte_level = true;
    char pre[64] = "";
    if (vkm_gguf_find(g, "tokenizer.ggml.pre") && !vkm_gguf_get_str(g, "tokenizer.ggml.pre", pre, sizeof pre))
        return vkm_fail(e, VKM_ERR_FORMAT, "tokenizer.ggml.pre is not a short string");
    if ((s = set_pre(t, pre, e)) != VKM_OK) return s;
    const vkm_gguf_kv *mk = vkm_gguf_find(g, "tokenizer.ggml.merges");
    if (!mk) return vkm_fail(e, VKM_ERR_FORMAT, "tokenizer.ggml.merges is missing (needed by gpt2)");
    if (mk->type != VKM_GGUF_ARRAY || mk->v.a.elem_type != VKM_GGUF_STRING)
        return vkm_fail(e, VKM_ERR_FORMAT, "tokenizer.ggml.merges is not an array of strings");
    const vkm_gguf_arr *merges = &mk->v.a;
    if (merges->n > INT32_MAX) return vkm_fail(e, VKM_ERR_LIMIT, "too many merges");
    if ((s = vkm_tok_merges_reserve(t, merges->n, e)) != VKM_OK) return s;
    for (uint64_t i = 0; i < merges->n; i++) {
        const char *p = merges->strs[i].p;
        size_t len = merges->strs[i].n, sp = 1; /* llama.cpp splits at the first space after 0 */
        while (sp < len && p[sp] != ' ') sp++;
        char what[64];
        snprintf(what, sizeof what, "tokenizer.ggml.merges[%llu]", (unsigned long long)i);
        if (len < 3 || sp >= len - 1)
            return vkm_fail(e, VKM_ERR_FORMAT, "%s = \"%.*s\" is not two tokens separated by a space",
                            what, (int)(len > 64 ? 64 : len), p);
        s = vkm_tok_merge_add(t, p, sp, p + sp + 1, len - sp - 1, (int32_t)i, what, e);
        if (s != VKM_OK) return s;
    }
    return vkm_tok_finish(t, e);
}

/* ---- writing ------------------------------------------------------------------------------ */
/* The tokenizer.ggml.pre names set_pre knows, one per set of steps, as llama.cpp reads them
 * ("gpt-2", not "default": llama.cpp splits otherwise for that one). */
static const char *const pre_names[] = {"gpt-2", "smollm", "llama-bpe", "qwen2"};

/* The name set_pre turns into t's pre-tokenizer steps, or NULL. */
static const char *pre_name(const vkm_tokenizer *t)
{
    for (size_t k = 0; k < sizeof pre_names / sizeof pre_names[0]; k++) {
        vkm_tokenizer steps;
        vkm_err e;
        memset(&steps, 0, sizeof steps);
        if (set_pre(&steps, pre_names[k], &e) == VKM_OK && steps.n_pre == t->n_pre &&
            !memcmp(steps.pre, t->pre, (size_t)t->n_pre * sizeof t->pre[0]) && steps.ignore_merges == t->ignore_merges)
            return pre_names[k];
    }
    return NULL;
}

static int by_rank(const void *a, const void *b)
{
    const vkm_tok_merge *x = *(const vkm_tok_merge *const *)a, *y = *(const vkm_tok_merge *const *)b;
    return (x->rank > y->rank) - (x->rank < y->rank);
}

/* The merges in rank order (*out: n_merges pointers into t->merges, malloc'd). */
static vkm_status merges_by_rank(const vkm_tokenizer *t, const vkm_tok_merge ***out, vkm_err *e)
{
    const vkm_tok_merge **m = malloc((t->n_merges ? t->n_merges : 1) * sizeof *m);
    if (!m) return vkm_fail(e, VKM_ERR_OUT_OF_HOST_MEMORY, "out of memory");
    uint32_t n = 0;
    for (uint32_t h = 0; t->merges && h <= t->merge_mask; h++)
        if (t->merges[h].rank >= 0) m[n++] = &t->merges[h];
    qsort(m, n, sizeof *m, by_rank);
    *out = m;
    return VKM_OK;
}

/* An array of strings with their lengths (texts may hold any byte). */
static vkm_status put_strs(vkm_gguf_writer *w, const char *key, vkm_gguf_str *strs, uint64_t n)
{
    vkm_gguf_kv kv = {.type = VKM_GGUF_ARRAY};
    snprintf(kv.key, sizeof kv.key, "%s", key);
    kv.v.a = (vkm_gguf_arr){.elem_type = VKM_GGUF_STRING, .n = n, .strs = strs};
    return vkm_gguf_writer_copy_kv(w, &kv);
}

/* A token id key, "none" written as 0xFFFFFFFF: readers' defaults differ (llama.cpp takes an
 * absent gpt2 bos / eos as id 11). */
static vkm_status put_id(vkm_gguf_writer *w, const char *key, int32_t id)
{
    return vkm_gguf_writer_set_u32(w, key, id < 0 ? 0xFFFFFFFFu : (uint32_t)id);
}

static bool has_norm(const vkm_tokenizer *t, vkm_tok_norm_kind kind)
{
    for (int i = 0; i < t->n_norm; i++)
        if (t->norm[i].kind == kind) return true;
    return false;
}

/* The text of padding token i (of n_vocab rows), as convert_hf_to_gguf.py writes it: "[PADk]"
 * numbered from 1 for "llama", by id for "gpt2". */
static int pad_text(const vkm_tokenizer *t, int32_t i, char *buf, size_t cap)
{
    return snprintf(buf, cap, "[PAD%d]", t->model == VKM_TOK_SPM ? i - t->n_vocab + 1 : i);
}

/* The tokenizer.ggml.* keys of t padded to n rows with unused tokens (the pre-tokenizer's
 * name: pre). */
static vkm_status put_keys(const vkm_tokenizer *t, const char *pre, int32_t n, vkm_gguf_writer *w, vkm_err *e)
{
    const bool spm = t->model == VKM_TOK_SPM;
    vkm_gguf_str *strs = malloc((size_t)n * sizeof *strs);
    float *scores = malloc((size_t)n * 4);
    int32_t *types = malloc((size_t)n * 4);
    char *pads = malloc((size_t)(n - t->n_vocab) * 16 + 1);
    const vkm_tok_merge **mg = NULL;
    char *mtext = NULL;
    vkm_status s = strs && scores && types && pads ? VKM_OK : vkm_fail(e, VKM_ERR_OUT_OF_HOST_MEMORY, "out of memory");
    for (int32_t i = 0; i < n && !s; i++) {
        if (i < t->n_vocab) {
            strs[i] = (vkm_gguf_str){vkm_tok_text(t, i), t->pieces[i].len};
            scores[i] = t->pieces[i].score;
            types[i] = t->pieces[i].type;
        } else {
            char *p = pads + (size_t)(i - t->n_vocab) * 16;
            strs[i] = (vkm_gguf_str){p, (uint64_t)pad_text(t, i, p, 16)};
            scores[i] = spm ? -1000.0f : 0.0f;
            types[i] = VKM_TOKT_UNUSED;
        }
    }
    if (!s) s = vkm_gguf_writer_set_str(w, "tokenizer.ggml.model", spm ? "llama" : "gpt2");
    if (!s && !spm) s = vkm_gguf_writer_set_str(w, "tokenizer.ggml.pre", pre);
    if (!s) s = put_strs(w, "tokenizer.ggml.tokens", strs, (uint64_t)n);
    if (!s) s = vkm_gguf_writer_set_arr(w, "tokenizer.ggml.scores", VKM_GGUF_F32, (uint64_t)n, scores);
    if (!s) s = vkm_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", VKM_GGUF_I32, (uint64_t)n, types);
    if (!s && !spm) { /* "left right" in rank order */
        s = merges_by_rank(t, &mg, e);
        uint64_t bytes = 0;
        for (uint32_t i = 0; i < t->n_merges && !s; i++)
            bytes += t->pieces[mg[i]->key >> 32].len + 1 + t->pieces[(uint32_t)mg[i]->key].len;
        vkm_gguf_str *ms = s ? NULL : realloc(strs, (t->n_merges ? t->n_merges : 1) * sizeof *ms);
        if (!s && ms) strs = ms;
        mtext = s ? NULL : malloc(bytes ? bytes : 1);
        if (!s && (!ms || !mtext)) s = vkm_fail(e, VKM_ERR_OUT_OF_HOST_MEMORY, "out of memory");
        char *p = mtext;
        for (uint32_t i = 0; i < t->n_merges && !s; i++) {
            const int32_t l = (int32_t)(mg[i]->key >> 32), r = (int32_t)(uint32_t)mg[i]->key;
            strs[i].p = p;
            memcpy(p, vkm_tok_text(t, l), t->pieces[l].len);
            p += t->pieces[l].len;
            *p++ = ' ';
            memcpy(p, vkm_tok_text(t, r), t->pieces[r].len);
            p += t->pieces[r].len;
            strs[i].n = (uint64_t)(p - strs[i].p);
        }
        if (!s) s = put_strs(w, "tokenizer.ggml.merges", strs, t->n_merges);
    }
    if (!s) s = put_id(w, "tokenizer.ggml.bos_token_id", t->bos);
    if (!s) s = put_id(w, "tokenizer.ggml.eos_token_id", t->eos);
    if (!s) s = put_id(w, "tokenizer.ggml.unknown_token_id", t->unk);
    if (!s) s = put_id(w, "tokenizer.ggml.padding_token_id", t->pad);
    if (!s) s = vkm_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", t->add_bos);
    if (!s) s = vkm_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", t->add_eos);
    if (!s && spm) s = vkm_gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", has_norm(t, VKM_TOK_NORM_PREPEND));
    if (!s && spm && has_norm(t, VKM_TOK_NORM_COLLAPSE))
        s = vkm_gguf_writer_set_bool(w, "tokenizer.ggml.remove_extra_whitespaces", true);
    free(strs);
    free(scores);
    free(types);
    free(pads);
    free(mg);
    free(mtext);
    return s;
}

/* The first thing in which b (read back from a's GGUF keys) would encode or decode otherwise
 * than a, or NULL. */
static const char *differs(const vkm_tokenizer *a, const vkm_tokenizer *b)
{
    if (a->n_pre != b->n_pre || memcmp(a->pre, b->pre, (size_t)a->n_pre * sizeof a->pre[0])) return "the pre-tokenizer";
    if (a->model != b->model || a->byte_level != b->byte_level) return "the model";
    if (a->n_vocab > b->n_vocab) return "the vocabulary's size";
    for (int32_t i = a->n_vocab; i < b->n_vocab; i++) /* padding: never produced or special */
        if (b->pieces[i].type != VKM_TOKT_UNUSED) return "the padding";
    for (int32_t i = 0; i < a->n_vocab; i++) {
        const vkm_tok_piece *x = &a->pieces[i], *y = &b->pieces[i];
        if (x->len != y->len || memcmp(vkm_tok_text(a, i), vkm_tok_text(b, i), x->len) || x->score != y->score ||
            x->type != y->type)
            return "a token's text, score or type";
        if (x->strip != y->strip) return "a token's whitespace stripping (lstrip / rstrip)";
    }
    if (a->n_merges != b->n_merges) return "the merges";
    const vkm_tok_merge **ma = NULL, **mb = NULL; /* in rank order (ranks may skip: the order counts) */
    vkm_err ignored;
    bool same = !merges_by_rank(a, &ma, &ignored) && !merges_by_rank(b, &mb, &ignored);
    for (uint32_t i = 0; i < a->n_merges && same; i++) same = ma[i]->key == mb[i]->key && ma[i]->id == mb[i]->id;
    free(ma);
    free(mb);
    if (!same) return "the merges";
    if (a->bos != b->bos || a->eos != b->eos || a->unk != b->unk || a->pad != b->pad) return "a special token id";
    if (a->add_bos != b->add_bos || a->add_eos != b->add_eos) return "adding bos / eos";
    if (a->byte_fallback != b->byte_fallback || a->fuse_unk != b->fuse_unk) return "byte fallback or unknown fusing";
    /* fold_long_s is not compared: GGUF readers split "'\u017f" as llama.cpp does (no folding),
     * as every GGUF converted from a tokenizer.json does */
    if (a->ignore_merges != b->ignore_merges) return "ignore_merges";
    if (a->n_norm != b->n_norm) return "the normalizer";
    for (int i = 0; i < a->n_norm; i++) {
        const vkm_tok_norm *x = &a->norm[i], *y = &b->norm[i];
        if (x->kind != y->kind || x->na != y->na || x->nb != y->nb || memcmp(x->a, y->a, x->na) ||
            memcmp(x->b, y->b, x->nb) || x->first_only != y->first_only || x->unless_prefixed != y->unless_prefixed)
            return "the normalizer";
    }
    if (a->n_specials != b->n_specials || memcmp(a->specials, b->specials, a->n_specials * sizeof a->specials[0]))
        return "the special tokens";
    if (a->dec_spaces != b->dec_spaces || a->dec_strip != b->dec_strip) return "the decoder";
    return NULL;
}

/* The tokenizer GGUF keys `keys` stand for (read back through an image of them). */
static vkm_status read_back(const vkm_gguf_writer *keys, vkm_tokenizer **out, vkm_err *e)
{
    uint8_t *img = NULL;
    uint64_t size = 0;
    vkm_gguf g = {0};
    vkm_status s = vkm_gguf_writer_meta_image(keys, &img, &size);
    if (!s) s = vkm_gguf_open_mem(img, size, "tokenizer keys", &g, e);
    if (!s) s = vkm_tok_from_gguf(&g, out, e);
    vkm_gguf_close(&g);
    free(img);
    return s;
}

vkm_status vkm_tok_to_gguf(const vkm_tokenizer *t, uint32_t n_rows, vkm_gguf_writer *w, vkm_err *e)
{
    if (!t || !w) return vkm_fail(e, VKM_ERR_INVALID_ARGUMENT, "vkm_tok_to_gguf: NULL argument");
    if (t->model != VKM_TOK_SPM && !t->byte_level)
        return vkm_fail(e, VKM_ERR_UNSUPPORTED, "a BPE vocabulary that is not byte-level has no GGUF form "
                        "(\"llama\" merges by score, \"gpt2\" is byte-level)");
    const int32_t n = n_rows ? (int32_t)(n_rows > VKM_TOK_MAX_VOCAB ? VKM_TOK_MAX_VOCAB + 1 : n_rows) : t->n_vocab;
    if (n < t->n_vocab || n > VKM_TOK_MAX_VOCAB)
        return vkm_fail(e, VKM_ERR_UNSUPPORTED, "%d tokens for %u embedding rows", t->n_vocab, n_rows);
    for (int32_t i = t->n_vocab; i < n; i++) { /* a padding token's text must be new */
        char text[16];
        if (vkm_tok_find(t, text, (size_t)pad_text(t, i, text, sizeof text)) >= 0)
            return vkm_fail(e, VKM_ERR_UNSUPPORTED, "the padding token %s is already a token", text);
    }
    const char *pre = t->model == VKM_TOK_SPM ? "" : pre_name(t);
    if (!pre)
        return vkm_fail(e, VKM_ERR_UNSUPPORTED, "read back from GGUF keys, it would differ in the pre-tokenizer "
                        "(no tokenizer.ggml.pre names it)");
    vkm_gguf_writer *scratch = NULL;
    vkm_tokenizer *back = NULL;
    const char *why = NULL;
    vkm_status s = vkm_gguf_writer_create("tokenizer.gguf", &scratch, e); /* never opened */
    if (!s) s = put_keys(t, pre, n, scratch, e);
    if (!s) {
        vkm_status r = read_back(scratch, &back, e);
        if (r == VKM_OK) why = differs(t, back);
        else if (r == VKM_ERR_OUT_OF_HOST_MEMORY) s = r;
        else why = "what a reader makes of the keys (they do not read back)"; /* e.g. a merge "a b c" */
    }
    vkm_tokenizer_free(back);
    vkm_gguf_writer_free(scratch);
    if (s) return s;
    if (!why) return put_keys(t, pre, n, w, e);
    return vkm_fail(e, VKM_ERR_UNSUPPORTED, "read back from GGUF keys, it would differ in %s", why);
}
