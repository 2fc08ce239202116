"""Generic functions (SPEC §9): the generic call after its instance exists, the monomorphic call,
Python; the first instantiation; a fresh process reusing the instances, in one run.

Rows:
- ``sum_values(1, 2)`` (generic, ``T`` inferred as i64) vs ``sum_values[i64]`` (the instance)
  vs ``add(1, 2)`` (a plain ``pub fn`` with the same body) vs Python ``a + b`` (target:
  generic <= 1.5x monomorphic);
- ``total(a)`` over a 100-element int32 numpy array (``T`` from the dtype) vs
  ``total_i32(a)`` (a plain ``&[i32]`` function) vs ``a.sum()``;
- ``pair(1, 2.5)`` (two type parameters) vs its instance;
- first instantiation of a new tuple (rustc builds ``f::<..>``; a cold build of the cell
  without it beside it), then an already built one from the disk cache in a fresh process
  (with a RUSTC that fails if run).

Times are the best of interleaved rounds (timeit loop included); absolute times drift on
shared machines, compare within one run. Run: ``python benchmarks/generics.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

os.environ.setdefault("RUSTCALL_CACHE_DIR", tempfile.mkdtemp(prefix="rustcall-bench-"))

import numpy as np
from call_overhead import ns_per_call  # this folder: benchmarks run as scripts

import rustcall_magic as rc

SOURCE = """
use std::ops::Add;
pub fn sum_values<T: Add<Output = T>>(a: T, b: T) -> T { a + b }
pub fn add(a: i64, b: i64) -> i64 { a + b }
pub fn pair<T, U>(a: T, b: U) -> T { let _ = b; a }
pub fn total<T: Copy + std::iter::Sum<T>>(xs: &[T]) -> T { xs.iter().copied().sum() }
pub fn total_i32(xs: &[i32]) -> i32 { xs.iter().copied().sum() }
pub fn scale<T: Copy + std::ops::Mul<Output = T>>(x: T, k: T) -> T { x * k }
"""

ROUNDS = 9


def table(title: str, rows: list[tuple[str, float, str]], ref: float) -> None:
    print(f"\n{title}")
    print(f"  {'call':<34} {'ns':>8} {'ratio':>7}  note")
    for name, ns, note in rows:
        print(f"  {name:<34} {ns:8.1f} {ns / ref:6.2f}x  {note}")


def main() -> None:
    m = rc.compile_rust(SOURCE, quiet=True)
    a = np.arange(100, dtype=np.int32)
    env: dict[str, object] = {
        "sum_values": m.sum_values,
        "sum_i64": m.sum_values["i64"],
        "add": m.add,
        "py_add": lambda x, y: x + y,
        "total": m.total,
        "total_inst": m.total[np.int32],
        "total_i32": m.total_i32,
        "pair": m.pair,
        "pair_inst": m.pair["i64", "f64"],
        "a": a,
    }
    # Warm the fast path (the first call of each tuple takes the Python path once).
    m.sum_values(1, 2), m.total(a), m.pair(1, 2.5)
    stmts = [
        "pass",
        "add(1, 2)",
        "sum_i64(1, 2)",
        "sum_values(1, 2)",
        "py_add(1, 2)",
        "total_i32(a)",
        "total_inst(a)",
        "total(a)",
        "a.sum()",
        "pair_inst(1, 2.5)",
        "pair(1, 2.5)",
    ]
    ns = dict(zip(stmts, ns_per_call(stmts, env, ROUNDS), strict=True))
    table(
        "scalar: sum_values<T: Add>(a: T, b: T) -> T, T = i64 inferred",
        [
            ("add(1, 2)  [plain pub fn]", ns["add(1, 2)"], "reference"),
            ("sum_values[i64](1, 2)  [instance]", ns["sum_i64(1, 2)"], "the monomorphic call"),
            ("sum_values(1, 2)  [generic]", ns["sum_values(1, 2)"], "target <= 1.5x the instance"),
            ("python a + b", ns["py_add(1, 2)"], ""),
        ],
        ns["add(1, 2)"],
    )
    loop = ns["pass"]

    def ratio(generic: str, instance: str) -> str:
        with_loop = ns[generic] / ns[instance]
        without = (ns[generic] - loop) / max(ns[instance] - loop, 1e-9)
        return f"{with_loop:.2f}x timeit loop included, {without:.2f}x with the empty loop ({loop:.1f} ns) subtracted"

    print(f"  generic / instance: {ratio('sum_values(1, 2)', 'sum_i64(1, 2)')}")
    table(
        "slice: total<T: Copy + Sum<T>>(xs: &[T]) -> T over 100 int32 (T from the dtype)",
        [
            ("total_i32(a)  [plain pub fn]", ns["total_i32(a)"], "reference"),
            ("total[np.int32](a)  [instance]", ns["total_inst(a)"], "the monomorphic call"),
            ("total(a)  [generic]", ns["total(a)"], "target <= 1.5x the instance"),
            ("a.sum()  [numpy]", ns["a.sum()"], ""),
        ],
        ns["total_i32(a)"],
    )
    print(f"  generic / instance: {ratio('total(a)', 'total_inst(a)')}")
    table(
        "two parameters: pair<T, U>(a: T, b: U) -> T, (i64, f64)",
        [
            ("pair['i64', 'f64'](1, 2.5)  [instance]", ns["pair_inst(1, 2.5)"], "reference"),
            ("pair(1, 2.5)  [generic]", ns["pair(1, 2.5)"], "target <= 1.5x"),
        ],
        ns["pair_inst(1, 2.5)"],
    )
    print(f"  generic / instance: {ratio('pair(1, 2.5)', 'pair_inst(1, 2.5)')}")

    # First instantiation: rustc builds the cell with one monomorphic export of scale::<..>.
    t0 = time.perf_counter()
    m.scale(np.float32(2), np.float32(3))
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    m.scale(np.int16(2), np.int16(3))
    second_type = time.perf_counter() - t0
    t0 = time.perf_counter()
    m.scale(np.float32(4), np.float32(5))
    again = time.perf_counter() - t0
    cold = rc.compile_rust(SOURCE + "\n// cold build of the whole cell, for scale\n", quiet=True).info
    print("\nfirst instantiation")
    print(f"  scale(np.float32, np.float32) first call  {first * 1e3:8.1f} ms  (rustc build of scale::<f32>)")
    print(f"  scale(np.int16, np.int16) first call      {second_type * 1e3:8.1f} ms  (another tuple: another build)")
    print(f"  scale(np.float32, ...) again               {again * 1e6:8.1f} us  (in-process table)")
    print(f"  cold build of the whole cell              {cold.compile_seconds * 1e3:8.1f} ms  (reference)")

    # A fresh process: every instance comes from the disk cache. RUSTC is a wrapper logging each
    # run: the child may probe the toolchain (rustc -vV) but must build nothing.
    tmp = tempfile.mkdtemp(prefix="rustcall-bench-")
    log, wrapper = os.path.join(tmp, "rustc.log"), os.path.join(tmp, "rustc-logged")
    with open(wrapper, "w") as f:
        f.write(f'#!/bin/sh\necho "$@" >> "{log}"\nexec "{shutil.which("rustc")}" "$@"\n')
    os.chmod(wrapper, 0o755)
    child = textwrap.dedent(
        f"""
        import time
        import numpy as np, rustcall_magic as rc
        t1 = time.perf_counter()
        m = rc.compile_rust({SOURCE!r}, quiet=True)
        t2 = time.perf_counter()
        assert m.scale(np.float32(2), np.float32(3)) == 6.0
        t3 = time.perf_counter()
        assert m.total(np.arange(10, dtype=np.int32)) == 45
        t4 = time.perf_counter()
        print(f"{{(t2 - t1) * 1e3:.2f}} {{(t3 - t2) * 1e3:.2f}} {{(t4 - t3) * 1e3:.2f}}")
        """
    )
    env = {**os.environ, "RUSTC": wrapper}
    for _ in range(2):  # the first child also learns the wrapper's toolchain identity (rustc -vV)
        out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, env=env, check=True)
    cell_ms, inst_ms, inst2_ms = (float(x) for x in out.stdout.split())
    with open(log) as f:
        builds = sum("--crate-type=cdylib" in line for line in f)
    print("\nfresh process, instances from the disk cache (second of two children)")
    print(f"  cell module (cache hit)                   {cell_ms:8.2f} ms")
    print(f"  first scale(np.float32, ...) call         {inst_ms:8.2f} ms  (loads scale<f32>)")
    print(f"  first total(int32 array) call             {inst2_ms:8.2f} ms  (loads total<i32>)")
    print(f"  rustc builds in the children: {builds}")


if __name__ == "__main__":
    main()
