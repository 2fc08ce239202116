"""Cells with crate dependencies: cold build, a second cell against the built set, a fresh-process hit.

Prints, from one run in a private cache: the cold build of a cell using rand
and rayon (cargo compiling the dependencies, then the cell); a second cell
with the same dependencies (only the cell is compiled; median of 3 distinct
cells) against a dependency-free cell (median of 3); and the same first cell
in fresh processes (median of 5 ``compile_rust`` calls, import excluded),
with a ``cargo`` that records whether it was started. Targets (SPEC §10,
issue #12): second cell <= 2x a dependency-free cell; fresh-process hit
<= 5 ms with no cargo process.

Offline: when ``/usr/share/cargo/registry`` (Debian's crate sources) exists,
cargo is pointed at it through a temporary CARGO_HOME with a directory
source replacement; otherwise the user's own cargo configuration is used.
Run: ``python benchmarks/deps.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REGISTRY = Path("/usr/share/cargo/registry")

BLOCK = """//! ```cargo
//! rand = "0.8"
//! rayon = "1"
//! ```
"""

CELL = (
    BLOCK
    + """use rand::{{Rng, SeedableRng}};
use rayon::prelude::*;
pub fn noisy_sum{k}(seed: u64, n: usize) -> f64 {{
    let mut r = rand::rngs::StdRng::seed_from_u64(seed);
    let v: Vec<f64> = (0..n).map(|_| r.gen::<f64>()).collect();
    v.par_iter().sum()
}}
"""
)

PLAIN = """pub fn plain_sum{k}(n: u64) -> u64 {{ (0..n).map(|i| i ^ {k}).sum() }}
"""

HIT_CHILD = """
import json, sys, time
import rustcall_magic as rc
t0 = time.perf_counter()
m = rc.compile_rust(sys.argv[1], quiet=True)
t1 = time.perf_counter()
print(json.dumps({"ms": (t1 - t0) * 1e3, "hit": m.info.cache_hit}))
"""


def _median_build(sources: list[str]) -> tuple[float, float, float]:
    """Median seconds of compiling each source (all misses), of cargo's part, and of the cell's rustc run."""
    import rustcall_magic as rc

    times = []
    cargo = []
    rustc = []
    for src in sources:
        t0 = time.perf_counter()
        m = rc.compile_rust(src, quiet=True)
        times.append(time.perf_counter() - t0)
        assert not m.info.cache_hit
        cargo.append(m.info.dependencies.seconds if m.info.dependencies else 0.0)
        rustc.append(float(m.entry.meta["build_seconds"]))
    return statistics.median(times), statistics.median(cargo), statistics.median(rustc)


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="rustcall-bench-deps-"))
    try:
        run(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # the dependency workspace alone is ~50 MB


def run(tmp: Path) -> None:
    """The measurements, in the private directory *tmp*."""
    os.environ["RUSTCALL_CACHE_DIR"] = str(tmp / "cache")
    if REGISTRY.is_dir():
        home = tmp / "cargo-home"
        home.mkdir()
        (home / "config.toml").write_text(
            f'[source.crates-io]\nreplace-with = "vendored"\n[source.vendored]\ndirectory = "{REGISTRY}"\n'
            "[net]\noffline = true\n"
        )
        os.environ["CARGO_HOME"] = str(home)
        where = f"offline, {REGISTRY} as a directory source"
    else:
        where = "the user's cargo configuration"
    import rustcall_magic as rc

    print(f"crate dependencies (rand + rayon; {where}; cache {tmp / 'cache'})")
    rc.compile_rust(PLAIN.format(k=0), quiet=True)  # toolchain probe and runtime out of the way
    t0 = time.perf_counter()
    cold = rc.compile_rust(CELL.format(k=0), quiet=True, progress=lambda p: None)
    cold_s = time.perf_counter() - t0
    built = cold.info.dependencies
    assert built is not None and cold.noisy_sum0(1, 1000) > 0
    print(
        f"  cold build, cell + dependencies   {cold_s:8.2f} s   (cargo {built.seconds:.2f} s, "
        f"{len(built.compiled)} crates compiled)"
    )
    second, noop, second_rustc = _median_build([CELL.format(k=k) for k in (1, 2, 3)])
    plain, _, plain_rustc = _median_build([PLAIN.format(k=k) for k in (1, 2, 3)])
    print(
        f"  second cell, same dependencies    {second * 1e3:8.0f} ms  (median of 3; cargo finding all fresh: "
        f"{noop * 1e3:.0f} ms; the cell's rustc run, which instantiates rand's and rayon's generics: "
        f"{second_rustc * 1e3:.0f} ms)"
    )
    print(f"  dependency-free cell              {plain * 1e3:8.0f} ms  (median of 3; its rustc run: {plain_rustc * 1e3:.0f} ms)")
    ratio = second / plain
    print(f"  second / dependency-free          {ratio:8.2f} x   target <= 2.00 x  {'ok' if ratio <= 2 else 'MISSED'}")

    marker = tmp / "cargo-started"
    fake = tmp / "cargo"
    fake.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    fake.chmod(0o755)
    env = {**os.environ, "CARGO": str(fake)}
    hits = []
    for _ in range(5):
        out = subprocess.run(
            [sys.executable, "-c", HIT_CHILD, CELL.format(k=0)], capture_output=True, text=True, env=env, check=True
        )
        r = json.loads(out.stdout)
        assert r["hit"], out.stderr
        hits.append(r["ms"])
    hit = statistics.median(hits)
    cargo_runs = 1 if marker.exists() else 0
    print(
        f"  fresh-process hit                 {hit:8.2f} ms  (median of 5; cargo started: {cargo_runs})   "
        f"target <= 5 ms, no cargo  {'ok' if hit <= 5 and not cargo_runs else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
