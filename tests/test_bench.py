"""bench.py: timing call expressions through every backend, BenchResult, and %rust_bench."""

from __future__ import annotations

import csv
import io
import math
import re

import pytest
from IPython.core.error import UsageError

import rustcall_magic as rc
from rustcall_magic import bench
from rustcall_magic.magics import _bench_line

ADD_CELL = "pub fn bench_add(a: i64, b: i64) -> i64 { a + b }"
MUL_CELL = "pub fn bench_mul(a: f64, b: f64) -> f64 { a * b }"


def py_add(a, b):
    return a + b


class Counter:
    """A callable that counts its calls (to check how often the timer called it)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, *args):
        self.calls += 1
        return args


def test_parse_call_accepts_calls_by_name_only() -> None:
    name, call = bench.parse_call(" add(1, x=2) ")
    assert name == "add" and len(call.args) == 1 and call.keywords[0].arg == "x"
    for bad in ("1 + 2", "obj.method(1)", "add(", "add"):
        with pytest.raises(ValueError, match="cannot time"):
            bench.parse_call(bad)


def test_number_and_repeat_are_honoured_and_args_evaluated_each_call() -> None:
    counter = Counter()
    ns = {"f": counter, "x": 5}
    result = bench.benchmark(["f(x, 2)"], ns, number=7, repeat=3)
    assert counter.calls == 21  # 3 runs of 7 calls, nothing else
    assert result.loops == [7] and result.repeat == 3
    ns["x"] = 6  # the namespace is read at call time, like timeit's globals
    bench.benchmark(["f(x, 2)"], ns, number=1, repeat=1)
    assert counter.calls == 22


def test_calibration_grows_the_loop_until_a_run_is_long_enough() -> None:
    result = bench.benchmark(["py_add(1, 2)"], {"py_add": py_add}, repeat=2)
    n = result.loops[0]
    assert n >= 1000 and n in {m * 10**k for k in range(10) for m in (1, 2, 5)}  # like timeit's autorange
    assert result.overhead_ns > 0
    assert "empty-loop cost" in result.note() and "subtracted" in result.note()


def test_rows_ratio_and_exports(fresh_cache, tmp_path) -> None:
    m = rc.compile_rust(ADD_CELL)
    ns = {"bench_add": m.bench_add, "py_add": py_add}
    result = bench.benchmark(["py_add(1, 2)", "bench_add(1, 2)"], ns, number=2000, repeat=3)
    assert [(r["expr"], r["backend"]) for r in result.rows] == [("py_add(1, 2)", "python"), ("bench_add(1, 2)", "%%rust")]
    for r in result.rows:
        assert set(r) == set(bench.COLUMNS)
        assert r["ns_per_call"] > 0 and r["median_ns"] >= r["ns_per_call"]
    assert result.rows[0]["ratio"] == 1.0
    assert math.isclose(result.rows[1]["ratio"], result.rows[1]["ns_per_call"] / result.rows[0]["ns_per_call"])

    out = tmp_path / "bench.csv"
    text = result.to_csv(out)
    assert out.read_text() == text
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert [p["backend"] for p in parsed] == ["python", "%%rust"]
    assert float(parsed[1]["ns_per_call"]) == pytest.approx(result.rows[1]["ns_per_call"])

    df = result.to_pandas()
    assert list(df.columns) == list(bench.COLUMNS) and df["backend"].tolist() == ["python", "%%rust"]

    table = str(result)
    assert table == result.table()
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["expression", "backend"]
    assert "bench_add(1, 2)" in lines[3] and "%%rust" in lines[3] and "1.00x" in lines[2]
    assert "█" in lines[2]


def test_unknown_names_and_bad_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="no %%rust, %rust_llvm or Python function named 'nowhere'"):
        bench.benchmark(["nowhere(1)"], {})
    with pytest.raises(ValueError, match="number must be >= 1"):
        bench.benchmark(["len('a')"], {}, number=0)
    with pytest.raises(ValueError, match="repeat must be >= 1"):
        bench.benchmark(["len('a')"], {}, repeat=0)


def test_a_failing_call_propagates() -> None:
    def boom():
        raise KeyError("nope")

    with pytest.raises(KeyError):
        bench.benchmark(["boom()"], {"boom": boom}, number=3, repeat=1)


def test_api_benchmark_uses_the_callers_globals() -> None:
    result = rc.benchmark("py_add(2, 3)", number=100, repeat=2)
    assert [(r["expr"], r["backend"]) for r in result.rows] == [("py_add(2, 3)", "python")]
    assert isinstance(result, rc.BenchResult)


def test_bench_line_splits_expressions_and_options() -> None:
    assert _bench_line('-n 10 -r2 -o add(1, (2, 3)) f("a b", [1, 2])') == (
        10,
        2,
        True,
        ["add(1, (2, 3))", 'f("a b", [1, 2])'],
    )
    assert _bench_line("--number=5 x()") == (5, 5, False, ["x()"])
    for bad, msg in (("", "usage"), ("-n", "needs a number"), ("-n x f()", "whole number"), ("-q f()", "unknown option")):
        with pytest.raises(UsageError, match=msg):
            _bench_line(bad)


def test_rust_bench_magic_times_every_backend(ip, capsys) -> None:
    ip.run_cell_magic("rust", "", ADD_CELL)
    ip.user_ns["py_add"] = py_add
    result = ip.run_line_magic("rust_bench", "-o -n 500 -r 2 py_add(1, 2) bench_add(1, 2)")
    assert [(r["expr"], r["backend"]) for r in result.rows] == [("py_add(1, 2)", "python"), ("bench_add(1, 2)", "%%rust")]
    out = capsys.readouterr().out
    assert "bench_add(1, 2)" in out and "%%rust" in out and "subtracted" in out  # a text table outside a notebook
    assert ip.run_line_magic("rust_bench", "-n 10 -r 1 bench_add(1, 2)") is None  # no -o: nothing returned
    with pytest.raises(UsageError, match="no %%rust"):
        ip.run_line_magic("rust_bench", "missing_fn(1)")


def test_rust_bench_includes_the_llvm_backend(ip) -> None:
    ip.run_cell_magic("rust", "", MUL_CELL)
    try:
        ip.run_cell_magic("rust_llvm", "-q", MUL_CELL)
    except rc.RustToolchainError as e:  # llvmlite's LLVM differs from rustc's on this machine
        pytest.skip(str(e))
    result = ip.run_line_magic("rust_bench", "-o -n 200 -r 2 bench_mul(1.5, 2.0)")
    assert [r["backend"] for r in result.rows] == ["%%rust", "%rust_llvm"]
    assert result.rows[0]["ratio"] == 1.0
    # A newer %%rust cell makes the older JIT definition stale: it is no longer timed.
    ip.run_cell_magic("rust", "", MUL_CELL.replace("a * b", "b * a"))
    result = ip.run_line_magic("rust_bench", "-o -n 200 -r 1 bench_mul(1.5, 2.0)")
    assert [r["backend"] for r in result.rows] == ["%%rust"]


def test_result_repr_is_one_line_and_str_is_the_table() -> None:
    result = bench.benchmark(["py_add(1, 2)"], {"py_add": py_add}, number=100, repeat=2)
    text = repr(result)
    assert "\n" not in text
    assert re.fullmatch(r"<BenchResult: 1 row, fastest py_add\(1, 2\) \(python\) [\d.]+ [nu]?s>", text), text
    assert str(result) == result.table() and result.table().splitlines()[0].split()[:2] == ["expression", "backend"]
    assert repr(bench.BenchResult([])) == "<BenchResult: 0 rows>"


def test_rust_bench_o_shows_the_table_once(ip, capsys) -> None:
    ip.run_cell_magic("rust", "", ADD_CELL)
    ip.user_ns["py_add"] = py_add
    ip.run_cell("%rust_bench -o -n 100 -r 1 py_add(1, 2) bench_add(1, 2)", store_history=True)
    out = capsys.readouterr().out
    assert len(re.findall(r"^expression\s+backend", out, re.M)) == 1, out
    assert re.search(r"Out\[\d+\]: <BenchResult: 2 rows, fastest", out), out
    ip.run_cell("r = %rust_bench -o -n 100 -r 1 bench_add(1, 2)\nr", store_history=True)
    out = capsys.readouterr().out
    assert len(re.findall(r"^expression\s+backend", out, re.M)) == 1 and "<BenchResult: 1 row, fastest bench_add(1, 2) (%%rust)" in out


def test_benchmark_leaves_the_namespace_unchanged() -> None:
    ns = {"py_add": py_add, "x": 1}
    result = rc.benchmark("py_add(x, 2)", namespace=ns, number=50, repeat=1)
    assert ns == {"py_add": py_add, "x": 1}
    assert result.rows[0]["backend"] == "python"
    bench.benchmark(["py_add(x, len([1]))"], ns, number=5, repeat=1)  # builtins still resolve
    assert set(ns) == {"py_add", "x"}
