/*
 * cli.h — what the vkmoe subcommands share: the command table entry type, argument helpers and
 * the context set-up from flags and the environment (VKMOE_DEVICE, VKMOE_VALIDATE,
 * VKMOE_PIPELINE_CACHE). Apps use the public header only.
 */
#ifndef VKM_CLI_H
#define VKM_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "vkmoe.h"

/* A subcommand: argc/argv start at the subcommand's own name. Returns the exit code. */
typedef int (*vkm_cmd_fn)(int argc, char **argv);

/* Subcommands (one file each). */
int cmd_devices(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_ppl(int argc, char **argv);
int cmd_route(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_merge_moe(int argc, char **argv); /* vkmoe merge --moe */

/* Common options every device-using command accepts. */
typedef struct cli_dev_opts {
    const char *device;   /* --device D, else $VKMOE_DEVICE */
    bool validate;        /* $VKMOE_VALIDATE=1 */
} cli_dev_opts;

void cli_dev_opts_init(cli_dev_opts *o);
/* If argv[*i] is a common device option, consumes it (and its value) and returns true. */
bool cli_dev_opts_parse(cli_dev_opts *o, int argc, char **argv, int *i);
/* Creates the context or prints the library's message and returns NULL. */
vkm_context *cli_context(const cli_dev_opts *o);

/* Model options shared by run, ppl, ...: -m/--model, --weights f32|f16|q8_0|q4_0, -c/--ctx,
 * -b/--batch. */
typedef struct cli_model_opts {
    const char *model;    /* NULL: the bundled default model                                   */
    int weight_type;      /* VKM_WEIGHTS_AUTO or a vkm_dtype                                    */
    uint32_t n_ctx, n_batch, n_seq;
} cli_model_opts;

void cli_model_opts_init(cli_model_opts *o);
/* Consumes a model option at argv[*i]; *bad is set when its value is wrong. */
bool cli_model_opts_parse(cli_model_opts *o, int argc, char **argv, int *i, bool *bad);
/* The bundled default model, the MoErged testbed (third_party/models/testbed-moe), found next
 * to the source tree or in the installed share folder; NULL if absent. */
const char *cli_default_model(void);
/* Loads the model, printing the library's message on failure (NULL). *seconds: load time. */
vkm_model *cli_load_model(vkm_context *ctx, const cli_model_opts *o, double *seconds);

/* Sampling options: --temp, --top-k, --top-p, --min-p, --repeat-penalty, --repeat-last-n,
 * --seed (-1: from the clock). */
void cli_sampling_init(vkm_sampler_params *p);
bool cli_sampling_parse(vkm_sampler_params *p, int argc, char **argv, int *i, bool *bad);

double cli_now(void);

/* Value of option argv[*i] (advances *i); prints an error and returns NULL if missing. */
const char *cli_value(int argc, char **argv, int *i);
bool cli_int(const char *s, long long *out);
/* The value of option argv[*i] (advancing *i) as an integer from lo to 2^31 - 1 (a count); false
 * after printing what the option takes when it is missing, not an integer or out of range. */
bool cli_int_value(int argc, char **argv, int *i, long long lo, long long *out);
bool cli_float(const char *s, double *out); /* finite numbers only */
/* A whole file (or pipe) in a malloc'd buffer, NUL-terminated; *len bytes without the NUL.
 * NULL with errno set when it cannot be read. */
char *cli_read_file(const char *path, size_t *len);
/* Prints "vkmoe <cmd>: <msg>" to stderr; returns 1 (the exit code for failures). */
int cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
