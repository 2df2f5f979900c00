/*
 * json.c — strict cJSON helpers the JSON readers share (safetensors headers, config.json,
 * adapter_config.json, index files, the manifest): parsing a whole text with a line:column on
 * failure, duplicate keys refused anywhere in the document, exact integers and type names.
 */
#include "json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *vkm_json_type_name(const cJSON *v)
{
    if (!v) return "nothing";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v))
        return isfinite(v->valuedouble) && fabs(v->valuedouble) <= 1e30 ? "a number" : "a number out of range";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "an invalid value";
}

bool vkm_json_int(const cJSON *v, int64_t min, int64_t max, int64_t *out)
{
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    /* exact integers only, within +-2^53 where doubles hold every integer */
    if (!isfinite(d) || d != floor(d) || fabs(d) > 9007199254740992.0) return false;
    int64_t i = (int64_t)d;
    if (i < min || i > max) return false;
    *out = i;
    return true;
}

bool vkm_json_num(const cJSON *v, double *out)
{
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || fabs(v->valuedouble) > 1e30) return false;
    *out = v->valuedouble;
    return true;
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first key that appears twice among obj's members, or NULL. */
static const char *dup_key(const cJSON *obj, bool *oom)
{
    size_t n = 0;
    for (const cJSON *c = obj->child; c; c = c->next) n++;
    if (n < 2) return NULL;
    const char **keys = malloc(n * sizeof *keys);
    if (!keys) {
        *oom = true;
        return NULL;
    }
    n = 0;
    for (const cJSON *c = obj->child; c; c = c->next) keys[n++] = c->string ? c->string : "";
    qsort(keys, n, sizeof *keys, str_cmp);
    const char *dup = NULL;
    for (size_t i = 1; i < n && !dup; i++)
        if (!strcmp(keys[i - 1], keys[i])) dup = keys[i];
    free(keys);
    return dup;
}

/* Depth-first search for a duplicate key (cJSON bounds the nesting depth, so does the
 * recursion). *owner receives the key of the object that holds it (NULL for the root). */
static const char *find_dup(const cJSON *v, const char **owner, bool *oom)
{
    if (cJSON_IsObject(v)) {
        const char *d = dup_key(v, oom);
        if (d || *oom) {
            *owner = v->string;
            return d;
        }
    }
    if (cJSON_IsObject(v) || cJSON_IsArray(v))
        for (const cJSON *c = v->child; c; c = c->next) {
            const char *d = find_dup(c, owner, oom);
            if (d || *oom) return d;
        }
    return NULL;
}

/* True when the text holds a \u0000 escape: cJSON would cut the string there silently. */
static bool has_nul_escape(const char *text, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++)
        if (text[i] == '\\') {
            if (text[i + 1] == 'u' && i + 5 < len && !memcmp(text + i + 2, "0000", 4)) return true;
            i++; /* skip the escaped character */
        }
    return false;
}

vkm_status vkm_json_parse(const char *text, size_t len, const char *path, cJSON **out,
                          vkm_err *e)
{
    *out = NULL;
    if (has_nul_escape(text, len))
        return vkm_fail(e, VKM_ERR_FORMAT, "%s: a \\u0000 (NUL) escape in a JSON string", path);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!root) {
        size_t at = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
        unsigned line = 1, col = 1;
        for (size_t i = 0; i < at; i++, col++)
            if (text[i] == '\n') line++, col = 0;
        return vkm_fail(e, VKM_ERR_FORMAT, "%s: not valid JSON (line %u, column %u)", path, line,
                        col);
    }
    for (const char *p = end; p < text + len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(root);
            return vkm_fail(e, VKM_ERR_FORMAT, "%s: trailing bytes after the JSON value", path);
        }
    bool oom = false;
    const char *owner = NULL, *dup = find_dup(root, &owner, &oom);
    if (dup || oom) {
        vkm_status s = oom ? vkm_fail(e, VKM_ERR_OUT_OF_HOST_MEMORY, "%s: out of memory", path)
                           : vkm_fail(e, VKM_ERR_FORMAT, "%s: duplicate key '%s'%s%s%s", path, dup,
                                      owner ? " in '" : "", owner ? owner : "", owner ? "'" : "");
        cJSON_Delete(root);
        return s;
    }
    *out = root;
    return VKM_OK;
}

vkm_status vkm_json_load(const char *path, uint64_t max_bytes, cJSON **out, vkm_err *e)
{
    char *text;
    uint64_t len;
    *out = NULL;
    vkm_status s = vkm_read_text(path, max_bytes, &text, &len, e);
    if (s) return s;
    s = vkm_json_parse(text, (size_t)len, path, out, e);
    free(text);
    return s;
}
