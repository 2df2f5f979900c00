# The subcommand sources of the vkmoe CLI (one file per subcommand).
list(APPEND VKMOE_CLI_SOURCES cli_common.c cmd_devices.c cmd_bench.c cmd_run.c cmd_ppl.c cmd_tokenize.c cmd_info.c cmd_route.c route_out.c)
list(APPEND VKMOE_CLI_SOURCES cmd_merge.c cmd_merge_moe.c)
