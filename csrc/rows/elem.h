/*
 * The element type of the rows, one of TP_ELEM_* (tokenpick.h), for the
 * instance of the row kernels that rows.c includes next: it defines
 * TP_ELEM before each, and this file (no include guard) then gives
 *
 *   TP_X             the element type: float, tp_f16 or tp_bf16
 *   TP_XSUF          the suffix of that instance's names (names.h)
 *   vx_load(p)       TP_VW elements at p, widened to a vector of floats
 *   x_at(p, i)       element i of p, widened to a float
 *   tp_row           the row under selection (its type per instance)
 *
 * Widening is exact, so a kernel gives the same result on a half-precision
 * row as on its float32 copy, and reading the row in place costs only the
 * widening of each vector as it is loaded: a shift for bfloat16, a
 * conversion instruction for float16 where the instruction set has one.
 */
#undef TP_X
#undef TP_XSUF
#undef vx_load
#undef x_at

#if TP_ELEM == TP_ELEM_F32
#define TP_X float
#define TP_XSUF _f32
#define vx_load(p) vf_load(p)
#define x_at(p, i) ((p)[i])
#elif TP_ELEM == TP_ELEM_F16
#define TP_X tp_f16
#define TP_XSUF _f16
#define vx_load(p) vf_load_f16(p)
#define x_at(p, i) tp_f16_float((p)[i])
#elif TP_ELEM == TP_ELEM_BF16
#define TP_X tp_bf16
#define TP_XSUF _bf16
#define vx_load(p) vf_load_bf16(p)
#define x_at(p, i) tp_bf16_float((p)[i])
#else
#error "define TP_ELEM as one of TP_ELEM_F32, TP_ELEM_F16, TP_ELEM_BF16"
#endif

/* A row under selection: its logits, what the checking pass found and the
 * constants of its exponentials. */
typedef struct {
    const TP_X *x;
    int64_t n;
    float max;
    int64_t argmax;
    double inv_t; /* 1 / T */
    double rate;  /* log2(e) / T: exp((x - max) / T) = 2**((x - max) * rate) */
    float cutoff; /* tokens below it are out already (top-k's k-th largest), or -inf */
    tp_workspace *ws;
} tp_row;
