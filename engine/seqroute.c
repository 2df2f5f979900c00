/*
 * seqroute.c — how each session's experts are chosen: the bare base, fixed weights, or a router
 * of the model at its granularity — token (a row per token, decided inside every step),
 * sequence (decided once from the mean of the prompt's router inputs under the base model —
 * position 0 left out, an attention sink unlike the text — then
 * fixed: PELMo, LoraRetriever, DAM), task (fixed by the manifest: LoraHub). Parameter
 * aggregation "average" composes the chosen experts into one adapter (a virtual expert of the
 * session's slot, or of the task); "exact" reads the chosen experts' ranks in place, which is
 * their concatenation. Routing traces for `vkmoe route`.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "session.h"

static vkm_status set_fixed(vkm_session *s, const float *w_bank)
{
    vkm_model *m = s->m;
    uint32_t ids[VKM_MAX_EXPERTS], n = 0;
    float w[VKM_MAX_EXPERTS];
    for (uint32_t e = 0; e < m->bank->n_exp; e++)
        if (w_bank[e] != 0.0f) {
            ids[n] = e;
            w[n++] = w_bank[e];
        }
    if (!n && m->ffn && !m->ffn->has_base)
        return vkm_fail(m->d->err, VKM_ERR_INVALID_ARGUMENT, "%s: expert weights of all zero choose no expert, and "
                        "a mixture-of-experts file has no base FFN to run instead", m->path);
    s->row = vkm_seq_row(m, s->slot);
    s->routed = true;
    return vkm_moe_set_row(m, s->slot, ids, w, n);
}

/* Bank-order weights of a router with fixed weights (uniform, fixed). */
static void router_fixed(const vkm_model *m, const vkm_router *r, float *w_bank)
{
    memset(w_bank, 0, sizeof(float) * m->bank->n_exp);
    for (uint32_t i = 0; i < r->n_exp; i++) w_bank[r->map[i]] += r->fixed[i];
}

/* Composes the experts of the session's sequence row into its slot's virtual expert, then
 * points the row at it (weight 1), keeping the decision. Recorded and submitted here. */
static vkm_status compose_into_slot(vkm_session *se)
{
    vkm_model *m = se->m;
    const uint32_t slot = se->slot;
    vkm_bank *b = m->bank;
    const uint32_t v = b->n_exp + slot, E = b->n_exp;
    const uint64_t words = (uint64_t)b->n_sites * E;
    if (!se->dec_ids) se->dec_ids = malloc(words * 4);
    if (!se->dec_w) se->dec_w = malloc(words * 4);
    if (!se->dec_ids || !se->dec_w) return vkm_fail(m->d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    /* the routing buffers in two downloads (one per point would be a transfer each on a
     * discrete GPU), the slot's row at every point kept */
    const uint64_t all = (uint64_t)b->n_sites * m->route_rows * E;
    uint32_t *ids = malloc(all * 4);
    float *w = malloc(all * 4);
    vkm_status s = ids && w ? VKM_OK : vkm_fail(m->d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    if (s == VKM_OK) s = vkm_download(m->d, m->route_ids, ids, all * 4);
    if (s == VKM_OK) s = vkm_download(m->d, m->route_wts, w, all * 4);
    for (uint32_t p = 0; p < b->n_sites && s == VKM_OK; p++) {
        const uint64_t off = vkm_route_word(m, p, vkm_seq_row(m, slot));
        memcpy(se->dec_ids + (uint64_t)p * E, ids + off, 4ull * E);
        memcpy(se->dec_w + (uint64_t)p * E, w + off, 4ull * E);
    }
    free(ids);
    free(w);
    if (s == VKM_OK) s = vkm_rec_begin(&m->rec, m->cmd);
    for (uint32_t p = 0; p < b->n_sites && s == VKM_OK; p++) {
        const vkm_site *st = &b->sites[p];
        if (!st->used) continue;
        vkm_site_ranges sr = {st->a, st->bt, st->in, st->out};
        vkm_op_lora_compose(&m->rec, &sr, b->meta, m->route_ids, m->route_wts, p * b->n_total * 4,
                            vkm_route_word(m, p, vkm_seq_row(m, slot)), b->n_exp, v, b->rmax);
    }
    vkm_status e = vkm_rec_end(&m->rec);
    if (s == VKM_OK) s = e;
    if (s == VKM_OK) s = vkm_dev_submit_wait(m->d, m->cmd);
    float one = 1.0f;
    if (s == VKM_OK) s = vkm_moe_set_row(m, slot, &v, &one, 1);
    return s;
}

vkm_status vkm_seqroute_init(vkm_session *s, const vkm_session_params *p)
{
    vkm_model *m = s->m;
    vkm_err *err = m->d->err;
    s->mode = p->route;
    if (!m->bank) {
        if (p->route == VKM_ROUTE_ROUTER || p->route == VKM_ROUTE_FIXED)
            return vkm_fail(err, VKM_ERR_INVALID_ARGUMENT, "%s has no experts to route", m->path);
        s->mode = VKM_ROUTE_BASE;
        return VKM_OK;
    }
    s->row = vkm_empty_row(m);
    if (s->mode == VKM_ROUTE_DEFAULT) {
        s->mode = m->n_routers ? VKM_ROUTE_ROUTER : VKM_ROUTE_BASE;
        s->router = 0;
    } else {
        s->router = p->router;
    }
    switch (s->mode) {
    case VKM_ROUTE_BASE:
        if (m->ffn && !m->ffn->has_base)
            return vkm_fail(err, VKM_ERR_INVALID_ARGUMENT, "%s: a mixture-of-experts file has no base FFN to run "
                            "without experts", m->path);
        return vkm_moe_set_row(m, s->slot, NULL, NULL, 0);
    case VKM_ROUTE_FIXED:
        if (!p->expert_weights)
            return vkm_fail(err, VKM_ERR_INVALID_ARGUMENT, "VKM_ROUTE_FIXED needs expert_weights");
        for (uint32_t e = 0; e < m->bank->n_exp; e++)
            if (!isfinite(p->expert_weights[e]))
                return vkm_fail(err, VKM_ERR_INVALID_ARGUMENT, "VKM_ROUTE_FIXED: expert_weights[%u] is not a "
                                "finite number", e);
        return set_fixed(s, p->expert_weights);
    case VKM_ROUTE_ROUTER:
        break;
    default:
        return vkm_fail(err, VKM_ERR_INVALID_ARGUMENT, "unknown routing mode %d", (int)s->mode);
    }
    if (s->router >= m->n_routers)
        return vkm_fail(err, VKM_ERR_INVALID_ARGUMENT, "router %u (the model has %u)", s->router, m->n_routers);
    const vkm_router *r = m->routers[s->router];
    if (r->agg == VKM_AGG_LOGITS) { /* PELMo: the chosen experts run as rows of one batch */
        if (r->gran != VKM_GRAN_TASK && r->depth != VKM_DEPTH_MODEL)
            return vkm_fail(err, VKM_ERR_INVALID_ARGUMENT, "%s: aggregate logits chooses experts for the whole "
                            "model: router.depth must be model", r->path);
        s->logits_agg = true;
        if (r->gran == VKM_GRAN_TASK) {
            float w[VKM_MAX_EXPERTS], tot = 0.0f;
            router_fixed(m, r, w);
            uint32_t k = 0;
            for (uint32_t e = 0; e < m->bank->n_exp; e++) {
                if (w[e] < 0.0f)
                    return vkm_fail(err, VKM_ERR_INVALID_ARGUMENT, "%s: aggregate logits averages the experts' "
                                    "distributions: weight %g of expert %u is negative", r->path, (double)w[e], e);
                k += w[e] != 0.0f;
                tot += w[e];
            }
            vkm_status st = vkm_seqroute_subs(s, k); /* on failure: its slots released, n_sub 1 */
            uint32_t ids[VKM_MAX_EXPERTS], n = 0;
            for (uint32_t e = 0; e < m->bank->n_exp && st == VKM_OK; e++)
                if (w[e] != 0.0f) {
                    ids[n] = e;
                    s->sub_w[n++] = w[e] / tot; /* a mixture of distributions: weights summing to 1 */
                }
            for (uint32_t j = 0; j < n && st == VKM_OK; j++) {
                float one = 1.0f;
                s->sub_e[j] = ids[j];
                st = vkm_moe_set_row(m, s->sub_slot[j], &ids[j], &one, 1);
            }
            if (st != VKM_OK) return st;
            s->n_sub_used = n;
            s->routed = true;
            return st;
        }
        const uint32_t k = vkm_route_entries(r->top_k, r->n_exp, r->always_on >= 0);
        s->needs_routing = true;
        s->row = vkm_seq_row(m, s->slot);
        vkm_status st = vkm_seqroute_subs(s, k);
        return st == VKM_OK ? vkm_moe_set_row(m, s->slot, NULL, NULL, 0) : st;
    }
    switch (r->gran) {
    case VKM_GRAN_TOKEN:
        s->token_routed = true;
        return VKM_OK;
    case VKM_GRAN_SEQUENCE:
        s->needs_routing = true;
        s->row = vkm_seq_row(m, s->slot);
        return vkm_moe_set_row(m, s->slot, NULL, NULL, 0);
    default: { /* task: the manifest's weights */
        float w[VKM_MAX_EXPERTS];
        router_fixed(m, r, w);
        vkm_status st = set_fixed(s, w);
        if (st == VKM_OK && r->agg == VKM_AGG_PARAMETER && r->merge == VKM_MERGE_AVERAGE)
            st = compose_into_slot(s);
        return st;
    }
    }
}

void vkm_seqroute_plan(vkm_step *st, uint32_t *rows, uint32_t *group_tokens, vkm_session *const *who)
{
    uint32_t n_in_group[VKM_MAX_ROUTERS] = {0}, start[VKM_MAX_ROUTERS] = {0};
    for (uint32_t i = 0; i < st->n_tok; i++)
        if (who[i]->token_routed) n_in_group[who[i]->router]++;
    uint32_t off = 0;
    st->n_groups = 0;
    for (uint32_t r = 0; r < VKM_MAX_ROUTERS; r++) {
        start[r] = off;
        if (n_in_group[r]) st->groups[st->n_groups++] = (vkm_route_group){r, n_in_group[r], group_tokens + off};
        off += n_in_group[r];
    }
    for (uint32_t i = 0; i < st->n_tok; i++) {
        const vkm_session *s = who[i];
        if (s->token_routed) {
            rows[i] = i;
            group_tokens[start[s->router]++] = i;
        } else if (s->logits_agg && s->routed) {
            rows[i] = vkm_seq_row(s->m, st->slot[i]); /* its sub-slot's single expert */
        } else {
            rows[i] = s->row;
        }
    }
    st->route_row = rows;
}

vkm_status vkm_seqroute_prompt(vkm_session *s, const int32_t *ids, size_t n)
{
    vkm_model *m = s->m;
    const vkm_router *r = m->routers[s->router];
    uint32_t *pos = malloc(m->n_batch * 4), *slot = malloc(m->n_batch * 4);
    vkm_status st = pos && slot ? VKM_OK : vkm_fail(m->d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    if (st == VKM_OK) {
        st = vkm_rec_begin(&m->rec, m->cmd);
        vkm_moe_clear_pool(m, s->slot);
        vkm_status e = vkm_rec_end(&m->rec);
        if (st == VKM_OK) st = e;
        if (st == VKM_OK) st = vkm_dev_submit_wait(m->d, m->cmd);
    }
    /* pass 1: the base model over the prompt, router inputs summed into the slot's pool */
    for (size_t done = 0; done < n && st == VKM_OK;) {
        uint32_t T = (uint32_t)(n - done < m->n_batch ? n - done : m->n_batch);
        for (uint32_t i = 0; i < T; i++) {
            pos[i] = (uint32_t)done + i;
            slot[i] = s->slot;
        }
        vkm_step step = {.n_tok = T, .tokens = ids + done, .pos = pos, .slot = slot,
                         .pool_slot = (int32_t)s->slot, .pool_depth = r->depth, .pool_skip_first = n > 1};
        st = vkm_model_run_step(m, &step, 0);
        done += T;
    }
    /* the decision, into the sequence row */
    if (st == VKM_OK) {
        st = vkm_rec_begin(&m->rec, m->cmd);
        vkm_moe_route_pooled(m, s->router, s->slot, (uint32_t)(n > 1 ? n - 1 : n));
        vkm_status e = vkm_rec_end(&m->rec);
        if (st == VKM_OK) st = e;
        if (st == VKM_OK) st = vkm_dev_submit_wait(m->d, m->cmd);
    }
    if (st == VKM_OK && r->agg == VKM_AGG_PARAMETER && r->merge == VKM_MERGE_AVERAGE)
        st = compose_into_slot(s);
    if (st == VKM_OK && s->logits_agg) st = vkm_seqroute_sub_rows(s);
    free(pos);
    free(slot);
    if (st != VKM_OK) return st;
    s->routed = true;
    s->pos = 0; /* pass 2 rewrites the KV cache with the chosen experts */
    return VKM_OK;
}

vkm_status vkm_seqroute_subs(vkm_session *s, uint32_t k)
{
    vkm_model *m = s->m;
    if (k == 0) return vkm_fail(m->d->err, VKM_ERR_INVALID_ARGUMENT, "logits aggregation over no experts");
    if (k > m->n_batch || (k > 1 && k + 1 > m->n_out_cap)) /* a token's k rows, and its mixture's logits */
        return vkm_fail(m->d->err, VKM_ERR_LIMIT, "logits aggregation over %u experts needs steps of %u rows and "
                        "%u rows of logits (this model: n_batch %u, %u rows of logits)", k, k, k + 1, m->n_batch,
                        m->n_out_cap);
    s->sub_slot[0] = s->slot;
    s->n_sub = 1;
    for (uint32_t j = 1; j < k; j++) {
        uint32_t slot = 0;
        while (slot < m->n_seq && m->slot_used[slot]) slot++;
        if (slot == m->n_seq) {
            vkm_seqroute_release(s);
            return vkm_fail(m->d->err, VKM_ERR_LIMIT, "logits aggregation over %u experts needs %u sequence slots "
                            "(raise n_seq when loading)", k, k);
        }
        m->slot_used[slot] = true;
        s->sub_slot[s->n_sub++] = slot;
    }
    return VKM_OK;
}

void vkm_seqroute_release(vkm_session *s)
{
    for (uint32_t j = 1; j < s->n_sub; j++) s->m->slot_used[s->sub_slot[j]] = false;
    s->n_sub = 1;
}

vkm_status vkm_seqroute_sub_rows(vkm_session *s)
{
    vkm_model *m = s->m;
    const uint32_t E = m->bank->n_exp;
    uint32_t ids[VKM_MAX_EXPERTS];
    float w[VKM_MAX_EXPERTS], tot = 0;
    uint64_t off = 4ull * vkm_route_word(m, 0, vkm_seq_row(m, s->slot));
    vkm_status st = vkm_download(m->d, vkm_range_sub(m->route_ids, off, 4ull * E), ids, 4ull * E);
    if (st == VKM_OK) st = vkm_download(m->d, vkm_range_sub(m->route_wts, off, 4ull * E), w, 4ull * E);
    uint32_t n = 0;
    while (st == VKM_OK && n < E && n < s->n_sub && ids[n] != VKM_NO_EXPERT) tot += w[n++];
    for (uint32_t j = 0; j < n && st == VKM_OK; j++) {
        float one = 1.0f;
        s->sub_e[j] = ids[j];
        s->sub_w[j] = tot > 0 ? w[j] / tot : 1.0f / (float)n;
        st = vkm_moe_set_row(m, s->sub_slot[j], &ids[j], &one, 1);
    }
    s->n_sub_used = n;
    return st;
}

vkm_status vkm_session_experts(vkm_session *s, uint32_t point, uint32_t *experts, float *weights,
                               size_t cap, size_t *n)
{
    if (!s || !n) return VKM_ERR_INVALID_ARGUMENT;
    vkm_model *m = s->m;
    *n = 0;
    if (m->bank && point >= m->bank->n_sites)
        return vkm_fail(m->d->err, VKM_ERR_INVALID_ARGUMENT, "routing point %u (the model has %u)", point, m->bank->n_sites);
    if (s->logits_agg && s->routed) { /* the experts whose distributions are mixed (every point's) */
        for (uint32_t j = 0; j < s->n_sub_used; j++, (*n)++)
            if (*n < cap) {
                if (experts) experts[*n] = s->sub_e[j];
                if (weights) weights[*n] = s->sub_w[j];
            }
        return VKM_OK;
    }
    if (!m->bank || s->token_routed || !s->routed)
        return vkm_fail(m->d->err, VKM_ERR_STATE, "no sequence-level decision (token-level router, bare "
                        "base, or no prompt yet)");
    const uint32_t E = m->bank->n_exp;
    uint32_t ids[VKM_MAX_EXPERTS];
    float w[VKM_MAX_EXPERTS];
    vkm_status st = VKM_OK;
    if (s->dec_ids) { /* composed: the decision behind the composed adapter */
        memcpy(ids, s->dec_ids + (uint64_t)point * E, 4ull * E);
        memcpy(w, s->dec_w + (uint64_t)point * E, 4ull * E);
    } else {
        uint64_t off = 4ull * vkm_route_word(m, point, s->row);
        st = vkm_download(m->d, vkm_range_sub(m->route_ids, off, 4ull * E), ids, 4ull * E);
        if (st == VKM_OK) st = vkm_download(m->d, vkm_range_sub(m->route_wts, off, 4ull * E), w, 4ull * E);
    }
    for (uint32_t j = 0; j < E && st == VKM_OK && ids[j] != VKM_NO_EXPERT; j++) {
        if (*n < cap) {
            if (experts) experts[*n] = ids[j];
            if (weights) weights[*n] = w[j];
        }
        (*n)++;
    }
    return st;
}

vkm_status vkm_session_trace_routing(vkm_session *s, vkm_route_fn fn, void *user)
{
    if (!s) return VKM_ERR_INVALID_ARGUMENT;
    if (!s->m->bank && fn) return vkm_fail(s->m->d->err, VKM_ERR_STATE, "%s has no experts", s->m->path);
    s->trace = fn;
    s->trace_user = user;
    return VKM_OK;
}

vkm_status vkm_seqroute_trace(vkm_model *m, const vkm_step *st, vkm_session *const *who)
{
    bool any = false;
    for (uint32_t i = 0; i < st->n_tok && !any; i++) any = who[i]->trace != NULL;
    if (!any) return VKM_OK;
    const uint32_t E = m->bank->n_exp, P = m->bank->n_sites;
    uint64_t words = (uint64_t)P * m->route_rows * E;
    uint32_t *all_ids = malloc(words * 4), *ids = malloc((uint64_t)P * st->n_tok * E * 4);
    float *all_w = malloc(words * 4), *w = malloc((uint64_t)P * st->n_tok * E * 4);
    vkm_status s = all_ids && all_w && ids && w ? VKM_OK
                 : vkm_fail(m->d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    if (s == VKM_OK) s = vkm_download(m->d, m->route_ids, all_ids, words * 4);
    if (s == VKM_OK) s = vkm_download(m->d, m->route_wts, all_w, words * 4);
    /* each session's tokens, contiguous in the step */
    for (uint32_t i = 0; i < st->n_tok && s == VKM_OK;) {
        vkm_session *se = who[i];
        uint32_t j = i;
        while (j < st->n_tok && who[j] == se) j++;
        if (se->trace && se->logits_agg && se->routed && se->n_sub_used > 1) {
            /* logits aggregation: a token's k rows each run one expert; its routing is the
             * mixture of their distributions, the same at every point */
            const uint32_t k = se->n_sub_used, nt = (j - i) / k;
            for (uint64_t r = 0; r < (uint64_t)P * nt; r++)
                for (uint32_t e = 0; e < E; e++) {
                    ids[r * E + e] = e < k ? se->sub_e[e] : VKM_NO_EXPERT;
                    w[r * E + e] = e < k ? se->sub_w[e] : 0.0f;
                }
            se->trace(se->trace_user, st->pos[i], nt, P, E, ids, w);
        } else if (se->trace) {
            uint32_t nt = j - i;
            for (uint32_t p = 0; p < P; p++)
                for (uint32_t t = 0; t < nt; t++) {
                    uint64_t src = (uint64_t)vkm_route_word(m, p, st->route_row[i + t]);
                    const bool dec = se->dec_ids && st->route_row[i + t] == se->row; /* composed */
                    memcpy(ids + ((uint64_t)p * nt + t) * E, dec ? se->dec_ids + (uint64_t)p * E : all_ids + src, E * 4);
                    memcpy(w + ((uint64_t)p * nt + t) * E, dec ? se->dec_w + (uint64_t)p * E : all_w + src, E * 4);
                }
            se->trace(se->trace_user, st->pos[i], nt, P, E, ids, w);
        }
        i = j;
    }
    free(all_ids);
    free(all_w);
    free(ids);
    free(w);
    return s;
}
