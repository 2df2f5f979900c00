# Loader tests: one executable per module, on the real files in ../shared and on files the tests
# build (malformed ones included). Included from tests/CMakeLists.txt.
add_library(vkm_loader_testutil STATIC loader_util.c)
target_link_libraries(vkm_loader_testutil PUBLIC vkmoe_loader ${CMOCKA_LIBRARIES} cmocka)
target_compile_definitions(vkm_loader_testutil PRIVATE
  VKM_SHARED_DIR="${VKMOE_SHARED_DIR}"
  VKM_TEST_TMPDIR="${CMAKE_CURRENT_BINARY_DIR}/tmp")

foreach(t gguf safetensors model_src adapter manifest file)
  vkm_test(test_${t} SOURCES test_${t}.c LIBS vkm_loader_testutil vkmoe_loader LABELS loader TIMEOUT 300)
endforeach()
