"""Threads and `--release-gil`: 1 vs 2 threads on a CPU-bound cell function, and what releasing costs per call;
what `rustcall::check_interrupt()` costs when nothing is pending; Dask `client.map` throughput of a cell
function against the same function in Python (LocalCluster, 2 worker processes, `rc.dask.register`).

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
pub fn count(n: u64) -> u64 { let mut c = 0u64; for _ in 0..n { c += 1; std::hint::black_box(c); } c }
pub fn count_checked(n: u64) -> u64 {
    let mut c = 0u64;
    for _ in 0..n { rustcall::check_interrupt(); c += 1; std::hint::black_box(c); }
    c
}
pub fn collatz(n: u64) -> u64 {
    let mut total = 0u64;
    for k in 1..=n { let mut x = k; while x != 1 { x = if x % 2 == 0 { x / 2 } else { 3 * x + 1 }; total += 1; } }
    total
}
"""

PY_COLLATZ = """
def collatz(n):
    total = 0
    for k in range(1, n + 1):
        x = k
        while x != 1:
            x = x // 2 if x % 2 == 0 else 3 * x + 1
            total += 1
    return total
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
    rounds = [
        (
            timeit.timeit("h(1, 2)", globals=env, number=1_000_000),
            timeit.timeit("f(1, 2)", globals=env, number=1_000_000),
        )
        for _ in range(9)
    ]
    h = min(r[0] for r in rounds) * 1e3
    f = min(r[1] for r in rounds) * 1e3
    print(f"\nper call, add(1, 2): {h:.1f} ns holding the GIL, {f:.1f} ns releasing it (+{f - h:.1f} ns)")
    loops = 100_000_000
    plain = min(timeit.repeat(lambda: held.count(loops), number=1, repeat=3))
    checked = min(timeit.repeat(lambda: held.count_checked(loops), number=1, repeat=3))
    print(
        f"check_interrupt(), nothing pending: {checked / loops * 1e9:.2f} ns per loop iteration with it, "
        f"{plain / loops * 1e9:.2f} ns without (+{(checked - plain) / loops * 1e9:.2f} ns per check)"
    )
    dask_rows(held)


def dask_rows(cell) -> None:
    try:
        import distributed
    except ImportError:
        print("\nDask: distributed is not installed (pip install 'dask[distributed]')")
        return
    import rustcall_magic as rc

    ns: dict = {}
    exec(PY_COLLATZ, ns)  # a module-level function of __main__ would not unpickle in the workers
    tasks, n = 500, 300
    assert cell.collatz(n) == ns["collatz"](n)
    with (
        distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        rc.dask.register(client)
        print(f"\nDask client.map(collatz, [{n}] * {tasks}), LocalCluster 2 workers x 1 thread, best of 3\n")
        print(f"| {'function':<22} | {'wall':>9} | {'tasks/s':>9} | {'vs Python':>9} |")
        print(f"|{'-' * 24}|{'-' * 11}|{'-' * 11}|{'-' * 11}|")
        times = {}
        for label, fn in (("Python", ns["collatz"]), ("%%rust", cell.collatz)):
            client.gather(client.map(fn, [n] * 10, pure=False))  # warm: the workers load the cell
            best = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                client.gather(client.map(fn, [n] * tasks, pure=False))
                best = min(best, time.perf_counter() - t0)
            times[label] = best
            ratio = times["Python"] / best
            print(f"| {label:<22} | {best * 1e3:6.0f} ms | {tasks / best:9.0f} | {ratio:8.1f}x |")


if __name__ == "__main__":
    main()
