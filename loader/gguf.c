/*
 * gguf.c — the GGUF reader (versions 2 and 3, little-endian): header, metadata of every value
 * type including nested arrays, tensor infos and data ranges, typed getters. Every count, length
 * and offset is checked against the bytes that remain before it is used, and nothing is
 * allocated from a count that could not fit in the file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loader.h"

#define GGUF_MAGIC 0x46554747u /* "GGUF" read little-endian */
#define DEFAULT_ALIGNMENT 32u
/* Smallest encodings, used to cap counts by the bytes that remain: a key/value pair is a
 * non-empty key (8 + 1), a type (4) and a one-byte value; a tensor info is a non-empty name
 * (8 + 1), n_dims (4), one dim (8), a type (4) and an offset (8). */
#define MIN_KV_BYTES 13u
#define MIN_TENSOR_BYTES 33u

/* ---- ggml and metadata types ------------------------------------------------------------- */
static const char *const ggml_names[] = {
    [0] = "F32",      [1] = "F16",      [2] = "Q4_0",     [3] = "Q4_1",     [6] = "Q5_0",
    [7] = "Q5_1",     [8] = "Q8_0",     [9] = "Q8_1",     [10] = "Q2_K",    [11] = "Q3_K",
    [12] = "Q4_K",    [13] = "Q5_K",    [14] = "Q6_K",    [15] = "Q8_K",    [16] = "IQ2_XXS",
    [17] = "IQ2_XS",  [18] = "IQ3_XXS", [19] = "IQ1_S",   [20] = "IQ4_NL",  [21] = "IQ3_S",
    [22] = "IQ2_S",   [23] = "IQ4_XS",  [24] = "I8",      [25] = "I16",     [26] = "I32",
    [27] = "I64",     [28] = "F64",     [29] = "IQ1_M",   [30] = "BF16",    [34] = "TQ1_0",
    [35] = "TQ2_0",   [39] = "MXFP4",
};

static const struct {
    uint32_t ggml;
    vkm_dtype dtype;
} ggml_map[] = {
    {0, VKM_F32},   {1, VKM_F16},   {2, VKM_Q4_0},  {8, VKM_Q8_0},  {12, VKM_Q4_K}, {14, VKM_Q6_K},
    {24, VKM_I8},   {25, VKM_I16},  {26, VKM_I32},  {27, VKM_I64},  {28, VKM_F64},  {30, VKM_BF16},
};

const char *vkm_gguf_ggml_type_name(uint32_t ggml_type)
{
    if (ggml_type >= sizeof ggml_names / sizeof ggml_names[0]) return NULL;
    return ggml_names[ggml_type];
}

bool vkm_gguf_dtype(uint32_t ggml_type, vkm_dtype *out)
{
    for (size_t i = 0; i < sizeof ggml_map / sizeof ggml_map[0]; i++)
        if (ggml_map[i].ggml == ggml_type) {
            *out = ggml_map[i].dtype;
            return true;
        }
    return false;
}

uint32_t vkm_gguf_ggml_type(vkm_dtype t)
{
    for (size_t i = 0; i < sizeof ggml_map / sizeof ggml_map[0]; i++)
        if (ggml_map[i].dtype == t) return ggml_map[i].ggml;
    return UINT32_MAX;
}

static const struct {
    const char *name;
    uint32_t size;
} kv_types[] = {
    [VKM_GGUF_U8] = {"u8", 1},     [VKM_GGUF_I8] = {"i8", 1},       [VKM_GGUF_U16] = {"u16", 2},
    [VKM_GGUF_I16] = {"i16", 2},   [VKM_GGUF_U32] = {"u32", 4},     [VKM_GGUF_I32] = {"i32", 4},
    [VKM_GGUF_F32] = {"f32", 4},   [VKM_GGUF_BOOL] = {"bool", 1},   [VKM_GGUF_STRING] = {"string", 0},
    [VKM_GGUF_ARRAY] = {"array", 0}, [VKM_GGUF_U64] = {"u64", 8},   [VKM_GGUF_I64] = {"i64", 8},
    [VKM_GGUF_F64] = {"f64", 8},
};

static bool type_valid(uint32_t t) { return t <= VKM_GGUF_F64; }

const char *vkm_gguf_type_name(vkm_gguf_type t)
{
    return type_valid((uint32_t)t) ? kv_types[t].name : "?";
}

uint32_t vkm_gguf_type_size(vkm_gguf_type t)
{
    return type_valid((uint32_t)t) ? kv_types[t].size : 0;
}

static bool type_unsigned(vkm_gguf_type t)
{
    return t == VKM_GGUF_U8 || t == VKM_GGUF_U16 || t == VKM_GGUF_U32 || t == VKM_GGUF_U64;
}

static bool type_signed(vkm_gguf_type t)
{
    return t == VKM_GGUF_I8 || t == VKM_GGUF_I16 || t == VKM_GGUF_I32 || t == VKM_GGUF_I64;
}

/* ---- a cursor over the mapped bytes ------------------------------------------------------- */
typedef struct cur {
    const uint8_t *p;
    uint64_t size, pos;
    const char *path;
    vkm_err *e;
} cur;

static uint64_t left(const cur *c) { return c->size - c->pos; }

static vkm_status need(cur *c, uint64_t n, const char *what)
{
    if (n <= left(c)) return VKM_OK;
    return vkm_fail(c->e, VKM_ERR_FORMAT,
                    "%s: truncated: %s needs %llu bytes at offset %llu, the file has %llu", c->path,
                    what, (unsigned long long)n, (unsigned long long)c->pos,
                    (unsigned long long)c->size);
}

static vkm_status rd_u32(cur *c, uint32_t *v, const char *what)
{
    vkm_status s = need(c, 4, what);
    if (s) return s;
    *v = vkm_rd32(c->p + c->pos);
    c->pos += 4;
    return VKM_OK;
}

static vkm_status rd_u64(cur *c, uint64_t *v, const char *what)
{
    vkm_status s = need(c, 8, what);
    if (s) return s;
    *v = vkm_rd64(c->p + c->pos);
    c->pos += 8;
    return VKM_OK;
}

static vkm_status rd_str(cur *c, vkm_gguf_str *str, const char *what)
{
    uint64_t n;
    vkm_status s = rd_u64(c, &n, what);
    if (s) return s;
    if (n > VKM_MAX_STRING)
        return vkm_fail(c->e, VKM_ERR_FORMAT, "%s: %s: string length %llu exceeds the limit of %u",
                        c->path, what, (unsigned long long)n, VKM_MAX_STRING);
    if (n > left(c))
        return vkm_fail(c->e, VKM_ERR_FORMAT,
                        "%s: %s: string length %llu runs past the end of the file (%llu bytes left)",
                        c->path, what, (unsigned long long)n, (unsigned long long)left(c));
    str->p = (const char *)c->p + c->pos;
    str->n = n;
    c->pos += n;
    return VKM_OK;
}

/* A key or tensor name: non-empty, shorter than VKM_MAX_NAME, valid UTF-8 without NUL. */
static vkm_status rd_name(cur *c, char out[VKM_MAX_NAME], const char *what)
{
    vkm_gguf_str str;
    vkm_status s = rd_str(c, &str, what);
    if (s) return s;
    if (str.n == 0) return vkm_fail(c->e, VKM_ERR_FORMAT, "%s: %s is empty", c->path, what);
    if (str.n >= VKM_MAX_NAME)
        return vkm_fail(c->e, VKM_ERR_FORMAT, "%s: %s is %llu bytes long, more than the %d allowed",
                        c->path, what, (unsigned long long)str.n, VKM_MAX_NAME - 1);
    if (!vkm_utf8_valid(str.p, str.n))
        return vkm_fail(c->e, VKM_ERR_FORMAT, "%s: %s is not valid UTF-8 (or holds a NUL byte)",
                        c->path, what);
    memcpy(out, str.p, str.n);
    out[str.n] = 0;
    return VKM_OK;
}

/* ---- metadata values ---------------------------------------------------------------------- */
static void arr_free(vkm_gguf_arr *a)
{
    if (a->arrs)
        for (uint64_t i = 0; i < a->n; i++) arr_free(&a->arrs[i]);
    free(a->arrs);
    free(a->strs);
    a->arrs = NULL;
    a->strs = NULL;
}

static vkm_status parse_arr(cur *c, vkm_gguf_arr *a, int depth, const char *what);

static vkm_status bad_bool(cur *c, uint8_t v, const char *what)
{
    return vkm_fail(c->e, VKM_ERR_FORMAT, "%s: %s: bool value %u is neither 0 nor 1", c->path,
                    what, v);
}

static vkm_status parse_scalar(cur *c, vkm_gguf_kv *kv, const char *what)
{
    uint32_t size = vkm_gguf_type_size(kv->type);
    vkm_status s = need(c, size, what);
    if (s) return s;
    const uint8_t *q = c->p + c->pos;
    switch (kv->type) {
    case VKM_GGUF_U8: kv->v.u = q[0]; break;
    case VKM_GGUF_I8: kv->v.i = (int8_t)q[0]; break;
    case VKM_GGUF_U16: kv->v.u = vkm_rd16(q); break;
    case VKM_GGUF_I16: kv->v.i = (int16_t)vkm_rd16(q); break;
    case VKM_GGUF_U32: kv->v.u = vkm_rd32(q); break;
    case VKM_GGUF_I32: kv->v.i = (int32_t)vkm_rd32(q); break;
    case VKM_GGUF_U64: kv->v.u = vkm_rd64(q); break;
    case VKM_GGUF_I64: kv->v.i = (int64_t)vkm_rd64(q); break;
    case VKM_GGUF_F32: {
        float f;
        memcpy(&f, q, 4);
        kv->v.f = f;
        break;
    }
    case VKM_GGUF_F64: memcpy(&kv->v.f, q, 8); break;
    case VKM_GGUF_BOOL:
        if (q[0] > 1) return bad_bool(c, q[0], what);
        kv->v.u = q[0];
        break;
    default: break; /* strings and arrays are parsed by the caller */
    }
    c->pos += size;
    return VKM_OK;
}

static vkm_status parse_value(cur *c, vkm_gguf_kv *kv, const char *what)
{
    if (kv->type == VKM_GGUF_STRING) return rd_str(c, &kv->v.s, what);
    if (kv->type == VKM_GGUF_ARRAY) return parse_arr(c, &kv->v.a, 1, what);
    return parse_scalar(c, kv, what);
}

static vkm_status too_many(cur *c, const char *what, uint64_t n, const char *unit, uint64_t fit)
{
    return vkm_fail(c->e, VKM_ERR_FORMAT,
                    "%s: %s: claims %llu %s but only %llu can fit in the %llu bytes left", c->path,
                    what, (unsigned long long)n, unit, (unsigned long long)fit,
                    (unsigned long long)left(c));
}

static vkm_status parse_arr(cur *c, vkm_gguf_arr *a, int depth, const char *what)
{
    uint32_t et;
    vkm_status s = rd_u32(c, &et, what);
    if (s) return s;
    if (!type_valid(et))
        return vkm_fail(c->e, VKM_ERR_FORMAT, "%s: %s: unknown array element type %u", c->path,
                        what, et);
    a->elem_type = (vkm_gguf_type)et;
    uint64_t n;
    if ((s = rd_u64(c, &n, what))) return s;
    a->data = c->p + c->pos;
    if (et == VKM_GGUF_STRING) {
        if (n > left(c) / 8) return too_many(c, what, n, "strings", left(c) / 8);
        a->strs = calloc(n ? n : 1, sizeof *a->strs);
        if (!a->strs) return vkm_fail(c->e, VKM_ERR_OUT_OF_HOST_MEMORY, "%s: out of memory", c->path);
        a->n = n;
        for (uint64_t i = 0; i < n; i++)
            if ((s = rd_str(c, &a->strs[i], what))) return s;
        return VKM_OK;
    }
    if (et == VKM_GGUF_ARRAY) {
        if (depth >= VKM_GGUF_MAX_DEPTH)
            return vkm_fail(c->e, VKM_ERR_FORMAT, "%s: %s: arrays nested deeper than %d levels",
                            c->path, what, VKM_GGUF_MAX_DEPTH);
        if (n > left(c) / 12) return too_many(c, what, n, "nested arrays", left(c) / 12);
        a->arrs = calloc(n ? n : 1, sizeof *a->arrs);
        if (!a->arrs) return vkm_fail(c->e, VKM_ERR_OUT_OF_HOST_MEMORY, "%s: out of memory", c->path);
        a->n = n;
        for (uint64_t i = 0; i < n; i++)
            if ((s = parse_arr(c, &a->arrs[i], depth + 1, what))) return s;
        return VKM_OK;
    }
    uint32_t size = vkm_gguf_type_size(a->elem_type);
    if (n > left(c) / size) return too_many(c, what, n, "elements", left(c) / size);
    if (et == VKM_GGUF_BOOL)
        for (uint64_t i = 0; i < n; i++)
            if (a->data[i] > 1) return bad_bool(c, a->data[i], what);
    a->n = n;
    c->pos += n * size;
    return VKM_OK;
}

/* ---- the file ----------------------------------------------------------------------------- */
static int kv_cmp(const void *a, const void *b)
{
    return strcmp((*(const vkm_gguf_kv *const *)a)->key, (*(const vkm_gguf_kv *const *)b)->key);
}

static vkm_status oom(cur *c) { return vkm_fail(c->e, VKM_ERR_OUT_OF_HOST_MEMORY, "%s: out of memory", c->path); }

static vkm_status parse_header(cur *c, vkm_gguf *g, uint64_t *n_tensors)
{
    if (c->size < 4 || vkm_rd32(c->p) != GGUF_MAGIC)
        return vkm_fail(c->e, VKM_ERR_FORMAT, "%s: not a GGUF file (no 'GGUF' magic at offset 0)",
                        c->path);
    c->pos = 4;
    vkm_status s = rd_u32(c, &g->version, "the version");
    if (s) return s;
    if (g->version == 0x02000000u || g->version == 0x03000000u)
        return vkm_fail(c->e, VKM_ERR_UNSUPPORTED, "%s: big-endian GGUF is not supported", c->path);
    if (g->version != 2 && g->version != 3)
        return vkm_fail(c->e, VKM_ERR_UNSUPPORTED,
                        "%s: GGUF version %u is not supported (only versions 2 and 3)", c->path,
                        g->version);
    uint64_t n_kv;
    if ((s = rd_u64(c, n_tensors, "the tensor count")) || (s = rd_u64(c, &n_kv, "the key count")))
        return s;
    if (*n_tensors > VKM_MAX_TENSORS)
        return vkm_fail(c->e, VKM_ERR_FORMAT, "%s: claims %llu tensors, more than the limit of %u",
                        c->path, (unsigned long long)*n_tensors, VKM_MAX_TENSORS);
    if (n_kv > VKM_MAX_KV)
        return vkm_fail(c->e, VKM_ERR_FORMAT, "%s: claims %llu metadata keys, more than the limit of %u",
                        c->path, (unsigned long long)n_kv, VKM_MAX_KV);
    if (n_kv > left(c) / MIN_KV_BYTES) return too_many(c, "header", n_kv, "metadata keys", left(c) / MIN_KV_BYTES);
    g->kv = calloc(n_kv ? n_kv : 1, sizeof *g->kv);
    if (!g->kv) return oom(c);
    char what[VKM_MAX_NAME + 64];
    for (uint64_t i = 0; i < n_kv; i++) {
        vkm_gguf_kv *kv = &g->kv[i];
        g->n_kv = i + 1;
        snprintf(what, sizeof what, "key %llu", (unsigned long long)i);
        if ((s = rd_name(c, kv->key, what))) return s;
        snprintf(what, sizeof what, "key '%s'", kv->key);
        uint32_t t;
        if ((s = rd_u32(c, &t, what))) return s;
        if (!type_valid(t))
            return vkm_fail(c->e, VKM_ERR_FORMAT, "%s: key '%s': unknown value type %u", c->path,
                            kv->key, t);
        kv->type = (vkm_gguf_type)t;
        if ((s = parse_value(c, kv, what))) return s;
    }
    g->kv_by_key = malloc((n_kv ? n_kv : 1) * sizeof *g->kv_by_key);
    if (!g->kv_by_key) return oom(c);
    for (uint64_t i = 0; i < n_kv; i++) g->kv_by_key[i] = &g->kv[i];
    qsort(g->kv_by_key, n_kv, sizeof *g->kv_by_key, kv_cmp);
    for (uint64_t i = 1; i < n_kv; i++)
        if (!strcmp(g->kv_by_key[i - 1]->key, g->kv_by_key[i]->key))
            return vkm_fail(c->e, VKM_ERR_FORMAT, "%s: duplicate key '%s'", c->path,
                            g->kv_by_key[i]->key);
    return VKM_OK;
}

static vkm_status parse_alignment(cur *c, vkm_gguf *g)
{
    g->alignment = DEFAULT_ALIGNMENT;
    const vkm_gguf_kv *kv = vkm_gguf_find(g, "general.alignment");
    if (!kv) return VKM_OK;
    if (kv->type != VKM_GGUF_U32)
        return vkm_fail(c->e, VKM_ERR_FORMAT, "%s: general.alignment is a %s, not a u32", c->path,
                        vkm_gguf_type_name(kv->type));
    if (kv->v.u == 0 || (kv->v.u & (kv->v.u - 1)))
        return vkm_fail(c->e, VKM_ERR_FORMAT, "%s: general.alignment %llu is not a power of two",
                        c->path, (unsigned long long)kv->v.u);
    g->alignment = (uint32_t)kv->v.u;
    return VKM_OK;
}

/* One tensor info: name, dims, type, offset (relative to the data section until fixed up). */
static vkm_status parse_tensor_info(cur *c, uint64_t i, vkm_tensor_src *t)
{
    char what[VKM_MAX_NAME + 64];
    snprintf(what, sizeof what, "tensor %llu name", (unsigned long long)i);
    vkm_status s = rd_name(c, t->name, what);
    if (s) return s;
    snprintf(what, sizeof what, "tensor '%s'", t->name);
    uint32_t n_dims, type;
    if ((s = rd_u32(c, &n_dims, what))) return s;
    if (n_dims < 1 || n_dims > VKM_MAX_DIMS)
        return vkm_fail(c->e, VKM_ERR_FORMAT, "%s: tensor '%s': %u dimensions (1 to %d allowed)",
                        c->path, t->name, n_dims, VKM_MAX_DIMS);
    t->n_dims = (int)n_dims;
    uint64_t nelem = 1;
    for (int d = 0; d < VKM_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        uint64_t ne;
        if ((s = rd_u64(c, &ne, what))) return s;
        if (ne > (uint64_t)INT64_MAX || !vkm_mul_ok(nelem, ne, &nelem) || nelem > (uint64_t)INT64_MAX)
            return vkm_fail(c->e, VKM_ERR_FORMAT, "%s: tensor '%s': dimensions overflow", c->path,
                            t->name);
        t->ne[d] = (int64_t)ne;
    }
    if ((s = rd_u32(c, &type, what)) || (s = rd_u64(c, &t->offset, what))) return s;
    if (!vkm_gguf_dtype(type, &t->dtype)) {
        const char *name = vkm_gguf_ggml_type_name(type);
        return vkm_fail(c->e, VKM_ERR_UNSUPPORTED,
                        "%s: tensor '%s': ggml type %s (%u) is not supported (F32, F16, BF16, Q8_0, "
                        "Q4_0, Q4_K, Q6_K and I8..I64, F64 are)",
                        c->path, t->name, name ? name : "unknown", type);
    }
    const vkm_dtype_traits *tr = vkm_dtype_info(t->dtype);
    if (t->ne[0] % tr->block)
        return vkm_fail(c->e, VKM_ERR_FORMAT,
                        "%s: tensor '%s': ne0 %lld is not a multiple of the %s block size %u",
                        c->path, t->name, (long long)t->ne[0], tr->name, tr->block);
    if (!vkm_dtype_bytes(t->dtype, nelem, &t->nbytes))
        return vkm_fail(c->e, VKM_ERR_FORMAT, "%s: tensor '%s': byte size overflows", c->path, t->name);
    return VKM_OK;
}

static vkm_status place_tensor(cur *c, vkm_gguf *g, vkm_tensor_src *t)
{
    uint64_t start, end;
    if (t->offset % g->alignment)
        return vkm_fail(c->e, VKM_ERR_FORMAT, "%s: tensor '%s': offset %llu is not a multiple of the alignment %u",
                        c->path, t->name, (unsigned long long)t->offset, g->alignment);
    if (!vkm_add_ok(g->data_offset, t->offset, &start) || !vkm_add_ok(start, t->nbytes, &end) ||
        end > c->size)
        return vkm_fail(c->e, VKM_ERR_FORMAT,
                        "%s: tensor '%s': data (offset %llu + %llu bytes in the data section at %llu) "
                        "runs past the end of the file (%llu bytes)",
                        c->path, t->name, (unsigned long long)t->offset,
                        (unsigned long long)t->nbytes, (unsigned long long)g->data_offset,
                        (unsigned long long)c->size);
    t->offset = start;
    t->data = c->p + start;
    return VKM_OK;
}

static vkm_status parse(vkm_gguf *g, vkm_err *e)
{
    cur c = {g->map.data, g->map.size, 0, g->path, e};
    uint64_t n_tensors;
    vkm_status s = parse_header(&c, g, &n_tensors);
    if (s || (s = parse_alignment(&c, g))) return s;
    if (n_tensors > left(&c) / MIN_TENSOR_BYTES)
        return too_many(&c, "header", n_tensors, "tensors", left(&c) / MIN_TENSOR_BYTES);
    g->tensors = calloc(n_tensors ? n_tensors : 1, sizeof *g->tensors);
    if (!g->tensors) return oom(&c);
    for (uint64_t i = 0; i < n_tensors; i++) {
        g->n_tensors = i + 1;
        if ((s = parse_tensor_info(&c, i, &g->tensors[i]))) return s;
    }
    g->data_offset = vkm_align_up(c.pos, g->alignment); /* pos <= size < 2^63, alignment <= 2^31 */
    for (uint64_t i = 0; i < n_tensors; i++)
        if ((s = place_tensor(&c, g, &g->tensors[i]))) return s;
    if ((s = vkm_tensors_index(g->path, g->tensors, n_tensors, &g->tensor_by_name, e))) return s;
    return vkm_tensors_check_overlap(g->path, g->tensors, n_tensors, e);
}

static vkm_status open_common(vkm_gguf *g, vkm_err *e)
{
    vkm_status s = parse(g, e);
    if (s) vkm_gguf_close(g);
    return s;
}

vkm_status vkm_gguf_open(const char *path, vkm_gguf *g, vkm_err *e)
{
    memset(g, 0, sizeof *g);
    snprintf(g->path, sizeof g->path, "%s", path);
    vkm_status s = vkm_map_open(path, &g->map, e);
    if (s) return s;
    g->own_map = true;
    return open_common(g, e);
}

vkm_status vkm_gguf_open_mem(const void *data, uint64_t size, const char *name, vkm_gguf *g,
                             vkm_err *e)
{
    memset(g, 0, sizeof *g);
    snprintf(g->path, sizeof g->path, "%s", name ? name : "(memory)");
    g->map.data = data;
    g->map.size = data ? size : 0;
    return open_common(g, e);
}

void vkm_gguf_close(vkm_gguf *g)
{
    if (!g) return;
    if (g->kv)
        for (uint64_t i = 0; i < g->n_kv; i++)
            if (g->kv[i].type == VKM_GGUF_ARRAY) arr_free(&g->kv[i].v.a);
    free(g->kv);
    free(g->kv_by_key);
    free(g->tensors);
    free(g->tensor_by_name);
    if (g->own_map) vkm_map_close(&g->map);
    memset(g, 0, sizeof *g);
}

/* ---- lookups and typed getters ------------------------------------------------------------ */
const vkm_gguf_kv *vkm_gguf_find(const vkm_gguf *g, const char *key)
{
    if (!g->kv_by_key || !key) return NULL;
    uint64_t lo = 0, hi = g->n_kv;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(g->kv_by_key[mid]->key, key);
        if (c == 0) return g->kv_by_key[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

const vkm_tensor_src *vkm_gguf_tensor(const vkm_gguf *g, const char *name)
{
    if (!g->tensor_by_name || !name) return NULL;
    return vkm_tensors_find(g->tensor_by_name, g->n_tensors, name);
}

bool vkm_gguf_get_u32(const vkm_gguf *g, const char *key, uint32_t *out)
{
    int64_t v;
    if (!vkm_gguf_get_i64(g, key, &v) || v < 0 || v > (int64_t)UINT32_MAX) return false;
    *out = (uint32_t)v;
    return true;
}

bool vkm_gguf_get_i64(const vkm_gguf *g, const char *key, int64_t *out)
{
    const vkm_gguf_kv *kv = vkm_gguf_find(g, key);
    if (!kv) return false;
    if (type_signed(kv->type)) {
        *out = kv->v.i;
        return true;
    }
    if (!type_unsigned(kv->type) || kv->v.u > (uint64_t)INT64_MAX) return false;
    *out = (int64_t)kv->v.u;
    return true;
}

bool vkm_gguf_get_f32(const vkm_gguf *g, const char *key, float *out)
{
    const vkm_gguf_kv *kv = vkm_gguf_find(g, key);
    if (!kv || (kv->type != VKM_GGUF_F32 && kv->type != VKM_GGUF_F64)) return false;
    *out = (float)kv->v.f;
    return true;
}

bool vkm_gguf_get_bool(const vkm_gguf *g, const char *key, bool *out)
{
    const vkm_gguf_kv *kv = vkm_gguf_find(g, key);
    if (!kv || kv->type != VKM_GGUF_BOOL) return false;
    *out = kv->v.u != 0;
    return true;
}

bool vkm_gguf_get_str(const vkm_gguf *g, const char *key, char *out, size_t cap)
{
    const vkm_gguf_kv *kv = vkm_gguf_find(g, key);
    if (!kv || kv->type != VKM_GGUF_STRING || kv->v.s.n >= cap || memchr(kv->v.s.p, 0, kv->v.s.n))
        return false;
    memcpy(out, kv->v.s.p, kv->v.s.n);
    out[kv->v.s.n] = 0;
    return true;
}

const vkm_gguf_arr *vkm_gguf_get_arr(const vkm_gguf *g, const char *key)
{
    const vkm_gguf_kv *kv = vkm_gguf_find(g, key);
    return kv && kv->type == VKM_GGUF_ARRAY ? &kv->v.a : NULL;
}

bool vkm_gguf_arr_i64(const vkm_gguf_arr *a, uint64_t i, int64_t *out)
{
    if (!a || i >= a->n) return false;
    const uint8_t *q = a->data + i * vkm_gguf_type_size(a->elem_type);
    switch (a->elem_type) {
    case VKM_GGUF_U8: case VKM_GGUF_BOOL: *out = q[0]; return true;
    case VKM_GGUF_I8: *out = (int8_t)q[0]; return true;
    case VKM_GGUF_U16: *out = vkm_rd16(q); return true;
    case VKM_GGUF_I16: *out = (int16_t)vkm_rd16(q); return true;
    case VKM_GGUF_U32: *out = vkm_rd32(q); return true;
    case VKM_GGUF_I32: *out = (int32_t)vkm_rd32(q); return true;
    case VKM_GGUF_I64: *out = (int64_t)vkm_rd64(q); return true;
    case VKM_GGUF_U64:
        if (vkm_rd64(q) > (uint64_t)INT64_MAX) return false;
        *out = (int64_t)vkm_rd64(q);
        return true;
    default: return false;
    }
}

bool vkm_gguf_arr_f64(const vkm_gguf_arr *a, uint64_t i, double *out)
{
    if (!a || i >= a->n) return false;
    if (a->elem_type == VKM_GGUF_F32) {
        float f;
        memcpy(&f, a->data + 4 * i, 4);
        *out = f;
        return true;
    }
    if (a->elem_type == VKM_GGUF_F64) {
        memcpy(out, a->data + 8 * i, 8);
        return true;
    }
    return false;
}
