"""What the benchmark times: the operations, the logits and the grids of (V, B),
and the logit processors' rows and inputs.

Rows are synthetic (``peaked``, ``flat``) or read from a ``.npy`` file a user
saved from a model (`SavedRows`).  Every case gets a pool of distinct rows
(`make_pool`) that the timed loops go through, so that no call sees the rows
of the call before it (benchmarks/README.md says why); in the logit-processors
section each batch of the pool also has its own histories and bitmasks
(`processor_pool`).
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


# ----------------------------------------------------------------------------
# The logit-processors section: one sampling step of a server, with each row's
# history, biases and grammar bitmask

# Its own grids: the default run's, and with --full two vocabularies (Llama 2's,
# Llama 3's) at one row and at a server's batch of 64 (not in the default run: the
# PyTorch pipeline alone takes over half a second a call there on two cores);
# --vocab and --batch override them as they override the table's
PROCESSOR_GRIDS = {
    "quick": {"vocabs": GRIDS["quick"]["vocabs"], "batches": GRIDS["quick"]["batches"]},
    "full": {"vocabs": (32000, 128256), "batches": (1, 64)},
}
PROCESSOR_KIND = "peaked"
PROCESSOR_OUTPUT_LEN = 2048  # tokens each row has generated so far
PROCESSOR_PROMPT_LEN = 256
PROCESSOR_ZIPF = 1.1  # the histories' token ranks follow this Zipf law: counts > 1 occur
PROCESSOR_BIASES = 16  # entries of the logit_bias mapping: about half negative, one -inf
PROCESSOR_NARROW = 20  # tokens the narrow bitmask allows in each row
PENALTIES = {"repetition_penalty": 1.1, "frequency_penalty": 0.3, "presence_penalty": 0.2}

# The call timed, with or without processors: the step's offset is the output's length
PROCESSOR_SAMPLING = {
    "top_k": 50,
    "top_p": 0.9,
    "seed": SAMPLE_SEED,
    "offset": PROCESSOR_OUTPUT_LEN,
}


@dataclass(frozen=True)
class ProcessorRow:
    """One row of the processors section: the sample call with the processors in
    `parts` (among ``"penalties"``, ``"biases"``, ``"bitmask half"``, ``"bitmask
    narrow"``), shown as `label`; with `kept`, a step of ``tokenpick.Sampler``
    instead, its requests holding those processors (their tallies kept between
    steps), compared with a step of requests without them."""

    label: str
    parts: tuple = ()
    kept: bool = False


PROCESSORS_NONE = ProcessorRow("none")
PROCESSORS_ALL = ProcessorRow("all", ("penalties", "biases", "bitmask half"))
KEPT_NONE = ProcessorRow("Sampler.step: none", kept=True)
KEPT_ALL = ProcessorRow("Sampler.step: all", PROCESSORS_ALL.parts, kept=True)
PROCESSOR_ROWS = (
    PROCESSORS_NONE,  # the baseline of the section's ratios
    PROCESSORS_ALL,
    ProcessorRow("bitmask half", ("bitmask half",)),
    ProcessorRow(f"bitmask {PROCESSOR_NARROW} tokens", ("bitmask narrow",)),
    ProcessorRow("penalties + biases", ("penalties", "biases")),
    KEPT_NONE,  # the baseline of the kept rows' ratios
    KEPT_ALL,
)


@dataclass(frozen=True, eq=False)
class ProcessorInputs:
    """The processors' arguments for one ``(B, V)`` batch of logits.

    Attributes
    ----------
    prompt_ids, output_ids : numpy.ndarray
        int64, ``(B, PROCESSOR_PROMPT_LEN)`` and ``(B, PROCESSOR_OUTPUT_LEN)``.
    logit_bias : dict
        ``{token_id: bias}`` for every row.
    half_bitmask, narrow_bitmask : numpy.ndarray
        int32, ``(B, ceil(V / 32))``, in xgrammar's layout; the bits past V are set,
        as xgrammar's own bitmasks have them (its CPU kernel needs them so).
    """

    prompt_ids: np.ndarray
    output_ids: np.ndarray
    logit_bias: dict
    half_bitmask: np.ndarray
    narrow_bitmask: np.ndarray

    def kwargs(self, parts):
        """The processor keywords of ``tokenpick.sample`` for the processors in `parts`."""
        kwargs = {}
        if "penalties" in parts:
            kwargs.update(prompt_ids=self.prompt_ids, output_ids=self.output_ids, **PENALTIES)
        if "biases" in parts:
            kwargs["logit_bias"] = self.logit_bias
        if "bitmask half" in parts:
            kwargs["token_bitmask"] = self.half_bitmask
        if "bitmask narrow" in parts:
            kwargs["token_bitmask"] = self.narrow_bitmask
        return kwargs


def zipf_ids(V):
    """A function ``draw(rng, n)`` of `n` token ids whose ranks follow a Zipf law
    of exponent `PROCESSOR_ZIPF` over V tokens, ranked in a fixed random order:
    as in text, a few tokens come back often and most never."""
    rng = np.random.default_rng([DATA_SEED, V])
    by_rank = rng.permutation(V)
    cdf = np.cumsum(np.arange(1, V + 1, dtype=np.float64) ** -PROCESSOR_ZIPF)
    cdf /= cdf[-1]

    def draw(rng, n):
        return by_rank[np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), V - 1)]

    return draw


def bitmask_row(allowed, V):
    """Pack a boolean ``(V,)`` allowed set into ``ceil(V / 32)`` int32 words, bit
    ``j % 32`` of word ``j // 32`` for token j, with every bit past V set."""
    W = -(-V // 32)
    bits = np.ones(32 * W, dtype=bool)
    bits[:V] = allowed
    weights = np.uint32(1) << np.arange(32, dtype=np.uint32)
    return (bits.reshape(W, 32) * weights).sum(axis=1, dtype=np.uint32).view(np.int32)


def half_allowed(rng, V, keep):
    """About half the vocabulary, at random, with token `keep` always in it."""
    allowed = rng.random(V) < 0.5
    allowed[keep] = True
    return allowed


def narrow_allowed(rng, V, keep):
    """`PROCESSOR_NARROW` tokens at random (all of a smaller vocabulary), `keep` among them."""
    allowed = np.zeros(V, dtype=bool)
    allowed[rng.choice(V, size=min(PROCESSOR_NARROW, V), replace=False)] = True
    if not allowed[keep]:
        allowed[np.flatnonzero(allowed)[0]] = False
        allowed[keep] = True
    return allowed


def processor_bias(V):
    """The logit_bias mapping of vocabulary V: `PROCESSOR_BIASES` tokens (fewer for
    V <= 16), the first banned (-inf), then negative and positive biases in turn."""
    rng = np.random.default_rng([DATA_SEED, V, 1])
    ids = rng.choice(V, size=min(PROCESSOR_BIASES, V - 1), replace=False)
    biases = np.where(np.arange(len(ids)) % 2 == 1, 1.0, -1.0) * rng.uniform(0.5, 8.0, len(ids))
    mapping = {int(j): float(b) for j, b in zip(ids, biases)}
    if mapping:
        mapping[int(ids[0])] = -np.inf
    return mapping


def processor_inputs(V, first, B, bias=None):
    """The `ProcessorInputs` of rows ``first .. first + B - 1`` of vocabulary V.

    Row ``i``'s history and bitmasks depend only on ``(V, i)``, as its logits do
    on ``(kind, V, i)`` (`make_logits`); `bias` (default: `processor_bias`) is
    every row's.  Each bitmask keeps one token that no -inf bias bans, so that no
    row is left with nothing to choose.
    """
    bias = processor_bias(V) if bias is None else bias
    banned = {j for j, b in bias.items() if b == -np.inf}
    draw = zipf_ids(V)
    prompts, outputs, halves, narrows = [], [], [], []
    for i in range(first, first + B):
        rng = np.random.default_rng([DATA_SEED, V, 2, i])
        prompts.append(draw(rng, PROCESSOR_PROMPT_LEN))
        outputs.append(draw(rng, PROCESSOR_OUTPUT_LEN))
        keep = int(rng.integers(V))
        while keep in banned:
            keep = (keep + 1) % V
        halves.append(bitmask_row(half_allowed(rng, V, keep), V))
        narrows.append(bitmask_row(narrow_allowed(rng, V, keep), V))
    return ProcessorInputs(
        prompt_ids=np.array(prompts, dtype=np.int64),
        output_ids=np.array(outputs, dtype=np.int64),
        logit_bias=bias,
        half_bitmask=np.array(halves),
        narrow_bitmask=np.array(narrows),
    )


def processor_pool(V, B):
    """The batches of one case of the processors section and their inputs:
    ``(pool, inputs)``, `make_pool`'s batches of `PROCESSOR_KIND` logits and one
    `ProcessorInputs` per batch (each row its own history and bitmasks)."""
    pool = make_pool(PROCESSOR_KIND, V, B)
    bias = processor_bias(V)
    return pool, [processor_inputs(V, j * B, B, bias) for j in range(len(pool))]


def processor_cases(settings):
    """Yield ``(V, B)`` for every case of the processors section."""
    grid = settings["processors"]
    for V in grid["vocabs"]:
        for B in grid["batches"]:
            yield V, B
