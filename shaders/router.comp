#version 450
#extension GL_GOOGLE_include_directive : require
// router.comp — one routing decision per row, fused: logits = R f(x) (f: identity or L2
// normalisation; R is E x in, one row per expert), |logit| for Arrow, / temperature, then
// softmax or sigmoid or raw, top-k over the experts other than the always-on one (ties: the
// lowest index), renormalised to sum 1 (softmax / sigmoid), the always-on expert added with
// weight 1 (flags 16: a bias per expert, in the matrix row after the experts' rows). Writes the chosen bank experts (packed first, then 0xffffffff) and their weights
// into the routing buffers the LoRA kernels read. Workgroup z is the routing point among
// consecutive ones sharing the input (q, k, v; gate, up): one dispatch decides all of them.
// Spec constants: 0 WG, 1 EMAX, 2 VEC.
#include "types.glsl"
#define VKM_PUSH_ROUTER
#include "push.glsl"

layout(constant_id = 1) const uint EMAX = 8;
layout(constant_id = 2) const uint VEC = 0; // 1: in_dim and x's offset/stride are multiples of 4 (vec4 loads)

layout(binding = 0) readonly buffer X { float x[]; };
layout(binding = 0) readonly buffer X4 { vec4 x4[]; };
layout(binding = 1) readonly buffer R { float rw[]; };
layout(binding = 1) readonly buffer R4 { vec4 rw4[]; };
layout(binding = 2) readonly buffer L { uint list[]; };
layout(binding = 3) writeonly buffer Ids { uint ids[]; };
layout(binding = 4) writeonly buffer Wts { float wts[]; };

shared float part[EMAX * WG];
shared float logit[EMAX];

void main()
{
    const uint j = vkm_group_id(), lid = gl_LocalInvocationID.x;
    if (j >= pc.n) return;
    const uint xr = pc.list_off == 0xffffffffu ? j : list[pc.list_off + j];
    const uint orow = pc.out_row_off == 0xffffffffu ? xr : list[pc.out_row_off + j];
    const uint xb = pc.x_off + xr * pc.x_stride;
    const uint site = gl_WorkGroupID.z, mb = site * pc.mat_stride;
    float acc[EMAX];
    [[unroll]] for (uint e = 0; e < EMAX; e++) acc[e] = 0.0;
    float ss = 0.0;
    if (VEC != 0u) {
        const uint n4 = pc.in_dim >> 2, xb4 = xb >> 2;
        for (uint c = lid; c < n4; c += WG) {
            const vec4 v = x4[xb4 + c] * pc.x_scale;
            ss += dot(v, v);
            [[unroll]] for (uint e = 0; e < EMAX; e++)
                if (e < pc.n_exp) acc[e] += dot(rw4[(mb >> 2) + e * n4 + c], v);
        }
    } else {
        for (uint c = lid; c < pc.in_dim; c += WG) {
            const float v = x[xb + c] * pc.x_scale;
            ss += v * v;
            [[unroll]] for (uint e = 0; e < EMAX; e++)
                if (e < pc.n_exp) acc[e] += rw[mb + e * pc.in_dim + c] * v;
        }
    }
    const float norm = sqrt(wg_sum(ss));
    WG_PARTS(acc, EMAX, part);
    barrier();
    if (lid != 0) return;
    for (uint e = 0; e < pc.n_exp; e++) {
        float s = 0.0;
        for (uint t = 0; t < VKM_PARTS; t++) s += part[e * WG + t];
        if ((pc.flags & 1u) != 0u) s = norm > 0.0 ? s / norm : 0.0;
        if ((pc.flags & 2u) != 0u) s = abs(s);
        if ((pc.flags & 16u) != 0u) s += rw[mb + pc.n_exp * pc.in_dim + e]; // biases: the row after the experts
        logit[e] = s * pc.inv_temp;
    }
    // probabilities (or raw values)
    if ((pc.flags & 4u) != 0u) {
        float m = -1.0 / 0.0, z = 0.0;
        for (uint e = 0; e < pc.n_exp; e++) m = max(m, logit[e]);
        for (uint e = 0; e < pc.n_exp; e++) { logit[e] = exp(logit[e] - m); z += logit[e]; }
        for (uint e = 0; e < pc.n_exp; e++) logit[e] /= z;
    } else if ((pc.flags & 8u) != 0u) {
        for (uint e = 0; e < pc.n_exp; e++) logit[e] = 1.0 / (1.0 + exp(-logit[e]));
    }
    // top-k among the others (selection: the largest remaining, lowest index on ties)
    const uint n_other = pc.n_exp - (pc.always_on >= 0 ? 1u : 0u);
    const uint k = pc.top_k == 0u || pc.top_k > n_other ? n_other : pc.top_k;
    uint chosen = 0u, cnt = 0u; // bit mask over router experts (EMAX <= 64: two words)
    uint chosen_hi = 0u;
    uint sel[EMAX];
    float sw[EMAX];
    float tot = 0.0;
    for (uint s = 0; s < k; s++) {
        int best = -1;
        for (uint e = 0; e < pc.n_exp; e++) {
            if (int(e) == pc.always_on) continue;
            const bool used = e < 32u ? (chosen & (1u << e)) != 0u : (chosen_hi & (1u << (e - 32u))) != 0u;
            if (used) continue;
            if (best < 0 || logit[e] > logit[best]) best = int(e);
        }
        if (best < 0) break;
        if (best < 32) chosen |= 1u << uint(best); else chosen_hi |= 1u << uint(best - 32);
        sel[cnt] = uint(best);
        sw[cnt] = logit[best];
        tot += logit[best];
        cnt++;
    }
    const bool renorm = (pc.flags & 12u) != 0u && tot > 0.0;
    for (uint c = 0; c < pc.n_copies; c++) {
        const uint rb = pc.route_off + (site * pc.n_copies + c) * pc.copy_stride + orow * pc.row_stride;
        uint o = 0;
        for (uint s = 0; s < cnt; s++, o++) {
            ids[rb + o] = list[pc.map_off + sel[s]];
            wts[rb + o] = renorm ? sw[s] / tot : sw[s];
        }
        if (pc.always_on >= 0) {
            ids[rb + o] = list[pc.map_off + uint(pc.always_on)];
            wts[rb + o] = 1.0;
            o++;
        }
        for (; o < pc.row_stride; o++) { ids[rb + o] = 0xffffffffu; wts[rb + o] = 0.0; }
    }
}
