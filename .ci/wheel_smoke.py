"""What one CPU makes of the installed wheel: run by .ci/wheels natively and
under CPU emulation (qemu-user), from outside the source tree.

Prints one JSON object: show_config()'s SIMD path and the paths the CPU
offers, and a digest of the tokens (and the rounded log-probabilities) that a
fixed set of calls draws.  Tokens must agree on every CPU: the paths differ
only in the last bits of their exponentials, which moves no draw here.  A
second digest, of every result's exact bytes (softmax and log_softmax too),
agrees only between runs of the same kernel table: .ci/emulated holds the
SIMDe-emulated tables to the native ones with it.
"""

import hashlib
import json
import sys

import numpy as np

import tokenpick as tp


def logits(rng, kind, B, V):
    if kind == "flat":
        return rng.standard_normal((B, V)).astype(np.float32)
    x = 2.0 * rng.standard_normal((B, V))
    for row in x:  # LM-like: a few hundred tokens well above the rest
        hot = rng.choice(V, size=300, replace=False)
        row[hot] += 18.0 - 2.5 * np.log(np.arange(1, 301))
    x[:, rng.choice(V, size=V // 10, replace=False)] = -np.inf
    return x.astype(np.float32)


def draws(exact):
    rng = np.random.default_rng(20261122)
    calls = [
        dict(temperature=0.8),
        dict(top_k=50),
        dict(top_p=0.9),
        dict(top_k=50, top_p=0.9, min_p=0.05),
        dict(temperature=0.0),
    ]
    for kind in ("peaked", "flat"):
        for V in (1000, 50000):
            x = logits(rng, kind, 4, V)
            for kwargs in calls:
                tokens, lps = tp.sample(x, seed=7, offset=3, return_logprobs=True, **kwargs)
                exact.update(tokens.tobytes() + lps.tobytes())
                yield kind, V, kwargs, tokens.tolist(), np.round(lps.astype(np.float64), 3).tolist()
            yield kind, V, "greedy", tp.greedy(x).tolist(), None
            ids, lps = tp.top_logprobs(x, 5)
            exact.update(ids.tobytes() + lps.tobytes())
            yield kind, V, "top_logprobs", ids.tolist(), None
            for T in (1.0, 0.7):
                exact.update(
                    tp.softmax(x, T).tobytes()
                    + tp.log_softmax(x, T).tobytes()
                    + tp.logsumexp(x, T).tobytes()
                )


def main():
    config = tp.show_config("dicts")
    exact = hashlib.sha256()
    results = list(draws(exact))
    digest = hashlib.sha256(json.dumps(results, sort_keys=True, default=str).encode()).hexdigest()
    json.dump(
        {
            "module": tp.__file__,
            "simd": config["simd"],
            "simd_available": config["simd_available"],
            "simd_emulated_by": config.get("simd_emulated_by"),
            "version": config["version"],
            "calls": len(results),
            "tokens_sha256": digest,
            "outputs_sha256": exact.hexdigest(),
        },
        sys.stdout,
    )
    print()


if __name__ == "__main__":
    main()
