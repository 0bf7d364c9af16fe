/*
 * The checking pass over a row: its max, the first index of the max, and
 * whether it holds NaN or +inf or only -inf; and, on the way, the max of each
 * block of the row, which top-k's block route reads (topk.c), and the
 * moments top-n-sigma reads (moments.c).
 */
#include "row.h"
#include "vec.h"

/* The first index holding the value v (n >= 1; returns 0 if none does). */
static int64_t first_equal(const TP_X *x, int64_t n, float v)
{
    const tp_vf vv = vf_set1(v);
    int64_t i = 0;
    for (; i + TP_VW <= n; i += TP_VW) {
        uint32_t hits = vf_eq_bits(vx_load(x + i), vv);
        if (hits)
            return i + tp_lowest_bit(hits);
    }
    for (; i < n; i++)
        if (x_at(x, i) == v)
            return i;
    return 0;
}

/* Whether x[from, to) holds a NaN. */
static uint32_t any_nan(const TP_X *x, int64_t from, int64_t to)
{
    uint32_t nan = 0;
    int64_t i = from;
    for (; i + TP_VW <= to; i += TP_VW)
        nan |= vf_nan_bits(vx_load(x + i));
    for (; i < to; i++)
        nan |= x_at(x, i) != x_at(x, i);
    return nan;
}

/* One pass over blocks of bs tokens (a power of two, at least 32; blocks of
 * TP_SCAN_BLOCK fit in L1): the max of each block, with four vector
 * accumulators where the block has room for them (to hide the latency of
 * max), into bmax[] if not NULL, and whether a NaN is present.  The first
 * block whose max beats all before it is remembered, so the first index of
 * the row's max is then looked for in that block only.  With moments (bs
 * then at least 4 * TP_VW), top-n-sigma's moments too, into st->sigma_m
 * about st->sigma_c (moments.c; summed as the vectors are read, or where
 * the lanes lack arithmetic a tile at a time once read); else sigma_m[0] is
 * -1.  A NaN makes a tile's sums NaN: where they are summed as read, only
 * the tiles whose sums are not finite are searched for one.  Fills *st (its bmax NULL) and returns TP_OK, or the first problem
 * found. */
#define TP_SCAN_BLOCK 4096
TP_FORCE_INLINE int scan_blocks(const TP_X *x, int64_t n, int64_t bs, float *bmax, int moments,
                                tp_rowstat *st)
{
    float max = -INFINITY;
    int64_t best = 0; /* the block where max first appears */
    uint32_t nan = 0;
    const float centre = moments ? moments_centre(x, n) : 0.0f;
    double *m = st->sigma_m, t[3];
    st->sigma_c = centre;
    m[0] = moments ? 0.0 : -1.0;
    m[1] = m[2] = 0.0;
#if TP_VARITH
    TP_MOMENT_LANES(centre);
#else
    int64_t summed = 0; /* the tokens whose moments are summed */
#endif
    for (int64_t at = 0; at < n; at += bs) {
        const int64_t end = n - at < bs ? n : at + bs;
        tp_vf m0 = vf_set1(-INFINITY), m1 = m0, m2 = m0, m3 = m0;
        int64_t i = at;
        for (;;) { /* with moments, a tile at a time */
            const int64_t stop = moments ? tile_stop(i, end) : end;
            for (; i + 4 * TP_VW <= stop; i += 4 * TP_VW) {
                const tp_vf v0 = vx_load(x + i), v1 = vx_load(x + i + TP_VW);
                const tp_vf v2 = vx_load(x + i + 2 * TP_VW), v3 = vx_load(x + i + 3 * TP_VW);
                if (!(moments && TP_VARITH))
                    nan |= vf_nan2_bits(v0, v1) | vf_nan2_bits(v2, v3);
                m0 = vf_max(m0, v0);
                m1 = vf_max(m1, v1);
                m2 = vf_max(m2, v2);
                m3 = vf_max(m3, v3);
#if TP_VARITH
                if (moments) {
                    TP_MOMENT_ADD(0, v0, 0);
                    TP_MOMENT_ADD(1, v1, 0);
                    TP_MOMENT_ADD(2, v2, 0);
                    TP_MOMENT_ADD(3, v3, 0);
                }
#endif
            }
            if (stop == end)
                break;
#if TP_VARITH /* a tile ends inside the block */
            TP_MOMENT_FLUSH(t);
            t[0] = (double)TP_MOMENT_TILE;
            if (!(isfinite(t[1]) && isfinite(t[2])))
                nan |= any_nan(x, stop - TP_MOMENT_TILE, stop);
            tile_moments(x, stop - TP_MOMENT_TILE, stop, centre, t, m);
#endif
        }
        for (int j = 0; i + TP_VW <= end; i += TP_VW, j++) { /* with moments, at the row's end */
            const tp_vf v = vx_load(x + i);
            nan |= vf_nan_bits(v);
            m0 = vf_max(m0, v);
#if TP_VARITH
            if (moments) {
                if (j == 0)
                    TP_MOMENT_ADD(0, v, 0);
                else if (j == 1)
                    TP_MOMENT_ADD(1, v, 0);
                else
                    TP_MOMENT_ADD(2, v, 0);
            }
#endif
        }
        float block_max = vf_hmax(vf_max(vf_max(m0, m1), vf_max(m2, m3)));
#if TP_VARITH
        const int64_t whole = i; /* the tokens before the row's last vector */
#endif
        for (; i < end; i++) {
            const float v = x_at(x, i);
            nan |= v != v;
            block_max = v > block_max ? v : block_max;
        }
        if (bmax)
            bmax[at / bs] = block_max;
        if (block_max > max) {
            max = block_max;
            best = at;
        }
#if TP_VARITH
        if (moments && (end % TP_MOMENT_TILE == 0 || end == n)) { /* a tile ends with the block */
            const int64_t from = (end - 1) / TP_MOMENT_TILE * TP_MOMENT_TILE;
            double tail[3] = {0.0, 0.0, 0.0};
            TP_MOMENT_FLUSH(t);
            tail_moments(x, whole, end, centre, 0, tail);
            t[0] = (double)(end - from);
            t[1] += tail[1];
            t[2] += tail[2];
            if (!(isfinite(t[1]) && isfinite(t[2])))
                nan |= any_nan(x, from, end);
            tile_moments(x, from, end, centre, t, m);
        }
#else
        for (; moments && (summed + TP_MOMENT_TILE <= end || (end == n && summed < n));
             summed += TP_MOMENT_TILE) {
            const int64_t to = tile_stop(summed, n);
            tile_sums(x, summed, to, centre, 0, t);
            tile_moments(x, summed, to, centre, t, m);
        }
#endif
    }
    st->bmax = NULL;
    st->bmax_bs = 0;
    st->proc = NULL;
    if (nan)
        return TP_ERR_NAN;
    st->max = max;
    const int64_t len = n - best < bs ? n - best : bs;
    st->argmax = best + first_equal(x + best, len, max);
    if (max == INFINITY)
        return TP_ERR_POSINF;
    if (max == -INFINITY)
        return TP_ERR_ALL_NEGINF;
    return TP_OK;
}
