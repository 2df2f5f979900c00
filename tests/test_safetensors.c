/*
 * test_safetensors.c — the safetensors reader and writer: the real testbed and SmolLM files,
 * writer round trips (every dtype, metadata escapes, streaming), sharded sets through an index
 * (and broken indexes), and a table of malformed headers each failing with its own status and
 * message, truncations at every cut point and random corruption that must never crash.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loader_util.h"
#include "writer.h"

/* ---- the real files ----------------------------------------------------------------------- */
static void test_real_base(void **state)
{
    (void)state;
    vkm_st s;
    vkm_err e = {0};
    expect_ok(vkm_st_open(shared_path("testbed/base/model.safetensors"), &s, &e), &e);
    assert_int_equal(s.header_len, 4120);
    assert_int_equal(s.n_tensors, 39);
    assert_int_equal(s.n_meta, 1);
    assert_string_equal(vkm_st_meta_get(&s, "format"), "pt");
    assert_null(vkm_st_meta_get(&s, "nope"));
    const vkm_tensor_src *t = vkm_st_tensor(&s, "model.embed_tokens.weight");
    assert_non_null(t);
    assert_int_equal(t->dtype, VKM_F32);
    assert_int_equal(t->n_dims, 2);
    assert_int_equal(t->ne[0], 128); /* reversed from [1024, 128] */
    assert_int_equal(t->ne[1], 1024);
    assert_int_equal(t->offset, 8 + 4120 + 524288);
    float *x = tensor_f32(t);
    assert_true(x[0] == 0.022946152836084366f && x[3] == 0.004460309632122517f);
    free(x);
    x = tensor_f32(vkm_st_tensor(&s, "model.norm.weight"));
    assert_true(x[0] == 1.8419934511184692f && x[3] == 1.65664541721344f);
    free(x);
    t = vkm_st_tensor(&s, "model.layers.3.mlp.down_proj.weight");
    assert_int_equal(t->ne[0], 352);
    assert_int_equal(t->ne[1], 128);
    assert_null(vkm_st_tensor(&s, "model.layers.4.mlp.down_proj.weight"));
    vkm_st_close(&s);
    vkm_st_close(&s);

    expect_ok(vkm_st_open(shared_path("testbed/stories260K/model.safetensors"), &s, &e), &e);
    assert_int_equal(s.n_tensors, 48);
    x = tensor_f32(vkm_st_tensor(&s, "model.embed_tokens.weight"));
    assert_true(x[0] == -0.29474878311157227f && x[1] == 0.5618956089019775f);
    free(x);
    vkm_st_close(&s);
}

static void test_real_adapters(void **state)
{
    (void)state;
    static const char *const smol[] = {"final-5epochs", "final-100epochs", "ckpt-100epochs-step1000",
                                       "ckpt-100epochs-step19500"};
    vkm_st s;
    vkm_err e = {0};
    for (int i = 0; i < 4; i++) {
        char p[256];
        snprintf(p, sizeof p, "models/smollm135m-instruct-lora-medflashcards/%s/adapter_model.safetensors",
                 smol[i]);
        expect_ok(vkm_st_open(shared_path(p), &s, &e), &e);
        assert_int_equal(s.header_len, 15760);
        assert_int_equal(s.n_tensors, 120);
        const vkm_tensor_src *b = vkm_st_tensor(&s, "base_model.model.model.layers.29.self_attn.v_proj.lora_B.weight");
        assert_non_null(b);
        assert_int_equal(b->ne[0], 16);
        assert_int_equal(b->ne[1], 192);
        if (i == 0) {
            float *x = tensor_f32(vkm_st_tensor(&s, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"));
            assert_true(x[0] == 0.1104351207613945f && x[3] == -0.10851030796766281f);
            free(x);
        }
        vkm_st_close(&s);
    }
    expect_ok(vkm_st_open(shared_path("testbed/experts/python/adapter_model.safetensors"), &s, &e), &e);
    assert_int_equal(s.n_tensors, 56);
    vkm_st_close(&s);
    vkm_st_set set;
    expect_ok(vkm_st_set_open(shared_path("testbed/base"), &set, &e), &e);
    assert_false(set.sharded);
    assert_int_equal(set.n_files, 1);
    assert_non_null(vkm_st_set_tensor(&set, "lm_head.weight"));
    vkm_st_set_close(&set);
    expect_fail("no model in folder", vkm_st_set_open(shared_path("testbed/eval"), &set, &e), &e,
                VKM_ERR_NOT_FOUND, "no model.safetensors.index.json or model.safetensors");
}

/* ---- writer ------------------------------------------------------------------------------- */
static void test_write_roundtrip(void **state)
{
    (void)state;
    static const vkm_dtype types[] = {VKM_F32, VKM_F16, VKM_BF16, VKM_I8,
                                      VKM_I16, VKM_I32, VKM_I64,  VKM_F64};
    const char *path = tmp_path("rt.safetensors");
    vkm_err e = {0};
    vkm_st_writer *w;
    uint8_t *data[8];
    uint64_t size[8];
    for (int t = 0; t < 8; t++) {
        size[t] = (uint64_t)(15 * (t + 1)) * vkm_dtype_info(types[t])->block_bytes;
        data[t] = malloc(size[t]);
        for (uint64_t j = 0; j < size[t]; j++) data[t][j] = (uint8_t)(j * 3 + (uint64_t)t);
    }
    int64_t zero = 0;
    expect_ok(vkm_st_writer_create(path, &w, &e), &e);
    vkm_st_writer_set_meta(w, "format", "pt");
    vkm_st_writer_set_meta(w, "odd \"key\"\\", "line\nbreak\ttab \x01 ünï");
    for (int t = 0; t < 8; t++) {
        int64_t ne[3] = {5, 3, t + 1};
        char name[32];
        snprintf(name, sizeof name, "t.%s", vkm_st_dtype_name(types[t]));
        vkm_st_writer_add_tensor(w, name, types[t], 3, ne);
    }
    vkm_st_writer_add_tensor(w, "scalar", VKM_F32, 0, NULL);
    vkm_st_writer_add_tensor(w, "empty", VKM_F16, 1, &zero);
    expect_ok(vkm_st_writer_begin(w), &e);
    for (int t = 0; t < 8; t++)
        for (uint64_t j = 0; j < size[t]; j += 7)
            vkm_st_writer_write(w, data[t] + j, size[t] - j < 7 ? size[t] - j : 7);
    float one = 1.0f;
    vkm_st_writer_write_tensor(w, "scalar", &one, 4);
    vkm_st_writer_write_tensor(w, "empty", NULL, 0);
    expect_ok(vkm_st_writer_finish(w), &e);
    vkm_st_writer_free(w);

    vkm_st s;
    expect_ok(vkm_st_open(path, &s, &e), &e);
    assert_int_equal((8 + s.header_len) % 8, 0);
    assert_int_equal(s.n_tensors, 10);
    assert_string_equal(vkm_st_meta_get(&s, "odd \"key\"\\"), "line\nbreak\ttab \x01 ünï");
    for (int t = 0; t < 8; t++) {
        const vkm_tensor_src *x = &s.tensors[t];
        assert_int_equal(x->dtype, types[t]);
        assert_int_equal(x->n_dims, 3);
        assert_int_equal(x->ne[0], 5);
        assert_int_equal(x->ne[2], t + 1);
        assert_int_equal(x->nbytes, size[t]);
        assert_memory_equal(x->data, data[t], size[t]);
        free(data[t]);
    }
    const vkm_tensor_src *sc = vkm_st_tensor(&s, "scalar");
    assert_int_equal(sc->n_dims, 0);
    assert_int_equal(vkm_tensor_nelem(sc), 1);
    assert_memory_equal(sc->data, &one, 4);
    assert_int_equal(vkm_st_tensor(&s, "empty")->nbytes, 0);
    vkm_st_close(&s);

    /* refusals */
    expect_ok(vkm_st_writer_create(path, &w, &e), &e);
    int64_t ne[1] = {32};
    expect_fail("quantized", vkm_st_writer_add_tensor(w, "q", VKM_Q8_0, 1, ne), &e,
                VKM_ERR_UNSUPPORTED, "safetensors cannot hold Q8_0 data");
    vkm_st_writer_free(w);
    expect_ok(vkm_st_writer_create(path, &w, &e), &e);
    vkm_st_writer_set_meta(w, "a", "1");
    expect_fail("dup meta", vkm_st_writer_set_meta(w, "a", "2"), &e, VKM_ERR_INVALID_ARGUMENT,
                "duplicate metadata key 'a'");
    vkm_st_writer_free(w);
    expect_ok(vkm_st_writer_create(path, &w, &e), &e);
    expect_fail("metadata name", vkm_st_writer_add_tensor(w, "__metadata__", VKM_F32, 1, ne), &e,
                VKM_ERR_INVALID_ARGUMENT, "not a tensor name");
    vkm_st_writer_free(w);
}

/* ---- sharded sets ------------------------------------------------------------------------- */
/* Splits the base model into two shards + index in dir (tensors alternate between shards). */
static void write_shards(const char *dir, const char *index_json_extra)
{
    vkm_st s;
    vkm_err e = {0};
    expect_ok(vkm_st_open(shared_path("testbed/base/model.safetensors"), &s, &e), &e);
    make_dir(dir);
    char p[1024], idx[65536];
    size_t k = (size_t)snprintf(idx, sizeof idx, "{\"metadata\": {\"total_size\": 1}, \"weight_map\": {");
    for (int shard = 0; shard < 2; shard++) {
        vkm_st_writer *w;
        snprintf(p, sizeof p, "%s/model-0000%d-of-00002.safetensors", dir, shard + 1);
        expect_ok(vkm_st_writer_create(p, &w, &e), &e);
        for (uint64_t i = (uint64_t)shard; i < s.n_tensors; i += 2) {
            const vkm_tensor_src *t = &s.tensors[i];
            vkm_st_writer_add_tensor(w, t->name, t->dtype, t->n_dims, t->ne);
            k += (size_t)snprintf(idx + k, sizeof idx - k, "%s\"%s\": \"model-0000%d-of-00002.safetensors\"",
                                  k > 60 ? ", " : "", t->name, shard + 1);
        }
        vkm_st_writer_begin(w);
        for (uint64_t i = (uint64_t)shard; i < s.n_tensors; i += 2)
            vkm_st_writer_write_tensor(w, s.tensors[i].name, s.tensors[i].data, s.tensors[i].nbytes);
        expect_ok(vkm_st_writer_finish(w), &e);
        vkm_st_writer_free(w);
    }
    snprintf(idx + k, sizeof idx - k, "%s}}", index_json_extra);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    write_text(p, idx);
    vkm_st_close(&s);
}

static void test_sharded(void **state)
{
    (void)state;
    const char *dir = tmp_path("sharded");
    write_shards(dir, "");
    vkm_st_set set;
    vkm_st one;
    vkm_err e = {0};
    expect_ok(vkm_st_set_open(dir, &set, &e), &e);
    expect_ok(vkm_st_open(shared_path("testbed/base/model.safetensors"), &one, &e), &e);
    assert_true(set.sharded);
    assert_int_equal(set.n_files, 2);
    assert_int_equal(set.files[0].n_tensors + set.files[1].n_tensors, 39);
    for (uint64_t i = 0; i < one.n_tensors; i++) {
        const vkm_tensor_src *a = &one.tensors[i], *b = vkm_st_set_tensor(&set, a->name);
        assert_non_null(b);
        assert_memory_equal(a->ne, b->ne, sizeof a->ne);
        assert_memory_equal(a->data, b->data, a->nbytes);
    }
    vkm_st_set_close(&set);
    char p[1024];
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    expect_ok(vkm_st_set_open(p, &set, &e), &e); /* the index itself */
    vkm_st_set_close(&set);
    vkm_st_close(&one);

    static const struct {
        const char *name, *extra, *msg;
        vkm_status want;
    } bad[] = {
        {"entry not in shard", ", \"ghost.weight\": \"model-00001-of-00002.safetensors\"",
         "weight_map says 'ghost.weight' is in model-00001-of-00002.safetensors, but it is not there",
         VKM_ERR_FORMAT},
        {"missing shard", ", \"x\": \"model-00003-of-00002.safetensors\"", "cannot open", VKM_ERR_IO},
        {"path in shard name", ", \"x\": \"../model.safetensors\"", "plain file name", VKM_ERR_FORMAT},
        {"shard name not a string", ", \"x\": 3", "plain file name", VKM_ERR_FORMAT},
        {"duplicate entry", ", \"lm_head.weight\": \"model-00001-of-00002.safetensors\"",
         "duplicate key 'lm_head.weight' in 'weight_map'", VKM_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_shards(dir, bad[i].extra);
        expect_fail(bad[i].name, vkm_st_set_open(dir, &set, &e), &e, bad[i].want, bad[i].msg);
    }
    write_text(p, "{\"weight_map\": {\"lm_head.weight\": \"model-00001-of-00002.safetensors\"}}");
    expect_fail("tensor not listed", vkm_st_set_open(dir, &set, &e), &e, VKM_ERR_FORMAT,
                "of shard model-00001-of-00002.safetensors is not listed in the weight_map");
    write_text(p, "{\"weight_map\": {\"lm_head.weight\": \"model-00002-of-00002.safetensors\"}}");
    expect_fail("tensor in the other shard", vkm_st_set_open(dir, &set, &e), &e, VKM_ERR_FORMAT,
                "is not there");
    write_text(p, "{\"weight_map\": []}");
    expect_fail("weight_map array", vkm_st_set_open(dir, &set, &e), &e, VKM_ERR_FORMAT,
                "weight_map is an array, not an object");
    write_text(p, "{\"weight_map\": {}}");
    expect_fail("weight_map empty", vkm_st_set_open(dir, &set, &e), &e, VKM_ERR_FORMAT,
                "the weight_map is empty");
    write_text(p, "{\"weight_map\": {");
    expect_fail("index not JSON", vkm_st_set_open(dir, &set, &e), &e, VKM_ERR_FORMAT,
                "not valid JSON (line 1");
}

/* ---- malformed headers -------------------------------------------------------------------- */
/* A file: header length, the JSON text, then n_data zero bytes. */
static void st_file(bb *b, const char *json, size_t n_data)
{
    bb_u64(b, strlen(json));
    bb_cstr(b, json);
    for (size_t i = 0; i < n_data; i++) bb_u8(b, 0);
}

static vkm_status open_bytes(const bb *b, vkm_err *e)
{
    vkm_st s;
    vkm_status st = vkm_st_open_mem(b->p, b->n, "mem.safetensors", &s, e);
    if (st == VKM_OK) vkm_st_close(&s);
    return st;
}

#define T1(dtype, shape, offs) "{\"t\":{\"dtype\":" dtype ",\"shape\":" shape ",\"data_offsets\":" offs "}}"

static const struct {
    const char *name, *json;
    size_t n_data;
    vkm_status want;
    const char *msg;
} bad_headers[] = {
    {"good", T1("\"F32\"", "[2,4]", "[0,32]"), 32, VKM_OK, ""},
    {"not an object", "[1, 2]", 0, VKM_ERR_FORMAT, "the header is not a JSON object"},
    {"bad JSON", "{\"t\": {\"dtype\": }", 0, VKM_ERR_FORMAT, "not valid JSON (line 1, column"},
    {"trailing bytes", "{} x", 0, VKM_ERR_FORMAT, "trailing bytes after the JSON value"},
    {"trailing spaces are fine", "{}      ", 0, VKM_OK, ""},
    {"duplicate tensor", "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                         "\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
     8, VKM_ERR_FORMAT, "duplicate key 't'"},
    {"F8 dtype", T1("\"F8_E4M3\"", "[4]", "[0,4]"), 4, VKM_ERR_UNSUPPORTED,
     "tensor 't': dtype 'F8_E4M3' is not supported"},
    {"U8 dtype", T1("\"U8\"", "[4]", "[0,4]"), 4, VKM_ERR_UNSUPPORTED, "dtype 'U8' is not supported"},
    {"dtype number", T1("3", "[4]", "[0,4]"), 4, VKM_ERR_FORMAT, "dtype is a number, not a string"},
    {"dtype missing", "{\"t\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, VKM_ERR_FORMAT,
     "dtype is nothing, not a string"},
    {"shape not array", T1("\"F32\"", "4", "[0,16]"), 16, VKM_ERR_FORMAT, "shape must be an array"},
    {"shape 5 dims", T1("\"F32\"", "[1,1,1,1,1]", "[0,4]"), 4, VKM_ERR_FORMAT,
     "shape must be an array of at most 4 sizes"},
    {"negative size", T1("\"F32\"", "[-1]", "[0,4]"), 4, VKM_ERR_FORMAT, "bad shape"},
    {"fractional size", T1("\"F32\"", "[1.5]", "[0,4]"), 4, VKM_ERR_FORMAT, "bad shape"},
    {"size as string", T1("\"F32\"", "[\"4\"]", "[0,16]"), 16, VKM_ERR_FORMAT, "bad shape"},
    {"shape overflow", T1("\"F32\"", "[1099511627776,1099511627776]", "[0,4]"), 4, VKM_ERR_FORMAT,
     "bad shape"},
    {"huge size", T1("\"F32\"", "[1e300]", "[0,4]"), 4, VKM_ERR_FORMAT, "bad shape"},
    {"offsets one value", T1("\"F32\"", "[1]", "[0]"), 4, VKM_ERR_FORMAT,
     "data_offsets must be [begin, end]"},
    {"offsets reversed", T1("\"F32\"", "[1]", "[4,0]"), 4, VKM_ERR_FORMAT,
     "data_offsets must be [begin, end]"},
    {"offsets negative", T1("\"F32\"", "[1]", "[-4,0]"), 4, VKM_ERR_FORMAT,
     "data_offsets must be [begin, end]"},
    {"size mismatch", T1("\"F32\"", "[2,4]", "[0,28]"), 32, VKM_ERR_FORMAT,
     "shape [4, 2] of F32 needs 32 bytes but data_offsets span 28"},
    {"BF16 size mismatch", T1("\"BF16\"", "[3]", "[0,12]"), 12, VKM_ERR_FORMAT,
     "needs 6 bytes but data_offsets span 12"},
    {"past the end", T1("\"F32\"", "[2,4]", "[0,32]"), 31, VKM_ERR_FORMAT,
     "data_offsets [0, 32) run past the end of the file (the data section has 31 bytes)"},
    {"far past the end", T1("\"F32\"", "[1]", "[9007199254740000,9007199254740004]"), 4,
     VKM_ERR_FORMAT, "run past the end of the file"},
    {"overlap", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
     12, VKM_ERR_FORMAT, "the data of tensors 'a' [116, 124) and 'b' [120, 128) overlap"},
    {"unknown key", "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"foo\":1}}", 4,
     VKM_ERR_FORMAT, "tensor 't': unknown key 'foo'"},
    {"entry not object", "{\"t\":[1,2]}", 0, VKM_ERR_FORMAT, "tensor 't' is an array, not an object"},
    {"metadata not object", "{\"__metadata__\":\"x\"}", 0, VKM_ERR_FORMAT,
     "__metadata__ is a string, not an object"},
    {"metadata value number", "{\"__metadata__\":{\"format\":1}}", 0, VKM_ERR_FORMAT,
     "__metadata__.format is a number, not a string"},
    {"two metadata", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, VKM_ERR_FORMAT,
     "duplicate key '__metadata__'"},
    {"bad UTF-8 name", "{\"\xC3\x28\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
     VKM_ERR_FORMAT, "must be non-empty valid UTF-8"},
    {"escaped NUL name", "{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
     4, VKM_ERR_FORMAT, "a \\u0000 (NUL) escape in a JSON string"},
    {"empty name", "{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
     VKM_ERR_FORMAT, "must be non-empty valid UTF-8"},
};

static void test_malformed(void **state)
{
    (void)state;
    vkm_err e = {0};
    for (size_t i = 0; i < sizeof bad_headers / sizeof bad_headers[0]; i++) {
        bb b = {0};
        st_file(&b, bad_headers[i].json, bad_headers[i].n_data);
        vkm_status s = open_bytes(&b, &e);
        if (bad_headers[i].want == VKM_OK) expect_ok(s, &e);
        else expect_fail(bad_headers[i].name, s, &e, bad_headers[i].want, bad_headers[i].msg);
        bb_free(&b);
    }
    /* header length problems */
    bb b = {0};
    expect_fail("empty", open_bytes(&b, &e), &e, VKM_ERR_FORMAT, "not even the 8-byte header length");
    bb_u32(&b, 0);
    expect_fail("4 bytes", open_bytes(&b, &e), &e, VKM_ERR_FORMAT, "not even the 8-byte header length");
    bb_free(&b);
    bb_u64(&b, 1ull << 62);
    bb_cstr(&b, "{}");
    expect_fail("huge header length", open_bytes(&b, &e), &e, VKM_ERR_FORMAT,
                "header length 4611686018427387904 exceeds the limit");
    bb_free(&b);
    bb_u64(&b, 100);
    bb_cstr(&b, "{}");
    expect_fail("header length lies", open_bytes(&b, &e), &e, VKM_ERR_FORMAT,
                "header length 100 runs past the end of the file (10 bytes)");
    bb_free(&b);
    bb_u64(&b, 0);
    expect_fail("zero header", open_bytes(&b, &e), &e, VKM_ERR_FORMAT, "not a safetensors file");
    bb_free(&b);
    /* a JSON nesting bomb */
    {
        size_t depth = 5000;
        char *json = malloc(2 * depth + 16);
        size_t k = 0;
        json[k++] = '{';
        memcpy(json + k, "\"a\":", 4);
        k += 4;
        for (size_t d = 0; d < depth; d++) json[k++] = '[';
        for (size_t d = 0; d < depth; d++) json[k++] = ']';
        json[k++] = '}';
        json[k] = 0;
        st_file(&b, json, 0);
        expect_fail("nesting bomb", open_bytes(&b, &e), &e, VKM_ERR_FORMAT, "not valid JSON");
        free(json);
        bb_free(&b);
    }
}

static void test_truncations(void **state)
{
    (void)state;
    bb b = {0};
    st_file(&b, "{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],"
                "\"data_offsets\":[0,16]},\"b\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[16,22]}}",
            22);
    vkm_err e = {0};
    expect_ok(open_bytes(&b, &e), &e);
    for (size_t cut = 0; cut < b.n; cut++) {
        bb c = {0};
        bb_bytes(&c, b.p, cut);
        vkm_status s = open_bytes(&c, &e);
        char name[32];
        snprintf(name, sizeof name, "cut at %zu", cut);
        const char *want = cut < 8 ? "not even the 8-byte" : cut < b.n - 22 ? "runs past the end"
                                                                           : "run past the end";
        expect_fail(name, s, &e, VKM_ERR_FORMAT, want);
        bb_free(&c);
    }
    bb_free(&b);
}

static void test_random_corruption(void **state)
{
    (void)state;
    size_t n;
    uint8_t *orig = read_bytes(shared_path("testbed/experts/c/adapter_model.safetensors"), &n);
    uint8_t *p = malloc(n);
    uint64_t rng = 12345;
    static const char alphabet[] = "{}[]\",:0123456789-.eE \\uFab_";
    int ok = 0;
    for (int it = 0; it < 3000; it++) {
        memcpy(p, orig, n);
        for (int f = 0; f < 1 + it % 3; f++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            size_t at = (size_t)((rng >> 33) % 7080);
            p[at] = it % 2 ? (uint8_t)alphabet[(rng >> 20) % (sizeof alphabet - 1)] : (uint8_t)(rng >> 24);
        }
        vkm_st s;
        vkm_err e = {0};
        if (vkm_st_open_mem(p, n, "fuzzed", &s, &e) == VKM_OK) {
            for (uint64_t i = 0; i < s.n_tensors; i++)
                assert_true(s.tensors[i].offset + s.tensors[i].nbytes <= n);
            ok++;
            vkm_st_close(&s);
        } else {
            assert_true(e.msg[0] != 0);
        }
    }
    assert_true(ok < 3000);
    free(p);
    free(orig);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_base),      cmocka_unit_test(test_real_adapters),
        cmocka_unit_test(test_write_roundtrip), cmocka_unit_test(test_sharded),
        cmocka_unit_test(test_malformed),      cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_random_corruption),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
