"""N-d arrays across the boundary (SPEC §12): `rustcall::NdArray` / `rustcall::NdArrayMut`
parameters over any buffer (no copy, any strides) and returned `rustcall::Array` values.

Every kernel result is compared with numpy's on C-order, Fortran-order, transposed and
sliced (negative-step) arrays.
"""

from __future__ import annotations

import array
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import rustcall_magic as rc

ND_CELL = r"""
use rustcall::{Array, NdArray, NdArrayMut};

/// y = A x, row by row (a contiguous row is a slice).
pub fn matvec(a: NdArray<'_, f64>, x: &[f64]) -> Vec<f64> {
    assert_eq!(a.shape()[1], x.len(), "shapes do not match");
    a.rows().map(|row| match row.as_slice() {
        Some(r) => r.iter().zip(x).map(|(p, q)| p * q).sum(),
        None => (0..x.len()).map(|j| row[j] * x[j]).sum(),
    }).collect()
}
pub fn col_sums(a: NdArray<f64>) -> Vec<f64> {
    (0..a.shape()[1]).map(|j| a.column(j).iter().sum()).collect()
}
pub fn total(a: NdArray<f64>) -> f64 { a.iter().sum() }
pub fn row_count(a: NdArray<f64>) -> usize { a.rows().count() }
pub fn layout(a: NdArray<f64>) -> (Vec<usize>, Vec<isize>, usize, bool, bool) {
    (a.shape().to_vec(), a.strides().to_vec(), a.ndim(), a.as_slice().is_some(), a.is_f_contiguous())
}
pub fn at(a: NdArray<'_, i64>, i: usize, j: usize, k: usize) -> i64 { a[[i, j, k]] }
pub fn get2(a: NdArray<'_, i64>, i: usize, j: usize) -> Option<i64> { a.get([i, j]).copied() }
pub fn flat(a: NdArray<'_, i32>) -> Vec<i32> { a.to_vec() }
pub fn count_true(a: NdArray<'_, bool>) -> usize { a.iter().filter(|b| **b).count() }
pub fn opt_total(a: Option<NdArray<'_, f64>>) -> f64 { a.map(|v| v.iter().sum()).unwrap_or(-1.0) }
pub fn add_index(mut a: NdArrayMut<'_, f64>) {
    for i in 0..a.shape()[0] { for j in 0..a.shape()[1] { a[[i, j]] += (10 * i + j) as f64; } }
}
pub fn fill_fast(mut a: NdArrayMut<'_, f32>, v: f32) -> bool {
    match a.as_mut_slice() { Some(s) => { for x in s.iter_mut() { *x = v } true } None => { a.fill(v); false } }
}
pub fn scale_into(src: NdArray<'_, f64>, mut dst: NdArrayMut<'_, f64>, k: f64) {
    for i in 0..src.shape()[0] { for j in 0..src.shape()[1] { dst[[i, j]] = k * src[[i, j]]; } }
}
pub fn smooth(mut a: NdArrayMut<'_, f64>, w: &[f64]) { for (i, x) in a.iter_mut().enumerate() { *x *= w[i % w.len()]; } }
pub fn grid(rows: usize, cols: usize) -> Array<f64> { Array::from_fn([rows, cols], |ix| (10 * ix[0] + ix[1]) as f64) }
pub fn reshaped(v: Vec<i32>, rows: usize) -> Array<i32> { let c = v.len() / rows; Array::from_vec(v, [rows, c]) }
pub fn cube(n: usize) -> Array<u8> { Array::from_fn(vec![n, n, n], |ix| (ix[0] * 100 + ix[1] * 10 + ix[2]) as u8) }
pub fn outer(x: &[f64], y: &[f64]) -> Array<f64> {
    let mut a = Array::zeros([x.len(), y.len()]);
    for i in 0..x.len() { for j in 0..y.len() { a[[i, j]] = x[i] * y[j]; } }
    a
}
pub fn mask(n: usize) -> Array<bool> { Array::from_fn([n, 2], |ix| ix[1] == 1) }
pub fn empty_rows(c: usize) -> Array<f64> { Array::from_vec(Vec::new(), [0, c]) }
"""

C = np.arange(12.0).reshape(3, 4) * 1.5 - 4


def variants(a: np.ndarray) -> dict[str, np.ndarray]:
    """The same values (or a view of them) in every memory layout numpy makes."""
    return {
        "C": np.ascontiguousarray(a),
        "F": np.asfortranarray(a),
        "T of F": np.ascontiguousarray(a.T).T,
        "rows reversed": a[::-1],
        "every other column reversed": np.ascontiguousarray(np.hstack([a, a]))[:, ::-2],
        "sub-block": np.pad(a, 2)[2:-2, 2:-2],
    }


@pytest.fixture(scope="module")
def nd() -> rc.RustModule:
    with warnings.catch_warnings():
        warnings.simplefilter("error", rc.RustcallWarning)
        return rc.compile_rust(ND_CELL)


# ---------------------------------------------------------------------------
# NdArray


@pytest.mark.parametrize("layout", list(variants(C)))
def test_matvec_and_column_sums_match_numpy_in_every_layout(nd, layout):
    a = variants(C)[layout]
    x = np.array([1.0, -2.0, 0.5, 3.0])[: a.shape[1]]
    np.testing.assert_allclose(np.asarray(nd.matvec(a, x)), a @ x)
    np.testing.assert_allclose(np.asarray(nd.col_sums(a)), a.sum(axis=0))
    # The transpose is a view of the same memory with swapped strides.
    y = np.arange(a.shape[0], dtype=float)
    np.testing.assert_allclose(np.asarray(nd.matvec(a.T, y)), a.T @ y)
    np.testing.assert_allclose(np.asarray(nd.col_sums(a.T)), a.T.sum(axis=0))
    assert nd.total(a) == pytest.approx(a.sum())


def test_shape_and_strides_in_elements(nd):
    def layout(a):
        return tuple(list(x) if isinstance(x, rc.RustVec) else x for x in nd.layout(a))

    a = np.zeros((3, 4))
    assert layout(a) == ([3, 4], [4, 1], 2, True, False)
    assert layout(a.T) == ([4, 3], [1, 4], 2, False, True)
    assert layout(a[::-1, ::2]) == ([3, 2], [-4, 2], 2, False, False)
    shape, strides, ndim, contiguous, _ = layout(np.zeros((2, 3, 4))[:, 1])
    assert (shape, strides, ndim, contiguous) == ([2, 4], [12, 1], 2, False)
    assert layout(np.zeros(5))[:2] == ([5], [1])
    assert layout(np.float64(2.0).reshape(()))[:3] == ([], [], 0)
    assert layout(memoryview(array.array("d", [1, 2, 3])))[:2] == ([3], [1])


def test_indexing_three_dimensions_and_bounds(nd):
    a = np.arange(24, dtype=np.int64).reshape(2, 3, 4)
    for idx in [(0, 0, 0), (1, 2, 3), (1, 0, 2)]:
        assert nd.at(a, *idx) == a[idx]
        assert nd.at(a.transpose(2, 0, 1), idx[2], idx[0], idx[1]) == a[idx]
    with pytest.raises(rc.RustPanic, match=r"index \[2, 0, 0\] is out of bounds for an array of shape \[2, 3, 4\]"):
        nd.at(a, 2, 0, 0)
    with pytest.raises(rc.RustPanic, match=r"has 3 dimensions, but the array has 2"):
        nd.at(a[0], 0, 0, 0)
    b = a[0]
    assert nd.get2(b, 2, 3) == 11 and nd.get2(b, 3, 0) is None and nd.get2(b.T, 3, 2) == b[2, 3]


def test_items_in_c_order_and_other_item_types(nd):
    a = np.arange(6, dtype=np.int32).reshape(2, 3)
    assert list(nd.flat(a.T)) == a.T.ravel().tolist()
    assert list(nd.flat(a[:, ::-1])) == a[:, ::-1].ravel().tolist()
    m = np.array([[True, False, True], [False, False, True]])
    assert nd.count_true(m) == 3 and nd.count_true(m.T[::2]) == m.T[::2].sum()
    assert nd.opt_total(None) == -1.0 and nd.opt_total(C) == pytest.approx(C.sum())


def test_views_are_not_copies(nd):
    a = np.zeros((2, 3))
    nd.add_index(a.T.T)  # writes through a view land in the original
    assert a.tolist() == [[0, 1, 2], [10, 11, 12]]


def test_bad_inputs(nd):
    with pytest.raises(TypeError, match=r"col_sums\(\) argument 1 \(a: rustcall::NdArray<f64>\) must be a buffer of f64 items .*not list.*numpy.asarray"):
        nd.col_sums([[1.0, 2.0]])
    with pytest.raises(TypeError, match=r"not numpy.ndarray of dtype int64 \(got a buffer of item format"):
        nd.col_sums(np.ones((2, 2), dtype=np.int64))
    with pytest.raises(TypeError, match=r"must be a buffer of f64 items"):
        nd.col_sums("text")
    with pytest.raises(rc.RustPanic, match=r"rows\(\) needs a 2-D array, this one has shape \[4\]"):
        nd.row_count(np.ones(4))
    with pytest.raises(ValueError, match="not Rust bools"):
        nd.count_true(np.array([[0, 2]], dtype=np.uint8).view(bool))
    assert list(nd.col_sums(np.ones((2, 2)))) == [2.0, 2.0]


# ---------------------------------------------------------------------------
# NdArrayMut


@pytest.mark.parametrize("layout", list(variants(C)))
def test_writes_are_seen_by_numpy_in_every_layout(nd, layout):
    a = variants(C)[layout].copy(order="K") if layout in ("C", "F") else variants(C)[layout]
    before = a.copy()
    nd.add_index(a)
    np.testing.assert_array_equal(a, before + 10 * np.arange(3)[:, None] + np.arange(a.shape[1]))


def test_as_mut_slice_only_when_contiguous(nd):
    a = np.zeros((3, 4), dtype=np.float32)
    assert nd.fill_fast(a, 2.0) is True and (a == 2).all()
    assert nd.fill_fast(a.T, 3.0) is False and (a == 3).all()
    assert nd.fill_fast(a[:, 1], 5.0) is False and a[:, 1].tolist() == [5, 5, 5] and a[0, 0] == 3


def test_read_only_buffers_are_refused(nd):
    a = np.zeros((2, 2))
    a.flags.writeable = False
    with pytest.raises(BufferError, match=r"add_index\(\) argument 1 \(a: rustcall::NdArrayMut<f64>\): the buffer is read-only"):
        nd.add_index(a)
    with pytest.raises(BufferError, match="read-only"):
        nd.add_index(memoryview(bytes(32)).cast("d", (2, 2)))
    assert (a == 0).all()
    assert nd.total(a) == 0.0, "an NdArray parameter takes read-only buffers"


def test_aliasing_a_mutable_view_is_refused(nd):
    a = np.arange(16.0).reshape(4, 4)
    with pytest.raises(ValueError, match=r"scale_into\(\) argument 2 \(dst: rustcall::NdArrayMut<f64>\): shares memory with argument 1 \(src\)"):
        nd.scale_into(a, a, 2.0)
    with pytest.raises(ValueError, match="shares memory"):
        nd.scale_into(a[:2], a.T[:2], 2.0)
    with pytest.raises(ValueError, match=r"argument 1 \(a: rustcall::NdArrayMut<f64>\): shares memory with argument 2 \(w\)"):
        nd.smooth(a, a[0])
    assert a[0, 1] == 1.0, "nothing was written"
    out = np.empty((2, 4))
    nd.scale_into(a[:2], out, 2.0)
    np.testing.assert_array_equal(out, 2 * a[:2])
    nd.scale_into(a[:2], a[2:], 1.0)  # disjoint halves of one array are fine
    np.testing.assert_array_equal(a[2:], a[:2])


def test_broadcast_views_cannot_be_written(nd):
    b = np.broadcast_to(np.zeros(4), (3, 4))
    assert nd.total(b) == 0.0
    c = np.lib.stride_tricks.as_strided(np.zeros(4), (3, 4), (0, 8))
    with pytest.raises(ValueError, match="reaches some elements by several indices"):
        nd.add_index(c)
    windows = np.lib.stride_tricks.as_strided(np.zeros(6), (4, 3), (8, 8))  # sliding windows: rows overlap
    with pytest.raises(ValueError, match="reaches some elements by several indices"):
        nd.add_index(windows)
    assert nd.total(windows) == 0.0, "reading overlapping views is fine"
    ok = np.zeros((4, 6))[::2, ::-3]  # gaps and reversed axes, but no overlap
    nd.add_index(ok)
    assert ok.tolist() == [[0, 1], [10, 11]]


# ---------------------------------------------------------------------------
# Returned Array


def test_returned_array_is_a_numpy_array_without_a_copy(nd):
    a = nd.grid(3, 4)
    assert type(a) is np.ndarray and a.shape == (3, 4) and a.dtype == np.float64
    np.testing.assert_array_equal(a, 10 * np.arange(3)[:, None] + np.arange(4))
    assert a.flags.c_contiguous and a.flags.writeable and not a.flags.owndata
    owner = a.base.obj  # numpy -> memoryview -> the Rust-owned vector
    assert type(owner) is rc.RustVec and owner.shape == (3, 4) and len(owner) == 12
    other = np.asarray(owner)
    assert other.shape == (3, 4) and np.shares_memory(a, other)
    a[1, 2] = -1.0  # a write through one view is seen through the other, and by Rust's vector
    assert other[1, 2] == -1.0 and owner[6] == -1.0
    assert a.ctypes.data == other.ctypes.data


def test_returned_array_shapes_and_item_types(nd):
    r = nd.reshaped(list(range(6)), 2)
    assert r.dtype == np.int32 and r.tolist() == [[0, 1, 2], [3, 4, 5]]
    c = nd.cube(3)
    assert c.shape == (3, 3, 3) and c.dtype == np.uint8 and c[2, 1, 0] == 210
    o = nd.outer([1.0, 2.0], [3.0, 4.0, 5.0])
    np.testing.assert_array_equal(o, np.outer([1, 2], [3, 4, 5]))
    m = nd.mask(2)
    assert m.dtype == bool and m.tolist() == [[False, True], [False, True]]
    assert not m.flags.writeable, "bool views are read-only (a byte other than 0/1 is not a Rust bool)"
    e = nd.empty_rows(3)
    assert e.shape == (0, 3) and e.size == 0
    with pytest.raises(rc.RustPanic, match=r"Array::from_vec: 5 elements cannot have shape \[2, 2\]"):
        nd.reshaped(list(range(5)), 2)


def test_the_array_outlives_the_function_and_frees_once(nd):
    a = nd.grid(200, 300)
    owner = a.base.obj
    with pytest.raises(BufferError):
        owner.drop()  # numpy's view keeps the vector alive
    total = a.sum()
    del a
    assert np.asarray(owner).sum() == total
    owner.drop()
    assert owner.dropped


def test_rustvec_shape_attribute():
    v = rc.RustVec([float(i) for i in range(6)], "f64")
    assert v.shape == (6,)
    v.shape = (2, 3)
    assert v.shape == (2, 3) and np.asarray(v).shape == (2, 3)
    assert memoryview(v).shape == (2, 3) and memoryview(v).strides == (24, 8)
    with pytest.raises(ValueError, match=r"cannot reshape RustVec<f64> #\d+ of length 6 into shape \[4, 2\]"):
        v.shape = (4, 2)
    with pytest.raises(TypeError, match="tuple of ints"):
        v.shape = ("a",)
    v.push(6.0)  # the length no longer matches: 1-D again
    assert v.shape == (7,) and np.asarray(v).shape == (7,)
    w = rc.RustVec([1, 2, 3, 4], "i64")
    w.shape = (2, 2)
    assert w.clone().shape == (2, 2)
    w.shape = None
    assert w.shape == (4,)


def test_without_numpy_an_array_is_a_rustvec_with_a_shape(tmp_path):
    code = (
        "import sys; sys.modules['numpy'] = None\n"
        "import rustcall_magic as rc\n"
        "m = rc.compile_rust('pub fn g() -> rustcall::Array<i16> { rustcall::Array::from_vec((0..6).collect(), [2, 3]) }', quiet=True)\n"
        "v = m.g(); mv = memoryview(v)\n"
        "print(type(v).__name__, v.shape, mv.shape, mv.tolist())\n"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(rc.__file__).resolve().parent.parent) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "RustVec (2, 3) (2, 3) [[0, 1, 2], [3, 4, 5]]"


def test_nd_arrays_through_the_magic_and_the_jit(ip):
    ip.run_cell_magic("rust", "-q", ND_CELL)
    ip.user_ns["arr"] = C
    assert ip.run_cell("list(col_sums(arr.T))").result == C.T.sum(axis=0).tolist()
    jm = rc.jit_rust(ND_CELL, quiet=True)
    np.testing.assert_allclose(np.asarray(jm.matvec(C.T, np.ones(3))), C.T @ np.ones(3))
    g = jm.grid(2, 2)
    assert g.tolist() == [[0, 1], [10, 11]] and type(g.base.obj) is rc.RustVec
    b = np.zeros((2, 2))
    jm.add_index(b.T)
    assert b.T.tolist() == [[0, 1], [10, 11]]


def test_glue_types_by_import_or_path():
    from rustcall_magic.signature import parse_cell

    info = parse_cell("pub fn f(a: NdArray<f64>) {}\n")
    assert "add `use rustcall::NdArray;`" in dict(info.skipped)["f"]
    info = parse_cell(
        "use rustcall::*;\nuse ::rustcall::{NdArrayMut as W};\n"
        "pub fn f(a: NdArray<f64>, b: W<'_, u8>, c: Option<::rustcall::NdArray<'_, i32>>) -> Array<u8> { todo!() }\n"
    )
    assert [f.name for f in info.functions] == ["f"]
    assert [str(p.type) for p in info.functions[0].params] == [
        "rustcall::NdArray<f64>",
        "rustcall::NdArrayMut<u8>",
        "Option<rustcall::NdArray<i32>>",
    ]
    info = parse_cell("pub fn g(a: rustcall::NdArray<String>) {}\npub fn h() -> rustcall::Array<i128> { todo!() }\n")
    assert set(dict(info.skipped)) == {"g", "h"}, "items without a buffer format are refused"
    own = "#[global_allocator]\nstatic A: std::alloc::System = std::alloc::System;\n"
    info = parse_cell(own + "pub fn g() -> rustcall::Array<f64> { todo!() }\npub fn v(a: rustcall::NdArray<f64>) {}\n")
    assert [f.name for f in info.functions] == ["v"] and "global_allocator" in dict(info.skipped)["g"]


def test_views_and_maps_with_the_gil_released():
    cell = (
        "use std::collections::HashMap;\n"
        "pub fn scale(mut a: rustcall::NdArrayMut<f64>, k: HashMap<String, f64>) { let f = k[\"f\"]; for x in a.iter_mut() { *x *= f } }\n"
        "pub fn ones(n: usize) -> rustcall::Array<f32> { rustcall::Array::from_elem([n, 2], 1.0) }\n"
    )
    m = rc.compile_rust(cell, release_gil=True, quiet=True)
    a = np.arange(6.0).reshape(2, 3)
    m.scale(a.T, {"f": 2.0})
    assert a.tolist() == [[0, 2, 4], [6, 8, 10]]
    assert m.ones(2).tolist() == [[1, 1], [1, 1]]
    with pytest.raises(BufferError, match="read-only"):
        m.scale(np.broadcast_to(a, (2, 2, 3)), {"f": 1.0})
