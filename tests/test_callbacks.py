"""Callbacks (SPEC §12): `&dyn Fn`, `&mut dyn FnMut` and `impl Fn` parameters take Python callables
and `%%rust` functions (called natively); exceptions unwind the Rust frames and reach the caller."""

from __future__ import annotations

import functools
import math
import traceback

import pytest

import rustcall_magic as rc
from rustcall_magic.signature import parse_cell

CONSUMER = r"""
use std::sync::atomic::{AtomicUsize, Ordering};
static DROPS: AtomicUsize = AtomicUsize::new(0);
struct Guard;
impl Drop for Guard { fn drop(&mut self) { DROPS.fetch_add(1, Ordering::SeqCst); } }
/// How many Guards were dropped so far.
pub fn drops() -> usize { DROPS.load(Ordering::SeqCst) }
/// Midpoint rule over [a, b] with n steps.
pub fn integrate(f: &dyn Fn(f64) -> f64, a: f64, b: f64, n: u64) -> f64 {
    let _g = Guard;
    let h = (b - a) / n as f64;
    let mut s = 0.0;
    for i in 0..n { s += f(a + (i as f64 + 0.5) * h); }
    s * h
}
pub fn label_all(mut f: impl FnMut(i64, &str) -> String, n: i64) -> Vec<String> { (0..n).map(|i| f(i, "ab")).collect() }
pub fn each(f: &mut dyn FnMut(i64), n: i64) { for i in 0..n { f(i) } }
pub fn first_some(f: impl Fn(u32) -> Option<u32>, n: u32) -> Option<u32> { (0..n).find_map(|i| f(i)) }
pub fn combine(f: &dyn Fn((i64, f64), bool) -> (f64, String), x: i64) -> (f64, String) { f((x, 0.5), x > 0) }
pub fn call0(f: &dyn Fn() -> i64) -> i64 { f() + f() }
pub fn halves(f: &dyn Fn(f64) -> f64) -> f64 { f(0.5) }
"""

PRODUCER = r"""
use std::sync::atomic::{AtomicUsize, Ordering};
static CALLS: AtomicUsize = AtomicUsize::new(0);
unsafe extern "C" { fn PyGILState_Check() -> i32; }
pub fn square(x: f64) -> f64 { CALLS.fetch_add(1, Ordering::SeqCst); x * x }
pub fn calls() -> usize { CALLS.load(Ordering::SeqCst) }
pub fn isquare(x: i64) -> i64 { x * x }
/// 1.0 when the calling thread holds the GIL.
pub fn holds_gil(_x: f64) -> f64 { unsafe { PyGILState_Check() as f64 } }
pub fn refuse_big(x: f64) -> f64 { if x > 0.5 { panic!("too big: {}", x) } x }
pub fn shout(i: i64, s: &str) -> String { format!("{}{}", s.to_uppercase(), i) }
pub fn labels(v: Vec<String>) -> usize { v.len() }
pub fn below_seven(i: u64) -> u64 { assert!(i < 7, "{} is too big", i); i }
"""

RELEASED = r"""
/// Sum of f over 0..n, the GIL released around the loop.
pub fn total(f: &dyn Fn(f64) -> f64, n: u64) -> f64 { (0..n).map(|i| f(i as f64)).sum() }
/// Calls f from two threads of its own.
pub fn total_threads(f: impl Fn(u64) -> u64 + Sync, n: u64) -> u64 {
    std::thread::scope(|s| {
        let a = s.spawn(|| (0..n).map(|i| f(i)).sum::<u64>());
        let b = s.spawn(|| (n..2 * n).map(|i| f(i)).sum::<u64>());
        a.join().unwrap() + b.join().unwrap()
    })
}
"""


@pytest.fixture(scope="module")
def cons():
    return rc.compile_rust(CONSUMER)


@pytest.fixture(scope="module")
def prod():
    return rc.compile_rust(PRODUCER)


def test_signature_rows():
    info = parse_cell(CONSUMER + "pub fn ptr(f: fn(f64) -> f64) -> f64 { f(1.0) }\npub fn borrowed(f: &dyn Fn(f64) -> &str) {}\n")
    names = [f.name for f in info.functions]
    assert "integrate" in names and "label_all" in names and "each" in names and "combine" in names
    sig = next(f for f in info.functions if f.name == "integrate")
    assert str(sig.params[0].type) == "&dyn Fn(f64) -> f64"
    skipped = dict(info.skipped)
    # A callback may not return memory borrowed from a Python object.
    assert "borrowed" in skipped


def test_python_callables(cons):
    assert cons.integrate(lambda x: x * x, 0.0, 1.0, 1000) == pytest.approx(1 / 3, rel=1e-6)
    assert cons.integrate(math.sin, 0.0, math.pi, 1000) == pytest.approx(2.0, rel=1e-5)
    assert cons.integrate(functools.partial(pow, exp=3), 0.0, 1.0, 1000) == pytest.approx(0.25, rel=1e-5)

    class Poly:
        def __init__(self, k: float) -> None:
            self.k = k
            self.seen = 0

        def eval(self, x: float) -> float:
            self.seen += 1
            return self.k * x

    p = Poly(2.0)
    assert cons.integrate(p.eval, 0.0, 1.0, 100) == pytest.approx(1.0)
    assert p.seen == 100  # one Python call per step


def test_fnmut_strings_options_tuples(cons):
    assert cons.label_all(lambda i, s: s * i, 3) == ["", "ab", "abab"]
    acc: list[int] = []
    assert cons.each(acc.append, 4) is None  # a `()` callback's return value is ignored
    assert acc == [0, 1, 2, 3]
    assert cons.first_some(lambda i: i * 10 if i == 3 else None, 10) == 30
    assert cons.first_some(lambda i: None, 10) is None
    assert cons.combine(lambda t, flag: (t[0] + t[1], str(flag)), 2) == (2.5, "True")
    assert cons.call0(lambda: 21) == 42


def test_rust_function_is_called_natively(cons, prod):
    before = prod.calls()
    assert cons.integrate(prod.square, 0.0, 1.0, 1000) == pytest.approx(1 / 3, rel=1e-6)
    assert prod.calls() - before == 1000
    assert cons.label_all(prod.shout, 2) == ["AB0", "AB1"]
    # The same function through a Python lambda: the same result, one Python call per step.
    seen = []

    def via_python(x: float) -> float:
        seen.append(x)
        return prod.square(x)

    assert cons.integrate(via_python, 0.0, 1.0, 1000) == pytest.approx(1 / 3, rel=1e-6)
    assert len(seen) == 1000


def test_native_call_runs_without_python_under_release_gil(ip, prod):
    ip.run_cell_magic("rust", "--release-gil", RELEASED)
    total = ip.user_ns["total"]
    # Natively the callback runs on the Rust thread that released the GIL: no Python involved.
    assert total(prod.holds_gil, 10) == 0.0
    # Called through Python, the callback takes the GIL back for each call.
    assert total(lambda x: prod.holds_gil(x), 10) == 10.0
    assert total(lambda x: 2 * x, 4) == 12.0


def test_python_callback_from_rust_threads(ip):
    ip.run_cell_magic("rust", "--release-gil", RELEASED)
    seen: list[int] = []
    assert ip.user_ns["total_threads"](lambda i: seen.append(i) or i, 50) == sum(range(100))
    assert sorted(seen) == list(range(100))


def test_wrong_signature_is_a_type_error(cons, prod):
    with pytest.raises(TypeError, match=r"isquare\(\) has type `fn\(i64\) -> i64`, which is not `fn\(f64\) -> f64`"):
        cons.integrate(prod.isquare, 0.0, 1.0, 10)
    with pytest.raises(TypeError, match=r"argument 1 \(f: &dyn Fn\(f64\) -> f64\) must be a callable"):
        cons.integrate(3, 0.0, 1.0, 10)
    assert cons.integrate(prod.square, 0.0, 1.0, 10) == pytest.approx(1 / 3, rel=1e-2)


def test_bad_callback_result(cons):
    with pytest.raises(TypeError, match=r"returned str, expected f64"):
        cons.integrate(lambda x: "one", 0.0, 1.0, 10)
    with pytest.raises(OverflowError, match=r"returned an int out of range for Option<u32>"):
        cons.first_some(lambda i: -1, 3)
    assert cons.integrate(lambda x: 1, 0.0, 1.0, 10) == pytest.approx(1.0)  # an int is a float


class Thousandth(Exception):
    pass


def test_exception_unwinds_and_keeps_its_traceback(cons):
    calls = 0
    raised = Thousandth("the 1000th call")

    def f(x: float) -> float:
        nonlocal calls
        calls += 1
        if calls == 1000:
            raise raised
        return x

    drops = cons.drops()
    with pytest.raises(Thousandth) as info:
        cons.integrate(f, 0.0, 1.0, 5000)
    assert info.value is raised
    assert calls == 1000  # the loop stopped at the exception
    assert cons.drops() == drops + 1  # the Rust frame's Guard was dropped while unwinding
    frames = traceback.extract_tb(info.value.__traceback__)
    assert frames[-1].name == "f" and "raise raised" in frames[-1].line
    assert not any("rustcall_magic" in fr.filename for fr in frames)
    assert cons.integrate(lambda x: x, 0.0, 1.0, 10) == pytest.approx(0.5)


def test_exception_in_argument_conversion_of_a_callback(cons):
    class Bad:
        pass

    # A callback whose result fails: the error names the result; the Guard is dropped.
    drops = cons.drops()
    with pytest.raises(TypeError, match="returned Bad"):
        cons.integrate(lambda x: Bad(), 0.0, 1.0, 10)
    assert cons.drops() == drops + 1


def test_panic_in_native_callback(cons, prod):
    drops = cons.drops()
    with pytest.raises(rc.RustPanic, match=r"in refuse_big\(\): too big: 0\.55") as info:
        cons.integrate(prod.refuse_big, 0.0, 1.0, 10)
    assert info.value.file == "cell"
    assert cons.drops() == drops + 1
    assert cons.halves(prod.refuse_big) == 0.5


def test_callbacks_with_release_gil_raise(ip):
    ip.run_cell_magic("rust", "--release-gil", RELEASED)

    def f(x: float) -> float:
        if x == 3:
            raise ValueError("three")
        return x

    with pytest.raises(ValueError, match="three"):
        ip.user_ns["total"](f, 10)
    assert ip.user_ns["total"](f, 3) == 3.0


def test_rust_function_without_native_entry_is_a_python_callable(cons, prod):
    # `Vec<String>` does not pass natively between cells: the function is called through Python.
    assert cons.label_all(lambda i, s: str(prod.labels([s] * i)), 3) == ["0", "1", "2"]


def test_llvm_cell_takes_callbacks(ip, prod):
    pytest.importorskip("llvmlite")
    ip.run_cell_magic("rust_llvm", "", CONSUMER)
    integrate = ip.user_ns["integrate"]
    assert integrate(lambda x: x * x, 0.0, 1.0, 100) == pytest.approx(1 / 3, rel=1e-4)
    assert integrate(prod.square, 0.0, 1.0, 100) == pytest.approx(1 / 3, rel=1e-4)
    with pytest.raises(rc.RustPanic, match="too big"):
        integrate(prod.refuse_big, 0.0, 1.0, 10)
    with pytest.raises(KeyError):
        integrate(lambda x: {}[x], 0.0, 1.0, 10)


POINTERS = r"""
use std::sync::atomic::{AtomicUsize, Ordering};
static DROPS: AtomicUsize = AtomicUsize::new(0);
struct Guard;
impl Drop for Guard { fn drop(&mut self) { DROPS.fetch_add(1, Ordering::SeqCst); } }
pub fn ptr_drops() -> usize { DROPS.load(Ordering::SeqCst) }
pub fn apply_ptr(f: fn(f64) -> f64, x: f64) -> f64 { let _g = Guard; f(x) }
pub fn count_chars(f: fn(&str) -> usize, words: Vec<String>) -> usize { words.iter().map(|w| f(w)).sum() }
pub fn native_only(x: f64) -> f64 { x + 1.0 }
/// f(x) on a thread of its own (the GIL stays with the caller).
pub fn on_thread(f: fn(f64) -> f64, x: f64) -> f64 { std::thread::scope(|s| s.spawn(move || f(x)).join().unwrap()) }
"""


def test_fn_pointer_takes_rust_functions(prod):
    m = rc.compile_rust(POINTERS)
    assert m.apply_ptr(prod.square, 3.0) == 9.0
    assert m.apply_ptr(m.native_only, 3.0) == 4.0  # a function of the same cell
    other = rc.compile_rust("pub fn len_of(s: &str) -> usize { s.chars().count() }")
    assert m.count_chars(other.len_of, ["ab", "çé", ""]) == 4
    with pytest.raises(TypeError, match=r"a `fn` pointer takes a %%rust function"):
        m.apply_ptr(lambda x: x, 1.0)
    with pytest.raises(TypeError, match=r"isquare\(\) has type `fn\(i64\) -> i64`"):
        m.apply_ptr(prod.isquare, 1.0)
    drops = m.ptr_drops()
    with pytest.raises(rc.RustPanic, match=r"in refuse_big\(\): too big: 0\.75"):
        m.apply_ptr(prod.refuse_big, 0.75)
    assert m.ptr_drops() == drops + 1  # unwound through the caller's frame
    assert m.apply_ptr(prod.refuse_big, 0.25) == 0.25
    # On a thread the Rust code started, while the caller holds the GIL: no GIL is needed.
    assert m.on_thread(prod.square, 4.0) == 16.0
    with pytest.raises(rc.RustPanic):
        m.on_thread(prod.refuse_big, 0.75)


def test_python_callback_from_rust_thread_needs_release_gil(prod):
    m = rc.compile_rust(RELEASED + "\n// holding the GIL\n")
    # A native callback needs no GIL: it runs on the Rust threads, and its panic takes none either.
    assert m.total_threads(prod.below_seven, 3) == sum(range(6))
    with pytest.raises(rc.RustPanic):
        m.total_threads(prod.below_seven, 5)
    # The calling thread holds the GIL and waits for the Rust threads: no deadlock, a panic.
    with pytest.raises(rc.RustPanic):
        m.total_threads(lambda i: i, 5)
    assert m.total(lambda x: x, 3) == 3.0


METHODS = r"""
pub struct Scale { pub k: f64 }
impl Scale {
    pub fn new(k: f64) -> Self { Scale { k } }
    /// f applied to k.
    pub fn apply(&self, f: &dyn Fn(f64) -> f64) -> f64 { f(self.k) }
    pub fn map_all(&mut self, f: impl Fn(f64) -> f64) { self.k = f(self.k); }
}
"""


def test_methods_take_callbacks(prod):
    m = rc.compile_rust(METHODS)
    s = m.Scale(3.0)
    assert s.apply(lambda x: x + 1) == 4.0
    assert s.apply(prod.square) == 9.0
    s.map_all(prod.square)
    assert s.k == 9.0
    with pytest.raises(ZeroDivisionError):
        s.map_all(lambda x: x / 0)
    # The exception interrupted a `&mut self` method, as a panic would: the instance is poisoned.
    with pytest.raises(rc.RustHandleError, match="poisoned"):
        s.apply(lambda x: x)


def test_llvm_cell_as_producer(ip, cons, prod):
    pytest.importorskip("llvmlite")
    ip.run_cell_magic(
        "rust_llvm", "", "pub fn cube(x: f64) -> f64 { x * x * x }\npub fn no_neg(x: f64) -> f64 { assert!(x >= 0.0); x }"
    )
    assert cons.integrate(ip.user_ns["cube"], 0.0, 1.0, 1000) == pytest.approx(0.25, rel=1e-5)
    with pytest.raises(rc.RustPanic, match="no_neg"):
        cons.integrate(ip.user_ns["no_neg"], -1.0, 1.0, 10)
    ptr = rc.compile_rust(POINTERS)
    assert ptr.apply_ptr(ip.user_ns["cube"], 2.0) == 8.0
    ip.run_cell_magic("rust_llvm", "", POINTERS)  # a JIT cell taking `fn` pointers
    assert ip.user_ns["apply_ptr"](prod.square, 3.0) == 9.0
    with pytest.raises(rc.RustPanic, match="too big"):
        ip.user_ns["apply_ptr"](prod.refuse_big, 0.9)
    with pytest.raises(rc.RustPanic, match="no_neg"):
        ptr.apply_ptr(ip.user_ns["no_neg"], -2.0)
