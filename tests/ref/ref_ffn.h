/*
 * ref_ffn.h — the plain-C reference of FFN experts (double precision), plugged into ref_forward
 * through its hooks: whole fine-tunes of one base whose FFNs form a mixture per layer
 * (y = sum_j w_j FFN_{e_j}(x)), the fine-grained variant (gate, up, down each a mixture of its
 * own with its own decision), attention mixing (q, k, v each a routed mixture), decisions from
 * fixed weights, token-level routers (ref_moe_decide: softmax / top-k / always-on) at module,
 * layer or model depth, or per-point decisions from pooled router inputs (sequence level); the
 * bare base (no decision) uses the base's own matrices.
 */
#ifndef VKM_REF_FFN_H
#define VKM_REF_FFN_H

#include "ref_moe.h"

typedef struct ref_ffn {
    const ref_model *base;
    uint32_t n_exp;
    const ref_model *ex[REF_MAX_EXP];  /* the experts' models (their FFN and q, k, v matrices) */
    uint32_t attn;                      /* q, k, v (bits 0-2) are routed mixtures too           */
    bool fine;
    ref_bank bank;                      /* n_exp experts, no LoRA: sizes ref_moe's decisions  */
    ref_moe moe;                        /* mode, router, decisions, pools                      */
    bool bare;                          /* the bare base: no expert anywhere                  */
    ref_hooks hooks;
} ref_ffn;

void ref_ffn_init(ref_ffn *f, const ref_model *base, const ref_model *const *experts, uint32_t n_exp,
                  uint32_t attn, bool fine);
void ref_ffn_free(ref_ffn *f);
/* Sequence level: decides every point of the router's depth from the pooled means (after a
 * pass with moe.pooling set), copying each FFN decision of layer depth to gate, up and down. */
void ref_ffn_decide_pooled(ref_ffn *f, const ref_router *r);

#endif
