/*
 * ffn.c — loading FFN experts: from the whole fine-tunes a manifest names (their FFN matrices,
 * attention projections with attention mixing, shared weights from the base or averaged), or
 * from a Mixtral-style MoE file (3-D expert stacks sliced per expert, or one tensor per expert,
 * and the file's router); then the scratch buffers of the expert products.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ffn.h"
#include "model.h"

static const char *mod_names[7] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};

static bool mixed(const vkm_ffn *f, uint32_t mod) { return vkm_ffn_mixed(f, mod); }

static vkm_status ffn_new(vkm_model *m, uint32_t n_exp, uint32_t attn_mask, bool fine, bool has_base)
{
    vkm_ffn *f = calloc(1, sizeof *f);
    if (!f) return vkm_fail(m->d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    m->ffn = f;
    f->n_exp = n_exp;
    f->has_base = has_base;
    f->n_slots = n_exp + has_base;
    f->attn_mask = attn_mask;
    f->fine = fine;
    f->w = calloc((size_t)m->hp.n_layers * f->n_slots * 7, sizeof *f->w);
    vkm_arena_init(&f->arena, m->d, VKM_MEM_DEVICE, 0);
    if (!f->w) return vkm_fail(m->d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (uint32_t l = 0; l < m->hp.n_layers && has_base; l++) { /* the base slot shares the base's memory */
        const vkm_layer *ly = &m->layers[l];
        const vkm_tensor *base[7] = {&ly->wq, &ly->wk, &ly->wv, &ly->wo, &ly->w_gate, &ly->w_up, &ly->w_down};
        for (uint32_t mod = 0; mod < 7; mod++) *vkm_ffn_w(f, l, n_exp, mod) = *base[mod];
    }
    return VKM_OK;
}

/* Scratch of the expert products, sized for n_batch tokens and every expert. */
static vkm_status ffn_scratch(vkm_model *m)
{
    vkm_ffn *f = m->ffn;
    const vkm_hparams *hp = &m->hp;
    uint64_t wide = hp->ffn_dim;
    if (hp->dim > wide) wide = hp->dim;
    if ((uint64_t)hp->n_heads * hp->head_dim > wide) wide = (uint64_t)hp->n_heads * hp->head_dim;
    const uint64_t items = (uint64_t)m->n_batch * f->n_exp;
    vkm_status s = vkm_arena_alloc(&f->arena, 4 * items * hp->ffn_dim, 16, &f->g);
    if (s == VKM_OK) s = vkm_arena_alloc(&f->arena, 4 * items * hp->ffn_dim, 16, &f->u);
    if (s == VKM_OK) s = vkm_arena_alloc(&f->arena, 4 * items * wide, 16, &f->d);
    if (s == VKM_OK) s = vkm_arena_alloc(&f->arena, 4 * (2ull * f->n_slots + items), 16, &f->groups);
    if (s == VKM_ERR_LIMIT)
        vkm_err_prefix(m->d->err, "the FFN experts' scratch for %u tokens x %u experts (lower n_batch)", m->n_batch, f->n_exp);
    return s;
}

/* The file row of each row of a q or k matrix in the model's RoPE layout (NULL: the same). */
static uint32_t *rope_rows(const vkm_model *m, const vkm_model_src *src, uint32_t mod, uint32_t rows)
{
    if ((mod != VKM_MOD_Q && mod != VKM_MOD_K) || src->hp.rope_layout == m->hp.rope_layout) return NULL;
    uint32_t *map = malloc(rows * sizeof *map);
    for (uint32_t r = 0; map && r < rows; r++) map[r] = vkm_rope_row_map(m->hp.rope_layout, src->hp.rope_layout, r, m->hp.head_dim);
    return map;
}

/* The mixed matrices of one expert model (same shapes as the base: checked by the manifest). */
static vkm_status load_expert(vkm_model *m, const vkm_model_src *src, uint32_t e)
{
    vkm_ffn *f = m->ffn;
    vkm_status s = VKM_OK;
    char name[96];
    for (uint32_t l = 0; l < m->hp.n_layers && s == VKM_OK; l++)
        for (uint32_t mod = 0; mod < 7 && s == VKM_OK; mod++) {
            if (!mixed(f, mod)) continue;
            snprintf(name, sizeof name, "blk.%u.%s.weight", l, mod_names[mod]);
            const vkm_tensor_src *t = vkm_model_src_tensor(src, name);
            if (!t) return vkm_fail(m->d->err, VKM_ERR_NOT_FOUND, "%s: tensor %s is missing", src->path, name);
            uint32_t *map = rope_rows(m, src, mod, (uint32_t)t->ne[1]);
            s = vkm_model_upload_matrix(m, &f->arena, t, name, map, vkm_ffn_w(f, l, e, mod));
            free(map);
            if (s == VKM_OK) f->bytes += vkm_ffn_w(f, l, e, mod)->bytes;
        }
    return s;
}

/* "shared": "average": every weight that is not mixed becomes the mean of the experts'. */
static vkm_status average_shared(vkm_model *m, vkm_model_src *srcs, uint32_t n)
{
    vkm_status s = VKM_OK;
    const vkm_model_src *s0 = &srcs[0];
    /* tied embeddings are one matrix on the device: every model must tie as the base does */
    for (uint32_t e = 0; e < n; e++)
        if (srcs[e].hp.tied_embeddings != vkm_model_tied(m))
            return vkm_fail(m->d->err, VKM_ERR_MISMATCH, "%s: \"shared\": \"average\": its output matrix is %s but "
                            "the base's is %s", srcs[e].path, srcs[e].hp.tied_embeddings ? "its token embeddings" : "its own",
                            vkm_model_tied(m) ? "its token embeddings" : "its own");
    for (uint32_t i = 0; i < s0->n_tensors && s == VKM_OK; i++) {
        const char *name = s0->tensors[i].name;
        bool is_mixed = false;
        uint32_t l, len = 0;
        for (uint32_t mod = 0; mod < 7; mod++) {
            char suffix[40];
            snprintf(suffix, sizeof suffix, ".%s.weight", mod_names[mod]);
            if (sscanf(name, "blk.%u.%n", &l, &len) == 1 && !strcmp(name + len - 1, suffix) && mixed(m->ffn, mod))
                is_mixed = true;
        }
        if (is_mixed) continue;
        const vkm_tensor_src *t0 = s0->tensors[i].src;
        const uint64_t ne = (uint64_t)vkm_tensor_nelem(t0);
        float *acc = calloc(ne, 4), *tmp = malloc(ne * 4);
        if (!acc || !tmp) s = vkm_fail(m->d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        for (uint32_t e = 0; e < n && s == VKM_OK; e++) {
            const vkm_tensor_src *t = vkm_model_src_tensor(&srcs[e], name);
            if (!t || vkm_tensor_nelem(t) != (int64_t)ne) {
                s = vkm_fail(m->d->err, VKM_ERR_MISMATCH, "%s: %s is missing or has another shape", srcs[e].path, name);
                break;
            }
            s = vkm_to_f32(t->dtype, t->data, ne, tmp);
            uint32_t mod = 0;
            while (mod < 2 && !strstr(name, mod_names[mod])) mod++; /* attn_q, attn_k: RoPE rows */
            uint32_t *map = mod < 2 ? rope_rows(m, &srcs[e], mod, (uint32_t)t->ne[1]) : NULL;
            const uint64_t cols = (uint64_t)t->ne[0];
            for (uint64_t k = 0; k < ne && s == VKM_OK; k++)
                acc[k] += tmp[map ? map[k / cols] * cols + k % cols : k] / (float)n;
            free(map);
        }
        if (s == VKM_OK) s = vkm_model_replace_weight(m, name, acc, ne);
        free(acc);
        free(tmp);
    }
    return s;
}

vkm_status vkm_ffn_load_manifest(vkm_model *m, const vkm_manifest *man)
{
    uint32_t n = 0;
    const char *names[VKM_MAX_EXPERTS], *paths[VKM_MAX_EXPERTS];
    for (uint32_t i = 0; i < man->n_experts; i++)
        if (man->experts[i].model[0]) {
            names[n] = man->experts[i].name;
            paths[n++] = man->experts[i].model;
        }
    const bool fine = man->router.fine_grained || man->router.depth == VKM_DEPTH_MODULE;
    vkm_status s = ffn_new(m, n, man->router.route_attention ? 7u : 0u, fine, true);
    vkm_model_src *srcs = calloc(n, sizeof *srcs);
    if (s == VKM_OK && !srcs) s = vkm_fail(m->d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (uint32_t e = 0; e < n && s == VKM_OK; e++) {
        s = vkm_model_src_open(paths[e], &srcs[e], m->d->err);
        if (s == VKM_OK) s = load_expert(m, &srcs[e], e);
        if (s != VKM_OK) vkm_err_prefix(m->d->err, "%s: expert %s", man->path, names[e]);
    }
    if (s == VKM_OK && man->shared == VKM_SHARED_AVERAGE) s = average_shared(m, srcs, n);
    for (uint32_t e = 0; e < n && srcs; e++) vkm_model_src_close(&srcs[e]);
    free(srcs);
    if (s == VKM_OK) s = vkm_bank_init_ffn(m, n, names, paths);
    if (s == VKM_OK) s = ffn_scratch(m);
    return s;
}

vkm_status vkm_ffn_load_file(vkm_model *m, vkm_tensor_get get, void *user, const char *path)
{
    const vkm_hparams *hp = &m->hp;
    const uint32_t E = hp->n_experts;
    if (E > VKM_MAX_EXPERTS) /* before uploading any of them */
        return vkm_fail(m->d->err, VKM_ERR_UNSUPPORTED, "%s: %u experts (vkmoe routes up to %d)", path, E, VKM_MAX_EXPERTS);
    vkm_status s = ffn_new(m, E, hp->moe_attn, hp->moe_fine, false);
    vkm_ffn *f = m->ffn;
    char name[128];
    static const char *stacks[7] = {"", "", "", "", "ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"};
    for (uint32_t l = 0; l < hp->n_layers && s == VKM_OK; l++)
        for (uint32_t mod = 0; mod < 7 && s == VKM_OK; mod++) {
            if (!mixed(f, mod)) continue;
            snprintf(name, sizeof name, "blk.%u.%s.weight", l, stacks[mod]);
            const vkm_tensor_src *stack = stacks[mod][0] ? get(user, name) : NULL;
            for (uint32_t e = 0; e < E && s == VKM_OK; e++) {
                vkm_tensor_src one;
                const vkm_tensor_src *t = NULL;
                if (stack) { /* a 3-D stack: expert e is the e-th [rows][cols] slice */
                    one = *stack;
                    one.n_dims = 2;
                    one.ne[2] = 1;
                    one.nbytes = stack->nbytes / E;
                    one.data = stack->data + one.nbytes * e;
                    t = &one;
                } else {
                    snprintf(name, sizeof name, "blk.%u.%s.%u.weight", l, mod_names[mod], e);
                    t = get(user, name);
                }
                if (!t) {
                    s = vkm_fail(m->d->err, VKM_ERR_NOT_FOUND, "%s: layer %u expert %u: %s is missing", path, l,
                                 e, mod_names[mod]);
                    break;
                }
                snprintf(name, sizeof name, "blk.%u.%s.%u", l, mod_names[mod], e);
                s = vkm_model_upload_matrix(m, &f->arena, t, name, NULL, vkm_ffn_w(f, l, e, mod));
                if (s == VKM_OK) f->bytes += vkm_ffn_w(f, l, e, mod)->bytes;
            }
        }
    const char *names[VKM_MAX_EXPERTS], *paths[VKM_MAX_EXPERTS];
    char nm[VKM_MAX_EXPERTS][16];
    for (uint32_t e = 0; e < E; e++) {
        snprintf(nm[e], sizeof nm[e], "expert%u", e);
        names[e] = nm[e];
        paths[e] = path;
    }
    if (s == VKM_OK) s = vkm_bank_init_ffn(m, E, names, paths);
    if (s == VKM_OK) s = ffn_scratch(m);
    if (s == VKM_OK) s = vkm_moe_alloc(m);
    vkm_router *r = NULL;
    if (s == VKM_OK) s = vkm_router_from_gates(m, get, user, path, &r);
    if (s == VKM_OK) m->routers[m->n_routers++] = r;
    return s;
}

void vkm_ffn_free(vkm_model *m)
{
    if (!m->ffn) return;
    vkm_arena_destroy(&m->ffn->arena);
    free(m->ffn->w);
    free(m->ffn);
    m->ffn = NULL;
}
