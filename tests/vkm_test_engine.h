/*
 * vkm_test_engine.h — helpers for tests that drive the engine's internals directly: a device
 * arena, a recorder with one command buffer, and upload/download of float arrays.
 */
#ifndef VKM_TEST_ENGINE_H
#define VKM_TEST_ENGINE_H

#include "internal.h"
#include "ops.h"
#include "vkm_test.h"

typedef struct test_gpu {
    vkm_context *ctx;
    vkm_dev *d;
    vkm_arena arena;
    vkm_rec rec;
    VkCommandBuffer cmd;
} test_gpu;

static inline void test_gpu_init(test_gpu *g, vkm_context *ctx)
{
    g->ctx = ctx;
    g->d = &ctx->dev;
    vkm_arena_init(&g->arena, g->d, VKM_MEM_DEVICE, 64ull << 20);
    assert_int_equal(vkm_rec_init(&g->rec, g->d, true), VKM_OK);
    assert_int_equal(vkm_dev_alloc_cmd(g->d, &g->cmd), VKM_OK);
}

static inline void test_gpu_done(test_gpu *g)
{
    vkFreeCommandBuffers(g->d->device, g->d->cmd_pool, 1, &g->cmd);
    vkm_rec_destroy(&g->rec);
    vkm_arena_destroy(&g->arena);
}

static inline void test_gpu_check(test_gpu *g, vkm_status s)
{
    if (s != VKM_OK) fail_msg("%s: %s", vkm_status_str(s), vkm_context_errmsg(g->ctx));
}

/* A device range holding n floats (uploaded from src when not NULL). */
static inline vkm_range test_gpu_floats(test_gpu *g, const float *src, size_t n)
{
    vkm_range r;
    test_gpu_check(g, vkm_arena_alloc(&g->arena, n * 4, 16, &r));
    if (src) test_gpu_check(g, vkm_upload(g->d, r, src, n * 4));
    return r;
}

static inline void test_gpu_read(test_gpu *g, vkm_range r, float *dst, size_t n)
{
    test_gpu_check(g, vkm_download(g->d, r, dst, n * 4));
}

static inline vkm_rec *test_gpu_begin(test_gpu *g)
{
    test_gpu_check(g, vkm_rec_begin(&g->rec, g->cmd));
    return &g->rec;
}

static inline void test_gpu_run(test_gpu *g)
{
    test_gpu_check(g, vkm_rec_end(&g->rec));
    test_gpu_check(g, vkm_dev_submit_wait(g->d, g->cmd));
}

/* The weights the device really holds: f16 rounding or q8_0/q4_0 quantization of each row. */
static inline void test_device_weights(vkm_dtype dt, const float *w, uint32_t rows, uint32_t cols, float *out)
{
    uint8_t *blk = test_alloc((size_t)cols * 2 + 64);
    for (uint32_t r = 0; r < rows; r++) {
        const float *src = w + (size_t)r * cols;
        float *dst = out + (size_t)r * cols;
        if (dt == VKM_F16) {
            for (uint32_t c = 0; c < cols; c++) dst[c] = vkm_f16_to_f32(vkm_f32_to_f16(src[c]));
        } else if (dt == VKM_Q8_0 || dt == VKM_Q4_0) {
            if (dt == VKM_Q8_0) vkm_quantize_q8_0(src, cols, blk);
            else vkm_quantize_q4_0(src, cols, blk);
            assert_int_equal(vkm_to_f32(dt, blk, cols, dst), VKM_OK);
        } else {
            memcpy(dst, src, (size_t)cols * 4);
        }
    }
    free(blk);
}

#endif
