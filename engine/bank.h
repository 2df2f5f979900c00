/*
 * bank.h — the LoRA bank on the device and the routers that choose from it.
 *
 * Bank: for every adapted base weight ("site": layer x module q,k,v,o,gate,up,down) the A
 * matrices of all experts that adapt it, stacked: A [rank_total][in], and their B matrices
 * transposed and stacked the same way: Bt [rank_total][out] (q/k rows permuted into the base's
 * RoPE layout). An expert table per site, on the device: meta[site][e] = {rank offset, rank,
 * scale bits, 0} for e < n_total; rank 0 = the expert does not adapt this site. Experts
 * n_exp.. are virtual: one merged adapter per sequence slot and one for the task
 * (parameter aggregation, "average").
 *
 * Routing: ids / weights buffers [P = n_layers * 7 points][ROWS][n_exp entries], a row holds
 * bank experts packed first (0xffffffff ends it). Rows 0..n_batch-1 belong to the tokens of
 * the current step (token-level routers write them); row n_batch + slot to a sequence
 * (sequence- and task-level routing, fixed weights); row n_batch + n_seq is the empty row
 * (the bare base). Every token of a step names its row in the step buffer.
 */
#ifndef VKM_BANK_H
#define VKM_BANK_H

#include "loader.h"
#include "ops.h"

#define VKM_N_MODULES 7
#define VKM_MAX_ROUTERS 8
#define VKM_NO_EXPERT 0xffffffffu

typedef struct vkm_site {
    uint32_t in, out;
    uint32_t rank_total;      /* rows of A and Bt, virtual experts included                   */
    bool used;                /* some real expert adapts this site                            */
    vkm_range a;              /* [rank_total][in]  f32                                         */
    vkm_range bt;             /* [rank_total][out] f32                                         */
} vkm_site;

typedef struct vkm_bank {
    uint32_t n_exp;           /* real experts                                                  */
    uint32_t n_total;         /* + one virtual expert per slot + one for the task               */
    uint32_t rmax;            /* the largest rank                                              */
    uint32_t n_sites;         /* n_layers * 7                                                  */
    char names[VKM_MAX_EXPERTS][64];
    char paths[VKM_MAX_EXPERTS][1024];
    vkm_site *sites;
    uint32_t *meta_host;      /* [n_sites][n_total][4]                                         */
    vkm_range meta;
    vkm_arena arena;
    uint64_t bytes;           /* device bytes of A and Bt                                       */
} vkm_bank;

/* A router: one policy over some of the bank's experts (a manifest). */
typedef struct vkm_router {
    char path[1024];
    vkm_policy policy;
    vkm_granularity gran;
    vkm_depth depth;
    vkm_aggregate agg;
    vkm_merge_kind merge;
    vkm_normalize norm;
    uint32_t n_exp;                   /* router experts                                        */
    uint32_t map[VKM_MAX_EXPERTS];    /* router expert -> bank expert                          */
    uint32_t top_k;
    float temperature;
    int32_t always_on;
    uint32_t flags;                   /* router.comp flags                                     */
    bool has_matrix;                  /* a kernel computes its decisions                        */
    vkm_range *r;                     /* per routing point: [n_exp][in_p] f32                  */
    vkm_arena arena;
    float fixed[VKM_MAX_EXPERTS];     /* uniform / fixed weights, router order                  */
    bool ffn_attn_point;              /* FFN experts with attention mixing: decisions at q, k, v */
} vkm_router;

typedef struct vkm_model vkm_model;

/* Loads the experts of a manifest into the model's bank (the bank holds every expert of the
 * first manifest; later manifests may only use experts already there). bank.c */
vkm_status vkm_bank_load(vkm_model *m, const vkm_manifest *man);
void vkm_bank_free(vkm_model *m);
/* The bank of a model with FFN experts: their names and paths, no LoRA (the routing state). */
vkm_status vkm_bank_init_ffn(vkm_model *m, uint32_t n, const char *const *names, const char *const *paths);
/* The bank expert a manifest expert maps to (by resolved path, else name), or -1. */
int vkm_bank_find(const vkm_bank *b, const vkm_manifest_expert *e);

/* Builds a router from a manifest (router.c): its matrices per routing point (learned,
 * noisy, arrow, centroid, phatgoose) or fixed weights (uniform, fixed). */
vkm_status vkm_router_create(vkm_model *m, const vkm_manifest *man, vkm_router **out);
void vkm_router_free(vkm_model *m, vkm_router *r);
/* Centroids from each expert's calibration texts (moe.c): the mean of the base model's final
 * normed hidden states over all their tokens, one row per expert at the model routing point. */
vkm_status vkm_router_calibrate(vkm_model *m, vkm_router *r, const vkm_manifest *man, uint32_t index);
/* mergekit-moe's "hidden" gates (moe.c): per layer, each expert's unit vector of the mean FFN
 * input of its positive prompts minus that of its negative prompts, under the base model. */
vkm_status vkm_router_hidden(vkm_model *m, vkm_router *r, const vkm_manifest *man);
/* The router of a Mixtral-style file (ffn_gate_inp per layer), router 0 of its model. */
vkm_status vkm_router_from_gates(vkm_model *m, const vkm_tensor_src *(*get)(void *, const char *), void *user,
                                 const char *path, vkm_router **out);
/* The routing points a router decides at, and how many points each decision governs. */
bool vkm_router_is_point(const vkm_model *m, const vkm_router *r, uint32_t site);
uint32_t vkm_router_copies(const vkm_model *m, const vkm_router *r, uint32_t site);

/* Routing point of a site, and the input length of a routing point. */
static inline uint32_t vkm_site_index(uint32_t layer, uint32_t module)
{
    return layer * VKM_N_MODULES + module;
}

#endif
