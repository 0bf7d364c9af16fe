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

/* Whether the instruction set has a fused multiply-add: the AVX2 and AVX-512
 * builds (GCC and Clang say so with __FMA__; MSVC's /arch:AVX2 implies it
 * but defines only __AVX2__), their emulation by SIMDe (rows/vec_simde.h,
 * with fmaf), and aarch64. */
#if defined(__FMA__) || defined(__aarch64__) || defined(_M_ARM64)         \
    || (defined(_MSC_VER) && defined(__AVX2__)) || defined(TP_SIMDE_AVX2) \
    || defined(TP_SIMDE_AVX512)
#define TP_HAVE_FMA 1
#else
#define TP_HAVE_FMA 0
#endif

/* a * b + c, fused where the instruction set has it, so results differ
 * between paths by an ulp or so. */
#if TP_HAVE_FMA
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

/* Half-precision logits, as the kernels see them: their bits in a struct of
 * their own, so that reading one as a number without widening it is a
 * compile error. */
typedef struct {
    uint16_t bits;
} tp_f16;
typedef struct {
    uint16_t bits;
} tp_bf16;

/* bfloat16 is the high half of a float32: a shift. */
static inline float tp_bf16_float(tp_bf16 h) { return tp_bits_to_float((uint32_t)h.bits << 16); }

/* float16 (1 sign, 5 exponent, 10 mantissa bits) exactly: a normal number
 * moves its bits 13 up and its exponent bias from 15 to 127; exponent 31
 * (inf and NaN) takes float32's all-ones exponent, the mantissa (a NaN's
 * payload) kept; exponent 0 is the mantissa times 2**-24, converted and
 * scaled exactly (a whole number below 1024 times a power of two, a normal
 * float32): no arithmetic on subnormals, so that a thread that flushes them
 * to zero (torch.set_flush_denormal) converts the same.  Without a branch,
 * so that loops over it vectorize. */
static inline float tp_f16_float(tp_f16 v)
{
    const uint32_t h = v.bits, exponent = h & 0x7C00u, mantissa = h & 0x3FFu;
    const uint32_t normal = ((h & 0x7FFFu) << 13) + ((uint32_t)(127 - 15) << 23);
    const uint32_t special = 0x7F800000u | (mantissa << 13);
    const uint32_t small = tp_float_to_bits((float)(int32_t)mantissa * 0x1p-24f);
    uint32_t bits = exponent == 0x7C00u ? special : normal;
    bits = exponent == 0 ? small : bits;
    return tp_bits_to_float(bits | (h & 0x8000u) << 16);
}

/* 2**f for |f| <= 1/2 (any f in [-1, 1] gives a finite value): a degree-5
 * polynomial fitted for relative error with the constant fixed at 1, by
 * Horner's scheme; relative error 1.7e-7 in float with multiply-adds.  The
 * vector form (sums.c) uses the same coefficients, operation for operation. */
#define TP_EXP2_C5 1.326470054e-03f
#define TP_EXP2_C4 9.671534412e-03f
#define TP_EXP2_C3 5.550733954e-02f
#define TP_EXP2_C2 2.402224243e-01f
#define TP_EXP2_C1 6.931470037e-01f
static inline float tp_exp2_reduced(float f)
{
    float p = TP_MADD(TP_EXP2_C5, f, TP_EXP2_C4);
    p = TP_MADD(p, f, TP_EXP2_C3);
    p = TP_MADD(p, f, TP_EXP2_C2);
    p = TP_MADD(p, f, TP_EXP2_C1);
    return TP_MADD(p, f, 1.0f);
}

/*
 * exp((x - max) / T) for x <= max, as 2**t with t = (x - max) * log2(e) / T.
 * tp_exp_setup takes the row's max and rate = log2(e) / T once; tp_exp_apply
 * then costs about 17 vector operations per lane, without branches, so loops
 * over it vectorize.  t splits into n = round(t), which goes into the
 * exponent, and f = t - n, which goes to the polynomial; f must be accurate
 * in absolute terms even when |t| is large, and there are two ways:
 *
 * - with fused multiply-add (AVX2, AVX-512, aarch64), all in float: the
 *   rate as a float pair rate_hi + rate_lo, and f = d * rate_hi - n formed
 *   exactly by an FMA.
 *   What remains is the rounding of d = x - max, at most 6e-8 |t|, so about
 *   4e-6 relative for probabilities down to 1e-30.
 * - without (the SSE2 baseline), t in double.
 *
 * Results below 2**-126 (including x = -inf) are flushed to 0: such a token's
 * probability is below 1e-37, which the accuracy rules ignore.
 */
typedef struct {
    float scale; /* d = x * scale - max_scaled: x - max, times a power of 2 */
    float max_scaled;
    float rate_hi, rate_lo; /* rate / scale = rate_hi + rate_lo, each a float */
    double rate, max;       /* for the double form */
} tp_exparg;

static inline tp_exparg tp_exp_setup(float max, double rate)
{
    /* x - max overflows float when max > 0 and x < max - FLT_MAX: with a
     * positive max, halve both (exact for the x where it matters) and double
     * the rate.  A rate beyond float's range (T < 4e-39): scale d up by 2**30
     * and the rate down,
     * unless |max| >= 2**97, where every nonzero d is at least 2**73 and
     * gives t = -inf anyway; past 2**157 every nonzero d gives t < -150
     * either way, so the rate may saturate. */
    const float half = max > 0x1p-64f ? 0.5f : 1.0f;
    double ks = rate / (double)half;
    float up = 1.0f;
    if (ks > 0x1p120 && fabsf(max) < 0x1p97f) {
        up = 0x1p30f;
        ks *= 0x1p-30;
    }
    tp_exparg a;
    a.scale = half * up;
    a.max_scaled = max * half * up; /* exact: a power of 2 times max, within range */
    a.rate_hi = ks < (double)FLT_MAX ? (float)ks : FLT_MAX;
    a.rate_lo = ks < (double)FLT_MAX ? (float)(ks - (double)a.rate_hi) : 0.0f;
    a.rate = rate;
    a.max = max;
    return a;
}

#define TP_SHIFTER 12582912.0f /* 1.5 * 2**23: x + it rounds x to an integer */

#if TP_HAVE_FMA
static inline float tp_exp_apply(float x, const tp_exparg *a)
{
    const float d = fmaf(x, a->scale, -a->max_scaled); /* <= 0, or -inf */
    const float t = d * a->rate_hi;                    /* may be -inf, never NaN */
    const float s = (t > -127.0f ? t : -127.0f) + TP_SHIFTER;
    const float n = s - TP_SHIFTER; /* round(t), in [-127, 0] */
    float f = fmaf(d, a->rate_lo, fmaf(d, a->rate_hi, -n));
    f = f > -1.0f ? f : -1.0f; /* only when t < -127 (then n is -127), or NaN at -inf */
    /* s's low mantissa bits hold n: shifted into the exponent field, they
     * give 2**n, and 0 for n = -127, which flushes. */
    const uint32_t scale_bits = (tp_float_to_bits(s) << 23) + (127u << 23);
    return tp_exp2_reduced(f) * tp_bits_to_float(scale_bits);
}
#else
static inline float tp_exp_apply(float x, const tp_exparg *a)
{
    double t = ((double)x - a->max) * a->rate;
    t = t < -127.0 ? -127.0 : t;               /* also maps x = -inf */
    const double shifter = 6755399441055744.0; /* 1.5 * 2**52: round to nearest */
    const double n = (t + shifter) - shifter;
    const int32_t e = (int32_t)n;
    const float scale = tp_bits_to_float((uint32_t)(e + 127) << 23); /* 0 at -127 */
    return tp_exp2_reduced((float)(t - n)) * scale;
}
#endif

/*
 * An unsigned key that orders like the float: a < b  <=>  key(a) < key(b),
 * for all non-NaN floats, with -0.0 and +0.0 given the same key (they compare
 * equal, so selection must treat them as a tie).
 */
static inline uint32_t tp_key(float v)
{
    uint32_t b = tp_float_to_bits(v + 0.0f); /* -0.0 + 0.0 == +0.0 */
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

static inline float tp_unkey(uint32_t key)
{
    return tp_bits_to_float((key & 0x80000000u) ? (key & 0x7FFFFFFFu) : ~key);
}

#endif /* TP_INTERNAL_H */
