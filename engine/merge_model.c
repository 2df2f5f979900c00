/*
 * merge_model.c — vkm_merge(): a merge of whole models, from the params to the output file. The
 * inputs are opened (memory-mapped) and checked against each other (architecture, shapes, tensor
 * sets), the output described (tensor names and types in its format, metadata, the RoPE row
 * permutation each input needs), then every tensor is streamed through the device
 * (merge_stream.c) straight into the writer, and the pages of the inputs already merged are
 * dropped from the process, so the peak memory stays near the device chunks whatever the size
 * of the models. Progress and cancellation go through the params' callback as tensors complete.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "merge.h"
#include "merge_out.h"

typedef struct mrun {
    vkm_dev *d;
    vkm_err *e;
    const vkm_merge_params *p;
    vkm_mplan pl;
    vkm_model_src in[VKM_MERGE_MAX_IN];
    uint32_t ref;                    /* the input whose tensor list and types lead          */
    vkm_mout out;
    vkm_rope_layout layout;          /* the output's RoPE row layout                         */
    uint32_t n_tensors, done;
    uint64_t *ends;                  /* output byte offset where each tensor ends            */
    uint64_t *in_bytes;              /* input bytes of each tensor                           */
    uint64_t bytes_total, bytes_done;
    const char **names;
    double t0;
} mrun;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- inputs ------------------------------------------------------------------------------- */
static vkm_status check_hparams(mrun *r, uint32_t j)
{
    const vkm_hparams *a = &r->in[r->ref].hp, *b = &r->in[j].hp;
    const struct {
        const char *what;
        uint32_t x, y;
    } v[] = {
        {"embedding size", a->dim, b->dim},          {"layer count", a->n_layers, b->n_layers},
        {"head count", a->n_heads, b->n_heads},      {"kv head count", a->n_kv_heads, b->n_kv_heads},
        {"head size", a->head_dim, b->head_dim},     {"feed-forward size", a->ffn_dim, b->ffn_dim},
        {"vocabulary size", a->n_vocab, b->n_vocab}, {"expert count", a->n_experts, b->n_experts},
    };
    if (strcmp(a->arch, b->arch))
        return vkm_fail(r->e, VKM_ERR_MISMATCH, "merge: %s is a %s model but %s is a %s model",
                        r->in[r->ref].path, a->arch, r->in[j].path, b->arch);
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        if (v[i].x != v[i].y)
            return vkm_fail(r->e, VKM_ERR_MISMATCH, "merge: %s has %s %u but %s has %u",
                            r->in[r->ref].path, v[i].what, v[i].x, r->in[j].path, v[i].y);
    return VKM_OK;
}

/* Every input has exactly the reference's tensors, with its shapes. */
static vkm_status check_tensors(mrun *r, uint32_t j)
{
    const vkm_model_src *a = &r->in[r->ref], *b = &r->in[j];
    for (uint32_t i = 0; i < a->n_tensors; i++) {
        const vkm_tensor_src *x = a->tensors[i].src, *y = vkm_model_src_tensor(b, a->tensors[i].name);
        if (!y)
            return vkm_fail(r->e, VKM_ERR_MISMATCH, "merge: tensor '%s' of %s is missing in %s",
                            a->tensors[i].name, a->path, b->path);
        bool same = x->n_dims == y->n_dims;
        for (int k = 0; k < x->n_dims && same; k++) same = x->ne[k] == y->ne[k];
        if (!same) {
            char sa[96], sb[96];
            return vkm_fail(r->e, VKM_ERR_MISMATCH, "merge: tensor '%s' has shape %s in %s but %s in %s",
                            a->tensors[i].name, vkm_shape_str(x->ne, x->n_dims, sa, sizeof sa), a->path,
                            vkm_shape_str(y->ne, y->n_dims, sb, sizeof sb), b->path);
        }
    }
    if (b->n_tensors != a->n_tensors)
        for (uint32_t i = 0; i < b->n_tensors; i++)
            if (!vkm_model_src_tensor(a, b->tensors[i].name))
                return vkm_fail(r->e, VKM_ERR_MISMATCH, "merge: tensor '%s' of %s is not in %s",
                                b->tensors[i].name, b->path, a->path);
    return VKM_OK;
}

/* Refuses an output that is one of the inputs' files. */
static vkm_status check_not_input(mrun *r)
{
    vkm_status s = VKM_OK;
    for (uint32_t j = 0; j < r->pl.n_in && !s; j++) s = vkm_mout_refuse_model(&r->out, &r->in[j], "merge");
    return s;
}

/* ---- output description ------------------------------------------------------------------ */
/* The rows of a q/k weight (or bias) in the other RoPE layout need a row map. */
static bool rope_tensor(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot || strncmp(name, "blk.", 4)) return false;
    return strstr(name, ".attn_q.") || strstr(name, ".attn_k.");
}

static vkm_dtype out_type(const mrun *r, const vkm_tensor_src *t)
{
    if (r->p->out_dtype == VKM_WEIGHTS_AUTO) {
        vkm_dtype d = t->dtype;
        return d == VKM_F32 || d == VKM_F16 || d == VKM_BF16 ? d : VKM_F16;
    }
    if (r->out.kind == VKM_MOUT_GGUF && t->n_dims < 2) return VKM_F32;
    return (vkm_dtype)r->p->out_dtype;
}

static vkm_status out_name(const mrun *r, const char *internal, char *buf, size_t cap)
{
    if (r->out.kind == VKM_MOUT_GGUF) {
        snprintf(buf, cap, "%s", internal);
        return VKM_OK;
    }
    if (!vkm_internal_to_hf(internal, buf, cap))
        return vkm_fail(r->e, VKM_ERR_UNSUPPORTED, "merge: tensor '%s' has no Hugging Face name; write "
                        "a GGUF output instead", internal);
    return VKM_OK;
}

static vkm_status describe_output(mrun *r)
{
    const vkm_model_src *ref = &r->in[r->ref];
    const vkm_model_src *in[VKM_MERGE_MAX_IN];
    for (uint32_t j = 0; j < r->pl.n_in; j++) in[j] = &r->in[j];
    char desc[4096];
    vkm_mplan_describe(&r->pl, desc, sizeof desc);
    vkm_status s = vkm_mout_hf_config(&r->out, in, r->pl.n_in, r->ref);
    if (!s) s = vkm_mout_model_meta(&r->out, in, r->pl.n_in, r->ref, vkm_merge_method_name(r->pl.method), desc);
    r->n_tensors = ref->n_tensors;
    r->ends = calloc(r->n_tensors + 1, sizeof *r->ends);
    r->in_bytes = calloc(r->n_tensors + 1, sizeof *r->in_bytes);
    r->names = calloc(r->n_tensors + 1, sizeof *r->names);
    if (!r->ends || !r->in_bytes || !r->names)
        return vkm_fail(r->e, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    /* tensors in the reference's order: a GGUF file's own, else by name */
    uint64_t end = 0;
    for (uint32_t i = 0; i < r->n_tensors && !s; i++) {
        const char *name = ref->format == VKM_SRC_GGUF ? ref->gguf.tensors[i].name : ref->tensors[i].name;
        const vkm_tensor_src *t = vkm_model_src_tensor(ref, name);
        char on[VKM_MAX_NAME];
        vkm_dtype dt = out_type(r, t);
        if ((s = out_name(r, name, on, sizeof on))) break;
        s = vkm_mout_add(&r->out, on, dt, t->n_dims, t->ne);
        uint64_t bytes = 0;
        vkm_dtype_bytes(dt, (uint64_t)vkm_tensor_nelem(t), &bytes);
        r->ends[i] = end += bytes;
        r->names[i] = name;
        for (uint32_t j = 0; j < r->pl.n_in; j++) r->in_bytes[i] += vkm_model_src_tensor(&r->in[j], name)->nbytes;
        r->bytes_total += r->in_bytes[i];
    }
    return s;
}

/* ---- streaming ---------------------------------------------------------------------------- */
static vkm_status sink(void *user, const void *data, uint64_t bytes)
{
    mrun *r = user;
    vkm_status s = vkm_mout_write(&r->out, data, bytes);
    while (!s && r->done < r->n_tensors && r->out.written >= r->ends[r->done]) {
        r->bytes_done += r->in_bytes[r->done];
        vkm_merge_progress pr = {r->done + 1, r->n_tensors, r->bytes_done, r->bytes_total,
                                 now_s() - r->t0, r->names[r->done]};
        r->done++;
        if (r->p->progress && !r->p->progress(r->p->progress_user, &pr))
            s = vkm_fail(r->e, VKM_ERR_CANCELLED, "merge: cancelled after %u of %u tensors", r->done,
                         r->n_tensors);
    }
    return s;
}

static vkm_status merge_tensor(mrun *r, vkm_mstream *ms, uint32_t i)
{
    const char *name = r->names[i];
    const vkm_hparams *hp = &r->in[r->ref].hp;
    const vkm_tensor_src *t = vkm_model_src_tensor(&r->in[r->ref], name);
    vkm_mtensor mt;
    memset(&mt, 0, sizeof mt);
    mt.name = name;
    mt.out = out_type(r, t);
    mt.cols = (uint32_t)t->ne[0];
    mt.rows = (uint32_t)(vkm_tensor_nelem(t) / (t->ne[0] ? t->ne[0] : 1));
    uint32_t *maps[VKM_MERGE_MAX_IN] = {0};
    vkm_status s = VKM_OK;
    bool rope = rope_tensor(name);
    if (rope && t->n_dims == 1) { /* a q/k bias: one element per row */
        mt.rows = mt.cols;
        mt.cols = 1;
    }
    for (uint32_t j = 0; j < r->pl.n_in && !s; j++) {
        const vkm_tensor_src *x = vkm_model_src_tensor(&r->in[j], name);
#ifdef MADV_POPULATE_READ /* read in place: the tensor's pages mapped in one call, not a fault per page */
        if (vkm_mstream_importing(ms)) vkm_madvise_pages(x->data, x->nbytes, MADV_POPULATE_READ, true);
#endif
        mt.src[j].data = x->data;
        mt.src[j].map = vkm_model_src_map(&r->in[j], x->data);
        mt.src[j].dtype = x->dtype;
        vkm_rope_layout from = r->in[j].hp.rope_layout;
        if (!rope || from == r->layout) continue;
        if (!(maps[j] = malloc((size_t)mt.rows * sizeof **maps))) {
            s = vkm_fail(r->e, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
            break;
        }
        for (uint32_t row = 0; row < mt.rows; row++)
            maps[j][row] = vkm_rope_row_map(r->layout, from, row, hp->head_dim);
        mt.src[j].row_map = maps[j];
    }
    if (!s) s = vkm_mstream_tensor(ms, &r->pl, &mt);
    for (uint32_t j = 0; j < r->pl.n_in; j++) {
        free(maps[j]);
        const vkm_tensor_src *x = vkm_model_src_tensor(&r->in[j], name); /* its pages leave the */
        vkm_mstream_release(ms, x->data, x->nbytes);                     /* process, not the cache */
    }
    return s;
}

static vkm_status open_inputs(mrun *r)
{
    vkm_status s = vkm_mplan_init(&r->pl, r->p, r->e);
    for (uint32_t j = 0; j < r->pl.n_in && !s; j++) s = vkm_model_src_open(r->pl.path[j], &r->in[j], r->e);
    if (s) return s;
    r->ref = r->pl.base < r->pl.n_in ? r->pl.base : 0;
    for (uint32_t j = 0; j < r->pl.n_in && !s; j++) {
        if (j == r->ref) continue;
        if (!(s = check_hparams(r, j))) s = check_tensors(r, j);
    }
    return s;
}

static vkm_status merge_all(mrun *r, const char *out_path)
{
    vkm_status s = open_inputs(r);
    if (!s) s = vkm_mout_open(&r->out, out_path, false, r->e);
    if (!s) s = check_not_input(r);
    if (s) return s;
    r->layout = r->out.kind == VKM_MOUT_GGUF ? vkm_gguf_rope_layout(r->in[r->ref].hp.arch) : VKM_ROPE_HALF;
    s = describe_output(r);
    if (!s) s = vkm_mout_begin(&r->out);
    vkm_mstream *ms = NULL;
    if (!s) s = vkm_mstream_create(r->d, r->pl.n_in, r->p->chunk_bytes, r->p->device_bytes, sink, r, &ms);
    if (!s && r->p->copy_inputs) vkm_mstream_set_import(ms, false);
    for (uint32_t i = 0; i < r->n_tensors && !s; i++) s = merge_tensor(r, ms, i);
    if (!s) s = vkm_mstream_flush(ms);
    vkm_mstream_destroy(ms);
    return s ? s : vkm_mout_finish_model(&r->out);
}

vkm_status vkm_merge(vkm_context *ctx, const vkm_merge_params *p, const char *out_path)
{
    if (!ctx || !ctx->dev_ok || !p || !out_path) return VKM_ERR_INVALID_ARGUMENT;
    vkm_err_clear(&ctx->err);
    if (p->method >= VKM_MERGE_LORA_LINEAR && p->method < VKM_MERGE_METHOD_COUNT)
        return vkm_merge_lora_run(ctx, p, out_path);
    mrun *r = calloc(1, sizeof *r);
    if (!r) return vkm_fail(&ctx->err, VKM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    r->d = &ctx->dev;
    r->e = &ctx->err;
    r->p = p;
    r->t0 = now_s();
    vkm_status s = merge_all(r, out_path);
    vkm_mout_free(&r->out);
    for (uint32_t j = 0; j < VKM_MERGE_MAX_IN; j++) vkm_model_src_close(&r->in[j]);
    free(r->ends);
    free(r->in_bytes);
    free(r->names);
    free(r);
    return s;
}
