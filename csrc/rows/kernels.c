/*
 * Row kernels: the checking pass, softmax and friends, masks, the filtered
 * distribution and top_logprobs (the draw is in draw.c).  Sums are
 * accumulated in double.
 */
#include "row.h"
#include "vec.h"

/* The checking pass: max, argmax and the problems of the row, in blocks of
 * TP_SCAN_BLOCK (scan.c). */
static int tp_scan(const void *x, int64_t n, tp_rowstat *st)
{
    return scan_blocks((const TP_X *)x, n, TP_SCAN_BLOCK, NULL, 0, st);
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
static void normalized_exp(const TP_X *x, int64_t n, float max, double rate, float threshold,
                           float *out)
{
    const double z = sum_exp_store(x, n, max, rate, threshold, out);
    const float inv_z = (float)(1.0 / z);
    for (int64_t i = 0; i < n; i++)
        out[i] *= inv_z;
}

static void tp_softmax(const void *row, int64_t n, const tp_rowstat *st, double T, float *out)
{
    const TP_X *x = row;
    if (T == 0.0) {
        one_hot(n, st->argmax, 1.0f, 0.0f, out);
        return;
    }
    normalized_exp(x, n, st->max, TP_LOG2E * tp_inv_temperature(T), -INFINITY, out);
}

/* log of the sum of exp((x[i] - max) / T), T > 0. */
static double log_z(const TP_X *x, int64_t n, const tp_rowstat *st, double inv_t)
{
    return log(sum_exp(x, n, st->max, TP_LOG2E * inv_t, -INFINITY));
}

static void tp_log_softmax(const void *row, int64_t n, const tp_rowstat *st, double T, float *out)
{
    const TP_X *x = row;
    if (T == 0.0) {
        one_hot(n, st->argmax, 0.0f, -INFINITY, out);
        return;
    }
    const double inv_t = tp_inv_temperature(T), max = st->max, lz = log_z(x, n, st, inv_t);
    for (int64_t i = 0; i < n; i++)
        out[i] = (float)(((double)x_at(x, i) - max) * inv_t - lz);
}

static float tp_token_logprob(const void *row, int64_t n, const tp_rowstat *st, double T,
                              int64_t token)
{
    const TP_X *x = row;
    if (T == 0.0)
        return token == st->argmax ? 0.0f : -INFINITY;
    const double inv_t = tp_inv_temperature(T);
    return (float)(((double)x_at(x, token) - st->max) * inv_t - log_z(x, n, st, inv_t));
}

static float tp_logsumexp(const void *row, int64_t n, const tp_rowstat *st, double T)
{
    const TP_X *x = row;
    const float max = st->max;
    if (T == 0.0) { /* the limit of log(sum(exp(x / T))) as T -> 0+ */
        if (max != 0.0f)
            return max > 0.0f ? INFINITY : -INFINITY;
        int64_t ties = 0;
        for (int64_t i = 0; i < n; i++)
            ties += x_at(x, i) == max;
        return (float)log((double)ties);
    }
    const double rate = TP_LOG2E * tp_inv_temperature(T);
    return (float)((double)max / T + log(sum_exp(x, n, max, rate, -INFINITY)));
}

/* The later kernels read keep->row: x itself, or the processed row of
 * floats, which the float32 instance reads. */
static void tp_mask(int64_t n, const tp_keep *keep, float *out)
{
    if (TP_ELEM != TP_ELEM_F32 && keep->row_f32) {
        tp_mask_f32(n, keep, out);
        return;
    }
    const TP_X *x = keep->row;
    if (keep->greedy) {
        float top = x_at(x, keep->argmax);
        one_hot(n, keep->argmax, top, -INFINITY, out);
        return;
    }
    if (keep->ncand >= 0) { /* the listed values are copies, so out may be x */
        for (int64_t i = 0; i < n; i++)
            out[i] = -INFINITY;
        for (int64_t j = 0; j < keep->ncand; j++)
            out[keep->cand_id[j]] = keep->cand_x[j];
        return;
    }
    const float thr = keep->threshold;
    for (int64_t i = 0; i < n; i++)
        out[i] = x_at(x, i) >= thr ? x_at(x, i) : -INFINITY;
}

static void tp_filtered_probs(int64_t n, const tp_keep *keep, float *out)
{
    if (TP_ELEM != TP_ELEM_F32 && keep->row_f32) {
        tp_filtered_probs_f32(n, keep, out);
        return;
    }
    const TP_X *x = keep->row;
    if (keep->greedy) {
        one_hot(n, keep->argmax, 1.0f, 0.0f, out);
        return;
    }
    const double rate = TP_LOG2E * keep->inv_t;
    if (keep->ncand >= 0) { /* only the listed tokens are exponentiated, once */
        const tp_exparg a = tp_exp_setup(keep->max, rate);
        double z = 0.0; /* summed in id order */
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
    normalized_exp(x, n, keep->max, rate, keep->threshold, out);
}

/* dst[i] = x[i] widened to float32, exactly: the float32 copy of a row
 * (what process_logits returns when it has nothing to apply). */
static void tp_widen(const void *row, int64_t n, float *dst)
{
    const TP_X *x = row;
    int64_t i = 0;
    for (; i + TP_VW <= n; i += TP_VW)
        vf_store(dst + i, vx_load(x + i));
    for (; i < n; i++)
        dst[i] = x_at(x, i);
}

/* ---- top_logprobs --------------------------------------------------------- */

/* Rank order of tokens: larger logit first, then lower id. */
static int ranks_before(const TP_X *x, int64_t a, int64_t b)
{
    const float xa = x_at(x, a), xb = x_at(x, b);
    return xa > xb || (xa == xb && a < b);
}

/* Heapsort of ids[0..m) into rank order: O(m log m), in place. */
static void sort_by_rank(const TP_X *x, int64_t *ids, int64_t m)
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

static void tp_top_logprobs(const void *row, int64_t n, const tp_rowstat *st, double T,
                            tp_workspace *ws, tp_ranked *out)
{
    const TP_X *x = row;
    const int64_t m = out->m;
    int64_t *ids = out->ids;
    float *lps = out->lps;
    if (T == 0.0) { /* log of the one-hot: 0 at the argmax, then -inf by id */
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
    const float kth = kth_largest(x, n, m, ws);
    int64_t above = 0;
    for (int64_t i = 0; i < n; i++)
        if (x_at(x, i) > kth)
            ids[above++] = i;
    sort_by_rank(x, ids, above);
    for (int64_t i = 0, j = above; j < m; i++)
        if (x_at(x, i) == kth)
            ids[j++] = i;

    const double inv_t = tp_inv_temperature(T), max = st->max, lz = log_z(x, n, st, inv_t);
    for (int64_t j = 0; j < m; j++)
        lps[j] = (float)(((double)x_at(x, ids[j]) - max) * inv_t - lz);
}
