/*
 * vkm_test.h — what the engine tests share: a context on the test device with the validation
 * layer (and synchronization validation) on, whose messages are printed and counted so a test
 * can fail on any; fixed-seed random numbers; error measures (NMSE, max-abs).
 */
#ifndef VKM_TEST_H
#define VKM_TEST_H

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vkmoe.h"

static uint64_t test_validation_msgs;

static void test_log(void *user, vkm_log_level level, const char *msg)
{
    (void)user;
    if (level >= VKM_LOG_WARN) {
        test_validation_msgs++;
        fprintf(stderr, "[validation] %s\n", msg);
    }
}

/* A context with validation on; fails the test if it cannot be created. VKMOE_DEVICE picks
 * the device (default: the best one; CI has only lavapipe). */
static inline vkm_context *test_context_with(vkm_context_params p)
{
    p.validation = true;
    p.sync_validation = true;
    p.log = test_log;
    if (!p.device) p.device = getenv("VKMOE_DEVICE");
    vkm_context *ctx = NULL;
    vkm_status s = vkm_context_create(&p, &ctx);
    if (s != VKM_OK) {
        fprintf(stderr, "context: %s\n", ctx ? vkm_context_errmsg(ctx) : vkm_status_str(s));
        vkm_context_destroy(ctx);
        fail_msg("cannot create a Vulkan context with validation");
    }
    return ctx;
}

static inline vkm_context *test_context(void)
{
    return test_context_with(vkm_context_default_params());
}

/* Destroys the context and fails if any validation message was seen during its life. */
static inline void test_context_done(vkm_context *ctx)
{
    uint64_t n = vkm_context_validation_count(ctx);
    vkm_context_destroy(ctx);
    if (n) fail_msg("%llu validation message(s)", (unsigned long long)n);
}

/* ---- fixed-seed random numbers ------------------------------------------------------------ */
typedef struct test_rng {
    uint64_t s;
} test_rng;

static inline uint64_t test_rng_next(test_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* uniform in [-1, 1) */
static inline float test_rng_unit(test_rng *r)
{
    return (float)((double)(test_rng_next(r) >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0);
}

static inline void test_fill(test_rng *r, float *x, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++) x[i] = test_rng_unit(r) * scale;
}

/* ---- error measures ------------------------------------------------------------------------ */
/* Normalised squared error: sum (a-b)^2 / sum b^2 (b is the reference). */
static inline double test_nmse(const float *a, const float *ref, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? num / den : num;
}

static inline double test_max_abs(const float *a, const float *ref, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - ref[i]);
        if (d > m || d != d) m = d != d ? INFINITY : d;
    }
    return m;
}

static inline void *test_alloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    assert_non_null(p);
    return p;
}

#endif
