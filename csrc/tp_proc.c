/*
 * The logit processors of a row, made ready for the kernels (tp_proc): the
 * allowed set from the grammar's bitmask, and the few tokens the other
 * processors change, each with its new logit.
 *
 * The ids of the arguments (history, biases, stop ids) are tallied in one
 * pass each, in O(ids): a table over the vocabulary (slot) gives each id
 * seen its record (its count in the output, whether the prompt holds it,
 * its bias, whether it is banned); the records are then turned into
 * patches, and finally the table, the patches and the allow bits of the
 * tokens touched are put back as they were, in O(ids) again.  No sort, and
 * nothing proportional to the vocabulary but the copy of the bitmask's words.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tokenpick.h"

enum { TP_PRESENT = 1, TP_BIASED = 2, TP_BANNED = 4 };

typedef struct {
    int64_t id;
    int64_t count; /* in the output */
    double bias;
    int flags;
} tp_proc_rec;

struct tp_proc_scratch {
    int64_t n, cap;
    uint32_t *allow;   /* (n + 31) / 32 words */
    uint32_t *patched; /* a bit per word of allow, 0 but for the row being prepared */
    float *patch;      /* -inf but at the tokens of the row being prepared */
    float *row;
    int32_t *slot; /* 0, or 1 + the record of the token */
    tp_proc_rec *rec;
    int64_t nrec;
    int64_t *ids; /* the finite patches */
};

void tp_proc_scratch_free(tp_proc_scratch *s)
{
    if (!s)
        return;
    free(s->allow);
    free(s->patched);
    free(s->patch);
    free(s->row);
    free(s->slot);
    free(s->rec);
    free(s->ids);
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
    s->patched = calloc(((size_t)n + 1023) / 1024, sizeof *s->patched);
    s->patch = malloc((size_t)n * sizeof *s->patch);
    s->row = malloc((size_t)n * sizeof *s->row);
    s->slot = calloc((size_t)n, sizeof *s->slot);
    s->rec = malloc(cap * sizeof *s->rec);
    s->ids = malloc(cap * sizeof *s->ids);
    if (!s->allow || !s->patched || !s->patch || !s->row || !s->slot || !s->rec || !s->ids) {
        tp_proc_scratch_free(s);
        return NULL;
    }
    for (int64_t j = 0; j < n; j++)
        s->patch[j] = -INFINITY;
    return s;
}

/* The record of token id, made on its first appearance. */
static tp_proc_rec *record(tp_proc_scratch *s, int64_t id)
{
    int32_t at = s->slot[id];
    if (!at) {
        tp_proc_rec *r = &s->rec[s->nrec++];
        r->id = id;
        r->count = 0;
        r->bias = 0.0;
        r->flags = 0;
        at = s->slot[id] = (int32_t)s->nrec;
    }
    return &s->rec[at - 1];
}

/* Marks every id of ids[0..m) with flag (padding skipped); returns how many
 * were not padding. */
static int64_t mark(tp_proc_scratch *s, const int64_t *ids, int64_t m, int flag)
{
    int64_t real = 0;
    for (int64_t j = 0; j < m; j++)
        if (ids[j] >= 0) {
            record(s, ids[j])->flags |= flag;
            real++;
        }
    return real;
}

/* The processed logit of a token the processors touch, from its logit v
 * (not -inf) and its record: bias, then repetition, then frequency and
 * presence, in double, rounded once. */
static float processed_logit(float v, const tp_proc_rec *r, const tp_proc_args *a)
{
    double d = v;
    if (r->flags & TP_BIASED)
        d += r->bias;
    if ((r->flags & TP_PRESENT) || r->count > 0)
        d = d > 0.0 ? d / a->repetition : d * a->repetition;
    if (r->count > 0)
        d -= a->frequency * (double)r->count + a->presence;
    return (float)d;
}

int64_t tp_proc_prepare(const float *x, int64_t n, const tp_proc_args *a, tp_proc_scratch *s,
                        tp_proc *p)
{
    const int64_t words = (n + 31) / 32;
    if (a->bitmask) {
        const int64_t given = a->words < words ? a->words : words;
        memcpy(s->allow, a->bitmask, (size_t)given * sizeof *s->allow);
        memset(s->allow + given, 0, (size_t)(words - given) * sizeof *s->allow);
    } else {
        memset(s->allow, 0xFF, (size_t)words * sizeof *s->allow);
    }

    s->nrec = 0;
    int64_t output = 0;
    for (int64_t j = 0; j < a->noutput; j++)
        if (a->output[j] >= 0) {
            record(s, a->output[j])->count++;
            output++;
        }
    mark(s, a->prompt, a->nprompt, TP_PRESENT);
    for (int64_t j = 0; j < a->nbias; j++) {
        tp_proc_rec *r = record(s, a->bias_ids[j]);
        if (a->bias[j] == -INFINITY) {
            r->flags |= TP_BANNED;
        } else {
            r->flags |= TP_BIASED;
            r->bias = a->bias[j];
        }
    }
    if (output < a->min_tokens)
        mark(s, a->stop, a->nstop, TP_BANNED);

    /* Each token touched reads its patch: the bit is cleared after it is
     * read, as whether the grammar allows the token. */
    int64_t finite = 0, overflow = -1;
    for (int64_t j = 0; j < s->nrec; j++) {
        const tp_proc_rec *r = &s->rec[j];
        uint32_t *word = &s->allow[r->id >> 5];
        const uint32_t bit = 1u << (r->id & 31);
        float v = -INFINITY;
        if ((*word & bit) && !(r->flags & TP_BANNED) && x[r->id] != -INFINITY) {
            v = processed_logit(x[r->id], r, a);
            if (v != v || v == INFINITY) {
                overflow = overflow < 0 || r->id < overflow ? r->id : overflow;
                v = -INFINITY;
            }
        }
        *word &= ~bit;
        s->patch[r->id] = v;
        if (v != -INFINITY) {
            s->ids[finite++] = r->id;
            s->patched[r->id >> 10] |= 1u << ((r->id >> 5) & 31);
        }
    }
    p->allow = s->allow;
    p->patch = s->patch;
    p->ids = s->ids;
    p->nids = finite;
    p->patched = s->patched;
    p->row = s->row;
    return overflow;
}

void tp_proc_finish(tp_proc_scratch *s)
{
    for (int64_t j = 0; j < s->nrec; j++) {
        const int64_t id = s->rec[j].id;
        s->slot[id] = 0;
        s->patch[id] = -INFINITY;
        s->patched[id >> 10] = 0;
    }
    s->nrec = 0;
}
