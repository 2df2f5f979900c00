/*
 * test_merge_lora.c — LoRA merges. The at-load merge (vkm_merge_lora_apply) into F32 / F16 /
 * Q8_0 / Q4_0 device tensors of awkward shapes, chunked, with several terms and row maps, bit for
 * bit against tests/ref/ref_merge.c (requantization included). lora_cat: the merged adapter's
 * delta equals the sum of the weighted deltas; lora_linear: A' and B' are the weighted averages;
 * both across formats (PEFT in, GGUF LoRA and PEFT out, q/k rows permuted). lora_bake: the python
 * expert baked into the testbed base reproduces the float64 golden of base + lora_python.
 */
#include <cjson/cJSON.h>

#include "merge.h"
#include "ref_merge.h"
#include "vkm_test_engine.h"

#define TESTBED VKM_SHARED_DIR "/testbed"

/* ---- at load --------------------------------------------------------------------------------- */
static void apply_case(test_gpu *g, vkm_dtype dt, uint32_t rows, uint32_t cols, uint32_t n_terms,
                       uint64_t max_chunk, uint64_t seed)
{
    test_rng rng = {seed};
    float *w = test_alloc((size_t)rows * cols * 4);
    test_fill(&rng, w, (size_t)rows * cols, 0.5f);
    uint64_t row_bytes = 0;
    vkm_dtype_bytes(dt, cols, &row_bytes);
    uint8_t *file = test_alloc(rows * row_bytes), *got = test_alloc(rows * row_bytes);
    for (uint32_t r = 0; r < rows; r++) { /* the stored weights */
        const float *src = w + (size_t)r * cols;
        uint8_t *dst = file + r * row_bytes;
        if (dt == VKM_F32) memcpy(dst, src, (size_t)cols * 4);
        else if (dt == VKM_F16)
            for (uint32_t c = 0; c < cols; c++) {
                uint16_t h = vkm_f32_to_f16(src[c]);
                memcpy(dst + 2 * c, &h, 2);
            }
        else if (dt == VKM_Q8_0) vkm_quantize_q8_0(src, cols, dst);
        else vkm_quantize_q4_0(src, cols, dst);
    }
    vkm_tensor wt;
    test_gpu_check(g, vkm_tensor_alloc(&g->arena, dt, rows, cols, max_chunk, &wt));
    test_gpu_check(g, vkm_tensor_upload(g->d, &wt, dt, file, NULL));

    vkm_merge_lora_term terms[3];
    ref_lora_term rterms[3];
    float *a[3], *b[3];
    uint32_t *map[3] = {0};
    for (uint32_t e = 0; e < n_terms; e++) {
        uint32_t rank = e == 0 ? 1 : 4 * e, rows_b = rows + e;
        a[e] = test_alloc((size_t)rank * cols * 4);
        b[e] = test_alloc((size_t)rows_b * rank * 4);
        test_fill(&rng, a[e], (size_t)rank * cols, 0.3f);
        test_fill(&rng, b[e], (size_t)rows_b * rank, 0.3f);
        if (e == 1) { /* row r of W takes row rows_b - 1 - r of B */
            map[e] = test_alloc((size_t)rows * 4);
            for (uint32_t r = 0; r < rows; r++) map[e][r] = rows_b - 1 - r;
        }
        terms[e] = (vkm_merge_lora_term){test_gpu_floats(g, a[e], (size_t)rank * cols),
                                         test_gpu_floats(g, b[e], (size_t)rows_b * rank), rank, rows_b,
                                         0.75f - 0.5f * (float)e, map[e]};
        rterms[e] = (ref_lora_term){a[e], b[e], rank, terms[e].coef, map[e]};
    }
    test_gpu_check(g, vkm_merge_lora_apply(g->d, &wt, terms, n_terms));
    test_gpu_check(g, vkm_merge_tensor_download(g->d, &wt, dt, got));
    ref_lora_apply((int)dt, file, rows, cols, rterms, n_terms);
    uint64_t diff = 0, first = 0;
    for (uint64_t i = rows * row_bytes; i-- > 0;)
        if (got[i] != file[i]) diff++, first = i;
    if (diff)
        fail_msg("lora apply %s %ux%u, %u terms, %u chunks: %llu bytes differ from the reference (first "
                 "at row %llu)", vkm_dtype_name(dt), rows, cols, n_terms, wt.n_chunks, (unsigned long long)diff,
                 (unsigned long long)(first / row_bytes));
    for (uint32_t e = 0; e < n_terms; e++) {
        free(a[e]);
        free(b[e]);
        free(map[e]);
    }
    free(w);
    free(file);
    free(got);
}

static void test_apply(void **state)
{
    (void)state;
    vkm_context *ctx = test_context();
    test_gpu g;
    test_gpu_init(&g, ctx);
    static const uint32_t fshapes[][2] = {{1, 1}, {5, 37}, {17, 3}, {40, 70}};
    static const uint32_t qshapes[][2] = {{1, 32}, {7, 96}, {33, 64}, {130, 160}};
    uint64_t seed = 1;
    for (int d = 0; d < 2; d++)
        for (size_t s = 0; s < 4; s++)
            for (uint32_t t = 1; t <= 3; t++)
                apply_case(&g, d ? VKM_F16 : VKM_F32, fshapes[s][0], fshapes[s][1], t, 0, seed++);
    for (int d = 0; d < 2; d++)
        for (size_t s = 0; s < 4; s++)
            for (uint32_t t = 1; t <= 3; t++)
                apply_case(&g, d ? VKM_Q4_0 : VKM_Q8_0, qshapes[s][0], qshapes[s][1], t, 0, seed++);
    /* chunked tensors: 16 rows per chunk */
    apply_case(&g, VKM_F32, 100, 37, 2, 16 * 40 * 4, seed++);
    apply_case(&g, VKM_F16, 70, 64, 3, 16 * 64 * 2, seed++);
    apply_case(&g, VKM_Q8_0, 70, 96, 3, 16 * (96 + 6), seed++);
    apply_case(&g, VKM_Q4_0, 70, 64, 2, 16 * (32 + 4), seed++);
    test_gpu_done(&g);
    test_context_done(ctx);
}

/* ---- adapter merges ------------------------------------------------------------------------ */
static vkm_adapter_src open_adapter(const char *path)
{
    vkm_adapter_src a;
    vkm_err e;
    if (vkm_adapter_open(path, &a, &e)) fail_msg("%s", e.msg);
    return a;
}

static double *f64(const vkm_tensor_src *t)
{
    uint64_t n = (uint64_t)vkm_tensor_nelem(t);
    float *f = test_alloc(n * 4);
    assert_int_equal(vkm_to_f32(t->dtype, t->data, n, f), VKM_OK);
    double *d = test_alloc(n * 8);
    for (uint64_t i = 0; i < n; i++) d[i] = f[i];
    free(f);
    return d;
}

/* delta += w * scale * B A (out x in), B's rows taken in `layout` of head size hd. */
static void add_delta(double *delta, const vkm_lora_pair *p, const vkm_adapter_src *a, double w,
                      vkm_rope_layout layout, uint32_t hd)
{
    double *A = f64(p->a), *B = f64(p->b);
    uint32_t r = p->rank, in = (uint32_t)p->a->ne[0], out = (uint32_t)p->b->ne[1];
    bool qk = p->module == VKM_MOD_Q || p->module == VKM_MOD_K;
    for (uint32_t row = 0; row < out; row++) {
        uint32_t br = qk ? vkm_rope_row_map(layout, a->rope_layout, row, hd) : row;
        for (uint32_t c = 0; c < in; c++) {
            double s = 0;
            for (uint32_t k = 0; k < r; k++) s += B[(uint64_t)br * r + k] * A[(uint64_t)k * in + c];
            delta[(uint64_t)row * in + c] += w * p->scale * s;
        }
    }
    free(A);
    free(B);
}

static const vkm_lora_pair *pair_of(const vkm_adapter_src *a, uint32_t layer, vkm_module m)
{
    for (uint32_t i = 0; i < a->n_pairs; i++)
        if (a->pairs[i].layer == layer && a->pairs[i].module == m) return &a->pairs[i];
    return NULL;
}

static void run_merge(vkm_context *ctx, vkm_merge_method m, const char *const *adapters,
                      const double *w, uint32_t n, const char *out)
{
    vkm_merge_params p = vkm_merge_default_params();
    p.method = m;
    snprintf(p.base, sizeof p.base, "%s/base/model.gguf", TESTBED);
    p.n_models = n;
    for (uint32_t i = 0; i < n; i++) {
        snprintf(p.models[i].path, sizeof p.models[i].path, "%s", adapters[i]);
        p.models[i].weight = w[i];
    }
    if (vkm_merge(ctx, &p, out)) fail_msg("%s: %s", out, vkm_context_errmsg(ctx));
}

/* The merged adapter's delta against the sum of the inputs' weighted deltas, module by module. */
static void check_cat(const char *merged, const char *const *inputs, const double *w, uint32_t n)
{
    vkm_adapter_src out = open_adapter(merged), in[4];
    for (uint32_t i = 0; i < n; i++) in[i] = open_adapter(inputs[i]);
    const uint32_t hd = 32; /* the testbed's head size */
    assert_int_equal(out.n_pairs, in[0].n_pairs);
    for (uint32_t k = 0; k < out.n_pairs; k++) {
        const vkm_lora_pair *p = &out.pairs[k];
        uint64_t cells = (uint64_t)p->a->ne[0] * p->b->ne[1];
        double *want = test_alloc(cells * 8), *got = test_alloc(cells * 8), scale = 0, worst = 0;
        for (uint32_t i = 0; i < n; i++) add_delta(want, pair_of(&in[i], p->layer, p->module), &in[i], w[i], out.rope_layout, hd);
        add_delta(got, p, &out, 1.0, out.rope_layout, hd);
        for (uint64_t c = 0; c < cells; c++) {
            scale = fmax(scale, fabs(want[c]));
            worst = fmax(worst, fabs(want[c] - got[c]));
        }
        if (worst > 1e-6 * scale) fail_msg("%s: %s: delta off by %.3g (scale %.3g)", merged, p->target, worst, scale);
        free(want);
        free(got);
    }
    vkm_adapter_close(&out);
    for (uint32_t i = 0; i < n; i++) vkm_adapter_close(&in[i]);
}

static void test_cat(void **state)
{
    (void)state;
    vkm_context *ctx = test_context();
    const char *in[3] = {TESTBED "/experts/python", TESTBED "/experts/c/adapter.gguf", TESTBED "/experts/legal"};
    const double w[3] = {1.0, 0.7, -0.4};
    run_merge(ctx, VKM_MERGE_LORA_CAT, in, w, 3, VKM_TEST_TMPDIR "/mlora_cat.gguf");
    check_cat(VKM_TEST_TMPDIR "/mlora_cat.gguf", in, w, 3);
    vkm_adapter_src o = open_adapter(VKM_TEST_TMPDIR "/mlora_cat.gguf");
    assert_int_equal(o.pairs[0].rank, 24); /* 8 + 8 + 8 */
    vkm_adapter_close(&o);
    run_merge(ctx, VKM_MERGE_LORA_CAT, in, w, 3, VKM_TEST_TMPDIR "/mlora_cat_peft");
    check_cat(VKM_TEST_TMPDIR "/mlora_cat_peft", in, w, 3);
    test_context_done(ctx);
}

static void test_linear(void **state)
{
    (void)state;
    vkm_context *ctx = test_context();
    const char *in[2] = {TESTBED "/experts/python/adapter.gguf", TESTBED "/experts/shell"};
    const double w[2] = {0.6, 0.4};
    run_merge(ctx, VKM_MERGE_LORA_LINEAR, in, w, 2, VKM_TEST_TMPDIR "/mlora_linear.gguf");
    vkm_adapter_src out = open_adapter(VKM_TEST_TMPDIR "/mlora_linear.gguf"), a[2] = {open_adapter(in[0]), open_adapter(in[1])};
    for (uint32_t k = 0; k < out.n_pairs; k++) {
        const vkm_lora_pair *p = &out.pairs[k];
        assert_int_equal(p->rank, 8);
        double *A = f64(p->a), *B = f64(p->b);
        uint32_t in_dim = (uint32_t)p->a->ne[0], out_dim = (uint32_t)p->b->ne[1];
        double *Ai[2], *Bi[2];
        const vkm_lora_pair *pi[2];
        for (int i = 0; i < 2; i++) {
            pi[i] = pair_of(&a[i], p->layer, p->module);
            Ai[i] = f64(pi[i]->a);
            Bi[i] = f64(pi[i]->b);
        }
        for (uint64_t c = 0; c < (uint64_t)8 * in_dim; c++) { /* A' = sum w A */
            double want = w[0] * Ai[0][c] + w[1] * Ai[1][c];
            if (fabs(A[c] - want) > 1e-6 * (fabs(want) + 1e-3)) fail_msg("%s: A'[%llu] %g, want %g", p->target, (unsigned long long)c, A[c], want);
        }
        bool qk = p->module == VKM_MOD_Q || p->module == VKM_MOD_K;
        for (uint32_t row = 0; row < out_dim; row++) /* scale' B' = sum w s B (rows in GGUF layout) */
            for (uint32_t q = 0; q < 8; q++) {
                double want = 0;
                for (int i = 0; i < 2; i++) {
                    uint32_t br = qk ? vkm_rope_row_map(VKM_ROPE_INTERLEAVED, a[i].rope_layout, row, 32) : row;
                    want += w[i] * pi[i]->scale * Bi[i][(uint64_t)br * 8 + q];
                }
                double got = p->scale * B[(uint64_t)row * 8 + q];
                if (fabs(got - want) > 1e-6 * (fabs(want) + 1e-3))
                    fail_msg("%s: B'[%u][%u] %g, want %g", p->target, row, q, got, want);
            }
        for (int i = 0; i < 2; i++) {
            free(Ai[i]);
            free(Bi[i]);
        }
        free(A);
        free(B);
    }
    vkm_adapter_close(&out);
    vkm_adapter_close(&a[0]);
    vkm_adapter_close(&a[1]);
    /* different ranks cannot be averaged */
    const char *mixed[2] = {TESTBED "/experts/python", VKM_TEST_TMPDIR "/mlora_cat.gguf"};
    vkm_merge_params p = vkm_merge_default_params();
    p.method = VKM_MERGE_LORA_LINEAR;
    p.n_models = 2;
    for (int i = 0; i < 2; i++) snprintf(p.models[i].path, sizeof p.models[i].path, "%s", mixed[i]);
    snprintf(p.base, sizeof p.base, "%s/base/model.gguf", TESTBED);
    if (vkm_exists(mixed[1])) {
        assert_int_equal(vkm_merge(ctx, &p, VKM_TEST_TMPDIR "/mlora_bad.gguf"), VKM_ERR_MISMATCH);
        assert_non_null(strstr(vkm_context_errmsg(ctx), "rank"));
        assert_false(vkm_exists(VKM_TEST_TMPDIR "/mlora_bad.gguf"));
    }
    test_context_done(ctx);
}

/* ---- bake ------------------------------------------------------------------------------------ */
static void check_golden(vkm_context *ctx, const char *model)
{
    char *text = NULL;
    uint64_t len = 0;
    vkm_err e;
    if (vkm_read_text(TESTBED "/golden/index.json", 1 << 24, &text, &len, &e)) fail_msg("%s", e.msg);
    cJSON *j = cJSON_Parse(text);
    free(text);
    const cJSON *c = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "cases"), "base+lora_python");
    const cJSON *pr = cJSON_GetArrayItem(cJSON_GetObjectItem(c, "prompts"), 0);
    const cJSON *jids = cJSON_GetObjectItem(pr, "ids"), *jg = cJSON_GetObjectItem(pr, "greedy_ids");
    int32_t ids[256];
    int n = cJSON_GetArraySize(jids), ng = cJSON_GetArraySize(jg);
    for (int i = 0; i < n; i++) ids[i] = cJSON_GetArrayItem(jids, i)->valueint;
    vkm_model_params mp = vkm_model_default_params();
    mp.n_seq = 1;
    vkm_model *m = NULL;
    if (vkm_model_load(ctx, model, &mp, &m)) fail_msg("%s: %s", model, vkm_context_errmsg(ctx));
    vkm_session_params sp = vkm_session_default_params();
    sp.sampling.temperature = 0;
    sp.keep_logits = true;
    vkm_session *s;
    assert_int_equal(vkm_session_create(m, &sp, &s), VKM_OK);
    int32_t next;
    assert_int_equal(vkm_session_prompt(s, ids, (size_t)n, &next), VKM_OK);
    const float *lg;
    size_t nv;
    assert_int_equal(vkm_session_logits(s, &lg, &nv), VKM_OK);
    char path[600];
    snprintf(path, sizeof path, "%s/golden/%s", TESTBED, cJSON_GetObjectItem(pr, "logits_file")->valuestring);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    float *ref = test_alloc(nv * 4);
    assert_int_equal(fread(ref, 4, nv, f), nv);
    fclose(f);
    double err = test_nmse(lg, ref, nv);
    if (!(err < 1e-4)) fail_msg("%s: logits nmse %.3g against the golden of base + lora_python", model, err);
    for (int i = 0; i < ng; i++) {
        if (next != cJSON_GetArrayItem(jg, i)->valueint) fail_msg("%s: greedy token %d differs", model, i);
        if (i + 1 < ng) assert_int_equal(vkm_session_decode(s, next, &next), VKM_OK);
    }
    free(ref);
    vkm_session_free(s);
    vkm_model_free(m);
    cJSON_Delete(j);
}

static void test_bake(void **state)
{
    (void)state;
    vkm_context *ctx = test_context();
    const char *bases[2] = {TESTBED "/base/model.gguf", TESTBED "/base"};
    const char *outs[2] = {VKM_TEST_TMPDIR "/mlora_baked.gguf", VKM_TEST_TMPDIR "/mlora_baked_st"};
    for (int k = 0; k < 2; k++) { /* GGUF base + PEFT adapter -> GGUF; HF base + PEFT -> folder */
        vkm_merge_params p = vkm_merge_default_params();
        p.method = VKM_MERGE_LORA_BAKE;
        snprintf(p.base, sizeof p.base, "%s", bases[k]);
        p.n_models = 1;
        snprintf(p.models[0].path, sizeof p.models[0].path, "%s/experts/python", TESTBED);
        if (vkm_merge(ctx, &p, outs[k])) fail_msg("%s: %s", outs[k], vkm_context_errmsg(ctx));
        check_golden(ctx, outs[k]);
    }
    test_context_done(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apply),
        cmocka_unit_test(test_cat),
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_bake),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
