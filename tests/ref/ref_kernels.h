/*
 * ref_kernels.h — plain-C reference kernels the GPU kernels are checked against. Double
 * accumulation; no cleverness.
 */
#ifndef VKM_REF_KERNELS_H
#define VKM_REF_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* y[t][r] = sum_c w[r][c] x[t][c] (+ y when acc) */
void ref_matvec(const float *w, uint32_t rows, uint32_t cols, const float *x, uint32_t n_t,
                float *y, int acc);
void ref_rmsnorm(const float *x, const float *w, float *y, uint32_t n, uint32_t rows, float eps);
void ref_softmax(float *x, uint32_t n, uint32_t rows, float scale);
float ref_silu(float v);

/* One draw of sample.comp: repetition penalty over the distinct tokens of hist (most recent
 * first), then top-k (ties at the k-th kept), top-p over what top-k kept, min-p (p >= min_p
 * p_max), all on untempered logits, then a draw at the temperature from u = ref_uniform01(seed,
 * counter) along the ids; temperature <= 0 or top_k 1: the argmax (lowest id on ties). margin:
 * how far u lies from the picked token's interval ends, as a fraction of the mass (a draw within
 * rounding of an end may go either way). */
typedef struct ref_sampler {
    float temperature, top_p, min_p, penalty;
    uint32_t top_k, n_hist;
    const uint32_t *hist;
    uint64_t seed;
} ref_sampler;
double ref_uniform01(uint64_t seed, uint32_t counter);
uint32_t ref_sample(const float *logits, uint32_t V, const ref_sampler *p, uint32_t counter, double *margin);

#endif
