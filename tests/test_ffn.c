/*
 * test_ffn.c — FFN experts (whole fine-tunes mixed per layer) against the plain-C reference
 * (tests/ref/ref_ffn.c) on a random base and three random "fine-tunes" of its shape: gate-less
 * (uniform), learned routers at layer, module (fine-grained) and model depth with top-1, top-2,
 * all and an always-on expert, seeded noisy routers, attention mixing, shared weights averaged
 * across the experts, sequence-level decisions from pooled inputs, the bare base, each through
 * the prefill (gathered matmul) and the decode (expert-selected matvec) paths; a heterogeneous
 * batch equal to each sequence alone; a Hugging Face Mixtral checkpoint written here.
 */
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ref_ffn.h"
#include "ref_files.h"
#include "vkm_test.h"
#include "writer.h"

#define N_EXP 3
#define N_TOK 13

typedef struct fixture {
    ref_model base, ex[N_EXP];
    char dir[512];
} fixture;

static vkm_context *cur_ctx; /* for error messages */

static const char *mod_names[7] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};

static void shape(ref_model *m)
{
    m->vocab = 97; m->dim = 44; m->n_layers = 2; m->n_heads = 4; m->n_kv_heads = 2; m->head_dim = 12;
    m->ffn = 70; m->ctx = 96; m->eps = 1e-5f; m->theta = 10000.0f;
}

static void fixture_init(fixture *f, const char *tag)
{
    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "%s/%d-ffn-%s", VKM_TEST_TMPDIR, (int)getpid(), tag);
    mkdir(f->dir, 0755);
    vkm_err e;
    char path[700];
    shape(&f->base);
    ref_model_random(&f->base, 77, false);
    snprintf(path, sizeof path, "%s/base.gguf", f->dir);
    if (ref_write_gguf(&f->base, path, VKM_F32, &e)) fail_msg("%s", e.msg);
    for (uint32_t x = 0; x < N_EXP; x++) {
        shape(&f->ex[x]);
        ref_model_random(&f->ex[x], 101 + x, false);
        snprintf(path, sizeof path, "%s/x%u.gguf", f->dir, x);
        if (ref_write_gguf(&f->ex[x], path, VKM_F32, &e)) fail_msg("%s", e.msg);
    }
}

static void fixture_free(fixture *f)
{
    ref_model_free(&f->base);
    for (uint32_t x = 0; x < N_EXP; x++) ref_model_free(&f->ex[x]);
}

static const char *manifest(fixture *f, const char *name, const char *router_json, const char *extra)
{
    static char path[700];
    snprintf(path, sizeof path, "%s/%s.json", f->dir, name);
    FILE *o = fopen(path, "w");
    assert_non_null(o);
    fprintf(o, "{\"base\": \"base.gguf\", \"experts\": [{\"name\": \"x0\", \"model\": \"x0.gguf\"}, "
               "{\"name\": \"x1\", \"model\": \"x1.gguf\"}, {\"name\": \"x2\", \"model\": \"x2.gguf\"}], "
               "\"router\": {%s}%s%s}\n", router_json, extra ? ", " : "", extra ? extra : "");
    fclose(o);
    return path;
}

/* The input length of routing point p. */
static uint32_t point_in(const ref_model *m, uint32_t p)
{
    const uint32_t mod = p % 7;
    return mod == 3 ? m->n_heads * m->head_dim : mod == 6 ? m->ffn : m->dim;
}

/* Whether point p has a router of this depth with FFN experts (attn: q, k, v routed too). */
static bool is_point(uint32_t p, int depth, bool attn)
{
    const uint32_t mod = p % 7;
    if (depth == 2) return p == 0;
    if (attn && mod < 3) return true;
    return depth == 1 ? mod == 4 : mod >= 4;
}

/* Random router matrices at the points of a depth, written as a router file; ref rows too. */
static void router_file(const fixture *f, const char *path, int depth, bool attn, ref_router *rr, uint64_t seed)
{
    const ref_model *m = &f->base;
    const uint32_t P = m->n_layers * 7;
    rr->r = calloc(P, sizeof *rr->r);
    test_rng rng = {seed};
    vkm_err e;
    vkm_st_writer *w = NULL;
    if (vkm_st_writer_create(path, &w, &e)) fail_msg("%s", e.msg);
    char name[128];
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1 && vkm_st_writer_begin(w)) fail_msg("%s", e.msg);
        for (uint32_t p = 0; p < P; p++) {
            if (!is_point(p, depth, attn)) continue;
            const uint32_t l = p / 7, mod = p % 7, in = point_in(m, p);
            if (depth == 2) snprintf(name, sizeof name, "router.weight");
            else if (depth == 1 && mod == 4) snprintf(name, sizeof name, "layers.%u.router.weight", l);
            else snprintf(name, sizeof name, "layers.%u.%s.router.weight", l, mod_names[mod]);
            if (pass == 0) {
                int64_t ne[2] = {in, N_EXP};
                vkm_st_writer_add_tensor(w, name, VKM_F32, 2, ne);
                rr->r[p] = malloc(4ull * N_EXP * in);
                test_fill(&rng, rr->r[p], (size_t)N_EXP * in, 0.7f);
            } else if (vkm_st_writer_write_tensor(w, name, rr->r[p], 4ull * N_EXP * in)) {
                fail_msg("%s", e.msg);
            }
        }
    }
    if (vkm_st_writer_finish(w)) fail_msg("%s", e.msg);
    vkm_st_writer_free(w);
}

static void router_free(const ref_model *m, ref_router *rr)
{
    for (uint32_t p = 0; p < m->n_layers * 7; p++) free(rr->r[p]);
    free(rr->r);
}

static vkm_model *load(vkm_context *ctx, const char *path)
{
    vkm_model_params p = vkm_model_default_params();
    p.n_seq = 4;
    p.n_batch = 32;
    vkm_model *m = NULL;
    cur_ctx = ctx;
    if (vkm_model_load(ctx, path, &p, &m)) fail_msg("load %s: %s", path, vkm_context_errmsg(ctx));
    return m;
}

static void check(const char *what, const float *got, const float *ref, size_t n, double tol)
{
    double e = test_nmse(got, ref, n);
    printf("%-66s nmse %.3g\n", what, e);
    if (!(e <= tol)) fail_msg("%s: nmse %.3g > %.3g", what, e, tol);
}

static float *ref_logits(const ref_model *base, const ref_hooks *h, const int32_t *ids, uint32_t n)
{
    float *out = test_alloc((size_t)n * base->vocab * 4);
    ref_forward_logits(base, h, ids, n, out);
    return out;
}

static void random_ids(int32_t *ids, uint32_t n, uint32_t vocab, uint64_t seed)
{
    test_rng r = {seed};
    for (uint32_t i = 0; i < n; i++) ids[i] = (int32_t)(test_rng_next(&r) % vocab);
}

/* The engine's logits of ids: all at once (prefill: the gathered matmul) and, in a second
 * session, one token per step (decode: the expert-selected matvec). */
static void engine_logits(vkm_model *m, const vkm_session_params *sp, const int32_t *ids, uint32_t n, float *all,
                          float *one)
{
    vkm_session *s;
    if (vkm_session_create(m, sp, &s)) fail_msg("%s", vkm_context_errmsg(cur_ctx));
    if (vkm_session_eval(s, ids, n, all)) fail_msg("%s", vkm_context_errmsg(cur_ctx));
    vkm_session_free(s);
    if (!one) return;
    vkm_model_info info;
    assert_int_equal(vkm_model_get_info(m, &info), VKM_OK);
    assert_int_equal(vkm_session_create(m, sp, &s), VKM_OK);
    for (uint32_t i = 0; i < n; i++)
        if (vkm_session_eval(s, ids + i, 1, one + (size_t)i * info.n_vocab)) fail_msg("%s", vkm_context_errmsg(cur_ctx));
    vkm_session_free(s);
}

static const ref_model *const *experts(const fixture *f)
{
    static const ref_model *x[N_EXP];
    for (uint32_t e = 0; e < N_EXP; e++) x[e] = &f->ex[e];
    return x;
}

/* One token-level (or task-level) case against the reference with router rr (NULL: fixed w). */
static void token_case(vkm_context *ctx, fixture *f, const char *what, const char *router_json, const char *extra,
                       const ref_router *rr, const float *fixed, bool attn, bool fine, const ref_model *base)
{
    vkm_model *m = load(ctx, manifest(f, "case", router_json, extra));
    int32_t ids[N_TOK];
    random_ids(ids, N_TOK, f->base.vocab, 5);
    const size_t nv = (size_t)N_TOK * f->base.vocab;
    float *all = test_alloc(nv * 4), *one = test_alloc(nv * 4);
    engine_logits(m, NULL, ids, N_TOK, all, one);
    ref_ffn x;
    ref_ffn_init(&x, base ? base : &f->base, experts(f), N_EXP, attn ? 7u : 0u, fine);
    if (rr) {
        x.moe.mode = REF_TOKEN;
        x.moe.router = rr;
    } else {
        ref_moe_set_fixed(&x.moe, fixed);
    }
    float *ref = ref_logits(base ? base : &f->base, &x.hooks, ids, N_TOK);
    char w[160];
    snprintf(w, sizeof w, "%s (prefill)", what);
    check(w, all, ref, nv, 1e-8);
    snprintf(w, sizeof w, "%s (decode)", what);
    check(w, one, ref, nv, 1e-8);
    ref_ffn_free(&x);
    free(all);
    free(one);
    free(ref);
    vkm_model_free(m);
}

static void test_gateless_and_learned(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f, "tok");
    vkm_context *ctx = test_context();
    static const float third[N_EXP] = {1.0f / 3, 1.0f / 3, 1.0f / 3};
    token_case(ctx, &f, "gate-less (uniform, all experts)", "\"policy\": \"uniform\", \"top_k\": 0", NULL, NULL,
               third, false, false, NULL);
    static const float fixed[N_EXP] = {0.25f, 0, 0.75f};
    token_case(ctx, &f, "fixed weights 0.25 / 0 / 0.75",
               "\"policy\": \"fixed\", \"granularity\": \"task\", \"fixed\": [0.25, 0, 0.75]", NULL, NULL, fixed,
               false, false, NULL);
    char path[700], json[512];
    static const char *depths[3] = {"module", "layer", "model"};
    for (int depth = 0; depth < 3; depth++) {
        snprintf(path, sizeof path, "%s/r%d.safetensors", f.dir, depth);
        ref_router rr = {depth, 2, 0, 1.0f, -1, false, false, NULL};
        router_file(&f, path, depth, false, &rr, 900 + (uint64_t)depth);
        for (uint32_t k = 0; k <= 2; k++) {
            rr.top_k = k;
            snprintf(json, sizeof json, "\"policy\": \"learned\", \"depth\": \"%s\", \"top_k\": %u, "
                     "\"weights\": \"r%d.safetensors\"", depths[depth], k, depth);
            char what[128];
            snprintf(what, sizeof what, "learned, %s depth%s, top-%u", depths[depth], depth ? "" : " (fine-grained)", k);
            token_case(ctx, &f, what, json, NULL, &rr, NULL, false, depth == 0, NULL);
        }
        if (depth == 0) { /* "fine_grained" without a depth: module depth (the FFN default is layer) */
            rr.top_k = 2;
            snprintf(json, sizeof json, "\"policy\": \"learned\", \"fine_grained\": true, \"top_k\": 2, "
                     "\"weights\": \"r0.safetensors\"");
            token_case(ctx, &f, "learned, fine_grained (no depth), top-2", json, NULL, &rr, NULL, false, true, NULL);
        }
        if (depth == 1) { /* an always-on expert and top-1 over the others */
            rr.top_k = 1;
            rr.always_on = 1;
            snprintf(json, sizeof json, "\"policy\": \"learned\", \"depth\": \"layer\", \"top_k\": 1, "
                     "\"always_on\": \"x1\", \"weights\": \"r1.safetensors\"");
            token_case(ctx, &f, "learned, layer depth, top-1 + always-on x1", json, NULL, &rr, NULL, false, false, NULL);
        }
        router_free(&f.base, &rr);
    }
    test_context_done(ctx);
    fixture_free(&f);
}

static void test_noisy_attention_average(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f, "naa");
    vkm_context *ctx = test_context();
    ref_router rn = {1, 2, 0, 1.0f, -1, false, false, NULL};
    ref_router_noisy(&f.base, &rn, N_EXP, 23, 0.8f);
    token_case(ctx, &f, "noisy top-2 (seed 23, noise_std 0.8)",
               "\"policy\": \"noisy\", \"top_k\": 2, \"noise_std\": 0.8, \"seed\": 23", NULL, &rn, NULL, false,
               false, NULL);
    token_case(ctx, &f, "noisy top-2 with attention mixing (q, k, v routed)",
               "\"policy\": \"noisy\", \"top_k\": 2, \"noise_std\": 0.8, \"seed\": 23, \"route_attention\": true",
               NULL, &rn, NULL, true, false, NULL);
    router_free(&f.base, &rn);
    char path[700];
    snprintf(path, sizeof path, "%s/ra.safetensors", f.dir);
    ref_router ra = {1, 1, 0, 1.0f, -1, false, false, NULL};
    router_file(&f, path, 1, true, &ra, 77);
    token_case(ctx, &f, "learned top-1 with attention mixing",
               "\"policy\": \"learned\", \"top_k\": 1, \"route_attention\": true, \"weights\": \"ra.safetensors\"",
               NULL, &ra, NULL, true, false, NULL);
    router_free(&f.base, &ra);

    /* "shared": "average": every weight that is not mixed is the experts' mean */
    ref_model avg = f.base;
    const uint32_t L = f.base.n_layers, D = f.base.dim, qd = f.base.n_heads * f.base.head_dim;
    const uint32_t kvd = f.base.n_kv_heads * f.base.head_dim;
    float **lists[7] = {NULL};
    float ***srcs[7] = {&avg.attn_norm, &avg.wq, &avg.wk, &avg.wv, &avg.wo, &avg.ffn_norm, NULL};
    const size_t sizes[6] = {D, (size_t)qd * D, (size_t)kvd * D, (size_t)kvd * D, (size_t)D * qd, D};
    for (int k = 0; k < 6; k++) {
        lists[k] = calloc(L, sizeof(float *));
        for (uint32_t l = 0; l < L; l++) {
            lists[k][l] = calloc(sizes[k], 4);
            for (uint32_t e = 0; e < N_EXP; e++) {
                float **ex_list[6] = {f.ex[e].attn_norm, f.ex[e].wq, f.ex[e].wk, f.ex[e].wv, f.ex[e].wo, f.ex[e].ffn_norm};
                for (size_t i = 0; i < sizes[k]; i++) lists[k][l][i] += ex_list[k][l][i] / N_EXP;
            }
        }
        *srcs[k] = lists[k];
    }
    const size_t vd = (size_t)f.base.vocab * D;
    float *emb = calloc(vd, 4), *out = calloc(vd, 4), *onorm = calloc(D, 4);
    for (uint32_t e = 0; e < N_EXP; e++) {
        for (size_t i = 0; i < vd; i++) {
            emb[i] += f.ex[e].tok_embd[i] / N_EXP;
            out[i] += f.ex[e].output[i] / N_EXP;
        }
        for (uint32_t i = 0; i < D; i++) onorm[i] += f.ex[e].output_norm[i] / N_EXP;
    }
    avg.tok_embd = emb;
    avg.output = out;
    avg.output_norm = onorm;
    static const float third[N_EXP] = {1.0f / 3, 1.0f / 3, 1.0f / 3};
    token_case(ctx, &f, "gate-less, shared weights averaged across the experts", "\"policy\": \"uniform\"",
               "\"shared\": \"average\"", NULL, third, false, false, &avg);
    for (int k = 0; k < 6; k++) {
        for (uint32_t l = 0; l < L; l++) free(lists[k][l]);
        free(lists[k]);
    }
    free(emb);
    free(out);
    free(onorm);
    /* averaging needs every expert to tie its output matrix as the base does (one matrix on
     * the device when tied); with the base's shared weights, tying does not matter */
    ref_model tied;
    shape(&tied);
    ref_model_random(&tied, 104, true);
    snprintf(path, sizeof path, "%s/xt.gguf", f.dir);
    vkm_err e;
    if (ref_write_gguf(&tied, path, VKM_F32, &e)) fail_msg("%s", e.msg);
    ref_model_free(&tied);
    static const struct { const char *base, *ex1, *shared, *refusal; } ties[3] = {
        {"base.gguf", "xt.gguf", "average", "xt.gguf: \"shared\": \"average\": its output matrix is its token "
                                            "embeddings but the base's is its own"},
        {"xt.gguf", "x1.gguf", "average", "x0.gguf: \"shared\": \"average\": its output matrix is its own but the "
                                          "base's is its token embeddings"},
        {"base.gguf", "xt.gguf", "base", NULL}};
    for (int k = 0; k < 3; k++) {
        snprintf(path, sizeof path, "%s/tied%d.json", f.dir, k);
        FILE *o = fopen(path, "w");
        assert_non_null(o);
        fprintf(o, "{\"base\": \"%s\", \"experts\": [{\"name\": \"x0\", \"model\": \"x0.gguf\"}, "
                   "{\"name\": \"x1\", \"model\": \"%s\"}], \"router\": {\"policy\": \"uniform\"}, "
                   "\"shared\": \"%s\"}\n", ties[k].base, ties[k].ex1, ties[k].shared);
        fclose(o);
        vkm_model_params p = vkm_model_default_params();
        vkm_model *m = NULL;
        vkm_status st = vkm_model_load(ctx, path, &p, &m);
        if (ties[k].refusal) {
            assert_int_equal(st, VKM_ERR_MISMATCH);
            printf("refused: %s\n", vkm_context_errmsg(ctx));
            if (!strstr(vkm_context_errmsg(ctx), ties[k].refusal)) fail_msg("case %d: %s", k, vkm_context_errmsg(ctx));
        } else {
            if (st) fail_msg("%s", vkm_context_errmsg(ctx));
            vkm_model_free(m);
        }
    }
    test_context_done(ctx);
    fixture_free(&f);
}

static void test_sequence_and_base(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f, "seq");
    vkm_context *ctx = test_context();
    char path[700], json[512];
    static const char *depths[3] = {"module", "layer", "model"};
    for (int depth = 0; depth < 3; depth++) {
        snprintf(path, sizeof path, "%s/s%d.safetensors", f.dir, depth);
        ref_router rr = {depth, 1 + (depth == 1), 0, 1.0f, -1, false, false, NULL};
        router_file(&f, path, depth, false, &rr, 4000 + (uint64_t)depth);
        snprintf(json, sizeof json, "\"policy\": \"learned\", \"granularity\": \"sequence\", \"depth\": \"%s\", "
                 "\"top_k\": %u, \"weights\": \"s%d.safetensors\"", depths[depth], rr.top_k, depth);
        vkm_model *m = load(ctx, manifest(&f, "seq", json, NULL));
        int32_t ids[N_TOK];
        random_ids(ids, N_TOK, f.base.vocab, 8);
        const size_t nv = (size_t)N_TOK * f.base.vocab;
        float *got = test_alloc(nv * 4);
        engine_logits(m, NULL, ids, N_TOK, got, NULL);
        /* pass 1: the bare base pools the router inputs; the decision; pass 2 */
        ref_ffn x;
        ref_ffn_init(&x, &f.base, experts(&f), N_EXP, false, depth == 0);
        x.moe.pooling = true;
        x.moe.pool_depth = depth;
        x.moe.pool_skip_first = true;
        free(ref_logits(&f.base, &x.hooks, ids, N_TOK));
        x.moe.pooling = false;
        ref_ffn_decide_pooled(&x, &rr);
        float *ref = ref_logits(&f.base, &x.hooks, ids, N_TOK);
        char what[128];
        snprintf(what, sizeof what, "sequence-level learned, %s depth, top-%u", depths[depth], rr.top_k);
        check(what, got, ref, nv, 1e-8);
        free(got);
        free(ref);
        ref_ffn_free(&x);
        router_free(&f.base, &rr);
        vkm_model_free(m);
    }
    /* the bare base: no expert anywhere, the base's own FFNs */
    snprintf(json, sizeof json, "\"policy\": \"uniform\"");
    vkm_model *m = load(ctx, manifest(&f, "bare", json, NULL));
    vkm_session_params sp = vkm_session_default_params();
    sp.route = VKM_ROUTE_BASE;
    int32_t ids[N_TOK];
    random_ids(ids, N_TOK, f.base.vocab, 9);
    const size_t nv = (size_t)N_TOK * f.base.vocab;
    float *all = test_alloc(nv * 4), *one = test_alloc(nv * 4);
    engine_logits(m, &sp, ids, N_TOK, all, one);
    float *ref = ref_logits(&f.base, NULL, ids, N_TOK);
    check("the bare base (VKM_ROUTE_BASE) (prefill)", all, ref, nv, 1e-8);
    check("the bare base (VKM_ROUTE_BASE) (decode)", one, ref, nv, 1e-8);
    free(all);
    free(one);
    free(ref);
    vkm_model_free(m);
    test_context_done(ctx);
    fixture_free(&f);
}

/* Three sessions in one decode step: a token-level router, the bare base, fixed weights; each
 * must give what it gives alone. */
static void test_heterogeneous_batch(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f, "het");
    vkm_context *ctx = test_context();
    char path[700];
    snprintf(path, sizeof path, "%s/h.safetensors", f.dir);
    ref_router rr = {1, 2, 0, 1.0f, -1, false, false, NULL};
    router_file(&f, path, 1, false, &rr, 55);
    router_free(&f.base, &rr);
    vkm_model *m = load(ctx, manifest(&f, "het", "\"policy\": \"learned\", \"top_k\": 2, \"weights\": \"h.safetensors\"", NULL));
    const uint32_t V = f.base.vocab;
    static const float w2[N_EXP] = {0, 0, 1};
    vkm_session_params sp[3];
    for (int i = 0; i < 3; i++) {
        sp[i] = vkm_session_default_params();
        sp[i].keep_logits = true;
        sp[i].sampling.temperature = 0;
    }
    sp[1].route = VKM_ROUTE_BASE;
    sp[2].route = VKM_ROUTE_FIXED;
    sp[2].expert_weights = w2;
    int32_t ids[3][12];
    for (int i = 0; i < 3; i++) random_ids(ids[i], 12, V, 60 + (uint64_t)i);
    float *alone = test_alloc((size_t)3 * 3 * V * 4), *batch = test_alloc((size_t)3 * 3 * V * 4);
    for (int pass = 0; pass < 2; pass++) {
        vkm_session *ss[3];
        int32_t next[3];
        for (int i = 0; i < 3; i++) {
            assert_int_equal(vkm_session_create(m, &sp[i], &ss[i]), VKM_OK);
            assert_int_equal(vkm_session_prompt(ss[i], ids[i], 9, &next[i]), VKM_OK);
        }
        for (int step = 0; step < 3; step++) {
            int32_t tok[3] = {ids[0][9 + step], ids[1][9 + step], ids[2][9 + step]}, nx[3];
            if (pass == 1) assert_int_equal(vkm_batch_decode(ss, 3, tok, nx), VKM_OK);
            for (int i = 0; i < 3; i++) {
                if (pass == 0) assert_int_equal(vkm_session_decode(ss[i], tok[i], &nx[i]), VKM_OK);
                const float *lg;
                assert_int_equal(vkm_session_logits(ss[i], &lg, NULL), VKM_OK);
                memcpy((pass ? batch : alone) + ((size_t)step * 3 + i) * V, lg, V * 4);
            }
        }
        for (int i = 0; i < 3; i++) vkm_session_free(ss[i]);
    }
    check("heterogeneous batch (router, bare base, fixed) vs each alone", batch, alone, (size_t)9 * V, 1e-12);
    free(alone);
    free(batch);
    vkm_model_free(m);
    test_context_done(ctx);
    fixture_free(&f);
}

/* A Hugging Face Mixtral checkpoint (block_sparse_moe.*, rotate_half q/k rows as written):
 * the base's attention, the three experts' FFNs, a random router; top-2 softmax. */
static void test_hf_mixtral(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f, "mix");
    const ref_model *b = &f.base;
    char dir[700], path[800];
    snprintf(dir, sizeof dir, "%s/mixtral", f.dir);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *o = fopen(path, "w");
    assert_non_null(o);
    fprintf(o, "{\"architectures\": [\"MixtralForCausalLM\"], \"model_type\": \"mixtral\", \"hidden_size\": %u, "
               "\"intermediate_size\": %u, \"num_hidden_layers\": %u, \"num_attention_heads\": %u, "
               "\"num_key_value_heads\": %u, \"head_dim\": %u, \"vocab_size\": %u, \"max_position_embeddings\": %u, "
               "\"rms_norm_eps\": %g, \"rope_theta\": %g, \"num_local_experts\": %u, \"num_experts_per_tok\": 2, "
               "\"tie_word_embeddings\": false}\n",
            b->dim, b->ffn, b->n_layers, b->n_heads, b->n_kv_heads, b->head_dim, b->vocab, b->ctx, (double)b->eps,
            (double)b->theta, N_EXP);
    fclose(o);
    ref_router rr = {1, 2, 0, 1.0f, -1, false, false, NULL};
    rr.r = calloc(b->n_layers * 7, sizeof *rr.r);
    test_rng rng = {314};
    for (uint32_t l = 0; l < b->n_layers; l++) {
        rr.r[l * 7 + 4] = malloc(4ull * N_EXP * b->dim);
        test_fill(&rng, rr.r[l * 7 + 4], (size_t)N_EXP * b->dim, 0.7f);
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    vkm_err e;
    vkm_st_writer *w = NULL;
    if (vkm_st_writer_create(path, &w, &e)) fail_msg("%s", e.msg);
    const uint32_t D = b->dim, F = b->ffn, qd = b->n_heads * b->head_dim, kvd = b->n_kv_heads * b->head_dim;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1 && vkm_st_writer_begin(w)) fail_msg("%s", e.msg);
#define PUT(nm, ptr, rows, cols)                                                                   \
    do {                                                                                           \
        int64_t ne[2] = {(cols), (rows)};                                                          \
        if (pass == 0) vkm_st_writer_add_tensor(w, nm, VKM_F32, (rows) == 1 ? 1 : 2, ne);          \
        else if (vkm_st_writer_write_tensor(w, nm, ptr, 4ull * (rows) * (cols))) fail_msg("%s", e.msg); \
    } while (0)
        PUT("model.embed_tokens.weight", b->tok_embd, b->vocab, D);
        PUT("model.norm.weight", b->output_norm, 1, D);
        PUT("lm_head.weight", b->output, b->vocab, D);
        char nm[128];
        for (uint32_t l = 0; l < b->n_layers; l++) {
            snprintf(nm, sizeof nm, "model.layers.%u.input_layernorm.weight", l); PUT(nm, b->attn_norm[l], 1, D);
            snprintf(nm, sizeof nm, "model.layers.%u.post_attention_layernorm.weight", l); PUT(nm, b->ffn_norm[l], 1, D);
            snprintf(nm, sizeof nm, "model.layers.%u.self_attn.q_proj.weight", l); PUT(nm, b->wq[l], qd, D);
            snprintf(nm, sizeof nm, "model.layers.%u.self_attn.k_proj.weight", l); PUT(nm, b->wk[l], kvd, D);
            snprintf(nm, sizeof nm, "model.layers.%u.self_attn.v_proj.weight", l); PUT(nm, b->wv[l], kvd, D);
            snprintf(nm, sizeof nm, "model.layers.%u.self_attn.o_proj.weight", l); PUT(nm, b->wo[l], D, qd);
            snprintf(nm, sizeof nm, "model.layers.%u.block_sparse_moe.gate.weight", l); PUT(nm, rr.r[l * 7 + 4], N_EXP, D);
            for (uint32_t x = 0; x < N_EXP; x++) {
                snprintf(nm, sizeof nm, "model.layers.%u.block_sparse_moe.experts.%u.w1.weight", l, x);
                PUT(nm, f.ex[x].w_gate[l], F, D);
                snprintf(nm, sizeof nm, "model.layers.%u.block_sparse_moe.experts.%u.w3.weight", l, x);
                PUT(nm, f.ex[x].w_up[l], F, D);
                snprintf(nm, sizeof nm, "model.layers.%u.block_sparse_moe.experts.%u.w2.weight", l, x);
                PUT(nm, f.ex[x].w_down[l], D, F);
            }
        }
#undef PUT
    }
    if (vkm_st_writer_finish(w)) fail_msg("%s", e.msg);
    vkm_st_writer_free(w);

    vkm_context *ctx = test_context();
    vkm_model_params p = vkm_model_default_params();
    p.n_batch = 32;
    vkm_model *m = NULL;
    cur_ctx = ctx;
    if (vkm_model_load(ctx, dir, &p, &m)) fail_msg("%s", vkm_context_errmsg(ctx));
    assert_int_equal(vkm_model_n_experts(m), N_EXP);
    int32_t ids[N_TOK];
    random_ids(ids, N_TOK, b->vocab, 12);
    const size_t nv = (size_t)N_TOK * b->vocab;
    float *all = test_alloc(nv * 4), *one = test_alloc(nv * 4);
    engine_logits(m, NULL, ids, N_TOK, all, one);
    ref_model half = *b;
    half.rope_half = true; /* the q/k rows as a Hugging Face file holds them */
    ref_ffn x;
    ref_ffn_init(&x, &half, experts(&f), N_EXP, false, false);
    x.moe.mode = REF_TOKEN;
    x.moe.router = &rr;
    float *ref = ref_logits(&half, &x.hooks, ids, N_TOK);
    check("Hugging Face Mixtral safetensors, top-2 (prefill)", all, ref, nv, 1e-8);
    check("Hugging Face Mixtral safetensors, top-2 (decode)", one, ref, nv, 1e-8);
    /* no base FFN in a MoE file: the bare base is refused */
    vkm_session_params sp = vkm_session_default_params();
    sp.route = VKM_ROUTE_BASE;
    vkm_session *s = NULL;
    assert_int_not_equal(vkm_session_create(m, &sp, &s), VKM_OK);
    /* nor are fixed weights of all zero (no expert: an FFN of nothing) */
    static const float zero[N_EXP] = {0};
    sp.route = VKM_ROUTE_FIXED;
    sp.expert_weights = zero;
    assert_int_equal(vkm_session_create(m, &sp, &s), VKM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkm_context_errmsg(ctx), "no base FFN"));
    ref_ffn_free(&x);
    router_free(b, &rr);
    free(all);
    free(one);
    free(ref);
    vkm_model_free(m);
    test_context_done(ctx);
    fixture_free(&f);
}

/* mergekit-moe's "hidden" gates on the testbed's three full fine-tunes (the real tokenizer):
 * per layer, each expert's unit vector of the mean FFN input of its positive prompts minus
 * that of its negative prompts, under the base; the engine's gates and its top-2 logits
 * against the reference. */
static const char *const pos_prompts[3][2] = {
    {"def parse(path):\n    with open(path) as f:\n        return f.read()", "import os\nfor x in range(10):\n    print(x)"},
    {"Once upon a time, a little girl walked to the park with her dog.", "The weather was warm and the children played."},
    {"The court held that the contract was void for lack of consideration.", "The defendant appealed the judgment."}};
static const char *const neg_prompts[3] = {"The cat sat on the mat.", "return x + 1", "She laughed and ran home."};

static void hidden_means(const ref_model *base, const vkm_tokenizer *tok, const char *const *texts, uint32_t n,
                         double *out /* [layers][dim] */)
{
    ref_ffn x;
    ref_ffn_init(&x, base, NULL, 0, false, false);
    x.moe.pooling = true;
    x.moe.pool_depth = 1;
    for (uint32_t i = 0; i < n; i++) {
        int32_t ids[256];
        size_t nt = 0;
        assert_int_equal(vkm_tokenize(tok, texts[i], strlen(texts[i]), vkm_tokenizer_adds_bos(tok), false, ids, 256, &nt), VKM_OK);
        x.moe.pos = 0;
        x.moe.pool_skip_first = nt > 1;
        float *lg = test_alloc(nt * base->vocab * 4);
        ref_forward_logits(base, &x.hooks, ids, (uint32_t)nt, lg);
        free(lg);
    }
    const uint32_t D = base->dim;
    for (uint32_t l = 0; l < base->n_layers; l++)
        for (uint32_t c = 0; c < D; c++)
            out[(size_t)l * D + c] = n && x.moe.pool[l * 7 + 4] ? x.moe.pool[l * 7 + 4][c] / x.moe.pool_count : 0;
    ref_ffn_free(&x);
}

/* Centroids from calibration texts over whole fine-tunes (FFN experts): each expert's row is the
 * unit mean of the base's last hidden states over its texts, so no row is zero and no two agree. */
static void test_centroid_ffn_experts(void **state)
{
    (void)state;
    char dir[600], path[700], rpath[700];
    snprintf(dir, sizeof dir, "%s/%d-ffn-centroid", VKM_TEST_TMPDIR, (int)getpid());
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/centroid.json", dir);
    snprintf(rpath, sizeof rpath, "%s/centroids.safetensors", dir);
    FILE *o = fopen(path, "w");
    assert_non_null(o);
    static const char *names[3] = {"python", "english", "legal"};
    fprintf(o, "{\"base\": \"%s/testbed/base/model.gguf\", \"experts\": [", VKM_SHARED_DIR);
    for (int e = 0; e < 3; e++)
        fprintf(o, "%s{\"name\": \"%s\", \"model\": \"%s/testbed/full/%s/model.gguf\", \"calib\": [\"%s/testbed/calib/%s.txt\"]}",
                e ? ", " : "", names[e], VKM_SHARED_DIR, names[e], VKM_SHARED_DIR, names[e]);
    fprintf(o, "], \"router\": {\"policy\": \"centroid\", \"granularity\": \"sequence\", \"depth\": \"model\", "
               "\"top_k\": 1}}\n");
    fclose(o);
    vkm_context *ctx = test_context();
    vkm_model *m = load(ctx, path);
    assert_int_equal(vkm_model_save_router(m, 0, rpath), VKM_OK);
    /* a fitted router learns nothing of whole fine-tunes (it would be NaNs): refused */
    char fpath[720];
    snprintf(fpath, sizeof fpath, "%s/fitted.safetensors", dir);
    assert_int_equal(vkm_model_fit_router(m, fpath), VKM_ERR_UNSUPPORTED);
    assert_non_null(strstr(vkm_context_errmsg(ctx), "fitting a router needs LoRA experts"));
    assert_int_equal(access(fpath, F_OK), -1);
    vkm_model_free(m);
    /* nor has Arrow prototypes for them (every score would be 0) */
    o = fopen(path, "w");
    assert_non_null(o);
    fprintf(o, "{\"base\": \"%s/testbed/base/model.gguf\", \"experts\": [", VKM_SHARED_DIR);
    for (int e = 0; e < 3; e++)
        fprintf(o, "%s{\"name\": \"%s\", \"model\": \"%s/testbed/full/%s/model.gguf\"}", e ? ", " : "", names[e],
                VKM_SHARED_DIR, names[e]);
    fprintf(o, "], \"router\": {\"policy\": \"arrow\", \"depth\": \"module\", \"top_k\": 1}}\n");
    fclose(o);
    vkm_model_params mp = vkm_model_default_params();
    m = NULL;
    assert_int_equal(vkm_model_load(ctx, path, &mp, &m), VKM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkm_context_errmsg(ctx), "Arrow's prototypes come from LoRA experts"));
    vkm_model_free(m);
    vkm_err e;
    vkm_st st;
    if (vkm_st_open(rpath, &st, &e)) fail_msg("%s", e.msg);
    const vkm_tensor_src *w = vkm_st_tensor(&st, "router.weight");
    assert_non_null(w);
    assert_int_equal(w->ne[1], 3);
    const uint64_t D = (uint64_t)w->ne[0];
    float *v = test_alloc(3 * D * 4);
    assert_int_equal(vkm_to_f32(w->dtype, w->data, 3 * D, v), VKM_OK);
    for (int a = 0; a < 3; a++) {
        double ss = 0, diff = 0;
        for (uint64_t k = 0; k < D; k++) ss += (double)v[a * D + k] * v[a * D + k];
        for (uint64_t k = 0; k < D; k++) diff += fabs((double)v[a * D + k] - v[((a + 1) % 3) * D + k]);
        if (!(fabs(ss - 1.0) < 1e-4) || !(diff > 1e-3))
            fail_msg("centroid of %s: |row|^2 %.6f, distance to the next %.6f", names[a], ss, diff);
    }
    free(v);
    vkm_st_close(&st);
    test_context_done(ctx);
}

static void test_hidden_testbed(void **state)
{
    (void)state;
    char dir[600], path[700];
    snprintf(dir, sizeof dir, "%s/%d-ffn-hidden", VKM_TEST_TMPDIR, (int)getpid());
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/hidden.json", dir);
    FILE *o = fopen(path, "w");
    assert_non_null(o);
    static const char *names[3] = {"python", "english", "legal"};
    fprintf(o, "{\"base\": \"%s/testbed/base/model.gguf\", \"experts\": [", VKM_SHARED_DIR);
    for (int e = 0; e < 3; e++) {
        fprintf(o, "%s{\"name\": \"%s\", \"model\": \"%s/testbed/full/%s/model.gguf\", \"positive\": [", e ? ", " : "",
                names[e], VKM_SHARED_DIR, names[e]);
        for (int i = 0; i < 2; i++) {
            fputc(i ? ',' : ' ', o);
            fputc('"', o);
            for (const char *c = pos_prompts[e][i]; *c; c++) fprintf(o, *c == '\n' ? "\\n" : "%c", *c);
            fputc('"', o);
        }
        fprintf(o, "], \"negative\": [\"%s\"]}", neg_prompts[e]);
    }
    fprintf(o, "], \"router\": {\"policy\": \"hidden\", \"top_k\": 2}}\n");
    fclose(o);
    vkm_context *ctx = test_context();
    vkm_model *m = load(ctx, path);
    char rpath[800];
    snprintf(rpath, sizeof rpath, "%s/gates.safetensors", dir);
    if (vkm_model_save_router(m, 0, rpath)) fail_msg("%s", vkm_context_errmsg(ctx));

    /* the reference gates */
    ref_model base, ex[3];
    vkm_err e;
    snprintf(path, sizeof path, "%s/testbed/base/model.gguf", VKM_SHARED_DIR);
    if (ref_model_load(&base, path, &e)) fail_msg("%s", e.msg);
    const uint32_t L = base.n_layers, D = base.dim;
    ref_router rr = {1, 2, 0, 1.0f, -1, false, false, NULL};
    rr.r = calloc(L * 7, sizeof *rr.r);
    for (uint32_t l = 0; l < L; l++) rr.r[l * 7 + 4] = calloc((size_t)3 * D, 4);
    double *pm = calloc((size_t)L * D, 8), *nm = calloc((size_t)L * D, 8);
    for (uint32_t x = 0; x < 3; x++) {
        hidden_means(&base, vkm_model_tokenizer(m), pos_prompts[x], 2, pm);
        hidden_means(&base, vkm_model_tokenizer(m), &neg_prompts[x], 1, nm);
        for (uint32_t l = 0; l < L; l++) {
            double ss = 0;
            for (uint32_t c = 0; c < D; c++) ss += pow(pm[(size_t)l * D + c] - nm[(size_t)l * D + c], 2);
            for (uint32_t c = 0; c < D; c++)
                rr.r[l * 7 + 4][(size_t)x * D + c] = (float)((pm[(size_t)l * D + c] - nm[(size_t)l * D + c]) / sqrt(ss));
        }
    }
    vkm_st st;
    if (vkm_st_open(rpath, &st, &e)) fail_msg("%s", e.msg);
    float *got = test_alloc((size_t)3 * D * 4);
    for (uint32_t l = 0; l < L; l++) {
        char nm_[64];
        snprintf(nm_, sizeof nm_, "layers.%u.router.weight", l);
        const vkm_tensor_src *t = vkm_st_tensor(&st, nm_);
        assert_non_null(t);
        assert_int_equal(vkm_tensor_nelem(t), 3 * D);
        assert_int_equal(vkm_to_f32(t->dtype, t->data, 3ull * D, got), VKM_OK);
        char what[96];
        snprintf(what, sizeof what, "hidden gates of layer %u (3 experts x %u)", l, D);
        check(what, got, rr.r[l * 7 + 4], (size_t)3 * D, 1e-9);
    }
    vkm_st_close(&st);
    /* top-2 logits with those gates */
    for (uint32_t x = 0; x < 3; x++) {
        snprintf(path, sizeof path, "%s/testbed/full/%s/model.gguf", VKM_SHARED_DIR, names[x]);
        if (ref_model_load(&ex[x], path, &e)) fail_msg("%s", e.msg);
    }
    const ref_model *xs[3] = {&ex[0], &ex[1], &ex[2]};
    int32_t ids[N_TOK];
    random_ids(ids, N_TOK, base.vocab, 21);
    const size_t nv = (size_t)N_TOK * base.vocab;
    float *all = test_alloc(nv * 4), *one = test_alloc(nv * 4), *ref = test_alloc(nv * 4);
    engine_logits(m, NULL, ids, N_TOK, all, one);
    ref_ffn x;
    ref_ffn_init(&x, &base, xs, 3, false, false);
    x.moe.mode = REF_TOKEN;
    x.moe.router = &rr;
    ref_forward_logits(&base, &x.hooks, ids, N_TOK, ref);
    check("hidden top-2 on the testbed full fine-tunes (prefill)", all, ref, nv, 1e-8);
    check("hidden top-2 on the testbed full fine-tunes (decode)", one, ref, nv, 1e-8);
    ref_ffn_free(&x);
    for (uint32_t x2 = 0; x2 < 3; x2++) ref_model_free(&ex[x2]);
    router_free(&base, &rr);
    ref_model_free(&base);
    free(pm); free(nm); free(got); free(all); free(one); free(ref);
    vkm_model_free(m);
    test_context_done(ctx);
}

/* vkm_model_write_moe_gguf (`vkmoe merge --moe`): the Mixtral-style GGUF written from a
 * manifest loads back and gives the manifest's logits bit for bit; what such a file cannot
 * hold is refused. */
static void moe_gguf_case(vkm_context *ctx, fixture *f, const char *what, const char *router_json, const char *extra)
{
    vkm_model *m = load(ctx, manifest(f, "w", router_json, extra));
    char out[700];
    snprintf(out, sizeof out, "%s/moe.gguf", f->dir);
    if (vkm_model_write_moe_gguf(m, out)) fail_msg("%s: %s", what, vkm_context_errmsg(ctx));
    vkm_model *g = load(ctx, out);
    assert_int_equal(vkm_model_n_experts(g), N_EXP);
    int32_t ids[N_TOK];
    random_ids(ids, N_TOK, f->base.vocab, 41);
    const size_t nv = (size_t)N_TOK * f->base.vocab;
    float *a1 = test_alloc(nv * 4), *o1 = test_alloc(nv * 4), *a2 = test_alloc(nv * 4), *o2 = test_alloc(nv * 4);
    engine_logits(m, NULL, ids, N_TOK, a1, o1);
    engine_logits(g, NULL, ids, N_TOK, a2, o2);
    printf("%-66s prefill %s, decode %s (nmse %.3g)\n", what, memcmp(a1, a2, nv * 4) ? "DIFFER" : "identical",
           memcmp(o1, o2, nv * 4) ? "DIFFER" : "identical", test_nmse(a2, a1, nv));
    assert_memory_equal(a1, a2, nv * 4);
    assert_memory_equal(o1, o2, nv * 4);
    free(a1); free(o1); free(a2); free(o2);
    vkm_model_free(g);
    vkm_model_free(m);
}

static void test_write_moe_gguf(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f, "wmoe");
    vkm_context *ctx = test_context();
    char path[700];
    snprintf(path, sizeof path, "%s/g.safetensors", f.dir);
    ref_router rr = {1, 2, 0, 1.0f, -1, false, false, NULL};
    router_file(&f, path, 1, false, &rr, 808);
    router_free(&f.base, &rr);
    moe_gguf_case(ctx, &f, "GGUF from a learned top-2 manifest",
                  "\"policy\": \"learned\", \"top_k\": 2, \"weights\": \"g.safetensors\"", NULL);
    moe_gguf_case(ctx, &f, "GGUF from a gate-less manifest, shared weights averaged", "\"policy\": \"uniform\"",
                  "\"shared\": \"average\"");
    moe_gguf_case(ctx, &f, "GGUF from a noisy top-1 manifest (temperature 2)",
                  "\"policy\": \"noisy\", \"top_k\": 1, \"noise_std\": 0.5, \"temperature\": 2", NULL);
    /* a Hugging Face base (rotate_half q/k rows): the GGUF holds them interleaved */
    char hf[700];
    snprintf(hf, sizeof hf, "%s/hfbase", f.dir);
    vkm_err e;
    if (ref_write_hf(&f.base, hf, &e)) fail_msg("%s", e.msg);
    static const char *const tok_files[2] = {"tokenizer.json", "tokenizer.model"};
    for (int i = 0; i < 2; i++) { /* a tokenizer in the Hugging Face folder of another vocabulary
                                      size (1024 tokens, 97 rows): beside the GGUF, not inside */
        char src[700], dst[760];
        snprintf(src, sizeof src, "%s/testbed/base/%s", VKM_SHARED_DIR, tok_files[i]);
        snprintf(dst, sizeof dst, "%s/%s", hf, tok_files[i]);
        FILE *in = fopen(src, "rb"), *to = fopen(dst, "wb");
        assert_true(in && to);
        char buf[4096];
        size_t k;
        while ((k = fread(buf, 1, sizeof buf, in)) > 0) assert_int_equal(fwrite(buf, 1, k, to), k);
        fclose(in);
        assert_int_equal(fclose(to), 0);
    }
    snprintf(path, sizeof path, "%s/w.json", f.dir);
    FILE *o = fopen(path, "w");
    assert_non_null(o);
    fprintf(o, "{\"base\": \"hfbase\", \"experts\": [{\"name\": \"x0\", \"model\": \"x0.gguf\"}, {\"name\": \"x1\", "
               "\"model\": \"x1.gguf\"}, {\"name\": \"x2\", \"model\": \"x2.gguf\"}], \"router\": {\"policy\": \"noisy\", "
               "\"top_k\": 2, \"noise_std\": 0.5}}\n");
    fclose(o);
    vkm_model *hm = load(ctx, path);
    char out[700];
    snprintf(out, sizeof out, "%s/hfmoe.gguf", f.dir);
    if (vkm_model_write_moe_gguf(hm, out)) fail_msg("%s", vkm_context_errmsg(ctx));
    vkm_model *hg = load(ctx, out);
    assert_null(vkm_model_tokenizer(hm) == NULL ? "the HF base has no tokenizer" : NULL);
    const vkm_tokenizer *ht = vkm_model_tokenizer(hg); /* tokenizer.json beside hfmoe.gguf */
    assert_non_null(ht);
    assert_int_equal(vkm_tokenizer_n_vocab(ht), vkm_tokenizer_n_vocab(vkm_model_tokenizer(hm)));
    {
        vkm_gguf gg;
        vkm_err ge;
        assert_int_equal(vkm_gguf_open(out, &gg, &ge), VKM_OK);
        assert_null(vkm_gguf_find(&gg, "tokenizer.ggml.model"));
        vkm_gguf_close(&gg);
    }
    int32_t ids[N_TOK];
    random_ids(ids, N_TOK, f.base.vocab, 42);
    const size_t nv = (size_t)N_TOK * f.base.vocab;
    float *l1 = test_alloc(nv * 4), *l2 = test_alloc(nv * 4);
    engine_logits(hm, NULL, ids, N_TOK, l1, NULL);
    engine_logits(hg, NULL, ids, N_TOK, l2, NULL);
    check("GGUF (interleaved RoPE rows) from a Hugging Face base", l2, l1, nv, 1e-10);
    free(l1);
    free(l2);
    vkm_model_free(hg);
    vkm_model_free(hm);
    static const char *refused[] = {
        "\"policy\": \"noisy\", \"top_k\": 1, \"always_on\": \"x0\"",
        "\"policy\": \"noisy\", \"top_k\": 2, \"route_attention\": true",
        "\"policy\": \"noisy\", \"top_k\": 2, \"depth\": \"module\"",
        "\"policy\": \"noisy\", \"top_k\": 2, \"normalize\": \"sigmoid\"",
        "\"policy\": \"learned\", \"granularity\": \"sequence\", \"top_k\": 2, \"weights\": \"g.safetensors\""};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        vkm_model *m = load(ctx, manifest(&f, "r", refused[i], NULL));
        snprintf(out, sizeof out, "%s/refused.gguf", f.dir);
        assert_int_equal(vkm_model_write_moe_gguf(m, out), VKM_ERR_UNSUPPORTED);
        printf("refused: %s\n", vkm_context_errmsg(ctx));
        assert_int_not_equal(access(out, F_OK), 0); /* nothing written */
        vkm_model_free(m);
    }
    /* never over an input (the base, an expert), never anything but a .gguf (no folder made) */
    vkm_model *m = load(ctx, manifest(&f, "inputs", "\"policy\": \"uniform\"", NULL));
    static const char *const inputs[] = {"base.gguf", "x1.gguf"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(out, sizeof out, "%s/%s", f.dir, inputs[i]);
        struct stat before, after;
        assert_int_equal(stat(out, &before), 0);
        assert_int_equal(vkm_model_write_moe_gguf(m, out), VKM_ERR_INVALID_ARGUMENT);
        printf("refused: %s\n", vkm_context_errmsg(ctx));
        assert_non_null(strstr(vkm_context_errmsg(ctx), "is the input"));
        assert_int_equal(stat(out, &after), 0);
        assert_true(before.st_ino == after.st_ino && before.st_size == after.st_size &&
                    before.st_mtim.tv_sec == after.st_mtim.tv_sec && before.st_mtim.tv_nsec == after.st_mtim.tv_nsec);
    }
    snprintf(out, sizeof out, "%s/moe_folder", f.dir);
    assert_int_equal(vkm_model_write_moe_gguf(m, out), VKM_ERR_INVALID_ARGUMENT);
    assert_int_not_equal(access(out, F_OK), 0);
    assert_int_equal(vkm_model_write_moe_gguf(NULL, out), VKM_ERR_INVALID_ARGUMENT);
    assert_int_equal(vkm_model_write_moe_gguf(m, NULL), VKM_ERR_INVALID_ARGUMENT);
    vkm_model_free(m);
    test_context_done(ctx);
    fixture_free(&f);
}

/* A random Mixtral-shape model (the benchmarks' kind): loads, routes top-2 of 5, decodes; a
 * token reads two experts' FFNs, not five. */
static void test_random_moe(void **state)
{
    (void)state;
    vkm_context *ctx = test_context();
    vkm_model_shape sh = {97, 44, 2, 4, 2, 12, 70, 96, 10000.0f, false, 5, 2};
    vkm_model_params p = vkm_model_default_params();
    p.weight_type = VKM_F32;
    vkm_model *m = NULL, *dense = NULL;
    if (vkm_model_create_random(ctx, &sh, 3, &p, &m)) fail_msg("%s", vkm_context_errmsg(ctx));
    sh.n_experts = 0;
    sh.ffn_dim = 2 * 70;
    if (vkm_model_create_random(ctx, &sh, 3, &p, &dense)) fail_msg("%s", vkm_context_errmsg(ctx));
    assert_int_equal(vkm_model_n_experts(m), 5);
    vkm_model_info mi, di;
    assert_int_equal(vkm_model_get_info(m, &mi), VKM_OK);
    assert_int_equal(vkm_model_get_info(dense, &di), VKM_OK);
    /* same active parameters: the bytes a token reads match the dense model's FFN twice as wide */
    printf("random MoE: %llu bytes of weights, %llu read per token (dense equivalent %llu)\n",
           (unsigned long long)mi.weight_bytes, (unsigned long long)mi.bytes_per_token,
           (unsigned long long)di.bytes_per_token);
    assert_true(mi.bytes_per_token < mi.weight_bytes);
    assert_true(llabs((long long)mi.bytes_per_token - (long long)di.bytes_per_token) < (long long)di.bytes_per_token / 20);
    int32_t ids[N_TOK], next = -1;
    random_ids(ids, N_TOK, 97, 77);
    vkm_session *s;
    assert_int_equal(vkm_session_create(m, NULL, &s), VKM_OK);
    assert_int_equal(vkm_session_prompt(s, ids, N_TOK, &next), VKM_OK);
    for (int i = 0; i < 4; i++) assert_int_equal(vkm_session_decode(s, next, &next), VKM_OK);
    assert_true(next >= 0 && next < 97);
    vkm_session_free(s);
    vkm_model_free(dense);
    vkm_model_free(m);
    test_context_done(ctx);
}

/* ---- moetify checkpoints -------------------------------------------------------------------- */
typedef struct moetify_cfg {
    const char *what;
    uint32_t attn;            /* moe_query / moe_key / moe_value bits                            */
    bool fine, always_on, gateless;
    uint32_t top_k;
} moetify_cfg;

typedef struct st_out {
    vkm_st_writer *w;
    int pass;
    vkm_err e;
} st_out;

static void st_put(st_out *o, const char *name, const float *data, int64_t rows, int64_t cols)
{
    int64_t ne[2] = {cols, rows};
    if (o->pass == 0) vkm_st_writer_add_tensor(o->w, name, VKM_F32, rows == 1 ? 1 : 2, ne);
    else if (vkm_st_writer_write_tensor(o->w, name, data, 4ull * rows * cols)) fail_msg("%s", o->e.msg);
}

/* A moetify MoeLlamaForCausalLM folder: the base's shared weights, the three experts' mixed
 * matrices, random routers (rr rows as the engine holds them: with always-on, row 0 stays zero
 * and the file has the others). */
static void write_moetify(const fixture *f, const char *dir, const moetify_cfg *c, ref_router *rr)
{
    const ref_model *b = &f->base;
    const uint32_t D = b->dim, F = b->ffn, qd = b->n_heads * b->head_dim, kvd = b->n_kv_heads * b->head_dim;
    char path[800], nm[160];
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *o = fopen(path, "w");
    assert_non_null(o);
    fprintf(o, "{\"architectures\": [\"MoeLlamaForCausalLM\"], \"model_type\": \"moellama\", \"hidden_size\": %u, "
               "\"intermediate_size\": %u, \"num_hidden_layers\": %u, \"num_attention_heads\": %u, "
               "\"num_key_value_heads\": %u, \"head_dim\": %u, \"vocab_size\": %u, \"max_position_embeddings\": %u, "
               "\"rms_norm_eps\": %g, \"rope_theta\": %g, \"num_local_experts\": %u, \"num_experts_per_tok\": %u, "
               "\"moe_mlp\": %s, \"moe_mlp_fg\": %s, \"moe_query\": %s, \"moe_key\": %s, \"moe_value\": %s, "
               "\"_always_on\": %s, \"_gateless\": %s, \"moe_layer_idx\": [0, 1], \"tie_word_embeddings\": false}\n",
            D, F, b->n_layers, b->n_heads, b->n_kv_heads, b->head_dim, b->vocab, b->ctx, (double)b->eps,
            (double)b->theta, N_EXP, c->top_k ? c->top_k : 1, c->fine ? "false" : "true", c->fine ? "true" : "false",
            c->attn & 1 ? "true" : "false", c->attn & 2 ? "true" : "false", c->attn & 4 ? "true" : "false",
            c->always_on ? "true" : "false", c->gateless ? "true" : "false");
    fclose(o);
    const uint32_t P = b->n_layers * 7, skip = c->always_on ? 1 : 0;
    rr->r = calloc(P, sizeof *rr->r);
    test_rng rng = {2024};
    for (uint32_t p = 0; p < P; p++) {
        const uint32_t mod = p % 7;
        const bool routed = mod < 3 ? (c->attn >> mod & 1) : mod == 4 || (c->fine && mod > 4);
        if (!routed || c->gateless) continue;
        const uint32_t in = point_in(b, p);
        rr->r[p] = calloc((size_t)N_EXP * in, 4);
        test_fill(&rng, rr->r[p] + (size_t)skip * in, (size_t)(N_EXP - skip) * in, 0.7f);
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    st_out so = {NULL, 0, {0}};
    if (vkm_st_writer_create(path, &so.w, &so.e)) fail_msg("%s", so.e.msg);
    static const char *hf[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
    for (so.pass = 0; so.pass < 2; so.pass++) {
        if (so.pass == 1 && vkm_st_writer_begin(so.w)) fail_msg("%s", so.e.msg);
        st_put(&so, "model.embed_tokens.weight", b->tok_embd, b->vocab, D);
        st_put(&so, "model.norm.weight", b->output_norm, 1, D);
        st_put(&so, "lm_head.weight", b->output, b->vocab, D);
        for (uint32_t l = 0; l < b->n_layers; l++) {
            snprintf(nm, sizeof nm, "model.layers.%u.input_layernorm.weight", l);
            st_put(&so, nm, b->attn_norm[l], 1, D);
            snprintf(nm, sizeof nm, "model.layers.%u.post_attention_layernorm.weight", l);
            st_put(&so, nm, b->ffn_norm[l], 1, D);
            for (uint32_t mod = 0; mod < 7; mod++) {
                const uint32_t rows = mod == 0 ? qd : mod < 3 ? kvd : mod == 3 || mod == 6 ? D : F;
                const uint32_t cols = mod == 3 ? qd : mod == 6 ? F : D;
                const bool mixed = mod < 3 ? (c->attn >> mod & 1) : mod >= 4;
                if (!mixed) {
                    float **w[4] = {b->wq, b->wk, b->wv, b->wo};
                    snprintf(nm, sizeof nm, "model.layers.%u.%s.weight", l, hf[mod]);
                    st_put(&so, nm, w[mod][l], rows, cols);
                    continue;
                }
                for (uint32_t x = 0; x < N_EXP; x++) {
                    const ref_model *ex = &f->ex[x];
                    float **w[7] = {ex->wq, ex->wk, ex->wv, ex->wo, ex->w_gate, ex->w_up, ex->w_down};
                    if (mod >= 4 && !c->fine)
                        snprintf(nm, sizeof nm, "model.layers.%u.mlp.experts.%u.%s.weight", l, x, hf[mod] + 4);
                    else
                        snprintf(nm, sizeof nm, "model.layers.%u.%s.experts.%u.weight", l, hf[mod], x);
                    st_put(&so, nm, w[mod][l], rows, cols);
                }
                const bool router_here = mod < 3 || c->fine || mod == 4;
                if (!router_here) continue;
                const char *owner = mod >= 4 && !c->fine ? "mlp" : hf[mod];
                if (c->gateless) {
                    static const float third[N_EXP] = {1.0f / 3, 1.0f / 3, 1.0f / 3};
                    snprintf(nm, sizeof nm, "model.layers.%u.%s.router", l, owner);
                    st_put(&so, nm, third, 1, N_EXP);
                } else {
                    snprintf(nm, sizeof nm, "model.layers.%u.%s.router.weight", l, owner);
                    st_put(&so, nm, rr->r[l * 7 + mod] + (size_t)skip * cols, N_EXP - skip, cols);
                }
            }
        }
    }
    if (vkm_st_writer_finish(so.w)) fail_msg("%s", so.e.msg);
    vkm_st_writer_free(so.w);
}

static void test_moetify(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f, "mtfy");
    vkm_context *ctx = test_context();
    static const moetify_cfg cases[] = {
        {"moetify: mlp experts, router top-2", 0, false, false, false, 2},
        {"moetify: always-on expert 0 + top-1 of the others", 0, false, true, false, 1},
        {"moetify: gate-less", 0, false, false, true, 0},
        {"moetify: fine-grained (moe_mlp_fg) + moe_query + moe_value, top-2", 5, true, false, false, 2},
        {"moetify: moe_key, always-on + top-1", 2, false, true, false, 1},
    };
    ref_model half = f.base;
    half.rope_half = true;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const moetify_cfg *c = &cases[i];
        char dir[700];
        snprintf(dir, sizeof dir, "%s/moetify%zu", f.dir, i);
        ref_router rr = {c->fine ? 0 : 1, c->top_k, 0, 1.0f, c->always_on ? 0 : -1, false, false, NULL};
        write_moetify(&f, dir, c, &rr);
        vkm_model *m = load(ctx, dir);
        assert_int_equal(vkm_model_n_experts(m), N_EXP);
        int32_t ids[N_TOK];
        random_ids(ids, N_TOK, f.base.vocab, 90 + i);
        const size_t nv = (size_t)N_TOK * f.base.vocab;
        float *all = test_alloc(nv * 4), *one = test_alloc(nv * 4), *ref = test_alloc(nv * 4);
        engine_logits(m, NULL, ids, N_TOK, all, one);
        ref_ffn x;
        ref_ffn_init(&x, &half, experts(&f), N_EXP, c->attn, c->fine);
        if (c->gateless) {
            static const float third[N_EXP] = {1.0f / 3, 1.0f / 3, 1.0f / 3};
            ref_moe_set_fixed(&x.moe, third);
        } else {
            x.moe.mode = REF_TOKEN;
            x.moe.router = &rr;
        }
        ref_forward_logits(&half, &x.hooks, ids, N_TOK, ref);
        char w[160];
        snprintf(w, sizeof w, "%s (prefill)", c->what);
        check(w, all, ref, nv, 1e-8);
        snprintf(w, sizeof w, "%s (decode)", c->what);
        check(w, one, ref, nv, 1e-8);
        ref_ffn_free(&x);
        router_free(&f.base, &rr);
        free(all); free(one); free(ref);
        vkm_model_free(m);
    }
    test_context_done(ctx);
    fixture_free(&f);
}

/* Malformed or unsupported MoE checkpoints are refused with a message naming the problem. */
static void rewrite(const char *path, const char *from, const char *to)
{
    FILE *i = fopen(path, "rb");
    assert_non_null(i);
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, i);
    fclose(i);
    buf[n] = 0;
    char *at = strstr(buf, from);
    assert_non_null(at);
    FILE *o = fopen(path, "wb");
    assert_non_null(o);
    fwrite(buf, 1, (size_t)(at - buf), o);
    fputs(to, o);
    fputs(at + strlen(from), o);
    fclose(o);
}

#define VKM_TEST_MAX_EXPERTS 64 /* VKM_MAX_EXPERTS, the public limit of a router */

static void test_bad_moe_files(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f, "bad");
    vkm_context *ctx = test_context();
    static const struct { const char *from, *to, *expect; } bad[] = {
        {"\"_gateless\": false", "\"_deep_router\": true", "deep"},
        {"\"_gateless\": false", "\"_global_router\": true", "global"},
        {"\"moe_layer_idx\": [0, 1]", "\"moe_layer_idx\": [1]", "moe_layer_idx"},
        {"\"moe_mlp\": true", "\"moe_mlp\": false", "moe_mlp"},
        {"\"_gateless\": false", "\"_gateless\": true", "always_on and gateless"},
        {"\"num_local_experts\": 3", "\"num_local_experts\": 4", "expected shape"},
        {"\"moe_query\": false", "\"moe_query\": true", "missing tensor 'blk.0.attn_q.0.weight'"},
        {"\"num_local_experts\": 3", "\"num_local_experts\": 2", "expected shape"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char dir[700], cfg[760];
        snprintf(dir, sizeof dir, "%s/bad%zu", f.dir, i);
        moetify_cfg c = {"", 0, false, true, false, 1};
        ref_router rr = {1, 1, 0, 1.0f, 0, false, false, NULL};
        write_moetify(&f, dir, &c, &rr);
        router_free(&f.base, &rr);
        snprintf(cfg, sizeof cfg, "%s/config.json", dir);
        rewrite(cfg, bad[i].from, bad[i].to);
        vkm_model *m = NULL;
        vkm_model_params p = vkm_model_default_params();
        assert_int_not_equal(vkm_model_load(ctx, dir, &p, &m), VKM_OK);
        printf("refused: %s\n", vkm_context_errmsg(ctx));
        if (!strstr(vkm_context_errmsg(ctx), bad[i].expect))
            fail_msg("case %zu: message without '%s': %s", i, bad[i].expect, vkm_context_errmsg(ctx));
    }
    /* more experts than a router takes: refused before any is uploaded */
    vkm_model_shape sh = {97, 44, 2, 4, 2, 12, 70, 96, 10000.0f, false, VKM_TEST_MAX_EXPERTS + 1, 2};
    vkm_model_params p = vkm_model_default_params();
    vkm_model *m = NULL;
    assert_int_equal(vkm_model_create_random(ctx, &sh, 3, &p, &m), VKM_ERR_UNSUPPORTED);
    printf("refused: %s\n", vkm_context_errmsg(ctx));
    assert_non_null(strstr(vkm_context_errmsg(ctx), "65 experts (vkmoe routes up to 64)"));
    assert_null(m);
    sh.n_experts = VKM_TEST_MAX_EXPERTS; /* the most it takes */
    sh.n_layers = 1;
    if (vkm_model_create_random(ctx, &sh, 3, &p, &m)) fail_msg("%s", vkm_context_errmsg(ctx));
    assert_int_equal(vkm_model_n_experts(m), VKM_TEST_MAX_EXPERTS);
    vkm_model_free(m);
    test_context_done(ctx);
    fixture_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gateless_and_learned),
        cmocka_unit_test(test_noisy_attention_average),
        cmocka_unit_test(test_sequence_and_base),
        cmocka_unit_test(test_heterogeneous_batch),
        cmocka_unit_test(test_hf_mixtral),
        cmocka_unit_test(test_hidden_testbed),
        cmocka_unit_test(test_centroid_ffn_experts),
        cmocka_unit_test(test_write_moe_gguf),
        cmocka_unit_test(test_random_moe),
        cmocka_unit_test(test_moetify),
        cmocka_unit_test(test_bad_moe_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
