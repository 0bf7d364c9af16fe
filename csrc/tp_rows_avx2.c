/* The row kernels for the avx2 instruction set (setup.py sets its flags). */
#define TP_ISA avx2
#include "rows/rows.c"
