"""register_function: an existing C-ABI library called with Rust type names, also via %rust NAME(...)."""

from __future__ import annotations

import numpy as np
import pytest

import rustcall_magic as rc

# Compiled once; its artifact doubles as "an existing C-ABI library" (its
# #[no_mangle] extern "C" symbols are exported).
LIBRARY_CELL = r"""
use std::os::raw::c_char;
#[no_mangle]
pub extern "C" fn ext_add(a: i32, b: i32) -> i32 { a.wrapping_add(b) }
#[no_mangle]
pub extern "C" fn ext_mean(p: *const f64, n: usize) -> f64 {
    if n == 0 { return 0.0; }
    (0..n).map(|i| unsafe { *p.add(i) }).sum::<f64>() / n as f64
}
#[no_mangle]
pub extern "C" fn ext_scale(p: *mut f64, n: usize, k: f64) { for i in 0..n { unsafe { *p.add(i) *= k } } }
#[no_mangle]
pub extern "C" fn ext_strlen(s: *const c_char) -> usize {
    if s.is_null() { return 0; }
    unsafe { std::ffi::CStr::from_ptr(s).to_bytes().len() }
}
#[no_mangle]
pub extern "C" fn ext_is_even(x: u64) -> bool { x % 2 == 0 }
#[no_mangle]
pub extern "C" fn ext_echo(p: *const f64) -> *const f64 { p }
"""


@pytest.fixture(scope="module")
def lib() -> str:
    return str(rc.compile_rust(LIBRARY_CELL, quiet=True).path)


def test_scalars_and_range_checks(lib):
    add = rc.register_function("ext_add", lib, "i32", ["i32", "i32"])
    assert add(2, 3) == 5
    assert add(-(2**31), 0) == -(2**31)
    with pytest.raises(OverflowError, match=r"ext_add\(\) argument 1 \(arg0: i32\): 2147483648 is out of range for i32"):
        add(2**31, 0)
    with pytest.raises(TypeError, match="must be int, not str"):
        add("1", 2)
    with pytest.raises(TypeError, match="takes 2 arguments but 1 was given"):
        add(1)
    assert add(1, 1) == 2
    even = rc.register_function("ext_is_even", lib, "bool", ["u64"])
    assert even(2**64 - 2) is True
    with pytest.raises(OverflowError):
        even(-1)
    assert "pub extern \"C\" fn ext_add(arg0: i32, arg1: i32) -> i32" in add.__doc__


def test_pointers_buffers_and_strings(lib):
    mean = rc.register_function("ext_mean", lib, "f64", ["*const f64", "usize"])
    scale = rc.register_function("ext_scale", lib, "()", ["*mut f64", "usize", "f64"])
    strlen = rc.register_function("ext_strlen", lib, "usize", ["*const c_char"])
    echo = rc.register_function("ext_echo", lib, "*const f64", ["*const f64"])
    a = np.array([1.0, 2.0, 6.0])
    assert mean(a, 3) == 3.0
    assert mean(a.ctypes.data, 2) == 1.5
    assert scale(a, 3, 2.0) is None
    assert a.tolist() == [2.0, 4.0, 12.0]  # written in place
    ro = np.arange(4.0)
    ro.flags.writeable = False
    assert mean(ro, 4) == 1.5
    assert strlen("世界") == 6
    assert strlen(None) == 0
    assert echo(None) == 0
    assert echo(a) == a.ctypes.data
    with pytest.raises(BufferError, match="read-only"):
        scale(ro, 4, 1.0)
    with pytest.raises(ValueError, match="embedded NUL"):
        strlen("a\0b")
    with pytest.raises(TypeError, match="f64 needs format 'd'"):
        mean(np.arange(3), 3)
    with pytest.raises(BufferError, match="not C-contiguous"):
        mean(np.arange(6.0)[::2], 3)
    with pytest.raises(TypeError, match="must be an int address, a buffer of f64 items, or None, not list"):
        mean([1.0], 1)
    assert mean(np.ones(2), 2) == 1.0  # still working after the errors


def test_registration_errors(lib):
    with pytest.raises(ValueError, match="has no symbol 'no_such_fn'"):
        rc.register_function("no_such_fn", lib, "i32", [])
    with pytest.raises(ValueError, match="return type `String` is not supported"):
        rc.register_function("ext_add", lib, "String", ["i32", "i32"])
    with pytest.raises(ValueError, match="not a Rust type"):
        rc.register_function("ext_add", lib, "i32", ["i32 +"])
    with pytest.raises(OSError, match="cannot load library"):
        rc.register_function("ext_add", "/nonexistent/libnothing.so", "i32", ["i32", "i32"])


def test_registered_function_through_the_magic(ip, lib):
    rc.register_function("ext_add", lib, "i32", ["i32", "i32"])
    assert ip.run_line_magic("rust", "ext_add(40, 2)") == 42
    assert ip.run_line_magic("rust", "ext_add(1, 2) -> i32") == 3
    with pytest.raises(TypeError, match="declared to return i32, not i64"):
        ip.run_line_magic("rust", "ext_add(1, 2) -> i64")
