/*
 * merge_out.c — the files a merge writes: the output kind told by the path (x.gguf: GGUF or GGUF
 * LoRA; x.safetensors: safetensors; anything else: a folder, created if missing, receiving
 * model.safetensors or a PEFT adapter_model.safetensors), one streaming writer for either format,
 * the guard against writing over an input, and the small files beside the tensors (config.json,
 * tokenizer files, adapter_config.json), each written whole to a temporary name and renamed,
 * never replacing a different file that is already there.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "merge_out.h"
#include "tokenizer.h"

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

vkm_status vkm_mout_open(vkm_mout *o, const char *path, bool adapter, vkm_err *e)
{
    memset(o, 0, sizeof *o);
    o->e = e;
    if (!path || !path[0]) return vkm_fail(e, VKM_ERR_INVALID_ARGUMENT, "merge: no output path");
    if (ends_with(path, ".gguf")) {
        o->kind = VKM_MOUT_GGUF;
    } else if (ends_with(path, ".safetensors") && !adapter) {
        o->kind = VKM_MOUT_ST;
    } else if (ends_with(path, ".safetensors")) {
        return vkm_fail(e, VKM_ERR_INVALID_ARGUMENT, "merge: %s: an adapter is written as a GGUF "
                        "LoRA (x.gguf) or a PEFT folder", path);
    } else {
        o->kind = adapter ? VKM_MOUT_PEFT : VKM_MOUT_ST;
        o->folder = true;
    }
    if (o->folder) {
        snprintf(o->dir, sizeof o->dir, "%s", path);
        if (!vkm_is_dir(path)) {
            if (mkdir(path, 0777) != 0)
                return vkm_fail(e, VKM_ERR_IO, "merge: cannot create the folder %s: %s", path, strerror(errno));
            o->made_dir = true;
        }
        if (!vkm_path_join(o->file, sizeof o->file, path,
                           adapter ? "adapter_model.safetensors" : "model.safetensors"))
            return vkm_fail(e, VKM_ERR_LIMIT, "merge: %s: path too long", path);
    } else {
        if (vkm_is_dir(path))
            return vkm_fail(e, VKM_ERR_INVALID_ARGUMENT, "merge: %s is a folder", path);
        snprintf(o->file, sizeof o->file, "%s", path);
        vkm_path_dir(o->dir, sizeof o->dir, path);
    }
    return o->kind == VKM_MOUT_GGUF ? vkm_gguf_writer_create(o->file, &o->g, e)
                                    : vkm_st_writer_create(o->file, &o->st, e);
}

void vkm_mout_free(vkm_mout *o)
{
    vkm_gguf_writer_free(o->g);
    vkm_st_writer_free(o->st);
    if (o->made_dir && !vkm_exists(o->file)) rmdir(o->dir); /* a failed output's folder, if still empty */
    o->made_dir = false;
    free(o->config);
    o->g = NULL;
    o->st = NULL;
    o->config = NULL;
}

bool vkm_mout_is(const vkm_mout *o, const char *input_file)
{
    struct stat a, b;
    return stat(o->file, &a) == 0 && stat(input_file, &b) == 0 && a.st_dev == b.st_dev &&
           a.st_ino == b.st_ino;
}

vkm_status vkm_mout_refuse_file(const vkm_mout *o, const char *input_file, const char *what)
{
    return vkm_mout_is(o, input_file)
               ? vkm_fail(o->e, VKM_ERR_INVALID_ARGUMENT, "%s: the output %s is the input %s", what, o->file, input_file)
               : VKM_OK;
}

vkm_status vkm_mout_refuse_model(const vkm_mout *o, const vkm_model_src *m, const char *what)
{
    if (m->format == VKM_SRC_GGUF) return vkm_mout_refuse_file(o, m->gguf.path, what);
    vkm_status s = VKM_OK;
    for (uint32_t f = 0; f < m->st.n_files && !s; f++) s = vkm_mout_refuse_file(o, m->st.files[f].path, what);
    return s;
}

vkm_status vkm_mout_refuse_adapter(const vkm_mout *o, const vkm_adapter_src *a, const char *what)
{
    return vkm_mout_refuse_file(o, a->format == VKM_SRC_GGUF ? a->gguf.path : a->st.path, what);
}

vkm_status vkm_mout_meta(vkm_mout *o, const char *key, const char *value)
{
    return o->g ? vkm_gguf_writer_set_str(o->g, key, value) : vkm_st_writer_set_meta(o->st, key, value);
}

vkm_status vkm_mout_add(vkm_mout *o, const char *name, vkm_dtype dt, int n_dims, const int64_t *ne)
{
    return o->g ? vkm_gguf_writer_add_tensor(o->g, name, dt, n_dims, ne)
                : vkm_st_writer_add_tensor(o->st, name, dt, n_dims, ne);
}

vkm_status vkm_mout_begin(vkm_mout *o)
{
    return o->g ? vkm_gguf_writer_begin(o->g) : vkm_st_writer_begin(o->st);
}

vkm_status vkm_mout_write(vkm_mout *o, const void *data, uint64_t n)
{
    o->written += n;
    return o->g ? vkm_gguf_writer_write(o->g, data, n) : vkm_st_writer_write(o->st, data, n);
}

vkm_status vkm_mout_finish(vkm_mout *o)
{
    return o->g ? vkm_gguf_writer_finish(o->g) : vkm_st_writer_finish(o->st);
}

/* ---- files beside the tensors ------------------------------------------------------------- */
/* 1: the file exists with exactly these bytes, 0: absent, -1: exists and differs. */
static int compare_file(const char *path, const void *data, size_t n)
{
    if (!vkm_exists(path)) return 0;
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    int same = 1;
    char buf[4096];
    size_t off = 0, k;
    while (same && (k = fread(buf, 1, sizeof buf, f)) > 0) {
        same = off + k <= n && !memcmp(buf, (const char *)data + off, k);
        off += k;
    }
    fclose(f);
    return same && off == n ? 1 : -1;
}

vkm_status vkm_mout_side_check(const vkm_mout *o, const char *name, const void *data, size_t n)
{
    char path[1200];
    if (!vkm_path_join(path, sizeof path, o->dir, name))
        return vkm_fail(o->e, VKM_ERR_LIMIT, "merge: %s: path too long", o->dir);
    if (compare_file(path, data, n) < 0)
        return vkm_fail(o->e, VKM_ERR_INVALID_ARGUMENT, "merge: %s exists and differs from the one "
                        "this merge would write; refusing to replace it (write to another folder)", path);
    return VKM_OK;
}

vkm_status vkm_mout_side_write(const vkm_mout *o, const char *name, const void *data, size_t n,
                               bool only_if_absent)
{
    char path[1200], tmp[1240];
    if (!vkm_path_join(path, sizeof path, o->dir, name))
        return vkm_fail(o->e, VKM_ERR_LIMIT, "merge: %s: path too long", o->dir);
    int c = compare_file(path, data, n);
    if (c > 0 || (c < 0 && only_if_absent)) return VKM_OK;
    if (c < 0) return vkm_mout_side_check(o, name, data, n);
    snprintf(tmp, sizeof tmp, "%s" VKM_TMP_SUFFIX, path, (long)getpid()); /* never a user's file */
    FILE *f = fopen(tmp, "wbx");
    if (!f) return vkm_fail(o->e, VKM_ERR_IO, "merge: cannot create %s: %s", tmp, strerror(errno));
    bool ok = fwrite(data, 1, n, f) == n;
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return vkm_fail(o->e, VKM_ERR_IO, "merge: cannot write %s: %s", path, strerror(errno));
    }
    return VKM_OK;
}

vkm_status vkm_mout_copy_beside(const vkm_mout *o, const char *src_dir, const char *name)
{
    char src[1200];
    if (!vkm_path_join(src, sizeof src, src_dir, name) || !vkm_exists(src)) return VKM_OK;
    char *text = NULL;
    uint64_t len = 0;
    vkm_status s = vkm_read_text(src, 256ull << 20, &text, &len, o->e);
    if (!s) s = vkm_mout_side_write(o, name, text, (size_t)len, true);
    free(text);
    return s;
}

/* ---- model outputs ------------------------------------------------------------------------ */
/* The input whose GGUF metadata (tokenizer included) a GGUF output takes: the reference if it
 * is GGUF, else the first GGUF input; -1 when there is none. */
static int gguf_meta_source(const vkm_model_src *const *in, uint32_t n, uint32_t ref)
{
    if (in[ref]->format == VKM_SRC_GGUF) return (int)ref;
    for (uint32_t j = 0; j < n; j++)
        if (in[j]->format == VKM_SRC_GGUF) return (int)j;
    return -1;
}

static vkm_status gguf_hparams_meta(vkm_gguf_writer *w, const vkm_hparams *hp)
{
    char k[96];
#define KEY(suffix) (snprintf(k, sizeof k, "%s.%s", hp->arch, suffix), k)
    vkm_status s = vkm_gguf_writer_set_str(w, "general.architecture", hp->arch);
    if (!s) s = vkm_gguf_writer_set_u32(w, KEY("context_length"), hp->ctx_len);
    if (!s) s = vkm_gguf_writer_set_u32(w, KEY("embedding_length"), hp->dim);
    if (!s) s = vkm_gguf_writer_set_u32(w, KEY("block_count"), hp->n_layers);
    if (!s) s = vkm_gguf_writer_set_u32(w, KEY("feed_forward_length"), hp->ffn_dim);
    if (!s) s = vkm_gguf_writer_set_u32(w, KEY("attention.head_count"), hp->n_heads);
    if (!s) s = vkm_gguf_writer_set_u32(w, KEY("attention.head_count_kv"), hp->n_kv_heads);
    if (!s) s = vkm_gguf_writer_set_u32(w, KEY("attention.key_length"), hp->head_dim);
    if (!s) s = vkm_gguf_writer_set_u32(w, KEY("rope.dimension_count"), hp->head_dim);
    if (!s) s = vkm_gguf_writer_set_u32(w, KEY("vocab_size"), hp->n_vocab);
    if (!s) s = vkm_gguf_writer_set_f32(w, KEY("rope.freq_base"), hp->rope_theta);
    if (!s) s = vkm_gguf_writer_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), hp->norm_eps);
    if (!s && hp->n_experts) s = vkm_gguf_writer_set_u32(w, KEY("expert_count"), hp->n_experts);
    if (!s && hp->n_experts) s = vkm_gguf_writer_set_u32(w, KEY("expert_used_count"), hp->n_experts_used);
#undef KEY
    return s;
}

/* The tokenizer of the Hugging Face folder o->src_dir as GGUF keys, when GGUF holds it exactly:
 * tokenizer.json (what vkmoe loads from the folder), else tokenizer.model if it agrees with
 * tokenizer.json on bos, eos and adding bos (tokenizer_config.json's word reaches tokenizer.json
 * only). Padded to the model's n_vocab embedding rows when it has fewer (GGUF readers want a
 * token per row), left out when it has more. Otherwise the GGUF has none, and the files copied
 * beside it (vkm_mout_finish_model) carry it. */
static vkm_status embed_tokenizer(vkm_mout *o, uint32_t n_vocab)
{
    static const char *const names[] = {"tokenizer.json", "tokenizer.model"};
    vkm_tokenizer *json = NULL; /* tokenizer.json, loaded but not held by GGUF */
    vkm_status s = VKM_OK;
    bool done = false;
    for (size_t k = 0; k < 2 && !s && !done; k++) {
        char p[1100];
        if (!vkm_path_join(p, sizeof p, o->src_dir, names[k]) || !vkm_exists(p)) continue;
        vkm_tokenizer *t = NULL;
        vkm_err e;
        vkm_err_clear(&e);
        vkm_status ls = vkm_tokenizer_load(p, &t);
        if (ls == VKM_ERR_OUT_OF_HOST_MEMORY) {
            s = vkm_fail(o->e, ls, "%s: %s", p, t ? vkm_tokenizer_errmsg(t) : "out of memory");
        } else if (ls == VKM_OK && (!json || (vkm_tokenizer_bos(t) == vkm_tokenizer_bos(json) &&
                              vkm_tokenizer_eos(t) == vkm_tokenizer_eos(json) &&
                              vkm_tokenizer_adds_bos(t) == vkm_tokenizer_adds_bos(json)))) {
            vkm_status ws = vkm_tok_to_gguf(t, n_vocab, o->g, &e);
            done = ws == VKM_OK;
            if (ws != VKM_OK && ws != VKM_ERR_UNSUPPORTED) /* a writer failure says why itself */
                s = e.msg[0] ? vkm_fail(o->e, ws, "%s: %s", p, e.msg) : ws;
        } /* else (one vkmoe cannot read or tokenizer.model disagreeing): beside only */
        if (ls == VKM_OK && k == 0) {
            json = t;
            t = NULL;
        }
        vkm_tokenizer_free(t);
    }
    vkm_tokenizer_free(json);
    return s;
}

vkm_status vkm_mout_model_meta(vkm_mout *o, const vkm_model_src *const *in, uint32_t n, uint32_t ref,
                               const char *method, const char *params)
{
    vkm_status s = VKM_OK;
    if (o->kind == VKM_MOUT_GGUF) {
        int src = gguf_meta_source(in, n, ref);
        if (src < 0) { /* Hugging Face inputs only: their tokenizer inside (where GGUF holds it) and beside */
            s = gguf_hparams_meta(o->g, &in[ref]->hp);
            if (in[ref]->format == VKM_SRC_SAFETENSORS) {
                vkm_path_dir(o->src_dir, sizeof o->src_dir, in[ref]->st.files[0].path);
                if (!s) s = embed_tokenizer(o, in[ref]->hp.n_vocab);
            }
        } else {
            const vkm_gguf *g = &in[src]->gguf;
            for (uint64_t i = 0; i < g->n_kv && !s; i++) {
                const char *k = g->kv[i].key;
                if (!strcmp(k, "general.file_type") || !strncmp(k, "vkmoe.merge.", 12)) continue;
                s = vkm_gguf_writer_copy_kv(o->g, &g->kv[i]);
            }
        }
    } else {
        s = vkm_mout_meta(o, "format", "pt");
    }
    if (!s) s = vkm_mout_meta(o, "vkmoe.merge.method", method);
    if (!s) s = vkm_mout_meta(o, "vkmoe.merge.parameters", params);
    return s;
}

vkm_status vkm_mout_hf_config(vkm_mout *o, const vkm_model_src *const *in, uint32_t n, uint32_t ref)
{
    free(o->config);
    o->config = NULL;
    o->src_dir[0] = 0;
    if (o->kind == VKM_MOUT_GGUF) return VKM_OK;
    for (uint32_t k = 0; k < n; k++) { /* the reference first */
        uint32_t j = k == 0 ? ref : k <= ref ? k - 1 : k;
        if (in[j]->format != VKM_SRC_SAFETENSORS) continue;
        char path[1200];
        vkm_path_dir(o->src_dir, sizeof o->src_dir, in[j]->st.files[0].path);
        if (!vkm_path_join(path, sizeof path, o->src_dir, "config.json")) continue;
        uint64_t len = 0;
        vkm_status s = vkm_read_text(path, 1u << 24, &o->config, &len, o->e);
        o->config_len = (size_t)len;
        return s ? s : vkm_mout_side_check(o, "config.json", o->config, o->config_len);
    }
    /* no Hugging Face input: tokenizer files beside the reference's GGUF file, if any */
    vkm_path_dir(o->src_dir, sizeof o->src_dir, in[ref]->path);
    const vkm_hparams *hp = &in[ref]->hp;
    const char *cls = !strcmp(hp->arch, "qwen2") ? "Qwen2ForCausalLM"
                    : !strcmp(hp->arch, "mistral") ? "MistralForCausalLM" : "LlamaForCausalLM";
    if (hp->n_experts)
        return vkm_fail(o->e, VKM_ERR_UNSUPPORTED, "merge: a mixture-of-experts model from GGUF inputs "
                        "is written as GGUF only");
    if (!(o->config = malloc(2048))) return vkm_fail(o->e, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    int len = snprintf(o->config, 2048,
                       "{\n  \"architectures\": [\"%s\"],\n  \"model_type\": \"%s\",\n"
                       "  \"hidden_size\": %u,\n  \"intermediate_size\": %u,\n  \"num_hidden_layers\": %u,\n"
                       "  \"num_attention_heads\": %u,\n  \"num_key_value_heads\": %u,\n  \"head_dim\": %u,\n"
                       "  \"vocab_size\": %u,\n  \"max_position_embeddings\": %u,\n  \"rms_norm_eps\": %.9g,\n"
                       "  \"rope_theta\": %.9g,\n  \"tie_word_embeddings\": %s,\n  \"hidden_act\": \"silu\"\n}\n",
                       cls, hp->arch, hp->dim, hp->ffn_dim, hp->n_layers, hp->n_heads, hp->n_kv_heads,
                       hp->head_dim, hp->n_vocab, hp->ctx_len, (double)hp->norm_eps, (double)hp->rope_theta,
                       hp->tied_embeddings ? "true" : "false");
    o->config_len = (size_t)len;
    return vkm_mout_side_check(o, "config.json", o->config, o->config_len);
}

static const char *const tokenizer_files[] = {"tokenizer.json", "tokenizer.model", "tokenizer_config.json",
                                              "special_tokens_map.json"};

vkm_status vkm_mout_finish_model(vkm_mout *o)
{
    vkm_status s = vkm_mout_finish(o);
    if (!s && o->config) s = vkm_mout_side_write(o, "config.json", o->config, o->config_len, false);
    for (size_t k = 0; k < sizeof tokenizer_files / sizeof tokenizer_files[0] && !s && o->src_dir[0]; k++)
        s = vkm_mout_copy_beside(o, o->src_dir, tokenizer_files[k]);
    return s;
}
