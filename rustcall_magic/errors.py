"""Exception and warning classes of rustcall_magic (standard library only).

Every error the package raises on purpose subclasses :class:`RustcallError`.
The generated Rust glue of every compiled cell imports this module at load
time and calls the underscored helpers on its error paths, so that messages
are composed in one place, in Python; the helpers return the exception and the
glue raises it from C, so that no frame of this module shows in tracebacks.
"""

from __future__ import annotations

import re
import sys
import warnings
from collections.abc import Iterable
from typing import Any

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def strip_ansi(text: str) -> str:
    """Return *text* without ANSI colour escapes."""
    return _ANSI.sub("", text)


class RustcallError(Exception):
    """Base class of every error raised by rustcall_magic."""


class RustcallWarning(UserWarning):
    """A cell item that was skipped, or a cache entry that was repaired."""


def item_line(source: str, name: str) -> int | None:
    """The 1-based line of *source* declaring item *name* (``f``, ``Point`` or ``Point.norm``), if found."""
    simple = re.escape(name.rsplit(".", 1)[-1])
    m = re.search(rf"\b(?:fn|struct|enum)\s+(?:r#)?{simple}\b", source)
    return source.count("\n", 0, m.start()) + 1 if m else None


#: Modules whose frames are not the user's code when a cell is compiled.
_INTERNAL = ("rustcall_magic", "IPython", "traitlets", "decorator", "ipykernel")


def warn_skipped(skipped: Iterable[tuple[str, str]], source: str) -> None:
    """Warn (RustcallWarning) about every item of *source* that was not exported, at the user's code.

    Under a ``%%rust`` magic the warning names the cell (IPython's file name for it) and
    the line of the skipped item; otherwise the first caller outside this package.
    """
    items = list(skipped)
    if not items:
        return
    frame = sys._getframe(1)
    below = None
    while frame is not None and (
        frame.f_globals.get("__name__", "").split(".")[0] in _INTERNAL or frame.f_code.co_filename.startswith("<decorator-gen")
    ):
        below, frame = frame, frame.f_back
    for name, reason in items:
        message = f"Rust item `{name}` was not exported: {reason}"
        if frame is None:
            warnings.warn(message, RustcallWarning, stacklevel=2)
            continue
        lineno = frame.f_lineno
        line = item_line(source, name)
        # A cell runs as a module whose one statement calls run_cell_magic.
        cell = frame.f_code.co_name == "<module>" and below is not None and below.f_code.co_name == "run_cell_magic"
        if line is not None and cell:
            lineno = line + 1  # the cell's first line is the magic's
        warnings.warn_explicit(
            message,
            RustcallWarning,
            frame.f_code.co_filename,
            lineno,
            module=frame.f_globals.get("__name__"),
            registry=frame.f_globals.setdefault("__warningregistry__", {}),
            module_globals=frame.f_globals,
        )


class RustToolchainError(RustcallError):
    """The Rust toolchain is missing, broken, or does not match (e.g. LLVM versions)."""


class RustCacheError(RustcallError):
    """The compile cache cannot be used safely (foreign owner, unsafe mode, disk error)."""


class Diagnostic:
    """One rustc diagnostic (error, warning or note) mapped to the user's cell.

    ``line`` and ``column`` are 1-based positions in the cell, or None when the
    diagnostic has no span in the cell (for example a linker error).
    """

    __slots__ = ("code", "column", "level", "line", "message", "rendered")

    def __init__(
        self,
        level: str,
        message: str,
        code: str | None,
        line: int | None,
        column: int | None,
        rendered: str,
    ) -> None:
        self.level = level
        self.message = message
        self.code = code
        self.line = line
        self.column = column
        self.rendered = rendered

    def __repr__(self) -> str:
        where = f" at line {self.line}:{self.column}" if self.line else ""
        return f"<Diagnostic {self.level}{where}: {self.message}>"


class RustCompileError(RustcallError):
    """rustc rejected the cell; carries rustc's diagnostics with cell line numbers.

    In IPython the error renders as rustc's own messages instead of a Python
    traceback (``_render_traceback_``).
    """

    def __init__(self, diagnostics: list[Diagnostic], summary: str | None = None) -> None:
        self.diagnostics = list(diagnostics)
        errors = [d for d in self.diagnostics if d.level.startswith("error")]
        if summary is None:
            first = errors[0] if errors else (self.diagnostics[0] if self.diagnostics else None)
            if first is None:
                summary = "rustc failed without diagnostics"
            else:
                where = f"line {first.line}: " if first.line else ""
                summary = f"{where}{first.message}"
        self.summary = summary
        super().__init__(self._plain())

    @property
    def rendered(self) -> str:
        """rustc's rendered messages, ANSI colours included."""
        return "".join(d.rendered for d in self.diagnostics)

    def _plain(self) -> str:
        body = strip_ansi(self.rendered).rstrip()
        return f"{self.summary}\n{body}" if body else self.summary

    def _render_traceback_(self) -> list[str]:
        head = f"\x1b[1;31mRustCompileError\x1b[0m: {self.summary}"
        return [head, *self.rendered.rstrip().splitlines()]


class RustPanic(RustcallError):
    """A Rust panic caught at the function boundary; the process keeps running.

    Attributes: ``message`` (the panic message), ``function``, ``file``,
    ``line`` and ``column`` (the panic location; ``file`` is ``"cell"`` for
    code of the user's cell).
    """

    def __init__(
        self,
        message: str,
        function: str = "",
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.message = message
        self.function = function
        self.file = file
        self.line = line
        self.column = column
        where = f" at {file}:{line}:{column}" if file else ""
        fn = f" in {function}()" if function else ""
        super().__init__(f"Rust panic{fn}: {message}{where}")


class RustError(RustcallError):
    """A Rust function returned ``Err(e)``; ``.value`` holds the converted error."""

    def __init__(self, value: Any) -> None:
        self.value = value
        super().__init__(value)


class RustHandleError(RustcallError, ValueError):
    """A Rust handle was used after drop or move, or from a thread it cannot be used on."""


# ---------------------------------------------------------------------------
# Helpers called by the generated glue (see rustcall_magic/glue/prelude.rs).
# Codes must match `ArgError` in the prelude.

_ARG_TYPE, _ARG_OVERFLOW, _ARG_VALUE, _ARG_BUFFER = 0, 1, 2, 3

_RUST_PATH = re.compile(r"\b(?:[A-Za-z_]\w*::)+")

#: What Python passes for an item of a list/tuple argument, by the item's Rust type.
_ITEM_EXPECTED = {
    **dict.fromkeys(("i8", "i16", "i32", "i64", "i128", "isize", "u8", "u16", "u32", "u64", "u128", "usize"), "int"),
    "f32": "float",
    "f64": "float",
    "bool": "bool",
    "char": "str of length 1",
    "String": "str",
    "&str": "str",
}


def _item_of(obj: Any, path: tuple[Any, ...]) -> Any:
    """The failing part of an argument: *path* holds list indices and ("key" | "value" | "element", key) steps."""
    for step in path:
        if isinstance(step, tuple) and step[0] != "value":
            obj = step[1]  # a dict's key or a set's element is the object itself
            continue
        try:
            obj = obj[step[1] if isinstance(step, tuple) else step]
        except Exception:
            return None
    return obj


def _path_text(path: tuple[Any, ...]) -> str:
    """`` item [2]['a']``, `` key 'x'``, `` element 3``: where in an argument the failing part is."""
    out = ""
    for step in path:
        if isinstance(step, tuple) and step[0] != "value":
            out += f" {step[0]} {step[1]!r}"
        else:
            sub = f"[{step[1]!r}]" if isinstance(step, tuple) else f"[{step}]"
            out += sub if out.endswith("]") else f" item {sub}"
    return out


def _arg_error(
    signature: str,
    index: int,
    name: str,
    rust_type: str,
    expected: str,
    code: int,
    detail: str,
    obj: Any,
    path: tuple[Any, ...] = (),
    item_type: str = "",
) -> Exception:
    """The exception for an argument that did not convert (returned: the glue raises it from C,
    so that the traceback ends at the user's call)."""
    if signature.startswith("field "):  # a property setter of an exported struct
        what, signature = signature.split(":", 1)[0], signature.removeprefix("field ")
    else:
        what = f"{_fn_name(signature)}() argument {index + 1} ({name}: {rust_type})"
    if path:
        # A list/tuple item failed: talk about the item, not the whole argument.
        obj = _item_of(obj, path)
        rust_type = _RUST_PATH.sub("", item_type) or rust_type
        expected = _ITEM_EXPECTED.get(rust_type, rust_type)
        what += _path_text(path)
    kind = type(obj)
    # Qualified outside builtins and this package: numpy.bool is not bool.
    plain = kind.__module__ == "builtins" or kind.__module__.split(".")[0] == __name__.split(".")[0]
    got = kind.__qualname__ if plain else f"{kind.__module__}.{kind.__qualname__}"
    dtype = getattr(obj, "dtype", None)
    if dtype is not None and not isinstance(dtype, type):
        got += f" of dtype {dtype}"
    if code == _ARG_OVERFLOW:
        shown = repr(obj)
        if len(shown) > 40:
            shown = f"{shown[:18]}...{shown[-18:]}"
        return OverflowError(f"{what}: {shown} is out of range for {rust_type}; signature: {signature}")
    if code == _ARG_VALUE:
        return ValueError(f"{what}: {detail}; signature: {signature}")
    if code == _ARG_BUFFER:
        return BufferError(f"{what}: {detail}; signature: {signature}")
    extra = f" ({detail})" if detail else ""
    return TypeError(f"{what} must be {expected}, not {got}{extra}; signature: {signature}")


def _raise_arg_error(*args: Any) -> None:
    """Raise :func:`_arg_error`'s exception (for Python callers; IPython hides this frame)."""
    __tracebackhide__ = True
    raise _arg_error(*args)


def _fn_name(signature: str) -> str:
    """The function's name in *signature* (an instance is named like ``pair<i32, i64>``)."""
    return signature.split("(", 1)[0].rsplit("fn ", 1)[-1].strip()


def _arg_count(signature: str, expected: int, got: int) -> Exception:
    fn = _fn_name(signature)
    plural = "" if expected == 1 else "s"
    verb = "was" if got == 1 else "were"
    return TypeError(f"{fn}() takes {expected} argument{plural} but {got} {verb} given; signature: {signature}")


def _raise_arg_count(signature: str, expected: int, got: int) -> None:
    __tracebackhide__ = True
    raise _arg_count(signature, expected, got)


def _note_arg(exc: BaseException, signature: str, index: int, name: str, rust_type: str) -> None:
    """Add to *exc* (raised while an argument converted) which argument it was."""
    note = f"while converting {_fn_name(signature)}() argument {index + 1} ({name}: {rust_type}); signature: {signature}"
    if hasattr(exc, "add_note"):  # Python 3.11+
        exc.add_note(note)


def _arg_binding(signature: str, problem: str) -> Exception:
    return TypeError(f"{_fn_name(signature)}() {problem}; signature: {signature}")


def _panic(function: str, message: str, file: str | None, line: int, column: int) -> RustPanic:
    if file is not None and file.endswith("cell.rs"):
        file = "cell"
    return RustPanic(message, function, file, line or None, column or None)


def _raise_panic(function: str, message: str, file: str | None, line: int, column: int) -> None:
    __tracebackhide__ = True
    raise _panic(function, message, file, line, column)


def _rust_error(message: str) -> RustError:
    return RustError(message)
