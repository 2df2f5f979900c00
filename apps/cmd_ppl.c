/*
 * cmd_ppl.c — `vkmoe ppl`: perplexity of a model on a text. The text is tokenized once (BOS
 * first when the tokenizer adds one); window k feeds tokens [k*S, k*S + C) at positions
 * 0..C-1 as a fresh sequence and scores the predictions of the tokens that follow them which
 * no earlier window scored; perplexity = exp(mean negative log-likelihood).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: vkmoe ppl [-m MODEL] --file TEXT [--ctx C] [--stride S] [--limit N] [--json]\n"
               "  --ctx C      window length in tokens (default 128)\n"
               "  --stride S   tokens between window starts (default: C)\n"
               "  --limit N    stop after N scored tokens\n"
               "  --json       one JSON object on stdout: perplexity, tokens, nll (mean), nll_sum\n"
               "  plus -b/--batch, --weights, -d/--device as for run\n"
               "  A sequence-level router routes each window from that window, the tokens it scores\n"
               "  included (as a prompt routes itself); token-level routers see no later token.\n");
}

int cmd_ppl(int argc, char **argv)
{
    cli_dev_opts dev;
    cli_dev_opts_init(&dev);
    cli_model_opts mo;
    cli_model_opts_init(&mo);
    const char *file = NULL;
    long long stride = 0, limit = 0, ctx_len = 0;
    bool json = false, bad = false;
    for (int i = 1; i < argc && !bad; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-c") || !strcmp(a, "--ctx") || !strcmp(a, "--ctx-size")) { /* the window */
            if (!cli_int_value(argc, argv, &i, 1, &ctx_len)) bad = true;
            continue;
        }
        if (cli_dev_opts_parse(&dev, argc, argv, &i) || cli_model_opts_parse(&mo, argc, argv, &i, &bad)) continue;
        if (!strcmp(a, "--file") || !strcmp(a, "-f")) {
            if (!(file = cli_value(argc, argv, &i))) bad = true;
        } else if (!strcmp(a, "--stride")) {
            if (!cli_int_value(argc, argv, &i, 1, &stride)) bad = true;
        } else if (!strcmp(a, "--limit")) {
            if (!cli_int_value(argc, argv, &i, 1, &limit)) bad = true;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            cli_error("ppl", "unknown option %s", a);
            usage(stderr);
            return 2;
        }
    }
    if (bad) return 2;
    if (!file) {
        usage(stderr);
        return 2;
    }
    const uint32_t C = ctx_len ? (uint32_t)ctx_len : 128, S = stride ? (uint32_t)stride : C;
    size_t len = 0;
    char *text = cli_read_file(file, &len);
    if (!text) return cli_error("ppl", "cannot read %s", file);
    mo.n_ctx = C;
    mo.n_seq = 1;
    vkm_context *ctx = cli_context(&dev);
    vkm_model *m = ctx ? cli_load_model(ctx, &mo, NULL) : NULL;
    int rc = 1;
    int32_t *ids = NULL;
    float *logits = NULL;
    vkm_session *s = NULL;
    if (!m) goto done;
    const vkm_tokenizer *tok = vkm_model_tokenizer(m);
    if (!tok) {
        cli_error("ppl", "the model has no tokenizer");
        goto done;
    }
    size_t n = 0;
    vkm_tokenize(tok, text, len, true, false, NULL, 0, &n);
    ids = malloc((n ? n : 1) * sizeof *ids);
    vkm_status ts = ids ? vkm_tokenize(tok, text, len, vkm_tokenizer_adds_bos(tok), false, ids, n, &n)
                        : VKM_ERR_OUT_OF_HOST_MEMORY;
    if (ts != VKM_OK) {
        cli_error("ppl", "cannot tokenize %s: %s", file, vkm_status_str(ts));
        goto done;
    }
    vkm_model_info info;
    vkm_model_get_info(m, &info);
    logits = malloc((size_t)C * info.n_vocab * sizeof *logits);
    if (!logits || vkm_session_create(m, NULL, &s) != VKM_OK) {
        cli_error("ppl", "%s", vkm_context_errmsg(ctx));
        goto done;
    }
    size_t want = n > 1 ? n - 1 : 0;
    if (limit && (size_t)limit < want) want = (size_t)limit;
    double nll = 0;
    size_t scored = 0, last = 0, windows = 0; /* last: highest target index scored so far */
    double t0 = cli_now();
    for (size_t start = 0; start + 1 < n && scored < want; start += S) {
        size_t end = start + C < n ? start + C : n; /* feed [start, end) */
        size_t first = start + 1 > last + 1 ? start + 1 : last + 1;
        size_t stop = end < n - 1 ? end : n - 1;        /* targets first..stop */
        if (first > stop) continue;
        vkm_session_reset(s);
        if (vkm_session_eval(s, ids + start, end - start, logits) != VKM_OK) {
            cli_error("ppl", "%s", vkm_context_errmsg(ctx));
            goto done;
        }
        windows++;
        for (size_t j = first; j <= stop && scored < want; j++) {
            const float *row = logits + (j - 1 - start) * info.n_vocab;
            double mx = row[0], z = 0;
            for (uint32_t v = 1; v < info.n_vocab; v++) mx = row[v] > mx ? row[v] : mx;
            for (uint32_t v = 0; v < info.n_vocab; v++) z += exp(row[v] - mx);
            nll += -(row[ids[j]] - mx - log(z));
            scored++;
            last = j;
        }
        double el = cli_now() - t0, rate = scored / (el > 0 ? el : 1e-9);
        int bar = (int)(30.0 * scored / (want ? want : 1));
        fprintf(stderr, "\r[%.*s%*s] %zu/%zu tokens, ppl %.4f, %.0f tok/s, %.0f s left ", bar,
                "==============================", 30 - bar, "", scored, want, exp(nll / scored), rate,
                (want - scored) / (rate > 0 ? rate : 1));
    }
    fputc('\n', stderr);
    if (!scored) {
        cli_error("ppl", "%s: fewer than 2 tokens: nothing to score", file);
        goto done;
    }
    double mean = nll / scored, ppl = exp(mean);
    if (json)
        printf("{\"perplexity\": %.6f, \"tokens\": %zu, \"nll\": %.8f, \"nll_sum\": %.6f, \"windows\": %zu, "
               "\"ctx\": %u, \"stride\": %u, \"text_tokens\": %zu}\n", ppl, scored, mean, nll, windows, C, S, n);
    else
        printf("perplexity %.4f over %zu tokens (mean nll %.5f, %zu windows of %u, stride %u)\n", ppl,
               scored, mean, windows, C, S);
    rc = 0;
done:
    vkm_session_free(s);
    vkm_model_free(m);
    vkm_context_destroy(ctx);
    free(ids);
    free(logits);
    free(text);
    return rc;
}
