/*
 * The moments of a row's finite logits, which top-n-sigma's standard
 * deviation is made of: their count and the sums of d = x - c and of d * d
 * about a centre c near their mean (so that the variance, E d^2 - (E d)^2,
 * loses little to cancellation).
 *
 * A row is summed a tile of TP_MOMENT_TILE tokens at a time (tiles start at
 * multiples of it): in float lanes, the vector at token i going to
 * accumulator (i / TP_VW) % 4, then the lanes pairwise (vf_hsum) and the
 * last tokens short of a vector in double; each tile's sums are added to the
 * row's in double.  First without a test per token: a -inf in the tile (or a
 * square past float's range) makes its sums non-finite, and only then is
 * the tile summed again with -inf left out, the same values in the same
 * order.  The checking pass (scan.c) sums the tiles as it reads them, and
 * row_moments sums a row on its own, by the same steps, so that both give
 * the same sums, bit for bit.
 */
#include "row.h"
#include "vec.h"

/* Tokens a tile sums in float lanes: each lane adds a quarter of its
 * vectors (16 values on AVX-512, 32 on AVX2). */
#define TP_MOMENT_TILE 1024

/* The centre of a row's moments: the mean of the finite logits among its
 * first TP_TILE tokens (0 if none is finite); summed in float lanes where
 * all are finite (it need only lie near the mean). */
static float moments_centre(const TP_X *x, int64_t n)
{
    const int64_t m = n < TP_TILE ? n : TP_TILE;
    double sum = 0.0;
    int64_t seen = 0, i = 0;
#if TP_VARITH
    tp_vf lanes = vf_set1(0.0f);
    for (; i + TP_VW <= m; i += TP_VW)
        lanes = vf_add(lanes, vx_load(x + i));
    sum = (double)vf_hsum(lanes);
    seen = i;
    if (!isfinite(sum)) /* a -inf among them */
        sum = 0.0, seen = 0, i = 0;
#endif
    for (; i < m; i++)
        if (x_at(x, i) > -INFINITY) {
            sum += (double)x_at(x, i);
            seen++;
        }
    return seen ? (float)(sum / (double)seen) : 0.0f;
}

/* The end of the tile holding token i, or end if sooner. */
static inline int64_t tile_stop(int64_t i, int64_t end)
{
    const int64_t stop = (i / TP_MOMENT_TILE + 1) * TP_MOMENT_TILE;
    return stop < end ? stop : end;
}

/* A tile's tokens past the last whole vector, in double, as d and d * d:
 * adds them to t[1], t[2] (t[0] counting them), -inf left out if masked. */
static void tail_moments(const TP_X *x, int64_t i, int64_t to, float c, int masked, double *t)
{
    for (; i < to; i++) {
        const float v = x_at(x, i);
        if (masked && !(v > -INFINITY))
            continue;
        const double d = (double)v - (double)c;
        t[0] += 1.0;
        t[1] += d;
        t[2] += d * d;
    }
}

/* Adds the tile's sums t (count, sum of d, of d * d) to the row's m, and
 * says whether they were finite. */
static inline int add_moments(const double *t, double *m)
{
    if (!(isfinite(t[1]) && isfinite(t[2])))
        return 0;
    m[0] += t[0];
    m[1] += t[1];
    m[2] += t[2];
    return 1;
}

#if TP_VARITH
/* The float lanes of a tile's sums: p_j of d, q_j of d * d, for the vectors
 * at (i / TP_VW) % 4 == j; vc the centre, vfinite -FLT_MAX. */
#define TP_MOMENT_LANES(c)                                                                    \
    const tp_vf vc = vf_set1(c), vfinite = vf_set1(-FLT_MAX), vzero = vf_set1(0.0f);          \
    tp_vf p0 = vzero, p1 = vzero, p2 = vzero, p3 = vzero, q0 = vzero, q1 = vzero, q2 = vzero, \
          q3 = vzero;                                                                         \
    (void)vfinite
/* Adds the vector v to accumulator j (-inf as 0 if masked). */
#define TP_MOMENT_ADD(j, v, masked)                                                    \
    do {                                                                               \
        const tp_vf d_ =                                                               \
            (masked) ? vf_ge_or_zero(vf_sub((v), vc), (v), vfinite) : vf_sub((v), vc); \
        p##j = vf_add(p##j, d_);                                                       \
        q##j = vf_fma(d_, d_, q##j);                                                   \
    } while (0)
/* The lanes' sums, into t[1] and t[2], and the lanes cleared. */
#define TP_MOMENT_FLUSH(t)                                                \
    do {                                                                  \
        (t)[1] = (double)vf_hsum(vf_add(vf_add(p0, p1), vf_add(p2, p3))); \
        (t)[2] = (double)vf_hsum(vf_add(vf_add(q0, q1), vf_add(q2, q3))); \
        p0 = p1 = p2 = p3 = q0 = q1 = q2 = q3 = vzero;                    \
    } while (0)
#define TP_FINITE_COUNT(v) tp_bit_count(vf_ge_bits((v), vfinite))
#endif

/* The sums t of the tile x[from, to) about c (from a multiple of
 * TP_MOMENT_TILE, to at most a tile later), -inf left out if masked. */
static void tile_sums(const TP_X *x, int64_t from, int64_t to, float c, int masked, double *t)
{
    int64_t i = from, count = 0;
#if TP_VARITH
    TP_MOMENT_LANES(c);
    for (; i + 4 * TP_VW <= to; i += 4 * TP_VW) {
        const tp_vf v0 = vx_load(x + i), v1 = vx_load(x + i + TP_VW);
        const tp_vf v2 = vx_load(x + i + 2 * TP_VW), v3 = vx_load(x + i + 3 * TP_VW);
        TP_MOMENT_ADD(0, v0, masked);
        TP_MOMENT_ADD(1, v1, masked);
        TP_MOMENT_ADD(2, v2, masked);
        TP_MOMENT_ADD(3, v3, masked);
        if (masked)
            count += TP_FINITE_COUNT(v0) + TP_FINITE_COUNT(v1) + TP_FINITE_COUNT(v2)
                     + TP_FINITE_COUNT(v3);
    }
    if (i + TP_VW <= to) { /* at the row's end: up to three vectors, as the pass reads them */
        const tp_vf v0 = vx_load(x + i);
        TP_MOMENT_ADD(0, v0, masked);
        count += masked ? TP_FINITE_COUNT(v0) : 0;
        i += TP_VW;
    }
    if (i + TP_VW <= to) {
        const tp_vf v1 = vx_load(x + i);
        TP_MOMENT_ADD(1, v1, masked);
        count += masked ? TP_FINITE_COUNT(v1) : 0;
        i += TP_VW;
    }
    if (i + TP_VW <= to) {
        const tp_vf v2 = vx_load(x + i);
        TP_MOMENT_ADD(2, v2, masked);
        count += masked ? TP_FINITE_COUNT(v2) : 0;
        i += TP_VW;
    }
    TP_MOMENT_FLUSH(t);
#else /* lanes the compiler may vectorize */
    enum { L = 32 };
    float l1[L] = {0.0f}, l2[L] = {0.0f};
    for (; i + L <= to; i += L)
        for (int l = 0; l < L; l++) {
            const float v = x_at(x, i + l);
            const float d = masked && !(v > -INFINITY) ? 0.0f : v - c;
            l1[l] += d;
            l2[l] += d * d;
            count += masked && v > -INFINITY;
        }
    for (int w = L / 2; w >= 1; w /= 2)
        for (int l = 0; l < w; l++) {
            l1[l] += l1[l + w];
            l2[l] += l2[l + w];
        }
    t[1] = (double)l1[0];
    t[2] = (double)l2[0];
#endif
    t[0] = (double)(masked ? count : i - from);
    double tail[3] = {0.0, 0.0, 0.0};
    tail_moments(x, i, to, c, masked, tail);
    t[0] += tail[0];
    t[1] += tail[1];
    t[2] += tail[2];
}

/* Adds the moments of the tile x[from, to) about c to m: its unmasked sums
 * t if finite, else its masked sums if finite, else exactly, in double. */
static void tile_moments(const TP_X *x, int64_t from, int64_t to, float c, const double *t,
                         double *m)
{
    double masked[3];
    if (add_moments(t, m))
        return;
    tile_sums(x, from, to, c, 1, masked);
    if (!add_moments(masked, m))
        tail_moments(x, from, to, c, 1, m);
}

/* The moments about c of the whole row, tile by tile. */
static void row_moments(const TP_X *x, int64_t n, float c, double *m)
{
    m[0] = m[1] = m[2] = 0.0;
    for (int64_t at = 0; at < n; at += TP_MOMENT_TILE) {
        const int64_t to = tile_stop(at, n);
        double t[3];
        tile_sums(x, at, to, c, 0, t);
        tile_moments(x, at, to, c, t, m);
    }
}

/* The moments about c of the row's finite logits exactly, in double (the
 * square of any difference of floats is a normal double). */
static void row_moments_exact(const TP_X *x, int64_t n, float c, double *m)
{
    m[0] = m[1] = m[2] = 0.0;
    tail_moments(x, 0, n, c, 1, m);
}
