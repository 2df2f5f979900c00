/*
 * forward.c — one step of the LLaMA forward pass recorded into one command buffer: the step's
 * inputs (token ids, positions, KV slots, rows that want logits) go into a host-visible buffer
 * read by the kernels, so nothing inside the step waits on the host; then embedding, per
 * layer RMSNorm -> Q/K/V -> RoPE -> KV store -> attention -> output projection (+= residual)
 * -> RMSNorm -> SwiGLU FFN (+= residual), final norm of the wanted rows and the LM head.
 * Sampling (sample.comp) can be appended to the same command buffer.
 */
#include <string.h>

#include "model.h"
#include "ops_moe.h"
#include "push.h"

static vkm_status check_step(const vkm_model *m, const vkm_step *s)
{
    vkm_err *e = m->d->err;
    if (s->n_tok == 0 || s->n_tok > m->n_batch)
        return vkm_fail(e, VKM_ERR_INVALID_ARGUMENT, "a step of %u tokens (1..%u allowed)", s->n_tok, m->n_batch);
    if (s->n_out > m->n_out_cap)
        return vkm_fail(e, VKM_ERR_LIMIT, "a step wants %u rows of logits (at most %u)", s->n_out, m->n_out_cap);
    for (uint32_t i = 0; i < s->n_tok; i++) {
        if (s->tokens[i] < 0 || (uint32_t)s->tokens[i] >= m->hp.n_vocab)
            return vkm_fail(e, VKM_ERR_INVALID_ARGUMENT, "token id %d outside the vocabulary (%u)",
                            s->tokens[i], m->hp.n_vocab);
        if (s->pos[i] >= m->n_ctx)
            return vkm_fail(e, VKM_ERR_LIMIT, "position %u beyond the context (%u)", s->pos[i], m->n_ctx);
        if (s->slot[i] >= m->n_seq)
            return vkm_fail(e, VKM_ERR_INVALID_ARGUMENT, "KV slot %u (model has %u)", s->slot[i], m->n_seq);
    }
    for (uint32_t j = 0; j < s->n_out; j++)
        if (s->out_rows[j] >= s->n_tok)
            return vkm_fail(e, VKM_ERR_INVALID_ARGUMENT, "output row %u of a %u-token step", s->out_rows[j], s->n_tok);
    return VKM_OK;
}

/* Per-step context of the MoErging parts of the forward pass. */
typedef struct moe_ctx {
    vkm_model *m;
    const vkm_step *s;
    bool lora;                    /* some token's row may hold experts                           */
    uint32_t group_off[VKM_MAX_ROUTERS]; /* where each group's token list starts (step buffer)   */
    bool fuse;                    /* decoding, one token router of module depth for every token:
                                     its decisions may be made inside the LoRA shrinks           */
    /* the LoRA sites of the base matrices being recorded (adapt_before .. adapt_after) */
    vkm_lora_call pend[VKM_LORA_MAX_SITES];
    uint32_t pend_mod[VKM_LORA_MAX_SITES], n_pend;
    bool shrunk;                  /* their shrinks are recorded: only the expands are left       */
    bool in_matvec;               /* their expands run in the matrix products' epilogue          */
} moe_ctx;

/* Routing points p, p + 1, ... whose router matrices lie back to back in one buffer (at most n). */
static uint32_t router_run(const vkm_router *r, uint32_t p, uint32_t n)
{
    const vkm_range *mat = &r->r[p];
    uint32_t run = 1;
    for (; run < n; run++) {
        const vkm_range *nx = &r->r[p + run];
        if (nx->buf != mat->buf || nx->size != mat->size || nx->off != mat->off + run * mat->size) break;
    }
    return run;
}

/* Group g's router deciding points p .. p + run - 1 (back to back) for its tokens. */
static vkm_router_call router_call(const moe_ctx *c, uint32_t g, uint32_t p, uint32_t run, uint32_t copies, vkm_act x,
                                   uint32_t in)
{
    vkm_model *m = c->m;
    const vkm_route_group *grp = &c->s->groups[g];
    const vkm_router *r = m->routers[grp->router];
    const vkm_range *mat = &r->r[p];
    return (vkm_router_call){
        .x = x, .in_dim = in, .n = grp->n, .list_off = c->group_off[g], .out_row_off = 0xffffffffu,
        .matrix = vkm_range_sub(*mat, 0, run * mat->size), .list = vkm_model_step_range(m),
        .ids = m->route_ids, .wts = m->route_wts, .route_off = vkm_route_word(m, p, 0),
        .row_stride = m->bank->n_exp, .n_copies = copies, .copy_stride = m->route_rows * m->bank->n_exp,
        .n_sites = run, .mat_stride = (uint32_t)(mat->size / 4), .n_exp = r->n_exp, .top_k = r->top_k,
        .flags = r->flags, .map_off = vkm_step_maps(m) + 64 * grp->router, .inv_temp = 1.0f / r->temperature,
        .x_scale = 1.0f, .always_on = r->always_on};
}

/* Token-level routers of depth d at routing points p .. p + n_points - 1 (module depth: points
 * sharing the input x; any other depth: one point whose decision is copied to `copies` points).
 * Points whose matrices lie back to back in one buffer are decided by one dispatch. */
static void route_tokens(moe_ctx *c, vkm_depth d, uint32_t p, uint32_t n_points, uint32_t copies, vkm_act x,
                         uint32_t in)
{
    vkm_model *m = c->m;
    for (uint32_t g = 0; g < c->s->n_groups; g++) {
        const vkm_route_group *grp = &c->s->groups[g];
        const vkm_router *r = m->routers[grp->router];
        if (r->depth != d || !grp->n) continue;
        for (uint32_t i = 0, run; i < n_points; i += run) {
            run = router_run(r, p + i, n_points - i);
            vkm_router_call rc = router_call(c, g, p + i, run, copies, x, in);
            vkm_op_router(&m->rec, &rc);
        }
    }
}

/* The LoRA call of site p (input x, output y). */
static vkm_lora_call site_call(const moe_ctx *c, uint32_t p, vkm_act x, vkm_act y)
{
    vkm_model *m = c->m;
    const vkm_bank *b = m->bank;
    const vkm_site *site = &b->sites[p];
    return (vkm_lora_call){
        .x = x, .y = y, .n_tok = c->s->n_tok, .in_dim = site->in, .out_dim = site->out, .a = site->a,
        .bt = site->bt, .meta = b->meta, .meta_off = p * b->n_total * 4, .rank_total = site->rank_total,
        .rmax = b->rmax, .ids = m->route_ids, .wts = m->route_wts, .list = vkm_model_step_range(m),
        .t = m->lora_t, .route_off = vkm_route_word(m, p, 0), .row_stride = b->n_exp,
        .row_list_off = vkm_step_region(m, VKM_STEP_ROW), .meta_host = b->meta_host, .n_total = b->n_total,
        .chunk = m->lora_chunk, .groups = m->lora_groups, .d = m->lora_d};
}

static void pool_rows(moe_ctx *c, vkm_act x, uint32_t dim, uint32_t p)
{
    vkm_model *m = c->m;
    uint32_t n = c->s->n_tok;
    if (c->s->pool_skip_first && c->s->pos[0] == 0) { /* rows are one sequence's, in order */
        x.off += x.stride;
        n--;
    }
    if (n) vkm_op_pool(&m->rec, x, n, dim, m->pool, (uint32_t)c->s->pool_slot * m->pool_len + m->pool_off[p]);
}

/* With c->fuse: the routing of the pending sites (points pts) made inside their shrinks, one
 * dispatch; false where it cannot be. */
static bool route_shrink(moe_ctx *c, const uint32_t *pts, vkm_act x)
{
    const uint32_t n = c->n_pend;
    const vkm_router *r = c->m->routers[c->s->groups[0].router];
    vkm_router_call rc = router_call(c, 0, pts[0], 1, 1, x, c->m->bank->sites[pts[0]].in);
    rc.list_off = 0xffffffffu; /* the group's tokens are the step's, in order */
    vkm_range mats[VKM_LORA_MAX_SITES];
    for (uint32_t i = 0; i < n; i++) mats[i] = r->r[pts[i]];
    return vkm_op_lora_route_shrink(&c->m->rec, c->pend, n, &rc, mats) != 0;
}

/* Before the base matrices of the sites (layer, mods[i]) that read the same input x (outputs
 * ys[i]): their routing at module depth and pooling; decoding, their shrinks too (with c->fuse
 * routed inside them, one dispatch), so that each expand runs in its matrix product's epilogue
 * (site_linear). What is left for after the products, adapt_after records. */
static void adapt_before(moe_ctx *c, uint32_t layer, const uint32_t *mods, uint32_t n, vkm_act x, const vkm_act *ys)
{
    vkm_model *m = c->m;
    const vkm_bank *b = m->bank;
    c->n_pend = 0;
    c->shrunk = c->in_matvec = false;
    if (!b) return;
    uint32_t pts[VKM_LORA_MAX_SITES], np = 0;
    bool consecutive = true;
    for (uint32_t i = 0; i < n; i++) {
        const uint32_t p = vkm_site_index(layer, mods[i]);
        if (!b->sites[p].used) continue;
        consecutive &= !np || p == pts[0] + np;
        pts[np++] = p;
        if (!c->lora) continue;
        c->pend[c->n_pend] = site_call(c, p, x, ys[i]);
        c->pend_mod[c->n_pend++] = mods[i];
    }
    if (!np) return;
    const uint32_t T = c->s->n_tok, in = b->sites[pts[0]].in;
    const bool epilogue = vkm_op_linear_lora_ok(m->d, T) && !m->separate_expands;
    if (c->n_pend == np && c->fuse && route_shrink(c, pts, x)) {
        c->shrunk = true;
        c->in_matvec = epilogue;
        return;
    }
    if (consecutive) route_tokens(c, VKM_DEPTH_MODULE, pts[0], np, 1, x, in); /* back-to-back matrices: one dispatch */
    else
        for (uint32_t i = 0; i < np; i++) route_tokens(c, VKM_DEPTH_MODULE, pts[i], 1, 1, x, in);
    if (c->s->pool_slot >= 0 && c->s->pool_depth == VKM_DEPTH_MODULE)
        for (uint32_t i = 0; i < np; i++) pool_rows(c, x, in, pts[i]);
    if (c->n_pend && epilogue) c->shrunk = c->in_matvec = vkm_op_lora_shrink(&m->rec, c->pend, c->n_pend) != 0;
}

/* y (+)= W x for the base matrix of module mod: with its site's expand in the epilogue where
 * adapt_before shrank it so. */
static void site_linear(moe_ctx *c, uint32_t mod, const vkm_tensor *w, vkm_act x, vkm_act y, bool acc)
{
    for (uint32_t i = 0; c->in_matvec && i < c->n_pend; i++)
        if (c->pend_mod[i] == mod) {
            vkm_op_linear_lora(&c->m->rec, w, c->pend, i, c->n_pend, acc);
            return;
        }
    vkm_op_linear(&c->m->rec, w, x, y, c->s->n_tok, acc);
}

/* After the base matrices: the pending sites' expands (shrunk ahead), or their shrinks and
 * expands (decoding: each in one dispatch for the sites together). */
static void adapt_after(moe_ctx *c)
{
    if (!c->n_pend || c->in_matvec) return;
    if (c->shrunk) vkm_op_lora_sites_expand(&c->m->rec, c->pend, c->n_pend);
    else vkm_op_lora_sites(&c->m->rec, c->pend, c->n_pend);
}

/* The base matrix of a module with its site's LoRA experts. */
static void adapted_linear(moe_ctx *c, uint32_t layer, uint32_t mod, const vkm_tensor *w, vkm_act x, vkm_act y,
                           bool acc)
{
    adapt_before(c, layer, &mod, 1, x, &y);
    site_linear(c, mod, w, x, y, acc);
    adapt_after(c);
}

/* ---- FFN experts (ffn.h) ------------------------------------------------------------------ */
static vkm_route_ref route_ref(const vkm_model *m, uint32_t p)
{
    return (vkm_route_ref){m->route_ids, m->route_wts, vkm_model_step_range(m), vkm_route_word(m, p, 0),
                           m->bank->n_exp, vkm_step_region(m, VKM_STEP_ROW), m->ffn->n_slots};
}

/* Token routers and sequence pooling at a mixed matrix's input (module depth), or at the FFN
 * input for the whole FFN (layer depth). */
static void ffn_route(moe_ctx *c, uint32_t p, vkm_depth d, vkm_act x, uint32_t in)
{
    route_tokens(c, d, p, 1, d == VKM_DEPTH_MODULE ? 1 : 3, x, in);
    if (c->s->pool_slot >= 0 && c->s->pool_depth == d) pool_rows(c, x, in, p);
}

/* y (+)= sum_j w_j W_{e_j} x per token: every expert's product on its tokens into the d scratch,
 * then the routing weights combine them. */
static void ffn_mixture(moe_ctx *c, uint32_t layer, uint32_t mod, vkm_act x, vkm_act y, bool accumulate)
{
    vkm_model *m = c->m;
    const vkm_ffn *f = m->ffn;
    const uint32_t p = vkm_site_index(layer, mod), T = c->s->n_tok;
    const vkm_route_ref rt = route_ref(m, p);
    if (T > VKM_MOE_MATVEC_MAX_T) vkm_op_route_group(&m->rec, &rt, T, f->groups);
    const uint32_t out = vkm_ffn_w(f, layer, 0, mod)->rows;
    for (uint32_t e = 0; e < f->n_slots; e++)
        vkm_op_moe_linear(&m->rec, vkm_ffn_w(f, layer, e, mod), e, x, false, (vkm_act){f->d, 0, out}, T, &rt, f->groups, 1.0f);
    vkm_op_moe_combine(&m->rec, f->d, out, y, T, &rt, accumulate);
}

/* Whether q, k or v is the FFN experts' mixture (attention mixing), not the base's matrix. */
static bool attn_mixed(const moe_ctx *c, uint32_t mod) { return c->m->ffn && vkm_ffn_mixed(c->m->ffn, mod); }

/* q, k or v: the base's matrix (its LoRA experts pending from adapt_before), or the experts'
 * mixture with a decision of its own (routers of layer or module depth decide there). */
static void attn_linear(moe_ctx *c, uint32_t layer, uint32_t mod, const vkm_tensor *w, vkm_act x, vkm_act y)
{
    vkm_model *m = c->m;
    if (!attn_mixed(c, mod)) {
        site_linear(c, mod, w, x, y, false);
        return;
    }
    const uint32_t p = vkm_site_index(layer, mod);
    route_tokens(c, VKM_DEPTH_LAYER, p, 1, 1, x, m->hp.dim);
    route_tokens(c, VKM_DEPTH_MODULE, p, 1, 1, x, m->hp.dim);
    if (c->s->pool_slot >= 0 && c->s->pool_depth != VKM_DEPTH_MODEL) pool_rows(c, x, m->hp.dim, p);
    ffn_mixture(c, layer, mod, x, y, false);
}

/* The FFN block of layer l on the normed input XN, added into X. Standard mixing: each token
 * runs its chosen experts' whole FFNs, y = sum_j w_j down_j(silu(gate_j x) * up_j x);
 * fine-grained: gate, up and down are three separately routed mixtures. */
static void ffn_block(moe_ctx *c, uint32_t l, vkm_act XN, vkm_act X)
{
    vkm_model *m = c->m;
    const vkm_ffn *f = m->ffn;
    vkm_rec *r = &m->rec;
    const uint32_t T = c->s->n_tok, F = m->hp.ffn_dim, D = m->hp.dim, E = f->n_exp, S = f->n_slots;
    vkm_act G = {m->a.gate, 0, F}, U = {m->a.up, 0, F};
    if (f->fine) {
        ffn_route(c, vkm_site_index(l, VKM_MOD_GATE), VKM_DEPTH_MODULE, XN, D);
        ffn_mixture(c, l, VKM_MOD_GATE, XN, G, false);
        ffn_route(c, vkm_site_index(l, VKM_MOD_UP), VKM_DEPTH_MODULE, XN, D);
        ffn_mixture(c, l, VKM_MOD_UP, XN, U, false);
        vkm_op_eltwise(r, VKM_ELT_SILU_MUL, G, U, G, T * F);
        ffn_route(c, vkm_site_index(l, VKM_MOD_DOWN), VKM_DEPTH_MODULE, G, F);
        ffn_mixture(c, l, VKM_MOD_DOWN, G, X, true);
        return;
    }
    const uint32_t p = vkm_site_index(l, VKM_MOD_GATE);
    ffn_route(c, p, VKM_DEPTH_LAYER, XN, D);
    const vkm_route_ref rt = route_ref(m, p);
    if (T > VKM_MOE_MATVEC_MAX_T) vkm_op_route_group(r, &rt, T, f->groups);
    /* items (t, j): gate and up outputs [T][E][F], then down per item [T][E][D] */
    vkm_act GI = {f->g, 0, F}, UI = {f->u, 0, F}, DI = {f->d, 0, D};
    for (uint32_t e = 0; e < S; e++) {
        vkm_op_moe_linear(r, vkm_ffn_w(f, l, e, VKM_MOD_GATE), e, XN, false, GI, T, &rt, f->groups, 1.0f);
        vkm_op_moe_linear(r, vkm_ffn_w(f, l, e, VKM_MOD_UP), e, XN, false, UI, T, &rt, f->groups, 1.0f);
    }
    vkm_op_eltwise(r, VKM_ELT_SILU_MUL, GI, UI, GI, T * E * F);
    for (uint32_t e = 0; e < S; e++)
        vkm_op_moe_linear(r, vkm_ffn_w(f, l, e, VKM_MOD_DOWN), e, GI, true, DI, T, &rt, f->groups, 1.0f);
    vkm_op_moe_combine(r, f->d, D, X, T, &rt, true);
}

vkm_status vkm_forward_record(vkm_model *m, const vkm_step *s)
{
    vkm_status st = check_step(m, s);
    if (st != VKM_OK) return st;
    const vkm_hparams *hp = &m->hp;
    const uint32_t T = s->n_tok, D = hp->dim, hd = hp->head_dim;
    const uint32_t qd = hp->n_heads * hd, kvd = hp->n_kv_heads * hd, F = hp->ffn_dim;

    /* inputs of the step */
    uint32_t *in = m->step_buf.map;
    vkm_step_buf sb = vkm_model_step_buf(m);
    uint32_t max_keys = 0;
    for (uint32_t i = 0; i < T; i++) {
        in[sb.tok_off + i] = (uint32_t)s->tokens[i];
        in[sb.pos_off + i] = s->pos[i];
        in[sb.slot_off + i] = s->slot[i];
        if (s->pos[i] + 1 > max_keys) max_keys = s->pos[i] + 1;
    }
    const uint32_t out_off = vkm_model_out_off(m);
    for (uint32_t j = 0; j < s->n_out; j++) in[out_off + j] = s->out_rows[j];
    moe_ctx mc = {.m = m, .s = s};
    if (m->bank) {
        const uint32_t ro = vkm_step_region(m, VKM_STEP_ROW), empty = vkm_empty_row(m);
        for (uint32_t i = 0; i < T; i++) {
            in[ro + i] = s->route_row ? s->route_row[i] : empty;
            mc.lora |= in[ro + i] != empty;
        }
        uint32_t lo = vkm_step_region(m, VKM_STEP_LIST);
        for (uint32_t g = 0; g < s->n_groups; g++) {
            if (s->groups[g].router >= m->n_routers || lo + s->groups[g].n > vkm_step_region(m, VKM_STEP_LIST) + T)
                return vkm_fail(m->d->err, VKM_ERR_INVALID_ARGUMENT, "a step's routing groups do not fit its tokens");
            mc.group_off[g] = lo;
            for (uint32_t k = 0; k < s->groups[g].n; k++) in[lo++] = s->groups[g].tokens[k];
        }
        /* every token routed by one token router of module depth, its own row: the routing may
         * run inside the shrinks (decoding) */
        mc.fuse = mc.lora && !m->ffn && !m->separate_routers && s->n_groups == 1 && s->groups[0].n == T &&
                  T <= VKM_MOE_MATVEC_MAX_T && s->pool_slot < 0 && s->route_row &&
                  m->routers[s->groups[0].router]->depth == VKM_DEPTH_MODULE;
        for (uint32_t i = 0; i < T && mc.fuse; i++) mc.fuse = s->groups[0].tokens[i] == i && s->route_row[i] == i;
    } else if (s->route_row || s->n_groups || s->pool_slot >= 0) {
        return vkm_fail(m->d->err, VKM_ERR_STATE, "routing asked of a model without experts");
    }

    vkm_rec *r = &m->rec;
    const vkm_acts *a = &m->a;
    vkm_act X = {a->x, 0, D}, XN = {a->xn, 0, D}, Q = {a->q, 0, qd}, K = {a->k, 0, kvd};
    vkm_act V = {a->v, 0, kvd}, ATT = {a->att, 0, qd}, G = {a->gate, 0, F}, U = {a->up, 0, F};
    const bool half = hp->rope_layout == VKM_ROPE_HALF;
    const vkm_attn_shape shape = {hp->n_heads, hp->n_kv_heads, hd, m->n_ctx};

    vkm_op_embed(r, &m->tok_embd, &sb, X, T);
    const uint32_t n_sites = m->bank ? m->bank->n_sites : 0;
    for (uint32_t l = 0; l < hp->n_layers; l++) {
        const vkm_layer *ly = &m->layers[l];
        vkm_op_rmsnorm(r, X, ly->attn_norm, XN, D, T, hp->norm_eps);
        if (m->bank) {
            if (!m->ffn) route_tokens(&mc, VKM_DEPTH_LAYER, vkm_site_index(l, 0), 1, VKM_N_MODULES, XN, D);
            if (l == 0) route_tokens(&mc, VKM_DEPTH_MODEL, 0, 1, n_sites, XN, D);
            if (s->pool_slot >= 0 && s->pool_depth == VKM_DEPTH_LAYER && !m->ffn) pool_rows(&mc, XN, D, vkm_site_index(l, 0));
            /* the sequence feature of model depth: the last layer's normed input */
            if (s->pool_slot >= 0 && s->pool_depth == VKM_DEPTH_MODEL && l + 1 == hp->n_layers) pool_rows(&mc, XN, D, 0);
        }
        { /* q, k, v: the LoRA experts of those that are the base's, together */
            const vkm_tensor *w3[3] = {&ly->wq, &ly->wk, &ly->wv};
            const vkm_act y3[3] = {Q, K, V};
            uint32_t mods[3], n = 0;
            vkm_act ys[3];
            for (uint32_t i = 0; i < 3; i++)
                if (!attn_mixed(&mc, VKM_MOD_Q + i)) {
                    mods[n] = VKM_MOD_Q + i;
                    ys[n++] = y3[i];
                }
            adapt_before(&mc, l, mods, n, XN, ys);
            for (uint32_t i = 0; i < 3; i++) attn_linear(&mc, l, VKM_MOD_Q + i, w3[i], XN, y3[i]);
            adapt_after(&mc);
        }
        vkm_op_rope(r, Q, &sb, T, hp->n_heads, hd, half, hp->rope_theta);
        vkm_op_rope(r, K, &sb, T, hp->n_kv_heads, hd, half, hp->rope_theta);
        vkm_op_kv_store(r, K, V, m->k_cache[l], m->v_cache[l], &sb, T, kvd, m->n_ctx);
        vkm_op_attention(r, Q, m->k_cache[l], m->v_cache[l], ATT, a->partials, &sb, T, max_keys, &shape);
        adapted_linear(&mc, l, VKM_MOD_O, &ly->wo, ATT, X, true);
        vkm_op_rmsnorm(r, X, ly->ffn_norm, XN, D, T, hp->norm_eps);
        if (m->ffn) {
            ffn_block(&mc, l, XN, X);
            continue;
        }
        const uint32_t gu[2] = {VKM_MOD_GATE, VKM_MOD_UP};
        const vkm_act gu_y[2] = {G, U};
        adapt_before(&mc, l, gu, 2, XN, gu_y);
        site_linear(&mc, VKM_MOD_GATE, &ly->w_gate, XN, G, false);
        site_linear(&mc, VKM_MOD_UP, &ly->w_up, XN, U, false);
        adapt_after(&mc);
        vkm_op_eltwise(r, VKM_ELT_SILU_MUL, G, U, G, T * F);
        adapted_linear(&mc, l, VKM_MOD_DOWN, &ly->w_down, G, X, true);
    }

    if (s->n_out) {
        vkm_act XO = {a->xo, 0, D}, LG = {a->logits, 0, hp->n_vocab};
        vkm_op_rmsnorm_rows(r, X, m->output_norm, XO, D, s->n_out, hp->norm_eps, &sb.r, out_off);
        vkm_op_linear(r, &m->output, XO, LG, s->n_out, false);
    }
    if (s->n_mix) { /* logits aggregation: mixtures of expert rows */
        uint32_t spec[1] = {vkm_ops_reduce_wg(m->d)};
        vkm_pipe *p = vkm_ops_pipe(r, VKM_SPV_mix, spec, 1);
        if (p) {
            vkm_push_mix pc = {hp->n_vocab, s->n_mix, vkm_step_mix(m), VKM_MIX_RECORD};
            vkm_range b[2] = {a->logits, vkm_model_step_range(m)};
            vkm_rec_dispatch_n(r, p, b, 2, &pc, sizeof pc, s->n_mix);
        }
    }
    return r->status;
}

void vkm_sample_record(vkm_model *m, uint32_t n_rows)
{
    vkm_rec *r = &m->rec;
    if (!n_rows) return;
    uint32_t spec[1] = {vkm_ops_reduce_wg(m->d)};
    vkm_pipe *p = vkm_ops_pipe(r, VKM_SPV_sample, spec, 1);
    if (!p) return;
    vkm_push_sample pc = {m->hp.n_vocab, n_rows, m->hp.n_vocab, VKM_SAMPLE_WORDS};
    vkm_range b[4] = {m->a.logits, m->a.scratch,
                      {m->samp_buf.buf, 0, m->samp_buf.size, m->samp_buf.map},
                      {m->ids_buf.buf, 0, m->ids_buf.size, m->ids_buf.map}};
    vkm_rec_dispatch_n(r, p, b, 4, &pc, sizeof pc, n_rows);
}
