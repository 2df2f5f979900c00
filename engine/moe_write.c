/*
 * moe_write.c — a model with FFN experts (from a manifest) written as a Mixtral-style GGUF that
 * other engines run (llama.cpp's llama architecture with expert_count, expert_used_count,
 * blk.N.ffn_gate_inp and the blk.N.ffn_{gate,up,down}_exps stacks [experts][rows][cols]).
 * Tensor data comes from the files, not the device (no rounding by the model's weight type):
 * the shared weights from the base (or their average over the experts, in F32), the expert
 * stacks in the experts' type when they share one (else F32), q/k rows in GGUF's interleaved
 * RoPE layout, the gates from the router on the device (divided by its temperature).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "merge_out.h"
#include "model.h"

static const char *ffn_names[3] = {"ffn_gate", "ffn_up", "ffn_down"};

/* Why the model's router 0 cannot be written as Mixtral gates, or NULL. */
static const char *not_mixtral(const vkm_model *m)
{
    const vkm_ffn *f = m->ffn;
    if (!f || !f->has_base || !m->man) return "it has no FFN experts from a manifest";
    if (f->attn_mask) return "its attention projections are mixtures (route_attention)";
    if (f->fine) return "it routes each FFN matrix on its own (depth module / fine_grained)";
    if (m->hp.qkv_bias || vkm_gguf_rope_layout(m->hp.arch) != VKM_ROPE_INTERLEAVED)
        return "its base is not of the llama architecture (a Mixtral-style GGUF is one)";
    const vkm_router *r = m->routers[0];
    if (r->policy == VKM_POLICY_UNIFORM) return r->top_k && r->top_k < r->n_exp ? "uniform routing over a top-k" : NULL;
    if (!r->has_matrix || r->gran != VKM_GRAN_TOKEN) return "its router does not decide per token";
    if (r->depth != VKM_DEPTH_LAYER) return "its router is not one gate per layer (depth layer)";
    if (r->always_on >= 0) return "it has an always-on expert";
    if (r->flags & (VKM_ROUTER_NORM_INPUT | VKM_ROUTER_ABS | VKM_ROUTER_BIAS | VKM_ROUTER_SIGMOID) ||
        !(r->flags & VKM_ROUTER_SOFTMAX))
        return "its router is not a plain softmax over linear gates (biases, sigmoid, normalised inputs)";
    return NULL;
}

/* The f32 values of a tensor with q/k rows moved into the interleaved layout (out: n floats). */
static vkm_status read_rows(const vkm_model_src *src, const vkm_tensor_src *t, const char *name, float *out, vkm_err *e)
{
    const uint64_t n = (uint64_t)vkm_tensor_nelem(t);
    vkm_status s = vkm_to_f32(t->dtype, t->data, n, out);
    const bool qk = strstr(name, ".attn_q.") || strstr(name, ".attn_k.");
    if (s || !qk || src->hp.rope_layout == VKM_ROPE_INTERLEAVED) return s;
    const uint64_t cols = (uint64_t)t->ne[0], rows = n / cols;
    float *tmp = malloc(n * 4);
    if (!tmp) return vkm_fail(e, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    memcpy(tmp, out, n * 4);
    for (uint64_t r = 0; r < rows; r++) {
        uint32_t from = vkm_rope_row_map(VKM_ROPE_INTERLEAVED, src->hp.rope_layout, (uint32_t)r, src->hp.head_dim);
        memcpy(out + r * cols, tmp + (uint64_t)from * cols, cols * 4);
    }
    free(tmp);
    return VKM_OK;
}

/* Whether a base tensor is the base's dense FFN (replaced by the expert stacks). */
static bool is_dense_ffn(const char *name)
{
    uint32_t l;
    int len = 0;
    if (sscanf(name, "blk.%u.%n", &l, &len) != 1 || !len) return false;
    for (int k = 0; k < 3; k++) {
        char leaf[32];
        snprintf(leaf, sizeof leaf, "%s.weight", ffn_names[k]);
        if (!strcmp(name + len, leaf)) return true;
    }
    return false;
}

typedef struct writer {
    vkm_model *m;
    vkm_mout o;
    vkm_model_src base, *ex;
    uint32_t n_ex;
    float *buf;               /* f32 scratch of the largest tensor                              */
    vkm_err *e;
} writer;

/* Whether a base tensor is written as stored (else as F32: averaged, or q/k rows re-laid). */
static bool as_stored(const writer *w, const char *name)
{
    const bool qk = strstr(name, ".attn_q.") || strstr(name, ".attn_k.");
    return w->m->man->shared != VKM_SHARED_AVERAGE && !(qk && w->base.hp.rope_layout != VKM_ROPE_INTERLEAVED);
}

static vkm_dtype shared_type(const writer *w, const vkm_tensor_src *t, const char *name)
{
    return as_stored(w, name) ? t->dtype : VKM_F32;
}

/* The type of a stack: the experts' common type, else F32. */
static vkm_dtype stack_type(const writer *w, const char *name)
{
    const vkm_tensor_src *t0 = vkm_model_src_tensor(&w->ex[0], name);
    for (uint32_t x = 1; x < w->n_ex; x++)
        if (vkm_model_src_tensor(&w->ex[x], name)->dtype != t0->dtype) return VKM_F32;
    return t0->dtype;
}

static vkm_status put(writer *w, const void *data, uint64_t n) { return vkm_mout_write(&w->o, data, n); }

static vkm_status write_shared(writer *w, const vkm_model_tensor *mt)
{
    const vkm_tensor_src *t = mt->src;
    const uint64_t n = (uint64_t)vkm_tensor_nelem(t);
    if (as_stored(w, mt->name)) return put(w, t->data, t->nbytes);
    if (w->m->man->shared != VKM_SHARED_AVERAGE) {
        vkm_status s = read_rows(&w->base, t, mt->name, w->buf, w->e);
        return s ? s : put(w, w->buf, n * 4);
    }
    float *acc = calloc(n, 4);
    if (!acc) return vkm_fail(w->e, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    vkm_status s = VKM_OK;
    for (uint32_t x = 0; x < w->n_ex && !s; x++) {
        const vkm_tensor_src *tx = vkm_model_src_tensor(&w->ex[x], mt->name);
        if (!tx || (uint64_t)vkm_tensor_nelem(tx) != n)
            s = vkm_fail(w->e, VKM_ERR_MISMATCH, "%s: %s is missing or has another shape", w->ex[x].path, mt->name);
        if (!s) s = read_rows(&w->ex[x], tx, mt->name, w->buf, w->e);
        for (uint64_t i = 0; i < n && !s; i++) acc[i] += w->buf[i] / (float)w->n_ex;
    }
    if (!s) s = put(w, acc, n * 4);
    free(acc);
    return s;
}

static vkm_status write_stack(writer *w, uint32_t l, int k)
{
    char name[64];
    snprintf(name, sizeof name, "blk.%u.%s.weight", l, ffn_names[k]);
    const vkm_dtype dt = stack_type(w, name);
    vkm_status s = VKM_OK;
    for (uint32_t x = 0; x < w->n_ex && !s; x++) {
        const vkm_tensor_src *t = vkm_model_src_tensor(&w->ex[x], name);
        if (t->dtype == dt) {
            s = put(w, t->data, t->nbytes);
        } else {
            s = vkm_to_f32(t->dtype, t->data, (uint64_t)vkm_tensor_nelem(t), w->buf);
            if (!s) s = put(w, w->buf, 4ull * vkm_tensor_nelem(t));
        }
    }
    return s;
}

static vkm_status write_gates(writer *w, uint32_t l)
{
    const vkm_router *r = w->m->routers[0];
    const uint32_t D = w->m->hp.dim, E = w->n_ex;
    memset(w->buf, 0, 4ull * E * D);
    const vkm_range g = r->r[vkm_site_index(l, VKM_MOD_GATE)];
    vkm_status s = VKM_OK;
    if (r->policy != VKM_POLICY_UNIFORM) { /* uniform: zero gates, a softmax of equal logits */
        s = vkm_download(w->m->d, g, w->buf, 4ull * E * D);
        for (uint64_t i = 0; i < (uint64_t)E * D; i++) w->buf[i] /= r->temperature;
    }
    return s ? s : put(w, w->buf, 4ull * E * D);
}

static vkm_status plan_and_write(writer *w)
{
    vkm_model *m = w->m;
    const vkm_hparams *hp = &m->hp;
    const uint32_t E = w->n_ex, L = hp->n_layers;
    const vkm_router *r = m->routers[0];
    const uint32_t k = r->policy == VKM_POLICY_UNIFORM || !r->top_k || r->top_k > E ? E : r->top_k;
    char params[160], key[80];
    snprintf(params, sizeof params, "{\"experts\": %u, \"experts_used\": %u, \"router\": \"%s\", \"shared\": \"%s\"}", E,
             k, vkm_policy_name(r->policy), m->man->shared == VKM_SHARED_AVERAGE ? "average" : "base");
    const vkm_model_src *in[1] = {&w->base};
    vkm_status s = vkm_mout_model_meta(&w->o, in, 1, 0, "moe", params);
    snprintf(key, sizeof key, "%s.expert_count", hp->arch);
    if (!s) s = vkm_gguf_writer_set_u32(w->o.g, key, E);
    snprintf(key, sizeof key, "%s.expert_used_count", hp->arch);
    if (!s) s = vkm_gguf_writer_set_u32(w->o.g, key, k);
    /* the tensor table: shared tensors in the base's order, then per layer gate + stacks */
    uint64_t biggest = (uint64_t)E * hp->dim;
    for (uint32_t i = 0; i < w->base.n_tensors && !s; i++) {
        const vkm_model_tensor *mt = &w->base.tensors[i];
        if (is_dense_ffn(mt->name)) continue;
        const vkm_tensor_src *t = mt->src;
        if ((uint64_t)vkm_tensor_nelem(t) > biggest) biggest = (uint64_t)vkm_tensor_nelem(t);
        s = vkm_mout_add(&w->o, mt->name, shared_type(w, t, mt->name), t->n_dims, t->ne);
    }
    char name[64];
    for (uint32_t l = 0; l < L && !s; l++) {
        snprintf(name, sizeof name, "blk.%u.ffn_gate_inp.weight", l);
        int64_t ng[2] = {hp->dim, E};
        s = vkm_mout_add(&w->o, name, VKM_F32, 2, ng);
        for (int j = 0; j < 3 && !s; j++) {
            char one[64];
            snprintf(one, sizeof one, "blk.%u.%s.weight", l, ffn_names[j]);
            const vkm_tensor_src *t = vkm_model_src_tensor(&w->ex[0], one);
            if ((uint64_t)vkm_tensor_nelem(t) > biggest) biggest = (uint64_t)vkm_tensor_nelem(t);
            int64_t ne[3] = {t->ne[0], t->ne[1], E};
            snprintf(name, sizeof name, "blk.%u.%s_exps.weight", l, ffn_names[j]);
            s = vkm_mout_add(&w->o, name, stack_type(w, one), 3, ne);
        }
    }
    w->buf = malloc(biggest * 4);
    if (!s && !w->buf) s = vkm_fail(w->e, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    if (!s) s = vkm_mout_begin(&w->o);
    for (uint32_t i = 0; i < w->base.n_tensors && !s; i++)
        if (!is_dense_ffn(w->base.tensors[i].name)) s = write_shared(w, &w->base.tensors[i]);
    for (uint32_t l = 0; l < L && !s; l++) {
        s = write_gates(w, l);
        for (int j = 0; j < 3 && !s; j++) s = write_stack(w, l, j);
    }
    if (!s) s = vkm_mout_finish_model(&w->o);
    return s;
}

vkm_status vkm_model_write_moe_gguf(vkm_model *m, const char *path)
{
    if (!m || !path) return VKM_ERR_INVALID_ARGUMENT;
    vkm_err *e = m->d->err;
    const size_t n = strlen(path);
    if (n < 5 || strcmp(path + n - 5, ".gguf"))
        return vkm_fail(e, VKM_ERR_INVALID_ARGUMENT, "%s: a MoE model is written as .gguf", path);
    const char *why = not_mixtral(m);
    if (why) return vkm_fail(e, VKM_ERR_UNSUPPORTED, "%s: cannot be written as a Mixtral-style GGUF: %s", m->path, why);
    writer w = {.m = m, .e = e};
    w.ex = calloc(m->ffn->n_exp, sizeof *w.ex);
    if (!w.ex) return vkm_fail(e, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    vkm_status s = vkm_model_src_open(m->man->base, &w.base, e);
    for (uint32_t i = 0; i < m->man->n_experts && !s; i++)
        if (m->man->experts[i].model[0]) s = vkm_model_src_open(m->man->experts[i].model, &w.ex[w.n_ex++], e);
    if (!s) s = vkm_mout_open(&w.o, path, false, e);
    if (!s) s = vkm_mout_refuse_model(&w.o, &w.base, "merge --moe");
    for (uint32_t x = 0; x < w.n_ex && !s; x++) s = vkm_mout_refuse_model(&w.o, &w.ex[x], "merge --moe");
    if (!s) s = plan_and_write(&w);
    vkm_mout_free(&w.o);
    free(w.buf);
    vkm_model_src_close(&w.base);
    for (uint32_t x = 0; x < w.n_ex; x++) vkm_model_src_close(&w.ex[x]);
    free(w.ex);
    return s;
}
