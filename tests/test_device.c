/*
 * test_device.c — the Vulkan runtime: capabilities, device choice, the kernel registry and its
 * reflection (bindings, access, push sizes mirrored by engine/push.h), the persisted pipeline
 * cache and its validation, the descriptor cache, recorder errors, status strings.
 */
#include <sys/stat.h>
#include <unistd.h>

#include "merge_push.h"
#include "push.h"
#include "vkm_test_engine.h"

static bool is_lavapipe(const vkm_device_caps *c) { return strstr(c->name, "llvmpipe") != NULL; }

static void test_caps(void **state)
{
    (void)state;
    vkm_context *ctx = test_context();
    const vkm_device_caps *c = vkm_context_caps(ctx);
    assert_non_null(c);
    assert_true(c->subgroup_size >= 1);
    assert_true(c->max_storage_range >= (1u << 27) || !is_lavapipe(c));
    assert_true(c->max_push_bytes >= 128);
    assert_true(c->storage_align >= 1);
    if (is_lavapipe(c)) { /* the limits the issue names */
        assert_int_equal(c->subgroup_size, 8);
        assert_int_equal(c->max_storage_range, 128u << 20);
        assert_true(c->fp16_arith && c->storage16 && c->storage8 && c->int8_arith && c->timestamps);
    }
    uint32_t n = 0;
    assert_int_equal(vkm_device_count(&n), VKM_OK);
    assert_true(n >= 1);
    vkm_device_caps c0;
    assert_int_equal(vkm_device_info(0, &c0), VKM_OK);
    assert_int_equal(vkm_device_info(n, &c0), VKM_ERR_NOT_FOUND);
    test_context_done(ctx);
}

static void test_device_choice(void **state)
{
    (void)state;
    vkm_context_params p = vkm_context_default_params();
    vkm_device_caps c0;
    assert_int_equal(vkm_device_info(0, &c0), VKM_OK);
    /* by index */
    p.device = "0";
    vkm_context *ctx = test_context_with(p);
    assert_string_equal(vkm_context_caps(ctx)->name, c0.name);
    test_context_done(ctx);
    /* by a case-changed substring of the name */
    char sub[8];
    snprintf(sub, sizeof sub, "%.4s", c0.name);
    for (char *q = sub; *q; q++) *q = (char)(*q >= 'a' && *q <= 'z' ? *q - 32 : *q);
    p.device = sub;
    ctx = test_context_with(p);
    assert_string_equal(vkm_context_caps(ctx)->name, c0.name);
    test_context_done(ctx);
    /* no match: a clear error naming what was asked */
    const char *bad[] = {"no-such-gpu-xyz", "99"};
    for (int i = 0; i < 2; i++) {
        p.device = bad[i];
        vkm_context *bc = NULL;
        assert_int_equal(vkm_context_create(&p, &bc), VKM_ERR_NO_DEVICE);
        assert_non_null(bc);
        assert_non_null(strstr(vkm_context_errmsg(bc), bad[i]));
        assert_null(vkm_context_caps(bc));
        vkm_context_destroy(bc);
    }
    vkm_context_destroy(NULL);
}

/* Each kernel's reflected push size equals the host mirror in engine/push.h or
 * engine/merge_push.h. */
static uint32_t host_push_size(const char *name)
{
    static const struct { const char *prefix; uint32_t size; } tab[] = {
        {"matvec_moe", sizeof(vkm_push_moe)}, {"matmul_moe", sizeof(vkm_push_moe)},
        {"route_group", sizeof(vkm_push_group)}, {"moe_combine", sizeof(vkm_push_combine)},
        {"matvec_lora", sizeof(vkm_push_matvec_lora)}, {"matvec", sizeof(vkm_push_matvec)}, {"matmul", sizeof(vkm_push_matmul)},
        {"copy", sizeof(vkm_push_copy)}, {"rmsnorm", sizeof(vkm_push_norm)},
        {"softmax", sizeof(vkm_push_softmax)}, {"eltwise", sizeof(vkm_push_eltwise)},
        {"embed", sizeof(vkm_push_embed)}, {"rope", sizeof(vkm_push_rope)},
        {"kv_store", sizeof(vkm_push_kv)}, {"attn_reduce", sizeof(vkm_push_attn_reduce)},
        {"attn", sizeof(vkm_push_attn)}, {"sample", sizeof(vkm_push_sample)},
        {"router", sizeof(vkm_push_router)}, /* the fused sites' variants before their prefixes */
        {"lora_shrink_sites", sizeof(vkm_push_lora_sites)},
        {"lora_route_shrink_sites", sizeof(vkm_push_lora_route)}, {"lora_expand_sites", sizeof(vkm_push_lora_sites)},
        {"lora_shrink", sizeof(vkm_push_lora)},
        {"lora_expand", sizeof(vkm_push_lora)},
        {"pool", sizeof(vkm_push_pool)}, {"arrow", sizeof(vkm_push_arrow)},
        {"lora_compose", sizeof(vkm_push_compose)}, {"mix", sizeof(vkm_push_mix)},
        {"merge_reduce", sizeof(vkm_push_reduce)}, {"merge", sizeof(vkm_push_merge)}, /* and merge_in */
        {"select", sizeof(vkm_push_select)}, {"lora_merge", sizeof(vkm_push_lora_merge)},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (!strncmp(name, tab[i].prefix, strlen(tab[i].prefix))) return tab[i].size;
    return 0;
}

static void test_registry(void **state)
{
    (void)state;
    vkm_context *ctx = test_context();
    vkm_dev *d = &ctx->dev;
    assert_true(VKM_SPV_COUNT > 10);
    for (int i = 0; i < VKM_SPV_COUNT; i++) {
        const vkm_spv_entry *e = &vkm_spv_registry[i];
        assert_true(e->n_words > 5 && e->words[0] == 0x07230203u);
        assert_int_equal(vkm_spv_find(e->name), i);
        vkm_kernel *k = NULL;
        vkm_status s = vkm_kernel_get(d, (vkm_spv_id)i, &k);
        if (s != VKM_OK) fail_msg("%s: %s", e->name, vkm_context_errmsg(ctx));
        assert_true(k->n_bindings >= 1 && k->n_bindings <= VKM_MAX_BINDINGS);
        assert_true(k->push_bytes <= 128);
        assert_true(k->spec_ids & 1u); /* workgroup size is spec constant 0 everywhere */
        uint32_t want = host_push_size(e->name);
        if (!want) fail_msg("%s: no host mirror of its push block is registered here", e->name);
        if (k->push_bytes != want)
            fail_msg("%s: shader push block %u bytes, host struct %u", e->name, k->push_bytes, want);
    }
    assert_int_equal(vkm_spv_find("no_such_kernel"), VKM_SPV_COUNT);
    /* access flags from the decorations: matvec reads W and x, reads and writes y */
    vkm_kernel *k;
    assert_int_equal(vkm_kernel_get(d, VKM_SPV_matvec_f32, &k), VKM_OK);
    assert_int_equal(k->n_bindings, 3);
    assert_int_equal(k->access[0], VKM_ACC_READ);
    assert_int_equal(k->access[1], VKM_ACC_READ);
    assert_int_equal(k->access[2], VKM_ACC_READ | VKM_ACC_WRITE);
    assert_int_equal(vkm_kernel_get(d, VKM_SPV_copy, &k), VKM_OK);
    assert_int_equal(k->access[1], VKM_ACC_WRITE);
    test_context_done(ctx);
}

/* Runs one small matvec so some pipelines exist. */
static void small_matvec(vkm_context *ctx)
{
    test_gpu g;
    test_gpu_init(&g, ctx);
    float w[64], x[8], y[8];
    for (int i = 0; i < 64; i++) w[i] = (float)(i % 7) - 3.0f;
    for (int i = 0; i < 8; i++) x[i] = (float)i;
    vkm_tensor wt;
    test_gpu_check(&g, vkm_tensor_alloc(&g.arena, VKM_F32, 8, 8, 0, &wt));
    test_gpu_check(&g, vkm_tensor_upload(g.d, &wt, VKM_F32, w, NULL));
    vkm_range xr = test_gpu_floats(&g, x, 8), yr = test_gpu_floats(&g, NULL, 8);
    vkm_rec *r = test_gpu_begin(&g);
    vkm_op_matvec(r, &wt, (vkm_act){xr, 0, 8}, (vkm_act){yr, 0, 8}, 1, false);
    test_gpu_run(&g);
    test_gpu_read(&g, yr, y, 8);
    for (int i = 0; i < 8; i++) {
        float ref = 0;
        for (int c = 0; c < 8; c++) ref += w[i * 8 + c] * x[c];
        assert_true(fabsf(y[i] - ref) < 1e-5f);
    }
    test_gpu_done(&g);
}

static void test_pipeline_cache(void **state)
{
    (void)state;
    char dir[512], path[1100];
    snprintf(dir, sizeof dir, "%s/pcache-%d", VKM_TEST_TMPDIR, (int)getpid());
    vkm_context_params p = vkm_context_default_params();
    p.pipeline_cache_dir = dir;
    vkm_context *ctx = test_context_with(p);
    assert_false(ctx->dev.pcache_loaded);
    small_matvec(ctx);
    snprintf(path, sizeof path, "%s", ctx->dev.pcache_path);
    test_context_done(ctx); /* saves */
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_size > 64);

    ctx = test_context_with(p); /* loads and validates */
    assert_true(ctx->dev.pcache_loaded);
    small_matvec(ctx);
    test_context_done(ctx);

    /* a corrupt blob (checksum) and a header from another driver version are ignored */
    for (int mode = 0; mode < 2; mode++) {
        FILE *f = fopen(path, "r+b");
        assert_non_null(f);
        if (mode == 0) fseek(f, st.st_size - 3, SEEK_SET);
        else fseek(f, 8 + 8, SEEK_SET); /* driver_version field */
        int ch = fgetc(f);
        fseek(f, -1, SEEK_CUR);
        fputc(ch ^ 0x5a, f);
        fclose(f);
        ctx = test_context_with(p);
        assert_false(ctx->dev.pcache_loaded);
        small_matvec(ctx);
        test_context_done(ctx); /* rewrites a valid cache */
    }
    ctx = test_context_with(p);
    assert_true(ctx->dev.pcache_loaded);
    test_context_done(ctx);
    unlink(path);
    rmdir(dir);
}

static void test_descriptor_cache_and_recorder(void **state)
{
    (void)state;
    vkm_context *ctx = test_context();
    test_gpu g;
    test_gpu_init(&g, ctx);
    float a[256];
    for (int i = 0; i < 256; i++) a[i] = (float)i;
    vkm_range ar = test_gpu_floats(&g, a, 256), br = test_gpu_floats(&g, NULL, 256);
    vkm_act A = {ar, 0, 256}, B = {br, 0, 256};
    uint32_t before = 0;
    for (int step = 0; step < 3; step++) {
        vkm_rec *r = test_gpu_begin(&g);
        vkm_op_eltwise(r, VKM_ELT_ADD, A, A, B, 256);
        vkm_op_eltwise(r, VKM_ELT_MUL, B, A, B, 256);
        test_gpu_run(&g);
        if (step == 0) before = vkm_dcache_count(g.d);
        else assert_int_equal(vkm_dcache_count(g.d), before); /* steady state: no allocation */
    }
    float out[256];
    test_gpu_read(&g, br, out, 256);
    for (int i = 0; i < 256; i++) assert_true(out[i] == (a[i] + a[i]) * a[i]);

    /* a wrong binding count is refused with the kernel's name */
    vkm_rec *r = test_gpu_begin(&g);
    vkm_pipe *p = vkm_ops_pipe(r, VKM_SPV_copy, (uint32_t[]){64, 1}, 2);
    assert_non_null(p);
    vkm_push_copy pc = {16};
    vkm_rec_dispatch(r, p, &ar, 1, &pc, sizeof pc, 1, 1, 1);
    assert_int_equal(r->status, VKM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkm_context_errmsg(ctx), "copy"));
    assert_int_equal(vkm_rec_end(r), VKM_ERR_INVALID_ARGUMENT);
    test_gpu_done(&g);
    test_context_done(ctx);
}

static void test_status_strings(void **state)
{
    (void)state;
    const vkm_status all[] = {VKM_OK, VKM_ERR_INVALID_ARGUMENT, VKM_ERR_STATE, VKM_ERR_CANCELLED,
                              VKM_ERR_IO, VKM_ERR_FORMAT, VKM_ERR_MISMATCH, VKM_ERR_NOT_FOUND,
                              VKM_ERR_NO_DEVICE, VKM_ERR_VULKAN, VKM_ERR_DEVICE_LOST,
                              VKM_ERR_UNSUPPORTED, VKM_ERR_OUT_OF_HOST_MEMORY,
                              VKM_ERR_OUT_OF_DEVICE_MEMORY, VKM_ERR_LIMIT};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        const char *s = vkm_status_str(all[i]);
        assert_non_null(s);
        assert_non_null(strstr(s, "VKM_"));
        assert_null(strstr(s, "unknown"));
    }
    assert_non_null(strstr(vkm_status_str((vkm_status)999), "unknown"));
    assert_string_equal(vkm_version(), VKMOE_VERSION_STRING);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_strings),
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_device_choice),
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_pipeline_cache),
        cmocka_unit_test(test_descriptor_cache_and_recorder),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
