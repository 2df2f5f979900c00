#version 450
#extension GL_GOOGLE_include_directive : require
// copy.comp — dst = src in 16-byte words: the bandwidth probe (grid-stride loop).
#include "types.glsl"
#define VKM_PUSH_COPY
#include "push.glsl"

layout(binding = 0) readonly buffer Src { uvec4 src[]; };
layout(binding = 1) writeonly buffer Dst { uvec4 dst[]; };

void main()
{
    uint stride = gl_NumWorkGroups.x * gl_NumWorkGroups.y * WG;
    for (uint i = vkm_group_id() * WG + gl_LocalInvocationID.x; i < pc.n; i += stride) dst[i] = src[i];
}
