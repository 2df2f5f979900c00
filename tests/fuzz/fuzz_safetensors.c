/*
 * fuzz_safetensors.c — libFuzzer target for the safetensors reader (8-byte length, JSON header,
 * dtypes, offsets, "__metadata__") from one input in memory. Checks: no crash, no leak, every
 * tensor of an accepted file inside the input, unique names, no two tensors overlapping.
 */
#include <stdint.h>

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vkm_st s;
    vkm_err e = {0};
    if (vkm_st_open_mem(data, size, "fuzz.safetensors", &s, &e) != VKM_OK) {
        FUZZ_CHECK(e.msg[0] && e.status != VKM_OK);
        return 0;
    }
    FUZZ_CHECK(8 + s.header_len <= size);
    for (uint64_t t = 0; t < s.n_tensors; t++) {
        const vkm_tensor_src *x = &s.tensors[t];
        FUZZ_CHECK(vkm_st_tensor(&s, x->name) == x);
        FUZZ_CHECK(x->offset >= 8 + s.header_len);
        fuzz_touch_tensor(x, data, size);
    }
    for (uint64_t k = 0; k < s.n_meta; k++) FUZZ_CHECK(vkm_st_meta_get(&s, s.meta[k].key) != NULL);
    vkm_st_close(&s);
    return 0;
}
