/*
 * model.h — a model on the device: weights (model.c), the runtime buffers of a step
 * (activations, KV cache, step inputs, sampler records), the recording of one step
 * (forward.c) and the sessions that drive it (session.c).
 */
#ifndef VKM_MODEL_H
#define VKM_MODEL_H

#include "loader.h"
#include "ops.h"

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
    vkm_prof_entry prof[64];      /* per-kernel profile of the last step                         */
    uint32_t n_prof;
};

/* One step: n_tok tokens, each of a sequence (slot) at a position; the rows whose logits are
 * wanted (indices into the step's tokens), and which of them are sampled. */
typedef struct vkm_step {
    uint32_t n_tok;
    const int32_t *tokens;
    const uint32_t *pos;
    const uint32_t *slot;
    uint32_t n_out;
    const uint32_t *out_rows;
} vkm_step;

/* Offsets of the arrays in the step buffer. */
static inline vkm_step_buf vkm_model_step_buf(const vkm_model *m)
{
    vkm_step_buf sb = {{m->step_buf.buf, 0, m->step_buf.size, m->step_buf.map}, 0, m->n_batch,
                       2 * m->n_batch};
    return sb;
}
static inline uint32_t vkm_model_out_off(const vkm_model *m) { return 3 * m->n_batch; }

/* forward.c: writes the step's inputs and records its forward pass into m->rec (begun). */
vkm_status vkm_forward_record(vkm_model *m, const vkm_step *s);
/* Records sampling of n rows of the logits with records already written to samp_buf. */
void vkm_sample_record(vkm_model *m, uint32_t n_rows);

#endif
