/*
 * merge_ops.c — host wrappers of the merge kernels (merge.comp, merge_reduce.comp, select.comp,
 * lora_merge.comp): variant and specialization constants, push constants, dispatch geometry.
 * Failures go to the recorder's status, like the other ops.
 */
#include <string.h>

#include "merge.h"

/* The slab's part of every push block: offsets, elements, first element. */
#define SLAB_PUSH(pc, s)                                                                       \
    do {                                                                                       \
        memset(&(pc), 0, sizeof(pc));                                                          \
        memcpy((pc).off, (s)->off, sizeof(pc).off);                                            \
        (pc).n = (s)->n;                                                                       \
    } while (0)

static uint32_t pack_dtypes(const vkm_mslab *s)
{
    uint32_t v = 0;
    for (uint32_t j = 0; j < s->n_in; j++) v |= (s->dt[j] & 3u) << (2 * j);
    return v;
}

/* Workgroups for a grid-stride loop over the slab's 8-element groups. */
static uint64_t stream_groups(uint32_t n, uint32_t wg, uint64_t cap)
{
    uint64_t groups = ((uint64_t)n + 7) / 8, g = (groups + wg - 1) / wg;
    return g < 1 ? 1 : g > cap ? cap : g;
}

void vkm_mop_combine(vkm_rec *r, const vkm_mslab *s, vkm_mop op, uint32_t base, uint32_t flags,
                     uint32_t odt, vkm_range out, vkm_range params, vkm_range state)
{
    /* one 8-element group per invocation: a grid-stride loop costs llvmpipe half its speed */
    uint32_t wg = vkm_ops_stream_wg(r->dev);
    uint32_t spec[8] = {wg, s->n_in, pack_dtypes(s), odt, (uint32_t)op, base, flags, s->hw_f16};
    const bool split = s->split && s->n_in <= VKM_MSPLIT_MAX;
    vkm_pipe *p = vkm_ops_pipe(r, split ? VKM_SPV_merge_in : VKM_SPV_merge, spec, 8);
    if (!p) return;
    vkm_push_merge pc;
    SLAB_PUSH(pc, s);
    pc.elem0 = s->elem0;
    /* split: input 0 at binding 0, input j > 0 at 3 + j (unused ones repeat input 0) */
    vkm_range b[4 + VKM_MSPLIT_MAX - 1] = {split ? s->in[0] : s->r, out, params, state};
    for (uint32_t j = 1; split && j < VKM_MSPLIT_MAX; j++) b[3 + j] = j < s->n_in ? s->in[j] : s->in[0];
    vkm_rec_dispatch_n(r, p, b, split ? 3 + VKM_MSPLIT_MAX : 4, &pc, sizeof pc, stream_groups(s->n, wg, 1u << 30));
}

uint32_t vkm_mop_reduce_groups(const vkm_dev *d, uint32_t n)
{
    return (uint32_t)stream_groups(n, vkm_ops_reduce_wg(d), vkm_ops_cpu_device(d) ? 16 : 256);
}

void vkm_mop_reduce(vkm_rec *r, const vkm_mslab *s, uint32_t base, vkm_range part,
                    uint32_t part_off)
{
    const vkm_dev *d = r->dev;
    uint32_t spec[8] = {vkm_ops_reduce_wg(d), s->n_in, pack_dtypes(s), base, 0, 0, 0, s->hw_f16};
    vkm_pipe *p = vkm_ops_pipe(r, VKM_SPV_merge_reduce, spec, 8);
    if (!p) return;
    vkm_push_reduce pc;
    SLAB_PUSH(pc, s);
    pc.part_off = part_off;
    vkm_range b[2] = {s->r, part};
    vkm_rec_dispatch_n(r, p, b, 2, &pc, sizeof pc, vkm_mop_reduce_groups(d, s->n));
}

/* Shared memory holds n_slots histograms of 256 counts: workgroups of 64 on CPU devices. */
static uint32_t select_wg(const vkm_dev *d) { return vkm_ops_cpu_device(d) ? 64 : 256; }
static uint64_t select_groups_max(const vkm_dev *d) { return vkm_ops_cpu_device(d) ? 16 : 1024; }

/* A selection pass over one chunk: its pipeline (spec: WG, slots, input types, f16 decoding)
 * and push block; NULL if the recorder failed. */
static vkm_pipe *select_chunk(vkm_rec *r, vkm_spv_id id, const vkm_mslab *s, uint32_t slot0, uint32_t n_slots,
                              vkm_push_select *pc)
{
    uint32_t spec[8] = {select_wg(r->dev), n_slots, pack_dtypes(s), 0, 0, 0, 0, s->hw_f16};
    SLAB_PUSH(*pc, s);
    pc->elem0 = s->elem0;
    pc->n_slots = n_slots;
    pc->slot0 = slot0;
    return vkm_ops_pipe(r, id, spec, 8);
}

void vkm_mop_select_hist(vkm_rec *r, const vkm_mslab *s, uint32_t pass, uint32_t slot0,
                         uint32_t n_slots, vkm_range hist, vkm_range state)
{
    const vkm_dev *d = r->dev;
    const uint32_t wg = select_wg(d);
    vkm_push_select pc;
    vkm_pipe *p = select_chunk(r, VKM_SPV_select_hist, s, slot0, n_slots, &pc);
    if (!p) return;
    pc.pass = pass;
    vkm_range b[3] = {s->r, hist, state};
    vkm_rec_dispatch_n(r, p, b, 3, &pc, sizeof pc, stream_groups(s->n, wg, select_groups_max(d)));
}

void vkm_mop_select_bracket(vkm_rec *r, const vkm_mslab *s, uint32_t slot0, uint32_t n_slots,
                            vkm_range cand, uint32_t cap, vkm_range cnt, vkm_range state)
{
    const vkm_dev *d = r->dev;
    const uint32_t wg = select_wg(d);
    vkm_push_select pc;
    vkm_pipe *p = select_chunk(r, VKM_SPV_select_bracket, s, slot0, n_slots, &pc);
    if (!p) return;
    pc.cap = cap;
    vkm_range b[4] = {s->r, cand, cnt, state};
    vkm_rec_dispatch_n(r, p, b, 4, &pc, sizeof pc, stream_groups(s->n, wg, select_groups_max(d)));
}

void vkm_mop_select_cand(vkm_rec *r, uint32_t pass, uint32_t slot0, uint32_t n_slots, uint32_t most,
                         vkm_range cand, uint32_t cap, vkm_range hist, vkm_range state)
{
    const vkm_dev *d = r->dev;
    uint32_t wg = select_wg(d);
    uint32_t spec[2] = {wg, n_slots};
    vkm_pipe *p = vkm_ops_pipe(r, VKM_SPV_select_cand, spec, 2);
    if (!p) return;
    vkm_push_select pc;
    memset(&pc, 0, sizeof pc);
    pc.pass = pass;
    pc.n_slots = n_slots;
    pc.slot0 = slot0;
    pc.cap = cap;
    vkm_range b[3] = {cand, hist, state};
    uint64_t g = ((uint64_t)most + wg - 1) / wg;
    vkm_rec_dispatch_n(r, p, b, 3, &pc, sizeof pc, g < 1 ? 1 : g > select_groups_max(d) ? select_groups_max(d) : g);
}

void vkm_mop_select_pick(vkm_rec *r, uint32_t pass, uint32_t n_slots, vkm_range hist,
                         vkm_range state)
{
    uint32_t spec[1] = {vkm_ops_reduce_wg(r->dev)};
    vkm_pipe *p = vkm_ops_pipe(r, VKM_SPV_select_pick, spec, 1);
    if (!p) return;
    vkm_push_select pc;
    memset(&pc, 0, sizeof pc);
    pc.pass = pass;
    pc.n_slots = n_slots;
    vkm_range b[2] = {hist, state};
    vkm_rec_dispatch_n(r, p, b, 2, &pc, sizeof pc, 1);
}

void vkm_mop_lora(vkm_rec *r, const vkm_tensor *w, uint32_t n_terms, vkm_range pack)
{
    const vkm_dev *d = r->dev;
    static const char *const names[] = {[VKM_F32] = "lora_merge_f32", [VKM_F16] = "lora_merge_f16",
                                         [VKM_Q8_0] = "lora_merge_q8_0", [VKM_Q4_0] = "lora_merge_q4_0"};
    if ((unsigned)w->dtype >= sizeof names / sizeof names[0] || !names[w->dtype]) {
        r->status = vkm_fail(d->err, VKM_ERR_UNSUPPORTED, "LoRA merge into a %s tensor",
                             vkm_dtype_name(w->dtype));
        return;
    }
    bool quant = w->dtype == VKM_Q8_0 || w->dtype == VKM_Q4_0;
    uint32_t spec[1] = {vkm_ops_cpu_device(d) ? 8u : 64u};
    vkm_pipe *p = vkm_ops_pipe(r, vkm_spv_find(names[w->dtype]), spec, 1);
    if (!p) return;
    for (uint32_t c = 0; c < w->n_chunks; c++) {
        const vkm_chunk *ch = &w->chunks[c];
        uint64_t units = quant ? ((uint64_t)ch->rows * (w->cols / 32) + 1) / 2
                               : (uint64_t)ch->rows * ((w->cols + 31) / 32);
        vkm_push_lora_merge pc = {ch->rows, w->cols, ch->row0, w->row_stride, ch->scale_off_words,
                                  n_terms, (uint32_t)units};
        vkm_range b[2] = {ch->r, pack};
        vkm_rec_dispatch_n(r, p, b, 2, &pc, sizeof pc, (units + spec[0] - 1) / spec[0]);
    }
}
