/*
 * What the row kernels of csrc/rows/ share: the row under selection, the
 * workspace's parts, inlining and the count of routes taken.
 */
#ifndef TP_ROW_H
#define TP_ROW_H

#include "../tp_internal.h"
#include "../tp_workspace.h"

#if defined(_MSC_VER)
#define TP_FORCE_INLINE static __forceinline
#define TP_NOINLINE static __declspec(noinline)
#else
#define TP_FORCE_INLINE static inline __attribute__((always_inline))
#define TP_NOINLINE static __attribute__((noinline))
#endif

/* A row under selection: its logits, what the checking pass found and the
 * constants of its exponentials. */
typedef struct {
    const float *x;
    int64_t n;
    float max;
    int64_t argmax;
    double inv_t; /* 1 / T */
    double rate;  /* log2(e) / T: exp((x - max) / T) = 2**((x - max) * rate) */
    float cutoff; /* tokens below it are out already (top-k's k-th largest), or -inf */
    tp_workspace *ws;
} tp_row;

/* The median of three values (no NaN). */
static inline float tp_median3(float a, float b, float c)
{
    return a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
}

/* Counts a route taken, in builds that count them (tp_routes.c). */
#ifdef TP_COUNT_ROUTES
extern int64_t tp_route_counts[TP_ROUTE_COUNT];
#define TP_ROUTE(r) __atomic_fetch_add(&tp_route_counts[(r)], 1, __ATOMIC_RELAXED)
#else
#define TP_ROUTE(r) ((void)0)
#endif

#endif /* TP_ROW_H */
