# Tokenizer tests: exact ids against the reference tokenizers' output stored in
# tests/data/tokenizer (see its README), decoding, streaming, malformed tokenizer files.
# Included from tests/CMakeLists.txt after loader_tests.cmake (uses vkm_loader_testutil).
vkm_test(test_tokenizer SOURCES test_tokenizer.c LIBS vkm_loader_testutil vkmoe_loader LABELS loader tokenizer
         TIMEOUT 300)
vkm_test(test_tokenizer_bad SOURCES test_tokenizer_bad.c LIBS vkm_loader_testutil vkmoe_loader
         LABELS loader tokenizer TIMEOUT 300)
