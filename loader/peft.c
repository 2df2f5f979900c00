/*
 * peft.c — PEFT LoRA adapters: adapter_config.json (r, lora_alpha, use_rslora, target_modules,
 * rank_pattern, alpha_pattern and the features that are refused) and the tensor names of
 * adapter_model.safetensors, turned into the halves adapter.c pairs.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter_int.h"
#include "json.h"

typedef struct peft_cfg {
    const char *path;              /* adapter_config.json, for messages */
    uint32_t r;
    float alpha;
    const cJSON *targets;          /* a list, a string, or NULL */
    const cJSON *rank_pattern, *alpha_pattern;
} peft_cfg;

/* ---- adapter_config.json ------------------------------------------------------------------ */
static vkm_status bad_type(const peft_cfg *c, const char *key, const char *want, const cJSON *v,
                           vkm_err *e)
{
    return vkm_fail(e, VKM_ERR_FORMAT, "%s: %s: expected %s, got %s", c->path, key, want,
                    vkm_json_type_name(v));
}

static const cJSON *item(const cJSON *root, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    return cJSON_IsNull(v) ? NULL : v;
}

/* A boolean key that must be absent or false: the feature it turns on is not supported. */
static vkm_status refuse_true(const peft_cfg *c, const cJSON *root, const char *key,
                              const char *what, vkm_err *e)
{
    const cJSON *v = item(root, key);
    if (v && !cJSON_IsBool(v)) return bad_type(c, key, "true or false", v, e);
    if (cJSON_IsTrue(v))
        return vkm_fail(e, VKM_ERR_UNSUPPORTED, "%s: %s: %s is not supported", c->path, key, what);
    return VKM_OK;
}

/* rank_pattern (integer ranks) / alpha_pattern (numbers): absent, null or an object. */
static vkm_status check_pattern(const peft_cfg *c, const cJSON *p, const char *key, bool ranks,
                                vkm_err *e)
{
    if (!p) return VKM_OK;
    if (!cJSON_IsObject(p)) return bad_type(c, key, "an object", p, e);
    for (const cJSON *v = p->child; v; v = v->next) {
        int64_t r;
        double d;
        if (ranks ? !vkm_json_int(v, 1, VKM_MAX_LORA_RANK, &r) : !vkm_json_num(v, &d))
            return vkm_fail(e, VKM_ERR_FORMAT, "%s: %s['%s']: expected %s, got %s", c->path, key,
                            v->string, ranks ? "a rank from 1 to 65536" : "a number",
                            vkm_json_type_name(v));
    }
    return VKM_OK;
}

static vkm_status parse_config(vkm_adapter_src *a, const cJSON *root, peft_cfg *c, vkm_err *e)
{
    if (!cJSON_IsObject(root)) return bad_type(c, "the config", "an object", root, e);
    const cJSON *v = item(root, "peft_type");
    if (v && (!cJSON_IsString(v) || strcmp(v->valuestring, "LORA")))
        return vkm_fail(e, VKM_ERR_UNSUPPORTED, "%s: peft_type %s%.32s%s is not supported (only LORA)",
                        c->path, cJSON_IsString(v) ? "'" : "", cJSON_IsString(v) ? v->valuestring : "(not a string)",
                        cJSON_IsString(v) ? "'" : "");
    int64_t r = 8;
    if ((v = item(root, "r")) && !vkm_json_int(v, 1, VKM_MAX_LORA_RANK, &r))
        return bad_type(c, "r", "a rank from 1 to 65536", v, e);
    double alpha = 8;
    if ((v = item(root, "lora_alpha")) && !vkm_json_num(v, &alpha))
        return bad_type(c, "lora_alpha", "a number", v, e);
    c->r = a->r = (uint32_t)r;
    c->alpha = a->alpha = (float)alpha;
    if ((v = item(root, "use_rslora")) && !cJSON_IsBool(v)) return bad_type(c, "use_rslora", "true or false", v, e);
    a->rslora = cJSON_IsTrue(v);
    vkm_status s;
    if ((s = refuse_true(c, root, "use_dora", "DoRA (weight-decomposed LoRA)", e)) ||
        (s = refuse_true(c, root, "fan_in_fan_out", "a transposed (Conv1D, fan_in_fan_out) adapter", e)) ||
        (s = refuse_true(c, root, "lora_bias", "a LoRA bias", e)))
        return s;
    if ((v = item(root, "bias")) && (!cJSON_IsString(v) || strcmp(v->valuestring, "none")))
        return vkm_fail(e, VKM_ERR_UNSUPPORTED, "%s: bias: adapters that train biases are not supported (only \"none\")",
                        c->path);
    if ((v = item(root, "modules_to_save")) && (!cJSON_IsArray(v) || v->child))
        return vkm_fail(e, VKM_ERR_UNSUPPORTED, "%s: modules_to_save: fully trained modules are not supported",
                        c->path);
    if ((v = item(root, "target_modules"))) {
        if (!cJSON_IsString(v) && !cJSON_IsArray(v))
            return bad_type(c, "target_modules", "a list of module names or a string", v, e);
        for (const cJSON *t = cJSON_IsArray(v) ? v->child : NULL; t; t = t->next)
            if (!cJSON_IsString(t)) return bad_type(c, "target_modules[]", "a module name", t, e);
        c->targets = v;
    }
    c->rank_pattern = item(root, "rank_pattern");
    c->alpha_pattern = item(root, "alpha_pattern");
    if ((s = check_pattern(c, c->rank_pattern, "rank_pattern", true, e)) ||
        (s = check_pattern(c, c->alpha_pattern, "alpha_pattern", false, e)))
        return s;
    if ((v = item(root, "base_model_name_or_path")) && cJSON_IsString(v))
        snprintf(a->base_model, sizeof a->base_model, "%s", v->valuestring);
    return VKM_OK;
}

/* ---- module names and patterns ------------------------------------------------------------ */
/* PEFT's rule without regular expressions: the full module name equals key or ends in ".key". */
static bool name_matches(const char *full, const char *key)
{
    size_t n = strlen(full), k = strlen(key);
    if (k == 0 || k > n) return false;
    return !strcmp(full + n - k, key) && (k == n || full[n - k - 1] == '.');
}

static const cJSON *pattern_find(const cJSON *pattern, const char *full)
{
    for (const cJSON *v = pattern ? pattern->child : NULL; v; v = v->next)
        if (name_matches(full, v->string)) return v;
    return NULL;
}

static void full_name(const vkm_lora_pair *p, char *out, size_t cap)
{
    snprintf(out, cap, "model.layers.%u.%s.%s", p->layer, vkm_module_peft_parent(p->module),
             vkm_module_peft_name(p->module));
}

static vkm_status peft_params(void *ctx, const vkm_lora_pair *p, uint32_t *rank, float *alpha,
                              vkm_err *e)
{
    const peft_cfg *c = ctx;
    char full[128];
    full_name(p, full, sizeof full);
    const cJSON *t = c->targets;
    if (cJSON_IsArray(t)) {
        const cJSON *x = t->child;
        while (x && !name_matches(full, x->valuestring)) x = x->next;
        if (!x)
            return vkm_fail(e, VKM_ERR_FORMAT, "%s: tensor '%s' adapts %s, which target_modules does not list",
                            c->path, p->a->name, full);
    }
    const cJSON *rp = pattern_find(c->rank_pattern, full), *ap = pattern_find(c->alpha_pattern, full);
    *rank = rp ? (uint32_t)rp->valuedouble : c->r;
    *alpha = ap ? (float)ap->valuedouble : c->alpha;
    return VKM_OK;
}

/* ---- tensor names ------------------------------------------------------------------------- */
static bool take(const char **p, const char *lit)
{
    size_t n = strlen(lit);
    if (strncmp(*p, lit, n)) return false;
    *p += n;
    return true;
}

/* Copies the characters up to the next '.' (exclusive) into out; false if none or too long. */
static bool take_part(const char **p, char *out, size_t cap)
{
    const char *dot = strchr(*p, '.');
    size_t n = dot ? (size_t)(dot - *p) : 0;
    if (!dot || n == 0 || n >= cap) return false;
    memcpy(out, *p, n);
    out[n] = 0;
    *p = dot + 1;
    return true;
}

/* Refusals that a tensor name alone shows, before the name is parsed. */
static vkm_status refuse_name(const char *file, const char *n, vkm_err *e)
{
    const char *why = NULL;
    if (strstr(n, "lora_magnitude_vector")) why = "DoRA magnitude vectors are not supported";
    else if (strstr(n, "lora_embedding_") || strstr(n, "embed_tokens")) why = "embedding adapters are not supported";
    else if (!strncmp(n, "lm_head.", 8) || strstr(n, ".lm_head.")) why = "lm_head adapters are not supported";
    else if (strlen(n) > 5 && !strcmp(n + strlen(n) - 5, ".bias")) why = "bias adapters are not supported";
    if (why) return vkm_fail(e, VKM_ERR_UNSUPPORTED, "%s: tensor '%s': %s", file, n, why);
    return VKM_OK;
}

/* "[base_model.model.]model.layers.N.<parent>.<module>.lora_{A,B}[.<adapter>].weight" */
static vkm_status peft_half(vkm_adapter_src *a, uint64_t i, const vkm_tensor_src *t, vkm_lora_half *h,
                            vkm_err *e)
{
    const char *file = a->st.path, *n = t->name;
    vkm_status s = refuse_name(file, n, e);
    if (s) return s;
    const char *p = n;
    char parent[32], mod[32], ab[16], name[64] = "";
    uint32_t layer = 0;
    take(&p, "base_model.model.");
    bool ok = take(&p, "model.layers.") && *p >= '0' && *p <= '9' && (*p != '0' || p[1] == '.');
    while (ok && *p >= '0' && *p <= '9' && layer < VKM_MAX_LAYERS) layer = layer * 10 + (uint32_t)(*p++ - '0');
    ok = ok && layer < VKM_MAX_LAYERS && take(&p, ".") && take_part(&p, parent, sizeof parent) &&
         take_part(&p, mod, sizeof mod) && take_part(&p, ab, sizeof ab) &&
         (!strcmp(ab, "lora_A") || !strcmp(ab, "lora_B")) &&
         (!strcmp(p, "weight") || (take_part(&p, name, sizeof name) && !strcmp(p, "weight")));
    if (!ok)
        return vkm_fail(e, VKM_ERR_FORMAT,
                        "%s: tensor '%s' is not a PEFT LoRA tensor "
                        "(base_model.model.model.layers.N.<module>.lora_A/lora_B[.<adapter>].weight)",
                        file, n);
    if (!vkm_module_from_peft(mod, &h->module) || strcmp(parent, vkm_module_peft_parent(h->module)))
        return vkm_fail(e, VKM_ERR_UNSUPPORTED,
                        "%s: tensor '%s' adapts %s.%s, which is not one of the adaptable projections "
                        "(self_attn.q/k/v/o_proj, mlp.gate/up/down_proj)",
                        file, n, parent, mod);
    if (i == 0) snprintf(a->adapter_name, sizeof a->adapter_name, "%s", name);
    else if (strcmp(a->adapter_name, name))
        return vkm_fail(e, VKM_ERR_FORMAT, "%s: tensor '%s' has adapter name '%s' but others have '%s'",
                        file, n, name, a->adapter_name);
    h->layer = layer;
    h->is_b = ab[5] == 'B';
    h->t = t;
    return VKM_OK;
}

vkm_status vkm_peft_load(vkm_adapter_src *a, const char *config, size_t len,
                         const char *config_path, vkm_err *e)
{
    a->format = VKM_SRC_SAFETENSORS;
    a->rope_layout = VKM_ROPE_HALF;
    cJSON *root;
    vkm_status s = vkm_json_parse(config, len, config_path, &root, e);
    if (s) return s;
    peft_cfg c = {.path = config_path};
    s = parse_config(a, root, &c, e);
    vkm_lora_half *h = NULL;
    if (!s && !(h = calloc(a->st.n_tensors ? a->st.n_tensors : 1, sizeof *h)))
        s = vkm_fail(e, VKM_ERR_OUT_OF_HOST_MEMORY, "%s: out of memory", a->path);
    for (uint64_t i = 0; i < a->st.n_tensors && !s; i++) s = peft_half(a, i, &a->st.tensors[i], &h[i], e);
    if (!s) s = vkm_lora_build(a, a->st.path, h, (uint32_t)a->st.n_tensors, peft_params, &c, e);
    free(h);
    cJSON_Delete(root);
    return s;
}
