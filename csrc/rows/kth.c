/*
 * The k-th largest of a list of floats (no NaN), exactly, in time linear in
 * its length: top-k's threshold, top_logprobs' split, and the ends of the
 * bands that top-k and top-p gather.  kth_largest chooses the route:
 *
 *   1. kth_largest_small      k <= 16, or k <= 64 of a long list: the k
 *                             largest so far, in a short sorted array
 *   2. kth_largest_bisect     lists of up to 1024: bisection on integer keys
 *   3. kth_largest_quickselect  up to TP_CAND_CAP: quickselect without branches
 *   4. radix_select_count     the rest, and quickselect's defeated rounds
 */
#include "row.h"
#include "vec.h"

/* The k largest so far are kept in descending order; most values fall below
 * the last and cost one comparison. */
#define TP_SMALL_K 64
/* At most this many values are read by a quickselect, per value of its
 * input, before the radix select takes over (keeps the cost linear when
 * pivots are defeated). */
#define TP_QUICKSELECT_BUDGET 4
/* Lists the bisection takes: its keys live on the stack. */
#define TP_BISECT_MAX 1024
/* Passes of the bisection that split by value before splitting by key: on
 * logits, splitting by value finds the gap below the k-th largest in about
 * ten. */
#define TP_BISECT_BY_VALUE 12
/* The sample of quickselect's pivot on longer inputs. */
#define TP_PIVOT_PICKS 32

static float kth_largest_small(const TP_X *x, int64_t n, int64_t k)
{
    float top[TP_SMALL_K];
    int64_t have = 0;
    for (int64_t i = 0; i < n; i++) {
        const float v = x_at(x, i);
        if (have == k && !(v > top[k - 1]))
            continue;
        int64_t j = have < k ? have++ : k - 1; /* the place v takes, moved up */
        for (; j > 0 && top[j - 1] < v; j--)
            top[j] = top[j - 1];
        top[j] = v;
    }
    return top[k - 1];
}

/* A pivot for rank k of x[0..n) (the k-th largest): on short inputs the
 * median of 3; on longer ones the value of a sorted pick of 32 at the rank
 * where the k-th largest would be, four places lower, so that the round most
 * likely keeps a little more than k values above the pivot and hands the
 * next round only those (a median pivot would take a few rounds to get there
 * when k is far from n / 2, as for top-k). */
static float quickselect_pivot(const TP_X *x, int64_t n, int64_t k)
{
    if (n < 12 * TP_PIVOT_PICKS)
        return tp_median3(x_at(x, 0), x_at(x, n / 2), x_at(x, n - 1));
    float s[TP_PIVOT_PICKS]; /* descending */
    const int64_t stride = n / TP_PIVOT_PICKS;
    for (int j = 0; j < TP_PIVOT_PICKS; j++) {
        const float v = x_at(x, j * stride);
        int i = j;
        for (; i > 0 && s[i - 1] < v; i--)
            s[i] = s[i - 1];
        s[i] = v;
    }
    int64_t r = k * TP_PIVOT_PICKS / n + 4; /* 0-based rank in the pick */
    return s[r < TP_PIVOT_PICKS ? r : TP_PIVOT_PICKS - 1];
}

/* One round of quickselect without branches on the data: reads the n
 * values of src and writes those above a pivot to the front of dst and
 * those below it to the back (every value is stored at both ends, and only
 * the count of the side it belongs to moves), counting the equal ones in
 * between.  Then the side holding rank *k becomes the next round's input
 * (*next, *n and *k), or the pivot is the answer (returns 1, *pivot). */
TP_FORCE_INLINE int quickselect_round(const TP_X *src, int64_t *n, int64_t *k, float *dst,
                                      const float **next, float *pivot)
{
    const float p = quickselect_pivot(src, *n, *k);
    int64_t above = 0, top = *n - 1; /* dst[0..above) > p, dst(top..n) < p */
    for (int64_t i = 0; i < *n; i++) {
        const float v = x_at(src, i);
        dst[above] = v;
        dst[top] = v;
        above += v > p;
        top -= v < p;
    }
    const int64_t below = *n - 1 - top, equal = *n - above - below;
    *pivot = p;
    *next = dst;
    if (*k <= above) {
        *n = above;
    } else if (*k <= above + equal) {
        return 1;
    } else {
        *k -= above + equal;
        *next = dst + top + 1;
        *n = below;
    }
    return 0;
}

/* Quickselect for n <= TP_CAND_CAP: rounds (quickselect_round) from x into
 * one of the lists of ws->work and then from one to the other, until the
 * pivot is the answer or the input is short; the radix select finishes
 * inputs whose rounds would pass the budget.  x must not be ws->work. */
static float kth_largest_quickselect(const TP_X *x, int64_t n, int64_t k, tp_workspace *ws)
{
    int64_t budget = TP_QUICKSELECT_BUDGET * n;
    float pivot;
    const float *src;
    if (n <= 2) {
        if (n == 1)
            return x_at(x, 0);
        const float a = x_at(x, 0), b = x_at(x, 1);
        return (k == 1) == (a > b) ? a : b;
    }
    budget -= n;
    if (quickselect_round(x, &n, &k, ws->work[0], &src, &pivot))
        return pivot;
    for (int round = 1;; round++) {
        if (n <= 2 || budget < n) {
            if (n == 1)
                return src[0];
            if (n == 2 && budget >= n) {
                const float hi = src[0] > src[1] ? src[0] : src[1];
                const float lo = src[0] > src[1] ? src[1] : src[0];
                return k == 1 ? hi : lo;
            }
            return radix_select_count_f32(src, n, k, &ws->hist);
        }
        budget -= n;
        if (quickselect_round_f32(src, &n, &k, ws->work[round & 1], &src, &pivot))
            return pivot;
    }
}

/* tp_key with its top bit flipped: a signed key, which vectors compare. */
static inline int32_t bisect_key(float v) { return (int32_t)(tp_key(v) ^ 0x80000000u); }
static inline float bisect_unkey(int32_t b) { return tp_unkey((uint32_t)b ^ 0x80000000u); }

/* Bisection on a signed integer key that orders like the floats (-0.0 and
 * +0.0 as one), for n <= TP_BISECT_MAX.  [lo, hi] holds the answer and both
 * ends are keys of x: at least k keys reach lo, fewer than k exceed hi.
 * Each pass, a loop compilers vectorize with no branch on the data, counts
 * the keys at or above a midpoint and finds the nearest key on either side
 * of it, so the interval closes onto keys of x, and a count of exactly k
 * ends the search.  The first passes split the interval by value; later ones
 * by key, at most 32 more whatever the values.  On short rows this beats
 * quickselect, whose rounds are short and whose pivots are often poor. */
static float kth_largest_bisect(const TP_X *x, int64_t n, int64_t k)
{
    int32_t key[TP_BISECT_MAX];
    int32_t lo = INT32_MAX, hi = INT32_MIN;
    for (int64_t i = 0; i < n; i++) {
        const int32_t b = bisect_key(x_at(x, i));
        key[i] = b;
        lo = b < lo ? b : lo;
        hi = b > hi ? b : hi;
    }
    for (int pass = 0; lo < hi; pass++) {
        int32_t mid = (int32_t)(lo + ((int64_t)hi - lo + 1) / 2); /* lo < mid <= hi */
        if (pass < TP_BISECT_BY_VALUE) {
            const float a = bisect_unkey(lo), b = bisect_unkey(hi);
            const float m = 0.5f * a + 0.5f * b; /* -inf at -inf, and never overflows */
            if (m > a && m <= b)
                mid = bisect_key(m);
        }
        int32_t count = 0, above = INT32_MAX, below = INT32_MIN;
        for (int64_t i = 0; i < n; i++) {
            const int32_t b = key[i];
            const int32_t up = -(int32_t)(b >= mid); /* all ones, or 0 */
            const int32_t a = (b & up) | (INT32_MAX & ~up), c = (b & ~up) | (INT32_MIN & up);
            count -= up;
            above = a < above ? a : above;
            below = c > below ? c : below;
        }
        if (count >= k) { /* the smallest key at or above mid is reached by count keys */
            lo = above;
            if (count == k)
                hi = above;
        } else { /* the largest key below mid is exceeded by count keys */
            hi = below;
        }
    }
    return bisect_unkey(lo);
}

/* The k-th largest of x[0..n) (1 <= k <= n); x must not be ws->work. */
static float kth_largest(const TP_X *x, int64_t n, int64_t k, tp_workspace *ws)
{
    if (k <= 16 || (k <= TP_SMALL_K && n > TP_CAND_CAP)) {
        TP_ROUTE(TP_ROUTE_KTH_SMALL);
        return kth_largest_small(x, n, k);
    }
    if (n <= TP_BISECT_MAX) {
        TP_ROUTE(TP_ROUTE_KTH_BISECT);
        return kth_largest_bisect(x, n, k);
    }
    if (n <= TP_CAND_CAP) {
        TP_ROUTE(TP_ROUTE_KTH_QUICKSELECT);
        return kth_largest_quickselect(x, n, k, ws);
    }
    return radix_select_count(x, n, k, &ws->hist);
}
