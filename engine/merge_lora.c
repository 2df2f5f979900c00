/*
 * merge_lora.c — LoRA deltas added into base weights on the device: the at-load merge the
 * manifest runtime calls (vkm_merge_lora_apply: W += sum_e coef_e B_e A_e on a device tensor of
 * any layout, quantized ones requantized), and lora_bake, which streams a whole base model to a
 * file with weighted adapters baked in: every adapted weight goes up as a device tensor, gets
 * its deltas, and comes back in the file's layout; the other tensors are copied.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "merge.h"
#include "merge_out.h"

/* ---- at load ------------------------------------------------------------------------------ */
#define TERM_WORDS 8

vkm_status vkm_merge_lora_apply(vkm_dev *d, vkm_tensor *w, const vkm_merge_lora_term *terms,
                                uint32_t n_terms)
{
    if (!w || (n_terms && !terms)) return vkm_fail(d->err, VKM_ERR_INVALID_ARGUMENT, "LoRA merge: no tensor");
    if (n_terms == 0) return VKM_OK;
    /* the pack: term records, row maps, then every A and B (16-byte aligned) */
    uint64_t words = vkm_align_up((uint64_t)n_terms * TERM_WORDS, 4);
    uint64_t map_at[64], a_at[64], b_at[64];
    if (n_terms > 64) return vkm_fail(d->err, VKM_ERR_LIMIT, "LoRA merge: %u terms (64 at most)", n_terms);
    for (uint32_t e = 0; e < n_terms; e++) {
        const vkm_merge_lora_term *t = &terms[e];
        uint64_t a_bytes = (uint64_t)t->rank * w->cols * 4, b_bytes = (uint64_t)t->rows_b * t->rank * 4;
        if (!t->rank || t->a.size < a_bytes || t->b.size < b_bytes || !t->a.buf || !t->b.buf)
            return vkm_fail(d->err, VKM_ERR_INVALID_ARGUMENT, "LoRA merge: term %u: rank %u, A %llu bytes "
                            "(needs %llu), B %llu bytes (needs %llu)", e, t->rank,
                            (unsigned long long)t->a.size, (unsigned long long)a_bytes,
                            (unsigned long long)t->b.size, (unsigned long long)b_bytes);
        for (uint32_t r = 0; r < w->rows; r++) {
            uint32_t br = t->b_row_map ? t->b_row_map[r] : r;
            if (br >= t->rows_b)
                return vkm_fail(d->err, VKM_ERR_INVALID_ARGUMENT, "LoRA merge: term %u: row %u of W "
                                "takes row %u of a B with %u rows", e, r, br, t->rows_b);
        }
        map_at[e] = t->b_row_map ? words : VKM_MNONE;
        if (t->b_row_map) words = vkm_align_up(words + w->rows, 4);
    }
    uint64_t head_words = words;
    for (uint32_t e = 0; e < n_terms; e++) {
        a_at[e] = words;
        words = vkm_align_up(words + (uint64_t)terms[e].rank * w->cols, 4);
        b_at[e] = words;
        words = vkm_align_up(words + (uint64_t)terms[e].rows_b * terms[e].rank, 4);
    }
    if (words * 4 > d->caps.max_storage_range)
        return vkm_fail(d->err, VKM_ERR_LIMIT, "LoRA merge: the terms need %llu bytes, more than one "
                        "storage range", (unsigned long long)words * 4);
    uint32_t *head = calloc(head_words, 4);
    if (!head) return vkm_fail(d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (uint32_t e = 0; e < n_terms; e++) {
        uint32_t *rec = head + e * TERM_WORDS;
        float coef = terms[e].coef;
        rec[0] = (uint32_t)a_at[e];
        rec[1] = (uint32_t)b_at[e];
        rec[2] = terms[e].rank;
        memcpy(&rec[3], &coef, 4);
        rec[4] = (uint32_t)map_at[e];
        if (terms[e].b_row_map) memcpy(head + map_at[e], terms[e].b_row_map, (size_t)w->rows * 4);
    }
    vkm_arena arena;
    vkm_arena_init(&arena, d, VKM_MEM_DEVICE, words * 4);
    vkm_range pack;
    vkm_rec rec;
    VkCommandBuffer cmd = VK_NULL_HANDLE;
    vkm_status s = vkm_arena_alloc(&arena, words * 4, 16, &pack);
    if (!s) s = vkm_upload(d, pack, head, head_words * 4);
    free(head);
    bool rec_ok = false;
    if (!s) rec_ok = (s = vkm_rec_init(&rec, d, false)) == VKM_OK;
    if (!s) s = vkm_dev_alloc_cmd(d, &cmd);
    if (!s) s = vkm_rec_begin(&rec, cmd);
    if (!s) {
        for (uint32_t e = 0; e < n_terms; e++) {
            vkm_rec_copy(&rec, terms[e].a, vkm_range_sub(pack, a_at[e] * 4, (uint64_t)terms[e].rank * w->cols * 4),
                         (uint64_t)terms[e].rank * w->cols * 4);
            vkm_rec_copy(&rec, terms[e].b, vkm_range_sub(pack, b_at[e] * 4, (uint64_t)terms[e].rows_b * terms[e].rank * 4),
                         (uint64_t)terms[e].rows_b * terms[e].rank * 4);
        }
        vkm_mop_lora(&rec, w, n_terms, pack);
        s = vkm_rec_end(&rec);
    }
    if (!s) s = vkm_dev_submit_wait(d, cmd);
    if (cmd) vkFreeCommandBuffers(d->device, d->cmd_pool, 1, &cmd);
    if (rec_ok) vkm_rec_destroy(&rec);
    vkm_arena_destroy(&arena);
    return s;
}

/* ---- device tensors back to file rows ----------------------------------------------------- */
/* The file bytes of one row of t stored as `file` (t's dtype, or BF16 from an F32 tensor). */
static void encode_row(const vkm_tensor *t, vkm_dtype file, const uint8_t *q, const uint8_t *sc,
                       uint8_t *dst)
{
    switch (t->dtype) {
    case VKM_F32:
        if (file == VKM_BF16) {
            for (uint32_t c = 0; c < t->cols; c++) {
                float f;
                memcpy(&f, q + 4ull * c, 4);
                uint16_t h = vkm_f32_to_bf16(f);
                memcpy(dst + 2ull * c, &h, 2);
            }
        } else {
            memcpy(dst, q, (size_t)t->cols * 4);
        }
        break;
    case VKM_F16: memcpy(dst, q, (size_t)t->cols * 2); break;
    default: { /* blocks: f16 scale then quants */
        uint32_t nq = t->dtype == VKM_Q8_0 ? 32 : 16;
        for (uint32_t b = 0; b < t->cols / 32; b++) {
            memcpy(dst + (uint64_t)b * (nq + 2), sc + 2ull * b, 2);
            memcpy(dst + (uint64_t)b * (nq + 2) + 2, q + (uint64_t)b * nq, nq);
        }
    }
    }
}

vkm_status vkm_merge_tensor_download(vkm_dev *d, const vkm_tensor *t, vkm_dtype file, uint8_t *dst)
{
    bool quant = t->dtype == VKM_Q8_0 || t->dtype == VKM_Q4_0;
    uint64_t qb = quant ? t->row_stride : (uint64_t)t->row_stride * (t->dtype == VKM_F16 ? 2 : 4);
    uint64_t sb = quant ? t->cols / 32 * 2 : 0, fb = 0;
    vkm_dtype_bytes(file, t->cols, &fb);
    vkm_status s = VKM_OK;
    for (uint32_t c = 0; c < t->n_chunks && !s; c++) {
        const vkm_chunk *ch = &t->chunks[c];
        uint8_t *host = malloc(ch->r.size);
        if (!host) return vkm_fail(d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        s = vkm_download(d, ch->r, host, ch->r.size);
        const uint8_t *scales = host + (uint64_t)ch->scale_off_words * 4;
        for (uint32_t r = 0; r < ch->rows && !s; r++)
            encode_row(t, file, host + r * qb, scales + r * sb, dst + (uint64_t)(ch->row0 + r) * fb);
        free(host);
    }
    return s;
}

/* ---- lora_bake ---------------------------------------------------------------------------- */
typedef struct bake {
    vkm_dev *d;
    vkm_err *e;
    const vkm_merge_params *p;
    vkm_model_src base;
    vkm_adapter_src ad[VKM_MERGE_MAX_MODELS];
    double weight[VKM_MERGE_MAX_MODELS];
    uint32_t n_ad;
    vkm_mout out;
    vkm_rope_layout layout;
} bake;

static const vkm_lora_pair *find_pair(const vkm_adapter_src *a, const char *target)
{
    for (uint32_t i = 0; i < a->n_pairs; i++)
        if (!strcmp(a->pairs[i].target, target)) return &a->pairs[i];
    return NULL;
}

static bool is_rope(const char *name) { return strstr(name, ".attn_q.") || strstr(name, ".attn_k."); }

/* Device type of an adapted weight stored as t, and the type it is written back as. */
static vkm_dtype bake_device_type(vkm_dtype t, vkm_dtype *file)
{
    switch (t) {
    case VKM_F32: case VKM_F16: case VKM_Q8_0: case VKM_Q4_0: *file = t; return t;
    case VKM_BF16: *file = VKM_BF16; return VKM_F32;
    default: *file = VKM_F16; return VKM_F16;
    }
}

/* A row map into `from` rows for the rows of the output layout (q/k only), or NULL. */
static uint32_t *rope_map(const bake *b, const char *name, vkm_rope_layout from, uint32_t rows)
{
    if (!is_rope(name) || from == b->layout) return NULL;
    uint32_t *m = malloc((size_t)rows * 4);
    for (uint32_t r = 0; m && r < rows; r++) m[r] = vkm_rope_row_map(b->layout, from, r, b->base.hp.head_dim);
    return m;
}

static float *to_f32(const vkm_tensor_src *t)
{
    uint64_t n = (uint64_t)vkm_tensor_nelem(t);
    float *f = malloc(n * 4);
    if (f && vkm_to_f32(t->dtype, t->data, n, f) != VKM_OK) {
        free(f);
        f = NULL;
    }
    return f;
}

/* One adapted weight: up, deltas, back down into dst (file rows of `file` type). */
static vkm_status bake_tensor(bake *b, const char *name, const vkm_tensor_src *t, vkm_dtype file,
                              uint8_t *dst)
{
    vkm_dtype dev_t = bake_device_type(t->dtype, &file);
    uint32_t rows = (uint32_t)t->ne[1], cols = (uint32_t)t->ne[0];
    vkm_arena arena;
    vkm_arena_init(&arena, b->d, VKM_MEM_DEVICE, 0);
    vkm_tensor wt;
    vkm_merge_lora_term terms[VKM_MERGE_MAX_MODELS];
    uint32_t *maps[VKM_MERGE_MAX_MODELS + 1] = {0}, n = 0;
    maps[VKM_MERGE_MAX_MODELS] = rope_map(b, name, b->base.hp.rope_layout, rows);
    vkm_status s = vkm_tensor_alloc(&arena, dev_t, rows, cols, 0, &wt);
    if (!s) s = vkm_tensor_upload(b->d, &wt, t->dtype, t->data, maps[VKM_MERGE_MAX_MODELS]);
    for (uint32_t i = 0; i < b->n_ad && !s; i++) {
        const vkm_lora_pair *p = find_pair(&b->ad[i], name);
        if (!p) continue;
        float *a = to_f32(p->a), *bm = to_f32(p->b);
        vkm_merge_lora_term *tm = &terms[n];
        memset(tm, 0, sizeof *tm);
        tm->rank = p->rank;
        tm->rows_b = (uint32_t)p->b->ne[1];
        tm->coef = (float)(b->weight[i] * p->scale);
        tm->b_row_map = maps[n] = rope_map(b, name, b->ad[i].rope_layout, rows);
        if (!a || !bm) s = vkm_fail(b->e, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        if (!s) s = vkm_arena_alloc(&arena, (uint64_t)p->rank * cols * 4, 16, &tm->a);
        if (!s) s = vkm_arena_alloc(&arena, (uint64_t)tm->rows_b * p->rank * 4, 16, &tm->b);
        if (!s) s = vkm_upload(b->d, tm->a, a, tm->a.size);
        if (!s) s = vkm_upload(b->d, tm->b, bm, tm->b.size);
        free(a);
        free(bm);
        n++;
    }
    if (!s) s = vkm_merge_lora_apply(b->d, &wt, terms, n);
    if (!s) s = vkm_merge_tensor_download(b->d, &wt, file, dst);
    for (uint32_t i = 0; i <= VKM_MERGE_MAX_MODELS; i++) free(maps[i]);
    vkm_arena_destroy(&arena);
    if (s) vkm_err_prefix(b->e, "lora_bake: %s", name);
    return s;
}

/* A tensor without adapters: its rows in the output layout, as stored. */
static vkm_status copy_tensor(bake *b, const char *name, const vkm_tensor_src *t, uint8_t *dst)
{
    uint32_t rows = t->n_dims >= 2 ? (uint32_t)(vkm_tensor_nelem(t) / t->ne[0]) : (uint32_t)t->ne[0];
    uint64_t row_bytes = t->nbytes / rows;
    uint32_t *m = rope_map(b, name, b->base.hp.rope_layout, rows);
    for (uint32_t r = 0; r < rows; r++)
        memcpy(dst + r * row_bytes, t->data + (uint64_t)(m ? m[r] : r) * row_bytes, (size_t)row_bytes);
    free(m);
    return VKM_OK;
}

static vkm_status bake_all(bake *b, const char *out_path)
{
    const vkm_merge_params *p = b->p;
    vkm_status s = vkm_model_src_open(p->base, &b->base, b->e);
    b->n_ad = p->n_models;
    for (uint32_t i = 0; i < b->n_ad && !s; i++) {
        b->weight[i] = !isnan(p->models[i].weight) ? p->models[i].weight : !isnan(p->weight) ? p->weight : 1.0;
        s = vkm_adapter_open(p->models[i].path, &b->ad[i], b->e);
        if (!s) s = vkm_adapter_validate(&b->ad[i], &b->base, b->e);
    }
    if (!s && b->n_ad == 0) s = vkm_fail(b->e, VKM_ERR_INVALID_ARGUMENT, "lora_bake: no adapters");
    if (!s) s = vkm_mout_open(&b->out, out_path, false, b->e);
    if (s) return s;
    s = vkm_mout_refuse_model(&b->out, &b->base, "lora_bake");
    for (uint32_t i = 0; i < b->n_ad && !s; i++) s = vkm_mout_refuse_adapter(&b->out, &b->ad[i], "lora_bake");
    if (s) return s;
    b->layout = b->out.kind == VKM_MOUT_GGUF ? vkm_gguf_rope_layout(b->base.hp.arch) : VKM_ROPE_HALF;
    char desc[4096];
    size_t k = (size_t)snprintf(desc, sizeof desc, "method=lora_bake; base=%s", p->base);
    for (uint32_t i = 0; i < b->n_ad && k < sizeof desc; i++)
        k += (size_t)snprintf(desc + k, sizeof desc - k, "; adapter=%s weight=%g", p->models[i].path, b->weight[i]);
    const vkm_model_src *in[1] = {&b->base};
    s = vkm_mout_hf_config(&b->out, in, 1, 0);
    if (!s) s = vkm_mout_model_meta(&b->out, in, 1, 0, "lora_bake", desc);
    const vkm_model_src *m = &b->base;
    for (uint32_t i = 0; i < m->n_tensors && !s; i++) {
        const char *name = m->format == VKM_SRC_GGUF ? m->gguf.tensors[i].name : m->tensors[i].name;
        const vkm_tensor_src *t = vkm_model_src_tensor(m, name);
        vkm_dtype file = t->dtype;
        bool adapted = false;
        for (uint32_t a = 0; a < b->n_ad; a++) adapted |= find_pair(&b->ad[a], name) != NULL;
        if (adapted) bake_device_type(t->dtype, &file);
        char on[VKM_MAX_NAME];
        if (b->out.kind == VKM_MOUT_GGUF) snprintf(on, sizeof on, "%s", name);
        else if (!vkm_internal_to_hf(name, on, sizeof on))
            s = vkm_fail(b->e, VKM_ERR_UNSUPPORTED, "lora_bake: tensor '%s' has no Hugging Face name", name);
        if (!s) s = vkm_mout_add(&b->out, on, file, t->n_dims, t->ne);
    }
    if (!s) s = vkm_mout_begin(&b->out);
    for (uint32_t i = 0; i < m->n_tensors && !s; i++) {
        const char *name = m->format == VKM_SRC_GGUF ? m->gguf.tensors[i].name : m->tensors[i].name;
        const vkm_tensor_src *t = vkm_model_src_tensor(m, name);
        bool adapted = false;
        for (uint32_t a = 0; a < b->n_ad; a++) adapted |= find_pair(&b->ad[a], name) != NULL;
        vkm_dtype file = t->dtype;
        if (adapted) bake_device_type(t->dtype, &file);
        uint64_t bytes = 0;
        vkm_dtype_bytes(file, (uint64_t)vkm_tensor_nelem(t), &bytes);
        uint8_t *buf = malloc(bytes ? bytes : 1);
        if (!buf) s = vkm_fail(b->e, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        if (!s) s = adapted ? bake_tensor(b, name, t, file, buf) : copy_tensor(b, name, t, buf);
        if (!s) s = vkm_mout_write(&b->out, buf, bytes);
        free(buf);
        vkm_merge_progress pr = {i + 1, m->n_tensors, 0, 0, 0, name};
        if (!s && p->progress && !p->progress(p->progress_user, &pr))
            s = vkm_fail(b->e, VKM_ERR_CANCELLED, "lora_bake: cancelled");
    }
    return s ? s : vkm_mout_finish_model(&b->out);
}

vkm_status vkm_merge_bake(vkm_context *ctx, const vkm_merge_params *p, const char *out_path)
{
    bake *b = calloc(1, sizeof *b);
    if (!b) return vkm_fail(&ctx->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    b->d = &ctx->dev;
    b->e = &ctx->err;
    b->p = p;
    vkm_status s = bake_all(b, out_path);
    vkm_mout_free(&b->out);
    vkm_model_src_close(&b->base);
    for (uint32_t i = 0; i < VKM_MERGE_MAX_MODELS; i++) vkm_adapter_close(&b->ad[i]);
    free(b);
    return s;
}
