"""rustcall_magic: Rust cells in IPython/Jupyter, compiled once, cached, called as fast builtins.

Load the magics with ``%load_ext rustcall_magic``; everything is also plain
Python (:func:`compile_rust`). Importing this package imports neither IPython
nor ipywidgets.
"""

from __future__ import annotations

from typing import Any

from . import api
from ._version import __version__
from .api import (
    benchmark,
    cache_dir,
    cache_stats,
    cache_widget,
    cleanup_old_cache,
    clear_cache,
    compile_rust,
    get_cache_size,
    get_default_compiler,
    get_llvm_module,
    handles_widget,
    jit_rust,
    list_cached_libraries,
    live_handles,
    optimize_balanced,
    optimize_for_size,
    optimize_for_speed,
    optimize_module,
    register_function,
    set_default_compiler,
    verify_cache,
)
from .bench import BenchResult
from .compiler import CompileInfo, RustCompiler, RustModule
from .errors import (
    RustCacheError,
    RustcallError,
    RustcallWarning,
    RustCompileError,
    RustError,
    RustHandleError,
    RustPanic,
    RustToolchainError,
)

__all__ = [
    "BenchResult",
    "CompileInfo",
    "JitModule",
    "LLVMModule",
    "OptimizationConfig",
    "RustArc",
    "RustBox",
    "RustCacheError",
    "RustCompileError",
    "RustCompiler",
    "RustError",
    "RustHandleError",
    "RustModule",
    "RustPanic",
    "RustRc",
    "RustToolchainError",
    "RustVec",
    "RustcallError",
    "RustcallWarning",
    "__version__",
    "benchmark",
    "cache_dir",
    "cache_stats",
    "cache_widget",
    "cleanup_old_cache",
    "clear_cache",
    "compile_rust",
    "copy_to_python",
    "create_rust_vec",
    "drop",
    "get_cache_size",
    "get_default_compiler",
    "get_llvm_module",
    "handles_widget",
    "jit_rust",
    "list_cached_libraries",
    "live_handles",
    "load_ipython_extension",
    "optimize_balanced",
    "optimize_for_size",
    "optimize_for_speed",
    "optimize_module",
    "register_function",
    "set_default_compiler",
    "to_list",
    "unload_ipython_extension",
    "verify_cache",
]


#: Names served by llvm_jit, imported on first access so ``import rustcall_magic`` stays light.
_LAZY = {"OptimizationConfig", "JitModule", "LLVMModule"}


#: Ownership-runtime names: the runtime is built/loaded on first access, never at import.
_RUNTIME = {"RustBox", "RustRc", "RustArc", "RustVec", "create_rust_vec", "copy_to_python", "to_list", "drop"}


def __getattr__(name: str) -> Any:
    if name in _RUNTIME:
        value = getattr(api.ownership_runtime(), name)
        globals()[name] = value
        return value
    if name == "dask":  # rc.dask.register(client); Dask is imported only then
        import importlib

        return importlib.import_module(f"{__name__}.dask")
    if name in _LAZY:
        from . import llvm_jit

        value = getattr(llvm_jit, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics (``%load_ext rustcall_magic``)."""
    from .magics import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext rustcall_magic``: remove the end-of-cell hook the magics registered."""
    from .magics import unload_ipython_extension as _unload

    _unload(ipython)
