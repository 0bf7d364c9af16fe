/*
 * The radix select, the exact fallback of every selection, and the
 * histograms of weight it walks (which the value-bin routes of mass.c and
 * topp.c walk too).
 *
 * top-k and top-p are one problem, a weighted selection: find the largest
 * value v such that the weight of {x >= v} reaches a target.  For top-k the
 * weight of a token is 1 and the target k; for top-p it is the token's
 * unnormalized probability and the target p times the total.  The radix
 * select solves it most-significant digit first on the float's
 * order-preserving 32-bit key, 11 or 8 bits a level: each level histograms
 * the weight of the values whose key shares the prefix chosen so far, then
 * walks the bins from the top until the running weight reaches the target.
 * At most four passes, a fixed-size histogram, no sorting, and the result is
 * a value of the list, so ties stay together by construction.
 */
#include "row.h"
#include "vec.h"

/* The first radix level over whole long rows (top-p's histogram route):
 * the top 11 bits of the key. */
#define TP_LEVEL0_BITS 11
#define TP_LEVEL0_SHIFT (32 - TP_LEVEL0_BITS)
/* Lists up to this long take digits of 8 bits, whose histograms are 8 times
 * cheaper to clear and walk than those of 11. */
#define TP_SHORT_LIST 8192

/* h->mass[b] = the sum of bin b over the TP_HIST_COPIES interleaved copies,
 * for b < nbins. */
static void merge_hist_copies(tp_hist *h, int nbins)
{
    for (int b = 0; b < nbins; b++) {
        double m = 0.0;
        for (int j = 0; j < TP_HIST_COPIES; j++)
            m += h->copies[TP_HIST_COPIES * b + j];
        h->mass[b] = m;
    }
}

/* Walks the bins of h->mass down from the top to the one where the running
 * weight reaches target, and returns it, with the weight of the bins above
 * it in *above.  If rounding keeps the total just short, the lowest bin of
 * positive weight; -1 if there is none. */
static int crossing_bin(const tp_hist *h, int nbins, double target, double *above)
{
    int chosen = -1;
    *above = 0.0;
    for (int b = nbins - 1; b >= 0; b--) {
        const double w = h->mass[b];
        if (w <= 0.0)
            continue;
        chosen = b;
        if (*above + w >= target)
            break;
        *above += w;
    }
    return chosen;
}

/* One weighted selection: among v[0..n) >= cutoff, weighted by 1 (by_mass
 * 0), by w[] or, with w NULL, by exp((v - max) / T) of the row's exponential
 * a; the target is absolute, or a fraction of the total (relative). */
typedef struct {
    const TP_X *v;
    const float *w;
    int64_t n;
    float cutoff;
    int by_mass, relative;
    double target;
    tp_exparg a;
} tp_radix;

/* The key of the selected value.  A first pass finds the range of the keys
 * taking part: the bits above their highest difference are known at once,
 * and the levels choose only the rest (gathered candidates lie in a narrow
 * range, so their top digits are all alike).  Masses go to interleaved
 * copies of the histogram, so that values falling in one bin do not each
 * wait for the addition before. */
static uint32_t radix_select(const tp_radix *q, tp_hist *h)
{
    const TP_X *v = q->v;
    const int64_t n = q->n;
    const int width = n <= TP_SHORT_LIST ? 8 : 11;
    double target = q->target;

    uint32_t kmin = UINT32_MAX, kmax = 0;
    for (int64_t i = 0; i < n; i++) {
        const float vi = x_at(v, i);
        const uint32_t key = tp_key(vi);
        if (vi >= q->cutoff) {
            kmin = key < kmin ? key : kmin;
            kmax = key > kmax ? key : kmax;
        }
    }
    if (kmin > kmax) /* nothing takes part: cannot happen for checked rows */
        return tp_key(q->cutoff);
    int low = 0; /* the bits still to choose: those below the highest difference */
    for (uint32_t diff = kmin ^ kmax; diff; diff >>= 1)
        low++;
    uint32_t prefix = low == 32 ? 0u : kmin >> low << low;

    for (int first = 1; low > 0; first = 0) {
        const int bits = low < width ? low : width, shift = low - bits, nbins = 1 << bits;
        const uint32_t pmask = low == 32 ? 0u : ~0u << low, dmask = (uint32_t)nbins - 1u;

        if (q->by_mass) {
            memset(h->copies, 0, TP_HIST_COPIES * (size_t)nbins * sizeof h->copies[0]);
            for (int64_t i = 0; i < n; i++) {
                const float vi = x_at(v, i);
                const uint32_t key = tp_key(vi);
                if (vi >= q->cutoff && (key & pmask) == prefix)
                    h->copies[TP_HIST_COPIES * ((key >> shift) & dmask)
                              + (uint32_t)(i % TP_HIST_COPIES)] +=
                        q->w ? q->w[i] : tp_exp_apply(vi, &q->a);
            }
            merge_hist_copies(h, nbins);
        } else {
            memset(h->count, 0, (size_t)nbins * sizeof h->count[0]);
            for (int64_t i = 0; i < n; i++) {
                const float vi = x_at(v, i);
                const uint32_t key = tp_key(vi);
                if (vi >= q->cutoff && (key & pmask) == prefix)
                    h->count[(key >> shift) & dmask]++;
            }
            for (int b = 0; b < nbins; b++)
                h->mass[b] = (double)h->count[b];
        }

        if (q->relative && first) {
            double total = 0.0;
            for (int b = nbins - 1; b >= 0; b--)
                total += h->mass[b];
            target *= total;
        }

        double above;
        const int chosen = crossing_bin(h, nbins, target, &above);
        if (chosen < 0) /* nothing with positive weight: cannot happen for checked rows */
            return prefix;
        target -= above;
        prefix |= (uint32_t)chosen << shift;
        low = shift;
    }
    return prefix;
}

/* The k-th largest of v[0..n) (1 <= k <= n). */
static float radix_select_count(const TP_X *v, int64_t n, int64_t k, tp_hist *h)
{
    TP_ROUTE(TP_ROUTE_KTH_RADIX);
    const tp_radix q = {v, NULL, n, -INFINITY, 0, 0, (double)k, tp_exp_setup(0.0f, 0.0)};
    return tp_unkey(radix_select(&q, h));
}

/* The largest value of v[0..n) >= cutoff at which the mass from the top
 * reaches target (a fraction of the total, if relative), the mass of a
 * value being w[] or, with w NULL, its exponential a (tp_exp_setup of the
 * row's max and rate). */
static float radix_select_mass(const TP_X *v, const float *w, int64_t n, float cutoff, tp_exparg a,
                               double target, int relative, tp_hist *h)
{
    const tp_radix q = {v, w, n, cutoff, 1, relative, target, a};
    return tp_unkey(radix_select(&q, h));
}
