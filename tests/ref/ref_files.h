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
/* The same as another GGUF architecture's keys (qwen2: zero q/k/v biases added; its rows as the
 * model holds them, which llama.cpp reads as rotate_half pairs: m->rope_half). */
vkm_status ref_write_gguf_arch(const ref_model *m, const char *path, vkm_dtype dtype, const char *arch, vkm_err *e);
vkm_status ref_write_hf(const ref_model *m, const char *dir, vkm_err *e);
/* A model file (any format the engine loads) as a reference model of f32 weights in the file's
 * own RoPE layout (rope_half set for Hugging Face files). Free with ref_model_free. */
vkm_status ref_model_load(ref_model *m, const char *path, vkm_err *e);

#include "ref_moe.h"

/* Expert e of a bank as a PEFT folder (adapter_config.json + adapter_model.safetensors) or a
 * llama.cpp GGUF LoRA. The bank's B rows are in the base's RoPE layout (base_half: the base is a
 * Hugging Face model); q/k B rows are written in the file's own layout (PEFT: rotate_half,
 * GGUF: interleaved), as real files are. lora_alpha = scale * r (rslora: scale * sqrt(r)). */
vkm_status ref_write_peft(const ref_model *m, const ref_bank *b, uint32_t e, const char *dir,
                          bool base_half, bool rslora, vkm_err *err);
vkm_status ref_write_gguf_lora(const ref_model *m, const ref_bank *b, uint32_t e, const char *path,
                               bool base_half, vkm_err *err);

#endif
