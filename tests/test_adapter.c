/*
 * test_adapter.c — LoRA adapters: the five testbed experts (PEFT and their GGUF twins, equal once
 * the q/k B rows are permuted), the four real SmolLM PEFT adapters, validation against bases
 * (and the wrong base), rank_pattern / alpha_pattern / use_rslora, and a table of malformed
 * adapters (DoRA, fan_in_fan_out, embedding and lm_head adapters, unpaired halves, rank
 * mismatches, ...) each failing with its own status and message.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loader_util.h"
#include "writer.h"

static const char *const domains[] = {"python", "c", "shell", "english", "legal"};

/* ---- the testbed experts ------------------------------------------------------------------ */
static void check_testbed_pairs(const vkm_adapter_src *a)
{
    assert_int_equal(a->n_pairs, 28);
    assert_int_equal(a->r, 8);
    assert_true(a->alpha == 16.0f);
    for (uint32_t i = 0; i < a->n_pairs; i++) {
        const vkm_lora_pair *p = &a->pairs[i];
        assert_int_equal(p->layer, i / 7);
        assert_int_equal(p->module, (vkm_module)(i % 7));
        assert_int_equal(p->rank, 8);
        assert_true(p->alpha == 16.0f && p->scale == 2.0f);
        int64_t in = p->module == VKM_MOD_DOWN ? 352 : 128;
        int64_t out = p->module == VKM_MOD_K || p->module == VKM_MOD_V ? 64
                      : p->module == VKM_MOD_GATE || p->module == VKM_MOD_UP ? 352 : 128;
        assert_int_equal(p->a->ne[0], in);
        assert_int_equal(p->a->ne[1], 8);
        assert_int_equal(p->b->ne[0], 8);
        assert_int_equal(p->b->ne[1], out);
        char target[96];
        snprintf(target, sizeof target, "blk.%u.%s.weight", p->layer, vkm_module_gguf_name(p->module));
        assert_string_equal(p->target, target);
    }
}

static void test_testbed_experts(void **state)
{
    (void)state;
    vkm_model_src base_g, base_s, stories;
    vkm_err e = {0};
    expect_ok(vkm_model_src_open(shared_path("testbed/base/model.gguf"), &base_g, &e), &e);
    expect_ok(vkm_model_src_open(shared_path("testbed/base"), &base_s, &e), &e);
    expect_ok(vkm_model_src_open(shared_path("testbed/stories260K/model.gguf"), &stories, &e), &e);
    for (int d = 0; d < 5; d++) {
        char dir[128], gg[160];
        snprintf(dir, sizeof dir, "testbed/experts/%s", domains[d]);
        snprintf(gg, sizeof gg, "%s/adapter.gguf", dir);
        vkm_adapter_src p, g;
        expect_ok(vkm_adapter_open(shared_path(dir), &p, &e), &e);
        expect_ok(vkm_adapter_open(shared_path(gg), &g, &e), &e);
        assert_int_equal(p.format, VKM_SRC_SAFETENSORS);
        assert_int_equal(p.rope_layout, VKM_ROPE_HALF);
        assert_int_equal(g.format, VKM_SRC_GGUF);
        assert_int_equal(g.rope_layout, VKM_ROPE_INTERLEAVED);
        assert_string_equal(g.arch, "llama");
        assert_string_equal(p.arch, "");
        assert_string_equal(p.base_model, "vkmoe-testbed-base");
        assert_false(p.rslora);
        assert_string_equal(p.adapter_name, "");
        check_testbed_pairs(&p);
        check_testbed_pairs(&g);
        if (d == 0) {
            float *x = tensor_f32(p.pairs[0].a);
            assert_true(x[0] == -0.06757567822933197f && x[3] == -0.037207890301942825f);
            free(x);
        }
        /* the GGUF twin is the PEFT adapter with its q/k B rows in the interleaved layout */
        for (uint32_t i = 0; i < p.n_pairs; i++) {
            const vkm_lora_pair *x = &p.pairs[i], *y = &g.pairs[i];
            assert_memory_equal(x->a->data, y->a->data, x->a->nbytes);
            bool rope = x->module == VKM_MOD_Q || x->module == VKM_MOD_K;
            int64_t r = x->b->ne[0], rows = x->b->ne[1];
            float *bx = tensor_f32(x->b), *by = tensor_f32(y->b);
            for (int64_t row = 0; row < rows; row++) {
                int64_t src = rope ? vkm_rope_row_map(VKM_ROPE_INTERLEAVED, VKM_ROPE_HALF, (uint32_t)row, 32) : row;
                if (memcmp(by + row * r, bx + src * r, (size_t)r * sizeof(float)))
                    fail_msg("%s: %s B row %lld differs", domains[d], x->target, (long long)row);
            }
            if (rope) assert_memory_not_equal(bx + r, by + r, (size_t)r * sizeof(float));
            free(bx);
            free(by);
        }
        expect_ok(vkm_adapter_validate(&p, &base_g, &e), &e);
        expect_ok(vkm_adapter_validate(&p, &base_s, &e), &e);
        expect_ok(vkm_adapter_validate(&g, &base_g, &e), &e);
        expect_fail("wrong base", vkm_adapter_validate(&g, &stories, &e), &e, VKM_ERR_MISMATCH,
                    "the adapter has in = 128, out = 128 but the base weight blk.0.attn_q.weight has in = 64, "
                    "out = 64 (hint: wrong base model?)");
        vkm_adapter_close(&p);
        vkm_adapter_close(&g);
    }
    vkm_model_src_close(&base_g);
    vkm_model_src_close(&base_s);
    vkm_model_src_close(&stories);
}

static void test_smollm_adapters(void **state)
{
    (void)state;
    static const char *const smol[] = {"final-5epochs", "final-100epochs", "ckpt-100epochs-step1000",
                                       "ckpt-100epochs-step19500"};
    vkm_model_src base;
    vkm_err e = {0};
    expect_ok(vkm_model_src_open(shared_path("testbed/base/model.gguf"), &base, &e), &e);
    for (int i = 0; i < 4; i++) {
        char dir[256];
        snprintf(dir, sizeof dir, "models/smollm135m-instruct-lora-medflashcards/%s", smol[i]);
        vkm_adapter_src a;
        expect_ok(vkm_adapter_open(shared_path(dir), &a, &e), &e);
        assert_int_equal(a.n_pairs, 60);
        assert_int_equal(a.r, 16);
        assert_true(a.alpha == 32.0f);
        assert_string_equal(a.base_model, "HuggingFaceTB/SmolLM-135M-Instruct");
        for (uint32_t k = 0; k < a.n_pairs; k++) {
            const vkm_lora_pair *p = &a.pairs[k];
            assert_int_equal(p->layer, k / 2);
            assert_int_equal(p->module, k % 2 ? VKM_MOD_V : VKM_MOD_Q);
            assert_true(p->scale == 2.0f);
            assert_int_equal(p->a->ne[0], 576);
            assert_int_equal(p->a->ne[1], 16);
            assert_int_equal(p->b->ne[1], k % 2 ? 192 : 576);
        }
        if (i == 0) {
            float *x = tensor_f32(a.pairs[0].b);
            assert_true(x[0] == 0.09484095871448517f && x[3] == -0.006705008912831545f);
            free(x);
        }
        expect_fail("SmolLM on the testbed base", vkm_adapter_validate(&a, &base, &e), &e,
                    VKM_ERR_MISMATCH, "in = 576, out = 576 but the base weight blk.0.attn_q.weight has in = 128");
        vkm_adapter_close(&a);
    }
    vkm_model_src_close(&base);
}

/* ---- synthetic adapters ------------------------------------------------------------------- */
typedef struct tspec {
    const char *name;
    int n_dims;
    int64_t ne0, ne1, ne2;
    vkm_dtype dtype;
} tspec;

/* A PEFT folder: config text and the listed tensors (shapes in GGUF order). */
static void write_peft(const char *dir, const char *config, const tspec *t, int n)
{
    make_dir(dir);
    char p[1024];
    snprintf(p, sizeof p, "%s/adapter_config.json", dir);
    write_text(p, config);
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", dir);
    vkm_err e = {0};
    vkm_st_writer *w;
    expect_ok(vkm_st_writer_create(p, &w, &e), &e);
    for (int i = 0; i < n; i++) {
        int64_t ne[3] = {t[i].ne0, t[i].ne1, t[i].ne2};
        vkm_st_writer_add_tensor(w, t[i].name, t[i].dtype ? t[i].dtype : VKM_F32, t[i].n_dims, ne);
    }
    vkm_st_writer_begin(w);
    static const uint8_t zeros[4096];
    for (int i = 0; i < n; i++) {
        uint64_t bytes;
        vkm_dtype dt = t[i].dtype ? t[i].dtype : VKM_F32;
        assert_true(vkm_dtype_bytes(dt, (uint64_t)(t[i].ne0 * t[i].ne1 * (t[i].n_dims > 2 ? t[i].ne2 : 1)), &bytes));
        assert_true(bytes <= sizeof zeros);
        vkm_st_writer_write(w, zeros, bytes);
    }
    expect_ok(vkm_st_writer_finish(w), &e);
    vkm_st_writer_free(w);
}

#define PRE "base_model.model.model.layers."
#define CFG(extra) "{\"peft_type\": \"LORA\", \"r\": 4, \"lora_alpha\": 8, \"target_modules\": [\"q_proj\", \"v_proj\", \"down_proj\"]" extra "}"

/* q_proj (16 -> 16), v_proj (16 -> 8), down_proj (24 -> 16) of layers 0 and 1, rank 4
 * (rank 2 for q_proj, rank 6 for layer 1's down_proj: the pattern test). */
static const tspec patterned[] = {
    {PRE "0.self_attn.q_proj.lora_A.weight", 2, 16, 2, 1, 0},   {PRE "0.self_attn.q_proj.lora_B.weight", 2, 2, 16, 1, 0},
    {PRE "0.self_attn.v_proj.lora_A.weight", 2, 16, 4, 1, 0},   {PRE "0.self_attn.v_proj.lora_B.weight", 2, 4, 8, 1, 0},
    {PRE "1.self_attn.q_proj.lora_A.weight", 2, 16, 2, 1, 0},   {PRE "1.self_attn.q_proj.lora_B.weight", 2, 2, 16, 1, 0},
    {PRE "1.mlp.down_proj.lora_A.weight", 2, 24, 6, 1, 0},      {PRE "1.mlp.down_proj.lora_B.weight", 2, 6, 16, 1, 0},
    {PRE "0.mlp.down_proj.lora_A.weight", 2, 24, 4, 1, 0},      {PRE "0.mlp.down_proj.lora_B.weight", 2, 4, 16, 1, 0},
};

static void test_patterns(void **state)
{
    (void)state;
    const char *dir = tmp_path("peft_patterns");
    write_peft(dir, CFG(", \"use_rslora\": true, \"rank_pattern\": {\"proj\": 99, \"q_proj\": 2,"
                        " \"model.layers.1.mlp.down_proj\": 6}, \"alpha_pattern\": {\"layers.0.self_attn.v_proj\": 3,"
                        " \"v_proj\": 5}, \"bias\": \"none\", \"modules_to_save\": null, \"use_dora\": false"),
               patterned, 10);
    vkm_adapter_src a;
    vkm_err e = {0};
    expect_ok(vkm_adapter_open(dir, &a, &e), &e);
    assert_true(a.rslora);
    assert_int_equal(a.n_pairs, 5);
    static const struct {
        uint32_t layer;
        vkm_module m;
        uint32_t rank;
        float alpha;
    } want[] = {{0, VKM_MOD_Q, 2, 8}, {0, VKM_MOD_V, 4, 3}, {0, VKM_MOD_DOWN, 4, 8},
                {1, VKM_MOD_Q, 2, 8}, {1, VKM_MOD_DOWN, 6, 8}};
    for (int i = 0; i < 5; i++) {
        const vkm_lora_pair *p = &a.pairs[i];
        assert_int_equal(p->layer, want[i].layer);
        assert_int_equal(p->module, want[i].m);
        assert_int_equal(p->rank, want[i].rank);
        assert_true(p->alpha == want[i].alpha);
        assert_true(fabsf(p->scale - want[i].alpha / sqrtf((float)want[i].rank)) < 1e-6f);
    }
    vkm_adapter_close(&a);

    /* an adapter name, a string target_modules, plain scale */
    static const tspec named[] = {
        {PRE "0.self_attn.k_proj.lora_A.default.weight", 2, 16, 4, 1, VKM_BF16},
        {PRE "0.self_attn.k_proj.lora_B.default.weight", 2, 4, 8, 1, VKM_F16},
    };
    write_peft(dir, "{\"r\": 4, \"lora_alpha\": 2, \"target_modules\": \"all-linear\"}", named, 2);
    expect_ok(vkm_adapter_open(dir, &a, &e), &e);
    assert_string_equal(a.adapter_name, "default");
    assert_int_equal(a.n_pairs, 1);
    assert_true(a.pairs[0].scale == 0.5f);
    assert_int_equal(a.pairs[0].a->dtype, VKM_BF16);
    vkm_adapter_close(&a);

    /* GGUF LoRA without adapter.lora.alpha: scale 1 */
    const char *gp = tmp_path("noalpha.gguf");
    vkm_gguf_writer *w;
    int64_t na[2] = {16, 4}, nb[2] = {4, 8};
    float zeros[64] = {0};
    expect_ok(vkm_gguf_writer_create(gp, &w, &e), &e);
    vkm_gguf_writer_set_str(w, "general.type", "adapter");
    vkm_gguf_writer_set_str(w, "adapter.type", "lora");
    vkm_gguf_writer_add_tensor(w, "blk.3.attn_v.weight.lora_a", VKM_F32, 2, na);
    vkm_gguf_writer_add_tensor(w, "blk.3.attn_v.weight.lora_b", VKM_F32, 2, nb);
    vkm_gguf_writer_begin(w);
    vkm_gguf_writer_write(w, zeros, sizeof zeros);
    vkm_gguf_writer_write(w, zeros, 128);
    expect_ok(vkm_gguf_writer_finish(w), &e);
    vkm_gguf_writer_free(w);
    expect_ok(vkm_adapter_open(gp, &a, &e), &e);
    assert_true(a.pairs[0].scale == 1.0f && a.pairs[0].alpha == 4.0f);
    assert_int_equal(a.pairs[0].layer, 3);
    assert_string_equal(a.arch, "");
    vkm_adapter_close(&a);
}

/* ---- malformed adapters ------------------------------------------------------------------- */
/* The two halves of one q_proj pair (macros: static tables cannot copy other objects). */
#define QA {PRE "0.self_attn.q_proj.lora_A.weight", 2, 16, 4, 1, 0}
#define QB {PRE "0.self_attn.q_proj.lora_B.weight", 2, 4, 16, 1, 0}

static void test_peft_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *name, *config;
        tspec t[3];
        int n;
        vkm_status want;
        const char *msg;
    } cases[] = {
        {"DoRA", CFG(", \"use_dora\": true"), {{0}}, 0, VKM_ERR_UNSUPPORTED, "use_dora: DoRA (weight-decomposed LoRA) is not supported"},
        {"fan_in_fan_out", CFG(", \"fan_in_fan_out\": true"), {{0}}, 0, VKM_ERR_UNSUPPORTED, "fan_in_fan_out: a transposed"},
        {"bias all", CFG(", \"bias\": \"all\""), {{0}}, 0, VKM_ERR_UNSUPPORTED, "bias: adapters that train biases"},
        {"lora_bias", CFG(", \"lora_bias\": true"), {{0}}, 0, VKM_ERR_UNSUPPORTED, "lora_bias: a LoRA bias is not supported"},
        {"modules_to_save", CFG(", \"modules_to_save\": [\"lm_head\"]"), {{0}}, 0, VKM_ERR_UNSUPPORTED, "modules_to_save"},
        {"IA3", "{\"peft_type\": \"IA3\"}", {{0}}, 0, VKM_ERR_UNSUPPORTED, "peft_type 'IA3' is not supported"},
        {"r string", "{\"r\": \"8\"}", {{0}}, 0, VKM_ERR_FORMAT, "r: expected a rank from 1 to 65536, got a string"},
        {"r zero", "{\"r\": 0}", {{0}}, 0, VKM_ERR_FORMAT, "r: expected a rank"},
        {"alpha string", "{\"lora_alpha\": \"16\"}", {{0}}, 0, VKM_ERR_FORMAT, "lora_alpha: expected a number, got a string"},
        {"alpha beyond float", "{\"lora_alpha\": 1e300}", {{0}}, 0, VKM_ERR_FORMAT,
         "lora_alpha: expected a number, got a number out of range"},
        {"alpha_pattern beyond float", CFG(", \"alpha_pattern\": {\"q_proj\": -1e39}"), {{0}}, 0, VKM_ERR_FORMAT,
         "alpha_pattern['q_proj']: expected a number, got a number out of range"},
        {"use_dora string", "{\"use_dora\": \"yes\"}", {{0}}, 0, VKM_ERR_FORMAT, "use_dora: expected true or false"},
        {"targets number", "{\"target_modules\": 3}", {{0}}, 0, VKM_ERR_FORMAT, "target_modules: expected a list"},
        {"targets of numbers", "{\"target_modules\": [3]}", {{0}}, 0, VKM_ERR_FORMAT, "target_modules[]: expected a module name"},
        {"rank_pattern value", CFG(", \"rank_pattern\": {\"q_proj\": \"2\"}"), {{0}}, 0, VKM_ERR_FORMAT,
         "rank_pattern['q_proj']: expected a rank from 1 to 65536, got a string"},
        {"alpha_pattern list", CFG(", \"alpha_pattern\": [1]"), {{0}}, 0, VKM_ERR_FORMAT, "alpha_pattern: expected an object"},
        {"config not JSON", "{\"r\": 8", {{0}}, 0, VKM_ERR_FORMAT, "not valid JSON"},
        {"config array", "[]", {{0}}, 0, VKM_ERR_FORMAT, "the config: expected an object, got an array"},
        {"duplicate key", "{\"r\": 4, \"r\": 8}", {{0}}, 0, VKM_ERR_FORMAT, "duplicate key 'r'"},
        {"not in targets", "{\"r\": 4, \"target_modules\": [\"v_proj\"]}", {QA, QB}, 2,
         VKM_ERR_FORMAT, "adapts model.layers.0.self_attn.q_proj, which target_modules does not list"},
        {"embedding", CFG(""), {{"base_model.model.model.embed_tokens.lora_embedding_A", 2, 4, 32, 1, 0}}, 1,
         VKM_ERR_UNSUPPORTED, "embedding adapters are not supported"},
        {"lm_head", CFG(""), {{"base_model.model.lm_head.lora_A.weight", 2, 16, 4, 1, 0}}, 1,
         VKM_ERR_UNSUPPORTED, "'base_model.model.lm_head.lora_A.weight': lm_head adapters are not supported"},
        {"bias tensor", CFG(""), {{PRE "0.self_attn.q_proj.bias", 1, 16, 1, 1, 0}}, 1, VKM_ERR_UNSUPPORTED,
         "bias adapters are not supported"},
        {"magnitude", CFG(""), {{PRE "0.self_attn.q_proj.lora_magnitude_vector", 1, 16, 1, 1, 0}}, 1,
         VKM_ERR_UNSUPPORTED, "DoRA magnitude vectors are not supported"},
        {"A alone", CFG(""), {QA}, 1, VKM_ERR_FORMAT,
         "tensor '" PRE "0.self_attn.q_proj.lora_A.weight' has no matching B"},
        {"B alone", CFG(""), {QB}, 1, VKM_ERR_FORMAT, "q_proj.lora_B.weight' has no matching A"},
        {"A/B rank mismatch", CFG(""), {QA, {PRE "0.self_attn.q_proj.lora_B.weight", 2, 3, 16, 1, 0}}, 2,
         VKM_ERR_FORMAT, "rank mismatch for blk.0.attn_q.weight: '" PRE "0.self_attn.q_proj.lora_A.weight' has rank 4"},
        {"rank vs config", "{\"r\": 8}", {QA, QB}, 2, VKM_ERR_FORMAT,
         "has rank 4 but the adapter config says r = 8"},
        {"mixed adapter names", CFG(""), {{PRE "0.self_attn.q_proj.lora_A.one.weight", 2, 16, 4, 1, 0},
                                          {PRE "0.self_attn.q_proj.lora_B.two.weight", 2, 4, 16, 1, 0}}, 2,
         VKM_ERR_FORMAT, "has adapter name 'two' but others have 'one'"},
        {"two A", CFG(""), {{PRE "0.self_attn.q_proj.lora_A.weight", 2, 16, 4, 1, 0},
                            {PRE "0.self_attn.q_proj.lora_A.x.weight", 2, 16, 4, 1, 0}}, 2,
         VKM_ERR_FORMAT, "has adapter name"},
        {"unknown tensor", CFG(""), {{"base_model.model.model.norm.weight", 1, 16, 1, 1, 0}}, 1,
         VKM_ERR_FORMAT, "is not a PEFT LoRA tensor"},
        {"unknown module", CFG(""), {{PRE "0.self_attn.x_proj.lora_A.weight", 2, 16, 4, 1, 0}}, 1,
         VKM_ERR_UNSUPPORTED, "adapts self_attn.x_proj, which is not one of the adaptable projections"},
        {"wrong parent", CFG(""), {{PRE "0.mlp.q_proj.lora_A.weight", 2, 16, 4, 1, 0}}, 1,
         VKM_ERR_UNSUPPORTED, "adapts mlp.q_proj"},
        {"leading zero", CFG(""), {{PRE "01.self_attn.q_proj.lora_A.weight", 2, 16, 4, 1, 0}}, 1,
         VKM_ERR_FORMAT, "is not a PEFT LoRA tensor"},
        {"huge layer", CFG(""), {{PRE "99999999999.self_attn.q_proj.lora_A.weight", 2, 16, 4, 1, 0}}, 1,
         VKM_ERR_FORMAT, "is not a PEFT LoRA tensor"},
        {"3-D", CFG(""), {{PRE "0.self_attn.q_proj.lora_A.weight", 3, 16, 4, 2, 0}, QB}, 2,
         VKM_ERR_FORMAT, "has 3 dimensions, a LoRA matrix has 2"},
        {"integer data", CFG(""), {{PRE "0.self_attn.q_proj.lora_A.weight", 2, 16, 4, 1, VKM_I32}, QB}, 2,
         VKM_ERR_UNSUPPORTED, "is I32; LoRA matrices must be F32, F16 or BF16"},
        {"no tensors", CFG(""), {{0}}, 0, VKM_ERR_FORMAT, "no LoRA tensors"},
    };
    const char *dir = tmp_path("peft_bad");
    char bin[1024];
    snprintf(bin, sizeof bin, "%s/adapter_model.bin", dir);
    remove(bin); /* from an earlier run */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_peft(dir, cases[i].config, cases[i].t, cases[i].n);
        vkm_adapter_src a;
        vkm_err e = {0};
        expect_fail(cases[i].name, vkm_adapter_open(dir, &a, &e), &e, cases[i].want, cases[i].msg);
        /* the in-memory entry point agrees */
        char p[1024];
        size_t nc, ns;
        snprintf(p, sizeof p, "%s/adapter_config.json", dir);
        uint8_t *cfg = read_bytes(p, &nc);
        snprintf(p, sizeof p, "%s/adapter_model.safetensors", dir);
        uint8_t *st = read_bytes(p, &ns);
        expect_fail(cases[i].name, vkm_adapter_open_peft_mem((const char *)cfg, nc, st, ns, "mem", &a, &e), &e,
                    cases[i].want, cases[i].msg);
        free(cfg);
        free(st);
    }
    vkm_adapter_src a;
    vkm_err e = {0};
    char p[1024];
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", dir);
    remove(p);
    expect_fail("no safetensors", vkm_adapter_open(dir, &a, &e), &e, VKM_ERR_NOT_FOUND,
                "no adapter_model.safetensors in this folder");
    snprintf(p, sizeof p, "%s/adapter_model.bin", dir);
    write_text(p, "pickle");
    expect_fail("pickle", vkm_adapter_open(dir, &a, &e), &e, VKM_ERR_UNSUPPORTED,
                "adapter_model.bin (a pickle) is not supported");
    remove(p);
    expect_fail("not an adapter folder", vkm_adapter_open(shared_path("testbed/base"), &a, &e), &e,
                VKM_ERR_NOT_FOUND, "no adapter_config.json");
}

/* A GGUF LoRA with the given type keys and tensors (all F32 zeros). */
static void write_gguf_lora(const char *path, const char *gtype, const char *atype, bool alpha_str,
                            const tspec *t, int n)
{
    vkm_err e = {0};
    vkm_gguf_writer *w;
    expect_ok(vkm_gguf_writer_create(path, &w, &e), &e);
    vkm_gguf_writer_set_str(w, "general.architecture", "qwen2");
    if (gtype) vkm_gguf_writer_set_str(w, "general.type", gtype);
    if (atype) vkm_gguf_writer_set_str(w, "adapter.type", atype);
    if (alpha_str) vkm_gguf_writer_set_str(w, "adapter.lora.alpha", "16");
    else vkm_gguf_writer_set_f32(w, "adapter.lora.alpha", 16.0f);
    for (int i = 0; i < n; i++) {
        int64_t ne[2] = {t[i].ne0, t[i].ne1};
        vkm_gguf_writer_add_tensor(w, t[i].name, VKM_F32, 2, ne);
    }
    vkm_gguf_writer_begin(w);
    static const uint8_t zeros[4096];
    for (int i = 0; i < n; i++) vkm_gguf_writer_write(w, zeros, (uint64_t)(t[i].ne0 * t[i].ne1 * 4));
    expect_ok(vkm_gguf_writer_finish(w), &e);
    vkm_gguf_writer_free(w);
}

static void test_gguf_lora_malformed(void **state)
{
    (void)state;
#define GA {"blk.0.attn_q.weight.lora_a", 2, 128, 4, 1, 0}
#define GB {"blk.0.attn_q.weight.lora_b", 2, 4, 128, 1, 0}
    static const tspec good[] = {GA, GB};
    static const struct {
        const char *name, *gtype, *atype;
        bool alpha_str;
        tspec t[2];
        int n;
        vkm_status want;
        const char *msg;
    } cases[] = {
        {"a model", "model", "lora", false, {GA, GB}, 2, VKM_ERR_FORMAT,
         "not a GGUF adapter (general.type is 'model', not 'adapter')"},
        {"no general.type", NULL, "lora", false, {GA, GB}, 2, VKM_ERR_FORMAT, "not a GGUF adapter"},
        {"control vector", "adapter", "control_vector", false, {GA, GB}, 2, VKM_ERR_UNSUPPORTED,
         "adapter.type 'control_vector' is not supported"},
        {"alpha string", "adapter", "lora", true, {GA, GB}, 2, VKM_ERR_FORMAT,
         "adapter.lora.alpha is not a finite float"},
        {"embedding", "adapter", "lora", false, {{"token_embd.weight.lora_a", 2, 8, 4, 1, 0}}, 1,
         VKM_ERR_UNSUPPORTED, "'token_embd.weight.lora_a': embedding and output (lm_head) adapters"},
        {"output", "adapter", "lora", false, {{"output.weight.lora_b", 2, 4, 8, 1, 0}}, 1,
         VKM_ERR_UNSUPPORTED, "embedding and output (lm_head) adapters are not supported"},
        {"not lora", "adapter", "lora", false, {{"blk.0.attn_q.weight", 2, 8, 8, 1, 0}}, 1, VKM_ERR_FORMAT,
         "tensor 'blk.0.attn_q.weight' is not a LoRA tensor"},
        {"norm", "adapter", "lora", false, {{"blk.0.attn_norm.weight.lora_a", 2, 8, 4, 1, 0}}, 1,
         VKM_ERR_UNSUPPORTED, "adapts 'blk.0.attn_norm.weight', which is not one of the adaptable weights"},
        {"leading zero", "adapter", "lora", false, {{"blk.00.attn_q.weight.lora_a", 2, 8, 4, 1, 0}}, 1,
         VKM_ERR_UNSUPPORTED, "not one of the adaptable weights"},
        {"unpaired", "adapter", "lora", false, {GB}, 1, VKM_ERR_FORMAT,
         "tensor 'blk.0.attn_q.weight.lora_b' has no matching A"},
        {"rank mismatch", "adapter", "lora", false, {GA, {"blk.0.attn_q.weight.lora_b", 2, 2, 128, 1, 0}}, 2,
         VKM_ERR_FORMAT, "rank mismatch for blk.0.attn_q.weight"},
    };
    const char *path = tmp_path("bad_lora.gguf");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_gguf_lora(path, cases[i].gtype, cases[i].atype, cases[i].alpha_str, cases[i].t, cases[i].n);
        vkm_adapter_src a;
        vkm_err e = {0};
        expect_fail(cases[i].name, vkm_adapter_open(path, &a, &e), &e, cases[i].want, cases[i].msg);
    }
    /* an adapter for another architecture, and one whose module the base lacks */
    write_gguf_lora(path, "adapter", "lora", false, good, 2);
    vkm_adapter_src a;
    vkm_model_src base;
    vkm_err e = {0};
    expect_ok(vkm_adapter_open(path, &a, &e), &e);
    assert_int_equal(a.rope_layout, VKM_ROPE_HALF); /* qwen2 GGUF LoRAs keep the Hugging Face rows */
    expect_ok(vkm_model_src_open(shared_path("testbed/base/model.gguf"), &base, &e), &e);
    expect_fail("architecture", vkm_adapter_validate(&a, &base, &e), &e, VKM_ERR_MISMATCH,
                "the adapter is for architecture 'qwen2' but the base model");
    a.arch[0] = 0;
    expect_ok(vkm_adapter_validate(&a, &base, &e), &e);
    a.pairs[0].layer = 7;
    snprintf(a.pairs[0].target, sizeof a.pairs[0].target, "blk.7.attn_q.weight");
    expect_fail("missing module", vkm_adapter_validate(&a, &base, &e), &e, VKM_ERR_MISMATCH,
                "adapts blk.7.attn_q.weight, which does not exist in the base model");
    assert_non_null(strstr(e.msg, "(hint: wrong base model?)"));
    vkm_adapter_close(&a);
    vkm_model_src_close(&base);
}

static void test_module_names(void **state)
{
    (void)state;
    vkm_module m;
    for (int i = 0; i < VKM_MOD_COUNT; i++) {
        assert_true(vkm_module_from_peft(vkm_module_peft_name((vkm_module)i), &m) && m == (vkm_module)i);
        assert_true(vkm_module_from_gguf(vkm_module_gguf_name((vkm_module)i), &m) && m == (vkm_module)i);
    }
    assert_string_equal(vkm_module_gguf_name(VKM_MOD_O), "attn_output");
    assert_string_equal(vkm_module_peft_parent(VKM_MOD_UP), "mlp");
    assert_null(vkm_module_peft_name(VKM_MOD_COUNT));
    assert_false(vkm_module_from_peft("attn_q", &m));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_testbed_experts), cmocka_unit_test(test_smollm_adapters),
        cmocka_unit_test(test_patterns),        cmocka_unit_test(test_peft_malformed),
        cmocka_unit_test(test_gguf_lora_malformed), cmocka_unit_test(test_module_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
