/*
 * top-k: the k-th largest logit of the row, exactly, and the tokens at or
 * above it, listed when they are few.  top_k_candidates chooses the route,
 * falling through to the next when one gives up:
 *
 *   1. blocks  k up to an eighth of the row's blocks: the blocks whose maxima
 *              (left by the checking pass) are among the k largest hold the
 *              candidates (gather_top_blocks)
 *   2. probe   k up to n / 16: a probe of the row estimates a threshold that
 *              a few times k tokens pass; they are gathered
 *   3. band    larger k on long rows: a strided pick brackets the k-th largest
 *              in a band of the row, gathered with a count of the tokens above
 *              (kth_largest_by_band); too many to list
 *   4. row     the k-th largest of the whole row (kth.c), then a gather
 */
#include "row.h"
#include "vec.h"

/* Blocks of the block route: about this many, so that the block maxima fit
 * L1 and the branch per block is cheap. */
#define TP_TOP_BLOCKS 512
/* Rows shorter than this take the selection over the row: a pass over it
 * costs less than the setup of the other routes. */
#define TP_TOPK_SHORT_ROW 4096
/* The probe of route 2: 64 lines of 16 logits. */
#define TP_TOPK_PROBE 1024

/* The size of the blocks of gather_top_blocks for top-k of k (0 < k < n) on
 * a row of n tokens: a power of two, at least 32, giving about TP_TOP_BLOCKS
 * blocks, more if k needs them, but at most TP_BLOCKS_MAX; 0 where the route
 * does not apply (short rows, k over an eighth of the blocks). */
static int64_t top_k_block_size(int64_t n, int64_t k)
{
    int64_t bs = 32;
    while (n > bs * TP_BLOCKS_MAX || (n > bs * TP_TOP_BLOCKS && n / (2 * bs) >= 8 * k))
        bs *= 2;
    return n >= TP_TOPK_SHORT_ROW && k <= n / bs / 8 ? bs : 0;
}

/* scan_top_k: the checking pass, which for a row that top-k's block route
 * will filter also stores the block maxima it reads, in ws->block_max; for
 * any other k (0 for none), the plain checking pass.  With moments, it also
 * sums top-n-sigma's moments (moments.c). */
static int tp_scan_top_k(const void *row, int64_t n, int64_t k, int moments, tp_workspace *ws,
                         tp_rowstat *st)
{
    const TP_X *x = row;
    int64_t bs = k > 0 && k < n ? top_k_block_size(n, k) : 0;
    int code;
    if (moments && bs < 4 * TP_VW) /* too small for the moments' lanes: top-k scans again */
        bs = 0;
    if (!bs)
        return moments ? scan_blocks(x, n, TP_SCAN_BLOCK, NULL, 1, st)
                       : scan_blocks(x, n, TP_SCAN_BLOCK, NULL, 0, st);
    code = moments ? scan_blocks(x, n, bs, ws->block_max, 1, st)
                   : scan_blocks(x, n, bs, ws->block_max, 0, st);
    if (code == TP_OK) {
        st->bmax = ws->block_max;
        st->bmax_bs = bs;
    }
    return code;
}

/* scan_top_k of the row as the logit processors p leave it (proc.c). */
static int tp_scan_processed(const void *row, int64_t n, int64_t k, const tp_proc *p,
                             tp_workspace *ws, tp_rowstat *st)
{
    const TP_X *x = row;
    const int64_t bs = k > 0 && k < n ? top_k_block_size(n, k) : 0;
    float *bmax = bs ? ws->block_max : NULL;
    const int code = scan_processed_blocks(x, n, bs ? bs : TP_SCAN_BLOCK, p, bmax, st);
    if (code == TP_OK && bs) {
        st->bmax = ws->block_max;
        st->bmax_bs = bs;
    }
    return code;
}

/* The block route: the row is cut into blocks of bs tokens, and the k-th
 * largest of their maxima, t, bounds the row's k-th largest from below (k
 * blocks have a token >= t), and every token >= t lies in a block whose max
 * is >= t: those blocks, k or a few more, are all that is gathered.  The
 * only branches that depend on where the row's large logits lie are one per
 * block, taken about k times, and those of the gather in the blocks taken.
 * A row with logit processors (st->proc): the maxima are of the tokens the
 * processors leave as they are (so t bounds the k-th largest all the same),
 * and the blocks taken are those whose max is >= t and those holding a
 * patch >= t, each processed (into the workspace, a chunk at a time, with
 * its patches at or above t) and gathered from there.  Returns the number of
 * candidates (every token >= t, at least k; where t is -inf, fewer than k
 * blocks hold a finite logit, and the candidates are every finite token),
 * or -1 past TP_CAND_CAP (ties filling most blocks) or, with processors,
 * without the maxima of the processed blocks. */
static int64_t gather_top_blocks(const TP_X *x, int64_t n, int64_t k, int64_t bs,
                                 const tp_rowstat *st, tp_workspace *ws)
{
    const int64_t nb = (n + bs - 1) / bs;
    const float *bmax = st->bmax;
    const tp_proc *p = st->proc;
    if (!bmax || st->bmax_bs != bs) { /* the checking pass did not leave them */
        if (p)
            return -1;
        tp_rowstat again;
        scan_blocks(x, n, bs, ws->block_max, 0, &again);
        bmax = ws->block_max;
    }
    const float t = kth_largest_f32(bmax, nb, k, ws);
    const float lo = t > -INFINITY ? t : -FLT_MAX; /* -inf has no probability: not listed */
    const tp_gather how = {lo, INFINITY, 0, 0, 1, NULL};
    const int64_t m = p ? patches_at_least(p, lo, ws) : 0; /* the patches among them */
    if (m < 0)
        return -1;
    int64_t c = 0, next = 0;
    for (int64_t b = 0; b < nb; b++) {
        const int64_t end = (b + 1) * bs < n ? (b + 1) * bs : n;
        if (!(bmax[b] >= lo) && !(next < m && ws->patches.id[next] < end))
            continue;
        if (p ? !gather_processed(x, b * bs, end, how, p, m, &next, ws, &c)
              : !gather_range(x, b * bs, end, how, &ws->cand, &c))
            return -1;
    }
    return c;
}

/* Route 1, the block route, where it applies to top-k of k: the
 * candidates, listed, and the k-th largest in *kth; or -1. */
static int64_t top_k_by_blocks(const TP_X *x, int64_t n, int64_t k, const tp_rowstat *st,
                               tp_workspace *ws, float *kth)
{
    const int64_t bs = top_k_block_size(n, k);
    const int64_t c = bs ? gather_top_blocks(x, n, k, bs, st, ws) : -1;
    if (c < 0)
        return -1;
    TP_ROUTE(TP_ROUTE_TOPK_BLOCKS);
    if (c < k) { /* fewer than k finite logits: the k-th largest is -inf */
        *kth = -INFINITY;
        return c;
    }
    *kth = kth_largest_f32(ws->cand.x, c, k, ws);
    return filter_candidates(&ws->cand, c, *kth);
}

/* The band route, for k too large for the others (more than a few percent
 * of the row): a strided pick of m values estimates the ranks around k m / n,
 * 4 standard errors (of a binomial count) either way, and their values
 * [lo, hi] bound a band of the row.  One pass counts the tokens above hi and
 * gathers the band; if the k-th largest lies in the band, it is selected
 * there exactly (returns 1).  Otherwise (an unlucky or misleading pick, or a
 * band too full to gather) returns 0. */
static int kth_largest_by_band(const TP_X *x, int64_t n, int64_t k, tp_workspace *ws, float *kth)
{
    const int64_t m = n / 16 < TP_PROBE_MAX ? n / 16 : TP_PROBE_MAX;
    const int64_t stride = n / m;
    float *v = ws->probe.x;
    for (int64_t j = 0; j < m; j++)
        v[j] = x_at(x, j * stride);
    const double p = (double)k / (double)n, rank = p * (double)m;
    const double margin = 4.0 * sqrt((double)m * p * (1.0 - p)) + 4.0;
    const int64_t r_hi = (int64_t)floor(rank - margin), r_lo = (int64_t)ceil(rank + margin);
    const float hi = r_hi >= 1 ? kth_largest_quickselect_f32(v, m, r_hi, ws) : INFINITY;
    const float lo = r_lo <= m ? kth_largest_quickselect_f32(v, m, r_lo, ws) : -INFINITY;
    int64_t above;
    const int64_t c = gather_band_count_above(x, n, lo, hi, &ws->cand, &above);
    if (c <= 0 || !(above < k && k <= above + c))
        return 0;
    *kth = kth_largest_f32(ws->cand.x, c, k - above, ws);
    return 1;
}

/* The k-th largest logit into *kth, exactly, and the candidates >= it in
 * ws->cand: returns their number, or -1 when they are too many to list.
 * x is the row itself (st->proc NULL). */
static int64_t top_k_candidates(const TP_X *x, int64_t n, int64_t k, const tp_rowstat *st,
                                tp_workspace *ws, float *kth)
{
    if (top_k_block_size(n, k)) {
        const int64_t c = top_k_by_blocks(x, n, k, st, ws, kth);
        if (c >= 0)
            return c;
    } else if (n >= TP_TOPK_SHORT_ROW && k <= n / 16) {
        probe_lines(x, n, TP_TOPK_PROBE, ws->probe.x);
        /* expect about twice k above the estimate, and at least 8 lines' worth */
        const int64_t r = (int64_t)(2.0 * (double)k * TP_TOPK_PROBE / (double)n) + 8;
        const float estimate = kth_largest_f32(ws->probe.x, TP_TOPK_PROBE, r, ws);
        const int64_t c = gather_at_least(x, n, estimate, &ws->cand);
        if (c >= k) {
            TP_ROUTE(TP_ROUTE_TOPK_PROBE);
            *kth = kth_largest_f32(ws->cand.x, c, k, ws);
            return filter_candidates(&ws->cand, c, *kth);
        }
    } else if (n >= TP_TOPK_SHORT_ROW && n > TP_CAND_CAP && kth_largest_by_band(x, n, k, ws, kth)) {
        TP_ROUTE(TP_ROUTE_TOPK_BAND);
        return -1; /* too many to list: a compare pass costs less than gathering them */
    }
    TP_ROUTE(TP_ROUTE_TOPK_ROW);
    *kth = kth_largest(x, n, k, ws);
    return gather_at_least(x, n, *kth, &ws->cand);
}
