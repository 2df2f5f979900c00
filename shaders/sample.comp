#version 450
#extension GL_GOOGLE_include_directive : require
// sample.comp — picks the next token of each row of logits on the GPU; only its id is written
// back. One workgroup per row. llama.cpp's order: repetition penalty over the last tokens,
// top-k, top-p, min-p (all on untempered probabilities), then temperature and a draw from a
// counter-based random number keyed by (seed, counter). temperature <= 0: argmax, lowest id
// on ties. Thresholds are found by bisection over the order-preserving bit pattern of the
// floats (32 counting passes for top-k, 32 summing passes for top-p): no sort. top-k keeps every
// value tied with the k-th; top-p's mass is that of the tokens top-k kept.
// Parameter record per row (32-bit words): [0] logits row, [1] temperature (float bits),
// [2] top_k, [3] top_p, [4] min_p, [5] penalty, [6] n_hist, [7] seed lo, [8] seed hi,
// [9] counter, [10] output index, [11..15] reserved, [16..] history token ids.
#include "types.glsl"
#define VKM_PUSH_SAMPLE
#include "push.glsl"

layout(binding = 0) readonly buffer L { float logits[]; };
layout(binding = 1) buffer S { float scratch[]; };
layout(binding = 2) readonly buffer P { uint prm[]; };
layout(binding = 3) writeonly buffer Out { uint outv[]; };

shared float sh_f[WG];
shared uint sh_u[WG];

uint okey(float f) // monotonic map of floats to unsigned integers
{
    const uint b = floatBitsToUint(f);
    return (b & 0x80000000u) != 0u ? ~b : b | 0x80000000u;
}

uint hash32(uint x)
{
    x ^= x >> 16; x *= 0x7feb352du;
    x ^= x >> 15; x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

// u in [0, 1) from (seed, counter), the same function as the host reference.
float uniform01(uint seed_lo, uint seed_hi, uint counter)
{
    const uint h = hash32(seed_lo ^ hash32(seed_hi ^ hash32(counter * 0x9e3779b9u + 0x632be5abu)));
    return float(h >> 8) * (1.0 / 16777216.0);
}

uint wg_sum_u(uint v)
{
    barrier();
    sh_u[gl_LocalInvocationID.x] = v;
    barrier();
    uint s = 0;
    for (uint i = 0; i < WG; i++) s += sh_u[i];
    return s;
}

void main()
{
    const uint r = vkm_group_id(), lid = gl_LocalInvocationID.x;
    if (r >= pc.n_rows) return;
    const uint pb = r * pc.param_words;
    const uint row = prm[pb + 0];
    const float temp = uintBitsToFloat(prm[pb + 1]);
    const uint top_k = prm[pb + 2];
    const float top_p = uintBitsToFloat(prm[pb + 3]), min_p = uintBitsToFloat(prm[pb + 4]);
    const float penalty = uintBitsToFloat(prm[pb + 5]);
    const uint n_hist = prm[pb + 6];
    const uint V = pc.n_vocab, lb = row * pc.logit_stride, sb = r * V;

    // 1. penalised copy of the logits
    for (uint i = lid; i < V; i += WG) scratch[sb + i] = logits[lb + i];
    memoryBarrierBuffer();
    barrier();
    if (penalty != 1.0) {
        for (uint h = lid; h < n_hist; h += WG) {
            const uint t = prm[pb + 16 + h];
            bool first = t < V;
            for (uint e = 0; e < h && first; e++) first = prm[pb + 16 + e] != t;
            if (first) {
                const float v = logits[lb + t];
                scratch[sb + t] = v > 0.0 ? v / penalty : v * penalty;
            }
        }
        memoryBarrierBuffer();
        barrier();
    }

    // 2. maximum and its lowest index
    float best = -1.0 / 0.0;
    uint besti = 0xffffffffu;
    for (uint i = lid; i < V; i += WG) {
        const float v = scratch[sb + i];
        if (v > best) { best = v; besti = i; } // i grows: ties keep the lowest
    }
    const float M = wg_max(best);
    barrier();
    sh_u[lid] = best == M ? besti : 0xffffffffu;
    barrier();
    uint argmax = 0xffffffffu;
    for (uint i = 0; i < WG; i++) argmax = min(argmax, sh_u[i]);
    if (!(temp > 0.0) || top_k == 1u) {
        if (lid == 0) outv[prm[pb + 10]] = argmax;
        return;
    }

    // 3. thresholds on untempered logits: keep okey(v) >= tkey
    uint tkey = 0u;
    if (top_k > 0u && top_k < V) { // largest key with at least k values at or above it
        uint ans = 0u;
        for (int bit = 31; bit >= 0; bit--) {
            const uint cand = ans | (1u << uint(bit));
            uint cnt = 0;
            for (uint i = lid; i < V; i += WG) cnt += okey(scratch[sb + i]) >= cand ? 1u : 0u;
            if (wg_sum_u(cnt) >= top_k) ans = cand;
        }
        tkey = ans;
    }
    if (top_p < 1.0) { // largest key whose kept mass is at least top_p of the mass top-k kept
        float z = 0.0;
        for (uint i = lid; i < V; i += WG) {
            const float v = scratch[sb + i];
            if (okey(v) >= tkey) z += exp(v - M);
        }
        z = wg_sum(z);
        uint ans = 0u; // the largest such key is >= tkey, whose mass is all of z
        for (int bit = 31; bit >= 0; bit--) {
            const uint cand = ans | (1u << uint(bit));
            float mass = 0.0;
            for (uint i = lid; i < V; i += WG) {
                const float v = scratch[sb + i];
                if (okey(v) >= cand) mass += exp(v - M);
            }
            if (wg_sum(mass) >= top_p * z) ans = cand;
        }
        tkey = max(tkey, ans);
    }
    if (min_p > 0.0) tkey = max(tkey, okey(M + log(min_p))); // after top-p, as llama.cpp's chain

    // 4. draw with temperature: blocks of consecutive ids per invocation, prefix over blocks
    const uint blk = (V + WG - 1) / WG, b0 = lid * blk, b1 = min(b0 + blk, V);
    float part = 0.0;
    for (uint i = b0; i < b1; i++) {
        const float v = scratch[sb + i];
        if (okey(v) >= tkey) part += exp((v - M) / temp);
    }
    barrier();
    sh_f[lid] = part;
    barrier();
    if (lid != 0) return;
    float z = 0.0;
    for (uint w = 0; w < WG; w++) z += sh_f[w];
    const float u = uniform01(prm[pb + 7], prm[pb + 8], prm[pb + 9]) * z;
    float acc = 0.0;
    uint w = 0;
    while (w + 1 < WG && acc + sh_f[w] <= u) acc += sh_f[w++];
    uint pick = 0xffffffffu, last = 0xffffffffu;
    for (uint i = w * blk; i < min(w * blk + blk, V); i++) {
        const float v = scratch[sb + i];
        if (okey(v) < tkey) continue;
        last = i;
        acc += exp((v - M) / temp);
        if (acc > u) { pick = i; break; }
    }
    if (pick == 0xffffffffu) pick = last != 0xffffffffu ? last : argmax; // rounding at the end
    outv[prm[pb + 10]] = pick;
}
