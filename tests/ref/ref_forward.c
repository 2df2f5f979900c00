/*
 * ref_forward.c — the plain-C reference forward pass.
 */
#include "ref_forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ref_seq_init(ref_seq *s, const ref_model *m)
{
    size_t n = (size_t)m->n_layers * m->ctx * m->n_kv_heads * m->head_dim;
    s->n = 0;
    s->k = calloc(n, sizeof(double));
    s->v = calloc(n, sizeof(double));
}

void ref_seq_free(ref_seq *s)
{
    free(s->k);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static void rmsnorm(const double *x, const float *w, double *y, uint32_t n, float eps)
{
    double ss = 0;
    for (uint32_t i = 0; i < n; i++) ss += x[i] * x[i];
    double inv = 1.0 / sqrt(ss / n + eps);
    for (uint32_t i = 0; i < n; i++) y[i] = x[i] * inv * w[i];
}

static void matvec(const float *w, const double *x, double *y, uint32_t rows, uint32_t cols)
{
    for (uint32_t r = 0; r < rows; r++) {
        double s = 0;
        for (uint32_t c = 0; c < cols; c++) s += (double)w[(size_t)r * cols + c] * x[c];
        y[r] = s;
    }
}

static void rope(double *v, uint32_t n_heads, uint32_t hd, uint32_t pos, float theta, bool half)
{
    for (uint32_t h = 0; h < n_heads; h++)
        for (uint32_t j = 0; j < hd / 2; j++) {
            double freq = pow((double)theta, -2.0 * j / hd), a = pos * freq;
            uint32_t i0 = h * hd + (half ? j : 2 * j), i1 = i0 + (half ? hd / 2 : 1);
            double x0 = v[i0], x1 = v[i1];
            v[i0] = x0 * cos(a) - x1 * sin(a);
            v[i1] = x0 * sin(a) + x1 * cos(a);
        }
}

void ref_forward_token(const ref_model *m, ref_seq *s, int32_t token, float *logits)
{
    const uint32_t D = m->dim, hd = m->head_dim, kvd = m->n_kv_heads * hd, qd = m->n_heads * hd;
    const uint32_t pos = s->n;
    double *x = calloc(D, 8), *xn = calloc(D, 8), *q = calloc(qd, 8), *k = calloc(kvd, 8);
    double *v = calloc(kvd, 8), *att = calloc(qd, 8), *o = calloc(D, 8);
    double *g = calloc(m->ffn, 8), *u = calloc(m->ffn, 8), *sc = calloc(pos + 1, 8);
    for (uint32_t i = 0; i < D; i++) x[i] = m->tok_embd[(size_t)token * D + i];
    const ref_hooks *H = m->hooks;
#define HOOK(mod, xin, nin, yout, nout) \
    if (H && H->site) H->site(H->user, l, mod, xin, nin, yout, nout)
#define LINEAR(mod, w, xin, nin, yout, nout) \
    if (!(H && H->linear && H->linear(H->user, l, mod, xin, nin, yout, nout))) matvec(w, xin, yout, nout, nin)
    for (uint32_t l = 0; l < m->n_layers; l++) {
        rmsnorm(x, m->attn_norm[l], xn, D, m->eps);
        if (H && H->layer) H->layer(H->user, l, xn, D);
        LINEAR(0, m->wq[l], xn, D, q, qd);
        HOOK(0, xn, D, q, qd);
        LINEAR(1, m->wk[l], xn, D, k, kvd);
        HOOK(1, xn, D, k, kvd);
        LINEAR(2, m->wv[l], xn, D, v, kvd);
        HOOK(2, xn, D, v, kvd);
        rope(q, m->n_heads, hd, pos, m->theta, m->rope_half);
        rope(k, m->n_kv_heads, hd, pos, m->theta, m->rope_half);
        double *kc = s->k + (size_t)l * m->ctx * kvd, *vc = s->v + (size_t)l * m->ctx * kvd;
        memcpy(kc + (size_t)pos * kvd, k, kvd * 8);
        memcpy(vc + (size_t)pos * kvd, v, kvd * 8);
        for (uint32_t h = 0; h < m->n_heads; h++) {
            uint32_t kh = h / (m->n_heads / m->n_kv_heads);
            double mx = -INFINITY, sum = 0;
            for (uint32_t j = 0; j <= pos; j++) {
                double d = 0;
                for (uint32_t e = 0; e < hd; e++) d += q[h * hd + e] * kc[(size_t)j * kvd + kh * hd + e];
                sc[j] = d / sqrt((double)hd);
                mx = fmax(mx, sc[j]);
            }
            for (uint32_t j = 0; j <= pos; j++) sum += sc[j] = exp(sc[j] - mx);
            for (uint32_t e = 0; e < hd; e++) {
                double a = 0;
                for (uint32_t j = 0; j <= pos; j++) a += sc[j] * vc[(size_t)j * kvd + kh * hd + e];
                att[h * hd + e] = a / sum;
            }
        }
        LINEAR(3, m->wo[l], att, qd, o, D);
        HOOK(3, att, qd, o, D);
        for (uint32_t i = 0; i < D; i++) x[i] += o[i];
        rmsnorm(x, m->ffn_norm[l], xn, D, m->eps);
        double *dn = calloc(D, 8);
        if (!(H && H->ffn && H->ffn(H->user, l, xn, D, dn))) {
            LINEAR(4, m->w_gate[l], xn, D, g, m->ffn);
            HOOK(4, xn, D, g, m->ffn);
            LINEAR(5, m->w_up[l], xn, D, u, m->ffn);
            HOOK(5, xn, D, u, m->ffn);
            for (uint32_t i = 0; i < m->ffn; i++) g[i] = g[i] / (1.0 + exp(-g[i])) * u[i];
            LINEAR(6, m->w_down[l], g, m->ffn, dn, D);
            HOOK(6, g, m->ffn, dn, D);
        }
        for (uint32_t i = 0; i < D; i++) x[i] += dn[i];
        free(dn);
    }
#undef LINEAR
#undef HOOK
    s->n++;
    rmsnorm(x, m->output_norm, xn, D, m->eps);
    if (H && H->final) H->final(H->user, xn, D);
    if (logits) {
        double *lg = calloc(m->vocab, 8);
        matvec(m->output, xn, lg, m->vocab, D);
        for (uint32_t i = 0; i < m->vocab; i++) logits[i] = (float)lg[i];
        free(lg);
    }
    free(x); free(xn); free(q); free(k); free(v); free(att); free(o); free(g); free(u); free(sc);
}

static uint64_t rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float *rnd(uint64_t *s, size_t n, float a)
{
    float *p = malloc(n * 4);
    for (size_t i = 0; i < n; i++) p[i] = (float)(((double)(rng(s) >> 11) / 9007199254740992.0 * 2 - 1) * a);
    return p;
}

static float **layers(uint32_t n)
{
    return calloc(n, sizeof(float *));
}

void ref_model_random(ref_model *m, uint64_t seed, bool tied)
{
    uint64_t s = seed;
    const uint32_t D = m->dim, qd = m->n_heads * m->head_dim, kvd = m->n_kv_heads * m->head_dim;
    m->tok_embd = rnd(&s, (size_t)m->vocab * D, 1.0f);
    m->output_norm = rnd(&s, D, 0.5f);
    for (uint32_t i = 0; i < D; i++) m->output_norm[i] += 1.0f;
    m->output = tied ? m->tok_embd : rnd(&s, (size_t)m->vocab * D, 1.0f / sqrtf((float)D));
    m->attn_norm = layers(m->n_layers); m->ffn_norm = layers(m->n_layers);
    m->wq = layers(m->n_layers); m->wk = layers(m->n_layers); m->wv = layers(m->n_layers);
    m->wo = layers(m->n_layers); m->w_gate = layers(m->n_layers); m->w_up = layers(m->n_layers);
    m->w_down = layers(m->n_layers);
    for (uint32_t l = 0; l < m->n_layers; l++) {
        m->attn_norm[l] = rnd(&s, D, 0.5f);
        m->ffn_norm[l] = rnd(&s, D, 0.5f);
        for (uint32_t i = 0; i < D; i++) { m->attn_norm[l][i] += 1.0f; m->ffn_norm[l][i] += 1.0f; }
        float a = 1.5f / sqrtf((float)D);
        m->wq[l] = rnd(&s, (size_t)qd * D, a);
        m->wk[l] = rnd(&s, (size_t)kvd * D, a);
        m->wv[l] = rnd(&s, (size_t)kvd * D, a);
        m->wo[l] = rnd(&s, (size_t)D * qd, 1.0f / sqrtf((float)qd));
        m->w_gate[l] = rnd(&s, (size_t)m->ffn * D, a);
        m->w_up[l] = rnd(&s, (size_t)m->ffn * D, a);
        m->w_down[l] = rnd(&s, (size_t)D * m->ffn, 1.0f / sqrtf((float)m->ffn));
    }
}

void ref_model_free(ref_model *m)
{
    if (m->output != m->tok_embd) free(m->output);
    free(m->tok_embd);
    free(m->output_norm);
    float **all[] = {m->attn_norm, m->ffn_norm, m->wq, m->wk, m->wv, m->wo, m->w_gate, m->w_up, m->w_down};
    for (int i = 0; i < 9; i++) {
        for (uint32_t l = 0; l < m->n_layers; l++) free(all[i][l]);
        free(all[i]);
    }
    memset(m, 0, sizeof *m);
}

void ref_forward_logits(const ref_model *base, const ref_hooks *h, const int32_t *ids, uint32_t n, float *out)
{
    ref_model m = *base;
    m.hooks = h;
    ref_seq s;
    ref_seq_init(&s, &m);
    for (uint32_t i = 0; i < n; i++) ref_forward_token(&m, &s, ids[i], out + (size_t)i * m.vocab);
    ref_seq_free(&s);
}
