/*
 * Selection by mass among listed values: the smallest value at which the
 * mass (sum of weights) of the values at or above it reaches a target, for
 * top-p's candidates.  select_stored chooses the route:
 *
 *   1. select_by_mass_small   up to TP_SMALL_SELECT values: partitioned in place
 *   2. select_by_partition    (instruction sets that pack lanes) a quickselect
 *                             by mass with vector passes
 *      select_by_value_bins   (the others) a histogram of value bins, then 1.
 *   3. radix_select_mass      values those defeat (ties, extreme spreads)
 */
#include "row.h"
#include "vec.h"

/* Bins of equal width in value (select_by_value_bins, topp.c's probe_band). */
#define TP_VALUE_BINS 512
#define TP_BIN_TILE 256 /* values whose bins are computed at once */

/* Selection by mass of a few values, in place: val[0..c) with their weights
 * wt[0..c), all positive.  A three-way partition around a pivot, recursing
 * into the side where the mass reaches the target; if rounding leaves the
 * total short of the target, the smallest value. */
static float partition_select(float *val, float *wt, int64_t c, double target)
{
    double above = 0.0; /* the mass of the values above those left */
    float lowest = -INFINITY;
    while (c > 0) {
        const float pivot = tp_median3(val[0], val[c / 2], val[c - 1]);
        double m_gt = 0.0, m_eq = 0.0;
        int64_t n_gt = 0;
        for (int64_t j = 0; j < c; j++) {
            if (val[j] > pivot) {
                m_gt += wt[j];
                const float tv = val[j], tw = wt[j];
                val[j] = val[n_gt];
                wt[j] = wt[n_gt];
                val[n_gt] = tv;
                wt[n_gt++] = tw;
            } else if (val[j] == pivot) {
                m_eq += wt[j];
            }
        }
        if (above + m_gt >= target) {
            c = n_gt;
            continue;
        }
        if (above + m_gt + m_eq >= target)
            return pivot;
        above += m_gt + m_eq;
        lowest = pivot;
        int64_t n_lt = 0;
        for (int64_t j = n_gt; j < c; j++)
            if (val[j] < pivot) {
                val[n_lt] = val[j];
                wt[n_lt++] = wt[j];
            }
        c = n_lt;
    }
    return lowest;
}

/* Selection by mass of at most TP_SMALL_SELECT values: those of positive
 * weight (as in the radix select) are copied to ws->small and partitioned
 * there. */
static float select_by_mass_small(const float *v, const float *w, int64_t n, double target,
                                  tp_workspace *ws)
{
    float *val = ws->small[0], *wt = ws->small[1];
    int64_t c = 0;
    for (int64_t j = 0; j < n; j++)
        if (w[j] > 0.0f) {
            val[c] = v[j];
            wt[c++] = w[j];
        }
    return partition_select(val, wt, c, target);
}

/* Bins of equal width in value, from lo up, for the values of positive
 * weight; TP_VALUE_BINS (one past the last) for the others.  The bin is
 * monotone in the value, rounding included (each step rounds
 * monotonically), so the bins are ordered like the values and equal values
 * share one.  A loop compilers vectorize. */
static void value_bins(const float *v, const float *w, int64_t m, float lo, float scale,
                       int32_t *bin)
{
    for (int64_t j = 0; j < m; j++) {
        const float d = w[j] > 0.0f ? v[j] - lo : 0.0f;
        const int32_t b = (int32_t)(d * scale);
        bin[j] = w[j] > 0.0f ? (b < TP_VALUE_BINS - 1 ? b : TP_VALUE_BINS - 1) : TP_VALUE_BINS;
    }
}

/* The smallest and largest of v[0..n) (no NaN). */
static void value_range(const float *v, int64_t n, float *lo, float *hi)
{
    tp_vf vmin = vf_set1(INFINITY), vmax = vf_set1(-INFINITY);
    int64_t j = 0;
    for (; j + TP_VW <= n; j += TP_VW) {
        const tp_vf x = vf_load(v + j);
        vmin = vf_min(vmin, x);
        vmax = vf_max(vmax, x);
    }
    float bottom = vf_hmin(vmin), top = vf_hmax(vmax);
    for (; j < n; j++) {
        bottom = v[j] < bottom ? v[j] : bottom;
        top = v[j] > top ? v[j] : top;
    }
    *lo = bottom;
    *hi = top;
}

#if !TP_VCOMPRESS
/* Selection by mass of more values than select_by_mass_small takes, where
 * the instruction set does not pack lanes (the candidates of a wide nucleus:
 * a few thousand, in a narrow range): one pass histograms their mass into
 * bins of equal width in value, the walk finds the bin where the mass from
 * the top reaches the target, and the partition finishes on that bin's few
 * values.  Returns 0, leaving the work to the radix select, for values
 * spread too wide or too narrow for float bins (wider than 1e38, or with
 * -inf; a few float steps near 0) or crowded into one bin (such as ties). */
static int select_by_value_bins(const float *v, const float *w, int64_t n, double target,
                                tp_workspace *ws, float *result)
{
    float lo, hi;
    value_range(v, n, &lo, &hi);
    if (!(lo < hi) || !(hi - lo < 1e38f))
        return 0;
    const float scale = (float)(TP_VALUE_BINS - 1) / (hi - lo);
    if (!(scale < INFINITY)) /* values a few float steps apart, near 0 */
        return 0;
    int32_t bin[TP_BIN_TILE];
    tp_hist *h = &ws->hist;
    memset(h->copies, 0, TP_HIST_COPIES * (size_t)(TP_VALUE_BINS + 1) * sizeof h->copies[0]);
    for (int64_t at = 0; at < n; at += TP_BIN_TILE) {
        const int64_t m = n - at < TP_BIN_TILE ? n - at : TP_BIN_TILE;
        value_bins(v + at, w + at, m, lo, scale, bin);
        for (int64_t j = 0; j < m; j++)
            h->copies[TP_HIST_COPIES * bin[j] + (j % TP_HIST_COPIES)] += w[at + j];
    }
    merge_hist_copies(h, TP_VALUE_BINS);
    double above;
    const int32_t chosen = crossing_bin(h, TP_VALUE_BINS, target, &above);
    if (chosen < 0)
        return 0;

    float *val = ws->small[0], *wt = ws->small[1];
    int64_t c = 0;
    for (int64_t at = 0; at < n; at += TP_BIN_TILE) {
        const int64_t m = n - at < TP_BIN_TILE ? n - at : TP_BIN_TILE;
        value_bins(v + at, w + at, m, lo, scale, bin);
        for (int64_t j = 0; j < m; j++) {
            if (bin[j] != chosen)
                continue;
            if (c == TP_SMALL_SELECT)
                return 0;
            val[c] = v[at + j];
            wt[c++] = w[at + j];
        }
    }
    *result = partition_select(val, wt, c, target - above);
    return 1;
}
#endif

#if TP_VCOMPRESS
/* The median of up to nine values of positive weight spread over v[0..c)
 * (each the first of positive weight at or after its place, within a
 * vector's length); 0 if none has weight. */
static int spread_median(const float *v, const float *w, int64_t c, float *median)
{
    float pick[9];
    int got = 0;
    for (int k = 0; k < 9; k++) {
        const int64_t at = (2 * k + 1) * c / 18;
        for (int64_t j = at; j < c && j < at + TP_VW; j++)
            if (w[j] > 0.0f) {
                pick[got++] = v[j];
                break;
            }
    }
    if (got == 0)
        return 0;
    for (int i = 1; i < got; i++) /* insertion sort */
        for (int j = i; j > 0 && pick[j - 1] > pick[j]; j--) {
            const float t = pick[j];
            pick[j] = pick[j - 1];
            pick[j - 1] = t;
        }
    *median = pick[got / 2];
    return 1;
}

/* Packs the values of positive weight above pivot (if above) or below it
 * (if not), with their weights, from v and w into ws->work[0] and [1], in
 * order; returns their number.  v and w may be those lists themselves. */
static int64_t pack_side(const float *v, const float *w, int64_t c, float pivot, int above,
                         tp_workspace *ws)
{
    float *dv = ws->work[0], *dw = ws->work[1];
    const float past = nextafterf(pivot, INFINITY);
    const tp_vf vp = vf_set1(above ? past : pivot), tiny = vf_set1(0x1p-149f);
    int64_t got = 0, j = 0;
    for (; j + TP_VW <= c; j += TP_VW) {
        const tp_vf x = vf_load(v + j), e = vf_load(w + j);
        const uint32_t side = above ? vf_ge_bits(x, vp) : ~vf_ge_bits(x, vp);
        const uint32_t keep = side & vf_ge_bits(e, tiny);
        const tp_vpack pk = vf_pack(keep);
        vf_compress_store(dv + got, pk, x);
        vf_compress_store(dw + got, pk, e);
        got += tp_bit_count(keep & ((1u << TP_VW) - 1u));
    }
    for (; j < c; j++)
        if (w[j] > 0.0f && (above ? v[j] >= past : v[j] < pivot)) {
            dv[got] = v[j];
            dw[got++] = w[j];
        }
    return got;
}

/* Selection by mass of more values than select_by_mass_small takes, where
 * the instruction set packs lanes: a quickselect by mass, with vector
 * passes.  A round takes the median of nine values spread over the list as
 * pivot, sums the mass at and above it, and packs the side where the mass
 * from the top reaches the target into ws->work (the values of positive
 * weight only); select_by_mass_small finishes once the list is short.  The
 * list of v and w itself is left as it is.  Returns 0 (for the radix
 * select) when the list has no weight where the pivot is looked for, or
 * when rounds shrink it too little (pivots that an order of the values
 * defeats), so that the cost stays linear. */
static int select_by_partition(const float *v, const float *w, int64_t c, double target,
                               tp_workspace *ws, float *result)
{
    double above = 0.0;       /* the mass of the values above the list */
    float lowest = -INFINITY; /* the smallest value of weight above the list */
    int64_t budget = 4 * c;   /* values all rounds may read before the fallback */
    while (c > TP_SMALL_SELECT) {
        float pivot;
        budget -= c;
        if (budget < 0 || !spread_median(v, w, c, &pivot))
            return 0;
        const double ge = sum_stored_store_f32(v, w, c, pivot, NULL); /* mass at and above */
        const double gt = sum_stored_store_f32(v, w, c, nextafterf(pivot, INFINITY), NULL);
        if (above + gt >= target) {
            c = pack_side(v, w, c, pivot, 1, ws);
        } else if (above + ge >= target) {
            *result = pivot;
            return 1;
        } else {
            above += ge;
            lowest = pivot;
            c = pack_side(v, w, c, pivot, 0, ws);
        }
        v = ws->work[0];
        w = ws->work[1];
    }
    const float t = select_by_mass_small(v, w, c, target - above, ws);
    *result = t > -INFINITY ? t : lowest;
    return 1;
}
#endif

/* Among the c listed candidates of the row, whose exponentials are in
 * ws->cand.e, the smallest logit whose mass from the top reaches target. */
static float select_stored(const tp_row *r, int64_t c, double target)
{
    tp_workspace *ws = r->ws;
    float t;
    if (c <= TP_SMALL_SELECT) {
        TP_ROUTE(TP_ROUTE_MASS_SMALL);
        return select_by_mass_small(ws->cand.x, ws->cand.e, c, target, ws);
    }
#if TP_VCOMPRESS
    if (select_by_partition(ws->cand.x, ws->cand.e, c, target, ws, &t)) {
        TP_ROUTE(TP_ROUTE_MASS_PARTITION);
        return t;
    }
#else
    if (select_by_value_bins(ws->cand.x, ws->cand.e, c, target, ws, &t)) {
        TP_ROUTE(TP_ROUTE_MASS_VALUE_BINS);
        return t;
    }
#endif
    TP_ROUTE(TP_ROUTE_MASS_RADIX);
    return radix_select_mass_f32(ws->cand.x, ws->cand.e, c, r->cutoff,
                                 tp_exp_setup(r->max, r->rate), target, 0, &ws->hist);
}

/* Among the c listed candidates of the row (all >= its cutoff), the
 * smallest logit whose mass from the top reaches target (a fraction of
 * their total, if relative); their exponentials are computed once,
 * vectorized, into ws->cand.e.  *z gets their total. */
static float select_listed_by_mass(const tp_row *r, int64_t c, double target, int relative,
                                   double *z)
{
    tp_workspace *ws = r->ws;
    *z = sum_exp_store_f32(ws->cand.x, c, r->max, r->rate, r->cutoff, ws->cand.e);
    return select_stored(r, c, relative ? target * *z : target);
}
