// merge_push.glsl — the push-constant layouts of the merge kernels (merge.comp, merge_reduce.comp,
// select.comp, lora_merge.comp), mirrored on the host by engine/merge_push.h (same order,
// 4-byte members; sizes checked there). Arrays come first: the pipeline reflection sizes a block
// by its last member, which must be a scalar.

#ifdef VKM_PUSH_MERGE
layout(push_constant) uniform Push {
    uint off[16];    // word offset of each input's slot in the slab
    uint n;          // elements in this chunk
    uint elem0;      // index of the chunk's first element in the whole tensor
} pc;
#endif

#ifdef VKM_PUSH_REDUCE
layout(push_constant) uniform Push {
    uint off[16];    // word offset of each input's slot in the slab
    uint n;          // elements in this chunk
    uint part_off;   // first float of this chunk's partial sums: [workgroup][pair]
} pc;
#endif

#ifdef VKM_PUSH_SELECT
layout(push_constant) uniform Push {
    uint off[16];    // word offset of each input's slot in the slab (hist)
    uint n;          // elements in this chunk (hist)
    uint elem0;      // index of the chunk's first element (hist)
    uint pass;       // 0..7: key bits [63 - 8 pass, 56 - 8 pass] are narrowed
    uint n_slots;    // slots handled: [slot0, slot0 + n_slots)
    uint slot0;
    uint cap;        // candidates each slot's list holds (bracket, cand)
} pc;
#endif

#ifdef VKM_PUSH_LORA_MERGE
layout(push_constant) uniform Push {
    uint rows;       // rows of W in this chunk
    uint cols;
    uint row0;       // first row of the chunk in W
    uint w_stride;   // elements (f32/f16) or quant bytes (q8_0: cols, q4_0: cols / 2) per row
    uint scale_off;  // quantized: word offset of the scales in the chunk's binding
    uint n_terms;
    uint units;      // work units in this chunk (see lora_merge.comp)
} pc;
#endif
