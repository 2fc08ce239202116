"""Test session setup: a private IPYTHONDIR and compile cache, a real IPython shell."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Set before anything reads them (kernels started by nbval inherit them too).
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="rustcall-tests-"))
os.environ["IPYTHONDIR"] = str(_SESSION_DIR / "ipython")
os.environ["RUSTCALL_CACHE_DIR"] = str(_SESSION_DIR / "cache")
os.environ.pop("RUSTC", None)


@pytest.fixture(scope="session")
def session_dir() -> Path:
    """The directory holding this test session's IPYTHONDIR and cache."""
    return _SESSION_DIR


@pytest.fixture(scope="session")
def ip():
    """A real InteractiveShell with the extension loaded."""
    from IPython.testing.globalipapp import start_ipython

    shell = start_ipython()
    shell.run_line_magic("load_ext", "rustcall_magic")
    return shell


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch) -> Path:
    """An empty cache directory used by the default compiler for one test."""
    import rustcall_magic as rc

    d = tmp_path / "cache"
    monkeypatch.setenv("RUSTCALL_CACHE_DIR", str(d))
    monkeypatch.setattr(rc.api, "_default", None)
    return d
