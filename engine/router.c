/*
 * router.c — routers from manifests, one per routing policy of the MoErging survey:
 *   uniform    every expert, weight 1/E (moetify's gate-less); no kernel
 *   fixed      the manifest's task weights (LoraHub); no kernel
 *   noisy      a seeded N(0, noise_std^2) router per routing point (moetify's noisy top-k)
 *   learned    router weights from a safetensors file (names in shared/DESIGN.md)
 *   arrow      per module, each expert's prototype = top right singular vector of B A,
 *              computed on the GPU at load; logit = |v . x|
 *   centroid   cos(mean hidden state, c_e); c_e from the router file or from each expert's
 *              calibration texts run through the base model (mean of the final normed states)
 *   phatgoose  per-module gate vectors from a file; logit = g . x / |x|
 * Routing points: module depth = every site; layer depth = one per layer (site l*7); model
 * depth = one (site 0); decisions are copied to every site they govern.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "writer.h"

static const char *module_names[VKM_N_MODULES] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                                  "gate_proj", "up_proj", "down_proj"};

/* The routing points a router decides at. LoRA banks: module depth every site, layer depth
 * site l*7, model depth site 0. FFN experts: module depth the mixed matrices (gate, up, down;
 * q, k, v with attention mixing), layer depth the FFN input (site l*7 + gate, for the whole
 * FFN) and, with attention mixing, q, k and v each (moetify routes them one by one); model
 * depth site 0. */
bool vkm_router_is_point(const vkm_model *m, const vkm_router *r, uint32_t site)
{
    const uint32_t mod = site % VKM_N_MODULES;
    const bool attn = m->ffn && mod < VKM_MOD_O && vkm_ffn_mixed(m->ffn, mod);
    switch (r->depth) {
    case VKM_DEPTH_MODULE: return !m->ffn || mod >= VKM_MOD_GATE || attn;
    case VKM_DEPTH_LAYER: return m->ffn ? mod == VKM_MOD_GATE || attn : mod == 0;
    default: return site == 0;
    }
}

uint32_t vkm_router_copies(const vkm_model *m, const vkm_router *r, uint32_t site)
{
    switch (r->depth) {
    case VKM_DEPTH_MODULE: return 1;
    case VKM_DEPTH_LAYER:
        if (!m->ffn) return VKM_N_MODULES;
        return site % VKM_N_MODULES == VKM_MOD_GATE ? 3 : 1; /* gate, up, down / q, k or v alone */
    default: return m->bank->n_sites;
    }
}

static bool is_point(const vkm_model *m, const vkm_router *r, uint32_t site)
{
    return vkm_router_is_point(m, r, site);
}

/* Input length of a routing point: a site's input (module depth) or the model dim. */
static uint32_t point_in(const vkm_model *m, const vkm_router *r, uint32_t site)
{
    return r->depth == VKM_DEPTH_MODULE ? m->bank->sites[site].in : m->hp.dim;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double gauss(uint64_t *s)
{
    double u1 = ((double)(splitmix(s) >> 11) + 1.0) / 9007199254740993.0;
    double u2 = (double)(splitmix(s) >> 11) / 9007199254740992.0;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* The router-file tensor name of a routing point (with FFN experts and attention mixing, the
 * layer-depth routers of q, k and v are named as module-depth ones). */
static void point_name(const vkm_router *r, uint32_t site, char *out, size_t cap)
{
    if (r->depth == VKM_DEPTH_MODULE || (r->depth == VKM_DEPTH_LAYER && r->ffn_attn_point && site % VKM_N_MODULES < VKM_MOD_O))
        snprintf(out, cap, "layers.%u.%s.router.weight", site / VKM_N_MODULES, module_names[site % VKM_N_MODULES]);
    else if (r->depth == VKM_DEPTH_LAYER)
        snprintf(out, cap, "layers.%u.router.weight", site / VKM_N_MODULES);
    else
        snprintf(out, cap, "router.weight");
}

static void normalize_rows(float *w, uint32_t rows, uint32_t cols)
{
    for (uint32_t e = 0; e < rows; e++) {
        double ss = 0;
        for (uint32_t c = 0; c < cols; c++) ss += (double)w[(size_t)e * cols + c] * w[(size_t)e * cols + c];
        double inv = ss > 0 ? 1.0 / sqrt(ss) : 0.0;
        for (uint32_t c = 0; c < cols; c++) w[(size_t)e * cols + c] = (float)(w[(size_t)e * cols + c] * inv);
    }
}

/* A point's matrix: n_exp rows of its input length (+ one row of biases with VKM_ROUTER_BIAS). */
static vkm_status alloc_point(vkm_model *m, vkm_router *r, uint32_t site, vkm_range *out)
{
    uint32_t rows = r->n_exp + ((r->flags & VKM_ROUTER_BIAS) ? 1 : 0);
    return vkm_arena_alloc(&r->arena, 4ull * rows * point_in(m, r, site), 16, out);
}

/* learned / phatgoose / centroid matrices from the router file */
static vkm_status load_file(vkm_model *m, vkm_router *r, const char *path)
{
    vkm_err *err = m->d->err;
    vkm_st st;
    vkm_status s = vkm_st_open(path, &st, err);
    if (s != VKM_OK) return s;
    for (uint64_t i = 0; i < st.n_tensors; i++) { /* biases ("...router.bias" [E]) anywhere: a bias row */
        const char *tn = st.tensors[i].name;
        size_t nl = strlen(tn);
        if (nl >= 11 && !strcmp(tn + nl - 11, "router.bias") && (nl == 11 || tn[nl - 12] == '.'))
            r->flags |= VKM_ROUTER_BIAS;
    }
    if ((r->flags & VKM_ROUTER_BIAS) && r->policy == VKM_POLICY_CENTROID) {
        vkm_st_close(&st);
        return vkm_fail(err, VKM_ERR_FORMAT, "%s: a centroid router has no biases (use policy learned)", path);
    }
    for (uint32_t site = 0; site < m->bank->n_sites && s == VKM_OK; site++) {
        if (!is_point(m, r, site)) continue;
        char name[128];
        point_name(r, site, name, sizeof name);
        const vkm_tensor_src *t = vkm_st_tensor(&st, name);
        uint32_t in = point_in(m, r, site);
        if (!t) {
            if (r->depth == VKM_DEPTH_MODULE && !m->ffn && !m->bank->sites[site].used) continue; /* nothing routed there */
            s = vkm_fail(err, VKM_ERR_NOT_FOUND, "%s: tensor %s is missing (router.weights for policy %s, "
                         "depth %s)", path, name, vkm_policy_name(r->policy),
                         r->depth == VKM_DEPTH_MODULE ? "module" : r->depth == VKM_DEPTH_LAYER ? "layer" : "model");
            break;
        }
        if (t->n_dims != 2 || t->ne[0] != in || t->ne[1] != r->n_exp) {
            s = vkm_fail(err, VKM_ERR_MISMATCH, "%s: %s has shape [%lld, %lld]; expected [%u, %u] "
                         "(experts x input)", path, name, (long long)t->ne[1], (long long)t->ne[0], r->n_exp, in);
            break;
        }
        const uint32_t rows = r->n_exp + ((r->flags & VKM_ROUTER_BIAS) ? 1 : 0);
        float *w = calloc((size_t)rows * in, 4);
        if (!w) s = vkm_fail(err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        if (s == VKM_OK) s = vkm_to_f32(t->dtype, t->data, (uint64_t)r->n_exp * in, w);
        if (s == VKM_OK && r->policy == VKM_POLICY_CENTROID) normalize_rows(w, r->n_exp, in);
        if (s == VKM_OK && rows > r->n_exp) { /* this point's biases, if given */
            char bname[128];
            snprintf(bname, sizeof bname, "%.*s.bias", (int)(strlen(name) - 7), name);
            const vkm_tensor_src *bt = vkm_st_tensor(&st, bname);
            if (bt && vkm_tensor_nelem(bt) != r->n_exp)
                s = vkm_fail(err, VKM_ERR_MISMATCH, "%s: %s has %lld values, expected %u", path, bname,
                             (long long)vkm_tensor_nelem(bt), r->n_exp);
            else if (bt)
                s = vkm_to_f32(bt->dtype, bt->data, r->n_exp, w + (size_t)r->n_exp * in);
        }
        if (s == VKM_OK) s = alloc_point(m, r, site, &r->r[site]);
        if (s == VKM_OK) s = vkm_upload(m->d, r->r[site], w, 4ull * rows * in);
        free(w);
    }
    vkm_st_close(&st);
    return s;
}

static vkm_status make_noisy(vkm_model *m, vkm_router *r, float std, uint64_t seed)
{
    vkm_status s = VKM_OK;
    for (uint32_t site = 0; site < m->bank->n_sites && s == VKM_OK; site++) {
        if (!is_point(m, r, site)) continue;
        uint32_t in = point_in(m, r, site);
        float *w = malloc(4ull * r->n_exp * in);
        if (!w) return vkm_fail(m->d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        uint64_t st = seed * 0x9e3779b97f4a7c15ull + site;
        for (uint64_t i = 0; i < (uint64_t)r->n_exp * in; i++) w[i] = (float)(gauss(&st) * std);
        s = alloc_point(m, r, site, &r->r[site]);
        if (s == VKM_OK) s = vkm_upload(m->d, r->r[site], w, 4ull * r->n_exp * in);
        free(w);
    }
    return s;
}

/* Arrow: prototypes for every site, on the GPU. */
static vkm_status make_arrow(vkm_model *m, vkm_router *r, uint32_t map_off)
{
    vkm_bank *b = m->bank;
    vkm_status s = VKM_OK;
    for (uint32_t site = 0; site < b->n_sites && s == VKM_OK; site++)
        s = alloc_point(m, r, site, &r->r[site]);
    if (s != VKM_OK) return s;
    s = vkm_rec_begin(&m->rec, m->cmd);
    for (uint32_t site = 0; site < b->n_sites && s == VKM_OK; site++) {
        const vkm_site *st = &b->sites[site];
        if (!st->used) {
            vkm_rec_fill(&m->rec, r->r[site], 0);
            continue;
        }
        vkm_arrow_call c = {st->a, st->bt, b->meta, vkm_model_step_range(m), r->r[site], st->in, st->out,
                            site * b->n_total * 4, 200, r->n_exp, map_off, b->rmax};
        vkm_op_arrow(&m->rec, &c);
    }
    vkm_status e = vkm_rec_end(&m->rec);
    if (s == VKM_OK) s = e;
    if (s == VKM_OK) s = vkm_dev_submit_wait(m->d, m->cmd);
    return s;
}

/* An empty router (path: where it comes from), or NULL when out of memory. */
static vkm_router *router_new(vkm_model *m, const char *path)
{
    vkm_router *r = calloc(1, sizeof *r);
    if (r) r->r = calloc(m->bank->n_sites, sizeof *r->r);
    if (!r || !r->r) {
        free(r);
        vkm_fail(m->d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        return NULL;
    }
    vkm_arena_init(&r->arena, m->d, VKM_MEM_DEVICE, 4u << 20);
    snprintf(r->path, sizeof r->path, "%s", path);
    return r;
}

vkm_status vkm_router_create(vkm_model *m, const vkm_manifest *man, vkm_router **out)
{
    vkm_err *err = m->d->err;
    *out = NULL;
    if (m->n_routers == VKM_MAX_ROUTERS)
        return vkm_fail(err, VKM_ERR_LIMIT, "a model holds at most %d routers", VKM_MAX_ROUTERS);
    vkm_router *r = router_new(m, man->path);
    if (!r) return VKM_ERR_OUT_OF_HOST_MEMORY;
    r->policy = man->router.policy;
    r->gran = man->router.granularity;
    r->depth = man->router.depth;
    r->agg = man->aggregate;
    r->merge = man->merge;
    r->norm = man->router.normalize;
    r->top_k = man->router.top_k;
    r->temperature = man->router.temperature;
    r->always_on = -1;
    r->ffn_attn_point = m->ffn && m->ffn->attn_mask;
    vkm_status s = VKM_OK;
    for (uint32_t i = 0; i < man->n_experts && s == VKM_OK; i++) {
        if (!man->experts[i].lora[0] && !man->experts[i].model[0]) continue;
        int e = vkm_bank_find(m->bank, &man->experts[i]);
        if (e < 0)
            s = vkm_fail(err, VKM_ERR_NOT_FOUND, "%s: experts[%u] (%s) is not in the model's bank: a "
                         "router can use only experts the model was loaded with", man->path, i, man->experts[i].name);
        else {
            if ((int32_t)i == man->router.always_on) r->always_on = (int32_t)r->n_exp;
            if (man->router.has_fixed) r->fixed[r->n_exp] = man->router.fixed[i];
            r->map[r->n_exp++] = (uint32_t)e;
        }
    }
    const uint32_t map_off = vkm_step_maps(m) + 64 * m->n_routers;
    uint32_t *maps = (uint32_t *)m->step_buf.map + map_off;
    for (uint32_t i = 0; i < r->n_exp; i++) maps[i] = r->map[i];
    r->flags = r->norm == VKM_NORM_SOFTMAX ? VKM_ROUTER_SOFTMAX : r->norm == VKM_NORM_SIGMOID ? VKM_ROUTER_SIGMOID : 0;
    if (s == VKM_OK) switch (r->policy) {
        case VKM_POLICY_UNIFORM:
            for (uint32_t i = 0; i < r->n_exp; i++) r->fixed[i] = 1.0f / (float)r->n_exp;
            break;
        case VKM_POLICY_FIXED:
            break;
        case VKM_POLICY_NOISY:
            r->has_matrix = true;
            s = make_noisy(m, r, man->router.noise_std, man->router.seed);
            break;
        case VKM_POLICY_LEARNED:
        case VKM_POLICY_PHATGOOSE:
            r->has_matrix = true;
            if (r->policy == VKM_POLICY_PHATGOOSE) r->flags |= VKM_ROUTER_NORM_INPUT;
            if (!man->router.weights[0])
                s = vkm_fail(err, VKM_ERR_INVALID_ARGUMENT, "%s: router.weights: policy %s needs a router file",
                             man->path, vkm_policy_name(r->policy));
            else
                s = load_file(m, r, man->router.weights);
            break;
        case VKM_POLICY_ARROW:
            r->has_matrix = true;
            r->flags |= VKM_ROUTER_ABS;
            if (m->ffn) /* every prototype would be 0: every token the first k experts */
                s = vkm_fail(err, VKM_ERR_INVALID_ARGUMENT, "%s: router.policy: Arrow's prototypes come from "
                             "LoRA experts (B A); whole fine-tunes have none", man->path);
            else if (r->depth != VKM_DEPTH_MODULE)
                s = vkm_fail(err, VKM_ERR_INVALID_ARGUMENT, "%s: router.depth: Arrow routes per module "
                             "(its prototypes belong to each adapted matrix)", man->path);
            else
                s = make_arrow(m, r, map_off);
            break;
        case VKM_POLICY_CENTROID:
            r->has_matrix = true;
            r->flags |= VKM_ROUTER_NORM_INPUT;
            if (man->router.weights[0]) s = load_file(m, r, man->router.weights);
            else s = vkm_router_calibrate(m, r, man, m->n_routers);
            break;
        case VKM_POLICY_HIDDEN:
            r->has_matrix = true;
            if (r->depth != VKM_DEPTH_LAYER)
                s = vkm_fail(err, VKM_ERR_INVALID_ARGUMENT, "%s: router.depth: the hidden policy's gates belong "
                             "to each layer (depth layer)", man->path);
            else
                s = vkm_router_hidden(m, r, man);
            break;
        default:
            s = vkm_fail(err, VKM_ERR_UNSUPPORTED, "%s: router.policy %s is not known", man->path,
                         vkm_policy_name(r->policy));
        }
    if (s == VKM_OK && !r->has_matrix && r->gran != VKM_GRAN_TASK)
        r->gran = VKM_GRAN_TASK; /* no matrix (uniform, fixed): the same for every token and sequence */
    if (s == VKM_OK && r->has_matrix && r->gran == VKM_GRAN_TASK)
        s = vkm_fail(err, VKM_ERR_INVALID_ARGUMENT, "%s: router.granularity task fixes the weights for "
                     "the whole task: use policy fixed (or uniform), not %s", man->path, vkm_policy_name(r->policy));
    if (s == VKM_OK && r->agg == VKM_AGG_LOGITS && r->gran == VKM_GRAN_TOKEN)
        s = vkm_fail(err, VKM_ERR_INVALID_ARGUMENT, "%s: aggregate logits runs the chosen experts as separate "
                     "sequences: granularity must be sequence or task", man->path);
    if (s == VKM_OK && r->agg == VKM_AGG_LOGITS && r->has_matrix && r->norm == VKM_NORM_NONE)
        s = vkm_fail(err, VKM_ERR_INVALID_ARGUMENT, "%s: aggregate logits mixes the chosen experts' "
                     "distributions, with weights that cannot be negative: normalize softmax or sigmoid, not "
                     "none", man->path);
    if (s == VKM_OK && r->agg == VKM_AGG_PARAMETER && r->gran == VKM_GRAN_TOKEN)
        s = vkm_fail(err, VKM_ERR_INVALID_ARGUMENT, "%s: aggregate parameter merges once per sequence or "
                     "task: granularity must be sequence or task", man->path);
    if (s != VKM_OK) {
        vkm_router_free(m, r);
        return s;
    }
    *out = r;
    return VKM_OK;
}

void vkm_router_free(vkm_model *m, vkm_router *r)
{
    (void)m;
    if (!r) return;
    vkm_arena_destroy(&r->arena);
    free(r->r);
    free(r);
}

vkm_status vkm_model_save_router(vkm_model *m, uint32_t ri, const char *path)
{
    if (!m || !path) return VKM_ERR_INVALID_ARGUMENT;
    vkm_err *err = m->d->err;
    vkm_err_clear(err);
    if (ri >= m->n_routers) return vkm_fail(err, VKM_ERR_INVALID_ARGUMENT, "router %u (the model has %u)", ri, m->n_routers);
    const vkm_router *r = m->routers[ri];
    if (!r->has_matrix)
        return vkm_fail(err, VKM_ERR_STATE, "router %u (%s) has fixed weights, no matrices", ri, vkm_policy_name(r->policy));
    vkm_st_writer *w = NULL;
    vkm_status s = vkm_st_writer_create(path, &w, err);
    if (s == VKM_OK) s = vkm_st_writer_set_meta(w, "vkmoe.policy", vkm_policy_name(r->policy));
    char name[128], bname[128];
    const bool bias = r->flags & VKM_ROUTER_BIAS;
    for (uint32_t p = 0; p < m->bank->n_sites && s == VKM_OK; p++)
        if (is_point(m, r, p) && r->r[p].buf) {
            point_name(r, p, name, sizeof name);
            int64_t ne[2] = {point_in(m, r, p), r->n_exp}, nb[1] = {r->n_exp};
            s = vkm_st_writer_add_tensor(w, name, VKM_F32, 2, ne);
            snprintf(bname, sizeof bname, "%.*s.bias", (int)(strlen(name) - 7), name);
            if (s == VKM_OK && bias) s = vkm_st_writer_add_tensor(w, bname, VKM_F32, 1, nb);
        }
    if (s == VKM_OK) s = vkm_st_writer_begin(w);
    for (uint32_t p = 0; p < m->bank->n_sites && s == VKM_OK; p++)
        if (is_point(m, r, p) && r->r[p].buf) {
            point_name(r, p, name, sizeof name);
            uint64_t bytes = 4ull * point_in(m, r, p) * r->n_exp;
            float *h = malloc(bytes + 4ull * point_in(m, r, p));
            s = h ? vkm_download(m->d, r->r[p], h, bias ? bytes + 4ull * point_in(m, r, p) : bytes)
                  : VKM_ERR_OUT_OF_HOST_MEMORY;
            if (s == VKM_OK) s = vkm_st_writer_write_tensor(w, name, h, bytes);
            snprintf(bname, sizeof bname, "%.*s.bias", (int)(strlen(name) - 7), name);
            if (s == VKM_OK && bias) s = vkm_st_writer_write_tensor(w, bname, h + bytes / 4, 4ull * r->n_exp);
            free(h);
        }
    if (s == VKM_OK) s = vkm_st_writer_finish(w);
    vkm_st_writer_free(w);
    return s;
}

vkm_status vkm_model_router_info(const vkm_model *m, uint32_t ri, vkm_router_info *o)
{
    if (!m || !o || ri >= m->n_routers) return VKM_ERR_INVALID_ARGUMENT;
    const vkm_router *r = m->routers[ri];
    static const char *gran[] = {"token", "sequence", "task"}, *depth[] = {"module", "layer", "model"};
    static const char *agg[] = {"output", "parameter", "logits"}, *merge[] = {"average", "exact"};
    memset(o, 0, sizeof *o);
    snprintf(o->policy, sizeof o->policy, "%s", vkm_policy_name(r->policy));
    snprintf(o->granularity, sizeof o->granularity, "%s", gran[r->gran]);
    snprintf(o->depth, sizeof o->depth, "%s", depth[r->depth]);
    snprintf(o->aggregate, sizeof o->aggregate, "%s", agg[r->agg]);
    snprintf(o->merge, sizeof o->merge, "%s", merge[r->merge]);
    o->n_experts = r->n_exp;
    o->top_k = r->top_k;
    snprintf(o->manifest, sizeof o->manifest, "%s", r->path);
    return VKM_OK;
}

vkm_status vkm_router_from_gates(vkm_model *m, const vkm_tensor_src *(*get)(void *, const char *), void *user,
                                 const char *path, vkm_router **out)
{
    vkm_err *err = m->d->err;
    const vkm_hparams *hp = &m->hp;
    *out = NULL;
    vkm_router *r = router_new(m, path);
    if (!r) return VKM_ERR_OUT_OF_HOST_MEMORY;
    r->policy = hp->moe_gateless ? VKM_POLICY_UNIFORM : VKM_POLICY_LEARNED;
    r->gran = hp->moe_gateless ? VKM_GRAN_TASK : VKM_GRAN_TOKEN;
    r->depth = hp->moe_fine ? VKM_DEPTH_MODULE : VKM_DEPTH_LAYER;
    r->agg = VKM_AGG_OUTPUT;
    r->norm = VKM_NORM_SOFTMAX;
    r->flags = VKM_ROUTER_SOFTMAX;
    r->n_exp = m->bank->n_exp;
    r->top_k = hp->moe_gateless ? 0 : hp->n_experts_used;
    r->temperature = 1.0f;
    r->always_on = hp->moe_always_on ? 0 : -1; /* moetify: expert 0, its router holds the others */
    r->has_matrix = !hp->moe_gateless;
    r->ffn_attn_point = hp->moe_attn != 0;
    uint32_t *maps = (uint32_t *)m->step_buf.map + vkm_step_maps(m) + 64 * m->n_routers;
    for (uint32_t e = 0; e < r->n_exp; e++) {
        maps[e] = r->map[e] = e;
        r->fixed[e] = 1.0f / (float)r->n_exp;
    }
    vkm_status s = VKM_OK;
    const uint32_t E = r->n_exp, skip = r->always_on >= 0 ? 1 : 0;
    static const char *const inp[7] = {"attn_q", "attn_k", "attn_v", "", "ffn_gate", "ffn_up", "ffn_down"};
    for (uint32_t p = 0; p < m->bank->n_sites && s == VKM_OK && r->has_matrix; p++) {
        if (!vkm_router_is_point(m, r, p)) continue;
        const uint32_t in = point_in(m, r, p);
        char name[64];
        snprintf(name, sizeof name, "blk.%u.%s_inp.weight", p / VKM_N_MODULES, inp[p % VKM_N_MODULES]);
        const vkm_tensor_src *t = get(user, name);
        if (!t || vkm_tensor_nelem(t) != (int64_t)(E - skip) * in) {
            s = vkm_fail(err, VKM_ERR_NOT_FOUND, "%s: %s (a router, [%u, %u]) is missing or misshapen", path, name,
                         E - skip, in);
            break;
        }
        float *w = calloc((size_t)E * in, 4); /* an always-on expert's row stays zero: it is never ranked */
        s = w ? vkm_to_f32(t->dtype, t->data, (uint64_t)(E - skip) * in, w + (size_t)skip * in)
              : vkm_fail(err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        if (s == VKM_OK) s = alloc_point(m, r, p, &r->r[p]);
        if (s == VKM_OK) s = vkm_upload(m->d, r->r[p], w, 4ull * E * in);
        free(w);
    }
    if (s != VKM_OK) {
        vkm_router_free(m, r);
        return s;
    }
    *out = r;
    return VKM_OK;
}
