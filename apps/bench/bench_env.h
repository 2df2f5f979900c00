/*
 * bench_env.h — what the benchmarks share with the CLI's environment: $VKMOE_DEVICE (the
 * device, unless --device names one) and $VKMOE_VALIDATE=1 (the Khronos validation layer; the
 * benchmark then fails, after its figures, when the layer reported anything).
 */
#ifndef VKMOE_BENCH_ENV_H
#define VKMOE_BENCH_ENV_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vkmoe.h"

static inline void bench_log(void *user, vkm_log_level level, const char *msg)
{
    (void)user;
    if (level >= VKM_LOG_WARN) fprintf(stderr, "%s: %s\n", level == VKM_LOG_WARN ? "warning" : "error", msg);
}

static inline vkm_context_params bench_context_params(const char *device)
{
    vkm_context_params cp = vkm_context_default_params();
    const char *v = getenv("VKMOE_VALIDATE");
    cp.device = device;
    cp.validation = v && v[0] && strcmp(v, "0") != 0;
    cp.log = bench_log;
    return cp;
}

/* Destroys ctx; 1 (with a message) when the validation layer reported anything, else 0. */
static inline int bench_context_done(vkm_context *ctx, const char *name)
{
    const uint64_t n = ctx ? vkm_context_validation_count(ctx) : 0;
    vkm_context_destroy(ctx);
    if (n) fprintf(stderr, "%s: %llu validation messages\n", name, (unsigned long long)n);
    return n ? 1 : 0;
}

#endif
