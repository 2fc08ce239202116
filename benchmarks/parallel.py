"""Threads and `--release-gil`: 1 vs 2 threads on a CPU-bound cell function, and what releasing costs per call.

One run; wall-clock ratios (2 threads doing twice the work, against 1 thread:
1.0x = no parallelism, 0.5x = perfect on 2 cores). Run: ``python benchmarks/parallel.py``.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
import timeit

CELL = """
pub fn spin(n: u64) -> u64 {
    let mut x: u64 = 0;
    for i in 0..n { x = x.wrapping_mul(6364136223846793005).wrapping_add(i ^ (x >> 7)); }
    x
}
pub fn add(a: i64, b: i64) -> i64 { a + b }
"""

N = 50_000_000


def wall(fn, threads: int) -> float:
    ts = [threading.Thread(target=fn, args=(N,)) for _ in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return time.perf_counter() - t0


def main() -> None:
    os.environ["RUSTCALL_CACHE_DIR"] = tempfile.mkdtemp(prefix="rustcall-bench-par-")
    import rustcall_magic as rc

    held = rc.compile_rust(CELL, quiet=True)
    free = rc.compile_rust(CELL, quiet=True, release_gil=True)
    print(f"spin({N:,}), best of 3, 2 threads doing twice the work of 1\n")
    print(f"| {'build':<22} | {'1 thread':>10} | {'2 threads':>10} | {'2 / (2 x 1)':>11} |")
    print(f"|{'-' * 24}|{'-' * 12}|{'-' * 12}|{'-' * 13}|")
    for label, m in (("%%rust", held), ("%%rust --release-gil", free)):
        one = min(wall(m.spin, 1) for _ in range(3))
        two = min(wall(m.spin, 2) for _ in range(3))
        print(f"| {label:<22} | {one * 1e3:7.0f} ms | {two * 1e3:7.0f} ms | {two / (2 * one):10.2f}x |")
    env = {"h": held.add, "f": free.add}
    rounds = [(timeit.timeit("h(1, 2)", globals=env, number=1_000_000), timeit.timeit("f(1, 2)", globals=env, number=1_000_000)) for _ in range(9)]
    h = min(r[0] for r in rounds) * 1e3
    f = min(r[1] for r in rounds) * 1e3
    print(f"\nper call, add(1, 2): {h:.1f} ns holding the GIL, {f:.1f} ns releasing it (+{f - h:.1f} ns)")


if __name__ == "__main__":
    main()
