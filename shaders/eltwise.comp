#version 450
#extension GL_GOOGLE_include_directive : require
// eltwise.comp — y = a + b, a * b, or silu(a) * b over n elements (OP: specialization constant 1).
#include "types.glsl"
#define VKM_PUSH_ELTWISE
#include "push.glsl"

layout(constant_id = 1) const uint OP = 0; // 0 add, 1 mul, 2 silu(a) * b

layout(binding = 0) readonly buffer A { float a[]; };
layout(binding = 1) readonly buffer B { float b[]; };
layout(binding = 2) writeonly buffer Y { float y[]; };

float silu(float v) { return v / (1.0 + exp(-v)); }

void main()
{
    const uint stride = gl_NumWorkGroups.x * gl_NumWorkGroups.y * WG;
    for (uint i = vkm_group_id() * WG + gl_LocalInvocationID.x; i < pc.n; i += stride) {
        const float u = a[pc.a_off + i], v = b[pc.b_off + i];
        y[pc.y_off + i] = OP == 0u ? u + v : OP == 1u ? u * v : silu(u) * v;
    }
}
