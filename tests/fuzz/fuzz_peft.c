/*
 * fuzz_peft.c — libFuzzer target for PEFT adapters, through the in-memory entry point: the input
 * is a 4-byte little-endian length n, n bytes of adapter_config.json, then the bytes of
 * adapter_model.safetensors. An accepted adapter is validated against the testbed base model.
 * Checks: no crash, no leak, pairs consistent (ranks, sorted order, finite scales).
 */
#include <math.h>
#include <stdint.h>

#include "fuzz_common.h"

static vkm_model_src base;
static bool have_base;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!have_base) {
        char p[1024];
        vkm_err e = {0};
        snprintf(p, sizeof p, "%s/testbed/base/model.gguf", fuzz_shared_dir());
        have_base = vkm_model_src_open(p, &base, &e) == VKM_OK;
        if (!have_base) fprintf(stderr, "fuzz_peft: no base model (%s); validation skipped\n", e.msg);
    }
    if (size < 4) return 0;
    uint32_t n = vkm_rd32(data);
    if (n > size - 4) return 0;
    vkm_adapter_src a;
    vkm_err e = {0};
    if (vkm_adapter_open_peft_mem((const char *)data + 4, n, data + 4 + n, size - 4 - n, "fuzz", &a, &e) != VKM_OK) {
        FUZZ_CHECK(e.msg[0]);
        return 0;
    }
    FUZZ_CHECK(a.n_pairs > 0);
    for (uint32_t i = 0; i < a.n_pairs; i++) {
        const vkm_lora_pair *p = &a.pairs[i];
        FUZZ_CHECK(p->a->ne[1] == p->rank && p->b->ne[0] == p->rank && p->rank >= 1);
        FUZZ_CHECK(isfinite(p->scale));
        if (i) FUZZ_CHECK(p[-1].layer < p->layer || (p[-1].layer == p->layer && p[-1].module < p->module));
        fuzz_touch_tensor(p->a, data + 4 + n, size - 4 - n);
        fuzz_touch_tensor(p->b, data + 4 + n, size - 4 - n);
    }
    if (have_base) vkm_adapter_validate(&a, &base, &e);
    vkm_adapter_close(&a);
    return 0;
}
