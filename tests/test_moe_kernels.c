/*
 * test_moe_kernels.c — the FFN-expert kernels against a plain-C reference: the router kernel
 * (softmax, top-k with lowest-index ties, renormalisation, always-on expert), the grouping of
 * routed items by expert, the expert-selected matvec (decode) and gathered matmul (prefill),
 * per token and per item inputs, and the weighted combination; 2, 3, 8 and 31 experts, top-k
 * 1, 2 and all, every weight type. Expert ids must match exactly, outputs within tolerance.
 */
#include <math.h>

#include "ops_lora.h"
#include "ops_moe.h"
#include "vkm_test_engine.h"

#define MAXE 32

/* The reference decision of one token: softmax over the experts, top-k over those other than
 * the always-on one (lowest index on ties), renormalised, the always-on expert with weight 1. */
static uint32_t ref_decide(const float *r, const float *x, uint32_t E, uint32_t D, uint32_t k, int always,
                           uint32_t *ids, double *w)
{
    double lg[MAXE], mx = -INFINITY, z = 0;
    for (uint32_t e = 0; e < E; e++) {
        double s = 0;
        for (uint32_t c = 0; c < D; c++) s += (double)r[(size_t)e * D + c] * x[c];
        lg[e] = s;
        mx = fmax(mx, s);
    }
    for (uint32_t e = 0; e < E; e++) z += lg[e] = exp(lg[e] - mx);
    const uint32_t n_other = E - (always >= 0), kk = k == 0 || k > n_other ? n_other : k;
    bool used[MAXE] = {false};
    double tot = 0;
    uint32_t n = 0;
    for (uint32_t s = 0; s < kk; s++) {
        int best = -1;
        for (uint32_t e = 0; e < E; e++)
            if ((int)e != always && !used[e] && (best < 0 || lg[e] > lg[best])) best = (int)e;
        used[best] = true;
        ids[n] = (uint32_t)best;
        w[n++] = lg[best] / z;
        tot += lg[best] / z;
    }
    for (uint32_t j = 0; j < n; j++) w[j] /= tot;
    if (always >= 0) {
        ids[n] = (uint32_t)always;
        w[n++] = 1.0;
    }
    return n;
}

typedef struct moe_case {
    uint32_t E, k, T, D, F;
    int always;
    vkm_dtype dt;
    bool chunked; /* expert weights in row chunks of about 16 rows (a dispatch per chunk) */
} moe_case;

/* uint32 words through a float range (the buffers are untyped) */
static vkm_range gpu_words(test_gpu *g, const uint32_t *w, size_t n)
{
    return test_gpu_floats(g, (const float *)(const void *)w, n);
}

static void run_case(test_gpu *g, const moe_case *c, uint64_t seed)
{
    test_rng rng = {seed};
    const uint32_t E = c->E, T = c->T, D = c->D, F = c->F;
    /* x at an odd offset and stride, or (D a multiple of 4) aligned ones: the router's vec4 path */
    const uint32_t xo = D % 4 ? 3 : 4, xs = D % 4 ? D + 5 : D + 8, rows = T + 2; /* routing rows: tokens in reverse, two spare */
    float *x = test_alloc(((size_t)T * xs + xo) * 4), *rm = test_alloc((size_t)E * D * 4);
    float *w1 = test_alloc((size_t)E * F * D * 4), *w2 = test_alloc((size_t)E * D * F * 4);
    float *w1d = test_alloc((size_t)E * F * D * 4), *w2d = test_alloc((size_t)E * D * F * 4);
    test_fill(&rng, x, (size_t)T * xs + xo, 1.0f);
    test_fill(&rng, rm, (size_t)E * D, 0.6f);
    test_fill(&rng, w1, (size_t)E * F * D, 0.3f);
    test_fill(&rng, w2, (size_t)E * D * F, 0.3f);
    for (uint32_t e = 0; e < E; e++) {
        test_device_weights(c->dt, w1 + (size_t)e * F * D, F, D, w1d + (size_t)e * F * D);
        test_device_weights(c->dt, w2 + (size_t)e * D * F, D, F, w2d + (size_t)e * D * F);
    }
    /* the list buffer: [routing row of each token][map: identity][router's token list] */
    const uint32_t row_off = 0, map_off = T, tok_off = T + 64;
    uint32_t *lst = test_alloc((T + 64 + T) * 4);
    for (uint32_t t = 0; t < T; t++) {
        lst[row_off + t] = T - 1 - t;
        lst[tok_off + t] = t;
    }
    for (uint32_t e = 0; e < 64; e++) lst[map_off + e] = e;

    vkm_tensor wt1[MAXE], wt2[MAXE];
    uint64_t row1 = 0, row2 = 0; /* bytes of a row: chunks of 16 rows (15 when rows are padded) */
    assert_true(vkm_dtype_bytes(c->dt, D, &row1) && vkm_dtype_bytes(c->dt, F, &row2));
    for (uint32_t e = 0; e < E; e++) {
        test_gpu_check(g, vkm_tensor_alloc(&g->arena, c->dt, F, D, c->chunked ? 16 * (row1 + 1) : 0, &wt1[e]));
        test_gpu_check(g, vkm_tensor_upload(g->d, &wt1[e], VKM_F32, w1 + (size_t)e * F * D, NULL));
        test_gpu_check(g, vkm_tensor_alloc(&g->arena, c->dt, D, F, c->chunked ? 16 * (row2 + 1) : 0, &wt2[e]));
        test_gpu_check(g, vkm_tensor_upload(g->d, &wt2[e], VKM_F32, w2 + (size_t)e * D * F, NULL));
        assert_true(c->chunked ? wt1[e].n_chunks >= F / 16 && wt2[e].n_chunks >= D / 16
                               : wt1[e].n_chunks == 1 && wt2[e].n_chunks == 1);
    }
    vkm_range xr = test_gpu_floats(g, x, (size_t)T * xs + xo), rr = test_gpu_floats(g, rm, (size_t)E * D);
    vkm_range lr = gpu_words(g, lst, T + 64 + T);
    vkm_range ids = test_gpu_floats(g, NULL, (size_t)rows * E), wts = test_gpu_floats(g, NULL, (size_t)rows * E);
    vkm_range grp = test_gpu_floats(g, NULL, 2 * E + (size_t)T * E);
    vkm_range h = test_gpu_floats(g, NULL, (size_t)T * E * F);   /* items' first products  */
    vkm_range hc = test_gpu_floats(g, NULL, (size_t)T * F);      /* combined per token      */
    vkm_range z = test_gpu_floats(g, NULL, (size_t)T * E * D);   /* items' second products  */
    float *y0 = test_alloc((size_t)T * D * 4);
    test_fill(&rng, y0, (size_t)T * D, 1.0f);
    vkm_range yr = test_gpu_floats(g, y0, (size_t)T * D);

    vkm_rec *r = test_gpu_begin(g);
    vkm_rec_fill(r, ids, 0xffffffffu);
    vkm_router_call rc = {.x = {xr, xo, xs}, .in_dim = D, .n = T, .list_off = tok_off, .out_row_off = row_off,
                          .matrix = rr, .list = lr, .ids = ids, .wts = wts, .route_off = 0, .row_stride = E,
                          .n_copies = 1, .n_exp = E, .top_k = c->k, .flags = VKM_ROUTER_SOFTMAX,
                          .map_off = map_off, .inv_temp = 1.0f, .x_scale = 1.0f, .always_on = c->always};
    vkm_op_router(r, &rc);
    const vkm_route_ref rt = {ids, wts, lr, 0, E, row_off, E};
    if (T > VKM_MOE_MATVEC_MAX_T) vkm_op_route_group(r, &rt, T, grp);
    for (uint32_t e = 0; e < E; e++) vkm_op_moe_linear(r, &wt1[e], e, (vkm_act){xr, xo, xs}, false, (vkm_act){h, 0, F}, T, &rt, grp, 1.0f);
    vkm_op_moe_combine(r, h, F, (vkm_act){hc, 0, F}, T, &rt, false);
    for (uint32_t e = 0; e < E; e++) vkm_op_moe_linear(r, &wt2[e], e, (vkm_act){h, 0, F}, true, (vkm_act){z, 0, D}, T, &rt, grp, 1.0f);
    vkm_op_moe_combine(r, z, D, (vkm_act){yr, 0, D}, T, &rt, true);
    test_gpu_run(g);

    uint32_t *gid = test_alloc((size_t)rows * E * 4), *gg = test_alloc((2 * E + (size_t)T * E) * 4);
    float *gw = test_alloc((size_t)rows * E * 4), *ghc = test_alloc((size_t)T * F * 4), *gy = test_alloc((size_t)T * D * 4);
    float *rhc = test_alloc((size_t)T * F * 4), *ry = test_alloc((size_t)T * D * 4);
    test_gpu_read(g, ids, (float *)(void *)gid, (size_t)rows * E);
    test_gpu_read(g, wts, gw, (size_t)rows * E);
    test_gpu_read(g, hc, ghc, (size_t)T * F);
    test_gpu_read(g, yr, gy, (size_t)T * D);
    if (T > VKM_MOE_MATVEC_MAX_T) test_gpu_read(g, grp, (float *)(void *)gg, 2 * E + (size_t)T * E);

    uint32_t count[MAXE] = {0};
    double *hi = test_alloc((size_t)E * F * 8);
    for (uint32_t t = 0; t < T; t++) {
        uint32_t sel[MAXE];
        double w[MAXE];
        const float *xt = x + xo + (size_t)t * xs;
        const uint32_t n = ref_decide(rm, xt, E, D, c->k, c->always, sel, w), row = T - 1 - t;
        for (uint32_t j = 0; j < E; j++) {
            const uint32_t got = gid[(size_t)row * E + j];
            if (j < n && got != sel[j])
                fail_msg("E=%u k=%u always=%d T=%u: token %u entry %u: expert %u, reference %u", E, c->k, c->always,
                         T, t, j, got, sel[j]);
            if (j >= n && got != 0xffffffffu) fail_msg("E=%u k=%u: token %u entry %u should be empty", E, c->k, t, j);
            if (j < n && fabs(gw[(size_t)row * E + j] - w[j]) > 1e-5)
                fail_msg("E=%u k=%u: token %u entry %u weight %g, reference %g", E, c->k, t, j,
                         (double)gw[(size_t)row * E + j], w[j]);
        }
        /* h_j = W1_{e_j} x (device weights), combined; y += sum_j w_j W2_{e_j} h_j */
        for (uint32_t j = 0; j < n; j++) {
            count[sel[j]]++;
            for (uint32_t o = 0; o < F; o++) {
                double s = 0;
                for (uint32_t i = 0; i < D; i++) s += (double)w1d[((size_t)sel[j] * F + o) * D + i] * xt[i];
                hi[(size_t)j * F + o] = s;
            }
        }
        for (uint32_t o = 0; o < F; o++) {
            double s = 0;
            for (uint32_t j = 0; j < n; j++) s += (double)(float)w[j] * hi[(size_t)j * F + o];
            rhc[(size_t)t * F + o] = (float)s;
        }
        for (uint32_t o = 0; o < D; o++) {
            double s = y0[(size_t)t * D + o];
            for (uint32_t j = 0; j < n; j++) {
                double d = 0;
                for (uint32_t i = 0; i < F; i++) d += (double)w2d[((size_t)sel[j] * D + o) * F + i] * (float)hi[(size_t)j * F + i];
                s += (double)(float)w[j] * d;
            }
            ry[(size_t)t * D + o] = (float)s;
        }
    }
    double e1 = test_nmse(ghc, rhc, (size_t)T * F), e2 = test_nmse(gy, ry, (size_t)T * D);
    const double tol = c->dt == VKM_F32 ? 1e-10 : 1e-7; /* f16 input x: rounding of the products */
    if (!(e1 <= tol) || !(e2 <= tol))
        fail_msg("E=%u k=%u always=%d T=%u %s%s: nmse %.3g / %.3g > %.3g", E, c->k, c->always, T,
                 vkm_dtype_name(c->dt), c->chunked ? " (chunked)" : "", e1, e2, tol);
    if (T > VKM_MOE_MATVEC_MAX_T) { /* groups: counts, offsets, each item under its expert */
        uint32_t off = 0;
        for (uint32_t e = 0; e < E; e++) {
            assert_int_equal(gg[e], count[e]);
            assert_int_equal(gg[E + e], off);
            for (uint32_t i = 0; i < count[e]; i++) {
                const uint32_t item = gg[2 * E + off + i], t_row = item / E, j = item % E;
                assert_true(t_row < T);
                assert_int_equal(gid[(size_t)lst[row_off + t_row] * E + j], e);
            }
            off += count[e];
        }
    }
    free(x); free(rm); free(w1); free(w2); free(w1d); free(w2d); free(lst); free(y0); free(gid); free(gg);
    free(gw); free(ghc); free(gy); free(rhc); free(ry); free(hi);
}

static void test_moe_kernels(void **state)
{
    (void)state;
    vkm_context *ctx = test_context();
    test_gpu g;
    test_gpu_init(&g, ctx);
    static const uint32_t experts[] = {2, 3, 8, 31}, tops[] = {1, 2, 0}, toks[] = {1, 3, 8, 9, 37};
    static const vkm_dtype types[] = {VKM_F32, VKM_F16, VKM_Q8_0, VKM_Q4_0};
    uint64_t seed = 11;
    for (size_t ei = 0; ei < 4; ei++)
        for (size_t ki = 0; ki < 3; ki++)
            for (size_t ti = 0; ti < 5; ti++) {
                const vkm_dtype dt = types[(ei + ki + ti) % 4];
                const bool quant = dt == VKM_Q8_0 || dt == VKM_Q4_0;
                moe_case c = {experts[ei], tops[ki], toks[ti], quant ? 64 : 37, quant ? 96 : 45,
                              (ti % 2 && experts[ei] > 2) ? (int)(experts[ei] / 2) : -1, dt, seed % 2 == 0};
                run_case(&g, &c, seed++);
                vkm_arena_destroy(&g.arena); /* every case allocates afresh */
                vkm_arena_init(&g.arena, g.d, VKM_MEM_DEVICE, 64ull << 20);
            }
    test_gpu_done(&g);
    test_context_done(ctx);
}

/* The LoRA bank's two paths (per token, BGMV; grouped by expert for many tokens) against a
 * plain-C reference: y += sum_j w_j s_e B_e (A_e x), experts of different ranks (one 0). */
static void lora_case(test_gpu *g, uint32_t T, uint32_t E, uint32_t in, uint32_t out, bool grouped, uint64_t seed)
{
    test_rng rng = {seed};
    uint32_t ranks[MAXE], meta[4 * MAXE], off = 0, rmax = 0;
    for (uint32_t e = 0; e < E; e++) {
        ranks[e] = e == 1 ? 0 : 2 + (uint32_t)(test_rng_next(&rng) % 7);
        float sc = 0.5f + (float)e * 0.25f;
        meta[4 * e] = off;
        meta[4 * e + 1] = ranks[e];
        memcpy(&meta[4 * e + 2], &sc, 4);
        meta[4 * e + 3] = 0;
        off += ranks[e];
        if (ranks[e] > rmax) rmax = ranks[e];
    }
    const uint32_t R = off ? off : 1, rpad = rmax <= 4 ? 4 : rmax <= 8 ? 8 : 16, k = 2;
    float *a = test_alloc((size_t)R * in * 4), *bt = test_alloc((size_t)R * out * 4);
    float *x = test_alloc((size_t)T * in * 4), *y0 = test_alloc((size_t)T * out * 4), *ref = test_alloc((size_t)T * out * 4);
    float *got = test_alloc((size_t)T * out * 4), *w = test_alloc((size_t)T * E * 4);
    uint32_t *ids = test_alloc((size_t)T * E * 4), *lst = test_alloc((size_t)T * 4);
    test_fill(&rng, a, (size_t)R * in, 0.5f);
    test_fill(&rng, bt, (size_t)R * out, 0.5f);
    test_fill(&rng, x, (size_t)T * in, 1.0f);
    test_fill(&rng, y0, (size_t)T * out, 1.0f);
    memcpy(ref, y0, (size_t)T * out * 4);
    for (uint32_t t = 0; t < T; t++) {
        lst[t] = T - 1 - t; /* token t reads routing row T-1-t */
        uint32_t *row = ids + (size_t)(T - 1 - t) * E;
        float *rw = w + (size_t)(T - 1 - t) * E;
        for (uint32_t j = 0; j < E; j++) row[j] = 0xffffffffu;
        uint32_t e0 = (uint32_t)(test_rng_next(&rng) % E), e1 = (e0 + 1 + (uint32_t)(test_rng_next(&rng) % (E - 1))) % E;
        uint32_t sel[2] = {e0, e1};
        for (uint32_t j = 0; j < (t % 3 ? k : 1); j++) {
            row[j] = sel[j];
            rw[j] = 0.3f + 0.4f * (float)j;
            const uint32_t e = sel[j];
            float sc;
            memcpy(&sc, &meta[4 * e + 2], 4);
            for (uint32_t o = 0; o < out; o++) {
                double acc = 0;
                for (uint32_t q = 0; q < ranks[e]; q++) {
                    double tq = 0;
                    for (uint32_t c = 0; c < in; c++) tq += (double)a[(size_t)(meta[4 * e] + q) * in + c] * x[(size_t)t * in + c];
                    acc += (double)bt[(size_t)(meta[4 * e] + q) * out + o] * tq;
                }
                ref[(size_t)t * out + o] += (float)((double)rw[j] * sc * acc);
            }
        }
    }
    vkm_range ar = test_gpu_floats(g, a, (size_t)R * in), br = test_gpu_floats(g, bt, (size_t)R * out);
    vkm_range xr = test_gpu_floats(g, x, (size_t)T * in), yr = test_gpu_floats(g, y0, (size_t)T * out);
    vkm_range mr = gpu_words(g, meta, 4 * E), ir = gpu_words(g, ids, (size_t)T * E), wr = test_gpu_floats(g, w, (size_t)T * E);
    vkm_range lr = gpu_words(g, lst, T), tr = test_gpu_floats(g, NULL, (size_t)T * E * rpad);
    vkm_range gr = test_gpu_floats(g, NULL, 2 * E + (size_t)T * E), dr = test_gpu_floats(g, NULL, (size_t)T * E * out);
    vkm_lora_call lc = {.x = {xr, 0, in}, .y = {yr, 0, out}, .n_tok = T, .in_dim = in, .out_dim = out, .a = ar, .bt = br,
                        .meta = mr, .meta_off = 0, .rank_total = R, .rmax = rmax, .ids = ir, .wts = wr, .list = lr,
                        .t = tr, .route_off = 0, .row_stride = E, .row_list_off = 0};
    if (grouped) {
        lc.meta_host = meta;
        lc.n_total = E;
        lc.chunk = 7; /* several chunks */
        lc.groups = gr;
        lc.d = dr;
    }
    vkm_rec *r = test_gpu_begin(g);
    vkm_op_lora(r, &lc);
    test_gpu_run(g);
    test_gpu_read(g, yr, got, (size_t)T * out);
    double e = test_nmse(got, ref, (size_t)T * out);
    if (!(e <= 1e-10)) fail_msg("LoRA %s T=%u E=%u %ux%u: nmse %.3g", grouped ? "grouped" : "BGMV", T, E, in, out, e);
    free(a); free(bt); free(x); free(y0); free(ref); free(got); free(w); free(ids); free(lst);
}

/* Both tunings: a CPU device's (one subgroup per workgroup) and a GPU's (several subgroups per
 * workgroup, whose partial sums the shrink kernel combines). */
static void test_lora_paths(void **state)
{
    (void)state;
    for (int gpu = 0; gpu < 2; gpu++) {
    vkm_context_params cp = vkm_context_default_params();
    cp.tune_as_gpu = gpu;
    vkm_context *ctx = test_context_with(cp);
    test_gpu g;
    test_gpu_init(&g, ctx);
    static const uint32_t toks[] = {1, 5, 9, 23}, experts[] = {2, 3, 8};
    uint64_t seed = 500;
    for (size_t ti = 0; ti < 4; ti++)
        for (size_t ei = 0; ei < 3; ei++)
            for (int grouped = 0; grouped < 2; grouped++) {
                /* odd sizes (scalar rows) and multiples of 4 (the BGMV kernels' vec4 rows) */
                lora_case(&g, toks[ti], experts[ei], 37 + (uint32_t)ei * 8, 29 + (uint32_t)ti * 16, grouped, seed++);
                lora_case(&g, toks[ti], experts[ei], 64 + (uint32_t)ei * 12, 36 + (uint32_t)ti * 20, grouped, seed++);
                vkm_arena_destroy(&g.arena);
                vkm_arena_init(&g.arena, g.d, VKM_MEM_DEVICE, 64ull << 20);
            }
    test_gpu_done(&g);
    test_context_done(ctx);
    }
}

/* The expands in matvec's epilogue (matvec_lora): two sites reading the same input, their
 * shrinks into regions of t (vkm_op_lora_shrink), then each site's base matrix W_s of type dt
 * (in row chunks of at most max_chunk bytes) with y_s (+)= W_s x + sum_j w_j s_e B_e (A_e x)
 * against the reference on the weights the device holds; experts of different ranks (one 0),
 * tokens with two experts, one, or none, routing rows through the step list (at an offset), the
 * sites' expert tables and routing rows at offsets, each site its own experts and weights. */
static void matvec_lora_case(test_gpu *g, vkm_dtype dt, uint32_t T, uint32_t in, const uint32_t *outs, bool acc,
                             uint64_t max_chunk, uint64_t seed)
{
    enum { E = 5, S = 2 };
    test_rng rng = {seed};
    const uint32_t xs = in + 3, xo = 4, meta_base = 4 * E * 3, route_base = 13, RS = E;
    uint32_t meta[4 * E * (3 + S)] = {0}, ranks[S][E], rmax = 0, R[S];
    for (uint32_t s = 0; s < S; s++) {
        uint32_t off = 0;
        for (uint32_t e = 0; e < E; e++) {
            ranks[s][e] = e == 2 ? 0 : 1 + (uint32_t)(test_rng_next(&rng) % 9);
            const float sc = 0.5f + 0.25f * (float)(e + s);
            uint32_t *me = meta + meta_base + 4 * E * s + 4 * e;
            me[0] = off;
            me[1] = ranks[s][e];
            memcpy(&me[2], &sc, 4);
            off += ranks[s][e];
            if (ranks[s][e] > rmax) rmax = ranks[s][e];
        }
        R[s] = off;
    }
    const uint32_t LO = 2, NW = route_base + S * T * RS; /* the list from word LO; routing words */
    float *x = test_alloc(((size_t)T * xs + xo) * 4), *wts = test_alloc((size_t)NW * 4);
    uint32_t *ids = test_alloc((size_t)NW * 4), *lst = test_alloc(((size_t)T + LO) * 4);
    test_fill(&rng, x, (size_t)T * xs + xo, 1.0f);
    test_fill(&rng, wts, NW, 1.0f);
    for (uint32_t i = 0; i < NW; i++) ids[i] = 0xffffffffu;
    lst[0] = lst[1] = 0xffffffffu;
    /* token t reads routing row T-1-t of each site (site s's rows T * RS words after site 0's),
     * its experts and weights the site's own */
    for (uint32_t t = 0; t < T; t++) {
        lst[LO + t] = T - 1 - t;
        const uint32_t n_sel = t % 3 == 2 ? 0 : t % 3 == 1 ? 1 : 2;
        for (uint32_t s = 0; s < S; s++) {
            const uint32_t e0 = (uint32_t)(test_rng_next(&rng) % E);
            const uint32_t e1 = (e0 + 1 + (uint32_t)(test_rng_next(&rng) % (E - 1))) % E;
            for (uint32_t j = 0; j < n_sel; j++) ids[route_base + s * T * RS + (T - 1 - t) * RS + j] = j ? e1 : e0;
        }
    }
    vkm_range xr = test_gpu_floats(g, x, (size_t)T * xs + xo);
    vkm_range mr = gpu_words(g, meta, sizeof meta / 4), ir = gpu_words(g, ids, NW);
    vkm_range wr = test_gpu_floats(g, wts, NW), lr = gpu_words(g, lst, (size_t)T + LO);
    vkm_range tr = test_gpu_floats(g, NULL, vkm_lora_sites_t_bytes(g->d, T, RS, rmax) / 4);
    vkm_lora_call lc[S];
    vkm_tensor wt[S];
    float *a[S], *bt[S], *y0[S], *ref[S], *wd[S];
    vkm_range yr[S];
    for (uint32_t s = 0; s < S; s++) {
        const uint32_t out = outs[s], ys = out + 2, yo = 3;
        a[s] = test_alloc(((size_t)R[s] + 1) * in * 4);
        bt[s] = test_alloc(((size_t)R[s] + 1) * out * 4);
        float *wm = test_alloc((size_t)out * in * 4);
        wd[s] = test_alloc((size_t)out * in * 4);
        y0[s] = test_alloc(((size_t)T * ys + yo) * 4);
        ref[s] = test_alloc((size_t)T * out * 4);
        test_fill(&rng, a[s], ((size_t)R[s] + 1) * in, 0.5f);
        test_fill(&rng, bt[s], ((size_t)R[s] + 1) * out, 0.5f);
        test_fill(&rng, wm, (size_t)out * in, 0.5f);
        test_fill(&rng, y0[s], (size_t)T * ys + yo, 1.0f);
        test_device_weights(dt, wm, out, in, wd[s]);
        test_gpu_check(g, vkm_tensor_alloc(&g->arena, dt, out, in, max_chunk, &wt[s]));
        test_gpu_check(g, vkm_tensor_upload(g->d, &wt[s], VKM_F32, wm, NULL));
        free(wm);
        for (uint32_t t = 0; t < T; t++) {
            const float *xt = x + xo + (size_t)t * xs;
            const uint32_t *row = ids + route_base + s * T * RS + (size_t)lst[LO + t] * RS;
            const float *rw = wts + route_base + s * T * RS + (size_t)lst[LO + t] * RS;
            for (uint32_t o = 0; o < out; o++) {
                double v = acc ? y0[s][yo + (size_t)t * ys + o] : 0.0;
                for (uint32_t c = 0; c < in; c++) v += (double)wd[s][(size_t)o * in + c] * xt[c];
                for (uint32_t j = 0; j < RS && row[j] != 0xffffffffu; j++) {
                    const uint32_t *me = meta + meta_base + 4 * E * s + 4 * row[j];
                    float sc;
                    memcpy(&sc, &me[2], 4);
                    double d = 0;
                    for (uint32_t q = 0; q < me[1]; q++) {
                        double tq = 0;
                        for (uint32_t c = 0; c < in; c++) tq += (double)a[s][(size_t)(me[0] + q) * in + c] * xt[c];
                        d += (double)bt[s][(size_t)(me[0] + q) * out + o] * tq;
                    }
                    v += (double)rw[j] * sc * d;
                }
                ref[s][(size_t)t * out + o] = (float)v;
            }
        }
        yr[s] = test_gpu_floats(g, y0[s], (size_t)T * ys + yo);
        lc[s] = (vkm_lora_call){.x = {xr, xo, xs}, .y = {yr[s], yo, ys}, .n_tok = T, .in_dim = in, .out_dim = out,
                                .a = test_gpu_floats(g, a[s], ((size_t)R[s] + 1) * in),
                                .bt = test_gpu_floats(g, bt[s], ((size_t)R[s] + 1) * out), .meta = mr,
                                .meta_off = meta_base + 4 * E * s, .rank_total = R[s], .rmax = rmax, .ids = ir,
                                .wts = wr, .list = lr, .t = tr, .route_off = route_base + s * T * RS,
                                .row_stride = RS, .row_list_off = LO};
    }
    vkm_rec *r = test_gpu_begin(g);
    assert_true(vkm_op_linear_lora_ok(g->d, T));
    assert_true(vkm_op_lora_shrink(r, lc, S) > 0);
    for (uint32_t s = 0; s < S; s++) vkm_op_linear_lora(r, &wt[s], lc, s, S, acc);
    test_gpu_run(g);
    for (uint32_t s = 0; s < S; s++) {
        const uint32_t out = outs[s], ys = out + 2, yo = 3;
        float *y = test_alloc(((size_t)T * ys + yo) * 4), *got = test_alloc((size_t)T * out * 4);
        test_gpu_read(g, yr[s], y, (size_t)T * ys + yo);
        for (uint32_t t = 0; t < T; t++) memcpy(got + (size_t)t * out, y + yo + (size_t)t * ys, (size_t)out * 4);
        const double e = test_nmse(got, ref[s], (size_t)T * out);
        if (!(e <= 1e-10))
            fail_msg("matvec_lora %s site %u T=%u %ux%u acc=%d chunks=%u: nmse %.3g", vkm_dtype_name(dt), s, T, in,
                     out, acc, wt[s].n_chunks, e);
        for (uint32_t t = 0; t < T; t++) /* the gaps between y's rows untouched */
            for (uint32_t o = out; o < ys && yo + (size_t)t * ys + o < (size_t)T * ys + yo; o++)
                assert_true(y[yo + (size_t)t * ys + o] == y0[s][yo + (size_t)t * ys + o]);
        free(y); free(got); free(a[s]); free(bt[s]); free(y0[s]); free(ref[s]); free(wd[s]);
    }
    free(x); free(wts); free(ids); free(lst);
}

static void test_matvec_lora(void **state)
{
    (void)state;
    /* every weight type; 1 to 8 tokens (6: passes of 4 and 2 vectors on a CPU device) */
    static const struct { vkm_dtype dt; uint32_t T; } cases[] = {
        {VKM_F32, 1}, {VKM_F32, 6}, {VKM_F16, 3}, {VKM_F16, 8}, {VKM_Q8_0, 6}, {VKM_Q4_0, 1}};
    for (int mode = 0; mode < 3; mode++) { /* CPU tuning, without subgroup arithmetic, GPU tuning */
        vkm_context_params cp = vkm_context_default_params();
        cp.disable_subgroup_arith = mode == 1;
        cp.tune_as_gpu = mode == 2;
        vkm_context *ctx = test_context_with(cp);
        test_gpu g;
        test_gpu_init(&g, ctx);
        uint64_t seed = 900 + 100 * (uint64_t)mode;
        for (uint32_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            const vkm_dtype dt = cases[i].dt;
            const bool quant = dt == VKM_Q8_0 || dt == VKM_Q4_0;
            const uint32_t in = quant ? 64 + 32 * (i % 2) : 37 + 8 * i, outs[2] = {29 + 4 * i, 19 + 5 * (i % 3)};
            /* row chunks of 16 rows for some (several dispatches, each its rows' epilogue) */
            const uint64_t row = dt == VKM_F32 ? 4ull * in : dt == VKM_F16 ? 2ull * in : in / 32 * (dt == VKM_Q8_0 ? 34ull : 18ull);
            matvec_lora_case(&g, dt, cases[i].T, in, outs, i % 2 == 1, i % 3 == 1 ? 16 * (row + 1) : 0, seed++);
            vkm_arena_destroy(&g.arena);
            vkm_arena_init(&g.arena, g.d, VKM_MEM_DEVICE, 64ull << 20);
        }
        test_gpu_done(&g);
        test_context_done(ctx);
    }
}

/* One router dispatch deciding several routing points that share the input (q, k, v): point
 * i's matrix mat_stride words after point i-1's, its rows copy_stride words further; each
 * point's ids and weights against the reference, and no point writes another's rows. With and
 * without subgroup arithmetic (the router's _nosg twin), and tuned as a GPU (workgroups of several
 * subgroups). */
static void test_router_points(void **state)
{
    (void)state;
    for (int mode = 0; mode < 3; mode++) {
    const int no_sg = mode == 1;
    vkm_context_params cp = vkm_context_default_params();
    cp.disable_subgroup_arith = no_sg;
    cp.tune_as_gpu = mode == 2;
    vkm_context *ctx = test_context_with(cp);
    test_gpu g;
    test_gpu_init(&g, ctx);
    static const uint32_t dims[] = {37, 64}, points[] = {2, 3};
    uint64_t seed = 77;
    for (size_t di = 0; di < 2; di++)
        for (size_t pi = 0; pi < 2; pi++) {
            test_rng rng = {seed++};
            const uint32_t E = 5, T = 3, D = dims[di], P = points[pi], k = 2, rows = T + 1, stride = rows * E;
            const uint32_t xo = D % 4 ? 1 : 8, xs = D % 4 ? D + 3 : D + 4;
            float *x = test_alloc(((size_t)T * xs + xo) * 4), *rm = test_alloc((size_t)P * E * D * 4);
            test_fill(&rng, x, (size_t)T * xs + xo, 1.0f);
            test_fill(&rng, rm, (size_t)P * E * D, 0.6f);
            uint32_t lst[64 + 3];
            for (uint32_t e = 0; e < 64; e++) lst[e] = e;
            for (uint32_t t = 0; t < T; t++) lst[64 + t] = t;
            vkm_range xr = test_gpu_floats(&g, x, (size_t)T * xs + xo), rr = test_gpu_floats(&g, rm, (size_t)P * E * D);
            vkm_range lr = gpu_words(&g, lst, 64 + T);
            /* routing rows of P + 1 points: the one after the last must stay untouched */
            vkm_range ids = test_gpu_floats(&g, NULL, (size_t)(P + 1) * stride);
            vkm_range wts = test_gpu_floats(&g, NULL, (size_t)(P + 1) * stride);
            vkm_rec *r = test_gpu_begin(&g);
            vkm_rec_fill(r, ids, 0xabababab);
            vkm_router_call rc = {.x = {xr, xo, xs}, .in_dim = D, .n = T, .list_off = 64, .out_row_off = 0xffffffffu,
                                  .matrix = rr, .list = lr, .ids = ids, .wts = wts, .route_off = E, .row_stride = E,
                                  .n_copies = 1, .copy_stride = stride, .n_sites = P, .mat_stride = E * D, .n_exp = E,
                                  .top_k = k, .flags = VKM_ROUTER_SOFTMAX, .map_off = 0, .inv_temp = 1.0f,
                                  .x_scale = 1.0f, .always_on = -1};
            vkm_op_router(r, &rc);
            test_gpu_run(&g);
            uint32_t *gid = test_alloc((size_t)(P + 1) * stride * 4);
            float *gw = test_alloc((size_t)(P + 1) * stride * 4);
            test_gpu_read(&g, ids, (float *)(void *)gid, (size_t)(P + 1) * stride);
            test_gpu_read(&g, wts, gw, (size_t)(P + 1) * stride);
            for (uint32_t p = 0; p <= P; p++)
                for (uint32_t row = 0; row < rows; row++)
                    for (uint32_t j = 0; j < E; j++) {
                        const size_t at = (size_t)p * stride + E + (size_t)row * E + j;
                        if (at >= (size_t)(P + 1) * stride) continue;
                        if (p == P || row == T) { /* beyond the routed points and rows */
                            if (gid[at] != 0xababababu) fail_msg("D=%u P=%u: word %zu written", D, P, at);
                            continue;
                        }
                        uint32_t sel[MAXE];
                        double w[MAXE];
                        const uint32_t n = ref_decide(rm + (size_t)p * E * D, x + xo + (size_t)row * xs, E, D, k, -1, sel, w);
                        const uint32_t want = j < n ? sel[j] : 0xffffffffu;
                        if (gid[at] != want) fail_msg("D=%u P=%u point %u token %u entry %u: expert %u, reference %u", D, P, p, row, j, gid[at], want);
                        if (j < n && fabs(gw[at] - w[j]) > 1e-5)
                            fail_msg("D=%u P=%u point %u token %u entry %u: weight %g, reference %g", D, P, p, row, j, (double)gw[at], w[j]);
                    }
            free(x); free(rm); free(gid); free(gw);
        }
    test_gpu_done(&g);
    test_context_done(ctx);
    }
}

/* The largest bank rank a device takes: its shrink's partials (a padded rank and a lane each,
 * one subgroup) in the device's shared memory. */
static void test_rank_fits(void **state)
{
    (void)state;
    vkm_dev d;
    memset(&d, 0, sizeof d);
    d.caps.subgroup_size = 32;
    d.caps.max_shared_bytes = 32768;
    assert_true(vkm_lora_rank_fits(&d, 16));
    assert_true(vkm_lora_rank_fits(&d, 128));
    assert_false(vkm_lora_rank_fits(&d, 256)); /* 32 x 257 floats and one more: 32900 bytes */
    d.caps.max_shared_bytes = 16384;            /* Vulkan's minimum */
    assert_true(vkm_lora_rank_fits(&d, 64));
    assert_false(vkm_lora_rank_fits(&d, 128));
    d.caps.subgroup_size = 8;                   /* lavapipe */
    assert_true(vkm_lora_rank_fits(&d, 256));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_moe_kernels),
        cmocka_unit_test(test_lora_paths),
        cmocka_unit_test(test_matvec_lora),
        cmocka_unit_test(test_router_points),
        cmocka_unit_test(test_rank_fits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
