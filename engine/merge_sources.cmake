# The merging module (included from engine/CMakeLists.txt): kernels' host side, the plan, the
# streamer, the outputs, LoRA merges, and the YAML config reader (a loader file: files -> params).
list(APPEND VKMOE_ENGINE_SOURCES merge_ops.c merge_plan.c merge_stream.c merge_out.c
     merge_model.c merge_lora.c merge_adapter.c)
target_sources(vkmoe_loader PRIVATE ${PROJECT_SOURCE_DIR}/loader/merge_config.c)
