/*
 * ref_moe.h — the plain-C reference of the routed LoRA bank (double precision), plugged into
 * ref_forward through its hooks: fixed weights, token-level routers at module / layer / model
 * depth (softmax / sigmoid / none, temperature, top-k with lowest-index ties, renormalisation,
 * always-on expert, L2-normalised inputs, |logit|, biases), per-point fixed decisions (sequence level,
 * model depth pooling the last layer's normed input),
 * parameter aggregation "average", and pooling of router inputs.
 */
#ifndef VKM_REF_MOE_H
#define VKM_REF_MOE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ref_forward.h"

#define REF_MOD 7
#define REF_MAX_EXP 16

typedef struct ref_lora {
    uint32_t rank;              /* 0: the expert does not adapt this site                     */
    float scale;                /* alpha / r (x the manifest's scale)                        */
    float *a;                   /* [rank][in]                                                */
    float *b;                   /* [out][rank], rows in the BASE model's RoPE layout         */
} ref_lora;

typedef struct ref_bank {
    uint32_t n_exp, n_layers;
    ref_lora *l;                /* [layer][module][expert]                                    */
} ref_bank;

static inline ref_lora *ref_bank_at(const ref_bank *b, uint32_t layer, uint32_t mod, uint32_t e)
{
    return &b->l[((size_t)layer * REF_MOD + mod) * b->n_exp + e];
}

typedef struct ref_router {
    int depth;                  /* 0 module, 1 layer, 2 model                                */
    uint32_t top_k;             /* 0: all                                                     */
    int norm;                   /* 0 softmax, 1 sigmoid, 2 none                               */
    float temperature;
    int always_on;              /* expert index or -1                                         */
    bool norm_input, abs_logit;
    float **r;                  /* per point (layer * 7 + module): [n_exp][in], or NULL       */
    float **bias;               /* per point: [n_exp], or NULL (no biases)                    */
} ref_router;

typedef enum ref_mode { REF_FIXED = 0, REF_TOKEN = 1, REF_POINTS = 2, REF_AVERAGE = 3 } ref_mode;

typedef struct ref_moe {
    const ref_model *m;
    const ref_bank *bank;
    ref_mode mode;
    const ref_router *router;   /* REF_TOKEN                                                  */
    /* the decision at each point: experts and weights */
    uint32_t *n_sel;            /* [P]                                                        */
    uint32_t *sel;              /* [P][n_exp]                                                 */
    double *w;                  /* [P][n_exp]                                                 */
    bool pooling;               /* sum router inputs (depth pool_depth) instead of applying  */
    int pool_depth;
    double **pool;              /* per point sums (position 0 left out when pool_skip_first)   */
    uint32_t pool_count;
    uint32_t pos;               /* tokens seen while pooling                                  */
    bool pool_skip_first;
    ref_hooks hooks;
} ref_moe;

void ref_moe_init(ref_moe *x, const ref_model *m, const ref_bank *b);
void ref_moe_free(ref_moe *x);
/* Fixed weights over the bank for every point (REF_FIXED). */
void ref_moe_set_fixed(ref_moe *x, const float *w);
/* The router's decision for input v at point p, written into the point's selection. */
void ref_moe_decide(ref_moe *x, const ref_router *r, uint32_t p, const double *v, uint32_t in);
/* Decides every point of the router's depth from the pooled means (sequence level): the
 * pooled sums divided by pool_count; copies to the points each decision governs. */
void ref_moe_decide_pooled(ref_moe *x, const ref_router *r);
/* Points governed by a decision at point p of depth d (copies). */
void ref_moe_copy_decision(ref_moe *x, int depth, uint32_t p);

/* The noisy router's matrices as the manifest's seed defines them (shared/DESIGN.md: a seeded
 * Gaussian per routing point; the engine's generator: splitmix64 from seed * golden + point,
 * Box-Muller), for every point. */
void ref_router_noisy(const ref_model *m, ref_router *rr, uint32_t n_exp, uint64_t seed, float std);

/* A random bank: ranks[e] per expert (0 skips modules by mask bit), fixed seed. */
void ref_bank_random(ref_bank *b, const ref_model *m, uint32_t n_exp, const uint32_t *ranks,
                     const uint32_t *module_mask, const float *scales, uint64_t seed);
void ref_bank_free(ref_bank *b);

#endif
