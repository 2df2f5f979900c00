/*
 * device.c — the Vulkan instance (validation layer + synchronization validation + debug
 * messenger when asked), the choice of a physical device, its capability record, the logical
 * device with the optional features the kernels use, and one-shot submission.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

static const char *VALIDATION_LAYER = "VK_LAYER_KHRONOS_validation";

const char *vkm_vk_result_str(VkResult r)
{
    switch (r) {
#define C(x) case x: return #x;
        C(VK_SUCCESS) C(VK_NOT_READY) C(VK_TIMEOUT) C(VK_INCOMPLETE)
        C(VK_ERROR_OUT_OF_HOST_MEMORY) C(VK_ERROR_OUT_OF_DEVICE_MEMORY)
        C(VK_ERROR_INITIALIZATION_FAILED) C(VK_ERROR_DEVICE_LOST) C(VK_ERROR_MEMORY_MAP_FAILED)
        C(VK_ERROR_LAYER_NOT_PRESENT) C(VK_ERROR_EXTENSION_NOT_PRESENT)
        C(VK_ERROR_FEATURE_NOT_PRESENT) C(VK_ERROR_INCOMPATIBLE_DRIVER)
        C(VK_ERROR_TOO_MANY_OBJECTS) C(VK_ERROR_FORMAT_NOT_SUPPORTED) C(VK_ERROR_FRAGMENTED_POOL)
        C(VK_ERROR_OUT_OF_POOL_MEMORY) C(VK_ERROR_INVALID_SHADER_NV) C(VK_PIPELINE_COMPILE_REQUIRED)
#undef C
    default: return "VkResult(?)";
    }
}

vkm_status vkm_vk_fail(vkm_dev *d, VkResult r, const char *what)
{
    vkm_status s = VKM_ERR_VULKAN;
    if (r == VK_ERROR_OUT_OF_HOST_MEMORY) s = VKM_ERR_OUT_OF_HOST_MEMORY;
    else if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY) s = VKM_ERR_OUT_OF_DEVICE_MEMORY;
    else if (r == VK_ERROR_DEVICE_LOST) s = VKM_ERR_DEVICE_LOST;
    return vkm_fail(d ? d->err : NULL, s, "%s failed: %s (%d)", what, vkm_vk_result_str(r), (int)r);
}

/* ---- validation messages -------------------------------------------------------------------- */
static VKAPI_ATTR VkBool32 VKAPI_CALL debug_cb(VkDebugUtilsMessageSeverityFlagBitsEXT sev,
                                               VkDebugUtilsMessageTypeFlagsEXT type,
                                               const VkDebugUtilsMessengerCallbackDataEXT *data,
                                               void *user)
{
    vkm_dev *d = user;
    vkm_log_level lvl = VKM_LOG_INFO;
    if (sev & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT) lvl = VKM_LOG_ERROR;
    else if (sev & VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT) lvl = VKM_LOG_WARN;
    /* Validation and performance findings count; general messages (the loader telling about
     * driver manifests it skipped, for instance) are passed on as information. */
    bool finding = type & (VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT);
    if (!finding) lvl = VKM_LOG_INFO;
    if (lvl >= VKM_LOG_WARN) __atomic_add_fetch(&d->validation_count, 1, __ATOMIC_RELAXED);
    if (d->log) d->log(d->log_user, lvl, data && data->pMessage ? data->pMessage : "(no message)");
    return VK_FALSE;
}

static bool has_layer(const char *name)
{
    uint32_t n = 0;
    vkEnumerateInstanceLayerProperties(&n, NULL);
    VkLayerProperties *props = calloc(n ? n : 1, sizeof *props);
    if (!props) return false;
    vkEnumerateInstanceLayerProperties(&n, props);
    bool found = false;
    for (uint32_t i = 0; i < n; i++) found |= strcmp(props[i].layerName, name) == 0;
    free(props);
    return found;
}

static bool has_instance_ext(const char *layer, const char *name)
{
    uint32_t n = 0;
    vkEnumerateInstanceExtensionProperties(layer, &n, NULL);
    VkExtensionProperties *props = calloc(n ? n : 1, sizeof *props);
    if (!props) return false;
    vkEnumerateInstanceExtensionProperties(layer, &n, props);
    bool found = false;
    for (uint32_t i = 0; i < n; i++) found |= strcmp(props[i].extensionName, name) == 0;
    free(props);
    return found;
}

static bool has_device_ext(VkPhysicalDevice pd, const char *name)
{
    uint32_t n = 0;
    vkEnumerateDeviceExtensionProperties(pd, NULL, &n, NULL);
    VkExtensionProperties *props = calloc(n ? n : 1, sizeof *props);
    if (!props) return false;
    vkEnumerateDeviceExtensionProperties(pd, NULL, &n, props);
    bool found = false;
    for (uint32_t i = 0; i < n; i++) found |= strcmp(props[i].extensionName, name) == 0;
    free(props);
    return found;
}

/* Creates a bare instance (validation and messenger when asked). */
static vkm_status instance_create(vkm_dev *d, bool validation, bool sync_validation)
{
    uint32_t ver = VK_API_VERSION_1_0;
    PFN_vkEnumerateInstanceVersion env =
        (PFN_vkEnumerateInstanceVersion)vkGetInstanceProcAddr(NULL, "vkEnumerateInstanceVersion");
    if (env) env(&ver);
    if (ver < VK_API_VERSION_1_1)
        return vkm_fail(d->err, VKM_ERR_NO_DEVICE,
                        "the Vulkan loader offers version %u.%u; vkmoe needs 1.1",
                        VK_API_VERSION_MAJOR(ver), VK_API_VERSION_MINOR(ver));

    VkApplicationInfo app = {VK_STRUCTURE_TYPE_APPLICATION_INFO};
    app.pApplicationName = "vkmoe";
    app.pEngineName = "vkmoe";
    app.engineVersion = VK_MAKE_VERSION(VKMOE_VERSION_MAJOR, VKMOE_VERSION_MINOR, VKMOE_VERSION_PATCH);
    app.apiVersion = ver >= VK_API_VERSION_1_3 ? VK_API_VERSION_1_3 : ver;

    const char *layers[1];
    const char *exts[4];
    uint32_t n_layers = 0, n_exts = 0;
    VkInstanceCreateInfo ci = {VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
    VkValidationFeatureEnableEXT enables[] = {VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT};
    VkValidationFeaturesEXT vf = {VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT};
    VkDebugUtilsMessengerCreateInfoEXT mci = {VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT};
    mci.messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                          VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
    mci.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                      VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                      VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT;
    mci.pfnUserCallback = debug_cb;
    mci.pUserData = d;
    const void *chain = NULL;

    if (validation) {
        if (!has_layer(VALIDATION_LAYER))
            return vkm_fail(d->err, VKM_ERR_UNSUPPORTED,
                            "validation asked for but %s is not installed "
                            "(Debian: apt-get install vulkan-validationlayers)", VALIDATION_LAYER);
        layers[n_layers++] = VALIDATION_LAYER;
        if (!has_instance_ext(NULL, VK_EXT_DEBUG_UTILS_EXTENSION_NAME))
            return vkm_fail(d->err, VKM_ERR_UNSUPPORTED, "%s is missing", VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
        exts[n_exts++] = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
        mci.pNext = chain;
        chain = &mci; /* also catches messages from vkCreateInstance itself */
        if (sync_validation && has_instance_ext(VALIDATION_LAYER, VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME)) {
            exts[n_exts++] = VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME;
            vf.enabledValidationFeatureCount = 1;
            vf.pEnabledValidationFeatures = enables;
            vf.pNext = chain;
            chain = &vf;
        }
    }
    if (has_instance_ext(NULL, "VK_KHR_portability_enumeration")) {
        exts[n_exts++] = "VK_KHR_portability_enumeration";
        ci.flags |= 0x00000001; /* VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR */
    }
    ci.pNext = chain;
    ci.pApplicationInfo = &app;
    ci.enabledLayerCount = n_layers;
    ci.ppEnabledLayerNames = layers;
    ci.enabledExtensionCount = n_exts;
    ci.ppEnabledExtensionNames = exts;
    VKM_VK(d, vkCreateInstance(&ci, NULL, &d->instance));

    if (validation) {
        PFN_vkCreateDebugUtilsMessengerEXT create = (PFN_vkCreateDebugUtilsMessengerEXT)
            vkGetInstanceProcAddr(d->instance, "vkCreateDebugUtilsMessengerEXT");
        d->destroy_messenger = (PFN_vkDestroyDebugUtilsMessengerEXT)
            vkGetInstanceProcAddr(d->instance, "vkDestroyDebugUtilsMessengerEXT");
        mci.pNext = NULL;
        if (!create || !d->destroy_messenger)
            return vkm_fail(d->err, VKM_ERR_UNSUPPORTED, "debug utils entry points missing");
        VKM_VK(d, create(d->instance, &mci, NULL, &d->messenger));
    }
    return VKM_OK;
}

/* ---- capabilities ----------------------------------------------------------------------------- */
void vkm_dev_read_caps(VkInstance inst, VkPhysicalDevice pd, vkm_device_caps *c)
{
    (void)inst;
    memset(c, 0, sizeof *c);
    VkPhysicalDeviceProperties base;
    vkGetPhysicalDeviceProperties(pd, &base);
    bool v12 = base.apiVersion >= VK_API_VERSION_1_2, v13 = base.apiVersion >= VK_API_VERSION_1_3;

    VkPhysicalDeviceProperties2 p2 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
    VkPhysicalDeviceSubgroupProperties sg = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceMaintenance3Properties m3 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES};
    VkPhysicalDeviceSubgroupSizeControlPropertiesEXT sgc = {
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES_EXT};
    VkPhysicalDeviceDriverProperties drv = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
    bool has_sgc = v13 || has_device_ext(pd, VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME);
    bool has_drv = v12 || has_device_ext(pd, VK_KHR_DRIVER_PROPERTIES_EXTENSION_NAME);
    p2.pNext = &sg;
    sg.pNext = &m3;
    void **tail = &m3.pNext;
    if (has_sgc) { *tail = &sgc; tail = &sgc.pNext; }
    if (has_drv) { *tail = &drv; tail = &drv.pNext; }
    vkGetPhysicalDeviceProperties2(pd, &p2);

    VkPhysicalDeviceFeatures2 f2 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
    VkPhysicalDevice16BitStorageFeatures s16 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES};
    VkPhysicalDeviceShaderFloat16Int8Features f16 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES};
    VkPhysicalDevice8BitStorageFeatures s8 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_8BIT_STORAGE_FEATURES};
    VkPhysicalDeviceSubgroupSizeControlFeaturesEXT sgcf = {
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES_EXT};
    f2.pNext = &s16;
    tail = &s16.pNext;
    bool has_f16 = v12 || has_device_ext(pd, VK_KHR_SHADER_FLOAT16_INT8_EXTENSION_NAME);
    bool has_s8 = v12 || has_device_ext(pd, VK_KHR_8BIT_STORAGE_EXTENSION_NAME);
    if (has_f16) { *tail = &f16; tail = &f16.pNext; }
    if (has_s8) { *tail = &s8; tail = &s8.pNext; }
    if (has_sgc) { *tail = &sgcf; tail = &sgcf.pNext; }
    vkGetPhysicalDeviceFeatures2(pd, &f2);

    snprintf(c->name, sizeof c->name, "%s", base.deviceName);
    if (has_drv) {
        size_t n = strnlen(drv.driverName, sizeof drv.driverName);
        memcpy(c->driver, drv.driverName, n);
        c->driver[n] = 0;
        if (drv.driverInfo[0] && n + 2 < sizeof c->driver) {
            c->driver[n] = ' ';
            size_t m = strnlen(drv.driverInfo, sizeof drv.driverInfo);
            if (m > sizeof c->driver - n - 2) m = sizeof c->driver - n - 2;
            memcpy(c->driver + n + 1, drv.driverInfo, m);
            c->driver[n + 1 + m] = 0;
        }
    }
    c->vendor_id = base.vendorID;
    c->device_id = base.deviceID;
    c->driver_version = base.driverVersion;
    c->api_version = base.apiVersion;
    c->type = (int)base.deviceType;
    c->fp16_arith = has_f16 && f16.shaderFloat16;
    c->int8_arith = has_f16 && f16.shaderInt8;
    c->storage16 = s16.storageBuffer16BitAccess;
    c->storage8 = has_s8 && s8.storageBuffer8BitAccess;
    c->subgroup_size = sg.subgroupSize;
    c->subgroup_ops = (sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) ? sg.supportedOperations : 0;
    c->subgroup_size_control = has_sgc && sgcf.subgroupSizeControl && sgcf.computeFullSubgroups &&
                               (sgc.requiredSubgroupSizeStages & VK_SHADER_STAGE_COMPUTE_BIT);
    c->subgroup_min = c->subgroup_size_control ? sgc.minSubgroupSize : sg.subgroupSize;
    c->subgroup_max = c->subgroup_size_control ? sgc.maxSubgroupSize : sg.subgroupSize;
    c->timestamps = base.limits.timestampComputeAndGraphics && base.limits.timestampPeriod > 0;
    c->timestamp_period_ns = base.limits.timestampPeriod;
    c->max_storage_range = base.limits.maxStorageBufferRange;
    c->max_alloc = m3.maxMemoryAllocationSize;
    c->max_shared_bytes = base.limits.maxComputeSharedMemorySize;
    c->max_push_bytes = base.limits.maxPushConstantsSize;
    c->max_wg_invocations = base.limits.maxComputeWorkGroupInvocations;
    for (int i = 0; i < 3; i++) c->max_wg_count[i] = base.limits.maxComputeWorkGroupCount[i];
    c->storage_align = base.limits.minStorageBufferOffsetAlignment;
    memcpy(c->pipeline_cache_uuid, base.pipelineCacheUUID, 16);

    VkPhysicalDeviceMemoryProperties mp;
    vkGetPhysicalDeviceMemoryProperties(pd, &mp);
    for (uint32_t i = 0; i < mp.memoryHeapCount; i++)
        if ((mp.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) &&
            mp.memoryHeaps[i].size > c->device_local_bytes)
            c->device_local_bytes = mp.memoryHeaps[i].size;
    bool integrated = base.deviceType == VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU ||
                      base.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU;
    for (uint32_t i = 0; i < mp.memoryTypeCount && integrated; i++) {
        VkMemoryPropertyFlags f = mp.memoryTypes[i].propertyFlags;
        if ((f & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT) && (f & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT) &&
            (f & VK_MEMORY_PROPERTY_HOST_COHERENT_BIT))
            c->unified_memory = true;
    }
}

vkm_status vkm_device_count(uint32_t *count)
{
    vkm_dev d;
    memset(&d, 0, sizeof d);
    *count = 0;
    vkm_status s = instance_create(&d, false, false);
    if (s == VKM_OK) {
        if (vkEnumeratePhysicalDevices(d.instance, count, NULL) != VK_SUCCESS) s = VKM_ERR_VULKAN;
        vkDestroyInstance(d.instance, NULL);
    }
    return s;
}

vkm_status vkm_device_info(uint32_t index, vkm_device_caps *out)
{
    vkm_dev d;
    memset(&d, 0, sizeof d);
    vkm_status s = instance_create(&d, false, false);
    if (s != VKM_OK) return s;
    uint32_t n = 0;
    vkEnumeratePhysicalDevices(d.instance, &n, NULL);
    if (index >= n) {
        vkDestroyInstance(d.instance, NULL);
        return VKM_ERR_NOT_FOUND;
    }
    VkPhysicalDevice *pds = calloc(n, sizeof *pds);
    if (!pds) {
        vkDestroyInstance(d.instance, NULL);
        return VKM_ERR_OUT_OF_HOST_MEMORY;
    }
    vkEnumeratePhysicalDevices(d.instance, &n, pds);
    vkm_dev_read_caps(d.instance, pds[index], out);
    free(pds);
    vkDestroyInstance(d.instance, NULL);
    return VKM_OK;
}

/* ---- device choice ---------------------------------------------------------------------------- */
static int type_rank(int t)
{
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 4;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 3;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return 1;
    default: return 0;
    }
}

static bool is_index(const char *s)
{
    if (!*s) return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return false;
    return true;
}

static vkm_status pick_device(vkm_dev *d, const char *want)
{
    uint32_t n = 0;
    VKM_VK(d, vkEnumeratePhysicalDevices(d->instance, &n, NULL));
    if (n == 0)
        return vkm_fail(d->err, VKM_ERR_NO_DEVICE, "no Vulkan device found (is a driver installed? "
                        "Debian's mesa-vulkan-drivers provides lavapipe on the CPU)");
    VkPhysicalDevice *pds = calloc(n, sizeof *pds);
    vkm_device_caps *caps = calloc(n, sizeof *caps);
    if (!pds || !caps) {
        free(pds);
        free(caps);
        return vkm_fail(d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    vkEnumeratePhysicalDevices(d->instance, &n, pds);
    int best = -1;
    for (uint32_t i = 0; i < n; i++) {
        vkm_dev_read_caps(d->instance, pds[i], &caps[i]);
        if (caps[i].api_version < VK_API_VERSION_1_1) continue;
        if (want && *want) {
            if (is_index(want)) {
                if (strtoul(want, NULL, 10) == i) best = (int)i;
            } else if (best < 0) {
                /* case-insensitive substring */
                size_t wl = strlen(want);
                for (const char *p = caps[i].name; *p && best < 0; p++)
                    if (strncasecmp(p, want, wl) == 0) best = (int)i;
            }
            continue;
        }
        if (best < 0 || type_rank(caps[i].type) > type_rank(caps[best].type) ||
            (type_rank(caps[i].type) == type_rank(caps[best].type) &&
             caps[i].device_local_bytes > caps[best].device_local_bytes))
            best = (int)i;
    }
    vkm_status s = VKM_OK;
    if (best < 0) {
        s = want && *want ? vkm_fail(d->err, VKM_ERR_NO_DEVICE, "no Vulkan 1.1 device matches '%s' "
                                     "(%u present; see `vkmoe devices`)", want, n)
                          : vkm_fail(d->err, VKM_ERR_NO_DEVICE, "no device supports Vulkan 1.1");
    } else {
        d->phys = pds[best];
        d->caps = caps[best];
    }
    free(pds);
    free(caps);
    return s;
}

static uint32_t find_mem(const VkPhysicalDeviceMemoryProperties *mp, VkMemoryPropertyFlags want,
                         VkMemoryPropertyFlags avoid)
{
    for (uint32_t i = 0; i < mp->memoryTypeCount; i++) {
        VkMemoryPropertyFlags f = mp->memoryTypes[i].propertyFlags;
        if ((f & want) == want && !(f & avoid)) return i;
    }
    return UINT32_MAX;
}

static vkm_status choose_memory(vkm_dev *d)
{
    VkPhysicalDeviceMemoryProperties mp;
    vkGetPhysicalDeviceMemoryProperties(d->phys, &mp);
    const VkMemoryPropertyFlags DL = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT,
                                HV = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT,
                                HC = VK_MEMORY_PROPERTY_HOST_COHERENT_BIT,
                                CA = VK_MEMORY_PROPERTY_HOST_CACHED_BIT;
    uint32_t t = UINT32_MAX;
    if (d->caps.unified_memory) t = find_mem(&mp, DL | HV | HC, 0);
    d->device_mappable = t != UINT32_MAX;
    if (t == UINT32_MAX) t = find_mem(&mp, DL, HV);
    if (t == UINT32_MAX) t = find_mem(&mp, DL, 0);
    if (t == UINT32_MAX) t = 0;
    d->mem_device = t;
    d->mem_upload = find_mem(&mp, HV | HC, 0);
    d->mem_readback = find_mem(&mp, HV | HC | CA, 0);
    if (d->mem_readback == UINT32_MAX) d->mem_readback = d->mem_upload;
    if (d->mem_upload == UINT32_MAX)
        return vkm_fail(d->err, VKM_ERR_UNSUPPORTED, "%s has no host-visible coherent memory",
                        d->caps.name);
    return VKM_OK;
}

static vkm_status device_create(vkm_dev *d, const vkm_context_params *p)
{
    uint32_t nq = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(d->phys, &nq, NULL);
    VkQueueFamilyProperties *qf = calloc(nq ? nq : 1, sizeof *qf);
    if (!qf) return vkm_fail(d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    vkGetPhysicalDeviceQueueFamilyProperties(d->phys, &nq, qf);
    uint32_t fam = UINT32_MAX;
    for (uint32_t i = 0; i < nq && fam == UINT32_MAX; i++)
        if (qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) fam = i;
    bool ts_ok = fam != UINT32_MAX && qf[fam].timestampValidBits > 0;
    free(qf);
    if (fam == UINT32_MAX)
        return vkm_fail(d->err, VKM_ERR_UNSUPPORTED, "%s has no compute queue", d->caps.name);
    d->queue_family = fam;
    if (!ts_ok) d->caps.timestamps = false;

    vkm_device_caps *c = &d->caps;
    if (p->disable_storage16) c->storage16 = false;
    if (p->disable_fp16) c->fp16_arith = false;
    if (p->disable_storage8) c->storage8 = false;
    if (p->disable_int8) c->int8_arith = false;
    if (p->disable_subgroup_arith) c->subgroup_ops &= ~(uint32_t)VK_SUBGROUP_FEATURE_ARITHMETIC_BIT;
    d->cpu_tuning = c->type == VK_PHYSICAL_DEVICE_TYPE_CPU && !p->tune_as_gpu;
    if (p->disable_sg_control) {
        c->subgroup_size_control = false;
        c->subgroup_min = c->subgroup_max = c->subgroup_size;
    }
    bool v12 = c->api_version >= VK_API_VERSION_1_2, v13 = c->api_version >= VK_API_VERSION_1_3;

    const char *exts[12];
    uint32_t n_exts = 0;
    VkPhysicalDeviceFeatures2 f2 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
    VkPhysicalDevice16BitStorageFeatures s16 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES};
    VkPhysicalDeviceShaderFloat16Int8Features f16 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES};
    VkPhysicalDevice8BitStorageFeatures s8 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_8BIT_STORAGE_FEATURES};
    VkPhysicalDeviceSubgroupSizeControlFeaturesEXT sgcf = {
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES_EXT};
    void **tail = &f2.pNext;
    if (c->storage16) {
        s16.storageBuffer16BitAccess = VK_TRUE;
        *tail = &s16;
        tail = &s16.pNext;
    }
    if (c->fp16_arith || c->int8_arith) {
        f16.shaderFloat16 = c->fp16_arith;
        f16.shaderInt8 = c->int8_arith;
        *tail = &f16;
        tail = &f16.pNext;
        if (!v12) exts[n_exts++] = VK_KHR_SHADER_FLOAT16_INT8_EXTENSION_NAME;
    }
    if (c->storage8) {
        s8.storageBuffer8BitAccess = VK_TRUE;
        *tail = &s8;
        tail = &s8.pNext;
        if (!v12) exts[n_exts++] = VK_KHR_8BIT_STORAGE_EXTENSION_NAME;
    }
    if (c->subgroup_size_control) {
        sgcf.subgroupSizeControl = VK_TRUE;
        sgcf.computeFullSubgroups = VK_TRUE;
        *tail = &sgcf;
        tail = &sgcf.pNext;
        if (!v13) exts[n_exts++] = VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME;
    }
    if (!v12 && has_device_ext(d->phys, VK_KHR_DRIVER_PROPERTIES_EXTENSION_NAME))
        exts[n_exts++] = VK_KHR_DRIVER_PROPERTIES_EXTENSION_NAME;
    if (has_device_ext(d->phys, "VK_KHR_portability_subset"))
        exts[n_exts++] = "VK_KHR_portability_subset";
    /* reading the files' maps in place (merges): the extension and its alignment */
    VkPhysicalDeviceExternalMemoryHostPropertiesEXT hp = {
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_EXTERNAL_MEMORY_HOST_PROPERTIES_EXT};
    VkPhysicalDeviceProperties2 p2 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
    const bool has_host = has_device_ext(d->phys, VK_EXT_EXTERNAL_MEMORY_HOST_EXTENSION_NAME);
    if (has_host) p2.pNext = &hp; /* chained only where the extension is (a valid-usage rule) */
    vkGetPhysicalDeviceProperties2(d->phys, &p2);
    d->max_stage_storage = p2.properties.limits.maxPerStageDescriptorStorageBuffers;
    bool host_import = has_host && hp.minImportedHostPointerAlignment > 0 &&
                       (hp.minImportedHostPointerAlignment & (hp.minImportedHostPointerAlignment - 1)) == 0;
    if (host_import) exts[n_exts++] = VK_EXT_EXTERNAL_MEMORY_HOST_EXTENSION_NAME; /* 1.1: external memory */

    float prio = 1.0f;
    VkDeviceQueueCreateInfo qci = {VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
    qci.queueFamilyIndex = fam;
    qci.queueCount = 1;
    qci.pQueuePriorities = &prio;
    VkDeviceCreateInfo dci = {VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
    dci.pNext = &f2;
    dci.queueCreateInfoCount = 1;
    dci.pQueueCreateInfos = &qci;
    dci.enabledExtensionCount = n_exts;
    dci.ppEnabledExtensionNames = exts;
    VKM_VK(d, vkCreateDevice(d->phys, &dci, NULL, &d->device));
    if (host_import) {
        d->get_host_ptr_props = (PFN_vkGetMemoryHostPointerPropertiesEXT)vkGetDeviceProcAddr(
            d->device, "vkGetMemoryHostPointerPropertiesEXT");
        d->host_import_align = d->get_host_ptr_props ? hp.minImportedHostPointerAlignment : 0;
    }
    vkGetDeviceQueue(d->device, fam, 0, &d->queue);

    VkCommandPoolCreateInfo pci = {VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
    pci.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
    pci.queueFamilyIndex = fam;
    VKM_VK(d, vkCreateCommandPool(d->device, &pci, NULL, &d->cmd_pool));
    vkm_status s = vkm_dev_alloc_cmd(d, &d->once_cmd);
    if (s != VKM_OK) return s;
    VkFenceCreateInfo fci = {VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    VKM_VK(d, vkCreateFence(d->device, &fci, NULL, &d->fence));
    return VKM_OK;
}

vkm_status vkm_dev_create(vkm_dev *d, const vkm_context_params *p)
{
    d->log = p->log;
    d->log_user = p->log_user;
    d->validation = p->validation;
    vkm_status s = instance_create(d, p->validation, p->sync_validation);
    if (s == VKM_OK) s = pick_device(d, p->device);
    if (s == VKM_OK) s = choose_memory(d);
    if (s == VKM_OK) s = device_create(d, p);
    if (s == VKM_OK && p->pipeline_cache_dir) s = vkm_pcache_open(d, p->pipeline_cache_dir);
    if (s == VKM_OK && !p->pipeline_cache_dir) s = vkm_pcache_open(d, NULL);
    return s;
}

void vkm_dev_destroy(vkm_dev *d)
{
    if (d->device) {
        vkDeviceWaitIdle(d->device);
        vkm_pcache_save(d);
        vkm_pipelines_destroy(d);
        vkm_dcache_destroy(d);
        if (d->fence) vkDestroyFence(d->device, d->fence, NULL);
        vkm_buf *st[2] = {d->stage_up, d->stage_down};
        for (int i = 0; i < 2; i++)
            if (st[i]) {
                vkm_buf_destroy(d, st[i]);
                free(st[i]);
            }
        if (d->cmd_pool) vkDestroyCommandPool(d->device, d->cmd_pool, NULL);
        vkDestroyDevice(d->device, NULL);
    }
    if (d->messenger && d->destroy_messenger) d->destroy_messenger(d->instance, d->messenger, NULL);
    if (d->instance) vkDestroyInstance(d->instance, NULL);
    memset(d, 0, sizeof *d);
}

/* ---- submission --------------------------------------------------------------------------------- */
vkm_status vkm_dev_alloc_cmd(vkm_dev *d, VkCommandBuffer *cmd)
{
    VkCommandBufferAllocateInfo ai = {VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
    ai.commandPool = d->cmd_pool;
    ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    ai.commandBufferCount = 1;
    VKM_VK(d, vkAllocateCommandBuffers(d->device, &ai, cmd));
    return VKM_OK;
}

vkm_status vkm_dev_begin_once(vkm_dev *d, VkCommandBuffer *cmd)
{
    VkCommandBufferBeginInfo bi = {VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
    VKM_VK(d, vkResetCommandBuffer(d->once_cmd, 0));
    VKM_VK(d, vkBeginCommandBuffer(d->once_cmd, &bi));
    *cmd = d->once_cmd;
    return VKM_OK;
}

vkm_status vkm_dev_submit_once(vkm_dev *d)
{
    VKM_VK(d, vkEndCommandBuffer(d->once_cmd));
    return vkm_dev_submit_wait(d, d->once_cmd);
}

vkm_status vkm_dev_submit_wait(vkm_dev *d, VkCommandBuffer cmd)
{
    VkSubmitInfo si = {VK_STRUCTURE_TYPE_SUBMIT_INFO};
    si.commandBufferCount = 1;
    si.pCommandBuffers = &cmd;
    VKM_VK(d, vkResetFences(d->device, 1, &d->fence));
    VKM_VK(d, vkQueueSubmit(d->queue, 1, &si, d->fence));
    VKM_VK(d, vkWaitForFences(d->device, 1, &d->fence, VK_TRUE, UINT64_MAX));
    return VKM_OK;
}

uint32_t vkm_wg_size(const vkm_dev *d, uint32_t k)
{
    uint32_t sg = d->caps.subgroup_size ? d->caps.subgroup_size : 32;
    uint32_t wg = sg * k;
    while (wg > d->caps.max_wg_invocations && wg > sg) wg /= 2;
    if (wg > 1024) wg = 1024;
    return wg;
}
