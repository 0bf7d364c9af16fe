/*
 * Half precision widened to float32, exactly: the conversion that reads
 * float16 and bfloat16 logits.  Plain loops without a branch, which the
 * compiler vectorizes for each instruction set of the table.
 *
 * bfloat16 is the high half of a float32: a shift.  float16 (1 sign, 5
 * exponent, 10 mantissa bits): a normal number moves its bits 13 up and its
 * exponent bias from 15 to 127; exponent 31 (inf and NaN) takes float32's
 * all-ones exponent, the mantissa (a NaN's payload) kept; exponent 0 is the
 * mantissa times 2**-24, converted and scaled exactly (a whole number below
 * 1024, a power of two): no arithmetic on subnormals, so that a thread that
 * flushes them to zero (torch.set_flush_denormal) converts the same.
 */
#include "row.h"
#include "vec.h"

static void tp_widen_bf16_f32(const uint16_t *src, int64_t n, float *dst)
{
    for (int64_t i = 0; i < n; i++) {
        const uint32_t bits = (uint32_t)src[i] << 16;
        memcpy(dst + i, &bits, sizeof bits);
    }
}

static void tp_widen_f16_f32(const uint16_t *src, int64_t n, float *dst)
{
    int64_t i = 0;
#if TP_VHALF /* the instruction set's conversion (a NaN's payload may differ: any NaN is refused) */
    for (; i + TP_VW <= n; i += TP_VW)
        vf_store(dst + i, vf_load_half(src + i));
#endif
    for (; i < n; i++) {
        const uint32_t h = src[i], exponent = h & 0x7C00u, mantissa = h & 0x3FFu;
        const uint32_t normal = ((h & 0x7FFFu) << 13) + ((uint32_t)(127 - 15) << 23);
        const uint32_t special = 0x7F800000u | (mantissa << 13);
        const float small = (float)(int32_t)mantissa * 0x1p-24f;
        uint32_t small_bits;
        memcpy(&small_bits, &small, sizeof small_bits);
        uint32_t bits = exponent == 0x7C00u ? special : normal;
        bits = exponent == 0 ? small_bits : bits;
        bits |= (h & 0x8000u) << 16;
        memcpy(dst + i, &bits, sizeof bits);
    }
}
