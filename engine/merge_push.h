/*
 * merge_push.h — host mirrors of the merge kernels' push-constant blocks
 * (shaders/common/merge_push.glsl: same member order, 4-byte members). Sizes are checked here
 * against the 128-byte portable minimum, and by tests/test_device.c against each kernel's
 * reflection.
 */
#ifndef VKM_MERGE_PUSH_H
#define VKM_MERGE_PUSH_H

#include <stdint.h>

#define VKM_MERGE_MAX_IN 16 /* inputs a merge kernel reads (models and base)                */

typedef struct vkm_push_merge {
    uint32_t off[VKM_MERGE_MAX_IN], n, elem0; /* arrays first: see merge_push.glsl */
} vkm_push_merge;

typedef struct vkm_push_reduce {
    uint32_t off[VKM_MERGE_MAX_IN], n, part_off;
} vkm_push_reduce;

typedef struct vkm_push_select {
    uint32_t off[VKM_MERGE_MAX_IN], n, elem0, pass, n_slots, slot0, cap;
} vkm_push_select;

typedef struct vkm_push_lora_merge {
    uint32_t rows, cols, row0, w_stride, scale_off, n_terms, units;
} vkm_push_lora_merge;

_Static_assert(sizeof(vkm_push_merge) <= 128, "push constants over 128 bytes");
_Static_assert(sizeof(vkm_push_reduce) <= 128, "push constants over 128 bytes");
_Static_assert(sizeof(vkm_push_select) <= 128, "push constants over 128 bytes");
_Static_assert(sizeof(vkm_push_lora_merge) <= 128, "push constants over 128 bytes");

#endif
