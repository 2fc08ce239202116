"""Cell functions and modules pickle by reference: other processes load them from the cache (or build them)."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import rustcall_magic as rc
from rustcall_magic.errors import RustToolchainError

CELL = """
pub fn square(x: i64) -> i64 { x * x }
pub fn label(n: u32, s: &str) -> String { format!("{s}#{n}") }
"""


@pytest.fixture
def no_rustc(monkeypatch, tmp_path: Path) -> str:
    """RUSTC for child processes: a compiler that fails, so any rustc run is seen."""
    fake = tmp_path / "rustc-must-not-run"
    fake.write_text("#!/bin/sh\necho rustc must not run >&2\nexit 3\n")
    fake.chmod(0o755)
    return str(fake)


def test_functions_and_modules_pickle_by_reference_not_by_private_module() -> None:
    m = rc.compile_rust(CELL, quiet=True)
    data = pickle.dumps(m.square)
    assert m.module_name.encode() not in data  # no reference to the private extension module
    assert pickle.loads(data) is m.square
    assert pickle.loads(pickle.dumps(m)).label(3, "x") == "x#3"
    # Other builtins pickle as they always have.
    assert pickle.loads(pickle.dumps(len)) is len
    assert pickle.loads(pickle.dumps([1].append)).__self__ == [1]


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_multiprocessing_pools_run_cell_functions_from_the_cache(method: str, monkeypatch, no_rustc: str) -> None:
    m = rc.compile_rust(CELL, quiet=True)
    monkeypatch.setenv("RUSTC", no_rustc)  # the children inherit it: a build there would fail
    with multiprocessing.get_context(method).Pool(2) as pool:
        assert pool.map(m.square, range(100)) == [x * x for x in range(100)]
        assert pool.starmap(m.label, [(1, "a"), (2, "b")]) == ["a#1", "b#2"]


def test_process_pool_executor(monkeypatch, no_rustc: str) -> None:
    m = rc.compile_rust(CELL, quiet=True)
    monkeypatch.setenv("RUSTC", no_rustc)
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=ctx) as ex:
        assert list(ex.map(m.square, range(100))) == [x * x for x in range(100)]


UNPICKLE = textwrap.dedent(
    """
    import pickle, sys
    f = pickle.loads(sys.stdin.buffer.read())
    print(f(7))
    """
)


def _unpickle_in_child(data: bytes, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", UNPICKLE], input=data.decode("latin-1"), capture_output=True, text=True,
        env=env, encoding="latin-1",
    )  # fmt: skip


def test_a_process_without_the_entry_builds_it_and_one_without_rustc_says_why(tmp_path: Path, no_rustc: str) -> None:
    m = rc.compile_rust(CELL, quiet=True)
    data = pickle.dumps(m.square)
    empty = {**os.environ, "RUSTCALL_CACHE_DIR": str(tmp_path / "other-cache")}
    built = _unpickle_in_child(data, empty)
    assert built.returncode == 0 and built.stdout.strip() == "49", built.stderr
    bare = {**os.environ, "RUSTCALL_CACHE_DIR": str(tmp_path / "third-cache"), "RUSTC": no_rustc}
    failed = _unpickle_in_child(data, bare)
    assert failed.returncode != 0
    assert "RustToolchainError" in failed.stderr
    assert "is not in this process's cache" in failed.stderr and "cannot be built here" in failed.stderr


def test_a_native_build_from_another_cpu_is_not_loaded(tmp_path: Path, monkeypatch) -> None:
    c = rc.RustCompiler(cache_dir=tmp_path / "c", quiet=True)
    m = c.compile(CELL)
    assert c.load_cached(m.key, CELL) is not None
    monkeypatch.setattr("rustcall_magic.compiler.host_cpu_identity", lambda: "another machine")
    assert c.load_cached(m.key, CELL) is None
    with pytest.raises(RustToolchainError, match="not in this process's cache"):
        monkeypatch.setenv("RUSTC", "/nonexistent/rustc")
        monkeypatch.setenv("RUSTCALL_CACHE_DIR", str(tmp_path / "c"))
        from rustcall_magic import compiler

        compiler._rebuilt.clear()
        pickle.loads(pickle.dumps(m.square))


def test_joblib_runs_cell_functions() -> None:
    joblib = pytest.importorskip("joblib")
    m = rc.compile_rust(CELL, quiet=True)
    out = joblib.Parallel(n_jobs=2, backend="loky")(joblib.delayed(m.square)(i) for i in range(100))
    assert out == [i * i for i in range(100)]


VALUES = """
#[derive(Clone, Debug, PartialEq)]
pub struct Point { pub x: f64, pub y: f64, pub name: String }
#[derive(Clone)]
pub struct Pair(pub i32, pub Point);
pub struct Scaled { pub k: u8 }
impl Scaled { pub fn new(k: u8) -> Scaled { Scaled { k: k * 2 } } }
pub struct Opaque { secret: i64 }
impl Opaque { pub fn new() -> Opaque { Opaque { secret: 7 } } pub fn get(&self) -> i64 { self.secret } }
pub fn moved(p: &Point, dx: f64) -> Point { Point { x: p.x + dx, y: p.y, name: p.name.clone() } }
pub fn total(v: &Vec<i64>) -> i64 { v.iter().sum() }
"""


@pytest.mark.parametrize(
    ("dtype", "items"),
    [("i64", [1, -2, 3]), ("f64", [1.5, -0.25]), ("u8", [0, 255]), ("bool", [True, False]), ("i32", [])],
)
def test_rust_vec_pickles_by_value(dtype: str, items: list) -> None:
    v = rc.create_rust_vec(items, dtype)
    w = pickle.loads(pickle.dumps(v))
    assert type(w) is type(v) and w.dtype == dtype and w.to_list() == items
    assert w.id != v.id  # a new vector, owned by its own handle
    w.push(items[0] if items else 0)
    assert v.to_list() == items


def test_a_dropped_rust_vec_does_not_pickle() -> None:
    v = rc.create_rust_vec([1, 2], "i64")
    v.drop()
    with pytest.raises(TypeError, match="dropped"):
        pickle.dumps(v)


def test_struct_instances_pickle_by_field_values() -> None:
    m = rc.compile_rust(VALUES, quiet=True)
    p = m.Point(1.5, -2.0, "a")
    q = pickle.loads(pickle.dumps(p))
    assert type(q) is m.Point and (q.x, q.y, q.name) == (1.5, -2.0, "a")
    assert q is not p
    pair = pickle.loads(pickle.dumps(m.Pair(3, p)))
    assert pair._0 == 3 and pair._1.name == "a"
    # Field values, not the constructor: `new` doubled k once, unpickling does not again.
    s = pickle.loads(pickle.dumps(m.Scaled(5)))
    assert s.k == 10
    # Private fields cannot be read back: such a value does not pickle.
    with pytest.raises(TypeError, match="Opaque"):
        pickle.dumps(m.Opaque())


def test_struct_instances_and_rust_vecs_cross_a_spawn_pool(monkeypatch, no_rustc: str) -> None:
    m = rc.compile_rust(VALUES, quiet=True)
    monkeypatch.setenv("RUSTC", no_rustc)
    points = [m.Point(float(i), 0.0, f"p{i}") for i in range(20)]
    vecs = [rc.create_rust_vec(list(range(i)), "i64") for i in range(20)]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        out = pool.starmap(m.moved, [(p, 0.5) for p in points])
        sums = pool.map(m.total, vecs)
    assert [(o.x, o.name) for o in out] == [(i + 0.5, f"p{i}") for i in range(20)]
    assert all(type(o) is m.Point for o in out)
    assert sums == [sum(range(i)) for i in range(20)]
