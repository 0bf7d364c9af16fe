/*
 * The logit processors of a row, made ready for the kernels (tp_proc): the
 * allowed set from the grammar's bitmask, and the few tokens the other
 * processors change, each with its new logit (its patch).
 *
 * Two steps, around the checking pass.  tp_proc_prepare lists the tokens
 * the processors touch, each once, the biased ones first (the `fixed`
 * ones, with their biases), with their tallies (a count in the output and
 * flags), and clears their allow bits; tp_proc_patch then computes their
 * patches, reading their logits once the checking pass has brought the row
 * into the cache: the fixed ones each with its bias, the others in a loop
 * the compiler vectorizes.  The list is p's as it is, banned tokens reading
 * -inf, so that no pass compacts it.
 *
 * The tallies come from one of two places.  A row's arguments (history,
 * biases, stop ids) are tallied in one pass each, in O(ids), into a table of
 * a tally per token of the vocabulary (each token listed when first seen;
 * no sort, no branch on the ids but the range check), which tp_proc_patch
 * reads and puts back to zeros (tp_proc_finish does where the patches were
 * not made: a bad row).  A row whose processors a decoding loop keeps
 * between its steps (a->kept, tp_kept.c) has its tokens listed already, in
 * the same layout, and skips the tally and the table.  Nothing is
 * proportional to the vocabulary but the copy of the bitmask's words.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tp_internal.h"

struct tp_proc_scratch {
    int64_t n, cap;
    uint32_t *allow;   /* (n + 31) / 32 words */
    uint32_t *tally;   /* n tallies, all 0 between rows */
    int64_t *touched;  /* the tokens the row being prepared touches, each once */
    int64_t ntouched;  /* 0 once the tallies are back to 0 */
    int64_t fixed;     /* the biased tokens, first in touched[] ... */
    double *bias;      /* ... and their biases */
    int64_t stray;     /* ids neither -1 nor in [0, n) */
    uint32_t *tallies; /* the listed tokens' tallies, in their order ... */
    float *logits;     /* ... their logits, then their patches */
    float *row;
};

void tp_proc_scratch_free(tp_proc_scratch *s)
{
    if (!s)
        return;
    free(s->allow);
    free(s->tally);
    free(s->touched);
    free(s->bias);
    free(s->tallies);
    free(s->logits);
    free(s->row);
    free(s);
}

tp_proc_scratch *tp_proc_scratch_new(int64_t n, int64_t ids)
{
    tp_proc_scratch *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    const size_t cap = (size_t)(ids > 0 ? ids : 1);
    s->n = n;
    s->cap = (int64_t)cap;
    s->allow = malloc(((size_t)n + 31) / 32 * sizeof *s->allow);
    s->tally = calloc((size_t)n, sizeof *s->tally);
    s->touched = malloc(cap * sizeof *s->touched);
    s->bias = malloc(cap * sizeof *s->bias);
    s->tallies = malloc(cap * sizeof *s->tallies);
    s->logits = malloc(cap * sizeof *s->logits);
    s->row = malloc((size_t)n * sizeof *s->row);
    if (!s->allow || !s->tally || !s->touched || !s->bias || !s->tallies || !s->logits || !s->row) {
        tp_proc_scratch_free(s);
        return NULL;
    }
    return s;
}

/* Adds `add` to the tally of every id of ids[0..m) and sets `flags` in it
 * (padding skipped, stray ids counted), listing each token the first time
 * it is seen; returns how many ids were neither.  No branch on the ids but
 * the range check: a token's tally is one load and one store. */
static int64_t tally(tp_proc_scratch *s, const int64_t *ids, int64_t m, uint32_t add,
                     uint32_t flags)
{
    uint32_t *table = s->tally;
    int64_t *touched = s->touched;
    int64_t real = 0, t = s->ntouched, stray = 0;
    flags |= TP_TOUCHED;
    for (int64_t j = 0; j < m; j++) {
        const int64_t id = ids[j];
        if ((uint64_t)id >= (uint64_t)s->n) { /* padding, or a stray id */
            stray += id != -1;
            continue;
        }
        const uint32_t u = table[id];
        touched[t] = id;
        t += u == 0;
        table[id] = (u + add) | flags;
        real++;
    }
    s->ntouched = t;
    s->stray += stray;
    return real;
}

/* The biased tokens, first in touched[] (the table empty), each once, with
 * its last finite bias (an id given twice, as a mapping other than a dict
 * may, is biased by its last finite value, and banned if either is -inf):
 * each token's place in the list is kept in its tally's count while they
 * are listed, then its tally is left with its flags alone. */
static void tally_biases(tp_proc_scratch *s, const tp_proc_args *a)
{
    uint32_t *table = s->tally;
    int64_t t = 0;
    for (int64_t j = 0; j < a->nbias; j++) {
        const int64_t id = a->bias_ids[j];
        if ((uint64_t)id >= (uint64_t)s->n) {
            s->stray += id != -1;
            continue;
        }
        if (!table[id]) {
            table[id] = TP_TOUCHED | (uint32_t)t;
            s->touched[t] = id;
            s->bias[t++] = -0.0;
        }
        double *b = &s->bias[table[id] & TP_COUNT];
        *b = *b == -INFINITY ? *b : a->bias[j];
    }
    for (int64_t j = 0; j < t; j++)
        table[s->touched[j]] = TP_TOUCHED | (s->bias[j] == -INFINITY ? TP_BANNED : 0u);
    s->ntouched = s->fixed = t;
}

/* The allow bits: the bitmask's words (the bits past n never read), or all
 * ones, in s->allow. */
static void allow_bits(int64_t n, const tp_proc_args *a, tp_proc_scratch *s)
{
    const int64_t words = (n + 31) / 32;
    if (a->bitmask) {
        const int64_t given = a->words < words ? a->words : words;
        memcpy(s->allow, a->bitmask, (size_t)given * sizeof *s->allow);
        memset(s->allow + given, 0, (size_t)(words - given) * sizeof *s->allow);
    } else {
        memset(s->allow, 0xFF, (size_t)words * sizeof *s->allow);
    }
}

/* The allow bits for the m listed tokens ids[] (their bits cleared, the
 * bitmask's words read in place where there are none), and p's lists made
 * ready for tp_proc_patch. */
static void prepared(int64_t n, const tp_proc_args *a, tp_proc_scratch *s, tp_proc *p, int64_t m)
{
    p->nids = 0;
    p->stray = s->stray;
    p->row = s->row;
    if (a->bitmask && a->words >= (n + 31) / 32 && m == 0) {
        p->allow = a->bitmask;
        return;
    }
    allow_bits(n, a, s);
    p->allow = s->allow;
}

/* tp_proc_prepare with the row's processors kept (a->kept): no tally, no
 * table; the kept tokens' bits cleared, and their tallies copied in their
 * order with TP_BANNED where the grammar, a -inf bias or min_tokens bans
 * them. */
static void prepare_kept(int64_t n, const tp_proc_args *a, tp_proc_scratch *s, tp_proc *p)
{
    const tp_kept *k = a->kept;
    const uint32_t stop = k->outputs < a->min_tokens ? TP_STOP : 0u;
    s->ntouched = 0;
    s->stray = 0;
    prepared(n, a, s, p, k->n);
    if (k->n == 0)
        return;
    uint32_t *allow = s->allow, *tallies = s->tallies;
    const int64_t *ids = k->ids;
    const uint32_t *tally = k->tally;
    for (int64_t j = 0; j < k->fixed; j++) {
        uint32_t *word = &allow[ids[j] >> 5];
        const uint32_t bit = 1u << (ids[j] & 31), u = tally[j];
        const int banned = !(*word & bit) || (u & (TP_BANNED | stop));
        tallies[j] = (u & ~TP_STOP) | (banned ? TP_BANNED : 0u);
        *word &= ~bit;
    }
    for (int64_t j = k->fixed; j < k->n; j++) { /* neither biased nor stopping */
        uint32_t *word = &allow[ids[j] >> 5];
        const uint32_t bit = 1u << (ids[j] & 31), w = *word;
        tallies[j] = tally[j] | (w & bit ? 0u : TP_BANNED);
        *word = w & ~bit;
    }
}

void tp_proc_prepare(int64_t n, const tp_proc_args *a, tp_proc_scratch *s, tp_proc *p)
{
    if (a->kept) {
        prepare_kept(n, a, s, p);
        return;
    }
    s->stray = 0;
    tally_biases(s, a);
    const int64_t output = tally(s, a->output, a->noutput, 1, 0);
    tally(s, a->prompt, a->nprompt, 0, TP_PRESENT);
    if (output < a->min_tokens)
        tally(s, a->stop, a->nstop, 0, TP_BANNED);
    else /* not banned, but still checked */
        for (int64_t j = 0; j < a->nstop; j++)
            s->stray += (uint64_t)(a->stop[j] + 1) > (uint64_t)n;
    prepared(n, a, s, p, s->ntouched);
    if (s->ntouched == 0)
        return;
    /* the touched tokens' bits cleared (they read their patches), a token
     * the grammar bans being banned in its tally */
    for (int64_t j = 0; j < s->ntouched; j++) {
        const int64_t id = s->touched[j];
        uint32_t *word = &s->allow[id >> 5];
        const uint32_t bit = 1u << (id & 31);
        s->tally[id] |= *word & bit ? 0u : TP_BANNED;
        *word &= ~bit;
    }
}

/* The logit of token id of a row of element type elem, widened exactly. */
static inline float logit_at(const void *x, int elem, int64_t id)
{
    if (elem == TP_ELEM_BF16)
        return tp_bf16_float(((const tp_bf16 *)x)[id]);
    if (elem == TP_ELEM_F16)
        return tp_f16_float(((const tp_f16 *)x)[id]);
    return ((const float *)x)[id];
}

/* The processed logit of a token the processors touch, of logit v (not
 * -inf), tally u and bias (-0.0 if none: the one addend that leaves every
 * double as it is, -0.0 included): bias, then repetition, then frequency
 * and presence, in double, rounded once.  Selects, not branches (a branch on
 * the sign or the tally would be mispredicted about half the time), so that
 * the compiler vectorizes the loop of patches (it makes the choices selects
 * with -fno-trapping-math, which the build gives); the penalty subtracted is
 * +0.0 for a token the output lacks, which leaves every double as it is. */
static inline float processed_logit(float v, uint32_t u, double bias, const tp_proc_args *a)
{
    const double r = a->repetition, f = a->frequency, pres = a->presence; /* loaded always */
    const uint32_t count = u & TP_COUNT;
    const double d = (double)v + bias;
    const double repeated = d > 0.0 ? d / r : d * r;
    const double said = (u & (TP_PRESENT | TP_COUNT)) ? repeated : d;
    const double penalty = count ? f * (double)count + pres : 0.0;
    return (float)(said - penalty);
}

/* logits[j] = the patch of the token of logit logits[j], tally tallies[j]
 * and bias bias[j] (for j < fixed; none after): its processed logit, -inf
 * where banned, +inf or NaN where it overflows. */
static void patches(float *logits, const uint32_t *tallies, const double *bias, int64_t fixed,
                    int64_t m, const tp_proc_args *a)
{
    for (int64_t j = 0; j < fixed; j++) {
        const float v = processed_logit(logits[j], tallies[j], bias[j], a);
        logits[j] = (tallies[j] & TP_BANNED) ? -INFINITY : v;
    }
    for (int64_t j = fixed; j < m; j++) { /* the loop the compiler vectorizes */
        const float v = processed_logit(logits[j], tallies[j], -0.0, a);
        logits[j] = (tallies[j] & TP_BANNED) ? -INFINITY : v;
    }
}

/* The m patches of ids[] and vals[] made p's list, with the largest and its
 * lowest token (four of each kept in turn, so that no chain of compares runs
 * through them all); returns -1, or the lowest token whose patch overflowed
 * (+inf or NaN: the row is then refused, and the largest of no use). */
static int64_t listed(const int64_t *ids, const float *vals, int64_t m, tp_proc *p)
{
    float top[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    int64_t at[4] = {INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX}, over = INT64_MAX;
    for (int64_t j = 0; j < m; j += 4)
        for (int64_t q = 0; q < 4 && j + q < m; q++) {
            const float v = vals[j + q];
            const int64_t id = ids[j + q];
            at[q] = v > top[q] || (v == top[q] && id < at[q]) ? id : at[q];
            top[q] = v > top[q] ? v : top[q];
            over = !(v <= FLT_MAX) && id < over ? id : over;
        }
    for (int q = 1; q < 4; q++) {
        at[0] = top[q] > top[0] || (top[q] == top[0] && at[q] < at[0]) ? at[q] : at[0];
        top[0] = top[q] > top[0] ? top[q] : top[0];
    }
    p->ids = ids;
    p->vals = vals;
    p->nids = m;
    p->top = top[0];
    p->top_id = at[0];
    return over == INT64_MAX ? -1 : over;
}

int64_t tp_proc_patch(const void *x, int elem, const tp_proc_args *a, tp_proc_scratch *s,
                      tp_proc *p)
{
    const tp_kept *k = a->kept;
    const int64_t m = k ? k->n : s->ntouched;
    const int64_t *ids = k ? k->ids : s->touched;
    uint32_t *tallies = s->tallies;
    float *logits = s->logits;
    if (k) { /* the tallies are in place (prepare_kept) */
        for (int64_t j = 0; j < m; j++)
            logits[j] = logit_at(x, elem, ids[j]);
    } else { /* the table's, put back to 0 as they are read */
        uint32_t *table = s->tally;
        for (int64_t j = 0; j < m; j++) {
            tallies[j] = table[ids[j]];
            logits[j] = logit_at(x, elem, ids[j]);
            table[ids[j]] = 0;
        }
        s->ntouched = 0;
    }
    patches(logits, tallies, k ? k->bias : s->bias, k ? k->fixed : s->fixed, m, a);
    return listed(ids, logits, m, p);
}

void tp_proc_finish(tp_proc_scratch *s)
{
    for (int64_t j = 0; j < s->ntouched; j++)
        s->tally[s->touched[j]] = 0;
    s->ntouched = 0;
}
