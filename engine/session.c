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
    vkm_status st = vkm_session_set_sampler(s, &p->sampling);
    if (st == VKM_OK) st = vkm_seqroute_init(s, p);
    if (st != VKM_OK) {
        free(s->logits);
        free(s);
        return st;
    }
    m->slot_used[slot] = true;
    *out = s;
    return VKM_OK;
}

void vkm_session_free(vkm_session *s)
{
    if (!s) return;
    s->m->slot_used[s->slot] = false;
    free(s->logits);
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
        return vkm_fail(s->m->d->err, VKM_ERR_INVALID_ARGUMENT, "sampler: top_p in (0, 1], min_p in "
                        "[0, 1), repeat_penalty > 0, repeat_last_n <= %d", VKM_SAMPLE_HIST);
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

/* Feeds ids[0..n) in steps; logits of the last one (and all, into `all`, when not NULL). */
static vkm_status feed(vkm_session *s, const int32_t *ids, size_t n, float *all, int32_t *next)
{
    vkm_model *m = s->m;
    if (n == 0) return vkm_fail(m->d->err, VKM_ERR_INVALID_ARGUMENT, "no tokens to feed");
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
    uint32_t chunk = all ? (m->n_batch < m->n_out_cap ? m->n_batch : m->n_out_cap) : m->n_batch;
    uint32_t *pos = malloc(chunk * 4), *slot = malloc(chunk * 4), *rows = malloc(chunk * 4);
    uint32_t *rr = malloc(chunk * 4), *gt = malloc(chunk * 4);
    vkm_session **who = malloc(chunk * sizeof *who);
    if (!pos || !slot || !rows || !rr || !gt || !who)
        st = vkm_fail(m->d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (uint32_t i = 0; i < chunk && who; i++) who[i] = s;
    for (size_t done = 0; done < n && st == VKM_OK;) {
        uint32_t T = (uint32_t)(n - done < chunk ? n - done : chunk);
        bool last = done + T == n;
        for (uint32_t i = 0; i < T; i++) {
            pos[i] = s->pos + i;
            slot[i] = s->slot;
            rows[i] = all ? i : T - 1;
        }
        uint32_t n_out = all ? T : last ? 1 : 0, n_sample = 0;
        for (uint32_t i = 0; i < T; i++) remember(s, ids[done + i]);
        if (last && next) {
            write_record(s, 0, n_out - 1, 0);
            n_sample = 1;
        }
        vkm_step step = {.n_tok = T, .tokens = ids + done, .pos = pos, .slot = slot, .n_out = n_out,
                         .out_rows = rows, .pool_slot = -1};
        if (m->bank) vkm_seqroute_plan(&step, rr, gt, who);
        st = vkm_model_run_step(m, &step, n_sample);
        if (st == VKM_OK && m->bank) st = vkm_seqroute_trace(m, &step, who);
        if (st != VKM_OK) break;
        s->pos += T;
        if (all) st = vkm_download(m->d, m->a.logits, all + done * m->hp.n_vocab, (uint64_t)T * m->hp.n_vocab * 4);
        if (st == VKM_OK && last) st = keep(s, n_out - 1);
        if (st == VKM_OK && last && next) *next = (int32_t)((const uint32_t *)m->ids_buf.map)[0];
        done += T;
    }
    free(pos);
    free(slot);
    free(rows);
    free(rr);
    free(gt);
    free(who);
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
    vkm_model *m = ss[0]->m;
    vkm_err_clear(m->d->err);
    if (n > m->n_seq || n > m->n_batch)
        return vkm_fail(m->d->err, VKM_ERR_INVALID_ARGUMENT, "a batch of %zu sessions (at most %u)",
                        n, m->n_seq < m->n_batch ? m->n_seq : m->n_batch);
    uint32_t pos[VKM_MAX_BATCH_SESSIONS], slot[VKM_MAX_BATCH_SESSIONS], rows[VKM_MAX_BATCH_SESSIONS];
    uint32_t rr[VKM_MAX_BATCH_SESSIONS], gt[VKM_MAX_BATCH_SESSIONS];
    if (n > VKM_MAX_BATCH_SESSIONS)
        return vkm_fail(m->d->err, VKM_ERR_LIMIT, "a batch of %zu sessions (at most %d)", n, VKM_MAX_BATCH_SESSIONS);
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
        pos[i] = s->pos;
        slot[i] = s->slot;
        rows[i] = (uint32_t)i;
        remember(s, tokens[i]);
        write_record(s, (uint32_t)i, (uint32_t)i, (uint32_t)i);
    }
    vkm_step step = {.n_tok = (uint32_t)n, .tokens = tokens, .pos = pos, .slot = slot, .n_out = (uint32_t)n,
                     .out_rows = rows, .pool_slot = -1};
    if (m->bank) vkm_seqroute_plan(&step, rr, gt, ss);
    vkm_status st = vkm_model_run_step(m, &step, (uint32_t)n);
    if (st == VKM_OK && m->bank) st = vkm_seqroute_trace(m, &step, ss);
    for (size_t i = 0; i < n && st == VKM_OK; i++) {
        ss[i]->pos++;
        next[i] = (int32_t)((const uint32_t *)m->ids_buf.map)[i];
        st = keep(ss[i], (uint32_t)i);
    }
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

