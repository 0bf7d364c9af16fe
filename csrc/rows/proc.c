/*
 * The logit processors, applied as the kernels read the row (tp_proc in
 * tokenpick.h): a token whose allow bit is set reads as its logit, any
 * other as its patch, if it has one, or -inf (banned).  The checking pass
 * reads the row through the bits at the cost of a masked max per vector,
 * the patches folded in after it; top-k's block route processes only the
 * blocks it gathers from (topk.c), with the few patches that can be
 * candidates; the routes that read the row whole get it processed into
 * proc->row first (keep.c).
 */
#include "patch.h"
#include "row.h"
#include "vec.h"

TP_FORCE_INLINE int allows(const tp_proc *p, int64_t j)
{
    return (int)((p->allow[j >> 5] >> (j & 31)) & 1u);
}

/* out[0..to - from) = the logits of tokens from..to (from a multiple of 32,
 * or fewer than 32 tokens) as the allow bits leave them, -inf where a bit is
 * clear, the patches aside; out may be x + from.  A word of the allow bits a
 * step: 32 / TP_VW vectors. */
static void process_range(const TP_X *x, int64_t from, int64_t to, const tp_proc *p, float *out)
{
    const tp_vf none = vf_set1(-INFINITY);
    int64_t i = from;
    out -= from; /* indexed by token from here on */
    for (; i + 32 <= to; i += 32) {
        const uint32_t w = p->allow[i >> 5];
        if (w == ~0u) {
            for (int v = 0; v < 32; v += TP_VW)
                vf_store(out + i + v, vx_load(x + i + v));
        } else {
            for (int v = 0; v < 32; v += TP_VW)
                vf_store(out + i + v, vf_keep_bits(vx_load(x + i + v), w >> v, none));
        }
    }
    for (; i < to; i++)
        out[i] = allows(p, i) ? x_at(x, i) : -INFINITY;
}

/* The whole row processed: out[i] = the processed logit of token i. */
static void tp_process(const void *row, int64_t n, const tp_proc *p, float *out)
{
    const TP_X *x = row;
    process_range(x, 0, n, p, out);
    for (int64_t j = 0; j < p->nids; j++)
        out[p->ids[j]] = p->vals[j];
}

/* Sorts the patches list[0..m) by id (distinct): by insertion where they
 * are few, as they nearly always are; by heapsort otherwise. */
static void sort_patches(tp_patches *list, int64_t m)
{
    int64_t *id = list->id;
    float *x = list->x;
    if (m <= 32) {
        for (int64_t j = 1; j < m; j++) {
            const int64_t key = id[j];
            const float v = x[j];
            int64_t i = j;
            for (; i > 0 && id[i - 1] > key; i--) {
                id[i] = id[i - 1];
                x[i] = x[i - 1];
            }
            id[i] = key;
            x[i] = v;
        }
        return;
    }
    for (int64_t end = m, start = m / 2;;) { /* a max-heap of ids, then its root last */
        if (start > 0) {
            start--;
        } else if (--end > 0) {
            const int64_t ti = id[0];
            const float tx = x[0];
            id[0] = id[end];
            x[0] = x[end];
            id[end] = ti;
            x[end] = tx;
        } else {
            return;
        }
        for (int64_t at = start, child; (child = 2 * at + 1) < end; at = child) {
            if (child + 1 < end && id[child + 1] > id[child])
                child++;
            if (id[at] >= id[child])
                break;
            const int64_t ti = id[at];
            const float tx = x[at];
            id[at] = id[child];
            x[at] = x[child];
            id[child] = ti;
            x[child] = tx;
        }
    }
}

/* The patches of p at or above lo, in ascending id, into ws->patches:
 * their number, or -1 past TP_CAND_CAP. */
static int64_t patches_at_least(const tp_proc *p, float lo, tp_workspace *ws)
{
    if (!(p->top >= lo)) /* none: the usual case, the patches mostly lowering logits */
        return 0;
    int64_t m = 0;
    for (int64_t j = 0; j < p->nids; j++) /* how many (a loop the compiler vectorizes) */
        m += p->vals[j] >= lo;
    if (m > TP_CAND_CAP)
        return -1;
    for (int64_t j = 0, found = 0; found < m; j++) {
        ws->patches.id[found] = p->ids[j];
        ws->patches.x[found] = p->vals[j];
        found += p->vals[j] >= lo;
    }
    sort_patches(&ws->patches, m);
    return m;
}

/* Appends the tokens of x[from..to) that how takes, as processed by p, to
 * the *c candidates (gather_range's contract), the patches being the m of
 * ws->patches from *next on (patches_at_least, how.lo the same): the row's
 * tokens through the allow bits (a patched token's bit is clear), then the
 * range's patches merged in by id (they and the hits are few; how.ids
 * set). */
static int gather_processed(const TP_X *x, int64_t from, int64_t to, tp_gather how,
                            const tp_proc *p, int64_t m, int64_t *next, tp_workspace *ws,
                            int64_t *c)
{
    const int64_t first = *c;
    how.allow = p->allow;
    if (!gather_range(x, from, to, how, &ws->cand, c))
        return 0;
    const int64_t *pid = ws->patches.id;
    const float *px = ws->patches.x;
    int64_t j = *next, last = j, taken = 0;
    for (; last < m && pid[last] < to; last++)
        taken += !how.bounded || px[last] <= how.hi;
    *next = last;
    if (taken == 0)
        return 1;
    if (*c + taken > TP_CAND_CAP)
        return 0;
    /* from the back: the larger id of the two lists' last to the end */
    int64_t *id = ws->cand.id;
    float *v = ws->cand.x;
    int64_t a = *c - 1, out = *c + taken - 1;
    for (int64_t b = last - 1; b >= j;) {
        if (how.bounded && px[b] > how.hi) {
            b--;
        } else if (a >= first && id[a] > pid[b]) {
            id[out] = id[a];
            v[out--] = v[a--];
        } else {
            id[out] = pid[b];
            v[out--] = px[b--];
        }
    }
    *c += taken;
    return 1;
}

/* The first allowed token of x[from..from+len) equal to v (from a
 * multiple of 32), or -1. */
static int64_t first_allowed_equal(const TP_X *x, int64_t from, int64_t len, const tp_proc *p,
                                   float v)
{
    const tp_vf vv = vf_set1(v);
    int64_t i = from;
    for (; i + 32 <= from + len; i += 32) {
        const uint32_t w = p->allow[i >> 5];
        for (int b = 0; b < 32; b += TP_VW) {
            const uint32_t hits = vf_eq_bits(vx_load(x + i + b), vv) & (w >> b);
            if (hits)
                return i + b + tp_lowest_bit(hits);
        }
    }
    for (; i < from + len; i++)
        if (allows(p, i) && x_at(x, i) == v)
            return i;
    return -1;
}

/* The checking pass of scan.c over blocks of bs tokens (a power of two, at
 * least 32), reading the row through the allow bits (a word of them at a
 * time), the patches aside (fold_patches adds them once they are made):
 * the max of each block's allowed tokens into bmax[] if not NULL, their max
 * and its first token (-inf and n where none is allowed), and the checks of
 * x itself (NaN, +inf, all -inf). */
static int scan_processed_blocks(const TP_X *x, int64_t n, int64_t bs, const tp_proc *p,
                                 float *bmax, tp_rowstat *st)
{
    const tp_vf none = vf_set1(-INFINITY);
    tp_vf r0 = none, r1 = none, r2 = none, r3 = none; /* the max of all logits, in lanes */
    float max = -INFINITY, tail_raw = -INFINITY;      /* of the allowed logits; of the tail */
    int64_t best = 0;                                 /* the block where max first appears */
    uint32_t nan = 0;
    for (int64_t at = 0, b = 0; at < n; at += bs, b++) {
        const int64_t end = n - at < bs ? n : at + bs;
        tp_vf m0 = none, m1 = none, m2 = none, m3 = none;
        const uint32_t *w = p->allow + (at >> 5);
        int64_t i = at;
        for (; i + 64 <= end; i += 64, w += 2) { /* two words of the allow bits a step */
            if ((w[0] & w[1]) == ~0u) {          /* all allowed: the max of the logits themselves */
                for (int o = 0; o < 64; o += 4 * TP_VW) {
                    const tp_vf a = vx_load(x + i + o), b = vx_load(x + i + o + TP_VW);
                    const tp_vf c = vx_load(x + i + o + 2 * TP_VW);
                    const tp_vf d = vx_load(x + i + o + 3 * TP_VW);
                    nan |= vf_nan2_bits(a, b) | vf_nan2_bits(c, d);
                    m0 = vf_max(m0, a);
                    m1 = vf_max(m1, b);
                    m2 = vf_max(m2, c);
                    m3 = vf_max(m3, d);
                }
                continue;
            }
            for (int o = 0; o < 64; o += 4 * TP_VW) {
                const tp_vf a = vx_load(x + i + o), b = vx_load(x + i + o + TP_VW);
                const tp_vf c = vx_load(x + i + o + 2 * TP_VW), d = vx_load(x + i + o + 3 * TP_VW);
                nan |= vf_nan2_bits(a, b) | vf_nan2_bits(c, d);
                r0 = vf_max(r0, a);
                r1 = vf_max(r1, b);
                r2 = vf_max(r2, c);
                r3 = vf_max(r3, d);
                m0 = vf_max_where(m0, a, w[o >> 5] >> (o & 31));
                m1 = vf_max_where(m1, b, w[(o + TP_VW) >> 5] >> ((o + TP_VW) & 31));
                m2 = vf_max_where(m2, c, w[(o + 2 * TP_VW) >> 5] >> ((o + 2 * TP_VW) & 31));
                m3 = vf_max_where(m3, d, w[(o + 3 * TP_VW) >> 5] >> ((o + 3 * TP_VW) & 31));
            }
        }
        for (; i + 32 <= end; i += 32, w++) /* blocks of 32 tokens, or the last 32 */
            for (int o = 0; o < 32; o += TP_VW) {
                const tp_vf a = vx_load(x + i + o);
                nan |= vf_nan_bits(a);
                r0 = vf_max(r0, a);
                m0 = vf_max_where(m0, a, w[0] >> o);
            }
        float block_max = vf_hmax(vf_max(vf_max(m0, m1), vf_max(m2, m3)));
        for (; i < end; i++) {
            const float v = x_at(x, i);
            nan |= v != v;
            tail_raw = v > tail_raw ? v : tail_raw;
            if (allows(p, i) && v > block_max)
                block_max = v;
        }
        if (bmax)
            bmax[b] = block_max;
        if (block_max > max) {
            max = block_max;
            best = at;
        }
    }
    /* the blocks' maxima bound the logits where all are allowed */
    const float lanes_raw = vf_hmax(vf_max(vf_max(r0, r1), vf_max(r2, r3)));
    float raw = lanes_raw > tail_raw ? lanes_raw : tail_raw;
    raw = max > raw ? max : raw;
    st->bmax = NULL;
    st->bmax_bs = 0;
    st->sigma_m[0] = -1.0;
    st->proc = p;
    if (nan)
        return TP_ERR_NAN;
    if (raw == INFINITY)
        return TP_ERR_POSINF;
    if (raw == -INFINITY)
        return TP_ERR_ALL_NEGINF;

    st->max = max;
    st->argmax = n;
    if (max > -INFINITY) {
        const int64_t len = n - best < bs ? n - best : bs;
        st->argmax = first_allowed_equal(x, best, len, p, max);
    }
    return TP_OK;
}

/* The kernels' make_patches: the listed tokens' logits read from the row
 * (in the cache: the checking pass has just read it), then patch.h's
 * arithmetic on them. */
static int64_t tp_make_patches(const void *row, const tp_patch_list *l, float *vals, tp_proc *p)
{
    const TP_X *x = row;
    for (int64_t j = 0; j < l->m; j++)
        vals[j] = x_at(x, l->ids[j]);
    patch_values(l, vals);
    return list_patches(l->ids, vals, l->m, p);
}

/* The patched tokens into what the checking pass found: the largest, lowest
 * id first (tp_proc_patch found them).  The blocks' maxima stay those of
 * the untouched tokens: top-k's block route also takes the blocks of the
 * patches above its threshold (gather_top_blocks). */
static int tp_fold_patches(const tp_proc *p, tp_workspace *ws, tp_rowstat *st)
{
    (void)ws;
    if (p->top > st->max || (p->top == st->max && p->top_id < st->argmax)) {
        st->max = p->top;
        st->argmax = p->top_id;
    }
    return st->max == -INFINITY ? TP_ERR_NONE_LEFT : TP_OK;
}
