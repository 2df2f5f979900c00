/*
 * ref_forward.h — a plain-C LLaMA forward pass (double accumulation) used as the reference for
 * the Vulkan forward: GQA, both RoPE layouts, SwiGLU, tied or separate LM head, a KV cache
 * per sequence so sequences can be advanced token by token.
 */
#ifndef VKM_REF_FORWARD_H
#define VKM_REF_FORWARD_H

#include <stdbool.h>
#include <stdint.h>

/* Hooks for the routed-LoRA reference (ref_moe.h): called with each adapted module's input
 * and output (module 0..6: q, k, v, o, gate, up, down), each layer's normed input, and the
 * final normed state. For the FFN-expert reference (ref_ffn.h): `linear` may compute a
 * module's product itself (returns true) instead of the model's matrix, and `ffn` the whole
 * FFN block's output from its normed input. Any hook may be NULL. */
typedef struct ref_hooks {
    void *user;
    void (*site)(void *user, uint32_t layer, uint32_t module, const double *x, uint32_t in, double *y, uint32_t out);
    void (*layer)(void *user, uint32_t layer, const double *xn, uint32_t dim);
    void (*final)(void *user, const double *xn, uint32_t dim);
    bool (*linear)(void *user, uint32_t layer, uint32_t module, const double *x, uint32_t in, double *y, uint32_t out);
    bool (*ffn)(void *user, uint32_t layer, const double *xn, uint32_t dim, double *y);
} ref_hooks;

typedef struct ref_model {
    uint32_t vocab, dim, n_layers, n_heads, n_kv_heads, head_dim, ffn, ctx;
    float eps, theta;
    bool rope_half;                 /* rotate_half pairs (HF) instead of interleaved (GGUF)   */
    /* weights, f32 row-major [out][in]; output may equal tok_embd (tied)                     */
    float *tok_embd;                /* [vocab][dim]                                          */
    float *output_norm, *output;    /* [dim], [vocab][dim]                                   */
    float **attn_norm, **wq, **wk, **wv, **wo, **ffn_norm, **w_gate, **w_up, **w_down;
    const ref_hooks *hooks;         /* NULL: the plain model                                 */
} ref_model;

/* One sequence's cache. */
typedef struct ref_seq {
    uint32_t n;                     /* tokens so far                                         */
    double *k, *v;                  /* [n_layers][ctx][kv_dim]                               */
} ref_seq;

void ref_seq_init(ref_seq *s, const ref_model *m);
void ref_seq_free(ref_seq *s);
/* Feeds one token at position s->n; writes the logits (vocab floats) if logits != NULL. */
void ref_forward_token(const ref_model *m, ref_seq *s, int32_t token, float *logits);

/* The logits (n x vocab) of ids fed one by one from position 0 with the hooks h (may be NULL). */
void ref_forward_logits(const ref_model *m, const ref_hooks *h, const int32_t *ids, uint32_t n, float *out);

/* A random model with the given shape (weights ~ U(-a, a) scaled per fan-in), fixed seed. */
void ref_model_random(ref_model *m, uint64_t seed, bool tied);
void ref_model_free(ref_model *m);

#endif
