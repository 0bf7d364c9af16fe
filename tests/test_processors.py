"""The package's logit processors against tokenpick.reference, on every SIMD path.

``process_logits``, ``token_logprobs`` and the processor keywords of ``mask``,
``filtered_probs`` and ``sample`` (bitmask, biases, histories, penalties, min_tokens with
stop ids), on generated inputs, with the pass rule of tests/_compare.py:

* ``process_logits`` bitwise equal to the reference's (which is float32, rounded once);
* the filters judged on the processed row: each checker of tests/_compare.py runs on a
  copy of the case whose float32 row (``x32``) is the reference's processed row, with the
  processor arguments bound to both sides -- so ``mask`` is that row (bitwise) where kept,
  ``filtered_probs`` is within tolerance, ``sample`` draws the same token but where u * total
  lies within 1e-6 of a boundary, and its logprob is the processed one;
* ``token_logprobs`` within the log-domain tolerance of the reference, and bitwise equal to
  the package's own ``log_softmax`` at those tokens;
* errors: both sides raise the same type (only valid arguments are drawn here: the errors of
  the arguments are tests/test_errors.py's business; the errors drawn are a row left with no
  token and a processed logit beyond float32's range).

Then what must hold bitwise: a row alone or in a batch, on one thread or two, on any SIMD
path; the forms of an argument (padded or ragged histories, shared or per-row bitmask and
parameters) among themselves; ``out=`` in place and out of place, and untouched by a call
that raises.  xgrammar's ``apply_token_bitmask_inplace`` bans what ``token_bitmask`` bans,
where xgrammar and torch are installed.  A Hypothesis test draws the processors' shapes and
forms at small V.

Inputs come from a numpy seed (the ``seed`` fixture, printed with a failure) or, for the
Hypothesis test, a drawn ``Spec`` and ``Recipe`` (printed with the falsifying example).
"""

import dataclasses
import functools
import inspect
import types
import warnings

import _arrays
import _compare as C
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tokenpick as tp
from tokenpick import _core, _threads
from tokenpick import reference as ref

F32 = np.float32
NEG = -np.inf
F32_MAX = float(np.finfo(np.float32).max)
FILTERS = ("mask", "filtered_probs", "sample")
PROCESSORS = (
    "token_bitmask",
    "logit_bias",
    "prompt_ids",
    "output_ids",
    "repetition_penalty",
    "frequency_penalty",
    "presence_penalty",
    "min_tokens",
    "stop_ids",
)

# the float64 oracle overflows, by design, at extreme temperatures and biases
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")


# ----------------------------------------------------------------------------
# The processors of a batch: drawn row by row (RowProcs), then written in one of the
# accepted forms (assemble).


@dataclasses.dataclass(frozen=True)
class Spec:
    """Which processors are on, and in which form; a failing Hypothesis example prints it."""

    density: object = None  # bitmask: None (off), "one", "all" or a fraction of allowed bits
    width: int = 0  # words added to ceil(V / 32): < 0 bans the tail, > 0 has bits past V
    mask_dtype: str = "int32"  # or "uint32"
    shared_mask: bool = False  # (W,) for every row, or (B, W)
    bias: str = "off"  # off, shared (one mapping), per_row (B mappings or None)
    extreme: bool = False  # biases up to +-1e300: underflow (a ban) and overflow (an error)
    history: str = "off"  # off, padded, scattered, ragged_arrays, ragged_lists
    penalties: str = "off"  # off, scalar, per_row
    min_tokens: str = "off"  # off, met, unmet, mixed
    stop_form: str = "shared"  # shared (one 1-D list), per_row (B lists), padded (B, L)


DENSITIES = ("one", 0.001, 0.05, 0.5, 0.95, "all")
WIDTHS = (0, 0, 1, 3, -1, -2)
HISTORY_FORMS = ("padded", "scattered", "ragged_arrays", "ragged_lists")
SPEC_CHOICES = dict(
    density=(None, None, "one", 0.001, 0.05, 0.3, 0.5, 0.5, 0.95, "all"),
    width=WIDTHS,
    mask_dtype=("int32", "uint32"),
    shared_mask=(False, True),
    bias=("off", "shared", "per_row"),
    extreme=(False, False, True),
    history=("off",) + HISTORY_FORMS,
    penalties=("off", "scalar", "per_row"),
    min_tokens=("off", "met", "unmet", "mixed"),
    stop_form=("shared", "per_row", "padded"),
)


def _pick(rng, options):
    return options[int(rng.integers(len(options)))]


def random_spec(rng):
    return Spec(**{k: _pick(rng, v) for k, v in SPEC_CHOICES.items()})


def specs():
    return st.builds(Spec, **{k: st.sampled_from(v) for k, v in SPEC_CHOICES.items()})


@dataclasses.dataclass
class RowProcs:
    """One row's processors in plain form; a row's ids may hold -1 (padding)."""

    bits: object = None  # bool (32 * W,): the allowed bits, or None
    bias: object = None  # {id: bias}, or None
    prompt: object = None  # list of ids, or None
    output: object = None
    rep: float = 1.0
    freq: float = 0.0
    pres: float = 0.0
    min_tokens: int = 0
    stop: object = None  # list of ids, or None


ORDINARY_BIASES = ("normal", NEG, 0.0, -0.0, 1.0000001, 25.0, -25.0, 1e-40, 100.0)
EXTREME_BIASES = (1e30, -1e30, 3e38, -3e38, 1e39, -1e39, 1e300, -1e300)


def _safe_for_survivor(b):
    """A bias that can neither ban a token nor take it beyond float32's range."""
    return b != NEG and abs(b) < 1e31


def _bias_value(rng, extreme):
    b = _pick(rng, ORDINARY_BIASES + (EXTREME_BIASES if extreme else ()))
    return float(rng.normal(0.0, 3.0)) if b == "normal" else b


def _survivors(rng, x, limit):
    """One token per row that no drawn ban touches: finite and below ``limit`` (the
    bitmask's 32 * W); the row's largest such or a random one.  None if a row has none."""
    out = []
    for row in x:
        ok = np.flatnonzero(np.isfinite(row[:limit]))
        if not ok.size:
            if limit < row.size:
                return None
            ok = np.zeros(1, dtype=np.int64)  # an invalid row (float16's +inf): both raise
        out.append(int(ok[np.argmax(row[ok])] if rng.random() < 0.5 else rng.choice(ok)))
    return out


def _with_padding(rng, ids):
    """The ids with -1 (padding) put in at random places."""
    ids = list(ids)
    for _ in range(int(rng.integers(0, 3))):
        ids.insert(int(rng.integers(0, len(ids) + 1)), -1)
    return ids


def draw_rows(rng, x32, spec):
    """Each row's processors for the float32 rows x32 (B, V), as spec says: every row keeps
    at least one token that no ban touches (its survivor), so that a row is left with no
    token only where an extreme bias or a penalty takes its survivor out of float32's range
    (an error both sides must raise)."""
    B, V = x32.shape
    W0 = -(-V // 32)
    W = max(1, W0 + spec.width)
    limit = min(V, 32 * W) if spec.density is not None else V
    surv = _survivors(rng, x32, limit)
    if surv is None:  # a row with no finite token below 32 * W: the full width
        W, limit = W0, V
        surv = _survivors(rng, x32, limit)
    rows = [RowProcs() for _ in range(B)]
    spared = set(surv) if (spec.shared_mask or spec.bias == "shared") else None

    if spec.density is not None:

        def bits_for(survivors):
            d = spec.density
            if d == "one":
                b = np.zeros(32 * W, dtype=bool)
            elif d == "all":
                b = np.ones(32 * W, dtype=bool)
            else:
                b = rng.random(32 * W) < d
            b[V:] = rng.random(max(0, 32 * W - V)) < 0.5  # bits past V count for nothing
            b[list(survivors)] = True
            return b

        if spec.shared_mask:
            shared = bits_for(surv)
            for r in rows:
                r.bits = shared
        else:
            for r, s in zip(rows, surv):
                r.bits = bits_for([s])

    # a small pool of ids per row, so that histories repeat and overlap the biases
    top = [np.argsort(-np.nan_to_num(row, neginf=-F32_MAX), kind="stable")[:3] for row in x32]
    pools = [
        np.unique(np.concatenate([t, [s], rng.integers(0, V, 5)])).tolist()
        for t, s in zip(top, surv)
    ]

    if spec.bias != "off":

        def bias_for(pool, protect):
            n = int(rng.integers(0, min(V, 8) + 1))
            cand = pool + rng.integers(0, V, 4).tolist()
            ids = {int(i) for i in rng.choice(cand, n)} if n else set()
            out = {}
            for i in sorted(ids):
                b = _bias_value(rng, spec.extreme)
                if i in protect and not _safe_for_survivor(b):
                    b = float(rng.normal(0.0, 3.0))
                out[i] = b
            return out

        if spec.bias == "shared":
            shared = bias_for(sorted(set().union(*pools)), spared)
            for r in rows:
                r.bias = shared
        else:
            for r, pool, s in zip(rows, pools, surv):
                m = bias_for(pool, {s})
                r.bias = m if (m or rng.random() < 0.5) else None

    n_out = [0] * B
    if spec.history != "off":
        which = _pick(rng, ("both", "both", "prompt", "output"))
        for b, (r, pool) in enumerate(zip(rows, pools)):
            if which != "output":
                r.prompt = [int(i) for i in rng.choice(pool, int(rng.integers(0, 13)))]
            if which != "prompt":
                r.output = [int(i) for i in rng.choice(pool, int(rng.integers(0, 17)))]
                n_out[b] = len(r.output)

    if spec.penalties != "off":

        def penalties():
            rep = _pick(rng, (1.0, 1.3, 0.77, 2.0, "rand"))
            freq = _pick(rng, (0.0, 0.5, -0.5, "rand"))
            pres = _pick(rng, (0.0, 1.0, -1.0, "rand"))
            return (
                float(rng.uniform(0.5, 2.0)) if rep == "rand" else rep,
                float(rng.uniform(-2.0, 2.0)) if freq == "rand" else freq,
                float(rng.uniform(-2.0, 2.0)) if pres == "rand" else pres,
            )

        shared = penalties()
        for r in rows:
            r.rep, r.freq, r.pres = shared if spec.penalties == "scalar" else penalties()

    if spec.min_tokens != "off" or rng.random() < 0.3:  # stop ids are read even when unused

        def stop_for(pool, argmaxes, protect):
            cand = [i for i in pool + argmaxes if i not in protect]
            n = int(rng.integers(0, min(len(cand), 4) + 1))
            return [int(i) for i in rng.choice(cand, n, replace=False)] if n else []

        argmaxes = [int(t[0]) for t in top]
        if spec.stop_form == "shared":
            shared = stop_for(sorted(set().union(*pools)), argmaxes, set(surv))
            for r in rows:
                r.stop = shared
        else:
            for r, pool, s in zip(rows, pools, surv):
                r.stop = stop_for(pool, argmaxes, {s})
        mode = spec.min_tokens
        for r, n in zip(rows, n_out):
            m = _pick(rng, ("met", "unmet")) if mode == "mixed" else mode
            if m == "met":
                r.min_tokens = int(rng.integers(0, n + 1))
            elif m == "unmet":
                r.min_tokens = n + int(rng.integers(1, 4))
    return rows


def _pack(bits):
    """Allowed bits (..., 32 W) as uint32 words, token j at bit j % 32 of word j // 32."""
    return np.packbits(bits, axis=-1, bitorder="little").view("<u4").astype(np.uint32)


def _ids_form(lists, form, was_1d, rng):
    """Histories in one of the accepted forms (None: no history at all)."""
    if all(ids is None for ids in lists):
        return None
    lists = [ids or [] for ids in lists]
    if was_1d:
        ids = lists[0]
        if form == "padded":
            return np.array(ids + [-1] * int(rng.integers(0, 3)), dtype=np.int64)
        if form == "ragged_arrays":
            return np.array(ids, dtype=np.int32)
        return _with_padding(rng, ids)
    if form in ("padded", "scattered"):
        L = max(len(ids) for ids in lists) + int(rng.integers(0, 3))
        a = np.full((len(lists), L), -1, dtype=np.int64)
        for b, ids in enumerate(lists):
            where = (
                np.arange(len(ids))
                if form == "padded"
                else np.sort(rng.choice(L, len(ids), replace=False))
            )
            a[b, where] = ids
        return a.astype(np.int32) if rng.random() < 0.3 else a
    if form == "ragged_arrays":
        return [np.array(ids, dtype=_pick(rng, (np.int64, np.int32))) for ids in lists]
    return [_with_padding(rng, ids) for ids in lists]


def assemble(rows, spec, was_1d, rng):
    """The keyword arguments that give each row its RowProcs, in the forms spec names."""
    kw = {}
    r0 = rows[0]
    if r0.bits is not None:
        words = _pack(np.stack([r.bits for r in rows]))
        if spec.mask_dtype == "int32":
            words = words.view(np.int32)
        kw["token_bitmask"] = words[0] if (was_1d or spec.shared_mask) else words
    if any(r.bias is not None for r in rows):
        kw["logit_bias"] = r0.bias if (was_1d or spec.bias == "shared") else [r.bias for r in rows]
    for name, lists in (
        ("prompt_ids", [r.prompt for r in rows]),
        ("output_ids", [r.output for r in rows]),
    ):
        ids = _ids_form(lists, spec.history, was_1d, rng)
        if ids is not None:
            kw[name] = ids
    if spec.penalties != "off":
        for name, attr in (
            ("repetition_penalty", "rep"),
            ("frequency_penalty", "freq"),
            ("presence_penalty", "pres"),
        ):
            vals = [getattr(r, attr) for r in rows]
            if was_1d or spec.penalties == "scalar":
                kw[name] = vals[0]
            else:
                kw[name] = np.array(vals) if rng.random() < 0.7 else vals
    if any(r.stop is not None for r in rows):
        if was_1d or spec.stop_form == "shared":
            kw["stop_ids"] = list(r0.stop)
        elif spec.stop_form == "padded":
            kw["stop_ids"] = _ids_form([r.stop for r in rows], "padded", False, rng)
        else:
            kw["stop_ids"] = [list(r.stop) for r in rows]
        mins = [r.min_tokens for r in rows]
        if was_1d or len(set(mins)) == 1:
            kw["min_tokens"] = mins[0]
        else:
            kw["min_tokens"] = np.array(mins, dtype=np.int64)
    return kw


def describe(kw):
    """The processor arguments, short enough for a failure message."""
    parts = []
    for k, v in kw.items():
        if isinstance(v, np.ndarray) and v.size > 12:
            v = f"{v.dtype}{v.shape} {np.array2string(v.ravel()[:12], separator=',')}..."
        parts.append(f"{k}={v!r}")
    return ", ".join(parts)


# ----------------------------------------------------------------------------
# Cases: the logits and filters of tests/_arrays.py, with processors.


PROC_KINDS = _arrays.ROW_KINDS


def random_recipe(rng, V, B, layouts=("c32", "c32", "c32", "strided", "f64", "f16", "bf16")):
    """A Recipe of tests/_arrays.py: B rows of V, every parameter per row or shared."""
    layout = "1d" if B == 1 and rng.random() < 0.5 else _pick(rng, layouts)

    def choices(options):
        return tuple(_pick(rng, options) for _ in range(B))

    return _arrays.Recipe(
        seed=int(rng.integers(2**32)),
        V=V,
        kinds=tuple(_pick(rng, PROC_KINDS) for _ in range(B)),
        layout=layout,
        temperature=choices(_arrays.TEMPERATURES),
        top_k=choices(_arrays.TOP_KS),
        top_p=choices(_arrays.TOP_PS),
        min_p=choices(_arrays.MIN_PS),
        per_row=bool(rng.random() < 0.7),
        use_uniforms=bool(rng.random() < 0.5),
        uniform=choices(_arrays.UNIFORM_CHOICES),
        seed_choice=choices(_arrays.SEED_CHOICES),
        offset_choice=choices(_arrays.OFFSET_CHOICES),
    )


def case_of(x, kinds=None, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, uniforms=0.5):
    """A tests/_arrays.py Case for hand-made float32 logits (1-D or 2-D), per-row values
    given as scalars (every row) or lists."""
    x = np.asarray(x, dtype=F32)
    x2 = x.reshape(-1, x.shape[-1])
    B, V = x2.shape

    def rows(v):
        return list(v) if isinstance(v, (list, tuple)) else [v] * B

    def passed(v):
        return np.array(v) if isinstance(v, (list, tuple)) else v

    return _arrays.Case(
        recipe=_arrays.Recipe(seed=0, V=V, kinds=tuple(kinds or ("hand-made",) * B)),
        logits=x,
        x32=x2,
        was_1d=x.ndim == 1,
        temperature=passed(temperature),
        top_k=passed(top_k),
        top_p=passed(top_p),
        min_p=passed(min_p),
        seed=None,
        offset=None,
        uniforms=passed(uniforms),
        T=rows(temperature),
        K=rows(top_k),
        P=rows(top_p),
        M=rows(min_p),
        U=rows(uniforms),
        n_top=1,
    )


def bound(mod, kw, names=FILTERS):
    """mod's functions with the processor arguments kw bound: the checkers of
    tests/_compare.py call them as they call the plain ones."""
    return types.SimpleNamespace(**{n: functools.partial(getattr(mod, n), **kw) for n in names})


def _arrays_in(kw):
    for v in kw.values():
        if isinstance(v, np.ndarray):
            yield v
        elif isinstance(v, (list, tuple)):
            yield from (e for e in v if isinstance(e, np.ndarray))


def _same_bits(got, want, what):
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape, (
        f"{what}: {got.dtype}{got.shape} vs {want.dtype}{want.shape}"
    )
    if got.dtype.kind == "f":
        same = got.view(f"u{got.itemsize}") == want.view(f"u{want.itemsize}")
    else:
        same = got == want
    if not np.all(same):
        bad = np.argwhere(~np.atleast_1d(same))[:6]
        g, w = np.atleast_1d(got), np.atleast_1d(want)
        raise AssertionError(
            f"{what}: {int((~np.atleast_1d(same)).sum())} entries differ, first at "
            + "; ".join(f"{tuple(i)}: {g[tuple(i)]!r} vs {w[tuple(i)]!r}" for i in bad)
        )


def check_token_logprobs(case, rng):
    """token_logprobs of random tokens: the reference's within tolerance, and the package's
    log_softmax at those tokens, bitwise."""
    toks = int(rng.integers(case.V)) if case.was_1d else rng.integers(0, case.V, case.B)
    if not case.was_1d and rng.random() < 0.3:
        toks = int(toks[0])  # a scalar serves every row
    try:
        got, want = C.call_both(
            tp,
            ref,
            "token_logprobs",
            (case.logits, toks),
            dict(temperature=case.temperature),
            inputs=(case.logits,),
        )
    except C.BothRaised:
        return
    C.check_type(got, F32, () if case.was_1d else (case.B,), "token_logprobs")
    g, w = np.atleast_1d(got), np.atleast_1d(want)
    bad = C.log_errors(g, w)
    assert not bad.any(), f"token_logprobs: got {g[bad]} want {w[bad]} for tokens {toks}"
    lsm = np.atleast_2d(tp.log_softmax(case.logits, case.temperature))
    at = lsm[np.arange(case.B), np.broadcast_to(toks, (case.B,))]
    _same_bits(g, at, "token_logprobs vs log_softmax at the tokens")


def compare(case, kw, rng=None, memo=None):
    """Every function with the processors kw on case, against the reference (pass rule of
    tests/_compare.py).  Returns the processed rows (2-D), or None if both sides raised.
    ``memo``: a cache of the reference's results to share between SIMD paths."""
    oracle = ref if memo is None else memo
    before = [(a, a.copy()) for a in _arrays_in(kw)]
    biases = kw.get("logit_bias")
    biases_before = None if biases is None else repr(biases)
    where = f"\n  processors: {describe(kw)}"
    try:
        try:
            got, want = C.call_both(
                tp, oracle, "process_logits", (case.logits,), kw, inputs=(case.logits,)
            )
        except C.BothRaised:
            # then every filter raises too, the same error type as the reference
            for name in FILTERS:
                extra = {**case.filters(), **(case.randomness() if name == "sample" else {})}
                with pytest.raises(C.BothRaised):
                    C.call_both(
                        tp, oracle, name, (case.logits,), {**kw, **extra}, inputs=(case.logits,)
                    )
            return None
        C.check_type(
            got, F32, case.x32.shape[1:] if case.was_1d else case.x32.shape, "process_logits"
        )
        _same_bits(got, want, "process_logits")
        processed = np.asarray(want, dtype=F32).reshape(case.B, case.V)
        pcase = dataclasses.replace(case, x32=processed)
        ours, theirs = bound(tp, kw), bound(oracle, kw)
        C.check_mask(ours, theirs, pcase)
        C.check_filtered_probs(ours, theirs, pcase)
        C.check_sample(ours, theirs, pcase)
        if rng is not None:
            check_token_logprobs(case, rng)
    except AssertionError as exc:
        raise AssertionError(f"{exc}{where}") from None
    for a, copy in before:
        C.assert_same_array(a, copy, "a processor argument was modified")
    assert biases is None or repr(biases) == biases_before, "logit_bias was modified"
    return processed


class Memo:
    """The reference's results for one case, computed once and served to every SIMD path
    (the checkers call ``getattr(ref, name)(*args, **kwargs)``)."""

    def __init__(self):
        self.results = {}

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)

        def call(*args, **kwargs):
            key = (name, repr(args[1:]), repr(sorted(kwargs.items())))
            if key not in self.results:
                try:
                    self.results[key] = (True, getattr(ref, name)(*args, **kwargs))
                except Exception as exc:  # noqa: BLE001 - replayed as raised
                    self.results[key] = (False, exc)
            ok, value = self.results[key]
            if not ok:
                raise value
            return value

        return call


# ----------------------------------------------------------------------------
# 1. Package against reference on generated inputs.

VOCABS = (1, 31, 33, 1000, 4097, 50001)
CASES_PER_VOCAB = {1: 12, 31: 16, 33: 16, 1000: 12, 4097: 8, 50001: 4}


@pytest.mark.parametrize("V", VOCABS)
def test_processors_agree_on_generated_rows(simd_path, V, seed):
    """Random processors of every kind and form (bitmask densities from one allowed token
    to all, short and long bitmasks, shared and per-row; biases from -inf to +-1e300;
    histories with repeats and padding; penalties; min_tokens met and unmet) on rows of
    every kind of tests/_arrays.py, B of 1 to 5, with random filters: every function
    agrees with the reference.  At V = 4097 and 50001 top-k's block route serves the
    small k."""
    rng = np.random.default_rng(seed)
    for _ in range(CASES_PER_VOCAB[V]):
        B = int(rng.integers(1, 6)) if V < 50001 else int(rng.integers(1, 3))
        case = _arrays.build(random_recipe(rng, V, B))
        spec = random_spec(rng)
        if V >= 4097 and rng.random() < 0.5:  # the block route: k small enough
            k = int(rng.integers(1, 17))
            case = dataclasses.replace(case, top_k=k, K=[k] * case.B)
        kw = assemble(draw_rows(rng, case.x32, spec), spec, case.was_1d, rng)
        compare(case, kw, rng)


# ----------------------------------------------------------------------------
# Big vocabulary: top-k's block route on processed rows, and the processed copy.

BIG_V = 128256


def _peaked(rng, V, spikes=20):
    x = rng.standard_normal(V) * 2.0
    x[rng.choice(V, spikes, replace=False)] += rng.uniform(8.0, 16.0, spikes)
    return x.astype(F32)


@functools.lru_cache(maxsize=None)
def big_case(name):
    """(logits, processor kwargs) of one hand-made case at V = 128256: three rows, two
    peaked and one flat."""
    rng = np.random.default_rng(sum(map(ord, name)))
    V = BIG_V
    x = np.stack([_peaked(rng, V), _peaked(rng, V), rng.standard_normal(V).astype(F32)])
    top = [np.argsort(-row, kind="stable")[:60] for row in x]
    words = -(-V // 32)
    if name == "bitmask bans the top":
        # the blocks holding the largest logits hold nothing allowed: the k largest
        # allowed lie in other blocks
        bits = rng.random((3, 32 * words)) < 0.5
        for b in range(3):
            bits[b, top[b][:30]] = False
        kw = dict(token_bitmask=_pack(bits).view(np.int32))
    elif name == "sparse bitmask":
        # fewer allowed tokens than k, and fewer blocks holding one than k
        bits = np.zeros((3, 32 * words), dtype=bool)
        bits[0, rng.choice(V, 30, replace=False)] = True
        bits[1, rng.choice(V, 7, replace=False)] = True
        bits[2, rng.integers(V)] = True  # exactly one allowed
        kw = dict(token_bitmask=_pack(bits))
    elif name == "bias lifts far tokens":
        # tokens from blocks whose maxima are low become the largest
        far = [rng.choice(V, 6, replace=False).tolist() for _ in range(3)]
        kw = dict(
            logit_bias=[
                {i: 40.0 for i in far[0]},
                {**{i: 30.0 for i in far[1]}, **{int(t): NEG for t in top[1][:10]}},
                {int(far[2][0]): 1e30},
            ]
        )
    elif name == "bias lifts many tokens":
        # hundreds of patches above the k-th largest block max, in every order of ids
        many = [rng.choice(V, m, replace=False) for m in (40, 700, 33)]
        kw = dict(
            logit_bias=[{int(i): 25.0 + float(j % 7) for j, i in enumerate(ids)} for ids in many]
        )
    elif name == "penalties demote the top":
        out = [np.repeat(top[b][:25], 3) for b in range(3)]
        kw = dict(
            output_ids=out,
            prompt_ids=np.stack([top[b][25:40] for b in range(3)]),
            repetition_penalty=np.array([1.5, 3.0, 1.2]),
            frequency_penalty=[0.5, 2.0, 0.0],
            presence_penalty=1.0,
        )
    elif name == "min_tokens bans the argmax":
        kw = dict(
            output_ids=[[1, 2], [], [5, -1, 5, 5]],
            min_tokens=[3, 1, 3],
            stop_ids=[top[0][:5].tolist(), top[1][:1].tolist(), top[2][:2].tolist()],
        )
    elif name == "short bitmask":
        bits = rng.random((3, 32 * (words - 40))) < 0.9
        kw = dict(token_bitmask=_pack(bits))  # the last 1280 tokens banned
        x[:, -1280:] += 50.0  # the largest logits are all in the banned tail
    elif name == "long bitmask":
        bits = rng.random(32 * (words + 2)) < 0.2  # random bits past V
        kw = dict(token_bitmask=_pack(bits).view(np.int32))
    elif name == "ties at the k-th":
        x[:] = rng.choice(np.array([0.0, 1.0, 2.0], dtype=F32), (3, V))
        kw = dict(logit_bias={int(i): 1.0 for i in rng.choice(V, 40, replace=False)})
    elif name == "everything":
        bits = rng.random(32 * (words + 1)) < 0.7
        bits[[int(top[b][0]) for b in range(3)]] = True
        kw = dict(
            token_bitmask=_pack(bits).view(np.int32),
            logit_bias={int(top[0][1]): NEG, int(rng.integers(V)): 12.0, 7: -1e39},
            prompt_ids=np.array([[3, 3, -1], [int(top[1][0]), -1, -1], [-1, -1, -1]]),
            output_ids=[top[0][:5], [int(top[1][0])] * 4, []],
            repetition_penalty=1.3,
            frequency_penalty=np.array([0.2, 0.4, 0.0]),
            presence_penalty=[0.0, 0.5, 1.0],
            min_tokens=[0, 10, 1],
            stop_ids=np.array([[int(top[2][0]), 9], [4, -1], [int(top[2][0]), -1]]),
        )
    else:
        raise ValueError(name)
    return x, kw


BIG_CASES = (
    "bitmask bans the top",
    "sparse bitmask",
    "bias lifts far tokens",
    "bias lifts many tokens",
    "penalties demote the top",
    "min_tokens bans the argmax",
    "short bitmask",
    "long bitmask",
    "ties at the k-th",
    "everything",
)
BIG_FILTERS = {
    "top_k=50, top_p=0.9": dict(top_k=50, top_p=0.9),
    "top_k=[50, 5, 62], T=[0.7, 1, 0]": dict(
        top_k=[50, 5, 62], top_p=[0.9, 1.0, 0.5], temperature=[0.7, 1.0, 0.0]
    ),
    "no top_k: top_p=0.9, min_p=0.05": dict(top_p=0.9, min_p=0.05, temperature=0.8),
}
_MEMOS = {}


@pytest.mark.parametrize("filters", list(BIG_FILTERS))
@pytest.mark.parametrize("name", BIG_CASES)
def test_processors_agree_at_big_vocabulary(simd_path, name, filters):
    """V = 128256 with top_k = 50 (top-k's block route, which processes only the blocks it
    gathers: bans in the top blocks, far tokens lifted by a bias, penalties on the top,
    allowed tokens in fewer blocks than k, ties at the k-th largest), and without top-k
    (the processed copy of the row): every function agrees with the reference."""
    x, kw = big_case(name)
    f = BIG_FILTERS[filters]
    case = case_of(x, uniforms=[0.3, 0.77, 0.5], **f)
    memo = _MEMOS.setdefault((name, filters), Memo())  # the reference once, not per path
    counts = _core.route_counts()  # zeroes the counts, in a build that keeps them
    processed = compare(case, kw, memo=memo)
    assert processed is not None, "the big cases are valid"
    counts = _core.route_counts()
    if counts is not None and "top_k=" in filters and name != "ties at the k-th":
        assert counts["topk_blocks"] > 0, counts


# ----------------------------------------------------------------------------
# Known corners: overflow and underflow, temperature 0 and ties.


def test_underflow_bans_and_overflow_raises_on_both_sides(simd_path):
    """A processed logit below float32's range becomes -inf (a ban) on both sides, bitwise;
    one above it is a ValueError on both sides (naming the row), unless the token is banned
    or already -inf; the rounding at float32's largest value is the same on both sides."""
    half_ulp = 2.0**103  # half the spacing of float32 at its largest value
    x = np.array(
        [
            [F32_MAX, 1.0, -F32_MAX, 1e-38, NEG, 0.0],
            [3e38, -3e38, 2.0, -2.0, NEG, 5.0],
        ],
        dtype=F32,
    )
    valid = [
        dict(logit_bias={1: -1e39}),  # underflow: a ban
        dict(logit_bias={2: -half_ulp * 1.5}),  # -F32_MAX and a bit: -inf
        dict(logit_bias={0: half_ulp * 0.99}),  # rounds back down to F32_MAX
        dict(logit_bias={3: -9.99e-39}),  # a subnormal result
        dict(logit_bias={4: 1e39}),  # -inf + anything stays -inf
        dict(logit_bias={0: 1e39}, token_bitmask=np.array([0b111110], np.int32)),  # banned
        dict(output_ids=[[2, 2], [1, 1]], repetition_penalty=2.0),  # -6e38: a ban
        dict(logit_bias={0: 1e30}, frequency_penalty=1e30, output_ids=[[0], []]),
        dict(output_ids=[[], [3, 3]], frequency_penalty=1e308),  # -inf: a ban
    ]
    raising = [
        dict(logit_bias={0: half_ulp * 1.01}),  # rounds up to +inf
        dict(logit_bias=[None, {0: 1e38}]),  # 4e38
        dict(output_ids=[[], [0]], repetition_penalty=0.5),  # 6e38
        dict(output_ids=[[1, 1], []], frequency_penalty=-1e308),  # +inf in float64 too
        dict(logit_bias={1: 1e300}, output_ids=[[1], []], repetition_penalty=1e-300),
        dict(logit_bias=[{i: -1e39 for i in range(6)}, None]),  # row 0 left with nothing
    ]
    for kw in valid:
        case = case_of(x, top_k=2, top_p=0.9, uniforms=[0.1, 0.9])
        assert compare(case, kw) is not None, kw
    for kw in raising:
        for name in ("process_logits",) + FILTERS:
            extra = {} if name == "process_logits" else dict(top_k=2)
            if name == "sample":
                extra["seed"] = 1
            with pytest.raises(ValueError):
                ref_call = getattr(ref, name)
                with np.errstate(all="ignore"):
                    ref_call(x, **kw, **extra)
            with pytest.raises(ValueError, match="row"):
                getattr(tp, name)(x, **kw, **extra)


def test_temperature_zero_takes_the_processed_argmax(simd_path, rng):
    """T = 0 rows draw the first argmax of the processed logits, whatever the raw argmax
    and the other filters; ties made by a bias or a penalty go to the lowest id."""
    x = np.array([[1.0, 2.0, 3.0, 0.5], [4.0, 4.0, 1.0, 0.0], [0.0, 1.0, 2.0, 8.0]], F32)
    kw = dict(
        logit_bias=[{0: 2.0}, {0: NEG}, None],  # row 0: 3 at ids 0 and 2
        output_ids=[[], [], [3, 3]],  # row 2: 8 - 2 * 3 = 2, as id 2
        repetition_penalty=[1.0, 1.0, 1.0],
        frequency_penalty=[0.0, 0.0, 3.0],
    )
    processed = ref.process_logits(x, **kw)
    want = [int(np.argmax(r)) for r in processed]
    assert want == [0, 1, 2]
    for extra in (dict(top_k=1), dict(top_p=1e-9, min_p=1.0), {}):
        got = tp.sample(x, temperature=0.0, seed=3, **kw, **extra)
        assert got.tolist() == want, extra
        m = tp.mask(x, temperature=0.0, **kw, **extra)
        assert [np.flatnonzero(np.isfinite(r)).tolist() for r in m] == [[t] for t in want]
        p = tp.filtered_probs(x, temperature=0.0, **kw, **extra)
        assert p.tolist() == np.eye(4, dtype=F32)[want].tolist()
    assert tp.greedy(tp.process_logits(x, **kw)).tolist() == want
    # random rows: the greedy token is the processed argmax
    for _ in range(10):
        V = int(rng.integers(1, 200))
        case = _arrays.build(random_recipe(rng, V, 3, layouts=("c32",)))
        spec = random_spec(rng)
        kw = assemble(draw_rows(rng, case.x32, spec), spec, case.was_1d, rng)
        try:
            with np.errstate(all="ignore"):
                processed = ref.process_logits(case.logits, **kw)
        except ValueError:
            continue
        got = tp.sample(case.logits, temperature=0.0, uniforms=0.5, **kw)
        assert np.atleast_1d(got).tolist() == [
            int(np.argmax(r)) for r in np.atleast_2d(processed)
        ], describe(kw)


def test_ties_among_patches_go_to_the_lowest_id(simd_path):
    """Patches tied at the top go to their lowest id, whatever the order they are listed
    in: biases given in descending ids, a tie of nineteen patches, penalties making two
    outputs tie."""
    V = 40
    x = np.zeros((3, V), F32)
    x[2, [5, 12]] = 10.0
    kw = dict(
        logit_bias=[{9: 2.0, 7: 2.0, 30: 1.0}, {i: 3.0 for i in range(39, 20, -1)}, None],
        output_ids=[[], [], [12, 12, 5, 5]],
        frequency_penalty=1.0,
    )
    want = [int(np.argmax(r)) for r in ref.process_logits(x, **kw)]
    assert want == [7, 21, 5]
    for extra in (dict(top_k=1), dict(top_k=3), {}):
        assert tp.sample(x, temperature=0.0, seed=3, **kw, **extra).tolist() == want, extra


def test_long_histories_and_many_biases(simd_path, rng):
    """Histories of thousands of ids (most of them repeats) and hundreds of biases, before
    and after calls with few, on one thread and on two (V = 70000): the per-thread tallies
    of the ids grow and are reset between rows; every function agrees with the
    reference."""
    for V, L, nbias, B in ((50, 0, 0, 2), (50, 5000, 40, 3), (3000, 20000, 500, 3),
                           (3000, 10, 3, 2), (70000, 30000, 1000, 4)):  # fmt: skip
        x = (rng.standard_normal((B, V)) * 2).astype(F32)
        kw = dict(
            prompt_ids=[rng.integers(0, V, int(rng.integers(0, L + 1))) for _ in range(B)],
            output_ids=[rng.integers(0, min(V, 200), L) for _ in range(B)],
            logit_bias=[
                {int(i): float(rng.normal(0, 2)) for i in rng.integers(0, V, nbias)}
                for _ in range(B)
            ],
            repetition_penalty=1.1,
            frequency_penalty=0.001,
            presence_penalty=0.1,
            min_tokens=L + 1,
            stop_ids=[rng.integers(0, V, 50) for _ in range(B)],
        )
        for b in range(B):  # every row keeps a token
            kw["stop_ids"][b] = kw["stop_ids"][b][kw["stop_ids"][b] != np.argmax(x[b])]
        k = 50 if V > 1000 else 5
        compare(case_of(x, top_k=[k, 0] * (B // 2) + [k] * (B % 2), top_p=0.9), kw)


# ----------------------------------------------------------------------------
# 2. Batch independence: alone or in a batch, one thread or two, any SIMD path.


def _all_results(x, kw, filters, uniforms, threads):
    """Every function's outputs for one call each, at the given thread count."""
    previous = tp.get_num_threads()
    tp.set_num_threads(threads)
    try:
        return dict(
            process_logits=tp.process_logits(x, **kw),
            mask=tp.mask(x, **kw, **filters),
            filtered_probs=tp.filtered_probs(x, **kw, **filters),
            sample=tp.sample(
                x, **kw, **filters, uniforms=uniforms, return_logprobs=True, num_threads=threads
            ),
        )
    finally:
        tp.set_num_threads(previous)


def _flat(results):
    out = {}
    for k, v in results.items():
        if isinstance(v, tuple):
            out[k + " tokens"], out[k + " logprobs"] = v
        else:
            out[k] = v
    return out


@pytest.mark.parametrize("V", (1000, 60000))
def test_a_row_alone_equals_the_row_in_a_batch(V, seed):
    """Five rows with different processors and filters per row (top-k's block route and
    the processed copy side by side, so that a row's scratch cannot leak into the next):
    each row's processed logits, mask, probabilities, token and logprob are bitwise the
    same alone (1-D) as in the batch, on one thread as on two, and on every SIMD path
    (filtered_probs and logprobs are compared across paths within tolerance only)."""
    rng = np.random.default_rng(seed)
    B = 5
    if V == 60000:
        assert _threads.thread_count(B, V, 2) == 2, "the batch should use two threads"
    x = np.stack([_arrays.make_row(rng, _pick(rng, PROC_KINDS[:5]), V) for _ in range(B)])
    x = x.astype(F32)
    filters = dict(
        temperature=np.array([0.7, 1.0, 0.0, 1.3, 1.0]),
        top_k=np.array([50, 0, 5, 0, 16]),
        top_p=np.array([0.9, 0.95, 1.0, 0.8, 1.0]),
        min_p=np.array([0.0, 0.05, 0.0, 0.0, 0.1]),
    )
    uniforms = rng.random(B)
    for _ in range(3):
        spec = dataclasses.replace(
            random_spec(rng),
            shared_mask=False,
            bias="per_row",
            penalties="per_row",
            stop_form="per_row",
            density=_pick(rng, DENSITIES),
        )
        rows = draw_rows(rng, x, spec)
        kw = assemble(rows, spec, False, rng)
        try:
            with np.errstate(all="ignore"):
                ref.process_logits(x, **kw)
        except ValueError:
            continue
        paths = {}
        for path in _core.simd_paths():
            previous = _core.force_simd(path)
            try:
                batch = _flat(_all_results(x, kw, filters, uniforms, 1))
                _same_bits_all(batch, _flat(_all_results(x, kw, filters, uniforms, 2)), "2 thr")
                for b in range(B):
                    one = assemble([rows[b]], spec, True, rng)
                    f1 = {k: v[b].item() for k, v in filters.items()}
                    alone = _flat(_all_results(x[b], one, f1, uniforms[b], 1))
                    for k, v in alone.items():
                        _same_bits(v, batch[k][b], f"{path}: row {b} alone vs batch, {k}")
            finally:
                _core.force_simd(previous)
            paths[path] = batch
        first, *others = paths
        for other in others:
            a, b = paths[first], paths[other]
            for k in ("process_logits", "mask", "sample tokens"):
                _same_bits(a[k], b[k], f"{first} vs {other}: {k}")
            assert not C.prob_errors(a["filtered_probs"], b["filtered_probs"]).any()
            assert not C.log_errors(a["sample logprobs"], b["sample logprobs"]).any()


def _same_bits_all(a, b, what):
    for k in a:
        _same_bits(a[k], b[k], f"{what}: {k}")


def test_argument_forms_give_the_same_results(rng):
    """The same processors in every accepted form -- histories padded, with -1 in between,
    ragged arrays or lists; the bitmask int32 or uint32, big-endian, shared (W,) or
    repeated (B, W); one mapping or B equal ones; penalties and min_tokens as scalars,
    arrays or lists; stop ids shared or per row, padded or ragged -- give bitwise the
    same results, and the reference's."""
    B, V = 4, 300
    x = (rng.standard_normal((B, V)) * 3).astype(F32)
    x[1, :7] = NEG
    hist_p = [rng.integers(0, V, n).tolist() for n in (0, 5, 12, 3)]
    hist_o = [rng.integers(0, 20, n).tolist() for n in (6, 0, 9, 2)]  # repeats
    bits = rng.random(32 * 10) < 0.6
    bits[[int(np.argmax(r)) for r in x]] = True
    words = _pack(bits)
    bias = {3: 2.5, 10: NEG, 250: -1.0, 11: 1e-3}
    stop = [0, 1, 2, 11]

    def padded(lists, scatter):
        L = max(map(len, lists)) + 2
        a = np.full((B, L), -1, dtype=np.int64)
        for b, ids in enumerate(lists):
            where = np.sort(rng.choice(L, len(ids), replace=False)) if scatter else slice(len(ids))
            a[b, where] = ids
        return a

    forms = []
    for h in range(4):
        prompt = [
            padded(hist_p, False),
            padded(hist_p, True).astype(np.int32),
            [np.array(ids, dtype=np.int32) for ids in hist_p],
            [_with_padding(rng, ids) for ids in hist_p],
        ][h]
        output = [
            padded(hist_o, True),
            [list(ids) for ids in hist_o],
            padded(hist_o, False).astype(np.int32),
            [np.array(ids + [-1], dtype=np.int64) for ids in hist_o],
        ][h]
        forms.append(
            dict(
                token_bitmask=[
                    words.view(np.int32),
                    words,
                    np.tile(words, (B, 1)).view(np.int32),
                    words.astype(">u4"),
                ][h],
                logit_bias=[bias, [dict(bias)] * B, dict(bias), [bias, bias, bias, bias]][h],
                prompt_ids=prompt,
                output_ids=output,
                repetition_penalty=[1.25, np.full(B, 1.25), [1.25] * B, np.float32(1.25)][h],
                frequency_penalty=[0.5, [0.5] * B, np.full(B, 0.5), 0.5][h],
                presence_penalty=[np.full(B, -0.25), -0.25, -0.25, [-0.25] * B][h],
                min_tokens=[7, np.full(B, 7), [7] * B, np.int64(7)][h],
                stop_ids=[stop, [stop] * B, padded([stop] * B, True), np.array(stop)][h],
            )
        )
    filters = dict(temperature=0.8, top_k=20, top_p=0.9)
    first = None
    for kw in forms:
        res = _flat(_all_results(x, kw, filters, np.array([0.1, 0.4, 0.6, 0.9]), 1))
        if first is None:
            first = res
            compare(case_of(x, uniforms=[0.1, 0.4, 0.6, 0.9], **filters), kw)
        else:
            _same_bits_all(res, first, describe(kw))
    # 1-D logits: a row as a batch of one
    one = dict(
        token_bitmask=words,
        logit_bias=bias,
        prompt_ids=hist_p[2],
        output_ids=hist_o[2],
        repetition_penalty=1.25,
        min_tokens=7,
        stop_ids=stop,
    )
    as_batch = dict(one, prompt_ids=[hist_p[2]], output_ids=[hist_o[2]], stop_ids=[stop])
    length_one = dict(  # for 1-D logits, (1, W), (1, L) and length-1 arrays read as one row
        token_bitmask=words[None].view(np.int32),
        logit_bias=bias,
        prompt_ids=np.array([hist_p[2]]),
        output_ids=np.array([hist_o[2]], dtype=np.int32),
        repetition_penalty=np.array([1.25]),
        min_tokens=np.array([7]),
        stop_ids=np.array([stop]),
    )
    a = _flat(_all_results(x[2], one, filters, 0.5, 1))
    b = _flat(_all_results(x[2:3], as_batch, filters, np.array([0.5]), 1))
    c = _flat(_all_results(x[2], length_one, filters, 0.5, 1))
    for k in a:
        _same_bits(a[k], np.asarray(b[k])[0], f"1-D vs (1, V): {k}")
        _same_bits(c[k], a[k], f"1-D with length-1 forms: {k}")
    compare(case_of(x[2], uniforms=0.5, **filters), one)


# ----------------------------------------------------------------------------
# 3. out=: in place, and untouched by a call that raises.


@pytest.mark.parametrize("V", (97, 70000))
def test_out_in_place_equals_out_of_place(simd_path, V, seed):
    """process_logits, mask and filtered_probs with ``out=x`` write what they return
    without ``out=``; at V = 70000 the four rows are spread over two threads."""
    rng = np.random.default_rng(seed)
    x = np.stack([_arrays.make_row(rng, k, V) for k in ("peaked", "flat", "masked", "ties")])
    x = x.astype(F32)
    spec = Spec(density=0.5, bias="per_row", history="ragged_lists", penalties="per_row")
    kw = assemble(draw_rows(rng, x, spec), spec, False, rng)
    filters = dict(top_k=[50, 0, 3, 0], top_p=0.9, temperature=[1.0, 0.5, 0.0, 2.0])
    for name, f in (("process_logits", {}), ("mask", filters), ("filtered_probs", filters)):
        want = getattr(tp, name)(x, **kw, **f)
        y = x.copy()
        got = getattr(tp, name)(y, **kw, **f, out=y)
        assert got is y, name
        _same_bits(got, want, f"{name}(out=x)")
        o = np.full_like(x, 7.0)
        got = getattr(tp, name)(x, **kw, **f, out=o)
        assert got is o
        _same_bits(got, want, f"{name}(out=o)")


@pytest.mark.parametrize("V", (97, 70000))
def test_a_raising_call_writes_nothing(simd_path, V, rng):
    """A row left with no token (its bitmask all zeros, or every allowed token banned by
    min_tokens), or a processed logit beyond float32's range, raises ValueError before
    anything is written: ``out=`` keeps its sentinel, and with ``out=x`` the logits stay
    as they were, even where the bad row is the last of a batch spread over two threads."""
    B = 4
    x = rng.standard_normal((B, V)).astype(F32)
    words = -(-V // 32)
    bits = np.ones((B, words), dtype=np.uint32) * np.uint32(0xFFFFFFFF)
    bits[B - 1] = 0
    allow_one = np.zeros(words, dtype=np.uint32)
    allow_one[0] = 1  # token 0 only
    bad = [
        dict(token_bitmask=bits),
        dict(token_bitmask=bits.view(np.int32)),
        dict(
            token_bitmask=allow_one,
            output_ids=[[1], [1], [1, 2], []],
            min_tokens=[0, 0, 0, 1],
            stop_ids=[0],
        ),
        dict(logit_bias=[None, None, None, {5: 1e39}]),
        dict(logit_bias=[None, None, None, {0: -1e39}], token_bitmask=allow_one),
    ]
    for kw in bad:
        for name, f in (
            ("process_logits", {}),
            ("mask", dict(top_k=50)),
            ("filtered_probs", dict(top_p=0.9)),
            ("filtered_probs", {}),
        ):
            sentinel = np.full((B, V), 12345.0, dtype=F32)
            with pytest.raises(ValueError, match=f"row {B - 1}"):
                getattr(tp, name)(x, **kw, **f, out=sentinel)
            assert (sentinel == 12345.0).all(), f"{name} wrote into out= before raising"
            y = x.copy()
            with pytest.raises(ValueError, match=f"row {B - 1}"):
                getattr(tp, name)(y, **kw, **f, out=y)
            _same_bits(y, x, f"{name}(out=x) changed x before raising")
        with pytest.raises(ValueError, match=f"row {B - 1}"):
            tp.sample(x, **kw, seed=1)
        with np.errstate(all="ignore"), pytest.raises(ValueError, match=f"row {B - 1}"):
            ref.process_logits(x, **kw)


@pytest.mark.parametrize("V", (97, 70000))
def test_a_refused_call_leaves_no_tallies_behind(simd_path, V, rng):
    """A call refused at its last row (an id out of range, a processed logit past
    float32's range, a row left with nothing), after rows with long histories and biases,
    leaves nothing behind in the thread's tallies: the same rows without the fault then
    give what they gave before it, bitwise, and what the reference gives.  (From V = 65536
    on, the tally table's lines are fetched ahead of their ids.)"""
    B = 3
    x = (rng.standard_normal((B, V)) * 2).astype(F32)
    # the forms the core reads unchecked, the stray id found as the last row is tallied
    outputs = rng.integers(0, min(V, 300), (B, 600))
    bias = {int(i): 1.5 for i in rng.integers(0, V, 8)}
    good = dict(
        output_ids=outputs,
        prompt_ids=rng.integers(0, V, (B, 60)),
        logit_bias=bias,
        repetition_penalty=1.3,
        frequency_penalty=0.4,
        presence_penalty=0.2,
    )
    none_allowed = np.full((B, -(-V // 32)), 0xFFFFFFFF, dtype=np.uint32)
    none_allowed[B - 1] = 0
    faults = [
        dict(output_ids=np.concatenate([outputs, [[-1], [-1], [V]]], axis=1)),
        dict(logit_bias=[bias, bias, {**bias, 3: 1e39}]),
        dict(token_bitmask=none_allowed),
    ]
    before = tp.process_logits(x, **good)
    drawn = tp.sample(x, top_k=40, seed=5, **good)
    for fault in faults:
        with pytest.raises(ValueError, match=f"row {B - 1}"):
            tp.sample(x, top_k=40, seed=5, **{**good, **fault})
        _same_bits(tp.process_logits(x, **good), before, f"after {describe(fault)}")
        assert tp.sample(x, top_k=40, seed=5, **good).tolist() == drawn.tolist()
    assert compare(case_of(x, top_k=40, top_p=0.9), good) is not None


# ----------------------------------------------------------------------------
# 4. xgrammar: token_bitmask bans what apply_token_bitmask_inplace bans.


def test_bitmask_bans_what_xgrammar_bans(rng):
    """On random rows (with -inf) and random bitmasks of every density, as xgrammar makes
    them (every bit past V set: xgrammar 0.2.9's CPU kernel misbehaves otherwise), 1-D and
    2-D, with one word more than needed too: the package's process_logits is bitwise
    xgrammar's result, -inf where it bans and the logit elsewhere."""
    torch = pytest.importorskip("torch")
    xgr = pytest.importorskip("xgrammar")
    apply = xgr.apply_token_bitmask_inplace
    has_backend = "backend" in inspect.signature(apply).parameters
    B = 3
    for V in (1, 7, 31, 32, 33, 100, 1000, 4097):
        for extra in (0, 1):
            W = -(-V // 32) + extra
            for density in (0.0, 0.01, 0.3, 0.9, 1.0):
                bits = rng.random((B, 32 * W)) < density
                bits[np.arange(B), rng.integers(0, V, B)] = True  # at least one allowed
                x = rng.standard_normal((B, V)).astype(F32)
                if V > 1:
                    x[0, rng.integers(1, V, 3)] = NEG
                    bits[0, 0] = True
                clean = bits.copy()
                clean[:, V:] = True
                calls = [(clean, {})]
                if has_backend:  # the pure-torch backend ignores the bits past V
                    calls.append((bits, dict(backend="torch_native")))
                for form, kw in calls:
                    words = _pack(form).view(np.int32)
                    t, t1 = torch.from_numpy(x.copy()), torch.from_numpy(x[1].copy())
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        apply(t, torch.from_numpy(words.copy()), **kw)
                        apply(t1, torch.from_numpy(words[1].copy()), **kw)
                    where = f"V={V} W={W} density={density} {kw}"
                    ours = tp.process_logits(x, token_bitmask=words)
                    ours1 = tp.process_logits(x[1], token_bitmask=words[1])
                    assert (np.isneginf(ours) == np.isneginf(t.numpy())).all(), where
                    _same_bits(ours, t.numpy(), where)
                    _same_bits(ours1, t1.numpy(), where + " (1-D)")


# ----------------------------------------------------------------------------
# 5. Hypothesis: the processors' kinds and forms at small V.


@settings(max_examples=settings().max_examples)
@given(
    recipe=_arrays.recipes(
        vocab_sizes=(1, 2, 11, 33, 97), max_rows=4, layouts=("c32", "1d", "strided")
    ),
    spec=specs(),
)
def test_processors_agree_on_drawn_arguments(simd_path, recipe, spec):
    """Hypothesis draws the processors (a Spec: which are on and in which form) and the
    rows and filters (a Recipe of tests/_arrays.py); every function agrees with the
    reference."""
    case = _arrays.build(recipe)
    rng = np.random.default_rng(recipe.seed ^ 0x5EED)
    kw = assemble(draw_rows(rng, case.x32, spec), spec, case.was_1d, rng)
    compare(case, kw, rng)
