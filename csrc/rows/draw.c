/*
 * The draw: given u in [0, 1), the first kept token, in ascending id, at
 * which the running sum of kept probabilities exceeds u times their total,
 * and its log-probability under the filtered distribution.  A token of
 * probability 0 is never drawn.
 */
#include "row.h"
#include "vec.h"

/* Tokens the walk goes over: logits v[0..len), of ids ids[j], or first_id + j
 * when ids is NULL. */
typedef struct {
    const TP_X *v;
    const int64_t *ids;
    int64_t first_id, len;
} tp_list;

/* Where a walk is: the sum so far, the target it must exceed, and the last
 * token of positive probability passed (the answer if rounding keeps the
 * sum short of the target). */
#ifndef TP_WALK_TYPE /* (once, for every element type) */
#define TP_WALK_TYPE
typedef struct {
    double run, target;
    int64_t last_positive;
} tp_walk;
#endif

TP_FORCE_INLINE int64_t list_id(tp_list list, int64_t j)
{
    return list.ids ? list.ids[j] : list.first_id + j;
}

/* One tile of the walk: the exponentials e[0..tile.len) of its tokens, of
 * sum tile_sum (as sum_exp_store gave it).  Returns the first token of
 * positive probability at which the walk's sum exceeds its target, or -1 if
 * none does; a tile that leaves the sum at or below the target is passed
 * whole, added as tile_sum. */
TP_FORCE_INLINE int64_t crossing_in_tile(const float *e, tp_list tile, double tile_sum, tp_walk *w)
{
    if (!(w->run + tile_sum > w->target)) {
        for (int64_t j = tile.len - 1; j >= 0; j--)
            if (e[j] > 0.0f) {
                w->last_positive = list_id(tile, j);
                break;
            }
        w->run += tile_sum;
        return -1;
    }
    for (int64_t j = 0; j < tile.len; j++) {
        if (e[j] > 0.0f) {
            w->last_positive = list_id(tile, j);
            w->run += e[j];
            if (w->run > w->target)
                return w->last_positive;
        }
    }
    return -1;
}

/* The walk over a list of the kept row's tokens (those >= threshold count):
 * the exponentials are computed TP_TILE at a time, vectorized, into
 * ws->tile_e, and walked by crossing_in_tile. */
static int64_t first_crossing(const tp_keep *keep, tp_list list, float threshold, tp_walk *w,
                              tp_workspace *ws)
{
    const double rate = TP_LOG2E * keep->inv_t;
    for (int64_t lo = 0; lo < list.len; lo += TP_TILE) {
        const int64_t m = list.len - lo < TP_TILE ? list.len - lo : TP_TILE;
        const double tile_sum =
            sum_exp_store(list.v + lo, m, keep->max, rate, threshold, ws->tile_e);
        const tp_list tile = {list.v + lo, list.ids ? list.ids + lo : NULL, list.first_id + lo, m};
        const int64_t token = crossing_in_tile(ws->tile_e, tile, tile_sum, w);
        if (token >= 0)
            return token;
    }
    return w->last_positive;
}

/* The draw over a list of at most TP_TILE tokens: one pass computes, stores
 * and sums their exponentials, which is the total *z, and the walk reads
 * them. */
TP_FORCE_INLINE int64_t draw_one_tile(const tp_keep *keep, tp_list list, float threshold, double u,
                                      tp_workspace *ws, double *z)
{
    *z = sum_exp_store(list.v, list.len, keep->max, TP_LOG2E * keep->inv_t, threshold, ws->tile_e);
    tp_walk w = {0.0, u * *z, keep->argmax};
    const int64_t token = crossing_in_tile(ws->tile_e, list, *z, &w);
    return token >= 0 ? token : w.last_positive;
}

/* The draw over the listed kept tokens. */
/* The logit of a listed token (cand_id ascends). */
static float listed_logit(const tp_keep *keep, int64_t token)
{
    int64_t lo = 0, hi = keep->ncand - 1;
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (keep->cand_id[mid] < token)
            lo = mid + 1;
        else
            hi = mid;
    }
    return keep->cand_x[lo];
}

static int64_t draw_listed(const tp_keep *keep, double u, tp_workspace *ws, double *z)
{
    const tp_list_f32 list = {keep->cand_x, keep->cand_id, 0, keep->ncand};
    if (keep->ncand <= TP_TILE)
        return draw_one_tile_f32(keep, list, -INFINITY, u, ws, z);
    *z = sum_exp_f32(keep->cand_x, keep->ncand, keep->max, TP_LOG2E * keep->inv_t, -INFINITY);
    tp_walk w = {0.0, u * *z, keep->argmax};
    return first_crossing_f32(keep, list, -INFINITY, &w, ws);
}

/* The draw over the whole row, reading it once and a run of it again: one
 * pass of exponentials stores the kept mass of each run of the row in
 * ws->runs, the run where the running sum crosses u * total is found from
 * those sums, and only that run is walked.  When selection left the kept
 * mass of each run (keep->run_sum), the pass is saved. */
static int64_t draw_runs(const TP_X *x, int64_t n, const tp_keep *keep, double u, tp_workspace *ws,
                         double *z)
{
    const float thr = keep->threshold;
    if (!keep->run_sum && n <= TP_TILE)
        return draw_one_tile(keep, (tp_list){x, NULL, 0, n}, thr, u, ws, z);
    const double *run_sum;
    int64_t per;
    if (keep->run_sum) {
        per = keep->run_per;
        run_sum = keep->run_sum;
        *z = 0.0;
        for (int64_t b = 0; b < (n + per - 1) / per; b++)
            *z += run_sum[b];
    } else {
        per = TP_TILE; /* a multiple of TP_TILE, so each run sums in lanes */
        while ((n + per - 1) / per > TP_RUNS_MAX)
            per *= 2;
        ws->runs.per = per;
        *z = sum_exp_by_run(x, n, keep->max, TP_LOG2E * keep->inv_t, thr, &ws->runs);
        run_sum = ws->runs.sum;
    }
    const int64_t runs = (n + per - 1) / per;

    /* The run where the running sum first exceeds u * z; if rounding leaves
     * u * z at or above every partial sum, the last run of positive mass,
     * and its last token of positive probability. */
    double target = u * *z, before = 0.0;
    int64_t run = -1, last_positive_run = 0;
    for (int64_t b = 0; b < runs; b++) {
        if (run_sum[b] <= 0.0)
            continue;
        last_positive_run = b;
        if (before + run_sum[b] > target) {
            run = b;
            break;
        }
        before += run_sum[b];
    }
    if (run < 0) {
        run = last_positive_run;
        target = INFINITY;
    }
    const int64_t lo = run * per, len = n - lo < per ? n - lo : per;
    tp_walk w = {before, target, keep->argmax};
    return first_crossing(keep, (tp_list){x + lo, NULL, lo, len}, thr, &w, ws);
}

static int64_t tp_sample(int64_t n, const tp_keep *keep, double u, tp_workspace *ws, float *logprob)
{
    if (TP_ELEM != TP_ELEM_F32 && keep->row_f32) /* the processed row */
        return tp_sample_f32(n, keep, u, ws, logprob);
    const TP_X *x = keep->row;
    if (keep->greedy) {
        *logprob = 0.0f;
        return keep->argmax;
    }
    double z;
    const int64_t token =
        keep->ncand >= 0 ? draw_listed_f32(keep, u, ws, &z) : draw_runs(x, n, keep, u, ws, &z);
    const float v = keep->ncand >= 0 ? listed_logit(keep, token) : x_at(x, token);
    *logprob = (float)(((double)v - (double)keep->max) * keep->inv_t - log(z));
    return token;
}
