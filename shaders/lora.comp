#version 450
#extension GL_GOOGLE_include_directive : require
// lora.comp — the routed LoRA bank, Punica's BGMV shape; each token's experts and weights are
// read from the routing buffers on the GPU (row of token i: list[row_list_off + i]; entries are
// packed bank experts, 0xffffffff ends a row). A site's experts: A [rank_total][in] (expert e's
// rows start at meta[4e]), Bt [rank_total][out], meta[4e+1] = rank, meta[4e+2] = scale bits.
//   LORA_SHRINK: t[i][j][k] = A_e[k] . x_i, one workgroup per (token i, entry j).
//   LORA_EXPAND: y_i += sum_j w_ij s_e Bt_e[.][o] . t[i][j], one workgroup per (token, 64 rows).
//   Decoding, the expands run in the epilogue of the base matrix's matvec instead (matvec.comp,
//   LORA); these kernels serve devices with fewer storage buffers per stage and
//   vkm_model_params.separate_expands.
// Spec constants: 0 WG, 1 RMAX (the largest rank: t's stride), 2 VEC: 1 when the rows of A
// (shrink: in_dim and x's offset and stride) or of Bt (expand: out_dim) are multiples of 4
// elements, read as vec4 (one 16-byte load per lane instead of four: CPU devices gather each).
// Variant lora_shrink_sites (LORA_SHRINK + LORA_SITES): the shrinks of up to three sites that
// read the same input (q, k, v; gate, up) in one dispatch, one workgroup per (site, token,
// entry); site s's A at binding 1, 6, 7, its table, routing point and region of t from the push
// constants.
// Variant lora_route_shrink_sites (+ LORA_ROUTE): the same, each workgroup first making its
// site's token-level routing decision as router.comp does (common/route.glsl; its workgroup
// may be wider than the router's, so on a GPU its sums may differ from router.comp's in the last
// bits: a near tie may go the other way than with the routers apart; the sites' router
// matrices at binding 8, site s's at word mat_off[s]; spec constant 3 EMAX), entry 0's workgroup
// writing the routing row (ids, and weights at binding 9) that the expands read: the router's
// dispatch, and the barrier between it and the shrink, saved. Only n_ent workgroups per (site,
// token): the entries a decision can fill (top-k and the always-on expert).
#include "types.glsl"
#ifdef LORA_ROUTE
#define VKM_PUSH_LORA_ROUTE
#elif defined(LORA_SITES)
#define VKM_PUSH_LORA_SITES
#else
#define VKM_PUSH_LORA
#endif
#include "push.glsl"

layout(constant_id = 1) const uint RMAX = 16;
layout(constant_id = 2) const uint VEC = 0;

layout(binding = 2) readonly buffer Meta { uint meta[]; };
#ifdef LORA_ROUTE
layout(binding = 3) writeonly buffer Ids { uint ids[]; };
#else
layout(binding = 3) readonly buffer Ids { uint ids[]; };
#endif
layout(binding = 4) readonly buffer Step { uint list[]; };

#ifdef LORA_SHRINK
layout(binding = 0) readonly buffer Xb { float x[]; };
layout(binding = 0) readonly buffer Xb4 { vec4 x4[]; };
layout(binding = 1) readonly buffer Ab { float a[]; };
layout(binding = 1) readonly buffer Ab4 { vec4 a4[]; };
layout(binding = 5) writeonly buffer Tb { float t[]; };

#ifdef LORA_SITES
layout(binding = 6) readonly buffer Ab1 { float a_1[]; };
layout(binding = 6) readonly buffer Ab14 { vec4 a4_1[]; };
layout(binding = 7) readonly buffer Ab2 { float a_2[]; };
layout(binding = 7) readonly buffer Ab24 { vec4 a4_2[]; };
float a_at(uint s, uint i)
{
    if (s == 0u) return a[i];
    if (s == 1u) return a_1[i];
    return a_2[i];
}
vec4 a4_at(uint s, uint i)
{
    if (s == 0u) return a4[i];
    if (s == 1u) return a4_1[i];
    return a4_2[i];
}
#define META_OFF(s) pc.meta_off[s]
#define ROUTE_OFF(s) pc.route_off[s]
#define T_OFF(s) pc.t_off[s]
#else
float a_at(uint s, uint i) { return a[i]; }
vec4 a4_at(uint s, uint i) { return a4[i]; }
#define META_OFF(s) pc.meta_off
#define ROUTE_OFF(s) pc.route_off
#define T_OFF(s) 0u
#endif

shared float part[RMAX * WG];

#ifdef LORA_ROUTE
layout(constant_id = 3) const uint EMAX = 8;
layout(binding = 8) readonly buffer R { float rw[]; };
layout(binding = 8) readonly buffer R4 { vec4 rw4[]; };
layout(binding = 9) writeonly buffer Wts { float wts[]; };
shared float rpart[EMAX * WG];
shared uint r_entry;
#include "route.glsl"

// Site s's routing decision for token i (x from xb), as router.comp makes it: every entry's
// workgroup decides alike; entry 0's writes the routing row (the expands read it). Returns
// the bank expert of entry j.
uint route_here(uint s, uint xb, uint row, uint j)
{
    const uint lid = gl_LocalInvocationID.x, mb = pc.mat_off[s];
    float acc[EMAX], ss;
    route_dots(xb, mb, 1.0, acc, ss);
    const float norm = sqrt(wg_sum(ss));
    WG_PARTS(acc, EMAX, rpart);
    barrier();
    if (lid == 0u) {
        float lg[EMAX];
        for (uint e = 0; e < pc.n_exp; e++) {
            float sum = 0.0;
            for (uint t = 0; t < VKM_PARTS; t++) sum += rpart[e * WG + t];
            lg[e] = route_logit(sum, norm, mb, e);
        }
        uint sel[EMAX];
        float sw[EMAX];
        const uint cnt = route_topk(lg, sel, sw);
        if (j == 0u) route_write_row(ROUTE_OFF(s) + row * pc.row_stride, sel, sw, cnt);
        r_entry = route_entry(j, sel, cnt);
    }
    barrier();
    return r_entry;
}
#endif

void main()
{
    const uint lid = gl_LocalInvocationID.x;
#ifdef LORA_ROUTE
    const uint n_ent = pc.n_ent; // entries past a decision's count are left empty by entry 0
#else
    const uint n_ent = pc.row_stride;
#endif
#ifdef LORA_SITES
    const uint per = pc.n_tok * n_ent, s = vkm_group_id() / per, g = vkm_group_id() % per;
    if (s >= pc.n_sites) return;
#else
    const uint s = 0u, g = vkm_group_id();
#endif
    const uint i = g / n_ent, j = g % n_ent;
    if (i >= pc.n_tok) return;
    const uint row = list[pc.row_list_off + i];
#ifdef LORA_ROUTE
    const uint e = route_here(s, pc.x_off + i * pc.x_stride, row, j);
#else
    const uint e = ids[ROUTE_OFF(s) + row * pc.row_stride + j];
#endif
    if (e == 0xffffffffu) return;
    const uint off = meta[META_OFF(s) + 4 * e], r = meta[META_OFF(s) + 4 * e + 1];
    if (r == 0u) return;
    float acc[RMAX];
    [[unroll]] for (uint k = 0; k < RMAX; k++) acc[k] = 0.0;
    const uint xb = pc.x_off + i * pc.x_stride;
    if (VEC != 0u) {
        const uint n4 = pc.in_dim >> 2, xb4 = xb >> 2;
        for (uint c = lid; c < n4; c += WG) {
            const vec4 xv = x4[xb4 + c];
            [[unroll]] for (uint k = 0; k < RMAX; k++)
                if (k < r) acc[k] += dot(a4_at(s, (off + k) * n4 + c), xv);
        }
    } else {
        for (uint c = lid; c < pc.in_dim; c += WG) {
            const float xv = x[xb + c];
            [[unroll]] for (uint k = 0; k < RMAX; k++)
                if (k < r) acc[k] += a_at(s, (off + k) * pc.in_dim + c) * xv;
        }
    }
    WG_PARTS(acc, RMAX, part);
    barrier();
    for (uint k = lid; k < r; k += WG) {
        float sum = 0.0;
        for (uint q = 0; q < VKM_PARTS; q++) sum += part[k * WG + q];
        t[T_OFF(s) + (i * pc.row_stride + j) * RMAX + k] = sum;
    }
}
#endif

#ifdef LORA_EXPAND
layout(binding = 0) readonly buffer Tb { float t[]; };
layout(binding = 1) readonly buffer Bb { float bt[]; };
layout(binding = 1) readonly buffer Bb4 { vec4 bt4[]; };
layout(binding = 5) readonly buffer Wb { float wts[]; };
layout(binding = 6) buffer Yb { float y[]; };

#ifdef LORA_SITES
layout(binding = 7) readonly buffer Bb1 { float bt_1[]; };
layout(binding = 7) readonly buffer Bb14 { vec4 bt4_1[]; };
layout(binding = 8) readonly buffer Bb2 { float bt_2[]; };
layout(binding = 8) readonly buffer Bb24 { vec4 bt4_2[]; };
layout(binding = 9) buffer Yb1 { float y_1[]; };
layout(binding = 10) buffer Yb2 { float y_2[]; };
float bt_at(uint s, uint i)
{
    if (s == 0u) return bt[i];
    if (s == 1u) return bt_1[i];
    return bt_2[i];
}
vec4 bt4_at(uint s, uint i)
{
    if (s == 0u) return bt4[i];
    if (s == 1u) return bt4_1[i];
    return bt4_2[i];
}
void y_add(uint s, uint i, float v)
{
    if (s == 0u) y[i] += v;
    else if (s == 1u) y_1[i] += v;
    else y_2[i] += v;
}
#define OUT_DIM(s) pc.out_dim[s]
#define Y_OFF(s) pc.y_off[s]
#define Y_STRIDE(s) pc.y_stride[s]
#define META_OFF(s) pc.meta_off[s]
#define ROUTE_OFF(s) pc.route_off[s]
#define T_OFF(s) pc.t_off[s]
#else
float bt_at(uint s, uint i) { return bt[i]; }
vec4 bt4_at(uint s, uint i) { return bt4[i]; }
void y_add(uint s, uint i, float v) { y[i] += v; }
#define OUT_DIM(s) pc.out_dim
#define Y_OFF(s) pc.y_off
#define Y_STRIDE(s) pc.y_stride
#define META_OFF(s) pc.meta_off
#define ROUTE_OFF(s) pc.route_off
#define T_OFF(s) 0u
#endif

// This workgroup's site, and its group index among that site's (token, output block) groups.
uint site_group(out uint s)
{
    uint g = vkm_group_id();
    s = 0u;
#ifdef LORA_SITES
    if (pc.n_sites > 1u && g >= pc.g0[1]) s = 1u;
    if (pc.n_sites > 2u && g >= pc.g0[2]) s = 2u;
    g -= pc.g0[s];
#endif
    return g;
}

// VEC: 4 consecutive outputs per invocation from vec4 rows of Bt.
void expand4()
{
    uint s;
    const uint g = site_group(s), n4 = OUT_DIM(s) >> 2, blocks = (n4 + WG - 1) / WG;
    const uint i = g / blocks, o = (g % blocks) * WG + gl_LocalInvocationID.x;
    if (i >= pc.n_tok || o >= n4) return;
    const uint row = list[pc.row_list_off + i], rb = ROUTE_OFF(s) + row * pc.row_stride;
    vec4 acc = vec4(0.0);
    for (uint j = 0; j < pc.row_stride; j++) {
        const uint e = ids[rb + j];
        if (e == 0xffffffffu) break;
        const uint off = meta[META_OFF(s) + 4 * e], r = meta[META_OFF(s) + 4 * e + 1];
        const float f = wts[rb + j] * uintBitsToFloat(meta[META_OFF(s) + 4 * e + 2]);
        const uint tb = T_OFF(s) + (i * pc.row_stride + j) * RMAX;
        vec4 sum = vec4(0.0);
        for (uint k = 0; k < r; k++) sum += bt4_at(s, (off + k) * n4 + o) * t[tb + k];
        acc += f * sum;
    }
    const uint yi = Y_OFF(s) + i * Y_STRIDE(s) + 4u * o;
    y_add(s, yi, acc.x);
    y_add(s, yi + 1u, acc.y);
    y_add(s, yi + 2u, acc.z);
    y_add(s, yi + 3u, acc.w);
}

void main()
{
    if (VEC != 0u) {
        expand4();
        return;
    }
    uint s;
    const uint g = site_group(s), blocks = (OUT_DIM(s) + WG - 1) / WG;
    const uint i = g / blocks, o = (g % blocks) * WG + gl_LocalInvocationID.x;
    if (i >= pc.n_tok || o >= OUT_DIM(s)) return;
    const uint row = list[pc.row_list_off + i], rb = ROUTE_OFF(s) + row * pc.row_stride;
    float acc = 0.0;
    for (uint j = 0; j < pc.row_stride; j++) {
        const uint e = ids[rb + j];
        if (e == 0xffffffffu) break;
        const uint off = meta[META_OFF(s) + 4 * e], r = meta[META_OFF(s) + 4 * e + 1];
        const float f = wts[rb + j] * uintBitsToFloat(meta[META_OFF(s) + 4 * e + 2]);
        const uint tb = T_OFF(s) + (i * pc.row_stride + j) * RMAX;
        float sum = 0.0;
        for (uint k = 0; k < r; k++) sum += bt_at(s, (off + k) * OUT_DIM(s) + o) * t[tb + k];
        acc += f * sum;
    }
    y_add(s, Y_OFF(s) + i * Y_STRIDE(s) + o, acc);
}
#endif
