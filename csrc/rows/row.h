/*
 * What the row kernels of csrc/rows/ share: the workspace's parts, inlining
 * and the count of routes taken (the row under selection, whose type
 * depends on its elements, is in elem.h).
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
