"""Generic functions and structs, monomorphised on call and cached by their ordered type arguments (SPEC §9)."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

import rustcall_magic as rc

# -- the generic cases of RustCall.jl's suite, and ours ------------------------------------

GENERIC_CELL = """
use std::ops::Add;
pub fn sum_values<T: Add<Output = T>>(a: T, b: T) -> T { a + b }
pub fn identity<T>(x: T) -> T { x }
pub fn pair<T, U>(a: T, b: U) -> T { let _ = b; a }
pub fn second<T, U>(a: T, b: U) -> U { let _ = a; b }
pub fn transform<T: Copy + Into<f64>, U: Copy>(x: T, y: T, z: U) -> U { let _ = x.into() + y.into(); z }
pub fn make<T: Default>() -> T { T::default() }
pub fn add(a: i64, b: i64) -> i64 { a + b }
"""

TOTAL_CELL = """
pub fn total<T: Copy + std::iter::Sum<T>>(xs: &[T]) -> T { xs.iter().copied().sum() }
"""

WRAPPER_CELL = """
#[derive(Clone, Debug, PartialEq)]
pub struct Wrapper<T> { pub value: T }
impl<T: Copy + std::ops::Add<Output = T>> Wrapper<T> {
    pub fn new(value: T) -> Self { Wrapper { value } }
    pub fn get(&self) -> T { self.value }
    pub fn plus(&self, x: T) -> T { self.value + x }
    pub fn doubled(&self) -> Self { Wrapper { value: self.value + self.value } }
}
"""

@pytest.fixture(scope="module")
def g():
    return rc.compile_rust(GENERIC_CELL, quiet=True)


def test_sum_values_infers_f64_and_explicit_i32(g) -> None:
    assert g.sum_values(10.5, 20.5) == 31.0
    assert g.sum_values[np.int32](10, 20) == 30
    assert g.sum_values(np.int32(10), np.int32(20)) == 30
    assert set(g.sum_values.instances) >= {("f64",), ("i32",)}
    # Python int is i64: the range is i64's.
    assert g.sum_values(2**40, 1) == 2**40 + 1
    with pytest.raises(OverflowError):
        g.sum_values[np.int32](2**40, 1)


def test_identity_instantiated_twice_is_the_same_callable(g) -> None:
    a = g.identity["i32"]
    assert g.identity[np.int32] is a
    assert g.identity["i32"] is a
    assert a(7) == 7
    assert g.identity("text") == "text"
    assert g.identity(True) is True


def test_pair_type_argument_order_gives_distinct_artifacts(g) -> None:
    p = g.pair["i32", "i64"]
    q = g.pair["i64", "i32"]
    assert p is not q and p.__module__ != q.__module__  # two modules, two cache entries
    assert p.__name__ == "pair<i32, i64>" and q.__name__ == "pair<i64, i32>"
    assert p(2**31 - 1, 2**40) == 2**31 - 1  # a: i32, b: i64
    assert q(2**40, 2**31 - 1) == 2**40  # a: i64, b: i32
    with pytest.raises(OverflowError):
        p(2**40, 1)  # a is i32 here
    with pytest.raises(OverflowError):
        q(1, 2**40)  # b is i32 here
    assert g.second["i32", "f64"](1, 2.5) == 2.5


def test_transform_infers_each_parameter(g) -> None:
    assert g.transform(1.0, 2.0, 7) == 7
    assert g.transform(np.float32(1), np.float32(2), True) is True
    assert ("f32", "bool") in g.transform.instances
    assert g.transform(np.int32(1), np.int32(2), 2.5) == 2.5


@pytest.mark.parametrize(
    "dtype, rust",
    [
        (np.int8, "i8"),
        (np.int16, "i16"),
        (np.int32, "i32"),
        (np.int64, "i64"),
        (np.uint8, "u8"),
        (np.uint16, "u16"),
        (np.uint32, "u32"),
        (np.uint64, "u64"),
        (np.float32, "f32"),
        (np.float64, "f64"),
    ],
)
def test_total_over_numpy_dtypes(dtype, rust: str) -> None:
    m = rc.compile_rust(TOTAL_CELL, quiet=True)
    xs = np.arange(1, 11, dtype=dtype)
    want = xs.sum(dtype=dtype)
    got = m.total(xs)
    assert got == want
    assert type(got) is (float if np.dtype(dtype).kind == "f" else int)
    assert (rust,) in m.total.instances
    assert m.total[dtype] is m.total.instances[(rust,)]
    m.generics["total"].infer = None  # a call reaching the Python path now fails: the dispatcher serves it
    assert m.total(xs[::-1].copy()) == want


def test_total_exact_for_float32_and_from_lists_and_buffers() -> None:
    import array

    m = rc.compile_rust(TOTAL_CELL, quiet=True)
    xs = np.full(3, 0.1, dtype=np.float32)
    assert m.total(xs) == float(np.float32(0.1) + np.float32(0.1) + np.float32(0.1))
    assert m.total([1, 2, 3]) == 6  # a list of ints: i64
    assert m.total(array.array("h", [1, 2, 3])) == 6
    assert ("i16",) in m.total.instances
    assert m.total(b"\x01\x02") == 3  # bytes: u8
    assert m.total(rc.RustVec([1.5, 2.5], "f64")) == 4.0


def test_conflicting_evidence_names_the_type_parameter(g) -> None:
    with pytest.raises(TypeError, match=r"type parameter `T`.*i64.*f64"):
        g.sum_values(1, 2.0)
    with pytest.raises(TypeError, match=r"type parameter `T`.*i64.*i32"):
        g.sum_values(1, np.int32(2))
    m = rc.compile_rust(TOTAL_CELL, quiet=True)
    with pytest.raises(TypeError, match="`T`"):
        m.total([1, 2.5])


def test_return_only_parameter_needs_explicit_instantiation(g) -> None:
    with pytest.raises(TypeError, match=r"cannot infer type parameter `T`.*only in the return type"):
        g.make()
    assert g.make["f64"]() == 0.0
    assert g.make[np.uint8]() == 0
    with pytest.raises(TypeError, match="takes 1 type argument"):
        g.make["i32", "i64"]
    with pytest.raises(TypeError, match="type argument"):
        g.make[object]


def test_bound_failure_is_rustcs_message_and_remembered(tmp_path: Path, logged_rustc: Path) -> None:
    c = rc.RustCompiler(cache_dir=tmp_path / "cache", quiet=True)
    m = c.compile(GENERIC_CELL)
    before = logged_rustc.builds()
    with pytest.raises(TypeError) as e:
        m.sum_values(True, False)
    text = str(e.value)
    assert "E0277" in text and "bool" in text and "cell line 3" in text
    after = logged_rustc.builds()
    assert after > before
    for _ in range(5):
        with pytest.raises(TypeError, match="E0277"):
            m.sum_values(True, True)
    assert logged_rustc.builds() == after  # remembered: no second rustc run
    # ... and on disk: the same cell in a new compiler (as in a fresh process) does not build it again.
    m2 = rc.RustCompiler(cache_dir=tmp_path / "cache", quiet=True).compile(GENERIC_CELL)
    with pytest.raises(TypeError, match="E0277"):
        m2.sum_values(False, True)
    assert logged_rustc.builds() == after


def test_fresh_process_reuses_instances_without_rustc(tmp_path: Path, logged_rustc: Path) -> None:
    cache = tmp_path / "cache"
    c = rc.RustCompiler(cache_dir=cache, quiet=True)
    m = c.compile(TOTAL_CELL)
    assert m.total(np.arange(4, dtype=np.int32)) == 6
    assert m.total(np.arange(4, dtype=np.float32)) == 6.0
    before = logged_rustc.builds()
    code = textwrap.dedent(
        f"""
        import numpy as np, rustcall_magic as rc
        m = rc.RustCompiler(cache_dir={str(cache)!r}, quiet=True).compile({TOTAL_CELL!r})
        a = m.total(np.arange(4, dtype=np.int32))
        b = m.total(np.arange(4, dtype=np.float32))
        assert (a, b) == (6, 6.0), (a, b)
        assert m.info.cache_hit
        print(sorted(m.total.instances))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[('f32',), ('i32',)]"
    assert logged_rustc.builds() == before  # the child ran no rustc build (the RUSTC wrapper logs every run)


def test_two_threads_build_a_new_instance_once(tmp_path: Path, logged_rustc: Path) -> None:
    c = rc.RustCompiler(cache_dir=tmp_path / "cache", quiet=True)
    m = c.compile(GENERIC_CELL)
    before = logged_rustc.builds()
    results: list[object] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        barrier.wait()
        results.append(m.identity[np.int16])

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 and results[0] is results[1]
    assert logged_rustc.builds() == before + 1


def test_instantiate_option_builds_with_the_cell(tmp_path: Path, logged_rustc: Path) -> None:
    c = rc.RustCompiler(cache_dir=tmp_path / "cache", quiet=True)
    m = c.compile(GENERIC_CELL, instantiate=["sum_values<i32>", "pair<i32, i64>"])
    assert logged_rustc.builds() == 1
    assert set(m.instances) == {"sum_values<i32>", "pair<i32, i64>"}
    assert m.sum_values[np.int32](1, 2) == 3
    assert m.pair["i32", "i64"](1, 2) == 1
    assert logged_rustc.builds() == 1  # both were in the cell's own module
    # The instance list is part of the key: another order is another entry.
    m2 = c.compile(GENERIC_CELL, instantiate=["pair<i32, i64>", "sum_values<i32>"])
    assert m2.key != m.key
    with pytest.raises(ValueError, match="no generic function or struct 'nope'"):
        c.compile(GENERIC_CELL, instantiate=["nope<i32>"])
    with pytest.raises(ValueError, match="NAME<TYPE"):
        c.compile(GENERIC_CELL, instantiate=["sum_values"])


def test_magic_binds_generics_and_instantiates(ip) -> None:
    ip.run_cell_magic("rust", "-q --instantiate 'total<f64>' --instantiate 'total<i32>'", TOTAL_CELL)
    total = ip.user_ns["total"]
    assert set(total.instances) == {("f64",), ("i32",)}
    ip.user_ns["np"] = np
    assert ip.ev("total(np.arange(5, dtype=np.int32))") == 10
    assert ip.ev("total(np.ones(4))") == 4.0
    assert "total" in repr(total) and "total<i32>" in repr(total)
    assert total.__name__ == "total"
    assert "pub fn total<T" in total.__doc__


def test_generic_callable_pickles_by_reference(g) -> None:
    f = pickle.loads(pickle.dumps(g.sum_values))
    assert f(1.5, 1.0) == 2.5
    inst = g.pair["i32", "i64"]
    assert pickle.loads(pickle.dumps(inst))(3, 4) == 3


def test_generic_struct_explicit_and_inferred() -> None:
    m = rc.compile_rust(WRAPPER_CELL, quiet=True)
    W = m.Wrapper
    w = W[np.int32](42)
    assert type(w).__name__ == "Wrapper<i32>"
    assert w.get() == 42 and w.plus(1) == 43 and w.value == 42
    assert w.doubled() == W[np.int32](84)
    with pytest.raises(OverflowError):
        W[np.int8](1000)
    v = W(42)  # T from new(value: T): a Python int is i64
    assert type(v).__name__ == "Wrapper<i64>"
    assert W(1.5).plus(1.0) == 2.5
    assert isinstance(w, W) and isinstance(v, W) and not isinstance(3, W)
    assert set(W.instances) == {("i32",), ("i8",), ("i64",), ("f64",)}
    rows = [r for r in rc.live_handles() if r.kind == "Wrapper<i32>" and r.state == "alive"]
    assert any(r.preview == "Wrapper { value: 42 }" for r in rows)  # %rust_handles names the instance
    with pytest.raises(TypeError, match="`T`"):
        W()


def test_generic_items_under_rust_llvm(ip) -> None:
    pytest.importorskip("llvmlite")
    ip.run_cell_magic("rust_llvm", "-q", TOTAL_CELL.replace("total", "total_jit"))
    t = ip.user_ns["total_jit"]
    assert t(np.arange(4, dtype=np.uint16)) == 6
    assert ("u16",) in t.instances


def test_non_generic_functions_unchanged(g) -> None:
    assert g.add(1, 2) == 3
    assert "add" in g.signatures and "sum_values" not in g.signatures
    assert set(g.generics) == {"sum_values", "identity", "pair", "second", "transform", "make"}


def test_line_magic_calls_a_generic_function(ip) -> None:
    ip.run_cell_magic("rust", "-q", "pub fn twice<T: Copy + std::ops::Add<Output = T>>(x: T) -> T { x + x }")
    assert ip.run_line_magic("rust", "twice(21)") == 42
    assert ip.run_line_magic("rust", "twice(1.25) -> T") == 2.5
    with pytest.raises(TypeError, match=r"cannot add|E0277"):
        ip.run_line_magic("rust", "twice('a')")


def test_bench_rows_name_the_instance(g) -> None:
    ns = {"sum_values": g["sum_values"], "add": g.add}
    r = rc.benchmark("add(1, 2)", "sum_values(1, 2)", number=1000, repeat=1, namespace=ns)
    backends = [row["backend"] for row in r.rows]
    assert backends == ["%%rust", "%%rust sum_values<i64>", "%%rust generic"]


def test_generic_struct_pickles_by_reference() -> None:
    m = rc.compile_rust(WRAPPER_CELL, quiet=True)
    W = pickle.loads(pickle.dumps(m.Wrapper))
    assert W[np.int16](3).plus(4) == 7


def test_instance_whose_types_do_not_cross_is_a_type_error_without_rustc(tmp_path: Path, logged_rustc: Path) -> None:
    c = rc.RustCompiler(cache_dir=tmp_path / "cache", quiet=True)
    m = c.compile("pub fn count<T>(xs: &[T]) -> usize { xs.len() }")
    before = logged_rustc.builds()
    with pytest.raises(TypeError, match=r"count<String>: type `&\[String\]`"):
        m.count(["a", "b"])
    with pytest.raises(TypeError, match="not supported"):
        m.count["String"]
    assert logged_rustc.builds() == before
    assert m.count([1, 2, 3]) == 3
    assert "count" in m.describe()


def test_numpy_imported_after_the_cell_still_takes_the_fast_path(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        import rustcall_magic as rc
        m = rc.compile_rust({TOTAL_CELL!r}, quiet=True)
        assert "numpy" not in sys.modules
        assert m.total([1, 2]) == 3
        import numpy as np
        a = np.arange(5, dtype=np.int16)
        assert m.total(a) == 10
        assert m.total(np.ones(2, np.float32)) == 2.0
        m.generics["total"].infer = None  # from now on a call that reaches Python fails
        assert m.total(a) == 10 and m.total(np.ones(3, np.float32)) == 3.0
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_cache_lists_instances_by_name(tmp_path: Path) -> None:
    c = rc.RustCompiler(cache_dir=tmp_path / "cache", quiet=True)
    m = c.compile(TOTAL_CELL + WRAPPER_CELL)
    m.total(np.arange(3, dtype=np.uint32))
    m.Wrapper[np.float32](1.5)
    names = {n for e in c.cache.entries() for n in e.function_names}
    assert {"total", "total<u32>", "Wrapper<f32>"} <= names
    listed = {n for row in rc.list_cached_libraries(c) for n in row.functions}
    assert {"total<u32>", "Wrapper<f32>"} <= listed


def test_generic_function_taking_the_cells_own_struct() -> None:
    src = """
pub struct P { pub x: f64 }
pub fn shift<T: Into<f64>>(p: &P, d: T) -> f64 { p.x + d.into() }
"""
    m = rc.compile_rust(src, quiet=True)
    with pytest.raises(TypeError, match=r"own type `P`.*--instantiate 'shift<f64>'"):
        m.shift(m.P(1.0), 2.0)
    m2 = rc.compile_rust(src, quiet=True, instantiate=["shift<f64>"])
    assert m2.shift(m2.P(1.0), 2.0) == 3.0
