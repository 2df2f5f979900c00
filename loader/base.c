/*
 * base.c — errors, file mapping, dtype traits and scalar/block conversions shared by every module.
 */
#include "base.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- errors ------------------------------------------------------------------------------ */
vkm_status vkm_fail(vkm_err *e, vkm_status s, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
        e->status = s;
    }
    return s;
}

void vkm_err_prefix(vkm_err *e, const char *fmt, ...)
{
    if (!e) return;
    char buf[sizeof e->msg];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    size_t k = n < 0 ? 0 : (size_t)n < sizeof buf - 2 ? (size_t)n : sizeof buf - 3;
    memcpy(buf + k, ": ", 2);
    k += 2;
    size_t rest = strnlen(e->msg, sizeof e->msg - 1);
    if (rest > sizeof buf - 1 - k) rest = sizeof buf - 1 - k;
    memcpy(buf + k, e->msg, rest);
    buf[k + rest] = 0;
    memcpy(e->msg, buf, sizeof buf);
}

void vkm_err_clear(vkm_err *e)
{
    if (e) {
        e->status = VKM_OK;
        e->msg[0] = 0;
    }
}

const char *vkm_status_str(vkm_status s)
{
    switch (s) {
    case VKM_OK: return "VKM_OK: success";
    case VKM_ERR_INVALID_ARGUMENT: return "VKM_ERR_INVALID_ARGUMENT: invalid argument";
    case VKM_ERR_STATE: return "VKM_ERR_STATE: call out of order";
    case VKM_ERR_CANCELLED: return "VKM_ERR_CANCELLED: cancelled";
    case VKM_ERR_IO: return "VKM_ERR_IO: file input/output failed";
    case VKM_ERR_FORMAT: return "VKM_ERR_FORMAT: malformed file";
    case VKM_ERR_MISMATCH: return "VKM_ERR_MISMATCH: files do not fit together";
    case VKM_ERR_NOT_FOUND: return "VKM_ERR_NOT_FOUND: not found";
    case VKM_ERR_NO_DEVICE: return "VKM_ERR_NO_DEVICE: no suitable Vulkan device";
    case VKM_ERR_VULKAN: return "VKM_ERR_VULKAN: Vulkan call failed";
    case VKM_ERR_DEVICE_LOST: return "VKM_ERR_DEVICE_LOST: device lost";
    case VKM_ERR_UNSUPPORTED: return "VKM_ERR_UNSUPPORTED: unsupported";
    case VKM_ERR_OUT_OF_HOST_MEMORY: return "VKM_ERR_OUT_OF_HOST_MEMORY: out of host memory";
    case VKM_ERR_OUT_OF_DEVICE_MEMORY: return "VKM_ERR_OUT_OF_DEVICE_MEMORY: out of device memory";
    case VKM_ERR_LIMIT: return "VKM_ERR_LIMIT: limit exceeded";
    }
    return "VKM_ERR_?: unknown status";
}

const char *vkm_version(void) { return VKMOE_VERSION_STRING; }

/* ---- files ------------------------------------------------------------------------------- */
vkm_status vkm_map_open(const char *path, vkm_map *m, vkm_err *e)
{
    memset(m, 0, sizeof *m);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return vkm_fail(e, VKM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return vkm_fail(e, VKM_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return VKM_OK;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
        close(fd);
        return vkm_fail(e, VKM_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
    }
    m->data = p;
    m->size = (uint64_t)st.st_size;
    m->fd = fd;
    m->has_fd = true;
    return VKM_OK;
}

void vkm_map_close(vkm_map *m)
{
    if (!m) return;
    if (m->data) munmap((void *)m->data, (size_t)m->size);
    if (m->has_fd) close(m->fd);
    memset(m, 0, sizeof *m);
}

bool vkm_map_read(const vkm_map *m, const void *p, uint64_t n, void *dst)
{
    const uint8_t *src = p;
    if (!m || !m->has_fd || src < m->data || n > m->size || (uint64_t)(src - m->data) > m->size - n) {
        if (n) memcpy(dst, src, (size_t)n);
        return true;
    }
    uint8_t *out = dst;
    uint64_t off = (uint64_t)(src - m->data);
    while (n > 0) {
        ssize_t got = pread(m->fd, out, n > (1u << 30) ? (1u << 30) : (size_t)n, (off_t)off);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return false;
        off += (uint64_t)got;
        out += got;
        n -= (uint64_t)got;
    }
    return true;
}

const char *vkm_json_quote(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    if (cap < 3) {
        if (cap) out[0] = 0;
        return out;
    }
    out[n++] = '"';
    for (; *s; s++) {
        const unsigned char c = (unsigned char)*s;
        char esc[8];
        size_t k;
        if (c == '"' || c == '\\') k = (size_t)snprintf(esc, sizeof esc, "\\%c", c);
        else if (c < 0x20) k = (size_t)snprintf(esc, sizeof esc, "\\u%04x", c);
        else esc[0] = (char)c, k = 1;
        if (n + k + 2 > cap) break;
        memcpy(out + n, esc, k);
        n += k;
    }
    out[n++] = '"';
    out[n] = 0;
    return out;
}

vkm_status vkm_read_text(const char *path, uint64_t max_bytes, char **out, uint64_t *len,
                         vkm_err *e)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return vkm_fail(e, VKM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return vkm_fail(e, VKM_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max_bytes) {
        fclose(f);
        return vkm_fail(e, VKM_ERR_LIMIT, "%s: %lld bytes, more than the %llu allowed", path,
                        (long long)st.st_size, (unsigned long long)max_bytes);
    }
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        fclose(f);
        return vkm_fail(e, VKM_ERR_OUT_OF_HOST_MEMORY, "%s: out of memory", path);
    }
    size_t n = fread(buf, 1, (size_t)st.st_size, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || n != (size_t)st.st_size) {
        free(buf);
        return vkm_fail(e, VKM_ERR_IO, "%s: read failed", path);
    }
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return VKM_OK;
}

bool vkm_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

bool vkm_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

bool vkm_path_join(char *out, size_t cap, const char *dir, const char *name)
{
    int n;
    if (!dir || !dir[0] || name[0] == '/')
        n = snprintf(out, cap, "%s", name);
    else if (dir[strlen(dir) - 1] == '/')
        n = snprintf(out, cap, "%s%s", dir, name);
    else
        n = snprintf(out, cap, "%s/%s", dir, name);
    return n >= 0 && (size_t)n < cap;
}

void vkm_path_dir(char *out, size_t cap, const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(out, cap, ".");
        return;
    }
    size_t n = (size_t)(slash - path);
    if (n == 0) n = 1; /* "/x" -> "/" */
    if (n >= cap) n = cap - 1;
    memcpy(out, path, n);
    out[n] = 0;
}

/* ---- text -------------------------------------------------------------------------------- */
bool vkm_utf8_valid(const char *s, uint64_t n)
{
    const uint8_t *p = (const uint8_t *)s;
    uint64_t i = 0;
    while (i < n) {
        uint32_t c = p[i], len, cp;
        if (c == 0) return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
        else return false; /* continuation byte, C0/C1 overlong lead, F5..FF */
        if (len > n - i) return false;
        for (uint32_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

/* ---- dtypes ------------------------------------------------------------------------------ */
static const vkm_dtype_traits traits[VKM_DTYPE_COUNT] = {
    [VKM_F32] = {"F32", 1, 4},      [VKM_F16] = {"F16", 1, 2},
    [VKM_BF16] = {"BF16", 1, 2},    [VKM_Q8_0] = {"Q8_0", 32, 34},
    [VKM_Q4_0] = {"Q4_0", 32, 18},  [VKM_Q4_K] = {"Q4_K", 256, 144},
    [VKM_Q6_K] = {"Q6_K", 256, 210}, [VKM_I8] = {"I8", 1, 1},
    [VKM_I16] = {"I16", 1, 2},      [VKM_I32] = {"I32", 1, 4},
    [VKM_I64] = {"I64", 1, 8},      [VKM_F64] = {"F64", 1, 8},
};

const vkm_dtype_traits *vkm_dtype_info(vkm_dtype t)
{
    if ((unsigned)t >= VKM_DTYPE_COUNT) return NULL;
    return &traits[t];
}

const char *vkm_dtype_name(vkm_dtype t)
{
    const vkm_dtype_traits *tr = vkm_dtype_info(t);
    return tr ? tr->name : "?";
}

bool vkm_dtype_bytes(vkm_dtype t, uint64_t n, uint64_t *bytes)
{
    const vkm_dtype_traits *tr = vkm_dtype_info(t);
    if (!tr || n % tr->block) return false;
    return vkm_mul_ok(n / tr->block, tr->block_bytes, bytes);
}

float vkm_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 31, man = h & 1023, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                man <<= 1;
                e++;
            } while (!(man & 1024));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 1023) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t vkm_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000, exp = (x >> 23) & 255, man = x & 0x7fffff;
    if (exp == 255) return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
    int e = (int)exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00);
    if (e <= 0) { /* subnormal or zero */
        if (e < -10) return (uint16_t)sign;
        man |= 0x800000;
        uint32_t shift = (uint32_t)(14 - e);
        uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = ((uint32_t)e << 10) | (man >> 13), rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++; /* may carry into exp: fine */
    return (uint16_t)(sign | half);
}

float vkm_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t vkm_f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 64); /* quiet nan */
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

/* ---- block formats (llama.cpp layouts) ----------------------------------------------------- */
static void q4k_scale_min(int j, const uint8_t *q, uint8_t *d, uint8_t *m)
{
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

vkm_status vkm_to_f32(vkm_dtype t, const void *src, uint64_t n, float *dst)
{
    const uint8_t *p = src;
    switch (t) {
    case VKM_F32: memcpy(dst, src, n * 4); return VKM_OK;
    case VKM_F64:
        for (uint64_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, p + 8 * i, 8);
            dst[i] = (float)d;
        }
        return VKM_OK;
    case VKM_F16:
        for (uint64_t i = 0; i < n; i++) dst[i] = vkm_f16_to_f32(vkm_rd16(p + 2 * i));
        return VKM_OK;
    case VKM_BF16:
        for (uint64_t i = 0; i < n; i++) dst[i] = vkm_bf16_to_f32(vkm_rd16(p + 2 * i));
        return VKM_OK;
    case VKM_Q8_0:
        if (n % 32) return VKM_ERR_INVALID_ARGUMENT;
        for (uint64_t b = 0; b < n / 32; b++, p += 34) {
            float d = vkm_f16_to_f32(vkm_rd16(p));
            for (int j = 0; j < 32; j++) dst[32 * b + j] = d * (float)(int8_t)p[2 + j];
        }
        return VKM_OK;
    case VKM_Q4_0:
        if (n % 32) return VKM_ERR_INVALID_ARGUMENT;
        for (uint64_t b = 0; b < n / 32; b++, p += 18) {
            float d = vkm_f16_to_f32(vkm_rd16(p));
            for (int j = 0; j < 16; j++) {
                dst[32 * b + j] = d * (float)((p[2 + j] & 0xF) - 8);
                dst[32 * b + j + 16] = d * (float)((p[2 + j] >> 4) - 8);
            }
        }
        return VKM_OK;
    case VKM_Q4_K:
        if (n % 256) return VKM_ERR_INVALID_ARGUMENT;
        for (uint64_t b = 0; b < n / 256; b++, p += 144) {
            float d = vkm_f16_to_f32(vkm_rd16(p)), dmin = vkm_f16_to_f32(vkm_rd16(p + 2));
            const uint8_t *sc = p + 4, *q = p + 16;
            float *y = dst + 256 * b;
            for (int j = 0, is = 0; j < 256; j += 64, is += 2, q += 32) {
                uint8_t s0, m0, s1, m1;
                q4k_scale_min(is, sc, &s0, &m0);
                q4k_scale_min(is + 1, sc, &s1, &m1);
                for (int l = 0; l < 32; l++) *y++ = d * s0 * (q[l] & 0xF) - dmin * m0;
                for (int l = 0; l < 32; l++) *y++ = d * s1 * (q[l] >> 4) - dmin * m1;
            }
        }
        return VKM_OK;
    case VKM_Q6_K:
        if (n % 256) return VKM_ERR_INVALID_ARGUMENT;
        for (uint64_t b = 0; b < n / 256; b++, p += 210) {
            const uint8_t *ql = p, *qh = p + 128;
            const int8_t *sc = (const int8_t *)(p + 192);
            float d = vkm_f16_to_f32(vkm_rd16(p + 208));
            float *y = dst + 256 * b;
            for (int h = 0; h < 2; h++, y += 128, ql += 64, qh += 32, sc += 8) {
                for (int l = 0; l < 32; l++) {
                    int is = l / 16;
                    int q1 = (int)((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                    int q2 = (int)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                    int q3 = (int)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                    int q4 = (int)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                    y[l] = d * sc[is] * q1;
                    y[l + 32] = d * sc[is + 2] * q2;
                    y[l + 64] = d * sc[is + 4] * q3;
                    y[l + 96] = d * sc[is + 6] * q4;
                }
            }
        }
        return VKM_OK;
    default: return VKM_ERR_UNSUPPORTED;
    }
}

void vkm_quantize_q8_0(const float *src, uint64_t n, void *dst)
{
    uint8_t *p = dst;
    for (uint64_t b = 0; b < n / 32; b++, p += 34) {
        const float *x = src + 32 * b;
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
        uint16_t h = vkm_f32_to_f16(d);
        p[0] = (uint8_t)h;
        p[1] = (uint8_t)(h >> 8);
        for (int j = 0; j < 32; j++) p[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
    }
}

void vkm_quantize_q4_0(const float *src, uint64_t n, void *dst)
{
    uint8_t *p = dst;
    for (uint64_t b = 0; b < n / 32; b++, p += 18) {
        const float *x = src + 32 * b;
        float amax = 0, max = 0;
        for (int j = 0; j < 32; j++)
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        float d = max / -8.0f, id = d != 0 ? 1.0f / d : 0.0f;
        uint16_t h = vkm_f32_to_f16(d);
        p[0] = (uint8_t)h;
        p[1] = (uint8_t)(h >> 8);
        for (int j = 0; j < 16; j++) {
            int a = (int)(int8_t)(x[j] * id + 8.5f), c = (int)(int8_t)(x[j + 16] * id + 8.5f);
            if (a > 15) a = 15;
            if (c > 15) c = 15;
            p[2 + j] = (uint8_t)(a | (c << 4));
        }
    }
}
