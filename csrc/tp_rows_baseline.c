/* The row kernels for the baseline instruction set (setup.py sets its flags). */
#define TP_ISA baseline
#include "rows/rows.c"
