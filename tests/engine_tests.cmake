# Engine tests: kernels against plain-C references, device/pipeline/recorder behaviour.
add_library(vkm_ref STATIC ref/ref_kernels.c)
target_include_directories(vkm_ref PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/ref)
target_link_libraries(vkm_ref PUBLIC m)

vkm_test(test_kernels SOURCES test_kernels.c LIBS vkmoe_internal vkm_ref LABELS engine)
vkm_test(test_device SOURCES test_device.c LIBS vkmoe_internal LABELS engine)
vkm_test(test_sync SOURCES test_sync.c LIBS vkmoe_internal LABELS engine)
vkm_test(test_chunked SOURCES test_chunked.c LIBS vkmoe_internal vkm_ref LABELS engine)
add_library(vkm_ref_model STATIC ref/ref_forward.c ref/ref_files.c)
target_include_directories(vkm_ref_model PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/ref)
target_link_libraries(vkm_ref_model PUBLIC vkmoe_loader m)
vkm_test(test_forward SOURCES test_forward.c LIBS vkmoe vkm_ref_model LABELS engine)
vkm_test(test_golden SOURCES test_golden.c LIBS vkmoe LABELS engine)
