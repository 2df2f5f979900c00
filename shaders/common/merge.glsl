// merge.glsl — what the merge kernels share (merge.comp, merge_reduce.comp, select.comp):
//  - the input slab: N inputs of one chunk side by side, input j at word pc.off[j], each
//    stored as f32, f16 or bf16 (2 bits of the DTYPES specialization constant per input) and
//    read 8 elements at a time (one "group": 32 bytes of f32 or 16 bytes of f16/bf16);
//  - output packing to f32/f16/bf16 with round-to-nearest-even done in integer arithmetic, bit
//    for bit what the host conversions (loader/base.c) give;
//  - the DARE counter-based hash and the magnitude keys of the selection: (|x| bits, ~index) as
//    a 64-bit integer (uvec2, .x high), so every element has a distinct key and "the k largest"
//    is one exact set (ties in |x| go to the lower index).
// A kernel reading a slab defines VKM_MERGE_SLAB and its binding as `in4` (uvec4 words) first.

// HW_F16: 1 when the host found the float conversions (the device's unpackHalf2x16; the
// branch-free f32_to_f16_round_add below, exact in IEEE f32 arithmetic) bit-identical to the
// host's on a probe of tricky values (merge_stream.c); they are several times cheaper on CPU
// devices. 0: the integer conversions below, exact everywhere.
layout(constant_id = 7) const uint HW_F16 = 0;

#define VKM_DT_F32 0u
#define VKM_DT_F16 1u
#define VKM_DT_BF16 2u
#define VKM_NONE 0xffffffffu

uint in_dtype(uint dtypes, uint j) { return (dtypes >> (2u * j)) & 3u; }

#ifdef VKM_MERGE_SLAB
#ifdef VKM_MERGE_INPUTS
// Each input in its own binding (the kernel declares in4_1 .. in4_7 beside in4), e.g. a window
// of its file's map imported as device memory; off is then the word offset in that binding.
uvec4 in_word4(uint j, uint i)
{
    switch (j) {
    case 0u: return in4[i];
    case 1u: return in4_1[i];
    case 2u: return in4_2[i];
    case 3u: return in4_3[i];
    case 4u: return in4_4[i];
    case 5u: return in4_5[i];
    case 6u: return in4_6[i];
    default: return in4_7[i];
    }
}
#else
#define in_word4(j, i) in4[i]
#endif

// The 8 elements of group g of input j, stored as dt from word `off` (a multiple of 4).
void load_group(uint j, uint dt, uint off, uint g, out float v[8])
{
    if (dt == VKM_DT_F32) {
        uvec4 a = in_word4(j, (off >> 2) + 2u * g), b = in_word4(j, (off >> 2) + 2u * g + 1u);
        v[0] = uintBitsToFloat(a.x); v[1] = uintBitsToFloat(a.y);
        v[2] = uintBitsToFloat(a.z); v[3] = uintBitsToFloat(a.w);
        v[4] = uintBitsToFloat(b.x); v[5] = uintBitsToFloat(b.y);
        v[6] = uintBitsToFloat(b.z); v[7] = uintBitsToFloat(b.w);
    } else if (dt == VKM_DT_F16) {
        uvec4 q = in_word4(j, (off >> 2) + g);
        vec4 lo = HW_F16 != 0u ? vec4(unpackHalf2x16(q.x), unpackHalf2x16(q.y)) : f16x4(q.xy);
        vec4 hi = HW_F16 != 0u ? vec4(unpackHalf2x16(q.z), unpackHalf2x16(q.w)) : f16x4(q.zw);
        v[0] = lo.x; v[1] = lo.y; v[2] = lo.z; v[3] = lo.w;
        v[4] = hi.x; v[5] = hi.y; v[6] = hi.z; v[7] = hi.w;
    } else {
        uvec4 q = in_word4(j, (off >> 2) + g);
        [[unroll]] for (uint k = 0; k < 4; k++) {
            v[2 * k] = uintBitsToFloat(q[k] << 16);
            v[2 * k + 1] = uintBitsToFloat(q[k] & 0xffff0000u);
        }
    }
}
#endif

// f32 -> f16 bits, round to nearest even; overflow to inf, NaN stays NaN (as vkm_f32_to_f16).
uint f32_to_f16_bits(float f)
{
    uint x = floatBitsToUint(f);
    uint sign = (x >> 16) & 0x8000u, e8 = (x >> 23) & 255u, man = x & 0x7fffffu;
    if (e8 == 255u) return sign | 0x7c00u | (man != 0u ? 0x200u : 0u);
    int e = int(e8) - 112;
    if (e >= 31) return sign | 0x7c00u;
    if (e <= 0) {
        if (e < -10) return sign;
        man |= 0x800000u;
        uint shift = uint(14 - e);
        uint h = man >> shift, rem = man & ((1u << shift) - 1u), mid = 1u << (shift - 1u);
        if (rem > mid || (rem == mid && (h & 1u) != 0u)) h++;
        return sign | h;
    }
    uint h = (uint(e) << 10) | (man >> 13), rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u) != 0u)) h++;
    return sign | h;
}

// f32 -> bf16 bits, round to nearest even (as vkm_f32_to_bf16).
uint f32_to_bf16_bits(float f)
{
    uint x = floatBitsToUint(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (x >> 16) | 64u;
    x += 0x7fffu + ((x >> 16) & 1u);
    return x >> 16;
}

// f32 -> f16 bits as f32_to_f16_bits, without branches: the rounding done by an f32 addition.
// |f| is scaled up and back down (overflow -> inf) and added to a power of two whose ulp is the
// f16 ulp at f's exponent (2^-24 at least, the subnormals), so the sum's mantissa holds f
// rounded to nearest even in f16 precision; its exponent and top mantissa bits are then the f16
// encoding. NaN -> sign | 0x7e00, as the host. Exact for every f32 the host converts (probed).
uint f32_to_f16_round_add(float f)
{
    const uint w = floatBitsToUint(f), w2 = w + w;
    precise float base = (abs(f) * 5.192296858534828e+33) * 7.703719777548943e-34; // 2^112, 2^-110
    const uint bias = max(w2 & 0xff000000u, 0x71000000u);
    precise float sum = uintBitsToFloat((bias >> 1) + 0x07800000u) + base;
    const uint bits = floatBitsToUint(sum);
    const uint nonsign = ((bits >> 13) & 0x7c00u) + (bits & 0x0fffu);
    return ((w >> 16) & 0x8000u) | (w2 > 0xff000000u ? 0x7e00u : nonsign);
}

// Two elements packed into one 32-bit word of a 16-bit output type (odt: VKM_DT_F16 / BF16).
uint pack2(uint odt, float a, float b)
{
    if (odt == VKM_DT_F16 && HW_F16 != 0u) return f32_to_f16_round_add(a) | (f32_to_f16_round_add(b) << 16);
    return odt == VKM_DT_F16 ? f32_to_f16_bits(a) | (f32_to_f16_bits(b) << 16)
                             : f32_to_bf16_bits(a) | (f32_to_bf16_bits(b) << 16);
}

// ---- DARE: a keyed hash of the element index (two rounds of MurmurHash3's finalizer) ----------
uint fmix32(uint h)
{
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

// Element `idx` is kept when dare_u32(idx, key) < threshold (density * 2^32).
uint dare_u32(uint idx, uvec2 key) { return fmix32(fmix32(idx ^ key.x) + key.y); }

// ---- magnitude keys ---------------------------------------------------------------------------
uvec2 mag_key(float d, uint idx) { return uvec2(floatBitsToUint(abs(d)), ~idx); }
bool key_ge(uvec2 a, uvec2 b) { return a.x > b.x || (a.x == b.x && a.y >= b.y); }
