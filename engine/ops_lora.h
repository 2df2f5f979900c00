/*
 * ops_lora.h — host wrappers of the MoErging kernels (router.comp, lora.comp, pool.comp,
 * arrow.comp). The routing buffers and the bank's layout are described in bank.h.
 */
#ifndef VKM_OPS_LORA_H
#define VKM_OPS_LORA_H

#include "ops.h"

typedef struct vkm_router_call {
    vkm_act x;                  /* router inputs, one row per routed row                     */
    uint32_t in_dim, n;         /* input length, rows to route                               */
    uint32_t list_off;          /* input rows from list[list_off + j] (0xffffffff: j)        */
    uint32_t out_row_off;       /* output rows from list[out_row_off + j] (0xffffffff: input) */
    vkm_range matrix;           /* [n_exp][in_dim] (n_sites of them, mat_stride words apart)  */
    vkm_range list;             /* uint32 lists (the step buffer)                            */
    vkm_range ids, wts;         /* routing buffers                                           */
    uint32_t route_off, row_stride, n_copies, copy_stride;
    uint32_t n_sites, mat_stride;   /* routing points decided by this dispatch (0 means 1); the
                                     * rows of point i start (i * n_copies) * copy_stride further */
    uint32_t n_exp, top_k, flags, map_off;
    float inv_temp, x_scale;
    int32_t always_on;
} vkm_router_call;

#define VKM_ROUTER_NORM_INPUT 1u
#define VKM_ROUTER_ABS 2u
#define VKM_ROUTER_SOFTMAX 4u
#define VKM_ROUTER_SIGMOID 8u
#define VKM_ROUTER_BIAS 16u

void vkm_op_router(vkm_rec *r, const vkm_router_call *c);

typedef struct vkm_lora_call {
    vkm_act x, y;               /* site input [n_tok][in], output [n_tok][out] (+= delta)     */
    uint32_t n_tok, in_dim, out_dim;
    vkm_range a, bt, meta;      /* the site's stacked A, Bt and the bank's expert table      */
    uint32_t meta_off, rank_total, rmax;
    vkm_range ids, wts, list, t;/* routing buffers, step lists, shrink output [n][E][RMAX]  */
    uint32_t route_off, row_stride, row_list_off;
    /* prefill (n_tok > VKM_MOE_MATVEC_MAX_T): tokens grouped by expert, each expert's A and B
     * read once per tile of its tokens; the host's copy of the site's expert table (meta
     * words from meta_off), the group buffer and per-item outputs [chunk][E][out] */
    const uint32_t *meta_host;
    uint32_t n_total, chunk;
    vkm_range groups, d;
} vkm_lora_call;

/* y += sum over each token's routed experts of w * s * B (A x): per token (BGMV) for a few
 * tokens, grouped by expert (SGMV-like: gathered matmuls) for many. */
void vkm_op_lora(vkm_rec *r, const vkm_lora_call *c);
/* vkm_op_lora for n sites that read the same input (q, k, v; gate, up), decoding (at most
 * VKM_MOE_MATVEC_MAX_T tokens): their shrinks in one dispatch, each into its own region of t
 * (t must hold vkm_lora_sites_t_bytes), then their expands in one dispatch (each site's own Bt
 * and output; per site where their rows differ in vec4-ness). Anything else (prefill, other
 * inputs, t too small, fewer than 11 storage buffers per stage): one vkm_op_lora per site. */
#define VKM_LORA_MAX_SITES 3
void vkm_op_lora_sites(vkm_rec *r, const vkm_lora_call *c, uint32_t n);
uint64_t vkm_lora_sites_t_bytes(const vkm_dev *d, uint32_t n_tok, uint32_t row_stride, uint32_t rmax);
/* The shrinks of n (1 to 3) sites reading the same input, decoding, as vkm_op_lora_sites does,
 * with their token-level routing made inside the same dispatch: each workgroup decides its
 * token's row for its site, entry 0's writes it. rc: the router's parameters (one row per
 * token, rows and tokens alike: list_off and out_row_off 0xffffffff; its matrix and sites
 * fields unused), mats: site s's router matrix (one buffer). False (nothing recorded) where
 * that does not fit: the caller routes and shrinks apart. Returns the bytes of each site's
 * region of t (0: nothing recorded). The expands follow with vkm_op_lora_sites_expand or in
 * the sites' matrix products (vkm_op_linear_lora), the same calls. */
uint64_t vkm_op_lora_route_shrink(vkm_rec *r, const vkm_lora_call *c, uint32_t n, const vkm_router_call *rc,
                                  const vkm_range *mats);
/* The shrinks alone of n (1 to 3) sites reading the same input, decoding, each into its own
 * region of t (one dispatch where the device has 8 storage buffers per stage). Returns the
 * region's bytes; 0 (nothing recorded) where the sites cannot share t so. */
uint64_t vkm_op_lora_shrink(vkm_rec *r, const vkm_lora_call *c, uint32_t n);
void vkm_op_lora_sites_expand(vkm_rec *r, const vkm_lora_call *c, uint32_t n);
/* Site s of the n shrunk above (c: the same calls), its expand in the epilogue of its base
 * matrix w's product: y (+)= W x + the site's LoRA delta, one pass of matvec (the caller checks
 * vkm_op_linear_lora_ok for the step's tokens). */
void vkm_op_linear_lora(vkm_rec *r, const vkm_tensor *w, const vkm_lora_call *c, uint32_t s, uint32_t n,
                        bool accumulate);
/* dst[dst_off + c] += sum_i x[i][c] for i < n_tok, c < dim. */
void vkm_op_pool(vkm_rec *r, vkm_act x, uint32_t n_tok, uint32_t dim, vkm_range dst, uint32_t dst_off);

typedef struct vkm_arrow_call {
    vkm_range a, bt, meta, list, out; /* out: the router matrix [n_exp][in]                   */
    uint32_t in_dim, out_dim, meta_off, n_iter, n_exp, map_off, rmax;
} vkm_arrow_call;

void vkm_op_arrow(vkm_rec *r, const vkm_arrow_call *c);

/* Parameter aggregation "average": the experts of one routing row composed into the virtual
 * expert dst of a site (its A and Bt rows). */
typedef struct vkm_site_ranges {
    vkm_range a, bt;
    uint32_t in_dim, out_dim;
} vkm_site_ranges;
void vkm_op_lora_compose(vkm_rec *r, const vkm_site_ranges *site, vkm_range meta, vkm_range ids,
                         vkm_range wts, uint32_t meta_off, uint32_t route_off, uint32_t row_stride,
                         uint32_t dst, uint32_t dst_rank);

/* The experts one routing decision picks (route_topk in common/route.glsl): top-k of the experts
 * other than the always-on one (top_k 0 or beyond them: all of them), then the always-on one. */
uint32_t vkm_route_entries(uint32_t top_k, uint32_t n_exp, bool always_on);
/* Padded rank: the stride of the shrink output (a power of two >= 4). */
uint32_t vkm_lora_rank_pad(uint32_t rmax);
/* Whether the shrinks of a bank whose largest rank is rmax fit the device: a workgroup of one
 * subgroup keeps a partial sum per padded rank and lane in shared memory. */
bool vkm_lora_rank_fits(const vkm_dev *d, uint32_t rmax);

#endif
