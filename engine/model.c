/*
 * model.c — loading a model onto the device: weight matrices in the chosen device type
 * (converted or quantized on the way), norms in f32, the tokenizer, then the runtime buffers
 * (KV cache, activations, step inputs, sampler records) sized by the model params.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "tokenizer.h"

vkm_model_params vkm_model_default_params(void)
{
    vkm_model_params p;
    memset(&p, 0, sizeof p);
    p.weight_type = VKM_WEIGHTS_AUTO;
    p.n_seq = 4;
    p.n_batch = 256;
    return p;
}

/* Device type for a matrix stored as `src`. */
static vkm_dtype device_type(int want, vkm_dtype src)
{
    if (want != VKM_WEIGHTS_AUTO) return (vkm_dtype)want;
    switch (src) {
    case VKM_F32: case VKM_F16: case VKM_Q8_0: case VKM_Q4_0: return src;
    default: return VKM_F16; /* BF16, Q4_K, Q6_K */
    }
}

typedef struct loader_ctx {
    vkm_model *m;
    vkm_model_src *src;          /* the files, or NULL for random weights                     */
    const vkm_model_params *p;
    uint64_t total, done;
    uint64_t seed;               /* random weights: generator state                           */
    float *scratch;              /* random weights: the current tensor                        */
    vkm_tensor_src fake;
} loader_ctx;

/* Random weights: the shape each internal tensor name has (cols, rows; rows 1 for vectors). */
static bool random_shape(const vkm_hparams *hp, const char *name, int64_t *cols, int64_t *rows)
{
    const int64_t D = hp->dim, qd = (int64_t)hp->n_heads * hp->head_dim;
    const int64_t kvd = (int64_t)hp->n_kv_heads * hp->head_dim, F = hp->ffn_dim, V = hp->n_vocab;
    const char *dot = strchr(name, '.');
    const char *leaf = !strncmp(name, "blk.", 4) && dot ? strchr(dot + 1, '.') + 1 : name;
    char one[40];
    int plen = 0;
    unsigned ex;
    if (sscanf(leaf, "%31[a-z_].%u.weight%n", one, &ex, &plen) == 2 && !leaf[plen]) { /* expert ex's matrix */
        strcat(one, ".weight");
        leaf = one;
    }
    if (!strcmp(leaf, "ffn_gate_inp.weight")) { /* a MoE router */
        *cols = hp->dim;
        *rows = hp->n_experts;
        return hp->n_experts > 0;
    }
    static const struct { const char *n; int c, r; } tab[] = {
        /* c, r: 0 D, 1 qd, 2 kvd, 3 F, 4 V, 5 one */
        {"token_embd.weight", 0, 4}, {"output.weight", 0, 4}, {"output_norm.weight", 0, 5},
        {"attn_norm.weight", 0, 5}, {"ffn_norm.weight", 0, 5}, {"attn_q.weight", 0, 1},
        {"attn_k.weight", 0, 2}, {"attn_v.weight", 0, 2}, {"attn_output.weight", 1, 0},
        {"ffn_gate.weight", 0, 3}, {"ffn_up.weight", 0, 3}, {"ffn_down.weight", 3, 0},
    };
    const int64_t dims[6] = {D, qd, kvd, F, V, 1};
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (!strcmp(leaf, tab[i].n)) {
            *cols = dims[tab[i].c];
            *rows = dims[tab[i].r];
            return true;
        }
    return false;
}

static const vkm_tensor_src *random_tensor(loader_ctx *L, const char *name)
{
    int64_t cols, rows;
    if (!random_shape(&L->m->hp, name, &cols, &rows)) return NULL;
    uint64_t n = (uint64_t)cols * rows;
    float *p = realloc(L->scratch, n * 4);
    if (!p) return NULL;
    L->scratch = p;
    /* uniform in [-a, a): a = 1 for norms (around 1), sqrt(3 / fan_in) for matrices */
    bool vec = rows == 1;
    float a = vec ? 0.2f : sqrtf(3.0f / (float)cols), base = vec ? 1.0f : 0.0f;
    uint64_t x = L->seed ^ (0x9e3779b97f4a7c15ull * (strlen(name) + n));
    for (const char *c = name; *c; c++) x = (x ^ (uint8_t)*c) * 0x100000001b3ull;
    for (uint64_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = base + a * ((float)(x >> 40) * (2.0f / 16777216.0f) - 1.0f);
    }
    memset(&L->fake, 0, sizeof L->fake);
    snprintf(L->fake.name, sizeof L->fake.name, "%s", name);
    L->fake.dtype = VKM_F32;
    L->fake.n_dims = vec ? 1 : 2;
    L->fake.ne[0] = cols;
    L->fake.ne[1] = rows;
    L->fake.data = (const uint8_t *)p;
    L->fake.nbytes = n * 4;
    return &L->fake;
}

static vkm_status progress(loader_ctx *L, uint64_t bytes)
{
    L->done += bytes;
    if (L->p->progress && !L->p->progress(L->p->progress_user, L->total ? (float)L->done / (float)L->total : 1.0f))
        return vkm_fail(L->m->d->err, VKM_ERR_CANCELLED, "loading %s: cancelled", L->m->path);
    return VKM_OK;
}

static const vkm_tensor_src *src_get(void *src, const char *name) { return vkm_model_src_tensor(src, name); }
static const vkm_tensor_src *random_get(void *L, const char *name) { return random_tensor(L, name); }

static const vkm_tensor_src *need(loader_ctx *L, const char *name)
{
    const vkm_tensor_src *t = L->src ? vkm_model_src_tensor(L->src, name) : random_tensor(L, name);
    if (!t) vkm_fail(L->m->d->err, VKM_ERR_NOT_FOUND, "%s: tensor %s is missing", L->m->path, name);
    return t;
}

vkm_status vkm_model_upload_matrix(vkm_model *m, vkm_arena *arena, const vkm_tensor_src *t,
                                   const char *name, const uint32_t *row_map, vkm_tensor *out)
{
    if (t->n_dims != 2)
        return vkm_fail(m->d->err, VKM_ERR_FORMAT, "%s: %s has %d dimensions, a matrix has 2",
                        m->path, name, t->n_dims);
    vkm_dtype dt = device_type(m->weight_type_param, t->dtype);
    if ((dt == VKM_Q8_0 || dt == VKM_Q4_0) && t->ne[0] % 32) dt = VKM_F16; /* rows not in blocks */
    vkm_status s = vkm_tensor_alloc(arena, dt, (uint32_t)t->ne[1], (uint32_t)t->ne[0], 0, out);
    if (s == VKM_OK) s = vkm_tensor_upload(m->d, out, t->dtype, t->data, row_map);
    if (s != VKM_OK) vkm_err_prefix(m->d->err, "%s: %s", m->path, name);
    return s;
}

/* A weight matrix W[rows][cols] (ne = {cols, rows}). */
static vkm_status load_matrix(loader_ctx *L, const char *name, vkm_tensor *out)
{
    vkm_model *m = L->m;
    const vkm_tensor_src *t = need(L, name);
    if (!t) return VKM_ERR_NOT_FOUND;
    vkm_status s = vkm_model_upload_matrix(m, &m->weights, t, name, NULL, out);
    if (s != VKM_OK) return s;
    m->weight_bytes += out->bytes;
    return progress(L, t->nbytes);
}

/* A vector of n floats (norm weights), converted to f32. */
static vkm_status load_vector(loader_ctx *L, const char *name, uint32_t n, vkm_range *out)
{
    vkm_model *m = L->m;
    const vkm_tensor_src *t = need(L, name);
    if (!t) return VKM_ERR_NOT_FOUND;
    if (vkm_tensor_nelem(t) != n)
        return vkm_fail(m->d->err, VKM_ERR_FORMAT, "%s: %s has %lld values, expected %u", m->path,
                        name, (long long)vkm_tensor_nelem(t), n);
    float *tmp = malloc((size_t)n * 4);
    if (!tmp) return vkm_fail(m->d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    vkm_status s = vkm_to_f32(t->dtype, t->data, n, tmp);
    if (s != VKM_OK) vkm_fail(m->d->err, s, "%s: %s: cannot convert %s to f32", m->path, name,
                              vkm_dtype_name(t->dtype));
    if (s == VKM_OK) s = vkm_arena_alloc(&m->weights, (uint64_t)n * 4, 16, out);
    if (s == VKM_OK) s = vkm_upload(m->d, *out, tmp, (uint64_t)n * 4);
    free(tmp);
    if (s != VKM_OK) return s;
    m->weight_bytes += (uint64_t)n * 4;
    return progress(L, t->nbytes);
}

static vkm_status load_weights(loader_ctx *L)
{
    vkm_model *m = L->m;
    const vkm_hparams *hp = &m->hp;
    char name[96];
    if (L->src)
        for (uint32_t i = 0; i < L->src->n_tensors; i++) L->total += L->src->tensors[i].src->nbytes;
    else
        L->total = 4ull * hp->dim * (2ull * hp->n_vocab + (uint64_t)hp->n_layers *
                   (2ull * hp->n_heads * hp->head_dim + 2ull * hp->n_kv_heads * hp->head_dim + 3ull * hp->ffn_dim));
    vkm_status s = load_matrix(L, "token_embd.weight", &m->tok_embd);
    if (s == VKM_OK) s = load_vector(L, "output_norm.weight", hp->dim, &m->output_norm);
    if (s == VKM_OK) {
        if (hp->tied_embeddings || (L->src && !vkm_model_src_tensor(L->src, "output.weight"))) m->output = m->tok_embd;
        else s = load_matrix(L, "output.weight", &m->output);
    }
    m->layers = calloc(hp->n_layers, sizeof *m->layers);
    if (!m->layers) return vkm_fail(m->d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    static const struct { const char *name; size_t off; } mats[] = {
        {"attn_q", offsetof(vkm_layer, wq)}, {"attn_k", offsetof(vkm_layer, wk)},
        {"attn_v", offsetof(vkm_layer, wv)}, {"attn_output", offsetof(vkm_layer, wo)},
        {"ffn_gate", offsetof(vkm_layer, w_gate)}, {"ffn_up", offsetof(vkm_layer, w_up)},
        {"ffn_down", offsetof(vkm_layer, w_down)},
    };
    for (uint32_t l = 0; l < hp->n_layers && s == VKM_OK; l++) {
        vkm_layer *ly = &m->layers[l];
        snprintf(name, sizeof name, "blk.%u.attn_norm.weight", l);
        s = load_vector(L, name, hp->dim, &ly->attn_norm);
        snprintf(name, sizeof name, "blk.%u.ffn_norm.weight", l);
        if (s == VKM_OK) s = load_vector(L, name, hp->dim, &ly->ffn_norm);
        for (size_t k = 0; k < sizeof mats / sizeof mats[0] && s == VKM_OK; k++) {
            if (hp->n_experts && (k >= 4 || (k < 3 && (hp->moe_attn >> k & 1)))) continue; /* experts (ffn.c) */
            snprintf(name, sizeof name, "blk.%u.%s.weight", l, mats[k].name);
            s = load_matrix(L, name, (vkm_tensor *)((char *)ly + mats[k].off));
        }
    }
    if (s != VKM_OK) return s;
    m->wtype = m->layers[0].wq.dtype;
    /* bytes one decode step reads: every matrix once, one embedding row, the norms (the FFN
     * experts a token reads are added in vkm_model_get_info) */
    uint64_t b = m->output.bytes + m->tok_embd.bytes / m->tok_embd.rows + 4ull * hp->dim;
    for (uint32_t l = 0; l < hp->n_layers; l++) {
        const vkm_layer *ly = &m->layers[l];
        b += ly->wq.bytes + ly->wk.bytes + ly->wv.bytes + ly->wo.bytes + ly->w_gate.bytes +
             ly->w_up.bytes + ly->w_down.bytes + 8ull * hp->dim;
    }
    m->token_bytes = b;
    return VKM_OK;
}

static vkm_status floats(vkm_model *m, vkm_arena *a, uint64_t n, vkm_range *out)
{
    return vkm_arena_alloc(a, n * 4, 16, out);
}

static vkm_status alloc_runtime(vkm_model *m, const vkm_model_params *p)
{
    vkm_dev *d = m->d;
    const vkm_hparams *hp = &m->hp;
    m->n_ctx = p->n_ctx ? p->n_ctx : hp->ctx_len;
    if (!m->n_ctx) m->n_ctx = 2048;
    m->n_seq = p->n_seq ? p->n_seq : 1;
    if (m->man && m->man->aggregate == VKM_AGG_LOGITS) { /* a session runs its k experts in slots of their own */
        const vkm_manifest *man = m->man;
        const uint32_t k = vkm_route_entries(man->router.top_k, man->n_experts, man->router.always_on >= 0);
        if (m->n_seq < 1 + k) m->n_seq = 1 + k;
    }
    m->n_batch = p->n_batch ? p->n_batch : 256;
    if (m->n_batch > m->n_ctx * m->n_seq) m->n_batch = m->n_ctx * m->n_seq;
    const uint64_t qd = (uint64_t)hp->n_heads * hp->head_dim, kvd = (uint64_t)hp->n_kv_heads * hp->head_dim;
    const uint64_t range = d->caps.max_storage_range;
    uint64_t kv_bytes = (uint64_t)m->n_seq * m->n_ctx * kvd * 4;
    if (kv_bytes > range)
        return vkm_fail(d->err, VKM_ERR_LIMIT, "a KV cache of %u sequences x %u positions is %llu "
                        "bytes per layer, over the device's storage range (%llu): lower n_ctx or n_seq",
                        m->n_seq, m->n_ctx, (unsigned long long)kv_bytes, (unsigned long long)range);
    m->n_out_cap = m->n_batch;
    if (m->man && m->man->aggregate == VKM_AGG_LOGITS) /* a token's k >= 2 rows and its mixture */
        m->n_out_cap = m->n_batch + m->n_batch / 2 + 1;
    if ((uint64_t)m->n_out_cap * hp->n_vocab * 4 > range) m->n_out_cap = (uint32_t)(range / ((uint64_t)hp->n_vocab * 4));
    if (!m->n_out_cap) return vkm_fail(d->err, VKM_ERR_LIMIT, "a row of %u logits exceeds the storage range", hp->n_vocab);

    vkm_arena_init(&m->kv_arena, d, VKM_MEM_DEVICE, 0);
    vkm_arena_init(&m->act_arena, d, VKM_MEM_DEVICE, 0);
    m->k_cache = calloc(hp->n_layers, sizeof *m->k_cache);
    m->v_cache = calloc(hp->n_layers, sizeof *m->v_cache);
    m->slot_used = calloc(m->n_seq, sizeof *m->slot_used);
    if (!m->k_cache || !m->v_cache || !m->slot_used)
        return vkm_fail(d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    vkm_status s = VKM_OK;
    for (uint32_t l = 0; l < hp->n_layers && s == VKM_OK; l++) {
        s = vkm_arena_alloc(&m->kv_arena, kv_bytes, 16, &m->k_cache[l]);
        if (s == VKM_OK) s = vkm_arena_alloc(&m->kv_arena, kv_bytes, 16, &m->v_cache[l]);
    }
    const uint64_t B = m->n_batch;
    vkm_acts *a = &m->a;
    uint64_t parts = 256ull * VKM_ATTN_MAX_SPLITS * (hp->head_dim + 2);
    struct { vkm_range *r; uint64_t n; } plan[] = {
        {&a->x, B * hp->dim}, {&a->xn, B * hp->dim}, {&a->q, B * qd}, {&a->k, B * kvd},
        {&a->v, B * kvd}, {&a->att, B * qd}, {&a->gate, B * hp->ffn_dim}, {&a->up, B * hp->ffn_dim},
        {&a->partials, parts}, {&a->xo, (uint64_t)m->n_out_cap * hp->dim},
        {&a->logits, (uint64_t)m->n_out_cap * hp->n_vocab},
        {&a->scratch, (uint64_t)m->n_seq * hp->n_vocab},
    };
    for (size_t i = 0; i < sizeof plan / sizeof plan[0] && s == VKM_OK; i++)
        s = floats(m, &m->act_arena, plan[i].n, plan[i].r);
    if (s == VKM_OK) s = vkm_buf_create(d, 4ull * vkm_step_words(m), VKM_MEM_UPLOAD, &m->step_buf);
    if (s == VKM_OK) s = vkm_buf_create(d, 4ull * m->n_seq * VKM_SAMPLE_WORDS, VKM_MEM_UPLOAD, &m->samp_buf);
    if (s == VKM_OK) s = vkm_buf_create(d, 4ull * m->n_seq, VKM_MEM_READBACK, &m->ids_buf);
    if (s == VKM_OK) s = vkm_rec_init(&m->rec, d, p->profile);
    m->profile = m->rec.profile = p->profile && d->caps.timestamps;
    m->separate_routers = p->separate_routers;
    m->separate_expands = p->separate_expands;
    if (s == VKM_OK) s = vkm_dev_alloc_cmd(d, &m->cmd);
    if (s != VKM_OK) vkm_err_prefix(d->err, "%s: runtime buffers", m->path);
    return s;
}

/* The tokenizer of the model at `path` (the base's path for a manifest). */
static vkm_status load_tokenizer(vkm_model *m, vkm_model_src *src, const char *path)
{
    vkm_err e;
    vkm_err_clear(&e);
    if (src->format == VKM_SRC_GGUF) {
        vkm_status s = vkm_tok_from_gguf(&src->gguf, &m->tok, &e);
        if (s != VKM_ERR_NOT_FOUND) return s ? vkm_fail(m->d->err, s, "%s", e.msg) : VKM_OK;
        /* no vocabulary in the file: tokenizer files beside it (a merge of Hugging Face models
         * written as GGUF puts them there), else the model runs on token ids alone */
    }
    char dir[1024], p[1100];
    if (vkm_is_dir(path)) snprintf(dir, sizeof dir, "%s", path);
    else vkm_path_dir(dir, sizeof dir, path);
    static const char *const names[] = {"tokenizer.json", "tokenizer.model"};
    for (size_t i = 0; i < 2; i++) {
        if (!vkm_path_join(p, sizeof p, dir, names[i]) || !vkm_exists(p)) continue;
        vkm_tokenizer *t = NULL;
        vkm_status s = vkm_tokenizer_load(p, &t);
        if (s != VKM_OK) {
            vkm_fail(m->d->err, s, "%s", t ? vkm_tokenizer_errmsg(t) : p);
            vkm_tokenizer_free(t);
            return s;
        }
        m->tok = t;
        return VKM_OK;
    }
    return VKM_OK;
}

static vkm_status model_new(vkm_context *ctx, const char *path, const vkm_model_params *params,
                            vkm_model **out)
{
    if (params->weight_type != VKM_WEIGHTS_AUTO && params->weight_type != VKM_F32 &&
        params->weight_type != VKM_F16 && params->weight_type != VKM_Q8_0 && params->weight_type != VKM_Q4_0)
        return vkm_fail(&ctx->err, VKM_ERR_INVALID_ARGUMENT, "weight_type must be auto, F32, F16, Q8_0 or Q4_0");
    vkm_status s = vkm_dev_probe_f16(&ctx->dev); /* picks the f16 weight kernels */
    if (s != VKM_OK) return s;
    vkm_model *m = calloc(1, sizeof *m);
    if (!m) return vkm_fail(&ctx->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    m->weight_type_param = params->weight_type;
    m->ctx = ctx;
    m->d = &ctx->dev;
    snprintf(m->path, sizeof m->path, "%s", path);
    vkm_arena_init(&m->weights, m->d, VKM_MEM_DEVICE, 0);
    *out = m;
    return VKM_OK;
}

vkm_status vkm_model_create_random(vkm_context *ctx, const vkm_model_shape *sh, uint64_t seed,
                                   const vkm_model_params *params, vkm_model **out)
{
    if (!out) return VKM_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!ctx || !ctx->dev_ok || !sh) return VKM_ERR_INVALID_ARGUMENT;
    vkm_err_clear(&ctx->err);
    vkm_model_params p = params ? *params : vkm_model_default_params();
    if (p.weight_type == VKM_WEIGHTS_AUTO) p.weight_type = VKM_F16;
    uint32_t hd = sh->head_dim ? sh->head_dim : (sh->n_heads ? sh->dim / sh->n_heads : 0);
    if (!sh->n_vocab || !sh->dim || !sh->n_layers || !sh->n_heads || !sh->n_kv_heads || !hd ||
        sh->n_heads % sh->n_kv_heads || !sh->ffn_dim || hd % 2)
        return vkm_fail(&ctx->err, VKM_ERR_INVALID_ARGUMENT, "random model: every size must be "
                        "positive, n_heads a multiple of n_kv_heads and head_dim even");
    vkm_model *m;
    vkm_status s = model_new(ctx, "(random)", &p, &m);
    if (s != VKM_OK) return s;
    vkm_hparams *hp = &m->hp;
    snprintf(hp->arch, sizeof hp->arch, "llama");
    hp->n_vocab = sh->n_vocab;
    hp->dim = sh->dim;
    hp->n_layers = sh->n_layers;
    hp->n_heads = sh->n_heads;
    hp->n_kv_heads = sh->n_kv_heads;
    hp->head_dim = hd;
    hp->ffn_dim = sh->ffn_dim;
    hp->ctx_len = sh->ctx_len ? sh->ctx_len : 2048;
    hp->rope_theta = sh->rope_theta > 0 ? sh->rope_theta : 10000.0f;
    hp->norm_eps = 1e-5f;
    hp->tied_embeddings = sh->tied_embeddings;
    hp->bos = hp->eos = -1;
    hp->n_experts = sh->n_experts;
    hp->n_experts_used = sh->n_experts_used ? sh->n_experts_used : (sh->n_experts ? 2 : 0);
    if (hp->n_experts_used > hp->n_experts) hp->n_experts_used = hp->n_experts;
    loader_ctx L = {.m = m, .p = &p, .seed = seed ? seed : 1};
    s = load_weights(&L);
    if (s == VKM_OK) s = alloc_runtime(m, &p);
    if (s == VKM_OK && hp->n_experts) s = vkm_ffn_load_file(m, random_get, &L, "(random)");
    free(L.scratch);
    if (s != VKM_OK) {
        vkm_model_free(m);
        return s;
    }
    *out = m;
    return VKM_OK;
}

/* A MoErge manifest: a .json file that is not a safetensors index. */
static bool is_manifest(const char *path)
{
    size_t n = strlen(path);
    return n > 5 && !strcmp(path + n - 5, ".json") && !vkm_is_dir(path) &&
           !(n > 23 && !strcmp(path + n - 23, ".safetensors.index.json"));
}

/* The bank, the routing state and router 0 of a manifest. */
static vkm_status load_moe(vkm_model *m)
{
    vkm_manifest *man = m->man;
    uint32_t n_lora = 0, n_ffn = 0;
    for (uint32_t i = 0; i < man->n_experts; i++) {
        n_lora += man->experts[i].lora[0] != 0;
        n_ffn += man->experts[i].model[0] != 0;
    }
    if (n_ffn && n_lora)
        return vkm_fail(m->d->err, VKM_ERR_UNSUPPORTED, "%s: LoRA experts and whole-model (FFN) experts in one "
                        "manifest: use two manifests", man->path);
    if (n_ffn) {
        vkm_status s = vkm_ffn_load_manifest(m, man);
        if (s == VKM_OK) s = vkm_moe_alloc(m);
        vkm_router *r = NULL;
        if (s == VKM_OK) s = vkm_router_create(m, man, &r);
        if (s == VKM_OK) m->routers[m->n_routers++] = r;
        if (s == VKM_OK && r->agg != VKM_AGG_OUTPUT)
            s = vkm_fail(m->d->err, VKM_ERR_UNSUPPORTED, "%s: FFN experts combine their outputs: aggregate must "
                         "be output", man->path);
        return s;
    }
    if (!n_lora) return VKM_OK;
    /* task-level exact merging: the deltas go into the base weights, no bank at run time */
    bool fixed_weights = man->router.policy == VKM_POLICY_FIXED || man->router.policy == VKM_POLICY_UNIFORM;
    if (man->aggregate == VKM_AGG_PARAMETER && man->merge == VKM_MERGE_EXACT &&
        (man->router.granularity == VKM_GRAN_TASK || fixed_weights))
        return vkm_moe_bake_task(m, man);
    vkm_status s = vkm_bank_load(m, man);
    if (s == VKM_OK) s = vkm_moe_alloc(m);
    vkm_router *r = NULL;
    if (s == VKM_OK) s = vkm_router_create(m, man, &r);
    if (s == VKM_OK) m->routers[m->n_routers++] = r;
    return s;
}

vkm_status vkm_model_load(vkm_context *ctx, const char *path, const vkm_model_params *params,
                          vkm_model **out)
{
    if (!out) return VKM_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!ctx || !ctx->dev_ok || !path) return VKM_ERR_INVALID_ARGUMENT;
    vkm_err_clear(&ctx->err);
    vkm_model_params def = vkm_model_default_params();
    if (!params) params = &def;
    vkm_model *m;
    vkm_status s0 = model_new(ctx, path, params, &m);
    if (s0 != VKM_OK) return s0;
    const char *base = path;
    if (is_manifest(path)) {
        m->man = calloc(1, sizeof *m->man);
        if (!m->man) s0 = vkm_fail(&ctx->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        if (s0 == VKM_OK) s0 = vkm_manifest_load(path, m->man, &ctx->err);
        if (s0 == VKM_OK) s0 = vkm_manifest_check(m->man, &ctx->err);
        if (s0 != VKM_OK) {
            free(m->man);
            m->man = NULL;
            vkm_model_free(m);
            return s0;
        }
        base = m->man->base;
    }
    vkm_model_src src;
    memset(&src, 0, sizeof src);
    vkm_status s = vkm_model_src_open(base, &src, &ctx->err);
    if (s == VKM_OK) {
        m->hp = src.hp;
        if (m->hp.n_experts > 0 && m->man)
            s = vkm_fail(&ctx->err, VKM_ERR_UNSUPPORTED, "%s: the base of a manifest must be a dense model, "
                         "not a mixture of %u experts", base, m->hp.n_experts);
        else if (m->hp.qkv_bias)
            s = vkm_fail(&ctx->err, VKM_ERR_UNSUPPORTED, "%s: q/k/v projection biases (qwen2) are "
                         "not supported yet", path);
    }
    if (s == VKM_OK) s = load_weights(&(loader_ctx){.m = m, .src = &src, .p = params});
    if (s == VKM_OK) s = load_tokenizer(m, &src, base);
    if (s == VKM_OK) s = alloc_runtime(m, params);
    if (s == VKM_OK && m->hp.n_experts) s = vkm_ffn_load_file(m, src_get, &src, path); /* Mixtral-style file */
    vkm_model_src_close(&src);
    if (s == VKM_OK && m->man) s = load_moe(m);
    if (s != VKM_OK) {
        vkm_model_free(m);
        return s;
    }
    *out = m;
    return VKM_OK;
}

void vkm_model_free(vkm_model *m)
{
    if (!m) return;
    vkm_dev *d = m->d;
    if (d->device) vkDeviceWaitIdle(d->device);
    vkm_moe_free(m);
    vkm_ffn_free(m);
    if (m->cmd) vkFreeCommandBuffers(d->device, d->cmd_pool, 1, &m->cmd);
    vkm_rec_destroy(&m->rec);
    vkm_buf_destroy(d, &m->step_buf);
    vkm_buf_destroy(d, &m->samp_buf);
    vkm_buf_destroy(d, &m->ids_buf);
    vkm_arena_destroy(&m->act_arena);
    vkm_arena_destroy(&m->kv_arena);
    vkm_arena_destroy(&m->weights);
    vkm_tokenizer_free(m->tok);
    free(m->layers);
    free(m->k_cache);
    free(m->v_cache);
    free(m->slot_used);
    free(m);
}

vkm_status vkm_model_get_info(const vkm_model *m, vkm_model_info *o)
{
    if (!m || !o) return VKM_ERR_INVALID_ARGUMENT;
    memset(o, 0, sizeof *o);
    const vkm_hparams *hp = &m->hp;
    snprintf(o->arch, sizeof o->arch, "%s", hp->arch);
    o->n_vocab = hp->n_vocab;
    o->dim = hp->dim;
    o->n_layers = hp->n_layers;
    o->n_heads = hp->n_heads;
    o->n_kv_heads = hp->n_kv_heads;
    o->head_dim = hp->head_dim;
    o->ffn_dim = hp->ffn_dim;
    o->ctx_len = hp->ctx_len;
    o->n_ctx = m->n_ctx;
    o->n_seq = m->n_seq;
    o->n_batch = m->n_batch;
    o->rope_theta = hp->rope_theta;
    o->norm_eps = hp->norm_eps;
    o->tied_embeddings = vkm_model_tied(m);
    o->rope_half = hp->rope_layout == VKM_ROPE_HALF;
    o->weight_type = m->wtype;
    o->weight_bytes = m->weight_bytes + (m->bank ? m->bank->bytes : 0);
    o->bytes_per_token = m->token_bytes;
    if (m->ffn && m->n_routers) { /* + the FFN experts a token reads under router 0 */
        const vkm_router *r = m->routers[0];
        const double k = vkm_route_entries(r->top_k, r->n_exp, r->always_on >= 0);
        o->weight_bytes += m->ffn->bytes;
        o->bytes_per_token += (uint64_t)((double)m->ffn->bytes / m->ffn->n_exp * k);
    } else if (m->bank && m->n_routers) { /* + the experts a token reads under router 0 */
        const vkm_bank *b = m->bank;
        const vkm_router *r = m->routers[0];
        double real = 0;
        for (uint32_t p = 0; p < b->n_sites; p++)
            for (uint32_t e = 0; e < b->n_exp; e++)
                real += 4.0 * b->meta_host[((size_t)p * b->n_total + e) * 4 + 1] * (b->sites[p].in + b->sites[p].out);
        double k = r->agg == VKM_AGG_PARAMETER && r->merge == VKM_MERGE_AVERAGE ? 1.0
                 : (double)vkm_route_entries(r->top_k, r->n_exp, r->always_on >= 0);
        o->bytes_per_token += (uint64_t)(real / b->n_exp * k);
    }
    o->bos = hp->bos;
    o->eos = hp->eos;
    return VKM_OK;
}

const vkm_tokenizer *vkm_model_tokenizer(const vkm_model *m) { return m ? m->tok : NULL; }

static int by_time(const void *a, const void *b)
{
    double x = ((const vkm_kernel_stat *)a)->seconds, y = ((const vkm_kernel_stat *)b)->seconds;
    return x < y ? 1 : x > y ? -1 : 0;
}

vkm_status vkm_model_profile(const vkm_model *m, vkm_kernel_stat *out, size_t cap, size_t *n)
{
    if (!m || !n) return VKM_ERR_INVALID_ARGUMENT;
    *n = 0;
    if (!m->profile) return m->d->caps.timestamps ? VKM_ERR_STATE : VKM_ERR_UNSUPPORTED;
    for (uint32_t i = 0; i < m->n_prof && *n < cap; i++, (*n)++)
        out[i] = (vkm_kernel_stat){m->prof[i].name, m->prof[i].calls, m->prof[i].ns * 1e-9, m->prof[i].bytes};
    qsort(out, *n, sizeof *out, by_time);
    return VKM_OK;
}

vkm_status vkm_model_set_profiling(vkm_model *m, bool on)
{
    if (!m) return VKM_ERR_INVALID_ARGUMENT;
    if (!m->rec.queries) return vkm_fail(m->d->err, VKM_ERR_STATE, "%s was loaded without profiling", m->path);
    m->profile = m->rec.profile = on;
    m->n_prof = 0;
    return VKM_OK;
}

uint32_t vkm_model_n_experts(const vkm_model *m) { return m && m->bank ? m->bank->n_exp : 0; }

const char *vkm_model_expert_name(const vkm_model *m, uint32_t i)
{
    return m && m->bank && i < m->bank->n_exp ? m->bank->names[i] : NULL;
}

uint32_t vkm_model_n_routers(const vkm_model *m) { return m ? m->n_routers : 0; }

vkm_status vkm_model_add_router(vkm_model *m, const char *manifest, uint32_t *router)
{
    if (!m || !manifest) return VKM_ERR_INVALID_ARGUMENT;
    vkm_err *err = m->d->err;
    vkm_err_clear(err);
    if (!m->bank) return vkm_fail(err, VKM_ERR_STATE, "%s has no bank of experts to route", m->path);
    vkm_manifest *man = calloc(1, sizeof *man);
    if (!man) return vkm_fail(err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    vkm_status s = vkm_manifest_load(manifest, man, err);
    if (s == VKM_OK) s = vkm_manifest_check(man, err); /* the rules a loaded manifest meets (ranks for average) */
    vkm_router *r = NULL;
    if (s == VKM_OK && m->man && strcmp(man->base, m->man->base))
        s = vkm_fail(err, VKM_ERR_MISMATCH, "%s: base %s differs from the model's %s", manifest, man->base, m->man->base);
    if (s == VKM_OK) s = vkm_router_create(m, man, &r);
    if (s == VKM_OK) {
        if (router) *router = m->n_routers;
        m->routers[m->n_routers++] = r;
    }
    vkm_manifest_free(man);
    free(man);
    return s;
}

vkm_status vkm_model_replace_weight(vkm_model *m, const char *name, const float *v, uint64_t n)
{
    uint32_t l = 0;
    int len = 0;
    vkm_range *vec = NULL;
    vkm_tensor *mat = NULL;
    if (!strcmp(name, "token_embd.weight")) mat = &m->tok_embd;
    else if (!strcmp(name, "output.weight")) mat = &m->output;
    else if (!strcmp(name, "output_norm.weight")) vec = &m->output_norm;
    else if (sscanf(name, "blk.%u.%n", &l, &len) == 1 && l < m->hp.n_layers) {
        vkm_layer *ly = &m->layers[l];
        const char *leaf = name + len;
        if (!strcmp(leaf, "attn_norm.weight")) vec = &ly->attn_norm;
        else if (!strcmp(leaf, "ffn_norm.weight")) vec = &ly->ffn_norm;
        else if (!strcmp(leaf, "attn_q.weight")) mat = &ly->wq;
        else if (!strcmp(leaf, "attn_k.weight")) mat = &ly->wk;
        else if (!strcmp(leaf, "attn_v.weight")) mat = &ly->wv;
        else if (!strcmp(leaf, "attn_output.weight")) mat = &ly->wo;
        else if (!strcmp(leaf, "ffn_gate.weight")) mat = &ly->w_gate;
        else if (!strcmp(leaf, "ffn_up.weight")) mat = &ly->w_up;
        else if (!strcmp(leaf, "ffn_down.weight")) mat = &ly->w_down;
    }
    if (vec) return vkm_upload(m->d, *vec, v, n * 4);
    if (mat && (uint64_t)mat->rows * mat->cols == n) return vkm_tensor_upload(m->d, mat, VKM_F32, v, NULL);
    return vkm_fail(m->d->err, VKM_ERR_NOT_FOUND, "%s: no model weight %s to replace", m->path, name);
}
