/*
 * route_out.c — the routing trace of a session and its CSV / JSON / PNG outputs (route_out.h).
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

#include "route_out.h"

static const char *modules[7] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};

void route_trace_cb(void *user, uint32_t pos0, uint32_t n_tok, uint32_t n_points, uint32_t n_exp,
                     const uint32_t *ids, const float *w)
{
    route_trace *t = user;
    if (t->oom) return;
    t->n_points = n_points;
    t->n_exp = n_exp;
    if (t->n_tok + n_tok > t->cap) {
        uint32_t cap = (t->n_tok + n_tok) * 2;
        size_t per = (size_t)n_points * n_exp;
        uint32_t *ti = realloc(t->tok_index, cap * sizeof *t->tok_index);
        if (ti) t->tok_index = ti;
        uint8_t *id = ti ? realloc(t->ids, (size_t)cap * per) : NULL;
        if (id) t->ids = id;
        float *wt = id ? realloc(t->w, (size_t)cap * per * sizeof *t->w) : NULL;
        if (wt) t->w = wt;
        if (!wt) {
            t->oom = true;
            return;
        }
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
static int top_choice(const route_trace *t, uint32_t k, uint32_t p)
{
    const uint8_t *id = t->ids + ((size_t)k * t->n_points + p) * t->n_exp;
    const float *w = t->w + ((size_t)k * t->n_points + p) * t->n_exp;
    int best = -1;
    for (uint32_t j = 0; j < t->n_exp && id[j] != 255; j++)
        if (best < 0 || w[j] > w[best]) best = (int)j;
    return best < 0 ? -1 : id[best];
}

/* The length of the valid UTF-8 sequence at s (n bytes left): 0 for a stray or overlong byte,
 * a surrogate or a code point past U+10FFFF. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    const unsigned c = s[0];
    const size_t k = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (!k || k > n) return 0;
    uint32_t cp = k == 1 ? c : c & (0x7Fu >> k);
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3Fu);
    }
    static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
    return cp < least[k] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) ? 0 : k;
}

/* A JSON string: token pieces may be single bytes of a character (byte fallback), which JSON
 * cannot hold: each byte of an invalid sequence is written as U+FFFD. */
static void json_text(FILE *f, const char *s, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n;) {
        const unsigned char c = (unsigned char)s[i];
        const size_t k = utf8_len((const unsigned char *)s + i, n - i);
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else if (k) fwrite(s + i, 1, k, f);
        else fputs("\\ufffd", f);
        i += k ? k : 1;
    }
    fputc('"', f);
}

/* A CSV field, quoted (quotes doubled) when it holds a comma, quote or line break. */
static void csv_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
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


void route_trace_free(route_trace *t)
{
    free(t->tok_index);
    free(t->ids);
    free(t->w);
    memset(t, 0, sizeof *t);
}

/* Closes f; 0, or 1 after printing the error if anything written to it failed. */
static int close_out(const char *cmd, FILE *f, const char *path)
{
    int bad = ferror(f);
    if (fclose(f) != 0) bad = 1;
    return bad ? cli_error(cmd, "cannot write %s", path) : 0;
}

int route_write(const char *cmd, vkm_model *m, const route_trace *t, const int32_t *text_ids, size_t n_text,
                const route_outputs *o)
{
    vkm_router_info ri;
    const uint32_t E = vkm_model_n_experts(m);
    if (!E || vkm_model_router_info(m, 0, &ri) != VKM_OK)
        return cli_error(cmd, "not a MoErged model with a router");
    if (t->oom) return cli_error(cmd, "out of memory recording the routing");
    for (uint32_t k = 0; k < t->n_tok; k++)
        if (t->tok_index[k] >= n_text)
            return cli_error(cmd, "the routed position %u is past the %zu tokens of the text", t->tok_index[k], n_text);
    const vkm_tokenizer *tok = vkm_model_tokenizer(m);
    /* top-choice frequency per layer */
    const uint32_t layers = t->n_points / 7;
    double *freq = calloc((size_t)layers * E + 1, sizeof *freq);
    if (!freq) return cli_error(cmd, "out of host memory");
    for (uint32_t k = 0; k < t->n_tok; k++)
        for (uint32_t p = 0; p < layers * 7; p++) { /* each layer's modules, from the decision governing them */
            uint32_t g = !strcmp(ri.depth, "module") ? p : !strcmp(ri.depth, "layer") ? p / 7 * 7 : 0;
            if (g != p && p % 7) continue; /* one count a layer when a decision covers its modules */
            int e = top_choice(t, k, g);
            if (e >= 0 && (uint32_t)e < E) freq[(size_t)(p / 7) * E + (uint32_t)e] += 1;
        }
    for (uint32_t l = 0; l < layers; l++) {
        double tot = 0;
        for (uint32_t e = 0; e < E; e++) tot += freq[(size_t)l * E + e];
        for (uint32_t e = 0; e < E && tot > 0; e++) freq[(size_t)l * E + e] /= tot;
    }
    char piece[256];
    if (o->csv) {
        FILE *out = fopen(o->csv, "w");
        if (!out) { cli_error(cmd, "cannot write %s", o->csv); free(freq); return 1; }
        fprintf(out, "token,text_index,layer,module,expert,name,weight\n");
        for (uint32_t k = 0; k < t->n_tok; k++)
            for (uint32_t p = 0; p < t->n_points; p++) {
                if (!governing(ri.depth, p)) continue;
                const uint8_t *id = t->ids + ((size_t)k * t->n_points + p) * t->n_exp;
                const float *w = t->w + ((size_t)k * t->n_points + p) * t->n_exp;
                for (uint32_t j = 0; j < t->n_exp && id[j] != 255; j++) {
                    fprintf(out, "%d,%u,%u,%s,%u,", text_ids[t->tok_index[k]], t->tok_index[k], p / 7,
                            !strcmp(ri.depth, "module") ? modules[p % 7] : ri.depth, id[j]);
                    csv_field(out, id[j] < E ? vkm_model_expert_name(m, id[j]) : "(merged)");
                    fprintf(out, ",%.6f\n", (double)w[j]);
                }
            }
        if (close_out(cmd, out, o->csv)) { free(freq); return 1; }
    }
    if (o->json) {
        FILE *out = fopen(o->json, "w");
        if (!out) { cli_error(cmd, "cannot write %s", o->json); free(freq); return 1; }
        fprintf(out, "{\"manifest\": ");
        json_text(out, ri.manifest, strlen(ri.manifest));
        fprintf(out, ", \"policy\": \"%s\", \"granularity\": \"%s\", \"depth\": \"%s\", \"experts\": [", ri.policy,
                ri.granularity, ri.depth);
        for (uint32_t e = 0; e < E; e++) {
            fputs(e ? ", " : "", out);
            json_text(out, vkm_model_expert_name(m, e), strlen(vkm_model_expert_name(m, e)));
        }
        fprintf(out, "], \"top_choice_by_layer\": [");
        for (uint32_t l = 0; l < layers; l++) {
            fprintf(out, "%s[", l ? ", " : "");
            for (uint32_t e = 0; e < E; e++) fprintf(out, "%s%.4f", e ? ", " : "", freq[(size_t)l * E + e]);
            fprintf(out, "]");
        }
        fprintf(out, "], \"tokens\": [");
        for (uint32_t k = 0; k < t->n_tok; k++) {
            size_t pn = 0;
            vkm_token_piece(tok, text_ids[t->tok_index[k]], piece, sizeof piece, &pn);
            fprintf(out, "%s\n {\"index\": %u, \"id\": %d, \"piece\": ", k ? "," : "", t->tok_index[k], text_ids[t->tok_index[k]]);
            json_text(out, piece, pn < sizeof piece ? pn : sizeof piece - 1);
            fprintf(out, ", \"routes\": [");
            bool first = true;
            for (uint32_t p = 0; p < t->n_points; p++) {
                if (!governing(ri.depth, p)) continue;
                const uint8_t *id = t->ids + ((size_t)k * t->n_points + p) * t->n_exp;
                const float *w = t->w + ((size_t)k * t->n_points + p) * t->n_exp;
                fprintf(out, "%s{\"layer\": %u, \"module\": \"%s\", \"experts\": [", first ? "" : ", ", p / 7,
                        !strcmp(ri.depth, "module") ? modules[p % 7] : ri.depth);
                for (uint32_t j = 0; j < t->n_exp && id[j] != 255; j++)
                    fprintf(out, "%s[%u, %.5f]", j ? ", " : "", id[j], (double)w[j]);
                fprintf(out, "]}");
                first = false;
            }
            fprintf(out, "]}");
        }
        fprintf(out, "\n]}\n");
        if (close_out(cmd, out, o->json)) { free(freq); return 1; }
    }
    if (o->png && write_png(o->png, freq, layers, E)) {
        cli_error(cmd, "cannot write %s", o->png);
        free(freq);
        return 1;
    }
    if (!o->csv && !o->json && !o->png) {
        printf("top choice by layer (%s routing, %s depth, %u tokens)\n%-6s", ri.granularity, ri.depth, t->n_tok, "layer");
        for (uint32_t e = 0; e < E; e++) printf(" %9.9s", vkm_model_expert_name(m, e));
        printf("\n");
        for (uint32_t l = 0; l < layers; l++) {
            printf("%-6u", l);
            for (uint32_t e = 0; e < E; e++) printf(" %9.3f", freq[(size_t)l * E + e]);
            printf("\n");
        }
    }
    free(freq);
    return 0;
}
