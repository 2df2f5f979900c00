/*
 * session.h — a session's state, shared by session.c (steps), seqroute.c (how its experts are
 * chosen) and generate.c (text in, streamed text out).
 */
#ifndef VKM_SESSION_H
#define VKM_SESSION_H

#include "model.h"

struct vkm_session {
    vkm_model *m;
    uint32_t slot, pos;
    vkm_sampler_params sp;
    bool keep_logits;
    float *logits;              /* [vocab] when keep_logits                                   */
    bool has_logits;
    int32_t hist[VKM_SAMPLE_HIST];
    uint32_t n_hist, hist_head; /* ring of the last VKM_SAMPLE_HIST tokens                     */
    uint32_t counter;           /* draws so far (the random stream's counter)                  */
    /* routing (seqroute.c) */
    vkm_route_mode mode;        /* resolved: ROUTER, FIXED or BASE                             */
    uint32_t router;
    bool token_routed;          /* a token-level router fills a row per token                  */
    bool needs_routing;         /* a sequence-level router decides after the prompt            */
    bool routed;                /* the sequence row holds its decision                         */
    uint32_t row;               /* routing row when not token-routed                           */
    vkm_route_fn trace;
    void *trace_user;
    /* logits aggregation (PELMo): one KV slot per chosen expert (sub 0 is `slot`) */
    uint32_t n_sub;             /* slots reserved: 1 unless logits aggregation                 */
    uint32_t n_sub_used;        /* experts actually chosen (<= n_sub)                          */
    uint32_t sub_slot[VKM_MAX_EXPERTS];
    uint32_t sub_e[VKM_MAX_EXPERTS];
    float sub_w[VKM_MAX_EXPERTS];
    bool logits_agg;
    /* merge "average": the row points at the composed adapter; the decision it was made from,
     * per routing point [n_sites][n_exp] (reports and traces show it) */
    uint32_t *dec_ids;
    float *dec_w;
};

/* seqroute.c */
/* Resolves the session's routing mode and writes its fixed row, if any. */
vkm_status vkm_seqroute_init(vkm_session *s, const vkm_session_params *p);
/* The routing row of token i of a step (index in the step), and its router group. */
void vkm_seqroute_plan(vkm_step *st, uint32_t *rows, uint32_t *group_tokens,
                       vkm_session *const *token_session);
/* Sequence-level routing of a prompt: pass over ids with the base, pool the router inputs,
 * decide, compose (parameter aggregation). Leaves the session at position 0. */
vkm_status vkm_seqroute_prompt(vkm_session *s, const int32_t *ids, size_t n);
/* Logits aggregation: reserves the sessions' extra slots / writes each sub-slot's single-expert
 * row from the sequence's decision (after routing) / releases the extra slots. */
vkm_status vkm_seqroute_subs(vkm_session *s, uint32_t k);
vkm_status vkm_seqroute_sub_rows(vkm_session *s);
void vkm_seqroute_release(vkm_session *s);
/* Calls the trace callbacks of the step's sessions (routing buffers downloaded). */
vkm_status vkm_seqroute_trace(vkm_model *m, const vkm_step *st, vkm_session *const *token_session);

#endif
