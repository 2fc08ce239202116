"""Build (once, through the compile cache) and load the ownership runtime: the Rust crate
``rust_runtime/`` behind ``RustBox``, ``RustRc``, ``RustArc`` and ``RustVec``.

The crate ships as sources inside the package. At first use it is compiled by
the user's own rustc (bare ``rustc --crate-type=cdylib`` on ``src/lib.rs``
with the ``python`` feature, about a second) into a cache entry keyed by the
sources, the toolchain and the Python ABI; later processes get a cache hit
(no rustc run). Cell modules that pass handles are built by the same
toolchain, so ``Vec``/``Box``/``Rc``/``Arc`` parts may move between the two
libraries (see ``rust_runtime/src/abi.rs``).

The runtime is loaded once per process: every handle type must be the same
type object for the whole session, whatever cache a later compile uses.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import threading
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import Any

from . import handles
from ._version import __version__
from .build import build_library, python_cfgs
from .cache import Cache, Entry, default_cache_dir, make_key
from .errors import RustCacheError, RustToolchainError
from .loader import load_extension
from .toolchain import Toolchain, get_toolchain, python_abi_tag

#: Name the runtime initialises as (``PyInit__rustcall_runtime``).
MODULE_NAME = "_rustcall_runtime"
#: rustc flags of the runtime build; part of the cache key.
RUSTC_FLAGS = (
    "--edition=2021",
    "--crate-type=cdylib",
    f"--crate-name={MODULE_NAME}",
    "--cfg",
    'feature="python"',
    "-C",
    "opt-level=3",
    "-C",
    "panic=unwind",
    "-C",
    "strip=symbols",
)


def rustc_flags() -> list[str]:
    """:data:`RUSTC_FLAGS` and the cfgs describing the running interpreter (part of the cache key)."""
    return [*RUSTC_FLAGS, *python_cfgs()]


_lock = threading.Lock()
_module: ModuleType | None = None
_entry: Entry | None = None


def source_dir() -> Path:
    """The runtime crate's directory: package data when installed, ``rust_runtime/`` in a checkout.

    Raises RustToolchainError when neither holds the crate.
    """
    candidates = []
    try:
        candidates.append(Path(str(resources.files(__package__).joinpath("rust_runtime"))))
    except (ModuleNotFoundError, TypeError):
        pass
    candidates.append(Path(__file__).resolve().parent.parent / "rust_runtime")
    for c in candidates:
        if (c / "src" / "lib.rs").is_file():
            return c
    raise RustToolchainError(
        "the ownership runtime's Rust sources are missing (looked in "
        + ", ".join(str(c) for c in candidates)
        + "); reinstall rustcall_magic"
    )


def source_files(root: Path | None = None) -> dict[str, bytes]:
    """The crate's files that shape the build (``Cargo.toml`` and ``src/*.rs``), by relative path."""
    root = source_dir() if root is None else root
    files = {"Cargo.toml": (root / "Cargo.toml").read_bytes()} if (root / "Cargo.toml").is_file() else {}
    for p in sorted((root / "src").glob("*.rs")):
        files[f"src/{p.name}"] = p.read_bytes()
    return files


def runtime_key(tc: Toolchain, files: dict[str, bytes] | None = None) -> str:
    """Cache key of the runtime: its sources, the rustc flags, the toolchain and the Python ABI."""
    files = source_files() if files is None else files
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return make_key(
        {
            "runtime": digest.hexdigest(),
            "flags": rustc_flags(),
            "toolchain": tc.fingerprint,
            "python": python_abi_tag(),
            "package": __version__,
        }
    )


def is_loaded() -> bool:
    """True once the runtime module is loaded in this process."""
    return _module is not None


def entry() -> Entry | None:
    """The cache entry the loaded runtime came from (None before loading)."""
    return _entry


def load(cache: Cache | None = None) -> ModuleType:
    """The runtime extension module, building it into *cache* at first use.

    *cache* defaults to ``$RUSTCALL_CACHE_DIR`` or the user cache dir; it only
    matters for the first call in a process. Raises RustToolchainError when
    rustc is missing, RustCompileError when the runtime does not compile with
    this toolchain, RustCacheError when the cache is unsafe.
    """
    global _module, _entry
    mod = _module
    if mod is not None:
        return mod
    with _lock:
        if _module is not None:
            return _module
        cache = Cache(default_cache_dir()) if cache is None else cache
        cache.ensure()
        tc = get_toolchain(cache.root)
        files = source_files()
        key = runtime_key(tc, files)
        ent = cache.valid_entry(key)
        if ent is None:
            with cache.locked(key):
                ent = cache.valid_entry(key, repair=True, what="cached ownership runtime", stacklevel=4)
                if ent is None:
                    ent = _build(cache, key, tc, files)
        else:
            cache.touch(ent)
        mod = load_extension(ent.module_name, ent.artifact)
        # Cells fetch the ABI capsule by module name (PyCapsule_Import).
        sys.modules.setdefault(MODULE_NAME, mod)
        handles._attach(mod)
        _entry = ent
        _module = mod
        return mod


def _build(cache: Cache, key: str, tc: Toolchain, files: dict[str, bytes]) -> Entry:
    build_dir = cache.new_build_dir(key)
    try:
        src = build_dir / "src"
        try:
            for name, data in files.items():
                dest = src.parent / name
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(data)
        except OSError as e:
            raise RustCacheError(f"cannot write the runtime's sources into {build_dir}: {e}") from e
        artifact = build_dir / f"{MODULE_NAME}.so"
        sys.stderr.write("rustcall_magic: building the ownership runtime (first use with this toolchain)...\n")
        seconds = build_library(tc, [*rustc_flags(), str(src / "lib.rs")], artifact, build_dir, "the ownership runtime")
        sys.stderr.write(f"rustcall_magic: ownership runtime built in {seconds:.1f} s (cached from now on)\n")
        shutil.rmtree(src, ignore_errors=True)
        (build_dir / "Cargo.toml").unlink(missing_ok=True)
        meta: dict[str, Any] = {
            "module": MODULE_NAME,
            "kind": "runtime",
            "functions": [],
            "rustc": tc.release,
            "build_seconds": round(seconds, 4),
        }
        return cache.publish(key, build_dir, artifact, meta)
    except BaseException:
        shutil.rmtree(build_dir, ignore_errors=True)
        raise


def _abi_capsule() -> Any:
    """The runtime's C-ABI capsule; cell modules that pass handles call this at init."""
    return load()._ABI


#: Set once a cell that checks for interrupts has loaded: IPython then re-arms before each cell.
_interrupt_used = False


def _interrupt_capsule() -> Any:
    """The runtime's interrupt-state capsule, its SIGINT handler chained in; cells that call
    ``check_interrupt`` call this at init."""
    global _interrupt_used
    mod = load()
    mod._arm_interrupt()
    _interrupt_used = True
    return mod._INTERRUPT


def arm_interrupt() -> None:
    """Chains ``check_interrupt``'s SIGINT handler in front of the installed one again.

    ``signal.signal`` (which IPython and ipykernel call around cells) replaces
    it; the extension calls this before each cell. Does nothing until a cell
    that checks for interrupts has loaded.
    """
    if _interrupt_used and _module is not None:
        _module._arm_interrupt()
