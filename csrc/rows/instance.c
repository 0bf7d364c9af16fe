/*
 * The row kernels for rows of one element type: rows.c defines TP_ELEM and
 * includes this file once per type (the names of each instance: names.h).
 */
#include "elem.h"

#include "sums.c"    /* sums of exponentials */
#include "moments.c" /* the moments of the finite logits, for top-n-sigma */
#include "scan.c"    /* the checking pass */
#include "radix.c"   /* the radix select and histograms of weight */
#include "kth.c"     /* the k-th largest */
#include "gather.c"  /* gathering candidates; probes of the row */
#include "proc.c"    /* the logit processors, as the row is read */
#include "mass.c"    /* selection by mass among candidates */
#include "topk.c"    /* top-k's routes */
#include "topp.c"    /* top-p's routes */
#include "later.c"   /* the filters on the listed kept set */
#include "keep.c"    /* the filters in order, and min-p */
#include "kernels.c" /* softmax and friends, mask, filtered_probs, top_logprobs */
#include "draw.c"    /* the draw */
#include "verify.c"  /* speculative decoding: the test of a draft token */
