/*
 * file.c — the public vkm_file_* API (vkmoe.h): opens any model or adapter file the loader reads,
 * detects its format, lists its metadata (values rendered as text, arrays abbreviated) and its
 * tensors, and validates the whole of it (structure, model or adapter rules, finite values).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "loader.h"

typedef enum fkind { F_GGUF, F_GGUF_LORA, F_ST, F_ST_SHARDED, F_HF, F_PEFT } fkind;
static const char *const kind_names[] = {"gguf", "gguf-lora", "safetensors", "safetensors-sharded",
                                         "hf-folder", "peft"};

/* One metadata entry: a GGUF key, a safetensors "__metadata__" pair or a JSON config member. */
typedef struct fmeta {
    char key[VKM_MAX_NAME + 64];
    const vkm_gguf_kv *kv;
    const cJSON *json;
    const char *str;
} fmeta;

struct vkm_file {
    vkm_err err;
    fkind kind;
    char path[1024];
    char model_path[1100];      /* what vkm_model_src_open / vkm_adapter_open validate, or "" */
    bool adapter;
    vkm_gguf gguf;
    vkm_st_set st;
    cJSON *config;              /* config.json or adapter_config.json */
    size_t n_meta;
    fmeta *meta;
    size_t n_tensors;
    const vkm_tensor_src **tensors;
};

/* ---- opening ------------------------------------------------------------------------------ */
static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static bool join_exists(char *out, size_t cap, const char *dir, const char *name)
{
    return vkm_path_join(out, cap, dir, name) && vkm_exists(out);
}

static vkm_status add_meta(vkm_file *f, const char *prefix, const char *key, const vkm_gguf_kv *kv,
                           const cJSON *json, const char *str)
{
    fmeta *m = realloc(f->meta, (f->n_meta + 1) * sizeof *m);
    if (!m) return vkm_fail(&f->err, VKM_ERR_OUT_OF_HOST_MEMORY, "%s: out of memory", f->path);
    f->meta = m;
    m += f->n_meta++;
    snprintf(m->key, sizeof m->key, "%s%s", prefix, key);
    m->kv = kv;
    m->json = json;
    m->str = str;
    return VKM_OK;
}

/* Tensors and "__metadata__" of every shard (keys prefixed with the shard's name if several). */
static vkm_status list_st(vkm_file *f)
{
    size_t n = 0;
    for (uint32_t i = 0; i < f->st.n_files; i++) n += f->st.files[i].n_tensors;
    f->tensors = malloc((n ? n : 1) * sizeof *f->tensors);
    if (!f->tensors) return vkm_fail(&f->err, VKM_ERR_OUT_OF_HOST_MEMORY, "%s: out of memory", f->path);
    vkm_status s = VKM_OK;
    for (uint32_t i = 0; i < f->st.n_files && !s; i++) {
        const vkm_st *st = &f->st.files[i];
        for (uint64_t t = 0; t < st->n_tensors; t++) f->tensors[f->n_tensors++] = &st->tensors[t];
        char prefix[300] = "";
        if (f->st.n_files > 1) {
            const char *slash = strrchr(st->path, '/');
            snprintf(prefix, sizeof prefix, "%.250s: ", slash ? slash + 1 : st->path);
        }
        for (uint64_t k = 0; k < st->n_meta && !s; k++)
            s = add_meta(f, prefix, st->meta[k].key, NULL, NULL, st->meta[k].value);
    }
    return s;
}

static vkm_status list_gguf(vkm_file *f)
{
    f->tensors = malloc((f->gguf.n_tensors ? f->gguf.n_tensors : 1) * sizeof *f->tensors);
    if (!f->tensors) return vkm_fail(&f->err, VKM_ERR_OUT_OF_HOST_MEMORY, "%s: out of memory", f->path);
    for (uint64_t t = 0; t < f->gguf.n_tensors; t++) f->tensors[f->n_tensors++] = &f->gguf.tensors[t];
    vkm_status s = VKM_OK;
    for (uint64_t k = 0; k < f->gguf.n_kv && !s; k++) s = add_meta(f, "", f->gguf.kv[k].key, &f->gguf.kv[k], NULL, NULL);
    return s;
}

/* Reads a JSON config beside the tensors and lists its members as "<prefix><key>". */
static vkm_status read_config(vkm_file *f, const char *path, const char *prefix)
{
    vkm_status s = vkm_json_load(path, VKM_MAX_JSON_FILE, &f->config, &f->err);
    if (s) return s;
    if (!cJSON_IsObject(f->config))
        return vkm_fail(&f->err, VKM_ERR_FORMAT, "%s: expected a JSON object", path);
    for (const cJSON *c = f->config->child; c && !s; c = c->next) s = add_meta(f, prefix, c->string, NULL, c, NULL);
    return s;
}

static vkm_status open_file(vkm_file *f, const char *path);

static vkm_status open_dir(vkm_file *f, const char *dir)
{
    char p[1100];
    vkm_status s;
    if (join_exists(p, sizeof p, dir, "adapter_config.json")) {
        f->kind = F_PEFT;
        f->adapter = true;
        snprintf(f->model_path, sizeof f->model_path, "%s", dir);
        if ((s = read_config(f, p, "adapter_config."))) return s;
        if (!vkm_path_join(p, sizeof p, dir, "adapter_model.safetensors") || !vkm_exists(p))
            return vkm_fail(&f->err, VKM_ERR_NOT_FOUND, "%s: no adapter_model.safetensors in this folder", dir);
        return (s = vkm_st_set_open(p, &f->st, &f->err)) ? s : list_st(f);
    }
    if (join_exists(p, sizeof p, dir, "config.json")) {
        f->kind = F_HF;
        snprintf(f->model_path, sizeof f->model_path, "%s", dir);
        if ((s = read_config(f, p, "config."))) return s;
        return (s = vkm_st_set_open(dir, &f->st, &f->err)) ? s : list_st(f);
    }
    if (join_exists(p, sizeof p, dir, "model.safetensors.index.json") ||
        join_exists(p, sizeof p, dir, "model.safetensors")) {
        f->kind = ends_with(p, ".json") ? F_ST_SHARDED : F_ST;
        return (s = vkm_st_set_open(p, &f->st, &f->err)) ? s : list_st(f);
    }
    if (join_exists(p, sizeof p, dir, "model.gguf") || join_exists(p, sizeof p, dir, "adapter.gguf"))
        return open_file(f, p);
    return vkm_fail(&f->err, VKM_ERR_NOT_FOUND, "%s: no model or adapter this loader knows in this folder", dir);
}

static vkm_status open_file(vkm_file *f, const char *path)
{
    vkm_map map;
    vkm_status s = vkm_map_open(path, &map, &f->err);
    if (s) return s;
    bool gguf = map.size >= 4 && !memcmp(map.data, "GGUF", 4);
    vkm_map_close(&map);
    if (gguf) {
        if ((s = vkm_gguf_open(path, &f->gguf, &f->err))) return s;
        char type[32];
        f->adapter = vkm_gguf_get_str(&f->gguf, "general.type", type, sizeof type) && !strcmp(type, "adapter");
        f->kind = f->adapter ? F_GGUF_LORA : F_GGUF;
        char arch[32];
        if (f->adapter ||
            (vkm_gguf_get_str(&f->gguf, "general.architecture", arch, sizeof arch) &&
             (!strcmp(arch, "llama") || !strcmp(arch, "mistral") || !strcmp(arch, "qwen2"))))
            snprintf(f->model_path, sizeof f->model_path, "%s", path);
        return list_gguf(f);
    }
    f->kind = ends_with(path, ".json") ? F_ST_SHARDED : F_ST;
    if (f->kind == F_ST_SHARDED && vkm_manifest_sniff(path, NULL, 0))
        return vkm_fail(&f->err, VKM_ERR_UNSUPPORTED, "%s: a MoErged manifest, not a model file (run it with "
                        "`vkmoe run -M`, see its routing with `vkmoe route -M`)", path);
    if ((s = vkm_st_set_open(path, &f->st, &f->err))) {
        if (!ends_with(path, ".safetensors") && f->kind == F_ST)
            vkm_err_prefix(&f->err, "not a GGUF file, and read as safetensors");
        return s;
    }
    char dir[1024], p[1100];
    vkm_path_dir(dir, sizeof dir, path);
    if (join_exists(p, sizeof p, dir, "config.json")) snprintf(f->model_path, sizeof f->model_path, "%s", path);
    else if (join_exists(p, sizeof p, dir, "adapter_config.json") && ends_with(path, "adapter_model.safetensors")) {
        f->adapter = true;
        snprintf(f->model_path, sizeof f->model_path, "%s", dir);
    }
    return list_st(f);
}

vkm_status vkm_file_open(const char *path, vkm_file **out)
{
    *out = NULL;
    vkm_file *f = calloc(1, sizeof *f);
    if (!f) return VKM_ERR_OUT_OF_HOST_MEMORY;
    *out = f;
    if (!path) return vkm_fail(&f->err, VKM_ERR_INVALID_ARGUMENT, "vkm_file_open: path is NULL");
    snprintf(f->path, sizeof f->path, "%s", path);
    vkm_status s;
    s = vkm_is_dir(path) ? open_dir(f, path) : open_file(f, path);
    f->err.status = s;
    return s;
}

void vkm_file_close(vkm_file *f)
{
    if (!f) return;
    vkm_gguf_close(&f->gguf);
    vkm_st_set_close(&f->st);
    cJSON_Delete(f->config);
    free(f->meta);
    free(f->tensors);
    free(f);
}

const char *vkm_file_errmsg(const vkm_file *f) { return f ? f->err.msg : "vkm_file: NULL handle"; }
const char *vkm_file_format(const vkm_file *f) { return f ? kind_names[f->kind] : "?"; }
size_t vkm_file_n_meta(const vkm_file *f) { return f ? f->n_meta : 0; }
size_t vkm_file_n_tensors(const vkm_file *f) { return f ? f->n_tensors : 0; }

/* ---- rendering values --------------------------------------------------------------------- */
typedef struct out {
    char *p;
    size_t cap, n;
} out;

static void put(out *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n && o->n + 1 < o->cap; i++) o->p[o->n++] = s[i];
    if (o->cap) o->p[o->n] = 0;
}

static void putf(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(out *o, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) put(o, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* A string with control characters escaped, cut after 200 bytes. */
static void put_str(out *o, const char *s, uint64_t n)
{
    uint64_t lim = n < 200 ? n : 200;
    put(o, "\"", 1);
    for (uint64_t i = 0; i < lim; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c == '"' || c == '\\') {
            if (c == '\n') put(o, "\\n", 2);
            else if (c == '"' || c == '\\') putf(o, "\\%c", c);
            else putf(o, "\\x%02x", c);
        } else {
            put(o, (const char *)&c, 1);
        }
    }
    put(o, "\"", 1);
    if (n > lim) putf(o, "... (%llu bytes)", (unsigned long long)n);
}

static void put_arr(out *o, const vkm_gguf_arr *a, int depth)
{
    enum { SHOW = 8 };
    putf(o, "[%s x %llu] ", vkm_gguf_type_name(a->elem_type), (unsigned long long)a->n);
    for (uint64_t i = 0; i < a->n && i < SHOW; i++) {
        if (i) put(o, ", ", 2);
        int64_t v;
        double d;
        if (a->elem_type == VKM_GGUF_STRING) put_str(o, a->strs[i].p, a->strs[i].n);
        else if (a->elem_type == VKM_GGUF_ARRAY) {
            if (depth < 2) put_arr(o, &a->arrs[i], depth + 1);
            else put(o, "[...]", 5);
        } else if (vkm_gguf_arr_f64(a, i, &d)) putf(o, "%g", d);
        else if (vkm_gguf_arr_i64(a, i, &v)) putf(o, a->elem_type == VKM_GGUF_BOOL ? (v ? "true" : "false") : "%lld", (long long)v);
        else putf(o, "%llu", (unsigned long long)vkm_rd64(a->data + 8 * i)); /* u64 above INT64_MAX */
    }
    if (a->n > SHOW) put(o, ", ...", 5);
}

static void put_kv(out *o, const vkm_gguf_kv *kv)
{
    switch (kv->type) {
    case VKM_GGUF_STRING: put_str(o, kv->v.s.p, kv->v.s.n); break;
    case VKM_GGUF_ARRAY: put_arr(o, &kv->v.a, 0); break;
    case VKM_GGUF_F32: case VKM_GGUF_F64: putf(o, "%.9g", kv->v.f); break;
    case VKM_GGUF_BOOL: putf(o, "%s", kv->v.u ? "true" : "false"); break;
    case VKM_GGUF_I8: case VKM_GGUF_I16: case VKM_GGUF_I32: case VKM_GGUF_I64: putf(o, "%lld", (long long)kv->v.i); break;
    default: putf(o, "%llu", (unsigned long long)kv->v.u); break;
    }
}

vkm_status vkm_file_meta(const vkm_file *f, size_t i, const char **key, char *buf, size_t cap)
{
    if (!f || i >= f->n_meta || (cap && !buf)) return VKM_ERR_INVALID_ARGUMENT;
    const fmeta *m = &f->meta[i];
    out o = {buf, cap, 0};
    if (cap) buf[0] = 0;
    if (key) *key = m->key;
    if (m->kv) put_kv(&o, m->kv);
    else if (m->str) put_str(&o, m->str, strlen(m->str));
    else {
        char *text = cJSON_PrintUnformatted(m->json);
        if (!text) return VKM_ERR_OUT_OF_HOST_MEMORY;
        size_t n = strlen(text);
        put(&o, text, n < 300 ? n : 300);
        if (n > 300) putf(&o, "... (%zu bytes)", n);
        free(text);
    }
    return VKM_OK;
}

vkm_status vkm_file_tensor(const vkm_file *f, size_t i, vkm_tensor_info *out_info)
{
    if (!f || i >= f->n_tensors || !out_info) return VKM_ERR_INVALID_ARGUMENT;
    const vkm_tensor_src *t = f->tensors[i];
    bool gguf = f->kind == F_GGUF || f->kind == F_GGUF_LORA;
    memset(out_info, 0, sizeof *out_info);
    out_info->name = t->name;
    out_info->dtype = t->dtype;
    out_info->n_dims = t->n_dims;
    for (int d = 0; d < t->n_dims; d++) out_info->dims[d] = gguf ? t->ne[d] : t->ne[t->n_dims - 1 - d];
    out_info->bytes = t->nbytes;
    out_info->offset = t->offset;
    return VKM_OK;
}

/* ---- validation --------------------------------------------------------------------------- */
/* Every value of a floating-point or quantized tensor is finite. */
static vkm_status check_values(vkm_file *f, const vkm_tensor_src *t)
{
    const vkm_dtype_traits *tr = vkm_dtype_info(t->dtype);
    if (t->dtype >= VKM_I8 && t->dtype <= VKM_I64) return VKM_OK;
    enum { CHUNK = 4096 }; /* a multiple of every block size */
    float *buf = malloc(CHUNK * sizeof *buf);
    if (!buf) return vkm_fail(&f->err, VKM_ERR_OUT_OF_HOST_MEMORY, "%s: out of memory", f->path);
    uint64_t n = (uint64_t)vkm_tensor_nelem(t);
    vkm_status s = VKM_OK;
    for (uint64_t at = 0; at < n && !s; at += CHUNK) {
        uint64_t k = n - at < CHUNK ? n - at : CHUNK;
        vkm_to_f32(t->dtype, t->data + at / tr->block * tr->block_bytes, k, buf);
        for (uint64_t j = 0; j < k && !s; j++)
            if (!isfinite(buf[j]))
                s = vkm_fail(&f->err, VKM_ERR_FORMAT, "%s: tensor '%s': element %llu is %s", f->path, t->name,
                             (unsigned long long)(at + j), isnan(buf[j]) ? "NaN" : "infinite");
    }
    free(buf);
    return s;
}

vkm_status vkm_file_validate(vkm_file *f)
{
    if (!f) return VKM_ERR_INVALID_ARGUMENT;
    if (f->err.status) return f->err.status; /* the open failed */
    vkm_status s = VKM_OK;
    if (f->model_path[0] && f->adapter) {
        vkm_adapter_src a;
        s = vkm_adapter_open(f->model_path, &a, &f->err);
        vkm_adapter_close(&a);
    } else if (f->model_path[0]) {
        vkm_model_src m;
        s = vkm_model_src_open(f->model_path, &m, &f->err);
        vkm_model_src_close(&m);
    }
    for (size_t i = 0; i < f->n_tensors && !s; i++) s = check_values(f, f->tensors[i]);
    return s;
}
