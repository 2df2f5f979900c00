#version 450
#extension GL_GOOGLE_include_directive : require
// router.comp — one routing decision per row, fused: logits = R f(x) (f: identity or L2
// normalisation; R is E x in, one row per expert), |logit| for Arrow, / temperature, then
// softmax or sigmoid or raw, top-k over the experts other than the always-on one (ties: the
// lowest index), renormalised to sum 1 (softmax / sigmoid), the always-on expert added with
// weight 1 (flags 16: a bias per expert, in the matrix row after the experts' rows), as
// common/route.glsl decides. Writes the chosen bank experts (packed first, then 0xffffffff)
// and their weights into the routing buffers the LoRA kernels read. Workgroup z is the routing
// point among consecutive ones sharing the input (q, k, v; gate, up): one dispatch decides all
// of them.
// Spec constants: 0 WG, 1 EMAX, 2 VEC.
#include "types.glsl"
#define VKM_PUSH_ROUTER
#include "push.glsl"

layout(constant_id = 1) const uint EMAX = 8;
layout(constant_id = 2) const uint VEC = 0; // 1: in_dim and x's offset/stride are multiples of 4 (vec4 loads)

layout(binding = 0) readonly buffer X { float x[]; };
layout(binding = 0) readonly buffer X4 { vec4 x4[]; };
layout(binding = 1) readonly buffer R { float rw[]; };
layout(binding = 1) readonly buffer R4 { vec4 rw4[]; };
layout(binding = 2) readonly buffer L { uint list[]; };
layout(binding = 3) writeonly buffer Ids { uint ids[]; };
layout(binding = 4) writeonly buffer Wts { float wts[]; };

shared float part[EMAX * WG];

#include "route.glsl"

void main()
{
    const uint j = vkm_group_id(), lid = gl_LocalInvocationID.x;
    if (j >= pc.n) return;
    const uint xr = pc.list_off == 0xffffffffu ? j : list[pc.list_off + j];
    const uint orow = pc.out_row_off == 0xffffffffu ? xr : list[pc.out_row_off + j];
    const uint xb = pc.x_off + xr * pc.x_stride;
    const uint site = gl_WorkGroupID.z, mb = site * pc.mat_stride;
    float acc[EMAX], ss;
    route_dots(xb, mb, pc.x_scale, acc, ss);
    const float norm = sqrt(wg_sum(ss));
    WG_PARTS(acc, EMAX, part);
    barrier();
    if (lid != 0) return;
    float lg[EMAX];
    for (uint e = 0; e < pc.n_exp; e++) {
        float s = 0.0;
        for (uint t = 0; t < VKM_PARTS; t++) s += part[e * WG + t];
        lg[e] = route_logit(s, norm, mb, e);
    }
    uint sel[EMAX];
    float sw[EMAX];
    const uint cnt = route_topk(lg, sel, sw);
    for (uint c = 0; c < pc.n_copies; c++)
        route_write_row(pc.route_off + (site * pc.n_copies + c) * pc.copy_stride + orow * pc.row_stride, sel, sw, cnt);
}
