/*
 * safetensors.c — the safetensors reader: one file (8-byte header length, JSON header parsed
 * with cJSON, tensors checked against the file), and sharded sets through
 * model.safetensors.index.json ("weight_map").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "loader.h"

/* ---- dtypes ------------------------------------------------------------------------------- */
static const struct {
    const char *name;
    vkm_dtype dtype;
} st_dtypes[] = {
    {"F32", VKM_F32}, {"F16", VKM_F16}, {"BF16", VKM_BF16}, {"I8", VKM_I8},
    {"I16", VKM_I16}, {"I32", VKM_I32}, {"I64", VKM_I64},   {"F64", VKM_F64},
};

const char *vkm_st_dtype_name(vkm_dtype t)
{
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (st_dtypes[i].dtype == t) return st_dtypes[i].name;
    return NULL;
}

bool vkm_st_dtype_parse(const char *name, vkm_dtype *out)
{
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (!strcmp(st_dtypes[i].name, name)) {
            *out = st_dtypes[i].dtype;
            return true;
        }
    return false;
}

/* ---- one file ----------------------------------------------------------------------------- */
static vkm_status oom(const char *path, vkm_err *e)
{
    return vkm_fail(e, VKM_ERR_OUT_OF_HOST_MEMORY, "%s: out of memory", path);
}

static vkm_status parse_meta(vkm_st *s, const cJSON *m, vkm_err *e)
{
    if (!cJSON_IsObject(m))
        return vkm_fail(e, VKM_ERR_FORMAT, "%s: __metadata__ is %s, not an object", s->path,
                        vkm_json_type_name(m));
    uint64_t n = 0;
    for (const cJSON *c = m->child; c; c = c->next) n++;
    s->meta = calloc(n ? n : 1, sizeof *s->meta);
    if (!s->meta) return oom(s->path, e);
    for (const cJSON *c = m->child; c; c = c->next) {
        if (!cJSON_IsString(c))
            return vkm_fail(e, VKM_ERR_FORMAT, "%s: __metadata__.%s is %s, not a string", s->path,
                            c->string, vkm_json_type_name(c));
        vkm_st_meta *kv = &s->meta[s->n_meta++];
        if (!(kv->key = strdup(c->string)) || !(kv->value = strdup(c->valuestring)))
            return oom(s->path, e);
    }
    return VKM_OK;
}

/* One header entry: {"dtype": ..., "shape": [...], "data_offsets": [begin, end]}. */
static vkm_status parse_tensor(vkm_st *s, const cJSON *j, uint64_t data_start, vkm_tensor_src *t,
                               vkm_err *e)
{
    const char *name = j->string;
    size_t len = strlen(name);
    if (len == 0 || len >= VKM_MAX_NAME || !vkm_utf8_valid(name, len))
        return vkm_fail(e, VKM_ERR_FORMAT,
                        "%s: tensor name '%.64s' must be non-empty valid UTF-8 shorter than %d bytes",
                        s->path, name, VKM_MAX_NAME);
    memcpy(t->name, name, len + 1);
    if (!cJSON_IsObject(j))
        return vkm_fail(e, VKM_ERR_FORMAT, "%s: tensor '%s' is %s, not an object", s->path, name,
                        vkm_json_type_name(j));
    const cJSON *dt = NULL, *shape = NULL, *offs = NULL;
    for (const cJSON *c = j->child; c; c = c->next) {
        if (!strcmp(c->string, "dtype")) dt = c;
        else if (!strcmp(c->string, "shape")) shape = c;
        else if (!strcmp(c->string, "data_offsets")) offs = c;
        else
            return vkm_fail(e, VKM_ERR_FORMAT, "%s: tensor '%s': unknown key '%s'", s->path, name,
                            c->string);
    }
    if (!cJSON_IsString(dt))
        return vkm_fail(e, VKM_ERR_FORMAT, "%s: tensor '%s': dtype is %s, not a string", s->path,
                        name, vkm_json_type_name(dt));
    if (!vkm_st_dtype_parse(dt->valuestring, &t->dtype))
        return vkm_fail(e, VKM_ERR_UNSUPPORTED,
                        "%s: tensor '%s': dtype '%.32s' is not supported (F32, F16, BF16 and I8..I64, "
                        "F64 are)",
                        s->path, name, dt->valuestring);
    int n_dims = cJSON_GetArraySize(shape);
    if (!cJSON_IsArray(shape) || n_dims > VKM_MAX_DIMS)
        return vkm_fail(e, VKM_ERR_FORMAT, "%s: tensor '%s': shape must be an array of at most %d sizes",
                        s->path, name, VKM_MAX_DIMS);
    t->n_dims = n_dims;
    for (int d = 0; d < VKM_MAX_DIMS; d++) t->ne[d] = 1;
    uint64_t nelem = 1;
    int d = n_dims;
    for (const cJSON *c = shape->child; c; c = c->next) {
        int64_t v;
        if (!vkm_json_int(c, 0, INT64_MAX, &v) || !vkm_mul_ok(nelem, (uint64_t)v, &nelem))
            return vkm_fail(e, VKM_ERR_FORMAT, "%s: tensor '%s': bad shape (sizes must be integers >= 0)",
                            s->path, name);
        t->ne[--d] = v; /* reversed: ne[0] is the innermost dimension */
    }
    int64_t b, end;
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
        !vkm_json_int(offs->child, 0, INT64_MAX, &b) ||
        !vkm_json_int(offs->child->next, 0, INT64_MAX, &end) || end < b)
        return vkm_fail(e, VKM_ERR_FORMAT,
                        "%s: tensor '%s': data_offsets must be [begin, end] with 0 <= begin <= end",
                        s->path, name);
    if (!vkm_dtype_bytes(t->dtype, nelem, &t->nbytes) || t->nbytes != (uint64_t)(end - b)) {
        char sh[96];
        return vkm_fail(e, VKM_ERR_FORMAT,
                        "%s: tensor '%s': shape %s of %s needs %llu bytes but data_offsets span %lld",
                        s->path, name, vkm_shape_str(t->ne, t->n_dims, sh, sizeof sh),
                        vkm_dtype_name(t->dtype), (unsigned long long)t->nbytes,
                        (long long)(end - b));
    }
    if ((uint64_t)end > s->map.size - data_start)
        return vkm_fail(e, VKM_ERR_FORMAT,
                        "%s: tensor '%s': data_offsets [%lld, %lld) run past the end of the file "
                        "(the data section has %llu bytes)",
                        s->path, name, (long long)b, (long long)end,
                        (unsigned long long)(s->map.size - data_start));
    t->offset = data_start + (uint64_t)b;
    t->data = s->map.data + t->offset;
    return VKM_OK;
}

static vkm_status parse_header(vkm_st *s, const cJSON *root, vkm_err *e)
{
    if (!cJSON_IsObject(root))
        return vkm_fail(e, VKM_ERR_FORMAT, "%s: the header is %s, not a JSON object", s->path,
                        vkm_json_type_name(root));
    uint64_t n = 0, data_start = 8 + s->header_len;
    for (const cJSON *c = root->child; c; c = c->next) n += strcmp(c->string, "__metadata__") != 0;
    if (n > VKM_MAX_TENSORS)
        return vkm_fail(e, VKM_ERR_FORMAT, "%s: %llu tensors, more than the limit of %u", s->path,
                        (unsigned long long)n, VKM_MAX_TENSORS);
    s->tensors = calloc(n ? n : 1, sizeof *s->tensors);
    if (!s->tensors) return oom(s->path, e);
    vkm_status st;
    for (const cJSON *c = root->child; c; c = c->next) {
        if (!strcmp(c->string, "__metadata__")) st = parse_meta(s, c, e);
        else st = parse_tensor(s, c, data_start, &s->tensors[s->n_tensors++], e);
        if (st) return st;
    }
    if ((st = vkm_tensors_index(s->path, s->tensors, s->n_tensors, &s->tensor_by_name, e)))
        return st;
    return vkm_tensors_check_overlap(s->path, s->tensors, s->n_tensors, e);
}

static vkm_status parse(vkm_st *s, vkm_err *e)
{
    if (s->map.size < 8)
        return vkm_fail(e, VKM_ERR_FORMAT, "%s: truncated: %llu bytes, not even the 8-byte header length",
                        s->path, (unsigned long long)s->map.size);
    s->header_len = vkm_rd64(s->map.data);
    if (s->header_len > VKM_MAX_JSON_HEADER)
        return vkm_fail(e, VKM_ERR_FORMAT, "%s: header length %llu exceeds the limit of %u", s->path,
                        (unsigned long long)s->header_len, VKM_MAX_JSON_HEADER);
    if (s->header_len > s->map.size - 8)
        return vkm_fail(e, VKM_ERR_FORMAT,
                        "%s: truncated: header length %llu runs past the end of the file (%llu bytes)",
                        s->path, (unsigned long long)s->header_len, (unsigned long long)s->map.size);
    const char *text = (const char *)s->map.data + 8;
    if (s->header_len < 2 || text[0] != '{')
        return vkm_fail(e, VKM_ERR_FORMAT, "%s: not a safetensors file (the header is not a JSON object)",
                        s->path);
    cJSON *root;
    vkm_status st = vkm_json_parse(text, (size_t)s->header_len, s->path, &root, e);
    if (st) return st;
    st = parse_header(s, root, e);
    cJSON_Delete(root);
    return st;
}

static vkm_status open_common(vkm_st *s, vkm_err *e)
{
    vkm_status st = parse(s, e);
    if (st) vkm_st_close(s);
    return st;
}

vkm_status vkm_st_open(const char *path, vkm_st *s, vkm_err *e)
{
    memset(s, 0, sizeof *s);
    snprintf(s->path, sizeof s->path, "%s", path);
    vkm_status st = vkm_map_open(path, &s->map, e);
    if (st) return st;
    s->own_map = true;
    return open_common(s, e);
}

vkm_status vkm_st_open_mem(const void *data, uint64_t size, const char *name, vkm_st *s,
                           vkm_err *e)
{
    memset(s, 0, sizeof *s);
    snprintf(s->path, sizeof s->path, "%s", name ? name : "(memory)");
    s->map.data = data;
    s->map.size = data ? size : 0;
    return open_common(s, e);
}

void vkm_st_close(vkm_st *s)
{
    if (!s) return;
    for (uint64_t i = 0; i < s->n_meta; i++) {
        free(s->meta[i].key);
        free(s->meta[i].value);
    }
    free(s->meta);
    free(s->tensors);
    free(s->tensor_by_name);
    if (s->own_map) vkm_map_close(&s->map);
    memset(s, 0, sizeof *s);
}

const vkm_tensor_src *vkm_st_tensor(const vkm_st *s, const char *name)
{
    if (!s->tensor_by_name || !name) return NULL;
    return vkm_tensors_find(s->tensor_by_name, s->n_tensors, name);
}

const char *vkm_st_meta_get(const vkm_st *s, const char *key)
{
    for (uint64_t i = 0; i < s->n_meta; i++)
        if (!strcmp(s->meta[i].key, key)) return s->meta[i].value;
    return NULL;
}

/* ---- sharded sets ------------------------------------------------------------------------- */
#define MAX_SHARDS 65536u

static int strp_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* One weight_map entry; sorted by name for lookups. */
typedef struct wm_entry {
    const char *name, *file;
} wm_entry;

typedef struct index_ctx {
    const char *path;
    wm_entry *map;       /* n_map entries sorted by name */
    uint64_t n_map;
    const char **files;  /* distinct shard names, sorted */
    uint32_t n_files;
} index_ctx;

/* Reads the weight map into x: every value the plain file name of a shard beside the index. */
static vkm_status read_weight_map(index_ctx *x, const cJSON *wm, vkm_err *e)
{
    uint64_t n = 0;
    for (const cJSON *c = wm->child; c; c = c->next) n++;
    x->map = malloc((n ? n : 1) * sizeof *x->map);
    x->files = malloc((n ? n : 1) * sizeof *x->files);
    if (!x->map || !x->files) return oom(x->path, e);
    for (const cJSON *c = wm->child; c; c = c->next) {
        const char *f = cJSON_IsString(c) ? c->valuestring : NULL;
        if (!f || !f[0] || strchr(f, '/') || !strcmp(f, ".") || !strcmp(f, ".."))
            return vkm_fail(e, VKM_ERR_FORMAT,
                            "%s: weight_map['%.200s'] must be the plain file name of a shard beside "
                            "the index",
                            x->path, c->string);
        x->map[x->n_map].name = c->string;
        x->map[x->n_map++].file = f;
    }
    if (x->n_map == 0) return vkm_fail(e, VKM_ERR_FORMAT, "%s: the weight_map is empty", x->path);
    qsort(x->map, x->n_map, sizeof *x->map, strp_cmp); /* name is the first member */
    for (uint64_t i = 0; i < x->n_map; i++) x->files[i] = x->map[i].file;
    qsort(x->files, x->n_map, sizeof *x->files, strp_cmp);
    uint64_t u = 0;
    for (uint64_t i = 0; i < x->n_map; i++)
        if (u == 0 || strcmp(x->files[u - 1], x->files[i])) x->files[u++] = x->files[i];
    if (u > MAX_SHARDS)
        return vkm_fail(e, VKM_ERR_FORMAT, "%s: more than %u shards", x->path, MAX_SHARDS);
    x->n_files = (uint32_t)u;
    return VKM_OK;
}

/* Every weight_map entry is in the shard it names, every shard tensor is listed under its shard. */
static vkm_status check_weight_map(const index_ctx *x, const vkm_st_set *s, vkm_err *e)
{
    for (uint64_t i = 0; i < x->n_map; i++) {
        const char **f = bsearch(&x->map[i].file, x->files, x->n_files, sizeof *x->files, strp_cmp);
        if (!vkm_st_tensor(&s->files[f - x->files], x->map[i].name))
            return vkm_fail(e, VKM_ERR_FORMAT, "%s: weight_map says '%s' is in %s, but it is not there",
                            x->path, x->map[i].name, x->map[i].file);
    }
    for (uint32_t k = 0; k < s->n_files; k++)
        for (uint64_t i = 0; i < s->files[k].n_tensors; i++) {
            wm_entry key = {s->files[k].tensors[i].name, NULL};
            const wm_entry *m = bsearch(&key, x->map, x->n_map, sizeof *x->map, strp_cmp);
            if (!m || strcmp(m->file, x->files[k]))
                return vkm_fail(e, VKM_ERR_FORMAT,
                                "%s: tensor '%s' of shard %s is %s in the weight_map", x->path,
                                key.name, x->files[k], m ? "listed under another shard" : "not listed");
        }
    return VKM_OK;
}

static vkm_status open_index(vkm_st_set *s, const char *path, vkm_err *e)
{
    cJSON *root;
    vkm_status st = vkm_json_load(path, VKM_MAX_JSON_FILE, &root, e);
    if (st) return st;
    index_ctx x = {.path = path};
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm))
        st = vkm_fail(e, VKM_ERR_FORMAT, "%s: weight_map is %s, not an object", path,
                      vkm_json_type_name(wm));
    if (!st) st = read_weight_map(&x, wm, e);
    if (!st && !(s->files = calloc(x.n_files, sizeof *s->files))) st = oom(path, e);
    char dir[1024], file[1024];
    vkm_path_dir(dir, sizeof dir, path);
    for (uint32_t i = 0; i < x.n_files && !st; i++) {
        if (!vkm_path_join(file, sizeof file, dir, x.files[i]))
            st = vkm_fail(e, VKM_ERR_IO, "%s: shard path too long", path);
        else if (!(st = vkm_st_open(file, &s->files[i], e)))
            s->n_files = i + 1;
    }
    if (!st) st = check_weight_map(&x, s, e);
    free(x.map);
    free(x.files);
    cJSON_Delete(root);
    return st;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static vkm_status open_single(vkm_st_set *s, const char *path, vkm_err *e)
{
    if (!(s->files = calloc(1, sizeof *s->files))) return oom(path, e);
    vkm_status st = vkm_st_open(path, &s->files[0], e);
    if (!st) s->n_files = 1;
    return st;
}

vkm_status vkm_st_set_open(const char *path, vkm_st_set *s, vkm_err *e)
{
    memset(s, 0, sizeof *s);
    char p[1024];
    vkm_status st;
    if (vkm_is_dir(path)) {
        if (!vkm_path_join(p, sizeof p, path, "model.safetensors.index.json"))
            return vkm_fail(e, VKM_ERR_IO, "%s: path too long", path);
        if (!vkm_exists(p) && !vkm_path_join(p, sizeof p, path, "model.safetensors"))
            return vkm_fail(e, VKM_ERR_IO, "%s: path too long", path);
        if (!vkm_exists(p))
            return vkm_fail(e, VKM_ERR_NOT_FOUND,
                            "%s: no model.safetensors.index.json or model.safetensors in this folder",
                            path);
    } else {
        snprintf(p, sizeof p, "%s", path);
    }
    snprintf(s->path, sizeof s->path, "%s", p);
    s->sharded = ends_with(p, ".json");
    st = s->sharded ? open_index(s, p, e) : open_single(s, p, e);
    if (st) vkm_st_set_close(s);
    return st;
}

void vkm_st_set_close(vkm_st_set *s)
{
    if (!s) return;
    for (uint32_t i = 0; i < s->n_files; i++) vkm_st_close(&s->files[i]);
    free(s->files);
    memset(s, 0, sizeof *s);
}

const vkm_tensor_src *vkm_st_set_tensor(const vkm_st_set *s, const char *name)
{
    for (uint32_t i = 0; i < s->n_files; i++) {
        const vkm_tensor_src *t = vkm_st_tensor(&s->files[i], name);
        if (t) return t;
    }
    return NULL;
}
