/*
 * ref_files.h — writes a reference model (ref_forward.h) as the files the engine loads: a GGUF
 * (llama architecture, interleaved RoPE) or a Hugging Face folder (config.json +
 * model.safetensors, rotate_half RoPE). The weights are written as they are: the caller runs
 * the reference with the matching RoPE layout.
 */
#ifndef VKM_REF_FILES_H
#define VKM_REF_FILES_H

#include "base.h"
#include "ref_forward.h"

/* dtype: VKM_F32 or VKM_F16 for the matrices (norms stay F32). */
vkm_status ref_write_gguf(const ref_model *m, const char *path, vkm_dtype dtype, vkm_err *e);
vkm_status ref_write_hf(const ref_model *m, const char *dir, vkm_err *e);

#endif
