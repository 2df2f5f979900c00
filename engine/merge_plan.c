/*
 * merge_plan.c — the methods' structure (mergekit's defaults) and the plan of a model merge: the
 * inputs in kernel order, every parameter resolved and checked, and per tensor the parameter
 * block of merge.comp, the selection slots (ranks of the k largest magnitudes) and the
 * coefficients of slerp and model_stock from the tensor's Gram sums.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "merge.h"

/* ---- methods ------------------------------------------------------------------------------ */
typedef struct method_info {
    bool needs_base;
    vkm_mop op;
    uint32_t flags;           /* sparsification and consensus                                   */
    bool outliers;            /* breadcrumbs                                                    */
    bool normalize;           /* default                                                        */
    bool rescale;             /* default                                                        */
    vkm_mreduce reduce;
} method_info;

static const method_info methods[VKM_MERGE_METHOD_COUNT] = {
    [VKM_MERGE_LINEAR] = {false, VKM_MOP_LINEAR, 0, false, true, false, VKM_MRED_NONE},
    [VKM_MERGE_TASK_ARITHMETIC] = {true, VKM_MOP_TASK, 0, false, false, false, VKM_MRED_NONE},
    [VKM_MERGE_TIES] = {true, VKM_MOP_TASK, VKM_MFLAG_SELECT | VKM_MFLAG_CONSENSUS, false, true, false, VKM_MRED_NONE},
    [VKM_MERGE_DARE_LINEAR] = {true, VKM_MOP_TASK, VKM_MFLAG_RANDOM, false, false, true, VKM_MRED_NONE},
    [VKM_MERGE_DARE_TIES] = {true, VKM_MOP_TASK, VKM_MFLAG_RANDOM | VKM_MFLAG_CONSENSUS, false, false, true, VKM_MRED_NONE},
    [VKM_MERGE_BREADCRUMBS] = {true, VKM_MOP_TASK, VKM_MFLAG_SELECT, true, false, false, VKM_MRED_NONE},
    [VKM_MERGE_BREADCRUMBS_TIES] = {true, VKM_MOP_TASK, VKM_MFLAG_SELECT | VKM_MFLAG_CONSENSUS, true, false, false, VKM_MRED_NONE},
    [VKM_MERGE_SLERP] = {true, VKM_MOP_LINEAR, 0, false, false, false, VKM_MRED_INPUTS},
    [VKM_MERGE_MODEL_STOCK] = {true, VKM_MOP_LINEAR, 0, false, false, false, VKM_MRED_DELTAS},
    [VKM_MERGE_LORA_LINEAR] = {false, VKM_MOP_LINEAR, 0, false, false, false, VKM_MRED_NONE},
    [VKM_MERGE_LORA_CAT] = {false, VKM_MOP_LINEAR, 0, false, false, false, VKM_MRED_NONE},
    [VKM_MERGE_LORA_BAKE] = {true, VKM_MOP_LINEAR, 0, false, false, false, VKM_MRED_NONE},
};

/* ---- the plan ----------------------------------------------------------------------------- */
static double pick(double model, double global, double dflt)
{
    return !isnan(model) ? model : !isnan(global) ? global : dflt;
}

/* Adds input `path` with model i's parameters (i < 0: the base, no parameters). */
static vkm_status add_input(vkm_mplan *pl, const vkm_merge_params *p, int i, vkm_err *e)
{
    if (pl->n_in == VKM_MERGE_MAX_IN)
        return vkm_fail(e, VKM_ERR_LIMIT, "merge: more than %d inputs", VKM_MERGE_MAX_IN);
    uint32_t j = pl->n_in++;
    const vkm_merge_model *m = i >= 0 ? &p->models[i] : NULL;
    pl->path[j] = m ? m->path : p->base;
    pl->weight[j] = pick(m ? m->weight : NAN, p->weight, NAN);
    pl->density[j] = pick(m ? m->density : NAN, p->density, 1.0);
    pl->gamma[j] = pick(m ? m->gamma : NAN, p->gamma, 0.01);
    if (m && isnan(pl->weight[j]) && (pl->op == VKM_MOP_TASK || pl->method == VKM_MERGE_LINEAR))
        return vkm_fail(e, VKM_ERR_INVALID_ARGUMENT, "merge: models[%d] (%s): parameter 'weight' is "
                        "required by %s", i, m->path, vkm_merge_method_name(pl->method));
    bool weight_used = m && pl->method != VKM_MERGE_SLERP && pl->method != VKM_MERGE_MODEL_STOCK;
    if (!(pl->density[j] >= 0.0) || !(pl->gamma[j] >= 0.0) || pl->gamma[j] > 1.0 ||
        (weight_used && !isfinite(pl->weight[j])))
        return vkm_fail(e, VKM_ERR_INVALID_ARGUMENT, "merge: models[%d] (%s): weight %g, density %g "
                        "or gamma %g is out of range", i, m ? m->path : p->base, pl->weight[j],
                        pl->density[j], pl->gamma[j]);
    return VKM_OK;
}

vkm_status vkm_mplan_init(vkm_mplan *pl, const vkm_merge_params *p, vkm_err *e)
{
    memset(pl, 0, sizeof *pl);
    if ((unsigned)p->method >= VKM_MERGE_METHOD_COUNT || p->method >= VKM_MERGE_LORA_LINEAR)
        return vkm_fail(e, VKM_ERR_INVALID_ARGUMENT, "merge: method %d is not a model merge", (int)p->method);
    const method_info *mi = &methods[p->method];
    pl->method = p->method;
    pl->op = mi->op;
    pl->flags = mi->flags;
    pl->outliers = mi->outliers;
    pl->reduce = mi->reduce;
    pl->normalize = p->normalize < 0 ? mi->normalize : p->normalize != 0;
    pl->rescale = p->rescale < 0 ? mi->rescale : p->rescale != 0;
    pl->lambda = isnan(p->lambda) ? 1.0 : p->lambda;
    pl->t = p->t;
    pl->seed = p->seed;
    if (pl->normalize) pl->flags |= VKM_MFLAG_NORMALIZE;
    if (p->n_models > VKM_MERGE_MAX_MODELS)
        return vkm_fail(e, VKM_ERR_LIMIT, "merge: %u models, more than %d", p->n_models, VKM_MERGE_MAX_MODELS);
    if (mi->needs_base && !p->base[0])
        return vkm_fail(e, VKM_ERR_INVALID_ARGUMENT, "merge: %s needs a base_model", vkm_merge_method_name(p->method));
    if (!isfinite(pl->lambda))
        return vkm_fail(e, VKM_ERR_INVALID_ARGUMENT, "merge: lambda %g is not finite", pl->lambda);
    if (p->rescale > 0 && !(pl->flags & VKM_MFLAG_RANDOM))
        return vkm_fail(e, VKM_ERR_UNSUPPORTED, "merge: rescale is supported for the DARE methods only");
    vkm_status s = VKM_OK;
    /* inputs: the models (the base skipped where it is the reference), then the base */
    for (uint32_t i = 0; i < p->n_models && !s; i++) {
        if (mi->needs_base && !strcmp(p->models[i].path, p->base)) continue;
        for (uint32_t k = 0; k < i; k++)
            if (!strcmp(p->models[k].path, p->models[i].path))
                return vkm_fail(e, VKM_ERR_INVALID_ARGUMENT, "merge: models[%u] and models[%u] are both %s",
                                k, i, p->models[i].path);
        s = add_input(pl, p, (int)i, e);
    }
    if (s) return s;
    uint32_t n_models = pl->n_in;
    pl->base = pl->n_in;
    if (mi->needs_base && p->method != VKM_MERGE_SLERP) {
        if ((s = add_input(pl, p, -1, e))) return s;
    }
    switch (p->method) {
    case VKM_MERGE_SLERP: /* inputs: base (t = 0), then the other model; no base in the kernel */
        if (n_models != 1)
            return vkm_fail(e, VKM_ERR_INVALID_ARGUMENT, "merge: slerp takes exactly two models, the "
                            "base_model and one other (got %u besides the base)", n_models);
        if (!isfinite(pl->t))
            return vkm_fail(e, VKM_ERR_INVALID_ARGUMENT, "merge: slerp needs parameter 't'");
        pl->path[1] = pl->path[0];
        pl->path[0] = p->base;
        pl->n_in = 2;
        pl->base = 2;
        break;
    case VKM_MERGE_MODEL_STOCK:
        if (n_models < 2 || n_models > VKM_REDUCE_MAXV)
            return vkm_fail(e, VKM_ERR_INVALID_ARGUMENT, "merge: model_stock takes 2 to %d models "
                            "besides the base_model (got %u)", VKM_REDUCE_MAXV, n_models);
        break;
    case VKM_MERGE_LINEAR: {
        if (n_models < 1) return vkm_fail(e, VKM_ERR_INVALID_ARGUMENT, "merge: linear needs models");
        double sum = 0;
        for (uint32_t j = 0; j < n_models; j++) sum += pl->weight[j];
        if (pl->normalize && fabs(sum) < 1e-8)
            return vkm_fail(e, VKM_ERR_INVALID_ARGUMENT, "merge: linear with normalize: the weights sum to 0");
        break;
    }
    default:
        if (n_models < 1)
            return vkm_fail(e, VKM_ERR_INVALID_ARGUMENT, "merge: %s needs models besides the base_model",
                            vkm_merge_method_name(p->method));
        break;
    }
    return VKM_OK;
}

/* ---- per tensor --------------------------------------------------------------------------- */
static uint32_t f32_bits(double v)
{
    float f = (float)v;
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void vkm_merge_dare_key(uint64_t seed, const char *name, uint32_t j, uint32_t key[2])
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a of the tensor name */
    for (const char *c = name; *c; c++) h = (h ^ (uint8_t)*c) * 0x100000001b3ull;
    uint64_t s = seed ^ h ^ ((uint64_t)(j + 1) * 0xd1b54a32d192ed03ull);
    uint64_t k = splitmix64(&s);
    key[0] = (uint32_t)k;
    key[1] = (uint32_t)(k >> 32);
}

uint32_t vkm_merge_dare_threshold(double density)
{
    if (!(density > 0)) return 0;
    double t = floor(density * 4294967296.0);
    return t >= 4294967295.0 ? 0xffffffffu : (uint32_t)t;
}

static uint32_t add_slot(vkm_mtask *t, uint32_t input, uint64_t k)
{
    uint32_t s = t->n_slots++;
    t->slot_input[s] = input;
    t->slot_k[s] = (uint32_t)k;
    return s;
}

void vkm_mplan_task(const vkm_mplan *pl, const char *name, uint64_t n, vkm_mtask *t)
{
    memset(t, 0, sizeof *t);
    uint32_t *prm = t->params;
    double wsum = 0;
    for (uint32_t j = 0; j < pl->n_in; j++) {
        uint32_t *q = prm + 8 * j;
        q[0] = f32_bits(pl->weight[j]);
        q[1] = VKM_MNONE;
        q[4] = f32_bits(1.0);
        q[5] = q[6] = VKM_MNONE;
        if (j == pl->base) continue;
        wsum += pl->weight[j];
        double dens = pl->density[j];
        if ((pl->flags & VKM_MFLAG_RANDOM) && dens < 1.0) {
            q[1] = vkm_merge_dare_threshold(dens);
            vkm_merge_dare_key(pl->seed, name, j, q + 2);
            if (pl->rescale && dens > 0) q[4] = f32_bits(dens);
        }
        if ((pl->flags & VKM_MFLAG_SELECT) && dens < 1.0) {
            uint64_t target = (uint64_t)(dens * (double)n);
            if (!pl->outliers) {
                q[5] = add_slot(t, j, target);
            } else {
                int64_t n_top = (int64_t)(pl->gamma[j] * (double)n);
                int64_t n_bot = (int64_t)n - (int64_t)target - n_top;
                if (n_bot < 0) n_top += n_bot;
                q[5] = add_slot(t, j, (uint64_t)n_top + target);
                if (n_top > 0) q[6] = add_slot(t, j, (uint64_t)n_top);
            }
        }
    }
    double div = 1.0; /* the kernels multiply by its inverse */
    if (pl->op == VKM_MOP_LINEAR && pl->normalize) div = wsum;
    if (pl->op == VKM_MOP_TASK) div = fabs(wsum) < 1e-8 ? 1.0 : wsum;
    prm[VKM_MPARAM_G] = f32_bits(1.0 / div);
    prm[VKM_MPARAM_G + 2] = f32_bits(0.0);
    prm[VKM_MPARAM_G + 3] = f32_bits(pl->lambda);
}

void vkm_mplan_coef(const vkm_mplan *pl, vkm_mtask *t, const double *gram)
{
    uint32_t *prm = t->params;
    if (pl->method == VKM_MERGE_SLERP) { /* gram: <v0,v0>, <v0,v1>, <v1,v1> */
        const double eps = 1e-8, t_ = pl->t;
        double n0 = sqrt(gram[0]), n1 = sqrt(gram[2]);
        double dot = gram[1] / (n0 > eps ? n0 : 1.0) / (n1 > eps ? n1 : 1.0);
        double c0, c1;
        if (fabs(dot) > 0.9995) {
            c0 = 1.0 - t_;
            c1 = t_;
        } else {
            double th0 = acos(dot), s0 = sin(th0), tht = th0 * t_;
            c0 = sin(th0 - tht) / s0;
            c1 = sin(tht) / s0;
        }
        prm[0] = f32_bits(c0);
        prm[8] = f32_bits(c1);
        prm[VKM_MPARAM_G] = f32_bits(1.0);
        return;
    }
    /* model_stock: the M task vectors' pairwise cosines, averaged */
    uint32_t m = pl->n_in - 1, p = 0;
    double diag[VKM_REDUCE_MAXV], cos_sum = 0;
    for (uint32_t a = 0; a < m; a++)
        for (uint32_t b = a; b < m; b++, p++)
            if (a == b) diag[a] = gram[p];
    p = 0;
    for (uint32_t a = 0; a < m; a++)
        for (uint32_t b = a; b < m; b++, p++) {
            if (a == b) continue;
            double np = sqrt(diag[a]) * sqrt(diag[b]), c = gram[p] / (np > 1e-6 ? np : 1e-6);
            cos_sum += c < -1 ? -1 : c > 1 ? 1 : c;
        }
    double c = cos_sum / (m * (m - 1) / 2.0), N = m;
    double tt = N * c / (1.0 + (N - 1.0) * c);
    for (uint32_t j = 0; j < m; j++) prm[8 * j] = f32_bits(1.0);
    prm[VKM_MPARAM_G] = f32_bits(tt / N);
    prm[VKM_MPARAM_G + 2] = f32_bits(1.0 - tt);
}

void vkm_mplan_describe(const vkm_mplan *pl, char *buf, size_t cap)
{
    size_t n = 0;
#define PUT(...) n += (size_t)snprintf(buf + (n < cap ? n : cap), n < cap ? cap - n : 0, __VA_ARGS__)
    PUT("method=%s", vkm_merge_method_name(pl->method));
    if (pl->op == VKM_MOP_TASK) PUT(" lambda=%g", pl->lambda);
    if (pl->method == VKM_MERGE_SLERP) PUT(" t=%g", pl->t);
    if (pl->method == VKM_MERGE_LINEAR || pl->op == VKM_MOP_TASK) PUT(" normalize=%s", pl->normalize ? "true" : "false");
    if (pl->flags & VKM_MFLAG_RANDOM) PUT(" rescale=%s seed=%llu", pl->rescale ? "true" : "false",
                                          (unsigned long long)pl->seed);
    for (uint32_t j = 0; j < pl->n_in; j++) {
        if (j == pl->base) {
            PUT("; base=%s", pl->path[j]);
            continue;
        }
        PUT("; model=%s", pl->path[j]);
        if (pl->method == VKM_MERGE_LINEAR || pl->op == VKM_MOP_TASK) PUT(" weight=%g", pl->weight[j]);
        if (pl->flags & (VKM_MFLAG_SELECT | VKM_MFLAG_RANDOM)) PUT(" density=%g", pl->density[j]);
        if (pl->outliers) PUT(" gamma=%g", pl->gamma[j]);
    }
#undef PUT
}
