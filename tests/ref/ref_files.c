/*
 * ref_files.c — reference models to GGUF / Hugging Face files with the loader's writers.
 */
#include "ref_files.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

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
    wtensor *t = calloc(16 + 9 * (size_t)m->n_layers, sizeof *t);
    size_t n = list(m, t, false);
    vkm_gguf_writer *w = NULL;
    vkm_status s = vkm_gguf_writer_create(path, &w, e);
    if (s == VKM_OK) {
        vkm_gguf_writer_set_str(w, "general.architecture", "llama");
        vkm_gguf_writer_set_u32(w, "llama.embedding_length", m->dim);
        vkm_gguf_writer_set_u32(w, "llama.block_count", m->n_layers);
        vkm_gguf_writer_set_u32(w, "llama.attention.head_count", m->n_heads);
        vkm_gguf_writer_set_u32(w, "llama.attention.head_count_kv", m->n_kv_heads);
        vkm_gguf_writer_set_u32(w, "llama.attention.key_length", m->head_dim);
        vkm_gguf_writer_set_u32(w, "llama.attention.value_length", m->head_dim);
        vkm_gguf_writer_set_u32(w, "llama.feed_forward_length", m->ffn);
        vkm_gguf_writer_set_u32(w, "llama.context_length", m->ctx);
        vkm_gguf_writer_set_u32(w, "llama.vocab_size", m->vocab);
        vkm_gguf_writer_set_f32(w, "llama.rope.freq_base", m->theta);
        vkm_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", m->eps);
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
