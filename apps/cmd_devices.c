/*
 * cmd_devices.c — `vkmoe devices [--json]`: every Vulkan device with the capabilities vkmoe
 * reads from it (the same record the kernels choose their variants from).
 */
#include <string.h>

#include "cli.h"

static const char *type_name(int t)
{
    static const char *names[] = {"other", "integrated GPU", "discrete GPU", "virtual GPU", "CPU"};
    return t >= 0 && t <= 4 ? names[t] : "?";
}

static void print_caps(uint32_t i, const vkm_device_caps *c)
{
    printf("device %u: %s (%s)\n", i, c->name, type_name(c->type));
    printf("  driver               %s\n", c->driver[0] ? c->driver : "?");
    printf("  vendor/device id     0x%04x / 0x%04x, Vulkan %u.%u.%u\n", c->vendor_id, c->device_id,
           c->api_version >> 22, (c->api_version >> 12) & 0x3ff, c->api_version & 0xfff);
    printf("  subgroup size        %u (min %u, max %u, size control %s)\n", c->subgroup_size,
           c->subgroup_min, c->subgroup_max, c->subgroup_size_control ? "yes" : "no");
    printf("  subgroup ops         0x%x (basic %s, arithmetic %s, shuffle %s)\n", c->subgroup_ops,
           c->subgroup_ops & 1 ? "yes" : "no", c->subgroup_ops & 8 ? "yes" : "no",
           c->subgroup_ops & 16 ? "yes" : "no");
    printf("  fp16 arithmetic      %s\n", c->fp16_arith ? "yes" : "no");
    printf("  16-bit storage       %s\n", c->storage16 ? "yes" : "no");
    printf("  8-bit storage        %s\n", c->storage8 ? "yes" : "no");
    printf("  int8 arithmetic      %s\n", c->int8_arith ? "yes" : "no");
    printf("  timestamps           %s (period %.3f ns)\n", c->timestamps ? "yes" : "no",
           c->timestamp_period_ns);
    printf("  maxStorageBufferRange %llu bytes (%.1f MiB)\n", (unsigned long long)c->max_storage_range,
           c->max_storage_range / 1048576.0);
    printf("  maxMemoryAllocationSize %llu bytes (%.1f MiB)\n", (unsigned long long)c->max_alloc,
           c->max_alloc / 1048576.0);
    printf("  device-local memory  %.1f MiB%s\n", c->device_local_bytes / 1048576.0,
           c->unified_memory ? " (unified with host)" : "");
    printf("  shared memory        %u bytes\n", c->max_shared_bytes);
    printf("  push constants       %u bytes\n", c->max_push_bytes);
    printf("  workgroup            %u invocations, count %u x %u x %u\n", c->max_wg_invocations,
           c->max_wg_count[0], c->max_wg_count[1], c->max_wg_count[2]);
    printf("  storage alignment    %llu bytes\n", (unsigned long long)c->storage_align);
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20) printf("\\u%04x", *s);
        else putchar(*s);
    }
    putchar('"');
}

static void print_json(uint32_t i, const vkm_device_caps *c)
{
    printf("%s{\"index\": %u, \"name\": ", i ? ", " : "", i);
    json_str(c->name);
    printf(", \"type\": \"%s\", \"driver\": ", type_name(c->type));
    json_str(c->driver);
    printf(", \"subgroup_size\": %u, \"subgroup_min\": %u, \"subgroup_max\": %u, "
           "\"subgroup_ops\": %u, \"subgroup_size_control\": %s, \"fp16_arith\": %s, "
           "\"storage16\": %s, \"storage8\": %s, \"int8_arith\": %s, \"timestamps\": %s, "
           "\"max_storage_range\": %llu, \"max_alloc\": %llu, \"device_local_bytes\": %llu, "
           "\"max_shared_bytes\": %u, \"max_push_bytes\": %u, \"storage_align\": %llu}",
           c->subgroup_size, c->subgroup_min, c->subgroup_max, c->subgroup_ops,
           c->subgroup_size_control ? "true" : "false", c->fp16_arith ? "true" : "false",
           c->storage16 ? "true" : "false", c->storage8 ? "true" : "false",
           c->int8_arith ? "true" : "false", c->timestamps ? "true" : "false",
           (unsigned long long)c->max_storage_range, (unsigned long long)c->max_alloc,
           (unsigned long long)c->device_local_bytes, c->max_shared_bytes, c->max_push_bytes,
           (unsigned long long)c->storage_align);
}

int cmd_devices(int argc, char **argv)
{
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = true;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: vkmoe devices [--json]\n");
            return 0;
        } else return cli_error("devices", "unknown option %s", argv[i]);
    }
    uint32_t n = 0;
    vkm_status s = vkm_device_count(&n);
    if (s != VKM_OK) return cli_error("devices", "%s", vkm_status_str(s));
    if (json) printf("{\"devices\": [");
    for (uint32_t i = 0; i < n; i++) {
        vkm_device_caps c;
        if (vkm_device_info(i, &c) != VKM_OK) continue;
        if (json) print_json(i, &c);
        else print_caps(i, &c);
    }
    if (json) printf("]}\n");
    else if (n == 0) printf("no Vulkan devices\n");
    return 0;
}
