/* Counts of the routes selection takes, in builds that count them (tokenpick.h). */
#include "tokenpick.h"

static const char *const names[TP_ROUTE_COUNT] = {
    "kth_small",       "kth_bisect",      "kth_quickselect", "kth_radix",  "topk_blocks",
    "topk_probe",      "topk_band",       "topk_row",        "mass_small", "mass_partition",
    "mass_value_bins", "mass_radix",      "topp_listed",     "topp_bound", "topp_bound_exact",
    "topp_band",       "topp_band_exact", "topp_histogram",  "topp_radix",
};

int64_t tp_route_counts[TP_ROUTE_COUNT];

int tp_route_counting(void)
{
#ifdef TP_COUNT_ROUTES
    return 1;
#else
    return 0;
#endif
}

const char *tp_route_name(int route)
{
    return route >= 0 && route < TP_ROUTE_COUNT ? names[route] : "";
}

void tp_route_take(int64_t *out)
{
    for (int r = 0; r < TP_ROUTE_COUNT; r++) {
#ifdef TP_COUNT_ROUTES
        out[r] += __atomic_exchange_n(&tp_route_counts[r], 0, __ATOMIC_RELAXED);
#else
        out[r] += tp_route_counts[r];
#endif
    }
}
