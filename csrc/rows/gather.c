/*
 * Gathering candidates, and probing the row.
 *
 * Most rows keep few tokens, and a cheap bound often tells which tokens could
 * be kept at all: one vectorized compare pass gathers them (value and id, in
 * ascending id) into ws->cand, and the exact selection then runs on the
 * gathered few instead of the row.  When a bound lets too many through
 * (past TP_CAND_CAP), the gather gives up and selection takes another route.
 *
 * A probe is a statistical sample of the row that estimates such bounds:
 * lines of 16 consecutive logits (a cache line each, where the row is
 * aligned), spread evenly, so that it costs one cache line per 16 values
 * where a strided pick would cost up to one per value.
 */
#include "row.h"
#include "vec.h"

/* Appends the tokens of the set bits of hits (lanes of the vector at i) to
 * the candidates; false when they would pass TP_CAND_CAP. */
static inline int gather_hits(const TP_X *x, int64_t i, uint32_t hits, tp_cands *cand, int64_t *c)
{
    for (; hits; hits &= hits - 1) {
        if (*c == TP_CAND_CAP)
            return 0;
        const int lane = tp_lowest_bit(hits);
        cand->x[*c] = x_at(x, i + lane);
        cand->id[(*c)++] = i + lane;
    }
    return 1;
}

/* Which tokens a gather takes: x >= lo, and x <= hi if bounded; and, where
 * allow is not NULL, only the tokens whose bit is set in it (bit j % 32 of
 * allow[j / 32]: the logit processors' allowed set, tp_proc; the range then
 * starts at a multiple of 32).  dense: hits are expected in most vectors (a
 * band of a few percent of the row); ids: the caller reads the candidates'
 * ids (a band gathered by packing may leave them out).  Constants at each
 * call, so that each kind compiles on its own. */
#ifndef TP_GATHER_TYPE /* (once, for every element type) */
#define TP_GATHER_TYPE
typedef struct {
    float lo, hi;
    int bounded, dense, ids;
    const uint32_t *allow;
} tp_gather;
#endif

/* The allow bits of the two vectors at i (allow NULL: all allowed). */
TP_FORCE_INLINE uint32_t gather_allowed(tp_gather how, int64_t i)
{
    return how.allow ? how.allow[i >> 5] >> (i & 31) : ~0u;
}

/* Appends the tokens of x[from..to) that how takes, in ascending id, to the
 * *c candidates; false past TP_CAND_CAP.  Two vectors a step: most have no
 * hit, and then cost two compares and a branch, and the hits of the others
 * one branch each.
 *
 * Where hits are dense, an instruction set that packs lanes (TP_VCOMPRESS)
 * appends a vector's hits at once instead, without a branch per hit.  Where
 * they are sparse, the packing's six vector stores cost more than the
 * branches. */
TP_FORCE_INLINE int gather_range(const TP_X *x, int64_t from, int64_t to, tp_gather how,
                                 tp_cands *cand, int64_t *c)
{
    const tp_vf vlo = vf_set1(how.lo), vhi = vf_set1(how.hi);
    int64_t i = from;
#if TP_VCOMPRESS
    /* while there is room for two whole vectors; a loop of its own, which is
     * faster than one choosing per step (csrc/README.md).  The count and the
     * lists are held in locals: through *c, each store of an id (an int64_t,
     * as *c is) would make the compiler reload them. */
    if (how.dense) {
        int64_t got = *c;
        float *cx = cand->x;
        int64_t *cid = cand->id;
        for (; i + 2 * TP_VW <= to && got <= TP_CAND_CAP - 2 * TP_VW; i += 2 * TP_VW) {
            const tp_vf v0 = vx_load(x + i), v1 = vx_load(x + i + TP_VW);
            const uint32_t w = gather_allowed(how, i);
            uint32_t h0 = vf_ge_bits(v0, vlo) & w, h1 = vf_ge_bits(v1, vlo) & (w >> TP_VW);
            if (how.bounded) {
                h0 &= vf_ge_bits(vhi, v0);
                h1 &= vf_ge_bits(vhi, v1);
            }
            if (h0 | h1) {
                const int64_t c1 = got + tp_bit_count(h0);
                const tp_vpack p0 = vf_pack(h0), p1 = vf_pack(h1);
                vf_compress_store(cx + got, p0, v0);
                vf_compress_store(cx + c1, p1, v1);
                if (how.ids) {
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
        const tp_vf v0 = vx_load(x + i), v1 = vx_load(x + i + TP_VW);
        const uint32_t w = gather_allowed(how, i);
        uint32_t h0 = vf_ge_bits(v0, vlo) & w, h1 = vf_ge_bits(v1, vlo) & (w >> TP_VW);
        if (how.bounded) {
            h0 &= vf_ge_bits(vhi, v0);
            h1 &= vf_ge_bits(vhi, v1);
        }
        if ((h0 | h1)
            && !(gather_hits(x, i, h0, cand, c) && gather_hits(x, i + TP_VW, h1, cand, c)))
            return 0;
    }
    for (; i < to; i++)
        if (x_at(x, i) >= how.lo && (!how.bounded || x_at(x, i) <= how.hi)
            && (gather_allowed(how, i) & 1u) && !gather_hits(x, i, 1u, cand, c))
            return 0;
    return 1;
}

/* Gathers every x[i] in [lo, hi]; returns their number, or -1 past TP_CAND_CAP. */
static int64_t gather_between(const TP_X *x, int64_t n, float lo, float hi, tp_cands *cand)
{
    int64_t c = 0;
    return gather_range(x, 0, n, (tp_gather){lo, hi, 1, 1, 1, NULL}, cand, &c) ? c : -1;
}

/* Gathers every x[i] >= t; returns their number, or -1 past TP_CAND_CAP. */
static int64_t gather_at_least(const TP_X *x, int64_t n, float t, tp_cands *cand)
{
    int64_t c = 0;
    return gather_range(x, 0, n, (tp_gather){t, INFINITY, 0, 0, 1, NULL}, cand, &c) ? c : -1;
}

/* gather_between, and in the same pass (a chunk at a time, while it is in
 * L1) *above = the number of x[i] > hi. */
static int64_t gather_band_count_above(const TP_X *x, int64_t n, float lo, float hi, tp_cands *cand,
                                       int64_t *above)
{
    const float past_hi = nextafterf(hi, INFINITY);
    const tp_vf vpast = vf_set1(past_hi);
    int64_t c = 0, count = 0;
    for (int64_t at = 0; at < n; at += TP_CHUNK) {
        const int64_t end = n - at < TP_CHUNK ? n : at + TP_CHUNK;
        int64_t i = at;
        for (; i + TP_VW <= end; i += TP_VW)
            count += tp_bit_count(vf_ge_bits(vx_load(x + i), vpast));
        for (; i < end; i++)
            count += x_at(x, i) >= past_hi;
        if (!gather_range(x, at, end, (tp_gather){lo, hi, 1, 1, 1, NULL}, cand, &c))
            return -1;
    }
    *above = count;
    return c;
}

/* Keeps the candidates >= t, in order; returns how many remain. */
static int64_t filter_candidates(tp_cands *cand, int64_t c, float t)
{
    int64_t kept = 0;
    for (int64_t j = 0; j < c; j++) {
        if (cand->x[j] >= t) {
            cand->x[kept] = cand->x[j];
            cand->id[kept++] = cand->id[j];
        }
    }
    return kept;
}

/* ---- probes ---------------------------------------------------------------- */

#define TP_PROBE_LINE 16 /* logits of a line of a probe: 64 bytes */

/* The size of the probe of a row of n tokens: about n / 16 logits, at most
 * TP_PROBE_MAX, in whole lines (0 for rows under 256 tokens). */
static int64_t probe_size(int64_t n)
{
    const int64_t m = n / 16 < TP_PROBE_MAX ? n / 16 : TP_PROBE_MAX;
    return m - m % TP_PROBE_LINE;
}

/* A probe of m values (a multiple of TP_PROBE_LINE, at most n) of a row of n
 * tokens into dst. */
static void probe_lines(const TP_X *x, int64_t n, int64_t m, float *dst)
{
    const int64_t lines = m / TP_PROBE_LINE, stride = n / lines;
    for (int64_t r = 0; r < lines; r++)
        for (int j = 0; j < TP_PROBE_LINE; j++)
            dst[TP_PROBE_LINE * r + j] = x_at(x, r * stride + j);
}

/* Whether token i of the row is in its probe of m values. */
static int in_probe(int64_t n, int64_t m, int64_t i)
{
    const int64_t lines = m / TP_PROBE_LINE, stride = n / lines, line = i / stride;
    return line < lines && i - line * stride < TP_PROBE_LINE;
}
