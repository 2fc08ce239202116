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

from .codegen import CELL_FILE, GeneratedCrate
from .errors import Diagnostic, RustCompileError, RustToolchainError
from .toolchain import Toolchain

EDITIONS = ("2015", "2018", "2021", "2024")


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


def parse_diagnostics(stderr: str) -> tuple[list[Diagnostic], list[Diagnostic], list[str]]:
    """Split rustc's JSON stderr into (errors, cell warnings, other lines)."""
    errors: list[Diagnostic] = []
    warnings: list[Diagnostic] = []
    other: list[str] = []
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
        if not d.get("spans") and (msg.startswith("aborting due to") or "warning emitted" in msg or "warnings emitted" in msg):
            continue
        if level.startswith("error"):
            errors.append(_to_diagnostic(d))
        elif level == "warning" and not _in_glue(d):
            warnings.append(_to_diagnostic(d))
    return errors, warnings, other


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
    RustToolchainError when rustc cannot be run.
    """
    src = build_dir / "src"
    src.mkdir(exist_ok=True)
    for name, text in crate.files.items():
        (src / name).write_text(text, encoding="utf-8")
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
    errors, warnings, other = parse_diagnostics(proc.stderr)
    if proc.returncode != 0 or not output.exists():
        if not errors:
            text = "\n".join(other) or f"rustc exited with status {proc.returncode}"
            errors = [Diagnostic("error", text.splitlines()[0], None, None, None, text + "\n")]
        raise RustCompileError(errors + warnings)
    return BuildResult(output, warnings, seconds)


def build_cdylib(crate: GeneratedCrate, build_dir: Path, toolchain: Toolchain, options: BuildOptions) -> BuildResult:
    """Compile *crate* into ``<module>.so`` in *build_dir* (see :func:`run_rustc` for errors)."""
    return run_rustc(crate, build_dir, toolchain, options, build_dir / f"{crate.module_name}.so")
