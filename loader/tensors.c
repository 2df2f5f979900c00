/*
 * tensors.c — what the GGUF and safetensors readers share about a list of tensors: a name index
 * (duplicates refused, binary-search lookup), the overlap check of data ranges, shape text.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loader.h"

static int by_name_cmp(const void *a, const void *b)
{
    const vkm_tensor_src *x = *(const vkm_tensor_src *const *)a;
    const vkm_tensor_src *y = *(const vkm_tensor_src *const *)b;
    return strcmp(x->name, y->name);
}

vkm_status vkm_tensors_index(const char *path, const vkm_tensor_src *t, uint64_t n,
                             const vkm_tensor_src ***by_name, vkm_err *e)
{
    *by_name = NULL;
    const vkm_tensor_src **idx = malloc((n ? n : 1) * sizeof *idx);
    if (!idx) return vkm_fail(e, VKM_ERR_OUT_OF_HOST_MEMORY, "%s: out of memory", path);
    for (uint64_t i = 0; i < n; i++) idx[i] = &t[i];
    qsort(idx, n, sizeof *idx, by_name_cmp);
    for (uint64_t i = 1; i < n; i++)
        if (!strcmp(idx[i - 1]->name, idx[i]->name)) {
            vkm_status s = vkm_fail(e, VKM_ERR_FORMAT, "%s: duplicate tensor name '%s'", path,
                                    idx[i]->name);
            free(idx);
            return s;
        }
    *by_name = idx;
    return VKM_OK;
}

const vkm_tensor_src *vkm_tensors_find(const vkm_tensor_src *const *by_name, uint64_t n,
                                       const char *name)
{
    uint64_t lo = 0, hi = n;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(by_name[mid]->name, name);
        if (c == 0) return by_name[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

static int by_offset_cmp(const void *a, const void *b)
{
    const vkm_tensor_src *x = *(const vkm_tensor_src *const *)a;
    const vkm_tensor_src *y = *(const vkm_tensor_src *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset ? 1 : 0;
}

vkm_status vkm_tensors_check_overlap(const char *path, const vkm_tensor_src *t, uint64_t n,
                                     vkm_err *e)
{
    const vkm_tensor_src **idx = malloc((n ? n : 1) * sizeof *idx);
    if (!idx) return vkm_fail(e, VKM_ERR_OUT_OF_HOST_MEMORY, "%s: out of memory", path);
    uint64_t m = 0;
    for (uint64_t i = 0; i < n; i++)
        if (t[i].nbytes) idx[m++] = &t[i]; /* empty tensors occupy nothing */
    qsort(idx, m, sizeof *idx, by_offset_cmp);
    vkm_status s = VKM_OK;
    for (uint64_t i = 1; i < m && s == VKM_OK; i++) {
        const vkm_tensor_src *a = idx[i - 1], *b = idx[i];
        if (a->offset + a->nbytes > b->offset) /* both ranges were checked inside the file */
            s = vkm_fail(e, VKM_ERR_FORMAT,
                         "%s: the data of tensors '%s' [%llu, %llu) and '%s' [%llu, %llu) overlap",
                         path, a->name, (unsigned long long)a->offset,
                         (unsigned long long)(a->offset + a->nbytes), b->name,
                         (unsigned long long)b->offset, (unsigned long long)(b->offset + b->nbytes));
    }
    free(idx);
    return s;
}

const char *vkm_shape_str(const int64_t *ne, int n, char *buf, size_t cap)
{
    size_t k = 0;
    if (cap == 0) return buf;
    buf[0] = 0;
    k += (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < n && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? ", " : "", (long long)ne[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
    return buf;
}
