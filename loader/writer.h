/*
 * writer.h — streaming writers for GGUF v3 and safetensors files (vkmoe merge, test fixtures).
 *
 * Both work the same way, so a model larger than memory can be written: describe everything
 * first (metadata, then every tensor's name, dtype and shape), call *_begin (the header goes to
 * "<path>.tmp"), then append the data of the tensors in the order they were added, whole
 * (*_write_tensor) or in pieces of any size (*_write), and *_finish renames "<path>.tmp" to
 * path. Nothing appears at path unless every byte was written.
 *
 * Errors are sticky: each call returns the first failure so far (and fills the vkm_err given to
 * *_create, which must outlive the writer), so calls may be chained and checked once at the end.
 * *_free accepts NULL and removes the temporary file of a writer that did not finish.
 * Shapes are given in GGUF order (ne[0] fastest-varying), like vkm_tensor_src; the safetensors
 * writer reverses them into the file's outermost-first shape.
 */
#ifndef VKM_WRITER_H
#define VKM_WRITER_H

#include "loader.h"

/* ---- GGUF v3 ------------------------------------------------------------------------------ */
typedef struct vkm_gguf_writer vkm_gguf_writer;

vkm_status vkm_gguf_writer_create(const char *path, vkm_gguf_writer **out, vkm_err *e);
void vkm_gguf_writer_free(vkm_gguf_writer *w);

/* Metadata, in the order given. Keys must be unique, non-empty valid UTF-8 shorter than
 * VKM_MAX_NAME. A u32 "general.alignment" (a power of two) sets the data alignment (default 32). */
vkm_status vkm_gguf_writer_set_u8(vkm_gguf_writer *w, const char *key, uint8_t v);
vkm_status vkm_gguf_writer_set_i8(vkm_gguf_writer *w, const char *key, int8_t v);
vkm_status vkm_gguf_writer_set_u16(vkm_gguf_writer *w, const char *key, uint16_t v);
vkm_status vkm_gguf_writer_set_i16(vkm_gguf_writer *w, const char *key, int16_t v);
vkm_status vkm_gguf_writer_set_u32(vkm_gguf_writer *w, const char *key, uint32_t v);
vkm_status vkm_gguf_writer_set_i32(vkm_gguf_writer *w, const char *key, int32_t v);
vkm_status vkm_gguf_writer_set_u64(vkm_gguf_writer *w, const char *key, uint64_t v);
vkm_status vkm_gguf_writer_set_i64(vkm_gguf_writer *w, const char *key, int64_t v);
vkm_status vkm_gguf_writer_set_f32(vkm_gguf_writer *w, const char *key, float v);
vkm_status vkm_gguf_writer_set_f64(vkm_gguf_writer *w, const char *key, double v);
vkm_status vkm_gguf_writer_set_bool(vkm_gguf_writer *w, const char *key, bool v);
vkm_status vkm_gguf_writer_set_str(vkm_gguf_writer *w, const char *key, const char *v);
/* An array of n scalars of elem_type (not string or array), packed in host order at data. */
vkm_status vkm_gguf_writer_set_arr(vkm_gguf_writer *w, const char *key, vkm_gguf_type elem_type,
                                   uint64_t n, const void *data);
vkm_status vkm_gguf_writer_set_arr_str(vkm_gguf_writer *w, const char *key, uint64_t n,
                                       const char *const *strs);
/* A GGUF image of the metadata set so far and no tensors, in *data (malloc'd: free it), for
 * vkm_gguf_open_mem to read back. */
vkm_status vkm_gguf_writer_meta_image(const vkm_gguf_writer *w, uint8_t **data, uint64_t *size);
/* Copies a key and its value (nested arrays included) read by vkm_gguf_open. */
vkm_status vkm_gguf_writer_copy_kv(vkm_gguf_writer *w, const vkm_gguf_kv *kv);

/* A tensor of any dtype vkm_gguf_ggml_type knows; ne0 must be a whole number of blocks. */
vkm_status vkm_gguf_writer_add_tensor(vkm_gguf_writer *w, const char *name, vkm_dtype dtype,
                                      int n_dims, const int64_t *ne);
vkm_status vkm_gguf_writer_begin(vkm_gguf_writer *w);
vkm_status vkm_gguf_writer_write(vkm_gguf_writer *w, const void *data, uint64_t n);
/* The whole data of the next tensor, which must be `name` (nbytes must match). */
vkm_status vkm_gguf_writer_write_tensor(vkm_gguf_writer *w, const char *name, const void *data,
                                        uint64_t nbytes);
vkm_status vkm_gguf_writer_finish(vkm_gguf_writer *w);

/* ---- safetensors -------------------------------------------------------------------------- */
typedef struct vkm_st_writer vkm_st_writer;

vkm_status vkm_st_writer_create(const char *path, vkm_st_writer **out, vkm_err *e);
void vkm_st_writer_free(vkm_st_writer *w);
/* A "__metadata__" entry (string to string; keys unique). */
vkm_status vkm_st_writer_set_meta(vkm_st_writer *w, const char *key, const char *value);
/* F32, F16, BF16 (and the plain I8, I16, I32, I64, F64); shape in GGUF order (see above). */
vkm_status vkm_st_writer_add_tensor(vkm_st_writer *w, const char *name, vkm_dtype dtype,
                                    int n_dims, const int64_t *ne);
vkm_status vkm_st_writer_begin(vkm_st_writer *w);
vkm_status vkm_st_writer_write(vkm_st_writer *w, const void *data, uint64_t n);
vkm_status vkm_st_writer_write_tensor(vkm_st_writer *w, const char *name, const void *data,
                                      uint64_t nbytes);
vkm_status vkm_st_writer_finish(vkm_st_writer *w);

#endif /* VKM_WRITER_H */
