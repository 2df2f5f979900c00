/*
 * ref_kernels.c — plain-C references for the basic kernels.
 */
#include "ref_kernels.h"

#include <math.h>

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
