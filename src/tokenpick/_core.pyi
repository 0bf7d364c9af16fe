# Type stub for the compiled core.  Private: the public API is tokenpick._api,
# which checks and converts every argument before calling these.  A per-row
# parameter is a Python number (every row's value) or a 1-D array of length B;
# stats=None makes a kernel run the checking pass over every row itself.
import numpy as np
import numpy.typing as npt

SIMD_NAMES: tuple[str, ...]

# float32, float16, or the bits of bfloat16 (uint16), as tokenpick._params.as_logits gives them
Logits = npt.NDArray[np.float32] | npt.NDArray[np.float16] | npt.NDArray[np.uint16]
F64Rows = float | npt.NDArray[np.float64]
I64Rows = int | npt.NDArray[np.int64]
U64Rows = int | npt.NDArray[np.uint64]

def simd_paths() -> list[str]: ...
def simd_path() -> str: ...
def simd_emulation() -> str | None: ...
def force_simd(name: str) -> str: ...
def compiler() -> str: ...
def build_flags() -> str: ...
def plain_logits(a: object) -> bool: ...
def torch_rows(obj: object) -> Logits | None: ...
def dlpack_array(obj: object, what: str) -> tuple[np.ndarray, bool]: ...

Range = tuple[float, float, bool, bool]  # lo, hi, lo_open, hi_open

def set_filter_ranges(*ranges: Range) -> None: ...  # the 10 filters, in plain_filters' order
def set_orders(
    orders: list[tuple[str, int, list[int]]],
    on: list[tuple[int, float, int]],
    listing: list[int],
    listing_order: int,
) -> None: ...
def plain_filters(
    vocab: int,
    temperature: object,
    top_k: object,
    top_p: object,
    min_p: object,
    top_n_sigma: object,
    typical_p: object,
    epsilon: object,
    eta: object,
    xtc_threshold: object,
    xtc_probability: object,
    order: object,
) -> (
    tuple[float, int, float, float, float, float, float, float, float, float, int, bool] | None
): ...

class _RowStats: ...

def scan(x: Logits) -> _RowStats: ...
def softmax(
    x: Logits,
    stats: _RowStats | None,
    temperature: F64Rows,
    out: npt.NDArray[np.float32],
    start: int,
    stop: int,
) -> None: ...
def log_softmax(
    x: Logits,
    stats: _RowStats | None,
    temperature: F64Rows,
    out: npt.NDArray[np.float32],
    start: int,
    stop: int,
) -> None: ...
def logsumexp(
    x: Logits,
    stats: _RowStats | None,
    temperature: F64Rows,
    out: npt.NDArray[np.float32],
    start: int,
    stop: int,
) -> None: ...
def greedy(
    x: Logits, stats: _RowStats | None, out: npt.NDArray[np.int64], start: int, stop: int
) -> None: ...
def mask(
    x: Logits,
    stats: _RowStats | None,
    temperature: F64Rows,
    top_k: I64Rows,
    top_p: F64Rows,
    min_p: F64Rows,
    out: npt.NDArray[np.float32],
    start: int,
    stop: int,
) -> None: ...
def filtered_probs(
    x: Logits,
    stats: _RowStats | None,
    temperature: F64Rows,
    top_k: I64Rows,
    top_p: F64Rows,
    min_p: F64Rows,
    out: npt.NDArray[np.float32],
    start: int,
    stop: int,
) -> None: ...
def sample(
    x: Logits,
    stats: _RowStats | None,
    temperature: F64Rows,
    top_k: I64Rows,
    top_p: F64Rows,
    min_p: F64Rows,
    uniforms: F64Rows | None,
    seeds: U64Rows | None,
    offsets: U64Rows | None,
    tokens: npt.NDArray[np.int64],
    logprobs: npt.NDArray[np.float32],
    start: int,
    stop: int,
) -> None: ...

Token = np.int64 | npt.NDArray[np.int64]  # a scalar, or shape (1,) with as_arrays
Logprob = np.float32 | npt.NDArray[np.float32]

def sample_row(
    x: Logits,
    temperature: F64Rows,
    top_k: I64Rows,
    top_p: F64Rows,
    min_p: F64Rows,
    uniforms: F64Rows | None,
    seeds: U64Rows | None,
    offsets: U64Rows | None,
    return_logprob: bool,
    as_arrays: bool,
) -> Token | tuple[Token, Logprob]: ...
def top_logprobs(
    x: Logits,
    stats: _RowStats | None,
    temperature: F64Rows,
    m: int,
    ids: npt.NDArray[np.int64],
    lps: npt.NDArray[np.float32],
    start: int,
    stop: int,
) -> None: ...
def uniform(
    seeds: U64Rows, offsets: U64Rows, indices: U64Rows, out: npt.NDArray[np.float64]
) -> None: ...
def widen(x: Logits, out: npt.NDArray[np.float32]) -> None: ...

# The selections by name and the routes taken, for tests (tests/test_routes.py).
def route_names() -> list[str]: ...
def route_counts() -> dict[str, int] | None: ...
def kth_largest(x: npt.NDArray[np.float32], k: int, route: str | None = None) -> float: ...
def select_by_mass(
    v: npt.NDArray[np.float32], w: npt.NDArray[np.float32], target: float, route: str | None = None
) -> float: ...

# The logit processors of tokenpick.Sampler's requests, kept between steps (one per slot).
class KeptStore:
    def set(
        self,
        slot: int,
        counted: bool,
        prompt: npt.NDArray[np.int64] | None,
        bias_ids: npt.NDArray[np.int64] | None,
        bias_vals: npt.NDArray[np.float64] | None,
        stop: npt.NDArray[np.int64] | None,
        outputs: npt.NDArray[np.int64] | None,
    ) -> None: ...
    def clear(self, slot: int) -> None: ...
    def tokens(self, slot: int) -> int: ...
    def rows(self, slots: npt.NDArray[np.int64]) -> tuple[KeptStore, npt.NDArray[np.int64]]: ...

def plain_words(value: object, nrows: int) -> bool: ...
def sampler_advance(
    out: npt.NDArray[np.int32],
    steps: npt.NDArray[np.int64],
    slots: npt.NDArray[np.int64],
    tokens: npt.NDArray[np.int64],
    ends: npt.NDArray[np.int64],
    stops: npt.NDArray[np.int64],
    max_new: npt.NDArray[np.int64],
    reasons: npt.NDArray[np.uint8],
    kept: KeptStore | None = None,
) -> int: ...
