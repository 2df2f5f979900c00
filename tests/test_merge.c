/*
 * test_merge.c — the merge kernels against tests/ref/ref_merge.c on random tensors of awkward
 * sizes with fixed seeds: every model-merge method through the streamer (default chunks, and
 * chunks forced small with only two slabs, so the selection and reductions run over windows),
 * inputs stored as f32 / f16 / bf16, outputs f32 / f16 / bf16, with and without subgroup
 * arithmetic. Exact: the TIES / breadcrumbs thresholds (the 64-bit keys the GPU selects), the
 * DARE masks; f32 results within 1e-6 of the reference relative to the tensor's largest value.
 * Also the at-load LoRA merge into F32 / F16 / Q8_0 / Q4_0 device tensors, bit for bit.
 */
#include "merge.h"
#include "ref_merge.h"
#include "vkm_test_engine.h"

typedef struct config {
    const char *name;
    bool no_sg;
} config;

static const config configs[] = {{"default", false}, {"no-subgroup-arith", true}};

static vkm_context *config_context(const config *c)
{
    vkm_context_params p = vkm_context_default_params();
    p.disable_subgroup_arith = c->no_sg;
    return test_context_with(p);
}

/* ---- a sink that keeps everything ---------------------------------------------------------- */
typedef struct capture {
    uint8_t *p;
    uint64_t n, cap;
} capture;

static vkm_status capture_write(void *user, const void *data, uint64_t bytes)
{
    capture *c = user;
    if (c->n + bytes > c->cap) {
        c->cap = (c->n + bytes) * 2;
        c->p = realloc(c->p, c->cap);
        assert_non_null(c->p);
    }
    memcpy(c->p + c->n, data, bytes);
    c->n += bytes;
    return VKM_OK;
}

/* ---- one case -------------------------------------------------------------------------------- */
typedef struct mcase {
    vkm_merge_method method;
    uint32_t n_models;        /* besides the base                                               */
    uint32_t rows, cols;
    vkm_dtype in_dt, out_dt;  /* every input stored as in_dt                                    */
    double density, gamma, t, lambda;
    int normalize;
    bool coarse;              /* values on a coarse grid: many equal magnitudes                 */
    bool mixed_dt;            /* inputs alternate f32 / f16 / bf16                               */
    float perturb;            /* > 0: models are the base plus noise of this size              */
    int bracket;              /* VKM_BRACKET_*: how the streamer looks for thresholds          */
} mcase;

static vkm_dtype input_dtype(const mcase *mc, uint32_t j)
{
    static const vkm_dtype cycle[3] = {VKM_F32, VKM_F16, VKM_BF16};
    return mc->mixed_dt ? cycle[j % 3] : mc->in_dt;
}

/* Stores v (n floats) as dt into bytes; v becomes what the device reads back. */
static uint8_t *store(vkm_dtype dt, float *v, uint64_t n)
{
    uint8_t *b = test_alloc(n * 4);
    for (uint64_t i = 0; i < n; i++) {
        if (dt == VKM_F32) {
            memcpy(b + 4 * i, &v[i], 4);
            continue;
        }
        uint16_t h = dt == VKM_F16 ? vkm_f32_to_f16(v[i]) : vkm_f32_to_bf16(v[i]);
        memcpy(b + 2 * i, &h, 2);
        v[i] = dt == VKM_F16 ? vkm_f16_to_f32(h) : vkm_bf16_to_f32(h);
    }
    return b;
}

static float out_value(vkm_dtype dt, const uint8_t *p, uint64_t i)
{
    float f;
    if (dt == VKM_F32) memcpy(&f, p + 4 * i, 4);
    else f = dt == VKM_F16 ? vkm_f16_to_f32(vkm_rd16(p + 2 * i)) : vkm_bf16_to_f32(vkm_rd16(p + 2 * i));
    return f;
}

static float rounded(vkm_dtype dt, float f)
{
    return dt == VKM_F16 ? vkm_f16_to_f32(vkm_f32_to_f16(f)) : dt == VKM_BF16 ? vkm_bf16_to_f32(vkm_f32_to_bf16(f)) : f;
}

/* The slots the plan made for this tensor, checked against full-sort thresholds. Returns how
 * many found theirs over the tensor's index bits (a plateau of equal magnitudes). */
static uint32_t check_slots(vkm_mstream *ms, const vkm_mplan *pl, const vkm_mtask *task, const float *const *x,
                            uint64_t n, int bracket, const char *what)
{
    uint32_t plateaus = 0;
    const uint32_t *st = vkm_mstream_slots(ms);
    float *d = test_alloc(n * 4);
    for (uint32_t s = 0; s < task->n_slots; s++) {
        uint32_t j = task->slot_input[s];
        uint64_t k = task->slot_k[s];
        for (uint64_t i = 0; i < n; i++) d[i] = x[j][i] - x[pl->base][i];
        const uint32_t *r = st + s * VKM_MSLOT_WORDS;
        uint32_t want_mode = k == 0 ? 2 : k >= n ? 3 : 1;
        if (r[2] != want_mode) fail_msg("%s: slot %u (input %u, k %llu): mode %u, want %u", what, s, j,
                                        (unsigned long long)k, r[2], want_mode);
        if (want_mode != 1) continue;
        /* large tensors: one pass gathers the keys inside a sampled bracket, the threshold comes
         * from them (a forced miss: from the tensor again) */
        const uint32_t want_src = bracket != VKM_BRACKET_OFF && n >= 32768 && !(bracket == VKM_BRACKET_MISS && s == 0);
        plateaus += r[8] == 0 && r[10] == 32;
        if (r[8] != want_src && bracket != VKM_BRACKET_SMALL) /* small lists: either */ fail_msg("%s: slot %u: threshold from %s, want %s", what, s, r[8] ? "candidates" : "the tensor",
                                       want_src ? "candidates" : "the tensor");
        /* the GPU stops narrowing once every candidate left is wanted: its threshold may be below
         * the k-th key, but it must select the same k elements (keys are distinct) */
        uint64_t want = ref_select_key(d, n, k), got = ((uint64_t)r[4] << 32) | r[5], count = 0;
        for (uint64_t i = 0; i < n; i++) {
            float a = fabsf(d[i]);
            uint32_t bits;
            memcpy(&bits, &a, 4);
            count += (((uint64_t)bits << 32) | (uint32_t)~(uint32_t)i) >= got;
        }
        if (got > want || count != k)
            fail_msg("%s: slot %u (input %u, k %llu of %llu): threshold key %016llx selects %llu, "
                     "reference k-th key %016llx", what, s, j, (unsigned long long)k, (unsigned long long)n,
                     (unsigned long long)got, (unsigned long long)count, (unsigned long long)want);
    }
    free(d);
    return plateaus;
}

/* How the streamer reads the inputs: copied into its slabs; in place where the device can
 * import them (the chunks of element-wise methods); in place with input 1 misaligned for it
 * (not on a 16-byte boundary), so that one is copied beside the others read in place; in place
 * with input 1 (f32, a last group of 8 elements not whole) ending 16 bytes short of where the
 * kernel's last two-word read ends, at the end of its pages: that chunk of it is copied. */
enum { READ_COPY, READ_IN_PLACE, READ_MIXED, READ_EDGE };

static uint32_t run_case(vkm_context *ctx, const mcase *mc, uint64_t chunk_bytes, uint64_t device_bytes,
                         uint64_t seed, const char *cfg_name, int read)
{
    vkm_dev *d = &ctx->dev;
    vkm_merge_params p = vkm_merge_default_params();
    p.method = mc->method;
    p.n_models = mc->n_models;
    for (uint32_t i = 0; i < mc->n_models; i++) {
        snprintf(p.models[i].path, sizeof p.models[i].path, "model%u", i);
        p.models[i].weight = 0.3 + 0.35 * i;
        p.models[i].density = mc->density > 0 ? mc->density - 0.1 * (i % 2) : NAN;
    }
    if (mc->method != VKM_MERGE_LINEAR) snprintf(p.base, sizeof p.base, "base");
    p.gamma = mc->gamma > 0 ? mc->gamma : NAN;
    p.t = mc->t;
    p.lambda = mc->lambda > 0 ? mc->lambda : NAN;
    p.normalize = mc->normalize;
    p.seed = seed;
    vkm_err e;
    vkm_mplan pl;
    if (vkm_mplan_init(&pl, &p, &e)) fail_msg("plan: %s", e.msg);

    const uint64_t n = (uint64_t)mc->rows * mc->cols;
    test_rng rng = {seed};
    float *x[REF_MAX_IN];
    uint8_t *bytes[REF_MAX_IN];
    bool edge = false; /* READ_EDGE placed input 1 */
    vkm_mtensor t;
    memset(&t, 0, sizeof t);
    t.name = "blk.3.ffn_up.weight";
    t.rows = mc->rows;
    t.cols = mc->cols;
    t.out = mc->out_dt;
    /* the reference input: the base, or slerp's first; perturbed copies of it, or independent */
    const uint32_t anchor = pl.base < pl.n_in ? pl.base : 0;
    uint32_t order[REF_MAX_IN], k = 0;
    order[k++] = anchor;
    for (uint32_t j = 0; j < pl.n_in; j++)
        if (j != anchor) order[k++] = j;
    for (uint32_t o = 0; o < pl.n_in; o++) {
        uint32_t j = order[o];
        x[j] = test_alloc(n * 4);
        for (uint64_t i = 0; i < n; i++) {
            float v = test_rng_unit(&rng);
            if (mc->coarse) v = floorf(v * 8.0f) / 8.0f;
            x[j][i] = mc->perturb && j != anchor ? x[anchor][i] + mc->perturb * v : v;
        }
        t.src[j].dtype = input_dtype(mc, j);
        bytes[j] = store(t.src[j].dtype, x[j], n);
        t.src[j].data = bytes[j];
        if (read == READ_MIXED && j == 1) { /* 8 bytes off a 16-byte boundary */
            uint64_t nb = n * (t.src[j].dtype == VKM_F32 ? 4 : 2);
            uint8_t *q = test_alloc(nb + 16);
            memcpy(q + 8, bytes[j], nb);
            free(bytes[j]);
            bytes[j] = q;
            t.src[j].data = q + 8;
        }
        const uint64_t tail = 4 * n % 32;
        if (read == READ_EDGE && j != 1) { /* page-aligned: read in place whatever the allocator gave */
            const uint64_t nb = n * (t.src[j].dtype == VKM_F32 ? 4 : 2);
            uint8_t *q = aligned_alloc(4096, (nb + 4095) / 4096 * 4096);
            assert_non_null(q);
            memcpy(q, bytes[j], nb);
            free(bytes[j]);
            bytes[j] = q;
            t.src[j].data = q;
        }
        if (read == READ_EDGE && j == 1 && t.src[j].dtype == VKM_F32 && tail && tail <= 16) {
            const uint64_t nb = 4 * n, gap = 16 - tail, size = (nb + gap + 32 + 4095) / 4096 * 4096;
            uint8_t *q = aligned_alloc(4096, size); /* data at 16 mod 32, ending gap bytes before a page end */
            assert_non_null(q);
            memcpy(q + size - gap - nb, bytes[j], nb);
            free(bytes[j]);
            bytes[j] = q;
            t.src[j].data = q + size - gap - nb;
            edge = true;
        }
    }
    capture cap = {0};
    vkm_mstream *ms = NULL;
    if (vkm_mstream_create(d, pl.n_in, chunk_bytes, device_bytes, capture_write, &cap, &ms))
        fail_msg("mstream: %s", vkm_context_errmsg(ctx));
    vkm_mstream_set_bracket(ms, mc->bracket);
    vkm_mstream_set_import(ms, read != READ_COPY);
    if (vkm_mstream_tensor(ms, &pl, &t) || vkm_mstream_flush(ms))
        fail_msg("merge: %s", vkm_context_errmsg(ctx));
    /* lavapipe imports host memory: the chunks of element-wise methods (no selection, no
     * reduction) read in place there, the copies otherwise */
    vkm_mtask task0;
    vkm_mplan_task(&pl, t.name, n, &task0);
    const bool element_wise = task0.n_slots == 0 && pl.reduce == VKM_MRED_NONE;
    const uint64_t chunks_in_place = vkm_mstream_imported(ms);
    if (vkm_context_caps(ctx)->type == VK_PHYSICAL_DEVICE_TYPE_CPU && d->host_import_align &&
        (read != READ_COPY && element_wise) != (chunks_in_place > 0))
        fail_msg("%s: %llu input chunks read in place (read mode %d, element-wise %d)", vkm_merge_method_name(mc->method),
                 (unsigned long long)chunks_in_place, read, element_wise);
    if (edge && element_wise && vkm_context_caps(ctx)->type == VK_PHYSICAL_DEVICE_TYPE_CPU && d->host_import_align &&
        chunks_in_place != pl.n_in - 1u)
        fail_msg("%s: %llu input chunks read in place, want all but input 1's (one chunk each)",
                 vkm_merge_method_name(mc->method), (unsigned long long)chunks_in_place);

    char what[256];
    snprintf(what, sizeof what, "%s%s [%s] %ux%u in %s%s out %s chunk %llu seed %llu",
             vkm_merge_method_name(mc->method), mc->bracket == VKM_BRACKET_MISS ? " (bracket missed)" : "", cfg_name, mc->rows, mc->cols, vkm_dtype_name(mc->in_dt),
             mc->mixed_dt ? "(mixed)" : "", vkm_dtype_name(mc->out_dt), (unsigned long long)chunk_bytes,
             (unsigned long long)seed);
    vkm_mtask task;
    vkm_mplan_task(&pl, t.name, n, &task);
    const uint32_t plateaus = check_slots(ms, &pl, &task, (const float *const *)x, n, mc->bracket, what);
    vkm_mstream_destroy(ms);

    ref_merge_cfg rc;
    memset(&rc, 0, sizeof rc);
    rc.method = (int)mc->method;
    rc.n_in = pl.n_in;
    rc.base = pl.base;
    for (uint32_t j = 0; j < pl.n_in; j++) {
        rc.weight[j] = pl.weight[j];
        rc.density[j] = pl.density[j];
        rc.gamma[j] = pl.gamma[j];
    }
    rc.lambda = pl.lambda;
    rc.t = pl.t;
    rc.normalize = pl.normalize;
    rc.rescale = pl.rescale;
    rc.seed = seed;
    rc.name = t.name;
    float *ref = test_alloc(n * 4);
    ref_merge(&rc, (const float *const *)x, n, ref);

    uint64_t ob = mc->out_dt == VKM_F32 ? 4 : 2;
    if (cap.n != n * ob) fail_msg("%s: %llu output bytes, want %llu", what, (unsigned long long)cap.n,
                                  (unsigned long long)(n * ob));
    double scale = 0, worst = 0;
    uint64_t exact = 0, worst_i = 0;
    for (uint64_t i = 0; i < n; i++) scale = fmax(scale, fabs(ref[i]));
    for (uint64_t i = 0; i < n; i++) {
        float g = out_value(mc->out_dt, cap.p, i), r = rounded(mc->out_dt, ref[i]);
        double err = fabs((double)g - r);
        exact += g == r;
        if (err > worst || err != err) worst = err != err ? INFINITY : err, worst_i = i;
    }
    /* f32: 1e-6 of the largest value; f16 / bf16: the reference may round to a neighbour */
    double tol = mc->out_dt == VKM_F32 ? 1e-6 * fmax(scale, 1e-30)
               : (mc->out_dt == VKM_F16 ? 1.0 / 1024 : 1.0 / 128) * fmax(scale, 1e-30);
    if (worst > tol)
        fail_msg("%s: element %llu: got %.9g, reference %.9g (error %.3g > %.3g; %llu of %llu exact)", what,
                 (unsigned long long)worst_i, out_value(mc->out_dt, cap.p, worst_i), ref[worst_i], worst, tol,
                 (unsigned long long)exact, (unsigned long long)n);
    /* element-wise methods compute what the reference computes, operation for operation */
    if (mc->method != VKM_MERGE_SLERP && mc->method != VKM_MERGE_MODEL_STOCK && exact != n &&
        mc->out_dt == VKM_F32 && vkm_context_caps(ctx)->type == VK_PHYSICAL_DEVICE_TYPE_CPU)
        fail_msg("%s: %llu of %llu elements differ from the reference in their last bits", what,
                 (unsigned long long)(n - exact), (unsigned long long)n);
    for (uint32_t j = 0; j < pl.n_in; j++) {
        free(x[j]);
        free(bytes[j]);
    }
    free(ref);
    free(cap.p);
    return plateaus;
}

/* ---- tests ----------------------------------------------------------------------------------- */
static const uint32_t shapes[][2] = {{1, 1}, {1, 7}, {3, 37}, {17, 64}, {129, 257}, {1, 70001}};
#define N_SHAPES (sizeof shapes / sizeof shapes[0])

static void method_sweep(vkm_merge_method m, const mcase *proto)
{
    for (size_t ci = 0; ci < sizeof configs / sizeof configs[0]; ci++) {
        vkm_context *ctx = config_context(&configs[ci]);
        uint64_t seed = 1000 * (uint64_t)m + 1;
        for (size_t s = 0; s < N_SHAPES; s++) {
            mcase mc = *proto;
            mc.method = m;
            mc.rows = shapes[s][0];
            mc.cols = shapes[s][1];
            mc.mixed_dt = s % 3 == 1;
            mc.in_dt = s % 2 ? VKM_F16 : VKM_F32;
            mc.out_dt = s == 2 ? VKM_F16 : s == 3 ? VKM_BF16 : VKM_F32;
            run_case(ctx, &mc, 0, 0, seed++, configs[ci].name, s % 2 ? READ_MIXED : READ_IN_PLACE);
            if (mc.in_dt == VKM_F32) run_case(ctx, &mc, 0, 0, seed++, configs[ci].name, READ_EDGE);
            /* small chunks, two slabs: windows of chunks, re-read per pass */
            if (mc.rows * mc.cols > 64) run_case(ctx, &mc, 2048, 1, seed++, configs[ci].name, READ_COPY);
        }
        test_context_done(ctx);
    }
}

static void test_linear(void **state)
{
    (void)state;
    mcase mc = {.n_models = 3, .normalize = -1};
    method_sweep(VKM_MERGE_LINEAR, &mc);
    mc.normalize = 0;
    method_sweep(VKM_MERGE_LINEAR, &mc);
}

static void test_task_arithmetic(void **state)
{
    (void)state;
    mcase mc = {.n_models = 2, .normalize = -1, .lambda = 0.8};
    method_sweep(VKM_MERGE_TASK_ARITHMETIC, &mc);
}

static void test_ties(void **state)
{
    (void)state;
    mcase mc = {.n_models = 3, .normalize = -1, .density = 0.5};
    method_sweep(VKM_MERGE_TIES, &mc);
    mc.coarse = true; /* thousands of equal magnitudes at the threshold: the index decides */
    method_sweep(VKM_MERGE_TIES, &mc);
    /* the first slot's bracket holds nothing: its search goes back to the tensor (whole, and in
     * windows of small chunks) while the other slots narrow over their candidates; exact */
    mc.bracket = VKM_BRACKET_MISS;
    for (size_t ci = 0; ci < sizeof configs / sizeof configs[0]; ci++) {
        vkm_context *ctx = config_context(&configs[ci]);
        for (int coarse = 0; coarse < 2; coarse++) {
            mc.coarse = coarse;
            mc.method = VKM_MERGE_TIES;
            mc.rows = 1;
            mc.cols = 70001;
            mc.in_dt = coarse ? VKM_F16 : VKM_F32;
            mc.out_dt = VKM_F32;
            run_case(ctx, &mc, 0, 0, 77 + coarse, configs[ci].name, READ_IN_PLACE);
            run_case(ctx, &mc, 4096, 1, 79 + coarse, configs[ci].name, READ_COPY);
        }
        test_context_done(ctx);
    }
    /* candidate lists of 4096 keys: a plateau of ~1/8 of the elements at the threshold does not
     * fit, its slots narrow the index bits over the tensor (and must), the others as they can */
    mc.bracket = VKM_BRACKET_SMALL;
    vkm_context *ctx = config_context(&configs[0]);
    for (int coarse = 0; coarse < 2; coarse++) {
        mc.coarse = coarse;
        mc.rows = 1;
        mc.cols = 70001;
        mc.in_dt = VKM_F16;
        mc.out_dt = VKM_F32;
        uint32_t plateaus = run_case(ctx, &mc, 0, 0, 81 + coarse, configs[0].name, READ_IN_PLACE);
        plateaus += run_case(ctx, &mc, 4096, 1, 83 + coarse, configs[0].name, READ_COPY);
        if (coarse && plateaus == 0) fail_msg("ties, coarse values, small candidate lists: no slot went by the plateau");
        printf("ties with small candidate lists (%s values): %u slots by the plateau\n", coarse ? "coarse" : "fine", plateaus);
    }
    test_context_done(ctx);
}

static void test_dare(void **state)
{
    (void)state;
    mcase mc = {.n_models = 2, .normalize = -1, .density = 0.4};
    method_sweep(VKM_MERGE_DARE_LINEAR, &mc);
    method_sweep(VKM_MERGE_DARE_TIES, &mc);
    /* the masks keep `density` of the elements, independently per model and tensor */
    uint32_t k0[2], k1[2], k2[2], thr = ref_dare_threshold(0.4);
    ref_dare_key(7, "blk.0.attn_q.weight", 0, k0);
    ref_dare_key(7, "blk.0.attn_q.weight", 1, k1);
    ref_dare_key(7, "blk.0.attn_k.weight", 0, k2);
    const uint32_t n = 200000;
    uint32_t kept = 0, both = 0, same_as_k = 0;
    for (uint32_t i = 0; i < n; i++) {
        bool a = ref_dare_u32(i, k0) < thr, b = ref_dare_u32(i, k1) < thr, c = ref_dare_u32(i, k2) < thr;
        kept += a;
        both += a && b;
        same_as_k += a == c;
    }
    /* 0.4 n +- 5 sigma; independence: P(a and b) = 0.16, P(a == c) = 0.52 */
    assert_true(fabs(kept - 0.4 * n) < 5 * sqrt(n * 0.24));
    assert_true(fabs(both - 0.16 * n) < 5 * sqrt(n * 0.16 * 0.84));
    assert_true(fabs(same_as_k - 0.52 * n) < 5 * sqrt(n * 0.52 * 0.48));
    assert_int_equal(ref_dare_threshold(1.0), 0xffffffffu);
    assert_int_equal(ref_dare_threshold(0.0), 0u);
}

static void test_breadcrumbs(void **state)
{
    (void)state;
    mcase mc = {.n_models = 2, .normalize = -1, .density = 0.6, .gamma = 0.05};
    method_sweep(VKM_MERGE_BREADCRUMBS, &mc);
    mc.coarse = true;
    method_sweep(VKM_MERGE_BREADCRUMBS_TIES, &mc);
}

static void test_slerp(void **state)
{
    (void)state;
    mcase mc = {.n_models = 1, .normalize = -1, .t = 0.3};
    method_sweep(VKM_MERGE_SLERP, &mc);
    mc.perturb = 1e-3f; /* nearly parallel: the linear fallback */
    method_sweep(VKM_MERGE_SLERP, &mc);
}

static void test_model_stock(void **state)
{
    (void)state;
    mcase mc = {.n_models = 3, .normalize = -1, .perturb = 0.05f};
    method_sweep(VKM_MERGE_MODEL_STOCK, &mc);
}

/* The radix passes over gathered candidates, crafted: (a) every candidate wanted, the first
 * pass ends it with the prefix 0x3f000000, below the bracket's bottom: the threshold must be
 * raised to (lo, 0) or elements below the bracket would pass; (b) the 2 largest of five
 * candidates (ties on magnitude). */
/* The f16 conversions the merge kernels use with hw_f16 (unpackHalf2x16; the branch-free
 * rounding-by-addition encoder of merge.glsl) against the host on every half and every rounding
 * case (the probe, merge_stream.c): a CPU device does IEEE f32 arithmetic, so both must come out
 * exact there (elsewhere the kernels fall back to the integer conversions when they do not). */
static void test_f16_conversions(void **state)
{
    (void)state;
    vkm_context *ctx = config_context(&configs[0]);
    vkm_dev *d = &ctx->dev;
    if (vkm_dev_probe_f16(d)) fail_msg("probe: %s", vkm_context_errmsg(ctx));
    const bool dec = d->f16_probe & VKM_F16_DECODE_EXACT, enc = d->f16_probe & VKM_F16_ENCODE_EXACT;
    printf("device f16 conversions: decode %s, encode %s\n", dec ? "exact" : "not exact", enc ? "exact" : "not exact");
    if (vkm_context_caps(ctx)->type == VK_PHYSICAL_DEVICE_TYPE_CPU && !(dec && enc))
        fail_msg("a CPU device must decode and encode f16 exactly (decode %d, encode %d)", dec, enc);
    test_context_done(ctx);
}

static void test_select_candidates(void **state)
{
    (void)state;
    vkm_context *ctx = test_context();
    test_gpu g;
    test_gpu_init(&g, ctx);
    const uint32_t cap = 8, lo = 0x3f900000u;
    uint32_t cand[2 * 2 * 8] = {0}, st[2 * VKM_MSLOT_WORDS] = {0};
    const uint32_t mags_a[3] = {0x3fa00000u, 0x3f950000u, lo}, mags_b[5] = {lo, 0x3fa00000u, 0x3fa00000u, lo + 1, lo};
    for (uint32_t i = 0; i < 3; i++) cand[2 * i] = mags_a[i], cand[2 * i + 1] = ~(100u + i);
    for (uint32_t i = 0; i < 5; i++) cand[2 * (cap + i)] = mags_b[i], cand[2 * (cap + i) + 1] = ~(7u * i);
    for (uint32_t sl = 0; sl < 2; sl++) {
        uint32_t *r = st + sl * VKM_MSLOT_WORDS;
        r[3] = sl ? 2 : 3; /* k */
        r[6] = lo;
        r[7] = 0x40000000u;
        r[8] = 1;
        r[9] = sl ? 5 : 3;
    }
    vkm_range cr = test_gpu_floats(&g, (const float *)(const void *)cand, 2 * 2 * cap);
    vkm_range sr = test_gpu_floats(&g, (const float *)(const void *)st, 2 * VKM_MSLOT_WORDS);
    vkm_range hr = test_gpu_floats(&g, NULL, 2 * 256);
    vkm_rec *r = test_gpu_begin(&g);
    vkm_rec_fill(r, hr, 0);
    for (uint32_t pass = 0; pass < VKM_SELECT_PASSES; pass++) {
        vkm_mop_select_cand(r, pass, 0, 2, 5, cr, cap, hr, sr);
        vkm_mop_select_pick(r, pass, 2, hr, sr);
    }
    test_gpu_run(&g);
    test_gpu_read(&g, sr, (float *)(void *)st, 2 * VKM_MSLOT_WORDS);
    assert_int_equal(st[2], 1);
    assert_int_equal(st[4], lo); /* (0x3f000000, 0) would also pass every element in [0x3f000000, lo) */
    assert_int_equal(st[5], 0);
    /* slot 1: the two largest keys are (0x3fa00000, ~7) and (0x3fa00000, ~14); the threshold
     * may stop at their common prefix, above (lo + 1, .) */
    assert_int_equal(st[VKM_MSLOT_WORDS + 2], 1);
    assert_int_equal(st[VKM_MSLOT_WORDS + 4], 0x3fa00000u);
    assert_true(st[VKM_MSLOT_WORDS + 5] <= ~14u);
    test_gpu_done(&g);
    test_context_done(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear),       cmocka_unit_test(test_task_arithmetic),
        cmocka_unit_test(test_ties),         cmocka_unit_test(test_dare),
        cmocka_unit_test(test_breadcrumbs),  cmocka_unit_test(test_slerp),
        cmocka_unit_test(test_model_stock),  cmocka_unit_test(test_select_candidates),
        cmocka_unit_test(test_f16_conversions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
