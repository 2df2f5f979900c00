/*
 * bench_env.h — what the benchmarks share with the CLI's environment: $VKMOE_DEVICE (the
 * device, unless --device names one) and $VKMOE_VALIDATE=1 (the Khronos validation layer; the
 * benchmark then fails, after its figures, when the layer reported anything).
 */
#ifndef VKMOE_BENCH_ENV_H
#define VKMOE_BENCH_ENV_H

#include <stdbool.h>
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

static inline bool bench_listed(const char *a, const char *const *list)
{
    for (size_t k = 0; list[k]; k++)
        if (!strcmp(a, list[k])) return true;
    return false;
}

/* Option argv[*i] of a benchmark whose flags and options taking a value are listed (NULL
 * ended): 1 with *value set (NULL for a flag) and *i advanced past it; 0 after printing usage
 * for --help / -h (exit 0); -1 after an error (an unknown option, a missing value: exit 2). */
static inline int bench_option(const char *name, const char *usage, const char *const *flags,
                               const char *const *valued, int argc, char **argv, int *i, const char **value)
{
    const char *a = argv[*i];
    *value = NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
        printf("usage: %s %s\n", name, usage);
        return 0;
    }
    if (bench_listed(a, flags)) return 1;
    if (!bench_listed(a, valued)) {
        fprintf(stderr, "%s: unknown option %s\nusage: %s %s\n", name, a, name, usage);
        return -1;
    }
    if (*i + 1 >= argc) {
        fprintf(stderr, "%s: %s needs a value\n", name, a);
        return -1;
    }
    *value = argv[++*i];
    return 1;
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
