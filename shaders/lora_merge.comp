#version 450
#extension GL_GOOGLE_include_directive : require
// lora_merge.comp — adds LoRA deltas into one row chunk of a device weight tensor, in place:
//   W[r][c] += sum_e coef_e * (sum_k B_e[map_e(r)][k] * A_e[k][c])
// (terms in order, k ascending, no fused multiply-add: the host reference computes the same
// roundings). WTYPE_F32 / WTYPE_F16 (engine/memory.c layouts: rows padded to 8 elements): one
// invocation per 32 columns of a row. WTYPE_Q8_0 / WTYPE_Q4_0 ([rows][quants] then [rows][cols/32]
// f16 scales): one invocation per two consecutive blocks of 32 (the two halves of one scale word)
// dequantizes, adds, and requantizes with llama.cpp's reference rounding (Q8_0: d = amax / 127,
// q = roundf(x / d); Q4_0: d = max / -8, q = min(15, (int)(x / d + 8.5))), bit for bit what
// vkm_quantize_q8_0 / _q4_0 give on the same floats.
// The pack buffer (32-bit words) holds the terms, 8 words each: [0] A offset (floats, A_e is
// [rank][cols] row-major), [1] B offset (B_e is [rows_b][rank]), [2] rank, [3] coef (f32 bits),
// [4] word offset of the row map (B row of each W row) or 0xffffffff for the identity.
#include "types.glsl"
#define VKM_PUSH_LORA_MERGE
#include "merge_push.glsl"

layout(binding = 0) buffer W { uint w[]; };
layout(binding = 1) readonly buffer Pack { uint pk[]; };

#include "merge.glsl"

float pkf(uint i) { return uintBitsToFloat(pk[i]); }

// delta[c] for the 32 columns c0 .. c0+31 of global row `row` (columns >= cols give 0).
void lora_delta(uint row, uint c0, out float delta[32])
{
    [[unroll]] for (uint c = 0; c < 32u; c++) delta[c] = 0.0;
    for (uint e = 0; e < pc.n_terms; e++) {
        const uint a_off = pk[8u * e], b_off = pk[8u * e + 1u], rank = pk[8u * e + 2u];
        const uint map = pk[8u * e + 4u];
        const float coef = pkf(8u * e + 3u);
        const uint brow = map == 0xffffffffu ? row : pk[map + row];
        precise float s[32];
        [[unroll]] for (uint c = 0; c < 32u; c++) s[c] = 0.0;
        for (uint k = 0; k < rank; k++) {
            const float b = pkf(b_off + brow * rank + k);
            const uint a = a_off + k * pc.cols + c0;
            [[unroll]] for (uint c = 0; c < 32u; c++) {
                precise float t = b * (c0 + c < pc.cols ? pkf(a + c) : 0.0);
                s[c] = s[c] + t;
            }
        }
        [[unroll]] for (uint c = 0; c < 32u; c++) {
            precise float t = coef * s[c];
            delta[c] = delta[c] + t;
        }
    }
}

#if defined(WTYPE_F32)
void main()
{
    const uint u = vkm_group_id() * WG + gl_LocalInvocationID.x, per_row = (pc.cols + 31u) / 32u;
    if (u >= pc.units) return;
    const uint r = u / per_row, c0 = (u % per_row) * 32u;
    float delta[32];
    lora_delta(pc.row0 + r, c0, delta);
    for (uint c = 0; c < 32u && c0 + c < pc.cols; c++) {
        const uint i = r * pc.w_stride + c0 + c;
        precise float v = uintBitsToFloat(w[i]) + delta[c];
        w[i] = floatBitsToUint(v);
    }
}
#elif defined(WTYPE_F16)
void main()
{
    const uint u = vkm_group_id() * WG + gl_LocalInvocationID.x, per_row = (pc.cols + 31u) / 32u;
    if (u >= pc.units) return;
    const uint r = u / per_row, c0 = (u % per_row) * 32u;
    float delta[32];
    lora_delta(pc.row0 + r, c0, delta);
    for (uint c = 0; c < 32u && c0 + c < pc.cols; c += 2u) {
        const uint i = (r * pc.w_stride + c0 + c) / 2u, old = w[i];
        precise float lo = f16_lo(old) + delta[c];
        uint hi = old >> 16;
        if (c0 + c + 1u < pc.cols) {
            precise float h = f16_hi(old) + delta[c + 1u];
            hi = f32_to_f16_bits(h);
        }
        w[i] = f32_to_f16_bits(lo) | (hi << 16);
    }
}
#else
// C's roundf: to nearest, halfway cases away from zero (v - trunc(v) is exact).
float round_away(float v)
{
    const float t = trunc(v);
    return abs(v - t) >= 0.5 ? t + sign(v) : t;
}

// Dequantizes, adds the delta and requantizes flattened block fb of the chunk; returns the new
// f16 scale bits.
uint requant_block(uint fb, uint old_scale)
{
    const uint nb = pc.cols / 32u, r = fb / nb, b = fb % nb;
    const float d_old = unpackHalf2x16(old_scale).x;
    float x[32], delta[32];
    lora_delta(pc.row0 + r, 32u * b, delta);
#if defined(WTYPE_Q8_0)
    const uint q0 = (r * pc.w_stride + 32u * b) / 4u;
    [[unroll]] for (uint i = 0; i < 8u; i++) {
        const vec4 q = i8x4(w[q0 + i]);
        [[unroll]] for (uint k = 0; k < 4u; k++) {
            precise float v = d_old * q[k] + delta[4u * i + k];
            x[4u * i + k] = v;
        }
    }
    float amax = 0.0;
    [[unroll]] for (uint j = 0; j < 32u; j++) amax = max(amax, abs(x[j]));
    precise float d = amax / 127.0;
    precise float id = d != 0.0 ? 1.0 / d : 0.0;
    [[unroll]] for (uint i = 0; i < 8u; i++) {
        uint word = 0u;
        [[unroll]] for (uint k = 0; k < 4u; k++) {
            precise float v = x[4u * i + k] * id;
            word |= (uint(int(round_away(v))) & 255u) << (8u * k);
        }
        w[q0 + i] = word;
    }
#else
    const uint q0 = (r * pc.w_stride + 16u * b) / 4u;
    [[unroll]] for (uint i = 0; i < 4u; i++) {
        const uint word = w[q0 + i];
        [[unroll]] for (uint k = 0; k < 4u; k++) {
            const uint byte = (word >> (8u * k)) & 255u;
            precise float lo = (float(byte & 15u) - 8.0) * d_old + delta[4u * i + k];
            precise float hi = (float(byte >> 4) - 8.0) * d_old + delta[4u * i + k + 16u];
            x[4u * i + k] = lo;
            x[4u * i + k + 16u] = hi;
        }
    }
    float amax = 0.0, mx = 0.0;
    for (uint j = 0; j < 32u; j++)
        if (abs(x[j]) > amax) {
            amax = abs(x[j]);
            mx = x[j];
        }
    precise float d = mx / -8.0;
    precise float id = d != 0.0 ? 1.0 / d : 0.0;
    [[unroll]] for (uint i = 0; i < 4u; i++) {
        uint word = 0u;
        [[unroll]] for (uint k = 0; k < 4u; k++) {
            precise float vl = x[4u * i + k] * id + 8.5;
            precise float vh = x[4u * i + k + 16u] * id + 8.5;
            const uint a = min(15u, uint(int(vl))), c = min(15u, uint(int(vh)));
            word |= (a | (c << 4)) << (8u * k);
        }
        w[q0 + i] = word;
    }
#endif
    return f32_to_f16_bits(d);
}

void main()
{
    const uint u = vkm_group_id() * WG + gl_LocalInvocationID.x;
    if (u >= pc.units) return;
    const uint total = pc.rows * (pc.cols / 32u), fb = 2u * u;
    const uint sw = pc.scale_off + u, old = w[sw];
    uint lo = requant_block(fb, old & 0xffffu), hi = old >> 16;
    if (fb + 1u < total) hi = requant_block(fb + 1u, old >> 16);
    w[sw] = lo | (hi << 16);
}
#endif
