/*
 * tokenpick's C core: row kernels over float32, float16 and bfloat16 logits.
 *
 * Every kernel takes one row (a plain array of n logits, n >= 1, of the
 * element type of its table: tp_kernels_for) and writes one result, in
 * float32.  The callers (the Cython driver) guarantee what the Python layer
 * checked: no NaN, no +inf, at least one finite value per row (the table's scan
 * reports these), parameters in range.  No kernel allocates, takes a lock or
 * touches global mutable state, so any number of threads may call them at once.
 *
 * Semantics are those of docs/semantics.md; tokenpick.reference is their
 * executable form and the oracle the tests compare these kernels with.
 */
#ifndef TOKENPICK_H
#define TOKENPICK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- element types --------------------------------------------------------- */

/* The element types of rows: each has its own table of kernels, which read
 * the row in place, widening each value exactly to float32 as they load it. */
#define TP_ELEM_F32 0  /* float */
#define TP_ELEM_F16 1  /* IEEE half precision (1 sign, 5 exponent, 10 mantissa bits) */
#define TP_ELEM_BF16 2 /* bfloat16: the high 16 bits of a float32 */
#define TP_ELEM_COUNT 3

/* ---- row checks --------------------------------------------------------- */

enum {
    TP_OK = 0,
    TP_ERR_NAN = 1,        /* the row holds a NaN */
    TP_ERR_POSINF = 2,     /* the row holds +inf */
    TP_ERR_ALL_NEGINF = 3, /* every value of the row is -inf */
    TP_ERR_NONE_LEFT = 4   /* the logit processors ban every token of the row */
};

typedef struct tp_proc tp_proc;

/* What one pass over a row learns: its max and the lowest index holding it;
 * and, from scan_top_k, the max of each block of bmax_bs tokens, which
 * top-k reads (bmax NULL otherwise).  bmax points into the workspace, so it
 * holds for that row only until the workspace is used again: scan_top_k
 * a row, then keep the same row, before anything else uses the workspace.
 * proc says which row all this is of: x itself (NULL), or x as the logit
 * processors proc leave it (scan_processed), which keep then applies. */
typedef struct {
    float max;
    int64_t argmax;
    const float *bmax;
    int64_t bmax_bs;
    const tp_proc *proc;
    /* top-n-sigma's moments of the finite logits (their count, the sums of
     * d = x - sigma_c and of d * d), where scan_top_k was asked for them;
     * sigma_m[0] is -1 where not. */
    float sigma_c;
    double sigma_m[3];
} tp_rowstat;

/* ---- logit processors ------------------------------------------------------ */

/* A row's logit processors (grammar bitmask, biases, penalties, bans), as
 * the kernels apply them while they read the row: token j's processed logit
 * is x[j] where bit j % 32 of allow[j / 32] is set; where it is not, the
 * token's patch if it has one (the biased and penalized value, computed by
 * the caller, for the few tokens the processors change), and -inf (banned)
 * otherwise.  Tokens whose bit is set are untouched: their processed logit
 * is x[j], bit for bit. */
struct tp_proc {
    const uint32_t *allow; /* (n + 31) / 32 words */
    const int64_t *ids;    /* the nids tokens with a patch (their bits clear), in any order */
    const float *vals;     /* their patches: finite, or -inf (banned after all) */
    int64_t nids;
    float top;      /* the largest patch (-inf where none) ... */
    int64_t top_id; /* ... and its lowest token (any where the largest is -inf) */
    /* the ids of the arguments neither -1 nor in [0, n): skipped, and
     * counted here for the caller to report */
    int64_t stray;
    float *row; /* n floats of scratch: the processed row, where a kernel needs it whole */
};

/* A token's tally, in the processors' tables and lists: its count in the
 * output in the low bits, and flags. */
enum {
    TP_COUNT = (1u << 27) - 1,
    TP_STOP = 1u << 27,    /* tp_kept: banned while the outputs are fewer than min_tokens */
    TP_PRESENT = 1u << 28, /* in the prompt */
    TP_BANNED = 1u << 29,
    TP_TOUCHED = 1u << 31 /* (tp_proc.c's table) listed among the touched tokens */
};

/* A request's processors kept between the steps of a decoding loop
 * (tokenpick.Sampler), so that a step neither tallies its history again nor
 * looks up a table over the vocabulary: every token its biases, stop ids,
 * prompt and output touch, once, with its tally, and a hash index of their
 * ids.  The tokens of the biases and stop ids come first (the `fixed`
 * ones), with their biases (-0.0, the addend that changes nothing, where a
 * token has none; -inf bans it, and its tally says TP_BANNED), so that the
 * others, the many, take a loop without them.  tp_kept_add adds a step's
 * token: a count incremented, or an entry appended. */
typedef struct {
    int64_t *ids;
    uint32_t *tally; /* count (when counted) | TP_PRESENT | TP_STOP | TP_BANNED */
    double *bias;    /* of the fixed tokens alone (NULL where none) */
    int64_t n, fixed, cap;
    int64_t *index;  /* slots of 1 + an entry's position, 0 where free */
    int64_t slots;   /* a power of two, at least twice n (0: none yet) */
    int64_t outputs; /* the tokens added so far */
    int counted;     /* whether the outputs are tallied (some penalty is on) */
} tp_kept;

/* An empty tp_kept, counted or not. */
void tp_kept_init(tp_kept *k, int counted);
void tp_kept_free(tp_kept *k);
/* The fixed tokens of an empty k: bias[j] for token bias_ids[j], j < nbias
 * (an id given twice takes its last finite value, or -inf for good), and the
 * stop ids (banned while the outputs are fewer than min_tokens).  0, -1 out
 * of memory, -2 if k is not empty. */
int tp_kept_fix(tp_kept *k, const int64_t *bias_ids, const double *bias, int64_t nbias,
                const int64_t *stop, int64_t nstop);
/* Adds ids[0..m) (in [0, n), repeats allowed) with flags set in their
 * tallies.  0, or -1 out of memory (then k is as it was). */
int tp_kept_put(tp_kept *k, const int64_t *ids, int64_t m, uint32_t flags);
/* Room for m more tokens, so that tp_kept_add cannot fail: 0, or -1 out of
 * memory. */
int tp_kept_reserve(tp_kept *k, int64_t m);
/* Adds the output token id (in [0, n)); room for it reserved. */
void tp_kept_add(tp_kept *k, int64_t id);

/* One row's processor arguments: ids in [0, n) or -1 (padding, skipped) in
 * every list; any other id is skipped and counted (tp_proc.stray), so that
 * a caller may leave the check of the history's ids to this pass.  With kept
 * not NULL, the row's biases, history and stop ids are kept's, and the lists
 * here are not read. */
typedef struct {
    const tp_kept *kept;
    const uint32_t *bitmask; /* words of the grammar's bitmask, or NULL: all allowed */
    int64_t words;           /* tokens from 32 * words on are banned */
    const int64_t *bias_ids; /* the biases: bias[j] added to token bias_ids[j]; -inf bans */
    const double *bias;
    int64_t nbias;
    const int64_t *prompt, *output, *stop; /* the row's ids so far, and its stop ids */
    int64_t nprompt, noutput, nstop;
    double repetition, frequency, presence; /* the penalties (1, 0, 0: none) */
    int64_t min_tokens; /* stop ids are banned while output holds fewer tokens */
} tp_proc_args;

/* The tokens of a row that its processors touch, listed by tp_proc_prepare
 * (each once, the `fixed` ones first, with their biases), with their
 * tallies, and the row's penalties: what the kernels' make_patches turns
 * into patches. */
typedef struct {
    const int64_t *ids;
    const uint32_t *tallies; /* count | TP_PRESENT | TP_BANNED */
    const double *bias;      /* of the fixed ones */
    int64_t fixed, m;
    double repetition, frequency, presence;
} tp_patch_list;

/* The row kernels of an element type and instruction set (below). */
typedef struct tp_kernels tp_kernels;

/* The scratch of tp_proc_prepare, one per thread: for rows of n tokens
 * whose arguments hold at most `ids` ids in all (NULL when out of memory). */
typedef struct tp_proc_scratch tp_proc_scratch;
tp_proc_scratch *tp_proc_scratch_new(int64_t n, int64_t ids);
void tp_proc_scratch_free(tp_proc_scratch *s);

/* The processors of a row for args a into *p, in two steps around the
 * checking pass (scan_processed), so that the logits they read are those the
 * pass has just brought into the cache.  tp_proc_prepare: the bitmask's
 * words, a's ids counted in one pass each (in s's table of tallies, left at
 * zeros again), and the bits of the tokens they touch cleared (p->stray: the
 * ids out of range; p->allow may be a's bitmask itself).  tp_proc_patch,
 * after the pass (x a row of element type elem): those tokens' processed
 * logits, computed in double and rounded to float once (p->ids, p->vals);
 * returns -1, or the lowest token whose processed logit leaves float32's
 * range upwards (+inf or NaN; it then reads as banned).  fold_patches (the
 * kernel table's) then completes the pass's findings.  p holds until s
 * prepares another row; a row left unpatched (a bad row) leaves nothing to
 * undo. */
void tp_proc_prepare(int64_t n, const tp_proc_args *a, tp_proc_scratch *s, tp_proc *p);
int64_t tp_proc_patch(const void *x, const tp_kernels *k, const tp_proc_args *a, tp_proc_scratch *s,
                      tp_proc *p);

/* ---- selection ---------------------------------------------------------- */

/* The orders of the filters (tp_filter.order): tokenpick's own, which is
 * also HF's warpers'; vLLM's (min-p before top-k and top-p); llama.cpp's
 * chain (top-n-sigma, top-k keeping exactly k, typical, top-p, min-p, XTC on
 * the logits as they are, temperature last, ties at a boundary broken by
 * lowest id, and the first cumulative sum over p ending top-p and typical). */
enum { TP_ORDER_TOKENPICK = 0, TP_ORDER_VLLM = 1, TP_ORDER_LLAMA = 2 };

/* The filters of one row, in their order (TP_ORDER_TOKENPICK): temperature,
 * top-n-sigma, top-k, top-p, min-p, typical, epsilon, eta, XTC. */
typedef struct {
    double temperature;   /* >= 0; 0 = greedy */
    int64_t top_k;        /* k > 0 and k < n is active; anything else keeps all */
    double top_p;         /* in (0, 1]; 1 keeps all */
    double min_p;         /* in [0, 1]; 0 keeps all */
    double top_n_sigma;   /* > 0 keeps x >= max - n sigma of the finite logits; <= 0 keeps all */
    double typical_p;     /* in (0, 1) is active; anything else (1 or 0) keeps all */
    double epsilon;       /* in [0, 1); 0 keeps all */
    double eta;           /* in [0, 1); 0 keeps all */
    double xtc_threshold; /* XTC's probability threshold, where xtc */
    int xtc;              /* whether XTC acts on this row (its coin came up) */
    int order;            /* TP_ORDER_* */
    /* Scratch of 6 n floats, where tp_filter_lists(f): the kept set listed
     * when it may not fit the workspace. */
    float *spill;
} tp_filter;

static inline int tp_typical_acts(const tp_filter *f)
{
    return f->typical_p > 0.0 && f->typical_p < 1.0;
}

/* Whether the filters f need f->spill: those that work on the listed kept
 * set (typical, epsilon, eta, XTC, and every filter in llama.cpp's order). */
static inline int tp_filter_lists(const tp_filter *f)
{
    return tp_typical_acts(f) || f->epsilon > 0.0 || f->eta > 0.0 || f->xtc
           || f->order == TP_ORDER_LLAMA;
}

/* Scratch of the row kernels, one per thread: its size does not depend on
 * the row length; its parts are private to the kernels (tp_workspace.h). */
typedef struct tp_workspace tp_workspace;
tp_workspace *tp_workspace_new(void); /* NULL when out of memory */
void tp_workspace_free(tp_workspace *ws);

/* The kept set of a row: every token with x >= threshold, or, for greedy
 * rows, only the argmax.  Tokens at -inf may be "kept" but have probability 0.
 * When ncand >= 0, the kept tokens are also listed (those at -inf may be
 * left out), in ascending id, in cand_id[0..ncand) with their logits in
 * cand_x (pointing into the workspace), so later kernels touch only them. */
typedef struct {
    /* The row the later kernels (mask, filtered_probs, sample) read: x
     * itself, of the table's element type, or with processors the processed
     * row, of floats (row_f32; proc->row: whole where the kept tokens are not
     * listed, or only at the argmax where greedy; the listed tokens' logits
     * are in cand_x). */
    const void *row;
    int row_f32;
    int greedy;
    int64_t argmax;
    float max;
    float threshold;
    double inv_t; /* 1 / T (unused when greedy) */
    int64_t ncand;
    const float *cand_x;
    const int64_t *cand_id;
    /* NULL, or the sum of exp((x[i] - max) / T) over the kept tokens of each
     * run of run_per tokens (a multiple of 256), found by selection. */
    const double *run_sum;
    int64_t run_per;
} tp_keep;

/* The outcomes of the test of a draft token (verify_draft). */
enum {
    TP_DRAFT_REJECTED = 0, /* *token holds the token emitted instead */
    TP_DRAFT_ACCEPTED = 1,
    TP_DRAFT_BAD_Q = -1 /* the draft distribution holds a value that is not a probability */
};

/* The m most likely tokens of a row (top_logprobs): ids[0..m) and their
 * log-probabilities lps[0..m). */
typedef struct {
    int64_t m;
    int64_t *ids;
    float *lps;
} tp_ranked;

/* ---- the row kernels, one table per instruction set ----------------------- */
/* Temperature T >= 0 everywhere; T == 0 means greedy (one-hot at the argmax). */

struct tp_kernels {
    const char *name; /* "baseline", "avx2", "avx512" */
    int elem;         /* the element type of x: TP_ELEM_* */

    /* One pass: fills *st and returns TP_OK, or the first problem found. */
    int (*scan)(const void *x, int64_t n, tp_rowstat *st);
    /* scan for a row that keep will filter with top-k of k: the same pass
     * also leaves in ws (st->bmax) what top-k would read the row again for,
     * and with moments (nonzero) what top-n-sigma reads. */
    int (*scan_top_k)(const void *x, int64_t n, int64_t k, int moments, tp_workspace *ws,
                      tp_rowstat *st);

    /* scan_top_k of the row as the allow bits of p leave it, the patches
     * aside (max -inf and argmax n where none is allowed), with the checks
     * of x itself: TP_ERR_NAN, TP_ERR_POSINF, TP_ERR_ALL_NEGINF.  Then, the
     * patches made (tp_proc_patch), fold_patches adds them to *st (and the
     * block maxima), and returns TP_ERR_NONE_LEFT when no token is left. */
    int (*scan_processed)(const void *x, int64_t n, int64_t k, const tp_proc *p, tp_workspace *ws,
                          tp_rowstat *st);
    /* The patches of the tokens l lists, of row x: their processed logits
     * (computed in double, rounded to float once; -inf where banned) in
     * vals[0..l->m), made p's list with the largest and its lowest token;
     * returns -1, or the lowest token whose processed logit leaves
     * float32's range upwards (+inf or NaN). */
    int64_t (*make_patches)(const void *x, const tp_patch_list *l, float *vals, tp_proc *p);
    int (*fold_patches)(const tp_proc *p, tp_workspace *ws, tp_rowstat *st);
    /* out[i] = the processed logit of token i; out may be x itself. */
    void (*process)(const void *x, int64_t n, const tp_proc *p, float *out);

    /* out[i] = exp((x[i] - max) / T) / sum; out may be x itself. */
    void (*softmax)(const void *x, int64_t n, const tp_rowstat *st, double T, float *out);
    /* out[i] = (x[i] - max) / T - log(sum); out may be x itself. */
    void (*log_softmax)(const void *x, int64_t n, const tp_rowstat *st, double T, float *out);
    /* log(sum(exp(x / T))); at T == 0 its limit as T -> 0+. */
    float (*logsumexp)(const void *x, int64_t n, const tp_rowstat *st, double T);
    /* log_softmax(x / T) at one token, as log_softmax gives it there. */
    float (*token_logprob)(const void *x, int64_t n, const tp_rowstat *st, double T, int64_t token);

    /* Applies the logit processors of st->proc, if any, then the filters:
     * fills *keep. */
    void (*keep)(const void *x, int64_t n, const tp_rowstat *st, const tp_filter *f,
                 tp_workspace *ws, tp_keep *keep);
    /* The later kernels read keep->row (of any element type) as x.
     * out[i] = x[i] if kept else -inf; out may be x itself. */
    void (*mask)(int64_t n, const tp_keep *keep, float *out);
    /* out[i] = p_i / sum over kept, 0 outside; out may be x itself. */
    void (*filtered_probs)(int64_t n, const tp_keep *keep, float *out);
    /* The draw: the first kept token whose running probability sum exceeds
     * u * total; writes its log-probability under the filtered distribution.
     * Uses ws after keep is done with it. */
    int64_t (*sample)(int64_t n, const tp_keep *keep, double u, tp_workspace *ws, float *logprob);
    /* Speculative decoding's test of draft token d (in [0, n)) at a position
     * filtered by keep, q the draft's distribution (n floats) or NULL (the
     * draft taken as certain): accepted iff u_accept * q(d) < p(d); else the
     * token emitted instead, drawn with u_draw from max(0, p - q), or from p
     * (as sample draws) where that is all zero.  Returns a TP_DRAFT_* code;
     * *logprob gets log p of the draft accepted or of the token emitted.
     * scratch: n floats. */
    int (*verify_draft)(int64_t n, const tp_keep *keep, int64_t d, const float *q, double u_accept,
                        double u_draw, tp_workspace *ws, float *scratch, int64_t *token,
                        float *logprob);

    /* The out->m most likely tokens (1 <= m <= n) of log_softmax(x / T),
     * descending, lowest id first on ties. */
    void (*top_logprobs)(const void *x, int64_t n, const tp_rowstat *st, double T, tp_workspace *ws,
                         tp_ranked *out);

    /* For tests, the selections by name: the k-th largest of x[0..n)
     * (1 <= k <= n), and the smallest v[j] whose mass from the top by
     * weights w[] reaches target (n <= 16384), each by one route
     * (TP_ROUTE_KTH_*, TP_ROUTE_MASS_*; < 0 for the route the kernels
     * choose); NaN where a route does not take the inputs or gives up. */
    float (*kth_largest)(const float *x, int64_t n, int64_t k, int route, tp_workspace *ws);
    float (*select_by_mass)(const float *v, const float *w, int64_t n, double target, int route,
                            tp_workspace *ws);

    /* dst[i] = x[i] as a float32, exactly. */
    void (*widen)(const void *x, int64_t n, float *dst);
};

/* The table of an instruction set ("baseline", "avx2", "avx512") for rows of
 * element type elem (TP_ELEM_*), or NULL if this build lacks it or this CPU
 * (with its operating system) cannot run it.  The tests' entries
 * (kth_largest, select_by_mass) take floats in every table alike. */
const tp_kernels *tp_kernels_for(const char *name, int elem);
/* What emulates that table ("SIMDe 0.7.4"), or NULL where it runs natively. */
const char *tp_simd_emulation(const char *name);

/* ---- routes, for tests ------------------------------------------------------ */
/* The ways selection can go (csrc/rows/topk.c, topp.c, kth.c, mass.c list them
 * in fallback order).  A build with TOKENPICK_COUNT_ROUTES=1 counts how often
 * each is taken, so that tests can show every route runs; other builds count
 * nothing and tp_route_counting() is 0. */
enum {
    TP_ROUTE_KTH_SMALL,
    TP_ROUTE_KTH_BISECT,
    TP_ROUTE_KTH_QUICKSELECT,
    TP_ROUTE_KTH_RADIX,
    TP_ROUTE_TOPK_BLOCKS,
    TP_ROUTE_TOPK_PROBE,
    TP_ROUTE_TOPK_BAND,
    TP_ROUTE_TOPK_ROW,
    TP_ROUTE_MASS_SMALL,
    TP_ROUTE_MASS_PARTITION,
    TP_ROUTE_MASS_VALUE_BINS,
    TP_ROUTE_MASS_RADIX,
    TP_ROUTE_TOPP_LISTED,
    TP_ROUTE_TOPP_BOUND,
    TP_ROUTE_TOPP_BOUND_EXACT,
    TP_ROUTE_TOPP_BAND,
    TP_ROUTE_TOPP_BAND_EXACT,
    TP_ROUTE_TOPP_HISTOGRAM,
    TP_ROUTE_TOPP_RADIX,
    TP_ROUTE_COUNT
};
int tp_route_counting(void);
const char *tp_route_name(int route);
/* Adds the counts since the last call to out[0..TP_ROUTE_COUNT) and zeroes them. */
void tp_route_take(int64_t *out);

/* ---- randomness ----------------------------------------------------------- */

/* Philox4x32-10 (Salmon et al., SC 2011). */
void tp_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);
/* The uniform in [0, 1) of the draw for (seed, offset): 53 bits of Philox's first two words. */
double tp_uniform(uint64_t seed, uint64_t offset);
/* The index-th uniform of (seed, offset): Philox's counter word 2 is the index (0: the
 * draw's, tp_uniform; speculative verification's acceptance tests take 1, 2, ...). */
double tp_uniform_at(uint64_t seed, uint64_t offset, uint32_t index);

/* ---- build and machine ---------------------------------------------------- */

const char *tp_compiler(void);
/* The compiler flags the core was built with (set by setup.py). */
const char *tp_build_flags(void);

#ifdef __cplusplus
}
#endif

#endif /* TOKENPICK_H */
