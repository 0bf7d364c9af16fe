"""The llama.cpp peer: its CPU sampler chain, called through llama-cpp-python.

As llama.cpp's own sampling step does each time, a row is first copied into
an array of ``llama_token_data {id, logit, p}``, then the chain is applied to
it: greedy, or temperature, top-k, top-p and min-p (those the operation
enables, in tokenpick's order) and a draw seeded once with the operation's
seed.  Rows go one at a time, on one thread: llama.cpp's sampler chain is
single-threaded.  The copy is timed with the chain, as a server pays it.
"""

import ctypes
import weakref

import numpy as np

from .timing import Peer

NAME = "llama.cpp"
MIN_KEEP = 1  # top-p and min-p keep at least the most likely token, as tokenpick's do


def setup_llama(args):
    """Import llama-cpp-python's low-level bindings.

    Returns
    -------
    peer : Peer or None
        None when llama.cpp is not to be timed.
    info : dict
        JSON-ready: the ``version`` of llama-cpp-python and the ``threads`` of
        the peer (1), or why it is ``absent``.
    """
    if args.no_llama:
        return None, {"absent": "not timed (--no-llama)"}
    try:
        import llama_cpp
        from llama_cpp import llama_cpp as lib
    except (ImportError, OSError) as exc:  # OSError: a library that does not load
        return None, {"absent": f"absent ({type(exc).__name__}: {exc}), so no llama.cpp column"}
    if ctypes.sizeof(lib.llama_token_data) != 12:
        return None, {
            "absent": "llama_token_data is not {int32, float, float} in this "
            "llama-cpp-python, so no llama.cpp column"
        }
    info = {"version": getattr(llama_cpp, "__version__", "unknown"), "threads": 1}
    note = "one at a time on one thread, each copied into llama_token_data first"
    return Peer(NAME, bind_llama(lib), repeats=5, note=note, float32_only=True), info


def describe(info):
    """The header's line on llama.cpp."""
    if "version" in info:
        return (
            f"llama-cpp-python {info['version']}: llama.cpp's sampler chain, "
            "one row at a time on one thread"
        )
    return f"llama.cpp: {info['absent']}"


def bind_llama(lib):
    """A `Peer.bind` for llama.cpp: the chain of `op` is built outside the timing;
    the call applies it to every row of the logits in turn."""

    def bind(op, logits):
        return ChainOnRows(lib, samplers(lib, op), logits)

    return bind


def samplers(lib, op):
    """The new samplers of `op`'s chain (NotImplementedError for softmax: llama.cpp
    has none of its own)."""
    if op.func == "greedy":
        return [lib.llama_sampler_init_greedy()]
    if op.func != "sample":
        raise NotImplementedError(op.func)
    kw = op.kwargs
    chain = []
    if kw.get("temperature", 1.0) != 1.0:
        chain.append(lib.llama_sampler_init_temp(kw["temperature"]))
    if kw.get("top_k", 0) > 0:
        chain.append(lib.llama_sampler_init_top_k(kw["top_k"]))
    if kw.get("top_p", 1.0) < 1.0:
        chain.append(lib.llama_sampler_init_top_p(kw["top_p"], MIN_KEEP))
    if kw.get("min_p", 0.0) > 0.0:
        chain.append(lib.llama_sampler_init_min_p(kw["min_p"], MIN_KEEP))
    chain.append(lib.llama_sampler_init_dist(kw["seed"]))
    return chain


class ChainOnRows:
    """A llama.cpp sampler chain applied, when called, to each row of `logits` in turn;
    the call returns the token drawn from the last row.

    A row becomes the ``llama_token_data`` array that the chain works on, and
    reorders and shortens, in two numpy copies: of the array's fresh state
    (ids 0..V-1, p 0), then of the logits into their field.
    """

    def __init__(self, lib, chain_samplers, logits):
        params = lib.llama_sampler_chain_default_params()
        params.no_perf = True  # no timers of its own inside ours
        self.chain = lib.llama_sampler_chain_init(params)
        weakref.finalize(self, lib.llama_sampler_free, self.chain)
        for sampler in chain_samplers:
            lib.llama_sampler_chain_add(self.chain, sampler)  # the chain owns it
        self.apply = lib.llama_sampler_apply
        self.rows = logits.reshape(-1, logits.shape[-1])
        V = self.rows.shape[1]
        self.fresh = np.zeros((V, 3), np.float32)  # {int32 id, float logit, float p}
        self.fresh[:, 0] = np.arange(V, dtype=np.int32).view(np.float32)
        self.token_data = np.empty_like(self.fresh)
        self.pointer = ctypes.cast(self.token_data.ctypes.data, lib.llama_token_data_p)
        self.array = lib.llama_token_data_array(self.pointer, V, -1, False)
        self.array_ref = ctypes.byref(self.array)

    def __call__(self):
        token_data, array, V = self.token_data, self.array, len(self.fresh)
        token = -1
        for row in self.rows:
            token_data[...] = self.fresh
            token_data[:, 1] = row
            array.data, array.size, array.selected, array.sorted = self.pointer, V, -1, False
            self.apply(self.chain, self.array_ref)
            token = array.data[array.selected].id
        return token
