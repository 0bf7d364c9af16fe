/*
 * Selection without sorting: the k-th largest logit (top-k), the nucleus
 * boundary (top-p) and the min-p threshold, each in time linear in n.
 *
 * top-k and top-p are one problem, a weighted selection: find the largest
 * value v such that the weight of {x >= v} reaches a target.  For top-k the
 * weight of a token is 1 and the target k; for top-p it is the token's
 * unnormalized probability and the target p times the total.  It is solved
 * by a most-significant-digit radix select on the float's order-preserving
 * 32-bit key, 11 + 11 + 10 bits: each level histograms the weight of the
 * tokens whose key shares the prefix chosen so far, then walks the bins from
 * the top until the running weight reaches the target.  Three passes, a
 * fixed-size histogram, no sorting, and the result is an exact logit of the
 * row, so ties are kept together by construction.
 */
#include "../tp_internal.h"

static const int level_shift[3] = {21, 10, 0};
static const int level_bins[3] = {2048, 2048, 1024};
static const uint32_t level_prefix_mask[3] = {0x00000000u, 0xFFE00000u, 0xFFFFFC00u};

/*
 * The weighted select.  Weights: counts if inv_t == 0, else probabilities
 * exp((x - max) / T) with k = log2(e) * inv_t.  Only tokens with x >= floor
 * take part.  If relative, the target is `target` times the total weight.
 * Returns the key of the selected value.
 */
static uint32_t weighted_select(const float *x, int64_t n, float floor, float max, double inv_t,
                                double target, int relative, tp_workspace *ws)
{
    const int by_mass = inv_t != 0.0;
    const double k = TP_LOG2E * inv_t;
    uint32_t prefix = 0;

    for (int level = 0; level < 3; level++) {
        const int shift = level_shift[level], nbins = level_bins[level];
        const uint32_t pmask = level_prefix_mask[level], dmask = (uint32_t)nbins - 1u;

        if (by_mass) {
            memset(ws->mass, 0, (size_t)nbins * sizeof ws->mass[0]);
            for (int64_t i = 0; i < n; i++) {
                uint32_t key = tp_key(x[i]);
                if (x[i] >= floor && (key & pmask) == prefix)
                    ws->mass[(key >> shift) & dmask] += tp_exp_scaled(x[i], max, k);
            }
        } else {
            memset(ws->count, 0, (size_t)nbins * sizeof ws->count[0]);
            for (int64_t i = 0; i < n; i++) {
                uint32_t key = tp_key(x[i]);
                if (x[i] >= floor && (key & pmask) == prefix)
                    ws->count[(key >> shift) & dmask]++;
            }
        }

        if (relative && level == 0) {
            double total = 0.0;
            for (int b = nbins - 1; b >= 0; b--)
                total += by_mass ? ws->mass[b] : (double)ws->count[b];
            target *= total;
        }

        /* Walk down to the bin where the running weight reaches the target.
         * If rounding keeps it just short, the lowest non-empty bin is it. */
        double above = 0.0;
        int chosen = -1;
        for (int b = nbins - 1; b >= 0; b--) {
            double w = by_mass ? ws->mass[b] : (double)ws->count[b];
            if (w <= 0.0)
                continue;
            chosen = b;
            if (above + w >= target)
                break;
            above += w;
        }
        if (chosen < 0)  /* nothing with positive weight: cannot happen for checked rows */
            return prefix;
        target -= above;
        prefix |= (uint32_t)chosen << shift;
    }
    return prefix;
}

static float tp_kth_largest_f32(const float *x, int64_t n, int64_t k, tp_workspace *ws)
{
    return tp_unkey(weighted_select(x, n, -INFINITY, 0.0f, 0.0, (double)k, 0, ws));
}

static float tp_nucleus_threshold_f32(const float *x, int64_t n, float floor, float max, double inv_t,
                               double top_p, tp_workspace *ws)
{
    return tp_unkey(weighted_select(x, n, floor, max, inv_t, top_p, 1, ws));
}

/* min-p keeps x when (x - max) / T >= log(m), evaluated in double exactly as
 * written (the reference evaluates the same expression).  The smallest float
 * passing it is found by bisection over the keys: 32 steps, no special cases
 * for huge or tiny T. */
static int min_p_keeps(float v, float max, double T, double log_m)
{
    return ((double)v - (double)max) / T >= log_m;
}

static float tp_min_p_threshold_f32(float max, double T, double min_p)
{
    const double log_m = log(min_p);
    uint32_t lo = tp_key(-INFINITY);  /* fails: -inf / T < log_m for min_p > 0 */
    uint32_t hi = tp_key(max);        /* passes: 0 >= log_m */
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (min_p_keeps(tp_unkey(mid), max, T, log_m))
            hi = mid;
        else
            lo = mid;
    }
    return tp_unkey(hi);
}

static void tp_keep_f32(const float *x, int64_t n, const tp_rowstat *st, const tp_filter *f,
                 tp_workspace *ws, tp_keep *keep)
{
    keep->argmax = st->argmax;
    keep->max = st->max;
    keep->greedy = f->temperature == 0.0;
    keep->threshold = -INFINITY;
    keep->inv_t = keep->greedy ? 0.0 : tp_inv_temperature(f->temperature);
    if (keep->greedy)
        return;

    float thr = -INFINITY;
    if (f->top_k > 0 && f->top_k < n)
        thr = tp_kth_largest_f32(x, n, f->top_k, ws);
    if (f->top_p < 1.0) {
        float t = tp_nucleus_threshold_f32(x, n, thr, st->max, keep->inv_t, f->top_p, ws);
        thr = t > thr ? t : thr;
    }
    if (f->min_p > 0.0) {
        float t = tp_min_p_threshold_f32(st->max, f->temperature, f->min_p);
        thr = t > thr ? t : thr;
    }
    keep->threshold = thr;
}
