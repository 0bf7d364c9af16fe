/*
 * The C kernels on fixed rows, without Python: .ci/wheels builds this with
 * the project's portable C natively and with a cross compiler for aarch64
 * (run under qemu-aarch64), and checks that both builds draw the same tokens
 * and agree on log-sum-exp to 1e-5.  Linked with the AVX2 and AVX-512
 * tables too (TP_HAVE_AVX2/AVX512), it runs every table the CPU has.
 *
 * Usage: kernel_digest [table...]   (default: every table of the build this CPU runs)
 * Prints one line per (table, element type, row, filter): the token drawn,
 * its log-probability and the row's log-sum-exp; the rows in float16 and
 * bfloat16 are the float32 rows rounded, read by those types' tables.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenpick.h"

/* A fixed row: flat (Gaussian-like, from a sum of uniforms of a 64-bit LCG)
 * or peaked (the same, plus a few hundred boosted tokens), some -inf. */
static void make_row(float *x, int64_t n, int peaked, uint64_t seed)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int64_t i = 0; i < n; i++) {
        double g = -6.0;
        for (int j = 0; j < 12; j++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            g += (double)(s >> 11) / 9007199254740992.0;
        }
        x[i] = (float)(peaked ? 2.0 * g : g);
        if (peaked && i % 397 == 5)
            x[i] += 12.0f;
        if (i % 10 == 3)
            x[i] = -INFINITY;
    }
}

/* The row's values in an element type's bits (elem TP_ELEM_F32: the floats
 * themselves): float16 by the compiler's conversion (_Float16, rounding to
 * nearest), bfloat16 rounded to nearest even. */
static const void *as_elem(const float *x, int64_t n, int elem, uint16_t *bits)
{
    for (int64_t i = 0; i < n && elem != TP_ELEM_F32; i++) {
        if (elem == TP_ELEM_F16) {
            const _Float16 h = (_Float16)x[i];
            memcpy(&bits[i], &h, sizeof h);
        } else {
            uint32_t b;
            memcpy(&b, &x[i], sizeof b);
            bits[i] = (uint16_t)((b + 0x7FFFu + ((b >> 16) & 1u)) >> 16);
        }
    }
    return elem == TP_ELEM_F32 ? (const void *)x : (const void *)bits;
}

int main(int argc, char **argv)
{
    static const char *all[] = {"baseline", "avx2", "avx512"};
    static const char *elems[] = {"f32", "f16", "bf16"};
    const char **names = argc > 1 ? (const char **)argv + 1 : all;
    const int nnames = argc > 1 ? argc - 1 : 3;
    const int64_t sizes[] = {1000, 50000, 131072};
    tp_filter filters[] = {
        {.temperature = 0.8, .top_p = 1.0},
        {.temperature = 1.0, .top_k = 50, .top_p = 1.0},
        {.temperature = 1.0, .top_p = 0.9},
        {.temperature = 1.0, .top_k = 50, .top_p = 0.9, .min_p = 0.05},
        {.temperature = 0.0, .top_p = 1.0},
        {.temperature = 1.5, .top_p = 0.5},
        {.temperature = 1.0, .top_n_sigma = 2.0, .top_p = 1.0},
        {.temperature = 0.7, .top_k = 100, .top_p = 1.0, .typical_p = 0.8, .eta = 0.01},
        {.temperature = 1.0, .top_p = 0.95, .epsilon = 1e-4, .xtc = 1, .xtc_threshold = 0.05},
        {.temperature = 0.8,
         .top_k = 40,
         .top_p = 0.9,
         .min_p = 0.05,
         .typical_p = 0.9,
         .xtc = 1,
         .xtc_threshold = 0.1,
         .order = TP_ORDER_LLAMA},
        {.temperature = 1.0, .top_p = 0.9, .min_p = 0.02, .order = TP_ORDER_VLLM},
    };
    tp_workspace *ws = tp_workspace_new();
    float *x = malloc(131072 * sizeof *x);
    uint16_t *bits = malloc(131072 * sizeof *bits);
    float *spill = malloc(6 * 131072 * sizeof *spill);
    if (!ws || !x || !bits || !spill)
        return 2;
    for (size_t fi = 0; fi < sizeof filters / sizeof filters[0]; fi++)
        filters[fi].spill = spill;
    for (int t = 0; t < nnames; t++) {
        for (int e = 0; e < TP_ELEM_COUNT; e++) {
            const tp_kernels *k = tp_kernels_for(names[t], e);
            if (!k)
                continue;
            for (int si = 0; si < 3; si++) {
                for (int peaked = 0; peaked < 2; peaked++) {
                    const int64_t n = sizes[si];
                    make_row(x, n, peaked, (uint64_t)(si * 2 + peaked));
                    const void *row = as_elem(x, n, e, bits);
                    tp_rowstat st;
                    if (k->scan(row, n, &st) != TP_OK)
                        return 3;
                    const float lse = k->logsumexp(row, n, &st, 1.0);
                    for (size_t fi = 0; fi < sizeof filters / sizeof filters[0]; fi++) {
                        tp_keep keep;
                        float lp;
                        k->keep(row, n, &st, &filters[fi], ws, &keep);
                        const double u = tp_uniform(2026, (uint64_t)(si * 100 + peaked * 10 + fi));
                        const int64_t token = k->sample(n, &keep, u, ws, &lp);
                        printf("%s/%s n=%lld %s filter=%zu token=%lld logprob=%.7g lse=%.8g\n",
                               k->name, elems[e], (long long)n, peaked ? "peaked" : "flat", fi,
                               (long long)token, lp, lse);
                    }
                }
            }
        }
    }
    tp_workspace_free(ws);
    free(x);
    free(bits);
    free(spill);
    return 0;
}
