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

#endif
