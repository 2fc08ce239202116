"""Generate the Rust glue that turns a cell's functions into a CPython extension module.

The crate root is the user's cell, unchanged, followed by one line that mounts
``glue.rs`` as a private module; rustc diagnostics for the cell therefore carry
the cell's own line numbers. ``glue.rs`` brings the glue library's names into
scope (``glue/*.rs``: C-API declarations, the type-table conversions, user
types; built once, see ``prelude.py``), then holds, per function, one
``METH_FASTCALL`` wrapper that converts arguments, calls the function inside
``catch_unwind`` and converts the result; the cell's types; the method table
and ``PyInit_<module>``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .signature import (
    FnSig,
    Param,
    RType,
    UserType,
    Variant,
    fn_pointer,
    holder_type,
    native_type,
    pass_expr,
    py_in_text,
    ret_expr,
    type_row,
    user_path,
)

#: Bumped whenever generated code changes shape; part of every cache key.
GLUE_VERSION = "5"

CELL_FILE = "cell.rs"
GLUE_FILE = "glue.rs"
#: Crate name of the prelude when it is linked as a prebuilt library (see ``prelude.py``).
PRELUDE_CRATE = "rustcall_glue"
#: The name under which a cell's own code reaches the glue library (``rustcall::...``,
#: e.g. ``rustcall::check_interrupt()``): the same library, passed a second time.
USER_CRATE = "rustcall"

#: The head of ``glue.rs``: the glue library's names in scope
#: (``self::`` paths resolve the same in every edition), and its lint settings for the wrappers.
_GLUE_HEAD = f"""#![allow(dead_code, non_camel_case_types, non_snake_case, non_upper_case_globals)]
#![allow(unused_unsafe, unsafe_op_in_unsafe_fn, static_mut_refs, unused_imports)]
extern crate {PRELUDE_CRATE};
pub use self::{PRELUDE_CRATE}::*;
use ::std::any::Any;
use ::std::os::raw::{{c_char, c_double, c_int, c_longlong, c_ulonglong, c_void}};
"""

#: The installed package's directory (its glue sources ship beside the modules). Read
#: directly: importlib.resources costs milliseconds of imports on first use, and a cache
#: hit in a fresh process reads the fingerprint.
_PACKAGE_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class GeneratedCrate:
    """The files of one cell crate, by file name, and its module name.

    ``wrappers`` maps each exported function's name to the (first, last) line of
    its wrapper in ``glue.rs``: a rustc error there is about that function.
    """

    module_name: str
    files: dict[str, str]
    root: str = CELL_FILE
    wrappers: dict[str, tuple[int, int]] = field(default_factory=dict)

    def function_at(self, glue_line: int) -> str | None:
        """The function whose wrapper holds line *glue_line* of ``glue.rs``, if any."""
        return next((n for n, (a, b) in self.wrappers.items() if a <= glue_line <= b), None)


_fingerprint: str | None = None


def _fingerprint_files() -> list[tuple[str, str]]:
    glue = _PACKAGE_DIR / "glue"
    files = [(name, str(glue / name)) for name in sorted(n for n in os.listdir(glue) if n.endswith(".rs"))]
    return files + [(mod, str(_PACKAGE_DIR / mod)) for mod in ("codegen.py", "signature.py")]


def glue_fingerprint(state_dir: Path | None = None) -> str:
    """Hash of everything in the package that shapes generated code (part of every cache key).

    Covers the glue sources and the generator modules, so an upgraded or
    edited package never reuses artifacts built by an older glue. With
    *state_dir* (the cache directory), the hash is remembered there by the
    files' identities (path, size, modification time, inode): a fresh process
    then reads no package file on a cache hit. Computed once per process.
    """
    global _fingerprint
    if _fingerprint is not None:
        return _fingerprint
    files = _fingerprint_files()
    stamp = ""
    known: object = {}
    memo = os.path.join(state_dir, "glue.json") if state_dir is not None else None
    if memo is not None:
        try:
            ids = []
            for _, path in files:
                st = os.stat(path)
                ids.append(f"{path}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}")
            stamp = hashlib.sha256("\n".join([GLUE_VERSION, *ids]).encode()).hexdigest()
            with open(memo, encoding="utf-8") as f:
                known = json.load(f)
            if isinstance(known, dict) and isinstance(known.get(stamp), str):
                _fingerprint = known[stamp]
                return _fingerprint
        except (OSError, ValueError):
            known = {}
    h = hashlib.sha256(GLUE_VERSION.encode())
    for name, path in files:
        with open(path, "rb") as f:
            h.update(name.encode() + b"\0" + f.read())
    _fingerprint = h.hexdigest()
    if memo is not None and stamp:
        # Several installations (a venv, a checkout) may share one cache: keep the latest few.
        kept = {k: v for k, v in known.items() if isinstance(v, str)} if isinstance(known, dict) else {}
        kept = dict(list(kept.items())[-7:])
        kept[stamp] = _fingerprint
        tmp = f"{memo}.{os.getpid()}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(kept, f)
            os.replace(tmp, memo)
        except OSError:  # remembering is an optimisation only
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return _fingerprint


def prelude_library_source() -> str:
    """The static part of the glue (package data) as the source of one library crate (``lib.rs`` of :data:`PRELUDE_CRATE`)."""
    glue = _PACKAGE_DIR / "glue"
    files = (
        "prelude.rs",
        "handles.rs",
        "structs.rs",
        "callbacks.rs",
        "collections.rs",
        "ndarray.rs",
        "generics.rs",
        "interrupt.rs",
    )
    return "\n".join((glue / f).read_text(encoding="utf-8") for f in files)


def rust_bytes(s: str) -> str:
    """A Rust byte-string literal for *s*, NUL-terminated (valid in every edition)."""
    out = []
    for b in s.encode("utf-8") + b"\0":
        if 32 <= b < 127 and b not in (34, 92):
            out.append(chr(b))
        else:
            out.append(f"\\x{b:02x}")
    return 'b"' + "".join(out) + '"'


def rust_str(s: str) -> str:
    """A Rust string literal for *s*."""
    out = []
    for ch in s:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif 32 <= ord(ch) < 127:
            out.append(ch)
        else:
            out.append(f"\\u{{{ord(ch):x}}}")
    return '"' + "".join(out) + '"'


def docstring(sig: FnSig) -> str:
    """The callable's ``__doc__``: a Python text signature, the Rust signature, the doc comment."""
    py_params = ", ".join([*(["$self"] if sig.receiver else []), *(p.name for p in sig.params)])
    parts = [f"{sig.name}({py_params})\n--\n\n{sig.text}"]
    if sig.doc:
        parts.append(sig.doc)
    return "\n\n".join(parts)


#: Holders that lend memory to the call (they implement MemSpan), and whether mutably.
_SPAN_HOLDERS = {
    "SliceArg<": False,
    "SliceMutArg<": True,
    "VecRef<": False,
    "VecMut<": True,
    "NdArg<": False,
    "NdMutArg<": True,
}


def _alias_check(sig: FnSig, sig_lit: str) -> list[str]:
    """Code refusing a call whose ``&mut`` buffer argument overlaps another argument's memory.

    Emitted only for functions with a mutable buffer argument and another buffer argument.
    """
    spans = []
    for i, p in enumerate(sig.params):
        holder = holder_type(p.type).removeprefix("OptArg<")  # `Option<&mut [T]>` lends its buffer too
        for prefix, mutable in _SPAN_HOLDERS.items():
            if holder.startswith(prefix):
                spans.append((i, mutable))
    if len(spans) < 2 or not any(m for _, m in spans):
        return []
    n = len(sig.params)
    names = ", ".join(rust_str(p.name) for p in sig.params)
    types = ", ".join(rust_str(str(p.type)) for p in sig.params)
    items = ", ".join(f"({i}usize, a{i}.span(), {'true' if m else 'false'})" for i, m in spans)
    return [
        f"    if let Some((i, j)) = overlapping(&[{items}]) {{",
        f"        const NAMES: [&str; {n}] = [{names}];",
        f"        const TYPES: [&str; {n}] = [{types}];",
        '        let msg = format!("shares memory with argument {} ({}), but a `&mut` borrow must not alias '
        "another argument (Rust's borrowing rule): pass a copy\", j + 1, NAMES[j]);",
        f'        return raise_arg_error({sig_lit}, i, NAMES[i], TYPES[i], "", ArgError::Msg(CODE_VALUE, msg), *args.add(i));',
        "    }",
    ]


#: Holder of the receiver, by receiver text, and how it is handed to the method.
_RECEIVERS = {"&self": ("UserRef", "get()"), "&mut self": ("UserMut", "get_mut()"), "self": ("UserArg", "take()")}


def _wrapper(
    index: int | str,
    sig: FnSig,
    call: Callable[[list[str]], str] | None = None,
    release_gil: bool = False,
    interrupt: bool = False,
) -> str:
    """The ``METH_FASTCALL`` wrapper ``__rc_w{index}`` of *sig* (and its keyword binder ``__rc_k{index}``).

    *call* makes the Rust expression from the argument expressions; by default
    it calls the cell's function itself. A method's receiver is the wrapper's
    first C argument (``_m``), borrowed or moved before the arguments convert.
    With *release_gil* the GIL is released around the Rust call alone: every
    argument is converted (and moved, borrowed or pinned) before, the result
    converted and any panic raised after it is taken again. With *interrupt* (the cell
    calls ``check_interrupt``) the call counts as running for the interrupt state.
    """
    n = len(sig.params)
    sig_lit = rust_str(sig.text)
    if call is None:
        target = f"{user_path(sig.owner)}::{sig.rust_path}" if sig.owner else f"super::{sig.rust_path}"

        def call(args: list[str]) -> str:
            return ret_expr(sig.ret, f"{target}({', '.join(args)})")

    params = ", ".join(rust_str(p.name) for p in sig.params)
    lines = [
        # A call with keywords binds them here, out of the wrapper (whose fast path stays lean),
        # and calls the wrapper with the arguments in parameter order.
        "#[cold]",
        "#[inline(never)]",
        "#[allow(unused_unsafe, non_snake_case, clippy::all)]",
        f"unsafe fn __rc_k{index}(m: *mut PyObject, args: *const *mut PyObject, nargs: isize, "
        "kwnames: *mut PyObject) -> *mut PyObject {",
        "    unsafe {",
        f"    if PyTuple_Size(kwnames) == 0 {{ return __rc_w{index}(m, args, nargs, ::std::ptr::null_mut()); }}",
        f"    const PARAMS: [&str; {n}] = [{params}];",
        f"    let mut bound: [*mut PyObject; {n}] = [::std::ptr::null_mut(); {n}];",
        f"    if !bind_keywords({sig_lit}, &PARAMS, args, nargs, kwnames, bound.as_mut_ptr()) {{",
        "        return ::std::ptr::null_mut();",
        "    }",
        f"    __rc_w{index}(m, bound.as_ptr(), {n}, ::std::ptr::null_mut())",
        "    }",
        "}",
        "",
        "#[allow(unused_unsafe, unused_variables, unused_mut, non_snake_case, clippy::all)]",
        f'unsafe extern "C" fn __rc_w{index}(_m: *mut PyObject, args: *const *mut PyObject, nargs: isize, '
        "kwnames: *mut PyObject) -> *mut PyObject {",
        "    unsafe {",
        f"    if !kwnames.is_null() {{ return __rc_k{index}(_m, args, nargs, kwnames); }}",
        f"    if nargs != {n} {{ return raise_arg_count({sig_lit}, {n}, nargs); }}",
    ]
    self_arg: list[str] = []
    if sig.receiver:
        holder, use = _RECEIVERS[sig.receiver]
        lines.append(f"    let mut s_: {holder}<{user_path(sig.owner)}> = ArgHolder::empty();")
        lines.append("    if let Err(e) = ArgHolder::fill(&mut s_, _m) { return raise_self_error(e); }")
        self_arg = [f"s_.{use}"]
    for i, p in enumerate(sig.params):
        row = type_row(p.type, "param")
        assert row is not None and row.py_in is not None
        holder = holder_type(p.type)
        on_error = (
            f"return raise_arg_error({sig_lit}, {i}, {rust_str(p.name)}, {rust_str(str(p.type))}, "
            f"{rust_str(py_in_text(p.type))}, e, *args.add({i}))"
        )
        if row.holder is not None:
            # Filled in place (see ArgHolder in the prelude): a buffer view must not move.
            lines.append(f"    let mut a{i}: {holder} = <{holder} as ArgHolder>::empty();")
            lines.append(
                f"    if let Err(e) = <{holder} as ArgHolder>::fill(&mut a{i}, *args.add({i})) {{ {on_error} }}"
            )
        else:
            lines.append(
                f"    let mut a{i}: {holder} = match <{holder} as FromPy>::from_py(*args.add({i})) "
                f"{{ Ok(v) => v, Err(e) => {on_error} }};"
            )
    lines += _alias_check(sig, sig_lit)
    call_args = [*self_arg, *(pass_expr(p.type, f"a{i}") for i, p in enumerate(sig.params))]
    # A panic while a `&mut` borrow of an instance is held poisons that instance.
    poison = [f"a{i}" for i, p in enumerate(sig.params) if holder_type(p.type).startswith("UserMut<")]
    if sig.receiver == "&mut self":
        poison.insert(0, "s_")
    on_panic = "".join(f"{v}.poison({rust_str(sig.name)}); " for v in poison)
    # The closure borrows the holders (it moves only what the call takes by value): they
    # stay in the wrapper's frame, so buffer guards are released when the wrapper returns,
    # after a caught panic too. The result is converted inside the closure because an
    # error type's Display is user code that may panic.
    if interrupt:
        lines.append("    let _interrupt_scope = InterruptScope::enter();")
    if release_gil:
        # Moves and borrows of handles and instances happen here, holding the GIL; the call
        # sees only Rust values. Holders stay in this frame: their locks last the whole call.
        lines += [
            f"    ArgHolder::releasing_gil(&mut a{i});"
            for i, p in enumerate(sig.params)
            if (row := type_row(p.type, "param")) is not None and row.holder is not None
        ]
        lines += [f"    let p{j} = {e};" for j, e in enumerate(call_args)]
        lines += [
            "    let ts = PyEval_SaveThread();",
            "    let r = ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(move || "
            f"{call([f'p{j}' for j in range(len(call_args))])}));",
            "    PyEval_RestoreThread(ts);",
            "    match r {",
            "        Ok(v) => match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| IntoPy::into_py(v))) {",
            "            Ok(r) => r,",
            f"            Err(p) => raise_panic({rust_str(sig.name)}, p),",
            "        },",
            f"        Err(p) => {{ {on_panic}raise_panic({rust_str(sig.name)}, p) }}",
            "    }",
            "    }",
            "}",
        ]
        return "\n".join(lines)
    lines += [
        "    match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| "
        f"IntoPy::into_py({call(call_args)}))) {{",
        "        Ok(r) => r,",
        f"        Err(p) => {{ {on_panic}raise_panic({rust_str(sig.name)}, p) }}",
        "    }",
        "    }",
        "}",
    ]
    return "\n".join(lines)


def native_shim(index: int, sig: FnSig) -> str | None:
    """The native entry ``__rc_n{index}`` of a top-level function whose types may pass between
    cells directly (see glue/callbacks.rs), or None.

    Another cell calls it with a pointer to the argument tuple and one to the result; it
    catches the function's panic (which must not unwind into another cell's std) and
    returns it as a ``NativeFailure``. ``__rc_p{index}`` is the function as a ``fn`` pointer.
    """
    if sig.owner or sig.extern_c or not all(native_type(t) for t in (*(p.type for p in sig.params), sig.ret)):
        return None
    types = [p.type.rust() for p in sig.params]
    xs = [f"x{i}" for i in range(len(types))]
    tup_t = f"({types[0]},)" if len(types) == 1 else f"({', '.join(types)})"
    tup_x = f"({xs[0]},)" if len(xs) == 1 else f"({', '.join(xs)})"
    return "\n".join(
        [
            "#[allow(unused_unsafe, unused_variables, non_snake_case, clippy::all)]",
            f"unsafe extern \"C\" fn __rc_n{index}(a: *mut u8, r: *mut u8) -> *mut NativeFailure {{",
            "    unsafe {",
            f"    let {tup_x}: {tup_t} = ::std::ptr::read(a as *mut {tup_t});",
            "    match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(move || "
            f"super::{sig.rust_path}({', '.join(xs)}))) {{",
            f"        Ok(v) => {{ ::std::ptr::write(r as *mut {sig.ret.rust()}, v); ::std::ptr::null_mut() }}",
            f"        Err(p) => native_failure({rust_str(sig.name)}, p),",
            "    }",
            "    }",
            "}",
            # The function as a `fn` pointer for another cell: its panic resumes there.
            f"static mut __RC_NE{index}: *const NativeEntry = ::std::ptr::null();",
            "#[allow(unused_unsafe, non_snake_case, clippy::all)]",
            f"fn __rc_p{index}({', '.join(f'{x}: {t}' for x, t in zip(xs, types, strict=True))}) -> {sig.ret.rust()} {{",
            "    match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(move || "
            f"super::{sig.rust_path}({', '.join(xs)}))) {{",
            "        Ok(v) => v,",
            f"        Err(p) => unsafe {{ resume_elsewhere(__RC_NE{index}, native_failure({rust_str(sig.name)}, p)) }},",
            "    }",
            "}",
        ]
    )


def _native_table(functions: list[FnSig], shims: dict[int, str]) -> str:
    """PyInit statements registering every function's native entry in ``__rustcall_native__``."""
    lines = ["        let nt = native_table();", "        if nt.is_null() { Py_DecRef(m); return ::std::ptr::null_mut(); }"]
    for i, sig in enumerate(functions):
        if i in shims:
            ptr = fn_pointer([p.type for p in sig.params], sig.ret)
            entry = f"::std::any::type_name::<{ptr}>(), Some(__rc_n{i}), __rc_p{i} as {ptr} as *const ()"
        else:
            entry = '"", None, ::std::ptr::null()'
        keep = f"__RC_NE{i} = e; " if i in shims else ""
        lines.append(
            f"        let e = native_add(nt, {rust_bytes(sig.name)}, {entry});\n"
            f"        if e.is_null() {{ Py_DecRef(nt); Py_DecRef(m); return ::std::ptr::null_mut(); }} {keep}"
        )
    lines.append(
        "        if __rc_type_ffi::PyModule_AddObject(m, b\"__rustcall_native__\\0\".as_ptr() as *const c_char, nt) != 0 {"
        " Py_DecRef(nt); Py_DecRef(m); return ::std::ptr::null_mut(); }"
    )
    return "\n".join(lines)


def class_docstring(ut: UserType) -> str:
    """A class's ``__doc__``: the constructor's text signature, the Rust declaration, the doc comment."""
    ctor = ut.constructor
    if ctor is not None:
        params = [p.name for p in ctor.params]
    elif ut.fieldwise:
        params = [_field_param(f.name) for f in ut.fields]
    else:
        params = []
    parts = [f"{ut.name}({', '.join(params)})\n--\n\n{ut.text}"]
    if ut.shape == "data" and ctor is None:  # built by its variants: Shape.Circle(...)
        parts = [ut.text, "Variants: " + ", ".join(f"{ut.name}.{c.name}" for c in ut.cases)]
    if ctor is not None:
        parts.append(f"Constructor: {ctor.text}")
    if ut.doc:
        parts.append(ut.doc)
    return "\n\n".join(parts)


def _field_param(name: str) -> str:
    """The Python parameter name of a field (a tuple struct's ``0`` is ``_0``)."""
    return f"_{name}" if name.isdigit() else name


def _user_types_in(t: RType) -> set[str]:
    """Names of the cell's own types that *t* mentions."""
    own = {t.name} if t.kind in ("user", "enum") else set()
    return own.union(*(_user_types_in(a) for a in t.args))


def _user_type(
    k: int, ut: UserType, module_name: str, cloneable: frozenset[str] = frozenset()
) -> tuple[list[str], str, dict[str, int]]:
    """The glue of one exported struct: (items, PyInit statements, index of each wrapper's item by
    qualified method name). A field mentioning another type of the cell is a property only when
    that type is in *cloneable* (reading a field returns a clone)."""
    t = user_path(ut.name)
    out = [
        f"static mut __RC_T{k}: *mut PyObject = ::std::ptr::null_mut();",
        f"unsafe impl UserType for {t} {{",
        f"    const NAME: &'static str = {rust_str(ut.name)};",
        f"    const SEND: bool = Probe::<{t}>::IS_SEND;",
        f"    const COPY: bool = Probe::<{t}>::IS_COPY;",
        f"    const DEBUG: Option<ReprFn> = Probe::<{t}>::REPR;",
        "    #[inline(always)]",
        f"    unsafe fn type_object() -> *mut PyObject {{ __RC_T{k} }}",
        *_variant_dispatch(k, ut),
        "}",
        f"impl FromPy for {t} {{",
        "    #[inline(always)]",
        "    unsafe fn from_py(o: *mut PyObject) -> Result<Self, ArgError> { user_from_py::<Self>(o) }",
        "}",
        f"impl IntoPy for {t} {{",
        "    #[inline(always)]",
        "    unsafe fn into_py(self) -> *mut PyObject { user_into_py(self) }",
        "}",
        f"impl VecItem for {t} {{}}",
        f"impl VecIntoPy for {t} {{}}",
    ]
    wrappers: dict[str, int] = {}
    methods = []
    ctor = ut.constructor
    self_t = RType("user", ut.name)
    for j, m in enumerate(ut.methods):
        if m is ctor:
            continue
        ident = f"m{k}_{j}"
        wrappers[f"{ut.name}.{m.name}"] = len(out)
        out.append(_wrapper(ident, m))
        flags = "METH_FASTCALL | METH_KEYWORDS" + ("" if m.receiver else " | METH_STATIC")
        methods.append(
            f"        PyMethodDef {{ ml_name: {rust_bytes(m.name)}.as_ptr() as *const c_char, "
            f"ml_meth: Some(__rc_w{ident}), ml_flags: {flags}, "
            f"ml_doc: {rust_bytes(docstring(m))}.as_ptr() as *const c_char }},"
        )
    # Construction: `new`, else the fields in order (every field pub), else Default, else refused.
    new_fn = "None"
    default_first = (
        f"    if let Some(d) = Probe::<{t}>::DEFAULT {{\n"
        "        if PyTuple_Size(a) == 0 && (kw.is_null() || __rc_type_ffi::PyDict_Size(kw) == 0) { return d(); }\n"
        "    }"
    )
    # The value built from every field in order: the fieldwise constructor, and unpickling.
    field_names = [f.name for f in ut.fields]
    field_params = tuple(Param(_field_param(f.name), f.type) for f in ut.fields)

    def fields_call(args: list[str]) -> str:
        if ut.shape == "named":
            return f"{t} {{ " + ", ".join(f"{n}: {a}" for n, a in zip(field_names, args, strict=True)) + " }"
        if ut.shape == "tuple":
            return f"{t}(" + ", ".join(args) + ")"
        return t

    ctor_call: Callable[[list[str]], str] | None = None
    if ctor is not None:
        ctor_sig = ctor
    elif ut.fieldwise:
        ctor_sig = FnSig(ut.name, field_params, self_t, owner="")
        ctor_call = fields_call
    else:
        ctor_sig = None
    if ctor_sig is not None:
        ident = f"c{k}"
        code = _wrapper(ident, ctor_sig, ctor_call)
        wrappers[f"{ut.name}.new" if ctor is not None else ut.name] = len(out)
        out.append(code)
        body = f"    call_with_tuple(__rc_w{ident}, a, kw)"
    elif ut.shape == "data":
        body = f"    us_variant_new_only::<{t}>(t, a, kw)"
    else:
        body = f"    us_no_new::<{t}>(t, a, kw)"
    out.append(
        "#[allow(unused_variables)]\n"
        f'unsafe extern "C" fn __rc_new{k}(t: *mut PyObject, a: *mut PyObject, kw: *mut PyObject) -> *mut PyObject {{\n'
        f"{default_first if ctor is None else ''}\n{body}\n}}"
    )
    new_fn = f"Some(__rc_new{k})"
    # Properties: pub fields, read as a clone, set like an argument.
    getset = []
    properties = [f for f in ut.properties if _user_types_in(f.type) <= cloneable]
    for f in properties:
        # A tuple struct's field `.0` is the property `_0`.
        pn = _field_param(f.name)
        rt, fl = f.type.rust(), f"{ut.name}.{pn}"
        sig_lit = rust_str(f"field {fl}: {f.type}")
        out.append(
            f'unsafe extern "C" fn __rc_g{k}_{f.name}(o: *mut PyObject, _c: *mut c_void) -> *mut PyObject {{\n'
            f"    let mut h: UserRef<{t}> = ArgHolder::empty();\n"
            "    if let Err(e) = ArgHolder::fill(&mut h, o) { return raise_self_error(e); }\n"
            "    match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| "
            f"IntoPy::into_py(::std::clone::Clone::clone(&h.get().{f.name})))) {{\n"
            f"        Ok(r) => r,\n        Err(p) => raise_panic({rust_str(fl)}, p),\n    }}\n}}\n"
            f'unsafe extern "C" fn __rc_s{k}_{f.name}(o: *mut PyObject, v: *mut PyObject, _c: *mut c_void) -> c_int {{\n'
            "    if v.is_null() {\n"
            f"        us_raise(__rc_type_ffi::PyExc_TypeError, {rust_str(f'cannot delete field {fl}')});\n"
            "        return -1;\n    }\n"
            f"    let val: {rt} = match <{rt} as FromPy>::from_py(v) {{\n"
            "        Ok(x) => x,\n"
            f"        Err(e) => {{ raise_arg_error({sig_lit}, 0, {rust_str(f.name)}, {rust_str(str(f.type))}, "
            f"{rust_str(py_in_text(f.type))}, e, v); return -1; }}\n    }};\n"
            f"    let mut h: UserMut<{t}> = ArgHolder::empty();\n"
            "    if let Err(e) = ArgHolder::fill(&mut h, o) { raise_self_error(e); return -1; }\n"
            f"    let old = ::std::mem::replace(&mut h.get_mut().{f.name}, val);\n"
            "    // The old value's Drop is user code.\n"
            "    let _ = ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(move || drop(old)));\n"
            "    0\n}"
        )
        getset.append(
            f"        __rc_type_ffi::PyGetSetDef {{ name: {rust_bytes(pn)}.as_ptr() as *const c_char, "
            f"get: Some(__rc_g{k}_{f.name}), set: Some(__rc_s{k}_{f.name}), "
            f"doc: {rust_bytes(f'{pn}: {f.type}')}.as_ptr() as *const c_char, closure: ::std::ptr::null_mut() }},"
        )
    # Pickling by field values: `_rustcall_from_fields(*fields)` builds the value from every field in
    # order (whatever `new` does), when every field is a property.
    if ut.shape in ("named", "tuple", "unit") and ut.fieldwise and len(properties) == len(ut.fields):
        fields_sig = FnSig("_rustcall_from_fields", field_params, self_t, owner="")
        out.append(_wrapper(f"f{k}", fields_sig, fields_call))
        methods.append(
            "        PyMethodDef { ml_name: b\"_rustcall_from_fields\\0\".as_ptr() as *const c_char, "
            f"ml_meth: Some(__rc_wf{k}), ml_flags: METH_FASTCALL | METH_KEYWORDS | METH_STATIC, "
            f"ml_doc: {rust_bytes('The value built from its fields in order (unpickling).')}.as_ptr() as *const c_char }},"
        )
    # `pub fn len(&self) -> usize` is also `len(obj)`.
    len_fn = "None"
    if any(m.name == "len" and m.receiver == "&self" and not m.params and str(m.ret) == "usize" for m in ut.methods):
        out.append(
            f'unsafe extern "C" fn __rc_len{k}(o: *mut PyObject) -> isize {{\n'
            f"    let mut h: UserRef<{t}> = ArgHolder::empty();\n"
            "    if let Err(e) = ArgHolder::fill(&mut h, o) { raise_self_error(e); return -1; }\n"
            f"    match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| {t}::len(h.get()))) {{\n"
            "        Ok(n) if n <= isize::MAX as usize => n as isize,\n"
            '        Ok(_) => { us_raise(PyExc_OverflowError, "len() is larger than sys.maxsize"); -1 }\n'
            '        Err(p) => { raise_panic("len", p); -1 }\n    }\n}'
        )
        len_fn = f"Some(__rc_len{k})"
    ops = _operators(k, ut, out)
    variant_parts, variant_out = "", "&mut []"
    if ut.shape == "data":
        items, variant_parts, variant_getset = _variants(k, ut, module_name, cloneable, wrappers, len(out))
        out += items
        getset += variant_getset
        variant_out = f"&mut *::std::ptr::addr_of_mut!(__RC_V{k})"
    init = (
        f"        __RC_T{k} = make_type::<{t}>(m, TypeParts {{\n"
        f"            name: {rust_bytes(f'{module_name}.{ut.name}')},\n"
        f"            doc: {rust_bytes(class_docstring(ut))},\n"
        f"            new: {new_fn},\n"
        "            methods: vec![\n" + "\n".join(methods) + "\n            ],\n"
        "            getset: vec![\n" + "\n".join(getset) + "\n            ],\n"
        f"            len: {len_fn},\n"
        f"            match_args: &[{', '.join(rust_str(_field_param(f.name)) for f in properties)}],\n"
        f"            variants: vec![\n{variant_parts}            ],\n"
        f"            ops: vec![{ops}],\n"
        f"        }}, {_probes(t)}, {variant_out});\n"
        f"        if __RC_T{k}.is_null() {{ Py_DecRef(m); return ::std::ptr::null_mut(); }}"
    )
    return out, init, wrappers


#: The fields of the glue's ``Probes`` and the ``Probe<T>`` constant each holds (the constants resolve for a
#: concrete type only, so they are spelled out per type here: the linked glue library's macros are not the cell's).
_PROBE_FIELDS = (
    ("repr", "REPR"),
    ("str_", "STR"),
    ("clone", "CLONE"),
    ("rich_eq", "RICH_EQ"),
    ("rich_ord", "RICH_ORD"),
    ("hash", "HASH"),
    ("next", "NEXT"),
    ("add", "ADD"),
    ("sub", "SUB"),
    ("mul", "MUL"),
    ("div", "DIV"),
    ("rem", "REM"),
    ("neg", "NEG"),
)


def _probes(t: str) -> str:
    """The ``Probes`` of type *t*."""
    return "Probes { " + ", ".join(f"{f}: Probe::<{t}>::{c}" for f, c in _PROBE_FIELDS) + " }"


_NB_SLOTS = {
    "Add": "Py_nb_add",
    "Sub": "Py_nb_subtract",
    "Mul": "Py_nb_multiply",
    "Div": "Py_nb_true_divide",
    "Rem": "Py_nb_remainder",
}
_PROBES = {"Add": "ADD", "Sub": "SUB", "Mul": "MUL", "Div": "DIV", "Rem": "REM"}


def _operators(k: int, ut: UserType, out: list[str]) -> str:
    """Slots for ``impl Op<R> for S`` and ``impl Op<S> for L`` (R, L other supported types; S must be
    ``Clone``): appends their functions to *out*, returns the ``ops`` list items. ``S op S`` keeps
    working through the probe."""
    if not (ut.operators or ut.reflected) or not {"Clone", "Copy"} & set(ut.traits):
        return ""
    t = user_path(ut.name)
    items = []
    for op in _NB_SLOTS:
        rhs = [r for name, r in ut.operators if name == op]
        lhs = [r for name, r in ut.reflected if name == op]
        if not rhs and not lhs:
            continue
        path = f"::std::ops::{op}::{op.lower()}"
        tries_r = "".join(
            f"        match <{r.rust()} as FromPy>::from_py(b) {{\n"
            f"            Ok(r) => return rhs_op::<{t}, {r.rust()}, _>(a, r, {rust_str(op.lower())}, "
            f"|x: {t}, r: {r.rust()}| {path}(x, r)),\n"
            "            Err(_) => PyErr_Clear(),\n        }\n"
            for r in rhs
        )
        tries_l = "".join(
            f"        match <{r.rust()} as FromPy>::from_py(a) {{\n"
            f"            Ok(l) => return lhs_op::<{t}, {r.rust()}, _>(l, b, {rust_str(op.lower())}, "
            f"|l: {r.rust()}, x: {t}| {path}(l, x)),\n"
            "            Err(_) => PyErr_Clear(),\n        }\n"
            for r in lhs
        )
        out.append(
            f'unsafe extern "C" fn __rc_op{k}_{op}(a: *mut PyObject, b: *mut PyObject) -> *mut PyObject {{\n'
            f"    let (sa, sb) = (<{t} as UserType>::owns_type((*a).ob_type), <{t} as UserType>::owns_type((*b).ob_type));\n"
            "    if sa && sb {\n"
            f"        return match Probe::<{t}>::{_PROBES[op]} {{ Some(f) => f(a, b), None => not_implemented() }};\n"
            "    }\n"
            f"    if sa {{\n{tries_r}    }} else if sb {{\n{tries_l}    }}\n"
            "    not_implemented()\n}"
        )
        items.append(f"({_NB_SLOTS[op]}, __rc_op{k}_{op})")
    return ", ".join(items)


def _variant_pattern(t: str, v: Variant, bind: int | None = None) -> str:
    """A Rust pattern matching variant *v* of enum *t* (binding field number *bind* as ``x``)."""
    if v.shape == "tuple":
        parts = ["x" if i == bind else "_" for i in range(len(v.fields))]
        return f"{t}::{v.name}({', '.join(parts)})"
    if v.shape == "named":
        return f"{t}::{v.name} {{ {v.fields[bind].name}: x, .. }}" if bind is not None else f"{t}::{v.name} {{ .. }}"
    return f"{t}::{v.name}"


def _variant_dispatch(k: int, ut: UserType) -> list[str]:
    """``UserType`` items of an enum with data: its instances take the class of their variant."""
    if ut.shape != "data":
        return []
    t = user_path(ut.name)
    arms = " ".join(f"{_variant_pattern(t, v)} => {i}," for i, v in enumerate(ut.cases))
    return [
        "    const RETYPE: bool = true;",
        "    #[inline(always)]",
        f"    unsafe fn type_for(v: &Self) -> *mut PyObject {{ (*::std::ptr::addr_of!(__RC_V{k}))[match v {{ {arms} }}] }}",
        "    #[inline(always)]",
        "    unsafe fn owns_type(t: *mut PyObject) -> bool {",
        f"        (*::std::ptr::addr_of!(__RC_V{k})).iter().any(|&v| v == t)",
        "    }",
    ]


def _variants(
    k: int, ut: UserType, module_name: str, cloneable: frozenset[str], wrappers: dict[str, int], start: int
) -> tuple[list[str], str, list[str]]:
    """Items, ``VariantParts`` initializers and base-class properties (``variant``) of an enum with data."""
    t = user_path(ut.name)
    out = [f"static mut __RC_V{k}: [*mut PyObject; {len(ut.cases)}] = [::std::ptr::null_mut(); {len(ut.cases)}];"]
    arms = " ".join(f"{_variant_pattern(t, v)} => {rust_str(v.name)}," for v in ut.cases)
    out.append(
        f'unsafe extern "C" fn __rc_variant{k}(o: *mut PyObject, _c: *mut c_void) -> *mut PyObject {{\n'
        f"    let mut h: UserRef<{t}> = ArgHolder::empty();\n"
        "    if let Err(e) = ArgHolder::fill(&mut h, o) { return raise_self_error(e); }\n"
        f"    py_str(match h.get() {{ {arms} }})\n}}"
    )
    base_getset = [
        f'        __rc_type_ffi::PyGetSetDef {{ name: b"variant\\0".as_ptr() as *const c_char, '
        f'get: Some(__rc_variant{k}), set: None, doc: b"The name of this value\'s variant.\\0".as_ptr() as *const c_char, '
        "closure: ::std::ptr::null_mut() },"
    ]
    parts = []
    for j, v in enumerate(ut.cases):
        names = [_field_param(f.name) for f in v.fields]
        params = tuple(Param(n, f.type) for n, f in zip(names, v.fields, strict=True))
        sig = FnSig(f"{ut.name}.{v.name}", params, RType("user", ut.name))

        def call(args: list[str], v: Variant = v) -> str:
            if v.shape == "named":
                return (
                    f"{t}::{v.name} {{ "
                    + ", ".join(f"{f.name}: {a}" for f, a in zip(v.fields, args, strict=True))
                    + " }"
                )
            if v.shape == "tuple":
                return f"{t}::{v.name}(" + ", ".join(args) + ")"
            return f"{t}::{v.name}"

        ident = f"v{k}_{j}"
        wrappers[f"{ut.name}.{v.name}"] = start + len(out)
        out.append(_wrapper(ident, sig, call))
        out.append(
            f'unsafe extern "C" fn __rc_vnew{k}_{j}(_t: *mut PyObject, a: *mut PyObject, kw: *mut PyObject) -> *mut PyObject {{\n'
            f"    call_with_tuple(__rc_w{ident}, a, kw)\n}}"
        )
        getset = []
        readable = [
            (i, f, n)
            for i, (f, n) in enumerate(zip(v.fields, names, strict=True))
            if _user_types_in(f.type) <= cloneable
        ]
        for i, f, n in readable:
            fl = f"{ut.name}.{v.name}.{n}"
            out.append(
                f'unsafe extern "C" fn __rc_vg{k}_{j}_{i}(o: *mut PyObject, _c: *mut c_void) -> *mut PyObject {{\n'
                f"    let mut h: UserRef<{t}> = ArgHolder::empty();\n"
                "    if let Err(e) = ArgHolder::fill(&mut h, o) { return raise_self_error(e); }\n"
                "    match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| match h.get() {\n"
                f"        {_variant_pattern(t, v, i)} => IntoPy::into_py(::std::clone::Clone::clone(x)),\n"
                f"        _ => {{ us_raise(__rc_type_ffi::PyExc_TypeError, {rust_str(f'this value is not a {ut.name}::{v.name}')}); "
                "::std::ptr::null_mut() }\n"
                "    })) {\n"
                f"        Ok(r) => r,\n        Err(p) => raise_panic({rust_str(fl)}, p),\n    }}\n}}"
            )
            getset.append(
                f"                    __rc_type_ffi::PyGetSetDef {{ name: {rust_bytes(n)}.as_ptr() as *const c_char, "
                f"get: Some(__rc_vg{k}_{j}_{i}), set: None, doc: {rust_bytes(f'{n}: {f.type}')}.as_ptr() as *const c_char, "
                "closure: ::std::ptr::null_mut() },"
            )
        doc = f"{v.name}({', '.join(names)})\n--\n\n{ut.name}::{v.text}"
        parts.append(
            "                VariantParts {\n"
            f"                    name: {rust_bytes(f'{module_name}.{v.name}')},\n"
            f"                    attr: {rust_str(v.name)},\n"
            f"                    doc: {rust_bytes(doc)},\n"
            f"                    new: __rc_vnew{k}_{j},\n"
            "                    getset: vec![\n" + "\n".join(getset) + "\n                    ],\n"
            f"                    match_args: &[{', '.join(rust_str(n) for _, _, n in readable)}],\n"
            "                },\n"
        )
    return out, "".join(parts), base_getset


def _user_enum(k: int, ut: UserType) -> tuple[list[str], str, dict[str, int]]:
    """The glue of one fieldless enum (an enum.Enum class): conversions, method wrappers, PyInit statements."""
    t = user_path(ut.name)
    n = len(ut.variants)
    from_arms = "\n".join(f"        if o == m[{i}] {{ return Ok({t}::{v}); }}" for i, (v, _) in enumerate(ut.variants))
    into_arms = "\n".join(f"            {t}::{v} => {i}," for i, (v, _) in enumerate(ut.variants))
    out = [
        f"static mut __RC_E{k}: [*mut PyObject; {n}] = [::std::ptr::null_mut(); {n}];",
        f"static mut __RC_EC{k}: *mut PyObject = ::std::ptr::null_mut();",
        f"impl FromPy for {t} {{",
        "    #[inline(always)]",
        "    unsafe fn from_py(o: *mut PyObject) -> Result<Self, ArgError> {",
        f"        let m = &*::std::ptr::addr_of!(__RC_E{k});",
        from_arms,
        f"        Err(enum_mismatch(o, __RC_EC{k}, {rust_str(ut.name)}))",
        "    }",
        "}",
        f"impl IntoPy for {t} {{",
        "    #[inline(always)]",
        "    unsafe fn into_py(self) -> *mut PyObject {",
        "        let i: usize = match self {",
        into_arms,
        "        };",
        f"        new_ref((*::std::ptr::addr_of!(__RC_E{k}))[i])",
        "    }",
        "}",
        f"impl VecItem for {t} {{}}",
        f"impl VecIntoPy for {t} {{}}",
    ]
    wrappers: dict[str, int] = {}
    methods = []
    self_t = RType("enum", ut.name)
    for j, m in enumerate(ut.methods):
        # A member is the method's first argument (an instancemethod binds it), converted by value.
        params = ((Param("self", self_t),) if m.receiver else ()) + m.params
        flat = FnSig(m.name, params, m.ret, m.doc, m.line, rust_name=m.rust_name)
        target = f"{t}::{m.rust_path}"
        borrow = "&" if m.receiver == "&self" else ""

        def call(args: list[str], target: str = target, borrow: str = borrow, has_self: bool = bool(m.receiver)) -> str:
            if has_self:
                args = [borrow + args[0], *args[1:]]
            return f"{target}({', '.join(args)})"

        ident = f"e{k}_{j}"
        wrappers[f"{ut.name}.{m.name}"] = len(out)
        out.append(_wrapper(ident, flat, call))
        methods.append(
            f"            (PyMethodDef {{ ml_name: {rust_bytes(m.name)}.as_ptr() as *const c_char, "
            f"ml_meth: Some(__rc_w{ident}), ml_flags: METH_FASTCALL | METH_KEYWORDS, "
            f"ml_doc: {rust_bytes(docstring(flat).replace(flat.text, m.text, 1))}.as_ptr() as *const c_char }}, "
            f"{'false' if m.receiver else 'true'}),"
        )
    variants = ", ".join(f"({rust_str(v)}, {d}i64)" for v, d in ut.variants)
    doc = f"{ut.text}" + (f"\n\n{ut.doc}" if ut.doc else "")
    init = (
        f"        __RC_EC{k} = make_enum(m, {rust_str(ut.name)}, {rust_str(doc)}, &[{variants}], vec![\n"
        + "\n".join(methods)
        + f"\n        ], &mut *::std::ptr::addr_of_mut!(__RC_E{k}));\n"
        f"        if __RC_EC{k}.is_null() {{ Py_DecRef(m); return ::std::ptr::null_mut(); }}"
    )
    return out, init, wrappers


def uses_interrupt(cell_source: str) -> bool:
    """Whether the cell may call ``rustcall::check_interrupt``/``interrupt_pending`` (it then loads the runtime at init)."""
    return "check_interrupt" in cell_source or "interrupt_pending" in cell_source


def generate(
    module_name: str,
    cell_source: str,
    functions: list[FnSig],
    types: list[UserType] | tuple[()] = (),
    *,
    release_gil: bool = False,
) -> GeneratedCrate:
    """Generate the crate for *cell_source* exporting *functions* and *types* as module *module_name*.

    The glue's static part is not in ``glue.rs``: it is the library crate
    :data:`PRELUDE_CRATE`, which the build passes with ``--extern``. With *release_gil* the functions' wrappers release
    the GIL around the Rust call (methods of the cell's types keep it).
    """
    if not module_name.isidentifier():
        raise ValueError(f"invalid module name {module_name!r}")
    # A generic item has no code of its own: its instances (``f<i32>``, ``W<i32>``) are exported,
    # and the module makes the fast dispatchers of its generic functions (glue/generics.rs).
    generic_fns = any(f.type_params for f in functions)
    functions = [f for f in functions if not f.type_params]
    types = [t for t in types if not t.type_params]
    parts = [_GLUE_HEAD, "\n// ---- generated for this cell ----\n"]
    interrupt = uses_interrupt(cell_source)
    wrappers: dict[str, tuple[int, int]] = {}
    line = 1 + sum(p.count("\n") + 1 for p in parts)  # 1-based; parts are joined by newlines

    def add(code: str, name: str | None = None) -> None:
        nonlocal line
        if name is not None:
            wrappers[name] = (line, line + code.count("\n"))
        line += code.count("\n") + 1
        parts.append(code)

    shims: dict[int, str] = {}
    for i, sig in enumerate(functions):
        # The native shims sit inside the function's line range: a rustc error there is about it too.
        shim = native_shim(i, sig)
        if shim is not None:
            shims[i] = shim
        wrapper = _wrapper(i, sig, release_gil=release_gil, interrupt=interrupt)
        add(wrapper + ("" if shim is None else "\n" + shim), sig.name)
    type_inits = []
    # What the cell derives or implements: a field of such a type reads as a clone.
    cloneable = frozenset(t.name for t in types if {"Clone", "Copy"} & set(t.traits))
    for k, ut in enumerate(types):
        items, init, named = _user_enum(k, ut) if ut.kind == "enum" else _user_type(k, ut, module_name, cloneable)
        where = {j: name for name, j in named.items()}
        for j, code in enumerate(items):
            add(code, where.get(j))
        type_inits.append(init)
    if types:
        names = "".join(
            f"        PyTuple_SetItem(names, {k}, py_str({rust_str(ut.name)}));\n" for k, ut in enumerate(types)
        )
        type_inits.append(
            f"        let names = PyTuple_New({len(types)});\n{names}"
            '        if __rc_type_ffi::PyModule_AddObject(m, b"__rustcall_types__\\0".as_ptr() as *const c_char, names) != 0 {\n'
            "            Py_DecRef(m); return ::std::ptr::null_mut();\n        }"
        )
    n = len(functions)
    methods = []
    for i, sig in enumerate(functions):
        methods.append(
            f"    PyMethodDef {{ ml_name: {rust_bytes(sig.name)}.as_ptr() as *const c_char, "
            f"ml_meth: Some(__rc_w{i}), ml_flags: METH_FASTCALL | METH_KEYWORDS, "
            f"ml_doc: {rust_bytes(docstring(sig))}.as_ptr() as *const c_char }},"
        )
    if any(ut.kind == "user" for ut in types):
        n += 2
        methods.append(
            '    PyMethodDef { ml_name: b"_rustcall_version\\0".as_ptr() as *const c_char, '
            "ml_meth: Some(us_version), ml_flags: METH_FASTCALL | METH_KEYWORDS, "
            'ml_doc: b"Changes whenever a struct instance of this module changes state\\0".as_ptr() as *const c_char },'
        )
        methods.append(
            '    PyMethodDef { ml_name: b"_rustcall_instances\\0".as_ptr() as *const c_char, '
            "ml_meth: Some(us_instances), ml_flags: METH_FASTCALL | METH_KEYWORDS, "
            'ml_doc: b"(id, kind, state, preview) of every struct instance whose object exists\\0".as_ptr() '
            "as *const c_char },"
        )
    if generic_fns:
        n += 1
        methods.append(
            "    PyMethodDef { ml_name: b\"_rustcall_dispatcher\\0\".as_ptr() as *const c_char, "
            "ml_meth: Some(__rc_gd::dispatcher_new), ml_flags: METH_FASTCALL | METH_KEYWORDS, "
            "ml_doc: b\"The fast path of a generic function of this module\\0\".as_ptr() as *const c_char },"
        )
    methods.append(
        "    PyMethodDef { ml_name: ::std::ptr::null(), ml_meth: None, ml_flags: 0, ml_doc: ::std::ptr::null() },"
    )
    parts.append(f"static mut METHODS: [PyMethodDef; {n + 1}] = [\n" + "\n".join(methods) + "\n];")
    if types:
        init_types = (
            "if init_user_types() != 0 { return ::std::ptr::null_mut(); }\n"
            "        let m = PyModule_Create2(::std::ptr::addr_of_mut!(MODULE_DEF), PYTHON_API_VERSION);\n"
            "        if m.is_null() { return m; }\n" + "\n".join(type_inits) + "\n        m"
        )
    else:
        init_types = "PyModule_Create2(::std::ptr::addr_of_mut!(MODULE_DEF), PYTHON_API_VERSION)"
    if functions:
        init_types = (
            f"let m = {{ {init_types} }};\n        if m.is_null() {{ return m; }}\n"
            f"{_native_table(functions, shims)}\n        m"
        )
    init_interrupt = "\n        if init_interrupt() != 0 { return ::std::ptr::null_mut(); }" if interrupt else ""
    parts.append(
        f"""
static mut MODULE_DEF: PyModuleDef = PyModuleDef {{
    m_base: PyModuleDef_Base {{
        ob_base: PyObject {{ ob_refcnt: 1, ob_type: ::std::ptr::null_mut() }},
        m_init: ::std::ptr::null_mut(), m_index: 0, m_copy: ::std::ptr::null_mut(),
    }},
    m_name: {rust_bytes(module_name)}.as_ptr() as *const c_char,
    m_doc: {rust_bytes("Rust functions compiled by rustcall_magic.")}.as_ptr() as *const c_char,
    m_size: -1,
    m_methods: ::std::ptr::null_mut(),
    m_slots: ::std::ptr::null_mut(),
    m_traverse: ::std::ptr::null_mut(),
    m_clear: ::std::ptr::null_mut(),
    m_free: ::std::ptr::null_mut(),
}};

#[allow(non_snake_case)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn PyInit_{module_name}() -> *mut PyObject {{
    unsafe {{
        if init_runtime() != 0 {{ return ::std::ptr::null_mut(); }}{init_interrupt}
        MODULE_DEF.m_methods = ::std::ptr::addr_of_mut!(METHODS) as *mut PyMethodDef;
        {init_types}
    }}
}}
"""
    )
    glue = "\n".join(parts)
    sep = "" if cell_source.endswith("\n") else "\n"
    # One appended line, so every cell line keeps its number in diagnostics.
    root = f'{cell_source}{sep}#[path = "{GLUE_FILE}"] mod __rustcall_glue;\n'
    return GeneratedCrate(module_name, {CELL_FILE: root, GLUE_FILE: glue}, wrappers=wrappers)
