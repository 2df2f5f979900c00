# The merging kernels (engine/merge*.c): element-wise merge methods, per-tensor reductions,
# the GPU magnitude selection (radix select) and the in-place LoRA delta for each weight layout.
vkm_shader(merge merge.comp)
vkm_shader(merge_in merge.comp VKM_MERGE_INPUTS)
vkm_shader_sg(merge_reduce merge_reduce.comp)
vkm_shader(select_hist select.comp SELECT_HIST)
vkm_shader(select_pick select.comp SELECT_PICK)
vkm_shader(select_cand select.comp SELECT_CAND)
vkm_shader_sg(select_bracket select.comp SELECT_BRACKET)
foreach(t F32 F16 Q8_0 Q4_0)
  string(TOLOWER ${t} lt)
  vkm_shader(lora_merge_${lt} lora_merge.comp WTYPE_${t})
endforeach()
