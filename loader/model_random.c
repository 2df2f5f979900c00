/*
 * model_random.c — vkm_model_write_random(): a GGUF llama model file of any shape with seeded
 * random weights, written tensor by tensor in pieces (a model larger than memory is fine), for
 * the merge benchmark and tests. Each value is a counter-based hash of (seed, tensor, index), so
 * files with one seed and different noise seeds are perturbed copies of one model.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "writer.h"

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t name_hash(const char *name)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char *c = name; *c; c++) h = (h ^ (uint8_t)*c) * 0x100000001b3ull;
    return h;
}

/* uniform in [-1, 1) from a 64-bit hash */
static float unit(uint64_t h) { return (float)(h >> 40) * (2.0f / 16777216.0f) - 1.0f; }

typedef struct rtensor {
    char name[64];
    int64_t cols, rows;       /* rows 1: a norm vector                                         */
} rtensor;

/* The tensors of a llama model of this shape, in llama.cpp's order. */
static uint32_t list_tensors(const vkm_model_shape *s, rtensor *t)
{
    const int64_t D = s->dim, hd = s->head_dim ? s->head_dim : s->dim / s->n_heads;
    const int64_t qd = s->n_heads * hd, kvd = s->n_kv_heads * hd, F = s->ffn_dim, V = s->n_vocab;
    uint32_t n = 0;
#define T(r, c, ...) (snprintf(t[n].name, sizeof t[n].name, __VA_ARGS__), t[n].rows = (r), t[n].cols = (c), n++)
    T(V, D, "token_embd.weight");
    for (uint32_t l = 0; l < s->n_layers; l++) {
        T(1, D, "blk.%u.attn_norm.weight", l);
        T(qd, D, "blk.%u.attn_q.weight", l);
        T(kvd, D, "blk.%u.attn_k.weight", l);
        T(kvd, D, "blk.%u.attn_v.weight", l);
        T(D, qd, "blk.%u.attn_output.weight", l);
        T(1, D, "blk.%u.ffn_norm.weight", l);
        T(F, D, "blk.%u.ffn_gate.weight", l);
        T(F, D, "blk.%u.ffn_up.weight", l);
        T(D, F, "blk.%u.ffn_down.weight", l);
    }
    T(1, D, "output_norm.weight");
    if (!s->tied_embeddings) T(V, D, "output.weight");
#undef T
    return n;
}

static vkm_status fail(char *msg, size_t cap, vkm_status s, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static vkm_status fail(char *msg, size_t cap, vkm_status s, const char *fmt, ...)
{
    if (msg && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, cap, fmt, ap);
        va_end(ap);
    }
    return s;
}

static vkm_status write_data(vkm_gguf_writer *w, const rtensor *t, vkm_dtype dt, uint64_t seed,
                             float noise, uint64_t noise_seed, void *buf, uint64_t piece)
{
    const bool vec = t->rows == 1;
    const float a = vec ? 0.2f : sqrtf(3.0f / (float)t->cols), base = vec ? 1.0f : 0.0f;
    const uint64_t h = name_hash(t->name), k0 = mix64(seed ^ h), k1 = mix64(noise_seed ^ h ^ 0x5bd1e995ull);
    const uint64_t n = (uint64_t)t->rows * t->cols, eb = vec || dt == VKM_F32 ? 4 : 2;
    vkm_status s = VKM_OK;
    for (uint64_t i0 = 0; i0 < n && !s; i0 += piece) {
        uint64_t m = n - i0 < piece ? n - i0 : piece;
        for (uint64_t k = 0; k < m; k++) {
            uint64_t i = i0 + k;
            float v = base + a * unit(mix64(k0 + i * 0x9e3779b97f4a7c15ull));
            if (noise != 0) v += noise * a * unit(mix64(k1 + i * 0x9e3779b97f4a7c15ull));
            if (eb == 4) ((float *)buf)[k] = v;
            else ((uint16_t *)buf)[k] = dt == VKM_F16 ? vkm_f32_to_f16(v) : vkm_f32_to_bf16(v);
        }
        s = vkm_gguf_writer_write(w, buf, m * eb);
    }
    return s;
}

vkm_status vkm_model_write_random(const char *path, const vkm_model_shape *shape, vkm_dtype dtype,
                                  uint64_t seed, float noise, uint64_t noise_seed, char *msg, size_t cap)
{
    if (msg && cap) msg[0] = 0;
    if (!path || !shape || !shape->dim || !shape->n_layers || !shape->n_heads || !shape->n_kv_heads ||
        !shape->ffn_dim || !shape->n_vocab || shape->n_heads % shape->n_kv_heads ||
        (dtype != VKM_F32 && dtype != VKM_F16 && dtype != VKM_BF16))
        return fail(msg, cap, VKM_ERR_INVALID_ARGUMENT, "random model: bad shape or type");
    uint32_t max = 9 * shape->n_layers + 3;
    rtensor *t = calloc(max, sizeof *t);
    if (!t) return fail(msg, cap, VKM_ERR_OUT_OF_HOST_MEMORY, "out of memory");
    uint32_t n = list_tensors(shape, t);
    const uint32_t hd = shape->head_dim ? shape->head_dim : shape->dim / shape->n_heads;
    vkm_err e;
    vkm_err_clear(&e);
    vkm_gguf_writer *w = NULL;
    vkm_status s = vkm_gguf_writer_create(path, &w, &e);
    if (!s) {
        vkm_gguf_writer_set_str(w, "general.architecture", "llama");
        vkm_gguf_writer_set_str(w, "general.name", "vkmoe random model");
        vkm_gguf_writer_set_u32(w, "llama.context_length", shape->ctx_len ? shape->ctx_len : 2048);
        vkm_gguf_writer_set_u32(w, "llama.embedding_length", shape->dim);
        vkm_gguf_writer_set_u32(w, "llama.block_count", shape->n_layers);
        vkm_gguf_writer_set_u32(w, "llama.feed_forward_length", shape->ffn_dim);
        vkm_gguf_writer_set_u32(w, "llama.attention.head_count", shape->n_heads);
        vkm_gguf_writer_set_u32(w, "llama.attention.head_count_kv", shape->n_kv_heads);
        vkm_gguf_writer_set_u32(w, "llama.attention.key_length", hd);
        vkm_gguf_writer_set_u32(w, "llama.rope.dimension_count", hd);
        vkm_gguf_writer_set_u32(w, "llama.vocab_size", shape->n_vocab);
        vkm_gguf_writer_set_f32(w, "llama.rope.freq_base", shape->rope_theta > 0 ? shape->rope_theta : 10000.0f);
        s = vkm_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
        for (uint32_t i = 0; i < n && !s; i++) {
            int64_t ne[2] = {t[i].cols, t[i].rows};
            s = vkm_gguf_writer_add_tensor(w, t[i].name, t[i].rows == 1 ? VKM_F32 : dtype, t[i].rows == 1 ? 1 : 2, ne);
        }
        if (!s) s = vkm_gguf_writer_begin(w);
    }
    const uint64_t piece = 1u << 20;
    void *buf = s ? NULL : malloc(piece * 4);
    if (!s && !buf) s = vkm_fail(&e, VKM_ERR_OUT_OF_HOST_MEMORY, "out of memory");
    for (uint32_t i = 0; i < n && !s; i++) s = write_data(w, &t[i], dtype, seed, noise, noise_seed, buf, piece);
    if (!s) s = vkm_gguf_writer_finish(w);
    if (s && msg && cap) snprintf(msg, cap, "%s", e.msg);
    vkm_gguf_writer_free(w);
    free(buf);
    free(t);
    return s;
}
