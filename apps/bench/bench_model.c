/*
 * bench_model.c — decode and prefill speed of a whole model with random weights, as a fraction
 * of the bandwidth roofline: every decode step must read every weight once, so
 * roofline tok/s = copy bandwidth / weight bytes per token.
 *
 *   bench_model [--shape 1.1b|tiny] [--types f16,q8_0,q4_0] [--prefill N] [--decode N]
 *               [--batch B] [--experts E [--top-k K]] [--layers L] [--json] [--profile] [--device D]
 * --batch B also times one decode step of B sequences at once (B tokens per step).
 * --experts E: a Mixtral-style model whose E experts each have the shape's FFN, top-K routed
 * (default 2), timed against the dense model with the same active parameters (one FFN K times
 * as wide); "moe/dense" is the ratio of their decode times per token.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "bench_env.h"
#include "vkmoe.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int fail(vkm_context *ctx, const char *what)
{
    fprintf(stderr, "bench_model: %s: %s\n", what, vkm_context_errmsg(ctx));
    return 1;
}

int main(int argc, char **argv)
{
    vkm_model_shape sh = {32000, 2048, 22, 32, 4, 0, 5632, 2048, 10000.0f, false}; /* TinyLlama 1.1B */
    const char *types = "f16,q8_0,q4_0", *device = getenv("VKMOE_DEVICE"), *shape_name = "1.1b";
    int prefill = 64, decode = 8, batch = 0, experts = 0, top_k = 2, layers = 0;
    bool json = false, profile = false;
    static const char *const flags[] = {"--json", "--profile", NULL};
    static const char *const valued[] = {"--shape", "--types", "--prefill", "--decode", "--batch", "--experts",
                                         "--top-k", "--layers", "--device", NULL};
    static const char usage[] = "[--shape 1.1b|testbed|tiny] [--types f32,f16,q8_0,q4_0] [--prefill N] "
                                "[--decode N] [--batch N] [--experts E --top-k K] [--layers L] [--device D] "
                                "[--json] [--profile]";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        const int o = bench_option("bench_model", usage, flags, valued, argc, argv, &i, &v);
        if (o <= 0) return o ? 2 : 0;
        if (!strcmp(a, "--json")) json = true;
        else if (!strcmp(a, "--profile")) profile = true;
        else if (!strcmp(a, "--shape")) {
            shape_name = v;
            if (!strcmp(v, "tiny")) sh = (vkm_model_shape){512, 64, 5, 8, 4, 0, 172, 512, 10000.0f, true};
            else if (!strcmp(v, "testbed")) sh = (vkm_model_shape){1024, 128, 4, 4, 2, 0, 352, 128, 10000.0f, false};
            else if (strcmp(v, "1.1b")) { fprintf(stderr, "bench_model: --shape 1.1b, testbed or tiny\n"); return 2; }
        } else if (!strcmp(a, "--types")) types = v;
        else if (!strcmp(a, "--prefill")) prefill = atoi(v);
        else if (!strcmp(a, "--decode")) decode = atoi(v);
        else if (!strcmp(a, "--batch")) batch = atoi(v);
        else if (!strcmp(a, "--experts")) experts = atoi(v);
        else if (!strcmp(a, "--top-k")) top_k = atoi(v);
        else if (!strcmp(a, "--layers")) layers = atoi(v);
        else if (!strcmp(a, "--device")) device = v;
    }
    {   /* every type known before anything runs */
        char tb[256];
        snprintf(tb, sizeof tb, "%s", types);
        for (char *t = strtok(tb, ","); t; t = strtok(NULL, ","))
            if (strcasecmp(t, "f32") && strcasecmp(t, "f16") && strcasecmp(t, "q8_0") && strcasecmp(t, "q4_0")) {
                fprintf(stderr, "bench_model: --types takes f32, f16, q8_0, q4_0 (not %s)\n", t);
                return 2;
            }
    }
    if (prefill < 1 || decode < 1 || batch < 0 || layers < 0 || experts < 0 ||
        (experts > 0 && (top_k < 1 || top_k > experts))) {
        fprintf(stderr, "bench_model: --prefill and --decode >= 1; with --experts E, 1 <= --top-k <= E\n");
        return 2;
    }
    if (layers > 0) sh.n_layers = (uint32_t)layers;
    /* the models timed per type: the shape; with experts, the MoE and its dense equivalent */
    vkm_model_shape shapes[2] = {sh, sh};
    const char *labels[2] = {"", ""};
    int n_shapes = 1;
    if (experts > 0) {
        shapes[0].n_experts = (uint32_t)experts;
        shapes[0].n_experts_used = (uint32_t)top_k;
        shapes[1].ffn_dim = sh.ffn_dim * (uint32_t)top_k;
        labels[0] = "moe";
        labels[1] = "dense";
        n_shapes = 2;
    }
    vkm_context_params cp = bench_context_params(device);
    vkm_context *ctx = NULL;
    if (vkm_context_create(&cp, &ctx) != VKM_OK) return fail(ctx, "context");
    double copy = 0;
    if (vkm_context_copy_bandwidth(ctx, 0, &copy) != VKM_OK) return fail(ctx, "copy bandwidth");
    const vkm_device_caps *caps = vkm_context_caps(ctx);
    if (json) printf("{\"device\": \"%s\", \"shape\": \"%s\", \"copy_gbps\": %.3f, \"results\": [", caps->name, shape_name, copy);
    else printf("device %s, copy bandwidth %.2f GB/s, shape %s (dim %u, %u layers, %u/%u heads, ffn %u, vocab %u)\n\n"
                "%-6s %10s %12s %12s %12s %10s %10s\n", caps->name, copy, shape_name, sh.dim, sh.n_layers,
                sh.n_heads, sh.n_kv_heads, sh.ffn_dim, sh.n_vocab, "type", "MB/token", "prefill t/s",
                "decode t/s", "roofline t/s", "fraction", "load s");
    char buf[256];
    snprintf(buf, sizeof buf, "%s", types);
    int first = 1;
    for (char *t = strtok(buf, ","); t; t = strtok(NULL, ","))
    for (int si = 0; si < n_shapes; si++) {
        static double moe_dec;
        vkm_dtype dt = !strcasecmp(t, "f32") ? VKM_F32 : !strcasecmp(t, "f16") ? VKM_F16
                     : !strcasecmp(t, "q8_0") ? VKM_Q8_0 : VKM_Q4_0;
        vkm_model_params mp = vkm_model_default_params();
        mp.weight_type = dt;
        mp.n_ctx = (uint32_t)(prefill + 2 * decode + 16);
        mp.n_seq = batch > 1 ? (uint32_t)batch : 1;
        mp.n_batch = (uint32_t)(prefill > 8 ? prefill : 8);
        mp.profile = profile;
        vkm_model *m = NULL;
        double t0 = now();
        if (vkm_model_create_random(ctx, &shapes[si], 42, &mp, &m) != VKM_OK) return fail(ctx, "random model");
        double load = now() - t0;
        vkm_model_info info;
        vkm_model_get_info(m, &info);
        vkm_session_params sp = vkm_session_default_params();
        sp.sampling.temperature = 0;
        vkm_session *s = NULL;
        if (vkm_session_create(m, &sp, &s) != VKM_OK) return fail(ctx, "session");
        int32_t *ids = calloc((size_t)prefill + 1, 4), next = 0;
        for (int i = 0; i < prefill; i++) ids[i] = (int32_t)((i * 7919u) % sh.n_vocab);
        t0 = now();
        if (vkm_session_prompt(s, ids, (size_t)prefill, &next) != VKM_OK) return fail(ctx, "prefill");
        double pre = prefill / (now() - t0);
        if (profile && !json) { /* the last prefill step, kernel by kernel */
            vkm_kernel_stat ks[64];
            size_t nk = 0;
            vkm_model_profile(m, ks, 64, &nk);
            double tot = 0;
            for (size_t k = 0; k < nk; k++) tot += ks[k].seconds;
            printf("  prefill step kernels (%s): %.1f ms in kernels\n", t, tot * 1e3);
            for (size_t k = 0; k < nk && k < 8; k++)
                printf("    %-18s %5u calls %9.2f ms %5.1f%%\n", ks[k].name, ks[k].calls, ks[k].seconds * 1e3,
                       100 * ks[k].seconds / tot);
        }
        if (vkm_session_decode(s, next, &next) != VKM_OK) return fail(ctx, "decode"); /* warm */
        t0 = now();
        for (int i = 0; i < decode; i++)
            if (vkm_session_decode(s, next, &next) != VKM_OK) return fail(ctx, "decode");
        double dec = decode / (now() - t0);
        if (profile && !json) { /* the last decode step, kernel by kernel */
            vkm_kernel_stat ks[64];
            size_t nk = 0;
            vkm_model_profile(m, ks, 64, &nk);
            double tot = 0;
            for (size_t k = 0; k < nk; k++) tot += ks[k].seconds;
            printf("  decode step kernels (%s): %.1f ms in kernels\n", t, tot * 1e3);
            for (size_t k = 0; k < nk; k++)
                printf("    %-18s %5u calls %9.2f ms %5.1f%%  %8.2f GB/s  %5.1f%% of copy\n", ks[k].name, ks[k].calls,
                       ks[k].seconds * 1e3, 100 * ks[k].seconds / tot, ks[k].bytes / ks[k].seconds / 1e9,
                       100 * ks[k].bytes / ks[k].seconds / 1e9 / copy);
        }
        double roof = copy * 1e9 / (double)info.bytes_per_token;
        double bdec = 0;
        if (batch > 1) { /* one step carries `batch` sequences */
            vkm_session **ss = calloc((size_t)batch, sizeof *ss);
            int32_t *tok = calloc((size_t)batch, 4), *out = calloc((size_t)batch, 4);
            ss[0] = s;
            for (int b = 1; b < batch; b++) {
                if (vkm_session_create(m, &sp, &ss[b]) != VKM_OK) return fail(ctx, "session");
                if (vkm_session_prompt(ss[b], ids, 4, &tok[b]) != VKM_OK) return fail(ctx, "prefill");
            }
            tok[0] = next;
            if (vkm_batch_decode(ss, (size_t)batch, tok, out) != VKM_OK) return fail(ctx, "batch");
            t0 = now();
            for (int i = 0; i < decode; i++) {
                memcpy(tok, out, (size_t)batch * 4);
                if (vkm_batch_decode(ss, (size_t)batch, tok, out) != VKM_OK) return fail(ctx, "batch");
            }
            bdec = decode * batch / (now() - t0);
            for (int b = 1; b < batch; b++) vkm_session_free(ss[b]);
            free(ss); free(tok); free(out);
        }
        if (json)
            printf("%s{\"type\": \"%s\", \"model\": \"%s\", \"bytes_per_token\": %llu, \"prefill_tps\": %.3f, "
                   "\"decode_tps\": %.4f, \"roofline_tps\": %.4f, \"fraction\": %.4f, \"batch\": %d, \"batch_tps\": %.4f, "
                   "\"load_s\": %.2f}", first ? "" : ", ", t, labels[si], (unsigned long long)info.bytes_per_token, pre,
                   dec, roof, dec / roof, batch, bdec, load);
        else {
            printf("%-6s %10.1f %12.2f %12.3f %12.3f %9.1f%% %10.1f %s\n", t, info.bytes_per_token / 1e6, pre, dec,
                   roof, 100 * dec / roof, load, labels[si]);
            if (si == 0) moe_dec = dec;
            if (si == 1) printf("       moe/dense decode time per token: %.3f (same active parameters)\n", dec > 0 ? dec / moe_dec : 0);
            if (batch > 1) printf("       batch of %d sequences per step: %.3f tokens/s in total\n", batch, bdec);
        }
        fflush(stdout);
        first = 0;
        free(ids);
        vkm_session_free(s);
        vkm_model_free(m);
    }
    if (json) printf("]}\n");
    return bench_context_done(ctx, "bench_model");
}
