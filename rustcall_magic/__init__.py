"""rustcall_magic: Rust cells in IPython/Jupyter, compiled once, cached, called as fast builtins.

Load the magics with ``%load_ext rustcall_magic``; everything is also plain
Python (:func:`compile_rust`). Importing this package imports neither IPython
nor ipywidgets.
"""

from __future__ import annotations

from typing import Any

from ._version import __version__
from .api import cache_dir, compile_rust, get_default_compiler, set_default_compiler
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
    "CompileInfo",
    "RustCacheError",
    "RustCompileError",
    "RustCompiler",
    "RustError",
    "RustHandleError",
    "RustModule",
    "RustPanic",
    "RustToolchainError",
    "RustcallError",
    "RustcallWarning",
    "__version__",
    "cache_dir",
    "compile_rust",
    "get_default_compiler",
    "load_ipython_extension",
    "set_default_compiler",
    "unload_ipython_extension",
]


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics (``%load_ext rustcall_magic``)."""
    from .magics import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Nothing to undo beyond IPython's own bookkeeping."""
