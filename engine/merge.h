/*
 * merge.h — the merging module's internal interfaces:
 *   - the at-load LoRA merge the manifest runtime calls (vkm_merge_lora_apply): W += sum of
 *     weighted LoRA deltas, in place on a device weight tensor of any layout;
 *   - the kernels' host wrappers (merge_ops.c);
 *   - the plan (merge_plan.c): a validated vkm_merge_params turned into what each tensor's
 *     kernels need (inputs, operation, parameter block, selection slots, reductions);
 *   - the streamer (merge_stream.c): one tensor's inputs through the device in chunks;
 *   - the output files (merge_out.c) and the LoRA merges (merge_lora.c, merge_adapter.c).
 * Single-threaded, like the device it uses.
 */
#ifndef VKM_MERGE_H
#define VKM_MERGE_H

#include "loader.h"
#include "merge_push.h"
#include "ops.h"

/* ------------------------------------------------------------------------------------------ */
/* At-load LoRA merge (merge_lora.c)                                                           */
/* ------------------------------------------------------------------------------------------ */
/* One LoRA term of a weight W[rows][cols]: coef * B A, with A f32 [rank][cols] and B f32
 * [rows_b][rank] (row-major, tightly packed) in device ranges. Row r of W takes row
 * b_row_map[r] of B (NULL: row r), e.g. the q/k permutation between a PEFT adapter and a GGUF
 * base (vkm_rope_row_map). coef is the caller's w_e * s_e (s_e = alpha / r). */
typedef struct vkm_merge_lora_term {
    vkm_range a, b;
    uint32_t rank;
    uint32_t rows_b;          /* rows of B (the largest row map entry + 1)                    */
    float coef;
    const uint32_t *b_row_map;/* host array of w->rows entries, or NULL                       */
} vkm_merge_lora_term;

/* W += sum_e coef_e * B_e A_e, in place, on the device, for a weight tensor of any device type:
 * F32 and F16 are updated element-wise (F16 rounded to nearest even); Q8_0 and Q4_0 blocks are
 * dequantized, added to and requantized with llama.cpp's reference rounding. Each element's
 * delta is summed term by term in the given order (k ascending inside a term), without fused
 * multiply-adds, so tests/ref/ref_merge.c reproduces it bit for bit (the requantization then
 * matches vkm_quantize_q8_0 / _q4_0 exactly on devices with correctly rounded f32 division,
 * lavapipe among them). The terms' A and B and the row maps are packed into a scratch buffer;
 * the function records, submits and waits (a load-time operation). All terms must have cols
 * == w->cols. VKM_ERR_INVALID_ARGUMENT (shapes, a range too small), device errors. */
vkm_status vkm_merge_lora_apply(vkm_dev *d, vkm_tensor *w, const vkm_merge_lora_term *terms,
                                uint32_t n_terms);
/* Downloads a device tensor into dst as file rows (GGUF / safetensors layout) of `file` type: the
 * tensor's own type (F32, F16; Q8_0 / Q4_0 as llama.cpp blocks), or BF16 from an F32 tensor. */
vkm_status vkm_merge_tensor_download(vkm_dev *d, const vkm_tensor *t, vkm_dtype file, uint8_t *dst);

/* The lora_* methods of vkm_merge (merge_adapter.c), lora_bake among them (merge_lora.c). */
vkm_status vkm_merge_lora_run(vkm_context *ctx, const vkm_merge_params *p, const char *out_path);
vkm_status vkm_merge_bake(vkm_context *ctx, const vkm_merge_params *p, const char *out_path);

/* ------------------------------------------------------------------------------------------ */
/* Kernel wrappers (merge_ops.c)                                                               */
/* ------------------------------------------------------------------------------------------ */
typedef enum vkm_mop { VKM_MOP_LINEAR = 0, VKM_MOP_TASK = 1 } vkm_mop;

enum {
    VKM_MFLAG_SELECT = 1,     /* magnitude sparsification through selection slots               */
    VKM_MFLAG_RANDOM = 2,     /* DARE masks                                                      */
    VKM_MFLAG_CONSENSUS = 4,  /* TIES sign election by sum                                       */
    VKM_MFLAG_NORMALIZE = 8,
};

#define VKM_MDT_F32 0u        /* input / output element types of the merge kernels              */
#define VKM_MDT_F16 1u
#define VKM_MDT_BF16 2u
#define VKM_MNONE 0xffffffffu

/* The parameter block of merge.comp: input j at 8 j (weight, DARE threshold, DARE key x2,
 * rescale divisor, top slot, excluded slot), globals at VKM_MPARAM_G (scale, -, c_base,
 * lambda). */
#define VKM_MPARAM_G 128
#define VKM_MPARAM_WORDS 132
#define VKM_MSLOT_WORDS 16    /* a selection slot's state record (select.comp)                  */
#define VKM_MAX_SLOTS (2 * VKM_MERGE_MAX_IN)
#define VKM_SELECT_PASSES 8
#define VKM_REDUCE_MAXV 8     /* vectors merge_reduce.comp handles                              */

/* What one dispatch of a merge kernel reads: a slab holding n elements of each input at the
 * word offsets off[j], with element types dt[j]; with `split` (vkm_mop_combine only, at most
 * VKM_MSPLIT_MAX inputs) input j is read from its own range in[j] instead, at word off[j] (e.g.
 * a window of its file's map imported as device memory; others may still be the slab). */
#define VKM_MSPLIT_MAX 8
typedef struct vkm_mslab {
    vkm_range r;
    bool split;
    vkm_range in[VKM_MSPLIT_MAX];
    uint32_t n_in;
    uint32_t off[VKM_MERGE_MAX_IN];
    uint32_t dt[VKM_MERGE_MAX_IN];
    uint32_t n;               /* elements in this chunk                                         */
    uint32_t elem0;           /* index of its first element in the tensor                       */
    bool hw_f16;              /* the device's f16 conversions are exact (merge.glsl HW_F16)     */
} vkm_mslab;

/* Whether the merge kernels may use the float f16 conversions (hw_f16): the probe found both
 * exact (vkm_dev_probe_f16 run). */
static inline bool vkm_merge_hw_f16(const vkm_dev *d)
{
    return (d->f16_probe & (VKM_F16_DECODE_EXACT | VKM_F16_ENCODE_EXACT)) ==
           (VKM_F16_DECODE_EXACT | VKM_F16_ENCODE_EXACT);
}

/* out = the op over the slab's elements (merge.comp), written as odt. */
void vkm_mop_combine(vkm_rec *r, const vkm_mslab *s, vkm_mop op, uint32_t base, uint32_t flags,
                     uint32_t odt, vkm_range out, vkm_range params, vkm_range state);
/* Partial Gram sums of the slab's vectors (inputs, or deltas to `base` when base < n_in) into
 * part[part_off ..): vkm_mop_reduce_groups() workgroups of pairs(M) floats each. */
void vkm_mop_reduce(vkm_rec *r, const vkm_mslab *s, uint32_t base, vkm_range part,
                    uint32_t part_off);
uint32_t vkm_mop_reduce_groups(const vkm_dev *d, uint32_t n);
/* One radix-selection pass over the slab for slots [slot0, slot0 + n_slots) (select.comp). */
void vkm_mop_select_hist(vkm_rec *r, const vkm_mslab *s, uint32_t pass, uint32_t slot0,
                         uint32_t n_slots, vkm_range hist, vkm_range state);
void vkm_mop_select_pick(vkm_rec *r, uint32_t pass, uint32_t n_slots, vkm_range hist,
                         vkm_range state);
/* The bracket pass over the slab for the pending slots of [slot0, slot0 + n_slots): counts
 * above the bracket and gathers the keys inside it (cand: cap keys per slot; cnt: two words
 * per slot). A radix pass over the gathered keys of slots [slot0, slot0 + n_slots), the
 * longest list holding at most `most`. */
void vkm_mop_select_bracket(vkm_rec *r, const vkm_mslab *s, uint32_t slot0, uint32_t n_slots,
                            vkm_range cand, uint32_t cap, vkm_range cnt, vkm_range state);
void vkm_mop_select_cand(vkm_rec *r, uint32_t pass, uint32_t slot0, uint32_t n_slots, uint32_t most,
                         vkm_range cand, uint32_t cap, vkm_range hist, vkm_range state);
/* W chunk += LoRA terms packed in `pack` (lora_merge.comp; see vkm_merge_lora_apply). */
void vkm_mop_lora(vkm_rec *r, const vkm_tensor *w, uint32_t n_terms, vkm_range pack);

/* ------------------------------------------------------------------------------------------ */
/* The plan (merge_plan.c)                                                                     */
/* ------------------------------------------------------------------------------------------ */
typedef enum vkm_mreduce {
    VKM_MRED_NONE = 0,
    VKM_MRED_INPUTS,          /* slerp: Gram of the two inputs                                   */
    VKM_MRED_DELTAS,          /* model_stock: Gram of the task vectors                           */
} vkm_mreduce;

/* A validated model merge: its inputs in kernel order and every parameter resolved. */
typedef struct vkm_mplan {
    vkm_merge_method method;
    uint32_t n_in;            /* inputs read by the kernels                                      */
    uint32_t base;            /* index of the base among them; n_in: none (linear, slerp)        */
    const char *path[VKM_MERGE_MAX_IN]; /* into the params                                     */
    double weight[VKM_MERGE_MAX_IN], density[VKM_MERGE_MAX_IN], gamma[VKM_MERGE_MAX_IN];
    double lambda, t;
    bool normalize, rescale;
    uint64_t seed;
    vkm_mop op;
    uint32_t flags;
    bool outliers;            /* breadcrumbs: the selection drops the largest too               */
    vkm_mreduce reduce;
} vkm_mplan;

/* The per-tensor work of a plan: kernel parameters and selection slots. */
typedef struct vkm_mtask {
    uint32_t params[VKM_MPARAM_WORDS];
    uint32_t n_slots;
    uint32_t slot_input[VKM_MAX_SLOTS];
    uint32_t slot_k[VKM_MAX_SLOTS];   /* rank wanted: the k largest (0: none, n: all)        */
} vkm_mtask;

/* Resolves and checks the params of a model merge (not the lora_* methods); messages name the
 * parameter. VKM_ERR_INVALID_ARGUMENT. */
vkm_status vkm_mplan_init(vkm_mplan *pl, const vkm_merge_params *p, vkm_err *e);
/* Fills t for a tensor (internal name, n elements): weights, DARE thresholds and keys (seeded by
 * the seed, the name and the input index), selection slots and their ranks. */
void vkm_mplan_task(const vkm_mplan *pl, const char *name, uint64_t n, vkm_mtask *t);
/* Slerp / model_stock: the coefficients from the Gram sums (pairs (a, b), a <= b, row-major). */
void vkm_mplan_coef(const vkm_mplan *pl, vkm_mtask *t, const double *gram);
/* The DARE key of input j for a tensor, and the keep threshold for a density. */
void vkm_merge_dare_key(uint64_t seed, const char *name, uint32_t j, uint32_t key[2]);
uint32_t vkm_merge_dare_threshold(double density);
/* The parameters as one line of text for the output's metadata. */
void vkm_mplan_describe(const vkm_mplan *pl, char *buf, size_t cap);

/* ------------------------------------------------------------------------------------------ */
/* The streamer (merge_stream.c)                                                               */
/* ------------------------------------------------------------------------------------------ */
/* One input of a tensor: its data in the memory map, type, and the source row of each output
 * row (NULL: the same row; q/k rows of a model in the other RoPE layout). */
typedef struct vkm_msrc {
    const uint8_t *data;
    const vkm_map *map;       /* data's file, read with vkm_map_read where it is copied (or NULL) */
    vkm_dtype dtype;          /* F32, F16, BF16 go to the device as stored, others as F32       */
    const uint32_t *row_map;
} vkm_msrc;

/* One output tensor: rows x cols elements (vectors: rows 1), written as out (F32, F16, BF16). */
typedef struct vkm_mtensor {
    const char *name;
    uint32_t rows, cols;
    vkm_dtype out;
    vkm_msrc src[VKM_MERGE_MAX_IN];
} vkm_mtensor;

/* Receives the output bytes, in tensor order, in pieces. */
typedef vkm_status (*vkm_msink_fn)(void *user, const void *data, uint64_t bytes);

typedef struct vkm_mstream vkm_mstream;

/* A streamer for n_in inputs: chunk_bytes of inputs per chunk (0: 64 MiB or the storage range),
 * device_bytes for resident chunks (0: a default). */
vkm_status vkm_mstream_create(vkm_dev *d, uint32_t n_in, uint64_t chunk_bytes,
                              uint64_t device_bytes, vkm_msink_fn sink, void *sink_user,
                              vkm_mstream **out);
/* Merges one tensor: its output goes to the sink, possibly after this returns (chunks are in
 * flight); vkm_mstream_flush waits for all of it. */
vkm_status vkm_mstream_tensor(vkm_mstream *ms, const vkm_mplan *pl, const vkm_mtensor *t);
vkm_status vkm_mstream_flush(vkm_mstream *ms);
/* Selection thresholds of the last tensor's slots (tests): state records, VKM_MSLOT_WORDS each
 * (word 8: 1 when the threshold came from the keys gathered inside a sampled bracket). */
const uint32_t *vkm_mstream_slots(vkm_mstream *ms);
/* How thresholds are found (tests): a sampled bracket first where it pays (the default),
 * never, with the first slot's bracket holding nothing (so its search goes back to the tensor
 * while the other slots narrow over their candidates), or with candidate lists of 4096 keys (a
 * plateau of equal magnitudes overflows them: its slots search the tensor's index bits). */
enum { VKM_BRACKET_AUTO, VKM_BRACKET_OFF, VKM_BRACKET_MISS, VKM_BRACKET_SMALL };
void vkm_mstream_set_bracket(vkm_mstream *ms, int how);
/* Whether chunks of plain element-wise tensors are read in place from the inputs' maps where
 * the device can import them (on by default where it can: unified memory, at most
 * VKM_MSPLIT_MAX inputs, VK_EXT_external_memory_host), rather than copied into the slabs. The
 * number of input chunks read in place so far (tests). */
void vkm_mstream_set_import(vkm_mstream *ms, bool on);
/* Releases the pages of [p, p + n) of an input's map from the process (MADV_DONTNEED: not from
 * the page cache) once the chunks in flight, which may read them in place, are done. */
void vkm_mstream_release(vkm_mstream *ms, const void *p, uint64_t n);
uint64_t vkm_mstream_imported(const vkm_mstream *ms);
/* Whether inputs may still be read in place (the maps' pages are then worth populating). */
bool vkm_mstream_importing(const vkm_mstream *ms);
/* Whether the kernels use the device's f16 conversions (found exact by a probe at creation). */
bool vkm_mstream_hw_f16(const vkm_mstream *ms);
/* madvise over the pages of [p, p + n): `outward` covers every page the range touches, else
 * only the pages wholly inside it (for advice that must not reach a neighbour's data). Advice
 * the kernel does not know (MADV_POPULATE_* before Linux 5.14) is a no-op. */
void vkm_madvise_pages(const void *p, uint64_t n, int advice, bool outward);
void vkm_mstream_destroy(vkm_mstream *ms);

#endif
