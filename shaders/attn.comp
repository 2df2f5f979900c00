#version 450
#extension GL_GOOGLE_include_directive : require
// attn.comp — causal grouped-query attention over the KV cache, split over the context.
// One workgroup per (token i, query head h, split s): token i attends to positions 0..pos[i]
// of its slot; split s covers an equal share of them, walked in tiles of CH keys with an
// online softmax (running max m, sum l and output acc), so any context length runs in fixed
// shared memory. With one split the normalised output is written directly; otherwise each
// split writes (acc[HD], m, l) for attn_reduce.comp. Decode (one token per sequence, long
// context: many splits) and prefill (many tokens: one split) use the same kernel.
// Spec constants: 0 WG, 1 CH (keys per tile), 2 HD (head dim, a multiple of 4).
#include "types.glsl"
#define VKM_PUSH_ATTN
#include "push.glsl"

layout(constant_id = 1) const uint CH = 128;
layout(constant_id = 2) const uint HD = 64;
const uint NA = (HD + WG - 1) / WG; // output dimensions per invocation

layout(binding = 0) readonly buffer Q { float q[]; };
layout(binding = 1) readonly buffer KC { vec4 kc[]; };
layout(binding = 2) readonly buffer VC { float vc[]; };
layout(binding = 3) writeonly buffer O { float o[]; };
layout(binding = 4) readonly buffer Step { uint step[]; };

shared vec4 qs[HD / 4];
shared float ps[CH];

void main()
{
    const uint gid = vkm_group_id(), lid = gl_LocalInvocationID.x;
    const uint s = gid % pc.n_splits, h = (gid / pc.n_splits) % pc.n_heads;
    const uint i = gid / (pc.n_splits * pc.n_heads);
    if (i >= pc.n_tok) return;
    const uint pos = step[pc.pos_off + i], slot = step[pc.slot_off + i];
    const uint kvh = h / (pc.n_heads / pc.n_kv_heads);
    const uint n_keys = pos + 1, per = (n_keys + pc.n_splits - 1) / pc.n_splits;
    const uint kbeg = min(s * per, n_keys), kend = min(kbeg + per, n_keys);
    const uint part = ((i * pc.n_heads + h) * pc.n_splits + s) * (HD + 2);

    const uint qb = pc.q_off + i * pc.q_stride + h * HD;
    for (uint d = lid; d < HD / 4; d += WG)
        qs[d] = vec4(q[qb + 4 * d], q[qb + 4 * d + 1], q[qb + 4 * d + 2], q[qb + 4 * d + 3]) * pc.scale;
    barrier();

    const uint kv_base = slot * pc.ctx * pc.kv_dim + kvh * HD;
    float m = -1.0 / 0.0, l = 0.0;
    float acc[NA];
    [[unroll]] for (uint a = 0; a < NA; a++) acc[a] = 0.0;
    for (uint t0 = kbeg; t0 < kend; t0 += CH) {
        const uint t1 = min(t0 + CH, kend);
        float tmax = -1.0 / 0.0;
        for (uint j = t0 + lid; j < t1; j += WG) { // scores: invocations over keys
            const uint kb = (kv_base + j * pc.kv_dim) >> 2;
            float sc = 0.0;
            [[unroll]] for (uint d = 0; d < HD / 4; d++) sc += dot(qs[d], kc[kb + d]);
            ps[j - t0] = sc;
            tmax = max(tmax, sc);
        }
        const float mn = max(m, wg_max(tmax));
        float tsum = 0.0;
        for (uint j = t0 + lid; j < t1; j += WG) {
            const float p = exp(ps[j - t0] - mn);
            ps[j - t0] = p;
            tsum += p;
        }
        const float corr = exp(m - mn); // 0 on the first tile
        l = l * corr + wg_sum(tsum);    // its barriers also publish ps
        m = mn;
        [[unroll]] for (uint a = 0; a < NA; a++) { // output: invocations over dimensions
            const uint d = lid + a * WG;
            if (d >= HD) break;
            float sacc = acc[a] * corr;
            uint vb = kv_base + t0 * pc.kv_dim + d;
            for (uint j = t0; j < t1; j++, vb += pc.kv_dim) sacc += ps[j - t0] * vc[vb];
            acc[a] = sacc;
        }
        barrier(); // ps is rewritten by the next tile
    }
    [[unroll]] for (uint a = 0; a < NA; a++) {
        const uint d = lid + a * WG;
        if (d >= HD) break;
        if (pc.n_splits == 1u) o[pc.o_off + i * pc.o_stride + h * HD + d] = acc[a] / l;
        else o[part + d] = acc[a];
    }
    if (pc.n_splits != 1u && lid == 0) { o[part + HD] = m; o[part + HD + 1] = l; }
}
