"""compile_rust / RustCompiler: values, errors, editions, cache hits across processes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import rustcall_magic as rc

SCALARS = r"""
pub fn i8_id(x: i8) -> i8 { x }
pub fn u8_id(x: u8) -> u8 { x }
pub fn i16_id(x: i16) -> i16 { x }
pub fn u16_id(x: u16) -> u16 { x }
pub fn i32_id(x: i32) -> i32 { x }
pub fn u32_id(x: u32) -> u32 { x }
pub fn i64_id(x: i64) -> i64 { x }
pub fn u64_id(x: u64) -> u64 { x }
pub fn isize_id(x: isize) -> isize { x }
pub fn usize_id(x: usize) -> usize { x }
pub fn i128_id(x: i128) -> i128 { x }
pub fn u128_id(x: u128) -> u128 { x }
pub fn f32_id(x: f32) -> f32 { x }
pub fn f64_id(x: f64) -> f64 { x }
pub fn not(x: bool) -> bool { !x }
pub fn upper(c: char) -> char { c.to_ascii_uppercase() }
pub fn next_char(c: char) -> char { char::from_u32(c as u32 + 1).unwrap_or('?') }
pub fn unit(x: i32) { let _ = x; }
pub fn i128_mul(a: i128, b: i128) -> i128 { a * b }
"""

RANGES = {
    "i8": (-(2**7), 2**7 - 1),
    "u8": (0, 2**8 - 1),
    "i16": (-(2**15), 2**15 - 1),
    "u16": (0, 2**16 - 1),
    "i32": (-(2**31), 2**31 - 1),
    "u32": (0, 2**32 - 1),
    "i64": (-(2**63), 2**63 - 1),
    "u64": (0, 2**64 - 1),
    "isize": (-(2**63), 2**63 - 1),
    "usize": (0, 2**64 - 1),
    "i128": (-(2**127), 2**127 - 1),
    "u128": (0, 2**128 - 1),
}


@pytest.fixture(scope="module")
def scalars():
    return rc.compile_rust(SCALARS, quiet=True)


@pytest.mark.parametrize("ty", sorted(RANGES))
def test_integer_ranges_are_checked(scalars, ty: str) -> None:
    f = scalars[f"{ty}_id"]
    lo, hi = RANGES[ty]
    for v in (lo, hi, 0, 1, lo + 1, hi - 1):
        assert f(v) == v
    for v in (lo - 1, hi + 1, hi * 4 + 3):
        with pytest.raises(OverflowError, match=f"out of range for {ty}"):
            f(v)
    with pytest.raises(TypeError):
        f(1.0)
    with pytest.raises(TypeError):
        f("1")
    with pytest.raises(TypeError):
        f(None)


def test_ints_accept_index_objects_and_bools(scalars) -> None:
    np = pytest.importorskip("numpy")
    assert scalars.i64_id(np.int64(-5)) == -5
    assert scalars.u8_id(np.uint8(200)) == 200
    assert scalars.i32_id(True) == 1
    assert scalars.i128_mul(2**62, 2**62) == 2**124
    assert scalars.i128_mul(-(2**100), 3) == -3 * 2**100


def test_floats(scalars) -> None:
    assert scalars.f64_id(1.5) == 1.5
    assert scalars.f64_id(3) == 3.0 and isinstance(scalars.f64_id(3), float)
    assert scalars.f32_id(0.1) == pytest.approx(0.1, rel=1e-7)
    assert scalars.f64_id(float("inf")) == float("inf")
    nan = scalars.f64_id(float("nan"))
    assert nan != nan
    with pytest.raises(OverflowError):
        scalars.f32_id(1e300)
    with pytest.raises(OverflowError):
        scalars.f64_id(10**400)
    with pytest.raises(TypeError):
        scalars.f64_id("1.0")


def test_bool_char_unit(scalars) -> None:
    assert scalars["not"](False) is True
    with pytest.raises(TypeError):
        scalars["not"](1)
    assert scalars.upper("q") == "Q"
    assert scalars.next_char("世") == chr(ord("世") + 1)
    with pytest.raises(ValueError, match="exactly one character"):
        scalars.upper("ab")
    with pytest.raises(ValueError):
        scalars.upper("")
    with pytest.raises(TypeError):
        scalars.upper(65)
    with pytest.raises(ValueError, match="surrogate"):
        scalars.upper("\ud800")
    assert scalars.unit(3) is None


def test_module_object(scalars) -> None:
    assert scalars.functions["i64_id"] == "pub fn i64_id(x: i64) -> i64"
    assert "upper" in dir(scalars) and "upper" in list(scalars)
    assert repr(scalars).startswith("<RustModule ")
    with pytest.raises(AttributeError, match="no function 'nope'"):
        scalars.nope  # noqa: B018
    with pytest.raises(KeyError):
        scalars["nope"]


EDITION_CELL = "pub fn ed() -> i32 { let v: Vec<i32> = (1..=4).collect(); v.iter().sum() }"


@pytest.mark.parametrize("edition", ["2015", "2018", "2021", "2024"])
def test_every_edition_compiles_the_glue(edition: str) -> None:
    m = rc.compile_rust(EDITION_CELL, edition=edition, quiet=True)
    assert m.ed() == 10
    assert m.entry.meta["options"]["edition"] == edition


def test_bad_options_raise_value_error() -> None:
    with pytest.raises(ValueError):
        rc.compile_rust("pub fn a() {}", opt_level=9)
    with pytest.raises(ValueError):
        rc.compile_rust("pub fn a() {}", edition="2019")
    with pytest.raises(TypeError):
        rc.compile_rust(b"pub fn a() {}")  # type: ignore[arg-type]


def test_default_compiler(fresh_cache: Path) -> None:
    c = rc.RustCompiler(optimization_level=1, edition="2018")
    rc.set_default_compiler(c)
    assert rc.get_default_compiler() is c
    m = rc.compile_rust("pub fn dflt() -> u8 { 1 }")
    assert m.entry.meta["options"]["opt_level"] == 1 and m.entry.meta["options"]["edition"] == "2018"
    assert rc.cache_dir() == fresh_cache.absolute()
    with pytest.raises(TypeError):
        rc.set_default_compiler("nope")  # type: ignore[arg-type]


def test_missing_rustc_is_a_toolchain_error(monkeypatch, fresh_cache: Path) -> None:
    monkeypatch.setenv("RUSTC", "/nonexistent/rustc")
    with pytest.raises(rc.RustToolchainError, match="RUSTC"):
        rc.compile_rust("pub fn a() {}")


def test_panic_in_nested_helper_reports_location() -> None:
    m = rc.compile_rust(
        textwrap.dedent(
            """\
            fn helper(x: i32) -> i32 {
                if x > 2 { panic!("too big: {}", x) }
                x
            }
            pub fn outer(x: i32) -> i32 { helper(x) }
            """
        )
    )
    with pytest.raises(rc.RustPanic) as info:
        m.outer(5)
    assert info.value.message == "too big: 5"
    assert (info.value.file, info.value.line) == ("cell", 2)
    assert m.outer(1) == 1


def test_cell_may_use_crate_paths_and_inner_attributes() -> None:
    m = rc.compile_rust(
        "#![allow(unused)]\nconst K: i64 = 7;\npub fn k() -> i64 { crate::K }\nfn unused_helper() {}\n", quiet=False
    )
    assert m.k() == 7
    assert m.warnings == []


RUSTCALL_PATHS = """
mod inner {
    pub fn width() -> usize { ::std::mem::size_of::<*mut rustcall::PyObject>() }
}
pub fn width() -> usize { inner::width() }
"""


@pytest.mark.parametrize("backend", ["rust", "llvm"])
@pytest.mark.parametrize("edition", ["2015", "2021"])
def test_cells_reach_the_glue_library_as_rustcall(backend: str, edition: str) -> None:
    # `rustcall::` resolves in every module of a cell (an extern crate name, not a local module).
    if backend == "rust":
        m = rc.compile_rust(RUSTCALL_PATHS, edition=edition, quiet=True)
    else:
        m = rc.jit_rust(RUSTCALL_PATHS, edition=edition, quiet=True)
    assert m.width() == 8


KEYWORDS = "pub fn axpy(a: f64, x: f64, y: f64) -> f64 { a * x + y }\npub fn nothing() -> i32 { 7 }\n"


@pytest.mark.parametrize("backend", ["rust", "llvm"])
def test_keyword_arguments_bind_by_parameter_name(backend: str) -> None:
    m = rc.compile_rust(KEYWORDS) if backend == "rust" else rc.jit_rust(KEYWORDS, quiet=True)
    assert m.axpy(2.0, 3.0, 1.0) == m.axpy(2.0, y=1.0, x=3.0) == m.axpy(y=1.0, a=2.0, x=3.0) == 7.0
    assert m.nothing() == 7
    for call, message in [
        (lambda: m.axpy(2.0, 3.0, a=1.0), r"axpy\(\) got multiple values for argument 'a'"),
        (lambda: m.axpy(2.0, 3.0, z=1.0), r"unexpected keyword argument 'z'"),
        (lambda: m.axpy(x=3.0), r"missing 2 required arguments: 'a', 'y'"),
        (lambda: m.axpy(1.0, 2.0, 3.0, y=4.0), r"got multiple values for argument 'y'"),
        (lambda: m.axpy(1.0, 2.0, 3.0, 4.0, y=4.0), r"takes 3 arguments but 5 were given"),
        (lambda: m.nothing(a=1), r"nothing\(\) got an unexpected keyword argument 'a'"),
        (lambda: m.axpy(a="s", x=1.0, y=1.0), r"argument 1 \(a: f64\) must be float"),
    ]:
        with pytest.raises(TypeError, match=message) as info:
            call()
        assert "signature: pub fn" in str(info.value) and "_rustcall_" not in str(info.value)


def test_a_panic_in_an_extern_c_function_is_a_rust_panic() -> None:
    # Rust aborts when a panic leaves an extern "C" fn: the build makes it "C-unwind".
    m = rc.compile_rust('#[no_mangle]\npub extern "C" fn cp(x: i32) -> i32 { if x < 0 { panic!("negative") } x }')
    with pytest.raises(rc.RustPanic, match="negative"):
        m.cp(-1)
    assert m.cp(3) == 3


GLUE_REJECTS = """\
#[cfg(test)]
pub fn only_in_tests(a: i32) -> i32 { a }
#[derive(Debug)]
pub struct NoDisplay;
pub fn fails(a: i32) -> Result<i32, NoDisplay> { if a > 0 { Ok(a) } else { Err(NoDisplay) } }
pub fn fine(a: i32) -> i32 { a * 2 }
"""


def test_functions_whose_glue_does_not_compile_are_skipped_not_fatal() -> None:
    with pytest.warns(rc.RustcallWarning) as caught:
        m = rc.compile_rust(GLUE_REJECTS, force=True)
    assert list(m.functions) == ["fine"] and m.fine(4) == 8
    said = {str(w.message) for w in caught}
    assert any("only_in_tests" in w and "#[cfg]" in w for w in said), said
    assert any("`fails`" in w and "Display" in w for w in said), said
    # The cache remembers what was skipped: a hit warns the same way.
    with pytest.warns(rc.RustcallWarning) as again:
        assert rc.compile_rust(GLUE_REJECTS).info.cache_hit
    assert {str(w.message) for w in again} == said


def test_syntax_errors_show_the_cell_alone() -> None:
    with pytest.raises(rc.RustCompileError) as info:
        rc.compile_rust("pub fn broken(a: i64) -> i64 { a +")
    text = str(info.value)
    assert "unclosed delimiter" in text and "glue" not in text
    assert all(d.line == 1 for d in info.value.diagnostics if d.level == "error")


def test_a_cell_error_hides_the_glue_complaints_it_causes() -> None:
    with pytest.raises(rc.RustCompileError) as info:
        rc.compile_rust("pub fn f(a: i32) -> i32 { missing(a) }\n#[cfg(test)]\npub fn g(a: i32) -> i32 { a }")
    assert "missing" in str(info.value) and "glue" not in str(info.value)
    assert [d.line for d in info.value.diagnostics] == [1]


# ---------------------------------------------------------------------------
# Across processes

RUSTC_LOGGER = """#!/bin/sh
echo "$@" >> "{log}"
exec "{rustc}" "$@"
"""

CHILD = """
import json, sys, time
t0 = time.perf_counter()
import rustcall_magic as rc
t1 = time.perf_counter()
m = rc.compile_rust({src!r})
t2 = time.perf_counter()
print(json.dumps({{"hit": m.info.cache_hit, "value": m.add(2, 3), "import_ms": (t1 - t0) * 1e3,
                  "compile_ms": (t2 - t1) * 1e3}}))
"""


def _logging_rustc(tmp_path: Path) -> tuple[Path, Path]:
    import shutil

    log = tmp_path / "rustc.log"
    wrapper = tmp_path / "rustc-logged"
    wrapper.write_text(RUSTC_LOGGER.format(log=log, rustc=shutil.which("rustc")))
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    return wrapper, log


def _child(src: str, env: dict[str, str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD.format(src=src)], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    return json.loads(out.stdout)


def test_fresh_process_hit_starts_no_rustc(tmp_path: Path) -> None:
    wrapper, log = _logging_rustc(tmp_path)
    env = {**os.environ, "RUSTC": str(wrapper), "RUSTCALL_CACHE_DIR": str(tmp_path / "cache")}
    src = "pub fn add(a: i64, b: i64) -> i64 { a + b }"
    first = _child(src, env)
    assert first == {**first, "hit": False, "value": 5}
    runs = log.read_text().splitlines()
    assert sum("--crate-type=cdylib" in r for r in runs) == 1
    log.write_text("")
    second = _child(src, env)
    assert second["hit"] is True and second["value"] == 5
    assert log.read_text() == ""  # neither a build nor a `rustc -vV` probe
