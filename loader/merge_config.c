/*
 * merge_config.c — the merge methods' names and default params, and mergekit's YAML merge
 * configs (mergekit-yaml config.yml) read with libyaml into a vkm_merge_params: merge_method, base_model, models[].model and .parameters, the global
 * parameters, dtype / out_dtype, and vkmoe's random_seed. Paths are resolved against the
 * config's folder and must exist. What vkmoe does not do (slices, per-tensor parameter lists,
 * '+' LoRA model strings) and every unknown key is refused with the key path and line.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "base.h"

/* ---- methods and defaults ----------------------------------------------------------------- */
static const char *const method_names[VKM_MERGE_METHOD_COUNT] = {
    [VKM_MERGE_LINEAR] = "linear",           [VKM_MERGE_TASK_ARITHMETIC] = "task_arithmetic",
    [VKM_MERGE_TIES] = "ties",               [VKM_MERGE_DARE_LINEAR] = "dare_linear",
    [VKM_MERGE_DARE_TIES] = "dare_ties",     [VKM_MERGE_BREADCRUMBS] = "breadcrumbs",
    [VKM_MERGE_BREADCRUMBS_TIES] = "breadcrumbs_ties", [VKM_MERGE_SLERP] = "slerp",
    [VKM_MERGE_MODEL_STOCK] = "model_stock", [VKM_MERGE_LORA_LINEAR] = "lora_linear",
    [VKM_MERGE_LORA_CAT] = "lora_cat",       [VKM_MERGE_LORA_BAKE] = "lora_bake",
};

const char *vkm_merge_method_name(vkm_merge_method m)
{
    return (unsigned)m < VKM_MERGE_METHOD_COUNT ? method_names[m] : NULL;
}

bool vkm_merge_method_from_name(const char *name, vkm_merge_method *out)
{
    for (int m = 0; name && m < VKM_MERGE_METHOD_COUNT; m++)
        if (!strcmp(name, method_names[m])) {
            *out = (vkm_merge_method)m;
            return true;
        }
    return false;
}

vkm_merge_params vkm_merge_default_params(void)
{
    vkm_merge_params p;
    memset(&p, 0, sizeof p);
    p.method = VKM_MERGE_LINEAR;
    p.weight = p.density = p.gamma = p.lambda = p.t = NAN;
    p.normalize = p.rescale = -1;
    p.out_dtype = VKM_WEIGHTS_AUTO;
    for (int i = 0; i < VKM_MERGE_MAX_MODELS; i++)
        p.models[i].weight = p.models[i].density = p.models[i].gamma = NAN;
    return p;
}

/* ---- the YAML ----------------------------------------------------------------------------- */

typedef struct cfg {
    const char *path;
    char dir[1024];
    yaml_document_t *doc;
    vkm_merge_params *p;
    char *msg;
    size_t cap;
} cfg;

static vkm_status fail(cfg *c, vkm_status s, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static vkm_status fail(cfg *c, vkm_status s, const yaml_node_t *n, const char *fmt, ...)
{
    if (!c->msg || !c->cap) return s;
    int k = snprintf(c->msg, c->cap, "%s:%lu: ", c->path, n ? (unsigned long)n->start_mark.line + 1 : 0ul);
    if (k < 0 || (size_t)k >= c->cap) return s;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->msg + k, c->cap - (size_t)k, fmt, ap);
    va_end(ap);
    return s;
}

static const char *scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static vkm_status number(cfg *c, const char *key, const yaml_node_t *n, double *out)
{
    const char *s = scalar(n);
    if (!s) {
        if (n && (n->type == YAML_SEQUENCE_NODE || n->type == YAML_MAPPING_NODE))
            return fail(c, VKM_ERR_UNSUPPORTED, n, "%s: per-tensor parameter values (filters, gradients) "
                        "are not supported; give one number", key);
        return fail(c, VKM_ERR_FORMAT, n, "%s: expected a number", key);
    }
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v))
        return fail(c, VKM_ERR_FORMAT, n, "%s: '%s' is not a finite number", key, s);
    *out = v;
    return VKM_OK;
}

static vkm_status boolean(cfg *c, const char *key, const yaml_node_t *n, int *out)
{
    const char *s = scalar(n);
    /* YAML 1.1's spellings, as PyYAML (mergekit) reads them */
    static const char *const t[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", "1"};
    static const char *const f[] = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF", "0"};
    for (size_t i = 0; s && i < sizeof t / sizeof t[0]; i++) {
        if (!strcmp(s, t[i])) return *out = 1, VKM_OK;
        if (!strcmp(s, f[i])) return *out = 0, VKM_OK;
    }
    return fail(c, VKM_ERR_FORMAT, n, "%s: expected true or false", key);
}

/* A model path: resolved against the config's folder; it must exist. */
static vkm_status model_path(cfg *c, const char *key, const yaml_node_t *n, char *out, size_t cap)
{
    const char *s = scalar(n);
    if (!s || !s[0]) return fail(c, VKM_ERR_FORMAT, n, "%s: expected a path", key);
    if (!vkm_path_join(out, cap, c->dir, s))
        return fail(c, VKM_ERR_LIMIT, n, "%s: path too long", key);
    if (strchr(s, '+') && !vkm_exists(out)) /* mergekit's model+lora, not a name with a '+' in it */
        return fail(c, VKM_ERR_UNSUPPORTED, n, "%s: '%s': a model with a LoRA applied ('+') is not "
                    "supported; bake it first (merge_method: lora_bake)", key, s);
    if (!vkm_exists(out))
        return fail(c, VKM_ERR_IO, n, "%s: '%s' is not a file or folder (paths are relative to the "
                    "config's folder, %s)", key, s, c->dir);
    return VKM_OK;
}

/* A mapping whose keys are all distinct strings (PyYAML would silently keep the last of a
 * repeated key; a repeated 'models' list here would have been merged into one). */
static vkm_status distinct_keys(cfg *c, const char *where, const yaml_node_t *n)
{
    for (yaml_node_pair_t *a = n->data.mapping.pairs.start; a < n->data.mapping.pairs.top; a++) {
        const yaml_node_t *ka = yaml_document_get_node(c->doc, a->key);
        const char *sa = scalar(ka);
        if (!sa) return fail(c, VKM_ERR_FORMAT, ka, "%s: keys must be strings", where);
        for (yaml_node_pair_t *b = n->data.mapping.pairs.start; b < a; b++) {
            const char *sb = scalar(yaml_document_get_node(c->doc, b->key));
            if (sb && !strcmp(sa, sb)) return fail(c, VKM_ERR_FORMAT, ka, "%s: '%s' is given twice", where, sa);
        }
    }
    return VKM_OK;
}

static bool key_is(const yaml_node_pair_t *pr, yaml_document_t *d, const char *k)
{
    const char *s = scalar(yaml_document_get_node(d, pr->key));
    return s && !strcmp(s, k);
}

/* weight / density / gamma of a model (m) or the globals (m NULL; also lambda, t, ...). */
static vkm_status parameters(cfg *c, const char *where, const yaml_node_t *n, vkm_merge_model *m)
{
    const char *empty = scalar(n);
    if (n->type == YAML_SCALAR_NODE && (!empty || !empty[0] || !strcmp(empty, "~") || !strcmp(empty, "null")))
        return VKM_OK; /* "parameters:" with nothing under it */
    if (n->type != YAML_MAPPING_NODE) return fail(c, VKM_ERR_FORMAT, n, "%s: expected a mapping", where);
    vkm_merge_params *p = c->p;
    vkm_status s = distinct_keys(c, where, n);
    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top && !s; pr++) {
        const yaml_node_t *k = yaml_document_get_node(c->doc, pr->key), *v = yaml_document_get_node(c->doc, pr->value);
        const char *key = scalar(k);
        char full[160];
        snprintf(full, sizeof full, "%s.%s", where, key ? key : "?");
        if (!key) s = fail(c, VKM_ERR_FORMAT, k, "%s: keys must be strings", where);
        else if (!strcmp(key, "weight")) s = number(c, full, v, m ? &m->weight : &p->weight);
        else if (!strcmp(key, "density")) s = number(c, full, v, m ? &m->density : &p->density);
        else if (!strcmp(key, "gamma")) s = number(c, full, v, m ? &m->gamma : &p->gamma);
        else if (m) s = fail(c, VKM_ERR_FORMAT, k, "%s: unknown model parameter (weight, density, gamma)", full);
        else if (!strcmp(key, "lambda")) s = number(c, full, v, &p->lambda);
        else if (!strcmp(key, "t")) s = number(c, full, v, &p->t);
        else if (!strcmp(key, "normalize")) s = boolean(c, full, v, &p->normalize);
        else if (!strcmp(key, "rescale")) s = boolean(c, full, v, &p->rescale);
        else if (!strcmp(key, "int8_mask")) {
            int ignored;
            s = boolean(c, full, v, &ignored);
        } else if (!strcmp(key, "filter_wise")) {
            int fw = 0;
            s = boolean(c, full, v, &fw);
            if (!s && fw) s = fail(c, VKM_ERR_UNSUPPORTED, v, "%s: filter-wise model_stock is not supported", full);
        } else {
            s = fail(c, VKM_ERR_FORMAT, k, "%s: unknown parameter (weight, density, gamma, lambda, t, "
                     "normalize, rescale, int8_mask)", full);
        }
    }
    return s;
}

static vkm_status models(cfg *c, const yaml_node_t *n)
{
    if (n->type != YAML_SEQUENCE_NODE) return fail(c, VKM_ERR_FORMAT, n, "models: expected a list");
    vkm_merge_params *p = c->p;
    vkm_status s = VKM_OK;
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top && !s; it++) {
        const yaml_node_t *m = yaml_document_get_node(c->doc, *it);
        char where[64];
        snprintf(where, sizeof where, "models[%u]", p->n_models);
        if (p->n_models == VKM_MERGE_MAX_MODELS)
            return fail(c, VKM_ERR_LIMIT, m, "models: more than %d", VKM_MERGE_MAX_MODELS);
        vkm_merge_model *mm = &p->models[p->n_models++];
        if (m->type != YAML_MAPPING_NODE) return fail(c, VKM_ERR_FORMAT, m, "%s: expected a mapping", where);
        if ((s = distinct_keys(c, where, m))) return s;
        bool have = false;
        for (yaml_node_pair_t *pr = m->data.mapping.pairs.start; pr < m->data.mapping.pairs.top && !s; pr++) {
            const yaml_node_t *k = yaml_document_get_node(c->doc, pr->key), *v = yaml_document_get_node(c->doc, pr->value);
            char full[96];
            snprintf(full, sizeof full, "%s.%s", where, scalar(k) ? scalar(k) : "?");
            if (key_is(pr, c->doc, "model")) {
                s = model_path(c, full, v, mm->path, sizeof mm->path);
                have = true;
            } else if (key_is(pr, c->doc, "parameters")) {
                s = parameters(c, full, v, mm);
            } else {
                s = fail(c, VKM_ERR_FORMAT, k, "%s: unknown key (model, parameters)", full);
            }
        }
        if (!s && !have) s = fail(c, VKM_ERR_FORMAT, m, "%s: 'model' is missing", where);
    }
    return s;
}

/* dtype: the output's type unless out_dtype gives it (mergekit: dtype is the type merged in, out_dtype
 * the type written; the merge here always computes in f32). */
static vkm_status dtype(cfg *c, const char *key, const yaml_node_t *n, bool *out_given)
{
    const char *s = scalar(n);
    static const struct {
        const char *name;
        vkm_dtype t;
    } names[] = {{"float32", VKM_F32}, {"float16", VKM_F16}, {"bfloat16", VKM_BF16},
                 {"fp32", VKM_F32},    {"fp16", VKM_F16},    {"bf16", VKM_BF16}};
    for (size_t i = 0; s && i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(s, names[i].name)) {
            const bool out = !strcmp(key, "out_dtype");
            if (out || !*out_given) c->p->out_dtype = (int)names[i].t;
            *out_given |= out;
            return VKM_OK;
        }
    return fail(c, VKM_ERR_UNSUPPORTED, n, "%s: '%s' (float32, float16 or bfloat16)", key, s ? s : "?");
}

static vkm_status top(cfg *c, const yaml_node_t *root)
{
    if (!root || root->type != YAML_MAPPING_NODE)
        return fail(c, VKM_ERR_FORMAT, root, "a merge config is a mapping (merge_method, models, ...)");
    vkm_merge_params *p = c->p;
    vkm_status s = distinct_keys(c, "the config", root);
    bool have_method = false, out_given = false;
    for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top && !s; pr++) {
        const yaml_node_t *k = yaml_document_get_node(c->doc, pr->key), *v = yaml_document_get_node(c->doc, pr->value);
        const char *key = scalar(k);
        if (!key) {
            s = fail(c, VKM_ERR_FORMAT, k, "keys must be strings");
        } else if (!strcmp(key, "merge_method")) {
            have_method = true;
            if (!scalar(v) || !vkm_merge_method_from_name(scalar(v), &p->method)) {
                char list[512] = "";
                for (int m = 0; m < VKM_MERGE_METHOD_COUNT; m++)
                    snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", m ? ", " : "",
                             vkm_merge_method_name((vkm_merge_method)m));
                s = fail(c, VKM_ERR_UNSUPPORTED, v, "merge_method: unknown method '%s' (%s)",
                         scalar(v) ? scalar(v) : "?", list);
            }
        } else if (!strcmp(key, "base_model")) {
            s = model_path(c, "base_model", v, p->base, sizeof p->base);
        } else if (!strcmp(key, "models")) {
            s = models(c, v);
        } else if (!strcmp(key, "parameters")) {
            s = parameters(c, "parameters", v, NULL);
        } else if (!strcmp(key, "dtype") || !strcmp(key, "out_dtype")) {
            s = dtype(c, key, v, &out_given);
        } else if (!strcmp(key, "random_seed")) {
            double seed;
            s = number(c, key, v, &seed);
            if (!s && (seed < 0 || seed != floor(seed) || seed > 9007199254740992.0))
                s = fail(c, VKM_ERR_FORMAT, v, "random_seed: expected a non-negative integer");
            if (!s) p->seed = (uint64_t)seed;
        } else if (!strcmp(key, "tokenizer_source")) {
            if (!scalar(v) || strcmp(scalar(v), "base"))
                s = fail(c, VKM_ERR_UNSUPPORTED, v, "tokenizer_source: only 'base' is supported (the "
                         "output takes the base's, else the first model's, tokenizer)");
        } else if (!strcmp(key, "slices")) {
            s = fail(c, VKM_ERR_UNSUPPORTED, k, "slices: not supported: vkmoe merges whole models "
                     "(list them under 'models')");
        } else {
            s = fail(c, VKM_ERR_FORMAT, k, "unknown key '%s' (merge_method, base_model, models, "
                     "parameters, dtype, out_dtype, tokenizer_source, random_seed)", key);
        }
    }
    if (!s && !have_method) s = fail(c, VKM_ERR_FORMAT, root, "merge_method is missing");
    if (!s && p->method >= VKM_MERGE_LORA_LINEAR && !out_given)
        p->out_dtype = VKM_WEIGHTS_AUTO; /* LoRA methods: a bare dtype is only the type merged in (f32 here) */
    if (!s && p->n_models == 0) s = fail(c, VKM_ERR_FORMAT, root, "models is missing or empty");
    return s;
}

vkm_status vkm_merge_config_load(const char *path, vkm_merge_params *out, char *msg, size_t cap)
{
    if (msg && cap) msg[0] = 0;
    if (!path || !out) return VKM_ERR_INVALID_ARGUMENT;
    *out = vkm_merge_default_params();
    cfg c = {path, "", NULL, out, msg, cap};
    vkm_path_dir(c.dir, sizeof c.dir, path);
    vkm_err e;
    vkm_err_clear(&e);
    char *text;
    uint64_t len;
    vkm_status s = vkm_read_text(path, 16u << 20, &text, &len, &e);
    if (s) {
        if (msg && cap) snprintf(msg, cap, "%s", e.msg);
        return s;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        free(text);
        return fail(&c, VKM_ERR_OUT_OF_HOST_MEMORY, NULL, "out of memory");
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, (size_t)len);
    if (!yaml_parser_load(&parser, &doc)) {
        s = VKM_ERR_FORMAT;
        if (msg && cap)
            snprintf(msg, cap, "%s:%lu: YAML: %s", path, (unsigned long)parser.problem_mark.line + 1,
                     parser.problem ? parser.problem : "malformed");
    } else {
        c.doc = &doc;
        s = top(&c, yaml_document_get_root_node(&doc));
        yaml_document_delete(&doc);
        yaml_document_t more; /* one document per config, as PyYAML's safe_load wants */
        if (!s && !yaml_parser_load(&parser, &more)) {
            s = VKM_ERR_FORMAT;
            if (msg && cap)
                snprintf(msg, cap, "%s:%lu: YAML: %s", path, (unsigned long)parser.problem_mark.line + 1,
                         parser.problem ? parser.problem : "malformed");
        } else if (!s) {
            const yaml_node_t *root = yaml_document_get_root_node(&more);
            if (root) s = fail(&c, VKM_ERR_FORMAT, root, "a second YAML document (one merge per config)");
            yaml_document_delete(&more);
        }
    }
    yaml_parser_delete(&parser);
    free(text);
    if (s) {
        char keep[2048];
        snprintf(keep, sizeof keep, "%s", msg ? msg : "");
        *out = vkm_merge_default_params();
        if (msg && cap) snprintf(msg, cap, "%s", keep);
    }
    return s;
}
