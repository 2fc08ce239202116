"""User types: a cell's `pub struct`s and their impls as Python classes (SPEC §8)."""

from __future__ import annotations

import copy
import gc
import inspect
import pickle
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import pytest

import rustcall_magic as rc
from rustcall_magic.errors import RustcallWarning, RustHandleError, RustPanic

# -- the struct cases of RustCall.jl's suite ----------------------------------------------

RECT_CELL = """
pub struct Rect { pub width: f64, pub height: f64 }
impl Rect {
    pub fn new(width: f64, height: f64) -> Rect { Rect { width, height } }
    pub fn area(&self) -> f64 { self.width * self.height }
    pub fn scale(&mut self, k: f64) { self.width *= k; self.height *= k; }
}
"""

COUNTER_CELL = """
pub struct Counter { pub count: i32 }
impl Counter {
    pub fn new() -> Self { Counter { count: 0 } }
    pub fn increment(&mut self) { self.count += 1; }
    pub fn get(&self) -> i32 { self.count }
}
"""

PERSON_CELL = """
pub struct Person { pub name: String, pub age: u32 }
impl Person {
    pub fn new(name: String, age: u32) -> Person { Person { name, age } }
    pub fn greet(&self) -> String { format!("Hello, I am {} ({})", self.name, self.age) }
    pub fn birthday(&mut self) { self.age += 1; }
}
"""

REPR_C_CELL = """
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point { pub x: f64, pub y: f64 }
pub fn make_point(x: f64, y: f64) -> Point { Point { x, y } }
pub fn add_points(a: Point, b: Point) -> Point { Point { x: a.x + b.x, y: a.y + b.y } }
pub fn norm(p: &Point) -> f64 { (p.x * p.x + p.y * p.y).sqrt() }
"""


def run(ip, code: str) -> dict:
    ip.run_cell_magic("rust", "", code)
    return ip.user_ns


def test_rect_area_and_scale(ip) -> None:
    ns = run(ip, RECT_CELL)
    r = ns["Rect"](3.0, 4.0)
    assert r.area() == 12.0
    r.scale(2.0)
    assert (r.width, r.height, r.area()) == (6.0, 8.0, 48.0)


def test_counter_increment_get_and_field_access(ip) -> None:
    ns = run(ip, COUNTER_CELL)
    c = ns["Counter"]()
    for _ in range(5):
        c.increment()
    assert c.get() == 5
    assert c.count == 5
    c.count = 40
    assert c.get() == 40


def test_person_with_a_string_field(ip) -> None:
    ns = run(ip, PERSON_CELL)
    p = ns["Person"]("Ada", 36)
    assert p.greet() == "Hello, I am Ada (36)"
    p.birthday()
    p.name = "Ada L."
    assert (p.name, p.age) == ("Ada L.", 37)
    assert p.greet() == "Hello, I am Ada L. (37)"


def test_repr_c_point_by_value_in_and_out(ip) -> None:
    ns = run(ip, REPR_C_CELL)
    a = ns["make_point"](1.0, 2.0)
    b = ns["Point"](x=3.0, y=4.0)
    c = ns["add_points"](a, b)
    assert (c.x, c.y) == (4.0, 6.0)
    # Copy: passing by value copies, the arguments stay usable.
    assert (a.x, b.y) == (1.0, 4.0)
    assert ns["norm"](b) == 5.0
    assert repr(c) == "Point { x: 4.0, y: 6.0 }"


# -- construction, methods, docs --------------------------------------------------------

SHAPES_CELL = """
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

static DROPS: AtomicUsize = AtomicUsize::new(0);

/// A point in the plane.
#[derive(Debug, Clone, PartialEq, PartialOrd, Default)]
pub struct Vec2 { pub x: f64, pub y: f64 }

impl Vec2 {
    /// The point (0, 0).
    pub fn origin() -> Vec2 { Vec2 { x: 0.0, y: 0.0 } }
    /// Length of the vector.
    pub fn norm(&self) -> f64 { (self.x * self.x + self.y * self.y).sqrt() }
    pub fn scale(&mut self, k: f64) -> f64 { self.x *= k; self.y *= k; self.norm() }
    pub fn into_pair(self) -> (f64, f64) { (self.x, self.y) }
    pub fn plus(&self, other: &Vec2) -> Vec2 { Vec2 { x: self.x + other.x, y: self.y + other.y } }
    pub fn absorb(&mut self, other: &Vec2) { self.x += other.x; self.y += other.y; }
    pub fn explode(&mut self, at: f64) { self.x = at; if at > 10.0 { panic!("too far: {}", at) } }
    pub fn check(&self, at: f64) -> f64 { if at > 10.0 { panic!("read too far") } at }
}

impl fmt::Display for Vec2 {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result { write!(f, "({}, {})", self.x, self.y) }
}
impl std::ops::Add for Vec2 { type Output = Vec2; fn add(self, o: Vec2) -> Vec2 { Vec2 { x: self.x + o.x, y: self.y + o.y } } }
impl std::ops::Sub for Vec2 { type Output = Vec2; fn sub(self, o: Vec2) -> Vec2 { Vec2 { x: self.x - o.x, y: self.y - o.y } } }
impl std::ops::Mul for Vec2 { type Output = f64; fn mul(self, o: Vec2) -> f64 { self.x * o.x + self.y * o.y } }
impl std::ops::Neg for Vec2 { type Output = Vec2; fn neg(self) -> Vec2 { Vec2 { x: -self.x, y: -self.y } } }

/// Has a Drop impl that counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tracked { pub id: u32, pub tag: String }

impl Drop for Tracked { fn drop(&mut self) { DROPS.fetch_add(1, Ordering::SeqCst); } }

impl Tracked {
    pub fn new(id: u32) -> Self { Tracked { id, tag: format!("t{}", id) } }
    pub fn consume(self) -> u32 { self.id }
    pub fn len(&self) -> usize { self.tag.len() }
}

pub fn drops() -> usize { DROPS.load(Ordering::SeqCst) }
pub fn tracked_list(n: u32) -> Vec<Tracked> { (0..n).map(Tracked::new).collect() }
pub fn maybe_tracked(yes: bool) -> Option<Tracked> { if yes { Some(Tracked::new(99)) } else { None } }
pub fn pair(a: u32) -> (Tracked, u32) { (Tracked::new(a), a * 2) }
pub fn total(items: Vec<Tracked>) -> u32 { items.iter().map(|t| t.id).sum() }
pub fn take(t: Tracked) -> u32 { t.id }
pub fn take_two(t: Tracked, k: u32) -> u32 { t.id * k }
pub fn id_or_zero(t: Option<Tracked>) -> u32 { t.map(|t| t.id).unwrap_or(0) }
pub fn rename(t: &mut Tracked, tag: &str) { t.tag = tag.to_string(); }
pub fn both(a: &mut Vec2, b: &Vec2) { a.x += b.x; }

/// Counts down from `n`.
pub struct Countdown { n: u32 }
impl Countdown { pub fn new(n: u32) -> Countdown { Countdown { n } } }
impl Iterator for Countdown {
    type Item = u32;
    fn next(&mut self) -> Option<u32> { if self.n == 0 { None } else { self.n -= 1; Some(self.n + 1) } }
}

pub struct Opaque { secret: i64 }
impl Opaque { pub fn peek(&self) -> i64 { self.secret } }
pub fn opaque(secret: i64) -> Opaque { Opaque { secret } }

pub struct Wrapper(pub i32, pub String);
pub struct Marker;
"""


@pytest.fixture(scope="module")
def shapes(ip) -> dict:
    return dict(run(ip, SHAPES_CELL))


def test_classes_are_bound_and_on_the_module(ip, shapes) -> None:
    m = rc.compile_rust(SHAPES_CELL)
    assert set(m.types) == {"Vec2", "Tracked", "Countdown", "Opaque", "Wrapper", "Marker"}
    assert m.Vec2 is m.types["Vec2"]
    assert isinstance(shapes["Vec2"], type)
    assert "class Vec2" in m.describe()


def test_fieldwise_construction_positional_keyword_and_default(shapes) -> None:
    V = shapes["Vec2"]
    assert V(1, 2) == V(x=1.0, y=2.0) == V(1.0, y=2)
    assert V() == V(0, 0)  # #[derive(Default)]
    with pytest.raises(TypeError, match="missing 1 required argument: 'y'"):
        V(x=1.0)
    with pytest.raises(TypeError, match="unexpected keyword argument 'z'"):
        V(1, 2, z=3)
    with pytest.raises(TypeError, match="must be float, not str"):
        V("1", 2)
    w = shapes["Wrapper"](7, "seven")
    assert isinstance(w, shapes["Wrapper"])
    assert (w._0, w._1, shapes["Wrapper"].__match_args__) == (7, "seven", ("_0", "_1"))  # tuple fields
    w._0 = 8
    assert w._0 == 8
    with pytest.raises(OverflowError):
        w._0 = 2**31
    assert isinstance(shapes["Marker"](), shapes["Marker"])


def test_new_is_the_constructor_and_statics_are_static(shapes) -> None:
    T = shapes["Tracked"]
    t = T(3)
    assert (t.id, t.tag) == (3, "t3")
    with pytest.raises(TypeError):
        T()
    with pytest.raises(OverflowError):
        T(-1)
    assert shapes["Vec2"].origin() == shapes["Vec2"](0, 0)
    assert shapes["Countdown"](2) is not None


def test_a_type_without_constructor_refuses_construction(shapes) -> None:
    with pytest.raises(TypeError, match="`Opaque` has no constructor"):
        shapes["Opaque"]()
    o = shapes["opaque"](42)
    assert o.peek() == 42
    assert not hasattr(o, "secret")  # private fields are not properties


def test_methods_shared_mut_and_consuming(shapes) -> None:
    v = shapes["Vec2"](3, 4)
    assert v.norm() == 5.0
    assert v.scale(2) == 10.0
    assert (v.x, v.y) == (6.0, 8.0)
    assert v.plus(shapes["Vec2"](1, 1)) == shapes["Vec2"](7, 9)
    assert v.into_pair() == (6.0, 8.0)
    with pytest.raises(RustHandleError, match="`Vec2` was moved"):
        v.norm()
    with pytest.raises(RustHandleError, match="moved"):
        v.x  # noqa: B018


def test_properties_are_type_checked(shapes) -> None:
    t = shapes["Tracked"](1)
    t.id = 4_000_000_000
    assert t.id == 4_000_000_000
    with pytest.raises(OverflowError, match="out of range for u32"):
        t.id = 2**32
    with pytest.raises(OverflowError):
        t.id = -1
    with pytest.raises(TypeError, match=r"field Tracked\.tag must be str, not int"):
        t.tag = 5
    with pytest.raises(TypeError, match="must be int, not float"):
        t.id = 1.5
    with pytest.raises(TypeError, match="cannot delete field"):
        del t.id
    with pytest.raises(AttributeError):
        t.nope = 1
    assert (t.id, t.tag) == (4_000_000_000, "t1")


def test_instances_cross_into_and_out_of_functions(shapes) -> None:
    T = shapes["Tracked"]
    items = shapes["tracked_list"](3)
    assert [t.id for t in items] == [0, 1, 2]
    assert shapes["maybe_tracked"](False) is None
    assert shapes["maybe_tracked"](True).id == 99
    t, k = shapes["pair"](5)
    assert (t.id, k) == (5, 10)
    assert shapes["total"](items) == 3
    for it in items:  # moved into the Vec
        with pytest.raises(RustHandleError, match="moved"):
            it.id  # noqa: B018
    assert shapes["id_or_zero"](None) == 0
    assert shapes["id_or_zero"](T(7)) == 7
    a = T(8)
    shapes["rename"](a, "renamed")
    assert a.tag == "renamed"
    assert shapes["take"](a) == 8
    with pytest.raises(RustHandleError, match="moved"):
        shapes["take"](a)


def test_failed_later_argument_leaves_a_by_value_instance_alone(shapes) -> None:
    a = shapes["Tracked"](6)
    with pytest.raises(TypeError):
        shapes["take_two"](a, "x")
    assert a.id == 6
    assert shapes["take_two"](a, 2) == 12


def test_wrong_types_are_type_errors(shapes) -> None:
    with pytest.raises(TypeError, match=r"argument 1 \(t: Tracked\) must be a `Tracked` instance"):
        shapes["take"](shapes["Vec2"](1, 2))
    with pytest.raises(TypeError, match="must be a `Tracked` instance"):
        shapes["take"](3)
    with pytest.raises(TypeError, match=r"norm\(\) takes 0 arguments but 1 was given"):
        shapes["Vec2"](1, 2).norm(3)


def test_mut_aliasing_in_one_call_is_a_value_error(shapes) -> None:
    v = shapes["Vec2"](1, 2)
    with pytest.raises(ValueError, match="already mutably borrowed"):
        v.absorb(v)
    with pytest.raises(ValueError, match="already mutably borrowed"):
        shapes["both"](v, v)
    assert not isinstance(_raised(lambda: v.absorb(v)), RustHandleError)
    assert (v.x, v.y) == (1.0, 2.0)  # refused before any Rust code ran, no borrow left behind
    v.absorb(shapes["Vec2"](1, 1))
    assert (v.x, v.y) == (2.0, 3.0)
    assert v.plus(v) == shapes["Vec2"](4, 6)  # two shared borrows are fine


def _raised(f) -> BaseException:
    try:
        f()
    except BaseException as e:
        return e
    raise AssertionError("no exception")


def test_panic_in_mut_self_method_poisons_and_in_shared_does_not(shapes) -> None:
    v = shapes["Vec2"](1, 2)
    with pytest.raises(RustPanic, match="read too far"):
        v.check(11.0)
    assert v.norm() > 0  # &self panic: still usable
    with pytest.raises(RustPanic, match="too far: 11"):
        v.explode(11.0)
    with pytest.raises(RustHandleError, match="poisoned: method `explode` panicked"):
        v.norm()
    with pytest.raises(RustHandleError, match="poisoned"):
        v.x  # noqa: B018
    v.drop()  # a poisoned value is still dropped
    with pytest.raises(RustHandleError, match="dropped"):
        v.norm()


# -- drop exactly once ----------------------------------------------------------------------


def test_drop_runs_once_under_gc(shapes) -> None:
    T, drops = shapes["Tracked"], shapes["drops"]
    before = drops()
    t = T(1)
    assert drops() == before
    del t
    gc.collect()
    assert drops() == before + 1


def test_drop_method_and_with_block(shapes) -> None:
    T, drops = shapes["Tracked"], shapes["drops"]
    before = drops()
    t = T(2)
    t.drop()
    assert drops() == before + 1
    with pytest.raises(RustHandleError, match="dropped"):
        t.drop()
    del t
    assert drops() == before + 1
    with T(3) as u:
        assert u.id == 3
        assert drops() == before + 1
    assert drops() == before + 2
    with pytest.raises(RustHandleError, match="dropped"):
        u.id  # noqa: B018
    del u
    gc.collect()
    assert drops() == before + 2


def test_moved_value_is_dropped_by_its_new_owner_only(shapes) -> None:
    T, drops = shapes["Tracked"], shapes["drops"]
    before = drops()
    t = T(4)
    assert t.consume() == 4
    assert drops() == before + 1  # dropped at the end of `consume`
    del t
    gc.collect()
    assert drops() == before + 1
    t = T(5)
    t.tag = "x"  # the replaced String is dropped, the struct is not
    assert drops() == before + 1
    c = t.clone()
    del t, c
    assert drops() == before + 3


def test_rerun_cell_keeps_old_instances_and_drops_each_once(ip) -> None:
    code = SHAPES_CELL + "\n// second version\n"
    old = dict(run(ip, SHAPES_CELL))
    # (IPython snapshots the calling frame's locals when a magic runs: make instances after.)
    new = dict(run(ip, code))
    t_old = old["Tracked"](1)
    assert new["Tracked"] is not old["Tracked"]
    t_new = new["Tracked"](2)
    assert t_old.id == 1 and t_new.id == 2
    other = old["Tracked"](3)
    with pytest.raises(TypeError, match="a `Tracked` of another cell"):
        new["take"](other)
    assert other.id == 3
    b_old, b_new = old["drops"](), new["drops"]()
    del t_old, t_new
    gc.collect()
    assert (old["drops"](), new["drops"]()) == (b_old + 1, b_new + 1)


def test_interpreter_shutdown_with_live_instances_is_clean(tmp_path) -> None:
    script = textwrap.dedent(
        f"""
        import rustcall_magic as rc
        m = rc.compile_rust({SHAPES_CELL!r})
        keep = [m.Tracked(i) for i in range(10)]
        cycle = [m.Vec2(1, 2)]
        cycle.append(cycle)
        print("ok", m.drops())
        """
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok 0"


# -- protocols ---------------------------------------------------------------------------


def test_debug_display_repr_str(shapes) -> None:
    v = shapes["Vec2"](1.5, -2)
    assert repr(v) == "Vec2 { x: 1.5, y: -2.0 }"
    assert str(v) == "(1.5, -2)"
    assert f"{v}" == "(1.5, -2)"
    o = shapes["opaque"](1)
    assert repr(o).startswith("<") and "Opaque object" in repr(o)  # no Debug: Python's default


def test_clone_copy_and_deepcopy_are_independent(shapes) -> None:
    v = shapes["Vec2"](1, 2)
    for c in (v.clone(), copy.copy(v), copy.deepcopy(v), copy.deepcopy([v])[0]):
        assert c == v and c is not v
        c.x = 100
        assert v.x == 1.0
    with pytest.raises(TypeError):
        copy.copy(shapes["opaque"](1))  # not Clone


def test_equality_ordering_and_sorting(shapes) -> None:
    V = shapes["Vec2"]
    assert V(1, 2) == V(1, 2) and V(1, 2) != V(2, 1)
    assert V(1, 2) < V(1, 3) <= V(1, 3) and V(2, 0) > V(1, 9) >= V(1, 9)
    assert sorted([V(3, 0), V(1, 0), V(2, 0)]) == [V(1, 0), V(2, 0), V(3, 0)]
    assert max([V(3, 0), V(1, 0)]) == V(3, 0)
    assert (V(1, 2) == 5) is False
    with pytest.raises(TypeError):
        V(1, 2) < 5  # noqa: B015


def test_hash_only_with_hash_and_eq(shapes) -> None:
    T, V = shapes["Tracked"], shapes["Vec2"]
    assert hash(T(1)) == hash(T(1))
    assert len({T(1), T(1), T(2)}) == 2
    d = {T(1): "one"}
    assert d[T(1)] == "one"
    with pytest.raises(TypeError, match="unhashable"):
        hash(V(1, 2))  # PartialEq without Hash + Eq: unhashable, as in Python
    o = shapes["opaque"](3)
    assert hash(o) == hash(o)  # no PartialEq: identity, as for a plain Python object


def test_arithmetic_operators(shapes) -> None:
    V = shapes["Vec2"]
    a, b = V(1, 2), V(3, 5)
    assert a + b == V(4, 7)
    assert b - a == V(2, 3)
    assert a * b == 13.0
    assert -a == V(-1, -2)
    assert (a.x, b.x) == (1.0, 3.0)  # operands are not consumed
    with pytest.raises(TypeError):
        a + 1
    with pytest.raises(TypeError):
        a / b


def test_iterator_protocol(shapes) -> None:
    c = shapes["Countdown"](3)
    assert iter(c) is c
    assert list(c) == [3, 2, 1]
    assert list(c) == []
    assert list(zip(shapes["Countdown"](2), "ab", strict=True)) == [(2, "a"), (1, "b")]


def test_len_protocol(shapes) -> None:
    t = shapes["Tracked"](12)
    assert len(t) == 3 == t.len()
    with pytest.raises(TypeError):
        len(shapes["Vec2"](1, 2))


def test_match_by_keyword_and_position(shapes) -> None:
    Vec2 = shapes["Vec2"]
    assert Vec2.__match_args__ == ("x", "y")
    found = []
    for v in (Vec2(0, 3), Vec2(2, 0), Vec2(1, 1)):
        match v:
            case Vec2(x=0.0, y=y):
                found.append(("on y axis", y))
            case Vec2(x, 0.0):
                found.append(("on x axis", x))
            case _:
                found.append(("elsewhere", None))
    assert found == [("on y axis", 3.0), ("on x axis", 2.0), ("elsewhere", None)]


def test_docs_show_rust_signatures_and_doc_comments(shapes) -> None:
    V = shapes["Vec2"]
    assert "pub struct Vec2 { pub x: f64, pub y: f64 }" in V.__doc__
    assert "A point in the plane." in V.__doc__
    assert str(inspect.signature(V)) == "(x, y)"
    assert V.norm.__doc__.splitlines()[0] == "pub fn norm(&self) -> f64"
    assert "Length of the vector." in V.norm.__doc__
    assert str(inspect.signature(V.scale)) == "(self, /, k)"
    assert str(inspect.signature(V.origin)) == "()"
    assert "The point (0, 0)." in V.origin.__doc__
    assert str(inspect.signature(shapes["Tracked"])) == "(id)"
    assert V.x.__doc__ == "x: f64"
    assert V.__module__.startswith("_rustcall_")


def test_instances_pickle_by_field_values_unless_a_field_is_private(shapes) -> None:
    v = pickle.loads(pickle.dumps(shapes["Vec2"](1, 2)))
    assert type(v) is shapes["Vec2"] and (v.x, v.y) == (1, 2)
    with pytest.raises(TypeError):
        pickle.dumps(shapes["opaque"](5))


# -- threads -----------------------------------------------------------------------------

THREADS_CELL = """
use std::rc::Rc;
pub struct Local { shared: Rc<i32> }
impl Local {
    pub fn new(v: i32) -> Self { Local { shared: Rc::new(v) } }
    pub fn get(&self) -> i32 { *self.shared }
}
pub struct Portable { pub v: i32 }
impl Portable { pub fn get(&self) -> i32 { self.v } }
"""


def test_non_send_type_refuses_other_threads(ip) -> None:
    ns = run(ip, THREADS_CELL)
    local, portable = ns["Local"](5), ns["Portable"](6)
    out: dict[str, object] = {}

    def worker() -> None:
        out["portable"] = portable.get()
        try:
            local.get()
        except RustHandleError as e:
            out["local"] = str(e)
        try:
            local.drop()
        except RustHandleError as e:
            out["drop"] = str(e)

    th = threading.Thread(target=worker)
    th.start()
    th.join()
    assert out["portable"] == 6
    assert "not `Send`" in str(out["local"])
    assert "not `Send`" in str(out["drop"])
    assert local.get() == 5  # still fine on its own thread


# -- what is skipped ------------------------------------------------------------------------

SKIPPED_CELL = """
pub struct Holder<'a> { pub s: &'a str }
pub struct Fine { pub v: i32, pub h: std::sync::Mutex<i32> }
impl Fine {
    pub fn ok(&self) -> i32 { self.v }
    pub fn weird(&self, m: std::sync::Mutex<i32>) -> i32 { *m.lock().unwrap() }
    pub fn generic<T: Copy>(&self, t: T) -> T { t }
}
pub enum Later { A(std::sync::Mutex<i32>), B }
pub enum Weird { A = 1 << 2 }
"""


def test_unsupported_parts_are_skipped_with_warnings(ip) -> None:
    with pytest.warns(RustcallWarning) as rec:
        ns = run(ip, SKIPPED_CELL)
    text = "\n".join(str(w.message) for w in rec)
    assert "`Holder`" in text and "lifetime" in text
    assert "`Fine.weird`" in text and "Mutex" in text
    assert "`Fine.generic`" in text
    assert "Holder" not in ns
    assert "`Later`" in text and "variant `A`" in text
    assert "Later" not in ns
    assert "`Weird`" in text and "not an integer literal" in text
    with pytest.raises(TypeError, match="no constructor"):
        ns["Fine"](1)  # `h` is pub but its type does not cross
    assert not hasattr(ns["Fine"], "weird")


@pytest.mark.parametrize("edition", ["2015", "2018", "2024"])
def test_struct_glue_compiles_under_every_edition(edition: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", RustcallWarning)
        m = rc.compile_rust(SHAPES_CELL, edition=edition, opt_level=0, quiet=True)
    v = m.Vec2(3, 4)
    assert (v.norm(), repr(v), str(v)) == (5.0, "Vec2 { x: 3.0, y: 4.0 }", "(3, 4)")
    assert list(m.Countdown(2)) == [2, 1]
    assert len({m.Tracked(1), m.Tracked(1)}) == 1


# -- fieldless enums -------------------------------------------------------------------------

ENUM_CELL = """
/// A traffic light.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Light { Red, Amber = 5, Green }

impl Light {
    /// The light after this one.
    pub fn next(&self) -> Light { match self { Light::Red => Light::Green, Light::Green => Light::Amber, Light::Amber => Light::Red } }
    pub fn all() -> Vec<Light> { vec![Light::Red, Light::Amber, Light::Green] }
    pub fn code(self, k: i32) -> i32 { self as i32 * k }
    pub fn cycle(&mut self) { *self = self.next(); }
}

pub fn is_stop(l: Light) -> bool { l == Light::Red }
pub fn pair() -> (Light, Option<Light>) { (Light::Amber, None) }
pub fn count_red(ls: Vec<Light>) -> usize { ls.iter().filter(|l| **l == Light::Red).count() }

pub struct Car { pub light: Light, pub speed: f64 }
impl Car { pub fn stopped(&self) -> bool { self.light == Light::Red && self.speed == 0.0 } }
"""


def test_fieldless_enum_is_an_enum_class(ip) -> None:
    import enum

    with pytest.warns(RustcallWarning, match="`Light.cycle`.*immutable"):
        ns = run(ip, ENUM_CELL)
    Light = ns["Light"]
    assert issubclass(Light, enum.Enum)
    assert [(m.name, m.value) for m in Light] == [("Red", 0), ("Amber", 5), ("Green", 6)]
    assert Light(5) is Light.Amber
    assert "pub enum Light { Red = 0, Amber = 5, Green = 6 }" in Light.__doc__
    assert "A traffic light." in Light.__doc__
    assert not hasattr(Light, "cycle")


def test_enum_members_pass_and_return_by_value(ip) -> None:
    ns = run(ip, ENUM_CELL)
    Light = ns["Light"]
    assert ns["is_stop"](Light.Red) is True
    assert ns["is_stop"](Light.Green) is False
    assert ns["pair"]() == (Light.Amber, None)
    assert ns["count_red"]([Light.Red, Light.Green, Light.Red]) == 2
    assert Light.Red.next() is Light.Green
    assert Light.all() == list(Light)
    assert Light.Amber.code(2) == 10
    assert "The light after this one." in Light.next.__doc__
    car = ns["Car"](Light.Green, 0.0)
    assert car.light is Light.Green and not car.stopped()
    car.light = Light.Red
    assert car.stopped()
    match car.light:
        case Light.Red:
            seen = "red"
        case _:
            seen = "other"
    assert seen == "red"


def test_enum_bad_input(ip) -> None:
    ns = run(ip, ENUM_CELL)
    with pytest.raises(TypeError, match="must be a `Light` member, not int"):
        ns["is_stop"](0)
    with pytest.raises(TypeError, match="must be a `Light` member, not str"):
        ns["is_stop"]("Red")
    other = rc.compile_rust(ENUM_CELL + "\n// another cell\n").Light
    with pytest.raises(TypeError, match="member of another cell"):
        ns["is_stop"](other.Red)


# -- %%rust_llvm ---------------------------------------------------------------------------


def test_rust_llvm_exports_the_same_classes(ip) -> None:
    ip.run_cell_magic("rust_llvm", "", SHAPES_CELL + "\n// jit\n")
    ns = ip.user_ns
    V, T = ns["Vec2"], ns["Tracked"]
    assert V(3, 4).norm() == 5.0
    assert sorted([V(2, 0), V(1, 0)]) == [V(1, 0), V(2, 0)]
    before = ns["drops"]()
    with T(1) as t:
        assert t.len() == 2
    assert ns["drops"]() == before + 1
    v = V(1, 1)
    with pytest.raises(RustPanic):
        v.explode(20.0)
    with pytest.raises(RustHandleError, match="poisoned"):
        v.norm()


# -- the live-handle registry ----------------------------------------------------------------


def _rows_of(*objs: object) -> list[tuple[str, str, str]]:
    ids = {id(o) for o in objs}
    return sorted((r.kind, r.state, r.preview) for r in rc.live_handles() if r.id in ids)


def test_instances_are_listed_by_live_handles(shapes) -> None:
    T, V = shapes["Tracked"], shapes["Vec2"]
    a, b, c, v = T(1), T(2), T(3), V(1, 2)
    o = shapes["opaque"](5)
    b.consume()
    c.drop()
    with pytest.raises(RustPanic):
        v.explode(50.0)
    assert _rows_of(a, b, c, v, o) == [
        ("Opaque", "alive", "-"),  # no Debug: no preview
        ("Tracked", "alive", 'Tracked { id: 1, tag: "t1" }'),
        ("Vec2", "poisoned", "-"),  # still owns its value until dropped
    ]  # the moved and the dropped one own nothing: not listed
    mine = {id(x) for x in (a, b, c, v, o)}
    assert sorted(r.kind for r in rc.live_handles(include_ended=False) if r.id in mine) == ["Opaque", "Tracked", "Vec2"]
    ida = id(a)
    del a
    gc.collect()
    assert ida not in {r.id for r in rc.live_handles()}


def test_rust_handles_magic_lists_instances(ip, capsys) -> None:
    ns = run(ip, SHAPES_CELL)
    keep = ns["Tracked"](77)
    capsys.readouterr()
    ip.run_line_magic("rust_handles", "")
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith(str(id(keep))))
    assert "Tracked" in line and "alive" in line and "id: 77" in line
    keep.drop()


NESTED_CELL = """
#[derive(Debug, Clone, PartialEq)]
pub struct Inner { pub v: i32 }
pub struct NoClone { pub v: i32 }
pub struct Outer { pub inner: Inner, pub other: NoClone, pub tags: Vec<Inner> }
impl Outer { pub fn other_v(&self) -> i32 { self.other.v } }
"""


def test_fields_of_struct_type_read_as_clones_and_set_by_value(ip) -> None:
    ns = run(ip, NESTED_CELL)
    Inner, NoClone, Outer = ns["Inner"], ns["NoClone"], ns["Outer"]
    i1, n2 = Inner(1), NoClone(2)
    o = Outer(i1, n2, [Inner(3), Inner(4)])
    with pytest.raises(RustHandleError, match="moved"):
        i1.v  # noqa: B018  (moved into the Outer)
    got = o.inner
    assert got == Inner(1)
    got.v = 10
    assert o.inner.v == 1  # a clone
    assert o.tags == [Inner(3), Inner(4)]
    new = Inner(5)
    o.inner = new
    assert o.inner.v == 5
    with pytest.raises(RustHandleError, match="moved"):
        new.v  # noqa: B018
    assert not hasattr(o, "other")  # NoClone is not Clone: not readable as a property
    assert o.other_v() == 2
    assert Outer.__match_args__ == ("inner", "tags")


# -- enums with data -----------------------------------------------------------------------

SHAPE_ENUM_CELL = """
/// A plane shape.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape { Circle(f64), Rect { w: f64, h: f64 }, Empty }

impl Shape {
    pub fn area(&self) -> f64 {
        match self { Shape::Circle(r) => 3.0 * r * r, Shape::Rect { w, h } => w * h, Shape::Empty => 0.0 }
    }
    pub fn clear(&mut self) { *self = Shape::Empty; }
    pub fn unit() -> Shape { Shape::Circle(1.0) }
}

pub fn shapes() -> Vec<Shape> { vec![Shape::Circle(2.0), Shape::Rect { w: 2.0, h: 3.0 }, Shape::Empty] }
pub fn area_of(s: &Shape) -> f64 { s.area() }
pub fn consume(s: Shape) -> String { format!("{:?}", s) }
"""


def describe(s: object, Shape: type) -> str:
    match s:
        case Shape.Circle(r):
            return f"circle of radius {r}"
        case Shape.Rect(w, h=h):
            return f"{w} by {h} rectangle"
        case Shape.Empty():
            return "nothing"
    return "?"


def test_enum_with_data_has_a_class_per_variant(ip) -> None:
    ns = run(ip, SHAPE_ENUM_CELL)
    Shape = ns["Shape"]
    c, r, e = Shape.Circle(2.0), Shape.Rect(w=2, h=3), Shape.Empty()
    assert (repr(c), repr(r), repr(e)) == ("Circle(2.0)", "Rect { w: 2.0, h: 3.0 }", "Empty")
    assert (c.variant, r.variant, e.variant) == ("Circle", "Rect", "Empty")
    assert isinstance(c, Shape) and isinstance(c, Shape.Circle) and not isinstance(c, Shape.Rect)
    assert Shape.Circle.__qualname__ == "Shape.Circle"
    assert (c._0, r.w, r.h) == (2.0, 2.0, 3.0)
    assert (Shape.Circle.__match_args__, Shape.Rect.__match_args__) == (("_0",), ("w", "h"))
    assert [describe(s, Shape) for s in ns["shapes"]()] == ["circle of radius 2.0", "2.0 by 3.0 rectangle", "nothing"]
    assert c.area() == 12.0 and ns["area_of"](r) == 6.0 and Shape.unit() == Shape.Circle(1.0)
    assert c == Shape.Circle(2.0) and c != r
    assert "pub enum Shape { Circle(f64), Rect { w: f64, h: f64 }, Empty }" in Shape.__doc__
    assert str(inspect.signature(Shape.Rect)) == "(w, h)"
    with pytest.raises(TypeError, match="construct one of its variants"):
        Shape(1.0)
    with pytest.raises(TypeError, match="must be float"):
        Shape.Circle("big")
    with pytest.raises(AttributeError):
        r._0  # noqa: B018


def test_enum_variant_follows_mutation_and_moves(ip) -> None:
    ns = run(ip, SHAPE_ENUM_CELL)
    Shape = ns["Shape"]
    c = Shape.Circle(1.0)
    c.clear()  # `&mut self` changed the variant: the object's class follows
    assert type(c) is Shape.Empty and c.variant == "Empty" and describe(c, Shape) == "nothing"
    r = Shape.Rect(1, 2)
    assert ns["consume"](r) == "Rect { w: 1.0, h: 2.0 }"
    with pytest.raises(RustHandleError, match="`Shape` was moved"):
        r.variant  # noqa: B018


OPS_CELL = """
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct V2 { pub x: f64, pub y: f64 }
impl std::ops::Mul<f64> for V2 { type Output = V2; fn mul(self, k: f64) -> V2 { V2 { x: self.x * k, y: self.y * k } } }
impl std::ops::Mul for V2 { type Output = f64; fn mul(self, o: V2) -> f64 { self.x * o.x + self.y * o.y } }
impl std::ops::Add<(f64, f64)> for V2 {
    type Output = V2;
    fn add(self, o: (f64, f64)) -> V2 { V2 { x: self.x + o.0, y: self.y + o.1 } }
}
impl std::ops::Mul<V2> for f64 { type Output = V2; fn mul(self, v: V2) -> V2 { V2 { x: self * v.x, y: self * v.y } } }
impl std::ops::Sub<V2> for i32 { type Output = i32; fn sub(self, v: V2) -> i32 { self - v.x as i32 } }
"""


def test_operators_with_a_right_hand_side_of_another_type(ip) -> None:
    V2 = run(ip, OPS_CELL)["V2"]
    a = V2(1, 2)
    assert a * 2 == V2(2, 4)  # Mul<f64>, an int converts like an f64 argument
    assert a * 2.5 == V2(2.5, 5)
    assert a * V2(3, 4) == 11.0  # Mul<Self> still applies
    assert a + (1, 1) == V2(2, 3)  # noqa: RUF005  (Add<(f64, f64)>, not tuple concatenation)
    assert a == V2(1, 2)  # operands are not consumed
    assert 3 * a == V2(3, 6)  # impl Mul<V2> for f64: the left-hand side converts
    assert 10 - a == 9  # impl Sub<V2> for i32
    with pytest.raises(TypeError):
        a - 10  # there is no `impl Sub<i32> for V2`
    with pytest.raises(TypeError):
        "x" * a
    with pytest.raises(TypeError):
        a * "x"
    with pytest.raises(TypeError):
        a + V2(1, 1)  # there is no `impl Add for V2`


def test_handles_view_lists_and_drops_instances(shapes) -> None:
    from rustcall_magic.widgets import HandlesView

    t = shapes["Tracked"](31)
    view = HandlesView(namespace={"t": t})
    try:
        view.refresh()
        row = next(r for r in view.rows if r.id == id(t))
        assert (row.kind, row.state, row.preview) == ("Tracked", "alive", 'Tracked { id: 31, tag: "t31" }')
        assert "Tracked" in view.table.value
        before = shapes["drops"]()
        view.drop(id(t))
        assert shapes["drops"]() == before + 1
        assert f"dropped #{id(t)}" in view.status.value
        assert id(t) not in {r.id for r in view.rows}
    finally:
        view.close()


def test_listeners_hear_of_instance_changes(shapes) -> None:
    from rustcall_magic import handles

    events: list[handles.HandleEvent] = []
    handles.add_listener(events.append, interval=60)  # the poller sleeps: batches are flushed here
    try:
        assert handles._flush_instances() is None  # nothing changed since the listener came
        t = shapes["Tracked"](41)
        t.drop()
        event = handles._flush_instances()
        assert event is not None and event.changed == 2  # created, dropped
        assert id(t) not in {r.id for r in event.rows}  # dropped: no longer listed
        assert events == [event]
        del t
        handles.add_listener(events.append, interval=0.02)  # now the poller looks by itself
        deadline = time.monotonic() + 10
        while len(events) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(events) == 2 and events[1].changed == 1  # the deallocation
    finally:
        handles.remove_listener(events.append)


PANICKY_DROP_CELL = """
pub struct Grumpy { pub id: u32 }
impl Drop for Grumpy { fn drop(&mut self) { if self.id > 0 { panic!("cannot drop {}", self.id) } } }
"""


def test_a_panic_in_drop_is_a_rust_panic_and_the_value_counts_as_dropped(ip) -> None:
    G = run(ip, PANICKY_DROP_CELL)["Grumpy"]
    g = G(3)
    with pytest.raises(RustPanic, match="cannot drop 3"):
        g.drop()
    with pytest.raises(RustHandleError, match="dropped"):
        g.drop()
    with pytest.raises(RustPanic, match="cannot drop 4"):
        with G(4):
            pass
    quiet = G(5)
    del quiet  # no caller to raise to: contained, the process goes on
    gc.collect()
    assert G(0).id == 0


FALLIBLE_NEW_CELL = """
#[derive(Debug)]
pub struct Percent { pub value: u8 }
impl Percent {
    pub fn new(value: u8) -> Result<Percent, String> {
        if value > 100 { Err(format!("{} is more than 100", value)) } else { Ok(Percent { value }) }
    }
}
"""


def test_new_returning_result_constructs_or_raises(ip) -> None:
    P = run(ip, FALLIBLE_NEW_CELL)["Percent"]
    assert P(42).value == 42
    with pytest.raises(rc.RustError, match="150 is more than 100"):
        P(150)
    assert str(inspect.signature(P)) == "(value)"


def test_over_aligned_struct_is_refused_at_load() -> None:
    src = "#[repr(align(64))]\npub struct Big { pub x: u8 }\npub fn f() -> i32 { 1 }"
    with pytest.raises(TypeError, match="`Big` needs an alignment of 64 bytes"):
        rc.compile_rust(src, quiet=True)
