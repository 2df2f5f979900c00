#version 450
#extension GL_GOOGLE_include_directive : require
// merge.comp — one chunk of a merged tensor from the N inputs of the slab (merge.glsl), 8
// elements per invocation, written as f32/f16/bf16. OP (specialization constant 4):
//   0 LINEAR: y = (sum_{j != BASE} c_j x_j) * scale  [+ c_base x_BASE when BASE < N]
//             linear (c = weights, scale = 1 / sum of weights, or 1), slerp (c = s0, s1 from the
//             host, scale 1), model_stock (c = 1, scale = t / (N - 1), c_base = 1 - t).
//   1 TASK:   generalized task arithmetic (mergekit): per model delta_j = x_j - x_BASE,
//             sparsified (FLAGS bits 0-1: 1 magnitude selection through the select.comp slots
//             "top" (kept: among the k largest) and "excl" (dropped: among the n_top largest),
//             2 DARE: kept when the keyed hash < density * 2^32, then divided by the density),
//             weighted wd_j = w_j delta_j; sign consensus (bit 2): majority sign of sum wd_j,
//             mixed = sum of the wd_j of that sign, divided with normalize (bit 3) by the sum of
//             their w_j (0 -> 1); without it mixed = sum wd_j, times the host's 1 / sum of w_j
//             with normalize; then y = x_BASE + lambda * mixed.
// Params buffer (32-bit words): input j at 8 j: [0] weight / coefficient, [1] DARE threshold,
// [2..3] DARE key, [4] rescale divisor (density, or 1), [5] top slot, [6] excl slot (or NONE);
// globals at 128: [0] scale, [2] c_base, [3] lambda.
// Variant merge_in (VKM_MERGE_INPUTS, at most 8 inputs): each input from its own binding.
#include "types.glsl"
#define VKM_PUSH_MERGE
#include "merge_push.glsl"

layout(constant_id = 1) const uint N = 2;      // inputs in the slab
layout(constant_id = 2) const uint DTYPES = 0; // 2 bits per input
layout(constant_id = 3) const uint ODT = 0;    // output: 0 f32, 1 f16, 2 bf16
layout(constant_id = 4) const uint OP = 0;
layout(constant_id = 5) const uint BASE = 2;   // index of the base input; N: none
layout(constant_id = 6) const uint FLAGS = 0;

layout(binding = 0) readonly buffer In { uvec4 in4[]; };
#ifdef VKM_MERGE_INPUTS
// input j > 0 at binding 3 + j (its own range; input 0 at binding 0)
layout(binding = 4) readonly buffer In1 { uvec4 in4_1[]; };
layout(binding = 5) readonly buffer In2 { uvec4 in4_2[]; };
layout(binding = 6) readonly buffer In3 { uvec4 in4_3[]; };
layout(binding = 7) readonly buffer In4 { uvec4 in4_4[]; };
layout(binding = 8) readonly buffer In5 { uvec4 in4_5[]; };
layout(binding = 9) readonly buffer In6 { uvec4 in4_6[]; };
layout(binding = 10) readonly buffer In7 { uvec4 in4_7[]; };
#endif
layout(binding = 1) writeonly buffer Out { uvec4 o4[]; };
layout(binding = 1) writeonly buffer Out1 { uint o1[]; };
layout(binding = 2) readonly buffer Params { uint prm[]; };
layout(binding = 3) readonly buffer State { uint st[]; };

#define VKM_MERGE_SLAB
#include "merge.glsl"

#define SPARSE_SELECT 1u
#define SPARSE_RANDOM 2u
#define G 128u

float pf(uint i) { return uintBitsToFloat(prm[i]); }

// What every element shares, per input j: read from the params and the selection records once
// per invocation (llvmpipe gathers storage loads lane by lane, even at uniform addresses).
// Selections as (mode, threshold): mode 3 keeps all, 1 keys >= threshold, else none.
#define MAXN 16u
float j_w[MAXN], j_div[MAXN];
uint j_top[MAXN], j_excl[MAXN], j_thr[MAXN];
uvec2 j_top_key[MAXN], j_excl_key[MAXN], j_dare[MAXN];

void load_selection(uint slot, uint none_mode, out uint mode, out uvec2 key)
{
    mode = slot == VKM_NONE ? none_mode : st[slot * 16u + 2u];
    key = slot == VKM_NONE ? uvec2(0u) : uvec2(st[slot * 16u + 4u], st[slot * 16u + 5u]);
}

void load_params()
{
    for (uint j = 0; j < N; j++) {
        j_w[j] = pf(8u * j);
        j_div[j] = pf(8u * j + 4u);
        j_thr[j] = prm[8u * j + 1u];
        j_dare[j] = uvec2(prm[8u * j + 2u], prm[8u * j + 3u]);
        if ((FLAGS & 3u) == SPARSE_SELECT) {
            load_selection(prm[8u * j + 5u], 3u, j_top[j], j_top_key[j]);  // no slot: keep all
            load_selection(prm[8u * j + 6u], 2u, j_excl[j], j_excl_key[j]); // no slot: drop none
        }
    }
}

bool selected(uint mode, uvec2 thr, uvec2 key) { return mode == 3u || (mode == 1u && key_ge(key, thr)); }

// delta_j sparsified and weighted, for element idx.
float weighted_delta(uint j, float x, float xb, uint idx)
{
    precise float d = x - xb;
    const uint sparse = FLAGS & 3u;
    bool keep = true;
    if (sparse == SPARSE_SELECT) {
        const uvec2 key = mag_key(d, idx);
        keep = selected(j_top[j], j_top_key[j], key) && !selected(j_excl[j], j_excl_key[j], key);
    } else if (sparse == SPARSE_RANDOM) {
        keep = j_thr[j] == VKM_NONE || dare_u32(idx, j_dare[j]) < j_thr[j];
    }
    precise float r = keep ? d / j_div[j] : 0.0;
    precise float wd = j_w[j] * r;
    return wd;
}

void combine(uint g, out float y[8])
{
    float x[8], xb[8];
    if (OP == 0u) {
        precise float acc[8] = float[8](0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
        for (uint j = 0; j < N; j++) {
            if (j == BASE) continue;
            load_group(j, in_dtype(DTYPES, j), pc.off[j], g, x);
            const float c = j_w[j];
            [[unroll]] for (uint k = 0; k < 8u; k++) acc[k] += c * x[k];
        }
        if (BASE < N) load_group(BASE, in_dtype(DTYPES, BASE), pc.off[BASE], g, xb);
        [[unroll]] for (uint k = 0; k < 8u; k++) {
            precise float v = acc[k] * pf(G);
            if (BASE < N) v += pf(G + 2u) * xb[k];
            y[k] = v;
        }
        return;
    }
    load_group(BASE, in_dtype(DTYPES, BASE), pc.off[BASE], g, xb);
    const uint idx0 = pc.elem0 + g * 8u;
    precise float sum[8] = float[8](0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    float wd[MAXN * 8u]; // each model's weighted delta, for the sign consensus
    for (uint j = 0; j < N; j++) {
        if (j == BASE) continue;
        load_group(j, in_dtype(DTYPES, j), pc.off[j], g, x);
        [[unroll]] for (uint k = 0; k < 8u; k++) {
            wd[8u * j + k] = weighted_delta(j, x[k], xb[k], idx0 + k);
            sum[k] += wd[8u * j + k];
        }
    }
    precise float mixed[8], div[8];
    const bool normalize = (FLAGS & 8u) != 0u;
    if ((FLAGS & 4u) != 0u) { // sign consensus by sum
        [[unroll]] for (uint k = 0; k < 8u; k++) mixed[k] = div[k] = 0.0;
        for (uint j = 0; j < N; j++) {
            if (j == BASE) continue;
            [[unroll]] for (uint k = 0; k < 8u; k++) {
                const float v = wd[8u * j + k];
                if (v != 0.0 && (v > 0.0) == (sum[k] >= 0.0)) {
                    mixed[k] += v;
                    div[k] += j_w[j];
                }
            }
        }
        [[unroll]] for (uint k = 0; k < 8u; k++) {
            if (div[k] == 0.0) div[k] = 1.0;
            if (normalize) mixed[k] = mixed[k] / div[k];
        }
    } else {
        [[unroll]] for (uint k = 0; k < 8u; k++) mixed[k] = normalize ? sum[k] * pf(G) : sum[k];
    }
    const float lambda = pf(G + 3u);
    [[unroll]] for (uint k = 0; k < 8u; k++) {
        precise float m = mixed[k];
        precise float v = xb[k] + lambda * m;
        y[k] = v;
    }
}

void main()
{
    const uint n_groups = (pc.n + 7u) / 8u;
    const uint stride = gl_NumWorkGroups.x * gl_NumWorkGroups.y * WG;
    load_params();
    for (uint g = vkm_group_id() * WG + gl_LocalInvocationID.x; g < n_groups; g += stride) {
        float y[8];
        combine(g, y);
        const bool full = g * 8u + 8u <= pc.n;
        if (ODT == VKM_DT_F32) {
            uvec4 a = floatBitsToUint(vec4(y[0], y[1], y[2], y[3]));
            uvec4 b = floatBitsToUint(vec4(y[4], y[5], y[6], y[7]));
            if (full) {
                o4[2u * g] = a;
                o4[2u * g + 1u] = b;
            } else {
                for (uint k = 0; g * 8u + k < pc.n; k++) o1[8u * g + k] = k < 4u ? a[k] : b[k - 4u];
            }
        } else {
            uvec4 q = uvec4(pack2(ODT, y[0], y[1]), pack2(ODT, y[2], y[3]),
                            pack2(ODT, y[4], y[5]), pack2(ODT, y[6], y[7]));
            if (full) o4[g] = q;
            else
                for (uint k = 0; g * 8u + 2u * k < pc.n; k++) o1[4u * g + k] = q[k];
        }
    }
}
