/*
 * model_src.c — a base (or full fine-tuned) model from a GGUF file or a Hugging Face folder:
 * hyperparameters (GGUF <arch>.* keys, or config.json through hfconfig.c), the tensors under
 * their internal names, and the check of every expected tensor's presence, dtype and shape.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "loader.h"

/* ---- GGUF hyperparameters ----------------------------------------------------------------- */
static const char *const gguf_archs[] = {"llama", "mistral", "qwen2"};

typedef struct gkeys {
    const vkm_gguf *g;
    const char *path, *arch;
    vkm_err *e;
} gkeys;

/* "<arch>.<suffix>" as an unsigned integer; absent: dflt, or an error when required. */
static vkm_status gget_u32(gkeys *k, const char *suffix, bool required, uint32_t dflt, uint32_t *out)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", k->arch, suffix);
    const vkm_gguf_kv *kv = vkm_gguf_find(k->g, key);
    if (!kv) {
        if (required) return vkm_fail(k->e, VKM_ERR_FORMAT, "%s: missing key %s", k->path, key);
        *out = dflt;
        return VKM_OK;
    }
    if (!vkm_gguf_get_u32(k->g, key, out))
        return vkm_fail(k->e, VKM_ERR_FORMAT, "%s: %s is a %s, not an unsigned 32-bit integer", k->path,
                        key, vkm_gguf_type_name(kv->type));
    return VKM_OK;
}

static vkm_status gget_f32(gkeys *k, const char *suffix, float dflt, float *out)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", k->arch, suffix);
    const vkm_gguf_kv *kv = vkm_gguf_find(k->g, key);
    *out = dflt;
    if (kv && !vkm_gguf_get_f32(k->g, key, out))
        return vkm_fail(k->e, VKM_ERR_FORMAT, "%s: %s is a %s, not a float", k->path, key,
                        vkm_gguf_type_name(kv->type));
    return VKM_OK;
}

static int32_t token_id(const vkm_gguf *g, const char *key)
{
    uint32_t v;
    return vkm_gguf_get_u32(g, key, &v) && v <= INT32_MAX ? (int32_t)v : -1;
}

/* The vocabulary size: <arch>.vocab_size, else the tokens array, else token_embd's rows. */
static vkm_status gguf_vocab(gkeys *k, vkm_hparams *hp)
{
    const vkm_gguf_arr *tok = vkm_gguf_get_arr(k->g, "tokenizer.ggml.tokens");
    const vkm_tensor_src *emb = vkm_gguf_tensor(k->g, "token_embd.weight");
    vkm_status s = gget_u32(k, "vocab_size", false, 0, &hp->n_vocab);
    if (s) return s;
    if (hp->n_vocab == 0 && tok) hp->n_vocab = tok->n > UINT32_MAX ? UINT32_MAX : (uint32_t)tok->n;
    if (hp->n_vocab == 0 && emb && emb->n_dims == 2 && emb->ne[1] <= UINT32_MAX)
        hp->n_vocab = (uint32_t)emb->ne[1];
    if (tok && tok->n != hp->n_vocab)
        return vkm_fail(k->e, VKM_ERR_FORMAT, "%s: %s.vocab_size %u but tokenizer.ggml.tokens has %llu tokens",
                        k->path, k->arch, hp->n_vocab, (unsigned long long)tok->n);
    return VKM_OK;
}

static vkm_status gguf_hparams(const vkm_gguf *g, const char *path, vkm_hparams *hp, vkm_err *e)
{
    memset(hp, 0, sizeof *hp);
    char arch[32], scaling[32];
    if (!vkm_gguf_get_str(g, "general.architecture", arch, sizeof arch))
        return vkm_fail(e, VKM_ERR_FORMAT, "%s: general.architecture is missing or not a short string", path);
    size_t a = 0;
    while (a < sizeof gguf_archs / sizeof gguf_archs[0] && strcmp(arch, gguf_archs[a])) a++;
    if (a == sizeof gguf_archs / sizeof gguf_archs[0])
        return vkm_fail(e, VKM_ERR_UNSUPPORTED,
                        "%s: architecture '%s' is not supported (llama, mistral, qwen2 are)", path, arch);
    snprintf(hp->arch, sizeof hp->arch, "%s", arch);
    gkeys k = {g, path, hp->arch, e};
    uint32_t rope_dims;
    vkm_status s = gget_u32(&k, "embedding_length", true, 0, &hp->dim);
    if (!s) s = gget_u32(&k, "block_count", true, 0, &hp->n_layers);
    if (!s) s = gget_u32(&k, "attention.head_count", true, 0, &hp->n_heads);
    if (!s) s = gget_u32(&k, "attention.head_count_kv", false, hp->n_heads, &hp->n_kv_heads);
    if (!s) s = gget_u32(&k, "feed_forward_length", true, 0, &hp->ffn_dim);
    if (!s) s = gget_u32(&k, "context_length", true, 0, &hp->ctx_len);
    if (!s) s = gget_u32(&k, "attention.key_length", false, hp->n_heads ? hp->dim / hp->n_heads : 0, &hp->head_dim);
    if (!s) s = gget_u32(&k, "rope.dimension_count", false, hp->head_dim, &rope_dims);
    if (!s) s = gget_u32(&k, "expert_count", false, 0, &hp->n_experts);
    if (!s) s = gget_u32(&k, "expert_used_count", false, 0, &hp->n_experts_used);
    if (!s) s = gget_f32(&k, "rope.freq_base", 10000.0f, &hp->rope_theta);
    if (!s) s = gget_f32(&k, "attention.layer_norm_rms_epsilon", 1e-5f, &hp->norm_eps);
    if (!s) s = gguf_vocab(&k, hp);
    if (s) return s;
    if (rope_dims != hp->head_dim)
        return vkm_fail(e, VKM_ERR_UNSUPPORTED, "%s: partial RoPE (%s.rope.dimension_count %u, head size %u) is not supported",
                        path, arch, rope_dims, hp->head_dim);
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    if (vkm_gguf_find(g, key) && (!vkm_gguf_get_str(g, key, scaling, sizeof scaling) || strcmp(scaling, "none")))
        return vkm_fail(e, VKM_ERR_UNSUPPORTED, "%s: %s other than none is not supported", path, key);
    hp->bos = token_id(g, "tokenizer.ggml.bos_token_id");
    hp->eos = token_id(g, "tokenizer.ggml.eos_token_id");
    hp->rope_layout = vkm_gguf_rope_layout(arch);
    hp->qkv_bias = !strcmp(arch, "qwen2");
    return vkm_hparams_check(hp, path, e);
}

/* ---- the tensor list ---------------------------------------------------------------------- */
static int mt_cmp(const void *a, const void *b)
{
    return strcmp(((const vkm_model_tensor *)a)->name, ((const vkm_model_tensor *)b)->name);
}

static vkm_status alloc_tensors(vkm_model_src *m, uint64_t n, vkm_err *e)
{
    if (n > VKM_MAX_TENSORS)
        return vkm_fail(e, VKM_ERR_FORMAT, "%s: %llu tensors, more than the limit", m->path,
                        (unsigned long long)n);
    m->tensors = calloc(n ? n : 1, sizeof *m->tensors);
    if (!m->tensors) return vkm_fail(e, VKM_ERR_OUT_OF_HOST_MEMORY, "%s: out of memory", m->path);
    return VKM_OK;
}

static vkm_status add_tensor(vkm_model_src *m, const char *name, const vkm_tensor_src *src, vkm_err *e)
{
    vkm_model_tensor *t = &m->tensors[m->n_tensors];
    int n = snprintf(t->name, sizeof t->name, "%s", name);
    if (n < 0 || (size_t)n >= sizeof t->name)
        return vkm_fail(e, VKM_ERR_FORMAT, "%s: tensor name '%.100s' is too long", m->path, name);
    t->src = src;
    m->n_tensors++;
    return VKM_OK;
}

static vkm_status gguf_tensors(vkm_model_src *m, vkm_err *e)
{
    vkm_status s = alloc_tensors(m, m->gguf.n_tensors, e);
    for (uint64_t i = 0; i < m->gguf.n_tensors && !s; i++)
        s = add_tensor(m, m->gguf.tensors[i].name, &m->gguf.tensors[i], e);
    return s;
}

/* Hugging Face tensors under their internal names; unknown ones are refused. */
static vkm_status hf_tensors(vkm_model_src *m, vkm_err *e)
{
    uint64_t n = 0;
    for (uint32_t f = 0; f < m->st.n_files; f++) n += m->st.files[f].n_tensors;
    vkm_status s = alloc_tensors(m, n, e);
    for (uint32_t f = 0; f < m->st.n_files && !s; f++)
        for (uint64_t i = 0; i < m->st.files[f].n_tensors && !s; i++) {
            const vkm_tensor_src *t = &m->st.files[f].tensors[i];
            char internal[96];
            if (vkm_hf_to_internal(t->name, internal, sizeof internal)) s = add_tensor(m, internal, t, e);
            else if (!strstr(t->name, "rotary_emb.inv_freq")) /* a buffer old checkpoints saved */
                s = vkm_fail(e, VKM_ERR_UNSUPPORTED, "%s: tensor '%s' is not a tensor of a %s model",
                             m->st.files[f].path, t->name, m->hp.arch);
        }
    return s;
}

/* ---- expected tensors --------------------------------------------------------------------- */
static const vkm_model_tensor *find(const vkm_model_src *m, const char *name)
{
    vkm_model_tensor key;
    snprintf(key.name, sizeof key.name, "%s", name);
    return bsearch(&key, m->tensors, m->n_tensors, sizeof *m->tensors, mt_cmp);
}

static bool is_float(vkm_dtype t) { return t == VKM_F32 || t == VKM_F16 || t == VKM_BF16; }
static bool is_weight_type(vkm_dtype t) { return t <= VKM_Q6_K; }

/* Checks the tensor `name` has n_dims dims ne (GGUF order). Vectors (norms, biases) must be
 * floating point, matrices floating point or quantized. Absent: error unless optional. */
static vkm_status expect(const vkm_model_src *m, const char *name, bool optional, int n_dims,
                         int64_t ne0, int64_t ne1, int64_t ne2, vkm_err *e)
{
    const vkm_model_tensor *t = find(m, name);
    if (!t) {
        if (optional) return VKM_OK;
        char hf[128];
        bool has_hf = m->format == VKM_SRC_SAFETENSORS && vkm_internal_to_hf(name, hf, sizeof hf);
        return vkm_fail(e, VKM_ERR_FORMAT, "%s: missing tensor '%s'%s%s%s", m->path, name,
                        has_hf ? " (" : "", has_hf ? hf : "", has_hf ? ")" : "");
    }
    const vkm_tensor_src *s = t->src;
    int64_t want[3] = {ne0, ne1, ne2};
    bool ok = s->n_dims == n_dims;
    for (int d = 0; d < n_dims && ok; d++) ok = s->ne[d] == want[d];
    if (!ok) {
        char a[96], b[96];
        return vkm_fail(e, VKM_ERR_FORMAT,
                        "%s: tensor '%s' (%s): expected shape %s, found %s (GGUF order, ne0 first)",
                        m->path, name, s->name, vkm_shape_str(want, n_dims, a, sizeof a),
                        vkm_shape_str(s->ne, s->n_dims, b, sizeof b));
    }
    if (n_dims == 1 ? !is_float(s->dtype) : !is_weight_type(s->dtype))
        return vkm_fail(e, VKM_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s, which is not usable for a %s",
                        m->path, name, vkm_dtype_name(s->dtype), n_dims == 1 ? "vector" : "weight");
    return VKM_OK;
}

/* The feed-forward part of layer l: dense, Mixtral 3-D expert stacks, or one tensor per expert. */
static vkm_status expect_ffn(const vkm_model_src *m, uint32_t l, vkm_err *e)
{
    const vkm_hparams *hp = &m->hp;
    char n[96];
    int64_t d = hp->dim, f = hp->ffn_dim, x = hp->n_experts;
    vkm_status s = VKM_OK;
    if (!hp->n_experts) {
        snprintf(n, sizeof n, "blk.%u.ffn_gate.weight", l);
        s = expect(m, n, false, 2, d, f, 1, e);
        if (!s) snprintf(n, sizeof n, "blk.%u.ffn_up.weight", l), s = expect(m, n, false, 2, d, f, 1, e);
        if (!s) snprintf(n, sizeof n, "blk.%u.ffn_down.weight", l), s = expect(m, n, false, 2, f, d, 1, e);
        return s;
    }
    /* the routers: one per layer, or per FFN matrix (fine-grained); a row fewer with an
     * always-on expert; none gate-less (moetify) */
    const int64_t rows = x - (hp->moe_always_on ? 1 : 0);
    static const char *const fine[3] = {"ffn_gate", "ffn_up", "ffn_down"};
    for (int k = 0; k < (hp->moe_fine ? 3 : 1) && !s && !hp->moe_gateless; k++) {
        snprintf(n, sizeof n, "blk.%u.%s_inp.weight", l, fine[k]);
        s = expect(m, n, false, 2, k == 2 ? f : d, rows, 1, e);
    }
    snprintf(n, sizeof n, "blk.%u.ffn_gate_exps.weight", l);
    if (!s && find(m, n)) {
        s = expect(m, n, false, 3, d, f, x, e);
        if (!s) snprintf(n, sizeof n, "blk.%u.ffn_up_exps.weight", l), s = expect(m, n, false, 3, d, f, x, e);
        if (!s) snprintf(n, sizeof n, "blk.%u.ffn_down_exps.weight", l), s = expect(m, n, false, 3, f, d, x, e);
        return s;
    }
    for (uint32_t j = 0; j < hp->n_experts && !s; j++) {
        snprintf(n, sizeof n, "blk.%u.ffn_gate.%u.weight", l, j);
        s = expect(m, n, false, 2, d, f, 1, e);
        if (!s) snprintf(n, sizeof n, "blk.%u.ffn_up.%u.weight", l, j), s = expect(m, n, false, 2, d, f, 1, e);
        if (!s) snprintf(n, sizeof n, "blk.%u.ffn_down.%u.weight", l, j), s = expect(m, n, false, 2, f, d, 1, e);
    }
    return s;
}

static vkm_status expect_all(vkm_model_src *m, bool config_tied, vkm_err *e)
{
    const vkm_hparams *hp = &m->hp;
    if (find(m, "rope_freqs.weight")) /* llama.cpp's per-frequency factors of Llama 3.1 */
        return vkm_fail(e, VKM_ERR_UNSUPPORTED, "%s: rope_freqs.weight (RoPE frequency scaling) is not supported",
                        m->path);
    int64_t d = hp->dim, q = (int64_t)hp->n_heads * hp->head_dim, kv = (int64_t)hp->n_kv_heads * hp->head_dim;
    vkm_status s = expect(m, "token_embd.weight", false, 2, d, hp->n_vocab, 1, e);
    if (!s) s = expect(m, "output_norm.weight", false, 1, d, 1, 1, e);
    if (!s) s = expect(m, "output.weight", true, 2, d, hp->n_vocab, 1, e);
    if (!s && !find(m, "output.weight") && m->format == VKM_SRC_SAFETENSORS && !config_tied)
        s = vkm_fail(e, VKM_ERR_FORMAT, "%s: missing tensor 'output.weight' (lm_head.weight) and "
                     "tie_word_embeddings is false", m->path);
    m->hp.tied_embeddings = !find(m, "output.weight");
    static const char *const bias[3] = {"attn_q", "attn_k", "attn_v"};
    for (uint32_t l = 0; l < hp->n_layers && !s; l++) {
        char n[96];
        const struct {
            const char *what;
            int n_dims;
            int64_t ne0, ne1;
        } att[] = {{"attn_norm.weight", 1, d, 1}, {"ffn_norm.weight", 1, d, 1},
                   {"attn_q.weight", 2, d, q},    {"attn_k.weight", 2, d, kv},
                   {"attn_v.weight", 2, d, kv},   {"attn_output.weight", 2, q, d}};
        for (size_t i = 0; i < sizeof att / sizeof att[0] && !s; i++) {
            const bool mixed = i >= 2 && i < 5 && (hp->moe_attn >> (i - 2) & 1); /* moetify's q, k, v experts */
            for (uint32_t x = 0; x < (mixed ? hp->n_experts : 1) && !s; x++) {
                if (mixed) snprintf(n, sizeof n, "blk.%u.%.6s.%u.weight", l, att[i].what, x);
                else snprintf(n, sizeof n, "blk.%u.%s", l, att[i].what);
                s = expect(m, n, false, att[i].n_dims, att[i].ne0, att[i].ne1, 1, e);
            }
            if (mixed && !s && !hp->moe_gateless) {
                snprintf(n, sizeof n, "blk.%u.%.6s_inp.weight", l, att[i].what);
                s = expect(m, n, false, 2, d, hp->n_experts - (hp->moe_always_on ? 1 : 0), 1, e);
            }
        }
        for (int i = 0; i < 3 && !s; i++) {
            snprintf(n, sizeof n, "blk.%u.%s.bias", l, bias[i]);
            s = expect(m, n, !hp->qkv_bias, 1, i ? kv : q, 1, 1, e);
        }
        if (!s) s = expect_ffn(m, l, e);
    }
    return s;
}

/* ---- opening ------------------------------------------------------------------------------ */
static vkm_status finish_open(vkm_model_src *m, bool config_tied, vkm_err *e)
{
    vkm_status s = m->format == VKM_SRC_GGUF ? gguf_tensors(m, e) : hf_tensors(m, e);
    if (s) return s;
    qsort(m->tensors, m->n_tensors, sizeof *m->tensors, mt_cmp);
    return expect_all(m, config_tied, e);
}

static vkm_status open_gguf(vkm_model_src *m, vkm_err *e)
{
    m->format = VKM_SRC_GGUF;
    vkm_status s = gguf_hparams(&m->gguf, m->path, &m->hp, e);
    return s ? s : finish_open(m, false, e);
}

/* A Hugging Face model: config.json in dir, tensors from st_path (file, index or folder). */
static vkm_status open_hf(vkm_model_src *m, const char *dir, const char *st_path, vkm_err *e)
{
    char cfg_path[1100];
    m->format = VKM_SRC_SAFETENSORS;
    if (!vkm_path_join(cfg_path, sizeof cfg_path, dir, "config.json"))
        return vkm_fail(e, VKM_ERR_IO, "%s: path too long", dir);
    if (!vkm_exists(cfg_path))
        return vkm_fail(e, VKM_ERR_NOT_FOUND, "%s: no config.json beside the safetensors", m->path);
    char *text;
    uint64_t len;
    vkm_status s = vkm_read_text(cfg_path, VKM_MAX_JSON_FILE, &text, &len, e);
    if (s) return s;
    s = vkm_hf_config_parse(text, (size_t)len, cfg_path, &m->hp, e);
    free(text);
    if (s || (s = vkm_st_set_open(st_path, &m->st, e))) return s;
    return finish_open(m, m->hp.tied_embeddings, e);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

vkm_status vkm_model_src_open(const char *path, vkm_model_src *m, vkm_err *e)
{
    memset(m, 0, sizeof *m);
    snprintf(m->path, sizeof m->path, "%s", path);
    vkm_status s;
    char p[sizeof m->path];
    if (vkm_is_dir(path)) {
        if (!vkm_path_join(p, sizeof p, path, "config.json"))
            return vkm_fail(e, VKM_ERR_IO, "%s: path too long", path);
        if (vkm_exists(p)) {
            s = open_hf(m, path, path, e);
        } else if (vkm_path_join(p, sizeof p, path, "model.gguf") && vkm_exists(p)) {
            memcpy(m->path, p, sizeof p);
            s = vkm_gguf_open(p, &m->gguf, e);
            if (!s) s = open_gguf(m, e);
        } else {
            return vkm_fail(e, VKM_ERR_NOT_FOUND, "%s: no config.json or model.gguf in this folder", path);
        }
    } else if (ends_with(path, ".safetensors") || ends_with(path, ".json")) {
        char dir[1024];
        vkm_path_dir(dir, sizeof dir, path);
        s = open_hf(m, dir, path, e);
    } else {
        s = vkm_gguf_open(path, &m->gguf, e);
        if (!s) s = open_gguf(m, e);
    }
    if (s) vkm_model_src_close(m);
    return s;
}

vkm_status vkm_model_src_open_gguf_mem(const void *data, uint64_t size, const char *name,
                                       vkm_model_src *m, vkm_err *e)
{
    memset(m, 0, sizeof *m);
    snprintf(m->path, sizeof m->path, "%s", name ? name : "(memory)");
    vkm_status s = vkm_gguf_open_mem(data, size, m->path, &m->gguf, e);
    if (!s) s = open_gguf(m, e);
    if (s) vkm_model_src_close(m);
    return s;
}

void vkm_model_src_close(vkm_model_src *m)
{
    if (!m) return;
    vkm_gguf_close(&m->gguf);
    vkm_st_set_close(&m->st);
    free(m->tensors);
    memset(m, 0, sizeof *m);
}

const vkm_tensor_src *vkm_model_src_tensor(const vkm_model_src *m, const char *internal_name)
{
    if (!m->tensors || !internal_name) return NULL;
    const vkm_model_tensor *t = find(m, internal_name);
    return t ? t->src : NULL;
}

const vkm_map *vkm_model_src_map(const vkm_model_src *m, const void *p)
{
    const uint8_t *q = p;
    if (m->format == VKM_SRC_GGUF) return &m->gguf.map;
    for (uint32_t i = 0; i < m->st.n_files; i++) {
        const vkm_map *map = &m->st.files[i].map;
        if (map->data && q >= map->data && q < map->data + map->size) return map;
    }
    return NULL;
}
