/*
 * hfconfig.c — the Hugging Face side of a model: config.json (Llama, Mistral, Qwen2, Mixtral)
 * into vkm_hparams, the mapping between Hugging Face tensor names and the internal (GGUF) names,
 * the hyperparameter sanity checks shared with GGUF, and the q/k RoPE row permutation.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "loader.h"

/* ---- tensor names ------------------------------------------------------------------------- */
static const struct {
    const char *hf, *internal;
} global_names[] = {
    {"model.embed_tokens.weight", "token_embd.weight"},
    {"model.norm.weight", "output_norm.weight"},
    {"lm_head.weight", "output.weight"},
};

/* Suffixes after "model.layers.N." / "blk.N.". */
static const struct {
    const char *hf, *internal;
} layer_names[] = {
    {"input_layernorm.weight", "attn_norm.weight"},
    {"post_attention_layernorm.weight", "ffn_norm.weight"},
    {"self_attn.q_proj.weight", "attn_q.weight"},
    {"self_attn.k_proj.weight", "attn_k.weight"},
    {"self_attn.v_proj.weight", "attn_v.weight"},
    {"self_attn.o_proj.weight", "attn_output.weight"},
    {"self_attn.q_proj.bias", "attn_q.bias"},
    {"self_attn.k_proj.bias", "attn_k.bias"},
    {"self_attn.v_proj.bias", "attn_v.bias"},
    {"mlp.gate_proj.weight", "ffn_gate.weight"},
    {"mlp.up_proj.weight", "ffn_up.weight"},
    {"mlp.down_proj.weight", "ffn_down.weight"},
    {"block_sparse_moe.gate.weight", "ffn_gate_inp.weight"},
};

/* Mixtral experts: "block_sparse_moe.experts.E.<w>.weight" <-> "<ffn>.E.weight". */
static const struct {
    const char *w, *ffn;
} expert_names[] = {{"w1", "ffn_gate"}, {"w3", "ffn_up"}, {"w2", "ffn_down"}};

/* Parses a decimal index without sign or leading zeros (at most 9 digits) at *p; advances. */
static bool parse_index(const char **p, uint32_t *out)
{
    const char *s = *p;
    uint32_t v = 0;
    int n = 0;
    while (s[n] >= '0' && s[n] <= '9' && n < 10) v = v * 10 + (uint32_t)(s[n++] - '0');
    if (n == 0 || n > 9 || (n > 1 && s[0] == '0')) return false;
    *out = v;
    *p = s + n;
    return true;
}

static bool put(char *out, size_t cap, int n) { return n >= 0 && (size_t)n < cap; }

/* moetify's names under "model.layers.L." (rest): experts and routers of the mixed modules.
 * mlp.experts.E.{gate,up,down}_proj.weight, mlp.{gate,up,down}_proj.experts.E.weight ->
 * blk.L.ffn_{gate,up,down}.E.weight; self_attn.{q,k,v}_proj.experts.E.weight ->
 * blk.L.attn_{q,k,v}.E.weight; mlp.router.weight -> blk.L.ffn_gate_inp.weight;
 * mlp.{gate,up,down}_proj.router.weight -> blk.L.ffn_{gate,up,down}_inp.weight (fine-grained);
 * self_attn.{q,k,v}_proj.router.weight -> blk.L.attn_{q,k,v}_inp.weight; a gate-less
 * checkpoint's router buffers (".router", equal weights) -> the same names ending ".gateless". */
static bool moetify_name(const char *rest, uint32_t layer, char *out, size_t cap)
{
    static const struct { const char *hf, *in; } mods[] = {
        {"gate_proj", "ffn_gate"}, {"up_proj", "ffn_up"}, {"down_proj", "ffn_down"},
        {"q_proj", "attn_q"}, {"k_proj", "attn_k"}, {"v_proj", "attn_v"}};
    char mod[16], tail[16];
    uint32_t ex;
    int n = 0;
    if (sscanf(rest, "mlp.experts.%9u.%15[a-z_].%15[a-z]%n", &ex, mod, tail, &n) == 3 && !rest[n] &&
        !strcmp(tail, "weight")) {
        for (int i = 0; i < 3; i++)
            if (!strcmp(mod, mods[i].hf)) return put(out, cap, snprintf(out, cap, "blk.%u.%s.%u.weight", layer, mods[i].in, ex));
        return false;
    }
    if (!strcmp(rest, "mlp.router.weight")) return put(out, cap, snprintf(out, cap, "blk.%u.ffn_gate_inp.weight", layer));
    if (!strcmp(rest, "mlp.router")) return put(out, cap, snprintf(out, cap, "blk.%u.ffn_gate_inp.gateless", layer));
    for (int i = 0; i < 6; i++) {
        char pre[40];
        snprintf(pre, sizeof pre, "%s.%s.", i < 3 ? "mlp" : "self_attn", mods[i].hf);
        const size_t k = strlen(pre);
        if (strncmp(rest, pre, k)) continue;
        const char *q = rest + k;
        if (!strcmp(q, "router.weight")) return put(out, cap, snprintf(out, cap, "blk.%u.%s_inp.weight", layer, mods[i].in));
        if (!strcmp(q, "router")) return put(out, cap, snprintf(out, cap, "blk.%u.%s_inp.gateless", layer, mods[i].in));
        n = 0;
        if (sscanf(q, "experts.%9u.weight%n", &ex, &n) == 1 && !q[n])
            return put(out, cap, snprintf(out, cap, "blk.%u.%s.%u.weight", layer, mods[i].in, ex));
    }
    return false;
}

/* Maps one name between the two conventions (layer prefix, per-layer table, experts). */
static bool map_name(const char *in, char *out, size_t cap, bool to_internal)
{
    for (size_t i = 0; i < sizeof global_names / sizeof global_names[0]; i++)
        if (!strcmp(in, to_internal ? global_names[i].hf : global_names[i].internal))
            return put(out, cap, snprintf(out, cap, "%s",
                                          to_internal ? global_names[i].internal : global_names[i].hf));
    const char *from_pre = to_internal ? "model.layers." : "blk.";
    const char *to_pre = to_internal ? "blk." : "model.layers.";
    size_t k = strlen(from_pre);
    uint32_t layer, ex;
    const char *p = in + k;
    if (strncmp(in, from_pre, k) || !parse_index(&p, &layer) || *p++ != '.') return false;
    for (size_t i = 0; i < sizeof layer_names / sizeof layer_names[0]; i++)
        if (!strcmp(p, to_internal ? layer_names[i].hf : layer_names[i].internal))
            return put(out, cap, snprintf(out, cap, "%s%u.%s", to_pre, layer,
                                          to_internal ? layer_names[i].internal : layer_names[i].hf));
    if (to_internal && moetify_name(p, layer, out, cap)) return true;
    for (size_t i = 0; i < sizeof expert_names / sizeof expert_names[0]; i++) {
        const char *q = p;
        if (to_internal) {
            const char *pre = "block_sparse_moe.experts.";
            size_t w = strlen(expert_names[i].w);
            if (strncmp(q, pre, strlen(pre))) return false;
            q += strlen(pre);
            if (!parse_index(&q, &ex) || *q++ != '.' || strncmp(q, expert_names[i].w, w) ||
                strcmp(q + w, ".weight"))
                continue;
            return put(out, cap, snprintf(out, cap, "blk.%u.%s.%u.weight", layer, expert_names[i].ffn, ex));
        }
        size_t f = strlen(expert_names[i].ffn);
        if (strncmp(q, expert_names[i].ffn, f) || q[f] != '.') continue;
        q += f + 1;
        if (!parse_index(&q, &ex) || strcmp(q, ".weight")) continue;
        return put(out, cap, snprintf(out, cap, "model.layers.%u.block_sparse_moe.experts.%u.%s.weight",
                                      layer, ex, expert_names[i].w));
    }
    return false;
}

bool vkm_hf_to_internal(const char *hf, char *out, size_t cap) { return map_name(hf, out, cap, true); }
bool vkm_internal_to_hf(const char *in, char *out, size_t cap) { return map_name(in, out, cap, false); }

vkm_rope_layout vkm_gguf_rope_layout(const char *arch)
{
    return arch && !strcmp(arch, "qwen2") ? VKM_ROPE_HALF : VKM_ROPE_INTERLEAVED;
}

uint32_t vkm_rope_row_map(vkm_rope_layout from, vkm_rope_layout to, uint32_t row, uint32_t head_dim)
{
    if (from == to || head_dim < 2 || head_dim % 2) return row;
    uint32_t head = row / head_dim, r = row % head_dim, half = head_dim / 2;
    uint32_t out = from == VKM_ROPE_HALF ? 2 * (r % half) + r / half /* half -> interleaved */
                                         : (r % 2) * half + r / 2;   /* interleaved -> half */
    return head * head_dim + out;
}

/* ---- hyperparameters ---------------------------------------------------------------------- */
vkm_status vkm_hparams_check(const vkm_hparams *hp, const char *path, vkm_err *e)
{
    const struct {
        const char *name;
        uint32_t v, lo, hi;
    } lim[] = {
        {"vocabulary size", hp->n_vocab, 1, VKM_MAX_VOCAB},
        {"embedding size", hp->dim, 1, VKM_MAX_DIM},
        {"layer count", hp->n_layers, 1, VKM_MAX_LAYERS},
        {"head count", hp->n_heads, 1, VKM_MAX_HEADS},
        {"kv head count", hp->n_kv_heads, 1, hp->n_heads},
        {"head size", hp->head_dim, 2, VKM_MAX_HEAD_DIM},
        {"feed-forward size", hp->ffn_dim, 1, VKM_MAX_FFN},
        {"context length", hp->ctx_len, 1, VKM_MAX_CTX},
        {"expert count", hp->n_experts, 0, VKM_MAX_MOE_EXPERTS},
        {"experts used per token", hp->n_experts_used, hp->n_experts ? 1 : 0, hp->n_experts},
    };
    for (size_t i = 0; i < sizeof lim / sizeof lim[0]; i++)
        if (lim[i].v < lim[i].lo || lim[i].v > lim[i].hi)
            return vkm_fail(e, VKM_ERR_FORMAT, "%s: %s %u is out of range (%u to %u)", path,
                            lim[i].name, lim[i].v, lim[i].lo, lim[i].hi);
    if (hp->n_heads % hp->n_kv_heads)
        return vkm_fail(e, VKM_ERR_FORMAT, "%s: head count %u is not a multiple of the kv head count %u",
                        path, hp->n_heads, hp->n_kv_heads);
    if (hp->head_dim % 2)
        return vkm_fail(e, VKM_ERR_FORMAT, "%s: head size %u is odd (RoPE rotates pairs)", path,
                        hp->head_dim);
    if ((uint64_t)hp->n_heads * hp->head_dim > VKM_MAX_DIM)
        return vkm_fail(e, VKM_ERR_FORMAT, "%s: %u heads of %u exceed the limit", path, hp->n_heads,
                        hp->head_dim);
    if (!(hp->rope_theta > 0) || !isfinite(hp->rope_theta))
        return vkm_fail(e, VKM_ERR_FORMAT, "%s: RoPE base %g must be a positive number", path,
                        (double)hp->rope_theta);
    if (!(hp->norm_eps > 0) || !(hp->norm_eps < 1))
        return vkm_fail(e, VKM_ERR_FORMAT, "%s: RMSNorm epsilon %g must be in (0, 1)", path,
                        (double)hp->norm_eps);
    return VKM_OK;
}

/* ---- config.json -------------------------------------------------------------------------- */
static const struct {
    const char *cls, *model_type, *arch;
    bool moe;
    float theta;
    uint32_t ctx;
} hf_archs[] = {
    {"LlamaForCausalLM", "llama", "llama", false, 10000.0f, 2048},
    {"MistralForCausalLM", "mistral", "mistral", false, 10000.0f, 131072},
    {"Qwen2ForCausalLM", "qwen2", "qwen2", false, 10000.0f, 32768},
    {"MixtralForCausalLM", "mixtral", "llama", true, 1e6f, 131072},
    {"MoeLlamaForCausalLM", "moellama", "llama", true, 10000.0f, 2048}, /* moetify */
};

typedef struct cfg {
    const cJSON *root;
    const char *path;
    vkm_err *e;
} cfg;

/* An optional unsigned key (absent or null: dflt) in [lo, hi]. */
static vkm_status get_u32(cfg *c, const char *key, uint32_t dflt, uint32_t lo, uint32_t hi,
                          bool required, uint32_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->root, key);
    int64_t x;
    if (!v || cJSON_IsNull(v)) {
        if (required) return vkm_fail(c->e, VKM_ERR_FORMAT, "%s: %s is missing", c->path, key);
        *out = dflt;
        return VKM_OK;
    }
    if (!vkm_json_int(v, lo, hi, &x))
        return vkm_fail(c->e, VKM_ERR_FORMAT, "%s: %s: expected an integer from %u to %u, got %s",
                        c->path, key, lo, hi, vkm_json_type_name(v));
    *out = (uint32_t)x;
    return VKM_OK;
}

static vkm_status get_f32(cfg *c, const char *key, float dflt, float *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->root, key);
    double d;
    if (!v || cJSON_IsNull(v)) {
        *out = dflt;
        return VKM_OK;
    }
    if (!vkm_json_num(v, &d) || d <= 0 || d > 1e30)
        return vkm_fail(c->e, VKM_ERR_FORMAT, "%s: %s: expected a positive number, got %s", c->path,
                        key, vkm_json_type_name(v));
    *out = (float)d;
    return VKM_OK;
}

static vkm_status get_bool(cfg *c, const char *key, bool dflt, bool *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->root, key);
    if (!v || cJSON_IsNull(v)) {
        *out = dflt;
        return VKM_OK;
    }
    if (!cJSON_IsBool(v))
        return vkm_fail(c->e, VKM_ERR_FORMAT, "%s: %s: expected true or false, got %s", c->path, key,
                        vkm_json_type_name(v));
    *out = cJSON_IsTrue(v);
    return VKM_OK;
}

/* bos_token_id / eos_token_id: an integer, a list (the first counts), or null (-1). */
static vkm_status get_token(cfg *c, const char *key, int32_t dflt, int32_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->root, key);
    int64_t x;
    *out = dflt;
    if (!v) return VKM_OK;
    if (cJSON_IsNull(v)) {
        *out = -1;
        return VKM_OK;
    }
    if (cJSON_IsArray(v)) v = v->child;
    if (!vkm_json_int(v, 0, INT32_MAX, &x))
        return vkm_fail(c->e, VKM_ERR_FORMAT, "%s: %s: expected a token id, got %s", c->path, key,
                        vkm_json_type_name(v));
    *out = (int32_t)x;
    return VKM_OK;
}

/* The architecture from "architectures"[0], else "model_type". */
static vkm_status get_arch(cfg *c, size_t *which)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(c->root, "architectures");
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(c->root, "model_type");
    const char *name = NULL;
    bool by_class = false;
    if (cJSON_IsArray(a) && cJSON_IsString(a->child)) {
        name = a->child->valuestring;
        by_class = true;
    } else if (cJSON_IsString(mt)) {
        name = mt->valuestring;
    } else {
        return vkm_fail(c->e, VKM_ERR_FORMAT, "%s: neither architectures nor model_type says what model this is",
                        c->path);
    }
    for (size_t i = 0; i < sizeof hf_archs / sizeof hf_archs[0]; i++)
        if (!strcmp(name, by_class ? hf_archs[i].cls : hf_archs[i].model_type)) {
            *which = i;
            return VKM_OK;
        }
    return vkm_fail(c->e, VKM_ERR_UNSUPPORTED,
                    "%s: architecture '%.64s' is not supported (LlamaForCausalLM, MistralForCausalLM, "
                    "Qwen2ForCausalLM, MixtralForCausalLM, MoeLlamaForCausalLM are)",
                    c->path, name);
}

/* Features the engine does not implement: refuse rather than run a different model. */
static vkm_status check_unsupported(cfg *c, size_t arch)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->root, "rope_scaling");
    if (v && !cJSON_IsNull(v))
        return vkm_fail(c->e, VKM_ERR_UNSUPPORTED, "%s: rope_scaling is not supported", c->path);
    v = cJSON_GetObjectItemCaseSensitive(c->root, "hidden_act");
    if (v && (!cJSON_IsString(v) || strcmp(v->valuestring, "silu")))
        return vkm_fail(c->e, VKM_ERR_UNSUPPORTED, "%s: hidden_act must be \"silu\"", c->path);
    bool attn_bias, mlp_bias;
    vkm_status s = get_bool(c, "attention_bias", false, &attn_bias);
    if (s || (s = get_bool(c, "mlp_bias", false, &mlp_bias))) return s;
    if ((attn_bias && strcmp(hf_archs[arch].arch, "qwen2")) || mlp_bias)
        return vkm_fail(c->e, VKM_ERR_UNSUPPORTED, "%s: %s is not supported", c->path,
                        mlp_bias ? "mlp_bias" : "attention_bias");
    return VKM_OK;
}

/* A moetify flag: "key" or its stored form "_key" (either true means true). */
static vkm_status moetify_bool(cfg *c, const char *key, bool *out)
{
    char under[40];
    snprintf(under, sizeof under, "_%s", key);
    bool a = false, b = false;
    vkm_status s = get_bool(c, key, false, &a);
    if (!s) s = get_bool(c, under, false, &b);
    *out = a || b;
    return s;
}

/* moetify's MoeLlamaConfig: which modules are mixtures and how they are routed. */
static vkm_status moetify_flags(cfg *c, vkm_hparams *hp)
{
    bool mlp = true, q = false, k = false, v = false, deep = false, global = false;
    vkm_status s = get_bool(c, "moe_mlp", true, &mlp);
    if (!s) s = get_bool(c, "moe_mlp_fg", false, &hp->moe_fine);
    if (!s) s = get_bool(c, "moe_query", false, &q);
    if (!s) s = get_bool(c, "moe_key", false, &k);
    if (!s) s = get_bool(c, "moe_value", false, &v);
    if (!s) s = moetify_bool(c, "always_on", &hp->moe_always_on);
    if (!s) s = moetify_bool(c, "gateless", &hp->moe_gateless);
    if (!s) s = moetify_bool(c, "deep_router", &deep);
    if (!s) s = moetify_bool(c, "global_router", &global);
    if (s) return s;
    hp->moe_attn = (q ? 1u : 0u) | (k ? 2u : 0u) | (v ? 4u : 0u);
    if (!mlp && !hp->moe_fine)
        return vkm_fail(c->e, VKM_ERR_UNSUPPORTED, "%s: moe_mlp and moe_mlp_fg are both false (dense FFNs in a "
                        "moetify checkpoint are not supported)", c->path);
    if (deep || global)
        return vkm_fail(c->e, VKM_ERR_UNSUPPORTED, "%s: moetify's %s router is not supported", c->path,
                        deep ? "deep" : "global");
    if (hp->moe_always_on && hp->moe_gateless)
        return vkm_fail(c->e, VKM_ERR_FORMAT, "%s: always_on and gateless together", c->path);
    if (hp->moe_always_on && hp->n_experts < 2)
        return vkm_fail(c->e, VKM_ERR_FORMAT, "%s: always_on needs two experts or more", c->path);
    const cJSON *idx = cJSON_GetObjectItemCaseSensitive(c->root, "moe_layer_idx");
    if (idx && cJSON_IsArray(idx) && cJSON_GetArraySize(idx) > 0) {
        uint32_t n = hp->n_layers;
        bool all = (uint32_t)cJSON_GetArraySize(idx) == n;
        for (uint32_t l = 0; l < n && all; l++) {
            const cJSON *x = cJSON_GetArrayItem(idx, (int)l);
            all = cJSON_IsNumber(x) && x->valuedouble == (double)l;
        }
        if (!all)
            return vkm_fail(c->e, VKM_ERR_UNSUPPORTED, "%s: moe_layer_idx names only some layers (dense layers in a "
                            "moetify checkpoint are not supported)", c->path);
    }
    return VKM_OK;
}

vkm_status vkm_hf_config_parse(const char *json, size_t len, const char *path, vkm_hparams *hp,
                               vkm_err *e)
{
    memset(hp, 0, sizeof *hp);
    cJSON *root;
    vkm_status s = vkm_json_parse(json, len, path, &root, e);
    if (s) return s;
    cfg c = {root, path, e};
    size_t a = 0;
    if (!cJSON_IsObject(root))
        s = vkm_fail(e, VKM_ERR_FORMAT, "%s: config is %s, not an object", path, vkm_json_type_name(root));
    if (!s) s = get_arch(&c, &a);
    if (!s) s = check_unsupported(&c, a);
    if (!s) {
        snprintf(hp->arch, sizeof hp->arch, "%s", hf_archs[a].arch);
        hp->rope_layout = VKM_ROPE_HALF;
        hp->qkv_bias = !strcmp(hf_archs[a].arch, "qwen2");
        s = get_u32(&c, "hidden_size", 0, 1, VKM_MAX_DIM, true, &hp->dim);
    }
    if (!s) s = get_u32(&c, "num_hidden_layers", 0, 1, VKM_MAX_LAYERS, true, &hp->n_layers);
    if (!s) s = get_u32(&c, "num_attention_heads", 0, 1, VKM_MAX_HEADS, true, &hp->n_heads);
    if (!s) s = get_u32(&c, "num_key_value_heads", hp->n_heads, 1, VKM_MAX_HEADS, false, &hp->n_kv_heads);
    if (!s) s = get_u32(&c, "head_dim", hp->dim / hp->n_heads, 1, VKM_MAX_HEAD_DIM, false, &hp->head_dim);
    if (!s) s = get_u32(&c, "intermediate_size", 0, 1, VKM_MAX_FFN, true, &hp->ffn_dim);
    if (!s) s = get_u32(&c, "vocab_size", 0, 1, VKM_MAX_VOCAB, true, &hp->n_vocab);
    if (!s) s = get_u32(&c, "max_position_embeddings", hf_archs[a].ctx, 1, VKM_MAX_CTX, false, &hp->ctx_len);
    if (!s) s = get_f32(&c, "rope_theta", hf_archs[a].theta, &hp->rope_theta);
    if (!s) s = get_f32(&c, "rms_norm_eps", 1e-6f, &hp->norm_eps);
    if (!s) s = get_bool(&c, "tie_word_embeddings", false, &hp->tied_embeddings);
    if (!s) s = get_token(&c, "bos_token_id", -1, &hp->bos);
    if (!s) s = get_token(&c, "eos_token_id", -1, &hp->eos);
    if (!s && hf_archs[a].moe) {
        const bool moetify = !strcmp(hf_archs[a].model_type, "moellama");
        s = get_u32(&c, "num_local_experts", moetify ? 4 : 8, 1, VKM_MAX_MOE_EXPERTS, false, &hp->n_experts);
        if (!s) s = get_u32(&c, "num_experts_per_tok", 2, 1, hp->n_experts, false, &hp->n_experts_used);
        if (!s && moetify) s = moetify_flags(&c, hp);
    }
    if (!s) s = vkm_hparams_check(hp, path, e);
    cJSON_Delete(root);
    return s;
}
