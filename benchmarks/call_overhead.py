"""Per-call cost of `%%rust` functions against Python, operator.add and ctypes; compile and cache-hit times.

Prints one table from one run (ratios matter; absolute times drift on shared
machines). Run: ``python benchmarks/call_overhead.py``.
"""

from __future__ import annotations

import ctypes
import json
import operator
import os
import subprocess
import sys
import tempfile
import timeit

SOURCE = """
pub fn add(a: i64, b: i64) -> i64 { a + b }
pub fn add_f64(a: f64, b: f64) -> f64 { a + b }
#[no_mangle]
pub extern "C" fn c_add(a: i64, b: i64) -> i64 { a + b }
#[no_mangle]
pub extern "C" fn c_add_f64(a: f64, b: f64) -> f64 { a + b }
"""

CHILD = """
import json, sys, time
t0 = time.perf_counter()
import rustcall_magic as rc
t1 = time.perf_counter()
m = rc.compile_rust(sys.argv[1])
t2 = time.perf_counter()
print(json.dumps({"hit": m.info.cache_hit, "import_ms": (t1 - t0) * 1e3, "call_ms": (t2 - t1) * 1e3}))
"""


REPEAT = 15


def ns_per_call(stmts: list[str], env: dict[str, object], repeat: int = REPEAT, least: int = 200_000) -> list[float]:
    """Best-of-*repeat* ns per execution of each of *stmts* (timeit, auto-calibrated, at least *least* a round).

    The statements are timed in interleaved rounds, so drift on a shared machine
    hits them alike and their ratios stay meaningful.
    """
    timers = [timeit.Timer(s, globals=env) for s in stmts]
    numbers = [max(t.autorange()[0], least) for t in timers]
    best = [float("inf")] * len(stmts)
    for _ in range(repeat):
        for i, (t, n) in enumerate(zip(timers, numbers, strict=True)):
            best[i] = min(best[i], t.timeit(n) / n * 1e9)
    return best


def py_add(a, b):
    return a + b


def main() -> None:
    cache = tempfile.mkdtemp(prefix="rustcall-bench-")
    os.environ["RUSTCALL_CACHE_DIR"] = cache
    import rustcall_magic as rc

    m = rc.compile_rust(SOURCE, quiet=True)
    cold_ms = m.info.total_seconds * 1e3
    lib = ctypes.CDLL(str(m.path))
    c_add = lib.c_add
    c_add.argtypes, c_add.restype = [ctypes.c_int64, ctypes.c_int64], ctypes.c_int64
    c_add_f64 = lib.c_add_f64
    c_add_f64.argtypes, c_add_f64.restype = [ctypes.c_double, ctypes.c_double], ctypes.c_double

    env = {
        "rust_add": m.add,
        "rust_add_f64": m.add_f64,
        "py_add": py_add,
        "op_add": operator.add,
        "c_add": c_add,
        "c_add_f64": c_add_f64,
    }
    cases = [
        ("%%rust add", "i64", "rust_add(1, 2)"),
        ("operator.add", "i64", "op_add(1, 2)"),
        ("Python def add", "i64", "py_add(1, 2)"),
        ("ctypes (argtypes)", "i64", "c_add(1, 2)"),
        ("%%rust add_f64", "f64", "rust_add_f64(1.5, 2.5)"),
        ("operator.add", "f64", "op_add(1.5, 2.5)"),
        ("Python def add", "f64", "py_add(1.5, 2.5)"),
        ("ctypes (argtypes)", "f64", "c_add_f64(1.5, 2.5)"),
    ]
    empty, *times = ns_per_call(["pass"] + [stmt for _, _, stmt in cases], env)
    rows = [(label, ty, ns) for (label, ty, _), ns in zip(cases, times, strict=True)]

    print(
        f"Call overhead of add(a, b), best of {REPEAT} interleaved rounds "
        f"(timeit loop included; empty loop = {empty:.1f} ns)\n"
    )
    print(f"| {'path':<20} | {'type':<4} | {'ns/call':>8} | {'vs operator.add':>15} | {'vs %%rust':>9} |")
    print(f"|{'-' * 22}|{'-' * 6}|{'-' * 10}|{'-' * 17}|{'-' * 11}|")
    for ty in ("i64", "f64"):
        group = [r for r in rows if r[1] == ty]
        op = next(r[2] for r in group if r[0] == "operator.add")
        rust = next(r[2] for r in group if r[0].startswith("%%rust"))
        for label, t, ns in group:
            print(f"| {label:<20} | {t:<4} | {ns:8.1f} | {ns / op:14.2f}x | {ns / rust:8.2f}x |")

    # Cache hit in a fresh process: the same cell, the same cache.
    hits = []
    for _ in range(5):
        out = subprocess.run(
            [sys.executable, "-c", CHILD, SOURCE], capture_output=True, text=True, env=dict(os.environ), check=True
        )
        hits.append(json.loads(out.stdout))
    assert all(h["hit"] for h in hits)
    best = min(h["call_ms"] for h in hits)
    imp = min(h["import_ms"] for h in hits)
    print()
    print(f"cold compile (rustc -O2, new cache)         : {cold_ms:8.1f} ms")
    print(f"cache hit in a fresh process, compile_rust(): {best:8.2f} ms (best of 5; target <= 5 ms)")
    print(f"  (import rustcall_magic in that process    : {imp:8.1f} ms)")
    rust_i64 = rows[0][2]
    op_i64 = rows[1][2]
    ct_i64 = rows[3][2]
    print()
    print(f"%%rust add vs operator.add: {rust_i64 / op_i64:.2f}x (target <= 1.0x)")
    print(f"ctypes vs %%rust add      : {ct_i64 / rust_i64:.1f}x slower (target >= 10x)")


if __name__ == "__main__":
    main()
