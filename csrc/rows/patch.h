/*
 * The arithmetic of the patches (tp_patch_list in tokenpick.h), of any
 * element type: each listed token's processed logit, and the largest of
 * them.  Compiled with each instruction set's kernels (proc.c's
 * tp_make_patches), whose widths its loops take: the compiler vectorizes
 * them.
 */
#ifndef TP_PATCH_H
#define TP_PATCH_H

#include "row.h"

/* The processed logit of a listed token, of logit v (not -inf), tally u
 * and bias (-0.0 if none: the one addend that leaves every double as it
 * is, -0.0 included): bias, then repetition, then frequency and presence,
 * in double, rounded once.  Selects, not branches (a branch on the sign or
 * the tally would be mispredicted about half the time), so that the
 * compiler vectorizes the loop of patches (it makes the choices selects
 * with -fno-trapping-math, which the build gives); the penalty subtracted
 * is +0.0 for a token the output lacks, which leaves every double as it
 * is.  Every operation is IEEE double's, none fused, so that every
 * instruction set computes the same float. */
static inline float processed_logit(float v, uint32_t u, double bias, const tp_patch_list *l)
{
    const double r = l->repetition, f = l->frequency, pres = l->presence; /* loaded always */
    const uint32_t count = u & TP_COUNT;
    const double d = (double)v + bias;
    const double repeated = d > 0.0 ? d / r : d * r;
    const double said = (u & (TP_PRESENT | TP_COUNT)) ? repeated : d;
    const double penalty = count ? f * (double)count + pres : 0.0;
    return (float)(said - penalty);
}

/* vals[j] = the patch of listed token j, of logit vals[j]: its processed
 * logit, -inf where banned, +inf or NaN where it overflows. */
static void patch_values(const tp_patch_list *l, float *vals)
{
    const uint32_t *tallies = l->tallies;
    for (int64_t j = 0; j < l->fixed; j++) {
        const float v = processed_logit(vals[j], tallies[j], l->bias[j], l);
        vals[j] = (tallies[j] & TP_BANNED) ? -INFINITY : v;
    }
    for (int64_t j = l->fixed; j < l->m; j++) { /* the loop the compiler vectorizes */
        const float v = processed_logit(vals[j], tallies[j], -0.0, l);
        vals[j] = (tallies[j] & TP_BANNED) ? -INFINITY : v;
    }
}

/* The m patches vals[] of ids[] made p's list, with the largest and its
 * lowest token; returns -1, or the lowest token whose patch overflowed (+inf
 * or NaN: the row is then refused, and the largest of no use).  The largest
 * by its order-preserving key, and how many patches equal it, in loops the
 * compiler vectorizes; then where it is (the lowest token of those, where
 * more than one equal it). */
static int64_t list_patches(const int64_t *ids, const float *vals, int64_t m, tp_proc *p)
{
    uint32_t best = tp_key(-INFINITY), over = 0;
    for (int64_t j = 0; j < m; j++) {
        const uint32_t key = tp_key(vals[j]), bits = tp_float_to_bits(vals[j]);
        best = key > best ? key : best;
        /* +inf or NaN of either sign: !(vals[j] <= FLT_MAX) */
        over |= ((bits & 0x7FFFFFFFu) > 0x7F800000u) | (bits == 0x7F800000u);
    }
    const float top = tp_unkey(best);
    int64_t ties = 0, at = INT64_MAX, bad = INT64_MAX;
    for (int64_t j = 0; j < m; j++)
        ties += vals[j] == top;
    if (ties == 1) {
        int64_t j = 0;
        while (vals[j] != top)
            j++;
        at = ids[j];
    } else {
        for (int64_t j = 0; j < m; j++)
            at = vals[j] == top && ids[j] < at ? ids[j] : at;
    }
    if (over)
        for (int64_t j = 0; j < m; j++)
            bad = !(vals[j] <= FLT_MAX) && ids[j] < bad ? ids[j] : bad;
    p->ids = ids;
    p->vals = vals;
    p->nids = m;
    p->top = top;
    p->top_id = at;
    return bad == INT64_MAX ? -1 : bad;
}

#endif /* TP_PATCH_H */
