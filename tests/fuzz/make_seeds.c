/*
 * make_seeds.c — writes the seed corpora of the fuzz targets into OUT/{gguf,safetensors,json,
 * peft,tokenizer}: small files made with the loader's own writers (tiny llama / MoE / qwen2
 * models, every dtype, every metadata type, LoRA adapters, manifests, configs) plus pieces of
 * the real files in the shared folder. Usage: make_seeds OUT SHARED_DIR
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "writer.h"

static const char *out_dir, *shared;
static uint8_t zeros[1 << 16];
static uint64_t data_bytes; /* data of the tensors added to the writer being built */

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "make_seeds: %s: %s\n", what, msg ? msg : "failed");
    exit(1);
}

static const char *path(const char *sub, const char *name)
{
    static char p[2048];
    snprintf(p, sizeof p, "%s/%s/%s", out_dir, sub, name);
    return p;
}

static void write2(const char *p, const void *a, size_t na, const void *b, size_t nb)
{
    FILE *f = fopen(p, "wb");
    if (!f || (na && fwrite(a, 1, na, f) != na) || (nb && fwrite(b, 1, nb, f) != nb) || fclose(f)) die(p, NULL);
}

/* The first `max` bytes of a shared file (all of it when max is 0). */
static uint8_t *read_file(const char *p, size_t max, size_t *n)
{
    FILE *f = fopen(p, "rb");
    if (!f) die(p, "cannot open");
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    size_t k = max && (size_t)len > max ? max : (size_t)len;
    uint8_t *b = malloc(k + 1);
    if (!b || fread(b, 1, k, f) != k) die(p, "cannot read");
    fclose(f);
    *n = k;
    return b;
}

static uint8_t *read_shared(const char *rel, size_t max, size_t *n)
{
    char p[2048];
    snprintf(p, sizeof p, "%s/%s", shared, rel);
    return read_file(p, max, n);
}

/* A seed: prefix bytes followed by (the first max bytes of) a shared file. */
static void shared_seed(const char *sub, const char *name, const void *prefix, size_t np, const char *rel, size_t max)
{
    size_t n;
    uint8_t *b = read_shared(rel, max, &n);
    write2(path(sub, name), prefix, np, b, n);
    free(b);
}

static void text_seed(const char *sub, const char *name, uint8_t tag, const char *text)
{
    write2(path(sub, name), &tag, 1, text, strlen(text));
}

/* ---- writers ------------------------------------------------------------------------------ */
static void gadd(vkm_gguf_writer *w, const char *name, vkm_dtype t, int nd, int64_t a, int64_t b, int64_t c)
{
    int64_t ne[3] = {a, b, c};
    uint64_t bytes = 0;
    vkm_gguf_writer_add_tensor(w, name, t, nd, ne);
    vkm_dtype_bytes(t, (uint64_t)(a * b * (nd > 2 ? c : 1)), &bytes);
    data_bytes += bytes;
}

static void sadd(vkm_st_writer *w, const char *name, vkm_dtype t, int nd, int64_t a, int64_t b)
{
    int64_t ne[2] = {a, b};
    uint64_t bytes = 0;
    vkm_st_writer_add_tensor(w, name, t, nd, ne);
    vkm_dtype_bytes(t, (uint64_t)(nd > 0 ? a : 1) * (uint64_t)(nd > 1 ? b : 1), &bytes);
    data_bytes += bytes;
}

static void gfinish(vkm_gguf_writer *w, const vkm_err *e, const char *name)
{
    vkm_gguf_writer_begin(w);
    for (uint64_t left = data_bytes; left;) {
        uint64_t k = left < sizeof zeros ? left : sizeof zeros;
        vkm_gguf_writer_write(w, zeros, k);
        left -= k;
    }
    if (vkm_gguf_writer_finish(w)) die(name, e->msg);
    vkm_gguf_writer_free(w);
}

static void sfinish(vkm_st_writer *w, const vkm_err *e, const char *name)
{
    vkm_st_writer_begin(w);
    for (uint64_t left = data_bytes; left;) {
        uint64_t k = left < sizeof zeros ? left : sizeof zeros;
        vkm_st_writer_write(w, zeros, k);
        left -= k;
    }
    if (vkm_st_writer_finish(w)) die(name, e->msg);
    vkm_st_writer_free(w);
}

/* ---- GGUF seeds --------------------------------------------------------------------------- */
typedef struct tiny {
    const char *arch;
    int64_t dim;
    uint32_t experts;
    bool exps_3d, bias, tied;
    vkm_dtype wtype;
} tiny;

/* A tiny model vkm_model_src accepts: 2 layers, 2 heads of 4, 1 kv head, ffn 16, vocab 16. */
static void tiny_gguf(const char *name, const tiny *o)
{
    vkm_err e = {0};
    vkm_gguf_writer *w;
    char k[96], n[96];
    int64_t d = o->dim, f = 16, v = 16, q = 8, kv = 4;
    if (vkm_gguf_writer_create(path("gguf", name), &w, &e)) die(name, e.msg);
    data_bytes = 0;
    vkm_gguf_writer_set_str(w, "general.architecture", o->arch);
#define KEY(s) (snprintf(k, sizeof k, "%s.%s", o->arch, s), k)
    vkm_gguf_writer_set_u32(w, KEY("embedding_length"), (uint32_t)d);
    vkm_gguf_writer_set_u32(w, KEY("block_count"), 2);
    vkm_gguf_writer_set_u32(w, KEY("attention.head_count"), 2);
    vkm_gguf_writer_set_u32(w, KEY("attention.head_count_kv"), 1);
    vkm_gguf_writer_set_u32(w, KEY("attention.key_length"), 4);
    vkm_gguf_writer_set_u32(w, KEY("feed_forward_length"), (uint32_t)f);
    vkm_gguf_writer_set_u32(w, KEY("context_length"), 64);
    vkm_gguf_writer_set_f32(w, KEY("rope.freq_base"), 10000.0f);
    vkm_gguf_writer_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), 1e-5f);
    if (o->experts) {
        vkm_gguf_writer_set_u32(w, KEY("expert_count"), o->experts);
        vkm_gguf_writer_set_u32(w, KEY("expert_used_count"), 1);
    }
#undef KEY
    static const char *const toks[16] = {"<unk>", "<s>", "</s>", "a", "b", "c", "d", "e",
                                         "f", "g", "h", "i", "j", "k", "l", "m"};
    float scores[16] = {0};
    int32_t types[16] = {2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    vkm_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    vkm_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", 16, toks);
    vkm_gguf_writer_set_arr(w, "tokenizer.ggml.scores", VKM_GGUF_F32, 16, scores);
    vkm_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", VKM_GGUF_I32, 16, types);
    vkm_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    vkm_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    gadd(w, "token_embd.weight", o->wtype, 2, d, v, 1);
    gadd(w, "output_norm.weight", VKM_F32, 1, d, 1, 1);
    if (!o->tied) gadd(w, "output.weight", o->wtype, 2, d, v, 1);
    for (int l = 0; l < 2; l++) {
#define T(s) (snprintf(n, sizeof n, "blk.%d.%s", l, s), n)
        gadd(w, T("attn_norm.weight"), VKM_F32, 1, d, 1, 1);
        gadd(w, T("ffn_norm.weight"), VKM_F32, 1, d, 1, 1);
        gadd(w, T("attn_q.weight"), o->wtype, 2, d, q, 1);
        gadd(w, T("attn_k.weight"), o->wtype, 2, d, kv, 1);
        gadd(w, T("attn_v.weight"), o->wtype, 2, d, kv, 1);
        gadd(w, T("attn_output.weight"), VKM_F32, 2, q, d, 1);
        if (o->bias) {
            gadd(w, T("attn_q.bias"), VKM_F32, 1, q, 1, 1);
            gadd(w, T("attn_k.bias"), VKM_F32, 1, kv, 1, 1);
            gadd(w, T("attn_v.bias"), VKM_F32, 1, kv, 1, 1);
        }
        if (!o->experts) {
            gadd(w, T("ffn_gate.weight"), o->wtype, 2, d, f, 1);
            gadd(w, T("ffn_up.weight"), o->wtype, 2, d, f, 1);
            gadd(w, T("ffn_down.weight"), VKM_F16, 2, f, d, 1);
            continue;
        }
        gadd(w, T("ffn_gate_inp.weight"), VKM_F32, 2, d, o->experts, 1);
        if (o->exps_3d) {
            gadd(w, T("ffn_gate_exps.weight"), o->wtype, 3, d, f, o->experts);
            gadd(w, T("ffn_up_exps.weight"), o->wtype, 3, d, f, o->experts);
            gadd(w, T("ffn_down_exps.weight"), VKM_BF16, 3, f, d, o->experts);
        } else {
            for (uint32_t x = 0; x < o->experts; x++) {
                snprintf(n, sizeof n, "blk.%d.ffn_gate.%u.weight", l, x);
                gadd(w, n, o->wtype, 2, d, f, 1);
                snprintf(n, sizeof n, "blk.%d.ffn_up.%u.weight", l, x);
                gadd(w, n, o->wtype, 2, d, f, 1);
                snprintf(n, sizeof n, "blk.%d.ffn_down.%u.weight", l, x);
                gadd(w, n, VKM_F32, 2, f, d, 1);
            }
        }
#undef T
    }
    gfinish(w, &e, name);
}

static void gguf_lora(const char *name, bool alpha)
{
    vkm_err e = {0};
    vkm_gguf_writer *w;
    if (vkm_gguf_writer_create(path("gguf", name), &w, &e)) die(name, e.msg);
    data_bytes = 0;
    vkm_gguf_writer_set_str(w, "general.architecture", "llama");
    vkm_gguf_writer_set_str(w, "general.type", "adapter");
    vkm_gguf_writer_set_str(w, "adapter.type", "lora");
    if (alpha) vkm_gguf_writer_set_f32(w, "adapter.lora.alpha", 16.0f);
    gadd(w, "blk.0.attn_q.weight.lora_a", VKM_F32, 2, 8, 2, 1);
    gadd(w, "blk.0.attn_q.weight.lora_b", VKM_F32, 2, 2, 8, 1);
    gadd(w, "blk.1.ffn_down.weight.lora_a", VKM_F16, 2, 16, 2, 1);
    gadd(w, "blk.1.ffn_down.weight.lora_b", VKM_BF16, 2, 2, 8, 1);
    gfinish(w, &e, name);
}

/* Every metadata type, nested arrays (copied from a hand-made file) and every dtype. */
static void gguf_everything(void)
{
    static const uint8_t nested[] = {
        'G', 'G', 'U', 'F', 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
        1, 0, 0, 0, 0, 0, 0, 0, 'n', 9, 0, 0, 0,                   /* key "n", array */
        9, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0,                       /* of 2 arrays */
        5, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0,           /* [i32 7] */
        8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 'x', /* ["x"] */
    };
    vkm_gguf g;
    vkm_err e = {0};
    if (vkm_gguf_open_mem(nested, sizeof nested, "nested", &g, &e)) die("nested", e.msg);
    vkm_gguf_writer *w;
    if (vkm_gguf_writer_create(path("gguf", "everything.gguf"), &w, &e)) die("everything", e.msg);
    data_bytes = 0;
    vkm_gguf_writer_copy_kv(w, &g.kv[0]);
    vkm_gguf_close(&g);
    int16_t i16[3] = {-1, 2, 3};
    double f64[2] = {0.5, -1e300};
    uint8_t bools[2] = {1, 0};
    static const char *const strs[2] = {"x", "\xc3\xa9"};
    vkm_gguf_writer_set_u8(w, "u8", 1);
    vkm_gguf_writer_set_i8(w, "i8", -1);
    vkm_gguf_writer_set_u16(w, "u16", 65535);
    vkm_gguf_writer_set_i16(w, "i16", -2);
    vkm_gguf_writer_set_u32(w, "u32", 7);
    vkm_gguf_writer_set_i32(w, "i32", -7);
    vkm_gguf_writer_set_u64(w, "u64", UINT64_MAX);
    vkm_gguf_writer_set_i64(w, "i64", INT64_MIN);
    vkm_gguf_writer_set_f32(w, "f32", 1.5f);
    vkm_gguf_writer_set_f64(w, "f64", -2.5);
    vkm_gguf_writer_set_bool(w, "bool", true);
    vkm_gguf_writer_set_str(w, "str", "hello");
    vkm_gguf_writer_set_arr(w, "a.i16", VKM_GGUF_I16, 3, i16);
    vkm_gguf_writer_set_arr(w, "a.f64", VKM_GGUF_F64, 2, f64);
    vkm_gguf_writer_set_arr(w, "a.bool", VKM_GGUF_BOOL, 2, bools);
    vkm_gguf_writer_set_arr_str(w, "a.str", 2, strs);
    vkm_gguf_writer_set_u32(w, "general.alignment", 64);
    static const vkm_dtype all[] = {VKM_F32, VKM_F16, VKM_BF16, VKM_Q8_0, VKM_Q4_0, VKM_Q4_K,
                                    VKM_Q6_K, VKM_I8, VKM_I16, VKM_I32, VKM_I64, VKM_F64};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        char n[32];
        snprintf(n, sizeof n, "t.%s", vkm_dtype_name(all[i]));
        gadd(w, n, all[i], 2, 256, 2, 1);
    }
    gfinish(w, &e, "everything.gguf");
}

/* ---- safetensors seeds -------------------------------------------------------------------- */
static void st_tiny_model(const char *dir_sub, const char *name, vkm_dtype t)
{
    vkm_err e = {0};
    vkm_st_writer *w;
    if (vkm_st_writer_create(path(dir_sub, name), &w, &e)) die(name, e.msg);
    data_bytes = 0;
    vkm_st_writer_set_meta(w, "format", "pt");
    sadd(w, "model.embed_tokens.weight", t, 2, 8, 16);
    sadd(w, "model.norm.weight", VKM_F32, 1, 8, 1);
    sadd(w, "lm_head.weight", t, 2, 8, 16);
    sadd(w, "model.layers.0.input_layernorm.weight", VKM_F32, 1, 8, 1);
    sadd(w, "model.layers.0.self_attn.q_proj.weight", t, 2, 8, 8);
    sadd(w, "model.layers.0.mlp.down_proj.weight", t, 2, 16, 8);
    sadd(w, "scalar", VKM_F64, 0, 1, 1);
    sadd(w, "empty", VKM_I32, 1, 0, 1);
    sadd(w, "ids", VKM_I64, 1, 3, 1);
    sfinish(w, &e, name);
}

/* ---- PEFT seeds --------------------------------------------------------------------------- */
static void peft_seed(const char *name, const char *config, const char *adapter, vkm_dtype t)
{
    char tmp[2048];
    snprintf(tmp, sizeof tmp, "%s/peft/%s.st", out_dir, name);
    vkm_err e = {0};
    vkm_st_writer *w;
    if (vkm_st_writer_create(tmp, &w, &e)) die(name, e.msg);
    data_bytes = 0;
    char n[160];
    static const char *const mods[3] = {"self_attn.q_proj", "self_attn.v_proj", "mlp.down_proj"};
    for (int l = 0; l < 2; l++)
        for (int m = 0; m < 3; m++) {
            snprintf(n, sizeof n, "base_model.model.model.layers.%d.%s.lora_A%s%s.weight", l, mods[m],
                     adapter[0] ? "." : "", adapter);
            sadd(w, n, t, 2, m == 2 ? 352 : 128, 4);
            snprintf(n, sizeof n, "base_model.model.model.layers.%d.%s.lora_B%s%s.weight", l, mods[m],
                     adapter[0] ? "." : "", adapter);
            sadd(w, n, t, 2, 4, m == 1 ? 64 : 128);
        }
    sfinish(w, &e, name);
    size_t ns;
    uint8_t *st = read_file(tmp, 0, &ns);
    remove(tmp);
    uint32_t len = (uint32_t)strlen(config);
    uint8_t *all = malloc(4 + len + ns);
    if (!all) die(name, "out of memory");
    for (int i = 0; i < 4; i++) all[i] = (uint8_t)(len >> (8 * i));
    memcpy(all + 4, config, len);
    memcpy(all + 4 + len, st, ns);
    write2(path("peft", name), all, 4 + len + ns, NULL, 0);
    free(all);
    free(st);
}

static void peft_real(const char *name, const char *dir)
{
    char rel[512];
    size_t nc, ns;
    snprintf(rel, sizeof rel, "%s/adapter_config.json", dir);
    uint8_t *cfg = read_shared(rel, 0, &nc);
    snprintf(rel, sizeof rel, "%s/adapter_model.safetensors", dir);
    uint8_t *st = read_shared(rel, 0, &ns);
    uint8_t len[4] = {(uint8_t)nc, (uint8_t)(nc >> 8), (uint8_t)(nc >> 16), (uint8_t)(nc >> 24)};
    uint8_t *all = malloc(4 + nc);
    if (!all) die(name, "out of memory");
    memcpy(all, len, 4);
    memcpy(all + 4, cfg, nc);
    write2(path("peft", name), all, 4 + nc, st, ns);
    free(all);
    free(cfg);
    free(st);
}

/* ---- main --------------------------------------------------------------------------------- */
int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: make_seeds OUT SHARED_DIR\n");
        return 2;
    }
    out_dir = argv[1];
    shared = argv[2];

    tiny_gguf("tiny-llama.gguf", &(tiny){"llama", 8, 0, false, false, false, VKM_F32});
    tiny_gguf("tiny-llama-q8.gguf", &(tiny){"llama", 32, 0, false, false, false, VKM_Q8_0});
    tiny_gguf("tiny-mistral-q4.gguf", &(tiny){"mistral", 32, 0, false, false, true, VKM_Q4_0});
    tiny_gguf("tiny-qwen2.gguf", &(tiny){"qwen2", 8, 0, false, true, true, VKM_F16});
    tiny_gguf("tiny-moe.gguf", &(tiny){"llama", 8, 2, false, false, false, VKM_F32});
    tiny_gguf("tiny-moe-3d.gguf", &(tiny){"llama", 8, 3, true, false, false, VKM_BF16});
    gguf_lora("tiny-lora.gguf", true);
    gguf_lora("tiny-lora-noalpha.gguf", false);
    gguf_everything();
    shared_seed("gguf", "base-header.gguf", NULL, 0, "testbed/base/model.gguf", 24064);
    shared_seed("gguf", "python-lora.gguf", NULL, 0, "testbed/experts/python/adapter.gguf", 0);

    st_tiny_model("safetensors", "tiny-f32.safetensors", VKM_F32);
    st_tiny_model("safetensors", "tiny-bf16.safetensors", VKM_BF16);
    st_tiny_model("safetensors", "tiny-f16.safetensors", VKM_F16);
    shared_seed("safetensors", "base-header.safetensors", NULL, 0, "testbed/base/model.safetensors", 8 + 4120);
    shared_seed("safetensors", "c-adapter.safetensors", NULL, 0, "testbed/experts/c/adapter_model.safetensors", 0);

    uint8_t tag = 0;
    text_seed("json", "m-minimal", 0, "{\"base\": \"base/model.gguf\", \"experts\": [{\"name\": \"py\", \"lora\": \"experts/python\"}]}");
    text_seed("json", "m-example", 0,
              "{\"base\": \"base/model.gguf\", \"description\": \"x\", \"experts\": [{\"name\": \"python\", \"lora\": \"experts/python\"},"
              " {\"name\": \"legal\", \"lora\": \"experts/legal/adapter.gguf\", \"scale\": 1.0}, {\"name\": \"english\", \"model\":"
              " \"full/english/model.safetensors\"}], \"router\": {\"policy\": \"arrow\", \"granularity\": \"token\", \"depth\":"
              " \"module\", \"top_k\": 2, \"normalize\": \"softmax\", \"temperature\": 1.0, \"noise_std\": 0.02, \"seed\": 0,"
              " \"always_on\": null, \"weights\": null, \"fixed\": null}, \"aggregate\": \"output\", \"merge\": \"average\"}");
    text_seed("json", "m-fixed", 0,
              "{\"base\": \"base\", \"experts\": [{\"name\": \"a\", \"lora\": \"experts/c\"}, {\"name\": \"b\", \"lora\": \"experts/shell\"}],"
              " \"router\": {\"policy\": \"fixed\", \"granularity\": \"task\", \"fixed\": {\"a\": 0.7, \"b\": 0.3}, \"always_on\": \"a\"},"
              " \"aggregate\": \"parameter\", \"merge\": \"exact\", \"shared\": \"average\"}");
    text_seed("json", "m-centroid", 0,
              "{\"base\": \"base/model.gguf\", \"experts\": [{\"name\": \"a\", \"lora\": \"experts/c\", \"calib\": [\"calib/c.txt\"]},"
              " {\"name\": \"b\", \"lora\": \"experts/english\", \"calib\": [\"calib/english.txt\"]}], \"router\": {\"policy\": \"centroid\","
              " \"granularity\": \"sequence\", \"depth\": \"model\", \"top_k\": 1}, \"aggregate\": \"logits\"}");
    text_seed("json", "m-hidden", 0,
              "{\"base\": \"base/model.gguf\", \"experts\": [{\"name\": \"a\", \"model\": \"full/python\", \"positive\": [\"def\"],"
              " \"negative\": [\"the\"]}], \"router\": {\"policy\": \"hidden\", \"route_attention\": true, \"fine_grained\": false}}");
    text_seed("json", "m-learned", 0,
              "{\"base\": \"base/model.gguf\", \"experts\": [{\"name\": \"a\", \"lora\": \"experts/c\"}, {\"name\": \"b\", \"lora\":"
              " \"experts/legal\"}], \"router\": {\"policy\": \"learned\", \"weights\": \"base/model.safetensors\", \"depth\": \"layer\","
              " \"normalize\": \"sigmoid\"}}");
    tag = 1;
    shared_seed("json", "c-base", &tag, 1, "testbed/base/config.json", 0);
    shared_seed("json", "c-stories", &tag, 1, "testbed/stories260K/config.json", 0);
    shared_seed("json", "c-full", &tag, 1, "testbed/full/legal/config.json", 0);
    text_seed("json", "c-mixtral", 1,
              "{\"architectures\": [\"MixtralForCausalLM\"], \"hidden_size\": 64, \"intermediate_size\": 128, \"num_hidden_layers\": 2,"
              " \"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"vocab_size\": 100, \"num_local_experts\": 4,"
              " \"num_experts_per_tok\": 2, \"rope_theta\": 1e6, \"eos_token_id\": [2, 3], \"head_dim\": null}");
    text_seed("json", "c-qwen2", 1,
              "{\"model_type\": \"qwen2\", \"hidden_size\": 64, \"intermediate_size\": 128, \"num_hidden_layers\": 2,"
              " \"num_attention_heads\": 4, \"vocab_size\": 100, \"attention_bias\": true, \"tie_word_embeddings\": true,"
              " \"rope_scaling\": null, \"hidden_act\": \"silu\", \"bos_token_id\": null}");

    peft_seed("tiny", "{\"peft_type\": \"LORA\", \"r\": 4, \"lora_alpha\": 8, \"target_modules\": [\"q_proj\", \"v_proj\", \"down_proj\"]}",
              "", VKM_F32);
    peft_seed("tiny-patterns", "{\"r\": 2, \"lora_alpha\": 8, \"use_rslora\": true, \"rank_pattern\": {\"q_proj\": 4, \"v_proj\": 4,"
              " \"model.layers.1.mlp.down_proj\": 4, \"down_proj\": 4}, \"alpha_pattern\": {\"layers.0.self_attn.v_proj\": 3},"
              " \"target_modules\": \"all-linear\", \"bias\": \"none\", \"use_dora\": false}", "", VKM_BF16);
    peft_seed("tiny-named", "{\"r\": 4, \"fan_in_fan_out\": false, \"modules_to_save\": null}", "default", VKM_F16);
    peft_real("python", "testbed/experts/python");

    static const char *const texts[] = {"testbed/eval/python.txt", "testbed/eval/english.txt",
                                        "testbed/eval/legal.txt", "testbed/eval/c.txt"};
    for (uint8_t i = 0; i < 4; i++) {
        char n[32];
        snprintf(n, sizeof n, "text%u", i);
        shared_seed("tokenizer", n, &i, 1, texts[i], 512);
    }
    text_seed("tokenizer", "special", 0x0f, "<s>hello</s> <|im_start|>user\n\xe2\x82\xac 123  \t x\xf0\x9f\x98\x80");
    tag = 4;
    shared_seed("tokenizer", "json", &tag, 1, "testbed/base/tokenizer.json", 0);
    tag = 5;
    shared_seed("tokenizer", "model", &tag, 1, "testbed/base/tokenizer.model", 0);
    uint8_t ids[1 + 4 * 8] = {6};
    for (int i = 0; i < 8; i++) ids[1 + 4 * i] = (uint8_t)(i * 37 + 3);
    write2(path("tokenizer", "ids"), ids, sizeof ids, NULL, 0);
    return 0;
}
