/*
 * test_file.c — the public vkm_file_* API: every format detected (GGUF, GGUF LoRA, safetensors
 * file, sharded set, Hugging Face folder, PEFT folder, a folder holding a GGUF), metadata
 * rendered as text with arrays abbreviated, tensors in the file's own dimension order, and
 * validation failures (bad values, bad models, unpaired adapters, unreadable files).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loader_util.h"
#include "writer.h"

static vkm_file *open_ok(const char *path, const char *format)
{
    vkm_file *f = NULL;
    vkm_status s = vkm_file_open(path, &f);
    if (s != VKM_OK) fail_msg("%s: %s", path, vkm_file_errmsg(f));
    assert_string_equal(vkm_file_format(f), format);
    return f;
}

/* The rendered value of key (fails if absent). */
static const char *meta(const vkm_file *f, const char *key)
{
    static char buf[1024];
    for (size_t i = 0; i < vkm_file_n_meta(f); i++) {
        const char *k;
        assert_int_equal(vkm_file_meta(f, i, &k, buf, sizeof buf), VKM_OK);
        if (!strcmp(k, key)) return buf;
    }
    fail_msg("no metadata key %s", key);
    return NULL;
}

static const vkm_tensor_info *tensor(const vkm_file *f, const char *name)
{
    static vkm_tensor_info t;
    for (size_t i = 0; i < vkm_file_n_tensors(f); i++) {
        assert_int_equal(vkm_file_tensor(f, i, &t), VKM_OK);
        if (!strcmp(t.name, name)) return &t;
    }
    fail_msg("no tensor %s", name);
    return NULL;
}

static void test_formats(void **state)
{
    (void)state;
    vkm_file *f = open_ok(shared_path("testbed/base/model.gguf"), "gguf");
    assert_int_equal(vkm_file_n_meta(f), 23);
    assert_int_equal(vkm_file_n_tensors(f), 39);
    assert_string_equal(meta(f, "general.architecture"), "\"llama\"");
    assert_string_equal(meta(f, "llama.block_count"), "4");
    assert_string_equal(meta(f, "llama.rope.freq_base"), "10000");
    assert_string_equal(meta(f, "tokenizer.ggml.add_bos_token"), "true");
    assert_string_equal(meta(f, "tokenizer.ggml.tokens"),
                        "[string x 1024] \"<unk>\", \"<s>\", \"</s>\", \"<0x00>\", \"<0x01>\", \"<0x02>\", \"<0x03>\", \"<0x04>\", ...");
    assert_string_equal(meta(f, "tokenizer.ggml.token_type"), "[i32 x 1024] 2, 3, 3, 6, 6, 6, 6, 6, ...");
    const vkm_tensor_info *t = tensor(f, "blk.1.attn_k.weight");
    assert_int_equal(t->n_dims, 2);
    assert_int_equal(t->dims[0], 128); /* GGUF order */
    assert_int_equal(t->dims[1], 64);
    assert_int_equal(t->bytes, 32768);
    assert_int_equal(t->dtype, VKM_F32);
    assert_int_equal(vkm_file_validate(f), VKM_OK);
    char small[8];
    const char *key;
    assert_int_equal(vkm_file_meta(f, 16, &key, small, sizeof small), VKM_OK); /* cut, terminated */
    assert_int_equal(strlen(small), 7);
    assert_int_equal(vkm_file_meta(f, 23, &key, small, sizeof small), VKM_ERR_INVALID_ARGUMENT);
    vkm_tensor_info ti;
    assert_int_equal(vkm_file_tensor(f, 39, &ti), VKM_ERR_INVALID_ARGUMENT);
    vkm_file_close(f);

    f = open_ok(shared_path("testbed/base/model.safetensors"), "safetensors");
    t = tensor(f, "model.layers.1.self_attn.k_proj.weight");
    assert_int_equal(t->dims[0], 64); /* outermost first */
    assert_int_equal(t->dims[1], 128);
    assert_string_equal(meta(f, "format"), "\"pt\"");
    assert_int_equal(vkm_file_validate(f), VKM_OK);
    vkm_file_close(f);

    f = open_ok(shared_path("testbed/base"), "hf-folder");
    assert_string_equal(meta(f, "config.architectures"), "[\"LlamaForCausalLM\"]");
    assert_string_equal(meta(f, "config.rope_scaling"), "null");
    assert_int_equal(vkm_file_n_tensors(f), 39);
    assert_int_equal(vkm_file_validate(f), VKM_OK);
    vkm_file_close(f);

    f = open_ok(shared_path("testbed/experts/shell"), "peft");
    assert_string_equal(meta(f, "adapter_config.r"), "8");
    assert_int_equal(vkm_file_n_tensors(f), 56);
    assert_int_equal(vkm_file_validate(f), VKM_OK);
    vkm_file_close(f);

    f = open_ok(shared_path("testbed/experts/shell/adapter_model.safetensors"), "safetensors");
    assert_int_equal(vkm_file_validate(f), VKM_OK);
    vkm_file_close(f);

    f = open_ok(shared_path("testbed/experts/legal/adapter.gguf"), "gguf-lora");
    assert_string_equal(meta(f, "adapter.lora.alpha"), "16");
    assert_int_equal(vkm_file_validate(f), VKM_OK);
    vkm_file_close(f);

    f = open_ok(shared_path("models/smollm135m-instruct-lora-medflashcards/ckpt-100epochs-step1000"), "peft");
    assert_int_equal(vkm_file_n_tensors(f), 120);
    assert_string_equal(meta(f, "adapter_config.target_modules"), "[\"v_proj\",\"q_proj\"]");
    assert_int_equal(vkm_file_validate(f), VKM_OK);
    vkm_file_close(f);

    /* a folder holding only a GGUF */
    const char *dir = tmp_path("file_gguf_dir");
    make_dir(dir);
    char p[1024];
    snprintf(p, sizeof p, "%s/model.gguf", dir);
    unlink(p);
    assert_int_equal(symlink(shared_path("testbed/stories260K/model.gguf"), p), 0);
    f = open_ok(dir, "gguf");
    assert_int_equal(vkm_file_n_tensors(f), 48);
    assert_int_equal(vkm_file_validate(f), VKM_OK);
    vkm_file_close(f);

    /* a sharded set written here */
    vkm_st s;
    vkm_err e = {0};
    expect_ok(vkm_st_open(shared_path("testbed/stories260K/model.safetensors"), &s, &e), &e);
    dir = tmp_path("file_sharded");
    make_dir(dir);
    snprintf(p, sizeof p, "%s/config.json", dir);
    remove(p); /* from an earlier run */
    char idx[16384];
    size_t k = (size_t)snprintf(idx, sizeof idx, "{\"metadata\": {}, \"weight_map\": {");
    for (int sh = 0; sh < 3; sh++) {
        vkm_st_writer *w;
        snprintf(p, sizeof p, "%s/part%d.safetensors", dir, sh);
        expect_ok(vkm_st_writer_create(p, &w, &e), &e);
        vkm_st_writer_set_meta(w, "shard", sh == 0 ? "zero" : "other");
        for (uint64_t i = (uint64_t)sh; i < s.n_tensors; i += 3) {
            vkm_st_writer_add_tensor(w, s.tensors[i].name, s.tensors[i].dtype, s.tensors[i].n_dims, s.tensors[i].ne);
            k += (size_t)snprintf(idx + k, sizeof idx - k, "%s\"%s\": \"part%d.safetensors\"", k > 40 ? ", " : "",
                                  s.tensors[i].name, sh);
        }
        vkm_st_writer_begin(w);
        for (uint64_t i = (uint64_t)sh; i < s.n_tensors; i += 3)
            vkm_st_writer_write_tensor(w, s.tensors[i].name, s.tensors[i].data, s.tensors[i].nbytes);
        expect_ok(vkm_st_writer_finish(w), &e);
        vkm_st_writer_free(w);
    }
    snprintf(idx + k, sizeof idx - k, "}}");
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    write_text(p, idx);
    f = open_ok(dir, "safetensors-sharded");
    assert_int_equal(vkm_file_n_tensors(f), 48);
    assert_string_equal(meta(f, "part0.safetensors: shard"), "\"zero\"");
    assert_int_equal(vkm_file_validate(f), VKM_OK);
    vkm_file_close(f);
    f = open_ok(p, "safetensors-sharded");
    vkm_file_close(f);
    /* with config.json beside the index it is a Hugging Face folder, validated as a model */
    snprintf(p, sizeof p, "%s/config.json", dir);
    size_t n;
    uint8_t *cfg = read_bytes(shared_path("testbed/stories260K/config.json"), &n);
    write_bytes(p, cfg, n);
    free(cfg);
    f = open_ok(dir, "hf-folder");
    assert_int_equal(vkm_file_validate(f), VKM_OK);
    vkm_file_close(f);
    vkm_st_close(&s);
}

/* A small F32 GGUF "model" with one non-finite value, or a valid tiny file. */
static void write_values(const char *path, float bad, vkm_dtype dtype)
{
    vkm_err e = {0};
    vkm_gguf_writer *w;
    int64_t ne[1] = {64};
    float x[64];
    for (int i = 0; i < 64; i++) x[i] = (float)i;
    x[37] = bad;
    uint8_t q[68];
    expect_ok(vkm_gguf_writer_create(path, &w, &e), &e);
    vkm_gguf_writer_set_str(w, "general.architecture", "unknown-arch");
    vkm_gguf_writer_add_tensor(w, "v", dtype, 1, ne);
    vkm_gguf_writer_begin(w);
    if (dtype == VKM_Q8_0) {
        vkm_quantize_q8_0(x, 64, q);
        q[34] = 0x00, q[35] = 0x7c; /* the second block's scale: +inf in f16 */
        vkm_gguf_writer_write(w, q, sizeof q);
    } else {
        vkm_gguf_writer_write(w, x, sizeof x);
    }
    expect_ok(vkm_gguf_writer_finish(w), &e);
    vkm_gguf_writer_free(w);
}

static void test_validate_failures(void **state)
{
    (void)state;
    const char *p = tmp_path("values.gguf");
    vkm_file *f;
    write_values(p, 1.0f, VKM_F32);
    f = open_ok(p, "gguf");
    assert_int_equal(vkm_file_validate(f), VKM_OK); /* unknown architecture: structure only */
    vkm_file_close(f);
    write_values(p, NAN, VKM_F32);
    f = open_ok(p, "gguf");
    assert_int_equal(vkm_file_validate(f), VKM_ERR_FORMAT);
    assert_non_null(strstr(vkm_file_errmsg(f), "tensor 'v': element 37 is NaN"));
    vkm_file_close(f);
    write_values(p, INFINITY, VKM_F32);
    f = open_ok(p, "gguf");
    assert_int_equal(vkm_file_validate(f), VKM_ERR_FORMAT);
    assert_non_null(strstr(vkm_file_errmsg(f), "element 37 is infinite"));
    vkm_file_close(f);
    write_values(p, 1.0f, VKM_Q8_0);
    f = open_ok(p, "gguf");
    assert_int_equal(vkm_file_validate(f), VKM_ERR_FORMAT);
    assert_non_null(strstr(vkm_file_errmsg(f), "tensor 'v': element 32 is"));
    vkm_file_close(f);

    /* a llama GGUF missing its tensors: opens, fails validation with the model's message */
    vkm_err e = {0};
    vkm_gguf_writer *w;
    expect_ok(vkm_gguf_writer_create(p, &w, &e), &e);
    vkm_gguf_writer_set_str(w, "general.architecture", "llama");
    static const char *const keys[] = {"llama.embedding_length", "llama.block_count", "llama.attention.head_count",
                                       "llama.feed_forward_length", "llama.context_length", "llama.vocab_size"};
    for (int i = 0; i < 6; i++) vkm_gguf_writer_set_u32(w, keys[i], i == 2 ? 2 : 8);
    vkm_gguf_writer_begin(w);
    expect_ok(vkm_gguf_writer_finish(w), &e);
    vkm_gguf_writer_free(w);
    f = open_ok(p, "gguf");
    assert_int_equal(vkm_file_validate(f), VKM_ERR_FORMAT);
    assert_non_null(strstr(vkm_file_errmsg(f), "missing tensor 'token_embd.weight'"));
    vkm_file_close(f);

    /* a PEFT folder with an unpaired half: opens and lists, fails validation */
    const char *dir = tmp_path("file_peft");
    make_dir(dir);
    char q[1024];
    snprintf(q, sizeof q, "%s/adapter_config.json", dir);
    write_text(q, "{\"r\": 4}");
    snprintf(q, sizeof q, "%s/adapter_model.safetensors", dir);
    vkm_st_writer *sw;
    int64_t ne[2] = {16, 4};
    float z[64] = {0};
    expect_ok(vkm_st_writer_create(q, &sw, &e), &e);
    vkm_st_writer_add_tensor(sw, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", VKM_F32, 2, ne);
    vkm_st_writer_begin(sw);
    vkm_st_writer_write(sw, z, sizeof z);
    expect_ok(vkm_st_writer_finish(sw), &e);
    vkm_st_writer_free(sw);
    f = open_ok(dir, "peft");
    assert_int_equal(vkm_file_n_tensors(f), 1);
    assert_int_equal(vkm_file_validate(f), VKM_ERR_FORMAT);
    assert_non_null(strstr(vkm_file_errmsg(f), "has no matching B"));
    vkm_file_close(f);

    /* files that do not open: the handle carries the message */
    static const struct {
        const char *path;
        vkm_status want;
        const char *msg;
    } bad[] = {
        {"testbed/nope.gguf", VKM_ERR_IO, "cannot open"},
        {"testbed/eval", VKM_ERR_NOT_FOUND, "no model or adapter this loader knows in this folder"},
        {"testbed/eval/c.txt", VKM_ERR_FORMAT, "not a GGUF file, and read as safetensors"},
        {"testbed/golden/index.json", VKM_ERR_FORMAT, "weight_map is nothing, not an object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        f = NULL;
        vkm_status s = vkm_file_open(shared_path(bad[i].path), &f);
        assert_non_null(f);
        vkm_err got = {.status = s};
        snprintf(got.msg, sizeof got.msg, "%s", vkm_file_errmsg(f));
        expect_fail(bad[i].path, s, &got, bad[i].want, bad[i].msg);
        assert_int_equal(vkm_file_validate(f), s);
        assert_int_equal(vkm_file_n_tensors(f), 0);
        vkm_file_close(f);
    }
    vkm_file_close(NULL);
    assert_non_null(vkm_file_errmsg(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_formats),
        cmocka_unit_test(test_validate_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
