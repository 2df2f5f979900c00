/*
 * test_manifest.c — the MoErge manifest: defaults, every key parsed, paths resolved against the
 * manifest's folder, the file checks (adapters and fine-tunes against the base, equal ranks for
 * merge "average"), and a table of bad manifests each failing with its status and a message
 * naming the key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loader_util.h"
#include "writer.h"

/* The template with every "$T" replaced by the testbed's absolute path (static buffer). */
static const char *expand(const char *tmpl)
{
    static char out[16384];
    const char *t = shared_path("testbed");
    size_t k = 0, n = strlen(t);
    for (const char *p = tmpl; *p && k + n + 1 < sizeof out; p++) {
        if (p[0] == '$' && p[1] == 'T') {
            memcpy(out + k, t, n);
            k += n;
            p++;
        } else {
            out[k++] = *p;
        }
    }
    out[k] = 0;
    return out;
}

static vkm_status parse(const char *tmpl, vkm_manifest *m, vkm_err *e)
{
    const char *json = expand(tmpl);
    return vkm_manifest_parse(json, strlen(json), VKM_TEST_TMPDIR, m, e);
}

#define BASE "\"base\": \"$T/base/model.gguf\""
#define EXPERTS5                                                                                   \
    "\"experts\": [{\"name\": \"python\", \"lora\": \"$T/experts/python\"},"                      \
    " {\"name\": \"c\", \"lora\": \"$T/experts/c/adapter.gguf\", \"scale\": 0.5},"                \
    " {\"name\": \"shell\", \"lora\": \"$T/experts/shell\"},"                                     \
    " {\"name\": \"english\", \"lora\": \"$T/experts/english\"},"                                 \
    " {\"name\": \"legal\", \"lora\": \"$T/experts/legal/adapter.gguf\"}]"

static void test_defaults(void **state)
{
    (void)state;
    vkm_manifest m;
    vkm_err e = {0};
    expect_ok(parse("{" BASE ", \"experts\": [{\"name\": \"python\", \"lora\": \"$T/experts/python\"}]}", &m, &e), &e);
    assert_string_equal(m.base, shared_path("testbed/base/model.gguf"));
    assert_int_equal(m.n_experts, 1);
    assert_string_equal(m.experts[0].name, "python");
    assert_string_equal(m.experts[0].lora, shared_path("testbed/experts/python"));
    assert_string_equal(m.experts[0].model, "");
    assert_true(m.experts[0].scale == 1.0f);
    assert_int_equal(m.experts[0].n_calib + m.experts[0].n_positive + m.experts[0].n_negative, 0);
    assert_int_equal(m.router.policy, VKM_POLICY_UNIFORM);
    assert_int_equal(m.router.granularity, VKM_GRAN_TOKEN);
    assert_int_equal(m.router.depth, VKM_DEPTH_MODULE);
    assert_int_equal(m.router.top_k, 0);
    assert_int_equal(m.router.normalize, VKM_NORM_SOFTMAX);
    assert_true(m.router.temperature == 1.0f);
    assert_true(m.router.noise_std == 0.02f);
    assert_int_equal(m.router.seed, 0);
    assert_int_equal(m.router.always_on, -1);
    assert_string_equal(m.router.weights, "");
    assert_false(m.router.has_fixed || m.router.route_attention || m.router.fine_grained);
    assert_int_equal(m.aggregate, VKM_AGG_OUTPUT);
    assert_int_equal(m.merge, VKM_MERGE_AVERAGE);
    assert_int_equal(m.shared, VKM_SHARED_BASE);
    assert_string_equal(vkm_policy_name(VKM_POLICY_PHATGOOSE), "phatgoose");
    vkm_manifest_free(&m);
    vkm_manifest_free(&m);
}

static void test_every_key(void **state)
{
    (void)state;
    vkm_manifest m;
    vkm_err e = {0};
    /* the design document's example, with the testbed's files */
    expect_ok(parse("{" BASE ", \"description\": \"example\", \"experts\": ["
                    "{\"name\": \"python\", \"lora\": \"$T/experts/python\"},"
                    "{\"name\": \"legal\", \"lora\": \"$T/experts/legal/adapter.gguf\", \"scale\": 1.0},"
                    "{\"name\": \"english\", \"model\": \"$T/full/english/model.safetensors\"}],"
                    "\"router\": {\"policy\": \"arrow\", \"granularity\": \"token\", \"depth\": \"module\", \"top_k\": 2,"
                    " \"normalize\": \"softmax\", \"temperature\": 1.0, \"noise_std\": 0.02, \"seed\": 0,"
                    " \"always_on\": null, \"weights\": null, \"fixed\": null},"
                    "\"aggregate\": \"output\", \"merge\": \"average\"}", &m, &e), &e);
    assert_int_equal(m.n_experts, 3);
    assert_int_equal(m.router.policy, VKM_POLICY_ARROW);
    assert_int_equal(m.router.top_k, 2);
    assert_string_equal(m.experts[2].model, shared_path("testbed/full/english/model.safetensors"));
    vkm_manifest_free(&m);

    expect_ok(parse("{" BASE ", " EXPERTS5 ", \"router\": {\"policy\": \"fixed\", \"granularity\": \"task\","
                    " \"depth\": \"model\", \"normalize\": \"none\", \"seed\": 9007199254740992, \"always_on\": \"shell\","
                    " \"top_k\": 4, \"fixed\": [0.5, 0.25, 0, 0, 0.25]}, \"aggregate\": \"parameter\", \"merge\": \"exact\","
                    " \"shared\": \"average\"}", &m, &e), &e);
    assert_int_equal(m.router.policy, VKM_POLICY_FIXED);
    assert_int_equal(m.router.granularity, VKM_GRAN_TASK);
    assert_int_equal(m.router.depth, VKM_DEPTH_MODEL);
    assert_int_equal(m.router.normalize, VKM_NORM_NONE);
    assert_int_equal(m.router.seed, 9007199254740992ull);
    assert_int_equal(m.router.always_on, 2);
    assert_true(m.router.has_fixed && m.router.fixed[0] == 0.5f && m.router.fixed[4] == 0.25f);
    assert_true(m.experts[1].scale == 0.5f);
    assert_int_equal(m.aggregate, VKM_AGG_PARAMETER);
    assert_int_equal(m.merge, VKM_MERGE_EXACT);
    assert_int_equal(m.shared, VKM_SHARED_AVERAGE);
    vkm_manifest_free(&m);

    expect_ok(parse("{" BASE ", " EXPERTS5 ", \"router\": {\"policy\": \"fixed\", \"granularity\": \"sequence\","
                    " \"fixed\": {\"legal\": 2, \"c\": -1}}, \"aggregate\": \"logits\"}", &m, &e), &e);
    assert_true(m.router.fixed[4] == 2.0f && m.router.fixed[1] == -1.0f && m.router.fixed[0] == 0.0f);
    assert_int_equal(m.aggregate, VKM_AGG_LOGITS);
    vkm_manifest_free(&m);

    expect_ok(parse("{" BASE ", \"experts\": [{\"name\": \"py\", \"lora\": \"$T/experts/python\", \"calib\":"
                    " [\"$T/calib/python.txt\", \"$T/eval/python.txt\"]}, {\"name\": \"c\", \"lora\": \"$T/experts/c\","
                    " \"calib\": [\"$T/calib/c.txt\"]}], \"router\": {\"policy\": \"centroid\", \"granularity\": \"sequence\","
                    " \"depth\": \"model\", \"top_k\": 1, \"temperature\": 0.5}}", &m, &e), &e);
    assert_int_equal(m.experts[0].n_calib, 2);
    assert_string_equal(m.experts[0].calib[1], shared_path("testbed/eval/python.txt"));
    assert_true(m.router.temperature == 0.5f);
    vkm_manifest_free(&m);

    expect_ok(parse("{" BASE ", \"experts\": [{\"name\": \"en\", \"model\": \"$T/full/english\", \"positive\":"
                    " [\"Once upon a time\", \"The cat\"], \"negative\": [\"def f():\"]}, {\"name\": \"py\", \"model\":"
                    " \"$T/full/python/model.gguf\", \"positive\": [\"import os\"]}], \"router\": {\"policy\": \"hidden\","
                    " \"route_attention\": true, \"top_k\": 1}}", &m, &e), &e);
    assert_int_equal(m.experts[0].n_positive, 2);
    assert_string_equal(m.experts[0].positive[1], "The cat");
    assert_string_equal(m.experts[0].negative[0], "def f():");
    assert_true(m.router.route_attention && !m.router.fine_grained);
    assert_int_equal(m.router.depth, VKM_DEPTH_LAYER); /* FFN experts: one router per layer */
    vkm_manifest_free(&m);

    /* fine_grained: one router per FFN matrix, depth module by default */
    expect_ok(parse("{" BASE ", \"experts\": [{\"name\": \"en\", \"model\": \"$T/full/english\"}, {\"name\": \"py\","
                    " \"model\": \"$T/full/python/model.gguf\"}], \"router\": {\"fine_grained\": true}}", &m, &e), &e);
    assert_true(m.router.fine_grained);
    assert_int_equal(m.router.depth, VKM_DEPTH_MODULE);
    vkm_manifest_free(&m);

    const char *rf = tmp_path("router.safetensors");
    write_text(rf, "not checked here");
    expect_ok(parse("{" BASE ", " EXPERTS5 ", \"router\": {\"policy\": \"learned\", \"weights\": \"router.safetensors\","
                    " \"depth\": \"layer\"}}", &m, &e), &e);
    assert_string_equal(m.router.weights, rf); /* relative to the manifest's folder */
    vkm_manifest_free(&m);
}

/* A manifest file in its own folder with relative paths (symbolic links to the testbed). */
static void test_load_relative(void **state)
{
    (void)state;
    const char *dir = tmp_path("man");
    make_dir(dir);
    char p[1024], q[1024];
    snprintf(p, sizeof p, "%s/base", dir);
    unlink(p);
    assert_int_equal(symlink(shared_path("testbed/base"), p), 0);
    snprintf(p, sizeof p, "%s/experts", dir);
    unlink(p);
    assert_int_equal(symlink(shared_path("testbed/experts"), p), 0);
    snprintf(p, sizeof p, "%s/moe.json", dir);
    write_text(p, "{\n  \"base\": \"base/model.gguf\",\n  \"experts\": [\n    {\"name\": \"python\", \"lora\": \"experts/python\"},\n"
                  "    {\"name\": \"legal\", \"lora\": \"experts/legal/adapter.gguf\"}\n  ],\n  \"router\": {\"policy\": \"noisy\","
                  " \"top_k\": 1, \"noise_std\": 0.5, \"seed\": 7}\n}\n");
    vkm_manifest m;
    vkm_err e = {0};
    expect_ok(vkm_manifest_load(p, &m, &e), &e);
    snprintf(q, sizeof q, "%s/base/model.gguf", dir);
    assert_string_equal(m.base, q);
    snprintf(q, sizeof q, "%s/experts/legal/adapter.gguf", dir);
    assert_string_equal(m.experts[1].lora, q);
    assert_string_equal(m.path, p);
    assert_string_equal(m.dir, dir);
    assert_true(m.router.noise_std == 0.5f);
    assert_int_equal(m.router.seed, 7);
    expect_ok(vkm_manifest_check(&m, &e), &e);
    vkm_manifest_free(&m);
    write_text(p, "{\n  \"base\": \"base/model.gguf\",\n  \"experts\": [\n    {\"name\": \"python\", \"lora\": \"experts/pyton\"}\n  ]\n}\n");
    expect_fail("missing expert file", vkm_manifest_load(p, &m, &e), &e, VKM_ERR_IO, "experts[0].lora: ");
    assert_non_null(strstr(e.msg, "experts/pyton: no such file or folder"));
    assert_non_null(strstr(e.msg, "moe.json: "));
    write_text(p, "{\n  \"base\": \"base/model.gguf\",\n  \"router\": {\n    \"policy\": \"arrow\",\n    \"top_k\": 2,\n  }\n}\n");
    expect_fail("trailing comma", vkm_manifest_load(p, &m, &e), &e, VKM_ERR_FORMAT, "not valid JSON (line 6, column");
    snprintf(p, sizeof p, "%s/none.json", dir);
    expect_fail("no manifest", vkm_manifest_load(p, &m, &e), &e, VKM_ERR_IO, "cannot open");
}

static void write_rank4_adapter(const char *dir)
{
    make_dir(dir);
    char p[1024];
    snprintf(p, sizeof p, "%s/adapter_config.json", dir);
    write_text(p, "{\"r\": 4, \"lora_alpha\": 8, \"target_modules\": [\"q_proj\"]}");
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", dir);
    vkm_err e = {0};
    vkm_st_writer *w;
    int64_t na[2] = {128, 4}, nb[2] = {4, 128};
    static float zeros[512];
    expect_ok(vkm_st_writer_create(p, &w, &e), &e);
    vkm_st_writer_add_tensor(w, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", VKM_F32, 2, na);
    vkm_st_writer_add_tensor(w, "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", VKM_F32, 2, nb);
    vkm_st_writer_begin(w);
    vkm_st_writer_write(w, zeros, sizeof zeros);
    vkm_st_writer_write(w, zeros, sizeof zeros);
    expect_ok(vkm_st_writer_finish(w), &e);
    vkm_st_writer_free(w);
}

static void test_check_files(void **state)
{
    (void)state;
    vkm_manifest m;
    vkm_err e = {0};
    expect_ok(parse("{" BASE ", " EXPERTS5 "}", &m, &e), &e);
    expect_ok(vkm_manifest_check(&m, &e), &e);
    vkm_manifest_free(&m);
    expect_ok(parse("{\"base\": \"$T/base\", \"experts\": [{\"name\": \"py\", \"model\": \"$T/full/python/model.gguf\"},"
                    " {\"name\": \"en\", \"model\": \"$T/full/english\"}, {\"name\": \"c\", \"lora\": \"$T/experts/c\"}]}",
                    &m, &e), &e);
    expect_ok(vkm_manifest_check(&m, &e), &e);
    vkm_manifest_free(&m);

    static const struct {
        const char *name, *json, *msg;
        vkm_status want;
    } bad[] = {
        {"SmolLM adapter",
         "{" BASE ", \"experts\": [{\"name\": \"py\", \"lora\": \"$T/experts/python\"}, {\"name\": \"smol\", \"lora\":"
         " \"$T/../models/smollm135m-instruct-lora-medflashcards/final-5epochs\"}]}",
         "experts[1].lora: ", VKM_ERR_MISMATCH},
        {"stories as an FFN expert",
         "{" BASE ", \"experts\": [{\"name\": \"s\", \"model\": \"$T/stories260K/model.gguf\"}]}",
         "experts[0].model: ", VKM_ERR_MISMATCH},
        {"base is an adapter", "{\"base\": \"$T/experts/c/adapter.gguf\", \"experts\": [{\"name\": \"c\", \"lora\": \"$T/experts/c\"}]}",
         "base: ", VKM_ERR_FORMAT},
        {"adapter is a model", "{" BASE ", \"experts\": [{\"name\": \"c\", \"lora\": \"$T/base/model.gguf\"}]}",
         "experts[0].lora: ", VKM_ERR_FORMAT},
        {"unequal ranks", "{" BASE ", \"experts\": [{\"name\": \"py\", \"lora\": \"$T/experts/python\"}, {\"name\": \"r4\","
         " \"lora\": \"r4\"}], \"aggregate\": \"parameter\", \"router\": {\"granularity\": \"sequence\"}}",
         "experts[1].lora: rank 4 for blk.0.attn_q.weight but experts[0] has rank 8; merge \"average\" needs equal ranks",
         VKM_ERR_MISMATCH},
    };
    write_rank4_adapter(tmp_path("r4"));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        expect_ok(parse(bad[i].json, &m, &e), &e);
        expect_fail(bad[i].name, vkm_manifest_check(&m, &e), &e, bad[i].want, bad[i].msg);
        vkm_manifest_free(&m);
    }
    expect_ok(parse(bad[0].json, &m, &e), &e);
    vkm_manifest_check(&m, &e);
    assert_non_null(strstr(e.msg, "(hint: wrong base model?)"));
    vkm_manifest_free(&m);
    expect_ok(parse(bad[1].json, &m, &e), &e);
    vkm_manifest_check(&m, &e);
    assert_non_null(strstr(e.msg, "has vocabulary size 512 but the base has 1024"));
    vkm_manifest_free(&m);
    /* with merge "exact" unequal ranks are fine */
    expect_ok(parse("{" BASE ", \"experts\": [{\"name\": \"py\", \"lora\": \"$T/experts/python\"}, {\"name\": \"r4\","
                    " \"lora\": \"r4\"}], \"aggregate\": \"parameter\", \"merge\": \"exact\", \"router\": {\"granularity\": \"task\","
                    " \"policy\": \"fixed\", \"fixed\": [1, 1]}}", &m, &e), &e);
    expect_ok(vkm_manifest_check(&m, &e), &e);
    vkm_manifest_free(&m);
}

/* ---- bad manifests ------------------------------------------------------------------------ */
#define ONE "\"experts\": [{\"name\": \"a\", \"lora\": \"$T/experts/c\"}]"
#define TWO "\"experts\": [{\"name\": \"a\", \"lora\": \"$T/experts/c\"}, {\"name\": \"b\", \"lora\": \"$T/experts/python\"}]"
#define R(x) "{" BASE ", " TWO ", \"router\": {" x "}}"
#define FFN2 "\"experts\": [{\"name\": \"en\", \"model\": \"$T/full/english\"}, {\"name\": \"py\", \"model\": \"$T/full/python\"}]"

static const struct {
    const char *json;
    vkm_status want;
    const char *msg;
} bad_manifests[] = {
    {"{" BASE ", " ONE ", \"router\": {\"polcy\": \"arrow\"}}", VKM_ERR_FORMAT, "router.polcy: unknown key (did you mean 'policy'?)"},
    {"{\"bse\": \"x\", " ONE "}", VKM_ERR_FORMAT, "bse: unknown key (did you mean 'base'?)"},
    {"{" BASE ", \"experts\": [{\"name\": \"a\", \"lorra\": \"x\"}]}", VKM_ERR_FORMAT, "experts[0].lorra: unknown key (did you mean 'lora'?)"},
    {"{" BASE ", " ONE ", \"zzzzzzzz\": 1}", VKM_ERR_FORMAT, "manifest: zzzzzzzz: unknown key"},
    {"{" ONE "}", VKM_ERR_FORMAT, "base: missing"},
    {"{\"base\": 3, " ONE "}", VKM_ERR_FORMAT, "base: expected a path, got a number"},
    {"{\"base\": \"\", " ONE "}", VKM_ERR_FORMAT, "base: the path is empty"},
    {"{\"base\": \"$T/base/nope.gguf\", " ONE "}", VKM_ERR_IO, "base/nope.gguf: no such file or folder"},
    {"{" BASE "}", VKM_ERR_FORMAT, "experts: missing"},
    {"{" BASE ", \"experts\": []}", VKM_ERR_FORMAT, "experts: the list is empty"},
    {"{" BASE ", \"experts\": {}}", VKM_ERR_FORMAT, "experts: expected a list, got an object"},
    {"{" BASE ", \"experts\": [3]}", VKM_ERR_FORMAT, "experts[0]: expected an object, got a number"},
    {"{" BASE ", \"experts\": [{\"lora\": \"$T/experts/c\"}]}", VKM_ERR_FORMAT, "experts[0].name: missing"},
    {"{" BASE ", \"experts\": [{\"name\": \"\", \"lora\": \"$T/experts/c\"}]}", VKM_ERR_FORMAT, "experts[0].name: must be 1 to 63 bytes"},
    {"{" BASE ", \"experts\": [{\"name\": 1, \"lora\": \"$T/experts/c\"}]}", VKM_ERR_FORMAT, "experts[0].name: expected a string"},
    {"{" BASE ", \"experts\": [{\"name\": \"a\", \"lora\": \"$T/experts/c\"}, {\"name\": \"a\", \"lora\": \"$T/experts/c\"}]}",
     VKM_ERR_FORMAT, "experts[1].name: duplicate expert name 'a' (also experts[0])"},
    {"{" BASE ", \"experts\": [{\"name\": \"a\", \"lora\": \"$T/experts/c\", \"model\": \"$T/full/python\"}]}", VKM_ERR_FORMAT,
     "experts[0]: needs exactly one of \"lora\""},
    {"{" BASE ", \"experts\": [{\"name\": \"a\"}]}", VKM_ERR_FORMAT, "experts[0]: needs exactly one of"},
    {"{" BASE ", \"experts\": [{\"name\": \"a\", \"lora\": \"$T/experts/c\", \"scale\": \"2\"}]}", VKM_ERR_FORMAT,
     "experts[0].scale: expected a number, got a string"},
    {"{" BASE ", \"experts\": [{\"name\": \"a\", \"lora\": \"$T/experts/c\", \"calib\": \"$T/calib/c.txt\"}]}", VKM_ERR_FORMAT,
     "experts[0].calib: expected a list of paths, got a string"},
    {"{" BASE ", \"experts\": [{\"name\": \"a\", \"lora\": \"$T/experts/c\", \"calib\": [\"$T/calib/c.txt\", \"$T/calib/x.txt\"]}],"
     " \"router\": {\"policy\": \"centroid\"}}", VKM_ERR_IO, "experts[0].calib[1]: "},
    {"{" BASE ", \"experts\": [{\"name\": \"a\", \"lora\": \"$T/experts/c\", \"positive\": [1]}]}", VKM_ERR_FORMAT,
     "experts[0].positive[0]: expected a string, got a number"},
    {R("\"policy\": \"bogus\""), VKM_ERR_FORMAT,
     "router.policy: 'bogus' is not one of uniform, noisy, learned, arrow, centroid, phatgoose, hidden, fixed"},
    {R("\"policy\": 1"), VKM_ERR_FORMAT, "router.policy: expected one of uniform"},
    {R("\"granularity\": \"batch\""), VKM_ERR_FORMAT, "router.granularity: 'batch' is not one of token, sequence, task"},
    {R("\"depth\": \"block\""), VKM_ERR_FORMAT, "router.depth: 'block' is not one of module, layer, model"},
    {R("\"normalize\": \"l2\""), VKM_ERR_FORMAT, "router.normalize: 'l2' is not one of softmax, sigmoid, none"},
    {"{" BASE ", " ONE ", \"aggregate\": \"sum\"}", VKM_ERR_FORMAT, "aggregate: 'sum' is not one of output, parameter, logits"},
    {"{" BASE ", " ONE ", \"merge\": \"ties\"}", VKM_ERR_FORMAT, "merge: 'ties' is not one of average, exact"},
    {"{" BASE ", " ONE ", \"shared\": \"none\"}", VKM_ERR_FORMAT, "shared: 'none' is not one of base, average"},
    {R("\"top_k\": 3"), VKM_ERR_FORMAT, "router.top_k: expected an integer from 0 to 2, got a number out of range"},
    {R("\"top_k\": -1"), VKM_ERR_FORMAT, "router.top_k: expected an integer from 0 to 2"},
    {R("\"top_k\": 1.5"), VKM_ERR_FORMAT, "router.top_k: expected an integer"},
    {R("\"top_k\": \"1\""), VKM_ERR_FORMAT, "router.top_k: expected an integer from 0 to 2, got a string"},
    {R("\"temperature\": 0"), VKM_ERR_FORMAT, "router.temperature: 0 is out of range (above 0"},
    {R("\"temperature\": -1"), VKM_ERR_FORMAT, "router.temperature: -1 is out of range"},
    {R("\"temperature\": \"1\""), VKM_ERR_FORMAT, "router.temperature: expected a number, got a string"},
    {R("\"noise_std\": -0.1"), VKM_ERR_FORMAT, "router.noise_std: -0.1 is out of range (from 0"},
    {R("\"seed\": -1"), VKM_ERR_FORMAT, "router.seed: expected an integer from 0 to 9007199254740992"},
    {R("\"seed\": 1e20"), VKM_ERR_FORMAT, "router.seed: expected an integer"},
    {R("\"always_on\": \"zz\""), VKM_ERR_FORMAT, "router.always_on: no expert is named 'zz'"},
    {R("\"always_on\": 0"), VKM_ERR_FORMAT, "router.always_on: expected an expert name or null, got a number"},
    {R("\"always_on\": \"a\", \"top_k\": 2"), VKM_ERR_FORMAT, "router.top_k: 2 with an always-on expert: top-k is taken over the other 1"},
    {R("\"policy\": \"fixed\", \"fixed\": [1]"), VKM_ERR_FORMAT, "router.fixed: 1 weights for 2 experts"},
    {R("\"policy\": \"fixed\", \"fixed\": {\"zz\": 1}"), VKM_ERR_FORMAT, "router.fixed.zz: no expert has this name"},
    {R("\"policy\": \"fixed\", \"fixed\": [1, \"x\"]"), VKM_ERR_FORMAT, "router.fixed[1]: expected a number, got a string"},
    {R("\"policy\": \"fixed\", \"fixed\": [1e300, 1]"), VKM_ERR_FORMAT, "router.fixed[0]: expected a number, got a number out of range"},
    {"{" BASE ", \"experts\": [{\"name\": \"a\", \"lora\": \"$T/experts/c\", \"scale\": 1e31}]}", VKM_ERR_FORMAT,
     "experts[0].scale: expected a number, got a number out of range"},
    {R("\"policy\": \"fixed\", \"fixed\": {\"a\": true}"), VKM_ERR_FORMAT, "router.fixed.a: expected a number, got a boolean"},
    {R("\"policy\": \"fixed\", \"fixed\": 1"), VKM_ERR_FORMAT, "router.fixed: expected a list of weights in expert order"},
    {R("\"policy\": \"arrow\", \"fixed\": [1, 1]"), VKM_ERR_FORMAT, "router.fixed: only policy fixed uses fixed weights (policy is arrow)"},
    {R("\"policy\": \"fixed\""), VKM_ERR_FORMAT, "router.fixed: required by policy fixed"},
    {R("\"policy\": \"learned\""), VKM_ERR_FORMAT, "router.weights: required by policy learned"},
    {R("\"policy\": \"phatgoose\""), VKM_ERR_FORMAT, "router.weights: required by policy phatgoose"},
    {R("\"weights\": \"$T/base/model.gguf\""), VKM_ERR_FORMAT, "router.weights: policy uniform does not use a router file"},
    {R("\"policy\": \"learned\", \"weights\": \"$T/nope.safetensors\""), VKM_ERR_IO, "router.weights: "},
    {R("\"policy\": \"centroid\""), VKM_ERR_FORMAT, "router.weights: policy centroid needs a router file or calib files for every expert"},
    {"{" BASE ", \"experts\": [{\"name\": \"a\", \"lora\": \"$T/experts/c\", \"calib\": [\"$T/calib/c.txt\"]}]}", VKM_ERR_FORMAT,
     "experts[0].calib: calibration files are used by policies centroid and learned"},
    {"{" BASE ", \"experts\": [{\"name\": \"a\", \"lora\": \"$T/experts/c\", \"negative\": [\"x\"]}]}", VKM_ERR_FORMAT,
     "experts[0].negative: prompts are used by policy hidden only (policy is uniform)"},
    {"{" BASE ", \"experts\": [{\"name\": \"a\", \"lora\": \"$T/experts/c\", \"positive\": [\"x\"]}, {\"name\": \"b\", \"lora\":"
     " \"$T/experts/c\"}], \"router\": {\"policy\": \"hidden\"}}", VKM_ERR_FORMAT, "experts: policy hidden needs positive prompts for every expert"},
    {"{" BASE ", " ONE ", \"aggregate\": \"parameter\"}", VKM_ERR_FORMAT,
     "aggregate: parameter aggregation merges once per sequence or task"},
    {R("\"route_attention\": true"), VKM_ERR_FORMAT, "router.route_attention: only applies to FFN experts"},
    {R("\"fine_grained\": 1"), VKM_ERR_FORMAT, "router.fine_grained: expected true or false, got a number"},
    {R("\"fine_grained\": true, \"depth\": \"layer\""), VKM_ERR_FORMAT,
     "router.fine_grained: only applies to FFN experts (\"model\"), and there are none"},
    {"{" BASE ", " FFN2 ", \"router\": {\"fine_grained\": true, \"depth\": \"layer\"}}", VKM_ERR_FORMAT,
     "router.fine_grained: routes gate, up and down one by one: depth \"module\", not \"layer\""},
    {"{" BASE ", \"experts\": [{\"name\": \"en\", \"model\": \"$T/full/english\", \"positive\": [\"x\"]}], "
     "\"router\": {\"policy\": \"hidden\", \"fine_grained\": true}}", VKM_ERR_FORMAT,
     "router.fine_grained: policy hidden makes one gate per layer"},
    {"{" BASE ", " ONE ", \"router\": [1]}", VKM_ERR_FORMAT, "router: expected an object, got an array"},
    {"{" BASE ", " ONE ", \"description\": 1}", VKM_ERR_FORMAT, "description: expected a string, got a number"},
    {"{" BASE ", " ONE ", \"router\": {\"policy\": \"arrow\", \"policy\": \"noisy\"}}", VKM_ERR_FORMAT, "duplicate key 'policy' in 'router'"},
    {"{" BASE ", " ONE ",\n \"router\": {\"policy\": arrow}}", VKM_ERR_FORMAT, "not valid JSON (line 2, column"},
    {"[1, 2]", VKM_ERR_FORMAT, "expected a JSON object, got an array"},
    {"{\"base\": \"a\\u0000b\"}", VKM_ERR_FORMAT, "(NUL) escape"},
    {"", VKM_ERR_FORMAT, "not valid JSON"},
};

static void test_bad_manifests(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_manifests / sizeof bad_manifests[0]; i++) {
        vkm_manifest m;
        vkm_err e = {0};
        char name[32];
        snprintf(name, sizeof name, "bad manifest %zu", i);
        expect_fail(name, parse(bad_manifests[i].json, &m, &e), &e, bad_manifests[i].want, bad_manifests[i].msg);
    }
    /* more experts than the limit */
    char json[16384];
    size_t k = (size_t)snprintf(json, sizeof json, "{" BASE ", \"experts\": [");
    for (int i = 0; i < 65; i++)
        k += (size_t)snprintf(json + k, sizeof json - k, "%s{\"name\": \"e%d\", \"lora\": \"$T/experts/c\"}", i ? "," : "", i);
    snprintf(json + k, sizeof json - k, "]}");
    vkm_manifest m;
    vkm_err e = {0};
    expect_fail("65 experts", parse(json, &m, &e), &e, VKM_ERR_LIMIT, "experts: 65 experts, more than 64");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),      cmocka_unit_test(test_every_key),
        cmocka_unit_test(test_load_relative), cmocka_unit_test(test_check_files),
        cmocka_unit_test(test_bad_manifests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
