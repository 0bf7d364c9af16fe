/*
 * The checking pass over a row: its max, the first index of the max, and
 * whether it holds NaN or +inf or only -inf; and, on the way, the max of each
 * block of the row, which top-k's block route reads (topk.c).
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

/* One pass over blocks of bs tokens (a power of two, at least 32; blocks of
 * TP_SCAN_BLOCK fit in L1): the max of each block, with four vector
 * accumulators where the block has room for them (to hide the latency of
 * max), into bmax[] if not NULL, and whether a NaN is present.  The first
 * block whose max beats all before it is remembered, so the first index of
 * the row's max is then looked for in that block only.  Fills *st (its bmax
 * NULL) and returns TP_OK, or the first problem found. */
#define TP_SCAN_BLOCK 4096
TP_FORCE_INLINE int scan_blocks(const TP_X *x, int64_t n, int64_t bs, float *bmax, tp_rowstat *st)
{
    float max = -INFINITY;
    int64_t best = 0; /* the block where max first appears */
    uint32_t nan = 0;
    for (int64_t at = 0; at < n; at += bs) {
        const int64_t end = n - at < bs ? n : at + bs;
        tp_vf m0 = vf_set1(-INFINITY), m1 = m0, m2 = m0, m3 = m0;
        int64_t i = at;
        for (; i + 4 * TP_VW <= end; i += 4 * TP_VW) {
            tp_vf a = vx_load(x + i), b = vx_load(x + i + TP_VW);
            tp_vf c = vx_load(x + i + 2 * TP_VW), d = vx_load(x + i + 3 * TP_VW);
            nan |= vf_nan2_bits(a, b) | vf_nan2_bits(c, d);
            m0 = vf_max(m0, a);
            m1 = vf_max(m1, b);
            m2 = vf_max(m2, c);
            m3 = vf_max(m3, d);
        }
        for (; i + TP_VW <= end; i += TP_VW) {
            tp_vf a = vx_load(x + i);
            nan |= vf_nan_bits(a);
            m0 = vf_max(m0, a);
        }
        float block_max = vf_hmax(vf_max(vf_max(m0, m1), vf_max(m2, m3)));
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
