/*
 * fuzz_tokenizer.c — libFuzzer target for the tokenizers. The first byte picks what the rest is:
 *   0..3  text to encode (then decode, whole and streaming) with the base tokenizer.model, the
 *         base tokenizer.json, stories260K's tokenizer.model or SmolLM's byte-level tokenizer.json
 *         (bit 2: parse_special, bit 3: add BOS)
 *   4     a tokenizer.json to load, then encode a fixed text with it
 *   5     a tokenizer.model (protobuf) to parse, then encode a fixed text with it
 *   6     int32 ids (taken modulo the vocabulary) to decode with each tokenizer
 *   7     a GGUF file whose tokenizer.ggml.* keys to build a tokenizer from, then encode with it
 * The real files come from $VKM_SHARED_DIR or the VKM_SHARED_DIR compile definition.
 * Checks: no crash, decode output is valid UTF-8, streaming decode equals whole decode; a
 * tokenizer built in modes 4, 5 and 7 is written as GGUF keys (vkm_tok_to_gguf) or refused
 * with a reason, and when written, the keys read back encode the fixed text as it does.
 */
#include <stdint.h>

#include "fuzz_common.h"
#include "tok_internal.h"
#include "unicode.h"

static const char *const files[4] = {
    "testbed/base/tokenizer.model",
    "testbed/base/tokenizer.json",
    "testbed/stories260K/tokenizer.model",
    "models/smollm135m-instruct-lora-medflashcards/tokenizer/tokenizer.json",
};
static vkm_tokenizer *toks[4];

static void load_all(void)
{
    static int done;
    if (done) return;
    done = 1;
    const char *dir = fuzz_shared_dir();
    for (int i = 0; i < 4; i++) {
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        if (vkm_tokenizer_load(path, &toks[i]) != VKM_OK) {
            fprintf(stderr, "fuzz_tokenizer: %s\n", vkm_tokenizer_errmsg(toks[i]));
            FUZZ_CHECK(!"the shared tokenizers load");
        }
    }
}

static void check_utf8(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = vkm_utf8_decode((const uint8_t *)s + i, n - i, &cp);
        FUZZ_CHECK(k);
        i += k;
    }
}

/* Decodes ids whole and streaming; both must agree and be valid UTF-8. */
static void decode(const vkm_tokenizer *t, const int32_t *ids, size_t n)
{
    size_t need = 0;
    vkm_status st = vkm_detokenize(t, ids, n, NULL, 0, &need);
    FUZZ_CHECK(st == (need ? VKM_ERR_LIMIT : VKM_OK));
    char *whole = malloc(need + 1), *stream = malloc(need + 64);
    FUZZ_CHECK(vkm_detokenize(t, ids, n, whole, need + 1, &need) == VKM_OK);
    check_utf8(whole, need);
    vkm_detok d;
    vkm_detok_init(&d, t);
    size_t total = 0, k;
    for (size_t i = 0; i < n; i++) {
        FUZZ_CHECK(vkm_detok_push(&d, ids[i], stream + total, need + 64 - total, &k) == VKM_OK);
        total += k;
    }
    FUZZ_CHECK(vkm_detok_flush(&d, stream + total, need + 64 - total, &k) == VKM_OK);
    total += k;
    FUZZ_CHECK(total == need && memcmp(whole, stream, need) == 0);
    free(whole);
    free(stream);
}

static void encode(const vkm_tokenizer *t, const char *s, size_t n, bool special, bool bos)
{
    size_t cap = n + 8, got = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    vkm_status st = vkm_tokenize(t, s, n, bos, special, ids, cap, &got);
    if (st == VKM_ERR_LIMIT) { /* e.g. a bad byte -> U+FFFD -> three byte tokens */
        int32_t *more = realloc(ids, got * sizeof *ids);
        FUZZ_CHECK(more);
        ids = more;
        cap = got;
        st = vkm_tokenize(t, s, n, bos, special, ids, cap, &got);
    }
    FUZZ_CHECK(st == VKM_OK && got <= cap);
    for (size_t i = 0; i < got; i++) FUZZ_CHECK(ids[i] >= 0 && ids[i] < t->n_vocab);
    decode(t, ids, got);
    free(ids);
}

static const char fixed_text[] = "Hello world <s> 123 \xC3\xA9\xF0\x9F\x98\x80 \xFF";

/* The ids of the fixed text (with specials and BOS) in *n, malloc'd; NULL when over cap. */
static int32_t *fixed_ids(const vkm_tokenizer *t, size_t *n)
{
    int32_t *ids = malloc(256 * sizeof *ids);
    FUZZ_CHECK(ids);
    if (vkm_tokenize(t, fixed_text, sizeof fixed_text - 1, true, true, ids, 256, n) == VKM_OK) return ids;
    free(ids);
    return NULL;
}

/* t as tokenizer.ggml.* keys: written, and then read back it encodes the fixed text as t
 * does, or refused with a reason; nothing else. */
static void to_gguf(const vkm_tokenizer *t)
{
    vkm_err e = {0};
    vkm_gguf_writer *w = NULL;
    FUZZ_CHECK(vkm_gguf_writer_create("fuzz_tok.gguf", &w, &e) == VKM_OK); /* never opened */
    const vkm_status st = vkm_tok_to_gguf(t, 0, w, &e);
    FUZZ_CHECK(st == VKM_OK || (st == VKM_ERR_UNSUPPORTED && e.msg[0]));
    if (st == VKM_OK) {
        uint8_t *img = NULL;
        uint64_t size = 0;
        FUZZ_CHECK(vkm_gguf_writer_meta_image(w, &img, &size) == VKM_OK);
        vkm_gguf g;
        FUZZ_CHECK(vkm_gguf_open_mem(img, size, "keys", &g, &e) == VKM_OK);
        vkm_tokenizer *b = NULL;
        FUZZ_CHECK(vkm_tok_from_gguf(&g, &b, &e) == VKM_OK);
        vkm_gguf_close(&g);
        size_t na = 0, nb = 0;
        int32_t *ia = fixed_ids(t, &na), *ib = fixed_ids(b, &nb);
        FUZZ_CHECK((ia == NULL) == (ib == NULL));
        FUZZ_CHECK(!ia || (na == nb && !memcmp(ia, ib, na * sizeof *ia)));
        free(ia);
        free(ib);
        vkm_tokenizer_free(b);
        free(img);
    }
    vkm_gguf_writer_free(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    load_all();
    int mode = data[0] % 8;
    bool special = (data[0] / 8) & 1, bos = (data[0] / 16) & 1;
    const char *rest = (const char *)data + 1;
    size_t n = size - 1;
    if (mode < 4) {
        encode(toks[mode], rest, n, special, bos);
        return 0;
    }
    if (mode == 4 || mode == 5) {
        vkm_tokenizer *t = vkm_tok_new();
        vkm_err e = {0};
        vkm_status st = mode == 4 ? vkm_tok_load_json_text(t, rest, n, NULL, &e)
                                  : vkm_tok_parse_spmodel(t, (const uint8_t *)rest, n, &e);
        if (st == VKM_OK) {
            encode(t, fixed_text, sizeof fixed_text - 1, true, true);
            to_gguf(t);
        }
        vkm_tokenizer_free(t);
        return 0;
    }
    if (mode == 7) {
        vkm_gguf g;
        vkm_err e = {0};
        if (vkm_gguf_open_mem(rest, n, "fuzz.gguf", &g, &e) != VKM_OK) return 0;
        vkm_tokenizer *t = NULL;
        if (vkm_tok_from_gguf(&g, &t, &e) == VKM_OK) {
            vkm_gguf_close(&g); /* the tokenizer keeps its own copy */
            encode(t, fixed_text, sizeof fixed_text - 1, special, bos);
            to_gguf(t);
            vkm_tokenizer_free(t);
        } else {
            FUZZ_CHECK(t == NULL && e.msg[0]);
            vkm_gguf_close(&g);
        }
        return 0;
    }
    if (mode == 6) {
        size_t m = n / 4;
        int32_t *ids = malloc((m ? m : 1) * sizeof *ids);
        for (int k = 0; k < 4; k++) {
            for (size_t i = 0; i < m; i++) {
                uint32_t v = vkm_rd32((const uint8_t *)rest + 4 * i);
                ids[i] = (int32_t)(v % (uint32_t)toks[k]->n_vocab);
            }
            decode(toks[k], ids, m);
        }
        free(ids);
    }
    return 0;
}
