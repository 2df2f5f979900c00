/*
 * ops.h — host wrappers of the kernels: each picks the variant the device supports (weight
 * type, 16-bit storage, subgroup fallback), its specialization constants (workgroup size from
 * the subgroup size), splits work over row chunks and records the dispatches.
 * Offsets and strides are in elements (floats) unless named *_bytes.
 */
#ifndef VKM_OPS_H
#define VKM_OPS_H

#include "internal.h"

/* The variant of `id` for this device: its _nosg twin when subgroup arithmetic is missing. */
vkm_spv_id vkm_ops_variant(const vkm_dev *d, vkm_spv_id id);
/* Pipeline for (id, spec) after vkm_ops_variant; failures go to the recorder's status. */
vkm_pipe *vkm_ops_pipe(vkm_rec *r, vkm_spv_id id, const uint32_t *spec, uint32_t n_spec);

/* dst = src, bytes a multiple of 16, each range within one binding. */
void vkm_op_copy(vkm_rec *r, vkm_range src, vkm_range dst, uint64_t bytes);

/* An activation operand: a range plus an element offset and the stride between rows. */
typedef struct vkm_act {
    vkm_range r;
    uint32_t off, stride;
} vkm_act;

/* y[t] (+)= W x[t] for t < n_t (any n_t; grouped by 8 per dispatch). */
void vkm_op_matvec(vkm_rec *r, const vkm_tensor *w, vkm_act x, vkm_act y, uint32_t n_t,
                   bool accumulate);
/* y[r] = rmsnorm(x[r]) * w for `rows` rows of n. */
void vkm_op_rmsnorm(vkm_rec *r, vkm_act x, vkm_range w, vkm_act y, uint32_t n, uint32_t rows,
                    float eps);
/* x[r] = softmax(x[r] * scale) in place, rows of n with `stride` floats between rows. */
void vkm_op_softmax(vkm_rec *r, vkm_range x, uint32_t n, uint32_t rows, uint32_t stride,
                    float scale);

typedef enum vkm_elt_op { VKM_ELT_ADD = 0, VKM_ELT_MUL = 1, VKM_ELT_SILU_MUL = 2 } vkm_elt_op;
/* y = a op b over n elements (y may alias a or b exactly). */
void vkm_op_eltwise(vkm_rec *r, vkm_elt_op op, vkm_act a, vkm_act b, vkm_act y, uint32_t n);

#endif
