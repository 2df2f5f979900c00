#version 450
#extension GL_GOOGLE_include_directive : require
// select.comp — the k-th largest magnitude of a task vector (x_j - x_base) over a whole tensor,
// found on the GPU by radix selection, not a sort: the 64-bit keys (|delta| bits, ~index) of
// merge.glsl are narrowed 8 bits per pass. Each selection "slot" keeps a record in the state
// buffer (16 words):
//   [0] input j   [1] base input   [2] mode: 0 searching, 1 threshold found, 2 keep none,
//   3 keep all   [3] k: rank still wanted among the candidates   [4..5] key prefix (hi, lo),
//   the threshold once mode is 1: an element is among the k largest iff its key >= it.
// Two variants:
//   SELECT_HIST  (one pass over one chunk) histograms the next 8 key bits of the candidates,
//                elements whose key starts with the slot's prefix, into hist[slot][256]
//                (shared-memory counts, then one atomic add per bin and workgroup);
//   SELECT_PICK  (one workgroup, after each pass over all chunks) walks each histogram from
//                the top bin down to the bin holding rank k, extends the prefix, clears the
//                histogram, and finishes the slot when every candidate left is wanted.
// Eight passes (64 key bits) always suffice; passes after every slot finished exit at once.
#include "types.glsl"
#define VKM_PUSH_SELECT
#include "merge_push.glsl"

#define REC 16u

uint top_mask(uint bits) { return bits == 0u ? 0u : bits >= 32u ? 0xffffffffu : ~(0xffffffffu >> bits); }

#ifdef SELECT_HIST
layout(constant_id = 1) const uint SLOTS = 1;  // slots one dispatch handles at most
layout(constant_id = 2) const uint DTYPES = 0; // 2 bits per input: f32, f16, bf16

layout(binding = 0) readonly buffer In { uvec4 in4[]; };
layout(binding = 1) buffer Hist { uint hist[]; };
layout(binding = 2) readonly buffer State { uint st[]; };

#define VKM_MERGE_SLAB
#include "merge.glsl"

shared uint sh[SLOTS * 256];

void main()
{
    const uint lid = gl_LocalInvocationID.x, p = pc.pass;
    uint live = 0u;
    for (uint s = 0; s < pc.n_slots; s++)
        if (st[(pc.slot0 + s) * REC + 2u] == 0u) live |= 1u << s;
    if (live == 0u) return;
    for (uint i = lid; i < pc.n_slots * 256u; i += WG) sh[i] = 0u;
    barrier();
    const uint hi_bits = min(8u * p, 32u), lo_bits = 8u * p > 32u ? 8u * p - 32u : 0u;
    const uint mhi = top_mask(hi_bits), mlo = top_mask(lo_bits);
    const uint n_groups = (pc.n + 7u) / 8u, stride = gl_NumWorkGroups.x * gl_NumWorkGroups.y * WG;
    for (uint g = vkm_group_id() * WG + lid; g < n_groups; g += stride) {
        for (uint s = 0; s < pc.n_slots; s++) {
            if ((live & (1u << s)) == 0u) continue;
            const uint rec = (pc.slot0 + s) * REC, j = st[rec], b = st[rec + 1u];
            const uvec2 pfx = uvec2(st[rec + 4u], st[rec + 5u]);
            float x[8], y[8];
            load_group(in_dtype(DTYPES, j), pc.off[j], g, x);
            load_group(in_dtype(DTYPES, b), pc.off[b], g, y);
            for (uint k = 0; k < 8u; k++) {
                const uint e = g * 8u + k;
                if (e >= pc.n) break;
                const uvec2 key = mag_key(x[k] - y[k], pc.elem0 + e);
                if ((key.x & mhi) != pfx.x || (key.y & mlo) != pfx.y) continue;
                const uint digit = p < 4u ? (key.x >> (24u - 8u * p)) & 255u
                                          : (key.y >> (56u - 8u * p)) & 255u;
                atomicAdd(sh[s * 256u + digit], 1u);
            }
        }
    }
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

#ifdef SELECT_PICK
layout(binding = 0) buffer Hist { uint hist[]; };
layout(binding = 1) buffer State { uint st[]; };

void main()
{
    const uint p = pc.pass;
    for (uint s = gl_LocalInvocationID.x; s < pc.n_slots; s += WG) {
        const uint rec = (pc.slot0 + s) * REC, h = (pc.slot0 + s) * 256u;
        if (st[rec + 2u] != 0u) continue;
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
        if (p < 4u) st[rec + 4u] |= uint(bin) << (24u - 8u * p);
        else st[rec + 5u] |= uint(bin) << (56u - 8u * p);
        st[rec + 3u] = k;
        if (c == k || p == 7u) st[rec + 2u] = 1u;
        for (uint b = 0; b < 256u; b++) hist[h + b] = 0u;
    }
}
#endif
