"""DLPack capsules made by hand (ctypes), for tests of what no installed library may
produce: bfloat16 rows (numpy has no bfloat16), tensors on another device, deleters counted."""

import ctypes as C

import numpy as np


def capsule(data, shape, code, bits, device_type=1, deleted=None, versioned=False):
    """A DLPack capsule made by hand (ctypes), over `data` (a numpy array kept alive by
    the caller), with a deleter that counts its calls in `deleted`."""

    class Device(C.Structure):
        _fields_ = [("device_type", C.c_int32), ("device_id", C.c_int32)]

    class DType(C.Structure):
        _fields_ = [("code", C.c_uint8), ("bits", C.c_uint8), ("lanes", C.c_uint16)]

    class Tensor(C.Structure):
        _fields_ = [
            ("data", C.c_void_p),
            ("device", Device),
            ("ndim", C.c_int32),
            ("dtype", DType),
            ("shape", C.POINTER(C.c_int64)),
            ("strides", C.POINTER(C.c_int64)),
            ("byte_offset", C.c_uint64),
        ]

    Deleter = C.CFUNCTYPE(None, C.c_void_p)
    if versioned:

        class Managed(C.Structure):
            _fields_ = [
                ("major", C.c_uint32),
                ("minor", C.c_uint32),
                ("ctx", C.c_void_p),
                ("deleter", Deleter),
                ("flags", C.c_uint64),
                ("tensor", Tensor),
            ]

    else:

        class Managed(C.Structure):
            _fields_ = [("tensor", Tensor), ("ctx", C.c_void_p), ("deleter", Deleter)]

    dims = (C.c_int64 * len(shape))(*shape)
    deleter = Deleter(lambda _: deleted.append(1))
    m = Managed()
    if versioned:
        m.major, m.minor = 1, 0
    m.deleter = deleter
    m.tensor = Tensor(data.ctypes.data, Device(device_type, 0), len(shape), DType(code, bits, 1))
    m.tensor.shape = dims
    new = C.pythonapi.PyCapsule_New
    new.restype, new.argtypes = C.py_object, [C.c_void_p, C.c_char_p, C.c_void_p]
    name = b"dltensor_versioned" if versioned else b"dltensor"
    capsule = new(C.addressof(m), name, None)
    return capsule, (m, dims, deleter, data)  # what must outlive the capsule


def bfloat16_bits(values):
    """The bits of values (float64 or float32) rounded to the nearest bfloat16, ties to
    even: uint16, NaN kept NaN, beyond bfloat16's range inf."""
    with np.errstate(over="ignore", invalid="ignore"):
        b = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (b + 0x7FFF + ((b >> 16) & 1)) >> 16
    nan = np.isnan(np.asarray(values, dtype=np.float32))
    return np.where(nan, (b >> 16) | 0x40, rounded).astype(np.uint16)


# What each live capsule of Bfloat16Rows needs (its structures, its deleter, the bits), held
# until its deleter runs, whenever its consumer releases it; then dropped at the next capsule
# made (a callback must not free itself while it runs).
_live = {}
_released = []


class _Release:
    """The `deleted` list of one capsule: its deleter's call moves the capsule's keep out."""

    def __init__(self, key):
        self.key = key

    def append(self, _):
        _released.append(_live.pop(self.key))


class Bfloat16Rows:
    """bfloat16 logits as a framework hands them over: a DLPack producer (code 4, 16 bits)
    over the bits of a uint16 array, a fresh capsule each call; and ``__array__``, their
    float32 widening, for numpy and the tests' own copies."""

    def __init__(self, bits):
        self.bits = np.ascontiguousarray(bits, dtype=np.uint16)
        self.shape = self.bits.shape
        self.ndim = self.bits.ndim

    def __dlpack__(self, **kwargs):
        _released.clear()
        key = object()
        made, _live[key] = capsule(
            self.bits, self.bits.shape, 4, 16, deleted=_Release(key), versioned=False
        )
        return made

    def __dlpack_device__(self):
        return (1, 0)

    def __array__(self, dtype=None, copy=None):
        widened = (self.bits.astype(np.uint32) << 16).view(np.float32)
        return widened if dtype is None else widened.astype(dtype)
