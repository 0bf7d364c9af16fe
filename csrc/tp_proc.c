/*
 * The logit processors of a row, made ready for the kernels (tp_proc): the
 * allowed set from the grammar's bitmask, and the few tokens the other
 * processors change, each with its new logit (its patch).
 *
 * Two steps, around the checking pass.  tp_proc_prepare tallies the ids of
 * the arguments (history, biases, stop ids) in one pass each, in O(ids),
 * into a hash table of ids (a count and flags per token, each token's entry
 * listed when taken), and clears the allow bits of the tokens touched;
 * tp_proc_patch then computes their patches, reading their logits once the
 * checking pass has brought the row into the cache.  tp_proc_finish puts the
 * table, the patches and their marks back as they were, in O(ids) again.  No
 * sort, and nothing proportional to the vocabulary but the copy of the
 * bitmask's words.  (A table over the vocabulary instead of the hash table
 * ran fewer instructions but missed the cache on its random ids once the
 * row had streamed through.)
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tokenpick.h"

/* A token's tally: its count in the output in the low bits, and flags. */
enum {
    TP_PRESENT = 1u << 28, /* in the prompt */
    TP_BANNED = 1u << 29,
    TP_DONE = 1u << 30, /* its patch is made */
    TP_COUNT = (1u << 28) - 1
};

/* A token's entry in the table of the row being prepared: id -1 is empty. */
typedef struct {
    int32_t id;
    uint32_t tally;
} tp_proc_entry;

struct tp_proc_scratch {
    int64_t n, cap;
    uint32_t *allow;   /* (n + 31) / 32 words */
    uint32_t *patched; /* a bit per word of allow, 0 but for the row being prepared */
    float *patch;      /* -inf but at the tokens of the row being prepared */
    float *row;
    tp_proc_entry *table; /* mask + 1 entries, at least 1.5 cap; empty between rows */
    uint64_t mask;
    int shift;        /* 64 - log2(mask + 1) */
    int64_t *touched; /* the entries the row being prepared took */
    int64_t ntouched;
    int64_t stray; /* ids neither -1 nor in [0, n) */
    int64_t *ids;  /* the finite patches */
};

void tp_proc_scratch_free(tp_proc_scratch *s)
{
    if (!s)
        return;
    free(s->allow);
    free(s->patched);
    free(s->patch);
    free(s->row);
    free(s->table);
    free(s->touched);
    free(s->ids);
    free(s);
}

tp_proc_scratch *tp_proc_scratch_new(int64_t n, int64_t ids)
{
    tp_proc_scratch *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    const size_t cap = (size_t)(ids > 0 ? ids : 1);
    size_t entries = 64;
    s->shift = 58;
    while (entries < cap + cap / 2) { /* at most two thirds full: in L1 for a few thousand ids */
        entries *= 2;
        s->shift--;
    }
    s->n = n;
    s->cap = (int64_t)cap;
    s->mask = entries - 1;
    s->allow = malloc(((size_t)n + 31) / 32 * sizeof *s->allow);
    s->patched = calloc(((size_t)n + 1023) / 1024, sizeof *s->patched);
    s->patch = malloc((size_t)n * sizeof *s->patch);
    s->row = malloc((size_t)n * sizeof *s->row);
    s->table = malloc(entries * sizeof *s->table);
    s->touched = malloc(cap * sizeof *s->touched);
    s->ids = malloc(cap * sizeof *s->ids);
    if (!s->allow || !s->patched || !s->patch || !s->row || !s->table || !s->touched || !s->ids) {
        tp_proc_scratch_free(s);
        return NULL;
    }
    for (int64_t j = 0; j < n; j++)
        s->patch[j] = -INFINITY;
    for (size_t e = 0; e < entries; e++)
        s->table[e] = (tp_proc_entry){-1, 0};
    return s;
}

/* Token id's entry, or the empty one where it belongs: a multiplicative
 * hash, then linear probing (the table is at most two thirds full). */
static inline uint64_t entry_of(const tp_proc_scratch *s, int64_t id)
{
    uint64_t e = ((uint64_t)id * 0x9E3779B97F4A7C15u) >> s->shift;
    while (s->table[e].id != id && s->table[e].id >= 0)
        e = (e + 1) & s->mask;
    return e;
}

/* Adds `add` to the tally of every id of ids[0..m) and sets `flags` in it
 * (padding skipped, stray ids counted), its entry listed when taken;
 * returns how many were neither.  Only probing branches on the ids. */
static int64_t tally(tp_proc_scratch *s, const int64_t *ids, int64_t m, uint32_t add,
                     uint32_t flags)
{
    int64_t real = 0, t = s->ntouched;
    for (int64_t j = 0; j < m; j++) {
        const int64_t id = ids[j];
        if ((uint64_t)id >= (uint64_t)s->n) { /* padding, or a stray id */
            s->stray += id != -1;
            continue;
        }
        const uint64_t e = entry_of(s, id);
        tp_proc_entry *entry = &s->table[e];
        s->touched[t] = (int64_t)e;
        t += entry->id < 0;
        entry->id = (int32_t)id;
        entry->tally = (entry->tally + add) | flags;
        real++;
    }
    s->ntouched = t;
    return real;
}

/* The processed logit of a token the processors touch, of logit v (not
 * -inf), tally u and bias (-0.0 if none: the one addend that leaves every
 * double as it is, -0.0 included): bias, then repetition, then frequency
 * and presence, in double, rounded once. */
static float processed_logit(float v, uint32_t u, double bias, const tp_proc_args *a)
{
    const uint32_t count = u & TP_COUNT;
    double d = (double)v + bias;
    if ((u & TP_PRESENT) || count > 0) {
        /* both, then a select of their bits: a branch on the sign would be
         * mispredicted half the time, and wait for the division */
        const double down = d / a->repetition, up = d * a->repetition;
        uint64_t db, ub;
        memcpy(&db, &down, sizeof db);
        memcpy(&ub, &up, sizeof ub);
        const uint64_t take_down = (uint64_t)0 - (uint64_t)(d > 0.0);
        const uint64_t bits = (db & take_down) | (ub & ~take_down);
        memcpy(&d, &bits, sizeof d);
    }
    if (count > 0)
        d -= a->frequency * (double)count + a->presence;
    return (float)d;
}

/* Makes the patch of the token of entry e from its tally and bias.
 * Returns whether the patch overflowed (it is then -inf). */
static int make_patch(tp_proc_scratch *s, const float *x, uint64_t e, double bias,
                      const tp_proc_args *a, int64_t *finite)
{
    tp_proc_entry *entry = &s->table[e];
    const int64_t id = entry->id;
    const uint32_t u = entry->tally;
    float v = -INFINITY;
    int overflow = 0;
    if (!(u & TP_BANNED) && x[id] != -INFINITY) {
        v = processed_logit(x[id], u, bias, a);
        overflow = v != v || v == INFINITY;
        v = overflow ? -INFINITY : v;
    }
    entry->tally = u | TP_DONE;
    s->patch[id] = v;
    if (v != -INFINITY) {
        s->ids[(*finite)++] = id;
        s->patched[id >> 10] |= 1u << ((id >> 5) & 31);
    }
    return overflow;
}

void tp_proc_prepare(int64_t n, const tp_proc_args *a, tp_proc_scratch *s, tp_proc *p)
{
    const int64_t words = (n + 31) / 32;
    if (a->bitmask) {
        const int64_t given = a->words < words ? a->words : words;
        memcpy(s->allow, a->bitmask, (size_t)given * sizeof *s->allow);
        memset(s->allow + given, 0, (size_t)(words - given) * sizeof *s->allow);
    } else {
        memset(s->allow, 0xFF, (size_t)words * sizeof *s->allow);
    }

    s->ntouched = 0;
    s->stray = 0;
    const int64_t output = tally(s, a->output, a->noutput, 1, 0);
    tally(s, a->prompt, a->nprompt, 0, TP_PRESENT);
    for (int64_t j = 0; j < a->nbias; j++)
        tally(s, &a->bias_ids[j], 1, 0, a->bias[j] == -INFINITY ? TP_BANNED : 0);
    if (output < a->min_tokens)
        tally(s, a->stop, a->nstop, 0, TP_BANNED);
    else /* not banned, but still checked */
        for (int64_t j = 0; j < a->nstop; j++)
            s->stray += (uint64_t)(a->stop[j] + 1) > (uint64_t)n;

    /* A token touched reads its patch: its allow bit is cleared, a token
     * the grammar bans being banned in its tally. */
    for (int64_t j = 0; j < s->ntouched; j++) {
        tp_proc_entry *entry = &s->table[s->touched[j]];
        uint32_t *word = &s->allow[entry->id >> 5];
        const uint32_t bit = 1u << (entry->id & 31);
        entry->tally |= *word & bit ? 0u : TP_BANNED;
        *word &= ~bit;
    }
    p->allow = s->allow;
    p->patch = s->patch;
    p->ids = s->ids;
    p->nids = 0;
    p->stray = s->stray;
    p->patched = s->patched;
    p->row = s->row;
}

int64_t tp_proc_patch(const float *x, const tp_proc_args *a, tp_proc_scratch *s, tp_proc *p)
{
    /* The biased tokens' patches first, each with its last finite bias (an
     * id given twice, as a mapping other than a dict may, is biased by its
     * last finite value, and banned if either is -inf); then the others'. */
    int64_t finite = 0, overflow = -1;
    for (int64_t j = a->nbias - 1; j >= 0; j--) {
        const int64_t id = a->bias_ids[j];
        if ((uint64_t)id >= (uint64_t)s->n || a->bias[j] == -INFINITY)
            continue;
        const uint64_t e = entry_of(s, id);
        if (!(s->table[e].tally & TP_DONE) && make_patch(s, x, e, a->bias[j], a, &finite))
            overflow = overflow < 0 || id < overflow ? id : overflow;
    }
    for (int64_t j = 0; j < s->ntouched; j++) {
        const uint64_t e = (uint64_t)s->touched[j];
        if (!(s->table[e].tally & TP_DONE) && make_patch(s, x, e, -0.0, a, &finite)) {
            const int64_t id = s->table[e].id;
            overflow = overflow < 0 || id < overflow ? id : overflow;
        }
    }
    p->nids = finite;
    return overflow;
}

void tp_proc_finish(tp_proc_scratch *s)
{
    for (int64_t j = 0; j < s->ntouched; j++) {
        tp_proc_entry *entry = &s->table[s->touched[j]];
        const int64_t id = entry->id;
        s->patch[id] = -INFINITY;
        s->patched[id >> 10] = 0;
        *entry = (tp_proc_entry){-1, 0};
    }
    s->ntouched = 0;
}
