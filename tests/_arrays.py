"""The one generator of logits and per-row parameters behind every comparison test.

A test case is built from a small, printable :class:`Recipe` (a numpy seed plus the
choices that matter: vocabulary size, the kind of each row, each row's parameters, the
memory layout of the array).  Hypothesis draws recipes (``cases()``), so a failing example
is shown as a recipe and shrinks to a short one; the numbers themselves come from
``numpy.random.default_rng(recipe.seed)``, so ``build(recipe)`` rebuilds the exact arrays:

    >>> from _arrays import Recipe, build          # from the tests/ directory
    >>> case = build(Recipe(seed=..., V=..., ...))  # paste the recipe pytest printed

Rows ("kinds"):
  peaked    LM-like: gumbel or normal noise times a scale, a few spikes, a common offset
  flat      N(0, 1)
  ties      values drawn from a set of one to three numbers
  masked    peaked or flat with a random fraction (10%..99.9%) set to -inf
  one_left  all -inf but one token
  huge      N(0, 1) * 1e37 with entries at +-1e38
  tiny      multiples of 1e-38 and float32 subnormals (1e-45) around 0
  offset    flat or peaked plus a large common offset (+-1e3 .. 1e5)
  and, only where asked for (``invalid=True``): nan, posinf, all_neginf.

Layouts of the array handed to the function under test:
  c32 float32 C-contiguous; f16; bf16 (bfloat16, rounded to nearest, as a DLPack producer
  hands it over: tests/_dlpack.py); f64 (values with more precision than float32); strided
  (every other column of a float32 buffer whose other columns hold NaN); fortran;
  readonly; be32 (big-endian float32); unaligned (float32 at an odd byte address);
  broadcast (one row repeated with stride 0, read-only); 1d (a single row, 1-D).
``case.x32`` is always the float32, C-contiguous, 2-D copy of what the function sees.
"""

import dataclasses
import math

import _dlpack
import numpy as np
from hypothesis import strategies as st

VOCAB_SIZES = (1, 2, 11, 97, 1536, 131072)
SMALL_VOCAB_SIZES = (1, 2, 11, 97, 1536)  # the reference sorts: 131072 only in a few fixed cases
ROW_KINDS = ("peaked", "flat", "ties", "masked", "one_left", "huge", "tiny", "offset", "decoy")
INVALID_ROW_KINDS = ("nan", "posinf", "all_neginf")
LAYOUTS = (
    "c32",
    "f16",
    "bf16",
    "f64",
    "strided",
    "fortran",
    "readonly",
    "be32",
    "unaligned",
    "broadcast",
    "1d",
)

# Parameter choices.  "rand" draws from the row's numpy stream; "V"/"V+1" are relative to V.
TEMPERATURES = (0.0, 1e-6, 1.0, 1e6, "rand", 1e-40, 1e-300, 1e-310, 1e39, 1e300)
TOP_KS = (0, -1, 1, 2, 5, 50, "V", "V+1", "rand", 2**62)
TOP_PS = (1.0, 0.9, 0.5, 1e-9, 0.999999, "rand")
MIN_PS = (0.0, 0.05, 0.5, 1.0, 1e-40, "rand", 1e-300)
TOP_N_SIGMAS = (0.0, 0.0, -1.0, 0.5, 1.0, 3.0, "rand", 1e-30, 1e30)
UNIFORM_CHOICES = ("rand", 0.0, 1.0 - 2.0**-53, 0.5)
SEED_CHOICES = ("rand", 0, 2**32 - 1, 2**32, 2**64 - 1)
OFFSET_CHOICES = ("rand", 0, 1, 2**32 - 1, 2**32, 2**64 - 1)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Everything needed to rebuild a case; its repr is what a failing test prints."""

    seed: int
    V: int
    kinds: tuple  # one per row
    layout: str = "c32"
    temperature: tuple = (1.0,)  # one choice per row (or one for all if not per_row)
    top_k: tuple = (0,)
    top_p: tuple = (1.0,)
    min_p: tuple = (0.0,)
    top_n_sigma: tuple = (0.0,)
    per_row: bool = False  # per-row parameter arrays, or Python scalars
    use_uniforms: bool = False  # uniforms= rather than seed=/offset=
    uniform: tuple = ("rand",)
    seed_choice: tuple = ("rand",)
    offset_choice: tuple = ("rand",)
    n_top: int = 1  # n for top_logprobs, clipped to [1, V]
    param_form: str = "array"  # per-row values as: array, list, narrow, strided


@dataclasses.dataclass
class Case:
    recipe: Recipe
    logits: object  # what is passed to the function (any layout)
    x32: np.ndarray  # float32 (B, V) C-contiguous copy of what the function sees
    was_1d: bool
    temperature: object  # as passed: Python scalar or 1-D numpy array
    top_k: object
    top_p: object
    min_p: object
    seed: object  # None when use_uniforms
    offset: object
    uniforms: object  # None unless use_uniforms
    T: list  # per-row expanded values (Python floats / ints)
    K: list
    P: list
    M: list
    U: list  # per-row uniform actually used, in [0, 1)
    n_top: int
    top_n_sigma: object = 0.0  # as passed
    N: list = None  # per-row top_n_sigma (None: 0 for every row)

    @property
    def B(self):
        return self.x32.shape[0]

    @property
    def V(self):
        return self.x32.shape[1]

    def filters(self):
        return dict(
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            min_p=self.min_p,
            top_n_sigma=self.top_n_sigma,
        )

    def params(self, b):
        """Row b's filters as the reference's helpers take them: (T, k, p, m, n)."""
        return (self.T[b], self.K[b], self.P[b], self.M[b], self.N[b] if self.N else 0.0)

    def randomness(self):
        if self.uniforms is not None:
            return dict(uniforms=self.uniforms)
        return dict(seed=self.seed, offset=self.offset)

    def describe_row(self, b):
        kinds = self.recipe.kinds
        if self.recipe.layout == "broadcast":
            kinds = kinds[:1] * len(kinds)
        kind = kinds[b] if b < len(kinds) else "?"
        return (
            f"row {b} (kind {kind!r}, V={self.V}): T={self.T[b]!r} top_k={self.K[b]!r} "
            f"top_p={self.P[b]!r} min_p={self.M[b]!r} top_n_sigma={self.params(b)[4]!r} "
            f"u={self.U[b]!r}"
        )

    def __repr__(self):
        # Hypothesis prints this for a falsifying example: the recipe rebuilds everything.
        return f"build({self.recipe!r})"


# ----------------------------------------------------------------------------
# Rows.


def make_row(rng, kind, V):
    """One row of float64 values (cast to float32 by the layout, except for f64)."""
    if kind == "peaked":
        noise = rng.gumbel(size=V) if rng.random() < 0.5 else rng.standard_normal(V)
        x = noise * rng.uniform(0.5, 4.0)
        nspikes = int(rng.integers(1, min(5, V) + 1))
        idx = rng.choice(V, size=nspikes, replace=False)
        x[idx] += rng.uniform(5.0, 25.0, size=nspikes)
        return x + rng.uniform(-10.0, 30.0)
    if kind == "flat":
        return rng.standard_normal(V)
    if kind == "ties":
        values = rng.choice(
            np.array([-2.0, -0.5, 0.0, 0.25, 1.0, 3.0]), size=int(rng.integers(1, 4)), replace=False
        )
        return rng.choice(values, size=V)
    if kind == "masked":
        x = make_row(rng, "peaked" if rng.random() < 0.5 else "flat", V)
        frac = float(rng.choice([0.1, 0.5, 0.9, 0.99, 0.999]))
        dead = rng.random(V) < frac
        if dead.all():
            dead[rng.integers(V)] = False
        x[dead] = -np.inf
        return x
    if kind == "one_left":
        x = np.full(V, -np.inf)
        x[rng.integers(V)] = rng.normal(0.0, 10.0)
        return x
    if kind == "huge":
        x = rng.standard_normal(V) * 1e37
        big = rng.random(V) < 0.3
        x[big] = rng.choice(
            np.array([-1e38, 1e38, -3.4e38, 3.4e38]), size=int(big.sum()), p=[0.4, 0.4, 0.1, 0.1]
        )
        return x
    if kind == "tiny":
        return rng.choice(
            np.array([0.0, -0.0, 1e-38, -1e-38, 2e-38, -3e-38, 1e-45, -1e-45, 3e-45]), size=V
        )
    if kind == "offset":
        x = make_row(rng, "peaked" if rng.random() < 0.5 else "flat", V)
        return x + float(rng.choice([1e3, -1e3, 1e5, -1e5]))
    if kind == "decoy":
        # Flat, but the tokens the kernels' samples of a long row read are far
        # below the rest: every 32nd (a strided sample) and the runs of 16 that
        # top-p's probe takes (csrc/rows/gather.c: probe_lines).
        # Estimates from such samples are wrong, and the exact fallbacks must
        # take over.
        x = rng.standard_normal(V)
        x[::32] = -40.0
        m = min(V // 16, 4096)
        runs = (m - m % 16) // 16
        if runs:
            starts = np.arange(runs) * (V // runs)
            x[(starts[:, None] + np.arange(16)).ravel()] = -40.0
        return x
    # invalid rows
    if kind == "nan":
        x = rng.standard_normal(V)
        x[rng.integers(V)] = np.nan
        return x
    if kind == "posinf":
        x = rng.standard_normal(V)
        x[rng.integers(V)] = np.inf
        return x
    if kind == "all_neginf":
        return np.full(V, -np.inf)
    raise ValueError(f"unknown row kind {kind!r}")


def _layout(x64, layout):
    """The array handed to the function: x64 (B, V) float64 values in the given layout."""
    B, V = x64.shape
    with np.errstate(over="ignore", invalid="ignore"):
        x32 = x64.astype(np.float32)
        if layout == "c32":
            return x32
        if layout == "f16":
            return x64.astype(np.float16)
        if layout == "bf16":  # as a framework hands it over: DLPack (numpy has no bfloat16)
            return _dlpack.Bfloat16Rows(_dlpack.bfloat16_bits(x64))
        if layout == "f64":
            return x64.copy()
        if layout == "strided":
            buf = np.full(
                (B, 2 * V), np.nan, dtype=np.float32
            )  # a kernel that ignores strides sees NaN
            buf[:, ::2] = x32
            return buf[:, ::2]
        if layout == "fortran":
            return np.asfortranarray(x32)
        if layout == "readonly":
            x32.flags.writeable = False
            return x32
        if layout == "be32":
            return x64.astype(">f4")
        if layout == "unaligned":
            raw = np.zeros(x32.nbytes + 1, dtype=np.uint8)
            a = raw[1:].view(np.float32).reshape(B, V)
            a[...] = x32
            return a
        if layout == "broadcast":
            return np.broadcast_to(x32[:1], (B, V))
        if layout == "1d":
            return x32[0]
    raise ValueError(f"unknown layout {layout!r}")


def to_x32(logits):
    """The float32 (B, V) C-contiguous copy of what a function is given."""
    a = np.asarray(logits)
    with np.errstate(over="ignore", invalid="ignore"):
        a = np.ascontiguousarray(a, dtype=np.float32)
    return a.reshape(-1, a.shape[-1]) if a.ndim else a


# ----------------------------------------------------------------------------
# Parameters.


def _pick(rng, choice, V, what):
    if what == "temperature":
        return (
            float(math.exp(rng.uniform(math.log(0.05), math.log(20.0))))
            if choice == "rand"
            else float(choice)
        )
    if what == "top_k":
        if choice == "V":
            return V
        if choice == "V+1":
            return V + 1
        if choice == "rand":
            return int(rng.integers(1, V + 1))
        return int(choice)
    if what == "top_p":
        return float(rng.uniform(0.01, 1.0)) if choice == "rand" else float(choice)
    if what == "min_p":
        return float(rng.uniform(0.0, 0.3)) if choice == "rand" else float(choice)
    if what == "top_n_sigma":
        return float(rng.uniform(0.1, 3.0)) if choice == "rand" else float(choice)
    if what == "uniform":
        return float(rng.random()) if choice == "rand" else float(choice)
    if what in ("seed", "offset"):
        return int(rng.integers(0, 2**64, dtype=np.uint64)) if choice == "rand" else int(choice)
    raise ValueError(what)


PARAM_FORMS = ("array", "list", "narrow", "strided")
_NARROW = {
    "temperature": np.float32,
    "top_p": np.float32,
    "min_p": np.float32,
    "top_n_sigma": np.float32,
    "uniform": np.float32,
    "top_k": np.int32,
}


def _narrow(what, vals):
    """The values in a narrower dtype (float32 / int32) where they fit, else None."""
    dtype = _NARROW.get(what)
    if dtype is None:
        return None
    with np.errstate(over="ignore", under="ignore"):
        a = np.array(vals, dtype=np.float64).astype(dtype) if dtype is np.float32 else None
    if dtype is np.int32:
        if not all(-(2**31) <= v < 2**31 for v in vals):
            return None
        a = np.array(vals, dtype=np.int32)
    if what == "uniform":  # float32 rounding must not reach 1.0
        a = np.where(a >= 1.0, np.float32(0.99999994), a).astype(np.float32)
    return a


def _per_row(rng, choices, B, V, what, per_row, dtype, form="array"):
    """(value as passed, per-row expanded list)."""
    choices = tuple(choices) or ("rand",)
    if per_row:
        vals = [_pick(rng, choices[b % len(choices)], V, what) for b in range(B)]
        if form == "list":
            return list(vals), vals
        if form == "narrow":
            a = _narrow(what, vals)
            if a is not None:
                return a, a.tolist()
        a = np.array(vals, dtype=dtype)
        if form == "strided":
            a = np.repeat(a, 2)[::2]
        return a, vals
    v = _pick(rng, choices[0], V, what)
    if form == "narrow":
        a = _narrow(what, [v])
        if a is not None:
            return a[0], [a[0].item()] * B  # a numpy scalar
        return np.uint64(v) if what in ("seed", "offset") else v, [v] * B
    return v, [v] * B


def build(recipe):
    """Rebuild the Case a Recipe describes (deterministic)."""
    rng = np.random.default_rng(recipe.seed)
    V = recipe.V
    kinds = list(recipe.kinds)
    layout = recipe.layout
    if layout == "1d":
        kinds = kinds[:1] or ["flat"]
    B = len(kinds)
    if layout == "broadcast" and B:
        row = make_row(rng, kinds[0], V)
        x64 = np.tile(row, (B, 1))
    else:
        x64 = np.stack([make_row(rng, k, V) for k in kinds]) if B else np.empty((0, V))
    logits = _layout(x64, layout)
    x32 = to_x32(logits)
    per_row = recipe.per_row
    form = recipe.param_form
    temperature, T = _per_row(
        rng, recipe.temperature, B, V, "temperature", per_row, np.float64, form
    )
    top_k, K = _per_row(rng, recipe.top_k, B, V, "top_k", per_row, np.int64, form)
    top_p, P = _per_row(rng, recipe.top_p, B, V, "top_p", per_row, np.float64, form)
    min_p, M = _per_row(rng, recipe.min_p, B, V, "min_p", per_row, np.float64, form)
    top_n_sigma, N = _per_row(
        rng, recipe.top_n_sigma, B, V, "top_n_sigma", per_row, np.float64, form
    )
    seed = offset = uniforms = None
    if recipe.use_uniforms:
        uniforms, U = _per_row(rng, recipe.uniform, B, V, "uniform", per_row, np.float64, form)
    else:
        seed, S = _per_row(rng, recipe.seed_choice, B, V, "seed", per_row, np.uint64, form)
        offset, F = _per_row(rng, recipe.offset_choice, B, V, "offset", per_row, np.uint64, form)
        U = [_philox_uniform(s, o) for s, o in zip(S, F)]
    return Case(
        recipe=recipe,
        logits=logits,
        x32=x32,
        was_1d=(layout == "1d"),
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        min_p=min_p,
        top_n_sigma=top_n_sigma,
        seed=seed,
        offset=offset,
        uniforms=uniforms,
        T=T,
        K=K,
        P=P,
        M=M,
        N=N,
        U=U,
        n_top=max(1, min(recipe.n_top, V)),
    )


def _philox_uniform(seed, offset):
    from tokenpick import reference

    return float(reference.uniform(int(seed), int(offset)))


# ----------------------------------------------------------------------------
# Hypothesis.


@st.composite
def recipes(
    draw,
    vocab_sizes=SMALL_VOCAB_SIZES,
    min_rows=1,
    max_rows=5,
    layouts=LAYOUTS,
    kinds=ROW_KINDS,
    invalid=False,
    param_forms=PARAM_FORMS,
):
    seed = draw(st.integers(0, 2**32 - 1))
    V = draw(st.sampled_from(vocab_sizes))
    row_kinds = kinds + (INVALID_ROW_KINDS if invalid else ())
    B = draw(st.integers(min_rows, max_rows))
    kinds_ = tuple(draw(st.lists(st.sampled_from(row_kinds), min_size=B, max_size=B)))
    nparam = max(B, 1)

    def choices(options):
        return tuple(draw(st.lists(st.sampled_from(options), min_size=nparam, max_size=nparam)))

    return Recipe(
        seed=seed,
        V=V,
        kinds=kinds_,
        layout=draw(st.sampled_from(layouts)),
        temperature=choices(TEMPERATURES),
        top_k=choices(TOP_KS),
        top_p=choices(TOP_PS),
        min_p=choices(MIN_PS),
        top_n_sigma=choices(TOP_N_SIGMAS),
        per_row=draw(st.booleans()),
        use_uniforms=draw(st.booleans()),
        uniform=choices(UNIFORM_CHOICES),
        seed_choice=choices(SEED_CHOICES),
        offset_choice=choices(OFFSET_CHOICES),
        n_top=draw(st.integers(1, 12)),
        param_form=draw(st.sampled_from(param_forms)),
    )


def cases(**kwargs):
    """Hypothesis strategy of built Cases (see recipes() for the keyword arguments)."""
    return recipes(**kwargs).map(build)


# A few fixed recipes with the big vocabulary (V = 131072): the reference sorts, so these
# stay few and small in B.
BIG_RECIPES = [
    Recipe(
        seed=1,
        V=131072,
        kinds=("peaked", "flat"),
        per_row=True,
        temperature=(1.0, 0.7),
        top_k=(50, 0),
        top_p=(0.9, 0.95),
        min_p=(0.0, 0.05),
    ),
    Recipe(
        seed=2,
        V=131072,
        kinds=("flat", "masked"),
        per_row=True,
        temperature=(1.0, 1e-6),
        top_k=(0, 1000),
        top_p=(0.5, 1.0),
        min_p=(0.0, 0.0),
        use_uniforms=True,
        uniform=("rand", 0.0),
    ),
    Recipe(
        seed=3,
        V=131072,
        kinds=("ties", "huge"),
        per_row=True,
        temperature=(1.0, 1e6),
        top_k=(5, "rand"),
        top_p=(0.9, "rand"),
        min_p=("rand", 0.5),
    ),
    Recipe(
        seed=4,
        V=131072,
        kinds=("tiny",),
        layout="1d",
        temperature=(1e-6,),
        top_k=(0,),
        top_p=(0.999999,),
        min_p=(1e-40,),
    ),
    Recipe(
        seed=5,
        V=131072,
        kinds=("offset", "peaked"),
        layout="strided",
        per_row=False,
        temperature=(0.0,),
        top_k=("V",),
        top_p=(1.0,),
        min_p=(0.0,),
    ),
    Recipe(
        seed=7,
        V=131072,
        kinds=("decoy", "decoy"),
        per_row=True,
        temperature=(1.0, 2.0),
        top_k=(0, 0),
        top_p=(0.9, 0.5),
        min_p=(0.0, 0.0),
    ),
    Recipe(
        seed=6,
        V=131072,
        kinds=("one_left", "peaked"),
        layout="f16",
        per_row=True,
        temperature=("rand", 1.0),
        top_k=(-1, 2),
        top_p=("rand", 1e-9),
        min_p=(1.0, 0.05),
        n_top=12,
    ),
]


def typical_calls(tp):
    """One ordinary call of each public function of `tp` that takes logits, as
    ``{name: f(logits)}``: for tests that need every function exercised, not compared."""
    return {
        "softmax": lambda x: tp.softmax(x, 0.7),
        "log_softmax": lambda x: tp.log_softmax(x),
        "logsumexp": lambda x: tp.logsumexp(x, 1.5),
        "greedy": tp.greedy,
        "mask": lambda x: tp.mask(x, top_k=40, top_p=0.9),
        "filtered_probs": lambda x: tp.filtered_probs(x, top_p=0.8, min_p=0.01),
        "sample": lambda x: tp.sample(
            x, top_k=20, top_p=0.9, seed=11, offset=3, return_logprobs=True
        ),
        "top_logprobs": lambda x: tp.top_logprobs(x, 4),
    }
