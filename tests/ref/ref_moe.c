/*
 * ref_moe.c — the routed LoRA reference.
 */
#include "ref_moe.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint32_t n_points(const ref_moe *x) { return x->m->n_layers * REF_MOD; }

static uint32_t site_in(const ref_model *m, uint32_t mod)
{
    return mod == 3 ? m->n_heads * m->head_dim : mod == 6 ? m->ffn : m->dim;
}

static bool site_used(const ref_bank *b, uint32_t layer, uint32_t mod)
{
    for (uint32_t e = 0; e < b->n_exp; e++)
        if (ref_bank_at(b, layer, mod, e)->rank) return true;
    return false;
}

void ref_moe_decide(ref_moe *x, const ref_router *r, uint32_t p, const double *v, uint32_t in)
{
    const uint32_t E = x->bank->n_exp;
    double lg[REF_MAX_EXP], nrm = 0;
    for (uint32_t c = 0; c < in; c++) nrm += v[c] * v[c];
    nrm = sqrt(nrm);
    for (uint32_t e = 0; e < E; e++) {
        double s = 0;
        for (uint32_t c = 0; c < in; c++) s += (double)r->r[p][(size_t)e * in + c] * v[c];
        if (r->norm_input) s = nrm > 0 ? s / nrm : 0;
        if (r->abs_logit) s = fabs(s);
        if (r->bias && r->bias[p]) s += r->bias[p][e];
        lg[e] = s / r->temperature;
    }
    if (r->norm == 0) {
        double mx = -INFINITY, z = 0;
        for (uint32_t e = 0; e < E; e++) mx = fmax(mx, lg[e]);
        for (uint32_t e = 0; e < E; e++) z += lg[e] = exp(lg[e] - mx);
        for (uint32_t e = 0; e < E; e++) lg[e] /= z;
    } else if (r->norm == 1) {
        for (uint32_t e = 0; e < E; e++) lg[e] = 1.0 / (1.0 + exp(-lg[e]));
    }
    uint32_t n_other = E - (r->always_on >= 0), k = r->top_k == 0 || r->top_k > n_other ? n_other : r->top_k;
    bool used[REF_MAX_EXP] = {false};
    uint32_t *sel = x->sel + (size_t)p * E, n = 0;
    double *w = x->w + (size_t)p * E, tot = 0;
    for (uint32_t s = 0; s < k; s++) {
        int best = -1;
        for (uint32_t e = 0; e < E; e++) {
            if ((int)e == r->always_on || used[e]) continue;
            if (best < 0 || lg[e] > lg[best]) best = (int)e;
        }
        used[best] = true;
        sel[n] = (uint32_t)best;
        w[n++] = lg[best];
        tot += lg[best];
    }
    if (r->norm != 2 && tot > 0)
        for (uint32_t s = 0; s < n; s++) w[s] /= tot;
    if (r->always_on >= 0) {
        sel[n] = (uint32_t)r->always_on;
        w[n++] = 1.0;
    }
    x->n_sel[p] = n;
}

void ref_moe_copy_decision(ref_moe *x, int depth, uint32_t p)
{
    const uint32_t E = x->bank->n_exp, P = n_points(x);
    uint32_t from = p, to = depth == 0 ? p + 1 : depth == 1 ? p + REF_MOD : P;
    for (uint32_t q = from + 1; q < to; q++) {
        x->n_sel[q] = x->n_sel[p];
        memcpy(x->sel + (size_t)q * E, x->sel + (size_t)p * E, E * sizeof *x->sel);
        memcpy(x->w + (size_t)q * E, x->w + (size_t)p * E, E * sizeof *x->w);
    }
}

/* y += sum of the point's experts' deltas (or of the composed average adapter) */
static void apply(ref_moe *x, uint32_t layer, uint32_t mod, const double *v, uint32_t in, double *y, uint32_t out)
{
    const uint32_t E = x->bank->n_exp, p = layer * REF_MOD + mod;
    if (x->mode == REF_AVERAGE) { /* A' = sum w A, B' = sum w s B, then B'(A' v) */
        uint32_t r = 0;
        for (uint32_t j = 0; j < x->n_sel[p]; j++) {
            const ref_lora *L = ref_bank_at(x->bank, layer, mod, x->sel[(size_t)p * E + j]);
            if (L->rank) r = L->rank;
        }
        if (!r) return;
        double *t = calloc(r, 8);
        for (uint32_t k = 0; k < r; k++)
            for (uint32_t j = 0; j < x->n_sel[p]; j++) {
                const ref_lora *L = ref_bank_at(x->bank, layer, mod, x->sel[(size_t)p * E + j]);
                if (!L->rank) continue;
                double a = 0;
                for (uint32_t c = 0; c < in; c++) a += (double)L->a[(size_t)k * in + c] * v[c];
                t[k] += x->w[(size_t)p * E + j] * a;
            }
        for (uint32_t o = 0; o < out; o++)
            for (uint32_t j = 0; j < x->n_sel[p]; j++) {
                const ref_lora *L = ref_bank_at(x->bank, layer, mod, x->sel[(size_t)p * E + j]);
                if (!L->rank) continue;
                double s = 0;
                for (uint32_t k = 0; k < r; k++) s += (double)L->b[(size_t)o * r + k] * t[k];
                y[o] += x->w[(size_t)p * E + j] * L->scale * s;
            }
        free(t);
        return;
    }
    for (uint32_t j = 0; j < x->n_sel[p]; j++) {
        uint32_t e = x->sel[(size_t)p * E + j];
        const ref_lora *L = ref_bank_at(x->bank, layer, mod, e);
        if (!L->rank) continue;
        double *t = calloc(L->rank, 8);
        for (uint32_t k = 0; k < L->rank; k++)
            for (uint32_t c = 0; c < in; c++) t[k] += (double)L->a[(size_t)k * in + c] * v[c];
        double f = x->w[(size_t)p * E + j] * L->scale;
        for (uint32_t o = 0; o < out; o++) {
            double s = 0;
            for (uint32_t k = 0; k < L->rank; k++) s += (double)L->b[(size_t)o * L->rank + k] * t[k];
            y[o] += f * s;
        }
        free(t);
    }
}

static void pool_add(ref_moe *x, uint32_t p, const double *v, uint32_t in)
{
    if (x->pool_skip_first && x->pos == 0) return;
    if (!x->pool[p]) x->pool[p] = calloc(in, 8);
    for (uint32_t c = 0; c < in; c++) x->pool[p][c] += v[c];
}

static void hook_site(void *u, uint32_t layer, uint32_t mod, const double *v, uint32_t in, double *y, uint32_t out)
{
    ref_moe *x = u;
    const uint32_t p = layer * REF_MOD + mod;
    if (x->pooling) {
        if (x->pool_depth == 0) pool_add(x, p, v, in);
        return;
    }
    if (x->mode == REF_TOKEN && x->router->depth == 0 && site_used(x->bank, layer, mod))
        ref_moe_decide(x, x->router, p, v, in);
    apply(x, layer, mod, v, in, y, out);
}

static void hook_layer(void *u, uint32_t layer, const double *xn, uint32_t dim)
{
    ref_moe *x = u;
    const uint32_t p = layer * REF_MOD;
    if (x->pooling) {
        if (x->pool_depth == 1) pool_add(x, p, xn, dim);
        if (x->pool_depth == 2 && layer + 1 == x->m->n_layers) pool_add(x, 0, xn, dim); /* model depth */
        return;
    }
    if (x->mode != REF_TOKEN) return;
    if (x->router->depth == 1 || (x->router->depth == 2 && layer == 0)) {
        ref_moe_decide(x, x->router, p, xn, dim);
        ref_moe_copy_decision(x, x->router->depth, p);
    }
}

static void hook_final(void *u, const double *xn, uint32_t dim)
{
    ref_moe *x = u;
    (void)xn;
    (void)dim;
    if (x->pooling) {
        if (!(x->pool_skip_first && x->pos == 0)) x->pool_count++;
        x->pos++;
    }
}

void ref_moe_init(ref_moe *x, const ref_model *m, const ref_bank *b)
{
    memset(x, 0, sizeof *x);
    x->m = m;
    x->bank = b;
    uint32_t P = m->n_layers * REF_MOD;
    x->n_sel = calloc(P, sizeof *x->n_sel);
    x->sel = calloc((size_t)P * b->n_exp, sizeof *x->sel);
    x->w = calloc((size_t)P * b->n_exp, sizeof *x->w);
    x->pool = calloc(P, sizeof *x->pool);
    x->hooks = (ref_hooks){x, hook_site, hook_layer, hook_final};
}

void ref_moe_free(ref_moe *x)
{
    for (uint32_t p = 0; p < n_points(x); p++) free(x->pool[p]);
    free(x->pool);
    free(x->n_sel);
    free(x->sel);
    free(x->w);
}

void ref_moe_set_fixed(ref_moe *x, const float *w)
{
    const uint32_t E = x->bank->n_exp;
    for (uint32_t p = 0; p < n_points(x); p++) {
        uint32_t n = 0;
        for (uint32_t e = 0; e < E; e++)
            if (w[e] != 0) {
                x->sel[(size_t)p * E + n] = e;
                x->w[(size_t)p * E + n++] = w[e];
            }
        x->n_sel[p] = n;
    }
}

void ref_moe_decide_pooled(ref_moe *x, const ref_router *r)
{
    const uint32_t P = n_points(x);
    for (uint32_t p = 0; p < P; p++) {
        bool point = r->depth == 0 ? site_used(x->bank, p / REF_MOD, p % REF_MOD)
                   : r->depth == 1 ? p % REF_MOD == 0 : p == 0;
        if (!point || !x->pool[p]) continue;
        uint32_t in = r->depth == 0 ? site_in(x->m, p % REF_MOD) : x->m->dim;
        double *mean = malloc(in * 8);
        for (uint32_t c = 0; c < in; c++) mean[c] = x->pool[p][c] / x->pool_count;
        ref_moe_decide(x, r, p, mean, in);
        ref_moe_copy_decision(x, r->depth, p);
        free(mean);
    }
}

static uint64_t rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float unit(uint64_t *s) { return (float)((double)(rng(s) >> 11) / 9007199254740992.0 * 2 - 1); }

void ref_bank_random(ref_bank *b, const ref_model *m, uint32_t n_exp, const uint32_t *ranks,
                     const uint32_t *module_mask, const float *scales, uint64_t seed)
{
    b->n_exp = n_exp;
    b->n_layers = m->n_layers;
    b->l = calloc((size_t)m->n_layers * REF_MOD * n_exp, sizeof *b->l);
    uint64_t s = seed;
    const uint32_t qd = m->n_heads * m->head_dim, kvd = m->n_kv_heads * m->head_dim;
    const uint32_t outs[REF_MOD] = {qd, kvd, kvd, m->dim, m->ffn, m->ffn, m->dim};
    for (uint32_t l = 0; l < m->n_layers; l++)
        for (uint32_t mod = 0; mod < REF_MOD; mod++)
            for (uint32_t e = 0; e < n_exp; e++) {
                ref_lora *L = ref_bank_at(b, l, mod, e);
                if (!(module_mask[e] >> mod & 1)) continue;
                uint32_t in = site_in(m, mod), out = outs[mod];
                L->rank = ranks[e];
                L->scale = scales[e];
                L->a = malloc((size_t)L->rank * in * 4);
                L->b = malloc((size_t)out * L->rank * 4);
                for (size_t i = 0; i < (size_t)L->rank * in; i++) L->a[i] = unit(&s) / sqrtf((float)in);
                for (size_t i = 0; i < (size_t)out * L->rank; i++) L->b[i] = unit(&s) * 0.5f;
            }
}

void ref_bank_free(ref_bank *b)
{
    for (size_t i = 0; i < (size_t)b->n_layers * REF_MOD * b->n_exp; i++) {
        free(b->l[i].a);
        free(b->l[i].b);
    }
    free(b->l);
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void ref_router_noisy(const ref_model *m, ref_router *rr, uint32_t n_exp, uint64_t seed, float std)
{
    rr->r = calloc(m->n_layers * REF_MOD, sizeof *rr->r);
    for (uint32_t p = 0; p < m->n_layers * REF_MOD; p++) {
        uint32_t mod = p % REF_MOD, in = mod == 3 ? m->n_heads * m->head_dim : mod == 6 ? m->ffn : m->dim;
        rr->r[p] = malloc(4ull * n_exp * in);
        uint64_t st = seed * 0x9e3779b97f4a7c15ull + p;
        for (uint64_t i = 0; i < (uint64_t)n_exp * in; i++) {
            double u1 = ((double)(splitmix(&st) >> 11) + 1.0) / 9007199254740993.0;
            double u2 = (double)(splitmix(&st) >> 11) / 9007199254740992.0;
            rr->r[p][i] = (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2) * std);
        }
    }
}
