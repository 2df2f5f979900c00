/*
 * moe_bake.c — task-level exact parameter aggregation ("aggregate": "parameter", "merge":
 * "exact", granularity "task"): at load, the weighted LoRA deltas sum_e w_e s_e B_e A_e are added
 * into the base weights on the GPU (vkm_merge_lora_apply, shared with `vkmoe merge`), so the
 * MoErged model runs at the base model's speed, with no bank and no routing.
 */
#include <stdlib.h>
#include <string.h>

#include "merge.h"
#include "model.h"

static vkm_tensor *layer_weight(vkm_layer *ly, vkm_module mod)
{
    switch (mod) {
    case VKM_MOD_Q: return &ly->wq;
    case VKM_MOD_K: return &ly->wk;
    case VKM_MOD_V: return &ly->wv;
    case VKM_MOD_O: return &ly->wo;
    case VKM_MOD_GATE: return &ly->w_gate;
    case VKM_MOD_UP: return &ly->w_up;
    default: return &ly->w_down;
    }
}

/* Task weights in manifest order: the "fixed" weights, or 1/E for uniform. */
static void task_weights(const vkm_manifest *man, float *w, uint32_t *n_lora)
{
    *n_lora = 0;
    for (uint32_t i = 0; i < man->n_experts; i++) *n_lora += man->experts[i].lora[0] != 0;
    for (uint32_t i = 0; i < man->n_experts; i++)
        w[i] = !man->experts[i].lora[0] ? 0.0f
             : man->router.policy == VKM_POLICY_FIXED ? man->router.fixed[i] : 1.0f / (float)*n_lora;
}

vkm_status vkm_moe_bake_task(vkm_model *m, const vkm_manifest *man)
{
    vkm_err *err = m->d->err;
    if (man->router.policy != VKM_POLICY_FIXED && man->router.policy != VKM_POLICY_UNIFORM)
        return vkm_fail(err, VKM_ERR_INVALID_ARGUMENT, "%s: task-level weights come from policy fixed or "
                        "uniform, not %s", man->path, vkm_policy_name(man->router.policy));
    float w[VKM_MAX_EXPERTS];
    uint32_t n_lora;
    task_weights(man, w, &n_lora);
    vkm_adapter_src *ad = calloc(VKM_MAX_EXPERTS, sizeof *ad);
    if (!ad) return vkm_fail(err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    vkm_status s = VKM_OK;
    for (uint32_t i = 0; i < man->n_experts && s == VKM_OK; i++)
        if (man->experts[i].lora[0] && w[i] != 0.0f) s = vkm_adapter_open(man->experts[i].lora, &ad[i], err);
    vkm_arena scratch;
    vkm_arena_init(&scratch, m->d, VKM_MEM_DEVICE, 0);
    const uint32_t hd = m->hp.head_dim;
    for (uint32_t l = 0; l < m->hp.n_layers && s == VKM_OK; l++)
        for (uint32_t mod = 0; mod < VKM_MOD_COUNT && s == VKM_OK; mod++) {
            vkm_merge_lora_term terms[VKM_MAX_EXPERTS];
            uint32_t *maps[VKM_MAX_EXPERTS] = {NULL};
            uint32_t nt = 0;
            vkm_tensor *wt = layer_weight(&m->layers[l], (vkm_module)mod);
            for (uint32_t i = 0; i < man->n_experts && s == VKM_OK; i++) {
                if (!ad[i].n_pairs) continue;
                const vkm_lora_pair *pr = NULL;
                for (uint32_t p = 0; p < ad[i].n_pairs && !pr; p++)
                    if (ad[i].pairs[p].layer == l && ad[i].pairs[p].module == (vkm_module)mod) pr = &ad[i].pairs[p];
                if (!pr) continue;
                const uint32_t r = pr->rank, in = (uint32_t)pr->a->ne[0], out = (uint32_t)pr->b->ne[1];
                float *host = malloc(4ull * r * (in + out));
                if (!host) {
                    s = vkm_fail(err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
                    break;
                }
                vkm_merge_lora_term *t = &terms[nt];
                s = vkm_to_f32(pr->a->dtype, pr->a->data, (uint64_t)r * in, host);
                if (s == VKM_OK) s = vkm_to_f32(pr->b->dtype, pr->b->data, (uint64_t)r * out, host + (size_t)r * in);
                if (s == VKM_OK) s = vkm_arena_alloc(&scratch, 4ull * r * in, 16, &t->a);
                if (s == VKM_OK) s = vkm_arena_alloc(&scratch, 4ull * r * out, 16, &t->b);
                if (s == VKM_OK) s = vkm_upload(m->d, t->a, host, 4ull * r * in);
                if (s == VKM_OK) s = vkm_upload(m->d, t->b, host + (size_t)r * in, 4ull * r * out);
                free(host);
                t->rank = r;
                t->rows_b = out;
                t->coef = w[i] * pr->scale * man->experts[i].scale;
                t->b_row_map = NULL;
                if (s == VKM_OK && (mod == VKM_MOD_Q || mod == VKM_MOD_K) && ad[i].rope_layout != m->hp.rope_layout) {
                    uint32_t *map = maps[nt] = malloc(4ull * out);
                    if (!map) s = vkm_fail(err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
                    for (uint32_t o = 0; map && o < out; o++)
                        map[o] = (o / hd) * hd + vkm_rope_row_map(m->hp.rope_layout, ad[i].rope_layout, o % hd, hd);
                    t->b_row_map = map;
                }
                nt++;
            }
            if (s == VKM_OK && nt) s = vkm_merge_lora_apply(m->d, wt, terms, nt);
            for (uint32_t i = 0; i < nt; i++) free(maps[i]);
            vkm_arena_destroy(&scratch);
            vkm_arena_init(&scratch, m->d, VKM_MEM_DEVICE, 0);
        }
    vkm_arena_destroy(&scratch);
    for (uint32_t i = 0; i < VKM_MAX_EXPERTS; i++) vkm_adapter_close(&ad[i]);
    free(ad);
    if (s != VKM_OK) vkm_err_prefix(err, "%s: merging the experts into the base weights", man->path);
    return s;
}
