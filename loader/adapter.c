/*
 * adapter.c — LoRA adapters: module names, the pairing of A and B halves both formats share,
 * llama.cpp GGUF LoRA files, opening a PEFT folder or a GGUF LoRA by path, and the validation
 * of an adapter against a base model.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter_int.h"

/* ---- module names ------------------------------------------------------------------------- */
static const struct {
    const char *peft, *gguf, *parent;
} modules[VKM_MOD_COUNT] = {
    [VKM_MOD_Q] = {"q_proj", "attn_q", "self_attn"},       [VKM_MOD_K] = {"k_proj", "attn_k", "self_attn"},
    [VKM_MOD_V] = {"v_proj", "attn_v", "self_attn"},       [VKM_MOD_O] = {"o_proj", "attn_output", "self_attn"},
    [VKM_MOD_GATE] = {"gate_proj", "ffn_gate", "mlp"},     [VKM_MOD_UP] = {"up_proj", "ffn_up", "mlp"},
    [VKM_MOD_DOWN] = {"down_proj", "ffn_down", "mlp"},
};

static bool mod_valid(vkm_module m) { return (unsigned)m < VKM_MOD_COUNT; }
const char *vkm_module_peft_name(vkm_module m) { return mod_valid(m) ? modules[m].peft : NULL; }
const char *vkm_module_gguf_name(vkm_module m) { return mod_valid(m) ? modules[m].gguf : NULL; }
const char *vkm_module_peft_parent(vkm_module m) { return mod_valid(m) ? modules[m].parent : NULL; }

static bool module_from(const char *name, vkm_module *out, bool peft)
{
    for (int m = 0; m < VKM_MOD_COUNT; m++)
        if (!strcmp(name, peft ? modules[m].peft : modules[m].gguf)) {
            *out = (vkm_module)m;
            return true;
        }
    return false;
}

bool vkm_module_from_peft(const char *name, vkm_module *out) { return module_from(name, out, true); }
bool vkm_module_from_gguf(const char *name, vkm_module *out) { return module_from(name, out, false); }

/* ---- pairing ------------------------------------------------------------------------------ */
static int half_cmp(const void *x, const void *y)
{
    const vkm_lora_half *a = x, *b = y;
    if (a->layer != b->layer) return a->layer < b->layer ? -1 : 1;
    if (a->module != b->module) return a->module < b->module ? -1 : 1;
    return (int)a->is_b - (int)b->is_b;
}

/* Checks one half: two dims, float data. */
static vkm_status check_half(const char *file, const vkm_tensor_src *t, vkm_err *e)
{
    if (t->n_dims != 2)
        return vkm_fail(e, VKM_ERR_FORMAT, "%s: tensor '%s' has %d dimensions, a LoRA matrix has 2",
                        file, t->name, t->n_dims);
    if (t->dtype != VKM_F32 && t->dtype != VKM_F16 && t->dtype != VKM_BF16)
        return vkm_fail(e, VKM_ERR_UNSUPPORTED, "%s: tensor '%s' is %s; LoRA matrices must be F32, F16 or BF16",
                        file, t->name, vkm_dtype_name(t->dtype));
    return VKM_OK;
}

/* Fills one pair from its A and B halves and checks the ranks. */
static vkm_status make_pair(const vkm_adapter_src *a, const char *file, const vkm_lora_half *ha,
                            const vkm_lora_half *hb, vkm_lora_params_fn params, void *ctx,
                            vkm_lora_pair *p, vkm_err *e)
{
    vkm_status s = check_half(file, ha->t, e);
    if (s || (s = check_half(file, hb->t, e))) return s;
    p->layer = ha->layer;
    p->module = ha->module;
    snprintf(p->target, sizeof p->target, "blk.%u.%s.weight", p->layer, modules[p->module].gguf);
    p->a = ha->t;
    p->b = hb->t;
    int64_t ra = ha->t->ne[1], rb = hb->t->ne[0];
    if (ra != rb)
        return vkm_fail(e, VKM_ERR_FORMAT, "%s: rank mismatch for %s: '%s' has rank %lld but '%s' has rank %lld",
                        file, p->target, ha->t->name, (long long)ra, hb->t->name, (long long)rb);
    if (ra < 1 || ra > VKM_MAX_LORA_RANK)
        return vkm_fail(e, VKM_ERR_FORMAT, "%s: '%s': rank %lld is out of range (1 to %u)", file,
                        ha->t->name, (long long)ra, VKM_MAX_LORA_RANK);
    p->rank = (uint32_t)ra;
    uint32_t want = 0;
    if ((s = params(ctx, p, &want, &p->alpha, e))) return s;
    if (want && want != p->rank)
        return vkm_fail(e, VKM_ERR_FORMAT, "%s: '%s' has rank %u but the adapter config says r = %u",
                        file, ha->t->name, p->rank, want);
    p->scale = a->rslora ? p->alpha / sqrtf((float)p->rank) : p->alpha / (float)p->rank;
    return VKM_OK;
}

vkm_status vkm_lora_build(vkm_adapter_src *a, const char *file, vkm_lora_half *h, uint32_t n,
                          vkm_lora_params_fn params, void *ctx, vkm_err *e)
{
    if (n == 0) return vkm_fail(e, VKM_ERR_FORMAT, "%s: no LoRA tensors", file);
    qsort(h, n, sizeof *h, half_cmp);
    a->pairs = calloc(n / 2 + 1, sizeof *a->pairs);
    if (!a->pairs) return vkm_fail(e, VKM_ERR_OUT_OF_HOST_MEMORY, "%s: out of memory", file);
    for (uint32_t i = 0; i < n;) {
        const vkm_lora_half *x = &h[i], *y = i + 1 < n ? &h[i + 1] : NULL;
        bool same = y && y->layer == x->layer && y->module == x->module;
        if (same && x->is_b == y->is_b)
            return vkm_fail(e, VKM_ERR_FORMAT, "%s: tensors '%s' and '%s' are the same half of one pair",
                            file, x->t->name, y->t->name);
        if (!same || x->is_b)
            return vkm_fail(e, VKM_ERR_FORMAT, "%s: tensor '%s' has no matching %s (a half of a LoRA pair is missing)",
                            file, x->t->name, x->is_b ? "A (lora_A / lora_a)" : "B (lora_B / lora_b)");
        vkm_status s = make_pair(a, file, x, y, params, ctx, &a->pairs[a->n_pairs], e);
        if (s) return s;
        a->n_pairs++;
        i += 2;
    }
    return VKM_OK;
}

/* ---- GGUF LoRA ---------------------------------------------------------------------------- */
typedef struct gguf_params {
    bool has_alpha;
    float alpha;
} gguf_params;

static vkm_status gguf_lora_params(void *ctx, const vkm_lora_pair *p, uint32_t *rank, float *alpha,
                                   vkm_err *e)
{
    const gguf_params *g = ctx;
    (void)e;
    *rank = 0;
    *alpha = g->has_alpha ? g->alpha : (float)p->rank; /* llama.cpp: no alpha means scale 1 */
    return VKM_OK;
}

/* "blk.N.<module>.weight.lora_{a,b}" into a half; token_embd / output adapters refused. */
static vkm_status gguf_half(const char *file, const vkm_tensor_src *t, vkm_lora_half *h, vkm_err *e)
{
    const char *n = t->name;
    size_t len = strlen(n);
    bool is_a = len > 7 && !strcmp(n + len - 7, ".lora_a"), is_b = len > 7 && !strcmp(n + len - 7, ".lora_b");
    if (!is_a && !is_b)
        return vkm_fail(e, VKM_ERR_FORMAT, "%s: tensor '%s' is not a LoRA tensor (<weight>.lora_a / .lora_b)",
                        file, n);
    if (!strncmp(n, "token_embd.", 11) || !strncmp(n, "output.", 7))
        return vkm_fail(e, VKM_ERR_UNSUPPORTED, "%s: tensor '%s': embedding and output (lm_head) adapters are not supported",
                        file, n);
    char base[VKM_MAX_NAME];
    memcpy(base, n, len - 7);
    base[len - 7] = 0;
    /* base = "blk.<layer>.<module>.weight", layer without leading zeros */
    const char *p = base + 4, *dot = NULL;
    uint32_t layer = 0;
    bool ok = !strncmp(base, "blk.", 4) && p[0] >= '0' && p[0] <= '9' && (p[0] != '0' || p[1] == '.');
    while (ok && *p >= '0' && *p <= '9' && layer < VKM_MAX_LAYERS) layer = layer * 10 + (uint32_t)(*p++ - '0');
    ok = ok && layer < VKM_MAX_LAYERS && *p++ == '.' && (dot = strchr(p, '.')) && !strcmp(dot, ".weight");
    char mod[64] = "";
    if (ok && (size_t)(dot - p) < sizeof mod) memcpy(mod, p, (size_t)(dot - p));
    if (!ok || !vkm_module_from_gguf(mod, &h->module))
        return vkm_fail(e, VKM_ERR_UNSUPPORTED,
                        "%s: tensor '%s' adapts '%s', which is not one of the adaptable weights "
                        "(blk.N.attn_q/k/v/output, ffn_gate/up/down)",
                        file, n, base);
    h->layer = layer;
    h->is_b = is_b;
    h->t = t;
    return VKM_OK;
}

static vkm_status gguf_load(vkm_adapter_src *a, vkm_err *e)
{
    const vkm_gguf *g = &a->gguf;
    char type[32] = "";
    a->format = VKM_SRC_GGUF;
    a->rope_layout = VKM_ROPE_INTERLEAVED;
    if (!vkm_gguf_get_str(g, "general.type", type, sizeof type) || strcmp(type, "adapter"))
        return vkm_fail(e, VKM_ERR_FORMAT, "%s: not a GGUF adapter (general.type is '%s', not 'adapter')",
                        a->path, type);
    if (!vkm_gguf_get_str(g, "adapter.type", type, sizeof type) || strcmp(type, "lora"))
        return vkm_fail(e, VKM_ERR_UNSUPPORTED, "%s: adapter.type '%s' is not supported (only 'lora')",
                        a->path, type);
    vkm_gguf_get_str(g, "general.architecture", a->arch, sizeof a->arch);
    a->rope_layout = vkm_gguf_rope_layout(a->arch);
    gguf_params gp = {0};
    const vkm_gguf_kv *kv = vkm_gguf_find(g, "adapter.lora.alpha");
    if (kv) {
        if (!vkm_gguf_get_f32(g, "adapter.lora.alpha", &gp.alpha) || !isfinite(gp.alpha))
            return vkm_fail(e, VKM_ERR_FORMAT, "%s: adapter.lora.alpha is not a finite float", a->path);
        gp.has_alpha = true;
    }
    vkm_lora_half *h = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *h);
    if (!h) return vkm_fail(e, VKM_ERR_OUT_OF_HOST_MEMORY, "%s: out of memory", a->path);
    vkm_status s = VKM_OK;
    for (uint64_t i = 0; i < g->n_tensors && !s; i++) s = gguf_half(a->path, &g->tensors[i], &h[i], e);
    if (!s) s = vkm_lora_build(a, a->path, h, (uint32_t)g->n_tensors, gguf_lora_params, &gp, e);
    free(h);
    if (!s) {
        a->r = a->pairs[0].rank;
        a->alpha = a->pairs[0].alpha;
    }
    return s;
}

/* ---- opening ------------------------------------------------------------------------------ */
static vkm_status open_peft_dir(vkm_adapter_src *a, const char *dir, vkm_err *e)
{
    char cfg[1100], st[1100];
    if (!vkm_path_join(cfg, sizeof cfg, dir, "adapter_config.json") ||
        !vkm_path_join(st, sizeof st, dir, "adapter_model.safetensors"))
        return vkm_fail(e, VKM_ERR_IO, "%s: path too long", dir);
    if (!vkm_exists(st)) {
        char bin[1100];
        vkm_path_join(bin, sizeof bin, dir, "adapter_model.bin");
        if (vkm_exists(bin))
            return vkm_fail(e, VKM_ERR_UNSUPPORTED, "%s: adapter_model.bin (a pickle) is not supported; "
                            "convert it to adapter_model.safetensors", dir);
        return vkm_fail(e, VKM_ERR_NOT_FOUND, "%s: no adapter_model.safetensors in this folder", dir);
    }
    char *text;
    uint64_t len;
    vkm_status s = vkm_read_text(cfg, 1u << 20, &text, &len, e);
    if (s) return s;
    s = vkm_st_open(st, &a->st, e);
    if (!s) s = vkm_peft_load(a, text, (size_t)len, cfg, e);
    free(text);
    return s;
}

vkm_status vkm_adapter_open(const char *path, vkm_adapter_src *a, vkm_err *e)
{
    memset(a, 0, sizeof *a);
    snprintf(a->path, sizeof a->path, "%s", path);
    vkm_status s;
    char cfg[1100];
    if (vkm_is_dir(path)) {
        if (!vkm_path_join(cfg, sizeof cfg, path, "adapter_config.json") || !vkm_exists(cfg))
            return vkm_fail(e, VKM_ERR_NOT_FOUND, "%s: not a PEFT adapter folder (no adapter_config.json)", path);
        s = open_peft_dir(a, path, e);
    } else {
        s = vkm_gguf_open(path, &a->gguf, e);
        if (!s) s = gguf_load(a, e);
    }
    if (s) vkm_adapter_close(a);
    return s;
}

vkm_status vkm_adapter_open_peft_mem(const char *config, size_t config_len, const void *st,
                                     uint64_t st_size, const char *name, vkm_adapter_src *a,
                                     vkm_err *e)
{
    memset(a, 0, sizeof *a);
    snprintf(a->path, sizeof a->path, "%s", name ? name : "(memory)");
    char st_name[1100];
    snprintf(st_name, sizeof st_name, "%s/adapter_model.safetensors", a->path);
    vkm_status s = vkm_st_open_mem(st, st_size, st_name, &a->st, e);
    if (!s) {
        char cfg_name[1100];
        snprintf(cfg_name, sizeof cfg_name, "%s/adapter_config.json", a->path);
        s = vkm_peft_load(a, config, config_len, cfg_name, e);
    }
    if (s) vkm_adapter_close(a);
    return s;
}

vkm_status vkm_adapter_open_gguf_mem(const void *data, uint64_t size, const char *name,
                                     vkm_adapter_src *a, vkm_err *e)
{
    memset(a, 0, sizeof *a);
    snprintf(a->path, sizeof a->path, "%s", name ? name : "(memory)");
    vkm_status s = vkm_gguf_open_mem(data, size, a->path, &a->gguf, e);
    if (!s) s = gguf_load(a, e);
    if (s) vkm_adapter_close(a);
    return s;
}

void vkm_adapter_close(vkm_adapter_src *a)
{
    if (!a) return;
    vkm_gguf_close(&a->gguf);
    vkm_st_close(&a->st);
    free(a->pairs);
    memset(a, 0, sizeof *a);
}

/* ---- against a base ----------------------------------------------------------------------- */
vkm_status vkm_adapter_validate(const vkm_adapter_src *a, const vkm_model_src *base, vkm_err *e)
{
    if (a->arch[0] && strcmp(a->arch, base->hp.arch))
        return vkm_fail(e, VKM_ERR_MISMATCH, "%s: the adapter is for architecture '%s' but the base model %s is '%s'",
                        a->path, a->arch, base->path, base->hp.arch);
    for (uint32_t i = 0; i < a->n_pairs; i++) {
        const vkm_lora_pair *p = &a->pairs[i];
        const vkm_tensor_src *w = vkm_model_src_tensor(base, p->target);
        if (!w)
            return vkm_fail(e, VKM_ERR_MISMATCH,
                            "%s: tensor '%s' adapts %s, which does not exist in the base model %s (hint: wrong base model?)",
                            a->path, p->a->name, p->target, base->path);
        if (w->n_dims != 2 || p->a->ne[0] != w->ne[0] || p->b->ne[1] != w->ne[1])
            return vkm_fail(e, VKM_ERR_MISMATCH,
                            "%s: %s: the adapter has in = %lld, out = %lld but the base weight %s has in = %lld, "
                            "out = %lld (hint: wrong base model?)",
                            a->path, p->a->name, (long long)p->a->ne[0], (long long)p->b->ne[1], p->target,
                            (long long)w->ne[0], (long long)(w->n_dims > 1 ? w->ne[1] : 1));
    }
    return VKM_OK;
}
