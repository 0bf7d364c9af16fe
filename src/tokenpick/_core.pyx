"""The compiled core: loops over rows with the GIL released, calling csrc/.

One exception: sample keeps the GIL for calls of fewer than 8192 logits
(_worth_releasing_gil).  Such a call is about a microsecond of work; releasing
and retaking the GIL costs a tenth of that and may wait for another thread's
turn, while other threads lose little by waiting a microsecond.

Every function here trusts its caller, tokenpick._api, to have checked and
converted its arguments: logits are an aligned, native float32 ndarray of
shape (V,) or (B, V) with V >= 1, each row one block of memory (rows
_row_stride floats apart: plain_logits); a per-row parameter is a Python
scalar or a 1-D ndarray of length B (float64, int64 or uint64; a stride of 0
broadcasts a scalar), in range; outputs are C-contiguous ndarrays of the right
dtype and size.  Arrays are read through numpy's C API, not memoryviews: a
B = 1 call on a short row costs about as much as acquiring three buffers.  What only a pass
over the data can find (NaN, +inf, rows that are all -inf) is found by a
checking pass: over every row before anything is written when the outputs are
the caller's, so that a call that raises leaves them untouched; row by row,
right before each row is used, when they are the call's own.
"""

from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_CheckExact
from cpython.dict cimport PyDict_Next
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_CheckExact
from cpython.ref cimport PyObject
from libc.math cimport INFINITY, nextafter
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcpy

cimport numpy as cnp

import os
import sys

import numpy as np
import threading
import warnings

cnp.import_array()


cdef extern from "tokenpick.h" nogil:
    enum:
        TP_OK
        TP_ERR_NAN
        TP_ERR_POSINF
        TP_ERR_ALL_NEGINF
        TP_ERR_NONE_LEFT
        TP_ELEM_F32
        TP_ELEM_F16
        TP_ELEM_BF16
        TP_ELEM_COUNT
        TP_DRAFT_REJECTED
        TP_DRAFT_ACCEPTED
        TP_DRAFT_BAD_Q

    ctypedef struct tp_rowstat:
        float max
        int64_t argmax

    ctypedef struct tp_proc:
        int64_t stray

    ctypedef struct tp_kept:
        int64_t n
        int64_t outputs
        int counted

    void tp_kept_init(tp_kept *k, int counted) noexcept
    void tp_kept_free(tp_kept *k) noexcept
    int tp_kept_fix(tp_kept *k, const int64_t *bias_ids, const double *bias, int64_t nbias,
                    const int64_t *stop, int64_t nstop) noexcept
    int tp_kept_put(tp_kept *k, const int64_t *ids, int64_t m, uint32_t flags) noexcept
    int tp_kept_reserve(tp_kept *k, int64_t m) noexcept
    void tp_kept_add(tp_kept *k, int64_t id) noexcept

    enum:
        TP_COUNT
        TP_STOP
        TP_PRESENT

    ctypedef struct tp_proc_args:
        const tp_kept *kept
        const uint32_t *bitmask
        int64_t words
        const int64_t *bias_ids
        const double *bias
        int64_t nbias
        const int64_t *prompt
        const int64_t *output
        const int64_t *stop
        int64_t nprompt, noutput, nstop
        double repetition, frequency, presence
        int64_t min_tokens

    ctypedef struct tp_proc_scratch:
        pass

    tp_proc_scratch *tp_proc_scratch_new(int64_t n, int64_t ids) noexcept
    void tp_proc_scratch_free(tp_proc_scratch *s) noexcept
    void tp_proc_prepare(int64_t n, const tp_proc_args *a, tp_proc_scratch *s,
                         tp_proc *p) noexcept

    ctypedef struct tp_filter:
        double temperature
        int64_t top_k
        double top_p
        double min_p
        double top_n_sigma
        double typical_p
        double epsilon
        double eta
        double xtc_threshold
        int xtc
        int order
        float *spill

    ctypedef struct tp_keep:
        const void *row
        int greedy

    ctypedef struct tp_workspace:
        pass

    ctypedef struct tp_ranked:
        int64_t m
        int64_t *ids
        float *lps

    ctypedef struct tp_kernels:
        const char *name
        int elem
        int (*scan)(const void *x, int64_t n, tp_rowstat *st) noexcept nogil
        int (*scan_top_k)(const void *x, int64_t n, int64_t k, int moments, tp_workspace *ws,
                          tp_rowstat *st) noexcept nogil
        int (*scan_processed)(const void *x, int64_t n, int64_t k, const tp_proc *p,
                              tp_workspace *ws, tp_rowstat *st) noexcept nogil
        int (*fold_patches)(const tp_proc *p, tp_workspace *ws, tp_rowstat *st) noexcept nogil
        void (*process)(const void *x, int64_t n, const tp_proc *p, float *out) noexcept nogil
        void (*softmax)(const void *x, int64_t n, const tp_rowstat *st, double T,
                        float *out) noexcept nogil
        void (*log_softmax)(const void *x, int64_t n, const tp_rowstat *st, double T,
                            float *out) noexcept nogil
        float (*logsumexp)(const void *x, int64_t n, const tp_rowstat *st, double T) noexcept nogil
        float (*token_logprob)(const void *x, int64_t n, const tp_rowstat *st, double T,
                               int64_t token) noexcept nogil
        void (*keep)(const void *x, int64_t n, const tp_rowstat *st, const tp_filter *f,
                     tp_workspace *ws, tp_keep *keep) noexcept nogil
        void (*mask)(int64_t n, const tp_keep *keep, float *out) noexcept nogil
        void (*filtered_probs)(int64_t n, const tp_keep *keep, float *out) noexcept nogil
        int64_t (*sample)(int64_t n, const tp_keep *keep, double u, tp_workspace *ws,
                          float *logprob) noexcept nogil
        int (*verify_draft)(int64_t n, const tp_keep *keep, int64_t d, const float *q,
                            double u_accept, double u_draw, tp_workspace *ws, float *scratch,
                            int64_t *token, float *logprob) noexcept nogil
        void (*top_logprobs)(const void *x, int64_t n, const tp_rowstat *st, double T,
                             tp_workspace *ws, tp_ranked *out) noexcept nogil
        float (*kth_largest)(const float *x, int64_t n, int64_t k, int route,
                             tp_workspace *ws) noexcept nogil
        float (*select_by_mass)(const float *v, const float *w, int64_t n, double target,
                                int route, tp_workspace *ws) noexcept nogil
        void (*widen)(const void *x, int64_t n, float *dst) noexcept nogil

    # after the checking pass, the processors' patches by k's make_patches
    int64_t tp_proc_patch(const void *x, const tp_kernels *k, const tp_proc_args *a,
                          tp_proc_scratch *s, tp_proc *p) noexcept

    tp_workspace *tp_workspace_new() noexcept
    void tp_workspace_free(tp_workspace *ws) noexcept
    enum:
        TP_ROUTE_COUNT
    int tp_route_counting() noexcept
    const char *tp_route_name(int route) noexcept
    void tp_route_take(int64_t *out) noexcept
    const tp_kernels *tp_kernels_for(const char *name, int elem) noexcept
    const char *tp_simd_emulation(const char *name) noexcept
    double tp_uniform(uint64_t seed, uint64_t offset) noexcept
    double tp_uniform_at(uint64_t seed, uint64_t offset, uint32_t index) noexcept
    const char *tp_compiler() noexcept
    const char *tp_build_flags() noexcept


# ---- build information and the SIMD path ------------------------------------

SIMD_NAMES = ("baseline", "neon", "avx2", "avx512")  # from least to most capable


def simd_paths():
    """The SIMD paths this build can run on this machine, least capable first."""
    return [name for name in SIMD_NAMES if tp_kernels_for(name.encode(), TP_ELEM_F32) != NULL]


def _initial_simd():
    # (plain Python in a module compiled with wraparound=False: no negative indices)
    request = os.environ.get("TOKENPICK_SIMD", "").strip().lower()
    available = simd_paths()
    best = available[len(available) - 1]
    if not request:
        return best
    if request not in SIMD_NAMES:
        warnings.warn(f"TOKENPICK_SIMD={request!r} is not one of {', '.join(SIMD_NAMES)}; "
                      f"ignored", RuntimeWarning, stacklevel=2)
        return best
    # a cap: the most capable available path not above the request
    rank = SIMD_NAMES.index(request)
    allowed = [p for p in available if SIMD_NAMES.index(p) <= rank]
    return allowed[len(allowed) - 1] if allowed else available[0]


# The kernel tables every call uses, one per element type of the logits
# (TP_ELEM_*: float32, float16, bfloat16), and K, the float32 one; set once
# here, or by force_simd in tests.
cdef const tp_kernels *_tables[TP_ELEM_COUNT]
cdef const tp_kernels *K


cdef void _use_tables(str name):
    global K
    cdef int e
    for e in range(TP_ELEM_COUNT):
        _tables[e] = tp_kernels_for(name.encode(), e)
    K = _tables[TP_ELEM_F32]


_use_tables(_initial_simd())


def simd_path():
    """The SIMD path the kernels use."""
    return K.name.decode()


def simd_emulation():
    """What emulates the SIMD path in use ("SIMDe 0.7.4"), or None where it runs natively."""
    cdef const char *by = tp_simd_emulation(K.name)
    return None if by == NULL else by.decode()


def force_simd(name):
    """Switch the kernels to another available SIMD path; returns the previous one.

    For tests of every path.  Not thread-safe: do not call it while other
    threads are inside tokenpick.
    """
    if name not in simd_paths():
        raise ValueError(f"SIMD path {name!r} is not available here; have {simd_paths()}")
    previous = simd_path()
    _use_tables(name)
    return previous


def compiler():
    return tp_compiler().decode()


def build_flags():
    return tp_build_flags().decode()


# ---- arrays and per-row parameters, read through numpy's C API ---------------

cdef inline int64_t _vocab(cnp.ndarray a) noexcept:
    """The length of the last axis: V for logits of shape (V,) or (B, V)."""
    return cnp.PyArray_DIMS(a)[cnp.PyArray_NDIM(a) - 1]


cdef inline int64_t _row_stride(cnp.ndarray a) noexcept:
    """Bytes from one row of logits to the next (0 for logits of shape (V,))."""
    if cnp.PyArray_NDIM(a) != 2:
        return 0
    return cnp.PyArray_STRIDES(a)[0]


cdef inline int _elem(cnp.ndarray a) noexcept:
    """The element type of logits that plain_logits passed: float32, float16, or
    bfloat16 as their bits in uint16 (tokenpick._params.as_logits); -1 for any other."""
    cdef int t = cnp.PyArray_TYPE(a)
    if t == cnp.NPY_FLOAT32:
        return TP_ELEM_F32
    if t == cnp.NPY_FLOAT16:
        return TP_ELEM_F16
    if t == cnp.NPY_UINT16:
        return TP_ELEM_BF16
    return -1


def plain_logits(a):
    """Whether a can go to the kernels as it is: an aligned ndarray of native
    float32 or float16 (or uint16: the bits of bfloat16 logits, as as_logits
    gives them), of shape (V,) or (B, V) with V >= 1, each row one block of
    memory (C-contiguous, or rows a whole number of elements apart: the last
    position of a model's (B, L, V) logits, for instance)."""
    if not cnp.PyArray_Check(a):
        return False
    cdef cnp.ndarray x = <cnp.ndarray>a
    cdef int ndim = cnp.PyArray_NDIM(x)
    if (_elem(x) < 0 or not cnp.PyArray_ISNOTSWAPPED(x)
            or not cnp.PyArray_ISALIGNED(x) or not (ndim == 1 or ndim == 2) or _vocab(x) == 0):
        return False
    if cnp.PyArray_ISCARRAY_RO(x):
        return True
    cdef cnp.npy_intp *strides = cnp.PyArray_STRIDES(x)
    cdef cnp.npy_intp size = cnp.PyArray_ITEMSIZE(x)
    return (ndim == 2 and (strides[1] == size or _vocab(x) == 1) and strides[0] % size == 0)


# torch's Tensor type and the element types of its dtypes that the kernels read, once
# torch is imported (tokenpick never imports it)
cdef object _Tensor = None
cdef object _strided = None
cdef dict _torch_elems = {}


def torch_rows(obj):
    """The logits of a torch tensor that needs no more than a view (on the host, no
    grad; float32, float16, or bfloat16 as its bits in uint16, which numpy lacks), of
    shape (V,) or (B, V), as plain_logits takes them: a numpy array over the tensor's
    memory (keeping it alive), made here from its pointer, shape and strides, in about
    half the time of t.numpy() (and a third of DLPack's); else None (for the general
    way, tokenpick._frameworks, to read or refuse)."""
    global _Tensor, _strided
    if _Tensor is None:
        torch = sys.modules.get("torch")
        if torch is None:
            return None
        _Tensor, _strided = torch.Tensor, torch.strided
        _torch_elems.update({torch.float32: cnp.NPY_FLOAT32, torch.float16: cnp.NPY_FLOAT16,
                             torch.bfloat16: cnp.NPY_UINT16})
    if not isinstance(obj, _Tensor):
        return None
    type_num = _torch_elems.get(obj.dtype)
    if (type_num is None or obj.is_cpu is not True or obj.layout is not _strided
            or obj.requires_grad or obj.is_neg()):
        return None
    shape = obj.shape
    cdef Py_ssize_t nd = len(shape), i
    if nd != 1 and nd != 2:
        return None
    cdef cnp.npy_intp dims[2]
    cdef cnp.npy_intp strides[2]
    cdef cnp.npy_intp size = 4 if type_num == cnp.NPY_FLOAT32 else 2
    steps = obj.stride()
    for i in range(nd):
        dims[i] = shape[i]
        strides[i] = steps[i] * size
    cdef size_t address = obj.data_ptr()
    cdef cnp.ndarray a = cnp.PyArray_New(np.ndarray, <int>nd, dims, type_num, strides,
                                         <void *>address, <int>size, 0, None)
    cnp.set_array_base(a, obj)
    return a if plain_logits(a) else None


cdef union _Scalar:
    double f
    int64_t i
    uint64_t u


cdef struct _Column:
    # A per-row parameter: the value of row i is at base + i * step.
    const char *base
    Py_ssize_t step


cdef int _column(object value, int type_num, _Column *c, _Scalar *scalar) except -1:
    """Point c at a per-row parameter: a 1-D (or 0-d) array of type_num, or a
    Python number, which is stored in *scalar (so c is valid while it is)."""
    cdef cnp.ndarray a
    if cnp.PyArray_Check(value):
        a = <cnp.ndarray>value
        if cnp.PyArray_TYPE(a) != type_num or cnp.PyArray_NDIM(a) > 1:
            raise TypeError(f"internal: a per-row parameter of dtype {value.dtype} "
                            f"and shape {value.shape}")
        c.base = <const char *>cnp.PyArray_DATA(a)
        c.step = cnp.PyArray_STRIDES(a)[0] if cnp.PyArray_NDIM(a) == 1 else 0
        return 0
    if type_num == cnp.NPY_FLOAT64:
        scalar.f = value
    elif type_num == cnp.NPY_INT64:
        scalar.i = value
    else:
        scalar.u = value
    c.base = <const char *>scalar
    c.step = 0
    return 0


cdef inline double _f64(const _Column *c, int64_t i) noexcept nogil:
    return (<const double *>(c.base + i * c.step))[0]


cdef inline int64_t _i64(const _Column *c, int64_t i) noexcept nogil:
    return (<const int64_t *>(c.base + i * c.step))[0]


cdef inline uint64_t _u64(const _Column *c, int64_t i) noexcept nogil:
    return (<const uint64_t *>(c.base + i * c.step))[0]


cdef struct _Filters:
    # the filters of every row (temperature, top_k, top_p, min_p, top_n_sigma,
    # typical_p, epsilon, eta, xtc_threshold, xtc: 1.0 where XTC acts), their
    # scalar storage, the order's number, and the scratch of the filters that
    # list the kept set (NULL where no row has them)
    _Column t, k, p, m, s, typ, eps, eta, xt, xc
    _Scalar ts, ks, ps, ms, ss, typs, epss, etas, xts, xcs
    int order
    float *spill


cdef int _filters(_Filters *f, filters, int64_t V) except -1:
    """Point f at the filters, a tuple as tokenpick._params.filters gives it (with
    XTC's coins resolved: tokenpick._params.xtc_coins), for rows of V tokens."""
    (temperature, top_k, top_p, min_p, top_n_sigma, typical_p, epsilon, eta, xtc_threshold,
     xtc, order, lists) = filters
    _column(temperature, cnp.NPY_FLOAT64, &f.t, &f.ts)
    _column(top_k, cnp.NPY_INT64, &f.k, &f.ks)
    _column(top_p, cnp.NPY_FLOAT64, &f.p, &f.ps)
    _column(min_p, cnp.NPY_FLOAT64, &f.m, &f.ms)
    _column(top_n_sigma, cnp.NPY_FLOAT64, &f.s, &f.ss)
    _column(typical_p, cnp.NPY_FLOAT64, &f.typ, &f.typs)
    _column(epsilon, cnp.NPY_FLOAT64, &f.eps, &f.epss)
    _column(eta, cnp.NPY_FLOAT64, &f.eta, &f.etas)
    _column(xtc_threshold, cnp.NPY_FLOAT64, &f.xt, &f.xts)
    _column(xtc, cnp.NPY_FLOAT64, &f.xc, &f.xcs)
    f.order = order
    f.spill = _spill_scratch(V) if lists else NULL
    return 0


cdef float *_spill_scratch(int64_t V) except NULL:
    """This thread's scratch of 6 V floats for the filters that list the kept set."""
    cdef cnp.ndarray a = getattr(_per_thread, "spill", None)
    if a is None or cnp.PyArray_SIZE(a) < 6 * V:
        a = np.empty(max(6 * V, 1), dtype=np.float32)
        _per_thread.spill = a
    return <float *>cnp.PyArray_DATA(a)


cdef bint _plain_number(object v, double *out) except -1:
    """Whether v is a Python float, or a Python int of C's long long, into *out
    (as float(v) gives it)."""
    cdef int overflow = 0
    cdef long long i
    if PyFloat_CheckExact(v):
        out[0] = PyFloat_AS_DOUBLE(v)
        return True
    if PyLong_CheckExact(v):
        i = PyLong_AsLongLongAndOverflow(v, &overflow)
        out[0] = <double>i
        return overflow == 0
    return False


cdef struct _Range:
    # The valid values of a filter: the doubles v with lo <= v <= hi (an open
    # end is stored as the next double inside it, which is the same set).
    double lo, hi


# The filters' places in plain_filters' order
cdef enum:
    _F_TEMPERATURE, _F_TOP_K, _F_TOP_P, _F_MIN_P, _F_TOP_N_SIGMA, _F_TYPICAL_P, _F_EPSILON
    _F_ETA, _F_XTC_THRESHOLD, _F_XTC_PROBABILITY, _NFILTERS

# Their ranges: empty (so plain_filters declines every call) until set_filter_ranges
cdef _Range _filter_ranges[_NFILTERS]

# The orders (order=): their names, their numbers (tp_filter.order), and the filters
# each one's sampler lacks, a bit per filter; when a filter is on (its value above
# _on_above, or below _on_below); the filters on the listed kept set, a bit each, and
# the order that lists it always.  No order (so plain_filters declines every call)
# until set_orders.
DEF _MAX_ORDERS = 8
cdef tuple _order_names = ()
cdef int _order_numbers[_MAX_ORDERS]
cdef unsigned _order_lacks[_MAX_ORDERS]
cdef double _on_above[_NFILTERS]
cdef double _on_below[_NFILTERS]
cdef unsigned _listing = 0
cdef int _listing_order = -1


cdef void _empty_filter_ranges() noexcept:
    cdef int i
    for i in range(_NFILTERS):
        _filter_ranges[i].lo = 1.0
        _filter_ranges[i].hi = 0.0


_empty_filter_ranges()


def set_filter_ranges(*ranges):
    """Take the valid ranges of the filters, each (lo, hi, lo_open, hi_open), in
    plain_filters' order, from where they are defined: tokenpick._params, at its
    import."""
    cdef int i
    if len(ranges) != _NFILTERS:
        raise ValueError(f"expected {_NFILTERS} ranges, got {len(ranges)}")
    for i, (lo, hi, lo_open, hi_open) in enumerate(ranges):
        _filter_ranges[i] = _Range(nextafter(lo, INFINITY) if lo_open else lo,
                                   nextafter(hi, -INFINITY) if hi_open else hi)


def set_orders(orders, on, listing, int listing_order):
    """Take, from where they are defined (tokenpick._params, at its import): the
    orders, each ``(name, number, places)`` (the places, in plain_filters' order, of
    the filters its sampler lacks); when a filter is on, ``(place, off, sign)`` (its
    value above off, sign 1, or below it, sign -1); the places of the filters on the
    listed kept set; and the number of the order that lists it always."""
    global _order_names, _listing, _listing_order
    cdef int o, i
    if len(orders) > _MAX_ORDERS:
        raise ValueError(f"at most {_MAX_ORDERS} orders")
    for i in range(_NFILTERS):  # never on
        _on_above[i] = INFINITY
        _on_below[i] = -INFINITY
    places = [i for i, _, _ in on] + list(listing) + [i for _, _, ps in orders for i in ps]
    if any(not 0 <= i < _NFILTERS for i in places):
        raise ValueError(f"a filter's place must be in [0, {_NFILTERS})")
    for i, off, sign in on:
        if sign > 0:
            _on_above[i] = off
        else:
            _on_below[i] = off
    _listing = 0
    for i in listing:
        _listing |= 1u << i
    _listing_order = listing_order
    for o, (name, number, places) in enumerate(orders):
        _order_numbers[o] = number
        _order_lacks[o] = 0
        for i in places:
            _order_lacks[o] |= 1u << i
    _order_names = tuple(name for name, _, _ in orders)


cdef inline bint _on(double v, int i) noexcept:
    """Whether filter i (in plain_filters' order) is on at value v."""
    return v > _on_above[i] or v < _on_below[i]


cdef inline bint _in_range(double v, const _Range *r) noexcept:
    """Whether v is in r; NaN never is."""
    return r.lo <= v <= r.hi


def plain_filters(int64_t vocab, temperature, top_k, top_p, min_p, top_n_sigma, typical_p,
                  epsilon, eta, xtc_threshold, xtc_probability, order):
    """The filters as the core takes them (tokenpick._params.filters), when each is a
    plain Python number in the range set_filter_ranges gave (top_k an int, made 0
    where it disables top-k), xtc_probability 0 or 1 (no coin to toss), and order one
    of the names with no filter on that its sampler lacks: the common case, decided
    here at the cost of one call.  None otherwise, for tokenpick._params to convert,
    or reject, the general way."""
    cdef double v[_NFILTERS]
    cdef long long k
    cdef int overflow = 0, i, o, number
    cdef bint lists
    if type(order) is not str:
        return None
    for o in range(len(_order_names)):
        if order == _order_names[o]:
            break
    else:
        return None
    number = _order_numbers[o]
    if not PyLong_CheckExact(top_k):
        return None
    for i, a in enumerate((temperature, top_k, top_p, min_p, top_n_sigma, typical_p, epsilon,
                           eta, xtc_threshold, xtc_probability)):
        if i == 1:
            continue
        if not _plain_number(a, &v[i]):
            return None
    k = PyLong_AsLongLongAndOverflow(top_k, &overflow)
    v[1] = <double>k
    if overflow:
        return None
    lists = number == _listing_order
    for i in range(_NFILTERS):
        if not _in_range(v[i], &_filter_ranges[i]):
            return None
        if _on(v[i], i):
            if (_order_lacks[o] >> i) & 1u:  # the order's sampler lacks it
                return None
            lists = lists or ((_listing >> i) & 1u) != 0
    if not (v[_F_XTC_PROBABILITY] == 0.0 or v[_F_XTC_PROBABILITY] == 1.0):
        return None
    return (v[0], (k if 0 < k < vocab else 0), v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9],
            number, lists)


cdef inline void _filter_row(const _Filters *f, int64_t i, tp_filter *row) noexcept nogil:
    row.temperature = _f64(&f.t, i)
    row.top_k = _i64(&f.k, i)
    row.top_p = _f64(&f.p, i)
    row.min_p = _f64(&f.m, i)
    row.top_n_sigma = _f64(&f.s, i)
    row.typical_p = _f64(&f.typ, i)
    row.epsilon = _f64(&f.eps, i)
    row.eta = _f64(&f.eta, i)
    row.xtc_threshold = _f64(&f.xt, i)
    row.xtc = _f64(&f.xc, i) == 1.0
    row.order = f.order
    row.spill = f.spill


# ---- logit processors: each row's arguments, and the thread's scratch ----------

cdef struct _IdLists:
    # Lists of ids, one per row.  Packed (starts not NULL): row i's are
    # ids[starts[r]:starts[r + 1]], with r = i, or r = 0 for every row
    # (shared).  Padded (starts NULL): row i's are the `length` ids from
    # ids + i * stride (stride 0: one list for every row).  ids NULL: none.
    const int64_t *ids
    const int64_t *starts
    bint shared
    int64_t length, stride


cdef struct _Plan:
    # The processor arguments of every row, as tokenpick._processors.prepare
    # gives them (a Plan, which the caller keeps alive while these are read).
    const uint32_t *bitmask  # (R, words); NULL: none given
    int64_t words
    bint bitmask_shared      # R == 1: one bitmask for every row
    _IdLists bias, prompt, output, stop
    const double *bias_vals  # beside bias.ids
    _Column rep, freq, pres, min_tokens
    _Scalar reps, freqs, press, mins
    const tp_kept *kept      # NULL, or a KeptStore's requests, row i's at kept_slots[i]
    const int64_t *kept_slots


# The words of a bitmask of width 0, which bans every token (a pointer that is not NULL).
cdef uint32_t _NO_WORDS[1]


cdef int _id_lists(ids, starts, _IdLists *lists) except -1:
    """ids (int64) with starts: an int64 array (packed), or the int length of
    each row of the 2-D ids, or of the 1-D ids that serve every row (padded)."""
    lists.ids = NULL
    lists.starts = NULL
    lists.shared = True
    lists.length = 0
    lists.stride = 0
    if ids is None:
        return 0
    lists.ids = <const int64_t *>cnp.PyArray_DATA(<cnp.ndarray?>ids)
    if type(starts) is int:
        lists.length = starts
        lists.stride = starts if cnp.PyArray_NDIM(<cnp.ndarray>ids) == 2 else 0
    else:
        lists.starts = <const int64_t *>cnp.PyArray_DATA(<cnp.ndarray?>starts)
        lists.shared = cnp.PyArray_SIZE(<cnp.ndarray>starts) == 2
    return 0


cdef int _read_plan(plan, _Plan *pl) except -1:
    """Point pl at the arrays of plan (tokenpick._processors.Plan)."""
    (bitmask, bias_ids, bias_vals, bias_starts, prompt_ids, prompt_starts, output_ids,
     output_starts, stop_ids, stop_starts, repetition, frequency, presence, min_tokens,
     kept) = plan
    cdef cnp.ndarray words
    pl.bitmask = NULL
    pl.words = 0
    pl.bitmask_shared = True
    if bitmask is not None:  # int32 or uint32, (W,) or (R, W): read as uint32
        words = <cnp.ndarray?>bitmask
        pl.words = cnp.PyArray_DIMS(words)[cnp.PyArray_NDIM(words) - 1]
        pl.bitmask = <const uint32_t *>cnp.PyArray_DATA(words) if pl.words > 0 else _NO_WORDS
        pl.bitmask_shared = cnp.PyArray_NDIM(words) == 1 or cnp.PyArray_DIMS(words)[0] == 1
    _id_lists(bias_ids, bias_starts, &pl.bias)
    pl.bias_vals = NULL if bias_vals is None else <const double *>cnp.PyArray_DATA(
        <cnp.ndarray?>bias_vals)
    _id_lists(prompt_ids, prompt_starts, &pl.prompt)
    _id_lists(output_ids, output_starts, &pl.output)
    _id_lists(stop_ids, stop_starts, &pl.stop)
    _column(repetition, cnp.NPY_FLOAT64, &pl.rep, &pl.reps)
    _column(frequency, cnp.NPY_FLOAT64, &pl.freq, &pl.freqs)
    _column(presence, cnp.NPY_FLOAT64, &pl.pres, &pl.press)
    _column(min_tokens, cnp.NPY_INT64, &pl.min_tokens, &pl.mins)
    pl.kept = NULL
    pl.kept_slots = NULL
    if kept is not None:  # (KeptStore, int64 slots of the rows), checked by KeptStore.rows
        store, slots = kept
        pl.kept = (<KeptStore?>store).kept
        pl.kept_slots = <const int64_t *>cnp.PyArray_DATA(<cnp.ndarray?>slots)
    return 0


cdef inline int64_t _segment(const _IdLists *lists, int64_t i,
                             const int64_t **ids) noexcept nogil:
    """Row i's list: its ids into *ids, its length returned."""
    if lists.ids == NULL:
        ids[0] = NULL
        return 0
    if lists.starts == NULL:
        ids[0] = lists.ids + i * lists.stride
        return lists.length
    cdef int64_t r = 0 if lists.shared else i
    ids[0] = lists.ids + lists.starts[r]
    return lists.starts[r + 1] - lists.starts[r]


cdef void _row_args(const _Plan *pl, int64_t i, tp_proc_args *a) noexcept nogil:
    """Row i's processor arguments, as tp_proc_prepare takes them."""
    a.kept = NULL if pl.kept == NULL else &pl.kept[pl.kept_slots[i]]
    a.bitmask = pl.bitmask
    a.words = pl.words
    if pl.bitmask != NULL and not pl.bitmask_shared:
        a.bitmask = pl.bitmask + i * pl.words
    a.nbias = _segment(&pl.bias, i, &a.bias_ids)
    a.bias = NULL if a.bias_ids == NULL else pl.bias_vals + (a.bias_ids - pl.bias.ids)
    a.nprompt = _segment(&pl.prompt, i, &a.prompt)
    a.noutput = _segment(&pl.output, i, &a.output)
    a.nstop = _segment(&pl.stop, i, &a.stop)
    a.repetition = _f64(&pl.rep, i)
    a.frequency = _f64(&pl.freq, i)
    a.presence = _f64(&pl.pres, i)
    a.min_tokens = _i64(&pl.min_tokens, i)


cdef int64_t _plan_ids(const _Plan *pl, int64_t start, int64_t stop) noexcept:
    """The most ids any row of [start, stop) gives tp_proc_prepare."""
    cdef tp_proc_args a
    cdef int64_t i, most = 0
    for i in range(start, stop):
        _row_args(pl, i, &a)
        most = max(most, a.nbias + a.nprompt + a.noutput + a.nstop
                   + (0 if a.kept == NULL else a.kept.n))
    return most


# The processor arguments in their plain forms, checked and read here in one
# call: what a server passes step after step.  Anything else, and any value
# out of range, is left to tokenpick._processors, which raises the error.

cdef bint _plain_words(value, int64_t nrows) except -1:
    """Whether value is a bitmask to read as it is: int32 or uint32, native,
    C-contiguous, (W,) or (nrows, W)."""
    if not cnp.PyArray_Check(value):
        return False
    cdef cnp.ndarray a = <cnp.ndarray>value
    cdef int t = cnp.PyArray_TYPE(a), ndim = cnp.PyArray_NDIM(a)
    return ((t == cnp.NPY_INT32 or t == cnp.NPY_UINT32) and cnp.PyArray_ISNOTSWAPPED(a)
            and cnp.PyArray_ISCARRAY_RO(a)
            and (ndim == 1 or (ndim == 2 and cnp.PyArray_DIMS(a)[0] == nrows)))


def plain_words(value, int64_t nrows):
    """Whether value is a bitmask the core reads as it is (_plain_words)."""
    return _plain_words(value, nrows)


cdef object _plain_ids(value, int64_t nrows, bint one_list):
    """The length of each row's list (the _id_lists convention) when value is
    an int64 array, native and C-contiguous: 2-D (nrows, L), or 1-D where one
    list serves (one_list); else None.  Its ids are not looked at here: the
    core skips and counts those neither -1 nor in [0, V) (tp_proc.stray) as
    it tallies them, and the call then raises StrayIds."""
    if not cnp.PyArray_Check(value):
        return None
    cdef cnp.ndarray a = <cnp.ndarray>value
    cdef int ndim = cnp.PyArray_NDIM(a)
    if not (cnp.PyArray_TYPE(a) == cnp.NPY_INT64 and cnp.PyArray_ISNOTSWAPPED(a)
            and cnp.PyArray_ISCARRAY_RO(a)):
        return None
    if not ((ndim == 2 and cnp.PyArray_DIMS(a)[0] == nrows) or (ndim == 1 and one_list)):
        return None
    return cnp.PyArray_DIMS(a)[ndim - 1]


cdef bint _plain_bias_into(mapping, int64_t V, int64_t *ids, double *vals) except -1:
    """Whether mapping is a dict of int ids in [0, V) to int or float biases,
    finite or -inf, written to ids and vals (room for len(mapping))."""
    cdef Py_ssize_t pos = 0, j = 0
    cdef PyObject *key
    cdef PyObject *value
    cdef long long k
    cdef int overflow = 0
    cdef double b
    while PyDict_Next(mapping, &pos, &key, &value):
        if not PyLong_CheckExact(<object>key):
            return False
        k = PyLong_AsLongLongAndOverflow(<object>key, &overflow)
        if overflow or not 0 <= k < V or not _plain_number(<object>value, &b):
            return False
        if b != b or b == INFINITY:
            return False
        ids[j] = k
        vals[j] = b
        j += 1
    return True


cdef object _plain_biases(logit_bias, int64_t nrows, int64_t V):
    """(ids, vals, starts) of logit_bias when it is one dict, or a list of
    nrows dicts or Nones, of plain ids and biases; else None."""
    cdef cnp.npy_intp total = 0
    cdef int64_t r, at = 0
    if type(logit_bias) is dict:
        total = len(logit_bias)
    elif type(logit_bias) is list and len(logit_bias) == nrows:
        for m in logit_bias:
            if m is not None and type(m) is not dict:
                return None
            total += 0 if m is None else len(m)
    else:
        return None
    cdef cnp.ndarray ids = cnp.PyArray_SimpleNew(1, &total, cnp.NPY_INT64)
    cdef cnp.ndarray vals = cnp.PyArray_SimpleNew(1, &total, cnp.NPY_FLOAT64)
    cdef int64_t *idp = <int64_t *>cnp.PyArray_DATA(ids)
    cdef double *valp = <double *>cnp.PyArray_DATA(vals)
    if type(logit_bias) is dict:
        if not _plain_bias_into(logit_bias, V, idp, valp):
            return None
        return ids, vals, total
    cdef cnp.npy_intp rows = nrows + 1
    cdef cnp.ndarray starts = cnp.PyArray_SimpleNew(1, &rows, cnp.NPY_INT64)
    cdef int64_t *st = <int64_t *>cnp.PyArray_DATA(starts)
    for r in range(nrows):
        st[r] = at
        m = logit_bias[r]
        if m is not None:
            if not _plain_bias_into(m, V, idp + at, valp + at):
                return None
            at += len(m)
    st[nrows] = at
    return ids, vals, starts


def plain_plan(int64_t nrows, int64_t V, bint was_1d, token_bitmask, logit_bias, prompt_ids,
               output_ids, repetition_penalty, frequency_penalty, presence_penalty, min_tokens,
               stop_ids):
    """The Plan of tokenpick._processors when every processor argument is None
    or in a plain form (bitmask: int32/uint32 (W,) or (B, W); logit_bias: a
    dict, or a list of B dicts or Nones, of int ids to int or float biases;
    ids: int64 arrays, (B, L) padded with -1, or 1-D for 1-D logits and for
    stop_ids; penalties and min_tokens: Python numbers) and in range (but the
    ids of the arrays, which the core checks as it reads them: _plain_ids),
    with at least one processor on; None otherwise, for _processors to check
    (and raise) the general way.  Arrays are read where they are, never
    copied."""
    cdef double rep, freq, pres, mint
    if not (_plain_number(repetition_penalty, &rep) and _plain_number(frequency_penalty, &freq)
            and _plain_number(presence_penalty, &pres) and PyLong_CheckExact(min_tokens)):
        return None
    if not (0.0 < rep < INFINITY and -INFINITY < freq < INFINITY and -INFINITY < pres < INFINITY):
        return None
    if not 0 <= min_tokens < 2**63 or (min_tokens > 0 and stop_ids is None):
        return None
    if (token_bitmask is None and logit_bias is None and prompt_ids is None
            and output_ids is None and stop_ids is None) or nrows == 0:
        return None  # (without rows, no core would look at the ids)
    if token_bitmask is not None and not _plain_words(token_bitmask, nrows):
        return None
    biases = (None, None, None)
    if logit_bias is not None:
        biases = _plain_biases(logit_bias, nrows, V)
        if biases is None:
            return None
    lengths = []
    for ids, one_list in ((prompt_ids, was_1d), (output_ids, was_1d), (stop_ids, True)):
        length = None if ids is None else _plain_ids(ids, nrows, one_list)
        if ids is not None and length is None:
            return None
        lengths.append(length)
    return (token_bitmask, *biases, prompt_ids, lengths[0], output_ids, lengths[1], stop_ids,
            lengths[2], repetition_penalty + 0.0, frequency_penalty + 0.0,
            presence_penalty + 0.0, min_tokens, None)


cdef class _ProcScratch:
    """tp_proc_scratch for rows of n tokens and up to cap ids."""
    cdef tp_proc_scratch *s
    cdef int64_t n, cap

    def __cinit__(self, int64_t n, int64_t cap):
        self.s = tp_proc_scratch_new(n, cap)
        if self.s == NULL:
            raise MemoryError()
        self.n = n
        self.cap = cap

    def __dealloc__(self):
        tp_proc_scratch_free(self.s)


cdef _ProcScratch _proc_scratch(int64_t n, int64_t ids):
    """This thread's scratch for the processors of rows of n tokens, made
    anew when n changes or the ids outgrow it (then with room to spare)."""
    cdef _ProcScratch s = getattr(_per_thread, "proc", None)
    if s is None or s.n != n or s.cap < ids:
        s = _ProcScratch(n, max(ids, 2 * s.cap if s is not None and s.n == n else 0, 4096))
        _per_thread.proc = s
    return s


# ---- the checking pass --------------------------------------------------------

cdef class _RowStats:
    """The max and argmax of every row, from the checking pass."""
    cdef tp_rowstat *st

    def __cinit__(self, int64_t n):
        self.st = <tp_rowstat *>malloc(max(n, 1) * sizeof(tp_rowstat))
        if self.st == NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self.st)


cdef enum:
    # a row's processed logit beyond float32 (tp_proc_prepare), after the checks of tokenpick.h
    _ERR_OVERFLOW = 100
    # ids neither -1 nor in [0, V) in a row's arguments, which plain_plan leaves unchecked
    _ERR_STRAY_IDS = 101


class StrayIds(ValueError):
    """Raised for ids of the processor arguments that plain_plan passed unchecked
    and tp_proc_prepare found out of range: the caller checks the arguments the
    general way (tokenpick._processors), which raises the error to show."""


cdef int _raise_bad_row(int code, int64_t row, int64_t token=-1, int64_t positions=0) except -1:
    """Raise the error of a bad row; with positions > 0, row is row // positions of
    verify's target logits at position row % positions."""
    where = (f"target_logits row {row // positions}, position {row % positions}" if positions
             else f"logits row {row}")
    if code == _ERR_STRAY_IDS:
        raise StrayIds(f"{where}: an id of the processor arguments is out of range")
    if code == TP_ERR_NONE_LEFT:
        raise ValueError(
            f"{where} has no token left after the logit processors (token_bitmask, "
            "-inf logit_bias, min_tokens with stop_ids): nothing can be chosen")
    if code == _ERR_OVERFLOW:
        raise ValueError(
            f"{where}: the logit processors take token {token}'s logit beyond "
            "float32's range (+inf or NaN)")
    if code == TP_ERR_NAN:
        raise ValueError(f"{where} contains NaN")
    if code == TP_ERR_POSINF:
        raise ValueError(f"{where} contains +inf")
    if code == TP_ERR_ALL_NEGINF:
        raise ValueError(f"{where} is entirely -inf: nothing can be chosen")
    return 0


cdef struct _Checked:
    # The stats of each row as a kernel reaches it: from the checking pass
    # already run over every row (given), or from checking the row right
    # before its use, while it is still in cache (given == NULL; code and bad
    # then tell of the first bad row, where the kernel stops, and bad_token
    # of the token that overflowed, for _ERR_OVERFLOW).  With logit
    # processors (plan), each row's are made ready in proc, with the
    # thread's scratch, before its checking pass.
    const char *rows
    int64_t V
    int64_t stride  # bytes from a row to the next
    int64_t per, outer  # per > 0: rows in groups of per (verify's positions), outer bytes apart
    const tp_kernels *k  # the table of the rows' element type
    int elem
    const tp_rowstat *given
    tp_rowstat own
    int code
    int64_t bad
    int64_t bad_token
    const _Plan *plan
    tp_proc_scratch *scratch
    tp_proc proc


cdef int _checked_rows(_Checked *c, stats, cnp.ndarray x, const _Plan *plan=NULL,
                       int64_t start=0, int64_t stop=0) except -1:
    """Set c up for rows [start, stop) of x (the range matters with a plan)."""
    c.rows = <const char *>cnp.PyArray_DATA(x)
    c.V = _vocab(x)
    c.stride = _row_stride(x)
    c.per = 0
    c.outer = 0
    if cnp.PyArray_NDIM(x) == 3:  # (B, P, V), rows in place: row i is [i // P, i % P]
        c.per = cnp.PyArray_DIMS(x)[1]
        c.outer = cnp.PyArray_STRIDES(x)[0]
        c.stride = cnp.PyArray_STRIDES(x)[1]
    c.elem = _elem(x)
    if c.elem < 0:
        raise TypeError(f"internal: logits of dtype {x.dtype} reached the kernels")
    c.k = _tables[c.elem]
    c.given = NULL if stats is None or plan != NULL else (<_RowStats?>stats).st
    c.code = TP_OK
    c.bad = -1
    c.bad_token = -1
    c.plan = plan
    c.scratch = NULL
    cdef int64_t ids
    if plan != NULL:  # the stats of processed rows are made row by row, checked or not
        ids = _plan_ids(plan, start, stop)
        if ids > TP_COUNT:  # the tallies' count would overflow into their flags
            raise ValueError(f"a row's processor arguments hold more than {TP_COUNT} ids")
        c.scratch = _proc_scratch(c.V, ids).s
    return 0


cdef inline const void *_row(const _Checked *c, int64_t i) noexcept nogil:
    """Row i of the logits."""
    if c.per == 0:
        return c.rows + i * c.stride
    return c.rows + (i // c.per) * c.outer + (i % c.per) * c.stride


cdef inline const tp_rowstat *_row_stat(_Checked *c, int64_t i, const tp_filter *f,
                                        tp_workspace *ws) noexcept nogil:
    """Row i's stats, or NULL if it is a bad row (recorded in c).  A row
    checked here that keep will filter by f (if not NULL) gets from the same
    pass what top-k (in ws) and top-n-sigma (in its stats) would read it
    again for."""
    if c.given != NULL:
        return &c.given[i]
    cdef bint filtered = f != NULL and f.temperature != 0.0
    cdef int64_t top_k = f.top_k if filtered else 0
    cdef int moments = filtered and f.top_n_sigma > 0.0
    cdef const void *x = _row(c, i)
    cdef tp_proc_args a
    cdef int64_t overflow = -1
    if c.plan == NULL:
        c.code = c.k.scan_top_k(x, c.V, top_k, moments, ws, &c.own)
    else:
        # the arguments' problems first, then the logits' own, then the processors'
        _row_args(c.plan, i, &a)
        tp_proc_prepare(c.V, &a, c.scratch, &c.proc)
        c.code = c.k.scan_processed(x, c.V, top_k, &c.proc, ws, &c.own)
        if c.proc.stray:
            c.code = _ERR_STRAY_IDS
        if c.code == TP_OK:  # the patches now, the row in cache
            overflow = tp_proc_patch(x, c.k, &a, c.scratch, &c.proc)
            c.code = _ERR_OVERFLOW if overflow >= 0 else c.k.fold_patches(&c.proc, ws, &c.own)
            c.bad_token = overflow
    if c.code != TP_OK:
        c.bad = i
        return NULL
    return &c.own


cdef inline int _raise_first_bad(const _Checked *c) except -1:
    return _raise_bad_row(c.code, c.bad, c.bad_token)


cdef class _Workspace:
    """Scratch for selection, of a size independent of V."""
    cdef tp_workspace *ws

    def __cinit__(self):
        self.ws = tp_workspace_new()
        if self.ws == NULL:
            raise MemoryError()

    def __dealloc__(self):
        tp_workspace_free(self.ws)


_per_thread = threading.local()


cdef _Workspace _workspace():
    """This thread's workspace: made once per thread, freed with the thread.

    A call never runs inside another on the same thread, so one per thread is
    enough, and reusing it saves a ~560 KB allocation per call.
    """
    cdef _Workspace w = getattr(_per_thread, "workspace", None)
    if w is None:
        w = _Workspace()
        _per_thread.workspace = w
    return w


# ---- kernels over rows ---------------------------------------------------------
# Each takes the checking pass's stats and a range of rows [start, stop), so
# that tokenpick._threads can spread one call's rows over threads; the rows
# are independent, so the results do not depend on how they are spread.
# stats=None checks each row of the range right before the kernel reads it
# again, while it is in cache (when the outputs are the call's own, so that
# writing some of them before a bad row raises harms nothing), and stops at
# the first bad row.

def scan(cnp.ndarray x not None):
    """The checking pass over every row: max and argmax, or ValueError naming the bad row."""
    cdef _Checked c
    _checked_rows(&c, None, x)
    cdef int64_t i, bad = -1, nrows = cnp.PyArray_SIZE(x) // c.V
    cdef _RowStats stats = _RowStats(nrows)
    cdef int code = TP_OK
    with nogil:
        for i in range(nrows):
            code = c.k.scan(_row(&c, i), c.V, &stats.st[i])
            if code != TP_OK:
                bad = i
                break
    _raise_bad_row(code, bad)
    return stats


cdef enum _ByTemperature:
    SOFTMAX, LOG_SOFTMAX, LOGSUMEXP


cdef int _by_temperature(_ByTemperature op, cnp.ndarray x, stats, temperature,
                         cnp.ndarray out, int64_t start, int64_t stop) except -1:
    """The kernels that take a temperature alone, over rows [start, stop)."""
    cdef _Checked c
    cdef const tp_rowstat *st
    cdef int64_t i, V = _vocab(x)
    cdef float *dest = <float *>cnp.PyArray_DATA(out)
    cdef _Column t
    cdef _Scalar ts
    _checked_rows(&c, stats, x)
    _column(temperature, cnp.NPY_FLOAT64, &t, &ts)
    with nogil:
        for i in range(start, stop):
            st = _row_stat(&c, i, NULL, NULL)
            if st == NULL:
                break
            if op == SOFTMAX:
                c.k.softmax(_row(&c, i), V, st, _f64(&t, i), dest + i * V)
            elif op == LOG_SOFTMAX:
                c.k.log_softmax(_row(&c, i), V, st, _f64(&t, i), dest + i * V)
            else:
                dest[i] = c.k.logsumexp(_row(&c, i), V, st, _f64(&t, i))
    return _raise_first_bad(&c)


def softmax(cnp.ndarray x not None, stats, temperature, cnp.ndarray out not None,
            int64_t start, int64_t stop):
    _by_temperature(SOFTMAX, x, stats, temperature, out, start, stop)


def log_softmax(cnp.ndarray x not None, stats, temperature, cnp.ndarray out not None,
                int64_t start, int64_t stop):
    _by_temperature(LOG_SOFTMAX, x, stats, temperature, out, start, stop)


def logsumexp(cnp.ndarray x not None, stats, temperature, cnp.ndarray out not None,
              int64_t start, int64_t stop):
    """One float32 per row into out."""
    _by_temperature(LOGSUMEXP, x, stats, temperature, out, start, stop)


def greedy(cnp.ndarray x not None, stats, cnp.ndarray out not None, int64_t start, int64_t stop):
    """The argmax of rows [start, stop) into out (int64): the checking pass alone."""
    cdef _Checked c
    cdef const tp_rowstat *st
    cdef int64_t *dest = <int64_t *>cnp.PyArray_DATA(out)
    cdef int64_t i
    _checked_rows(&c, stats, x)
    with nogil:
        for i in range(start, stop):
            st = _row_stat(&c, i, NULL, NULL)
            if st == NULL:
                break
            dest[i] = st.argmax
    _raise_first_bad(&c)


cdef int _kept(bint probs, cnp.ndarray x, stats, filters, plan,
               cnp.ndarray out, int64_t start, int64_t stop) except -1:
    """The kept set of rows [start, stop) into out: as a mask of the logits,
    or (probs) as the renormalized probabilities; of the processed logits
    with a plan (tokenpick._processors.Plan, or None)."""
    cdef _Checked c
    cdef const tp_rowstat *st
    cdef _Workspace w = _workspace()
    cdef int64_t i, V = _vocab(x)
    cdef float *dest = <float *>cnp.PyArray_DATA(out)
    cdef _Filters f
    cdef tp_filter row
    cdef tp_keep keep
    cdef _Plan pl
    if plan is not None:
        _read_plan(plan, &pl)
    _checked_rows(&c, stats, x, &pl if plan is not None else NULL, start, stop)
    _filters(&f, filters, V)
    with nogil:
        for i in range(start, stop):
            _filter_row(&f, i, &row)
            st = _row_stat(&c, i, &row, w.ws)
            if st == NULL:
                break
            c.k.keep(_row(&c, i), V, st, &row, w.ws, &keep)
            if probs:
                c.k.filtered_probs(V, &keep, dest + i * V)
            else:
                c.k.mask(V, &keep, dest + i * V)
    return _raise_first_bad(&c)


def mask(cnp.ndarray x not None, stats, filters, plan,
         cnp.ndarray out not None, int64_t start, int64_t stop):
    _kept(False, x, stats, filters, plan, out, start, stop)


def filtered_probs(cnp.ndarray x not None, stats, filters, plan,
                   cnp.ndarray out not None, int64_t start, int64_t stop):
    _kept(True, x, stats, filters, plan, out, start, stop)


def process(cnp.ndarray x not None, stats, plan, cnp.ndarray out not None, int64_t start,
            int64_t stop):
    """The processed logits of rows [start, stop) into out (which may be x).
    stats is True where check_processed has passed every row already: the
    rows are then processed without their checking pass."""
    cdef _Checked c
    cdef int64_t i, V = _vocab(x)
    cdef float *dest = <float *>cnp.PyArray_DATA(out)
    cdef _Workspace w = _workspace()
    cdef _Plan pl
    cdef bint checked = stats is True
    cdef tp_proc_args a
    _read_plan(plan, &pl)
    _checked_rows(&c, None, x, &pl, start, stop)
    with nogil:
        for i in range(start, stop):
            if checked:  # (and so without stray ids, overflow or rows with no token left)
                _row_args(&pl, i, &a)
                tp_proc_prepare(V, &a, c.scratch, &c.proc)
                tp_proc_patch(_row(&c, i), c.k, &a, c.scratch, &c.proc)
            elif _row_stat(&c, i, NULL, w.ws) == NULL:
                break
            c.k.process(_row(&c, i), V, &c.proc, dest + i * V)
    _raise_first_bad(&c)


def check_processed(cnp.ndarray x not None, plan):
    """The checking pass over every processed row, for calls that write into
    the caller's arrays: ValueError naming the first bad row, or True."""
    cdef _Checked c
    cdef int64_t i, nrows = cnp.PyArray_SIZE(x) // _vocab(x)
    cdef _Workspace w = _workspace()
    cdef _Plan pl
    _read_plan(plan, &pl)
    _checked_rows(&c, None, x, &pl, 0, nrows)
    with nogil:
        for i in range(nrows):
            if _row_stat(&c, i, NULL, w.ws) == NULL:
                break
    _raise_first_bad(&c)
    return True


cdef inline bint _worth_releasing_gil(int64_t V, int64_t rows) noexcept:
    """Whether rows of V logits are work enough to run without the GIL.  Below
    a few thousand logits (a microsecond or two) releasing and retaking it
    costs a noticeable part of the call, and retaking it may wait for another
    thread's turn; other threads lose little by waiting that long."""
    return V * rows >= 8192


cdef struct _Draws:
    bint given       # uniforms given, else seeds and offsets
    _Column u, seed, offset


cdef void _sample_rows(_Checked *c, const _Filters *f, const _Draws *d, tp_workspace *ws,
                       int64_t *token, float *logprob, int64_t start,
                       int64_t stop) noexcept nogil:
    cdef const tp_rowstat *st
    cdef tp_filter row
    cdef tp_keep keep
    cdef double u
    cdef int64_t i
    for i in range(start, stop):
        _filter_row(f, i, &row)
        st = _row_stat(c, i, &row, ws)
        if st == NULL:
            break
        c.k.keep(_row(c, i), c.V, st, &row, ws, &keep)
        u = _f64(&d.u, i) if d.given else tp_uniform(_u64(&d.seed, i), _u64(&d.offset, i))
        token[i] = c.k.sample(c.V, &keep, u, ws, &logprob[i])


cdef int _sample(cnp.ndarray x, stats, filters, plan, uniforms,
                 seeds, offsets, int64_t *token, float *logprob, int64_t start,
                 int64_t stop) except -1:
    cdef _Checked c
    cdef _Workspace w = _workspace()
    cdef int64_t V = _vocab(x)
    cdef _Filters f
    cdef _Draws d
    cdef _Scalar us, ss, os_
    cdef _Plan pl
    if plan is not None:
        _read_plan(plan, &pl)
    _checked_rows(&c, stats, x, &pl if plan is not None else NULL, start, stop)
    _filters(&f, filters, V)
    d.given = uniforms is not None
    if d.given:
        _column(uniforms, cnp.NPY_FLOAT64, &d.u, &us)
    else:
        _column(seeds, cnp.NPY_UINT64, &d.seed, &ss)
        _column(offsets, cnp.NPY_UINT64, &d.offset, &os_)
    if _worth_releasing_gil(V, stop - start):
        with nogil:
            _sample_rows(&c, &f, &d, w.ws, token, logprob, start, stop)
    else:
        _sample_rows(&c, &f, &d, w.ws, token, logprob, start, stop)
    _raise_first_bad(&c)
    return 0


def sample(cnp.ndarray x not None, stats, filters, plan,
           uniforms, seeds, offsets, cnp.ndarray tokens not None,
           cnp.ndarray logprobs not None, int64_t start, int64_t stop):
    """Either uniforms (float64), or seeds and offsets (uint64), is None."""
    _sample(x, stats, filters, plan, uniforms, seeds, offsets,
            <int64_t *>cnp.PyArray_DATA(tokens), <float *>cnp.PyArray_DATA(logprobs),
            start, stop)


# ---- speculative decoding ------------------------------------------------------

cdef float *_row_scratch(int64_t V) except NULL:
    """This thread's scratch row of V floats (verify's exponentials of a position)."""
    cdef cnp.ndarray a = getattr(_per_thread, "row", None)
    if a is None or cnp.PyArray_SIZE(a) < V:
        a = np.empty(max(V, 1), dtype=np.float32)
        _per_thread.row = a
    return <float *>cnp.PyArray_DATA(a)


def verify(cnp.ndarray x not None, cnp.ndarray drafts not None, cnp.ndarray num_draft not None,
           q, filters, plan, uniforms, seeds, offsets,
           cnp.ndarray tokens not None, cnp.ndarray accepted not None,
           cnp.ndarray logprobs not None, int64_t positions, int64_t start, int64_t stop):
    """Speculative decoding's verification of rows [start, stop): x holds each row's
    `positions` target rows in turn ((B * positions, V), or (B, positions, V) with rows
    as plain_logits takes them; the filters and plan given per such row), drafts (B, positions - 1) int64 and num_draft (B,) int64 C-contiguous, q
    (B, positions - 1, V) float32 C-contiguous or None, uniforms (B, positions) float64
    or None (then seeds and offsets per row); tokens (B, positions) int64 filled with -1,
    logprobs likewise with -inf, accepted (B,) int64.  Problems are raised in the order
    of rows, then positions: a position's logits and processors (every position, reached
    or not), then its draft's probabilities where read."""
    cdef _Checked c
    cdef _Workspace w = _workspace()
    cdef int64_t V = _vocab(x), K = positions - 1, b, k, i, d, token = 0
    cdef _Filters f
    cdef _Plan pl
    cdef _Column sc, oc
    cdef _Scalar ss, os_
    cdef tp_filter row
    cdef tp_keep keep
    cdef const tp_rowstat *st
    cdef float lp = 0.0
    cdef double u_draw, u_accept
    cdef int code
    cdef bint done, given = uniforms is not None
    cdef int64_t bad_q = -1
    cdef const int64_t *dr = <const int64_t *>cnp.PyArray_DATA(drafts)
    cdef const int64_t *nd = <const int64_t *>cnp.PyArray_DATA(num_draft)
    cdef const float *qs = NULL if q is None else <const float *>cnp.PyArray_DATA(<cnp.ndarray?>q)
    cdef const double *us = NULL if not given else <const double *>cnp.PyArray_DATA(<cnp.ndarray?>uniforms)
    cdef int64_t *tok = <int64_t *>cnp.PyArray_DATA(tokens)
    cdef int64_t *acc = <int64_t *>cnp.PyArray_DATA(accepted)
    cdef float *lps = <float *>cnp.PyArray_DATA(logprobs)
    cdef float *scratch = _row_scratch(V)
    if plan is not None:
        _read_plan(plan, &pl)
    _checked_rows(&c, None, x, &pl if plan is not None else NULL, start * positions,
                  stop * positions)
    _filters(&f, filters, V)
    if not given:
        _column(seeds, cnp.NPY_UINT64, &sc, &ss)
        _column(offsets, cnp.NPY_UINT64, &oc, &os_)
    with nogil:
        for b in range(start, stop):
            done = False
            for k in range(positions):
                i = b * positions + k
                _filter_row(&f, i, &row)
                st = _row_stat(&c, i, NULL if done else &row, w.ws)
                if st == NULL:
                    break
                if not done:
                    c.k.keep(_row(&c, i), V, st, &row, w.ws, &keep)
                    u_draw = us[b * positions] if given else tp_uniform_at(
                        _u64(&sc, b), _u64(&oc, b), 0)
                    if k == nd[b]:  # every draft accepted: the bonus token
                        tok[i] = c.k.sample(V, &keep, u_draw, w.ws, &lps[i])
                        acc[b] = k
                        done = True
                    else:
                        u_accept = us[i + 1] if given else tp_uniform_at(
                            _u64(&sc, b), _u64(&oc, b), <uint32_t>(k + 1))
                        d = dr[b * K + k]
                        code = c.k.verify_draft(V, &keep, d, NULL if qs == NULL else qs + (b * K + k) * V,
                                                u_accept, u_draw, w.ws, scratch, &token, &lp)
                        if code == TP_DRAFT_BAD_Q:
                            bad_q = i
                            break
                        lps[i] = lp
                        if code == TP_DRAFT_ACCEPTED:
                            tok[i] = d
                        else:
                            tok[i] = token
                            acc[b] = k
                            done = True
            if c.code != TP_OK or bad_q >= 0:
                break
    if c.code != TP_OK:
        _raise_bad_row(c.code, c.bad, c.bad_token, positions)
    if bad_q >= 0:
        raise ValueError(
            f"draft_probs row {bad_q // positions}, position {bad_q % positions} holds a value "
            "that is not a probability (finite and >= 0)")


cdef extern from "numpy/arrayobject.h":
    object PyArray_Scalar(void *data, cnp.dtype descr, object base)

cdef cnp.dtype _INT64 = cnp.PyArray_DescrFromType(cnp.NPY_INT64)
cdef cnp.dtype _FLOAT32 = cnp.PyArray_DescrFromType(cnp.NPY_FLOAT32)


cdef object _one(void *value, cnp.dtype dtype, bint as_array):
    """A numpy scalar of dtype from *value, or (as_array) an array of shape (1,)."""
    if not as_array:
        return PyArray_Scalar(value, dtype, None)
    cdef cnp.npy_intp one = 1
    cdef cnp.ndarray a = cnp.PyArray_SimpleNew(1, &one, dtype.type_num)
    memcpy(cnp.PyArray_DATA(a), value, dtype.itemsize)
    return a


def sample_row(cnp.ndarray x not None, filters, plan, uniforms,
               seeds, offsets, bint return_logprob, bint as_arrays):
    """sample for x of one row, (V,) or (1, V): the token as a numpy int64,
    with its logprob as a numpy float32 if return_logprob (a pair), or
    (as_arrays) each as an array of shape (1,); made here, as numpy's own
    constructors cost more than the kernel on a short row."""
    cdef int64_t token = 0
    cdef float logprob = 0.0
    _sample(x, None, filters, plan, uniforms, seeds, offsets,
            &token, &logprob, 0, 1)
    if return_logprob:
        return _one(&token, _INT64, as_arrays), _one(&logprob, _FLOAT32, as_arrays)
    return _one(&token, _INT64, as_arrays)


def top_logprobs(cnp.ndarray x not None, stats, temperature, int64_t m,
                 cnp.ndarray ids not None, cnp.ndarray lps not None,
                 int64_t start, int64_t stop):
    cdef _Checked c
    cdef const tp_rowstat *st
    cdef _Workspace w = _workspace()
    cdef int64_t i, V = _vocab(x)
    cdef int64_t *id_rows = <int64_t *>cnp.PyArray_DATA(ids)
    cdef float *lp_rows = <float *>cnp.PyArray_DATA(lps)
    cdef _Column t
    cdef _Scalar ts
    cdef tp_ranked ranked
    ranked.m = m
    _checked_rows(&c, stats, x)
    _column(temperature, cnp.NPY_FLOAT64, &t, &ts)
    with nogil:
        for i in range(start, stop):
            st = _row_stat(&c, i, NULL, NULL)
            if st == NULL:
                break
            ranked.ids = id_rows + i * m
            ranked.lps = lp_rows + i * m
            c.k.top_logprobs(_row(&c, i), V, st, _f64(&t, i), w.ws, &ranked)
    _raise_first_bad(&c)


def widen(cnp.ndarray x not None, cnp.ndarray out not None):
    """out[...] = the float32 values of logits x (float32, float16, or bfloat16 as its
    bits in uint16), exactly: x and out C-contiguous, of one size."""
    cdef int elem = _elem(x)
    cdef int64_t n = cnp.PyArray_SIZE(x)
    if (elem < 0 or cnp.PyArray_TYPE(out) != cnp.NPY_FLOAT32 or not cnp.PyArray_IS_C_CONTIGUOUS(x)
            or not cnp.PyArray_IS_C_CONTIGUOUS(out) or cnp.PyArray_SIZE(out) != n):
        raise TypeError("widen takes C-contiguous logits and a float32 array of their size")
    cdef const void *src = cnp.PyArray_DATA(x)
    cdef float *dst = <float *>cnp.PyArray_DATA(out)
    with nogil:
        _tables[elem].widen(src, n, dst)


def token_logprobs(cnp.ndarray x not None, stats, temperature, tokens,
                   cnp.ndarray out not None, int64_t start, int64_t stop):
    """log_softmax(x, T) at each row's token (int64 per-row) into out (float32)."""
    cdef _Checked c
    cdef const tp_rowstat *st
    cdef int64_t i, V = _vocab(x)
    cdef float *dest = <float *>cnp.PyArray_DATA(out)
    cdef _Column t, tok
    cdef _Scalar ts, toks
    _checked_rows(&c, stats, x)
    _column(temperature, cnp.NPY_FLOAT64, &t, &ts)
    _column(tokens, cnp.NPY_INT64, &tok, &toks)
    with nogil:
        for i in range(start, stop):
            st = _row_stat(&c, i, NULL, NULL)
            if st == NULL:
                break
            dest[i] = c.k.token_logprob(_row(&c, i), V, st, _f64(&t, i), _i64(&tok, i))
    _raise_first_bad(&c)


def uniform(seeds, offsets, indices, cnp.ndarray out not None):
    """tp_uniform_at of every (seed, offset, index) into out (float64); indices < 2**32."""
    cdef double *dest = <double *>cnp.PyArray_DATA(out)
    cdef int64_t i
    cdef _Column sc, oc, ic
    cdef _Scalar ss, os_, is_
    _column(seeds, cnp.NPY_UINT64, &sc, &ss)
    _column(offsets, cnp.NPY_UINT64, &oc, &os_)
    _column(indices, cnp.NPY_UINT64, &ic, &is_)
    with nogil:
        for i in range(cnp.PyArray_SIZE(out)):
            dest[i] = tp_uniform_at(_u64(&sc, i), _u64(&oc, i), <uint32_t>_u64(&ic, i))


# ---- the selections by name and the routes taken, for tests -------------------

# ---- the Sampler's step (tokenpick._sampler) ---------------------------------------


cdef inline bint _holds(const int64_t *ids, Py_ssize_t n, int64_t t) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(n):
        if ids[j] == t:
            return True
    return False


cdef int _require(cnp.ndarray a, int typenum, int ndim, str name) except -1:
    if cnp.PyArray_TYPE(a) != typenum or cnp.PyArray_NDIM(a) != ndim or not cnp.PyArray_IS_C_CONTIGUOUS(a):
        raise TypeError(f"internal: sampler_advance's {name} has the wrong layout")
    return 0


cdef class KeptStore:
    """The logit processors of a decoding loop's requests, kept between its steps
    (tp_kept, one per slot): each request's biases, stop ids, prompt and output tallies,
    which a step's plan (tokenpick._processors.Plan.kept) reads in place of id lists,
    and to which sampler_advance adds each step's token."""
    cdef tp_kept *kept
    cdef Py_ssize_t size

    def __dealloc__(self):
        self._free(0)
        free(self.kept)

    cdef void _free(self, Py_ssize_t start) noexcept:
        cdef Py_ssize_t s
        for s in range(start, self.size):
            tp_kept_free(&self.kept[s])

    def set(self, Py_ssize_t slot, bint counted, prompt, bias_ids, bias_vals, stop, outputs):
        """Slot's request anew: its outputs tallied if counted, its prompt's ids
        (int64, in [0, V)) marked present, its biases (int64 ids, float64 values,
        finite or -inf), its stop ids (banned while it has fewer outputs than its
        min_tokens), and the outputs it has already (a resumed request); None for any
        of them: none.  The ids are the caller's to check."""
        cdef Py_ssize_t s, size
        cdef tp_kept *grown
        if slot < 0:
            raise ValueError("internal: KeptStore slot out of range")
        if slot >= self.size:  # the store grows (doubling) to hold the slot
            size = max(8, 2 * self.size, slot + 1)
            grown = <tp_kept *>realloc(self.kept, size * sizeof(tp_kept))
            if grown == NULL:
                raise MemoryError()
            self.kept = grown
            for s in range(self.size, size):
                tp_kept_init(&self.kept[s], 0)
            self.size = size
        cdef tp_kept k
        tp_kept_init(&k, counted)
        try:
            _kept_fix(&k, bias_ids, bias_vals, stop)
            _kept_put(&k, prompt, TP_PRESENT)
            _kept_add(&k, outputs)
        except MemoryError:
            tp_kept_free(&k)
            raise
        tp_kept_free(&self.kept[slot])
        self.kept[slot] = k

    def clear(self, Py_ssize_t slot):
        """Free slot's request."""
        if 0 <= slot < self.size:
            tp_kept_free(&self.kept[slot])

    def tokens(self, Py_ssize_t slot):
        """How many tokens slot's request keeps (for tests and the benchmark)."""
        return self.kept[slot].n if 0 <= slot < self.size else 0

    def rows(self, cnp.ndarray slots not None):
        """The Plan.kept of a step's rows: (self, slots), slots checked."""
        _require(slots, cnp.NPY_INT64, 1, "slots")
        cdef const int64_t *at = <const int64_t *>cnp.PyArray_DATA(slots)
        cdef Py_ssize_t b
        for b in range(cnp.PyArray_DIMS(slots)[0]):
            if not 0 <= at[b] < self.size:
                raise ValueError("internal: KeptStore slot out of range")
        return self, slots


cdef cnp.ndarray _int64s(ids):
    return np.empty(0, np.int64) if ids is None else np.ascontiguousarray(ids, dtype=np.int64)


cdef int _kept_fix(tp_kept *k, bias_ids, bias_vals, stop) except -1:
    cdef cnp.ndarray ids = _int64s(bias_ids), stops = _int64s(stop)
    cdef cnp.ndarray vals = np.ascontiguousarray(
        np.empty(0) if bias_vals is None else bias_vals, dtype=np.float64)
    if cnp.PyArray_SIZE(vals) != cnp.PyArray_SIZE(ids):
        raise ValueError("internal: KeptStore biases and ids disagree in length")
    if tp_kept_fix(k, <const int64_t *>cnp.PyArray_DATA(ids),
                   <const double *>cnp.PyArray_DATA(vals), cnp.PyArray_SIZE(ids),
                   <const int64_t *>cnp.PyArray_DATA(stops), cnp.PyArray_SIZE(stops)) != 0:
        raise MemoryError()
    return 0


cdef int _kept_put(tp_kept *k, ids, uint32_t flags) except -1:
    cdef cnp.ndarray a = _int64s(ids)
    if tp_kept_put(k, <const int64_t *>cnp.PyArray_DATA(a), cnp.PyArray_SIZE(a), flags) != 0:
        raise MemoryError()
    return 0


cdef int _kept_add(tp_kept *k, ids) except -1:
    if ids is None:
        return 0
    cdef cnp.ndarray a = _int64s(ids)
    cdef const int64_t *at = <const int64_t *>cnp.PyArray_DATA(a)
    cdef Py_ssize_t j, m = cnp.PyArray_SIZE(a)
    if m >= TP_COUNT:
        raise OverflowError(f"more than {TP_COUNT} outputs: their tallies would overflow")
    if tp_kept_reserve(k, m) != 0:
        raise MemoryError()
    for j in range(m):
        tp_kept_add(k, at[j])
    return 0


def sampler_advance(cnp.ndarray out not None, cnp.ndarray steps not None,
                    cnp.ndarray slots not None, cnp.ndarray tokens not None,
                    cnp.ndarray ends not None, cnp.ndarray stops not None,
                    cnp.ndarray max_new not None, cnp.ndarray reasons not None,
                    KeptStore kept=None):
    """Append each request's token, and say whether it ends, in one pass over the step's
    B rows: with s = slots[b], out[steps[s], s] = tokens[b], steps[s] += 1, and
    reasons[b] = 1 if the token is one of ends (the EOS ids), 2 if one of stops (the
    stop ids of some request of the step: the caller checks whose), 3 if the request's
    count reaches max_new[b], else 0.  out is int32 (L, S); steps int64 (S,); slots,
    tokens, max_new int64 (B,); ends, stops int64; reasons uint8 (B,); all C-contiguous.
    With kept, each token is also added to its request's kept processors.
    Returns whether some row ends, or -1, writing nothing, if out has fewer than
    steps[s] + 1 rows for some s."""
    _require(out, cnp.NPY_INT32, 2, "out")
    _require(steps, cnp.NPY_INT64, 1, "steps")
    _require(slots, cnp.NPY_INT64, 1, "slots")
    _require(tokens, cnp.NPY_INT64, 1, "tokens")
    _require(ends, cnp.NPY_INT64, 1, "ends")
    _require(stops, cnp.NPY_INT64, 1, "stops")
    _require(max_new, cnp.NPY_INT64, 1, "max_new")
    _require(reasons, cnp.NPY_UINT8, 1, "reasons")
    cdef Py_ssize_t B = cnp.PyArray_DIMS(tokens)[0], b, s, L = cnp.PyArray_DIMS(out)[0]
    cdef Py_ssize_t S = cnp.PyArray_DIMS(out)[1]
    if (cnp.PyArray_DIMS(slots)[0] != B or cnp.PyArray_DIMS(max_new)[0] != B
            or cnp.PyArray_DIMS(reasons)[0] != B or cnp.PyArray_DIMS(steps)[0] < S):
        raise ValueError("internal: sampler_advance's arrays disagree in length")
    cdef int32_t *o = <int32_t *>cnp.PyArray_DATA(out)
    cdef int64_t *n = <int64_t *>cnp.PyArray_DATA(steps)
    cdef const int64_t *at = <const int64_t *>cnp.PyArray_DATA(slots)
    cdef const int64_t *t = <const int64_t *>cnp.PyArray_DATA(tokens)
    cdef const int64_t *e = <const int64_t *>cnp.PyArray_DATA(ends)
    cdef const int64_t *st = <const int64_t *>cnp.PyArray_DATA(stops)
    cdef const int64_t *m = <const int64_t *>cnp.PyArray_DATA(max_new)
    cdef uint8_t *r = <uint8_t *>cnp.PyArray_DATA(reasons)
    cdef Py_ssize_t ne = cnp.PyArray_DIMS(ends)[0], ns = cnp.PyArray_DIMS(stops)[0]
    cdef int64_t k
    cdef int some = 0
    for b in range(B):
        s = at[b]
        if not (0 <= s < S):
            raise ValueError("internal: sampler_advance's slot out of range")
        if n[s] >= L:
            return -1
        if kept is not None and not s < kept.size:
            raise ValueError("internal: sampler_advance's slot has no kept processors")
    if kept is not None:  # room first, so that nothing is written if memory runs out
        for b in range(B):
            if kept.kept[at[b]].outputs >= TP_COUNT:
                raise OverflowError(f"a request has {TP_COUNT} outputs: its tallies are full")
            if tp_kept_reserve(&kept.kept[at[b]], 1) != 0:
                raise MemoryError()
    for b in range(B):
        s = at[b]
        if kept is not None:
            tp_kept_add(&kept.kept[s], t[b])
        k = n[s]
        o[k * S + s] = <int32_t>t[b]
        n[s] = k + 1
        if _holds(e, ne, t[b]):
            r[b] = 1
        elif _holds(st, ns, t[b]):
            r[b] = 2
        elif k + 1 >= m[b]:
            r[b] = 3
        else:
            r[b] = 0
        some |= r[b] != 0
    return some


def route_names():
    """The names of the routes selection can take, in the order of route_counts."""
    return [tp_route_name(r).decode() for r in range(TP_ROUTE_COUNT)]


def route_counts():
    """How often each route was taken since the last call, as {name: count},
    or None in a build that does not count them (TOKENPICK_COUNT_ROUTES=1)."""
    if not tp_route_counting():
        return None
    cdef int64_t counts[TP_ROUTE_COUNT]
    cdef int r
    for r in range(TP_ROUTE_COUNT):
        counts[r] = 0
    tp_route_take(counts)
    return {tp_route_name(r).decode(): counts[r] for r in range(TP_ROUTE_COUNT)}


def _route_number(route):
    if route is None:
        return -1
    return route_names().index(route)


def kth_largest(cnp.ndarray x not None, int64_t k, route=None):
    """The k-th largest of float32 x (1-D, C-contiguous, no NaN, 1 <= k <= len)
    by the named route (route_names(): kth_*) or, with None, the kernels'
    choice; NaN where the route does not take these inputs."""
    cdef int64_t n = cnp.PyArray_SIZE(x)
    if cnp.PyArray_TYPE(x) != cnp.NPY_FLOAT32 or not cnp.PyArray_IS_C_CONTIGUOUS(x) or not 1 <= k <= n:
        raise ValueError("kth_largest needs C-contiguous float32 and 1 <= k <= len(x)")
    return K.kth_largest(<const float *>cnp.PyArray_DATA(x), n, k, _route_number(route),
                         _workspace().ws)


def select_by_mass(cnp.ndarray v not None, cnp.ndarray w not None, double target, route=None):
    """The smallest of float32 v whose mass from the top by float32 weights w
    reaches target, by the named route (route_names(): mass_*) or, with None,
    the kernels' choice; NaN where the route does not take these inputs, does
    not exist on this SIMD path, or gives up."""
    cdef int64_t n = cnp.PyArray_SIZE(v)
    if (cnp.PyArray_TYPE(v) != cnp.NPY_FLOAT32 or cnp.PyArray_TYPE(w) != cnp.NPY_FLOAT32
            or not cnp.PyArray_IS_C_CONTIGUOUS(v) or not cnp.PyArray_IS_C_CONTIGUOUS(w)
            or cnp.PyArray_SIZE(w) != n):
        raise ValueError("select_by_mass needs C-contiguous float32 v and w of one length")
    return K.select_by_mass(<const float *>cnp.PyArray_DATA(v), <const float *>cnp.PyArray_DATA(w),
                            n, target, _route_number(route), _workspace().ws)


include "_dlpack.pxi"
