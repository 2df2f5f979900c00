/*
 * ffn.h — FFN experts: whole fine-tunes of one base whose FFN layers (and optionally attention
 * projections) form a mixture with a router per layer (moetify, Branch-Train-Mix, mergekit-moe),
 * Mixtral-style MoE files (GGUF ffn_*_exps, Hugging Face block_sparse_moe) and moetify
 * checkpoints (mlp.experts.{i}.*, mlp.router.weight; fine-grained, q/k/v, always-on, gate-less).
 *
 * Per layer l and expert e the mixed matrices w[l][e][module] (module: q, k, v with attention
 * mixing; gate, up, down always). Standard mixing (router depth layer): each token runs the FFNs
 * of its chosen experts, y = sum_j w_j down_j(silu(gate_j x) * up_j x). Fine-grained mixing
 * (depth module, moetify's fgmlp) and attention mixing (moetify's moe_query/key/value): each
 * matrix is a mixture of its own, y = sum_j w_j W_j x, with its own routing decision.
 * The routing state (routing rows, routers, pools) is the bank's (bank.h), with no LoRA.
 */
#ifndef VKM_FFN_H
#define VKM_FFN_H

#include "loader.h"
#include "ops.h"

typedef struct vkm_ffn {
    uint32_t n_exp;
    bool has_base;            /* slot n_exp: the base model's own matrices (the bare base, pass 1
                               * of sequence routing): an empty routing row selects it          */
    uint32_t n_slots;         /* n_exp + has_base                                              */
    uint32_t attn_mask;       /* q, k, v (bits 0-2) are mixtures too, each routed on its own    */
    bool fine;                /* gate, up, down are separate mixtures (depth module)           */
    vkm_tensor *w;            /* [n_layers][n_slots][7] (the base slot: copies of the base's)  */
    vkm_arena arena;
    vkm_range g, u;           /* [n_batch][n_exp][ffn]  the experts' gate / up outputs           */
    vkm_range d;              /* [n_batch][n_exp][max(dim, ffn, q dim)] per-expert outputs       */
    vkm_range groups;         /* uint32 [2 n_slots + n_batch n_exp]: items grouped by expert      */
    uint64_t bytes;           /* device bytes of the experts' matrices                          */
} vkm_ffn;

/* Whether matrix `mod` of every layer is a mixture of the experts'. */
static inline bool vkm_ffn_mixed(const vkm_ffn *f, uint32_t mod)
{
    return mod >= 4 /* gate, up, down */ || (mod < 3 && (f->attn_mask >> mod & 1));
}

static inline vkm_tensor *vkm_ffn_w(const vkm_ffn *f, uint32_t layer, uint32_t e, uint32_t mod)
{
    return &f->w[((size_t)layer * f->n_slots + e) * 7 + mod];
}

typedef struct vkm_model vkm_model;

/* Experts given as whole models in a manifest: their mixed matrices; with "shared": "average",
 * the other weights become the experts' averages. The minimal bank and routing state follow. */
vkm_status vkm_ffn_load_manifest(vkm_model *m, const vkm_manifest *man);
/* The tensors of a model by internal name: a file's, or random ones (vkm_model_create_random). */
typedef const vkm_tensor_src *(*vkm_tensor_get)(void *user, const char *name);
/* A Mixtral-style model (hp.n_experts > 0): its experts (3-D stacks sliced per expert, or one
 * tensor per expert; moetify's q/k/v experts too) and its router (router 0) from ffn_gate_inp
 * (moetify: ffn_{gate,up,down}_inp fine-grained, attn_{q,k,v}_inp; none gate-less); path for
 * messages. */
vkm_status vkm_ffn_load_file(vkm_model *m, vkm_tensor_get get, void *user, const char *path);
void vkm_ffn_free(vkm_model *m);

#endif
