/*
 * internal.h — the engine's internal interfaces: device (instance, device, capabilities),
 * memory (buffers, arenas, chunked tensors, staging), pipelines (embedded SPIR-V, reflection,
 * specialization, pipeline cache, descriptor cache), recording (dispatch + barrier tracking,
 * timestamps) and submission. Everything here is single-threaded per vkm_dev.
 */
#ifndef VKM_INTERNAL_H
#define VKM_INTERNAL_H

#include <vulkan/vulkan.h>

#include "base.h"
#include "vkm_spv_registry.h"
#include "vkmoe.h"

/* ------------------------------------------------------------------------------------------ */
/* device.c                                                                                    */
/* ------------------------------------------------------------------------------------------ */
typedef struct vkm_kernel vkm_kernel;     /* pipeline.c: one SPIR-V variant, reflected        */
typedef struct vkm_pipe vkm_pipe;         /* pipeline.c: a kernel with its spec constants     */
typedef struct vkm_dcache vkm_dcache;     /* pipeline.c: descriptor set cache                 */

typedef struct vkm_dev {
    vkm_err *err;                 /* where failures are described (the context's)           */
    VkInstance instance;
    VkDebugUtilsMessengerEXT messenger;
    PFN_vkDestroyDebugUtilsMessengerEXT destroy_messenger;
    VkPhysicalDevice phys;
    VkDevice device;
    VkQueue queue;
    uint32_t queue_family;
    vkm_device_caps caps;
    uint32_t mem_device;          /* memory type for weights, activations, KV cache         */
    uint32_t mem_upload;          /* host-visible, coherent: staging for uploads            */
    uint32_t mem_readback;        /* host-visible, preferably cached: downloads             */
    bool device_mappable;         /* mem_device is host-visible: write weights directly     */
    bool cpu_tuning;              /* a CPU device tuned as one (not params.tune_as_gpu)      */
    /* VK_EXT_external_memory_host enabled: host memory (a file's map) imported as a buffer
     * (vkm_buf_import); 0 when not, else minImportedHostPointerAlignment */
    uint64_t host_import_align;
    uint32_t max_stage_storage;   /* maxPerStageDescriptorStorageBuffers                    */
    PFN_vkGetMemoryHostPointerPropertiesEXT get_host_ptr_props;
    /* the float f16 conversions (unpackHalf2x16; merge.glsl's encoder) against the host's on
     * every half and the rounding cases (vkm_dev_probe_f16, merge_stream.c): 0 not probed yet */
    uint8_t f16_probe;            /* VKM_F16_PROBE_* bits once probed                        */
    /* diagnostics */
    vkm_log_fn log;
    void *log_user;
    volatile uint64_t validation_count;
    bool validation;
    /* pipelines */
    VkPipelineCache pcache;
    char pcache_path[1024];
    bool pcache_loaded;           /* a saved cache was found valid and handed to the driver */
    vkm_kernel *kernels[VKM_SPV_COUNT];
    vkm_dcache *dcache;
    /* submission */
    VkCommandPool cmd_pool;
    VkCommandBuffer once_cmd;
    VkFence fence;
    /* staging for uploads and downloads (memory.c), created on first use */
    struct vkm_buf *stage_up, *stage_down;
} vkm_dev;

/* Fills e (and returns the status) for a failed Vulkan call. */
vkm_status vkm_vk_fail(vkm_dev *d, VkResult r, const char *what);
const char *vkm_vk_result_str(VkResult r);
#define VKM_VK(d, call)                                                                      \
    do {                                                                                     \
        VkResult vkm_r_ = (call);                                                            \
        if (vkm_r_ != VK_SUCCESS) return vkm_vk_fail((d), vkm_r_, #call);                    \
    } while (0)

#define VKM_F16_PROBED 1u
#define VKM_F16_DECODE_EXACT 2u /* unpackHalf2x16 gives every half exactly                   */
#define VKM_F16_ENCODE_EXACT 4u /* the merge kernels' f16 encoder (merge.glsl) rounds as the  */
                                /* host does (ties, subnormals, overflow, NaN)               */
/* Probes the f16 conversions once per device (a few small dispatches); the result stays in
 * d->f16_probe. Weight kernels read f16 through unpackHalf2x16 where decoding is exact (several
 * times cheaper than integer decoding on CPU devices). */
vkm_status vkm_dev_probe_f16(vkm_dev *d);

vkm_status vkm_dev_create(vkm_dev *d, const vkm_context_params *p);
void vkm_dev_destroy(vkm_dev *d);
/* Reads the capabilities of a physical device (also used without a device). */
void vkm_dev_read_caps(VkInstance inst, VkPhysicalDevice pd, vkm_device_caps *c);

/* ------------------------------------------------------------------------------------------ */
/* memory.c                                                                                    */
/* ------------------------------------------------------------------------------------------ */
typedef enum vkm_mem_kind {
    VKM_MEM_DEVICE = 0,   /* device-local (mapped too on unified memory)                      */
    VKM_MEM_UPLOAD = 1,   /* host-visible coherent, host writes                               */
    VKM_MEM_READBACK = 2, /* host-visible, host reads                                         */
} vkm_mem_kind;

typedef struct vkm_buf {
    VkBuffer buf;
    VkDeviceMemory mem;
    uint64_t size;
    void *map;            /* persistently mapped when host-visible, else NULL                */
    vkm_mem_kind kind;
} vkm_buf;

vkm_status vkm_buf_create(vkm_dev *d, uint64_t size, vkm_mem_kind kind, vkm_buf *b);
/* A buffer over `size` bytes of host memory at p (both multiples of d->host_import_align), read
 * in place by the device: VK_EXT_external_memory_host. The memory must stay mapped until the
 * buffer is destroyed. VKM_ERR_UNSUPPORTED where the device cannot import it (the caller copies
 * instead). */
vkm_status vkm_buf_import(vkm_dev *d, const void *p, uint64_t size, vkm_buf *b);
void vkm_buf_destroy(vkm_dev *d, vkm_buf *b);

/* A bindable range of a buffer: size <= maxStorageBufferRange, offset aligned. */
typedef struct vkm_range {
    VkBuffer buf;
    uint64_t off, size;
    void *map;            /* host pointer to off when the buffer is mapped, else NULL        */
} vkm_range;

static inline vkm_range vkm_range_sub(vkm_range r, uint64_t off, uint64_t size)
{
    vkm_range s = {r.buf, r.off + off, size, r.map ? (char *)r.map + off : NULL};
    return s;
}

/* An arena: large buffers handed out by bump allocation, freed all together. */
typedef struct vkm_arena {
    vkm_dev *dev;
    vkm_mem_kind kind;
    uint64_t block_size;  /* default size of a new block                                       */
    vkm_buf *blocks;
    uint32_t n_blocks, cap_blocks;
    uint64_t used;        /* bytes used in the last block                                     */
    uint64_t total;       /* bytes handed out                                                 */
} vkm_arena;

void vkm_arena_init(vkm_arena *a, vkm_dev *d, vkm_mem_kind kind, uint64_t block_size);
/* A range of `size` bytes aligned to max(align, storage alignment); size must be <=
 * maxStorageBufferRange (chunk larger things with vkm_tensor_*). */
vkm_status vkm_arena_alloc(vkm_arena *a, uint64_t size, uint64_t align, vkm_range *out);
void vkm_arena_destroy(vkm_arena *a);

/* Device layout of a weight matrix W[rows][cols] (or any 2-D tensor), split into row chunks
 * that each fit in one bindable range. Rows are padded to a multiple of VKM_ROW_PAD elements
 * for f32/f16; quantized chunks hold [rows][cols] quants then [rows][cols/32] f16 scales. */
#define VKM_ROW_PAD 8
#define VKM_MAX_CHUNKS 64

typedef struct vkm_chunk {
    vkm_range r;
    uint32_t row0, rows;
    uint32_t scale_off_words; /* quantized: word offset of the scales inside r              */
} vkm_chunk;

typedef struct vkm_tensor {
    vkm_dtype dtype;          /* device dtype: F32, F16, Q8_0, Q4_0                           */
    uint32_t rows, cols;
    uint32_t row_stride;      /* elements (f32/f16) or bytes of quants (q8_0: cols, q4_0: cols/2) */
    uint32_t n_chunks;
    vkm_chunk chunks[VKM_MAX_CHUNKS];
    uint64_t bytes;           /* device bytes, the bandwidth-relevant size                   */
} vkm_tensor;

/* Plans and allocates a rows x cols tensor of dtype t from the arena, chunked so every chunk
 * binds within maxStorageBufferRange (max_chunk_bytes: 0 = the device limit; tests use less). */
vkm_status vkm_tensor_alloc(vkm_arena *a, vkm_dtype t, uint32_t rows, uint32_t cols,
                            uint64_t max_chunk_bytes, vkm_tensor *out);
/* Uploads host data: src rows of `src_dtype` (any loader dtype), converted to the tensor's
 * device dtype and layout. row_map (may be NULL) gives the source row of each device row. */
vkm_status vkm_tensor_upload(vkm_dev *d, vkm_tensor *t, vkm_dtype src_dtype, const void *src,
                             const uint32_t *row_map);

/* Staged transfers between host memory and a device range (any size; chunked internally). */
vkm_status vkm_upload(vkm_dev *d, vkm_range dst, const void *src, uint64_t bytes);
vkm_status vkm_download(vkm_dev *d, vkm_range src, void *dst, uint64_t bytes);

/* ------------------------------------------------------------------------------------------ */
/* pipeline.c                                                                                  */
/* ------------------------------------------------------------------------------------------ */
#define VKM_MAX_BINDINGS 12
#define VKM_MAX_SPEC 8

typedef enum vkm_access_bits {
    VKM_ACC_READ = 1,
    VKM_ACC_WRITE = 2,
} vkm_access_bits;

struct vkm_kernel {
    vkm_spv_id id;
    const char *name;
    VkShaderModule module;
    uint32_t n_bindings;
    uint8_t access[VKM_MAX_BINDINGS]; /* from NonWritable / NonReadable decorations          */
    uint32_t push_bytes;              /* size of the push-constant block (0: none)           */
    uint32_t spec_ids;                /* bit mask of specialization constant ids used        */
    VkDescriptorSetLayout set_layout;
    VkPipelineLayout layout;
    vkm_pipe *pipes;                  /* specialised pipelines, a list                       */
};

struct vkm_pipe {
    vkm_kernel *k;
    uint32_t spec[VKM_MAX_SPEC];      /* value of constant_id i                              */
    uint32_t n_spec;
    uint32_t wg_size;                 /* local_size_x (spec constant 0)                      */
    uint32_t sg_size;                 /* required subgroup size, 0 = any                     */
    VkPipeline pipeline;
    vkm_pipe *next;
};

/* The pipeline of kernel `id` specialised with spec[0..n_spec) (constant_id i = spec[i]).
 * Convention: constant 0 is the workgroup size (local_size_x_id = 0), constant 1 the
 * subgroup size the kernel may assume. Created on first use, then cached. */
vkm_status vkm_pipe_get(vkm_dev *d, vkm_spv_id id, const uint32_t *spec, uint32_t n_spec,
                        vkm_pipe **out);
/* Loads the kernel's module and reflection (also for tests of the registry). */
vkm_status vkm_kernel_get(vkm_dev *d, vkm_spv_id id, vkm_kernel **out);
/* Looks a variant up by name ("matvec_f16"); VKM_SPV_COUNT if absent. */
vkm_spv_id vkm_spv_find(const char *name);
void vkm_pipelines_destroy(vkm_dev *d);
vkm_status vkm_pcache_open(vkm_dev *d, const char *dir);
vkm_status vkm_pcache_save(vkm_dev *d);

/* A descriptor set for (kernel, bindings), reused across steps (allocates only when a new
 * combination of buffers is seen). */
vkm_status vkm_dcache_get(vkm_dev *d, vkm_kernel *k, const vkm_range *binds, VkDescriptorSet *out);
/* Starts over when the cache has grown huge; only between recordings (no set in use). */
void vkm_dcache_trim(vkm_dev *d);
/* Descriptor sets allocated so far (tests: steady state allocates none). */
uint32_t vkm_dcache_count(const vkm_dev *d);
/* Drops the sets that bind buf (vkm_buf_destroy calls it): a later buffer may get the same
 * handle value, and must not be given a set that points at the destroyed one. */
void vkm_dcache_forget(vkm_dev *d, VkBuffer buf);
void vkm_dcache_destroy(vkm_dev *d);

/* ------------------------------------------------------------------------------------------ */
/* record.c                                                                                    */
/* ------------------------------------------------------------------------------------------ */
typedef struct vkm_acc_span {
    VkBuffer buf;
    uint64_t off, end;
    uint8_t access;
} vkm_acc_span;

#define VKM_MAX_TIMESTAMPS 4096

typedef struct vkm_rec {
    vkm_dev *dev;
    VkCommandBuffer cmd;
    vkm_acc_span *spans;      /* accesses since the last barrier                              */
    uint32_t n_spans, cap_spans;
    bool track;               /* false: insert no barriers (tests prove the hazard)           */
    uint32_t n_dispatches, n_barriers;
    VkQueryPool queries;
    uint32_t n_ts;
    const char *ts_label[VKM_MAX_TIMESTAMPS];
    uint64_t ts_bytes[VKM_MAX_TIMESTAMPS];
    bool profile;             /* a timestamp after every dispatch, labelled with its kernel   */
    uint64_t note_bytes;      /* bytes the next dispatch moves (vkm_rec_note_bytes)           */
    vkm_status status;        /* first failure while recording                                */
} vkm_rec;

vkm_status vkm_rec_init(vkm_rec *r, vkm_dev *d, bool timestamps);
void vkm_rec_destroy(vkm_rec *r);
/* Starts recording into a fresh command buffer from the device pool. */
vkm_status vkm_rec_begin(vkm_rec *r, VkCommandBuffer cmd);
vkm_status vkm_rec_end(vkm_rec *r);
/* Binds, pushes and dispatches groups (gx, gy, gz), inserting a compute barrier first if a
 * binding reads what was written since the last barrier or writes what was touched since. */
void vkm_rec_dispatch(vkm_rec *r, vkm_pipe *p, const vkm_range *binds, uint32_t n_binds,
                      const void *push, uint32_t push_bytes, uint32_t gx, uint32_t gy,
                      uint32_t gz);
/* Dispatches n workgroups in 1-D, folded into (x, y) when n exceeds the x limit; the kernel
 * computes its group index as vkm_group_id() (common/types.glsl). */
void vkm_rec_dispatch_n(vkm_rec *r, vkm_pipe *p, const vkm_range *binds, uint32_t n_binds,
                        const void *push, uint32_t push_bytes, uint64_t n_groups);
/* The same, gz times over (workgroup z: an index the kernel reads from gl_WorkGroupID.z). */
void vkm_rec_dispatch_nz(vkm_rec *r, vkm_pipe *p, const vkm_range *binds, uint32_t n_binds,
                         const void *push, uint32_t push_bytes, uint64_t n_groups, uint32_t gz);
void vkm_rec_copy(vkm_rec *r, vkm_range src, vkm_range dst, uint64_t bytes);
void vkm_rec_fill(vkm_rec *r, vkm_range dst, uint32_t value);
/* Writes bytes (<= 65536, a multiple of 4) from host memory into dst inside the command buffer. */
void vkm_rec_update(vkm_rec *r, vkm_range dst, const void *data, uint32_t bytes);
/* A full compute/transfer barrier now (the recorder inserts these itself when needed). */
void vkm_rec_barrier(vkm_rec *r);
/* A timestamp (no-op without timestamp support); label must outlive the recorder's use. */
void vkm_rec_timestamp(vkm_rec *r, const char *label);
/* Bytes the next dispatch must move (weights, inputs, outputs), for profiles. */
static inline void vkm_rec_note_bytes(vkm_rec *r, uint64_t bytes) { r->note_bytes = bytes; }

/* A kernel's share of a profiled submission. */
typedef struct vkm_prof_entry {
    const char *name;
    uint32_t calls;
    double ns;
    double bytes;
} vkm_prof_entry;
/* After a profiled submission: per kernel name, calls, time and bytes, added into e[0..*n)
 * (up to cap entries). */
vkm_status vkm_rec_profile(vkm_rec *r, vkm_prof_entry *e, uint32_t cap, uint32_t *n);

/* After the submission finished: nanoseconds between timestamps i and i+1 ... */
vkm_status vkm_rec_read_timestamps(vkm_rec *r, double *ns, uint32_t max);

/* ------------------------------------------------------------------------------------------ */
/* submit (device.c)                                                                           */
/* ------------------------------------------------------------------------------------------ */
/* A one-shot command buffer: begin, record, then vkm_dev_submit_once waits for it. */
vkm_status vkm_dev_begin_once(vkm_dev *d, VkCommandBuffer *cmd);
vkm_status vkm_dev_submit_once(vkm_dev *d);
/* Submits a recorded command buffer and waits for it. */
vkm_status vkm_dev_submit_wait(vkm_dev *d, VkCommandBuffer cmd);
vkm_status vkm_dev_alloc_cmd(vkm_dev *d, VkCommandBuffer *cmd);

/* ------------------------------------------------------------------------------------------ */
/* The public context                                                                          */
/* ------------------------------------------------------------------------------------------ */
struct vkm_context {
    vkm_err err;
    vkm_dev dev;
    bool dev_ok;
};

/* Workgroup size for a reduction kernel: the subgroup size times k, capped by the device. */
uint32_t vkm_wg_size(const vkm_dev *d, uint32_t k);

#endif /* VKM_INTERNAL_H */
