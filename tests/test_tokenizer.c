/*
 * test_tokenizer.c — tokenizers against their references: exact ids for every string of
 * tests/data/tokenizer/corpus.txt from each source (testbed base tokenizer.model, tokenizer.json
 * and model.gguf; stories260K; SmolLM tokenizer.json and a byte-level GGUF built from it;
 * tokenizer.json variants for the Llama 3 / Qwen 2 regexes, ByteLevel prefix space, Metaspace),
 * whole eval files by count and hash, decoding against the references' own decode, streaming
 * decode, and API edge cases. Malformed files are in test_tokenizer_bad.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <cmocka.h>

#include "loader_util.h"
#include "tokenizer.h"
#include "unicode.h"
#include "writer.h"

/* ---- the reference tables ----------------------------------------------------------------- */
/* One line of a reference file: the text, its ids, and the reference's decode of those ids. */
typedef struct ref_case {
    uint8_t *text;
    size_t len;
    int32_t *ids;
    size_t n_ids;
    uint8_t *dec;
    size_t dec_len;
} ref_case;

typedef struct ref_set {
    ref_case *v;
    size_t n;
} ref_set;

static int hexv(int c) { return c <= '9' ? c - '0' : (c | 32) - 'a' + 10; }

static uint8_t *unhex(const char *s, size_t n, size_t *len)
{
    uint8_t *p = malloc(n / 2 + 1);
    assert_non_null(p);
    for (size_t i = 0; i + 1 < n; i += 2) p[i / 2] = (uint8_t)(hexv(s[i]) * 16 + hexv(s[i + 1]));
    *len = n / 2;
    return p;
}

static void ref_load(const char *name, ref_set *r)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/data/tokenizer/%s", VKM_SOURCE_DIR, name);
    size_t n;
    char *text = (char *)read_bytes(path, &n);
    memset(r, 0, sizeof *r);
    for (size_t i = 0; i < n; i++) r->n += text[i] == '\n';
    r->v = calloc(r->n + 1, sizeof *r->v);
    assert_non_null(r->v);
    r->n = 0;
    for (char *line = text; line < text + n;) {
        char *end = memchr(line, '\n', (size_t)(text + n - line));
        if (!end) end = text + n;
        if (line[0] != '#' && end > line) {
            char *t1 = memchr(line, '\t', (size_t)(end - line));
            char *t2 = t1 ? memchr(t1 + 1, '\t', (size_t)(end - t1 - 1)) : NULL;
            assert_non_null(t2);
            ref_case *c = &r->v[r->n++];
            c->text = unhex(line, (size_t)(t1 - line), &c->len);
            c->ids = malloc(sizeof *c->ids * ((size_t)(t2 - t1) / 2 + 1));
            for (char *p = t1 + 1; p < t2;) {
                c->ids[c->n_ids++] = (int32_t)strtol(p, &p, 10);
                while (p < t2 && *p == ' ') p++;
            }
            if (end - t2 == 2 && t2[1] == '=') {
                c->dec = malloc(c->len + 1);
                memcpy(c->dec, c->text, c->len);
                c->dec_len = c->len;
            } else {
                c->dec = unhex(t2 + 1, (size_t)(end - t2 - 1), &c->dec_len);
            }
        }
        line = end + 1;
    }
    free(text);
}

static void ref_free(ref_set *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->v[i].text);
        free(r->v[i].ids);
        free(r->v[i].dec);
    }
    free(r->v);
}

static void print_ids(const char *what, const int32_t *ids, size_t n)
{
    printf("    %s:", what);
    for (size_t i = 0; i < n && i < 40; i++) printf(" %d", ids[i]);
    printf(n > 40 ? " ...\n" : "\n");
}

static size_t tok_check_ids(vkm_tokenizer *t, const char *refname, bool parse_special,
                     bool (*skip_case)(const ref_case *))
{
    ref_set r;
    ref_load(refname, &r);
    size_t bad = 0, checked = 0;
    for (size_t i = 0; i < r.n; i++) {
        const ref_case *c = &r.v[i];
        if (skip_case && skip_case(c)) continue;
        checked++;
        size_t n = 0, cap = c->n_ids + 64;
        int32_t *ids = malloc(cap * sizeof *ids);
        vkm_status s = vkm_tokenize(t, (const char *)c->text, c->len, false, parse_special, ids, cap, &n);
        if (s != VKM_OK || n != c->n_ids || memcmp(ids, c->ids, n * sizeof *ids) != 0) {
            if (bad++ < 5) {
                printf("  %s: mismatch on \"%.*s\" (%zu bytes)\n", refname, (int)(c->len > 60 ? 60 : c->len),
                       (const char *)c->text, c->len);
                print_ids("want", c->ids, c->n_ids);
                print_ids("got ", ids, n);
            }
        }
        free(ids);
    }
    printf("  %s (%s, parse_special=%d): %zu of %zu strings exact\n", refname, vkm_tokenizer_kind(t),
           parse_special, checked - bad, checked);
    ref_free(&r);
    return bad;
}

static size_t tok_check_decode(vkm_tokenizer *t, const char *refname)
{
    ref_set r;
    ref_load(refname, &r);
    size_t bad = 0;
    for (size_t i = 0; i < r.n; i++) {
        const ref_case *c = &r.v[i];
        size_t n = 0, cap = c->dec_len * 2 + 64;
        char *buf = malloc(cap);
        vkm_status s = vkm_detokenize(t, c->ids, c->n_ids, buf, cap, &n);
        if (s != VKM_OK || n != c->dec_len || memcmp(buf, c->dec, n) != 0) {
            if (bad++ < 5)
                printf("  %s: decode of \"%.*s\" gives \"%.*s\", the reference \"%.*s\"\n", refname,
                       (int)(c->len > 40 ? 40 : c->len), (const char *)c->text, (int)(n > 40 ? 40 : n), buf,
                       (int)(c->dec_len > 40 ? 40 : c->dec_len), (const char *)c->dec);
        }
        /* streaming gives the same text */
        vkm_detok d;
        vkm_detok_init(&d, t);
        char *sbuf = malloc(cap + 64);
        size_t total = 0, k = 0;
        for (size_t j = 0; j < c->n_ids; j++) {
            assert_int_equal(vkm_detok_push(&d, c->ids[j], sbuf + total, cap + 64 - total, &k), VKM_OK);
            total += k;
            assert_true(d.n_pending <= 3);
        }
        assert_int_equal(vkm_detok_flush(&d, sbuf + total, cap + 64 - total, &k), VKM_OK);
        total += k;
        if (total != n || memcmp(sbuf, buf, n) != 0) {
            if (bad++ < 5) printf("  %s: streaming decode differs for \"%.*s\"\n", refname, (int)c->len, c->text);
        }
        free(sbuf);
        free(buf);
    }
    printf("  %s: decode of %zu id lists, %zu differ from the reference decode\n", refname, r.n, bad);
    ref_free(&r);
    return bad;
}

static vkm_tokenizer *tok_load(const char *path)
{
    vkm_tokenizer *t = NULL;
    vkm_status s = vkm_tokenizer_load(path, &t);
    if (s != VKM_OK) {
        printf("  %s: %s\n", path, vkm_tokenizer_errmsg(t));
        vkm_tokenizer_free(t);
        fail_msg("cannot load %s", path);
    }
    return t;
}

/* FNV-1a 64 of ids as int32 little-endian (the generators' hash). */
static uint64_t fnv64(const int32_t *ids, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        for (int b = 0; b < 4; b++) h = (h ^ (((uint32_t)ids[i] >> (8 * b)) & 0xFF)) * 0x100000001b3ull;
    return h;
}

/* Whole eval files: number of ids and their hash against <ref>_files.txt. */
static void check_files(vkm_tokenizer *t, const char *refname)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/data/tokenizer/%s", VKM_SOURCE_DIR, refname);
    size_t n;
    char *text = (char *)read_bytes(path, &n), *save = NULL;
    text = realloc(text, n + 1);
    text[n] = 0;
    int files = 0;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') continue;
        char name[64];
        unsigned long long want_hash;
        size_t want_n;
        assert_int_equal(sscanf(line, "%63s %zu %llx", name, &want_n, &want_hash), 3);
        char rel[128];
        snprintf(rel, sizeof rel, "testbed/eval/%s.txt", name);
        size_t len;
        char *data = (char *)read_bytes(shared_path(rel), &len);
        size_t cap = len + 16, got_n = 0;
        int32_t *ids = malloc(cap * sizeof *ids);
        assert_int_equal(vkm_tokenize(t, data, len, false, false, ids, cap, &got_n), VKM_OK);
        if (got_n != want_n || fnv64(ids, got_n) != want_hash)
            fail_msg("%s: %s.txt gives %zu ids (hash %016llx), the reference %zu (%016llx)", refname, name,
                     got_n, (unsigned long long)fnv64(ids, got_n), want_n, want_hash);
        files++;
        free(ids);
        free(data);
    }
    printf("  %s: %d whole eval files exact\n", refname, files);
    free(text);
}

/* stories260K collapses runs of spaces (remove_extra_whitespaces): a GGUF vocabulary cannot
 * say so, so the GGUF is compared on the strings where that makes no difference. */
static bool skip_extra_spaces(const ref_case *c)
{
    if (c->len && (c->text[0] == ' ' || c->text[c->len - 1] == ' ')) return true;
    for (size_t i = 0; i + 1 < c->len; i++)
        if (c->text[i] == ' ' && c->text[i + 1] == ' ') return true;
    return false;
}

/* ---- SentencePiece-style: the testbed base tokenizer from its three files ------------------ */
static void test_base_spmodel(void **state)
{
    (void)state;
    vkm_tokenizer *t = tok_load(shared_path("testbed/base/tokenizer.model"));
    assert_string_equal(vkm_tokenizer_kind(t), "spm");
    assert_int_equal(vkm_tokenizer_n_vocab(t), 1024);
    assert_int_equal(vkm_tokenizer_bos(t), 1);
    assert_int_equal(vkm_tokenizer_eos(t), 2);
    assert_true(vkm_tokenizer_adds_bos(t));
    assert_int_equal(tok_check_ids(t, "spm_base.txt", false, NULL), 0);
    assert_int_equal(tok_check_decode(t, "spm_base.txt"), 0);
    check_files(t, "spm_base_files.txt");
    vkm_tokenizer_free(t);
}

static void test_base_json(void **state)
{
    (void)state;
    vkm_tokenizer *t = tok_load(shared_path("testbed/base/tokenizer.json"));
    assert_string_equal(vkm_tokenizer_kind(t), "bpe");
    assert_int_equal(vkm_tokenizer_bos(t), 1);
    assert_int_equal(vkm_tokenizer_eos(t), 2);
    assert_true(vkm_tokenizer_adds_bos(t));
    /* literal text: the same ids as SentencePiece (invalid UTF-8 included) */
    assert_int_equal(tok_check_ids(t, "spm_base.txt", false, NULL), 0);
    assert_int_equal(tok_check_decode(t, "spm_base.txt"), 0);
    check_files(t, "spm_base_files.txt");
    check_files(t, "hf_base_files.txt");
    /* with special tokens matched: Hugging Face's ids */
    assert_int_equal(tok_check_ids(t, "hf_base.txt", true, NULL), 0);
    assert_int_equal(tok_check_ids(t, "hf_base_plain.txt", false, NULL), 0);
    /* decoding as Hugging Face does, but for <unk>: HF skips it (special), vkmoe shows " ⁇ " as
     * SentencePiece: the two strings with "<unk>" read as the token differ */
    assert_int_equal(tok_check_decode(t, "hf_base.txt"), 2);
    vkm_tokenizer_free(t);
}

static void test_base_gguf(void **state)
{
    (void)state;
    vkm_tokenizer *t = tok_load(shared_path("testbed/base/model.gguf"));
    assert_string_equal(vkm_tokenizer_kind(t), "spm");
    assert_int_equal(vkm_tokenizer_n_vocab(t), 1024);
    assert_true(vkm_tokenizer_adds_bos(t));
    assert_int_equal(tok_check_ids(t, "spm_base.txt", false, NULL), 0);
    assert_int_equal(tok_check_decode(t, "spm_base.txt"), 0);
    assert_int_equal(tok_check_ids(t, "hf_base.txt", true, NULL), 0);
    check_files(t, "spm_base_files.txt");
    vkm_tokenizer_free(t);

    /* the engine's entry: from an open GGUF */
    vkm_gguf g;
    vkm_err e = {0};
    memset(&g, 0, sizeof g);
    expect_ok(vkm_gguf_open(shared_path("testbed/base/model-f16.gguf"), &g, &e), &e);
    expect_ok(vkm_tok_from_gguf(&g, &t, &e), &e);
    vkm_gguf_close(&g); /* the tokenizer owns its copy */
    assert_int_equal(tok_check_ids(t, "spm_base.txt", false, NULL), 0);
    vkm_tokenizer_free(t);
}

/* The testbed goldens' prompt ids: [1] + sp.encode(text). */
static void test_golden_prompts(void **state)
{
    (void)state;
    size_t n;
    char *text = (char *)read_bytes(shared_path("testbed/golden/index.json"), &n);
    cJSON *root = cJSON_ParseWithLength(text, n);
    free(text);
    assert_non_null(root);
    int checked = 0;
    const char *cases[] = {"base", "stories260K"};
    const char *files[] = {"testbed/base/model.gguf", "testbed/stories260K/tokenizer.model"};
    for (int k = 0; k < 2; k++) {
        vkm_tokenizer *t = tok_load(shared_path(files[k]));
        const cJSON *c = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "cases"), cases[k]);
        const cJSON *prompts = cJSON_GetObjectItem(c, "prompts"), *p;
        cJSON_ArrayForEach(p, prompts) {
            const char *prompt = cJSON_GetStringValue(cJSON_GetObjectItem(p, "prompt"));
            const cJSON *want = cJSON_GetObjectItem(p, "ids");
            if (!prompt || !want) continue;
            int32_t ids[512];
            size_t got;
            assert_int_equal(vkm_tokenize(t, prompt, strlen(prompt), true, false, ids, 512, &got), VKM_OK);
            assert_int_equal(got, (size_t)cJSON_GetArraySize(want));
            for (size_t i = 0; i < got; i++) assert_int_equal(ids[i], cJSON_GetArrayItem(want, (int)i)->valueint);
            checked++;
        }
        vkm_tokenizer_free(t);
    }
    cJSON_Delete(root);
    printf("  %d golden prompts tokenized exactly\n", checked);
    assert_true(checked >= 6);
}

/* ---- stories260K: remove_extra_whitespaces ------------------------------------------------ */
static void test_stories(void **state)
{
    (void)state;
    vkm_tokenizer *t = tok_load(shared_path("testbed/stories260K/tokenizer.model"));
    assert_int_equal(vkm_tokenizer_n_vocab(t), 512);
    assert_int_equal(tok_check_ids(t, "spm_stories260K.txt", false, NULL), 0);
    assert_int_equal(tok_check_decode(t, "spm_stories260K.txt"), 0);
    check_files(t, "spm_stories260K_files.txt");
    vkm_tokenizer_free(t);

    t = tok_load(shared_path("testbed/stories260K/model.gguf"));
    assert_int_equal(tok_check_ids(t, "spm_stories260K.txt", false, skip_extra_spaces), 0);
    /* where spaces repeat, the GGUF keeps them all (llama.cpp): "a  b" is not "a b" */
    int32_t a[16], b[16];
    size_t na, nb;
    assert_int_equal(vkm_tokenize(t, "a  b", 4, false, false, a, 16, &na), VKM_OK);
    assert_int_equal(vkm_tokenize(t, "a b", 3, false, false, b, 16, &nb), VKM_OK);
    assert_true(na != nb || memcmp(a, b, na * sizeof *a) != 0);
    vkm_tokenizer_free(t);

    /* the same vocabulary with tokenizer.ggml.remove_extra_whitespaces = true: every string */
    vkm_gguf g;
    vkm_err e = {0};
    memset(&g, 0, sizeof g);
    expect_ok(vkm_gguf_open(shared_path("testbed/stories260K/model.gguf"), &g, &e), &e);
    vkm_gguf_writer *w = NULL;
    const char *path = tmp_path("stories_collapse.gguf");
    expect_ok(vkm_gguf_writer_create(path, &w, &e), &e);
    for (uint64_t i = 0; i < g.n_kv; i++)
        if (!strncmp(g.kv[i].key, "tokenizer.", 10)) vkm_gguf_writer_copy_kv(w, &g.kv[i]);
    vkm_gguf_writer_set_bool(w, "tokenizer.ggml.remove_extra_whitespaces", true);
    expect_ok(vkm_gguf_writer_begin(w), &e);
    expect_ok(vkm_gguf_writer_finish(w), &e);
    vkm_gguf_writer_free(w);
    vkm_gguf_close(&g);
    t = tok_load(path);
    assert_int_equal(tok_check_ids(t, "spm_stories260K.txt", false, NULL), 0);
    vkm_tokenizer_free(t);

    t = tok_load(shared_path("testbed/stories260K/tokenizer.json"));
    assert_int_equal(tok_check_ids(t, "hf_stories260K.txt", true, NULL), 0);
    vkm_tokenizer_free(t);
}

/* ---- byte-level BPE: SmolLM ------------------------------------------------------------- */
#define SMOLLM "models/smollm135m-instruct-lora-medflashcards/tokenizer/tokenizer.json"

static void test_smollm_json(void **state)
{
    (void)state;
    vkm_tokenizer *t = tok_load(shared_path(SMOLLM));
    assert_string_equal(vkm_tokenizer_kind(t), "byte-level-bpe");
    assert_int_equal(vkm_tokenizer_n_vocab(t), 49152);
    assert_int_equal(vkm_tokenizer_bos(t), 1); /* <|im_start|>, from tokenizer_config.json */
    assert_int_equal(vkm_tokenizer_eos(t), 2); /* <|im_end|> */
    assert_false(vkm_tokenizer_adds_bos(t));
    assert_int_equal(vkm_tokenizer_token_type(t, 0), VKM_TOKEN_CONTROL);
    assert_int_equal(tok_check_ids(t, "hf_smollm.txt", true, NULL), 0);
    assert_int_equal(tok_check_ids(t, "hf_smollm_plain.txt", false, NULL), 0);
    assert_int_equal(tok_check_decode(t, "hf_smollm_plain.txt"), 0);
    assert_int_equal(tok_check_decode(t, "hf_smollm.txt"), 0); /* control tokens vanish, as skip_special */
    check_files(t, "hf_smollm_files.txt");
    /* a folder holding tokenizer.json loads the same */
    vkm_tokenizer *f = tok_load(shared_path("models/smollm135m-instruct-lora-medflashcards/tokenizer"));
    assert_int_equal(vkm_tokenizer_n_vocab(f), 49152);
    vkm_tokenizer_free(f);
    vkm_tokenizer_free(t);
}

/* Writes SmolLM's tokenizer.json, edited by fn, into the test folder and loads it. */
static vkm_tokenizer *variant(const char *rel, const char *name, void (*fn)(cJSON *))
{
    size_t n;
    char *text = (char *)read_bytes(shared_path(rel), &n);
    cJSON *j = cJSON_ParseWithLength(text, n);
    free(text);
    assert_non_null(j);
    fn(j);
    char *out = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    const char *path = tmp_path(name);
    write_text(path, out);
    free(out);
    return tok_load(path);
}

static const char *const llama3_re =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char *const qwen2_re =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static void set_split(cJSON *j, const char *re)
{
    char buf[1024];
    cJSON *pat = cJSON_CreateString(re);
    char *pats = cJSON_PrintUnformatted(pat);
    cJSON_Delete(pat);
    snprintf(buf, sizeof buf,
             "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":%s},"
             "\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
             "\"trim_offsets\":true,\"use_regex\":false}]}", pats);
    free(pats);
    cJSON_ReplaceItemInObject(j, "pre_tokenizer", cJSON_Parse(buf));
}

static void edit_llama3(cJSON *j)
{
    set_split(j, llama3_re);
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(j, "model"), "ignore_merges", cJSON_CreateTrue());
}
static void edit_qwen2(cJSON *j) { set_split(j, qwen2_re); }
static void edit_strip(cJSON *j)
{
    cJSON *added = cJSON_GetObjectItem(j, "added_tokens");
    cJSON_ReplaceItemInObject(cJSON_GetArrayItem(added, 1), "lstrip", cJSON_CreateTrue());
    cJSON_ReplaceItemInObject(cJSON_GetArrayItem(added, 2), "rstrip", cJSON_CreateTrue());
}
static void edit_prefix(cJSON *j)
{
    cJSON_ReplaceItemInObject(j, "pre_tokenizer", cJSON_Parse("{\"type\":\"ByteLevel\",\"add_prefix_space\":true,"
                                                             "\"trim_offsets\":true,\"use_regex\":true}"));
}
static void set_meta(cJSON *j, const char *scheme, bool split)
{
    char buf[256];
    snprintf(buf, sizeof buf, "{\"type\":\"Metaspace\",\"replacement\":\"\xE2\x96\x81\",\"prepend_scheme\":\"%s\","
             "\"split\":%s}", scheme, split ? "true" : "false");
    cJSON_ReplaceItemInObject(j, "normalizer", cJSON_CreateNull());
    cJSON_ReplaceItemInObject(j, "pre_tokenizer", cJSON_Parse(buf));
    cJSON_ReplaceItemInObject(j, "decoder", cJSON_Parse(buf));
}
static void edit_meta_first(cJSON *j) { set_meta(j, "first", false); }
static void edit_meta_split(cJSON *j) { set_meta(j, "always", true); }

static void test_variants(void **state)
{
    (void)state;
    static const struct {
        const char *rel, *file, *ref;
        void (*fn)(cJSON *);
    } v[] = {
        {SMOLLM, "smollm_llama3.json", "hf_smollm_llama3.txt", edit_llama3},
        {SMOLLM, "smollm_qwen2.json", "hf_smollm_qwen2.txt", edit_qwen2},
        {SMOLLM, "smollm_strip.json", "hf_smollm_strip.txt", edit_strip},
        {SMOLLM, "smollm_prefix.json", "hf_smollm_prefix.txt", edit_prefix},
        {"testbed/base/tokenizer.json", "base_metaspace.json", "hf_base_metaspace.txt", edit_meta_first},
        {"testbed/base/tokenizer.json", "base_metaspace_split.json", "hf_base_metaspace_split.txt", edit_meta_split},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        vkm_tokenizer *t = variant(v[i].rel, v[i].file, v[i].fn);
        assert_int_equal(tok_check_ids(t, v[i].ref, true, NULL), 0);
        vkm_tokenizer_free(t);
    }
}

/* A byte-level GGUF vocabulary made from SmolLM's tokenizer.json with the GGUF writer, read
 * back through the gpt2 path with tokenizer.ggml.pre = "smollm". */
static void test_smollm_gguf(void **state)
{
    (void)state;
    size_t n;
    char *text = (char *)read_bytes(shared_path(SMOLLM), &n);
    cJSON *j = cJSON_ParseWithLength(text, n);
    free(text);
    const cJSON *model = cJSON_GetObjectItem(j, "model"), *vocab = cJSON_GetObjectItem(model, "vocab"), *it;
    const cJSON *merges = cJSON_GetObjectItem(model, "merges");
    int nv = cJSON_GetArraySize(vocab), nm = cJSON_GetArraySize(merges);
    const char **tokens = calloc((size_t)nv, sizeof *tokens), **mstr = calloc((size_t)nm, sizeof *mstr);
    int32_t *types = calloc((size_t)nv, sizeof *types);
    cJSON_ArrayForEach(it, vocab) {
        tokens[it->valueint] = it->string;
        types[it->valueint] = 1;
    }
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(j, "added_tokens")) types[cJSON_GetObjectItem(it, "id")->valueint] = 3;
    int k = 0;
    cJSON_ArrayForEach(it, merges) mstr[k++] = it->valuestring;
    const char *path = tmp_path("smollm_vocab.gguf");
    vkm_err e = {0};
    vkm_gguf_writer *w = NULL;
    expect_ok(vkm_gguf_writer_create(path, &w, &e), &e);
    vkm_gguf_writer_set_str(w, "general.architecture", "llama");
    vkm_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    vkm_gguf_writer_set_str(w, "tokenizer.ggml.pre", "smollm");
    vkm_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (uint64_t)nv, tokens);
    vkm_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", VKM_GGUF_I32, (uint64_t)nv, types);
    vkm_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", (uint64_t)nm, mstr);
    vkm_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    vkm_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    vkm_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", false);
    expect_ok(vkm_gguf_writer_begin(w), &e);
    expect_ok(vkm_gguf_writer_finish(w), &e);
    vkm_gguf_writer_free(w);
    free(tokens);
    free(mstr);
    free(types);
    cJSON_Delete(j);

    vkm_tokenizer *t = tok_load(path);
    assert_string_equal(vkm_tokenizer_kind(t), "byte-level-bpe");
    assert_int_equal(vkm_tokenizer_eos(t), 2);
    assert_false(vkm_tokenizer_adds_bos(t));
    assert_int_equal(tok_check_ids(t, "hf_smollm.txt", true, NULL), 0);
    assert_int_equal(tok_check_ids(t, "hf_smollm_plain.txt", false, NULL), 0);
    assert_int_equal(tok_check_decode(t, "hf_smollm_plain.txt"), 0);
    check_files(t, "hf_smollm_files.txt");
    vkm_tokenizer_free(t);
}

/* vkm_tok_to_gguf: a tokenizer written as tokenizer.ggml.* keys (what a merge of Hugging Face
 * models written as GGUF carries) reads back as the same tokenizer, named as llama.cpp names it,
 * and encodes the references as the original does; one GGUF cannot hold is refused with
 * nothing written. The variants are test_variants' edits of SmolLM's tokenizer.json. */
static void edit_gpt2(cJSON *j)
{
    cJSON_ReplaceItemInObject(j, "pre_tokenizer", cJSON_Parse("{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
                                                             "\"trim_offsets\":true,\"use_regex\":true}"));
}

static void test_to_gguf(void **state)
{
    (void)state;
    static const struct {
        const char *file;
        void (*edit)(cJSON *); /* a variant of file (written as tmp/to_gguf_src.json)       */
        const char *ref;       /* references it encodes (their texts only when not exact)   */
        bool exact;            /* the original encodes the references exactly               */
        const char *pre;       /* tokenizer.ggml.pre written, or NULL for none ("llama")    */
        const char *why;       /* NULL: written; else refused, the message says this        */
        uint32_t rows;         /* the model's embedding rows (0: the vocabulary's size)     */
    } v[] = {
        {"testbed/base/tokenizer.model", NULL, "spm_base.txt", true, NULL, NULL, 1030},
        {"testbed/base/model.gguf", NULL, "hf_base.txt", true, NULL, NULL},
        {"testbed/stories260K/tokenizer.model", NULL, "spm_stories260K.txt", true, NULL, NULL},
        {SMOLLM, NULL, "hf_smollm.txt", true, "smollm", NULL},
        {SMOLLM, edit_gpt2, "hf_smollm_plain.txt", false, "gpt-2", NULL, 49159},
        {SMOLLM, edit_llama3, "hf_smollm_llama3.txt", true, "llama-bpe", NULL},
        {SMOLLM, edit_qwen2, "hf_smollm_qwen2.txt", true, "qwen2", NULL},
        {"testbed/base/tokenizer.json", NULL, NULL, false, NULL, "not byte-level has no GGUF form"},
        {SMOLLM, edit_strip, NULL, false, NULL, "it would differ in a token's whitespace stripping"},
        {SMOLLM, edit_prefix, NULL, false, NULL, "it would differ in the pre-tokenizer (no tokenizer.ggml.pre names it)"},
        {"testbed/base/tokenizer.json", edit_meta_first, NULL, false, NULL, "not byte-level has no GGUF form"},
        {"testbed/base/tokenizer.model", NULL, NULL, false, NULL, "1024 tokens for 1000 embedding rows", 1000},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        vkm_tokenizer *t = v[i].edit ? variant(v[i].file, "to_gguf_src.json", v[i].edit) : tok_load(shared_path(v[i].file));
        const char *path = tmp_path("to_gguf.gguf");
        vkm_err e = {0};
        vkm_gguf_writer *w = NULL;
        expect_ok(vkm_gguf_writer_create(path, &w, &e), &e);
        expect_ok(vkm_gguf_writer_set_str(w, "general.architecture", "llama"), &e);
        vkm_status st = vkm_tok_to_gguf(t, v[i].rows, w, &e);
        if (v[i].why) {
            assert_int_equal(st, VKM_ERR_UNSUPPORTED);
            printf("  %s%s: refused: %s\n", v[i].file, v[i].edit ? " (variant)" : "", e.msg);
            if (!strstr(e.msg, v[i].why)) fail_msg("case %zu: the message lacks '%s'", i, v[i].why);
            uint8_t *img = NULL;
            uint64_t size = 0;
            expect_ok(vkm_gguf_writer_meta_image(w, &img, &size), &e);
            vkm_gguf g = {0};
            expect_ok(vkm_gguf_open_mem(img, size, "keys", &g, &e), &e);
            assert_int_equal(g.n_kv, 1); /* nothing but general.architecture */
            vkm_gguf_close(&g);
            free(img);
            vkm_gguf_writer_free(w);
            vkm_tokenizer_free(t);
            continue;
        }
        expect_ok(st, &e);
        expect_ok(vkm_gguf_writer_begin(w), &e);
        expect_ok(vkm_gguf_writer_finish(w), &e);
        vkm_gguf_writer_free(w);
        {
            vkm_gguf g = {0};
            char pre[32] = "";
            expect_ok(vkm_gguf_open(path, &g, &e), &e);
            assert_int_equal(vkm_gguf_get_str(&g, "tokenizer.ggml.pre", pre, sizeof pre), v[i].pre != NULL);
            if (v[i].pre) assert_string_equal(pre, v[i].pre);
            vkm_gguf_close(&g);
        }
        vkm_tokenizer *g = tok_load(path);
        assert_string_equal(vkm_tokenizer_kind(g), vkm_tokenizer_kind(t));
        const int32_t nt = vkm_tokenizer_n_vocab(t);
        assert_int_equal(vkm_tokenizer_n_vocab(g), v[i].rows ? (int32_t)v[i].rows : nt);
        for (int32_t id = nt; id < vkm_tokenizer_n_vocab(g); id++) { /* padding as convert_hf_to_gguf.py pads */
            char want[24], got[64];
            snprintf(want, sizeof want, "[PAD%d]", v[i].pre ? id : id - nt + 1);
            size_t len = 0;
            assert_int_equal(vkm_token_piece(g, id, got, sizeof got, &len), VKM_OK);
            if (len != strlen(want) || memcmp(got, want, len)) fail_msg("token %d: '%.*s', want '%s'", id, (int)len, got, want);
            assert_int_equal(vkm_tokenizer_token_type(g, id), VKM_TOKEN_UNUSED);
        }
        assert_int_equal(vkm_tokenizer_bos(g), vkm_tokenizer_bos(t));
        assert_int_equal(vkm_tokenizer_eos(g), vkm_tokenizer_eos(t));
        assert_int_equal(vkm_tokenizer_adds_bos(g), vkm_tokenizer_adds_bos(t));
        const bool special = v[i].ref[0] == 'h' && !strstr(v[i].ref, "plain");
        if (v[i].exact) {
            assert_int_equal(tok_check_ids(t, v[i].ref, special, NULL), 0);
            assert_int_equal(tok_check_ids(g, v[i].ref, special, NULL), 0);
        }
        /* every reference string, plain and with specials: the same ids as the original */
        ref_set r;
        ref_load(v[i].ref, &r);
        for (size_t c = 0; c < r.n; c++) {
            const ref_case *rc = &r.v[c];
            for (int sp = 0; sp < 2; sp++) {
                const size_t cap = (rc->len + 8) * 2;
                int32_t *a = malloc(cap * sizeof *a), *b = malloc(cap * sizeof *b);
                size_t na = 0, nb = 0;
                assert_int_equal(vkm_tokenize(t, (const char *)rc->text, rc->len, true, sp, a, cap, &na), VKM_OK);
                assert_int_equal(vkm_tokenize(g, (const char *)rc->text, rc->len, true, sp, b, cap, &nb), VKM_OK);
                if (na != nb || memcmp(a, b, na * sizeof *a))
                    fail_msg("%s: \"%.*s\" encodes otherwise from its GGUF keys", v[i].file, (int)rc->len, rc->text);
                free(a);
                free(b);
            }
        }
        printf("  %s%s: %zu strings encode the same from its GGUF keys\n", v[i].file, v[i].edit ? " (variant)" : "", r.n);
        ref_free(&r);
        vkm_tokenizer_free(g);
        vkm_tokenizer_free(t);
    }
}

/* ---- decoding ----------------------------------------------------------------------------- */
/* decode(encode(s)) == s for every string the reference round-trips. */
static void test_round_trip(void **state)
{
    (void)state;
    static const struct {
        const char *file, *ref;
        size_t min; /* stories260K collapses spaces: fewer strings come back as they were */
    } v[] = {
        {"testbed/base/tokenizer.model", "spm_base.txt", 250},
        {"testbed/base/tokenizer.json", "spm_base.txt", 250},
        {"testbed/base/model.gguf", "spm_base.txt", 250},
        {"testbed/stories260K/tokenizer.model", "spm_stories260K.txt", 170},
        {SMOLLM, "hf_smollm_plain.txt", 250},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        vkm_tokenizer *t = tok_load(shared_path(v[i].file));
        ref_set r;
        ref_load(v[i].ref, &r);
        size_t trips = 0;
        for (size_t c = 0; c < r.n; c++) {
            const ref_case *rc = &r.v[c];
            bool ref_trips = rc->dec_len == rc->len && !memcmp(rc->dec, rc->text, rc->len);
            if (!ref_trips) continue;
            int32_t *ids = malloc((rc->len + 8) * 2 * sizeof *ids);
            size_t n, m;
            assert_int_equal(vkm_tokenize(t, (const char *)rc->text, rc->len, true, false, ids, (rc->len + 8) * 2, &n), VKM_OK);
            char *buf = malloc(rc->len * 2 + 64);
            assert_int_equal(vkm_detokenize(t, ids, n, buf, rc->len * 2 + 64, &m), VKM_OK);
            if (m != rc->len || memcmp(buf, rc->text, m) != 0)
                fail_msg("%s: \"%.*s\" does not round-trip", v[i].file, (int)rc->len, rc->text);
            trips++;
            free(buf);
            free(ids);
        }
        printf("  %s: %zu strings round-trip (with BOS)\n", v[i].file, trips);
        assert_true(trips >= v[i].min);
        ref_free(&r);
        vkm_tokenizer_free(t);
    }
}

/* A character split over byte tokens comes out of the streaming decoder whole. */
static void test_stream_split_utf8(void **state)
{
    (void)state;
    const char *files[] = {"testbed/base/tokenizer.model", SMOLLM};
    const char *text = "\xF0\x9F\x98\x80 caf\xC3\xA9 \xE4\xB8\xAD";
    for (int f = 0; f < 2; f++) {
        vkm_tokenizer *t = tok_load(shared_path(files[f]));
        int32_t ids[64];
        size_t n, k, total = 0, held = 0;
        assert_int_equal(vkm_tokenize(t, text, strlen(text), false, false, ids, 64, &n), VKM_OK);
        assert_true(n > 3);
        vkm_detok d;
        vkm_detok_init(&d, t);
        char out[128];
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(vkm_detok_push(&d, ids[i], out + total, sizeof out - total, &k), VKM_OK);
            total += k;
            held += d.n_pending > 0;
            /* what has come out so far is always valid UTF-8 */
            for (size_t j = 0; j < total;) {
                uint8_t b = (uint8_t)out[j];
                size_t len = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
                assert_true(j + len <= total);
                j += len;
            }
        }
        assert_int_equal(vkm_detok_flush(&d, out + total, sizeof out - total, &k), VKM_OK);
        total += k;
        assert_int_equal(total, strlen(text));
        assert_memory_equal(out, text, total);
        assert_true(held > 0); /* some token ended inside a character */
        /* too small a buffer consumes nothing */
        assert_int_equal(vkm_tokenize(t, "hello world", 11, false, false, ids, 64, &n), VKM_OK);
        vkm_detok_init(&d, t);
        assert_int_equal(vkm_detok_push(&d, ids[n - 1], out, 1, &k), VKM_ERR_LIMIT);
        assert_true(k > 1);
        assert_true(d.at_start);
        assert_int_equal(vkm_detok_push(&d, ids[n - 1], out, sizeof out, &k), VKM_OK);
        assert_false(d.at_start);
        vkm_tokenizer_free(t);
    }
    /* an incomplete sequence at the end is flushed as U+FFFD */
    vkm_tokenizer *t = tok_load(shared_path("testbed/base/tokenizer.model"));
    vkm_detok d;
    vkm_detok_init(&d, t);
    char out[16];
    size_t k;
    assert_int_equal(vkm_detok_push(&d, 3 + 0xE2, out, sizeof out, &k), VKM_OK); /* <0xE2> */
    assert_int_equal(k, 0);
    assert_int_equal(vkm_detok_flush(&d, out, sizeof out, &k), VKM_OK);
    assert_int_equal(k, 3);
    assert_memory_equal(out, "\xEF\xBF\xBD", 3);
    vkm_tokenizer_free(t);
}

static void test_pieces_and_api(void **state)
{
    (void)state;
    vkm_tokenizer *t = tok_load(shared_path("testbed/base/tokenizer.model"));
    char buf[64];
    size_t n;
    assert_int_equal(vkm_token_piece(t, 3 + 0x41, buf, sizeof buf, &n), VKM_OK); /* <0x41> */
    assert_int_equal(n, 1);
    assert_int_equal(buf[0], 'A');
    assert_int_equal(vkm_token_piece(t, 1, buf, sizeof buf, &n), VKM_OK);
    assert_string_equal(buf, "<s>");
    assert_int_equal(vkm_token_piece(t, 259, buf, sizeof buf, &n), VKM_OK); /* "▁▁" */
    assert_string_equal(buf, "  ");
    assert_int_equal(vkm_token_piece(t, 1024, buf, sizeof buf, &n), VKM_ERR_INVALID_ARGUMENT);
    assert_int_equal(vkm_tokenizer_token_type(t, 3), VKM_TOKEN_BYTE);
    assert_int_equal(vkm_tokenizer_token_type(t, 1), VKM_TOKEN_CONTROL);
    assert_int_equal(vkm_tokenizer_token_type(t, 0), VKM_TOKEN_UNKNOWN);
    assert_int_equal(vkm_tokenizer_token_type(t, -1), VKM_TOKEN_INVALID);
    /* BOS, a short buffer, a NULL text */
    int32_t ids[4];
    assert_int_equal(vkm_tokenize(t, "hello world", 11, true, false, ids, 2, &n), VKM_ERR_LIMIT);
    assert_true(n > 2);
    assert_int_equal(ids[0], 1);
    assert_int_equal(vkm_tokenize(t, NULL, 0, true, false, ids, 4, &n), VKM_OK);
    assert_int_equal(n, 1);
    assert_int_equal(vkm_tokenize(t, NULL, 0, false, false, NULL, 0, &n), VKM_OK);
    assert_int_equal(n, 0);
    assert_int_equal(vkm_tokenize(t, NULL, 3, false, false, ids, 4, &n), VKM_ERR_INVALID_ARGUMENT);
    assert_int_equal(vkm_tokenize(NULL, "a", 1, false, false, ids, 4, &n), VKM_ERR_INVALID_ARGUMENT);
    /* parse_special: "<s>" is BOS only when asked */
    assert_int_equal(vkm_tokenize(t, "<s>", 3, false, true, ids, 4, &n), VKM_OK);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 1);
    assert_int_equal(vkm_tokenize(t, "<s>", 3, false, false, ids, 4, &n), VKM_OK);
    assert_true(n > 1);
    /* decode: control tokens vanish, unk shows as " ⁇ ", a short buffer says how much */
    int32_t dec[] = {1, 0, 259, 2};
    assert_int_equal(vkm_detokenize(t, dec, 4, buf, sizeof buf, &n), VKM_OK);
    assert_string_equal(buf, " \xE2\x81\x87   ");
    assert_int_equal(vkm_detokenize(t, dec, 4, buf, 2, &n), VKM_ERR_LIMIT);
    assert_int_equal(n, 7);
    int32_t bad[] = {5000};
    assert_int_equal(vkm_detokenize(t, bad, 1, buf, sizeof buf, &n), VKM_ERR_INVALID_ARGUMENT);
    vkm_tokenizer_free(t);
    vkm_tokenizer_free(NULL);
    assert_non_null(vkm_tokenizer_errmsg(NULL));
    assert_int_equal(vkm_tokenizer_n_vocab(NULL), 0);
}

/* The generated class table and the UTF-8 / byte-level helpers. */
static void test_unicode(void **state)
{
    (void)state;
    static const struct {
        uint32_t cp;
        unsigned flags;
    } c[] = {
        {'A', VKM_UNI_LETTER}, {'z', VKM_UNI_LETTER}, {'5', VKM_UNI_NUMBER}, {' ', VKM_UNI_SPACE},
        {'\t', VKM_UNI_SPACE}, {0x0B, VKM_UNI_SPACE}, {0x1C, 0}, {0x85, VKM_UNI_SPACE}, {0xA0, VKM_UNI_SPACE},
        {'_', 0}, {'\'', 0}, {0xE9, VKM_UNI_LETTER}, {0x0301, 0}, {0xB2, VKM_UNI_NUMBER}, {0x2167, VKM_UNI_NUMBER},
        {0x0661, VKM_UNI_NUMBER}, {0x4E2D, VKM_UNI_LETTER}, {0x3000, VKM_UNI_SPACE}, {0x2028, VKM_UNI_SPACE},
        {0x200B, 0}, {0xFEFF, 0}, {0xFFFD, 0}, {0x1F600, 0}, {0x10348, VKM_UNI_LETTER}, {0x10FFFF, 0},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
        if (vkm_uni_flags(c[i].cp) != c[i].flags)
            fail_msg("U+%04X: class %u, want %u", c[i].cp, vkm_uni_flags(c[i].cp), c[i].flags);
    /* the table is sorted and disjoint */
    for (size_t i = 1; i < vkm_uni_n_ranges; i++)
        assert_true(vkm_uni_ranges[i][0] > (vkm_uni_ranges[i - 1][1] & 0xFFFFFFu));
    /* byte-level alphabet: a bijection between bytes and 256 printable characters */
    for (int b = 0; b < 256; b++) {
        uint32_t cp = vkm_bytelevel_char((uint8_t)b);
        assert_int_equal(vkm_bytelevel_byte(cp), b);
        assert_true(cp > 0x20 && cp < 0x144 && cp != 0x7F && cp != 0xAD);
    }
    assert_int_equal(vkm_bytelevel_byte(0x120), 0x20); /* 'Ġ' is the space */
    /* strict UTF-8 */
    uint32_t cp;
    assert_int_equal(vkm_utf8_decode((const uint8_t *)"\xF0\x9F\x98\x80", 4, &cp), 4);
    assert_int_equal(cp, 0x1F600);
    const char *bad[] = {"\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xE2\x82", "\x80", "\xFF"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(vkm_utf8_decode((const uint8_t *)bad[i], strlen(bad[i]), &cp), 0);
    /* repair: per byte (SentencePiece) or per maximal subpart (Unicode) */
    uint8_t out[32];
    size_t n;
    assert_int_equal(vkm_utf8_repair((const uint8_t *)"a\xE2\x82" "b", 4, true, VKM_UTF8_PER_BYTE, out, 32, &n), 4);
    assert_int_equal(n, 8);
    assert_int_equal(vkm_utf8_repair((const uint8_t *)"a\xE2\x82" "b", 4, true, VKM_UTF8_MAXIMAL, out, 32, &n), 4);
    assert_int_equal(n, 5);
    assert_int_equal(vkm_utf8_repair((const uint8_t *)"a\xE2\x82", 3, false, VKM_UTF8_MAXIMAL, out, 32, &n), 1);
    assert_int_equal(n, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base_spmodel),
        cmocka_unit_test(test_base_json),
        cmocka_unit_test(test_base_gguf),
        cmocka_unit_test(test_golden_prompts),
        cmocka_unit_test(test_stories),
        cmocka_unit_test(test_smollm_json),
        cmocka_unit_test(test_variants),
        cmocka_unit_test(test_smollm_gguf),
        cmocka_unit_test(test_to_gguf),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_stream_split_utf8),
        cmocka_unit_test(test_pieces_and_api),
        cmocka_unit_test(test_unicode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
