/*
 * ref_merge.h — plain-C references of the merge kernels: every model-merge method on f32 arrays
 * (mergekit's definitions, in the operation order the kernels document so f32 results can be
 * compared bit for bit where no reduction is involved), the magnitude selection by a full sort,
 * the DARE hash, and the in-place LoRA delta on F32 / F16 / Q8_0 / Q4_0 rows.
 */
#ifndef VKM_REF_MERGE_H
#define VKM_REF_MERGE_H

#include <stdbool.h>
#include <stdint.h>

#define REF_MAX_IN 16

/* method: a vkm_merge_method value. Inputs in kernel order (see vkm_mplan): linear: the models;
 * task methods and model_stock: the models, then the base (base = n_in - 1); slerp: the base
 * (t = 0), then the other model (base = n_in: none). */
typedef struct ref_merge_cfg {
    int method;
    uint32_t n_in, base;
    double weight[REF_MAX_IN], density[REF_MAX_IN], gamma[REF_MAX_IN];
    double lambda, t;
    bool normalize, rescale;
    uint64_t seed;
    const char *name;         /* the tensor's name: it keys the DARE masks                    */
} ref_merge_cfg;

/* out[i] for i < n from the inputs x[j][i]. */
void ref_merge(const ref_merge_cfg *c, const float *const *x, uint64_t n, float *out);

/* The k-th largest key (|d| bits << 32 | ~index) of d[0..n), 1 <= k <= n. */
uint64_t ref_select_key(const float *d, uint64_t n, uint64_t k);
/* DARE: the key of input j for a tensor, the hash of an element, the keep threshold. */
void ref_dare_key(uint64_t seed, const char *name, uint32_t j, uint32_t key[2]);
uint32_t ref_dare_u32(uint32_t idx, const uint32_t key[2]);
uint32_t ref_dare_threshold(double density);

/* One LoRA term for ref_lora_apply: A [rank][cols], B [rows_b][rank], W row r uses B row
 * map[r] (map NULL: r). */
typedef struct ref_lora_term {
    const float *a, *b;
    uint32_t rank;
    float coef;
    const uint32_t *map;
} ref_lora_term;

/* w_rows: rows of `dtype` (vkm_dtype: F32, F16, Q8_0, Q4_0) in the file layout (llama.cpp blocks
 * for the quantized ones); adds the terms in place, as vkm_merge_lora_apply documents. */
void ref_lora_apply(int dtype, void *w_rows, uint32_t rows, uint32_t cols,
                    const ref_lora_term *terms, uint32_t n_terms);

#endif
