#version 450
#extension GL_GOOGLE_include_directive : require
// rmsnorm.comp — y[r] = x[g(r)] / sqrt(mean(x[g(r)]^2) + eps) * w, one workgroup per row;
// g(r) = r, or a row index list (the rows of a step that want logits).
#include "types.glsl"
#define VKM_PUSH_NORM
#include "push.glsl"

layout(binding = 0) readonly buffer X { float x[]; };
layout(binding = 1) readonly buffer Wt { float w[]; };
layout(binding = 2) writeonly buffer Y { float y[]; };
layout(binding = 3) readonly buffer Idx { uint idx[]; };

void main()
{
    const uint r = vkm_group_id();
    if (r >= pc.rows) return;
    const uint xr = pc.idx_off == 0xffffffffu ? r : idx[pc.idx_off + r];
    const uint xb = pc.x_off + xr * pc.x_stride, yb = pc.y_off + r * pc.y_stride;
    float ss = 0.0;
    for (uint i = gl_LocalInvocationID.x; i < pc.n; i += WG) ss += x[xb + i] * x[xb + i];
    ss = wg_sum(ss);
    const float inv = inversesqrt(ss / float(pc.n) + pc.eps);
    for (uint i = gl_LocalInvocationID.x; i < pc.n; i += WG) y[yb + i] = x[xb + i] * inv * w[i];
}
