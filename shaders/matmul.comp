#version 450
#extension GL_GOOGLE_include_directive : require
// matmul.comp — Y[t] (+)= W X[t] for many vectors (prefill): tiles of BM vectors x BN rows,
// BK = 32 columns at a time through shared memory, weights dequantized on the way in; each
// invocation accumulates a TM x TN micro-tile. Workgroups: x = row tiles, y = vector tiles.
// Spec constants: 0 WG, 1 BM, 2 BN, 3 TM, 4 TN with (BM/TM) * (BN/TN) == WG.
// MOE: the FFN-expert prefill variant — W is one expert's matrix and the vectors are the items
// (token, entry) that chose it, gathered through the expert's item list (route_group.comp):
// tiles past the expert's item count exit at once, so only chosen experts' weights are read.
// WS (with MOE, f32): W read element by element with any strides, W[row][col] =
// w[w_off + row * w_stride + col * w_cstride]: a LoRA bank's A rows (unpadded) and its Bt
// (W = Bt transposed) for the grouped prefill.
#include "types.glsl"
#ifdef MOE
#define VKM_PUSH_MOE
#else
#define VKM_PUSH_MATMUL
#endif
#include "push.glsl"
#include "weights.glsl"

layout(constant_id = 1) const uint BM = 32;
layout(constant_id = 2) const uint BN = 64;
layout(constant_id = 3) const uint TM = 4;
layout(constant_id = 4) const uint TN = 8;
const uint BK = 32;

layout(binding = 1) readonly buffer X { float x[]; };
#ifdef WS
layout(binding = 0) readonly buffer Wf { float wf[]; };
#endif
layout(binding = 2) buffer Y { float y[]; };
#ifdef MOE
layout(binding = 3) readonly buffer G { uint grp[]; };
uint n_vec() { return grp[pc.expert]; }
uint item(uint m) { return grp[2 * pc.n_grp + grp[pc.n_grp + pc.expert] + m]; }
uint x_row(uint m) { return pc.x_per_entry != 0u ? item(m) : item(m) / pc.row_stride; }
uint y_index(uint m, uint row) { return pc.y_off + item(m) * pc.y_stride + pc.row0 + row; }
#else
uint n_vec() { return pc.n_tok; }
uint x_row(uint m) { return m; }
uint y_index(uint m, uint row) { return pc.y_off + m * pc.y_stride + pc.row0 + row; }
#endif

shared float xs[BK * BM];
shared float ws[BK * BN];

void main()
{
    const uint lid = gl_LocalInvocationID.x;
    const uint n0 = gl_WorkGroupID.x * BN, m0 = gl_WorkGroupID.y * BM, nv = n_vec();
    if (m0 >= nv) return;
    const uint tx = lid % (BN / TN), ty = lid / (BN / TN);
    float acc[TM * TN];
    [[unroll]] for (uint i = 0; i < TM * TN; i++) acc[i] = 0.0;
    const uint nsteps = w_steps(pc.cols);
    const uint steps_per_k = BK / W_STEP;

    for (uint k0 = 0; k0 < pc.cols; k0 += BK) {
        // vectors: BM x BK floats, zero outside
        for (uint e = lid; e < BM * BK; e += WG) {
            const uint m = e / BK, k = e % BK;
            const uint t = m0 + m, c = k0 + k;
            xs[k * BM + m] = (t < nv && c < pc.cols) ? x[pc.x_off + x_row(t) * pc.x_stride + c] : 0.0;
        }
#ifdef WS
        for (uint e = lid; e < BN * BK; e += WG) {
            const uint n = e % BN, k = e / BN, row = n0 + n, c = k0 + k;
            ws[k * BN + n] = row < pc.rows && c < pc.cols ? wf[pc.w_off + row * pc.w_stride + c * pc.w_cstride] : 0.0;
        }
#else
        // weights: BN rows x (BK / W_STEP) steps, dequantized, zero outside
        for (uint e = lid; e < BN * steps_per_k; e += WG) {
            const uint n = e / steps_per_k, sk = e % steps_per_k;
            const uint row = n0 + n, s = k0 / W_STEP + sk;
            vec4 v[W_K];
            if (row < pc.rows && s < nsteps) {
                load_w(row, s, pc.w_stride, pc.scale_off, v);
            } else {
                [[unroll]] for (uint k = 0; k < W_K; k++) v[k] = vec4(0.0);
            }
            [[unroll]] for (uint k = 0; k < W_K; k++)
                [[unroll]] for (uint c = 0; c < 4; c++) ws[(sk * W_STEP + 4 * k + c) * BN + n] = v[k][c];
        }
#endif
        barrier();
        [[unroll]] for (uint k = 0; k < BK; k++) {
            float a[TM], b[TN];
            [[unroll]] for (uint i = 0; i < TM; i++) a[i] = xs[k * BM + ty * TM + i];
            [[unroll]] for (uint j = 0; j < TN; j++) b[j] = ws[k * BN + tx * TN + j];
            [[unroll]] for (uint i = 0; i < TM; i++)
                [[unroll]] for (uint j = 0; j < TN; j++) acc[i * TN + j] += a[i] * b[j];
        }
        barrier();
    }
    [[unroll]] for (uint i = 0; i < TM; i++) {
        const uint t = m0 + ty * TM + i;
        if (t >= nv) continue;
        [[unroll]] for (uint j = 0; j < TN; j++) {
            const uint row = n0 + tx * TN + j;
            if (row >= pc.rows) continue;
            const uint yi = y_index(t, row);
#ifdef MOE
            y[yi] = pc.scale * acc[i * TN + j];
#else
            y[yi] = pc.accumulate != 0u ? y[yi] + acc[i * TN + j] : acc[i * TN + j];
#endif
        }
    }
}
