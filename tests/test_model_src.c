/*
 * test_model_src.c — models from GGUF and Hugging Face folders: hyperparameters of the real
 * testbed files, the proof that GGUF and safetensors hold the same weights once the q/k RoPE row
 * permutation is applied (every tensor, every value), the name mapping and the permutation
 * itself, synthetic Mixtral / qwen2 / mistral / tied models written by the tests, and the errors
 * for missing keys, missing tensors, wrong shapes and unsupported configurations.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loader_util.h"
#include "writer.h"

/* ---- the real files ----------------------------------------------------------------------- */
static void check_hp(const vkm_hparams *hp, uint32_t vocab, uint32_t dim, uint32_t layers,
                     uint32_t heads, uint32_t kv, uint32_t hd, uint32_t ffn, uint32_t ctx)
{
    assert_string_equal(hp->arch, "llama");
    assert_int_equal(hp->n_vocab, vocab);
    assert_int_equal(hp->dim, dim);
    assert_int_equal(hp->n_layers, layers);
    assert_int_equal(hp->n_heads, heads);
    assert_int_equal(hp->n_kv_heads, kv);
    assert_int_equal(hp->head_dim, hd);
    assert_int_equal(hp->ffn_dim, ffn);
    assert_int_equal(hp->ctx_len, ctx);
    assert_true(hp->rope_theta == 10000.0f);
    assert_true(hp->norm_eps == 1e-5f);
    assert_int_equal(hp->n_experts, 0);
    assert_int_equal(hp->bos, 1);
    assert_int_equal(hp->eos, 2);
    assert_false(hp->tied_embeddings); /* both files carry output.weight / lm_head.weight */
    assert_false(hp->qkv_bias);
}

static void test_real_hparams(void **state)
{
    (void)state;
    static const char *const base[] = {"testbed/base/model.gguf", "testbed/base/model-f16.gguf",
                                       "testbed/base", "testbed/base/model.safetensors",
                                       "testbed/full/python/model.gguf", "testbed/full/legal",
                                       "testbed/full/english/model.safetensors"};
    vkm_model_src m;
    vkm_err e = {0};
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++) {
        expect_ok(vkm_model_src_open(shared_path(base[i]), &m, &e), &e);
        check_hp(&m.hp, 1024, 128, 4, 4, 2, 32, 352, 128);
        bool gguf = strstr(base[i], ".gguf") != NULL;
        assert_int_equal(m.format, gguf ? VKM_SRC_GGUF : VKM_SRC_SAFETENSORS);
        assert_int_equal(m.hp.rope_layout, gguf ? VKM_ROPE_INTERLEAVED : VKM_ROPE_HALF);
        assert_int_equal(m.n_tensors, 39);
        const vkm_tensor_src *k = vkm_model_src_tensor(&m, "blk.2.attn_k.weight");
        assert_non_null(k);
        assert_int_equal(k->ne[0], 128);
        assert_int_equal(k->ne[1], 64);
        assert_null(vkm_model_src_tensor(&m, "blk.4.attn_k.weight"));
        for (uint32_t t = 1; t < m.n_tensors; t++) /* sorted */
            assert_true(strcmp(m.tensors[t - 1].name, m.tensors[t].name) < 0);
        vkm_model_src_close(&m);
    }
    static const char *const stories[] = {"testbed/stories260K/model.gguf", "testbed/stories260K"};
    for (int i = 0; i < 2; i++) {
        expect_ok(vkm_model_src_open(shared_path(stories[i]), &m, &e), &e);
        check_hp(&m.hp, 512, 64, 5, 8, 4, 8, 172, 512);
        assert_int_equal(m.n_tensors, 48);
        vkm_model_src_close(&m);
    }
    expect_fail("a folder without a model", vkm_model_src_open(shared_path("testbed/eval"), &m, &e),
                &e, VKM_ERR_NOT_FOUND, "no config.json or model.gguf in this folder");
    expect_fail("an adapter", vkm_model_src_open(shared_path("testbed/experts/c/adapter.gguf"), &m, &e),
                &e, VKM_ERR_FORMAT, "missing key llama.embedding_length");
}

/* Every tensor of the GGUF model equals the safetensors one, q/k rows permuted; with f16 the
 * GGUF value is the safetensors value rounded to F16. */
static void compare_models(const char *gguf_path, const char *st_path)
{
    vkm_model_src g, s;
    vkm_err e = {0};
    expect_ok(vkm_model_src_open(shared_path(gguf_path), &g, &e), &e);
    expect_ok(vkm_model_src_open(shared_path(st_path), &s, &e), &e);
    assert_int_equal(g.n_tensors, s.n_tensors);
    uint64_t compared = 0;
    for (uint32_t i = 0; i < g.n_tensors; i++) {
        const vkm_tensor_src *a = g.tensors[i].src, *b = vkm_model_src_tensor(&s, g.tensors[i].name);
        assert_non_null(b);
        assert_int_equal(a->n_dims, b->n_dims);
        assert_memory_equal(a->ne, b->ne, sizeof a->ne);
        bool rope = strstr(g.tensors[i].name, "attn_q.weight") || strstr(g.tensors[i].name, "attn_k.weight");
        float *x = tensor_f32(a), *y = tensor_f32(b);
        int64_t cols = a->ne[0], rows = vkm_tensor_nelem(a) / cols;
        for (int64_t r = 0; r < rows; r++) {
            int64_t rs = rope ? vkm_rope_row_map(VKM_ROPE_INTERLEAVED, VKM_ROPE_HALF, (uint32_t)r, g.hp.head_dim) : r;
            for (int64_t c = 0; c < cols; c++) {
                float want = y[rs * cols + c];
                if (a->dtype == VKM_F16) want = vkm_f16_to_f32(vkm_f32_to_f16(want));
                if (x[r * cols + c] != want)
                    fail_msg("%s: %s row %lld col %lld: %g vs %g", gguf_path, g.tensors[i].name,
                             (long long)r, (long long)c, x[r * cols + c], want);
                compared++;
            }
        }
        /* without the permutation, q/k differ (the test would notice a missing permutation) */
        if (rope) assert_memory_not_equal(x + cols, y + cols, (size_t)cols * sizeof *x);
        free(x);
        free(y);
    }
    assert_true(compared > 100000);
    vkm_model_src_close(&g);
    vkm_model_src_close(&s);
}

static void test_gguf_equals_safetensors(void **state)
{
    (void)state;
    compare_models("testbed/base/model.gguf", "testbed/base");
    compare_models("testbed/base/model-f16.gguf", "testbed/base/model.safetensors");
    compare_models("testbed/stories260K/model.gguf", "testbed/stories260K");
    compare_models("testbed/full/python/model.gguf", "testbed/full/python");
    compare_models("testbed/full/english/model.gguf", "testbed/full/english");
    compare_models("testbed/full/legal/model.gguf", "testbed/full/legal");
}

/* ---- names and the permutation ------------------------------------------------------------ */
static void test_names(void **state)
{
    (void)state;
    static const char *const pairs[][2] = {
        {"model.embed_tokens.weight", "token_embd.weight"},
        {"model.norm.weight", "output_norm.weight"},
        {"lm_head.weight", "output.weight"},
        {"model.layers.0.input_layernorm.weight", "blk.0.attn_norm.weight"},
        {"model.layers.17.post_attention_layernorm.weight", "blk.17.ffn_norm.weight"},
        {"model.layers.3.self_attn.q_proj.weight", "blk.3.attn_q.weight"},
        {"model.layers.3.self_attn.k_proj.weight", "blk.3.attn_k.weight"},
        {"model.layers.3.self_attn.v_proj.weight", "blk.3.attn_v.weight"},
        {"model.layers.3.self_attn.o_proj.weight", "blk.3.attn_output.weight"},
        {"model.layers.3.self_attn.q_proj.bias", "blk.3.attn_q.bias"},
        {"model.layers.3.self_attn.v_proj.bias", "blk.3.attn_v.bias"},
        {"model.layers.10.mlp.gate_proj.weight", "blk.10.ffn_gate.weight"},
        {"model.layers.10.mlp.up_proj.weight", "blk.10.ffn_up.weight"},
        {"model.layers.10.mlp.down_proj.weight", "blk.10.ffn_down.weight"},
        {"model.layers.5.block_sparse_moe.gate.weight", "blk.5.ffn_gate_inp.weight"},
        {"model.layers.5.block_sparse_moe.experts.7.w1.weight", "blk.5.ffn_gate.7.weight"},
        {"model.layers.5.block_sparse_moe.experts.0.w3.weight", "blk.5.ffn_up.0.weight"},
        {"model.layers.5.block_sparse_moe.experts.12.w2.weight", "blk.5.ffn_down.12.weight"},
    };
    char out[128];
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        assert_true(vkm_hf_to_internal(pairs[i][0], out, sizeof out));
        assert_string_equal(out, pairs[i][1]);
        assert_true(vkm_internal_to_hf(pairs[i][1], out, sizeof out));
        assert_string_equal(out, pairs[i][0]);
    }
    static const char *const bad[] = {
        "model.layers.01.mlp.up_proj.weight", "model.layers.x.mlp.up_proj.weight",
        "model.layers.1.mlp.up_proj.weightx", "model.layers..mlp.up_proj.weight",
        "model.layers.1234567890.mlp.up_proj.weight", "model.layers.1.mlp.up_proj",
        "model.layers.1.self_attn.o_proj.bias", "model.layers.1.block_sparse_moe.experts.1.w4.weight",
        "model.layers.1.block_sparse_moe.experts.01.w1.weight", "model.layers.-1.mlp.up_proj.weight",
        "model.embed_tokens.weight.x", "", "blk.0.attn_q.weight", "rotary_emb.inv_freq",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (vkm_hf_to_internal(bad[i], out, sizeof out)) fail_msg("'%s' mapped to '%s'", bad[i], out);
    assert_false(vkm_internal_to_hf("blk.1.ffn_gate.x.weight", out, sizeof out));
    assert_false(vkm_internal_to_hf("blk.1.ffn_gate_exps.weight", out, sizeof out));
    assert_false(vkm_hf_to_internal("model.layers.3.self_attn.q_proj.weight", out, 10)); /* too small */
}

static void test_rope_row_map(void **state)
{
    (void)state;
    for (uint32_t hd = 2; hd <= 128; hd += 2) {
        uint32_t n_head = 3;
        for (uint32_t row = 0; row < n_head * hd; row++) {
            /* the explicit formula: w.reshape(n_head, 2, hd/2, in).swapaxes(1, 2) */
            uint32_t h = row / hd, s = (row % hd) / (hd / 2), j = row % (hd / 2);
            uint32_t gguf = h * hd + j * 2 + s;
            assert_int_equal(vkm_rope_row_map(VKM_ROPE_HALF, VKM_ROPE_INTERLEAVED, row, hd), gguf);
            assert_int_equal(vkm_rope_row_map(VKM_ROPE_INTERLEAVED, VKM_ROPE_HALF, gguf, hd), row);
            assert_int_equal(vkm_rope_row_map(VKM_ROPE_HALF, VKM_ROPE_HALF, row, hd), row);
        }
    }
    assert_int_equal(vkm_rope_row_map(VKM_ROPE_HALF, VKM_ROPE_INTERLEAVED, 1, 8), 2);
    assert_int_equal(vkm_rope_row_map(VKM_ROPE_HALF, VKM_ROPE_INTERLEAVED, 4, 8), 1);
    assert_int_equal(vkm_rope_row_map(VKM_ROPE_HALF, VKM_ROPE_INTERLEAVED, 5, 7), 5); /* odd */
}

/* ---- synthetic models --------------------------------------------------------------------- */
enum { D = 16, L = 2, H = 4, KV = 2, HD = 4, F = 24, V = 32, X = 3 };

typedef struct synth {
    const char *arch;       /* GGUF arch or HF architectures[0]                                */
    int experts;            /* 0 dense; >0 Mixtral with that many experts                     */
    bool exps_3d;           /* GGUF: ffn_*_exps stacks instead of per-expert tensors          */
    bool bias;              /* q/k/v biases                                                   */
    bool no_output;         /* drop output.weight / lm_head.weight                            */
    const char *skip;       /* internal name of a tensor to leave out                         */
    const char *reshape;    /* internal name of a tensor written with ne1 (vectors: ne0) + 1   */
    const char *extra_hf;   /* a further Hugging Face tensor name                             */
    const char *extra_gguf; /* a further GGUF tensor name (F32 [4])                           */
    vkm_dtype norm_dtype;
} synth;

typedef struct stensor {
    char name[VKM_MAX_NAME];
    int n_dims;
    int64_t ne[3];
    vkm_dtype dtype;
} stensor;

static int synth_list(const synth *o, stensor *t)
{
    int n = 0;
#define ADD(nd, a, b, c, dt, ...)                                                                  \
    do {                                                                                           \
        snprintf(t[n].name, sizeof t[n].name, __VA_ARGS__);                                        \
        t[n].n_dims = nd, t[n].ne[0] = a, t[n].ne[1] = b, t[n].ne[2] = c, t[n].dtype = dt;         \
        if (!(o->skip && !strcmp(o->skip, t[n].name))) {                                           \
            if (o->reshape && !strcmp(o->reshape, t[n].name)) t[n].ne[nd == 1 ? 0 : 1]++;           \
            n++;                                                                                   \
        }                                                                                          \
    } while (0)
    ADD(2, D, V, 1, VKM_F32, "token_embd.weight");
    ADD(1, D, 1, 1, o->norm_dtype, "output_norm.weight");
    if (!o->no_output) ADD(2, D, V, 1, VKM_F32, "output.weight");
    for (int l = 0; l < L; l++) {
        ADD(1, D, 1, 1, o->norm_dtype, "blk.%d.attn_norm.weight", l);
        ADD(1, D, 1, 1, o->norm_dtype, "blk.%d.ffn_norm.weight", l);
        ADD(2, D, H * HD, 1, VKM_F32, "blk.%d.attn_q.weight", l);
        ADD(2, D, KV * HD, 1, VKM_F32, "blk.%d.attn_k.weight", l);
        ADD(2, D, KV * HD, 1, VKM_F32, "blk.%d.attn_v.weight", l);
        ADD(2, H * HD, D, 1, VKM_F32, "blk.%d.attn_output.weight", l);
        if (o->bias) {
            ADD(1, H * HD, 1, 1, VKM_F32, "blk.%d.attn_q.bias", l);
            ADD(1, KV * HD, 1, 1, VKM_F32, "blk.%d.attn_k.bias", l);
            ADD(1, KV * HD, 1, 1, VKM_F32, "blk.%d.attn_v.bias", l);
        }
        if (!o->experts) {
            ADD(2, D, F, 1, VKM_F16, "blk.%d.ffn_gate.weight", l);
            ADD(2, D, F, 1, VKM_F16, "blk.%d.ffn_up.weight", l);
            ADD(2, F, D, 1, VKM_BF16, "blk.%d.ffn_down.weight", l);
            continue;
        }
        ADD(2, D, o->experts, 1, VKM_F32, "blk.%d.ffn_gate_inp.weight", l);
        if (o->exps_3d) {
            ADD(3, D, F, o->experts, VKM_F32, "blk.%d.ffn_gate_exps.weight", l);
            ADD(3, D, F, o->experts, VKM_F32, "blk.%d.ffn_up_exps.weight", l);
            ADD(3, F, D, o->experts, VKM_F32, "blk.%d.ffn_down_exps.weight", l);
        } else {
            for (int x = 0; x < o->experts; x++) {
                ADD(2, D, F, 1, VKM_F32, "blk.%d.ffn_gate.%d.weight", l, x);
                ADD(2, D, F, 1, VKM_F32, "blk.%d.ffn_up.%d.weight", l, x);
                ADD(2, F, D, 1, VKM_F32, "blk.%d.ffn_down.%d.weight", l, x);
            }
        }
    }
#undef ADD
    return n;
}

static void write_data(stensor *t, int n, vkm_status (*write)(void *, const void *, uint64_t), void *w)
{
    static uint8_t buf[D * F * X * 4 + D * V * 4];
    for (int i = 0; i < n; i++) {
        uint64_t bytes;
        assert_true(vkm_dtype_bytes(t[i].dtype, (uint64_t)(t[i].ne[0] * t[i].ne[1] * t[i].ne[2]), &bytes));
        for (uint64_t j = 0; j < bytes; j++) buf[j] = (uint8_t)(j * 31 + (uint64_t)i) & 0x3f;
        write(w, buf, bytes);
    }
}

static vkm_status gguf_write_cb(void *w, const void *p, uint64_t n) { return vkm_gguf_writer_write(w, p, n); }
static vkm_status st_write_cb(void *w, const void *p, uint64_t n) { return vkm_st_writer_write(w, p, n); }

/* A GGUF model; kv (if any) writes further keys (none of the standard ones written here). */
static void synth_gguf(const char *path, const synth *o, void (*kv)(vkm_gguf_writer *, const char *))
{
    vkm_err e = {0};
    vkm_gguf_writer *w;
    expect_ok(vkm_gguf_writer_create(path, &w, &e), &e);
    const char *a = o->arch;
    char k[128];
    vkm_gguf_writer_set_str(w, "general.architecture", a);
#define KEY(suffix) (snprintf(k, sizeof k, "%s.%s", a, suffix), k)
    if (kv) kv(w, a);
    vkm_gguf_writer_set_u32(w, KEY("embedding_length"), D);
    vkm_gguf_writer_set_u32(w, KEY("block_count"), L);
    vkm_gguf_writer_set_u32(w, KEY("attention.head_count"), H);
    vkm_gguf_writer_set_u32(w, KEY("attention.head_count_kv"), KV);
    vkm_gguf_writer_set_u32(w, KEY("feed_forward_length"), F);
    vkm_gguf_writer_set_u32(w, KEY("context_length"), 64);
    vkm_gguf_writer_set_f32(w, KEY("rope.freq_base"), 500000.0f);
    vkm_gguf_writer_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), 1e-6f);
    if (o->experts) {
        vkm_gguf_writer_set_u32(w, KEY("expert_count"), (uint32_t)o->experts);
        vkm_gguf_writer_set_u32(w, KEY("expert_used_count"), 2);
    }
#undef KEY
    stensor t[129];
    int n = synth_list(o, t);
    if (o->extra_gguf) {
        snprintf(t[n].name, sizeof t[n].name, "%s", o->extra_gguf);
        t[n].n_dims = 1, t[n].ne[0] = 4, t[n].ne[1] = t[n].ne[2] = 1, t[n].dtype = VKM_F32;
        n++;
    }
    for (int i = 0; i < n; i++) vkm_gguf_writer_add_tensor(w, t[i].name, t[i].dtype, t[i].n_dims, t[i].ne);
    vkm_gguf_writer_begin(w);
    write_data(t, n, gguf_write_cb, w);
    expect_ok(vkm_gguf_writer_finish(w), &e);
    vkm_gguf_writer_free(w);
}

/* A Hugging Face folder: config.json (config_extra spliced in) + model.safetensors. */
static void synth_hf(const char *dir, const synth *o, const char *config_extra)
{
    make_dir(dir);
    char p[1024], cfg[2048];
    snprintf(cfg, sizeof cfg,
             "{\"architectures\": [\"%s\"], \"hidden_size\": %d, \"num_hidden_layers\": %d,"
             " \"num_attention_heads\": %d, \"num_key_value_heads\": %d, \"intermediate_size\": %d,"
             " \"vocab_size\": %d, \"rms_norm_eps\": 1e-6, \"tie_word_embeddings\": %s,"
             " \"num_local_experts\": %d%s}",
             o->arch, D, L, H, KV, F, V, o->no_output ? "true" : "false", o->experts ? o->experts : 8,
             config_extra ? config_extra : "");
    snprintf(p, sizeof p, "%s/config.json", dir);
    write_text(p, cfg);
    vkm_err e = {0};
    vkm_st_writer *w;
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    expect_ok(vkm_st_writer_create(p, &w, &e), &e);
    stensor t[129];
    int n = synth_list(o, t);
    for (int i = 0; i < n; i++) {
        char hf[128];
        assert_true(vkm_internal_to_hf(t[i].name, hf, sizeof hf));
        snprintf(t[i].name, sizeof t[i].name, "%s", hf);
    }
    if (o->extra_hf) {
        snprintf(t[n].name, sizeof t[n].name, "%s", o->extra_hf);
        t[n].n_dims = 1, t[n].ne[0] = 2, t[n].ne[1] = t[n].ne[2] = 1, t[n].dtype = VKM_F32;
        n++;
    }
    for (int i = 0; i < n; i++) vkm_st_writer_add_tensor(w, t[i].name, t[i].dtype, t[i].n_dims, t[i].ne);
    vkm_st_writer_begin(w);
    write_data(t, n, st_write_cb, w);
    expect_ok(vkm_st_writer_finish(w), &e);
    vkm_st_writer_free(w);
}

static void test_synthetic_models(void **state)
{
    (void)state;
    vkm_model_src m;
    vkm_err e = {0};
    const char *gp = tmp_path("synth.gguf"), *dir = tmp_path("synth_hf");

    char long_name[201];
    memset(long_name, 'x', 200);
    long_name[200] = 0;
    synth_gguf(gp, &(synth){.arch = "mistral", .norm_dtype = VKM_F32, .extra_gguf = long_name}, NULL);
    expect_ok(vkm_model_src_open(gp, &m, &e), &e);
    assert_non_null(vkm_model_src_tensor(&m, long_name)); /* unknown GGUF tensors are kept */
    assert_string_equal(m.hp.arch, "mistral");
    assert_true(m.hp.rope_theta == 500000.0f && m.hp.norm_eps == 1e-6f);
    assert_int_equal(m.hp.head_dim, HD);
    assert_int_equal(m.hp.n_vocab, V); /* from token_embd: no vocab_size key, no tokens */
    assert_int_equal(m.hp.bos, -1);
    assert_int_equal(vkm_model_src_tensor(&m, "blk.1.ffn_down.weight")->dtype, VKM_BF16);
    vkm_model_src_close(&m);

    synth_gguf(gp, &(synth){.arch = "llama", .experts = X, .norm_dtype = VKM_F32}, NULL);
    expect_ok(vkm_model_src_open(gp, &m, &e), &e);
    assert_int_equal(m.hp.n_experts, X);
    assert_int_equal(m.hp.n_experts_used, 2);
    assert_non_null(vkm_model_src_tensor(&m, "blk.1.ffn_down.2.weight"));
    vkm_model_src_close(&m);

    synth_gguf(gp, &(synth){.arch = "llama", .experts = X, .exps_3d = true, .norm_dtype = VKM_F16}, NULL);
    expect_ok(vkm_model_src_open(gp, &m, &e), &e);
    const vkm_tensor_src *ex = vkm_model_src_tensor(&m, "blk.0.ffn_down_exps.weight");
    assert_int_equal(ex->n_dims, 3);
    assert_int_equal(ex->ne[0], F);
    assert_int_equal(ex->ne[2], X);
    vkm_model_src_close(&m);

    synth_gguf(gp, &(synth){.arch = "qwen2", .bias = true, .no_output = true, .norm_dtype = VKM_F32}, NULL);
    expect_ok(vkm_model_src_open(gp, &m, &e), &e);
    assert_true(m.hp.qkv_bias);
    assert_int_equal(m.hp.rope_layout, VKM_ROPE_HALF); /* llama.cpp's qwen2: rows unpermuted, RoPE "neox" */
    assert_true(m.hp.tied_embeddings);
    assert_int_equal(vkm_model_src_tensor(&m, "blk.1.attn_k.bias")->ne[0], KV * HD);
    vkm_model_src_close(&m);

    synth_hf(dir, &(synth){.arch = "MixtralForCausalLM", .experts = X, .norm_dtype = VKM_F32},
             ", \"num_experts_per_tok\": 1, \"rope_theta\": 1000000.0");
    expect_ok(vkm_model_src_open(dir, &m, &e), &e);
    assert_string_equal(m.hp.arch, "llama");
    assert_int_equal(m.hp.n_experts, X);
    assert_int_equal(m.hp.n_experts_used, 1);
    assert_true(m.hp.rope_theta == 1e6f);
    assert_int_equal(m.hp.rope_layout, VKM_ROPE_HALF);
    assert_non_null(vkm_model_src_tensor(&m, "blk.1.ffn_gate.2.weight"));
    assert_non_null(vkm_model_src_tensor(&m, "blk.1.ffn_gate_inp.weight"));
    vkm_model_src_close(&m);

    synth_hf(dir, &(synth){.arch = "Qwen2ForCausalLM", .bias = true, .no_output = true,
                           .extra_hf = "model.layers.0.self_attn.rotary_emb.inv_freq",
                           .norm_dtype = VKM_BF16},
             ", \"eos_token_id\": [7, 8], \"bos_token_id\": null, \"head_dim\": null,"
             " \"rope_scaling\": null");
    expect_ok(vkm_model_src_open(dir, &m, &e), &e);
    assert_string_equal(m.hp.arch, "qwen2");
    assert_true(m.hp.tied_embeddings && m.hp.qkv_bias);
    assert_int_equal(m.hp.eos, 7);
    assert_int_equal(m.hp.bos, -1);
    assert_int_equal(m.hp.head_dim, HD);
    assert_int_equal(m.n_tensors, 2 + L * 12); /* no lm_head; inv_freq skipped */
    vkm_model_src_close(&m);
}

/* ---- errors ------------------------------------------------------------------------------- */
static void kv_none(vkm_gguf_writer *w, const char *a) { (void)w, (void)a; }
static void kv_bad_type(vkm_gguf_writer *w, const char *a) { (void)a; vkm_gguf_writer_set_str(w, "llama.expert_count", "4"); }
static void kv_tokens(vkm_gguf_writer *w, const char *a)
{
    (void)a;
    static const char *const toks[] = {"a", "b", "c"};
    vkm_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", 3, toks);
    vkm_gguf_writer_set_u32(w, "llama.vocab_size", V);
}
static void kv_partial_rope(vkm_gguf_writer *w, const char *a) { (void)a; vkm_gguf_writer_set_u32(w, "llama.rope.dimension_count", 2); }
static void kv_scaling(vkm_gguf_writer *w, const char *a) { (void)a; vkm_gguf_writer_set_str(w, "llama.rope.scaling.type", "linear"); }
static void kv_kv_heads(vkm_gguf_writer *w, const char *a) { (void)a; vkm_gguf_writer_set_u32(w, "llama.attention.key_length", 3); }

static void test_gguf_errors(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        synth o;
        void (*kv)(vkm_gguf_writer *, const char *);
        vkm_status want;
        const char *msg;
    } cases[] = {
        {"gpt2", {.arch = "gpt2"}, NULL, VKM_ERR_UNSUPPORTED, "architecture 'gpt2' is not supported"},
        {"missing tensor", {.arch = "llama", .skip = "blk.1.ffn_up.weight"}, NULL, VKM_ERR_FORMAT,
         "missing tensor 'blk.1.ffn_up.weight'"},
        {"wrong shape", {.arch = "llama", .reshape = "blk.0.attn_k.weight"}, NULL, VKM_ERR_FORMAT,
         "tensor 'blk.0.attn_k.weight' (blk.0.attn_k.weight): expected shape [16, 8], found [16, 9]"},
        {"wrong head", {.arch = "llama", .reshape = "output.weight"}, NULL, VKM_ERR_FORMAT,
         "tensor 'output.weight' (output.weight): expected shape [16, 32], found [16, 33]"},
        {"qwen2 without bias", {.arch = "qwen2"}, NULL, VKM_ERR_FORMAT, "missing tensor 'blk.0.attn_q.bias'"},
        {"llama bias shape", {.arch = "llama", .bias = true, .reshape = "blk.1.attn_v.bias"}, kv_none,
         VKM_ERR_FORMAT, "tensor 'blk.1.attn_v.bias' (blk.1.attn_v.bias): expected shape [8], found [9]"},
        {"missing expert", {.arch = "llama", .experts = X, .skip = "blk.1.ffn_up.2.weight"}, NULL,
         VKM_ERR_FORMAT, "missing tensor 'blk.1.ffn_up.2.weight'"},
        {"missing expert stack", {.arch = "llama", .experts = X, .exps_3d = true,
                                  .skip = "blk.0.ffn_down_exps.weight"},
         NULL, VKM_ERR_FORMAT, "missing tensor 'blk.0.ffn_down_exps.weight'"},
        {"missing router", {.arch = "llama", .experts = X, .skip = "blk.0.ffn_gate_inp.weight"}, NULL,
         VKM_ERR_FORMAT, "missing tensor 'blk.0.ffn_gate_inp.weight'"},
        {"integer norm", {.arch = "llama", .norm_dtype = VKM_I32}, NULL, VKM_ERR_UNSUPPORTED,
         "tensor 'output_norm.weight' has dtype I32, which is not usable for a vector"},
        {"wrong key type", {.arch = "llama"}, kv_bad_type, VKM_ERR_FORMAT,
         "llama.expert_count is a string, not an unsigned 32-bit integer"},
        {"vocab vs tokens", {.arch = "llama"}, kv_tokens, VKM_ERR_FORMAT,
         "llama.vocab_size 32 but tokenizer.ggml.tokens has 3 tokens"},
        {"partial rope", {.arch = "llama"}, kv_partial_rope, VKM_ERR_UNSUPPORTED, "partial RoPE"},
        {"rope scaling", {.arch = "llama"}, kv_scaling, VKM_ERR_UNSUPPORTED,
         "llama.rope.scaling.type other than none is not supported"},
        {"odd head size", {.arch = "llama"}, kv_kv_heads, VKM_ERR_FORMAT, "head size 3 is odd"},
        {"rope_freqs", {.arch = "llama", .extra_gguf = "rope_freqs.weight"}, NULL, VKM_ERR_UNSUPPORTED,
         "rope_freqs.weight (RoPE frequency scaling) is not supported"},
    };
    const char *gp = tmp_path("bad_model.gguf");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        vkm_model_src m;
        vkm_err e = {0};
        synth o = cases[i].o;
        if (!o.norm_dtype) o.norm_dtype = VKM_F32;
        synth_gguf(gp, &o, cases[i].kv);
        expect_fail(cases[i].name, vkm_model_src_open(gp, &m, &e), &e, cases[i].want, cases[i].msg);
    }
    /* keys missing: written by hand */
    static const char *const required[] = {"embedding_length", "block_count", "attention.head_count",
                                           "feed_forward_length", "context_length"};
    for (int r = 0; r < 5; r++) {
        vkm_gguf_writer *w;
        vkm_err e = {0};
        expect_ok(vkm_gguf_writer_create(gp, &w, &e), &e);
        vkm_gguf_writer_set_str(w, "general.architecture", "llama");
        for (int k = 0; k < 5; k++) {
            char key[96];
            snprintf(key, sizeof key, "llama.%s", required[k]);
            if (k != r) vkm_gguf_writer_set_u32(w, key, 4);
        }
        vkm_gguf_writer_begin(w);
        expect_ok(vkm_gguf_writer_finish(w), &e);
        vkm_gguf_writer_free(w);
        char msg[96];
        snprintf(msg, sizeof msg, "missing key llama.%s", required[r]);
        vkm_model_src m;
        expect_fail(msg, vkm_model_src_open(gp, &m, &e), &e, VKM_ERR_FORMAT, msg);
    }
}

static void test_hf_errors(void **state)
{
    (void)state;
    const char *dir = tmp_path("bad_hf");
    static const struct {
        const char *name;
        synth o;
        const char *extra;
        vkm_status want;
        const char *msg;
    } cases[] = {
        {"gpt2", {.arch = "GPT2LMHeadModel"}, NULL, VKM_ERR_UNSUPPORTED, "architecture 'GPT2LMHeadModel' is not supported"},
        {"rope scaling", {.arch = "LlamaForCausalLM"}, ", \"rope_scaling\": {\"type\": \"linear\"}",
         VKM_ERR_UNSUPPORTED, "rope_scaling is not supported"},
        {"gelu", {.arch = "LlamaForCausalLM"}, ", \"hidden_act\": \"gelu\"", VKM_ERR_UNSUPPORTED,
         "hidden_act must be \"silu\""},
        {"attention bias", {.arch = "LlamaForCausalLM"}, ", \"attention_bias\": true", VKM_ERR_UNSUPPORTED,
         "attention_bias is not supported"},
        {"head_dim as string", {.arch = "LlamaForCausalLM"}, ", \"head_dim\": \"4\"",
         VKM_ERR_FORMAT, "head_dim: expected an integer from 1 to 4096, got a string"},
        {"duplicate key", {.arch = "LlamaForCausalLM"}, ", \"vocab_size\": 32", VKM_ERR_FORMAT,
         "duplicate key 'vocab_size'"},
        {"odd head_dim", {.arch = "MistralForCausalLM"}, ", \"head_dim\": 5", VKM_ERR_FORMAT,
         "head size 5 is odd"},
        {"fraction", {.arch = "LlamaForCausalLM"}, ", \"max_position_embeddings\": 12.5",
         VKM_ERR_FORMAT, "max_position_embeddings: expected an integer from 1 to 67108864, got a number"},
        {"negative eps", {.arch = "LlamaForCausalLM"}, ", \"rope_theta\": -1", VKM_ERR_FORMAT,
         "rope_theta: expected a positive number"},
        {"bad eos", {.arch = "LlamaForCausalLM"}, ", \"eos_token_id\": \"x\"", VKM_ERR_FORMAT,
         "eos_token_id: expected a token id, got a string"},
        {"missing tensor", {.arch = "LlamaForCausalLM", .skip = "blk.0.ffn_up.weight"}, NULL, VKM_ERR_FORMAT,
         "missing tensor 'blk.0.ffn_up.weight' (model.layers.0.mlp.up_proj.weight)"},
        {"wrong shape", {.arch = "LlamaForCausalLM", .reshape = "blk.1.attn_output.weight"}, NULL,
         VKM_ERR_FORMAT,
         "tensor 'blk.1.attn_output.weight' (model.layers.1.self_attn.o_proj.weight): expected shape [16, 16], found [16, 17]"},
        {"unknown tensor", {.arch = "LlamaForCausalLM", .extra_hf = "model.layers.0.mlp.fc1.weight"}, NULL,
         VKM_ERR_UNSUPPORTED, "tensor 'model.layers.0.mlp.fc1.weight' is not a tensor of a llama model"},
        {"untied without lm_head", {.arch = "LlamaForCausalLM", .skip = "output.weight"}, NULL,
         VKM_ERR_FORMAT, "missing tensor 'output.weight' (lm_head.weight) and tie_word_embeddings is false"},
        {"too many experts used", {.arch = "MixtralForCausalLM", .experts = X}, ", \"num_experts_per_tok\": 4",
         VKM_ERR_FORMAT, "num_experts_per_tok: expected an integer from 1 to 3"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        vkm_model_src m;
        vkm_err e = {0};
        synth o = cases[i].o;
        o.norm_dtype = VKM_F32;
        synth_hf(dir, &o, cases[i].extra);
        expect_fail(cases[i].name, vkm_model_src_open(dir, &m, &e), &e, cases[i].want, cases[i].msg);
    }
    char p[1024];
    vkm_model_src m;
    vkm_err e = {0};
    snprintf(p, sizeof p, "%s/config.json", dir);
    static const struct {
        const char *json, *msg;
        vkm_status want;
    } cfgs[] = {
        {"{\"architectures\": [\"LlamaForCausalLM\"], \"rope_scaling\": {\"type\": \"linear\"}}",
         "rope_scaling is not supported", VKM_ERR_UNSUPPORTED},
        {"{\"architectures\": [\"LlamaForCausalLM\"]}", "hidden_size is missing", VKM_ERR_FORMAT},
        {"{\"model_type\": \"qwen2\", \"hidden_size\": \"16\"}", "hidden_size: expected an integer", VKM_ERR_FORMAT},
        {"{\"hidden_size\": 16}", "neither architectures nor model_type", VKM_ERR_FORMAT},
        {"[1]", "config is an array, not an object", VKM_ERR_FORMAT},
        {"{\"a\": 1,}", "not valid JSON (line 1", VKM_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) {
        write_text(p, cfgs[i].json);
        expect_fail(cfgs[i].msg, vkm_model_src_open(dir, &m, &e), &e, cfgs[i].want, cfgs[i].msg);
    }
    remove(p);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    expect_fail("no config", vkm_model_src_open(p, &m, &e), &e, VKM_ERR_NOT_FOUND,
                "no config.json beside the safetensors");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_hparams),  cmocka_unit_test(test_gguf_equals_safetensors),
        cmocka_unit_test(test_names),         cmocka_unit_test(test_rope_row_map),
        cmocka_unit_test(test_synthetic_models), cmocka_unit_test(test_gguf_errors),
        cmocka_unit_test(test_hf_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
