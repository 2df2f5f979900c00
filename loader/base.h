/*
 * base.h — what every module below the public API shares: error records, checked arithmetic,
 * read-only file mapping, dtype sizes and the scalar conversions (f16, bf16). No Vulkan here.
 */
#ifndef VKM_BASE_H
#define VKM_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vkmoe.h"

/* ---- errors ------------------------------------------------------------------------------ */
/* One failure: its status and a message naming what failed (file, key, tensor, VkResult). */
typedef struct vkm_err {
    vkm_status status;
    char msg[768];
} vkm_err;

/* Records a failure in e (if not NULL) and returns s. printf-style message. */
vkm_status vkm_fail(vkm_err *e, vkm_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefixes the message already in e with "<prefix>: " (used to add a file name on the way up). */
void vkm_err_prefix(vkm_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void vkm_err_clear(vkm_err *e);

/* ---- checked arithmetic ------------------------------------------------------------------ */
static inline bool vkm_mul_ok(uint64_t a, uint64_t b, uint64_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool vkm_add_ok(uint64_t a, uint64_t b, uint64_t *out)
{
    return !__builtin_add_overflow(a, b, out);
}
static inline uint64_t vkm_align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

/* ---- files ------------------------------------------------------------------------------- */
/* A read-only memory map of a whole file (an empty file maps to data == NULL, size 0). A map
 * that vkm_map_open made keeps its file open (has_fd) for vkm_map_read; one a caller fills in
 * by hand over bytes in memory has none. */
typedef struct vkm_map {
    const uint8_t *data;
    uint64_t size;
    int fd;
    bool has_fd;
} vkm_map;

vkm_status vkm_map_open(const char *path, vkm_map *m, vkm_err *e);
void vkm_map_close(vkm_map *m);
/* Copies the n bytes at p (inside m; for m NULL or a map without a file, anywhere) to dst: read
 * from the file where the map has it open, so no page of the map is touched (no page-table
 * work, nothing added to the process's resident memory: a streaming pass over files larger than
 * memory stays small), else copied. False, dst partly written, where the file read fails or
 * comes up short (the file shrank since it was mapped: the map's pages there would fault). */
bool vkm_map_read(const vkm_map *m, const void *p, uint64_t n, void *dst);
/* s as a JSON string literal (quotes, backslash and control characters escaped) into out, cut
 * short to fit cap; returns out. */
const char *vkm_json_quote(char *out, size_t cap, const char *s);
/* Reads a whole (small) text file, NUL-terminated; refuses files larger than max_bytes. */
vkm_status vkm_read_text(const char *path, uint64_t max_bytes, char **out, uint64_t *len,
                         vkm_err *e);
bool vkm_is_dir(const char *path);
bool vkm_exists(const char *path);
/* Joins dir and name with one '/' into out (cap bytes); false if it does not fit. */
bool vkm_path_join(char *out, size_t cap, const char *dir, const char *name);
/* The directory part of path ("." if none) into out. */
void vkm_path_dir(char *out, size_t cap, const char *path);

/* ---- dtypes -------------------------------------------------------------------------------- */
typedef struct vkm_dtype_traits {
    const char *name;
    uint32_t block;       /* elements per block (1 for plain types)                           */
    uint32_t block_bytes; /* bytes per block                                                  */
} vkm_dtype_traits;

const vkm_dtype_traits *vkm_dtype_info(vkm_dtype t); /* NULL for an invalid value */
/* Bytes of n elements of t; false when n is not a whole number of blocks or overflows. */
bool vkm_dtype_bytes(vkm_dtype t, uint64_t n, uint64_t *bytes);

float vkm_f16_to_f32(uint16_t h);
uint16_t vkm_f32_to_f16(float f);   /* round to nearest even, inf/nan kept                  */
float vkm_bf16_to_f32(uint16_t h);
uint16_t vkm_f32_to_bf16(float f);  /* round to nearest even                                */

/* Converts n elements of type t at src (any supported dtype, quantized included) to f32.
 * n must be a whole number of blocks. VKM_ERR_UNSUPPORTED for integer types. */
vkm_status vkm_to_f32(vkm_dtype t, const void *src, uint64_t n, float *dst);

/* Quantizes n f32 values (n % 32 == 0) to Q8_0 / Q4_0 blocks, llama.cpp's reference rounding. */
void vkm_quantize_q8_0(const float *src, uint64_t n, void *dst);
void vkm_quantize_q4_0(const float *src, uint64_t n, void *dst);

/* True when the n bytes at s are well-formed UTF-8 (no overlong forms, no surrogates, nothing
 * above U+10FFFF) and contain no NUL byte. */
bool vkm_utf8_valid(const char *s, uint64_t n);

/* Little-endian reads from unaligned memory. */
static inline uint16_t vkm_rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t vkm_rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t vkm_rd64(const uint8_t *p)
{
    return (uint64_t)vkm_rd32(p) | ((uint64_t)vkm_rd32(p + 4) << 32);
}

#endif /* VKM_BASE_H */
