/*
 * loader.h — files -> host descriptions. GGUF, safetensors (single and sharded) with config.json,
 * PEFT and GGUF LoRA adapters, the MoErge manifest. No Vulkan here: the engine turns these
 * descriptions into device state. Every count, length, offset and shape read from a file is
 * checked against the file size and sane limits before it is used.
 *
 * Ownership: a vkm_gguf / vkm_st / vkm_model_src / vkm_adapter_src owns its memory map (the
 * *_open_mem variants borrow the caller's bytes); the tensor data pointers it hands out stay
 * valid until it is closed. Close functions accept a zeroed or already closed struct. Once
 * opened, these are read-only: several threads may read one at the same time.
 * Errors: every function returns a vkm_status and fills the vkm_err it is given with a message
 * naming the file and the key or tensor; nothing here exits, aborts or prints.
 * Elsewhere: writer.h (GGUF and safetensors writers), file.c (the public vkm_file_* API),
 * tokenizer.h (tokenizers).
 */
#ifndef VKM_LOADER_H
#define VKM_LOADER_H

#include "base.h"

/* Sane limits for anything a header claims (beyond them a file is refused as malformed). */
#define VKM_MAX_DIMS 4
#define VKM_MAX_NAME 256             /* tensor / key name bytes                               */
#define VKM_MAX_TENSORS (1u << 20)
#define VKM_MAX_KV (1u << 20)
#define VKM_MAX_STRING (1u << 26)    /* 64 MiB for one string                                 */
#define VKM_MAX_JSON_HEADER (100u << 20)

/* ------------------------------------------------------------------------------------------ */
/* A tensor somewhere in a mapped file                                                         */
/* ------------------------------------------------------------------------------------------ */
typedef struct vkm_tensor_src {
    char name[VKM_MAX_NAME];  /* the name as stored in the file                               */
    vkm_dtype dtype;
    int n_dims;
    int64_t ne[VKM_MAX_DIMS]; /* GGUF order: ne[0] fastest-varying (= columns of a matrix);
                                 safetensors shapes are reversed into this order              */
    const uint8_t *data;      /* into the memory map                                          */
    uint64_t nbytes;
    uint64_t offset;          /* byte offset inside its file                                  */
} vkm_tensor_src;

static inline int64_t vkm_tensor_nelem(const vkm_tensor_src *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->n_dims; i++) n *= t->ne[i];
    return n;
}

/* Helpers every reader shares (tensors.c). */
/* Builds *by_name: n pointers into t sorted by name, for vkm_tensors_find. VKM_ERR_FORMAT naming
 * the first duplicate name; VKM_ERR_OUT_OF_HOST_MEMORY. */
vkm_status vkm_tensors_index(const char *path, const vkm_tensor_src *t, uint64_t n,
                             const vkm_tensor_src ***by_name, vkm_err *e);
const vkm_tensor_src *vkm_tensors_find(const vkm_tensor_src *const *by_name, uint64_t n,
                                       const char *name);
/* VKM_ERR_FORMAT naming both tensors when the data ranges of two tensors overlap. */
vkm_status vkm_tensors_check_overlap(const char *path, const vkm_tensor_src *t, uint64_t n,
                                     vkm_err *e);
/* "[128, 64]" (n values of ne) into buf. */
const char *vkm_shape_str(const int64_t *ne, int n, char *buf, size_t cap);

/* ------------------------------------------------------------------------------------------ */
/* GGUF (v2, v3)                                                                               */
/* ------------------------------------------------------------------------------------------ */
typedef enum vkm_gguf_type {
    VKM_GGUF_U8 = 0, VKM_GGUF_I8 = 1, VKM_GGUF_U16 = 2, VKM_GGUF_I16 = 3, VKM_GGUF_U32 = 4,
    VKM_GGUF_I32 = 5, VKM_GGUF_F32 = 6, VKM_GGUF_BOOL = 7, VKM_GGUF_STRING = 8,
    VKM_GGUF_ARRAY = 9, VKM_GGUF_U64 = 10, VKM_GGUF_I64 = 11, VKM_GGUF_F64 = 12,
} vkm_gguf_type;

/* A string inside the map (not NUL-terminated). */
typedef struct vkm_gguf_str {
    const char *p;
    uint64_t n;
} vkm_gguf_str;

/* An array value: elements of elem_type. For strings, strs[] points into the map; for nested
 * arrays, arrs[]; for scalars, data points at n packed little-endian elements in the map. */
typedef struct vkm_gguf_arr {
    vkm_gguf_type elem_type;
    uint64_t n;
    const uint8_t *data;
    vkm_gguf_str *strs;
    struct vkm_gguf_arr *arrs;
} vkm_gguf_arr;

typedef struct vkm_gguf_kv {
    char key[VKM_MAX_NAME];
    vkm_gguf_type type;
    union {
        uint64_t u;   /* any unsigned scalar, bool                                         */
        int64_t i;    /* any signed scalar                                                 */
        double f;     /* F32, F64                                                          */
        vkm_gguf_str s;
        vkm_gguf_arr a;
    } v;
} vkm_gguf_kv;

#define VKM_GGUF_MAX_DEPTH 8    /* arrays of arrays nest at most this deep                   */

typedef struct vkm_gguf {
    char path[1024];          /* for messages (the name given to vkm_gguf_open_mem)          */
    vkm_map map;
    bool own_map;             /* false for vkm_gguf_open_mem: the caller owns the bytes      */
    uint32_t version;
    uint64_t n_kv;
    vkm_gguf_kv *kv;          /* in file order                                               */
    uint64_t n_tensors;
    vkm_tensor_src *tensors;  /* in file order; offset is absolute inside the file           */
    uint32_t alignment;      /* general.alignment or 32                                     */
    uint64_t data_offset;    /* start of the tensor data section                            */
    /* internal: lookup indices sorted by key / by name */
    const vkm_gguf_kv **kv_by_key;
    const vkm_tensor_src **tensor_by_name;
} vkm_gguf;

/* Opens and checks a GGUF file: header, every key and value, every tensor info; the data of
 * every tensor lies inside the file, aligned, and no two tensors overlap; keys and tensor names
 * are valid UTF-8 and unique. VKM_ERR_IO (cannot open), VKM_ERR_FORMAT (malformed),
 * VKM_ERR_UNSUPPORTED (GGUF v1, big-endian, a ggml type other than F32 F16 BF16 Q8_0 Q4_0 Q4_K
 * Q6_K I8 I16 I32 I64 F64), VKM_ERR_OUT_OF_HOST_MEMORY. On failure g is left closed. */
vkm_status vkm_gguf_open(const char *path, vkm_gguf *g, vkm_err *e);
/* The same over bytes in memory (kept by the caller until vkm_gguf_close); name is for messages. */
vkm_status vkm_gguf_open_mem(const void *data, uint64_t size, const char *name, vkm_gguf *g,
                             vkm_err *e);
void vkm_gguf_close(vkm_gguf *g); /* accepts a zeroed or already closed g */
const vkm_gguf_kv *vkm_gguf_find(const vkm_gguf *g, const char *key);
/* Typed getters: false if the key is absent or its type does not convert exactly
 * (any integer type to u32/i64 when in range; F32/F64 to f32/f64). */
bool vkm_gguf_get_u32(const vkm_gguf *g, const char *key, uint32_t *out);
bool vkm_gguf_get_i64(const vkm_gguf *g, const char *key, int64_t *out);
bool vkm_gguf_get_f32(const vkm_gguf *g, const char *key, float *out);
bool vkm_gguf_get_bool(const vkm_gguf *g, const char *key, bool *out);
/* Copies a string value, NUL-terminated, into out (false if absent, not a string, or too long). */
bool vkm_gguf_get_str(const vkm_gguf *g, const char *key, char *out, size_t cap);
const vkm_gguf_arr *vkm_gguf_get_arr(const vkm_gguf *g, const char *key);
const vkm_tensor_src *vkm_gguf_tensor(const vkm_gguf *g, const char *name);
/* Element i of an array of integers (any width, bool included) / of F32 or F64; false when i
 * is out of range, the element type does not convert, or a value is out of range. */
bool vkm_gguf_arr_i64(const vkm_gguf_arr *a, uint64_t i, int64_t *out);
bool vkm_gguf_arr_f64(const vkm_gguf_arr *a, uint64_t i, double *out);
/* "u8", "string", "array", ... ("?" for an invalid value); bytes of one scalar (0 otherwise). */
const char *vkm_gguf_type_name(vkm_gguf_type t);
uint32_t vkm_gguf_type_size(vkm_gguf_type t);
/* ggml tensor type ids <-> vkm_dtype (F32=0 F16=1 Q4_0=2 Q8_0=8 Q4_K=12 Q6_K=14 I8=24 I16=25
 * I32=26 I64=27 F64=28 BF16=30). The name of any ggml type id ("Q5_K"), NULL if unknown. */
uint32_t vkm_gguf_ggml_type(vkm_dtype t);
bool vkm_gguf_dtype(uint32_t ggml_type, vkm_dtype *out);
const char *vkm_gguf_ggml_type_name(uint32_t ggml_type);

/* ------------------------------------------------------------------------------------------ */
/* safetensors (one file, or a sharded set through model.safetensors.index.json)               */
/* ------------------------------------------------------------------------------------------ */
typedef struct vkm_st_meta {
    char *key, *value;
} vkm_st_meta;

typedef struct vkm_st {
    char path[1024];
    vkm_map map;
    bool own_map;             /* false for vkm_st_open_mem                                  */
    uint64_t header_len;      /* the JSON header's bytes; data starts at 8 + header_len      */
    uint64_t n_tensors;
    vkm_tensor_src *tensors;  /* in header order; offset is absolute inside the file         */
    uint64_t n_meta;          /* the "__metadata__" string pairs                           */
    vkm_st_meta *meta;
    const vkm_tensor_src **tensor_by_name; /* internal: sorted for lookups                 */
} vkm_st;

/* Opens and checks one safetensors file: the 8-byte little-endian header length, the JSON
 * header (strict: known keys only, no duplicates), every dtype, shape and data_offsets (inside
 * the file, size == elements x dtype size, no two tensors overlapping), "__metadata__" (strings).
 * VKM_ERR_IO, VKM_ERR_FORMAT, VKM_ERR_UNSUPPORTED (a dtype other than F32 F16 BF16 I8 I16 I32
 * I64 F64), VKM_ERR_OUT_OF_HOST_MEMORY. On failure s is left closed. */
vkm_status vkm_st_open(const char *path, vkm_st *s, vkm_err *e);
vkm_status vkm_st_open_mem(const void *data, uint64_t size, const char *name, vkm_st *s,
                           vkm_err *e);
void vkm_st_close(vkm_st *s);
const vkm_tensor_src *vkm_st_tensor(const vkm_st *s, const char *name);
const char *vkm_st_meta_get(const vkm_st *s, const char *key); /* NULL if absent */
/* safetensors dtype names: "F32", "BF16", ... (NULL for block types); false if not supported. */
const char *vkm_st_dtype_name(vkm_dtype t);
bool vkm_st_dtype_parse(const char *name, vkm_dtype *out);

/* A set of safetensors shards; a single file is a set of one. */
typedef struct vkm_st_set {
    char path[1024];          /* the file, or the index.json                                */
    bool sharded;             /* opened through an index                                     */
    uint32_t n_files;
    vkm_st *files;
} vkm_st_set;

/* path: a .safetensors file, a model.safetensors.index.json, or a folder holding either
 * (the index wins). With an index, every "weight_map" entry must be in the shard it names
 * (plain file names beside the index), and no tensor may be in two shards or in none. */
vkm_status vkm_st_set_open(const char *path, vkm_st_set *s, vkm_err *e);
void vkm_st_set_close(vkm_st_set *s);
const vkm_tensor_src *vkm_st_set_tensor(const vkm_st_set *s, const char *name);

/* ------------------------------------------------------------------------------------------ */
/* A base (or full fine-tuned) model: hyperparameters + tensors by internal (GGUF) name        */
/* ------------------------------------------------------------------------------------------ */
typedef enum vkm_rope_layout {
    VKM_ROPE_INTERLEAVED = 0, /* GGUF llama: pairs (2i, 2i+1) inside each head               */
    VKM_ROPE_HALF = 1,        /* Hugging Face rotate_half: pairs (i, i + head_dim/2)          */
} vkm_rope_layout;

typedef enum vkm_src_format {
    VKM_SRC_GGUF = 0,
    VKM_SRC_SAFETENSORS = 1,
} vkm_src_format;

typedef struct vkm_hparams {
    char arch[32];            /* "llama", "mistral", "qwen2"                                 */
    uint32_t n_vocab, dim, n_layers, n_heads, n_kv_heads, head_dim, ffn_dim, ctx_len;
    float rope_theta, norm_eps;
    bool tied_embeddings;     /* no separate output.weight: the LM head is token_embd        */
    uint32_t n_experts, n_experts_used; /* Mixtral-style MoE; 0 for dense                    */
    /* moetify checkpoints (MoeLlamaForCausalLM): q, k, v mixtures too (bits 0, 1, 2), gate /
     * up / down routed one by one (moe_mlp_fg), expert 0 always on (its router has one row
     * fewer), gate-less (equal weights, no router) */
    uint32_t moe_attn;
    bool moe_fine, moe_always_on, moe_gateless;
    int32_t bos, eos;         /* -1 when unknown                                             */
    vkm_rope_layout rope_layout;
    bool qkv_bias;            /* q/k/v projections carry biases (qwen2): blk.N.attn_q.bias ...*/
} vkm_hparams;

/* Sane limits for hyperparameters (beyond them a model is refused as malformed). */
#define VKM_MAX_LAYERS 4096u
#define VKM_MAX_DIM (1u << 20)
#define VKM_MAX_HEADS 4096u
#define VKM_MAX_HEAD_DIM 4096u
#define VKM_MAX_FFN (1u << 22)
#define VKM_MAX_VOCAB (1u << 24)
#define VKM_MAX_CTX (1u << 26)
#define VKM_MAX_MOE_EXPERTS 256u

/* One tensor of the model under its internal name. */
typedef struct vkm_model_tensor {
    char name[VKM_MAX_NAME];  /* internal name, e.g. "blk.3.attn_q.weight"                   */
    const vkm_tensor_src *src;/* ne in GGUF order: a weight W[out][in] has ne = {in, out}    */
} vkm_model_tensor;

typedef struct vkm_model_src {
    char path[1024];
    vkm_src_format format;
    vkm_hparams hp;
    vkm_gguf gguf;            /* when format == VKM_SRC_GGUF                                 */
    vkm_st_set st;            /* when format == VKM_SRC_SAFETENSORS                          */
    uint32_t n_tensors;
    vkm_model_tensor *tensors;/* sorted by internal name                                      */
} vkm_model_src;

/* path: a .gguf file; a .safetensors file (config.json beside it); an index.json; or a folder
 * with config.json and model.safetensors[.index.json] (or a single model.gguf). Hugging Face
 * names are mapped to the internal names; the shapes of every expected tensor are checked
 * against the hyperparameters, with a message naming the tensor, the expected and the found
 * shape. GGUF: architectures llama, mistral, qwen2 (<arch>.* keys). Hugging Face:
 * LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, MixtralForCausalLM. A GGUF file keeps
 * tensors it does not know under their own names; a Hugging Face tensor it does not know is an
 * error (VKM_ERR_UNSUPPORTED). VKM_ERR_IO, VKM_ERR_FORMAT, VKM_ERR_UNSUPPORTED,
 * VKM_ERR_NOT_FOUND (no model in a folder). On failure m is left closed. */
vkm_status vkm_model_src_open(const char *path, vkm_model_src *m, vkm_err *e);
/* The same for a GGUF file in memory (fuzzing); name is for messages. */
vkm_status vkm_model_src_open_gguf_mem(const void *data, uint64_t size, const char *name,
                                       vkm_model_src *m, vkm_err *e);
void vkm_model_src_close(vkm_model_src *m); /* accepts a zeroed or closed m */
const vkm_tensor_src *vkm_model_src_tensor(const vkm_model_src *m, const char *internal_name);
/* The map of the file holding the byte at p (a tensor's data), or NULL. */
const vkm_map *vkm_model_src_map(const vkm_model_src *m, const void *p);
/* Maps a Hugging Face tensor name to the internal name and back; false if it is not a known one.
 * model.embed_tokens.weight <-> token_embd.weight, model.norm.weight <-> output_norm.weight,
 * lm_head.weight <-> output.weight, model.layers.N.{input_layernorm, post_attention_layernorm,
 * self_attn.{q,k,v,o}_proj, mlp.{gate,up,down}_proj}.weight <-> blk.N.{attn_norm, ffn_norm,
 * attn_{q,k,v,output}, ffn_{gate,up,down}}.weight, self_attn.{q,k,v}_proj.bias <->
 * attn_{q,k,v}.bias, block_sparse_moe.gate.weight <-> ffn_gate_inp.weight and
 * block_sparse_moe.experts.E.{w1,w3,w2}.weight <-> ffn_{gate,up,down}.E.weight. */
bool vkm_hf_to_internal(const char *hf, char *out, size_t cap);
bool vkm_internal_to_hf(const char *internal, char *out, size_t cap);
/* Parses a Hugging Face config.json text (path for messages) into hp (rope_layout HALF,
 * tied_embeddings = tie_word_embeddings) and checks it (vkm_hparams_check). */
vkm_status vkm_hf_config_parse(const char *json, size_t len, const char *path, vkm_hparams *hp,
                               vkm_err *e);
/* Every hyperparameter within the limits above and consistent (heads divisible by kv heads,
 * head_dim even, experts used <= experts). VKM_ERR_FORMAT naming the value. */
vkm_status vkm_hparams_check(const vkm_hparams *hp, const char *path, vkm_err *e);

/* The row of a q/k weight in `to` layout that holds row `row` of the `from` layout, inside one
 * head of head_dim rows (the permutation convert_hf_to_gguf.py applies: HF row s*hd/2 + j is
 * GGUF row 2j + s). row may also index a whole matrix of heads (head * head_dim + r): the head
 * is kept. head_dim must be even (an odd one maps every row to itself). */
/* The q/k row layout of a GGUF file of architecture arch, as llama.cpp stores and reads it:
 * llama and mistral interleaved (convert_hf_to_gguf.py permutes their rows; RoPE "norm"), qwen2
 * as in Hugging Face files (rows not permuted; RoPE "neox", rotate_half pairs). */
vkm_rope_layout vkm_gguf_rope_layout(const char *arch);
uint32_t vkm_rope_row_map(vkm_rope_layout from, vkm_rope_layout to, uint32_t row,
                          uint32_t head_dim);

/* ------------------------------------------------------------------------------------------ */
/* LoRA adapters (PEFT folders and llama.cpp GGUF LoRA)                                        */
/* ------------------------------------------------------------------------------------------ */
typedef enum vkm_module {
    VKM_MOD_Q = 0, VKM_MOD_K, VKM_MOD_V, VKM_MOD_O, VKM_MOD_GATE, VKM_MOD_UP, VKM_MOD_DOWN,
    VKM_MOD_COUNT
} vkm_module;

/* "q_proj", ... (PEFT names), "attn_q", ... (GGUF names), "self_attn" / "mlp" (the PEFT
 * parent module); NULL for an invalid value. The parsers return false for unknown names. */
const char *vkm_module_peft_name(vkm_module m);
const char *vkm_module_gguf_name(vkm_module m);
const char *vkm_module_peft_parent(vkm_module m);
bool vkm_module_from_peft(const char *name, vkm_module *out);
bool vkm_module_from_gguf(const char *name, vkm_module *out);

typedef struct vkm_lora_pair {
    uint32_t layer;
    vkm_module module;
    char target[96];          /* internal name of the base weight, "blk.N.attn_q.weight"     */
    const vkm_tensor_src *a;  /* A: r x in  (ne = {in, r})                                   */
    const vkm_tensor_src *b;  /* B: out x r (ne = {r, out})                                  */
    uint32_t rank;
    float alpha;
    float scale;              /* alpha / r, or alpha / sqrt(r) with use_rslora               */
} vkm_lora_pair;

#define VKM_MAX_LORA_RANK 65536u

typedef struct vkm_adapter_src {
    char path[1024];
    vkm_src_format format;    /* GGUF LoRA or PEFT (safetensors)                             */
    vkm_rope_layout rope_layout; /* layout of its q/k B rows: GGUF interleaved, PEFT half     */
    vkm_gguf gguf;
    vkm_st st;
    uint32_t n_pairs;
    vkm_lora_pair *pairs;     /* sorted by (layer, module)                                   */
    char arch[32];            /* "llama" etc. when the file says (GGUF), else ""             */
    /* PEFT adapter_config.json (GGUF: rank of the first pair, adapter.lora.alpha, false, "") */
    uint32_t r;               /* "r" (rank_pattern may override it per module)               */
    float alpha;              /* "lora_alpha" (alpha_pattern may override it per module)     */
    bool rslora;              /* "use_rslora": scale alpha / sqrt(r)                         */
    char base_model[256];     /* "base_model_name_or_path", for messages                     */
    char adapter_name[64];    /* PEFT tensor names' adapter name ("default"), or ""          */
} vkm_adapter_src;

/* path: a PEFT folder (adapter_config.json + adapter_model.safetensors) or a GGUF LoRA file
 * (general.type = adapter, adapter.type = lora, adapter.lora.alpha; without alpha the scale is 1).
 * PEFT config: peft_type LORA; r; lora_alpha; use_rslora; target_modules (a list: every adapted
 * module must match an entry; a string is a regular expression in PEFT and is not checked);
 * rank_pattern / alpha_pattern keys match a module when its full name ("model.layers.3.
 * self_attn.q_proj") equals the key or ends with "." + key (keys are taken literally, not as
 * regular expressions; the first matching key in file order wins). Tensor names
 * base_model.model.model.layers.N.{self_attn,mlp}.X_proj.lora_{A,B}[.<adapter name>].weight.
 * Refused with a message naming the file, the tensor and why: use_dora / magnitude vectors,
 * fan_in_fan_out, bias other than "none" or bias tensors, modules_to_save, embedding and
 * lm_head adapters, a half of a pair without the other, ranks that differ between A and B or
 * from the config, non-float data, mixed adapter names. VKM_ERR_IO, VKM_ERR_FORMAT,
 * VKM_ERR_UNSUPPORTED. On failure a is left closed. */
vkm_status vkm_adapter_open(const char *path, vkm_adapter_src *a, vkm_err *e);
/* The same from memory: a PEFT adapter (config text + safetensors bytes, kept by the caller
 * until close) or a GGUF LoRA; name is for messages. */
vkm_status vkm_adapter_open_peft_mem(const char *config, size_t config_len, const void *st,
                                     uint64_t st_size, const char *name, vkm_adapter_src *a,
                                     vkm_err *e);
vkm_status vkm_adapter_open_gguf_mem(const void *data, uint64_t size, const char *name,
                                     vkm_adapter_src *a, vkm_err *e);
void vkm_adapter_close(vkm_adapter_src *a); /* accepts a zeroed or closed a */
/* Checks every pair against the base: same architecture when both say, target exists, A is
 * r x in and B is out x r of it. VKM_ERR_MISMATCH; messages carry a hint ("wrong base model?"). */
vkm_status vkm_adapter_validate(const vkm_adapter_src *a, const vkm_model_src *base, vkm_err *e);

/* ------------------------------------------------------------------------------------------ */
/* The MoErge manifest (see shared/DESIGN.md)                                                  */
/* ------------------------------------------------------------------------------------------ */
typedef enum vkm_policy {
    VKM_POLICY_UNIFORM = 0, VKM_POLICY_NOISY, VKM_POLICY_LEARNED, VKM_POLICY_ARROW,
    VKM_POLICY_CENTROID, VKM_POLICY_PHATGOOSE, VKM_POLICY_HIDDEN, VKM_POLICY_FIXED,
} vkm_policy;
typedef enum vkm_granularity { VKM_GRAN_TOKEN = 0, VKM_GRAN_SEQUENCE, VKM_GRAN_TASK } vkm_granularity;
typedef enum vkm_depth { VKM_DEPTH_MODULE = 0, VKM_DEPTH_LAYER, VKM_DEPTH_MODEL } vkm_depth;
typedef enum vkm_aggregate { VKM_AGG_OUTPUT = 0, VKM_AGG_PARAMETER, VKM_AGG_LOGITS } vkm_aggregate;
typedef enum vkm_merge_kind { VKM_MERGE_AVERAGE = 0, VKM_MERGE_EXACT } vkm_merge_kind;
typedef enum vkm_normalize { VKM_NORM_SOFTMAX = 0, VKM_NORM_SIGMOID, VKM_NORM_NONE } vkm_normalize;
typedef enum vkm_shared { VKM_SHARED_BASE = 0, VKM_SHARED_AVERAGE } vkm_shared;

#define VKM_MAX_EXPERTS 64

typedef struct vkm_manifest_expert {
    char name[64];
    char lora[1024];          /* resolved path, or "" */
    char model[1024];         /* resolved path of a full fine-tune, or "" */
    float scale;              /* default 1 */
    /* hidden policy (mergekit-moe): prompts whose mean hidden state attracts / repels */
    uint32_t n_positive, n_negative;
    char **positive, **negative;
    /* centroid policy: calibration text files for this expert ("calib": [..]), resolved */
    uint32_t n_calib;
    char **calib;
} vkm_manifest_expert;

typedef struct vkm_manifest {
    char path[1024];
    char dir[1024];
    char base[1024];          /* resolved */
    uint32_t n_experts;
    vkm_manifest_expert experts[VKM_MAX_EXPERTS];
    struct {
        vkm_policy policy;          /* default uniform */
        vkm_granularity granularity;/* default token */
        vkm_depth depth;            /* default module */
        uint32_t top_k;             /* default 0 = dense */
        vkm_normalize normalize;    /* default softmax */
        float temperature;          /* default 1 */
        float noise_std;            /* default 0.02 */
        uint64_t seed;              /* default 0 */
        int32_t always_on;          /* expert index, or -1 (manifest: name or null) */
        char weights[1024];         /* router file (learned/centroid/phatgoose), resolved, or "" */
        bool has_fixed;
        float fixed[VKM_MAX_EXPERTS]; /* task weights in expert order (policy fixed) */
        bool route_attention;       /* FFN experts: also mix attention projections (moetify) */
        bool fine_grained;          /* FFN experts: one router per FFN matrix (fgmlp) */
    } router;
    vkm_aggregate aggregate;        /* default output */
    vkm_merge_kind merge;           /* default average */
    vkm_shared shared;              /* FFN experts: "base" (default) or "average" */
} vkm_manifest;

/* Parses and validates a manifest (cJSON); keys, defaults and rules are listed at the top of
 * loader/manifest.c and in docs/manifest.md. Paths are resolved against the manifest's folder
 * and must exist. Messages name the key path ("router.polcy: unknown key (did you mean
 * 'policy'?)"). VKM_ERR_FORMAT (bad JSON, unknown key, wrong type, bad value, rule broken),
 * VKM_ERR_IO (a file that does not exist, an unreadable manifest), VKM_ERR_LIMIT (more than
 * VKM_MAX_EXPERTS experts, a path too long). On failure m holds nothing to free. */
vkm_status vkm_manifest_load(const char *path, vkm_manifest *m, vkm_err *e);
/* The same from a JSON text; dir resolves relative paths (files are checked for existence). */
vkm_status vkm_manifest_parse(const char *json, size_t len, const char *dir, vkm_manifest *m,
                              vkm_err *e);
void vkm_manifest_free(vkm_manifest *m); /* accepts a zeroed or freed m */
/* Whether the file at path is a manifest (a JSON object with "base" and "experts"), read no
 * further; if so and base is not NULL, the base model's path resolved against the manifest's
 * folder (cap bytes; "" if it does not fit). */
bool vkm_manifest_sniff(const char *path, char *base, size_t cap);
/* Opens the files a parsed manifest names and checks they fit together: the base is a model;
 * every LoRA expert is an adapter that fits the base (vkm_adapter_validate); every FFN expert is
 * a model of the base's architecture and shape; merge "average" with parameter aggregation
 * needs equal ranks per adapted weight. Messages start with the key ("experts[2].lora: ...").
 * VKM_ERR_MISMATCH, or the status of the file that failed to open. */
vkm_status vkm_manifest_check(const vkm_manifest *m, vkm_err *e);
const char *vkm_policy_name(vkm_policy p);

#endif /* VKM_LOADER_H */
