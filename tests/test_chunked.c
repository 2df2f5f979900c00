/*
 * test_chunked.c — a matrix-vector product whose weight matrix is larger than 128 MiB (the
 * storage-buffer range of lavapipe and of many mobile drivers): the tensor is split into row
 * chunks, each bound and dispatched on its own, and the result equals the reference.
 */
#include "ref_kernels.h"
#include "vkm_test_engine.h"

static void test_matvec_over_128mib(void **state)
{
    (void)state;
    const uint32_t rows = 8200, cols = 4096; /* 134,348,800 bytes of f32 > 128 MiB */
    vkm_context *ctx = test_context();
    test_gpu g;
    test_gpu_init(&g, ctx);
    test_rng rng = {2024};
    float *w = test_alloc((size_t)rows * cols * 4), *x = test_alloc(cols * 4);
    float *y = test_alloc(rows * 4), *ref = test_alloc(rows * 4);
    test_fill(&rng, w, (size_t)rows * cols, 0.1f);
    test_fill(&rng, x, cols, 1.0f);
    vkm_arena big;
    vkm_arena_init(&big, g.d, VKM_MEM_DEVICE, 0);
    vkm_tensor wt;
    test_gpu_check(&g, vkm_tensor_alloc(&big, VKM_F32, rows, cols, 0, &wt));
    printf("%u x %u f32 = %llu bytes in %u chunks (storage range %llu)\n", rows, cols,
           (unsigned long long)wt.bytes, wt.n_chunks, (unsigned long long)g.d->caps.max_storage_range);
    assert_true(wt.bytes > g.d->caps.max_storage_range || g.d->caps.max_storage_range > (128u << 20));
    if (g.d->caps.max_storage_range <= (128u << 20)) assert_true(wt.n_chunks >= 2);
    for (uint32_t c = 0; c < wt.n_chunks; c++) assert_true(wt.chunks[c].r.size <= g.d->caps.max_storage_range);
    test_gpu_check(&g, vkm_tensor_upload(g.d, &wt, VKM_F32, w, NULL));
    vkm_range xr = test_gpu_floats(&g, x, cols), yr = test_gpu_floats(&g, NULL, rows);
    vkm_rec *r = test_gpu_begin(&g);
    vkm_op_matvec(r, &wt, (vkm_act){xr, 0, cols}, (vkm_act){yr, 0, rows}, 1, false);
    test_gpu_run(&g);
    test_gpu_read(&g, yr, y, rows);
    ref_matvec(w, rows, cols, x, 1, ref, 0);
    double e = test_nmse(y, ref, rows);
    printf("nmse %.3g\n", e);
    assert_true(e < 1e-10);
    vkm_arena_destroy(&big);
    free(w); free(x); free(y); free(ref);
    test_gpu_done(&g);
    test_context_done(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_matvec_over_128mib)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
