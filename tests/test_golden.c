/*
 * test_golden.c — the float64 goldens of ../shared/testbed/golden: for the testbed base (GGUF
 * F32, GGUF F16, safetensors) and stories260K (GGUF, safetensors), each prompt's last-position
 * logits within a normalised squared error of 1e-4 (F32 weights; the F16 file gets 1e-3) and the
 * 32-token greedy continuation token for token; the model's own tokenizer gives the golden ids.
 */
#include <cjson/cJSON.h>

#include "base.h"
#include "vkm_test.h"

#define GOLDEN VKM_SHARED_DIR "/testbed/golden"

static cJSON *golden_index(void)
{
    char *text = NULL;
    uint64_t len = 0;
    vkm_err e;
    if (vkm_read_text(GOLDEN "/index.json", 1 << 24, &text, &len, &e)) fail_msg("%s", e.msg);
    cJSON *j = cJSON_Parse(text);
    free(text);
    assert_non_null(j);
    return j;
}

static float *read_logits(const char *rel, size_t n)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", GOLDEN, rel);
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    float *v = test_alloc(n * 4);
    assert_int_equal(fread(v, 4, n, f), n);
    fclose(f);
    return v;
}

static void run_case(vkm_context *ctx, const cJSON *c, const char *model_rel, double tol)
{
    char path[1024];
    if (model_rel[0] == '/') snprintf(path, sizeof path, "%s", model_rel);
    else snprintf(path, sizeof path, "%s/testbed/%s", VKM_SHARED_DIR, model_rel);
    vkm_model_params mp = vkm_model_default_params();
    mp.n_seq = 1;
    vkm_model *m = NULL;
    if (vkm_model_load(ctx, path, &mp, &m)) fail_msg("%s: %s", path, vkm_context_errmsg(ctx));
    vkm_model_info info;
    vkm_model_get_info(m, &info);
    const vkm_tokenizer *tok = vkm_model_tokenizer(m);
    assert_non_null(tok);
    vkm_session_params sp = vkm_session_default_params();
    sp.sampling.temperature = 0;
    sp.keep_logits = true;
    const cJSON *prompts = cJSON_GetObjectItem(c, "prompts"), *pr;
    cJSON_ArrayForEach(pr, prompts)
    {
        const cJSON *jids = cJSON_GetObjectItem(pr, "ids"), *jg = cJSON_GetObjectItem(pr, "greedy_ids");
        int n = cJSON_GetArraySize(jids), ng = cJSON_GetArraySize(jg);
        int32_t ids[256], want[64], got[64];
        assert_true(n <= 256 && ng <= 64);
        for (int i = 0; i < n; i++) ids[i] = cJSON_GetArrayItem(jids, i)->valueint;
        for (int i = 0; i < ng; i++) want[i] = cJSON_GetArrayItem(jg, i)->valueint;
        /* the model's tokenizer gives the golden ids */
        const char *text = cJSON_GetObjectItem(pr, "prompt")->valuestring;
        int32_t tids[256];
        size_t tn = 0;
        assert_int_equal(vkm_tokenize(tok, text, strlen(text), true, false, tids, 256, &tn), VKM_OK);
        assert_int_equal(tn, (size_t)n);
        assert_memory_equal(tids, ids, (size_t)n * 4);

        vkm_session *s;
        assert_int_equal(vkm_session_create(m, &sp, &s), VKM_OK);
        int32_t next;
        if (vkm_session_prompt(s, ids, (size_t)n, &next)) fail_msg("%s", vkm_context_errmsg(ctx));
        const float *lg;
        size_t nv;
        assert_int_equal(vkm_session_logits(s, &lg, &nv), VKM_OK);
        float *ref = read_logits(cJSON_GetObjectItem(pr, "logits_file")->valuestring, nv);
        double e = test_nmse(lg, ref, nv);
        char shown[41];
        size_t k = 0;
        for (const char *ch = text; *ch && k < 40; ch++) shown[k++] = *ch == '\n' ? ' ' : *ch;
        shown[k] = 0;
        printf("%-32s %-40s nmse %.3g", model_rel, shown, e);
        if (!(e < tol)) fail_msg("%s: logits nmse %.3g >= %.3g", model_rel, e, tol);
        free(ref);
        for (int i = 0; i < ng; i++) {
            got[i] = next;
            if (i + 1 < ng && vkm_session_decode(s, next, &next)) fail_msg("%s", vkm_context_errmsg(ctx));
        }
        int same = 0;
        while (same < ng && got[same] == want[same]) same++;
        printf("  greedy %d/%d\n", same, ng);
        if (same != ng) fail_msg("%s: greedy continuation differs at token %d (%d vs %d)", model_rel, same,
                                 got[same], want[same]);
        vkm_session_free(s);
    }
    vkm_model_free(m);
}

static void test_goldens(void **state)
{
    (void)state;
    cJSON *j = golden_index();
    const cJSON *cases = cJSON_GetObjectItem(j, "cases");
    vkm_context *ctx = test_context();
    const cJSON *base = cJSON_GetObjectItem(cases, "base"), *st = cJSON_GetObjectItem(cases, "stories260K");
    run_case(ctx, base, "base/model.gguf", 1e-4);
    run_case(ctx, base, "base/model.safetensors", 1e-4);
    run_case(ctx, base, "base/model-f16.gguf", 1e-3);
    run_case(ctx, st, "stories260K/model.gguf", 1e-4);
    run_case(ctx, st, "stories260K/model.safetensors", 1e-4);
    /* the python expert alone at scale 1, as a MoErge manifest (fixed weight 1) */
    const cJSON *lp = cJSON_GetObjectItem(cases, "base+lora_python");
    char man[600];
    snprintf(man, sizeof man, "%s/golden-python.json", VKM_TEST_TMPDIR);
    FILE *f = fopen(man, "w");
    assert_non_null(f);
    fprintf(f, "{\"base\": \"%s/testbed/base/model.gguf\", \"experts\": [{\"name\": \"python\", "
               "\"lora\": \"%s/testbed/experts/python\"}], \"router\": {\"policy\": \"fixed\", \"fixed\": [1.0], "
               "\"granularity\": \"task\"}}\n", VKM_SHARED_DIR, VKM_SHARED_DIR);
    fclose(f);
    run_case(ctx, lp, man, 1e-4);
    test_context_done(ctx);
    cJSON_Delete(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_goldens)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
