/*
 * ref_files.c — reference models to GGUF / Hugging Face files with the loader's writers.
 */
#include "ref_files.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <math.h>
#include <string.h>

#include "loader.h"
#include "writer.h"

typedef struct wtensor {
    char name[96];
    const float *data;
    int64_t ne[2];
    int n_dims;
} wtensor;

/* The tensors of m under GGUF names (hf: Hugging Face names). */
static size_t list(const ref_model *m, wtensor *t, bool hf)
{
    size_t n = 0;
    const uint32_t D = m->dim, qd = m->n_heads * m->head_dim, kvd = m->n_kv_heads * m->head_dim;
#define ADD(nm_gguf, nm_hf, ptr, cols, rows, nd)                                                    \
    do {                                                                                            \
        snprintf(t[n].name, sizeof t[n].name, "%s", hf ? nm_hf : nm_gguf);                         \
        t[n].data = ptr; t[n].ne[0] = cols; t[n].ne[1] = rows; t[n].n_dims = nd; n++;               \
    } while (0)
    ADD("token_embd.weight", "model.embed_tokens.weight", m->tok_embd, D, m->vocab, 2);
    ADD("output_norm.weight", "model.norm.weight", m->output_norm, D, 1, 1);
    if (m->output != m->tok_embd) ADD("output.weight", "lm_head.weight", m->output, D, m->vocab, 2);
    for (uint32_t l = 0; l < m->n_layers; l++) {
        char g[64], h[96];
        struct { const char *g, *h; const float *p; uint32_t c, r; int nd; } L[] = {
            {"attn_norm", "input_layernorm", m->attn_norm[l], D, 1, 1},
            {"ffn_norm", "post_attention_layernorm", m->ffn_norm[l], D, 1, 1},
            {"attn_q", "self_attn.q_proj", m->wq[l], D, qd, 2},
            {"attn_k", "self_attn.k_proj", m->wk[l], D, kvd, 2},
            {"attn_v", "self_attn.v_proj", m->wv[l], D, kvd, 2},
            {"attn_output", "self_attn.o_proj", m->wo[l], qd, D, 2},
            {"ffn_gate", "mlp.gate_proj", m->w_gate[l], D, m->ffn, 2},
            {"ffn_up", "mlp.up_proj", m->w_up[l], D, m->ffn, 2},
            {"ffn_down", "mlp.down_proj", m->w_down[l], m->ffn, D, 2},
        };
        for (size_t i = 0; i < sizeof L / sizeof L[0]; i++) {
            snprintf(g, sizeof g, "blk.%u.%s.weight", l, L[i].g);
            snprintf(h, sizeof h, "model.layers.%u.%s.weight", l, L[i].h);
            ADD(g, h, L[i].p, L[i].c, L[i].r, L[i].nd);
        }
    }
#undef ADD
    return n;
}

vkm_status ref_write_gguf(const ref_model *m, const char *path, vkm_dtype dtype, vkm_err *e)
{
    return ref_write_gguf_arch(m, path, dtype, "llama", e);
}

vkm_status ref_write_gguf_arch(const ref_model *m, const char *path, vkm_dtype dtype, const char *arch, vkm_err *e)
{
    const bool qwen2 = !strcmp(arch, "qwen2");
    wtensor *t = calloc(16 + 12 * (size_t)m->n_layers, sizeof *t);
    size_t n = list(m, t, false);
    float *zeros = calloc((size_t)m->n_heads * m->head_dim, sizeof *zeros);
    for (uint32_t l = 0; qwen2 && l < m->n_layers; l++) { /* qwen2 has q/k/v biases: zero here */
        static const char *const which[3] = {"attn_q", "attn_k", "attn_v"};
        for (int k = 0; k < 3; k++) {
            snprintf(t[n].name, sizeof t[n].name, "blk.%u.%s.bias", l, which[k]);
            t[n].data = zeros;
            t[n].ne[0] = (int64_t)(k ? m->n_kv_heads : m->n_heads) * m->head_dim;
            t[n].ne[1] = 1;
            t[n].n_dims = 1;
            n++;
        }
    }
    vkm_gguf_writer *w = NULL;
    vkm_status s = vkm_gguf_writer_create(path, &w, e);
    if (s == VKM_OK) {
        char k[96];
#define KEY(suffix) (snprintf(k, sizeof k, "%s.%s", arch, suffix), k)
        vkm_gguf_writer_set_str(w, "general.architecture", arch);
        vkm_gguf_writer_set_u32(w, KEY("embedding_length"), m->dim);
        vkm_gguf_writer_set_u32(w, KEY("block_count"), m->n_layers);
        vkm_gguf_writer_set_u32(w, KEY("attention.head_count"), m->n_heads);
        vkm_gguf_writer_set_u32(w, KEY("attention.head_count_kv"), m->n_kv_heads);
        vkm_gguf_writer_set_u32(w, KEY("attention.key_length"), m->head_dim);
        vkm_gguf_writer_set_u32(w, KEY("attention.value_length"), m->head_dim);
        vkm_gguf_writer_set_u32(w, KEY("feed_forward_length"), m->ffn);
        vkm_gguf_writer_set_u32(w, KEY("context_length"), m->ctx);
        vkm_gguf_writer_set_u32(w, KEY("vocab_size"), m->vocab);
        vkm_gguf_writer_set_f32(w, KEY("rope.freq_base"), m->theta);
        vkm_gguf_writer_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), m->eps);
#undef KEY
        for (size_t i = 0; i < n; i++)
            vkm_gguf_writer_add_tensor(w, t[i].name, t[i].n_dims == 2 ? dtype : VKM_F32, t[i].n_dims, t[i].ne);
        s = vkm_gguf_writer_begin(w);
        for (size_t i = 0; i < n && s == VKM_OK; i++) {
            uint64_t cnt = (uint64_t)t[i].ne[0] * t[i].ne[1];
            if (t[i].n_dims == 2 && dtype == VKM_F16) {
                uint16_t *h = malloc(cnt * 2);
                for (uint64_t j = 0; j < cnt; j++) h[j] = vkm_f32_to_f16(t[i].data[j]);
                s = vkm_gguf_writer_write_tensor(w, t[i].name, h, cnt * 2);
                free(h);
            } else {
                s = vkm_gguf_writer_write_tensor(w, t[i].name, t[i].data, cnt * 4);
            }
        }
        if (s == VKM_OK) s = vkm_gguf_writer_finish(w);
    }
    vkm_gguf_writer_free(w);
    free(zeros);
    free(t);
    return s;
}

vkm_status ref_write_hf(const ref_model *m, const char *dir, vkm_err *e)
{
    mkdir(dir, 0755);
    char p[1100];
    snprintf(p, sizeof p, "%s/config.json", dir);
    FILE *f = fopen(p, "w");
    if (!f) return vkm_fail(e, VKM_ERR_IO, "%s: cannot write", p);
    fprintf(f, "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", "
               "\"hidden_size\": %u, \"intermediate_size\": %u, \"num_hidden_layers\": %u, "
               "\"num_attention_heads\": %u, \"num_key_value_heads\": %u, \"head_dim\": %u, "
               "\"rms_norm_eps\": %g, \"rope_theta\": %g, \"vocab_size\": %u, "
               "\"max_position_embeddings\": %u, \"tie_word_embeddings\": %s, "
               "\"hidden_act\": \"silu\", \"bos_token_id\": 1, \"eos_token_id\": 2}\n",
            m->dim, m->ffn, m->n_layers, m->n_heads, m->n_kv_heads, m->head_dim, (double)m->eps,
            (double)m->theta, m->vocab, m->ctx, m->output == m->tok_embd ? "true" : "false");
    fclose(f);
    wtensor *t = calloc(16 + 9 * (size_t)m->n_layers, sizeof *t);
    size_t n = list(m, t, true);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    vkm_st_writer *w = NULL;
    vkm_status s = vkm_st_writer_create(p, &w, e);
    if (s == VKM_OK) {
        vkm_st_writer_set_meta(w, "format", "pt");
        for (size_t i = 0; i < n; i++)
            vkm_st_writer_add_tensor(w, t[i].name, VKM_F32, t[i].n_dims, t[i].ne);
        s = vkm_st_writer_begin(w);
        for (size_t i = 0; i < n && s == VKM_OK; i++)
            s = vkm_st_writer_write_tensor(w, t[i].name, t[i].data, (uint64_t)t[i].ne[0] * t[i].ne[1] * 4);
        if (s == VKM_OK) s = vkm_st_writer_finish(w);
    }
    vkm_st_writer_free(w);
    free(t);
    return s;
}

static const char *peft_mod[REF_MOD] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                        "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
static const char *gguf_mod[REF_MOD] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};

/* B [out][r] with q/k rows moved from the base's layout to the file's. */
static float *file_b(const ref_model *m, const ref_lora *L, uint32_t mod, uint32_t out, bool base_half, bool file_half)
{
    float *b = malloc((size_t)out * L->rank * 4);
    const uint32_t hd = m->head_dim;
    bool perm = (mod == 0 || mod == 1) && base_half != file_half;
    for (uint32_t fr = 0; fr < out; fr++) {
        uint32_t br = perm ? (fr / hd) * hd + vkm_rope_row_map(file_half ? VKM_ROPE_HALF : VKM_ROPE_INTERLEAVED,
                                                             base_half ? VKM_ROPE_HALF : VKM_ROPE_INTERLEAVED, fr % hd, hd)
                           : fr;
        memcpy(b + (size_t)fr * L->rank, L->b + (size_t)br * L->rank, L->rank * 4);
    }
    return b;
}

static uint32_t out_dim(const ref_model *m, uint32_t mod)
{
    const uint32_t qd = m->n_heads * m->head_dim, kvd = m->n_kv_heads * m->head_dim;
    const uint32_t outs[REF_MOD] = {qd, kvd, kvd, m->dim, m->ffn, m->ffn, m->dim};
    return outs[mod];
}

static uint32_t in_dim(const ref_model *m, uint32_t mod)
{
    return mod == 3 ? m->n_heads * m->head_dim : mod == 6 ? m->ffn : m->dim;
}

vkm_status ref_write_peft(const ref_model *m, const ref_bank *b, uint32_t e, const char *dir,
                          bool base_half, bool rslora, vkm_err *err)
{
    mkdir(dir, 0755);
    const ref_lora *any = NULL;
    bool mods[REF_MOD] = {false};
    for (uint32_t l = 0; l < m->n_layers; l++)
        for (uint32_t mod = 0; mod < REF_MOD; mod++)
            if (ref_bank_at(b, l, mod, e)->rank) {
                any = ref_bank_at(b, l, mod, e);
                mods[mod] = true;
            }
    if (!any) return vkm_fail(err, VKM_ERR_INVALID_ARGUMENT, "expert %u adapts nothing", e);
    char p[1100];
    snprintf(p, sizeof p, "%s/adapter_config.json", dir);
    FILE *f = fopen(p, "w");
    if (!f) return vkm_fail(err, VKM_ERR_IO, "%s", p);
    double alpha = rslora ? any->scale * sqrt((double)any->rank) : any->scale * any->rank;
    fprintf(f, "{\"peft_type\": \"LORA\", \"task_type\": \"CAUSAL_LM\", \"r\": %u, \"lora_alpha\": %.9g, "
               "\"use_rslora\": %s, \"use_dora\": false, \"fan_in_fan_out\": false, \"bias\": \"none\", "
               "\"target_modules\": [", any->rank, alpha, rslora ? "true" : "false");
    bool first = true;
    for (uint32_t mod = 0; mod < REF_MOD; mod++)
        if (mods[mod]) {
            fprintf(f, "%s\"%s\"", first ? "" : ", ", strchr(peft_mod[mod], '.') + 1);
            first = false;
        }
    fprintf(f, "], \"rank_pattern\": {}, \"alpha_pattern\": {}}\n");
    fclose(f);
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", dir);
    vkm_st_writer *w = NULL;
    vkm_status s = vkm_st_writer_create(p, &w, err);
    char name[160];
    for (uint32_t pass = 0; pass < 2 && s == VKM_OK; pass++) {
        if (pass == 1) s = vkm_st_writer_begin(w);
        for (uint32_t l = 0; l < m->n_layers && s == VKM_OK; l++)
            for (uint32_t mod = 0; mod < REF_MOD && s == VKM_OK; mod++) {
                const ref_lora *L = ref_bank_at(b, l, mod, e);
                if (!L->rank) continue;
                uint32_t in = in_dim(m, mod), out = out_dim(m, mod);
                int64_t nea[2] = {in, L->rank}, neb[2] = {L->rank, out};
                snprintf(name, sizeof name, "base_model.model.model.layers.%u.%s.lora_A.weight", l, peft_mod[mod]);
                if (pass == 0) vkm_st_writer_add_tensor(w, name, VKM_F32, 2, nea);
                else s = vkm_st_writer_write_tensor(w, name, L->a, 4ull * L->rank * in);
                snprintf(name, sizeof name, "base_model.model.model.layers.%u.%s.lora_B.weight", l, peft_mod[mod]);
                if (pass == 0) vkm_st_writer_add_tensor(w, name, VKM_F32, 2, neb);
                else if (s == VKM_OK) {
                    float *fb = file_b(m, L, mod, out, base_half, true);
                    s = vkm_st_writer_write_tensor(w, name, fb, 4ull * L->rank * out);
                    free(fb);
                }
            }
    }
    if (s == VKM_OK) s = vkm_st_writer_finish(w);
    vkm_st_writer_free(w);
    return s;
}

vkm_status ref_write_gguf_lora(const ref_model *m, const ref_bank *b, uint32_t e, const char *path,
                               bool base_half, vkm_err *err)
{
    const ref_lora *any = NULL;
    for (uint32_t l = 0; l < m->n_layers && !any; l++)
        for (uint32_t mod = 0; mod < REF_MOD && !any; mod++)
            if (ref_bank_at(b, l, mod, e)->rank) any = ref_bank_at(b, l, mod, e);
    if (!any) return vkm_fail(err, VKM_ERR_INVALID_ARGUMENT, "expert %u adapts nothing", e);
    vkm_gguf_writer *w = NULL;
    vkm_status s = vkm_gguf_writer_create(path, &w, err);
    if (s != VKM_OK) return s;
    vkm_gguf_writer_set_str(w, "general.architecture", "llama");
    vkm_gguf_writer_set_str(w, "general.type", "adapter");
    vkm_gguf_writer_set_str(w, "adapter.type", "lora");
    vkm_gguf_writer_set_f32(w, "adapter.lora.alpha", any->scale * (float)any->rank);
    char name[160];
    for (uint32_t pass = 0; pass < 2 && s == VKM_OK; pass++) {
        if (pass == 1) s = vkm_gguf_writer_begin(w);
        for (uint32_t l = 0; l < m->n_layers && s == VKM_OK; l++)
            for (uint32_t mod = 0; mod < REF_MOD && s == VKM_OK; mod++) {
                const ref_lora *L = ref_bank_at(b, l, mod, e);
                if (!L->rank) continue;
                uint32_t in = in_dim(m, mod), out = out_dim(m, mod);
                int64_t nea[2] = {in, L->rank}, neb[2] = {L->rank, out};
                snprintf(name, sizeof name, "blk.%u.%s.weight.lora_a", l, gguf_mod[mod]);
                if (pass == 0) vkm_gguf_writer_add_tensor(w, name, VKM_F32, 2, nea);
                else s = vkm_gguf_writer_write_tensor(w, name, L->a, 4ull * L->rank * in);
                snprintf(name, sizeof name, "blk.%u.%s.weight.lora_b", l, gguf_mod[mod]);
                if (pass == 0) vkm_gguf_writer_add_tensor(w, name, VKM_F32, 2, neb);
                else if (s == VKM_OK) {
                    float *fb = file_b(m, L, mod, out, base_half, false);
                    s = vkm_gguf_writer_write_tensor(w, name, fb, 4ull * L->rank * out);
                    free(fb);
                }
            }
    }
    if (s == VKM_OK) s = vkm_gguf_writer_finish(w);
    vkm_gguf_writer_free(w);
    return s;
}

/* One tensor of a model file as f32 (NULL when absent). */
static float *read_f32(const vkm_model_src *src, const char *name)
{
    const vkm_tensor_src *t = vkm_model_src_tensor(src, name);
    if (!t) return NULL;
    const uint64_t n = (uint64_t)vkm_tensor_nelem(t);
    float *v = malloc(n * 4);
    if (v && vkm_to_f32(t->dtype, t->data, n, v) != VKM_OK) {
        free(v);
        return NULL;
    }
    return v;
}

vkm_status ref_model_load(ref_model *m, const char *path, vkm_err *e)
{
    memset(m, 0, sizeof *m);
    vkm_model_src src;
    vkm_status s = vkm_model_src_open(path, &src, e);
    if (s != VKM_OK) return s;
    const vkm_hparams *hp = &src.hp;
    m->vocab = hp->n_vocab; m->dim = hp->dim; m->n_layers = hp->n_layers; m->n_heads = hp->n_heads;
    m->n_kv_heads = hp->n_kv_heads; m->head_dim = hp->head_dim; m->ffn = hp->ffn_dim; m->ctx = hp->ctx_len;
    m->eps = hp->norm_eps; m->theta = hp->rope_theta; m->rope_half = hp->rope_layout == VKM_ROPE_HALF;
    m->tok_embd = read_f32(&src, "token_embd.weight");
    m->output_norm = read_f32(&src, "output_norm.weight");
    m->output = read_f32(&src, "output.weight");
    if (!m->output) m->output = m->tok_embd;
    float ***lists[9] = {&m->attn_norm, &m->ffn_norm, &m->wq, &m->wk, &m->wv, &m->wo, &m->w_gate, &m->w_up, &m->w_down};
    static const char *names[9] = {"attn_norm", "ffn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                                   "ffn_gate", "ffn_up", "ffn_down"};
    for (int i = 0; i < 9; i++) {
        *lists[i] = calloc(m->n_layers, sizeof(float *));
        for (uint32_t l = 0; l < m->n_layers; l++) {
            char name[64];
            snprintf(name, sizeof name, "blk.%u.%s.weight", l, names[i]);
            (*lists[i])[l] = read_f32(&src, name);
            if (!(*lists[i])[l]) s = vkm_fail(e, VKM_ERR_NOT_FOUND, "%s: %s", path, name);
        }
    }
    if (!m->tok_embd || !m->output_norm) s = vkm_fail(e, VKM_ERR_NOT_FOUND, "%s: embeddings or norm", path);
    vkm_model_src_close(&src);
    return s;
}
