/*
 * loader_util.c — helpers shared by the loader tests (see loader_util.h).
 */
#include "loader_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *shared_path(const char *rel)
{
    static char buf[8][1024];
    static int k;
    char *p = buf[k++ & 7];
    snprintf(p, 1024, "%s/%s", VKM_SHARED_DIR, rel);
    return p;
}

const char *tmp_path(const char *name)
{
    static char buf[8][1024];
    static int k;
    char *p = buf[k++ & 7];
    snprintf(p, 1024, "%s/%s", VKM_TEST_TMPDIR, name);
    return p;
}

void bb_bytes(bb *b, const void *data, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        b->p = realloc(b->p, cap);
        assert_non_null(b->p);
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, data, n);
    b->n += n;
}

void bb_u8(bb *b, uint8_t v) { bb_bytes(b, &v, 1); }
void bb_u32(bb *b, uint32_t v)
{
    uint8_t q[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    bb_bytes(b, q, 4);
}
void bb_u64(bb *b, uint64_t v)
{
    bb_u32(b, (uint32_t)v);
    bb_u32(b, (uint32_t)(v >> 32));
}
void bb_f32(bb *b, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    bb_u32(b, u);
}
void bb_str(bb *b, const char *s)
{
    bb_u64(b, strlen(s));
    bb_bytes(b, s, strlen(s));
}
void bb_cstr(bb *b, const char *s) { bb_bytes(b, s, strlen(s)); }
void bb_pad(bb *b, size_t align)
{
    while (b->n % align) bb_u8(b, 0);
}
void bb_free(bb *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot write %s", path);
    if (n) assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

void write_text(const char *path, const char *text) { write_bytes(path, text, strlen(text)); }

uint8_t *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot read %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)len + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return p;
}

void make_dir(const char *path) { mkdir(path, 0755); }

void expect_fail_(const char *file, int line, const char *case_name, vkm_status got,
                  const vkm_err *e, vkm_status want, const char *substr)
{
    if (got != want || !strstr(e->msg, substr)) {
        print_error("%s:%d: case '%s': expected %s with \"%s\", got %s: \"%s\"\n", file, line,
                    case_name, vkm_status_str(want), substr, vkm_status_str(got), e->msg);
        _fail(file, line);
    }
}

void expect_ok_(const char *file, int line, vkm_status s, const vkm_err *e)
{
    if (s != VKM_OK) {
        print_error("%s:%d: expected VKM_OK, got %s: %s\n", file, line, vkm_status_str(s), e->msg);
        _fail(file, line);
    }
}

float *tensor_f32(const vkm_tensor_src *t)
{
    int64_t n = vkm_tensor_nelem(t);
    float *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    assert_non_null(v);
    assert_int_equal(vkm_to_f32(t->dtype, t->data, (uint64_t)n, v), VKM_OK);
    return v;
}
