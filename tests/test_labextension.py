"""The JupyterLab extension as packaged: installed with the package and enabled; the
package build refuses to go on without Node.js instead of shipping without it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NAME = json.loads((ROOT / "labextension" / "package.json").read_text(encoding="utf-8"))["name"]
installed_only = pytest.mark.skipif(
    not os.environ.get("RUSTCALL_TEST_INSTALLED"), reason="set by `make test` (installed package)"
)


@installed_only
def test_extension_is_installed_with_the_package() -> None:
    share = Path(sysconfig.get_path("data")) / "share" / "jupyter" / "labextensions" / NAME
    meta = json.loads((share / "package.json").read_text(encoding="utf-8"))
    assert meta["name"] == NAME and meta["jupyterlab"]["_build"]["load"].startswith("static/remoteEntry.")
    assert (share / meta["jupyterlab"]["_build"]["load"]).is_file()
    assert json.loads((share / "install.json").read_text(encoding="utf-8"))["packageName"] == "rustcall_magic"


@installed_only
def test_jupyter_labextension_list_shows_it_enabled() -> None:
    pytest.importorskip("jupyterlab")
    out = subprocess.run(
        [sys.executable, "-m", "jupyterlab.labextensions", "list"], capture_output=True, text=True, timeout=120
    )
    lines = [line for line in (out.stdout + out.stderr).splitlines() if NAME in line]
    assert len(lines) == 1, out.stdout + out.stderr
    assert "enabled" in lines[0] and "OK" in lines[0] and "(python, rustcall_magic)" in lines[0], lines[0]


def test_build_without_node_says_so(tmp_path: Path) -> None:
    """Stale (here: absent) prebuilt output and no node on PATH: a clear error, not a wheel without the extension."""
    shutil.copy(ROOT / "setup.py", tmp_path / "setup.py")
    src = ROOT / "labextension"
    dst = tmp_path / "labextension"
    dst.mkdir()
    for name in ("package.json", "package-lock.json", "tsconfig.json", "install.json"):
        shutil.copy(src / name, dst / name)
    shutil.copytree(src / "src", dst / "src")
    empty = tmp_path / "bin"
    empty.mkdir()
    code = "import runpy; runpy.run_path('setup.py', run_name='build_step')['ensure_labextension']()"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**os.environ, "PATH": str(empty)},
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0
    assert "needs Node.js >= 18 and npm, but node and npm are not on PATH" in out.stderr, out.stderr
    assert not (dst / "prebuilt").exists()
