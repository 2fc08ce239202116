"""Handles crossing into %%rust functions: borrowed, mutated, moved and returned as Rust would."""

from __future__ import annotations

import ctypes
import gc

import pytest

import rustcall_magic as rc
from rustcall_magic.errors import RustHandleError

np = pytest.importorskip("numpy")

VEC_CELL = """
pub fn total(v: &Vec<i64>) -> i64 { v.iter().sum() }
pub fn grow(v: &mut Vec<i64>, n: i64) { for i in 0..n { v.push(i * 10); } }
pub fn clear_all(v: &mut Vec<i64>) { v.clear(); v.shrink_to_fit(); }
pub fn consume(v: Vec<i64>) -> usize { v.len() }
pub fn reversed(mut v: Vec<i64>) -> Vec<i64> { v.reverse(); v }
pub fn make(n: i64) -> Vec<i64> { (0..n).collect() }
pub fn halves(v: &Vec<f32>) -> Vec<f32> { v.iter().map(|x| x / 2.0).collect() }
pub fn flags(n: usize) -> Vec<bool> { (0..n).map(|i| i % 2 == 0).collect() }
pub fn sizes(n: usize) -> Vec<usize> { (0..n).collect() }
pub fn merge(a: &mut Vec<i64>, b: &Vec<i64>) { a.extend_from_slice(b); }
pub fn push_then_panic(v: &mut Vec<i64>) { v.extend(0..100); panic!("after growing"); }
pub fn consume_scaled(v: Vec<i64>, k: i32) -> i64 { v.iter().sum::<i64>() * k as i64 }
pub fn consume_both(a: Vec<i64>, b: Vec<i64>) -> usize { a.len() + b.len() }
"""

SHARED_CELL = """
use std::rc::Rc;
use std::sync::Arc;
pub fn peek(b: &Box<i32>) -> i32 { **b }
pub fn unbox(b: Box<i32>) -> i32 { *b }
pub fn rebox(b: Box<u8>) -> Box<u8> { Box::new(*b + 1) }
pub fn boxed(x: f64) -> Box<f64> { Box::new(x) }
pub fn rc_count(r: &Rc<f64>) -> usize { Rc::strong_count(r) }
pub fn rc_pass(r: Rc<f64>) -> Rc<f64> { r }
pub fn rc_twice(r: &Rc<f64>) -> Rc<f64> { Rc::clone(r) }
pub fn rc_make(x: f64) -> Rc<f64> { Rc::new(x) }
pub fn arc_add(a: &Arc<i64>, b: Arc<i64>) -> i64 { **a + *b }
pub fn arc_share(a: &Arc<i64>) -> Arc<i64> { Arc::clone(a) }
pub fn arc_count(a: &Arc<i64>) -> usize { Arc::strong_count(a) }
pub fn unbox_and_peek(a: Box<i32>, b: &Box<i32>) -> i32 { *a + **b }
"""


@pytest.fixture(scope="module")
def vecs():
    return rc.compile_rust(VEC_CELL)


@pytest.fixture(scope="module")
def shared():
    return rc.compile_rust(SHARED_CELL)


def test_vec_borrowed_mutated_moved_and_returned(vecs) -> None:
    v = rc.RustVec([1, 2, 3], "i64")
    assert vecs.total(v) == 6 and v.state == "alive"
    vecs.grow(v, 3)  # reallocates inside Rust: the handle follows
    assert v.to_list() == [1, 2, 3, 0, 10, 20] and v.capacity >= 6
    vecs.clear_all(v)
    assert len(v) == 0 and v.capacity == 0
    v.extend([4, 5])
    assert vecs.consume(v) == 2
    assert v.state == "moved" and v.dropped
    with pytest.raises(RustHandleError, match="moved"):
        len(v)
    with pytest.raises(RustHandleError, match="moved"):
        vecs.total(v)
    v.drop()  # idempotent: a moved handle owns nothing


def test_returned_vecs_are_handles_without_copies(vecs) -> None:
    r = vecs.reversed(rc.RustVec([1, 2, 3], "i64"))
    assert isinstance(r, rc.RustVec) and r.to_list() == [3, 2, 1]
    m = vecs.make(5)
    assert (m.dtype, m.to_list()) == ("i64", [0, 1, 2, 3, 4])
    a = np.asarray(m)
    a[0] = 99
    assert m[0] == 99, "np.asarray of a returned Vec is a view of Rust memory"
    h = vecs.halves(rc.RustVec([1.0, 3.0], "f32"))
    assert (h.dtype, h.to_list()) == ("f32", [0.5, 1.5])
    assert vecs.flags(3).to_list() == [True, False, True]
    s = vecs.sizes(3)
    assert (s.dtype, s.to_list()) == ("u64", [0, 1, 2])
    assert vecs.total(vecs.make(4)) == 6
    row = next(x for x in rc.live_handles() if x.id == m.id)
    assert (row.kind, row.state, row.origin.startswith("test_runtime_cells.py:")) == ("Vec", "alive", True)


def test_vec_params_still_take_lists_and_buffers(vecs) -> None:
    assert vecs.consume([1, 2, 3]) == 3
    assert vecs.consume(np.arange(4, dtype=np.int64)) == 4
    a = np.arange(3, dtype=np.int64)
    assert vecs.reversed(a).to_list() == [2, 1, 0] and a.tolist() == [0, 1, 2]


def test_wrong_element_type_or_kind_is_type_error(vecs, shared) -> None:
    with pytest.raises(TypeError, match=r"RustVec<i32>; the function needs i64"):
        vecs.total(rc.RustVec([1], "i32"))
    with pytest.raises(TypeError, match="must be a RustVec of i64"):
        vecs.total([1, 2])
    with pytest.raises(TypeError):
        vecs.consume(rc.RustVec([1.0], "f64"))
    with pytest.raises(TypeError, match="RustBox of i32"):
        shared.peek(rc.RustRc(1, "i32"))
    with pytest.raises(TypeError):
        shared.unbox(rc.RustBox(1, "i64"))
    v = rc.RustVec([1], "i32")
    with pytest.raises(TypeError):
        vecs.consume(v)
    assert v.state == "alive", "a refused move leaves the handle alone"


def test_aliasing_and_views_are_refused(vecs, shared) -> None:
    v = rc.RustVec([1, 2], "i64")
    with pytest.raises(RustHandleError, match="already"):
        vecs.merge(v, v)  # &mut and & of one Vec
    assert v.to_list() == [1, 2]
    w = rc.RustVec([3], "i64")
    vecs.merge(v, w)
    assert v.to_list() == [1, 2, 3] and w.to_list() == [3]
    view = np.asarray(v)
    with pytest.raises(BufferError, match="view"):
        vecs.grow(v, 100)
    with pytest.raises(BufferError, match="view"):
        vecs.consume(v)
    assert vecs.total(v) == 6, "a shared borrow is fine while a view exists"
    del view
    vecs.grow(v, 1)
    assert v[-1] == 0
    b = rc.RustBox(4, "i32")
    with pytest.raises(RustHandleError, match="already"):
        shared.unbox_and_peek(b, b)  # moving b while also borrowing it
    assert b.value == 4 and b.state == "alive"
    assert shared.unbox_and_peek(b, rc.RustBox(1, "i32")) == 5 and b.state == "moved"


def test_a_failed_later_argument_does_not_move(shared) -> None:
    b = rc.RustBox(4, "i32")
    with pytest.raises(TypeError):
        shared.unbox_and_peek(b, 3)
    assert b.state == "alive" and b.value == 4


def test_a_failed_later_argument_does_not_move_a_vec(vecs) -> None:
    v = rc.RustVec([1, 2, 3], "i64")
    with pytest.raises(TypeError):
        vecs.consume_scaled(v, "two")
    assert v.state == "alive" and rc.to_list(v) == [1, 2, 3]
    with pytest.raises(RustHandleError, match="already"):
        vecs.consume_both(v, v)  # one vector cannot be moved twice
    assert v.state == "alive" and rc.to_list(v) == [1, 2, 3]
    assert vecs.consume_scaled(v, 2) == 12 and v.state == "moved"


def test_panic_after_growing_keeps_the_vec_consistent(vecs) -> None:
    v = rc.RustVec([1], "i64")
    with pytest.raises(rc.RustPanic, match="after growing"):
        vecs.push_then_panic(v)
    assert len(v) == 101 and v[-1] == 99, "the reallocated parts were stored back"
    assert vecs.total(v) == 1 + sum(range(100))


def test_box_rc_arc_cross_like_rust(shared) -> None:
    b = rc.RustBox(7, "i32")
    assert shared.peek(b) == 7 and b.state == "alive"
    assert shared.unbox(b) == 7 and b.state == "moved"
    with pytest.raises(RustHandleError, match="moved"):
        _ = b.value
    r = shared.rebox(rc.RustBox(1, "u8"))
    assert isinstance(r, rc.RustBox) and (r.dtype, r.value) == ("u8", 2)
    f = shared.boxed(2.5)
    assert (f.dtype, f.value) == ("f64", 2.5)

    x = rc.RustRc(1.5, "f64")
    y = x.clone()
    assert shared.rc_count(x) == 2
    z = shared.rc_pass(y)  # moved in, handed back: same allocation, same count
    assert y.state == "moved" and x.strong_count == 2 and z.value == 1.5
    w = shared.rc_twice(x)
    assert x.strong_count == 3 and isinstance(w, rc.RustRc)
    del z, w
    gc.collect()
    assert x.strong_count == 1
    assert shared.rc_make(0.5).strong_count == 1

    a = rc.RustArc(40, "i64")
    assert shared.arc_add(a, rc.RustArc(2, "i64")) == 42
    s = shared.arc_share(a)
    assert a.strong_count == 2 and shared.arc_count(s) == 2
    t = a.clone()
    moved_in = rc.RustArc(1, "i64")
    shared.arc_add(t, moved_in)
    assert moved_in.state == "moved"
    s.drop()
    t.drop()
    assert a.strong_count == 1


def test_rc_from_another_thread_is_refused_by_cells(shared) -> None:
    import threading

    r = rc.RustRc(1.0, "f64")
    caught: list[BaseException] = []

    def call() -> None:
        try:
            shared.rc_count(r)
        except RustHandleError as e:
            caught.append(e)

    t = threading.Thread(target=call)
    t.start()
    t.join()
    assert len(caught) == 1 and "!Send" in str(caught[0])


def test_magic_cell_receives_mutates_moves_and_returns(ip) -> None:
    ip.run_cell_magic(
        "rust",
        "",
        "pub fn scale(v: &mut Vec<f64>, k: f64) { for x in v.iter_mut() { *x *= k; } }\n"
        "pub fn into_box(v: Vec<f64>) -> Box<f64> { Box::new(v.iter().sum()) }\n",
    )
    ip.run_cell("import rustcall_magic as rc\nv = rc.RustVec([1.0, 2.0], 'f64')\nscale(v, 3.0)\nb = into_box(v)")
    ns = ip.user_ns
    assert ns["v"].state == "moved"
    assert isinstance(ns["b"], rc.RustBox) and ns["b"].value == 9.0
    row = next(x for x in rc.live_handles() if x.id == ns["b"].id)
    assert row.origin.startswith("cell[") and row.kind == "Box"


NESTED_VEC = """
pub fn maybe_total(v: Option<Vec<f64>>, scale: f64) -> f64 { v.map(|v| v.iter().sum::<f64>() * scale).unwrap_or(0.0) }
"""


def test_a_nested_vec_copies_a_rustvec_instead_of_moving_it() -> None:
    m = rc.compile_rust(NESTED_VEC, quiet=True)
    v = rc.RustVec([1.0, 2.0, 3.0], "f64")
    with pytest.raises(TypeError):
        m.maybe_total(v, "x")
    assert v.state == "alive" and rc.to_list(v) == [1.0, 2.0, 3.0]
    assert m.maybe_total(v, 2.0) == 12.0
    assert v.state == "alive"  # copied through its buffer: only a top-level Vec<T> moves
    assert m.maybe_total(None, 2.0) == 0.0


# -- handles lent to a running call -------------------------------------------------------
# A later argument's __index__ runs Python code after earlier handle arguments were borrowed
# (or reserved for a move) by the glue: the runtime must refuse to free, move, reallocate,
# mutate or export them until the call returns (before the fix each case below crashed or
# read freed memory).

LENT_CELL = """
use std::rc::Rc;
pub fn take_box(b: Box<i64>, x: i64) -> i64 { *b + x }
pub fn grow(v: &mut Vec<f64>, x: i64) { for i in 0..1000 { v.push((i + x) as f64); } }
pub fn sum(v: &Vec<i64>, x: i64) -> i64 { v.iter().sum::<i64>() + x }
pub fn t(v: Vec<f64>, x: i64) -> f64 { v.iter().sum::<f64>() + x as f64 }
pub fn rc_read(r: &Rc<f64>, x: i64) -> f64 { **r + x as f64 }
pub fn bsum(v: &Vec<bool>) -> i64 { v.iter().map(|&b| b as i64).sum() }
"""


@pytest.fixture(scope="module")
def lent():
    return rc.compile_rust(LENT_CELL)


def evil(*actions):
    """(an object whose __index__ runs each action and returns 1, the list of what each returned or raised)."""
    outcomes: list[object] = []

    class Evil:
        def __index__(self) -> int:
            for act in actions:
                try:
                    outcomes.append(act())
                except Exception as e:  # the test inspects exactly what each action raised
                    outcomes.append(e)
            return 1

    return Evil(), outcomes


def assert_all_lent(outcomes: list[object], n: int) -> None:
    assert len(outcomes) == n
    for e in outcomes:
        assert isinstance(e, RustHandleError), f"expected RustHandleError, got {e!r}"
        assert "lent to a running Rust call" in str(e), str(e)


def test_a_box_reserved_for_a_move_is_untouchable_during_conversion(lent) -> None:
    b = rc.RustBox(41, "i64")
    x, out = evil(b.drop, lambda: rc.drop(b), lambda: setattr(b, "value", 5), lambda: b.value, b.clone)
    assert lent.take_box(b, x) == 42
    assert_all_lent(out, 5)
    assert b.state == "moved"
    with pytest.raises(RustHandleError, match="moved"):
        rc.drop(b)


def test_a_mutably_borrowed_vec_refuses_every_use_during_conversion(lent) -> None:
    v = rc.RustVec([1.0, 2.0], "f64")
    x, out = evil(
        v.drop,
        lambda: rc.drop(v),
        lambda: v.push(3.0),
        v.pop,
        lambda: v.extend([1.0]),
        lambda: v.__setitem__(0, 9.0),
        lambda: memoryview(v),
        lambda: len(v),
        lambda: v[0],
        v.to_list,
        v.clone,
        lambda: v.capacity,
    )
    lent.grow(v, x)
    assert_all_lent(out, 12)
    assert (len(v), v[0], v[1], v[2], v[-1]) == (1002, 1.0, 2.0, 1.0, 1000.0)
    assert np.asarray(v)[-1] == 1000.0  # views work again once the call returned


def test_no_view_of_a_mutably_borrowed_vec_survives_its_reallocation(lent) -> None:
    v = rc.RustVec([1.0], "f64")
    x, out = evil(lambda: np.asarray(v))
    lent.grow(v, x)
    # Before the fix: a float64 view of the buffer the call then freed by growing. Now the buffer
    # request is refused; numpy swallows that and wraps the handle itself in an object array.
    (a,) = out
    assert isinstance(a, np.ndarray) and a.dtype == object and a.shape == () and a[()] is v
    assert len(v) == 1001 and v[1000] == 1000.0


def test_a_shared_borrow_allows_reads_and_refuses_changes(lent) -> None:
    v = rc.RustVec([1, 2, 3], "i64")
    x, out = evil(lambda: len(v), lambda: v[-1], v.to_list, lambda: "len=3" in repr(v))
    assert lent.sum(v, x) == 7
    assert out == [3, 3, [1, 2, 3], True]
    x, out = evil(
        v.drop,
        lambda: rc.drop(v),
        lambda: v.push(4),
        v.pop,
        lambda: v.__setitem__(0, 7),
        lambda: v.extend([5]),
        lambda: v.extend(v),
    )
    assert lent.sum(v, x) == 7
    assert_all_lent(out, 7)
    assert v.to_list() == [1, 2, 3] and v.state == "alive"
    # A view is one more shared borrow, as Rust allows beside `&Vec<T>`: read-only, so no
    # writable one can be had while the call runs.
    x, out = evil(lambda: (memoryview(v).readonly, memoryview(v).tolist()), lambda: (ctypes.c_int64 * 3).from_buffer(v))
    assert lent.sum(v, x) == 7
    assert out[0] == (True, [1, 2, 3])
    assert isinstance(out[1], TypeError) and "not writable" in str(out[1])


def test_a_vec_reserved_for_a_move_is_freed_exactly_once(lent) -> None:
    from rustcall_magic import handles

    before = handles.stats()
    v = rc.RustVec([1.0, 2.0], "f64")
    x, out = evil(v.drop, lambda: rc.drop(v), lambda: v.push(1.0))
    assert lent.t(v, x) == 4.0
    assert_all_lent(out, 3)
    assert v.state == "moved"
    after = handles.stats()
    assert after["payload_allocs"] - before["payload_allocs"] == 1
    assert after["payload_frees"] - before["payload_frees"] == 1


def test_an_rc_under_a_shared_borrow_cannot_be_assigned_or_dropped(lent) -> None:
    r = rc.RustRc(1.5, "f64")
    x, out = evil(lambda: setattr(r, "value", 9.0), r.drop, lambda: r.value, lambda: r.clone().strong_count)
    assert lent.rc_read(r, x) == 2.5
    assert_all_lent(out[:2], 2)
    assert out[2:] == [1.5, 2]  # a shared borrow still reads, and Rc::clone needs only &Rc
    assert r.value == 1.5 and r.strong_count == 1


def test_bool_vec_bytes_are_validated_and_views_are_read_only(lent) -> None:
    with pytest.raises(ValueError, match=r"item 2 of the buffer is 2,"):
        rc.RustVec(np.array([1, 0, 2, 7, 255], "u1").view(bool))
    v = rc.RustVec(np.array([1, 0, 1], "u1").view(bool))
    assert v.dtype == "bool" and lent.bsum(v) == 2
    with pytest.raises(ValueError, match=r"item 1 of the buffer is 200,"):
        v.extend(np.array([0, 200], "u1").view(bool))
    assert v.to_list() == [True, False, True], "a refused extend appends nothing"
    # bool views are read-only: Python cannot store a byte Rust would misread
    a = np.asarray(v)
    assert a.dtype == np.bool_ and a.tolist() == [True, False, True] and not a.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        a.view("u1")[0] = 200
    m = memoryview(v)
    assert m.readonly and m.format == "?"
    with pytest.raises(TypeError):
        m.cast("B")[0] = 200
    m.release()
    del a
    v[1] = True
    v.extend(v)
    assert lent.bsum(v) == 6 and len(v) == 6


OWN_ALLOCATOR = """\
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 { ALLOCS.fetch_add(1, Relaxed); unsafe { System.alloc(l) } }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) { unsafe { System.dealloc(p, l) } }
}
#[global_allocator]
static A: Counting = Counting;
pub fn take_box(b: Box<i64>) -> i64 { *b }
pub fn make_vec(n: usize) -> Vec<i32> { vec![1; n] }
pub fn length(v: &Vec<i32>) -> usize { v.len() }
pub fn words(v: Vec<String>) -> usize { v.len() }
pub fn allocations() -> usize { ALLOCS.load(Relaxed) }
"""


def test_a_cell_with_its_own_allocator_exchanges_no_runtime_memory() -> None:
    # Handles' memory comes from the process allocator; this cell frees with its own.
    with pytest.warns(rc.RustcallWarning, match=r"#\[global_allocator\]") as caught:
        m = rc.compile_rust(OWN_ALLOCATOR)
    skipped = {str(w.message).split("`")[1] for w in caught}
    assert skipped == {"take_box", "make_vec"} and set(m.functions) == {"length", "words", "allocations"}
    assert m.length(rc.RustVec([1, 2, 3], "i32")) == 3 and m.words(["a", "b"]) == 2
    assert m.allocations() > 0


def test_a_vector_lent_twice_as_shared_borrows() -> None:
    # `&Vec<T>` and `&[T]` of one vector are two shared borrows, which Rust allows; a `&mut`
    # beside a shared one is not.
    m = rc.compile_rust(
        "pub fn both(v: &Vec<i32>, s: &[i32]) -> i64 { v.iter().chain(s).map(|x| *x as i64).sum() }\n"
        "pub fn clash(v: &Vec<i32>, s: &mut [i32]) -> usize { s[0] = 9; v.len() }\n"
    )
    v = rc.RustVec([1, 2, 3], "i32")
    assert m.both(v, v) == 12
    with pytest.raises((RustHandleError, ValueError, TypeError, BufferError)):
        m.clash(v, v)
    assert v.to_list() == [1, 2, 3]
    v.push(4)  # no view outlived the call
    assert v.to_list() == [1, 2, 3, 4]


def test_copying_a_dropped_vector_is_a_handle_error() -> None:
    v = rc.RustVec([1, 2], "i64")
    w = rc.create_rust_vec(v)
    assert (w.to_list(), w.dtype) == ([1, 2], "i64")
    v.drop()
    with pytest.raises(RustHandleError, match="dropped"):
        rc.create_rust_vec(v)
    with pytest.raises(RustHandleError, match="dropped"):
        rc.RustVec(v, "i64")
