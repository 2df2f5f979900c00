/*
 * push.h — host mirrors of the push-constant blocks in shaders/common/push.glsl (same member
 * order, 4-byte members). Sizes are checked here against the 128-byte portable minimum, and at
 * run time against the size reflected from each kernel's SPIR-V (record.c refuses a mismatch).
 */
#ifndef VKM_PUSH_H
#define VKM_PUSH_H

#include <stdint.h>

typedef struct vkm_push_copy {
    uint32_t n;
} vkm_push_copy;

typedef struct vkm_push_matvec {
    uint32_t rows, cols, row0, w_stride, x_stride, y_stride, accumulate, scale_off, x_off, y_off;
} vkm_push_matvec;

typedef struct vkm_push_norm {
    uint32_t n, rows, x_stride, y_stride;
    float eps;
    uint32_t x_off, y_off;
} vkm_push_norm;

typedef struct vkm_push_softmax {
    uint32_t n, rows, stride;
    float scale;
} vkm_push_softmax;

typedef struct vkm_push_eltwise {
    uint32_t n, a_off, b_off, y_off;
} vkm_push_eltwise;

_Static_assert(sizeof(vkm_push_copy) <= 128, "push constants over 128 bytes");
_Static_assert(sizeof(vkm_push_matvec) <= 128, "push constants over 128 bytes");
_Static_assert(sizeof(vkm_push_norm) <= 128, "push constants over 128 bytes");
_Static_assert(sizeof(vkm_push_softmax) <= 128, "push constants over 128 bytes");
_Static_assert(sizeof(vkm_push_eltwise) <= 128, "push constants over 128 bytes");

#endif
