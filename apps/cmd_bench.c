/*
 * cmd_bench.c — `vkmoe bench [--json] [--quick] [--only PREFIX]`: the device's copy bandwidth,
 * then each kernel's effective GB/s on realistic shapes as a fraction of that copy bandwidth
 * (the roofline); --only keeps the shapes whose name starts with PREFIX.
 */
#include <string.h>

#include "cli.h"

typedef struct shape {
    const char *kernel;
    vkm_dtype dtype;
    uint32_t rows, cols, n;
    const char *name;
} shape;

static const shape full_shapes[] = {
    {"matvec", VKM_F32, 4096, 4096, 1, "matvec_f32"},
    {"matvec", VKM_F16, 4096, 4096, 1, "matvec_f16"},
    {"matvec", VKM_F16, 11008, 4096, 1, "matvec_f16"},
    {"matvec", VKM_F16, 4096, 11008, 1, "matvec_f16"},
    {"matvec", VKM_F16, 32000, 4096, 1, "matvec_f16"},
    {"matvec", VKM_Q8_0, 11008, 4096, 1, "matvec_q8_0"},
    {"matvec", VKM_Q4_0, 11008, 4096, 1, "matvec_q4_0"},
    {"matvec", VKM_F16, 11008, 4096, 4, "matvec_f16_x4"},
    {"matvec_lora", VKM_F16, 4096, 4096, 1, "matvec_lora_f16"},
    {"matvec_lora", VKM_F16, 11008, 4096, 1, "matvec_lora_f16"},
    {"matvec_lora", VKM_F16, 11008, 4096, 4, "matvec_lora_f16_x4"},
    {"matvec_expand", VKM_F16, 4096, 4096, 1, "matvec_expand_f16"},
    {"matvec_expand", VKM_F16, 11008, 4096, 4, "matvec_expand_f16_x4"},
    {"matvec", VKM_F16, 4096, 4096, 32, "matvec_f16_x32"},
    {"matmul", VKM_F16, 4096, 4096, 32, "matmul_f16_x32"},
    {"matmul", VKM_Q4_0, 4096, 4096, 32, "matmul_q4_0_x32"},
    {"rmsnorm", VKM_F32, 64, 4096, 1, "rmsnorm"},
    {"softmax", VKM_F32, 32, 32000, 1, "softmax"},
    {"silu_mul", VKM_F32, 1, 1 << 22, 1, "silu_mul"},
    {"merge", VKM_F16, 2048, 5632, 3, "merge_f16_x3"},
    {"merge", VKM_BF16, 2048, 5632, 3, "merge_bf16_x3"},
    {"merge", VKM_F32, 2048, 2816, 3, "merge_f32_x3"},
};
static const shape quick_shapes[] = {
    {"matvec", VKM_F32, 2048, 2048, 1, "matvec_f32"},
    {"matvec", VKM_F16, 2048, 2048, 1, "matvec_f16"},
    {"matvec", VKM_Q8_0, 2048, 2048, 1, "matvec_q8_0"},
    {"matvec", VKM_Q4_0, 2048, 2048, 1, "matvec_q4_0"},
    {"matvec", VKM_F16, 2048, 2048, 32, "matvec_f16_x32"},
    {"matvec_lora", VKM_F16, 2048, 2048, 1, "matvec_lora_f16"},
    {"matvec_expand", VKM_F16, 2048, 2048, 1, "matvec_expand_f16"},
    {"matmul", VKM_F16, 2048, 2048, 32, "matmul_f16_x32"},
    {"merge", VKM_F16, 2048, 5632, 3, "merge_f16_x3"},
};

int cmd_bench(int argc, char **argv)
{
    cli_dev_opts o;
    cli_dev_opts_init(&o);
    bool json = false, quick = false;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (cli_dev_opts_parse(&o, argc, argv, &i)) continue;
        if (!strcmp(argv[i], "--json")) json = true;
        else if (!strcmp(argv[i], "--quick")) quick = true;
        else if (!strcmp(argv[i], "--only")) {
            if (!(only = cli_value(argc, argv, &i))) return 2;
        }
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: vkmoe bench [--json] [--quick] [--only PREFIX] [--device D]\n");
            return 0;
        } else {
            cli_error("bench", "unknown option %s", argv[i]);
            return 2;
        }
    }
    vkm_context *ctx = cli_context(&o);
    if (!ctx) return 1;
    const vkm_device_caps *c = vkm_context_caps(ctx);
    double copy = 0;
    vkm_status s = vkm_context_copy_bandwidth(ctx, 0, &copy);
    if (s != VKM_OK) {
        int rc = cli_error("bench", "copy bandwidth: %s", vkm_context_errmsg(ctx));
        vkm_context_destroy(ctx);
        return rc;
    }
    const shape *sh = quick ? quick_shapes : full_shapes;
    size_t n = quick ? sizeof quick_shapes / sizeof *sh : sizeof full_shapes / sizeof *sh;
    if (json) printf("{\"device\": \"%s\", \"copy_gbps\": %.3f, \"kernels\": [", c->name, copy);
    else printf("device %s\ncopy bandwidth %.2f GB/s\n\n%-16s %-14s %10s %10s %9s %10s\n", c->name, copy,
                "kernel", "shape", "time (us)", "GB/s", "fraction", "max err");
    int rc = 0;
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        if (only && strncmp(sh[i].name, only, strlen(only))) continue;
        vkm_bench_result r;
        s = vkm_bench_kernel(ctx, sh[i].kernel, sh[i].dtype, sh[i].rows, sh[i].cols, sh[i].n, &r);
        if (s == VKM_ERR_UNSUPPORTED) { /* a kernel this device does not run: the others still are */
            fprintf(stderr, "vkmoe bench: %s skipped: %s\n", sh[i].name, vkm_context_errmsg(ctx));
            continue;
        }
        if (s != VKM_OK) {
            rc = cli_error("bench", "%s: %s", sh[i].name, vkm_context_errmsg(ctx));
            break;
        }
        double frac = copy > 0 ? r.gbps / copy : 0;
        if (json)
            printf("%s{\"name\": \"%s\", \"shape\": [%u, %u], \"n\": %u, \"seconds\": %.9f, "
                   "\"gbps\": %.3f, \"fraction\": %.4f, \"max_err\": %.3g}", first ? "" : ", ",
                   sh[i].name, sh[i].rows, sh[i].cols, sh[i].n, r.seconds, r.gbps, frac, r.max_err);
        else {
            char shp[32];
            snprintf(shp, sizeof shp, "%ux%u", sh[i].rows, sh[i].cols);
            printf("%-16s %-14s %10.1f %10.2f %8.1f%% %10.2g\n", sh[i].name, shp, r.seconds * 1e6,
                   r.gbps, 100 * frac, r.max_err);
        }
        fflush(stdout);
        first = false;
    }
    if (json) printf("]}\n");
    vkm_context_destroy(ctx);
    return rc;
}
