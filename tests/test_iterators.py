"""Iterators (SPEC §12): `impl Iterator<Item = T>` and `Box<dyn Iterator<Item = T>>` returns are lazy Python iterators."""

from __future__ import annotations

import gc
import itertools

import pytest

import rustcall_magic as rc

CELL = r"""
use std::sync::atomic::{AtomicUsize, Ordering};
static MADE: AtomicUsize = AtomicUsize::new(0);
static DROPS: AtomicUsize = AtomicUsize::new(0);
struct Counted(u64);
impl Drop for Counted { fn drop(&mut self) { DROPS.fetch_add(1, Ordering::SeqCst); } }
/// Items produced so far by `naturals`.
pub fn made() -> usize { MADE.load(Ordering::SeqCst) }
/// Iterators dropped so far.
pub fn drops() -> usize { DROPS.load(Ordering::SeqCst) }
/// 0, 1, 2, ... forever.
pub fn naturals() -> impl Iterator<Item = u64> { (0..).inspect(|_| { MADE.fetch_add(1, Ordering::SeqCst); }) }
pub fn words(s: &str) -> Box<dyn Iterator<Item = (usize, String)>> {
    let owned: Vec<String> = s.split_whitespace().map(String::from).collect();
    Box::new(owned.into_iter().enumerate())
}
pub fn guarded(n: u64) -> impl Iterator<Item = u64> {
    let g = Counted(n);
    (0..n).map(move |i| { let g = &g; i + g.0 * 0 })
}
pub fn fails_at(n: u64, at: u64) -> impl Iterator<Item = f64> {
    (0..n).map(move |i| if i == at { panic!("item {} is bad", i) } else { i as f64 / 2.0 })
}
pub fn maybe(n: i32) -> Box<dyn Iterator<Item = Option<i32>> + Send> { Box::new((0..n).map(|i| if i % 2 == 0 { Some(i) } else { None })) }
pub fn big() -> impl Iterator<Item = u128> { vec![1u128 << 100, 3].into_iter() }
pub fn names() -> impl Iterator<Item = &'static str> + Send { ["ada", "grace"].into_iter() }
"""


@pytest.fixture(scope="module")
def m():
    return rc.compile_rust(CELL)


def test_items_convert(m):
    assert list(m.words("to be or")) == [(0, "to"), (1, "be"), (2, "or")]
    assert list(m.maybe(4)) == [0, None, 2, None]
    assert list(m.big()) == [1 << 100, 3]
    assert list(m.names()) == ["ada", "grace"]
    it = m.words("x")
    assert iter(it) is it
    assert type(it).__name__ == "RustIterator"


def test_lazy_infinite_iterator(m):
    before = m.made()
    it = m.naturals()
    assert m.made() == before  # nothing is produced before the first next()
    assert list(itertools.islice(it, 5)) == [0, 1, 2, 3, 4]
    assert m.made() == before + 5
    assert next(it) == 5
    assert [x for x, _ in zip(m.naturals(), range(3), strict=False)] == [0, 1, 2]


def test_exhausted_iterator_stops_and_drops(m):
    drops = m.drops()
    it = m.guarded(3)
    assert m.drops() == drops
    assert list(it) == [0, 1, 2]
    assert m.drops() == drops + 1  # dropped when exhausted
    with pytest.raises(StopIteration):
        next(it)


def test_dropping_python_iterator_drops_rust_one(m):
    drops = m.drops()
    it = m.guarded(100)
    assert next(it) == 0
    del it
    gc.collect()
    assert m.drops() == drops + 1


def test_panic_in_next(m):
    it = m.fails_at(10, 2)
    assert next(it) == 0.0 and next(it) == 0.5
    with pytest.raises(rc.RustPanic, match=r"item 2 is bad") as info:
        next(it)
    assert info.value.file == "cell"
    assert list(it) == []  # a panicked iterator is finished
    assert list(m.fails_at(2, 5)) == [0.0, 0.5]


def test_llvm_cell_returns_iterators(ip):
    pytest.importorskip("llvmlite")
    ip.run_cell_magic("rust_llvm", "", "pub fn evens() -> impl Iterator<Item = i64> { (0..).step_by(2) }")
    assert list(itertools.islice(ip.user_ns["evens"](), 4)) == [0, 2, 4, 6]
