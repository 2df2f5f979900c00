/*
 * bench_merge.c — merge throughput of a 1.1B-shape model (TinyLlama: dim 2048, 22 layers, 32
 * heads, 4 KV heads, FFN 5632, vocab 32000, F16): a random model and two perturbed copies are
 * written once as GGUF in a folder (default $TMPDIR/vkmoe-bench-merge), then merged with linear
 * (the three, equal weights) and TIES (the two copies on the base, density 0.5). Reported: bytes
 * moved (input tensors read + output written) per second as a fraction of the device's measured
 * copy bandwidth (read + write), and the peak resident memory (ru_maxrss) against the sum of the
 * input files (a streamed merge stays far below it). Uses the public API only.
 * --copy-inputs copies the inputs into device memory even where the device could read the files'
 * maps in place (the comparison).
 *   bench_merge [--dir D] [--quick] [--json] [--device D] [--chunk-mb N] [--only linear|ties] [--clean]
 *               [--copy-inputs]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench_env.h"
#include "vkmoe.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static double peak_rss_bytes(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss * 1024.0;
}

/* Writes path unless it is there already (a previous run). */
static int ensure_model(const char *path, const vkm_model_shape *shape, float noise, uint64_t noise_seed)
{
    if (file_size(path) > 0) return 0;
    char msg[512];
    double t0 = now_s();
    fprintf(stderr, "bench_merge: writing %s ...", path);
    if (vkm_model_write_random(path, shape, VKM_F16, 1, noise, noise_seed, msg, sizeof msg)) {
        fprintf(stderr, "\nbench_merge: %s\n", msg);
        return 1;
    }
    fprintf(stderr, " %.1f s\n", now_s() - t0);
    return 0;
}

typedef struct result {
    const char *method;
    double seconds, bytes, gbps, fraction;
} result;

static bool copy_inputs;

static int run_merge(vkm_context *ctx, vkm_merge_method m, const char *dir, const char *const *in,
                     uint32_t n_in, uint64_t chunk, double copy_gbps, result *r)
{
    vkm_merge_params p = vkm_merge_default_params();
    p.method = m;
    p.chunk_bytes = chunk;
    p.copy_inputs = copy_inputs;
    if (m == VKM_MERGE_TIES) {
        snprintf(p.base, sizeof p.base, "%s", in[0]);
        p.density = 0.5;
    }
    for (uint32_t i = m == VKM_MERGE_TIES ? 1 : 0; i < n_in; i++) {
        snprintf(p.models[p.n_models].path, sizeof p.models[0].path, "%s", in[i]);
        p.models[p.n_models++].weight = 1.0 / n_in;
    }
    char out[1200];
    snprintf(out, sizeof out, "%s/merged-%s.gguf", dir, vkm_merge_method_name(m));
    double t0 = now_s();
    vkm_status s = vkm_merge(ctx, &p, out);
    double t = now_s() - t0;
    if (s) {
        fprintf(stderr, "bench_merge: %s: %s\n", vkm_merge_method_name(m), vkm_context_errmsg(ctx));
        return 1;
    }
    double bytes = (double)file_size(out);
    for (uint32_t i = 0; i < n_in; i++) bytes += (double)file_size(in[i]);
    unlink(out);
    r->method = vkm_merge_method_name(m);
    r->seconds = t;
    r->bytes = bytes;
    r->gbps = bytes / t * 1e-9;
    r->fraction = copy_gbps > 0 ? r->gbps / copy_gbps : 0;
    return 0;
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *device = getenv("VKMOE_DEVICE");
    bool quick = false, json = false, clean = false;
    uint64_t chunk = 0;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--device") && i + 1 < argc) device = argv[++i];
        else if (!strcmp(argv[i], "--chunk-mb") && i + 1 < argc) chunk = strtoull(argv[++i], NULL, 10) << 20;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--quick")) quick = true;
        else if (!strcmp(argv[i], "--json")) json = true;
        else if (!strcmp(argv[i], "--clean")) clean = true;
        else if (!strcmp(argv[i], "--copy-inputs")) copy_inputs = true;
        else {
            fprintf(stderr, "usage: bench_merge [--dir D] [--quick] [--json] [--device D] [--chunk-mb N] "
                            "[--only linear|ties] [--clean] [--copy-inputs]\n");
            return 2;
        }
    }
    char dbuf[1024];
    if (!dir) {
        const char *t = getenv("TMPDIR");
        snprintf(dbuf, sizeof dbuf, "%s/vkmoe-bench-merge%s", t && t[0] ? t : "/tmp", quick ? "-quick" : "");
        dir = dbuf;
    }
    mkdir(dir, 0777);
    /* TinyLlama-1.1B's shape; --quick: a 16-fold smaller one for a smoke run */
    vkm_model_shape shape = {32000, 2048, 22, 32, 4, 0, 5632, 2048, 10000.0f, false};
    if (quick) shape = (vkm_model_shape){8000, 512, 6, 8, 2, 0, 1408, 2048, 10000.0f, false};
    char paths[3][1100];
    const char *in[3];
    for (int i = 0; i < 3; i++) {
        snprintf(paths[i], sizeof paths[i], "%s/%s.gguf", dir, i == 0 ? "base" : i == 1 ? "copy1" : "copy2");
        in[i] = paths[i];
        if (ensure_model(paths[i], &shape, i ? 0.01f : 0.0f, (uint64_t)i + 100)) return 1;
    }
    vkm_context_params cp = bench_context_params(device);
    vkm_context *ctx = NULL;
    if (vkm_context_create(&cp, &ctx)) {
        fprintf(stderr, "bench_merge: %s\n", ctx ? vkm_context_errmsg(ctx) : "no context");
        vkm_context_destroy(ctx);
        return 1;
    }
    double copy = 0;
    vkm_context_copy_bandwidth(ctx, 0, &copy);
    result r[2];
    int nr = 0, bad = 0;
    if (!only || !strcmp(only, "linear")) bad = run_merge(ctx, VKM_MERGE_LINEAR, dir, in, 3, chunk, copy, &r[nr++]);
    if (!bad && (!only || !strcmp(only, "ties"))) bad = run_merge(ctx, VKM_MERGE_TIES, dir, in, 3, chunk, copy, &r[nr++]);
    double inputs = (double)(file_size(in[0]) + file_size(in[1]) + file_size(in[2]));
    double rss = peak_rss_bytes();
    const char *dev = vkm_context_caps(ctx)->name;
    if (!bad && json) {
        printf("{\"device\": \"%s\", \"copy_gbps\": %.3f, \"inputs_bytes\": %.0f, \"peak_rss_bytes\": %.0f, "
               "\"peak_rss_fraction_of_inputs\": %.4f, \"merges\": [", dev, copy, inputs, rss, rss / inputs);
        for (int i = 0; i < nr; i++)
            printf("%s{\"method\": \"%s\", \"seconds\": %.3f, \"bytes\": %.0f, \"gbps\": %.3f, \"fraction_of_copy\": %.3f}",
                   i ? ", " : "", r[i].method, r[i].seconds, r[i].bytes, r[i].gbps, r[i].fraction);
        printf("]}\n");
    } else if (!bad) {
        printf("device %s: copy bandwidth %.2f GB/s (read + write)\n", dev, copy);
        for (int i = 0; i < nr; i++)
            printf("  %-8s %7.2f s  %6.2f GB moved  %6.2f GB/s  %5.1f%% of copy\n", r[i].method, r[i].seconds,
                   r[i].bytes * 1e-9, r[i].gbps, 100 * r[i].fraction);
        printf("  peak resident memory %.2f GB = %.1f%% of the inputs (%.2f GB in 3 files)\n", rss * 1e-9,
               100 * rss / inputs, inputs * 1e-9);
    }
    bad |= bench_context_done(ctx, "bench_merge");
    for (int i = 0; clean && i < 3; i++) unlink(in[i]);
    return bad;
}
