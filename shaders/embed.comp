#version 450
#extension GL_GOOGLE_include_directive : require
// embed.comp — y[i] = row token[i] of the embedding table (any weight layout, dequantized).
// One workgroup per token; a dispatch covers one row chunk and skips tokens outside it.
#include "types.glsl"
#define VKM_PUSH_EMBED
#include "push.glsl"
#include "weights.glsl"

layout(binding = 1) readonly buffer Step { uint step[]; };
layout(binding = 2) writeonly buffer Y { float y[]; };

void main()
{
    const uint i = vkm_group_id();
    if (i >= pc.n_tok) return;
    const uint tok = step[pc.tok_off + i];
    if (tok < pc.row0 || tok >= pc.row0 + pc.rows) return;
    const uint row = tok - pc.row0, yb = pc.y_off + i * pc.y_stride;
    for (uint s = gl_LocalInvocationID.x; s < w_steps(pc.cols); s += WG) {
        vec4 v[W_K];
        load_w(row, s, pc.w_stride, pc.scale_off, v);
        [[unroll]] for (uint k = 0; k < W_K; k++)
            [[unroll]] for (uint e = 0; e < 4; e++) {
                const uint c = s * W_STEP + 4 * k + e;
                if (c < pc.cols) y[yb + c] = v[k][e];
            }
    }
}
