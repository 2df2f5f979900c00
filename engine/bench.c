/*
 * bench.c — kernel microbenchmarks behind vkm_bench_kernel(): random operands, a warm-up run,
 * then the best of several timed runs (timestamps, else wall time), with a spot check of a few
 * outputs against a host reference so a fast wrong kernel cannot post a number.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "merge.h"
#include "ops.h"
#include "ops_lora.h"
#include "ops_moe.h"

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static float rng_unit(uint64_t *s) /* uniform in [-1, 1) */
{
    return (float)((rng_next(s) >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

typedef struct bench_ctx {
    vkm_dev *d;
    vkm_arena arena;
    vkm_rec rec;
    VkCommandBuffer cmd;
    bool rec_ok;
} bench_ctx;

/* Records `body` between two timestamps, runs it (warm-up + 3 timed), returns the best ns. */
typedef void (*bench_body)(vkm_rec *r, void *user);

static vkm_status run_timed(bench_ctx *b, bench_body body, void *user, double *best_ns)
{
    *best_ns = 0;
    for (int pass = 0; pass < 4; pass++) {
        vkm_status s = vkm_rec_begin(&b->rec, b->cmd);
        if (s != VKM_OK) return s;
        vkm_rec_timestamp(&b->rec, "start");
        body(&b->rec, user);
        vkm_rec_timestamp(&b->rec, "end");
        s = vkm_rec_end(&b->rec);
        double t0 = now_ns();
        if (s == VKM_OK) s = vkm_dev_submit_wait(b->d, b->cmd);
        double wall = now_ns() - t0;
        if (s != VKM_OK) return s;
        double ns[2];
        double t = vkm_rec_read_timestamps(&b->rec, ns, 1) == VKM_OK ? ns[0] : wall;
        if (pass > 0 && (*best_ns == 0 || t < *best_ns)) *best_ns = t;
    }
    return VKM_OK;
}

typedef struct mv_args {
    vkm_tensor w;
    vkm_act x, y;
    uint32_t n;
    bool matmul, apart;
    const vkm_matvec_lora *lora;
} mv_args;

static void mv_body(vkm_rec *r, void *u)
{
    mv_args *a = u;
    if (a->matmul) {
        vkm_op_matmul(r, &a->w, a->x, a->y, a->n, false);
    } else if (a->lora && a->apart) { /* matvec, then the expand kernel (lora.comp) */
        const vkm_matvec_lora *l = a->lora;
        vkm_op_matvec(r, &a->w, a->x, a->y, a->n, false);
        const vkm_lora_call lc = {.y = a->y, .n_tok = a->n, .out_dim = l->out_dim, .bt = l->bt, .meta = l->meta,
                                  .meta_off = l->meta_off, .rank_total = l->row_stride * l->rpad, .rmax = l->rpad,
                                  .ids = l->ids, .wts = l->wts, .list = l->list, .t = l->t,
                                  .route_off = l->route_off, .row_stride = l->row_stride,
                                  .row_list_off = l->row_list_off};
        vkm_op_lora_sites_expand(r, &lc, 1);
    } else if (a->lora) {
        vkm_op_matvec_lora(r, &a->w, a->x, a->y, a->n, false, a->lora);
    } else {
        vkm_op_matvec(r, &a->w, a->x, a->y, a->n, false);
    }
}

typedef struct simple_args {
    const char *kernel;
    vkm_range a, b, y;
    uint32_t rows, cols;
} simple_args;

static void simple_body(vkm_rec *r, void *u)
{
    simple_args *a = u;
    vkm_act A = {a->a, 0, a->cols}, B = {a->b, 0, a->cols}, Y = {a->y, 0, a->cols};
    if (!strcmp(a->kernel, "rmsnorm")) vkm_op_rmsnorm(r, A, a->b, Y, a->cols, a->rows, 1e-5f);
    else if (!strcmp(a->kernel, "softmax")) vkm_op_softmax(r, a->a, a->cols, a->rows, a->cols, 1.0f);
    else if (!strcmp(a->kernel, "silu_mul")) vkm_op_eltwise(r, VKM_ELT_SILU_MUL, A, B, Y, a->rows * a->cols);
    else vkm_op_copy(r, a->a, a->y, (uint64_t)a->rows * a->cols * 4);
}

static vkm_status alloc_random(bench_ctx *b, uint64_t n, uint64_t *seed, vkm_range *out, float **host)
{
    vkm_status s = vkm_arena_alloc(&b->arena, n * 4, 16, out);
    if (s != VKM_OK) return s;
    float *h = malloc(n * 4);
    if (!h) return vkm_fail(b->d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (uint64_t i = 0; i < n; i++) h[i] = rng_unit(seed);
    s = vkm_upload(b->d, *out, h, n * 4);
    if (host) *host = h;
    else free(h);
    return s;
}

/* matvec_lora's LoRA operands: a bank of 8 experts of rank 16 (scale 2), every vector routed to
 * experts 1 and 6 (weights 0.7, 0.3), random shrink outputs t; the host's copies for the check. */
enum { BL_E = 8, BL_R = 16 };
typedef struct bench_lora {
    vkm_matvec_lora ml;
    float *t, *bt;
} bench_lora;

static vkm_status bench_lora_init(bench_ctx *b, uint32_t rows, uint32_t n, uint64_t *seed, bench_lora *l)
{
    uint32_t meta[4 * BL_E], *ids = calloc((size_t)n * (BL_E + 1), 4);
    float *wts = calloc((size_t)n * BL_E, 4);
    const float sc = 2.0f;
    vkm_status s = ids && wts ? VKM_OK : vkm_fail(b->d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (uint32_t e = 0; e < BL_E; e++) {
        meta[4 * e] = e * BL_R;
        meta[4 * e + 1] = BL_R;
        memcpy(&meta[4 * e + 2], &sc, 4);
        meta[4 * e + 3] = 0;
    }
    for (uint32_t i = 0; s == VKM_OK && i < n; i++) {
        for (uint32_t j = 0; j < BL_E; j++) ids[i * BL_E + j] = j == 0 ? 1u : j == 1 ? 6u : 0xffffffffu;
        wts[i * BL_E] = 0.7f;
        wts[i * BL_E + 1] = 0.3f;
        ids[(size_t)n * BL_E + i] = i; /* the list: vector i reads routing row i */
    }
    l->ml = (vkm_matvec_lora){.out_dim = rows, .row_stride = BL_E, .row_list_off = n * BL_E, .rpad = BL_R};
    if (s == VKM_OK) s = alloc_random(b, (uint64_t)n * BL_E * BL_R, seed, &l->ml.t, &l->t);
    if (s == VKM_OK) s = alloc_random(b, (uint64_t)BL_E * BL_R * rows, seed, &l->ml.bt, &l->bt);
    if (s == VKM_OK) s = vkm_arena_alloc(&b->arena, sizeof meta, 16, &l->ml.meta);
    if (s == VKM_OK) s = vkm_arena_alloc(&b->arena, (uint64_t)n * (BL_E + 1) * 4, 16, &l->ml.ids);
    if (s == VKM_OK) s = vkm_arena_alloc(&b->arena, (uint64_t)n * BL_E * 4, 16, &l->ml.wts);
    if (s == VKM_OK) s = vkm_upload(b->d, l->ml.meta, meta, sizeof meta);
    if (s == VKM_OK) s = vkm_upload(b->d, l->ml.ids, ids, (uint64_t)n * (BL_E + 1) * 4);
    if (s == VKM_OK) s = vkm_upload(b->d, l->ml.wts, wts, (uint64_t)n * BL_E * 4);
    l->ml.list = l->ml.ids;
    free(ids);
    free(wts);
    return s;
}

/* The LoRA delta of vector 0 at output row `row` (experts 1 and 6 as bench_lora_init routes). */
static double bench_lora_ref(const bench_lora *l, uint32_t rows, uint32_t row)
{
    static const uint32_t ex[2] = {1, 6};
    static const double w[2] = {0.7, 0.3};
    double d = 0;
    for (uint32_t j = 0; j < 2; j++)
        for (uint32_t k = 0; k < BL_R; k++)
            d += w[j] * 2.0 * l->bt[(uint64_t)(ex[j] * BL_R + k) * rows + row] * l->t[j * BL_R + k];
    return d;
}

static vkm_status bench_matvec(bench_ctx *b, vkm_dtype dt, uint32_t rows, uint32_t cols,
                               uint32_t n, bool matmul, bool lora, bool apart, vkm_bench_result *res)
{
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    mv_args a;
    a.matmul = matmul;
    a.apart = apart;
    bench_lora bl = {0};
    a.lora = lora ? &bl.ml : NULL;
    float *wh = malloc((uint64_t)rows * cols * 4), *xh = NULL;
    if (!wh) return vkm_fail(b->d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (uint64_t i = 0; i < (uint64_t)rows * cols; i++) wh[i] = rng_unit(&seed) * 0.05f;
    vkm_status s = vkm_tensor_alloc(&b->arena, dt, rows, cols, 0, &a.w);
    if (s == VKM_OK) s = vkm_tensor_upload(b->d, &a.w, VKM_F32, wh, NULL);
    vkm_range xr, yr;
    if (s == VKM_OK) s = alloc_random(b, (uint64_t)n * cols, &seed, &xr, &xh);
    if (s == VKM_OK) s = vkm_arena_alloc(&b->arena, (uint64_t)n * rows * 4, 16, &yr);
    if (s == VKM_OK && lora) s = bench_lora_init(b, rows, n, &seed, &bl);
    a.x = (vkm_act){xr, 0, cols};
    a.y = (vkm_act){yr, 0, rows};
    a.n = n;
    double ns = 0;
    if (s == VKM_OK) s = run_timed(b, mv_body, &a, &ns);
    /* spot check 4 rows of the first vector against the (de)quantized host weights */
    float *y = s == VKM_OK ? malloc((uint64_t)rows * 4) : NULL;
    float *deq = malloc((uint64_t)cols * 4 + 64);
    uint8_t *blk = malloc((uint64_t)cols * 2 + 64);
    if (s == VKM_OK && (!y || !deq || !blk)) s = vkm_fail(b->d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "oom");
    if (s == VKM_OK) s = vkm_download(b->d, yr, y, (uint64_t)rows * 4);
    res->max_err = 0;
    for (uint32_t k = 0; s == VKM_OK && k < 4; k++) {
        uint32_t row = (uint32_t)((uint64_t)k * (rows - 1) / 3);
        const float *wr = wh + (uint64_t)row * cols;
        if (dt == VKM_Q8_0 || dt == VKM_Q4_0) {
            if (dt == VKM_Q8_0) vkm_quantize_q8_0(wr, cols, blk);
            else vkm_quantize_q4_0(wr, cols, blk);
            vkm_to_f32(dt, blk, cols, deq);
        } else if (dt == VKM_F16) {
            for (uint32_t c = 0; c < cols; c++) deq[c] = vkm_f16_to_f32(vkm_f32_to_f16(wr[c]));
        } else {
            memcpy(deq, wr, (uint64_t)cols * 4);
        }
        double ref = lora ? bench_lora_ref(&bl, rows, row) : 0;
        for (uint32_t c = 0; c < cols; c++) ref += (double)deq[c] * xh[c];
        double e = fabs(ref - y[row]);
        if (e > res->max_err) res->max_err = e;
    }
    free(y);
    free(deq);
    free(blk);
    free(wh);
    free(xh);
    free(bl.t);
    free(bl.bt);
    res->seconds = ns * 1e-9;
    /* the LoRA epilogue: two experts' rows of Bt and the vectors' shrink outputs */
    res->bytes = (double)a.w.bytes + 4.0 * n * cols + 4.0 * n * rows + (lora ? 4.0 * (2 * BL_R * rows + n * BL_E * BL_R) : 0);
    return s;
}

typedef struct merge_args {
    vkm_mslab v;
    vkm_range out, params, state;
} merge_args;

static void merge_body(vkm_rec *r, void *u)
{
    merge_args *a = u;
    vkm_mop_combine(r, &a->v, VKM_MOP_LINEAR, a->v.n_in, 0, a->v.dt[0], a->out, a->params, a->state);
}

/* The linear merge kernel of `vkmoe merge` over one chunk: n_in inputs of n elements of dtype
 * (F32, F16, BF16) in one slab, equal weights, the output in the same type; a few elements
 * checked against the host. */
static vkm_status bench_merge(bench_ctx *b, vkm_dtype dt, uint64_t n, uint32_t n_in, vkm_bench_result *res)
{
    if (dt != VKM_F32 && dt != VKM_F16 && dt != VKM_BF16)
        return vkm_fail(b->d->err, VKM_ERR_INVALID_ARGUMENT, "merge: F32, F16 or BF16 inputs");
    if (n_in < 1 || n_in > VKM_MERGE_MAX_IN)
        return vkm_fail(b->d->err, VKM_ERR_INVALID_ARGUMENT, "merge: 1 to %d inputs", VKM_MERGE_MAX_IN);
    const uint32_t eb = dt == VKM_F32 ? 4 : 2;
    const uint64_t slot = vkm_align_up(n * eb, 32);
    if (n >= (1ull << 32) || slot * n_in > b->d->caps.max_storage_range)
        return vkm_fail(b->d->err, VKM_ERR_LIMIT, "merge: %u inputs of %llu elements exceed the storage range",
                        n_in, (unsigned long long)n);
    merge_args a;
    memset(&a, 0, sizeof a);
    a.v.n_in = n_in;
    a.v.n = (uint32_t)n;
    a.v.hw_f16 = vkm_merge_hw_f16(b->d);
    uint32_t prm[VKM_MPARAM_WORDS] = {0};
    const float w = 1.0f / (float)n_in, one = 1.0f;
    for (uint32_t j = 0; j < n_in; j++) {
        a.v.dt[j] = dt == VKM_F32 ? VKM_MDT_F32 : dt == VKM_F16 ? VKM_MDT_F16 : VKM_MDT_BF16;
        a.v.off[j] = (uint32_t)(slot * j / 4);
        memcpy(&prm[8 * j], &w, 4);
        memcpy(&prm[8 * j + 4], &one, 4);
    }
    memcpy(&prm[VKM_MPARAM_G], &one, 4);
    uint8_t *in = malloc(slot * n_in);
    vkm_status s = in ? VKM_OK : vkm_fail(b->d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    uint64_t seed = 777;
    for (uint64_t i = 0; s == VKM_OK && i < slot * n_in / eb; i++) {
        const float x = rng_unit(&seed);
        if (dt == VKM_F32) memcpy(in + 4 * i, &x, 4);
        else {
            const uint16_t h = dt == VKM_F16 ? vkm_f32_to_f16(x) : vkm_f32_to_bf16(x);
            memcpy(in + 2 * i, &h, 2);
        }
    }
    if (s == VKM_OK) s = vkm_arena_alloc(&b->arena, slot * n_in, 16, &a.v.r);
    if (s == VKM_OK) s = vkm_arena_alloc(&b->arena, slot, 16, &a.out);
    if (s == VKM_OK) s = vkm_arena_alloc(&b->arena, sizeof prm, 16, &a.params);
    if (s == VKM_OK) s = vkm_arena_alloc(&b->arena, VKM_MAX_SLOTS * VKM_MSLOT_WORDS * 4, 16, &a.state);
    if (s == VKM_OK) s = vkm_upload(b->d, a.v.r, in, slot * n_in);
    if (s == VKM_OK) s = vkm_upload(b->d, a.params, prm, sizeof prm);
    double ns = 0;
    if (s == VKM_OK) s = run_timed(b, merge_body, &a, &ns);
    uint8_t *out = s == VKM_OK ? malloc(slot) : NULL;
    if (s == VKM_OK && !out) s = vkm_fail(b->d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    if (s == VKM_OK) s = vkm_download(b->d, a.out, out, slot);
    res->max_err = 0;
    for (uint32_t k = 0; s == VKM_OK && k < 64; k++) {
        const uint64_t i = k * (n - 1) / 63;
        double ref = 0, got;
        float x;
        for (uint32_t j = 0; j < n_in; j++) {
            const uint8_t *p = in + slot * j + i * eb;
            if (dt == VKM_F32) memcpy(&x, p, 4);
            else x = dt == VKM_F16 ? vkm_f16_to_f32(vkm_rd16(p)) : vkm_bf16_to_f32(vkm_rd16(p));
            ref += (double)w * x;
        }
        if (dt == VKM_F32) memcpy(&x, out + 4 * i, 4);
        else x = dt == VKM_F16 ? vkm_f16_to_f32(vkm_rd16(out + 2 * i)) : vkm_bf16_to_f32(vkm_rd16(out + 2 * i));
        got = x;
        if (fabs(got - ref) > res->max_err) res->max_err = fabs(got - ref);
    }
    free(in);
    free(out);
    res->seconds = ns * 1e-9;
    res->bytes = (double)n * eb * (n_in + 1);
    return s;
}

vkm_status vkm_bench_kernel(vkm_context *ctx, const char *kernel, vkm_dtype dtype, uint32_t rows,
                            uint32_t cols, uint32_t n_vec, vkm_bench_result *out)
{
    if (!ctx || !ctx->dev_ok || !kernel || !out || !rows || !cols) return VKM_ERR_INVALID_ARGUMENT;
    memset(out, 0, sizeof *out);
    vkm_err_clear(&ctx->err);
    bench_ctx b;
    memset(&b, 0, sizeof b);
    b.d = &ctx->dev;
    vkm_arena_init(&b.arena, b.d, VKM_MEM_DEVICE, 0);
    vkm_status s = vkm_dev_probe_f16(b.d); /* the weight kernels models get */
    if (s == VKM_OK) s = vkm_rec_init(&b.rec, b.d, true);
    b.rec_ok = s == VKM_OK;
    if (s == VKM_OK) s = vkm_dev_alloc_cmd(b.d, &b.cmd);
    if (s == VKM_OK) {
        const bool apart = !strcmp(kernel, "matvec_expand"), lora = apart || !strcmp(kernel, "matvec_lora");
        if (lora && n_vec > VKM_MOE_MATVEC_MAX_T) {
            s = vkm_fail(&ctx->err, VKM_ERR_INVALID_ARGUMENT, "%s: 1 to %d vectors (decoding)", kernel,
                         VKM_MOE_MATVEC_MAX_T);
        } else if (!strcmp(kernel, "matvec_lora") && !vkm_op_linear_lora_ok(b.d, n_vec ? n_vec : 1)) {
            s = vkm_fail(&ctx->err, VKM_ERR_UNSUPPORTED, "matvec_lora needs 9 storage buffers per stage (device: %u)",
                         b.d->max_stage_storage);
        } else if (!strcmp(kernel, "matvec") || !strcmp(kernel, "matmul") || !strcmp(kernel, "matvec_lora") || apart) {
            s = bench_matvec(&b, dtype, rows, cols, n_vec ? n_vec : 1, kernel[3] == 'm', kernel[6] == '_', apart, out);
        } else if (!strcmp(kernel, "rmsnorm") || !strcmp(kernel, "softmax") ||
                   !strcmp(kernel, "silu_mul") || !strcmp(kernel, "copy")) {
            uint64_t seed = 12345, n = (uint64_t)rows * cols;
            simple_args a = {kernel, {0}, {0}, {0}, rows, cols};
            s = alloc_random(&b, n, &seed, &a.a, NULL);
            if (s == VKM_OK) s = alloc_random(&b, !strcmp(kernel, "rmsnorm") ? cols : n, &seed, &a.b, NULL);
            if (s == VKM_OK) s = vkm_arena_alloc(&b.arena, n * 4, 16, &a.y);
            double ns = 0;
            if (s == VKM_OK) s = run_timed(&b, simple_body, &a, &ns);
            out->seconds = ns * 1e-9;
            out->bytes = !strcmp(kernel, "silu_mul") ? 12.0 * n
                       : !strcmp(kernel, "softmax") ? 8.0 * n : 8.0 * n;
        } else if (!strcmp(kernel, "merge")) {
            s = bench_merge(&b, dtype, (uint64_t)rows * cols, n_vec ? n_vec : 3, out);
        } else {
            s = vkm_fail(&ctx->err, VKM_ERR_INVALID_ARGUMENT, "unknown kernel '%s' (matvec, matvec_lora, matvec_expand, matmul, "
                         "rmsnorm, softmax, silu_mul, copy, merge)", kernel);
        }
    }
    if (out->seconds > 0) out->gbps = out->bytes / out->seconds * 1e-9;
    if (b.cmd) vkFreeCommandBuffers(b.d->device, b.d->cmd_pool, 1, &b.cmd);
    if (b.rec_ok) vkm_rec_destroy(&b.rec);
    vkm_arena_destroy(&b.arena);
    return s;
}
