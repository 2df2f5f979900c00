/*
 * ops_moe.c — host side of the FFN-expert kernels (matvec.comp / matmul.comp with MOE,
 * route_group.comp, moe_combine.comp).
 */
#include "ops_moe.h"

#include "push.h"

enum { MM_WG = 64, MM_BM = 32, MM_BN = 64, MM_TM = 4, MM_TN = 8 };

void vkm_op_moe_linear(vkm_rec *r, const vkm_tensor *w, uint32_t expert, vkm_act x, bool x_per_entry,
                       vkm_act y, uint32_t n_tok, const vkm_route_ref *rt, vkm_range groups, float scale)
{
    const vkm_dev *d = r->dev;
    const bool mm = n_tok > VKM_MOE_MATVEC_MAX_T;
    for (uint32_t t0 = 0; t0 < (mm ? 1 : n_tok); t0 += 8) {
        uint32_t nt = n_tok - t0 < 8 ? n_tok - t0 : 8;
        const uint32_t nr = vkm_ops_cpu_device(d) ? 8u : 2u;
        uint32_t mvspec[3] = {vkm_ops_reduce_wg(d), nr, nt}, mmspec[5] = {MM_WG, MM_BM, MM_BN, MM_TM, MM_TN};
        vkm_pipe *p = mm ? vkm_ops_pipe(r, vkm_ops_weight_variant(d, "matmul_moe", w->dtype), mmspec, 5)
                         : vkm_ops_pipe(r, vkm_ops_weight_variant(d, "matvec_moe", w->dtype), mvspec, 3);
        if (!p) return;
        for (uint32_t c = 0; c < w->n_chunks; c++) {
            const vkm_chunk *ch = &w->chunks[c];
            vkm_push_moe pc = {ch->rows, w->cols, ch->row0, w->row_stride, ch->scale_off_words, x.stride,
                               x.off, y.stride, y.off, x_per_entry ? 1u : 0u, n_tok, t0, expert, rt->route_off,
                               rt->row_stride, rt->row_list_off, rt->n_grp, scale, 0, 0};
            vkm_range b[5] = {ch->r, x.r, y.r, mm ? groups : rt->ids, rt->list};
            vkm_rec_note_bytes(r, w->bytes * ch->rows / w->rows);
            if (mm) {
                vkm_range bm[4] = {ch->r, x.r, y.r, groups};
                uint64_t items = (uint64_t)n_tok * rt->row_stride;
                vkm_rec_dispatch(r, p, bm, 4, &pc, sizeof pc, (ch->rows + MM_BN - 1) / MM_BN,
                                 (uint32_t)((items + MM_BM - 1) / MM_BM), 1);
            } else {
                vkm_rec_dispatch_n(r, p, b, 5, &pc, sizeof pc, (ch->rows + nr - 1) / nr);
            }
        }
    }
}

void vkm_op_moe_linear_f32(vkm_rec *r, const vkm_f32_view *w, uint32_t expert, vkm_act x, bool x_per_entry,
                           vkm_act y, uint32_t n_tok, const vkm_route_ref *rt, vkm_range groups, float scale)
{
    uint32_t spec[5] = {MM_WG, MM_BM, MM_BN, MM_TM, MM_TN};
    vkm_pipe *p = vkm_ops_pipe(r, VKM_SPV_matmul_moe_ws, spec, 5);
    if (!p || !w->rows) return;
    vkm_push_moe pc = {w->rows, w->cols, 0, w->rs, 0, x.stride, x.off, y.stride, y.off, x_per_entry ? 1u : 0u, n_tok,
                       0, expert, rt->route_off, rt->row_stride, rt->row_list_off, rt->n_grp, scale, w->off, w->cs};
    vkm_range b[4] = {w->w, x.r, y.r, groups};
    vkm_rec_note_bytes(r, 4ull * w->rows * w->cols);
    const uint64_t items = (uint64_t)n_tok * rt->row_stride;
    vkm_rec_dispatch(r, p, b, 4, &pc, sizeof pc, (w->rows + MM_BN - 1) / MM_BN, (uint32_t)((items + MM_BM - 1) / MM_BM), 1);
}

void vkm_op_route_group(vkm_rec *r, const vkm_route_ref *rt, uint32_t n_tok, vkm_range groups)
{
    const uint32_t n_exp = rt->n_grp;
    uint32_t emax = 4;
    while (emax < n_exp) emax *= 2;
    uint32_t spec[2] = {vkm_ops_stream_wg(r->dev), emax};
    vkm_pipe *p = vkm_ops_pipe(r, VKM_SPV_route_group, spec, 2);
    if (!p) return;
    vkm_push_group pc = {n_tok, n_exp, rt->route_off, rt->row_stride, rt->row_list_off};
    vkm_range b[3] = {rt->ids, rt->list, groups};
    vkm_rec_dispatch(r, p, b, 3, &pc, sizeof pc, 1, 1, 1);
}

void vkm_op_moe_combine(vkm_rec *r, vkm_range d, uint32_t dim, vkm_act y, uint32_t n_tok,
                        const vkm_route_ref *rt, bool accumulate)
{
    uint32_t spec[1] = {vkm_ops_stream_wg(r->dev)};
    vkm_pipe *p = vkm_ops_pipe(r, VKM_SPV_moe_combine, spec, 1);
    if (!p) return;
    vkm_push_combine pc = {n_tok, dim, y.stride, y.off, 0, rt->route_off, rt->row_stride, rt->row_list_off,
                           accumulate ? 1u : 0u};
    vkm_range b[5] = {d, rt->ids, rt->wts, rt->list, y.r};
    uint64_t n = (uint64_t)n_tok * dim;
    vkm_rec_dispatch_n(r, p, b, 5, &pc, sizeof pc, (n + spec[0] - 1) / spec[0]);
}
