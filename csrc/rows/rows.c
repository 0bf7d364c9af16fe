/*
 * Every row kernel in one translation unit, compiled once per instruction
 * set: csrc/tp_rows_<isa>.c defines TP_ISA and includes this file, and
 * setup.py compiles each with its own flags.  All is static but the table
 * tp_kernels_<isa>, which tp_dispatch.c hands out.
 */
#ifndef TP_ISA
#error "define TP_ISA (baseline, avx2, avx512) before including rows/rows.c"
#endif

#include "vec.h"
#include "sums.c"
#include "scan.c"
#include "select.c"
#include "kernels.c"

#define TP_CAT2(a, b) a##b
#define TP_CAT(a, b) TP_CAT2(a, b)
#define TP_STR2(a) #a
#define TP_STR(a) TP_STR2(a)

const tp_kernels TP_CAT(tp_kernels_, TP_ISA) = {
    TP_STR(TP_ISA),
    tp_scan_f32,
    tp_scan_top_k_f32,
    tp_softmax_f32,
    tp_log_softmax_f32,
    tp_logsumexp_f32,
    tp_keep_f32,
    tp_mask_f32,
    tp_filtered_probs_f32,
    tp_sample_f32,
    tp_top_logprobs_f32,
};
