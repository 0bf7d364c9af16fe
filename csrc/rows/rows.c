/*
 * Every row kernel in one translation unit, compiled once per instruction
 * set: csrc/tp_rows_<isa>.c defines TP_ISA and includes this file, and
 * setup.py compiles each with its own flags.  All is static but the table
 * tp_kernels_<isa>, which tp_dispatch.c hands out.
 *
 * From a public function to its kernel: tokenpick.sample -> _core.pyx ->
 * the table's keep (keep.c: topk.c, topp.c, min-p) and sample (draw.c);
 * with logit processors, scan_processed and process (proc.c) first;
 * softmax, log_softmax, logsumexp, mask, filtered_probs, top_logprobs ->
 * kernels.c; tokenpick.verify -> keep, then verify_draft (verify.c) or the
 * draw; the checking pass -> scan.c.  csrc/README.md has the design.
 */
#ifndef TP_ISA
#error "define TP_ISA (baseline, avx2, avx512) before including rows/rows.c"
#endif

#include "row.h"
#include "vec.h"
#include "names.h"

/* The kernels once per element type of the rows (elem.h, names.h). */
#define TP_ELEM TP_ELEM_F32
#include "instance.c"
#undef TP_ELEM
#define TP_ELEM TP_ELEM_F16
#include "instance.c"
#undef TP_ELEM
#define TP_ELEM TP_ELEM_BF16
#include "instance.c"
#undef TP_ELEM

/* What follows is of float32 (the tests' entries of every table). */
#undef TP_XSUF
#define TP_XSUF _f32

/* The k-th largest by one route (route < 0: the route kth_largest
 * chooses), for tests; NaN where the route does not take these inputs. */
static float kth_largest_by_route(const float *x, int64_t n, int64_t k, int route, tp_workspace *ws)
{
    switch (route) {
    case TP_ROUTE_KTH_SMALL:
        return k <= TP_SMALL_K ? kth_largest_small(x, n, k) : NAN;
    case TP_ROUTE_KTH_BISECT:
        return n <= TP_BISECT_MAX ? kth_largest_bisect(x, n, k) : NAN;
    case TP_ROUTE_KTH_QUICKSELECT:
        return n <= TP_CAND_CAP ? kth_largest_quickselect(x, n, k, ws) : NAN;
    case TP_ROUTE_KTH_RADIX:
        return radix_select_count(x, n, k, &ws->hist);
    default:
        return route < 0 ? kth_largest_f32(x, n, k, ws) : NAN;
    }
}

/* Selection by mass by one route (route < 0: select_stored's choice), for
 * tests: the smallest of v[0..n) (n <= TP_CAND_CAP) whose mass from the top,
 * by weights w, reaches target; NaN where the route does not take these
 * inputs, or does not exist on this instruction set, or gives up. */
static float select_by_mass_by_route(const float *v, const float *w, int64_t n, double target,
                                     int route, tp_workspace *ws)
{
    const tp_row r = {v, n, 0.0f, 0, 1.0, TP_LOG2E, -INFINITY, ws};
    float t = NAN;
    if (n > TP_CAND_CAP)
        return NAN;
    switch (route) {
    case TP_ROUTE_MASS_SMALL:
        return n <= TP_SMALL_SELECT ? select_by_mass_small(v, w, n, target, ws) : NAN;
#if TP_VCOMPRESS
    case TP_ROUTE_MASS_PARTITION:
        return select_by_partition(v, w, n, target, ws, &t) ? t : NAN;
#else
    case TP_ROUTE_MASS_VALUE_BINS:
        return select_by_value_bins(v, w, n, target, ws, &t) ? t : NAN;
#endif
    case TP_ROUTE_MASS_RADIX:
        return radix_select_mass_f32(v, w, n, -INFINITY, tp_exp_setup(0.0f, TP_LOG2E), target, 0,
                                     &ws->hist);
    default:
        if (route >= 0)
            return NAN;
        memcpy(ws->cand.x, v, (size_t)n * sizeof *v);
        memcpy(ws->cand.e, w, (size_t)n * sizeof *w);
        return select_stored(&r, n, target);
    }
}

#define TP_CAT2(a, b) a##b
#define TP_CAT(a, b) TP_CAT2(a, b)
#define TP_STR2(a) #a
#define TP_STR(a) TP_STR2(a)

/* The table tp_kernels_<isa><suffix> of the kernels of one element type. */
#define TP_TABLE(suffix, elem)                                       \
    const tp_kernels TP_CAT(TP_CAT(tp_kernels_, TP_ISA), suffix) = { \
        TP_STR(TP_ISA),                                              \
        elem,                                                        \
        tp_scan##suffix,                                             \
        tp_scan_top_k##suffix,                                       \
        tp_scan_processed##suffix,                                   \
        tp_make_patches##suffix,                                     \
        tp_fold_patches##suffix,                                     \
        tp_process##suffix,                                          \
        tp_softmax##suffix,                                          \
        tp_log_softmax##suffix,                                      \
        tp_logsumexp##suffix,                                        \
        tp_token_logprob##suffix,                                    \
        tp_keep_filters##suffix,                                     \
        tp_mask##suffix,                                             \
        tp_filtered_probs##suffix,                                   \
        tp_sample##suffix,                                           \
        tp_verify_draft##suffix,                                     \
        tp_top_logprobs##suffix,                                     \
        kth_largest_by_route,                                        \
        select_by_mass_by_route,                                     \
        tp_widen##suffix,                                            \
    }

TP_TABLE(_f32, TP_ELEM_F32);
TP_TABLE(_f16, TP_ELEM_F16);
TP_TABLE(_bf16, TP_ELEM_BF16);
