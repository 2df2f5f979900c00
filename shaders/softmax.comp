#version 450
#extension GL_GOOGLE_include_directive : require
// softmax.comp — in place, row by row: x[r] = softmax(x[r] * scale), one workgroup per row.
#include "types.glsl"
#define VKM_PUSH_SOFTMAX
#include "push.glsl"

layout(binding = 0) buffer X { float x[]; };

void main()
{
    const uint r = vkm_group_id();
    if (r >= pc.rows) return;
    const uint b = r * pc.stride;
    float m = -1.0 / 0.0;
    for (uint i = gl_LocalInvocationID.x; i < pc.n; i += WG) m = max(m, x[b + i] * pc.scale);
    m = wg_max(m);
    float s = 0.0;
    for (uint i = gl_LocalInvocationID.x; i < pc.n; i += WG) s += exp(x[b + i] * pc.scale - m);
    s = wg_sum(s);
    const float inv = 1.0 / s;
    for (uint i = gl_LocalInvocationID.x; i < pc.n; i += WG) x[b + i] = exp(x[b + i] * pc.scale - m) * inv;
}
