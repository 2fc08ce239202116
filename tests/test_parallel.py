"""--release-gil: cell functions run in parallel threads; arguments stay locked for the call; errors after re-taking the GIL."""

from __future__ import annotations

import threading

import pytest

import rustcall_magic as rc
from rustcall_magic.errors import RustHandleError, RustPanic

SPIN = """
pub fn spin(n: u64) -> u64 {
    let mut x: u64 = 0;
    for i in 0..n { x = x.wrapping_mul(6364136223846793005).wrapping_add(i ^ (x >> 7)); }
    x
}
pub fn boom(n: u64) -> u64 { if n > 1 { panic!("boom at {n}") } n }
pub fn total(v: &Vec<i64>) -> i64 { v.iter().sum() }
pub fn grow(v: &mut Vec<i64>, k: i64) { v.push(k); }
pub fn peek(a: &std::sync::Arc<i64>) -> i64 { **a }
pub fn greet(name: &str, times: usize) -> String { name.repeat(times) }
pub fn halve(xs: &mut [f64]) { for x in xs.iter_mut() { *x /= 2.0; } }
pub fn wrap(n: i64) -> Box<i64> { Box::new(n) }
pub fn checked(n: i64) -> Result<i64, String> { if n < 0 { Err(format!("negative: {n}")) } else { Ok(n) } }
static INSIDE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static PEAK: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
pub fn meet_reset() { PEAK.store(0, std::sync::atomic::Ordering::SeqCst) }
/// Waits up to `ms` for a second thread to be inside too; returns how many threads were inside at once.
pub fn meet(ms: u64) -> usize {
    use std::sync::atomic::Ordering::SeqCst;
    let now = INSIDE.fetch_add(1, SeqCst) + 1;
    PEAK.fetch_max(now, SeqCst);
    let start = std::time::Instant::now();
    while PEAK.load(SeqCst) < 2 && start.elapsed().as_millis() < ms as u128 {
        std::hint::spin_loop();
    }
    INSIDE.fetch_sub(1, SeqCst);
    PEAK.load(SeqCst)
}
"""


@pytest.fixture(scope="module")
def par():
    return rc.compile_rust(SPIN, quiet=True, release_gil=True)


@pytest.fixture(scope="module")
def held():
    return rc.compile_rust(SPIN, quiet=True)


def test_values_errors_and_panics_are_as_without_release(par, held) -> None:
    assert par.spin(1000) == held.spin(1000)
    assert par.greet("ab", 3) == "ababab"
    assert par.wrap(5).value == 5
    assert par.checked(3) == 3
    with pytest.raises(rc.RustError, match="negative: -1"):
        par.checked(-1)
    with pytest.raises(RustPanic, match="boom at 7"):
        par.boom(7)
    with pytest.raises(OverflowError):
        par.spin(-1)
    assert par.entry.meta["options"]["release_gil"] is True and par.key != held.key


def _in_threads(work, n: int = 2) -> None:
    """Runs work(0), ..., work(n - 1) in n threads and waits for them."""
    ts = [threading.Thread(target=work, args=(k,)) for k in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def _meet(m, ms: int) -> list[int]:
    m.meet_reset()
    seen: list[int] = []
    ts = [threading.Thread(target=lambda: seen.append(m.meet(ms))) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return seen


def test_two_threads_run_in_parallel_only_when_released(par, held) -> None:
    # Evidence of overlap rather than of speed (timings are the benchmark's job:
    # benchmarks/parallel.py): released, both threads are inside the Rust function at once,
    # however loaded the machine; held, the second waits for the GIL until the first returns.
    assert _meet(par, 30_000) == [2, 2]
    assert _meet(held, 200) == [1, 1]


def test_shared_handles_under_threads_stay_consistent(par) -> None:
    v = rc.RustVec([], "i64")
    a = rc.RustArc(7, "i64")
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(10_000):
                assert par.peek(a) == 7
                while True:
                    try:
                        par.grow(v, 1)
                        break
                    except ValueError:  # the other thread holds the &mut borrow: Rust's rule, at run time
                        continue
                par.total(v) if i % 1000 == 0 else None
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    _in_threads(work)
    assert not errors
    assert len(v) == 20_000 and par.total(v) == 20_000
    assert a.strong_count == 1
    a.drop()
    with pytest.raises(RustHandleError):
        par.peek(a)


def test_a_buffer_is_released_after_the_call(par) -> None:
    np = pytest.importorskip("numpy")
    xs = np.full(1000, 8.0)
    par.halve(xs)
    assert xs[0] == 4.0
    xs.resize(10, refcheck=False)  # no export left behind


def test_the_magic_option_and_config(ip) -> None:
    ip.run_cell_magic("rust", "-q --release-gil -n released_mod", "pub fn rel_probe(x: u8) -> u8 { x }")
    assert ip.user_ns["released_mod"].entry.meta["options"]["release_gil"] is True
    ip.run_line_magic("config", "RustMagics.release_gil = True")
    try:
        ip.run_cell_magic("rust", "-q -n config_mod", "pub fn rel_probe2(x: u8) -> u8 { x }")
        assert ip.user_ns["config_mod"].entry.meta["options"]["release_gil"] is True
    finally:
        ip.run_line_magic("config", "RustMagics.release_gil = False")
    assert ip.user_ns["rel_probe2"](3) == 3


ARCS = """
use std::sync::Arc;
pub fn peek_arc(a: &Arc<i64>) -> i64 { **a }
pub fn pass_arc(a: Arc<i64>) -> Arc<i64> { a }
pub fn count_arc(a: &Arc<i64>) -> usize { Arc::strong_count(a) }
"""


def test_arc_clones_used_from_several_threads_with_release_gil() -> None:
    m = rc.compile_rust(ARCS, quiet=True, release_gil=True)
    a = rc.RustArc(41, "i64")
    clones = [a.clone() for _ in range(2)]
    ids = {a.id, *(c.id for c in clones)}
    rows = [r for r in rc.live_handles(include_ended=False) if r.id in ids]
    assert len(rows) == 3 and all(r.kind == "Arc" and r.strong_count == 3 for r in rows)
    totals = [0, 0]
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            mine = clones[k]
            for _ in range(10_000):
                totals[k] += m.peek_arc(mine) + m.peek_arc(a)
                # Moving a clone in and getting it back: a new handle each time, the count unchanged.
                mine = m.pass_arc(mine)
            clones[k] = mine
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    _in_threads(work)
    assert not errors
    assert totals == [2 * 41 * 10_000] * 2
    assert m.count_arc(a) == 3 and a.strong_count == 3
    alive = [r for r in rc.live_handles(include_ended=False) if r.kind == "Arc" and r.preview == "41"]
    assert {r.id for r in alive} == {a.id, *(c.id for c in clones)}
    for c in clones:
        c.drop()
    assert a.strong_count == 1
