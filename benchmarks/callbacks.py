"""Callbacks and iterators (SPEC §12): what one callback invocation costs, in one run.

A midpoint-rule integrator of N = 1e6 steps takes its integrand as ``&dyn Fn(f64) -> f64``.
Rows (ns per invocation = total time / N):
- the integrand as a `%%rust` function (called natively through its shim: no Python);
- the same function as a ``fn(f64) -> f64`` pointer parameter;
- the same body inlined into the Rust loop (the floor: no call at all);
- the `%%rust` function wrapped in a Python lambda (a Python call per step, which calls Rust);
- a Python lambda ``lambda x: x * x`` (a Python call per step);
- the integrand as a Python ``math.sin`` builtin;
- the whole integrator in pure Python (the reference a user would otherwise write);
- the `%%rust` cell built with ``--release-gil``, with a lambda (each step takes the GIL back);
- a returned iterator: ``sum(rust_iter)`` vs ``sum(range)``-like Python generator, per item.

Times are the best of a few interleaved rounds; compare within one run.
Run: ``python benchmarks/callbacks.py``.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator

os.environ.setdefault("RUSTCALL_CACHE_DIR", tempfile.mkdtemp(prefix="rustcall-bench-"))

import rustcall_magic as rc

SOURCE = """
pub fn integrate(f: &dyn Fn(f64) -> f64, a: f64, b: f64, n: u64) -> f64 {
    let h = (b - a) / n as f64;
    let mut s = 0.0;
    for i in 0..n { s += f(a + (i as f64 + 0.5) * h); }
    s * h
}
pub fn integrate_ptr(f: fn(f64) -> f64, a: f64, b: f64, n: u64) -> f64 {
    let h = (b - a) / n as f64;
    let mut s = 0.0;
    for i in 0..n { s += f(a + (i as f64 + 0.5) * h); }
    s * h
}
pub fn integrate_square(a: f64, b: f64, n: u64) -> f64 {
    let h = (b - a) / n as f64;
    let mut s = 0.0;
    for i in 0..n { let x = a + (i as f64 + 0.5) * h; s += x * x; }
    s * h
}
pub fn square(x: f64) -> f64 { x * x }
pub fn squares(n: u64) -> impl Iterator<Item = f64> { (0..n).map(|i| (i as f64) * (i as f64)) }
"""

N = 1_000_000
ROUNDS = 3


def py_integrate(f: Callable[[float], float], a: float, b: float, n: int) -> float:
    h = (b - a) / n
    s = 0.0
    for i in range(n):
        s += f(a + (i + 0.5) * h)
    return s * h


def py_squares(n: int) -> Iterator[float]:
    for i in range(n):
        yield float(i) * float(i)


def best_ns(fns: list[Callable[[], object]], n: int) -> list[float]:
    best = [math.inf] * len(fns)
    for _ in range(ROUNDS):
        for k, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            best[k] = min(best[k], (time.perf_counter() - t0) * 1e9 / n)
    return best


def main() -> None:
    m = rc.compile_rust(SOURCE)
    released = rc.compile_rust(SOURCE + "\n// released\n", release_gil=True)
    sq = m.square
    rows = [
        ("%%rust fn as callback (native)", lambda: m.integrate(sq, 0.0, 1.0, N)),
        ("%%rust fn as a `fn` pointer", lambda: m.integrate_ptr(sq, 0.0, 1.0, N)),
        ("body inlined in the Rust loop", lambda: m.integrate_square(0.0, 1.0, N)),
        ("%%rust fn through a lambda", lambda: m.integrate(lambda x: sq(x), 0.0, 1.0, N)),
        ("Python lambda x: x * x", lambda: m.integrate(lambda x: x * x, 0.0, 1.0, N)),
        ("Python builtin math.sin", lambda: m.integrate(math.sin, 0.0, 1.0, N)),
        ("lambda, cell with --release-gil", lambda: released.integrate(lambda x: x * x, 0.0, 1.0, N)),
        ("pure-Python integrator + lambda", lambda: py_integrate(lambda x: x * x, 0.0, 1.0, N)),
    ]
    for _, fn in rows:  # warm up, and check every row computes the same integral
        assert abs(fn() - 1 / 3) < 1e-9 or abs(fn() - (1 - math.cos(1.0))) < 1e-9
    times = best_ns([fn for _, fn in rows], N)
    native = times[0]
    print(f"Callback invocations: midpoint integrator, N = {N:,} steps (ns per step, best of {ROUNDS})")
    print(f"{'integrand':36} {'ns/step':>9} {'vs native':>10}")
    for (name, _), t in zip(rows, times, strict=True):
        print(f"{name:36} {t:9.2f} {t / native:9.1f}x")

    it_rows = [
        ("sum(RustIterator) of f64 squares", lambda: sum(m.squares(N))),
        ("sum(Python generator)", lambda: sum(py_squares(N))),
    ]
    its = best_ns([fn for _, fn in it_rows], N)
    print()
    print(f"Iterators: {N:,} items (ns per item, best of {ROUNDS})")
    print(f"{'iterator':36} {'ns/item':>9} {'vs Rust':>10}")
    for (name, _), t in zip(it_rows, its, strict=True):
        print(f"{name:36} {t:9.2f} {t / its[0]:9.1f}x")


if __name__ == "__main__":
    main()
