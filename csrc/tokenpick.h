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

/* What one pass over a row learns: its max and the lowest index holding it;
 * and, from scan_top_k, the max of each block of bmax_bs tokens, which
 * top-k reads (bmax NULL otherwise).  bmax points into the workspace, so it
 * holds for that row only until the workspace is used again: scan_top_k
 * a row, then keep the same row, before anything else uses the workspace. */
typedef struct {
    float max;
    int64_t argmax;
    const float *bmax;
    int64_t bmax_bs;
} tp_rowstat;

/* ---- selection ---------------------------------------------------------- */

/* The filters of one row, in SPEC.md's order: temperature, top-k, top-p, min-p. */
typedef struct {
    double temperature;  /* >= 0; 0 = greedy */
    int64_t top_k;       /* k > 0 and k < n is active; anything else keeps all */
    double top_p;        /* in (0, 1]; 1 keeps all */
    double min_p;        /* in [0, 1]; 0 keeps all */
} tp_filter;

/* Scratch for selection; its size does not depend on the row length. */
#define TP_RADIX_BINS 2048
#define TP_CAND_CAP 16384    /* candidates gathered for an exact selection */
#define TP_SAMPLE_SIZE 1024  /* samples and block maxima of a row (select.c) */
#define TP_MASS_COPIES 4     /* interleaved histograms, see select.c */
#define TP_CHUNK 2048        /* tokens a pass over the row works on at a time, in L1 */
typedef struct {
    double mass[TP_RADIX_BINS];
    int64_t count[TP_RADIX_BINS];
    double mass_copies[TP_MASS_COPIES * TP_RADIX_BINS];  /* interleaved histograms, for long rows */
    float cand_x[TP_CAND_CAP];
    int64_t cand_id[TP_CAND_CAP];
    float cand_e[TP_CAND_CAP];  /* their exponentials, where selection needs them */
    float sample[TP_SAMPLE_SIZE];
    /* The kept mass of each run of run_per tokens, when selection found it
     * on its way (run_per > 0); see tp_keep.run_sum. */
    double run_sum[TP_RADIX_BINS];
    int64_t run_per;
    int64_t run_first[TP_RADIX_BINS];  /* the first candidate of each run, see select.c */
    float chunk_e[TP_CHUNK];  /* the exponentials of one chunk of a row */
    float part[2 * TP_CAND_CAP];  /* values and weights of a selection by partition */
} tp_workspace;

/* The kept set of a row: every token with x >= threshold, or, for greedy
 * rows, only the argmax.  Tokens at -inf may be "kept" but have probability 0.
 * When ncand >= 0, the kept tokens are also listed, in ascending id, in
 * cand_id[0..ncand) with their logits in cand_x (pointing into the workspace),
 * so later kernels touch only them. */
typedef struct {
    int greedy;
    int64_t argmax;
    float max;
    float threshold;
    double inv_t;        /* 1 / T (unused when greedy) */
    int64_t ncand;
    const float *cand_x;
    const int64_t *cand_id;
    /* NULL, or the sum of exp((x[i] - max) / T) over the kept tokens of each
     * run of run_per tokens (a multiple of 256), found by selection. */
    const double *run_sum;
    int64_t run_per;
} tp_keep;

/* ---- the row kernels, one table per instruction set ----------------------- */
/* Temperature T >= 0 everywhere; T == 0 means greedy (one-hot at the argmax). */

typedef struct {
    const char *name;  /* "baseline", "avx2", "avx512" */

    /* One pass: fills *st and returns TP_OK, or the first problem found. */
    int (*scan)(const float *x, int64_t n, tp_rowstat *st);
    /* scan for a row that keep will filter with top-k of k: the same pass
     * also leaves in ws (st->bmax) what top-k would read the row again for. */
    int (*scan_top_k)(const float *x, int64_t n, int64_t k, tp_workspace *ws, tp_rowstat *st);

    /* out[i] = exp((x[i] - max) / T) / sum; out may be x itself. */
    void (*softmax)(const float *x, int64_t n, const tp_rowstat *st, double T, float *out);
    /* out[i] = (x[i] - max) / T - log(sum); out may be x itself. */
    void (*log_softmax)(const float *x, int64_t n, const tp_rowstat *st, double T, float *out);
    /* log(sum(exp(x / T))); at T == 0 its limit as T -> 0+. */
    float (*logsumexp)(const float *x, int64_t n, const tp_rowstat *st, double T);

    /* Applies the filters (temperature, top-k, top-p, min-p): fills *keep. */
    void (*keep)(const float *x, int64_t n, const tp_rowstat *st, const tp_filter *f,
                 tp_workspace *ws, tp_keep *keep);
    /* out[i] = x[i] if kept else -inf; out may be x itself. */
    void (*mask)(const float *x, int64_t n, const tp_keep *keep, float *out);
    /* out[i] = p_i / sum over kept, 0 outside; out may be x itself. */
    void (*filtered_probs)(const float *x, int64_t n, const tp_keep *keep, float *out);
    /* The draw: the first kept token whose running probability sum exceeds
     * u * total; writes its log-probability under the filtered distribution.
     * Uses ws after keep is done with it. */
    int64_t (*sample)(const float *x, int64_t n, const tp_keep *keep, double u, tp_workspace *ws,
                      float *logprob);

    /* The m most likely tokens (1 <= m <= n) of log_softmax(x / T), descending,
     * lowest id first on ties: ids[0..m) and their log-probabilities lps[0..m). */
    void (*top_logprobs)(const float *x, int64_t n, const tp_rowstat *st, double T, int64_t m,
                         tp_workspace *ws, int64_t *ids, float *lps);
} tp_kernels;

/* The table of an instruction set ("baseline", "avx2", "avx512"), or NULL if
 * this build lacks it or this CPU (with its operating system) cannot run it. */
const tp_kernels *tp_kernels_for(const char *name);
/* What emulates that table ("SIMDe 0.7.4"), or NULL where it runs natively. */
const char *tp_simd_emulation(const char *name);

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
