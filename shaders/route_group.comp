#version 450
#extension GL_GOOGLE_include_directive : require
// route_group.comp — groups a step's routed items by expert (a counting sort in one
// workgroup): for the n_tok tokens' routing rows, every valid entry j of token t is the item
// t * row_stride + j; out: [count per expert][offset per expert][items sorted by expert].
// Spec constants: 0 WG, 1 EMAX (>= experts).
#include "types.glsl"
#define VKM_PUSH_GROUP
#include "push.glsl"

layout(constant_id = 1) const uint EMAX = 64;

layout(binding = 0) readonly buffer Ids { uint ids[]; };
layout(binding = 1) readonly buffer Lst { uint lst[]; };
layout(binding = 2) writeonly buffer G { uint grp[]; };

shared uint cnt[EMAX], cur[EMAX];

uint expert_of(uint i)
{
    const uint t = i / pc.row_stride, j = i % pc.row_stride;
    return ids[pc.route_off + lst[pc.row_list_off + t] * pc.row_stride + j];
}

void main()
{
    const uint lid = gl_LocalInvocationID.x, n = pc.n_tok * pc.row_stride;
    for (uint e = lid; e < EMAX; e += WG) cnt[e] = 0u;
    barrier();
    for (uint i = lid; i < n; i += WG) {
        const uint e = expert_of(i);
        if (e < pc.n_exp) atomicAdd(cnt[e], 1u);
    }
    barrier();
    if (lid == 0) {
        uint off = 0;
        for (uint e = 0; e < pc.n_exp; e++) {
            grp[e] = cnt[e];
            grp[pc.n_exp + e] = off;
            cur[e] = off;
            off += cnt[e];
        }
    }
    barrier();
    for (uint i = lid; i < n; i += WG) {
        const uint e = expert_of(i);
        if (e < pc.n_exp) grp[2 * pc.n_exp + atomicAdd(cur[e], 1u)] = i;
    }
}
