/*
 * cmd_route.c — `vkmoe route`: how a MoErged model routes a text. Feeds the text in windows
 * (like ppl) and records, for every token and routing point, the experts chosen and their
 * weights; writes them as CSV and/or JSON, and a heat map PNG of how often each expert is the
 * top choice at each layer (as Figure 6 of the moetify paper draws it); without outputs,
 * prints that table. --save-router keeps computed router matrices (centroids, Arrow
 * prototypes) in a router file for "router.weights"; --fit-lda fits a sequence-level router
 * from the experts' calibration texts (vkm_model_fit_router).
 */
#include <stdlib.h>
#include <string.h>

#include "route_out.h"

int cmd_route(int argc, char **argv)
{
    cli_dev_opts dev;
    cli_dev_opts_init(&dev);
    cli_model_opts mo;
    cli_model_opts_init(&mo);
    const char *file = NULL, *csv = NULL, *json = NULL, *png = NULL, *save = NULL, *fit = NULL;
    long long ctx_len = 128, limit = 0;
    bool bad = false;
    for (int i = 1; i < argc && !bad; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-c") || !strcmp(a, "--ctx") || !strcmp(a, "--ctx-size")) { /* the window */
            if (!cli_int_value(argc, argv, &i, 1, &ctx_len)) bad = true;
            continue;
        }
        if (cli_dev_opts_parse(&dev, argc, argv, &i) || cli_model_opts_parse(&mo, argc, argv, &i, &bad)) continue;
        const char **dst = !strcmp(a, "--file") || !strcmp(a, "-f") ? &file : !strcmp(a, "--csv") ? &csv
                         : !strcmp(a, "--json") ? &json : !strcmp(a, "--png") ? &png
                         : !strcmp(a, "--save-router") ? &save : !strcmp(a, "--fit-lda") ? &fit : NULL;
        if (dst) {
            if (!(*dst = cli_value(argc, argv, &i))) bad = true;
        } else if (!strcmp(a, "--limit")) {
            if (!cli_int_value(argc, argv, &i, 1, &limit)) bad = true;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: vkmoe route -M MANIFEST [--file TEXT] [--ctx C] [--limit N] [--csv F] [--json F]\n"
                   "                   [--png F] [--save-router F] [--fit-lda F]\n"
                   "  per token and routing point: the experts chosen and their weights (CSV rows:\n"
                   "  token,text_index,layer,module,expert,name,weight); the PNG: how often each expert\n"
                   "  (column) is the top choice at each layer (row), white 0 to blue 1\n");
            return 0;
        } else {
            cli_error("route", "unknown option %s", a);
            return 2;
        }
    }
    if (bad) return 2;
    if (!mo.model) return cli_error("route", "give the manifest with -M");
    mo.n_ctx = (uint32_t)ctx_len;
    vkm_context *ctx = cli_context(&dev);
    vkm_model *m = ctx ? cli_load_model(ctx, &mo, NULL) : NULL;
    if (!m) {
        vkm_context_destroy(ctx);
        return 1;
    }
    int rc = 1;
    char *text = NULL;
    int32_t *ids = NULL;
    float *logits = NULL;
    vkm_session *s = NULL;
    route_trace t = {0};
    vkm_router_info ri;
    const uint32_t E = vkm_model_n_experts(m);
    if (!E || vkm_model_router_info(m, 0, &ri) != VKM_OK) {
        cli_error("route", "%s is not a MoErged model with a router", mo.model);
        goto done;
    }
    if (fit) {
        if (vkm_model_fit_router(m, fit) != VKM_OK) {
            cli_error("route", "%s", vkm_context_errmsg(ctx));
            goto done;
        }
        fprintf(stderr, "vkmoe route: linear-discriminant router fitted on the calibration texts: %s\n", fit);
        if (!file && !save) {
            rc = 0;
            goto done;
        }
    }
    if (save) {
        if (vkm_model_save_router(m, 0, save) != VKM_OK) {
            cli_error("route", "%s", vkm_context_errmsg(ctx));
            goto done;
        }
        fprintf(stderr, "vkmoe route: router (%s) saved to %s\n", ri.policy, save);
        if (!file) {
            rc = 0;
            goto done;
        }
    }
    if (!file) {
        cli_error("route", "give a text with --file");
        goto done;
    }
    size_t len = 0;
    text = cli_read_file(file, &len);
    if (!text || !len) {
        cli_error("route", "cannot read %s", file);
        goto done;
    }
    const vkm_tokenizer *tok = vkm_model_tokenizer(m);
    size_t n = 0;
    vkm_tokenize(tok, text, len, true, false, NULL, 0, &n);
    ids = malloc(n * sizeof *ids);
    if (!ids || vkm_tokenize(tok, text, len, vkm_tokenizer_adds_bos(tok), false, ids, n, &n) != VKM_OK) {
        cli_error("route", "cannot tokenize %s", file);
        goto done;
    }
    if (limit && (size_t)limit < n) n = (size_t)limit;
    vkm_model_info info;
    vkm_model_get_info(m, &info);
    logits = malloc((size_t)ctx_len * info.n_vocab * sizeof *logits);
    if (!logits || vkm_session_create(m, NULL, &s) != VKM_OK || vkm_session_trace_routing(s, route_trace_cb, &t) != VKM_OK) {
        cli_error("route", "%s", vkm_context_errmsg(ctx));
        goto done;
    }
    for (size_t w0 = 0; w0 < n; w0 += (size_t)ctx_len) {
        size_t wn = n - w0 < (size_t)ctx_len ? n - w0 : (size_t)ctx_len;
        vkm_session_reset(s);
        t.window_start = (uint32_t)w0;
        if (vkm_session_eval(s, ids + w0, wn, logits) != VKM_OK) {
            cli_error("route", "%s", vkm_context_errmsg(ctx));
            goto done;
        }
        fprintf(stderr, "\rvkmoe route: %zu/%zu tokens", w0 + wn, n);
    }
    fputc('\n', stderr);
    route_outputs outs = {csv, json, png};
    if (route_write("route", m, &t, ids, n, &outs)) goto done;
    rc = 0;
done:
    vkm_session_free(s);
    vkm_model_free(m);
    vkm_context_destroy(ctx);
    route_trace_free(&t);
    free(ids);
    free(logits);
    free(text);
    return rc;
}
