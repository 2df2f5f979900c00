// push.glsl — the push-constant layouts of every kernel family, mirrored on the host by the C
// structs in engine/push.h (same order, 4-byte members; sizes checked there).

#ifdef VKM_PUSH_COPY
layout(push_constant) uniform Push {
    uint n;          // uvec4 elements to copy
} pc;
#endif

#ifdef VKM_PUSH_MATVEC
layout(push_constant) uniform Push {
    uint rows;       // rows in this chunk
    uint cols;
    uint row0;       // first row of this chunk (offset into y)
    uint w_stride;   // row stride of W: elements (f32/f16), quant bytes (q8_0/q4_0)
    uint x_stride;   // floats between vectors of x
    uint y_stride;   // floats between vectors of y
    uint accumulate; // 1: y += W x, 0: y = W x
    uint scale_off;  // quantized: word offset of the scales in W's binding
    uint x_off;      // first float of x
    uint y_off;      // first float of y
} pc;
#endif

#ifdef VKM_PUSH_NORM
layout(push_constant) uniform Push {
    uint n;          // row length
    uint rows;
    uint x_stride;
    uint y_stride;
    float eps;
    uint x_off;
    uint y_off;
} pc;
#endif

#ifdef VKM_PUSH_SOFTMAX
layout(push_constant) uniform Push {
    uint n;
    uint rows;
    uint stride;
    float scale;     // softmax(x * scale)
} pc;
#endif

#ifdef VKM_PUSH_ELTWISE
layout(push_constant) uniform Push {
    uint n;          // elements
    uint a_off, b_off, y_off;
} pc;
#endif
