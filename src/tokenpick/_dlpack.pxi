# DLPack, the consumer's side (included by _core.pyx): a host tensor of another
# framework read as a numpy array over its memory, with no copy.
#
# The protocol (dmlc/dlpack, and the Python array API's __dlpack__): the producer's
# __dlpack__ returns a PyCapsule named "dltensor_versioned" (DLPack >= 1.0, asked for with
# max_version) or "dltensor", holding a DLManagedTensor(Versioned): the tensor's data,
# device, dtype, shape and strides (in elements; NULL for C order), and a deleter.  The
# consumer takes ownership by renaming the capsule "used_dltensor[_versioned]" (the
# capsule's own destructor then leaves the tensor alone) and calls the deleter exactly once
# when it is done with the memory: here, when the numpy array, whose base owns it, dies.
# A capsule not taken (a tensor on a device, a dtype that is not read) is left as it was,
# and its destructor frees it.

from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_IsValid, PyCapsule_SetName

cdef extern from *:
    """
    typedef struct { int32_t device_type; int32_t device_id; } tp_dl_device;
    typedef struct { uint8_t code; uint8_t bits; uint16_t lanes; } tp_dl_dtype;
    typedef struct {
        void *data;
        tp_dl_device device;
        int32_t ndim;
        tp_dl_dtype dtype;
        int64_t *shape;
        int64_t *strides;
        uint64_t byte_offset;
    } tp_dl_tensor;
    typedef struct tp_dl_managed {
        tp_dl_tensor dl_tensor;
        void *manager_ctx;
        void (*deleter)(struct tp_dl_managed *self);
    } tp_dl_managed;
    typedef struct { uint32_t major; uint32_t minor; } tp_dl_version;
    typedef struct tp_dl_managed_versioned {
        tp_dl_version version;
        void *manager_ctx;
        void (*deleter)(struct tp_dl_managed_versioned *self);
        uint64_t flags;
        tp_dl_tensor dl_tensor;
    } tp_dl_managed_versioned;
    static void tp_dl_delete(void *managed, int versioned)
    {
        if (versioned) {
            tp_dl_managed_versioned *m = (tp_dl_managed_versioned *)managed;
            if (m->deleter)
                m->deleter(m);
        } else {
            tp_dl_managed *m = (tp_dl_managed *)managed;
            if (m->deleter)
                m->deleter(m);
        }
    }
    """
    ctypedef struct tp_dl_device:
        int32_t device_type
        int32_t device_id
    ctypedef struct tp_dl_dtype:
        uint8_t code
        uint8_t bits
        uint16_t lanes
    ctypedef struct tp_dl_tensor:
        void *data
        tp_dl_device device
        int32_t ndim
        tp_dl_dtype dtype
        int64_t *shape
        int64_t *strides
        uint64_t byte_offset
    ctypedef struct tp_dl_managed:
        tp_dl_tensor dl_tensor
    ctypedef struct tp_dl_version:
        uint32_t major
        uint32_t minor
    ctypedef struct tp_dl_managed_versioned:
        tp_dl_version version
        uint64_t flags
        tp_dl_tensor dl_tensor
    void tp_dl_delete(void *managed, int versioned) noexcept

# DLDeviceType: the memory the host reads (kDLCPU, kDLCUDAHost, kDLROCMHost), and names of
# the others for the error.
cdef set _DL_HOST = {1, 3, 11}
_DL_DEVICES = {2: "CUDA", 4: "OpenCL", 7: "Vulkan", 8: "Metal", 9: "VPI", 10: "ROCm",
               12: "ExtDev", 13: "CUDA managed", 14: "oneAPI", 15: "WebGPU", 16: "Hexagon",
               17: "MAIA"}
# DLDataTypeCode: kDLInt, kDLUInt, kDLFloat, kDLBfloat
_DL_KINDS = {0: "int", 1: "uint", 2: "float", 4: "bfloat"}
cdef uint64_t _DL_READ_ONLY = 1  # DLPACK_FLAG_BITMASK_READ_ONLY


cdef class _DLPackOwner:
    """Owns a DLManagedTensor[Versioned] taken from a capsule: the base of the numpy
    array over its memory, which calls its deleter once, when the array goes."""
    cdef void *managed
    cdef bint versioned

    def __dealloc__(self):
        if self.managed != NULL:
            tp_dl_delete(self.managed, self.versioned)
            self.managed = NULL


def dlpack_array(obj, str what):
    """``(array, is_bfloat16)``: a numpy array over the memory of `obj`, a host tensor
    exporting ``__dlpack__``, without a copy; bfloat16 (which numpy lacks) as its uint16
    bits.  `what` names the argument in errors: a tensor on another device, or of a dtype
    that is not an int, uint or float of 8 to 64 bits, is a TypeError (the caller
    refuses the integers with the message numpy arrays get)."""
    try:
        capsule = obj.__dlpack__(max_version=(1, 0))
    except TypeError:  # a producer older than DLPack 1.0 takes no max_version
        capsule = obj.__dlpack__()
    cdef bint versioned
    if PyCapsule_IsValid(capsule, b"dltensor_versioned"):
        versioned = True
    elif PyCapsule_IsValid(capsule, b"dltensor"):
        versioned = False
    else:
        raise TypeError(f"{what}: {type(obj).__name__}.__dlpack__() gave no DLPack capsule")
    cdef void *managed = PyCapsule_GetPointer(
        capsule, b"dltensor_versioned" if versioned else b"dltensor")
    cdef tp_dl_tensor *t
    cdef uint64_t flags = 0
    if versioned:
        t = &(<tp_dl_managed_versioned *>managed).dl_tensor
        flags = (<tp_dl_managed_versioned *>managed).flags
        if (<tp_dl_managed_versioned *>managed).version.major > 1:
            raise TypeError(f"{what}: DLPack version "
                            f"{(<tp_dl_managed_versioned *>managed).version.major} is not read")
    else:
        t = &(<tp_dl_managed *>managed).dl_tensor
    if t.device.device_type not in _DL_HOST:
        device = _DL_DEVICES.get(t.device.device_type, f"type {t.device.device_type}")
        raise TypeError(
            f"{what} is on a {device} device ({type(obj).__name__}, device {t.device.device_id})"
            "; tokenpick reads host memory: move it to the CPU first (for torch, .cpu())")
    kind = _DL_KINDS.get(t.dtype.code)
    if kind is None or t.dtype.lanes != 1 or t.dtype.bits not in (8, 16, 32, 64) or (
            kind == "bfloat" and t.dtype.bits != 16):
        raise TypeError(f"{what} must be a real floating-point array, got DLPack dtype "
                        f"(code {t.dtype.code}, {t.dtype.bits} bits, {t.dtype.lanes} lanes)")
    cdef int typenum
    if kind == "float":
        typenum = {16: cnp.NPY_FLOAT16, 32: cnp.NPY_FLOAT32, 64: cnp.NPY_FLOAT64}.get(
            t.dtype.bits, cnp.NPY_NOTYPE)
        if typenum == cnp.NPY_NOTYPE:
            raise TypeError(f"{what} must be float16, bfloat16, float32 or float64, got DLPack "
                            f"float{t.dtype.bits}")
    elif kind == "bfloat":
        typenum = cnp.NPY_UINT16
    else:
        typenum = {(8, "int"): cnp.NPY_INT8, (16, "int"): cnp.NPY_INT16,
                   (32, "int"): cnp.NPY_INT32, (64, "int"): cnp.NPY_INT64,
                   (8, "uint"): cnp.NPY_UINT8, (16, "uint"): cnp.NPY_UINT16,
                   (32, "uint"): cnp.NPY_UINT32, (64, "uint"): cnp.NPY_UINT64}[(t.dtype.bits, kind)]
    cdef cnp.npy_intp itemsize = t.dtype.bits // 8
    cdef int ndim = t.ndim
    if ndim < 0 or ndim > 32:
        raise TypeError(f"{what}: a DLPack tensor of {ndim} dimensions")
    cdef cnp.npy_intp dims[32]
    cdef cnp.npy_intp strides[32]
    cdef int j
    for j in range(ndim):
        dims[j] = <cnp.npy_intp>t.shape[j]
    if t.strides != NULL:
        for j in range(ndim):
            strides[j] = <cnp.npy_intp>t.strides[j] * itemsize
    else:
        for j in range(ndim - 1, -1, -1):
            strides[j] = itemsize if j == ndim - 1 else strides[j + 1] * dims[j + 1]

    # from here on the tensor is ours: the deleter runs when owner goes
    PyCapsule_SetName(capsule, b"used_dltensor_versioned" if versioned else b"used_dltensor")
    cdef _DLPackOwner owner = _DLPackOwner.__new__(_DLPackOwner)
    owner.managed = managed
    owner.versioned = versioned
    cdef int flags_np = 0 if flags & _DL_READ_ONLY else cnp.NPY_ARRAY_WRITEABLE
    cdef cnp.ndarray a = cnp.PyArray_New(
        cnp.ndarray, ndim, dims, typenum, strides, <char *>t.data + t.byte_offset, 0, flags_np,
        None)
    cnp.set_array_base(a, owner)
    return a, kind == "bfloat"
