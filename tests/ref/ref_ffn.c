/*
 * ref_ffn.c — the FFN-expert reference.
 */
#include "ref_ffn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const float *matrix(const ref_model *m, uint32_t layer, uint32_t mod)
{
    float **w[7] = {m->wq, m->wk, m->wv, m->wo, m->w_gate, m->w_up, m->w_down};
    return w[mod][layer];
}

static void matvec(const float *w, const double *x, double *y, uint32_t rows, uint32_t cols)
{
    for (uint32_t r = 0; r < rows; r++) {
        double s = 0;
        for (uint32_t c = 0; c < cols; c++) s += (double)w[(size_t)r * cols + c] * x[c];
        y[r] = s;
    }
}

static void pool_add(ref_moe *x, uint32_t p, const double *v, uint32_t in)
{
    if (x->pool_skip_first && x->pos == 0) return;
    if (!x->pool[p]) x->pool[p] = calloc(in, 8);
    for (uint32_t c = 0; c < in; c++) x->pool[p][c] += v[c];
}

/* Copies the decision at p to the `n` points after it. */
static void copy_to(ref_moe *x, uint32_t p, uint32_t n)
{
    const uint32_t E = x->bank->n_exp;
    for (uint32_t q = p + 1; q <= p + n; q++) {
        x->n_sel[q] = x->n_sel[p];
        memcpy(x->sel + (size_t)q * E, x->sel + (size_t)p * E, E * sizeof *x->sel);
        memcpy(x->w + (size_t)q * E, x->w + (size_t)p * E, E * sizeof *x->w);
    }
}

/* y = sum_j w_j W_{e_j} v at point p. */
static void mixture(ref_ffn *f, uint32_t layer, uint32_t mod, const double *v, uint32_t in, double *y, uint32_t out)
{
    const uint32_t E = f->n_exp, p = layer * REF_MOD + mod;
    double *t = calloc(out, 8);
    memset(y, 0, out * 8);
    for (uint32_t j = 0; j < f->moe.n_sel[p]; j++) {
        matvec(matrix(f->ex[f->moe.sel[(size_t)p * E + j]], layer, mod), v, t, out, in);
        for (uint32_t o = 0; o < out; o++) y[o] += f->moe.w[(size_t)p * E + j] * t[o];
    }
    free(t);
}

static bool token_router(const ref_ffn *f, int depth)
{
    return !f->bare && f->moe.mode == REF_TOKEN && f->moe.router->depth == depth;
}

static void hook_layer(void *u, uint32_t layer, const double *xn, uint32_t dim)
{
    ref_ffn *f = u;
    if (f->moe.pooling) {
        if (f->moe.pool_depth == 2 && layer + 1 == f->base->n_layers) pool_add(&f->moe, 0, xn, dim);
        return;
    }
    if (token_router(f, 2) && layer == 0) {
        ref_moe_decide(&f->moe, f->moe.router, 0, xn, dim);
        copy_to(&f->moe, 0, f->base->n_layers * REF_MOD - 1);
    }
}

static bool hook_linear(void *u, uint32_t layer, uint32_t mod, const double *x, uint32_t in, double *y, uint32_t out)
{
    ref_ffn *f = u;
    const bool mixed = (mod < 3 && (f->attn >> mod & 1)) || (f->fine && mod >= 4);
    if (!mixed) return false;
    const uint32_t p = layer * REF_MOD + mod;
    if (f->moe.pooling) {
        if (f->moe.pool_depth < 2) pool_add(&f->moe, p, x, in);
        return false;
    }
    if (f->bare) return false;
    if (token_router(f, 0) || token_router(f, 1)) ref_moe_decide(&f->moe, f->moe.router, p, x, in);
    mixture(f, layer, mod, x, in, y, out);
    return true;
}

static bool hook_ffn(void *u, uint32_t layer, const double *xn, uint32_t dim, double *y)
{
    ref_ffn *f = u;
    if (f->fine) return false;
    const uint32_t p = layer * REF_MOD + 4, E = f->n_exp, F = f->base->ffn;
    if (f->moe.pooling) {
        if (f->moe.pool_depth == 1) pool_add(&f->moe, p, xn, dim);
        return false;
    }
    if (f->bare) return false;
    if (token_router(f, 1)) {
        ref_moe_decide(&f->moe, f->moe.router, p, xn, dim);
        copy_to(&f->moe, p, 2);
    }
    double *g = calloc(F, 8), *up = calloc(F, 8), *d = calloc(dim, 8);
    memset(y, 0, dim * 8);
    for (uint32_t j = 0; j < f->moe.n_sel[p]; j++) {
        const ref_model *x = f->ex[f->moe.sel[(size_t)p * E + j]];
        matvec(x->w_gate[layer], xn, g, F, dim);
        matvec(x->w_up[layer], xn, up, F, dim);
        for (uint32_t i = 0; i < F; i++) g[i] = g[i] / (1.0 + exp(-g[i])) * up[i];
        matvec(x->w_down[layer], g, d, dim, F);
        for (uint32_t o = 0; o < dim; o++) y[o] += f->moe.w[(size_t)p * E + j] * d[o];
    }
    free(g);
    free(up);
    free(d);
    return true;
}

static void hook_final(void *u, const double *xn, uint32_t dim)
{
    ref_ffn *f = u;
    (void)xn;
    (void)dim;
    if (f->moe.pooling) {
        if (!(f->moe.pool_skip_first && f->moe.pos == 0)) f->moe.pool_count++;
        f->moe.pos++;
    }
}

void ref_ffn_init(ref_ffn *f, const ref_model *base, const ref_model *const *experts, uint32_t n_exp,
                  uint32_t attn, bool fine)
{
    memset(f, 0, sizeof *f);
    f->base = base;
    f->n_exp = n_exp;
    for (uint32_t e = 0; e < n_exp; e++) f->ex[e] = experts[e];
    f->attn = attn;
    f->fine = fine;
    f->bank.n_exp = n_exp;
    f->bank.n_layers = base->n_layers;
    ref_moe_init(&f->moe, base, &f->bank);
    f->hooks = (ref_hooks){.user = f, .layer = hook_layer, .final = hook_final, .linear = hook_linear, .ffn = hook_ffn};
}

void ref_ffn_free(ref_ffn *f) { ref_moe_free(&f->moe); }

void ref_ffn_decide_pooled(ref_ffn *f, const ref_router *r)
{
    ref_moe *x = &f->moe;
    const uint32_t P = f->base->n_layers * REF_MOD;
    double *mean = calloc(f->base->ffn > f->base->dim ? f->base->ffn : f->base->dim, 8);
    for (uint32_t p = 0; p < P; p++) {
        if (!x->pool[p] || !r->r[p]) continue;
        const uint32_t mod = p % REF_MOD, in = mod == 6 ? f->base->ffn : f->base->dim;
        for (uint32_t c = 0; c < in; c++) mean[c] = x->pool[p][c] / (x->pool_count ? x->pool_count : 1);
        ref_moe_decide(x, r, p, mean, in);
        if (r->depth == 2) copy_to(x, p, P - 1);
        else if (r->depth == 1 && mod == 4) copy_to(x, p, 2);
    }
    free(mean);
    x->mode = REF_POINTS;
}
