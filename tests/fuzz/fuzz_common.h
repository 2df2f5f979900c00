/*
 * fuzz_common.h — what the loader fuzz targets share: an abort-on-violation check (so libFuzzer
 * reports a broken invariant like a crash), the shared data folder, and a bounded read of every
 * tensor of an opened file.
 */
#ifndef VKM_FUZZ_COMMON_H
#define VKM_FUZZ_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loader.h"

#ifndef VKM_SHARED_DIR
#define VKM_SHARED_DIR "../shared"
#endif

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static inline const char *fuzz_shared_dir(void)
{
    const char *d = getenv("VKM_SHARED_DIR");
    return d && d[0] ? d : VKM_SHARED_DIR;
}

/* Checks a tensor lies inside [base, base + size) and converts its first elements to f32. */
static inline void fuzz_touch_tensor(const vkm_tensor_src *t, const uint8_t *base, uint64_t size)
{
    FUZZ_CHECK(t->name[0] && memchr(t->name, 0, sizeof t->name));
    FUZZ_CHECK(t->offset <= size && t->nbytes <= size - t->offset);
    FUZZ_CHECK(t->data == base + t->offset || t->nbytes == 0);
    uint64_t n = (uint64_t)vkm_tensor_nelem(t), bytes;
    FUZZ_CHECK(vkm_dtype_bytes(t->dtype, n, &bytes) && bytes == t->nbytes);
    const vkm_dtype_traits *tr = vkm_dtype_info(t->dtype);
    uint64_t k = n < 512 ? n : 512;
    k -= k % tr->block;
    static float buf[512];
    if (k && (t->dtype < VKM_I8 || t->dtype > VKM_I64)) FUZZ_CHECK(vkm_to_f32(t->dtype, t->data, k, buf) == VKM_OK);
    else if (k && tr->block_bytes) {
        volatile uint8_t sink = 0;
        for (uint64_t i = 0; i < k * tr->block_bytes && i < t->nbytes; i++) sink ^= t->data[i];
        (void)sink;
    }
}

#endif
