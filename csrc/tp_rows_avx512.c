/* The row kernels for the avx512 instruction set (setup.py sets its flags). */
#define TP_ISA avx512
#include "rows/rows.c"
