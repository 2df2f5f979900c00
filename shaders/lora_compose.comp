#version 450
#extension GL_GOOGLE_include_directive : require
// lora_compose.comp — parameter aggregation "average" (LoraHub, Mo'LoRA, DAM): one adapter
// composed from a routing row's experts, into the rows of a virtual expert of the site:
// A' = sum_j w_j A_j, B' = sum_j w_j s_j B_j (so the virtual expert's scale is 1). Experts of
// the row that do not adapt the site are skipped; the others share one rank (checked at load).
// Invocations over the elements of A' [r][in] then Bt' [r][out].
#include "types.glsl"
#define VKM_PUSH_COMPOSE
#include "push.glsl"

layout(binding = 0) buffer Ab { float a[]; };
layout(binding = 1) buffer Bb { float bt[]; };
layout(binding = 2) readonly buffer Meta { uint meta[]; };
layout(binding = 3) readonly buffer Ids { uint ids[]; };
layout(binding = 4) readonly buffer Wts { float wts[]; };

void main()
{
    const uint idx = vkm_group_id() * WG + gl_LocalInvocationID.x;
    const uint doff = meta[pc.meta_off + 4 * pc.dst], dr = meta[pc.meta_off + 4 * pc.dst + 1];
    const bool in_a = idx < dr * pc.in_dim;
    if (!in_a && idx >= dr * (pc.in_dim + pc.out_dim)) return;
    const uint k = in_a ? idx / pc.in_dim : (idx - dr * pc.in_dim) / pc.out_dim;
    const uint c = in_a ? idx % pc.in_dim : (idx - dr * pc.in_dim) % pc.out_dim;
    float acc = 0.0;
    for (uint j = 0; j < pc.row_stride; j++) {
        const uint e = ids[pc.route_off + j];
        if (e == 0xffffffffu) break;
        const uint off = meta[pc.meta_off + 4 * e], r = meta[pc.meta_off + 4 * e + 1];
        if (k >= r) continue;
        const float w = wts[pc.route_off + j];
        if (in_a) acc += w * a[(off + k) * pc.in_dim + c];
        else acc += w * uintBitsToFloat(meta[pc.meta_off + 4 * e + 2]) * bt[(off + k) * pc.out_dim + c];
    }
    if (in_a) a[(doff + k) * pc.in_dim + c] = acc;
    else bt[(doff + k) * pc.out_dim + c] = acc;
}
