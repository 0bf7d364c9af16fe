/* What the core was built with, for show_config(). */
#include <string.h>

#include "tokenpick.h"

#define TP_STR2(x) #x
#define TP_STR(x) TP_STR2(x)

const char *tp_compiler(void)
{
#if defined(__clang__)
    return "clang " __clang_version__;
#elif defined(__GNUC__)
    return "gcc " __VERSION__;
#elif defined(_MSC_VER)
    return "msvc " TP_STR(_MSC_FULL_VER);
#else
    return "unknown C compiler";
#endif
}

const char *tp_build_flags(void)
{
#ifdef TOKENPICK_COMPILER_FLAGS
    return TOKENPICK_COMPILER_FLAGS;
#else
    return "";
#endif
}

/* setup.py's TOKENPICK_EMULATE_SIMD=1 compiles the AVX2 and AVX-512 tables
 * against SIMDe and defines TP_SIMDE_TABLES as its name and version. */
const char *tp_simd_emulation(const char *name)
{
#ifdef TP_SIMDE_TABLES
    if (strcmp(name, "avx2") == 0 || strcmp(name, "avx512") == 0)
        return TP_SIMDE_TABLES;
#endif
    (void)name;
    return NULL;
}
