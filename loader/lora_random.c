/*
 * lora_random.c — vkm_lora_write_random(): a llama.cpp GGUF LoRA adapter of seeded random
 * values for every one of the seven adapted matrices of a model shape (benchmarks of the bank).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "writer.h"

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void fill(float *p, uint64_t n, float a, uint64_t *s)
{
    for (uint64_t i = 0; i < n; i++) p[i] = a * ((float)(splitmix(s) >> 40) * (2.0f / 16777216.0f) - 1.0f);
}

vkm_status vkm_lora_write_random(const char *path, const vkm_model_shape *sh, uint32_t rank, float alpha,
                                 uint64_t seed, char *msg, size_t cap)
{
    if (msg && cap) msg[0] = 0;
    vkm_err e;
    vkm_err_clear(&e);
    if (!path || !sh || !rank || !sh->dim || !sh->n_layers || !sh->n_heads || !sh->n_kv_heads || !sh->ffn_dim) {
        if (msg && cap) snprintf(msg, cap, "random LoRA: bad shape or rank");
        return VKM_ERR_INVALID_ARGUMENT;
    }
    const uint32_t hd = sh->head_dim ? sh->head_dim : sh->dim / sh->n_heads;
    const uint32_t D = sh->dim, qd = sh->n_heads * hd, kvd = sh->n_kv_heads * hd, F = sh->ffn_dim;
    static const char *mods[7] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
    const uint32_t ins[7] = {D, D, D, qd, D, D, F}, outs[7] = {qd, kvd, kvd, D, F, F, D};
    vkm_gguf_writer *w = NULL;
    vkm_status s = vkm_gguf_writer_create(path, &w, &e);
    if (!s) s = vkm_gguf_writer_set_str(w, "general.architecture", "llama");
    if (!s) s = vkm_gguf_writer_set_str(w, "general.type", "adapter");
    if (!s) s = vkm_gguf_writer_set_str(w, "adapter.type", "lora");
    if (!s) s = vkm_gguf_writer_set_f32(w, "adapter.lora.alpha", alpha);
    char name[96];
    for (uint32_t l = 0; l < sh->n_layers && !s; l++)
        for (int m = 0; m < 7 && !s; m++) {
            int64_t na[2] = {ins[m], rank}, nb[2] = {rank, outs[m]};
            snprintf(name, sizeof name, "blk.%u.%s.weight.lora_a", l, mods[m]);
            s = vkm_gguf_writer_add_tensor(w, name, VKM_F32, 2, na);
            snprintf(name, sizeof name, "blk.%u.%s.weight.lora_b", l, mods[m]);
            if (!s) s = vkm_gguf_writer_add_tensor(w, name, VKM_F32, 2, nb);
        }
    if (!s) s = vkm_gguf_writer_begin(w);
    const uint32_t wide = F > qd ? (F > D ? F : D) : (qd > D ? qd : D);
    float *buf = s ? NULL : malloc(4ull * rank * wide);
    if (!s && !buf) s = vkm_fail(&e, VKM_ERR_OUT_OF_HOST_MEMORY, "out of memory");
    uint64_t st = seed * 0x9e3779b97f4a7c15ull + 1;
    for (uint32_t l = 0; l < sh->n_layers && !s; l++)
        for (int m = 0; m < 7 && !s; m++) {
            fill(buf, (uint64_t)rank * ins[m], sqrtf(3.0f / (float)ins[m]), &st);
            s = vkm_gguf_writer_write(w, buf, 4ull * rank * ins[m]);
            fill(buf, (uint64_t)rank * outs[m], 0.01f, &st);
            if (!s) s = vkm_gguf_writer_write(w, buf, 4ull * rank * outs[m]);
        }
    free(buf);
    if (!s) s = vkm_gguf_writer_finish(w);
    if (w) vkm_gguf_writer_free(w);
    if (s && msg && cap) snprintf(msg, cap, "%s", e.msg);
    return s;
}
