// weights.glsl — reading one "step" of a weight row in each device layout (engine/memory.c):
//   WTYPE_F32   rows of f32, stride padded to 8: a step is 4 elements (one vec4)
//   WTYPE_F16   rows of f16 read as 32-bit words (no 16-bit storage needed): 8 elements
//   WTYPE_F16S  rows of f16 through 16-bit storage: 8 elements
//   WTYPE_F16H  as WTYPE_F16, decoded by unpackHalf2x16: used where the device's decoding was
//               found exact (vkm_dev_probe_f16); several times cheaper on CPU devices
//   WTYPE_Q8_0  [rows][cols] int8 quants, then [rows][cols/32] f16 scales: a step is a block of 32
//   WTYPE_Q4_0  [rows][cols/2] nibbles (llama.cpp order: low = j, high = j+16), then scales
// W_STEP elements per step, W_K vec4 per step. load_w(row, step, v) dequantizes into v[0..W_K).
// w_stride is the push constant's row stride (elements for f32/f16, quant bytes for q8_0/q4_0),
// w_soff the word offset of the scales.

#if defined(WTYPE_F32)
#define W_STEP 4
#define W_K 1
layout(binding = 0) readonly buffer Wv { vec4 w4[]; };
void load_w(uint row, uint s, uint w_stride, uint w_soff, out vec4 v[W_K])
{
    v[0] = w4[row * (w_stride >> 2) + s];
}
#elif defined(WTYPE_F16) || defined(WTYPE_F16H)
#define W_STEP 8
#define W_K 2
layout(binding = 0) readonly buffer Wv { uvec4 w4[]; };
void load_w(uint row, uint s, uint w_stride, uint w_soff, out vec4 v[W_K])
{
    uvec4 q = w4[row * (w_stride >> 3) + s];
#if defined(WTYPE_F16H)
    v[0] = vec4(unpackHalf2x16(q.x), unpackHalf2x16(q.y));
    v[1] = vec4(unpackHalf2x16(q.z), unpackHalf2x16(q.w));
#else
    v[0] = f16x4(q.xy);
    v[1] = f16x4(q.zw);
#endif
}
#elif defined(WTYPE_F16S)
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#define W_STEP 8
#define W_K 2
layout(binding = 0) readonly buffer Wv { f16vec4 w4[]; };
void load_w(uint row, uint s, uint w_stride, uint w_soff, out vec4 v[W_K])
{
    uint i = row * (w_stride >> 2) + 2 * s;
    v[0] = vec4(w4[i]);
    v[1] = vec4(w4[i + 1]);
}
#elif defined(WTYPE_Q8_0) || defined(WTYPE_Q4_0)
#define W_STEP 32
#define W_K 8
layout(binding = 0) readonly buffer Wv { uvec4 w4[]; };
layout(binding = 0) readonly buffer Ws { uint w1[]; };
float w_scale(uint row, uint s, uint w_stride, uint w_soff)
{
#if defined(WTYPE_Q8_0)
    uint idx = row * (w_stride >> 5) + s;
#else
    uint idx = row * (w_stride >> 4) + s;
#endif
    vec2 d = unpackHalf2x16(w1[w_soff + (idx >> 1)]);
    return (idx & 1u) != 0u ? d.y : d.x;
}
// The raw quants of one block as floats (q8_0: -128..127; q4_0: 0..15) and W_OFFSET (the
// value that encodes 0): the weights are (q - W_OFFSET) * w_scale. Matrix-vector kernels fold
// the offset and the scale in once per block: d * (q . x - W_OFFSET * sum x).
#define W_FACTORED
#if defined(WTYPE_Q8_0)
#define W_OFFSET 0.0
#else
#define W_OFFSET 8.0
#endif
void load_wq(uint row, uint s, uint w_stride, out vec4 v[W_K])
{
#if defined(WTYPE_Q8_0)
    uint i = row * (w_stride >> 4) + 2 * s;
    uvec4 a = w4[i], b = w4[i + 1];
    v[0] = i8x4(a.x); v[1] = i8x4(a.y); v[2] = i8x4(a.z); v[3] = i8x4(a.w);
    v[4] = i8x4(b.x); v[5] = i8x4(b.y); v[6] = i8x4(b.z); v[7] = i8x4(b.w);
#else
    uvec4 q = w4[row * (w_stride >> 4) + s];
    [[unroll]] for (uint j = 0; j < 4; j++) {
        uint x = q[j];
        v[j] = vec4(uvec4(x, x >> 8, x >> 16, x >> 24) & 0xFu);
        v[4 + j] = vec4(uvec4(x >> 4, x >> 12, x >> 20, x >> 28) & 0xFu);
    }
#endif
}
void load_w(uint row, uint s, uint w_stride, uint w_soff, out vec4 v[W_K])
{
    float d = w_scale(row, s, w_stride, w_soff);
    load_wq(row, s, w_stride, v);
    [[unroll]] for (uint k = 0; k < W_K; k++) v[k] = (v[k] - W_OFFSET) * d;
}
#endif

// Steps per row (the last may be partial for f32/f16) and whole steps.
uint w_steps(uint cols) { return (cols + W_STEP - 1) / W_STEP; }
uint w_full_steps(uint cols) { return cols / W_STEP; }
