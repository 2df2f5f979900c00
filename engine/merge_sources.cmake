# The merging module (included from engine/CMakeLists.txt): kernels' host side, the plan, the
# streamer, the outputs, LoRA merges; in the loader (files <-> host descriptions): the YAML config
# reader and the random model writer of the benchmark.
list(APPEND VKMOE_ENGINE_SOURCES merge_ops.c merge_plan.c merge_stream.c merge_out.c
     merge_model.c merge_lora.c merge_adapter.c)
target_sources(vkmoe_loader PRIVATE ${PROJECT_SOURCE_DIR}/loader/merge_config.c
               ${PROJECT_SOURCE_DIR}/loader/model_random.c)
