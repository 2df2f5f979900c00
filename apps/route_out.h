/*
 * route_out.h — the routing trace of a session (vkm_session_trace_routing) and its outputs, shared
 * by `vkmoe route` and `vkmoe run`: per token and routing point the experts chosen and their
 * weights as CSV and/or JSON, a heat map PNG of how often each expert is the top choice at each
 * layer (as Figure 6 of the moetify paper draws it), or that table on stdout.
 */
#ifndef VKMOE_ROUTE_OUT_H
#define VKMOE_ROUTE_OUT_H

#include "cli.h"

typedef struct route_trace {
    uint32_t n_points, n_exp, n_tok, cap;
    uint32_t window_start;      /* index of the window's first token in the text              */
    uint32_t *tok_index;        /* [n_tok] text index of each recorded token                  */
    uint8_t *ids;               /* [n_tok][n_points][n_exp], 255 = none                        */
    float *w;
    bool oom;
} route_trace;

typedef struct route_outputs {
    const char *csv, *json, *png; /* NULL: not written; all NULL: the table on stdout          */
} route_outputs;

/* vkm_route_fn recording into a route_trace. */
void route_trace_cb(void *user, uint32_t pos0, uint32_t n_tok, uint32_t n_points, uint32_t n_exp,
                    const uint32_t *ids, const float *w);
void route_trace_free(route_trace *t);
/* Writes the outputs of a trace of model m's router 0; text_ids[i] (i < n_text) is the token at
 * text index i. The heat map counts, for each layer, the decisions governing it (at model depth
 * the one decision, in every layer). Returns 0, or 1 after printing the error (a position past
 * the text, a file that cannot be written in full). */
int route_write(const char *cmd, vkm_model *m, const route_trace *t, const int32_t *text_ids, size_t n_text,
                const route_outputs *o);

#endif
