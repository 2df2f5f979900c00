# Turns one SPIR-V binary into a C file holding it as 32-bit words (SPIR-V is a word stream).
# Usage: cmake -DIN=x.spv -DOUT=x.c -DNAME=variant -P embed_spirv.cmake
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" n)
math(EXPR rem "${n} % 8")
if(NOT rem EQUAL 0 OR n EQUAL 0)
  message(FATAL_ERROR "${IN}: not a whole number of 32-bit words")
endif()
# Each word is 8 hex digits, little-endian bytes: reorder to a 0x literal.
string(REGEX REPLACE "([0-9a-f][0-9a-f])([0-9a-f][0-9a-f])([0-9a-f][0-9a-f])([0-9a-f][0-9a-f])"
       "0x\\4\\3\\2\\1u," words "${hex}")
string(REGEX REPLACE "(0x[0-9a-f]+u,0x[0-9a-f]+u,0x[0-9a-f]+u,0x[0-9a-f]+u,0x[0-9a-f]+u,0x[0-9a-f]+u,0x[0-9a-f]+u,0x[0-9a-f]+u,)"
       "\\1\n" words "${words}")
math(EXPR nw "${n} / 8")
file(WRITE "${OUT}.tmp" "/* generated from ${NAME}.spv: do not edit */\n#include <stdint.h>\nconst uint32_t vkm_spv_${NAME}[${nw}] = {\n${words}};\n")
file(RENAME "${OUT}.tmp" "${OUT}")
