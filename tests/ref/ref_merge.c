/*
 * ref_merge.c — plain-C references of the merge kernels (see ref_merge.h): one element at a time,
 * f32 arithmetic where the kernels use f32 (ISO C: no contraction into fused multiply-adds),
 * double where the kernels' results come from the host (slerp and model_stock coefficients),
 * and a full sort for the magnitude selection.
 */
#include "ref_merge.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"

enum { LINEAR, TASK_ARITHMETIC, TIES, DARE_LINEAR, DARE_TIES, BREADCRUMBS, BREADCRUMBS_TIES, SLERP,
       MODEL_STOCK };

/* ---- DARE ---------------------------------------------------------------------------------- */
static uint32_t fmix32(uint32_t h)
{
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

uint32_t ref_dare_u32(uint32_t idx, const uint32_t key[2]) { return fmix32(fmix32(idx ^ key[0]) + key[1]); }

void ref_dare_key(uint64_t seed, const char *name, uint32_t j, uint32_t key[2])
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char *c = name; *c; c++) h = (h ^ (uint8_t)*c) * 0x100000001b3ull;
    uint64_t z = seed ^ h ^ ((uint64_t)(j + 1) * 0xd1b54a32d192ed03ull);
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    key[0] = (uint32_t)z;
    key[1] = (uint32_t)(z >> 32);
}

uint32_t ref_dare_threshold(double density)
{
    if (!(density > 0)) return 0;
    double t = floor(density * 4294967296.0);
    return t >= 4294967295.0 ? 0xffffffffu : (uint32_t)t;
}

/* ---- selection ----------------------------------------------------------------------------- */
static uint64_t key_of(float d, uint64_t i)
{
    float a = fabsf(d);
    uint32_t bits;
    memcpy(&bits, &a, 4);
    return ((uint64_t)bits << 32) | (uint32_t)~(uint32_t)i;
}

static int desc_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? 1 : a > b ? -1 : 0;
}

uint64_t ref_select_key(const float *d, uint64_t n, uint64_t k)
{
    uint64_t *keys = malloc(n * sizeof *keys);
    for (uint64_t i = 0; i < n; i++) keys[i] = key_of(d[i], i);
    qsort(keys, n, sizeof *keys, desc_u64);
    uint64_t r = keys[k - 1];
    free(keys);
    return r;
}

/* ---- model merges -------------------------------------------------------------------------- */
/* Per model: is element i kept (selection or DARE), and the rescale divisor. */
typedef struct sparse {
    int kind;                 /* 0 none, 1 top-k (+ excluded top), 2 DARE                        */
    uint64_t top, excl;       /* keys: kept iff key >= top (top_all: always) and key < excl      */
    bool top_all, top_none, has_excl;
    uint32_t thr, key[2];
    float div;
} sparse;

static void plan_sparse(const ref_merge_cfg *c, const float *const *x, uint64_t n, uint32_t j,
                        sparse *s)
{
    memset(s, 0, sizeof *s);
    s->div = 1.0f;
    double dens = c->density[j];
    bool select = c->method == TIES || c->method == BREADCRUMBS || c->method == BREADCRUMBS_TIES;
    bool random = c->method == DARE_LINEAR || c->method == DARE_TIES;
    if (dens >= 1.0 || (!select && !random)) return;
    if (random) {
        s->kind = 2;
        s->thr = ref_dare_threshold(dens);
        ref_dare_key(c->seed, c->name, j, s->key);
        if (c->rescale && dens > 0) s->div = (float)dens;
        return;
    }
    s->kind = 1;
    float *d = malloc(n * sizeof *d);
    for (uint64_t i = 0; i < n; i++) d[i] = x[j][i] - x[c->base][i];
    uint64_t target = (uint64_t)(dens * (double)n), top = target;
    if (c->method != TIES) {
        int64_t n_top = (int64_t)(c->gamma[j] * (double)n), n_bot = (int64_t)n - (int64_t)target - n_top;
        if (n_bot < 0) n_top += n_bot;
        top = (uint64_t)n_top + target;
        if (n_top > 0) {
            s->has_excl = true;
            s->excl = ref_select_key(d, n, (uint64_t)n_top);
        }
    }
    s->top_none = top == 0;
    s->top_all = top >= n;
    if (!s->top_none && !s->top_all) s->top = ref_select_key(d, n, top);
    free(d);
}

static bool kept(const sparse *s, float d, uint64_t i)
{
    if (s->kind == 2) return s->thr == 0xffffffffu || ref_dare_u32((uint32_t)i, s->key) < s->thr;
    if (s->kind == 0) return true;
    uint64_t k = key_of(d, i);
    bool in = s->top_all || (!s->top_none && k >= s->top);
    return in && !(s->has_excl && k >= s->excl);
}

static void merge_task(const ref_merge_cfg *c, const float *const *x, uint64_t n, float *out)
{
    sparse sp[REF_MAX_IN];
    double wsum = 0;
    for (uint32_t j = 0; j < c->n_in; j++) {
        if (j == c->base) continue;
        plan_sparse(c, x, n, j, &sp[j]);
        wsum += c->weight[j];
    }
    bool consensus = c->method == TIES || c->method == DARE_TIES || c->method == BREADCRUMBS_TIES;
    float ginv = (float)(1.0 / (fabs(wsum) < 1e-8 ? 1.0 : wsum)), lambda = (float)c->lambda;
    for (uint64_t i = 0; i < n; i++) {
        float xb = x[c->base][i], wd[REF_MAX_IN], sum = 0.0f;
        for (uint32_t j = 0; j < c->n_in; j++) {
            if (j == c->base) continue;
            float d = x[j][i] - xb;
            float r = kept(&sp[j], d, i) ? d / sp[j].div : 0.0f;
            wd[j] = (float)c->weight[j] * r;
            sum += wd[j];
        }
        float m = c->normalize ? sum * ginv : sum; /* mergekit divides: within an ulp */
        if (consensus) {
            float mixed = 0.0f, div = 0.0f;
            for (uint32_t j = 0; j < c->n_in; j++) {
                if (j == c->base || wd[j] == 0.0f || (wd[j] > 0.0f) != (sum >= 0.0f)) continue;
                mixed += wd[j];
                div += (float)c->weight[j];
            }
            if (div == 0.0f) div = 1.0f;
            m = c->normalize ? mixed / div : mixed;
        }
        out[i] = xb + lambda * m;
    }
}

/* Linear combination sum_{j != base} coef_j x_j * scale (+ c_base x_base). */
static void combine(const ref_merge_cfg *c, const float *const *x, uint64_t n, const float *coef,
                    double scale, float c_base, float *out)
{
    const float sc = (float)scale;
    for (uint64_t i = 0; i < n; i++) {
        float acc = 0.0f;
        for (uint32_t j = 0; j < c->n_in; j++)
            if (j != c->base) acc += coef[j] * x[j][i];
        float v = acc * sc;
        if (c->base < c->n_in) v += c_base * x[c->base][i];
        out[i] = v;
    }
}

static double dot(const float *a, const float *b, const float *base, uint64_t n)
{
    double s = 0;
    for (uint64_t i = 0; i < n; i++) {
        double u = base ? (double)(a[i] - base[i]) : a[i], v = base ? (double)(b[i] - base[i]) : b[i];
        s += u * v;
    }
    return s;
}

void ref_merge(const ref_merge_cfg *c, const float *const *x, uint64_t n, float *out)
{
    float coef[REF_MAX_IN];
    switch (c->method) {
    case LINEAR: {
        double wsum = 0;
        for (uint32_t j = 0; j < c->n_in; j++) {
            coef[j] = (float)c->weight[j];
            wsum += c->weight[j];
        }
        combine(c, x, n, coef, c->normalize ? 1.0 / wsum : 1.0, 0.0f, out);
        return;
    }
    case SLERP: {
        double n0 = sqrt(dot(x[0], x[0], NULL, n)), n1 = sqrt(dot(x[1], x[1], NULL, n));
        double d = dot(x[0], x[1], NULL, n) / (n0 > 1e-8 ? n0 : 1.0) / (n1 > 1e-8 ? n1 : 1.0), c0, c1;
        if (fabs(d) > 0.9995) {
            c0 = 1.0 - c->t;
            c1 = c->t;
        } else {
            double th = acos(d), st = sin(th);
            c0 = sin(th - th * c->t) / st;
            c1 = sin(th * c->t) / st;
        }
        coef[0] = (float)c0;
        coef[1] = (float)c1;
        combine(c, x, n, coef, 1.0, 0.0f, out);
        return;
    }
    case MODEL_STOCK: {
        uint32_t m = c->n_in - 1, pairs = 0;
        double cs = 0;
        for (uint32_t a = 0; a < m; a++)
            for (uint32_t b = a + 1; b < m; b++, pairs++) {
                const float *xb = x[c->base];
                double np = sqrt(dot(x[a], x[a], xb, n)) * sqrt(dot(x[b], x[b], xb, n));
                double cc = dot(x[a], x[b], xb, n) / (np > 1e-6 ? np : 1e-6);
                cs += cc < -1 ? -1 : cc > 1 ? 1 : cc;
            }
        double cosv = cs / pairs, t = m * cosv / (1.0 + (m - 1.0) * cosv);
        for (uint32_t j = 0; j < m; j++) coef[j] = 1.0f;
        combine(c, x, n, coef, t / m, (float)(1.0 - t), out);
        return;
    }
    default: merge_task(c, x, n, out); return;
    }
}

/* ---- LoRA into weights --------------------------------------------------------------------- */
/* delta[c] for the columns of row r, summed as lora_merge.comp does. */
static void row_delta(const ref_lora_term *t, uint32_t n_terms, uint32_t r, uint32_t cols, float *delta)
{
    for (uint32_t c = 0; c < cols; c++) delta[c] = 0.0f;
    for (uint32_t e = 0; e < n_terms; e++) {
        uint32_t br = t[e].map ? t[e].map[r] : r;
        for (uint32_t c = 0; c < cols; c++) {
            float s = 0.0f;
            for (uint32_t k = 0; k < t[e].rank; k++) s += t[e].b[(uint64_t)br * t[e].rank + k] * t[e].a[(uint64_t)k * cols + c];
            delta[c] += t[e].coef * s;
        }
    }
}

void ref_lora_apply(int dtype, void *w_rows, uint32_t rows, uint32_t cols,
                    const ref_lora_term *terms, uint32_t n_terms)
{
    float *delta = malloc((size_t)cols * 4), *x = malloc((size_t)cols * 4);
    uint64_t row_bytes = 0;
    vkm_dtype_bytes((vkm_dtype)dtype, cols, &row_bytes);
    for (uint32_t r = 0; r < rows; r++) {
        uint8_t *row = (uint8_t *)w_rows + r * row_bytes;
        row_delta(terms, n_terms, r, cols, delta);
        vkm_to_f32((vkm_dtype)dtype, row, cols, x);
        for (uint32_t c = 0; c < cols; c++) x[c] += delta[c];
        switch (dtype) {
        case VKM_F32: memcpy(row, x, (size_t)cols * 4); break;
        case VKM_F16:
            for (uint32_t c = 0; c < cols; c++) {
                uint16_t h = vkm_f32_to_f16(x[c]);
                memcpy(row + 2 * c, &h, 2);
            }
            break;
        case VKM_Q8_0: vkm_quantize_q8_0(x, cols, row); break;
        case VKM_Q4_0: vkm_quantize_q4_0(x, cols, row); break;
        default: break;
        }
    }
    free(delta);
    free(x);
}
