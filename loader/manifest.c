/*
 * manifest.c — the MoErge manifest (shared/DESIGN.md): a JSON file naming a base model, a bank of
 * experts and how they are routed and combined. Parsed with cJSON; every key is checked for its
 * type and range, unknown keys are errors naming the key path, relative paths are resolved
 * against the manifest's folder and must exist. docs/manifest.md documents the same.
 *
 * Keys and defaults:
 *   base                       required   path of the base model (GGUF, HF folder, safetensors)
 *   description                ""         free text, ignored
 *   experts                    required   1 to 64 objects, in expert order:
 *     name                     required   unique, 1 to 63 bytes of UTF-8
 *     lora | model             one of     a LoRA adapter (PEFT folder or GGUF LoRA) | a full
 *                                         fine-tune whose FFN is the expert
 *     scale                    1          user scale of the expert (finite)
 *     calib                    []         calibration text files (policy centroid)
 *     positive, negative       []         prompts (policy hidden; positive required there)
 *   router                     {}         (null = all defaults)
 *     policy                   "uniform"  uniform|noisy|learned|arrow|centroid|phatgoose|hidden|fixed
 *     granularity              "token"    token|sequence|task
 *     depth                    "module"   module|layer|model ("layer" with FFN experts; module
 *                                         there means one router per FFN matrix)
 *     top_k                    0          0 = dense; at most the number of experts (minus one
 *                                         with always_on)
 *     normalize                "softmax"  softmax|sigmoid|none
 *     temperature              1          > 0
 *     noise_std                0.02       >= 0 (policy noisy)
 *     seed                     0          integer 0 to 2^53
 *     always_on                null       null or the name of an expert added with weight 1
 *     weights                  null       router file (safetensors); required by learned and
 *                                         phatgoose, by centroid unless every expert has calib;
 *                                         refused by the other policies
 *     fixed                    null       task weights: [w per expert, in expert order] or
 *                                         {"name": w} (experts not named get 0); required by
 *                                         policy fixed and refused by the others
 *     route_attention          false      FFN experts: also mix q, k and v, each routed (moetify)
 *     fine_grained             false      FFN experts: one router per FFN matrix (= depth module)
 *   aggregate                  "output"   output|parameter|logits (parameter needs granularity
 *                                         sequence or task)
 *   merge                      "average"  average|exact (parameter aggregation)
 *   shared                     "base"     base|average: what FFN-expert models share
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "loader.h"

static const char *const policy_names[] = {"uniform", "noisy", "learned", "arrow", "centroid",
                                           "phatgoose", "hidden", "fixed", NULL};
static const char *const gran_names[] = {"token", "sequence", "task", NULL};
static const char *const depth_names[] = {"module", "layer", "model", NULL};
static const char *const agg_names[] = {"output", "parameter", "logits", NULL};
static const char *const merge_names[] = {"average", "exact", NULL};
static const char *const norm_names[] = {"softmax", "sigmoid", "none", NULL};
static const char *const shared_names[] = {"base", "average", NULL};

const char *vkm_policy_name(vkm_policy p)
{
    return (unsigned)p <= VKM_POLICY_FIXED ? policy_names[p] : "?";
}

static const char *const top_keys[] = {"base", "description", "experts", "router", "aggregate",
                                       "merge", "shared", NULL};
static const char *const expert_keys[] = {"name", "lora", "model", "scale", "calib", "positive",
                                          "negative", NULL};
static const char *const router_keys[] = {"policy", "granularity", "depth", "top_k", "normalize",
                                          "temperature", "noise_std", "seed", "always_on",
                                          "weights", "fixed", "route_attention", "fine_grained",
                                          NULL};

#define MAX_LIST 4096u          /* entries in calib / positive / negative */
#define MAX_PROMPT (1u << 20)   /* bytes of one prompt */

typedef struct mctx {
    vkm_manifest *m;
    const char *file;
    vkm_err *e;
} mctx;

/* "<file>: <path>: <message>" */
static vkm_status fail_at(mctx *c, vkm_status s, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static vkm_status fail_at(mctx *c, vkm_status s, const char *path, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return vkm_fail(c->e, s, "%s: %s: %s", c->file, path, msg);
}

/* ---- keys --------------------------------------------------------------------------------- */
static size_t edit_distance(const char *a, const char *b)
{
    size_t n = strlen(a), k = strlen(b), row[64];
    if (n >= 63 || k >= 63) return 99;
    for (size_t j = 0; j <= k; j++) row[j] = j;
    for (size_t i = 1; i <= n; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= k; j++) {
            size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[k];
}

static vkm_status check_keys(mctx *c, const cJSON *obj, const char *prefix, const char *const *allowed)
{
    for (const cJSON *v = obj->child; v; v = v->next) {
        size_t i = 0, best = 0, best_d = 99;
        for (; allowed[i] && strcmp(allowed[i], v->string); i++) {
            size_t d = edit_distance(allowed[i], v->string);
            if (d < best_d) best_d = d, best = i;
        }
        if (allowed[i]) continue;
        char path[160];
        snprintf(path, sizeof path, "%s%s%.100s", prefix, prefix[0] ? "." : "", v->string);
        if (best_d <= 2)
            return fail_at(c, VKM_ERR_FORMAT, path, "unknown key (did you mean '%s'?)", allowed[best]);
        return fail_at(c, VKM_ERR_FORMAT, path, "unknown key");
    }
    return VKM_OK;
}

/* obj[key], with null read as absent. */
static const cJSON *get(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNull(v) ? NULL : v;
}

static void key_path(char *out, size_t cap, const char *prefix, const char *key)
{
    snprintf(out, cap, "%s%s%s", prefix, prefix[0] ? "." : "", key);
}

static vkm_status get_enum(mctx *c, const cJSON *obj, const char *prefix, const char *key,
                           const char *const *names, int *out)
{
    const cJSON *v = get(obj, key);
    char path[96], list[160] = "";
    if (!v) return VKM_OK;
    key_path(path, sizeof path, prefix, key);
    for (int i = 0; names[i]; i++) {
        if (cJSON_IsString(v) && !strcmp(v->valuestring, names[i])) {
            *out = i;
            return VKM_OK;
        }
        size_t k = strlen(list);
        snprintf(list + k, sizeof list - k, "%s%s", i ? ", " : "", names[i]);
    }
    if (!cJSON_IsString(v))
        return fail_at(c, VKM_ERR_FORMAT, path, "expected one of %s, got %s", list, vkm_json_type_name(v));
    return fail_at(c, VKM_ERR_FORMAT, path, "'%.64s' is not one of %s", v->valuestring, list);
}

/* A number in [lo, hi] (lo excluded when lo_open). */
static vkm_status get_num(mctx *c, const cJSON *obj, const char *prefix, const char *key, double lo,
                          bool lo_open, double hi, float *out)
{
    const cJSON *v = get(obj, key);
    char path[96];
    double d;
    if (!v) return VKM_OK;
    key_path(path, sizeof path, prefix, key);
    if (!vkm_json_num(v, &d)) return fail_at(c, VKM_ERR_FORMAT, path, "expected a number, got %s", vkm_json_type_name(v));
    if (d < lo || (lo_open && d == lo) || d > hi)
        return fail_at(c, VKM_ERR_FORMAT, path, "%g is out of range (%s %g to %g)", d,
                       lo_open ? "above" : "from", lo, hi);
    *out = (float)d;
    return VKM_OK;
}

static vkm_status get_uint(mctx *c, const cJSON *obj, const char *prefix, const char *key, int64_t hi,
                           int64_t *out)
{
    const cJSON *v = get(obj, key);
    char path[96];
    if (!v) return VKM_OK;
    key_path(path, sizeof path, prefix, key);
    if (!vkm_json_int(v, 0, hi, out))
        return fail_at(c, VKM_ERR_FORMAT, path, "expected an integer from 0 to %lld, got %s%s", (long long)hi,
                       cJSON_IsNumber(v) ? "" : vkm_json_type_name(v), cJSON_IsNumber(v) ? "a number out of range" : "");
    return VKM_OK;
}

static vkm_status get_bool(mctx *c, const cJSON *obj, const char *prefix, const char *key, bool *out)
{
    const cJSON *v = get(obj, key);
    char path[96];
    if (!v) return VKM_OK;
    key_path(path, sizeof path, prefix, key);
    if (!cJSON_IsBool(v)) return fail_at(c, VKM_ERR_FORMAT, path, "expected true or false, got %s", vkm_json_type_name(v));
    *out = cJSON_IsTrue(v);
    return VKM_OK;
}

/* A path relative to the manifest's folder (or absolute) that must exist. */
static vkm_status resolve(mctx *c, const char *path, const cJSON *v, char *out, size_t cap)
{
    if (!cJSON_IsString(v)) return fail_at(c, VKM_ERR_FORMAT, path, "expected a path, got %s", vkm_json_type_name(v));
    if (!v->valuestring[0]) return fail_at(c, VKM_ERR_FORMAT, path, "the path is empty");
    if (!vkm_path_join(out, cap, c->m->dir, v->valuestring))
        return fail_at(c, VKM_ERR_LIMIT, path, "the path is too long");
    if (!vkm_exists(out)) return fail_at(c, VKM_ERR_IO, path, "%s: no such file or folder", out);
    return VKM_OK;
}

static vkm_status get_path(mctx *c, const cJSON *obj, const char *prefix, const char *key, char *out,
                           size_t cap)
{
    const cJSON *v = get(obj, key);
    char path[96];
    if (!v) return VKM_OK;
    key_path(path, sizeof path, prefix, key);
    return resolve(c, path, v, out, cap);
}

/* A list of strings (paths resolved and checked when paths is set). */
static vkm_status get_list(mctx *c, const cJSON *obj, const char *prefix, const char *key, bool paths,
                           char ***out, uint32_t *n)
{
    const cJSON *v = get(obj, key);
    char path[128];
    if (!v) return VKM_OK;
    key_path(path, sizeof path, prefix, key);
    if (!cJSON_IsArray(v)) return fail_at(c, VKM_ERR_FORMAT, path, "expected a list of %s, got %s",
                                          paths ? "paths" : "strings", vkm_json_type_name(v));
    int count = cJSON_GetArraySize(v);
    if (count > (int)MAX_LIST) return fail_at(c, VKM_ERR_LIMIT, path, "more than %u entries", MAX_LIST);
    if (!(*out = calloc((size_t)count + 1, sizeof **out)))
        return fail_at(c, VKM_ERR_OUT_OF_HOST_MEMORY, path, "out of memory");
    int i = 0;
    for (const cJSON *x = v->child; x; x = x->next, i++) {
        char item[160], buf[1024];
        snprintf(item, sizeof item, "%s[%d]", path, i);
        vkm_status s = VKM_OK;
        if (paths) s = resolve(c, item, x, buf, sizeof buf);
        else if (!cJSON_IsString(x)) s = fail_at(c, VKM_ERR_FORMAT, item, "expected a string, got %s", vkm_json_type_name(x));
        else if (strlen(x->valuestring) > MAX_PROMPT) s = fail_at(c, VKM_ERR_LIMIT, item, "longer than %u bytes", MAX_PROMPT);
        if (s) return s;
        if (!((*out)[i] = strdup(paths ? buf : x->valuestring)))
            return fail_at(c, VKM_ERR_OUT_OF_HOST_MEMORY, item, "out of memory");
        *n = (uint32_t)i + 1;
    }
    return VKM_OK;
}

/* ---- sections ----------------------------------------------------------------------------- */
static vkm_status parse_expert(mctx *c, const cJSON *x, uint32_t i)
{
    vkm_manifest_expert *ex = &c->m->experts[i];
    char pre[32], path[64];
    snprintf(pre, sizeof pre, "experts[%u]", i);
    if (!cJSON_IsObject(x)) return fail_at(c, VKM_ERR_FORMAT, pre, "expected an object, got %s", vkm_json_type_name(x));
    vkm_status s = check_keys(c, x, pre, expert_keys);
    if (s) return s;
    const cJSON *name = get(x, "name");
    snprintf(path, sizeof path, "%s.name", pre);
    if (!name) return fail_at(c, VKM_ERR_FORMAT, path, "missing (every expert needs a name)");
    if (!cJSON_IsString(name)) return fail_at(c, VKM_ERR_FORMAT, path, "expected a string, got %s", vkm_json_type_name(name));
    size_t len = strlen(name->valuestring);
    if (len == 0 || len >= sizeof ex->name || !vkm_utf8_valid(name->valuestring, len))
        return fail_at(c, VKM_ERR_FORMAT, path, "must be 1 to %zu bytes of UTF-8", sizeof ex->name - 1);
    memcpy(ex->name, name->valuestring, len + 1);
    for (uint32_t j = 0; j < i; j++)
        if (!strcmp(c->m->experts[j].name, ex->name))
            return fail_at(c, VKM_ERR_FORMAT, path, "duplicate expert name '%s' (also experts[%u])", ex->name, j);
    bool has_lora = get(x, "lora") != NULL, has_model = get(x, "model") != NULL;
    if (has_lora == has_model)
        return fail_at(c, VKM_ERR_FORMAT, pre, "needs exactly one of \"lora\" (an adapter) or \"model\" (a full fine-tune)");
    ex->scale = 1.0f;
    if ((s = get_path(c, x, pre, "lora", ex->lora, sizeof ex->lora)) ||
        (s = get_path(c, x, pre, "model", ex->model, sizeof ex->model)) ||
        (s = get_num(c, x, pre, "scale", -1e30, false, 1e30, &ex->scale)) ||
        (s = get_list(c, x, pre, "calib", true, &ex->calib, &ex->n_calib)) ||
        (s = get_list(c, x, pre, "positive", false, &ex->positive, &ex->n_positive)) ||
        (s = get_list(c, x, pre, "negative", false, &ex->negative, &ex->n_negative)))
        return s;
    return VKM_OK;
}

static vkm_status parse_experts(mctx *c, const cJSON *root)
{
    const cJSON *v = get(root, "experts");
    if (!v) return fail_at(c, VKM_ERR_FORMAT, "experts", "missing (a manifest needs at least one expert)");
    if (!cJSON_IsArray(v)) return fail_at(c, VKM_ERR_FORMAT, "experts", "expected a list, got %s", vkm_json_type_name(v));
    int n = cJSON_GetArraySize(v);
    if (n == 0) return fail_at(c, VKM_ERR_FORMAT, "experts", "the list is empty");
    if (n > VKM_MAX_EXPERTS) return fail_at(c, VKM_ERR_LIMIT, "experts", "%d experts, more than %d", n, VKM_MAX_EXPERTS);
    uint32_t i = 0;
    for (const cJSON *x = v->child; x; x = x->next, i++) {
        c->m->n_experts = i + 1;
        vkm_status s = parse_expert(c, x, i);
        if (s) return s;
    }
    return VKM_OK;
}

static int expert_index(const vkm_manifest *m, const char *name)
{
    for (uint32_t i = 0; i < m->n_experts; i++)
        if (!strcmp(m->experts[i].name, name)) return (int)i;
    return -1;
}

/* "fixed": [w...] in expert order or {"name": w}. */
static vkm_status parse_fixed(mctx *c, const cJSON *v)
{
    vkm_manifest *m = c->m;
    int i = 0;
    if (cJSON_IsArray(v)) {
        if (cJSON_GetArraySize(v) != (int)m->n_experts)
            return fail_at(c, VKM_ERR_FORMAT, "router.fixed", "%d weights for %u experts", cJSON_GetArraySize(v), m->n_experts);
        for (const cJSON *x = v->child; x; x = x->next, i++) {
            double d;
            if (!vkm_json_num(x, &d))
                return vkm_fail(c->e, VKM_ERR_FORMAT, "%s: router.fixed[%d]: expected a number, got %s", c->file, i,
                                vkm_json_type_name(x));
            m->router.fixed[i] = (float)d;
        }
    } else if (cJSON_IsObject(v)) {
        for (const cJSON *x = v->child; x; x = x->next) {
            double d;
            int k = expert_index(m, x->string);
            if (k < 0)
                return vkm_fail(c->e, VKM_ERR_FORMAT, "%s: router.fixed.%.64s: no expert has this name", c->file, x->string);
            if (!vkm_json_num(x, &d))
                return vkm_fail(c->e, VKM_ERR_FORMAT, "%s: router.fixed.%.64s: expected a number, got %s", c->file,
                                x->string, vkm_json_type_name(x));
            m->router.fixed[k] = (float)d;
        }
    } else {
        return fail_at(c, VKM_ERR_FORMAT, "router.fixed", "expected a list of weights in expert order or an object "
                       "{name: weight}, got %s", vkm_json_type_name(v));
    }
    m->router.has_fixed = true;
    return VKM_OK;
}

static vkm_status parse_router(mctx *c, const cJSON *root)
{
    vkm_manifest *m = c->m;
    const cJSON *r = get(root, "router");
    if (!r) return VKM_OK;
    if (!cJSON_IsObject(r)) return fail_at(c, VKM_ERR_FORMAT, "router", "expected an object, got %s", vkm_json_type_name(r));
    int pol = 0, gran = 0, depth = -1, norm = 0;
    int64_t top_k = 0, seed = 0;
    vkm_status s;
    if ((s = check_keys(c, r, "router", router_keys)) ||
        (s = get_enum(c, r, "router", "policy", policy_names, &pol)) ||
        (s = get_enum(c, r, "router", "granularity", gran_names, &gran)) ||
        (s = get_enum(c, r, "router", "depth", depth_names, &depth)) ||
        (s = get_enum(c, r, "router", "normalize", norm_names, &norm)) ||
        (s = get_uint(c, r, "router", "top_k", m->n_experts, &top_k)) ||
        (s = get_uint(c, r, "router", "seed", (int64_t)1 << 53, &seed)) ||
        (s = get_num(c, r, "router", "temperature", 0, true, 1e30, &m->router.temperature)) ||
        (s = get_num(c, r, "router", "noise_std", 0, false, 1e30, &m->router.noise_std)) ||
        (s = get_path(c, r, "router", "weights", m->router.weights, sizeof m->router.weights)) ||
        (s = get_bool(c, r, "router", "route_attention", &m->router.route_attention)) ||
        (s = get_bool(c, r, "router", "fine_grained", &m->router.fine_grained)))
        return s;
    m->router.policy = (vkm_policy)pol;
    m->router.granularity = (vkm_granularity)gran;
    if (depth < 0) { /* LoRA experts: each adapted matrix; FFN experts: one router per layer (fine-grained:
                      * one per matrix) */
        bool any_model = false;
        for (uint32_t i = 0; i < m->n_experts; i++) any_model |= m->experts[i].model[0] != 0;
        depth = any_model && !m->router.fine_grained ? VKM_DEPTH_LAYER : VKM_DEPTH_MODULE;
    }
    m->router.depth = (vkm_depth)depth;
    m->router.normalize = (vkm_normalize)norm;
    m->router.top_k = (uint32_t)top_k;
    m->router.seed = (uint64_t)seed;
    const cJSON *a = get(r, "always_on");
    if (a) {
        if (!cJSON_IsString(a))
            return fail_at(c, VKM_ERR_FORMAT, "router.always_on", "expected an expert name or null, got %s", vkm_json_type_name(a));
        if ((m->router.always_on = expert_index(m, a->valuestring)) < 0)
            return fail_at(c, VKM_ERR_FORMAT, "router.always_on", "no expert is named '%.64s'", a->valuestring);
    }
    const cJSON *f = get(r, "fixed");
    return f ? parse_fixed(c, f) : VKM_OK;
}

/* Rules between keys. */
static vkm_status check_combination(mctx *c)
{
    const vkm_manifest *m = c->m;
    vkm_policy p = m->router.policy;
    const char *pn = policy_names[p];
    if (m->router.always_on >= 0 && m->router.top_k >= m->n_experts)
        return fail_at(c, VKM_ERR_FORMAT, "router.top_k", "%u with an always-on expert: top-k is taken over the "
                       "other %u experts", m->router.top_k, m->n_experts - 1);
    if (p == VKM_POLICY_FIXED && !m->router.has_fixed)
        return fail_at(c, VKM_ERR_FORMAT, "router.fixed", "required by policy fixed");
    if (p != VKM_POLICY_FIXED && m->router.has_fixed)
        return fail_at(c, VKM_ERR_FORMAT, "router.fixed", "only policy fixed uses fixed weights (policy is %s)", pn);
    bool file_policy = p == VKM_POLICY_LEARNED || p == VKM_POLICY_PHATGOOSE || p == VKM_POLICY_CENTROID;
    bool all_calib = true, all_positive = true, any_model = false;
    for (uint32_t i = 0; i < m->n_experts; i++) {
        const vkm_manifest_expert *x = &m->experts[i];
        char path[64];
        all_calib &= x->n_calib > 0;
        all_positive &= x->n_positive > 0;
        any_model |= x->model[0] != 0;
        snprintf(path, sizeof path, "experts[%u].%s", i, x->n_calib ? "calib" : "positive");
        if (x->n_calib && p != VKM_POLICY_CENTROID && p != VKM_POLICY_LEARNED)
            return fail_at(c, VKM_ERR_FORMAT, path, "calibration files are used by policies centroid and learned "
                           "(fitting its router) only (policy is %s)", pn);
        if ((x->n_positive || x->n_negative) && p != VKM_POLICY_HIDDEN) {
            snprintf(path, sizeof path, "experts[%u].%s", i, x->n_positive ? "positive" : "negative");
            return fail_at(c, VKM_ERR_FORMAT, path, "prompts are used by policy hidden only (policy is %s)", pn);
        }
    }
    if (m->router.weights[0] && !file_policy)
        return fail_at(c, VKM_ERR_FORMAT, "router.weights", "policy %s does not use a router file", pn);
    if (!m->router.weights[0] && (p == VKM_POLICY_LEARNED || p == VKM_POLICY_PHATGOOSE))
        return fail_at(c, VKM_ERR_FORMAT, "router.weights", "required by policy %s", pn);
    if (p == VKM_POLICY_CENTROID && !m->router.weights[0] && !all_calib)
        return fail_at(c, VKM_ERR_FORMAT, "router.weights", "policy centroid needs a router file or calib files for every expert");
    if (p == VKM_POLICY_HIDDEN && !all_positive)
        return fail_at(c, VKM_ERR_FORMAT, "experts", "policy hidden needs positive prompts for every expert");
    if (m->aggregate == VKM_AGG_PARAMETER && m->router.granularity == VKM_GRAN_TOKEN)
        return fail_at(c, VKM_ERR_FORMAT, "aggregate", "parameter aggregation merges once per sequence or task: "
                       "set router.granularity to sequence or task");
    if ((m->router.route_attention || m->router.fine_grained) && !any_model)
        return fail_at(c, VKM_ERR_FORMAT, m->router.route_attention ? "router.route_attention" : "router.fine_grained",
                       "only applies to FFN experts (\"model\"), and there are none");
    if (m->router.fine_grained && m->router.depth != VKM_DEPTH_MODULE) /* a depth written so: its default is module */
        return fail_at(c, VKM_ERR_FORMAT, "router.fine_grained", "routes gate, up and down one by one: depth "
                       "\"module\", not \"%s\"", depth_names[m->router.depth]);
    if (m->router.fine_grained && p == VKM_POLICY_HIDDEN)
        return fail_at(c, VKM_ERR_FORMAT, "router.fine_grained", "policy hidden makes one gate per layer from "
                       "the prompts; fine_grained routes each FFN matrix on its own");
    return VKM_OK;
}

static vkm_status parse_root(mctx *c, const cJSON *root)
{
    vkm_manifest *m = c->m;
    if (!cJSON_IsObject(root)) return vkm_fail(c->e, VKM_ERR_FORMAT, "%s: expected a JSON object, got %s", c->file, vkm_json_type_name(root));
    int agg = 0, merge = 0, shared = 0;
    const cJSON *base = get(root, "base"), *d = get(root, "description");
    vkm_status s = check_keys(c, root, "", top_keys);
    if (!s && !base) s = fail_at(c, VKM_ERR_FORMAT, "base", "missing (the base model)");
    if (!s && d && !cJSON_IsString(d)) s = fail_at(c, VKM_ERR_FORMAT, "description", "expected a string, got %s", vkm_json_type_name(d));
    if (!s) s = resolve(c, "base", base, m->base, sizeof m->base);
    if (!s) s = parse_experts(c, root);
    if (!s) s = parse_router(c, root);
    if (!s) s = get_enum(c, root, "", "aggregate", agg_names, &agg);
    if (!s) s = get_enum(c, root, "", "merge", merge_names, &merge);
    if (!s) s = get_enum(c, root, "", "shared", shared_names, &shared);
    m->aggregate = (vkm_aggregate)agg;
    m->merge = (vkm_merge_kind)merge;
    m->shared = (vkm_shared)shared;
    return s ? s : check_combination(c);
}

/* ---- entry points ------------------------------------------------------------------------- */
static void set_defaults(vkm_manifest *m)
{
    m->router.policy = VKM_POLICY_UNIFORM;
    m->router.granularity = VKM_GRAN_TOKEN;
    m->router.depth = VKM_DEPTH_MODULE;
    m->router.normalize = VKM_NORM_SOFTMAX;
    m->router.temperature = 1.0f;
    m->router.noise_std = 0.02f;
    m->router.always_on = -1;
}

static vkm_status parse_text(vkm_manifest *m, const char *json, size_t len, vkm_err *e)
{
    cJSON *root;
    vkm_status s = vkm_json_parse(json, len, m->path, &root, e);
    if (s) return s;
    mctx c = {m, m->path, e};
    s = parse_root(&c, root);
    cJSON_Delete(root);
    return s;
}

vkm_status vkm_manifest_parse(const char *json, size_t len, const char *dir, vkm_manifest *m,
                              vkm_err *e)
{
    memset(m, 0, sizeof *m);
    set_defaults(m);
    snprintf(m->dir, sizeof m->dir, "%s", dir && dir[0] ? dir : ".");
    snprintf(m->path, sizeof m->path, "manifest");
    vkm_status s = parse_text(m, json, len, e);
    if (s) vkm_manifest_free(m);
    return s;
}

vkm_status vkm_manifest_load(const char *path, vkm_manifest *m, vkm_err *e)
{
    memset(m, 0, sizeof *m);
    set_defaults(m);
    snprintf(m->path, sizeof m->path, "%s", path);
    vkm_path_dir(m->dir, sizeof m->dir, path);
    char *text;
    uint64_t len;
    vkm_status s = vkm_read_text(path, VKM_MAX_JSON_FILE, &text, &len, e);
    if (s) return s;
    s = parse_text(m, text, (size_t)len, e);
    free(text);
    if (s) vkm_manifest_free(m);
    return s;
}

bool vkm_manifest_sniff(const char *path, char *base, size_t cap)
{
    char *text = NULL;
    uint64_t n = 0;
    vkm_err e;
    if (vkm_read_text(path, VKM_MAX_JSON_FILE, &text, &n, &e)) return false;
    cJSON *j = cJSON_ParseWithLength(text, (size_t)n);
    const cJSON *b = cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, "base") : NULL;
    const bool yes = b && cJSON_GetObjectItemCaseSensitive(j, "experts");
    if (yes && base && cap) {
        char dir[1024];
        vkm_path_dir(dir, sizeof dir, path);
        if (!cJSON_IsString(b) || !vkm_path_join(base, cap, dir, b->valuestring)) base[0] = 0;
    }
    cJSON_Delete(j);
    free(text);
    return yes;
}

static void free_list(char **v, uint32_t n)
{
    for (uint32_t i = 0; v && i < n; i++) free(v[i]);
    free(v);
}

void vkm_manifest_free(vkm_manifest *m)
{
    if (!m) return;
    for (uint32_t i = 0; i < VKM_MAX_EXPERTS; i++) {
        vkm_manifest_expert *x = &m->experts[i];
        free_list(x->positive, x->n_positive);
        free_list(x->negative, x->n_negative);
        free_list(x->calib, x->n_calib);
        x->positive = x->negative = x->calib = NULL;
        x->n_positive = x->n_negative = x->n_calib = 0;
    }
}
