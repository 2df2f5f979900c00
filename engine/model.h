/*
 * model.h — a model on the device: weights (model.c), the runtime buffers of a step
 * (activations, KV cache, step inputs, sampler records), the recording of one step
 * (forward.c) and the sessions that drive it (session.c).
 */
#ifndef VKM_MODEL_H
#define VKM_MODEL_H

#include "bank.h"
#include "ffn.h"
#include "loader.h"
#include "ops.h"
#include "ops_lora.h"

typedef struct vkm_layer {
    vkm_range attn_norm, ffn_norm;              /* f32 [dim]                                   */
    vkm_tensor wq;                              /* [n_heads * head_dim][dim]                   */
    vkm_tensor wk, wv;                          /* [n_kv_heads * head_dim][dim]                */
    vkm_tensor wo;                              /* [dim][n_heads * head_dim]                   */
    vkm_tensor w_gate, w_up;                    /* [ffn][dim]                                  */
    vkm_tensor w_down;                          /* [dim][ffn]                                  */
} vkm_layer;

/* Sampler parameter record: words per row (header + history), see shaders/sample.comp. */
#define VKM_SAMPLE_HDR 16
#define VKM_SAMPLE_HIST 256
#define VKM_SAMPLE_WORDS (VKM_SAMPLE_HDR + VKM_SAMPLE_HIST)
/* Sessions in one batched decode step at most. */
#define VKM_MAX_BATCH_SESSIONS 256

/* The buffers every step uses, sized for n_batch tokens. */
typedef struct vkm_acts {
    vkm_range x;          /* [n_batch][dim]            residual stream                       */
    vkm_range xn;         /* [n_batch][dim]            normed input of a block               */
    vkm_range q;          /* [n_batch][n_heads * hd]                                          */
    vkm_range k, v;       /* [n_batch][n_kv * hd]                                             */
    vkm_range att;        /* [n_batch][n_heads * hd]   attention output                       */
    vkm_range gate, up;   /* [n_batch][ffn]                                                   */
    vkm_range partials;   /* attention split partials (see vkm_attn_splits)                   */
    vkm_range xo;         /* [n_out_cap][dim]          final-normed rows that want logits     */
    vkm_range logits;     /* [n_out_cap][vocab]                                               */
    vkm_range scratch;    /* [n_seq][vocab]            sampler's penalised logits             */
} vkm_acts;

struct vkm_model {
    vkm_context *ctx;
    vkm_dev *d;
    char path[1024];
    vkm_hparams hp;
    vkm_dtype wtype;              /* device type of the matrices                                */
    int weight_type_param;        /* vkm_model_params.weight_type                               */
    vkm_arena weights;
    vkm_tensor tok_embd;          /* [vocab][dim]                                               */
    vkm_tensor output;            /* [vocab][dim] (a copy of tok_embd's layout when tied)       */
    vkm_range output_norm;        /* f32 [dim]                                                  */
    vkm_layer *layers;
    uint64_t weight_bytes;        /* device bytes of all weights                                */
    uint64_t token_bytes;         /* bytes one decode step reads                                */
    vkm_tokenizer *tok;           /* NULL when the model has none                               */

    /* runtime */
    uint32_t n_ctx, n_seq, n_batch, n_out_cap;
    vkm_arena kv_arena, act_arena;
    vkm_range *k_cache, *v_cache; /* per layer: [n_seq][n_ctx][n_kv * hd] f32                  */
    vkm_acts a;
    vkm_buf step_buf;             /* host-visible uint32: tok | pos | slot | out rows           */
    vkm_buf samp_buf;             /* host-visible: sampler records [n_seq][VKM_SAMPLE_WORDS]    */
    vkm_buf ids_buf;              /* host-readable: sampled ids [n_seq]                          */
    vkm_rec rec;
    VkCommandBuffer cmd;
    bool *slot_used;
    bool profile;
    bool separate_routers;        /* vkm_model_params.separate_routers                           */
    bool separate_expands;        /* vkm_model_params.separate_expands                           */
    vkm_prof_entry prof[64];      /* per-kernel profile of the last step                         */
    uint32_t n_prof;

    /* MoErging (bank.h, ffn.h): NULL / 0 for a plain model */
    vkm_manifest *man;            /* the manifest the model was loaded from                      */
    vkm_bank *bank;               /* LoRA experts, or (no LoRA) the routing state of FFN experts */
    vkm_ffn *ffn;                 /* FFN experts                                                 */
    vkm_router *routers[VKM_MAX_ROUTERS];
    uint32_t n_routers;
    uint32_t route_rows;          /* n_batch + n_seq + 1                                         */
    vkm_range route_ids, route_wts; /* [n_sites][route_rows][n_exp]                              */
    vkm_range lora_t;             /* [n_batch][n_exp][rank_pad]                                  */
    vkm_range lora_groups, lora_d;/* grouped prefill: items by expert; per-item outputs          */
    uint32_t lora_chunk;          /*   [lora_chunk][n_exp][largest site output]                  */
    vkm_range pool;               /* [n_seq][pool_len] sums of router inputs                     */
    uint32_t pool_len;
    uint32_t *pool_off;           /* per routing point                                           */
    vkm_arena moe_arena;
};

/* Step-buffer regions (uint32 elements): see vkm_model_step_buf. */
#define VKM_STEP_TOK 0u
#define VKM_STEP_POS 1u
#define VKM_STEP_SLOT 2u
#define VKM_STEP_OUT 3u
#define VKM_STEP_ROW 4u
#define VKM_STEP_LIST 5u
static inline uint32_t vkm_step_region(const vkm_model *m, uint32_t region) { return region * m->n_batch; }
/* After the per-token regions: router maps (64 words per router), then a list of 64 slots. */
static inline uint32_t vkm_step_maps(const vkm_model *m) { return 6 * m->n_batch; }
static inline uint32_t vkm_step_seqlist(const vkm_model *m) { return 6 * m->n_batch + 64 * VKM_MAX_ROUTERS; }
/* Then the mixing records of logits aggregation: one per mixed row. */
#define VKM_MIX_RECORD (2 + 2 * VKM_MAX_EXPERTS)
static inline uint32_t vkm_step_mix(const vkm_model *m) { return vkm_step_seqlist(m) + 256; }
#define VKM_STEP_EXTRA (64 * VKM_MAX_ROUTERS + 256)
static inline uint64_t vkm_step_words(const vkm_model *m)
{
    return 6ull * m->n_batch + VKM_STEP_EXTRA + (uint64_t)m->n_batch * VKM_MIX_RECORD;
}

/* A set of tokens of one step routed by one token-level router. */
typedef struct vkm_route_group {
    uint32_t router;
    uint32_t n;
    const uint32_t *tokens;       /* indices into the step's tokens                              */
} vkm_route_group;

/* One step: n_tok tokens, each of a sequence (slot) at a position; the rows whose logits are
 * wanted (indices into the step's tokens); the routing row of each token (NULL: the empty
 * row, the bare base) and the token-level routers that fill rows; optionally, pooling of the
 * router inputs of one sequence (sequence-level routing, calibration). */
typedef struct vkm_step {
    uint32_t n_tok;
    const int32_t *tokens;
    const uint32_t *pos;
    const uint32_t *slot;
    uint32_t n_out;
    const uint32_t *out_rows;
    const uint32_t *route_row;
    uint32_t n_groups;
    vkm_route_group groups[VKM_MAX_ROUTERS];
    int32_t pool_slot;            /* -1: none                                                    */
    vkm_depth pool_depth;
    bool pool_skip_first;         /* leave the token at position 0 out of the pool (its state is
                                     an attention sink, unlike the text's)                       */
    uint32_t n_mix;               /* logits aggregation: mixture rows (records in the step buffer) */
} vkm_step;

/* Offsets of the arrays in the step buffer. */
static inline vkm_step_buf vkm_model_step_buf(const vkm_model *m)
{
    vkm_step_buf sb = {{m->step_buf.buf, 0, m->step_buf.size, m->step_buf.map},
                       vkm_step_region(m, VKM_STEP_TOK), vkm_step_region(m, VKM_STEP_POS),
                       vkm_step_region(m, VKM_STEP_SLOT)};
    return sb;
}
static inline uint32_t vkm_model_out_off(const vkm_model *m) { return vkm_step_region(m, VKM_STEP_OUT); }
static inline vkm_range vkm_model_step_range(const vkm_model *m)
{
    vkm_range r = {m->step_buf.buf, 0, m->step_buf.size, m->step_buf.map};
    return r;
}
/* The routing row of sequence slot s, and the empty row. */
static inline uint32_t vkm_seq_row(const vkm_model *m, uint32_t slot) { return m->n_batch + slot; }
static inline uint32_t vkm_empty_row(const vkm_model *m) { return m->n_batch + m->n_seq; }
/* Word offset of routing point p, row `row` in the ids / weights buffers. */
static inline uint32_t vkm_route_word(const vkm_model *m, uint32_t p, uint32_t row)
{
    return (p * m->route_rows + row) * m->bank->n_exp;
}

/* moe.c: the routing buffers and pools of a model with a bank; routing rows written from the
 * host (fixed weights, the empty row); sequence-level routing from pooled inputs. */
vkm_status vkm_moe_alloc(vkm_model *m);
void vkm_moe_free(vkm_model *m);
/* Writes the sequence row of `slot` at every routing point: bank experts ids[0..n), weights. */
vkm_status vkm_moe_set_row(vkm_model *m, uint32_t slot, const uint32_t *ids, const float *w, uint32_t n);
/* Records: the router decisions of sequence `slot` from its pooled inputs (count tokens). */
void vkm_moe_route_pooled(vkm_model *m, uint32_t router, uint32_t slot, uint32_t count);
/* model.c: a matrix from a file tensor into a device tensor of the model's weight type (device
 * row r from file row row_map[r]; NULL: the same row); the f32 values of a model weight (by
 * internal name) written over it (shared-weight averaging). */
vkm_status vkm_model_upload_matrix(vkm_model *m, vkm_arena *arena, const vkm_tensor_src *t,
                                   const char *name, const uint32_t *row_map, vkm_tensor *out);
vkm_status vkm_model_replace_weight(vkm_model *m, const char *name, const float *values, uint64_t n);
/* Whether the output matrix is the token embeddings (tied: one tensor on the device). */
static inline bool vkm_model_tied(const vkm_model *m)
{
    return m->output.chunks[0].r.buf == m->tok_embd.chunks[0].r.buf && m->output.chunks[0].r.off == m->tok_embd.chunks[0].r.off;
}

/* moe_bake.c: task-level exact merging into the base weights at load. */
vkm_status vkm_moe_bake_task(vkm_model *m, const vkm_manifest *man);
/* Records: pool[slot] = 0. */
void vkm_moe_clear_pool(vkm_model *m, uint32_t slot);

/* session.c: records, submits and waits for one step (n_sample sampler records written). */
vkm_status vkm_model_run_step(vkm_model *m, const vkm_step *st, uint32_t n_sample);

/* forward.c: writes the step's inputs and records its forward pass into m->rec (begun). */
vkm_status vkm_forward_record(vkm_model *m, const vkm_step *s);
/* Records sampling of n rows of the logits with records already written to samp_buf. */
void vkm_sample_record(vkm_model *m, uint32_t n_rows);

#endif
