#version 450
#extension GL_GOOGLE_include_directive : require
// arrow.comp — Arrow's prototypes: for each expert of a site, the top right singular vector of
// B A, i.e. the top eigenvector of At (Bt B) A. Computed in rank space: with G = A At and
// C = Bt B (r x r), power iteration u <- C G u / |C G u|, then v = At u / |At u| (At C A and
// C G share their non-zero eigenvalues). One workgroup per router expert; writes row j of
// the router matrix (zeros where the expert does not adapt the site). Spec: 0 WG, 1 RMAX.
#include "types.glsl"
#define VKM_PUSH_ARROW
#include "push.glsl"

layout(constant_id = 1) const uint RMAX = 16;

layout(binding = 0) readonly buffer Ab { float a[]; };
layout(binding = 1) readonly buffer Bb { float bt[]; };
layout(binding = 2) readonly buffer Meta { uint meta[]; };
layout(binding = 3) readonly buffer L { uint list[]; };
layout(binding = 4) writeonly buffer R { float rw[]; };

shared float G[RMAX * RMAX], C[RMAX * RMAX], u[RMAX], w[RMAX];

void main()
{
    const uint j = vkm_group_id(), lid = gl_LocalInvocationID.x;
    if (j >= pc.n_exp) return;
    const uint e = list[pc.map_off + j];
    const uint off = meta[pc.meta_off + 4 * e], r = meta[pc.meta_off + 4 * e + 1];
    const uint rb = j * pc.in_dim;
    if (r == 0u) {
        for (uint c = lid; c < pc.in_dim; c += WG) rw[rb + c] = 0.0;
        return;
    }
    for (uint p = lid; p < r * r; p += WG) {
        const uint k = p / r, q = p % r;
        float g = 0.0, h = 0.0;
        for (uint c = 0; c < pc.in_dim; c++) g += a[(off + k) * pc.in_dim + c] * a[(off + q) * pc.in_dim + c];
        for (uint o = 0; o < pc.out_dim; o++) h += bt[(off + k) * pc.out_dim + o] * bt[(off + q) * pc.out_dim + o];
        G[p] = g;
        C[p] = h;
    }
    barrier();
    if (lid == 0) {
        for (uint k = 0; k < r; k++) u[k] = 1.0 + 0.01 * float(k); // deterministic start
        for (uint it = 0; it < pc.n_iter; it++) {
            for (uint k = 0; k < r; k++) {
                float s = 0.0;
                for (uint q = 0; q < r; q++) s += G[k * r + q] * u[q];
                w[k] = s;
            }
            float n2 = 0.0;
            for (uint k = 0; k < r; k++) {
                float s = 0.0;
                for (uint q = 0; q < r; q++) s += C[k * r + q] * w[q];
                u[k] = s;
                n2 += s * s;
            }
            const float inv = n2 > 0.0 ? inversesqrt(n2) : 0.0;
            for (uint k = 0; k < r; k++) u[k] *= inv;
        }
    }
    barrier();
    float ss = 0.0;
    for (uint c = lid; c < pc.in_dim; c += WG) {
        float v = 0.0;
        for (uint k = 0; k < r; k++) v += a[(off + k) * pc.in_dim + c] * u[k];
        ss += v * v;
    }
    const float inv = inversesqrt(max(wg_sum(ss), 1e-30));
    for (uint c = lid; c < pc.in_dim; c += WG) {
        float v = 0.0;
        for (uint k = 0; k < r; k++) v += a[(off + k) * pc.in_dim + c] * u[k];
        rw[rb + c] = v * inv;
    }
}
