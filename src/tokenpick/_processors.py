"""TEMPORARY stand-in (lead's test scaffold; replaced by the real module)."""
from collections import namedtuple
import numpy as np

Plan = namedtuple("Plan", "bitmask bias_ids bias_vals bias_starts prompt_ids prompt_starts output_ids output_starts stop_ids stop_starts repetition_penalty frequency_penalty presence_penalty min_tokens")

def _csr(v, nrows, shared_1d):
    if v is None:
        return None, None
    if isinstance(v, np.ndarray) and v.ndim == 2:
        a = v.astype(np.int64)
        return np.ascontiguousarray(a.reshape(-1)), np.arange(a.shape[0] + 1, dtype=np.int64) * a.shape[1]
    if shared_1d or all(np.ndim(e) == 0 for e in v):
        a = np.asarray(v, dtype=np.int64).reshape(-1)
        return a, np.array([0, a.size], dtype=np.int64)
    rows = [np.asarray(e, dtype=np.int64).reshape(-1) for e in v]
    starts = np.zeros(len(rows) + 1, dtype=np.int64)
    starts[1:] = np.cumsum([r.size for r in rows])
    return np.concatenate(rows) if rows else np.empty(0, np.int64), starts

def prepare(nrows, V, was_1d, token_bitmask, logit_bias, prompt_ids, output_ids, rep, freq, pres, min_tokens, stop_ids):
    if all(a is None for a in (token_bitmask, logit_bias, prompt_ids, output_ids, stop_ids)):
        return None
    bm = None
    if token_bitmask is not None:
        a = np.asarray(token_bitmask)
        bm = np.ascontiguousarray(a.astype(a.dtype.newbyteorder("="))).view(np.uint32)
        bm = bm.reshape(-1, bm.shape[-1])
    bi = bv = bs = None
    if logit_bias is not None:
        maps = [logit_bias] if isinstance(logit_bias, dict) else logit_bias
        ids = [np.array(list((m or {}).keys()), dtype=np.int64) for m in maps]
        vals = [np.array(list((m or {}).values()), dtype=np.float64) for m in maps]
        bs = np.zeros(len(maps) + 1, np.int64); bs[1:] = np.cumsum([len(i) for i in ids])
        bi = np.concatenate(ids); bv = np.concatenate(vals)
    pi, ps = _csr(prompt_ids, nrows, was_1d)
    oi, os_ = _csr(output_ids, nrows, was_1d)
    si, ss = _csr(stop_ids, nrows, True)
    col = lambda v, dt: v if np.ndim(v) == 0 else np.ascontiguousarray(np.broadcast_to(np.asarray(v, dt), (nrows,)))
    return Plan(bm, bi, bv, bs, pi, ps, oi, os_, si, ss, float(rep) if np.ndim(rep)==0 else col(rep, np.float64), float(freq) if np.ndim(freq)==0 else col(freq, np.float64), float(pres) if np.ndim(pres)==0 else col(pres, np.float64), int(min_tokens) if np.ndim(min_tokens)==0 else col(min_tokens, np.int64))
