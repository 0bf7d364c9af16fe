/* Sums of exponentials over a row, shared by selection and the kernels. */
#include "../tp_internal.h"
#include "vec.h"

/*
 * Sums of exponentials, vectorized without -ffast-math: float lanes over each
 * TP_BLOCK elements (TP_LANES of them, or two vectors where vec.h has the
 * arithmetic), reduced pairwise into one float per block, and the blocks
 * summed in double.  The
 * relative error of a sum stays near 1e-7 whatever n is, and the order of
 * the additions is fixed, so results do not depend on alignment or threads.
 */
#define TP_LANES 32
#define TP_BLOCK 256

#if defined(_MSC_VER)
#define TP_FORCE_INLINE static __forceinline
#else
#define TP_FORCE_INLINE static inline __attribute__((always_inline))
#endif

/* The exponential of logit v, computed or (from) read at *e; 0 below the
 * threshold (if cut). */
TP_FORCE_INLINE float cut_exp(float v, const float *e, int from, const tp_exparg *a,
                              float threshold, int cut)
{
    const float ev = from ? *e : tp_exp_apply(v, a);
    return cut && !(v >= threshold) ? 0.0f : ev;
}

#if TP_VARITH
/* tp_exp_apply over a vector, operation for operation (so the two give the
 * same bits), with the row's constants in registers. */
typedef struct {
    tp_vf scale, neg_max_scaled, k_hi, k_lo;
} tp_vexparg;

TP_FORCE_INLINE tp_vexparg vexp_setup(const tp_exparg *a)
{
    tp_vexparg v;
    v.scale = vf_set1(a->scale);
    v.neg_max_scaled = vf_set1(-a->max_scaled);
    v.k_hi = vf_set1(a->k_hi);
    v.k_lo = vf_set1(a->k_lo);
    return v;
}

TP_FORCE_INLINE tp_vf vexp(tp_vf x, tp_vexparg a)
{
    const tp_vf d = vf_fma(x, a.scale, a.neg_max_scaled);
    const tp_vf t = vf_mul(d, a.k_hi);
    const tp_vf s = vf_add(vf_at_least(t, vf_set1(-127.0f)), vf_set1(TP_SHIFTER));
    const tp_vf minus_n = vf_sub(vf_set1(TP_SHIFTER), s);
    const tp_vf f = vf_at_least(vf_fma(d, a.k_lo, vf_fma(d, a.k_hi, minus_n)), vf_set1(-1.0f));
    tp_vf p = vf_fma(vf_set1(1.326470054e-03f), f, vf_set1(9.671534412e-03f));
    p = vf_fma(p, f, vf_set1(5.550733954e-02f));
    p = vf_fma(p, f, vf_set1(2.402224243e-01f));
    p = vf_fma(p, f, vf_set1(6.931470037e-01f));
    p = vf_fma(p, f, vf_set1(1.0f));
    return vf_mul(p, vf_exp2_int(s));
}

/* The sum over one whole block of TP_BLOCK logits, of exponentials
 * computed or (from) read from e[]; with store, out[i] too. */
TP_FORCE_INLINE float block_sum_exp(const float *x, const float *e, int from, const tp_exparg *a,
                                    tp_vexparg va, float threshold, int cut, int store,
                                    float *out)
{
    const tp_vf thr = vf_set1(threshold);
    tp_vf acc0 = vf_set1(0.0f), acc1 = vf_set1(0.0f);
    (void)a;
    for (int b = 0; b < TP_BLOCK; b += 2 * TP_VW) {
        const tp_vf x0 = vf_load(x + b), x1 = vf_load(x + b + TP_VW);
        tp_vf e0 = from ? vf_load(e + b) : vexp(x0, va);
        tp_vf e1 = from ? vf_load(e + b + TP_VW) : vexp(x1, va);
        if (cut) {
            e0 = vf_ge_or_zero(e0, x0, thr);
            e1 = vf_ge_or_zero(e1, x1, thr);
        }
        if (store) {
            vf_store(out + b, e0);
            vf_store(out + b + TP_VW, e1);
        }
        acc0 = vf_add(acc0, e0);
        acc1 = vf_add(acc1, e1);
    }
    return vf_hsum(vf_add(acc0, acc1));
}

/* The same over the nvec whole vectors of a row's tail (shorter than a block). */
TP_FORCE_INLINE float tail_sum_exp(const float *x, const float *e, int from, int64_t nvec,
                                   const tp_exparg *a, tp_vexparg va, float threshold, int cut,
                                   int store, float *out)
{
    const tp_vf thr = vf_set1(threshold);
    tp_vf acc = vf_set1(0.0f);
    (void)a;
    for (int64_t b = 0; b < nvec * TP_VW; b += TP_VW) {
        const tp_vf xv = vf_load(x + b);
        tp_vf ev = from ? vf_load(e + b) : vexp(xv, va);
        if (cut)
            ev = vf_ge_or_zero(ev, xv, thr);
        if (store)
            vf_store(out + b, ev);
        acc = vf_add(acc, ev);
    }
    return vf_hsum(acc);
}
#else
typedef int tp_vexparg;  /* no vector arithmetic: the compiler vectorizes the lanes */

TP_FORCE_INLINE tp_vexparg vexp_setup(const tp_exparg *a)
{
    (void)a;
    return 0;
}

/* The sum over one whole block of TP_BLOCK logits, of exponentials
 * computed or (from) read from e[]; with store, out[i] too. */
TP_FORCE_INLINE float block_sum_exp(const float *x, const float *e, int from, const tp_exparg *a,
                                    tp_vexparg va, float threshold, int cut, int store,
                                    float *out)
{
    float lane[TP_LANES] = {0.0f};
    (void)va;
    for (int b = 0; b < TP_BLOCK; b += TP_LANES)
        for (int j = 0; j < TP_LANES; j++) {
            const float ev = cut_exp(x[b + j], from ? e + b + j : e, from, a, threshold, cut);
            if (store)
                out[b + j] = ev;
            lane[j] += ev;
        }
    for (int w = TP_LANES / 2; w > 0; w /= 2)
        for (int j = 0; j < w; j++)
            lane[j] += lane[j + w];
    return lane[0];
}

/* Without vector arithmetic, TP_VW is 1 or 4 and the tail goes token by token. */
TP_FORCE_INLINE float tail_sum_exp(const float *x, const float *e, int from, int64_t nvec,
                                   const tp_exparg *a, tp_vexparg va, float threshold, int cut,
                                   int store, float *out)
{
    float s = 0.0f;
    (void)va;
    for (int64_t j = 0; j < nvec * TP_VW; j++) {
        const float ev = cut_exp(x[j], from ? e + j : e, from, a, threshold, cut);
        if (store)
            out[j] = ev;
        s += ev;
    }
    return s;
}
#endif

/* The sum over x[0..n); per > 0 (a multiple of TP_BLOCK) also stores the sum
 * of each run of per logits in run_sum[]. */
TP_FORCE_INLINE double sum_exp_runs(const float *x, const float *e, int from, int64_t n,
                                    const tp_exparg *a, float threshold, int cut, int store,
                                    float *out, int64_t per, double *run_sum)
{
    const tp_vexparg va = vexp_setup(a);
    double z = 0.0;
    for (int64_t lo = 0; lo < n; lo += per) {
        const int64_t hi = n - lo < per ? n : lo + per;
        double s = 0.0;
        int64_t i = lo;
        for (; i + TP_BLOCK <= hi; i += TP_BLOCK)
            s += block_sum_exp(x + i, from ? e + i : e, from, a, va, threshold, cut, store,
                               store ? out + i : out);
        s += tail_sum_exp(x + i, from ? e + i : e, from, (hi - i) / TP_VW, a, va, threshold,
                          cut, store, store ? out + i : out);
        i += (hi - i) / TP_VW * TP_VW;
        for (; i < hi; i++) {
            const float ev = cut_exp(x[i], from ? e + i : e, from, a, threshold, cut);
            if (store)
                out[i] = ev;
            s += ev;
        }
        if (run_sum)
            run_sum[lo / per] = s;
        z += s;
    }
    return z;
}

#if TP_VARITH && TP_VCOMPRESS
/* One block of TP_BLOCK logits for exp_band_chunk: the sum of the
 * exponentials (0 below floor, if cut), and of those whose logit is >=
 * past_hi, each as block_sum_exp gives it, and the logits in [lo, past_hi)
 * appended at cx + *c (which needs room for TP_BLOCK). */
TP_FORCE_INLINE void block_exp_band(const float *x, tp_vexparg va, float floor, int cut,
                                    float lo, float past_hi, float *cx, int64_t *c, float *sum,
                                    float *high)
{
    const tp_vf vfloor = vf_set1(floor), vlo = vf_set1(lo), vhi = vf_set1(past_hi);
    tp_vf acc0 = vf_set1(0.0f), acc1 = vf_set1(0.0f);
    tp_vf top0 = vf_set1(0.0f), top1 = vf_set1(0.0f);
    int64_t got = *c;
    for (int b = 0; b < TP_BLOCK; b += 2 * TP_VW) {
        const tp_vf x0 = vf_load(x + b), x1 = vf_load(x + b + TP_VW);
        tp_vf e0 = vexp(x0, va), e1 = vexp(x1, va);
        if (cut) {
            e0 = vf_ge_or_zero(e0, x0, vfloor);
            e1 = vf_ge_or_zero(e1, x1, vfloor);
        }
        acc0 = vf_add(acc0, e0);
        acc1 = vf_add(acc1, e1);
        top0 = vf_add(top0, vf_ge_or_zero(e0, x0, vhi));
        top1 = vf_add(top1, vf_ge_or_zero(e1, x1, vhi));
        const uint32_t h0 = vf_within_bits(x0, vlo, vhi), h1 = vf_within_bits(x1, vlo, vhi);
        const int64_t got1 = got + tp_bit_count(h0);
        vf_compress_store(cx + got, vf_pack(h0), x0);
        vf_compress_store(cx + got1, vf_pack(h1), x1);
        got = got1 + tp_bit_count(h1);
    }
    *c = got;
    *sum = vf_hsum(vf_add(acc0, acc1));
    *high = vf_hsum(vf_add(top0, top1));
}

/* For a wide nucleus's band (select.c's band_pass), one pass over the len
 * logits of a chunk: *sum gets the sum of their exponentials >= floor, and
 * *high that of those whose logit is >= past_hi, bit for bit as
 * sum_exp_store and then sum_stored_store over the stored exponentials
 * give them; the logits in [lo, past_hi) (lo >= floor) are appended to
 * ws->cand_x, if c is not NULL and *c + len fits TP_CAND_CAP (their
 * exponentials, a few thousand, cost less computed again than packed
 * here).  Returns whether it gathered them.  Branch-free
 * packing: the band holds a few percent of a flat row, so most vectors have
 * a token in it, at no predictable place. */
static int exp_band_chunk(const float *x, int64_t len, float max, double k, float floor,
                          float lo, float past_hi, tp_workspace *ws, int64_t *c, double *sum,
                          double *high)
{
    const tp_exparg a = tp_exp_setup(max, k);
    const tp_vexparg va = vexp_setup(&a);
    const int room = c && *c + len <= TP_CAND_CAP, cut = floor > -INFINITY;
    double s = 0.0, h = 0.0;
    int64_t i = 0;
    for (; i + TP_BLOCK <= len; i += TP_BLOCK) {
        float bs, bh;
        if (room) {
            if (cut)
                block_exp_band(x + i, va, floor, 1, lo, past_hi, ws->cand_x, c, &bs, &bh);
            else
                block_exp_band(x + i, va, floor, 0, lo, past_hi, ws->cand_x, c, &bs, &bh);
        } else {
            bs = block_sum_exp(x + i, NULL, 0, &a, va, floor, 1, 1, ws->chunk_e);
            bh = block_sum_exp(x + i, ws->chunk_e, 1, &a, va, past_hi, 1, 0, NULL);
        }
        s += bs;
        h += bh;
    }
    /* the rest, under a block: stored, then summed and gathered as band_pass
     * does without packing */
    if (i < len) {
        const int64_t nvec = (len - i) / TP_VW, scalar = i + nvec * TP_VW;
        float *e = ws->chunk_e;
        s += tail_sum_exp(x + i, NULL, 0, nvec, &a, va, floor, 1, 1, e);
        for (int64_t j = scalar; j < len; j++) {
            e[j - i] = cut_exp(x[j], NULL, 0, &a, floor, 1);
            s += e[j - i];
        }
        h += tail_sum_exp(x + i, e, 1, nvec, &a, va, past_hi, 1, 0, NULL);
        for (int64_t j = scalar; j < len; j++)
            h += cut_exp(x[j], e + (j - i), 1, &a, past_hi, 1);
        if (room)
            for (int64_t j = i; j < len; j++)
                if (x[j] >= lo && !(x[j] >= past_hi))
                    ws->cand_x[(*c)++] = x[j];
    }
    *sum = s;
    *high = h;
    return room;
}
#endif

/* The loops above, specialized: a threshold of -inf cuts nothing, the
 * exponentials are computed or read from e (if not NULL), and storing is the
 * caller's choice; each combination compiles on its own. */
static double sum_exp_any(const float *x, const float *e, int64_t n, float max, double k,
                          float threshold, float *out, int64_t per, double *run_sum)
{
    const tp_exparg a = tp_exp_setup(max, k);
    const int cut = threshold > -INFINITY;
    if (per <= 0)
        per = n > 0 ? n : 1;
#define TP_SUM_RUNS(from, cut_, store) \
    sum_exp_runs(x, e, from, n, &a, threshold, cut_, store, out, per, run_sum)
    if (e)
        return out ? (cut ? TP_SUM_RUNS(1, 1, 1) : TP_SUM_RUNS(1, 0, 1))
                   : (cut ? TP_SUM_RUNS(1, 1, 0) : TP_SUM_RUNS(1, 0, 0));
    return out ? (cut ? TP_SUM_RUNS(0, 1, 1) : TP_SUM_RUNS(0, 0, 1))
               : (cut ? TP_SUM_RUNS(0, 1, 0) : TP_SUM_RUNS(0, 0, 0));
#undef TP_SUM_RUNS
}

/* sum over i of exp((x[i] - max) / T) for x[i] >= threshold, with
 * k = log2(e) / T; if out, also out[i] = that exponential (0 where
 * x[i] < threshold). */
static double sum_exp_store(const float *x, int64_t n, float max, double k, float threshold,
                            float *out)
{
    return sum_exp_any(x, NULL, n, max, k, threshold, out, 0, NULL);
}

static double sum_exp(const float *x, int64_t n, float max, double k, float threshold)
{
    return sum_exp_any(x, NULL, n, max, k, threshold, NULL, 0, NULL);
}

/* sum_exp_store of exponentials already computed: e[i] where x[i] >= threshold. */
static double sum_stored_store(const float *x, const float *e, int64_t n, float threshold,
                               float *out)
{
    return sum_exp_any(x, e, n, 0.0f, 1.0, threshold, out, 0, NULL);
}

static double sum_exp_by_run(const float *x, int64_t n, float max, double k, float threshold,
                             int64_t per, double *run_sum)
{
    return sum_exp_any(x, NULL, n, max, k, threshold, NULL, per, run_sum);
}
