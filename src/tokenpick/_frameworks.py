"""Arrays as the frameworks hand them over: logits and ``out=`` read as numpy arrays.

A numpy array is taken as it is.  Anything else with ``__dlpack__`` (a torch tensor, a JAX
array, CuPy's host arrays) is read over its own memory, with no copy, through DLPack
(``tokenpick._core.dlpack_array``), after a check that it lives on the host: a tensor on a
GPU is a TypeError that says so.  A torch tensor that requires grad is read as its data, as
``.detach()`` gives it.  bfloat16, which numpy lacks (torch's, or ``ml_dtypes.bfloat16``
arrays), comes as its bits, a uint16 array, which the package's kernels read as bfloat16,
or widened exactly to float32 (for the reference).  Logits of shape ``(B, 1, V)``, a model's last
position, are read as ``(B, V)``.  Anything else goes through ``np.asarray``.

The reference (``tokenpick.reference``) reads its inputs here too, so that both see the same
values; what the package then converts to float32 is ``tokenpick._params``'s business.
"""

import sys

import numpy as np


def _torch_numpy(t):
    """t.numpy(), or None for bfloat16, which numpy lacks (asked first: torch's error
    costs 9 us), or another dtype it refuses."""
    torch = sys.modules.get("torch")
    if torch is not None and t.dtype is torch.bfloat16:
        return None
    try:
        return t.numpy()
    except (TypeError, RuntimeError, AttributeError):
        return None


def read_logits(obj, bfloat16_bits=False):
    """Logits as a numpy array of a real floating dtype and shape (V,) or (B, V) (read
    from (V,), (B, V) or (B, 1, V)), V >= 1: TypeError or ValueError otherwise, the
    errors of the package and the reference alike.  bfloat16 comes as its bits, a uint16
    array, with ``bfloat16_bits``; else widened exactly to float32."""
    a, bfloat16 = _read(obj, "logits")
    if a.ndim == 3:
        if a.shape[1] != 1:
            raise ValueError(
                "logits must be 1-D (V,), 2-D (B, V), or 3-D (B, 1, V) as a model's last "
                f"position, got shape {a.shape}"
            )
        a = a.reshape(a.shape[0], a.shape[2])
    if a.dtype.kind != "f" and not bfloat16:
        raise TypeError(f"logits must be a real floating-point array, got dtype {a.dtype}")
    if a.ndim not in (1, 2):
        raise ValueError(f"logits must be 1-D (V,), 2-D (B, V), or 3-D (B, 1, V), got {a.ndim}-D")
    if a.shape[-1] == 0:
        raise ValueError("logits has an empty vocabulary (V == 0)")
    return widen_bfloat16(a) if bfloat16 and not bfloat16_bits else a


def read_positions(obj, bfloat16_bits=False):
    """``verify``'s target logits: a numpy array of a real floating dtype and shape
    (B, K+1, V), K+1 >= 1, V >= 1, read as read_logits reads logits."""
    a, bfloat16 = _read(obj, "target_logits")
    if a.dtype.kind != "f" and not bfloat16:
        raise TypeError(f"target_logits must be a real floating-point array, got dtype {a.dtype}")
    if a.ndim != 3 or a.shape[1] == 0:
        raise ValueError(
            "target_logits must be 3-D (B, K+1, V): the target model's logits at each of K "
            f"draft positions and the bonus position after them; got shape {a.shape}"
        )
    if a.shape[2] == 0:
        raise ValueError("target_logits has an empty vocabulary (V == 0)")
    return widen_bfloat16(a) if bfloat16 and not bfloat16_bits else a


def read_floats(obj, what):
    """An array argument of real floating values (draft_probs), read as logits are:
    host tensors in place, bfloat16 widened exactly."""
    a, bfloat16 = _read(obj, what)
    if a.dtype.kind != "f" and not bfloat16:
        raise TypeError(f"{what} must be a real floating-point array, got dtype {a.dtype}")
    return widen_bfloat16(a) if bfloat16 else a


def _read(obj, what):
    """A numpy array of obj's values, and whether it holds the bits of bfloat16 ones."""
    bfloat16 = False
    if type(obj) is np.ndarray:
        a = obj
    else:
        a, bfloat16 = _foreign(obj, what)
    if _is_bfloat16(a.dtype):  # ml_dtypes': its bits
        a, bfloat16 = a.view(np.dtype(np.uint16).newbyteorder(a.dtype.byteorder)), True
    return a, bfloat16


_bfloat16_dtype = None  # ml_dtypes' bfloat16, once seen


def _is_bfloat16(dtype):
    """Whether dtype is ml_dtypes' bfloat16 (its name costs two microseconds: asked only
    of a dtype numpy does not know, and once)."""
    global _bfloat16_dtype
    if dtype is _bfloat16_dtype:
        return True
    if dtype.kind == "V" and dtype.name == "bfloat16":
        _bfloat16_dtype = dtype
        return True
    return False


def given_shape(logits, x):
    """The shape of results that follow the logits element by element: x's, or
    (B, 1, V) where the logits had that shape (x is then their (B, V) view)."""
    if x is logits or x.ndim != 2:
        return x.shape
    ndim = logits.ndim if hasattr(logits, "ndim") else np.ndim(logits)
    return (x.shape[0], 1, x.shape[1]) if ndim == 3 else x.shape


def read_out(out, shape):
    """``out=`` as a numpy array over the caller's memory (a numpy array, or a host
    tensor through DLPack), of `shape` where it is that shape, or (B, 1, V) for (B, V);
    None stays None.  Its dtype, layout and writability are the caller's to check."""
    if out is None:
        return None
    if not isinstance(out, np.ndarray):
        if not hasattr(type(out), "__dlpack__"):
            raise TypeError(
                f"out must be a numpy array or a host tensor (DLPack), got {type(out).__name__}"
            )
        if getattr(out, "requires_grad", False) is True:
            raise ValueError(
                "out requires grad: tokenpick writes into it outside autograd; pass "
                "out.detach() (which shares its memory) if that is meant"
            )
        if type(out).__module__.partition(".")[0] in ("jax", "jaxlib"):
            # immutable by contract, though its DLPack capsules may not say so
            raise ValueError("out must be writable: a JAX array is immutable")
        out, bfloat16 = _host_tensor(out, "out")
        if bfloat16:
            raise TypeError("out must have dtype float32, got bfloat16")
    if out.ndim == 3 and len(shape) == 2 and out.shape == (shape[0], 1, shape[1]):
        out = out.reshape(shape)
    return out


def _foreign(obj, what):
    """A numpy array over the memory of obj, which is not an ndarray, and whether it
    holds the bits of bfloat16 values (as _host_tensor gives them)."""
    if isinstance(obj, np.ndarray):  # a subclass: as it is
        return obj, False
    if getattr(obj, "requires_grad", False) is True and callable(getattr(obj, "detach", None)):
        obj = obj.detach()  # its data, as torch would give them without the graph
    if callable(getattr(obj, "is_neg", None)) and obj.is_neg():
        # torch's lazy negation (a view whose values are the negated memory): DLPack
        # would hand over the memory as it is
        obj = obj.resolve_neg()
    if hasattr(type(obj), "__dlpack__"):
        return _host_tensor(obj, what)
    return as_array(what, obj), False


def as_array(name, value):
    """np.asarray, with the object's own failure (e.g. a tensor on a GPU) a TypeError."""
    try:
        return np.asarray(value)
    except (TypeError, ValueError, MemoryError, RecursionError):
        raise
    except Exception as exc:
        raise TypeError(
            f"{name} could not be read as an array: {type(exc).__name__}: {exc}"
        ) from exc


def _host_tensor(obj, what):
    """A numpy array over a host tensor's memory, and whether it holds the bits of
    bfloat16 values (then of dtype uint16)."""
    on_cpu = getattr(obj, "is_cpu", None)  # torch's
    if on_cpu is False:  # torch, on a GPU (or "meta": no memory)
        raise TypeError(
            f"{what} is on the {obj.device} device; tokenpick reads host memory: move it to "
            "the CPU first (.cpu())"
        )
    if on_cpu is True and callable(getattr(obj, "numpy", None)):
        # a torch tensor on the host: its numpy() gives the same view as DLPack in a third
        # of the time (0.7 us against 2.2), for every dtype numpy has
        a = _torch_numpy(obj)
        if a is not None:
            return a, False
    from . import _core  # here: the reference reads its inputs here without the core

    try:
        a, bfloat16 = _core.dlpack_array(obj, what)
    except (TypeError, ValueError, MemoryError):
        raise
    except Exception as exc:  # the producer's own failure
        raise TypeError(
            f"{what} could not be read through DLPack: {type(exc).__name__}: {exc}"
        ) from exc
    return a, bfloat16


def widen_bfloat16(bits):
    """float32 values of bfloat16 bits (uint16), exactly: the bits are the high half of
    the float32's."""
    return (bits.astype(np.uint32) << 16).view(np.float32)
