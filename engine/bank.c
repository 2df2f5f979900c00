/*
 * bank.c — loading LoRA experts (PEFT folders and GGUF LoRA files, any mix, any ranks) into the
 * device bank: per adapted site, every expert's A rows stacked and its B transposed and stacked,
 * B's q/k rows brought into the base's RoPE layout, each expert's scale (alpha / r or
 * alpha / sqrt(r), times the manifest's scale) in the site's expert table.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

int vkm_bank_find(const vkm_bank *b, const vkm_manifest_expert *e)
{
    for (uint32_t i = 0; i < b->n_exp; i++)
        if ((e->lora[0] && !strcmp(b->paths[i], e->lora)) || (e->model[0] && !strcmp(b->paths[i], e->model)))
            return (int)i;
    for (uint32_t i = 0; i < b->n_exp; i++)
        if (!strcmp(b->names[i], e->name)) return (int)i;
    return -1;
}

/* in / out of a site's base weight */
static void site_dims(const vkm_hparams *hp, uint32_t mod, uint32_t *in, uint32_t *out)
{
    const uint32_t qd = hp->n_heads * hp->head_dim, kvd = hp->n_kv_heads * hp->head_dim;
    switch (mod) {
    case VKM_MOD_Q: *in = hp->dim; *out = qd; break;
    case VKM_MOD_K: case VKM_MOD_V: *in = hp->dim; *out = kvd; break;
    case VKM_MOD_O: *in = qd; *out = hp->dim; break;
    case VKM_MOD_GATE: case VKM_MOD_UP: *in = hp->dim; *out = hp->ffn_dim; break;
    default: *in = hp->ffn_dim; *out = hp->dim; break;
    }
}

static const vkm_lora_pair *find_pair(const vkm_adapter_src *a, uint32_t layer, uint32_t mod)
{
    for (uint32_t i = 0; i < a->n_pairs; i++)
        if (a->pairs[i].layer == layer && a->pairs[i].module == (vkm_module)mod) return &a->pairs[i];
    return NULL;
}

/* Copies one expert's pair into the host images of A and Bt at rank offset off. */
static vkm_status put_pair(vkm_model *m, const vkm_lora_pair *p, vkm_rope_layout layout, uint32_t mod,
                           uint32_t in, uint32_t out, uint32_t off, float *a, float *bt)
{
    const uint32_t r = p->rank;
    vkm_status s = vkm_to_f32(p->a->dtype, p->a->data, (uint64_t)r * in, a + (uint64_t)off * in);
    float *b = s == VKM_OK ? malloc((uint64_t)r * out * 4) : NULL;
    if (s == VKM_OK && !b) s = VKM_ERR_OUT_OF_HOST_MEMORY;
    if (s == VKM_OK) s = vkm_to_f32(p->b->dtype, p->b->data, (uint64_t)r * out, b); /* [out][r] */
    if (s != VKM_OK) {
        free(b);
        return vkm_fail(m->d->err, s, "%s: cannot read the A / B of %s", p->target, p->target);
    }
    const uint32_t hd = m->hp.head_dim;
    const bool permute = (mod == VKM_MOD_Q || mod == VKM_MOD_K) && layout != m->hp.rope_layout;
    for (uint32_t o = 0; o < out; o++) {
        uint32_t src = permute ? (o / hd) * hd + vkm_rope_row_map(m->hp.rope_layout, layout, o % hd, hd) : o;
        for (uint32_t k = 0; k < r; k++) bt[(uint64_t)(off + k) * out + o] = b[(uint64_t)src * r + k];
    }
    free(b);
    return VKM_OK;
}

vkm_status vkm_bank_load(vkm_model *m, const vkm_manifest *man)
{
    vkm_err *err = m->d->err;
    const vkm_hparams *hp = &m->hp;
    vkm_bank *b = calloc(1, sizeof *b);
    if (!b) return vkm_fail(err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    m->bank = b;
    vkm_arena_init(&b->arena, m->d, VKM_MEM_DEVICE, 0);
    vkm_adapter_src *ad = calloc(VKM_MAX_EXPERTS, sizeof *ad);
    if (!ad) return vkm_fail(err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    vkm_status s = VKM_OK;
    uint32_t mi[VKM_MAX_EXPERTS]; /* bank expert -> manifest expert */
    for (uint32_t i = 0; i < man->n_experts && s == VKM_OK; i++) {
        const vkm_manifest_expert *me = &man->experts[i];
        if (!me->lora[0]) continue; /* full fine-tunes: the FFN-expert path */
        uint32_t e = b->n_exp;
        s = vkm_adapter_open(me->lora, &ad[e], err);
        if (s != VKM_OK) {
            vkm_err_prefix(err, "%s: experts[%u] (%s)", man->path, i, me->name);
            break;
        }
        mi[e] = i;
        snprintf(b->names[e], sizeof b->names[e], "%s", me->name);
        snprintf(b->paths[e], sizeof b->paths[e], "%s", me->lora);
        for (uint32_t p = 0; p < ad[e].n_pairs; p++) {
            const vkm_lora_pair *pr = &ad[e].pairs[p];
            uint32_t in, out;
            site_dims(hp, pr->module, &in, &out);
            if (pr->layer >= hp->n_layers || pr->a->ne[0] != in || pr->b->ne[1] != out) {
                s = vkm_fail(err, VKM_ERR_MISMATCH, "%s: %s: shape does not fit the base (hint: wrong "
                             "base model?)", me->lora, pr->target);
                break;
            }
            if (pr->rank > b->rmax) b->rmax = pr->rank;
        }
        b->n_exp++;
    }
    if (s == VKM_OK && b->n_exp == 0) s = vkm_fail(err, VKM_ERR_INVALID_ARGUMENT, "%s: no LoRA experts", man->path);
    if (s == VKM_OK && b->rmax > 256)
        s = vkm_fail(err, VKM_ERR_UNSUPPORTED, "%s: rank %u (the bank supports up to 256)", man->path, b->rmax);
    if (s == VKM_OK && !vkm_lora_rank_fits(m->d, b->rmax))
        s = vkm_fail(err, VKM_ERR_UNSUPPORTED, "%s: rank %u: its shrinks need more shared memory than the "
                     "device's %u bytes", man->path, b->rmax, m->d->caps.max_shared_bytes);
    const uint32_t n_virtual = m->n_seq + 1;
    b->n_total = b->n_exp + n_virtual;
    b->n_sites = hp->n_layers * VKM_N_MODULES;
    b->sites = calloc(b->n_sites, sizeof *b->sites);
    b->meta_host = calloc((size_t)b->n_sites * b->n_total * 4, sizeof *b->meta_host);
    if (s == VKM_OK && (!b->sites || !b->meta_host)) s = vkm_fail(err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (uint32_t l = 0; l < hp->n_layers && s == VKM_OK; l++)
        for (uint32_t mod = 0; mod < VKM_N_MODULES && s == VKM_OK; mod++) {
            uint32_t si = vkm_site_index(l, mod);
            vkm_site *site = &b->sites[si];
            site_dims(hp, mod, &site->in, &site->out);
            uint32_t *meta = b->meta_host + (size_t)si * b->n_total * 4;
            uint32_t off = 0;
            for (uint32_t e = 0; e < b->n_exp; e++) {
                const vkm_lora_pair *pr = find_pair(&ad[e], l, mod);
                meta[4 * e] = off;
                meta[4 * e + 1] = pr ? pr->rank : 0;
                float sc = pr ? pr->scale * man->experts[mi[e]].scale : 0.0f;
                memcpy(&meta[4 * e + 2], &sc, 4);
                off += pr ? pr->rank : 0;
            }
            site->used = off > 0;
            if (!site->used) continue;
            for (uint32_t v = 0; v < n_virtual; v++) { /* merged adapters: rmax rows each, scale 1 */
                uint32_t e = b->n_exp + v;
                float one = 1.0f;
                meta[4 * e] = off;
                meta[4 * e + 1] = b->rmax;
                memcpy(&meta[4 * e + 2], &one, 4);
                off += b->rmax;
            }
            site->rank_total = off;
            uint64_t abytes = (uint64_t)off * site->in * 4, bbytes = (uint64_t)off * site->out * 4;
            float *ah = calloc(1, abytes), *bh = calloc(1, bbytes);
            if (!ah || !bh) s = vkm_fail(err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
            for (uint32_t e = 0; e < b->n_exp && s == VKM_OK; e++) {
                const vkm_lora_pair *pr = find_pair(&ad[e], l, mod);
                if (pr) s = put_pair(m, pr, ad[e].rope_layout, mod, site->in, site->out, meta[4 * e], ah, bh);
            }
            if (s == VKM_OK) s = vkm_arena_alloc(&b->arena, abytes, 16, &site->a);
            if (s == VKM_OK) s = vkm_arena_alloc(&b->arena, bbytes, 16, &site->bt);
            if (s == VKM_OK) s = vkm_upload(m->d, site->a, ah, abytes);
            if (s == VKM_OK) s = vkm_upload(m->d, site->bt, bh, bbytes);
            if (s == VKM_ERR_LIMIT)
                vkm_err_prefix(err, "%s: the bank's matrices for blk.%u.%s", man->path, l, vkm_module_gguf_name(mod));
            b->bytes += abytes + bbytes;
            free(ah);
            free(bh);
        }
    uint64_t mbytes = (uint64_t)b->n_sites * b->n_total * 16;
    if (s == VKM_OK) s = vkm_arena_alloc(&b->arena, mbytes, 16, &b->meta);
    if (s == VKM_OK) s = vkm_upload(m->d, b->meta, b->meta_host, mbytes);
    for (uint32_t e = 0; e < VKM_MAX_EXPERTS; e++) vkm_adapter_close(&ad[e]);
    free(ad);
    return s;
}

vkm_status vkm_bank_init_ffn(vkm_model *m, uint32_t n, const char *const *names, const char *const *paths)
{
    const vkm_hparams *hp = &m->hp;
    vkm_bank *b = calloc(1, sizeof *b);
    if (!b) return vkm_fail(m->d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    m->bank = b;
    vkm_arena_init(&b->arena, m->d, VKM_MEM_DEVICE, 1u << 20);
    b->n_exp = b->n_total = n;
    b->n_sites = hp->n_layers * VKM_N_MODULES;
    b->sites = calloc(b->n_sites, sizeof *b->sites);
    b->meta_host = calloc((size_t)b->n_sites * n * 4, sizeof *b->meta_host);
    if (!b->sites || !b->meta_host) return vkm_fail(m->d->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (uint32_t i = 0; i < n; i++) {
        snprintf(b->names[i], sizeof b->names[i], "%s", names[i]);
        snprintf(b->paths[i], sizeof b->paths[i], "%s", paths[i]);
    }
    for (uint32_t p = 0; p < b->n_sites; p++) site_dims(hp, p % VKM_N_MODULES, &b->sites[p].in, &b->sites[p].out);
    vkm_status s = vkm_arena_alloc(&b->arena, 16ull * b->n_sites * n, 16, &b->meta);
    if (s == VKM_OK) s = vkm_upload(m->d, b->meta, b->meta_host, 16ull * b->n_sites * n);
    return s;
}

void vkm_bank_free(vkm_model *m)
{
    vkm_bank *b = m->bank;
    if (!b) return;
    vkm_arena_destroy(&b->arena);
    free(b->sites);
    free(b->meta_host);
    free(b);
    m->bank = NULL;
}
