/*
 * session.c — sequences over a model: each session owns a KV-cache slot, its position, its
 * sampler settings and the recent tokens the repetition penalty looks at. Prompt chunks,
 * decode steps (one session or a batch of several in one command buffer), scoring with all
 * logits, and generation with a streaming callback.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "session.h"

vkm_sampler_params vkm_sampler_default_params(void)
{
    vkm_sampler_params p = {0.8f, 40, 0.95f, 0.05f, 1.0f, 64, 0};
    return p;
}

vkm_session_params vkm_session_default_params(void)
{
    vkm_session_params p;
    memset(&p, 0, sizeof p);
    p.sampling = vkm_sampler_default_params();
    return p;
}

vkm_status vkm_session_create(vkm_model *m, const vkm_session_params *p, vkm_session **out)
{
    if (!out) return VKM_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!m) return VKM_ERR_INVALID_ARGUMENT;
    vkm_session_params def = vkm_session_default_params();
    if (!p) p = &def;
    uint32_t slot = 0;
    while (slot < m->n_seq && m->slot_used[slot]) slot++;
    if (slot == m->n_seq)
        return vkm_fail(m->d->err, VKM_ERR_LIMIT, "all %u sequence slots of the model are in use "
                        "(raise n_seq when loading)", m->n_seq);
    vkm_session *s = calloc(1, sizeof *s);
    if (!s) return vkm_fail(m->d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    s->m = m;
    s->slot = slot;
    s->keep_logits = p->keep_logits;
    if (s->keep_logits && !(s->logits = malloc((size_t)m->hp.n_vocab * 4))) {
        free(s);
        return vkm_fail(m->d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    m->slot_used[slot] = true; /* before routing reserves further slots (logits aggregation) */
    vkm_status st = vkm_session_set_sampler(s, &p->sampling);
    if (st == VKM_OK) st = vkm_seqroute_init(s, p);
    if (st != VKM_OK) {
        vkm_seqroute_release(s);
        m->slot_used[slot] = false;
        free(s->logits);
        free(s->dec_ids);
        free(s->dec_w);
        free(s);
        return st;
    }
    *out = s;
    return VKM_OK;
}

void vkm_session_free(vkm_session *s)
{
    if (!s) return;
    vkm_seqroute_release(s);
    s->m->slot_used[s->slot] = false;
    free(s->logits);
    free(s->dec_ids);
    free(s->dec_w);
    free(s);
}

void vkm_session_reset(vkm_session *s)
{
    if (!s) return;
    s->pos = 0;
    s->n_hist = s->hist_head = 0;
    s->counter = 0;
    s->has_logits = false;
    if (s->needs_routing) s->routed = false; /* the next prompt is routed afresh */
}

uint32_t vkm_session_pos(const vkm_session *s) { return s ? s->pos : 0; }

vkm_status vkm_session_set_sampler(vkm_session *s, const vkm_sampler_params *p)
{
    if (!s || !p) return VKM_ERR_INVALID_ARGUMENT;
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f) || !(p->min_p >= 0.0f && p->min_p < 1.0f) ||
        !(p->repeat_penalty > 0.0f) || p->repeat_last_n > VKM_SAMPLE_HIST || p->temperature != p->temperature)
        return vkm_fail(s->m->d->err, VKM_ERR_INVALID_ARGUMENT, "sampler: temperature a number, top_p in "
                        "(0, 1], min_p in [0, 1), repeat_penalty > 0, repeat_last_n <= %d", VKM_SAMPLE_HIST);
    s->sp = *p;
    return VKM_OK;
}

static void remember(vkm_session *s, int32_t tok)
{
    s->hist[s->hist_head] = tok;
    s->hist_head = (s->hist_head + 1) % VKM_SAMPLE_HIST;
    if (s->n_hist < VKM_SAMPLE_HIST) s->n_hist++;
}

/* Writes session s's sampler record for logits row `row`, its id to ids[out_index]. */
static void write_record(vkm_session *s, uint32_t rec_index, uint32_t row, uint32_t out_index)
{
    uint32_t *w = (uint32_t *)s->m->samp_buf.map + (size_t)rec_index * VKM_SAMPLE_WORDS;
    const vkm_sampler_params *p = &s->sp;
    float f[4] = {p->temperature, p->top_p, p->min_p, p->repeat_penalty};
    uint32_t n = p->repeat_last_n < s->n_hist ? p->repeat_last_n : s->n_hist;
    memset(w, 0, VKM_SAMPLE_HDR * 4);
    w[0] = row;
    memcpy(&w[1], &f[0], 4);
    w[2] = p->top_k;
    memcpy(&w[3], &f[1], 4);
    memcpy(&w[4], &f[2], 4);
    memcpy(&w[5], &f[3], 4);
    w[6] = n;
    w[7] = (uint32_t)p->seed;
    w[8] = (uint32_t)(p->seed >> 32);
    w[9] = s->counter++;
    w[10] = out_index;
    for (uint32_t i = 0; i < n; i++) /* most recent first */
        w[VKM_SAMPLE_HDR + i] = (uint32_t)s->hist[(s->hist_head + VKM_SAMPLE_HIST - 1 - i) % VKM_SAMPLE_HIST];
}

vkm_status vkm_model_run_step(vkm_model *m, const vkm_step *st, uint32_t n_sample)
{
    vkm_status s = vkm_rec_begin(&m->rec, m->cmd);
    if (s == VKM_OK) s = vkm_forward_record(m, st);
    if (s == VKM_OK) vkm_sample_record(m, n_sample);
    vkm_status e = vkm_rec_end(&m->rec);
    if (s == VKM_OK) s = e;
    if (s == VKM_OK) s = vkm_dev_submit_wait(m->d, m->cmd);
    if (s == VKM_OK && m->profile) {
        m->n_prof = 0;
        s = vkm_rec_profile(&m->rec, m->prof, 64, &m->n_prof);
    }
    return s;
}

static vkm_status keep(vkm_session *s, uint32_t row)
{
    if (!s->keep_logits) return VKM_OK;
    vkm_model *m = s->m;
    uint64_t n = m->hp.n_vocab;
    vkm_status st = vkm_download(m->d, vkm_range_sub(m->a.logits, row * n * 4, n * 4), s->logits, n * 4);
    s->has_logits = st == VKM_OK;
    return st;
}

/* The rows of one step. Each token of a session appears once per sub-slot (logits aggregation:
 * one per chosen expert, else once); rows that want logits are the step's output rows in
 * order, and a logits-aggregation token's mixture row follows all of them. */
typedef struct step_rows {
    vkm_model *m;
    uint32_t n, cap;
    int32_t *tok;
    uint32_t *pos, *slot, *out, *rr, *gt;
    vkm_session **who;
    uint32_t n_out, n_mix;
} step_rows;

static vkm_status rows_init(step_rows *r, vkm_model *m)
{
    memset(r, 0, sizeof *r);
    r->m = m;
    r->cap = m->n_batch;
    r->tok = malloc(r->cap * 4);
    r->pos = malloc(r->cap * 4);
    r->slot = malloc(r->cap * 4);
    r->out = malloc(r->cap * 4);
    r->rr = malloc(r->cap * 4);
    r->gt = malloc(r->cap * 4);
    r->who = malloc(r->cap * sizeof *r->who);
    if (!r->tok || !r->pos || !r->slot || !r->out || !r->rr || !r->gt || !r->who)
        return vkm_fail(m->d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    return VKM_OK;
}

static void rows_free(step_rows *r)
{
    free(r->tok); free(r->pos); free(r->slot); free(r->out); free(r->rr); free(r->gt); free(r->who);
}

/* Rows a token of s takes in a step, and logits rows when it wants logits. */
static uint32_t rows_per_token(const vkm_session *s) { return s->logits_agg && s->routed ? s->n_sub_used : 1; }
static uint32_t outs_per_token(const vkm_session *s) { return rows_per_token(s) + (rows_per_token(s) > 1); }

/* Adds token `tok` of s at position pos; returns the index of its final logits row among the
 * mixture rows (logits aggregation: the caller adds n_out) or among the output rows. */
static uint32_t rows_add(step_rows *r, vkm_session *s, int32_t tok, uint32_t pos, bool want, bool *mixed)
{
    const uint32_t k = rows_per_token(s), first_out = r->n_out;
    for (uint32_t j = 0; j < k; j++) {
        uint32_t i = r->n++;
        r->tok[i] = tok;
        r->pos[i] = pos;
        r->slot[i] = k > 1 ? s->sub_slot[j] : s->slot;
        r->who[i] = s;
        if (want) r->out[r->n_out++] = i;
    }
    *mixed = want && k > 1;
    if (!*mixed) return first_out;
    uint32_t *rec = (uint32_t *)r->m->step_buf.map + vkm_step_mix(r->m) + (size_t)r->n_mix * VKM_MIX_RECORD;
    rec[1] = k;
    for (uint32_t j = 0; j < k; j++) {
        rec[2 + 2 * j] = first_out + j;
        memcpy(&rec[3 + 2 * j], &s->sub_w[j], 4);
    }
    return r->n_mix++;
}

/* Mixture rows go after the output rows: their records get their destinations. */
static void rows_finish(step_rows *r)
{
    for (uint32_t i = 0; i < r->n_mix; i++)
        ((uint32_t *)r->m->step_buf.map)[vkm_step_mix(r->m) + (size_t)i * VKM_MIX_RECORD] = r->n_out + i;
}

static vkm_status rows_run(step_rows *r, uint32_t n_sample)
{
    vkm_model *m = r->m;
    rows_finish(r);
    vkm_step step = {.n_tok = r->n, .tokens = r->tok, .pos = r->pos, .slot = r->slot, .n_out = r->n_out,
                     .out_rows = r->out, .pool_slot = -1, .n_mix = r->n_mix};
    if (r->n_out + r->n_mix > m->n_out_cap)
        return vkm_fail(m->d->err, VKM_ERR_LIMIT, "a step wants %u rows of logits (at most %u)",
                        r->n_out + r->n_mix, m->n_out_cap);
    if (m->bank) vkm_seqroute_plan(&step, r->rr, r->gt, r->who);
    vkm_status st = vkm_model_run_step(m, &step, n_sample);
    if (st == VKM_OK && m->bank) st = vkm_seqroute_trace(m, &step, r->who);
    return st;
}

/* Every id in the vocabulary: checked before a session's history, counter or position moves. */
static vkm_status check_ids(const vkm_model *m, const int32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || (uint32_t)ids[i] >= m->hp.n_vocab)
            return vkm_fail(m->d->err, VKM_ERR_INVALID_ARGUMENT, "token %d (at %zu) is not in the vocabulary of %u",
                            ids[i], i, m->hp.n_vocab);
    return VKM_OK;
}

/* Feeds ids[0..n) in steps; logits of the last one (and all, into `all`, when not NULL). */
static vkm_status feed(vkm_session *s, const int32_t *ids, size_t n, float *all, int32_t *next)
{
    vkm_model *m = s->m;
    if (n == 0) return vkm_fail(m->d->err, VKM_ERR_INVALID_ARGUMENT, "no tokens to feed");
    vkm_status bad = check_ids(m, ids, n);
    if (bad != VKM_OK) return bad;
    if (s->pos + n > m->n_ctx)
        return vkm_fail(m->d->err, VKM_ERR_LIMIT, "%zu more tokens at position %u overflow the "
                        "context of %u", n, s->pos, m->n_ctx);
    vkm_status st = VKM_OK;
    if (s->needs_routing && !s->routed) { /* sequence-level routing decides from the prompt */
        if (s->pos != 0)
            return vkm_fail(m->d->err, VKM_ERR_STATE, "a sequence-level router routes a prompt fed from "
                            "position 0 (reset the session)");
        st = vkm_seqroute_prompt(s, ids, n);
        if (st != VKM_OK) return st;
    }
    const uint32_t k = rows_per_token(s), ko = outs_per_token(s);
    uint32_t chunk = m->n_batch / k;
    if (all && chunk > m->n_out_cap / ko) chunk = m->n_out_cap / ko;
    if (!chunk) return vkm_fail(m->d->err, VKM_ERR_LIMIT, "a step cannot hold one token of this session (%u rows)", k);
    step_rows r;
    st = rows_init(&r, m);
    for (size_t done = 0; done < n && st == VKM_OK;) {
        uint32_t T = (uint32_t)(n - done < chunk ? n - done : chunk);
        bool last = done + T == n, mixed = false;
        r.n = r.n_out = r.n_mix = 0;
        uint32_t final = 0;
        for (uint32_t i = 0; i < T; i++) {
            remember(s, ids[done + i]);
            final = rows_add(&r, s, ids[done + i], s->pos + i, all || (last && i + 1 == T), &mixed);
        }
        if (mixed) final += r.n_out; /* mixture rows follow the outputs */
        uint32_t n_sample = 0;
        if (last && next) {
            write_record(s, 0, final, 0);
            n_sample = 1;
        }
        st = rows_run(&r, n_sample);
        if (st != VKM_OK) break;
        s->pos += T;
        uint32_t first = mixed ? r.n_out : 0; /* the final rows of the T tokens, contiguous */
        if (all)
            st = vkm_download(m->d, vkm_range_sub(m->a.logits, 4ull * first * m->hp.n_vocab, 4ull * T * m->hp.n_vocab),
                              all + done * m->hp.n_vocab, (uint64_t)T * m->hp.n_vocab * 4);
        if (st == VKM_OK && last) st = keep(s, final);
        if (st == VKM_OK && last && next) *next = (int32_t)((const uint32_t *)m->ids_buf.map)[0];
        done += T;
    }
    rows_free(&r);
    return st;
}

vkm_status vkm_session_prompt(vkm_session *s, const int32_t *ids, size_t n, int32_t *next)
{
    if (!s || !ids || !next) return VKM_ERR_INVALID_ARGUMENT;
    vkm_err_clear(s->m->d->err);
    return feed(s, ids, n, NULL, next);
}

vkm_status vkm_session_decode(vkm_session *s, int32_t token, int32_t *next)
{
    if (!s || !next) return VKM_ERR_INVALID_ARGUMENT;
    return vkm_batch_decode(&s, 1, &token, next);
}

vkm_status vkm_session_eval(vkm_session *s, const int32_t *ids, size_t n, float *logits)
{
    if (!s || !ids || !logits) return VKM_ERR_INVALID_ARGUMENT;
    vkm_err_clear(s->m->d->err);
    return feed(s, ids, n, logits, NULL);
}

vkm_status vkm_batch_decode(vkm_session *const *ss, size_t n, const int32_t *tokens, int32_t *next)
{
    if (!ss || !n || !tokens || !next) return VKM_ERR_INVALID_ARGUMENT;
    for (size_t i = 0; i < n; i++)
        if (!ss[i]) return VKM_ERR_INVALID_ARGUMENT;
    vkm_model *m = ss[0]->m;
    vkm_err_clear(m->d->err);
    if (n > m->n_seq || n > VKM_MAX_BATCH_SESSIONS)
        return vkm_fail(m->d->err, VKM_ERR_INVALID_ARGUMENT, "a batch of %zu sessions (at most %u)", n, m->n_seq);
    uint32_t rows_needed = 0, outs_needed = 0;
    for (size_t i = 0; i < n; i++) {
        vkm_session *s = ss[i];
        if (s->m != m) return vkm_fail(m->d->err, VKM_ERR_INVALID_ARGUMENT, "sessions of different models in one batch");
        for (size_t j = 0; j < i; j++)
            if (ss[j] == s) return vkm_fail(m->d->err, VKM_ERR_INVALID_ARGUMENT, "a session twice in one batch");
        if (s->pos + 1 > m->n_ctx)
            return vkm_fail(m->d->err, VKM_ERR_LIMIT, "session at position %u: context of %u is full", s->pos, m->n_ctx);
        if (s->needs_routing && !s->routed)
            return vkm_fail(m->d->err, VKM_ERR_STATE, "a session with a sequence-level router decodes after "
                            "its prompt (vkm_session_prompt)");
        rows_needed += rows_per_token(s);
        outs_needed += outs_per_token(s);
    }
    if (rows_needed > m->n_batch)
        return vkm_fail(m->d->err, VKM_ERR_LIMIT, "the batch needs %u rows per step (n_batch %u)", rows_needed, m->n_batch);
    if (outs_needed > m->n_out_cap) /* as rows_run would say, before any session moves */
        return vkm_fail(m->d->err, VKM_ERR_LIMIT, "a step wants %u rows of logits (at most %u)", outs_needed, m->n_out_cap);
    vkm_status bad = check_ids(m, tokens, n); /* before any session's history or draw counter moves */
    if (bad != VKM_OK) return bad;
    step_rows r;
    vkm_status st = rows_init(&r, m);
    uint32_t final[VKM_MAX_BATCH_SESSIONS];
    bool mixed[VKM_MAX_BATCH_SESSIONS];
    for (size_t i = 0; i < n && st == VKM_OK; i++) {
        remember(ss[i], tokens[i]);
        final[i] = rows_add(&r, ss[i], tokens[i], ss[i]->pos, true, &mixed[i]);
    }
    for (size_t i = 0; i < n && st == VKM_OK; i++) {
        if (mixed[i]) final[i] += r.n_out;
        write_record(ss[i], (uint32_t)i, final[i], (uint32_t)i);
    }
    if (st == VKM_OK) st = rows_run(&r, (uint32_t)n);
    for (size_t i = 0; i < n && st == VKM_OK; i++) {
        ss[i]->pos++;
        next[i] = (int32_t)((const uint32_t *)m->ids_buf.map)[i];
        st = keep(ss[i], final[i]);
    }
    rows_free(&r);
    return st;
}

vkm_status vkm_session_logits(const vkm_session *s, const float **logits, size_t *n_vocab)
{
    if (!s || !logits) return VKM_ERR_INVALID_ARGUMENT;
    if (!s->keep_logits || !s->has_logits)
        return vkm_fail(s->m->d->err, VKM_ERR_STATE, "no logits kept (create the session with "
                        "keep_logits, then feed a token)");
    *logits = s->logits;
    if (n_vocab) *n_vocab = s->m->hp.n_vocab;
    return VKM_OK;
}

