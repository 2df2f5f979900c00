/*
 * ref_kernels.c — plain-C references for the basic kernels.
 */
#include "ref_kernels.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

void ref_matvec(const float *w, uint32_t rows, uint32_t cols, const float *x, uint32_t n_t,
                float *y, int acc)
{
    for (uint32_t t = 0; t < n_t; t++)
        for (uint32_t r = 0; r < rows; r++) {
            double s = 0;
            for (uint32_t c = 0; c < cols; c++) s += (double)w[(size_t)r * cols + c] * x[(size_t)t * cols + c];
            y[(size_t)t * rows + r] = (float)(acc ? y[(size_t)t * rows + r] + s : s);
        }
}

void ref_rmsnorm(const float *x, const float *w, float *y, uint32_t n, uint32_t rows, float eps)
{
    for (uint32_t r = 0; r < rows; r++) {
        double ss = 0;
        for (uint32_t i = 0; i < n; i++) ss += (double)x[(size_t)r * n + i] * x[(size_t)r * n + i];
        double inv = 1.0 / sqrt(ss / n + eps);
        for (uint32_t i = 0; i < n; i++) y[(size_t)r * n + i] = (float)(x[(size_t)r * n + i] * inv * w[i]);
    }
}

void ref_softmax(float *x, uint32_t n, uint32_t rows, float scale)
{
    for (uint32_t r = 0; r < rows; r++) {
        float *v = x + (size_t)r * n;
        double m = -INFINITY, s = 0;
        for (uint32_t i = 0; i < n; i++) m = fmax(m, (double)v[i] * scale);
        for (uint32_t i = 0; i < n; i++) s += exp((double)v[i] * scale - m);
        for (uint32_t i = 0; i < n; i++) v[i] = (float)(exp((double)v[i] * scale - m) / s);
    }
}

float ref_silu(float v) { return (float)(v / (1.0 + exp(-(double)v))); }

/* ---- sampling (sample.comp) ----------------------------------------------------------------- */
static uint32_t sample_hash32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

double ref_uniform01(uint64_t seed, uint32_t counter)
{
    const uint32_t lo = (uint32_t)seed, hi = (uint32_t)(seed >> 32);
    const uint32_t h = sample_hash32(lo ^ sample_hash32(hi ^ sample_hash32(counter * 0x9e3779b9u + 0x632be5abu)));
    return (double)(h >> 8) * (1.0 / 16777216.0);
}

static int desc_float(const void *a, const void *b)
{
    const float x = *(const float *)a, y = *(const float *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

uint32_t ref_sample(const float *logits, uint32_t V, const ref_sampler *p, uint32_t counter, double *margin)
{
    float *s = malloc(V * sizeof *s), *sorted = malloc(V * sizeof *sorted);
    memcpy(s, logits, V * sizeof *s);
    for (uint32_t h = 0; p->penalty != 1.0f && h < p->n_hist; h++) { /* each distinct token once */
        const uint32_t t = p->hist[h];
        bool first = t < V;
        for (uint32_t e = 0; e < h && first; e++) first = p->hist[e] != t;
        if (first) s[t] = logits[t] > 0 ? logits[t] / p->penalty : logits[t] * p->penalty;
    }
    uint32_t argmax = 0;
    for (uint32_t i = 1; i < V; i++)
        if (s[i] > s[argmax]) argmax = i;
    const float M = s[argmax];
    *margin = 1.0;
    uint32_t pick = argmax;
    if (p->temperature > 0 && p->top_k != 1) {
        float thr = -INFINITY;
        memcpy(sorted, s, V * sizeof *s);
        qsort(sorted, V, sizeof *sorted, desc_float);
        if (p->top_k > 0 && p->top_k < V) thr = sorted[p->top_k - 1]; /* ties at the k-th kept */
        if (p->top_p < 1.0f) { /* over what top-k kept, in descending order */
            double z = 0, acc = 0;
            for (uint32_t i = 0; i < V && sorted[i] >= thr; i++) z += exp((double)sorted[i] - M);
            for (uint32_t i = 0; i < V && sorted[i] >= thr; i++) {
                acc += exp((double)sorted[i] - M);
                if (acc >= p->top_p * z) {
                    thr = sorted[i];
                    break;
                }
            }
        }
        if (p->min_p > 0.0f) { /* then min-p: p >= min_p p_max */
            const float m = M + logf(p->min_p);
            if (m > thr) thr = m;
        }
        double z = 0;
        for (uint32_t i = 0; i < V; i++)
            if (s[i] >= thr) z += exp(((double)s[i] - M) / p->temperature);
        const double u = ref_uniform01(p->seed, counter) * z;
        double acc = 0;
        pick = UINT32_MAX;
        for (uint32_t i = 0; i < V && pick == UINT32_MAX; i++) {
            if (s[i] < thr) continue;
            const double before = acc;
            acc += exp(((double)s[i] - M) / p->temperature);
            if (acc > u) {
                pick = i;
                *margin = fmin(u - before, acc - u) / z;
            }
        }
        if (pick == UINT32_MAX) pick = argmax;
    }
    free(s);
    free(sorted);
    return pick;
}
