/*
 * context.c — the public context: creation from params, error text, capabilities, validation
 * counters, and the copy-bandwidth probe that every roofline figure is measured against.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ops.h"

vkm_context_params vkm_context_default_params(void)
{
    vkm_context_params p;
    memset(&p, 0, sizeof p);
    p.sync_validation = true;
    return p;
}

vkm_status vkm_context_create(const vkm_context_params *params, vkm_context **out)
{
    if (!out) return VKM_ERR_INVALID_ARGUMENT;
    *out = NULL;
    vkm_context_params def = vkm_context_default_params();
    if (!params) params = &def;
    vkm_context *c = calloc(1, sizeof *c);
    if (!c) return VKM_ERR_OUT_OF_HOST_MEMORY;
    c->dev.err = &c->err;
    vkm_status s = vkm_dev_create(&c->dev, params);
    c->dev_ok = s == VKM_OK;
    *out = c;
    return s;
}

void vkm_context_destroy(vkm_context *ctx)
{
    if (!ctx) return;
    vkm_dev_destroy(&ctx->dev);
    free(ctx);
}

const char *vkm_context_errmsg(const vkm_context *ctx)
{
    return ctx ? ctx->err.msg : "no context";
}

const vkm_device_caps *vkm_context_caps(const vkm_context *ctx)
{
    return ctx && ctx->dev_ok ? &ctx->dev.caps : NULL;
}

uint64_t vkm_context_validation_count(const vkm_context *ctx)
{
    return ctx ? __atomic_load_n(&ctx->dev.validation_count, __ATOMIC_RELAXED) : 0;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

vkm_status vkm_context_copy_bandwidth(vkm_context *ctx, uint64_t bytes, double *gbps)
{
    if (!ctx || !ctx->dev_ok || !gbps) return VKM_ERR_INVALID_ARGUMENT;
    vkm_dev *d = &ctx->dev;
    vkm_err_clear(&ctx->err);
    if (!bytes) bytes = 256ull << 20;
    if (bytes < (64u << 10)) bytes = 64u << 10;
    if (bytes > d->caps.max_storage_range) bytes = d->caps.max_storage_range;
    if (d->caps.device_local_bytes && bytes > d->caps.device_local_bytes / 8)
        bytes = d->caps.device_local_bytes / 8;
    bytes &= ~(uint64_t)15;
    vkm_arena a;
    vkm_arena_init(&a, d, VKM_MEM_DEVICE, 2 * bytes + 4096);
    vkm_range src, dst;
    vkm_status s = vkm_arena_alloc(&a, bytes, 16, &src);
    if (s == VKM_OK) s = vkm_arena_alloc(&a, bytes, 16, &dst);
    vkm_rec rec;
    VkCommandBuffer cmd = VK_NULL_HANDLE;
    bool rec_ok = false;
    if (s == VKM_OK) s = vkm_rec_init(&rec, d, true);
    rec_ok = s == VKM_OK;
    if (s == VKM_OK) s = vkm_dev_alloc_cmd(d, &cmd);
    const int iters = 5;
    double best = 0;
    for (int pass = 0; pass < 2 && s == VKM_OK; pass++) { /* pass 0 warms up */
        s = vkm_rec_begin(&rec, cmd);
        if (s != VKM_OK) break;
        vkm_rec_fill(&rec, src, 0x3f800000u);
        vkm_rec_barrier(&rec);
        vkm_rec_timestamp(&rec, "start");
        for (int i = 0; i < iters; i++) {
            vkm_op_copy(&rec, i & 1 ? dst : src, i & 1 ? src : dst, bytes);
            vkm_rec_timestamp(&rec, "copy");
        }
        s = vkm_rec_end(&rec);
        double t0 = now_ns();
        if (s == VKM_OK) s = vkm_dev_submit_wait(d, cmd);
        double wall = now_ns() - t0;
        if (s != VKM_OK || pass == 0) continue;
        double ns[VKM_MAX_TIMESTAMPS], total = 0;
        if (vkm_rec_read_timestamps(&rec, ns, VKM_MAX_TIMESTAMPS) == VKM_OK) {
            double fastest = 0;
            for (int i = 0; i < iters; i++) {
                total += ns[i];
                if (fastest == 0 || ns[i] < fastest) fastest = ns[i];
            }
            best = 2.0 * (double)bytes / fastest;
        } else {
            best = 2.0 * (double)bytes * iters / wall;
        }
    }
    if (cmd) vkFreeCommandBuffers(d->device, d->cmd_pool, 1, &cmd);
    if (rec_ok) vkm_rec_destroy(&rec);
    vkm_arena_destroy(&a);
    *gbps = best;
    return s;
}
