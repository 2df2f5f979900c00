/*
 * unicode.c — UTF-8 decoding and repair, class lookup in the generated range table, and the
 * GPT-2 byte-level alphabet.
 */
#include "unicode.h"

unsigned vkm_uni_flags(uint32_t cp)
{
    size_t lo = 0, hi = vkm_uni_n_ranges;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        uint32_t first = vkm_uni_ranges[mid][0], last = vkm_uni_ranges[mid][1] & 0xFFFFFFu;
        if (cp < first) hi = mid;
        else if (cp > last) lo = mid + 1;
        else return vkm_uni_ranges[mid][1] >> 24;
    }
    return 0;
}

/* Length of the sequence lead byte b starts, 0 if b cannot start one. */
static size_t seq_len(uint8_t b)
{
    if (b < 0x80) return 1;
    if (b < 0xC2) return 0;
    if (b < 0xE0) return 2;
    if (b < 0xF0) return 3;
    if (b < 0xF5) return 4;
    return 0;
}

/* Number of bytes at s (n > 0 available) that form a valid prefix of a sequence; *need is the
 * length of the whole sequence (0 when s[0] cannot start one). */
static size_t valid_prefix(const uint8_t *s, size_t n, size_t *need)
{
    size_t len = seq_len(s[0]);
    *need = len;
    if (len == 0) return 0;
    size_t k = 1;
    while (k < len && k < n) {
        uint8_t lo = 0x80, hi = 0xBF;
        if (k == 1) {
            if (s[0] == 0xE0) lo = 0xA0;
            else if (s[0] == 0xED) hi = 0x9F;
            else if (s[0] == 0xF0) lo = 0x90;
            else if (s[0] == 0xF4) hi = 0x8F;
        }
        if (s[k] < lo || s[k] > hi) break;
        k++;
    }
    return k;
}

size_t vkm_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp)
{
    if (n == 0) return 0;
    size_t need, k = valid_prefix(s, n, &need);
    if (need == 0 || k < need) return 0;
    uint32_t c;
    switch (need) {
    case 1: c = s[0]; break;
    case 2: c = ((uint32_t)(s[0] & 0x1F) << 6) | (s[1] & 0x3F); break;
    case 3: c = ((uint32_t)(s[0] & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F); break;
    default:
        c = ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
            ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
        break;
    }
    *cp = c;
    return need;
}

size_t vkm_utf8_encode(uint32_t cp, uint8_t out[4])
{
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | (cp >> 6));
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | (cp >> 12));
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | (cp >> 18));
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* GPT-2 keeps the printable bytes '!'..'~', 0xA1..0xAC and 0xAE..0xFF as themselves and gives
 * the other 68 bytes, in byte order, the code points 256..323. */
uint32_t vkm_bytelevel_char(uint8_t b)
{
    if (b <= 0x20) return 256u + b;
    if (b >= 0x7F && b <= 0xA0) return 256u + 33 + (b - 0x7Fu);
    if (b == 0xAD) return 256u + 67;
    return b;
}

int vkm_bytelevel_byte(uint32_t cp)
{
    if (cp < 256) {
        if (cp <= 0x20 || (cp >= 0x7F && cp <= 0xA0) || cp == 0xAD) return -1;
        return (int)cp;
    }
    if (cp < 256 + 33) return (int)(cp - 256);
    if (cp < 256 + 67) return (int)(0x7F + (cp - 256 - 33));
    if (cp == 256 + 67) return 0xAD;
    return -1;
}

static void put(uint8_t *dst, size_t cap, size_t *len, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++, (*len)++)
        if (*len < cap) dst[*len] = p[i];
}

size_t vkm_utf8_repair(const uint8_t *src, size_t n, bool final, vkm_utf8_repair_mode mode,
                       uint8_t *dst, size_t cap, size_t *dst_len)
{
    static const uint8_t fffd[3] = {0xEF, 0xBF, 0xBD};
    size_t i = 0, len = 0;
    while (i < n) {
        size_t need, k = valid_prefix(src + i, n - i, &need);
        if (need && k == need) { /* a whole valid sequence */
            put(dst, cap, &len, src + i, k);
            i += k;
        } else if (need && i + k == n && !final) { /* could still complete */
            break;
        } else {
            put(dst, cap, &len, fffd, 3);
            i += (mode == VKM_UTF8_MAXIMAL && k > 0) ? k : 1;
        }
    }
    *dst_len = len;
    return i;
}
