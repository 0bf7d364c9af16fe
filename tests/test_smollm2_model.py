"""examples/smollm2_model.py, the loader of the model behind tests/data/smollm2_logits.npy:
where it looks for the GGUF file and what it says when something is missing.  Nothing
is downloaded or loaded here (benchmarks/collect_logits.py does that)."""

import importlib.util
import os

import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


@pytest.fixture
def loader(monkeypatch, tmp_path):
    """The module, its cache folder in tmp_path and TOKENPICK_SMOLLM2_GGUF unset."""
    monkeypatch.syspath_prepend(EXAMPLES)
    module = importlib.import_module("smollm2_model")
    monkeypatch.delenv(module.ENV_VAR, raising=False)
    monkeypatch.setattr(module, "cache_dir", lambda: tmp_path / "cache")
    return module


def test_the_path_given_comes_first(loader, monkeypatch, tmp_path):
    given, other = tmp_path / "given.gguf", tmp_path / "other.gguf"
    given.write_bytes(b"GGUF")
    other.write_bytes(b"GGUF")
    monkeypatch.setenv(loader.ENV_VAR, str(other))
    assert loader.find_gguf(given) == given
    assert loader.find_gguf() == other
    missing = tmp_path / "missing.gguf"
    with pytest.raises(FileNotFoundError, match="missing.gguf: no such file"):
        loader.find_gguf(missing)
    monkeypatch.setenv(loader.ENV_VAR, str(missing))
    with pytest.raises(FileNotFoundError, match=loader.ENV_VAR):
        loader.find_gguf()


def test_the_cache_is_reused(loader, tmp_path):
    with pytest.raises(FileNotFoundError, match="allow the download"):
        loader.find_gguf(download=False)
    cached = tmp_path / "cache" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    cached.parent.mkdir()
    cached.write_bytes(b"GGUF")
    assert loader.find_gguf() == cached  # no download: the file is there


def test_missing_libraries_are_named(loader, monkeypatch):
    present = object()  # what find_spec returns for a module that is there
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "gguf" else present
    )
    with pytest.raises(ImportError, match="needs gguf: pip install torch transformers gguf"):
        loader.load_smollm2()
