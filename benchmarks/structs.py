"""User types (SPEC §8): method calls, field reads and construct+drop of a `%%rust` struct, in one run.

Rows, each beside its reference and the §8 target:
- a method call ``p.norm()`` vs the same body as a free function ``norm_of(p)`` (<= 1.2x);
- a field read ``p.x`` vs a Python ``__slots__`` attribute read (<= 1.5x), and vs
  ``complex.real``, the interpreter's own C descriptor returning a new float (the
  floor for any property of an extension type: slot reads are specialized by the
  interpreter, descriptors are not);
- construct+drop ``Point(1.0, 2.0)`` vs ``RustBox(42, "i64")`` create+drop (<= 2x);
- and the same three operations on a Python class with the same methods.

Times are the best of interleaved rounds (timeit loop included); absolute
times drift on shared machines, compare within one run.
Run: ``python benchmarks/structs.py``.
"""

from __future__ import annotations

import math
import os
import tempfile

os.environ.setdefault("RUSTCALL_CACHE_DIR", tempfile.mkdtemp(prefix="rustcall-bench-"))

from call_overhead import ns_per_call  # this folder: benchmarks run as scripts

import rustcall_magic as rc

SOURCE = """
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point { pub x: f64, pub y: f64 }
impl Point {
    pub fn norm(&self) -> f64 { (self.x * self.x + self.y * self.y).sqrt() }
    pub fn shift(&mut self, dx: f64) { self.x += dx; }
}
pub fn norm_of(p: &Point) -> f64 { (p.x * p.x + p.y * p.y).sqrt() }
pub fn shift_of(p: &mut Point, dx: f64) { p.x += dx; }
"""

ROUNDS = 9


class PyPoint:
    """The reference: a Python class with the same fields and methods."""

    __slots__ = ("x", "y")

    def __init__(self, x: float, y: float) -> None:
        self.x = x
        self.y = y

    def norm(self) -> float:
        return math.sqrt(self.x * self.x + self.y * self.y)

    def shift(self, dx: float) -> None:
        self.x += dx


def main() -> None:
    m = rc.compile_rust(SOURCE, quiet=True)
    rc.RustBox(1, "i64").drop()  # load the ownership runtime before timing
    p, q = m.Point(3.0, 4.0), PyPoint(3.0, 4.0)
    env: dict[str, object] = {
        "p": p,
        "c": complex(3.0, 4.0),
        "q": q,
        "Point": m.Point,
        "PyPoint": PyPoint,
        "norm_of": m.norm_of,
        "shift_of": m.shift_of,
        "RustBox": rc.RustBox,
    }
    cases = [
        ("method p.norm()", "p.norm()"),
        ("free fn norm_of(p)", "norm_of(p)"),
        ("Python q.norm()", "q.norm()"),
        ("method p.shift(0.0)", "p.shift(0.0)"),
        ("free fn shift_of(p, 0.0)", "shift_of(p, 0.0)"),
        ("Python q.shift(0.0)", "q.shift(0.0)"),
        ("field read p.x", "p.x"),
        ("__slots__ read q.x", "q.x"),
        ("builtin descriptor c.real", "c.real"),
        ("field write p.x = 1.5", "p.x = 1.5"),
        ("__slots__ write q.x = 1.5", "q.x = 1.5"),
        ("Point(1.0, 2.0) + drop", "Point(1.0, 2.0)"),
        ('RustBox(42, "i64") + drop', 'RustBox(42, "i64")'),
        ("PyPoint(1.0, 2.0) + drop", "PyPoint(1.0, 2.0)"),
    ]
    empty, *times = ns_per_call(["pass"] + [s for _, s in cases], env, ROUNDS, least=100_000)
    ns = dict(zip([label for label, _ in cases], times, strict=True))

    print(f"User types: ns per operation, best of {ROUNDS} interleaved rounds (empty loop = {empty:.1f} ns)\n")
    print(f"| {'operation':<28} | {'ns/op':>7} |")
    print(f"|{'-' * 30}|{'-' * 9}|")
    for label, _ in cases:
        print(f"| {label:<28} | {ns[label]:7.1f} |")
    checks = [
        ("method call vs free function (&self)", ns["method p.norm()"] / ns["free fn norm_of(p)"], 1.2),
        ("method call vs free function (&mut self)", ns["method p.shift(0.0)"] / ns["free fn shift_of(p, 0.0)"], 1.2),
        ("field read vs __slots__ read", ns["field read p.x"] / ns["__slots__ read q.x"], 1.5),
        ("field read vs complex.real (reference)", ns["field read p.x"] / ns["builtin descriptor c.real"], math.inf),
        ("construct+drop vs RustBox create+drop", ns["Point(1.0, 2.0) + drop"] / ns['RustBox(42, "i64") + drop'], 2.0),
    ]
    print()
    for label, ratio, target in checks:
        if math.isinf(target):
            print(f"{label:<42}: {ratio:5.2f}x")
            continue
        verdict = "ok" if ratio <= target else "MISSED"
        print(f"{label:<42}: {ratio:5.2f}x (target <= {target}x) {verdict}")
    print()
    print(f"vs the Python class: method {ns['method p.norm()'] / ns['Python q.norm()']:.2f}x, "
          f"field read {ns['field read p.x'] / ns['__slots__ read q.x']:.2f}x, "
          f"construct+drop {ns['Point(1.0, 2.0) + drop'] / ns['PyPoint(1.0, 2.0) + drop']:.2f}x")


if __name__ == "__main__":
    main()
