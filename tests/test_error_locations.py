"""Errors and warnings point at the user's code: argument-error tracebacks end at the call,
RustcallWarning names the cell and the line of the skipped item."""

from __future__ import annotations

import traceback
import warnings

import pytest

import rustcall_magic as rc

CELL = r"""
pub fn half(x: i64) -> i64 { x / 2 }
pub fn must(ok: bool) -> Result<i64, String> { if ok { Ok(1) } else { Err("no".into()) } }
pub fn boom() -> i64 { panic!("boom") }
"""


@pytest.fixture(scope="module")
def m():
    return rc.compile_rust(CELL)


def _own_frames(exc: BaseException) -> list[traceback.FrameSummary]:
    return [f for f in traceback.extract_tb(exc.__traceback__) if "rustcall_magic" in f.filename]


@pytest.mark.parametrize(
    ("call", "exc"),
    [
        (lambda m: m.half(2**70), OverflowError),
        (lambda m: m.half("x"), TypeError),
        (lambda m: m.half(), TypeError),
        (lambda m: m.half(1, y=2), TypeError),
        (lambda m: m.must(False), rc.RustError),
        (lambda m: m.boom(), rc.RustPanic),
    ],
)
def test_traceback_ends_at_the_call(m, call, exc):
    with pytest.raises(exc) as info:
        call(m)
    assert _own_frames(info.value) == []
    assert traceback.extract_tb(info.value.__traceback__)[-1].name == "<lambda>"


def test_ipython_traceback_shows_no_package_frame(ip, capsys):
    ip.run_cell_magic("rust", "", "pub fn third(x: i64) -> i64 { x / 3 }")
    ip.run_cell("third(2**80)")
    out = capsys.readouterr()
    text = out.out + out.err
    assert "OverflowError" in text
    assert "errors.py" not in text


def test_warning_names_the_cell_and_line(ip):
    cell = "%%rust\npub fn fine() -> i64 { 1 }\n\npub async fn later() {}\n"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = ip.run_cell(cell)
    assert result.success
    found = [w for w in caught if issubclass(w.category, rc.RustcallWarning)]
    assert len(found) == 1
    w = found[0]
    assert "later" in str(w.message)
    assert "IPython" not in w.filename and "rustcall_magic" not in w.filename
    assert w.lineno == 4  # the cell's line of `pub async fn later`


def test_warning_from_the_api_names_the_caller():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rc.compile_rust("pub fn ok2() -> i64 { 2 }\npub async fn later2() {}\n")
    found = [w for w in caught if issubclass(w.category, rc.RustcallWarning)]
    assert len(found) == 1
    assert found[0].filename == __file__
