/*
 * tokenizer.h — the loader's tokenizer entry points for the engine (the public functions are
 * in vkmoe.h): building a tokenizer from a GGUF file that is already open.
 */
#ifndef VKM_TOKENIZER_H
#define VKM_TOKENIZER_H

#include "loader.h"
#include "writer.h"

/* Builds the tokenizer described by the tokenizer.ggml.* keys of an open GGUF file (the
 * strings are copied: g may be closed afterwards). VKM_ERR_NOT_FOUND when the file has no
 * tokenizer, VKM_ERR_FORMAT for inconsistent keys, VKM_ERR_UNSUPPORTED for a tokenizer model
 * or pre-tokenizer vkmoe does not implement. On failure *out is NULL and e says why. */
vkm_status vkm_tok_from_gguf(const vkm_gguf *g, vkm_tokenizer **out, vkm_err *e);

/* Writes t as tokenizer.ggml.* keys ("llama" for SentencePiece-style merging by score, "gpt2"
 * for byte-level BPE), padded to n_rows tokens (a model's embedding rows; 0: t's size) with
 * unused "[PADk]" tokens as convert_hf_to_gguf.py pads them, after checking that vkmoe's GGUF reader gets t back exactly (the same
 * pieces, merges in the same order, normalizer, pre-tokenizer, special tokens). Where llama.cpp
 * reads keys otherwise, the file encodes there as llama.cpp's own conversions do: it ignores
 * remove_extra_whitespaces for "llama", and does not fold U+017F after an apostrophe as
 * tokenizer.json's case-insensitive contractions do. VKM_ERR_UNSUPPORTED, with nothing
 * written, when GGUF cannot hold t (a BPE that is not byte-level, HF stripping rules, a
 * pre-tokenizer no tokenizer.ggml.pre names, more tokens than n_rows). */
vkm_status vkm_tok_to_gguf(const vkm_tokenizer *t, uint32_t n_rows, vkm_gguf_writer *w, vkm_err *e);

#endif /* VKM_TOKENIZER_H */
