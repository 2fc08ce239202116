"""Ownership handles (RustBox, RustRc, RustArc, RustVec) and the live-handle registry."""

from __future__ import annotations

import array
import gc
import io
import os
import pickle
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import rustcall_magic as rc
from rustcall_magic import handles, runtime
from rustcall_magic.errors import RustHandleError

np = pytest.importorskip("numpy")

HERE = Path(__file__).name

#: (dtype, values to round-trip: extremes and a typical value)
DTYPE_VALUES = [
    ("i8", [-128, 127, 5]),
    ("i16", [-32768, 32767, -7]),
    ("i32", [-(2**31), 2**31 - 1, 42]),
    ("i64", [-(2**63), 2**63 - 1, 7]),
    ("u8", [0, 255, 200]),
    ("u16", [0, 65535, 1000]),
    ("u32", [0, 2**32 - 1, 3]),
    ("u64", [0, 2**64 - 1, 2**63]),
    ("f32", [1.5, -0.25, 2.0**127]),
    ("f64", [1.5, -1e308, 2.5e-300]),
    ("bool", [True, False, True]),
]
OUT_OF_RANGE = [("i8", 128), ("i8", -129), ("u8", -1), ("u16", 65536), ("i32", 2**31), ("u64", 2**64), ("i64", 2**63)]
SCALAR_KINDS = [("RustBox", "Box"), ("RustRc", "Rc"), ("RustArc", "Arc")]


def alive_ids() -> set[int]:
    return {r.id for r in rc.live_handles() if r.state == "alive"}


def row_of(h: object) -> handles.HandleRow:
    hid = h.id  # type: ignore[attr-defined]
    return next(r for r in rc.live_handles() if r.id == hid)


# -- values of every kind and dtype -------------------------------------------------------


@pytest.mark.parametrize("cls,kind", SCALAR_KINDS)
@pytest.mark.parametrize("dtype,values", DTYPE_VALUES)
def test_scalar_handles_read_back_every_dtype(cls: str, kind: str, dtype: str, values: list) -> None:
    for v in values:
        h = getattr(rc, cls)(v, dtype)
        assert h.value == v and type(h.value) is type(v)
        assert h.dtype == dtype and h.state == "alive" and not h.dropped
        row = row_of(h)
        assert (row.kind, row.dtype, row.state) == (kind, dtype, "alive")
        h.drop()
        assert h.dropped and h.state == "dropped"


@pytest.mark.parametrize("dtype,values", DTYPE_VALUES)
def test_vec_reads_back_every_dtype(dtype: str, values: list) -> None:
    v = rc.RustVec(values, dtype)
    assert v.to_list() == values == list(v) == rc.to_list(v)
    assert [v[i] for i in range(-len(values), len(values))] == values + values
    assert np.asarray(v).tolist() == values
    v.push(values[0])
    assert v[-1] == values[0] and len(v) == 4
    v[0] = values[1]
    assert v[0] == values[1]
    assert v.pop() == values[0] and len(v) == 3


def test_box_value_set_and_default_dtypes() -> None:
    b = rc.RustBox(42, "i32")
    b.value = -7
    assert b.value == -7
    assert rc.RustBox(3).dtype == "i64"
    assert rc.RustBox(3.5).dtype == "f64"
    assert rc.RustBox(True).dtype == "bool"
    assert rc.RustBox(2, dtype="u8").value == 2
    f = rc.RustBox(1, "f64")  # ints are real numbers
    assert f.value == 1.0 and type(f.value) is float
    c = b.clone()
    c.value = 9
    assert (b.value, c.value) == (-7, 9), "Box::clone is a deep copy"


def test_float32_rounds_like_rust() -> None:
    assert rc.RustBox(0.1, "f32").value == pytest.approx(0.1, rel=1e-7)
    assert rc.RustBox(0.1, "f32").value != 0.1


def test_reprs_show_kind_dtype_value_and_state() -> None:
    b = rc.RustBox(42, "i32")
    assert repr(b) == "RustBox<i32>(42)"
    r = rc.RustRc(1.5, "f64")
    r2 = r.clone()
    assert repr(r) == "RustRc<f64>(1.5, strong_count=2)"
    assert repr(rc.RustArc(7, "i64")) == "RustArc<i64>(7, strong_count=1)"
    assert repr(rc.RustVec([1, 2, 3], "i32")) == "RustVec<i32>(len=3, [1, 2, 3])"
    assert repr(rc.RustVec(range(10), "u8")) == "RustVec<u8>(len=10, [0, 1, 2, 3, 4, 5, 6, 7, ...])"
    b.drop()
    assert repr(b) == "RustBox<i32>(<dropped>)"
    r2.drop()
    assert repr(r) == "RustRc<f64>(1.5, strong_count=1)"


# -- Rc / Arc counts -----------------------------------------------------------------------


@pytest.mark.parametrize("cls", ["RustRc", "RustArc"])
def test_clone_and_drop_follow_strong_count(cls: str) -> None:
    a = getattr(rc, cls)(5, "i64")
    clones = [a.clone() for _ in range(3)]
    assert a.strong_count == 4 and all(c.strong_count == 4 for c in clones)
    assert all(c.value == 5 for c in clones)
    clones[0].drop()
    clones[1] = None  # collected
    assert a.strong_count == 2
    with pytest.raises(RustHandleError, match="shared"):
        a.value = 6  # Rc::get_mut is None while shared
    clones[2].drop()
    assert a.strong_count == 1
    a.value = 6  # the sole owner may assign
    assert a.value == 6
    assert row_of(a).strong_count == 1


def test_arc_clones_from_four_threads_keep_exact_counts() -> None:
    a = rc.RustArc(7, "i64")
    made: list[list[object]] = [[] for _ in range(4)]
    barrier = threading.Barrier(4)

    def work(out: list[object]) -> None:
        barrier.wait()
        for _ in range(50):
            out.append(a.clone())

    threads = [threading.Thread(target=work, args=(m,)) for m in made]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert a.strong_count == 1 + 4 * 50

    def drop_all(out: list[object]) -> None:
        barrier.wait()
        for h in out:
            h.drop()  # type: ignore[attr-defined]

    threads = [threading.Thread(target=drop_all, args=(m,)) for m in made]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert a.strong_count == 1


def test_rc_from_another_thread_raises() -> None:
    r = rc.RustRc(1, "i32")
    errors: list[BaseException] = []

    def touch() -> None:
        for op in (lambda: r.value, r.clone, lambda: r.strong_count, r.drop):
            try:
                op()
            except RustHandleError as e:
                errors.append(e)

    t = threading.Thread(target=touch)
    t.start()
    t.join()
    assert len(errors) == 4
    assert "!Send" in str(errors[0])
    assert r.value == 1 and r.state == "alive", "failed uses from another thread change nothing"
    assert isinstance(errors[0], ValueError)


def test_rc_of_an_ended_thread_is_refused_to_later_threads() -> None:
    # A thread started after the creator ended must not pass for the owner (its stack and
    # thread-locals may sit where the creator's were).
    passed = 0
    for i in range(30):
        made: list = []
        creator = threading.Thread(target=lambda i=i, made=made: made.append(rc.RustRc(i, "i32")))
        creator.start()
        creator.join()
        seen: list = []

        def use(r=made[0], seen=seen) -> None:
            try:
                seen.append(r.value)
            except RustHandleError:
                pass

        later = threading.Thread(target=use)
        later.start()
        later.join()
        passed += bool(seen)
    assert passed == 0


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype,value", OUT_OF_RANGE)
def test_out_of_range_is_overflow_error(dtype: str, value: int) -> None:
    with pytest.raises(OverflowError, match=dtype):
        rc.RustBox(value, dtype)
    v = rc.RustVec([], dtype)
    with pytest.raises(OverflowError):
        v.push(value)
    assert len(v) == 0


def test_wrong_types_and_dtypes() -> None:
    with pytest.raises(TypeError, match="i32 element must be int, not float"):
        rc.RustBox(1.5, "i32")
    with pytest.raises(TypeError):
        rc.RustBox(float("nan"), "i64")
    with pytest.raises(TypeError):
        rc.RustBox(1, "bool")
    with pytest.raises(TypeError):
        rc.RustBox("1", "f64")
    with pytest.raises(OverflowError):
        rc.RustBox(1e39, "f32")
    with pytest.raises(ValueError, match="unknown dtype"):
        rc.RustBox(1, "i128")
    with pytest.raises(TypeError, match="dtype must be a str"):
        rc.RustBox(1, 32)
    with pytest.raises(TypeError):
        rc.RustBox()
    with pytest.raises(TypeError):
        rc.RustBox(1, "i32", "extra")
    with pytest.raises(TypeError, match="needs a dtype"):
        rc.RustVec([1, 2])
    with pytest.raises(TypeError, match="i32 element"):
        rc.RustVec([1, "x"], "i32")
    # A RustVec pickles by value (tests/test_pickling.py); the other handles own shared or boxed memory.
    with pytest.raises(TypeError, match="pickle"):
        pickle.dumps(rc.RustBox(1, "i32"))


def test_use_after_drop_raises_and_drop_is_idempotent() -> None:
    b = rc.RustBox(1, "i32")
    r = rc.RustRc(1, "i32")
    v = rc.RustVec([1, 2], "i32")
    for h in (b, r, v):
        h.drop()
        h.drop()  # idempotent
        assert h.dropped
    for op in (
        lambda: b.value,
        lambda: setattr(b, "value", 2),
        b.clone,
        lambda: r.strong_count,
        lambda: len(v),
        lambda: v[0],
        lambda: v.push(1),
        v.pop,
        v.to_list,
        lambda: list(v),
        lambda: memoryview(v),
        lambda: rc.to_list(v),
        lambda: rc.copy_to_python(v, np.zeros(2, np.int32)),
    ):
        with pytest.raises(RustHandleError, match="dropped"):
            op()
    with pytest.raises(RustHandleError, match="dropped"):
        rc.drop(b)  # Rust's drop(x) twice is a use after move
    with pytest.raises(TypeError):
        rc.drop(42)


def test_context_manager_drops() -> None:
    with rc.RustVec([1, 2, 3], "f64") as v:
        assert v.to_list() == [1.0, 2.0, 3.0]
    assert v.dropped
    with rc.RustBox(1, "i32") as b:
        b.drop()  # dropping inside the block is fine
    assert b.state == "dropped"
    with pytest.raises(RustHandleError):
        with b:
            pass


def test_module_drop_function() -> None:
    a = rc.RustArc(3, "u8")
    a2 = a.clone()
    rc.drop(a)
    assert a.dropped and a2.strong_count == 1


# -- RustVec -------------------------------------------------------------------------------------


def test_vec_indexing_and_mutation() -> None:
    v = rc.RustVec([10, 20, 30], "i64")
    assert (len(v), v[0], v[-1], v[-3]) == (3, 10, 30, 10)
    for i in (3, -4, 100):
        with pytest.raises(IndexError):
            v[i]
        with pytest.raises(IndexError):
            v[i] = 1
    v[-1] = 33
    assert list(v) == [10, 20, 33]
    with pytest.raises(TypeError, match="deletion"):
        del v[0]
    v.extend([1, 2])
    v.extend(x * x for x in range(3))
    v.extend(array.array("q", [7, 8]))
    assert v.to_list() == [10, 20, 33, 1, 2, 0, 1, 4, 7, 8]
    assert [v.pop() for _ in range(10)][-1] == 10
    with pytest.raises(IndexError, match="empty"):
        v.pop()
    assert 8 not in v and len(v) == 0


def test_vec_from_buffers_and_iterables() -> None:
    assert rc.RustVec(b"ab", "u8").to_list() == [97, 98]
    assert rc.RustVec(range(4), "u16").to_list() == [0, 1, 2, 3]
    for arr, dtype in [
        (np.arange(4, dtype=np.int64), "i64"),
        (np.arange(4, dtype=np.int32), "i32"),
        (np.arange(4, dtype=np.uint64), "u64"),
        (np.arange(4, dtype=np.float32), "f32"),
        (np.array([True, False]), "bool"),
        (array.array("d", [1.0, 2.0]), "f64"),
        (array.array("b", [-1, 2]), "i8"),
    ]:
        v = rc.create_rust_vec(arr)
        assert v.dtype == dtype and v.to_list() == list(arr.tolist())
    # a buffer of another item type is converted element by element (range-checked)
    assert rc.RustVec(np.arange(3, dtype=np.int64), "u8").to_list() == [0, 1, 2]
    with pytest.raises(OverflowError):
        rc.RustVec(np.array([300]), "u8")
    # non-contiguous arrays are read element by element
    assert rc.RustVec(np.arange(6.0)[::2], "f64").to_list() == [0.0, 2.0, 4.0]
    with pytest.raises(TypeError, match="Rust dtype"):
        rc.create_rust_vec(np.zeros(2, dtype=np.float16))


def test_buffer_view_is_zero_copy_and_blocks_reallocation() -> None:
    v = rc.RustVec([1.0, 2.0, 3.0], "f64")
    a = np.asarray(v)
    assert a.dtype == np.float64 and a.shape == (3,)
    a[0] = 100.0
    assert v[0] == 100.0, "the array is a view, not a copy"
    v[1] = -1.0
    assert a[1] == -1.0
    m = memoryview(v)
    assert (m.format, m.itemsize, m.readonly, m.nbytes) == ("d", 8, False, 24)
    m.release()
    while len(v) < v.capacity:
        v.push(0.0)  # within capacity: no reallocation, allowed
    with pytest.raises(BufferError, match="reallocate"):
        v.push(1.0)
    with pytest.raises(BufferError):
        v.extend([1.0] * 10)
    with pytest.raises(BufferError, match="view"):
        v.drop()
    assert v.state == "alive"
    del a
    v.push(1.0)
    assert v[-1] == 1.0
    v.drop()


def test_a_vector_too_big_for_memory_is_a_memory_error() -> None:
    # Rust aborts the process when an allocation fails; the runtime must not let it.
    with pytest.raises(MemoryError):
        rc.RustVec(range(2**40), "u8")
    with pytest.raises(MemoryError):
        rc.RustVec(range(2**62), "u64")  # more bytes than the address space
    v = rc.RustVec([1], "i8")
    with pytest.raises(MemoryError):
        v.extend(range(2**40))
    assert v.to_list() == [1]


def test_a_lying_length_hint_decides_no_allocation() -> None:
    class Liar:
        def __iter__(self):
            return iter([1, 2])

        def __length_hint__(self) -> int:
            return 2**45

    v = rc.RustVec(Liar(), "i32")
    assert v.to_list() == [1, 2] and v.capacity < 2**20


def test_a_failed_extend_leaves_the_vector_unchanged() -> None:
    v = rc.RustVec([1, 2, 3], "i32")
    view = np.asarray(v)
    room = v.capacity - len(v)
    with pytest.raises(BufferError):
        v.extend(iter(range(room + 5)))  # runs out of room midway
    assert v.to_list() == [1, 2, 3]
    with pytest.raises(BufferError):
        v.extend(np.arange(10, dtype=np.int32)[::2])  # not a contiguous buffer: item by item
    assert v.to_list() == [1, 2, 3]
    del view
    with pytest.raises(OverflowError):
        v.extend([4, 5, 2**40])
    assert v.to_list() == [1, 2, 3]

    def gen():
        yield 4
        raise KeyError("midway")

    with pytest.raises(KeyError):
        v.extend(gen())
    assert v.to_list() == [1, 2, 3]
    v.extend(x for x in (4, 5))
    assert v.to_list() == [1, 2, 3, 4, 5]


def test_view_keeps_handle_alive() -> None:
    v = rc.RustVec([1, 2, 3], "i32")
    hid = v.id
    a = np.asarray(v)
    del v
    gc.collect()
    assert hid in alive_ids()
    assert a.tolist() == [1, 2, 3]
    del a
    gc.collect()
    assert hid not in alive_ids()


def test_copy_to_python_is_bounded_by_out() -> None:
    v = rc.RustVec(range(5), "i32")
    small = np.zeros(3, np.int32)
    assert rc.copy_to_python(v, small) == 3 and small.tolist() == [0, 1, 2]
    big = np.full(8, -1, np.int32)
    assert v.copy_to_python(big) == 5 and big.tolist() == [0, 1, 2, 3, 4, -1, -1, -1]
    out = array.array("i", [0] * 5)
    assert rc.copy_to_python(v, out) == 5 and list(out) == [0, 1, 2, 3, 4]
    with pytest.raises(TypeError, match="i32"):
        rc.copy_to_python(v, np.zeros(5, np.int64))
    with pytest.raises(TypeError, match="writable"):
        rc.copy_to_python(v, b"12345")
    with pytest.raises(TypeError, match="RustVec"):
        rc.copy_to_python([1, 2], small)
    assert rc.copy_to_python(rc.RustVec([], "i32"), small) == 0


class Dropping:
    """A number whose conversion (``__index__`` / ``__float__``) drops `victim` first."""

    def __init__(self, victim: object, value: int = 1) -> None:
        self.victim, self.value = victim, value

    def __index__(self) -> int:
        self.victim.drop()  # type: ignore[attr-defined]
        return self.value

    def __float__(self) -> float:
        self.victim.drop()  # type: ignore[attr-defined]
        return float(self.value)


@pytest.mark.parametrize("cls", ["RustBox", "RustRc", "RustArc"])
def test_value_setter_whose_conversion_drops_the_handle_raises(cls: str) -> None:
    b = getattr(rc, cls)(5, "i64")
    with pytest.raises(RustHandleError, match="dropped"):
        b.value = Dropping(b)  # wrote through a null pointer before the fix
    assert b.state == "dropped"


def test_vec_writes_whose_conversion_drops_the_vec_raise() -> None:
    before = handles.stats()
    v = rc.RustVec([1.0], "f64")
    with pytest.raises(RustHandleError, match="dropped"):
        v.push(Dropping(v))  # allocated a fresh buffer for the dropped handle (a leak) before the fix
    assert v.state == "dropped"
    w = rc.RustVec([1, 2], "i64")
    with pytest.raises(RustHandleError, match="dropped"):
        w[0] = Dropping(w)
    u = rc.RustVec([1, 2], "i64")
    with pytest.raises(RustHandleError, match="dropped"):
        u.extend([3, Dropping(u), 4])
    after = handles.stats()
    assert after["payload_allocs"] - before["payload_allocs"] == 3
    assert after["payload_frees"] - before["payload_frees"] == 3


def test_extend_from_a_generator_that_drops_the_vec_raises() -> None:
    v = rc.RustVec([], "u8")

    def items():
        yield 1
        v.drop()
        yield 2

    with pytest.raises(RustHandleError, match="dropped"):
        v.extend(items())
    assert v.state == "dropped"


@pytest.mark.parametrize("dtype,values", DTYPE_VALUES)
def test_vec_extends_with_itself_like_a_list(dtype: str, values: list) -> None:
    v = rc.RustVec(values, dtype)
    v.extend(v)  # BufferError "would reallocate while 0 buffer view(s)" before the fix
    assert v.to_list() == values + values
    while len(v) < v.capacity:
        v.push(values[0])
    n = len(v)
    v.extend(v)  # reallocates: the copy is taken first
    assert len(v) == 2 * n and v.to_list()[:n] == v.to_list()[n:]
    a = np.asarray(v)
    with pytest.raises(BufferError, match="1 buffer view"):
        v.extend(v)  # a real view still blocks the reallocation
    assert len(v) == 2 * n
    del a
    empty = rc.RustVec([], dtype)
    empty.extend(empty)
    assert len(empty) == 0


def test_bool_vec_refuses_invalid_bytes_and_writable_views() -> None:
    raw = np.array([1, 0, 2, 7, 255], "u1").view(bool)
    with pytest.raises(ValueError, match=r"item 2 of the buffer is 2"):
        rc.RustVec(raw)
    with pytest.raises(ValueError, match="item 0"):
        rc.create_rust_vec(np.array([9], "u1").view(bool))
    v = rc.RustVec([True, False], "bool")
    with pytest.raises(ValueError, match="item 1"):
        v.extend(np.array([1, 3], "u1").view(bool))
    assert v.to_list() == [True, False]
    v.extend(np.array([0, 1], "u1").view(bool))
    assert v.to_list() == [True, False, False, True]
    m = memoryview(v)
    assert m.readonly and m.tolist() == [True, False, False, True]
    m.release()
    assert np.asarray(v).flags.writeable is False
    with pytest.raises((BufferError, TypeError)):
        io.BytesIO(b"\xc8").readinto(v)  # asks for a writable buffer
    assert v.to_list() == [True, False, False, True]
    # other dtypes keep writable views
    assert memoryview(rc.RustVec([1], "u8")).readonly is False


# -- registry, GC, listeners -----------------------------------------------------------------


def test_origin_is_the_creating_line_after_the_frame_moved_on() -> None:
    # The runtime records where in the code a handle was made and decodes the line when a
    # row is shown: it must be the creating line, after the frame ran on, returned, and the
    # handle ended.
    def make() -> tuple[list, list[int]]:
        made, lines = [], []
        for i in range(3):
            lines.append(sys._getframe().f_lineno + 1)
            made.append(rc.RustBox(i, "i64"))
            total = sum(range(100))  # more code after the creation
            total += i
        lines.append(sys._getframe().f_lineno + 1)
        made.append(rc.RustVec([total], "i64"))
        return made, lines

    made, lines = make()
    assert [row_of(h).origin for h in made] == [f"{HERE}:{n}" for n in lines]
    made[0].drop()
    assert (row_of(made[0]).state, row_of(made[0]).origin) == ("dropped", f"{HERE}:{lines[0]}")


def test_rows_carry_origin_state_and_preview() -> None:
    line = sys._getframe().f_lineno + 1
    v = rc.RustVec(range(20), "u32")
    row = row_of(v)
    assert row.origin == f"{HERE}:{line}"
    assert row.preview.startswith("len=20 [0, 1, 2") and row.preview.endswith(", ...]")
    b = rc.RustBox(2.5, "f64")
    assert row_of(b).preview == "2.5"
    b.drop()
    r = row_of(b)
    assert (r.state, r.preview) == ("dropped", "2.5")
    hid = v.id
    del v
    assert next(x for x in rc.live_handles() if x.id == hid).state == "collected"
    assert all(x.state == "alive" for x in rc.live_handles(include_ended=False))


def test_gc_frees_each_handle_exactly_once() -> None:
    before = handles.stats()
    cycle: list[object] = [rc.RustBox(1, "i32"), rc.RustVec([1, 2], "u8"), rc.RustRc(1, "i64")]
    cycle.append(cycle)  # only the cycle collector can free these
    ids = {h.id for h in cycle[:3]}  # type: ignore[attr-defined]
    del cycle
    gc.collect()
    after = handles.stats()
    assert after["payload_allocs"] - before["payload_allocs"] == 3
    assert after["payload_frees"] - before["payload_frees"] == 3
    states = {r.id: r.state for r in rc.live_handles()}
    assert {states[i] for i in ids} == {"collected"}


def test_ten_thousand_forgotten_handles_leave_none_alive() -> None:
    gc.collect()
    base_alive = alive_ids()
    before = handles.stats()
    kinds = (rc.RustBox, rc.RustRc, rc.RustArc)
    for i in range(10_000):
        h = kinds[i % 3](i, "i64") if i % 4 else rc.RustVec([i, i], "i64")
        if i % 5 == 0:
            h.clone()
        if i % 7 == 0:
            h.drop()
    del h
    gc.collect()
    after = handles.stats()
    assert alive_ids() == base_alive
    made = after["payload_allocs"] - before["payload_allocs"]
    assert made == 10_000 + 2_000
    assert after["payload_frees"] - before["payload_frees"] == made
    assert len(rc.live_handles()) <= len(base_alive) + 100, "the ended history is bounded"


def test_listeners_get_coalesced_batches() -> None:
    events: list[handles.HandleEvent] = []
    handles.add_listener(events.append, interval=60)  # poller effectively idle: flush by hand
    try:
        handles.flush()
        events.clear()
        keep = [rc.RustBox(i, "i32") for i in range(1000)]
        keep[0].drop()
        ev = handles.flush()
        assert ev is not None and events == [ev], "1000 creations, one batch, one call"
        assert ev.changed == 1000 and not ev.overflowed
        states = {r.id: r.state for r in ev.rows}
        assert states[keep[0].id] == "dropped" and states[keep[1].id] == "alive"
        assert handles.flush() is None, "nothing new"
    finally:
        handles.remove_listener(events.append)
    assert handles.listeners() == []
    rc.RustBox(1, "i32")
    assert handles.flush() is None, "no listeners: nothing collected"


def test_poller_delivers_without_flush() -> None:
    got = threading.Event()
    seen: list[int] = []

    def listener(ev: handles.HandleEvent) -> None:
        seen.extend(r.id for r in ev.rows)
        got.set()

    handles.add_listener(listener, interval=0.05)
    try:
        b = rc.RustBox(5, "u8")
        assert got.wait(5), "the poller thread delivered the change"
        assert b.id in seen
    finally:
        handles.remove_listener(listener)


def test_history_size_is_configurable() -> None:
    handles.set_history(3)
    try:
        for i in range(10):
            rc.RustBox(i, "i32").drop()
        ended = [r for r in rc.live_handles() if r.state != "alive"]
        assert len(ended) == 3 and [r.preview for r in ended] == ["7", "8", "9"]
    finally:
        handles.set_history(100)
    with pytest.raises(ValueError):
        handles.set_history(-1)


def test_text_table_and_magic(ip, capsys) -> None:
    ip.run_cell("import rustcall_magic as rc\nb_magic = rc.RustBox(41, 'i16')")
    ip.run_line_magic("rust_handles", "")
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if " i16 " in ln and " 41 " in ln)
    assert "Box" in line and "alive" in line and re.search(r"cell\[\d+\]:2$", line), line
    assert out.splitlines()[0].split() == ["id", "kind", "dtype", "state", "strong", "preview", "origin"]
    assert "alive," in out.splitlines()[-1]


def test_ipython_cell_names_become_cell_numbers() -> None:
    assert handles.format_origin("<ipython-input-12-0123456789ab>", 3) == "cell[12]:3"
    assert handles.format_origin("/x/y/mod.py", 9) == "mod.py:9"
    assert handles.format_origin(None, 0) == "rust"
    handles.set_origin_formatter(lambda f, n: f"custom {f}:{n}")
    try:
        assert handles.format_origin("a.py", 1) == "custom a.py:1"
    finally:
        handles.set_origin_formatter(None)


# -- runtime build and packaging -----------------------------------------------------------------


def test_import_does_not_load_runtime() -> None:
    code = "import sys, rustcall_magic as rc; print('_rustcall_runtime' in sys.modules, rc.live_handles())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=_env())
    assert out.stdout.split() == ["False", "[]"]


def test_runtime_is_cached_across_processes() -> None:
    rc.RustBox(1, "i32")  # this process built or loaded it already
    ent = runtime.entry()
    assert ent is not None and ent.meta["kind"] == "runtime"
    code = "import rustcall_magic as rc; print(rc.RustBox(5, 'u8').value)"
    env = _env(RUSTCALL_CACHE_DIR=str(ent.path.parent.parent))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "5"
    assert "building" not in out.stderr, "a second process gets a cache hit (no rustc run)"
    assert ent.hits >= 1


def test_runtime_key_follows_sources() -> None:
    from rustcall_magic.toolchain import get_toolchain

    tc = get_toolchain()
    files = runtime.source_files()
    assert "src/lib.rs" in files and "Cargo.toml" in files
    k1 = runtime.runtime_key(tc, files)
    changed = dict(files, **{"src/vec.rs": files["src/vec.rs"] + b"\n"})
    assert runtime.runtime_key(tc, changed) != k1
    assert runtime.runtime_key(tc, dict(files)) == k1


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(rc.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


# -- views' cost does not follow the number of alive handles; listener intervals ------------


class CountingRuntime:
    """Stands in for the runtime module and counts the raw rows its row functions return."""

    def __init__(self, ext: object) -> None:
        self._ext = ext
        self.rows_returned = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._ext, name)

    def _rows(self, *args: object) -> list:
        out = self._ext._rows(*args)  # type: ignore[attr-defined]
        self.rows_returned += len(out)
        return out

    def _select(self, *args: object) -> tuple:
        out = self._ext._select(*args)  # type: ignore[attr-defined]
        self.rows_returned += len(out[0]) + len(out[1])
        return out


@pytest.fixture
def counting_runtime(monkeypatch) -> CountingRuntime:
    rc.RustBox(0, "i32")  # the runtime is loaded
    counting = CountingRuntime(handles.runtime_module())
    monkeypatch.setattr(handles, "_ext", counting)
    return counting


def test_a_poll_reads_the_changes_not_every_alive_handle(counting_runtime) -> None:
    keep = [rc.RustBox(i, "i64") for i in range(5000)]
    events: list[handles.HandleEvent] = []
    handles.add_listener(events.append, interval=60)  # poller effectively idle: flush by hand
    try:
        handles.flush()
        counting_runtime.rows_returned = 0
        keep[10].drop()
        extra = rc.RustBox(7, "i64")
        ev = handles.flush()
        assert ev is not None and ev.changed == 2 and not ev.overflowed
        # 5000 alive handles, one change: only the ended history is read, not 5000 rows
        assert counting_runtime.rows_returned <= 100
        assert {r.id: r.state for r in ev.rows} == {keep[10].id: "dropped", extra.id: "alive"}
    finally:
        handles.remove_listener(events.append)


def test_batch_counts_handles_born_and_ended_within_it_once() -> None:
    events: list[handles.HandleEvent] = []
    handles.add_listener(events.append, interval=60)
    try:
        handles.flush()
        old = rc.RustBox(1, "i32")
        handles.flush()
        for i in range(50):
            rc.RustBox(i, "i32").drop()  # created and ended in the same batch
        old.drop()
        ev = handles.flush()
        assert ev is not None and ev.changed == 51 and not ev.overflowed
        assert len(ev.rows) == 51 and {r.state for r in ev.rows} == {"dropped"}
        for i in range(300):  # more ends than the history (100) keeps
            rc.RustBox(i, "i32").drop()
        ev = handles.flush()
        assert ev is not None and ev.overflowed and ev.changed == 300
    finally:
        handles.remove_listener(events.append)


def test_snapshot_reads_only_what_it_returns(counting_runtime) -> None:
    keep = [rc.RustBox(i, "i64") for i in range(3000)]
    keep[0].drop()
    counting_runtime.rows_returned = 0
    snap = handles.snapshot(max_alive=20, max_ended=5)
    assert counting_runtime.rows_returned == 25
    assert [r.id for r in snap.alive] == [h.id for h in keep[-20:]]
    assert snap.ended[-1].id == keep[0].id and len(snap.ended) == 5
    assert snap.alive_total >= 2999 and snap.counts["alive"] == snap.alive_total
    assert snap.counts["dropped"] >= 1 and snap.created >= 3000


def test_state_counts_cover_the_process_not_only_the_history() -> None:
    import gc

    before = handles.snapshot(0, 0).counts
    for i in range(250):  # more than the history (100) keeps, of each kind of end
        rc.RustBox(i, "i32").drop()
    for i in range(250):
        rc.RustBox(i, "i32")  # collected at once
    gc.collect()
    after = handles.snapshot(0, 0)
    assert after.counts["dropped"] - before["dropped"] == 250
    assert after.counts["collected"] - before["collected"] == 250
    assert after.ended_total == sum(after.counts[s] for s in ("dropped", "moved", "collected"))
    assert handles.stats()["ended"] == after.ended_total


def test_text_table_is_capped_and_counts_the_rest() -> None:
    keep = [rc.RustBox(i, "i64") for i in range(1000)]
    alive = len(alive_ids())
    table = handles.handles_table()
    lines = table.splitlines()
    listed = [ln for ln in lines[2:-1] if " alive " in ln]
    assert len(listed) == handles.MAX_TEXT_ALIVE
    assert str(keep[-1].id) in listed[-1].split()[0]
    assert lines[-1].startswith(f"{alive:,} alive,")
    assert f"not listed: {alive - handles.MAX_TEXT_ALIVE:,} older alive" in lines[-1]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), 0, -1.0])
def test_listener_interval_must_be_finite_and_positive(bad: float) -> None:
    def cb(ev: handles.HandleEvent) -> None:
        pass

    with pytest.raises(ValueError, match="interval"):
        handles.add_listener(cb, interval=bad)
    assert cb not in handles.listeners()


def test_poller_follows_the_fastest_remaining_listener() -> None:
    def slow(ev: handles.HandleEvent) -> None:
        pass

    def fast(ev: handles.HandleEvent) -> None:
        pass

    handles.add_listener(slow, interval=2.0)
    try:
        handles.add_listener(fast, interval=0.05)
        assert handles.poll_interval() == 0.05
        handles.remove_listener(fast)
        assert handles.poll_interval() == 2.0
    finally:
        handles.remove_listener(slow)
        handles.remove_listener(fast)
    assert handles.poll_interval() is None
