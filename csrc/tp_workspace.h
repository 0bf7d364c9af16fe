/*
 * The scratch of the row kernels of one thread, in parts of one job each.
 * Its size does not depend on the row length (about 760 KB in all); the
 * Cython layer keeps one per thread (tp_workspace_new in tp_workspace.c).
 */
#ifndef TP_WORKSPACE_H
#define TP_WORKSPACE_H

#include <stdint.h>

#include "tokenpick.h"

#define TP_CAND_CAP 16384   /* tokens an exact selection can list */
#define TP_RADIX_BINS 2048  /* bins of a radix level of 11 bits */
#define TP_HIST_COPIES 4    /* interleaved copies of a histogram of mass */
#define TP_PROBE_MAX 4096   /* logits a probe of the row holds */
#define TP_BLOCKS_MAX 1024  /* blocks of top-k's block route */
#define TP_SMALL_SELECT 512 /* values a selection by mass partitions in place */
#define TP_CHUNK 2048       /* tokens a pass over the row works on at a time, in L1 */
#define TP_TILE 256         /* tokens summed in float lanes before the sum goes to double */
#define TP_RUNS_MAX 2048    /* runs of a row whose kept mass is kept (tp_runs) */

/* Tokens listed for an exact selection, in ascending id. */
typedef struct {
    float x[TP_CAND_CAP];
    int64_t id[TP_CAND_CAP];
    float e[TP_CAND_CAP]; /* their exponentials, where a selection computed them */
} tp_cands;

/* Patches of a processed row (tp_proc) that a gather lists, in ascending id. */
typedef struct {
    float x[TP_CAND_CAP];
    int64_t id[TP_CAND_CAP];
} tp_patches;

/* A histogram of weights: one radix level, or bins of equal width in value. */
typedef struct {
    double mass[TP_RADIX_BINS];
    int64_t count[TP_RADIX_BINS];
    double copies[TP_HIST_COPIES * TP_RADIX_BINS]; /* interleaved, merged into mass */
} tp_hist;

/* A probe of the row: lines of 16 logits spread over it, and their exponentials. */
typedef struct {
    float x[TP_PROBE_MAX];
    float e[TP_PROBE_MAX];
} tp_probe;

/* The kept mass of each run of per tokens of the row (per a multiple of
 * TP_TILE), found by top-p on its way or by the draw; per == 0: not known. */
typedef struct {
    double sum[TP_RUNS_MAX];
    int64_t first[TP_RUNS_MAX]; /* top-p's band: the first candidate of each run */
    int64_t per;
} tp_runs;

struct tp_workspace {
    tp_cands cand;
    tp_patches patches;
    tp_hist hist;
    tp_probe probe;
    tp_runs runs;
    float block_max[TP_BLOCKS_MAX];  /* top-k's block maxima (tp_rowstat.bmax) */
    float work[2][TP_CAND_CAP];      /* the two lists of the selection under way */
    float small[2][TP_SMALL_SELECT]; /* values and weights partitioned in place */
    float chunk_e[TP_CHUNK];         /* the exponentials of one chunk of the row */
    float tile_e[TP_TILE];           /* the exponentials of the tile the draw walks */
};

#endif /* TP_WORKSPACE_H */
