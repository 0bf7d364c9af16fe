/*
 * The filters that work on the listed kept set: typical, epsilon, eta and
 * XTC after the thresholds of keep.c (tokenpick's order), and every filter
 * of llama.cpp's chain, whose ties at a boundary are broken by lowest id.
 *
 * The kept set so far is listed (tp_klist: ascending id) in the workspace's
 * candidates when it fits, else in the filter's spill; each filter then
 * needs only the list: its exponentials (renormalized over what the
 * filters before it kept), a selection by mass among them where it selects
 * by mass, and a compaction.  What remains goes back to the later kernels
 * as the listed candidates, or, where it does not fit them, as a row of
 * floats with -inf outside the kept set.
 */
#include "row.h"
#include "vec.h"

#if TP_ELEM == TP_ELEM_F32 /* code on floats, once whatever the row's type */

/* The kept set listed: logit x[j] of token id[j], ids ascending; e, key and
 * w are scratch of as many floats (the selections permute key and w). */
typedef struct {
    float *x;
    int64_t *id;
    float *e;
    float *key;
    float *w;
    int64_t c;
    int spilled;   /* whether the arrays are the filter's spill (else the workspace's) */
    tp_hist *hist; /* the workspace's, for the radix select of long lists */
} tp_klist;

/* The largest listed logit, and the first (lowest id) entry holding it:
 * the checking pass's max and argmax (scan.c; the list holds no NaN). */
static float klist_max(const tp_klist *L, int64_t *at)
{
    tp_rowstat st = {0};
    scan_blocks(L->x, L->c, TP_SCAN_BLOCK, NULL, 0, &st);
    if (at)
        *at = st.argmax;
    return st.max;
}

/* The probabilities of the listed tokens at inverse temperature inv_t, as
 * exponentials relative to the largest (in L->e) and their total *z; with
 * mean_s, also the mean under them of s = (x - max) * inv_t (for the
 * entropy H = log z - mean_s). */
static float klist_exps(tp_klist *L, double inv_t, double *z, double *mean_s)
{
    const float m = klist_max(L, NULL);
    *z = sum_exp_store_f32(L->x, L->c, m, TP_LOG2E * inv_t, -INFINITY, L->e);
    if (mean_s) {
        double es = 0.0;
        for (int64_t j = 0; j < L->c; j++)
            if (L->e[j] > 0.0f)
                es += (double)L->e[j] * (((double)L->x[j] - (double)m) * inv_t);
        *mean_s = es / *z;
    }
    return m;
}

/* Keeps the entries whose flag in L->key is nonzero, in order: each entry
 * written at the end of those kept so far, which it joins if its flag is set
 * (no branch on the flags, which a filter over a long list sets at
 * random). */
static void klist_compact(tp_klist *L)
{
    float *x = L->x, *e = L->e;
    int64_t *id = L->id, kept = 0;
    const float *key = L->key;
    for (int64_t j = 0; j < L->c; j++) {
        const float xj = x[j], ej = e[j];
        const int64_t ij = id[j];
        x[kept] = xj;
        id[kept] = ij;
        e[kept] = ej;
        kept += key[j] != 0.0f;
    }
    L->c = kept;
}

/* The longest list selected by the quickselect (longer: the radix select). */
#define TP_KLIST_PARTITION 4096

/* The ranks of the listed tokens for a selection by mass (larger first):
 * their logits, or for typical the negated distance of a token's surprise
 * from the entropy, |-log p - H| = |mean_s - s| (H = log z - mean_s,
 * -log p = log z - s), -inf where its exponential is 0; into out[0..L->c),
 * computed the same way each time they are asked for (a loop of selects the
 * compiler vectorizes). */
typedef struct {
    int typical;
    float max;
    double inv_t, mean_s;
} tp_rank;

static void klist_ranks(const tp_klist *L, const tp_rank *r, float *out)
{
    const float *x = L->x, *e = L->e;
    const int64_t c = L->c;
    if (!r->typical) {
        memcpy(out, x, (size_t)c * sizeof *out);
        return;
    }
    const double max = r->max, inv_t = r->inv_t, mean_s = r->mean_s;
    for (int64_t j = 0; j < c; j++) {
        const double s = ((double)x[j] - max) * inv_t;
        const float rank = -(float)fabs(mean_s - s);
        out[j] = e[j] > 0.0f ? rank : -INFINITY;
    }
}

/* Among the listed tokens ranked by r, those a selection by mass keeps:
 * the smallest rank at which the mass (L->e) of the ranks at or above it
 * reaches target, then every token at or above it (ties kept), or, by_id,
 * the ties at that rank taken in ascending id only until the mass reaches
 * target (the first cumulative sum to reach it ends the set, in the order
 * of a sort that breaks ties by lowest id). */
static void klist_select(tp_klist *L, const tp_rank *r, double target, int by_id)
{
    /* the selection among the tokens of positive probability alone, so that
     * where rounding leaves their total short of the target (the smallest
     * rank then chosen) no token of probability 0 comes in with it */
    float *rank = L->w;
    klist_ranks(L, r, rank);
    int64_t m = 0;
    for (int64_t j = 0; j < L->c; j++) { /* each written, counted if of positive mass */
        const float rj = rank[j], ej = L->e[j];
        L->key[m] = rj;
        L->w[m] = ej;
        m += ej > 0.0f;
    }
    /* a quickselect, whose branches on the values are coin tosses, costs
     * more than the radix select's few passes over a long list */
    const float t = m <= TP_KLIST_PARTITION
                        ? partition_select_f32(L->key, L->w, m, target)
                        : radix_select_mass_f32(L->key, L->w, m, -INFINITY, tp_exp_setup(0.0f, 0.0),
                                                target, 0, L->hist);
    klist_ranks(L, r, rank); /* again, in the list's order (the select permuted key, w) */
    if (!by_id) {            /* every tie kept: no mass to count */
        for (int64_t j = 0; j < L->c; j++)
            L->key[j] = (float)(rank[j] >= t);
        klist_compact(L);
        return;
    }
    double above = 0.0;
    for (int64_t j = 0; j < L->c; j++)
        if (rank[j] > t)
            above += L->e[j];
    for (int64_t j = 0; j < L->c; j++) {
        int keep = rank[j] > t;
        if (rank[j] == t) {
            keep = above < target;
            above += L->e[j];
        }
        L->key[j] = (float)keep;
    }
    klist_compact(L);
}

/* Locally typical sampling: the tokens nearest the entropy in surprise,
 * from the nearest until their mass reaches typical_p; by_id, llama.cpp's
 * rule: until it exceeds typical_p, ties by lowest id. */
static void klist_typical(tp_klist *L, double typical_p, double inv_t, int by_id)
{
    double z, mean_s;
    tp_rank r = {1, 0.0f, inv_t, 0.0};
    r.max = klist_exps(L, inv_t, &z, &mean_s);
    r.mean_s = mean_s;
    const double target = typical_p * z;
    klist_select(L, &r, by_id ? nextafter(target, INFINITY) : target, by_id);
}

/* Top-p by llama.cpp's rule: from the most likely until the mass reaches
 * top_p, ties by lowest id. */
static void klist_top_p_by_id(tp_klist *L, double top_p)
{
    double z;
    klist_exps(L, 1.0, &z, NULL);
    const tp_rank r = {0, 0.0f, 1.0, 0.0};
    klist_select(L, &r, top_p * z, 1);
}

/* Keeps the tokens of probability >= cut (a fraction of the listed mass,
 * found from the exponentials in L->e and their total z) and those at the
 * largest logit m: epsilon's and eta's rule. */
static void klist_keep_likely(tp_klist *L, float m, double z, double cut)
{
    const double floor = cut * z;
    for (int64_t j = 0; j < L->c; j++)
        L->key[j] = (float)((double)L->e[j] >= floor || L->x[j] == m);
    klist_compact(L);
}

/* Epsilon: drops p < epsilon. */
static void klist_epsilon(tp_klist *L, double epsilon, double inv_t)
{
    double z;
    const float m = klist_exps(L, inv_t, &z, NULL);
    klist_keep_likely(L, m, z, epsilon);
}

/* Eta: drops p < min(eta, sqrt(eta) exp(-H)), H the entropy. */
static void klist_eta(tp_klist *L, double eta, double inv_t)
{
    double z, mean_s;
    const float m = klist_exps(L, inv_t, &z, &mean_s);
    const double entropy = log(z) - mean_s;
    const double alt = sqrt(eta) * exp(-entropy);
    klist_keep_likely(L, m, z, eta < alt ? eta : alt);
}

/* XTC: where two or more tokens have p >= threshold, drops all of them but
 * the least likely (its ties all stay; by_id, only the highest id of them,
 * the last in a sort that breaks ties by lowest id). */
static void klist_xtc(tp_klist *L, double threshold, double inv_t, int by_id)
{
    double z;
    klist_exps(L, inv_t, &z, NULL);
    const double floor = threshold * z;
    int64_t count = 0, last = -1;
    float low = INFINITY;
    for (int64_t j = 0; j < L->c; j++)
        if ((double)L->e[j] >= floor) {
            count++;
            if (L->x[j] <= low) {
                low = L->x[j];
                last = j;
            }
        }
    if (count < 2)
        return;
    for (int64_t j = 0; j < L->c; j++)
        L->key[j] = (float)(L->x[j] < low || (L->x[j] == low && (!by_id || j == last)));
    klist_compact(L);
}

/* llama.cpp's top-k: exactly k of the listed tokens (all >= the k-th
 * largest, t), the ties at t by lowest id. */
static void klist_exact_k(tp_klist *L, int64_t k, float t)
{
    int64_t above = 0;
    for (int64_t j = 0; j < L->c; j++)
        above += L->x[j] > t;
    for (int64_t j = 0; j < L->c; j++) {
        const int keep = L->x[j] > t || (L->x[j] == t && above < k);
        above += L->x[j] == t && keep;
        L->key[j] = (float)keep;
    }
    klist_compact(L);
}

/* The later filters in tokenpick's order, at inverse temperature inv_t:
 * typical, epsilon, eta, XTC. */
static void klist_later(tp_klist *L, const tp_filter *f, double inv_t)
{
    if (tp_typical_acts(f))
        klist_typical(L, f->typical_p, inv_t, 0);
    if (f->epsilon > 0.0)
        klist_epsilon(L, f->epsilon, inv_t);
    if (f->eta > 0.0)
        klist_eta(L, f->eta, inv_t);
    if (f->xtc)
        klist_xtc(L, f->xtc_threshold, inv_t, 0);
}

/* llama.cpp's chain after top-n-sigma on the logits as they are (its
 * temperature comes last): top-k keeping exactly k (t its k-th largest,
 * where top-k acts), typical, top-p, min-p, XTC. */
static void klist_llama(tp_klist *L, const tp_filter *f, int top_k, float t)
{
    if (top_k)
        klist_exact_k(L, f->top_k, t);
    if (tp_typical_acts(f))
        klist_typical(L, f->typical_p, 1.0, 1);
    if (f->top_p < 1.0)
        klist_top_p_by_id(L, f->top_p);
    if (f->min_p > 0.0) {
        const float m = klist_max(L, NULL);
        const double log_m = log(f->min_p); /* min-p's test at T = 1 */
        for (int64_t j = 0; j < L->c; j++)
            L->key[j] = (float)((double)L->x[j] - (double)m >= log_m);
        klist_compact(L);
    }
    if (f->xtc)
        klist_xtc(L, f->xtc_threshold, 1.0, 1);
}

/* The kept set as the later kernels read it, from the list: the listed
 * candidates where they fit the workspace, else the spill's row of floats
 * with -inf outside it (n floats, in the place of the selections' scratch,
 * which is done); and the largest kept logit as the reference of their
 * exponentials, since the list may have lost the row's. */
static void klist_finish(tp_klist *L, int64_t n, tp_workspace *ws, tp_keep *keep)
{
    int64_t at;
    keep->max = klist_max(L, &at);
    keep->argmax = L->id[at];
    keep->run_sum = NULL;
    keep->run_per = 0;
    ws->runs.per = 0;
    if (L->c <= TP_CAND_CAP) {
        if (L->spilled)
            for (int64_t j = 0; j < L->c; j++) {
                ws->cand.x[j] = L->x[j];
                ws->cand.id[j] = L->id[j];
            }
        keep->ncand = L->c;
        return;
    }
    float *row = L->key;
    for (int64_t i = 0; i < n; i++)
        row[i] = -INFINITY;
    for (int64_t j = 0; j < L->c; j++)
        row[L->id[j]] = L->x[j];
    keep->row = row;
    keep->row_f32 = 1;
    keep->threshold = -FLT_MAX;
    keep->ncand = -1;
}

#endif /* TP_ELEM == TP_ELEM_F32 */

/* Lists the kept set {x >= t}, or the c candidates listed already (c >=
 * 0), leaving out tokens at -inf: in the workspace's candidates where it
 * fits, else in f->spill (6 n floats: ids, logits, exponentials and the
 * selections' two lists). */
static void klist_make(const TP_X *x, int64_t n, float t, int64_t c, const tp_filter *f,
                       tp_workspace *ws, tp_klist *L)
{
    const float lo = t > -FLT_MAX ? t : -FLT_MAX;
    if (c >= 0)
        c = filter_candidates(&ws->cand, c, lo);
    else
        c = gather_at_least(x, n, lo, &ws->cand);
    if (c >= 0) {
        *L = (tp_klist){ws->cand.x,  ws->cand.id, ws->cand.e, ws->work[0],
                        ws->work[1], c,           0,          &ws->hist};
        return;
    }
    float *s = f->spill;
    *L = (tp_klist){s + 2 * n, (int64_t *)s, s + 3 * n, s + 4 * n, s + 5 * n, 0, 1, &ws->hist};
    float *lx = L->x;
    int64_t *lid = L->id, listed = 0;
    for (int64_t i = 0; i < n; i++) { /* each written, listed if at least lo */
        const float v = x_at(x, i);
        lx[listed] = v;
        lid[listed] = i;
        listed += v >= lo;
    }
    L->c = listed;
}
