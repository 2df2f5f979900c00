/*
 * adapter_int.h — internal to the adapter readers (adapter.c, peft.c): one half of a LoRA pair
 * as found in a file, and the pairing that both formats share.
 */
#ifndef VKM_ADAPTER_INT_H
#define VKM_ADAPTER_INT_H

#include "loader.h"

typedef struct vkm_lora_half {
    uint32_t layer;
    vkm_module module;
    bool is_b;
    const vkm_tensor_src *t;
} vkm_lora_half;

/* The rank the format expects for pair p (0: take the tensors' rank) and its alpha. */
typedef vkm_status (*vkm_lora_params_fn)(void *ctx, const vkm_lora_pair *p, uint32_t *rank,
                                         float *alpha, vkm_err *e);

/* Sorts the n halves, pairs them (A with B of the same layer and module) into a->pairs and
 * checks shapes, ranks and dtypes; file names the file in messages. */
vkm_status vkm_lora_build(vkm_adapter_src *a, const char *file, vkm_lora_half *h, uint32_t n,
                          vkm_lora_params_fn params, void *ctx, vkm_err *e);

/* PEFT: reads the config text and the tensors of a->st (already open) into a. */
vkm_status vkm_peft_load(vkm_adapter_src *a, const char *config, size_t len,
                         const char *config_path, vkm_err *e);

#endif /* VKM_ADAPTER_INT_H */
