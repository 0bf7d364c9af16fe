/*
 * Inline helpers shared by the kernels: the exponential they all use and the
 * order-preserving integer key of a float that selection works on.
 */
#ifndef TP_INTERNAL_H
#define TP_INTERNAL_H

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "tokenpick.h"

#define TP_LOG2E 1.4426950408889634

/* a * b + c, fused where the instruction set has it (the AVX2 and AVX-512
 * builds, aarch64), so results differ between paths by an ulp or so. */
#if defined(__FMA__) || defined(__aarch64__) || defined(_M_ARM64)
#define TP_MADD(a, b, c) fmaf((a), (b), (c))
#else
#define TP_MADD(a, b, c) ((a) * (b) + (c))
#endif

/* 1 / T for T > 0, capped at 2**1022 so that it, and log2(e) / T, stay finite
 * when T is subnormal (1 / 1e-310 overflows, and 0 * inf would be NaN).  The
 * cap changes nothing that float32 results can show. */
static inline double tp_inv_temperature(double T)
{
    const double inv = 1.0 / T;
    return inv < 0x1p1022 ? inv : 0x1p1022;
}

static inline float tp_bits_to_float(uint32_t b)
{
    float v;
    memcpy(&v, &b, sizeof v);
    return v;
}

static inline uint32_t tp_float_to_bits(float v)
{
    uint32_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

/* 2**f for |f| <= 1/2 (a little more is fine): degree-7 Taylor polynomial,
 * truncation error < 6e-9, by Estrin's scheme (a chain of 4 multiply-adds). */
static inline float tp_exp2_reduced(float f)
{
    float f2 = f * f, f4 = f2 * f2;
    float p01 = TP_MADD(6.9314718055994530e-01f, f, 1.0f);
    float p23 = TP_MADD(5.5504108664821576e-02f, f, 2.4022650695910071e-01f);
    float p45 = TP_MADD(1.3333558146428441e-03f, f, 9.6181291076284770e-03f);
    float p67 = TP_MADD(1.5252733804059838e-05f, f, 1.5403530393381606e-04f);
    return TP_MADD(TP_MADD(p67, f2, p45), f4, TP_MADD(p23, f2, p01));
}

/* p * 2**e for integral e in [-127, 0]; 0 when e < -126 (flushed). */
static inline float tp_scale_pow2(float p, int32_t e)
{
    float scale = tp_bits_to_float((uint32_t)(e + 127) << 23);
    return e < -126 ? 0.0f : p * scale;
}

/*
 * exp((x - max) / T) for x <= max, as 2**t with t = (x - max) * log2(e) / T;
 * the caller passes k = log2(e) / T.  t splits into round(t), which goes into
 * the exponent, and f = t - round(t), which goes to the polynomial; f must be
 * accurate in absolute terms even when |t| is large, and there are two ways:
 *
 * - with fused multiply-add (AVX2, AVX-512, aarch64), all in float: k as a
 *   float pair k_hi + k_lo, and the rounding error of d * k_hi recovered
 *   exactly by an FMA.  What remains is the rounding of d = x - max, at most
 *   6e-8 |t|, so about 4e-6 relative for probabilities down to 1e-30.
 * - without (the SSE2 baseline), t in double.
 *
 * Results below 2**-126 (including x = -inf) are flushed to 0: such a token's
 * probability is below 1e-37, which SPEC.md's accuracy rules ignore.  The
 * relative error is about 2e-7 otherwise.  No branches, so loops vectorize;
 * the setup from k is loop-invariant and compilers hoist it.
 */
#if defined(__FMA__) || defined(__aarch64__) || defined(_M_ARM64)
static inline float tp_exp_scaled(float x, float max, double k)
{
    /* x - max overflows float when max > 0 and x < max - FLT_MAX: with a
     * positive max, halve both (exact for the x where it matters) and double k.
     * k beyond float's range (T < 4e-39): scale d up by 2**30 and k down; past
     * 2**157 every nonzero d gives t < -150 either way, so k may saturate. */
    const float h = max > 0x1p-64f ? 0.5f : 1.0f;
    const double kh = k / (double)h;
    const int huge = kh > 0x1p120;
    const float up = huge ? 0x1p30f : 1.0f;
    const double ks = huge ? kh * 0x1p-30 : kh;
    const int fits = ks < (double)FLT_MAX;
    const float k_hi = fits ? (float)ks : FLT_MAX;
    const float k_lo = fits ? (float)(ks - (double)k_hi) : 0.0f;

    float d = (x * h - max * h) * up;             /* <= 0, or -inf */
    float t = d * k_hi;                           /* may be -inf, never NaN */
    float t_lo = fmaf(d, k_lo, fmaf(d, k_hi, -t)); /* NaN only when t = -inf */
    float tc = t < -127.0f ? -127.0f : t;
    const float shifter = 12582912.0f;            /* 1.5 * 2**23: round to nearest */
    float n = (tc + shifter) - shifter;
    float p = tp_exp2_reduced((tc - n) + t_lo);
    return tp_scale_pow2(p, (int32_t)n);          /* n = -127 flushes any NaN */
}
#else
static inline float tp_exp_scaled(float x, float max, double k)
{
    double t = ((double)x - (double)max) * k;
    t = t < -127.0 ? -127.0 : t;                  /* also maps x = -inf */
    const double shifter = 6755399441055744.0;    /* 1.5 * 2**52: round to nearest */
    double n = (t + shifter) - shifter;
    return tp_scale_pow2(tp_exp2_reduced((float)(t - n)), (int32_t)n);
}
#endif

/*
 * An unsigned key that orders like the float: a < b  <=>  key(a) < key(b),
 * for all non-NaN floats, with -0.0 and +0.0 given the same key (they compare
 * equal, so selection must treat them as a tie).
 */
static inline uint32_t tp_key(float v)
{
    uint32_t b = tp_float_to_bits(v + 0.0f);      /* -0.0 + 0.0 == +0.0 */
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

static inline float tp_unkey(uint32_t key)
{
    return tp_bits_to_float((key & 0x80000000u) ? (key & 0x7FFFFFFFu) : ~key);
}

#endif /* TP_INTERNAL_H */
