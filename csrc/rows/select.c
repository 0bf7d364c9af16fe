/*
 * Selection without sorting: the k-th largest logit (top-k), the nucleus
 * boundary (top-p) and the min-p threshold, each in time linear in n.
 *
 * top-k and top-p are one problem, a weighted selection: find the largest
 * value v such that the weight of {x >= v} reaches a target.  For top-k the
 * weight of a token is 1 and the target k; for top-p it is the token's
 * unnormalized probability and the target p times the total.  It is solved
 * by a most-significant-digit radix select on the float's order-preserving
 * 32-bit key, 11 or 8 bits a level: each level histograms the weight of the
 * tokens whose key shares the prefix chosen so far, then walks the bins from
 * the top until the running weight reaches the target.  At most four passes
 * (fewer when the keys share their top bits), a fixed-size histogram, no
 * sorting, and the result is an exact logit of the row, so ties are kept
 * together by construction.
 */
#include "../tp_internal.h"
#include "vec.h"

/* The first radix level over whole long rows (the wide-nucleus histogram):
 * the top 11 bits of the key. */
#define TP_LEVEL0_BITS 11
#define TP_LEVEL0_SHIFT (32 - TP_LEVEL0_BITS)
/* Digit widths: 11 bits a level over long inputs, 8 over short ones (the
 * gathered candidates, short vocabularies), whose histograms are 8 times
 * cheaper to clear and walk. */
#define TP_SHORT_ROW 8192

/* ws->mass[b] = the sum of bin b over the TP_MASS_COPIES interleaved
 * histograms in copies, for b < nbins. */
static void merge_mass_copies(const double *copies, int nbins, tp_workspace *ws)
{
    for (int b = 0; b < nbins; b++) {
        double m = 0.0;
        for (int j = 0; j < TP_MASS_COPIES; j++)
            m += copies[TP_MASS_COPIES * b + j];
        ws->mass[b] = m;
    }
}

/* Walks the bins of ws->mass down from the top to the one where the running
 * weight reaches target, and returns it, with the weight of the bins above
 * it in *above.  If rounding keeps the total just short, the lowest bin of
 * positive weight; -1 if there is none. */
static int crossing_bin(const tp_workspace *ws, int nbins, double target, double *above)
{
    int chosen = -1;
    *above = 0.0;
    for (int b = nbins - 1; b >= 0; b--) {
        const double w = ws->mass[b];
        if (w <= 0.0)
            continue;
        chosen = b;
        if (*above + w >= target)
            break;
        *above += w;
    }
    return chosen;
}

/*
 * The weighted select.  Weights: counts if inv_t == 0, else probabilities
 * exp((x - max) / T) with k = log2(e) * inv_t, read from weights[] if given.  Only tokens with x >= floor
 * take part.  If relative, the target is `target` times the total weight.
 * Returns the key of the selected value.
 *
 * A first pass finds the range of the keys taking part: the bits above
 * their highest difference are known at once, and the levels choose only
 * the rest (gathered candidates lie in a narrow range, so their top digits
 * are all alike).  Masses go to TP_MASS_COPIES interleaved histograms, so
 * that tokens falling in one bin do not each wait for the addition before.
 */
static uint32_t weighted_select(const float *x, const float *weights, int64_t n, float floor,
                                float max, double inv_t, double target, int relative,
                                tp_workspace *ws)
{
    const int by_mass = inv_t != 0.0;
    const tp_exparg a = tp_exp_setup(max, TP_LOG2E * inv_t);
    const int width = n <= TP_SHORT_ROW ? 8 : 11;

    uint32_t kmin = UINT32_MAX, kmax = 0;
    for (int64_t i = 0; i < n; i++) {
        const uint32_t key = tp_key(x[i]);
        if (x[i] >= floor) {
            kmin = key < kmin ? key : kmin;
            kmax = key > kmax ? key : kmax;
        }
    }
    if (kmin > kmax)  /* nothing takes part: cannot happen for checked rows */
        return tp_key(floor);
    int low = 0;  /* the bits still to choose: those below the highest difference */
    for (uint32_t diff = kmin ^ kmax; diff; diff >>= 1)
        low++;
    uint32_t prefix = low == 32 ? 0u : kmin >> low << low;

    for (int first = 1; low > 0; first = 0) {
        const int bits = low < width ? low : width, shift = low - bits, nbins = 1 << bits;
        const uint32_t pmask = low == 32 ? 0u : ~0u << low, dmask = (uint32_t)nbins - 1u;

        if (by_mass) {
            double *copies = ws->mass_copies;
            memset(copies, 0, TP_MASS_COPIES * (size_t)nbins * sizeof copies[0]);
            for (int64_t i = 0; i < n; i++) {
                const uint32_t key = tp_key(x[i]);
                if (x[i] >= floor && (key & pmask) == prefix)
                    copies[TP_MASS_COPIES * ((key >> shift) & dmask) + (uint32_t)(i % TP_MASS_COPIES)] +=
                        weights ? weights[i] : tp_exp_apply(x[i], &a);
            }
            merge_mass_copies(copies, nbins, ws);
        } else {
            memset(ws->count, 0, (size_t)nbins * sizeof ws->count[0]);
            for (int64_t i = 0; i < n; i++) {
                const uint32_t key = tp_key(x[i]);
                if (x[i] >= floor && (key & pmask) == prefix)
                    ws->count[(key >> shift) & dmask]++;
            }
            for (int b = 0; b < nbins; b++)
                ws->mass[b] = (double)ws->count[b];
        }

        if (relative && first) {
            double total = 0.0;
            for (int b = nbins - 1; b >= 0; b--)
                total += ws->mass[b];
            target *= total;
        }

        double above;
        const int chosen = crossing_bin(ws, nbins, target, &above);
        if (chosen < 0)  /* nothing with positive weight: cannot happen for checked rows */
            return prefix;
        target -= above;
        prefix |= (uint32_t)chosen << shift;
        low = shift;
    }
    return prefix;
}

/* The k-th largest of x[0..n) for k <= TP_SMALL_K: the k largest so far,
 * kept in descending order; most values fall below the last and cost one
 * comparison.  (x holds no NaN.) */
#define TP_SMALL_K 64
static float kth_largest_small(const float *x, int64_t n, int64_t k)
{
    float top[TP_SMALL_K];
    int64_t have = 0;
    for (int64_t i = 0; i < n; i++) {
        const float v = x[i];
        if (have == k && !(v > top[k - 1]))
            continue;
        int64_t j = have < k ? have++ : k - 1;  /* the place v takes, moved up */
        for (; j > 0 && top[j - 1] < v; j--)
            top[j] = top[j - 1];
        top[j] = v;
    }
    return top[k - 1];
}

/* A pivot for rank k of x[0..n) (the k-th largest): on short inputs the
 * median of 3; on longer ones the value of a sorted sample of 32 at the
 * rank where the k-th largest would be, four places lower, so that the
 * round most likely keeps a little more than k values above the pivot and
 * hands the next round only those (a median pivot would take a few rounds
 * to get there when k is far from n / 2, as for top-k). */
#define TP_PIVOT_SAMPLE 32
static float quickselect_pivot(const float *x, int64_t n, int64_t k)
{
    if (n < 12 * TP_PIVOT_SAMPLE) {
        const float a = x[0], b = x[n / 2], d = x[n - 1];
        return a < b ? (b < d ? b : (a < d ? d : a)) : (a < d ? a : (b < d ? d : b));
    }
    float s[TP_PIVOT_SAMPLE];  /* descending */
    const int64_t stride = n / TP_PIVOT_SAMPLE;
    for (int j = 0; j < TP_PIVOT_SAMPLE; j++) {
        const float v = x[j * stride];
        int i = j;
        for (; i > 0 && s[i - 1] < v; i--)
            s[i] = s[i - 1];
        s[i] = v;
    }
    int64_t r = k * TP_PIVOT_SAMPLE / n + 4;  /* 0-based rank in the sample */
    return s[r < TP_PIVOT_SAMPLE ? r : TP_PIVOT_SAMPLE - 1];
}

/* The k-th largest of x[0..n) for n <= TP_CAND_CAP, by quickselect without
 * branches on the data: each round reads the values left and writes those
 * above a pivot to the front of a scratch buffer and those below it to the
 * back (every value is stored at both ends, and only the count of the side
 * it belongs to moves), counting the equal ones in between.  Then the side
 * holding rank k is the next round's input, in the other buffer, or the
 * pivot is the answer.  The scratch is ws->cand_e and ws->mass_copies, which
 * no caller passes as x.  Rounds that shrink too little (a pattern that
 * defeats the pivot) hand the rest to the radix select, so the
 * cost stays linear.  (x holds no NaN.) */
static float kth_largest_quickselect(const float *x, int64_t n, int64_t k, tp_workspace *ws)
{
    float *const buf[2] = {ws->cand_e, (float *)ws->mass_copies};
    const float *src = x;
    int64_t budget = 4 * n;  /* values all rounds may read before the fallback */
    for (int round = 0;; round++) {
        if (n <= 2 || budget < n) {
            if (n == 1)
                return src[0];
            if (n == 2 && budget >= n) {
                const float hi = src[0] > src[1] ? src[0] : src[1];
                const float lo = src[0] > src[1] ? src[1] : src[0];
                return k == 1 ? hi : lo;
            }
            return tp_unkey(weighted_select(src, NULL, n, -INFINITY, 0.0f, 0.0, (double)k, 0, ws));
        }
        budget -= n;
        const float pivot = quickselect_pivot(src, n, k);
        float *dst = buf[round & 1];
        int64_t above = 0, top = n - 1;  /* dst[0..above) > pivot, dst(top..n) < pivot */
        for (int64_t i = 0; i < n; i++) {
            const float v = src[i];
            dst[above] = v;
            dst[top] = v;
            above += v > pivot;
            top -= v < pivot;
        }
        const int64_t below = n - 1 - top, equal = n - above - below;
        if (k <= above) {
            n = above;
        } else if (k <= above + equal) {
            return pivot;
        } else {
            k -= above + equal;
            dst += top + 1;
            n = below;
        }
        src = dst;
    }
}

/* The k-th largest of x[0..n) for n <= TP_BISECT_MAX, by bisection on a
 * signed integer key that orders like the floats (-0.0 and +0.0 as one).
 * [lo, hi] holds the answer and both ends are keys of x: at least k keys
 * reach lo, fewer than k exceed hi.  Each pass, a loop compilers vectorize
 * with no branch on the data, counts the keys at or above a midpoint and
 * finds the nearest key on either side of it, so the interval closes onto
 * keys of x, and a count of exactly k ends the search.  The first passes
 * split the interval by value, which finds the gap below the k-th largest of
 * logits in about ten; later ones by key, at most 32 more whatever the
 * values.  On short rows this beats quickselect, whose rounds are short and
 * whose pivots are often poor.  (x holds no NaN.) */
#define TP_BISECT_MAX 1024
#define TP_BISECT_BY_VALUE 12

/* tp_key with its top bit flipped: a signed key, which vectors compare. */
static inline int32_t bisect_key(float v) { return (int32_t)(tp_key(v) ^ 0x80000000u); }
static inline float bisect_unkey(int32_t b) { return tp_unkey((uint32_t)b ^ 0x80000000u); }

static float kth_largest_bisect(const float *x, int64_t n, int64_t k)
{
    int32_t key[TP_BISECT_MAX];
    int32_t lo = INT32_MAX, hi = INT32_MIN;
    for (int64_t i = 0; i < n; i++) {
        const int32_t b = bisect_key(x[i]);
        key[i] = b;
        lo = b < lo ? b : lo;
        hi = b > hi ? b : hi;
    }
    for (int pass = 0; lo < hi; pass++) {
        int32_t mid = (int32_t)(lo + ((int64_t)hi - lo + 1) / 2);  /* lo < mid <= hi */
        if (pass < TP_BISECT_BY_VALUE) {
            const float a = bisect_unkey(lo), b = bisect_unkey(hi);
            const float m = 0.5f * a + 0.5f * b;  /* -inf at -inf, and never overflows */
            if (m > a && m <= b)
                mid = bisect_key(m);
        }
        int32_t count = 0, above = INT32_MAX, below = INT32_MIN;
        for (int64_t i = 0; i < n; i++) {
            const int32_t b = key[i];
            const int32_t up = -(int32_t)(b >= mid);  /* all ones, or 0 */
            const int32_t a = (b & up) | (INT32_MAX & ~up), c = (b & ~up) | (INT32_MIN & up);
            count -= up;
            above = a < above ? a : above;
            below = c > below ? c : below;
        }
        if (count >= k) {  /* the smallest key at or above mid is reached by count keys */
            lo = above;
            if (count == k)
                hi = above;
        } else {           /* the largest key below mid is exceeded by count keys */
            hi = below;
        }
    }
    return bisect_unkey(lo);
}

/* The k-th largest of x[0..n) (1 <= k <= n), which must not be
 * ws->cand_e or ws->mass_copies.  A few largest of many values are kept in
 * a short sorted array, where most values cost one comparison; more of
 * few by bisection, of fewer than TP_CAND_CAP by quickselect; the rest by
 * the radix select. */
static float tp_kth_largest_f32(const float *x, int64_t n, int64_t k, tp_workspace *ws)
{
    if (k <= 16 || (k <= TP_SMALL_K && n > TP_CAND_CAP))
        return kth_largest_small(x, n, k);
    if (n <= TP_BISECT_MAX)
        return kth_largest_bisect(x, n, k);
    if (n <= TP_CAND_CAP)
        return kth_largest_quickselect(x, n, k, ws);
    return tp_unkey(weighted_select(x, NULL, n, -INFINITY, 0.0f, 0.0, (double)k, 0, ws));
}

/* ---- candidates ------------------------------------------------------------
 * Most rows keep few tokens, and a cheap bound often tells which tokens could
 * be kept at all: one vectorized compare pass gathers them (value and id, in
 * ascending id) into the workspace, and the exact selection then runs on the
 * gathered few instead of the row.  When a bound lets too many through, the
 * selection falls back to the radix select over the whole row. */

/* Appends the tokens of the set bits of hits (lanes of the vector at i) to
 * the candidates, with their exponentials from ev (those of the vector's
 * lanes) if ev is not NULL; false when they would pass TP_CAND_CAP. */
static inline int gather_hits(const float *x, const float *ev, int64_t i, uint32_t hits,
                              tp_workspace *ws, int64_t *c)
{
    for (; hits; hits &= hits - 1) {
        if (*c == TP_CAND_CAP)
            return 0;
        const int lane = tp_lowest_bit(hits);
        ws->cand_x[*c] = x[i + lane];
        if (ev)
            ws->cand_e[*c] = ev[lane];
        ws->cand_id[(*c)++] = i + lane;
    }
    return 1;
}

/* Appends every x[i] >= lo (and, if bounded, <= hi) for i in [from, to), in
 * ascending i, to the *c candidates (with their exponentials e[i - from] if
 * e is not NULL); false past TP_CAND_CAP.  Two vectors a step: most have no
 * hit, and then cost two compares and a branch, and the hits of the others
 * one branch each.  Without ids, the packing below may leave the ids out.
 *
 * Where hits are dense (a band of a few percent of the row, so that most
 * steps have some), an instruction set that packs lanes (TP_VCOMPRESS)
 * appends a vector's hits at once instead, without a branch per hit.  Where
 * they are sparse, the packing's six vector stores cost more than the
 * branches. */
TP_FORCE_INLINE int gather_range(const float *x, const float *e, int64_t from, int64_t to,
                                 float lo, float hi, int bounded, int dense, int ids,
                                 tp_workspace *ws, int64_t *c)
{
    const tp_vf vlo = vf_set1(lo), vhi = vf_set1(hi);
    int64_t i = from;
    (void)dense;
    (void)ids;
#if TP_VCOMPRESS
    /* while there is room for two whole vectors; a loop of its own, as one
     * loop choosing per step between packing and gather_hits measured a
     * third slower on flat top-p (V=128256: 156 against 119 us).  The count
     * and the lists are held in locals: through *c and ws, each store of an
     * id (an int64_t, as *c is) would make the compiler reload them. */
    if (dense) {
        int64_t got = *c;
        float *cx = ws->cand_x, *ce = ws->cand_e;
        int64_t *cid = ws->cand_id;
        for (; i + 2 * TP_VW <= to && got <= TP_CAND_CAP - 2 * TP_VW; i += 2 * TP_VW) {
            const tp_vf v0 = vf_load(x + i), v1 = vf_load(x + i + TP_VW);
            uint32_t h0 = vf_ge_bits(v0, vlo), h1 = vf_ge_bits(v1, vlo);
            if (bounded) {
                h0 &= vf_ge_bits(vhi, v0);
                h1 &= vf_ge_bits(vhi, v1);
            }
            if (h0 | h1) {
                const int64_t c1 = got + tp_bit_count(h0);
                const tp_vpack p0 = vf_pack(h0), p1 = vf_pack(h1);
                vf_compress_store(cx + got, p0, v0);
                vf_compress_store(cx + c1, p1, v1);
                if (e) {
                    vf_compress_store(ce + got, p0, vf_load(e + (i - from)));
                    vf_compress_store(ce + c1, p1, vf_load(e + (i - from) + TP_VW));
                }
                if (ids) {
                    vf_compress_ids(cid + got, p0, i);
                    vf_compress_ids(cid + c1, p1, i + TP_VW);
                }
                got = c1 + tp_bit_count(h1);
            }
        }
        *c = got;
    }
#endif
    for (; i + 2 * TP_VW <= to; i += 2 * TP_VW) {
        const tp_vf v0 = vf_load(x + i), v1 = vf_load(x + i + TP_VW);
        uint32_t h0 = vf_ge_bits(v0, vlo), h1 = vf_ge_bits(v1, vlo);
        if (bounded) {
            h0 &= vf_ge_bits(vhi, v0);
            h1 &= vf_ge_bits(vhi, v1);
        }
        const float *ev = e ? e + (i - from) : NULL;
        if ((h0 | h1)
            && !(gather_hits(x, ev, i, h0, ws, c)
                 && gather_hits(x, ev ? ev + TP_VW : NULL, i + TP_VW, h1, ws, c)))
            return 0;
    }
    for (; i < to; i++)
        if (x[i] >= lo && (!bounded || x[i] <= hi)
            && !gather_hits(x, e ? e + (i - from) : NULL, i, 1u, ws, c))
            return 0;
    return 1;
}

/* Gathers every x[i] in [lo, hi]; returns their number, or -1 past
 * TP_CAND_CAP. */
static int64_t gather_between(const float *x, int64_t n, float lo, float hi, tp_workspace *ws)
{
    int64_t c = 0;
    return gather_range(x, NULL, 0, n, lo, hi, 1, 1, 1, ws, &c) ? c : -1;
}

static int64_t gather_at_least(const float *x, int64_t n, float t, tp_workspace *ws)
{
    int64_t c = 0;
    return gather_range(x, NULL, 0, n, t, INFINITY, 0, 0, 1, ws, &c) ? c : -1;
}

/* The length of the runs of a row of n tokens whose sums ws->run_sum holds:
 * TP_CHUNK tokens (16 KB of logits and exponentials, in L1 while a pass
 * works on them), or a multiple on rows of over TP_RADIX_BINS such runs. */
static int64_t run_length(int64_t n)
{
    int64_t per = TP_CHUNK;
    while ((n + per - 1) / per > TP_RADIX_BINS)
        per *= 2;
    return per;
}

/* A sample of m values (a multiple of 16, 16 <= m <= n) of a row of n
 * tokens into dst: runs of 16 consecutive logits (a cache line each, where
 * the row is aligned), spread evenly, so that it costs m / 16 cache lines
 * of the row where a strided sample would cost up to m. */
static void sample_runs(const float *x, int64_t n, int64_t m, float *dst)
{
    const int64_t runs = m / 16, stride = n / runs;
    for (int64_t r = 0; r < runs; r++)
        memcpy(dst + 16 * r, x + r * stride, 16 * sizeof(float));
}

/* Whether token i of the row is in its sample_runs sample of m values. */
static int in_sample_runs(int64_t n, int64_t m, int64_t i)
{
    const int64_t runs = m / 16, stride = n / runs, run = i / stride;
    return run < runs && i - run * stride < 16;
}

/* Keeps the candidates >= t, in order; returns how many remain. */
static int64_t filter_candidates(tp_workspace *ws, int64_t c, float t)
{
    int64_t kept = 0;
    for (int64_t j = 0; j < c; j++) {
        if (ws->cand_x[j] >= t) {
            ws->cand_x[kept] = ws->cand_x[j];
            ws->cand_id[kept++] = ws->cand_id[j];
        }
    }
    return kept;
}

/* gather_between, and in the same pass (a chunk at a time, while it is in
 * L1) *above = the number of x[i] > hi. */
static int64_t gather_band_count_above(const float *x, int64_t n, float lo, float hi,
                                       tp_workspace *ws, int64_t *above)
{
    const float past_hi = nextafterf(hi, INFINITY);
    const tp_vf vpast = vf_set1(past_hi);
    int64_t c = 0, count = 0;
    for (int64_t at = 0; at < n; at += TP_CHUNK) {
        const int64_t end = n - at < TP_CHUNK ? n : at + TP_CHUNK;
        int64_t i = at;
        for (; i + TP_VW <= end; i += TP_VW)
            count += tp_bit_count(vf_ge_bits(vf_load(x + i), vpast));
        for (; i < end; i++)
            count += x[i] >= past_hi;
        if (!gather_range(x, NULL, at, end, lo, hi, 1, 1, 1, ws, &c))
            return -1;
    }
    *above = count;
    return c;
}

/* The k-th largest of a row for k too large for the small-k shortcut (more
 * than a few percent of the row): a strided sample of m values estimates the
 * sample ranks around k m / n, 4 standard errors (of a binomial count) either
 * way, and their values [lo, hi] bound a band of the row.  One pass counts
 * the tokens above hi and gathers the band; if the k-th largest lies in the
 * band, it is selected there exactly (returns 1).  Otherwise (an unlucky or
 * misleading sample, or a band too full to gather) returns 0. */
static int kth_largest_by_band(const float *x, int64_t n, int64_t k, tp_workspace *ws,
                               float *kth)
{
    const int64_t m = n / 16 < 4 * TP_SAMPLE_SIZE ? n / 16 : 4 * TP_SAMPLE_SIZE;
    const int64_t stride = n / m;
    float *v = ws->cand_x;  /* free until the band is gathered */
    for (int64_t j = 0; j < m; j++)
        v[j] = x[j * stride];
    const double p = (double)k / (double)n, rank = p * (double)m;
    const double margin = 4.0 * sqrt((double)m * p * (1.0 - p)) + 4.0;
    const int64_t r_hi = (int64_t)floor(rank - margin), r_lo = (int64_t)ceil(rank + margin);
    const float hi = r_hi >= 1 ? kth_largest_quickselect(v, m, r_hi, ws) : INFINITY;
    const float lo = r_lo <= m ? kth_largest_quickselect(v, m, r_lo, ws) : -INFINITY;
    int64_t above;
    const int64_t c = gather_band_count_above(x, n, lo, hi, ws, &above);
    if (c <= 0 || !(above < k && k <= above + c))
        return 0;
    *kth = tp_kth_largest_f32(ws->cand_x, c, k - above, ws);
    return 1;
}

/* The block maxima route of top_k_candidates: the row is cut into blocks
 * of bs tokens (a power of two, at least 32), about TP_TOP_BLOCKS of them,
 * at least 8 k and at most TP_SAMPLE_SIZE, and one pass stores each block's
 * max in ws->sample.  The k-th largest of those, t, bounds the row's k-th
 * largest from below (k blocks have a token >= t),
 * and every token >= t lies in a block whose max is >= t: those blocks, k
 * or a few more, are all that is gathered.  The only branches that depend
 * on where the row's large logits lie are one per block, taken about k
 * times, and those of the gather in the blocks taken.  Returns the number
 * of candidates (every token >= t, at least k), or -1 past TP_CAND_CAP
 * (ties or -inf filling most blocks). */
#define TP_TOP_BLOCKS 512
static int64_t gather_top_blocks(const float *x, int64_t n, int64_t k, int64_t bs,
                                 const tp_rowstat *st, tp_workspace *ws)
{
    const int64_t nb = (n + bs - 1) / bs;
    const float *bmax = st->bmax;
    if (!bmax || st->bmax_bs != bs) {  /* the checking pass did not leave them */
        tp_rowstat again;
        scan_blocks(x, n, bs, ws->sample, &again);
        bmax = ws->sample;
    }
    const float t = tp_kth_largest_f32(bmax, nb, k, ws);
    int64_t c = 0;
    for (int64_t b = 0; b < nb; b++) {
        const int64_t end = (b + 1) * bs < n ? (b + 1) * bs : n;
        if (bmax[b] >= t && !gather_range(x, NULL, b * bs, end, t, INFINITY, 0, 0, 1, ws, &c))
            return -1;
    }
    return c;
}

/* The size of the blocks of gather_top_blocks for top-k of k (0 < k < n) on
 * a row of n tokens: about TP_TOP_BLOCKS blocks, more if k needs them, but
 * at most TP_SAMPLE_SIZE; 0 where the route does not apply (short rows, k
 * over an eighth of the blocks). */
static int64_t top_k_block_size(int64_t n, int64_t k)
{
    int64_t bs = 32;
    while (n > bs * TP_SAMPLE_SIZE || (n > bs * TP_TOP_BLOCKS && n / (2 * bs) >= 8 * k))
        bs *= 2;
    return n >= 4 * TP_SAMPLE_SIZE && k <= n / bs / 8 ? bs : 0;
}

/* scan_top_k: the checking pass, which for a row that top-k's block route
 * will filter also stores the block maxima it reads, in ws->sample; for
 * any other k (0 for none), the plain checking pass. */
static int tp_scan_top_k_f32(const float *x, int64_t n, int64_t k, tp_workspace *ws,
                             tp_rowstat *st)
{
    const int64_t bs = k > 0 && k < n ? top_k_block_size(n, k) : 0;
    if (!bs)
        return scan_blocks(x, n, TP_SCAN_BLOCK, NULL, st);
    const int code = scan_blocks(x, n, bs, ws->sample, st);
    if (code == TP_OK) {
        st->bmax = ws->sample;
        st->bmax_bs = bs;
    }
    return code;
}

/* The k-th largest logit into *kth, exactly, and the candidates >= it:
 * returns their number, or -1 when they are too many to list.
 *
 * For k up to an eighth of the blocks of gather_top_blocks, the blocks whose
 * maxima are among the k largest hold the candidates.  For larger k up to
 * n / 16, a sample of the row estimates a threshold that a few times k
 * tokens pass; if at least k pass, the k-th largest is among them.  Larger
 * k on long rows go by kth_largest_by_band; the rest, and the rare
 * candidate lists too long or too short, by a selection over the row. */
static int64_t top_k_candidates(const float *x, int64_t n, int64_t k, const tp_rowstat *st,
                                tp_workspace *ws, float *kth)
{
    const int64_t bs = top_k_block_size(n, k);
    if (bs) {
        const int64_t c = gather_top_blocks(x, n, k, bs, st, ws);
        if (c >= k) {
            *kth = tp_kth_largest_f32(ws->cand_x, c, k, ws);
            return filter_candidates(ws, c, *kth);
        }
    } else if (n >= 4 * TP_SAMPLE_SIZE && k <= n / 16) {
        sample_runs(x, n, TP_SAMPLE_SIZE, ws->sample);
        /* expect about twice k above the estimate, and at least 8 runs' worth */
        const int64_t r = (int64_t)(2.0 * (double)k * TP_SAMPLE_SIZE / (double)n) + 8;
        const float estimate = tp_kth_largest_f32(ws->sample, TP_SAMPLE_SIZE, r, ws);
        const int64_t c = gather_at_least(x, n, estimate, ws);
        if (c >= k) {
            *kth = tp_kth_largest_f32(ws->cand_x, c, k, ws);
            return filter_candidates(ws, c, *kth);
        }
    } else if (n >= 4 * TP_SAMPLE_SIZE && n > TP_CAND_CAP && kth_largest_by_band(x, n, k, ws, kth)) {
        return -1;  /* too many to list: a compare pass costs less than gathering them */
    }
    *kth = tp_kth_largest_f32(x, n, k, ws);
    return gather_at_least(x, n, *kth, ws);
}

/* weighted_select by mass for a few values, in place: val[0..c) with their
 * weights wt[0..c), all positive.  A three-way partition around a pivot,
 * recursing into the side where the mass reaches the target; if rounding
 * leaves the total short of the target, the smallest value. */
static float partition_select(float *val, float *wt, int64_t c, double target)
{
    double above = 0.0;   /* the mass of the values above those left */
    float lowest = -INFINITY;
    while (c > 0) {
        const float a = val[0], b = val[c / 2], d = val[c - 1];  /* pivot: median of 3 */
        const float pivot = a < b ? (b < d ? b : (a < d ? d : a)) : (a < d ? a : (b < d ? d : b));
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

/* weighted_select by mass for at most TP_SMALL_SELECT values: those of
 * positive weight (as in the radix select) are copied to scratch
 * (2 * TP_SMALL_SELECT floats) and partitioned there. */
#define TP_SMALL_SELECT (TP_SAMPLE_SIZE / 2)
static float select_by_mass_small(const float *v, const float *w, int64_t n, double target,
                                  float *scratch)
{
    float *val = scratch, *wt = scratch + TP_SMALL_SELECT;
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
 * share one.  Computed a block at a time in a loop compilers vectorize. */
#define TP_VALUE_BINS 512
#define TP_BLOCK_BINS 256   /* values whose bins are computed at once */
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
/* weighted_select by mass for more values than select_by_mass_small takes,
 * where the instruction set does not pack lanes (select_by_partition does
 * it where it does) (the candidates of a wide nucleus: a few thousand, in a
 * narrow range): one
 * pass histograms their mass into bins of equal width in value, the walk
 * finds the bin where the mass from the top reaches the target, and the
 * partition finishes on that bin's few values.  Returns 0, leaving the work
 * to the radix select, for values spread too wide or too narrow for float
 * bins (wider than 1e38, or with -inf; a few float steps near 0) or crowded
 * into one bin (such as ties). */
static int select_by_value_bins(const float *v, const float *w, int64_t n, double target,
                                tp_workspace *ws, float *result)
{
    float lo, hi;
    value_range(v, n, &lo, &hi);
    if (!(lo < hi) || !(hi - lo < 1e38f))
        return 0;
    const float scale = (float)(TP_VALUE_BINS - 1) / (hi - lo);
    if (!(scale < INFINITY))  /* values a few float steps apart, near 0 */
        return 0;
    int32_t bin[TP_BLOCK_BINS];
    double *copies = ws->mass_copies;
    memset(copies, 0, TP_MASS_COPIES * (size_t)(TP_VALUE_BINS + 1) * sizeof copies[0]);
    for (int64_t at = 0; at < n; at += TP_BLOCK_BINS) {
        const int64_t m = n - at < TP_BLOCK_BINS ? n - at : TP_BLOCK_BINS;
        value_bins(v + at, w + at, m, lo, scale, bin);
        for (int64_t j = 0; j < m; j++)
            copies[TP_MASS_COPIES * bin[j] + (j % TP_MASS_COPIES)] += w[at + j];
    }
    merge_mass_copies(copies, TP_VALUE_BINS, ws);
    double above;
    const int32_t chosen = crossing_bin(ws, TP_VALUE_BINS, target, &above);
    if (chosen < 0)
        return 0;

    float *val = ws->sample, *wt = ws->sample + TP_SMALL_SELECT;
    int64_t c = 0;
    for (int64_t at = 0; at < n; at += TP_BLOCK_BINS) {
        const int64_t m = n - at < TP_BLOCK_BINS ? n - at : TP_BLOCK_BINS;
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
    for (int i = 1; i < got; i++)  /* insertion sort */
        for (int j = i; j > 0 && pick[j - 1] > pick[j]; j--) {
            const float t = pick[j];
            pick[j] = pick[j - 1];
            pick[j - 1] = t;
        }
    *median = pick[got / 2];
    return 1;
}

/* Packs the values of positive weight above pivot (if above) or below it
 * (if not), with their weights, from v and w into dv and dw, in order;
 * returns their number.  dv and dw may be v and w themselves. */
static int64_t pack_side(const float *v, const float *w, int64_t c, float pivot, int above,
                         float *dv, float *dw)
{
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

/* weighted_select by mass for more values than select_by_mass_small takes,
 * where the instruction set packs lanes: a quickselect by mass, with
 * vector passes.  A round takes the median of nine values spread over the
 * list as pivot, sums the mass at and above it, and packs the side where
 * the mass from the top reaches the target into ws->part (the values of
 * positive weight only); select_by_mass_small finishes once the list is
 * short.  The list of v and w itself is left as it is.  Returns 0 (for
 * the radix select) when the list has no weight where the pivot is looked
 * for, or when rounds shrink it too little (pivots that an order of the
 * values defeats), so that the cost stays linear. */
static int select_by_partition(const float *v, const float *w, int64_t c, double target,
                               tp_workspace *ws, float *result)
{
    float *pv = ws->part, *pw = ws->part + TP_CAND_CAP;
    double above = 0.0;  /* the mass of the values above the list */
    float lowest = -INFINITY;  /* the smallest value of weight above the list */
    int64_t budget = 4 * c;  /* values all rounds may read before the fallback */
    while (c > TP_SMALL_SELECT) {
        float pivot;
        double ge, gt;
        budget -= c;
        if (budget < 0 || !spread_median(v, w, c, &pivot))
            return 0;
        ge = sum_stored_store(v, w, c, pivot, NULL);  /* the mass at and above the pivot */
        gt = sum_stored_store(v, w, c, nextafterf(pivot, INFINITY), NULL);
        if (above + gt >= target) {
            c = pack_side(v, w, c, pivot, 1, pv, pw);
        } else if (above + ge >= target) {
            *result = pivot;
            return 1;
        } else {
            above += ge;
            lowest = pivot;
            c = pack_side(v, w, c, pivot, 0, pv, pw);
        }
        v = pv;
        w = pw;
    }
    const float t = select_by_mass_small(v, w, c, target - above, ws->sample);
    *result = t > -INFINITY ? t : lowest;
    return 1;
}
#endif

/* Among the c gathered candidates, whose exponentials are in ws->cand_e, the
 * smallest logit whose mass from the top reaches target. */
static float select_stored_candidates(int64_t c, float floor, float max, double inv_t,
                                      double target, tp_workspace *ws)
{
    float t;
    if (c <= TP_SMALL_SELECT)
        return select_by_mass_small(ws->cand_x, ws->cand_e, c, target, ws->sample);
#if TP_VCOMPRESS
    if (select_by_partition(ws->cand_x, ws->cand_e, c, target, ws, &t))
        return t;
#else
    if (select_by_value_bins(ws->cand_x, ws->cand_e, c, target, ws, &t))
        return t;
#endif
    return tp_unkey(weighted_select(ws->cand_x, ws->cand_e, c, floor, max, inv_t, target, 0, ws));
}

/* Among the c gathered candidates (all >= floor), the smallest logit whose
 * mass from the top reaches target (a fraction of their total, if
 * relative); their exponentials are computed once, vectorized, rather than
 * at every radix level.  *z gets their total. */
static float select_candidates_by_mass(int64_t c, float floor, float max, double inv_t,
                                       double target, int relative, tp_workspace *ws, double *z)
{
    *z = sum_exp_store(ws->cand_x, c, max, TP_LOG2E * inv_t, floor, ws->cand_e);
    return select_stored_candidates(c, floor, max, inv_t, relative ? target * *z : target, ws);
}

/* Adds e[i] to the level-0 bin of x[i], in TP_MASS_COPIES interleaved
 * histograms: consecutive tokens of a flat row fall in the same few bins, so
 * with one histogram every addition would wait for the one before.  The bins
 * of a block are computed first, in a loop that compilers vectorize. */
static void add_level0_mass(const float *x, const float *e, int64_t len, double *copies)
{
    const int shift = TP_LEVEL0_SHIFT;
    uint32_t bin[TP_BLOCK];
    for (int64_t lo = 0; lo < len; lo += TP_BLOCK) {
        const int64_t m = len - lo < TP_BLOCK ? len - lo : TP_BLOCK;
        for (int64_t j = 0; j < m; j++)
            bin[j] = TP_MASS_COPIES * (tp_key(x[lo + j]) >> shift) + (uint32_t)(j % TP_MASS_COPIES);
        for (int64_t j = 0; j < m; j++)
            copies[bin[j]] += e[lo + j];
    }
}

/* The smallest and largest of the values v[j] of positive weight w[j]
 * (values below the floor and -inf have weight 0): value_range, and a
 * scalar pass over them when the smallest has no weight. */
static void weighted_value_range(const float *v, const float *w, int64_t n, float floor,
                                 float *lo, float *hi)
{
    value_range(v, n, lo, hi);
    if (*lo >= floor && *lo > -INFINITY)
        return;
    float bottom = INFINITY;
    for (int64_t j = 0; j < n; j++)
        bottom = w[j] > 0.0f && v[j] < bottom ? v[j] : bottom;
    *lo = bottom;
}

/* From the sample of the row of n tokens (m values and their exponentials in
 * ws->cand_x and ws->cand_e, each standing for n / m tokens of the row), a
 * value range [*lo, *hi] that holds the sample's values of ranks r - half
 * to r + half from the top, where r estimates the sample rank of the
 * nucleus boundary: the tokens below it hold 1 - top_p of the row's mass z,
 * and the sample's tokens below r estimate that mass.  (Estimated from the
 * bottom, where each token weighs little, the rank errs far less than from
 * the sample's own total at low temperatures; but z is known only once a
 * pass has summed the row, and z <= 0 takes the sample's total times n / m
 * instead.)  The ranks come from a histogram of the sample in
 * TP_VALUE_BINS bins of equal width (counts and mass); each end of the
 * range is widened to the edge of the bin holding its rank.  Returns 0
 * when the sample has no mass or spans too wide or too narrow a range for
 * bins. */
static int sample_band(int64_t n, int64_t m, float floor, float max, double top_p, double z,
                       int64_t half, tp_workspace *ws, float *lo, float *hi)
{
    enum { NB = TP_VALUE_BINS };
    const float *v = ws->cand_x, *w = ws->cand_e;
    float bottom, top;
    weighted_value_range(v, w, m, floor, &bottom, &top);
    if (!(bottom < top) || !(top - bottom < 1e38f))
        return 0;
    const float scale = (float)(NB - 1) / (top - bottom);
    if (!(scale < INFINITY))
        return 0;

    /* counts and mass of each bin (NB: the values of no weight), in
     * TP_MASS_COPIES interleaved histograms, as in select_by_value_bins */
    int32_t bin[TP_BLOCK_BINS], counts[TP_MASS_COPIES * (NB + 1)];
    double *copies = ws->mass_copies;
    memset(counts, 0, sizeof counts);
    memset(copies, 0, TP_MASS_COPIES * (size_t)(NB + 1) * sizeof copies[0]);
    for (int64_t at = 0; at < m; at += TP_BLOCK_BINS) {
        const int64_t len = m - at < TP_BLOCK_BINS ? m - at : TP_BLOCK_BINS;
        value_bins(v + at, w + at, len, bottom, scale, bin);
        for (int64_t j = 0; j < len; j++) {
            const int32_t k = TP_MASS_COPIES * bin[j] + (int32_t)(j % TP_MASS_COPIES);
            copies[k] += w[at + j];
            counts[k]++;
        }
    }
    merge_mass_copies(copies, NB, ws);
    int64_t *count = ws->count, weighted = 0;
    double total = 0.0;
    for (int b = 0; b < NB; b++) {
        count[b] = 0;
        for (int j = 0; j < TP_MASS_COPIES; j++)
            count[b] += counts[TP_MASS_COPIES * b + j];
        weighted += count[b];
        total += ws->mass[b];
    }
    if (!(total > 0.0))
        return 0;
    if (!(z > 0.0))
        z = total * ((double)n / (double)m);

    /* the crossing rank r, interpolated within its bin */
    const double part = total - (1.0 - top_p) * z * ((double)m / (double)n);
    int64_t r = 0;
    if (part > 0.0) {
        double above;
        const int crossing = crossing_bin(ws, NB, part, &above);
        if (crossing < 0)
            return 0;
        for (int b = NB - 1; b > crossing; b--)
            r += count[b];
        const double within = (part - above) / ws->mass[crossing];
        r += (int64_t)((double)count[crossing] * (within < 1.0 ? within : 1.0));
    }

    /* the bins of ranks r - half and r + half (-1 past either end) */
    int b_hi = -1, b_lo = -1;
    int64_t ranked = 0;
    for (int b = NB - 1; b >= 0 && b_lo < 0; b--) {
        if (count[b] == 0)
            continue;
        ranked += count[b];
        if (b_hi < 0 && ranked > r - half && r - half >= 0)
            b_hi = b;
        if (ranked > r + half && r + half < weighted)
            b_lo = b;
    }
    /* the edges of those bins, as nearly as float arithmetic gives them:
     * the band need not be exact, as the caller checks it */
    *hi = b_hi >= 0 ? bottom + (float)(b_hi + 1) / scale : max;
    const float lo_v = bottom + (float)b_lo / scale;
    *lo = b_lo >= 0 && lo_v > floor ? lo_v : floor;
    return 1;
}

/* Completes ws->run_sum, which holds the mass above the band of each run of
 * per tokens of a row of n, to the kept mass: adds the band's candidates
 * >= t, a run's at a time (those of run r start at ws->run_first[r], and
 * all c end at c), and sets ws->run_per. */
static void add_band_to_runs(int64_t n, int64_t c, float t, int64_t per, tp_workspace *ws)
{
    const int64_t runs = (n + per - 1) / per;
    for (int64_t r = 0; r < runs; r++) {
        const int64_t first = ws->run_first[r], end = r + 1 < runs ? ws->run_first[r + 1] : c;
        ws->run_sum[r] += sum_stored_store(ws->cand_x + first, ws->cand_e + first, end - first, t,
                                           NULL);
    }
    ws->run_per = per;
}

/* One pass over the row for a wide nucleus, a chunk of TP_CHUNK tokens at a
 * time, while the chunk is in L1: the sum of the exponentials over the
 * tokens >= floor to *z; the mass above hi of each run of run_length(n)
 * tokens to ws->run_sum, and in all to *above; and the tokens in [lo, hi]
 * to the candidates, values only (the caller computes their exponentials
 * again, and the run of each is known from ws->run_first, which is all
 * that is asked of their ids).  Returns the candidates' number, or -1 past
 * TP_CAND_CAP (the sums are complete either way). */
static int64_t band_pass(const float *x, int64_t n, float floor, float max, double k, float lo,
                         float hi, tp_workspace *ws, double *z, double *above)
{
    const float past_hi = nextafterf(hi, INFINITY);
    const int64_t per = run_length(n);  /* a multiple of TP_CHUNK */
    double total = 0.0, high = 0.0;
    int64_t c = 0;
    int room = 1;
    for (int64_t i = 0; i < n; i += TP_CHUNK) {
        const int64_t len = n - i < TP_CHUNK ? n - i : TP_CHUNK;
        if (i % per == 0) {
            ws->run_sum[i / per] = 0.0;
            ws->run_first[i / per] = c;
        }
        double sum, run;
#if TP_VARITH && TP_VCOMPRESS
        room = exp_band_chunk(x + i, len, max, k, floor, lo, past_hi, ws, room ? &c : NULL, &sum,
                              &run);
#else
        sum = sum_exp_store(x + i, len, max, k, floor, ws->chunk_e);
        run = sum_stored_store(x + i, ws->chunk_e, len, past_hi, NULL);
        room = room && gather_range(x, NULL, i, i + len, lo, hi, 1, 1, 0, ws, &c);
#endif
        total += sum;
        ws->run_sum[i / per] += run;
        high += run;
    }
    *z = total;
    *above = high;
    return room ? c : -1;
}

/* The nucleus boundary of a wide nucleus, bracketed from the row's sample
 * (m values and their exponentials in ws->cand_x and ws->cand_e): the sample
 * estimates where the mass from the top crosses top_p of the row's total
 * (*z if known, > 0, else estimated from the sample), and a band of sample
 * ranks around that crossing, small enough that the row's tokens within it
 * fit the candidate list, gives a value range [lo, hi].  One pass
 * (band_pass) sums the row and the mass above hi and gathers [lo, hi]; if
 * the crossing is indeed within, the candidates finish the selection
 * exactly and *t gets the threshold (returns 1).  Otherwise (an unlucky
 * sample, or a row that the sample misrepresents) it returns 0, with the
 * row's total in *z if the pass ran, and the histogram decides. */
static int bracketed_nucleus_threshold(const float *x, int64_t n, int64_t m, float floor,
                                       float max, double inv_t, double top_p, double *z,
                                       tp_workspace *ws, float *t)
{
    if (m < 16)
        return 0;
    const int64_t stride = n / m;
    /* Half the band's width in sample ranks.  On flat N(0, 1) rows
     * (T from 0.3 to 2, top_p from 0.5 to 0.99) the rank estimated with the
     * exact z errs by 10 to 26 sample ranks (standard deviation, simulated
     * for a strided sample of m = 4096; none of 1500 rows at T = 1,
     * top_p = 0.9 erred by 80), so the band spans 3 sqrt(m) / 2 ranks either
     * way (and each end is widened to a whole bin); but it holds at most 3/4
     * of TP_CAND_CAP tokens, each sample value standing for stride of them.
     * Estimated with z from the sample, the rank errs more at low T: of 40
     * flat rows of 128256 at T = 0.8 and top_p from 0.5 to 0.99, 1 missed
     * the band; at T = 0.3, 1 to 23 (retried with the exact z, none missed). */
    const int64_t by_error = 3 * (int64_t)sqrt((double)m) / 2;
    const int64_t by_room = (3 * TP_CAND_CAP / (4 * stride) - 1) / 2;
    const int64_t half = by_error < by_room ? by_error : by_room;
    float lo, hi;
    if (!sample_band(n, m, floor, max, top_p, *z, half, ws, &lo, &hi))
        return 0;

    double mass_above;
    const int64_t c = band_pass(x, n, floor, max, TP_LOG2E * inv_t, lo, hi, ws, z, &mass_above);
    const double target = top_p * *z;
    if (c <= 0 || !(mass_above < target))
        return 0;
    const double band = sum_exp_store(ws->cand_x, c, max, TP_LOG2E * inv_t, floor, ws->cand_e);
    if (!(mass_above + band >= target))
        return 0;
    *t = select_stored_candidates(c, floor, max, inv_t, target - mass_above, ws);
    add_band_to_runs(n, c, *t, run_length(n), ws);
    return 1;
}

/* The sample of a row of n tokens for top-p: about n / 16 logits, at most
 * 4 TP_SAMPLE_SIZE, in whole runs of 16; its values go to ws->cand_x and
 * their exponentials to ws->cand_e, and it returns their number, m (0 for
 * rows under 256 tokens).  Their sum is at most the row's total. */
static int64_t nucleus_sample(const float *x, int64_t n, float floor, float max, double k,
                              tp_workspace *ws, double *sum)
{
    int64_t m = n / 16 < 4 * TP_SAMPLE_SIZE ? n / 16 : 4 * TP_SAMPLE_SIZE;
    m -= m % 16;
    if (m > 0)
        sample_runs(x, n, m, ws->cand_x);
    *sum = sum_exp_store(ws->cand_x, m, max, k, floor, ws->cand_e);
    return m;
}

/* The nucleus of a row where it holds too many tokens to gather (flat
 * distributions), the sample of m values being in ws->cand_x and
 * ws->cand_e and the row's total z known if > 0: bracketed from the sample
 * if it can be, and if that fails with z unknown (its estimate from the
 * sample errs most at low temperatures), once more with the z that the
 * failed attempt's pass found.  Otherwise the first radix level runs over
 * the whole row, on exponentials computed a chunk at a time, and the tokens
 * of the one level-0 bin where the mass crosses the target are gathered by
 * value range and finished as candidates. */
static float wide_nucleus_threshold(const float *x, int64_t n, int64_t m, float floor, float max,
                                    double inv_t, double top_p, double z, tp_workspace *ws)
{
    const int shift = TP_LEVEL0_SHIFT, nbins = 1 << TP_LEVEL0_BITS;
    const double k = TP_LOG2E * inv_t;
    const int z_known = z > 0.0;
    float bracketed;
    if (bracketed_nucleus_threshold(x, n, m, floor, max, inv_t, top_p, &z, ws, &bracketed))
        return bracketed;
    if (!z_known && z > 0.0) {
        double sample_sum;
        m = nucleus_sample(x, n, floor, max, k, ws, &sample_sum);  /* the pass overwrote it */
        if (bracketed_nucleus_threshold(x, n, m, floor, max, inv_t, top_p, &z, ws, &bracketed))
            return bracketed;
    }
    if (!(z > 0.0))
        z = sum_exp(x, n, max, k, floor);
    double *copies = ws->mass_copies;
    memset(copies, 0, TP_MASS_COPIES * (size_t)nbins * sizeof copies[0]);
    for (int64_t i = 0; i < n; i += TP_CHUNK) {
        const int64_t len = n - i < TP_CHUNK ? n - i : TP_CHUNK;
        sum_exp_store(x + i, len, max, k, floor, ws->chunk_e);
        add_level0_mass(x + i, ws->chunk_e, len, copies);
    }
    merge_mass_copies(copies, nbins, ws);

    const double target = top_p * z;
    double above;
    const int chosen = crossing_bin(ws, nbins, target, &above);
    const uint32_t first = (uint32_t)chosen << shift, last = first | ((1u << shift) - 1u);
    float lo = tp_unkey(first), hi = tp_unkey(last);
    lo = lo > floor ? lo : floor;
    const int64_t c = chosen < 0 ? -1 : gather_between(x, n, lo, hi, ws);
    if (c <= 0)
        return tp_unkey(weighted_select(x, NULL, n, floor, max, inv_t, top_p, 1, ws));
    double listed_z;
    return select_candidates_by_mass(c, floor, max, inv_t, target - above, 0, ws, &listed_z);
}

/* Whether the row's sample (m values in v, each standing for n / m tokens)
 * says that clearly more than TP_CAND_CAP tokens are >= t (a gather would
 * fill the workspace, at some cost per token, only to give up).  On a row
 * whose neighbouring logits are independent the sample's count has a
 * standard error under 1.6% of n, so a margin of 25% of TP_CAND_CAP errs
 * rarely (runs of alike neighbours make it err more), and an error costs
 * only time: either way the selection is exact. */
static int surely_too_many(const float *v, int64_t m, int64_t n, float t)
{
    if (n <= TP_CAND_CAP || m == 0)
        return 0;
    int64_t hits = 0;
    for (int64_t j = 0; j < m; j++)
        hits += v[j] >= t;
    return 4 * hits * n > 5 * TP_CAND_CAP * m;
}

/* One pass of exponentials over the row: returns the sum of
 * exp((x - max) / T) over the tokens >= floor, and gathers every token
 * >= t (t >= floor) into the candidates, a chunk at a time while the chunk
 * is in L1; *c gets their number, or -1 past TP_CAND_CAP. */
static double sum_exp_gather(const float *x, int64_t n, float floor, float max, double k, float t,
                             tp_workspace *ws, int64_t *c)
{
    double z = 0.0;
    int64_t got = 0;
    int room = 1;
    for (int64_t i = 0; i < n; i += TP_CHUNK) {
        const int64_t len = n - i < TP_CHUNK ? n - i : TP_CHUNK;
        z += sum_exp(x + i, len, max, k, floor);
        room = room && gather_range(x, NULL, i, i + len, t, INFINITY, 0, 0, 1, ws, &got);
    }
    *c = room ? got : -1;
    return z;
}

/* The bound t0 of nucleus_threshold for a row of n tokens of mass z:
 * tokens below it hold less than half of 1 - top_p of z. */
static float nucleus_bound(int64_t n, float floor, float max, double inv_t, double top_p, double z)
{
    const double below = log(0.5 * (1.0 - top_p) * z / (double)n) / inv_t;
    const float t0 = nextafterf((float)((double)max + below), -INFINITY);
    return t0 > floor ? t0 : floor;
}

/* The smallest logit of the top-p nucleus among the tokens >= floor.
 * *c is the number of listed candidates (all tokens >= floor), or -1; on
 * return it lists a superset of the nucleus, or is -1 (and then, for the
 * draw, ws->run_sum holds the kept mass of each run, if ws->run_per > 0).
 *
 * The nucleus needs the row's total mass z, which takes a pass of
 * exponentials; the same pass gathers the tokens that may be in the
 * nucleus, so the row is read once more after the checking pass: those
 * above a bound t0 when they are few, or a band around the boundary (see
 * bracketed_nucleus_threshold) when a sample of the row says they are
 * many. */
static float nucleus_threshold(const float *x, int64_t n, float floor, float max,
                               int64_t argmax, double inv_t, double top_p, tp_workspace *ws,
                               int64_t *c)
{
    const double k = TP_LOG2E * inv_t;
    double z = 0.0, listed_z;
    if (*c >= 0)  /* the top-k candidates are the whole kept set */
        return select_candidates_by_mass(*c, floor, max, inv_t, top_p, 1, ws, &listed_z);

    /* Every token below t0 has probability below exp((t0 - max) / T), so all
     * of them together hold less than n times that: choose t0 so that this is
     * half of 1 - p of the mass z, and the nucleus lies above t0 (rounded
     * down, so that float rounding only lets more tokens through).  z is
     * known only after the pass, so t0 comes first from the sample's
     * estimate of z: the max's own 1, and the rest of the sample's sum times
     * n / m (the max, in the sample, would stand for n / m tokens as large).
     * The tokens >= t0 then hold the nucleus if their mass reaches top_p of
     * the exact z (with room for the rounding of the two sums), and if not
     * (the estimate was too high), they are gathered again from the t0 of
     * the exact z. */
    double sample_sum;
    int64_t m = nucleus_sample(x, n, floor, max, k, ws, &sample_sum);
    if (m > 0 && in_sample_runs(n, m, argmax))
        sample_sum -= 1.0;  /* the max's exponential, exactly 1 */
    const double rest = m > 0 && sample_sum > 0.0 ? sample_sum * ((double)n / (double)m) : 0.0;
    const float t0 = nucleus_bound(n, floor, max, inv_t, top_p, 1.0 + rest);
    if (!surely_too_many(ws->cand_x, m, n, t0)) {
        z = sum_exp_gather(x, n, floor, max, k, t0, ws, c);
        if (*c >= 0) {
            listed_z = sum_exp_store(ws->cand_x, *c, max, k, floor, ws->cand_e);
            if (listed_z >= top_p * z * (1.0 + 4e-7))
                return select_stored_candidates(*c, floor, max, inv_t, top_p * z, ws);
            *c = gather_at_least(x, n, nucleus_bound(n, floor, max, inv_t, top_p, z), ws);
            if (*c >= 0)
                return select_candidates_by_mass(*c, floor, max, inv_t, top_p * z, 0, ws,
                                                  &listed_z);
        }
        m = nucleus_sample(x, n, floor, max, k, ws, &sample_sum);  /* the gather overwrote it */
    }
    return wide_nucleus_threshold(x, n, m, floor, max, inv_t, top_p, z, ws);
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
    keep->ncand = -1;
    keep->cand_x = ws->cand_x;
    keep->cand_id = ws->cand_id;
    keep->run_sum = NULL;
    keep->run_per = 0;
    ws->run_per = 0;
    if (keep->greedy)
        return;

    float thr = -INFINITY;
    int64_t c = -1;  /* listed candidates: every token >= thr, or -1 */
    if (f->top_k > 0 && f->top_k < n)
        c = top_k_candidates(x, n, f->top_k, st, ws, &thr);
    if (f->top_p < 1.0) {
        float t = nucleus_threshold(x, n, thr, st->max, st->argmax, keep->inv_t, f->top_p, ws,
                                    &c);
        thr = t > thr ? t : thr;
    }
    if (f->min_p > 0.0) {
        float t = tp_min_p_threshold_f32(st->max, f->temperature, f->min_p);
        if (t > thr)
            ws->run_per = 0;  /* the run sums are of the tokens >= the nucleus's threshold */
        thr = t > thr ? t : thr;
    }
    if (ws->run_per > 0) {
        keep->run_sum = ws->run_sum;
        keep->run_per = ws->run_per;
    }
    keep->threshold = thr;
    keep->ncand = c >= 0 ? filter_candidates(ws, c, thr) : -1;
}
