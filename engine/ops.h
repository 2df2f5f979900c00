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

/* Workgroup sizes: kernels with reductions / streaming kernels (see ops.c for the policy). */
bool vkm_ops_cpu_device(const vkm_dev *d);
uint32_t vkm_ops_reduce_wg(const vkm_dev *d);
uint32_t vkm_ops_stream_wg(const vkm_dev *d);
/* The variant "<family>_<dtype>" of a kernel that reads weights of type t ("matvec", ...). */
vkm_spv_id vkm_ops_weight_variant(const vkm_dev *d, const char *family, vkm_dtype t);

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
/* A LoRA site whose expands run in matvec's epilogue (matvec_lora): its shrink output t
 * (lora.comp's layout: [token][entry][rpad]), its Bt [rank_total][out_dim], the bank's expert
 * table from meta_off, the routing buffers (ids, wts; token i's row list[row_list_off + i]). */
typedef struct vkm_matvec_lora {
    vkm_range t, bt, meta, ids, list, wts;
    uint32_t out_dim, route_off, row_stride, meta_off, row_list_off, rpad;
} vkm_matvec_lora;
/* vkm_op_matvec, y[t] (+)= W x[t] + the site's LoRA delta of the step's token t. */
void vkm_op_matvec_lora(vkm_rec *r, const vkm_tensor *w, vkm_act x, vkm_act y, uint32_t n_t, bool accumulate,
                        const vkm_matvec_lora *lora);
/* y[r] = rmsnorm(x[r]) * w for `rows` rows of n. */
void vkm_op_rmsnorm(vkm_rec *r, vkm_act x, vkm_range w, vkm_act y, uint32_t n, uint32_t rows,
                    float eps);
/* The same where row r of y normalises row idx[idx_off + r] of x (idx: uint32 buffer). */
void vkm_op_rmsnorm_rows(vkm_rec *r, vkm_act x, vkm_range w, vkm_act y, uint32_t n,
                         uint32_t rows, float eps, const vkm_range *idx, uint32_t idx_off);
/* x[r] = softmax(x[r] * scale) in place, rows of n with `stride` floats between rows. */
void vkm_op_softmax(vkm_rec *r, vkm_range x, uint32_t n, uint32_t rows, uint32_t stride,
                    float scale);

typedef enum vkm_elt_op { VKM_ELT_ADD = 0, VKM_ELT_MUL = 1, VKM_ELT_SILU_MUL = 2 } vkm_elt_op;
/* y = a op b over n elements (y may alias a or b exactly). */
void vkm_op_eltwise(vkm_rec *r, vkm_elt_op op, vkm_act a, vkm_act b, vkm_act y, uint32_t n);

/* ---- forward-pass kernels (engine/ops_fwd.c) --------------------------------------------- */
/* Per-token data of a step in one buffer of uint32: token ids, positions, KV slots. */
typedef struct vkm_step_buf {
    vkm_range r;
    uint32_t tok_off, pos_off, slot_off; /* element offsets of the three arrays */
} vkm_step_buf;

/* y[t] (+)= W x[t] for many vectors: tiled matmul (prefill). */
void vkm_op_matmul(vkm_rec *r, const vkm_tensor *w, vkm_act x, vkm_act y, uint32_t n_t,
                   bool accumulate);
/* y[t] (+)= W x[t]: matvec for few vectors, matmul for many. */
void vkm_op_linear(vkm_rec *r, const vkm_tensor *w, vkm_act x, vkm_act y, uint32_t n_t,
                   bool accumulate);
/* Whether vkm_op_linear runs n_t vectors through matvec on this device, with room for a LoRA
 * epilogue (vkm_op_matvec_lora: nine storage buffers per stage). */
bool vkm_op_linear_lora_ok(const vkm_dev *d, uint32_t n_t);
/* y[i] = row token[i] of the table. */
void vkm_op_embed(vkm_rec *r, const vkm_tensor *table, const vkm_step_buf *st, vkm_act y,
                  uint32_t n_tok);
/* Rotary embedding in place on n_heads heads of head_dim per token (positions from st). */
void vkm_op_rope(vkm_rec *r, vkm_act v, const vkm_step_buf *st, uint32_t n_tok, uint32_t n_heads,
                 uint32_t head_dim, bool layout_half, float theta);
/* Stores each token's k and v rows at (slot, pos) of the caches ([slots][ctx][kv_dim]). */
void vkm_op_kv_store(vkm_rec *r, vkm_act k, vkm_act v, vkm_range kc, vkm_range vc,
                     const vkm_step_buf *st, uint32_t n_tok, uint32_t kv_dim, uint32_t ctx);
/* Causal GQA attention of each token over its slot's cache up to its position.
 * max_keys: the largest pos+1 in the step (sizes the split); partials: scratch of
 * n_tok * n_heads * max_splits * (head_dim + 2) floats (may be unused). */
typedef struct vkm_attn_shape {
    uint32_t n_heads, n_kv_heads, head_dim, ctx;
} vkm_attn_shape;
void vkm_op_attention(vkm_rec *r, vkm_act q, vkm_range kc, vkm_range vc, vkm_act out,
                      vkm_range partials, const vkm_step_buf *st, uint32_t n_tok,
                      uint32_t max_keys, const vkm_attn_shape *shape);
/* Keys per attention tile, and the number of context splits for a step (at most
 * VKM_ATTN_MAX_SPLITS, and more than 1 only when n_tok * n_heads < 256: size the partials
 * scratch for 256 * VKM_ATTN_MAX_SPLITS * (head_dim + 2) floats). */
#define VKM_ATTN_MAX_SPLITS 32
uint32_t vkm_attn_chunk(const vkm_dev *d);
uint32_t vkm_attn_splits(const vkm_dev *d, uint32_t n_tok, uint32_t n_heads, uint32_t max_keys);

#endif
