#version 450
#extension GL_GOOGLE_include_directive : require
// mix.comp — logits aggregation (PELMo): the next-token distributions of k expert rows mixed by
// the router's weights, written as log-probabilities (which sample.comp and a log-softmax take
// as logits): out[v] = log(sum_j w_j softmax(l_j)[v]). One workgroup per mixed row; the rows
// and weights come from a table of records.
#include "types.glsl"
#define VKM_PUSH_MIX
#include "push.glsl"

layout(binding = 0) buffer L { float lg[]; };
layout(binding = 1) readonly buffer T { uint tab[]; };

shared float lse[64];

void main()
{
    const uint g = vkm_group_id(), lid = gl_LocalInvocationID.x;
    if (g >= pc.n_mix) return;
    const uint rb = pc.table_off + g * pc.record, dst = tab[rb], k = min(tab[rb + 1], 64u);
    for (uint j = 0; j < k; j++) { // log-sum-exp of each source row
        const uint src = tab[rb + 2 + 2 * j] * pc.n_vocab;
        float m = -1.0 / 0.0;
        for (uint v = lid; v < pc.n_vocab; v += WG) m = max(m, lg[src + v]);
        m = wg_max(m);
        float s = 0.0;
        for (uint v = lid; v < pc.n_vocab; v += WG) s += exp(lg[src + v] - m);
        s = wg_sum(s);
        if (lid == 0) lse[j] = m + log(s);
    }
    barrier();
    for (uint v = lid; v < pc.n_vocab; v += WG) {
        float p = 0.0;
        for (uint j = 0; j < k; j++) {
            const uint src = tab[rb + 2 + 2 * j] * pc.n_vocab;
            p += uintBitsToFloat(tab[rb + 3 + 2 * j]) * exp(lg[src + v] - lse[j]);
        }
        lg[dst * pc.n_vocab + v] = log(p);
    }
}
