/*
 * wfile.h — internal to the writers: the part GGUF and safetensors writing share. A list of
 * tensors with their data layout, a temporary file that receives the header and then the data
 * streamed in tensor order (through a writer thread, direct I/O where the file system has it:
 * wqueue.h), a sticky error, and the final rename.
 */
#ifndef VKM_WFILE_H
#define VKM_WFILE_H

#include <stdio.h>

#include "loader.h"

typedef struct vkm_wtensor {
    char name[VKM_MAX_NAME];
    vkm_dtype dtype;
    int n_dims;
    int64_t ne[VKM_MAX_DIMS]; /* GGUF order */
    uint64_t nbytes;
    uint64_t offset;          /* inside the data section, set by vkm_wfile_layout */
} vkm_wtensor;

typedef struct vkm_wfile {
    char path[1024], tmp[1064]; /* tmp: path + VKM_TMP_SUFFIX */
    int fd;                   /* -1: not open                                                  */
    struct vkm_wqueue *q;     /* the writer thread (wqueue.h)                                  */
    bool unnamed;             /* an O_TMPFILE file: it gets a name only when complete          */
    vkm_err *e;
    vkm_status status;        /* sticky: the first failure                                    */
    vkm_wtensor *t;
    uint32_t n, cap;
    bool begun, finished;
    uint32_t align;           /* data alignment between tensors (1: none)                     */
    uint64_t data_start;      /* file offset of the data section                              */
    uint64_t pos;             /* bytes written into the data section so far                  */
    uint32_t cur;             /* the tensor receiving data                                    */
} vkm_wfile;

vkm_status vkm_wfile_init(vkm_wfile *w, const char *path, vkm_err *e);
/* Records a failure (if none yet) and returns the sticky status. */
vkm_status vkm_wfile_fail(vkm_wfile *w, vkm_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* VKM_ERR_STATE unless the writer is still being described (not begun, no failure). */
vkm_status vkm_wfile_describing(vkm_wfile *w);
/* A non-empty, valid UTF-8 name shorter than VKM_MAX_NAME ("key" or "tensor name" in what). */
vkm_status vkm_wfile_check_name(vkm_wfile *w, const char *name, const char *what);
vkm_status vkm_wfile_add(vkm_wfile *w, const char *name, vkm_dtype dtype, int n_dims,
                         const int64_t *ne);
/* Refuses duplicate names and sets every offset, each a multiple of align. */
vkm_status vkm_wfile_layout(vkm_wfile *w, uint32_t align);
/* Opens the temporary file and writes the header, padded with zeros to data_start. Where the
 * file system allows, the file is unnamed (O_TMPFILE) until finish links it: a process killed
 * midway leaves nothing behind; elsewhere it is "<path>.tmp", removed by vkm_wfile_free. */
vkm_status vkm_wfile_open(vkm_wfile *w, const void *header, uint64_t n, uint64_t data_start);
vkm_status vkm_wfile_write(vkm_wfile *w, const void *data, uint64_t n);
vkm_status vkm_wfile_write_tensor(vkm_wfile *w, const char *name, const void *data,
                                  uint64_t nbytes);
vkm_status vkm_wfile_finish(vkm_wfile *w);
void vkm_wfile_free(vkm_wfile *w);

/* A growable byte buffer for headers. */
typedef struct vkm_wbuf {
    uint8_t *p;
    uint64_t n, cap;
    bool oom;
} vkm_wbuf;
void vkm_wbuf_put(vkm_wbuf *b, const void *data, uint64_t n);
void vkm_wbuf_u32(vkm_wbuf *b, uint32_t v);
void vkm_wbuf_u64(vkm_wbuf *b, uint64_t v);
void vkm_wbuf_free(vkm_wbuf *b);

#endif /* VKM_WFILE_H */
