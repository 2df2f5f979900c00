/*
 * merge_adapter.c — the lora_* methods of vkm_merge: lora_bake (merge_lora.c) and the merges of
 * several LoRA adapters into one. lora_linear is LoraHub's weighted average,
 * A' = sum_e w_e A_e and B' = sum_e w_e s_e B_e (equal ranks per module); lora_cat stacks the
 * ranks, A' = [A_1; A_2; ..] and B' = [w_1 s_1 B_1, w_2 s_2 B_2, ..], so B' A' is exactly the sum
 * of the weighted deltas. Adapters are small: this runs on the host, in double precision, and
 * writes f32. q/k B rows are brought to the output's RoPE layout (GGUF LoRA: interleaved, PEFT:
 * rotate_half). The output's scale alpha / r_m is folded into B' (alpha = the largest rank), so
 * one alpha fits every module whatever its rank.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "merge.h"
#include "merge_out.h"

typedef struct amerge {
    vkm_err *e;
    const vkm_merge_params *p;
    vkm_adapter_src ad[VKM_MERGE_MAX_MODELS];
    double weight[VKM_MERGE_MAX_MODELS];
    uint32_t n_ad;
    bool cat;
    vkm_mout out;
    vkm_rope_layout layout;
    uint32_t head_dim;        /* of q/k rows (from the base when given, else 0: no q/k permutation
                                 between layouts possible)                                       */
    char arch[32];            /* the output's architecture: the base's, else the first GGUF
                                 adapter's, else llama                                           */
    /* the output modules, in (layer, module) order */
    uint32_t n_mod;
    struct omod {
        uint32_t layer;
        vkm_module module;
        char target[96];
        uint32_t rank, in, out;
    } *mod;
    float alpha;
} amerge;

static const vkm_lora_pair *find_pair(const vkm_adapter_src *a, uint32_t layer, vkm_module m)
{
    for (uint32_t i = 0; i < a->n_pairs; i++)
        if (a->pairs[i].layer == layer && a->pairs[i].module == m) return &a->pairs[i];
    return NULL;
}

static int mod_cmp(const void *x, const void *y)
{
    const struct omod *a = x, *b = y;
    if (a->layer != b->layer) return a->layer < b->layer ? -1 : 1;
    return (int)a->module - (int)b->module;
}

/* The output modules: every adapted (layer, module), with its merged rank. */
static vkm_status plan_modules(amerge *m)
{
    uint32_t cap = 0;
    for (uint32_t i = 0; i < m->n_ad; i++) cap += m->ad[i].n_pairs;
    m->mod = calloc(cap ? cap : 1, sizeof *m->mod);
    if (!m->mod) return vkm_fail(m->e, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (uint32_t i = 0; i < m->n_ad; i++)
        for (uint32_t k = 0; k < m->ad[i].n_pairs; k++) {
            const vkm_lora_pair *p = &m->ad[i].pairs[k];
            struct omod *o = NULL;
            for (uint32_t j = 0; j < m->n_mod && !o; j++)
                if (m->mod[j].layer == p->layer && m->mod[j].module == p->module) o = &m->mod[j];
            uint32_t in = (uint32_t)p->a->ne[0], out = (uint32_t)p->b->ne[1];
            if (!o) {
                o = &m->mod[m->n_mod++];
                o->layer = p->layer;
                o->module = p->module;
                snprintf(o->target, sizeof o->target, "%s", p->target);
                o->in = in;
                o->out = out;
                o->rank = m->cat ? 0 : p->rank;
            }
            if (o->in != in || o->out != out)
                return vkm_fail(m->e, VKM_ERR_MISMATCH, "lora merge: %s is %ux%u in %s but %ux%u in an "
                                "earlier adapter", p->target, out, in, m->ad[i].path, o->out, o->in);
            if (m->cat) o->rank += p->rank;
            else if (o->rank != p->rank)
                return vkm_fail(m->e, VKM_ERR_MISMATCH, "lora_linear: %s has rank %u for %s but an "
                                "earlier adapter has rank %u (lora_cat merges any ranks)",
                                m->ad[i].path, p->rank, p->target, o->rank);
        }
    qsort(m->mod, m->n_mod, sizeof *m->mod, mod_cmp);
    m->alpha = 0;
    for (uint32_t j = 0; j < m->n_mod; j++)
        if (m->mod[j].rank > m->alpha) m->alpha = (float)m->mod[j].rank;
    return VKM_OK;
}

static bool rope_module(vkm_module mod) { return mod == VKM_MOD_Q || mod == VKM_MOD_K; }

/* One element of a pair's matrix as double. */
static double elem(const vkm_tensor_src *t, uint64_t i)
{
    float f;
    if (t->dtype == VKM_F32) memcpy(&f, t->data + 4 * i, 4);
    else if (t->dtype == VKM_F16) f = vkm_f16_to_f32(vkm_rd16(t->data + 2 * i));
    else f = vkm_bf16_to_f32(vkm_rd16(t->data + 2 * i));
    return f;
}

/* A' [rank][in] and B' [out][rank] of output module o (B' with the output scale folded in). */
static vkm_status merge_module(amerge *m, const struct omod *o, float *a, float *b)
{
    const uint32_t R = o->rank;
    double *acc_a = calloc((size_t)R * o->in, sizeof *acc_a), *acc_b = calloc((size_t)o->out * R, sizeof *acc_b);
    if (!acc_a || !acc_b) {
        free(acc_a);
        free(acc_b);
        return vkm_fail(m->e, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    uint32_t r0 = 0; /* cat: the rows / columns of this adapter */
    for (uint32_t i = 0; i < m->n_ad; i++) {
        const vkm_lora_pair *p = find_pair(&m->ad[i], o->layer, o->module);
        if (!p) continue;
        const double w = m->weight[i], ws = w * p->scale;
        const uint32_t r = p->rank;
        bool permute = rope_module(o->module) && m->ad[i].rope_layout != m->layout && m->head_dim;
        for (uint32_t k = 0; k < r; k++)
            for (uint32_t c = 0; c < o->in; c++)
                acc_a[(uint64_t)(m->cat ? r0 + k : k) * o->in + c] += (m->cat ? 1.0 : w) * elem(p->a, (uint64_t)k * o->in + c);
        for (uint32_t row = 0; row < o->out; row++) {
            uint32_t src = permute ? vkm_rope_row_map(m->layout, m->ad[i].rope_layout, row, m->head_dim) : row;
            for (uint32_t k = 0; k < r; k++)
                acc_b[(uint64_t)row * R + (m->cat ? r0 + k : k)] += ws * elem(p->b, (uint64_t)src * r + k);
        }
        r0 += r;
    }
    const double fold = (double)R / m->alpha; /* stored B = B' / (alpha / R) */
    for (uint64_t i = 0; i < (uint64_t)R * o->in; i++) a[i] = (float)acc_a[i];
    for (uint64_t i = 0; i < (uint64_t)o->out * R; i++) b[i] = (float)(acc_b[i] * fold);
    free(acc_a);
    free(acc_b);
    return VKM_OK;
}

static void tensor_names(const amerge *m, const struct omod *o, char *na, char *nb, size_t cap)
{
    if (m->out.kind == VKM_MOUT_GGUF) {
        snprintf(na, cap, "%s.lora_a", o->target);
        snprintf(nb, cap, "%s.lora_b", o->target);
    } else {
        const char *pre = "base_model.model.model.layers";
        snprintf(na, cap, "%s.%u.%s.%s.lora_A.weight", pre, o->layer, vkm_module_peft_parent(o->module),
                 vkm_module_peft_name(o->module));
        snprintf(nb, cap, "%s.%u.%s.%s.lora_B.weight", pre, o->layer, vkm_module_peft_parent(o->module),
                 vkm_module_peft_name(o->module));
    }
}

/* adapter_config.json of a PEFT output. */
static char *peft_config(const amerge *m)
{
    size_t cap = 4096 + (size_t)m->n_mod * 96, n = 0;
    char *s = malloc(cap);
    if (!s) return NULL;
    uint32_t r = m->n_mod ? m->mod[0].rank : 1;
#define PUT(...) n += (size_t)snprintf(s + n, cap - n, __VA_ARGS__)
    char quoted[2 * sizeof m->ad[0].base_model + 8];
    PUT("{\n  \"peft_type\": \"LORA\",\n  \"task_type\": \"CAUSAL_LM\",\n  \"base_model_name_or_path\": %s,\n",
        vkm_json_quote(quoted, sizeof quoted, m->ad[0].base_model));
    PUT("  \"r\": %u,\n  \"lora_alpha\": %.9g,\n  \"lora_dropout\": 0.0,\n  \"target_modules\": [", r, (double)m->alpha);
    bool seen[VKM_MOD_COUNT] = {0};
    for (uint32_t j = 0, k = 0; j < m->n_mod; j++) {
        if (seen[m->mod[j].module]) continue;
        seen[m->mod[j].module] = true;
        PUT("%s\"%s\"", k++ ? ", " : "", vkm_module_peft_name(m->mod[j].module));
    }
    PUT("],\n  \"bias\": \"none\",\n  \"fan_in_fan_out\": false,\n  \"use_rslora\": false,\n"
        "  \"use_dora\": false,\n  \"inference_mode\": true,\n  \"modules_to_save\": null,\n"
        "  \"rank_pattern\": {");
    for (uint32_t j = 0, k = 0; j < m->n_mod; j++) {
        if (m->mod[j].rank == r) continue;
        PUT("%s\"model.layers.%u.%s.%s\": %u", k++ ? ", " : "", m->mod[j].layer,
            vkm_module_peft_parent(m->mod[j].module), vkm_module_peft_name(m->mod[j].module), m->mod[j].rank);
    }
    PUT("},\n  \"alpha_pattern\": {}\n}\n");
#undef PUT
    return s;
}

static vkm_status merge_adapters(amerge *m, const char *out_path)
{
    const vkm_merge_params *p = m->p;
    vkm_model_src base;
    memset(&base, 0, sizeof base);
    vkm_status s = VKM_OK;
    m->n_ad = p->n_models;
    if (m->n_ad == 0) return vkm_fail(m->e, VKM_ERR_INVALID_ARGUMENT, "%s: no adapters", vkm_merge_method_name(p->method));
    if (p->base[0] && !(s = vkm_model_src_open(p->base, &base, m->e))) {
        m->head_dim = base.hp.head_dim;
        snprintf(m->arch, sizeof m->arch, "%s", base.hp.arch);
    }
    for (uint32_t i = 0; i < m->n_ad && !s; i++) {
        m->weight[i] = !isnan(p->models[i].weight) ? p->models[i].weight : !isnan(p->weight) ? p->weight : 1.0;
        s = vkm_adapter_open(p->models[i].path, &m->ad[i], m->e);
        if (!s && p->base[0]) s = vkm_adapter_validate(&m->ad[i], &base, m->e);
        if (!s && i && m->ad[i].rope_layout != m->ad[0].rope_layout && !m->head_dim)
            s = vkm_fail(m->e, VKM_ERR_INVALID_ARGUMENT, "%s: adapters of both formats need base_model "
                         "(its head size permutes the q/k rows)", vkm_merge_method_name(p->method));
    }
    if (!s) s = vkm_mout_open(&m->out, out_path, true, m->e);
    if (!s && p->base[0]) s = vkm_mout_refuse_model(&m->out, &base, vkm_merge_method_name(p->method));
    vkm_model_src_close(&base);
    for (uint32_t i = 0; i < m->n_ad && !s; i++)
        s = vkm_mout_refuse_adapter(&m->out, &m->ad[i], vkm_merge_method_name(p->method));
    if (s || (s = plan_modules(m))) return s;
    for (uint32_t i = 0; i < m->n_ad && !m->arch[0]; i++)
        if (m->ad[i].arch[0]) snprintf(m->arch, sizeof m->arch, "%s", m->ad[i].arch);
    if (!m->arch[0]) snprintf(m->arch, sizeof m->arch, "llama");
    m->layout = m->out.kind == VKM_MOUT_GGUF ? vkm_gguf_rope_layout(m->arch) : VKM_ROPE_HALF;
    if (!m->head_dim)
        for (uint32_t i = 0; i < m->n_ad; i++)
            if (m->ad[i].rope_layout != m->layout)
                return vkm_fail(m->e, VKM_ERR_INVALID_ARGUMENT, "%s: writing %s as %s permutes its q/k "
                                "rows: give base_model (for the head size)", vkm_merge_method_name(p->method),
                                m->ad[i].path, m->out.kind == VKM_MOUT_GGUF ? "GGUF LoRA" : "PEFT");
    char desc[4096], *cfg = NULL;
    size_t k = (size_t)snprintf(desc, sizeof desc, "method=%s", vkm_merge_method_name(p->method));
    for (uint32_t i = 0; i < m->n_ad && k < sizeof desc; i++)
        k += (size_t)snprintf(desc + k, sizeof desc - k, "; adapter=%s weight=%g", p->models[i].path, m->weight[i]);
    if (m->out.kind == VKM_MOUT_GGUF) {
        s = vkm_gguf_writer_set_str(m->out.g, "general.architecture", m->arch);
        if (!s) s = vkm_gguf_writer_set_str(m->out.g, "general.type", "adapter");
        if (!s) s = vkm_gguf_writer_set_str(m->out.g, "adapter.type", "lora");
        if (!s) s = vkm_gguf_writer_set_f32(m->out.g, "adapter.lora.alpha", m->alpha);
    } else {
        if (!(cfg = peft_config(m))) return vkm_fail(m->e, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        s = vkm_mout_side_check(&m->out, "adapter_config.json", cfg, strlen(cfg));
        if (!s) s = vkm_mout_meta(&m->out, "format", "pt");
    }
    if (!s) s = vkm_mout_meta(&m->out, "vkmoe.merge.method", vkm_merge_method_name(p->method));
    if (!s) s = vkm_mout_meta(&m->out, "vkmoe.merge.parameters", desc);
    for (uint32_t j = 0; j < m->n_mod && !s; j++) {
        char na[VKM_MAX_NAME], nb[VKM_MAX_NAME];
        tensor_names(m, &m->mod[j], na, nb, sizeof na);
        int64_t ne_a[2] = {m->mod[j].in, m->mod[j].rank}, ne_b[2] = {m->mod[j].rank, m->mod[j].out};
        s = vkm_mout_add(&m->out, na, VKM_F32, 2, ne_a);
        if (!s) s = vkm_mout_add(&m->out, nb, VKM_F32, 2, ne_b);
    }
    if (!s) s = vkm_mout_begin(&m->out);
    for (uint32_t j = 0; j < m->n_mod && !s; j++) {
        const struct omod *o = &m->mod[j];
        float *a = malloc((size_t)o->rank * o->in * 4), *b = malloc((size_t)o->out * o->rank * 4);
        s = a && b ? merge_module(m, o, a, b) : vkm_fail(m->e, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        if (!s) s = vkm_mout_write(&m->out, a, (uint64_t)o->rank * o->in * 4);
        if (!s) s = vkm_mout_write(&m->out, b, (uint64_t)o->out * o->rank * 4);
        free(a);
        free(b);
    }
    if (!s) s = vkm_mout_finish(&m->out);
    if (!s && cfg) s = vkm_mout_side_write(&m->out, "adapter_config.json", cfg, strlen(cfg), false);
    free(cfg);
    return s;
}

vkm_status vkm_merge_lora_run(vkm_context *ctx, const vkm_merge_params *p, const char *out_path)
{
    const char *name = vkm_merge_method_name(p->method);
    if (p->out_dtype != VKM_WEIGHTS_AUTO && (p->method == VKM_MERGE_LORA_BAKE || p->out_dtype != VKM_F32))
        return /* an output type they cannot write: said, not silently ignored */ vkm_fail(&ctx->err, VKM_ERR_UNSUPPORTED, "%s: dtype: %s", name, p->method == VKM_MERGE_LORA_BAKE
                        ? "a bake writes each tensor in the base's own type" : "merged adapters are written as float32");
    if (p->method == VKM_MERGE_LORA_BAKE && !p->base[0])
        return vkm_fail(&ctx->err, VKM_ERR_INVALID_ARGUMENT, "%s: base_model is required (the model the adapters "
                        "are baked into)", name);
    if (p->method == VKM_MERGE_LORA_BAKE) return vkm_merge_bake(ctx, p, out_path);
    amerge *m = calloc(1, sizeof *m);
    if (!m) return vkm_fail(&ctx->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    m->e = &ctx->err;
    m->p = p;
    m->cat = p->method == VKM_MERGE_LORA_CAT;
    vkm_status s = merge_adapters(m, out_path);
    vkm_mout_free(&m->out);
    for (uint32_t i = 0; i < VKM_MERGE_MAX_MODELS; i++) vkm_adapter_close(&m->ad[i]);
    free(m->mod);
    free(m);
    return s;
}
