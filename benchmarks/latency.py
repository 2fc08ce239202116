"""Edit-to-result latency: a cold `%%rust` / `%%rust_llvm` build of a one-function cell against a bare rustc.

Every build is of a cell never built before (a new constant in the body), in a
cache that already holds the toolchain probe and the glue library, as when a
user edits a cell; the first build of all (which also compiles the glue library,
once per toolchain) is shown on its own line. The bare baseline is
``rustc --crate-type=cdylib -C opt-level=2`` of the same function as
``extern "C"``. Medians of 5 alternating rounds, one run; targets (SPEC §13):
`%%rust` <= 2x bare, `%%rust_llvm` <= 3x bare, fresh-process cache hit <= 1 ms.
Run: ``python benchmarks/latency.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROUNDS = 5

CELL = "pub fn add(a: i64, b: i64) -> i64 {{ a + b + {k} }}\n"
BARE = '#[no_mangle]\npub extern "C" fn add(a: i64, b: i64) -> i64 {{ a + b + {k} }}\n'

HIT = """
import json, sys, time
t0 = time.perf_counter()
import rustcall_magic as rc
t1 = time.perf_counter()
m = rc.compile_rust(sys.argv[1])
t2 = time.perf_counter()
m.add(1, 2)
t3 = time.perf_counter()
print(json.dumps({"hit": m.info.cache_hit, "import_ms": (t1 - t0) * 1e3, "hit_ms": (t2 - t1) * 1e3,
                  "first_call_ms": (t3 - t2) * 1e3}))
"""


def bare_rustc(work: Path, k: int) -> float:
    src = work / f"bare{k}.rs"
    src.write_text(BARE.format(k=k))
    t0 = time.perf_counter()
    subprocess.run(
        ["rustc", "--crate-type=cdylib", "--edition=2021", "-C", "opt-level=2", "-o", str(work / f"libbare{k}.so"), str(src)],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="also write the measurements as JSON to this file")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rustcall-latency-"))
    os.environ["RUSTCALL_CACHE_DIR"] = str(work / "cache")
    import rustcall_magic as rc

    t0 = time.perf_counter()
    first = rc.compile_rust(CELL.format(k=1000), quiet=True)
    first_s = time.perf_counter() - t0
    assert first.add(1, 2) == 1003
    bare, rust, llvm = [], [], []
    for r in range(ROUNDS):
        bare.append(bare_rustc(work, r))
        t0 = time.perf_counter()
        m = rc.compile_rust(CELL.format(k=r), quiet=True)
        rust.append(time.perf_counter() - t0)
        assert not m.info.cache_hit and m.add(1, 2) == 3 + r
        t0 = time.perf_counter()
        j = rc.jit_rust(CELL.format(k=100 + r), quiet=True)
        llvm.append(time.perf_counter() - t0)
        assert j.add(1, 2) == 103 + r

    hits = []
    for _ in range(ROUNDS):
        out = subprocess.run(
            [sys.executable, "-c", HIT, CELL.format(k=1000)], capture_output=True, text=True, check=True
        )
        hits.append(json.loads(out.stdout))
    assert all(h["hit"] for h in hits)

    b = statistics.median(bare)
    rows = [
        ("bare rustc --crate-type=cdylib -O2", b, None),
        ("%%rust, new cell (glue library cached)", statistics.median(rust), 2.0),
        ("%%rust_llvm, new cell", statistics.median(llvm), 3.0),
    ]
    print(f"Cold build of a one-function cell, median of {ROUNDS} alternating rounds (one run)\n")
    print(f"| {'build':<42} | {'ms':>8} | {'vs bare':>8} | {'target':>7} |")
    print(f"|{'-' * 44}|{'-' * 10}|{'-' * 10}|{'-' * 9}|")
    for label, s, target in rows:
        tgt = f"<= {target:.0f}x" if target else ""
        print(f"| {label:<42} | {s * 1e3:8.1f} | {s / b:7.2f}x | {tgt:>7} |")
    print()
    print(f"first %%rust build in a new cache (also compiles the glue library once): {first_s * 1e3:.0f} ms")
    print(
        "fresh process, cache hit: compile_rust() "
        f"{min(h['hit_ms'] for h in hits):.2f} ms best / {statistics.median(h['hit_ms'] for h in hits):.2f} ms median "
        f"(target <= 1 ms); import rustcall_magic {statistics.median(h['import_ms'] for h in hits):.1f} ms; "
        f"first call {statistics.median(h['first_call_ms'] for h in hits) * 1e3:.0f} us"
    )
    if args.json:
        out = {
            "builds_ms": {label: s * 1e3 for label, s, _ in rows},
            "first_build_ms": first_s * 1e3,
            "hit_ms_best": min(h["hit_ms"] for h in hits),
            "hit_ms_median": statistics.median(h["hit_ms"] for h in hits),
        }
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
