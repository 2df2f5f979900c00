/*
 * gguf_write.c — the GGUF v3 writer: metadata of every value type (nested arrays by copying a
 * read value), tensor infos, then the tensor data streamed in order with 32-byte (or
 * general.alignment) padding, written to "<path>.tmp" and renamed when complete.
 */
#include <stdlib.h>
#include <string.h>

#include "wfile.h"
#include "writer.h"

struct vkm_gguf_writer {
    vkm_wfile w;
    vkm_wbuf kv;      /* the serialized key/value section */
    uint64_t n_kv;
    char **keys;      /* for the duplicate check */
    uint32_t alignment;
};

vkm_status vkm_gguf_writer_create(const char *path, vkm_gguf_writer **out, vkm_err *e)
{
    *out = NULL;
    vkm_gguf_writer *w = calloc(1, sizeof *w);
    if (!w) return vkm_fail(e, VKM_ERR_OUT_OF_HOST_MEMORY, "%s: out of memory", path ? path : "");
    w->alignment = 32;
    vkm_status s = vkm_wfile_init(&w->w, path, e);
    if (s) {
        free(w);
        return s;
    }
    *out = w;
    return VKM_OK;
}

void vkm_gguf_writer_free(vkm_gguf_writer *w)
{
    if (!w) return;
    vkm_wfile_free(&w->w);
    vkm_wbuf_free(&w->kv);
    for (uint64_t i = 0; i < w->n_kv; i++) free(w->keys[i]);
    free(w->keys);
    free(w);
}

/* ---- metadata ----------------------------------------------------------------------------- */
static vkm_status oom(vkm_gguf_writer *w)
{
    return vkm_wfile_fail(&w->w, VKM_ERR_OUT_OF_HOST_MEMORY, "%s: out of memory", w->w.path);
}

static void put_str(vkm_wbuf *b, const char *p, uint64_t n)
{
    vkm_wbuf_u64(b, n);
    vkm_wbuf_put(b, p, n);
}

/* Checks the key, records it and writes the key and the value type. */
static vkm_status begin_kv(vkm_gguf_writer *w, const char *key, vkm_gguf_type type)
{
    vkm_status s = vkm_wfile_describing(&w->w);
    if (s || (s = vkm_wfile_check_name(&w->w, key, "key"))) return s;
    for (uint64_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->keys[i], key))
            return vkm_wfile_fail(&w->w, VKM_ERR_INVALID_ARGUMENT, "%s: duplicate key '%s'",
                                  w->w.path, key);
    if (!strcmp(key, "general.alignment") && type != VKM_GGUF_U32)
        return vkm_wfile_fail(&w->w, VKM_ERR_INVALID_ARGUMENT, "%s: general.alignment must be a u32",
                              w->w.path);
    if (w->n_kv >= VKM_MAX_KV)
        return vkm_wfile_fail(&w->w, VKM_ERR_LIMIT, "%s: more than %u keys", w->w.path, VKM_MAX_KV);
    char **keys = realloc(w->keys, (w->n_kv + 1) * sizeof *keys);
    if (!keys) return oom(w);
    w->keys = keys;
    if (!(keys[w->n_kv] = strdup(key))) return oom(w);
    w->n_kv++;
    put_str(&w->kv, key, strlen(key));
    vkm_wbuf_u32(&w->kv, (uint32_t)type);
    return w->kv.oom ? oom(w) : VKM_OK;
}

/* A little-endian scalar of `size` bytes from the low bytes of v. */
static void put_le(vkm_wbuf *b, uint64_t v, uint32_t size)
{
    uint8_t q[8];
    for (uint32_t i = 0; i < size; i++) q[i] = (uint8_t)(v >> (8 * i));
    vkm_wbuf_put(b, q, size);
}

static vkm_status set_scalar(vkm_gguf_writer *w, const char *key, vkm_gguf_type t, uint64_t bits)
{
    vkm_status s = begin_kv(w, key, t);
    if (s) return s;
    if (!strcmp(key, "general.alignment")) {
        if (bits == 0 || (bits & (bits - 1)))
            return vkm_wfile_fail(&w->w, VKM_ERR_INVALID_ARGUMENT,
                                  "%s: general.alignment %llu is not a power of two", w->w.path,
                                  (unsigned long long)bits);
        w->alignment = (uint32_t)bits;
    }
    put_le(&w->kv, bits, vkm_gguf_type_size(t));
    return w->kv.oom ? oom(w) : VKM_OK;
}

static uint64_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static uint64_t f64_bits(double f)
{
    uint64_t u;
    memcpy(&u, &f, 8);
    return u;
}

vkm_status vkm_gguf_writer_set_u8(vkm_gguf_writer *w, const char *k, uint8_t v) { return set_scalar(w, k, VKM_GGUF_U8, v); }
vkm_status vkm_gguf_writer_set_i8(vkm_gguf_writer *w, const char *k, int8_t v) { return set_scalar(w, k, VKM_GGUF_I8, (uint64_t)(int64_t)v); }
vkm_status vkm_gguf_writer_set_u16(vkm_gguf_writer *w, const char *k, uint16_t v) { return set_scalar(w, k, VKM_GGUF_U16, v); }
vkm_status vkm_gguf_writer_set_i16(vkm_gguf_writer *w, const char *k, int16_t v) { return set_scalar(w, k, VKM_GGUF_I16, (uint64_t)(int64_t)v); }
vkm_status vkm_gguf_writer_set_u32(vkm_gguf_writer *w, const char *k, uint32_t v) { return set_scalar(w, k, VKM_GGUF_U32, v); }
vkm_status vkm_gguf_writer_set_i32(vkm_gguf_writer *w, const char *k, int32_t v) { return set_scalar(w, k, VKM_GGUF_I32, (uint64_t)(int64_t)v); }
vkm_status vkm_gguf_writer_set_u64(vkm_gguf_writer *w, const char *k, uint64_t v) { return set_scalar(w, k, VKM_GGUF_U64, v); }
vkm_status vkm_gguf_writer_set_i64(vkm_gguf_writer *w, const char *k, int64_t v) { return set_scalar(w, k, VKM_GGUF_I64, (uint64_t)v); }
vkm_status vkm_gguf_writer_set_f32(vkm_gguf_writer *w, const char *k, float v) { return set_scalar(w, k, VKM_GGUF_F32, f32_bits(v)); }
vkm_status vkm_gguf_writer_set_f64(vkm_gguf_writer *w, const char *k, double v) { return set_scalar(w, k, VKM_GGUF_F64, f64_bits(v)); }
vkm_status vkm_gguf_writer_set_bool(vkm_gguf_writer *w, const char *k, bool v) { return set_scalar(w, k, VKM_GGUF_BOOL, v ? 1 : 0); }

vkm_status vkm_gguf_writer_set_str(vkm_gguf_writer *w, const char *key, const char *v)
{
    vkm_status s = begin_kv(w, key, VKM_GGUF_STRING);
    if (s) return s;
    put_str(&w->kv, v ? v : "", v ? strlen(v) : 0);
    return w->kv.oom ? oom(w) : VKM_OK;
}

/* n scalars of type t at p (host order, or little-endian when from a file: the same here). */
static vkm_status put_scalars(vkm_gguf_writer *w, vkm_gguf_type t, uint64_t n, const void *p)
{
    uint32_t size = vkm_gguf_type_size(t);
    const uint8_t *q = p;
    for (uint64_t i = 0; i < n; i++, q += size) {
        uint64_t bits = 0;
        if (size == 1) bits = q[0];
        else if (size == 2) { uint16_t v; memcpy(&v, q, 2); bits = v; }
        else if (size == 4) { uint32_t v; memcpy(&v, q, 4); bits = v; }
        else memcpy(&bits, q, 8);
        if (t == VKM_GGUF_BOOL && bits > 1)
            return vkm_wfile_fail(&w->w, VKM_ERR_INVALID_ARGUMENT, "%s: bool array element %llu is %llu",
                                  w->w.path, (unsigned long long)i, (unsigned long long)bits);
        put_le(&w->kv, bits, size);
    }
    return w->kv.oom ? oom(w) : VKM_OK;
}

vkm_status vkm_gguf_writer_set_arr(vkm_gguf_writer *w, const char *key, vkm_gguf_type elem_type,
                                   uint64_t n, const void *data)
{
    if (vkm_gguf_type_size(elem_type) == 0)
        return vkm_wfile_fail(&w->w, VKM_ERR_INVALID_ARGUMENT,
                              "%s: key '%s': set_arr takes scalar elements", w->w.path, key);
    vkm_status s = begin_kv(w, key, VKM_GGUF_ARRAY);
    if (s) return s;
    vkm_wbuf_u32(&w->kv, (uint32_t)elem_type);
    vkm_wbuf_u64(&w->kv, n);
    return put_scalars(w, elem_type, n, data);
}

vkm_status vkm_gguf_writer_set_arr_str(vkm_gguf_writer *w, const char *key, uint64_t n,
                                       const char *const *strs)
{
    vkm_status s = begin_kv(w, key, VKM_GGUF_ARRAY);
    if (s) return s;
    vkm_wbuf_u32(&w->kv, VKM_GGUF_STRING);
    vkm_wbuf_u64(&w->kv, n);
    for (uint64_t i = 0; i < n; i++) put_str(&w->kv, strs[i], strlen(strs[i]));
    return w->kv.oom ? oom(w) : VKM_OK;
}

static vkm_status put_arr(vkm_gguf_writer *w, const vkm_gguf_arr *a)
{
    vkm_wbuf_u32(&w->kv, (uint32_t)a->elem_type);
    vkm_wbuf_u64(&w->kv, a->n);
    vkm_status s = VKM_OK;
    for (uint64_t i = 0; i < a->n && !s; i++) {
        if (a->elem_type == VKM_GGUF_STRING) put_str(&w->kv, a->strs[i].p, a->strs[i].n);
        else if (a->elem_type == VKM_GGUF_ARRAY) s = put_arr(w, &a->arrs[i]);
    }
    if (a->elem_type != VKM_GGUF_STRING && a->elem_type != VKM_GGUF_ARRAY)
        s = put_scalars(w, a->elem_type, a->n, a->data);
    return s ? s : w->kv.oom ? oom(w) : VKM_OK;
}

vkm_status vkm_gguf_writer_copy_kv(vkm_gguf_writer *w, const vkm_gguf_kv *kv)
{
    switch (kv->type) {
    case VKM_GGUF_STRING: {
        vkm_status s = begin_kv(w, kv->key, kv->type);
        if (s) return s;
        put_str(&w->kv, kv->v.s.p, kv->v.s.n);
        return w->kv.oom ? oom(w) : VKM_OK;
    }
    case VKM_GGUF_ARRAY: {
        vkm_status s = begin_kv(w, kv->key, kv->type);
        return s ? s : put_arr(w, &kv->v.a);
    }
    case VKM_GGUF_F32: return set_scalar(w, kv->key, kv->type, f32_bits((float)kv->v.f));
    case VKM_GGUF_F64: return set_scalar(w, kv->key, kv->type, f64_bits(kv->v.f));
    default: return set_scalar(w, kv->key, kv->type, kv->v.u); /* v.i shares the bits */
    }
}

/* ---- tensors and data --------------------------------------------------------------------- */
vkm_status vkm_gguf_writer_add_tensor(vkm_gguf_writer *w, const char *name, vkm_dtype dtype,
                                      int n_dims, const int64_t *ne)
{
    if (n_dims < 1)
        return vkm_wfile_fail(&w->w, VKM_ERR_INVALID_ARGUMENT, "%s: tensor '%s': GGUF needs 1 to %d dims",
                              w->w.path, name ? name : "", VKM_MAX_DIMS);
    return vkm_wfile_add(&w->w, name, dtype, n_dims, ne);
}

/* The header up to the tensor table: magic, version, counts, the metadata. */
static void header(const vkm_gguf_writer *w, uint64_t n_tensors, vkm_wbuf *h)
{
    vkm_wbuf_put(h, "GGUF", 4);
    vkm_wbuf_u32(h, 3);
    vkm_wbuf_u64(h, n_tensors);
    vkm_wbuf_u64(h, w->n_kv);
    vkm_wbuf_put(h, w->kv.p, w->kv.n);
}

vkm_status vkm_gguf_writer_meta_image(const vkm_gguf_writer *w, uint8_t **data, uint64_t *size)
{
    vkm_wbuf h = {0};
    header(w, 0, &h);
    *data = h.oom ? NULL : h.p;
    *size = h.oom ? 0 : h.n;
    if (!h.oom) return VKM_OK;
    vkm_wbuf_free(&h);
    return vkm_fail(w->w.e, VKM_ERR_OUT_OF_HOST_MEMORY, "%s: out of memory", w->w.path);
}

vkm_status vkm_gguf_writer_begin(vkm_gguf_writer *w)
{
    vkm_status s = vkm_wfile_layout(&w->w, w->alignment);
    if (s) return s;
    vkm_wbuf h = {0};
    header(w, w->w.n, &h);
    for (uint32_t i = 0; i < w->w.n; i++) {
        const vkm_wtensor *t = &w->w.t[i];
        put_str(&h, t->name, strlen(t->name));
        vkm_wbuf_u32(&h, (uint32_t)t->n_dims);
        for (int d = 0; d < t->n_dims; d++) vkm_wbuf_u64(&h, (uint64_t)t->ne[d]);
        vkm_wbuf_u32(&h, vkm_gguf_ggml_type(t->dtype));
        vkm_wbuf_u64(&h, t->offset);
    }
    if (h.oom) s = oom(w);
    else s = vkm_wfile_open(&w->w, h.p, h.n, vkm_align_up(h.n, w->alignment));
    vkm_wbuf_free(&h);
    return s;
}

vkm_status vkm_gguf_writer_write(vkm_gguf_writer *w, const void *data, uint64_t n)
{
    return vkm_wfile_write(&w->w, data, n);
}

vkm_status vkm_gguf_writer_write_tensor(vkm_gguf_writer *w, const char *name, const void *data,
                                        uint64_t nbytes)
{
    return vkm_wfile_write_tensor(&w->w, name, data, nbytes);
}

vkm_status vkm_gguf_writer_finish(vkm_gguf_writer *w) { return vkm_wfile_finish(&w->w); }
