"""Run rustc on a generated cell crate; turn its JSON diagnostics into cell-relative errors.

rustc runs in the build directory on ``cell.rs`` (the user's cell, unchanged,
as the crate root), so every span in the cell carries the cell's own line
numbers; diagnostics inside the generated glue are internal and are kept
apart.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .codegen import CELL_FILE, PRELUDE_CRATE, USER_CRATE, GeneratedCrate, generate
from .errors import Diagnostic, RustCacheError, RustCompileError, RustToolchainError
from .signature import CellInfo, unwinding_source
from .toolchain import Toolchain

EDITIONS = ("2015", "2018", "2021", "2024")
#: ``target_cpu`` value asking for rustc's default CPU of the target (artifacts that run on any machine of its
#: architecture), where the default compiler's is ``"native"``.
PORTABLE = "portable"


def python_cfgs() -> list[str]:
    """``--cfg`` flags describing the running interpreter for the glue and the runtime.

    ``rc_pylong`` names the int layout (the glue's fast paths); ``rc_lasti`` says
    ``PyFrame_GetLasti`` exists (3.11+: the runtime records where a handle was made
    as an instruction offset, and decodes the line only when a row is shown).
    Both follow from the Python ABI, which is part of every cache key.
    """
    if sys.implementation.name != "cpython":
        return []
    flags = ["--cfg", "rc_lasti"] if sys.version_info >= (3, 11) else []
    if sys.int_info.bits_per_digit != 30:
        return flags
    if (3, 10) <= sys.version_info[:2] < (3, 12):
        return [*flags, "--cfg", 'rc_pylong="size"']
    if sys.version_info[:2] >= (3, 12):
        return [*flags, "--cfg", 'rc_pylong="tag"']
    return flags


@dataclass(frozen=True)
class BuildOptions:
    """Everything about a rustc run that shapes the artifact."""

    opt_level: int = 2
    debug: bool = False
    edition: str = "2021"
    target_cpu: str | None = None

    def __post_init__(self) -> None:
        if self.target_cpu == PORTABLE:  # rustc's own default CPU for the target: no -C target-cpu
            object.__setattr__(self, "target_cpu", None)
        if self.opt_level not in (0, 1, 2, 3):
            raise ValueError(f"opt_level must be 0, 1, 2 or 3, not {self.opt_level!r}")
        if str(self.edition) not in EDITIONS:
            raise ValueError(f"edition must be one of {', '.join(EDITIONS)}, not {self.edition!r}")
        if self.target_cpu is not None and (not self.target_cpu or any(c.isspace() for c in self.target_cpu)):
            raise ValueError(f"invalid target_cpu {self.target_cpu!r}")

    def rustc_flags(self) -> list[str]:
        """The rustc flags these options stand for (and the running interpreter's layout cfgs)."""
        flags = [f"--edition={self.edition}", "-C", f"opt-level={self.opt_level}", "-C", "panic=unwind"]
        flags += python_cfgs()
        flags += ["-C", "debuginfo=2"] if self.debug else ["-C", "strip=symbols"]
        if self.target_cpu:
            flags += ["-C", f"target-cpu={self.target_cpu}"]
        return flags


@dataclass
class BuildResult:
    """A successful build: the artifact, rustc's warnings, and how long it took."""

    artifact: Path
    warnings: list[Diagnostic] = field(default_factory=list)
    seconds: float = 0.0


def _to_diagnostic(d: dict[str, object]) -> Diagnostic:
    spans = d.get("spans") or []
    assert isinstance(spans, list)
    primary = next((s for s in spans if isinstance(s, dict) and s.get("is_primary")), None)
    line = col = None
    if primary is not None and primary.get("file_name") == CELL_FILE:
        line = int(primary["line_start"])
        col = int(primary["column_start"])
    code = d.get("code")
    return Diagnostic(
        level=str(d.get("level", "error")),
        message=str(d.get("message", "")),
        code=str(code["code"]) if isinstance(code, dict) and code.get("code") else None,
        line=line,
        column=col,
        rendered=str(d.get("rendered") or d.get("message", "")),
    )


def _in_glue(d: dict[str, object]) -> bool:
    spans = d.get("spans") or []
    assert isinstance(spans, list)
    primary = next((s for s in spans if isinstance(s, dict) and s.get("is_primary")), None)
    return primary is not None and primary.get("file_name") != CELL_FILE


@dataclass(frozen=True)
class GlueError:
    """A rustc error located in the generated glue: its line there, message and notes."""

    line: int
    message: str
    notes: tuple[str, ...]
    #: rustc's error code (``E0277``), if any.
    code: str | None = None
    #: The first note pointing into the cell: (its message, cell line), e.g. the bound a
    #: generic function's instance does not meet.
    cell_note: tuple[str, int] | None = None


def _glue_error(d: dict[str, object]) -> GlueError | None:
    spans = d.get("spans") or []
    assert isinstance(spans, list)
    primary = next((s for s in spans if isinstance(s, dict) and s.get("is_primary")), None)
    if primary is None or primary.get("file_name") == CELL_FILE:
        return None
    children = d.get("children") or []
    assert isinstance(children, list)
    notes = tuple(str(c.get("message", "")) for c in children if isinstance(c, dict))
    cell_note = next(
        (
            (str(c.get("message", "")), int(sp["line_start"]))
            for c in children
            if isinstance(c, dict)
            for sp in c.get("spans") or []
            if isinstance(sp, dict) and sp.get("file_name") == CELL_FILE
        ),
        None,
    )
    code = d.get("code")
    code_text = str(code["code"]) if isinstance(code, dict) and code.get("code") else None
    return GlueError(int(primary["line_start"]), str(d.get("message", "")), notes, code_text, cell_note)


def parse_diagnostics(stderr: str) -> tuple[list[Diagnostic], list[Diagnostic], list[str], list[GlueError]]:
    """Split rustc's JSON stderr into (errors, cell warnings, other lines, errors located in the glue)."""
    errors: list[Diagnostic] = []
    warnings: list[Diagnostic] = []
    other: list[str] = []
    glue: list[GlueError] = []
    for line in stderr.splitlines():
        if not line.startswith("{"):
            if line.strip():
                other.append(line)
            continue
        try:
            d = json.loads(line)
        except ValueError:
            other.append(line)
            continue
        if not isinstance(d, dict) or d.get("$message_type", "diagnostic") != "diagnostic":
            continue
        level = str(d.get("level", ""))
        msg = str(d.get("message", ""))
        if not d.get("spans") and (
            msg.startswith("aborting due to") or "warning emitted" in msg or "warnings emitted" in msg
        ):
            continue
        if level.startswith("error"):
            errors.append(_to_diagnostic(d))
            in_glue = _glue_error(d)
            if in_glue is not None:
                glue.append(in_glue)
        elif level == "warning" and not _in_glue(d):
            warnings.append(_to_diagnostic(d))
    # An LLVM complaint (e.g. an unknown target-cpu) comes once per codegen unit: say it once.
    other = list(dict.fromkeys(other))
    return errors, warnings, other, glue


def build_library(toolchain: Toolchain, args: Sequence[str], artifact: Path, cwd: Path, what: str) -> float:
    """Run ``rustc *args* -o artifact`` for one of the package's own crates; return the seconds it took.

    Raises RustToolchainError when rustc cannot be run, RustCompileError (rustc's
    text, summarised as "*what* does not compile with rustc X") when it fails.
    """
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([toolchain.rustc, *args, "-o", str(artifact)], cwd=cwd, capture_output=True, text=True)
    except OSError as e:
        raise RustToolchainError(f"could not run {toolchain.rustc}: {e}") from e
    seconds = time.perf_counter() - t0
    if proc.returncode != 0 or not artifact.exists():
        text = proc.stderr.strip() or f"rustc exited with status {proc.returncode}"
        raise RustCompileError(
            [Diagnostic("error", text.splitlines()[0], None, None, None, text + "\n")],
            summary=f"{what} does not compile with rustc {toolchain.release}",
        )
    return seconds


def run_rustc(
    crate: GeneratedCrate,
    build_dir: Path,
    toolchain: Toolchain,
    options: BuildOptions,
    output: Path,
    extra_args: Sequence[str] = (),
) -> BuildResult:
    """Write *crate* into ``build_dir/src`` and run rustc on it as a cdylib crate, writing *output*.

    *extra_args* go before the output flag (e.g. ``--emit=llvm-ir``). Raises
    RustCompileError with rustc's diagnostics when the cell does not compile,
    RustToolchainError when rustc cannot be run, RustCacheError when the
    sources cannot be written (a full or read-only disk).
    """
    src = build_dir / "src"
    try:
        src.mkdir(exist_ok=True)
        for name, text in crate.files.items():
            (src / name).write_text(text, encoding="utf-8")
    except OSError as e:
        raise RustCacheError(f"cannot write the cell's sources into {src}: {e}") from e
    cmd = [
        toolchain.rustc,
        "--crate-type=cdylib",
        f"--crate-name={crate.module_name}",
        *options.rustc_flags(),
        *extra_args,
        "--error-format=json",
        "--json=diagnostic-rendered-ansi",
        "-o",
        str(output),
        crate.root,
    ]
    env = dict(os.environ)
    env.pop("RUST_LOG", None)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=src, capture_output=True, text=True, env=env)
    except OSError as e:
        raise RustToolchainError(f"could not run {toolchain.rustc}: {e}") from e
    seconds = time.perf_counter() - t0
    errors, warnings, other, glue = parse_diagnostics(proc.stderr)
    if proc.returncode != 0 or not output.exists():
        if not errors:
            text = "\n".join(other) or f"rustc exited with status {proc.returncode}"
            errors = [Diagnostic("error", text.splitlines()[0], None, None, None, text + "\n")]
        err = RustCompileError(errors + warnings)
        err.glue_errors = glue  # type: ignore[attr-defined]  # read by build_cell
        raise err
    return BuildResult(output, warnings, seconds)


def build_cell(
    source: str,
    info: CellInfo,
    module_name: str,
    build_dir: Path,
    toolchain: Toolchain,
    options: BuildOptions,
    output: Path,
    extra_args: Sequence[str] = (),
    *,
    prelude_library: Path,
    release_gil: bool = False,
) -> tuple[BuildResult, CellInfo]:
    """Generate the crate of the cell *source* exporting ``info.functions`` and run rustc on it.

    Returns the build and the cell's info as built. A function whose glue does not
    compile (configured out by ``#[cfg]``, an error type without ``Display``, a name
    that is not the type the table knows) is moved to ``skipped`` with rustc's reason
    and the rest is built again; errors in the cell itself are raised as they are.
    Raises RustCompileError (for a syntax error, with the diagnostics of the cell
    alone, where the appended glue line cannot show) and RustToolchainError.
    The glue links *prelude_library* (its fixed part, built once: see ``prelude.py``);
    the cell's own code reaches it as ``rustcall::``.
    """
    extra_args = [
        *extra_args,
        *("--extern", f"{PRELUDE_CRATE}={prelude_library}"),
        *("--extern", f"{USER_CRATE}={prelude_library}"),  # the cell's `rustcall::` paths
    ]
    while True:
        crate = generate(
            module_name,
            unwinding_source(source, info),
            info.functions,
            info.types,
            release_gil=release_gil,
        )
        try:
            result = run_rustc(crate, build_dir, toolchain, options, output, extra_args)
        except RustCompileError as e:
            demoted = _demotions(e, crate)
            if demoted:
                info = info.without(demoted)
                continue
            if info.has_syntax_errors:
                _raise_cell_syntax_errors(source, build_dir, toolchain, options)
            cell_errors = [d for d in e.diagnostics if d.level.startswith("error") and d.line is not None]
            if cell_errors:  # the glue's complaints about a cell that does not compile are noise
                raise RustCompileError([d for d in e.diagnostics if d.line is not None]) from None
            raise
        return result, info


def _demotions(error: RustCompileError, crate: GeneratedCrate) -> dict[str, str]:
    """Functions to skip (name -> reason) when every error of *error* is in one's wrapper, else {}."""
    glue: list[GlueError] = getattr(error, "glue_errors", [])
    errors = [d for d in error.diagnostics if d.level.startswith("error")]
    if not glue or len(glue) != len(errors):
        return {}
    out: dict[str, str] = {}
    for g in glue:
        name = crate.function_at(g.line)
        if name is None:
            return {}
        if any("configured out" in n for n in g.notes):
            reason = "it is not compiled in this configuration (#[cfg])"
        else:
            reason = f"rustc cannot build its Python glue: {g.message}"
            if g.code:
                reason = f"rustc: error[{g.code}]: {g.message}"
            if g.cell_note is not None:
                reason += f" ({g.cell_note[0]}, cell line {g.cell_note[1]})"
        out.setdefault(name, reason)
    return out


def _raise_cell_syntax_errors(source: str, build_dir: Path, toolchain: Toolchain, options: BuildOptions) -> None:
    """Raise the diagnostics of *source* compiled alone, if it fails so (else return)."""
    bare_dir = build_dir / "bare"
    bare_dir.mkdir(exist_ok=True)
    crate = GeneratedCrate("rustcall_cell", {CELL_FILE: source})
    try:
        run_rustc(crate, bare_dir, toolchain, options, bare_dir / "cell.rmeta", ["--emit=metadata"])
    except RustCompileError as e:
        raise RustCompileError(e.diagnostics) from None
