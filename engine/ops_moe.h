/*
 * ops_moe.h — host wrappers of the FFN-expert kernels: expert-selected matvec (decode) and
 * gathered matmul (prefill) over one expert's matrix, the grouping of routed items by expert,
 * and the weighted combination of the experts' outputs. Routing rows as in bank.h.
 */
#ifndef VKM_OPS_MOE_H
#define VKM_OPS_MOE_H

#include "ops.h"

/* The routing rows a step's tokens read: ids and weights at a routing point, the step buffer
 * holding the routing row of each token. */
typedef struct vkm_route_ref {
    vkm_range ids, wts, list;
    uint32_t route_off, row_stride, row_list_off;
    uint32_t n_grp;           /* expert ids the rows may hold (0 .. n_grp-1): the group layout  */
} vkm_route_ref;

/* y[(t, j)] = scale * W_e x for the tokens t < n_tok whose row holds expert e at entry j; x is
 * per token (x.r row t) or, with x_per_entry, per item (row t * row_stride + j). y.stride:
 * floats between items. Few tokens: matvec; many: the gathered matmul over `groups`
 * (vkm_op_route_group must have filled it for this routing point in the same step). */
void vkm_op_moe_linear(vkm_rec *r, const vkm_tensor *w, uint32_t expert, vkm_act x, bool x_per_entry,
                       vkm_act y, uint32_t n_tok, const vkm_route_ref *rt, vkm_range groups, float scale);
/* An f32 W strided any way: W[row][col] = w[off + row * rs + col * cs] (rows x cols; cols may be
 * 0: y = 0), always the gathered matmul (groups filled): a LoRA bank's A rows and Bt^T. */
typedef struct vkm_f32_view {
    vkm_range w;
    uint32_t off, rows, cols, rs, cs;
} vkm_f32_view;
void vkm_op_moe_linear_f32(vkm_rec *r, const vkm_f32_view *w, uint32_t expert, vkm_act x, bool x_per_entry,
                           vkm_act y, uint32_t n_tok, const vkm_route_ref *rt, vkm_range groups, float scale);
/* groups = [count per expert][offset per expert][items sorted by expert] for rt->n_grp experts. */
void vkm_op_route_group(vkm_rec *r, const vkm_route_ref *rt, uint32_t n_tok, vkm_range groups);
/* y[t] (+)= sum_j w_tj d[(t * row_stride + j) * dim + c]. */
void vkm_op_moe_combine(vkm_rec *r, vkm_range d, uint32_t dim, vkm_act y, uint32_t n_tok,
                        const vkm_route_ref *rt, bool accumulate);

/* Tokens at most for the matvec path (beyond: the grouped matmul). */
#define VKM_MOE_MATVEC_MAX_T 8

#endif
