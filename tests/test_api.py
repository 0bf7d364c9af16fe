"""The public surface: names and signatures of the table of docs/semantics.md (and the
reference's twins), the compiled core, configuration, SIMD dispatch and thread settings."""

import inspect
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import tokenpick as tp
from tokenpick import reference as ref

PROCESSORS = (
    "token_bitmask=None, logit_bias=None, prompt_ids=None, output_ids=None, "
    "repetition_penalty=1.0, frequency_penalty=0.0, presence_penalty=0.0, min_tokens=0, "
    "stop_ids=None"
)
FILTERS = (
    "temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, top_n_sigma=0.0, typical_p=1.0, "
    "epsilon=0.0, eta=0.0, xtc_threshold=0.1, xtc_probability=0.0, order='tokenpick'"
)
SIGNATURES = {
    "softmax": "(logits, temperature=1.0, *, out=None)",
    "log_softmax": "(logits, temperature=1.0, *, out=None)",
    "logsumexp": "(logits, temperature=1.0)",
    "greedy": "(logits)",
    "mask": f"(logits, *, {FILTERS}, {PROCESSORS}, seed=None, offset=0, out=None)",
    "top_k_mask": "(logits, top_k, *, out=None)",
    "top_p_mask": "(logits, top_p, *, temperature=1.0, out=None)",
    "min_p_mask": "(logits, min_p, *, temperature=1.0, out=None)",
    "filtered_probs": f"(logits, *, {FILTERS}, {PROCESSORS}, seed=None, offset=0, out=None)",
    "sample": f"(logits, *, {FILTERS}, {PROCESSORS}, "
    "seed=None, offset=0, uniforms=None, return_logprobs=False, num_threads=None)",
    "top_logprobs": "(logits, n, temperature=1.0)",
    "process_logits": f"(logits, *, {PROCESSORS}, out=None)",
    "token_logprobs": "(logits, tokens, temperature=1.0)",
    "uniform": "(seed, offset=0, index=0)",
    "verify": "(target_logits, draft_tokens, *, draft_probs=None, num_draft=None, "
    f"{FILTERS}, {PROCESSORS}, seed=None, offset=0, "
    "uniforms=None, return_logprobs=False, num_threads=None)",
}


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_signature(name):
    got = str(inspect.signature(getattr(tp, name)))
    assert got == SIGNATURES[name], f"tokenpick.{name}{got}"
    assert str(inspect.signature(getattr(ref, name))) == SIGNATURES[name], "reference twin"
    assert getattr(tp, name).__doc__, f"tokenpick.{name} has no docstring"


DOCS = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "docs", "semantics.md")


@pytest.mark.skipif(not os.path.exists(DOCS), reason="docs/ is not beside these tests")
def test_docs_list_every_public_function_with_its_signature():
    """docs/semantics.md's table of functions names every public function, with the
    signature it has, so that the documentation grows with the API."""
    import re

    with open(DOCS, encoding="utf-8") as f:
        table = f.read().split("## Functions", 1)[1].split("\n## ", 1)[0]
    first_cells = [line.split("|")[1] for line in table.splitlines() if line.startswith("|")]
    documented = {
        m.group(1): m.group(2).replace('"', "'")
        for cell in first_cells
        for m in re.finditer(r"`(\w+)(\([^`]*\))`", cell)
    }
    public = {name for name in tp.__all__ if callable(getattr(tp, name))}
    assert set(documented) == public, "documented but not public, or public but not documented"
    for name in public:
        assert documented[name] == str(inspect.signature(getattr(tp, name))), name


def test_thread_and_config_functions_exist():
    for name in ("set_num_threads", "get_num_threads", "show_config"):
        assert callable(getattr(tp, name))


def test_compiled_core_is_installed():
    """The suite tests the built package: a compiled _core, not the source tree alone."""
    from tokenpick import _core

    assert not _core.__file__.endswith((".py", ".pyx")), _core.__file__


def test_show_config_dicts():
    info = tp.show_config(mode="dicts")
    assert isinstance(info, dict)
    assert info["version"] == tp.__version__
    assert info["simd"] in tp._core.simd_paths()
    assert info["num_threads"] == tp.get_num_threads()


def test_show_config_prints(capsys):
    assert tp.show_config() is None
    out = capsys.readouterr().out
    assert tp.__version__ in out
    assert tp.show_config(mode="dicts")["simd"] in out


def test_simd_paths_and_force_simd(simd_path):
    paths = tp._core.simd_paths()
    assert "baseline" in paths
    assert tp.show_config(mode="dicts")["simd"] == simd_path, "force_simd is not in effect"
    previous = tp._core.force_simd("baseline")
    assert previous == simd_path
    assert tp._core.force_simd(simd_path) == "baseline"


def test_show_config_says_whether_the_path_is_emulated(simd_path):
    """Only the AVX2 and AVX-512 tables of a TOKENPICK_EMULATE_SIMD=1 build are emulated."""
    by = tp.show_config(mode="dicts")["simd_emulated_by"]
    assert by == tp._core.simd_emulation()
    if simd_path in ("avx2", "avx512") and by is not None:
        assert re.fullmatch(r"SIMDe \d+\.\d+\.\d+", by), by
    else:
        assert by is None


@pytest.mark.parametrize("bad", ["avx9000", "", "BASELINE?"])
def test_force_simd_rejects_unknown_paths(bad):
    before = tp.show_config(mode="dicts")["simd"]
    with pytest.raises((ValueError, KeyError)):
        tp._core.force_simd(bad)
    assert tp.show_config(mode="dicts")["simd"] == before


def _python(code, **env):
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        cwd="/",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip()


def test_tokenpick_simd_environment_variable_caps_the_path():
    out = _python(
        "import tokenpick; print(tokenpick.show_config(mode='dicts')['simd'])",
        TOKENPICK_SIMD="baseline",
    )
    assert out == "baseline"


def test_tokenpick_num_threads_environment_variable():
    assert (
        _python("import tokenpick; print(tokenpick.get_num_threads())", TOKENPICK_NUM_THREADS="1")
        == "1"
    )
    assert (
        _python("import tokenpick; print(tokenpick.get_num_threads())", TOKENPICK_NUM_THREADS="3")
        == "3"
    )


def test_default_threads_do_not_exceed_usable_cores():
    n = _python("import tokenpick; print(tokenpick.get_num_threads())", TOKENPICK_NUM_THREADS="")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert 1 <= int(n) <= cores


def test_set_num_threads_round_trip():
    before = tp.get_num_threads()
    try:
        for n in (1, 2, 7):
            tp.set_num_threads(n)
            assert tp.get_num_threads() == n
        tp.set_num_threads(np.int64(2))
        assert tp.get_num_threads() == 2
    finally:
        tp.set_num_threads(before)


def test_result_types():
    x = np.random.default_rng(0).standard_normal((3, 17)).astype(np.float32)
    assert tp.softmax(x).dtype == np.float32
    assert tp.log_softmax(x).dtype == np.float32
    assert tp.logsumexp(x).dtype == np.float32
    assert tp.greedy(x).dtype == np.int64
    assert tp.mask(x).dtype == np.float32
    assert tp.filtered_probs(x).dtype == np.float32
    assert tp.sample(x, seed=0).dtype == np.int64
    ids, lps = tp.top_logprobs(x, 4)
    assert ids.dtype == np.int64 and lps.dtype == np.float32 and ids.shape == (3, 4)
    assert isinstance(tp.uniform(3, 4), (float, np.floating))
    u = tp.uniform(np.arange(3), 4)
    assert u.dtype == np.float64 and u.shape == (3,)
    for r in (tp.greedy(x[0]), tp.sample(x[0], seed=0), tp.logsumexp(x[0])):
        assert np.ndim(r) == 0
