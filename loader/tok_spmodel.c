/*
 * tok_spmodel.c — SentencePiece tokenizer.model files: a protobuf ModelProto read field by
 * field (no protobuf library): pieces (text, score, type), TrainerSpec (model type, byte
 * fallback, unk/bos/eos/pad ids, whitespace as suffix) and NormalizerSpec (name, precompiled
 * charsmap, add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces). Only BPE models
 * with the identity normalisation are accepted; anything else is refused by name.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

#define MAX_SPMODEL (256u << 20)

/* A protobuf message being read: the bytes [p, end) and the base for byte offsets in errors. */
typedef struct pb {
    const uint8_t *p, *end, *base;
} pb;

static vkm_status truncated(const pb *m, vkm_err *e, const char *what)
{
    return vkm_fail(e, VKM_ERR_FORMAT, "truncated or malformed protobuf at byte %lld (%s)",
                    (long long)(m->p - m->base), what);
}

static bool varint(pb *m, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (m->p >= m->end) return false;
        uint8_t b = *m->p++;
        x |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false;
}

/* One field: its number, wire type and value (varint / fixed in *v, bytes in *sub). */
typedef struct field {
    uint32_t num, wire;
    uint64_t v;
    pb sub;
} field;

static vkm_status next_field(pb *m, field *f, vkm_err *e)
{
    uint64_t key;
    if (!varint(m, &key)) return truncated(m, e, "field key");
    f->num = (uint32_t)(key >> 3);
    f->wire = (uint32_t)(key & 7);
    if (f->num == 0) return truncated(m, e, "field number 0");
    switch (f->wire) {
    case 0:
        if (!varint(m, &f->v)) return truncated(m, e, "varint");
        return VKM_OK;
    case 1:
        if (m->end - m->p < 8) return truncated(m, e, "fixed64");
        f->v = vkm_rd64(m->p);
        m->p += 8;
        return VKM_OK;
    case 5:
        if (m->end - m->p < 4) return truncated(m, e, "fixed32");
        f->v = vkm_rd32(m->p);
        m->p += 4;
        return VKM_OK;
    case 2: {
        uint64_t len;
        if (!varint(m, &len)) return truncated(m, e, "length");
        if (len > (uint64_t)(m->end - m->p)) return truncated(m, e, "length beyond the end");
        f->sub = (pb){m->p, m->p + len, m->base};
        m->p += len;
        return VKM_OK;
    }
    default: return truncated(m, e, "unsupported wire type");
    }
}

typedef struct spec {
    int64_t model_type, unk, bos, eos, pad;
    bool byte_fallback, ws_suffix;
    bool dummy_prefix, remove_ws, escape_ws;
    char name[64];
    uint64_t charsmap_len;
} spec;

static vkm_status read_trainer(pb m, spec *sp, vkm_err *e)
{
    while (m.p < m.end) {
        field f;
        vkm_status s = next_field(&m, &f, e);
        if (s) return s;
        if (f.wire != 0) continue;
        switch (f.num) {
        case 3: sp->model_type = (int64_t)f.v; break;
        case 24: sp->ws_suffix = f.v != 0; break;
        case 35: sp->byte_fallback = f.v != 0; break;
        case 40: sp->unk = (int32_t)f.v; break;
        case 41: sp->bos = (int32_t)f.v; break;
        case 42: sp->eos = (int32_t)f.v; break;
        case 43: sp->pad = (int32_t)f.v; break;
        default: break;
        }
    }
    return VKM_OK;
}

static vkm_status read_normalizer(pb m, spec *sp, vkm_err *e)
{
    while (m.p < m.end) {
        field f;
        vkm_status s = next_field(&m, &f, e);
        if (s) return s;
        if (f.num == 1 && f.wire == 2) {
            size_t n = (size_t)(f.sub.end - f.sub.p);
            if (n >= sizeof sp->name) n = sizeof sp->name - 1;
            memcpy(sp->name, f.sub.p, n);
            sp->name[n] = 0;
        } else if (f.num == 2 && f.wire == 2) {
            sp->charsmap_len = (uint64_t)(f.sub.end - f.sub.p);
        } else if (f.wire == 0 && f.num == 3) {
            sp->dummy_prefix = f.v != 0;
        } else if (f.wire == 0 && f.num == 4) {
            sp->remove_ws = f.v != 0;
        } else if (f.wire == 0 && f.num == 5) {
            sp->escape_ws = f.v != 0;
        }
    }
    return VKM_OK;
}

/* Piece i: text, score (default 0), type (default NORMAL). */
static vkm_status read_piece(vkm_tokenizer *t, int32_t id, pb m, vkm_err *e)
{
    const uint8_t *text = NULL;
    size_t n = 0;
    float score = 0;
    uint64_t type = VKM_TOKT_NORMAL;
    while (m.p < m.end) {
        field f;
        vkm_status s = next_field(&m, &f, e);
        if (s) return s;
        if (f.num == 1 && f.wire == 2) {
            text = f.sub.p;
            n = (size_t)(f.sub.end - f.sub.p);
        } else if (f.num == 2 && f.wire == 5) {
            uint32_t b = (uint32_t)f.v;
            memcpy(&score, &b, 4);
        } else if (f.num == 3 && f.wire == 0) {
            type = f.v;
        }
    }
    if (!text || n == 0) return vkm_fail(e, VKM_ERR_FORMAT, "piece %d has no text", id);
    if (type < VKM_TOKT_NORMAL || type > VKM_TOKT_BYTE)
        return vkm_fail(e, VKM_ERR_FORMAT, "piece %d has the unknown type %llu", id, (unsigned long long)type);
    return vkm_tok_set(t, id, (const char *)text, n, score, (int)type, e);
}

vkm_status vkm_tok_parse_spmodel(vkm_tokenizer *t, const uint8_t *data, size_t size, vkm_err *e)
{
    spec sp = {.model_type = 1, .unk = 0, .bos = 1, .eos = 2, .pad = -1,
               .dummy_prefix = true, .remove_ws = true, .escape_ws = true};
    pb m = {data, data + size, data};
    uint64_t n_pieces = 0;
    vkm_status s;
    /* first pass: count pieces, read the specs */
    while (m.p < m.end) {
        field f;
        if ((s = next_field(&m, &f, e)) != VKM_OK) return s;
        if (f.wire != 2) continue;
        if (f.num == 1) n_pieces++;
        else if (f.num == 2 && (s = read_trainer(f.sub, &sp, e)) != VKM_OK) return s;
        else if (f.num == 3 && (s = read_normalizer(f.sub, &sp, e)) != VKM_OK) return s;
    }
    if (n_pieces == 0) return vkm_fail(e, VKM_ERR_FORMAT, "no pieces (not a SentencePiece model?)");
    if (sp.model_type != 2)
        return vkm_fail(e, VKM_ERR_UNSUPPORTED,
                        "SentencePiece model type %lld is not supported (only BPE, type 2)",
                        (long long)sp.model_type);
    if (sp.ws_suffix)
        return vkm_fail(e, VKM_ERR_UNSUPPORTED, "treat_whitespace_as_suffix is not supported");
    if (sp.charsmap_len && strcmp(sp.name, "identity") != 0)
        return vkm_fail(e, VKM_ERR_UNSUPPORTED,
                        "the normalization \"%s\" (a precompiled charsmap) is not supported; only identity",
                        sp.name);
    if ((s = vkm_tok_resize(t, (int64_t)n_pieces, e)) != VKM_OK) return s;
    m.p = data;
    int32_t id = 0;
    while (m.p < m.end) {
        field f;
        if ((s = next_field(&m, &f, e)) != VKM_OK) return s;
        if (f.wire == 2 && f.num == 1 && (s = read_piece(t, id++, f.sub, e)) != VKM_OK) return s;
    }
    if ((s = vkm_tok_index(t, e)) != VKM_OK) return s;
    for (int32_t i = 0; i < t->n_vocab; i++) { /* SentencePiece refuses a repeated piece */
        int32_t j = vkm_tok_find(t, vkm_tok_text(t, i), t->pieces[i].len);
        if (j != i)
            return vkm_fail(e, VKM_ERR_FORMAT, "pieces %d and %d are both \"%.32s\"", i, j, vkm_tok_text(t, i));
    }
    const struct { const char *name; int64_t v; int32_t *dst; } ids[] = {
        {"unk_id", sp.unk, &t->unk}, {"bos_id", sp.bos, &t->bos},
        {"eos_id", sp.eos, &t->eos}, {"pad_id", sp.pad, &t->pad}};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        if (ids[i].v < -1 || ids[i].v >= t->n_vocab)
            return vkm_fail(e, VKM_ERR_FORMAT, "trainer_spec.%s = %lld is outside the %d pieces",
                            ids[i].name, (long long)ids[i].v, t->n_vocab);
        *ids[i].dst = (int32_t)ids[i].v;
    }
    snprintf(t->source, sizeof t->source, "tokenizer.model");
    t->model = VKM_TOK_SPM;
    t->add_bos = true;
    t->byte_fallback = sp.byte_fallback;
    t->fuse_unk = true;
    if (sp.remove_ws) vkm_tok_add_norm(t, VKM_TOK_NORM_COLLAPSE, "", "");
    if (sp.dummy_prefix) vkm_tok_add_norm(t, VKM_TOK_NORM_PREPEND, sp.escape_ws ? "\xE2\x96\x81" : " ", "");
    if (sp.escape_ws) vkm_tok_add_norm(t, VKM_TOK_NORM_REPLACE, " ", "\xE2\x96\x81");
    t->dec_spaces = sp.escape_ws;
    t->dec_strip = sp.dummy_prefix;
    return vkm_tok_finish(t, e);
}

vkm_status vkm_tok_load_spmodel(vkm_tokenizer *t, const char *path, vkm_err *e)
{
    vkm_map m;
    vkm_status s = vkm_map_open(path, &m, e);
    if (s != VKM_OK) return s;
    if (m.size > MAX_SPMODEL) {
        vkm_map_close(&m);
        return vkm_fail(e, VKM_ERR_LIMIT, "%s: %llu bytes, too large for a tokenizer.model", path,
                        (unsigned long long)m.size);
    }
    s = vkm_tok_parse_spmodel(t, m.data, (size_t)m.size, e);
    vkm_map_close(&m);
    if (s != VKM_OK) vkm_err_prefix(e, "%s", path);
    return s;
}
