"""Package build step: the JupyterLab extension in labextension/ ships prebuilt in the wheel.

Everything else about the package is declared in pyproject.toml. Building a wheel
first makes sure ``labextension/prebuilt/`` matches the extension's sources (a
SHA-256 of them is stored beside the output); when it does not, it runs
``npm ci`` (from the committed package-lock.json, only when node_modules does not
match it) and ``npm run build``. Without Node.js/npm that build stops with a
message saying so: a wheel never ships without the extension. The output is
installed under ``share/jupyter/labextensions/<name>/`` with ``install.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

from setuptools import Command, setup
from setuptools.command.build_py import build_py
from setuptools.errors import SetupError

ROOT = Path(__file__).resolve().parent
LABEXT = ROOT / "labextension"
PREBUILT = LABEXT / "prebuilt"
NODE_MODULES = LABEXT / "node_modules"
#: Digest of the extension's sources the prebuilt output was made from.
SOURCES_STAMP = PREBUILT / "sources.sha256"
#: Digest of the lockfile node_modules was installed from.
LOCK_STAMP = NODE_MODULES / ".rustcall-lock.sha256"
SOURCE_FILES = ("package.json", "package-lock.json", "tsconfig.json")
SOURCE_DIRS = ("src",)
MIN_NODE = 18


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(path.relative_to(LABEXT).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


def _sources_digest() -> str:
    files = [LABEXT / name for name in SOURCE_FILES]
    for d in SOURCE_DIRS:
        files += sorted(p for p in (LABEXT / d).rglob("*") if p.is_file())
    return _digest(files)


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8").strip() if path.exists() else ""


def _run(cmd: list[str]) -> None:
    print("labextension:", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=LABEXT, check=True)


def _node_tools() -> tuple[str, str]:
    """Paths of node and npm; raises SetupError naming what is missing or too old."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        missing = [n for n, p in (("node", node), ("npm", npm)) if not p]
        verb = "are" if len(missing) > 1 else "is"
        raise SetupError(
            f"rustcall_magic: building the JupyterLab extension (labextension/) needs Node.js >= {MIN_NODE} "
            f"and npm, but {' and '.join(missing)} {verb} not on PATH. Install Node.js (e.g. `apt-get install nodejs npm`) "
            "and build again, or install from a wheel or sdist that already contains labextension/prebuilt/."
        )
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < MIN_NODE:
        raise SetupError(f"rustcall_magic: the JupyterLab extension build needs Node.js >= {MIN_NODE}, found {version}")
    return node, npm


def ensure_labextension() -> None:
    """Build labextension/prebuilt/ unless it already matches the sources; raises SetupError without node."""
    if not (LABEXT / "package.json").exists():
        # An sdist carries the prebuilt output only when it was made with one.
        if not (PREBUILT / "package.json").exists():
            raise SetupError("rustcall_magic: labextension/ (sources or prebuilt output) is missing")
        return
    digest = _sources_digest()
    if _read(SOURCES_STAMP) == digest and (PREBUILT / "package.json").exists():
        print("labextension: prebuilt output matches its sources, not rebuilt", flush=True)
        return
    _node, npm = _node_tools()
    lock = _digest([LABEXT / "package-lock.json"])
    if _read(LOCK_STAMP) != lock:
        _run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"])
        LOCK_STAMP.write_text(lock + "\n", encoding="utf-8")
    shutil.rmtree(PREBUILT, ignore_errors=True)
    _run([npm, "run", "--silent", "build"])
    if not (PREBUILT / "package.json").exists():
        raise SetupError(f"rustcall_magic: `npm run build` did not produce {PREBUILT / 'package.json'}")
    SOURCES_STAMP.write_text(digest + "\n", encoding="utf-8")


def labextension_data_files() -> list[tuple[str, list[str]]]:
    """(install dir, files) pairs placing the prebuilt extension under share/jupyter/labextensions/."""
    if not (PREBUILT / "package.json").exists():
        return []
    name = json.loads((PREBUILT / "package.json").read_text(encoding="utf-8"))["name"]
    dest = f"share/jupyter/labextensions/{name}"
    by_dir: dict[str, list[str]] = {dest: [os.path.relpath(LABEXT / "install.json", ROOT)]}
    for path in sorted(PREBUILT.rglob("*")):
        if path.is_file() and path != SOURCES_STAMP:
            rel = path.parent.relative_to(PREBUILT).as_posix()
            target = dest if rel == "." else f"{dest}/{rel}"
            by_dir.setdefault(target, []).append(os.path.relpath(path, ROOT))
    return sorted(by_dir.items())


class build_labextension(Command):
    """setuptools command: make labextension/prebuilt/ current (see the module docstring)."""

    description = "build the JupyterLab extension with npm unless its prebuilt output is current"
    user_options: list = []  # noqa: RUF012

    def initialize_options(self) -> None:
        pass

    def finalize_options(self) -> None:
        pass

    def run(self) -> None:
        ensure_labextension()
        # install_data reads this list after the build step, when the output exists.
        self.distribution.data_files = labextension_data_files()


class build_py_with_labextension(build_py):
    def run(self) -> None:
        self.run_command("build_labextension")
        super().run()


# setuptools runs this file as __main__; tests import it to check the build step alone.
if __name__ == "__main__":
    setup(
        cmdclass={"build_labextension": build_labextension, "build_py": build_py_with_labextension},
        data_files=labextension_data_files(),
    )
