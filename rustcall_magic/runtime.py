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

import copyreg
import hashlib
import shutil
import sys
import threading
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import Any

from . import compiler, handles
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


def _key_parts(files: dict[str, bytes]) -> dict[str, Any]:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return {"runtime": digest.hexdigest(), "flags": rustc_flags(), "python": python_abi_tag(), "package": __version__}


def runtime_key(tc: Toolchain, files: dict[str, bytes] | None = None) -> str:
    """Cache key of the runtime: its sources, the rustc flags, the toolchain and the Python ABI."""
    parts = _key_parts(source_files() if files is None else files)
    return make_key({**parts, "toolchain": tc.fingerprint})


def runtime_identity(files: dict[str, bytes] | None = None) -> str:
    """The runtime's key less the toolchain: how a process with no rustc finds a runtime built elsewhere."""
    return make_key(_key_parts(source_files() if files is None else files))


def _entry_without_toolchain(cache: Cache, files: dict[str, bytes]) -> Entry | None:
    """A sound runtime entry of these sources for this Python (the newest), when rustc cannot be asked."""
    identity = runtime_identity(files)
    found = [e for e in cache.entries() if e.meta.get("kind") == "runtime" and e.meta.get("identity") == identity]
    for ent in sorted(found, key=lambda e: e.created, reverse=True):
        if cache.verify(ent) is None:
            return ent
    return None


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
        files = source_files()
        try:
            tc = get_toolchain(cache.root)
        except RustToolchainError:
            # No rustc here (a worker given the artifacts): a runtime built elsewhere will do.
            ent = _entry_without_toolchain(cache, files)
            if ent is None:
                raise
            return _finish(cache, ent)
        key = runtime_key(tc, files)
        ent = cache.valid_entry(key)
        if ent is None:
            with cache.locked(key):
                ent = cache.valid_entry(key, repair=True, what="cached ownership runtime", stacklevel=4)
                if ent is None:
                    ent = _build(cache, key, tc, files)
        return _finish(cache, ent)


def _finish(cache: Cache, ent: Entry) -> ModuleType:
    """Load the runtime from *ent* (called holding ``_lock``)."""
    global _module, _entry
    cache.touch(ent)
    mod = load_extension(ent.module_name, ent.artifact)
    # Cells fetch the ABI capsule by module name (PyCapsule_Import).
    sys.modules.setdefault(MODULE_NAME, mod)
    handles._attach(mod)
    # A RustVec pickles by value (its item type and elements).
    copyreg.pickle(mod.RustVec, _reduce_vec)
    _entry = ent
    _module = mod
    # Shipped to Dask workers with the cells (rustcall_magic.dask).
    compiler._note_loaded(ent)
    return mod


def _build(cache: Cache, key: str, tc: Toolchain, files: dict[str, bytes]) -> Entry:
    def build(build_dir: Path) -> tuple[Path, dict[str, Any]]:
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
            "identity": runtime_identity(files),
            "functions": [],
            "rustc": tc.release,
            "build_seconds": round(seconds, 4),
        }
        return artifact, meta

    return cache.build_entry(key, build)


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


def _reduce_vec(v: Any) -> tuple[Any, ...]:
    """A RustVec pickles by value: its item type and its elements (native byte order when it is a buffer)."""
    if v.dropped:
        raise TypeError(f"cannot pickle a {v.state} RustVec")
    try:
        with memoryview(v) as mv:
            return _rebuild_vec, (v.dtype, mv.format, mv.tobytes())
    except (TypeError, ValueError):
        return _rebuild_vec, (v.dtype, None, v.to_list())


def _rebuild_vec(dtype: str, fmt: str | None, data: Any) -> Any:
    """Unpickle a RustVec (see :func:`_reduce_vec`), loading the runtime when needed."""
    mod = load()
    items = memoryview(data).cast(fmt) if fmt is not None else data
    return mod.create_rust_vec(items, dtype)
