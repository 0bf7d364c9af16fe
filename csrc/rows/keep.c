/*
 * The kept set of a row under the filters, in their order: temperature,
 * top-n-sigma, top-k (topk.c), top-p on what they kept (topp.c), min-p; so
 * far the set is every token at or above one threshold, listed when a route
 * gathered it.  Typical, epsilon, eta and XTC then work on the list
 * (later.c), as do the filters in llama.cpp's order.  A row with logit
 * processors is filtered as they leave it (proc.c).
 */
#include "row.h"
#include "vec.h"

/* min-p keeps x when (x - max) / T >= log(m), evaluated in double exactly as
 * written (the reference evaluates the same expression). */
static int min_p_keeps(float v, float max, double T, double log_m)
{
    return ((double)v - (double)max) / T >= log_m;
}

/* The smallest float that min-p keeps, by bisection over the keys: 32 steps,
 * no special cases for huge or tiny T. */
static float min_p_threshold(float max, double T, double min_p)
{
    const double log_m = log(min_p);
    uint32_t lo = tp_key(-INFINITY); /* fails: -inf / T < log_m for min_p > 0 */
    uint32_t hi = tp_key(max);       /* passes: 0 >= log_m */
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (min_p_keeps(tp_unkey(mid), max, T, log_m))
            hi = mid;
        else
            lo = mid;
    }
    return tp_unkey(hi);
}

/* The smallest logit that top-n-sigma keeps: the smallest float >= max -
 * n sigma, sigma the population standard deviation of the row's finite
 * logits.  Their moments (moments.c) come from the checking pass where it
 * summed them, else from a pass of their own: the same sums either way.
 * Where the centre lies more than a standard deviation from their mean,
 * they are summed again about the mean; where sigma is so small (under
 * 1e-12) or the spread so large that float lanes may have lost it, exactly
 * in double, about max. */
static float top_n_sigma_threshold(const TP_X *x, int64_t n, const tp_rowstat *st, double nsigma)
{
    double m[3];
    float c;
    if (st->sigma_m[0] >= 0.0) {
        c = st->sigma_c;
        m[0] = st->sigma_m[0];
        m[1] = st->sigma_m[1];
        m[2] = st->sigma_m[2];
    } else {
        c = moments_centre(x, n);
        row_moments(x, n, c, m);
    }
    double mean = m[1] / m[0], var = m[2] / m[0] - mean * mean;
    if (mean * mean > var && var >= 1e-24 && var < 1e36) {
        row_moments(x, n, (float)((double)c + mean), m);
        mean = m[1] / m[0];
        var = m[2] / m[0] - mean * mean;
    }
    if (!(var >= 1e-24 && var < 1e36)) {
        row_moments_exact(x, n, st->max, m);
        mean = m[1] / m[0];
        var = m[2] / m[0] - mean * mean;
    }
    const double bound = (double)st->max - nsigma * sqrt(var > 0.0 ? var : 0.0);
    float t = (float)bound;
    if ((double)t < bound)
        t = nextafterf(t, INFINITY);
    return t < st->max ? t : st->max;
}

/* The first two cuts, on the whole row, whatever the order: top-k's (its
 * candidates listed into *c and the k-th largest into *thr where top-k acts
 * and its block route did not list them already), and top-n-sigma's, which
 * is returned (-inf where it is off). */
static float first_cuts(const TP_X *x, int64_t n, const tp_rowstat *st, const tp_filter *f,
                        tp_workspace *ws, int64_t *c, float *thr)
{
    if (f->top_k > 0 && f->top_k < n && *c < 0) {
        tp_rowstat plain = *st;
        plain.proc = NULL;
        *c = top_k_candidates(x, n, f->top_k, &plain, ws, thr);
    }
    return f->top_n_sigma > 0.0 ? top_n_sigma_threshold(x, n, st, f->top_n_sigma) : -INFINITY;
}

/* The filters of f over a row without processors (x itself, or the row as
 * its processors left it), given the candidates top-k's block route listed
 * already (c >= 0, all >= thr) or none (c = -1). */
static void keep_filtered(const TP_X *x, int64_t n, const tp_rowstat *st, const tp_filter *f,
                          tp_workspace *ws, tp_keep *keep, int64_t c, float thr)
{
    tp_row r = {x, n, st->max, st->argmax, keep->inv_t, TP_LOG2E * keep->inv_t, -INFINITY, ws};
    const float sigma_cut = first_cuts(x, n, st, f, ws, &c, &thr);
    thr = thr > sigma_cut ? thr : sigma_cut; /* the tokens top-k kept above top-n-sigma's */
    const float min_p_cut =
        f->min_p > 0.0 ? min_p_threshold(st->max, f->temperature, f->min_p) : -INFINITY;
    if (f->order == TP_ORDER_VLLM && min_p_cut > thr) { /* min-p before top-p */
        thr = min_p_cut;
        if (c >= 0)
            c = filter_candidates(&ws->cand, c, thr);
    }
    r.cutoff = thr;
    if (f->top_p < 1.0) {
        const float t = nucleus_threshold(&r, f->top_p, &c);
        thr = t > thr ? t : thr;
    }
    if (min_p_cut > thr) {
        ws->runs.per = 0; /* the run sums are of the tokens >= the nucleus's threshold */
        thr = min_p_cut;
    }
    if (ws->runs.per > 0) {
        keep->run_sum = ws->runs.sum;
        keep->run_per = ws->runs.per;
    }
    keep->threshold = thr;
    if (tp_filter_lists(f)) {
        tp_klist L;
        klist_make(x, n, thr, c, f, ws, &L);
        klist_later(&L, f, keep->inv_t);
        klist_finish(&L, n, ws, keep);
        return;
    }
    keep->ncand = c >= 0 ? filter_candidates(&ws->cand, c, thr) : -1;
}

/* The filters of f in llama.cpp's order, over a row without processors as
 * keep_filtered: top-n-sigma, then on the list of what it keeps, the rest
 * of the chain (later.c), all on the logits as they are. */
static void keep_llama(const TP_X *x, int64_t n, const tp_rowstat *st, const tp_filter *f,
                       tp_workspace *ws, tp_keep *keep, int64_t c, float thr)
{
    const int top_k = f->top_k > 0 && f->top_k < n;
    const float sigma_cut = first_cuts(x, n, st, f, ws, &c, &thr);
    const float kth = thr;
    thr = thr > sigma_cut ? thr : sigma_cut;
    keep->threshold = thr;
    tp_klist L;
    klist_make(x, n, thr, c, f, ws, &L);
    klist_llama(&L, f, top_k && kth >= sigma_cut, kth);
    klist_finish(&L, n, ws, keep);
}

static void tp_keep_filters(const void *row, int64_t n, const tp_rowstat *st, const tp_filter *f,
                            tp_workspace *ws, tp_keep *keep)
{
    const TP_X *x = row;
    const tp_proc *p = st->proc;
    const int llama = f->order == TP_ORDER_LLAMA;
    keep->row = x;
    keep->row_f32 = TP_ELEM == TP_ELEM_F32;
    keep->argmax = st->argmax;
    keep->max = st->max;
    /* Greedy rows keep the argmax, except in llama.cpp's order, whose
     * temperature comes after the filters: there a row at T = 0 takes the
     * largest logit of what they keep, which typical and XTC may change. */
    const int filtered_greedy = llama && (tp_typical_acts(f) || f->xtc);
    keep->greedy = f->temperature == 0.0 && !filtered_greedy;
    keep->threshold = -INFINITY;
    keep->inv_t = llama ? 1.0 : keep->greedy ? 0.0 : tp_inv_temperature(f->temperature);
    keep->ncand = -1;
    keep->cand_x = ws->cand.x;
    keep->cand_id = ws->cand.id;
    keep->run_sum = NULL;
    keep->run_per = 0;
    ws->runs.per = 0;
    const int top_k = f->top_k > 0 && f->top_k < n;
    float thr = -INFINITY;
    int64_t c = -1; /* listed candidates: every token >= thr, or -1 */
    if (p) {
        /* The processed row, of floats: only the argmax's logit where
         * greedy, none where top-k's block route lists every candidate with
         * its processed logit, or else all of it; from then on, a row
         * without processors. */
        keep->row = p->row;
        keep->row_f32 = 1;
        if (keep->greedy)
            p->row[st->argmax] = st->max;       /* the argmax's processed logit */
        else if (!top_k || f->top_n_sigma > 0.0 /* which reads the whole processed row */
                 || (c = top_k_by_blocks(x, n, f->top_k, st, ws, &thr)) < 0)
            tp_process(x, n, p, p->row);
    }
    if (keep->greedy)
        return;
    if (llama) {
        if (p)
            keep_llama_f32(p->row, n, st, f, ws, keep, c, thr);
        else
            keep_llama(x, n, st, f, ws, keep, c, thr);
        /* the draw at the row's own temperature, over what the chain kept */
        keep->greedy = f->temperature == 0.0;
        keep->inv_t = keep->greedy ? 0.0 : tp_inv_temperature(f->temperature);
        if (keep->greedy && p && keep->ncand >= 0) /* mask reads the argmax's logit in the row */
            p->row[keep->argmax] = keep->max;
        return;
    }
    if (p)
        keep_filtered_f32(p->row, n, st, f, ws, keep, c, thr);
    else
        keep_filtered(x, n, st, f, ws, keep, c, thr);
}
