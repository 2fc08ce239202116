"""Test session setup: a private IPYTHONDIR and compile cache, a real IPython shell."""

from __future__ import annotations

import os
import shutil
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


RUSTC_LOGGER = """#!/bin/sh
echo "$@" >> "{log}"
exec "{rustc}" "$@"
"""


class RustcLog(type(Path())):  # type: ignore[misc]
    """The log file of the logging RUSTC wrapper (a Path) that also counts cell builds."""

    def builds(self) -> int:
        """How many cell builds (not version probes or library builds) rustc ran."""
        return sum("--crate-type=cdylib" in line for line in self.read_text().splitlines())


@pytest.fixture
def logged_rustc(tmp_path: Path, monkeypatch) -> RustcLog:
    """RUSTC points at a wrapper that logs every run; returns the log file."""
    log = RustcLog(tmp_path / "rustc.log")
    log.write_text("")
    wrapper = tmp_path / "rustc-logged"
    wrapper.write_text(RUSTC_LOGGER.format(log=log, rustc=shutil.which("rustc")))
    wrapper.chmod(0o755)
    monkeypatch.setenv("RUSTC", str(wrapper))
    return log
