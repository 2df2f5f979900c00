/*
 * loader_util.h — what the loader tests share: paths into the shared test data and the test's
 * temporary folder, a byte builder for hand-made (often malformed) files, whole-file reads and
 * writes, and the check that a failure carries its specific status and message.
 */
#ifndef VKM_LOADER_UTIL_H
#define VKM_LOADER_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "loader.h"

/* VKM_SHARED_DIR/rel and VKM_TEST_TMPDIR/name (static buffers, 8 of each in rotation). */
const char *shared_path(const char *rel);
const char *tmp_path(const char *name);

/* A growable byte buffer. */
typedef struct bb {
    uint8_t *p;
    size_t n, cap;
} bb;
void bb_bytes(bb *b, const void *data, size_t n);
void bb_u8(bb *b, uint8_t v);
void bb_u32(bb *b, uint32_t v);
void bb_u64(bb *b, uint64_t v);
void bb_f32(bb *b, float v);
void bb_str(bb *b, const char *s);           /* GGUF string: u64 length + bytes */
void bb_cstr(bb *b, const char *s);          /* raw bytes, no length */
void bb_pad(bb *b, size_t align);            /* zeros up to a multiple of align */
void bb_free(bb *b);

void write_bytes(const char *path, const void *data, size_t n);
void write_text(const char *path, const char *text);
uint8_t *read_bytes(const char *path, size_t *n); /* malloc'd; fails the test if unreadable */
void make_dir(const char *path);

/* Fails the test unless got == want and e->msg contains substr (case name in the report). */
void expect_fail_(const char *file, int line, const char *case_name, vkm_status got,
                  const vkm_err *e, vkm_status want, const char *substr);
#define expect_fail(name, got, e, want, substr) \
    expect_fail_(__FILE__, __LINE__, name, got, e, want, substr)
/* Fails the test with the loader's message unless s == VKM_OK. */
void expect_ok_(const char *file, int line, vkm_status s, const vkm_err *e);
#define expect_ok(s, e) expect_ok_(__FILE__, __LINE__, s, e)

/* All elements of a tensor as f32 (malloc'd). */
float *tensor_f32(const vkm_tensor_src *t);

#endif
