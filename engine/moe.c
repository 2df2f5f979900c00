/*
 * moe.c — the routing state of a model with a LoRA bank: routing buffers (bank.h), the shrink
 * output, the pools of router inputs per sequence; routing rows written from the host (fixed
 * weights, the bare base); sequence-level decisions from pooled inputs; centroids from
 * calibration texts run through the base model.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "ops_moe.h"
#include "writer.h"

vkm_status vkm_moe_alloc(vkm_model *m)
{
    vkm_bank *b = m->bank;
    vkm_dev *d = m->d;
    vkm_arena_init(&m->moe_arena, d, VKM_MEM_DEVICE, 0);
    m->route_rows = m->n_batch + m->n_seq + 1;
    m->pool_off = calloc(b->n_sites, sizeof *m->pool_off);
    if (!m->pool_off) return vkm_fail(d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    m->pool_len = 0;
    for (uint32_t s = 0; s < b->n_sites; s++) {
        m->pool_off[s] = m->pool_len;
        m->pool_len += b->sites[s].in;
    }
    uint64_t route = 4ull * b->n_sites * m->route_rows * b->n_exp;
    uint64_t t = 4ull * m->n_batch * b->n_exp * (b->rmax ? vkm_lora_rank_pad(b->rmax) : 1);
    if (b->rmax) { /* decoding: the shrinks of the sites sharing an input write one region each */
        const uint32_t dec = m->n_batch < VKM_MOE_MATVEC_MAX_T ? m->n_batch : VKM_MOE_MATVEC_MAX_T;
        const uint64_t sites = vkm_lora_sites_t_bytes(d, dec, b->n_exp, b->rmax);
        if (sites > t) t = sites;
    }
    uint64_t pool = 4ull * m->n_seq * m->pool_len;
    vkm_status s = vkm_arena_alloc(&m->moe_arena, route, 16, &m->route_ids);
    if (s == VKM_OK) s = vkm_arena_alloc(&m->moe_arena, route, 16, &m->route_wts);
    if (s == VKM_OK) s = vkm_arena_alloc(&m->moe_arena, t, 16, &m->lora_t);
    if (s == VKM_OK && b->rmax) { /* the grouped prefill path, in chunks of up to 64 tokens */
        uint32_t wide = 0;
        for (uint32_t p = 0; p < b->n_sites; p++)
            if (b->sites[p].out > wide) wide = b->sites[p].out;
        m->lora_chunk = m->n_batch < 64 ? m->n_batch : 64;
        s = vkm_arena_alloc(&m->moe_arena, 4ull * m->lora_chunk * b->n_exp * wide, 16, &m->lora_d);
        if (s == VKM_OK)
            s = vkm_arena_alloc(&m->moe_arena, 4ull * (2ull * b->n_total + (uint64_t)m->lora_chunk * b->n_exp), 16,
                                &m->lora_groups);
    }
    if (s == VKM_OK) s = vkm_arena_alloc(&m->moe_arena, pool, 16, &m->pool);
    if (s != VKM_OK) {
        vkm_err_prefix(d->err, "the routing buffers (%u routing points x %u rows x %u experts)",
                       b->n_sites, m->route_rows, b->n_exp);
        return s;
    }
    /* every row starts empty: the bare base */
    s = vkm_rec_begin(&m->rec, m->cmd);
    vkm_rec_fill(&m->rec, m->route_ids, VKM_NO_EXPERT);
    vkm_rec_fill(&m->rec, m->route_wts, 0);
    vkm_rec_fill(&m->rec, m->pool, 0);
    vkm_status e = vkm_rec_end(&m->rec);
    if (s == VKM_OK) s = e;
    if (s == VKM_OK) s = vkm_dev_submit_wait(d, m->cmd);
    if (s == VKM_OK && m->ffn && m->ffn->has_base) s = vkm_moe_set_row(m, m->n_seq, NULL, NULL, 0); /* the empty row */
    return s;
}

void vkm_moe_free(vkm_model *m)
{
    for (uint32_t i = 0; i < m->n_routers; i++) vkm_router_free(m, m->routers[i]);
    m->n_routers = 0;
    vkm_arena_destroy(&m->moe_arena);
    free(m->pool_off);
    m->pool_off = NULL;
    vkm_bank_free(m);
    if (m->man) vkm_manifest_free(m->man);
    free(m->man);
    m->man = NULL;
}

vkm_status vkm_moe_set_row(vkm_model *m, uint32_t slot, const uint32_t *ids, const float *w, uint32_t n)
{
    vkm_bank *b = m->bank;
    const uint32_t E = b->n_exp, base = E;
    const float one = 1.0f;
    if (n == 0 && m->ffn && m->ffn->has_base) { /* FFN experts: no expert is the base's own FFN */
        ids = &base;
        w = &one;
        n = 1;
    }
    if (n > E) return vkm_fail(m->d->err, VKM_ERR_INVALID_ARGUMENT, "a routing row of %u experts (at most %u)", n, E);
    uint32_t *ri = malloc(E * 4);
    float *rw = malloc(E * 4);
    if (!ri || !rw) {
        free(ri);
        free(rw);
        return vkm_fail(m->d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    for (uint32_t j = 0; j < E; j++) {
        ri[j] = j < n ? ids[j] : VKM_NO_EXPERT;
        rw[j] = j < n ? w[j] : 0.0f;
    }
    vkm_status s = vkm_rec_begin(&m->rec, m->cmd);
    const uint32_t row = vkm_seq_row(m, slot);
    for (uint32_t p = 0; p < b->n_sites && s == VKM_OK; p++) {
        uint64_t off = 4ull * vkm_route_word(m, p, row);
        vkm_rec_update(&m->rec, vkm_range_sub(m->route_ids, off, 4ull * E), ri, E * 4);
        vkm_rec_update(&m->rec, vkm_range_sub(m->route_wts, off, 4ull * E), rw, E * 4);
    }
    vkm_status e = vkm_rec_end(&m->rec);
    if (s == VKM_OK) s = e;
    if (s == VKM_OK) s = vkm_dev_submit_wait(m->d, m->cmd);
    free(ri);
    free(rw);
    return s;
}

void vkm_moe_clear_pool(vkm_model *m, uint32_t slot)
{
    vkm_rec_fill(&m->rec, vkm_range_sub(m->pool, 4ull * slot * m->pool_len, 4ull * m->pool_len), 0);
}

void vkm_moe_route_pooled(vkm_model *m, uint32_t ri, uint32_t slot, uint32_t count)
{
    const vkm_router *r = m->routers[ri];
    const vkm_bank *b = m->bank;
    uint32_t *list = m->step_buf.map;
    const uint32_t lo = vkm_step_seqlist(m);
    list[lo] = vkm_seq_row(m, slot);
    for (uint32_t p = 0; p < b->n_sites; p++) {
        bool point = vkm_router_is_point(m, r, p) && (m->ffn || r->depth != VKM_DEPTH_MODULE || b->sites[p].used);
        if (!point) continue;
        const uint32_t copies = vkm_router_copies(m, r, p);
        uint32_t in = r->depth == VKM_DEPTH_MODULE ? b->sites[p].in : m->hp.dim;
        vkm_router_call c = {
            .x = {m->pool, slot * m->pool_len + m->pool_off[p], 0}, .in_dim = in, .n = 1,
            .list_off = 0xffffffffu, .out_row_off = lo, .matrix = r->r[p], .list = vkm_model_step_range(m),
            .ids = m->route_ids, .wts = m->route_wts, .route_off = vkm_route_word(m, p, 0),
            .row_stride = b->n_exp, .n_copies = copies, .copy_stride = m->route_rows * b->n_exp,
            .n_exp = r->n_exp, .top_k = r->top_k, .flags = r->flags,
            .map_off = vkm_step_maps(m) + 64 * ri, .inv_temp = 1.0f / r->temperature,
            .x_scale = count ? 1.0f / (float)count : 1.0f, .always_on = r->always_on};
        vkm_op_router(&m->rec, &c);
    }
}

/* ---- centroids from calibration texts --------------------------------------------------------- */
/* Feeds a text through the base model in windows of n_ctx tokens, pooling the model-depth
 * feature into slot 0; with `each`, hands the mean feature of every window to it. */
typedef void (*window_fn)(void *user, const float *mean, uint32_t dim);

static vkm_status pool_windows(vkm_model *m, const char *path, uint32_t *count, window_fn each, void *user);

static vkm_status pool_text(vkm_model *m, const char *path, uint32_t *count)
{
    return pool_windows(m, path, count, NULL, NULL);
}

static vkm_status clear_pool0(vkm_model *m)
{
    vkm_status s = vkm_rec_begin(&m->rec, m->cmd);
    vkm_moe_clear_pool(m, 0);
    vkm_status e = vkm_rec_end(&m->rec);
    if (s == VKM_OK) s = e;
    if (s == VKM_OK) s = vkm_dev_submit_wait(m->d, m->cmd);
    return s;
}

/* Feeds a text (windows of n_ctx tokens from position 0, steps of n_batch) through the base
 * model, pooling the router inputs of `depth` into slot 0 (position 0 of each window left out). */
static vkm_status pool_text_buf(vkm_model *m, const char *text, size_t len, vkm_depth depth, uint32_t *count,
                                window_fn each, void *user)
{
    vkm_err *err = m->d->err;
    if (!m->tok) return vkm_fail(err, VKM_ERR_STATE, "calibration texts and prompts need the model's tokenizer");
    if (m->slot_used[0]) /* the KV cache and pool of slot 0 are its */
        return vkm_fail(err, VKM_ERR_STATE, "calibration runs the base model through sequence slot 0, which a "
                        "session holds: add or fit routers before creating sessions");
    size_t n = 0;
    vkm_tokenize(m->tok, text, len, true, false, NULL, 0, &n);
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    uint32_t *pos = malloc(m->n_batch * 4), *slot = calloc(m->n_batch, 4);
    vkm_status s = ids && pos && slot ? VKM_OK : vkm_fail(err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    if (s == VKM_OK) s = vkm_tokenize(m->tok, text, len, vkm_tokenizer_adds_bos(m->tok), false, ids, n, &n);
    float *mean = each ? malloc(4ull * m->hp.dim) : NULL;
    if (each && !mean) s = vkm_fail(err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (size_t w0 = 0; w0 < n && s == VKM_OK; w0 += m->n_ctx) {
        size_t wn = n - w0 < m->n_ctx ? n - w0 : m->n_ctx;
        if (each && wn < 8) break; /* too short to describe anything */
        if (each) s = clear_pool0(m);
        for (size_t c0 = 0; c0 < wn && s == VKM_OK; c0 += m->n_batch) {
            uint32_t T = (uint32_t)(wn - c0 < m->n_batch ? wn - c0 : m->n_batch);
            for (uint32_t i = 0; i < T; i++) pos[i] = (uint32_t)(c0 + i);
            vkm_step st = {.n_tok = T, .tokens = ids + w0 + c0, .pos = pos, .slot = slot,
                           .pool_slot = 0, .pool_depth = depth, .pool_skip_first = wn > 1};
            s = vkm_model_run_step(m, &st, 0);
            *count += c0 == 0 && wn > 1 ? T - 1 : T;
        }
        if (each && s == VKM_OK) {
            s = vkm_download(m->d, vkm_range_sub(m->pool, 4ull * m->pool_off[0], 4ull * m->hp.dim), mean, 4ull * m->hp.dim);
            for (uint32_t k = 0; k < m->hp.dim; k++) mean[k] /= (float)(wn - 1);
            if (s == VKM_OK) each(user, mean, m->hp.dim);
        }
    }
    free(mean);
    free(ids);
    free(pos);
    free(slot);
    return s;
}

static vkm_status pool_windows(vkm_model *m, const char *path, uint32_t *count, window_fn each, void *user)
{
    char *text = NULL;
    uint64_t len = 0;
    vkm_status s = vkm_read_text(path, 64u << 20, &text, &len, m->d->err);
    if (s == VKM_OK) s = pool_text_buf(m, text, len, VKM_DEPTH_MODEL, count, each, user);
    free(text);
    return s;
}

/* ---- mergekit-moe's "hidden" gates -------------------------------------------------------------- */
/* The mean pooled router input at each point of router r over some prompts (dim floats each). */
static vkm_status mean_over_prompts(vkm_model *m, const vkm_router *r, char **prompts, uint32_t n, float *out)
{
    const uint32_t D = m->hp.dim, P = m->bank->n_sites;
    memset(out, 0, 4ull * P * D);
    if (!n) return VKM_OK;
    vkm_status s = clear_pool0(m);
    uint32_t count = 0;
    for (uint32_t i = 0; i < n && s == VKM_OK; i++) s = pool_text_buf(m, prompts[i], strlen(prompts[i]), VKM_DEPTH_LAYER, &count, NULL, NULL);
    for (uint32_t p = 0; p < P && s == VKM_OK; p++) {
        if (!vkm_router_is_point(m, r, p)) continue;
        s = vkm_download(m->d, vkm_range_sub(m->pool, 4ull * m->pool_off[p], 4ull * D), out + (size_t)p * D, 4ull * D);
        for (uint32_t k = 0; k < D; k++) out[(size_t)p * D + k] /= (float)(count ? count : 1);
    }
    return s;
}

vkm_status vkm_router_hidden(vkm_model *m, vkm_router *r, const vkm_manifest *man)
{
    vkm_err *err = m->d->err;
    const uint32_t D = m->hp.dim, P = m->bank->n_sites;
    float *pos = malloc(4ull * P * D), *neg = malloc(4ull * P * D), *rows = calloc((size_t)P * r->n_exp * D, 4);
    vkm_status s = pos && neg && rows ? VKM_OK : vkm_fail(err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (uint32_t i = 0, j = 0; i < man->n_experts && s == VKM_OK; i++) {
        const vkm_manifest_expert *me = &man->experts[i];
        if (!me->lora[0] && !me->model[0]) continue;
        if (!me->n_positive) {
            s = vkm_fail(err, VKM_ERR_INVALID_ARGUMENT, "%s: experts[%u].positive: the hidden policy needs "
                         "positive prompts for every expert", man->path, i);
            break;
        }
        s = mean_over_prompts(m, r, me->positive, me->n_positive, pos);
        if (s == VKM_OK) s = mean_over_prompts(m, r, me->negative, me->n_negative, neg);
        for (uint32_t p = 0; p < P && s == VKM_OK; p++) {
            if (!vkm_router_is_point(m, r, p)) continue;
            double ss = 0;
            float *g = rows + ((size_t)p * r->n_exp + j) * D;
            for (uint32_t k = 0; k < D; k++) {
                g[k] = pos[(size_t)p * D + k] - neg[(size_t)p * D + k];
                ss += (double)g[k] * g[k];
            }
            for (uint32_t k = 0; k < D; k++) g[k] = (float)(g[k] / (ss > 0 ? sqrt(ss) : 1.0));
        }
        j++;
    }
    for (uint32_t p = 0; p < P && s == VKM_OK; p++) {
        if (!vkm_router_is_point(m, r, p)) continue;
        s = vkm_arena_alloc(&r->arena, 4ull * r->n_exp * D, 16, &r->r[p]);
        if (s == VKM_OK) s = vkm_upload(m->d, r->r[p], rows + (size_t)p * r->n_exp * D, 4ull * r->n_exp * D);
    }
    free(pos);
    free(neg);
    free(rows);
    if (s == VKM_OK) s = clear_pool0(m);
    return s;
}

vkm_status vkm_router_calibrate(vkm_model *m, vkm_router *r, const vkm_manifest *man, uint32_t index)
{
    (void)index;
    vkm_err *err = m->d->err;
    const uint32_t D = m->hp.dim;
    if (r->depth != VKM_DEPTH_MODEL || r->gran != VKM_GRAN_SEQUENCE)
        return vkm_fail(err, VKM_ERR_INVALID_ARGUMENT, "%s: centroids from calibration texts describe whole "
                        "sequences: use granularity sequence and depth model (or give router.weights)", man->path);
    float *c = calloc((size_t)r->n_exp * D, 4), *sum = malloc(D * 4);
    vkm_status s = c && sum ? VKM_OK : vkm_fail(err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (uint32_t i = 0, j = 0; i < man->n_experts && s == VKM_OK; i++) {
        const vkm_manifest_expert *me = &man->experts[i];
        if (!me->lora[0] && !me->model[0]) continue; /* the router's experts, as vkm_router_create lists them */
        if (!me->n_calib) {
            s = vkm_fail(err, VKM_ERR_INVALID_ARGUMENT, "%s: experts[%u].calib: the centroid policy needs "
                         "calibration texts for every expert (or router.weights)", man->path, i);
            break;
        }
        s = vkm_rec_begin(&m->rec, m->cmd);
        vkm_moe_clear_pool(m, 0);
        vkm_status e = vkm_rec_end(&m->rec);
        if (s == VKM_OK) s = e;
        if (s == VKM_OK) s = vkm_dev_submit_wait(m->d, m->cmd);
        uint32_t count = 0;
        for (uint32_t f = 0; f < me->n_calib && s == VKM_OK; f++) s = pool_text(m, me->calib[f], &count);
        if (s == VKM_OK) s = vkm_download(m->d, vkm_range_sub(m->pool, 4ull * m->pool_off[0], 4ull * D), sum, 4ull * D);
        for (uint32_t k = 0; k < D && s == VKM_OK; k++) c[(size_t)j * D + k] = count ? sum[k] / (float)count : 0.0f;
        j++;
    }
    if (s == VKM_OK) {
        for (uint32_t e = 0; e < r->n_exp; e++) { /* unit rows: the kernel divides by |x| only */
            double ss = 0;
            for (uint32_t k = 0; k < D; k++) ss += (double)c[(size_t)e * D + k] * c[(size_t)e * D + k];
            for (uint32_t k = 0; k < D; k++) c[(size_t)e * D + k] = (float)(c[(size_t)e * D + k] / (ss > 0 ? sqrt(ss) : 1.0));
        }
        s = vkm_arena_alloc(&r->arena, 4ull * r->n_exp * D, 16, &r->r[0]);
        if (s == VKM_OK) s = vkm_upload(m->d, r->r[0], c, 4ull * r->n_exp * D);
    }
    /* the pool row of slot 0 is left zero for the first session */
    if (s == VKM_OK) {
        s = vkm_rec_begin(&m->rec, m->cmd);
        vkm_moe_clear_pool(m, 0);
        vkm_status e = vkm_rec_end(&m->rec);
        if (s == VKM_OK) s = e;
        if (s == VKM_OK) s = vkm_dev_submit_wait(m->d, m->cmd);
    }
    free(c);
    free(sum);
    return s;
}

/* ---- a linear-discriminant router from calibration texts --------------------------------------- */
typedef struct lda_acc {
    uint32_t dim, n_exp, cur;
    uint32_t *n;              /* windows per expert                                           */
    double *sum;              /* [n_exp][dim]                                                  */
    double **feats;           /* per expert: windows x dim                                     */
    uint32_t *cap;
    bool oom;
} lda_acc;

static void lda_window(void *user, const float *mean, uint32_t dim)
{
    lda_acc *a = user;
    uint32_t e = a->cur;
    if (a->n[e] == a->cap[e]) {
        uint32_t cap = a->cap[e] ? 2 * a->cap[e] : 16;
        double *f = realloc(a->feats[e], (size_t)cap * dim * sizeof *f);
        if (!f) {
            a->oom = true;
            return;
        }
        a->feats[e] = f;
        a->cap[e] = cap;
    }
    for (uint32_t k = 0; k < dim; k++) {
        a->feats[e][(size_t)a->n[e] * dim + k] = mean[k];
        a->sum[(size_t)e * dim + k] += mean[k];
    }
    a->n[e]++;
}

/* Solves S X = B in place (S: n x n symmetric positive definite, B: n x m) by Cholesky. */
static bool cholesky_solve(double *S, double *B, uint32_t n, uint32_t m)
{
    for (uint32_t j = 0; j < n; j++) {
        double d = S[(size_t)j * n + j];
        for (uint32_t k = 0; k < j; k++) d -= S[(size_t)j * n + k] * S[(size_t)j * n + k];
        if (!(d > 0)) return false;
        d = sqrt(d);
        S[(size_t)j * n + j] = d;
        for (uint32_t i = j + 1; i < n; i++) {
            double v = S[(size_t)i * n + j];
            for (uint32_t k = 0; k < j; k++) v -= S[(size_t)i * n + k] * S[(size_t)j * n + k];
            S[(size_t)i * n + j] = v / d;
        }
    }
    for (uint32_t c = 0; c < m; c++) {
        for (uint32_t i = 0; i < n; i++) { /* L y = b */
            double v = B[(size_t)i * m + c];
            for (uint32_t k = 0; k < i; k++) v -= S[(size_t)i * n + k] * B[(size_t)k * m + c];
            B[(size_t)i * m + c] = v / S[(size_t)i * n + i];
        }
        for (uint32_t i = n; i-- > 0;) { /* L^T x = y */
            double v = B[(size_t)i * m + c];
            for (uint32_t k = i + 1; k < n; k++) v -= S[(size_t)k * n + i] * B[(size_t)k * m + c];
            B[(size_t)i * m + c] = v / S[(size_t)i * n + i];
        }
    }
    return true;
}

vkm_status vkm_model_fit_router(vkm_model *m, const char *path)
{
    if (!m || !path) return VKM_ERR_INVALID_ARGUMENT;
    vkm_err *err = m->d->err;
    vkm_err_clear(err);
    if (!m->bank || !m->man) return vkm_fail(err, VKM_ERR_STATE, "%s is not a MoErged model", m->path);
    if (m->slot_used[0]) return vkm_fail(err, VKM_ERR_STATE, "fit the router before creating sessions");
    const uint32_t D = m->hp.dim, E = m->bank->n_exp;
    lda_acc a = {D, E, 0, calloc(E, 4), calloc((size_t)E * D, 8), calloc(E, sizeof(double *)), calloc(E, 4), false};
    vkm_status s = a.n && a.sum && a.feats && a.cap ? VKM_OK : vkm_fail(err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (uint32_t i = 0; i < m->man->n_experts && s == VKM_OK; i++) {
        const vkm_manifest_expert *me = &m->man->experts[i];
        const int e = me->lora[0] ? vkm_bank_find(m->bank, me) : -1;
        if (e < 0) { /* nothing would be learned for it: a router of NaNs */
            s = vkm_fail(err, VKM_ERR_UNSUPPORTED, "%s: experts[%u] (%s): fitting a router needs LoRA experts",
                         m->man->path, i, me->name);
            break;
        }
        if (!me->n_calib) {
            s = vkm_fail(err, VKM_ERR_INVALID_ARGUMENT, "%s: experts[%u].calib: fitting a router needs "
                         "calibration texts for every expert", m->man->path, i);
            break;
        }
        a.cur = (uint32_t)e;
        uint32_t count = 0;
        for (uint32_t f = 0; f < me->n_calib && s == VKM_OK; f++) s = pool_windows(m, me->calib[f], &count, lda_window, &a);
        if (s == VKM_OK && a.n[e] < 2)
            s = vkm_fail(err, VKM_ERR_INVALID_ARGUMENT, "%s: expert %s: its calibration texts give %u windows of "
                         "%u tokens; at least 2 are needed", m->man->path, me->name, a.n[e], m->n_ctx);
    }
    if (s == VKM_OK && a.oom) s = vkm_fail(err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    double *S = NULL, *B = NULL;
    float *w = NULL, *b = NULL;
    if (s == VKM_OK) {
        S = calloc((size_t)D * D, 8);
        B = calloc((size_t)D * E, 8);
        w = malloc((size_t)E * D * 4);
        b = malloc((size_t)E * 4);
        if (!S || !B || !w || !b) s = vkm_fail(err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    if (s == VKM_OK) {
        /* class means; the within-class covariance of windows, averaged over classes */
        for (uint32_t e = 0; e < E; e++)
            for (uint32_t k = 0; k < D; k++) a.sum[(size_t)e * D + k] /= a.n[e];
        for (uint32_t e = 0; e < E; e++)
            for (uint32_t t = 0; t < a.n[e]; t++) {
                const double *f = a.feats[e] + (size_t)t * D, *mu = a.sum + (size_t)e * D;
                for (uint32_t i = 0; i < D; i++)
                    for (uint32_t j = 0; j <= i; j++)
                        S[(size_t)i * D + j] += (f[i] - mu[i]) * (f[j] - mu[j]) / ((a.n[e] - 1) * (double)E);
            }
        double tr = 0;
        for (uint32_t i = 0; i < D; i++) {
            tr += S[(size_t)i * D + i];
            for (uint32_t j = 0; j < i; j++) S[(size_t)j * D + i] = S[(size_t)i * D + j];
        }
        for (uint32_t i = 0; i < D; i++) S[(size_t)i * D + i] += 0.01 * tr / D + 1e-12; /* shrinkage */
        for (uint32_t k = 0; k < D; k++)
            for (uint32_t e = 0; e < E; e++) B[(size_t)k * E + e] = a.sum[(size_t)e * D + k];
        if (!cholesky_solve(S, B, D, E)) s = vkm_fail(err, VKM_ERR_MISMATCH, "the calibration features are degenerate");
    }
    if (s == VKM_OK) { /* w_e = S^-1 mu_e, b_e = -1/2 mu_e . w_e */
        for (uint32_t e = 0; e < E; e++) {
            double bb = 0;
            for (uint32_t k = 0; k < D; k++) {
                w[(size_t)e * D + k] = (float)B[(size_t)k * E + e];
                bb += a.sum[(size_t)e * D + k] * B[(size_t)k * E + e];
            }
            b[e] = (float)(-0.5 * bb);
        }
        vkm_st_writer *wr = NULL;
        int64_t ne[2] = {D, E}, nb[1] = {E};
        s = vkm_st_writer_create(path, &wr, err);
        if (s == VKM_OK) s = vkm_st_writer_set_meta(wr, "vkmoe.policy", "learned");
        if (s == VKM_OK) s = vkm_st_writer_set_meta(wr, "vkmoe.fit", "linear discriminant of calibration windows");
        if (s == VKM_OK) s = vkm_st_writer_add_tensor(wr, "router.weight", VKM_F32, 2, ne);
        if (s == VKM_OK) s = vkm_st_writer_add_tensor(wr, "router.bias", VKM_F32, 1, nb);
        if (s == VKM_OK) s = vkm_st_writer_begin(wr);
        if (s == VKM_OK) s = vkm_st_writer_write_tensor(wr, "router.weight", w, 4ull * E * D);
        if (s == VKM_OK) s = vkm_st_writer_write_tensor(wr, "router.bias", b, 4ull * E);
        if (s == VKM_OK) s = vkm_st_writer_finish(wr);
        vkm_st_writer_free(wr);
    }
    for (uint32_t e = 0; e < E && a.feats; e++) free(a.feats[e]);
    free(a.feats);
    free(a.n);
    free(a.sum);
    free(a.cap);
    free(S);
    free(B);
    free(w);
    free(b);
    if (s == VKM_OK) s = clear_pool0(m);
    return s;
}
