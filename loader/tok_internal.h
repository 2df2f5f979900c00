/*
 * tok_internal.h — the tokenizer's insides, shared by loader/tokenizer*.c and loader/tok_*.c:
 * the vocabulary (pieces, text -> id index, merge table), the normalisation and
 * pre-tokenisation steps a source file describes, and the two merge models. Not installed.
 */
#ifndef VKM_TOK_INTERNAL_H
#define VKM_TOK_INTERNAL_H

#include "base.h"
#include "tokenizer.h"

#define VKM_TOK_MAX_VOCAB (1 << 24)
#define VKM_TOK_MAX_PIECE (1 << 16)   /* bytes in one token's text                         */
#define VKM_TOK_MAX_NORM 8
#define VKM_TOK_MAX_PRE 4

/* Token types (the numbering of SentencePiece and of GGUF tokenizer.ggml.token_type). */
typedef enum vkm_tok_type {
    VKM_TOKT_NORMAL = 1,
    VKM_TOKT_UNKNOWN = 2,
    VKM_TOKT_CONTROL = 3,
    VKM_TOKT_USER = 4,   /* user-defined: always matched in text, decoded as written          */
    VKM_TOKT_UNUSED = 5,
    VKM_TOKT_BYTE = 6,   /* <0xNN> byte fallback                                              */
} vkm_tok_type;

typedef enum vkm_tok_model {
    VKM_TOK_SPM = 0, /* SentencePiece BPE: merge the adjacent pair whose joined text is the
                        piece of highest score, leftmost on ties (tokenizer.model, GGUF llama) */
    VKM_TOK_BPE = 1, /* merge the pair of lowest merge rank, leftmost on ties (tokenizer.json
                        BPE, GGUF gpt2)                                                        */
} vkm_tok_model;

/* One normalisation step, applied to each stretch of text between special tokens. */
typedef enum vkm_tok_norm_kind {
    VKM_TOK_NORM_COLLAPSE = 0, /* SentencePiece remove_extra_whitespaces: drop leading and
                                  trailing ' ', collapse runs of ' ' into one             */
    VKM_TOK_NORM_PREPEND = 1,  /* prepend a to non-empty text                               */
    VKM_TOK_NORM_REPLACE = 2,  /* replace every a with b                                    */
} vkm_tok_norm_kind;

typedef struct vkm_tok_norm {
    vkm_tok_norm_kind kind;
    char a[16], b[16];
    uint8_t na, nb;
    bool first_only;      /* PREPEND: only to the stretch at the start of the text           */
    bool unless_prefixed; /* PREPEND: not when the text already starts with a                */
} vkm_tok_norm;

/* Pre-tokenisation steps (each splits the pieces it is given). */
typedef enum vkm_tok_pre {
    VKM_TOK_PRE_DIGITS = 0,    /* every \p{N} character alone                                */
    VKM_TOK_PRE_GPT2 = 1,      /* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
    VKM_TOK_PRE_LLAMA3 = 2,    /* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
                                   ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+           */
    VKM_TOK_PRE_QWEN2 = 3,     /* the same with \p{N} instead of \p{N}{1,3}                   */
    VKM_TOK_PRE_METASPACE = 4, /* split before every U+2581 (Metaspace split=true)            */
    VKM_TOK_PRE_PREFIX_SPACE = 5, /* ByteLevel add_prefix_space: ' ' before a piece that has none */
} vkm_tok_pre;

typedef struct vkm_tok_piece {
    uint32_t off, len;  /* text in the arena                                                  */
    float score;
    uint8_t type;       /* vkm_tok_type                                                       */
    uint8_t strip;      /* added tokens: VKM_TOK_LSTRIP / VKM_TOK_RSTRIP                      */
} vkm_tok_piece;

#define VKM_TOK_LSTRIP 1 /* a match also takes the whitespace before it (HF lstrip)          */
#define VKM_TOK_RSTRIP 2 /* ... and after it (HF rstrip)                                     */

typedef struct vkm_tok_merge {
    uint64_t key;       /* (left id << 32) | right id; 0 with rank < 0 marks an empty slot    */
    int32_t rank, id;
} vkm_tok_merge;

struct vkm_tokenizer {
    vkm_err err;
    char source[24];          /* "gguf", "tokenizer.json", "tokenizer.model"                 */
    vkm_tok_model model;
    bool byte_level;          /* GPT-2 byte-level alphabet (pieces are mapped bytes)         */
    int32_t n_vocab;
    vkm_tok_piece *pieces;
    char *arena;
    size_t arena_len, arena_cap;
    int32_t *index;           /* open addressing text -> id, -1 empty                        */
    uint32_t index_mask;
    vkm_tok_merge *merges;    /* open addressing (left, right) -> (rank, id)                 */
    uint32_t merge_mask, n_merges;
    int32_t byte_tok[256];    /* <0xNN> tokens, -1 where absent                              */
    int32_t char_tok[256];    /* byte-level: the one-character token of each byte, or -1     */
    int32_t *specials;        /* ids matched in the text before the model runs, by first byte
                                 then longest first                                          */
    uint32_t n_specials;
    uint32_t special_at[257]; /* specials[special_at[b] .. special_at[b+1]) start with byte b */
    int32_t bos, eos, unk, pad;
    bool add_bos, add_eos;
    bool byte_fallback;       /* unknown characters become their <0xNN> tokens               */
    bool fuse_unk;            /* consecutive unknown characters become one unk               */
    bool ignore_merges;       /* BPE: a pre-token that is a whole token is taken as it is    */
    bool fold_long_s;         /* (?i) contractions also match U+017F (Oniguruma case folding) */
    vkm_tok_norm norm[VKM_TOK_MAX_NORM];
    int n_norm;
    vkm_tok_pre pre[VKM_TOK_MAX_PRE];
    int n_pre;
    /* decoding */
    bool dec_spaces;          /* U+2581 in a piece decodes to ' '                             */
    bool dec_strip;           /* drop one leading ' ' of the first piece (dummy prefix)      */
};

/* ---- building (tokenizer.c) --------------------------------------------------------------- */
vkm_tokenizer *vkm_tok_new(void);
/* Sizes the vocabulary (every id then needs its piece set). */
vkm_status vkm_tok_resize(vkm_tokenizer *t, int64_t n_vocab, vkm_err *e);
/* Sets the piece of id: its text (copied), score and type. */
vkm_status vkm_tok_set(vkm_tokenizer *t, int32_t id, const char *s, size_t n, float score,
                       int type, vkm_err *e);
/* Builds the text -> id index (the last of equal texts wins). Call once all pieces are set. */
vkm_status vkm_tok_index(vkm_tokenizer *t, vkm_err *e);
/* Id of a text, -1 if none. */
int32_t vkm_tok_find(const vkm_tokenizer *t, const char *s, size_t n);
/* Reserves the merge table for n merges, then adds them one by one (rank = order). */
vkm_status vkm_tok_merges_reserve(vkm_tokenizer *t, uint64_t n, vkm_err *e);
/* Adds the merge left+right at rank; `what` names it in the messages ("merges[12]"). */
vkm_status vkm_tok_merge_add(vkm_tokenizer *t, const char *left, size_t nl, const char *right,
                             size_t nr, int32_t rank, const char *what, vkm_err *e);
const vkm_tok_merge *vkm_tok_merge_find(const vkm_tokenizer *t, int32_t left, int32_t right);
/* Appends a normalisation step (a, b NUL-terminated, at most 15 bytes; false when not). */
bool vkm_tok_add_norm(vkm_tokenizer *t, vkm_tok_norm_kind kind, const char *a, const char *b);
/* Finishes: byte tables, special-token list, checks of bos/eos/unk/pad. */
vkm_status vkm_tok_finish(vkm_tokenizer *t, vkm_err *e);

static inline const char *vkm_tok_text(const vkm_tokenizer *t, int32_t id)
{
    return t->arena + t->pieces[id].off;
}

/* ---- sources ------------------------------------------------------------------------------ */
vkm_status vkm_tok_load_json(vkm_tokenizer *t, const char *path, vkm_err *e);
vkm_status vkm_tok_load_json_text(vkm_tokenizer *t, const char *json, size_t len,
                                  const char *dir, vkm_err *e);
vkm_status vkm_tok_load_spmodel(vkm_tokenizer *t, const char *path, vkm_err *e);
vkm_status vkm_tok_parse_spmodel(vkm_tokenizer *t, const uint8_t *p, size_t n, vkm_err *e);
vkm_status vkm_tok_load_gguf(vkm_tokenizer *t, const vkm_gguf *g, vkm_err *e);

/* ---- encoding ----------------------------------------------------------------------------- */
/* A growing list of ids. */
typedef struct vkm_tok_ids {
    int32_t *v;
    size_t n, cap;
} vkm_tok_ids;
bool vkm_tok_ids_push(vkm_tok_ids *ids, int32_t id);

/* Encodes one stretch of text between special tokens (at_start: it begins the text). */
vkm_status vkm_tok_encode_text(const vkm_tokenizer *t, const char *s, size_t n, bool at_start,
                               vkm_tok_ids *out);
/* The merge models on one pre-token (tok_spm.c, tok_bpe.c). */
vkm_status vkm_tok_spm_encode(const vkm_tokenizer *t, const char *s, size_t n,
                              vkm_tok_ids *out);
vkm_status vkm_tok_bpe_encode(const vkm_tokenizer *t, const char *s, size_t n,
                              vkm_tok_ids *out);

/* A queue of merge candidates, smallest key first, then leftmost (tok_bpe.c). SentencePiece
 * uses key = -score, rank BPE key = rank; a, b, id are the model's own bookkeeping. */
typedef struct vkm_tok_cand {
    double key;
    uint32_t left, right;
    int32_t a, b, id;
} vkm_tok_cand;
typedef struct vkm_tok_heap {
    vkm_tok_cand *v;
    size_t n, cap;
} vkm_tok_heap;
bool vkm_tok_heap_push(vkm_tok_heap *h, vkm_tok_cand c);
vkm_tok_cand vkm_tok_heap_pop(vkm_tok_heap *h);

/* Pre-tokenisation (tok_pretok.c): splits s into pieces, calling fn for each in order. */
typedef vkm_status (*vkm_tok_piece_fn)(const vkm_tokenizer *t, const char *s, size_t n,
                                       vkm_tok_ids *out);
vkm_status vkm_tok_pretokenize(const vkm_tokenizer *t, const char *s, size_t n,
                               vkm_tok_piece_fn fn, vkm_tok_ids *out);
/* Length in bytes of the regex match at s[0..n) for pattern pre (one of the regex kinds). */
size_t vkm_tok_regex_match(const vkm_tokenizer *t, vkm_tok_pre pre, const char *s, size_t n);

#endif /* VKM_TOK_INTERNAL_H */
