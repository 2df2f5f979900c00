/*
 * test_sync.c — synchronization validation is really on: a read-after-write recorded without
 * a barrier is reported as a hazard, and the same recording through the recorder's tracking
 * comes back clean (with exactly the barriers the data flow needs).
 */
#include "vkm_test_engine.h"

/* b = a + a; c = b * a (reads b: needs a barrier); d = a * a (independent: needs none). */
static void record_chain(test_gpu *g, vkm_range a, vkm_range b, vkm_range c, vkm_range d, uint32_t n)
{
    vkm_rec *r = test_gpu_begin(g);
    vkm_act A = {a, 0, n}, B = {b, 0, n}, C = {c, 0, n}, D = {d, 0, n};
    vkm_op_eltwise(r, VKM_ELT_ADD, A, A, B, n);
    vkm_op_eltwise(r, VKM_ELT_MUL, B, A, C, n);
    vkm_op_eltwise(r, VKM_ELT_MUL, A, A, D, n);
    test_gpu_run(g);
}

static void test_hazard_reported_without_barrier(void **state)
{
    (void)state;
    const uint32_t n = 4096;
    float *a = test_alloc(n * 4), *c = test_alloc(n * 4);
    for (uint32_t i = 0; i < n; i++) a[i] = (float)(i % 13);

    /* 1: without tracking the validation layer must report the read-after-write hazard */
    vkm_context *ctx = test_context();
    test_gpu g;
    test_gpu_init(&g, ctx);
    vkm_range ar = test_gpu_floats(&g, a, n), br = test_gpu_floats(&g, NULL, n);
    vkm_range cr = test_gpu_floats(&g, NULL, n), dr = test_gpu_floats(&g, NULL, n);
    uint64_t before = vkm_context_validation_count(ctx);
    g.rec.track = false;
    record_chain(&g, ar, br, cr, dr, n);
    assert_int_equal(g.rec.n_barriers, 0);
    uint64_t hazards = vkm_context_validation_count(ctx) - before;
    printf("without barriers: %llu validation message(s) (expected >= 1)\n", (unsigned long long)hazards);
    assert_true(hazards >= 1);
    test_gpu_done(&g);
    vkm_context_destroy(ctx); /* its messages were the point */

    /* 2: the recorder's tracking inserts the one barrier needed and validation stays silent */
    ctx = test_context();
    test_gpu_init(&g, ctx);
    ar = test_gpu_floats(&g, a, n);
    br = test_gpu_floats(&g, NULL, n);
    cr = test_gpu_floats(&g, NULL, n);
    dr = test_gpu_floats(&g, NULL, n);
    record_chain(&g, ar, br, cr, dr, n);
    assert_int_equal(g.rec.n_barriers, 1);
    test_gpu_read(&g, cr, c, n);
    for (uint32_t i = 0; i < n; i++) assert_true(c[i] == (a[i] + a[i]) * a[i]);
    test_gpu_done(&g);
    test_context_done(ctx);
    free(a);
    free(c);
}

/* Write-after-read: overwriting an input that an earlier dispatch still reads needs a barrier. */
static void test_write_after_read_tracked(void **state)
{
    (void)state;
    const uint32_t n = 1024;
    vkm_context *ctx = test_context();
    test_gpu g;
    test_gpu_init(&g, ctx);
    float *a = test_alloc(n * 4);
    for (uint32_t i = 0; i < n; i++) a[i] = (float)i;
    vkm_range ar = test_gpu_floats(&g, a, n), br = test_gpu_floats(&g, NULL, n);
    vkm_act A = {ar, 0, n}, B = {br, 0, n};
    vkm_rec *r = test_gpu_begin(&g);
    vkm_op_eltwise(r, VKM_ELT_ADD, A, A, B, n); /* reads a */
    vkm_op_eltwise(r, VKM_ELT_MUL, B, B, A, n); /* writes a: WAR on a, RAW on b */
    test_gpu_run(&g);
    assert_int_equal(g.rec.n_barriers, 1);
    test_gpu_read(&g, ar, a, n);
    for (uint32_t i = 0; i < n; i++) assert_true(a[i] == 4.0f * i * i);
    free(a);
    test_gpu_done(&g);
    test_context_done(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hazard_reported_without_barrier),
        cmocka_unit_test(test_write_after_read_tracked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
