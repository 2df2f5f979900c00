/*
 * cmd_run.c — `vkmoe run`: generates text from a prompt, streaming it to stdout (the prompt is
 * echoed first; nothing else goes to stdout) and reporting on stderr the load time, prefill and
 * decode speed and the fraction of the bandwidth roofline reached (weight bytes read per token
 * x tokens per second / the measured copy bandwidth). Options follow llama.cpp's where they can.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "route_out.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: vkmoe run [-m MODEL] [-p PROMPT | -f FILE] [-n N] [options]\n\n"
            "  -m, --model PATH        GGUF, safetensors or model folder, or a MoErge manifest (.json)\n"
            "  -M, --manifest PATH     the same (default: the bundled MoErged testbed, 5 LoRA experts)\n"
            "  -p, --prompt TEXT       prompt (default: empty, generation starts from BOS)\n"
            "  -f, --file FILE         read the prompt from a file\n"
            "  -n, --n-predict N       tokens to generate (default 128; -1: until EOS or the context is full)\n"
            "  --temp T                temperature (default 0.8; 0: greedy)\n"
            "  --top-k K               (default 40; 0: off)\n"
            "  --top-p P               (default 0.95; 1: off)\n"
            "  --min-p P               (default 0.05; 0: off)\n"
            "  --repeat-penalty R      (default 1: off)   --repeat-last-n N (default 64)\n"
            "  -s, --seed S            random seed (default -1: from the clock)\n"
            "  -c, --ctx N             context length (default: the model's)\n"
            "  -b, --batch N           prompt tokens per step (default 256)\n"
            "  --weights T             device weight type: auto, f32, f16, q8_0, q4_0\n"
            "  --ignore-eos            keep generating after the end-of-sequence token\n"
            "  --no-roofline           skip measuring the copy bandwidth at the end\n"
            "  --route-csv F, --route-json F, --route-png F\n"
            "                          a MoErged model's routing of the prompt and the generated tokens\n"
            "                          (as vkmoe route writes it: experts and weights per token and\n"
            "                          routing point; heat map of the top expert per layer)\n"
            "  -d, --device D          device index or name (or $VKMOE_DEVICE)\n");
}

/* Token-level routing: how often each expert was the top choice over the generation, and the
 * whole trace when it is written out. */
typedef struct route_count {
    uint64_t top[64], total;
    route_trace *trace; /* NULL: not kept                                                     */
} route_count;

static void count_routes(void *user, uint32_t pos0, uint32_t n_tok, uint32_t n_points, uint32_t n_exp,
                         const uint32_t *ids, const float *w)
{
    route_count *c = user;
    if (c->trace) route_trace_cb(c->trace, pos0, n_tok, n_points, n_exp, ids, w);
    for (uint32_t p = 0; p < n_points; p++)
        for (uint32_t t = 0; t < n_tok; t++) {
            const uint32_t *id = ids + ((size_t)p * n_tok + t) * n_exp;
            const float *wt = w + ((size_t)p * n_tok + t) * n_exp;
            int best = -1;
            for (uint32_t j = 0; j < n_exp && id[j] != 0xffffffffu; j++)
                if (best < 0 || wt[j] > wt[best]) best = (int)j;
            if (best < 0) continue; /* no decision at this point (nothing routed there) */
            if (id[best] < 64) c->top[id[best]]++;
            c->total++;
        }
}

/* The sequence's token ids by position: the prompt's, then each generated one. */
typedef struct tok_log {
    int32_t *ids;
    size_t n, cap;
    bool oom;
} tok_log;

static void tok_log_add(tok_log *l, int32_t id)
{
    if (l->oom) return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        int32_t *p = realloc(l->ids, cap * sizeof *p);
        if (!p) {
            l->oom = true;
            return;
        }
        l->ids = p;
        l->cap = cap;
    }
    l->ids[l->n++] = id;
}

/* Which experts the run used: the sequence's decision, or the token-level tallies. */
static void print_experts(vkm_model *m, vkm_session *s, const route_count *c)
{
    uint32_t E = vkm_model_n_experts(m);
    if (!E) return;
    vkm_router_info ri;
    if (vkm_model_router_info(m, 0, &ri) == VKM_OK)
        fprintf(stderr, "vkmoe: router %s, %s level, %s depth, top-%u, %s aggregation\n", ri.policy, ri.granularity,
                ri.depth, ri.top_k, ri.aggregate);
    uint32_t ex[64];
    float w[64];
    size_t n = 0;
    if (vkm_session_experts(s, 0, ex, w, 64, &n) == VKM_OK) {
        fprintf(stderr, "vkmoe: experts used:");
        for (size_t i = 0; i < n && i < 64; i++)
            fprintf(stderr, " %s (%.3f)", ex[i] < E ? vkm_model_expert_name(m, ex[i]) : "merged adapter", (double)w[i]);
        fprintf(stderr, "%s\n", n ? "" : " none (the bare base)");
    } else if (c->total) {
        fprintf(stderr, "vkmoe: top expert per routing decision:");
        for (uint32_t e = 0; e < E && e < 64; e++)
            fprintf(stderr, " %s %.1f%%", vkm_model_expert_name(m, e), 100.0 * (double)c->top[e] / (double)c->total);
        fprintf(stderr, "\n");
    }
}

static bool on_token(void *user, int32_t token, const char *text, size_t len)
{
    if (user) tok_log_add(user, token);
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return true;
}

int cmd_run(int argc, char **argv)
{
    cli_dev_opts dev;
    cli_dev_opts_init(&dev);
    cli_model_opts mo;
    cli_model_opts_init(&mo);
    vkm_sampler_params sp;
    cli_sampling_init(&sp);
    const char *prompt = "", *file = NULL;
    route_outputs routes = {NULL, NULL, NULL};
    long long n_predict = 128;
    bool ignore_eos = false, roofline = true, bad = false;
    for (int i = 1; i < argc && !bad; i++) {
        const char *a = argv[i];
        if (cli_dev_opts_parse(&dev, argc, argv, &i) || cli_model_opts_parse(&mo, argc, argv, &i, &bad) ||
            cli_sampling_parse(&sp, argc, argv, &i, &bad))
            continue;
        if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            if (!(prompt = cli_value(argc, argv, &i))) bad = true;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            if (!(file = cli_value(argc, argv, &i))) bad = true;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            if (!cli_int_value(argc, argv, &i, -1, &n_predict)) bad = true;
        } else if (!strcmp(a, "--route-csv") || !strcmp(a, "--route-json") || !strcmp(a, "--route-png")) {
            const char **dst = a[8] == 'c' ? &routes.csv : a[8] == 'j' ? &routes.json : &routes.png;
            if (!(*dst = cli_value(argc, argv, &i))) bad = true;
        } else if (!strcmp(a, "--ignore-eos")) {
            ignore_eos = true;
        } else if (!strcmp(a, "--no-roofline")) {
            roofline = false;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            cli_error("run", "unknown option %s", a);
            usage(stderr);
            return 2;
        }
    }
    if (bad) return 2;
    char *file_text = NULL;
    if (file) {
        size_t flen = 0;
        if (!(file_text = cli_read_file(file, &flen))) return cli_error("run", "cannot read %s", file);
        prompt = file_text;
    }
    if (sp.seed == (uint64_t)-1) sp.seed = (uint64_t)time(NULL);

    vkm_context *ctx = cli_context(&dev);
    if (!ctx) {
        free(file_text);
        return 1;
    }
    double load_s = 0;
    vkm_model *m = cli_load_model(ctx, &mo, &load_s);
    if (!m) {
        vkm_context_destroy(ctx);
        free(file_text);
        return 1;
    }
    vkm_model_info info;
    vkm_model_get_info(m, &info);
    const vkm_device_caps *caps = vkm_context_caps(ctx);
    fprintf(stderr, "vkmoe: %s: %s, %u layers, dim %u, %u/%u heads, vocab %u, %s weights (%.1f MB) on %s\n",
            mo.model ? mo.model : cli_default_model(), info.arch, info.n_layers, info.dim, info.n_heads,
            info.n_kv_heads, info.n_vocab, vkm_dtype_name(info.weight_type), info.weight_bytes / 1e6, caps->name);
    fprintf(stderr, "vkmoe: load %.3f s; context %u; sampling temp %.2f top-k %u top-p %.2f min-p %.2f "
            "repeat %.2f seed %llu\n", load_s, info.n_ctx, sp.temperature, sp.top_k, sp.top_p, sp.min_p,
            sp.repeat_penalty, (unsigned long long)sp.seed);

    vkm_session_params ssp = vkm_session_default_params();
    ssp.sampling = sp;
    vkm_session *s = NULL;
    vkm_status st = vkm_session_create(m, &ssp, &s);
    vkm_generate_stats gs;
    memset(&gs, 0, sizeof gs);
    route_count rc_count;
    memset(&rc_count, 0, sizeof rc_count);
    route_trace trace = {0};
    tok_log toks = {0};
    vkm_generate_params gp = vkm_generate_default_params();
    const bool want_routes = routes.csv || routes.json || routes.png;
    bool routes_refused = false; /* --route-* on a model it cannot serve: said, exit 2 */
    if (st == VKM_OK && want_routes) { /* the prompt's ids, tokenized as vkm_generate does */
        const vkm_tokenizer *tok = vkm_model_tokenizer(m);
        size_t n = 0, len = strlen(prompt);
        bool bos = gp.add_bos && tok && vkm_tokenizer_adds_bos(tok);
        if (!vkm_model_n_experts(m) || !tok) {
            st = VKM_ERR_INVALID_ARGUMENT;
            routes_refused = true;
            cli_error("run", "--route-*: %s", !tok ? "the model has no tokenizer" : "the model has no experts to route");
        } else {
            vkm_tokenize(tok, prompt, len, bos, false, NULL, 0, &n); /* the count */
            toks.ids = malloc((n + 1) * sizeof *toks.ids);
            toks.cap = n + 1;
            if (!toks.ids || vkm_tokenize(tok, prompt, len, bos, false, toks.ids, n, &toks.n) != VKM_OK) toks.oom = true;
        }
        rc_count.trace = &trace;
    }
    if (st == VKM_OK && vkm_model_n_experts(m)) st = vkm_session_trace_routing(s, count_routes, &rc_count);
    if (st == VKM_OK) {
        fputs(prompt, stdout);
        fflush(stdout);
        gp.n_predict = n_predict < 0 ? info.n_ctx : (uint32_t)n_predict;
        gp.stop_at_eos = !ignore_eos;
        gp.on_token = on_token;
        gp.user = want_routes ? &toks : NULL;
        st = vkm_generate(s, prompt, &gp, &gs);
        fputc('\n', stdout);
        fflush(stdout);
    }
    int rc = 0;
    if (routes_refused) {
        rc = 2;
    } else if (st != VKM_OK) {
        rc = cli_error("run", "%s", vkm_context_errmsg(ctx));
    } else {
        print_experts(m, s, &rc_count);
        /* every traced position needs its token id (route_write checks them) */
        if (want_routes && toks.oom) rc = cli_error("run", "--route-*: out of host memory");
        else if (want_routes) rc = route_write("run", m, &trace, toks.ids, toks.n, &routes);
        double pre = gs.prefill_seconds > 0 ? gs.n_prompt / gs.prefill_seconds : 0;
        uint32_t nd = gs.n_generated > 0 ? gs.n_generated - 1 : 0; /* the first comes with the prefill */
        double dec = gs.decode_seconds > 0 && nd ? nd / gs.decode_seconds : 0;
        fprintf(stderr, "vkmoe: prefill %u tokens in %.3f s (%.1f tok/s); decode %u tokens in %.3f s (%.1f tok/s)\n",
                gs.n_prompt, gs.prefill_seconds, pre, nd, gs.decode_seconds, dec);
        if (gs.context_full)
            fprintf(stderr, "vkmoe: stopped after %u tokens: the context of %u is full (-c)\n", gs.n_generated, info.n_ctx);
        double copy = 0;
        if (roofline && dec > 0 && vkm_context_copy_bandwidth(ctx, 64u << 20, &copy) == VKM_OK && copy > 0) {
            double gbps = info.bytes_per_token * dec / 1e9;
            fprintf(stderr, "vkmoe: roofline: %.2f MB/token x %.1f tok/s = %.2f GB/s = %.1f%% of the "
                    "measured copy bandwidth (%.2f GB/s)\n", info.bytes_per_token / 1e6, dec, gbps,
                    100 * gbps / copy, copy);
        }
    }
    route_trace_free(&trace);
    free(toks.ids);
    vkm_session_free(s);
    vkm_model_free(m);
    vkm_context_destroy(ctx);
    free(file_text);
    return rc;
}
