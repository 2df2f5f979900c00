/*
 * merge_out.h — the output files of a merge (merge_out.c): the tensor file through the GGUF or
 * safetensors streaming writer, and the files beside it.
 */
#ifndef VKM_MERGE_OUT_H
#define VKM_MERGE_OUT_H

#include "loader.h"
#include "writer.h"

typedef enum vkm_mout_kind {
    VKM_MOUT_GGUF = 0,        /* x.gguf: a model, or a GGUF LoRA for adapters                    */
    VKM_MOUT_ST,              /* x.safetensors, or folder/model.safetensors                      */
    VKM_MOUT_PEFT,            /* folder/adapter_model.safetensors + adapter_config.json          */
} vkm_mout_kind;

typedef struct vkm_mout {
    vkm_mout_kind kind;
    bool folder;              /* the output path is a folder                                     */
    bool made_dir;            /* ... which this output created (removed again if left empty)     */
    char file[1100];          /* the tensor file                                                 */
    char dir[1024];           /* the folder it is in                                             */
    vkm_gguf_writer *g;
    vkm_st_writer *st;
    vkm_err *e;
    uint64_t written;         /* tensor bytes so far                                             */
    char *config;             /* config.json to write beside a safetensors model, or NULL        */
    size_t config_len;
    char src_dir[1024];       /* a Hugging Face input's folder: tokenizer files come from there  */
} vkm_mout;

/* Picks the kind from the path (adapter: the output is a LoRA adapter), creates a folder output's
 * folder, and creates the writer (nothing is written until vkm_mout_begin). */
vkm_status vkm_mout_open(vkm_mout *o, const char *path, bool adapter, vkm_err *e);
void vkm_mout_free(vkm_mout *o); /* removes the temporary file of an unfinished output */
/* True when the output file exists and is input_file (same device and inode). */
bool vkm_mout_is(const vkm_mout *o, const char *input_file);
/* VKM_ERR_INVALID_ARGUMENT naming both when the output is the input file (what: the operation,
 * for the message): an input is never overwritten. */
vkm_status vkm_mout_refuse_file(const vkm_mout *o, const char *input_file, const char *what);
/* The same for every file of a model (each shard) or of an adapter. */
vkm_status vkm_mout_refuse_model(const vkm_mout *o, const vkm_model_src *m, const char *what);
vkm_status vkm_mout_refuse_adapter(const vkm_mout *o, const vkm_adapter_src *a, const char *what);
/* A string metadata entry (GGUF key or safetensors __metadata__). */
vkm_status vkm_mout_meta(vkm_mout *o, const char *key, const char *value);
vkm_status vkm_mout_add(vkm_mout *o, const char *name, vkm_dtype dt, int n_dims, const int64_t *ne);
vkm_status vkm_mout_begin(vkm_mout *o);
vkm_status vkm_mout_write(vkm_mout *o, const void *data, uint64_t n);
vkm_status vkm_mout_finish(vkm_mout *o);
/* A file `name` beside the tensors: check (before the merge) that writing it replaces nothing
 * different; write it (after) unless an identical one is there (only_if_absent: unless any is). */
vkm_status vkm_mout_side_check(const vkm_mout *o, const char *name, const void *data, size_t n);
vkm_status vkm_mout_side_write(const vkm_mout *o, const char *name, const void *data, size_t n,
                               bool only_if_absent);
/* Copies src_dir/name beside the tensors when it exists there and nothing is in the way. */
vkm_status vkm_mout_copy_beside(const vkm_mout *o, const char *src_dir, const char *name);

/* Model outputs. The metadata: GGUF copies every key of the reference input if it is GGUF, else
 * of the first GGUF input (tokenizer included; general.file_type dropped), else writes the
 * hyperparameters' keys; safetensors gets format=pt; both get vkmoe.merge.method / .parameters. */
vkm_status vkm_mout_model_meta(vkm_mout *o, const vkm_model_src *const *in, uint32_t n, uint32_t ref,
                               const char *method, const char *params);
/* Safetensors outputs: prepares config.json (the first Hugging Face input's, the reference first,
 * else one from the hyperparameters) and checks it replaces nothing different. */
vkm_status vkm_mout_hf_config(vkm_mout *o, const vkm_model_src *const *in, uint32_t n, uint32_t ref);
/* Finishes the tensor file, then writes config.json and copies the tokenizer files of the
 * Hugging Face input beside it (those not already there). */
vkm_status vkm_mout_finish_model(vkm_mout *o);

#endif
