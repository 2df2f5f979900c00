/*
 * test_forward.c — the Vulkan forward pass against the plain-C reference (tests/ref) on
 * random-weight models with awkward dimensions and GQA, loaded from the files the engine reads
 * (GGUF: interleaved RoPE; Hugging Face folder: rotate_half): prefill logits at every position,
 * several sequences at different positions in one step, prefill-then-decode equal to
 * token-by-token decode, long contexts split over the context, small prefill chunks, and
 * F16 / Q8_0 / Q4_0 weights within stated tolerances of F32.
 */
#include <sys/stat.h>
#include <unistd.h>

#include "ref_files.h"
#include "ref_forward.h"
#include "vkm_test.h"

static ref_model small_model(uint64_t seed, bool tied)
{
    ref_model m = {0};
    m.vocab = 101; m.dim = 44; m.n_layers = 2; m.n_heads = 4; m.n_kv_heads = 2; m.head_dim = 12;
    m.ffn = 70; m.ctx = 700; m.eps = 1e-5f; m.theta = 10000.0f;
    ref_model_random(&m, seed, tied);
    return m;
}

static char *tmp_path(const char *name)
{
    static char p[8][512];
    static int k;
    char *s = p[k++ & 7];
    snprintf(s, 512, "%s/%d-%s", VKM_TEST_TMPDIR, (int)getpid(), name);
    return s;
}

static vkm_model *load(vkm_context *ctx, const char *path, int wtype, uint32_t n_batch, uint32_t n_seq)
{
    vkm_model_params p = vkm_model_default_params();
    p.weight_type = wtype;
    p.n_batch = n_batch;
    p.n_seq = n_seq;
    vkm_model *m = NULL;
    vkm_status s = vkm_model_load(ctx, path, &p, &m);
    if (s != VKM_OK) fail_msg("load %s: %s", path, vkm_context_errmsg(ctx));
    return m;
}

/* Reference logits of ids[0..n) at every position (n x vocab). */
static float *ref_all(const ref_model *m, const int32_t *ids, uint32_t n)
{
    float *out = test_alloc((size_t)n * m->vocab * 4);
    ref_seq s;
    ref_seq_init(&s, m);
    for (uint32_t i = 0; i < n; i++) ref_forward_token(m, &s, ids[i], out + (size_t)i * m->vocab);
    ref_seq_free(&s);
    return out;
}

static void check(const char *what, const float *got, const float *ref, size_t n, double tol)
{
    double e = test_nmse(got, ref, n);
    printf("%-44s nmse %.3g (tol %.1g)\n", what, e, tol);
    if (!(e <= tol)) fail_msg("%s: nmse %.3g > %.3g", what, e, tol);
}

static void random_ids(test_rng *r, int32_t *ids, uint32_t n, uint32_t vocab)
{
    for (uint32_t i = 0; i < n; i++) ids[i] = (int32_t)(test_rng_next(r) % vocab);
}

/* prefill logits at every position, both file formats / RoPE layouts, tied and separate head */
static void test_prefill_both_layouts(void **state)
{
    (void)state;
    for (int gpu = 0; gpu < 2; gpu++) { /* as tuned for this device; as for a GPU (tiled matmul) */
    vkm_context_params cp = vkm_context_default_params();
    cp.tune_as_gpu = gpu;
    vkm_context *ctx = test_context_with(cp);
    printf("%s\n", gpu ? "tuned as for a GPU" : "tuned for this device");
    test_rng rng = {11};
    for (int tied = 0; tied < 2; tied++)
        for (int hf = 0; hf < 2; hf++) {
            ref_model rm = small_model(100 + tied, tied);
            rm.rope_half = hf;
            vkm_err e;
            const char *path = tmp_path(hf ? "hf" : "m.gguf");
            vkm_status s = hf ? ref_write_hf(&rm, path, &e) : ref_write_gguf(&rm, path, VKM_F32, &e);
            if (s) fail_msg("write: %s", e.msg);
            vkm_model *m = load(ctx, path, VKM_WEIGHTS_AUTO, 64, 2);
            vkm_model_info info;
            assert_int_equal(vkm_model_get_info(m, &info), VKM_OK);
            assert_int_equal(info.rope_half, hf);
            assert_int_equal(info.tied_embeddings, tied);
            const uint32_t n = 37; /* > 8: the matmul path on GPUs */
            int32_t ids[37];
            random_ids(&rng, ids, n, rm.vocab);
            float *got = test_alloc((size_t)n * rm.vocab * 4), *ref = ref_all(&rm, ids, n);
            vkm_session *se;
            assert_int_equal(vkm_session_create(m, NULL, &se), VKM_OK);
            if (vkm_session_eval(se, ids, n, got)) fail_msg("%s", vkm_context_errmsg(ctx));
            assert_int_equal(vkm_session_pos(se), n);
            char what[64];
            snprintf(what, sizeof what, "prefill %s tied=%d", hf ? "hf" : "gguf", tied);
            check(what, got, ref, (size_t)n * rm.vocab, 1e-9);
            /* a few tokens more (matvec path) continue the same sequence */
            float *got2 = test_alloc(3 * (size_t)rm.vocab * 4);
            int32_t more[3] = {5, 17, 99};
            assert_int_equal(vkm_session_eval(se, more, 3, got2), VKM_OK);
            int32_t all[40];
            memcpy(all, ids, sizeof ids);
            memcpy(all + n, more, sizeof more);
            float *ref2 = ref_all(&rm, all, n + 3);
            check("  + 3 tokens (matvec)", got2, ref2 + (size_t)n * rm.vocab, 3 * (size_t)rm.vocab, 1e-9);
            free(got); free(ref); free(got2); free(ref2);
            vkm_session_free(se);
            vkm_model_free(m);
            ref_model_free(&rm);
        }
    test_context_done(ctx);
    }
}

/* three sequences at different positions advance in one step; each equals its own reference;
 * prefill-then-decode equals token-by-token decode */
static void test_batched_sequences(void **state)
{
    (void)state;
    vkm_context *ctx = test_context();
    ref_model rm = small_model(7, false);
    vkm_err e;
    const char *path = tmp_path("b.gguf");
    assert_int_equal(ref_write_gguf(&rm, path, VKM_F32, &e), VKM_OK);
    vkm_model *m = load(ctx, path, VKM_WEIGHTS_AUTO, 32, 4);
    test_rng rng = {5};
    const uint32_t lens[3] = {5, 23, 1};
    int32_t ids[3][40];
    vkm_session *ss[3];
    vkm_session_params sp = vkm_session_default_params();
    sp.keep_logits = true;
    sp.sampling.temperature = 0; /* greedy */
    int32_t next[3];
    for (int i = 0; i < 3; i++) {
        random_ids(&rng, ids[i], 40, rm.vocab);
        assert_int_equal(vkm_session_create(m, &sp, &ss[i]), VKM_OK);
        assert_int_equal(vkm_session_prompt(ss[i], ids[i], lens[i], &next[i]), VKM_OK);
    }
    { /* a NULL among the sessions is an argument error, nothing run */
        vkm_session *with_null[3] = {ss[0], NULL, ss[2]};
        int32_t tok[3] = {1, 2, 3}, out[3];
        assert_int_equal(vkm_batch_decode(with_null, 3, tok, out), VKM_ERR_INVALID_ARGUMENT);
        assert_int_equal(vkm_session_pos(ss[0]), lens[0]);
        int32_t bad[3] = {1, (int32_t)rm.vocab, 3}; /* a token outside the vocabulary: nothing moves */
        assert_int_equal(vkm_batch_decode(ss, 3, bad, out), VKM_ERR_INVALID_ARGUMENT);
        assert_non_null(strstr(vkm_context_errmsg(ctx), "not in the vocabulary"));
        assert_int_equal(vkm_session_pos(ss[0]), lens[0]);
    }
    /* two batched steps */
    for (int step = 0; step < 2; step++) {
        int32_t tok[3];
        for (int i = 0; i < 3; i++) tok[i] = ids[i][lens[i] + step];
        int32_t out[3];
        if (vkm_batch_decode(ss, 3, tok, out)) fail_msg("%s", vkm_context_errmsg(ctx));
        for (int i = 0; i < 3; i++) {
            uint32_t n = lens[i] + step + 1;
            float *ref = ref_all(&rm, ids[i], n);
            const float *lg;
            size_t nv;
            assert_int_equal(vkm_session_logits(ss[i], &lg, &nv), VKM_OK);
            assert_int_equal(nv, rm.vocab);
            char what[64];
            snprintf(what, sizeof what, "batched seq %d at pos %u", i, n - 1);
            const float *last = ref + (size_t)(n - 1) * rm.vocab;
            check(what, lg, last, rm.vocab, 1e-9);
            /* greedy pick equals the reference argmax */
            int32_t am = 0;
            for (uint32_t v = 1; v < rm.vocab; v++) if (last[v] > last[am]) am = (int32_t)v;
            assert_int_equal(out[i], am);
            free(ref);
        }
    }
    /* prefill-then-decode == token by token */
    vkm_session *a, *b;
    for (int i = 0; i < 3; i++) vkm_session_free(ss[i]);
    assert_int_equal(vkm_session_create(m, &sp, &a), VKM_OK);
    assert_int_equal(vkm_session_create(m, &sp, &b), VKM_OK);
    int32_t na, nb = 0;
    assert_int_equal(vkm_session_prompt(a, ids[1], 20, &na), VKM_OK);
    assert_int_equal(vkm_session_prompt(b, ids[1], 1, &nb), VKM_OK);
    for (int i = 1; i < 20; i++) assert_int_equal(vkm_session_decode(b, ids[1][i], &nb), VKM_OK);
    const float *la, *lb;
    assert_int_equal(vkm_session_logits(a, &la, NULL), VKM_OK);
    assert_int_equal(vkm_session_logits(b, &lb, NULL), VKM_OK);
    check("prefill 20 vs 20 single decodes", la, lb, rm.vocab, 1e-10);
    assert_int_equal(na, nb);
    vkm_session_free(a);
    vkm_session_free(b);
    vkm_model_free(m);
    ref_model_free(&rm);
    test_context_done(ctx);
}

/* long context: decode over > 256 keys splits the context; small prefill chunks */
static void test_long_context_and_chunks(void **state)
{
    (void)state;
    vkm_context *ctx = test_context();
    ref_model rm = small_model(9, true);
    vkm_err e;
    const char *path = tmp_path("l.gguf");
    assert_int_equal(ref_write_gguf(&rm, path, VKM_F32, &e), VKM_OK);
    vkm_model *m = load(ctx, path, VKM_WEIGHTS_AUTO, 7, 1); /* chunks of 7 tokens */
    test_rng rng = {99};
    const uint32_t n = 600;
    int32_t *ids = test_alloc(n * 4);
    random_ids(&rng, ids, n, rm.vocab);
    float *ref = ref_all(&rm, ids, n);
    vkm_session_params sp = vkm_session_default_params();
    sp.keep_logits = true;
    vkm_session *s;
    assert_int_equal(vkm_session_create(m, &sp, &s), VKM_OK);
    int32_t next;
    if (vkm_session_prompt(s, ids, n - 2, &next)) fail_msg("%s", vkm_context_errmsg(ctx));
    const float *lg;
    assert_int_equal(vkm_session_logits(s, &lg, NULL), VKM_OK);
    check("prefill 598 in chunks of 7", lg, ref + (size_t)(n - 3) * rm.vocab, rm.vocab, 1e-9);
    for (uint32_t i = n - 2; i < n; i++) {
        assert_int_equal(vkm_session_decode(s, ids[i], &next), VKM_OK);
        assert_int_equal(vkm_session_logits(s, &lg, NULL), VKM_OK);
        check("decode over >256 keys (split context)", lg, ref + (size_t)i * rm.vocab, rm.vocab, 1e-9);
    }
    /* the context is full at n_ctx */
    vkm_session_reset(s);
    int32_t *many = test_alloc((rm.ctx + 1) * 4);
    assert_int_equal(vkm_session_prompt(s, many, rm.ctx + 1, &next), VKM_ERR_LIMIT);
    free(many);
    vkm_session_free(s);
    free(ids);
    free(ref);
    vkm_model_free(m);
    ref_model_free(&rm);
    test_context_done(ctx);
}

/* F16 (file and conversion), Q8_0, Q4_0 against F32 logits */
static void quantized_weights(bool gpu)
{
    vkm_context_params cp = vkm_context_default_params();
    cp.tune_as_gpu = gpu; /* GPUs prefill these 24 tokens with the tiled matmul kernels */
    vkm_context *ctx = test_context_with(cp);
    printf("%s\n", gpu ? "tuned as for a GPU" : "tuned for this device");
    ref_model rm = {0};
    rm.vocab = 160; rm.dim = 64; rm.n_layers = 2; rm.n_heads = 4; rm.n_kv_heads = 2; rm.head_dim = 16;
    rm.ffn = 96; rm.ctx = 64; rm.eps = 1e-5f; rm.theta = 10000.0f;
    ref_model_random(&rm, 31, false);
    vkm_err e;
    const char *p32 = tmp_path("q32.gguf"), *p16 = tmp_path("q16.gguf");
    assert_int_equal(ref_write_gguf(&rm, p32, VKM_F32, &e), VKM_OK);
    assert_int_equal(ref_write_gguf(&rm, p16, VKM_F16, &e), VKM_OK);
    test_rng rng = {3};
    const uint32_t n = 24;
    int32_t ids[24];
    random_ids(&rng, ids, n, rm.vocab);
    float *ref = ref_all(&rm, ids, n);
    struct { const char *path; int wt; double tol; const char *name; } cases[] = {
        {p32, VKM_WEIGHTS_AUTO, 1e-9, "F32"},
        {p16, VKM_WEIGHTS_AUTO, 1e-5, "F16 file"},
        {p32, VKM_F16, 1e-5, "F16 converted at load"},
        {p32, VKM_Q8_0, 1e-3, "Q8_0 quantized at load"},
        {p32, VKM_Q4_0, 3e-2, "Q4_0 quantized at load"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        vkm_model *m = load(ctx, cases[c].path, cases[c].wt, 16, 1);
        vkm_model_info info;
        vkm_model_get_info(m, &info);
        if (cases[c].wt != VKM_WEIGHTS_AUTO) assert_int_equal(info.weight_type, cases[c].wt);
        float *got = test_alloc((size_t)n * rm.vocab * 4);
        vkm_session *s;
        assert_int_equal(vkm_session_create(m, NULL, &s), VKM_OK);
        assert_int_equal(vkm_session_eval(s, ids, n, got), VKM_OK);
        check(cases[c].name, got, ref, (size_t)n * rm.vocab, cases[c].tol);
        free(got);
        vkm_session_free(s);
        vkm_model_free(m);
    }
    free(ref);
    ref_model_free(&rm);
    test_context_done(ctx);
}

/* vkm_generate streams tokens whose text is longer than its first buffer (a long added
 * token): a vocabulary of seven 300-byte tokens beside a random model; every generated token
 * arrives whole. */
typedef struct long_text {
    size_t n_tokens, longest;
} long_text;

static bool on_long(void *user, int32_t id, const char *text, size_t n)
{
    long_text *lt = user;
    if (id >= 0) lt->n_tokens++;
    if (n > lt->longest) lt->longest = n;
    return text != NULL;
}

static void test_generate_long_tokens(void **state)
{
    (void)state;
    const char *dir = tmp_path("longtok");
    mkdir(dir, 0755);
    char path[600];
    snprintf(path, sizeof path, "%s/model.gguf", dir);
    vkm_model_shape sh = {8, 32, 1, 2, 1, 0, 48, 64, 10000.0f, false, 0, 0};
    char msg[256];
    if (vkm_model_write_random(path, &sh, VKM_F32, 5, 0, 0, msg, sizeof msg)) fail_msg("%s", msg);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "{\"added_tokens\": [{\"id\": 0, \"content\": \"<s>\", \"special\": true}], \"normalizer\": null, "
               "\"pre_tokenizer\": null, \"decoder\": null, \"model\": {\"type\": \"BPE\", \"merges\": [], "
               "\"vocab\": {\"<s>\": 0");
    for (int id = 1; id < 8; id++) {
        fprintf(f, ", \"");
        for (int k = 0; k < 300; k++) fputc('a' + id, f);
        fprintf(f, "\": %d", id);
    }
    fprintf(f, "}}}\n");
    assert_int_equal(fclose(f), 0);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "{\"bos_token\": \"<s>\", \"add_bos_token\": true}\n");
    assert_int_equal(fclose(f), 0);
    vkm_context *ctx = test_context();
    snprintf(path, sizeof path, "%s/model.gguf", dir);
    vkm_model *m = load(ctx, path, VKM_F32, 16, 1);
    assert_non_null(vkm_model_tokenizer(m));
    vkm_session_params sp = vkm_session_default_params();
    sp.sampling.temperature = 0;
    vkm_session *s = NULL;
    assert_int_equal(vkm_session_create(m, &sp, &s), VKM_OK);
    vkm_generate_params gp = vkm_generate_default_params();
    gp.n_predict = 6;
    gp.stop_at_eos = false;
    long_text lt = {0, 0};
    gp.on_token = on_long;
    gp.user = &lt;
    vkm_generate_stats st;
    if (vkm_generate(s, "", &gp, &st)) fail_msg("%s", vkm_context_errmsg(ctx));
    printf("6 tokens generated from <s>: %zu arrived, the longest text %zu bytes\n", lt.n_tokens, lt.longest);
    assert_int_equal(lt.n_tokens, 6);
    assert_true(lt.longest >= 300);
    vkm_session_free(s);
    vkm_model_free(m);
    test_context_done(ctx);
}

static void test_quantized_weights(void **state)
{
    (void)state;
    quantized_weights(false);
    quantized_weights(true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefill_both_layouts),
        cmocka_unit_test(test_batched_sequences),
        cmocka_unit_test(test_long_context_and_chunks),
        cmocka_unit_test(test_quantized_weights),
        cmocka_unit_test(test_generate_long_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
