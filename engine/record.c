/*
 * record.c — the recorder: binds, pushes constants and dispatches, and inserts a compute/transfer
 * barrier only where a buffer range written since the last barrier is read or written again
 * (or one read since then is overwritten). Timestamps for profiling.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

vkm_status vkm_rec_init(vkm_rec *r, vkm_dev *d, bool timestamps)
{
    memset(r, 0, sizeof *r);
    r->dev = d;
    r->track = true;
    if (timestamps && d->caps.timestamps) {
        VkQueryPoolCreateInfo qi = {VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO};
        qi.queryType = VK_QUERY_TYPE_TIMESTAMP;
        qi.queryCount = VKM_MAX_TIMESTAMPS;
        VKM_VK(d, vkCreateQueryPool(d->device, &qi, NULL, &r->queries));
    }
    return VKM_OK;
}

void vkm_rec_destroy(vkm_rec *r)
{
    if (!r || !r->dev) return;
    if (r->queries) vkDestroyQueryPool(r->dev->device, r->queries, NULL);
    free(r->spans);
    memset(r, 0, sizeof *r);
}

vkm_status vkm_rec_begin(vkm_rec *r, VkCommandBuffer cmd)
{
    vkm_dev *d = r->dev;
    vkm_dcache_trim(d);
    r->cmd = cmd;
    r->n_spans = 0;
    r->n_dispatches = r->n_barriers = 0;
    r->n_ts = 0;
    r->status = VKM_OK;
    VkCommandBufferBeginInfo bi = {VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
    VKM_VK(d, vkResetCommandBuffer(cmd, 0));
    VKM_VK(d, vkBeginCommandBuffer(cmd, &bi));
    if (r->queries) vkCmdResetQueryPool(cmd, r->queries, 0, VKM_MAX_TIMESTAMPS);
    if (r->profile) vkm_rec_timestamp(r, "start");
    return VKM_OK;
}

vkm_status vkm_rec_end(vkm_rec *r)
{
    /* make every device write visible to the host once the submission's fence signals */
    VkMemoryBarrier mb = {VK_STRUCTURE_TYPE_MEMORY_BARRIER};
    mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
    mb.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
    vkCmdPipelineBarrier(r->cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                         VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
    if (r->status != VKM_OK) {
        vkEndCommandBuffer(r->cmd);
        return r->status;
    }
    VKM_VK(r->dev, vkEndCommandBuffer(r->cmd));
    return VKM_OK;
}

void vkm_rec_barrier(vkm_rec *r)
{
    VkMemoryBarrier mb = {VK_STRUCTURE_TYPE_MEMORY_BARRIER};
    mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
    mb.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                       VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
    VkPipelineStageFlags st = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
    vkCmdPipelineBarrier(r->cmd, st, st, 0, 1, &mb, 0, NULL, 0, NULL);
    r->n_spans = 0;
    r->n_barriers++;
}

/* Would an access of `acc` to [off, end) of buf conflict with the spans since the barrier? */
static bool hazard(const vkm_rec *r, VkBuffer buf, uint64_t off, uint64_t end, uint8_t acc)
{
    for (uint32_t i = 0; i < r->n_spans; i++) {
        const vkm_acc_span *s = &r->spans[i];
        if (s->buf != buf || s->end <= off || end <= s->off) continue;
        if ((acc & VKM_ACC_WRITE) || (s->access & VKM_ACC_WRITE)) return true;
    }
    return false;
}

static void add_span(vkm_rec *r, VkBuffer buf, uint64_t off, uint64_t end, uint8_t acc)
{
    /* merge with an identical range */
    for (uint32_t i = 0; i < r->n_spans; i++) {
        vkm_acc_span *s = &r->spans[i];
        if (s->buf == buf && s->off == off && s->end == end) {
            s->access |= acc;
            return;
        }
    }
    if (r->n_spans == r->cap_spans) {
        uint32_t cap = r->cap_spans ? 2 * r->cap_spans : 64;
        vkm_acc_span *ns = realloc(r->spans, cap * sizeof *ns);
        if (!ns) {
            r->status = vkm_fail(r->dev->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
            return;
        }
        r->spans = ns;
        r->cap_spans = cap;
    }
    r->spans[r->n_spans++] = (vkm_acc_span){buf, off, end, acc};
}

/* Inserts a barrier if any of the n accesses conflicts, then records them. */
static void track(vkm_rec *r, const vkm_range *b, const uint8_t *acc, uint32_t n)
{
    if (!r->track) return;
    bool need = false;
    for (uint32_t i = 0; i < n && !need; i++)
        need = hazard(r, b[i].buf, b[i].off, b[i].off + b[i].size, acc[i]);
    if (need) vkm_rec_barrier(r);
    for (uint32_t i = 0; i < n; i++) add_span(r, b[i].buf, b[i].off, b[i].off + b[i].size, acc[i]);
}

void vkm_rec_dispatch(vkm_rec *r, vkm_pipe *p, const vkm_range *binds, uint32_t n_binds,
                      const void *push, uint32_t push_bytes, uint32_t gx, uint32_t gy, uint32_t gz)
{
    if (r->status != VKM_OK) return;
    vkm_dev *d = r->dev;
    vkm_kernel *k = p->k;
    if (n_binds != k->n_bindings || push_bytes != k->push_bytes) {
        r->status = vkm_fail(d->err, VKM_ERR_INVALID_ARGUMENT, "kernel %s takes %u bindings and "
                             "%u push bytes; the call gave %u and %u", k->name, k->n_bindings,
                             k->push_bytes, n_binds, push_bytes);
        return;
    }
    for (uint32_t i = 0; i < n_binds; i++) {
        if (!binds[i].buf || binds[i].size == 0 || binds[i].size > d->caps.max_storage_range ||
            binds[i].off % d->caps.storage_align) {
            r->status = vkm_fail(d->err, VKM_ERR_INVALID_ARGUMENT, "kernel %s binding %u: range "
                                 "(offset %llu, size %llu) is empty, too large or misaligned",
                                 k->name, i, (unsigned long long)binds[i].off,
                                 (unsigned long long)binds[i].size);
            return;
        }
    }
    if (gx == 0 || gy == 0 || gz == 0) return;
    if (gx > d->caps.max_wg_count[0] || gy > d->caps.max_wg_count[1] || gz > d->caps.max_wg_count[2]) {
        r->status = vkm_fail(d->err, VKM_ERR_LIMIT, "kernel %s: %u x %u x %u workgroups exceed "
                             "the device limit", k->name, gx, gy, gz);
        return;
    }
    VkDescriptorSet set;
    vkm_status s = vkm_dcache_get(d, k, binds, &set);
    if (s != VKM_OK) {
        r->status = s;
        return;
    }
    track(r, binds, k->access, n_binds);
    vkCmdBindPipeline(r->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, p->pipeline);
    vkCmdBindDescriptorSets(r->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, k->layout, 0, 1, &set, 0, NULL);
    if (push_bytes) vkCmdPushConstants(r->cmd, k->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, push_bytes, push);
    vkCmdDispatch(r->cmd, gx, gy, gz);
    r->n_dispatches++;
    if (r->profile) {
        uint32_t i = r->n_ts;
        vkm_rec_timestamp(r, k->name);
        if (i < VKM_MAX_TIMESTAMPS) r->ts_bytes[i] = r->note_bytes;
    }
    r->note_bytes = 0;
}

void vkm_rec_dispatch_n(vkm_rec *r, vkm_pipe *p, const vkm_range *binds, uint32_t n_binds,
                        const void *push, uint32_t push_bytes, uint64_t n_groups)
{
    vkm_rec_dispatch_nz(r, p, binds, n_binds, push, push_bytes, n_groups, 1);
}

void vkm_rec_dispatch_nz(vkm_rec *r, vkm_pipe *p, const vkm_range *binds, uint32_t n_binds,
                         const void *push, uint32_t push_bytes, uint64_t n_groups, uint32_t gz)
{
    uint64_t maxx = r->dev->caps.max_wg_count[0];
    if (maxx > 65535) maxx = 65535; /* keep x within the portable minimum */
    uint64_t gx = n_groups < maxx ? n_groups : maxx, gy = (n_groups + gx - 1) / (gx ? gx : 1);
    vkm_rec_dispatch(r, p, binds, n_binds, push, push_bytes, (uint32_t)gx, (uint32_t)gy, gz);
}

void vkm_rec_copy(vkm_rec *r, vkm_range src, vkm_range dst, uint64_t bytes)
{
    if (r->status != VKM_OK || bytes == 0) return;
    vkm_range b[2] = {vkm_range_sub(src, 0, bytes), vkm_range_sub(dst, 0, bytes)};
    uint8_t acc[2] = {VKM_ACC_READ, VKM_ACC_WRITE};
    track(r, b, acc, 2);
    VkBufferCopy region = {src.off, dst.off, bytes};
    vkCmdCopyBuffer(r->cmd, src.buf, dst.buf, 1, &region);
}

void vkm_rec_fill(vkm_rec *r, vkm_range dst, uint32_t value)
{
    if (r->status != VKM_OK) return;
    uint8_t acc = VKM_ACC_WRITE;
    track(r, &dst, &acc, 1);
    vkCmdFillBuffer(r->cmd, dst.buf, dst.off, dst.size & ~3ull, value);
}

void vkm_rec_update(vkm_rec *r, vkm_range dst, const void *data, uint32_t bytes)
{
    if (r->status != VKM_OK || bytes == 0) return;
    if (bytes > 65536 || bytes % 4 || bytes > dst.size) {
        r->status = vkm_fail(r->dev->err, VKM_ERR_INVALID_ARGUMENT, "buffer update of %u bytes", bytes);
        return;
    }
    vkm_range b = vkm_range_sub(dst, 0, bytes);
    uint8_t acc = VKM_ACC_WRITE;
    track(r, &b, &acc, 1);
    vkCmdUpdateBuffer(r->cmd, dst.buf, dst.off, bytes, data);
}

void vkm_rec_timestamp(vkm_rec *r, const char *label)
{
    if (!r->queries || r->n_ts >= VKM_MAX_TIMESTAMPS) return;
    r->ts_label[r->n_ts] = label;
    vkCmdWriteTimestamp(r->cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, r->queries, r->n_ts);
    r->n_ts++;
}

vkm_status vkm_rec_read_timestamps(vkm_rec *r, double *ns, uint32_t max)
{
    if (!r->queries || r->n_ts < 2) return VKM_ERR_UNSUPPORTED;
    uint64_t raw[VKM_MAX_TIMESTAMPS];
    VKM_VK(r->dev, vkGetQueryPoolResults(r->dev->device, r->queries, 0, r->n_ts, sizeof raw, raw,
                                         8, VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT));
    for (uint32_t i = 0; i + 1 < r->n_ts && i < max; i++)
        ns[i] = (double)(raw[i + 1] - raw[i]) * r->dev->caps.timestamp_period_ns;
    return VKM_OK;
}

vkm_status vkm_rec_profile(vkm_rec *r, vkm_prof_entry *e, uint32_t cap, uint32_t *n)
{
    double *ns = malloc(VKM_MAX_TIMESTAMPS * sizeof *ns);
    if (!ns) return VKM_ERR_OUT_OF_HOST_MEMORY;
    vkm_status s = vkm_rec_read_timestamps(r, ns, VKM_MAX_TIMESTAMPS);
    if (s != VKM_OK) {
        free(ns);
        return s;
    }
    for (uint32_t i = 1; i < r->n_ts; i++) {
        const char *name = r->ts_label[i];
        uint32_t j = 0;
        while (j < *n && strcmp(e[j].name, name)) j++;
        if (j == *n) {
            if (*n == cap) continue;
            e[j] = (vkm_prof_entry){name, 0, 0, 0};
            (*n)++;
        }
        e[j].calls++;
        e[j].ns += ns[i - 1];
        e[j].bytes += (double)r->ts_bytes[i];
    }
    free(ns);
    return VKM_OK;
}
