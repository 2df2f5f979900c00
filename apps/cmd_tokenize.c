/*
 * cmd_tokenize.c — `vkmoe tokenize`: the token ids of a text, one line separated by spaces (BOS
 * included when the model adds it), like llama.cpp's tokenizer tool. The model may be a GGUF,
 * a tokenizer.json, a tokenizer.model or a model folder. No device is used.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: vkmoe tokenize -m MODEL (-p TEXT | --file F) [--no-bos] [--parse-special] [--pieces]\n"
               "  -m, --model MODEL    a GGUF model, tokenizer.json, tokenizer.model or a folder holding one\n"
               "  -p, --prompt TEXT    the text to tokenize\n"
               "  -f, --file F         read the text from file F (its bytes as they are)\n"
               "  --no-bos             do not add BOS even when the model adds it\n"
               "  --parse-special      read special-token texts (e.g. <|im_start|>, <s>) as those tokens\n"
               "  --pieces             one token per line: id and its piece, instead of the id line\n");
}

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if none. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len = s[0] < 0x80 ? 1 : s[0] < 0xC2 ? 0 : s[0] < 0xE0 ? 2 : s[0] < 0xF0 ? 3 : s[0] < 0xF5 ? 4 : 0;
    if (len == 0 || len > n) return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    if ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] > 0x9F) || (s[0] == 0xF0 && s[1] < 0x90) ||
        (s[0] == 0xF4 && s[1] > 0x8F))
        return 0;
    return len;
}

/* Prints a piece with control characters, backslashes and bytes that are not UTF-8 escaped. */
static void print_piece(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_len(p + i, n - i);
        if (k > 1) {
            fwrite(p + i, 1, k, stdout);
            i += k;
            continue;
        }
        unsigned char c = p[i++];
        if (c == '\\') fputs("\\\\", stdout);
        else if (c == '\n') fputs("\\n", stdout);
        else if (c == '\t') fputs("\\t", stdout);
        else if (c < 0x20 || c >= 0x7F) printf("\\x%02x", c);
        else putchar(c);
    }
}

int cmd_tokenize(int argc, char **argv)
{
    const char *model = NULL, *prompt = NULL, *file = NULL;
    bool no_bos = false, parse_special = false, pieces = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!(model = cli_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            if (!(prompt = cli_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            if (!(file = cli_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--no-bos")) {
            no_bos = true;
        } else if (!strcmp(a, "--parse-special")) {
            parse_special = true;
        } else if (!strcmp(a, "--pieces")) {
            pieces = true;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "vkmoe tokenize: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!model || (!prompt && !file) || (prompt && file)) {
        usage(stderr);
        return 2;
    }
    size_t len = 0;
    char *owned = NULL;
    const char *text = prompt;
    if (file) {
        if (!(owned = cli_read_file(file, &len))) return cli_error("tokenize", "%s: %s", file, strerror(errno));
        text = owned;
    } else {
        len = strlen(prompt);
    }
    vkm_tokenizer *t = NULL;
    vkm_status s = vkm_tokenizer_load(model, &t);
    if (s != VKM_OK) {
        int rc = cli_error("tokenize", "%s", t ? vkm_tokenizer_errmsg(t) : vkm_status_str(s));
        vkm_tokenizer_free(t);
        free(owned);
        return rc;
    }
    bool add_bos = !no_bos && vkm_tokenizer_adds_bos(t);
    size_t n = 0, cap = len + 16;
    int32_t *ids = malloc(cap * sizeof *ids);
    s = ids ? vkm_tokenize(t, text, len, add_bos, parse_special, ids, cap, &n) : VKM_ERR_OUT_OF_HOST_MEMORY;
    if (s == VKM_ERR_LIMIT) { /* more ids than bytes cannot happen, but be safe */
        int32_t *more = realloc(ids, n * sizeof *ids);
        s = more ? vkm_tokenize(t, text, len, add_bos, parse_special, more, n, &n) : VKM_ERR_OUT_OF_HOST_MEMORY;
        ids = more ? more : ids;
    }
    int rc = 0;
    if (s != VKM_OK) {
        rc = cli_error("tokenize", "%s", vkm_status_str(s));
    } else if (pieces) {
        char buf[1024];
        for (size_t i = 0; i < n; i++) {
            size_t k = 0;
            vkm_token_piece(t, ids[i], buf, sizeof buf, &k);
            printf("%6d -> '", ids[i]);
            print_piece(buf, k < sizeof buf ? k : sizeof buf);
            printf("'\n");
        }
    } else {
        for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        printf("\n");
    }
    free(ids);
    vkm_tokenizer_free(t);
    free(owned);
    return rc;
}
