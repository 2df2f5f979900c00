#version 450
#extension GL_GOOGLE_include_directive : require
// attn_reduce.comp — combines the key chunks of attn.comp: for each (token, head),
// out = sum_s acc_s * e^(m_s - M) / sum_s l_s * e^(m_s - M), M = max_s m_s.
// Spec constants: 0 WG, 1 HD (head dim).
#include "types.glsl"
#define VKM_PUSH_ATTN_REDUCE
#include "push.glsl"

layout(constant_id = 1) const uint HD = 64;

layout(binding = 0) readonly buffer P { float p[]; };
layout(binding = 1) writeonly buffer O { float o[]; };

void main()
{
    const uint gid = vkm_group_id();
    if (gid >= pc.n_tok * pc.n_heads) return;
    const uint h = gid % pc.n_heads, i = gid / pc.n_heads;
    const uint base = gid * pc.n_splits * (HD + 2);
    float M = -1.0 / 0.0;
    for (uint s = 0; s < pc.n_splits; s++) M = max(M, p[base + s * (HD + 2) + HD]);
    float L = 0.0;
    for (uint s = 0; s < pc.n_splits; s++) {
        const float ms = p[base + s * (HD + 2) + HD];
        if (ms > -1.0 / 0.0) L += p[base + s * (HD + 2) + HD + 1] * exp(ms - M);
    }
    for (uint d = gl_LocalInvocationID.x; d < HD; d += WG) {
        float acc = 0.0;
        for (uint s = 0; s < pc.n_splits; s++) {
            const float ms = p[base + s * (HD + 2) + HD];
            if (ms > -1.0 / 0.0) acc += p[base + s * (HD + 2) + d] * exp(ms - M);
        }
        o[pc.o_off + i * pc.o_stride + h * HD + d] = acc / L;
    }
}
