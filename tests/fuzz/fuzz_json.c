/*
 * fuzz_json.c — libFuzzer target for the JSON readers. The first byte picks what the rest is:
 * even: a MoErge manifest (relative paths resolve in the testbed folder of VKM_SHARED_DIR, so
 * "base/model.gguf" exists); odd: a Hugging Face config.json. Checks: no crash, no leak, an
 * accepted manifest or config obeys its documented rules.
 */
#include <stdint.h>

#include "fuzz_common.h"

static void manifest(const char *text, size_t len)
{
    static char dir[1024];
    if (!dir[0]) snprintf(dir, sizeof dir, "%s/testbed", fuzz_shared_dir());
    static vkm_manifest m; /* large: keep it off the stack */
    vkm_err e = {0};
    if (vkm_manifest_parse(text, len, dir, &m, &e) != VKM_OK) {
        FUZZ_CHECK(e.msg[0]);
        return;
    }
    FUZZ_CHECK(m.n_experts >= 1 && m.n_experts <= VKM_MAX_EXPERTS);
    FUZZ_CHECK(m.router.top_k <= m.n_experts);
    FUZZ_CHECK(m.router.temperature > 0);
    FUZZ_CHECK(m.router.always_on < (int32_t)m.n_experts);
    for (uint32_t i = 0; i < m.n_experts; i++) {
        FUZZ_CHECK(m.experts[i].name[0]);
        FUZZ_CHECK(!m.experts[i].lora[0] != !m.experts[i].model[0]);
        for (uint32_t j = 0; j < i; j++) FUZZ_CHECK(strcmp(m.experts[i].name, m.experts[j].name));
    }
    vkm_manifest_free(&m);
}

static void config(const char *text, size_t len)
{
    vkm_hparams hp;
    vkm_err e = {0};
    if (vkm_hf_config_parse(text, len, "config.json", &hp, &e) == VKM_OK)
        FUZZ_CHECK(vkm_hparams_check(&hp, "config.json", &e) == VKM_OK && hp.rope_layout == VKM_ROPE_HALF);
    else
        FUZZ_CHECK(e.msg[0]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const char *text = (const char *)data + 1;
    if (data[0] % 2 == 0) manifest(text, size - 1);
    else config(text, size - 1);
    return 0;
}
