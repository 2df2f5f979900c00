/*
 * test_merge_files.c — whole merges through vkm_merge and `vkmoe merge`: the testbed's three full
 * fine-tunes merged with linear, task_arithmetic and TIES on the base (tensors against
 * tests/ref/ref_merge.c read back from the output; the merged model loads and generates), the
 * same TIES merge from safetensors inputs (byte-identical after the q/k permutation) and into a
 * safetensors folder (same logits), mergekit YAML configs (paths relative to the config, every
 * key, the errors), the refusals (shapes, tensor sets, the output being an input, missing
 * parameters), and interruption: a cancelled merge, a killed process and SIGINT to the CLI leave
 * no file behind.
 */
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "leftovers.h"
#include "merge.h"
#include "ref_files.h"
#include "ref_merge.h"
#include "vkm_test_engine.h"

#define TESTBED VKM_SHARED_DIR "/testbed"
#define TMP VKM_TEST_TMPDIR "/mfiles"

static const char *const full[3] = {TESTBED "/full/python/model.gguf", TESTBED "/full/english/model.gguf",
                                    TESTBED "/full/legal/model.gguf"};

static vkm_merge_params testbed_params(vkm_merge_method m, const char *const *models)
{
    vkm_merge_params p = vkm_merge_default_params();
    p.method = m;
    snprintf(p.base, sizeof p.base, "%s/base/model.gguf", TESTBED);
    p.n_models = 3;
    for (uint32_t i = 0; i < 3; i++) {
        snprintf(p.models[i].path, sizeof p.models[i].path, "%s", models[i]);
        p.models[i].weight = 1.0 / 3;
        p.models[i].density = m == VKM_MERGE_TIES ? 0.5 : NAN;
    }
    return p;
}

static void merge_ok(vkm_context *ctx, const vkm_merge_params *p, const char *out)
{
    if (vkm_merge(ctx, p, out)) fail_msg("%s: %s", out, vkm_context_errmsg(ctx));
}

static float *tensor_values(const vkm_model_src *m, const char *name, uint64_t *n)
{
    const vkm_tensor_src *t = vkm_model_src_tensor(m, name);
    if (!t) fail_msg("%s: no tensor %s", m->path, name);
    *n = (uint64_t)vkm_tensor_nelem(t);
    float *v = test_alloc(*n * 4);
    assert_int_equal(vkm_to_f32(t->dtype, t->data, *n, v), VKM_OK);
    return v;
}

/* A few tensors of the output against the reference merge of the inputs' tensors. */
static void check_against_ref(const vkm_merge_params *p, const char *out)
{
    vkm_err e;
    vkm_mplan pl;
    if (vkm_mplan_init(&pl, p, &e)) fail_msg("%s", e.msg);
    vkm_model_src in[VKM_MERGE_MAX_IN], o;
    for (uint32_t j = 0; j < pl.n_in; j++)
        if (vkm_model_src_open(pl.path[j], &in[j], &e)) fail_msg("%s", e.msg);
    if (vkm_model_src_open(out, &o, &e)) fail_msg("%s", e.msg);
    static const char *const names[] = {"blk.0.attn_q.weight", "blk.3.ffn_down.weight", "output_norm.weight",
                                        "token_embd.weight"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        uint64_t n = 0;
        float *x[VKM_MERGE_MAX_IN];
        for (uint32_t j = 0; j < pl.n_in; j++) x[j] = tensor_values(&in[j], names[k], &n);
        ref_merge_cfg rc = {.method = (int)pl.method, .n_in = pl.n_in, .base = pl.base, .lambda = pl.lambda,
                            .t = pl.t, .normalize = pl.normalize, .rescale = pl.rescale, .seed = pl.seed,
                            .name = names[k]};
        for (uint32_t j = 0; j < pl.n_in; j++) {
            rc.weight[j] = pl.weight[j];
            rc.density[j] = pl.density[j];
            rc.gamma[j] = pl.gamma[j];
        }
        float *ref = test_alloc(n * 4), *got = tensor_values(&o, names[k], &n);
        ref_merge(&rc, (const float *const *)x, n, ref);
        double scale = 0, worst = 0;
        for (uint64_t i = 0; i < n; i++) {
            scale = fmax(scale, fabs(ref[i]));
            worst = fmax(worst, fabs((double)got[i] - ref[i]));
        }
        if (worst > 1e-6 * scale) fail_msg("%s: %s off the reference by %.3g (scale %.3g)", out, names[k], worst, scale);
        for (uint32_t j = 0; j < pl.n_in; j++) free(x[j]);
        free(ref);
        free(got);
    }
    for (uint32_t j = 0; j < pl.n_in; j++) vkm_model_src_close(&in[j]);
    vkm_model_src_close(&o);
}

/* Loads the model, generates a few tokens, returns the logits after a fixed prompt (n_vocab). */
static float *run_model(vkm_context *ctx, const char *path, size_t *nv)
{
    vkm_model_params mp = vkm_model_default_params();
    mp.n_seq = 2;
    vkm_model *m = NULL;
    if (vkm_model_load(ctx, path, &mp, &m)) fail_msg("%s: %s", path, vkm_context_errmsg(ctx));
    vkm_session_params sp = vkm_session_default_params();
    sp.sampling.temperature = 0;
    sp.keep_logits = true;
    vkm_session *s;
    assert_int_equal(vkm_session_create(m, &sp, &s), VKM_OK);
    const int32_t ids[6] = {1, 711, 692, 290, 937, 13};
    int32_t next;
    assert_int_equal(vkm_session_prompt(s, ids, 6, &next), VKM_OK);
    const float *lg;
    assert_int_equal(vkm_session_logits(s, &lg, nv), VKM_OK);
    float *copy = test_alloc(*nv * 4);
    memcpy(copy, lg, *nv * 4);
    for (int i = 0; i < 8; i++) assert_int_equal(vkm_session_decode(s, next, &next), VKM_OK);
    vkm_session_free(s);
    if (vkm_model_tokenizer(m)) { /* the tokenizer came along: generate from text */
        vkm_session *g;
        assert_int_equal(vkm_session_create(m, &sp, &g), VKM_OK);
        vkm_generate_params gp = vkm_generate_default_params();
        gp.n_predict = 8;
        vkm_generate_stats st;
        assert_int_equal(vkm_generate(g, "def main():\n", &gp, &st), VKM_OK);
        assert_int_equal(st.n_generated, 8);
        vkm_session_free(g);
    }
    vkm_model_free(m);
    return copy;
}

static uint8_t *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = test_alloc(*n);
    assert_int_equal(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

/* pread as the merge's input copies see it: the bytes read from files (vkm_map_read). */
static uint64_t pread_bytes;

ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
    ssize_t k = (ssize_t)syscall(SYS_pread64, fd, buf, n, off);
    if (k > 0) pread_bytes += (uint64_t)k;
    return k;
}

/* ---- the testbed's fine-tunes ----------------------------------------------------------------- */
static void test_testbed(void **state)
{
    (void)state;
    mkdir(TMP, 0777);
    vkm_context *ctx = test_context();
    const vkm_merge_method methods[3] = {VKM_MERGE_LINEAR, VKM_MERGE_TASK_ARITHMETIC, VKM_MERGE_TIES};
    const char *outs[3] = {TMP "/linear.gguf", TMP "/task_arithmetic.gguf", TMP "/ties.gguf"};
    for (int k = 0; k < 3; k++) {
        vkm_merge_params p = testbed_params(methods[k], full);
        merge_ok(ctx, &p, outs[k]);
        check_against_ref(&p, outs[k]);
        size_t nv;
        free(run_model(ctx, outs[k], &nv));
    }
    /* the inputs copied into device memory instead of read in place: read from their files
     * (pread, counted below; not through the maps), the same bytes */
    vkm_merge_params pc = testbed_params(VKM_MERGE_LINEAR, full);
    pc.copy_inputs = true;
    pread_bytes = 0;
    merge_ok(ctx, &pc, TMP "/linear_copied.gguf");
    uint64_t data_bytes = 0;
    for (int j = 0; j < 3; j++) { /* linear reads the three models, not the base */
        vkm_err e0;
        vkm_model_src m;
        if (vkm_model_src_open(full[j], &m, &e0)) fail_msg("%s", e0.msg);
        for (uint32_t t = 0; t < m.n_tensors; t++)
            if (m.tensors[t].src->dtype == VKM_F32 || m.tensors[t].src->dtype == VKM_F16) data_bytes += m.tensors[t].src->nbytes;
        vkm_model_src_close(&m);
    }
    if (pread_bytes < data_bytes) fail_msg("copied inputs: %llu bytes read from the files, the inputs hold %llu",
                                           (unsigned long long)pread_bytes, (unsigned long long)data_bytes);
    size_t n_lin, n_cop;
    uint8_t *lin = slurp(TMP "/linear.gguf", &n_lin), *cop = slurp(TMP "/linear_copied.gguf", &n_cop);
    assert_int_equal(n_lin, n_cop);
    assert_memory_equal(lin, cop, n_lin);
    free(lin);
    free(cop);
    /* TIES from the safetensors fine-tunes (rotate_half q/k rows) into GGUF: the same bytes */
    const char *st[3] = {TESTBED "/full/python", TESTBED "/full/english", TESTBED "/full/legal"};
    vkm_merge_params p = testbed_params(VKM_MERGE_TIES, st);
    merge_ok(ctx, &p, TMP "/ties_from_st.gguf");
    size_t na, nb;
    uint8_t *a = slurp(TMP "/ties.gguf", &na), *b = slurp(TMP "/ties_from_st.gguf", &nb);
    vkm_err e;
    vkm_gguf ga, gb;
    assert_int_equal(vkm_gguf_open(TMP "/ties.gguf", &ga, &e), VKM_OK);
    assert_int_equal(vkm_gguf_open(TMP "/ties_from_st.gguf", &gb, &e), VKM_OK);
    assert_int_equal(ga.n_tensors, gb.n_tensors);
    for (uint64_t i = 0; i < ga.n_tensors; i++) {
        const vkm_tensor_src *tb = vkm_gguf_tensor(&gb, ga.tensors[i].name);
        assert_non_null(tb);
        assert_int_equal(tb->nbytes, ga.tensors[i].nbytes);
        if (memcmp(tb->data, ga.tensors[i].data, tb->nbytes))
            fail_msg("%s differs between the GGUF and the safetensors inputs", ga.tensors[i].name);
    }
    vkm_gguf_close(&ga);
    vkm_gguf_close(&gb);
    free(a);
    free(b);
    /* Hugging Face inputs only, the first with the base's tokenizer.json (a BPE that is not
     * byte-level: no GGUF form) and tokenizer.model: the GGUF holds the SentencePiece model as
     * tokenizer.ggml.* keys, and encodes as it does */
    mkdir(TMP "/hfpy", 0777);
    static const char *const links[4][2] = {{"/full/python/config.json", "/hfpy/config.json"},
                                            {"/full/python/model.safetensors", "/hfpy/model.safetensors"},
                                            {"/base/tokenizer.json", "/hfpy/tokenizer.json"},
                                            {"/base/tokenizer.model", "/hfpy/tokenizer.model"}};
    for (int i = 0; i < 4; i++) {
        char from[600], to[600];
        snprintf(from, sizeof from, "%s%s", TESTBED, links[i][0]);
        snprintf(to, sizeof to, "%s%s", TMP, links[i][1]);
        unlink(to);
        assert_int_equal(symlink(from, to), 0);
    }
    const char *hf[3] = {TMP "/hfpy", TESTBED "/full/english", TESTBED "/full/legal"};
    p = testbed_params(VKM_MERGE_LINEAR, hf);
    p.base[0] = 0;
    merge_ok(ctx, &p, TMP "/linear_tok.gguf");
    {
        vkm_gguf g;
        char model[16] = "";
        assert_int_equal(vkm_gguf_open(TMP "/linear_tok.gguf", &g, &e), VKM_OK);
        assert_true(vkm_gguf_get_str(&g, "tokenizer.ggml.model", model, sizeof model));
        assert_string_equal(model, "llama");
        vkm_gguf_close(&g);
        vkm_tokenizer *spm = NULL, *in = NULL;
        assert_int_equal(vkm_tokenizer_load(TESTBED "/base/tokenizer.model", &spm), VKM_OK);
        assert_int_equal(vkm_tokenizer_load(TMP "/linear_tok.gguf", &in), VKM_OK);
        static const char text[] = "  def parse_args(argv):\n\treturn argv[1:]  # the rest, \xc3\xa9t\xc3\xa9 \xe2\x82\xac";
        int32_t ids_spm[256], ids_in[256];
        size_t n_spm = 0, n_in = 0;
        assert_int_equal(vkm_tokenize(spm, text, sizeof text - 1, true, false, ids_spm, 256, &n_spm), VKM_OK);
        assert_int_equal(vkm_tokenize(in, text, sizeof text - 1, true, false, ids_in, 256, &n_in), VKM_OK);
        assert_int_equal(n_spm, n_in);
        assert_memory_equal(ids_spm, ids_in, n_spm * sizeof ids_spm[0]);
        vkm_tokenizer_free(spm);
        vkm_tokenizer_free(in);
    }
    size_t nt;
    free(run_model(ctx, TMP "/linear_tok.gguf", &nt)); /* generates from text with it */
    /* ... and into a safetensors folder (config.json, tokenizer): the same model */
    p = testbed_params(VKM_MERGE_TIES, full);
    merge_ok(ctx, &p, TMP "/ties_st");
    assert_true(vkm_exists(TMP "/ties_st/config.json"));
    assert_true(vkm_exists(TMP "/ties_st/tokenizer.model"));
    size_t n1, n2;
    float *l1 = run_model(ctx, TMP "/ties.gguf", &n1), *l2 = run_model(ctx, TMP "/ties_st", &n2);
    assert_int_equal(n1, n2);
    double err = test_nmse(l2, l1, n1);
    if (!(err < 1e-9)) fail_msg("ties.gguf and ties_st/: logits nmse %.3g", err);
    free(l1);
    free(l2);
    test_context_done(ctx);
}

/* qwen2 as llama.cpp stores it: q/k rows as in Hugging Face files (RoPE "neox"), so a merge into
 * GGUF or safetensors leaves them where they are (a llama GGUF would have them interleaved). */
static void test_qwen2_rows(void **state)
{
    (void)state;
    mkdir(TMP, 0777);
    vkm_context *ctx = test_context();
    ref_model rm = {.vocab = 64, .dim = 32, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .head_dim = 8, .ffn = 48,
                    .ctx = 128, .eps = 1e-5f, .theta = 10000.0f};
    ref_model_random(&rm, 31, false);
    rm.rope_half = true;
    vkm_err e;
    if (ref_write_gguf_arch(&rm, TMP "/q2.gguf", VKM_F32, "qwen2", &e)) fail_msg("%s", e.msg);
    vkm_merge_params p = vkm_merge_default_params();
    p.method = VKM_MERGE_LINEAR;
    p.n_models = 1;
    snprintf(p.models[0].path, sizeof p.models[0].path, "%s", TMP "/q2.gguf");
    p.models[0].weight = 1.0;
    merge_ok(ctx, &p, TMP "/q2_out.gguf");
    merge_ok(ctx, &p, TMP "/q2_out_st");
    vkm_model_src in, og, os;
    if (vkm_model_src_open(TMP "/q2.gguf", &in, &e) || vkm_model_src_open(TMP "/q2_out.gguf", &og, &e) ||
        vkm_model_src_open(TMP "/q2_out_st", &os, &e))
        fail_msg("%s", e.msg);
    assert_string_equal(og.hp.arch, "qwen2");
    assert_int_equal(og.hp.rope_layout, VKM_ROPE_HALF);
    static const char *const names[] = {"blk.0.attn_q.weight", "blk.1.attn_k.weight", "blk.0.attn_q.bias"};
    for (size_t k = 0; k < 3; k++) {
        uint64_t n = 0, n1 = 0, n2 = 0;
        float *a = tensor_values(&in, names[k], &n), *b = tensor_values(&og, names[k], &n1),
              *c = tensor_values(&os, names[k], &n2);
        assert_true(n == n1 && n == n2);
        if (memcmp(a, b, n * 4) || memcmp(a, c, n * 4)) fail_msg("qwen2: %s rows moved by the merge", names[k]);
        free(a);
        free(b);
        free(c);
    }
    vkm_model_src_close(&in);
    vkm_model_src_close(&og);
    vkm_model_src_close(&os);
    ref_model_free(&rm);
    test_context_done(ctx);
}

/* ---- configs ------------------------------------------------------------------------------------ */
static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* TMP/cfg/models/ links to the testbed, so configs can say "models/python". */
static void config_dir(void)
{
    mkdir(TMP, 0777);
    mkdir(TMP "/cfg", 0777);
    mkdir(TMP "/cfg/models", 0777);
    static const char *const links[][2] = {{TESTBED "/full/python", TMP "/cfg/models/python"},
                                           {TESTBED "/full/english", TMP "/cfg/models/english"},
                                           {TESTBED "/full/legal", TMP "/cfg/models/legal"},
                                           {TESTBED "/base/model.gguf", TMP "/cfg/models/base.gguf"}};
    for (size_t i = 0; i < 4; i++)
        if (!vkm_exists(links[i][1])) assert_int_equal(symlink(links[i][0], links[i][1]), 0);
}

static void test_config(void **state)
{
    (void)state;
    config_dir();
    write_file(TMP "/cfg/all.yml",
               "# every key vkmoe reads\n"
               "merge_method: ties\n"
               "base_model: models/base.gguf\n"
               "models:\n"
               "  - model: models/python/model.gguf\n"
               "    parameters:\n"
               "      weight: 0.5\n"
               "      density: 0.6\n"
               "  - model: models/english\n"
               "    parameters: {weight: 0.3, density: 0.4, gamma: 0.02}\n"
               "  - model: models/legal\n"
               "  - model: models/base.gguf\n"
               "parameters:\n"
               "  lambda: 0.9\n"
               "  normalize: true\n"
               "  int8_mask: true\n"
               "  weight: 0.2\n"
               "  density: 0.7\n"
               "  gamma: 0.03\n"
               "  t: 0.5\n"
               "  rescale: false\n"
               "dtype: float16\n"
               "random_seed: 42\n"
               "tokenizer_source: base\n");
    vkm_merge_params p;
    char msg[1024];
    /* a folder whose name has a '+' is a path, not mergekit's model+lora */
    if (!vkm_exists(TMP "/cfg/models/c++")) assert_int_equal(symlink(TESTBED "/full/python", TMP "/cfg/models/c++"), 0);
    write_file(TMP "/cfg/plus.yml", "merge_method: linear\nmodels:\n  - model: models/c++\n    parameters: {weight: 1}\n");
    if (vkm_merge_config_load(TMP "/cfg/plus.yml", &p, msg, sizeof msg)) fail_msg("%s", msg);
    assert_string_equal(p.models[0].path, TMP "/cfg/models/c++");
    /* YAML 1.1 as PyYAML reads it: YES / Off, an empty "parameters:"; out_dtype over dtype */
    write_file(TMP "/cfg/yaml11.yml", "merge_method: linear\nmodels:\n  - model: models/python\n    parameters:\n"
                                      "parameters:\n  normalize: YES\n  rescale: Off\nout_dtype: float32\n"
                                      "dtype: bfloat16\n");
    if (vkm_merge_config_load(TMP "/cfg/yaml11.yml", &p, msg, sizeof msg)) fail_msg("%s", msg);
    assert_true(p.normalize == 1 && p.rescale == 0 && p.out_dtype == VKM_F32 && p.n_models == 1);
    if (vkm_merge_config_load(TMP "/cfg/all.yml", &p, msg, sizeof msg)) fail_msg("%s", msg);
    assert_int_equal(p.method, VKM_MERGE_TIES);
    assert_string_equal(p.base, TMP "/cfg/models/base.gguf");
    assert_int_equal(p.n_models, 4);
    assert_string_equal(p.models[1].path, TMP "/cfg/models/english");
    assert_true(p.models[0].weight == 0.5 && p.models[0].density == 0.6 && isnan(p.models[0].gamma));
    assert_true(p.models[1].weight == 0.3 && p.models[1].density == 0.4 && p.models[1].gamma == 0.02);
    assert_true(isnan(p.models[2].weight));
    assert_true(p.lambda == 0.9 && p.normalize == 1 && p.weight == 0.2 && p.density == 0.7 && p.gamma == 0.03);
    assert_true(p.t == 0.5 && p.rescale == 0 && p.seed == 42 && p.out_dtype == VKM_F16);
    vkm_context *ctx = test_context();
    merge_ok(ctx, &p, TMP "/cfg/out.gguf");
    vkm_err e;
    vkm_gguf g;
    assert_int_equal(vkm_gguf_open(TMP "/cfg/out.gguf", &g, &e), VKM_OK);
    assert_int_equal(vkm_gguf_tensor(&g, "blk.1.attn_v.weight")->dtype, VKM_F16);
    assert_int_equal(vkm_gguf_tensor(&g, "blk.1.attn_norm.weight")->dtype, VKM_F32);
    char method[32];
    assert_true(vkm_gguf_get_str(&g, "vkmoe.merge.method", method, sizeof method));
    assert_string_equal(method, "ties");
    vkm_gguf_close(&g);
    size_t nv;
    free(run_model(ctx, TMP "/cfg/out.gguf", &nv));
    test_context_done(ctx);

    static const struct {
        const char *yaml;
        vkm_status want;
        const char *msg;
    } bad[] = {
        {"merge_method: foo\nmodels:\n  - model: models/python\n", VKM_ERR_UNSUPPORTED, ":1: merge_method: unknown method 'foo'"},
        {"merge_method: ties\nmerge_methd: ties\n", VKM_ERR_FORMAT, ":2: unknown key 'merge_methd'"},
        {"merge_method: ties\nslices:\n  - sources: []\n", VKM_ERR_UNSUPPORTED, "slices"},
        {"merge_method: ties\nmodels:\n  - model: models/python\n    parameters:\n      weight: [0.1, 0.2]\n",
         VKM_ERR_UNSUPPORTED, ":5: models[0].parameters.weight: per-tensor"},
        {"merge_method: ties\nmodels:\n  - model: models/python+lora\n", VKM_ERR_UNSUPPORTED, "'+'"},
        {"merge_method: ties\nmodels:\n  - model: models/nothing\n", VKM_ERR_IO, "is not a file or folder"},
        {"merge_method: ties\nmodels: [\n", VKM_ERR_FORMAT, "YAML"},
        {"merge_method: ties\nmodels:\n  - model: models/python\n    parameters: {lambda: 2}\n", VKM_ERR_FORMAT,
         "unknown model parameter"},
        {"merge_method: model_stock\nmodels:\n  - model: models/python\nparameters: {filter_wise: true}\n",
         VKM_ERR_UNSUPPORTED, "filter-wise"},
        {"merge_method: linear\nmodels:\n  - model: models/python\ndtype: int8\n", VKM_ERR_UNSUPPORTED, "dtype"},
        {"merge_method: linear\nmodels:\n  - model: models/python\ntokenizer_source: union\n", VKM_ERR_UNSUPPORTED,
         "tokenizer_source"},
        {"models:\n  - model: models/python\n", VKM_ERR_FORMAT, "merge_method is missing"},
        {"merge_method: linear\nmodels:\n  - model: models/python\n    parameters: {weight: abc}\n", VKM_ERR_FORMAT,
         "not a finite number"},
        {"merge_method: linear\nmodels:\n  - parameters: {weight: 1}\n", VKM_ERR_FORMAT, "'model' is missing"},
        {"merge_method: slerp\nmodels:\n  - model: models/python\nmodels:\n  - model: models/legal\n", VKM_ERR_FORMAT,
         ":4: the config: 'models' is given twice"},
        {"merge_method: linear\nmodels:\n  - model: models/python\n    parameters: {weight: 1, weight: 2}\n",
         VKM_ERR_FORMAT, "'weight' is given twice"},
        {"merge_method: linear\nmodels:\n  - model: models/python\n---\nmerge_method: ties\n", VKM_ERR_FORMAT,
         ":5: a second YAML document"},
        {"merge_method: linear\nmodels:\n  - model: models/python\n---\nmodels: [\n", VKM_ERR_FORMAT, "YAML"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(TMP "/cfg/bad.yml", bad[i].yaml);
        vkm_status s = vkm_merge_config_load(TMP "/cfg/bad.yml", &p, msg, sizeof msg);
        if (s != bad[i].want || !strstr(msg, bad[i].msg))
            fail_msg("config %zu: status %d, message '%s'; want %d and '%s'", i, (int)s, msg, (int)bad[i].want,
                     bad[i].msg);
    }
}

/* ---- refusals ----------------------------------------------------------------------------------- */
static void expect_refused(vkm_context *ctx, const vkm_merge_params *p, const char *out, vkm_status want,
                           const char *substr)
{
    vkm_status s = vkm_merge(ctx, p, out);
    if (s != want || !strstr(vkm_context_errmsg(ctx), substr))
        fail_msg("%s: status %d, '%s'; want %d and '%s'", out, (int)s, vkm_context_errmsg(ctx), (int)want, substr);
    char left[2100];
    if (test_leftover(out, left, sizeof left)) fail_msg("a refused merge left %s", left);
}

static void test_refusals(void **state)
{
    (void)state;
    config_dir();
    vkm_context *ctx = test_context();
    /* another architecture's shapes */
    const char *other[3] = {full[0], TESTBED "/stories260K/model.gguf", full[2]};
    vkm_merge_params p = testbed_params(VKM_MERGE_LINEAR, other);
    expect_refused(ctx, &p, TMP "/r1.gguf", VKM_ERR_MISMATCH, "stories260K/model.gguf has");
    assert_false(vkm_exists(TMP "/r1.gguf"));
    /* the same shape, another tensor set: tied embeddings */
    vkm_model_shape sh = {1024, 128, 4, 4, 2, 0, 352, 128, 10000.0f, false};
    char msg[256];
    assert_int_equal(vkm_model_write_random(TMP "/untied.gguf", &sh, VKM_F32, 1, 0, 0, msg, sizeof msg), VKM_OK);
    sh.tied_embeddings = true;
    assert_int_equal(vkm_model_write_random(TMP "/tied.gguf", &sh, VKM_F32, 1, 0.1f, 2, msg, sizeof msg), VKM_OK);
    const char *ts[3] = {TMP "/untied.gguf", TMP "/tied.gguf", full[0]};
    p = testbed_params(VKM_MERGE_LINEAR, ts);
    p.n_models = 2;
    expect_refused(ctx, &p, TMP "/r2.gguf", VKM_ERR_MISMATCH, "tensor 'output.weight'");
    /* writing over an input, through a link */
    p = testbed_params(VKM_MERGE_TIES, full);
    expect_refused(ctx, &p, TMP "/cfg/models/base.gguf", VKM_ERR_INVALID_ARGUMENT, "is the input");
    /* missing parameters */
    p = testbed_params(VKM_MERGE_LINEAR, full);
    p.models[1].weight = NAN;
    expect_refused(ctx, &p, TMP "/r3.gguf", VKM_ERR_INVALID_ARGUMENT, "'weight' is required");
    p = testbed_params(VKM_MERGE_SLERP, full);
    p.t = 0.5;
    expect_refused(ctx, &p, TMP "/r4.gguf", VKM_ERR_INVALID_ARGUMENT, "exactly two models");
    p = testbed_params(VKM_MERGE_TIES, full);
    p.base[0] = 0;
    expect_refused(ctx, &p, TMP "/r5.gguf", VKM_ERR_INVALID_ARGUMENT, "needs a base_model");
    /* LoRA methods: a bake needs its base; a dtype they cannot honour is said so */
    vkm_merge_params lp = vkm_merge_default_params();
    lp.method = VKM_MERGE_LORA_BAKE;
    lp.n_models = 1;
    snprintf(lp.models[0].path, sizeof lp.models[0].path, "%s/third_party/models/testbed-moe/experts/python.gguf",
             VKM_SOURCE_DIR);
    expect_refused(ctx, &lp, TMP "/r6.gguf", VKM_ERR_INVALID_ARGUMENT, "base_model is required");
    snprintf(lp.base, sizeof lp.base, "%s/base/model.gguf", TESTBED);
    lp.out_dtype = VKM_F16;
    expect_refused(ctx, &lp, TMP "/r7.gguf", VKM_ERR_UNSUPPORTED, "dtype");
    lp.method = VKM_MERGE_LORA_CAT;
    expect_refused(ctx, &lp, TMP "/r8.gguf", VKM_ERR_UNSUPPORTED, "float32");
    lp.out_dtype = VKM_F32; /* what it writes: fine */
    merge_ok(ctx, &lp, TMP "/r9.gguf");
    lp.method = VKM_MERGE_LORA_LINEAR; /* never over its base either */
    snprintf(lp.base, sizeof lp.base, "%s", TMP "/cfg/models/base.gguf");
    expect_refused(ctx, &lp, TMP "/cfg/models/base.gguf", VKM_ERR_INVALID_ARGUMENT, "is the input");
    /* in a config, a bare dtype is the type merged in: a LoRA merge takes it */
    char lm[1600];
    snprintf(lm, sizeof lm, "merge_method: lora_linear\nmodels:\n  - model: %s\ndtype: bfloat16\n", lp.models[0].path);
    write_file(TMP "/cfg/lora_dtype.yml", lm);
    vkm_merge_params lc;
    if (vkm_merge_config_load(TMP "/cfg/lora_dtype.yml", &lc, lm, sizeof lm)) fail_msg("%s", lm);
    assert_int_equal(lc.out_dtype, VKM_WEIGHTS_AUTO);
    test_context_done(ctx);
}

/* ---- interruption -------------------------------------------------------------------------------- */
static bool stop_at_5(void *user, const vkm_merge_progress *pr)
{
    (void)user;
    return pr->tensors_done < 5;
}

static bool kill_at_5(void *user, const vkm_merge_progress *pr)
{
    (void)user;
    if (pr->tensors_done == 5) raise(SIGKILL);
    return true;
}

static void assert_nothing_at(const char *out)
{
    char left[2100];
    if (vkm_exists(out)) fail_msg("an interrupted merge left %s", out);
    if (test_leftover(out, left, sizeof left)) fail_msg("an interrupted merge left %s", left);
}

static void test_interrupt(void **state)
{
    (void)state;
    mkdir(TMP, 0777);
    /* cancelled through the progress callback */
    vkm_context *ctx = test_context();
    vkm_merge_params p = testbed_params(VKM_MERGE_TIES, full);
    p.progress = stop_at_5;
    assert_int_equal(vkm_merge(ctx, &p, TMP "/cancelled.gguf"), VKM_ERR_CANCELLED);
    assert_nothing_at(TMP "/cancelled.gguf");
    assert_int_equal(vkm_merge(ctx, &p, TMP "/cancelled_st"), VKM_ERR_CANCELLED); /* a folder it made: gone */
    assert_nothing_at(TMP "/cancelled_st");
    test_context_done(ctx);
    /* a process killed midway */
    pid_t pid = fork();
    if (pid == 0) {
        vkm_context *c = NULL;
        if (vkm_context_create(NULL, &c)) _exit(3);
        vkm_merge_params q = testbed_params(VKM_MERGE_LINEAR, full);
        q.progress = kill_at_5;
        vkm_merge(c, &q, TMP "/killed.gguf");
        _exit(4); /* not reached */
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    assert_nothing_at(TMP "/killed.gguf");
    /* SIGINT to `vkmoe merge` once it reports progress: exit 130, nothing written */
    vkm_model_shape sh = {4096, 256, 16, 4, 2, 0, 1024, 256, 10000.0f, false};
    char msg[256];
    if (!vkm_exists(TMP "/big_a.gguf")) {
        assert_int_equal(vkm_model_write_random(TMP "/big_a.gguf", &sh, VKM_F16, 7, 0, 0, msg, sizeof msg), VKM_OK);
        assert_int_equal(vkm_model_write_random(TMP "/big_b.gguf", &sh, VKM_F16, 7, 0.1f, 8, msg, sizeof msg), VKM_OK);
    }
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        execl(VKM_CLI, VKM_CLI, "merge", "--method", "ties", "--base", TMP "/big_a.gguf", "--model",
              TMP "/big_b.gguf", "--weight", "1", "--density", "0.3", "--chunk-mb", "1", "-o",
              TMP "/sigint.gguf", (char *)NULL);
        _exit(5);
    }
    close(fds[1]);
    char buf[4096];
    size_t got = 0;
    ssize_t k;
    while (got < sizeof buf - 1 && (k = read(fds[0], buf + got, sizeof buf - 1 - got)) > 0) {
        got += (size_t)k;
        buf[got] = 0;
        if (strstr(buf, "tensors")) break;
    }
    kill(pid, SIGINT);
    while (read(fds[0], buf, sizeof buf) > 0) {}
    close(fds[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 130)
        fail_msg("vkmoe merge after SIGINT: status %d (want exit 130)", status);
    assert_nothing_at(TMP "/sigint.gguf");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_testbed),
        cmocka_unit_test(test_qwen2_rows),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_interrupt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
