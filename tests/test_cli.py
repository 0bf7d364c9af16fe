"""Smoke tests of the command line (``python -m tokenpick``), run as a user would, in a
subprocess with this interpreter, outside the source tree.  They check that the commands
exit 0 and print what they are for; the numbers are the business of the other tests."""

import json
import os
import subprocess
import sys

import pytest

import tokenpick

WORDS = ("wonderful", "cloudy", "nice", "hot", "gloomy", "delicious")


def run(*args, env=None, timeout=120, cwd=None):
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=cwd)
    return proc


def ok(proc):
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\n--- stdout ---\n{proc.stdout[-3000:]}\n"
        f"--- stderr ---\n{proc.stderr[-3000:]}")
    return proc.stdout


def test_demo_prints_the_six_words(tmp_path):
    out = ok(run("-m", "tokenpick", "demo", cwd=tmp_path))
    missing = [w for w in WORDS if w not in out]
    assert not missing, f"the demo does not mention {missing}:\n{out[:2000]}"
    assert "tokenpick" in out


def test_demo_is_reproducible(tmp_path):
    """The demo's draws are seeded: two runs print the same thing."""
    first = ok(run("-m", "tokenpick", "demo", cwd=tmp_path))
    second = ok(run("-m", "tokenpick", "demo", cwd=tmp_path))
    assert first == second


def test_bench_quick_run_prints_a_table(tmp_path):
    json_path = tmp_path / "bench.json"
    out = ok(run("-m", "tokenpick", "bench", "--vocab", "97", "--batch", "1", "2",
                 "--logits", "flat", "--min-time", "0.001", "--quiet",
                 "--json", str(json_path), cwd=tmp_path))
    assert tokenpick.__version__ in out, "the benchmark must print the version first"
    rows = [line for line in out.splitlines() if line.split()[:1] in (["greedy"], ["sample"],
                                                                      ["softmax"])]
    assert len(rows) >= 3, f"no table of timings:\n{out}"
    assert all(" 97 " in f" {r} " for r in rows), rows
    data = json.loads(json_path.read_text())
    assert data, "empty --json output"


def test_bench_without_reference(tmp_path):
    out = ok(run("-m", "tokenpick", "bench", "--vocab", "11", "--batch", "1",
                 "--logits", "peaked", "--min-time", "0.001", "--quiet", "--no-reference",
                 cwd=tmp_path))
    assert "greedy" in out and "sample" in out


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["demo", "--help"],
                                  ["bench", "--help"]])
def test_help_and_version(tmp_path, args):
    out = ok(run("-m", "tokenpick", *args, cwd=tmp_path))
    assert out.strip()


@pytest.mark.parametrize("args", [[], ["nonsense"], ["bench", "--vocab", "0"],
                                  ["bench", "--batch", "-3"]])
def test_bad_command_lines_fail_cleanly(tmp_path, args):
    proc = run("-m", "tokenpick", *args, cwd=tmp_path)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
