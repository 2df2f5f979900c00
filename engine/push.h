/*
 * push.h — host mirrors of the push-constant blocks in shaders/common/push.glsl (same member
 * order, 4-byte members). Sizes are checked here against the 128-byte portable minimum, and at
 * run time against the size reflected from each kernel's SPIR-V (record.c refuses a mismatch).
 */
#ifndef VKM_PUSH_H
#define VKM_PUSH_H

#include <stdint.h>

typedef struct vkm_push_copy {
    uint32_t n;
} vkm_push_copy;

typedef struct vkm_push_matvec {
    uint32_t rows, cols, row0, w_stride, x_stride, y_stride, accumulate, scale_off, x_off, y_off;
} vkm_push_matvec;

/* matvec_lora: vkm_push_matvec, then the LoRA site of its epilogue (push.glsl). */
typedef struct vkm_push_matvec_lora {
    vkm_push_matvec mv;
    uint32_t tok0, out_dim, route_off, row_stride, meta_off, row_list_off;
} vkm_push_matvec_lora;

typedef struct vkm_push_norm {
    uint32_t n, rows, x_stride, y_stride;
    float eps;
    uint32_t x_off, y_off, idx_off;
} vkm_push_norm;

typedef struct vkm_push_softmax {
    uint32_t n, rows, stride;
    float scale;
} vkm_push_softmax;

typedef struct vkm_push_eltwise {
    uint32_t n, a_off, b_off, y_off;
} vkm_push_eltwise;

typedef struct vkm_push_matmul {
    uint32_t rows, cols, row0, w_stride, x_stride, y_stride, accumulate, scale_off, x_off, y_off, n_tok;
} vkm_push_matmul;

typedef struct vkm_push_embed {
    uint32_t rows, cols, row0, w_stride, scale_off, n_tok, y_stride, y_off, tok_off;
} vkm_push_embed;

typedef struct vkm_push_rope {
    uint32_t n_tok, n_heads, head_dim, stride, off, layout_half;
    float log2_theta;
    uint32_t pos_off;
} vkm_push_rope;

typedef struct vkm_push_kv {
    uint32_t n_tok, kv_dim, ctx, k_stride, k_off, v_stride, v_off, pos_off, slot_off;
} vkm_push_kv;

typedef struct vkm_push_attn {
    uint32_t n_tok, n_heads, n_kv_heads, ctx, kv_dim, q_stride, q_off, o_stride, o_off, n_splits;
    float scale;
    uint32_t pos_off, slot_off;
} vkm_push_attn;

typedef struct vkm_push_attn_reduce {
    uint32_t n_tok, n_heads, n_splits, o_stride, o_off;
} vkm_push_attn_reduce;

typedef struct vkm_push_sample {
    uint32_t n_vocab, n_rows, logit_stride, param_words;
} vkm_push_sample;

typedef struct vkm_push_router {
    uint32_t in_dim, n, x_stride, x_off, list_off, out_row_off, route_off, n_exp, row_stride,
        top_k, flags;
    float inv_temp;
    int32_t always_on;
    uint32_t map_off;
    float x_scale;
    uint32_t n_copies, copy_stride;
    uint32_t mat_stride; /* routing points in one dispatch (workgroup z): words between their matrices */
} vkm_push_router;

typedef struct vkm_push_lora {
    uint32_t n_tok, in_dim, out_dim, x_stride, x_off, y_stride, y_off, route_off, row_stride,
        meta_off, rank_total, row_list_off;
} vkm_push_lora;

typedef struct vkm_push_lora_sites { /* arrays first: see push.glsl */
    uint32_t meta_off[3], route_off[3], t_off[3], out_dim[3], y_stride[3], y_off[3], g0[3];
    uint32_t n_tok, in_dim, x_stride, x_off, row_stride, row_list_off, n_sites;
} vkm_push_lora_sites;

typedef struct vkm_push_lora_route { /* arrays first: see push.glsl */
    uint32_t meta_off[3], route_off[3], t_off[3], mat_off[3];
    uint32_t n_tok, in_dim, x_stride, x_off, row_stride, row_list_off, n_sites;
    uint32_t n_exp, top_k, flags;
    float inv_temp;
    int32_t always_on;
    uint32_t map_off, n_ent;
} vkm_push_lora_route;

typedef struct vkm_push_pool {
    uint32_t n_tok, dim, x_stride, x_off, dst_off;
} vkm_push_pool;

typedef struct vkm_push_arrow {
    uint32_t in_dim, out_dim, meta_off, n_iter, n_exp, map_off;
} vkm_push_arrow;

typedef struct vkm_push_compose {
    uint32_t in_dim, out_dim, meta_off, route_off, row_stride, dst;
} vkm_push_compose;

typedef struct vkm_push_mix {
    uint32_t n_vocab, n_mix, table_off, record;
} vkm_push_mix;

typedef struct vkm_push_moe {
    uint32_t rows, cols, row0, w_stride, scale_off, x_stride, x_off, y_stride, y_off, x_per_entry,
        n_tok, t0, expert, route_off, row_stride, row_list_off, n_grp;
    float scale;
    uint32_t w_off, w_cstride; /* WS: W[row][col] = w[w_off + row * w_stride + col * w_cstride] */
} vkm_push_moe;

typedef struct vkm_push_group {
    uint32_t n_tok, n_exp, route_off, row_stride, row_list_off;
} vkm_push_group;

typedef struct vkm_push_combine {
    uint32_t n_tok, dim, y_stride, y_off, d_off, route_off, row_stride, row_list_off, accumulate;
} vkm_push_combine;

_Static_assert(sizeof(vkm_push_moe) <= 128, "push constants over 128 bytes");
_Static_assert(sizeof(vkm_push_group) <= 128, "push constants over 128 bytes");
_Static_assert(sizeof(vkm_push_combine) <= 128, "push constants over 128 bytes");
_Static_assert(sizeof(vkm_push_mix) <= 128, "push constants over 128 bytes");
_Static_assert(sizeof(vkm_push_compose) <= 128, "push constants over 128 bytes");
_Static_assert(sizeof(vkm_push_router) <= 128, "push constants over 128 bytes");
_Static_assert(sizeof(vkm_push_lora) <= 128, "push constants over 128 bytes");
_Static_assert(sizeof(vkm_push_pool) <= 128, "push constants over 128 bytes");
_Static_assert(sizeof(vkm_push_lora_sites) <= 128, "push constants over 128 bytes");
_Static_assert(sizeof(vkm_push_lora_route) <= 128, "push constants over 128 bytes");
_Static_assert(sizeof(vkm_push_arrow) <= 128, "push constants over 128 bytes");
_Static_assert(sizeof(vkm_push_sample) <= 128, "push constants over 128 bytes");
_Static_assert(sizeof(vkm_push_matmul) <= 128, "push constants over 128 bytes");
_Static_assert(sizeof(vkm_push_embed) <= 128, "push constants over 128 bytes");
_Static_assert(sizeof(vkm_push_rope) <= 128, "push constants over 128 bytes");
_Static_assert(sizeof(vkm_push_kv) <= 128, "push constants over 128 bytes");
_Static_assert(sizeof(vkm_push_attn) <= 128, "push constants over 128 bytes");
_Static_assert(sizeof(vkm_push_attn_reduce) <= 128, "push constants over 128 bytes");
_Static_assert(sizeof(vkm_push_copy) <= 128, "push constants over 128 bytes");
_Static_assert(sizeof(vkm_push_matvec) <= 128, "push constants over 128 bytes");
_Static_assert(sizeof(vkm_push_matvec_lora) <= 128, "push constants over 128 bytes");
_Static_assert(sizeof(vkm_push_norm) <= 128, "push constants over 128 bytes");
_Static_assert(sizeof(vkm_push_softmax) <= 128, "push constants over 128 bytes");
_Static_assert(sizeof(vkm_push_eltwise) <= 128, "push constants over 128 bytes");

#endif
