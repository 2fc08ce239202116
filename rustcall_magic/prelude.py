"""The fixed part of the generated glue, compiled once per toolchain as a Rust library crate.

Every cell crate needs the glue's fixed part (C-API declarations, the type
table's conversions, keyword binding, the handle ABI, user types): about 3,000
lines that rustc would type-check, borrow-check and code-generate again for
each cell, four fifths of a cold build. Built once as the rlib
``rustcall_glue`` and linked with ``--extern``, a cell build only compiles the
cell and its wrappers; what a wrapper's fast path calls is ``#[inline]`` or
generic, so it is still instantiated and optimized inside the cell. The JIT
loads the same crate built as a dylib into the process once, so the IR it
optimizes holds only the cell.

The library is an entry of a kind of :data:`ENTRY_KINDS`, keyed by its sources,
flags, toolchain and Python ABI, in the support cache ``lib/`` inside the
compile cache: the same private, checked, atomically published storage as cell
entries (a library linked into cells is code we run), kept apart from the cells'
entries so that listings, ``clear`` and the size cap deal in cells only.
Several processes build it once (the per-key lock).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ._version import __version__
from .build import BuildOptions, build_library, python_cfgs
from .cache import Cache, Entry, make_key
from .codegen import PRELUDE_CRATE, prelude_library_source
from .toolchain import Toolchain, host_cpu_identity, python_abi_tag

#: Entry kind recorded in the metadata of the cached library, by crate type.
ENTRY_KINDS = {"rlib": "glue-rlib", "dylib": "glue-dylib"}


def rustc_flags(options: BuildOptions, tc: Toolchain, crate_type: str = "rlib") -> list[str]:
    """The library's rustc flags for cells built with *options* (part of its key).

    The edition is the library's own; the cell's does not matter to it. The
    opt-level is fixed: what the wrappers inline is optimized in the cell at the
    cell's level, and the rest is cold. The target CPU follows the cell, so a
    native cell links native glue. A ``dylib`` (for the JIT, which resolves
    its symbols in the process) links the toolchain's shared std, found by rpath.
    """
    flags = [
        f"--crate-type={crate_type}",
        f"--crate-name={PRELUDE_CRATE}",
        "--edition=2021",
        "-C",
        "opt-level=2",
        "-C",
        "panic=unwind",
        *python_cfgs(),
    ]
    if options.target_cpu:
        flags += ["-C", f"target-cpu={options.target_cpu}"]
    if crate_type == "dylib":
        flags += ["-C", "prefer-dynamic", "-C", f"link-arg=-Wl,-rpath,{tc.std_libdir}"]
    return flags


def library_key(tc: Toolchain, options: BuildOptions, source: str, crate_type: str = "rlib") -> str:
    """Cache key of the library built from *source* for cells built with *options*."""
    return make_key(
        {
            "glue-library": hashlib.sha256(source.encode()).hexdigest(),
            "flags": rustc_flags(options, tc, crate_type),
            **({"host_cpu": host_cpu_identity()} if options.target_cpu == "native" else {}),
            "toolchain": tc.fingerprint,
            "python": python_abi_tag(),
            "package": __version__,
        }
    )


def support_cache(cache: Cache) -> Cache:
    """The cache of support libraries inside the compile cache *cache* (created on first use)."""
    libs = Cache(cache.root / "lib")
    libs.ensure()
    return libs


def library(cache: Cache, tc: Toolchain, options: BuildOptions, crate_type: str = "rlib") -> Path:
    """The path of the glue library for cells built with *options* in *cache*, building it on first use.

    *crate_type* ``"rlib"`` is linked into each cell's extension module by rustc;
    ``"dylib"`` is loaded once into the process for JIT-linked cells.

    Raises RustToolchainError when rustc cannot run, RustCompileError when the
    library does not compile with this toolchain, RustCacheError on disk errors
    or an unsafe support directory.
    """
    if crate_type not in ENTRY_KINDS:
        raise ValueError(f"crate_type must be one of {', '.join(ENTRY_KINDS)}, not {crate_type!r}")
    kind = ENTRY_KINDS[crate_type]
    cache = support_cache(cache)
    source = prelude_library_source()
    key = library_key(tc, options, source, crate_type)
    entry = cache.valid_entry(key, kind=kind)
    if entry is None:
        with cache.locked(key):
            entry = cache.valid_entry(key, kind=kind, repair=True, what="cached glue library", stacklevel=4)
            if entry is None:
                entry = _build(cache, key, tc, options, source, crate_type)
    else:
        cache.touch(entry)  # the size cap evicts least recently used entries: keep the library recent
    return entry.artifact


def _build(cache: Cache, key: str, tc: Toolchain, options: BuildOptions, source: str, crate_type: str) -> Entry:
    def build(build_dir: Path) -> tuple[Path, dict[str, Any]]:
        lib_rs = build_dir / "lib.rs"
        lib_rs.write_text(source, encoding="utf-8")
        artifact = build_dir / f"lib{PRELUDE_CRATE}.{'so' if crate_type == 'dylib' else 'rlib'}"
        seconds = build_library(
            tc,
            [*rustc_flags(options, tc, crate_type), str(lib_rs)],
            artifact,
            build_dir,
            "the generated glue's library",
        )
        lib_rs.unlink()
        meta = {
            "module": "",
            "kind": ENTRY_KINDS[crate_type],
            "functions": [],
            "rustc": tc.release,
            "build_seconds": round(seconds, 4),
        }
        return artifact, meta

    return cache.build_entry(key, build)
