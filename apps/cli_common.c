/*
 * cli_common.c — argument helpers and context creation shared by the subcommands. The only place
 * (with the other apps) where the environment is read.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

void cli_dev_opts_init(cli_dev_opts *o)
{
    o->device = getenv("VKMOE_DEVICE");
    const char *v = getenv("VKMOE_VALIDATE");
    o->validate = v && v[0] && strcmp(v, "0") != 0;
}

bool cli_dev_opts_parse(cli_dev_opts *o, int argc, char **argv, int *i)
{
    if (strcmp(argv[*i], "--device") == 0 || strcmp(argv[*i], "-d") == 0) {
        const char *v = cli_value(argc, argv, i);
        if (v) o->device = v;
        return true;
    }
    return false;
}

static void log_stderr(void *user, vkm_log_level level, const char *msg)
{
    (void)user;
    static const char *names[] = {"debug", "info", "warning", "error"};
    fprintf(stderr, "vkmoe: %s: %s\n", names[level & 3], msg);
}

vkm_context *cli_context(const cli_dev_opts *o)
{
    vkm_context_params p = vkm_context_default_params();
    p.device = o->device;
    p.validation = o->validate;
    p.log = log_stderr;
    char cache_dir[1024];
    const char *cd = getenv("VKMOE_PIPELINE_CACHE");
    if (cd) {
        p.pipeline_cache_dir = cd[0] ? cd : NULL;
    } else {
        const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
        if (xdg && xdg[0]) snprintf(cache_dir, sizeof cache_dir, "%s/vkmoe", xdg);
        else if (home && home[0]) snprintf(cache_dir, sizeof cache_dir, "%s/.cache/vkmoe", home);
        else cache_dir[0] = 0;
        p.pipeline_cache_dir = cache_dir[0] ? cache_dir : NULL;
    }
    vkm_context *ctx = NULL;
    vkm_status s = vkm_context_create(&p, &ctx);
    if (s != VKM_OK) {
        fprintf(stderr, "vkmoe: cannot create a Vulkan context: %s\n",
                ctx ? vkm_context_errmsg(ctx) : vkm_status_str(s));
        vkm_context_destroy(ctx);
        return NULL;
    }
    return ctx;
}

const char *cli_value(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "vkmoe: option %s needs a value\n", argv[*i]);
        (*i)++;
        return NULL;
    }
    (*i)++;
    return argv[*i];
}

bool cli_int(const char *s, long long *out)
{
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end) return false;
    *out = v;
    return true;
}

bool cli_int_value(int argc, char **argv, int *i, long long lo, long long *out)
{
    const char *opt = argv[*i], *v = cli_value(argc, argv, i);
    if (!v) return false;
    if (cli_int(v, out) && *out >= lo && *out <= 0x7fffffff) return true; /* counts: uint32_t casts stay exact */
    fprintf(stderr, "vkmoe: %s takes an integer from %lld to 2147483647, not '%s'\n", opt, lo, v);
    return false;
}

bool cli_float(const char *s, double *out)
{
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v)) return false; /* no inf, no nan */
    *out = v;
    return true;
}

int cli_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "vkmoe %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void cli_model_opts_init(cli_model_opts *o)
{
    memset(o, 0, sizeof *o);
    o->weight_type = VKM_WEIGHTS_AUTO;
    o->n_seq = 1;
}

static bool parse_u32(const char *v, uint32_t *out)
{
    long long x;
    if (!cli_int(v, &x) || x < 0 || x > 0x7fffffff) return false;
    *out = (uint32_t)x;
    return true;
}

bool cli_model_opts_parse(cli_model_opts *o, int argc, char **argv, int *i, bool *bad)
{
    const char *a = argv[*i], *v;
    if (!strcmp(a, "-m") || !strcmp(a, "--model") || !strcmp(a, "-M") || !strcmp(a, "--manifest")) {
        if (!(v = cli_value(argc, argv, i))) *bad = true;
        else o->model = v;
        return true;
    }
    if (!strcmp(a, "--weights")) {
        if (!(v = cli_value(argc, argv, i))) { *bad = true; return true; }
        if (!strcasecmp(v, "f32")) o->weight_type = VKM_F32;
        else if (!strcasecmp(v, "f16")) o->weight_type = VKM_F16;
        else if (!strcasecmp(v, "q8_0")) o->weight_type = VKM_Q8_0;
        else if (!strcasecmp(v, "q4_0")) o->weight_type = VKM_Q4_0;
        else if (!strcasecmp(v, "auto")) o->weight_type = VKM_WEIGHTS_AUTO;
        else {
            fprintf(stderr, "vkmoe: --weights takes auto, f32, f16, q8_0 or q4_0\n");
            *bad = true;
        }
        return true;
    }
    uint32_t *dst = NULL;
    if (!strcmp(a, "-c") || !strcmp(a, "--ctx") || !strcmp(a, "--ctx-size")) dst = &o->n_ctx;
    else if (!strcmp(a, "-b") || !strcmp(a, "--batch") || !strcmp(a, "--batch-size")) dst = &o->n_batch;
    if (!dst) return false;
    if (!(v = cli_value(argc, argv, i)) || !parse_u32(v, dst)) {
        fprintf(stderr, "vkmoe: %s takes a non-negative integer\n", a);
        *bad = true;
    }
    return true;
}

const char *cli_default_model(void)
{
    static char path[2048];
    static const char *rel = "models/testbed-moe/manifest.json";
    snprintf(path, sizeof path, "%s/third_party/%s", VKMOE_SOURCE_DIR, rel);
    if (access(path, R_OK) == 0) return path;
    char exe[1024];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0;
        snprintf(path, sizeof path, "%s/../share/vkmoe/%s", exe, rel);
        if (access(path, R_OK) == 0) return path;
    }
    return NULL;
}

vkm_model *cli_load_model(vkm_context *ctx, const cli_model_opts *o, double *seconds)
{
    const char *path = o->model ? o->model : cli_default_model();
    if (!path) {
        fprintf(stderr, "vkmoe: no -m MODEL given and the bundled default model is not installed\n");
        return NULL;
    }
    vkm_model_params p = vkm_model_default_params();
    p.weight_type = o->weight_type;
    p.n_ctx = o->n_ctx;
    if (o->n_batch) p.n_batch = o->n_batch;
    p.n_seq = o->n_seq;
    double t0 = cli_now();
    vkm_model *m = NULL;
    vkm_status s = vkm_model_load(ctx, path, &p, &m);
    if (seconds) *seconds = cli_now() - t0;
    if (s != VKM_OK) {
        fprintf(stderr, "vkmoe: cannot load %s: %s\n", path, vkm_context_errmsg(ctx));
        return NULL;
    }
    return m;
}

void cli_sampling_init(vkm_sampler_params *p)
{
    *p = vkm_sampler_default_params();
    p->seed = (uint64_t)-1;
}

bool cli_sampling_parse(vkm_sampler_params *p, int argc, char **argv, int *i, bool *bad)
{
    const char *a = argv[*i];
    float *f = NULL;
    uint32_t *u = NULL;
    if (!strcmp(a, "--temp") || !strcmp(a, "--temperature")) f = &p->temperature;
    else if (!strcmp(a, "--top-p")) f = &p->top_p;
    else if (!strcmp(a, "--min-p")) f = &p->min_p;
    else if (!strcmp(a, "--repeat-penalty")) f = &p->repeat_penalty;
    else if (!strcmp(a, "--top-k")) u = &p->top_k;
    else if (!strcmp(a, "--repeat-last-n")) u = &p->repeat_last_n;
    else if (strcmp(a, "--seed") && strcmp(a, "-s")) return false;
    const char *v = cli_value(argc, argv, i);
    double d;
    long long x;
    if (!v) *bad = true;
    else if (f) {
        if (cli_float(v, &d)) *f = (float)d;
        else *bad = true;
    } else if (u) {
        if (!parse_u32(v, u)) *bad = true;
    } else if (cli_int(v, &x)) {
        p->seed = (uint64_t)x;
    } else {
        *bad = true;
    }
    if (*bad) fprintf(stderr, "vkmoe: bad value for %s\n", a);
    return true;
}

char *cli_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - 1 - n, f);
        if (n < cap - 1) break;
        char *b = realloc(buf, cap * 2);
        if (!b) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = b;
        cap *= 2;
    }
    bool bad = !buf || ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}
