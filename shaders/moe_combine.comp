#version 450
#extension GL_GOOGLE_include_directive : require
// moe_combine.comp — the FFN experts' outputs weighted by the router: y[t] (+)= sum_j w_tj d[t][j]
// over the valid entries of token t's routing row.
#include "types.glsl"
#define VKM_PUSH_COMBINE
#include "push.glsl"

layout(binding = 0) readonly buffer D { float d[]; };
layout(binding = 1) readonly buffer Ids { uint ids[]; };
layout(binding = 2) readonly buffer Wts { float wts[]; };
layout(binding = 3) readonly buffer Lst { uint lst[]; };
layout(binding = 4) buffer Y { float y[]; };

void main()
{
    const uint idx = vkm_group_id() * WG + gl_LocalInvocationID.x;
    if (idx >= pc.n_tok * pc.dim) return;
    const uint t = idx / pc.dim, c = idx % pc.dim;
    const uint rb = pc.route_off + lst[pc.row_list_off + t] * pc.row_stride;
    float acc = 0.0;
    for (uint j = 0; j < pc.row_stride; j++) {
        if (ids[rb + j] == 0xffffffffu) break;
        acc += wts[rb + j] * d[pc.d_off + (t * pc.row_stride + j) * pc.dim + c];
    }
    const uint yi = pc.y_off + t * pc.y_stride + c;
    y[yi] = pc.accumulate != 0u ? y[yi] + acc : acc;
}
