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

#define STB_IMAGE_WRITE_IMPLEMENTATION
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#include <stb_image_write.h>
#pragma GCC diagnostic pop

#include "cli.h"

static const char *modules[7] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};

typedef struct trace {
    uint32_t n_points, n_exp, n_tok, cap;
    uint32_t window_start;      /* index of the window's first token in the text              */
    uint32_t *tok_index;        /* [n_tok] text index of each recorded token                  */
    uint8_t *ids;               /* [n_tok][n_points][n_exp], 255 = none                        */
    float *w;
} trace;

static void on_route(void *user, uint32_t pos0, uint32_t n_tok, uint32_t n_points, uint32_t n_exp,
                     const uint32_t *ids, const float *w)
{
    trace *t = user;
    t->n_points = n_points;
    t->n_exp = n_exp;
    if (t->n_tok + n_tok > t->cap) {
        uint32_t cap = (t->n_tok + n_tok) * 2;
        size_t per = (size_t)n_points * n_exp;
        t->tok_index = realloc(t->tok_index, cap * sizeof *t->tok_index);
        t->ids = realloc(t->ids, (size_t)cap * per);
        t->w = realloc(t->w, (size_t)cap * per * sizeof *t->w);
        if (!t->tok_index || !t->ids || !t->w) exit(1);
        t->cap = cap;
    }
    for (uint32_t i = 0; i < n_tok; i++) {
        uint32_t k = t->n_tok + i;
        t->tok_index[k] = t->window_start + pos0 + i;
        for (uint32_t p = 0; p < n_points; p++)
            for (uint32_t j = 0; j < n_exp; j++) {
                size_t src = ((size_t)p * n_tok + i) * n_exp + j, dst = ((size_t)k * n_points + p) * n_exp + j;
                t->ids[dst] = ids[src] == 0xffffffffu ? 255 : (uint8_t)ids[src];
                t->w[dst] = w[src];
            }
    }
    t->n_tok += n_tok;
}

/* Is routing point p a decision of its own at this depth (not a copy)? */
static bool governing(const char *depth, uint32_t p)
{
    if (!strcmp(depth, "module")) return true;
    if (!strcmp(depth, "layer")) return p % 7 == 0;
    return p == 0;
}

/* The top choice of token k at point p (largest weight, first on ties), or -1. */
static int top_choice(const trace *t, uint32_t k, uint32_t p)
{
    const uint8_t *id = t->ids + ((size_t)k * t->n_points + p) * t->n_exp;
    const float *w = t->w + ((size_t)k * t->n_points + p) * t->n_exp;
    int best = -1;
    for (uint32_t j = 0; j < t->n_exp && id[j] != 255; j++)
        if (best < 0 || w[j] > w[best]) best = (int)j;
    return best < 0 ? -1 : id[best];
}

static void json_text(FILE *f, const char *s, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static int write_png(const char *path, const double *freq, uint32_t layers, uint32_t n_exp)
{
    const int cw = 48, ch = 32, legend = 12;
    int w = (int)n_exp * cw, h = (int)layers * ch + legend;
    unsigned char *img = malloc((size_t)w * h * 3);
    if (!img) return 1;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double v = y < (int)layers * ch ? freq[(size_t)(y / ch) * n_exp + (size_t)(x / cw)] : (double)x / (w - 1);
            bool grid = y < (int)layers * ch && (x % cw == 0 || y % ch == 0);
            unsigned char *px = img + ((size_t)y * w + x) * 3;
            /* white (0) -> deep blue (1) */
            px[0] = grid ? 200 : (unsigned char)(255 - 225 * v);
            px[1] = grid ? 200 : (unsigned char)(255 - 185 * v);
            px[2] = grid ? 200 : (unsigned char)(255 - 95 * v);
        }
    int ok = stbi_write_png(path, w, h, 3, img, w * 3);
    free(img);
    return ok ? 0 : 1;
}

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
        if (!strcmp(a, "-c") || !strcmp(a, "--ctx")) {
            const char *v = cli_value(argc, argv, &i);
            if (!v || !cli_int(v, &ctx_len) || ctx_len < 1) bad = true;
            continue;
        }
        if (cli_dev_opts_parse(&dev, argc, argv, &i) || cli_model_opts_parse(&mo, argc, argv, &i, &bad)) continue;
        const char **dst = !strcmp(a, "--file") || !strcmp(a, "-f") ? &file : !strcmp(a, "--csv") ? &csv
                         : !strcmp(a, "--json") ? &json : !strcmp(a, "--png") ? &png
                         : !strcmp(a, "--save-router") ? &save : !strcmp(a, "--fit-lda") ? &fit : NULL;
        if (dst) {
            if (!(*dst = cli_value(argc, argv, &i))) bad = true;
        } else if (!strcmp(a, "--limit")) {
            const char *v = cli_value(argc, argv, &i);
            if (!v || !cli_int(v, &limit) || limit < 1) bad = true;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: vkmoe route -M MANIFEST [--file TEXT] [--ctx C] [--limit N] [--csv F] [--json F]\n"
                   "                   [--png F] [--save-router F] [--fit-lda F]\n"
                   "  per token and routing point: the experts chosen and their weights (CSV rows:\n"
                   "  token,text_index,layer,module,expert,name,weight); the PNG: how often each expert\n"
                   "  (column) is the top choice at each layer (row), white 0 to blue 1\n");
            return 0;
        } else {
            return cli_error("route", "unknown option %s", a);
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
    trace t = {0};
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
    FILE *f = fopen(file, "rb");
    if (f) {
        fseek(f, 0, SEEK_END);
        len = (size_t)ftell(f);
        fseek(f, 0, SEEK_SET);
        text = malloc(len + 1);
        if (text && fread(text, 1, len, f) != len) len = 0;
        fclose(f);
    }
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
    if (!logits || vkm_session_create(m, NULL, &s) != VKM_OK || vkm_session_trace_routing(s, on_route, &t) != VKM_OK) {
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
    /* top-choice frequency per layer */
    const uint32_t layers = t.n_points / 7;
    double *freq = calloc((size_t)layers * E, sizeof *freq);
    for (uint32_t k = 0; k < t.n_tok; k++)
        for (uint32_t p = 0; p < t.n_points; p++) {
            if (!governing(ri.depth, p)) continue;
            int e = top_choice(&t, k, p);
            if (e >= 0 && (uint32_t)e < E) freq[(size_t)(p / 7) * E + (uint32_t)e] += 1;
        }
    for (uint32_t l = 0; l < layers; l++) {
        double tot = 0;
        for (uint32_t e = 0; e < E; e++) tot += freq[(size_t)l * E + e];
        for (uint32_t e = 0; e < E && tot > 0; e++) freq[(size_t)l * E + e] /= tot;
    }
    char piece[256];
    if (csv) {
        FILE *o = fopen(csv, "w");
        if (!o) { cli_error("route", "cannot write %s", csv); free(freq); goto done; }
        fprintf(o, "token,text_index,layer,module,expert,name,weight\n");
        for (uint32_t k = 0; k < t.n_tok; k++)
            for (uint32_t p = 0; p < t.n_points; p++) {
                if (!governing(ri.depth, p)) continue;
                const uint8_t *id = t.ids + ((size_t)k * t.n_points + p) * t.n_exp;
                const float *w = t.w + ((size_t)k * t.n_points + p) * t.n_exp;
                for (uint32_t j = 0; j < t.n_exp && id[j] != 255; j++)
                    fprintf(o, "%d,%u,%u,%s,%u,%s,%.6f\n", ids[t.tok_index[k]], t.tok_index[k], p / 7,
                            !strcmp(ri.depth, "module") ? modules[p % 7] : ri.depth, id[j],
                            id[j] < E ? vkm_model_expert_name(m, id[j]) : "(merged)", (double)w[j]);
            }
        fclose(o);
    }
    if (json) {
        FILE *o = fopen(json, "w");
        if (!o) { cli_error("route", "cannot write %s", json); free(freq); goto done; }
        fprintf(o, "{\"manifest\": ");
        json_text(o, ri.manifest, strlen(ri.manifest));
        fprintf(o, ", \"policy\": \"%s\", \"granularity\": \"%s\", \"depth\": \"%s\", \"experts\": [", ri.policy,
                ri.granularity, ri.depth);
        for (uint32_t e = 0; e < E; e++) fprintf(o, "%s\"%s\"", e ? ", " : "", vkm_model_expert_name(m, e));
        fprintf(o, "], \"top_choice_by_layer\": [");
        for (uint32_t l = 0; l < layers; l++) {
            fprintf(o, "%s[", l ? ", " : "");
            for (uint32_t e = 0; e < E; e++) fprintf(o, "%s%.4f", e ? ", " : "", freq[(size_t)l * E + e]);
            fprintf(o, "]");
        }
        fprintf(o, "], \"tokens\": [");
        for (uint32_t k = 0; k < t.n_tok; k++) {
            size_t pn = 0;
            vkm_token_piece(tok, ids[t.tok_index[k]], piece, sizeof piece, &pn);
            fprintf(o, "%s\n {\"index\": %u, \"id\": %d, \"piece\": ", k ? "," : "", t.tok_index[k], ids[t.tok_index[k]]);
            json_text(o, piece, pn < sizeof piece ? pn : sizeof piece - 1);
            fprintf(o, ", \"routes\": [");
            bool first = true;
            for (uint32_t p = 0; p < t.n_points; p++) {
                if (!governing(ri.depth, p)) continue;
                const uint8_t *id = t.ids + ((size_t)k * t.n_points + p) * t.n_exp;
                const float *w = t.w + ((size_t)k * t.n_points + p) * t.n_exp;
                fprintf(o, "%s{\"layer\": %u, \"module\": \"%s\", \"experts\": [", first ? "" : ", ", p / 7,
                        !strcmp(ri.depth, "module") ? modules[p % 7] : ri.depth);
                for (uint32_t j = 0; j < t.n_exp && id[j] != 255; j++)
                    fprintf(o, "%s[%u, %.5f]", j ? ", " : "", id[j], (double)w[j]);
                fprintf(o, "]}");
                first = false;
            }
            fprintf(o, "]}");
        }
        fprintf(o, "\n]}\n");
        fclose(o);
    }
    if (png && write_png(png, freq, layers, E)) {
        cli_error("route", "cannot write %s", png);
        free(freq);
        goto done;
    }
    if (!csv && !json && !png) {
        printf("top choice by layer (%s routing, %s depth, %u tokens)\n%-6s", ri.granularity, ri.depth, t.n_tok, "layer");
        for (uint32_t e = 0; e < E; e++) printf(" %9.9s", vkm_model_expert_name(m, e));
        printf("\n");
        for (uint32_t l = 0; l < layers; l++) {
            printf("%-6u", l);
            for (uint32_t e = 0; e < E; e++) printf(" %9.3f", freq[(size_t)l * E + e]);
            printf("\n");
        }
    }
    free(freq);
    rc = 0;
done:
    vkm_session_free(s);
    vkm_model_free(m);
    vkm_context_destroy(ctx);
    free(t.tok_index);
    free(t.ids);
    free(t.w);
    free(ids);
    free(logits);
    free(text);
    return rc;
}
