/*
 * Inline helpers shared by the kernels: the exponential they all use and the
 * order-preserving integer key of a float that selection works on.
 */
#ifndef TP_INTERNAL_H
#define TP_INTERNAL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "tokenpick.h"

#define TP_LOG2E 1.4426950408889634

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

/*
 * exp((x - max) / T) for x <= max, as 2**t with t = (x - max) * log2(e) / T;
 * the caller passes k = log2(e) / T.
 *
 * t is formed in double, so the argument carries no rounding error even when
 * |x - max| / T is large; the fraction f = t - round(t), |f| <= 1/2, goes to a
 * degree-7 Taylor polynomial of 2**f in float (truncation error < 6e-9,
 * relative error of the result about 2e-7), and round(t) into the exponent.
 * Results below 2**-126 (including x = -inf) are flushed to 0: such a token's
 * probability is below 1e-37, which SPEC.md's accuracy rules ignore.
 * No branches, so compilers can vectorize loops that call it.
 */
static inline float tp_exp_scaled(float x, float max, double k)
{
    double t = ((double)x - (double)max) * k;
    t = t < -127.0 ? -127.0 : t;                  /* also maps x = -inf */
    const double shifter = 6755399441055744.0;    /* 1.5 * 2**52: round to nearest */
    double n = (t + shifter) - shifter;
    float f = (float)(t - n);
    float p = 1.5252733804059838e-05f;
    p = p * f + 1.5403530393381606e-04f;
    p = p * f + 1.3333558146428441e-03f;
    p = p * f + 9.6181291076284770e-03f;
    p = p * f + 5.5504108664821576e-02f;
    p = p * f + 2.4022650695910071e-01f;
    p = p * f + 6.9314718055994530e-01f;
    p = p * f + 1.0f;
    int32_t e = (int32_t)n;                       /* in [-127, 0] */
    float scale = tp_bits_to_float((uint32_t)(e + 127) << 23);
    return e < -126 ? 0.0f : p * scale;
}

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
