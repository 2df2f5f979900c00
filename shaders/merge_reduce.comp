#version 450
#extension GL_GOOGLE_include_directive : require
// merge_reduce.comp — partial Gram matrices of one chunk, for the merges that need a dot product
// per tensor (slerp: <v0,v0>, <v0,v1>, <v1,v1> of the two models; model_stock: the dots of the
// task vectors x_j - x_BASE). The M vectors are the inputs other than BASE (minus x_BASE when
// BASE < N). Each workgroup writes its sums of v_a * v_b for every pair a <= b, in the order
// (0,0), (0,1), .., (0,M-1), (1,1), .., at part[part_off + workgroup * P + pair]; the host adds
// the partials of all workgroups and chunks in double precision.
#include "types.glsl"
#define VKM_PUSH_REDUCE
#include "merge_push.glsl"

layout(constant_id = 1) const uint N = 2;
layout(constant_id = 2) const uint DTYPES = 0;
layout(constant_id = 3) const uint BASE = 2;   // N: the inputs themselves
#define MAXV 8u
#define MAXP 36u

layout(binding = 0) readonly buffer In { uvec4 in4[]; };
layout(binding = 1) writeonly buffer Part { float part[]; };

#define VKM_MERGE_SLAB
#include "merge.glsl"

void main()
{
    const uint M = BASE < N ? N - 1u : N, P = M * (M + 1u) / 2u;
    float acc[MAXP];
    for (uint p = 0; p < MAXP; p++) acc[p] = 0.0;
    const uint n_groups = (pc.n + 7u) / 8u;
    const uint stride = gl_NumWorkGroups.x * gl_NumWorkGroups.y * WG;
    for (uint g = vkm_group_id() * WG + gl_LocalInvocationID.x; g < n_groups; g += stride) {
        float v[MAXV][8], xb[8], x[8];
        if (BASE < N) load_group(BASE, in_dtype(DTYPES, BASE), pc.off[BASE], g, xb);
        uint m = 0;
        for (uint j = 0; j < N; j++) {
            if (j == BASE) continue;
            load_group(j, in_dtype(DTYPES, j), pc.off[j], g, x);
            for (uint k = 0; k < 8u; k++) {
                const bool ok = g * 8u + k < pc.n;
                v[m][k] = ok ? (BASE < N ? x[k] - xb[k] : x[k]) : 0.0;
            }
            m++;
        }
        uint p = 0;
        for (uint a = 0; a < M; a++)
            for (uint b = a; b < M; b++, p++) {
                float s = 0.0;
                for (uint k = 0; k < 8u; k++) s += v[a][k] * v[b][k];
                acc[p] += s;
            }
    }
    for (uint p = 0; p < P; p++) {
        const float s = wg_sum(acc[p]);
        if (gl_LocalInvocationID.x == 0u) part[pc.part_off + vkm_group_id() * P + p] = s;
    }
}
