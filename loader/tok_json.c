/*
 * tok_json.c — Hugging Face tokenizer.json (cJSON): model "BPE" (vocab, merges as "a b" or
 * ["a", "b"], byte_fallback, fuse_unk, ignore_merges, unk_token), added_tokens, the normalizer
 * (Sequence, Prepend, Replace with a string pattern), the pre-tokenizer (Sequence, ByteLevel,
 * Digits, Split with the GPT-2 / Llama 3 / Qwen 2 regex, Metaspace), the decoder (for the
 * decoding flags) and the post-processor (BOS/EOS). tokenizer_config.json beside the file, when
 * there is one, names BOS/EOS/PAD and add_bos_token. Anything else is refused by name.
 * Added tokens honour lstrip/rstrip; they are always matched on the raw text (as HF does for
 * "normalized": false, the case of every LLaMA-family file we know) and single_word is ignored.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "tok_internal.h"

#define MAX_TOKENIZER_JSON (512u << 20)
#define META "\xE2\x96\x81" /* U+2581, SentencePiece's space */

static const struct {
    const char *re;
    vkm_tok_pre pre;
} known_regex[] = {
    {"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+", VKM_TOK_PRE_GPT2},
    {"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)", VKM_TOK_PRE_GPT2},
    {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
     "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+", VKM_TOK_PRE_LLAMA3},
    {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
     "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+", VKM_TOK_PRE_QWEN2},
};

static const cJSON *get(const cJSON *o, const char *key)
{
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

static const char *get_str(const cJSON *o, const char *key)
{
    const cJSON *v = get(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool get_bool(const cJSON *o, const char *key, bool dflt)
{
    const cJSON *v = get(o, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

static bool is_null(const cJSON *v) { return !v || cJSON_IsNull(v); }

/* A token id: an integer in [0, VKM_TOK_MAX_VOCAB). */
static bool get_id(const cJSON *v, int64_t *out)
{
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= 0 && d < VKM_TOK_MAX_VOCAB) || d != (double)(int64_t)d) return false;
    *out = (int64_t)d;
    return true;
}

static vkm_status add_step(vkm_tokenizer *t, vkm_tok_pre p, vkm_err *e)
{
    if (t->n_pre >= VKM_TOK_MAX_PRE) return vkm_fail(e, VKM_ERR_UNSUPPORTED, "too many pre-tokenizer steps");
    t->pre[t->n_pre++] = p;
    return VKM_OK;
}

static vkm_status norm_step(vkm_tokenizer *t, vkm_tok_norm_kind k, const char *a, const char *b,
                            const char *where, vkm_err *e)
{
    if (!vkm_tok_add_norm(t, k, a, b))
        return vkm_fail(e, VKM_ERR_UNSUPPORTED, "%s: too many steps or a text longer than 15 bytes", where);
    return VKM_OK;
}

static vkm_status parse_normalizer(vkm_tokenizer *t, const cJSON *n, vkm_err *e)
{
    if (is_null(n)) return VKM_OK;
    const char *type = get_str(n, "type");
    if (!type) return vkm_fail(e, VKM_ERR_FORMAT, "normalizer: no \"type\"");
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = get(n, "normalizers"), *it;
        if (!cJSON_IsArray(list)) return vkm_fail(e, VKM_ERR_FORMAT, "normalizer Sequence: no \"normalizers\" array");
        cJSON_ArrayForEach(it, list) {
            vkm_status s = parse_normalizer(t, it, e);
            if (s) return s;
        }
        return VKM_OK;
    }
    if (!strcmp(type, "Prepend")) {
        const char *p = get_str(n, "prepend");
        if (!p) return vkm_fail(e, VKM_ERR_FORMAT, "normalizer Prepend: no \"prepend\" string");
        return norm_step(t, VKM_TOK_NORM_PREPEND, p, "", "normalizer Prepend", e);
    }
    if (!strcmp(type, "Replace")) {
        const char *pat = get_str(get(n, "pattern"), "String"), *content = get_str(n, "content");
        if (!pat) return vkm_fail(e, VKM_ERR_UNSUPPORTED, "normalizer Replace: only a \"String\" pattern is supported");
        if (!content) return vkm_fail(e, VKM_ERR_FORMAT, "normalizer Replace: no \"content\" string");
        return norm_step(t, VKM_TOK_NORM_REPLACE, pat, content, "normalizer Replace", e);
    }
    return vkm_fail(e, VKM_ERR_UNSUPPORTED, "normalizer \"%s\" is not supported (Sequence, Prepend, Replace are)", type);
}

static vkm_status parse_pre(vkm_tokenizer *t, const cJSON *p, vkm_err *e)
{
    if (is_null(p)) return VKM_OK;
    const char *type = get_str(p, "type");
    if (!type) return vkm_fail(e, VKM_ERR_FORMAT, "pre_tokenizer: no \"type\"");
    if (t->byte_level)
        return vkm_fail(e, VKM_ERR_UNSUPPORTED, "pre_tokenizer: a step after ByteLevel is not supported");
    vkm_status s;
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = get(p, "pretokenizers"), *it;
        if (!cJSON_IsArray(list)) return vkm_fail(e, VKM_ERR_FORMAT, "pre_tokenizer Sequence: no \"pretokenizers\" array");
        cJSON_ArrayForEach(it, list)
            if ((s = parse_pre(t, it, e)) != VKM_OK) return s;
        return VKM_OK;
    }
    if (!strcmp(type, "ByteLevel")) {
        if (get_bool(p, "add_prefix_space", true) && (s = add_step(t, VKM_TOK_PRE_PREFIX_SPACE, e))) return s;
        if (get_bool(p, "use_regex", true) && (s = add_step(t, VKM_TOK_PRE_GPT2, e))) return s;
        t->byte_level = true;
        return VKM_OK;
    }
    if (!strcmp(type, "Digits")) {
        if (!get_bool(p, "individual_digits", false))
            return vkm_fail(e, VKM_ERR_UNSUPPORTED, "pre_tokenizer Digits: only individual_digits = true is supported");
        return add_step(t, VKM_TOK_PRE_DIGITS, e);
    }
    if (!strcmp(type, "Split")) {
        const char *re = get_str(get(p, "pattern"), "Regex"), *behavior = get_str(p, "behavior");
        if (!re || !behavior || strcmp(behavior, "Isolated") != 0 || get_bool(p, "invert", false))
            return vkm_fail(e, VKM_ERR_UNSUPPORTED, "pre_tokenizer Split: only a Regex pattern with behavior "
                                                    "Isolated is supported");
        for (size_t i = 0; i < sizeof known_regex / sizeof known_regex[0]; i++)
            if (!strcmp(re, known_regex[i].re)) return add_step(t, known_regex[i].pre, e);
        return vkm_fail(e, VKM_ERR_UNSUPPORTED, "pre_tokenizer Split: the regex \"%.200s\" is not one vkmoe "
                                                "implements (GPT-2, Llama 3, Qwen 2)", re);
    }
    if (!strcmp(type, "Metaspace")) {
        const char *rep = get_str(p, "replacement"), *scheme = get_str(p, "prepend_scheme");
        if (rep && strcmp(rep, META) != 0)
            return vkm_fail(e, VKM_ERR_UNSUPPORTED, "pre_tokenizer Metaspace: only the replacement U+2581 is supported");
        if (!scheme) scheme = get_bool(p, "add_prefix_space", true) ? "always" : "never";
        if ((s = norm_step(t, VKM_TOK_NORM_REPLACE, " ", META, "Metaspace", e))) return s;
        if (strcmp(scheme, "never") != 0) {
            if ((s = norm_step(t, VKM_TOK_NORM_PREPEND, META, "", "Metaspace", e))) return s;
            t->norm[t->n_norm - 1].unless_prefixed = true;
            t->norm[t->n_norm - 1].first_only = !strcmp(scheme, "first");
        }
        if (get_bool(p, "split", true) && (s = add_step(t, VKM_TOK_PRE_METASPACE, e))) return s;
        return VKM_OK;
    }
    return vkm_fail(e, VKM_ERR_UNSUPPORTED,
                    "pre_tokenizer \"%s\" is not supported (Sequence, ByteLevel, Digits, Split, Metaspace are)", type);
}

/* The decoding flags from the decoder (SentencePiece-style vocabularies only). */
static void parse_decoder(vkm_tokenizer *t, const cJSON *d)
{
    const char *type = get_str(d, "type");
    if (!type) return;
    if (!strcmp(type, "Sequence")) {
        const cJSON *it;
        cJSON_ArrayForEach(it, get(d, "decoders")) parse_decoder(t, it);
    } else if (!strcmp(type, "Replace")) {
        const char *pat = get_str(get(d, "pattern"), "String"), *content = get_str(d, "content");
        if (pat && content && !strcmp(pat, META) && !strcmp(content, " ")) t->dec_spaces = true;
    } else if (!strcmp(type, "Strip")) {
        const char *c = get_str(d, "content");
        const cJSON *start = get(d, "start");
        if (c && !strcmp(c, " ") && cJSON_IsNumber(start) && start->valuedouble >= 1) t->dec_strip = true;
    } else if (!strcmp(type, "Metaspace")) {
        const char *scheme = get_str(d, "prepend_scheme");
        t->dec_spaces = true;
        t->dec_strip = scheme ? strcmp(scheme, "never") != 0 : get_bool(d, "add_prefix_space", true);
    }
}

/* The id of a token given by its text; -1 if absent. */
static int32_t find_str(const vkm_tokenizer *t, const char *s) { return s ? vkm_tok_find(t, s, strlen(s)) : -1; }

/* BOS/EOS from a TemplateProcessing post-processor: its "single" template's first and last
 * items when they are special tokens. */
static void parse_post(vkm_tokenizer *t, const cJSON *p)
{
    const char *type = get_str(p, "type");
    if (!type) return;
    if (!strcmp(type, "Sequence")) {
        const cJSON *it;
        cJSON_ArrayForEach(it, get(p, "processors")) parse_post(t, it);
        return;
    }
    if (strcmp(type, "TemplateProcessing") != 0) return;
    const cJSON *single = get(p, "single");
    int n = cJSON_GetArraySize(single);
    if (!cJSON_IsArray(single) || n == 0) return;
    const cJSON *specials = get(p, "special_tokens");
    for (int k = 0; k < 2; k++) {
        const char *name = get_str(get(cJSON_GetArrayItem(single, k ? n - 1 : 0), "SpecialToken"), "id");
        if (!name) continue;
        const cJSON *ids = get(get(specials, name), "ids");
        int64_t id;
        int32_t tid = get_id(cJSON_GetArrayItem(ids, 0), &id) && id < t->n_vocab ? (int32_t)id : find_str(t, name);
        if (tid < 0) continue;
        if (k == 0) t->bos = tid, t->add_bos = true;
        else t->eos = tid, t->add_eos = true;
    }
}

/* tokenizer_config.json beside tokenizer.json: bos/eos/pad tokens and add_bos_token. */
static void read_config(vkm_tokenizer *t, const char *dir)
{
    char path[1100];
    char *text = NULL;
    uint64_t len;
    if (!dir || !vkm_path_join(path, sizeof path, dir, "tokenizer_config.json") || !vkm_exists(path)) return;
    if (vkm_read_text(path, 16u << 20, &text, &len, NULL) != VKM_OK) return;
    cJSON *c = cJSON_ParseWithLength(text, (size_t)len);
    free(text);
    if (!c) return; /* the tokenizer itself does not depend on this file */
    static const char *const keys[] = {"bos_token", "eos_token", "pad_token"};
    int32_t *dst[] = {&t->bos, &t->eos, &t->pad};
    for (int i = 0; i < 3; i++) {
        const cJSON *v = get(c, keys[i]);
        const char *s = cJSON_IsString(v) ? v->valuestring : get_str(v, "content");
        int32_t id = find_str(t, s);
        if (id >= 0) *dst[i] = id;
    }
    const cJSON *ab = get(c, "add_bos_token");
    if (cJSON_IsBool(ab)) t->add_bos = cJSON_IsTrue(ab);
    cJSON_Delete(c);
}

static vkm_status parse_merges(vkm_tokenizer *t, const cJSON *merges, vkm_err *e)
{
    int n = cJSON_GetArraySize(merges);
    vkm_status s = vkm_tok_merges_reserve(t, (uint64_t)n, e);
    if (s) return s;
    const cJSON *m;
    int32_t rank = 0;
    cJSON_ArrayForEach(m, merges) {
        char what[48];
        snprintf(what, sizeof what, "model.merges[%d]", rank);
        const char *a, *b;
        size_t na, nb;
        if (cJSON_IsString(m)) {
            const char *sp = strchr(m->valuestring, ' ');
            if (!sp || strchr(sp + 1, ' '))
                return vkm_fail(e, VKM_ERR_FORMAT, "%s = \"%.64s\" is not two tokens separated by one space",
                                what, m->valuestring);
            a = m->valuestring;
            na = (size_t)(sp - a);
            b = sp + 1;
            nb = strlen(b);
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(m, 0)) && cJSON_IsString(cJSON_GetArrayItem(m, 1))) {
            a = cJSON_GetArrayItem(m, 0)->valuestring;
            b = cJSON_GetArrayItem(m, 1)->valuestring;
            na = strlen(a);
            nb = strlen(b);
        } else {
            return vkm_fail(e, VKM_ERR_FORMAT, "%s is neither \"a b\" nor [\"a\", \"b\"]", what);
        }
        if ((s = vkm_tok_merge_add(t, a, na, b, nb, rank++, what, e)) != VKM_OK) return s;
    }
    return VKM_OK;
}

static vkm_status parse_vocab(vkm_tokenizer *t, const cJSON *model, const cJSON *added, vkm_err *e)
{
    const cJSON *vocab = get(model, "vocab"), *it;
    if (!cJSON_IsObject(vocab)) return vkm_fail(e, VKM_ERR_FORMAT, "model.vocab is missing or not an object");
    int64_t max = -1, id = 0;
    cJSON_ArrayForEach(it, vocab) {
        if (!get_id(it, &id))
            return vkm_fail(e, VKM_ERR_FORMAT, "model.vocab[\"%.64s\"] is not a token id", it->string);
        if (id > max) max = id;
    }
    if (!is_null(added) && !cJSON_IsArray(added)) return vkm_fail(e, VKM_ERR_FORMAT, "added_tokens is not an array");
    cJSON_ArrayForEach(it, added) {
        if (!get_id(get(it, "id"), &id) || !get_str(it, "content"))
            return vkm_fail(e, VKM_ERR_FORMAT, "added_tokens: an entry without an integer \"id\" and a \"content\"");
        if (id > max) max = id;
    }
    vkm_status s = vkm_tok_resize(t, max + 1, e);
    if (s) return s;
    cJSON_ArrayForEach(it, vocab) {
        get_id(it, &id);
        if (t->pieces[id].type)
            return vkm_fail(e, VKM_ERR_FORMAT, "model.vocab: id %lld is given to two tokens", (long long)id);
        const char *txt = it->string;
        int type = VKM_TOKT_NORMAL;
        size_t n = strlen(txt);
        if (t->byte_fallback && n == 6 && !strncmp(txt, "<0x", 3) && txt[5] == '>') type = VKM_TOKT_BYTE;
        if ((s = vkm_tok_set(t, (int32_t)id, txt, n, 0, type, e)) != VKM_OK) return s;
    }
    cJSON_ArrayForEach(it, added) {
        get_id(get(it, "id"), &id);
        const char *txt = get_str(it, "content");
        int type = get_bool(it, "special", false) ? VKM_TOKT_CONTROL : VKM_TOKT_USER;
        if ((s = vkm_tok_set(t, (int32_t)id, txt, strlen(txt), 0, type, e)) != VKM_OK) return s;
        t->pieces[id].strip = (uint8_t)((get_bool(it, "lstrip", false) ? VKM_TOK_LSTRIP : 0) |
                                        (get_bool(it, "rstrip", false) ? VKM_TOK_RSTRIP : 0));
    }
    return vkm_tok_index(t, e);
}

vkm_status vkm_tok_load_json_text(vkm_tokenizer *t, const char *json, size_t len,
                                  const char *dir, vkm_err *e)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, false);
    if (!root)
        return vkm_fail(e, VKM_ERR_FORMAT, "not valid JSON (near byte %lld)",
                        end ? (long long)(end - json) : -1ll);
    vkm_status s = VKM_OK;
    const cJSON *model = get(root, "model");
    const char *type = get_str(model, "type");
    if (!cJSON_IsObject(model)) {
        s = vkm_fail(e, VKM_ERR_FORMAT, "no \"model\" object (not a tokenizer.json?)");
        goto done;
    }
    if (type && strcmp(type, "BPE") != 0) {
        s = vkm_fail(e, VKM_ERR_UNSUPPORTED, "model type \"%s\" is not supported (BPE is)", type);
        goto done;
    }
    const cJSON *merges = get(model, "merges");
    if (!cJSON_IsArray(merges)) {
        s = vkm_fail(e, VKM_ERR_FORMAT, "model.merges is missing or not an array");
        goto done;
    }
    const char *cswp = get_str(model, "continuing_subword_prefix"), *eows = get_str(model, "end_of_word_suffix");
    if ((cswp && cswp[0]) || (eows && eows[0])) {
        s = vkm_fail(e, VKM_ERR_UNSUPPORTED, "BPE continuing_subword_prefix / end_of_word_suffix are not supported");
        goto done;
    }
    snprintf(t->source, sizeof t->source, "tokenizer.json");
    t->model = VKM_TOK_BPE;
    t->byte_fallback = get_bool(model, "byte_fallback", false);
    t->fuse_unk = get_bool(model, "fuse_unk", false);
    t->ignore_merges = get_bool(model, "ignore_merges", false);
    t->fold_long_s = true;
    if ((s = parse_vocab(t, model, get(root, "added_tokens"), e)) != VKM_OK) goto done;
    const cJSON *unk = get(model, "unk_token");
    if (!is_null(unk)) {
        t->unk = cJSON_IsString(unk) ? find_str(t, unk->valuestring) : -1;
        if (t->unk < 0) {
            s = vkm_fail(e, VKM_ERR_FORMAT, "model.unk_token is not a token of the vocabulary");
            goto done;
        }
        t->pieces[t->unk].type = VKM_TOKT_UNKNOWN;
    }
    if ((s = parse_merges(t, merges, e)) != VKM_OK) goto done;
    if ((s = parse_normalizer(t, get(root, "normalizer"), e)) != VKM_OK) goto done;
    if ((s = parse_pre(t, get(root, "pre_tokenizer"), e)) != VKM_OK) goto done;
    if (!t->byte_level) parse_decoder(t, get(root, "decoder"));
    parse_post(t, get(root, "post_processor"));
    read_config(t, dir);
    if (t->bos < 0 && !t->byte_level) t->bos = find_str(t, "<s>");
    if (t->eos < 0) t->eos = find_str(t, t->byte_level ? "<|endoftext|>" : "</s>");
    s = vkm_tok_finish(t, e);
done:
    cJSON_Delete(root);
    return s;
}

vkm_status vkm_tok_load_json(vkm_tokenizer *t, const char *path, vkm_err *e)
{
    char *text = NULL;
    uint64_t len = 0;
    vkm_status s = vkm_read_text(path, MAX_TOKENIZER_JSON, &text, &len, e);
    if (s != VKM_OK) return s;
    char dir[1024];
    vkm_path_dir(dir, sizeof dir, path);
    s = vkm_tok_load_json_text(t, text, (size_t)len, dir, e);
    free(text);
    if (s != VKM_OK) vkm_err_prefix(e, "%s", path);
    return s;
}
