/*
 * The emulated build (setup.py, TOKENPICK_EMULATE_SIMD=1): vec.h's AVX-512
 * (TP_SIMDE_AVX512) or AVX2 (TP_SIMDE_AVX2) section compiled against SIMDe
 * (SIMD Everywhere), which defines the intrinsics under their own names for
 * the baseline instruction set, so that any x86-64 CPU runs those kernels.
 * For testing: the emulated tables must give what the native ones give, bit
 * for bit.  What SIMDe 0.7.4 lacks, or does otherwise than the instructions,
 * is defined here:
 *
 * - _mm512_fmadd_ps, _mm256_fmadd_ps: SIMDe rounds a * b + c twice unless
 *   the target has FMA; here, once per lane (fmaf), as the instruction does.
 * - _mm512_reduce_max_ps, _mm512_reduce_min_ps: in the order of GCC's own
 *   header, which decides which of a -0.0 and a +0.0 is returned.
 * - _mm512_mask_cmp_ps_mask, _mm512_cvtepu32_epi64, _mm512_cvtph_ps,
 *   _mm512_cvtepu16_epi32 and the name __mmask16.
 */
#ifndef TP_VEC_SIMDE_H
#define TP_VEC_SIMDE_H

#include <math.h>
#include <stdint.h>

#define SIMDE_ENABLE_NATIVE_ALIASES
#ifdef TP_SIMDE_AVX512
#include <simde/x86/avx512.h>
#else
#include <simde/x86/avx2.h>
#endif
#include <simde/x86/f16c.h>
#include <simde/x86/fma.h>

static inline simde__m256 tp_simde_fmadd_ps256(simde__m256 a, simde__m256 b, simde__m256 c)
{
    float fa[8], fb[8], fc[8];
    simde_mm256_storeu_ps(fa, a);
    simde_mm256_storeu_ps(fb, b);
    simde_mm256_storeu_ps(fc, c);
    for (int j = 0; j < 8; j++)
        fa[j] = fmaf(fa[j], fb[j], fc[j]);
    return simde_mm256_loadu_ps(fa);
}
#undef _mm256_fmadd_ps
#define _mm256_fmadd_ps(a, b, c) tp_simde_fmadd_ps256((a), (b), (c))

#ifdef TP_SIMDE_AVX512
typedef simde__mmask16 __mmask16;

static inline simde__m512 tp_simde_fmadd_ps512(simde__m512 a, simde__m512 b, simde__m512 c)
{
    float fa[16], fb[16], fc[16];
    simde_mm512_storeu_ps(fa, a);
    simde_mm512_storeu_ps(fb, b);
    simde_mm512_storeu_ps(fc, c);
    for (int j = 0; j < 16; j++)
        fa[j] = fmaf(fa[j], fb[j], fc[j]);
    return simde_mm512_loadu_ps(fa);
}
#undef _mm512_fmadd_ps
#define _mm512_fmadd_ps(a, b, c) tp_simde_fmadd_ps512((a), (b), (c))

/* GCC's reduction: the upper half against the lower, 256 then 128 bits, then
 * lanes (2, 3, 0, 1) and (1, 0, 1, 0) against the running result. */
#define TP_SIMDE_REDUCE(op)                                                              \
    simde__m256 h = simde_mm256_##op(                                                    \
        simde_mm256_castpd_ps(simde_mm512_extractf64x4_pd(simde_mm512_castps_pd(a), 1)), \
        simde_mm512_castps512_ps256(a));                                                 \
    simde__m128 q =                                                                      \
        simde_mm_##op(simde_mm256_extractf128_ps(h, 1), simde_mm256_castps256_ps128(h)); \
    q = simde_mm_##op(q, simde_mm_shuffle_ps(q, q, SIMDE_MM_SHUFFLE(1, 0, 3, 2)));       \
    q = simde_mm_##op(q, simde_mm_shuffle_ps(q, q, SIMDE_MM_SHUFFLE(0, 1, 0, 1)));       \
    return simde_mm_cvtss_f32(q)
static inline float tp_simde_reduce_max_ps(simde__m512 a) { TP_SIMDE_REDUCE(max_ps); }
static inline float tp_simde_reduce_min_ps(simde__m512 a) { TP_SIMDE_REDUCE(min_ps); }
#undef TP_SIMDE_REDUCE
#undef _mm512_reduce_max_ps
#define _mm512_reduce_max_ps(a) tp_simde_reduce_max_ps(a)
#undef _mm512_reduce_min_ps
#define _mm512_reduce_min_ps(a) tp_simde_reduce_min_ps(a)

/* F16C's conversion for 16 lanes, which SIMDe 0.7.4 lacks: two of 8 */
static inline simde__m512 tp_simde_cvtph_ps512(simde__m256i a)
{
    float f[16];
    simde_mm256_storeu_ps(f, simde_mm256_cvtph_ps(simde_mm256_castsi256_si128(a)));
    simde_mm256_storeu_ps(f + 8, simde_mm256_cvtph_ps(simde_mm256_extracti128_si256(a, 1)));
    return simde_mm512_loadu_ps(f);
}
#undef _mm512_cvtph_ps
#define _mm512_cvtph_ps(a) tp_simde_cvtph_ps512(a)

/* Zero-extension of 16 words to 16 dwords, which SIMDe 0.7.4 lacks: two of 8 */
static inline simde__m512i tp_simde_cvtepu16_epi32(simde__m256i a)
{
    const simde__m256i lo = simde_mm256_cvtepu16_epi32(simde_mm256_castsi256_si128(a));
    const simde__m256i hi = simde_mm256_cvtepu16_epi32(simde_mm256_extracti128_si256(a, 1));
    return simde_mm512_inserti64x4(simde_mm512_castsi256_si512(lo), hi, 1);
}
#undef _mm512_cvtepu16_epi32
#define _mm512_cvtepu16_epi32(a) tp_simde_cvtepu16_epi32(a)

#ifndef _mm512_mask_cmp_ps_mask
#define _mm512_mask_cmp_ps_mask(k, a, b, pred) \
    ((simde__mmask16)((k)&simde_mm512_cmp_ps_mask((a), (b), (pred))))
#endif

static inline simde__m512i tp_simde_cvtepu32_epi64(simde__m256i a)
{
    uint32_t in[8];
    int64_t out[8];
    simde_mm256_storeu_si256((simde__m256i *)in, a);
    for (int j = 0; j < 8; j++)
        out[j] = (int64_t)in[j];
    return simde_mm512_loadu_si512(out);
}
#ifndef _mm512_cvtepu32_epi64
#define _mm512_cvtepu32_epi64(a) tp_simde_cvtepu32_epi64(a)
#endif
#endif /* TP_SIMDE_AVX512 */

#endif /* TP_VEC_SIMDE_H */
