/*
 * cmd_info.c — `vkmoe info PATH...`: inspects any model or adapter the loader reads (GGUF, GGUF
 * LoRA, safetensors file or sharded set, Hugging Face folder, PEFT folder): its format, its
 * metadata, every tensor with dtype, shape and bytes, then validates the whole of it. Exits 1
 * with the loader's message on any problem.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: vkmoe info [--no-meta] [--no-tensors] PATH...\n"
               "  PATH: a .gguf model or LoRA, a .safetensors file, a model.safetensors.index.json,\n"
               "        a Hugging Face model folder or a PEFT adapter folder\n");
}

static bool is_gguf(const char *format) { return !strncmp(format, "gguf", 4); }

/* Prints one file; returns the exit code for it. */
static int info_one(const char *path, bool meta, bool tensors)
{
    vkm_file *f = NULL;
    vkm_status s = vkm_file_open(path, &f);
    if (s != VKM_OK) {
        int rc = cli_error("info", "%s", f ? vkm_file_errmsg(f) : vkm_status_str(s));
        vkm_file_close(f);
        return rc;
    }
    const char *format = vkm_file_format(f);
    printf("%s\nformat: %s\n", path, format);
    if (meta) {
        size_t n = vkm_file_n_meta(f);
        printf("metadata (%zu):\n", n);
        for (size_t i = 0; i < n; i++) {
            const char *key;
            char value[1024];
            if (vkm_file_meta(f, i, &key, value, sizeof value) == VKM_OK) printf("  %s = %s\n", key, value);
        }
    }
    size_t n = vkm_file_n_tensors(f);
    uint64_t total = 0;
    if (tensors)
        printf("tensors (%zu, dims %s):\n", n, is_gguf(format) ? "in GGUF order, ne0 first" : "outermost first");
    for (size_t i = 0; i < n; i++) {
        vkm_tensor_info t;
        if (vkm_file_tensor(f, i, &t) != VKM_OK) continue;
        total += t.bytes;
        if (!tensors) continue;
        char shape[96];
        int k = snprintf(shape, sizeof shape, "[");
        for (int d = 0; d < t.n_dims && k < (int)sizeof shape; d++)
            k += snprintf(shape + k, sizeof shape - (size_t)k, "%s%lld", d ? ", " : "", (long long)t.dims[d]);
        if (k < (int)sizeof shape) snprintf(shape + k, sizeof shape - (size_t)k, "]");
        printf("  %-48s %-5s %-22s %12llu bytes\n", t.name, vkm_dtype_name(t.dtype), shape, (unsigned long long)t.bytes);
    }
    printf("total: %zu tensors, %llu bytes\n", n, (unsigned long long)total);
    s = vkm_file_validate(f);
    int rc = 0;
    if (s == VKM_OK) printf("valid: yes\n");
    else rc = cli_error("info", "%s: invalid: %s", path, vkm_file_errmsg(f));
    vkm_file_close(f);
    return rc;
}

int cmd_info(int argc, char **argv)
{
    bool meta = true, tensors = true;
    int n_paths = 0, rc = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--no-meta")) meta = false;
        else if (!strcmp(argv[i], "--no-tensors")) tensors = false;
        else if (argv[i][0] == '-') {
            usage(stderr);
            return cli_error("info", "unknown option %s", argv[i]);
        }
    }
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-') continue;
        if (n_paths++) printf("\n");
        rc |= info_one(argv[i], meta, tensors);
    }
    if (!n_paths) {
        usage(stderr);
        return 2;
    }
    return rc;
}
