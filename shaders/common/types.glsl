// types.glsl — what every kernel shares: the workgroup size as specialization constant 0,
// the 2-D folded group index, f16/bf16 unpacking from 32-bit words, and workgroup reductions
// (subgroup arithmetic when present, a shared-memory tree when VKM_NO_SUBGROUP is defined).
#extension GL_EXT_control_flow_attributes : enable
#extension GL_KHR_shader_subgroup_basic : enable
#ifndef VKM_NO_SUBGROUP
#extension GL_KHR_shader_subgroup_arithmetic : enable
#endif

layout(local_size_x_id = 0, local_size_y = 1, local_size_z = 1) in;
layout(constant_id = 0) const uint WG = 64;

// Group index of a 1-D dispatch folded into (x, y) by vkm_rec_dispatch_n.
uint vkm_group_id() { return gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x; }

float f16_lo(uint w) { return unpackHalf2x16(w).x; }
float f16_hi(uint w) { return unpackHalf2x16(w).y; }

// Four halves (two words) as floats with integer operations and one multiply: exact for every
// finite half (subnormals included); inf/nan are not expected in weights. Cheaper than
// unpackHalf2x16 where that is emulated (CPU devices), as fast elsewhere.
vec4 f16x4(uvec2 w)
{
    uvec4 h = uvec4(w.x, w.x >> 16, w.y, w.y >> 16);
    vec4 m = uintBitsToFloat((h & 0x7fffu) << 13) * 5.192296858534828e33; // 2^112
    return uintBitsToFloat(floatBitsToUint(m) | ((h & 0x8000u) << 16));
}

// 4 signed bytes of a word as floats (little-endian order).
vec4 i8x4(uint w)
{
    ivec4 v = ivec4(int(w << 24), int(w << 16), int(w << 8), int(w)) >> 24;
    return vec4(v);
}

shared float vkm_red[WG];

// Partial sums of N values per invocation (acc[0..N-1]) for a reduction over the workgroup:
// WG_PARTS stores them into part[k * WG + s] for s < VKM_PARTS (one per subgroup, reduced with
// subgroup arithmetic; without subgroups, one per invocation), after which (and a barrier) any
// invocation adds the VKM_PARTS partials of value k. A serial sum over all WG invocations' values
// instead costs WG dependent shared-memory reads per value: it dominated the router and LoRA
// shrink kernels on GPUs with wide workgroups. Call from uniform control flow.
#ifndef VKM_NO_SUBGROUP
#define VKM_PARTS gl_NumSubgroups
#define WG_PARTS(acc, N, part) \
    [[unroll]] for (uint k_ = 0; k_ < (N); k_++) { \
        const float s_ = subgroupAdd(acc[k_]); \
        if (subgroupElect()) part[k_ * WG + gl_SubgroupID] = s_; \
    }
#else
#define VKM_PARTS WG
#define WG_PARTS(acc, N, part) \
    [[unroll]] for (uint k_ = 0; k_ < (N); k_++) part[k_ * WG + gl_LocalInvocationID.x] = acc[k_];
#endif

// Sum of v over the workgroup; every invocation gets the result. Call from uniform control flow.
float wg_sum(float v)
{
#ifndef VKM_NO_SUBGROUP
    v = subgroupAdd(v);
    if (gl_NumSubgroups == 1) return v;
    barrier();
    if (subgroupElect()) vkm_red[gl_SubgroupID] = v;
    barrier();
    float s = 0.0;
    for (uint i = 0; i < gl_NumSubgroups; i++) s += vkm_red[i];
    return s;
#else
    barrier();
    vkm_red[gl_LocalInvocationID.x] = v;
    barrier();
    for (uint h = WG / 2; h > 0; h >>= 1) {
        if (gl_LocalInvocationID.x < h) vkm_red[gl_LocalInvocationID.x] += vkm_red[gl_LocalInvocationID.x + h];
        barrier();
    }
    return vkm_red[0];
#endif
}

// Maximum of v over the workgroup; every invocation gets the result.
float wg_max(float v)
{
#ifndef VKM_NO_SUBGROUP
    v = subgroupMax(v);
    if (gl_NumSubgroups == 1) return v;
    barrier();
    if (subgroupElect()) vkm_red[gl_SubgroupID] = v;
    barrier();
    float s = vkm_red[0];
    for (uint i = 1; i < gl_NumSubgroups; i++) s = max(s, vkm_red[i]);
    return s;
#else
    barrier();
    vkm_red[gl_LocalInvocationID.x] = v;
    barrier();
    for (uint h = WG / 2; h > 0; h >>= 1) {
        if (gl_LocalInvocationID.x < h)
            vkm_red[gl_LocalInvocationID.x] = max(vkm_red[gl_LocalInvocationID.x], vkm_red[gl_LocalInvocationID.x + h]);
        barrier();
    }
    return vkm_red[0];
#endif
}
