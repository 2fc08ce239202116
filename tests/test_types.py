"""Rich types across the boundary (SPEC §4): strings, slices and buffers, Vec, Option, Result, tuples, raw pointers.

Each cell is compiled once per module (fixtures); every bad input is followed by
a good call to show the module keeps working.
"""

from __future__ import annotations

import array
import sys
import warnings

import numpy as np
import pytest

import rustcall_magic as rc
from rustcall_magic.signature import parse_cell

TEXT_CELL = r"""
/// Byte length of UTF-8 text.
pub fn byte_len(s: &str) -> usize { s.len() }
pub fn char_count(s: &str) -> usize { s.chars().count() }
pub fn greet(name: String) -> String { format!("Hello, {}!", name) }
pub fn first_word(s: &str) -> &str { s.split_whitespace().next().unwrap_or("") }
pub fn shout(words: Vec<String>) -> Vec<String> { words.iter().map(|w| w.to_uppercase()).collect() }
pub fn join(words: Vec<String>, sep: &str) -> String { words.join(sep) }
pub fn find_char(s: &str, c: char) -> Option<usize> { s.chars().position(|x| x == c) }
pub fn nickname(name: Option<&str>) -> Option<String> { name.map(|n| n[..1].to_string()) }
pub fn or_default(x: Option<f64>) -> f64 { x.unwrap_or(-1.0) }
pub fn divide(a: f64, b: f64) -> Result<f64, String> {
    if b == 0.0 { Err("division by zero".to_string()) } else { Ok(a / b) }
}
pub fn split_words(s: &str) -> Result<Vec<String>, String> {
    if s.is_empty() { Err(String::from("nothing to split")) } else { Ok(s.split(' ').map(String::from).collect()) }
}
pub fn parse_int(s: &str) -> Result<i64, Box<dyn std::error::Error>> { Ok(s.trim().parse::<i64>()?) }
pub fn check(ok: bool) -> Result<(), String> { if ok { Ok(()) } else { Err("not ok".into()) } }
pub struct Oops;
impl std::fmt::Display for Oops {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result { write!(f, "custom error {}", 7) }
}
pub fn custom(fail: bool) -> Result<u8, Oops> { if fail { Err(Oops) } else { Ok(1) } }
pub fn swap(t: (i32, String)) -> (String, i32) { (t.1, t.0) }
pub fn stats(v: Vec<f64>) -> (f64, f64, usize) {
    let n = v.len();
    let mean = v.iter().sum::<f64>() / n as f64;
    (mean, v.iter().cloned().fold(f64::MIN, f64::max), n)
}
pub fn nested(t: ((u8, bool), Option<String>)) -> String { format!("{}-{}-{:?}", (t.0).0, (t.0).1, t.1) }
"""

BUFFER_CELL = r"""
pub fn total(xs: &[f64]) -> f64 { xs.iter().sum() }
pub fn count(xs: &[f64]) -> usize { xs.len() }
pub fn sort_i32(xs: &mut [i32]) { xs.sort() }
pub fn scale(xs: &mut [f64], k: f64) { for x in xs.iter_mut() { *x *= k } }
pub fn fill_u8(xs: &mut [u8], v: u8) { for x in xs.iter_mut() { *x = v } }
pub fn byte_sum(xs: &[u8]) -> u64 { xs.iter().map(|b| *b as u64).sum() }
pub fn count_true(xs: &[bool]) -> usize { xs.iter().filter(|b| **b).count() }
pub fn sum_i64(xs: &[i64]) -> i64 { xs.iter().sum() }
pub fn sum_f32(xs: &[f32]) -> f32 { xs.iter().sum() }
pub fn sum_u16(xs: &[u16]) -> u32 { xs.iter().map(|x| *x as u32).sum() }
pub fn first_then_panic(xs: &[u8], fail: bool) -> u8 { if fail { panic!("asked to fail") } xs[0] }
pub fn dot(a: &[f64], b: &[f64]) -> f64 { a.iter().zip(b).map(|(x, y)| x * y).sum() }
pub fn vec_sum(v: Vec<i64>) -> i64 { v.iter().sum() }
pub fn doubled(mut v: Vec<f64>) -> Vec<f64> { for x in v.iter_mut() { *x *= 2.0 } v }
pub fn squares(n: u32) -> Vec<u64> { (0..n as u64).map(|i| i * i).collect() }
pub fn lens(v: Vec<Vec<u8>>) -> Vec<usize> { v.iter().map(|x| x.len()).collect() }
"""

POINTER_CELL = r"""
use std::os::raw::{c_char, c_void};
#[no_mangle]
pub extern "C" fn c_strlen(s: *const c_char) -> usize {
    if s.is_null() { return 0; }
    unsafe { std::ffi::CStr::from_ptr(s).to_bytes().len() }
}
#[no_mangle]
pub extern "C" fn c_fill(p: *mut f64, n: usize, v: f64) { for i in 0..n { unsafe { *p.add(i) = v } } }
#[no_mangle]
pub extern "C" fn c_sum(p: *const i32, n: usize) -> i64 { (0..n).map(|i| unsafe { *p.add(i) } as i64).sum() }
#[no_mangle]
pub extern "C" fn c_addr(p: *const c_void) -> *const c_void { p }
#[no_mangle]
pub extern "C" fn c_is_null(p: *mut u8) -> bool { p.is_null() }
"""


@pytest.fixture(scope="module")
def text() -> rc.RustModule:
    with warnings.catch_warnings():
        warnings.simplefilter("error", rc.RustcallWarning)
        return rc.compile_rust(TEXT_CELL)


@pytest.fixture(scope="module")
def buf() -> rc.RustModule:
    with warnings.catch_warnings():
        warnings.simplefilter("error", rc.RustcallWarning)
        return rc.compile_rust(BUFFER_CELL)


@pytest.fixture(scope="module")
def ptr() -> rc.RustModule:
    with warnings.catch_warnings():
        warnings.simplefilter("error", rc.RustcallWarning)
        return rc.compile_rust(POINTER_CELL)


# ---------------------------------------------------------------------------
# Strings


def test_str_lengths_are_utf8_bytes_and_chars(text):
    assert text.byte_len("世界") == 6
    assert text.char_count("世界") == 2
    assert text.byte_len("") == 0
    assert text.byte_len("a" * 100_000) == 100_000


def test_string_in_and_out(text):
    assert text.greet("Ann") == "Hello, Ann!"
    assert text.greet("世界") == "Hello, 世界!"
    assert text.first_word("  hello big world") == "hello"
    assert text.first_word("") == ""


def test_lone_surrogate_raises_unicode_encode_error(text):
    with pytest.raises(UnicodeEncodeError) as info:
        text.byte_len("a\ud800b")
    if sys.version_info >= (3, 11):  # exception notes: the argument it was
        assert any("byte_len() argument 1" in n and "signature: pub fn" in n for n in info.value.__notes__)
    with pytest.raises(UnicodeEncodeError):
        text.greet("\udfff")
    assert text.byte_len("ok") == 2


def test_bytes_for_str_is_a_type_error(text):
    with pytest.raises(TypeError, match=r"byte_len\(\) argument 1 \(s: &str\) must be str, not bytes"):
        text.byte_len(b"abc")
    with pytest.raises(TypeError, match="must be str, not int"):
        text.greet(5)
    assert text.byte_len("abc") == 3


def test_vec_string_in_and_out(text):
    assert text.shout(["a", "bc", "ß"]) == ["A", "BC", "SS"]
    assert text.shout([]) == []
    assert text.shout(("x",)) == ["X"]
    assert text.join(["a", "b", "c"], "-") == "a-b-c"


def test_vec_string_bad_item_names_the_item(text):
    with pytest.raises(TypeError, match=r"argument 1 \(words: Vec<String>\) item \[1\] must be str, not int"):
        text.shout(["a", 3])
    with pytest.raises(TypeError, match=r"must be a list, tuple or buffer of String.*, not str"):
        text.shout("abc")  # a str is not split into characters
    assert text.shout(["ok"]) == ["OK"]


# ---------------------------------------------------------------------------
# Option, Result


def test_option_return_and_param(text):
    assert text.find_char("héllo", "l") == 2
    assert text.find_char("abc", "z") is None
    assert text.nickname("Bob") == "B"
    assert text.nickname(None) is None
    assert text.or_default(None) == -1.0
    assert text.or_default(2) == 2.0
    with pytest.raises(TypeError, match=r"must be float or None, not str"):
        text.or_default("x")


def test_result_ok_and_err(text):
    assert text.divide(1, 4) == 0.25
    with pytest.raises(rc.RustError, match=r"^division by zero$") as info:
        text.divide(1, 0)
    assert info.value.value == "division by zero"
    assert isinstance(info.value, rc.RustcallError)
    assert text.divide(9, 3) == 3.0


def test_result_nested_and_any_display_error(text):
    assert text.split_words("a b c") == ["a", "b", "c"]
    with pytest.raises(rc.RustError, match="nothing to split"):
        text.split_words("")
    assert text.parse_int(" 42 ") == 42
    with pytest.raises(rc.RustError, match="invalid digit found in string"):
        text.parse_int("4x2")
    assert text.check(True) is None
    with pytest.raises(rc.RustError, match="not ok"):
        text.check(False)
    assert text.custom(False) == 1
    with pytest.raises(rc.RustError) as info:
        text.custom(True)
    assert info.value.value == "custom error 7"


# ---------------------------------------------------------------------------
# Tuples


def test_tuples_in_and_out(text):
    assert text.swap((7, "seven")) == ("seven", 7)
    assert text.stats([1.0, 2.0, 6.0]) == (3.0, 6.0, 3)
    assert text.nested(((3, True), None)) == "3-true-None"
    assert text.nested(((3, False), "x")) == '3-false-Some("x")'


def test_tuple_errors(text):
    with pytest.raises(ValueError, match="expected a tuple of 2 items, got 3"):
        text.swap((1, "a", 2))
    with pytest.raises(TypeError, match=r"item \[1\] must be str, not int"):
        text.swap((1, 2))
    with pytest.raises(OverflowError, match=r"item \[0\]\[0\]: 300 is out of range for u8"):
        text.nested(((300, True), None))
    with pytest.raises(TypeError, match="must be a tuple, not list"):
        text.swap([1, "a"])
    assert text.swap((1, "a")) == ("a", 1)


# ---------------------------------------------------------------------------
# Slices and buffers


def test_slice_reads_numpy_and_other_buffers(buf):
    assert buf.total(np.arange(5.0)) == 10.0
    assert buf.total(array.array("d", [1.5, 2.5])) == 4.0
    assert buf.total(memoryview(array.array("d", [1.0, 2.0]))) == 3.0
    assert buf.total(np.ones((3, 4))) == 12.0  # C-contiguous arrays are seen flat
    assert buf.count(np.zeros(0)) == 0
    assert buf.count(np.float64(2.0).reshape(())) == 1
    assert buf.byte_sum(b"\x01\x02\x03") == 6
    assert buf.byte_sum(bytearray(b"\xff\xff")) == 510
    assert buf.count_true(np.array([True, False, True, True])) == 3
    assert buf.sum_i64(np.array([1, 2, 3], dtype=np.int64)) == 6
    assert buf.sum_i64(array.array("q", [4, 5])) == 9
    assert buf.sum_f32(np.array([0.5, 0.25], dtype=np.float32)) == 0.75
    assert buf.sum_u16(np.array([65535, 1], dtype=np.uint16)) == 65536
    assert buf.dot(np.array([1.0, 2.0]), np.array([3.0, 4.0])) == 11.0


def test_slice_also_accepts_a_list_copied(buf):
    assert buf.total([1, 2.5, 3]) == 6.5
    assert buf.total([]) == 0.0
    assert buf.byte_sum([1, 2, 255]) == 258
    with pytest.raises(OverflowError, match=r"item \[1\]: 256 is out of range for u8"):
        buf.byte_sum([1, 256])
    with pytest.raises(TypeError, match=r"item \[0\] must be float, not str"):
        buf.total(["1.0"])
    assert buf.total([1.0]) == 1.0


def test_mut_slice_sorts_numpy_int32_in_place(buf):
    a = np.array([5, -1, 3, 0], dtype=np.int32)
    address = a.ctypes.data
    assert buf.sort_i32(a) is None
    assert a.tolist() == [-1, 0, 3, 5]
    assert a.ctypes.data == address
    arr = array.array("i", [3, 2, 1])
    buf.sort_i32(arr)
    assert arr.tolist() == [1, 2, 3]


def test_mut_slice_writes_are_visible_zero_copy(buf):
    a = np.arange(4.0)
    view = a[:]  # shares memory with a
    buf.scale(a, 10.0)
    assert view.tolist() == [0.0, 10.0, 20.0, 30.0]
    ba = bytearray(3)
    buf.fill_u8(ba, 7)
    assert ba == bytearray(b"\x07\x07\x07")
    mv = memoryview(bytearray(2))
    buf.fill_u8(mv, 9)
    assert mv.tobytes() == b"\t\t"


def test_wrong_item_type_is_a_type_error_naming_both(buf):
    with pytest.raises(TypeError, match=r"not numpy.ndarray of dtype int64 \(got a buffer of item format 'l'.*f64 needs format 'd'"):
        buf.total(np.arange(3))
    with pytest.raises(TypeError, match=r"ndarray of dtype float64.*i32 needs format 'i'"):
        buf.sort_i32(np.zeros(3))
    with pytest.raises(TypeError, match="item format 'B'"):
        buf.sort_i32(bytearray(8))  # no silent reinterpretation of bytes as i32
    with pytest.raises(TypeError, match=r"format '>d'"):
        buf.total(np.arange(3.0).astype(">f8"))  # byte-swapped
    with pytest.raises(TypeError, match=r"must be a buffer of f64 items .* or a list, not dict"):
        buf.total({})
    assert buf.total(np.arange(3.0)) == 3.0


def test_non_contiguous_and_read_only_are_buffer_errors(buf):
    with pytest.raises(BufferError, match=r"not C-contiguous \(shape \[3\], strides \[16\] bytes\)"):
        buf.total(np.arange(6.0)[::2])
    with pytest.raises(BufferError, match="not C-contiguous"):
        buf.scale(np.zeros((3, 3))[:, 0], 2.0)
    ro = np.arange(3.0)
    ro.flags.writeable = False
    assert buf.total(ro) == 3.0  # read-only is fine for &[f64]
    with pytest.raises(BufferError, match=r"read-only, &mut \[f64\] needs a writable one"):
        buf.scale(ro, 2.0)
    with pytest.raises(BufferError, match="read-only"):
        buf.fill_u8(b"abc", 1)
    with pytest.raises(TypeError, match="a list cannot be changed in place"):
        buf.sort_i32([3, 1])
    a = np.array([2, 1], dtype=np.int32)
    buf.sort_i32(a)
    assert a.tolist() == [1, 2]


def test_bool_buffer_must_hold_only_0_and_1(buf):
    bad = np.array([0, 2], dtype=np.uint8).view(bool)
    with pytest.raises(ValueError, match="other than 0 and 1"):
        buf.count_true(bad)
    assert buf.count_true(np.array([0, 1], dtype=np.uint8).view(bool)) == 1


def test_buffer_released_on_every_path(buf):
    # A bytearray or array.array with an unreleased export refuses to resize.
    ba = bytearray(b"\x05\x06")
    assert buf.first_then_panic(ba, False) == 5
    with pytest.raises(rc.RustPanic, match="asked to fail"):
        buf.first_then_panic(ba, True)
    with pytest.raises(TypeError, match=r"argument 2 \(fail: bool\)"):
        buf.first_then_panic(ba, "yes")  # the first argument was acquired, then the second failed
    ba.append(7)  # raises BufferError if any of the calls above leaked an export
    arr = array.array("d", [1.0])
    with pytest.raises(TypeError):
        buf.dot(arr, np.arange(2))  # second argument has the wrong item type
    buf.total(arr)
    arr.append(2.0)
    mv = memoryview(bytearray(4))
    with pytest.raises(TypeError):
        buf.sort_i32(mv)
    mv.release()  # BufferError if an export were still held


def test_no_reference_leaks(buf):
    a = np.arange(10.0)
    ro = np.arange(3.0)
    ro.flags.writeable = False
    arr = array.array("d", [1.0, 2.0])
    before = [sys.getrefcount(x) for x in (a, ro, arr)]
    for _ in range(1000):
        buf.total(a)
        buf.total(arr)
        with pytest.raises(BufferError):
            buf.scale(ro, 1.0)
    assert [sys.getrefcount(x) for x in (a, ro, arr)] == before


def test_vec_params_copy_from_list_or_buffer(buf):
    assert buf.vec_sum([1, 2, 3]) == 6
    assert buf.vec_sum(np.array([4, 5], dtype=np.int64)) == 9
    assert buf.vec_sum(array.array("q", [7])) == 7
    a = np.array([1.0, 2.0])
    assert rc.to_list(buf.doubled(a)) == [2.0, 4.0]  # numeric Vec returns are RustVec handles
    assert a.tolist() == [1.0, 2.0]  # the Vec was a copy
    assert rc.to_list(buf.squares(4)) == [0, 1, 4, 9]
    assert rc.to_list(buf.lens([[1, 2], b"abc", []])) == [2, 3, 0]
    with pytest.raises(OverflowError, match=r"item \[1\]: 2\*\*70|item \[1\]: 1180591620717411303424"):
        buf.vec_sum([1, 2**70])
    with pytest.raises(TypeError, match="ndarray of dtype int32"):
        buf.vec_sum(np.array([1], dtype=np.int32))
    assert buf.vec_sum([]) == 0


# ---------------------------------------------------------------------------
# Raw pointers in extern "C" functions


def test_c_string_from_str(ptr):
    assert ptr.c_strlen("héllo") == 6
    assert ptr.c_strlen("") == 0
    assert ptr.c_strlen(None) == 0
    assert ptr.c_strlen(b"abc") == 3
    with pytest.raises(ValueError, match="embedded NUL character at byte 1"):
        ptr.c_strlen("a\0b")
    with pytest.raises(UnicodeEncodeError):
        ptr.c_strlen("\ud800")
    assert ptr.c_strlen("ok") == 2


def test_pointers_from_buffers_addresses_and_none(ptr):
    a = np.zeros(3)
    ptr.c_fill(a, 3, 2.5)
    assert a.tolist() == [2.5, 2.5, 2.5]
    b = np.zeros(4)
    ptr.c_fill(b.ctypes.data, 2, 1.0)  # an int address
    assert b.tolist() == [1.0, 1.0, 0.0, 0.0]
    assert ptr.c_sum(np.array([1, 2, 3], dtype=np.int32), 3) == 6
    assert ptr.c_sum(array.array("i", [5, 6]), 2) == 11
    assert ptr.c_addr(a) == a.ctypes.data  # pointer returns are ints
    assert ptr.c_addr(None) == 0
    assert ptr.c_addr(b"any bytes") != 0  # *const c_void takes any buffer
    assert ptr.c_is_null(None) is True
    assert ptr.c_is_null(bytearray(1)) is False


def test_pointer_errors(ptr):
    ro = np.zeros(2)
    ro.flags.writeable = False
    with pytest.raises(BufferError, match="read-only"):
        ptr.c_fill(ro, 2, 1.0)
    with pytest.raises(TypeError, match=r"ndarray of dtype int64.*i32 needs format"):
        ptr.c_sum(np.arange(3), 3)
    with pytest.raises(OverflowError):
        ptr.c_fill(-1, 0, 1.0)
    with pytest.raises(TypeError, match=r"must be an int address, a writable buffer of u8 items, or None"):
        ptr.c_is_null("text")
    assert ptr.c_sum(np.array([1], dtype=np.int32), 1) == 1


# ---------------------------------------------------------------------------
# The type table and the magic


def test_unsupported_forms_are_skipped_with_a_reason():
    info = parse_cell(
        "pub fn a(x: &[String]) {}\n"
        "pub fn b(x: Option<&[String]>) {}\n"
        "pub fn c(x: &mut [i128]) {}\n"
        "pub fn d() -> &[f64] { &[] }\n"
        "pub fn e(x: Result<i32, String>) {}\n"
        "pub fn ok(x: Vec<(i32, Option<String>)>, y: *const c_char) -> Result<Vec<String>, Box<dyn Error>> { todo!() }\n"
    )
    assert [f.name for f in info.functions] == ["ok"]
    reasons = dict(info.skipped)
    assert set(reasons) == {"a", "b", "c", "d", "e"}
    assert "&[String]" in reasons["a"]
    assert "return type `&[f64]`" in reasons["d"]


def test_types_through_the_magic(ip):
    ip.run_cell_magic("rust", "-q", BUFFER_CELL)
    a = np.array([3, 1, 2], dtype=np.int32)
    ip.user_ns["arr"] = a
    ip.run_cell("sort_i32(arr)")
    assert a.tolist() == [1, 2, 3]
    assert ip.run_line_magic("rust", "total(arr.astype(float)) -> f64") == 6.0


@pytest.mark.parametrize("edition", ["2015", "2024"])
def test_every_conversion_compiles_under_old_and_new_editions(edition):
    src = TEXT_CELL + BUFFER_CELL + POINTER_CELL
    if edition == "2024":
        src = src.replace("#[no_mangle]", "#[unsafe(no_mangle)]")
    with warnings.catch_warnings():
        warnings.simplefilter("error", rc.RustcallWarning)
        m = rc.compile_rust(src, edition=edition, opt_level=0, quiet=True)
    assert m.char_count("世界") == 2
    a = np.array([2, 1], dtype=np.int32)
    m.sort_i32(a)
    assert a.tolist() == [1, 2]
    with pytest.raises(rc.RustError, match="division by zero"):
        m.divide(1.0, 0.0)
    assert m.c_strlen("abc") == 3


BORROWED_ITEMS = """
pub fn borrowed_items(words: Vec<&str>) -> usize { words.len() }
pub fn borrowed_pairs(pairs: Vec<(&str, i64)>) -> usize { pairs.len() }
pub fn owned_items(words: Vec<String>) -> usize { words.len() }
"""


def test_list_items_are_never_borrowed() -> None:
    # Python code run by a later argument could free a list's items during the call.
    with pytest.warns(rc.RustcallWarning) as record:
        m = rc.compile_rust(BORROWED_ITEMS, quiet=True)
    skipped = sorted(str(w.message).split("`")[1] for w in record if "use `Vec<String>`" in str(w.message))
    assert skipped == ["borrowed_items", "borrowed_pairs"]
    assert set(m.functions) == {"owned_items"}
    assert m.owned_items(["a", "b"]) == 2


ALIASING = """
pub fn copy_into(dst: &mut [i64], src: &[i64]) { dst.copy_from_slice(src); }
pub fn add_first(a: &mut [i64], b: &[i64]) -> i64 { let x = b[0]; a[0] = x + 1; b[0] }
"""


def test_a_mutable_slice_must_not_alias_another_argument() -> None:
    np = pytest.importorskip("numpy")
    import array

    m = rc.compile_rust(ALIASING, quiet=True, opt_level=3)
    x = np.arange(4, dtype=np.int64)
    with pytest.raises(ValueError, match=r"shares memory with argument 2 \(b\)"):
        m.add_first(x, x)
    with pytest.raises(ValueError, match="shares memory"):
        m.copy_into(x[:3], x[1:])  # overlapping views of one array
    a = array.array("q", [5, 6])
    with pytest.raises(ValueError, match="shares memory"):
        m.add_first(a, a)
    assert list(x) == [0, 1, 2, 3] and list(a) == [5, 6]  # nothing ran
    y = np.zeros(4, dtype=np.int64)
    m.copy_into(y, x)  # disjoint buffers are fine
    assert list(y) == [0, 1, 2, 3]
    assert m.add_first(y, [7]) == 7 and y[0] == 8  # a copied list never aliases


def test_numpy_bool_scalars_are_bools() -> None:
    # numpy's bool scalar is not a bool subclass, but it is what a bool array's items are.
    m = rc.compile_rust("pub fn neg(b: bool) -> bool { !b }\npub fn count(v: &[bool]) -> usize { v.iter().filter(|x| **x).count() }")
    assert (m.neg(np.True_), m.neg(np.bool_(False))) == (False, True)
    assert m.count([np.True_, False, np.True_]) == 2
    with pytest.raises(TypeError, match=r"must be bool, not numpy\.int64 of dtype int64"):
        m.neg(np.int64(1))
    box, vec = rc.RustBox(np.True_, "bool"), rc.RustVec([False, False], "bool")
    vec[1] = np.True_
    assert (box.value, vec.to_list()) == (True, [False, True])
    with pytest.raises(TypeError, match=r"bool element must be bool, not numpy\.int8"):
        rc.RustBox(np.int8(1), "bool")


def test_empty_buffers_of_wide_items(buf) -> None:
    # An empty array.array's memory pointer need not be aligned: no item is ever read.
    assert buf.total(array.array("d")) == 0.0 and buf.sum_i64(array.array("q")) == 0
    buf.scale(array.array("d"), 2.0)
    assert buf.total(np.empty(0)) == 0.0
