"""Ownership handles: the operations of SPEC §5, in ns/op from one run, beside their targets.

Table 1: RustBox/RustRc/RustArc create+drop and clone+drop, RustVec element
get, push, copy of 1000 elements into a numpy array, and RustVec from a
1000-element numpy array. "drop" is measured both ways Python code does it:
explicitly (``.drop()``) and by the last reference going away (the handle
is then freed by its dealloc). Times are the best of 5 repeats.

Table 2: create+drop with a registry listener attached vs not (SPEC §7: a
live view may slow handle operations by at most 10 %).

Absolute times drift on shared machines; compare within one run.
Run: ``python benchmarks/ownership.py [--listener-only] [--no-view]`` (the last part, the same
create+drop with a shown handles view, is benchmarks/handles_view.py).
"""

from __future__ import annotations

import os
import sys
import tempfile
import timeit
from pathlib import Path
from typing import Any

os.environ.setdefault("RUSTCALL_CACHE_DIR", tempfile.mkdtemp(prefix="rustcall-bench-"))

import numpy as np

import rustcall_magic as rc
from rustcall_magic import handles


def best_ns(stmt: str, ns: dict[str, Any], setup: str = "pass", repeat: int = 5, number: int | None = None) -> float:
    """Best ns per execution of *stmt* over *repeat* runs."""
    t = timeit.Timer(stmt, setup=setup, globals=ns)
    if number is None:
        n, _ = t.autorange()
        number = max(n, 1000)
    return min(t.repeat(repeat=repeat, number=number)) / number * 1e9


def namespace() -> dict[str, Any]:
    return {
        "rc": rc,
        "RustBox": rc.RustBox,
        "RustRc": rc.RustRc,
        "RustArc": rc.RustArc,
        "RustVec": rc.RustVec,
        "copy_to_python": rc.copy_to_python,
        "create_rust_vec": rc.create_rust_vec,
        "r": rc.RustRc(1, "i64"),
        "a": rc.RustArc(1, "i64"),
        "v": rc.RustVec(np.arange(1000.0), "f64"),
        "out": np.zeros(1000),
        "arr": np.arange(1000.0),
        "lst": list(range(1000)),
    }


#: (operation, statement, target ns or None, setup)
OPS: list[tuple[str, str, float | None, str]] = [
    ("RustBox create+drop (.drop())", "RustBox(42, 'i32').drop()", 170, "pass"),
    ("RustBox create+drop (refcount)", "RustBox(42, 'i32')", 170, "pass"),
    ("RustRc create+drop (refcount)", "RustRc(42, 'i64')", None, "pass"),
    ("RustArc create+drop (refcount)", "RustArc(42, 'i64')", None, "pass"),
    ("RustRc clone+drop (.drop())", "r.clone().drop()", 200, "pass"),
    ("RustRc clone+drop (refcount)", "r.clone()", 200, "pass"),
    ("RustArc clone+drop (.drop())", "a.clone().drop()", 200, "pass"),
    ("RustArc clone+drop (refcount)", "a.clone()", 200, "pass"),
    ("RustVec get v[500]", "v[500]", 50, "pass"),
    ("RustVec push", "w.push(1)", 100, "w = RustVec([], 'i64')"),
    ("copy_to_python(v, out), 1000 f64", "copy_to_python(v, out)", 500, "pass"),
    ("create_rust_vec(array of 1000 f64)", "create_rust_vec(arr)", 1000, "pass"),
    ("  reference: list get lst[500]", "lst[500]", None, "pass"),
    ("  reference: list append", "q.append(1)", None, "q = []"),
    ("  reference: object()", "object()", None, "pass"),
]


def table_ops() -> list[tuple[str, float, float | None]]:
    ns = namespace()
    rows = []
    for name, stmt, target, setup in OPS:
        number = 200_000 if "push" in name or "append" in name else None
        rows.append((name, best_ns(stmt, ns, setup=setup, number=number), target))
    return rows


def table_listener() -> list[tuple[str, float, float]]:
    ns = namespace()
    stmts = [
        ("RustBox create+drop (.drop())", "RustBox(42, 'i32').drop()"),
        ("RustBox create+drop (refcount)", "RustBox(42, 'i32')"),
        ("RustVec([1, 2, 3]) create+drop", "RustVec(small, 'i32')"),
    ]
    ns["small"] = [1, 2, 3]
    rows = []
    batches: list[int] = []
    for name, stmt in stmts:
        # Interleave off/on runs so drift on a shared machine hits both alike.
        off, on = [], []
        for _ in range(3):
            off.append(best_ns(stmt, ns, repeat=3, number=200_000))
            handles.add_listener(lambda ev: batches.append(ev.changed), interval=0.1)
            try:
                on.append(best_ns(stmt, ns, repeat=3, number=200_000))
            finally:
                handles.remove_listener(handles.listeners()[0])
        rows.append((name, min(off), min(on)))
    return rows


def main(argv: list[str]) -> None:
    print(f"rustcall_magic ownership benchmark (python {sys.version.split()[0]}, numpy {np.__version__})")
    if "--listener-only" not in argv:
        print()
        print(f"{'operation':40s} {'ns/op':>8s} {'target':>8s}  ok")
        print(f"{'-' * 40} {'-' * 8} {'-' * 8}  --")
        for name, ns_op, target in table_ops():
            t = f"{target:8.0f}" if target else " " * 8
            ok = "" if target is None else ("yes" if ns_op <= target else "NO")
            print(f"{name:40s} {ns_op:8.1f} {t}  {ok}")
    print()
    print(f"{'create+drop, registry listener':40s} {'off ns':>8s} {'on ns':>8s} {'ratio':>6s}")
    print(f"{'-' * 40} {'-' * 8} {'-' * 8} {'-' * 6}")
    for name, off, on in table_listener():
        print(f"{name:40s} {off:8.1f} {on:8.1f} {on / off:6.2f}")
    if "--no-view" not in argv:
        # The same create+drop with a shown handles view (widget model, then a real kernel).
        print()
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import handles_view

        handles_view.main()


if __name__ == "__main__":
    main(sys.argv[1:])
