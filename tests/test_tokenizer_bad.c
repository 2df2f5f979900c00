/*
 * test_tokenizer_bad.c — malformed and unsupported tokenizer files, each refused with its own
 * status and message and without a crash: truncated and lying protobufs (every truncation of
 * the real tokenizer.model), JSON with missing or wrong fields, merges naming unknown tokens,
 * GGUF token arrays of mismatched lengths, bad ids and types. Plus small hand-made vocabularies
 * for behaviours the real files do not show (unk fusion, user-defined tokens, no byte tokens).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "loader_util.h"
#include "tok_internal.h"
#include "tokenizer.h"
#include "writer.h"

/* Loads path and checks the status and that the message contains substr. */
static void expect_load(const char *name, const char *path, vkm_status want, const char *substr)
{
    vkm_tokenizer *t = NULL;
    vkm_status s = vkm_tokenizer_load(path, &t);
    const char *msg = vkm_tokenizer_errmsg(t);
    if (s != want || (substr && !strstr(msg, substr)))
        fail_msg("%s: got %s \"%s\", want %s with \"%s\"", name, vkm_status_str(s), msg,
                 vkm_status_str(want), substr ? substr : "");
    printf("  %-34s %s\n", name, want == VKM_OK ? "loads" : msg);
    if (want != VKM_OK) { /* a handle that failed to load encodes nothing */
        int32_t ids[4];
        size_t n;
        assert_int_equal(vkm_tokenize(t, "ab", 2, true, true, ids, 4, &n), VKM_ERR_STATE);
        assert_int_equal(vkm_tokenizer_n_vocab(t), 0);
    }
    vkm_tokenizer_free(t);
}

static void expect_json(const char *name, const char *json, vkm_status want, const char *substr)
{
    char file[96];
    snprintf(file, sizeof file, "bad_%s.json", name);
    const char *path = tmp_path(file);
    write_text(path, json);
    expect_load(name, path, want, substr);
}

/* ---- tokenizer.json ------------------------------------------------------------------------ */
#define TINY_VOCAB "\"vocab\":{\"<unk>\":0,\"a\":1,\"b\":2,\"ab\":3}"

static void test_bad_json(void **state)
{
    (void)state;
    expect_json("truncated", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\"", VKM_ERR_FORMAT, "not valid JSON");
    expect_json("not_object", "[1, 2]", VKM_ERR_FORMAT, "no \"model\"");
    expect_json("no_model", "{\"version\": \"1.0\"}", VKM_ERR_FORMAT, "no \"model\"");
    expect_json("unigram", "{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}", VKM_ERR_UNSUPPORTED, "Unigram");
    expect_json("no_vocab", "{\"model\":{\"type\":\"BPE\",\"merges\":[]}}", VKM_ERR_FORMAT, "model.vocab");
    expect_json("no_merges", "{\"model\":{\"type\":\"BPE\"," TINY_VOCAB "}}", VKM_ERR_FORMAT, "model.merges");
    expect_json("vocab_not_int", "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0.5},\"merges\":[]}}",
                VKM_ERR_FORMAT, "is not a token id");
    expect_json("vocab_negative", "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-1},\"merges\":[]}}",
                VKM_ERR_FORMAT, "is not a token id");
    expect_json("vocab_same_id", "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":0},\"merges\":[]}}",
                VKM_ERR_FORMAT, "given to two tokens");
    expect_json("vocab_hole", "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":2},\"merges\":[]}}",
                VKM_ERR_FORMAT, "token id 1 has no text");
    expect_json("vocab_huge_id", "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":1e12},\"merges\":[]}}",
                VKM_ERR_FORMAT, "is not a token id");
    expect_json("merge_unknown", "{\"model\":{\"type\":\"BPE\"," TINY_VOCAB ",\"merges\":[\"a c\"]}}",
                VKM_ERR_FORMAT, "\"c\" is not in the vocabulary");
    expect_json("merge_result_unknown", "{\"model\":{\"type\":\"BPE\"," TINY_VOCAB ",\"merges\":[\"b a\"]}}",
                VKM_ERR_FORMAT, "merged token \"ba\" is not in the vocabulary");
    expect_json("merge_no_space", "{\"model\":{\"type\":\"BPE\"," TINY_VOCAB ",\"merges\":[\"ab\"]}}",
                VKM_ERR_FORMAT, "not two tokens");
    expect_json("merge_wrong_type", "{\"model\":{\"type\":\"BPE\"," TINY_VOCAB ",\"merges\":[3]}}",
                VKM_ERR_FORMAT, "model.merges[0]");
    expect_json("unk_missing", "{\"model\":{\"type\":\"BPE\"," TINY_VOCAB ",\"merges\":[],\"unk_token\":\"<x>\"}}",
                VKM_ERR_FORMAT, "unk_token");
    expect_json("added_no_id", "{\"added_tokens\":[{\"content\":\"<s>\"}],\"model\":{\"type\":\"BPE\"," TINY_VOCAB
                ",\"merges\":[]}}", VKM_ERR_FORMAT, "added_tokens");
    expect_json("normalizer_nfkc", "{\"normalizer\":{\"type\":\"NFKC\"},\"model\":{\"type\":\"BPE\"," TINY_VOCAB
                ",\"merges\":[]}}", VKM_ERR_UNSUPPORTED, "normalizer \"NFKC\"");
    expect_json("replace_regex", "{\"normalizer\":{\"type\":\"Replace\",\"pattern\":{\"Regex\":\" +\"},\"content\":\" \"},"
                "\"model\":{\"type\":\"BPE\"," TINY_VOCAB ",\"merges\":[]}}", VKM_ERR_UNSUPPORTED, "String");
    expect_json("pre_whitespace", "{\"pre_tokenizer\":{\"type\":\"Whitespace\"},\"model\":{\"type\":\"BPE\"," TINY_VOCAB
                ",\"merges\":[]}}", VKM_ERR_UNSUPPORTED, "pre_tokenizer \"Whitespace\"");
    expect_json("split_unknown_regex", "{\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\w+\"},"
                "\"behavior\":\"Isolated\"},\"model\":{\"type\":\"BPE\"," TINY_VOCAB ",\"merges\":[]}}",
                VKM_ERR_UNSUPPORTED, "is not one vkmoe implements");
    expect_json("digits_runs", "{\"pre_tokenizer\":{\"type\":\"Digits\",\"individual_digits\":false},\"model\":{\"type\":"
                "\"BPE\"," TINY_VOCAB ",\"merges\":[]}}", VKM_ERR_UNSUPPORTED, "individual_digits");
    expect_json("suffix", "{\"model\":{\"type\":\"BPE\"," TINY_VOCAB ",\"merges\":[],\"end_of_word_suffix\":\"</w>\"}}",
                VKM_ERR_UNSUPPORTED, "end_of_word_suffix");
    expect_json("sequence_not_array", "{\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":3},\"model\":{\"type\":"
                "\"BPE\"," TINY_VOCAB ",\"merges\":[]}}", VKM_ERR_FORMAT, "normalizers");
    expect_json("empty_vocab", "{\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}", VKM_ERR_FORMAT, "empty");
    expect_json("tiny_ok", "{\"model\":{\"type\":\"BPE\"," TINY_VOCAB ",\"merges\":[\"a b\"]}}", VKM_OK, NULL);
    /* every truncation of the real base tokenizer.json is refused, none crashes */
    size_t n;
    char *text = (char *)read_bytes(shared_path("testbed/base/tokenizer.json"), &n);
    for (size_t cut = 0; cut < n; cut += 97) {
        char *p = malloc(cut + 1);
        memcpy(p, text, cut);
        p[cut] = 0;
        write_text(tmp_path("cut.json"), p);
        vkm_tokenizer *t = NULL;
        assert_int_not_equal(vkm_tokenizer_load(tmp_path("cut.json"), &t), VKM_OK);
        vkm_tokenizer_free(t);
        free(p);
    }
    free(text);
}

/* ---- tokenizer.model ------------------------------------------------------------------------ */
static void pb_varint(bb *b, uint64_t v)
{
    while (v >= 0x80) {
        bb_u8(b, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    bb_u8(b, (uint8_t)v);
}

static void pb_bytes(bb *b, uint32_t field, const void *p, size_t n)
{
    pb_varint(b, (uint64_t)field << 3 | 2);
    pb_varint(b, n);
    bb_bytes(b, p, n);
}

static void pb_int(bb *b, uint32_t field, int64_t v)
{
    pb_varint(b, (uint64_t)field << 3);
    pb_varint(b, (uint64_t)v);
}

static void pb_piece(bb *b, const char *piece, float score, int type)
{
    bb m = {0};
    pb_bytes(&m, 1, piece, strlen(piece));
    pb_varint(&m, 2 << 3 | 5);
    bb_f32(&m, score);
    pb_int(&m, 3, type);
    pb_bytes(b, 1, m.p, m.n);
    bb_free(&m);
}

/* A small SentencePiece BPE model: <unk> <s> </s>, a, b, ▁, ab, ▁a; trainer and normalizer
 * specs as given (model_type, byte_fallback, bos_id; charsmap non-empty if asked). */
static void spmodel(bb *b, int model_type, int64_t bos_id, bool charsmap)
{
    pb_piece(b, "<unk>", 0, 2);
    pb_piece(b, "<s>", 0, 3);
    pb_piece(b, "</s>", 0, 3);
    pb_piece(b, "a", -1, 1);
    pb_piece(b, "b", -2, 1);
    pb_piece(b, "\xE2\x96\x81", -3, 1);
    pb_piece(b, "ab", -4, 1);
    pb_piece(b, "\xE2\x96\x81" "a", -5, 1);
    bb ts = {0}, ns = {0};
    pb_int(&ts, 3, model_type);
    pb_int(&ts, 41, bos_id);
    pb_int(&ts, 43, -1);
    pb_bytes(b, 2, ts.p, ts.n);
    pb_bytes(&ns, 1, charsmap ? "nmt_nfkc" : "identity", charsmap ? 8 : 8);
    if (charsmap) pb_bytes(&ns, 2, "\x01\x02\x03\x04", 4);
    pb_int(&ns, 4, 0);
    pb_bytes(b, 3, ns.p, ns.n);
    bb_free(&ts);
    bb_free(&ns);
}

static void expect_spmodel(const char *name, const bb *b, vkm_status want, const char *substr)
{
    char file[96];
    snprintf(file, sizeof file, "bad_%s.model", name);
    write_bytes(tmp_path(file), b->p, b->n);
    expect_load(name, tmp_path(file), want, substr);
}

static void test_bad_spmodel(void **state)
{
    (void)state;
    bb b = {0};
    spmodel(&b, 2, 1, false);
    expect_spmodel("spm_tiny_ok", &b, VKM_OK, NULL);
    vkm_tokenizer *t = NULL;
    assert_int_equal(vkm_tokenizer_load(tmp_path("bad_spm_tiny_ok.model"), &t), VKM_OK);
    int32_t ids[16];
    size_t n;
    /* "▁ab▁ccc▁a": "ab" (score -4) joins before "▁a" (-5), so the first "▁" stays alone; no
     * byte fallback: "ccc" is one fused unk (as SentencePiece) */
    assert_int_equal(vkm_tokenize(t, "ab ccc a", 8, false, false, ids, 16, &n), VKM_OK);
    int32_t want[] = {5, 6, 5, 0, 7}; /* ▁ ab ▁ <unk> ▁a  (ccc fused into one unk) */
    assert_int_equal(n, 5);
    assert_memory_equal(ids, want, sizeof want);
    vkm_tokenizer_free(t);
    bb_free(&b);

    spmodel(&b, 1, 1, false);
    expect_spmodel("spm_unigram", &b, VKM_ERR_UNSUPPORTED, "type 1");
    bb_free(&b);
    spmodel(&b, 2, 99, false);
    expect_spmodel("spm_bos_out_of_range", &b, VKM_ERR_FORMAT, "bos_id = 99");
    bb_free(&b);
    spmodel(&b, 2, 1, true);
    expect_spmodel("spm_charsmap", &b, VKM_ERR_UNSUPPORTED, "nmt_nfkc");
    bb_free(&b);
    pb_piece(&b, "a", 0, 1);
    pb_piece(&b, "a", 0, 1);
    pb_int(&b, 2, 0); /* a varint where a message should be: skipped */
    bb ts = {0};
    pb_int(&ts, 3, 2);
    pb_bytes(&b, 2, ts.p, ts.n);
    bb_free(&ts);
    expect_spmodel("spm_repeated_piece", &b, VKM_ERR_FORMAT, "pieces 0 and 1 are both \"a\"");
    bb_free(&b);
    pb_piece(&b, "a", 0, 9);
    pb_int(&ts, 3, 2);
    pb_bytes(&b, 2, ts.p, ts.n);
    bb_free(&ts);
    expect_spmodel("spm_bad_type", &b, VKM_ERR_FORMAT, "unknown type 9");
    bb_free(&b);
    bb_cstr(&b, "\x0a\xff\xff\xff\xff\x0f");
    expect_spmodel("spm_length_beyond_end", &b, VKM_ERR_FORMAT, "length beyond the end");
    bb_free(&b);
    bb_cstr(&b, "\x0b\x01");
    expect_spmodel("spm_group_wire_type", &b, VKM_ERR_FORMAT, "wire type");
    bb_free(&b);
    bb_cstr(&b, "\x08\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01");
    expect_spmodel("spm_varint_too_long", &b, VKM_ERR_FORMAT, "varint");
    bb_free(&b);
    expect_spmodel("spm_empty", &b, VKM_ERR_FORMAT, "no pieces");

    /* every truncation of the real tokenizer.model: refused (or, at a field boundary, a
     * smaller valid model), never a crash; a cut inside a piece names the truncation */
    size_t size;
    uint8_t *data = read_bytes(shared_path("testbed/base/tokenizer.model"), &size);
    size_t refused = 0;
    for (size_t cut = 0; cut < size; cut++) {
        uint8_t *copy = malloc(cut + 1); /* exactly cut bytes for the sanitizer to watch */
        memcpy(copy, data, cut);
        t = vkm_tok_new();
        vkm_err e = {0};
        vkm_status s = vkm_tok_parse_spmodel(t, copy, cut, &e);
        free(copy);
        if (s != VKM_OK) refused++;
        if (s == VKM_OK) {
            vkm_status es = vkm_tokenize(t, "hello", 5, true, true, ids, 16, &n);
            assert_true(es == VKM_OK || es == VKM_ERR_LIMIT);
        }
        vkm_tokenizer_free(t);
    }
    printf("  %zu truncations of tokenizer.model: %zu refused, none crashed\n", size, refused);
    assert_true(refused > size / 2);
    write_bytes(tmp_path("cut.model"), data, 50);
    expect_load("spm_cut_50_bytes", tmp_path("cut.model"), VKM_ERR_FORMAT, "truncated");
    free(data);
}

/* ---- GGUF ----------------------------------------------------------------------------------- */
typedef struct gguf_vocab {
    const char *model, *pre;
    int n_tokens, n_scores, n_types;
    const char *const *merges;
    int n_merges;
    int64_t bos;
    int32_t bad_type;
} gguf_vocab;

static const char *const toks[] = {"<unk>", "<s>", "</s>", "a", "b", "ab", "\xE2\x96\x81"};

static const char *write_gguf(const char *name, const gguf_vocab *v)
{
    char file[96];
    snprintf(file, sizeof file, "bad_%s.gguf", name);
    const char *path = tmp_path(file);
    vkm_err e = {0};
    vkm_gguf_writer *w = NULL;
    expect_ok(vkm_gguf_writer_create(path, &w, &e), &e);
    vkm_gguf_writer_set_str(w, "general.architecture", "llama");
    if (v->model) vkm_gguf_writer_set_str(w, "tokenizer.ggml.model", v->model);
    if (v->pre) vkm_gguf_writer_set_str(w, "tokenizer.ggml.pre", v->pre);
    if (v->n_tokens) vkm_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (uint64_t)v->n_tokens, toks);
    float scores[8] = {0, 0, 0, -1, -2, -3, -4, -5};
    int32_t types[8] = {2, 3, 3, 1, 1, 1, 1, 1};
    if (v->bad_type) types[4] = v->bad_type;
    if (v->n_scores) vkm_gguf_writer_set_arr(w, "tokenizer.ggml.scores", VKM_GGUF_F32, (uint64_t)v->n_scores, scores);
    if (v->n_types) vkm_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", VKM_GGUF_I32, (uint64_t)v->n_types, types);
    if (v->merges) vkm_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", (uint64_t)v->n_merges, v->merges);
    if (v->bos) vkm_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)v->bos);
    expect_ok(vkm_gguf_writer_begin(w), &e);
    expect_ok(vkm_gguf_writer_finish(w), &e);
    vkm_gguf_writer_free(w);
    return path;
}

static void expect_gguf(const char *name, const gguf_vocab *v, vkm_status want, const char *substr)
{
    expect_load(name, write_gguf(name, v), want, substr);
    /* the engine's entry gives the same answer through a vkm_err */
    char file[96];
    snprintf(file, sizeof file, "bad_%s.gguf", name);
    vkm_gguf g;
    vkm_err e = {0};
    memset(&g, 0, sizeof g);
    expect_ok(vkm_gguf_open(tmp_path(file), &g, &e), &e);
    vkm_tokenizer *t = NULL;
    vkm_status s = vkm_tok_from_gguf(&g, &t, &e);
    if (want == VKM_OK) {
        expect_ok(s, &e);
        assert_non_null(t);
    } else {
        expect_fail(name, s, &e, want, substr);
        assert_null(t);
    }
    vkm_tokenizer_free(t);
    vkm_gguf_close(&g);
}

static void test_bad_gguf(void **state)
{
    (void)state;
    static const char *const good_merges[] = {"a b"}, *const unknown[] = {"a c"}, *const nospace[] = {"ab"},
                             *const unmade[] = {"b a"};
    expect_gguf("gguf_spm_ok", &(gguf_vocab){"llama", NULL, 7, 7, 7, NULL, 0, 0, 0}, VKM_OK, NULL);
    expect_gguf("gguf_bpe_ok", &(gguf_vocab){"gpt2", "smollm", 7, 0, 7, good_merges, 1, 0, 0}, VKM_OK, NULL);
    expect_gguf("gguf_no_tokenizer", &(gguf_vocab){NULL, NULL, 0, 0, 0, NULL, 0, 0, 0}, VKM_ERR_NOT_FOUND,
                "tokenizer.ggml.model is missing");
    expect_gguf("gguf_bert", &(gguf_vocab){"bert", NULL, 7, 7, 7, NULL, 0, 0, 0}, VKM_ERR_UNSUPPORTED, "\"bert\"");
    expect_gguf("gguf_no_tokens", &(gguf_vocab){"llama", NULL, 0, 0, 0, NULL, 0, 0, 0}, VKM_ERR_FORMAT,
                "tokenizer.ggml.tokens is missing");
    expect_gguf("gguf_scores_short", &(gguf_vocab){"llama", NULL, 7, 6, 7, NULL, 0, 0, 0}, VKM_ERR_FORMAT,
                "tokenizer.ggml.scores has 6 entries but tokenizer.ggml.tokens has 7");
    expect_gguf("gguf_types_long", &(gguf_vocab){"llama", NULL, 6, 6, 7, NULL, 0, 0, 0}, VKM_ERR_FORMAT,
                "tokenizer.ggml.token_type has 7 entries but tokenizer.ggml.tokens has 6");
    expect_gguf("gguf_bad_type", &(gguf_vocab){"llama", NULL, 7, 7, 7, NULL, 0, 0, 9}, VKM_ERR_FORMAT,
                "token_type[4] = 9");
    expect_gguf("gguf_bos_range", &(gguf_vocab){"llama", NULL, 7, 7, 7, NULL, 0, 70, 0}, VKM_ERR_FORMAT,
                "bos_token_id = 70");
    expect_gguf("gguf_no_merges", &(gguf_vocab){"gpt2", NULL, 7, 0, 7, NULL, 0, 0, 0}, VKM_ERR_FORMAT,
                "tokenizer.ggml.merges is missing");
    expect_gguf("gguf_merge_unknown", &(gguf_vocab){"gpt2", NULL, 7, 0, 7, unknown, 1, 0, 0}, VKM_ERR_FORMAT,
                "\"c\" is not in the vocabulary");
    expect_gguf("gguf_merge_no_space", &(gguf_vocab){"gpt2", NULL, 7, 0, 7, nospace, 1, 0, 0}, VKM_ERR_FORMAT,
                "not two tokens");
    expect_gguf("gguf_merge_unmade", &(gguf_vocab){"gpt2", NULL, 7, 0, 7, unmade, 1, 0, 0}, VKM_ERR_FORMAT,
                "\"ba\" is not in the vocabulary");
    expect_gguf("gguf_unknown_pre", &(gguf_vocab){"gpt2", "deepseek-coder", 7, 0, 7, good_merges, 1, 0, 0},
                VKM_ERR_UNSUPPORTED, "tokenizer.ggml.pre = \"deepseek-coder\"");
    /* a model file without any tokenizer keys */
    expect_load("gguf_model_without_vocab", tmp_path("bad_gguf_no_tokenizer.gguf"), VKM_ERR_NOT_FOUND, "no tokenizer");
    expect_load("missing_file", tmp_path("does_not_exist.model"), VKM_ERR_IO, "cannot open");
    make_dir(tmp_path("empty_dir"));
    expect_load("folder_without_tokenizer", tmp_path("empty_dir"), VKM_ERR_NOT_FOUND, "no tokenizer.json");
}

/* ---- behaviours on hand-made vocabularies ---------------------------------------------------- */
static vkm_tokenizer *json_tok(const char *name, const char *json)
{
    const char *path = tmp_path(name);
    write_text(path, json);
    vkm_tokenizer *t = NULL;
    if (vkm_tokenizer_load(path, &t) != VKM_OK) fail_msg("%s: %s", name, vkm_tokenizer_errmsg(t));
    return t;
}

static void expect_ids(vkm_tokenizer *t, const char *text, bool special, const int32_t *want, size_t n_want)
{
    int32_t ids[64];
    size_t n;
    assert_int_equal(vkm_tokenize(t, text, strlen(text), false, special, ids, 64, &n), VKM_OK);
    if (n != n_want || memcmp(ids, want, n * sizeof *ids) != 0) {
        printf("  \"%s\": got", text);
        for (size_t i = 0; i < n; i++) printf(" %d", ids[i]);
        printf("\n");
        fail_msg("wrong ids for \"%s\"", text);
    }
}

static void test_small_vocabs(void **state)
{
    (void)state;
    /* unk fusion on and off (Hugging Face fuse_unk), no byte fallback */
#define SMALL(fuse)                                                                             \
    "{\"added_tokens\":[{\"id\":4,\"content\":\"<x>\",\"special\":false},"                           \
    "{\"id\":5,\"content\":\"<eos>\",\"special\":true}],"                                            \
    "\"model\":{\"type\":\"BPE\",\"vocab\":{\"<unk>\":0,\"a\":1,\"b\":2,\"ab\":3},"                 \
    "\"merges\":[\"a b\"],\"unk_token\":\"<unk>\",\"fuse_unk\":" fuse "}}"
    vkm_tokenizer *t = json_tok("fuse.json", SMALL("true"));
    expect_ids(t, "abxyab", false, (int32_t[]){3, 0, 3}, 3);
    /* a non-special added token is matched always, a special one only with parse_special */
    expect_ids(t, "a<x>b", false, (int32_t[]){1, 4, 2}, 3);
    expect_ids(t, "a<eos>", true, (int32_t[]){1, 5}, 2);
    expect_ids(t, "a<eos>", false, (int32_t[]){1, 0}, 2);
    char buf[32];
    size_t n;
    assert_int_equal(vkm_detokenize(t, (int32_t[]){3, 5, 4}, 3, buf, sizeof buf, &n), VKM_OK);
    assert_string_equal(buf, "ab<x>"); /* control tokens vanish, added ones show */
    vkm_tokenizer_free(t);
    t = json_tok("nofuse.json", SMALL("false"));
    expect_ids(t, "abxyab", false, (int32_t[]){3, 0, 0, 3}, 4);
    vkm_tokenizer_free(t);

    /* byte-level: bytes that are not UTF-8 are encoded raw and decoded back as U+FFFD */
    t = json_tok("bytes.json", "{\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false},"
                               "\"model\":{\"type\":\"BPE\",\"vocab\":{\"\xC3\xBF\":0,\"a\":1,\"\xC4\xA0\":2},"
                               "\"merges\":[]},\"decoder\":{\"type\":\"ByteLevel\"}}");
    expect_ids(t, "a\xFF a", false, (int32_t[]){1, 0, 2, 1}, 4);
    assert_int_equal(vkm_detokenize(t, (int32_t[]){1, 0, 2}, 3, buf, sizeof buf, &n), VKM_OK);
    assert_string_equal(buf, "a\xEF\xBF\xBD ");
    vkm_tokenizer_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_json),
        cmocka_unit_test(test_bad_spmodel),
        cmocka_unit_test(test_bad_gguf),
        cmocka_unit_test(test_small_vocabs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
