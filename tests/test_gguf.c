/*
 * test_gguf.c — the GGUF reader and writer: the real testbed files (values checked), writer
 * round trips of every metadata type and tensor dtype, streaming, and a table of malformed
 * files (truncations at every cut point, lying counts, bad UTF-8, bad types, overlaps...), each
 * failing with its own status and message, plus random corruption that must never crash.
 */
#define _GNU_SOURCE /* O_DIRECT */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "leftovers.h"
#include "loader_util.h"
#include "writer.h"
#include "wqueue.h"

/* ---- the real files ----------------------------------------------------------------------- */
static void check_base_common(const vkm_gguf *g)
{
    uint32_t u;
    float f;
    bool b;
    char s[64];
    assert_int_equal(g->version, 3);
    assert_int_equal(g->n_kv, 23);
    assert_int_equal(g->n_tensors, 39);
    assert_int_equal(g->alignment, 32);
    assert_int_equal(g->data_offset, 24064);
    assert_true(vkm_gguf_get_str(g, "general.architecture", s, sizeof s));
    assert_string_equal(s, "llama");
    assert_false(vkm_gguf_get_str(g, "general.architecture", s, 5)); /* too short */
    assert_true(vkm_gguf_get_u32(g, "llama.embedding_length", &u));
    assert_int_equal(u, 128);
    assert_true(vkm_gguf_get_u32(g, "llama.attention.head_count_kv", &u));
    assert_int_equal(u, 2);
    assert_true(vkm_gguf_get_f32(g, "llama.rope.freq_base", &f));
    assert_true(f == 10000.0f);
    assert_true(vkm_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &f));
    assert_true(f == 1e-5f);
    assert_true(vkm_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b) && b);
    assert_false(vkm_gguf_get_bool(g, "llama.embedding_length", &b)); /* wrong type */
    assert_false(vkm_gguf_get_u32(g, "general.architecture", &u));
    assert_false(vkm_gguf_get_u32(g, "no.such.key", &u));
    const vkm_gguf_arr *tok = vkm_gguf_get_arr(g, "tokenizer.ggml.tokens");
    assert_non_null(tok);
    assert_int_equal(tok->elem_type, VKM_GGUF_STRING);
    assert_int_equal(tok->n, 1024);
    assert_int_equal(tok->strs[1].n, 3);
    assert_memory_equal(tok->strs[1].p, "<s>", 3);
    const vkm_gguf_arr *tt = vkm_gguf_get_arr(g, "tokenizer.ggml.token_type");
    int64_t v;
    assert_true(vkm_gguf_arr_i64(tt, 3, &v));
    assert_int_equal(v, 6);
    assert_false(vkm_gguf_arr_i64(tt, 1024, &v));
    double d;
    assert_true(vkm_gguf_arr_f64(vkm_gguf_get_arr(g, "tokenizer.ggml.scores"), 0, &d));
    assert_null(vkm_gguf_get_arr(g, "llama.block_count"));
    const vkm_tensor_src *k = vkm_gguf_tensor(g, "blk.0.attn_k.weight");
    assert_non_null(k);
    assert_int_equal(k->n_dims, 2);
    assert_int_equal(k->ne[0], 128);
    assert_int_equal(k->ne[1], 64);
    assert_null(vkm_gguf_tensor(g, "blk.9.attn_k.weight"));
    const vkm_tensor_src *n = vkm_gguf_tensor(g, "output_norm.weight");
    assert_int_equal(n->dtype, VKM_F32);
    assert_int_equal(n->n_dims, 1);
}

static void test_real_base(void **state)
{
    (void)state;
    vkm_gguf g;
    vkm_err e = {0};
    expect_ok(vkm_gguf_open(shared_path("testbed/base/model.gguf"), &g, &e), &e);
    check_base_common(&g);
    const vkm_tensor_src *emb = vkm_gguf_tensor(&g, "token_embd.weight");
    assert_int_equal(emb->dtype, VKM_F32);
    assert_int_equal(emb->ne[0], 128);
    assert_int_equal(emb->ne[1], 1024);
    assert_int_equal(emb->offset, 24064);
    assert_int_equal(emb->nbytes, 128 * 1024 * 4);
    float *x = tensor_f32(emb);
    assert_true(x[0] == 0.022946152836084366f && x[3] == 0.004460309632122517f);
    assert_true(x[129] == -0.08875361829996109f); /* row 1, column 1 */
    free(x);
    const vkm_tensor_src *q = vkm_gguf_tensor(&g, "blk.0.attn_q.weight");
    assert_int_equal(q->dtype, VKM_F32);
    x = tensor_f32(q);
    assert_true(x[0] == -0.045126259326934814f && x[2] == 0.0452863946557045f);
    free(x);
    vkm_gguf_close(&g);
    vkm_gguf_close(&g); /* closing twice is harmless */
}

static void test_real_f16(void **state)
{
    (void)state;
    vkm_gguf g, g32;
    vkm_err e = {0};
    expect_ok(vkm_gguf_open(shared_path("testbed/base/model-f16.gguf"), &g, &e), &e);
    expect_ok(vkm_gguf_open(shared_path("testbed/base/model.gguf"), &g32, &e), &e);
    check_base_common(&g);
    uint32_t ft;
    assert_true(vkm_gguf_get_u32(&g, "general.file_type", &ft));
    assert_int_equal(ft, 1);
    for (uint64_t i = 0; i < g.n_tensors; i++) {
        const vkm_tensor_src *t = &g.tensors[i], *t32 = vkm_gguf_tensor(&g32, t->name);
        assert_non_null(t32);
        assert_int_equal(t->dtype, t->n_dims == 2 ? VKM_F16 : VKM_F32);
        assert_memory_equal(t->ne, t32->ne, sizeof t->ne);
        /* the F16 file is the F32 one rounded to nearest even */
        float *a = tensor_f32(t), *b = tensor_f32(t32);
        for (int64_t j = 0; j < vkm_tensor_nelem(t); j++)
            if (a[j] != (t->dtype == VKM_F16 ? vkm_f16_to_f32(vkm_f32_to_f16(b[j])) : b[j]))
                fail_msg("%s[%lld]: %g vs %g", t->name, (long long)j, a[j], b[j]);
        free(a);
        free(b);
    }
    vkm_gguf_close(&g);
    vkm_gguf_close(&g32);
}

static void test_real_others(void **state)
{
    (void)state;
    vkm_gguf g;
    vkm_err e = {0};
    uint32_t u;
    char s[64];
    expect_ok(vkm_gguf_open(shared_path("testbed/stories260K/model.gguf"), &g, &e), &e);
    assert_int_equal(g.n_tensors, 48);
    assert_true(vkm_gguf_get_u32(&g, "llama.context_length", &u) && u == 512);
    assert_true(vkm_gguf_get_u32(&g, "llama.attention.head_count", &u) && u == 8);
    float *x = tensor_f32(vkm_gguf_tensor(&g, "token_embd.weight"));
    assert_true(x[0] == -0.29474878311157227f && x[1] == 0.5618956089019775f);
    free(x);
    assert_non_null(vkm_gguf_tensor(&g, "output.weight"));
    vkm_gguf_close(&g);

    static const char *const domains[] = {"python", "c", "shell", "english", "legal"};
    for (int d = 0; d < 5; d++) {
        char p[128];
        snprintf(p, sizeof p, "testbed/experts/%s/adapter.gguf", domains[d]);
        expect_ok(vkm_gguf_open(shared_path(p), &g, &e), &e);
        float alpha;
        assert_true(vkm_gguf_get_str(&g, "general.type", s, sizeof s));
        assert_string_equal(s, "adapter");
        assert_true(vkm_gguf_get_str(&g, "adapter.type", s, sizeof s));
        assert_string_equal(s, "lora");
        assert_true(vkm_gguf_get_f32(&g, "adapter.lora.alpha", &alpha) && alpha == 16.0f);
        assert_int_equal(g.n_tensors, 56);
        const vkm_tensor_src *a = vkm_gguf_tensor(&g, "blk.3.ffn_down.weight.lora_a");
        assert_int_equal(a->ne[0], 352);
        assert_int_equal(a->ne[1], 8);
        vkm_gguf_close(&g);
    }
    for (int d = 0; d < 3; d++) {
        char p[128];
        snprintf(p, sizeof p, "testbed/full/%s/model.gguf", domains[d == 0 ? 0 : d + 2]);
        expect_ok(vkm_gguf_open(shared_path(p), &g, &e), &e);
        assert_int_equal(g.n_tensors, 39);
        vkm_gguf_close(&g);
    }
    vkm_status st = vkm_gguf_open(shared_path("testbed/no-such-file.gguf"), &g, &e);
    expect_fail("missing file", st, &e, VKM_ERR_IO, "cannot open");
    st = vkm_gguf_open(shared_path("testbed"), &g, &e);
    expect_fail("a folder", st, &e, VKM_ERR_IO, "not a regular file");
    st = vkm_gguf_open(shared_path("testbed/base/model.safetensors"), &g, &e);
    expect_fail("safetensors", st, &e, VKM_ERR_FORMAT, "not a GGUF file");
}

/* ---- writer round trips ------------------------------------------------------------------- */
static void test_write_metadata(void **state)
{
    (void)state;
    const char *path = tmp_path("meta.gguf");
    vkm_err e = {0};
    vkm_gguf_writer *w;
    expect_ok(vkm_gguf_writer_create(path, &w, &e), &e);
    static const int16_t i16s[] = {-3, 7, 32767};
    static const float f32s[] = {1.5f, -2.25f};
    static const double f64s[] = {1e300};
    static const uint8_t bools[] = {1, 0, 1};
    static const uint64_t u64s[] = {UINT64_MAX, 0};
    static const char *const strs[] = {"a", "", "ünïcødé"};
    vkm_gguf_writer_set_u8(w, "u8", 200);
    vkm_gguf_writer_set_i8(w, "i8", -100);
    vkm_gguf_writer_set_u16(w, "u16", 60000);
    vkm_gguf_writer_set_i16(w, "i16", -30000);
    vkm_gguf_writer_set_u32(w, "u32", 4000000000u);
    vkm_gguf_writer_set_i32(w, "i32", -2000000000);
    vkm_gguf_writer_set_u64(w, "u64", UINT64_MAX);
    vkm_gguf_writer_set_i64(w, "i64", INT64_MIN);
    vkm_gguf_writer_set_f32(w, "f32", 0.1f);
    vkm_gguf_writer_set_f64(w, "f64", 0.1);
    vkm_gguf_writer_set_bool(w, "bool", true);
    vkm_gguf_writer_set_str(w, "str", "hello");
    vkm_gguf_writer_set_arr(w, "arr.i16", VKM_GGUF_I16, 3, i16s);
    vkm_gguf_writer_set_arr(w, "arr.f32", VKM_GGUF_F32, 2, f32s);
    vkm_gguf_writer_set_arr(w, "arr.f64", VKM_GGUF_F64, 1, f64s);
    vkm_gguf_writer_set_arr(w, "arr.bool", VKM_GGUF_BOOL, 3, bools);
    vkm_gguf_writer_set_arr(w, "arr.u64", VKM_GGUF_U64, 2, u64s);
    vkm_gguf_writer_set_arr(w, "arr.empty", VKM_GGUF_U8, 0, NULL);
    vkm_gguf_writer_set_arr_str(w, "arr.str", 3, strs);
    expect_ok(vkm_gguf_writer_begin(w), &e);
    expect_ok(vkm_gguf_writer_finish(w), &e);
    vkm_gguf_writer_free(w);

    vkm_gguf g;
    expect_ok(vkm_gguf_open(path, &g, &e), &e);
    assert_int_equal(g.n_kv, 19);
    assert_int_equal(g.n_tensors, 0);
    assert_string_equal(g.kv[0].key, "u8"); /* file order kept */
    uint32_t u;
    int64_t i;
    float f;
    bool b;
    char s[16];
    assert_true(vkm_gguf_get_u32(&g, "u8", &u) && u == 200);
    assert_true(vkm_gguf_get_i64(&g, "i8", &i) && i == -100);
    assert_false(vkm_gguf_get_u32(&g, "i8", &u)); /* negative */
    assert_true(vkm_gguf_get_u32(&g, "u16", &u) && u == 60000);
    assert_true(vkm_gguf_get_i64(&g, "i16", &i) && i == -30000);
    assert_true(vkm_gguf_get_u32(&g, "u32", &u) && u == 4000000000u);
    assert_true(vkm_gguf_get_i64(&g, "i32", &i) && i == -2000000000);
    assert_false(vkm_gguf_get_i64(&g, "u64", &i)); /* out of range */
    assert_false(vkm_gguf_get_u32(&g, "u64", &u));
    assert_int_equal(vkm_gguf_find(&g, "u64")->v.u, UINT64_MAX);
    assert_true(vkm_gguf_get_i64(&g, "i64", &i) && i == INT64_MIN);
    assert_true(vkm_gguf_get_f32(&g, "f32", &f) && f == 0.1f);
    assert_true(vkm_gguf_find(&g, "f64")->v.f == 0.1);
    assert_false(vkm_gguf_get_f32(&g, "u8", &f));
    assert_true(vkm_gguf_get_bool(&g, "bool", &b) && b);
    assert_true(vkm_gguf_get_str(&g, "str", s, sizeof s));
    assert_string_equal(s, "hello");
    const vkm_gguf_arr *a = vkm_gguf_get_arr(&g, "arr.i16");
    assert_true(a && a->n == 3 && vkm_gguf_arr_i64(a, 0, &i) && i == -3);
    assert_true(vkm_gguf_arr_i64(a, 2, &i) && i == 32767);
    double d;
    a = vkm_gguf_get_arr(&g, "arr.f32");
    assert_true(vkm_gguf_arr_f64(a, 1, &d) && d == -2.25);
    assert_false(vkm_gguf_arr_i64(a, 0, &i));
    assert_true(vkm_gguf_arr_f64(vkm_gguf_get_arr(&g, "arr.f64"), 0, &d) && d == 1e300);
    assert_true(vkm_gguf_arr_i64(vkm_gguf_get_arr(&g, "arr.bool"), 2, &i) && i == 1);
    a = vkm_gguf_get_arr(&g, "arr.u64");
    assert_false(vkm_gguf_arr_i64(a, 0, &i));
    assert_true(vkm_gguf_arr_i64(a, 1, &i) && i == 0);
    assert_int_equal(vkm_gguf_get_arr(&g, "arr.empty")->n, 0);
    a = vkm_gguf_get_arr(&g, "arr.str");
    assert_int_equal(a->n, 3);
    assert_int_equal(a->strs[1].n, 0);
    assert_int_equal(a->strs[2].n, strlen(strs[2]));
    assert_memory_equal(a->strs[2].p, strs[2], a->strs[2].n);

    /* copy every key into a second file: identical values */
    const char *path2 = tmp_path("meta2.gguf");
    expect_ok(vkm_gguf_writer_create(path2, &w, &e), &e);
    for (uint64_t k = 0; k < g.n_kv; k++) vkm_gguf_writer_copy_kv(w, &g.kv[k]);
    vkm_gguf_writer_begin(w);
    expect_ok(vkm_gguf_writer_finish(w), &e);
    vkm_gguf_writer_free(w);
    size_t n1, n2;
    uint8_t *b1 = read_bytes(path, &n1), *b2 = read_bytes(path2, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(b1, b2, n1);
    free(b1);
    free(b2);
    vkm_gguf_close(&g);
}

/* Writes one tensor of every dtype, data in odd-sized pieces, with the given alignment. */
static void test_write_tensors(void **state)
{
    (void)state;
    static const vkm_dtype types[] = {VKM_F32, VKM_F16, VKM_BF16, VKM_Q8_0, VKM_Q4_0, VKM_Q4_K,
                                      VKM_Q6_K, VKM_I8, VKM_I16, VKM_I32, VKM_I64, VKM_F64};
    for (int align = 32; align <= 64; align += 32) {
        const char *path = tmp_path("tensors.gguf");
        vkm_err e = {0};
        vkm_gguf_writer *w;
        expect_ok(vkm_gguf_writer_create(path, &w, &e), &e);
        if (align != 32) vkm_gguf_writer_set_u32(w, "general.alignment", (uint32_t)align);
        uint8_t *data[12];
        uint64_t size[12];
        for (int t = 0; t < 12; t++) {
            const vkm_dtype_traits *tr = vkm_dtype_info(types[t]);
            int64_t ne[3] = {tr->block * 2, 3, t + 1};
            char name[32];
            snprintf(name, sizeof name, "t.%s", tr->name);
            expect_ok(vkm_gguf_writer_add_tensor(w, name, types[t], 3, ne), &e);
            assert_true(vkm_dtype_bytes(types[t], (uint64_t)(ne[0] * ne[1] * ne[2]), &size[t]));
            data[t] = malloc(size[t]);
            for (uint64_t j = 0; j < size[t]; j++) data[t][j] = (uint8_t)(j * 7 + (uint64_t)t);
        }
        int64_t ne0 = 0;
        expect_ok(vkm_gguf_writer_add_tensor(w, "empty", VKM_F32, 1, &ne0), &e);
        expect_ok(vkm_gguf_writer_begin(w), &e);
        for (int t = 0; t < 12; t++)
            for (uint64_t j = 0; j < size[t]; j += 13) /* pieces of 13 bytes */
                vkm_gguf_writer_write(w, data[t] + j, size[t] - j < 13 ? size[t] - j : 13);
        expect_ok(vkm_gguf_writer_finish(w), &e);
        vkm_gguf_writer_free(w);

        vkm_gguf g;
        expect_ok(vkm_gguf_open(path, &g, &e), &e);
        assert_int_equal(g.alignment, align);
        assert_int_equal(g.n_tensors, 13);
        for (int t = 0; t < 12; t++) {
            const vkm_tensor_src *s = &g.tensors[t];
            assert_int_equal(s->dtype, types[t]);
            assert_int_equal(s->n_dims, 3);
            assert_int_equal(s->ne[2], t + 1);
            assert_int_equal(s->nbytes, size[t]);
            assert_int_equal(s->offset % (uint64_t)align, 0);
            assert_memory_equal(s->data, data[t], size[t]);
            free(data[t]);
        }
        assert_int_equal(g.tensors[12].nbytes, 0);
        vkm_gguf_close(&g);
    }
}

/* pwrite as the writer thread sees it: with refuse_direct, a write on a descriptor in direct
 * mode is refused with EINVAL, as by a file system that takes O_DIRECT at open but not the
 * writes' alignment (counted in refused; read after the writer has finished). */
static int refuse_direct, refused;

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    if (refuse_direct && (fcntl(fd, F_GETFL) & O_DIRECT)) {
        refused++;
        errno = EINVAL;
        return -1;
    }
    return (ssize_t)syscall(SYS_pwrite64, fd, buf, n, off);
}

/* pread as vkm_map_read sees it: every call counted with its bytes; with short_reads, at most
 * 1000 bytes a call (the loop must go on). */
static int short_reads;
static uint64_t preads, pread_bytes;

ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
    if (short_reads && n > 1000) n = 1000;
    ssize_t k = (ssize_t)syscall(SYS_pread64, fd, buf, n, off);
    preads++;
    if (k > 0) pread_bytes += (uint64_t)k;
    return k;
}

/* vkm_map_read: from the file (counted by the interposed pread, the map's pages untouched) at
 * awkward offsets and lengths, in short pieces too; a map over memory copies; a file cut short
 * after mapping fails instead of faulting on the map. */
static void test_map_read(void **state)
{
    (void)state;
    const char *path = tmp_path("map_read.bin");
    const uint32_t size = 300007;
    uint8_t *data = malloc(size), *got = malloc(size);
    assert_true(data && got);
    uint32_t rng = 7;
    for (uint32_t i = 0; i < size; i++) data[i] = (uint8_t)((rng = rng * 1664525u + 1013904223u) >> 24);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, size, f), size);
    fclose(f);
    vkm_err e = {0};
    vkm_map m;
    assert_int_equal(vkm_map_open(path, &m, &e), VKM_OK);
    assert_true(m.has_fd);
    static const uint32_t cuts[][2] = {{0, 300007}, {1, 4095}, {4095, 2}, {123457, 70001}, {300006, 1}, {5, 0}};
    for (int sr = 0; sr < 2; sr++) {
        short_reads = sr;
        for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
            const uint32_t off = cuts[c][0], n = cuts[c][1];
            memset(got, 0xa5, size);
            preads = pread_bytes = 0;
            assert_true(vkm_map_read(&m, m.data + off, n, got));
            assert_memory_equal(got, data + off, n);
            if (n < size) assert_int_equal(got[n], 0xa5);
            assert_int_equal(pread_bytes, n);
            if (sr && n) assert_int_equal(preads, (n + 999) / 1000);
        }
    }
    short_reads = 0;
    /* over memory (no file): a copy, no pread */
    vkm_map mem = {data, size, 0, false};
    preads = 0;
    assert_true(vkm_map_read(&mem, data + 11, 5000, got));
    assert_memory_equal(got, data + 11, 5000);
    assert_true(vkm_map_read(NULL, data + 17, 3000, got));
    assert_memory_equal(got, data + 17, 3000);
    assert_int_equal(preads, 0);
    /* the file cut short under the map: the tail cannot be read, and the map is not touched */
    assert_int_equal(truncate(path, 200000), 0);
    assert_true(vkm_map_read(&m, m.data + 100000, 100000, got));
    assert_memory_equal(got, data + 100000, 100000);
    assert_false(vkm_map_read(&m, m.data + 150000, 100000, got));
    assert_false(vkm_map_read(&m, m.data + 250000, 10, got));
    vkm_map_close(&m);
    assert_false(m.has_fd);
    assert_null(m.data);
    remove(path);
    free(data);
    free(got);
}

/* JSON string literals for the files the writers put beside their outputs (adapter_config.json) */
static void test_json_quote(void **state)
{
    (void)state;
    char q[64];
    assert_string_equal(vkm_json_quote(q, sizeof q, "C:\\models\\my \"base\"\n"), "\"C:\\\\models\\\\my \\\"base\\\"\\u000a\"");
    assert_string_equal(vkm_json_quote(q, 8, "abcdefghij"), "\"abcde\"");   /* cut short, still closed */
    assert_string_equal(vkm_json_quote(q, 6, "\\\\\\"), "\"\\\\\"");     /* never half an escape */
    assert_string_equal(vkm_json_quote(q, sizeof q, ""), "\"\"");
}

/* Writes the three tensors as a GGUF file at path in irregular pieces and reads them back. */
static void write_large_at(const char *path, const int64_t *sizes, uint8_t *const *data)
{
    vkm_err e = {0};
    vkm_gguf_writer *w;
    expect_ok(vkm_gguf_writer_create(path, &w, &e), &e);
    for (int t = 0; t < 3; t++) {
        char name[16];
        snprintf(name, sizeof name, "t%d", t);
        expect_ok(vkm_gguf_writer_add_tensor(w, name, VKM_I8, 1, &sizes[t]), &e);
    }
    expect_ok(vkm_gguf_writer_begin(w), &e);
    for (int t = 0; t < 3; t++)
        for (int64_t j = 0, piece = 1; j < sizes[t]; j += piece, piece = piece * 3 + 7)
            expect_ok(vkm_gguf_writer_write(w, data[t] + j, (uint64_t)(sizes[t] - j < piece ? sizes[t] - j : piece)), &e);
    expect_ok(vkm_gguf_writer_finish(w), &e);
    vkm_gguf_writer_free(w);
    vkm_gguf g;
    expect_ok(vkm_gguf_open(path, &g, &e), &e);
    assert_int_equal(g.n_tensors, 3);
    for (int t = 0; t < 3; t++) {
        assert_int_equal(g.tensors[t].nbytes, (uint64_t)sizes[t]);
        assert_memory_equal(g.tensors[t].data, data[t], (size_t)sizes[t]);
    }
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal((uint64_t)st.st_size, g.tensors[2].offset + (uint64_t)sizes[2]); /* file offsets */
    vkm_gguf_close(&g);
    unlink(path);
}

/* Data past the writer's buffers (four of 8 MiB, written by a thread with direct I/O where the
 * file system has it) in irregular pieces, in the build tree and on tmpfs (direct I/O or not,
 * by kernel version), and with every direct write refused (the thread goes on without direct
 * I/O from the first refusal): the file has exactly the header and the tensors, the tail
 * included. */
static void test_write_large(void **state)
{
    (void)state;
    const int64_t sizes[3] = {(9 << 20) + 5, (17 << 20) + 1, 7 << 20};
    uint8_t *data[3];
    for (int t = 0; t < 3; t++) {
        data[t] = malloc((size_t)sizes[t]);
        assert_non_null(data[t]);
        uint64_t x = 0x9e3779b97f4a7c15ull * (uint64_t)(t + 1);
        for (int64_t j = 0; j < sizes[t]; j++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            data[t][j] = (uint8_t)x;
        }
    }
    const char *dirs[2] = {VKM_TEST_TMPDIR, "/dev/shm"};
    for (int k = 0; k < 2; k++) {
        if (!vkm_is_dir(dirs[k])) continue;
        char path[1100];
        snprintf(path, sizeof path, "%s/vkm-large-%d.gguf", dirs[k], (int)getpid());
        write_large_at(path, sizes, data);
        /* direct writes refused, where the directory takes O_DIRECT at open at all */
        int probe = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_DIRECT, 0666);
        if (probe < 0) continue;
        close(probe);
        unlink(path);
        refuse_direct = 1;
        refused = 0;
        write_large_at(path, sizes, data);
        refuse_direct = 0;
        assert_int_equal(refused, 1);
    }
    /* the queue alone on an ordinary descriptor (a file system without direct I/O) */
    char path[1100];
    snprintf(path, sizeof path, "%s/vkm-queue-%d.bin", VKM_TEST_TMPDIR, (int)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    assert_true(fd >= 0);
    vkm_wqueue *q;
    assert_int_equal(vkm_wq_create(fd, false, &q), 0);
    for (int t = 0; t < 3; t++) assert_int_equal(vkm_wq_put(q, data[t], (uint64_t)sizes[t]), 0);
    assert_int_equal(vkm_wq_size(q), (uint64_t)(sizes[0] + sizes[1] + sizes[2]));
    assert_int_equal(vkm_wq_finish(q), 0);
    vkm_wq_destroy(q);
    close(fd);
    vkm_map m;
    vkm_err e = {0};
    expect_ok(vkm_map_open(path, &m, &e), &e);
    assert_int_equal(m.size, (uint64_t)(sizes[0] + sizes[1] + sizes[2]));
    for (int t = 0, off = 0; t < 3; off += (int)sizes[t], t++)
        assert_memory_equal(m.data + off, data[t], (size_t)sizes[t]);
    vkm_map_close(&m);
    unlink(path);
    for (int t = 0; t < 3; t++) free(data[t]);
}

static void test_write_quantized_values(void **state)
{
    (void)state;
    float x[64], y[64];
    for (int i = 0; i < 64; i++) x[i] = sinf((float)i * 0.37f) * 3.0f;
    uint8_t q8[68], q4[36];
    vkm_quantize_q8_0(x, 64, q8);
    vkm_quantize_q4_0(x, 64, q4);
    const char *path = tmp_path("quant.gguf");
    vkm_err e = {0};
    vkm_gguf_writer *w;
    int64_t ne[1] = {64};
    expect_ok(vkm_gguf_writer_create(path, &w, &e), &e);
    vkm_gguf_writer_add_tensor(w, "q8", VKM_Q8_0, 1, ne);
    vkm_gguf_writer_add_tensor(w, "q4", VKM_Q4_0, 1, ne);
    vkm_gguf_writer_begin(w);
    vkm_gguf_writer_write_tensor(w, "q8", q8, sizeof q8);
    vkm_gguf_writer_write_tensor(w, "q4", q4, sizeof q4);
    expect_ok(vkm_gguf_writer_finish(w), &e);
    vkm_gguf_writer_free(w);
    vkm_gguf g;
    expect_ok(vkm_gguf_open(path, &g, &e), &e);
    assert_int_equal(vkm_to_f32(VKM_Q8_0, vkm_gguf_tensor(&g, "q8")->data, 64, y), VKM_OK);
    for (int i = 0; i < 64; i++) assert_true(fabsf(x[i] - y[i]) < 3.0f / 127 + 1e-3f);
    assert_int_equal(vkm_to_f32(VKM_Q4_0, vkm_gguf_tensor(&g, "q4")->data, 64, y), VKM_OK);
    for (int i = 0; i < 64; i++) assert_true(fabsf(x[i] - y[i]) < 3.0f / 8 + 1e-3f);
    vkm_gguf_close(&g);
}

/* open as the writer sees it: with refuse_tmpfile, no unnamed temporary files (as on file
 * systems without O_TMPFILE), so the writer names its own. */
static int refuse_tmpfile;

int open(const char *path, int flags, ...)
{
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    if (refuse_tmpfile && (flags & O_TMPFILE) == O_TMPFILE) {
        errno = EOPNOTSUPP;
        return -1;
    }
    return (int)syscall(SYS_openat, AT_FDCWD, path, flags, mode);
}

/* A named temporary file: its own name (OUT.vkmoe-PID.tmp), never a user's "OUT.tmp", never
 * one that exists (a stale one is left alone and the write fails), gone after the rename. */
static void named_tmp_in(const char *path)
{
    char user_tmp[1100], ours[1100];
    snprintf(user_tmp, sizeof user_tmp, "%s.tmp", path);
    snprintf(ours, sizeof ours, "%s" VKM_TMP_SUFFIX, path, (long)getpid());
    remove(path);
    remove(ours);
    FILE *f = fopen(user_tmp, "w");
    assert_non_null(f);
    fputs("precious", f);
    assert_int_equal(fclose(f), 0);
    refuse_tmpfile = 1;
    vkm_err e = {0};
    int64_t ne[1] = {3};
    const float data[3] = {1, 2, 3};
    vkm_gguf_writer *w;
    expect_ok(vkm_gguf_writer_create(path, &w, &e), &e);
    vkm_gguf_writer_add_tensor(w, "a", VKM_F32, 1, ne);
    expect_ok(vkm_gguf_writer_begin(w), &e);
    assert_true(vkm_exists(ours));
    expect_ok(vkm_gguf_writer_write(w, data, sizeof data), &e);
    expect_ok(vkm_gguf_writer_finish(w), &e);
    vkm_gguf_writer_free(w);
    assert_true(vkm_exists(path));
    assert_false(vkm_exists(ours));
    /* a dead process's leftover of that name (same process id: containers reuse them) is
     * replaced, both by a named temporary file and by an unnamed one being named */
    char buf[16] = {0};
    for (int unnamed = 0; unnamed < 2; unnamed++) {
        refuse_tmpfile = !unnamed;
        remove(path);
        f = fopen(ours, "w");
        assert_non_null(f);
        fputs("stale", f);
        assert_int_equal(fclose(f), 0);
        expect_ok(vkm_gguf_writer_create(path, &w, &e), &e);
        vkm_gguf_writer_add_tensor(w, "a", VKM_F32, 1, ne);
        expect_ok(vkm_gguf_writer_begin(w), &e);
        expect_ok(vkm_gguf_writer_write(w, data, sizeof data), &e);
        expect_ok(vkm_gguf_writer_finish(w), &e);
        vkm_gguf_writer_free(w);
        assert_true(vkm_exists(path));
        assert_false(vkm_exists(ours));
    }
    refuse_tmpfile = 0;
    f = fopen(user_tmp, "r");
    assert_non_null(f);
    assert_non_null(fgets(buf, sizeof buf, f));
    fclose(f);
    assert_string_equal(buf, "precious");
    remove(ours);
    remove(user_tmp);
    remove(path);
}

/* on a disk (direct writes) and, where there is one, on tmpfs (which refuses O_DIRECT) */
static void test_writer_named_tmp(void **state)
{
    (void)state;
    named_tmp_in(tmp_path("named.gguf"));
    if (vkm_is_dir("/dev/shm")) {
        char p[128];
        snprintf(p, sizeof p, "/dev/shm/vkm-named-%d.gguf", (int)getpid());
        named_tmp_in(p);
    }
}

static void test_writer_misuse(void **state)
{
    (void)state;
    const char *path = tmp_path("misuse.gguf");
    remove(path);
    vkm_err e = {0};
    vkm_gguf_writer *w;
    int64_t ne[2] = {4, 2};
    float data[8] = {0};
    expect_ok(vkm_gguf_writer_create(path, &w, &e), &e);
    vkm_gguf_writer_set_u32(w, "k", 1);
    expect_fail("duplicate key", vkm_gguf_writer_set_str(w, "k", "x"), &e,
                VKM_ERR_INVALID_ARGUMENT, "duplicate key 'k'");
    vkm_gguf_writer_free(w);

    expect_ok(vkm_gguf_writer_create(path, &w, &e), &e);
    expect_fail("bad key", vkm_gguf_writer_set_u32(w, "bad\xff", 1), &e,
                VKM_ERR_INVALID_ARGUMENT, "valid UTF-8");
    vkm_gguf_writer_free(w);

    expect_ok(vkm_gguf_writer_create(path, &w, &e), &e);
    expect_fail("bad alignment", vkm_gguf_writer_set_u32(w, "general.alignment", 24), &e,
                VKM_ERR_INVALID_ARGUMENT, "not a power of two");
    vkm_gguf_writer_free(w);

    expect_ok(vkm_gguf_writer_create(path, &w, &e), &e);
    ne[0] = 33;
    expect_fail("Q8_0 row", vkm_gguf_writer_add_tensor(w, "q", VKM_Q8_0, 2, ne), &e,
                VKM_ERR_INVALID_ARGUMENT, "whole number of Q8_0 blocks");
    vkm_gguf_writer_free(w);
    ne[0] = 4;

    expect_ok(vkm_gguf_writer_create(path, &w, &e), &e);
    vkm_gguf_writer_add_tensor(w, "a", VKM_F32, 2, ne);
    vkm_gguf_writer_add_tensor(w, "a", VKM_F32, 2, ne);
    expect_fail("duplicate tensor", vkm_gguf_writer_begin(w), &e, VKM_ERR_INVALID_ARGUMENT,
                "duplicate tensor name 'a'");
    vkm_gguf_writer_free(w);

    expect_ok(vkm_gguf_writer_create(path, &w, &e), &e);
    vkm_gguf_writer_add_tensor(w, "a", VKM_F32, 2, ne);
    vkm_gguf_writer_add_tensor(w, "b", VKM_F32, 2, ne);
    vkm_gguf_writer_begin(w);
    expect_fail("order", vkm_gguf_writer_write_tensor(w, "b", data, sizeof data), &e,
                VKM_ERR_STATE, "out of order");
    vkm_gguf_writer_free(w);
    assert_false(vkm_exists(path));

    expect_ok(vkm_gguf_writer_create(path, &w, &e), &e);
    vkm_gguf_writer_add_tensor(w, "a", VKM_F32, 2, ne);
    vkm_gguf_writer_begin(w);
    expect_fail("late key", vkm_gguf_writer_set_u32(w, "k", 1), &e, VKM_ERR_STATE, "before begin");
    vkm_gguf_writer_free(w);

    expect_ok(vkm_gguf_writer_create(path, &w, &e), &e);
    vkm_gguf_writer_add_tensor(w, "a", VKM_F32, 2, ne);
    vkm_gguf_writer_begin(w);
    vkm_gguf_writer_write(w, data, 12);
    expect_fail("short data", vkm_gguf_writer_finish(w), &e, VKM_ERR_STATE,
                "tensor 'a' is missing 20 bytes");
    assert_false(vkm_exists(path)); /* the data is in an unnamed file, or in a temporary one */
    vkm_gguf_writer_free(w);
    char left[2100];
    assert_false(test_leftover(path, left, sizeof left)); /* removed */

    expect_ok(vkm_gguf_writer_create(path, &w, &e), &e);
    vkm_gguf_writer_add_tensor(w, "a", VKM_F32, 2, ne);
    vkm_gguf_writer_begin(w);
    expect_fail("too much data", vkm_gguf_writer_write(w, data, 40), &e,
                VKM_ERR_INVALID_ARGUMENT, "beyond the last tensor");
    vkm_gguf_writer_free(w);

    expect_ok(vkm_gguf_writer_create(tmp_path("no/such/dir/x.gguf"), &w, &e), &e);
    vkm_gguf_writer_add_tensor(w, "a", VKM_F32, 2, ne);
    expect_fail("no folder", vkm_gguf_writer_begin(w), &e, VKM_ERR_IO, "cannot create");
    vkm_gguf_writer_free(w);
}

/* ---- hand-made files ---------------------------------------------------------------------- */
static void hdr(bb *b, uint64_t n_tensors, uint64_t n_kv)
{
    bb_cstr(b, "GGUF");
    bb_u32(b, 3);
    bb_u64(b, n_tensors);
    bb_u64(b, n_kv);
}

static void kv_str(bb *b, const char *key, const char *v)
{
    bb_str(b, key);
    bb_u32(b, VKM_GGUF_STRING);
    bb_str(b, v);
}

static void kv_u32(bb *b, const char *key, uint32_t v)
{
    bb_str(b, key);
    bb_u32(b, VKM_GGUF_U32);
    bb_u32(b, v);
}

static void tinfo(bb *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                  uint64_t offset)
{
    bb_str(b, name);
    bb_u32(b, n_dims);
    for (uint32_t i = 0; i < n_dims; i++) bb_u64(b, ne[i]);
    bb_u32(b, type);
    bb_u64(b, offset);
}

/* Padding to the data section and 64 bytes of (zero) tensor data. */
static void data(bb *b)
{
    bb_pad(b, 32);
    for (int i = 0; i < 64; i++) bb_u8(b, 0);
}

/* The reference file: one key, tensors a (F32 4x2, offset 0) and b (F32 4, offset 32). */
static void good_file(bb *b)
{
    static const uint64_t ne_a[2] = {4, 2}, ne_b[1] = {4};
    hdr(b, 2, 1);
    kv_str(b, "general.architecture", "llama");
    tinfo(b, "a", 2, ne_a, 0, 0);
    tinfo(b, "b", 1, ne_b, 0, 32);
    bb_pad(b, 32);
    for (int i = 0; i < 12; i++) bb_f32(b, (float)i);
}

static vkm_status open_bytes(const bb *b, vkm_err *e)
{
    vkm_gguf g;
    vkm_status s = vkm_gguf_open_mem(b->p, b->n, "mem.gguf", &g, e);
    if (s == VKM_OK) vkm_gguf_close(&g);
    return s;
}

static void test_nested_arrays(void **state)
{
    (void)state;
    bb b = {0};
    hdr(&b, 0, 1);
    bb_str(&b, "nested");
    bb_u32(&b, VKM_GGUF_ARRAY);
    bb_u32(&b, VKM_GGUF_ARRAY); /* [[1, 2], ["x"]] */
    bb_u64(&b, 2);
    bb_u32(&b, VKM_GGUF_I32);
    bb_u64(&b, 2);
    bb_u32(&b, 1);
    bb_u32(&b, 2);
    bb_u32(&b, VKM_GGUF_STRING);
    bb_u64(&b, 1);
    bb_str(&b, "x");
    vkm_gguf g;
    vkm_err e = {0};
    expect_ok(vkm_gguf_open_mem(b.p, b.n, "nested.gguf", &g, &e), &e);
    const vkm_gguf_arr *a = vkm_gguf_get_arr(&g, "nested");
    assert_int_equal(a->elem_type, VKM_GGUF_ARRAY);
    assert_int_equal(a->n, 2);
    int64_t v;
    assert_true(vkm_gguf_arr_i64(&a->arrs[0], 1, &v) && v == 2);
    assert_int_equal(a->arrs[1].elem_type, VKM_GGUF_STRING);
    assert_memory_equal(a->arrs[1].strs[0].p, "x", 1);
    /* the writer copies nested arrays byte for byte */
    vkm_gguf_writer *w;
    const char *path = tmp_path("nested.gguf");
    expect_ok(vkm_gguf_writer_create(path, &w, &e), &e);
    vkm_gguf_writer_copy_kv(w, &g.kv[0]);
    vkm_gguf_writer_begin(w);
    expect_ok(vkm_gguf_writer_finish(w), &e);
    vkm_gguf_writer_free(w);
    size_t n;
    uint8_t *file = read_bytes(path, &n);
    assert_int_equal(n, vkm_align_up(b.n, 32));
    assert_memory_equal(file, b.p, b.n);
    free(file);
    vkm_gguf_close(&g);
    bb_free(&b);
}

/* Every cut of the reference file fails with a message about its end, never crashes. */
static void test_truncations(void **state)
{
    (void)state;
    bb b = {0};
    good_file(&b);
    vkm_err e = {0};
    expect_ok(open_bytes(&b, &e), &e);
    for (size_t cut = 0; cut < b.n; cut++) {
        bb c = {0};
        bb_bytes(&c, b.p, cut);
        vkm_status s = open_bytes(&c, &e);
        char name[32];
        snprintf(name, sizeof name, "cut at %zu", cut);
        if (cut < 4) expect_fail(name, s, &e, VKM_ERR_FORMAT, "not a GGUF file");
        else if (!strstr(e.msg, "truncated") && !strstr(e.msg, "past the end") &&
                 !strstr(e.msg, "can fit"))
            expect_fail(name, s, &e, VKM_ERR_FORMAT, "truncated|past the end|can fit");
        else assert_int_equal(s, VKM_ERR_FORMAT);
        bb_free(&c);
    }
    bb_free(&b);
}

typedef struct bad_case {
    const char *name;
    vkm_status want;
    const char *msg;
} bad_case;

/* Builds malformed file number k into b; returns its expectation. */
static bad_case bad_file(int k, bb *b)
{
    static const uint64_t ne2[2] = {4, 2}, ne1[1] = {4};
    switch (k) {
    case 0: return (bad_case){"empty file", VKM_ERR_FORMAT, "not a GGUF file"};
    case 1: bb_cstr(b, "GGUX"); bb_u32(b, 3); return (bad_case){"bad magic", VKM_ERR_FORMAT, "not a GGUF file"};
    case 2: bb_cstr(b, "GGUF"); bb_u32(b, 1); bb_u32(b, 0); bb_u32(b, 0);
        return (bad_case){"version 1", VKM_ERR_UNSUPPORTED, "GGUF version 1 is not supported"};
    case 3: bb_cstr(b, "GGUF"); bb_u32(b, 0x03000000u); bb_u64(b, 0); bb_u64(b, 0);
        return (bad_case){"big-endian", VKM_ERR_UNSUPPORTED, "big-endian"};
    case 4: bb_cstr(b, "GGUF"); bb_u32(b, 7); return (bad_case){"version 7", VKM_ERR_UNSUPPORTED, "version 7"};
    case 5: hdr(b, 0, 1ull << 40); return (bad_case){"kv count over limit", VKM_ERR_FORMAT, "metadata keys, more than the limit"};
    case 6: hdr(b, 1ull << 40, 0); return (bad_case){"tensor count over limit", VKM_ERR_FORMAT, "tensors, more than the limit"};
    case 7: hdr(b, 0, 1000); kv_u32(b, "k", 1);
        return (bad_case){"lying kv count", VKM_ERR_FORMAT, "claims 1000 metadata keys but only 1 can fit"};
    case 8: hdr(b, 0, 2); kv_u32(b, "k", 1); kv_u32(b, "kk", 1); b->n -= 2;
        return (bad_case){"kv count one too many", VKM_ERR_FORMAT, "truncated"};
    case 9: hdr(b, 100, 0); tinfo(b, "a", 1, ne1, 0, 0);
        return (bad_case){"lying tensor count", VKM_ERR_FORMAT, "claims 100 tensors"};
    case 10: hdr(b, 0, 1); bb_u64(b, 1ull << 62); bb_cstr(b, "key....");
        return (bad_case){"huge key length", VKM_ERR_FORMAT, "string length 4611686018427387904 exceeds the limit"};
    case 11: hdr(b, 0, 1); bb_u64(b, 1000); bb_cstr(b, "key....");
        return (bad_case){"key past the end", VKM_ERR_FORMAT, "runs past the end"};
    case 12: hdr(b, 0, 1); kv_u32(b, "", 1); return (bad_case){"empty key", VKM_ERR_FORMAT, "key 0 is empty"};
    case 13: {
        char key[301];
        memset(key, 'a', 300);
        key[300] = 0;
        hdr(b, 0, 1);
        kv_u32(b, key, 1);
        return (bad_case){"long key", VKM_ERR_FORMAT, "300 bytes long, more than the 255 allowed"};
    }
    case 14: hdr(b, 0, 1); kv_u32(b, "bad\xC3\x28", 1); return (bad_case){"bad UTF-8 key", VKM_ERR_FORMAT, "key 0 is not valid UTF-8"};
    case 15: hdr(b, 0, 1); kv_u32(b, "\xC0\xAF", 1); return (bad_case){"overlong UTF-8 key", VKM_ERR_FORMAT, "not valid UTF-8"};
    case 16: hdr(b, 0, 1); kv_u32(b, "\xED\xA0\x80", 1); return (bad_case){"surrogate key", VKM_ERR_FORMAT, "not valid UTF-8"};
    case 17: hdr(b, 0, 1); bb_u64(b, 3); bb_bytes(b, "a\0b", 3); bb_u32(b, VKM_GGUF_U8); bb_u8(b, 1);
        return (bad_case){"NUL in key", VKM_ERR_FORMAT, "not valid UTF-8"};
    case 18: hdr(b, 0, 2); kv_u32(b, "general.x", 1); kv_str(b, "general.x", "y");
        return (bad_case){"duplicate key", VKM_ERR_FORMAT, "duplicate key 'general.x'"};
    case 19: hdr(b, 0, 1); bb_str(b, "k"); bb_u32(b, 13); bb_u64(b, 0);
        return (bad_case){"unknown value type", VKM_ERR_FORMAT, "key 'k': unknown value type 13"};
    case 20: hdr(b, 0, 1); bb_str(b, "k"); bb_u32(b, VKM_GGUF_BOOL); bb_u8(b, 2);
        return (bad_case){"bool 2", VKM_ERR_FORMAT, "bool value 2 is neither 0 nor 1"};
    case 21: hdr(b, 0, 1); bb_str(b, "k"); bb_u32(b, VKM_GGUF_ARRAY); bb_u32(b, 99); bb_u64(b, 0);
        return (bad_case){"unknown array type", VKM_ERR_FORMAT, "unknown array element type 99"};
    case 22: hdr(b, 0, 1); bb_str(b, "k"); bb_u32(b, VKM_GGUF_ARRAY); bb_u32(b, VKM_GGUF_U32);
        bb_u64(b, 1ull << 40); bb_u32(b, 0);
        return (bad_case){"array count lies", VKM_ERR_FORMAT, "claims 1099511627776 elements"};
    case 23: hdr(b, 0, 1); bb_str(b, "k"); bb_u32(b, VKM_GGUF_ARRAY); bb_u32(b, VKM_GGUF_STRING);
        bb_u64(b, 1ull << 50); bb_str(b, "x");
        return (bad_case){"string array count lies", VKM_ERR_FORMAT, "strings but only"};
    case 24: hdr(b, 0, 1); bb_str(b, "k"); bb_u32(b, VKM_GGUF_ARRAY); bb_u32(b, VKM_GGUF_STRING);
        bb_u64(b, 1); bb_u64(b, 1ull << 40); bb_cstr(b, "abc");
        return (bad_case){"huge string in array", VKM_ERR_FORMAT, "exceeds the limit"};
    case 25:
        hdr(b, 0, 1);
        bb_str(b, "bomb");
        bb_u32(b, VKM_GGUF_ARRAY);
        for (int d = 0; d < 12; d++) {
            bb_u32(b, VKM_GGUF_ARRAY);
            bb_u64(b, 1);
        }
        bb_u32(b, VKM_GGUF_U8);
        bb_u64(b, 0);
        return (bad_case){"nested array bomb", VKM_ERR_FORMAT, "arrays nested deeper than 8 levels"};
    case 26: hdr(b, 0, 1); bb_str(b, "k"); bb_u32(b, VKM_GGUF_ARRAY); bb_u32(b, VKM_GGUF_ARRAY);
        bb_u64(b, 1ull << 55); bb_u32(b, 0);
        return (bad_case){"nested count lies", VKM_ERR_FORMAT, "nested arrays but only"};
    case 27: hdr(b, 0, 1); bb_str(b, "general.alignment"); bb_u32(b, VKM_GGUF_U64); bb_u64(b, 32);
        return (bad_case){"alignment type", VKM_ERR_FORMAT, "general.alignment is a u64, not a u32"};
    case 28: hdr(b, 0, 1); kv_u32(b, "general.alignment", 48);
        return (bad_case){"alignment 48", VKM_ERR_FORMAT, "general.alignment 48 is not a power of two"};
    case 29: hdr(b, 0, 1); kv_u32(b, "general.alignment", 0);
        return (bad_case){"alignment 0", VKM_ERR_FORMAT, "general.alignment 0 is not a power of two"};
    case 30: hdr(b, 1, 0); tinfo(b, "a", 0, ne1, 0, 0); data(b);
        return (bad_case){"0 dims", VKM_ERR_FORMAT, "tensor 'a': 0 dimensions"};
    case 31: hdr(b, 1, 0); bb_str(b, "a"); bb_u32(b, 5); for (int i = 0; i < 8; i++) bb_u64(b, 1);
        return (bad_case){"5 dims", VKM_ERR_FORMAT, "tensor 'a': 5 dimensions"};
    case 32: {
        const uint64_t ne[2] = {1ull << 40, 1ull << 40};
        hdr(b, 1, 0);
        tinfo(b, "a", 2, ne, 0, 0);
        return (bad_case){"dims overflow", VKM_ERR_FORMAT, "tensor 'a': dimensions overflow"};
    }
    case 33: {
        const uint64_t ne[1] = {1ull << 63};
        hdr(b, 1, 0);
        tinfo(b, "a", 1, ne, 0, 0);
        return (bad_case){"negative dim", VKM_ERR_FORMAT, "dimensions overflow"};
    }
    case 34: hdr(b, 1, 0); tinfo(b, "w", 2, ne2, 99, 0); data(b);
        return (bad_case){"type 99", VKM_ERR_UNSUPPORTED, "tensor 'w': ggml type unknown (99) is not supported"};
    case 35: hdr(b, 1, 0); tinfo(b, "w", 2, ne2, 13, 0); data(b);
        return (bad_case){"Q5_K", VKM_ERR_UNSUPPORTED, "tensor 'w': ggml type Q5_K (13) is not supported"};
    case 36: hdr(b, 1, 0); tinfo(b, "w", 2, ne2, 4, 0); data(b);
        return (bad_case){"removed type 4", VKM_ERR_UNSUPPORTED, "ggml type unknown (4)"};
    case 37: {
        const uint64_t ne[2] = {33, 1};
        hdr(b, 1, 0);
        tinfo(b, "w", 2, ne, 8, 0);
        return (bad_case){"Q8_0 ne0 33", VKM_ERR_FORMAT, "ne0 33 is not a multiple of the Q8_0 block size 32"};
    }
    case 38: hdr(b, 1, 0); tinfo(b, "a", 1, ne1, 0, 4); data(b);
        return (bad_case){"unaligned offset", VKM_ERR_FORMAT, "offset 4 is not a multiple of the alignment 32"};
    case 39: hdr(b, 1, 0); tinfo(b, "a", 1, ne1, 0, 1024); data(b);
        return (bad_case){"offset past the end", VKM_ERR_FORMAT, "tensor 'a': data (offset 1024"};
    case 40: hdr(b, 1, 0); tinfo(b, "a", 1, ne1, 0, UINT64_MAX - 31); bb_pad(b, 32);
        return (bad_case){"offset overflow", VKM_ERR_FORMAT, "runs past the end of the file"};
    case 41: good_file(b); b->n -= 4; return (bad_case){"data cut", VKM_ERR_FORMAT, "tensor 'b': data"};
    case 42: hdr(b, 2, 0); tinfo(b, "a", 2, ne2, 0, 0); tinfo(b, "b", 1, ne1, 0, 0);
        data(b);
        return (bad_case){"overlap", VKM_ERR_FORMAT, "the data of tensors 'a'"};
    case 43: hdr(b, 2, 0); tinfo(b, "a", 1, ne1, 0, 0); tinfo(b, "a", 1, ne1, 0, 32);
        data(b);
        return (bad_case){"duplicate tensor", VKM_ERR_FORMAT, "duplicate tensor name 'a'"};
    case 44: hdr(b, 1, 0); tinfo(b, "\xFF", 1, ne1, 0, 0); data(b);
        return (bad_case){"bad UTF-8 tensor", VKM_ERR_FORMAT, "tensor 0 name is not valid UTF-8"};
    case 45: hdr(b, 1, 0); tinfo(b, "", 1, ne1, 0, 0); data(b);
        return (bad_case){"empty tensor name", VKM_ERR_FORMAT, "tensor 0 name is empty"};
    case 46: hdr(b, 1, 0); bb_str(b, "a"); bb_u32(b, 4); bb_u64(b, 4); bb_u64(b, 4); bb_u64(b, 4);
        return (bad_case){"tensor info cut", VKM_ERR_FORMAT, "truncated: tensor 'a'"};
    case 47: hdr(b, 0, 1); bb_str(b, "k"); bb_u32(b, VKM_GGUF_STRING); bb_u64(b, 1ull << 26 | 1);
        return (bad_case){"string over 64 MiB", VKM_ERR_FORMAT, "string length 67108865 exceeds"};
    case 48: hdr(b, 1, 1); kv_u32(b, "general.alignment", 1u << 30); tinfo(b, "a", 1, ne1, 0, 0);
        return (bad_case){"alignment beyond the file", VKM_ERR_FORMAT, "runs past the end"};
    default: return (bad_case){NULL, VKM_OK, NULL};
    }
}

static void test_malformed(void **state)
{
    (void)state;
    for (int k = 0;; k++) {
        bb b = {0};
        bad_case c = bad_file(k, &b);
        if (!c.name) break;
        vkm_err e = {0};
        expect_fail(c.name, open_bytes(&b, &e), &e, c.want, c.msg);
        /* the same through a real file */
        write_bytes(tmp_path("bad.gguf"), b.p, b.n);
        vkm_gguf g;
        expect_fail(c.name, vkm_gguf_open(tmp_path("bad.gguf"), &g, &e), &e, c.want, c.msg);
        bb_free(&b);
    }
}

/* Random byte flips in the header of the real base model: any status, never a crash (the
 * sanitizer build checks every access). */
static void test_random_corruption(void **state)
{
    (void)state;
    size_t n;
    uint8_t *orig = read_bytes(shared_path("testbed/stories260K/model.gguf"), &n);
    uint8_t *p = malloc(n);
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    int failures = 0;
    for (int it = 0; it < 3000; it++) {
        memcpy(p, orig, n);
        int flips = 1 + it % 4;
        for (int f = 0; f < flips; f++) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            size_t at = (size_t)(rng % 14304); /* inside the header */
            p[at] = (uint8_t)(rng >> 32);
        }
        vkm_gguf g;
        vkm_err e = {0};
        vkm_status s = vkm_gguf_open_mem(p, n, "fuzzed", &g, &e);
        if (s == VKM_OK) {
            for (uint64_t i = 0; i < g.n_tensors; i++)
                assert_true(g.tensors[i].offset + g.tensors[i].nbytes <= n);
            vkm_gguf_close(&g);
        } else {
            assert_true(e.msg[0] != 0);
            failures++;
        }
    }
    assert_true(failures > 100);
    free(p);
    free(orig);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_base),
        cmocka_unit_test(test_real_f16),
        cmocka_unit_test(test_real_others),
        cmocka_unit_test(test_write_metadata),
        cmocka_unit_test(test_write_tensors),
        cmocka_unit_test(test_write_large),
        cmocka_unit_test(test_map_read),
        cmocka_unit_test(test_json_quote),
        cmocka_unit_test(test_writer_named_tmp),
        cmocka_unit_test(test_write_quantized_values),
        cmocka_unit_test(test_writer_misuse),
        cmocka_unit_test(test_nested_arrays),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_random_corruption),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
