"""Smoke tests of the command line (``python -m tokenpick``), run as a user would, in a
subprocess with this interpreter, outside the source tree.  They check that the commands
exit 0 and print what they are for; the numbers are the business of the other tests.
The few that simulate a missing optional dependency (torch, llama_cpp, matplotlib) call
the benchmark's ``main`` in this process instead, with the module hidden from ``import``."""

import argparse
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tokenpick
from tokenpick import bench, reference
from tokenpick.bench import cases, cli, report, timing

WORDS = ("wonderful", "cloudy", "nice", "hot", "gloomy", "delicious")


def run(*args, env=None, timeout=120, cwd=None):
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=cwd,
    )
    return proc


def ok(proc):
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\n--- stdout ---\n{proc.stdout[-3000:]}\n"
        f"--- stderr ---\n{proc.stderr[-3000:]}"
    )
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
    out = ok(
        run(
            "-m",
            "tokenpick",
            "bench",
            "--vocab",
            "97",
            "--batch",
            "1",
            "2",
            "--logits",
            "flat",
            "--min-time",
            "0.001",
            "--quiet",
            "--json",
            str(json_path),
            cwd=tmp_path,
        )
    )
    assert tokenpick.__version__ in out, "the benchmark must print the version first"
    title, table = table_of(out)
    assert title == "Logits: flat (synthetic)", title
    rows = [
        line
        for line in table.splitlines()
        if line.split()[:1] in (["greedy"], ["sample"], ["softmax"])
    ]
    assert len(rows) >= 3, f"no table of timings:\n{out}"
    assert all(" 97 " in f" {r} " for r in rows), rows
    assert "x 1 thread" not in table, "no B >= 64, so no x 1 thread column"
    assert "Logit processors:" in out, out
    data = json.loads(json_path.read_text())
    assert data and "processors" in data, "empty --json output"


@pytest.fixture(scope="module")
def tiny_bench(tmp_path_factory):
    """One small bench run without peers, shared by the tests that read its sections:
    (what it printed, what it saved with --json)."""
    tmp_path = tmp_path_factory.mktemp("bench")
    json_path = tmp_path / "bench.json"
    out = ok(
        run(
            "-m",
            "tokenpick",
            "bench",
            *TINY_BENCH,
            "--quiet",
            "--no-reference",
            "--no-torch",
            "--json",
            str(json_path),
            cwd=tmp_path,
        )
    )
    return out, json.loads(json_path.read_text())


def test_bench_prints_and_saves_the_call_overhead(tiny_bench):
    out, saved = tiny_bench
    section = out[out.index("Call overhead:") :]
    assert "V=256" in section and "offset=" in section, section
    assert "tokenpick us/call" in section and "np.max us/call" in section, section
    labels = [op.label for op in cases.OVERHEAD_OPS]
    assert all(label in section for label in labels), section
    overhead = saved["overhead"]
    assert [r["op"] for r in overhead] == labels
    for result in overhead:
        assert (result["V"], result["B"]) == (256, 1), result
        assert "offset" in result["kwargs"], result
        assert result["timings"]["tokenpick"]["us_per_row"] > 0, result
        assert result["timings"]["np.max"]["us_per_row"] > 0, result


def test_bench_prints_and_saves_the_python_threads_throughput(tiny_bench):
    out, saved = tiny_bench
    section = out[out.index("Python threads:") :]
    assert f"V={cases.PY_THREADS_V}" in section, section
    assert "1 thread calls/s" in section and "2 threads calls/s" in section, section
    entries = saved["python_threads"]
    assert [e["op"] for e in entries] == [op.label for op in cases.PY_THREADS_OPS]
    for entry in entries:
        assert entry["error"] is None, entry
        rates = entry["calls_per_second"]
        assert sorted(rates) == ["1", "2"] and all(r > 0 for r in rates.values()), entry
        label_row = next(
            line for line in section.splitlines() if line.startswith(entry["op"] + " ")
        )
        assert f"{rates['2'] / rates['1']:.1f}x" in label_row, (label_row, rates)


def test_python_threads_calls_per_second_counts_every_call():
    calls = []
    rate = timing.calls_per_second(lambda: calls.append(1), 2, 50)
    assert len(calls) == 100 and rate > 0


def test_bench_without_reference(tmp_path):
    out = ok(
        run(
            "-m",
            "tokenpick",
            "bench",
            "--vocab",
            "11",
            "--batch",
            "1",
            "--logits",
            "peaked",
            "--min-time",
            "0.001",
            "--quiet",
            "--no-reference",
            "--no-processors",
            cwd=tmp_path,
        )
    )
    assert "greedy" in out and "sample" in out


TINY_BENCH = ("--vocab", "1000", "--batch", "1", "--min-time", "0.001")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def header(out):
    """The benchmark's header: what it prints before the first blank line."""
    return out.split("\n\n", 1)[0]


def table_of(out):
    """The benchmark's table, (its title, its lines from the column headers on): the
    block after the header."""
    title, table = out.split("\n\n")[1].split("\n", 1)
    return title, table


def hide_modules(monkeypatch, name):
    """Make ``import name`` (and of its submodules) raise ImportError for this test."""
    for loaded in [m for m in sys.modules if m.startswith(f"{name}.")]:
        monkeypatch.setitem(sys.modules, loaded, None)
    monkeypatch.setitem(sys.modules, name, None)


def test_bench_times_torch_when_it_is_installed(tmp_path):
    torch = pytest.importorskip("torch")
    json_path = tmp_path / "bench.json"
    proc = run(
        "-m",
        "tokenpick",
        "bench",
        *TINY_BENCH,
        "--no-llama",
        "--json",
        str(json_path),
        cwd=tmp_path,
    )
    out = ok(proc)
    assert f"torch {torch.__version__}" in header(out), header(out)
    assert "torch speedup" in out, out
    data = json.loads(json_path.read_text())
    assert data["environment"]["torch"]["version"] == torch.__version__
    assert data["environment"]["torch"]["num_threads"] == data["environment"]["num_threads"]
    assert "torch" in [p["name"] for p in data["peers"]]
    for result in data["results"] + data["overhead"]:
        assert result["timings"]["torch"]["us_per_row"] > 0, result
        assert result["speedup"]["torch"] > 0, result
    # progress: one step per timing of tokenpick, np.max, the reference and torch, then
    # one per op and thread count of the Python-threads section, then three per case of
    # the logit-processors section (tokenpick's rows, torch, the in-place bitmask)
    steps = (len(data["results"]) + len(data["overhead"])) * 4
    last = steps + len(cases.PY_THREADS_OPS) * len(cases.PY_THREADS_COUNTS)
    last += 3 * len(data["processors"].get("cases", []))
    assert f"[{steps}/{last}] torch: " in proc.stderr, proc.stderr[-2000:]
    assert f"[{last}/{last}] " in proc.stderr, proc.stderr[-2000:]


def test_bench_no_torch_leaves_the_torch_column_out(tmp_path):
    out = ok(
        run(
            "-m",
            "tokenpick",
            "bench",
            *TINY_BENCH,
            "--quiet",
            "--no-torch",
            "--no-reference",
            cwd=tmp_path,
        )
    )
    assert "torch: not timed (--no-torch)" in header(out), header(out)
    assert "torch speedup" not in out, out


def test_bench_without_torch_installed_says_so(monkeypatch, capsys):
    hide_modules(monkeypatch, "torch")
    monkeypatch.setattr(os, "environ", dict(os.environ))  # the run may set OMP_WAIT_POLICY
    status = bench.main(
        [
            "--vocab",
            "97",
            "--batch",
            "1",
            "--logits",
            "flat",
            "--min-time",
            "0.001",
            "--quiet",
            "--no-reference",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0, out
    assert "torch: absent" in header(out), header(out)
    assert "torch speedup" not in out, out


SCALING_BENCH = (
    "--vocab",
    "1000",
    "--batch",
    "1",
    "64",
    "--min-time",
    "0.001",
    "--logits",
    "flat",
    "--quiet",
    "--no-reference",
    "--no-torch",
    "--no-processors",
)


def test_bench_times_large_batches_at_one_thread(tmp_path):
    json_path = tmp_path / "bench.json"
    out = ok(
        run(
            "-m",
            "tokenpick",
            "bench",
            *SCALING_BENCH,
            "--threads",
            "2",
            "--json",
            str(json_path),
            cwd=tmp_path,
        )
    )
    _, table = table_of(out)
    assert "x 1 thread" in table.splitlines()[0], table
    assert "set_num_threads(1)" in out and "at 2 threads" in out, out
    data = json.loads(json_path.read_text())
    assert "tokenpick 1 thread" in [p["name"] for p in data["peers"]]
    for result in data["results"]:
        if result["B"] == 64:
            assert result["timings"]["tokenpick 1 thread"]["us_per_row"] > 0, result
            assert result["x_1_thread"] > 0, result
        else:  # blank in the table
            assert "tokenpick 1 thread" not in result["timings"], result
            assert result["x_1_thread"] is None, result


def test_bench_at_one_thread_says_it_does_not_time_scaling(tmp_path):
    out = ok(run("-m", "tokenpick", "bench", *SCALING_BENCH, "--threads", "1", cwd=tmp_path))
    assert "x 1 thread" not in table_of(out)[1].splitlines()[0], out
    assert "x 1 thread: not timed" in out, out


def test_bench_interleaves_the_repeats_of_thread_counts():
    # each repeat of one count is followed by one of the other, each at its own count
    log = []

    def bind(op, logits):
        return lambda: log.append((op, tokenpick.get_num_threads()))

    peers = [
        timing.Peer("one", bind, repeats=3, threads=1),
        timing.Peer("two", bind, repeats=3, threads=2),
    ]
    pool = [np.zeros((4, 8), np.float32)]
    got = timing.measure_interleaved(peers, "op", pool, min_time=0.0)
    assert [got[p.name].loops for p in peers] == [1, 1]  # one call a repeat
    assert log[-6:] == [("op", 1), ("op", 2)] * 3, log
    assert all(got[p.name].us_per_row > 0 and got[p.name].rows == 4 for p in peers)


def test_bench_restores_the_thread_count():
    before = tokenpick.get_num_threads()
    with pytest.raises(ZeroDivisionError):
        with timing.tokenpick_threads(before + 1):
            assert tokenpick.get_num_threads() == before + 1
            raise ZeroDivisionError
    assert tokenpick.get_num_threads() == before


def test_bench_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "bench.png"
    out = ok(
        run(
            "-m",
            "tokenpick",
            "bench",
            *TINY_BENCH,
            "--quiet",
            "--no-processors",
            "--plot",
            str(png),
            cwd=tmp_path,
        )
    )
    assert f"plot written to {png}" in out, out
    assert png.read_bytes().startswith(PNG_SIGNATURE)


def test_bench_plot_without_matplotlib_fails_before_timing(tmp_path, monkeypatch, capsys):
    hide_modules(monkeypatch, "matplotlib")
    monkeypatch.setattr(timing, "run_cases", lambda *args: pytest.fail("timed without matplotlib"))
    png = tmp_path / "bench.png"
    status = bench.main([*TINY_BENCH, "--quiet", "--plot", str(png)])
    captured = capsys.readouterr()
    assert status == 2
    assert "matplotlib" in captured.err and "tokenpick[plot]" in captured.err, captured.err
    assert captured.out == ""
    assert not png.exists()


def test_bench_full_is_the_long_grid():
    parser = cli.configure_parser(argparse.ArgumentParser())
    settings = cli.settings_from(parser.parse_args(["--full"]))
    assert (settings["vocabs"], settings["batches"]) == ([32000, 128256, 262144], [1, 8, 64])
    assert settings["min_time"] == 0.2
    assert settings["processors"] == {"vocabs": [32000, 128256], "batches": [1, 64]}
    quick = cli.settings_from(parser.parse_args([]))
    assert (quick["vocabs"], quick["batches"], quick["min_time"]) == ([128256], [1, 8], 0.02)
    assert quick["processors"] == {"vocabs": [128256], "batches": [1, 8]}
    chosen = cli.settings_from(parser.parse_args(["--full", "--vocab", "97", "--batch", "2"]))
    assert chosen["processors"] == {"vocabs": [97], "batches": [2]}
    assert cli.settings_from(parser.parse_args(["--no-processors"]))["processors"] is None


def test_bench_full_runs_with_its_grid_overridden(tmp_path):
    out = ok(
        run(
            "-m",
            "tokenpick",
            "bench",
            "--full",
            "--vocab",
            "97",
            "--batch",
            "1",
            "--logits",
            "flat",
            "--min-time",
            "0.001",
            "--quiet",
            "--no-reference",
            "--no-torch",
            "--no-llama",
            "--no-processors",
            cwd=tmp_path,
        )
    )
    assert "greedy" in out and " 97 " in out, out


# ----------------------------------------------------------------------------
# --logits FILE.npy: rows saved from a model


def saved_logits(path, B=3, V=1000, seed=5):
    """Write `B` rows of LM-like logits to `path` (float64, as a user might save them)."""
    rng = np.random.default_rng(seed)
    rows = 2.0 * rng.standard_normal((B, V))
    rows[:, :40] += 12.0
    rows[0, -1] = -np.inf  # a masked token is a valid logit
    np.save(path, rows)
    return rows


def test_bench_times_rows_saved_in_a_npy_file(tmp_path):
    npy = tmp_path / "model_rows.npy"
    saved_logits(npy)
    json_path = tmp_path / "bench.json"
    out = ok(
        run(
            "-m",
            "tokenpick",
            "bench",
            "--logits",
            "peaked",
            str(npy),
            "--vocab",
            "1000",
            "97",
            "--batch",
            "1",
            "8",
            "--min-time",
            "0.001",
            "--quiet",
            "--no-torch",
            "--no-llama",
            "--no-processors",
            "--json",
            str(json_path),
            cwd=tmp_path,
        )
    )
    _, table = table_of(out)
    saved = [line for line in table.splitlines() if " model_rows " in line]
    # the file's rows at their own V only, at every B (8 > its 3 rows: they are cycled)
    assert len(saved) == 2 * len(cases.OPS) and all(" 1000 " in line for line in saved), table
    title, _ = table_of(out)
    assert title.startswith("Logits: peaked (synthetic); model_rows: the 3 rows of "), title
    assert f"the 3 rows of {npy} (V=1000), in turn, cycled" in title, title
    data = json.loads(json_path.read_text())
    assert data["settings"]["logits"] == ["peaked", "model_rows"]
    assert data["settings"]["files"] == {"model_rows": {"path": str(npy), "rows": 3, "V": 1000}}
    got = {(r["logits"], r["V"], r["B"]) for r in data["results"]}
    assert got == {
        ("peaked", 1000, 1),
        ("peaked", 1000, 8),
        ("peaked", 97, 1),
        ("peaked", 97, 8),
        ("model_rows", 1000, 1),
        ("model_rows", 1000, 8),
    }
    for result in data["results"]:
        assert result["timings"]["tokenpick"]["us_per_row"] > 0, result


def test_saved_rows_are_a_pool_of_fresh_rows(tmp_path):
    npy = tmp_path / "one.npy"
    rows = saved_logits(npy, B=5, V=64)
    source = cases.logits_source(str(npy))
    assert (source.label, source.V) == ("one", 64)
    assert source.rows.dtype == np.float32 and source.rows.flags.c_contiguous
    pool = cases.make_pool(source, 64, 2)
    assert len(pool) == cases.POOL_MAX_BATCHES and all(b.shape == (2, 64) for b in pool)
    flat = np.concatenate(pool)
    np.testing.assert_array_equal(flat[:5], rows.astype(np.float32))
    np.testing.assert_array_equal(flat[5:10], flat[:5])  # cycled
    # synthetic kinds at every V of the settings, saved rows at their own V only
    settings = {"vocabs": [97], "batches": [1, 8]}
    got = [(V, B, cases.source_label(s)) for V, B, s in cases.cases(settings, ["flat", source])]
    assert got == [(97, 1, "flat"), (97, 8, "flat"), (64, 1, "one"), (64, 8, "one")]
    one_row = tmp_path / "row.npy"
    np.save(one_row, rows[1].astype(np.float32))  # a (V,) array is one row
    assert cases.logits_source(str(one_row)).rows.shape == (1, 64)


MODEL_ROWS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "smollm2_logits.npy")
TABLE_ALONE = tuple(
    f"--no-{part}" for part in ("reference", "torch", "llama", "processors", "verify", "filters")
)


def test_bench_times_the_committed_model_rows(tmp_path):
    """The three real rows of tests/data (SmolLM2-135M-Instruct) through the table alone,
    at its smallest settings: B = 1 and 4 (more than the file's rows: cycled)."""
    smallest = ("--batch", "1", "4", "--min-time", "0.001", "--quiet", *TABLE_ALONE)
    out = ok(run("-m", "tokenpick", "bench", "--logits", MODEL_ROWS, *smallest, cwd=tmp_path))
    title, table = table_of(out)
    assert title == (
        f"Logits: smollm2_logits: the 3 rows of {MODEL_ROWS} (V=49152), in turn, cycled "
        "where the batches need more"
    ), title
    rows = [line.split() for line in table.splitlines()[2:]]
    assert len(rows) == 2 * len(cases.OPS), table
    assert all(line[-5:-3] == ["smollm2_logits", "49152"] for line in rows), table
    assert sorted({line[-3] for line in rows}) == ["1", "4"], table


def bad_arrays():
    nan = np.zeros((3, 8), np.float32)
    nan[2, 1] = np.nan
    inf = np.zeros((2, 8), np.float32)
    inf[0, 0] = np.inf
    masked = np.zeros((2, 8), np.float32)
    masked[1] = -np.inf
    return {
        "3-D": (np.zeros((2, 2, 2), np.float32), "shape (2, 2, 2)"),
        "empty": (np.zeros((2, 0), np.float32), "empty"),
        "ints": (np.arange(8), "floating-point"),
        "NaN": (nan, "row 2 holds NaN"),
        "+inf": (inf, "row 0 holds +inf"),
        "all -inf": (masked, "row 1 is all -inf"),
    }


@pytest.mark.parametrize("case", list(bad_arrays()))
def test_bench_refuses_a_bad_npy_file_clearly(tmp_path, case):
    array, message = bad_arrays()[case]
    npy = tmp_path / "bad.npy"
    np.save(npy, array)
    proc = run("-m", "tokenpick", "bench", "--logits", str(npy), "--quiet", cwd=tmp_path)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "--logits" in proc.stderr and str(npy) in proc.stderr, proc.stderr
    assert message in proc.stderr, proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.npy", None, "no such file"),
        ("peak", None, "not a kind of synthetic logits: peaked, flat"),
        ("text.npy", "hello", "not a .npy array"),
    ],
)
def test_bench_refuses_a_missing_or_unreadable_file(tmp_path, name, content, message):
    if content is not None:
        (tmp_path / name).write_text(content)
    proc = run("-m", "tokenpick", "bench", "--logits", name, "--quiet", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert message in proc.stderr, proc.stderr


def test_bench_refuses_two_files_of_one_name(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        saved_logits(tmp_path / folder / "rows.npy")
    proc = run(
        "-m", "tokenpick", "bench", "--logits", "a/rows.npy", "b/rows.npy", "--quiet", cwd=tmp_path
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "labelled 'rows'" in proc.stderr, proc.stderr
    parser = cli.configure_parser(argparse.ArgumentParser())
    rows = tmp_path / "a" / "rows.npy"
    args = parser.parse_args(
        ["--logits", "flat", str(rows), "flat", str(tmp_path / "b" / ".." / "a" / "rows.npy")]
    )
    assert [cases.source_label(s) for s in args.logits] == ["flat", "rows"]  # each once


# ----------------------------------------------------------------------------
# The llama.cpp peer


def test_bench_times_llama_cpp_when_it_is_installed(tmp_path):
    llama_cpp = pytest.importorskip("llama_cpp")
    json_path = tmp_path / "bench.json"
    out = ok(
        run(
            "-m",
            "tokenpick",
            "bench",
            *TINY_BENCH,
            "--quiet",
            "--no-torch",
            "--no-reference",
            "--no-processors",
            "--json",
            str(json_path),
            cwd=tmp_path,
        )
    )
    assert f"llama-cpp-python {llama_cpp.__version__}" in header(out), header(out)
    assert "llama.cpp speedup" in out and "one at a time on one thread" in out, out
    data = json.loads(json_path.read_text())
    assert data["environment"]["llama_cpp"] == {"version": llama_cpp.__version__, "threads": 1}
    for result in data["results"] + data["overhead"]:
        timing_ = result["timings"]["llama.cpp"]
        if result["func"] == "softmax":  # llama.cpp has no softmax sampler
            assert timing_["error"] == "n/a" and result["speedup"]["llama.cpp"] is None
        else:
            assert timing_["error"] is None and timing_["us_per_row"] > 0, result
            assert result["speedup"]["llama.cpp"] > 0, result


def test_llama_cpp_chain_draws_what_tokenpick_draws_where_the_draw_is_forced():
    pytest.importorskip("llama_cpp")
    from tokenpick.bench import peer_llama

    peer, _ = peer_llama.setup_llama(argparse.Namespace(no_llama=False))
    logits = cases.make_logits("peaked", 1000, 4)
    for op in (
        cases.OPS[0],
        cases.Op("top_k=1", "sample", {"seed": 3, "top_k": 1}),
        cases.Op("min_p=1", "sample", {"seed": 3, "temperature": 0.5, "min_p": 1.0}),
    ):
        for row in logits:
            call = peer.bind(op, row)
            assert call() == call() == int(np.argmax(row)), op
    call = peer.bind(cases.SAMPLE_ALL, logits)
    kept = tokenpick.mask(
        logits[-1], **{k: v for k, v in cases.SAMPLE_ALL.kwargs.items() if k != "seed"}
    )
    assert all(np.isfinite(kept[call()]) for _ in range(50))  # draws from the kept set
    with pytest.raises(NotImplementedError):
        peer.bind(cases.OPS[1], logits)  # softmax


def test_bench_no_llama_leaves_the_llama_column_out(tmp_path):
    out = ok(
        run(
            "-m",
            "tokenpick",
            "bench",
            *TINY_BENCH,
            "--quiet",
            "--no-torch",
            "--no-llama",
            "--no-reference",
            "--no-processors",
            cwd=tmp_path,
        )
    )
    assert "llama.cpp: not timed (--no-llama)" in header(out), header(out)
    assert "llama.cpp speedup" not in out, out


def test_bench_without_llama_cpp_installed_says_so(monkeypatch, capsys):
    hide_modules(monkeypatch, "llama_cpp")
    status = bench.main(
        [
            "--vocab",
            "97",
            "--batch",
            "1",
            "--logits",
            "flat",
            "--no-torch",
            "--min-time",
            "0.001",
            "--quiet",
            "--no-reference",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0, out
    assert "llama.cpp: absent" in header(out), header(out)
    assert "llama.cpp speedup" not in out, out


# ----------------------------------------------------------------------------
# The logit-processors section


@pytest.fixture
def with_processors(monkeypatch):
    """tokenpick's sample and process_logits, or the reference's where this build has no
    logit processors yet (the section times whichever ``tokenpick.sample`` is), on pools
    of two batches (the reference is slow)."""
    if not hasattr(tokenpick, "process_logits"):
        monkeypatch.setattr(tokenpick, "sample", reference.sample)
        monkeypatch.setattr(tokenpick, "process_logits", reference.process_logits, raising=False)
    monkeypatch.setattr(cases, "POOL_MAX_BATCHES", 2)


def processor_peers():
    """The section's peers that can be set up here: (torch's or None, xgrammar's or None)."""
    from tokenpick.bench import peer_torch, peer_xgrammar

    torch_peer, _ = peer_torch.setup_torch(argparse.Namespace(no_torch=False))
    xgrammar_peer, _ = peer_xgrammar.setup_xgrammar(argparse.Namespace(no_xgrammar=False))
    return torch_peer, xgrammar_peer


@pytest.mark.parametrize("peers", ["installed", "none"])
def test_processors_section_times_every_row(with_processors, peers):
    torch_peer, xgrammar_peer = processor_peers() if peers == "installed" else (None, None)
    settings = {"processors": {"vocabs": [97], "batches": [1, 3]}, "min_time": 0.001}
    progress = report.Progress(timing.count_processor_steps(settings, torch_peer), False)
    results = timing.time_processors(settings, torch_peer, xgrammar_peer, progress)
    assert progress.done == progress.total == 2 * (3 if torch_peer else 2)
    notes = []
    section = report.format_processors(results, settings, notes)
    assert not notes, notes
    assert "top_k=50, top_p=0.9" in section and "x none" in section, section
    for row in cases.PROCESSOR_ROWS:
        lines = [line for line in section.splitlines() if line.startswith(row.label + " ")]
        assert len(lines) == 2 and all(" 97 " in line for line in lines), (row, section)
    assert ("torch speedup" in section) == (torch_peer is not None), section
    assert ("xgrammar speedup" in section) == (xgrammar_peer is not None), section
    if xgrammar_peer is None:
        assert "(xgrammar is not timed: see the header)" in section, section
    saved = json.loads(json.dumps(report.processors_json(settings, results)))
    assert saved["rows"]["all"] == ["penalties", "biases", "bitmask half"], saved["rows"]
    assert [(c["V"], c["B"]) for c in saved["cases"]] == [(97, 1), (97, 3)]
    for case in saved["cases"]:
        rows = case["sample"]
        assert list(rows) == [row.label for row in cases.PROCESSOR_ROWS], case
        assert all(m["error"] is None and m["us_per_row"] > 0 for m in rows.values()), case
        assert rows["none"]["x_none"] == 1.0 and rows["all"]["x_none"] > 0, case
        assert case["bitmask_inplace"]["tokenpick"]["us_per_row"] > 0, case
        assert (case["torch_speedup"] is not None) == (torch_peer is not None), case
        assert ("xgrammar" in case["bitmask_inplace"]) == (xgrammar_peer is not None), case


def test_bench_prints_and_saves_the_processors_section(tiny_bench):
    out, saved = tiny_bench
    section = out[out.index("Logit processors:") :]
    if hasattr(tokenpick, "process_logits"):
        assert [(c["V"], c["B"]) for c in saved["processors"]["cases"]] == [(1000, 1)]
        assert "penalties + biases" in section and "Bitmask in place" in section, section
    else:  # a build from before the logit processors
        assert "absent" in saved["processors"], saved["processors"]


def test_bench_no_processors_leaves_the_section_out(capsys, tmp_path):
    json_path = tmp_path / "bench.json"
    args = [*TINY_BENCH, "--quiet", "--no-reference", "--no-torch", "--no-llama"]
    status = bench.main([*args, "--no-processors", "--json", str(json_path)])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "Logit processors: not timed (--no-processors)" in out, out
    assert "xgrammar: not timed (no logit-processors section)" in header(out), header(out)
    assert json.loads(json_path.read_text())["processors"] == {
        "absent": "not timed (--no-processors)"
    }


def test_xgrammar_setup_says_why_it_is_not_timed(monkeypatch):
    from tokenpick.bench import peer_xgrammar

    peer, info = peer_xgrammar.setup_xgrammar(argparse.Namespace(no_xgrammar=True))
    assert peer is None and peer_xgrammar.describe(info) == "xgrammar: not timed (--no-xgrammar)"
    hide_modules(monkeypatch, "xgrammar")
    peer, info = peer_xgrammar.setup_xgrammar(argparse.Namespace(no_xgrammar=False))
    assert peer is None and peer_xgrammar.describe(info).startswith("xgrammar: absent ("), info


def test_processor_inputs_are_what_the_section_says():
    V, B = 1000, 4  # V not a multiple of 32: the bitmasks have a tail
    inputs = cases.processor_inputs(V, 0, B)
    assert inputs.output_ids.shape == (B, cases.PROCESSOR_OUTPUT_LEN)
    assert inputs.prompt_ids.shape == (B, cases.PROCESSOR_PROMPT_LEN)
    assert max(np.bincount(row).max() for row in inputs.output_ids) > 1  # tokens recur
    assert not np.array_equal(inputs.output_ids[0], inputs.output_ids[1])  # each row its own
    biases = list(inputs.logit_bias.values())
    assert len(biases) == cases.PROCESSOR_BIASES and biases.count(-np.inf) == 1
    assert 5 <= sum(b < 0 for b in biases) <= 11
    # row i's inputs depend on (V, i) only, as its logits do
    later = cases.processor_inputs(V, 2, 2)
    np.testing.assert_array_equal(later.output_ids, inputs.output_ids[2:])
    logits = cases.make_logits("flat", V, B)
    for words, lo, hi in ((inputs.half_bitmask, 0.4 * V, 0.6 * V), (inputs.narrow_bitmask, 20, 20)):
        assert words.dtype == np.int32 and words.shape == (B, -(-V // 32))
        assert (words.view(np.uint32)[:, -1] >> np.uint32(V % 32) == (1 << (32 - V % 32)) - 1).all()
        kept = ~np.isneginf(reference.process_logits(logits, token_bitmask=words))
        assert all(lo <= n <= hi for n in kept.sum(axis=1)), kept.sum(axis=1)
    full = reference.process_logits(logits, **inputs.kwargs(cases.PROCESSORS_ALL.parts))
    assert (~np.isneginf(full)).any(axis=1).all()  # every row keeps a token


def processor_examples(V=1000, B=3):
    """(logits, processor keywords) pairs: the section's rows, and the other forms the
    PyTorch pipeline takes (padding, ragged lists, per-row biases, a short bitmask)."""
    logits = cases.make_logits("peaked", V, B)
    inputs = cases.processor_inputs(V, 0, B)
    examples = [(logits, inputs.kwargs(row.parts)) for row in cases.PROCESSOR_ROWS]
    output = inputs.output_ids[:, :40].copy()
    output[1, 30:] = -1
    examples.append(
        (
            logits,
            dict(
                token_bitmask=inputs.half_bitmask[0, : V // 64],  # every row; its tail banned
                logit_bias=[{3: 2.5, 7: -np.inf}, None, {3: -1.0}],
                prompt_ids=[[5, 5, 9], [], [1]],
                output_ids=output,
                repetition_penalty=[1.5, 0.8, 1.0],
                frequency_penalty=[0.5, 0.0, -0.25],
                presence_penalty=0.75,
            ),
        )
    )
    return examples


def test_torch_pipeline_processes_as_the_reference():
    torch = pytest.importorskip("torch")
    from tokenpick.bench import peer_torch

    for logits, kwargs in processor_examples():
        x = torch.from_numpy(logits.copy())
        prepared = peer_torch.TorchProcessors.prepare(torch, x.shape, **kwargs)
        got = peer_torch.torch_processed(torch, x, prepared).numpy()
        want = reference.process_logits(logits, **kwargs)
        np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want), err_msg=str(kwargs))
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, err_msg=str(kwargs))
        np.testing.assert_array_equal(x.numpy(), logits)  # its input left as it was


def test_torch_pipeline_draws_from_what_the_reference_keeps():
    pytest.importorskip("torch")
    from tokenpick.bench import peer_torch

    peer, _ = peer_torch.setup_torch(argparse.Namespace(no_torch=False))
    logits, kwargs = processor_examples()[1]  # every processor
    sampling = {k: v for k, v in cases.PROCESSOR_SAMPLING.items() if k in ("top_k", "top_p")}
    kept = ~np.isneginf(reference.mask(logits, **sampling, **kwargs))
    call = peer.bind(cases.Op("all", "sample", {**cases.PROCESSOR_SAMPLING, **kwargs}), logits)
    for _ in range(20):
        tokens = call().numpy().ravel()
        assert kept[np.arange(len(tokens)), tokens].all(), tokens


def test_torch_warpers_are_hf_transformers_warpers():
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

    from tokenpick.bench import peer_torch

    x = torch.from_numpy(cases.make_logits("peaked", 1000, 3))
    for ours, theirs in (
        (peer_torch.torch_top_k(x, 50), TopKLogitsWarper(50)(None, x)),
        (peer_torch.torch_top_p(x, 0.9), TopPLogitsWarper(0.9)(None, x)),
    ):
        assert torch.equal(ours, theirs)


def test_xgrammar_kernel_check_passes_and_catches_a_broken_kernel():
    from tokenpick.bench import peer_xgrammar

    as_array = argparse.Namespace(from_numpy=lambda a: a)  # the check's only use of torch

    def bans_nothing(logits, words):
        pass

    def bans_one_too_many(logits, words):
        bits = np.unpackbits(words.view(np.uint8), axis=-1, bitorder="little")
        V = logits.shape[1]
        np.copyto(logits, -np.inf, where=bits[:, :V] == 0)
        logits.base.reshape(-1)[logits.size] = -np.inf  # the first logit past the rows

    assert "banned other tokens" in peer_xgrammar.check_kernel(as_array, bans_nothing)
    assert "wrote past the rows" in peer_xgrammar.check_kernel(as_array, bans_one_too_many)
    torch = pytest.importorskip("torch")
    xgr = pytest.importorskip("xgrammar")
    assert peer_xgrammar.check_kernel(torch, xgr.apply_token_bitmask_inplace) is None


@pytest.mark.parametrize(
    "args", [["--version"], ["--help"], ["demo", "--help"], ["bench", "--help"]]
)
def test_help_and_version(tmp_path, args):
    out = ok(run("-m", "tokenpick", *args, cwd=tmp_path))
    assert out.strip()


@pytest.mark.parametrize(
    "args", [[], ["nonsense"], ["bench", "--vocab", "0"], ["bench", "--batch", "-3"]]
)
def test_bad_command_lines_fail_cleanly(tmp_path, args):
    proc = run("-m", "tokenpick", *args, cwd=tmp_path)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_bench_dtype_times_half_precision_beside_float32(tmp_path, dtype):
    """--dtype: the table's rows rounded to the dtype, with an x float32 column (tokenpick
    on the same values in float32, saved as x_float32); bfloat16 needs torch or ml_dtypes."""
    from tokenpick.bench import dtypes

    if dtypes.check(dtype) is not None:
        pytest.skip(dtypes.check(dtype))
    json_path = tmp_path / "bench.json"
    out = ok(
        run(
            "-m", "tokenpick", "bench", *TINY_BENCH, "--quiet", "--no-reference", "--no-torch",
            "--no-processors", "--dtype", dtype, "--json", str(json_path), cwd=tmp_path,
        )
    )  # fmt: skip
    table = out[out.index("op ") :]
    assert "x float32" in table.splitlines()[0], table
    assert f"rounded to {dtype}" in out, out
    saved = json.loads(json_path.read_text())
    assert saved["settings"]["dtype"] == dtype
    for result in saved["results"]:
        assert result["x_float32"] > 0, result
        assert result["timings"][dtypes.FLOAT32_NAME]["us_per_row"] > 0, result


def test_bench_dtype_bfloat16_without_torch_or_ml_dtypes_says_so(monkeypatch, capsys):
    from tokenpick.bench import dtypes

    hide_modules(monkeypatch, "torch")
    hide_modules(monkeypatch, "ml_dtypes")
    dtypes._torch.cache_clear()
    dtypes._ml_dtypes.cache_clear()
    try:
        status = bench.main([*TINY_BENCH, "--quiet", "--dtype", "bfloat16"])
    finally:
        dtypes._torch.cache_clear()
        dtypes._ml_dtypes.cache_clear()
    assert status == 2
    assert "ml_dtypes" in capsys.readouterr().err


def test_dtype_rows_hold_the_values_their_widening_gives():
    from tokenpick.bench import dtypes

    x = np.random.default_rng(2).standard_normal((2, 50)).astype(np.float32) * 3
    for dtype in ("float16", "bfloat16"):
        if dtypes.check(dtype) is not None:
            continue
        w = dtypes.widened(x, dtype)
        assert w.dtype == np.float32 and w.shape == x.shape
        read = tokenpick._params.as_logits(
            dtypes.rows(x, dtype)
        )  # in place, as the kernels read it
        assert np.array_equal(tokenpick._params.as_float32(read), w)
        assert np.abs(w - x).max() <= np.abs(x).max() * (2**-8 if dtype == "bfloat16" else 2**-11)


def test_bench_prints_and_saves_the_verify_section(tiny_bench):
    out, saved = tiny_bench
    section = out[out.index("Speculative decoding") - 200 :]
    assert [(c["op"], c["V"], c["B"], c["K"]) for c in saved["verify"]] == [
        ("T=1", 1000, 1, 4),
        ("T=0.8 top_k=50 top_p=0.9", 1000, 1, 4),
    ]
    for case in saved["verify"]:
        assert case["x_sample"] > 0 and 0.3 < case["acceptance"] < 1, case
        assert case["timings"]["verify"]["rows"] == 5, case
    assert "x sample" in section, section


def test_bench_only_and_no_verify(capsys, tmp_path):
    json_path = tmp_path / "bench.json"
    args = [*TINY_BENCH, "--quiet", "--no-reference", "--no-torch", "--no-llama"]
    assert bench.main([*args, "--only-verify", "--json", str(json_path)]) == 0
    out = capsys.readouterr().out
    saved = json.loads(json_path.read_text())
    assert saved["results"] == [] and len(saved["verify"]) == 2, saved
    assert "x sample" in out and "Logit processors" not in out, out
    assert bench.main([*args, "--no-processors", "--no-verify", "--json", str(json_path)]) == 0
    assert "Speculative decoding (verify): not timed (--no-verify)" in capsys.readouterr().out
    assert json.loads(json_path.read_text())["verify"] == []


def test_torch_verify_is_the_same_algorithm():
    """The PyTorch peer of the verify section accepts drafts at the rate theory gives and
    emits tokens of the target's law, as tokenpick.verify does (a statistical check, at a
    false-failure probability below 1e-9)."""
    torch = pytest.importorskip("torch")
    from scipy import stats

    from tokenpick.bench import verify as section

    rng = np.random.default_rng(5)
    n, V = 40000, 5
    p = np.array([0.4, 0.3, 0.15, 0.1, 0.05])
    q = np.array([0.1, 0.5, 0.2, 0.1, 0.1])
    target = np.broadcast_to(np.log(p).astype(np.float32), (n, 2, V)).copy()
    drafts = rng.choice(V, size=(n, 1), p=q)
    qs = np.broadcast_to(q.astype(np.float32), (n, 1, V)).copy()
    gen = torch.Generator().manual_seed(3)
    tokens = section.torch_verify(torch, torch.from_numpy(target), torch.from_numpy(drafts),
                                  torch.from_numpy(qs), gen).numpy()  # fmt: skip
    first = np.bincount(tokens[:, 0], minlength=V)
    assert stats.chisquare(first, p * n).pvalue > 1e-10, first / n
    accepted = (tokens[:, 1] >= 0).mean()
    alpha = np.minimum(p, q).sum()
    assert abs(accepted - alpha) < 6 * np.sqrt(alpha * (1 - alpha) / n), (accepted, alpha)
