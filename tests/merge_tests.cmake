# Merging tests (included from tests/CMakeLists.txt): the merge kernels against plain-C
# references, and whole merges on the testbed's models (files, configs, LoRA merges, interruption).
add_library(vkm_ref_merge STATIC ref/ref_merge.c)
target_include_directories(vkm_ref_merge PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/ref)
target_link_libraries(vkm_ref_merge PUBLIC vkmoe_loader m)
vkm_test(test_merge SOURCES test_merge.c LIBS vkmoe_internal vkm_ref_merge LABELS engine TIMEOUT 600)
vkm_test(test_merge_lora SOURCES test_merge_lora.c LIBS vkmoe_internal vkm_ref_merge PkgConfig::CJSON LABELS engine TIMEOUT 600)
vkm_test(test_merge_files SOURCES test_merge_files.c LIBS vkmoe_internal vkm_ref_merge vkm_ref_model LABELS engine TIMEOUT 600)
target_compile_definitions(test_merge_files PRIVATE VKM_CLI="$<TARGET_FILE:vkmoe_cli>")
if(TARGET vkmoe_cli)
  add_dependencies(test_merge_files vkmoe_cli)
endif()
