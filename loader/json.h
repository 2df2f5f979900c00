/*
 * json.h — internal to loader/: strict helpers over cJSON shared by the JSON readers.
 */
#ifndef VKM_JSON_H
#define VKM_JSON_H

#include <cJSON.h>

#include "base.h"

#define VKM_MAX_JSON_FILE (64u << 20) /* config.json, adapter_config.json, index, manifest */

/* Parses len bytes holding exactly one JSON value (trailing whitespace allowed). VKM_ERR_FORMAT
 * with "line L, column C" for bad JSON, or naming a key that appears twice in one object. */
vkm_status vkm_json_parse(const char *text, size_t len, const char *path, cJSON **out,
                          vkm_err *e);
/* Reads a file (at most max_bytes) and parses it like vkm_json_parse. */
vkm_status vkm_json_load(const char *path, uint64_t max_bytes, cJSON **out, vkm_err *e);
/* "a string", "a number", "an object", ... for messages. */
const char *vkm_json_type_name(const cJSON *v);
/* An exact integer in [min, max] (|v| <= 2^53); false otherwise. */
bool vkm_json_int(const cJSON *v, int64_t min, int64_t max, int64_t *out);
/* A finite number of magnitude at most 1e30 (so it converts to a finite float). */
bool vkm_json_num(const cJSON *v, double *out);

#endif /* VKM_JSON_H */
