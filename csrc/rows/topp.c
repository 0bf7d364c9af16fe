/*
 * top-p: the smallest logit of the nucleus, the shortest most-probable set
 * of tokens whose mass reaches top_p of the row's (ties at the boundary all
 * kept).  It needs the row's total mass z, which takes a pass of
 * exponentials; the same pass gathers the tokens that may be in the nucleus,
 * so the row is read once more after the checking pass.  nucleus_threshold
 * chooses the route, falling through to the next when one gives up:
 *
 *   1. listed       top-k listed its kept tokens: select among them (mass.c)
 *   2. bound        a probe says few tokens lie above a bound t0 below which
 *                   the mass is negligible: they are gathered while the pass
 *                   sums z, and selected (again with the exact z's bound if
 *                   the probe's estimate of z set t0 too high)
 *   3. band         many do (flat rows): the probe brackets the boundary in a
 *                   band of a few thousand tokens, which the pass gathers with
 *                   the mass above it, run by run (probe_band, band_pass);
 *                   again with the exact z if the estimate missed
 *   4. histogram    the first radix level over the row's mass, then the
 *                   tokens of the one bin where the mass crosses the target
 *   5. radix        the radix select over the row (radix.c)
 *
 * Every route is exact and linear in n; the probe only decides which is
 * cheapest.
 */
#include "row.h"
#include "vec.h"

/* The length of the runs of a row of n tokens whose kept mass ws->runs
 * holds: TP_CHUNK tokens (16 KB of logits and exponentials, in L1 while a
 * pass works on them), or a multiple on rows of over TP_RUNS_MAX such runs. */
static int64_t run_length(int64_t n)
{
    int64_t per = TP_CHUNK;
    while ((n + per - 1) / per > TP_RUNS_MAX)
        per *= 2;
    return per;
}

/* The probe of the row for top-p (gather.c): its values to ws->probe.x and
 * their exponentials to ws->probe.e, their sum (at most the row's total) to
 * *sum; returns their number, m. */
static int64_t nucleus_probe(const tp_row *r, double *sum)
{
    tp_probe *p = &r->ws->probe;
    const int64_t m = probe_size(r->n);
    if (m > 0)
        probe_lines(r->x, r->n, m, p->x);
    *sum = sum_exp_store_f32(p->x, m, r->max, r->rate, r->cutoff, p->e);
    return m;
}

/* The smallest and largest of the values v[j] of positive weight w[j]
 * (values below the cutoff and -inf have weight 0): value_range, and a
 * scalar pass over them when the smallest has no weight. */
static void weighted_value_range(const float *v, const float *w, int64_t n, float cutoff, float *lo,
                                 float *hi)
{
    value_range(v, n, lo, hi);
    if (*lo >= cutoff && *lo > -INFINITY)
        return;
    float bottom = INFINITY;
    for (int64_t j = 0; j < n; j++)
        bottom = w[j] > 0.0f && v[j] < bottom ? v[j] : bottom;
    *lo = bottom;
}

/* From the row's probe (m values and their exponentials, each standing for
 * n / m tokens of the row), a value range band[0] <= x <= band[1] that holds
 * the probe's values of ranks rank - half to rank + half from the top,
 * where rank estimates the probe rank of the nucleus boundary: the tokens
 * below it hold 1 - top_p of the row's mass z, and the probe's tokens below
 * rank estimate that mass.  (Estimated from the bottom, where each token
 * weighs little, the rank errs far less than from the probe's own total at
 * low temperatures; but z is known only once a pass has summed the row, and
 * z <= 0 takes the probe's total times n / m instead.)  The ranks come from
 * a histogram of the probe in TP_VALUE_BINS bins of equal width (counts and
 * mass); each end of the range is widened to the edge of the bin holding
 * its rank.  Returns 0 when the probe has no mass or spans too wide or too
 * narrow a range for bins. */
static int probe_band(const tp_row *r, int64_t m, double top_p, double z, int64_t half,
                      float band[2])
{
    enum { NB = TP_VALUE_BINS };
    const float *v = r->ws->probe.x, *w = r->ws->probe.e;
    tp_hist *h = &r->ws->hist;
    const int64_t n = r->n;
    float bottom, top;
    weighted_value_range(v, w, m, r->cutoff, &bottom, &top);
    if (!(bottom < top) || !(top - bottom < 1e38f))
        return 0;
    const float scale = (float)(NB - 1) / (top - bottom);
    if (!(scale < INFINITY))
        return 0;

    /* counts and mass of each bin (NB: the values of no weight), in
     * interleaved copies, as in select_by_value_bins */
    int32_t bin[TP_BIN_TILE], counts[TP_HIST_COPIES * (NB + 1)];
    memset(counts, 0, sizeof counts);
    memset(h->copies, 0, TP_HIST_COPIES * (size_t)(NB + 1) * sizeof h->copies[0]);
    for (int64_t at = 0; at < m; at += TP_BIN_TILE) {
        const int64_t len = m - at < TP_BIN_TILE ? m - at : TP_BIN_TILE;
        value_bins(v + at, w + at, len, bottom, scale, bin);
        for (int64_t j = 0; j < len; j++) {
            const int32_t k = TP_HIST_COPIES * bin[j] + (int32_t)(j % TP_HIST_COPIES);
            h->copies[k] += w[at + j];
            counts[k]++;
        }
    }
    merge_hist_copies(h, NB);
    int64_t *count = h->count, weighted = 0;
    double total = 0.0;
    for (int b = 0; b < NB; b++) {
        count[b] = 0;
        for (int j = 0; j < TP_HIST_COPIES; j++)
            count[b] += counts[TP_HIST_COPIES * b + j];
        weighted += count[b];
        total += h->mass[b];
    }
    if (!(total > 0.0))
        return 0;
    if (!(z > 0.0))
        z = total * ((double)n / (double)m);

    /* the crossing rank, interpolated within its bin */
    const double part = total - (1.0 - top_p) * z * ((double)m / (double)n);
    int64_t rank = 0;
    if (part > 0.0) {
        double above;
        const int crossing = crossing_bin(h, NB, part, &above);
        if (crossing < 0)
            return 0;
        for (int b = NB - 1; b > crossing; b--)
            rank += count[b];
        const double within = (part - above) / h->mass[crossing];
        rank += (int64_t)((double)count[crossing] * (within < 1.0 ? within : 1.0));
    }

    /* the bins of ranks rank - half and rank + half (-1 past either end) */
    int b_hi = -1, b_lo = -1;
    int64_t ranked = 0;
    for (int b = NB - 1; b >= 0 && b_lo < 0; b--) {
        if (count[b] == 0)
            continue;
        ranked += count[b];
        if (b_hi < 0 && ranked > rank - half && rank - half >= 0)
            b_hi = b;
        if (ranked > rank + half && rank + half < weighted)
            b_lo = b;
    }
    /* the edges of those bins, as nearly as float arithmetic gives them:
     * the band need not be exact, as the caller checks it */
    band[1] = b_hi >= 0 ? bottom + (float)(b_hi + 1) / scale : r->max;
    const float lo_v = bottom + (float)b_lo / scale;
    band[0] = b_lo >= 0 && lo_v > r->cutoff ? lo_v : r->cutoff;
    return 1;
}

/* One pass over the row for a wide nucleus, a chunk of TP_CHUNK tokens at a
 * time, while the chunk is in L1: the sum of the exponentials over the
 * tokens >= the cutoff to *z; the mass above hi of each run of
 * run_length(n) tokens to ws->runs.sum, and in all to *above; and the
 * tokens in [lo, hi] to the candidates, values only (the caller computes
 * their exponentials again, and the run of each is known from
 * ws->runs.first, which is all that is asked of their ids).  Returns the
 * candidates' number, or -1 past TP_CAND_CAP (the sums are complete either
 * way). */
static int64_t band_pass(const tp_row *r, float lo, float hi, double *z, double *above)
{
    tp_workspace *ws = r->ws;
    const int64_t n = r->n, per = run_length(n); /* a multiple of TP_CHUNK */
    const float past_hi = nextafterf(hi, INFINITY);
    double total = 0.0, high = 0.0;
    int64_t c = 0;
    int room = 1;
    for (int64_t i = 0; i < n; i += TP_CHUNK) {
        const int64_t len = n - i < TP_CHUNK ? n - i : TP_CHUNK;
        if (i % per == 0) {
            ws->runs.sum[i / per] = 0.0;
            ws->runs.first[i / per] = c;
        }
        double sums[2];
#if TP_VARITH && TP_VCOMPRESS
        room = exp_band_chunk(r, i, len, (tp_band){lo, past_hi}, room ? &c : NULL, sums);
#else
        sums[0] = sum_exp_store(r->x + i, len, r->max, r->rate, r->cutoff, ws->chunk_e);
        sums[1] = sum_stored_store(r->x + i, ws->chunk_e, len, past_hi, NULL);
        room = room
               && gather_range(r->x, i, i + len, (tp_gather){lo, hi, 1, 1, 0, NULL}, &ws->cand, &c);
#endif
        total += sums[0];
        ws->runs.sum[i / per] += sums[1];
        high += sums[1];
    }
    *z = total;
    *above = high;
    return room ? c : -1;
}

/* Completes ws->runs.sum, which holds the mass above the band of each run of
 * the row, to the kept mass: adds the band's c candidates >= t, a run's at a
 * time (those of run j start at ws->runs.first[j]), and sets ws->runs.per. */
static void add_band_to_runs(const tp_row *r, int64_t c, float t)
{
    tp_workspace *ws = r->ws;
    const int64_t per = run_length(r->n), runs = (r->n + per - 1) / per;
    for (int64_t j = 0; j < runs; j++) {
        const int64_t first = ws->runs.first[j], end = j + 1 < runs ? ws->runs.first[j + 1] : c;
        ws->runs.sum[j] +=
            sum_stored_store_f32(ws->cand.x + first, ws->cand.e + first, end - first, t, NULL);
    }
    ws->runs.per = per;
}

/* Route 3: the nucleus boundary of a wide nucleus, bracketed from the row's
 * probe of m values: the probe estimates where the mass from the top crosses
 * top_p of the row's total (*z if known, > 0, else estimated from the
 * probe), and a band of probe ranks around that crossing, small enough that
 * the row's tokens within it fit the candidate list, gives a value range.
 * One pass (band_pass) sums the row and the mass above the band and gathers
 * the band; if the crossing is indeed within, the candidates finish the
 * selection exactly and *t gets the threshold (returns 1).  Otherwise (an
 * unlucky probe, or a row that the probe misrepresents) it returns 0, with
 * the row's total in *z if the pass ran. */
static int bracketed_nucleus_threshold(const tp_row *r, int64_t m, double top_p, double *z,
                                       float *t)
{
    if (m < 16)
        return 0;
    const int64_t stride = r->n / m;
    /* Half the band's width in probe ranks: 3 sqrt(m) / 2, several standard
     * errors of the estimated rank (csrc/README.md), each end then widened to
     * a whole bin; but at most 3/4 of TP_CAND_CAP tokens of the row, each
     * probe value standing for stride of them. */
    const int64_t by_error = 3 * (int64_t)sqrt((double)m) / 2;
    const int64_t by_room = (3 * TP_CAND_CAP / (4 * stride) - 1) / 2;
    const int64_t half = by_error < by_room ? by_error : by_room;
    float band[2];
    if (!probe_band(r, m, top_p, *z, half, band))
        return 0;

    double mass_above;
    const int64_t c = band_pass(r, band[0], band[1], z, &mass_above);
    const double target = top_p * *z;
    if (c <= 0 || !(mass_above < target))
        return 0;
    tp_workspace *ws = r->ws;
    const double in_band = sum_exp_store_f32(ws->cand.x, c, r->max, r->rate, r->cutoff, ws->cand.e);
    if (!(mass_above + in_band >= target))
        return 0;
    *t = select_stored(r, c, target - mass_above);
    add_band_to_runs(r, c, *t);
    return 1;
}

/* Adds e[i] to the level-0 bin of x[i], in interleaved copies of the
 * histogram: consecutive tokens of a flat row fall in the same few bins, so
 * with one copy every addition would wait for the one before.  The bins of
 * a tile are computed first, in a loop that compilers vectorize. */
static void add_level0_mass(const TP_X *x, const float *e, int64_t len, tp_hist *h)
{
    uint32_t bin[TP_BIN_TILE];
    for (int64_t lo = 0; lo < len; lo += TP_BIN_TILE) {
        const int64_t m = len - lo < TP_BIN_TILE ? len - lo : TP_BIN_TILE;
        for (int64_t j = 0; j < m; j++)
            bin[j] = TP_HIST_COPIES * (tp_key(x_at(x, lo + j)) >> TP_LEVEL0_SHIFT)
                     + (uint32_t)(j % TP_HIST_COPIES);
        for (int64_t j = 0; j < m; j++)
            h->copies[bin[j]] += e[lo + j];
    }
}

/* Routes 3 to 5, for a row whose nucleus holds too many tokens to gather
 * above a bound (flat distributions), the probe of m values being in
 * ws->probe and the row's total z known if > 0: bracketed from the probe if
 * it can be, and if that fails with z unknown (its estimate from the probe
 * errs most at low temperatures), once more with the z that the failed
 * attempt's pass found.  Otherwise the first radix level runs over the whole
 * row, on exponentials computed a chunk at a time, and the tokens of the one
 * level-0 bin where the mass crosses the target are gathered by value range
 * and finished as candidates. */
static float wide_nucleus_threshold(const tp_row *r, int64_t m, double top_p, double z)
{
    const int nbins = 1 << TP_LEVEL0_BITS;
    const int z_known = z > 0.0;
    tp_workspace *ws = r->ws;
    float bracketed;
    if (bracketed_nucleus_threshold(r, m, top_p, &z, &bracketed)) {
        TP_ROUTE(TP_ROUTE_TOPP_BAND);
        return bracketed;
    }
    if (!z_known && z > 0.0 && bracketed_nucleus_threshold(r, m, top_p, &z, &bracketed)) {
        TP_ROUTE(TP_ROUTE_TOPP_BAND_EXACT);
        return bracketed;
    }
    if (!(z > 0.0))
        z = sum_exp(r->x, r->n, r->max, r->rate, r->cutoff);
    memset(ws->hist.copies, 0, TP_HIST_COPIES * (size_t)nbins * sizeof ws->hist.copies[0]);
    for (int64_t i = 0; i < r->n; i += TP_CHUNK) {
        const int64_t len = r->n - i < TP_CHUNK ? r->n - i : TP_CHUNK;
        sum_exp_store(r->x + i, len, r->max, r->rate, r->cutoff, ws->chunk_e);
        add_level0_mass(r->x + i, ws->chunk_e, len, &ws->hist);
    }
    merge_hist_copies(&ws->hist, nbins);

    const double target = top_p * z;
    double above;
    const int chosen = crossing_bin(&ws->hist, nbins, target, &above);
    const uint32_t first = (uint32_t)chosen << TP_LEVEL0_SHIFT;
    const uint32_t last = first | ((1u << TP_LEVEL0_SHIFT) - 1u);
    float lo = tp_unkey(first), hi = tp_unkey(last);
    lo = lo > r->cutoff ? lo : r->cutoff;
    const int64_t c = chosen < 0 ? -1 : gather_between(r->x, r->n, lo, hi, &ws->cand);
    if (c <= 0) {
        TP_ROUTE(TP_ROUTE_TOPP_RADIX);
        return radix_select_mass(r->x, NULL, r->n, r->cutoff, tp_exp_setup(r->max, r->rate), top_p,
                                 1, &ws->hist);
    }
    TP_ROUTE(TP_ROUTE_TOPP_HISTOGRAM);
    double listed_z;
    return select_listed_by_mass(r, c, target - above, 0, &listed_z);
}

/* Whether the row's probe (m values in v, each standing for n / m tokens)
 * says that clearly more than TP_CAND_CAP tokens are >= t (a gather would
 * fill the list, at some cost per token, only to give up).  On a row whose
 * neighbouring logits are independent the probe's count has a standard
 * error under 1.6% of n, so a margin of 25% of TP_CAND_CAP errs rarely (runs
 * of alike neighbours make it err more), and an error costs only time:
 * either way the selection is exact. */
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
 * exp((x - max) / T) over the tokens >= the cutoff, and gathers every token
 * >= t (t >= the cutoff) into the candidates, a chunk at a time while the
 * chunk is in L1; *c gets their number, or -1 past TP_CAND_CAP. */
static double sum_exp_gather(const tp_row *r, float t, int64_t *c)
{
    double z = 0.0;
    int64_t got = 0;
    int room = 1;
    for (int64_t i = 0; i < r->n; i += TP_CHUNK) {
        const int64_t len = r->n - i < TP_CHUNK ? r->n - i : TP_CHUNK;
        z += sum_exp(r->x + i, len, r->max, r->rate, r->cutoff);
        room = room
               && gather_range(r->x, i, i + len, (tp_gather){t, INFINITY, 0, 0, 1, NULL},
                               &r->ws->cand, &got);
    }
    *c = room ? got : -1;
    return z;
}

/* The bound t0 of route 2 for a row of mass z: the tokens below it hold less
 * than half of 1 - top_p of z.  Every token below t0 has probability below
 * exp((t0 - max) / T), so all of them together hold less than n times that;
 * rounded down, so that float rounding only lets more tokens through. */
static float nucleus_bound(const tp_row *r, double top_p, double z)
{
    const double below = log(0.5 * (1.0 - top_p) * z / (double)r->n) / r->inv_t;
    const float t0 = nextafterf((float)((double)r->max + below), -INFINITY);
    return t0 > r->cutoff ? t0 : r->cutoff;
}

/* The smallest logit of the top-p nucleus among the tokens >= the row's
 * cutoff.  *c is the number of listed candidates (all tokens >= the
 * cutoff), or -1; on return it lists a superset of the nucleus, or is -1
 * (and then, for the draw, ws->runs holds the kept mass of each run, if its
 * per > 0). */
static float nucleus_threshold(const tp_row *r, double top_p, int64_t *c)
{
    tp_workspace *ws = r->ws;
    double z = 0.0, listed_z;
    if (*c >= 0) {
        TP_ROUTE(TP_ROUTE_TOPP_LISTED);
        return select_listed_by_mass(r, *c, top_p, 1, &listed_z);
    }
    /* z is known only after the pass, so t0 comes first from the probe's
     * estimate of z: the max's own 1, and the rest of the probe's sum times
     * n / m (the max, in the probe, would stand for n / m tokens as large).
     * The tokens >= t0 then hold the nucleus if their mass reaches top_p of
     * the exact z (with room for the rounding of the two sums), and if not
     * (the estimate was too high), they are gathered again from the t0 of
     * the exact z. */
    double probe_sum;
    const int64_t m = nucleus_probe(r, &probe_sum);
    if (m > 0 && in_probe(r->n, m, r->argmax))
        probe_sum -= 1.0; /* the max's exponential, exactly 1 */
    const double rest = m > 0 && probe_sum > 0.0 ? probe_sum * ((double)r->n / (double)m) : 0.0;
    const float t0 = nucleus_bound(r, top_p, 1.0 + rest);
    if (!surely_too_many(ws->probe.x, m, r->n, t0)) {
        z = sum_exp_gather(r, t0, c);
        if (*c >= 0) {
            listed_z = sum_exp_store_f32(ws->cand.x, *c, r->max, r->rate, r->cutoff, ws->cand.e);
            if (listed_z >= top_p * z * (1.0 + 4e-7)) {
                TP_ROUTE(TP_ROUTE_TOPP_BOUND);
                return select_stored(r, *c, top_p * z);
            }
            *c = gather_at_least(r->x, r->n, nucleus_bound(r, top_p, z), &ws->cand);
            if (*c >= 0) {
                TP_ROUTE(TP_ROUTE_TOPP_BOUND_EXACT);
                return select_listed_by_mass(r, *c, top_p * z, 0, &listed_z);
            }
        }
    }
    return wide_nucleus_threshold(r, m, top_p, z);
}
