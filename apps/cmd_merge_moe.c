/*
 * cmd_merge_moe.c — `vkmoe merge --moe MANIFEST -o OUT.gguf`: a manifest whose experts are
 * whole fine-tunes written as a Mixtral-style GGUF (vkm_model_write_moe_gguf) that llama.cpp
 * and other engines run. The router is built as the manifest says (hidden gates are computed
 * through the base on the GPU), so the file gives the manifest's logits.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: vkmoe merge --moe MANIFEST.json -o OUT.gguf [-d DEVICE]\n"
               "  writes the manifest's FFN experts, shared weights, router gates and tokenizer as one\n"
               "  Mixtral-style GGUF (llama architecture, expert_count, ffn_gate_inp, ffn_*_exps); a Hugging\n"
               "  Face base's tokenizer goes inside when GGUF holds it exactly, and its files beside\n");
}

int cmd_merge_moe(int argc, char **argv)
{
    cli_dev_opts dev;
    cli_dev_opts_init(&dev);
    const char *manifest = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--moe")) {
            if (!(manifest = cli_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--out")) {
            if (!(out = cli_value(argc, argv, &i))) return 2;
        } else if (!cli_dev_opts_parse(&dev, argc, argv, &i)) {
            fprintf(stderr, "vkmoe merge --moe: unknown argument %s\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!manifest || !out) {
        usage(stderr);
        return 2;
    }
    vkm_context *ctx = cli_context(&dev);
    if (!ctx) return 1;
    vkm_model_params p = vkm_model_default_params();
    p.n_seq = 1;
    vkm_model *m = NULL;
    int rc = 1;
    double t0 = cli_now();
    if (vkm_model_load(ctx, manifest, &p, &m) != VKM_OK)
        cli_error("merge", "cannot load %s: %s", manifest, vkm_context_errmsg(ctx));
    else if (vkm_model_write_moe_gguf(m, out) != VKM_OK)
        cli_error("merge", "%s", vkm_context_errmsg(ctx));
    else {
        fprintf(stderr, "vkmoe merge: wrote %s (%u experts) in %.2f s\n", out, vkm_model_n_experts(m), cli_now() - t0);
        rc = 0;
    }
    vkm_model_free(m);
    vkm_context_destroy(ctx);
    return rc;
}
