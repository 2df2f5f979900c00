#version 450
#extension GL_GOOGLE_include_directive : require
// pool.comp — adds the rows of x into a running sum (mean pooling of router inputs over a
// prompt: sequence-level routing, centroids from calibration texts).
#include "types.glsl"
#define VKM_PUSH_POOL
#include "push.glsl"

layout(binding = 0) readonly buffer X { float x[]; };
layout(binding = 1) buffer D { float d[]; };

void main()
{
    const uint c = vkm_group_id() * WG + gl_LocalInvocationID.x;
    if (c >= pc.dim) return;
    float s = 0.0;
    for (uint i = 0; i < pc.n_tok; i++) s += x[pc.x_off + i * pc.x_stride + c];
    d[pc.dst_off + c] += s;
}
