/*
 * embed.c — the smallest program that embeds vkmoe: create a context, load a model, open a
 * session and stream a reply to stdout. Build against the public header and the library only.
 *
 *   embed MODEL [PROMPT] [N_TOKENS]
 */
#include <stdio.h>
#include <stdlib.h>

#include "vkmoe.h"

static bool print_token(void *user, int32_t token, const char *text, size_t len)
{
    (void)user;
    (void)token;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return true; /* return false to stop early */
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL [PROMPT] [N_TOKENS]\n", argv[0]);
        return 2;
    }
    const char *prompt = argc > 2 ? argv[2] : "Once upon a time";
    int n = argc > 3 ? atoi(argv[3]) : 48;

    vkm_context *ctx = NULL;
    vkm_context_params cp = vkm_context_default_params(); /* best device, no validation */
    vkm_status s = vkm_context_create(&cp, &ctx);
    if (s != VKM_OK) {
        fprintf(stderr, "context: %s\n", ctx ? vkm_context_errmsg(ctx) : vkm_status_str(s));
        vkm_context_destroy(ctx);
        return 1;
    }
    vkm_model *model = NULL;
    vkm_model_params mp = vkm_model_default_params();
    mp.n_seq = 1;
    s = vkm_model_load(ctx, argv[1], &mp, &model);
    vkm_session *session = NULL;
    vkm_session_params sp = vkm_session_default_params();
    sp.sampling.temperature = 0; /* greedy: the same reply every run */
    if (s == VKM_OK) s = vkm_session_create(model, &sp, &session);
    if (s == VKM_OK) {
        printf("%s", prompt);
        vkm_generate_params gp = vkm_generate_default_params();
        gp.n_predict = (uint32_t)(n > 0 ? n : 48);
        gp.on_token = print_token;
        vkm_generate_stats st;
        s = vkm_generate(session, prompt, &gp, &st);
        printf("\n");
        if (s == VKM_OK)
            fprintf(stderr, "%u prompt tokens, %u generated in %.3f s\n", st.n_prompt, st.n_generated,
                    st.prefill_seconds + st.decode_seconds);
    }
    if (s != VKM_OK) fprintf(stderr, "error: %s (%s)\n", vkm_context_errmsg(ctx), vkm_status_str(s));
    vkm_session_free(session);
    vkm_model_free(model);
    vkm_context_destroy(ctx);
    return s == VKM_OK ? 0 : 1;
}
