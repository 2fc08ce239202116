"""The plain-Python facade: compile cells, choose the default compiler, manage the cache.

Usable without IPython::

    import rustcall_magic as rc
    m = rc.compile_rust("pub fn add(a: i64, b: i64) -> i64 { a + b }")
    m.add(1, 2)  # 3
"""

from __future__ import annotations

from pathlib import Path

from .compiler import RustCompiler, RustModule

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
) -> RustModule:
    """Compile a cell of Rust (or load it from the cache) and return its functions.

    Options left as None take the default compiler's values (opt-level 2,
    edition 2021). Raises RustCompileError, RustToolchainError,
    RustCacheError or ValueError; see :meth:`RustCompiler.compile`.
    """
    return get_default_compiler().compile(
        src, opt_level=opt_level, debug=debug, edition=edition, target_cpu=target_cpu, force=force, quiet=quiet
    )


def cache_dir() -> Path:
    """The default compiler's cache directory."""
    return get_default_compiler().cache.root
