/*
 * A request's logit processors kept between the steps of a decoding loop
 * (tp_kept in tokenpick.h): the tokens its biases, stop ids, prompt and
 * output touch, each once, with its tally (and, for the first, the fixed
 * ones, its bias), found by a hash index of their ids (open addressing,
 * linear probing, at most half full).  A step adds one token: one probe or
 * so, then a count incremented or an entry appended, where a recount would
 * read the whole history.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokenpick.h"

void tp_kept_init(tp_kept *k, int counted)
{
    memset(k, 0, sizeof *k);
    k->counted = counted;
}

void tp_kept_free(tp_kept *k)
{
    free(k->ids);
    free(k->tally);
    free(k->bias);
    free(k->index);
    tp_kept_init(k, k->counted);
}

/* The index slot of id: where it is, or the free slot where it would go. */
static int64_t *slot_of(const tp_kept *k, int64_t id)
{
    const uint64_t mask = (uint64_t)k->slots - 1;
    uint64_t h = ((uint64_t)id * 0x9E3779B97F4A7C15u) >> 20;
    for (;; h++) {
        int64_t *s = &k->index[h & mask];
        if (*s == 0 || k->ids[*s - 1] == id)
            return s;
    }
}

/* Room for `need` entries, the index at most half full: 0, or -1 out of
 * memory (k then holds the same entries, in arrays perhaps larger). */
static int grow(tp_kept *k, int64_t need)
{
    if (need > k->cap) {
        int64_t cap = k->cap ? 2 * k->cap : 64;
        while (cap < need)
            cap *= 2;
        int64_t *ids = realloc(k->ids, (size_t)cap * sizeof *ids);
        if (!ids)
            return -1;
        k->ids = ids;
        uint32_t *tally = realloc(k->tally, (size_t)cap * sizeof *tally);
        if (!tally)
            return -1;
        k->tally = tally;
        k->cap = cap;
    }
    if (2 * need <= k->slots)
        return 0;
    int64_t slots = k->slots ? 2 * k->slots : 128;
    while (slots < 2 * need)
        slots *= 2;
    int64_t *index = calloc((size_t)slots, sizeof *index);
    if (!index)
        return -1;
    free(k->index);
    k->index = index;
    k->slots = slots;
    for (int64_t j = 0; j < k->n; j++)
        *slot_of(k, k->ids[j]) = j + 1;
    return 0;
}

int tp_kept_reserve(tp_kept *k, int64_t m) { return grow(k, k->n + m); }

/* The entry of id, appended (no tally) if it was not there; room for it
 * reserved. */
static int64_t entry(tp_kept *k, int64_t id)
{
    int64_t *s = slot_of(k, id);
    if (*s)
        return *s - 1;
    const int64_t at = k->n++;
    k->ids[at] = id;
    k->tally[at] = 0;
    *s = at + 1;
    return at;
}

int tp_kept_fix(tp_kept *k, const int64_t *bias_ids, const double *bias, int64_t nbias,
                const int64_t *stop, int64_t nstop)
{
    if (k->n != 0)
        return -2;
    if (grow(k, nbias + nstop) != 0)
        return -1;
    /* the biases of the fixed entries alone, -0.0 (none) where a stop id has none */
    if (nbias + nstop > 0) {
        double *b = malloc((size_t)(nbias + nstop) * sizeof *b);
        if (!b)
            return -1;
        for (int64_t j = 0; j < nbias + nstop; j++)
            b[j] = -0.0;
        free(k->bias);
        k->bias = b;
    }
    for (int64_t j = 0; j < nbias; j++) {
        const int64_t at = entry(k, bias_ids[j]);
        if (k->bias[at] != -INFINITY)
            k->bias[at] = bias[j];
        k->tally[at] |= bias[j] == -INFINITY ? TP_BANNED : 0u;
    }
    for (int64_t j = 0; j < nstop; j++)
        k->tally[entry(k, stop[j])] |= TP_STOP;
    k->fixed = k->n;
    return 0;
}

int tp_kept_put(tp_kept *k, const int64_t *ids, int64_t m, uint32_t flags)
{
    if (grow(k, k->n + m) != 0)
        return -1;
    for (int64_t j = 0; j < m; j++)
        k->tally[entry(k, ids[j])] |= flags;
    return 0;
}

void tp_kept_add(tp_kept *k, int64_t id)
{
    k->outputs++;
    if (k->counted)
        k->tally[entry(k, id)]++;
}
