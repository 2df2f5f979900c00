/*
 * fuzz_gguf.c — libFuzzer target for the GGUF reader, and through it the model (llama, mistral,
 * qwen2, MoE) and GGUF LoRA readers, from one input in memory. Checks: no crash, no leak, every
 * tensor of an accepted file inside the input and consistent, lookups find what was listed.
 */
#include <stdint.h>

#include "fuzz_common.h"

static void touch_value(const vkm_gguf *g, const vkm_gguf_kv *kv)
{
    uint32_t u;
    int64_t i;
    float f;
    bool b;
    char s[64];
    FUZZ_CHECK(vkm_gguf_find(g, kv->key) == kv);
    vkm_gguf_get_u32(g, kv->key, &u);
    vkm_gguf_get_i64(g, kv->key, &i);
    vkm_gguf_get_f32(g, kv->key, &f);
    vkm_gguf_get_bool(g, kv->key, &b);
    vkm_gguf_get_str(g, kv->key, s, sizeof s);
    const vkm_gguf_arr *a = vkm_gguf_get_arr(g, kv->key);
    if (!a) return;
    double d;
    for (uint64_t k = 0; k < a->n && k < 64; k++) {
        vkm_gguf_arr_i64(a, k, &i);
        vkm_gguf_arr_f64(a, k, &d);
        if (a->elem_type == VKM_GGUF_STRING) FUZZ_CHECK(a->strs[k].p >= (const char *)g->map.data);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vkm_gguf g;
    vkm_err e = {0};
    if (vkm_gguf_open_mem(data, size, "fuzz.gguf", &g, &e) == VKM_OK) {
        for (uint64_t k = 0; k < g.n_kv; k++) touch_value(&g, &g.kv[k]);
        for (uint64_t t = 0; t < g.n_tensors; t++) {
            FUZZ_CHECK(vkm_gguf_tensor(&g, g.tensors[t].name) == &g.tensors[t]);
            FUZZ_CHECK(g.tensors[t].offset % g.alignment == 0);
            fuzz_touch_tensor(&g.tensors[t], data, size);
        }
        vkm_gguf_close(&g);
    } else {
        FUZZ_CHECK(e.msg[0] && e.status != VKM_OK);
    }
    vkm_model_src m;
    if (vkm_model_src_open_gguf_mem(data, size, "fuzz.gguf", &m, &e) == VKM_OK) {
        FUZZ_CHECK(vkm_hparams_check(&m.hp, "fuzz", &e) == VKM_OK);
        FUZZ_CHECK(vkm_model_src_tensor(&m, "token_embd.weight") != NULL);
        vkm_model_src_close(&m);
    }
    vkm_adapter_src a;
    if (vkm_adapter_open_gguf_mem(data, size, "fuzz.gguf", &a, &e) == VKM_OK) {
        for (uint32_t p = 0; p < a.n_pairs; p++)
            FUZZ_CHECK(a.pairs[p].a->ne[1] == a.pairs[p].rank && a.pairs[p].b->ne[0] == a.pairs[p].rank);
        vkm_adapter_close(&a);
    }
    return 0;
}
