"""The plain-Python facade: compile cells, choose the default compiler, manage the cache.

Usable without IPython::

    import rustcall_magic as rc
    m = rc.compile_rust("pub fn add(a: i64, b: i64) -> i64 { a + b }")
    m.add(1, 2)  # 3
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from . import deps as deps_mod
from .cache import Cache, CachedLibrary, CacheStats
from .compiler import RustCompiler, RustModule
from .deps import DepSet, ProgressCallback
from .errors import RustcallWarning
from .external import register_function as register_function  # re-exported: part of the API
from .loader import loaded_paths

if TYPE_CHECKING:
    from .bench import BenchResult
    from .handles import HandleRow
    from .llvm_jit import JitModule, LLVMModule, OptimizationConfig
    from .widgets import CacheView, HandlesView

_default: RustCompiler | None = None


def get_default_compiler() -> RustCompiler:
    """The compiler used by :func:`compile_rust` and the magics when none is given."""
    global _default
    if _default is None:
        _default = RustCompiler()
    return _default


def set_default_compiler(compiler: RustCompiler) -> None:
    """Make *compiler* the default (its options become every later call's defaults).

    Raises TypeError when *compiler* is not a RustCompiler.
    """
    global _default
    if not isinstance(compiler, RustCompiler):
        raise TypeError(f"expected a RustCompiler, not {type(compiler).__name__}")
    _default = compiler


def compile_rust(
    src: str,
    opt_level: int | None = None,
    debug: bool | None = None,
    force: bool = False,
    edition: str | None = None,
    target_cpu: str | None = None,
    quiet: bool | None = None,
    dependencies: Mapping[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    release_gil: bool | None = None,
    instantiate: Sequence[str] = (),
) -> RustModule:
    """Compile a cell of Rust (or load it from the cache) and return its functions.

    With *release_gil* the functions release the GIL while the Rust code runs,
    so threads run them in parallel. *instantiate* builds instances of the cell's
    generic functions and structs with it (``["total<i32>", "W<f64>"]``).

    Options left as None take the default compiler's values (opt-level 2,
    edition 2021). *dependencies* maps crate names to a version (``"0.8"``) or
    a table (``{"version": "1", "features": ["derive"]}``, ``{"path": "..."}``),
    added to the cell's own ``//! ```cargo`` block; cargo builds them once per
    set, reporting to *progress* (default: one updating stderr line). Raises
    RustCompileError, RustToolchainError, RustCacheError or ValueError; see
    :meth:`RustCompiler.compile`.
    """
    return get_default_compiler().compile(
        src, opt_level=opt_level, debug=debug, edition=edition, target_cpu=target_cpu, force=force, quiet=quiet,
        dependencies=dependencies, progress=progress, release_gil=release_gil, instantiate=instantiate,
    )  # fmt: skip


def cache_dir() -> Path:
    """The default compiler's cache directory."""
    return get_default_compiler().cache.root


def _cache(compiler: RustCompiler | None) -> Cache:
    cache = (compiler or get_default_compiler()).cache
    cache.ensure()
    return cache


def _loaded_keys(cache: Cache) -> set[str]:
    return cache.keys_of(loaded_paths())


def get_cache_size(compiler: RustCompiler | None = None) -> int:
    """Bytes used by the compile cache's entries. Raises RustCacheError if the cache is unsafe."""
    return _cache(compiler).total_size()


def list_cached_libraries(compiler: RustCompiler | None = None) -> list[CachedLibrary]:
    """Every cache entry (key, functions, size, created, last used, hits), most recently used first."""
    cache = _cache(compiler)
    loaded = _loaded_keys(cache)
    rows = [CachedLibrary.from_entry(e, e.key in loaded) for e in cache.entries()]
    return sorted(rows, key=lambda r: r.last_used, reverse=True)


def cache_stats(compiler: RustCompiler | None = None) -> CacheStats:
    """The cache's directory, entries, total size and size cap, as one printable object."""
    c = compiler or get_default_compiler()
    rows = list_cached_libraries(c)
    refused = tuple((path.name, why) for path, why in c.cache.refused())
    return CacheStats(c.cache.root, tuple(rows), sum(r.size for r in rows), c.cache_limit(), refused)


def cleanup_old_cache(days: float = 30, compiler: RustCompiler | None = None) -> int:
    """Remove entries and dependency sets not used for more than *days* days (last use = build or hit); return how many.

    Entries loaded in this process are kept. Raises ValueError for negative *days*,
    RustCacheError when the disk refuses to remove some (after removing the others).
    """
    cache = _cache(compiler)
    removed = len(cache.clean_older_than(days, keep=_loaded_keys(cache)))
    cutoff = time.time() - days * 86400
    return removed + len(deps_mod.remove_sets(cache, lambda s: s.last_used < cutoff))


def clear_cache(compiler: RustCompiler | None = None) -> int:
    """Remove every entry not loaded in this process (and refused ones) and every dependency set; return how many.

    Functions already loaded keep working either way. Raises RustCacheError when
    the disk refuses to remove some (after removing the others).
    """
    cache = _cache(compiler)
    removed = len(cache.clear(keep=_loaded_keys(cache)))
    return removed + len(deps_mod.remove_sets(cache, lambda s: True))


def dependency_sets(compiler: RustCompiler | None = None) -> list[DepSet]:
    """The cache's dependency workspaces (id, crates, size on disk, last used), most recently used first."""
    return deps_mod.list_sets(_cache(compiler))


def update_dependencies(set_id: str | None = None, compiler: RustCompiler | None = None) -> list[DepSet]:
    """Re-resolve dependency sets (all, or those whose id starts with *set_id*): ``cargo update``, a new ``Cargo.lock``.

    Cells built against the old lock file are rebuilt on their next run. Returns
    the sets updated. Raises KeyError when *set_id* matches none,
    RustCompileError with cargo's message when resolution fails.
    """
    c = compiler or get_default_compiler()
    cache = _cache(c)
    sets = [s for s in deps_mod.list_sets(cache) if set_id is None or s.id.startswith(set_id)]
    if set_id is not None and not sets:
        raise KeyError(f"no dependency set {set_id!r}")
    from .toolchain import get_toolchain

    tc = get_toolchain(cache.root)
    for s in sets:
        ws = deps_mod.Workspace.reopen(cache, s, tc)
        with ws.locked():
            ws.resolve(update=True)
    return sets


def verify_cache(compiler: RustCompiler | None = None) -> tuple[int, list[tuple[str, str]]]:
    """Re-check every entry's checksum; evict bad, unreadable and refused entries.

    Returns (number of good entries, [(key, problem), ...] for each bad one; the
    problem says so when the disk would not let it be removed).
    """
    return _cache(compiler).verify_all()


# -- the LLVM path (llvm_jit, and llvmlite with it, is imported on first use) ------


def jit_rust(
    src: str,
    config: OptimizationConfig | None = None,
    *,
    force: bool = False,
    edition: str | None = None,
    quiet: bool | None = None,
    dependencies: Mapping[str, Any] | None = None,
) -> JitModule | RustModule:
    """JIT-compile a cell through LLVM IR optimized under *config* and return its functions.

    The callables are builtins made by the same glue as :func:`compile_rust`.
    Object code is cached: an identical call in a fresh process runs neither
    rustc nor the optimizer. Thread-locals (``thread_local!``, std's behind
    ``HashMap``) work per thread; a cell with one the JIT cannot reach is built
    by :func:`compile_rust` instead, with a RustcallWarning, and so is a cell
    with crate *dependencies* (see :func:`jit_fallback`). Raises
    RustCompileError, RustToolchainError (no rustc, no llvmlite, LLVM versions
    differ), RustCacheError, TypeError for a bad *config*.
    """
    fallback = jit_fallback(src, get_default_compiler(), dependencies, edition=edition, force=force, quiet=quiet)
    if fallback is not None:
        return fallback
    from .llvm_jit import jit_source

    module, _ = jit_source(src, get_default_compiler(), config, edition=edition, force=force, quiet=quiet)
    return module


def jit_fallback(
    src: str,
    compiler: RustCompiler,
    dependencies: Mapping[str, Any] | None = None,
    dep_lines: Sequence[str] = (),
    **options: Any,
) -> RustModule | None:
    """For a cell with crate dependencies: warn and build it as :func:`compile_rust` does; else None.

    The JIT links the cell's own object code only: the dependencies are rlibs
    built by cargo for rustc's linker, so such a cell is compiled by rustc
    into an extension module instead (the same functions and glue).
    """
    found = deps_mod.collect_dependencies(src, dep_lines, dependencies)
    if not found:
        return None
    warnings.warn(
        f"this cell depends on crates ({', '.join(found)}): the LLVM JIT path links the cell's own code only, "
        "and the dependencies are rlibs built by cargo for rustc's linker, so the cell is built as by %%rust",
        RustcallWarning,
        stacklevel=3,
    )
    return compiler.compile(src, dependencies=dependencies, dep_lines=dep_lines, **options)


def get_llvm_module(src: str, *, edition: str | None = None, quiet: bool | None = None) -> LLVMModule:
    """The cell (with its glue) as unoptimized LLVM IR: ``.ir``, ``.optimize(config)``, ``.stats()``, ``.jit()``.

    Raises RustCompileError, RustToolchainError, RustCacheError as :func:`jit_rust`.
    """
    from .llvm_jit import get_llvm_module as _get

    return _get(src, get_default_compiler(), edition=edition, quiet=quiet)


def optimize_module(module: LLVMModule, config: OptimizationConfig | None = None) -> LLVMModule:
    """Run *config*'s pipeline (default ``OptimizationConfig()``) on *module* in place and return it.

    Raises TypeError when *module* is not an LLVMModule or *config* not an OptimizationConfig.
    """
    from .llvm_jit import LLVMModule as _LLVMModule

    if not isinstance(module, _LLVMModule):
        raise TypeError(f"expected an LLVMModule (from get_llvm_module), not {type(module).__name__}")
    return module.optimize(config)


def optimize_for_speed(module: LLVMModule) -> LLVMModule:
    """Optimize *module* with the ``speed`` preset (O3, vectorize, unroll, LICM); return it."""
    from .llvm_jit import PRESETS

    return optimize_module(module, PRESETS["speed"])


def optimize_for_size(module: LLVMModule) -> LLVMModule:
    """Optimize *module* with the ``size`` preset (O2 as -Oz: minsize, no vectorize, no unroll); return it."""
    from .llvm_jit import PRESETS

    return optimize_module(module, PRESETS["size"])


def optimize_balanced(module: LLVMModule) -> LLVMModule:
    """Optimize *module* with the ``balanced`` preset (O2, vectorize, unroll, LICM); return it."""
    from .llvm_jit import PRESETS

    return optimize_module(module, PRESETS["balanced"])


# ---------------------------------------------------------------------------
# Ownership handles. The runtime (a Rust extension module) is built/loaded on
# first use of one of these names, never at import.

#: Names served by the ownership runtime module.
RUNTIME_NAMES = frozenset(
    {"RustBox", "RustRc", "RustArc", "RustVec", "create_rust_vec", "copy_to_python", "to_list", "drop"}
)


def ownership_runtime() -> ModuleType:
    """The ownership runtime module (built into the default compiler's cache at first use).

    Raises RustToolchainError, RustCompileError or RustCacheError when it cannot be built.
    """
    from . import runtime

    return runtime.load(get_default_compiler().cache)


def live_handles(include_ended: bool = True) -> list[HandleRow]:
    """Rows of the live-handle registry (see :func:`rustcall_magic.handles.live_handles`)."""
    from . import handles

    return handles.live_handles(include_ended)


# ---------------------------------------------------------------------------
# Views and timing. ipywidgets is imported by rustcall_magic.widgets only, on first use.


def cache_widget(compiler: RustCompiler | None = None) -> CacheView:
    """A live notebook view of the compile cache (entries, size gauge, Clean/Clear/Verify/Refresh).

    Raises ImportError when ipywidgets is not installed.
    """
    from .widgets import CacheView

    return CacheView(compiler)


def handles_widget(namespace: dict[str, Any] | None = None) -> HandlesView:
    """A live notebook view of the handle registry with a Drop button.

    *namespace* is where Drop looks for the selected handle (default: ``__main__``'s
    globals, the user namespace in a notebook). Raises ImportError without ipywidgets.
    """
    from .widgets import HandlesView

    return HandlesView(namespace)


def benchmark(
    *exprs: str,
    number: int | None = None,
    repeat: int = 5,
    namespace: dict[str, Any] | None = None,
) -> BenchResult:
    """Time each call expression (``"add(1, 2)"``) through every backend that defines its name.

    Backends are the ``%%rust`` and ``%rust_llvm`` definitions of a loaded
    IPython extension and the callable the namespace binds to the name
    (default namespace: the caller's globals). *number* calls per run
    (calibrated like ``timeit`` when None), best and median of *repeat* runs,
    empty-loop cost subtracted. Raises ValueError for an expression that is
    not a call by name or whose name nothing defines, and whatever a call raises.
    """
    import sys

    from .bench import benchmark as _benchmark

    if namespace is None:
        namespace = sys._getframe(1).f_globals
    return _benchmark(exprs, namespace, number=number, repeat=repeat)


def __getattr__(name: str) -> Any:
    if name in RUNTIME_NAMES:
        return getattr(ownership_runtime(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
