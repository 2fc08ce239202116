"""Reading exported functions from a cell with tree-sitter."""

from __future__ import annotations

import pytest

from rustcall_magic.signature import UNIT, FnSig, RType, parse_cell, pattern, unwinding_source

TRICKY_CELL = r'''
#![allow(dead_code)]
use std::collections::HashMap;

/// Adds.
/// Second line.
#[inline]
#[must_use]
pub fn add(a: i64, b: i64) -> i64 { a + b }

/** Block doc. */
pub fn lifetimes<'a>(x: u8) -> u8 { let s: &'a str = "pub fn fake(x: i32) -> i32 {"; x }

pub fn raw() -> bool { let _s = r#"pub fn inside_raw(a: i32) -> i32 { a }"#; true }

pub fn generic<T: Copy>(x: T) -> T { x }

pub(crate) fn crate_only(a: i32) -> i32 { a }
fn private(a: i32) -> i32 { a }

mod inner {
    pub fn nested(a: i32) -> i32 { a }
}

struct Point { x: f64 }  // private: not exported, nor are functions taking it
impl Point {
    pub fn method(&self) -> f64 { self.x }
}

#[no_mangle]
pub extern "C" fn c_add(a: i32, b: i32) -> i32 { a + b }

pub extern "C" fn c_unmangled(a: i32) -> i32 { a }

pub fn takes_point(p: Point) -> f64 { p.x }

pub fn unit_ret(mut x: u32) { x += 1; let _ = x; }

pub const fn konst(x: i16) -> i16 { x }

pub unsafe fn danger(x: i32) -> i32 { x }

pub fn never() -> ! { loop {} }

// pub fn commented(x: i32) -> i32 { x }
'''


def test_exports_only_top_level_pub_fns() -> None:
    info = parse_cell(TRICKY_CELL)
    names = [f.name for f in info.functions]
    assert names == ["add", "lifetimes", "raw", "generic", "c_add", "unit_ret", "konst"]
    generic = info.functions[3]
    assert generic.type_params == ("T",) and generic.text == "pub fn generic<T: Copy>(x: T) -> T"
    assert info.functions[1].type_params == ()  # lifetimes are no type parameters
    skipped = dict(info.skipped)
    assert set(skipped) == {"c_unmangled", "takes_point", "danger", "never"}
    assert "Point" in skipped["takes_point"]
    assert "no_mangle" in skipped["c_unmangled"]
    assert "`!`" in skipped["never"]


def test_signature_details() -> None:
    info = parse_cell(TRICKY_CELL)
    by = {f.name: f for f in info.functions}
    add = by["add"]
    assert add.text == "pub fn add(a: i64, b: i64) -> i64"
    assert add.doc == "Adds.\nSecond line."
    assert add.line == 9
    assert by["lifetimes"].doc == "Block doc."
    assert by["c_add"].extern_c and by["c_add"].text == 'pub extern "C" fn c_add(a: i32, b: i32) -> i32'
    assert by["unit_ret"].ret == UNIT
    assert [p.name for p in by["unit_ret"].params] == ["x"]


def test_fnsig_json_round_trip() -> None:
    for f in parse_cell(TRICKY_CELL).functions:
        assert FnSig.from_json(f.to_json()) == f


def test_paths_are_canonical() -> None:
    info = parse_cell("pub fn f(a: std::primitive::i32) -> i32 { a }")
    # A qualified primitive is not in the table by that name: skipped, not mis-read.
    assert info.functions == [] and "std::primitive::i32" in info.skipped[0][1]
    assert pattern(RType("ref", "", (RType("slice", "", (RType("path", "f64"),)),), True)) == "&mut [_]"
    assert pattern(RType("path", "Option", (RType("path", "i64"),))) == "Option<_>"


def test_syntax_errors_are_flagged_not_raised() -> None:
    info = parse_cell("pub fn broken(a: i32 -> i32 { a }\npub fn ok(a: i32) -> i32 { a }")
    assert info.has_syntax_errors


FFI_CELL = r"""
use std::os::raw::c_double;
#[no_mangle]
pub unsafe extern "C" fn scaled(x: std::os::raw::c_int, k: c_double) -> c_double { x as f64 * k }
#[no_mangle]
pub extern fn bare_abi(x: i32) -> i32 { x }
#[no_mangle]
pub extern "C-unwind" fn already(x: i32) -> i32 { x }
#[doc = "Doc \"attribute\"\u{21}"]
/// and a comment line
pub fn r#type(a: i32) -> i32 { a }
"""


def test_ffi_spellings_raw_identifiers_and_doc_attributes() -> None:
    info = parse_cell(FFI_CELL)
    by = {f.name: f for f in info.functions}
    assert list(by) == ["scaled", "bare_abi", "already", "type"]
    assert [str(p.type) for p in by["scaled"].params] == ["i32", "f64"] and str(by["scaled"].ret) == "f64"
    assert by["type"].rust_path == "r#type" and by["type"].text == "pub fn r#type(a: i32) -> i32"
    assert by["type"].doc == 'Doc "attribute"!\nand a comment line'
    assert FnSig.from_json(by["type"].to_json()) == by["type"]
    # Exported extern "C" functions are built as "C-unwind", on the same lines.
    built = unwinding_source(FFI_CELL, info)
    assert built.count('"C-unwind"') == 3 and built.count("\n") == FFI_CELL.count("\n")
    assert 'pub unsafe extern "C-unwind" fn scaled' in built and 'pub extern "C-unwind" fn bare_abi' in built
    assert "`unsafe fn` cannot be exported" in dict(parse_cell("pub unsafe fn u() {}").skipped)["u"]


TYPES_CELL = '''
/// A point.
#[derive(Debug, Clone, PartialEq)]
pub struct Point { pub x: f64, y: f64 }
pub struct Pair(pub i32, f64);
pub struct Unit;
pub enum Dir { North, East = 10, South }
pub enum Shape { Circle(f64), Square { side: f64 } }
pub struct Borrowed<'a> { pub s: &'a str }
struct Private { x: i32 }

impl Point {
    /// Makes one.
    pub fn new(x: f64) -> Self { Point { x, y: 0.0 } }
    pub fn get(&self) -> f64 { self.x }
    pub fn set(&mut self, v: f64) { self.x = v; }
    pub fn into_x(self) -> f64 { self.x }
    pub fn pair(&self, other: &Point) -> (Point, Option<Point>) { (self.clone(), None) }
    fn hidden(&self) {}
}
impl std::fmt::Display for Point {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result { Ok(()) }
}
impl Dir { pub fn turn(&mut self) {} pub fn left(self) -> Dir { self } }
pub fn takes(p: &mut Point, d: Dir, v: Vec<Point>) -> Option<Pair> { None }
'''


def test_reader_collects_exported_types_and_their_impls() -> None:
    info = parse_cell(TYPES_CELL)
    types = {t.name: t for t in info.types}
    assert set(types) == {"Point", "Pair", "Unit", "Dir", "Shape"}
    p = types["Point"]
    assert (p.shape, p.doc, p.traits) == ("named", "A point.", ["Debug", "Clone", "PartialEq", "Display"])
    assert p.text == "pub struct Point { pub x: f64, y: f64 }"
    assert [(f.name, str(f.type), f.public) for f in p.fields] == [("x", "f64", True), ("y", "f64", False)]
    assert [(m.name, m.receiver) for m in p.methods] == [
        ("new", ""), ("get", "&self"), ("set", "&mut self"), ("into_x", "self"), ("pair", "&self")
    ]
    assert p.constructor is not None and p.constructor.text == "pub fn new(x: f64) -> Point"
    assert p.methods[4].text == "pub fn pair(&self, other: &Point) -> (Point, Option<Point>)"
    assert p.methods[4].params[0].type == RType("ref", "", (RType("user", "Point"),), False)
    assert not p.fieldwise and [f.name for f in p.properties] == ["x"]
    assert types["Pair"].shape == "tuple" and not types["Pair"].fieldwise
    assert types["Unit"].shape == "unit" and types["Unit"].fieldwise
    assert types["Dir"].variants == (("North", 0), ("East", 10), ("South", 11))
    assert [m.name for m in types["Dir"].methods] == ["left"]
    shape = types["Shape"]
    assert (shape.shape, shape.kind) == ("data", "user")
    assert [c.text for c in shape.cases] == ["Circle(f64)", "Square { side: f64 }"]
    assert shape.text == "pub enum Shape { Circle(f64), Square { side: f64 } }"
    skipped = dict(info.skipped)
    assert "lifetime" in skipped["Borrowed"]
    assert "immutable" in skipped["Dir.turn"]
    takes = info.functions[0]
    assert [str(p.type) for p in takes.params] == ["&mut Point", "Dir", "Vec<Point>"]
    assert takes.params[1].type.kind == "enum"
    assert str(takes.ret) == "Option<Pair>"


def test_private_or_unknown_types_do_not_cross() -> None:
    info = parse_cell("struct Hidden;\npub fn f(h: Hidden) {}\npub fn g() -> &'static Point { todo!() }")
    assert dict(info.skipped).keys() == {"f", "g"}
    assert info.types == []


GENERIC_CELL = """
use std::ops::Add;
pub fn sum<T: Add<Output = T> + Copy, U>(a: T, b: &[U], c: Option<T>) -> T where U: Copy { a }
pub fn konst<const N: usize>(x: i32) -> i32 { x }
pub fn opaque(x: impl Copy) -> i32 { 1 }
pub fn strs<T>(xs: &[T]) -> usize { xs.len() }
#[no_mangle]
pub extern "C" fn c_generic<T>(x: i32) -> i32 { x }
pub struct W<T> { pub v: T }
impl<T: Copy> W<T> {
    pub fn new(v: T) -> Self { W { v } }
    pub fn get(&self) -> T { self.v }
    pub fn map<U>(&self, u: U) -> U { u }
}
"""


def test_generic_signatures_record_parameters_bounds_and_where_clauses() -> None:
    from rustcall_magic.signature import RType, instantiate_fn, instantiate_type, with_instances

    info = parse_cell(GENERIC_CELL)
    by = {f.name: f for f in info.functions}
    s = by["sum"]
    assert s.type_params == ("T", "U")
    assert s.generics == "<T: Add<Output = T> + Copy, U>" and s.where == "where U: Copy"
    assert [str(p.type) for p in s.params] == ["T", "&[U]", "Option<T>"]
    assert s.params[0].type == RType("tparam", "T")
    skipped = dict(info.skipped)
    assert "const generic" in skipped["konst"]
    assert "impl Copy" in skipped["opaque"]
    assert "c_generic" in skipped and "W.map" in skipped and "generic methods" in skipped["W.map"]
    inst = instantiate_fn(s, (RType("path", "i32"), RType("path", "f64")))
    assert inst.name == "sum<i32, f64>" and inst.rust_path == "sum::<i32, f64>" and inst.generic == "sum"
    assert inst.text == "pub fn sum<i32, f64>(a: i32, b: &[f64], c: Option<i32>) -> i32"
    with pytest.raises(TypeError, match="&\\[String\\]"):
        instantiate_fn(by["strs"], (RType("path", "String"),))
    with pytest.raises(TypeError, match="2 type argument"):
        instantiate_fn(s, (RType("path", "i32"),))
    w = next(t for t in info.types if t.name == "W")
    assert w.type_params == ("T",) and [m.name for m in w.methods] == ["new", "get"]
    wi, bad = instantiate_type(w, (RType("path", "u8"),))
    assert wi.name == "W<u8>" and not bad and str(wi.fields[0].type) == "u8"
    assert wi.constructor is not None and str(wi.constructor.ret) == "W<u8>"
    assert RType("user", "W<u8>").rust() == "super::W::<u8>"
    both = with_instances(info, ["sum<i64, u8>", "W<f32>"])
    assert [f.name for f in both.functions][-1] == "sum<i64, u8>" and both.types[-1].name == "W<f32>"
    only = with_instances(info, ["W<f32>"], only=True)
    assert only.functions == [] and [t.name for t in only.types] == ["W<f32>"]
    with pytest.raises(ValueError, match="no generic function or struct"):
        with_instances(info, ["add<i32>"])
