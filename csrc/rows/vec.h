/*
 * The few float-vector operations that compilers will not vectorize on their
 * own without -ffast-math (max reductions, NaN tests, first-match searches),
 * for the instruction set this translation unit is compiled for: AVX-512,
 * AVX2, SSE2 (the x86-64 baseline), NEON (the aarch64 baseline), or scalar.
 * (The AVX-512 or AVX2 section, emulated by SIMDe for any x86-64 CPU, when
 * setup.py defines TP_SIMDE_AVX512 or TP_SIMDE_AVX2: vec_simde.h.)
 *
 *   TP_VW               lanes per vector
 *   tp_vf               a vector of TP_VW floats
 *   vf_load(p)          TP_VW floats from p (unaligned)
 *   vf_set1(v)          v in every lane
 *   vf_max(a, b)        per lane: a > b ? a : b  (NaN-free inputs)
 *   vf_hmax(a)          the largest lane
 *   vf_min(a, b), vf_hmin(a)  the same for the smaller, the smallest
 *   vf_nan_bits(a)      nonzero iff some lane is NaN
 *   vf_nan2_bits(a, b)  nonzero iff some lane of a or of b is NaN (one
 *                       unordered compare where the instruction set has it)
 *   vf_eq_bits(a, b)    bit j set iff lane j of a equals lane j of b
 *   vf_ge_bits(a, b)    bit j set iff lane j of a >= lane j of b
 *   vf_within_bits(a, lo, past_hi)  (AVX-512, AVX2) bit j set iff
 *                       lo <= lane j of a < past_hi
 *   vf_keep_bits(a, m, fill)  per lane j: bit j of m set ? a : fill (bits
 *                       from TP_VW on are ignored)
 *   vf_max_where(acc, a, m)  per lane j: bit j of m set ? max(acc, a) : acc
 *   vf_store(p, a)      TP_VW floats to p (unaligned)
 *
 *   vf_load_f16(p), vf_load_bf16(p)  TP_VW float16 or bfloat16 values at p
 *                       (unaligned), widened exactly to floats: float16 by
 *                       the instruction set's conversion where it has one
 *                       (F16C on AVX2 and AVX-512, NEON; a signaling NaN
 *                       may come out quiet), else in integer lanes;
 *                       bfloat16 by a shift
 *
 * Where the instruction set has fused multiply-add (AVX2 with FMA, AVX-512,
 * aarch64), TP_VARITH is 1 and there is arithmetic too, for the vectorized
 * exponential of sums.c:
 *
 *   vf_add, vf_sub, vf_mul(a, b)   per lane
 *   vf_fma(a, b, c)     per lane: a * b + c, rounded once
 *   vf_ge_or_zero(a, x, t)  per lane: x >= t ? a : 0
 *   vf_at_least(a, lo)  per lane: a >= lo ? a : lo, and lo where a is NaN
 *   vf_exp2_int(s)      per lane: 2**n, where s = n + 1.5 * 2**23 for an
 *                       integer n in [-127, 0]; 0 for n = -127
 *   vf_hsum(a)          the sum of the lanes, pairwise
 */
#ifndef TP_VEC_H
#define TP_VEC_H

#include <stdint.h>

#include "../tp_internal.h" /* TP_HAVE_FMA */

/* Index of the lowest set bit of a nonzero mask. */
static inline int tp_lowest_bit(uint32_t m)
{
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_ctz(m);
#else
    int i = 0;
    while (!(m & 1u)) {
        m >>= 1;
        i++;
    }
    return i;
#endif
}

/* The number of set bits of a mask. */
static inline int tp_bit_count(uint32_t m)
{
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_popcount(m);
#else
    int c = 0;
    for (; m; m &= m - 1)
        c++;
    return c;
#endif
}

#if defined(__AVX512F__) || defined(TP_SIMDE_AVX512)
#ifdef TP_SIMDE_AVX512
#include "vec_simde.h" /* the emulated build: these instructions from SIMDe */
#else
#include <immintrin.h>
#endif
#define TP_VW 16
typedef __m512 tp_vf;
static inline tp_vf vf_load(const float *p) { return _mm512_loadu_ps(p); }
static inline tp_vf vf_set1(float v) { return _mm512_set1_ps(v); }
static inline tp_vf vf_max(tp_vf a, tp_vf b) { return _mm512_max_ps(a, b); }
static inline float vf_hmax(tp_vf a) { return _mm512_reduce_max_ps(a); }
static inline tp_vf vf_min(tp_vf a, tp_vf b) { return _mm512_min_ps(a, b); }
static inline float vf_hmin(tp_vf a) { return _mm512_reduce_min_ps(a); }
static inline uint32_t vf_nan_bits(tp_vf a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
static inline uint32_t vf_nan2_bits(tp_vf a, tp_vf b)
{
    return _mm512_cmp_ps_mask(a, b, _CMP_UNORD_Q);
}
static inline uint32_t vf_eq_bits(tp_vf a, tp_vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
static inline uint32_t vf_ge_bits(tp_vf a, tp_vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ); }
static inline tp_vf vf_keep_bits(tp_vf a, uint32_t m, tp_vf fill)
{
    return _mm512_mask_blend_ps((__mmask16)m, fill, a);
}
static inline tp_vf vf_max_where(tp_vf acc, tp_vf a, uint32_t m)
{
    return _mm512_mask_max_ps(acc, (__mmask16)m, acc, a);
}
static inline void vf_store(float *p, tp_vf a) { _mm512_storeu_ps(p, a); }
static inline tp_vf vf_load_f16(const tp_f16 *p)
{
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}
/* bfloat16: one word permutation puts word j into the high half of lane j,
 * zeros below (one ALU operation, where zero-extension and a shift take two). */
static inline tp_vf vf_load_bf16(const tp_bf16 *p)
{
    const __m512i words = _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)p));
    const __m512i to_high = _mm512_set_epi16(15, 0, 14, 0, 13, 0, 12, 0, 11, 0, 10, 0, 9, 0, 8, 0,
                                             7, 0, 6, 0, 5, 0, 4, 0, 3, 0, 2, 0, 1, 0, 0, 0);
    return _mm512_castsi512_ps(_mm512_maskz_permutexvar_epi16(0xAAAAAAAAu, to_high, words));
}
#define TP_VARITH 1
static inline uint32_t vf_within_bits(tp_vf a, tp_vf lo, tp_vf past_hi)
{
    return _mm512_mask_cmp_ps_mask(_mm512_cmp_ps_mask(a, lo, _CMP_GE_OQ), a, past_hi, _CMP_LT_OQ);
}
static inline tp_vf vf_add(tp_vf a, tp_vf b) { return _mm512_add_ps(a, b); }
static inline tp_vf vf_sub(tp_vf a, tp_vf b) { return _mm512_sub_ps(a, b); }
static inline tp_vf vf_mul(tp_vf a, tp_vf b) { return _mm512_mul_ps(a, b); }
static inline tp_vf vf_fma(tp_vf a, tp_vf b, tp_vf c) { return _mm512_fmadd_ps(a, b, c); }
static inline tp_vf vf_at_least(tp_vf a, tp_vf lo) { return _mm512_max_ps(a, lo); }
static inline tp_vf vf_ge_or_zero(tp_vf a, tp_vf x, tp_vf t)
{
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, t, _CMP_GE_OQ), a);
}
static inline tp_vf vf_exp2_int(tp_vf s)
{
    const __m512i bits = _mm512_slli_epi32(_mm512_castps_si512(s), 23);
    return _mm512_castsi512_ps(_mm512_add_epi32(bits, _mm512_set1_epi32(127 << 23)));
}
/* Where the instruction set packs vector lanes (AVX-512, and AVX2 by a
 * permutation), TP_VCOMPRESS is 1: vf_pack(m) prepares the packing of the
 * lanes whose bit is set in m, vf_compress_store(dst, pk, a) writes those
 * lanes of a, in order, to dst, and vf_compress_ids(ids, pk, base) their
 * indices base + lane; each writes TP_VW values, of which the first
 * popcount(m) count. */
#define TP_VCOMPRESS 1
typedef __mmask16 tp_vpack;
static inline tp_vpack vf_pack(uint32_t m) { return (__mmask16)m; }
static inline void vf_compress_store(float *dst, tp_vpack m, tp_vf a)
{
    _mm512_storeu_ps(dst, _mm512_maskz_compress_ps(m, a));
}
static inline void vf_compress_ids(int64_t *ids, tp_vpack m, int64_t base)
{
    const __m512i lanes = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i packed = _mm512_maskz_compress_epi32(m, lanes);
    const __m512i b = _mm512_set1_epi64(base);
    _mm512_storeu_si512(ids,
                        _mm512_add_epi64(b, _mm512_cvtepu32_epi64(_mm512_castsi512_si256(packed))));
    _mm512_storeu_si512(
        ids + 8, _mm512_add_epi64(b, _mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64(packed, 1))));
}
static inline float vf_hsum(tp_vf a)
{
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(a),
                             _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_shuffle_ps(q, q, 1));
    return _mm_cvtss_f32(q);
}

#elif defined(__AVX2__) || defined(TP_SIMDE_AVX2)
#ifdef TP_SIMDE_AVX2
#include "vec_simde.h"
#else
#include <immintrin.h>
#endif
#define TP_VW 8
typedef __m256 tp_vf;
static inline tp_vf vf_load(const float *p) { return _mm256_loadu_ps(p); }
static inline tp_vf vf_set1(float v) { return _mm256_set1_ps(v); }
static inline tp_vf vf_max(tp_vf a, tp_vf b) { return _mm256_max_ps(a, b); }
static inline float vf_hmax(tp_vf a)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}
static inline tp_vf vf_min(tp_vf a, tp_vf b) { return _mm256_min_ps(a, b); }
static inline float vf_hmin(tp_vf a)
{
    __m128 m = _mm_min_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    m = _mm_min_ps(m, _mm_movehl_ps(m, m));
    m = _mm_min_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}
static inline uint32_t vf_nan_bits(tp_vf a)
{
    return (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(a, a, _CMP_UNORD_Q));
}
static inline uint32_t vf_nan2_bits(tp_vf a, tp_vf b)
{
    return (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(a, b, _CMP_UNORD_Q));
}
static inline uint32_t vf_eq_bits(tp_vf a, tp_vf b)
{
    return (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(a, b, _CMP_EQ_OQ));
}
static inline uint32_t vf_ge_bits(tp_vf a, tp_vf b)
{
    return (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(a, b, _CMP_GE_OQ));
}
static inline uint32_t vf_within_bits(tp_vf a, tp_vf lo, tp_vf past_hi)
{
    return (uint32_t)_mm256_movemask_ps(
        _mm256_andnot_ps(_mm256_cmp_ps(a, past_hi, _CMP_GE_OQ), _mm256_cmp_ps(a, lo, _CMP_GE_OQ)));
}
static inline tp_vf vf_keep_bits(tp_vf a, uint32_t m, tp_vf fill)
{
    /* bit j of m to the sign bit of lane j, which blendv reads */
    const __m256i up = _mm256_setr_epi32(31, 30, 29, 28, 27, 26, 25, 24);
    const __m256i on = _mm256_sllv_epi32(_mm256_set1_epi32((int)m), up);
    return _mm256_blendv_ps(fill, a, _mm256_castsi256_ps(on));
}
static inline void vf_store(float *p, tp_vf a) { _mm256_storeu_ps(p, a); }
static inline tp_vf vf_load_f16(const tp_f16 *p) /* F16C: the dispatch requires it */
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}
/* bfloat16: the 8 words broadcast to both halves (a load alone), and one
 * byte shuffle puts words 0-3 and 4-7 into the high halves of the lanes of
 * each, zeros below: one ALU operation, where zero-extension and a shift
 * take two. */
static inline tp_vf vf_load_bf16(const tp_bf16 *p)
{
    const __m256i both = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p));
    const __m256i to_high =
        _mm256_setr_epi8(-1, -1, 0, 1, -1, -1, 2, 3, -1, -1, 4, 5, -1, -1, 6, 7, /* words 0-3 */
                         -1, -1, 8, 9, -1, -1, 10, 11, -1, -1, 12, 13, -1, -1, 14, 15);
    return _mm256_castsi256_ps(_mm256_shuffle_epi8(both, to_high));
}
#if TP_HAVE_FMA
#define TP_VARITH 1
static inline tp_vf vf_add(tp_vf a, tp_vf b) { return _mm256_add_ps(a, b); }
static inline tp_vf vf_sub(tp_vf a, tp_vf b) { return _mm256_sub_ps(a, b); }
static inline tp_vf vf_mul(tp_vf a, tp_vf b) { return _mm256_mul_ps(a, b); }
static inline tp_vf vf_fma(tp_vf a, tp_vf b, tp_vf c) { return _mm256_fmadd_ps(a, b, c); }
static inline tp_vf vf_at_least(tp_vf a, tp_vf lo) { return _mm256_max_ps(a, lo); }
static inline tp_vf vf_ge_or_zero(tp_vf a, tp_vf x, tp_vf t)
{
    return _mm256_and_ps(_mm256_cmp_ps(x, t, _CMP_GE_OQ), a);
}
static inline tp_vf vf_exp2_int(tp_vf s)
{
    const __m256i bits = _mm256_slli_epi32(_mm256_castps_si256(s), 23);
    return _mm256_castsi256_ps(_mm256_add_epi32(bits, _mm256_set1_epi32(127 << 23)));
}
static inline float vf_hsum(tp_vf a)
{
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_shuffle_ps(q, q, 1));
    return _mm_cvtss_f32(q);
}
#endif
/* AVX2 has no compress instruction; a permutation packs the lanes instead.
 * Byte j of tp_pack8[m] is the lane of the j-th set bit of the 8-bit mask m
 * (the bytes past the last set bit do not matter).  The table is made by
 * the preprocessor from that of a 4-bit mask, TP_PACK4_m, its count of set
 * bits, TP_BITS4_m, and TP_PACK8(h, l), which appends the lanes of the high
 * half h (plus 4) to those of the low half l. */
#define TP_VCOMPRESS 1
typedef __m256i tp_vpack;
#define TP_PACK4_0 0x00000000u
#define TP_PACK4_1 0x00000000u
#define TP_PACK4_2 0x00000001u
#define TP_PACK4_3 0x00000100u
#define TP_PACK4_4 0x00000002u
#define TP_PACK4_5 0x00000200u
#define TP_PACK4_6 0x00000201u
#define TP_PACK4_7 0x00020100u
#define TP_PACK4_8 0x00000003u
#define TP_PACK4_9 0x00000300u
#define TP_PACK4_10 0x00000301u
#define TP_PACK4_11 0x00030100u
#define TP_PACK4_12 0x00000302u
#define TP_PACK4_13 0x00030200u
#define TP_PACK4_14 0x00030201u
#define TP_PACK4_15 0x03020100u
#define TP_BITS4_0 0
#define TP_BITS4_1 1
#define TP_BITS4_2 1
#define TP_BITS4_3 2
#define TP_BITS4_4 1
#define TP_BITS4_5 2
#define TP_BITS4_6 2
#define TP_BITS4_7 3
#define TP_BITS4_8 1
#define TP_BITS4_9 2
#define TP_BITS4_10 2
#define TP_BITS4_11 3
#define TP_BITS4_12 2
#define TP_BITS4_13 3
#define TP_BITS4_14 3
#define TP_BITS4_15 4
#define TP_PACK8(h, l) \
    ((uint64_t)TP_PACK4_##l | ((uint64_t)TP_PACK4_##h + 0x04040404u) << (8 * TP_BITS4_##l))
#define TP_PACK8_ROW(h)                                                                      \
    TP_PACK8(h, 0), TP_PACK8(h, 1), TP_PACK8(h, 2), TP_PACK8(h, 3), TP_PACK8(h, 4),          \
        TP_PACK8(h, 5), TP_PACK8(h, 6), TP_PACK8(h, 7), TP_PACK8(h, 8), TP_PACK8(h, 9),      \
        TP_PACK8(h, 10), TP_PACK8(h, 11), TP_PACK8(h, 12), TP_PACK8(h, 13), TP_PACK8(h, 14), \
        TP_PACK8(h, 15)
static const uint64_t tp_pack8[256] = {
    TP_PACK8_ROW(0),  TP_PACK8_ROW(1),  TP_PACK8_ROW(2),  TP_PACK8_ROW(3),
    TP_PACK8_ROW(4),  TP_PACK8_ROW(5),  TP_PACK8_ROW(6),  TP_PACK8_ROW(7),
    TP_PACK8_ROW(8),  TP_PACK8_ROW(9),  TP_PACK8_ROW(10), TP_PACK8_ROW(11),
    TP_PACK8_ROW(12), TP_PACK8_ROW(13), TP_PACK8_ROW(14), TP_PACK8_ROW(15),
};
static inline tp_vpack vf_pack(uint32_t m)
{
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)&tp_pack8[m & 255u]));
}
static inline void vf_compress_store(float *dst, tp_vpack pk, tp_vf a)
{
    _mm256_storeu_ps(dst, _mm256_permutevar8x32_ps(a, pk));
}
static inline void vf_compress_ids(int64_t *ids, tp_vpack pk, int64_t base)
{
    const __m256i b = _mm256_set1_epi64x(base);
    _mm256_storeu_si256((__m256i *)ids,
                        _mm256_add_epi64(b, _mm256_cvtepu32_epi64(_mm256_castsi256_si128(pk))));
    _mm256_storeu_si256(
        (__m256i *)(ids + 4),
        _mm256_add_epi64(b, _mm256_cvtepu32_epi64(_mm256_extracti128_si256(pk, 1))));
}

#elif defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#define TP_VW 4
typedef __m128 tp_vf;
static inline tp_vf vf_load(const float *p) { return _mm_loadu_ps(p); }
static inline tp_vf vf_set1(float v) { return _mm_set1_ps(v); }
static inline tp_vf vf_max(tp_vf a, tp_vf b) { return _mm_max_ps(a, b); }
static inline float vf_hmax(tp_vf a)
{
    __m128 m = _mm_max_ps(a, _mm_movehl_ps(a, a));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}
static inline tp_vf vf_min(tp_vf a, tp_vf b) { return _mm_min_ps(a, b); }
static inline float vf_hmin(tp_vf a)
{
    __m128 m = _mm_min_ps(a, _mm_movehl_ps(a, a));
    m = _mm_min_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}
static inline uint32_t vf_nan_bits(tp_vf a)
{
    return (uint32_t)_mm_movemask_ps(_mm_cmpunord_ps(a, a));
}
static inline uint32_t vf_nan2_bits(tp_vf a, tp_vf b)
{
    return (uint32_t)_mm_movemask_ps(_mm_cmpunord_ps(a, b));
}
static inline uint32_t vf_eq_bits(tp_vf a, tp_vf b)
{
    return (uint32_t)_mm_movemask_ps(_mm_cmpeq_ps(a, b));
}
static inline uint32_t vf_ge_bits(tp_vf a, tp_vf b)
{
    return (uint32_t)_mm_movemask_ps(_mm_cmpge_ps(a, b));
}
static inline tp_vf vf_keep_bits(tp_vf a, uint32_t m, tp_vf fill)
{
    const __m128i lane = _mm_setr_epi32(1, 2, 4, 8);
    const __m128 on =
        _mm_castsi128_ps(_mm_cmpeq_epi32(_mm_and_si128(_mm_set1_epi32((int)m), lane), lane));
    return _mm_or_ps(_mm_and_ps(on, a), _mm_andnot_ps(on, fill));
}
static inline void vf_store(float *p, tp_vf a) { _mm_storeu_ps(p, a); }
/* tp_f16_float in integer lanes (SSE2 has no conversion of half precision). */
static inline tp_vf vf_load_f16(const tp_f16 *p)
{
    const __m128i h = _mm_unpacklo_epi16(_mm_loadl_epi64((const __m128i *)p), _mm_setzero_si128());
    const __m128i exponent = _mm_and_si128(h, _mm_set1_epi32(0x7C00));
    const __m128i mantissa = _mm_and_si128(h, _mm_set1_epi32(0x3FF));
    const __m128i normal =
        _mm_add_epi32(_mm_slli_epi32(_mm_and_si128(h, _mm_set1_epi32(0x7FFF)), 13),
                      _mm_set1_epi32((127 - 15) << 23));
    const __m128i special = _mm_or_si128(_mm_set1_epi32(0x7F800000), _mm_slli_epi32(mantissa, 13));
    const __m128i small =
        _mm_castps_si128(_mm_mul_ps(_mm_cvtepi32_ps(mantissa), _mm_set1_ps(0x1p-24f)));
    const __m128i is_special = _mm_cmpeq_epi32(exponent, _mm_set1_epi32(0x7C00));
    const __m128i is_small = _mm_cmpeq_epi32(exponent, _mm_setzero_si128());
    __m128i bits =
        _mm_or_si128(_mm_and_si128(is_special, special), _mm_andnot_si128(is_special, normal));
    bits = _mm_or_si128(_mm_and_si128(is_small, small), _mm_andnot_si128(is_small, bits));
    bits = _mm_or_si128(bits, _mm_slli_epi32(_mm_and_si128(h, _mm_set1_epi32(0x8000)), 16));
    return _mm_castsi128_ps(bits);
}
static inline tp_vf vf_load_bf16(const tp_bf16 *p)
{
    const __m128i h = _mm_loadl_epi64((const __m128i *)p);
    return _mm_castsi128_ps(_mm_unpacklo_epi16(_mm_setzero_si128(), h));
}

#elif defined(__ARM_NEON) || defined(_M_ARM64)
#include <arm_neon.h>
#define TP_VW 4
typedef float32x4_t tp_vf;
static inline tp_vf vf_load(const float *p) { return vld1q_f32(p); }
static inline tp_vf vf_set1(float v) { return vdupq_n_f32(v); }
static inline tp_vf vf_max(tp_vf a, tp_vf b) { return vmaxq_f32(a, b); }
static inline float vf_hmax(tp_vf a) { return vmaxvq_f32(a); }
static inline tp_vf vf_min(tp_vf a, tp_vf b) { return vminq_f32(a, b); }
static inline float vf_hmin(tp_vf a) { return vminvq_f32(a); }
static inline uint32_t vf_nan_bits(tp_vf a) { return vmaxvq_u32(vmvnq_u32(vceqq_f32(a, a))); }
static inline uint32_t vf_nan2_bits(tp_vf a, tp_vf b)
{
    return vmaxvq_u32(vmvnq_u32(vandq_u32(vceqq_f32(a, a), vceqq_f32(b, b))));
}
static inline uint32_t tp_neon_bits(uint32x4_t m)
{
    static const uint32_t lane_bit[4] = {1, 2, 4, 8};
    return vaddvq_u32(vandq_u32(m, vld1q_u32(lane_bit)));
}
static inline uint32_t vf_eq_bits(tp_vf a, tp_vf b) { return tp_neon_bits(vceqq_f32(a, b)); }
static inline uint32_t vf_ge_bits(tp_vf a, tp_vf b) { return tp_neon_bits(vcgeq_f32(a, b)); }
static inline tp_vf vf_keep_bits(tp_vf a, uint32_t m, tp_vf fill)
{
    static const uint32_t lane_bit[4] = {1, 2, 4, 8};
    return vbslq_f32(vtstq_u32(vdupq_n_u32(m), vld1q_u32(lane_bit)), a, fill);
}
#define TP_VARITH 1
static inline tp_vf vf_add(tp_vf a, tp_vf b) { return vaddq_f32(a, b); }
static inline tp_vf vf_sub(tp_vf a, tp_vf b) { return vsubq_f32(a, b); }
static inline tp_vf vf_mul(tp_vf a, tp_vf b) { return vmulq_f32(a, b); }
static inline tp_vf vf_fma(tp_vf a, tp_vf b, tp_vf c) { return vfmaq_f32(c, a, b); }
static inline tp_vf vf_at_least(tp_vf a, tp_vf lo) { return vmaxnmq_f32(a, lo); }
static inline void vf_store(float *p, tp_vf a) { vst1q_f32(p, a); }
static inline tp_vf vf_ge_or_zero(tp_vf a, tp_vf x, tp_vf t)
{
    return vreinterpretq_f32_u32(vandq_u32(vcgeq_f32(x, t), vreinterpretq_u32_f32(a)));
}
static inline tp_vf vf_exp2_int(tp_vf s)
{
    const uint32x4_t bits = vshlq_n_u32(vreinterpretq_u32_f32(s), 23);
    return vreinterpretq_f32_u32(vaddq_u32(bits, vdupq_n_u32(127u << 23)));
}
static inline float vf_hsum(tp_vf a) { return vaddvq_f32(a); }
static inline tp_vf vf_load_f16(const tp_f16 *p)
{
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)p)));
}
static inline tp_vf vf_load_bf16(const tp_bf16 *p)
{
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16((const uint16_t *)p), 16));
}

#else
#define TP_VW 1
typedef float tp_vf;
static inline tp_vf vf_load(const float *p) { return *p; }
static inline tp_vf vf_set1(float v) { return v; }
static inline tp_vf vf_max(tp_vf a, tp_vf b) { return a > b ? a : b; }
static inline float vf_hmax(tp_vf a) { return a; }
static inline tp_vf vf_min(tp_vf a, tp_vf b) { return a < b ? a : b; }
static inline float vf_hmin(tp_vf a) { return a; }
static inline uint32_t vf_nan_bits(tp_vf a) { return a != a; }
static inline uint32_t vf_nan2_bits(tp_vf a, tp_vf b) { return (a != a) | (b != b); }
static inline uint32_t vf_eq_bits(tp_vf a, tp_vf b) { return a == b; }
static inline uint32_t vf_ge_bits(tp_vf a, tp_vf b) { return a >= b; }
static inline tp_vf vf_keep_bits(tp_vf a, uint32_t m, tp_vf fill) { return (m & 1) ? a : fill; }
static inline void vf_store(float *p, tp_vf a) { *p = a; }
static inline tp_vf vf_load_f16(const tp_f16 *p) { return tp_f16_float(*p); }
static inline tp_vf vf_load_bf16(const tp_bf16 *p) { return tp_bf16_float(*p); }
#endif

#ifndef TP_VARITH
#define TP_VARITH 0
#endif

#if !defined(__AVX512F__) && !defined(TP_SIMDE_AVX512)
static inline tp_vf vf_max_where(tp_vf acc, tp_vf a, uint32_t m)
{
    return vf_max(acc, vf_keep_bits(a, m, acc));
}
#endif
#ifndef TP_VCOMPRESS
#define TP_VCOMPRESS 0
#endif

#endif /* TP_VEC_H */
