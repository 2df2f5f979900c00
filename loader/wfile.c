/*
 * wfile.c — what the GGUF and safetensors writers share: the tensor list and its layout, the
 * temporary file receiving the header and the streamed data (with padding between tensors), the
 * sticky error, and the rename that publishes the file only when it is complete.
 */
#define _GNU_SOURCE /* O_TMPFILE, O_DIRECT */
#include "wfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wqueue.h"

/* ---- byte buffer -------------------------------------------------------------------------- */
void vkm_wbuf_put(vkm_wbuf *b, const void *data, uint64_t n)
{
    if (b->oom) return;
    if (n > b->cap - b->n) {
        uint64_t cap = b->cap ? b->cap : 256;
        while (cap - b->n < n) {
            if (cap > UINT64_MAX / 2) {
                b->oom = true;
                return;
            }
            cap *= 2;
        }
        uint8_t *p = realloc(b->p, (size_t)cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, data, (size_t)n);
    b->n += n;
}

void vkm_wbuf_u32(vkm_wbuf *b, uint32_t v)
{
    uint8_t q[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    vkm_wbuf_put(b, q, 4);
}

void vkm_wbuf_u64(vkm_wbuf *b, uint64_t v)
{
    vkm_wbuf_u32(b, (uint32_t)v);
    vkm_wbuf_u32(b, (uint32_t)(v >> 32));
}

void vkm_wbuf_free(vkm_wbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* ---- state and errors --------------------------------------------------------------------- */
vkm_status vkm_wfile_init(vkm_wfile *w, const char *path, vkm_err *e)
{
    memset(w, 0, sizeof *w);
    w->fd = -1;
    w->e = e;
    vkm_err_clear(e);
    int n = snprintf(w->path, sizeof w->path, "%s", path ? path : "");
    if (!path || !path[0] || n < 0 || (size_t)n >= sizeof w->path)
        return vkm_wfile_fail(w, VKM_ERR_INVALID_ARGUMENT, "writer: bad output path");
    snprintf(w->tmp, sizeof w->tmp, "%s" VKM_TMP_SUFFIX, w->path, (long)getpid());
    return VKM_OK;
}

vkm_status vkm_wfile_fail(vkm_wfile *w, vkm_status s, const char *fmt, ...)
{
    if (w->status) return w->status;
    w->status = s;
    if (w->e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(w->e->msg, sizeof w->e->msg, fmt, ap);
        va_end(ap);
        w->e->status = s;
    }
    return s;
}

vkm_status vkm_wfile_describing(vkm_wfile *w)
{
    if (w->status) return w->status;
    if (w->begun)
        return vkm_wfile_fail(w, VKM_ERR_STATE, "%s: metadata and tensors must be added before begin",
                              w->path);
    return VKM_OK;
}

vkm_status vkm_wfile_check_name(vkm_wfile *w, const char *name, const char *what)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n >= VKM_MAX_NAME || !vkm_utf8_valid(name, n))
        return vkm_wfile_fail(w, VKM_ERR_INVALID_ARGUMENT,
                              "%s: %s '%.64s' must be non-empty valid UTF-8 shorter than %d bytes",
                              w->path, what, name ? name : "", VKM_MAX_NAME);
    return VKM_OK;
}

/* ---- description and layout ------------------------------------------------------------- */
vkm_status vkm_wfile_add(vkm_wfile *w, const char *name, vkm_dtype dtype, int n_dims,
                         const int64_t *ne)
{
    vkm_status s = vkm_wfile_describing(w);
    if (s || (s = vkm_wfile_check_name(w, name, "tensor name"))) return s;
    const vkm_dtype_traits *tr = vkm_dtype_info(dtype);
    if (!tr) return vkm_wfile_fail(w, VKM_ERR_INVALID_ARGUMENT, "%s: tensor '%s': bad dtype", w->path, name);
    if (n_dims < 0 || n_dims > VKM_MAX_DIMS)
        return vkm_wfile_fail(w, VKM_ERR_INVALID_ARGUMENT, "%s: tensor '%s': %d dimensions", w->path,
                              name, n_dims);
    if (w->n >= VKM_MAX_TENSORS)
        return vkm_wfile_fail(w, VKM_ERR_LIMIT, "%s: more than %u tensors", w->path, VKM_MAX_TENSORS);
    vkm_wtensor t = {.dtype = dtype, .n_dims = n_dims, .ne = {1, 1, 1, 1}};
    snprintf(t.name, sizeof t.name, "%s", name);
    uint64_t nelem = 1;
    for (int d = 0; d < n_dims; d++) {
        if (ne[d] < 0 || !vkm_mul_ok(nelem, (uint64_t)ne[d], &nelem) || nelem > (uint64_t)INT64_MAX)
            return vkm_wfile_fail(w, VKM_ERR_INVALID_ARGUMENT, "%s: tensor '%s': bad shape", w->path, name);
        t.ne[d] = ne[d];
    }
    if (t.ne[0] % tr->block || !vkm_dtype_bytes(dtype, nelem, &t.nbytes))
        return vkm_wfile_fail(w, VKM_ERR_INVALID_ARGUMENT,
                              "%s: tensor '%s': ne0 %lld is not a whole number of %s blocks", w->path,
                              name, (long long)t.ne[0], tr->name);
    if (w->n == w->cap) {
        uint32_t cap = w->cap ? 2 * w->cap : 64;
        vkm_wtensor *p = realloc(w->t, cap * sizeof *p);
        if (!p) return vkm_wfile_fail(w, VKM_ERR_OUT_OF_HOST_MEMORY, "%s: out of memory", w->path);
        w->t = p;
        w->cap = cap;
    }
    w->t[w->n++] = t;
    return VKM_OK;
}

static int wt_cmp(const void *a, const void *b)
{
    return strcmp((*(const vkm_wtensor *const *)a)->name, (*(const vkm_wtensor *const *)b)->name);
}

vkm_status vkm_wfile_layout(vkm_wfile *w, uint32_t align)
{
    vkm_status s = vkm_wfile_describing(w);
    if (s) return s;
    const vkm_wtensor **idx = malloc((w->n ? w->n : 1) * sizeof *idx);
    if (!idx) return vkm_wfile_fail(w, VKM_ERR_OUT_OF_HOST_MEMORY, "%s: out of memory", w->path);
    for (uint32_t i = 0; i < w->n; i++) idx[i] = &w->t[i];
    qsort(idx, w->n, sizeof *idx, wt_cmp);
    for (uint32_t i = 1; i < w->n && !s; i++)
        if (!strcmp(idx[i - 1]->name, idx[i]->name))
            s = vkm_wfile_fail(w, VKM_ERR_INVALID_ARGUMENT, "%s: duplicate tensor name '%s'", w->path,
                               idx[i]->name);
    free(idx);
    if (s) return s;
    w->align = align;
    uint64_t off = 0;
    for (uint32_t i = 0; i < w->n; i++) {
        off = vkm_align_up(off, align);
        w->t[i].offset = off;
        if (!vkm_add_ok(off, w->t[i].nbytes, &off) || off > (uint64_t)INT64_MAX)
            return vkm_wfile_fail(w, VKM_ERR_LIMIT, "%s: the tensors add up to too many bytes", w->path);
    }
    return VKM_OK;
}

/* ---- the file ----------------------------------------------------------------------------- */
static vkm_status put(vkm_wfile *w, const void *data, uint64_t n)
{
    int err = n ? vkm_wq_put(w->q, data, n) : 0;
    if (err) return vkm_wfile_fail(w, VKM_ERR_IO, "%s: write failed: %s", w->tmp, strerror(err));
    return VKM_OK;
}

static vkm_status pad(vkm_wfile *w, uint64_t n)
{
    static const uint8_t zeros[64];
    vkm_status s = VKM_OK;
    while (n && !s) {
        uint64_t k = n < sizeof zeros ? n : sizeof zeros;
        s = put(w, zeros, k);
        n -= k;
    }
    return s;
}

vkm_status vkm_wfile_open(vkm_wfile *w, const void *header, uint64_t n, uint64_t data_start)
{
    vkm_status s = vkm_wfile_describing(w);
    if (s) return s;
    char dir[1024];
    vkm_path_dir(dir, sizeof dir, w->path);
    /* direct I/O where the file system takes it (not tmpfs), else ordinary writes */
    bool direct = true;
    int fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC | O_DIRECT, 0666);
    if (fd < 0) {
        direct = false;
        fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
    }
    w->unnamed = fd >= 0;
    if (fd < 0) { /* no O_TMPFILE here: a named temporary file, created anew (never a file someone
                   * else has open: one of this name, with this process's id, is a dead process's
                   * leftover), then put in direct mode (an O_DIRECT refused at open may create
                   * the file anyway) */
        fd = open(w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno == EEXIST && unlink(w->tmp) == 0)
            fd = open(w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        const int fl = fd >= 0 ? fcntl(fd, F_GETFL) : -1;
        direct = fl >= 0 && fcntl(fd, F_SETFL, fl | O_DIRECT) == 0;
    }
    if (fd < 0) return vkm_wfile_fail(w, VKM_ERR_IO, "%s: cannot create: %s", w->tmp, strerror(errno));
    w->fd = fd;
    w->begun = true; /* from here on, vkm_wfile_free removes a named temporary file */
    int err = vkm_wq_create(fd, direct, &w->q);
    if (err) return vkm_wfile_fail(w, VKM_ERR_IO, "%s: cannot start the writer: %s", w->tmp, strerror(err));
    w->data_start = data_start;
    if ((s = put(w, header, n))) return s;
    return pad(w, data_start - n);
}

/* Moves cur past the tensors whose data is complete (empty tensors are complete at once). */
static void skip_done(vkm_wfile *w)
{
    while (w->cur < w->n &&
           (w->t[w->cur].nbytes == 0 || w->pos >= w->t[w->cur].offset + w->t[w->cur].nbytes))
        w->cur++;
}

static vkm_status streaming(vkm_wfile *w)
{
    if (w->status) return w->status;
    if (!w->begun || w->finished)
        return vkm_wfile_fail(w, VKM_ERR_STATE, "%s: tensor data is written between begin and finish",
                              w->path);
    return VKM_OK;
}

vkm_status vkm_wfile_write(vkm_wfile *w, const void *data, uint64_t n)
{
    vkm_status s = streaming(w);
    const uint8_t *p = data;
    while (!s) {
        skip_done(w);
        if (n == 0) break;
        if (w->cur == w->n)
            return vkm_wfile_fail(w, VKM_ERR_INVALID_ARGUMENT,
                                  "%s: %llu bytes of data beyond the last tensor", w->path,
                                  (unsigned long long)n);
        const vkm_wtensor *t = &w->t[w->cur];
        if (w->pos < t->offset) {
            s = pad(w, t->offset - w->pos);
            w->pos = t->offset;
        }
        uint64_t room = t->offset + t->nbytes - w->pos, k = n < room ? n : room;
        if (!s) s = put(w, p, k);
        w->pos += k;
        p += k;
        n -= k;
    }
    return s;
}

vkm_status vkm_wfile_write_tensor(vkm_wfile *w, const char *name, const void *data,
                                  uint64_t nbytes)
{
    vkm_status s = streaming(w);
    if (s) return s;
    skip_done(w);
    if (nbytes == 0) {
        for (uint32_t i = 0; i < w->n; i++)
            if (!strcmp(w->t[i].name, name) && w->t[i].nbytes == 0) return VKM_OK;
    }
    if (w->cur == w->n || strcmp(w->t[w->cur].name, name) || w->pos > w->t[w->cur].offset)
        return vkm_wfile_fail(w, VKM_ERR_STATE, "%s: tensor '%s' written out of order (next is '%s')",
                              w->path, name, w->cur < w->n ? w->t[w->cur].name : "none");
    if (nbytes != w->t[w->cur].nbytes)
        return vkm_wfile_fail(w, VKM_ERR_INVALID_ARGUMENT, "%s: tensor '%s' has %llu bytes, not %llu",
                              w->path, name, (unsigned long long)w->t[w->cur].nbytes,
                              (unsigned long long)nbytes);
    return vkm_wfile_write(w, data, nbytes);
}

vkm_status vkm_wfile_finish(vkm_wfile *w)
{
    vkm_status s = streaming(w);
    if (s) return s;
    skip_done(w);
    if (w->cur < w->n)
        return vkm_wfile_fail(w, VKM_ERR_STATE, "%s: tensor '%s' is missing %llu bytes of data", w->path,
                              w->t[w->cur].name,
                              (unsigned long long)(w->t[w->cur].offset + w->t[w->cur].nbytes -
                                                   (w->pos > w->t[w->cur].offset ? w->pos : w->t[w->cur].offset)));
    int err = vkm_wq_finish(w->q);
    if (!err && fsync(w->fd) != 0) err = errno;
    if (!err && w->unnamed) { /* named (linkat cannot replace an existing file), then renamed */
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", w->fd);
        unlink(w->tmp); /* a dead process's leftover of this name, if any */
        if (linkat(AT_FDCWD, proc, AT_FDCWD, w->tmp, AT_SYMLINK_FOLLOW) != 0) err = errno;
        else w->unnamed = false;
    }
    vkm_wq_destroy(w->q);
    w->q = NULL;
    if (close(w->fd) != 0 && !err) err = errno;
    w->fd = -1;
    if (err) return vkm_wfile_fail(w, VKM_ERR_IO, "%s: write failed: %s", w->tmp, strerror(err));
    if (rename(w->tmp, w->path) != 0)
        return vkm_wfile_fail(w, VKM_ERR_IO, "%s: cannot rename to %s: %s", w->tmp, w->path,
                              strerror(errno));
    w->finished = true;
    return VKM_OK;
}

void vkm_wfile_free(vkm_wfile *w)
{
    vkm_wq_destroy(w->q);
    w->q = NULL;
    if (w->fd >= 0) close(w->fd);
    w->fd = -1;
    if (w->begun && !w->finished && !w->unnamed) unlink(w->tmp);
    free(w->t);
    w->t = NULL;
    w->n = w->cap = 0;
}
