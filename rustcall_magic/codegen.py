"""Generate the Rust glue that turns a cell's functions into a CPython extension module.

The crate root is the user's cell, unchanged, followed by one line that mounts
``glue.rs`` as a private module; rustc diagnostics for the cell therefore carry
the cell's own line numbers. ``glue.rs`` is ``glue/prelude.rs`` (C-API
declarations and the type-table conversions) plus, per function, one
``METH_FASTCALL`` wrapper that converts arguments, calls the function inside
``catch_unwind`` and converts the result; then the method table and
``PyInit_<module>``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .signature import FnSig, holder_type, pass_expr, py_in_text, type_row

#: Bumped whenever generated code changes shape; part of every cache key.
GLUE_VERSION = "3"

CELL_FILE = "cell.rs"
GLUE_FILE = "glue.rs"
#: Crate name of the prelude when it is linked as a prebuilt library (see ``prelude.py``).
PRELUDE_CRATE = "rustcall_glue"

#: The head of ``glue.rs`` when the prelude is a linked library: the prelude's names in scope
#: (``self::`` paths resolve the same in every edition), and its lint settings for the wrappers.
_LINKED_PRELUDE_HEAD = f"""#![allow(dead_code, non_camel_case_types, non_snake_case, non_upper_case_globals)]
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


def prelude_source() -> str:
    """The static part of the glue (shipped as package data)."""
    return (_PACKAGE_DIR / "glue" / "prelude.rs").read_text(encoding="utf-8")


def _static_parts() -> list[str]:
    return [prelude_source(), (_PACKAGE_DIR / "glue" / "handles.rs").read_text(encoding="utf-8")]


def prelude_library_source() -> str:
    """The static part of the glue as the source of one library crate (``lib.rs`` of :data:`PRELUDE_CRATE`)."""
    return "\n".join(_static_parts())


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
    py_params = ", ".join(p.name for p in sig.params)
    parts = [f"{sig.name}({py_params})\n--\n\n{sig.text}"]
    if sig.doc:
        parts.append(sig.doc)
    return "\n\n".join(parts)


#: Holders that lend memory to the call (they implement MemSpan), and whether mutably.
_SPAN_HOLDERS = {"SliceArg<": False, "SliceMutArg<": True, "VecRef<": False, "VecMut<": True}


def _alias_check(sig: FnSig, sig_lit: str) -> list[str]:
    """Code refusing a call whose ``&mut`` buffer argument overlaps another argument's memory.

    Emitted only for functions with a mutable buffer argument and another buffer argument.
    """
    spans = []
    for i, p in enumerate(sig.params):
        holder = holder_type(p.type)
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
        "        let msg = format!(\"shares memory with argument {} ({}), but a `&mut` borrow must not alias "
        "another argument (Rust's borrowing rule): pass a copy\", j + 1, NAMES[j]);",
        f"        return raise_arg_error({sig_lit}, i, NAMES[i], TYPES[i], \"\", ArgError::Msg(CODE_VALUE, msg), *args.add(i));",
        "    }",
    ]


def _wrapper(index: int, sig: FnSig) -> str:
    n = len(sig.params)
    sig_lit = rust_str(sig.text)
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
        f"unsafe extern \"C\" fn __rc_w{index}(_m: *mut PyObject, args: *const *mut PyObject, nargs: isize, "
        "kwnames: *mut PyObject) -> *mut PyObject {",
        "    unsafe {",
        f"    if !kwnames.is_null() {{ return __rc_k{index}(_m, args, nargs, kwnames); }}",
        f"    if nargs != {n} {{ return raise_arg_count({sig_lit}, {n}, nargs); }}",
    ]
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
    call_args = ", ".join(pass_expr(p.type, f"a{i}") for i, p in enumerate(sig.params))
    # The closure borrows the holders (it moves only what the call takes by value): they
    # stay in the wrapper's frame, so buffer guards are released when the wrapper returns,
    # after a caught panic too. The result is converted inside the closure because an
    # error type's Display is user code that may panic.
    lines += [
        "    match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| "
        f"IntoPy::into_py(super::{sig.rust_path}({call_args})))) {{",
        "        Ok(r) => r,",
        f"        Err(p) => raise_panic({rust_str(sig.name)}, p),",
        "    }",
        "    }",
        "}",
    ]
    return "\n".join(lines)


def generate(
    module_name: str, cell_source: str, functions: list[FnSig], *, linked_prelude: bool = False
) -> GeneratedCrate:
    """Generate the crate for *cell_source* exporting *functions* as module *module_name*.

    With *linked_prelude* the glue's static part is not pasted into ``glue.rs``
    but used from the library crate :data:`PRELUDE_CRATE` (which the build must
    pass with ``--extern``).
    """
    if not module_name.isidentifier():
        raise ValueError(f"invalid module name {module_name!r}")
    head = [_LINKED_PRELUDE_HEAD] if linked_prelude else _static_parts()
    parts = [*head, "\n// ---- generated for this cell ----\n"]
    wrappers: dict[str, tuple[int, int]] = {}
    line = 1 + sum(p.count("\n") + 1 for p in parts)  # 1-based; parts are joined by newlines
    for i, sig in enumerate(functions):
        code = _wrapper(i, sig)
        wrappers[sig.name] = (line, line + code.count("\n"))
        line += code.count("\n") + 1
        parts.append(code)
    n = len(functions)
    methods = []
    for i, sig in enumerate(functions):
        methods.append(
            f"    PyMethodDef {{ ml_name: {rust_bytes(sig.name)}.as_ptr() as *const c_char, "
            f"ml_meth: Some(__rc_w{i}), ml_flags: METH_FASTCALL | METH_KEYWORDS, "
            f"ml_doc: {rust_bytes(docstring(sig))}.as_ptr() as *const c_char }},"
        )
    methods.append(
        "    PyMethodDef { ml_name: ::std::ptr::null(), ml_meth: None, ml_flags: 0, ml_doc: ::std::ptr::null() },"
    )
    parts.append(f"static mut METHODS: [PyMethodDef; {n + 1}] = [\n" + "\n".join(methods) + "\n];")
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
        if init_runtime() != 0 {{ return ::std::ptr::null_mut(); }}
        MODULE_DEF.m_methods = ::std::ptr::addr_of_mut!(METHODS) as *mut PyMethodDef;
        PyModule_Create2(::std::ptr::addr_of_mut!(MODULE_DEF), PYTHON_API_VERSION)
    }}
}}
"""
    )
    glue = "\n".join(parts)
    sep = "" if cell_source.endswith("\n") else "\n"
    # One appended line, so every cell line keeps its number in diagnostics.
    root = f'{cell_source}{sep}#[path = "{GLUE_FILE}"] mod __rustcall_glue;\n'
    return GeneratedCrate(module_name, {CELL_FILE: root, GLUE_FILE: glue}, wrappers=wrappers)
