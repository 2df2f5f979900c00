#version 450
#extension GL_GOOGLE_include_directive : require
// copy.comp — dst = src in 16-byte words: the bandwidth probe. Each invocation moves VEC
// consecutive-in-stride words of its workgroup's tile (specialization constant 1).
#include "types.glsl"
#define VKM_PUSH_COPY
#include "push.glsl"

layout(constant_id = 1) const uint VEC = 4;

layout(binding = 0) readonly buffer Src { uvec4 src[]; };
layout(binding = 1) writeonly buffer Dst { uvec4 dst[]; };

void main()
{
    const uint base = vkm_group_id() * WG * VEC + gl_LocalInvocationID.x;
    [[unroll]] for (uint k = 0; k < VEC; k++) {
        const uint i = base + k * WG;
        if (i < pc.n) dst[i] = src[i];
    }
}
