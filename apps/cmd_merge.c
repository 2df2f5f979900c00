/*
 * cmd_merge.c — `vkmoe merge`: mergekit's merges on the GPU. From a mergekit YAML config
 * (`vkmoe merge config.yml -o out.gguf`, as `mergekit-yaml config.yml out/`) or from flags for
 * simple cases; LoRA merges (lora_linear, lora_cat, lora_bake) the same way. A progress bar on
 * stderr (tensors, GB/s of inputs merged, time left). SIGINT / SIGTERM cancel the merge at the
 * next tensor and leave no output; a second signal ends the process at once, removing the
 * temporary file when the file system gave it a name.
 */
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: vkmoe merge CONFIG.yml -o OUT [options]\n"
            "       vkmoe merge --method M [--base B] --model P [--weight W] ... -o OUT [options]\n"
            "       vkmoe merge --moe MANIFEST.json -o OUT.gguf   (FFN experts as a Mixtral-style GGUF)\n"
            "  -o, --out OUT      OUT.gguf, OUT.safetensors (config.json beside it), or a folder\n"
            "                     (model.safetensors, config.json, tokenizer); lora_linear / lora_cat:\n"
            "                     OUT.gguf (GGUF LoRA) or a folder (PEFT)\n"
            "  --method M         linear, task_arithmetic, ties, dare_linear, dare_ties, breadcrumbs,\n"
            "                     breadcrumbs_ties, slerp, model_stock, lora_linear, lora_cat, lora_bake\n"
            "  --base PATH        base_model (task vectors, slerp's t = 0, model_stock, lora_bake)\n"
            "  --model PATH       a model, or an adapter for the lora_* methods; repeat\n"
            "  --weight W, --density D, --gamma G\n"
            "                     after a --model: its parameter; before any --model: every model's\n"
            "  --lambda L, --t T, --normalize true|false, --rescale true|false, --seed N\n"
            "  --dtype float32|float16|bfloat16\n"
            "  --chunk-mb N       input megabytes per chunk (default 64)\n"
            "  --quiet            no progress bar\n"
            "  -d, --device D     Vulkan device (index or name)\n");
}

/* ---- signals ---------------------------------------------------------------------------------- */
static volatile sig_atomic_t stop_requested;
static char tmp_path[3][1200]; /* the writer's named temporary file, whichever kind of output */

static void on_signal(int sig)
{
    if (stop_requested) { /* the second one: now */
        for (int i = 0; i < 3; i++)
            if (tmp_path[i][0]) unlink(tmp_path[i]);
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    stop_requested = 1;
}

static void install_signals(const char *out)
{
    /* the library's names: OUT.vkmoe-PID.tmp, or inside a folder output its tensors file's */
    snprintf(tmp_path[0], sizeof tmp_path[0], "%s" VKM_TMP_SUFFIX, out, (long)getpid());
    snprintf(tmp_path[1], sizeof tmp_path[1], "%s/model.safetensors" VKM_TMP_SUFFIX, out, (long)getpid());
    snprintf(tmp_path[2], sizeof tmp_path[2], "%s/adapter_model.safetensors" VKM_TMP_SUFFIX, out, (long)getpid());
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* ---- progress ---------------------------------------------------------------------------------- */
typedef struct bar {
    bool quiet, tty;
    double last;
} bar;

static bool progress(void *user, const vkm_merge_progress *p)
{
    bar *b = user;
    if (stop_requested) return false;
    if (b->quiet) return true;
    bool last = p->tensors_done == p->n_tensors;
    if (!b->tty && !last && p->seconds - b->last < 2.0) return true;
    b->last = p->seconds;
    double frac = p->bytes_total ? (double)p->bytes_done / (double)p->bytes_total : (double)p->tensors_done / p->n_tensors;
    double gbps = p->seconds > 0 ? (double)p->bytes_done / p->seconds * 1e-9 : 0;
    double left = frac > 0 ? p->seconds * (1 - frac) / frac : 0;
    char fill[31];
    int n = (int)(frac * 30 + 0.5);
    for (int i = 0; i < 30; i++) fill[i] = i < n ? '#' : '.';
    fill[30] = 0;
    fprintf(stderr, "%s[%s] %u/%u tensors  %.2f GB/s  %.1f s  left %.1f s  %-28.28s%s", b->tty ? "\r" : "",
            fill, p->tensors_done, p->n_tensors, gbps, p->seconds, left, p->tensor ? p->tensor : "",
            b->tty && !last ? "" : "\n");
    fflush(stderr);
    return true;
}

/* ---- options ----------------------------------------------------------------------------------- */
static bool parse_bool(const char *v, int *out)
{
    if (v && (!strcmp(v, "true") || !strcmp(v, "1"))) return *out = 1, true;
    if (v && (!strcmp(v, "false") || !strcmp(v, "0"))) return *out = 0, true;
    return false;
}

/* A --weight / --density / --gamma: for the last --model, or for all when none yet. */
static bool model_param(vkm_merge_params *p, const char *opt, const char *v)
{
    double d;
    if (!cli_float(v, &d)) return false;
    vkm_merge_model *m = p->n_models ? &p->models[p->n_models - 1] : NULL;
    double *slot = !strcmp(opt, "--weight") ? (m ? &m->weight : &p->weight)
                 : !strcmp(opt, "--density") ? (m ? &m->density : &p->density) : (m ? &m->gamma : &p->gamma);
    *slot = d;
    return true;
}

static int parse(int argc, char **argv, vkm_merge_params *p, const char **out, cli_dev_opts *dev, bar *b,
                 bool *flags_used)
{
    const char *config = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        bool ok = true;
        if (cli_dev_opts_parse(dev, argc, argv, &i)) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--quiet")) {
            b->quiet = true;
            continue;
        }
        if (a[0] != '-') {
            if (config) return cli_error("merge", "one config at most ('%s' and '%s')", config, a) + 1;
            config = a;
            continue;
        }
        if (!(v = cli_value(argc, argv, &i))) return 2;
        *flags_used |= strcmp(a, "-o") && strcmp(a, "--out") && strcmp(a, "--chunk-mb");
        if (!strcmp(a, "-o") || !strcmp(a, "--out")) *out = v;
        else if (!strcmp(a, "--method")) ok = vkm_merge_method_from_name(v, &p->method);
        else if (!strcmp(a, "--base")) snprintf(p->base, sizeof p->base, "%s", v);
        else if (!strcmp(a, "--model")) {
            if (p->n_models == VKM_MERGE_MAX_MODELS) return cli_error("merge", "more than %d models", VKM_MERGE_MAX_MODELS) + 1;
            snprintf(p->models[p->n_models++].path, sizeof p->models[0].path, "%s", v);
        } else if (!strcmp(a, "--weight") || !strcmp(a, "--density") || !strcmp(a, "--gamma")) ok = model_param(p, a, v);
        else if (!strcmp(a, "--lambda")) ok = cli_float(v, &p->lambda);
        else if (!strcmp(a, "--t")) ok = cli_float(v, &p->t);
        else if (!strcmp(a, "--normalize")) ok = parse_bool(v, &p->normalize);
        else if (!strcmp(a, "--rescale")) ok = parse_bool(v, &p->rescale);
        else if (!strcmp(a, "--seed")) {
            long long s;
            ok = cli_int(v, &s) && s >= 0;
            p->seed = (uint64_t)s;
        } else if (!strcmp(a, "--dtype")) {
            ok = !strcmp(v, "float32") || !strcmp(v, "float16") || !strcmp(v, "bfloat16");
            p->out_dtype = !strcmp(v, "float32") ? VKM_F32 : !strcmp(v, "float16") ? VKM_F16 : VKM_BF16;
        } else if (!strcmp(a, "--chunk-mb")) {
            long long mb;
            ok = cli_int(v, &mb) && mb >= 1 && mb <= 4096;
            p->chunk_bytes = (uint64_t)mb << 20;
        } else {
            return cli_error("merge", "unknown option '%s' (vkmoe merge --help)", a) + 1;
        }
        if (!ok) return cli_error("merge", "bad value '%s' for %s", v, a) + 1;
    }
    if (config) {
        if (*flags_used) return cli_error("merge", "give a config or merge flags, not both") + 1;
        char msg[2048];
        uint64_t chunk = p->chunk_bytes;
        if (vkm_merge_config_load(config, p, msg, sizeof msg)) return cli_error("merge", "%s", msg);
        p->chunk_bytes = chunk;
    }
    if (!*out) return cli_error("merge", "no output (-o OUT)") + 1;
    if (!config && !p->n_models) return cli_error("merge", "no config and no --model (vkmoe merge --help)") + 1;
    return -1;
}

int cmd_merge(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--moe")) return cmd_merge_moe(argc, argv);
    vkm_merge_params p = vkm_merge_default_params();
    cli_dev_opts dev;
    cli_dev_opts_init(&dev);
    bar b = {false, isatty(2) != 0, -1e9};
    const char *out = NULL;
    bool flags = false;
    int rc = parse(argc, argv, &p, &out, &dev, &b, &flags);
    if (rc >= 0) return rc;
    p.progress = progress;
    p.progress_user = &b;
    vkm_context *ctx = cli_context(&dev);
    if (!ctx) return 1;
    install_signals(out);
    double t0 = cli_now();
    vkm_status s = vkm_merge(ctx, &p, out);
    if (s == VKM_ERR_CANCELLED && stop_requested) {
        fprintf(stderr, "\nvkmoe merge: interrupted; nothing written to %s\n", out);
        rc = 130;
    } else if (s) {
        if (b.tty && !b.quiet) fputc('\n', stderr);
        rc = cli_error("merge", "%s", vkm_context_errmsg(ctx));
    } else {
        if (!b.quiet)
            fprintf(stderr, "vkmoe merge: %s written in %.2f s (%s)\n", out, cli_now() - t0,
                    vkm_merge_method_name(p.method));
        rc = 0;
    }
    vkm_context_destroy(ctx);
    return rc;
}
