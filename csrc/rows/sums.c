/*
 * Sums of exponentials over a row, shared by selection and the kernels,
 * vectorized without -ffast-math: float lanes over each tile of TP_TILE
 * logits (TP_LANES of them, or two vectors where vec.h has the arithmetic),
 * reduced pairwise into one float per tile, and the tiles summed in double.
 * The relative error of a sum stays near 1e-7 whatever n is, and the order
 * of the additions is fixed, so results do not depend on alignment or
 * threads.
 */
#include "row.h"
#include "vec.h"

#define TP_LANES 32

#ifndef TP_SUMS_TYPES /* (once, for every element type) */
#define TP_SUMS_TYPES
/* What a sum reads and writes.  The three switches are constants where
 * sum_exp_any spells each combination out, so that each compiles to loops
 * of its own. */
typedef struct {
    const float *e;  /* with from: the exponentials, read instead of computed */
    float *out;      /* with store: where the exponentials are also written */
    float threshold; /* with cut: exponentials of logits below it count as 0 */
    int from, cut, store;
} tp_sumop;
#endif

/* The exponential of logit i, computed or read; 0 below the threshold. */
TP_FORCE_INLINE float cut_exp(const TP_X *x, int64_t i, const tp_sumop *op, const tp_exparg *a)
{
    const float ev = op->from ? op->e[i] : tp_exp_apply(x_at(x, i), a);
    return op->cut && !(x_at(x, i) >= op->threshold) ? 0.0f : ev;
}

#if TP_VARITH
#ifndef TP_VEXPARG
#define TP_VEXPARG
/* tp_exp_apply over a vector, operation for operation (so the two give the
 * same bits), with the row's constants in registers. */
typedef struct {
    tp_vf scale, neg_max_scaled, rate_hi, rate_lo;
} tp_vexparg;
#endif

TP_FORCE_INLINE tp_vexparg vexp_setup(const tp_exparg *a)
{
    tp_vexparg v;
    v.scale = vf_set1(a->scale);
    v.neg_max_scaled = vf_set1(-a->max_scaled);
    v.rate_hi = vf_set1(a->rate_hi);
    v.rate_lo = vf_set1(a->rate_lo);
    return v;
}

TP_FORCE_INLINE tp_vf vexp(tp_vf x, tp_vexparg a)
{
    const tp_vf d = vf_fma(x, a.scale, a.neg_max_scaled);
    const tp_vf t = vf_mul(d, a.rate_hi);
    const tp_vf s = vf_add(vf_at_least(t, vf_set1(-127.0f)), vf_set1(TP_SHIFTER));
    const tp_vf minus_n = vf_sub(vf_set1(TP_SHIFTER), s);
    const tp_vf f =
        vf_at_least(vf_fma(d, a.rate_lo, vf_fma(d, a.rate_hi, minus_n)), vf_set1(-1.0f));
    tp_vf p = vf_fma(vf_set1(TP_EXP2_C5), f, vf_set1(TP_EXP2_C4));
    p = vf_fma(p, f, vf_set1(TP_EXP2_C3));
    p = vf_fma(p, f, vf_set1(TP_EXP2_C2));
    p = vf_fma(p, f, vf_set1(TP_EXP2_C1));
    p = vf_fma(p, f, vf_set1(1.0f));
    return vf_mul(p, vf_exp2_int(s));
}

/* The sum over the whole tile of TP_TILE logits at x + i. */
TP_FORCE_INLINE float tile_sum_exp(const TP_X *x, int64_t i, const tp_sumop *op, const tp_exparg *a,
                                   tp_vexparg va)
{
    const tp_vf thr = vf_set1(op->threshold);
    const TP_X *xt = x + i;
    const float *et = op->from ? op->e + i : NULL;
    float *ot = op->store ? op->out + i : NULL;
    tp_vf acc0 = vf_set1(0.0f), acc1 = vf_set1(0.0f);
    (void)a;
    for (int b = 0; b < TP_TILE; b += 2 * TP_VW) {
        const tp_vf x0 = vx_load(xt + b), x1 = vx_load(xt + b + TP_VW);
        tp_vf e0 = op->from ? vf_load(et + b) : vexp(x0, va);
        tp_vf e1 = op->from ? vf_load(et + b + TP_VW) : vexp(x1, va);
        if (op->cut) {
            e0 = vf_ge_or_zero(e0, x0, thr);
            e1 = vf_ge_or_zero(e1, x1, thr);
        }
        if (op->store) {
            vf_store(ot + b, e0);
            vf_store(ot + b + TP_VW, e1);
        }
        acc0 = vf_add(acc0, e0);
        acc1 = vf_add(acc1, e1);
    }
    return vf_hsum(vf_add(acc0, acc1));
}

/* The same over the nvec whole vectors at x + i (fewer than a tile's). */
TP_FORCE_INLINE float vectors_sum_exp(const TP_X *x, int64_t i, int64_t nvec, const tp_sumop *op,
                                      const tp_exparg *a, tp_vexparg va)
{
    const tp_vf thr = vf_set1(op->threshold);
    const TP_X *xt = x + i;
    const float *et = op->from ? op->e + i : NULL;
    float *ot = op->store ? op->out + i : NULL;
    tp_vf acc = vf_set1(0.0f);
    (void)a;
    for (int64_t b = 0; b < nvec * TP_VW; b += TP_VW) {
        const tp_vf xv = vx_load(xt + b);
        tp_vf ev = op->from ? vf_load(et + b) : vexp(xv, va);
        if (op->cut)
            ev = vf_ge_or_zero(ev, xv, thr);
        if (op->store)
            vf_store(ot + b, ev);
        acc = vf_add(acc, ev);
    }
    return vf_hsum(acc);
}
#else
#ifndef TP_VEXPARG
#define TP_VEXPARG
typedef int tp_vexparg; /* no vector arithmetic: the compiler vectorizes the lanes */
#endif

TP_FORCE_INLINE tp_vexparg vexp_setup(const tp_exparg *a)
{
    (void)a;
    return 0;
}

/* The sum over the whole tile of TP_TILE logits at x + i. */
TP_FORCE_INLINE float tile_sum_exp(const TP_X *x, int64_t i, const tp_sumop *op, const tp_exparg *a,
                                   tp_vexparg va)
{
    float lane[TP_LANES] = {0.0f};
    (void)va;
    for (int64_t b = i; b < i + TP_TILE; b += TP_LANES)
        for (int j = 0; j < TP_LANES; j++) {
            const float ev = cut_exp(x, b + j, op, a);
            if (op->store)
                op->out[b + j] = ev;
            lane[j] += ev;
        }
    for (int w = TP_LANES / 2; w > 0; w /= 2)
        for (int j = 0; j < w; j++)
            lane[j] += lane[j + w];
    return lane[0];
}

/* Without vector arithmetic, TP_VW is 1 or 4 and the rest goes token by token. */
TP_FORCE_INLINE float vectors_sum_exp(const TP_X *x, int64_t i, int64_t nvec, const tp_sumop *op,
                                      const tp_exparg *a, tp_vexparg va)
{
    float s = 0.0f;
    (void)va;
    for (int64_t j = i; j < i + nvec * TP_VW; j++) {
        const float ev = cut_exp(x, j, op, a);
        if (op->store)
            op->out[j] = ev;
        s += ev;
    }
    return s;
}
#endif

/* The sum over x[0..n); with run_sum, also the sum of each run of per
 * logits (a multiple of TP_TILE) in run_sum[]. */
TP_FORCE_INLINE double sum_exp_runs(const TP_X *x, int64_t n, const tp_sumop *op,
                                    const tp_exparg *a, int64_t per, double *run_sum)
{
    const tp_vexparg va = vexp_setup(a);
    double z = 0.0;
    for (int64_t lo = 0; lo < n; lo += per) {
        const int64_t hi = n - lo < per ? n : lo + per;
        double s = 0.0;
        int64_t i = lo;
        for (; i + TP_TILE <= hi; i += TP_TILE)
            s += tile_sum_exp(x, i, op, a, va);
        const int64_t nvec = (hi - i) / TP_VW;
        s += vectors_sum_exp(x, i, nvec, op, a, va);
        for (i += nvec * TP_VW; i < hi; i++) {
            const float ev = cut_exp(x, i, op, a);
            if (op->store)
                op->out[i] = ev;
            s += ev;
        }
        if (run_sum)
            run_sum[lo / per] = s;
        z += s;
    }
    return z;
}

/* The loops above, specialized: a threshold of -inf cuts nothing, the
 * exponentials are computed or read from e (if not NULL), and storing is the
 * caller's choice; each combination compiles on its own, once (inlined into
 * its callers, its eight loops would be copied into each). */
TP_NOINLINE double sum_exp_any(const TP_X *x, int64_t n, const float *e, float *out,
                               float threshold, const tp_exparg *a)
{
    const int cut = threshold > -INFINITY;
    const int64_t per = n > 0 ? n : 1;
#define TP_SUM(from_, cut_, store_) \
    sum_exp_runs(x, n, &(tp_sumop){e, out, threshold, from_, cut_, store_}, a, per, NULL)
    if (e)
        return out ? (cut ? TP_SUM(1, 1, 1) : TP_SUM(1, 0, 1))
                   : (cut ? TP_SUM(1, 1, 0) : TP_SUM(1, 0, 0));
    return out ? (cut ? TP_SUM(0, 1, 1) : TP_SUM(0, 0, 1))
               : (cut ? TP_SUM(0, 1, 0) : TP_SUM(0, 0, 0));
#undef TP_SUM
}

/* sum over i of exp((x[i] - max) / T) for x[i] >= threshold, with
 * rate = log2(e) / T; if out, also out[i] = that exponential (0 where
 * x[i] < threshold). */
static double sum_exp_store(const TP_X *x, int64_t n, float max, double rate, float threshold,
                            float *out)
{
    const tp_exparg a = tp_exp_setup(max, rate);
    return sum_exp_any(x, n, NULL, out, threshold, &a);
}

static double sum_exp(const TP_X *x, int64_t n, float max, double rate, float threshold)
{
    return sum_exp_store(x, n, max, rate, threshold, NULL);
}

/* sum_exp_store of exponentials already computed: e[i] where x[i] >= threshold. */
static double sum_stored_store(const TP_X *x, const float *e, int64_t n, float threshold,
                               float *out)
{
    const tp_exparg a = tp_exp_setup(0.0f, 1.0);
    return sum_exp_any(x, n, e, out, threshold, &a);
}

/* sum_exp, and the sum of each run of runs->per logits in runs->sum. */
TP_NOINLINE double sum_exp_by_run(const TP_X *x, int64_t n, float max, double rate, float threshold,
                                  tp_runs *runs)
{
    const tp_exparg a = tp_exp_setup(max, rate);
    const tp_sumop cut = {NULL, NULL, threshold, 0, 1, 0}, all = {NULL, NULL, threshold, 0, 0, 0};
    if (threshold > -INFINITY)
        return sum_exp_runs(x, n, &cut, &a, runs->per, runs->sum);
    return sum_exp_runs(x, n, &all, &a, runs->per, runs->sum);
}

#if TP_VARITH && TP_VCOMPRESS
#ifndef TP_BAND
#define TP_BAND
/* A band of logits [lo, past_hi) that a pass gathers while it sums. */
typedef struct {
    float lo, past_hi;
} tp_band;
#endif

/* One tile of TP_TILE logits at x for exp_band_chunk: sums[0] gets the sum
 * of the exponentials (0 below cutoff, if cut), sums[1] that of those whose
 * logit is >= band.past_hi, each as tile_sum_exp gives it, and the logits in
 * the band are written to dst (which needs room for TP_TILE); returns their
 * number. */
TP_FORCE_INLINE int64_t tile_exp_band(const TP_X *x, tp_vexparg va, float cutoff, tp_band band,
                                      float *dst, float sums[2])
{
    const int cut = cutoff > -INFINITY;
    const tp_vf vcut = vf_set1(cutoff), vlo = vf_set1(band.lo), vhi = vf_set1(band.past_hi);
    tp_vf acc0 = vf_set1(0.0f), acc1 = vf_set1(0.0f);
    tp_vf top0 = vf_set1(0.0f), top1 = vf_set1(0.0f);
    int64_t got = 0;
    for (int b = 0; b < TP_TILE; b += 2 * TP_VW) {
        const tp_vf x0 = vx_load(x + b), x1 = vx_load(x + b + TP_VW);
        tp_vf e0 = vexp(x0, va), e1 = vexp(x1, va);
        if (cut) {
            e0 = vf_ge_or_zero(e0, x0, vcut);
            e1 = vf_ge_or_zero(e1, x1, vcut);
        }
        acc0 = vf_add(acc0, e0);
        acc1 = vf_add(acc1, e1);
        top0 = vf_add(top0, vf_ge_or_zero(e0, x0, vhi));
        top1 = vf_add(top1, vf_ge_or_zero(e1, x1, vhi));
        const uint32_t h0 = vf_within_bits(x0, vlo, vhi), h1 = vf_within_bits(x1, vlo, vhi);
        const int64_t got1 = got + tp_bit_count(h0);
        vf_compress_store(dst + got, vf_pack(h0), x0);
        vf_compress_store(dst + got1, vf_pack(h1), x1);
        got = got1 + tp_bit_count(h1);
    }
    sums[0] = vf_hsum(vf_add(acc0, acc1));
    sums[1] = vf_hsum(vf_add(top0, top1));
    return got;
}

/* For top-p's band (topp.c's band_pass), one pass over the len logits of
 * the row from at: sums[0] gets the sum of their exponentials >= the
 * row's cutoff, and sums[1] that of those whose logit is >= band.past_hi,
 * bit for bit as sum_exp_store and then sum_stored_store over the stored
 * exponentials give them; the logits in the band (band.lo >= cutoff) are
 * appended to the candidates, if c is not NULL and *c + len fits
 * TP_CAND_CAP (their exponentials, a few thousand, cost less computed again
 * than packed here).  Returns whether it gathered them.  Branch-free
 * packing: the band holds a few percent of a flat row, so most vectors have
 * a token in it, at no predictable place. */
static int exp_band_chunk(const tp_row *r, int64_t at, int64_t len, tp_band band, int64_t *c,
                          double sums[2])
{
    const TP_X *x = r->x + at;
    tp_workspace *ws = r->ws;
    const tp_exparg a = tp_exp_setup(r->max, r->rate);
    const tp_vexparg va = vexp_setup(&a);
    const int room = c && *c + len <= TP_CAND_CAP;
    const float cutoff = r->cutoff;
    const tp_sumop store_cut = {NULL, ws->chunk_e, cutoff, 0, 1, 1};
    const tp_sumop stored_high = {ws->chunk_e, NULL, band.past_hi, 1, 1, 0};
    double s = 0.0, h = 0.0;
    int64_t i = 0;
    for (; i + TP_TILE <= len; i += TP_TILE) {
        float tile[2];
        if (room) {
            if (cutoff > -INFINITY)
                *c += tile_exp_band(x + i, va, cutoff, band, ws->cand.x + *c, tile);
            else
                *c += tile_exp_band(x + i, va, -INFINITY, band, ws->cand.x + *c, tile);
        } else {
            tile[0] = tile_sum_exp(x + i, 0, &store_cut, &a, va);
            tile[1] = tile_sum_exp(x + i, 0, &stored_high, &a, va);
        }
        s += tile[0];
        h += tile[1];
    }
    /* the rest, under a tile: stored, then summed and gathered as band_pass
     * does without packing */
    if (i < len) {
        const int64_t nvec = (len - i) / TP_VW, scalar = i + nvec * TP_VW;
        const TP_X *xr = x + i;
        s += vectors_sum_exp(xr, 0, nvec, &store_cut, &a, va);
        for (int64_t j = scalar - i; j < len - i; j++) {
            ws->chunk_e[j] = cut_exp(xr, j, &store_cut, &a);
            s += ws->chunk_e[j];
        }
        h += vectors_sum_exp(xr, 0, nvec, &stored_high, &a, va);
        for (int64_t j = scalar - i; j < len - i; j++)
            h += cut_exp(xr, j, &stored_high, &a);
        if (room)
            for (int64_t j = i; j < len; j++)
                if (x_at(x, j) >= band.lo && !(x_at(x, j) >= band.past_hi))
                    ws->cand.x[(*c)++] = x_at(x, j);
    }
    sums[0] = s;
    sums[1] = h;
    return room;
}
#endif
