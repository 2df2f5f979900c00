#version 450
#extension GL_GOOGLE_include_directive : require
// kv_store.comp — writes each token's key and value into its sequence's slot of the KV cache at
// its position (both read from the step buffer): cache[(slot * ctx + pos) * kv_dim + e].
#include "types.glsl"
#define VKM_PUSH_KV
#include "push.glsl"

layout(binding = 0) readonly buffer K { float k[]; };
layout(binding = 1) readonly buffer Vs { float v[]; };
layout(binding = 2) writeonly buffer KC { float kc[]; };
layout(binding = 3) writeonly buffer VC { float vc[]; };
layout(binding = 4) readonly buffer Step { uint step[]; };

void main()
{
    const uint idx = vkm_group_id() * WG + gl_LocalInvocationID.x;
    if (idx >= pc.n_tok * pc.kv_dim) return;
    const uint e = idx % pc.kv_dim, i = idx / pc.kv_dim;
    const uint dst = (step[pc.slot_off + i] * pc.ctx + step[pc.pos_off + i]) * pc.kv_dim + e;
    kc[dst] = k[pc.k_off + i * pc.k_stride + e];
    vc[dst] = v[pc.v_off + i * pc.v_stride + e];
}
