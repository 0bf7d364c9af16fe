/*
 * Speculative decoding: the test of one draft token at one position
 * (tokenpick.verify), after keep filtered the target row there.  With p
 * the kept set's distribution and q the draft's (a row of n floats, or
 * NULL for a draft taken as certain: q(d) = 1, 0 elsewhere), the draft d is
 * accepted iff u_accept * q(d) < p(d); otherwise the token emitted in its
 * place is drawn with u_draw by the draw's rule (the first token, in
 * ascending id, at which the running sum exceeds u times the total) from
 * the residual max(0, p - q), or by the draw itself from p where the
 * residual is all zero (p == q).
 *
 * Everything is in units of the kept set's unnormalized probabilities
 * e = exp((x - max) / T), whose sum is z: p = e / z, so the test is
 * u_accept * q(d) * z < e(d) and the residual's weights are
 * max(0, e - q * z).  Listed kept sets are read through their list; others
 * have their exponentials stored in the caller's scratch row by the pass
 * that sums z, and the residual is summed in float lanes a tile at a time,
 * the tiles in double, as sums.c sums (then walked over the same tiles).
 */
#include "row.h"
#include "vec.h"

#ifndef TP_VERIFY_CODES
#define TP_VERIFY_CODES
/* Whether q (n floats) holds probabilities only: finite and >= 0. */
static int draft_row_ok(const float *q, int64_t n)
{
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; i++)
        bad |= !(q[i] >= 0.0f) | (q[i] == INFINITY);
    return !bad;
}

/* The residual's weight of a token of exponential e and draft probability q. */
static inline float residual_weight(float e, float q, float z)
{
    const float w = e - q * z;
    return w > 0.0f ? w : 0.0f;
}

/* The residual's weights summed over e[i..i+len) (len <= TP_TILE), in lanes
 * (q NULL: the weights are e itself). */
static float residual_tile(const float *e, const float *q, float z, int64_t i, int64_t len)
{
    float lane[32] = {0.0f};
    int64_t j = 0;
    if (q) {
        for (; j + 32 <= len; j += 32)
            for (int l = 0; l < 32; l++)
                lane[l] += residual_weight(e[i + j + l], q[i + j + l], z);
    } else {
        for (; j + 32 <= len; j += 32)
            for (int l = 0; l < 32; l++)
                lane[l] += e[i + j + l];
    }
    for (int w = 16; w > 0; w /= 2)
        for (int l = 0; l < w; l++)
            lane[l] += lane[l + w];
    float s = lane[0];
    for (; j < len; j++)
        s += q ? residual_weight(e[i + j], q[i + j], z) : e[i + j];
    return s;
}

/* The weight of token i of the residual: max(0, e - q z), or e with q NULL. */
static inline float residual_at(const float *e, const float *q, float z, int64_t i)
{
    return q ? residual_weight(e[i], q[i], z) : e[i];
}

/* The token drawn with u from the residual over the row's stored
 * exponentials e (n of them), by the tiles' sums and then a walk of the
 * tile where the running sum crosses u times the total; -1 where the
 * residual is all zero. */
static int64_t draw_residual_row(const float *e, const float *q, double z, int64_t n, double u)
{
    const float zf = (float)z;
    double total = 0.0;
    for (int64_t i = 0; i < n; i += TP_TILE)
        total += residual_tile(e, q, zf, i, n - i < TP_TILE ? n - i : TP_TILE);
    if (!(total > 0.0))
        return -1;
    const double target = u * total;
    double run = 0.0;
    int64_t last_tile = 0; /* the last tile of positive weight */
    for (int64_t i = 0; i < n; i += TP_TILE) {
        const int64_t len = n - i < TP_TILE ? n - i : TP_TILE;
        const float tile = residual_tile(e, q, zf, i, len);
        last_tile = tile > 0.0f ? i : last_tile;
        if (!(run + tile > target)) {
            run += tile;
            continue;
        }
        for (int64_t j = i; j < i + len; j++) {
            const float w = residual_at(e, q, zf, j);
            if (w > 0.0f) {
                run += w;
                if (run > target)
                    return j;
            }
        }
    }
    /* rounding left the running sum short of u * total: the last token of
     * positive weight */
    for (int64_t j = (n - last_tile < TP_TILE ? n : last_tile + TP_TILE) - 1; j >= last_tile; j--)
        if (residual_at(e, q, zf, j) > 0.0f)
            return j;
    return -1;
}
#endif

/* The draft d at a position of kept set keep (n tokens), q its draft row or
 * NULL: TP_DRAFT_ACCEPTED with *logprob = log p(d); TP_DRAFT_REJECTED with
 * the token emitted in *token and log p of it in *logprob; TP_DRAFT_BAD_Q
 * where q(d), or q's row at a rejection, holds a value that is not a
 * probability.  scratch: n floats of the caller's (rows not listed). */
static int tp_verify_draft(int64_t n, const tp_keep *keep, int64_t d, const float *q,
                           double u_accept, double u_draw, tp_workspace *ws, float *scratch,
                           int64_t *token, float *logprob)
{
    if (TP_ELEM != TP_ELEM_F32 && keep->row_f32)
        return tp_verify_draft_f32(n, keep, d, q, u_accept, u_draw, ws, scratch, token, logprob);
    if (keep->greedy) { /* accepted while the draft is the argmax; else the argmax */
        *logprob = 0.0f;
        *token = keep->argmax;
        return d == keep->argmax ? TP_DRAFT_ACCEPTED : TP_DRAFT_REJECTED;
    }
    const float qd = q ? q[d] : 1.0f;
    if (!(qd >= 0.0f) || qd == INFINITY)
        return TP_DRAFT_BAD_Q;
    const double rate = TP_LOG2E * keep->inv_t;
    const tp_exparg a = tp_exp_setup(keep->max, rate);
    double z = 0.0, ed = 0.0;
    float xd = -INFINITY;
    if (keep->ncand >= 0) { /* the listed kept tokens, in ascending id */
        for (int64_t j = 0; j < keep->ncand; j++) {
            const float e = tp_exp_apply(keep->cand_x[j], &a);
            z += e;
            if (keep->cand_id[j] == d) {
                ed = e;
                xd = keep->cand_x[j];
            }
        }
    } else {
        const TP_X *x = keep->row;
        z = sum_exp_store(x, n, keep->max, rate, keep->threshold, scratch);
        ed = scratch[d];
        xd = x_at(x, d);
    }
    const double log_z = log(z);
    if (u_accept * (double)qd * z < ed) {
        *logprob = (float)(((double)xd - keep->max) * keep->inv_t - log_z);
        return TP_DRAFT_ACCEPTED;
    }
    if (q && !draft_row_ok(q, n))
        return TP_DRAFT_BAD_Q;
    int64_t t = -1;
    float xt = -INFINITY;
    if (keep->ncand >= 0) {
        const float zf = (float)z;
        double total = 0.0;
        for (int64_t j = 0; j < keep->ncand; j++) {
            const int64_t id = keep->cand_id[j];
            const float e = tp_exp_apply(keep->cand_x[j], &a);
            total += q ? residual_weight(e, q[id], zf) : (id == d ? 0.0f : e);
        }
        const double target = u_draw * total;
        double run = 0.0;
        for (int64_t j = 0; j < keep->ncand && total > 0.0; j++) {
            const int64_t id = keep->cand_id[j];
            const float e = tp_exp_apply(keep->cand_x[j], &a);
            const float w = q ? residual_weight(e, q[id], zf) : (id == d ? 0.0f : e);
            if (w > 0.0f) {
                t = id; /* the last of positive weight, if rounding keeps run short */
                xt = keep->cand_x[j];
                run += w;
                if (run > target)
                    break;
            }
        }
    } else {
        if (!q)
            scratch[d] = 0.0f; /* q is 1 at the draft: its residual is 0, the rest is p */
        t = draw_residual_row(scratch, q, z, n, u_draw);
        if (t >= 0)
            xt = x_at((const TP_X *)keep->row, t);
    }
    if (t < 0) { /* the residual is all zero (p == q): the draw from p */
        *token = tp_sample(n, keep, u_draw, ws, logprob);
        return TP_DRAFT_REJECTED;
    }
    *token = t;
    *logprob = (float)(((double)xt - keep->max) * keep->inv_t - log_z);
    return TP_DRAFT_REJECTED;
}
