/*
 * generate.c — text in, streamed text out: tokenize the prompt with the model's tokenizer,
 * prefill, decode, detokenize incrementally (UTF-8 split across tokens held back).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "session.h"

/* ---- generation ------------------------------------------------------------------------------ */
vkm_generate_params vkm_generate_default_params(void)
{
    vkm_generate_params p;
    memset(&p, 0, sizeof p);
    p.n_predict = 128;
    p.add_bos = true;
    p.stop_at_eos = true;
    return p;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The text of token id (flush: the held-back bytes) into *buf, grown to what it needs. */
static vkm_status detok(vkm_detok *dt, int32_t id, bool flush, char **buf, size_t *cap, size_t *n, vkm_model *m)
{
    for (;;) {
        vkm_status st = flush ? vkm_detok_flush(dt, *buf, *cap, n) : vkm_detok_push(dt, id, *buf, *cap, n);
        if (st != VKM_ERR_LIMIT) return st;
        char *grown = realloc(*buf, *n + 1);
        if (!grown) return vkm_fail(m->d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        *buf = grown;
        *cap = *n + 1;
    }
}

vkm_status vkm_generate(vkm_session *s, const char *prompt, const vkm_generate_params *p,
                        vkm_generate_stats *stats)
{
    if (!s || !prompt) return VKM_ERR_INVALID_ARGUMENT;
    vkm_model *m = s->m;
    vkm_generate_params def = vkm_generate_default_params();
    if (!p) p = &def;
    vkm_generate_stats st0;
    memset(&st0, 0, sizeof st0);
    if (!stats) stats = &st0;
    memset(stats, 0, sizeof *stats);
    const vkm_tokenizer *tok = m->tok;
    if (!tok) return vkm_fail(m->d->err, VKM_ERR_STATE, "%s has no tokenizer", m->path);
    size_t len = strlen(prompt), cap = len + 8, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids) return vkm_fail(m->d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    bool bos = p->add_bos && vkm_tokenizer_adds_bos(tok);
    vkm_status st = vkm_tokenize(tok, prompt, len, bos, false, ids, cap, &n);
    if (st == VKM_ERR_LIMIT) {
        int32_t *bigger = realloc(ids, n * sizeof *ids);
        if (!bigger) st = VKM_ERR_OUT_OF_HOST_MEMORY;
        else {
            ids = bigger;
            cap = n;
            st = vkm_tokenize(tok, prompt, len, bos, false, ids, cap, &n);
        }
    }
    if (st != VKM_OK) {
        free(ids);
        return vkm_fail(m->d->err, st, "tokenizing the prompt: %s", vkm_status_str(st));
    }
    if (n == 0) {
        free(ids);
        return vkm_fail(m->d->err, VKM_ERR_INVALID_ARGUMENT, "empty prompt (and no BOS token)");
    }
    stats->n_prompt = p->n_predict ? (uint32_t)n : 0;
    int32_t next = 0;
    double t0 = now_s();
    st = p->n_predict ? vkm_session_prompt(s, ids, n, &next) : VKM_OK;
    stats->prefill_seconds = now_s() - t0;
    free(ids);
    vkm_detok dt;
    vkm_detok_init(&dt, tok);
    dt.at_start = prompt[0] == 0; /* a continuation keeps its first token's leading space */
    size_t text_cap = 256; /* grown for a token whose text is longer (an added token) */
    char *text = malloc(text_cap);
    if (!text && st == VKM_OK) st = vkm_fail(m->d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    int32_t eos = vkm_tokenizer_eos(tok);
    t0 = now_s();
    for (uint32_t i = 0; i < p->n_predict && st == VKM_OK; i++) {
        stats->n_generated++;
        bool is_eos = p->stop_at_eos && next == eos;
        size_t tn = 0;
        if (!is_eos) st = detok(&dt, next, false, &text, &text_cap, &tn, m);
        if (st != VKM_OK) break;
        if (p->on_token && !p->on_token(p->user, next, text, tn)) {
            st = vkm_fail(m->d->err, VKM_ERR_CANCELLED, "generation stopped by the callback");
            break;
        }
        if (is_eos || i + 1 == p->n_predict) break;
        if (s->pos >= m->n_ctx) { /* context full: stop, and say so */
            stats->context_full = true;
            break;
        }
        st = vkm_session_decode(s, next, &next);
    }
    if (st == VKM_OK && p->on_token) {
        size_t tn = 0;
        if (detok(&dt, -1, true, &text, &text_cap, &tn, m) == VKM_OK && tn) p->on_token(p->user, -1, text, tn);
    }
    free(text);
    stats->decode_seconds = now_s() - t0;
    return st;
}
