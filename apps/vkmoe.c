/*
 * vkmoe.c — the command-line front end: dispatches to one subcommand per file (cmd_*.c).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct {
    const char *name;
    vkm_cmd_fn fn;
    const char *help;
} commands[] = {
    {"devices", cmd_devices, "list Vulkan devices and their capabilities"},
    {"run", cmd_run, "generate text with a model (streams to stdout)"},
    {"ppl", cmd_ppl, "perplexity of a model on a text file"},
    {"route", cmd_route, "how a MoErged model routes a text (CSV, JSON, heat map PNG)"},
    {"info", cmd_info, "inspect and validate a model or adapter file"},
    {"tokenize", cmd_tokenize, "print the token ids of a text"},
    {"bench", cmd_bench, "copy bandwidth and kernel microbenchmarks (--json)"},
    {"merge", cmd_merge, "merge models or LoRA adapters (mergekit methods and configs)"},
};

static void usage(FILE *f)
{
    fprintf(f, "vkmoe %s — MoErged language models on any Vulkan GPU\n\nusage: vkmoe <command> [options]\n\n",
            vkm_version());
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\nenvironment: VKMOE_DEVICE (index or name), VKMOE_VALIDATE=1 (validation layer),\n"
               "             VKMOE_PIPELINE_CACHE (folder for the pipeline cache, \"\" for none)\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("vkmoe %s\n", vkm_version());
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "vkmoe: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
