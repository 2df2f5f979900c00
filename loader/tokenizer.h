/*
 * tokenizer.h — the loader's tokenizer entry points for the engine (the public functions are
 * in vkmoe.h): building a tokenizer from a GGUF file that is already open.
 */
#ifndef VKM_TOKENIZER_H
#define VKM_TOKENIZER_H

#include "loader.h"

/* Builds the tokenizer described by the tokenizer.ggml.* keys of an open GGUF file (the
 * strings are copied: g may be closed afterwards). VKM_ERR_NOT_FOUND when the file has no
 * tokenizer, VKM_ERR_FORMAT for inconsistent keys, VKM_ERR_UNSUPPORTED for a tokenizer model
 * or pre-tokenizer vkmoe does not implement. On failure *out is NULL and e says why. */
vkm_status vkm_tok_from_gguf(const vkm_gguf *g, vkm_tokenizer **out, vkm_err *e);

#endif /* VKM_TOKENIZER_H */
