/*
 * bench_moe.c — the cost of MoErging at decode: a base model with a bank of E LoRA experts of
 * rank R on all seven matrices, routed top-k per token by a router on the GPU, against the bare
 * base; the router's share of the step; a heterogeneous batch of four sequences (one expert
 * alone, the router, the bare base, uniform weights) in one step against four single runs.
 * The base and adapters are random files written once into --dir (kept for later runs).
 *
 *   bench_moe [--shape 1.1b|testbed] [--experts E] [--rank R] [--top-k K] [--depth module|layer]
 *             [--type f16|q8_0|q4_0] [--decode N] [--rounds N] [--dir DIR] [--device D] [--json]
 *             [--profile] [--separate-routers] [--separate-expands] [--cpu-time]
 * Bare and routed decode alternate in --rounds rounds (default 4) of --decode steps each (default
 * 3); the fastest round of each side is reported, and the spread and median of the rounds' own
 * ratios (the median: the figure least moved by a VM's slow seconds).
 * --profile prints the routed step kernel by kernel (timed with a timestamp per dispatch).
 * Decoding, token routers of module depth run inside the LoRA shrinks; --separate-routers runs
 * them in dispatches of their own (vkm_model_params.separate_routers). The router's share is
 * timed with them apart either way. Decoding, the LoRA expands run in the epilogue of the base's
 * matrix products; --separate-expands runs them in dispatches of their own (one per group of
 * sites sharing an input: vkm_model_params.separate_expands) and times both in the same rounds
 * (bare, routed, routed with the expands apart), each side's overhead against the bare base.
 * --cpu-time times the decode steps by the process's CPU time (its threads': a CPU device such
 * as lavapipe runs the kernels on them) rather than wall time: on a shared VM whose neighbours
 * steal whole seconds, steadier; meaningless for a GPU.
 * --only base|routed|apart loads that one side (apart: routed, the expands in dispatches of
 * their own), feeds the prompt and decodes 1 + --decode steps, timing nothing: a run to count
 * under an instruction counter (tools/count_decode.sh runs it in cachegrind).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench_env.h"
#include "vkmoe.h"

static bool cpu_time; /* --cpu-time: the process's CPU time instead of wall time */

static double now(void)
{
    struct timespec ts;
    clock_gettime(cpu_time ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int fail(vkm_context *ctx, const char *what)
{
    fprintf(stderr, "bench_moe: %s: %s\n", what, ctx ? vkm_context_errmsg(ctx) : "");
    exit(1);
}

/* Seconds per decode step of n sessions stepped together (n = 1: one session alone). */
static double decode_time(vkm_context *ctx, vkm_session **ss, size_t n, int steps)
{
    int32_t tok[8], next[8];
    for (size_t i = 0; i < n; i++) tok[i] = (int32_t)(17 + 5 * i);
    if (vkm_batch_decode(ss, n, tok, next) != VKM_OK) fail(ctx, "decode"); /* warm */
    double t0 = now();
    for (int s = 0; s < steps; s++) {
        memcpy(tok, next, n * sizeof *tok);
        if (vkm_batch_decode(ss, n, tok, next) != VKM_OK) fail(ctx, "decode");
    }
    return (now() - t0) / steps;
}

static vkm_session *session(vkm_context *ctx, vkm_model *m, vkm_route_mode mode, const float *w)
{
    vkm_session_params sp = vkm_session_default_params();
    sp.sampling.temperature = 0;
    sp.route = mode;
    sp.expert_weights = w;
    vkm_session *s = NULL;
    if (vkm_session_create(m, &sp, &s) != VKM_OK) fail(ctx, "session");
    int32_t ids[16], next;
    for (int i = 0; i < 16; i++) ids[i] = (int32_t)(1 + (i * 7919) % 1000);
    if (vkm_session_prompt(s, ids, 16, &next) != VKM_OK) fail(ctx, "prompt");
    return s;
}

static int by_value(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The router kernels' share of the last step's kernel time; with print, every kernel's. */
static double router_share(vkm_model *m, bool print)
{
    vkm_kernel_stat ks[64];
    size_t nk = 0;
    vkm_model_profile(m, ks, 64, &nk);
    double tot = 0, router = 0;
    for (size_t k = 0; k < nk; k++) {
        tot += ks[k].seconds;
        if (!strcmp(ks[k].name, "router")) router += ks[k].seconds;
    }
    for (size_t k = 0; k < nk && print; k++)
        printf("  %-18s %5u calls %9.2f ms %5.1f%%\n", ks[k].name, ks[k].calls, ks[k].seconds * 1e3,
               100 * ks[k].seconds / tot);
    return tot > 0 ? router / tot : 0;
}

/* --only: one side's prompt and 1 + steps decode steps, nothing timed (see the top). */
static int count_only(vkm_context *ctx, const char *side, const char *path, const char *type, int rounds, int steps)
{
    vkm_model_params mp = vkm_model_default_params();
    mp.weight_type = !strcasecmp(type, "q8_0") ? VKM_Q8_0 : !strcasecmp(type, "q4_0") ? VKM_Q4_0 : VKM_F16;
    mp.n_ctx = (uint32_t)((16 + (rounds + 2) * (steps + 1) + 3 + 15) / 16 * 16);
    mp.n_seq = 1;
    mp.n_batch = 16;
    mp.separate_expands = !strcmp(side, "apart");
    vkm_model *m = NULL;
    if (vkm_model_load(ctx, path, &mp, &m) != VKM_OK) fail(ctx, path);
    vkm_session *s = session(ctx, m, strcmp(side, "base") ? VKM_ROUTE_ROUTER : VKM_ROUTE_DEFAULT, NULL);
    decode_time(ctx, &s, 1, steps);
    printf("bench_moe --only %s: the prompt and %d decode steps\n", side, steps + 1);
    vkm_session_free(s);
    vkm_model_free(m);
    return bench_context_done(ctx, "bench_moe");
}

int main(int argc, char **argv)
{
    vkm_model_shape sh = {32000, 2048, 22, 32, 4, 0, 5632, 2048, 10000.0f, false, 0, 0};
    const char *shape_name = "1.1b", *dir = "/tmp/vkmoe-bench", *device = getenv("VKMOE_DEVICE"), *type = "f16";
    const char *depth = "module", *only = NULL;
    int experts = 8, rank = 16, top_k = 2, steps = 3, rounds = 4;
    bool json = false, profile = false, separate = false, expands = false;
    static const char *const flags[] = {"--json", "--profile", "--separate-routers", "--separate-expands", "--cpu-time", NULL};
    static const char *const valued[] = {"--shape", "--experts", "--rank", "--top-k", "--depth", "--type",
                                         "--decode", "--rounds", "--dir", "--device", "--only", NULL};
    static const char usage[] = "[--shape 1.1b|testbed] [--experts 8] [--rank 16] [--top-k 2] "
                                "[--depth module|layer|model] [--type f16|q8_0|q4_0] [--decode 3] [--rounds 4] "
                                "[--dir D] [--device D] [--json] [--profile] [--separate-routers] [--separate-expands] [--cpu-time] "
                                "[--only base|routed|apart]";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        const int o = bench_option("bench_moe", usage, flags, valued, argc, argv, &i, &v);
        if (o <= 0) return o ? 2 : 0;
        if (!strcmp(a, "--json")) json = true;
        else if (!strcmp(a, "--profile")) profile = true;
        else if (!strcmp(a, "--separate-routers")) separate = true;
        else if (!strcmp(a, "--separate-expands")) expands = true;
        else if (!strcmp(a, "--cpu-time")) cpu_time = true;
        else if (!strcmp(a, "--shape")) {
            shape_name = v;
            if (!strcmp(v, "testbed")) sh = (vkm_model_shape){1024, 128, 4, 4, 2, 0, 352, 128, 10000.0f, false, 0, 0};
            else if (strcmp(v, "1.1b")) { fprintf(stderr, "bench_moe: --shape 1.1b or testbed\n"); return 2; }
        } else if (!strcmp(a, "--experts")) experts = atoi(v);
        else if (!strcmp(a, "--rank")) rank = atoi(v);
        else if (!strcmp(a, "--top-k")) top_k = atoi(v);
        else if (!strcmp(a, "--depth")) depth = v;
        else if (!strcmp(a, "--type")) type = v;
        else if (!strcmp(a, "--decode")) steps = atoi(v);
        else if (!strcmp(a, "--rounds")) rounds = atoi(v);
        else if (!strcmp(a, "--dir")) dir = v;
        else if (!strcmp(a, "--device")) device = v;
        else if (!strcmp(a, "--only")) only = v;
    }
    if (only && strcmp(only, "base") && strcmp(only, "routed") && strcmp(only, "apart")) {
        fprintf(stderr, "bench_moe: --only takes base, routed or apart (not %s)\n", only);
        return 2;
    }
    if (strcasecmp(type, "f16") && strcasecmp(type, "q8_0") && strcasecmp(type, "q4_0")) {
        fprintf(stderr, "bench_moe: --type takes f16, q8_0 or q4_0 (not %s)\n", type);
        return 2;
    }
    if (experts < 1 || experts > 64 || rank < 1 || top_k < 1 || top_k > experts || steps < 1 || rounds < 1 ||
        rounds > 64) {
        fprintf(stderr, "bench_moe: 1 <= top-k <= experts <= 64, rank >= 1, decode >= 1, 1 <= rounds <= 64\n");
        return 2;
    }
    mkdir(dir, 0755);
    char base[1024], path[1200], msg[512], manifest[1100];
    snprintf(base, sizeof base, "%s/base-%s.gguf", dir, shape_name);
    if (access(base, R_OK) && vkm_model_write_random(base, &sh, VKM_F16, 42, 0, 0, msg, sizeof msg) != VKM_OK) {
        fprintf(stderr, "bench_moe: %s: %s\n", base, msg);
        return 1;
    }
    snprintf(manifest, sizeof manifest, "%s/bank-%s-%d-r%d-top%d-%s.json", dir, shape_name, experts, rank, top_k, depth);
    FILE *o = fopen(manifest, "w");
    if (!o) { perror(manifest); return 1; }
    fprintf(o, "{\"base\": \"base-%s.gguf\", \"experts\": [", shape_name);
    for (int e = 0; e < experts; e++) {
        snprintf(path, sizeof path, "%s/lora-%s-r%d-%d.gguf", dir, shape_name, rank, e);
        if (access(path, R_OK) &&
            vkm_lora_write_random(path, &sh, (uint32_t)rank, 2.0f * (float)rank, 100 + (uint64_t)e, msg, sizeof msg)) {
            fprintf(stderr, "bench_moe: %s: %s\n", path, msg);
            return 1;
        }
        fprintf(o, "%s{\"name\": \"e%d\", \"lora\": \"lora-%s-r%d-%d.gguf\"}", e ? ", " : "", e, shape_name, rank, e);
    }
    fprintf(o, "], \"router\": {\"policy\": \"noisy\", \"granularity\": \"token\", \"depth\": \"%s\", \"top_k\": %d, "
               "\"noise_std\": 1.0, \"seed\": 5}}\n", depth, top_k);
    fclose(o);

    vkm_context_params cp = bench_context_params(device);
    vkm_context *ctx = NULL;
    if (vkm_context_create(&cp, &ctx) != VKM_OK) fail(ctx, "context");
    if (only) return count_only(ctx, only, !strcmp(only, "base") ? base : manifest, type, rounds, steps);
    double copy = 0;
    if (vkm_context_copy_bandwidth(ctx, 0, &copy) != VKM_OK) fail(ctx, "copy bandwidth");
    vkm_model_params mp = vkm_model_default_params();
    mp.weight_type = !strcasecmp(type, "q8_0") ? VKM_Q8_0 : !strcasecmp(type, "q4_0") ? VKM_Q4_0 : VKM_F16;
    /* positions: the prompt, every round's warm step and steps, the profiled step, the batch */
    mp.n_ctx = (uint32_t)((16 + (rounds + 2) * (steps + 1) + 3 + 15) / 16 * 16);
    mp.n_seq = 4;
    mp.n_batch = 16;
    mp.profile = true;
    /* the bare base alone */
    vkm_model *bm = NULL;
    if (vkm_model_load(ctx, base, &mp, &bm) != VKM_OK) fail(ctx, base);
    vkm_model_info bi;
    vkm_model_get_info(bm, &bi);
    vkm_session *bs = session(ctx, bm, VKM_ROUTE_DEFAULT, NULL);
    if (vkm_model_set_profiling(bm, false) != VKM_OK) fail(ctx, "profiling"); /* times: untimed kernels */
    /* the bank, routed top-k */
    vkm_model *m = NULL;
    mp.separate_routers = separate;
    if (vkm_model_load(ctx, manifest, &mp, &m) != VKM_OK) fail(ctx, manifest);
    vkm_model_info mi;
    vkm_model_get_info(m, &mi);
    vkm_session *rs = session(ctx, m, VKM_ROUTE_ROUTER, NULL);
    if (vkm_model_set_profiling(m, false) != VKM_OK) fail(ctx, "profiling");
    vkm_model *mx = NULL; /* --separate-expands: the same bank with the expands apart */
    vkm_session *xs = NULL;
    if (expands) {
        mp.separate_expands = true;
        if (vkm_model_load(ctx, manifest, &mp, &mx) != VKM_OK) fail(ctx, manifest);
        mp.separate_expands = false;
        xs = session(ctx, mx, VKM_ROUTE_ROUTER, NULL);
        if (vkm_model_set_profiling(mx, false) != VKM_OK) fail(ctx, "profiling");
    }
    /* bare and routed alternately in short rounds, the fastest round of each: a loaded VM slows
     * whole seconds at a time (and the first seconds of a process: first touches, thread pool,
     * clocks), which would count against whichever side ran then; each round's own ratio too */
    double t_base = 1e30, t_moe = 1e30, t_x = 1e30, ratio[64], ratio_x[64];
    for (int round = 0; round < rounds; round++) {
        const double tb = decode_time(ctx, &bs, 1, steps), tm = decode_time(ctx, &rs, 1, steps);
        const double tx = xs ? decode_time(ctx, &xs, 1, steps) : tm;
        if (tb < t_base) t_base = tb;
        if (tm < t_moe) t_moe = tm;
        if (tx < t_x) t_x = tx;
        ratio[round] = tm / tb;
        ratio_x[round] = tx / tb;
    }
    qsort(ratio, (size_t)rounds, sizeof ratio[0], by_value);
    qsort(ratio_x, (size_t)rounds, sizeof ratio_x[0], by_value);
    const double r_lo = ratio[0], r_hi = ratio[rounds - 1];
    const double r_med = rounds % 2 ? ratio[rounds / 2] : (ratio[rounds / 2 - 1] + ratio[rounds / 2]) / 2;
    const double x_med = rounds % 2 ? ratio_x[rounds / 2] : (ratio_x[rounds / 2 - 1] + ratio_x[rounds / 2]) / 2;
    vkm_session_free(bs);
    vkm_model_free(bm);
    vkm_session_free(xs);
    vkm_model_free(mx);
    if (vkm_model_set_profiling(m, true) != VKM_OK) fail(ctx, "profiling"); /* the router's share */
    decode_time(ctx, &rs, 1, 2);
    double share = router_share(m, profile && !json);
    if (vkm_model_set_profiling(m, false) != VKM_OK) fail(ctx, "profiling");
    if (!separate) { /* routed inside the shrinks, the routers have no time of their own: timed apart */
        mp.separate_routers = true;
        vkm_model *ma = NULL;
        if (vkm_model_load(ctx, manifest, &mp, &ma) != VKM_OK) fail(ctx, manifest);
        vkm_session *as = session(ctx, ma, VKM_ROUTE_ROUTER, NULL);
        decode_time(ctx, &as, 1, 2);
        share = router_share(ma, false);
        vkm_session_free(as);
        vkm_model_free(ma);
    }
    /* four sequences: one expert alone, the router, the bare base, uniform weights */
    float one[64] = {1.0f}, uni[64];
    for (int e = 0; e < experts; e++) uni[e] = 1.0f / (float)experts;
    vkm_session *ss[4] = {session(ctx, m, VKM_ROUTE_FIXED, one), rs, session(ctx, m, VKM_ROUTE_BASE, NULL),
                          session(ctx, m, VKM_ROUTE_FIXED, uni)};
    double singles = 0;
    for (int i = 0; i < 4; i++) singles += decode_time(ctx, &ss[i], 1, steps);
    const double batch = decode_time(ctx, ss, 4, steps);
    for (int i = 0; i < 4; i++) vkm_session_free(ss[i]);
    vkm_model_free(m);
    const double roof_base = bi.bytes_per_token / copy / 1e9, roof_moe = mi.bytes_per_token / copy / 1e9;
    if (json) {
        printf("{\"shape\": \"%s\", \"type\": \"%s\", \"experts\": %d, \"rank\": %d, \"top_k\": %d, \"depth\": \"%s\", "
               "\"copy_gbps\": %.3f, \"base_ms\": %.3f, \"moe_ms\": %.3f, \"overhead\": %.4f, \"router_share\": %.4f, "
               "\"overhead_rounds\": [%.4f, %.4f], \"overhead_median\": %.4f, \"rounds\": %d, \"base_roofline\": %.4f, \"moe_roofline\": %.4f, "
               "\"four_singles_ms\": %.3f, \"batch4_ms\": %.3f, \"separate_routers\": %s, \"cpu_time\": %s",
               shape_name, type, experts, rank, top_k, depth, copy, t_base * 1e3, t_moe * 1e3, t_moe / t_base - 1,
               share, r_lo - 1, r_hi - 1, r_med - 1, rounds, roof_base / t_base, roof_moe / t_moe, singles * 1e3, batch * 1e3,
               separate ? "true" : "false", cpu_time ? "true" : "false");
        if (expands)
            printf(", \"separate_expands_ms\": %.3f, \"separate_expands_overhead\": %.4f, "
                   "\"separate_expands_median\": %.4f", t_x * 1e3, t_x / t_base - 1, x_med - 1);
        printf("}\n");
    } else {
        printf("device copy bandwidth %.2f GB/s; %s %s base, %d LoRA experts of rank %d on all 7 matrices, "
               "noisy router top-%d per token at %s depth%s\n", copy, shape_name, type, experts, rank, top_k, depth,
               cpu_time ? "; times are the process's CPU time" : "");
        printf("bare base         %9.2f ms/token  %5.1f%% of roofline (%.1f MB/token)\n", t_base * 1e3,
               100 * roof_base / t_base, bi.bytes_per_token / 1e6);
        printf("routed top-%d      %9.2f ms/token  %5.1f%% of roofline (%.1f MB/token)  overhead %+.1f%% "
               "(rounds: %+.1f%% to %+.1f%%, median %+.1f%%)\n", top_k, t_moe * 1e3, 100 * roof_moe / t_moe,
               mi.bytes_per_token / 1e6, 100 * (t_moe / t_base - 1), 100 * (r_lo - 1), 100 * (r_hi - 1),
               100 * (r_med - 1));
        if (expands)
            printf("expands apart     %9.2f ms/token  overhead %+.1f%% (median %+.1f%%; rounds: %+.1f%% to %+.1f%%)\n",
                   t_x * 1e3, 100 * (t_x / t_base - 1), 100 * (x_med - 1), 100 * (ratio_x[0] - 1),
                   100 * (ratio_x[rounds - 1] - 1));
        printf("router kernels    %9.1f%% of the routed step's kernel time%s\n", 100 * share,
               separate ? "" : " (timed apart: routed inside the shrinks otherwise)");
        printf("4 sequences       %9.2f ms in one step vs %.2f ms as 4 single steps (%.2fx)\n", batch * 1e3,
               singles * 1e3, singles / batch);
    }
    return bench_context_done(ctx, "bench_moe");
}
