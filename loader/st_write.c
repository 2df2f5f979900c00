/*
 * st_write.c — the safetensors writer: "__metadata__" strings and tensor entries written as a
 * JSON header (integers printed exactly, padded with spaces to 8 bytes), then the tensor data
 * streamed contiguously in order, into "<path>.tmp" renamed when complete.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wfile.h"
#include "writer.h"

struct vkm_st_writer {
    vkm_wfile w;
    uint32_t n_meta;
    char **meta; /* key, value, key, value, ... */
};

vkm_status vkm_st_writer_create(const char *path, vkm_st_writer **out, vkm_err *e)
{
    *out = NULL;
    vkm_st_writer *w = calloc(1, sizeof *w);
    if (!w) return vkm_fail(e, VKM_ERR_OUT_OF_HOST_MEMORY, "%s: out of memory", path ? path : "");
    vkm_status s = vkm_wfile_init(&w->w, path, e);
    if (s) {
        free(w);
        return s;
    }
    *out = w;
    return VKM_OK;
}

void vkm_st_writer_free(vkm_st_writer *w)
{
    if (!w) return;
    vkm_wfile_free(&w->w);
    for (uint32_t i = 0; i < 2 * w->n_meta; i++) free(w->meta[i]);
    free(w->meta);
    free(w);
}

vkm_status vkm_st_writer_set_meta(vkm_st_writer *w, const char *key, const char *value)
{
    vkm_status s = vkm_wfile_describing(&w->w);
    if (s || (s = vkm_wfile_check_name(&w->w, key, "metadata key"))) return s;
    if (!value || !vkm_utf8_valid(value, strlen(value)))
        return vkm_wfile_fail(&w->w, VKM_ERR_INVALID_ARGUMENT,
                              "%s: metadata '%s': the value must be valid UTF-8", w->w.path, key);
    for (uint32_t i = 0; i < w->n_meta; i++)
        if (!strcmp(w->meta[2 * i], key))
            return vkm_wfile_fail(&w->w, VKM_ERR_INVALID_ARGUMENT, "%s: duplicate metadata key '%s'",
                                  w->w.path, key);
    char **m = realloc(w->meta, 2 * (w->n_meta + 1) * sizeof *m);
    if (!m) return vkm_wfile_fail(&w->w, VKM_ERR_OUT_OF_HOST_MEMORY, "%s: out of memory", w->w.path);
    w->meta = m;
    m[2 * w->n_meta] = strdup(key);
    m[2 * w->n_meta + 1] = strdup(value);
    w->n_meta++;
    if (!m[2 * w->n_meta - 2] || !m[2 * w->n_meta - 1])
        return vkm_wfile_fail(&w->w, VKM_ERR_OUT_OF_HOST_MEMORY, "%s: out of memory", w->w.path);
    return VKM_OK;
}

vkm_status vkm_st_writer_add_tensor(vkm_st_writer *w, const char *name, vkm_dtype dtype,
                                    int n_dims, const int64_t *ne)
{
    if (!vkm_st_dtype_name(dtype))
        return vkm_wfile_fail(&w->w, VKM_ERR_UNSUPPORTED,
                              "%s: tensor '%s': safetensors cannot hold %s data", w->w.path,
                              name ? name : "", vkm_dtype_name(dtype));
    if (name && !strcmp(name, "__metadata__"))
        return vkm_wfile_fail(&w->w, VKM_ERR_INVALID_ARGUMENT, "%s: '__metadata__' is not a tensor name",
                              w->w.path);
    return vkm_wfile_add(&w->w, name, dtype, n_dims, ne);
}

/* ---- header ------------------------------------------------------------------------------- */
static void put_cstr(vkm_wbuf *b, const char *s) { vkm_wbuf_put(b, s, strlen(s)); }

/* A JSON string literal: quotes, backslashes and control characters escaped. */
static void put_json_str(vkm_wbuf *b, const char *s)
{
    vkm_wbuf_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            vkm_wbuf_put(b, esc, 2);
        } else if (*p < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            vkm_wbuf_put(b, esc, 6);
        } else {
            vkm_wbuf_put(b, p, 1);
        }
    }
    vkm_wbuf_put(b, "\"", 1);
}

static void put_u64(vkm_wbuf *b, uint64_t v)
{
    char num[24];
    snprintf(num, sizeof num, "%" PRIu64, v);
    put_cstr(b, num);
}

static void put_header(const vkm_st_writer *w, vkm_wbuf *b)
{
    put_cstr(b, "{");
    if (w->n_meta) {
        put_cstr(b, "\"__metadata__\":{");
        for (uint32_t i = 0; i < w->n_meta; i++) {
            if (i) put_cstr(b, ",");
            put_json_str(b, w->meta[2 * i]);
            put_cstr(b, ":");
            put_json_str(b, w->meta[2 * i + 1]);
        }
        put_cstr(b, "}");
    }
    for (uint32_t i = 0; i < w->w.n; i++) {
        const vkm_wtensor *t = &w->w.t[i];
        if (i || w->n_meta) put_cstr(b, ",");
        put_json_str(b, t->name);
        put_cstr(b, ":{\"dtype\":\"");
        put_cstr(b, vkm_st_dtype_name(t->dtype));
        put_cstr(b, "\",\"shape\":[");
        for (int d = t->n_dims - 1; d >= 0; d--) { /* outermost first */
            put_u64(b, (uint64_t)t->ne[d]);
            if (d) put_cstr(b, ",");
        }
        put_cstr(b, "],\"data_offsets\":[");
        put_u64(b, t->offset);
        put_cstr(b, ",");
        put_u64(b, t->offset + t->nbytes);
        put_cstr(b, "]}");
    }
    put_cstr(b, "}");
    while ((8 + b->n) % 8) put_cstr(b, " ");
}

vkm_status vkm_st_writer_begin(vkm_st_writer *w)
{
    vkm_status s = vkm_wfile_layout(&w->w, 1);
    if (s) return s;
    vkm_wbuf json = {0}, h = {0};
    put_header(w, &json);
    vkm_wbuf_u64(&h, json.n);
    vkm_wbuf_put(&h, json.p, json.n);
    if (json.oom || h.oom)
        s = vkm_wfile_fail(&w->w, VKM_ERR_OUT_OF_HOST_MEMORY, "%s: out of memory", w->w.path);
    else
        s = vkm_wfile_open(&w->w, h.p, h.n, h.n);
    vkm_wbuf_free(&json);
    vkm_wbuf_free(&h);
    return s;
}

vkm_status vkm_st_writer_write(vkm_st_writer *w, const void *data, uint64_t n)
{
    return vkm_wfile_write(&w->w, data, n);
}

vkm_status vkm_st_writer_write_tensor(vkm_st_writer *w, const char *name, const void *data,
                                      uint64_t nbytes)
{
    return vkm_wfile_write_tensor(&w->w, name, data, nbytes);
}

vkm_status vkm_st_writer_finish(vkm_st_writer *w) { return vkm_wfile_finish(&w->w); }
