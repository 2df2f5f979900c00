#version 450
#extension GL_GOOGLE_include_directive : require
// rope.comp — rotary position embedding in place, for each token at its own position (read
// from the step buffer). Both layouts: GGUF interleaved pairs (2j, 2j+1) and Hugging Face
// rotate_half pairs (j, j + head_dim/2); freq_j = theta^(-2j/head_dim).
#include "types.glsl"
#define VKM_PUSH_ROPE
#include "push.glsl"

layout(binding = 0) buffer V { float v[]; };
layout(binding = 1) readonly buffer Step { uint step[]; };

void main()
{
    const uint half_dim = pc.head_dim / 2;
    const uint idx = vkm_group_id() * WG + gl_LocalInvocationID.x;
    if (idx >= pc.n_tok * pc.n_heads * half_dim) return;
    const uint j = idx % half_dim, h = (idx / half_dim) % pc.n_heads, i = idx / (half_dim * pc.n_heads);
    const float pos = float(step[pc.pos_off + i]);
    const float freq = exp2(-float(2 * j) / float(pc.head_dim) * pc.log2_theta);
    const float ang = pos * freq, c = cos(ang), s = sin(ang);
    const uint base = pc.off + i * pc.stride + h * pc.head_dim;
    const uint a = base + (pc.layout_half != 0u ? j : 2 * j);
    const uint b = a + (pc.layout_half != 0u ? half_dim : 1);
    const float x0 = v[a], x1 = v[b];
    v[a] = x0 * c - x1 * s;
    v[b] = x0 * s + x1 * c;
}
