# Every kernel variant compiled at build time: vkm_shader(<variant> <source> [DEFINES...]).
# Variants differ by -D (weight type, subgroup fallback); sizes and modes are specialization
# constants chosen at run time from the device's capabilities.

# vkm_shader_sg(<variant> <source> [DEFINES...]): the variant plus its <variant>_nosg twin for
# devices without subgroup arithmetic in compute.
macro(vkm_shader_sg name src)
  vkm_shader(${name} ${src} ${ARGN})
  vkm_shader(${name}_nosg ${src} ${ARGN} VKM_NO_SUBGROUP)
endmacro()

vkm_shader(copy copy.comp)
vkm_shader(eltwise eltwise.comp)
vkm_shader_sg(rmsnorm rmsnorm.comp)
vkm_shader_sg(softmax softmax.comp)
foreach(t F32 F16 F16S Q8_0 Q4_0)
  string(TOLOWER ${t} lt)
  vkm_shader_sg(matvec_${lt} matvec.comp WTYPE_${t})
endforeach()
foreach(t F32 F16 F16S Q8_0 Q4_0)
  string(TOLOWER ${t} lt)
  vkm_shader(matmul_${lt} matmul.comp WTYPE_${t})
  vkm_shader(embed_${lt} embed.comp WTYPE_${t})
endforeach()
vkm_shader(rope rope.comp)
vkm_shader(kv_store kv_store.comp)
vkm_shader_sg(attn attn.comp)
vkm_shader(attn_reduce attn_reduce.comp)
vkm_shader_sg(sample sample.comp)
include(${CMAKE_CURRENT_SOURCE_DIR}/variants_merge.cmake OPTIONAL)
vkm_shader(router router.comp)
vkm_shader(lora_shrink lora.comp LORA_SHRINK)
vkm_shader(lora_expand lora.comp LORA_EXPAND)
vkm_shader(pool pool.comp)
vkm_shader_sg(arrow arrow.comp)
vkm_shader(lora_compose lora_compose.comp)
vkm_shader_sg(mix mix.comp)
