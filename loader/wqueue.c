/*
 * wqueue.c — sequential file output through a writer thread (see wqueue.h). NBUF buffers of BUF
 * bytes, aligned to ALIGN (a multiple of every logical block size in use), are filled in turn by
 * the caller and written in the same turn by the thread, so the file comes out in order. The
 * last buffer is zero-padded to ALIGN for a direct write and the file truncated to its size.
 */
#define _GNU_SOURCE /* O_DIRECT */
#include "wqueue.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BUF (8u << 20)
#define NBUF 4u
#define ALIGN 4096u

enum { FREE, FILLING, QUEUED };

struct vkm_wqueue {
    int fd;
    bool direct;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint8_t *buf[NBUF];
    uint64_t len[NBUF], off[NBUF];
    int state[NBUF];
    uint32_t cur;                    /* the buffer the caller fills                          */
    uint32_t head;                   /* the next buffer the thread writes                    */
    uint64_t used;                   /* bytes in buf[cur]                                    */
    uint64_t pos;                    /* file offset of buf[cur]                              */
    _Atomic int err;                 /* sticky errno (the thread's or the caller's)          */
    bool stop;
};

/* All of p at off; a direct write the file system refuses is retried as an ordinary one. */
static int write_at(vkm_wqueue *q, const uint8_t *p, uint64_t n, uint64_t off)
{
    while (n) {
        ssize_t k = pwrite(q->fd, p, n, (off_t)off);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0 && errno == EINVAL && q->direct) {
            int fl = fcntl(q->fd, F_GETFL);
            if (fl < 0 || fcntl(q->fd, F_SETFL, fl & ~O_DIRECT) < 0) return errno;
            q->direct = false;
            continue;
        }
        if (k <= 0) return k < 0 ? errno : EIO;
        p += k;
        n -= (uint64_t)k;
        off += (uint64_t)k;
    }
    return 0;
}

static void *writer(void *arg)
{
    vkm_wqueue *q = arg;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->stop && q->state[q->head] != QUEUED) pthread_cond_wait(&q->cv, &q->mu);
        if (q->stop) break;
        const uint32_t i = q->head;
        const int failed = q->err;
        pthread_mutex_unlock(&q->mu);
        int e = failed ? 0 : write_at(q, q->buf[i], q->len[i], q->off[i]);
        pthread_mutex_lock(&q->mu);
        if (e && !q->err) q->err = e;
        q->state[i] = FREE;
        q->head = (i + 1) % NBUF;
        pthread_cond_broadcast(&q->cv);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

int vkm_wq_create(int fd, bool direct, vkm_wqueue **out)
{
    *out = NULL;
    vkm_wqueue *q = calloc(1, sizeof *q);
    if (!q) return ENOMEM;
    q->fd = fd;
    q->direct = direct;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    int e = pthread_create(&q->th, NULL, writer, q);
    if (e) {
        pthread_cond_destroy(&q->cv);
        pthread_mutex_destroy(&q->mu);
        free(q);
        return e;
    }
    q->state[0] = FILLING;
    *out = q;
    return 0;
}

/* Queues buf[cur] (len bytes) and waits for the next buffer to be free. */
static int rotate(vkm_wqueue *q, uint64_t len)
{
    pthread_mutex_lock(&q->mu);
    q->len[q->cur] = len;
    q->off[q->cur] = q->pos;
    q->state[q->cur] = QUEUED;
    pthread_cond_broadcast(&q->cv);
    q->pos += q->used;
    q->used = 0;
    q->cur = (q->cur + 1) % NBUF;
    while (q->state[q->cur] != FREE) pthread_cond_wait(&q->cv, &q->mu);
    q->state[q->cur] = FILLING;
    int e = q->err;
    pthread_mutex_unlock(&q->mu);
    return e;
}

int vkm_wq_put(vkm_wqueue *q, const void *data, uint64_t n)
{
    const uint8_t *p = data;
    while (n) {
        if (q->err) return q->err;
        if (!q->buf[q->cur]) {
            void *b = NULL;
            if (posix_memalign(&b, ALIGN, BUF)) {
                q->err = ENOMEM;
                return ENOMEM;
            }
            q->buf[q->cur] = b;
        }
        uint64_t k = BUF - q->used < n ? BUF - q->used : n;
        memcpy(q->buf[q->cur] + q->used, p, (size_t)k);
        q->used += k;
        p += k;
        n -= k;
        if (q->used == BUF) {
            int e = rotate(q, BUF);
            if (e) return e;
        }
    }
    return q->err;
}

uint64_t vkm_wq_size(const vkm_wqueue *q) { return q->pos + q->used; }

int vkm_wq_finish(vkm_wqueue *q)
{
    const uint64_t size = q->pos + q->used;
    if (q->used && !q->err) { /* the tail, padded to a whole block */
        uint64_t len = (q->used + ALIGN - 1) / ALIGN * ALIGN;
        memset(q->buf[q->cur] + q->used, 0, (size_t)(len - q->used));
        rotate(q, len);
    }
    pthread_mutex_lock(&q->mu);
    for (uint32_t i = 0; i < NBUF; i++)
        while (q->state[i] == QUEUED) pthread_cond_wait(&q->cv, &q->mu);
    int e = q->err;
    pthread_mutex_unlock(&q->mu);
    if (!e && ftruncate(q->fd, (off_t)size) != 0) {
        e = errno;
        q->err = e;
    }
    return e;
}

void vkm_wq_destroy(vkm_wqueue *q)
{
    if (!q) return;
    pthread_mutex_lock(&q->mu);
    q->stop = true;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    pthread_join(q->th, NULL);
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
    for (uint32_t i = 0; i < NBUF; i++) free(q->buf[i]);
    free(q);
}
