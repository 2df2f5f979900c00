/*
 * manifest_check.c — checks that the files a parsed manifest names fit together: the base
 * model, each expert's adapter or fine-tuned model against it, and equal ranks where merge
 * "average" composes adapters.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loader.h"

/* A fine-tuned model shares the base's architecture and every shape. */
static vkm_status same_shape(const vkm_hparams *b, const vkm_hparams *x, const char *key,
                             const char *path, vkm_err *e)
{
    const struct {
        const char *what;
        uint32_t base, exp;
    } v[] = {{"vocabulary size", b->n_vocab, x->n_vocab}, {"embedding size", b->dim, x->dim},
             {"layer count", b->n_layers, x->n_layers},    {"head count", b->n_heads, x->n_heads},
             {"kv head count", b->n_kv_heads, x->n_kv_heads}, {"head size", b->head_dim, x->head_dim},
             {"feed-forward size", b->ffn_dim, x->ffn_dim}};
    if (strcmp(b->arch, x->arch))
        return vkm_fail(e, VKM_ERR_MISMATCH, "%s: %s is a '%s' model but the base is '%s'", key, path,
                        x->arch, b->arch);
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        if (v[i].base != v[i].exp)
            return vkm_fail(e, VKM_ERR_MISMATCH, "%s: %s has %s %u but the base has %u (hint: wrong base model?)",
                            key, path, v[i].what, v[i].exp, v[i].base);
    return VKM_OK;
}

/* Equal ranks for every weight two LoRA experts both adapt (first[] holds the expert and rank
 * seen first for each target, keyed by layer * VKM_MOD_COUNT + module). */
typedef struct rank_seen {
    int expert;
    uint32_t rank;
} rank_seen;

static vkm_status check_ranks(const vkm_adapter_src *a, uint32_t i, rank_seen *seen, uint32_t n_seen,
                              vkm_err *e)
{
    for (uint32_t k = 0; k < a->n_pairs; k++) {
        const vkm_lora_pair *p = &a->pairs[k];
        uint64_t slot = (uint64_t)p->layer * VKM_MOD_COUNT + p->module;
        if (slot >= n_seen) continue; /* beyond the base's layers: validate already refused it */
        if (seen[slot].expert < 0) {
            seen[slot].expert = (int)i;
            seen[slot].rank = p->rank;
        } else if (seen[slot].rank != p->rank) {
            return vkm_fail(e, VKM_ERR_MISMATCH,
                            "experts[%u].lora: rank %u for %s but experts[%d] has rank %u; merge \"average\" "
                            "needs equal ranks (use merge \"exact\")",
                            i, p->rank, p->target, seen[slot].expert, seen[slot].rank);
        }
    }
    return VKM_OK;
}

vkm_status vkm_manifest_check(const vkm_manifest *m, vkm_err *e)
{
    vkm_model_src base;
    vkm_status s = vkm_model_src_open(m->base, &base, e);
    if (s) {
        vkm_err_prefix(e, "base");
        return s;
    }
    bool ranks = m->aggregate == VKM_AGG_PARAMETER && m->merge == VKM_MERGE_AVERAGE;
    uint32_t n_seen = base.hp.n_layers * VKM_MOD_COUNT;
    rank_seen *seen = ranks ? malloc(n_seen * sizeof *seen) : NULL;
    if (ranks && !seen) s = vkm_fail(e, VKM_ERR_OUT_OF_HOST_MEMORY, "out of memory");
    for (uint32_t k = 0; seen && k < n_seen; k++) seen[k].expert = -1;
    for (uint32_t i = 0; i < m->n_experts && !s; i++) {
        const vkm_manifest_expert *x = &m->experts[i];
        if (x->lora[0]) {
            vkm_adapter_src a;
            s = vkm_adapter_open(x->lora, &a, e);
            if (!s) s = vkm_adapter_validate(&a, &base, e);
            if (s) vkm_err_prefix(e, "experts[%u].lora", i);
            if (!s && seen) s = check_ranks(&a, i, seen, n_seen, e);
            vkm_adapter_close(&a);
        } else {
            vkm_model_src f;
            char key[32];
            snprintf(key, sizeof key, "experts[%u].model", i);
            s = vkm_model_src_open(x->model, &f, e);
            if (s) vkm_err_prefix(e, "%s", key);
            else s = same_shape(&base.hp, &f.hp, key, x->model, e);
            vkm_model_src_close(&f);
        }
    }
    free(seen);
    vkm_model_src_close(&base);
    return s;
}
