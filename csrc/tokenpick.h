/*
 * tokenpick's C core: row kernels over float32 logits.
 *
 * Every kernel takes one row (a plain array of n floats, n >= 1) and writes
 * one result.  The callers (the Cython driver) guarantee what the Python layer
 * checked: no NaN, no +inf, at least one finite value per row (tp_scan_f32
 * reports these), parameters in range.  No kernel allocates, takes a lock or
 * touches global mutable state, so any number of threads may call them at once.
 *
 * Semantics are those of SPEC.md; tokenpick.reference is their executable
 * form and the oracle the tests compare these kernels with.
 */
#ifndef TOKENPICK_H
#define TOKENPICK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- row checks --------------------------------------------------------- */

enum {
    TP_OK = 0,
    TP_ERR_NAN = 1,          /* the row holds a NaN */
    TP_ERR_POSINF = 2,       /* the row holds +inf */
    TP_ERR_ALL_NEGINF = 3    /* every value of the row is -inf */
};

/* What one pass over a row learns: its max and the lowest index holding it. */
typedef struct {
    float max;
    int64_t argmax;
} tp_rowstat;

/* One pass: fills *st and returns TP_OK, or the first problem found. */
int tp_scan_f32(const float *x, int64_t n, tp_rowstat *st);

/* ---- distributions ------------------------------------------------------ */
/* temperature T >= 0; T == 0 means greedy (one-hot at st->argmax).          */

/* out[i] = exp((x[i] - max) / T) / sum; out may be x itself. */
void tp_softmax_f32(const float *x, int64_t n, const tp_rowstat *st, double T, float *out);
/* out[i] = (x[i] - max) / T - log(sum); out may be x itself. */
void tp_log_softmax_f32(const float *x, int64_t n, const tp_rowstat *st, double T, float *out);
/* log(sum(exp(x / T))); at T == 0 its limit as T -> 0+. */
float tp_logsumexp_f32(const float *x, int64_t n, const tp_rowstat *st, double T);

/* ---- selection ---------------------------------------------------------- */

/* The filters of one row, in SPEC.md's order: temperature, top-k, top-p, min-p. */
typedef struct {
    double temperature;  /* >= 0; 0 = greedy */
    int64_t top_k;       /* k > 0 and k < n is active; anything else keeps all */
    double top_p;        /* in (0, 1]; 1 keeps all */
    double min_p;        /* in [0, 1]; 0 keeps all */
} tp_filter;

/* The kept set of a row: every token with x >= threshold, or, for greedy
 * rows, only the argmax.  Tokens at -inf may be "kept" but have probability 0. */
typedef struct {
    int greedy;
    int64_t argmax;
    float max;
    float threshold;
    double inv_t;        /* 1 / T (unused when greedy) */
} tp_keep;

/* Scratch for selection; its size does not depend on the row length. */
#define TP_RADIX_BINS 2048
typedef struct {
    double mass[TP_RADIX_BINS];
    int64_t count[TP_RADIX_BINS];
} tp_workspace;

/* The value of the k-th largest element (1 <= k <= n), exactly; linear time. */
float tp_kth_largest_f32(const float *x, int64_t n, int64_t k, tp_workspace *ws);
/* The smallest kept logit of the top-p nucleus among tokens with x >= floor. */
float tp_nucleus_threshold_f32(const float *x, int64_t n, float floor, float max, double inv_t,
                               double top_p, tp_workspace *ws);
/* The smallest float v with (v - max) / T >= log(min_p): min-p as a logit threshold. */
float tp_min_p_threshold_f32(float max, double T, double min_p);

/* Applies the filters: fills *keep. */
void tp_keep_f32(const float *x, int64_t n, const tp_rowstat *st, const tp_filter *f,
                 tp_workspace *ws, tp_keep *keep);

/* out[i] = x[i] if kept else -inf; out may be x itself. */
void tp_mask_f32(const float *x, int64_t n, const tp_keep *keep, float *out);
/* out[i] = p_i / sum over kept, 0 outside; out may be x itself. */
void tp_filtered_probs_f32(const float *x, int64_t n, const tp_keep *keep, float *out);
/* The draw: the first kept token whose running probability sum exceeds u * total.
 * Writes the token's log-probability under the filtered distribution to *logprob. */
int64_t tp_sample_f32(const float *x, int64_t n, const tp_keep *keep, double u, float *logprob);

/* The m most likely tokens (1 <= m <= n) of log_softmax(x / T), descending,
 * lowest id first on ties: ids[0..m) and their log-probabilities lps[0..m). */
void tp_top_logprobs_f32(const float *x, int64_t n, const tp_rowstat *st, double T, int64_t m,
                         tp_workspace *ws, int64_t *ids, float *lps);

/* ---- randomness ----------------------------------------------------------- */

/* Philox4x32-10 (Salmon et al., SC 2011). */
void tp_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);
/* The uniform in [0, 1) of SPEC.md for (seed, offset): 53 bits of Philox's first two words. */
double tp_uniform(uint64_t seed, uint64_t offset);

/* ---- build and machine ---------------------------------------------------- */

const char *tp_compiler(void);
/* The compiler flags the core was built with (set by setup.py). */
const char *tp_build_flags(void);

#ifdef __cplusplus
}
#endif

#endif /* TOKENPICK_H */
