/*
 * pipeline.c — kernels from the registry of embedded SPIR-V: reflection (bindings, their
 * read/write access from NonWritable/NonReadable, push-constant size, specialization ids),
 * specialised compute pipelines, the persisted VkPipelineCache (validated against vendor,
 * device, driver version and pipelineCacheUUID) and the descriptor-set cache that makes a
 * dispatch allocate nothing once its buffers have been seen.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"

/* ---- SPIR-V reflection ------------------------------------------------------------------------ */
enum {
    OP_TYPE_INT = 21, OP_TYPE_FLOAT = 22, OP_TYPE_VECTOR = 23, OP_TYPE_STRUCT = 30,
    OP_TYPE_POINTER = 32, OP_VARIABLE = 59, OP_DECORATE = 71, OP_MEMBER_DECORATE = 72,
    DEC_SPEC_ID = 1, DEC_NON_WRITABLE = 24, DEC_NON_READABLE = 25, DEC_BINDING = 33,
    DEC_DESCRIPTOR_SET = 34, DEC_OFFSET = 35,
    SC_UNIFORM = 2, SC_PUSH_CONSTANT = 9, SC_STORAGE_BUFFER = 12,
};

typedef struct id_info {
    uint16_t op;
    uint32_t a, b, c;          /* operands kept per opcode                                     */
    int32_t binding, set;
    bool nonwritable, nonreadable;
    uint32_t n_members, n_members_nw, n_members_nr;
    uint32_t member_off_max, member_off_type; /* largest member offset and its type          */
} id_info;

static vkm_status reflect(vkm_dev *d, vkm_kernel *k, const uint32_t *w, size_t n)
{
    if (n < 5 || w[0] != 0x07230203u)
        return vkm_fail(d->err, VKM_ERR_FORMAT, "kernel %s: not SPIR-V", k->name);
    uint32_t bound = w[3];
    id_info *ids = calloc(bound, sizeof *ids);
    if (!ids) return vkm_fail(d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (uint32_t i = 0; i < bound; i++) ids[i].binding = ids[i].set = -1;
    for (size_t i = 5; i < n;) {
        uint32_t op = w[i] & 0xffff, wc = w[i] >> 16;
        if (wc == 0 || i + wc > n) break;
        const uint32_t *o = w + i + 1;
        switch (op) {
        case OP_TYPE_INT: case OP_TYPE_FLOAT:
            if (o[0] < bound) { ids[o[0]].op = (uint16_t)op; ids[o[0]].a = o[1]; }
            break;
        case OP_TYPE_VECTOR:
            if (o[0] < bound) { ids[o[0]].op = (uint16_t)op; ids[o[0]].a = o[1]; ids[o[0]].b = o[2]; }
            break;
        case OP_TYPE_STRUCT:
            if (o[0] < bound) { ids[o[0]].op = (uint16_t)op; ids[o[0]].n_members = wc - 2; }
            break;
        case OP_TYPE_POINTER:
            if (o[0] < bound) { ids[o[0]].op = (uint16_t)op; ids[o[0]].a = o[1]; ids[o[0]].b = o[2]; }
            break;
        case OP_VARIABLE:
            if (o[1] < bound) { ids[o[1]].op = (uint16_t)op; ids[o[1]].a = o[0]; ids[o[1]].b = o[2]; }
            break;
        case OP_DECORATE:
            if (o[0] < bound) {
                id_info *t = &ids[o[0]];
                if (o[1] == DEC_BINDING) t->binding = (int32_t)o[2];
                else if (o[1] == DEC_DESCRIPTOR_SET) t->set = (int32_t)o[2];
                else if (o[1] == DEC_NON_WRITABLE) t->nonwritable = true;
                else if (o[1] == DEC_NON_READABLE) t->nonreadable = true;
                else if (o[1] == DEC_SPEC_ID && o[2] < 32) k->spec_ids |= 1u << o[2];
            }
            break;
        case OP_MEMBER_DECORATE:
            if (o[0] < bound) {
                id_info *t = &ids[o[0]];
                if (o[2] == DEC_NON_WRITABLE) t->n_members_nw++;
                else if (o[2] == DEC_NON_READABLE) t->n_members_nr++;
                else if (o[2] == DEC_OFFSET && o[3] >= t->member_off_max) {
                    t->member_off_max = o[3];
                    t->c = o[1]; /* member index with the largest offset */
                }
            }
            break;
        default: break;
        }
        i += wc;
    }
    /* struct member types: second pass for the member with the largest offset */
    for (size_t i = 5; i < n;) {
        uint32_t op = w[i] & 0xffff, wc = w[i] >> 16;
        if (wc == 0 || i + wc > n) break;
        if (op == OP_TYPE_STRUCT && w[i + 1] < bound) {
            id_info *t = &ids[w[i + 1]];
            if (t->c + 2 < wc) t->member_off_type = w[i + 2 + t->c];
        }
        i += wc;
    }
    vkm_status s = VKM_OK;
    for (uint32_t v = 0; v < bound && s == VKM_OK; v++) {
        if (ids[v].op != OP_VARIABLE) continue;
        uint32_t sc = ids[v].b, ptr = ids[v].a;
        if (ptr >= bound) continue;
        uint32_t st = ids[ptr].b;
        if (st >= bound) continue;
        if (sc == SC_PUSH_CONSTANT) {
            uint32_t mt = ids[st].member_off_type, sz = 4;
            if (mt < bound && ids[mt].op == OP_TYPE_VECTOR && ids[mt].a < bound)
                sz = ids[ids[mt].a].a / 8 * ids[mt].b;
            else if (mt < bound && (ids[mt].op == OP_TYPE_INT || ids[mt].op == OP_TYPE_FLOAT))
                sz = ids[mt].a / 8;
            k->push_bytes = ids[st].member_off_max + sz;
        } else if ((sc == SC_STORAGE_BUFFER || sc == SC_UNIFORM) && ids[v].binding >= 0) {
            int32_t b = ids[v].binding;
            if (ids[v].set != 0 || b >= VKM_MAX_BINDINGS) {
                s = vkm_fail(d->err, VKM_ERR_FORMAT, "kernel %s: binding %d/%d out of range",
                             k->name, ids[v].set, b);
                break;
            }
            bool nw = ids[v].nonwritable || (ids[st].n_members && ids[st].n_members_nw >= ids[st].n_members);
            bool nr = ids[v].nonreadable || (ids[st].n_members && ids[st].n_members_nr >= ids[st].n_members);
            k->access[b] = (uint8_t)((nr ? 0 : VKM_ACC_READ) | (nw ? 0 : VKM_ACC_WRITE));
            if ((uint32_t)b + 1 > k->n_bindings) k->n_bindings = (uint32_t)b + 1;
        }
    }
    free(ids);
    for (uint32_t b = 0; b < k->n_bindings && s == VKM_OK; b++)
        if (!k->access[b])
            s = vkm_fail(d->err, VKM_ERR_FORMAT, "kernel %s: bindings must be dense (binding %u "
                         "unused or neither read nor written)", k->name, b);
    return s;
}

vkm_spv_id vkm_spv_find(const char *name)
{
    for (int i = 0; i < VKM_SPV_COUNT; i++)
        if (strcmp(vkm_spv_registry[i].name, name) == 0) return (vkm_spv_id)i;
    return VKM_SPV_COUNT;
}

vkm_status vkm_kernel_get(vkm_dev *d, vkm_spv_id id, vkm_kernel **out)
{
    if ((unsigned)id >= VKM_SPV_COUNT)
        return vkm_fail(d->err, VKM_ERR_INVALID_ARGUMENT, "no kernel %d", (int)id);
    if (d->kernels[id]) {
        *out = d->kernels[id];
        return VKM_OK;
    }
    const vkm_spv_entry *e = &vkm_spv_registry[id];
    vkm_kernel *k = calloc(1, sizeof *k);
    if (!k) return vkm_fail(d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    k->id = id;
    k->name = e->name;
    vkm_status s = reflect(d, k, e->words, e->n_words);
    if (s == VKM_OK && k->push_bytes > d->caps.max_push_bytes)
        s = vkm_fail(d->err, VKM_ERR_UNSUPPORTED, "kernel %s needs %u push-constant bytes; the "
                     "device offers %u", k->name, k->push_bytes, d->caps.max_push_bytes);
    VkResult r = VK_SUCCESS;
    if (s == VKM_OK) {
        VkShaderModuleCreateInfo mci = {VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO};
        mci.codeSize = e->n_words * 4;
        mci.pCode = e->words;
        r = vkCreateShaderModule(d->device, &mci, NULL, &k->module);
    }
    if (s == VKM_OK && r == VK_SUCCESS) {
        VkDescriptorSetLayoutBinding b[VKM_MAX_BINDINGS];
        for (uint32_t i = 0; i < k->n_bindings; i++) {
            b[i] = (VkDescriptorSetLayoutBinding){i, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1,
                                                  VK_SHADER_STAGE_COMPUTE_BIT, NULL};
        }
        VkDescriptorSetLayoutCreateInfo lci = {VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO};
        lci.bindingCount = k->n_bindings;
        lci.pBindings = b;
        r = vkCreateDescriptorSetLayout(d->device, &lci, NULL, &k->set_layout);
    }
    if (s == VKM_OK && r == VK_SUCCESS) {
        VkPushConstantRange pr = {VK_SHADER_STAGE_COMPUTE_BIT, 0, k->push_bytes};
        VkPipelineLayoutCreateInfo pci = {VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
        pci.setLayoutCount = 1;
        pci.pSetLayouts = &k->set_layout;
        pci.pushConstantRangeCount = k->push_bytes ? 1 : 0;
        pci.pPushConstantRanges = &pr;
        r = vkCreatePipelineLayout(d->device, &pci, NULL, &k->layout);
    }
    if (s == VKM_OK && r != VK_SUCCESS) s = vkm_vk_fail(d, r, "creating a kernel's module and layouts");
    d->kernels[id] = k; /* destroyed with the others, even when incomplete */
    if (s != VKM_OK) {
        vkm_err_prefix(d->err, "kernel %s", k->name);
        return s;
    }
    *out = k;
    return VKM_OK;
}

vkm_status vkm_pipe_get(vkm_dev *d, vkm_spv_id id, const uint32_t *spec, uint32_t n_spec,
                        vkm_pipe **out)
{
    vkm_kernel *k;
    vkm_status s = vkm_kernel_get(d, id, &k);
    if (s != VKM_OK) return s;
    if (n_spec > VKM_MAX_SPEC) return vkm_fail(d->err, VKM_ERR_INVALID_ARGUMENT, "too many spec constants");
    for (vkm_pipe *p = k->pipes; p; p = p->next)
        if (p->n_spec == n_spec && memcmp(p->spec, spec, n_spec * 4) == 0) {
            *out = p;
            return VKM_OK;
        }
    vkm_pipe *p = calloc(1, sizeof *p);
    if (!p) return vkm_fail(d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    p->k = k;
    p->n_spec = n_spec;
    memcpy(p->spec, spec, n_spec * 4);
    p->wg_size = n_spec > 0 ? spec[0] : 1;
    VkSpecializationMapEntry map[VKM_MAX_SPEC];
    uint32_t n_map = 0;
    for (uint32_t i = 0; i < n_spec; i++)
        if (k->spec_ids & (1u << i)) map[n_map++] = (VkSpecializationMapEntry){i, i * 4, 4};
    VkSpecializationInfo si = {n_map, map, n_spec * 4, p->spec};
    VkComputePipelineCreateInfo ci = {VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO};
    ci.stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO;
    ci.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
    ci.stage.module = k->module;
    ci.stage.pName = "main";
    ci.stage.pSpecializationInfo = n_map ? &si : NULL;
    ci.layout = k->layout;
    VkResult r = vkCreateComputePipelines(d->device, d->pcache, 1, &ci, NULL, &p->pipeline);
    if (r != VK_SUCCESS) {
        free(p);
        vkm_vk_fail(d, r, "vkCreateComputePipelines");
        vkm_err_prefix(d->err, "kernel %s", k->name);
        return d->err->status;
    }
    p->next = k->pipes;
    k->pipes = p;
    *out = p;
    return VKM_OK;
}

void vkm_pipelines_destroy(vkm_dev *d)
{
    for (int i = 0; i < VKM_SPV_COUNT; i++) {
        vkm_kernel *k = d->kernels[i];
        if (!k) continue;
        for (vkm_pipe *p = k->pipes, *n; p; p = n) {
            n = p->next;
            vkDestroyPipeline(d->device, p->pipeline, NULL);
            free(p);
        }
        if (k->layout) vkDestroyPipelineLayout(d->device, k->layout, NULL);
        if (k->set_layout) vkDestroyDescriptorSetLayout(d->device, k->set_layout, NULL);
        if (k->module) vkDestroyShaderModule(d->device, k->module, NULL);
        free(k);
        d->kernels[i] = NULL;
    }
    if (d->pcache) vkDestroyPipelineCache(d->device, d->pcache, NULL);
    d->pcache = VK_NULL_HANDLE;
}

/* ---- persisted pipeline cache --------------------------------------------------------------- */
/* File: our header, then the driver's cache blob. The header pins the blob to one device and
 * driver; any mismatch (or a corrupt blob) starts an empty cache. */
typedef struct pc_header {
    char magic[8];            /* "VKMOEPC1" */
    uint32_t vendor, device, driver_version, api_version;
    uint8_t uuid[16];
    uint64_t size;
    uint64_t checksum;        /* FNV-1a 64 of the blob */
} pc_header;

static uint64_t fnv1a(const uint8_t *p, uint64_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (uint64_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static void pc_fill(const vkm_dev *d, pc_header *h)
{
    memset(h, 0, sizeof *h);
    memcpy(h->magic, "VKMOEPC1", 8);
    h->vendor = d->caps.vendor_id;
    h->device = d->caps.device_id;
    h->driver_version = d->caps.driver_version;
    h->api_version = d->caps.api_version;
    memcpy(h->uuid, d->caps.pipeline_cache_uuid, 16);
}

vkm_status vkm_pcache_open(vkm_dev *d, const char *dir)
{
    void *blob = NULL;
    size_t blob_n = 0;
    d->pcache_path[0] = 0;
    if (dir && *dir) {
        int n = snprintf(d->pcache_path, sizeof d->pcache_path, "%s/pipelines-%08x-%08x.bin", dir,
                         d->caps.vendor_id, d->caps.device_id);
        if (n < 0 || (size_t)n >= sizeof d->pcache_path) d->pcache_path[0] = 0;
        FILE *f = d->pcache_path[0] ? fopen(d->pcache_path, "rb") : NULL;
        pc_header h, want;
        pc_fill(d, &want);
        if (f && fread(&h, sizeof h, 1, f) == 1 && memcmp(h.magic, want.magic, 8) == 0 &&
            h.vendor == want.vendor && h.device == want.device &&
            h.driver_version == want.driver_version && h.api_version == want.api_version &&
            memcmp(h.uuid, want.uuid, 16) == 0 && h.size > 0 && h.size < (256u << 20)) {
            blob = malloc(h.size);
            if (blob && fread(blob, 1, h.size, f) == h.size && fnv1a(blob, h.size) == h.checksum)
                blob_n = h.size;
        }
        if (f) fclose(f);
    }
    VkPipelineCacheCreateInfo ci = {VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO};
    ci.initialDataSize = blob_n;
    ci.pInitialData = blob_n ? blob : NULL;
    VkResult r = vkCreatePipelineCache(d->device, &ci, NULL, &d->pcache);
    if (r != VK_SUCCESS && blob_n) { /* the driver refused the blob: start empty */
        ci.initialDataSize = 0;
        ci.pInitialData = NULL;
        r = vkCreatePipelineCache(d->device, &ci, NULL, &d->pcache);
    } else {
        d->pcache_loaded = blob_n > 0 && r == VK_SUCCESS;
    }
    free(blob);
    if (r != VK_SUCCESS) return vkm_vk_fail(d, r, "vkCreatePipelineCache");
    return VKM_OK;
}

static void mkdirs(const char *path)
{
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(tmp, 0755);
            *p = '/';
        }
}

vkm_status vkm_pcache_save(vkm_dev *d)
{
    if (!d->pcache || !d->pcache_path[0]) return VKM_OK;
    size_t n = 0;
    if (vkGetPipelineCacheData(d->device, d->pcache, &n, NULL) != VK_SUCCESS || n == 0) return VKM_OK;
    void *blob = malloc(n);
    if (!blob) return VKM_ERR_OUT_OF_HOST_MEMORY;
    vkm_status s = VKM_OK;
    if (vkGetPipelineCacheData(d->device, d->pcache, &n, blob) == VK_SUCCESS) {
        pc_header h;
        pc_fill(d, &h);
        h.size = n;
        h.checksum = fnv1a(blob, n);
        char tmp[1100];
        snprintf(tmp, sizeof tmp, "%s.tmp", d->pcache_path);
        mkdirs(d->pcache_path);
        FILE *f = fopen(tmp, "wb");
        bool ok = f && fwrite(&h, sizeof h, 1, f) == 1 && fwrite(blob, 1, n, f) == n;
        if (f) ok = (fclose(f) == 0) && ok;
        if (ok) ok = rename(tmp, d->pcache_path) == 0;
        if (!ok) {
            remove(tmp);
            s = VKM_ERR_IO; /* a cache that cannot be saved is not an error for the caller */
        }
    }
    free(blob);
    return s;
}

/* ---- descriptor-set cache -------------------------------------------------------------------- */
typedef struct dc_entry {
    uint64_t hash;
    VkDescriptorSetLayout layout;
    uint32_t n;
    vkm_range b[VKM_MAX_BINDINGS];
    VkDescriptorSet set;
} dc_entry;

struct vkm_dcache {
    dc_entry *e;
    uint32_t cap, count;
    VkDescriptorPool *pools;
    uint32_t n_pools;
};

#define DC_POOL_SETS 512
#define DC_MAX_ENTRIES (1u << 15)

static uint64_t dc_hash(VkDescriptorSetLayout l, const vkm_range *b, uint32_t n)
{
    uint64_t h = 1469598103934665603ull ^ (uint64_t)(uintptr_t)l;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t v[3] = {(uint64_t)(uintptr_t)b[i].buf, b[i].off, b[i].size};
        h = (h ^ fnv1a((const uint8_t *)v, sizeof v)) * 1099511628211ull;
    }
    return h ? h : 1;
}

static vkm_status dc_new_pool(vkm_dev *d, vkm_dcache *c)
{
    VkDescriptorPool *np = realloc(c->pools, (c->n_pools + 1) * sizeof *np);
    if (!np) return vkm_fail(d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    c->pools = np;
    VkDescriptorPoolSize ps = {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, DC_POOL_SETS * VKM_MAX_BINDINGS};
    VkDescriptorPoolCreateInfo ci = {VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
    ci.maxSets = DC_POOL_SETS;
    ci.poolSizeCount = 1;
    ci.pPoolSizes = &ps;
    VKM_VK(d, vkCreateDescriptorPool(d->device, &ci, NULL, &c->pools[c->n_pools]));
    c->n_pools++;
    return VKM_OK;
}

static void dc_clear(vkm_dev *d, vkm_dcache *c)
{
    for (uint32_t i = 0; i < c->n_pools; i++) vkDestroyDescriptorPool(d->device, c->pools[i], NULL);
    c->n_pools = 0;
    memset(c->e, 0, c->cap * sizeof *c->e);
    c->count = 0;
}

vkm_status vkm_dcache_get(vkm_dev *d, vkm_kernel *k, const vkm_range *binds, VkDescriptorSet *out)
{
    vkm_dcache *c = d->dcache;
    if (!c) {
        c = d->dcache = calloc(1, sizeof *c);
        if (!c) return vkm_fail(d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    if (c->count * 2 >= c->cap) { /* grow */
        {
            uint32_t cap = c->cap ? c->cap * 2 : 1024;
            dc_entry *ne = calloc(cap, sizeof *ne);
            if (!ne) return vkm_fail(d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
            for (uint32_t i = 0; i < c->cap; i++)
                if (c->e[i].hash) {
                    uint32_t j = (uint32_t)(c->e[i].hash & (cap - 1));
                    while (ne[j].hash) j = (j + 1) & (cap - 1);
                    ne[j] = c->e[i];
                }
            free(c->e);
            c->e = ne;
            c->cap = cap;
        }
    }
    uint32_t n = k->n_bindings;
    uint64_t h = dc_hash(k->set_layout, binds, n);
    uint32_t j = (uint32_t)(h & (c->cap - 1));
    for (; c->e[j].hash; j = (j + 1) & (c->cap - 1)) {
        dc_entry *e = &c->e[j];
        if (e->hash != h || e->layout != k->set_layout || e->n != n) continue;
        bool same = true;
        for (uint32_t i = 0; i < n && same; i++)
            same = e->b[i].buf == binds[i].buf && e->b[i].off == binds[i].off &&
                   e->b[i].size == binds[i].size;
        if (same) {
            *out = e->set;
            return VKM_OK;
        }
    }
    /* allocate a new set */
    VkDescriptorSet set = VK_NULL_HANDLE;
    VkResult r = VK_ERROR_OUT_OF_POOL_MEMORY;
    if (c->n_pools) {
        VkDescriptorSetAllocateInfo ai = {VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
        ai.descriptorPool = c->pools[c->n_pools - 1];
        ai.descriptorSetCount = 1;
        ai.pSetLayouts = &k->set_layout;
        r = vkAllocateDescriptorSets(d->device, &ai, &set);
    }
    if (r == VK_ERROR_OUT_OF_POOL_MEMORY || r == VK_ERROR_FRAGMENTED_POOL) {
        vkm_status s = dc_new_pool(d, c);
        if (s != VKM_OK) return s;
        VkDescriptorSetAllocateInfo ai = {VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
        ai.descriptorPool = c->pools[c->n_pools - 1];
        ai.descriptorSetCount = 1;
        ai.pSetLayouts = &k->set_layout;
        r = vkAllocateDescriptorSets(d->device, &ai, &set);
    }
    if (r != VK_SUCCESS) return vkm_vk_fail(d, r, "vkAllocateDescriptorSets");
    VkDescriptorBufferInfo bi[VKM_MAX_BINDINGS];
    VkWriteDescriptorSet wr[VKM_MAX_BINDINGS];
    for (uint32_t i = 0; i < n; i++) {
        bi[i] = (VkDescriptorBufferInfo){binds[i].buf, binds[i].off, binds[i].size};
        wr[i] = (VkWriteDescriptorSet){VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET};
        wr[i].dstSet = set;
        wr[i].dstBinding = i;
        wr[i].descriptorCount = 1;
        wr[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
        wr[i].pBufferInfo = &bi[i];
    }
    vkUpdateDescriptorSets(d->device, n, wr, 0, NULL);
    dc_entry *e = &c->e[j];
    e->hash = h;
    e->layout = k->set_layout;
    e->n = n;
    memcpy(e->b, binds, n * sizeof *binds);
    e->set = set;
    c->count++;
    *out = set;
    return VKM_OK;
}

void vkm_dcache_trim(vkm_dev *d)
{
    if (d->dcache && d->dcache->count >= DC_MAX_ENTRIES) dc_clear(d, d->dcache);
}

uint32_t vkm_dcache_count(const vkm_dev *d) { return d->dcache ? d->dcache->count : 0; }

void vkm_dcache_forget(vkm_dev *d, VkBuffer buf)
{
    vkm_dcache *c = d->dcache;
    for (uint32_t i = 0; c && buf && i < c->cap; i++) {
        dc_entry *e = &c->e[i];
        for (uint32_t k = 0; e->hash && e->layout && k < e->n; k++)
            if (e->b[k].buf == buf) e->layout = VK_NULL_HANDLE; /* never found again */
    }
}

void vkm_dcache_destroy(vkm_dev *d)
{
    vkm_dcache *c = d->dcache;
    if (!c) return;
    dc_clear(d, c);
    free(c->pools);
    free(c->e);
    free(c);
    d->dcache = NULL;
}
