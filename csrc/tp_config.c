/* What the core was built with, for show_config(). */
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
