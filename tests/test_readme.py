"""The README's Python examples run as written against the installed package (those
that import an optional peer skip without it)."""

import importlib.util
import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = (
    re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    if README.exists()
    else []
)


@pytest.mark.skipif(not BLOCKS, reason="README.md is not beside the tests")
@pytest.mark.parametrize("number", range(len(BLOCKS)))
def test_readme_example_runs(number):
    code = BLOCKS[number]
    for peer in ("torch", "transformers", "xgrammar"):
        if re.search(rf"\bimport {peer}\b|\bfrom {peer}\b", code) and not importlib.util.find_spec(
            peer
        ):
            pytest.skip(f"the example needs {peer}")
    exec(compile(code, f"README.md example {number}", "exec"), {"__name__": "readme"})
