"""Call functions of an existing C-ABI library, described with Rust type names: :func:`register_function`.

No glue is compiled for these: calls go through :mod:`ctypes` (a few hundred
ns each), with the same argument rules as compiled cells -- integers are
range-checked (OverflowError, never a silent truncation), wrong types raise
TypeError. Registered functions are also what ``%rust NAME(...)`` falls back
to when no ``%%rust`` cell defines NAME.
"""

from __future__ import annotations

import ctypes
import operator
import os
import threading
from typing import Any

from .errors import _raise_arg_count, _raise_arg_error
from .signature import INT_RANGES, POINTER_ITEMS, FnSig, Param, RType, parse_type

_SCALARS: dict[str, Any] = {
    "i8": ctypes.c_int8,
    "i16": ctypes.c_int16,
    "i32": ctypes.c_int32,
    "i64": ctypes.c_int64,
    "isize": ctypes.c_ssize_t,
    "u8": ctypes.c_uint8,
    "u16": ctypes.c_uint16,
    "u32": ctypes.c_uint32,
    "u64": ctypes.c_uint64,
    "usize": ctypes.c_size_t,
    "f32": ctypes.c_float,
    "f64": ctypes.c_double,
    "bool": ctypes.c_bool,
}

#: Buffer format codes per pointee type (the itemsize settles 'l'/'L'/'n'/'N').
_FORMATS: dict[str, str] = {
    "i8": "bc", "u8": "Bc", "c_char": "bBc", "i16": "h", "u16": "H", "i32": "il", "u32": "IL",
    "i64": "qln", "u64": "QLN", "isize": "nql", "usize": "NQL", "f32": "f", "f64": "d", "bool": "?",
}  # fmt: skip
_ITEM_SIZES = {"c_char": 1, "bool": 1, **{t: ctypes.sizeof(c) for t, c in _SCALARS.items()}}

_lock = threading.Lock()
_registry: dict[str, ExternalFunction] = {}


class ExternalFunction:
    """A function of a C-ABI library, called with rustcall_magic's argument rules.

    ``signature`` is its :class:`~rustcall_magic.signature.FnSig` (``extern "C"``),
    ``library_path`` the library it came from.
    """

    def __init__(self, name: str, library_path: str, sig: FnSig, cfunc: Any) -> None:
        self.__name__ = name
        self.__qualname__ = name
        self.library_path = library_path
        self.signature = sig
        self._cfunc = cfunc
        self._text = sig.text
        self._convert = [_converter(p.type) for p in sig.params]
        self._ret_ptr = sig.ret.kind == "ptr"
        self.__doc__ = f"{name}({', '.join(p.name for p in sig.params)})\n--\n\n{sig.text}\n\nFrom {library_path}."

    def __call__(self, *args: Any) -> Any:
        """Call the function; raises TypeError, OverflowError, ValueError or BufferError on bad arguments."""
        if len(args) != len(self._convert):
            _raise_arg_count(self._text, len(self._convert), len(args))
        keep: list[Any] = []  # objects whose memory the call borrows
        cargs = []
        for i, (conv, a) in enumerate(zip(self._convert, args, strict=True)):
            code, detail, value = conv(a, keep)
            if code is not None:
                p = self.signature.params[i]
                _raise_arg_error(self._text, i, p.name, str(p.type), _expected(p.type), code, detail, a)
            cargs.append(value)
        r = self._cfunc(*cargs)
        if self._ret_ptr:
            return r or 0
        return r

    def __repr__(self) -> str:
        return f"<external {self._text} from {self.library_path}>"


def register_function(name: str, library_path: str | os.PathLike[str], restype: str, argtypes: list[str]) -> Any:
    """Make the C-ABI symbol *name* of *library_path* callable, with Rust type names for its types.

    *restype* and each of *argtypes* is a Rust type: an integer, float or
    ``bool`` type, ``"()"`` (no return value), or a raw pointer such as
    ``"*const c_char"`` or ``"*mut f64"`` (parameters take None, an int
    address, a buffer of matching items, or for ``*const c_char`` a str;
    returned pointers are ints). The function is also reachable as
    ``%rust name(...)``. Raises ValueError for an unsupported type or a
    missing symbol, OSError when the library cannot be loaded.

    Example::

        add = rc.register_function("add", "/path/libmy.so", "i32", ["i32", "i32"])
        add(2, 3)  # 5
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"function name must be an identifier, not {name!r}")
    if isinstance(argtypes, str):
        raise TypeError("argtypes must be a list of Rust type names, not a str")
    path = os.fspath(library_path)
    ret = parse_type(restype) if restype not in (None, "") else RType("unit")
    params = tuple(Param(f"arg{i}", parse_type(t)) for i, t in enumerate(argtypes))
    for p in params:
        if _ctype(p.type, "param") is _UNSUPPORTED:
            raise ValueError(f"parameter type `{p.type}` is not supported for external functions")
    c_ret = _ctype(ret, "return")
    if c_ret is _UNSUPPORTED:
        raise ValueError(f"return type `{ret}` is not supported for external functions")
    try:
        lib = ctypes.CDLL(path)
    except OSError as e:
        raise OSError(f"cannot load library {path}: {e}") from e
    try:
        cfunc = getattr(lib, name)
    except AttributeError:
        raise ValueError(f"library {path} has no symbol {name!r}") from None
    cfunc.restype = c_ret
    cfunc.argtypes = [_ctype(p.type, "param") for p in params]
    sig = FnSig(name=name, params=params, ret=ret, doc=f"From {path}.", extern_c=True)
    fn = ExternalFunction(name, path, sig, cfunc)
    with _lock:
        _registry[name] = fn
    return fn


def registered_function(name: str) -> ExternalFunction | None:
    """The function registered under *name*, or None."""
    with _lock:
        return _registry.get(name)


def registered_functions() -> dict[str, ExternalFunction]:
    """Every registered function, by name."""
    with _lock:
        return dict(_registry)


# ---------------------------------------------------------------------------

_UNSUPPORTED = object()


def _ctype(t: RType, position: str) -> Any:
    if t.kind == "unit":
        return None if position == "return" else _UNSUPPORTED
    if t.kind == "ptr":
        if position == "param" and str(t.args[0]) not in POINTER_ITEMS:
            return _UNSUPPORTED
        return ctypes.c_void_p
    return _SCALARS.get(str(t), _UNSUPPORTED)


def _expected(t: RType) -> str:
    s = str(t)
    if s in INT_RANGES:
        return "int"
    if s in ("f32", "f64"):
        return "float"
    if s == "bool":
        return "bool"
    item = str(t.args[0]) if t.args else ""
    text = ", a str" if item in ("c_char", "u8", "i8") and not t.mutable else ""
    return f"an int address, a {'writable ' if t.mutable else ''}buffer of {item} items{text}, or None"


# A converter returns (error code or None, detail, value); codes are those of errors._raise_arg_error.
_OK, _TYPE, _OVERFLOW, _VALUE, _BUFFER = None, 0, 1, 2, 3


def _converter(t: RType) -> Any:
    s = str(t)
    if s in INT_RANGES:
        lo, hi = INT_RANGES[s]

        def conv_int(a: Any, keep: list[Any]) -> tuple[Any, str, Any]:
            try:
                v = operator.index(a)
            except TypeError:
                return _TYPE, "", None
            return (_OK, "", v) if lo <= v <= hi else (_OVERFLOW, "", None)

        return conv_int
    if s in ("f32", "f64"):
        single = s == "f32"

        def conv_float(a: Any, keep: list[Any]) -> tuple[Any, str, Any]:
            if isinstance(a, (str, bytes)) or (not hasattr(a, "__float__") and not hasattr(a, "__index__")):
                return _TYPE, "", None
            try:
                v = float(a)
            except OverflowError:
                return _OVERFLOW, "", None
            except (TypeError, ValueError):
                return _TYPE, "", None
            if single and v == v and abs(v) != float("inf") and abs(v) > 3.4028234663852886e38:
                return _OVERFLOW, "", None
            return _OK, "", v

        return conv_float
    if s == "bool":

        def conv_bool(a: Any, keep: list[Any]) -> tuple[Any, str, Any]:
            return (_OK, "", a) if isinstance(a, bool) else (_TYPE, "", None)

        return conv_bool
    item = str(t.args[0])
    mutable = t.mutable

    def conv_ptr(a: Any, keep: list[Any]) -> tuple[Any, str, Any]:
        if a is None:
            return _OK, "", None
        if isinstance(a, int) and not isinstance(a, bool):
            return (_OK, "", a) if 0 <= a < 1 << 64 else (_OVERFLOW, "", None)
        if isinstance(a, str):
            if mutable or item not in ("c_char", "u8", "i8"):
                return _TYPE, "a str can only be passed as *const c_char or *const u8", None
            data = a.encode("utf-8")  # UnicodeEncodeError for lone surrogates, as in compiled cells
            if b"\0" in data:
                at = data.index(b"\0")
                return _VALUE, f"embedded NUL character at byte {at} of a str passed as a C string", None
            keep.append(data)
            return _OK, "", ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value
        return _buffer_address(a, item, mutable, keep)

    return conv_ptr


def _buffer_address(a: Any, item: str, writable: bool, keep: list[Any]) -> tuple[Any, str, Any]:
    try:
        mv = memoryview(a)
    except TypeError:
        return _TYPE, "", None
    if item in _FORMATS:
        fmt = mv.format.lstrip("@=<") if mv.format[:1] in "@=<" else mv.format
        if fmt not in _FORMATS[item] or len(fmt) != 1 or mv.itemsize != _ITEM_SIZES[item]:
            return (
                _TYPE,
                f"got a buffer of item format '{mv.format}' ({mv.itemsize}-byte items), {item} needs format "
                + " or ".join(f"'{c}'" for c in _FORMATS[item]),
                None,
            )
    if not mv.c_contiguous:
        return _BUFFER, f"the buffer is not C-contiguous (strides {mv.strides}); pass a contiguous copy", None
    if mv.readonly and writable:
        return _BUFFER, f"the buffer is read-only, *mut {item} needs a writable one", None
    if mv.nbytes == 0:
        return _OK, "", None  # nothing to read or write: a null pointer
    raw = mv.cast("B")
    if not mv.readonly:
        arr = (ctypes.c_char * mv.nbytes).from_buffer(raw)
    elif isinstance(a, bytes):
        arr = ctypes.c_char_p(a)
    else:
        # A read-only buffer other than bytes has no ctypes address: pass a copy (the callee only reads).
        arr = (ctypes.c_char * mv.nbytes).from_buffer_copy(raw)
    keep.append((arr, raw, mv))
    return _OK, "", ctypes.cast(arr, ctypes.c_void_p).value
