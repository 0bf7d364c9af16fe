/*
 * Row kernels: the checking pass, softmax and friends, masks, the filtered
 * distribution, the draw and top_logprobs.  Sums are accumulated in double.
 */
#include "../tp_internal.h"
#include "vec.h"

/* The checking pass: max, argmax and the problems of the row, in blocks of
 * TP_SCAN_BLOCK (scan.c). */
static int tp_scan_f32(const float *x, int64_t n, tp_rowstat *st)
{
    return scan_blocks(x, n, TP_SCAN_BLOCK, NULL, st);
}

/* One-hot at the argmax: the T == 0 form of every distribution. */
static void one_hot(int64_t n, int64_t at, float on, float off, float *out)
{
    for (int64_t i = 0; i < n; i++)
        out[i] = off;
    out[at] = on;
}

/* out[i] = exp((x[i] - max) / T) / z over x[i] >= threshold, 0 elsewhere.
 * The exponentials go to out first and are scaled in place, so out may be x. */
static void normalized_exp(const float *x, int64_t n, float max, double k, float threshold,
                           float *out)
{
    const double z = sum_exp_store(x, n, max, k, threshold, out);
    const float inv_z = (float)(1.0 / z);
    for (int64_t i = 0; i < n; i++)
        out[i] *= inv_z;
}

static void tp_softmax_f32(const float *x, int64_t n, const tp_rowstat *st, double T, float *out)
{
    if (T == 0.0) {
        one_hot(n, st->argmax, 1.0f, 0.0f, out);
        return;
    }
    normalized_exp(x, n, st->max, TP_LOG2E * tp_inv_temperature(T), -INFINITY, out);
}

static void tp_log_softmax_f32(const float *x, int64_t n, const tp_rowstat *st, double T, float *out)
{
    if (T == 0.0) {
        one_hot(n, st->argmax, 0.0f, -INFINITY, out);
        return;
    }
    const double inv_t = tp_inv_temperature(T), max = st->max;
    const double log_z = log(sum_exp(x, n, st->max, TP_LOG2E * inv_t, -INFINITY));
    for (int64_t i = 0; i < n; i++)
        out[i] = (float)(((double)x[i] - max) * inv_t - log_z);
}

static float tp_logsumexp_f32(const float *x, int64_t n, const tp_rowstat *st, double T)
{
    const float max = st->max;
    if (T == 0.0) {  /* the limit of log(sum(exp(x / T))) as T -> 0+ */
        if (max != 0.0f)
            return max > 0.0f ? INFINITY : -INFINITY;
        int64_t ties = 0;
        for (int64_t i = 0; i < n; i++)
            ties += x[i] == max;
        return (float)log((double)ties);
    }
    const double k = TP_LOG2E * tp_inv_temperature(T);
    return (float)((double)max / T + log(sum_exp(x, n, max, k, -INFINITY)));
}

static void tp_mask_f32(const float *x, int64_t n, const tp_keep *keep, float *out)
{
    if (keep->greedy) {
        float top = x[keep->argmax];
        one_hot(n, keep->argmax, top, -INFINITY, out);
        return;
    }
    if (keep->ncand >= 0) {  /* the listed values are copies, so out may be x */
        for (int64_t i = 0; i < n; i++)
            out[i] = -INFINITY;
        for (int64_t j = 0; j < keep->ncand; j++)
            out[keep->cand_id[j]] = keep->cand_x[j];
        return;
    }
    const float thr = keep->threshold;
    for (int64_t i = 0; i < n; i++)
        out[i] = x[i] >= thr ? x[i] : -INFINITY;
}

static void tp_filtered_probs_f32(const float *x, int64_t n, const tp_keep *keep, float *out)
{
    if (keep->greedy) {
        one_hot(n, keep->argmax, 1.0f, 0.0f, out);
        return;
    }
    const double k = TP_LOG2E * keep->inv_t;
    if (keep->ncand >= 0) {  /* only the listed tokens are exponentiated, once */
        const tp_exparg a = tp_exp_setup(keep->max, k);
        double z = 0.0;  /* summed in id order */
        for (int64_t i = 0; i < n; i++)
            out[i] = 0.0f;
        for (int64_t j = 0; j < keep->ncand; j++) {
            const float e = tp_exp_apply(keep->cand_x[j], &a);
            out[keep->cand_id[j]] = e;
            z += e;
        }
        const double inv_z = 1.0 / z;
        for (int64_t j = 0; j < keep->ncand; j++)
            out[keep->cand_id[j]] = (float)(out[keep->cand_id[j]] * inv_z);
        return;
    }
    normalized_exp(x, n, keep->max, k, keep->threshold, out);
}

/* One block of the walk of the draw: m exponentials e[j] of tokens ids[j]
 * (or first_id + j when ids is NULL), of sum block (as sum_exp_store gave
 * it).  Returns the first token of positive probability at which *run, the
 * sum so far, exceeds target, or -1 if none does; a block that leaves *run
 * at or below target is passed whole, added to *run as block.  *last_positive
 * follows the last token of positive probability passed. */
static int64_t crossing_in_block(const float *e, const int64_t *ids, int64_t first_id, int64_t m,
                                 double block, double *run, double target,
                                 int64_t *last_positive)
{
    if (!(*run + block > target)) {
        for (int64_t j = m - 1; j >= 0; j--)
            if (e[j] > 0.0f) {
                *last_positive = ids ? ids[j] : first_id + j;
                break;
            }
        *run += block;
        return -1;
    }
    for (int64_t j = 0; j < m; j++) {
        if (e[j] > 0.0f) {
            *last_positive = ids ? ids[j] : first_id + j;
            *run += e[j];
            if (*run > target)
                return *last_positive;
        }
    }
    return -1;
}

/* The walk of the draw over len tokens with logits v[0..len) and ids ids[j]
 * (or first_id + j when ids is NULL): the first token of positive
 * probability at which run, the sum so far, exceeds target; if rounding
 * keeps it short, the last token of positive probability (else fallback).
 * The exponentials are computed TP_BLOCK at a time, vectorized, into
 * scratch, and walked by crossing_in_block. */
static int64_t first_crossing(const float *v, const int64_t *ids,
                              int64_t first_id, int64_t len, float max, double k,
                              float threshold, double run, double target, int64_t fallback,
                              float *scratch)
{
    int64_t last_positive = fallback;
    for (int64_t lo = 0; lo < len; lo += TP_BLOCK) {
        const int64_t m = len - lo < TP_BLOCK ? len - lo : TP_BLOCK;
        const double block = sum_exp_store(v + lo, m, max, k, threshold, scratch);
        const int64_t token = crossing_in_block(scratch, ids ? ids + lo : NULL, first_id + lo, m,
                                                block, &run, target, &last_positive);
        if (token >= 0)
            return token;
    }
    return last_positive;
}

/* The draw over at most TP_BLOCK tokens (logits v, ids as for
 * first_crossing): one pass computes, stores and sums their exponentials,
 * which is the total, and the walk reads them (first_crossing would compute
 * the same block of them again). */
static int64_t sample_one_block(const float *v, const int64_t *ids, int64_t len, float max,
                                double k, float threshold, double u, int64_t fallback,
                                float *scratch, double *z)
{
    *z = sum_exp_store(v, len, max, k, threshold, scratch);
    double run = 0.0;
    int64_t last_positive = fallback;
    const int64_t token = crossing_in_block(scratch, ids, 0, len, *z, &run, u * *z,
                                            &last_positive);
    return token >= 0 ? token : last_positive;
}

/* The draw over the listed kept tokens. */
static int64_t sample_listed(const tp_keep *keep, double k, double u, tp_workspace *ws, double *z)
{
    if (keep->ncand <= TP_BLOCK)
        return sample_one_block(keep->cand_x, keep->cand_id, keep->ncand, keep->max, k,
                                -INFINITY, u, keep->argmax, ws->cand_e, z);
    *z = sum_exp(keep->cand_x, keep->ncand, keep->max, k, -INFINITY);
    return first_crossing(keep->cand_x, keep->cand_id, 0, keep->ncand, keep->max, k,
                          -INFINITY, 0.0, u * *z, keep->argmax, ws->cand_e);
}

/* The draw over the whole row, reading it once and a block of it again: one
 * pass of exponentials stores the sum of each
 * block in the workspace, the block where the running sum crosses u * total
 * is found from those sums, and only that block is walked.  When selection
 * left the sums of the kept mass of each run of the row, those are the
 * blocks, and the pass is saved. */
static int64_t sample_blocks(const float *x, int64_t n, const tp_keep *keep, double k, double u,
                             tp_workspace *ws, double *z)
{
    const float max = keep->max, thr = keep->threshold;
    if (!keep->run_sum && n <= TP_BLOCK)
        return sample_one_block(x, NULL, n, max, k, thr, u, keep->argmax, ws->cand_e, z);
    const double *block_sum;
    int64_t per, nblocks;
    if (keep->run_sum) {
        per = keep->run_per;
        nblocks = (n + per - 1) / per;
        block_sum = keep->run_sum;
        *z = 0.0;
        for (int64_t b = 0; b < nblocks; b++)
            *z += block_sum[b];
    } else {
        per = TP_BLOCK;  /* a multiple of TP_BLOCK, so each block sums in lanes */
        while ((n + per - 1) / per > TP_RADIX_BINS)
            per *= 2;
        nblocks = (n + per - 1) / per;
        *z = sum_exp_by_run(x, n, max, k, thr, per, ws->mass);
        block_sum = ws->mass;
    }

    /* The block where the running sum first exceeds u * z; if rounding leaves
     * u * z at or above every partial sum, the last block of positive mass,
     * and its last token of positive probability. */
    double target = u * *z, before = 0.0;
    int64_t block = -1, last_positive_block = 0;
    for (int64_t b = 0; b < nblocks; b++) {
        if (block_sum[b] <= 0.0)
            continue;
        last_positive_block = b;
        if (before + block_sum[b] > target) {
            block = b;
            break;
        }
        before += block_sum[b];
    }
    if (block < 0) {
        block = last_positive_block;
        target = INFINITY;
    }
    const int64_t lo = block * per, len = n - lo < per ? n - lo : per;
    return first_crossing(x + lo, NULL, lo, len, max, k, thr, before, target,
                          keep->argmax, ws->cand_e);
}

static int64_t tp_sample_f32(const float *x, int64_t n, const tp_keep *keep, double u,
                             tp_workspace *ws, float *logprob)
{
    if (keep->greedy) {
        *logprob = 0.0f;
        return keep->argmax;
    }
    const double k = TP_LOG2E * keep->inv_t;
    double z;
    const int64_t token = keep->ncand >= 0 ? sample_listed(keep, k, u, ws, &z)
                                           : sample_blocks(x, n, keep, k, u, ws, &z);
    *logprob = (float)(((double)x[token] - (double)keep->max) * keep->inv_t - log(z));
    return token;
}

/* ---- top_logprobs --------------------------------------------------------- */

/* Rank order of tokens: larger logit first, then lower id. */
static int ranks_before(const float *x, int64_t a, int64_t b)
{
    return x[a] > x[b] || (x[a] == x[b] && a < b);
}

/* Heapsort of ids[0..m) into rank order: O(m log m), in place. */
static void sort_by_rank(const float *x, int64_t *ids, int64_t m)
{
    /* a max-heap of "ranks last": the root is the token that sorts last */
    for (int64_t end = m, start = m / 2; end > 1;) {
        int64_t root;
        if (start > 0) {
            root = --start;
        } else {
            int64_t t = ids[0];
            ids[0] = ids[--end];
            ids[end] = t;
            root = 0;
        }
        for (;;) {
            int64_t child = 2 * root + 1;
            if (child >= end)
                break;
            if (child + 1 < end && ranks_before(x, ids[child], ids[child + 1]))
                child++;
            if (!ranks_before(x, ids[root], ids[child]))
                break;
            int64_t t = ids[root];
            ids[root] = ids[child];
            ids[child] = t;
            root = child;
        }
    }
}

static void tp_top_logprobs_f32(const float *x, int64_t n, const tp_rowstat *st, double T, int64_t m,
                         tp_workspace *ws, int64_t *ids, float *lps)
{
    if (T == 0.0) {  /* log of the one-hot: 0 at the argmax, then -inf by id */
        ids[0] = st->argmax;
        lps[0] = 0.0f;
        for (int64_t i = 0, j = 1; j < m; i++) {
            if (i == st->argmax)
                continue;
            ids[j] = i;
            lps[j++] = -INFINITY;
        }
        return;
    }

    /* The m-th largest logit splits the row: every token above it is among
     * the m, and the remaining places go to the tokens equal to it, lowest id
     * first.  Only the tokens above it are sorted. */
    const float kth = tp_kth_largest_f32(x, n, m, ws);
    int64_t above = 0;
    for (int64_t i = 0; i < n; i++)
        if (x[i] > kth)
            ids[above++] = i;
    sort_by_rank(x, ids, above);
    for (int64_t i = 0, j = above; j < m; i++)
        if (x[i] == kth)
            ids[j++] = i;

    const double inv_t = tp_inv_temperature(T), max = st->max;
    const double log_z = log(sum_exp(x, n, st->max, TP_LOG2E * inv_t, -INFINITY));
    for (int64_t j = 0; j < m; j++)
        lps[j] = (float)(((double)x[ids[j]] - max) * inv_t - log_z);
}
