/*
 * Runtime dispatch: which compiled kernel tables this CPU can run.
 *
 * setup.py compiles the x86-64 variants (and defines TP_HAVE_AVX2 /
 * TP_HAVE_AVX512) only for x86-64 targets.  A variant is usable when the CPU
 * reports its instructions (cpuid) and the operating system saves the
 * registers they use across context switches (OSXSAVE and the XCR0 bits read
 * by xgetbv); an AVX-512 CPU under an OS that does not enable the ZMM state
 * must fall back.  In the emulated build (setup.py's TOKENPICK_EMULATE_SIMD,
 * which defines TP_SIMDE_TABLES) both tables are compiled for the baseline
 * against SIMDe, and every CPU runs them.
 */
#include <string.h>

#include "tokenpick.h"

/* Each instruction set's tables, one per element type (TP_ELEM_*). */
#define TP_TABLES(isa)                                                      \
    extern const tp_kernels tp_kernels_##isa##_f32, tp_kernels_##isa##_f16, \
        tp_kernels_##isa##_bf16;                                            \
    static const tp_kernels *const isa##_tables[TP_ELEM_COUNT] = {          \
        &tp_kernels_##isa##_f32, &tp_kernels_##isa##_f16, &tp_kernels_##isa##_bf16}
TP_TABLES(baseline);
#ifdef TP_HAVE_AVX2
TP_TABLES(avx2);
#endif
#ifdef TP_HAVE_AVX512
TP_TABLES(avx512);
#endif

#if defined(TP_SIMDE_TABLES)
enum { CPU_AVX2 = 1, CPU_AVX512 = 2 };
static int cpu_features(void) { return CPU_AVX2 | CPU_AVX512; }
#elif defined(TP_HAVE_AVX2) || defined(TP_HAVE_AVX512)
#if defined(_MSC_VER)
#include <intrin.h>
static void cpuid(unsigned leaf, unsigned sub, unsigned r[4])
{
    int regs[4];
    __cpuidex(regs, (int)leaf, (int)sub);
    for (int i = 0; i < 4; i++)
        r[i] = (unsigned)regs[i];
}
static uint64_t xgetbv0(void) { return (uint64_t)_xgetbv(0); }
#else
#include <cpuid.h>
static void cpuid(unsigned leaf, unsigned sub, unsigned r[4])
{
    r[0] = r[1] = r[2] = r[3] = 0;
    if (leaf <= __get_cpuid_max(0, 0))
        __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
}
static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}
#endif

enum { CPU_AVX2 = 1, CPU_AVX512 = 2 };

static int cpu_features(void)
{
    unsigned r1[4], r7[4];
    cpuid(1, 0, r1);
    const int osxsave = (r1[2] >> 27) & 1, avx = (r1[2] >> 28) & 1, fma = (r1[2] >> 12) & 1;
    const int f16c = (r1[2] >> 29) & 1; /* half-precision loads; every AVX2 CPU has them */
    if (!osxsave || !avx)
        return 0;
    const uint64_t xcr0 = xgetbv0();
    if ((xcr0 & 0x6) != 0x6) /* XMM and YMM state */
        return 0;
    cpuid(7, 0, r7);
    int features = 0;
    const int avx2 = (r7[1] >> 5) & 1;
    if (avx2 && fma && f16c)
        features |= CPU_AVX2;
    const int avx512f = (r7[1] >> 16) & 1, avx512dq = (r7[1] >> 17) & 1;
    const int avx512bw = (r7[1] >> 30) & 1, avx512vl = (r7[1] >> 31) & 1;
    if ((features & CPU_AVX2) && avx512f && avx512dq && avx512bw && avx512vl
        && (xcr0 & 0xE0) == 0xE0) /* opmask, upper ZMM0-15, ZMM16-31 state */
        features |= CPU_AVX512;
    return features;
}
#endif

const tp_kernels *tp_kernels_for(const char *name, int elem)
{
    if (elem < 0 || elem >= TP_ELEM_COUNT)
        return NULL;
    if (strcmp(name, "baseline") == 0)
        return baseline_tables[elem];
#ifdef TP_HAVE_AVX2
    if (strcmp(name, "avx2") == 0)
        return (cpu_features() & CPU_AVX2) ? avx2_tables[elem] : NULL;
#endif
#ifdef TP_HAVE_AVX512
    if (strcmp(name, "avx512") == 0)
        return (cpu_features() & CPU_AVX512) ? avx512_tables[elem] : NULL;
#endif
    return NULL;
}
