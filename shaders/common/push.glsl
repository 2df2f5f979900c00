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

#ifdef VKM_PUSH_MATVEC_LORA
// matvec_lora: the matvec's fields, then a LoRA site whose expands run in the epilogue: vector
// t is step token tok0 + t; its shrink output t[(i * row_stride + j) * RMAX + k] (binding 3),
// Bt [rank_total][out_dim] (4), the bank's expert table from meta_off (5), the routing rows
// (6 ids, 8 weights; row of token i: list[row_list_off + i], binding 7).
layout(push_constant) uniform Push {
    uint rows, cols, row0, w_stride, x_stride, y_stride, accumulate, scale_off, x_off, y_off;
    uint tok0, out_dim, route_off, row_stride, meta_off, row_list_off;
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
    uint idx_off;    // 0xffffffff: row r of y is row r of x; else row idx[idx_off + r] of x
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

#ifdef VKM_PUSH_MATMUL
layout(push_constant) uniform Push {
    uint rows;       // rows of W in this chunk
    uint cols;
    uint row0;       // first row of this chunk (offset into y)
    uint w_stride;
    uint x_stride;
    uint y_stride;
    uint accumulate;
    uint scale_off;
    uint x_off;
    uint y_off;
    uint n_tok;      // vectors (tokens)
} pc;
#endif

#ifdef VKM_PUSH_EMBED
layout(push_constant) uniform Push {
    uint rows;       // vocabulary rows in this chunk
    uint cols;
    uint row0;
    uint w_stride;
    uint scale_off;
    uint n_tok;
    uint y_stride;
    uint y_off;
    uint tok_off;    // first token id in the step buffer
} pc;
#endif

#ifdef VKM_PUSH_ROPE
layout(push_constant) uniform Push {
    uint n_tok;
    uint n_heads;    // heads in this tensor (query or key heads)
    uint head_dim;
    uint stride;     // floats between tokens
    uint off;
    uint layout_half;// 0: interleaved pairs (2j, 2j+1); 1: rotate_half pairs (j, j + hd/2)
    float log2_theta;
    uint pos_off;    // positions in the step buffer
} pc;
#endif

#ifdef VKM_PUSH_KV
layout(push_constant) uniform Push {
    uint n_tok;
    uint kv_dim;
    uint ctx;        // positions per slot
    uint k_stride, k_off;
    uint v_stride, v_off;
    uint pos_off, slot_off;
} pc;
#endif

#ifdef VKM_PUSH_ATTN
layout(push_constant) uniform Push {
    uint n_tok;
    uint n_heads;
    uint n_kv_heads;
    uint ctx;        // positions per slot in the cache
    uint kv_dim;
    uint q_stride, q_off;
    uint o_stride, o_off;
    uint n_splits;   // key chunks of CH keys; 1: write the output directly
    float scale;
    uint pos_off, slot_off;
} pc;
#endif

#ifdef VKM_PUSH_ATTN_REDUCE
layout(push_constant) uniform Push {
    uint n_tok;
    uint n_heads;
    uint n_splits;
    uint o_stride, o_off;
} pc;
#endif

#ifdef VKM_PUSH_SAMPLE
layout(push_constant) uniform Push {
    uint n_vocab;
    uint n_rows;      // rows to sample (one workgroup each)
    uint logit_stride;
    uint param_words; // words of one row's parameter record (header + history)
} pc;
#endif

#ifdef VKM_PUSH_ROUTER
layout(push_constant) uniform Push {
    uint in_dim;      // router input length
    uint n;           // rows to route (one workgroup each)
    uint x_stride, x_off;
    uint list_off;    // 0xffffffff: input row j is x row j; else x row = list[list_off + j]
    uint out_row_off; // 0xffffffff: output row = input row; else row = list[out_row_off + j]
    uint route_off;   // first word of this routing point in the ids / weights buffers
    uint n_exp;       // experts of this router
    uint row_stride;  // entries per routing row (the bank's expert count)
    uint top_k;       // 0: dense
    uint flags;       // 1 normalise input (L2), 2 |logit| (arrow), 4 softmax, 8 sigmoid
    float inv_temp;
    int always_on;    // router expert index, or -1
    uint map_off;     // router expert -> bank expert, in the list buffer
    float x_scale;    // multiplies the input (1 / count for pooled sums)
    uint n_copies;    // the row is written to this many routing points...
    uint copy_stride; // ...this many words apart (layer / model depth decisions)
    uint mat_stride;  // workgroup z = routing point z of this dispatch: its matrix this many words
                      // further, its rows n_copies * copy_stride words further
} pc;
#endif

#ifdef VKM_PUSH_LORA
layout(push_constant) uniform Push {
    uint n_tok;
    uint in_dim, out_dim;
    uint x_stride, x_off;   // shrink input / expand output (y)
    uint y_stride, y_off;
    uint route_off;         // routing point in ids / weights
    uint row_stride;        // entries per routing row
    uint meta_off;          // this site's expert table (4 words per expert)
    uint rank_total;        // ranks of the site's A / Bt rows
    uint row_list_off;      // routing row of token i: list[row_list_off + i]
} pc;
#endif

// The members the fused sites' blocks share: each site's expert table (meta_off), routing
// point (route_off) and region of t in floats (t_off); then the tokens, the input (length,
// stride, offset), entries per routing row, the routing rows' list offset and the sites.
#define VKM_SITES_HEAD uint meta_off[3]; uint route_off[3]; uint t_off[3];
#define VKM_SITES_TAIL \
    uint n_tok; uint in_dim; uint x_stride, x_off; uint row_stride; uint row_list_off; uint n_sites;

#ifdef VKM_PUSH_LORA_SITES
// lora.comp LORA_SITES: the shrinks (or the expands) of up to 3 sites reading the same input
// in one dispatch
layout(push_constant) uniform Push {
    VKM_SITES_HEAD
    uint out_dim[3];        // expand: each site's output length, row stride and offset in y
    uint y_stride[3];
    uint y_off[3];
    uint g0[3];             // expand: each site's first workgroup
    VKM_SITES_TAIL
} pc;
#endif

#ifdef VKM_PUSH_LORA_ROUTE
// lora.comp LORA_ROUTE: the shrinks of up to 3 sites reading the same input, each workgroup
// routing its token first (the router's fields as in VKM_PUSH_ROUTER)
layout(push_constant) uniform Push {
    VKM_SITES_HEAD
    uint mat_off[3];        // each site's router matrix (words into its binding)
    VKM_SITES_TAIL
    uint n_exp;
    uint top_k;
    uint flags;
    float inv_temp;
    int always_on;
    uint map_off;
    uint n_ent;             // workgroups per (site, token): the entries a decision can fill
} pc;
#endif

#ifdef VKM_PUSH_POOL
layout(push_constant) uniform Push {
    uint n_tok;             // tokens to add (rows 0..n_tok-1 of x)
    uint dim;
    uint x_stride, x_off;
    uint dst_off;           // first float of the pooled sum
} pc;
#endif

#ifdef VKM_PUSH_ARROW
layout(push_constant) uniform Push {
    uint in_dim, out_dim;
    uint meta_off;    // the site's expert table
    uint n_iter;      // power iterations (in rank space)
    uint n_exp;       // router experts: one workgroup each
    uint map_off;     // router expert -> bank expert (list buffer)
} pc;
#endif

#ifdef VKM_PUSH_COMPOSE
layout(push_constant) uniform Push {
    uint in_dim, out_dim;
    uint meta_off;     // the site's expert table
    uint route_off;    // the routing row whose experts are composed
    uint row_stride;
    uint dst;          // the virtual expert receiving the composition
} pc;
#endif

#ifdef VKM_PUSH_MIX
layout(push_constant) uniform Push {
    uint n_vocab;
    uint n_mix;       // mixed rows (one workgroup each)
    uint table_off;   // first record in the table buffer
    uint record;      // words per record: [dst row, k, (src row, weight bits) x k ...]
} pc;
#endif

#ifdef VKM_PUSH_MOE
// Expert-selected matrix products (FFN experts): tokens t < n_tok whose routing row holds
// expert `expert` at entry j read x (per token, or per (token, entry)) and write y per
// (token, entry): y[(t * row_stride + j) * y_stride + row0 + r].
layout(push_constant) uniform Push {
    uint rows, cols, row0, w_stride, scale_off;
    uint x_stride, x_off, y_stride, y_off;
    uint x_per_entry;   // 1: x row (t * row_stride + j); 0: x row t
    uint n_tok, t0;     // tokens; first token of this dispatch (matvec)
    uint expert;
    uint route_off, row_stride, row_list_off; // routing rows (list: routing row of each token)
    uint n_grp;         // matmul: experts in the group buffer [count][offset][items] (route_group)
    float scale;        // y = scale * W x
    uint w_off, w_cstride; // WS: W[row][col] = w[w_off + row * w_stride + col * w_cstride] (f32)
} pc;
#endif

#ifdef VKM_PUSH_GROUP
layout(push_constant) uniform Push {
    uint n_tok, n_exp;
    uint route_off, row_stride, row_list_off;
} pc;
#endif

#ifdef VKM_PUSH_COMBINE
layout(push_constant) uniform Push {
    uint n_tok, dim;
    uint y_stride, y_off;      // y[t] (+)= sum_j w_tj d[t][j]
    uint d_off;                // d[(t * row_stride + j) * dim + c]
    uint route_off, row_stride, row_list_off;
    uint accumulate;
} pc;
#endif
