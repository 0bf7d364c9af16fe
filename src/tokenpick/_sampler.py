"""tokenpick.Sampler: the per-request state of a decoding loop, one call per step.

A server (or a script) adds each request with its sampling arguments and seed, then
calls ``step(logits, request_ids)`` once per decoding step with the logits of the
requests it ran: the Sampler samples all their rows in one batched :func:`sample`
call, with each request's own step count as the offset of its seed's stream and its
output so far as the history of its penalties, appends the tokens and says which
requests finished, and why.

Cost: the per-request values live in numpy columns indexed by slot, so a step gathers
them with one fancy index each (and only those that some request sets away from its
default); the batch's gathered arguments are kept while the same requests come back
in the same order, as in a decoding loop between arrivals and departures, so such a
step does no Python work per request; after the sampling, one pass in C appends the
tokens and checks them for EOS, stop ids and max_new_tokens.  Nothing here is
proportional to the vocabulary.

The logit processors a request keeps from step to step (its biases, the ids it bans
until min_tokens, and for its penalties the tallies of its prompt and outputs) are kept
in C (_core.KeptStore: each request's touched tokens, once each, with their tallies and
biases), which the sampling reads in place of id lists: a step adds each request's new
token there (one hash probe), where a call of :func:`sample` tallies the whole history
again.  The tokens are those of :func:`sample` given the same arguments as lists.
"""

import re
import threading
from collections import namedtuple
from collections.abc import Mapping

import numpy as np

from . import _api, _core, _processors
from . import _params as P

Step = namedtuple("Step", "tokens finished reasons logprobs")
Step.__doc__ = """What :meth:`Sampler.step` returns, one entry per request of the step.

tokens : ndarray of int64, shape (B,)
    Each request's new token (appended to its output, whatever the reason it finished).
finished : ndarray of bool, shape (B,)
    Whether the request finished with this token.
reasons : list of str or None
    Why: ``"eos"`` (one of the Sampler's EOS ids), ``"stop"`` (one of the request's
    ``stop_ids``), ``"length"`` (its ``max_new_tokens`` reached); None if it goes on.
logprobs : ndarray of float32, shape (B,), or None
    With ``return_logprobs=True``, each token's log-probability under
    :func:`filtered_probs` of the processed logits.
"""

# The per-request numeric arguments of sample: name -> (default, column dtype)
_COLUMNS = {
    "temperature": (1.0, np.float64),
    "top_k": (0, np.int64),
    "top_p": (1.0, np.float64),
    "min_p": (0.0, np.float64),
    "top_n_sigma": (0.0, np.float64),
    "typical_p": (1.0, np.float64),
    "epsilon": (0.0, np.float64),
    "eta": (0.0, np.float64),
    "xtc_threshold": (0.1, np.float64),
    "xtc_probability": (0.0, np.float64),
    "repetition_penalty": (1.0, np.float64),
    "frequency_penalty": (0.0, np.float64),
    "presence_penalty": (0.0, np.float64),
}
_PENALTIES = ("repetition_penalty", "frequency_penalty", "presence_penalty")
_FILTERS = tuple(name for name in _COLUMNS if name not in _PENALTIES)
_NO_LIMIT = np.iinfo(np.int64).max
_NO_IDS = np.empty(0, np.int64)
_REASONS = (None, "eos", "stop", "length")  # sampler_advance's codes
_ROW = re.compile(r"logits row (\d+)")  # how the core's errors name a row


class _Request:
    """One request's arguments that are not numeric columns."""

    __slots__ = ("rid", "slot", "order", "stop", "stop_set", "kept", "done")

    def __init__(self, rid, slot, order, stop, kept):
        self.rid = rid
        self.slot = slot
        self.order = order
        self.stop = stop
        self.stop_set = frozenset(stop.tolist())
        self.kept = kept  # whether it has processors kept in C (biases, bans, penalties)
        self.done = None  # the reason it finished, once it has


class _Batch:
    """The arguments of one composition of requests (their ids, in order), gathered."""

    __slots__ = ("key", "version", "slots", "rows", "seeds", "groups", "stops", "max_new",
                 "ends")  # fmt: skip


class _Group:
    """The rows of a batch that share an order: their filters, checked, and the fields
    of their processors' Plan (penalties, min_tokens, kept processors), made once for
    the steps of the batch."""

    __slots__ = ("rows", "filters", "fields", "kept")

    def __init__(self, rows, filters, fields, kept):
        self.rows = rows  # indices in the batch, or None: all of it
        self.filters = filters
        self.fields = fields  # the penalties and min_tokens
        self.kept = kept  # the KeptStore's rows of the group's requests, or None: none kept

    def plan(self, bitmask, nrows):
        """This step's Plan (None if there is nothing to process)."""
        if self.kept is None and bitmask is None:
            return None
        return _processors.kept_plan(nrows, bitmask, *self.fields, self.kept)


class Sampler:
    """Per-request sampling state for a decoding loop: one batched call per step.

    Parameters
    ----------
    vocab_size : int
        V, the width of every logits row given to :meth:`step`.
    eos_ids : sequence of int
        The end-of-sequence ids: a request that samples one finishes (``"eos"``).
        While a request has fewer than its ``min_tokens`` outputs they are banned,
        with its ``stop_ids``.
    num_threads : int, optional
        The most threads a step spreads its rows over (default:
        :func:`get_num_threads`).

    Notes
    -----
    A request's tokens depend only on its own logits, arguments and seed, never on
    which other requests share its steps or in what order: its offset is its own
    step count.  ``add``, ``remove``, ``step`` and the readers take the Sampler's lock,
    so threads may share one Sampler (their steps then run one at a time; the sampling
    itself releases the GIL).

    Examples
    --------
    >>> import numpy as np, tokenpick
    >>> s = tokenpick.Sampler(6, eos_ids=[5])
    >>> s.add("a", seed=1, temperature=0.7, top_p=0.9, max_new_tokens=3)
    >>> s.add("b", seed=2, temperature=0.0)
    >>> logits = np.log(np.array([[.1, .2, .3, .2, .1, .1]] * 2, dtype=np.float32))
    >>> out = s.step(logits, ["a", "b"])
    >>> out.tokens.tolist(), out.finished.tolist()
    ([4, 2], [False, False])
    """

    def __init__(self, vocab_size, *, eos_ids=(), num_threads=None):
        V = P.integer("vocab_size", vocab_size)
        if V < 1:
            raise ValueError(f"vocab_size must be >= 1, got {V}")
        self._V = V
        self._eos = _ids("eos_ids", eos_ids, V)
        self._threads = None if num_threads is None else P.thread_limit("num_threads", num_threads)
        self._lock = threading.RLock()
        self._requests = {}
        self._free = []  # slots of removed requests
        self._used = self._cap = 0  # slots ever taken, and the columns' length
        self._col = {name: np.empty(0, dtype) for name, (_, dtype) in _COLUMNS.items()}
        self._set = dict.fromkeys(_COLUMNS, 0)  # requests holding a value off its default
        self._seed = np.empty(0, np.uint64)
        self._steps = np.empty(0, np.int64)
        self._max_new = np.empty(0, np.int64)
        self._min_tokens = np.empty(0, np.int64)
        # the outputs, token t of slot s at [t, s]: a step writes one row's few lines
        self._out = np.empty((0, 0), np.int32)
        self._stopping = self._kept_on = 0  # requests with stop ids; with kept processors
        self._kept = _core.KeptStore()
        self._orders = {}  # order -> requests using it
        self._version = 0  # bumped when requests come or go: gathered batches go stale
        self._batch = None

    # ---- requests -------------------------------------------------------------------

    def add(
        self,
        request_id,
        *,
        seed,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        min_p=0.0,
        top_n_sigma=0.0,
        typical_p=1.0,
        epsilon=0.0,
        eta=0.0,
        xtc_threshold=0.1,
        xtc_probability=0.0,
        order="tokenpick",
        logit_bias=None,
        repetition_penalty=1.0,
        frequency_penalty=0.0,
        presence_penalty=0.0,
        prompt_ids=None,
        max_new_tokens=None,
        min_tokens=0,
        stop_ids=(),
        output_ids=None,
    ):
        """Start a request: its seed, its filters and processors (as :func:`sample`
        takes them, one value each), its prompt (for ``repetition_penalty``), and when it
        ends: ``max_new_tokens`` (None: no limit), its ``stop_ids`` and the Sampler's
        EOS ids, both banned until it has ``min_tokens`` outputs.  Every argument is
        checked here; nothing is added if one is wrong.

        ``output_ids`` resumes a request (preempted, or moved from another Sampler) with
        the outputs it had: its step count, the offset of its next draw, starts at their
        number, and they count for its penalties, ``min_tokens`` and
        ``max_new_tokens`` (which must leave it a step), so that its next tokens are
        those it would have drawn had it never stopped."""
        values = dict(
            temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
            top_n_sigma=top_n_sigma, typical_p=typical_p, epsilon=epsilon, eta=eta,
            xtc_threshold=xtc_threshold, xtc_probability=xtc_probability,
            repetition_penalty=repetition_penalty, frequency_penalty=frequency_penalty,
            presence_penalty=presence_penalty,
        )  # fmt: skip
        for name, v in values.items():
            if np.ndim(v) != 0:
                raise TypeError(f"{name} of one request must be a scalar, got {type(v).__name__}")
        seed = P.integer("seed", seed)
        if not 0 <= seed < P.U64_END:
            raise ValueError(f"seed must be an integer in [0, 2**64), got {seed}")
        P.filters(1, self._V, temperature, top_k, top_p, min_p, top_n_sigma, typical_p,
                  epsilon, eta, xtc_threshold, xtc_probability, order)  # fmt: skip
        stop = _ids("stop_ids", stop_ids, self._V)
        prompt = None if prompt_ids is None else _ids("prompt_ids", prompt_ids, self._V)
        outputs = _ids("output_ids", output_ids, self._V)
        min_tokens = P.integer("min_tokens", min_tokens)
        if min_tokens < 0:
            raise ValueError(f"min_tokens must be >= 0, got {min_tokens}")
        if max_new_tokens is not None:
            max_new_tokens = P.integer("max_new_tokens", max_new_tokens)
            if max_new_tokens < 1:
                raise ValueError(f"max_new_tokens must be >= 1 or None, got {max_new_tokens}")
            if outputs.size >= max_new_tokens:
                raise ValueError(
                    f"output_ids holds {outputs.size} tokens: max_new_tokens={max_new_tokens} "
                    "leaves the request no step"
                )
        if logit_bias is not None:  # one mapping, copied: the caller's later changes stay theirs
            if not isinstance(logit_bias, Mapping):
                raise TypeError(
                    f"logit_bias of one request must be a mapping {{id: bias}} or None, "
                    f"got {type(logit_bias).__name__}"
                )
            logit_bias = dict(logit_bias)
        # the processors, checked as sample checks them (the bias's ids and values)
        bias_ids, bias_vals, _ = _processors._biases(logit_bias, 1, self._V)
        _processors.prepare(
            1, self._V, True, None, logit_bias, prompt, None, repetition_penalty,
            frequency_penalty, presence_penalty, 0, None, plain=False,
        )  # fmt: skip
        # every value as its column holds it, before anything changes (top_k as the core
        # reads it: 0 wherever it keeps every token, so that no int overflows a column)
        values["top_k"] = values["top_k"] if 0 < values["top_k"] < self._V else 0
        row = {name: _COLUMNS[name][1](v) for name, v in values.items()}
        # what the core keeps of it: the tallies of its prompt (for the repetition
        # penalty alone) and outputs when a penalty is on, its biases, and the ids banned
        # until min_tokens
        counted = any(row[name] != _COLUMNS[name][0] for name in _PENALTIES)
        kept_prompt = prompt if row["repetition_penalty"] != 1.0 else None
        banned = np.union1d(self._eos, stop) if min_tokens > 0 else _NO_IDS
        kept = counted or bias_ids is not None or banned.size > 0
        r = _Request(request_id, -1, order, stop, kept)
        with self._lock:
            if request_id in self._requests:
                raise ValueError(f"request {request_id!r} is already in the sampler")
            r.slot = slot = self._take_slot()
            if outputs.size > self._out.shape[0]:
                self._out = _longer(self._out, outputs.size)
            try:
                self._kept.set(slot, counted, kept_prompt, bias_ids, bias_vals, banned, outputs)
            except BaseException:
                self._free.append(slot)
                raise
            self._out[: outputs.size, slot] = outputs
            for name, v in row.items():
                self._col[name][slot] = v
                self._set[name] += v != _COLUMNS[name][0]
            self._seed[slot] = seed
            self._steps[slot] = outputs.size
            self._max_new[slot] = _NO_LIMIT if max_new_tokens is None else max_new_tokens
            self._min_tokens[slot] = min_tokens
            self._stopping += stop.size > 0
            self._kept_on += kept
            self._orders[order] = self._orders.get(order, 0) + 1
            self._requests[request_id] = r
            self._version += 1

    def remove(self, request_id):
        """End a request (finished or not); returns its output ids (int64)."""
        with self._lock:
            r = self._request(request_id)
            out = self._outputs(r)
            s = r.slot
            for name, (default, _) in _COLUMNS.items():
                self._set[name] -= self._col[name][s] != default
            self._stopping -= r.stop.size > 0
            self._kept_on -= r.kept
            self._kept.clear(s)
            self._orders[r.order] -= 1
            del self._requests[request_id]
            self._free.append(s)
            self._version += 1
            return out

    def output_ids(self, request_id):
        """A copy of the request's output ids so far (int64)."""
        with self._lock:
            return self._outputs(self._request(request_id))

    def finish_reason(self, request_id):
        """Why the request finished (``"eos"``, ``"stop"``, ``"length"``), or None."""
        with self._lock:
            return self._request(request_id).done

    def __len__(self):
        return len(self._requests)

    def __contains__(self, request_id):
        return request_id in self._requests

    # ---- the step -------------------------------------------------------------------

    def step(self, logits, request_ids, *, token_bitmask=None, return_logprobs=False):
        """Sample one token for each of the given requests, from their rows of logits.

        Parameters
        ----------
        logits : array_like, shape (B, V) or (B, 1, V)
            Row b is request ``request_ids[b]``'s (any dtype and framework
            :func:`sample` reads).
        request_ids : sequence of B request ids
            Each added and not finished, each once.
        token_bitmask : array_like, optional
            This step's grammar bitmask, as :func:`sample` takes it.
        return_logprobs : bool
            Also give each token's log-probability.

        Returns
        -------
        Step
            ``(tokens, finished, reasons, logprobs)``; a finished request stays in the
            Sampler (for :meth:`output_ids`) until :meth:`remove`.
        """
        with self._lock:
            b = self._batch_for(request_ids)
            shape = getattr(logits, "shape", None)
            if shape is None:
                logits = np.asarray(logits)
                shape = logits.shape
            if not (len(shape) in (2, 3) and shape[0] == len(b.slots) and shape[-1] == self._V
                    and (len(shape) == 2 or shape[1] == 1)):  # fmt: skip
                raise ValueError(
                    f"logits must be ({len(b.slots)}, {self._V}) or ({len(b.slots)}, 1, "
                    f"{self._V}): a row of V={self._V} per request; got shape {tuple(shape)}"
                )
            steps = self._steps[b.slots]
            out = self._sample(logits, b, steps, token_bitmask, return_logprobs)
            tokens, logprobs = out if return_logprobs else (out, None)
            return self._advance(b, steps, tokens, logprobs)

    def _sample(self, logits, b, steps, bitmask, return_logprobs):
        """One draw per order among the batch's requests (one in the usual case): the
        core of :func:`sample`, with the filters and processors checked at add, this
        step's bitmask checked here, and the processors the core keeps."""
        x = P.as_logits(logits)
        if len(b.groups) == 1:
            g = b.groups[0]
            one = len(steps) == 1  # Python ints: sample's shortest way
            return _api.draw(
                x, g.filters, g.plan(bitmask, len(steps)), None,
                int(b.seeds[0]) if one else b.seeds, int(steps[0]) if one else steps,
                None, return_logprobs, self._threads,
            )  # fmt: skip
        tokens = np.empty(len(b.slots), np.int64)
        logprobs = np.empty(len(b.slots), np.float32)
        for g in b.groups:
            rows = g.rows
            mask = (
                bitmask if bitmask is None or np.ndim(bitmask) == 1 else np.asarray(bitmask)[rows]
            )
            try:
                got = _api.draw(
                    x[rows], g.filters, g.plan(mask, len(rows)), None, b.seeds[rows],
                    steps[rows], None, return_logprobs, self._threads,
                )  # fmt: skip
            except ValueError as e:  # name the row of the step, not of the order's rows
                step_row = lambda m, rows=rows: f"logits row {rows[int(m[1])]}"  # noqa: E731
                raise type(e)(_ROW.sub(step_row, str(e))) from e
            if return_logprobs:
                tokens[rows], logprobs[rows] = got
            else:
                tokens[rows] = got
        return (tokens, logprobs) if return_logprobs else tokens

    def _advance(self, b, steps, tokens, logprobs):
        """Append the tokens to the requests' outputs (and their kept processors), and
        return the Step; the requests they finish are marked so.  The appending and the
        checks for EOS, stop ids and max_new_tokens are one pass in C over the B rows:
        run after the sampling swept the logits through the caches, the fewer arrays
        a step touches here, the fewer of its reads miss."""
        args = (self._steps, b.slots, tokens, self._eos, b.stops, b.max_new, b.ends, self._kept)
        ends = _core.sampler_advance(self._out, *args)
        if ends < 0:  # a request's outputs outgrew the table: longer, then again
            self._out = _longer(self._out, int(steps.max()) + 1)
            ends = _core.sampler_advance(self._out, *args)
        reasons = [None] * len(tokens)
        if not ends:
            return Step(tokens, np.zeros(len(tokens), bool), reasons, logprobs)
        finished = b.ends != 0
        for i in np.flatnonzero(finished).tolist():
            r = self._requests[b.key[i]]
            code = b.ends[i]
            if code == 2 and int(tokens[i]) not in r.stop_set:  # another request's stop id
                code = 3 if steps[i] + 1 >= b.max_new[i] else 0
            if code:
                reasons[i] = r.done = _REASONS[code]
            else:
                finished[i] = False
        if any(reasons):
            self._version += 1  # the finished cannot step again
        return Step(tokens, finished, reasons, logprobs)

    # ---- the batch ------------------------------------------------------------------

    def _batch_for(self, request_ids):
        """The gathered arguments of these requests in this order (kept between steps)."""
        key = request_ids if type(request_ids) is tuple else tuple(request_ids)
        b = self._batch
        if b is not None and b.version == self._version and b.key == key:
            return b
        b = self._gather(key)
        self._batch = b
        return b

    def _gather(self, key):
        B = len(key)
        if B == 0:
            raise ValueError("request_ids is empty: a step samples at least one request")
        requests = self._requests
        rs = []
        for rid in key:
            r = requests.get(rid)
            if r is None:
                raise ValueError(f"request {rid!r} is not in the sampler (add it first)")
            if r.done is not None:
                raise ValueError(f"request {rid!r} has finished ({r.done}); remove it")
            rs.append(r)
        if len(set(key)) != B:
            raise ValueError("request_ids holds a request more than once")
        b = _Batch()
        b.key, b.version = key, self._version
        b.slots = slots = np.fromiter((r.slot for r in rs), np.int64, B)
        b.ends = np.empty(B, np.uint8)
        b.seeds = self._seed[slots]
        fixed = {}  # the values some request sets off their default: scalars where all agree
        for name, (default, _) in _COLUMNS.items():
            if self._set[name]:
                column = self._col[name][slots]
                if (column == column[0]).all():  # one value for all: a scalar, checked faster
                    if column[0] != default:
                        fixed[name] = column[0].item()
                elif (column != default).any():
                    fixed[name] = column
        proc = {k: fixed.get(k, _COLUMNS[k][0]) for k in _PENALTIES}
        proc["min_tokens"] = 0
        kept = self._kept_on and any(r.kept for r in rs)
        if kept:
            mins = self._min_tokens[slots]
            if (mins > 0).any():
                proc["min_tokens"] = mins
        orders = [o for o, n in self._orders.items() if n]
        if len(orders) == 1:
            by = {orders[0]: None}
        else:
            by = {}
            for i, r in enumerate(rs):
                by.setdefault(r.order, []).append(i)
        b.groups = []  # the filters and plan of each order's rows, checked once
        for order, rows in by.items():
            rows = None if rows is None else np.array(rows, dtype=np.intp)
            n = B if rows is None else len(rows)
            part = {k: v for k, v in fixed.items() if k not in _PENALTIES}
            if rows is not None:
                part = {k: _rows_of(v, rows) for k, v in part.items()}
            filters = P.filters(n, self._V, *(part.get(k, _COLUMNS[k][0]) for k in _FILTERS), order)
            fields = [_rows_of(proc[k], rows) if rows is not None else proc[k]
                      for k in (*_PENALTIES, "min_tokens")]  # fmt: skip
            kept_rows = self._kept.rows(slots if rows is None else slots[rows]) if kept else None
            b.groups.append(_Group(rows, filters, fields, kept_rows))
        b.stops = _NO_IDS
        if self._stopping:
            held = [r.stop for r in rs if r.stop.size]
            if held:
                b.stops = np.unique(np.concatenate(held))
        b.max_new = self._max_new[slots]
        return b

    # ---- storage --------------------------------------------------------------------

    def _take_slot(self):
        if self._free:
            return self._free.pop()
        slot = self._used
        self._used += 1
        if slot < self._cap:
            return slot
        cap = max(8, 2 * self._cap)
        for name in self._col:
            self._col[name] = _grown(self._col[name], cap)
        self._seed = _grown(self._seed, cap)
        self._steps = _grown(self._steps, cap)
        self._max_new = _grown(self._max_new, cap)
        self._min_tokens = _grown(self._min_tokens, cap)
        out = np.empty((max(16, self._out.shape[0]), cap), np.int32)
        out[: self._out.shape[0], : self._cap] = self._out
        self._out = out
        self._cap = cap
        return slot

    def _request(self, request_id):
        r = self._requests.get(request_id)
        if r is None:
            raise KeyError(f"request {request_id!r} is not in the sampler")
        return r

    def _outputs(self, r):
        return self._out[: self._steps[r.slot], r.slot].astype(np.int64)


def _ids(name, value, V):
    """A 1-D int64 array of ids in [0, V): from an int, a sequence of ints or a 1-D
    integer array (None: none)."""
    if value is None:
        return np.empty(0, np.int64)
    if isinstance(value, np.ndarray):
        if value.ndim != 1 or value.dtype.kind not in "iu":
            raise TypeError(f"{name} must be a 1-D integer array or a sequence of ints")
        if value.dtype.kind == "u" and value.size and value.max() >= V:
            raise ValueError(f"{name} must hold ids in [0, {V}); got {value.max()}")
        ids = value.astype(np.int64)
    else:
        items = [value] if not hasattr(value, "__iter__") else list(value)
        ids = [P.integer(name, v) for v in items]
        bad = [v for v in ids if not 0 <= v < V]
        if bad:
            raise ValueError(f"{name} must hold ids in [0, {V}); got {bad[0]}")
        return np.array(ids, dtype=np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= V):
        raise ValueError(f"{name} must hold ids in [0, {V}); got {ids[(ids < 0) | (ids >= V)][0]}")
    return ids


def _grown(a, cap):
    out = np.zeros(cap, a.dtype)
    out[: a.shape[0]] = a
    return out


def _longer(a, need):
    """a (L, slots) with at least need rows (doubling); the new rows unset."""
    L = a.shape[0]
    while L < need:
        L = max(16, 2 * L)
    out = np.empty((L, a.shape[1]), a.dtype)
    out[: a.shape[0]] = a
    return out


def _rows_of(value, rows):
    """value's entries for these rows: a per-row array (by its first axis) or list, or
    a scalar for all."""
    if isinstance(value, np.ndarray):
        return value[rows]
    if isinstance(value, list):
        return [value[i] for i in rows]
    return value
