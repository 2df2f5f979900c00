#version 450
#extension GL_GOOGLE_include_directive : require
// select.comp — the k-th largest magnitude of a task vector (x_j - x_base) over a whole tensor,
// found on the GPU by selection, not a sort: the 64-bit keys (|delta| bits, ~index) of
// merge.glsl. Each selection "slot" keeps a record in the state buffer (16 words):
//   [0] input j   [1] base input   [2] mode: 0 searching, 1 threshold found, 2 keep none,
//   3 keep all   [3] k: rank still wanted among the candidates   [4..5] key prefix (hi, lo),
//   the threshold once mode is 1: an element is among the k largest iff its key >= it;
//   [6..7] a bracket of magnitude bits (lo, hi) the threshold should lie in   [8] source:
//   0 the tensor, 1 the candidates, 2 bracket pending   [9] candidates   [10] key bits the
//   candidates share (those of lo and hi), already in the prefix: pass p narrows the 8 bits
//   from bit [10] + 8 p (0: the top of the magnitude word).
// A bracket (chosen by the host from a sample of the tensor) makes one pass over the tensor
// enough: SELECT_BRACKET counts the elements above it and gathers those inside it (their keys)
// into the slot's candidate list, without an atomic per element; when the rank falls inside,
// the radix passes run over the candidates only (SELECT_CAND), else over the tensor again.
// Variants:
//   SELECT_BRACKET one pass over one chunk: per pending slot, count above the bracket into
//                  cnt[2 slot], append the keys inside it to cand[slot * cap ..] (count in
//                  cnt[2 slot + 1], even beyond cap: the host sees the overflow);
//   SELECT_HIST    (one pass over one chunk) histograms the next 8 key bits of the candidates,
//                  elements whose key starts with the slot's prefix, into hist[slot][256]
//                  (shared-memory counts, then one atomic add per bin and workgroup);
//   SELECT_CAND    the same over the slots' gathered candidates;
//   SELECT_PICK    (one workgroup, after each pass over all chunks) walks each histogram from
//                  the top bin down to the bin holding rank k, extends the prefix, clears the
//                  histogram, and finishes the slot when every candidate left is wanted (over
//                  gathered candidates the threshold is then raised to the bracket's bottom,
//                  (lo, 0), so no element below the bracket passes it).
// Eight passes (64 key bits) always suffice; passes after every slot finished exit at once.

#include "types.glsl"
#define VKM_PUSH_SELECT
#include "merge_push.glsl"

#define REC 16u

uint top_mask(uint bits) { return bits == 0u ? 0u : bits >= 32u ? 0xffffffffu : ~(0xffffffffu >> bits); }

// The 8 key bits from bit t of the 64-bit key (x, y) (bits past its end read as 0), and the
// prefix with digit d placed there.
uint key_digit(uvec2 key, uint t)
{
    if (t + 8u <= 32u) return (key.x >> (24u - t)) & 255u;
    if (t >= 32u) return t <= 56u ? (key.y >> (56u - t)) & 255u : (key.y << (t - 56u)) & 255u;
    return ((key.x << (t - 24u)) | (key.y >> (56u - t))) & 255u;
}

uvec2 with_digit(uvec2 pfx, uint t, uint d)
{
    if (t + 8u <= 32u) pfx.x |= d << (24u - t);
    else if (t >= 32u) pfx.y |= t <= 56u ? d << (56u - t) : d >> (t - 56u);
    else {
        pfx.x |= d >> (t - 24u);
        pfx.y |= d << (56u - t);
    }
    return pfx;
}

#if defined(SELECT_HIST) || defined(SELECT_CAND)
layout(constant_id = 1) const uint SLOTS = 1;  // slots one dispatch handles at most
layout(constant_id = 2) const uint DTYPES = 0; // 2 bits per input: f32, f16, bf16

#ifdef SELECT_HIST
layout(binding = 0) readonly buffer In { uvec4 in4[]; };
#define VKM_MERGE_SLAB
#include "merge.glsl"
#else
layout(binding = 0) readonly buffer Cand { uvec2 cand[]; };
#endif
layout(binding = 1) buffer Hist { uint hist[]; };
layout(binding = 2) readonly buffer State { uint st[]; };

shared uint sh[SLOTS * 256];

// Counts key into slot s's histogram if it starts with the prefix (its top t bits).
void count_key(uint s, uvec2 key, uvec2 pfx, uint t)
{
    const uint mhi = top_mask(min(t, 32u)), mlo = top_mask(t > 32u ? t - 32u : 0u);
    if ((key.x & mhi) != pfx.x || (key.y & mlo) != pfx.y) return;
    atomicAdd(sh[s * 256u + key_digit(key, t)], 1u);
}

void main()
{
    const uint lid = gl_LocalInvocationID.x, p = pc.pass;
#ifdef SELECT_HIST
    const uint want_src = 0u;
#else
    const uint want_src = 1u;
#endif
    uint live = 0u;
    for (uint s = 0; s < pc.n_slots; s++)
        if (st[(pc.slot0 + s) * REC + 2u] == 0u && st[(pc.slot0 + s) * REC + 8u] == want_src) live |= 1u << s;
    if (live == 0u) return;
    for (uint i = lid; i < pc.n_slots * 256u; i += WG) sh[i] = 0u;
    barrier();
    const uint stride = gl_NumWorkGroups.x * gl_NumWorkGroups.y * WG;
#ifdef SELECT_HIST
    const uint n_groups = (pc.n + 7u) / 8u;
    for (uint g = vkm_group_id() * WG + lid; g < n_groups; g += stride) {
        for (uint s = 0; s < pc.n_slots; s++) {
            if ((live & (1u << s)) == 0u) continue;
            const uint rec = (pc.slot0 + s) * REC, j = st[rec], b = st[rec + 1u];
            const uvec2 pfx = uvec2(st[rec + 4u], st[rec + 5u]);
            const uint t = st[rec + 10u] + 8u * p;
            float x[8], y[8];
            load_group(j, in_dtype(DTYPES, j), pc.off[j], g, x);
            load_group(b, in_dtype(DTYPES, b), pc.off[b], g, y);
            for (uint k = 0; k < 8u; k++) {
                const uint e = g * 8u + k;
                if (e >= pc.n) break;
                count_key(s, mag_key(x[k] - y[k], pc.elem0 + e), pfx, t);
            }
        }
    }
#else
    for (uint s = 0; s < pc.n_slots; s++) {
        if ((live & (1u << s)) == 0u) continue;
        const uint slot = pc.slot0 + s, rec = slot * REC, n_c = st[rec + 9u];
        const uvec2 pfx = uvec2(st[rec + 4u], st[rec + 5u]);
        const uint t = st[rec + 10u] + 8u * p;
        for (uint i = vkm_group_id() * WG + lid; i < n_c; i += stride)
            count_key(s, cand[slot * pc.cap + i], pfx, t);
    }
#endif
    barrier();
    for (uint s = 0; s < pc.n_slots; s++) {
        if ((live & (1u << s)) == 0u) continue;
        for (uint bin = lid; bin < 256u; bin += WG) {
            const uint c = sh[s * 256u + bin];
            if (c != 0u) atomicAdd(hist[(pc.slot0 + s) * 256u + bin], c);
        }
    }
}
#endif

#ifdef SELECT_BRACKET
layout(constant_id = 2) const uint DTYPES = 0;

layout(binding = 0) readonly buffer In { uvec4 in4[]; };
layout(binding = 1) writeonly buffer Cand { uvec2 cand[]; };
layout(binding = 2) buffer Cnt { uint cnt[]; };
layout(binding = 3) readonly buffer State { uint st[]; };

#define VKM_MERGE_SLAB
#include "merge.glsl"

void main()
{
    const uint lid = gl_LocalInvocationID.x, n_groups = (pc.n + 7u) / 8u;
    const uint stride = gl_NumWorkGroups.x * gl_NumWorkGroups.y * WG;
    for (uint s = 0; s < pc.n_slots; s++) {
        const uint slot = pc.slot0 + s, rec = slot * REC;
        if (st[rec + 2u] != 0u || st[rec + 8u] != 2u) continue;
        const uint j = st[rec], b = st[rec + 1u], lo = st[rec + 6u], hi = st[rec + 7u];
        uint above = 0u;
        for (uint g0 = vkm_group_id() * WG; g0 < n_groups; g0 += stride) { // uniform trip count
            const uint g = g0 + lid;
            uint mag[8], inside = 0u, n_in = 0u;
            if (g < n_groups) {
                float x[8], y[8];
                load_group(j, in_dtype(DTYPES, j), pc.off[j], g, x);
                load_group(b, in_dtype(DTYPES, b), pc.off[b], g, y);
                for (uint k = 0; k < 8u; k++) {
                    mag[k] = floatBitsToUint(abs(x[k] - y[k]));
                    if (g * 8u + k >= pc.n) continue;
                    above += mag[k] > hi ? 1u : 0u;
                    if (mag[k] >= lo && mag[k] <= hi) { inside |= 1u << k; n_in++; }
                }
            }
#ifndef VKM_NO_SUBGROUP
            // one atomic per subgroup: the lanes' places from an exclusive scan
            const uint total = subgroupAdd(n_in);
            if (total == 0u) continue;
            uint at = 0u;
            if (subgroupElect()) at = atomicAdd(cnt[2u * slot + 1u], total);
            at = subgroupMax(at) + subgroupExclusiveAdd(n_in);
#else
            if (n_in == 0u) continue;
            uint at = atomicAdd(cnt[2u * slot + 1u], n_in);
#endif
            for (uint k = 0; k < 8u; k++)
                if ((inside & (1u << k)) != 0u) {
                    if (at < pc.cap) cand[slot * pc.cap + at] = uvec2(mag[k], ~(pc.elem0 + g * 8u + k));
                    at++;
                }
        }
#ifndef VKM_NO_SUBGROUP
        above = subgroupAdd(above);
        if (subgroupElect() && above != 0u) atomicAdd(cnt[2u * slot], above);
#else
        if (above != 0u) atomicAdd(cnt[2u * slot], above);
#endif
    }
}
#endif

#ifdef SELECT_PICK
layout(binding = 0) buffer Hist { uint hist[]; };
layout(binding = 1) buffer State { uint st[]; };

void main()
{
    const uint p = pc.pass;
    for (uint s = gl_LocalInvocationID.x; s < pc.n_slots; s += WG) {
        const uint rec = (pc.slot0 + s) * REC, h = (pc.slot0 + s) * 256u;
        if (st[rec + 2u] != 0u) continue;
        const uint t = st[rec + 10u] + 8u * p;
        uint k = st[rec + 3u], cum = 0u, c = 0u;
        int bin = 255;
        for (; bin >= 0; bin--) {
            c = hist[h + uint(bin)];
            if (cum + c >= k) break;
            cum += c;
        }
        if (bin < 0) { // fewer candidates than wanted: cannot happen with counts from all chunks
            st[rec + 2u] = 3u;
            continue;
        }
        k -= cum;
        const uvec2 pfx = with_digit(uvec2(st[rec + 4u], st[rec + 5u]), t, uint(bin));
        st[rec + 4u] = pfx.x;
        st[rec + 5u] = pfx.y;
        st[rec + 3u] = k;
        if (c == k || t + 8u >= 64u) {
            st[rec + 2u] = 1u;
            // over gathered candidates the elements below the bracket were never counted: the
            // threshold must stay above them (they are all below (lo, 0); the candidates not
            // wanted are all below the prefix)
            if (st[rec + 8u] == 1u && st[rec + 4u] < st[rec + 6u]) {
                st[rec + 4u] = st[rec + 6u];
                st[rec + 5u] = 0u;
            }
        }
        for (uint b = 0; b < 256u; b++) hist[h + b] = 0u;
    }
}
#endif
