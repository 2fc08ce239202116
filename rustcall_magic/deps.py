"""Crate dependencies of a cell: the manifest fragment, one cargo workspace per dependency set, progress.

A cell declares dependencies in a leading ``//! ```cargo`` block (a Cargo
manifest fragment), with ``--dep`` lines, or with a mapping. The set, the
toolchain, the profile and the target CPU name a *workspace* in the cache
(``deps/<id>/``): a library crate depending on the set, its ``Cargo.lock`` and
its own target directory. cargo builds the dependencies there once (rlibs);
the cell crate itself is still built by rustc exactly as a dependency-free
cell, with ``--extern`` flags naming the rlibs. So a later cell with the same
set costs one no-op cargo check (~60 ms here) plus its own rustc run, builds
of different cells do not share cargo's fingerprints, and cell diagnostics
keep their cell line numbers.

The workspace's build lock serialises cargo runs (two processes needing the
same new set compile it once). ``Cargo.lock`` is written once, when the set is
first resolved, and every build after it runs ``--locked``; its hash is part
of the key of every cell built against it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cache import Cache, human_size, make_key
from .errors import Diagnostic, RustCacheError, RustCompileError, RustToolchainError
from .toolchain import Toolchain

DEPS_DIR = "deps"
SET_FILE = "set.json"
RESOLVE_FILE = "resolve.json"
EXTERNS_FILE = "externs.json"
LOCK_FILE = "Cargo.lock"

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
_SPEC_KEYS = {
    "version": str,
    "path": str,
    "features": list,
    "default-features": bool,
    "default_features": bool,
    "optional": bool,
    "package": str,
    "git": str,
    "branch": str,
    "tag": str,
    "rev": str,
    "registry": str,
}
# Tables of a full manifest that a cell's fragment cannot set (the workspace owns them).
_MANIFEST_TABLES = {
    "package", "lib", "bin", "features", "profile", "workspace", "dev-dependencies",
    "build-dependencies", "target", "patch", "replace", "example", "test", "bench",
}  # fmt: skip
_BLOCK_OPEN = re.compile(r"^//!\s*```\s*cargo\s*$")
_BLOCK_CLOSE = re.compile(r"^//!\s*```\s*$")
_COMPILING = re.compile(r"^\s*(Compiling|Checking)\s+(\S+)\s+v(\S+)")

Dependencies = dict[str, dict[str, Any]]


# -- declaring dependencies ------------------------------------------------------------


def cell_manifest(source: str) -> tuple[str, int] | None:
    """The leading ``//! ```cargo`` block of *source*: (its TOML text, the cell line of its first line).

    Blank lines may precede the block. None when the cell has no such block.
    Raises RustCompileError when the block is never closed.
    """
    lines = source.splitlines()
    i = 0
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i >= len(lines) or not _BLOCK_OPEN.match(lines[i].strip()):
        return None
    start = i + 1
    body: list[str] = []
    for j in range(start, len(lines)):
        text = lines[j].strip()
        if _BLOCK_CLOSE.match(text):
            return "\n".join(body) + "\n", start + 1
        if not text.startswith("//!"):
            break
        rest = text[3:]
        body.append(rest[1:] if rest.startswith(" ") else rest)
    raise _manifest_error("the `//! ```cargo` block is not closed by a `//! ```` line", i + 1)


def _manifest_error(message: str, line: int | None = None) -> RustCompileError:
    where = f"cell line {line}: " if line else ""
    text = f"error: {message}\n"
    return RustCompileError([Diagnostic("error", message, None, line, None, f"{where}{text}")])


def normalize_spec(name: str, spec: Any, base: Path | None = None) -> dict[str, Any]:
    """One dependency as a dict of manifest keys (``"0.8"`` -> ``{"version": "0.8"}``).

    A relative ``path`` is made absolute against *base* (default: the working
    directory). Raises ValueError for a bad name, key or value type.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"invalid crate name {name!r}")
    if isinstance(spec, str):
        spec = {"version": spec}
    if not isinstance(spec, Mapping):
        raise ValueError(f"dependency {name!r}: expected a version string or a table, not {type(spec).__name__}")
    out: dict[str, Any] = {}
    for k, v in spec.items():
        kind = _SPEC_KEYS.get(k)
        if kind is None:
            raise ValueError(f"dependency {name!r}: unsupported key {k!r} (supported: {', '.join(sorted(_SPEC_KEYS))})")
        if not isinstance(v, kind) or (kind is list and not all(isinstance(f, str) for f in v)):
            raise ValueError(
                f"dependency {name!r}: {k} must be a {'list of strings' if kind is list else kind.__name__}"
            )
        out["default-features" if k == "default_features" else k] = sorted(set(v)) if kind is list else v
    if "path" in out:
        out["path"] = str((base or Path.cwd()).joinpath(os.path.expanduser(out["path"])).resolve())
    if not any(k in out for k in ("version", "path", "git")):
        raise ValueError(f"dependency {name!r} needs a version, a path or a git source")
    return out


def _toml() -> Any:
    # Imported on first use: a cache hit of a dependency-free cell never needs a TOML parser.
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10
        import tomli as tomllib
    return tomllib


_SIMPLE_LINE = re.compile(r'^\s*([A-Za-z0-9_-]+)\s*=\s*"([^"\\\x00-\x1f\x7f]*)"\s*(?:#[^\x00-\x08\x0a-\x1f\x7f]*)?$')
_SIMPLE_HEADER = re.compile(r"^\s*\[\s*dependencies\s*\]\s*(?:#[^\x00-\x08\x0a-\x1f\x7f]*)?$")


def _simple_fragment(text: str) -> dict[str, Any] | None:
    """The TOML document of a fragment made only of ``name = "version"`` lines (and one
    ``[dependencies]`` header, comments, blank lines), or None for anything else.

    The common block parses without importing tomllib, which would cost a cache hit
    a few milliseconds; every other form (and any duplicate) goes to tomllib.
    """
    top: dict[str, Any] = {}
    table = top
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if _SIMPLE_HEADER.match(line):
            if "dependencies" in top:
                return None
            table = top["dependencies"] = {}
            continue
        m = _SIMPLE_LINE.match(line)
        if m is None or m.group(1) in table:
            return None
        table[m.group(1)] = m.group(2)
    return top


def parse_fragment(text: str, first_line: int | None = None) -> Dependencies:
    """Dependencies of a manifest fragment: a ``[dependencies]`` table, or its bare ``name = spec`` lines.

    Raises RustCompileError (with the cell line when *first_line* is given) for
    invalid TOML or for tables a cell cannot set.
    """
    doc = _simple_fragment(text)
    tomllib = _toml() if doc is None else None
    try:
        doc = tomllib.loads(text) if tomllib is not None else doc
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        line = first_line + int(m.group(1)) - 1 if (m and first_line) else first_line
        raise _manifest_error(f"invalid Cargo manifest fragment: {e}", line) from None
    deps: Dependencies = {}
    try:
        for key, value in doc.items():
            if key == "dependencies":
                if not isinstance(value, dict):
                    raise ValueError("[dependencies] must be a table")
                for n, s in value.items():
                    deps[n] = normalize_spec(n, s)
            elif key in _MANIFEST_TABLES:
                raise ValueError(f"a cell's cargo block holds [dependencies] only, not [{key}]")
            else:
                deps[key] = normalize_spec(key, value)
    except ValueError as e:
        raise _manifest_error(str(e), first_line) from None
    return deps


def collect_dependencies(
    source: str, dep_lines: Sequence[str] = (), dependencies: Mapping[str, Any] | None = None
) -> Dependencies:
    """Merge the cell's cargo block, ``--dep`` lines (``'rand = "0.8"'``) and a mapping, later ones winning.

    Raises RustCompileError for a bad block in the cell, ValueError for a bad
    ``--dep`` line or mapping.
    """
    deps: Dependencies = {}
    block = cell_manifest(source)
    if block is not None:
        deps.update(parse_fragment(*block))
    for line in dep_lines:
        doc = _simple_fragment(line)
        if doc is not None and "dependencies" not in doc:
            for n, s in doc.items():
                deps[n] = normalize_spec(n, s)
            continue
        tomllib = _toml()
        try:
            doc = tomllib.loads(line)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(
                f'a dependency is written NAME = "VERSION" or NAME = {{ ... }}, not {line!r} ({e})'
            ) from None
        for n, s in doc.items():
            deps[n] = normalize_spec(n, s)
    for n, s in (dependencies or {}).items():
        deps[n] = normalize_spec(n, s)
    return dict(sorted(deps.items()))


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string with ASCII escapes is a TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def manifest_text(deps: Dependencies, opt_level: int, debug: bool) -> str:
    """The workspace's ``Cargo.toml``: a library depending on *deps*, built with the cell's profile."""
    lines = [
        "[package]",
        'name = "rustcall_deps"',
        'version = "0.0.0"',
        'edition = "2021"',
        "publish = false",
        "",
        "[lib]",
        'path = "src/lib.rs"',
        "",
        "[workspace]",
        "",
        "[dependencies]",
    ]
    for name, spec in deps.items():
        lines.append(f"{name} = {{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in spec.items()) + " }")
    lines += [
        "",
        "[profile.release]",
        f"opt-level = {opt_level}",
        f"debug = {2 if debug else 0}",
        'panic = "unwind"',
        "incremental = false",
        "",
    ]
    return "\n".join(lines)


def path_fingerprint(deps: Dependencies) -> str:
    """A hash of the files of the path dependencies (name, size, mtime): an edited local crate is a new key."""
    h = hashlib.sha256()
    for name, spec in deps.items():
        root = spec.get("path")
        if not root:
            continue
        h.update(f"{name}\0{root}\0".encode())
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in ("target", ".git"))
            for f in sorted(filenames):
                try:
                    st = os.stat(os.path.join(dirpath, f))
                except OSError:
                    continue
                h.update(
                    f"{os.path.relpath(os.path.join(dirpath, f), root)}\0{st.st_size}\0{st.st_mtime_ns}\0".encode()
                )
    return h.hexdigest()


# -- progress ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CargoProgress:
    """One progress report of a cargo build: crates done of total, the crate being compiled, elapsed seconds.

    ``finished`` is true on the last report of a build (``ok`` says whether it succeeded).
    """

    done: int
    total: int
    current: str
    elapsed: float
    finished: bool = False
    ok: bool = True

    def line(self) -> str:
        """The report as one line of text."""
        if self.finished:
            verb = "built" if self.ok else "stopped after"
            return f"cargo: {verb} {self.done}/{self.total} crates in {self.elapsed:.1f} s"
        doing = f", compiling {self.current}" if self.current else ""
        return f"cargo: {self.done}/{self.total} crates{doing} ({self.elapsed:.1f} s)"


ProgressCallback = Callable[[CargoProgress], None]


class StderrProgress:
    """A progress callback writing one updating line on stderr (the terminal's progress bar)."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self._width = 0

    def __call__(self, p: CargoProgress) -> None:
        text = p.line()
        pad = " " * max(0, self._width - len(text))
        self._width = len(text)
        self.stream.write(f"\r{text}{pad}" + ("\n" if p.finished else ""))
        self.stream.flush()


# -- the workspace -------------------------------------------------------------------------


def find_cargo(toolchain: Toolchain) -> str:
    """The cargo command: ``$CARGO``, the cargo beside rustc, or ``cargo`` on PATH.

    Raises RustToolchainError when there is none (only cells with dependencies need it).
    """
    env = os.environ.get("CARGO")
    candidates = [env] if env else []
    candidates += [str(Path(toolchain.rustc).with_name("cargo")), "cargo"]
    for c in candidates:
        path = shutil.which(c)
        if path:
            return path
    raise RustToolchainError(
        "cells with crate dependencies are built with cargo, and cargo was not found "
        "(set CARGO, or install it with rustup beside rustc)"
    )


def offline() -> bool:
    """True when ``RUSTCALL_CARGO_OFFLINE`` asks for ``cargo --offline``."""
    return os.environ.get("RUSTCALL_CARGO_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


@dataclass
class DepsBuild:
    """What one cargo run did: packages compiled and packages found fresh (``name@version``), seconds."""

    compiled: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)
    seconds: float = 0.0


class Workspace:
    """The cargo workspace of one dependency set in a cache (``deps/<id>/``)."""

    def __init__(self, cache: Cache, deps: Dependencies, toolchain: Toolchain, opt_level: int, debug: bool,
                 target_cpu: str | None, host_cpu: str | None = None) -> None:  # fmt: skip
        self.cache = cache
        self.deps = deps
        self.toolchain = toolchain
        self.opt_level = opt_level
        self.debug = debug
        self.target_cpu = target_cpu
        self.id = make_key(
            {
                "deps": deps,
                "rustc": toolchain.version_verbose,
                "sysroot": toolchain.sysroot,
                "profile": [opt_level, debug],
                "target_cpu": target_cpu,
                **({"host_cpu": host_cpu} if host_cpu else {}),
            }
        )[:24]
        self.path = cache.root / DEPS_DIR / self.id
        #: What the last :meth:`build` in this process did (None before one).
        self.last_build: DepsBuild | None = None

    def __repr__(self) -> str:
        return f"<Workspace {self.id[:12]}: {', '.join(self.deps)}>"

    @classmethod
    def reopen(cls, cache: Cache, dep_set: DepSet, toolchain: Toolchain) -> Workspace:
        """The workspace of a listed set, at its directory (whichever toolchain made it)."""
        try:
            info = json.loads((dep_set.path / SET_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            info = {}
        ws = cls(cache, dep_set.crates, toolchain, int(info.get("opt_level", 2)), bool(info.get("debug", False)),
                 info.get("target_cpu"))  # fmt: skip
        ws.id, ws.path = dep_set.id, dep_set.path
        return ws

    @property
    def lock_key(self) -> str:
        """The name of this workspace's build lock in the cache."""
        return f"deps-{self.id}"

    def lock_hash(self) -> str | None:
        """The sha256 of the kept ``Cargo.lock``, or None before the set is resolved."""
        try:
            data = (self.path / LOCK_FILE).read_bytes()
            os.utime(self.path / SET_FILE)  # last use, for %rustcache deps and clean
        except OSError:
            return None
        return hashlib.sha256(data).hexdigest()

    # -- cargo --------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["RUSTC"] = self.toolchain.rustc
        env["CARGO_TARGET_DIR"] = str(self.path / "target")
        for k in ("RUSTC_WRAPPER", "RUSTC_WORKSPACE_WRAPPER", "CARGO_BUILD_TARGET", "RUST_LOG"):
            env.pop(k, None)
        if self.target_cpu:
            env["RUSTFLAGS"] = f"{env.get('RUSTFLAGS', '')} -C target-cpu={self.target_cpu}".strip()
        env["CARGO_TERM_COLOR"] = "never"
        env["CARGO_TERM_PROGRESS_WHEN"] = "never"
        return env

    def _cargo(self, *args: str) -> list[str]:
        return [find_cargo(self.toolchain), *args, *(["--offline"] if offline() else [])]

    def _run_quick(self, cmd: list[str]) -> str:
        """Run a short cargo command (resolve, metadata); return stdout, raise RustCompileError with its message."""
        try:
            proc = subprocess.run(cmd, cwd=self.path, capture_output=True, text=True, env=self._env())
        except OSError as e:
            raise RustToolchainError(f"could not run {cmd[0]}: {e}") from e
        if proc.returncode != 0:
            raise cargo_error(proc.stderr, proc.returncode)
        return proc.stdout

    def _write_files(self) -> None:
        try:
            (self.path / "src").mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(self.path.parent, 0o700)
            os.chmod(self.path, 0o700)
            (self.path / "src" / "lib.rs").write_text("", encoding="utf-8")
            _write_atomic(self.path / "Cargo.toml", manifest_text(self.deps, self.opt_level, self.debug))
            _write_atomic(
                self.path / SET_FILE,
                json.dumps(
                    {
                        "deps": self.deps,
                        "opt_level": self.opt_level,
                        "debug": self.debug,
                        "target_cpu": self.target_cpu,
                        "created": time.time(),
                    },
                    indent=1,
                ),
            )
        except OSError as e:
            raise RustCacheError(f"cannot create the dependency workspace {self.path}: {e}") from e

    def resolve(self, update: bool = False) -> None:
        """Write the workspace and resolve the set into ``Cargo.lock`` (again, with *update*). Call under :meth:`locked`.

        Raises RustCompileError with cargo's message (unknown crate, no matching
        version, offline without the crate), RustToolchainError without cargo.
        """
        if not (self.path / "Cargo.toml").exists() or not (self.path / SET_FILE).exists():
            self._write_files()
        if update:
            self._run_quick(self._cargo("update", "--quiet"))
        meta = json.loads(
            self._run_quick(self._cargo("metadata", "--format-version", "1", "--filter-platform", self.toolchain.host))
        )
        res = meta.get("resolve") or {}
        root = res.get("root")
        nodes = res.get("nodes") or []
        direct = {}
        for node in nodes:
            if node.get("id") == root:
                direct = {d["name"]: d["pkg"] for d in node.get("deps", [])}
        _write_atomic(self.path / RESOLVE_FILE, json.dumps({"direct": direct, "packages": len(nodes) - 1}))
        with contextlib.suppress(OSError):
            os.unlink(self.path / EXTERNS_FILE)

    @contextlib.contextmanager
    def locked(self) -> Any:
        """Hold this workspace's build lock (cargo runs and cell builds against it)."""
        with self.cache.locked(self.lock_key, timeout=3600):
            yield

    def ensure_resolved(self) -> str:
        """The ``Cargo.lock`` hash, resolving the set first when it is new (under the lock)."""
        h = self.lock_hash()
        if h is not None:
            return h
        with self.locked():
            if self.lock_hash() is None:
                fresh = not self.path.exists()
                try:
                    self.resolve()
                except RustCompileError:
                    if fresh:  # a typo in a crate name leaves no workspace behind
                        shutil.rmtree(self.path, ignore_errors=True)
                    raise
            h = self.lock_hash()
        if h is None:
            raise RustCacheError(f"cargo did not write {self.path / LOCK_FILE}")
        return h

    def build(self, progress: ProgressCallback | None = None) -> list[str]:
        """Build the dependencies (``cargo build --locked``; a no-op when fresh); return rustc's flags to use them.

        Call under :meth:`locked`. The flags are ``--extern NAME=RLIB`` for each
        direct dependency, ``-L dependency=DIR`` and the native libraries build
        scripts asked for. Raises RustCompileError with cargo's message,
        RustToolchainError without cargo. A KeyboardInterrupt stops cargo and
        its rustc processes before it propagates.
        """
        try:
            resolved = json.loads((self.path / RESOLVE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.resolve()
            resolved = json.loads((self.path / RESOLVE_FILE).read_text(encoding="utf-8"))
        direct: dict[str, str] = resolved["direct"]
        for d in (self.path.parent, self.path):  # its rlibs are linked into the cell: refuse a foreign or shared dir
            Cache._check_dir(d)
        cmd = self._cargo("build", "--release", "--lib", "--locked", "--message-format=json-render-diagnostics")
        externs: dict[str, str] = {}
        native: list[str] = []
        report = DepsBuild()
        t0 = time.perf_counter()
        state = _StderrState()
        try:
            proc = subprocess.Popen(
                cmd, cwd=self.path, env=self._env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True, start_new_session=True,
            )  # fmt: skip
        except OSError as e:
            raise RustToolchainError(f"could not run {cmd[0]}: {e}") from e
        reader = threading.Thread(target=state.read, args=(proc.stderr,), daemon=True)
        reader.start()
        # stdout is read on a thread too, so this thread wakes twice a second to report the elapsed time
        # (one crate can take many seconds) and all progress calls come from the caller's thread.
        lines: queue.Queue[str | None] = queue.Queue()
        pump = threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True)
        pump.start()
        total = int(resolved.get("packages", 0))
        done: set[str] = set()
        shown = False
        try:
            while True:
                try:
                    line = lines.get(timeout=0.5)
                except queue.Empty:
                    line = ""
                if line is None:
                    break
                msg = _json_line(line)
                reason = msg.get("reason")
                pkg = str(msg.get("package_id", ""))
                if reason == "compiler-artifact" and "custom-build" not in msg.get("target", {}).get("kind", []):
                    label = _package_label(pkg)
                    if not label.startswith("rustcall_deps@"):
                        done.add(pkg)
                        (report.fresh if msg.get("fresh") else report.compiled).append(label)
                    name = next((n for n, p in direct.items() if p == pkg), None)
                    if name is not None:
                        files = msg.get("filenames", [])
                        lib = next((f for f in files if f.endswith(".rlib")), None) or next(
                            (f for f in files if f.endswith((".so", ".dylib", ".dll"))), None
                        )
                        if lib:
                            externs[name] = lib
                elif reason == "build-script-executed":
                    native += [f"-L{p}" for p in msg.get("linked_paths", [])]
                    native += [f"-l{lib}" for lib in msg.get("linked_libs", [])]
                # Only real work is shown: a build where every crate is fresh stays silent.
                shown = shown or bool(report.compiled) or bool(state.current)
                if progress is not None and shown:
                    progress(CargoProgress(len(done), max(total, len(done)), state.current, time.perf_counter() - t0))
            proc.wait()
        except BaseException:
            _stop(proc)
            reader.join(timeout=5)
            if progress is not None and shown:
                progress(CargoProgress(len(done), max(total, len(done)), "", time.perf_counter() - t0, True, False))
            raise
        reader.join(timeout=30)
        report.seconds = time.perf_counter() - t0
        self.last_build = report
        if progress is not None and shown:
            ok = proc.returncode == 0
            progress(CargoProgress(len(done) if not ok else max(total, len(done)), max(total, len(done)), "",
                                   report.seconds, True, ok))  # fmt: skip
        if proc.returncode != 0:
            raise cargo_error("".join(state.lines), proc.returncode)
        missing = sorted(set(direct) - set(externs))
        if missing:
            raise RustCacheError(f"cargo built no library for {', '.join(missing)} in {self.path}")
        deps_dir = self.path / "target" / "release" / "deps"
        flags = [f"-Ldependency={deps_dir}"]
        for name, lib in sorted(externs.items()):
            flags += ["--extern", f"{name}={lib}"]
        flags += list(dict.fromkeys(native))
        # The record of a completed build (what %rustcache deps shows as "built"); never read to skip cargo.
        _write_atomic(self.path / EXTERNS_FILE, json.dumps({"flags": flags, "lock": self.lock_hash()}))
        return flags


def _pump(stream: Iterable[str] | None, out: queue.Queue[str | None]) -> None:
    """Put each line of *stream* on *out*, then None."""
    try:
        for line in stream or ():
            out.put(line)
    finally:
        out.put(None)


def _json_line(line: str) -> dict[str, Any]:
    if not line.startswith("{"):
        return {}
    try:
        msg = json.loads(line)
    except ValueError:
        return {}
    return msg if isinstance(msg, dict) else {}


class _StderrState:
    """cargo's human stderr, read on a thread: every line, and the crate it says it is compiling."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.current = ""

    def read(self, stream: Iterable[str]) -> None:
        for line in stream:
            self.lines.append(line)
            m = _COMPILING.match(line)
            if m:
                self.current = f"{m.group(2)} v{m.group(3)}"


def _package_label(package_id: str) -> str:
    """``name@version`` from a cargo package id (``registry+...#rand@0.8.5`` or ``path+file:///x#0.1.0``)."""
    tail = package_id.rsplit("#", 1)[-1]
    if "@" in tail:
        return tail
    name = package_id.split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return f"{name}@{tail}"


def _stop(proc: subprocess.Popen[str]) -> None:
    """Stop cargo and every rustc it started (its own process group), waiting for them."""
    for sig, wait in ((signal.SIGINT, 3.0), (signal.SIGTERM, 3.0), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        # cargo is gone; make sure no rustc child of its group outlives it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        return


def cargo_error(stderr: str, status: int) -> RustCompileError:
    """A RustCompileError holding cargo's own message (progress lines dropped)."""
    keep = [
        ln
        for ln in stderr.splitlines()
        if not _COMPILING.match(ln)
        and not re.match(r"^\s*(Locking|Adding|Updating|Blocking|Downloaded|Downloading)\b", ln)
    ]
    text = "\n".join(keep).strip() or f"cargo exited with status {status}"
    first = next((ln for ln in keep if ln.startswith("error")), text.splitlines()[0])
    message = first.removeprefix("error:").strip()
    return RustCompileError([Diagnostic("error", message, None, None, None, text + "\n")], f"cargo: {message}")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# -- housekeeping ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DepSet:
    """One dependency workspace in a cache: id, crates (name -> spec), bytes on disk, last use (epoch s),
    and whether its last cargo build completed (an interrupted or failed one leaves it False)."""

    id: str
    path: Path
    crates: dict[str, dict[str, Any]]
    size: int
    last_used: float
    built: bool = False

    def crates_text(self) -> str:
        """``rand 0.8, rayon 1`` (path dependencies as ``name (path)``)."""
        return ", ".join(
            f"{n} {s['version']}" if "version" in s else f"{n} (path)" if "path" in s else n
            for n, s in self.crates.items()
        )


def _dir_size(path: Path) -> int:
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for f in filenames:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_size
    return total


def list_sets(cache: Cache) -> list[DepSet]:
    """Every dependency workspace of *cache*, most recently used first."""
    root = cache.root / DEPS_DIR
    try:
        names = os.listdir(root)
    except OSError:
        return []
    out = []
    for name in names:
        path = root / name
        try:
            info = json.loads((path / SET_FILE).read_text(encoding="utf-8"))
            last = os.stat(path / SET_FILE).st_mtime
        except (OSError, ValueError):
            info, last = {}, 0.0
        built = os.path.exists(path / EXTERNS_FILE)
        out.append(DepSet(name, path, dict(info.get("deps", {})), _dir_size(path), last, built))
    return sorted(out, key=lambda s: -s.last_used)


def remove_sets(cache: Cache, doomed: Callable[[DepSet], bool], keep: Iterable[str] = ()) -> list[DepSet]:
    """Remove the workspaces for which *doomed* is true (except ids in *keep*), each under its lock.

    A workspace whose lock stays busy (a build in progress) is skipped.
    """
    removed = []
    keep = set(keep)
    for s in list_sets(cache):
        if s.id in keep or not doomed(s):
            continue
        try:
            with cache.lock(f"deps-{s.id}", timeout=5):
                trash = cache.tmp_dir / f"trash-deps-{s.id[:12]}-{os.getpid()}-{time.monotonic_ns()}"
                os.rename(s.path, trash)
                shutil.rmtree(trash, ignore_errors=True)
            removed.append(s)
        except (TimeoutError, OSError):
            continue
    return removed


def enforce_limit(
    cache: Cache, max_bytes: int, keep_keys: Collection[str] = (), keep_sets: Collection[str] = ()
) -> int:
    """Evict least-recently-used cache entries and dependency sets, together, until they hold at most *max_bytes*.

    0 means no cap. Entries whose key is in *keep_keys* and sets whose id is in
    *keep_sets* stay. Returns how many were evicted. Raises RustCacheError as
    :meth:`Cache.remove_where`.
    """
    if max_bytes <= 0:
        return 0
    entries = list(cache.entries())
    sets = list_sets(cache)
    items: list[tuple[float, int, str, bool]] = [(e.last_used, e.size, e.key, False) for e in entries]
    items += [(st.last_used, st.size, st.id, True) for st in sets]
    total = sum(size for _, size, _, _ in items)
    doomed_entries: set[str] = set()
    doomed_sets: set[str] = set()
    for _, size, name, is_set in sorted(items):
        if total <= max_bytes:
            break
        if name in (keep_sets if is_set else keep_keys):
            continue
        (doomed_sets if is_set else doomed_entries).add(name)
        total -= size
    n = len(remove_sets(cache, lambda st: st.id in doomed_sets, keep_sets))
    if doomed_entries:
        n += len(cache.remove_where(lambda e: e.key in doomed_entries, keep_keys))
    return n


def sets_table(sets: list[DepSet]) -> str:
    """A text table of dependency sets: id, crates, size, last used, built (or only resolved)."""
    if not sets:
        return "no dependency sets"
    rows = [("id", "crates", "size", "last used", "state")]
    for s in sets:
        rows.append((s.id[:12], s.crates_text(), human_size(s.size),
                     time.strftime("%Y-%m-%d %H:%M", time.localtime(s.last_used)) if s.last_used else "-",
                     "built" if s.built else "resolved"))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)
