"""The installed package: where it is imported from, what importing it costs, what it ships."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import resources

import pytest

import rustcall_magic as rc


@pytest.mark.skipif(not os.environ.get("RUSTCALL_TEST_INSTALLED"), reason="set by `make test` (installed package)")
def test_tests_run_against_the_installed_package() -> None:
    assert "site-packages" in rc.__file__, rc.__file__


def test_import_is_light() -> None:
    code = (
        "import sys, json; import rustcall_magic; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('IPython', 'ipywidgets', 'llvmlite', 'tree_sitter', 'tree_sitter_rust', 'numpy', 'filelock'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_glue_sources_ship_with_the_package() -> None:
    prelude = resources.files("rustcall_magic").joinpath("glue/prelude.rs").read_text()
    assert "trait FromPy" in prelude and "trait IntoPy" in prelude


def test_public_names_of_the_spec() -> None:
    for name in (
        "compile_rust",
        "RustCompiler",
        "set_default_compiler",
        "get_default_compiler",
        "get_cache_size",
        "list_cached_libraries",
        "cleanup_old_cache",
        "clear_cache",
        "cache_dir",
        "RustcallError",
        "RustCompileError",
        "RustPanic",
        "RustError",
        "RustHandleError",
        "RustToolchainError",
        "RustcallWarning",
    ):
        assert hasattr(rc, name), name
    for exc in (rc.RustCompileError, rc.RustPanic, rc.RustError, rc.RustHandleError, rc.RustToolchainError):
        assert issubclass(exc, rc.RustcallError)
    assert issubclass(rc.RustHandleError, ValueError)
