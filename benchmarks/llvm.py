"""`%rust_llvm` against `%%rust` and plain Python: the reference guide's two tables, plus a vectorizable kernel.

Prints, from one run: "Basic Operations" (i32/i64/f64 add and multiply) and
"Complex Computations" (recursive fib(30), sum over 1..1000) as ns/call and
ratios to Python; then one vectorizable loop JIT-compiled under each preset
and with vectorization off. `%%rust` is ``compile_rust`` (rustc -O2) and
`%rust_llvm` is ``jit_rust`` (llvmlite, default config O3) — the functions the
magics bind. Absolute times drift on shared machines; compare ratios.
Run: ``python benchmarks/llvm.py``.
"""

from __future__ import annotations

import os
import tempfile
import timeit
from collections.abc import Callable
from typing import Any

SOURCE = """
pub fn add_i32(a: i32, b: i32) -> i32 { a.wrapping_add(b) }
pub fn add_i64(a: i64, b: i64) -> i64 { a.wrapping_add(b) }
pub fn add_f64(a: f64, b: f64) -> f64 { a + b }
pub fn mul_i32(a: i32, b: i32) -> i32 { a.wrapping_mul(b) }
pub fn mul_i64(a: i64, b: i64) -> i64 { a.wrapping_mul(b) }
pub fn mul_f64(a: f64, b: f64) -> f64 { a * b }
fn fib_rec(n: u32) -> u64 { if n < 2 { n as u64 } else { fib_rec(n - 1) + fib_rec(n - 2) } }
pub fn fib(n: u32) -> u64 { fib_rec(n) }
pub fn sum_range(n: i64) -> i64 { (1..=n).sum() }
"""

KERNEL = """
pub fn xor_mix(n: u32, k: u32) -> u32 {
    let mut s: u32 = 0;
    let mut i: u32 = 0;
    while i < n {
        s = s.wrapping_add(i.wrapping_mul(k) ^ (i >> 3));
        i += 1;
    }
    s
}
"""


def py_add(a: Any, b: Any) -> Any:
    return a + b


def py_mul(a: Any, b: Any) -> Any:
    return a * b


def py_fib(n: int) -> int:
    return n if n < 2 else py_fib(n - 1) + py_fib(n - 2)


def py_sum_range(n: int) -> int:
    s = 0
    for i in range(1, n + 1):
        s += i
    return s


def py_xor_mix(n: int, k: int) -> int:
    s = 0
    for i in range(n):
        s = (s + (((i * k) & 0xFFFFFFFF) ^ (i >> 3))) & 0xFFFFFFFF
    return s


def ns_per_call(fn: Callable[..., Any], args: tuple[Any, ...], repeat: int = 5) -> float:
    """Best-of-*repeat* ns per call of ``fn(*args)`` (timeit, auto-calibrated; the loop is included)."""
    t = timeit.Timer("fn(*args)", globals={"fn": fn, "args": args})
    number, _ = t.autorange()
    return min(t.repeat(repeat=repeat, number=number)) / number * 1e9


def fmt_ns(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e4:
        return f"{ns / 1e3:.1f} us"
    return f"{ns:.1f} ns"


def table(title: str, rows: list[tuple[str, float, float, float]]) -> None:
    print(f"### {title}\n")
    print(
        f"| {'Operation':<22} | {'Python native':>13} | {'%%rust':>9} | {'%rust_llvm':>10} "
        f"| {'%%rust':>7} | {'%rust_llvm':>10} | {'llvm / rust':>11} |"
    )
    print(f"|{'-' * 24}|{'-' * 15}|{'-' * 11}|{'-' * 12}|{'-' * 9}|{'-' * 12}|{'-' * 13}|")
    for label, py, rust, llvm in rows:
        print(
            f"| {label:<22} | {fmt_ns(py):>13} | {fmt_ns(rust):>9} | {fmt_ns(llvm):>10} "
            f"| {py / rust:6.2f}x | {py / llvm:9.2f}x | {llvm / rust:10.2f}x |"
        )
    print(
        "(ratio columns: Python time / that path's time, higher is faster; last column: per-call cost, llvm vs rust)\n"
    )


def main() -> None:
    os.environ["RUSTCALL_CACHE_DIR"] = tempfile.mkdtemp(prefix="rustcall-bench-llvm-")
    import rustcall_magic as rc

    native = rc.compile_rust(SOURCE, quiet=True)
    jit = rc.jit_rust(SOURCE, quiet=True)
    print(
        f"%%rust build: {native.info.total_seconds * 1e3:.0f} ms; %rust_llvm build: rustc "
        f"{jit.info.rustc_seconds * 1e3:.0f} ms + optimize {jit.info.optimize_seconds * 1e3:.0f} ms + codegen "
        f"{jit.info.codegen_seconds * 1e3:.0f} ms + link {jit.info.link_seconds * 1e3:.1f} ms ({jit.config.describe()})\n"
    )

    basic = [
        ("i32 addition", py_add, "add_i32", (12345, 678)),
        ("i64 addition", py_add, "add_i64", (1 << 40, 12345)),
        ("f64 addition", py_add, "add_f64", (1.5, 2.25)),
        ("i32 multiplication", py_mul, "mul_i32", (1234, 567)),
        ("i64 multiplication", py_mul, "mul_i64", (1 << 30, 12345)),
        ("f64 multiplication", py_mul, "mul_f64", (1.5, 2.25)),
    ]
    rows = []
    for label, py, name, args in basic:
        assert native[name](*args) == jit[name](*args) == py(*args)
        rows.append((label, ns_per_call(py, args), ns_per_call(native[name], args), ns_per_call(jit[name], args)))
    table("Basic Operations", rows)

    complex_rows = []
    for label, py, name, args in [
        ("Fibonacci (n=30)", py_fib, "fib", (30,)),
        ("Sum Range (1..1000)", py_sum_range, "sum_range", (1000,)),
    ]:
        assert native[name](*args) == jit[name](*args) == py(*args)
        repeat = 3 if name == "fib" else 5
        complex_rows.append(
            (
                label,
                ns_per_call(py, args, repeat),
                ns_per_call(native[name], args, repeat),
                ns_per_call(jit[name], args, repeat),
            )
        )
    table("Complex Computations", complex_rows)

    n, k = 100_000, 2654435761 & 0xFFFFFFFF
    expected = py_xor_mix(n, k)
    base = rc.compile_rust(KERNEL, quiet=True)
    rust_ns = ns_per_call(base.xor_mix, (n, k))
    variants = [
        ("speed (O3)", rc.optimize_for_speed),
        ("balanced (O2)", rc.optimize_balanced),
        ("size (O2, minsize)", rc.optimize_for_size),
        ("speed, no vectorize", lambda m: m.optimize(rc.OptimizationConfig(3, enable_vectorization=False))),
        ("speed, no LICM", lambda m: m.optimize(rc.OptimizationConfig(3, enable_licm=False))),
    ]
    print(f"### Vectorizable kernel: xor_mix(n={n:,}) (a u32 loop the loop vectorizer widens)\n")
    print(
        f"| {'config':<22} | {'IR instructions':>15} | {'asm packed ops':>14} | {'time/call':>10} | {'vs %%rust -O2':>13} |"
    )
    print(f"|{'-' * 24}|{'-' * 17}|{'-' * 16}|{'-' * 12}|{'-' * 15}|")
    import re

    for label, opt in variants:
        m = opt(rc.get_llvm_module(KERNEL, quiet=True))
        packed = len(re.findall(r"\bv?p(?:add|xor|mul|srl|sll)\w*\b", m.function_asm("xor_mix")))
        j = m.jit()
        assert j.xor_mix(n, k) == expected
        ns = ns_per_call(j.xor_mix, (n, k))
        print(
            f"| {label:<22} | {m.stats()['instructions']:>15} | {packed:>14} | {fmt_ns(ns):>10} | {rust_ns / ns:12.2f}x |"
        )
    print(f"| {'%%rust -O2 (rustc)':<22} | {'':>15} | {'':>14} | {fmt_ns(rust_ns):>10} | {1.0:12.2f}x |")
    print(
        "\n(IR instructions: whole module after the pipeline; packed ops: SIMD integer instructions in xor_mix's code)"
    )


if __name__ == "__main__":
    main()
