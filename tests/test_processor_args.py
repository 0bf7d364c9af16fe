"""The logit processors' argument layer, ``tokenpick._processors.prepare``, against the reference.

Bad input: for a table of mistakes in every processor argument (and, drawn by Hypothesis,
pairs of mistakes in different arguments, and ids pushed out of range in every form), with
1-D and 2-D logits, ``prepare`` raises exactly what ``reference.process_logits`` raises, the
same type and message.  Good input: the Plan holds what the reference's own parsing holds
(``_bitmask_rows``, ``_bias_rows``, ``_id_rows``, ``_float_values``, ``_int_values``), read
back from its CSR arrays, in the dtypes and layout the core reads; and the fast paths give
what the exact paths give.
"""

import types
from collections.abc import Mapping

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tokenpick as tp
import tokenpick._processors as pr
from tokenpick import reference as ref

B, V = 3, 10
NAN, INF = float("nan"), float("inf")
PROCESSOR_DEFAULTS = dict(
    token_bitmask=None,
    logit_bias=None,
    prompt_ids=None,
    output_ids=None,
    repetition_penalty=1.0,
    frequency_penalty=0.0,
    presence_penalty=0.0,
    min_tokens=0,
    stop_ids=None,
)


def logits(was_1d, nrows=B, vocab=V):
    """Finite logits, so that the reference reaches its argument checks."""
    x = np.linspace(-1.0, 1.0, nrows * vocab, dtype=np.float32).reshape(nrows, vocab)
    return x[0] if was_1d else x


def prepare(x, plain=False, **kwargs):
    """prepare's Plan: by the general path, or (plain) by the C one where it applies,
    made comparable (as_csr)."""
    nrows, vocab = (1, x.shape[0]) if x.ndim == 1 else x.shape
    plan = pr.prepare(nrows, vocab, x.ndim == 1, **{**PROCESSOR_DEFAULTS, **kwargs}, plain=plain)
    return as_csr(plan, nrows) if plain and plan is not None else plan


def as_csr(plan, nrows):
    """A Plan of the plain path (_core.plain_plan: the caller's arrays, int lengths for
    padded or shared lists) in the general path's layout: uint32 (R, W) words and CSRs."""
    fields = pr.Plan(*plan)._asdict()
    if fields["bitmask"] is not None:
        m = fields["bitmask"].view(np.uint32)
        fields["bitmask"] = m.reshape(1, -1) if m.ndim == 1 else m
    for name in ("bias", "prompt", "output", "stop"):
        ids, starts = fields[f"{name}_ids"], fields[f"{name}_starts"]
        if ids is None or not isinstance(starts, int):
            continue
        rows = 1 if ids.ndim == 1 else ids.shape[0]
        fields[f"{name}_ids"] = ids.reshape(-1)
        fields[f"{name}_starts"] = np.arange(rows + 1, dtype=np.int64) * starts
    return pr.Plan(**fields)


def outcome(fn):
    """(type, message) of what fn raises, or None."""
    try:
        fn()
    except Exception as exc:  # every type: the package must raise what the reference raises
        return type(exc), str(exc)
    return None


def assert_same_error(x, kwargs):
    """prepare raises what the reference raises for these arguments (or neither raises).

    The reference's errors about the processed rows (a row left with no token, a logit
    pushed beyond float32) come after every argument check, and are the core's to raise.
    """
    want = outcome(lambda: ref.process_logits(x, **kwargs))
    if want is not None and want[1].startswith("logits row "):
        want = None
    got = outcome(lambda: prepare(x, **kwargs))
    assert got == want, kwargs
    # and through a public function, whose plain forms have their ids checked by the core
    got = outcome(lambda: tp.process_logits(x, **kwargs))
    if got is not None and got[1].startswith("logits row "):
        got = None
    assert got == want, kwargs
    return want


class Tensorish:
    """An object whose conversion fails for a reason of its own (as a GPU tensor's does)."""

    def __array__(self, dtype=None, copy=None):
        raise RuntimeError("can't convert cuda:0 device type tensor to numpy")


class Bias(Mapping):
    """A read-only mapping that is not a dict (the exact path)."""

    def __init__(self, items):
        self._items = list(items)

    def __getitem__(self, k):
        return dict(self._items)[k]

    def __iter__(self):
        return (k for k, _ in self._items)

    def __len__(self):
        return len(self._items)


def objects(*rows):
    a = np.empty(len(rows), dtype=object)
    a[:] = list(rows)
    return a


i64, i32, u8, u64 = np.int64, np.int32, np.uint8, np.uint64
GOOD_ROWS = [np.array([1, 2], i64), np.array([3], i64), np.array([], i64)]

# Each a mistake (or a near miss that is fine with 1-D or with 2-D logits): the keyword
# arguments, with B = 3 rows of V = 10 tokens for 2-D logits, one row for 1-D logits.
MISTAKES = {
    # token_bitmask: dtype, then shape, then rows
    "bitmask int64": dict(token_bitmask=np.zeros(1, i64)),
    "bitmask uint8": dict(token_bitmask=np.zeros(1, u8)),
    "bitmask bool": dict(token_bitmask=np.zeros(1, bool)),
    "bitmask float32": dict(token_bitmask=np.zeros(1, np.float32)),
    "bitmask list": dict(token_bitmask=[1, 2]),
    "bitmask 0-d": dict(token_bitmask=np.int32(5)),
    "bitmask 3-D": dict(token_bitmask=np.zeros((B, 1, 1), np.uint32)),
    "bitmask rows": dict(token_bitmask=np.zeros((2, 1), np.int32)),
    "bitmask 0 rows": dict(token_bitmask=np.zeros((0, 1), np.int32)),
    "bitmask tensor": dict(token_bitmask=Tensorish()),
    "bitmask big-endian 3-D": dict(token_bitmask=np.zeros((1, 1, 1), ">i4")),
    # logit_bias: the container, each row's type, then each item's types, then values
    "bias int": dict(logit_bias=5),
    "bias str": dict(logit_bias="abc"),
    "bias set": dict(logit_bias={1, 2}),
    "bias ndarray": dict(logit_bias=np.zeros(3)),
    "bias short list": dict(logit_bias=[{}, {}]),
    "bias long list": dict(logit_bias=[{}] * 4),
    "bias one in list": dict(logit_bias=[{0: 1.0}]),
    "bias row not mapping": dict(logit_bias=[{}, None, 3]),
    "bias row type before row value": dict(logit_bias=[{V: 1.0}, None, [1]]),
    "bias key bool": dict(logit_bias={True: 1.0}),
    "bias key np.bool_": dict(logit_bias={np.bool_(True): 1.0}),
    "bias key float": dict(logit_bias={1.0: 1.0}),
    "bias key str": dict(logit_bias={"1": 1.0}),
    "bias key None": dict(logit_bias={None: 1.0}),
    "bias value bool": dict(logit_bias={0: 1.0, 1: True}),
    "bias value str": dict(logit_bias={1: "x"}),
    "bias value None": dict(logit_bias={1: None}),
    "bias value complex": dict(logit_bias={1: 1j}),
    "bias value np.bool_": dict(logit_bias={1: np.bool_(False)}),
    "bias types before values": dict(logit_bias={V: 1.0, 1: "x"}),
    "bias id -1": dict(logit_bias={-1: 1.0}),
    "bias id V": dict(logit_bias={0: 0.5, V: 1.0}),
    "bias id np.int64 V": dict(logit_bias={np.int64(V): 1.0}),
    "bias id huge": dict(logit_bias={2**70: 1.0}),
    "bias id -huge": dict(logit_bias={-(2**70): 1.0}),
    "bias NaN": dict(logit_bias={3: NAN}),
    "bias +inf": dict(logit_bias={3: INF}),
    "bias np.float32 +inf": dict(logit_bias={3: np.float32(INF)}),
    "bias int beyond float64": dict(logit_bias={3: 10**400}),
    "bias -int beyond float64 (a ban)": dict(logit_bias={3: -(10**400)}),
    "bias -inf and +inf": dict(logit_bias={2: -INF, 3: INF}),
    "bias id before bias": dict(logit_bias={3: NAN, V: 1.0}),
    "bias many, one bad": dict(logit_bias={**{k % V: 0.1 for k in range(100)}, 7: NAN}),
    "bias row 1 bad": dict(logit_bias=[{}, {0: 1.0, V + 5: 1.0}, {0: NAN}]),
    "bias mapping bad": dict(logit_bias=Bias([(1, 0.5), (V, 1.0)])),
    "bias proxy bad": dict(logit_bias=types.MappingProxyType({1: NAN})),
    "bias list with None row bad": dict(logit_bias=[None, {}, {1: INF}]),
    # prompt_ids / output_ids: arrays
    "ids float array": dict(prompt_ids=np.zeros((B, 2))),
    "ids bool array": dict(output_ids=np.zeros((B, 2), bool)),
    "ids str": dict(output_ids="abc"),
    "ids int": dict(prompt_ids=5),
    "ids 3-D": dict(prompt_ids=np.zeros((B, 1, 1), i64)),
    "ids 1-D array": dict(prompt_ids=np.array([1, 2], i64)),
    "ids 1-D array bad": dict(prompt_ids=np.array([1, -2], i64)),
    "ids rows": dict(output_ids=np.zeros((2, 4), i64)),
    "ids one row": dict(output_ids=np.zeros((1, 4), i64)),
    "ids padded -2": dict(output_ids=np.array([[1, -1], [2, -2], [V, 0]])),
    "ids padded V": dict(prompt_ids=np.array([[1, -1], [2, 3], [V, 0]])),
    "ids padded int32 V": dict(prompt_ids=np.array([[1, -1], [2, 3], [0, V]], i32)),
    "ids padded int8 -128": dict(prompt_ids=np.array([[1, -1], [-128, 3], [0, 1]], np.int8)),
    "ids padded uint8 200": dict(prompt_ids=np.array([[1, 2], [3, 4], [200, 1]], u8)),
    "ids padded uint64 max": dict(prompt_ids=np.array([[1], [2**64 - 1], [1]], u64)),
    "ids padded big-endian": dict(prompt_ids=np.array([[1], [2], [-7]], ">i8")),
    "ids padded strided": dict(prompt_ids=np.array([[1, 99], [2, 99], [V, 99]])[:, ::2]),
    "ids tensor": dict(prompt_ids=Tensorish()),
    # ragged sequences
    "ids short list": dict(output_ids=GOOD_ROWS[:2]),
    "ids list of arrays bad": dict(output_ids=[np.array([1, 2]), np.array([V]), np.array([-3])]),
    "ids list of arrays -2": dict(output_ids=[np.array([1, 2]), np.array([0, -2]), []]),
    "ids list of int32 arrays bad": dict(output_ids=[np.array([1], i32), np.array([-5], i32), []]),
    "ids list of uint64 arrays bad": dict(output_ids=[np.array([1], u64), [], np.array([V], u64)]),
    "ids list with float array": dict(output_ids=[np.array([1]), np.array([1.0]), []]),
    "ids list with bool row": dict(output_ids=[[True], [1], []]),
    "ids list with float row": dict(output_ids=[[1], [1.5, 2], []]),
    "ids list with 2-D row": dict(output_ids=[[1], [[1, 2]], []]),
    "ids list with 0-d row": dict(output_ids=[[1], 2, []]),
    "ids list with None item": dict(output_ids=[[1], [2, None], []]),
    "ids list with str row": dict(output_ids=[[1], "ab", []]),
    "ids list with huge int": dict(output_ids=[[1], [2, 2**70], []]),
    "ids list with -huge int": dict(output_ids=[[1], [-(2**70)], []]),
    "ids list with 2**63": dict(output_ids=[[1], [2**63, 1], [0]]),
    "ids list with ragged row": dict(output_ids=[[1], [[1], [2, 3]], []]),
    "ids list row 0 value before row 1 type": dict(output_ids=[[V], [1.5], []]),
    "ids tuple of lists bad": dict(prompt_ids=((1,), (2,), (3, -9))),
    "ids list of scalars": dict(prompt_ids=[1, 2, 3]),
    "ids list of scalars bad": dict(prompt_ids=[1, 2, V]),
    "ids list of scalars -1s": dict(prompt_ids=[-1, -1]),
    "ids list of bools": dict(prompt_ids=[True, False]),
    "ids list of floats": dict(prompt_ids=[1.0, 2.0]),
    "ids list mixed scalar and row": dict(prompt_ids=[1, [2]]),
    "ids list of np scalars bad": dict(prompt_ids=[np.int64(1), np.int64(V)]),
    "ids list with huge scalar": dict(prompt_ids=[1, 2**70]),
    "ids list of one bad row": dict(prompt_ids=[[1, -5]]),
    "ids empty list": dict(prompt_ids=[]),
    "ids empty tuple": dict(output_ids=()),
    "ids object array of rows bad": dict(output_ids=objects([1], [2, V], [])),
    "ids object array of arrays bad": dict(output_ids=objects(*GOOD_ROWS[:2], np.array([-4]))),
    "ids object array huge": dict(output_ids=np.array([2**70, 1], dtype=object)),
    "ids object 0-d": dict(output_ids=np.array(2**70, dtype=object)),
    "ids object 2-D": dict(output_ids=np.array([[1, 2**70]] * B, dtype=object)),
    "ids object 2-D str": dict(output_ids=np.array([["a"]] * B, dtype=object)),
    "ids range": dict(prompt_ids=range(3)),
    "ids range bad": dict(prompt_ids=range(V - 1, V + 1)),
    # stop_ids: the same forms, and one 1-D list for every row
    "stop 1-D bad": dict(stop_ids=np.array([1, V]), min_tokens=1),
    "stop 1-D uint8 bad": dict(stop_ids=np.array([1, 250], u8)),
    "stop 1-D uint64 max": dict(stop_ids=np.array([1, 2**64 - 1], u64)),
    "stop list bad": dict(stop_ids=[0, -2]),
    "stop list huge": dict(stop_ids=[0, 2**64]),
    "stop rows bad": dict(stop_ids=[[0], [1], [V]]),
    "stop rows short": dict(stop_ids=[[0], [1]]),
    "stop padded bad": dict(stop_ids=np.array([[0, -1], [1, -1], [-1, -3]])),
    "stop 3-D": dict(stop_ids=np.zeros((B, 1, 1), i64)),
    "stop 0-d": dict(stop_ids=np.int64(3)),
    "stop float": dict(stop_ids=[1.0]),
    "stop bool array": dict(stop_ids=np.array([True])),
    "stop empty": dict(stop_ids=[], min_tokens=2),
    # penalties: type, shape, rows
    "repetition 0": dict(repetition_penalty=0),
    "repetition -1": dict(repetition_penalty=-1),
    "repetition 0.0": dict(repetition_penalty=0.0),
    "repetition NaN": dict(repetition_penalty=NAN),
    "repetition inf": dict(repetition_penalty=INF),
    "repetition int beyond float64": dict(repetition_penalty=10**400),
    "repetition -int beyond float64": dict(repetition_penalty=-(10**400)),
    "repetition bool": dict(repetition_penalty=True),
    "repetition None": dict(repetition_penalty=None),
    "repetition str": dict(repetition_penalty="1"),
    "repetition complex": dict(repetition_penalty=1j),
    "repetition 2-D": dict(repetition_penalty=[[1.0]]),
    "repetition short": dict(repetition_penalty=[1.0, 1.0]),
    "repetition row 1": dict(repetition_penalty=[1.0, 0.0, 1.0]),
    "repetition row 2 NaN": dict(repetition_penalty=np.array([1, 2, NAN])),
    "repetition int list row": dict(repetition_penalty=[1, -2, 1]),
    "repetition np.float32 0": dict(repetition_penalty=np.float32(0)),
    "repetition 0-d -1": dict(repetition_penalty=np.array(-1.0)),
    "repetition object list": dict(repetition_penalty=[1, None, 1]),
    "repetition huge in list": dict(repetition_penalty=[1, 10**400, 1]),
    "repetition float16 row": dict(repetition_penalty=np.array([1, 0, 1], np.float16)),
    "frequency NaN": dict(frequency_penalty=NAN),
    "frequency -inf": dict(frequency_penalty=-INF),
    "frequency bool": dict(frequency_penalty=False),
    "frequency None": dict(frequency_penalty=None),
    "frequency row": dict(frequency_penalty=[0.0, 0.0, INF]),
    "frequency int beyond": dict(frequency_penalty=-(10**400)),
    "presence inf": dict(presence_penalty=INF),
    "presence row": dict(presence_penalty=np.array([NAN, 0.0, 0.0], np.float32)),
    "presence long": dict(presence_penalty=np.zeros(4)),
    # min_tokens: integers only, >= 0, and stop_ids to ban
    "min_tokens -1": dict(min_tokens=-1, stop_ids=[0]),
    "min_tokens -huge": dict(min_tokens=-(2**70), stop_ids=[0]),
    "min_tokens float": dict(min_tokens=1.0, stop_ids=[0]),
    "min_tokens float 1.5": dict(min_tokens=1.5),
    "min_tokens np.float64": dict(min_tokens=np.float64(2)),
    "min_tokens bool": dict(min_tokens=True),
    "min_tokens np.bool_": dict(min_tokens=np.bool_(False)),
    "min_tokens None": dict(min_tokens=None),
    "min_tokens str": dict(min_tokens="1"),
    "min_tokens object": dict(min_tokens=object),
    "min_tokens 2-D": dict(min_tokens=[[1]]),
    "min_tokens short": dict(min_tokens=[1, 2], stop_ids=[0]),
    "min_tokens row -1": dict(min_tokens=[1, -1, 0], stop_ids=[0]),
    "min_tokens array row -3": dict(min_tokens=np.array([0, -3, 1]), stop_ids=[0]),
    "min_tokens np.int64 -2": dict(min_tokens=np.int64(-2), stop_ids=[0]),
    "min_tokens list float item": dict(min_tokens=[1, 1.0, 2]),
    "min_tokens list bool item": dict(min_tokens=[1, True, 2]),
    "min_tokens float array": dict(min_tokens=np.zeros(B)),
    "min_tokens empty float list": dict(min_tokens=[]),
    "min_tokens bool array": dict(min_tokens=np.zeros(B, bool)),
    "min_tokens ragged list": dict(min_tokens=[[1], [1, 2]]),
    "min_tokens huge": dict(min_tokens=2**70, stop_ids=[1]),
    "min_tokens huge list": dict(min_tokens=[2**70, 0, 1], stop_ids=[1]),
    "min_tokens uint64 max": dict(min_tokens=np.full(B, 2**64 - 1, u64), stop_ids=[1]),
    "min_tokens without stop_ids": dict(min_tokens=1),
    "min_tokens row without stop_ids": dict(min_tokens=[0, 2, 0]),
    "min_tokens huge without stop_ids": dict(min_tokens=2**70),
    "min_tokens 0 without stop_ids, prompt": dict(min_tokens=0, prompt_ids=[[1], [2], [3]]),
    # the order: the first argument of the signature with a mistake is reported
    "order bitmask, bias": dict(token_bitmask=np.zeros(1, i64), logit_bias={V: 1.0}),
    "order bias, prompt": dict(logit_bias={V: 1.0}, prompt_ids=np.zeros((B, 1))),
    "order prompt, output": dict(prompt_ids=[[V], [0], [0]], output_ids=[[1.5], [0], [0]]),
    "order output, penalty": dict(output_ids=[[0], [0], [-3]], repetition_penalty=0),
    "order penalties": dict(repetition_penalty=[1, 1, 0], frequency_penalty=NAN),
    "order presence, min_tokens": dict(presence_penalty=INF, min_tokens=-1),
    "order min_tokens, stop": dict(min_tokens=-1, stop_ids=[V]),
    "order stop, min_tokens without": dict(stop_ids=[V], min_tokens=1),
    "order penalty with processors off": dict(frequency_penalty=[0, 0, NAN]),
}


@pytest.mark.parametrize("was_1d", [False, True], ids=["2-D", "1-D"])
@pytest.mark.parametrize("name", list(MISTAKES))
def test_prepare_raises_what_the_reference_raises(name, was_1d):
    assert_same_error(logits(was_1d), MISTAKES[name])


def test_the_table_is_mostly_errors():
    """Guard against a table that stopped testing errors (a case may be fine on one shape)."""
    for was_1d in (False, True):
        raised = [n for n, kw in MISTAKES.items() if assert_same_error(logits(was_1d), kw)]
        assert len(raised) >= 0.85 * len(MISTAKES), set(MISTAKES) - set(raised)


@pytest.mark.parametrize("nrows", [0, 1, 2])
@pytest.mark.parametrize("name", list(MISTAKES))
def test_prepare_raises_what_the_reference_raises_other_row_counts(name, nrows):
    """Zero rows (arguments are still checked) and one row, where lengths rarely match."""
    x = np.zeros((nrows, V), np.float32)
    assert_same_error(x, MISTAKES[name])


@settings(max_examples=60)
@given(st.data())
def test_two_mistakes_report_the_first_in_signature_order(data):
    names = data.draw(st.lists(st.sampled_from(sorted(MISTAKES)), min_size=2, max_size=3))
    kwargs = {}
    for n in names:
        kwargs.update(MISTAKES[n])
    assert_same_error(logits(data.draw(st.booleans())), kwargs)


# ----------------------------------------------------------------------------------------
# Good input: random valid forms of every argument.

INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


@st.composite
def id_lists(draw, vocab, max_len=6, padding=True):
    lo = -1 if padding else 0
    return draw(st.lists(st.integers(lo, vocab - 1), max_size=max_len))


def _as_dtype(draw, ids, allow_unsigned=True):
    """ids as an array of a dtype that holds them; sometimes big-endian or strided."""
    lo = min(ids, default=0)
    hi = max(ids, default=0)
    fits = [
        t
        for t in INT_DTYPES
        if np.iinfo(t).min <= lo
        and hi <= np.iinfo(t).max
        and (allow_unsigned or np.dtype(t).kind == "i")
    ]
    dt = np.dtype(draw(st.sampled_from(fits)))
    if draw(st.booleans()):
        dt = dt.newbyteorder(">")
    a = np.array(ids, dtype=dt)
    if draw(st.booleans()) and a.ndim == 1:  # a strided view holding the same ids
        b = np.zeros(2 * len(ids), dtype=dt)
        b[::2] = a
        a = b[::2]
    return a


@st.composite
def ids_argument(draw, nrows, vocab, was_1d, shared):
    """A valid ids argument in one of the accepted forms, and each row's ids."""
    forms = ["padded", "ragged arrays", "ragged lists", "object rows"]
    if was_1d or shared:
        forms += ["one list", "one array"]
    form = draw(st.sampled_from(forms))
    if form in ("one list", "one array"):
        ids = draw(id_lists(vocab))
        value = ids if form == "one list" else _as_dtype(draw, ids, allow_unsigned=-1 not in ids)
        if form == "one list" and draw(st.booleans()):
            value = tuple(value)
        return value, [ids] * nrows
    rows = [draw(id_lists(vocab)) for _ in range(nrows)]
    if form == "padded":
        L = draw(st.integers(max(map(len, rows), default=0), 8))
        a = np.full((nrows, L), -1, dtype=np.int64)
        for i, r in enumerate(rows):
            a[i, : len(r)] = r
        flat = a.reshape(-1).tolist()
        dt = draw(
            st.sampled_from([t for t in INT_DTYPES if np.iinfo(t).min <= min(flat, default=0)])
        )
        value = a.astype(dt)
        if draw(st.booleans()):
            value = value.astype(value.dtype.newbyteorder(">"))
        return value, [[v for v in a[i].tolist()] for i in range(nrows)]
    if form == "ragged arrays":
        signed = draw(st.booleans())
        value = [_as_dtype(draw, r, allow_unsigned=not signed and -1 not in r) for r in rows]
        if draw(st.booleans()):
            value = [np.asarray(r, dtype=np.int64) for r in rows]  # the fast path's form
    elif form == "ragged lists":
        value = [list(r) if draw(st.booleans()) else tuple(r) for r in rows]
    else:
        value = objects(*[np.array(r, dtype=np.int64) for r in rows]) if nrows else rows
    return value, rows


@st.composite
def penalty(draw, nrows, lo_open_zero):
    def one():
        if lo_open_zero:
            return draw(st.floats(1e-3, 1e3))
        return draw(st.floats(-1e3, 1e3))

    form = draw(st.sampled_from(["float", "int", "np scalar", "list", "array"]))
    if form == "float":
        return one()
    if form == "int":
        return draw(st.integers(1, 5)) if lo_open_zero else draw(st.integers(-5, 5))
    if form == "np scalar":
        return draw(st.sampled_from([np.float64, np.float32]))(one())
    vals = [one() for _ in range(nrows)]
    return vals if form == "list" else np.array(vals, dtype=draw(st.sampled_from(["f8", "f4"])))


@st.composite
def calls(draw):
    """(logits, kwargs, expected per-row content) with every argument valid."""
    was_1d = draw(st.booleans())
    vocab = draw(st.sampled_from([1, 5, 37, 100]))
    nrows = 1 if was_1d else draw(st.integers(0, 4))
    x = logits(was_1d, max(nrows, 1), vocab)[: None if was_1d else nrows]
    kw = {}
    if draw(st.booleans()):
        W = draw(st.integers(0, 5))
        shape = (W,) if draw(st.booleans()) else (nrows, W)
        words = draw(st.lists(st.integers(0, 2**32 - 1), min_size=int(np.prod(shape))))
        words = np.array(words[: int(np.prod(shape))], dtype=np.uint32).reshape(shape)
        kw["token_bitmask"] = words.astype(draw(st.sampled_from(["u4", "i4", ">i4", ">u4"])))
        if draw(st.booleans()):
            kw["token_bitmask"] = words.view(np.int32)  # the same bits, negative words
    if draw(st.booleans()):
        bias_values = st.one_of(
            st.floats(allow_nan=False, allow_infinity=False),
            st.just(-INF),
            st.integers(-(10**400), 10**20),
        )
        mapping = st.dictionaries(st.integers(0, vocab - 1), bias_values, max_size=6)
        if draw(st.booleans()):
            d = draw(mapping)
            kw["logit_bias"] = d if draw(st.booleans()) else Bias(d.items())
        else:
            kw["logit_bias"] = [draw(st.one_of(st.none(), mapping)) for _ in range(nrows)]
    for name in ("prompt_ids", "output_ids", "stop_ids"):
        if draw(st.booleans()):
            kw[name] = draw(ids_argument(nrows, vocab, was_1d, name == "stop_ids"))[0]
    if draw(st.booleans()):
        kw["repetition_penalty"] = draw(penalty(nrows, True))
    for name in ("frequency_penalty", "presence_penalty"):
        if draw(st.booleans()):
            kw[name] = draw(penalty(nrows, False))
    if draw(st.booleans()):
        n = st.integers(0, 5) | st.just(2**70)
        form = draw(st.sampled_from(["int", "np", "list", "array"]))
        if form == "int":
            kw["min_tokens"] = draw(n)
        elif form == "np":
            kw["min_tokens"] = np.int64(draw(st.integers(0, 5)))
        elif form == "list":
            kw["min_tokens"] = [draw(n) for _ in range(nrows)]
        else:
            kw["min_tokens"] = np.array(
                [draw(st.integers(0, 5)) for _ in range(nrows)], draw(st.sampled_from(["i8", "u4"]))
            )
        if "stop_ids" not in kw:
            kw["stop_ids"] = [0]
    return x, kw


def decode(ids, starts, nrows):
    """Each row's ids from a CSR (R == nrows, or R == 1 for every row), padding dropped."""
    R = starts.shape[0] - 1
    assert R == nrows or R == 1
    assert starts[0] == 0 and starts[-1] == ids.shape[0] and np.all(np.diff(starts) >= 0)
    rows = [ids[starts[r] : starts[r + 1]] for r in range(R)]
    rows = rows * nrows if R == 1 else rows
    return [r[r != -1].tolist() for r in rows]


def per_row(value, nrows):
    return [value] * nrows if np.ndim(value) == 0 else list(value)


def assert_layout(a, dtype):
    assert isinstance(a, np.ndarray) and a.dtype == dtype and a.dtype.isnative
    assert a.flags.c_contiguous


def assert_plan_matches_reference(x, kw, plain=False):
    """The plan holds what the reference's own parsing of the same arguments holds."""
    was_1d = x.ndim == 1
    nrows, vocab = (1, x.shape[0]) if was_1d else x.shape
    args = {**PROCESSOR_DEFAULTS, **kw}
    plan = prepare(x, plain=plain, **kw)
    want_none = ref._processors(nrows, vocab, was_1d, *args.values()) is None  # no error
    assert (plan is None) == want_none
    if plan is None:
        return
    assert type(plan) is pr.Plan and isinstance(plan, tuple)
    assert pr.Plan._fields == (
        "bitmask",
        "bias_ids",
        "bias_vals",
        "bias_starts",
        "prompt_ids",
        "prompt_starts",
        "output_ids",
        "output_starts",
        "stop_ids",
        "stop_starts",
        "repetition_penalty",
        "frequency_penalty",
        "presence_penalty",
        "min_tokens",
        "kept",
    )
    assert (
        plan.kept is None
    )  # (the tallies tokenpick.Sampler keeps: tests/test_sampler_processors.py)
    # bitmask: the words' bits, one row per logits row or one for every row
    allowed = ref._bitmask_rows(args["token_bitmask"], nrows, vocab)
    if allowed is None:
        assert plan.bitmask is None
    else:
        m = plan.bitmask
        assert_layout(m, np.uint32)
        assert m.ndim == 2 and m.shape[0] in (nrows, 1)
        words = np.asarray(args["token_bitmask"])
        assert m.shape[1] == words.shape[-1]
        want = words.astype(words.dtype.newbyteorder("=")).view(np.uint32).reshape(m.shape)
        assert np.array_equal(m, want)
        j = np.arange(vocab)
        for i in range(nrows):
            w = m[i if m.shape[0] == nrows else 0]
            W = w.shape[0]
            if W == 0:
                got = np.zeros(vocab, bool)
            else:
                bits = (w[np.minimum(j // 32, W - 1)] >> (j % 32).astype(np.uint32)) & 1
                got = (j < 32 * W) & (bits == 1)
            assert np.array_equal(got, allowed[i])
    # logit_bias: each row's (id, bias) pairs, in the mapping's order
    biases = ref._bias_rows(args["logit_bias"], nrows, vocab)
    if biases is None:
        assert plan.bias_ids is plan.bias_vals is plan.bias_starts is None
    else:
        assert_layout(plan.bias_ids, np.int64)
        assert_layout(plan.bias_vals, np.float64)
        assert_layout(plan.bias_starts, np.int64)
        assert plan.bias_ids.shape == plan.bias_vals.shape
        starts = plan.bias_starts
        R = starts.shape[0] - 1
        assert R in (nrows, 1) and starts[0] == 0 and starts[-1] == plan.bias_ids.shape[0]
        for i, (ids, vals) in enumerate(biases):
            r = i if R == nrows else 0
            seg = slice(starts[r], starts[r + 1])
            assert plan.bias_ids[seg].tolist() == ids.tolist()
            assert np.array_equal(plan.bias_vals[seg], vals)
    # ids: each row's ids, in order, padding dropped
    for name, shared in (("prompt_ids", False), ("output_ids", False), ("stop_ids", True)):
        ids, starts = getattr(plan, name), getattr(plan, name.replace("ids", "starts"))
        want = ref._id_rows(name, args[name], nrows, vocab, was_1d, shared)
        if want is None:
            assert ids is None and starts is None
            continue
        assert_layout(ids, np.int64)
        assert_layout(starts, np.int64)
        assert np.all((ids == -1) | ((ids >= 0) & (ids < vocab)))
        assert decode(ids, starts, nrows) == [w.tolist() for w in want]
    # per-row parameters: a Python number or a (nrows,) array of the reference's values
    for name, rule in (
        ("repetition_penalty", ref._REPETITION),
        ("frequency_penalty", ref._ADDITIVE_PENALTY),
        ("presence_penalty", ref._ADDITIVE_PENALTY),
    ):
        got = getattr(plan, name)
        if type(got) is not float:
            assert_layout(got, np.float64)
            assert got.shape == (nrows,)
        want = ref._float_values(name, args[name], nrows, lambda v: True, rule)
        assert per_row(got, nrows) == want[:nrows]
    got = plan.min_tokens
    if type(got) is not int:
        assert_layout(got, np.int64)
        assert got.shape == (nrows,)
    want = ref._int_values("min_tokens", args["min_tokens"], nrows, lambda v: True, "", False)
    assert per_row(got, nrows) == [min(v, 2**63 - 1) for v in want[:nrows]]


@pytest.mark.parametrize("plain", [False, True], ids=["general", "plain"])
@settings(max_examples=200)
@given(calls())
def test_plan_holds_what_the_reference_reads(plain, case):
    x, kw = case
    assert_plan_matches_reference(x, kw, plain)


@settings(max_examples=150)
@given(calls(), st.data())
def test_an_id_out_of_range_in_any_form_is_the_reference_error(case, data):
    """Push one id of one ids argument below -1 or to V or beyond, keeping its form."""
    x, kw = case
    names = [n for n in ("prompt_ids", "output_ids", "stop_ids") if n in kw]
    if not names:
        return
    name = data.draw(st.sampled_from(names))
    vocab = x.shape[-1]
    bad = data.draw(st.sampled_from([-2, -(2**31), vocab, vocab + 1, 2**40]))
    value = kw[name]

    def spoil(v):
        """A copy of v (one row or the whole argument) with one id replaced, or None."""
        if isinstance(v, np.ndarray) and v.dtype.kind in "iu":
            if v.size == 0:
                return None
            flat = v.astype(np.int64).reshape(-1)
            flat[data.draw(st.integers(0, flat.size - 1))] = bad
            kind = v.dtype.kind if bad >= 0 else "i"
            return flat.reshape(v.shape).astype(
                np.dtype(f"{kind}8").newbyteorder(v.dtype.byteorder)
            )
        if isinstance(v, (list, tuple)) and v and all(np.ndim(e) == 0 for e in v):
            out = list(v)
            out[data.draw(st.integers(0, len(out) - 1))] = bad
            return type(v)(out)
        return None

    if isinstance(value, np.ndarray) and value.dtype.kind == "O":
        value = value.tolist()
    new = spoil(value)
    if new is None and isinstance(value, (list, tuple)) and value:
        i = data.draw(st.integers(0, len(value) - 1))
        row = spoil(value[i])
        if row is not None:
            new = list(value)
            new[i] = row
    if new is None:
        return
    kw = {**kw, name: new}
    assert assert_same_error(x, kw) is not None


# ----------------------------------------------------------------------------------------
# Fixed cases: forms, conversions and no-copy.


def test_all_defaults_give_none_and_processors_off_still_check():
    x = logits(False)
    assert prepare(x) is None
    assert prepare(x, repetition_penalty=1, frequency_penalty=0, presence_penalty=0) is None
    assert prepare(x, repetition_penalty=[1.0, 2.0, 3.0], min_tokens=np.zeros(B, i64)) is None
    with pytest.raises(ValueError, match="frequency_penalty for row 2"):
        prepare(x, frequency_penalty=[0, 0, NAN])


def test_bitmask_native_words_are_not_copied():
    x = logits(False)
    for words in (np.arange(2 * B, dtype=np.int32).reshape(B, 2) - 3, np.ones(2, np.uint32)):
        m = prepare(x, token_bitmask=words).bitmask
        assert m.dtype == np.uint32 and np.shares_memory(m, words)
        assert m.shape == (B, 2) if words.ndim == 2 else m.shape == (1, 2)
    m = prepare(logits(True), token_bitmask=np.array([[-1, 5]], np.int32)).bitmask
    assert m.shape == (1, 2) and m.tolist() == [[2**32 - 1, 5]]
    m = prepare(x, token_bitmask=np.array([7, -2], ">i4")).bitmask
    assert m.dtype.isnative and m.tolist() == [[7, 2**32 - 2]]
    m = prepare(x, token_bitmask=np.zeros((B, 0), np.int32)).bitmask
    assert m.shape == (B, 0)


def test_padded_ids_keep_their_padding_and_rows():
    x = logits(False)
    a = np.array([[1, 2, -1], [-1, -1, -1], [9, -1, 3]], dtype=np.int32)
    plan = prepare(x, output_ids=a, prompt_ids=np.zeros((B, 0), i64))
    assert plan.output_ids.tolist() == a.reshape(-1).tolist()
    assert plan.output_starts.tolist() == [0, 3, 6, 9]
    assert plan.prompt_ids.shape == (0,) and plan.prompt_starts.tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("was_1d", [False, True])
def test_ids_are_the_plans_own_copy(was_1d):
    """The core reads ids without the GIL: a write to the caller's array must not reach them."""
    x = logits(was_1d)
    padded = np.array([[1, -1]] * (1 if was_1d else B), dtype=np.int64)
    for kw in (dict(output_ids=padded), dict(stop_ids=padded[0]), dict(prompt_ids=padded)):
        value = next(iter(kw.values()))
        plan = prepare(x, **kw)
        ids = getattr(plan, next(iter(kw)))
        assert not np.shares_memory(ids, value)


def test_one_list_serves_every_row():
    x = logits(False)
    plan = prepare(x, stop_ids=[4, -1, 2], logit_bias={3: -INF})
    assert plan.stop_ids.tolist() == [4, -1, 2] and plan.stop_starts.tolist() == [0, 3]
    assert plan.bias_starts.tolist() == [0, 1] and plan.bias_vals.tolist() == [-INF]
    plan = prepare(logits(True), output_ids=np.array([5, 5, -1], np.int8))
    assert plan.output_ids.tolist() == [5, 5, -1] and plan.output_starts.tolist() == [0, 3]


def test_bias_rows_with_none_are_empty_segments():
    plan = prepare(logits(False), logit_bias=[None, {2: 1.5, 0: -INF}, {}])
    assert plan.bias_starts.tolist() == [0, 0, 2, 2]
    assert plan.bias_ids.tolist() == [2, 0] and plan.bias_vals.tolist() == [1.5, -INF]


def test_min_tokens_beyond_int64_is_its_maximum():
    plan = prepare(logits(False), min_tokens=2**70, stop_ids=[1])
    assert plan.min_tokens == 2**63 - 1
    plan = prepare(logits(False), min_tokens=np.array([2**64 - 1, 0, 3], u64), stop_ids=[1])
    assert plan.min_tokens.dtype == np.int64 and plan.min_tokens.tolist() == [2**63 - 1, 0, 3]
    plan = prepare(logits(False), min_tokens=[2**70, 0, np.int64(3)], stop_ids=[1])
    assert plan.min_tokens.tolist() == [2**63 - 1, 0, 3]


def test_per_row_scalars_are_python_numbers():
    plan = prepare(
        logits(False),
        stop_ids=[1],
        repetition_penalty=np.float32(1.5),
        frequency_penalty=np.array(0.25),
        presence_penalty=2,
        min_tokens=np.uint8(3),
    )
    assert (plan.repetition_penalty, plan.frequency_penalty) == (1.5, 0.25)
    assert type(plan.presence_penalty) is float and plan.presence_penalty == 2.0
    assert type(plan.min_tokens) is int and plan.min_tokens == 3
    s = np.array([1.0, 9.0, 2.0, 9.0, 3.0])[::2]  # strided: made contiguous
    plan = prepare(logits(False), stop_ids=[1], repetition_penalty=s)
    assert plan.repetition_penalty.flags.c_contiguous
    assert plan.repetition_penalty.tolist() == [1.0, 2.0, 3.0]


FAST_AND_EXACT_IDS = [
    ([np.array([1, -1, 2]), np.array([], np.int64), np.array([3], np.int32)], False, False),
    ([np.array([1], np.uint8), np.array([-1, 9], np.int8), np.array([0], np.int16)], False, True),
    ([1, 2, -1, 9], True, False),
    ((1, 2, -1, 9), False, True),
    (np.array([[1, -1], [2, 3], [-1, -1]], np.int16), False, False),
    (np.array([4, 4, -1], np.int64), False, True),
]


@pytest.mark.parametrize("value, was_1d, shared", FAST_AND_EXACT_IDS)
def test_id_fast_paths_equal_the_exact_path(value, was_1d, shared):
    nrows = 1 if was_1d else B
    ids, starts = pr._id_rows("x", value, nrows, V, was_1d, shared)
    ids2, starts2 = pr._id_rows_exact("x", value, nrows, V, was_1d, shared)
    assert ids.dtype == ids2.dtype == np.int64
    assert ids.tolist() == ids2.tolist() and starts.tolist() == starts2.tolist()


@settings(max_examples=100)
@given(
    st.dictionaries(
        st.integers(-3, 2 * V) | st.sampled_from([2**70, -(2**63)]),
        st.floats(allow_nan=True) | st.integers(-(10**400), 10**400) | st.just(-INF),
        max_size=80,
    )
)
def test_bias_fast_path_equals_the_exact_path(d):
    got = outcome(lambda: pr._bias_entries("b", d, V))
    want = outcome(lambda: pr._bias_entries_exact("b", d, V))
    assert got == want
    if got is None:
        ids, vals = pr._bias_entries("b", d, V)
        ids2, vals2 = pr._bias_entries_exact("b", d, V)
        assert ids.tolist() == ids2.tolist()
        assert np.array_equal(vals, vals2)
        assert vals.dtype == np.float64 and ids.dtype == np.int64


@pytest.mark.parametrize("kwargs", [dict(temperature=-1), dict(top_p=2), dict(min_p=10**400)])
def test_float_rows_reports_a_python_int_as_the_reference_does(kwargs):
    """_params.float_rows, shared with the filters: an int shows as the float it checked."""
    import tokenpick as tp

    x = logits(False)
    want = outcome(lambda: ref.mask(x, **kwargs))
    assert want is not None and outcome(lambda: tp.mask(x, **kwargs)) == want
