#version 450
#extension GL_GOOGLE_include_directive : require
// matvec.comp — y[t] (+)= W x[t] for NT vectors at once (weights read once for all of them):
// the decode-time matrix kernel. Each workgroup computes NR rows of one row chunk of W;
// invocations stride over the steps of a row, then one reduction per (row, vector).
// Spec constants: 0 WG (workgroup size), 1 NR (rows per workgroup), 2 NT (vectors, 1..8).
// MOE: the FFN-expert variant — W is one expert's matrix; of the NT tokens from pc.t0, those
// whose routing row (read on the GPU) holds the expert are computed, the others skipped; a
// workgroup none of whose tokens chose the expert reads no weights at all.
// LORA: a LoRA site's expands in the epilogue: y[t] (+)= W x[t] + sum_j w_j s_e B_e t_j, the
// shrink outputs t_j of the step's token tok0 + t read from binding 3 (lora.comp's layout), the
// products over (j, rank) shared among the invocations before the one reduction: the expand
// dispatch, its barrier and its second pass over y saved. Spec constant 3 RMAX (t's stride).
#include "types.glsl"
#ifdef MOE
#define VKM_PUSH_MOE
#elif defined(LORA)
#define VKM_PUSH_MATVEC_LORA
#else
#define VKM_PUSH_MATVEC
#endif
#include "push.glsl"
#include "weights.glsl"

layout(constant_id = 1) const uint NR = 2;
layout(constant_id = 2) const uint NT = 1;

layout(binding = 1) readonly buffer X { float x[]; };
layout(binding = 1) readonly buffer X4 { vec4 x4[]; };
layout(binding = 2) buffer Y { float y[]; };
#ifdef MOE
layout(binding = 3) readonly buffer Ids { uint ids[]; };
layout(binding = 4) readonly buffer Lst { uint lst[]; };
#endif
#ifdef LORA
layout(constant_id = 3) const uint RMAX = 16;
layout(binding = 3) readonly buffer Tb { float lt[]; };
layout(binding = 4) readonly buffer Bb { float bt[]; };
layout(binding = 5) readonly buffer Meta { uint meta[]; };
layout(binding = 6) readonly buffer Ids { uint ids[]; };
layout(binding = 7) readonly buffer Step { uint list[]; };
layout(binding = 8) readonly buffer Wts { float wts[]; };
#endif

// Where vector t's x row starts and y row starts; sel[t] < 0: vector t is skipped.
int sel[NT];
#ifdef MOE
uint x_base(uint t) { return pc.x_off + (pc.x_per_entry != 0u ? (pc.t0 + t) * pc.row_stride + uint(sel[t]) : pc.t0 + t) * pc.x_stride; }
uint y_base(uint t) { return pc.y_off + ((pc.t0 + t) * pc.row_stride + uint(sel[t])) * pc.y_stride; }
#else
uint x_base(uint t) { return pc.x_off + t * pc.x_stride; }
uint y_base(uint t) { return pc.y_off + t * pc.y_stride; }
#endif

shared float part[NR * NT * WG];

// x[t][s*W_STEP + 4k .. +4), zero beyond cols when `tail`; one 16-byte load when x's offset
// and stride are multiples of 4 (`aligned`, uniform), else four.
vec4 load_x(uint t, uint s, uint k, bool tail, bool aligned)
{
    uint c = s * W_STEP + 4 * k, b = x_base(t) + c;
    if (!tail && aligned) return x4[b >> 2];
    if (!tail) return vec4(x[b], x[b + 1], x[b + 2], x[b + 3]);
    vec4 v = vec4(0.0);
    [[unroll]] for (uint i = 0; i < 4; i++)
        if (c + i < pc.cols) v[i] = x[b + i];
    return v;
}

void main()
{
    const uint lid = gl_LocalInvocationID.x;
    const uint rbase = vkm_group_id() * NR;
    if (rbase >= pc.rows) return;

    float acc[NR * NT];
    [[unroll]] for (uint i = 0; i < NR * NT; i++) acc[i] = 0.0;

    const uint nsteps = w_steps(pc.cols), nfull = w_full_steps(pc.cols);
    const bool aligned = ((pc.x_off | pc.x_stride) & 3u) == 0u;
    bool any = false;
    [[unroll]] for (uint t = 0; t < NT; t++) {
#ifdef MOE
        sel[t] = -1;
        const uint tt = pc.t0 + t;
        if (tt < pc.n_tok) {
            const uint rb = pc.route_off + lst[pc.row_list_off + tt] * pc.row_stride;
            for (uint j = 0; j < pc.row_stride; j++) {
                const uint e = ids[rb + j];
                if (e == 0xffffffffu) break;
                if (e == pc.expert) { sel[t] = int(j); break; }
            }
        }
#else
        sel[t] = 0;
#endif
        any = any || sel[t] >= 0;
    }
    if (!any) return; // no vector of this workgroup chose the expert: no weight is read
    for (uint s = lid; s < nsteps; s += WG) {
        const bool tail = s >= nfull;
#ifdef W_FACTORED
        // quantized blocks (never partial): d_r * (q_r . x - W_OFFSET * sum x)
        vec4 wv[NR * W_K];
        float dsc[NR];
        [[unroll]] for (uint r = 0; r < NR; r++) {
            const uint row = min(rbase + r, pc.rows - 1);
            vec4 v[W_K];
            load_wq(row, s, pc.w_stride, v);
            dsc[r] = w_scale(row, s, pc.w_stride, pc.scale_off);
            [[unroll]] for (uint k = 0; k < W_K; k++) wv[r * W_K + k] = v[k];
        }
        [[unroll]] for (uint t = 0; t < NT; t++) {
            if (sel[t] < 0) continue;
            float dr[NR];
            [[unroll]] for (uint r = 0; r < NR; r++) dr[r] = 0.0;
            vec4 xs = vec4(0.0);
            [[unroll]] for (uint k = 0; k < W_K; k++) {
                vec4 xv = load_x(t, s, k, false, aligned);
                xs += xv;
                [[unroll]] for (uint r = 0; r < NR; r++) dr[r] += dot(wv[r * W_K + k], xv);
            }
            const float xsum = (xs.x + xs.y) + (xs.z + xs.w);
            [[unroll]] for (uint r = 0; r < NR; r++) acc[r * NT + t] += dsc[r] * (dr[r] - W_OFFSET * xsum);
        }
#else
        vec4 wv[NR * W_K];
        [[unroll]] for (uint r = 0; r < NR; r++) {
            vec4 v[W_K];
            load_w(min(rbase + r, pc.rows - 1), s, pc.w_stride, pc.scale_off, v);
            [[unroll]] for (uint k = 0; k < W_K; k++) wv[r * W_K + k] = v[k];
        }
        [[unroll]] for (uint t = 0; t < NT; t++) {
            if (sel[t] < 0) continue;
            [[unroll]] for (uint k = 0; k < W_K; k++) {
                vec4 xv = load_x(t, s, k, tail, aligned);
                [[unroll]] for (uint r = 0; r < NR; r++) acc[r * NT + t] += dot(wv[r * W_K + k], xv);
            }
        }
#endif
    }

#ifdef LORA
    // the site's experts: acc[r][t] += w_j s_e sum_k Bt_e[k][row] t[i][j][k], ranks across lanes;
    // one loop over the vectors (not unrolled: NT copies of these loops cost CPU devices dearly),
    // each vector's NR sums folded into its accumulators after it
    for (uint t = 0; t < NT; t++) {
        const uint i = pc.tok0 + t, rb = pc.route_off + list[pc.row_list_off + i] * pc.row_stride;
        float la[NR];
        [[unroll]] for (uint r = 0; r < NR; r++) la[r] = 0.0;
        for (uint j = 0; j < pc.row_stride; j++) {
            const uint e = ids[rb + j];
            if (e == 0xffffffffu) break;
            const uint mo = pc.meta_off + 4 * e, off = meta[mo], rk = meta[mo + 1];
            const float f = wts[rb + j] * uintBitsToFloat(meta[mo + 2]);
            const uint tb = (i * pc.row_stride + j) * RMAX;
            for (uint k = lid; k < rk; k += WG) {
                const float tk = f * lt[tb + k];
                const uint bb = (off + k) * pc.out_dim + pc.row0 + rbase;
                [[unroll]] for (uint r = 0; r < NR; r++)
                    if (rbase + r < pc.rows) la[r] += bt[bb + r] * tk;
            }
        }
        [[unroll]] for (uint u = 0; u < NT; u++)
            if (u == t) [[unroll]] for (uint r = 0; r < NR; r++) acc[r * NT + u] += la[r];
    }
#endif
    // one barrier: partial sums of every (row, vector) to shared, then NR*NT invocations finish
    WG_PARTS(acc, NR * NT, part);
    barrier();
    for (uint i = lid; i < NR * NT; i += WG) {
        float sum = 0.0;
        for (uint j = 0; j < VKM_PARTS; j++) sum += part[i * WG + j];
        const uint r = i / NT, t = i % NT, row = rbase + r;
        if (row < pc.rows && sel[t] >= 0) {
            const uint yi = y_base(t) + pc.row0 + row;
#ifdef MOE
            y[yi] = pc.scale * sum;
#else
            y[yi] = pc.accumulate != 0u ? y[yi] + sum : sum;
#endif
        }
    }
}
