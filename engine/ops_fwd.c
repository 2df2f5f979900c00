/*
 * ops_fwd.c — host side of the forward-pass kernels: tiled matmul (prefill) and the choice
 * between it and matvec, embedding rows, RoPE, KV-cache stores, split-K attention.
 */
#include <math.h>

#include "ops.h"
#include "push.h"

/* Matmul tiles: 64 invocations, 32 vectors x 64 rows, 4 x 8 per invocation. */
enum { MM_WG = 64, MM_BM = 32, MM_BN = 64, MM_TM = 4, MM_TN = 8 };
/* Beyond this many vectors a matmul reads the weights fewer times than matvec passes of 8. */
enum { MATVEC_MAX_T = 8 };

void vkm_op_matmul(vkm_rec *r, const vkm_tensor *w, vkm_act x, vkm_act y, uint32_t n_t,
                   bool accumulate)
{
    uint32_t spec[5] = {MM_WG, MM_BM, MM_BN, MM_TM, MM_TN};
    vkm_pipe *p = vkm_ops_pipe(r, vkm_ops_weight_variant(r->dev, "matmul", w->dtype), spec, 5);
    if (!p) return;
    for (uint32_t c = 0; c < w->n_chunks; c++) {
        const vkm_chunk *ch = &w->chunks[c];
        vkm_push_matmul pc = {ch->rows, w->cols, ch->row0, w->row_stride, x.stride, y.stride,
                              accumulate ? 1u : 0u, ch->scale_off_words, x.off, y.off, n_t};
        vkm_range b[3] = {ch->r, x.r, y.r};
        vkm_rec_note_bytes(r, w->bytes * ch->rows / w->rows + 4ull * n_t * (w->cols + ch->rows));
        vkm_rec_dispatch(r, p, b, 3, &pc, sizeof pc, (ch->rows + MM_BN - 1) / MM_BN,
                         (n_t + MM_BM - 1) / MM_BM, 1);
    }
}

/* CPU devices (llvmpipe): passes of matvec over 4 vectors beat the tiled matmul ~3x */
static bool use_matvec(const vkm_dev *d, uint32_t n_t) { return n_t <= MATVEC_MAX_T || vkm_ops_cpu_device(d); }

void vkm_op_linear(vkm_rec *r, const vkm_tensor *w, vkm_act x, vkm_act y, uint32_t n_t,
                   bool accumulate)
{
    if (use_matvec(r->dev, n_t)) vkm_op_matvec(r, w, x, y, n_t, accumulate);
    else vkm_op_matmul(r, w, x, y, n_t, accumulate);
}

bool vkm_op_linear_lora_ok(const vkm_dev *d, uint32_t n_t) { return use_matvec(d, n_t) && d->max_stage_storage >= 9; }

void vkm_op_embed(vkm_rec *r, const vkm_tensor *table, const vkm_step_buf *st, vkm_act y,
                  uint32_t n_tok)
{
    uint32_t spec[1] = {vkm_ops_reduce_wg(r->dev)};
    vkm_pipe *p = vkm_ops_pipe(r, vkm_ops_weight_variant(r->dev, "embed", table->dtype), spec, 1);
    if (!p) return;
    for (uint32_t c = 0; c < table->n_chunks; c++) {
        const vkm_chunk *ch = &table->chunks[c];
        vkm_push_embed pc = {ch->rows, table->cols, ch->row0, table->row_stride,
                             ch->scale_off_words, n_tok, y.stride, y.off, st->tok_off};
        vkm_range b[3] = {ch->r, st->r, y.r};
        vkm_rec_dispatch_n(r, p, b, 3, &pc, sizeof pc, n_tok);
    }
}

void vkm_op_rope(vkm_rec *r, vkm_act v, const vkm_step_buf *st, uint32_t n_tok, uint32_t n_heads,
                 uint32_t head_dim, bool layout_half, float theta)
{
    uint32_t spec[1] = {vkm_ops_stream_wg(r->dev)};
    vkm_pipe *p = vkm_ops_pipe(r, VKM_SPV_rope, spec, 1);
    if (!p) return;
    vkm_push_rope pc = {n_tok, n_heads, head_dim, v.stride, v.off, layout_half ? 1u : 0u,
                        (float)log2((double)theta), st->pos_off};
    vkm_range b[2] = {v.r, st->r};
    uint64_t n = (uint64_t)n_tok * n_heads * (head_dim / 2);
    vkm_rec_dispatch_n(r, p, b, 2, &pc, sizeof pc, (n + spec[0] - 1) / spec[0]);
}

void vkm_op_kv_store(vkm_rec *r, vkm_act k, vkm_act v, vkm_range kc, vkm_range vc,
                     const vkm_step_buf *st, uint32_t n_tok, uint32_t kv_dim, uint32_t ctx)
{
    uint32_t spec[1] = {vkm_ops_stream_wg(r->dev)};
    vkm_pipe *p = vkm_ops_pipe(r, VKM_SPV_kv_store, spec, 1);
    if (!p) return;
    vkm_push_kv pc = {n_tok, kv_dim, ctx, k.stride, k.off, v.stride, v.off, st->pos_off, st->slot_off};
    vkm_range b[5] = {k.r, v.r, kc, vc, st->r};
    uint64_t n = (uint64_t)n_tok * kv_dim;
    vkm_rec_dispatch_n(r, p, b, 5, &pc, sizeof pc, (n + spec[0] - 1) / spec[0]);
}

uint32_t vkm_attn_chunk(const vkm_dev *d)
{
    (void)d;
    return 128;
}

/* Splits the context only when tokens x heads alone give too few workgroups (decode of few
 * sequences over long contexts): at least 256 keys per split, at most VKM_ATTN_MAX_SPLITS. */
uint32_t vkm_attn_splits(const vkm_dev *d, uint32_t n_tok, uint32_t n_heads, uint32_t max_keys)
{
    (void)d;
    const uint32_t want_groups = 256;
    uint64_t groups = (uint64_t)n_tok * n_heads;
    if (groups >= want_groups || max_keys <= 256) return 1;
    uint32_t by_keys = (max_keys + 255) / 256, by_groups = (uint32_t)((want_groups + groups - 1) / groups);
    uint32_t s = by_keys < by_groups ? by_keys : by_groups;
    return s > VKM_ATTN_MAX_SPLITS ? VKM_ATTN_MAX_SPLITS : s;
}

void vkm_op_attention(vkm_rec *r, vkm_act q, vkm_range kc, vkm_range vc, vkm_act out,
                      vkm_range partials, const vkm_step_buf *st, uint32_t n_tok,
                      uint32_t max_keys, const vkm_attn_shape *sh)
{
    const vkm_dev *d = r->dev;
    if (sh->head_dim % 4 || sh->n_heads % sh->n_kv_heads) {
        r->status = vkm_fail(d->err, VKM_ERR_UNSUPPORTED, "attention needs head_dim %% 4 == 0 and "
                             "n_heads a multiple of n_kv_heads (got %u, %u, %u)", sh->head_dim,
                             sh->n_heads, sh->n_kv_heads);
        return;
    }
    uint32_t splits = vkm_attn_splits(d, n_tok, sh->n_heads, max_keys);
    uint32_t spec[3] = {vkm_ops_reduce_wg(d), vkm_attn_chunk(d), sh->head_dim};
    vkm_pipe *p = vkm_ops_pipe(r, VKM_SPV_attn, spec, 3);
    if (!p) return;
    vkm_push_attn pc = {n_tok, sh->n_heads, sh->n_kv_heads, sh->ctx, sh->n_kv_heads * sh->head_dim,
                        q.stride, q.off, out.stride, out.off, splits,
                        (float)(1.0 / sqrt((double)sh->head_dim)), st->pos_off, st->slot_off};
    vkm_range b[5] = {q.r, kc, vc, splits == 1 ? out.r : partials, st->r};
    vkm_rec_note_bytes(r, 8ull * n_tok * max_keys * sh->n_kv_heads * sh->head_dim);
    vkm_rec_dispatch_n(r, p, b, 5, &pc, sizeof pc, (uint64_t)n_tok * sh->n_heads * splits);
    if (splits == 1) return;
    uint32_t rspec[2] = {vkm_ops_reduce_wg(d), sh->head_dim};
    vkm_pipe *rp = vkm_ops_pipe(r, VKM_SPV_attn_reduce, rspec, 2);
    if (!rp) return;
    vkm_push_attn_reduce rpc = {n_tok, sh->n_heads, splits, out.stride, out.off};
    vkm_range rb[2] = {partials, out.r};
    vkm_rec_dispatch_n(r, rp, rb, 2, &rpc, sizeof rpc, (uint64_t)n_tok * sh->n_heads);
}
