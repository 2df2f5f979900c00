/*
 * cli_common.c — argument helpers and context creation shared by the subcommands. The only place
 * (with the other apps) where the environment is read.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

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

bool cli_float(const char *s, double *out)
{
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end) return false;
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
