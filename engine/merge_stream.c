/*
 * merge_stream.c — one tensor of a model merge through the device in chunks. A ring of K slabs
 * (each: the N inputs of one chunk side by side, its output, its parameter block, a command
 * buffer and a fence) keeps the host filling chunk c + 1 from the memory maps while the device
 * merges chunk c, and hands the outputs to the sink in order as their fences signal.
 * Tensors that need a whole-tensor quantity first (the magnitude thresholds of TIES and
 * breadcrumbs, the dot products of slerp and model_stock) run those passes over windows of K
 * chunks, synchronously: the selection passes until every slot has its threshold (usually four
 * of the eight, read back after each), the reductions once; a tensor of at most K chunks is
 * read from the maps only once. On unified memory the slabs are written and read in place;
 * elsewhere through host-visible staging copied within the same command buffers.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "merge.h"

#define MAX_SLABS 16
#define PARAM_BYTES 1024
#define MAXP (VKM_REDUCE_MAXV * (VKM_REDUCE_MAXV + 1) / 2)

typedef struct slab {
    vkm_range in, out, params;       /* device                                               */
    vkm_range in_h, out_h, params_h; /* host-visible views (the same ranges when unified)    */
    VkCommandBuffer cmd;
    VkFence fence;
    bool busy;                       /* submitted; its output not yet handed to the sink     */
    uint64_t out_bytes;
    uint64_t holds_tensor;           /* the chunk its inputs hold: (tensor serial, chunk)    */
    uint32_t holds_chunk;
    vkm_buf imp[VKM_MSPLIT_MAX];     /* windows of the inputs' maps its chunk reads in place  */
    const void *rel_p[VKM_MERGE_MAX_IN]; /* map pages to release when it retires             */
    uint64_t rel_n[VKM_MERGE_MAX_IN];
    uint32_t n_rel;
} slab;

struct vkm_mstream {
    vkm_dev *d;
    uint32_t n_in, n_slabs;
    uint64_t chunk_bytes;
    bool staged;                     /* device memory is not host-visible                    */
    vkm_arena dev_arena, up_arena, down_arena;
    slab s[MAX_SLABS];
    vkm_range state, hist, part;     /* selection records, histograms, reduction partials    */
    vkm_range cnt;                   /* bracket counts: above, inside, per slot               */
    vkm_arena cand_arena;            /* the slots' gathered candidate keys                    */
    vkm_range cand;
    uint32_t cand_cap;               /* keys per slot in cand                                 */
    int bracket;                     /* VKM_BRACKET_* (tests)                                 */
    vkm_rec rec;
    bool rec_ok;
    uint64_t next;                   /* ring position                                        */
    uint64_t serial;                 /* tensors seen                                          */
    vkm_msink_fn sink;
    void *sink_user;
    bool hw_f16;                     /* the device's f16 conversions match the host's        */
    bool import;                     /* read inputs in place where possible                   */
    uint64_t imported;               /* input chunks read in place                            */
    uint32_t slots[VKM_MAX_SLOTS * VKM_MSLOT_WORDS];
};

/* The chunking of one tensor. */
typedef struct chunking {
    const vkm_mtensor *t;
    uint64_t n;                      /* elements                                              */
    uint32_t per;                    /* elements per chunk                                    */
    uint32_t n_chunks;
    uint32_t dt[VKM_MERGE_MAX_IN];   /* device element type of each input                    */
    uint32_t off[VKM_MERGE_MAX_IN];  /* word offsets in the slab                              */
    uint32_t odt, ob;                /* output type and bytes per element                     */
} chunking;

/* ---- set-up ------------------------------------------------------------------------------- */
/* Runs the merge kernel (linear, one input, coefficient 1: y = x) over n values of type in_dt
 * with hw_f16 on, into out (n values of out_dt). */
static vkm_status probe_run(vkm_dev *d, vkm_rec *rec, VkCommandBuffer cmd, const void *in,
                            uint32_t in_dt, uint32_t out_dt, uint32_t n, void *out)
{
    uint64_t ib = (uint64_t)n * (in_dt == VKM_MDT_F32 ? 4 : 2), ob = (uint64_t)n * (out_dt == VKM_MDT_F32 ? 4 : 2);
    uint32_t prm[VKM_MPARAM_WORDS] = {0};
    float one = 1.0f;
    memcpy(&prm[0], &one, 4);
    memcpy(&prm[VKM_MPARAM_G], &one, 4);
    vkm_arena a;
    vkm_arena_init(&a, d, VKM_MEM_DEVICE, vkm_align_up(ib, 32) + vkm_align_up(ob, 32) + 4096);
    vkm_range ri, ro, rp;
    vkm_status s = vkm_arena_alloc(&a, vkm_align_up(ib, 32), 16, &ri);
    if (!s) s = vkm_arena_alloc(&a, vkm_align_up(ob, 32), 16, &ro);
    if (!s) s = vkm_arena_alloc(&a, sizeof prm, 16, &rp);
    if (!s) s = vkm_upload(d, ri, in, ib);
    if (!s) s = vkm_upload(d, rp, prm, sizeof prm);
    if (!s) s = vkm_rec_begin(rec, cmd);
    if (!s) {
        vkm_mslab v;
        memset(&v, 0, sizeof v);
        v.r = ri;
        v.n_in = 1;
        v.dt[0] = in_dt;
        v.n = n;
        v.hw_f16 = true;
        vkm_mop_combine(rec, &v, VKM_MOP_LINEAR, 1, 0, out_dt, ro, rp, rp);
        s = vkm_rec_end(rec);
    }
    if (!s) s = vkm_dev_submit_wait(d, cmd);
    if (!s) s = vkm_download(d, ro, out, ob);
    vkm_arena_destroy(&a);
    return s;
}

/* The device's f16 conversions against the host's: every half decoded; the f32 values at,
 * around and between every pair of neighbouring halves (rounding ties, subnormals, overflow,
 * inf, NaN) encoded. */
static vkm_status probe_f16(vkm_dev *d, vkm_rec *rec, VkCommandBuffer cmd, uint8_t *result)
{
    const uint32_t nh = 65536, ne = 4 * 65536;
    uint16_t *h = malloc(nh * 2), *hout = malloc(ne * 2);
    float *f = malloc(nh * 4), *e = malloc(ne * 4);
    vkm_status s = h && hout && f && e ? VKM_OK : vkm_fail(d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (uint32_t i = 0; i < nh && !s; i++) h[i] = (uint16_t)i;
    if (!s) s = probe_run(d, rec, cmd, h, VKM_MDT_F16, VKM_MDT_F32, nh, f);
    bool dec = !s;
    for (uint32_t i = 0; i < nh && dec; i++) {
        float want = vkm_f16_to_f32((uint16_t)i), got = f[i]; /* zeros: the kernel's 0 + x */
        dec = (want != want && got != got) || memcmp(&want, &got, 4) == 0 || (want == 0 && got == 0);
    }
    for (uint32_t i = 0; i < nh && !s; i++) { /* each half, the midpoint to the next, +- 1 ulp */
        float v = vkm_f16_to_f32((uint16_t)i), w = vkm_f16_to_f32((uint16_t)(i + 1 < nh ? i + 1 : i));
        if (isinf(w) && !isinf(v)) w = copysignf(65536.0f, v); /* the largest half: 65520 ties to inf */
        uint32_t b;
        float mid = (v + w) / 2;
        e[4 * i] = v;
        e[4 * i + 1] = mid;
        memcpy(&b, &mid, 4);
        b++;
        memcpy(&e[4 * i + 2], &b, 4);
        b -= 2;
        memcpy(&e[4 * i + 3], &b, 4);
    }
    if (!s) s = probe_run(d, rec, cmd, e, VKM_MDT_F32, VKM_MDT_F16, ne, hout);
    bool enc = !s;
    for (uint32_t i = 0; i < ne && enc; i++) {
        uint16_t want = vkm_f32_to_f16(e[i]), got = hout[i];
        bool wnan = (want & 0x7c00) == 0x7c00 && (want & 0x3ff), gnan = (got & 0x7c00) == 0x7c00 && (got & 0x3ff);
        enc = wnan ? gnan : got == want || ((want & 0x7fff) == 0 && (got & 0x7fff) == 0);
    }
    *result = (uint8_t)(VKM_F16_PROBED | (dec ? VKM_F16_DECODE_EXACT : 0) | (enc ? VKM_F16_ENCODE_EXACT : 0));
    free(h);
    free(hout);
    free(f);
    free(e);
    return s;
}

vkm_status vkm_dev_probe_f16(vkm_dev *d)
{
    if (d->f16_probe) return VKM_OK;
    vkm_rec rec;
    VkCommandBuffer cmd = VK_NULL_HANDLE;
    vkm_status s = vkm_rec_init(&rec, d, false);
    if (s) return s;
    s = vkm_dev_alloc_cmd(d, &cmd);
    uint8_t r = 0;
    if (!s) s = probe_f16(d, &rec, cmd, &r);
    if (!s) d->f16_probe = r;
    if (cmd) vkFreeCommandBuffers(d->device, d->cmd_pool, 1, &cmd);
    vkm_rec_destroy(&rec);
    return s;
}

void vkm_madvise_pages(const void *p, uint64_t n, int advice, bool outward)
{
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)p, b = a + n;
    a = outward ? a & ~(page - 1) : (a + page - 1) & ~(page - 1);
    if (!outward) b &= ~(page - 1);
    if (p && b > a) (void)madvise((void *)a, b - a, advice);
}

static vkm_status alloc_view(vkm_mstream *ms, uint64_t bytes, bool out, vkm_range *dev, vkm_range *host)
{
    vkm_status s = vkm_arena_alloc(&ms->dev_arena, bytes, 16, dev);
    if (s || !ms->staged) {
        *host = *dev;
    } else {
        s = vkm_arena_alloc(out ? &ms->down_arena : &ms->up_arena, bytes, 16, host);
    }
#ifdef MADV_POPULATE_WRITE
    /* the slabs are written from the first chunk on: their pages mapped in one call (a fault per
     * page costs more than the copy on some virtual machines; a device aperture is left alone) */
    if (!s) vkm_madvise_pages(host->map, host->size, MADV_POPULATE_WRITE, true);
#endif
    return s;
}

vkm_status vkm_mstream_create(vkm_dev *d, uint32_t n_in, uint64_t chunk_bytes,
                              uint64_t device_bytes, vkm_msink_fn sink, void *sink_user,
                              vkm_mstream **out)
{
    *out = NULL;
    if (n_in < 1 || n_in > VKM_MERGE_MAX_IN)
        return vkm_fail(d->err, VKM_ERR_INVALID_ARGUMENT, "merge: %u inputs (1 to %d)", n_in, VKM_MERGE_MAX_IN);
    vkm_mstream *ms = calloc(1, sizeof *ms);
    if (!ms) return vkm_fail(d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    ms->d = d;
    ms->n_in = n_in;
    ms->sink = sink;
    ms->sink_user = sink_user;
    ms->staged = !d->device_mappable;
    uint64_t range = d->caps.max_storage_range;
    if (!chunk_bytes) chunk_bytes = 64ull << 20;
    if (chunk_bytes > range) chunk_bytes = range;
    if (chunk_bytes < 1024) chunk_bytes = 1024;
    ms->chunk_bytes = chunk_bytes & ~(uint64_t)255;
    if (!device_bytes && d->cpu_tuning) {
        /* a CPU device's slabs are host memory the merge shares with the page cache, and each
         * costs its pages' clearing up front: four keep the two sides overlapped */
        device_bytes = 4 * (ms->chunk_bytes + ms->chunk_bytes / 2);
    } else if (!device_bytes) {
        device_bytes = d->caps.device_local_bytes / 2;
        if (device_bytes > (1ull << 30)) device_bytes = 1ull << 30;
    }
    uint64_t k = device_bytes / (ms->chunk_bytes + ms->chunk_bytes / 2);
    ms->n_slabs = (uint32_t)(k < 2 ? 2 : k > MAX_SLABS ? MAX_SLABS : k);
    uint64_t block = (ms->chunk_bytes * 3 / 2 + PARAM_BYTES) * 2;
    vkm_arena_init(&ms->dev_arena, d, VKM_MEM_DEVICE, block);
    vkm_arena_init(&ms->up_arena, d, VKM_MEM_UPLOAD, block);
    vkm_arena_init(&ms->down_arena, d, VKM_MEM_READBACK, block);
    vkm_status s = vkm_rec_init(&ms->rec, d, false);
    ms->rec_ok = s == VKM_OK;
    for (uint32_t i = 0; i < ms->n_slabs && !s; i++) {
        slab *b = &ms->s[i];
        s = alloc_view(ms, ms->chunk_bytes, false, &b->in, &b->in_h);
        if (!s) s = alloc_view(ms, ms->chunk_bytes / 2, true, &b->out, &b->out_h);
        if (!s) s = alloc_view(ms, PARAM_BYTES, false, &b->params, &b->params_h);
        if (!s) s = vkm_dev_alloc_cmd(d, &b->cmd);
        VkFenceCreateInfo fci = {VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
        if (!s && vkCreateFence(d->device, &fci, NULL, &b->fence) != VK_SUCCESS)
            s = vkm_fail(d->err, VKM_ERR_VULKAN, "merge: vkCreateFence failed");
    }
    /* the selection's records and histograms, the reductions' partials */
    if (!s) s = vkm_arena_alloc(&ms->dev_arena, VKM_MAX_SLOTS * VKM_MSLOT_WORDS * 4, 16, &ms->state);
    if (!s) s = vkm_arena_alloc(&ms->dev_arena, VKM_MAX_SLOTS * 256 * 4, 16, &ms->hist);
    if (!s) s = vkm_arena_alloc(&ms->dev_arena, (uint64_t)ms->n_slabs * 256 * MAXP * 4, 16, &ms->part);
    if (!s) s = vkm_arena_alloc(&ms->dev_arena, VKM_MAX_SLOTS * 2 * 4, 16, &ms->cnt);
    if (!s) s = vkm_dev_probe_f16(d);
    ms->hw_f16 = vkm_merge_hw_f16(d);
    vkm_mstream_set_import(ms, true);
    if (s) {
        vkm_mstream_destroy(ms);
        return s;
    }
    *out = ms;
    return VKM_OK;
}

/* Once slab b's work is done: its imported windows destroyed, the map pages queued on it
 * released from the process (vkm_mstream_release). */
static void release_imports(vkm_mstream *ms, slab *b)
{
    for (uint32_t j = 0; j < VKM_MSPLIT_MAX; j++)
        if (b->imp[j].buf) vkm_buf_destroy(ms->d, &b->imp[j]);
    for (uint32_t k = 0; k < b->n_rel; k++) vkm_madvise_pages(b->rel_p[k], b->rel_n[k], MADV_DONTNEED, false);
    b->n_rel = 0;
}

void vkm_mstream_destroy(vkm_mstream *ms)
{
    if (!ms) return;
    vkm_dev *d = ms->d;
    vkDeviceWaitIdle(d->device);
    for (uint32_t i = 0; i < ms->n_slabs; i++) {
        release_imports(ms, &ms->s[i]);
        if (ms->s[i].fence) vkDestroyFence(d->device, ms->s[i].fence, NULL);
        if (ms->s[i].cmd) vkFreeCommandBuffers(d->device, d->cmd_pool, 1, &ms->s[i].cmd);
    }
    if (ms->rec_ok) vkm_rec_destroy(&ms->rec);
    vkm_arena_destroy(&ms->dev_arena);
    vkm_arena_destroy(&ms->cand_arena);
    vkm_arena_destroy(&ms->up_arena);
    vkm_arena_destroy(&ms->down_arena);
    free(ms);
}

const uint32_t *vkm_mstream_slots(vkm_mstream *ms) { return ms->slots; }

bool vkm_mstream_hw_f16(const vkm_mstream *ms) { return ms->hw_f16; }

void vkm_mstream_set_bracket(vkm_mstream *ms, int how) { ms->bracket = how; }

void vkm_mstream_set_import(vkm_mstream *ms, bool on)
{
    ms->import = on && ms->d->host_import_align && !ms->staged && ms->n_in <= VKM_MSPLIT_MAX &&
                 ms->d->max_stage_storage >= 3 + VKM_MSPLIT_MAX;
}

uint64_t vkm_mstream_imported(const vkm_mstream *ms) { return ms->imported; }

bool vkm_mstream_importing(const vkm_mstream *ms) { return ms->import; }

void vkm_mstream_release(vkm_mstream *ms, const void *p, uint64_t n)
{
    slab *last = ms->next ? &ms->s[(ms->next - 1) % ms->n_slabs] : NULL;
    if (!last || !last->busy || last->n_rel == VKM_MERGE_MAX_IN) {
        /* nothing in flight reads it (or, never expected, no room: the pages fault back in) */
        vkm_madvise_pages(p, n, MADV_DONTNEED, false);
        return;
    }
    last->rel_p[last->n_rel] = p;
    last->rel_n[last->n_rel++] = n;
}

/* ---- the ring ----------------------------------------------------------------------------- */
/* Waits for slab i's submission and hands its output to the sink. */
static vkm_status retire(vkm_mstream *ms, uint32_t i)
{
    slab *b = &ms->s[i];
    if (!b->busy) return VKM_OK;
    b->busy = false;
    VKM_VK(ms->d, vkWaitForFences(ms->d->device, 1, &b->fence, VK_TRUE, UINT64_MAX));
    release_imports(ms, b);
    return b->out_bytes ? ms->sink(ms->sink_user, b->out_h.map, b->out_bytes) : VKM_OK;
}

vkm_status vkm_mstream_flush(vkm_mstream *ms)
{
    vkm_status s = VKM_OK;
    for (uint32_t i = 0; i < ms->n_slabs; i++) {
        vkm_status r = retire(ms, (uint32_t)((ms->next + i) % ms->n_slabs));
        if (!s) s = r;
    }
    return s;
}

/* Starts recording into slab i's command buffer (staged: its inputs and parameters are copied
 * to the device first). */
static vkm_status slab_begin(vkm_mstream *ms, uint32_t i, bool upload)
{
    if (vkm_dcache_count(ms->d) + 64 >= (1u << 15)) { /* a trim must not free sets in flight */
        vkm_status s = vkm_mstream_flush(ms);
        if (s) return s;
    }
    slab *b = &ms->s[i];
    vkm_status s = vkm_rec_begin(&ms->rec, b->cmd);
    if (s || !ms->staged) return s;
    if (upload) vkm_rec_copy(&ms->rec, b->in_h, b->in, b->in.size);
    vkm_rec_copy(&ms->rec, b->params_h, b->params, b->params.size);
    return VKM_OK;
}

/* Ends and submits; with out_bytes, the output is handed to the sink when the fence signals. */
static vkm_status slab_submit(vkm_mstream *ms, uint32_t i, uint64_t out_bytes, bool wait)
{
    slab *b = &ms->s[i];
    if (ms->staged && out_bytes) vkm_rec_copy(&ms->rec, b->out, b->out_h, out_bytes);
    vkm_status s = vkm_rec_end(&ms->rec);
    if (s) return s;
    VkSubmitInfo si = {VK_STRUCTURE_TYPE_SUBMIT_INFO};
    si.commandBufferCount = 1;
    si.pCommandBuffers = &b->cmd;
    VKM_VK(ms->d, vkResetFences(ms->d->device, 1, &b->fence));
    VKM_VK(ms->d, vkQueueSubmit(ms->d->queue, 1, &si, b->fence));
    b->busy = true;
    b->out_bytes = out_bytes;
    return wait ? retire(ms, i) : VKM_OK;
}

/* ---- chunks ------------------------------------------------------------------------------- */
static uint32_t dev_type(vkm_dtype t)
{
    return t == VKM_F16 ? VKM_MDT_F16 : t == VKM_BF16 ? VKM_MDT_BF16 : VKM_MDT_F32;
}

static vkm_status plan_chunks(vkm_mstream *ms, const vkm_mtensor *t, chunking *c)
{
    memset(c, 0, sizeof *c);
    c->t = t;
    c->n = (uint64_t)t->rows * t->cols;
    c->odt = dev_type(t->out);
    c->ob = c->odt == VKM_MDT_F32 ? 4 : 2;
    if (c->n == 0 || c->n >= (1ull << 32))
        return vkm_fail(ms->d->err, VKM_ERR_LIMIT, "merge: %s has %llu elements (1 to 2^32 - 1 supported)",
                        t->name, (unsigned long long)c->n);
    uint64_t per_elem = 0;
    bool mapped = false, quant = false;
    for (uint32_t j = 0; j < ms->n_in; j++) {
        c->dt[j] = dev_type(t->src[j].dtype);
        per_elem += c->dt[j] == VKM_MDT_F32 ? 4 : 2;
        mapped |= t->src[j].row_map != NULL;
        quant |= t->src[j].dtype != VKM_F32 && t->src[j].dtype != VKM_F16 && t->src[j].dtype != VKM_BF16;
    }
    uint64_t per = (ms->chunk_bytes - 32ull * ms->n_in) / per_elem;
    if (per > ms->chunk_bytes / 2 / c->ob) per = ms->chunk_bytes / 2 / c->ob;
    per &= ~(uint64_t)7;
    if (t->cols <= per) per = per / t->cols * t->cols; /* whole rows */
    else if (mapped || quant || per == 0)
        return vkm_fail(ms->d->err, VKM_ERR_LIMIT, "merge: %s: a row of %u elements does not fit in a "
                        "chunk of %llu bytes", t->name, t->cols, (unsigned long long)ms->chunk_bytes);
    if (per > c->n) per = c->n;
    c->per = (uint32_t)per;
    c->n_chunks = (uint32_t)((c->n + per - 1) / per);
    uint32_t off = 0;
    for (uint32_t j = 0; j < ms->n_in; j++) {
        c->off[j] = off;
        off += (uint32_t)(vkm_align_up(per * (c->dt[j] == VKM_MDT_F32 ? 4 : 2), 32) / 4);
    }
    return VKM_OK;
}

/* The slab view of chunk k in slab i. */
static vkm_mslab chunk_slab(const vkm_mstream *ms, const chunking *c, uint32_t i, uint32_t k)
{
    vkm_mslab v;
    memset(&v, 0, sizeof v);
    v.r = ms->s[i].in;
    v.n_in = ms->n_in;
    memcpy(v.off, c->off, sizeof v.off);
    memcpy(v.dt, c->dt, sizeof v.dt);
    uint64_t e0 = (uint64_t)k * c->per;
    v.elem0 = (uint32_t)e0;
    v.n = (uint32_t)(c->n - e0 < c->per ? c->n - e0 : c->per);
    v.hw_f16 = ms->hw_f16;
    return v;
}

/* Copies (or converts to f32) chunk k of every input into slab i's host view, but those in
 * `skip` (bit j: input j is read in place). */
static vkm_status fill(vkm_mstream *ms, const chunking *c, uint32_t i, uint32_t k, uint32_t skip)
{
    slab *b = &ms->s[i];
    if (b->holds_tensor == ms->serial && b->holds_chunk == k) return VKM_OK;
    const vkm_mtensor *t = c->t;
    vkm_mslab v = chunk_slab(ms, c, i, k);
    for (uint32_t j = 0; j < ms->n_in; j++) {
        if (skip & (1u << j)) continue;
        const vkm_msrc *src = &t->src[j];
        uint8_t *dst = (uint8_t *)b->in_h.map + 4ull * c->off[j];
        uint32_t eb = c->dt[j] == VKM_MDT_F32 ? 4 : 2;
        bool raw = src->dtype == VKM_F32 || src->dtype == VKM_F16 || src->dtype == VKM_BF16;
        if (raw && !src->row_map) {
            if (!vkm_map_read(src->map, src->data + (uint64_t)v.elem0 * eb, (uint64_t)v.n * eb, dst))
                return vkm_fail(ms->d->err, VKM_ERR_IO, "merge: %s: cannot read input %u from its file "
                                "(changed since it was opened?)", t->name, j);
            continue;
        }
        uint64_t row_bytes = 0;
        vkm_dtype_bytes(src->dtype, t->cols, &row_bytes);
        uint32_t r0 = v.elem0 / t->cols, nr = v.n / t->cols;
        for (uint32_t r = 0; r < nr; r++) {
            uint32_t sr = src->row_map ? src->row_map[r0 + r] : r0 + r;
            const uint8_t *row = src->data + (uint64_t)sr * row_bytes;
            uint8_t *out = dst + (uint64_t)r * t->cols * eb;
            if (raw) memcpy(out, row, (size_t)row_bytes);
            else if (vkm_to_f32(src->dtype, row, t->cols, (float *)out) != VKM_OK)
                return vkm_fail(ms->d->err, VKM_ERR_UNSUPPORTED, "merge: %s: cannot read %s data",
                                t->name, vkm_dtype_name(src->dtype));
        }
    }
    b->holds_tensor = skip ? 0 : ms->serial; /* a partial fill holds no chunk */
    b->holds_chunk = k;
    return VKM_OK;
}

/* Reads chunk k of the inputs stored as the kernels take them (f32, f16, bf16 in file order) in
 * place: a window of each one's map around the chunk imported as device memory into slab i,
 * bound as that input's range in v. Returns the inputs read so (bit j); the others are filled.
 * An import the device refuses turns importing off for the stream. */
static uint32_t import_inputs(vkm_mstream *ms, const chunking *c, uint32_t i, vkm_mslab *v)
{
    slab *b = &ms->s[i];
    const uint64_t A = ms->d->host_import_align;
    uint32_t mask = 0;
    for (uint32_t j = 0; ms->import && j < ms->n_in; j++) {
        const vkm_msrc *src = &c->t->src[j];
        const uint32_t eb = c->dt[j] == VKM_MDT_F32 ? 4 : 2;
        if (src->row_map || dev_type(src->dtype) != c->dt[j] ||
            (src->dtype != VKM_F32 && src->dtype != VKM_F16 && src->dtype != VKM_BF16))
            continue;
        /* the kernel reads whole groups of 8 elements (f32: two uvec4 words): imported only
         * where the last group's read stays in the data's own pages */
        const uint64_t bytes = (uint64_t)v->n * eb, read = vkm_align_up(bytes, 8ull * eb);
        const uintptr_t p = (uintptr_t)(src->data + (uint64_t)v->elem0 * eb);
        const uintptr_t lo = p & ~(uintptr_t)(A - 1), hi = (p + read + A - 1) & ~(uintptr_t)(A - 1);
        if ((p & 15) || hi != ((p + bytes + A - 1) & ~(uintptr_t)(A - 1)) || hi - lo > ms->d->caps.max_storage_range)
            continue; /* uvec4 words, pages of the data only, one range */
        if (vkm_buf_import(ms->d, (const void *)lo, hi - lo, &b->imp[j]) != VKM_OK) {
            ms->import = false;
            break;
        }
        v->in[j] = (vkm_range){b->imp[j].buf, 0, hi - lo, NULL};
        v->off[j] = (uint32_t)((p - lo) / 4);
        mask |= 1u << j;
    }
    if (!mask) return 0;
    v->split = true;
    for (uint32_t j = 0; j < ms->n_in; j++)
        if (!(mask & (1u << j))) v->in[j] = b->in;
    ms->imported += (uint64_t)__builtin_popcount(mask);
    return mask;
}

/* ---- passes ------------------------------------------------------------------------------- */
static bool need_select(const vkm_mtask *task) { return task->n_slots > 0; }

/* Initial selection records: mode from the rank (none / all / searching). */
static void init_slots(vkm_mstream *ms, const vkm_mplan *pl, const vkm_mtask *task, uint64_t n)
{
    uint32_t *st = ms->slots;
    memset(st, 0, sizeof ms->slots);
    for (uint32_t i = 0; i < task->n_slots; i++) {
        uint32_t *r = st + i * VKM_MSLOT_WORDS;
        r[0] = task->slot_input[i];
        r[1] = pl->base;
        r[2] = task->slot_k[i] == 0 ? 2u : task->slot_k[i] >= n ? 3u : 0u;
        r[3] = task->slot_k[i];
    }
}

static vkm_status write_params(vkm_mstream *ms, uint32_t i, const vkm_mtask *task)
{
    memcpy(ms->s[i].params_h.map, task->params, sizeof task->params);
    return VKM_OK;
}

/* Loads chunks [w0, w0 + nw) into slabs 0 .. nw-1 and starts recording in slab 0's command
 * buffer (staged: copying them to the device first). */
static vkm_status window_begin(vkm_mstream *ms, const chunking *c, uint32_t w0, uint32_t nw)
{
    vkm_status s = VKM_OK;
    for (uint32_t k = 0; k < nw && !s; k++) s = fill(ms, c, k, w0 + k, 0);
    if (s || (s = slab_begin(ms, 0, false))) return s;
    for (uint32_t k = 0; ms->staged && k < nw; k++)
        vkm_rec_copy(&ms->rec, ms->s[k].in_h, ms->s[k].in, ms->s[k].in.size);
    return VKM_OK;
}

/* ---- selection ----------------------------------------------------------------------------- */
#define BRACKET_MIN_N 32768u      /* smaller tensors: radix passes over the tensor            */
#define BRACKET_MIN_SAMPLE 65536u

/* Input j's element at position pos of the tensor (f32 / f16 / bf16 sources), false else. */
static bool sample_value(const vkm_mtensor *t, uint32_t j, uint64_t pos, float *v)
{
    const vkm_msrc *src = &t->src[j];
    uint64_t e = pos;
    if (src->row_map) e = (uint64_t)src->row_map[pos / t->cols] * t->cols + pos % t->cols;
    switch (src->dtype) {
    case VKM_F32: memcpy(v, src->data + 4 * e, 4); return true;
    case VKM_F16: *v = vkm_f16_to_f32(vkm_rd16(src->data + 2 * e)); return true;
    case VKM_BF16: *v = vkm_bf16_to_f32(vkm_rd16(src->data + 2 * e)); return true;
    default: return false;
    }
}

/* Rearranges a[0, n) so that a[k] is the value at position k of the descending order, those
 * before it no smaller and those after it no larger (quickselect with three-way partitions:
 * the samples hold long runs of equal magnitudes, zeros above all). The pivot is the median of
 * three elements at pseudo-random positions, so no arrangement of the data makes it quadratic;
 * the value at position k does not depend on the pivots. */
static void select_desc(uint32_t *a, uint64_t n, uint64_t k)
{
    uint64_t lo = 0, hi = n, r = 0x9e3779b97f4a7c15ull ^ n; /* [lo, hi) holds position k */
    while (hi - lo > 1) {
        uint32_t pick[3];
        for (int q = 0; q < 3; q++) { /* xorshift64 */
            r ^= r << 13, r ^= r >> 7, r ^= r << 17;
            pick[q] = a[lo + r % (hi - lo)];
        }
        const uint32_t x = pick[0], y = pick[1], z = pick[2];
        const uint32_t p = x < y ? (y < z ? y : x < z ? z : x) : (x < z ? x : y < z ? z : y); /* median */
        uint64_t gt = lo, i = lo, lt = hi; /* [lo, gt) > p, [gt, i) == p, [lt, hi) < p */
        while (i < lt) {
            const uint32_t v = a[i];
            if (v > p) {
                a[i++] = a[gt];
                a[gt++] = v;
            } else if (v < p) {
                a[i] = a[--lt];
                a[lt] = v;
            } else {
                i++;
            }
        }
        if (k < gt) hi = gt;
        else if (k >= lt) lo = lt;
        else return;
    }
}

/* Brackets for the searching slots from a stratified sample of the task vectors: the rank of
 * the threshold in the sample, +- 4 binomial deviations (+ 8), read off the sorted sample's
 * magnitude bits. The sample grows with the tensor so the elements inside the bracket
 * (~ n * 8 sqrt(q(1-q)/S)) fit the candidate lists. False: no bracket (quantized sources). */
static bool choose_brackets(vkm_mstream *ms, const vkm_mtask *task, const chunking *c)
{
    const uint64_t n = c->n;
    /* sized for 1M keys inside (the lists hold more: discrete magnitudes widen a bracket) */
    double need = 8.0 * (double)n / (ms->cand_cap < (1u << 20) ? ms->cand_cap : (1u << 20));
    uint64_t S = (uint64_t)(need * need);
    if (S < BRACKET_MIN_SAMPLE) S = BRACKET_MIN_SAMPLE;
    if (S > n) S = n;
    uint32_t *mag = malloc(S * 4);
    if (!mag) return false;
    bool ok = true;
    for (uint32_t i = 0; i < task->n_slots && ok; i++) {
        uint32_t *r = ms->slots + i * VKM_MSLOT_WORDS;
        if (r[2] != 0) continue;
        for (uint64_t q = 0; q < S && ok; q++) {
            float x = 0, y = 0;
            const uint64_t pos = ((2 * q + 1) * n) / (2 * S);
            ok = sample_value(c->t, r[0], pos, &x) && sample_value(c->t, r[1], pos, &y);
            const float d = fabsf(x - y);
            memcpy(&mag[q], &d, 4);
        }
        if (!ok) break;
        const double frac = (double)r[3] / (double)n, at = frac * (double)S;
        const double margin = 4.0 * sqrt((double)S * frac * (1 - frac)) + 8;
        const double top = floor(at - margin), bottom = ceil(at + margin);
        /* the two ranks of the descending order (bottom first: top is then among those before) */
        if (bottom < (double)S) select_desc(mag, S, (uint64_t)bottom);
        if (top >= 0) select_desc(mag, bottom < (double)S ? (uint64_t)bottom : S, (uint64_t)top);
        r[7] = top < 0 ? 0xffffffffu : mag[(uint64_t)top];         /* hi: above it, all wanted */
        r[6] = bottom >= (double)S ? 0u : mag[(uint64_t)bottom];  /* lo: below it, none      */
        r[8] = 2;
        if (ms->bracket == VKM_BRACKET_MISS && i == 0) r[6] = r[7] = 0xffffffffu; /* nothing inside */
    }
    free(mag);
    return ok;
}

/* Candidate lists for n_slots slots: 64 MiB (or the storage range) shared, up to 8M keys each;
 * a bracket over discrete magnitudes (f16 / bf16 deltas) can hold millions of keys. */
static vkm_status cand_lists(vkm_mstream *ms, uint32_t n_slots)
{
    const uint64_t range = ms->d->caps.max_storage_range, total = range < (64u << 20) ? range : 64u << 20;
    uint64_t cap = total / 8 / n_slots;
    if (cap > (8u << 20)) cap = 8u << 20;
    if (ms->bracket == VKM_BRACKET_SMALL) cap = 4096;
    const uint64_t bytes = cap * 8 * n_slots;
    ms->cand_cap = (uint32_t)cap;
    if (ms->cand.buf && ms->cand.size >= bytes) return VKM_OK;
    vkm_arena_destroy(&ms->cand_arena);
    vkm_arena_init(&ms->cand_arena, ms->d, VKM_MEM_DEVICE, bytes);
    return vkm_arena_alloc(&ms->cand_arena, bytes, 16, &ms->cand);
}

#define SLOT_BATCH 16u /* slots one selection dispatch handles */

static uint32_t slot_batch(const vkm_mtask *task, uint32_t s0)
{
    return task->n_slots - s0 < SLOT_BATCH ? task->n_slots - s0 : SLOT_BATCH;
}

/* The radix passes from `pass` on over the gathered keys, one command buffer for all of them
 * (a slot's passes after its pick finished it exit at once). */
static void record_cand_passes(vkm_mstream *ms, const vkm_mtask *task, uint32_t pass, uint32_t last, uint32_t most)
{
    for (uint32_t p = pass; p <= last; p++) {
        for (uint32_t s0 = 0; most && s0 < task->n_slots; s0 += SLOT_BATCH)
            vkm_mop_select_cand(&ms->rec, p, s0, slot_batch(task, s0), most, ms->cand, ms->cand_cap, ms->hist,
                                ms->state);
        vkm_mop_select_pick(&ms->rec, p, task->n_slots, ms->hist, ms->state);
    }
}

/* One pass over the tensor in windows of K chunks, each window submitted and waited for: per
 * chunk and batch of slots the bracket kernel (pass < 0) or radix pass `pass`; a radix pass
 * ends with the same pass over the gathered keys and the pick (one workgroup for all slots). */
static vkm_status tensor_pass(vkm_mstream *ms, const vkm_mtask *task, const chunking *c, int pass, uint32_t most)
{
    const uint32_t K = ms->n_slabs;
    vkm_status s = VKM_OK;
    for (uint32_t w0 = 0; w0 < c->n_chunks && !s; w0 += K) {
        uint32_t nw = c->n_chunks - w0 < K ? c->n_chunks - w0 : K;
        if ((s = window_begin(ms, c, w0, nw))) break;
        for (uint32_t k = 0; k < nw; k++) {
            vkm_mslab v = chunk_slab(ms, c, k, w0 + k);
            for (uint32_t s0 = 0; s0 < task->n_slots; s0 += SLOT_BATCH) {
                if (pass < 0)
                    vkm_mop_select_bracket(&ms->rec, &v, s0, slot_batch(task, s0), ms->cand, ms->cand_cap, ms->cnt,
                                           ms->state);
                else
                    vkm_mop_select_hist(&ms->rec, &v, (uint32_t)pass, s0, slot_batch(task, s0), ms->hist, ms->state);
            }
        }
        if (pass >= 0 && w0 + nw == c->n_chunks) record_cand_passes(ms, task, (uint32_t)pass, (uint32_t)pass, most);
        s = slab_submit(ms, 0, 0, true);
    }
    return s;
}

/* One pass over the tensor counting above each slot's bracket and gathering the keys inside;
 * a slot whose rank falls inside (and whose keys fit) narrows over its candidates from here,
 * the others over the tensor. */
/* The host's part of a tensor's selection, done while the previous tensor's chunks are still
 * on the device (it reads only the maps): the slots' records, and their sampled brackets where
 * one pays. *bracketed: the bracket pass is to run. */
static vkm_status plan_select(vkm_mstream *ms, const vkm_mplan *pl, const vkm_mtask *task,
                              const chunking *c, bool *bracketed)
{
    init_slots(ms, pl, task, c->n);
    *bracketed = false;
    if (ms->bracket == VKM_BRACKET_OFF || c->n < BRACKET_MIN_N) return VKM_OK;
    vkm_status s = cand_lists(ms, task->n_slots);
    if (s) return s;
    *bracketed = choose_brackets(ms, task, c);
    for (uint32_t i = 0; i < task->n_slots && !*bracketed; i++) ms->slots[i * VKM_MSLOT_WORDS + 8] = 0;
    return VKM_OK;
}

static vkm_status run_bracket(vkm_mstream *ms, const vkm_mtask *task, const chunking *c)
{
    static const uint32_t zeros[VKM_MAX_SLOTS * 2];
    vkm_status s = vkm_upload(ms->d, ms->cnt, zeros, sizeof zeros);
    if (!s) s = tensor_pass(ms, task, c, -1, 0);
    uint32_t cnt[VKM_MAX_SLOTS * 2];
    if (s || (s = vkm_download(ms->d, ms->cnt, cnt, sizeof cnt))) return s;
    for (uint32_t i = 0; i < task->n_slots; i++) {
        uint32_t *r = ms->slots + i * VKM_MSLOT_WORDS;
        if (r[2] != 0 || r[8] != 2) continue;
        const uint32_t above = cnt[2 * i], inside = cnt[2 * i + 1];
        const bool within = above < r[3] && r[3] - above <= inside;
        if (within && inside <= ms->cand_cap) {
            r[3] -= above;
            r[8] = 1;
            r[9] = inside;
            /* the candidates' magnitudes share the top bits of lo and hi: the passes start below */
            const uint32_t diff = r[6] ^ r[7], common = diff ? (uint32_t)__builtin_clz(diff) : 32;
            r[10] = common;
            r[4] = common ? r[6] & ~(0xffffffffu >> (common - 1) >> 1) : 0;
            r[5] = 0;
        } else if (within && r[6] == r[7]) {
            /* a plateau too wide to gather (many equal magnitudes, zeros above all): the k-th key
             * has magnitude lo, the index orders those; radix passes over the tensor from the
             * index bits, the rank counted among the keys of that magnitude */
            r[3] -= above;
            r[4] = r[6];
            r[5] = 0;
            r[10] = 32;
            r[8] = 0;
        } else {
            r[8] = 0; /* the sample missed: radix passes over the tensor */
        }
    }
    return vkm_upload(ms->d, ms->state, ms->slots, sizeof ms->slots);
}

/* Runs the selection passes until every slot has its threshold (records and brackets from
 * plan_select): a bracket pass first, then radix passes over windows of K chunks for the slots
 * searching the tensor (read back after each) and over the gathered keys for the others (all in
 * one go once no slot needs the tensor). */
static vkm_status run_select(vkm_mstream *ms, const vkm_mtask *task, const chunking *c, bool bracketed)
{
    static const uint32_t zeros[VKM_MAX_SLOTS * 256];
    vkm_status s = vkm_upload(ms->d, ms->state, ms->slots, sizeof ms->slots);
    if (!s) s = vkm_upload(ms->d, ms->hist, zeros, sizeof zeros);
    if (!s && bracketed) s = run_bracket(ms, task, c);
    for (uint32_t pass = 0; pass < VKM_SELECT_PASSES && !s; pass++) {
        bool data = false;
        uint32_t most = 0;
        for (uint32_t i = 0; i < task->n_slots; i++) {
            const uint32_t *r = ms->slots + i * VKM_MSLOT_WORDS;
            if (r[2] != 0) continue;
            data |= r[8] == 0;
            if (r[8] == 1 && r[9] > most) most = r[9];
        }
        if (!data) {
            if ((s = slab_begin(ms, 0, false))) break;
            record_cand_passes(ms, task, pass, VKM_SELECT_PASSES - 1, most);
            if (!(s = slab_submit(ms, 0, 0, true))) s = vkm_download(ms->d, ms->state, ms->slots, sizeof ms->slots);
            break;
        }
        if ((s = tensor_pass(ms, task, c, (int)pass, most))) break;
        if (s || (s = vkm_download(ms->d, ms->state, ms->slots, sizeof ms->slots))) break;
        bool done = true;
        for (uint32_t i = 0; i < task->n_slots; i++) done &= ms->slots[i * VKM_MSLOT_WORDS + 2] != 0;
        if (done) break;
    }
    return s;
}

/* Runs the reduction over windows of K chunks and sets the coefficients. */
static vkm_status run_reduce(vkm_mstream *ms, const vkm_mplan *pl, vkm_mtask *task,
                             const chunking *c)
{
    const uint32_t K = ms->n_slabs, m = pl->base < pl->n_in ? pl->n_in - 1 : pl->n_in;
    const uint32_t P = m * (m + 1) / 2, G = vkm_mop_reduce_groups(ms->d, c->per);
    double gram[MAXP] = {0};
    float *part = malloc((size_t)K * G * P * 4);
    if (!part) return vkm_fail(ms->d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    vkm_status s = VKM_OK;
    for (uint32_t w0 = 0; w0 < c->n_chunks && !s; w0 += K) {
        uint32_t nw = c->n_chunks - w0 < K ? c->n_chunks - w0 : K;
        if ((s = window_begin(ms, c, w0, nw))) break;
        for (uint32_t k = 0; k < nw; k++) {
            vkm_mslab v = chunk_slab(ms, c, k, w0 + k);
            vkm_mop_reduce(&ms->rec, &v, pl->base, ms->part, k * G * P);
        }
        if ((s = slab_submit(ms, 0, 0, true))) break;
        s = vkm_download(ms->d, ms->part, part, (uint64_t)nw * G * P * 4);
        for (uint32_t k = 0; k < nw && !s; k++) {
            vkm_mslab v = chunk_slab(ms, c, k, w0 + k);
            uint32_t g_used = vkm_mop_reduce_groups(ms->d, v.n);
            for (uint32_t g = 0; g < g_used; g++)
                for (uint32_t p = 0; p < P; p++) gram[p] += part[(k * G + g) * P + p];
        }
    }
    free(part);
    if (!s) vkm_mplan_coef(pl, task, gram);
    return s;
}

vkm_status vkm_mstream_tensor(vkm_mstream *ms, const vkm_mplan *pl, const vkm_mtensor *t)
{
    chunking c;
    vkm_status s = plan_chunks(ms, t, &c);
    if (s) return s;
    vkm_mtask task;
    vkm_mplan_task(pl, t->name, c.n, &task);
    ms->serial++;
    bool multi = need_select(&task) || pl->reduce != VKM_MRED_NONE;
    if (multi) { /* the slabs hold this tensor's chunks from here: chunk k in slab k % K */
        bool bracketed = false;
        if (need_select(&task) && (s = plan_select(ms, pl, &task, &c, &bracketed))) return s;
        if ((s = vkm_mstream_flush(ms))) return s;
        ms->next = 0;
        if (need_select(&task) && (s = run_select(ms, &task, &c, bracketed))) return s;
        if (pl->reduce != VKM_MRED_NONE && (s = run_reduce(ms, pl, &task, &c))) return s;
    }
    for (uint32_t k = 0; k < c.n_chunks && !s; k++) {
        uint32_t i = (uint32_t)(ms->next++ % ms->n_slabs);
        if ((s = retire(ms, i))) break;
        vkm_mslab v = chunk_slab(ms, &c, i, k);
        const uint32_t in_place = multi ? 0 : import_inputs(ms, &c, i, &v);
        if ((s = fill(ms, &c, i, k, in_place)) || (s = write_params(ms, i, &task))) break;
        if ((s = slab_begin(ms, i, true))) break;
        vkm_mop_combine(&ms->rec, &v, pl->op, pl->base, pl->flags, c.odt, ms->s[i].out,
                        ms->s[i].params, ms->state);
        s = slab_submit(ms, i, (uint64_t)v.n * c.ob, false);
    }
    return s;
}
