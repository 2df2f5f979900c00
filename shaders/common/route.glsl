// route.glsl — one token-level routing decision, shared by router.comp and the routed shrink of
// lora.comp (lora_route_shrink_sites): the experts' dot products with the input, their logits,
// the top-k and the routing row. The includer declares EMAX, VEC, the push block (in_dim, n_exp,
// flags, inv_temp, always_on, top_k, map_off, row_stride), x[] / x4[] (the inputs), rw[] /
// rw4[] (the router matrices), list[] (router expert -> bank expert at map_off), ids[], wts[].

// The dot products of an input row (x from word xb, times scale) with the experts' rows of the
// routing point's matrix (from word mb), summed over this invocation's share of the row; ss:
// its share of the input's squared norm.
void route_dots(uint xb, uint mb, float scale, out float acc[EMAX], out float ss)
{
    const uint lid = gl_LocalInvocationID.x;
    [[unroll]] for (uint e = 0; e < EMAX; e++) acc[e] = 0.0;
    ss = 0.0;
    if (VEC != 0u) {
        const uint n4 = pc.in_dim >> 2, xb4 = xb >> 2;
        for (uint c = lid; c < n4; c += WG) {
            const vec4 v = x4[xb4 + c] * scale;
            ss += dot(v, v);
            [[unroll]] for (uint e = 0; e < EMAX; e++)
                if (e < pc.n_exp) acc[e] += dot(rw4[(mb >> 2) + e * n4 + c], v);
        }
    } else {
        for (uint c = lid; c < pc.in_dim; c += WG) {
            const float v = x[xb + c] * scale;
            ss += v * v;
            [[unroll]] for (uint e = 0; e < EMAX; e++)
                if (e < pc.n_exp) acc[e] += rw[mb + e * pc.in_dim + c] * v;
        }
    }
}

// The logit of expert e from its dot product s with the input (norm: the input's L2 norm; mb:
// the routing point's matrix): L2-normalised input (flags 1), |s| for Arrow (2), a bias per
// expert in the row after the experts' (16), then / temperature.
float route_logit(float s, float norm, uint mb, uint e)
{
    if ((pc.flags & 1u) != 0u) s = norm > 0.0 ? s / norm : 0.0;
    if ((pc.flags & 2u) != 0u) s = abs(s);
    if ((pc.flags & 16u) != 0u) s += rw[mb + pc.n_exp * pc.in_dim + e];
    return s * pc.inv_temp;
}

// Softmax (flags 4) or sigmoid (8) or raw values, top-k over the experts other than the
// always-on one (ties: the lowest index), renormalised to sum 1 (softmax / sigmoid). Returns
// the count; sel: router experts, sw: their weights.
uint route_topk(inout float lg[EMAX], out uint sel[EMAX], out float sw[EMAX])
{
    if ((pc.flags & 4u) != 0u) {
        float m = -1.0 / 0.0, z = 0.0;
        for (uint e = 0; e < pc.n_exp; e++) m = max(m, lg[e]);
        for (uint e = 0; e < pc.n_exp; e++) { lg[e] = exp(lg[e] - m); z += lg[e]; }
        for (uint e = 0; e < pc.n_exp; e++) lg[e] /= z;
    } else if ((pc.flags & 8u) != 0u) {
        for (uint e = 0; e < pc.n_exp; e++) lg[e] = 1.0 / (1.0 + exp(-lg[e]));
    }
    const uint n_other = pc.n_exp - (pc.always_on >= 0 ? 1u : 0u);
    const uint k = pc.top_k == 0u || pc.top_k > n_other ? n_other : pc.top_k;
    uint chosen = 0u, chosen_hi = 0u, cnt = 0u; // bit mask over router experts (EMAX <= 64)
    float tot = 0.0;
    for (uint s = 0; s < k; s++) {
        int best = -1;
        for (uint e = 0; e < pc.n_exp; e++) {
            if (int(e) == pc.always_on) continue;
            const bool used = e < 32u ? (chosen & (1u << e)) != 0u : (chosen_hi & (1u << (e - 32u))) != 0u;
            if (used) continue;
            if (best < 0 || lg[e] > lg[best]) best = int(e);
        }
        if (best < 0) break;
        if (best < 32) chosen |= 1u << uint(best); else chosen_hi |= 1u << uint(best - 32);
        sel[cnt] = uint(best);
        sw[cnt] = lg[best];
        tot += lg[best];
        cnt++;
    }
    if ((pc.flags & 12u) != 0u && tot > 0.0)
        for (uint s = 0; s < cnt; s++) sw[s] /= tot;
    return cnt;
}

// The bank expert of entry o of the routing row: the chosen ones, then the always-on expert
// (weight 1), then none (0xffffffff).
uint route_entry(uint o, uint sel[EMAX], uint cnt)
{
    if (o < cnt) return list[pc.map_off + sel[o]];
    if (o == cnt && pc.always_on >= 0) return list[pc.map_off + uint(pc.always_on)];
    return 0xffffffffu;
}

// Writes the routing row at word rb of ids / wts (pc.row_stride entries).
void route_write_row(uint rb, uint sel[EMAX], float sw[EMAX], uint cnt)
{
    for (uint o = 0; o < pc.row_stride; o++) {
        ids[rb + o] = route_entry(o, sel, cnt);
        wts[rb + o] = o < cnt ? sw[o] : o == cnt && pc.always_on >= 0 ? 1.0 : 0.0;
    }
}
