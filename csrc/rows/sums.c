/* Sums of exponentials over a row, shared by selection and the kernels. */
#include "../tp_internal.h"

/*
 * Sums of exponentials, vectorizable without -ffast-math: TP_LANES float
 * accumulators, flushed into a double every TP_BLOCK elements.  A flush adds
 * at most TP_BLOCK / TP_LANES = 8 terms per lane in float, so the relative
 * error of the sum stays near 1e-7 whatever n is.
 */
#define TP_LANES 32
#define TP_BLOCK 256

static inline float kept_exp(float v, const tp_exparg *a, float threshold)
{
    return v >= threshold ? tp_exp_apply(v, a) : 0.0f;
}

/* sum over i of exp((x[i] - max) / T) for x[i] >= threshold; if out, also
 * out[i] = that exponential (0 where x[i] < threshold). */
static double sum_exp_store(const float *x, int64_t n, float max, double k, float threshold,
                            float *out)
{
    const tp_exparg a = tp_exp_setup(max, k);
    double z = 0.0;
    int64_t i = 0;
    for (; i + TP_BLOCK <= n; i += TP_BLOCK) {
        float lane[TP_LANES] = {0.0f};
        for (int64_t b = i; b < i + TP_BLOCK; b += TP_LANES)
            for (int j = 0; j < TP_LANES; j++) {
                float e = kept_exp(x[b + j], &a, threshold);
                if (out)
                    out[b + j] = e;
                lane[j] += e;
            }
        float s = 0.0f;
        for (int j = 0; j < TP_LANES; j++)
            s += lane[j];
        z += s;
    }
    for (; i < n; i++) {
        float e = kept_exp(x[i], &a, threshold);
        if (out)
            out[i] = e;
        z += e;
    }
    return z;
}

static double sum_exp(const float *x, int64_t n, float max, double k, float threshold)
{
    return sum_exp_store(x, n, max, k, threshold, NULL);
}

