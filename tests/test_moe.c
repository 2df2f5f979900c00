/*
 * test_moe.c — the routed LoRA bank against the plain-C reference (tests/ref/ref_moe.c) on a
 * random model: a bank of three experts of different ranks and modules from mixed files (PEFT
 * on a GGUF base: q/k rows permuted; GGUF LoRA; rsLoRA scales); fixed weights (one expert at
 * weight 1 equals the adapter merged into the weights); token-level routers at module, layer
 * and model depth with softmax / sigmoid / none, temperature, top-k, always-on, learned / noisy
 * / phatgoose / centroid matrices; Arrow prototypes; sequence-level routing with output and
 * parameter ("average", "exact") aggregation; task-level weights; a heterogeneous batch whose
 * every sequence equals the same sequence run alone; the testbed's base + python golden.
 */
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ref_files.h"
#include "ref_forward.h"
#include "ref_moe.h"
#include "vkm_test.h"
#include "writer.h"

#define N_EXP 3

typedef struct fixture {
    ref_model rm;
    ref_bank bank;
    char dir[512], base[600], paths[N_EXP][600];
} fixture;

static const char *mod_names[7] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};

/* The model's shape: dim, heads, kv heads, head_dim, ffn. */
typedef struct shape {
    uint32_t dim, n_heads, n_kv_heads, head_dim, ffn;
} shape;

/* The modules each expert adapts (bits q, k, v, o, gate, up, down); NULL: the default below. */
static const uint32_t *fixture_masks;

static void fixture_init_shape(fixture *f, const char *tag, bool equal_ranks, shape sh)
{
    memset(f, 0, sizeof *f);
    ref_model *m = &f->rm;
    m->vocab = 97; m->dim = sh.dim; m->n_layers = 2; m->n_heads = sh.n_heads; m->n_kv_heads = sh.n_kv_heads;
    m->head_dim = sh.head_dim; m->ffn = sh.ffn; m->ctx = 96; m->eps = 1e-5f; m->theta = 10000.0f;
    ref_model_random(m, 77, false);
    static const uint32_t ranks[N_EXP] = {4, 8, 6}, eq[N_EXP] = {6, 6, 6};
    static const uint32_t masks[N_EXP] = {0x7f, 0x05, 0x4b}; /* all; q,v; q,k,o,down */
    static const float scales[N_EXP] = {2.0f, 0.5f, 1.5f};
    ref_bank_random(&f->bank, m, N_EXP, equal_ranks ? eq : ranks, fixture_masks ? fixture_masks : masks, scales, 1234);
    snprintf(f->dir, sizeof f->dir, "%s/%d-moe-%s", VKM_TEST_TMPDIR, (int)getpid(), tag);
    mkdir(f->dir, 0755);
    snprintf(f->base, sizeof f->base, "%s/base.gguf", f->dir);
    vkm_err e;
    if (ref_write_gguf(m, f->base, VKM_F32, &e)) fail_msg("%s", e.msg);
    snprintf(f->paths[0], sizeof f->paths[0], "%s/e0", f->dir);
    snprintf(f->paths[1], sizeof f->paths[1], "%s/e1.gguf", f->dir);
    snprintf(f->paths[2], sizeof f->paths[2], "%s/e2", f->dir);
    if (ref_write_peft(m, &f->bank, 0, f->paths[0], false, false, &e)) fail_msg("%s", e.msg);
    if (ref_write_gguf_lora(m, &f->bank, 1, f->paths[1], false, &e)) fail_msg("%s", e.msg);
    if (ref_write_peft(m, &f->bank, 2, f->paths[2], false, true, &e)) fail_msg("%s", e.msg);
}

/* dim 44 (vec4 rows), q 48, k and v 24, ffn 70 (scalar rows) */
static void fixture_init(fixture *f, const char *tag, bool equal_ranks)
{
    fixture_init_shape(f, tag, equal_ranks, (shape){44, 4, 2, 12, 70});
}

static void fixture_free(fixture *f)
{
    ref_bank_free(&f->bank);
    ref_model_free(&f->rm);
}

/* Writes a manifest over the fixture's experts; router_json: the "router" object's members. */
static const char *manifest(fixture *f, const char *name, const char *router_json, const char *extra)
{
    static char path[8][700];
    static int k;
    char *p = path[k++ & 7];
    snprintf(p, 700, "%s/%s.json", f->dir, name);
    FILE *o = fopen(p, "w");
    assert_non_null(o);
    fprintf(o, "{\"base\": \"base.gguf\", \"experts\": [{\"name\": \"e0\", \"lora\": \"e0\"}, "
               "{\"name\": \"e1\", \"lora\": \"e1.gguf\"}, {\"name\": \"e2\", \"lora\": \"e2\"}], "
               "\"router\": {%s}%s%s}\n", router_json, extra ? ", " : "", extra ? extra : "");
    fclose(o);
    return p;
}

/* Random router matrices for the points of a depth, written to a router file; ref rows too;
 * with_bias: a "...router.bias" per point as well. */
static bool with_bias;

static void router_file(fixture *f, const char *path, int depth, ref_router *rr, uint64_t seed, bool unit_rows)
{
    const ref_model *m = &f->rm;
    const uint32_t P = m->n_layers * 7;
    rr->r = calloc(P, sizeof *rr->r);
    if (with_bias) rr->bias = calloc(P, sizeof *rr->bias);
    test_rng rng = {seed};
    vkm_err e;
    vkm_st_writer *w = NULL;
    if (vkm_st_writer_create(path, &w, &e)) fail_msg("%s", e.msg);
    char name[128];
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1 && vkm_st_writer_begin(w)) fail_msg("%s", e.msg);
        for (uint32_t p = 0; p < P; p++) {
            uint32_t l = p / 7, mod = p % 7;
            if (depth == 1 && mod) continue;
            if (depth == 2 && p) continue;
            uint32_t in = depth ? m->dim : mod == 3 ? m->n_heads * m->head_dim : mod == 6 ? m->ffn : m->dim;
            if (depth == 0) snprintf(name, sizeof name, "layers.%u.%s.router.weight", l, mod_names[mod]);
            else if (depth == 1) snprintf(name, sizeof name, "layers.%u.router.weight", l);
            else snprintf(name, sizeof name, "router.weight");
            int64_t ne[2] = {in, N_EXP}, nb[1] = {N_EXP};
            char bname[140];
            snprintf(bname, sizeof bname, "%.*s.bias", (int)(strlen(name) - 7), name);
            if (pass == 0) {
                vkm_st_writer_add_tensor(w, name, VKM_F32, 2, ne);
                rr->r[p] = malloc(4ull * N_EXP * in);
                test_fill(&rng, rr->r[p], (size_t)N_EXP * in, 1.0f);
                if (with_bias) {
                    vkm_st_writer_add_tensor(w, bname, VKM_F32, 1, nb);
                    rr->bias[p] = malloc(4ull * N_EXP);
                    test_fill(&rng, rr->bias[p], N_EXP, 3.0f);
                }
                continue;
            }
            if (vkm_st_writer_write_tensor(w, name, rr->r[p], 4ull * N_EXP * in)) fail_msg("%s", e.msg);
            if (with_bias && vkm_st_writer_write_tensor(w, bname, rr->bias[p], 4ull * N_EXP)) fail_msg("%s", e.msg);
            if (unit_rows) /* the engine normalises centroid rows; so does the reference */
                for (uint32_t x = 0; x < N_EXP; x++) {
                    double ss = 0;
                    for (uint32_t c = 0; c < in; c++) ss += (double)rr->r[p][x * in + c] * rr->r[p][x * in + c];
                    for (uint32_t c = 0; c < in; c++) rr->r[p][x * in + c] = (float)(rr->r[p][x * in + c] / sqrt(ss));
                }
        }
    }
    if (vkm_st_writer_finish(w)) fail_msg("%s", e.msg);
    vkm_st_writer_free(w);
}

static void router_free(const ref_model *m, ref_router *rr)
{
    for (uint32_t p = 0; p < m->n_layers * 7; p++) {
        free(rr->r[p]);
        if (rr->bias) free(rr->bias[p]);
    }
    free(rr->r);
    free(rr->bias);
}

static bool profile_load;   /* load with every kernel timed (vkm_model_profile) */
static bool separate_load;  /* load with vkm_model_params.separate_routers */
static bool expands_load;   /* load with vkm_model_params.separate_expands */

static vkm_model *load(vkm_context *ctx, const char *path, uint32_t n_seq)
{
    vkm_model_params p = vkm_model_default_params();
    p.profile = profile_load;
    p.separate_routers = separate_load;
    p.separate_expands = expands_load;
    p.n_seq = n_seq;
    p.n_batch = 32;
    vkm_model *m = NULL;
    if (vkm_model_load(ctx, path, &p, &m)) fail_msg("load %s: %s", path, vkm_context_errmsg(ctx));
    return m;
}

/* A session that keeps its logits and samples greedily. */
static vkm_session *greedy_session(vkm_model *m)
{
    vkm_session_params sp = vkm_session_default_params();
    sp.keep_logits = true;
    sp.sampling.temperature = 0;
    vkm_session *s = NULL;
    assert_int_equal(vkm_session_create(m, &sp, &s), VKM_OK);
    return s;
}

static void check(const char *what, const float *got, const float *ref, size_t n, double tol)
{
    double e = test_nmse(got, ref, n);
    printf("%-58s nmse %.3g\n", what, e);
    if (!(e <= tol)) fail_msg("%s: nmse %.3g > %.3g", what, e, tol);
}

/* Reference logits of ids at every position with the moe hooks. */
static float *ref_logits(ref_moe *x, const int32_t *ids, uint32_t n)
{
    float *out = test_alloc((size_t)n * x->m->vocab * 4);
    ref_forward_logits(x->m, &x->hooks, ids, n, out);
    return out;
}

static void random_ids(int32_t *ids, uint32_t n, uint32_t vocab, uint64_t seed)
{
    test_rng r = {seed};
    for (uint32_t i = 0; i < n; i++) ids[i] = (int32_t)(test_rng_next(&r) % vocab);
}

/* ---- fixed weights -------------------------------------------------------------------------- */
static void test_fixed_weights(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f, "fixed", false);
    vkm_context *ctx = test_context();
    vkm_model *m = load(ctx, manifest(&f, "fixed", "\"policy\": \"uniform\"", NULL), 2);
    assert_int_equal(vkm_model_n_experts(m), N_EXP);
    assert_string_equal(vkm_model_expert_name(m, 1), "e1");
    const uint32_t n = 19;
    int32_t ids[19];
    random_ids(ids, n, f.rm.vocab, 5);
    const float cases[3][N_EXP] = {{1, 0, 0}, {0, 0, 1}, {0.3f, 0.5f, 0.2f}};
    for (int c = 0; c < 3; c++) {
        vkm_session_params sp = vkm_session_default_params();
        sp.route = VKM_ROUTE_FIXED;
        sp.expert_weights = cases[c];
        vkm_session *s;
        assert_int_equal(vkm_session_create(m, &sp, &s), VKM_OK);
        float *got = test_alloc((size_t)n * f.rm.vocab * 4);
        if (vkm_session_eval(s, ids, n, got)) fail_msg("%s", vkm_context_errmsg(ctx));
        ref_moe x;
        ref_moe_init(&x, &f.rm, &f.bank);
        ref_moe_set_fixed(&x, cases[c]);
        float *ref = ref_logits(&x, ids, n);
        char what[96];
        snprintf(what, sizeof what, "fixed weights {%.1f, %.1f, %.1f} (PEFT+GGUF LoRA, rsLoRA)", cases[c][0],
                 cases[c][1], cases[c][2]);
        check(what, got, ref, (size_t)n * f.rm.vocab, 1e-9);
        free(got);
        free(ref);
        ref_moe_free(&x);
        vkm_session_free(s);
    }
    { /* weights that are not numbers are refused, and the slot stays free */
        const float bad[N_EXP] = {0.5f, NAN, 0.5f};
        vkm_session_params sp = vkm_session_default_params();
        sp.route = VKM_ROUTE_FIXED;
        sp.expert_weights = bad;
        vkm_session *b = NULL;
        assert_int_equal(vkm_session_create(m, &sp, &b), VKM_ERR_INVALID_ARGUMENT);
        assert_null(b);
        assert_non_null(strstr(vkm_context_errmsg(ctx), "expert_weights[1]"));
    }
    /* uniform (the manifest's router): weight 1/3 each, every token */
    vkm_session *s;
    assert_int_equal(vkm_session_create(m, NULL, &s), VKM_OK);
    float *got = test_alloc((size_t)n * f.rm.vocab * 4);
    assert_int_equal(vkm_session_eval(s, ids, n, got), VKM_OK);
    ref_moe x;
    ref_moe_init(&x, &f.rm, &f.bank);
    const float third[N_EXP] = {1.0f / 3, 1.0f / 3, 1.0f / 3};
    ref_moe_set_fixed(&x, third);
    float *ref = ref_logits(&x, ids, n);
    check("uniform (gate-less)", got, ref, (size_t)n * f.rm.vocab, 1e-9);
    /* the bare base */
    vkm_session *b, *c3;
    vkm_session_params bp = vkm_session_default_params();
    bp.route = VKM_ROUTE_BASE;
    assert_int_equal(vkm_session_create(m, &bp, &b), VKM_OK);
    assert_int_equal(vkm_session_create(m, &bp, &c3), VKM_ERR_LIMIT); /* both slots taken */
    assert_non_null(strstr(vkm_context_errmsg(ctx), "slots"));
    vkm_session_free(s);
    assert_int_equal(vkm_session_eval(b, ids, n, got), VKM_OK);
    free(ref);
    const float none[N_EXP] = {0, 0, 0};
    ref_moe_set_fixed(&x, none);
    ref = ref_logits(&x, ids, n);
    check("bare base session of a MoErged model", got, ref, (size_t)n * f.rm.vocab, 1e-9);
    vkm_session_free(b);
    vkm_model_free(m);
    /* task-level exact merging: the deltas are added into the base weights at load */
    m = load(ctx, manifest(&f, "baked", "\"policy\": \"fixed\", \"fixed\": [0.3, 0.5, 0.2], \"granularity\": \"task\"",
                           "\"aggregate\": \"parameter\", \"merge\": \"exact\""), 1);
    assert_int_equal(vkm_model_n_experts(m), 0); /* no bank: base speed */
    assert_int_equal(vkm_session_create(m, NULL, &b), VKM_OK);
    assert_int_equal(vkm_session_eval(b, ids, n, got), VKM_OK);
    free(ref);
    ref_moe_set_fixed(&x, cases[2]);
    ref = ref_logits(&x, ids, n);
    check("task-level exact merge into the base weights at load", got, ref, (size_t)n * f.rm.vocab, 1e-9);
    vkm_session_free(b);
    free(got);
    free(ref);
    ref_moe_free(&x);
    vkm_model_free(m);
    test_context_done(ctx);
    fixture_free(&f);
}

/* ---- token-level routers ------------------------------------------------------------------- */
typedef struct trace_rec {
    uint32_t n_points, n_exp, n_tok;
    uint32_t *ids;
    float *w;
} trace_rec;

static void on_route(void *user, uint32_t pos0, uint32_t n_tok, uint32_t n_points, uint32_t n_exp,
                     const uint32_t *ids, const float *w)
{
    (void)pos0;
    trace_rec *t = user;
    free(t->ids);
    free(t->w);
    t->n_points = n_points;
    t->n_exp = n_exp;
    t->n_tok = n_tok;
    t->ids = malloc((size_t)n_points * n_tok * n_exp * 4);
    t->w = malloc((size_t)n_points * n_tok * n_exp * 4);
    memcpy(t->ids, ids, (size_t)n_points * n_tok * n_exp * 4);
    memcpy(t->w, w, (size_t)n_points * n_tok * n_exp * 4);
}

/* With want_lora_calls (the model loaded with profiling), the routing and LoRA dispatches of
 * the last decode step by kernel, as in names below (the last: base matrix products with a
 * LoRA epilogue, matvec_lora_<type>). */
static const uint32_t *want_lora_calls;

static void check_lora_calls(const vkm_model *m, const char *what)
{
    static const char *names[7] = {"lora_route_shrink_sites", "router", "lora_shrink_sites", "lora_shrink",
                                   "lora_expand_sites", "lora_expand", "matvec_lora_"};
    vkm_kernel_stat ks[64];
    size_t nk = 0;
    const vkm_status st = vkm_model_profile(m, ks, 64, &nk);
    if (st == VKM_ERR_UNSUPPORTED) return; /* a device without timestamps */
    assert_int_equal(st, VKM_OK);
    for (int k = 0; k < 7; k++) {
        uint32_t calls = 0;
        for (size_t i = 0; i < nk; i++)
            if (k == 6 ? !strncmp(ks[i].name, names[k], strlen(names[k])) : !strcmp(ks[i].name, names[k]))
                calls += ks[i].calls;
        if (calls != want_lora_calls[k])
            fail_msg("%s: %u %s dispatches in a decode step, want %u", what, calls, names[k], want_lora_calls[k]);
    }
}

/* Token t's decisions in a trace against the reference's at every routed point: ids exactly,
 * weights within 1e-4, the row ended after the chosen. */
static void check_decisions(const char *what, const fixture *f, int depth, const trace_rec *tr, uint32_t t,
                            const ref_moe *x)
{
    for (uint32_t p = 0; p < tr->n_points; p++) {
        bool used = false;
        for (uint32_t e = 0; e < N_EXP; e++) used |= ref_bank_at(&f->bank, p / 7, p % 7, e)->rank > 0;
        if (depth == 0 && !used) continue; /* nothing is routed there */
        const uint32_t *id = tr->ids + ((size_t)p * tr->n_tok + t) * tr->n_exp;
        const float *w = tr->w + ((size_t)p * tr->n_tok + t) * tr->n_exp;
        for (uint32_t j = 0; j < x->n_sel[p]; j++) {
            if (id[j] != x->sel[(size_t)p * N_EXP + j])
                fail_msg("%s: point %u entry %u: expert %u, reference %u", what, p, j, id[j], x->sel[(size_t)p * N_EXP + j]);
            if (!(fabs(w[j] - x->w[(size_t)p * N_EXP + j]) < 1e-4))
                fail_msg("%s: point %u entry %u: weight %.6f, reference %.6f", what, p, j, (double)w[j],
                         x->w[(size_t)p * N_EXP + j]);
        }
        if (x->n_sel[p] < N_EXP) assert_int_equal(id[x->n_sel[p]], 0xffffffffu);
    }
}

static void token_case(vkm_context *ctx, fixture *f, const char *name, int depth, const char *norm, int norm_id,
                       uint32_t top_k, float temp, int always_on, const char *policy, bool norm_input, bool unit_rows)
{
    char rpath[700], router[512];
    snprintf(rpath, sizeof rpath, "%s/%s.safetensors", f->dir, name);
    ref_router rr = {depth, top_k, norm_id, temp, always_on, norm_input, false, NULL};
    router_file(f, rpath, depth, &rr, 900 + (uint64_t)depth * 7 + top_k, unit_rows);
    static const char *depths[3] = {"module", "layer", "model"};
    char ao[32];
    if (always_on >= 0) snprintf(ao, sizeof ao, "\"e%d\"", always_on);
    else snprintf(ao, sizeof ao, "null");
    snprintf(router, sizeof router, "\"policy\": \"%s\", \"granularity\": \"token\", \"depth\": \"%s\", "
             "\"top_k\": %u, \"normalize\": \"%s\", \"temperature\": %g, \"always_on\": %s, \"weights\": \"%s.safetensors\"",
             policy, depths[depth], top_k, norm, (double)temp, ao, name);
    vkm_model *m = load(ctx, manifest(f, name, router, NULL), 1);
    const uint32_t n = 13;
    int32_t ids[13];
    random_ids(ids, n, f->rm.vocab, 77 + (uint64_t)depth);
    vkm_session *s;
    assert_int_equal(vkm_session_create(m, NULL, &s), VKM_OK);
    trace_rec tr = {0};
    assert_int_equal(vkm_session_trace_routing(s, on_route, &tr), VKM_OK);
    float *got = test_alloc((size_t)n * f->rm.vocab * 4);
    if (vkm_session_eval(s, ids, n - 1, got)) fail_msg("%s", vkm_context_errmsg(ctx));
    const float *lg; /* the last token as a decode step (matvec path), after a prompt in steps of 6 */
    vkm_session_free(s);
    vkm_session_params sp = vkm_session_default_params();
    sp.keep_logits = true;
    assert_int_equal(vkm_session_create(m, &sp, &s), VKM_OK);
    assert_int_equal(vkm_session_trace_routing(s, on_route, &tr), VKM_OK);
    int32_t next;
    /* the prompt in two steps of 6 tokens: the decode-size path (per-token BGMV, matvec passes)
     * for the prompt too, the second step's tokens routed past the first's in the KV cache */
    assert_int_equal(vkm_session_prompt(s, ids, 6, &next), VKM_OK);
    trace_rec first = tr; /* that step's routing, kept */
    tr.ids = NULL;
    tr.w = NULL;
    assert_int_equal(vkm_session_prompt(s, ids + 6, n - 7, &next), VKM_OK);
    assert_int_equal(vkm_session_decode(s, ids[n - 1], &next), VKM_OK);
    assert_int_equal(vkm_session_logits(s, &lg, NULL), VKM_OK);
    memcpy(got + (size_t)(n - 1) * f->rm.vocab, lg, f->rm.vocab * 4);
    if (want_lora_calls) check_lora_calls(m, name);
    ref_moe x;
    ref_moe_init(&x, &f->rm, &f->bank);
    x.mode = REF_TOKEN;
    x.router = &rr;
    float *ref = ref_logits(&x, ids, n);
    char what[128];
    snprintf(what, sizeof what, "token %s: %s depth, %s, top-%u, T=%.1f, always-on %d", policy, depths[depth],
             norm, top_k, (double)temp, always_on);
    check(what, got, ref, (size_t)n * f->rm.vocab, 1e-8);
    /* the last token's decisions, exactly: ids and weights at every point */
    assert_int_equal(tr.n_tok, 1);
    check_decisions(what, f, depth, &tr, 0, &x);
    /* and each token's of the first prompt step (6 tokens in one step): the reference's
     * decisions for token t are its last after the first t + 1 tokens */
    assert_int_equal(first.n_tok, 6);
    for (uint32_t t = 0; t < 6; t++) {
        ref_moe xt;
        ref_moe_init(&xt, &f->rm, &f->bank);
        xt.mode = REF_TOKEN;
        xt.router = &rr;
        free(ref_logits(&xt, ids, t + 1));
        char wt[160];
        snprintf(wt, sizeof wt, "%s, prompt token %u", what, t);
        check_decisions(wt, f, depth, &first, t, &xt);
        ref_moe_free(&xt);
    }
    free(first.ids);
    free(first.w);
    free(tr.ids);
    free(tr.w);
    free(got);
    free(ref);
    ref_moe_free(&x);
    router_free(&f->rm, &rr);
    vkm_session_free(s);
    vkm_model_free(m);
}

static void test_token_routers(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f, "token", false);
    vkm_context *ctx = test_context();
    token_case(ctx, &f, "t_mod_soft2", 0, "softmax", 0, 2, 1.0f, -1, "learned", false, false);
    token_case(ctx, &f, "t_mod_sig1_ao", 0, "sigmoid", 1, 1, 0.7f, 2, "learned", false, false);
    token_case(ctx, &f, "t_layer_none", 1, "none", 2, 2, 1.0f, -1, "learned", false, false);
    token_case(ctx, &f, "t_layer_dense", 1, "softmax", 0, 0, 2.0f, -1, "learned", false, false);
    token_case(ctx, &f, "t_model_soft1", 2, "softmax", 0, 1, 0.5f, -1, "learned", false, false);
    with_bias = true; /* routers with a bias per expert (model depth: "router.bias") */
    token_case(ctx, &f, "t_model_bias", 2, "softmax", 0, 1, 1.0f, -1, "learned", false, false);
    token_case(ctx, &f, "t_mod_bias", 0, "sigmoid", 1, 2, 1.0f, -1, "learned", false, false);
    with_bias = false;
    token_case(ctx, &f, "t_phatgoose", 0, "softmax", 0, 2, 1.0f, -1, "phatgoose", true, false);
    /* a decode step's dispatches, two layers: q, k, v routed and shrunk in one dispatch, then
     * gate, up; o and down alone; every expand in its matrix product's epilogue (7 a layer) */
    profile_load = true;
    static const uint32_t fused[7] = {8, 0, 0, 0, 0, 0, 14}, apart[7] = {0, 8, 4, 4, 0, 0, 14};
    /* the expands apart (vkm_model_params.separate_expands): q, k, v in one dispatch, gate, up
     * in one, o and down alone */
    static const uint32_t fused_x[7] = {8, 0, 0, 0, 4, 4, 0}, apart_x[7] = {0, 8, 4, 4, 4, 4, 0};
    static const uint32_t apart42[7] = {0, 14, 4, 4, 0, 0, 14}; /* matrices of 42 floats a row: not back to back */
    want_lora_calls = fused;
    token_case(ctx, &f, "t_mod_soft2_calls", 0, "softmax", 0, 2, 1.0f, -1, "learned", false, false);
    token_case(ctx, &f, "t_mod_sig1_ao_calls", 0, "sigmoid", 1, 1, 0.7f, 2, "learned", false, false);
    /* the routers in dispatches of their own (vkm_model_params.separate_routers) */
    separate_load = true;
    want_lora_calls = apart;
    token_case(ctx, &f, "t_mod_soft2_apart", 0, "softmax", 0, 2, 1.0f, -1, "learned", false, false);
    expands_load = true;
    want_lora_calls = apart_x;
    token_case(ctx, &f, "t_mod_soft2_apart_x", 0, "softmax", 0, 2, 1.0f, -1, "learned", false, false);
    separate_load = false;
    want_lora_calls = fused_x;
    token_case(ctx, &f, "t_mod_sig1_ao_x", 0, "sigmoid", 1, 1, 0.7f, 2, "learned", false, false);
    expands_load = false;
    /* inputs not in vec4 (dim 42): the fused shrinks' scalar loop */
    fixture odd;
    fixture_init_shape(&odd, "token-odd", false, (shape){42, 4, 1, 8, 70});
    want_lora_calls = fused;
    token_case(ctx, &odd, "t_mod_soft2_odd", 0, "softmax", 0, 2, 1.0f, -1, "learned", false, false);
    want_lora_calls = apart42;
    separate_load = true;
    token_case(ctx, &odd, "t_mod_soft2_odd_apart", 0, "softmax", 0, 2, 1.0f, -1, "learned", false, false);
    separate_load = false;
    /* a bank that adapts no k (q and v not adjacent): routed inside the shrinks of q and v
     * together, and apart, each routing point by itself */
    static const uint32_t no_k[N_EXP] = {0x7d, 0x05, 0x49};
    static const uint32_t fused_nk[7] = {8, 0, 0, 0, 0, 0, 12}, apart_nk[7] = {0, 10, 4, 4, 0, 0, 12};
    fixture nk;
    fixture_masks = no_k;
    fixture_init(&nk, "token-no-k", false);
    fixture_masks = NULL;
    want_lora_calls = fused_nk;
    token_case(ctx, &nk, "t_mod_soft2_nk", 0, "softmax", 0, 2, 1.0f, -1, "learned", false, false);
    want_lora_calls = apart_nk;
    separate_load = true;
    token_case(ctx, &nk, "t_mod_soft2_nk_apart", 0, "softmax", 0, 2, 1.0f, -1, "learned", false, false);
    separate_load = false;
    fixture_free(&nk);
    want_lora_calls = NULL;
    profile_load = false;
    fixture_free(&odd);
    test_context_done(ctx);
    /* tuned as a GPU: workgroups of several subgroups, eight decode vectors per matvec pass */
    vkm_context_params cp = vkm_context_default_params();
    cp.tune_as_gpu = true;
    ctx = test_context_with(cp);
    token_case(ctx, &f, "t_mod_soft2_gpu", 0, "softmax", 0, 2, 1.0f, -1, "learned", false, false);
    test_context_done(ctx);
    fixture_free(&f);
}

/* ---- sequence-level routing ---------------------------------------------------------------- */
static void seq_case(vkm_context *ctx, fixture *f, const char *name, int depth, uint32_t top_k, const char *agg,
                     const char *merge, ref_mode mode, const char *policy, bool unit_rows)
{
    char rpath[700], router[512], extra[128];
    snprintf(rpath, sizeof rpath, "%s/%s.safetensors", f->dir, name);
    bool norm_input = !strcmp(policy, "centroid");
    ref_router rr = {depth, top_k, 0, 1.0f, -1, norm_input, false, NULL};
    router_file(f, rpath, depth, &rr, 4242 + (uint64_t)depth, unit_rows);
    static const char *depths[3] = {"module", "layer", "model"};
    snprintf(router, sizeof router, "\"policy\": \"%s\", \"granularity\": \"sequence\", \"depth\": \"%s\", "
             "\"top_k\": %u, \"weights\": \"%s.safetensors\"", policy, depths[depth], top_k, name);
    snprintf(extra, sizeof extra, "\"aggregate\": \"%s\", \"merge\": \"%s\"", agg, merge);
    vkm_model *m = load(ctx, manifest(f, name, router, extra), 1);
    const uint32_t n = 11;
    int32_t ids[11];
    random_ids(ids, n, f->rm.vocab, 31);
    vkm_session *s;
    assert_int_equal(vkm_session_create(m, NULL, &s), VKM_OK);
    float *got = test_alloc((size_t)n * f->rm.vocab * 4);
    if (vkm_session_eval(s, ids, n, got)) fail_msg("%s", vkm_context_errmsg(ctx));
    /* reference: pass 1 pools the base model's router inputs, then the decision, then pass 2 */
    ref_moe x;
    ref_moe_init(&x, &f->rm, &f->bank);
    x.pooling = true;
    x.pool_depth = depth;
    x.pool_skip_first = n > 1;
    free(ref_logits(&x, ids, n));
    x.pooling = false;
    ref_moe_decide_pooled(&x, &rr);
    x.mode = mode;
    float *ref = ref_logits(&x, ids, n);
    char what[128];
    snprintf(what, sizeof what, "sequence %s: %s depth, top-%u, aggregate %s/%s", policy, depths[depth], top_k, agg, merge);
    check(what, got, ref, (size_t)n * f->rm.vocab, 1e-8);
    /* the decision is visible */
    uint32_t ex[N_EXP];
    float w[N_EXP];
    size_t ne = 0;
    assert_int_equal(vkm_session_experts(s, 0, ex, w, N_EXP, &ne), VKM_OK);
    /* (merge "average" included: the experts its composed adapter was made of) */
    assert_int_equal(ne, x.n_sel[0]);
    for (size_t j = 0; j < ne; j++) assert_int_equal(ex[j], x.sel[j]);
    free(got);
    free(ref);
    ref_moe_free(&x);
    router_free(&f->rm, &rr);
    vkm_session_free(s);
    vkm_model_free(m);
}

static void test_sequence_routers(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f, "seq", false);
    vkm_context *ctx = test_context();
    seq_case(ctx, &f, "s_model_centroid", 2, 1, "output", "average", REF_POINTS, "centroid", true);
    seq_case(ctx, &f, "s_module_exact", 0, 2, "parameter", "exact", REF_POINTS, "learned", false);
    seq_case(ctx, &f, "s_layer_out", 1, 0, "output", "average", REF_POINTS, "learned", false);
    with_bias = true;
    seq_case(ctx, &f, "s_model_bias", 2, 1, "output", "average", REF_POINTS, "learned", false);
    with_bias = false;
    test_context_done(ctx);
    fixture_free(&f);
    fixture_init(&f, "seq_eq", true); /* equal ranks: "average" composes one adapter */
    ctx = test_context();
    seq_case(ctx, &f, "s_model_avg", 2, 2, "parameter", "average", REF_AVERAGE, "learned", false);
    seq_case(ctx, &f, "s_module_avg", 0, 0, "parameter", "average", REF_AVERAGE, "learned", false);
    test_context_done(ctx);
    fixture_free(&f);
}

/* ---- logits aggregation (PELMo) ------------------------------------------------------------ */
/* log(sum_j w_j softmax(l_j)) of the reference run with each expert alone. */
static float *ref_mixture(fixture *f, const int32_t *ids, uint32_t n, const uint32_t *ex, const double *w, uint32_t k)
{
    const uint32_t V = f->rm.vocab;
    double *p = calloc((size_t)n * V, 8);
    for (uint32_t j = 0; j < k; j++) {
        ref_moe x;
        ref_moe_init(&x, &f->rm, &f->bank);
        float one[N_EXP] = {0};
        one[ex[j]] = 1.0f;
        ref_moe_set_fixed(&x, one);
        float *lg = ref_logits(&x, ids, n);
        for (uint32_t t = 0; t < n; t++) {
            double mx = -INFINITY, z = 0;
            for (uint32_t v = 0; v < V; v++) mx = fmax(mx, lg[(size_t)t * V + v]);
            for (uint32_t v = 0; v < V; v++) z += exp(lg[(size_t)t * V + v] - mx);
            for (uint32_t v = 0; v < V; v++) p[(size_t)t * V + v] += w[j] * exp(lg[(size_t)t * V + v] - mx) / z;
        }
        free(lg);
        ref_moe_free(&x);
    }
    float *out = test_alloc((size_t)n * V * 4);
    for (size_t i = 0; i < (size_t)n * V; i++) out[i] = (float)log(p[i]);
    free(p);
    return out;
}

static void test_logits_aggregation(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f, "logits", false);
    vkm_context *ctx = test_context();
    char rpath[700];
    snprintf(rpath, sizeof rpath, "%s/lg.safetensors", f.dir);
    ref_router rr = {2, 2, 0, 1.0f, -1, false, false, NULL, NULL};
    router_file(&f, rpath, 2, &rr, 808, false);
    const uint32_t n = 10;
    int32_t ids[10];
    random_ids(ids, n, f.rm.vocab, 66);
    /* sequence level: the router's top-2 from the prompt, their distributions mixed */
    vkm_model *m = load(ctx, manifest(&f, "lg", "\"policy\": \"learned\", \"granularity\": \"sequence\", "
                                      "\"depth\": \"model\", \"top_k\": 2, \"weights\": \"lg.safetensors\"",
                                      "\"aggregate\": \"logits\""), 3);
    vkm_session *s;
    assert_int_equal(vkm_session_create(m, NULL, &s), VKM_OK);
    float *got = test_alloc((size_t)n * f.rm.vocab * 4);
    if (vkm_session_eval(s, ids, n, got)) fail_msg("%s", vkm_context_errmsg(ctx));
    uint32_t ex[N_EXP];
    float wf[N_EXP];
    size_t ne = 0;
    assert_int_equal(vkm_session_experts(s, 0, ex, wf, N_EXP, &ne), VKM_OK);
    assert_int_equal(ne, 2);
    assert_int_equal(vkm_session_experts(s, f.rm.n_layers * 7, ex, wf, N_EXP, &ne), VKM_ERR_INVALID_ARGUMENT);
    ref_moe x;
    ref_moe_init(&x, &f.rm, &f.bank);
    x.pooling = true;
    x.pool_depth = 2;
    x.pool_skip_first = true;
    free(ref_logits(&x, ids, n));
    x.pooling = false;
    ref_moe_decide_pooled(&x, &rr);
    double w[2] = {x.w[0] / (x.w[0] + x.w[1]), x.w[1] / (x.w[0] + x.w[1])};
    assert_int_equal(ex[0], x.sel[0]);
    assert_int_equal(ex[1], x.sel[1]);
    assert_true(fabs(wf[0] - w[0]) < 1e-5);
    float *ref = ref_mixture(&f, ids, n, x.sel, w, 2);
    check("logits aggregation, sequence level top-2 (PELMo)", got, ref, (size_t)n * f.rm.vocab, 1e-9);
    { /* steps of n_batch 2: one token's two expert rows, and room for its mixture's logits */
        vkm_model_params p2 = vkm_model_default_params();
        p2.n_seq = 3;
        p2.n_batch = 2;
        vkm_model *m2 = NULL;
        const char *path = manifest(&f, "lg", "\"policy\": \"learned\", \"granularity\": \"sequence\", "
                                    "\"depth\": \"model\", \"top_k\": 2, \"weights\": \"lg.safetensors\"",
                                    "\"aggregate\": \"logits\"");
        if (vkm_model_load(ctx, path, &p2, &m2)) fail_msg("%s", vkm_context_errmsg(ctx));
        vkm_session *s2 = greedy_session(m2);
        int32_t nx;
        if (vkm_session_prompt(s2, ids, n, &nx)) fail_msg("n_batch 2: %s", vkm_context_errmsg(ctx));
        const float *l2;
        assert_int_equal(vkm_session_logits(s2, &l2, NULL), VKM_OK);
        check("logits aggregation in steps of n_batch 2", l2, ref + (size_t)(n - 1) * f.rm.vocab, f.rm.vocab, 1e-9);
        assert_int_equal(vkm_batch_decode(&s2, 1, &nx, &nx), VKM_OK);
        vkm_session_free(s2);
        vkm_model_free(m2);
    }
    { /* a logits router added to a model whose steps were sized without one: said, not a failed step */
        vkm_model_params p3 = vkm_model_default_params();
        p3.n_seq = 3;
        p3.n_batch = 2;
        vkm_model *m3 = NULL;
        const char *out = manifest(&f, "lgo", "\"policy\": \"learned\", \"granularity\": \"sequence\", "
                                   "\"depth\": \"model\", \"top_k\": 2, \"weights\": \"lg.safetensors\"", NULL);
        if (vkm_model_load(ctx, out, &p3, &m3)) fail_msg("%s", vkm_context_errmsg(ctx));
        const char *lgp = manifest(&f, "lg", "\"policy\": \"learned\", \"granularity\": \"sequence\", "
                                   "\"depth\": \"model\", \"top_k\": 2, \"weights\": \"lg.safetensors\"",
                                   "\"aggregate\": \"logits\"");
        uint32_t rid = 0;
        if (vkm_model_add_router(m3, lgp, &rid)) fail_msg("%s", vkm_context_errmsg(ctx));
        vkm_session_params rp = vkm_session_default_params();
        rp.route = VKM_ROUTE_ROUTER;
        rp.router = rid;
        vkm_session *s3 = NULL;
        assert_int_equal(vkm_session_create(m3, &rp, &s3), VKM_ERR_LIMIT);
        assert_non_null(strstr(vkm_context_errmsg(ctx), "rows of logits"));
        vkm_model_free(m3);
        /* steps of 4 logits rows: each session's 3 fit, two sessions' 6 do not. The batch is
         * refused before either session moves: a1 then samples what b1 (never batched) does */
        p3.n_seq = 8;
        p3.n_batch = 4;
        if (vkm_model_load(ctx, out, &p3, &m3)) fail_msg("%s", vkm_context_errmsg(ctx));
        if (vkm_model_add_router(m3, lgp, &rid)) fail_msg("%s", vkm_context_errmsg(ctx));
        rp.router = rid;
        rp.sampling.temperature = 1.0f;
        rp.sampling.top_k = 0;
        rp.sampling.seed = 9;
        rp.sampling.repeat_penalty = 1.3f;
        vkm_session *a1 = NULL, *a2 = NULL, *b1 = NULL;
        assert_int_equal(vkm_session_create(m3, &rp, &a1), VKM_OK);
        assert_int_equal(vkm_session_create(m3, &rp, &a2), VKM_OK);
        assert_int_equal(vkm_session_create(m3, &rp, &b1), VKM_OK);
        int32_t ta = 0, tb = 0, t2 = 0;
        assert_int_equal(vkm_session_prompt(a1, ids, n - 2, &ta), VKM_OK);
        assert_int_equal(vkm_session_prompt(a2, ids, 3, &t2), VKM_OK);
        assert_int_equal(vkm_session_prompt(b1, ids, n - 2, &tb), VKM_OK);
        assert_int_equal(ta, tb);
        vkm_session *pair[2] = {a1, a2};
        int32_t in2[2] = {ta, t2}, out2[2];
        assert_int_equal(vkm_batch_decode(pair, 2, in2, out2), VKM_ERR_LIMIT);
        printf("refused: %s\n", vkm_context_errmsg(ctx));
        assert_non_null(strstr(vkm_context_errmsg(ctx), "a step wants 6 rows of logits (at most 4)"));
        assert_int_equal(vkm_session_pos(a1), n - 2);
        for (int k = 0; k < 2; k++) {
            assert_int_equal(vkm_session_decode(a1, ta, &ta), VKM_OK);
            assert_int_equal(vkm_session_decode(b1, tb, &tb), VKM_OK);
            assert_int_equal(ta, tb);
        }
        vkm_session_free(a1);
        vkm_session_free(a2);
        vkm_session_free(b1);
        vkm_model_free(m3);
    }
    /* a decode step: the mixture is what is sampled; keep_logits returns it */
    vkm_session_free(s);
    s = greedy_session(m);
    int32_t next;
    assert_int_equal(vkm_session_prompt(s, ids, n - 1, &next), VKM_OK);
    vkm_session *other; /* it takes two of the three slots; a bare-base session shares its step */
    vkm_session_params op = vkm_session_default_params();
    op.route = VKM_ROUTE_BASE;
    assert_int_equal(vkm_session_create(m, &op, &other), VKM_OK);
    vkm_session *fourth;
    assert_int_equal(vkm_session_create(m, &op, &fourth), VKM_ERR_LIMIT);
    int32_t onext;
    assert_int_equal(vkm_session_prompt(other, ids, 3, &onext), VKM_OK);
    int32_t toks[2] = {ids[n - 1], ids[3]}, nx[2];
    vkm_session *two[2] = {s, other};
    assert_int_equal(vkm_batch_decode(two, 2, toks, nx), VKM_OK);
    vkm_session_free(other);
    const float *lg;
    assert_int_equal(vkm_session_logits(s, &lg, NULL), VKM_OK);
    /* this session routed on a prompt one token shorter: its own decision */
    assert_int_equal(vkm_session_experts(s, 0, ex, wf, N_EXP, &ne), VKM_OK);
    double w2[N_EXP];
    for (size_t j = 0; j < ne; j++) w2[j] = wf[j];
    free(ref);
    ref = ref_mixture(&f, ids, n, ex, w2, (uint32_t)ne);
    check("logits aggregation, decode step (batched with a bare-base session)", lg,
          ref + (size_t)(n - 1) * f.rm.vocab, f.rm.vocab, 1e-9);
    int32_t am = 0;
    for (uint32_t v = 1; v < f.rm.vocab; v++) if (lg[v] > lg[am]) am = (int32_t)v;
    assert_int_equal(nx[0], am);
    vkm_session_free(s);
    free(ref);
    ref_moe_free(&x);
    vkm_model_free(m);
    /* task level: fixed weights, two experts */
    m = load(ctx, manifest(&f, "lgt", "\"policy\": \"fixed\", \"fixed\": [0.25, 0, 0.75], \"granularity\": \"task\"",
                           "\"aggregate\": \"logits\""), 2);
    assert_int_equal(vkm_session_create(m, NULL, &s), VKM_OK);
    assert_int_equal(vkm_session_eval(s, ids, n, got), VKM_OK);
    uint32_t tex[2] = {0, 2};
    double tw[2] = {0.25, 0.75};
    ref = ref_mixture(&f, ids, n, tex, tw, 2);
    check("logits aggregation, task level {0.25, 0, 0.75}", got, ref, (size_t)n * f.rm.vocab, 1e-9);
    vkm_session_free(s);
    vkm_model_free(m);
    /* the same weights unnormalised: a mixture's weights are brought to sum 1 */
    m = load(ctx, manifest(&f, "lgt2", "\"policy\": \"fixed\", \"fixed\": [0.5, 0, 1.5], \"granularity\": \"task\"",
                           "\"aggregate\": \"logits\""), 3);
    assert_int_equal(vkm_session_create(m, NULL, &s), VKM_OK);
    assert_int_equal(vkm_session_eval(s, ids, n, got), VKM_OK);
    check("logits aggregation, task level {0.5, 0, 1.5}", got, ref, (size_t)n * f.rm.vocab, 1e-9);
    vkm_session_free(s);
    /* a session that cannot get its second slot fails and frees only what it took: with bare-base
     * sessions in all slots but one, exactly one more session fits */
    vkm_model_info mi;
    assert_int_equal(vkm_model_get_info(m, &mi), VKM_OK);
    assert_true(mi.n_seq >= 3 && mi.n_seq <= 8);
    vkm_session_params bp = vkm_session_default_params();
    bp.route = VKM_ROUTE_BASE;
    vkm_session *bs[8] = {NULL}, *extra = NULL;
    for (uint32_t i = 0; i + 1 < mi.n_seq; i++) assert_int_equal(vkm_session_create(m, &bp, &bs[i]), VKM_OK);
    assert_int_equal(vkm_session_create(m, NULL, &s), VKM_ERR_LIMIT);
    assert_int_equal(vkm_session_create(m, &bp, &bs[mi.n_seq - 1]), VKM_OK);
    assert_int_equal(vkm_session_create(m, &bp, &extra), VKM_ERR_LIMIT);
    assert_null(extra);
    for (uint32_t i = 0; i < mi.n_seq; i++) vkm_session_free(bs[i]);
    vkm_model_free(m);
    /* negative weights do not make a mixture of distributions */
    m = load(ctx, manifest(&f, "lgt3", "\"policy\": \"fixed\", \"fixed\": [-0.5, 0, 1.5], \"granularity\": \"task\"",
                           "\"aggregate\": \"logits\""), 2);
    assert_int_equal(vkm_session_create(m, NULL, &s), VKM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkm_context_errmsg(ctx), "negative"));
    vkm_model_free(m);
    /* ... nor do a router's raw scores (normalize none): refused at load */
    vkm_model_params np = vkm_model_default_params();
    m = NULL;
    assert_int_equal(vkm_model_load(ctx, manifest(&f, "lgn", "\"policy\": \"learned\", \"granularity\": \"sequence\", "
                                                  "\"depth\": \"model\", \"top_k\": 2, \"normalize\": \"none\", "
                                                  "\"weights\": \"lg.safetensors\"", "\"aggregate\": \"logits\""), &np, &m),
                     VKM_ERR_INVALID_ARGUMENT);
    printf("refused: %s\n", vkm_context_errmsg(ctx));
    assert_non_null(strstr(vkm_context_errmsg(ctx), "normalize softmax or sigmoid, not none"));
    /* uniform at sequence granularity: nothing to route from the prompt, every expert at 1/3 */
    m = load(ctx, manifest(&f, "lgu", "\"policy\": \"uniform\", \"granularity\": \"sequence\"",
                           "\"aggregate\": \"logits\""), 3);
    assert_int_equal(vkm_session_create(m, NULL, &s), VKM_OK);
    if (vkm_session_eval(s, ids, n, got)) fail_msg("uniform, sequence: %s", vkm_context_errmsg(ctx));
    free(ref);
    uint32_t all3[3] = {0, 1, 2};
    double third[3] = {1.0 / 3, 1.0 / 3, 1.0 / 3};
    ref = ref_mixture(&f, ids, n, all3, third, 3);
    check("logits aggregation, uniform at sequence granularity", got, ref, (size_t)n * f.rm.vocab, 1e-9);
    vkm_session_free(s);
    free(ref);
    free(got);
    router_free(&f.rm, &rr);
    vkm_model_free(m);
    test_context_done(ctx);
    fixture_free(&f);
}

/* ---- noisy and Arrow ------------------------------------------------------------------------ */
/* Arrow's prototypes by plain power iteration on (BA)^T (BA), in double. */
static void arrow_matrices(const fixture *f, ref_router *rr)
{
    const ref_model *m = &f->rm;
    rr->r = calloc(m->n_layers * 7, sizeof *rr->r);
    for (uint32_t p = 0; p < m->n_layers * 7; p++) {
        uint32_t l = p / 7, mod = p % 7, in = mod == 3 ? m->n_heads * m->head_dim : mod == 6 ? m->ffn : m->dim;
        const uint32_t qd = m->n_heads * m->head_dim, kvd = m->n_kv_heads * m->head_dim;
        const uint32_t outs[7] = {qd, kvd, kvd, m->dim, m->ffn, m->ffn, m->dim};
        rr->r[p] = calloc((size_t)N_EXP * in, 4);
        for (uint32_t e = 0; e < N_EXP; e++) {
            const ref_lora *L = ref_bank_at(&f->bank, l, mod, e);
            if (!L->rank) continue;
            double *v = malloc(in * 8), *t = malloc(L->rank * 8), *u = malloc(outs[mod] * 8);
            for (uint32_t c = 0; c < in; c++) v[c] = 1.0 + 0.001 * c;
            for (int it = 0; it < 500; it++) {
                for (uint32_t k = 0; k < L->rank; k++) {
                    t[k] = 0;
                    for (uint32_t c = 0; c < in; c++) t[k] += L->a[(size_t)k * in + c] * v[c];
                }
                for (uint32_t o = 0; o < outs[mod]; o++) {
                    u[o] = 0;
                    for (uint32_t k = 0; k < L->rank; k++) u[o] += L->b[(size_t)o * L->rank + k] * t[k];
                }
                for (uint32_t k = 0; k < L->rank; k++) {
                    t[k] = 0;
                    for (uint32_t o = 0; o < outs[mod]; o++) t[k] += L->b[(size_t)o * L->rank + k] * u[o];
                }
                double n2 = 0;
                for (uint32_t c = 0; c < in; c++) {
                    v[c] = 0;
                    for (uint32_t k = 0; k < L->rank; k++) v[c] += L->a[(size_t)k * in + c] * t[k];
                    n2 += v[c] * v[c];
                }
                for (uint32_t c = 0; c < in; c++) v[c] /= sqrt(n2);
            }
            for (uint32_t c = 0; c < in; c++) rr->r[p][(size_t)e * in + c] = (float)v[c];
            free(v); free(t); free(u);
        }
    }
}

static void matrix_case(vkm_context *ctx, fixture *f, const char *name, const char *router_json, ref_router *rr,
                        double tol)
{
    vkm_model *m = load(ctx, manifest(f, name, router_json, NULL), 1);
    const uint32_t n = 12;
    int32_t ids[12];
    random_ids(ids, n, f->rm.vocab, 4);
    vkm_session *s;
    assert_int_equal(vkm_session_create(m, NULL, &s), VKM_OK);
    float *got = test_alloc((size_t)n * f->rm.vocab * 4);
    if (vkm_session_eval(s, ids, n, got)) fail_msg("%s", vkm_context_errmsg(ctx));
    ref_moe x;
    ref_moe_init(&x, &f->rm, &f->bank);
    x.mode = REF_TOKEN;
    x.router = rr;
    float *ref = ref_logits(&x, ids, n);
    check(name, got, ref, (size_t)n * f->rm.vocab, tol);
    free(got);
    free(ref);
    ref_moe_free(&x);
    vkm_session_free(s);
    vkm_model_free(m);
}

static void test_noisy_and_arrow(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f, "na", false);
    vkm_context *ctx = test_context();
    ref_router rr = {0, 2, 0, 1.0f, -1, false, false, NULL};
    ref_router_noisy(&f.rm, &rr, N_EXP, 17, 0.5f);
    matrix_case(ctx, &f, "noisy top-2 (seed 17, noise_std 0.5)",
                "\"policy\": \"noisy\", \"top_k\": 2, \"noise_std\": 0.5, \"seed\": 17", &rr, 1e-8);
    router_free(&f.rm, &rr);
    ref_router ra = {0, 0, 0, 1.0f, -1, false, true, NULL};
    arrow_matrices(&f, &ra);
    matrix_case(ctx, &f, "arrow dense (prototypes by power iteration)",
                "\"policy\": \"arrow\", \"top_k\": 0", &ra, 1e-7);
    ra.top_k = 2;
    matrix_case(ctx, &f, "arrow top-2", "\"policy\": \"arrow\", \"top_k\": 2", &ra, 1e-7);
    router_free(&f.rm, &ra);
    test_context_done(ctx);
    fixture_free(&f);
}

/* ---- a heterogeneous batch ------------------------------------------------------------------ */
/* Four sessions in one decode step: one expert alone (fixed weights), a token-level router,
 * the bare base, and a second manifest's sequence-level router; each must equal itself alone. */
static void hetero_run(vkm_model *m, bool batched, const int32_t prompts[4][8], const uint32_t *plen,
                       float *out /* [3 steps][4][vocab] */, uint32_t vocab)
{
    static const float e1_only[N_EXP] = {0, 1, 0};
    vkm_session_params sp[4];
    for (int i = 0; i < 4; i++) {
        sp[i] = vkm_session_default_params();
        sp[i].keep_logits = true;
        sp[i].sampling.temperature = 0;
    }
    sp[0].route = VKM_ROUTE_FIXED;
    sp[0].expert_weights = e1_only;
    sp[1].route = VKM_ROUTE_ROUTER;
    sp[1].router = 0;
    sp[2].route = VKM_ROUTE_BASE;
    sp[3].route = VKM_ROUTE_ROUTER;
    sp[3].router = 1;
    vkm_session *ss[4];
    int32_t next[4];
    for (int i = 0; i < 4; i++) {
        if (!batched && i) vkm_session_free(ss[i - 1]);
        assert_int_equal(vkm_session_create(m, &sp[i], &ss[i]), VKM_OK);
        assert_int_equal(vkm_session_prompt(ss[i], prompts[i], plen[i], &next[i]), VKM_OK);
        if (!batched)
            for (int step = 0; step < 3; step++) {
                int32_t tok = prompts[i][plen[i] + step];
                assert_int_equal(vkm_session_decode(ss[i], tok, &next[i]), VKM_OK);
                const float *lg;
                assert_int_equal(vkm_session_logits(ss[i], &lg, NULL), VKM_OK);
                memcpy(out + ((size_t)step * 4 + i) * vocab, lg, vocab * 4);
            }
    }
    if (!batched) {
        vkm_session_free(ss[3]);
        return;
    }
    for (int step = 0; step < 3; step++) {
        int32_t tok[4], nx[4];
        for (int i = 0; i < 4; i++) tok[i] = prompts[i][plen[i] + step];
        assert_int_equal(vkm_batch_decode(ss, 4, tok, nx), VKM_OK);
        for (int i = 0; i < 4; i++) {
            const float *lg;
            assert_int_equal(vkm_session_logits(ss[i], &lg, NULL), VKM_OK);
            memcpy(out + ((size_t)step * 4 + i) * vocab, lg, vocab * 4);
        }
    }
    for (int i = 0; i < 4; i++) vkm_session_free(ss[i]);
}

static void test_heterogeneous_batch(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f, "het", false);
    vkm_context *ctx = test_context();
    char rpath[700];
    ref_router r0 = {0, 2, 0, 1.0f, -1, false, false, NULL}, r1 = {2, 1, 0, 1.0f, -1, true, false, NULL};
    snprintf(rpath, sizeof rpath, "%s/h0.safetensors", f.dir);
    router_file(&f, rpath, 0, &r0, 5, false);
    snprintf(rpath, sizeof rpath, "%s/h1.safetensors", f.dir);
    router_file(&f, rpath, 2, &r1, 6, true);
    const char *m0 = manifest(&f, "h0", "\"policy\": \"learned\", \"top_k\": 2, \"weights\": \"h0.safetensors\"", NULL);
    const char *m1 = manifest(&f, "h1", "\"policy\": \"centroid\", \"granularity\": \"sequence\", \"depth\": "
                              "\"model\", \"top_k\": 1, \"weights\": \"h1.safetensors\"", NULL);
    vkm_model *m = load(ctx, m0, 4);
    uint32_t rid = 0;
    if (vkm_model_add_router(m, m1, &rid)) fail_msg("%s", vkm_context_errmsg(ctx));
    assert_int_equal(rid, 1);
    assert_int_equal(vkm_model_n_routers(m), 2);
    /* an added manifest meets the rules a loaded one does: "average" over unequal ranks is refused */
    const char *avg = manifest(&f, "havg", "\"policy\": \"learned\", \"granularity\": \"sequence\", \"depth\": "
                               "\"model\", \"top_k\": 1, \"weights\": \"h1.safetensors\"",
                               "\"aggregate\": \"parameter\", \"merge\": \"average\"");
    assert_int_equal(vkm_model_add_router(m, avg, NULL), VKM_ERR_MISMATCH);
    printf("refused: %s\n", vkm_context_errmsg(ctx));
    assert_int_equal(vkm_model_n_routers(m), 2);
    int32_t prompts[4][8];
    for (int i = 0; i < 4; i++) random_ids(prompts[i], 8, f.rm.vocab, 100 + (uint64_t)i);
    const uint32_t plen[4] = {3, 5, 2, 4};
    const uint32_t V = f.rm.vocab;
    float *alone = test_alloc(12ull * V * 4), *batch = test_alloc(12ull * V * 4);
    hetero_run(m, false, (const int32_t(*)[8])prompts, plen, alone, V);
    hetero_run(m, true, (const int32_t(*)[8])prompts, plen, batch, V);
    static const char *names[4] = {"e1 alone", "token router top-2", "bare base", "sequence centroid (2nd manifest)"};
    for (int i = 0; i < 4; i++)
        for (int step = 0; step < 3; step++) {
            char what[96];
            snprintf(what, sizeof what, "heterogeneous batch: %s, step %d vs alone", names[i], step);
            check(what, batch + ((size_t)step * 4 + i) * V, alone + ((size_t)step * 4 + i) * V, V, 1e-11);
        }
    free(alone);
    free(batch);
    router_free(&f.rm, &r0);
    router_free(&f.rm, &r1);
    vkm_model_free(m);
    test_context_done(ctx);
    fixture_free(&f);
}

/* ---- the testbed's base + python golden --------------------------------------------------- */
static void test_golden_python(void **state)
{
    (void)state;
    vkm_context *ctx = test_context();
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%d-golden", VKM_TEST_TMPDIR, (int)getpid());
    mkdir(dir, 0755);
    const char *tb = VKM_SHARED_DIR "/testbed";
    static const char *bases[2] = {"base/model.gguf", "base/model.safetensors"};
    static const char *experts[2] = {"experts/python", "experts/python/adapter.gguf"};
    static const int32_t prompt0[21] = {1, 711, 692, 290, 937, 13, 359, 692, 286, 955, 937, 13, 13, 346, 306, 550, 969, 595, 961, 489, 13};
    char gpath[700];
    snprintf(gpath, sizeof gpath, "%s/golden/base_lora_python/prompt0.logits.f32", tb);
    FILE *gf = fopen(gpath, "rb");
    assert_non_null(gf);
    float ref[1024];
    assert_int_equal(fread(ref, 4, 1024, gf), 1024);
    fclose(gf);
    for (int b = 0; b < 2; b++)
        for (int e = 0; e < 2; e++) {
            char mpath[700];
            snprintf(mpath, sizeof mpath, "%s/python-%d%d.json", dir, b, e);
            FILE *o = fopen(mpath, "w");
            fprintf(o, "{\"base\": \"%s/%s\", \"experts\": [{\"name\": \"python\", \"lora\": \"%s/%s\"}], "
                       "\"router\": {\"policy\": \"fixed\", \"fixed\": [1.0], \"granularity\": \"task\"}}\n",
                    tb, bases[b], tb, experts[e]);
            fclose(o);
            vkm_model *m = load(ctx, mpath, 1);
            vkm_session *s = greedy_session(m);
            int32_t next;
            assert_int_equal(vkm_session_prompt(s, prompt0, 21, &next), VKM_OK);
            const float *lg;
            assert_int_equal(vkm_session_logits(s, &lg, NULL), VKM_OK);
            char what[96];
            snprintf(what, sizeof what, "golden base+python: %s + %s", bases[b], experts[e]);
            check(what, lg, ref, 1024, 1e-4);
            vkm_session_free(s);
            vkm_model_free(m);
        }
    test_context_done(ctx);
}

/* ---- a sequence-level router fitted on calibration texts (vkm_model_fit_router) -------------- */
/* The testbed's five experts with their calibration texts: the linear discriminant fitted on them
 * (through a manifest whose centroid router is computed from the same texts at load), written,
 * then loaded as policy "learned", routes each domain's calibration text to its own expert; so
 * does the centroid router computed at load. */
static void write_testbed_manifest(const char *path, const char *router_json, bool calib)
{
    static const char *dom[5] = {"python", "c", "shell", "english", "legal"};
    const char *tb = VKM_SHARED_DIR "/testbed";
    FILE *o = fopen(path, "w");
    assert_non_null(o);
    fprintf(o, "{\"base\": \"%s/base/model.gguf\", \"experts\": [", tb);
    for (int d = 0; d < 5; d++) {
        fprintf(o, "%s{\"name\": \"%s\", \"lora\": \"%s/experts/%s/adapter.gguf\"", d ? ", " : "", dom[d], tb, dom[d]);
        if (calib) fprintf(o, ", \"calib\": [\"%s/calib/%s.txt\"]", tb, dom[d]);
        fprintf(o, "}");
    }
    fprintf(o, "], \"router\": {%s}, \"aggregate\": \"parameter\", \"merge\": \"exact\"}\n", router_json);
    fclose(o);
}

/* Routes 96 tokens of each domain's calibration text (from the first line after byte 3000: the
 * files open with license headers, legal's domain) and fails unless its own expert is chosen. */
static void route_own(vkm_context *ctx, vkm_model *m, const char *what)
{
    static const char *dom[5] = {"python", "c", "shell", "english", "legal"};
    const vkm_tokenizer *tok = vkm_model_tokenizer(m);
    assert_non_null(tok);
    for (uint32_t d = 0; d < 5; d++) {
        char tpath[700], buf[3700];
        snprintf(tpath, sizeof tpath, "%s/calib/%s.txt", VKM_SHARED_DIR "/testbed", dom[d]);
        FILE *f = fopen(tpath, "rb");
        assert_non_null(f);
        const size_t got = fread(buf, 1, sizeof buf, f);
        fclose(f);
        assert_true(got == sizeof buf);
        const char *nl = memchr(buf + 3000, '\n', 200);
        assert_non_null(nl);
        int32_t ids[1024];
        size_t n = 0;
        assert_int_equal(vkm_tokenize(tok, nl + 1, 400, true, false, ids, 1024, &n), VKM_OK);
        assert_true(n >= 96);
        n = 96; /* the testbed's context is 128 */
        vkm_session *s;
        assert_int_equal(vkm_session_create(m, NULL, &s), VKM_OK);
        int32_t next;
        if (vkm_session_prompt(s, ids, n, &next) != VKM_OK) fail_msg("%s: %s", dom[d], vkm_context_errmsg(ctx));
        uint32_t ex[5];
        float w[5];
        size_t ne = 0;
        assert_int_equal(vkm_session_experts(s, 0, ex, w, 5, &ne), VKM_OK);
        printf("%s: %-8s -> %s (%.3f)\n", what, dom[d], ne ? dom[ex[0] % 5] : "-", ne ? (double)w[0] : 0.0);
        if (ne != 1 || ex[0] != d) fail_msg("%s: %s routed to expert %u, not its own", what, dom[d], ne ? ex[0] : 99u);
        vkm_session_free(s);
    }
}

static void test_fit_router(void **state)
{
    (void)state;
    vkm_context *ctx = test_context();
    char dir[512], mpath[700], lpath[700], rpath[700], router[900];
    snprintf(dir, sizeof dir, "%s/%d-fit", VKM_TEST_TMPDIR, (int)getpid());
    mkdir(dir, 0755);
    snprintf(mpath, sizeof mpath, "%s/calib.json", dir);
    snprintf(lpath, sizeof lpath, "%s/learned.json", dir);
    snprintf(rpath, sizeof rpath, "%s/lda.safetensors", dir);
    write_testbed_manifest(mpath, "\"policy\": \"centroid\", \"granularity\": \"sequence\", \"depth\": \"model\", \"top_k\": 1", true);
    vkm_model *m = load(ctx, mpath, 1);
    if (vkm_model_fit_router(m, rpath) != VKM_OK) fail_msg("fit: %s", vkm_context_errmsg(ctx));
    route_own(ctx, m, "centroids from calib");
    vkm_session *s;
    assert_int_equal(vkm_session_create(m, NULL, &s), VKM_OK);
    assert_int_equal(vkm_model_fit_router(m, rpath), VKM_ERR_STATE); /* a session is live */
    /* nor does a router computed from calibration texts: that runs through the session's slot */
    uint32_t before = vkm_model_n_routers(m), rid = 0;
    assert_int_equal(vkm_model_add_router(m, mpath, &rid), VKM_ERR_STATE);
    assert_non_null(strstr(vkm_context_errmsg(ctx), "slot 0"));
    assert_int_equal(vkm_model_n_routers(m), before);
    vkm_session_free(s);
    vkm_model_free(m);

    snprintf(router, sizeof router, "\"policy\": \"learned\", \"granularity\": \"sequence\", \"depth\": \"model\", "
             "\"top_k\": 1, \"weights\": \"%s\"", rpath);
    write_testbed_manifest(lpath, router, false);
    m = load(ctx, lpath, 1);
    assert_int_equal(vkm_model_fit_router(m, rpath), VKM_ERR_INVALID_ARGUMENT); /* no calibration texts */
    assert_non_null(strstr(vkm_context_errmsg(ctx), "calib"));
    route_own(ctx, m, "fitted discriminant");
    vkm_model_free(m);
    test_context_done(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_weights),
        cmocka_unit_test(test_token_routers),
        cmocka_unit_test(test_sequence_routers),
        cmocka_unit_test(test_logits_aggregation),
        cmocka_unit_test(test_noisy_and_arrow),
        cmocka_unit_test(test_heterogeneous_batch),
        cmocka_unit_test(test_golden_python),
        cmocka_unit_test(test_fit_router),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
