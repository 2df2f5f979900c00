/*
 * ops_lora.c — host side of the MoErging kernels: the fused router, the routed LoRA shrink and
 * expand (BGMV), mean pooling of router inputs, Arrow prototypes by power iteration.
 */
#include "ops_lora.h"

#include <string.h>

#include "ops_moe.h"

#include "push.h"

/* Router workgroup: one subgroup on CPU devices, 64 elsewhere (shared: EMAX x WG floats). */
static uint32_t router_wg(const vkm_dev *d)
{
    uint32_t wg = vkm_ops_reduce_wg(d);
    return wg > 64 ? 64 : wg;
}

static uint32_t pow2_at_least(uint32_t v, uint32_t lo)
{
    uint32_t p = lo;
    while (p < v) p *= 2;
    return p;
}

uint32_t vkm_lora_rank_pad(uint32_t rmax) { return pow2_at_least(rmax, 4); }

uint32_t vkm_route_entries(uint32_t top_k, uint32_t n_exp, bool always_on)
{
    const uint32_t ao = always_on ? 1u : 0u, others = n_exp > ao ? n_exp - ao : 0;
    return (top_k == 0 || top_k > others ? others : top_k) + ao;
}

/* Shared bytes of a shrink workgroup of wg lanes: a partial per padded rank (and router expert,
 * when it routes) and lane, the reduction's row, the routed entry. */
static uint64_t shrink_shared(uint32_t wg, uint32_t rmax_pad, uint32_t emax)
{
    return 4ull * ((uint64_t)wg * (rmax_pad + emax + 1) + 1);
}

bool vkm_lora_rank_fits(const vkm_dev *d, uint32_t rmax)
{
    return shrink_shared(d->caps.subgroup_size, pow2_at_least(rmax, 4), 0) <= d->caps.max_shared_bytes;
}

void vkm_op_router(vkm_rec *r, const vkm_router_call *c)
{
    uint32_t emax = pow2_at_least(c->n_exp, 4);
    const bool vec = c->in_dim % 4 == 0 && c->x.off % 4 == 0 && c->x.stride % 4 == 0 && c->mat_stride % 4 == 0;
    uint32_t spec[3] = {router_wg(r->dev), emax, vec ? 1u : 0u};
    vkm_pipe *p = vkm_ops_pipe(r, VKM_SPV_router, spec, 3);
    if (!p) return;
    vkm_push_router pc = {c->in_dim, c->n, c->x.stride, c->x.off, c->list_off, c->out_row_off,
                          c->route_off, c->n_exp, c->row_stride, c->top_k, c->flags, c->inv_temp,
                          c->always_on, c->map_off, c->x_scale, c->n_copies ? c->n_copies : 1,
                          c->copy_stride, c->mat_stride};
    vkm_range b[5] = {c->x.r, c->matrix, c->list, c->ids, c->wts};
    const uint32_t sites = c->n_sites ? c->n_sites : 1;
    vkm_rec_note_bytes(r, 4ull * sites * c->n * c->in_dim * (1 + c->n_exp));
    vkm_rec_dispatch_nz(r, p, b, 5, &pc, sizeof pc, c->n, sites);
}

/* Many tokens: per chunk, the items grouped by expert, shrink t = s_e A_e x as a gathered
 * matmul per expert, expand d = Bt_e^T t per item (transposed-weight matmul), then the routing
 * weights combine the items into y. */
static void lora_grouped(vkm_rec *r, const vkm_lora_call *c)
{
    const uint32_t rmax = pow2_at_least(c->rmax, 4);
    for (uint32_t t0 = 0; t0 < c->n_tok; t0 += c->chunk) {
        const uint32_t n = c->n_tok - t0 < c->chunk ? c->n_tok - t0 : c->chunk;
        const vkm_route_ref rt = {c->ids, c->wts, c->list, c->route_off, c->row_stride, c->row_list_off + t0, c->n_total};
        vkm_act x = c->x, y = c->y;
        x.off += t0 * x.stride;
        y.off += t0 * y.stride;
        vkm_op_route_group(r, &rt, n, c->groups);
        for (uint32_t e = 0; e < c->n_total; e++) { /* t = s_e A_e x */
            const uint32_t *me = c->meta_host + c->meta_off + 4 * e;
            float scale;
            memcpy(&scale, &me[2], 4);
            const vkm_f32_view a = {c->a, me[0] * c->in_dim, me[1], c->in_dim, c->in_dim, 1};
            vkm_op_moe_linear_f32(r, &a, e, x, false, (vkm_act){c->t, 0, rmax}, n, &rt, c->groups, scale);
        }
        for (uint32_t e = 0; e < c->n_total; e++) { /* d = B_e t (rank 0: d = 0 for its items) */
            const uint32_t *me = c->meta_host + c->meta_off + 4 * e;
            const vkm_f32_view b = {c->bt, me[0] * c->out_dim, c->out_dim, me[1], 1, c->out_dim};
            vkm_op_moe_linear_f32(r, &b, e, (vkm_act){c->t, 0, rmax}, true, (vkm_act){c->d, 0, c->out_dim}, n, &rt,
                                  c->groups, 1.0f);
        }
        vkm_op_moe_combine(r, c->d, c->out_dim, y, n, &rt, true);
    }
}

static vkm_push_lora lora_push(const vkm_lora_call *c)
{
    return (vkm_push_lora){c->n_tok, c->in_dim, c->out_dim, c->x.stride, c->x.off, c->y.stride, c->y.off,
                           c->route_off, c->row_stride, c->meta_off, c->rank_total, c->row_list_off};
}

/* The shrink's pipeline for rows of in_dim read from x (spec: WG, padded rank, vec4 rows). */
static vkm_pipe *shrink_pipe(vkm_rec *r, vkm_spv_id id, const vkm_lora_call *c)
{
    const vkm_dev *d = r->dev;
    const uint32_t rmax = pow2_at_least(c->rmax, 4);
    uint32_t swg = vkm_ops_reduce_wg(d);
    while (shrink_shared(swg, rmax, 0) > d->caps.max_shared_bytes / 2 && swg > d->caps.subgroup_size) swg /= 2;
    /* vec4 rows where every row start is 16-byte aligned (ranges are aligned to 16 bytes) */
    const bool svec = c->in_dim % 4 == 0 && c->x.off % 4 == 0 && c->x.stride % 4 == 0;
    uint32_t sspec[3] = {swg, rmax, svec ? 1u : 0u};
    return vkm_ops_pipe(r, id, sspec, 3);
}

/* The expand of one site from its shrink output in t (bound from the site's region). */
static void lora_expand(vkm_rec *r, const vkm_lora_call *c, vkm_range t)
{
    const vkm_dev *d = r->dev;
    const uint32_t rmax = pow2_at_least(c->rmax, 4);
    const vkm_push_lora pc = lora_push(c);
    const bool evec = c->out_dim % 4 == 0;
    uint32_t espec[3] = {64, rmax, evec ? 1u : 0u};
    if (espec[0] > d->caps.max_wg_invocations) espec[0] = d->caps.max_wg_invocations;
    vkm_pipe *ep = vkm_ops_pipe(r, VKM_SPV_lora_expand, espec, 3);
    if (!ep) return;
    vkm_range eb[7] = {t, c->bt, c->meta, c->ids, c->list, c->wts, c->y.r};
    vkm_rec_note_bytes(r, 4ull * c->n_tok * (c->out_dim + 2ull * c->rmax * c->out_dim));
    uint64_t outs = evec ? c->out_dim / 4 : c->out_dim, blocks = (outs + espec[0] - 1) / espec[0];
    vkm_rec_dispatch_n(r, ep, eb, 7, &pc, sizeof pc, (uint64_t)c->n_tok * blocks);
}

/* The shrink of one site into t. */
static void lora_shrink(vkm_rec *r, const vkm_lora_call *c, vkm_range t)
{
    vkm_pipe *sp = shrink_pipe(r, VKM_SPV_lora_shrink, c);
    if (!sp) return;
    const vkm_push_lora pc = lora_push(c);
    vkm_range sb[6] = {c->x.r, c->a, c->meta, c->ids, c->list, t};
    vkm_rec_note_bytes(r, 4ull * c->n_tok * (c->in_dim + 2ull * c->rmax * c->in_dim));
    vkm_rec_dispatch_n(r, sp, sb, 6, &pc, sizeof pc, (uint64_t)c->n_tok * c->row_stride);
}

void vkm_op_lora(vkm_rec *r, const vkm_lora_call *c)
{
    if (c->n_tok > VKM_MOE_MATVEC_MAX_T && c->meta_host && c->d.buf) {
        lora_grouped(r, c);
        return;
    }
    lora_shrink(r, c, c->t);
    lora_expand(r, c, c->t);
}

/* Bytes of t one site's shrink output takes in a fused shrink: n_tok rows of the routing
 * entries' padded ranks, rounded up to the storage offset alignment (its expand binds it). */
static uint64_t site_t_bytes(const vkm_dev *d, const vkm_lora_call *c)
{
    const uint64_t bytes = 4ull * c->n_tok * c->row_stride * pow2_at_least(c->rmax, 4);
    const uint64_t a = d->caps.storage_align > 16 ? d->caps.storage_align : 16;
    return (bytes + a - 1) / a * a;
}

uint64_t vkm_lora_sites_t_bytes(const vkm_dev *d, uint32_t n_tok, uint32_t row_stride, uint32_t rmax)
{
    const vkm_lora_call c = {.n_tok = n_tok, .row_stride = row_stride, .rmax = rmax};
    return VKM_LORA_MAX_SITES * site_t_bytes(d, &c);
}

/* Whether the n sites' shrinks can share one dispatch: decoding, the same input, tokens and
 * routing rows, a region of t each. Returns the region's bytes (0: not). */
static uint64_t sites_region(const vkm_rec *r, const vkm_lora_call *c, uint32_t n)
{
    bool fuse = n >= 1 && n <= VKM_LORA_MAX_SITES && c[0].n_tok <= VKM_MOE_MATVEC_MAX_T;
    for (uint32_t s = 1; fuse && s < n; s++) /* the same input, tokens and routing rows */
        fuse = c[s].x.r.buf == c[0].x.r.buf && c[s].x.r.off == c[0].x.r.off && c[s].x.off == c[0].x.off &&
               c[s].x.stride == c[0].x.stride && c[s].in_dim == c[0].in_dim && c[s].n_tok == c[0].n_tok &&
               c[s].rmax == c[0].rmax && c[s].row_stride == c[0].row_stride &&
               c[s].row_list_off == c[0].row_list_off && c[s].t.buf == c[0].t.buf && c[s].t.off == c[0].t.off &&
               c[s].meta.buf == c[0].meta.buf && c[s].ids.buf == c[0].ids.buf && c[s].list.buf == c[0].list.buf &&
               c[s].wts.buf == c[0].wts.buf && c[s].wts.off == c[0].wts.off;
    const uint64_t region = fuse ? site_t_bytes(r->dev, &c[0]) : 0;
    return region * n <= c[0].t.size ? region : 0;
}

/* The sites' shrink push block (their tables, routing points, regions of t). */
static vkm_push_lora_sites sites_push(const vkm_lora_call *c, uint32_t n, uint64_t region)
{
    vkm_push_lora_sites pc;
    memset(&pc, 0, sizeof pc);
    for (uint32_t s = 0; s < n; s++) {
        pc.meta_off[s] = c[s].meta_off;
        pc.route_off[s] = c[s].route_off;
        pc.t_off[s] = (uint32_t)(s * region / 4);
    }
    pc.n_tok = c[0].n_tok;
    pc.in_dim = c[0].in_dim;
    pc.x_stride = c[0].x.stride;
    pc.x_off = c[0].x.off;
    pc.row_stride = c[0].row_stride;
    pc.row_list_off = c[0].row_list_off;
    pc.n_sites = n;
    return pc;
}

static void note_shrink_bytes(vkm_rec *r, const vkm_lora_call *c, uint32_t n, uint64_t extra)
{
    uint64_t bytes = 4ull * c[0].n_tok * c[0].in_dim + extra;
    for (uint32_t s = 0; s < n; s++) bytes += 4ull * c[s].n_tok * 2ull * c[s].rmax * c[s].in_dim;
    vkm_rec_note_bytes(r, bytes);
}

/* The expands of the sites whose shrinks wrote their regions of t: one dispatch where their
 * rows read alike (vec4 or not), else one per site. */
static void sites_expand(vkm_rec *r, const vkm_lora_call *c, uint32_t n, uint64_t region)
{
    bool evec = c[0].out_dim % 4 == 0, same = n > 1 && r->dev->max_stage_storage >= 11;
    for (uint32_t s = 1; s < n; s++) same &= (c[s].out_dim % 4 == 0) == evec;
    if (!same) {
        for (uint32_t s = 0; s < n; s++) lora_expand(r, &c[s], vkm_range_sub(c[0].t, s * region, region));
        return;
    }
    uint32_t espec[3] = {64, pow2_at_least(c[0].rmax, 4), evec ? 1u : 0u};
    if (espec[0] > r->dev->caps.max_wg_invocations) espec[0] = r->dev->caps.max_wg_invocations;
    vkm_pipe *ep = vkm_ops_pipe(r, VKM_SPV_lora_expand_sites, espec, 3);
    if (!ep) return;
    vkm_push_lora_sites pc = sites_push(c, n, region);
    uint64_t groups = 0;
    for (uint32_t s = 0; s < n; s++) {
        const uint64_t outs = evec ? c[s].out_dim / 4 : c[s].out_dim;
        pc.out_dim[s] = c[s].out_dim;
        pc.y_stride[s] = c[s].y.stride;
        pc.y_off[s] = c[s].y.off;
        pc.g0[s] = (uint32_t)groups;
        groups += (uint64_t)c[s].n_tok * ((outs + espec[0] - 1) / espec[0]);
        vkm_rec_note_bytes(r, 4ull * c[s].n_tok * (c[s].out_dim + 2ull * c[s].rmax * c[s].out_dim));
    }
    /* site s's Bt at binding 1, 7, 8 and y at 6, 9, 10 (a missing third repeats the first) */
    const vkm_lora_call *c2 = n > 2 ? &c[2] : &c[0];
    vkm_range eb[11] = {c[0].t, c[0].bt, c[0].meta, c[0].ids, c[0].list, c[0].wts, c[0].y.r,
                        c[1].bt, c2->bt, c[1].y.r, c2->y.r};
    vkm_rec_dispatch_n(r, ep, eb, 11, &pc, sizeof pc, groups);
}

uint64_t vkm_op_lora_shrink(vkm_rec *r, const vkm_lora_call *c, uint32_t n)
{
    const uint64_t region = sites_region(r, c, n);
    if (!region) return 0;
    if (n == 1 || r->dev->max_stage_storage < 8) { /* one dispatch per site, into its region */
        for (uint32_t s = 0; s < n; s++) lora_shrink(r, &c[s], vkm_range_sub(c[0].t, s * region, region));
        return region;
    }
    vkm_pipe *sp = shrink_pipe(r, VKM_SPV_lora_shrink_sites, &c[0]);
    if (!sp) return region; /* the recorder has failed */
    const vkm_push_lora_sites pc = sites_push(c, n, region);
    /* site s's A at binding 1, 6, 7 (a missing third repeats the first) */
    vkm_range sb[8] = {c[0].x.r, c[0].a, c[0].meta, c[0].ids, c[0].list, c[0].t, c[1].a, n > 2 ? c[2].a : c[0].a};
    note_shrink_bytes(r, c, n, 0);
    vkm_rec_dispatch_n(r, sp, sb, 8, &pc, sizeof pc, (uint64_t)n * c[0].n_tok * c[0].row_stride);
    return region;
}

void vkm_op_lora_sites(vkm_rec *r, const vkm_lora_call *c, uint32_t n)
{
    if (n < 2 || r->dev->max_stage_storage < 8 || !sites_region(r, c, n)) {
        for (uint32_t s = 0; s < n; s++) vkm_op_lora(r, &c[s]);
        return;
    }
    sites_expand(r, c, n, vkm_op_lora_shrink(r, c, n));
}

void vkm_op_linear_lora(vkm_rec *r, const vkm_tensor *w, const vkm_lora_call *c, uint32_t s, uint32_t n,
                        bool accumulate)
{
    const uint64_t region = sites_region(r, c, n);
    const vkm_matvec_lora ml = {vkm_range_sub(c[0].t, s * region, region), c[s].bt, c[s].meta, c[s].ids, c[s].list,
                                c[s].wts, c[s].out_dim, c[s].route_off, c[s].row_stride, c[s].meta_off,
                                c[s].row_list_off, pow2_at_least(c[s].rmax, 4)};
    vkm_op_matvec_lora(r, w, c[s].x, c[s].y, c[s].n_tok, accumulate, &ml);
}

uint64_t vkm_op_lora_route_shrink(vkm_rec *r, const vkm_lora_call *c, uint32_t n, const vkm_router_call *rc,
                                  const vkm_range *mats)
{
    const vkm_dev *d = r->dev;
    const uint64_t region = sites_region(r, c, n);
    const uint32_t rmax = pow2_at_least(c[0].rmax, 4), emax = pow2_at_least(rc->n_exp, 4);
    const bool vec = c[0].in_dim % 4 == 0 && c[0].x.off % 4 == 0 && c[0].x.stride % 4 == 0;
    if (!region || d->max_stage_storage < 10 || emax > 64 || rc->n != c[0].n_tok || rc->in_dim != c[0].in_dim ||
        rc->x.r.buf != c[0].x.r.buf || rc->x.r.off != c[0].x.r.off || rc->x.off != c[0].x.off ||
        rc->x.stride != c[0].x.stride || rc->list_off != 0xffffffffu || rc->out_row_off != 0xffffffffu ||
        rc->ids.buf != c[0].ids.buf || rc->wts.buf != c[0].wts.buf || rc->wts.off != c[0].wts.off ||
        rc->x_scale != 1.0f || rc->row_stride != c[0].row_stride)
        return 0;
    /* the sites' router matrices: one binding over all of them (one buffer), each at its offset */
    uint64_t lo = mats[0].off, hi = mats[0].off + mats[0].size;
    for (uint32_t s = 1; s < n; s++) {
        if (mats[s].buf != mats[0].buf) return 0;
        if (mats[s].off < lo) lo = mats[s].off;
        if (mats[s].off + mats[s].size > hi) hi = mats[s].off + mats[s].size;
    }
    if (hi - lo > d->caps.max_storage_range) return 0;
    vkm_push_lora_route pc;
    memset(&pc, 0, sizeof pc);
    for (uint32_t s = 0; s < n; s++) {
        pc.mat_off[s] = (uint32_t)((mats[s].off - lo) / 4);
        if (vec && pc.mat_off[s] % 4) return 0; /* vec4 rows */
    }
    uint32_t swg = vkm_ops_reduce_wg(d);
    while (shrink_shared(swg, rmax, emax) > d->caps.max_shared_bytes / 2 && swg > d->caps.subgroup_size) swg /= 2;
    if (shrink_shared(swg, rmax, emax) > d->caps.max_shared_bytes) return 0; /* routed apart */
    uint32_t spec[4] = {swg, rmax, vec ? 1u : 0u, emax};
    vkm_pipe *p = vkm_ops_pipe(r, VKM_SPV_lora_route_shrink_sites, spec, 4);
    if (!p) return 0;
    const vkm_push_lora_sites sp = sites_push(c, n, region);
    memcpy(pc.meta_off, sp.meta_off, sizeof pc.meta_off);
    memcpy(pc.route_off, sp.route_off, sizeof pc.route_off);
    memcpy(pc.t_off, sp.t_off, sizeof pc.t_off);
    pc.n_tok = sp.n_tok;
    pc.in_dim = sp.in_dim;
    pc.x_stride = sp.x_stride;
    pc.x_off = sp.x_off;
    pc.row_stride = sp.row_stride;
    pc.row_list_off = sp.row_list_off;
    pc.n_sites = n;
    pc.n_exp = rc->n_exp;
    pc.top_k = rc->top_k;
    pc.flags = rc->flags;
    pc.inv_temp = rc->inv_temp;
    pc.always_on = rc->always_on;
    pc.map_off = rc->map_off;
    /* workgroups for the entries a decision can fill (route_topk: top-k of the others, then the
     * always-on expert); entry 0 writes the whole row, the rest of it empty */
    const uint32_t k = vkm_route_entries(rc->top_k, rc->n_exp, rc->always_on >= 0);
    pc.n_ent = k < c[0].row_stride ? k : c[0].row_stride;
    if (pc.n_ent == 0) pc.n_ent = 1; /* entry 0 still writes the (empty) row */
    /* site s's A at binding 1, 6, 7 (a missing one repeats the first); router matrices at 8 */
    const vkm_range rm = {mats[0].buf, lo, hi - lo, NULL};
    vkm_range b[10] = {c[0].x.r, c[0].a, c[0].meta, c[0].ids, c[0].list, c[0].t, n > 1 ? c[1].a : c[0].a,
                       n > 2 ? c[2].a : c[0].a, rm, c[0].wts};
    note_shrink_bytes(r, c, n, 4ull * n * c[0].n_tok * pc.n_ent * rc->n_exp * rc->in_dim);
    vkm_rec_dispatch_n(r, p, b, 10, &pc, sizeof pc, (uint64_t)n * c[0].n_tok * pc.n_ent);
    return region;
}

void vkm_op_lora_sites_expand(vkm_rec *r, const vkm_lora_call *c, uint32_t n)
{
    sites_expand(r, c, n, sites_region(r, c, n));
}

void vkm_op_pool(vkm_rec *r, vkm_act x, uint32_t n_tok, uint32_t dim, vkm_range dst, uint32_t dst_off)
{
    uint32_t spec[1] = {vkm_ops_stream_wg(r->dev)};
    vkm_pipe *p = vkm_ops_pipe(r, VKM_SPV_pool, spec, 1);
    if (!p) return;
    vkm_push_pool pc = {n_tok, dim, x.stride, x.off, dst_off};
    vkm_range b[2] = {x.r, dst};
    vkm_rec_dispatch_n(r, p, b, 2, &pc, sizeof pc, (dim + spec[0] - 1) / spec[0]);
}

void vkm_op_arrow(vkm_rec *r, const vkm_arrow_call *c)
{
    uint32_t spec[2] = {router_wg(r->dev), pow2_at_least(c->rmax, 4)};
    vkm_pipe *p = vkm_ops_pipe(r, VKM_SPV_arrow, spec, 2);
    if (!p) return;
    vkm_push_arrow pc = {c->in_dim, c->out_dim, c->meta_off, c->n_iter, c->n_exp, c->map_off};
    vkm_range b[5] = {c->a, c->bt, c->meta, c->list, c->out};
    vkm_rec_dispatch_n(r, p, b, 5, &pc, sizeof pc, c->n_exp);
}

void vkm_op_lora_compose(vkm_rec *r, const vkm_site_ranges *site, vkm_range meta, vkm_range ids,
                         vkm_range wts, uint32_t meta_off, uint32_t route_off, uint32_t row_stride,
                         uint32_t dst, uint32_t dst_rank)
{
    uint32_t spec[1] = {vkm_ops_stream_wg(r->dev)};
    vkm_pipe *p = vkm_ops_pipe(r, VKM_SPV_lora_compose, spec, 1);
    if (!p) return;
    vkm_push_compose pc = {site->in_dim, site->out_dim, meta_off, route_off, row_stride, dst};
    vkm_range b[5] = {site->a, site->bt, meta, ids, wts};
    uint64_t n = (uint64_t)dst_rank * (site->in_dim + site->out_dim);
    vkm_rec_dispatch_n(r, p, b, 5, &pc, sizeof pc, (n + spec[0] - 1) / spec[0]);
}
