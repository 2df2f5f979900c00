/*
 * memory.c — device memory: buffers, arenas (bump allocation in large blocks), chunked weight
 * tensors (every bound range within maxStorageBufferRange and aligned), conversion of host
 * tensors into the device layouts, and staged uploads / downloads.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define STAGE_BYTES (32ull << 20)

/* ---- buffers --------------------------------------------------------------------------------- */
vkm_status vkm_buf_create(vkm_dev *d, uint64_t size, vkm_mem_kind kind, vkm_buf *b)
{
    memset(b, 0, sizeof *b);
    if (size == 0) size = 16;
    if (d->caps.max_alloc && size > d->caps.max_alloc)
        return vkm_fail(d->err, VKM_ERR_LIMIT, "a buffer of %llu bytes exceeds the device's "
                        "maxMemoryAllocationSize (%llu)", (unsigned long long)size,
                        (unsigned long long)d->caps.max_alloc);
    VkBufferCreateInfo bci = {VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
    bci.size = size;
    bci.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                VK_BUFFER_USAGE_TRANSFER_DST_BIT;
    bci.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
    VKM_VK(d, vkCreateBuffer(d->device, &bci, NULL, &b->buf));
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(d->device, b->buf, &req);
    uint32_t type = kind == VKM_MEM_DEVICE ? d->mem_device
                  : kind == VKM_MEM_UPLOAD ? d->mem_upload : d->mem_readback;
    if (!(req.memoryTypeBits & (1u << type))) {
        vkDestroyBuffer(d->device, b->buf, NULL);
        b->buf = VK_NULL_HANDLE;
        return vkm_fail(d->err, VKM_ERR_UNSUPPORTED, "buffers cannot use memory type %u", type);
    }
    VkMemoryAllocateInfo mai = {VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
    mai.allocationSize = req.size;
    mai.memoryTypeIndex = type;
    VkResult r = vkAllocateMemory(d->device, &mai, NULL, &b->mem);
    if (r != VK_SUCCESS) {
        vkDestroyBuffer(d->device, b->buf, NULL);
        b->buf = VK_NULL_HANDLE;
        return vkm_vk_fail(d, r, "vkAllocateMemory");
    }
    VKM_VK(d, vkBindBufferMemory(d->device, b->buf, b->mem, 0));
    b->size = size;
    b->kind = kind;
    bool mappable = kind != VKM_MEM_DEVICE || d->device_mappable;
    if (mappable) VKM_VK(d, vkMapMemory(d->device, b->mem, 0, VK_WHOLE_SIZE, 0, &b->map));
    return VKM_OK;
}

vkm_status vkm_buf_import(vkm_dev *d, const void *p, uint64_t size, vkm_buf *b)
{
    memset(b, 0, sizeof *b);
    const uint64_t a = d->host_import_align;
    if (!a || !size || ((uintptr_t)p | size) & (a - 1) || (d->caps.max_alloc && size > d->caps.max_alloc))
        return VKM_ERR_UNSUPPORTED;
    const VkExternalMemoryHandleTypeFlagBits ht = VK_EXTERNAL_MEMORY_HANDLE_TYPE_HOST_ALLOCATION_BIT_EXT;
    VkMemoryHostPointerPropertiesEXT hpp = {VK_STRUCTURE_TYPE_MEMORY_HOST_POINTER_PROPERTIES_EXT};
    if (d->get_host_ptr_props(d->device, ht, p, &hpp) != VK_SUCCESS || !hpp.memoryTypeBits)
        return VKM_ERR_UNSUPPORTED;
    VkExternalMemoryBufferCreateInfo ebi = {VK_STRUCTURE_TYPE_EXTERNAL_MEMORY_BUFFER_CREATE_INFO};
    ebi.handleTypes = ht;
    VkBufferCreateInfo bci = {VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
    bci.pNext = &ebi;
    bci.size = size;
    bci.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT;
    bci.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
    if (vkCreateBuffer(d->device, &bci, NULL, &b->buf) != VK_SUCCESS) {
        b->buf = VK_NULL_HANDLE;
        return VKM_ERR_UNSUPPORTED;
    }
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(d->device, b->buf, &req);
    uint32_t bits = req.memoryTypeBits & hpp.memoryTypeBits, type = 0;
    while (bits && !(bits & (1u << type))) type++;
    VkImportMemoryHostPointerInfoEXT imp = {VK_STRUCTURE_TYPE_IMPORT_MEMORY_HOST_POINTER_INFO_EXT};
    imp.handleType = ht;
    imp.pHostPointer = (void *)p;
    VkMemoryAllocateInfo mai = {VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
    mai.pNext = &imp;
    mai.allocationSize = size;
    mai.memoryTypeIndex = type;
    VkDeviceMemory mem = VK_NULL_HANDLE;
    bool ok = bits && req.size <= size && vkAllocateMemory(d->device, &mai, NULL, &mem) == VK_SUCCESS;
    b->mem = ok ? mem : VK_NULL_HANDLE;
    if (!ok || vkBindBufferMemory(d->device, b->buf, b->mem, 0) != VK_SUCCESS) {
        vkm_buf_destroy(d, b);
        return VKM_ERR_UNSUPPORTED;
    }
    b->size = size;
    b->kind = VKM_MEM_UPLOAD;
    return VKM_OK;
}

void vkm_buf_destroy(vkm_dev *d, vkm_buf *b)
{
    if (!b || !d->device) return;
    if (b->map) vkUnmapMemory(d->device, b->mem);
    if (b->buf) vkm_dcache_forget(d, b->buf);
    if (b->buf) vkDestroyBuffer(d->device, b->buf, NULL);
    if (b->mem) vkFreeMemory(d->device, b->mem, NULL);
    memset(b, 0, sizeof *b);
}

/* ---- arenas ---------------------------------------------------------------------------------- */
void vkm_arena_init(vkm_arena *a, vkm_dev *d, vkm_mem_kind kind, uint64_t block_size)
{
    memset(a, 0, sizeof *a);
    a->dev = d;
    a->kind = kind;
    if (!block_size) block_size = 256ull << 20;
    if (d->caps.max_alloc && block_size > d->caps.max_alloc) block_size = d->caps.max_alloc;
    a->block_size = block_size;
}

vkm_status vkm_arena_alloc(vkm_arena *a, uint64_t size, uint64_t align, vkm_range *out)
{
    vkm_dev *d = a->dev;
    if (align < d->caps.storage_align) align = d->caps.storage_align;
    if (align < 16) align = 16;
    if (size == 0) size = 16;
    if (size > d->caps.max_storage_range)
        return vkm_fail(d->err, VKM_ERR_LIMIT, "a range of %llu bytes exceeds maxStorageBufferRange "
                        "(%llu): it must be chunked", (unsigned long long)size,
                        (unsigned long long)d->caps.max_storage_range);
    uint64_t off = a->n_blocks ? vkm_align_up(a->used, align) : 0;
    if (!a->n_blocks || off + size > a->blocks[a->n_blocks - 1].size) {
        if (a->n_blocks == a->cap_blocks) {
            uint32_t cap = a->cap_blocks ? 2 * a->cap_blocks : 8;
            vkm_buf *nb = realloc(a->blocks, cap * sizeof *nb);
            if (!nb) return vkm_fail(d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
            a->blocks = nb;
            a->cap_blocks = cap;
        }
        uint64_t bs = size > a->block_size ? size : a->block_size;
        vkm_status s = vkm_buf_create(d, bs, a->kind, &a->blocks[a->n_blocks]);
        if (s != VKM_OK) return s;
        a->n_blocks++;
        off = 0;
    }
    vkm_buf *b = &a->blocks[a->n_blocks - 1];
    out->buf = b->buf;
    out->off = off;
    out->size = size;
    out->map = b->map ? (char *)b->map + off : NULL;
    a->used = off + size;
    a->total += size;
    return VKM_OK;
}

void vkm_arena_destroy(vkm_arena *a)
{
    if (!a || !a->dev) return;
    for (uint32_t i = 0; i < a->n_blocks; i++) vkm_buf_destroy(a->dev, &a->blocks[i]);
    free(a->blocks);
    memset(a, 0, sizeof *a);
}

/* ---- chunked tensors ------------------------------------------------------------------------- */
static bool quantized(vkm_dtype t) { return t == VKM_Q8_0 || t == VKM_Q4_0; }

/* Bytes of one row of quants (or of elements for f32/f16) and of its scales. */
static void row_bytes(vkm_dtype t, uint32_t cols, uint32_t *qb, uint32_t *sb, uint32_t *stride)
{
    uint32_t padded = (uint32_t)vkm_align_up(cols, VKM_ROW_PAD);
    switch (t) {
    case VKM_F16: *stride = padded; *qb = padded * 2; *sb = 0; break;
    case VKM_Q8_0: *stride = cols; *qb = cols; *sb = cols / 32 * 2; break;
    case VKM_Q4_0: *stride = cols / 2; *qb = cols / 2; *sb = cols / 32 * 2; break;
    default: *stride = padded; *qb = padded * 4; *sb = 0; break;
    }
}

vkm_status vkm_tensor_alloc(vkm_arena *a, vkm_dtype t, uint32_t rows, uint32_t cols,
                            uint64_t max_chunk_bytes, vkm_tensor *out)
{
    vkm_dev *d = a->dev;
    memset(out, 0, sizeof *out);
    if (t != VKM_F32 && t != VKM_F16 && !quantized(t))
        return vkm_fail(d->err, VKM_ERR_UNSUPPORTED, "device tensors of type %s are not supported",
                        vkm_dtype_name(t));
    if (quantized(t) && cols % 32)
        return vkm_fail(d->err, VKM_ERR_INVALID_ARGUMENT, "%s rows need a multiple of 32 columns, "
                        "got %u", vkm_dtype_name(t), cols);
    if (!rows || !cols) return vkm_fail(d->err, VKM_ERR_INVALID_ARGUMENT, "empty tensor %ux%u", rows, cols);
    uint32_t qb, sb, stride;
    row_bytes(t, cols, &qb, &sb, &stride);
    uint64_t limit = d->caps.max_storage_range;
    if (max_chunk_bytes && max_chunk_bytes < limit) limit = max_chunk_bytes;
    /* rows per chunk: whole rows, a multiple of 16 rows so the scales region stays aligned */
    uint64_t per_row = (uint64_t)qb + sb + 1;
    uint64_t rpc = limit / per_row;
    if (rpc >= 16) rpc -= rpc % 16;
    if (rpc == 0)
        return vkm_fail(d->err, VKM_ERR_LIMIT, "one row of %u %s columns does not fit in a "
                        "storage range of %llu bytes", cols, vkm_dtype_name(t),
                        (unsigned long long)limit);
    if (rpc > rows) rpc = rows;
    uint64_t n_chunks = (rows + rpc - 1) / rpc;
    if (n_chunks > VKM_MAX_CHUNKS)
        return vkm_fail(d->err, VKM_ERR_LIMIT, "a %ux%u tensor needs %llu chunks (max %d)", rows,
                        cols, (unsigned long long)n_chunks, VKM_MAX_CHUNKS);
    out->dtype = t;
    out->rows = rows;
    out->cols = cols;
    out->row_stride = stride;
    out->n_chunks = (uint32_t)n_chunks;
    for (uint32_t c = 0; c < n_chunks; c++) {
        vkm_chunk *ch = &out->chunks[c];
        ch->row0 = (uint32_t)(c * rpc);
        ch->rows = (uint32_t)(rows - ch->row0 < rpc ? rows - ch->row0 : rpc);
        uint64_t qbytes = vkm_align_up((uint64_t)ch->rows * qb, 16);
        uint64_t bytes = qbytes + vkm_align_up((uint64_t)ch->rows * sb, 16);
        ch->scale_off_words = (uint32_t)(qbytes / 4);
        vkm_status s = vkm_arena_alloc(a, bytes, 16, &ch->r);
        if (s != VKM_OK) return s;
        out->bytes += (uint64_t)ch->rows * (qb + sb);
    }
    return VKM_OK;
}

/* Source row bytes of `cols` elements of dtype sd. */
static uint64_t src_row_bytes(vkm_dtype sd, uint32_t cols)
{
    uint64_t b = 0;
    vkm_dtype_bytes(sd, cols, &b);
    return b;
}

/* Encodes device rows [r0, r0+n) of t (global row indices) into qs (row-major, qb bytes per
 * row) and sc (sb bytes per row). tmp holds cols floats. */
static vkm_status encode_rows(const vkm_tensor *t, vkm_dtype sd, const uint8_t *src,
                              const uint32_t *row_map, uint32_t r0, uint32_t n, uint8_t *qs,
                              uint8_t *sc, float *tmp)
{
    uint32_t qb, sb, stride;
    row_bytes(t->dtype, t->cols, &qb, &sb, &stride);
    uint64_t srb = src_row_bytes(sd, t->cols);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t srow = row_map ? row_map[r0 + i] : r0 + i;
        const uint8_t *s = src + (uint64_t)srow * srb;
        uint8_t *q = qs + (uint64_t)i * qb, *z = sc + (uint64_t)i * sb;
        if (quantized(t->dtype) && sd == t->dtype) { /* split blocks into quants and scales */
            uint32_t bb = t->dtype == VKM_Q8_0 ? 34 : 18, nq = bb - 2;
            for (uint32_t b = 0; b < t->cols / 32; b++) {
                memcpy(z + 2 * b, s + (uint64_t)b * bb, 2);
                memcpy(q + (uint64_t)b * nq, s + (uint64_t)b * bb + 2, nq);
            }
            continue;
        }
        vkm_status st = vkm_to_f32(sd, s, t->cols, tmp);
        if (st != VKM_OK) return st;
        switch (t->dtype) {
        case VKM_F32:
            memcpy(q, tmp, (size_t)t->cols * 4);
            memset(q + (size_t)t->cols * 4, 0, (size_t)(stride - t->cols) * 4);
            break;
        case VKM_F16:
            for (uint32_t c = 0; c < stride; c++) {
                uint16_t h = c < t->cols ? vkm_f32_to_f16(tmp[c]) : 0;
                memcpy(q + 2 * c, &h, 2);
            }
            break;
        default: { /* quantize f32 -> blocks, then split */
            uint32_t bb = t->dtype == VKM_Q8_0 ? 34 : 18, nq = bb - 2;
            uint8_t blk[34];
            for (uint32_t b = 0; b < t->cols / 32; b++) {
                if (t->dtype == VKM_Q8_0) vkm_quantize_q8_0(tmp + 32 * b, 32, blk);
                else vkm_quantize_q4_0(tmp + 32 * b, 32, blk);
                memcpy(z + 2 * b, blk, 2);
                memcpy(q + (uint64_t)b * nq, blk + 2, nq);
            }
        }
        }
    }
    return VKM_OK;
}

vkm_status vkm_tensor_upload(vkm_dev *d, vkm_tensor *t, vkm_dtype src_dtype, const void *src,
                             const uint32_t *row_map)
{
    const vkm_dtype_traits *tr = vkm_dtype_info(src_dtype);
    if (!tr || t->cols % tr->block)
        return vkm_fail(d->err, VKM_ERR_UNSUPPORTED, "cannot upload %s rows of %u columns",
                        vkm_dtype_name(src_dtype), t->cols);
    if (quantized(t->dtype) && quantized(src_dtype) && src_dtype != t->dtype)
        return vkm_fail(d->err, VKM_ERR_UNSUPPORTED, "cannot convert %s to %s",
                        vkm_dtype_name(src_dtype), vkm_dtype_name(t->dtype));
    uint32_t qb, sb, stride;
    row_bytes(t->dtype, t->cols, &qb, &sb, &stride);
    float *tmp = malloc((size_t)t->cols * sizeof(float));
    if (!tmp) return vkm_fail(d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    vkm_status s = VKM_OK;
    /* groups of rows small enough for one staging buffer */
    uint64_t per_row = (uint64_t)qb + sb;
    uint32_t group = (uint32_t)(STAGE_BYTES / (per_row ? per_row : 1));
    if (group == 0) group = 1;
    uint8_t *host = NULL;
    for (uint32_t c = 0; c < t->n_chunks && s == VKM_OK; c++) {
        vkm_chunk *ch = &t->chunks[c];
        uint64_t soff = (uint64_t)ch->scale_off_words * 4;
        if (ch->r.map) { /* unified memory: write in place */
            s = encode_rows(t, src_dtype, src, row_map, ch->row0, ch->rows, ch->r.map,
                            (uint8_t *)ch->r.map + soff, tmp);
            continue;
        }
        if (!host && !(host = malloc((size_t)group * per_row))) {
            s = vkm_fail(d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
            break;
        }
        for (uint32_t r = 0; r < ch->rows && s == VKM_OK; r += group) {
            uint32_t n = ch->rows - r < group ? ch->rows - r : group;
            uint8_t *hq = host, *hs = host + (uint64_t)n * qb;
            s = encode_rows(t, src_dtype, src, row_map, ch->row0 + r, n, hq, hs, tmp);
            if (s == VKM_OK)
                s = vkm_upload(d, vkm_range_sub(ch->r, (uint64_t)r * qb, (uint64_t)n * qb), hq,
                               (uint64_t)n * qb);
            if (s == VKM_OK && sb)
                s = vkm_upload(d, vkm_range_sub(ch->r, soff + (uint64_t)r * sb, (uint64_t)n * sb),
                               hs, (uint64_t)n * sb);
        }
    }
    free(host);
    free(tmp);
    if (s != VKM_OK && d->err->status == VKM_OK)
        vkm_fail(d->err, s, "converting %s to %s failed", vkm_dtype_name(src_dtype),
                 vkm_dtype_name(t->dtype));
    return s;
}

/* ---- staged transfers ------------------------------------------------------------------------- */
static vkm_status stage(vkm_dev *d, vkm_buf **slot, vkm_mem_kind kind)
{
    if (*slot) return VKM_OK;
    vkm_buf *b = calloc(1, sizeof *b);
    if (!b) return vkm_fail(d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    vkm_status s = vkm_buf_create(d, STAGE_BYTES, kind, b);
    if (s != VKM_OK) {
        free(b);
        return s;
    }
    *slot = b;
    return VKM_OK;
}

static void copy_cmd(VkCommandBuffer cmd, VkBuffer src, uint64_t so, VkBuffer dst, uint64_t dof,
                     uint64_t n)
{
    VkBufferCopy region = {so, dof, n};
    vkCmdCopyBuffer(cmd, src, dst, 1, &region);
}

vkm_status vkm_upload(vkm_dev *d, vkm_range dst, const void *src, uint64_t bytes)
{
    if (bytes > dst.size)
        return vkm_fail(d->err, VKM_ERR_INVALID_ARGUMENT, "upload of %llu bytes into a %llu-byte range",
                        (unsigned long long)bytes, (unsigned long long)dst.size);
    if (dst.map) {
        memcpy(dst.map, src, bytes);
        return VKM_OK;
    }
    vkm_status s = stage(d, &d->stage_up, VKM_MEM_UPLOAD);
    for (uint64_t done = 0; s == VKM_OK && done < bytes; done += STAGE_BYTES) {
        uint64_t n = bytes - done < STAGE_BYTES ? bytes - done : STAGE_BYTES;
        memcpy(d->stage_up->map, (const char *)src + done, n);
        VkCommandBuffer cmd;
        s = vkm_dev_begin_once(d, &cmd);
        if (s != VKM_OK) break;
        copy_cmd(cmd, d->stage_up->buf, 0, dst.buf, dst.off + done, n);
        s = vkm_dev_submit_once(d);
    }
    return s;
}

vkm_status vkm_download(vkm_dev *d, vkm_range src, void *dst, uint64_t bytes)
{
    if (bytes > src.size)
        return vkm_fail(d->err, VKM_ERR_INVALID_ARGUMENT, "download of %llu bytes from a %llu-byte range",
                        (unsigned long long)bytes, (unsigned long long)src.size);
    if (src.map) {
        memcpy(dst, src.map, bytes);
        return VKM_OK;
    }
    vkm_status s = stage(d, &d->stage_down, VKM_MEM_READBACK);
    for (uint64_t done = 0; s == VKM_OK && done < bytes; done += STAGE_BYTES) {
        uint64_t n = bytes - done < STAGE_BYTES ? bytes - done : STAGE_BYTES;
        VkCommandBuffer cmd;
        s = vkm_dev_begin_once(d, &cmd);
        if (s != VKM_OK) break;
        copy_cmd(cmd, src.buf, src.off + done, d->stage_down->buf, 0, n);
        s = vkm_dev_submit_once(d);
        if (s == VKM_OK) memcpy((char *)dst + done, d->stage_down->map, n);
    }
    return s;
}
