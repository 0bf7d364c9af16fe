"""What the benchmark times: the operations, the logits and the grids of (V, B).

Rows are synthetic (``peaked``, ``flat``) or read from a ``.npy`` file a user
saved from a model (`SavedRows`).  Every case gets a pool of distinct rows
(`make_pool`) that the timed loops go through, so that no call sees the rows
of the call before it (benchmarks/README.md says why).
"""

import argparse
import os
from dataclasses import dataclass, field, replace

import numpy as np

# The grids of (V, B): the default run and --full
GRIDS = {
    "quick": {"vocabs": (128256,), "batches": (1, 8), "min_time": 0.02},
    "full": {"vocabs": (32000, 128256, 262144), "batches": (1, 8, 64), "min_time": 0.2},
}
SCALING_MIN_BATCH = 64  # from this B on, tokenpick is also timed at one thread

OVERHEAD_V = 256  # the call-overhead section: one 1-D row of this many logits
OVERHEAD_KIND = "peaked"
OVERHEAD_OFFSET = 7  # the decoding step passed as `offset`
OVERHEAD_MIN_TIME = 0.01  # its --min-time, unless --min-time is less

PY_THREADS_V = 128256  # the Python-threads section: one 1-D row of this many logits
PY_THREADS_COUNTS = (1, 2)
PY_THREADS_REPEATS = 5  # repeats of each count, interleaved
PY_THREADS_MIN_TIME = 0.1  # seconds per repeat, unless --min-time is less

# A case's logits come in as many batches as hold this many bytes, at most
# POOL_MAX_BATCHES of them (short rows would need thousands)
POOL_BYTES = 8 << 20
POOL_MAX_BATCHES = 64

DATA_SEED = 20240601
SAMPLE_SEED = 1234
PEAKED_HEAD = 300  # tokens boosted in "peaked" logits


# ----------------------------------------------------------------------------
# Operations


@dataclass(frozen=True)
class Op:
    """One benchmarked operation: ``tokenpick.<func>(logits, **kwargs)``, shown as `label`."""

    label: str
    func: str
    kwargs: dict = field(default_factory=dict)


_SAMPLING = {"temperature": 0.8, "seed": SAMPLE_SEED}

SAMPLE_T = Op("sample T=0.8", "sample", _SAMPLING)
SAMPLE_P = Op("sample top_p=0.9", "sample", {**_SAMPLING, "top_p": 0.9})
SAMPLE_ALL = Op(
    "sample k=50 p=0.9 min_p=0.05",
    "sample",
    {**_SAMPLING, "top_k": 50, "top_p": 0.9, "min_p": 0.05},
)

OPS = (
    Op("greedy", "greedy"),
    Op("softmax", "softmax"),
    SAMPLE_T,
    Op("sample top_k=50", "sample", {**_SAMPLING, "top_k": 50}),
    SAMPLE_P,
    SAMPLE_ALL,
)

# The call-overhead section's calls: as a generation loop makes them, seed and step
OVERHEAD_OPS = tuple(
    replace(op, kwargs={**op.kwargs, "offset": OVERHEAD_OFFSET}) for op in (SAMPLE_T, SAMPLE_ALL)
)

# The Python-threads section's calls
PY_THREADS_OPS = (SAMPLE_T, SAMPLE_P)


# ----------------------------------------------------------------------------
# Logits


def peaked_row(rng, V):
    """One LM-like float32 row: ``2 * N(0, 1)``, plus ``18 - 2.5 log(rank)`` on
    `PEAKED_HEAD` tokens, so that a handful of tokens hold most of the mass."""
    x = 2.0 * rng.standard_normal(V)
    n = min(PEAKED_HEAD, V)
    head = rng.choice(V, size=n, replace=False)
    x[head] += 18.0 - 2.5 * np.log(np.arange(1, n + 1))
    return x.astype(np.float32)


def flat_row(rng, V):
    """One float32 row of N(0, 1) logits, whose top-p nucleus holds most of the vocabulary."""
    return rng.standard_normal(V, dtype=np.float32)


ROW_GENERATORS = {"peaked": peaked_row, "flat": flat_row}
LOGIT_KINDS = tuple(ROW_GENERATORS)


@dataclass(frozen=True, eq=False)
class SavedRows:
    """Logits read from a ``.npy`` file, labelled by the file's stem.

    Attributes
    ----------
    label : str
        The file name without ``.npy``, shown in the table's logits column.
    path : str
        The file, as given.
    rows : numpy.ndarray
        C-contiguous float32, ``(R, V)``.
    """

    label: str
    path: str
    rows: np.ndarray

    @property
    def V(self):
        """The file's vocabulary size."""
        return self.rows.shape[1]

    def take(self, n):
        """The first `n` rows, cycling through the file's if it has fewer."""
        if n <= len(self.rows):
            return self.rows[:n]
        return self.rows[np.arange(n) % len(self.rows)]

    def describe(self):
        """JSON-ready: where the rows come from and their shape."""
        return {"path": self.path, "rows": len(self.rows), "V": self.V}


def load_rows(path):
    """Read a ``(R, V)`` or ``(V,)`` array of float logits from a ``.npy`` file.

    Raises
    ------
    ValueError
        With a message for the user: the file is missing or unreadable, or
        its array is not 1-D or 2-D floats, is empty, or has a row that
        tokenpick would refuse (NaN, ``+inf``, all ``-inf``).
    """
    if not os.path.isfile(path):
        raise ValueError(
            f"{path}: no such file (and not a kind of synthetic logits: {', '.join(LOGIT_KINDS)})"
        )
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        reason = str(exc).split(". ")[0]  # numpy's advice on pickles is beside the point
        raise ValueError(f"{path}: not a .npy array of logits ({reason})") from None
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{path}: an .npz archive, not a .npy array of logits")
    if array.ndim not in (1, 2):
        raise ValueError(f"{path}: an array of shape {array.shape}; logits are (V,) or (B, V)")
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{path}: {array.dtype} values; logits are floating-point")
    if array.size == 0:
        raise ValueError(f"{path}: an empty array of shape {array.shape}")
    rows = np.ascontiguousarray(array.reshape(-1, array.shape[-1]), dtype=np.float32)
    checks = (
        ("holds NaN", np.isnan(rows).any(axis=1)),
        ("holds +inf", (rows == np.inf).any(axis=1)),
        ("is all -inf", (rows == -np.inf).all(axis=1)),
    )
    for what, bad in checks:
        if bad.any():
            where = np.flatnonzero(bad)
            raise ValueError(
                f"{path}: row {where[0]} {what}, which tokenpick refuses "
                f"({len(where)} of its {len(rows)} rows)"
            )
    return rows


def logits_source(text):
    """argparse type of ``--logits``: a kind of synthetic logits, or a `SavedRows`."""
    if text in ROW_GENERATORS:
        return text
    try:
        rows = load_rows(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    stem = os.path.basename(text)
    return SavedRows(stem[:-4] if stem.endswith(".npy") else stem, text, rows)


def source_label(source):
    """The label of a kind of synthetic logits or of `SavedRows`."""
    return source.label if isinstance(source, SavedRows) else source


def make_logits(kind, V, B):
    """A C-contiguous ``(B, V)`` float32 batch of synthetic logits of the given kind.

    Row ``i`` depends only on ``(kind, V, i)``, so a batch's first rows are the
    same whatever B is: timings of the first rows can be shared across B.
    """
    generate = ROW_GENERATORS[kind]
    return np.stack([generate(np.random.default_rng([DATA_SEED, i]), V) for i in range(B)])


def make_pool(source, V, B):
    """The batches of one case: ``(B, V)`` float32 arrays of distinct rows (but
    where a file has fewer), enough of them to hold `POOL_BYTES` (at most
    `POOL_MAX_BATCHES`).  Its first rows are the same for every B."""
    count = min(POOL_MAX_BATCHES, max(1, -(-POOL_BYTES // (4 * B * V))))
    if isinstance(source, SavedRows):
        rows = source.take(B * count)
    else:
        rows = make_logits(source, V, B * count)
    return [rows[j * B : (j + 1) * B] for j in range(count)]


def run_vocabs(settings, sources):
    """The run's V, in order: the settings', then any other of the saved rows'."""
    return list(
        dict.fromkeys([*settings["vocabs"], *(s.V for s in sources if isinstance(s, SavedRows))])
    )


def cases(settings, sources):
    """Yield ``(V, B, source)`` for every case of the run, in table order.

    Synthetic logits are timed at every V of the settings; saved rows at their
    own V only.
    """
    for V in run_vocabs(settings, sources):
        for B in settings["batches"]:
            for source in sources:
                if source.V == V if isinstance(source, SavedRows) else V in settings["vocabs"]:
                    yield V, B, source
