/*
 * wqueue.h — internal to the writers (wfile.c): a file written front to back through a writer
 * thread. The caller's bytes are copied into a few block-aligned buffers; the thread writes each
 * full buffer at its offset while the caller goes on (merging, converting). With O_DIRECT the
 * data goes from those buffers to the disk without passing through the page cache: no copy into
 * it, no dirty pages to flush at the end; a file system that refuses direct writes of these
 * blocks gets ordinary ones. Errors (an errno) are sticky and reported by the next call.
 */
#ifndef VKM_WQUEUE_H
#define VKM_WQUEUE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct vkm_wqueue vkm_wqueue;

/* fd: open for writing, empty; direct: it was opened with O_DIRECT. 0 or an errno. */
int vkm_wq_create(int fd, bool direct, vkm_wqueue **out);
/* Appends n bytes (waits while every buffer is queued). 0 or the first errno. */
int vkm_wq_put(vkm_wqueue *q, const void *data, uint64_t n);
/* Writes what is left, waits for the thread and sets the file's exact size. 0 or an errno. */
int vkm_wq_finish(vkm_wqueue *q);
/* Bytes appended so far. */
uint64_t vkm_wq_size(const vkm_wqueue *q);
/* Stops the thread (bytes not yet written are dropped) and frees; the fd stays open. */
void vkm_wq_destroy(vkm_wqueue *q);

#endif /* VKM_WQUEUE_H */
