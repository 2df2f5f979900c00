/*
 * vkmoe.h — the one public header of vkmoe: MoErged language models on any Vulkan GPU.
 *
 * Conventions (they hold for every function below unless its comment says otherwise):
 *  - Every fallible function returns a vkm_status; VKM_OK is 0. vkm_status_str() names a status;
 *    the *_errmsg() function of the handle involved says what failed, in words (file, tensor,
 *    key, VkResult).
 *  - Handles are opaque and written through out-parameters; on failure *out is NULL unless the
 *    function says otherwise. Every destroy/close function accepts NULL.
 *  - A params struct is obtained from its *_default_params() function; a zeroed struct is not
 *    guaranteed to be valid.
 *  - The library never exits, aborts or prints. Diagnostics (e.g. validation-layer messages) go
 *    to the log callback of the context, if one is set.
 *  - Thread safety: distinct handles may be used from distinct threads. A handle and everything
 *    created from it (a context and its models and sessions) must not be used from two threads
 *    at once; the caller serialises. vkm_status_str(), vkm_version() are always safe.
 */
#ifndef VKMOE_H
#define VKMOE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VKMOE_VERSION_MAJOR 0
#define VKMOE_VERSION_MINOR 1
#define VKMOE_VERSION_PATCH 0
#define VKMOE_VERSION_STRING "0.1.0"

/* The library's version at run time, as "major.minor.patch". */
const char *vkm_version(void);

/* ------------------------------------------------------------------------------------------ */
/* Status codes, grouped by cause                                                             */
/* ------------------------------------------------------------------------------------------ */
typedef enum vkm_status {
    VKM_OK = 0,
    /* the caller */
    VKM_ERR_INVALID_ARGUMENT = 1, /* a NULL where a value is needed, a value out of range   */
    VKM_ERR_STATE = 2,            /* a call out of order (e.g. decode before prefill)        */
    VKM_ERR_CANCELLED = 3,        /* a callback asked to stop                                */
    /* the files */
    VKM_ERR_IO = 10,              /* a file could not be opened, read, mapped or written     */
    VKM_ERR_FORMAT = 11,          /* a file is malformed (truncated, lying counts, bad JSON)  */
    VKM_ERR_MISMATCH = 12,        /* files do not fit together (adapter vs base, shapes)     */
    VKM_ERR_NOT_FOUND = 13,       /* a tensor, key, token or device that is asked for is absent */
    /* the device */
    VKM_ERR_NO_DEVICE = 20,       /* no Vulkan device, or none matches the request           */
    VKM_ERR_VULKAN = 21,          /* a Vulkan call failed (the message carries the VkResult)  */
    VKM_ERR_DEVICE_LOST = 22,     /* VK_ERROR_DEVICE_LOST                                    */
    VKM_ERR_UNSUPPORTED = 23,     /* a feature the file or request needs is not supported    */
    /* resources */
    VKM_ERR_OUT_OF_HOST_MEMORY = 30,
    VKM_ERR_OUT_OF_DEVICE_MEMORY = 31,
    VKM_ERR_LIMIT = 32,           /* a size beyond a sane or device limit (context full, ...) */
} vkm_status;

/* A constant English name for a status ("VKM_ERR_FORMAT: malformed file"). Never NULL. */
const char *vkm_status_str(vkm_status s);

/* Log severities passed to a vkm_log_fn. */
typedef enum vkm_log_level {
    VKM_LOG_DEBUG = 0,
    VKM_LOG_INFO = 1,
    VKM_LOG_WARN = 2,
    VKM_LOG_ERROR = 3,
} vkm_log_level;

/* Receives diagnostics (validation-layer messages are VKM_LOG_WARN or VKM_LOG_ERROR).
 * May be called from any thread the driver uses; must not call back into vkmoe. */
typedef void (*vkm_log_fn)(void *user, vkm_log_level level, const char *msg);

/* ------------------------------------------------------------------------------------------ */
/* Devices and the context                                                                    */
/* ------------------------------------------------------------------------------------------ */

/* What a device can do, read at context creation. Kernels choose their variants from this. */
typedef struct vkm_device_caps {
    char name[256];
    char driver[256];           /* driver name and info string                              */
    uint32_t vendor_id, device_id, driver_version, api_version;
    int type;                   /* VkPhysicalDeviceType                                     */
    bool fp16_arith;            /* shaderFloat16                                            */
    bool storage16;             /* storageBuffer16BitAccess                                 */
    bool storage8;              /* storageBuffer8BitAccess                                  */
    bool int8_arith;            /* shaderInt8                                               */
    uint32_t subgroup_size;     /* default subgroup size                                    */
    uint32_t subgroup_min, subgroup_max; /* with subgroup size control, else == default      */
    uint32_t subgroup_ops;      /* VkSubgroupFeatureFlags in compute                        */
    bool subgroup_size_control; /* VK_EXT_subgroup_size_control / 1.3 usable in compute     */
    bool timestamps;            /* timestampComputeAndGraphics and a valid period           */
    float timestamp_period_ns;
    uint64_t max_storage_range;       /* maxStorageBufferRange                              */
    uint64_t max_alloc;               /* maxMemoryAllocationSize                            */
    uint64_t device_local_bytes;      /* largest device-local heap                          */
    uint32_t max_shared_bytes;        /* maxComputeSharedMemorySize                         */
    uint32_t max_push_bytes;          /* maxPushConstantsSize                               */
    uint32_t max_wg_invocations;      /* maxComputeWorkGroupInvocations                     */
    uint32_t max_wg_count[3];         /* maxComputeWorkGroupCount                           */
    uint64_t storage_align;           /* minStorageBufferOffsetAlignment                    */
    bool unified_memory;              /* device-local memory is also host-visible           */
    uint8_t pipeline_cache_uuid[16];
} vkm_device_caps;

/* Number of Vulkan devices present (creates and destroys a bare instance). */
vkm_status vkm_device_count(uint32_t *count);
/* Capabilities of device `index` in enumeration order, without creating a context. */
vkm_status vkm_device_info(uint32_t index, vkm_device_caps *out);

typedef struct vkm_context vkm_context;

typedef struct vkm_context_params {
    /* Which device: NULL or "" picks the best (discrete > integrated > virtual > CPU, then
     * the largest device-local heap); a decimal string is an index in enumeration order; any
     * other string picks the first device whose name contains it (case-insensitive). */
    const char *device;
    bool validation;          /* enable the Khronos validation layer (+ synchronization)   */
    bool sync_validation;     /* with validation: also synchronization validation (default on) */
    vkm_log_fn log;           /* receives diagnostics; NULL: none                           */
    void *log_user;
    /* Directory for the persisted VkPipelineCache; NULL: no cache on disk. */
    const char *pipeline_cache_dir;
    /* Disable optional features to exercise fallbacks (tests): 16-bit storage, fp16 math,
     * 8-bit storage, int8 math, subgroup size control. */
    bool disable_storage16, disable_fp16, disable_storage8, disable_int8, disable_sg_control;
    bool disable_subgroup_arith; /* use the shared-memory reduction variants                */
    bool tune_as_gpu;            /* a CPU device gets the GPU choices (workgroup sizes, tiled
                                    matmul for prefill): tests run those kernels on lavapipe  */
} vkm_context_params;

vkm_context_params vkm_context_default_params(void);

/* Creates the Vulkan instance and device. On failure *out may still hold a context whose
 * vkm_context_errmsg() tells why (SQLite style); destroy it either way. */
vkm_status vkm_context_create(const vkm_context_params *params, vkm_context **out);
/* Accepts NULL. Free its models first (they use its device). */
void vkm_context_destroy(vkm_context *ctx);
/* The message of the last failure on this context or anything created from it ("" if none). */
const char *vkm_context_errmsg(const vkm_context *ctx);
const vkm_device_caps *vkm_context_caps(const vkm_context *ctx);
/* Number of validation messages (warnings or errors) seen since creation. */
uint64_t vkm_context_validation_count(const vkm_context *ctx);

/* Measures the device's copy bandwidth (GB/s, read + write bytes / time) with the copy kernel
 * on a buffer of `bytes` (0: a default of 256 MiB or less where memory is short; at least
 * 64 KiB, at most the storage range). */
vkm_status vkm_context_copy_bandwidth(vkm_context *ctx, uint64_t bytes, double *gbps);

/* ------------------------------------------------------------------------------------------ */
/* Data types                                                                                 */
/* ------------------------------------------------------------------------------------------ */
typedef enum vkm_dtype {
    VKM_F32 = 0,
    VKM_F16 = 1,
    VKM_BF16 = 2,
    VKM_Q8_0 = 3,   /* blocks of 32: f16 scale + 32 int8                                   */
    VKM_Q4_0 = 4,   /* blocks of 32: f16 scale + 16 bytes of nibbles (value - 8)           */
    VKM_Q4_K = 5,   /* super-blocks of 256 (llama.cpp k-quants)                            */
    VKM_Q6_K = 6,
    VKM_I8 = 7,
    VKM_I16 = 8,
    VKM_I32 = 9,
    VKM_I64 = 10,
    VKM_F64 = 11,
    VKM_DTYPE_COUNT
} vkm_dtype;

const char *vkm_dtype_name(vkm_dtype t);

/* ------------------------------------------------------------------------------------------ */
/* Kernel microbenchmarks                                                                     */
/* ------------------------------------------------------------------------------------------ */
typedef struct vkm_bench_result {
    double seconds;     /* best time of one run of the kernel (all its dispatches)            */
    double bytes;       /* bytes the kernel must move (weights + inputs + outputs)            */
    double gbps;        /* bytes / seconds / 1e9                                              */
    double max_err;     /* largest |difference| from a host reference on a few rows (0: none) */
} vkm_bench_result;

/* Times one kernel on random data: kernel "matvec" (rows x cols weights of `dtype` times
 * n_vec vectors), "matvec_lora" (matvec with a LoRA site's expands in its epilogue: every
 * vector routed to 2 of 8 experts of rank 16; 1 to 8 vectors; VKM_ERR_UNSUPPORTED on a device
 * with fewer than 9 storage buffers per stage), "matvec_expand" (the same work as matvec, then
 * the expand kernel apart), "rmsnorm" (rows x cols), "softmax" (rows x cols), "silu_mul" (rows*cols),
 * "copy" (rows*cols floats), "merge" (the linear merge kernel of vkm_merge: n_vec inputs, default
 * 3, of rows*cols elements of `dtype` F32 / F16 / BF16 in one chunk, output in the same type).
 * Uses timestamps when the device has them, else wall time. */
vkm_status vkm_bench_kernel(vkm_context *ctx, const char *kernel, vkm_dtype dtype, uint32_t rows,
                            uint32_t cols, uint32_t n_vec, vkm_bench_result *out);

/* ------------------------------------------------------------------------------------------ */
/* Inspecting files (any model or adapter the loader reads); no device needed                 */
/* ------------------------------------------------------------------------------------------ */
typedef struct vkm_file vkm_file;

typedef struct vkm_tensor_info {
    const char *name;   /* as stored in the file; valid while the file is open             */
    vkm_dtype dtype;
    int n_dims;
    int64_t dims[4];    /* in the file's own order: GGUF ne0 first; safetensors outermost first */
    uint64_t bytes;
    uint64_t offset;    /* byte offset of the data inside its file                         */
} vkm_tensor_info;

/* Opens a GGUF file, a safetensors file, a folder with model.safetensors[.index.json] and
 * config.json, a PEFT adapter folder, or a GGUF LoRA adapter. The format is detected.
 * On failure *out may hold a handle whose vkm_file_errmsg() tells why; close it either way. */
vkm_status vkm_file_open(const char *path, vkm_file **out);
void vkm_file_close(vkm_file *f);
const char *vkm_file_errmsg(const vkm_file *f);
/* "gguf", "gguf-lora", "safetensors", "safetensors-sharded", "hf-folder", "peft". */
const char *vkm_file_format(const vkm_file *f);
size_t vkm_file_n_meta(const vkm_file *f);
/* Metadata entry i: its key and its value rendered as text (arrays abbreviated) into buf. */
vkm_status vkm_file_meta(const vkm_file *f, size_t i, const char **key, char *buf, size_t cap);
size_t vkm_file_n_tensors(const vkm_file *f);
vkm_status vkm_file_tensor(const vkm_file *f, size_t i, vkm_tensor_info *out);
/* Checks the whole file: every tensor inside the file, sizes consistent, no overlaps, and
 * for adapters the pairing of A and B. VKM_OK or the first problem (see vkm_file_errmsg). */
vkm_status vkm_file_validate(vkm_file *f);

/* ------------------------------------------------------------------------------------------ */
/* Tokenizers; no device needed                                                               */
/* ------------------------------------------------------------------------------------------ */
typedef struct vkm_tokenizer vkm_tokenizer;

/* Loads the tokenizer of a GGUF model (tokenizer.ggml.model "llama" or "gpt2"), a Hugging Face
 * tokenizer.json (model BPE: SentencePiece-style with byte fallback, or byte-level), a
 * SentencePiece tokenizer.model (BPE), or a folder holding one of them (tokenizer.json, then
 * tokenizer.model, then model.gguf). The kind of a file is told by its content. Encoding
 * matches the reference of each source exactly: SentencePiece for tokenizer.model (including
 * remove_extra_whitespaces, which a "llama" GGUF vocabulary normally cannot express: GGUF
 * encodes like llama.cpp, keeping every space, unless tokenizer.ggml.remove_extra_whitespaces
 * is set), Hugging Face tokenizers for tokenizer.json, llama.cpp for GGUF.
 * On failure *out may hold a handle whose vkm_tokenizer_errmsg() tells why (VKM_ERR_IO,
 * VKM_ERR_FORMAT, VKM_ERR_NOT_FOUND: no tokenizer, VKM_ERR_UNSUPPORTED: a model, normalizer or
 * pre-tokenizer vkmoe does not implement); free it either way. */
vkm_status vkm_tokenizer_load(const char *path, vkm_tokenizer **out);
void vkm_tokenizer_free(vkm_tokenizer *t);
const char *vkm_tokenizer_errmsg(const vkm_tokenizer *t);
int32_t vkm_tokenizer_n_vocab(const vkm_tokenizer *t);
int32_t vkm_tokenizer_bos(const vkm_tokenizer *t); /* -1 if none */
int32_t vkm_tokenizer_eos(const vkm_tokenizer *t); /* -1 if none */
/* True when the model's convention adds BOS at the start of a prompt (and it has one). */
bool vkm_tokenizer_adds_bos(const vkm_tokenizer *t);
/* "spm" (SentencePiece BPE: merges by piece score), "bpe" (merges by rank, byte fallback),
 * "byte-level-bpe" (GPT-2 style). */
const char *vkm_tokenizer_kind(const vkm_tokenizer *t);

/* What a token is (SentencePiece / GGUF token types). */
typedef enum vkm_token_type {
    VKM_TOKEN_INVALID = 0,  /* not an id of this vocabulary                                */
    VKM_TOKEN_NORMAL = 1,
    VKM_TOKEN_UNKNOWN = 2,
    VKM_TOKEN_CONTROL = 3,  /* BOS, EOS, <|im_end|>, ...: decoded as nothing                */
    VKM_TOKEN_USER = 4,     /* user-defined / non-special added token: always matched       */
    VKM_TOKEN_UNUSED = 5,
    VKM_TOKEN_BYTE = 6,     /* <0xNN> byte fallback                                         */
} vkm_token_type;
vkm_token_type vkm_tokenizer_token_type(const vkm_tokenizer *t, int32_t id);

/* Encodes `len` bytes of text (text may be NULL when len is 0). With add_bos, BOS is prepended
 * if the tokenizer has one (EOS is never added). User-defined tokens are always matched in the
 * text; with parse_special, control and unknown token texts (e.g. "<|im_start|>", "<s>") are too,
 * leftmost and longest first, and each stretch of text between them is encoded on its own
 * (SentencePiece-style vocabularies give each stretch its dummy-prefix space, as llama.cpp and
 * Hugging Face do). Bytes that are not UTF-8 never fail: SentencePiece-style vocabularies read
 * each as U+FFFD (as SentencePiece does), byte-level ones encode the raw byte.
 * Writes up to `cap` ids; *n_out receives the number needed. VKM_ERR_LIMIT if cap is short
 * (ids is then filled as far as it goes). */
vkm_status vkm_tokenize(const vkm_tokenizer *t, const char *text, size_t len, bool add_bos,
                        bool parse_special, int32_t *ids, size_t cap, size_t *n_out);

/* Decodes ids into text: control tokens vanish, <0xNN> tokens give their byte, U+2581 gives a
 * space and the one leading space of the dummy prefix is dropped (SentencePiece-style), GPT-2
 * characters give their bytes (byte-level), unk gives " U+2047 " (SentencePiece's surface).
 * The result is always valid UTF-8: invalid bytes become U+FFFD (one per byte for
 * SentencePiece-style vocabularies, as SentencePiece; one per maximal invalid subpart for
 * byte-level ones, as Hugging Face). *n_out receives the bytes needed (NUL not counted; one is
 * written if there is room); VKM_ERR_LIMIT if cap is short. VKM_ERR_INVALID_ARGUMENT for an id
 * outside the vocabulary. A streaming decoder that holds back incomplete UTF-8 is vkm_detok_*. */
vkm_status vkm_detokenize(const vkm_tokenizer *t, const int32_t *ids, size_t n, char *buf,
                          size_t cap, size_t *n_out);

/* The piece of one token as raw bytes, as llama.cpp shows it: byte-fallback tokens give their
 * byte, U+2581 a space, GPT-2 characters their bytes, control and added tokens their text.
 * Not necessarily valid UTF-8. *n_out and VKM_ERR_LIMIT as vkm_detokenize. */
vkm_status vkm_token_piece(const vkm_tokenizer *t, int32_t id, char *buf, size_t cap,
                           size_t *n_out);

/* Streaming decode: feed ids one at a time; each push returns the text that is complete UTF-8
 * so far, holding back a sequence that the next token may complete. The pushes followed by a
 * flush give exactly vkm_detokenize's text. To continue after text already shown (a prompt),
 * set at_start to false after vkm_detok_init so no leading space is dropped. */
typedef struct vkm_detok {
    const vkm_tokenizer *tok;
    char pending[16];   /* held-back bytes (at most 3)                                       */
    size_t n_pending;
    bool at_start;      /* no token with text seen yet                                       */
} vkm_detok;
void vkm_detok_init(vkm_detok *d, const vkm_tokenizer *t);
/* Writes the text for `id` to buf (cap bytes, NUL added if room); *n_out bytes written. On
 * VKM_ERR_LIMIT nothing is consumed and *n_out is the room needed: push the same id again. */
vkm_status vkm_detok_push(vkm_detok *d, int32_t id, char *buf, size_t cap, size_t *n_out);
/* Flushes any held-back bytes (an incomplete sequence becomes U+FFFD). */
vkm_status vkm_detok_flush(vkm_detok *d, char *buf, size_t cap, size_t *n_out);

/* ------------------------------------------------------------------------------------------ */
/* Models                                                                                     */
/* ------------------------------------------------------------------------------------------ */
typedef struct vkm_model vkm_model;
typedef struct vkm_session vkm_session;

/* Called while loading with the fraction done; return false to cancel (VKM_ERR_CANCELLED). */
typedef bool (*vkm_progress_fn)(void *user, float fraction);

#define VKM_WEIGHTS_AUTO (-1)

typedef struct vkm_model_params {
    /* Device type of the weight matrices: VKM_WEIGHTS_AUTO keeps F32, F16, Q8_0 and Q4_0 as
     * stored (BF16, Q4_K and Q6_K become F16); VKM_F32, VKM_F16, VKM_Q8_0 or VKM_Q4_0 convert
     * (quantize) every matrix at load. Norm weights are always F32. */
    int weight_type;
    uint32_t n_ctx;     /* positions per sequence; 0: the model's context length            */
    uint32_t n_seq;     /* sequences alive at once (KV-cache slots); default 4; at least 1 + k
                         * for a manifest whose router mixes the logits of k experts         */
    uint32_t n_batch;   /* tokens per step at most (the prefill chunk); default 256          */
    vkm_progress_fn progress;
    void *progress_user;
    bool profile;       /* time every kernel of every step (vkm_model_profile)               */
    bool separate_routers; /* decoding, token routers of module depth in dispatches of their
                         * own rather than inside the LoRA shrinks (to time the routers apart) */
    bool separate_expands; /* decoding, the LoRA expands in dispatches of their own rather than
                         * in the epilogue of the base's matrix products (to compare them)   */
} vkm_model_params;

vkm_model_params vkm_model_default_params(void);

/* Loads a model: a GGUF file, a safetensors file with config.json beside it, a sharded
 * checkpoint (index.json) or a folder holding one of them; or a MoErge manifest (a .json file,
 * shared/DESIGN.md): its base model, its bank of LoRA experts and its router. Its tokenizer is
 * loaded too when the model carries one (GGUF vocabulary, tokenizer.json or tokenizer.model
 * beside it). Failures are described by vkm_context_errmsg(ctx) (file, key, tensor, VkResult). */
vkm_status vkm_model_load(vkm_context *ctx, const char *path, const vkm_model_params *params,
                          vkm_model **out);
/* Accepts NULL. Free the model's sessions first (they hold its sequence slots and buffers), and
 * the model before its context. */
void vkm_model_free(vkm_model *m);

/* The shape of a LLaMA model, for vkm_model_create_random. */
typedef struct vkm_model_shape {
    uint32_t n_vocab, dim, n_layers, n_heads, n_kv_heads;
    uint32_t head_dim;        /* 0: dim / n_heads                                             */
    uint32_t ffn_dim, ctx_len;
    float rope_theta;         /* 0: 10000                                                     */
    bool tied_embeddings;
    uint32_t n_experts;       /* > 0: a Mixtral-style MoE (each expert an FFN of ffn_dim)      */
    uint32_t n_experts_used;  /* top-k of its routers (0: 2)                                   */
} vkm_model_shape;

/* A model of the given shape with seeded random weights (benchmarks, tests), generated on the
 * host and converted like a loaded file (params->weight_type; AUTO means F16). No tokenizer. */
vkm_status vkm_model_create_random(vkm_context *ctx, const vkm_model_shape *shape, uint64_t seed,
                                   const vkm_model_params *params, vkm_model **out);

typedef struct vkm_model_info {
    char arch[32];
    uint32_t n_vocab, dim, n_layers, n_heads, n_kv_heads, head_dim, ffn_dim, ctx_len;
    uint32_t n_ctx, n_seq, n_batch;
    float rope_theta, norm_eps;
    bool tied_embeddings, rope_half;
    vkm_dtype weight_type;    /* device type of the matrices (the first one, if mixed)       */
    uint64_t weight_bytes;    /* device bytes of all weights                                 */
    uint64_t bytes_per_token; /* weight bytes one decode step reads (the roofline numerator) */
    int32_t bos, eos;
} vkm_model_info;

vkm_status vkm_model_get_info(const vkm_model *m, vkm_model_info *out);
/* ---- MoErged models -------------------------------------------------------------------------- */
/* Experts in the model's bank (0 for a plain model) and their names (manifest order). */
uint32_t vkm_model_n_experts(const vkm_model *m);
const char *vkm_model_expert_name(const vkm_model *m, uint32_t i);
/* Routers: router 0 is the manifest's; another manifest over the same base whose experts are
 * all in the bank adds a router (its policy, granularity, depth, aggregation) that sessions
 * may choose: sequences with different routers then share one batch. */
uint32_t vkm_model_n_routers(const vkm_model *m);
typedef struct vkm_router_info {
    char policy[16];          /* "uniform", "noisy", "learned", "arrow", "centroid", ...      */
    char granularity[16];     /* "token", "sequence", "task"                                  */
    char depth[16];           /* "module", "layer", "model"                                   */
    char aggregate[16];       /* "output", "parameter", "logits"                              */
    char merge[16];           /* "average", "exact"                                           */
    uint32_t n_experts, top_k;
    char manifest[1024];
} vkm_router_info;
vkm_status vkm_model_router_info(const vkm_model *m, uint32_t router, vkm_router_info *out);
/* Writes a router's matrices (learned, noisy, Arrow prototypes, centroids: computed ones
 * included) as a router file of shared/DESIGN.md's names, for "router.weights". */
vkm_status vkm_model_save_router(vkm_model *m, uint32_t router, const char *path);
/* Fits a sequence-level router from the experts' calibration texts (the manifest's "calib"):
 * features = the mean of the last layer's normed input over windows of n_ctx tokens of each
 * text under the base model; a linear discriminant (w_e = S^-1 mu_e, b_e = -mu_e . w_e / 2,
 * S = the within-expert covariance of the windows, shrunk by 1% of its mean variance).
 * Writes router.weight and router.bias: use it with policy "learned", granularity "sequence",
 * depth "model". Call before creating sessions. */
vkm_status vkm_model_fit_router(vkm_model *m, const char *path);
vkm_status vkm_model_add_router(vkm_model *m, const char *manifest, uint32_t *router);
/* Writes a model whose experts are whole fine-tunes (a manifest with "model" experts) as a
 * Mixtral-style GGUF other engines run: llama architecture with expert_count and
 * expert_used_count, per layer ffn_gate_inp (router 0's gates) and ffn_{gate,up,down}_exps
 * (the experts' FFNs, in their file type when they share one, else F32); the shared weights
 * from the base as stored (or their F32 average with "shared": "average"), the base's GGUF
 * metadata and tokenizer (a Hugging Face base's as vkm_merge writes it). Router 0 must be
 * what such a file can hold: token level, one softmax gate per layer (learned, noisy, hidden; uniform as zero gates over all experts),
 * no always-on expert, biases, normalised inputs, attention or per-matrix mixing
 * (VKM_ERR_UNSUPPORTED, saying which). The file appears only when complete. */
vkm_status vkm_model_write_moe_gguf(vkm_model *m, const char *path);

/* One kernel's share of the last step, with the model loaded with params.profile. */
typedef struct vkm_kernel_stat {
    const char *name;         /* the kernel variant ("matvec_f16s", "attn", ...)               */
    uint32_t calls;
    double seconds;           /* summed over its dispatches (timestamps)                       */
    double bytes;             /* bytes its dispatches must move (0 where not counted)          */
} vkm_kernel_stat;

/* Per-kernel profile of the last step, largest time first. VKM_ERR_STATE without profiling,
 * VKM_ERR_UNSUPPORTED without timestamps on the device. */
vkm_status vkm_model_profile(const vkm_model *m, vkm_kernel_stat *out, size_t cap, size_t *n);
/* Pauses (on = false) and resumes the per-kernel timing of a model loaded with params.profile:
 * a timestamp after every dispatch costs time, so step times are best measured paused.
 * VKM_ERR_STATE when the model was loaded without profiling. */
vkm_status vkm_model_set_profiling(vkm_model *m, bool on);

/* The model's tokenizer, or NULL when it has none; owned by the model. */
const vkm_tokenizer *vkm_model_tokenizer(const vkm_model *m);

/* ------------------------------------------------------------------------------------------ */
/* Sampling (runs on the GPU inside the step; only the chosen token comes back)                */
/* ------------------------------------------------------------------------------------------ */
typedef struct vkm_sampler_params {
    float temperature;        /* <= 0: greedy (argmax, lowest id on ties)                     */
    uint32_t top_k;           /* keep the k most likely (and any tied with the k-th); 0: off  */
    float top_p;              /* keep the smallest set with this much probability; 1: off     */
    float min_p;              /* keep tokens with p >= min_p * p_max; 0: off                  */
    float repeat_penalty;     /* llama.cpp's: logit / penalty if > 0 else * penalty; 1: off   */
    uint32_t repeat_last_n;   /* how many past tokens the penalty looks at (<= 256)           */
    uint64_t seed;            /* the same seed and inputs give the same tokens                */
} vkm_sampler_params;

/* temperature 0.8, top_k 40, top_p 0.95, min_p 0.05, repeat_penalty 1, last_n 64, seed 0
 * (the order of application is llama.cpp's: penalty, top-k, top-p, min-p, temperature). */
vkm_sampler_params vkm_sampler_default_params(void);

/* ------------------------------------------------------------------------------------------ */
/* Sessions: one sequence each, with its own KV-cache slot                                     */
/* ------------------------------------------------------------------------------------------ */
/* How a session of a MoErged model combines its experts. */
typedef enum vkm_route_mode {
    VKM_ROUTE_DEFAULT = 0,    /* router 0 (the manifest's); the bare base for a plain model    */
    VKM_ROUTE_ROUTER = 1,     /* the router numbered `router`                                  */
    VKM_ROUTE_FIXED = 2,      /* fixed weights, one per bank expert (output aggregation)       */
    VKM_ROUTE_BASE = 3,       /* no experts: the bare base model                               */
} vkm_route_mode;

typedef struct vkm_session_params {
    vkm_sampler_params sampling;
    bool keep_logits;         /* bring the last position's logits back after each step        */
    vkm_route_mode route;
    uint32_t router;          /* VKM_ROUTE_ROUTER                                              */
    const float *expert_weights; /* VKM_ROUTE_FIXED: vkm_model_n_experts values (copied)       */
} vkm_session_params;

vkm_session_params vkm_session_default_params(void);

/* A new sequence at position 0. VKM_ERR_LIMIT when all n_seq slots are taken. */
vkm_status vkm_session_create(vkm_model *m, const vkm_session_params *p, vkm_session **out);
/* Accepts NULL; before the session's model is freed. */
void vkm_session_free(vkm_session *s);
/* Forgets the sequence (back to position 0, same slot). */
void vkm_session_reset(vkm_session *s);
uint32_t vkm_session_pos(const vkm_session *s);
vkm_status vkm_session_set_sampler(vkm_session *s, const vkm_sampler_params *p);

/* Feeds n ids at the session's position (in steps of n_batch tokens) and samples the token
 * that follows them into *next. VKM_ERR_LIMIT if the context would overflow. */
vkm_status vkm_session_prompt(vkm_session *s, const int32_t *ids, size_t n, int32_t *next);
/* Feeds one token and samples the next. */
vkm_status vkm_session_decode(vkm_session *s, int32_t token, int32_t *next);
/* One decode step for n sessions of one model (one command buffer, one submit): session i
 * feeds tokens[i] and samples next[i]. Sessions may be at different positions. */
vkm_status vkm_batch_decode(vkm_session *const *sessions, size_t n, const int32_t *tokens,
                            int32_t *next);
/* Feeds n ids and writes the logits of every one of their positions (n x n_vocab floats,
 * position-major) without sampling: scoring, perplexity. */
vkm_status vkm_session_eval(vkm_session *s, const int32_t *ids, size_t n, float *logits);
/* The experts a sequence-level (or task-level) router chose for this session, after its
 * prompt: up to cap (bank expert, weight) pairs at routing point `point` (0..n_layers*7-1;
 * sites l*7 + m for module m of layer l). VKM_ERR_STATE before routing. */
vkm_status vkm_session_experts(vkm_session *s, uint32_t point, uint32_t *experts, float *weights,
                               size_t cap, size_t *n);

/* Receives the routing of each step of a session (token-level routers): for every token of
 * the step (positions pos0..pos0+n_tok-1) and every routing point, the chosen bank experts
 * and weights: ids[(point * n_tok + t) * n_exp + j], 0xffffffff ends a token's list. */
typedef void (*vkm_route_fn)(void *user, uint32_t pos0, uint32_t n_tok, uint32_t n_points,
                             uint32_t n_exp, const uint32_t *ids, const float *weights);
vkm_status vkm_session_trace_routing(vkm_session *s, vkm_route_fn fn, void *user);

/* The logits of the last position fed (sessions created with keep_logits); valid until the
 * session's next step. */
vkm_status vkm_session_logits(const vkm_session *s, const float **logits, size_t *n_vocab);

/* ------------------------------------------------------------------------------------------ */
/* Generation with streaming                                                                  */
/* ------------------------------------------------------------------------------------------ */
/* Receives each generated token and its text (complete UTF-8; may be empty while a character
 * is split across tokens); a last call with token -1 carries text held back at the end.
 * Return false to stop (the call then returns VKM_ERR_CANCELLED). */
typedef bool (*vkm_token_fn)(void *user, int32_t token, const char *text, size_t len);

typedef struct vkm_generate_params {
    uint32_t n_predict;       /* tokens to generate at most                                   */
    bool add_bos;             /* prepend BOS when the tokenizer adds one (default true)        */
    bool stop_at_eos;         /* stop after the EOS token (default true)                       */
    vkm_token_fn on_token;
    void *user;
} vkm_generate_params;

typedef struct vkm_generate_stats {
    uint32_t n_prompt, n_generated; /* prompt tokens fed (none when n_predict is 0), tokens out  */
    double prefill_seconds, decode_seconds;
    bool context_full;        /* generation stopped short of n_predict: the context was full   */
} vkm_generate_stats;

vkm_generate_params vkm_generate_default_params(void);
/* Tokenizes the prompt with the model's tokenizer, feeds it and generates. */
vkm_status vkm_generate(vkm_session *s, const char *prompt, const vkm_generate_params *p,
                        vkm_generate_stats *stats);

/* ------------------------------------------------------------------------------------------ */
/* Merging (engine/merge*.c)                                                                  */
/* ------------------------------------------------------------------------------------------ */
/* Parameter merging with mergekit's methods and parameter names, on the GPU and streamed: each
 * tensor is read from the memory-mapped inputs, merged in chunks that fit the device's storage
 * range and written out before the next one, so models larger than host or device memory merge.
 * Arithmetic is f32 whatever the stored types (mergekit computes in the stored type).
 *   linear            sum_i w_i theta_i, divided by sum_i w_i with normalize (default true)
 *   task_arithmetic   theta_0 + lambda * sum_i w_i delta_i, delta_i = theta_i - theta_0
 *                     (divided by sum_i w_i with normalize, default false)
 *   ties              each delta_i keeps its int(density * n) largest |values| (the selection runs
 *                     on the GPU; equal magnitudes go to the lower element index), the sign of
 *                     sum_i w_i delta_i is elected per element, and the weighted deltas of that
 *                     sign are summed (divided by their weights' sum with normalize, default true)
 *   dare_linear,      each delta_i keeps an element with probability density (a counter-based hash
 *   dare_ties         of seed, tensor name, model and element index: reproducible, identical on
 *                     every device) and is divided by density (rescale, default true); then as
 *                     task_arithmetic / ties (normalize default false)
 *   breadcrumbs,      each delta_i drops its int(gamma * n) largest |values| (gamma default 0.01)
 *   breadcrumbs_ties  and keeps the next int(density * n); then as task_arithmetic / ties
 *   slerp             spherical interpolation from the base (t = 0) to the other model (t = 1)
 *                     over each flattened tensor; linear interpolation when |cos| > 0.9995
 *   model_stock       per tensor, cos = mean pairwise cosine of the task vectors (N >= 2 models
 *                     besides the base), t = N cos / (1 + (N - 1) cos), t * mean + (1 - t) * base
 *   lora_linear       LoRA adapters -> one adapter: A' = sum_e w_e A_e, B' = sum_e w_e s_e B_e
 *                     (LoraHub's weighted average; ranks must match per module)
 *   lora_cat          LoRA adapters -> one adapter of the summed rank: A' = [A_1; A_2; ..],
 *                     B' = [w_1 s_1 B_1, w_2 s_2 B_2, ..], so B' A' = sum_e w_e s_e B_e A_e exactly
 *   lora_bake         base + sum_e w_e s_e B_e A_e -> a model (s_e = the adapter's alpha / r)
 * Task vectors, slerp and model_stock need base_model. Inputs: GGUF files, safetensors files with
 * config.json beside them, or such folders; all of one architecture and shape (a mismatch is
 * refused with a message naming the tensor). Models of different formats are brought to the
 * output's RoPE row layout first (q/k rows permuted as convert_hf_to_gguf.py does).
 * Outputs: "x.gguf" (GGUF; metadata and tokenizer copied from the base or first GGUF input;
 * from Hugging Face inputs only, the hyperparameters, and the base's (else the first model's)
 * tokenizer as tokenizer.ggml.* keys when GGUF holds it exactly (a byte-level tokenizer.json, else
 * tokenizer.model; padded with unused "[PADk]" tokens to the embedding rows as
 * convert_hf_to_gguf.py pads; its files are copied beside either way)),
 * "x.safetensors" (with config.json written beside it), or a folder (model.safetensors,
 * config.json and the tokenizer files of a Hugging Face input); for lora_linear / lora_cat a
 * GGUF LoRA ("x.gguf") or a PEFT folder. The method and its parameters are recorded in the
 * metadata (vkmoe.merge.*). Nothing appears at the output path unless complete: the file is
 * written under a temporary name (unnamed where the file system allows, else the output path
 * with VKM_TMP_SUFFIX, created anew: never a file that exists) and renamed at the end; a
 * cancelled or failed merge removes it. The output may not be one of the inputs. */
#define VKM_TMP_SUFFIX ".vkmoe-%ld.tmp" /* printf format; the process id */

typedef enum vkm_merge_method {
    VKM_MERGE_LINEAR = 0,
    VKM_MERGE_TASK_ARITHMETIC,
    VKM_MERGE_TIES,
    VKM_MERGE_DARE_LINEAR,
    VKM_MERGE_DARE_TIES,
    VKM_MERGE_BREADCRUMBS,
    VKM_MERGE_BREADCRUMBS_TIES,
    VKM_MERGE_SLERP,
    VKM_MERGE_MODEL_STOCK,
    VKM_MERGE_LORA_LINEAR,
    VKM_MERGE_LORA_CAT,
    VKM_MERGE_LORA_BAKE,
    VKM_MERGE_METHOD_COUNT
} vkm_merge_method;

/* mergekit's name of a method ("ties", "dare_linear", ...; "lora_cat" ...); NULL if invalid. */
const char *vkm_merge_method_name(vkm_merge_method m);
/* The method named `name`; false if there is none. */
bool vkm_merge_method_from_name(const char *name, vkm_merge_method *out);

#define VKM_MERGE_MAX_MODELS 16  /* inputs of one merge, base included                         */

/* One input. Unset parameters are NAN: the merge's global value applies, else the default. */
typedef struct vkm_merge_model {
    char path[1024];          /* a model (file or folder), or an adapter for the lora_* methods */
    double weight;            /* required by linear and the task-vector methods (as mergekit)  */
    double density;           /* fraction kept (default 1: all)                                */
    double gamma;             /* breadcrumbs: fraction of largest magnitudes dropped (0.01)    */
} vkm_merge_model;

typedef struct vkm_merge_progress {
    uint32_t tensors_done, n_tensors;
    uint64_t bytes_done, bytes_total;  /* input bytes merged so far / in all               */
    double seconds;                    /* since the merge started                          */
    const char *tensor;                /* the tensor just written                          */
} vkm_merge_progress;

/* Called after each output tensor; return false to cancel (the merge returns VKM_ERR_CANCELLED
 * and leaves no output file). */
typedef bool (*vkm_merge_progress_fn)(void *user, const vkm_merge_progress *p);

typedef struct vkm_merge_params {
    vkm_merge_method method;
    char base[1024];          /* base_model; "" for none                                       */
    uint32_t n_models;
    vkm_merge_model models[VKM_MERGE_MAX_MODELS];
    double weight, density, gamma; /* defaults for every model (NAN: unset)                    */
    double lambda;            /* task vectors: scale of the mixed delta (NAN: 1)               */
    double t;                 /* slerp: required                                                */
    int normalize;            /* -1: the method's default, else 0 / 1                           */
    int rescale;              /* DARE: divide kept values by density; -1: default (true)        */
    uint64_t seed;            /* DARE masks                                                     */
    int out_dtype;            /* VKM_WEIGHTS_AUTO: each tensor keeps the type it has in the base
                                 (else the first) model, quantized ones become F16; or VKM_F32,
                                 VKM_F16, VKM_BF16 for every matrix (GGUF keeps vectors F32)    */
    uint64_t chunk_bytes;     /* input bytes per chunk; 0: 64 MiB or the storage range (tests) */
    uint64_t device_bytes;    /* device memory for the input chunks; 0: a default              */
    bool copy_inputs;         /* copy the inputs into device memory even where the device can
                               * read the files' maps in place (benchmarks, tests)            */
    vkm_merge_progress_fn progress;
    void *progress_user;
} vkm_merge_params;

/* method linear, no models, every parameter unset, normalize/rescale -1, seed 0, auto dtype. */
vkm_merge_params vkm_merge_default_params(void);

/* Reads a mergekit YAML config (mergekit-yaml's format): merge_method, base_model, models[].model,
 * models[].parameters.{weight, density, gamma}, parameters.{weight, density, gamma, lambda,
 * normalize, rescale, t, int8_mask (accepted, no effect: masks are never materialised)}, dtype /
 * out_dtype (float32, float16, bfloat16), and vkmoe's random_seed. Model paths are files or
 * folders relative to the config's folder. Refused with a message naming the key and line:
 * unknown keys and methods, slices, per-tensor parameter lists (filters / gradients), model
 * strings with '+' (a LoRA applied on the fly), tokenizer_source other than base. On failure
 * msg (cap bytes) says why; *out is left with defaults. VKM_ERR_IO, VKM_ERR_FORMAT,
 * VKM_ERR_UNSUPPORTED, VKM_ERR_LIMIT (too many models, a path too long). */
vkm_status vkm_merge_config_load(const char *path, vkm_merge_params *out, char *msg, size_t cap);

/* Runs a merge into out_path (see the top of this section for formats). Failures are described
 * by vkm_context_errmsg(ctx): VKM_ERR_INVALID_ARGUMENT (a missing or meaningless parameter, the
 * output equal to an input), VKM_ERR_MISMATCH (architectures, shapes, tensor sets), VKM_ERR_IO,
 * VKM_ERR_FORMAT, VKM_ERR_UNSUPPORTED, VKM_ERR_CANCELLED, device errors. */
vkm_status vkm_merge(vkm_context *ctx, const vkm_merge_params *p, const char *out_path);

/* Writes a GGUF llama model of the given shape with seeded random weights, tensor by tensor
 * (merge benchmarks and tests): every value is base(seed) + noise * perturbation(noise_seed), so
 * files with one seed and different noise seeds are perturbed copies of one model. Matrices are
 * stored as dtype (VKM_F32, VKM_F16 or VKM_BF16), norms as F32; no tokenizer. On failure msg
 * (cap bytes) says why. VKM_ERR_INVALID_ARGUMENT, VKM_ERR_IO, VKM_ERR_OUT_OF_HOST_MEMORY. */
vkm_status vkm_model_write_random(const char *path, const vkm_model_shape *shape, vkm_dtype dtype,
                                  uint64_t seed, float noise, uint64_t noise_seed, char *msg, size_t cap);
/* Writes a llama.cpp GGUF LoRA adapter of rank `rank` (lora_alpha alpha) with seeded random F32
 * values for all seven matrices of every layer of the shape (bank benchmarks). */
vkm_status vkm_lora_write_random(const char *path, const vkm_model_shape *shape, uint32_t rank, float alpha,
                                 uint64_t seed, char *msg, size_t cap);

#ifdef __cplusplus
}
#endif
#endif /* VKMOE_H */
