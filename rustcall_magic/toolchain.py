"""Find rustc, read its identity (``rustc -vV``), and remember it so a cache hit starts no process.

The identity is keyed by a *stamp* of what can change it without a process
run: the rustc binary found (path and stat), rustup's toolchain selection
(``RUSTUP_TOOLCHAIN``, its settings file, a ``rust-toolchain`` file above the
working directory), and the stat of the real compiler in the sysroot (a
``rustup update`` replaces it). A stale stamp is a re-probe, never an error.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from .errors import RustToolchainError

_INSTALL_HINT = (
    "Install Rust with rustup (https://rustup.rs), or point the RUSTC environment variable at a rustc binary."
)


@dataclass(frozen=True)
class Toolchain:
    """One rustc: the command to run and what ``rustc -vV`` says of it."""

    rustc: str
    version_verbose: str
    sysroot: str

    def _field(self, name: str) -> str:
        for line in self.version_verbose.splitlines():
            if line.startswith(name + ":"):
                return line.split(":", 1)[1].strip()
        return ""

    @property
    def std_libdir(self) -> Path:
        """Where the toolchain's shared std (``libstd-*.so``) lives: ``<sysroot>/lib/rustlib/<host>/lib``."""
        return Path(self.sysroot) / "lib" / "rustlib" / self.host / "lib"

    @property
    def host(self) -> str:
        """Target triple of the host, e.g. ``x86_64-unknown-linux-gnu``."""
        return self._field("host")

    @property
    def release(self) -> str:
        """rustc release, e.g. ``1.95.0``."""
        return self._field("release")

    @property
    def llvm_version(self) -> str:
        """The LLVM version rustc was built with, e.g. ``22.1.2``."""
        return self._field("LLVM version")

    @property
    def fingerprint(self) -> str:
        """A hash of everything about this toolchain that shapes an artifact."""
        return hashlib.sha256(f"{self.version_verbose}\0{self.sysroot}".encode()).hexdigest()


def find_rustc() -> str:
    """Return the rustc command: ``$RUSTC`` or ``rustc`` on PATH.

    Raises RustToolchainError when neither exists.
    """
    env = os.environ.get("RUSTC")
    if env:
        path = shutil.which(env)
        if path is None:
            raise RustToolchainError(f"RUSTC={env!r} is not an executable. {_INSTALL_HINT}")
        return path
    path = shutil.which("rustc")
    if path is None:
        raise RustToolchainError(f"rustc was not found on PATH. {_INSTALL_HINT}")
    return path


_host_cpu: str | None = None


def host_cpu_identity() -> str:
    """A hash of this machine's CPU model and feature flags (what ``-C target-cpu=native`` builds for).

    Part of the key of a native build (the default), so a cache shared by
    machines with other CPUs never hands one an artifact using instructions it
    lacks. Read once per process (about 30 us: it is on the cache-hit path).
    """
    global _host_cpu
    if _host_cpu is not None:
        return _host_cpu
    text = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            block = f.read().split("\n\n", 1)[0]  # the first processor
        keep = ("vendor_id", "model name", "flags", "Features", "CPU part")
        text = "\n".join(ln for ln in block.splitlines() if ln.split(":", 1)[0].strip() in keep)
    except OSError:
        pass
    if not text:
        import platform

        text = f"{platform.machine()}|{platform.processor()}"
    _host_cpu = hashlib.sha256(text.encode()).hexdigest()
    return _host_cpu


def python_abi_tag() -> str:
    """The running interpreter's extension ABI (e.g. ``cpython-311-x86_64-linux-gnu``).

    Read from the import system's extension suffixes, which are loaded already
    (``sysconfig`` would import its data module: milliseconds on a cache hit).
    Raises RustToolchainError on a free-threaded build, whose object layout the glue does not use.
    """
    if "t" in getattr(sys, "abiflags", ""):
        raise RustToolchainError("free-threaded CPython builds are not supported yet")
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]  # e.g. .cpython-311-x86_64-linux-gnu.so
    if suffix.count(".") >= 2:
        return suffix[1:].rsplit(".", 1)[0]
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        raise RustToolchainError("free-threaded CPython builds are not supported yet")
    return str(sysconfig.get_config_var("SOABI") or f"{sys.implementation.cache_tag}")


def _stat_tuple(path: str | Path) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _rust_toolchain_file() -> str | None:
    # os.path, not pathlib: this runs on every cache hit.
    try:
        d = os.getcwd()
    except OSError:
        return None
    while True:
        for name in ("rust-toolchain", "rust-toolchain.toml"):
            f = os.path.join(d, name)
            if os.path.isfile(f):
                return f
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent


def _stamp(rustc: str) -> str:
    rustup_home = os.environ.get("RUSTUP_HOME") or os.path.join(os.path.expanduser("~"), ".rustup")
    toolchain_file = _rust_toolchain_file()
    parts = [
        rustc,
        _stat_tuple(rustc),
        os.environ.get("RUSTUP_TOOLCHAIN", ""),
        _stat_tuple(os.path.join(rustup_home, "settings.toml")),
        toolchain_file,
        _stat_tuple(toolchain_file) if toolchain_file else None,
    ]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def _run(args: list[str]) -> str:
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=120)
    except OSError as e:
        raise RustToolchainError(f"could not run {args[0]}: {e}. {_INSTALL_HINT}") from e
    except subprocess.TimeoutExpired as e:
        raise RustToolchainError(f"{' '.join(args)} did not answer in 120 s") from e
    if out.returncode != 0:
        raise RustToolchainError(f"{' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout


def probe(rustc: str) -> Toolchain:
    """Run rustc to read its identity (two short processes)."""
    vv = _run([rustc, "-vV"]).strip()
    sysroot = _run([rustc, "--print", "sysroot"]).strip()
    if "release:" not in vv:
        raise RustToolchainError(f"unexpected `rustc -vV` output from {rustc}: {vv!r}")
    return Toolchain(rustc, vv, sysroot)


_memo: dict[str, Toolchain] = {}


def get_toolchain(state_dir: Path | None = None) -> Toolchain:
    """Return the current toolchain, probing rustc only when its stamp changed.

    With *state_dir*, the identity is also remembered on disk
    (``toolchain.json``) so a fresh process needs no rustc run.
    Raises RustToolchainError when rustc is missing or broken.
    """
    rustc = find_rustc()
    stamp = _stamp(rustc)
    tc = _memo.get(stamp)
    if tc is not None:
        return tc
    store = state_dir / "toolchain.json" if state_dir is not None else None
    known: dict[str, dict[str, object]] = {}
    if store is not None:
        try:
            known = json.loads(store.read_text())
            if not isinstance(known, dict):
                known = {}
        except (OSError, ValueError):
            known = {}
        rec = known.get(stamp)
        if isinstance(rec, dict):
            try:
                cand = Toolchain(rustc, str(rec["vV"]), str(rec["sysroot"]))
                if rec.get("real") == _stat_tuple(Path(cand.sysroot) / "bin" / "rustc"):
                    _memo[stamp] = cand
                    return cand
            except KeyError:
                pass
    tc = probe(rustc)
    _memo[stamp] = tc
    if store is not None:
        known = {k: v for k, v in known.items() if isinstance(v, dict)}
        known[stamp] = {
            "vV": tc.version_verbose,
            "sysroot": tc.sysroot,
            "real": _stat_tuple(Path(tc.sysroot) / "bin" / "rustc"),
        }
        tmp = store.with_name(f".toolchain.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(known))
            os.replace(tmp, store)
        except OSError:
            tmp.unlink(missing_ok=True)  # remembering is an optimisation only
    return tc
