"""The compiled core: loops over rows with the GIL released, calling csrc/.

Every function here trusts its caller, tokenpick._api, to have checked and
converted its arguments: logits are C-contiguous float32 (B, V) with V >= 1,
per-row parameters are 1-D of length B (a stride of 0 broadcasts a scalar) and
in range, outputs are C-contiguous and of the right shape.  What only a pass
over the data can find (NaN, +inf, rows that are all -inf) is found by a
checking pass over every row before anything is written, so a call that raises
leaves its outputs untouched.
"""

from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport free, malloc

import os
import threading
import warnings


cdef extern from "tokenpick.h" nogil:
    enum:
        TP_OK
        TP_ERR_NAN
        TP_ERR_POSINF
        TP_ERR_ALL_NEGINF

    ctypedef struct tp_rowstat:
        float max
        int64_t argmax

    ctypedef struct tp_filter:
        double temperature
        int64_t top_k
        double top_p
        double min_p

    ctypedef struct tp_keep:
        int greedy

    ctypedef struct tp_workspace:
        pass

    ctypedef struct tp_kernels:
        const char *name
        int (*scan)(const float *x, int64_t n, tp_rowstat *st) noexcept nogil
        void (*softmax)(const float *x, int64_t n, const tp_rowstat *st, double T,
                        float *out) noexcept nogil
        void (*log_softmax)(const float *x, int64_t n, const tp_rowstat *st, double T,
                            float *out) noexcept nogil
        float (*logsumexp)(const float *x, int64_t n, const tp_rowstat *st, double T) noexcept nogil
        void (*keep)(const float *x, int64_t n, const tp_rowstat *st, const tp_filter *f,
                     tp_workspace *ws, tp_keep *keep) noexcept nogil
        void (*mask)(const float *x, int64_t n, const tp_keep *keep, float *out) noexcept nogil
        void (*filtered_probs)(const float *x, int64_t n, const tp_keep *keep,
                               float *out) noexcept nogil
        int64_t (*sample)(const float *x, int64_t n, const tp_keep *keep, double u,
                          tp_workspace *ws, float *logprob) noexcept nogil
        void (*top_logprobs)(const float *x, int64_t n, const tp_rowstat *st, double T,
                             int64_t m, tp_workspace *ws, int64_t *ids, float *lps) noexcept nogil

    const tp_kernels *tp_kernels_for(const char *name) noexcept
    double tp_uniform(uint64_t seed, uint64_t offset) noexcept
    const char *tp_compiler() noexcept
    const char *tp_build_flags() noexcept


# ---- build information and the SIMD path ------------------------------------

SIMD_NAMES = ("baseline", "neon", "avx2", "avx512")  # from least to most capable


def simd_paths():
    """The SIMD paths this build can run on this machine, least capable first."""
    return [name for name in SIMD_NAMES if tp_kernels_for(name.encode()) != NULL]


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


# The kernel table every call uses; set once here, or by force_simd in tests.
cdef const tp_kernels *K = tp_kernels_for(_initial_simd().encode())


def simd_path():
    """The SIMD path the kernels use."""
    return K.name.decode()


def force_simd(name):
    """Switch the kernels to another available SIMD path; returns the previous one.

    For tests of every path.  Not thread-safe: do not call it while other
    threads are inside tokenpick.
    """
    global K
    if name not in simd_paths():
        raise ValueError(f"SIMD path {name!r} is not available here; have {simd_paths()}")
    previous = simd_path()
    K = tp_kernels_for(name.encode())
    return previous


def compiler():
    return tp_compiler().decode()


def build_flags():
    return tp_build_flags().decode()


# ---- the checking pass --------------------------------------------------------

cdef class _RowStats:
    """The max and argmax of every row, from the checking pass."""
    cdef tp_rowstat *st
    cdef int64_t n

    def __cinit__(self, int64_t n):
        self.n = n
        self.st = <tp_rowstat *>malloc(max(n, 1) * sizeof(tp_rowstat))
        if self.st == NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self.st)


cdef _RowStats _scan(const float[:, ::1] x):
    cdef _RowStats stats = _RowStats(x.shape[0])
    cdef int64_t i, bad = -1, V = x.shape[1]
    cdef int code = TP_OK
    with nogil:
        for i in range(x.shape[0]):
            code = K.scan(&x[i, 0], V, &stats.st[i])
            if code != TP_OK:
                bad = i
                break
    if code == TP_ERR_NAN:
        raise ValueError(f"logits row {bad} contains NaN")
    if code == TP_ERR_POSINF:
        raise ValueError(f"logits row {bad} contains +inf")
    if code == TP_ERR_ALL_NEGINF:
        raise ValueError(f"logits row {bad} is entirely -inf: nothing can be chosen")
    return stats


cdef class _Workspace:
    """Scratch for selection, of a size independent of V."""
    cdef tp_workspace *ws

    def __cinit__(self):
        self.ws = <tp_workspace *>malloc(sizeof(tp_workspace))
        if self.ws == NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self.ws)


_per_thread = threading.local()


cdef _Workspace _workspace():
    """This thread's workspace: made once per thread, freed with the thread.

    A call never runs inside another on the same thread, so one per thread is
    enough, and reusing it saves a ~100 KB allocation per call.
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

def scan(const float[:, ::1] x):
    """The checking pass over every row: max and argmax, or ValueError naming the bad row."""
    return _scan(x)


def softmax(const float[:, ::1] x, _RowStats s, const double[:] temperature,
            float[:, ::1] out, int64_t start, int64_t stop):
    cdef int64_t i, V = x.shape[1]
    with nogil:
        for i in range(start, stop):
            K.softmax(&x[i, 0], V, &s.st[i], temperature[i], &out[i, 0])


def log_softmax(const float[:, ::1] x, _RowStats s, const double[:] temperature,
                float[:, ::1] out, int64_t start, int64_t stop):
    cdef int64_t i, V = x.shape[1]
    with nogil:
        for i in range(start, stop):
            K.log_softmax(&x[i, 0], V, &s.st[i], temperature[i], &out[i, 0])


def logsumexp(const float[:, ::1] x, _RowStats s, const double[:] temperature,
              float[::1] out, int64_t start, int64_t stop):
    cdef int64_t i, V = x.shape[1]
    with nogil:
        for i in range(start, stop):
            out[i] = K.logsumexp(&x[i, 0], V, &s.st[i], temperature[i])


def greedy(_RowStats s, int64_t[::1] out):
    cdef int64_t i
    for i in range(out.shape[0]):
        out[i] = s.st[i].argmax


cdef inline void _keep_row(const float[:, ::1] x, int64_t i, const tp_rowstat *st,
                           const double[:] temperature, const int64_t[:] top_k,
                           const double[:] top_p, const double[:] min_p,
                           tp_workspace *ws, tp_keep *keep) noexcept nogil:
    cdef tp_filter f
    f.temperature = temperature[i]
    f.top_k = top_k[i]
    f.top_p = top_p[i]
    f.min_p = min_p[i]
    K.keep(&x[i, 0], x.shape[1], st, &f, ws, keep)


def mask(const float[:, ::1] x, _RowStats s, const double[:] temperature,
         const int64_t[:] top_k, const double[:] top_p, const double[:] min_p,
         float[:, ::1] out, int64_t start, int64_t stop):
    cdef _Workspace w = _workspace()
    cdef tp_keep keep
    cdef int64_t i, V = x.shape[1]
    with nogil:
        for i in range(start, stop):
            _keep_row(x, i, &s.st[i], temperature, top_k, top_p, min_p, w.ws, &keep)
            K.mask(&x[i, 0], V, &keep, &out[i, 0])


def filtered_probs(const float[:, ::1] x, _RowStats s, const double[:] temperature,
                   const int64_t[:] top_k, const double[:] top_p, const double[:] min_p,
                   float[:, ::1] out, int64_t start, int64_t stop):
    cdef _Workspace w = _workspace()
    cdef tp_keep keep
    cdef int64_t i, V = x.shape[1]
    with nogil:
        for i in range(start, stop):
            _keep_row(x, i, &s.st[i], temperature, top_k, top_p, min_p, w.ws, &keep)
            K.filtered_probs(&x[i, 0], V, &keep, &out[i, 0])


def sample(const float[:, ::1] x, _RowStats s, const double[:] temperature,
           const int64_t[:] top_k, const double[:] top_p, const double[:] min_p,
           const double[:] uniforms, const uint64_t[:] seeds, const uint64_t[:] offsets,
           int64_t[::1] tokens, float[::1] logprobs, int64_t start, int64_t stop):
    """Either uniforms, or seeds and offsets, is None."""
    cdef _Workspace w = _workspace()
    cdef tp_keep keep
    cdef int64_t i, V = x.shape[1]
    cdef bint given = uniforms is not None
    cdef double u
    cdef float lp
    with nogil:
        for i in range(start, stop):
            _keep_row(x, i, &s.st[i], temperature, top_k, top_p, min_p, w.ws, &keep)
            u = uniforms[i] if given else tp_uniform(seeds[i], offsets[i])
            tokens[i] = K.sample(&x[i, 0], V, &keep, u, w.ws, &lp)
            logprobs[i] = lp


def top_logprobs(const float[:, ::1] x, _RowStats s, const double[:] temperature, int64_t m,
                 int64_t[:, ::1] ids, float[:, ::1] lps, int64_t start, int64_t stop):
    cdef _Workspace w = _workspace()
    cdef int64_t i, V = x.shape[1]
    with nogil:
        for i in range(start, stop):
            K.top_logprobs(&x[i, 0], V, &s.st[i], temperature[i], m, w.ws,
                           &ids[i, 0], &lps[i, 0])


def uniform(const uint64_t[:] seeds, const uint64_t[:] offsets, double[::1] out):
    cdef int64_t i
    with nogil:
        for i in range(out.shape[0]):
            out[i] = tp_uniform(seeds[i], offsets[i])
