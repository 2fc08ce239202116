"""Read a cell's exported Rust functions with tree-sitter; THE Rust<->Python type table.

:func:`parse_cell` returns one :class:`FnSig` per exported function: every
top-level ``pub fn`` and ``#[no_mangle] pub extern "C" fn``. Functions whose
types are not in :data:`TYPE_TABLE` are reported in :attr:`CellInfo.skipped`
(the caller turns them into :class:`~rustcall_magic.errors.RustcallWarning`).

The type table is the single place that says which Rust types cross the
boundary and what Python sees; the glue (``glue/prelude.rs``) implements one
``FromPy``/``IntoPy`` per row.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

# ---------------------------------------------------------------------------
# Types


@dataclass(frozen=True)
class RType:
    """A Rust type in canonical form (paths shortened, lifetimes dropped).

    ``kind`` is one of ``path`` (a named type, with optional generic ``args``),
    ``ref`` (``&T`` / ``&mut T``), ``slice`` (``[T]``), ``array`` (``[T; N]``, ``name``
    being the length), ``tuple``, ``unit``,
    ``ptr`` (``*const T`` / ``*mut T``), ``never``, ``user`` (an exported
    struct of the cell, ``name`` being its name; an instance of a generic struct is
    named ``W<i32>``), ``enum`` (an exported fieldless enum of the cell), ``fn`` (a
    function type: ``name`` is ``fn`` for a pointer or the trait ``Fn``/``FnMut``/
    ``FnOnce``, ``args`` the parameters then the return type), ``dyn``/``impl``
    (``dyn T`` / ``impl T`` of the one trait in ``args``), ``tparam`` (a type
    parameter of a generic function or struct, ``name`` being it), or ``other``
    (anything we do not model; ``name`` then holds its source text).
    """

    kind: str
    name: str = ""
    args: tuple[RType, ...] = ()
    mutable: bool = False

    def __str__(self) -> str:
        return self.render(lambda name: name)

    def rust(self) -> str:
        """The type as the glue module spells it (a cell's own types are ``super::Name``)."""
        return self.render(user_path, _GLUE_PATHS)

    def render(self, user: Callable[[str], str], paths: Mapping[str, str] | None = None) -> str:
        """The type as Rust text, a user type's name written by *user*, a path's by *paths* (if there)."""
        if self.kind in ("user", "enum"):
            return user(self.name)
        if self.kind == "path" and self.name == "Iterator" and len(self.args) == 1:
            return f"Iterator<Item = {self.args[0].render(user, paths)}>"
        if self.kind == "path":
            name = paths.get(self.name, self.name) if paths else self.name
            return f"{name}<{', '.join(a.render(user, paths) for a in self.args)}>" if self.args else name
        if self.kind == "fn":
            params = ", ".join(a.render(user, paths) for a in self.args[:-1])
            ret = "" if self.args[-1] == UNIT else f" -> {self.args[-1].render(user, paths)}"
            return f"{self.name}({params}){ret}"
        if self.kind in ("dyn", "impl"):
            return f"{self.kind} {self.args[0].render(user, paths)}"
        if self.kind == "ref":
            return f"&{'mut ' if self.mutable else ''}{self.args[0].render(user, paths)}"
        if self.kind == "slice":
            return f"[{self.args[0].render(user, paths)}]"
        if self.kind == "array":
            return f"[{self.args[0].render(user, paths)}; {self.name}]"
        if self.kind == "tuple":
            inner = ", ".join(a.render(user, paths) for a in self.args)
            return f"({inner},)" if len(self.args) == 1 else f"({inner})"
        if self.kind == "unit":
            return "()"
        if self.kind == "ptr":
            return f"*{'mut' if self.mutable else 'const'} {self.args[0].render(user, paths)}"
        if self.kind == "never":
            return "!"
        return self.name


UNIT = RType("unit")

#: How the generated glue module spells canonical paths that are not in its scope.
_GLUE_PATHS = {
    **{n: f"::std::collections::{n}" for n in ("HashMap", "HashSet", "BTreeMap", "BTreeSet")},
    **{f"rustcall::{n}": f"self::rustcall_glue::{n}" for n in ("NdArray", "NdArrayMut", "Array")},
}


def user_path(name: str) -> str:
    """The glue's path of the cell's type *name*, valid as a type and as an expression
    (an instance of a generic struct, ``W<i32>``, is ``super::W::<i32>``)."""
    return "super::" + name.replace("<", "::<", 1)


@dataclass(frozen=True)
class TypeRow:
    """One row of the type table: what Python passes in and gets out, and how the glue holds it.

    ``holder`` is the Rust type of the wrapper's local that owns the converted
    argument (it implements ``ArgHolder``: created empty, filled in place, so a
    borrowed buffer view never moves); ``{0}``, ``{1}``... stand for the
    row's type arguments. ``pass_as`` is the expression handed to the user's
    function, ``{v}`` being that local. By default the holder is the type
    itself, passed by value. Return values need ``IntoPy`` on the type itself.
    """

    py_in: str | None  # Python types accepted as a parameter; None = not a parameter type
    py_out: str | None  # Python type returned; None = not a return type
    holder: str | None = None
    pass_as: str = "{v}"
    #: When set, a parameter's type arguments must be one of these (e.g. slice items).
    elements: frozenset[str] | None = None
    #: How many leading type arguments must themselves be supported (None: all).
    #: ``Result<T, E>`` checks only T: any ``E: Display`` becomes the RustError text.
    checked_args: int | None = None
    #: A return of this row accepts any type arguments (a returned pointer is an int).
    any_return_args: bool = False
    #: The type also converts directly (``FromPy``), so it may nest inside another
    #: parameter type even though it has a holder of its own at top level.
    nests: bool = False
    #: The Rust value borrows memory of the Python object (``&str``): it must not be an
    #: item of a container built from a mutable sequence, whose items may be freed by
    #: Python code running while later arguments convert.
    borrows_object: bool = False
    #: Built item by item from a (mutable) list: items must not borrow their objects.
    owns_items: bool = False
    #: When set, the first type argument (a map's key, a set's item) must be one of these,
    #: or a tuple of them: the types that are ``Eq + Hash + Ord`` in Rust and hashable in Python.
    keys: frozenset[str] | None = None
    #: A parameter of this row (which has a holder) may be wrapped in ``Option``: None
    #: passes None, anything else fills the holder (``OptArg<holder>`` in the glue).
    optional: bool = False
    #: This row (``Option``) wraps a parameter whose row is ``optional``.
    wraps_optional: bool = False
    #: A callback (``Fn`` types): its parameters are converted Rust -> Python and its
    #: return Python -> Rust, so the checks of its type arguments are reversed.
    callback: bool = False
    #: How the wrapper turns the function's return value into the row's type before
    #: ``IntoPy`` (``{v}`` is the call): an ``impl Trait`` value is boxed.
    ret_as: str = "{v}"


_INT_TYPES = ("i8", "i16", "i32", "i64", "i128", "isize", "u8", "u16", "u32", "u64", "u128", "usize")
#: Item types of `&[T]` / `&mut [T]`: those with a buffer-protocol format code.
BUFFER_ITEMS = frozenset({*(t for t in _INT_TYPES if "128" not in t), "f32", "f64", "bool"})
#: Pointee types of `*const T` / `*mut T` parameters.
POINTER_ITEMS = BUFFER_ITEMS | {"c_char", "c_void"}
#: Element types of ownership handles (Box/Rc/Arc/Vec crossing into cells; isize/usize as i64/u64).
HANDLE_ITEMS = BUFFER_ITEMS
#: Key types of maps and item types of sets (and tuples of them): equal and hashable on both sides.
KEY_ITEMS = frozenset({*_INT_TYPES, "bool", "char", "String"})
#: Element types of N-d array views and returned arrays (buffer items a RustVec can hold).
ARRAY_ITEMS = BUFFER_ITEMS

#: THE type table: canonical Rust type text -> row. Later types add rows here
#: (and one FromPy/IntoPy impl in glue/prelude.rs), never branches elsewhere.
TYPE_TABLE: dict[str, TypeRow] = {
    **{t: TypeRow("int", "int") for t in _INT_TYPES},
    "f32": TypeRow("float", "float"),
    "f64": TypeRow("float", "float"),
    "bool": TypeRow("bool", "bool"),
    "char": TypeRow("str of length 1", "str"),
    "()": TypeRow(None, "None"),
    # Text is UTF-8; `&str` borrows the str object's UTF-8 buffer (zero copy).
    "&str": TypeRow("str", "str", borrows_object=True),
    "String": TypeRow("str", "str"),
    # Slices borrow a buffer-protocol object's memory (zero copy); `&[T]` also copies a list.
    "&[_]": TypeRow(
        "a buffer of {0} items (numpy array, array.array, memoryview) or a list",
        None,
        holder="SliceArg<{0}>",
        pass_as="{v}.as_slice()",
        elements=BUFFER_ITEMS,
        optional=True,
    ),
    "&mut [_]": TypeRow(
        "a writable buffer of {0} items (numpy array, array.array, bytearray, memoryview)",
        None,
        holder="SliceMutArg<{0}>",
        pass_as="{v}.as_mut_slice()",
        elements=BUFFER_ITEMS,
        optional=True,
    ),
    # Numeric Vec returns are RustVec handles (other items: lists); a RustVec argument is moved.
    # A RustVec argument is reserved at conversion and moved when the call starts.
    "Vec<_>": TypeRow(
        "a list, tuple or buffer of {0}", "RustVec or list", "VecArg<{0}>", "{v}.take()", nests=True, owns_items=True
    ),
    # Ownership handles (glue/handles.rs): borrowed by `&`, moved by value, returns are new handles.
    "&Vec<_>": TypeRow("a RustVec of {0} (borrowed)", None, "VecRef<{0}>", "{v}.get()", HANDLE_ITEMS),
    "&mut Vec<_>": TypeRow("a RustVec of {0} (mutably borrowed)", None, "VecMut<{0}>", "{v}.get_mut()", HANDLE_ITEMS),
    "Box<_>": TypeRow("a RustBox of {0} (moved)", "RustBox", "BoxArg<{0}>", "{v}.take()", HANDLE_ITEMS),
    "&Box<_>": TypeRow("a RustBox of {0} (borrowed)", None, "BoxRef<{0}>", "{v}.get()", HANDLE_ITEMS),
    "Rc<_>": TypeRow("a RustRc of {0} (moved)", "RustRc", "RcArg<{0}>", "{v}.take()", HANDLE_ITEMS),
    "&Rc<_>": TypeRow("a RustRc of {0} (borrowed)", None, "RcRef<{0}>", "{v}.get()", HANDLE_ITEMS),
    "Arc<_>": TypeRow("a RustArc of {0} (moved)", "RustArc", "ArcArg<{0}>", "{v}.take()", HANDLE_ITEMS),
    "&Arc<_>": TypeRow("a RustArc of {0} (borrowed)", None, "ArcRef<{0}>", "{v}.get()", HANDLE_ITEMS),
    # A cell's own exported structs (glue/structs.rs): `&` and `&mut` borrow the instance
    # for the call (checked like RefCell), by value moves it (copies a `Copy` type); a
    # return makes a new instance. `{0}` is the type's name.
    "{user}": TypeRow("a `{0}` instance (moved)", "{0}", "UserArg<{0}>", "{v}.take()", nests=True),
    "&{user}": TypeRow("a `{0}` instance (borrowed)", None, "UserRef<{0}>", "{v}.get()"),
    "&mut {user}": TypeRow("a `{0}` instance (mutably borrowed)", None, "UserMut<{0}>", "{v}.get_mut()"),
    # A cell's fieldless enums are enum.Enum classes whose members pass and return by value.
    "{enum}": TypeRow("a `{0}` member", "{0}"),
    "Option<_>": TypeRow("{0} or None", "value or None", wraps_optional=True),
    "Result<_, _>": TypeRow(None, "value (Err raises RustError)", checked_args=1),
    "(..)": TypeRow("a tuple", "tuple"),
    # Maps and sets are copied both ways; keys are converted and compared as Rust values.
    "HashMap<_, _>": TypeRow("a dict (any mapping) of {0} to {1}", "dict", nests=True, owns_items=True, keys=KEY_ITEMS),
    "BTreeMap<_, _>": TypeRow(
        "a dict (any mapping) of {0} to {1}", "dict (in key order)", nests=True, owns_items=True, keys=KEY_ITEMS
    ),
    "HashSet<_>": TypeRow("a set (any iterable) of {0}", "set", nests=True, owns_items=True, keys=KEY_ITEMS),
    "BTreeSet<_>": TypeRow("a set (any iterable) of {0}", "set", nests=True, owns_items=True, keys=KEY_ITEMS),
    # Fixed-size arrays: exactly N items in (tuple, list, buffer); a tuple out.
    "[_; N]": TypeRow("a tuple, list or buffer of exactly {n} {0}", "tuple", nests=True, owns_items=True),
    # 128-bit integers have no buffer format: slices of them are copied from a list or any iterable of ints.
    "&[i128]": TypeRow("a list (any iterable) of int", None, holder="ListSliceArg<i128>", pass_as="{v}.as_slice()"),
    "&[u128]": TypeRow("a list (any iterable) of int", None, holder="ListSliceArg<u128>", pass_as="{v}.as_slice()"),
    # N-d views of any buffer (glue/ndarray.rs): zero copy, any strides.
    "rustcall::NdArray<_>": TypeRow(
        "a buffer of {0} items with any shape and strides (numpy array, memoryview)",
        None,
        holder="NdArg<{0}>",
        pass_as="{v}.view()",
        elements=ARRAY_ITEMS,
        optional=True,
    ),
    "rustcall::NdArrayMut<_>": TypeRow(
        "a writable buffer of {0} items with any shape and strides (numpy array, memoryview)",
        None,
        holder="NdMutArg<{0}>",
        pass_as="{v}.view_mut()",
        elements=ARRAY_ITEMS,
        optional=True,
    ),
    # An owned N-d array: a numpy array over the Rust allocation (a RustVec with .shape without numpy).
    "rustcall::Array<_>": TypeRow(None, "numpy.ndarray (RustVec with .shape without numpy)", elements=ARRAY_ITEMS),
    # Callbacks (glue/callbacks.rs): any Python callable, called with the GIL taken again;
    # a `%%rust` function of the same Rust signature is called natively. A Python exception
    # unwinds the Rust frames and reaches the caller as itself.
    "&dyn Fn(..)": TypeRow(
        "a callable taking {params} and returning {ret}", None, "Callback<{fn}>", "&{closure}", callback=True
    ),
    "&mut dyn FnMut(..)": TypeRow(
        "a callable taking {params} and returning {ret}", None, "Callback<{fn}>", "&mut {closure}", callback=True
    ),
    "impl Fn(..)": TypeRow(
        "a callable taking {params} and returning {ret}", None, "Callback<{fn}>", "{closure}", callback=True
    ),
    "impl FnMut(..)": TypeRow(
        "a callable taking {params} and returning {ret}", None, "Callback<{fn}>", "{closure}", callback=True
    ),
    # A `fn` pointer has no state: it takes `%%rust` functions only (their native shims).
    "fn(..)": TypeRow("a `%%rust` function `{fnptr}`", None, "FnPtrArg<{fn}>", "{v}.get()", callback=True),
    # Iterators become lazy Python iterators, items converted one by one (glue/callbacks.rs).
    "Box<dyn Iterator<_>>": TypeRow(None, "iterator"),
    "impl Iterator<_>": TypeRow(None, "iterator", ret_as="Box::new({v}) as Box<dyn Iterator<Item = {0}>>"),
    "*const _": TypeRow(
        "an int address, a buffer of {0} items, or None",
        "int",
        holder="PtrArg<{0}>",
        pass_as="{v}.as_const()",
        elements=POINTER_ITEMS,
        any_return_args=True,
    ),
    "*mut _": TypeRow(
        "an int address, a writable buffer of {0} items, or None",
        "int",
        holder="PtrMutArg<{0}>",
        pass_as="{v}.as_mut()",
        elements=POINTER_ITEMS,
        any_return_args=True,
    ),
}

#: Integer ranges, for documentation and Python-side checks (e.g. ``%rust ... -> T``).
INT_RANGES: dict[str, tuple[int, int]] = {
    **{f"i{b}": (-(1 << (b - 1)), (1 << (b - 1)) - 1) for b in (8, 16, 32, 64, 128)},
    **{f"u{b}": (0, (1 << b) - 1) for b in (8, 16, 32, 64, 128)},
    "isize": (-(1 << 63), (1 << 63) - 1),
    "usize": (0, (1 << 64) - 1),
}

#: Well-known paths shortened to the names the table uses.
_PATH_ALIASES = {
    "std::string::String": "String",
    "alloc::string::String": "String",
    "std::vec::Vec": "Vec",
    "alloc::vec::Vec": "Vec",
    "std::option::Option": "Option",
    "core::option::Option": "Option",
    "std::result::Result": "Result",
    "core::result::Result": "Result",
    "std::boxed::Box": "Box",
    "std::rc::Rc": "Rc",
    "std::sync::Arc": "Arc",
    "std::os::raw::c_char": "c_char",
    "std::ffi::c_char": "c_char",
    "core::ffi::c_char": "c_char",
    "std::os::raw::c_void": "c_void",
    "std::ffi::c_void": "c_void",
    "core::ffi::c_void": "c_void",
    # A cell's own code names the glue library `rustcall` (`::rustcall::NdArray` too).
    **{f"rustcall::{n}": f"rustcall::{n}" for n in ("NdArray", "NdArrayMut", "Array")},
    **{
        f"{prefix}{name}": name
        for name, mods in (
            ("HashMap", ("collections::", "collections::hash_map::")),
            ("HashSet", ("collections::", "collections::hash_set::")),
            ("BTreeMap", ("collections::", "collections::btree_map::")),
            ("BTreeSet", ("collections::", "collections::btree_set::")),
        )
        for mod in mods
        for prefix in (f"std::{mod}", f"alloc::{mod}")
    },
    # C's number types are Rust primitives under other names (`c_char` stays itself: as a
    # pointee it means a C string).
    **{
        f"{prefix}{c}": rust
        for c, rust in (
            ("c_schar", "i8"),
            ("c_uchar", "u8"),
            ("c_short", "i16"),
            ("c_ushort", "u16"),
            ("c_int", "i32"),
            ("c_uint", "u32"),
            ("c_long", f"i{8 * struct.calcsize('l')}"),
            ("c_ulong", f"u{8 * struct.calcsize('L')}"),
            ("c_longlong", "i64"),
            ("c_ulonglong", "u64"),
            ("c_float", "f32"),
            ("c_double", "f64"),
        )
        for prefix in ("", "std::os::raw::", "std::ffi::", "core::ffi::")
    },
}


def pattern(t: RType) -> str:
    """The table key of *t*: its text with type arguments replaced by ``_``.

    ``Vec<i32>`` -> ``Vec<_>``, ``&mut [f64]`` -> ``&mut [_]``, ``*const u8`` ->
    ``*const _``, a tuple -> ``(..)``; a type without arguments is its own key.
    """
    if t.kind == "path" and t.args:
        # `Box<dyn Iterator<_>>`: a trait object argument is part of the key.
        return f"{t.name}<{', '.join(pattern(a) if a.kind in ('dyn', 'impl') else '_' for a in t.args)}>"
    if t.kind == "fn":
        return f"{t.name}(..)"
    if t.kind in ("dyn", "impl"):
        return f"{t.kind} {pattern(t.args[0])}"
    if t.kind in ("user", "enum"):
        return "{" + t.kind + "}"
    if t.kind == "ref":
        inner = t.args[0]
        prefix = "&mut " if t.mutable else "&"
        if inner.kind == "user":
            return prefix + "{user}"
        if inner.kind == "slice":
            return prefix + "[_]"
        if inner.kind == "path" and not inner.args:
            return prefix + inner.name
        return prefix + pattern(inner)
    if t.kind == "slice":
        return "[_]"
    if t.kind == "array":
        return "[_; N]"
    if t.kind == "ptr":
        return ("*mut " if t.mutable else "*const ") + "_"
    if t.kind == "tuple":
        return "(..)"
    return str(t)


def type_args(t: RType) -> tuple[RType, ...]:
    """The types that stand for ``_`` in :func:`pattern` (element types, generic arguments)."""
    if t.kind == "ref":
        inner = t.args[0]
        if inner.kind == "slice":
            return inner.args
        if inner.kind in ("path", "user", "enum") and not inner.args:
            return ()
        return type_args(inner)
    if t.kind == "path":
        return tuple(x for a in t.args for x in (type_args(a) if a.kind in ("dyn", "impl") else (a,)))
    if t.kind in ("slice", "array", "ptr", "tuple", "fn"):
        return t.args
    if t.kind in ("dyn", "impl"):
        return type_args(t.args[0])
    return ()


def type_row(t: RType, position: str) -> TypeRow | None:
    """Return the table row for *t* as a ``"param"`` or ``"return"``, or None if unsupported.

    A row with type arguments applies when each argument is itself supported
    in the same position (``Option<i64>`` needs ``i64``).
    """
    row = TYPE_TABLE.get(str(t))
    if row is None:
        row = TYPE_TABLE.get(pattern(t))
        if row is None or not _args_supported(row, t, position):
            return None
    if position == "param" and row.py_in is None:
        return None
    if position == "return" and t.kind == "ref" and pattern(t).endswith("{user}"):
        return None
    if position == "return" and row.py_out is None:
        return None
    if position == "param" and row.wraps_optional:
        inner = type_args(t)[0]
        inner_row = type_row(inner, "param")
        if inner_row is not None and inner_row.holder is not None and inner_row.optional:
            # `Option<&[T]>`: the inner holder, filled unless the argument is None.
            lifted = pass_expr(inner, "h").replace("{", "{{").replace("}", "}}")
            return replace(row, holder=f"OptArg<{holder_type(inner)}>", pass_as=f"{{v}}.as_mut().map(|h| {lifted})")
    return row


def _args_supported(row: TypeRow, t: RType, position: str) -> bool:
    args = type_args(t)
    if row.callback and pattern(t) == "fn(..)":
        return all(native_type(a) for a in args)
    if row.callback:
        return _callback_supported(args)
    if position == "return" and row.any_return_args:
        return True
    if row.elements is not None:
        return all(str(a) in row.elements for a in args)
    if position == "param" and row.owns_items and any(_borrows_object(a) for a in args):
        return False
    if row.keys is not None and not _is_key(args[0], row.keys):
        return False
    for a in args if row.checked_args is None else args[: row.checked_args]:
        inner = type_row(a, position)
        # Inside another type an argument is converted directly: no holder of its own
        # (Option may wrap the holder of an `optional` row).
        lifted = row.wraps_optional and inner is not None and inner.optional
        if inner is None or (position == "param" and inner.holder is not None and not inner.nests and not lifted):
            return False
        # An Err raises, so Result is only meaningful as the outermost return type.
        if pattern(a) == "Result<_, _>":
            return False
    return True


def _is_key(t: RType, keys: frozenset[str]) -> bool:
    """True when *t* is one of *keys* or a tuple of such types."""
    if t.kind == "tuple":
        return bool(t.args) and all(_is_key(a, keys) for a in t.args)
    return str(t) in keys


def _callback_supported(args: tuple[RType, ...]) -> bool:
    """A callback's parameters must convert Rust -> Python, its return Python -> Rust (by value)."""
    *params, ret = args
    for a in params:
        if type_row(a, "return") is None or pattern(a) == "Result<_, _>" or a.kind in ("user", "enum"):
            return False
    if ret == UNIT:
        return True
    row = type_row(ret, "param")
    return row is not None and (row.holder is None or row.nests) and not _borrows_object(ret) and (
        ret.kind not in ("user", "enum")
    )


#: Types a `%%rust` function may take and return to be called natively as another
#: cell's callback: plain values whose memory no allocator owns.
_NATIVE_SCALARS = frozenset({*_INT_TYPES, "f32", "f64", "bool", "char", "()", "&str"})


def native_type(t: RType) -> bool:
    """True when a value of type *t* may pass between two cells' code directly (no conversion)."""
    if str(t) in _NATIVE_SCALARS:
        return True
    key = pattern(t)
    if key in ("&[_]", "&mut [_]"):
        return str(type_args(t)[0]) in BUFFER_ITEMS
    if key in ("Option<_>", "(..)"):
        return all(native_type(a) for a in type_args(t))
    return False


def callback_fn(t: RType) -> RType:
    """The ``fn`` type inside a callback type (``&dyn Fn(A) -> R`` -> ``Fn(A) -> R``)."""
    while t.kind != "fn":
        t = t.args[0]
    return t


def fn_pointer(params: tuple[RType, ...] | list[RType], ret: RType) -> str:
    """Rust text of the function pointer type with *params* and *ret* (``fn(f64) -> f64``)."""
    return RType("fn", "fn", (*params, ret)).rust()


def _closure(t: RType, var: str) -> str:
    """A Rust closure of callback type *t* calling through the holder *var* (see glue/callbacks.rs)."""
    f = callback_fn(t)
    *params, ret = f.args
    xs = [f"x{i}" for i in range(len(params))]
    typed = ", ".join(f"{x}: {p.rust()}" for x, p in zip(xs, params, strict=True))
    tup = f"({xs[0]},)" if len(xs) == 1 else f"({', '.join(xs)})"
    return f"|{typed}| -> {ret.rust()} {{ unsafe {{ {var}.call({tup}) }} }}"


def _borrows_object(t: RType) -> bool:
    """True when a parameter value of type *t* (or any part of it) borrows a Python object's memory."""
    row = TYPE_TABLE.get(str(t)) or TYPE_TABLE.get(pattern(t))
    return bool(row and row.borrows_object) or any(_borrows_object(a) for a in type_args(t))


#: Rows whose values are memory of the ownership runtime (its allocator frees them).
_RUNTIME_MEMORY = frozenset({"Vec<_>", "&mut Vec<_>", "Box<_>", "Rc<_>", "Arc<_>", "rustcall::Array<_>"})


def runtime_memory(t: RType) -> RType | None:
    """The part of *t* that moves memory between a cell and the ownership runtime, if any:
    a numeric ``Vec`` (a RustVec's buffer), ``&mut Vec`` (may reallocate one), a returned
    ``rustcall::Array`` (its Vec becomes a RustVec), or a ``Box``/``Rc``/``Arc`` by value (at any depth)."""
    key = pattern(t)
    args = type_args(t)
    if key in _RUNTIME_MEMORY and (key not in ("Vec<_>", "&mut Vec<_>") or str(args[0]) in HANDLE_ITEMS):
        return t
    return next((found for a in args if (found := runtime_memory(a)) is not None), None)


def py_in_text(t: RType) -> str:
    """What Python passes for a parameter of type *t*, for error messages (``"str"``, ``"... or None"``)."""
    row = type_row(t, "param")
    if row is None or row.py_in is None:
        return str(t)
    args = type_args(t)
    if t.kind == "path" and t.name == "Option" and args:
        return f"{py_in_text(args[0])} or None"
    if row.callback and pattern(t) == "fn(..)":
        return row.py_in.format(fnptr=fn_pointer_text(t))
    if row.callback:
        *params, ret = callback_fn(t).args
        shown = f"({', '.join(str(p) for p in params)})" if params else "no arguments"
        return row.py_in.format(params=shown, ret=str(ret)) + f", or a `%%rust` function `{fn_pointer_text(t)}`"
    return row.py_in.format(*(str(a) for a in _row_args(t)), n=t.name if t.kind == "array" else "")


def fn_pointer_text(t: RType) -> str:
    """The ``fn`` pointer type matching callback type *t*, as the user reads it."""
    f = callback_fn(t)
    return str(RType("fn", "fn", f.args))


def _row_args(t: RType) -> tuple[RType, ...]:
    """What ``{0}``... stand for in *t*'s row: its type arguments, or the user type itself."""
    if t.kind in ("user", "enum"):
        return (t,)
    if t.kind == "ref" and t.args[0].kind == "user":
        return (t.args[0],)
    return type_args(t)


def holder_type(t: RType) -> str:
    """Rust type of the wrapper local that holds a converted argument of type *t*."""
    row = type_row(t, "param")
    if row is None or row.holder is None:
        return t.rust()
    extra = {"fn": fn_pointer(callback_fn(t).args[:-1], callback_fn(t).args[-1])} if row.callback else {}
    return row.holder.format(*(a.rust() for a in _row_args(t)), **extra)


def pass_expr(t: RType, var: str) -> str:
    """The expression that hands the holder *var* to the user's function as a *t*."""
    row = type_row(t, "param")
    template = row.pass_as if row is not None else "{v}"
    extra = {"closure": _closure(t, var)} if row is not None and row.callback else {}
    return template.format(v=var, **extra)


def ret_expr(t: RType, call: str) -> str:
    """The expression turning the function's result *call* into the value its ``IntoPy`` converts."""
    row = type_row(t, "return")
    if row is None or row.ret_as == "{v}":
        return call
    return row.ret_as.format(*(a.rust() for a in type_args(t)), v=call)


# ---------------------------------------------------------------------------
# Signatures


@dataclass(frozen=True)
class Param:
    """One parameter: its pattern text and its canonical type."""

    name: str
    type: RType


@dataclass(frozen=True)
class FnSig:
    """An exported function of a cell.

    ``name`` is the Python name; ``rust_name`` the Rust one where they differ
    (a raw identifier: ``r#type`` is bound as ``type``). ``line`` is 1-based in
    the cell. ``extern_c`` marks ``extern "C"`` items (the build compiles them
    as ``extern "C-unwind"``, see :func:`unwinding_source`).
    """

    name: str
    params: tuple[Param, ...]
    ret: RType
    doc: str = ""
    line: int = 0
    extern_c: bool = False
    rust_name: str = ""
    #: For a method of an exported type: ``&self``, ``&mut self`` or ``self`` ("" for an
    #: associated function), and the type's name in ``owner``.
    receiver: str = ""
    owner: str = ""
    #: A generic function: its type parameters in order, the text of its ``<..>`` (bounds
    #: included) and of its ``where`` clause. Such a signature is not called as it is: an
    #: instance (below) is built per tuple of type arguments.
    type_params: tuple[str, ...] = ()
    generics: str = ""
    where: str = ""
    #: An instance of a generic function (``name`` is ``f<i32>``, ``rust_name`` ``f::<i32>``):
    #: the generic's name and the type arguments, in order.
    generic: str = ""
    type_args: tuple[str, ...] = ()

    @property
    def rust_path(self) -> str:
        """The Rust identifier to call the function by."""
        return self.rust_name or self.name

    @property
    def text(self) -> str:
        """The signature as Rust text, e.g. ``fn add(a: i64, b: i64) -> i64``."""
        args = ", ".join([*([self.receiver] if self.receiver else []), *(f"{p.name}: {p.type}" for p in self.params)])
        ret = "" if self.ret == UNIT else f" -> {self.ret}"
        abi = 'extern "C" ' if self.extern_c else ""
        name = self.name if self.generic else self.rust_path
        where = f" {self.where}" if self.where else ""
        return f"pub {abi}fn {name}{self.generics}({args}){ret}{where}"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form (stored in cache metadata)."""
        return {
            "name": self.name,
            "params": [[p.name, _type_to_json(p.type)] for p in self.params],
            "ret": _type_to_json(self.ret),
            "doc": self.doc,
            "line": self.line,
            "extern_c": self.extern_c,
            "rust_name": self.rust_name,
            **(
                {"type_params": list(self.type_params), "generics": self.generics, "where": self.where}
                if self.type_params
                else {}
            ),
            **({"generic": self.generic, "type_args": list(self.type_args)} if self.generic else {}),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> FnSig:
        """Inverse of :meth:`to_json`."""
        return cls(
            name=d["name"],
            params=tuple(Param(n, _type_from_json(t)) for n, t in d["params"]),
            ret=_type_from_json(d["ret"]),
            doc=d.get("doc", ""),
            line=d.get("line", 0),
            extern_c=d.get("extern_c", False),
            rust_name=d.get("rust_name", ""),
            type_params=tuple(d.get("type_params", ())),
            generics=d.get("generics", ""),
            where=d.get("where", ""),
            generic=d.get("generic", ""),
            type_args=tuple(d.get("type_args", ())),
        )


def _type_to_json(t: RType) -> list[Any]:
    return [t.kind, t.name, [_type_to_json(a) for a in t.args], t.mutable]


def _type_from_json(j: list[Any]) -> RType:
    kind, name, args, mutable = j
    return RType(kind, name, tuple(_type_from_json(a) for a in args), mutable)


@dataclass(frozen=True)
class Field:
    """A field of an exported struct: name (``0``, ``1``... in a tuple struct), type, and ``pub``."""

    name: str
    type: RType
    public: bool


#: Arithmetic traits that become Python operators.
OPERATORS = ("Add", "Sub", "Mul", "Div", "Rem")


@dataclass(frozen=True)
class Variant:
    """A variant of an exported enum with data: name, ``named``/``tuple``/``unit`` shape, fields."""

    name: str
    shape: str
    fields: tuple[Field, ...] = ()

    @property
    def text(self) -> str:
        """The variant as Rust text, e.g. ``Circle(f64)`` or ``Rect { w: f64, h: f64 }``."""
        if self.shape == "named":
            return f"{self.name} {{ " + ", ".join(f"{f.name}: {f.type}" for f in self.fields) + " }"
        if self.shape == "tuple":
            return f"{self.name}(" + ", ".join(str(f.type) for f in self.fields) + ")"
        return self.name


@dataclass
class UserType:
    """An exported ``pub struct`` or fieldless ``pub enum`` of a cell, with the ``pub`` items
    of its inherent impls.

    ``shape`` is ``named``, ``tuple``, ``unit``, ``enum`` (fieldless) or ``data`` (an
    enum with data, a class per variant in ``cases``). ``methods`` holds every
    exported associated function (``receiver`` says which take ``self``);
    ``traits`` the traits named by ``#[derive]`` and ``impl Trait for``.
    """

    name: str
    shape: str
    fields: tuple[Field, ...] = ()
    doc: str = ""
    line: int = 0
    traits: list[str] = field(default_factory=list)
    methods: list[FnSig] = field(default_factory=list)
    #: A fieldless enum's (variant, discriminant) pairs; its ``shape`` is ``enum``.
    variants: tuple[tuple[str, int], ...] = ()
    #: An enum with data (``shape`` ``data``): its variants.
    cases: tuple[Variant, ...] = ()
    #: ``impl Op<R> for S`` with R another supported type than ``Self``: (trait name, R).
    operators: list[tuple[str, RType]] = field(default_factory=list)
    #: ``impl Op<S> for L`` with L another supported type: (trait name, L), for ``l op s``.
    reflected: list[tuple[str, RType]] = field(default_factory=list)
    #: A generic struct (``pub struct W<T>``): its type parameters and ``<..>`` text. It is
    #: not exported as it is: a class is built per tuple of type arguments (``W<i32>``),
    #: with the methods of its ``impl<T> W<T>`` blocks.
    type_params: tuple[str, ...] = ()
    generics: str = ""

    @property
    def kind(self) -> str:
        """``user`` for a struct, ``enum`` for a fieldless enum (the :class:`RType` kind of its uses)."""
        return "enum" if self.shape == "enum" else "user"

    @property
    def text(self) -> str:
        """The declaration as Rust text, e.g. ``pub struct Point { pub x: f64, pub y: f64 }``."""
        if self.shape == "enum":
            return f"pub enum {self.name} {{ " + ", ".join(f"{v} = {d}" for v, d in self.variants) + " }"
        if self.shape == "data":
            return f"pub enum {self.name} {{ " + ", ".join(c.text for c in self.cases) + " }"
        def one(f: Field) -> str:
            vis = "pub " if f.public else ""
            return f"{vis}{f.type}" if self.shape == "tuple" else f"{vis}{f.name}: {f.type}"

        body = ", ".join(one(f) for f in self.fields)
        if self.shape == "unit":
            return f"pub struct {self.name};"
        if self.shape == "tuple":
            return f"pub struct {self.name}({body});"
        return f"pub struct {self.name} {{ {body} }}"

    @property
    def constructor(self) -> FnSig | None:
        """``pub fn new(..) -> Self`` (or ``-> Result<Self, E>``: an ``Err`` raises RustError), when the impl has one."""
        me = RType("user", self.name)

        def makes_self(t: RType) -> bool:
            return t == me or (t.kind == "path" and t.name == "Result" and bool(t.args) and t.args[0] == me)

        return next((m for m in self.methods if m.name == "new" and not m.receiver and makes_self(m.ret)), None)

    @property
    def fieldwise(self) -> bool:
        """True when ``S(...)`` builds the value from its fields (every field ``pub`` and supported)."""
        return self.shape != "data" and all(f.public and field_supported(f.type) for f in self.fields)

    @property
    def properties(self) -> list[Field]:
        """The ``pub`` fields whose types cross (readable and settable; a tuple struct's ``.0`` is ``_0``)."""
        if self.shape not in ("named", "tuple"):
            return []
        return [f for f in self.fields if f.public and field_supported(f.type)]


def field_supported(t: RType) -> bool:
    """True when a field of type *t* can be read (a clone is returned) and set (converted like an argument)."""
    row = type_row(t, "param")
    return row is not None and (row.holder is None or row.nests) and type_row(t, "return") is not None


@dataclass
class CellInfo:
    """What :func:`parse_cell` found: exported functions and types, and skipped ones."""

    functions: list[FnSig] = field(default_factory=list)
    #: Exported structs with their methods.
    types: list[UserType] = field(default_factory=list)
    #: (function name, reason) for every ``pub fn`` that is not exported.
    skipped: list[tuple[str, str]] = field(default_factory=list)
    #: True when the cell's syntax tree has errors (rustc will report them).
    has_syntax_errors: bool = False
    #: Per exported ``extern "C"`` function: (byte start, byte end, replacement) making its ABI
    #: ``"C-unwind"`` (see :func:`unwinding_source`).
    abi_edits: dict[str, tuple[int, int, str]] = field(default_factory=dict)

    def without(self, demoted: dict[str, str]) -> CellInfo:
        """This info with the functions named in *demoted* (name -> reason) moved to ``skipped``."""
        for t in self.types:
            t.methods = [m for m in t.methods if f"{t.name}.{m.name}" not in demoted]
        return CellInfo(
            functions=[f for f in self.functions if f.name not in demoted],
            types=self.types,
            skipped=[*self.skipped, *demoted.items()],
            has_syntax_errors=self.has_syntax_errors,
            abi_edits={k: v for k, v in self.abi_edits.items() if k not in demoted},
        )


def unwinding_source(source: str, info: CellInfo) -> str:
    """*source* with the ABI of every exported ``extern "C"`` function made ``"C-unwind"``.

    Rust aborts the process when a panic reaches the end of an ``extern "C"``
    function, before any caller could catch it; ``"C-unwind"`` is the same C
    calling convention but lets the panic reach the Python wrapper's
    ``catch_unwind`` (a foreign C caller still gets the abort: no handler is
    found). Lines do not move; columns after the ABI on its line shift.
    """
    if not info.abi_edits:
        return source
    data = source.encode("utf-8")
    for start, end, text in sorted(info.abi_edits.values(), reverse=True):
        data = data[:start] + text.encode() + data[end:]
    return data.decode("utf-8")


@lru_cache(maxsize=1)
def _parser() -> Any:
    # Imported lazily: a cache hit never parses, and import time matters there.
    import tree_sitter_rust
    from tree_sitter import Language, Parser

    return Parser(Language(tree_sitter_rust.language()))


#: The glue library's types a cell imports by name (`use rustcall::NdArray;`): name -> path.
_IMPORTED: ContextVar[Mapping[str, str] | None] = ContextVar("_IMPORTED", default=None)
_GLUE_TYPES = ("NdArray", "NdArrayMut", "Array")


def _glue_imports(children: list[Any]) -> dict[str, str]:
    """Names the cell's top-level ``use rustcall::...`` items bring into scope, as table paths."""
    out: dict[str, str] = {}
    for n in children:
        if n.type != "use_declaration":
            continue
        text = " ".join(_text(n).split()).removeprefix("pub ").removeprefix("use ").rstrip(";").strip()
        text = text.removeprefix("::")
        if not text.startswith("rustcall::"):
            continue
        rest = text.removeprefix("rustcall::").strip()
        items = [i.strip() for i in rest.strip("{}").split(",")] if rest.startswith("{") else [rest]
        for item in items:
            name, _, alias = (p.strip() for p in item.partition(" as "))
            if name == "*":
                out.update({t: f"rustcall::{t}" for t in _GLUE_TYPES})
            elif name in _GLUE_TYPES:
                out[alias or name] = f"rustcall::{name}"
    return out


def parse_cell(source: str) -> CellInfo:
    """Parse *source* and return its exported functions and types (see module docstring)."""
    data = source.encode("utf-8")
    tree = _parser().parse(data)
    root = tree.root_node
    token = _IMPORTED.set(_glue_imports(root.children))
    try:
        return _parse_items(root)
    finally:
        _IMPORTED.reset(token)


def _parse_items(root: Any) -> CellInfo:
    info = CellInfo(has_syntax_errors=root.has_error)
    children = root.children
    # Memory of the ownership runtime comes from the process's global allocator: a cell
    # with its own would free it with another one.
    own_allocator = any(
        n.type == "attribute_item" and (a := _first_of(n, "attribute")) is not None and _text(a) == "global_allocator"
        for n in children
    )
    types = _collect_types(children, info)
    users = {n: t.kind for n, t in types.items()}
    for i, node in enumerate(children):
        if node.type == "impl_item":
            _collect_impl(node, types, users, info, own_allocator)
            continue
        names = _pub_fn_names(node)
        if names is None:
            continue
        name, rust_name = names
        attrs, doc = _leading_attrs_and_doc(children, i)
        modifiers = _first_of(node, "function_modifiers")
        mods = _text(modifiers) if modifiers is not None else ""
        extern_c = False
        extern = _first_of(modifiers, "extern_modifier") if modifiers is not None else None
        if extern is not None:
            abi_node = _first_of(extern, "string_literal")
            abi = _text(abi_node).strip('"') if abi_node is not None else ""
            if abi not in ("", "C", "C-unwind"):
                info.skipped.append((name, f'ABI "{abi}" is not supported'))
                continue
            extern_c = abi in ("", "C")
            if not any(a in ("no_mangle", "unsafe(no_mangle)") for a in attrs):
                info.skipped.append((name, 'an extern "C" fn needs #[no_mangle] to be exported'))
                continue
            if abi_node is not None and extern_c:
                info.abi_edits[name] = (abi_node.start_byte, abi_node.end_byte, '"C-unwind"')
            elif abi_node is None:
                info.abi_edits[name] = (extern.end_byte, extern.end_byte, ' "C-unwind"')
        reason = _unsupported_modifier(mods, extern is not None)
        if reason:
            info.skipped.append((name, reason))
            continue
        parsed = _fn_types(node, users, None, own_allocator)
        if isinstance(parsed, str):
            info.skipped.append((name, parsed))
            continue
        params, ret, _, (tnames, gtext, where) = parsed
        if tnames and extern is not None:
            info.skipped.append((name, 'a generic extern "C" fn has no symbol to export'))
            continue
        info.functions.append(
            FnSig(
                name=name,
                params=params,
                ret=ret,
                doc=doc,
                line=node.start_point[0] + 1,
                extern_c=extern_c,
                rust_name=rust_name if rust_name != name else "",
                type_params=tnames,
                generics=gtext,
                where=where,
            )
        )
    info.types = list(types.values())
    return info


def _pub_fn_names(node: Any) -> tuple[str, str] | None:
    """(name in Python, name in Rust) of *node* when it is a named ``pub fn`` item, else None.
    A raw identifier (`r#type`) is bound under the name Python spells (`type`)."""
    if node.type != "function_item" or not _is_pub(node):
        return None
    name_node = node.child_by_field_name("name")
    if name_node is None:
        return None
    rust_name = _text(name_node)
    return rust_name.removeprefix("r#"), rust_name


def _is_pub(node: Any) -> bool:
    vis = node.child_by_field_name("visibility") or _first_of(node, "visibility_modifier")
    return vis is not None and _text(vis) == "pub"


def type_params_of(node: Any) -> tuple[tuple[str, ...], str, str] | str:
    """(type parameter names in order, ``<..>`` text, ``where`` clause text) of an item, or why
    its generics cannot be exported. Lifetimes are no type parameters (they are erased)."""
    tp = node.child_by_field_name("type_parameters")
    where = _first_of(node, "where_clause")
    names: list[str] = []
    for c in tp.children if tp is not None else ():
        if c.type in ("<", ">", ",", "lifetime", "lifetime_parameter", "line_comment", "block_comment"):
            continue
        if c.type == "const_parameter":
            return f"const generic parameters cannot be exported (`{' '.join(_text(c).split())}`)"
        ident = c.child_by_field_name("name") or (c if c.type == "type_identifier" else _first_of(c, "type_identifier"))
        if ident is None:
            return f"type parameter `{_text(c)}` is not supported"
        names.append(_text(ident))
    text = " ".join(_text(tp).split()) if tp is not None and names else ""
    return tuple(names), text, " ".join(_text(where).split()) if where is not None and names else ""


def mark_type_params(t: RType, names: frozenset[str] | tuple[str, ...]) -> RType:
    """*t* with every bare path naming one of *names* made a ``tparam``."""
    if t.kind == "path" and not t.args and t.name in names:
        return RType("tparam", t.name)
    if not t.args:
        return t
    return RType(t.kind, t.name, tuple(mark_type_params(a, names) for a in t.args), t.mutable)


def substitute(t: RType, args: Mapping[str, RType], user: Mapping[str, str] | None = None) -> RType:
    """*t* with each type parameter replaced by its argument in *args*, and each user type
    named in *user* renamed (``W`` -> ``W<i32>``, the instance of a generic struct)."""
    if t.kind == "tparam":
        return args.get(t.name, t)
    if t.kind == "user" and user and t.name in user:
        return RType("user", user[t.name])
    if not t.args:
        return t
    return RType(t.kind, t.name, tuple(substitute(a, args, user) for a in t.args), t.mutable)


def has_type_params(t: RType) -> bool:
    """True when *t* mentions a type parameter."""
    return t.kind == "tparam" or any(has_type_params(a) for a in t.args)


#: What a type parameter stands for while a generic signature is checked (any supported
#: scalar: the instance's own types are checked when it is built).
_PLACEHOLDER = RType("path", "i64")


def _fn_types(
    node: Any, users: Mapping[str, str], self_name: str | None, own_allocator: bool, outer: tuple[str, ...] = ()
) -> tuple[tuple[Param, ...], RType, str, tuple[tuple[str, ...], str, str]] | str:
    """(parameters, return type, receiver, :func:`type_params_of`) of function item *node*, or why
    it cannot be exported (a method cannot be generic).

    Type parameters (the function's own, and *outer* ones of a generic impl) become
    ``tparam`` types; such a type is supported when it is with a scalar in their place.
    """
    generics = type_params_of(node)
    if isinstance(generics, str):
        return generics
    if generics[0] and self_name is not None:
        return "generic methods cannot be exported (type `" + generics[1] + "`)"
    tnames = frozenset((*outer, *generics[0]))
    placeholders = dict.fromkeys(tnames, _PLACEHOLDER)

    def checked(t: RType) -> RType:
        return substitute(t, placeholders) if tnames else t

    params_node = node.child_by_field_name("parameters")
    params: list[Param] = []
    receiver = ""
    for p in params_node.children if params_node is not None else ():
        if p.type in ("(", ")", ",", "line_comment", "block_comment", "attribute_item"):
            continue
        if p.type == "self_parameter" and self_name is not None:
            text = " ".join(_text(p).split())
            if any(c.type == "lifetime" for c in p.children):
                text = "&mut self" if "mut" in text.split() else "&self"
            receiver = {"mut self": "self"}.get(text, text)
            if receiver not in ("&self", "&mut self", "self"):
                return f"receiver `{text}` is not supported"
            continue
        if p.type != "parameter":
            return f"parameter `{_text(p)}` is not supported"
        pat = p.child_by_field_name("pattern")
        ty_node = p.child_by_field_name("type")
        if pat is None or ty_node is None:
            return f"parameter `{_text(p)}` is not supported"
        rt = mark_type_params(rtype_of(ty_node, users, self_name), tnames)
        if type_row(checked(rt), "param") is None:
            bad = f"type `{rt}` (parameter `{_text(pat)}`) is not supported"
            if pattern(rt) == "Vec<_>" and _borrows_object(rt):
                bad += "; use `Vec<String>` (a list's items cannot be borrowed for the call)"
            if rt.kind == "path" and rt.name in _GLUE_TYPES:
                bad += f"; write `rustcall::{rt.name}` or add `use rustcall::{rt.name};`"
            return bad
        pname = _text(pat)
        if not pname.isidentifier():
            pname = f"arg{len(params)}"
        params.append(Param(pname.removeprefix("mut "), rt))
    ret_node = node.child_by_field_name("return_type")
    ret = mark_type_params(rtype_of(ret_node, users, self_name), tnames) if ret_node is not None else UNIT
    if type_row(checked(ret), "return") is None:
        return f"return type `{ret}` is not supported"
    shared = next((m for t in (*(p.type for p in params), ret) if (m := runtime_memory(checked(t))) is not None), None)
    if own_allocator and shared is not None:
        return (
            f"the cell sets its own #[global_allocator], and `{shared}` would hand memory between it and "
            "the ownership runtime's allocator"
        )
    return tuple(params), ret, receiver, generics


def _derives(attrs: list[str]) -> list[str]:
    out: list[str] = []
    for a in attrs:
        if a.startswith("derive(") and a.endswith(")"):
            out += [w.strip().split("::")[-1] for w in a[len("derive(") : -1].split(",") if w.strip()]
    return out


def _collect_types(children: list[Any], info: CellInfo) -> dict[str, UserType]:
    """The cell's exportable ``pub struct`` items by name (others go to ``info.skipped``)."""
    found: dict[str, tuple[int, Any]] = {}
    for i, node in enumerate(children):
        if node.type in ("struct_item", "enum_item") and _is_pub(node):
            name_node = node.child_by_field_name("name")
            if name_node is None:
                continue
            name = _text(name_node)
            tp_node = node.child_by_field_name("type_parameters")
            generic = type_params_of(node) if tp_node is not None else None
            plain_generic = (
                node.type == "struct_item"
                and isinstance(generic, tuple)
                and generic[0]
                and not any(c.type in ("lifetime", "lifetime_parameter") for c in tp_node.children)
            )
            if tp_node is not None and not plain_generic:
                tp = _text(tp_node)
                what = "an enum" if node.type == "enum_item" else "a struct"
                info.skipped.append((name, f"{what} with generic or lifetime parameters (`{tp}`) cannot be exported"))
            elif node.type == "enum_item" and (reason := _enum_variants(node)) in _ENUM_REFUSALS:
                info.skipped.append((name, str(reason)))
            else:
                found[name] = (i, node)
    users = {n: _type_kind(node) for n, (_, node) in found.items()}
    types: dict[str, UserType] = {}
    for name, (i, node) in found.items():
        attrs, doc = _leading_attrs_and_doc(children, i)
        line = node.start_point[0] + 1
        body = node.child_by_field_name("body")
        if node.type == "enum_item" and users[name] == "enum":
            variants = _enum_variants(node)
            assert not isinstance(variants, str)
            types[name] = UserType(name, "enum", (), doc, line, _derives(attrs), variants=variants)
        elif node.type == "enum_item":
            cases = []
            for v in body.children if body is not None else ():
                if v.type == "enum_variant":
                    vshape, vfields = _fields_of(v.child_by_field_name("body"), users, name, public=True)
                    cases.append(Variant(_text(v.child_by_field_name("name")), vshape, vfields))
            bad = next(((c, f) for c in cases for f in c.fields if not field_supported(f.type)), None)
            if bad is not None:
                c, f = bad
                info.skipped.append((name, f"type `{f.type}` of variant `{c.name}` is not supported"))
                continue
            types[name] = UserType(name, "data", (), doc, line, _derives(attrs), cases=tuple(cases))
        else:
            shape, fields = _fields_of(body, users, name)
            generic = type_params_of(node)
            tnames, gtext = generic[:2] if isinstance(generic, tuple) else ((), "")
            if tnames:
                fields = tuple(Field(f.name, mark_type_params(f.type, tnames), f.public) for f in fields)
            types[name] = UserType(
                name, shape, fields, doc, line, _derives(attrs), type_params=tnames, generics=gtext
            )
    return types


def _type_kind(node: Any) -> str:
    """``enum`` for a fieldless enum item (an enum.Enum class), ``user`` for a struct or an enum with data."""
    return "enum" if node.type == "enum_item" and not isinstance(_enum_variants(node), str) else "user"


def _fields_of(
    body: Any, users: Mapping[str, str], self_name: str, public: bool = False
) -> tuple[str, tuple[Field, ...]]:
    """(shape, fields) of a struct or enum variant body (*public*: every field is, as in a variant)."""
    fields: list[Field] = []
    if body is not None and body.type == "field_declaration_list":
        for f in body.children:
            if f.type == "field_declaration":
                fname, fty = f.child_by_field_name("name"), f.child_by_field_name("type")
                vis = _first_of(f, "visibility_modifier")
                if fname is not None and fty is not None:
                    pub = public or (vis is not None and _text(vis) == "pub")
                    fields.append(Field(_text(fname), rtype_of(fty, users, self_name), pub))
        return "named", tuple(fields)
    if body is not None and body.type == "ordered_field_declaration_list":
        pub = False
        for c in body.children:
            if c.type == "visibility_modifier":
                pub = _text(c) == "pub"
            elif c.is_named and c.type not in ("line_comment", "block_comment", "attribute_item"):
                fields.append(Field(str(len(fields)), rtype_of(c, users, self_name), public or pub))
                pub = False
        return "tuple", tuple(fields)
    return "unit", ()


def _enum_variants(node: Any) -> tuple[tuple[str, int], ...] | str:
    """(variant, discriminant) of a fieldless enum; ``"data"`` for an enum with data; else why the
    enum is not exported."""
    body = node.child_by_field_name("body")
    out: list[tuple[str, int]] = []
    nxt = 0
    for v in body.children if body is not None else ():
        if v.type != "enum_variant":
            continue
        vname = _text(v.child_by_field_name("name"))
        if v.child_by_field_name("body") is not None:
            return "data"  # an enum with data: a class per variant
        value = v.child_by_field_name("value")
        if value is not None:
            try:
                nxt = int("".join(_text(value).split()).replace("_", ""), 0)
            except ValueError:
                return f"the discriminant of `{vname}` is not an integer literal"
        out.append((vname, nxt))
        nxt += 1
    if not out:
        return _NO_VARIANTS
    return tuple(out)


_NO_VARIANTS = "an enum without variants has no values"


class _Refusals:
    """Matches the reasons :func:`_enum_variants` gives for not exporting an enum."""

    def __contains__(self, reason: object) -> bool:
        return isinstance(reason, str) and reason != "data"


_ENUM_REFUSALS = _Refusals()


def _collect_impl(
    node: Any, types: dict[str, UserType], users: Mapping[str, str], info: CellInfo, own_allocator: bool
) -> None:
    """Adds the ``pub fn`` items of an inherent impl (or the trait name of a trait impl) to its type."""
    ty = node.child_by_field_name("type")
    trait = node.child_by_field_name("trait")
    # `impl<T> W<T>` (and `impl<T: Trait> Trait for W<T>`) of a generic struct: its methods
    # become the methods of every instance of W, the impl's parameters renamed to W's.
    outer: tuple[str, ...] = ()
    rename: dict[str, RType] = {}
    base = ty.child_by_field_name("type") if ty is not None and ty.type == "generic_type" else None
    if base is not None and base.type == "type_identifier" and _text(base) in types and types[_text(base)].type_params:
        ut = types[_text(base)]
        if trait is not None:
            ut.traits.append(_text(trait).split("<")[0].split("::")[-1])
            return
        generic = type_params_of(node)
        args_node = ty.child_by_field_name("type_arguments")
        args = [_text(c) for c in (args_node.children if args_node is not None else ()) if c.is_named]
        if isinstance(generic, str) or sorted(args) != sorted(generic[0]) or len(args) != len(ut.type_params):
            info.skipped.append((ut.name, f"`impl {' '.join(_text(ty).split())}` (not `impl<..> {ut.name}<..>` over all its parameters) is not exported"))
            return
        outer = generic[0]
        rename = {a: RType("tparam", p) for a, p in zip(args, ut.type_params, strict=True)}
        _collect_methods(node, ut, users, info, own_allocator, outer, rename)
        return
    if ty is not None and trait is not None and (ty.type != "type_identifier" or _text(ty) not in types):
        # `impl Mul<S> for f64`: `2.0 * s` (the left-hand side is another supported type).
        tr, lhs = rtype_of(trait, users), rtype_of(ty, users)
        name = tr.name.split("::")[-1]
        if name in OPERATORS and len(tr.args) == 1 and tr.args[0].kind == "user" and tr.args[0].name in types:
            if field_supported(lhs) and node.child_by_field_name("type_parameters") is None:
                types[tr.args[0].name].reflected.append((name, lhs))
        return
    if ty is None or ty.type != "type_identifier" or _text(ty) not in types:
        return
    ut = types[_text(ty)]
    if trait is not None:
        name = _text(trait).split("<")[0].split("::")[-1]
        ut.traits.append(name)
        # `impl Mul<f64> for S`: an operator whose right-hand side is another supported type.
        tr = rtype_of(trait, users, ut.name)
        if name in OPERATORS and len(tr.args) == 1 and tr.args[0] != RType(ut.kind, ut.name):
            rhs = tr.args[0]
            if field_supported(rhs) and node.child_by_field_name("type_parameters") is None:
                ut.operators.append((name, rhs))
        return
    if node.child_by_field_name("type_parameters") is not None:
        info.skipped.append((ut.name, "generic impl blocks are not exported"))
        return
    _collect_methods(node, ut, users, info, own_allocator)


def _collect_methods(
    node: Any,
    ut: UserType,
    users: Mapping[str, str],
    info: CellInfo,
    own_allocator: bool,
    outer: tuple[str, ...] = (),
    rename: Mapping[str, RType] | None = None,
) -> None:
    """Adds the ``pub fn`` items of inherent impl *node* to *ut* (*outer*: the impl's type
    parameters, renamed to the struct's by *rename*)."""
    body = node.child_by_field_name("body")
    items = body.children if body is not None else []
    for i, fn in enumerate(items):
        names = _pub_fn_names(fn)
        if names is None:
            continue
        name, rust_name = names
        qual = f"{ut.name}.{name}"
        modifiers = _first_of(fn, "function_modifiers")
        reason = _unsupported_modifier(_text(modifiers) if modifiers is not None else "", False)
        parsed = reason or _fn_types(fn, users, ut.name, own_allocator, outer)
        if isinstance(parsed, str):
            info.skipped.append((qual, parsed))
            continue
        params, ret, receiver, _ = parsed
        if rename:
            params = tuple(Param(p.name, substitute(p.type, rename)) for p in params)
            ret = substitute(ret, rename)
        if ut.kind == "enum" and receiver == "&mut self":
            info.skipped.append((qual, "the members of an exported enum are immutable Python values (`&mut self`)"))
            continue
        _, doc = _leading_attrs_and_doc(items, i)
        ut.methods.append(
            FnSig(
                name=name,
                params=params,
                ret=ret,
                doc=doc,
                line=fn.start_point[0] + 1,
                rust_name=rust_name if rust_name != name else "",
                receiver=receiver,
                owner=ut.name,
            )
        )


def _unsupported_modifier(mods: str, extern: bool) -> str | None:
    words = mods.split()
    if "async" in words:
        return "`async fn` cannot be exported"
    # `pub unsafe extern "C" fn` is how FFI functions taking raw pointers are declared; a
    # plain `pub unsafe fn` promises callers duties Python cannot know of.
    if "unsafe" in words and not extern:
        return '`unsafe fn` cannot be exported (an `unsafe extern "C" fn` with #[no_mangle] can)'
    return None  # a const fn is an ordinary fn at run time


def _leading_attrs_and_doc(children: list[Any], i: int) -> tuple[list[str], str]:
    """Attributes and `///` doc lines directly above ``children[i]``."""
    attrs: list[str] = []
    docs: list[str] = []
    j = i - 1
    while j >= 0:
        n = children[j]
        if n.type == "attribute_item":
            attr = _first_of(n, "attribute")
            attrs.append(_text(attr) if attr is not None else "")
            lit = _first_of(attr, "string_literal") if attr is not None else None
            name = _first_of(attr, "identifier") if attr is not None else None
            if lit is not None and name is not None and _text(name) == "doc":  # #[doc = "..."]
                docs.append(_string_value(lit).removeprefix(" "))
        elif n.type in ("line_comment", "block_comment"):
            doc = _first_of(n, "doc_comment")
            outer = _first_of(n, "outer_doc_comment_marker")
            if doc is None or outer is None:
                j -= 1
                continue
            text = _text(doc)
            if n.type == "line_comment":
                docs.append(text.rstrip("\n").removeprefix(" "))
            else:
                docs.append("\n".join(ln.strip().removeprefix("* ").removeprefix("*") for ln in text.strip().splitlines()))
        else:
            break
        j -= 1
    docs.reverse()
    return attrs, "\n".join(docs).strip()


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'"}


def _string_value(lit: Any) -> str:
    """The text of a Rust string literal node (common escapes decoded)."""
    out = []
    for c in lit.children:
        if c.type == "string_content":
            out.append(_text(c))
        elif c.type == "escape_sequence":
            esc = _text(c)[1:]
            if esc.startswith("u{"):
                out.append(chr(int(esc[2:-1], 16)))
            elif esc.startswith("x"):
                out.append(chr(int(esc[1:], 16)))
            else:
                out.append(_ESCAPES.get(esc, esc))
    return "".join(out)


def _first_of(node: Any, type_name: str) -> Any:
    for c in node.children:
        if c.type == type_name:
            return c
    return None


def _text(node: Any) -> str:
    return node.text.decode("utf-8")


def rtype_of(node: Any, users: Mapping[str, str] | frozenset[str] = frozenset(), self_name: str | None = None) -> RType:
    """Canonical :class:`RType` of a tree-sitter type node.

    Names in *users* (the cell's exported types: name -> ``user`` or ``enum``) and
    ``Self`` inside the impl of *self_name* become types of that kind.
    """
    t = node.type
    kinds = users if isinstance(users, Mapping) else dict.fromkeys(users, "user")
    if t == "type_identifier" and self_name is not None and _text(node) == "Self":
        return RType(kinds.get(self_name, "user"), self_name)
    if t == "type_identifier" and _text(node) in kinds:
        return RType(kinds[_text(node)], _text(node))
    if t == "primitive_type":
        return RType("path", _text(node))
    if t == "unit_type":
        return UNIT
    if t == "never_type":
        return RType("never")
    if t in ("type_identifier", "scoped_type_identifier"):
        name = "".join(_text(node).split())
        imports = _IMPORTED.get() if t == "type_identifier" else None
        imported = imports.get(name) if imports else None
        return RType("path", imported or _PATH_ALIASES.get(name.removeprefix("::"), name))
    if t == "function_type":
        trait = node.child_by_field_name("trait")
        name = "fn" if trait is None else _text(trait).split("::")[-1]
        if name not in ("fn", "Fn", "FnMut", "FnOnce") or _first_of(node, "function_modifiers") is not None:
            return RType("other", " ".join(_text(node).split()))
        params_node = node.child_by_field_name("parameters")
        params = tuple(
            rtype_of(c.child_by_field_name("type") if c.type == "parameter" else c, users, self_name)
            for c in (params_node.children if params_node is not None else ())
            if c.is_named and c.type not in ("line_comment", "block_comment", "attribute_item")
        )
        ret_node = node.child_by_field_name("return_type")
        ret = rtype_of(ret_node, users, self_name) if ret_node is not None else UNIT
        return RType("fn", name, (*params, ret))
    if t == "bounded_type":
        # `impl Fn(u64) -> u64 + Sync`, `dyn Iterator<Item = T> + Send`: auto traits and lifetimes add
        # nothing the glue needs (its callbacks are Send + Sync, its iterators owned).
        parts = [c for c in node.children if c.is_named]
        rest = {_text(c) for c in parts[1:]}
        if parts and rest <= {"Send", "Sync", "'static"}:
            return rtype_of(parts[0], users, self_name)
        return RType("other", " ".join(_text(node).split()))
    if t in ("dynamic_type", "abstract_type"):
        trait = node.child_by_field_name("trait")
        if trait is None or trait.type not in ("function_type", "generic_type"):
            return RType("other", " ".join(_text(node).split()))
        return RType("dyn" if t == "dynamic_type" else "impl", "", (rtype_of(trait, users, self_name),))
    if t == "generic_type" and _text(node.child_by_field_name("type")).split("::")[-1] == "Iterator":
        # `Iterator<Item = T>`: the one associated type binding is the argument.
        args_node = node.child_by_field_name("type_arguments")
        binds = [c for c in (args_node.children if args_node is not None else ()) if c.is_named]
        if len(binds) == 1 and binds[0].type == "type_binding" and _text(binds[0].child_by_field_name("name")) == "Item":
            return RType("path", "Iterator", (rtype_of(binds[0].child_by_field_name("type"), users, self_name),))
        return RType("other", " ".join(_text(node).split()))
    if t == "generic_type":
        base = node.child_by_field_name("type")
        args_node = node.child_by_field_name("type_arguments")
        base_t = rtype_of(base) if base is not None else RType("other", _text(node))
        args = tuple(
            rtype_of(c, users, self_name)
            for c in (args_node.children if args_node is not None else ())
            if c.is_named and c.type not in ("lifetime", "line_comment", "block_comment")
        )
        # Arguments we do not model (e.g. `dyn Error` in `Result<T, Box<dyn Error>>`) are kept as
        # `other`: a row decides whether it cares (Result ignores its error type).
        if base_t.kind != "path":
            return RType("other", " ".join(_text(node).split()))
        return RType("path", base_t.name, args)
    if t == "reference_type":
        inner = node.child_by_field_name("type")
        mutable = _first_of(node, "mutable_specifier") is not None
        return RType("ref", "", (rtype_of(inner, users, self_name),), mutable)
    if t == "array_type":
        length = node.child_by_field_name("length")
        if length is not None:
            n = "".join(_text(length).split()).replace("_", "").removesuffix("usize")
            if length.type == "integer_literal" and n.isdigit():
                return RType("array", str(int(n)), (rtype_of(node.child_by_field_name("element"), users, self_name),))
            return RType("other", " ".join(_text(node).split()))
        return RType("slice", "", (rtype_of(node.child_by_field_name("element"), users, self_name),))
    if t == "tuple_type" and len([c for c in node.children if c.is_named]) == 1 and _first_of(node, ",") is None:
        return rtype_of(next(c for c in node.children if c.is_named), users, self_name)  # `(T)` is T
    if t == "tuple_type":
        return RType("tuple", "", tuple(rtype_of(c, users, self_name) for c in node.children if c.is_named))
    if t == "pointer_type":
        mutable = _first_of(node, "mutable_specifier") is not None
        inner = node.child_by_field_name("type")
        return RType("ptr", "", (rtype_of(inner, users, self_name),), mutable)
    return RType("other", " ".join(_text(node).split()))


def parse_type(text: str) -> RType:
    """Canonical :class:`RType` of Rust type text such as ``"i32"`` or ``"*const c_char"``.

    Raises ValueError when *text* is not a Rust type.
    """
    if not isinstance(text, str):
        raise TypeError(f"a Rust type name must be a str, not {type(text).__name__}")
    src = f"type __T = {text};".encode()
    root = _parser().parse(src).root_node
    item = root.children[0] if len(root.children) == 1 else None
    ty = item.child_by_field_name("type") if item is not None and item.type == "type_item" else None
    if root.has_error or ty is None or not text.strip():
        raise ValueError(f"not a Rust type: {text!r}")
    return rtype_of(ty)


# ---------------------------------------------------------------------------
# Generics: instances of generic functions and structs


def instance_name(name: str, args: Sequence[RType | str]) -> str:
    """The name of an instance, ``f<i32>`` / ``pair<i32, i64>``: type arguments in order."""
    return f"{name}<{', '.join(str(a) for a in args)}>"


def parse_instance(spec: str) -> tuple[str, tuple[RType, ...]]:
    """``"pair<i32, i64>"`` -> (``"pair"``, (i32, i64)). Raises ValueError on anything else."""
    try:
        t = parse_type(spec)
    except ValueError:
        t = RType("other")
    if t.kind != "path" or not t.args or "::" in t.name:
        raise ValueError(f"an instantiation is written NAME<TYPE, ...>, e.g. 'f<i32>', not {spec!r}")
    return t.name, t.args


def _check_count(name: str, params: tuple[str, ...], args: Sequence[RType]) -> None:
    if len(args) != len(params):
        want = ", ".join(params)
        raise TypeError(f"`{name}<{want}>` takes {len(params)} type argument(s), got {len(args)}: {instance_name(name, args)}")


def instantiate_fn(sig: FnSig, args: Sequence[RType]) -> FnSig:
    """The instance of generic function *sig* for type arguments *args* (in the order of its parameters).

    Raises TypeError when the count is wrong or a type of the instance does not cross
    (e.g. ``&[String]``).
    """
    _check_count(sig.name, sig.type_params, args)
    mapping = dict(zip(sig.type_params, args, strict=True))
    params = tuple(Param(p.name, substitute(p.type, mapping)) for p in sig.params)
    ret = substitute(sig.ret, mapping)
    name = instance_name(sig.name, args)
    for p in params:
        if type_row(p.type, "param") is None:
            raise TypeError(f"{name}: type `{p.type}` (parameter `{p.name}`) is not supported")
    if type_row(ret, "return") is None:
        raise TypeError(f"{name}: return type `{ret}` is not supported")
    return FnSig(
        name=name,
        params=params,
        ret=ret,
        doc=sig.doc,
        line=sig.line,
        rust_name=f"{sig.rust_path}::<{', '.join(str(a) for a in args)}>",
        generic=sig.name,
        type_args=tuple(str(a) for a in args),
    )


def instantiate_type(ut: UserType, args: Sequence[RType]) -> tuple[UserType, list[tuple[str, str]]]:
    """The instance of generic struct *ut* for *args* (``W<i32>``), and the methods it cannot export
    (name, reason). Raises TypeError when the count of *args* is wrong."""
    _check_count(ut.name, ut.type_params, args)
    name = instance_name(ut.name, args)
    mapping = dict(zip(ut.type_params, args, strict=True))
    user = {ut.name: name}
    fields = tuple(Field(f.name, substitute(f.type, mapping, user), f.public) for f in ut.fields)
    methods: list[FnSig] = []
    skipped: list[tuple[str, str]] = []
    for m in ut.methods:
        params = tuple(Param(p.name, substitute(p.type, mapping, user)) for p in m.params)
        ret = substitute(m.ret, mapping, user)
        bad = next((p for p in params if type_row(p.type, "param") is None), None)
        if bad is not None:
            skipped.append((f"{name}.{m.name}", f"type `{bad.type}` (parameter `{bad.name}`) is not supported"))
        elif type_row(ret, "return") is None:
            skipped.append((f"{name}.{m.name}", f"return type `{ret}` is not supported"))
        else:
            methods.append(FnSig(m.name, params, ret, m.doc, m.line, rust_name=m.rust_name, receiver=m.receiver, owner=name))
    inst = UserType(name, ut.shape, fields, ut.doc, ut.line, list(ut.traits), methods)
    return inst, skipped


def with_instances(info: CellInfo, specs: Sequence[str], only: bool = False) -> CellInfo:
    """*info* plus the instances named by *specs* (``"f<i32>"``, ``"W<f64>"``) of its generic
    functions and structs; with *only*, the instances alone (a module of instances).

    Raises ValueError for a spec that names no generic item of the cell or does not fit it.
    """
    generic_fns = {f.name: f for f in info.functions if f.type_params}
    generic_types = {t.name: t for t in info.types if t.type_params}
    functions = [] if only else list(info.functions)
    types = [] if only else list(info.types)
    skipped = [] if only else list(info.skipped)
    for spec in specs:
        name, args = parse_instance(spec)
        try:
            if name in generic_fns:
                inst = instantiate_fn(generic_fns[name], args)
                if all(f.name != inst.name for f in functions):
                    functions.append(inst)
            elif name in generic_types:
                ut, bad = instantiate_type(generic_types[name], args)
                if all(t.name != ut.name for t in types):
                    types.append(ut)
                    skipped += bad
            else:
                known = ", ".join([*generic_fns, *generic_types]) or "none"
                raise ValueError(f"instantiate {spec!r}: the cell has no generic function or struct {name!r} (generic items: {known})")
        except TypeError as e:
            raise ValueError(f"instantiate {spec!r}: {e}") from None
    return CellInfo(functions, types, skipped, info.has_syntax_errors, dict(info.abi_edits))
