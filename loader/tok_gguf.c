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
