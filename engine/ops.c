/*
 * ops.c — host wrappers of the basic kernels (copy, matvec, rmsnorm, softmax, element-wise):
 * variant choice, specialization constants, chunking, dispatch geometry.
 */
#include <stdio.h>
#include <string.h>

#include "ops.h"
#include "push.h"

vkm_spv_id vkm_ops_variant(const vkm_dev *d, vkm_spv_id id)
{
    const uint32_t need = VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_ARITHMETIC_BIT;
    if ((d->caps.subgroup_ops & need) == need) return id;
    char name[128];
    snprintf(name, sizeof name, "%s_nosg", vkm_spv_registry[id].name);
    vkm_spv_id twin = vkm_spv_find(name);
    return twin == VKM_SPV_COUNT ? id : twin;
}

vkm_pipe *vkm_ops_pipe(vkm_rec *r, vkm_spv_id id, const uint32_t *spec, uint32_t n_spec)
{
    if (r->status != VKM_OK) return NULL;
    vkm_pipe *p = NULL;
    vkm_status s = vkm_pipe_get(r->dev, vkm_ops_variant(r->dev, id), spec, n_spec, &p);
    if (s != VKM_OK) r->status = s;
    return p;
}

/* Workgroup sizes (measured, see apps bench). CPU devices (lavapipe) run a workgroup as one
 * thread looping over its subgroups: kernels with reductions (barriers, shared memory) are
 * fastest with one subgroup per workgroup there, barrier-free ones with large workgroups.
 * GPUs: reductions over a few subgroups (at least 64 invocations), streaming kernels 256. */
bool vkm_ops_cpu_device(const vkm_dev *d) { return d->cpu_tuning; }

static uint32_t cap_wg(const vkm_dev *d, uint32_t wg)
{
    return wg > d->caps.max_wg_invocations ? d->caps.max_wg_invocations : wg;
}

uint32_t vkm_ops_reduce_wg(const vkm_dev *d)
{
    uint32_t sg = d->caps.subgroup_size ? d->caps.subgroup_size : 32;
    if (vkm_ops_cpu_device(d)) return sg;
    uint32_t wg = sg * 4;
    if (wg < 64) wg = 64;
    if (wg > 256) wg = 256;
    return cap_wg(d, wg);
}

uint32_t vkm_ops_stream_wg(const vkm_dev *d) { return cap_wg(d, 256); }

void vkm_op_copy(vkm_rec *r, vkm_range src, vkm_range dst, uint64_t bytes)
{
    uint32_t spec[2] = {vkm_ops_stream_wg(r->dev), vkm_ops_cpu_device(r->dev) ? 1u : 4u};
    vkm_pipe *p = vkm_ops_pipe(r, VKM_SPV_copy, spec, 2);
    if (!p) return;
    vkm_push_copy pc = {(uint32_t)(bytes / 16)};
    vkm_range b[2] = {vkm_range_sub(src, 0, bytes), vkm_range_sub(dst, 0, bytes)};
    uint64_t per = (uint64_t)spec[0] * spec[1];
    vkm_rec_dispatch_n(r, p, b, 2, &pc, sizeof pc, (pc.n + per - 1) / per);
}

vkm_spv_id vkm_ops_weight_variant(const vkm_dev *d, const char *family, vkm_dtype t)
{
    const char *suffix = "f32";
    switch (t) {
    case VKM_F16: /* the device's unpackHalf2x16 where it is exact, else 16-bit loads, else words */
        suffix = (d->f16_probe & VKM_F16_DECODE_EXACT) ? "f16h" : d->caps.storage16 ? "f16s" : "f16";
        break;
    case VKM_Q8_0: suffix = "q8_0"; break;
    case VKM_Q4_0: suffix = "q4_0"; break;
    default: break;
    }
    char name[64];
    snprintf(name, sizeof name, "%s_%s", family, suffix);
    return vkm_spv_find(name);
}

/* Passes of matvec over the vectors (and each chunk of W), with the LoRA epilogue or not. */
static void matvec_record(vkm_rec *r, const vkm_tensor *w, vkm_act x, vkm_act y, uint32_t n_t, bool accumulate,
                          const vkm_matvec_lora *lora)
{
    const vkm_dev *d = r->dev;
    /* CPU devices: 8 rows, 4 vectors per pass (more vectors per pass spill registers) */
    const uint32_t nr = vkm_ops_cpu_device(d) ? 8u : 2u, per = vkm_ops_cpu_device(d) ? 4u : 8u;
    const vkm_matvec_lora none = {0}, *l = lora ? lora : &none;
    for (uint32_t t0 = 0; t0 < n_t; t0 += per) {
        uint32_t nt = n_t - t0 < per ? n_t - t0 : per;
        uint32_t spec[4] = {vkm_ops_reduce_wg(d), nr, nt, l->rpad};
        vkm_pipe *p = vkm_ops_pipe(r, vkm_ops_weight_variant(d, lora ? "matvec_lora" : "matvec", w->dtype), spec,
                                   lora ? 4 : 3);
        if (!p) return;
        for (uint32_t c = 0; c < w->n_chunks; c++) {
            const vkm_chunk *ch = &w->chunks[c];
            vkm_push_matvec_lora pc = {{ch->rows, w->cols, ch->row0, w->row_stride, x.stride, y.stride,
                                        accumulate ? 1u : 0u, ch->scale_off_words, x.off + t0 * x.stride,
                                        y.off + t0 * y.stride},
                                       t0, l->out_dim, l->route_off, l->row_stride, l->meta_off, l->row_list_off};
            const vkm_range b[9] = {ch->r, x.r, y.r, l->t, l->bt, l->meta, l->ids, l->list, l->wts};
            uint64_t bytes = w->bytes * ch->rows / w->rows + 4ull * nt * (w->cols + ch->rows);
            /* the vectors' shrink outputs and two experts' rows of Bt */
            if (lora) bytes += 4ull * 2 * l->rpad * (nt + ch->rows);
            vkm_rec_note_bytes(r, bytes);
            vkm_rec_dispatch_n(r, p, b, lora ? 9 : 3, &pc, lora ? sizeof pc : sizeof pc.mv, (ch->rows + nr - 1) / nr);
        }
    }
}

void vkm_op_matvec(vkm_rec *r, const vkm_tensor *w, vkm_act x, vkm_act y, uint32_t n_t, bool accumulate)
{
    matvec_record(r, w, x, y, n_t, accumulate, NULL);
}

void vkm_op_matvec_lora(vkm_rec *r, const vkm_tensor *w, vkm_act x, vkm_act y, uint32_t n_t, bool accumulate,
                        const vkm_matvec_lora *lora)
{
    matvec_record(r, w, x, y, n_t, accumulate, lora);
}

void vkm_op_rmsnorm_rows(vkm_rec *r, vkm_act x, vkm_range w, vkm_act y, uint32_t n,
                         uint32_t rows, float eps, const vkm_range *idx, uint32_t idx_off)
{
    uint32_t spec[1] = {vkm_ops_reduce_wg(r->dev)};
    vkm_pipe *p = vkm_ops_pipe(r, VKM_SPV_rmsnorm, spec, 1);
    if (!p) return;
    vkm_push_norm pc = {n, rows, x.stride, y.stride, eps, x.off, y.off, idx ? idx_off : 0xffffffffu};
    vkm_range b[4] = {x.r, w, y.r, idx ? *idx : w};
    vkm_rec_note_bytes(r, 8ull * n * rows + 4ull * n);
    vkm_rec_dispatch_n(r, p, b, 4, &pc, sizeof pc, rows);
}

void vkm_op_rmsnorm(vkm_rec *r, vkm_act x, vkm_range w, vkm_act y, uint32_t n, uint32_t rows,
                    float eps)
{
    vkm_op_rmsnorm_rows(r, x, w, y, n, rows, eps, NULL, 0);
}

void vkm_op_softmax(vkm_rec *r, vkm_range x, uint32_t n, uint32_t rows, uint32_t stride, float scale)
{
    uint32_t spec[1] = {vkm_ops_reduce_wg(r->dev)};
    vkm_pipe *p = vkm_ops_pipe(r, VKM_SPV_softmax, spec, 1);
    if (!p) return;
    vkm_push_softmax pc = {n, rows, stride, scale};
    vkm_rec_dispatch_n(r, p, &x, 1, &pc, sizeof pc, rows);
}

void vkm_op_eltwise(vkm_rec *r, vkm_elt_op op, vkm_act a, vkm_act b, vkm_act y, uint32_t n)
{
    uint32_t spec[2] = {vkm_ops_stream_wg(r->dev), (uint32_t)op};
    vkm_pipe *p = vkm_ops_pipe(r, VKM_SPV_eltwise, spec, 2);
    if (!p) return;
    vkm_push_eltwise pc = {n, a.off, b.off, y.off};
    vkm_range bind[3] = {a.r, b.r, y.r};
    uint64_t groups = (n + spec[0] - 1) / spec[0];
    if (groups > 4096) groups = 4096;
    vkm_rec_note_bytes(r, 12ull * n);
    vkm_rec_dispatch_n(r, p, bind, 3, &pc, sizeof pc, groups);
}
