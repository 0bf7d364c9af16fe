/*
 * The logit processors of a row, made ready for the kernels (tp_proc): the
 * allowed set from the grammar's bitmask, and the few tokens the other
 * processors change, each with its new logit (its patch).
 *
 * Two steps, around the checking pass.  tp_proc_prepare lists the tokens
 * the processors touch, each once, the biased ones first (the `fixed`
 * ones, with their biases), with their tallies (a count in the output and
 * flags), and clears their allow bits; tp_proc_patch then has the kernels
 * of the row's element type and the machine's instruction set compute their
 * patches (make_patches: rows/proc.c, rows/patch.h), reading their logits
 * once the checking pass has brought the row into the cache.  The list is
 * p's as it is, banned tokens reading -inf, so that no pass compacts it.
 *
 * The tallies come from one of two places.  A row's arguments (history,
 * biases, stop ids) are tallied in one pass each, in O(ids), into a table of
 * a tally per token of the vocabulary (each token listed when first seen;
 * no sort, no branch on the ids but the range check; for a large
 * vocabulary, the table's lines fetched ahead), which tp_proc_prepare then
 * reads in the list's order and puts back to zeros, while its lines are in
 * the cache.  A row whose processors a decoding loop keeps between its
 * steps (a->kept, tp_kept.c) has its tokens listed already, in the same
 * layout, and skips the tally and the table.  Either way tp_proc_patch
 * reads the list alone.  Nothing is proportional to the vocabulary but the
 * copy of the bitmask's words.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tp_internal.h"

#if defined(__GNUC__) || defined(__clang__)
#define PREFETCH_FOR_WRITE(p) __builtin_prefetch((p), 1)
#elif defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
#include <xmmintrin.h>
#define PREFETCH_FOR_WRITE(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)
#else
#define PREFETCH_FOR_WRITE(p) ((void)(p))
#endif

struct tp_proc_scratch {
    int64_t n, cap;
    uint32_t *allow;  /* (n + 31) / 32 words */
    uint32_t *tally;  /* n tallies, all 0 between rows */
    int64_t *touched; /* the tokens the row being prepared touches, each once */
    int64_t ntouched;
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

/* The vocabularies from which the table of tallies, 4 bytes a token, is too
 * large to stay in the cache between rows (256 KB: a row of logits has
 * gone through the cache since), so that its lines are fetched AHEAD ids
 * before they are needed, rather than each in its turn. */
enum { FAR_TABLE = 1 << 16, AHEAD = 32 };

/* tally(), prefetching its lines `ahead` ids before (0: none). */
static inline int64_t tally_ahead(tp_proc_scratch *s, const int64_t *ids, int64_t m, uint32_t add,
                                  uint32_t flags, int64_t ahead)
{
    uint32_t *table = s->tally;
    int64_t *touched = s->touched;
    int64_t real = 0, t = s->ntouched, stray = 0;
    const uint64_t n = (uint64_t)s->n;
    flags |= TP_TOUCHED;
    for (int64_t j = 0; j < m; j++) {
        if (ahead && j + ahead < m) {
            const uint64_t next = (uint64_t)ids[j + ahead];
            PREFETCH_FOR_WRITE(&table[next < n ? next : 0]);
        }
        const int64_t id = ids[j];
        if ((uint64_t)id >= n) { /* padding, or a stray id */
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

/* Adds `add` to the tally of every id of ids[0..m) and sets `flags` in it
 * (padding skipped, stray ids counted), listing each token the first time
 * it is seen; returns how many ids were neither.  No branch on the ids but
 * the range check: a token's tally is one load and one store. */
static int64_t tally(tp_proc_scratch *s, const int64_t *ids, int64_t m, uint32_t add,
                     uint32_t flags)
{
    if (s->n >= FAR_TABLE)
        return tally_ahead(s, ids, m, add, flags, AHEAD);
    return tally_ahead(s, ids, m, add, flags, 0);
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
    /* the tallies copied out in the list's order, a token the grammar bans
     * being banned in its tally, the tokens' bits cleared (they read their
     * patches), and the table left at zeros */
    for (int64_t j = 0; j < s->ntouched; j++) {
        const int64_t id = s->touched[j];
        uint32_t *word = &s->allow[id >> 5];
        const uint32_t bit = 1u << (id & 31), w = *word;
        s->tallies[j] = (s->tally[id] & ~(uint32_t)TP_TOUCHED) | (w & bit ? 0u : TP_BANNED);
        *word = w & ~bit;
        s->tally[id] = 0;
    }
}

int64_t tp_proc_patch(const void *x, const tp_kernels *k, const tp_proc_args *a, tp_proc_scratch *s,
                      tp_proc *p)
{
    const tp_kept *kept = a->kept;
    const tp_patch_list l = {
        .ids = kept ? kept->ids : s->touched,
        .tallies = s->tallies,
        .bias = kept ? kept->bias : s->bias,
        .fixed = kept ? kept->fixed : s->fixed,
        .m = kept ? kept->n : s->ntouched,
        .repetition = a->repetition,
        .frequency = a->frequency,
        .presence = a->presence,
    };
    return k->make_patches(x, &l, s->logits, p);
}
