// rustcall_magic glue prelude: the CPython C-API items the generated wrappers
// use, declared by hand (no crates, no Python headers), plus the conversions
// of the Rust <-> Python type table.
//
// This file is pasted into the generated `glue.rs` module of every cell crate,
// so it must compile under every Rust edition (2015..2024): absolute `::std`
// paths, `unsafe extern` blocks and `#[unsafe(no_mangle)]` (accepted by all
// editions since Rust 1.82), no `c"..."` literals.
//
// Py* symbols stay undefined in the cdylib and bind to the running
// interpreter when it is imported as an extension module.

#![allow(dead_code, non_camel_case_types, non_snake_case, non_upper_case_globals)]
#![allow(unused_unsafe, unsafe_op_in_unsafe_fn, static_mut_refs)]

use ::std::any::Any;
use ::std::os::raw::{c_char, c_double, c_int, c_longlong, c_ulonglong, c_void};

/// The object header of a non-free-threaded CPython build.
#[repr(C)]
pub struct PyObject {
    pub ob_refcnt: isize,
    pub ob_type: *mut PyObject,
}

/// A `METH_FASTCALL | METH_KEYWORDS` function: positional arguments, then keyword values named by `kwnames`.
pub type PyFastKwFn =
    unsafe extern "C" fn(*mut PyObject, *const *mut PyObject, isize, *mut PyObject) -> *mut PyObject;

#[repr(C)]
pub struct PyMethodDef {
    pub ml_name: *const c_char,
    pub ml_meth: Option<PyFastKwFn>,
    pub ml_flags: c_int,
    pub ml_doc: *const c_char,
}

#[repr(C)]
pub struct PyModuleDef_Base {
    pub ob_base: PyObject,
    pub m_init: *mut c_void,
    pub m_index: isize,
    pub m_copy: *mut PyObject,
}

#[repr(C)]
pub struct PyModuleDef {
    pub m_base: PyModuleDef_Base,
    pub m_name: *const c_char,
    pub m_doc: *const c_char,
    pub m_size: isize,
    pub m_methods: *mut PyMethodDef,
    pub m_slots: *mut c_void,
    pub m_traverse: *mut c_void,
    pub m_clear: *mut c_void,
    pub m_free: *mut c_void,
}

pub const METH_FASTCALL: c_int = 0x0080;
pub const METH_KEYWORDS: c_int = 0x0002;
pub const PYTHON_API_VERSION: c_int = 1013;

unsafe extern "C" {
    /// Releases the GIL (wrappers of cells built with release_gil, around the Rust call only).
    pub fn PyEval_SaveThread() -> *mut c_void;
    pub fn PyEval_RestoreThread(state: *mut c_void);
    pub fn PyModule_Create2(def: *mut PyModuleDef, apiver: c_int) -> *mut PyObject;
    pub fn PyImport_ImportModule(name: *const c_char) -> *mut PyObject;
    pub fn PyObject_GetAttrString(o: *mut PyObject, name: *const c_char) -> *mut PyObject;
    pub fn PyObject_CallFunctionObjArgs(callable: *mut PyObject, ...) -> *mut PyObject;
    pub fn PyObject_CallObject(callable: *mut PyObject, args: *mut PyObject) -> *mut PyObject;
    pub fn Py_IncRef(o: *mut PyObject);
    pub fn Py_DecRef(o: *mut PyObject);
    pub fn PyErr_Occurred() -> *mut PyObject;
    pub fn PyErr_Clear();
    pub fn PyErr_Fetch(t: *mut *mut PyObject, v: *mut *mut PyObject, tb: *mut *mut PyObject);
    pub fn PyErr_NormalizeException(t: *mut *mut PyObject, v: *mut *mut PyObject, tb: *mut *mut PyObject);
    pub fn PyErr_Restore(t: *mut PyObject, v: *mut PyObject, tb: *mut PyObject);
    pub fn PyErr_ExceptionMatches(exc: *mut PyObject) -> c_int;
    pub fn PyType_IsSubtype(a: *mut PyObject, b: *mut PyObject) -> c_int;
    pub fn PyObject_IsTrue(o: *mut PyObject) -> c_int;

    pub fn PyLong_AsLongLongAndOverflow(o: *mut PyObject, overflow: *mut c_int) -> c_longlong;
    pub fn PyLong_AsUnsignedLongLong(o: *mut PyObject) -> c_ulonglong;
    pub fn PyLong_FromLongLong(v: c_longlong) -> *mut PyObject;
    pub fn PyLong_FromUnsignedLongLong(v: c_ulonglong) -> *mut PyObject;
    pub fn PyNumber_Index(o: *mut PyObject) -> *mut PyObject;
    pub fn PyNumber_Rshift(a: *mut PyObject, b: *mut PyObject) -> *mut PyObject;
    pub fn PyNumber_Lshift(a: *mut PyObject, b: *mut PyObject) -> *mut PyObject;
    pub fn PyNumber_And(a: *mut PyObject, b: *mut PyObject) -> *mut PyObject;
    pub fn PyNumber_Or(a: *mut PyObject, b: *mut PyObject) -> *mut PyObject;
    pub fn PyFloat_AsDouble(o: *mut PyObject) -> c_double;
    pub fn PyFloat_FromDouble(v: c_double) -> *mut PyObject;
    pub fn PyBool_FromLong(v: ::std::os::raw::c_long) -> *mut PyObject;
    pub fn PyUnicode_FromStringAndSize(s: *const c_char, n: isize) -> *mut PyObject;
    pub fn PyUnicode_GetLength(o: *mut PyObject) -> isize;
    pub fn PyUnicode_ReadChar(o: *mut PyObject, i: isize) -> u32;
    pub fn PyUnicode_FromOrdinal(c: c_int) -> *mut PyObject;

    pub static mut _Py_NoneStruct: PyObject;
    pub static mut _Py_TrueStruct: PyObject;
    pub static mut _Py_FalseStruct: PyObject;
    pub static mut PyUnicode_Type: PyObject;
    pub static mut PyExc_OverflowError: *mut PyObject;

    pub fn PyUnicode_AsUTF8AndSize(o: *mut PyObject, size: *mut isize) -> *const c_char;
    pub fn PyObject_GetBuffer(o: *mut PyObject, view: *mut Py_buffer, flags: c_int) -> c_int;
    pub fn PyBuffer_Release(view: *mut Py_buffer);
    pub fn PyList_New(n: isize) -> *mut PyObject;
    pub fn PyList_Size(o: *mut PyObject) -> isize;
    pub fn PyList_GetItem(o: *mut PyObject, i: isize) -> *mut PyObject;
    pub fn PyList_SetItem(o: *mut PyObject, i: isize, item: *mut PyObject) -> c_int;
    pub fn PyTuple_New(n: isize) -> *mut PyObject;
    pub fn PyTuple_Size(o: *mut PyObject) -> isize;
    pub fn PyTuple_GetItem(o: *mut PyObject, i: isize) -> *mut PyObject;
    pub fn PyTuple_SetItem(o: *mut PyObject, i: isize, item: *mut PyObject) -> c_int;

    pub static mut PyList_Type: PyObject;
    pub static mut PyTuple_Type: PyObject;
    pub static mut PyBytes_Type: PyObject;
    pub static mut PyLong_Type: PyObject;
    pub static mut PyBool_Type: PyObject;
}

/// `Py_buffer` of CPython 3.10-3.13 on 64-bit targets (filled by `PyObject_GetBuffer`).
#[repr(C)]
pub struct Py_buffer {
    pub buf: *mut c_void,
    pub obj: *mut PyObject,
    pub len: isize,
    pub itemsize: isize,
    pub readonly: c_int,
    pub ndim: c_int,
    pub format: *mut c_char,
    pub shape: *mut isize,
    pub strides: *mut isize,
    pub suboffsets: *mut isize,
    pub internal: *mut c_void,
}

pub const PyBUF_WRITABLE: c_int = 0x0001;
pub const PyBUF_FORMAT: c_int = 0x0004;
pub const PyBUF_ND: c_int = 0x0008;
pub const PyBUF_STRIDES: c_int = 0x0010 | PyBUF_ND;
pub const PyBUF_RECORDS_RO: c_int = PyBUF_STRIDES | PyBUF_FORMAT;

#[inline(always)]
pub unsafe fn none() -> *mut PyObject {
    let p = ::std::ptr::addr_of_mut!(_Py_NoneStruct);
    Py_IncRef(p);
    p
}

#[inline(always)]
pub unsafe fn is_str(o: *mut PyObject) -> bool {
    let t = (*o).ob_type;
    t == ::std::ptr::addr_of_mut!(PyUnicode_Type) || PyType_IsSubtype(t, ::std::ptr::addr_of_mut!(PyUnicode_Type)) != 0
}

/// Builds a Python str from Rust UTF-8 (used on error paths and for text returns).
pub unsafe fn py_str(s: &str) -> *mut PyObject {
    PyUnicode_FromStringAndSize(s.as_ptr() as *const c_char, s.len() as isize)
}

// ---------------------------------------------------------------------------
// Argument conversion errors. Codes match rustcall_magic/errors.py.

pub enum ArgError {
    /// Wrong Python type; optional detail.
    Type(&'static str),
    /// Right type, value out of the Rust type's range.
    Overflow,
    /// Right type, unusable value; the detail says why.
    Value(&'static str),
    /// A Python exception is already set and is the best explanation.
    PyErr,
    /// A composed message with its code: 0 TypeError, 1 OverflowError, 2 ValueError, 3 BufferError.
    Msg(c_int, String),
    /// Item `index` (of Rust type `item_type`) of a list/tuple argument failed.
    Item(isize, &'static str, Box<ArgError>),
    /// An entry of a dict (or an element of a set) argument failed: `key` (the key itself),
    /// `value` (the value under it) or `element` (a set's element); with the part's Rust type.
    Entry(PyOwned, &'static str, &'static str, Box<ArgError>),
}

/// An owned (strong) reference, released when dropped.
pub struct PyOwned(pub *mut PyObject);

impl Drop for PyOwned {
    fn drop(&mut self) {
        unsafe { Py_DecRef(self.0) } // Py_DecRef accepts NULL
    }
}

pub const CODE_TYPE: c_int = 0;
pub const CODE_OVERFLOW: c_int = 1;
pub const CODE_VALUE: c_int = 2;
pub const CODE_BUFFER: c_int = 3;

pub trait FromPy: Sized {
    unsafe fn from_py(o: *mut PyObject) -> Result<Self, ArgError>;
}

/// Converts a Rust return value into a new reference (NULL with an exception set on failure).
pub trait IntoPy: Sized {
    unsafe fn into_py(self) -> *mut PyObject;
    /// The value as an item of a list, dict or set: a numeric `Vec` is a list there, not a RustVec.
    #[inline(always)]
    unsafe fn into_py_item(self) -> *mut PyObject {
        self.into_py()
    }
}

// ---------------------------------------------------------------------------
// Runtime state created once at module init.

pub static mut RAISE_ARG_ERROR: *mut PyObject = ::std::ptr::null_mut();
pub static mut RAISE_ARG_COUNT: *mut PyObject = ::std::ptr::null_mut();
pub static mut RAISE_ARG_BINDING: *mut PyObject = ::std::ptr::null_mut();
pub static mut NOTE_ARG: *mut PyObject = ::std::ptr::null_mut();
pub static mut RAISE_PANIC: *mut PyObject = ::std::ptr::null_mut();
pub static mut RAISE_RUST_ERROR: *mut PyObject = ::std::ptr::null_mut();
pub static mut PY_64: *mut PyObject = ::std::ptr::null_mut();
pub static mut PY_MASK64: *mut PyObject = ::std::ptr::null_mut();

::std::thread_local! {
    static PANIC_LOCATION: ::std::cell::RefCell<Option<(String, u32, u32)>> = ::std::cell::RefCell::new(None);
}

/// Installs the quiet panic hook and fetches the Python error helpers; 0 on success.
pub unsafe fn init_runtime() -> c_int {
    let m = PyImport_ImportModule(b"rustcall_magic.errors\0".as_ptr() as *const c_char);
    if m.is_null() {
        return -1;
    }
    RAISE_ARG_ERROR = PyObject_GetAttrString(m, b"_arg_error\0".as_ptr() as *const c_char);
    RAISE_ARG_COUNT = PyObject_GetAttrString(m, b"_arg_count\0".as_ptr() as *const c_char);
    RAISE_ARG_BINDING = PyObject_GetAttrString(m, b"_arg_binding\0".as_ptr() as *const c_char);
    NOTE_ARG = PyObject_GetAttrString(m, b"_note_arg\0".as_ptr() as *const c_char);
    RAISE_PANIC = PyObject_GetAttrString(m, b"_panic\0".as_ptr() as *const c_char);
    RAISE_RUST_ERROR = PyObject_GetAttrString(m, b"_rust_error\0".as_ptr() as *const c_char);
    Py_DecRef(m);
    if RAISE_ARG_ERROR.is_null()
        || RAISE_ARG_COUNT.is_null()
        || RAISE_ARG_BINDING.is_null()
        || NOTE_ARG.is_null()
        || RAISE_PANIC.is_null()
        || RAISE_RUST_ERROR.is_null()
    {
        return -1;
    }
    PY_64 = PyLong_FromLongLong(64);
    PY_MASK64 = PyLong_FromUnsignedLongLong(u64::MAX);
    // A panic is reported as RustPanic; the default hook would print to stderr
    // (and capture a backtrace when RUST_BACKTRACE is set, ~30x slower).
    ::std::panic::set_hook(Box::new(|info: &::std::panic::PanicHookInfo| {
        let loc = info.location().map(|l| (l.file().to_string(), l.line(), l.column()));
        PANIC_LOCATION.with(|c| *c.borrow_mut() = loc);
    }));
    0
}

/// Calls the Python helper `f` (one of rustcall_magic.errors' exception makers) with `args`,
/// new references it releases, and raises the exception it returns.
/// An argument that could not be made (NULL, its exception set) means no call.
#[cold]
#[inline(never)]
pub unsafe fn call_helper(f: *mut PyObject, args: &[*mut PyObject]) {
    let t = if args.iter().any(|a| a.is_null()) { ::std::ptr::null_mut() } else { PyTuple_New(args.len() as isize) };
    if t.is_null() {
        for a in args {
            Py_DecRef(*a); // Py_DecRef accepts NULL
        }
        return;
    }
    for (i, a) in args.iter().enumerate() {
        PyTuple_SetItem(t, i as isize, *a); // steals the reference
    }
    let r = PyObject_CallObject(f, t);
    Py_DecRef(t);
    // The helpers return the exception rather than raise it, so that no frame of theirs
    // appears in its traceback: it is raised here, from C, at the user's call.
    if !r.is_null() && !is_none(r) {
        __rc_type_ffi::PyErr_SetObject((*r).ob_type, r);
    }
    Py_DecRef(r);
}

/// A new reference to `o` (for [`call_helper`], which releases what it is given).
#[inline(always)]
pub unsafe fn new_ref(o: *mut PyObject) -> *mut PyObject {
    Py_IncRef(o);
    o
}

// The raise helpers are cold and out of line: inlined, their code made every wrapper's
// fast path save registers and set up a frame it never uses.
#[cold]
#[inline(never)]
pub unsafe fn raise_arg_count(signature: &str, expected: isize, got: isize) -> *mut PyObject {
    let expected = PyLong_FromLongLong(expected as c_longlong);
    call_helper(RAISE_ARG_COUNT, &[py_str(signature), expected, PyLong_FromLongLong(got as c_longlong)]);
    ::std::ptr::null_mut()
}

/// Binds a call with keyword arguments to the parameters `names`: `out` gets one object per
/// parameter, positional ones first, then each keyword's by name. False with TypeError raised
/// for too many arguments, an unknown or repeated name, or a missing one.
#[cold]
#[inline(never)]
pub unsafe fn bind_keywords(
    signature: &str,
    names: &[&str],
    args: *const *mut PyObject,
    nargs: isize,
    kwnames: *mut PyObject,
    out: *mut *mut PyObject,
) -> bool {
    let n = names.len();
    let nkw = PyTuple_Size(kwnames);
    if nargs as usize > n {
        raise_arg_count(signature, n as isize, nargs + nkw);
        return false;
    }
    for i in 0..nargs as usize {
        *out.add(i) = *args.add(i);
    }
    for k in 0..nkw {
        let mut len: isize = 0;
        let p = PyUnicode_AsUTF8AndSize(PyTuple_GetItem(kwnames, k), &mut len);
        if p.is_null() {
            return false;
        }
        let key = ::std::str::from_utf8_unchecked(::std::slice::from_raw_parts(p as *const u8, len as usize));
        match names.iter().position(|name| *name == key) {
            None => return raise_arg_binding(signature, &format!("got an unexpected keyword argument '{}'", key)),
            Some(j) if !(*out.add(j)).is_null() => {
                return raise_arg_binding(signature, &format!("got multiple values for argument '{}'", key))
            }
            Some(j) => *out.add(j) = *args.add(nargs as usize + k as usize),
        }
    }
    let missing: Vec<String> = (0..n).filter(|&j| (*out.add(j)).is_null()).map(|j| format!("'{}'", names[j])).collect();
    if !missing.is_empty() {
        let s = if missing.len() == 1 { "" } else { "s" };
        return raise_arg_binding(signature, &format!("missing {} required argument{}: {}", missing.len(), s, missing.join(", ")));
    }
    true
}

#[cold]
#[inline(never)]
pub unsafe fn raise_arg_binding(signature: &str, problem: &str) -> bool {
    call_helper(RAISE_ARG_BINDING, &[py_str(signature), py_str(problem)]);
    false
}

/// Keeps the pending exception (raised by Python code while an argument converted) and adds a
/// note naming the argument and the signature; returns NULL.
#[cold]
#[inline(never)]
pub unsafe fn note_arg(signature: &str, index: usize, name: &str, rust_type: &str) -> *mut PyObject {
    let (mut t, mut v, mut tb) = (::std::ptr::null_mut(), ::std::ptr::null_mut(), ::std::ptr::null_mut());
    PyErr_Fetch(&mut t, &mut v, &mut tb);
    if t.is_null() {
        return ::std::ptr::null_mut();
    }
    PyErr_NormalizeException(&mut t, &mut v, &mut tb);
    let index = PyLong_FromLongLong(index as c_longlong);
    call_helper(NOTE_ARG, &[new_ref(v), py_str(signature), index, py_str(name), py_str(rust_type)]);
    PyErr_Clear(); // the note is a courtesy: the original exception is what counts
    PyErr_Restore(t, v, tb);
    ::std::ptr::null_mut()
}

/// Raises the Python exception for a failed argument conversion; always returns NULL.
#[cold]
#[inline(never)]
pub unsafe fn raise_arg_error(
    signature: &str,
    index: usize,
    name: &str,
    rust_type: &str,
    expected: &str,
    err: ArgError,
    obj: *mut PyObject,
) -> *mut PyObject {
    // Items of lists/tuples, entries of dicts: collect the path down to the failing item
    // (an index, or ("key" | "value" | "element", key)).
    let mut path: Vec<*mut PyObject> = Vec::new();
    let mut item_type: &'static str = "";
    let mut err = err;
    loop {
        match err {
            ArgError::Item(i, t, inner) => {
                path.push(PyLong_FromLongLong(i as c_longlong));
                item_type = t;
                err = *inner;
            }
            ArgError::Entry(key, role, t, inner) => {
                let step = PyTuple_New(2);
                PyTuple_SetItem(step, 0, py_str(role));
                PyTuple_SetItem(step, 1, new_ref(key.0));
                path.push(step);
                item_type = t;
                err = *inner;
            }
            other => {
                err = other;
                break;
            }
        }
    }
    let (code, detail): (c_int, ::std::borrow::Cow<'static, str>) = match err {
        ArgError::PyErr => {
            for step in path {
                Py_DecRef(step);
            }
            return note_arg(signature, index, name, rust_type);
        }
        ArgError::Type(d) => (CODE_TYPE, d.into()),
        ArgError::Overflow => (CODE_OVERFLOW, "".into()),
        ArgError::Value(d) => (CODE_VALUE, d.into()),
        ArgError::Msg(c, m) => (c, m.into()),
        ArgError::Item(..) | ArgError::Entry(..) => (CODE_TYPE, "".into()),
    };
    PyErr_Clear();
    let py_path = PyTuple_New(path.len() as isize);
    for (k, step) in path.iter().enumerate() {
        PyTuple_SetItem(py_path, k as isize, *step); // steals the step
    }
    let args = [
        py_str(signature),
        PyLong_FromLongLong(index as c_longlong),
        py_str(name),
        py_str(rust_type),
        py_str(expected),
        PyLong_FromLongLong(code as c_longlong),
        py_str(&detail),
        new_ref(obj),
        py_path,
        py_str(item_type),
    ];
    call_helper(RAISE_ARG_ERROR, &args);
    ::std::ptr::null_mut()
}

/// Turns a caught panic payload into RustPanic; always returns NULL.
#[cold]
#[inline(never)]
pub unsafe fn raise_panic(function: &str, payload: Box<dyn Any + Send>) -> *mut PyObject {
    if payload.is::<Interrupted>() {
        return raise_interrupted();
    }
    // A Python exception raised in a callback (glue/callbacks.rs) reaches the caller as itself.
    let payload = match payload.downcast::<PyCallbackError>() {
        Ok(e) => {
            e.restore();
            return ::std::ptr::null_mut();
        }
        Err(p) => p,
    };
    // A panic of another cell's function called natively (glue/callbacks.rs).
    let payload = match payload.downcast::<NativePanic>() {
        Ok(p) => return raise_native_panic(*p),
        Err(p) => p,
    };
    let msg: String = if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_string()
    };
    // The payload's Drop is user code: keep its panic from escaping too.
    let _ = ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(move || drop(payload)));
    let loc = PANIC_LOCATION.with(|c| c.borrow_mut().take());
    let (file, line, col) = match loc {
        Some((f, l, c)) => (py_str(&f), l, c),
        None => (none(), 0, 0),
    };
    let (pl, pc) = (PyLong_FromLongLong(line as c_longlong), PyLong_FromLongLong(col as c_longlong));
    call_helper(RAISE_PANIC, &[py_str(function), py_str(&msg), file, pl, pc]);
    ::std::ptr::null_mut()
}

// ---------------------------------------------------------------------------
// Integers. Every conversion is range-checked: out of range is an error, never
// a silent truncation.

/// The head of an int object with up to two 30-bit digits, in the layout of
/// the interpreter the cell is built for (build.py passes `rc_pylong`; the
/// Python ABI is part of every cache key). Exact ints of up to 60 bits are read
/// inline, without two calls into the interpreter per argument.
#[cfg(any(rc_pylong = "size", rc_pylong = "tag"))]
#[repr(C)]
pub struct PyLongHead {
    ob_refcnt: isize,
    ob_type: *mut PyObject,
    /// "size": signed digit count (3.10, 3.11); "tag": ndigits << 3 | sign (3.12+).
    size_or_tag: isize,
    digit0: u32,
}

#[cfg(rc_pylong = "size")]
#[inline(always)]
pub unsafe fn small_exact_long(o: *mut PyObject) -> Option<i64> {
    if (*o).ob_type != ::std::ptr::addr_of_mut!(PyLong_Type) {
        return None;
    }
    let h = o as *const PyLongHead;
    match (*h).size_or_tag {
        0 => Some(0),
        1 => Some((*h).digit0 as i64),
        -1 => Some(-((*h).digit0 as i64)),
        2 | -2 => {
            let d1 = *((::std::ptr::addr_of!((*h).digit0)).add(1));
            let v = ((*h).digit0 as i64) | ((d1 as i64) << 30);
            Some(if (*h).size_or_tag < 0 { -v } else { v })
        }
        _ => None,
    }
}

#[cfg(rc_pylong = "tag")]
#[inline(always)]
pub unsafe fn small_exact_long(o: *mut PyObject) -> Option<i64> {
    if (*o).ob_type != ::std::ptr::addr_of_mut!(PyLong_Type) {
        return None;
    }
    let h = o as *const PyLongHead;
    let tag = (*h).size_or_tag as usize;
    if tag >= (2 << 3) {
        return None; // not compact: more than one digit
    }
    Some((1 - (tag & 3) as i64) * (*h).digit0 as i64)
}

#[cfg(not(any(rc_pylong = "size", rc_pylong = "tag")))]
#[inline(always)]
pub unsafe fn small_exact_long(_o: *mut PyObject) -> Option<i64> {
    None
}

#[inline(always)]
pub unsafe fn long_as_i64(o: *mut PyObject) -> Result<i64, ArgError> {
    match small_exact_long(o) {
        Some(v) => Ok(v),
        None => long_as_i64_slow(o),
    }
}

/// Any int-like object (`__index__`), or an int of more than one digit.
#[inline(never)]
pub unsafe fn long_as_i64_slow(o: *mut PyObject) -> Result<i64, ArgError> {
    let mut overflow: c_int = 0;
    let v = PyLong_AsLongLongAndOverflow(o, &mut overflow);
    if overflow != 0 {
        return Err(ArgError::Overflow);
    }
    if v == -1 && !PyErr_Occurred().is_null() {
        return Err(ArgError::Type(""));
    }
    Ok(v)
}

#[inline(always)]
pub unsafe fn long_as_u64(o: *mut PyObject) -> Result<u64, ArgError> {
    match small_exact_long(o) {
        Some(v) if v >= 0 => Ok(v as u64),
        Some(_) => Err(ArgError::Overflow),
        None => long_as_u64_slow(o),
    }
}

/// Any int-like object (`__index__`), or an int of more than one digit.
#[inline(never)]
pub unsafe fn long_as_u64_slow(o: *mut PyObject) -> Result<u64, ArgError> {
    let mut overflow: c_int = 0;
    let v = PyLong_AsLongLongAndOverflow(o, &mut overflow);
    if overflow == 0 {
        if v == -1 && !PyErr_Occurred().is_null() {
            return Err(ArgError::Type(""));
        }
        return if v < 0 { Err(ArgError::Overflow) } else { Ok(v as u64) };
    }
    if overflow < 0 {
        return Err(ArgError::Overflow);
    }
    let idx = PyNumber_Index(o);
    if idx.is_null() {
        return Err(ArgError::Type(""));
    }
    let u = PyLong_AsUnsignedLongLong(idx);
    Py_DecRef(idx);
    if u == u64::MAX && !PyErr_Occurred().is_null() {
        return Err(ArgError::Overflow);
    }
    Ok(u)
}

/// Splits a Python int that does not fit in 64 bits into (high >> 64, low 64 bits).
pub unsafe fn long_split(o: *mut PyObject) -> Result<(*mut PyObject, u64), ArgError> {
    let idx = PyNumber_Index(o);
    if idx.is_null() {
        return Err(ArgError::Type(""));
    }
    let hi = PyNumber_Rshift(idx, PY_64);
    let lo_obj = PyNumber_And(idx, PY_MASK64);
    Py_DecRef(idx);
    if hi.is_null() || lo_obj.is_null() {
        return Err(ArgError::PyErr);
    }
    let lo = PyLong_AsUnsignedLongLong(lo_obj);
    Py_DecRef(lo_obj);
    Ok((hi, lo))
}

macro_rules! int_via {
    ($($t:ty => $via:ident),*) => {$(
        impl FromPy for $t {
            #[inline(always)]
            unsafe fn from_py(o: *mut PyObject) -> Result<Self, ArgError> {
                let v = $via(o)?;
                <$t as ::std::convert::TryFrom<_>>::try_from(v).map_err(|_| ArgError::Overflow)
            }
        }
    )*};
}
int_via!(i8 => long_as_i64, i16 => long_as_i64, i32 => long_as_i64, i64 => long_as_i64, isize => long_as_i64,
         u8 => long_as_u64, u16 => long_as_u64, u32 => long_as_u64, u64 => long_as_u64, usize => long_as_u64);

macro_rules! int_out {
    ($($t:ty => $f:ident as $c:ty),*) => {$(
        impl IntoPy for $t {
            #[inline(always)]
            unsafe fn into_py(self) -> *mut PyObject { $f(self as $c) }
        }
    )*};
}
int_out!(i8 => PyLong_FromLongLong as c_longlong, i16 => PyLong_FromLongLong as c_longlong,
         i32 => PyLong_FromLongLong as c_longlong, i64 => PyLong_FromLongLong as c_longlong,
         isize => PyLong_FromLongLong as c_longlong,
         u8 => PyLong_FromUnsignedLongLong as c_ulonglong, u16 => PyLong_FromUnsignedLongLong as c_ulonglong,
         u32 => PyLong_FromUnsignedLongLong as c_ulonglong, u64 => PyLong_FromUnsignedLongLong as c_ulonglong,
         usize => PyLong_FromUnsignedLongLong as c_ulonglong);

impl FromPy for i128 {
    unsafe fn from_py(o: *mut PyObject) -> Result<Self, ArgError> {
        let mut overflow: c_int = 0;
        let v = PyLong_AsLongLongAndOverflow(o, &mut overflow);
        if overflow == 0 {
            if v == -1 && !PyErr_Occurred().is_null() {
                return Err(ArgError::Type(""));
            }
            return Ok(v as i128);
        }
        let (hi, lo) = long_split(o)?;
        let h = long_as_i64(hi);
        Py_DecRef(hi);
        Ok(((h? as i128) << 64) | lo as i128)
    }
}

impl FromPy for u128 {
    unsafe fn from_py(o: *mut PyObject) -> Result<Self, ArgError> {
        let mut overflow: c_int = 0;
        let v = PyLong_AsLongLongAndOverflow(o, &mut overflow);
        if overflow == 0 {
            if v == -1 && !PyErr_Occurred().is_null() {
                return Err(ArgError::Type(""));
            }
            return if v < 0 { Err(ArgError::Overflow) } else { Ok(v as u128) };
        }
        if overflow < 0 {
            return Err(ArgError::Overflow);
        }
        let (hi, lo) = long_split(o)?;
        let h = long_as_u64(hi);
        Py_DecRef(hi);
        Ok(((h? as u128) << 64) | lo as u128)
    }
}

pub unsafe fn join_hi_lo(hi: *mut PyObject, lo: u64) -> *mut PyObject {
    if hi.is_null() {
        return hi;
    }
    let shifted = PyNumber_Lshift(hi, PY_64);
    Py_DecRef(hi);
    if shifted.is_null() {
        return shifted;
    }
    let low = PyLong_FromUnsignedLongLong(lo);
    let r = PyNumber_Or(shifted, low);
    Py_DecRef(shifted);
    Py_DecRef(low);
    r
}

impl IntoPy for i128 {
    unsafe fn into_py(self) -> *mut PyObject {
        if self >= i64::MIN as i128 && self <= i64::MAX as i128 {
            return PyLong_FromLongLong(self as c_longlong);
        }
        join_hi_lo(PyLong_FromLongLong((self >> 64) as c_longlong), self as u64)
    }
}

impl IntoPy for u128 {
    unsafe fn into_py(self) -> *mut PyObject {
        if self <= u64::MAX as u128 {
            return PyLong_FromUnsignedLongLong(self as c_ulonglong);
        }
        join_hi_lo(PyLong_FromUnsignedLongLong((self >> 64) as c_ulonglong), self as u64)
    }
}

// ---------------------------------------------------------------------------
// Floats: any real number (float, int, numpy scalars) is accepted.

/// A float object: the header and the value (one layout in every CPython 3.x).
#[repr(C)]
pub struct PyFloatObject {
    ob_refcnt: isize,
    ob_type: *mut PyObject,
    ob_fval: c_double,
}

unsafe extern "C" {
    pub static mut PyFloat_Type: PyObject;
}

impl FromPy for f64 {
    #[inline(always)]
    unsafe fn from_py(o: *mut PyObject) -> Result<Self, ArgError> {
        if (*o).ob_type == ::std::ptr::addr_of_mut!(PyFloat_Type) {
            return Ok((*(o as *const PyFloatObject)).ob_fval);
        }
        let v = PyFloat_AsDouble(o);
        if v == -1.0 && !PyErr_Occurred().is_null() {
            if PyErr_ExceptionMatches(PyExc_OverflowError) != 0 {
                return Err(ArgError::Overflow);
            }
            return Err(ArgError::Type(""));
        }
        Ok(v)
    }
}

impl FromPy for f32 {
    #[inline(always)]
    unsafe fn from_py(o: *mut PyObject) -> Result<Self, ArgError> {
        let v = <f64 as FromPy>::from_py(o)?;
        let f = v as f32;
        if v.is_finite() && !f.is_finite() {
            return Err(ArgError::Overflow);
        }
        Ok(f)
    }
}

impl IntoPy for f64 {
    #[inline(always)]
    unsafe fn into_py(self) -> *mut PyObject {
        PyFloat_FromDouble(self)
    }
}

impl IntoPy for f32 {
    #[inline(always)]
    unsafe fn into_py(self) -> *mut PyObject {
        PyFloat_FromDouble(self as c_double)
    }
}

// ---------------------------------------------------------------------------
// bool, char, unit.

impl FromPy for bool {
    #[inline(always)]
    unsafe fn from_py(o: *mut PyObject) -> Result<Self, ArgError> {
        if o == ::std::ptr::addr_of_mut!(_Py_TrueStruct) {
            Ok(true)
        } else if o == ::std::ptr::addr_of_mut!(_Py_FalseStruct) {
            Ok(false)
        } else {
            numpy_bool(o).ok_or(ArgError::Type(""))
        }
    }
}

/// The start of a type object: its header and `tp_name` (stable in every CPython 3.x).
#[repr(C)]
pub struct PyTypeHead {
    ob_base: PyObject,
    ob_size: isize,
    tp_name: *const c_char,
}

/// The value of a numpy bool scalar (`numpy.bool`, `numpy.bool_` before numpy 2): not a
/// subclass of bool, but what a bool array's items are. None for anything else.
#[cold]
#[inline(never)]
pub unsafe fn numpy_bool(o: *mut PyObject) -> Option<bool> {
    let name = ::std::ffi::CStr::from_ptr((*((*o).ob_type as *const PyTypeHead)).tp_name).to_bytes();
    if name != b"numpy.bool" && name != b"numpy.bool_" {
        return None;
    }
    match PyObject_IsTrue(o) {
        -1 => {
            PyErr_Clear();
            None
        }
        v => Some(v == 1),
    }
}

impl IntoPy for bool {
    #[inline(always)]
    unsafe fn into_py(self) -> *mut PyObject {
        PyBool_FromLong(self as ::std::os::raw::c_long)
    }
}

impl FromPy for char {
    unsafe fn from_py(o: *mut PyObject) -> Result<Self, ArgError> {
        if !is_str(o) {
            return Err(ArgError::Type(""));
        }
        if PyUnicode_GetLength(o) != 1 {
            return Err(ArgError::Value("expected a str of exactly one character"));
        }
        match ::std::char::from_u32(PyUnicode_ReadChar(o, 0)) {
            Some(c) => Ok(c),
            None => Err(ArgError::Value("a lone surrogate is not a Rust char")),
        }
    }
}

impl IntoPy for char {
    #[inline(always)]
    unsafe fn into_py(self) -> *mut PyObject {
        PyUnicode_FromOrdinal(self as u32 as c_int)
    }
}

impl IntoPy for () {
    #[inline(always)]
    unsafe fn into_py(self) -> *mut PyObject {
        none()
    }
}

// ---------------------------------------------------------------------------
// Small helpers for the rich types below.

#[inline(always)]
pub unsafe fn type_is(o: *mut PyObject, t: *mut PyObject) -> bool {
    let ot = (*o).ob_type;
    ot == t || PyType_IsSubtype(ot, t) != 0
}

#[inline(always)]
pub unsafe fn is_none(o: *mut PyObject) -> bool {
    o == ::std::ptr::addr_of_mut!(_Py_NoneStruct)
}

#[inline(always)]
pub unsafe fn is_list(o: *mut PyObject) -> bool {
    type_is(o, ::std::ptr::addr_of_mut!(PyList_Type))
}

#[inline(always)]
pub unsafe fn is_tuple(o: *mut PyObject) -> bool {
    type_is(o, ::std::ptr::addr_of_mut!(PyTuple_Type))
}

/// Exactly a list or a tuple: two pointer compares, for the fast paths of buffer arguments
/// (subclasses are found on the slow path, where PyType_IsSubtype's MRO walk costs nothing).
#[inline(always)]
pub unsafe fn is_exact_list_or_tuple(o: *mut PyObject) -> bool {
    let t = (*o).ob_type;
    t == ::std::ptr::addr_of_mut!(PyList_Type) || t == ::std::ptr::addr_of_mut!(PyTuple_Type)
}

/// Raises rustcall_magic.errors.RustError(message); always returns NULL.
pub unsafe fn raise_rust_error(message: &str) -> *mut PyObject {
    call_helper(RAISE_RUST_ERROR, &[py_str(message)]);
    ::std::ptr::null_mut()
}

/// Copies a list or tuple item by item (each item converted with `T::from_py`).
pub unsafe fn seq_to_vec<T: FromPy>(o: *mut PyObject) -> Result<Vec<T>, ArgError> {
    let list = is_list(o);
    let n = if list { PyList_Size(o) } else { PyTuple_Size(o) };
    let mut v: Vec<T> = Vec::with_capacity(n.max(0) as usize);
    for i in 0..n {
        // Re-fetched every time: converting an item may run Python code (__index__,
        // __float__) that changes the list.
        let item = if list { PyList_GetItem(o, i) } else { PyTuple_GetItem(o, i) };
        if item.is_null() {
            PyErr_Clear();
            return Err(ArgError::Value("the list changed size while it was converted"));
        }
        Py_IncRef(item);
        let r = T::from_py(item);
        Py_DecRef(item);
        match r {
            Ok(x) => v.push(x),
            Err(e) => return Err(ArgError::Item(i, ::std::any::type_name::<T>(), Box::new(e))),
        }
    }
    Ok(v)
}

pub unsafe fn list_from_iter<T: IntoPy, I: ExactSizeIterator<Item = T>>(it: I) -> *mut PyObject {
    let list = PyList_New(it.len() as isize);
    if list.is_null() {
        return list;
    }
    for (i, x) in it.enumerate() {
        let item = x.into_py_item();
        if item.is_null() {
            Py_DecRef(list);
            return item;
        }
        PyList_SetItem(list, i as isize, item); // steals `item`
    }
    list
}

// ---------------------------------------------------------------------------
// Strings: UTF-8. `&str` borrows the str object's own UTF-8 buffer (zero copy;
// CPython keeps it alive as long as the object, which outlives the call).

impl<'a> FromPy for &'a str {
    #[inline(always)]
    unsafe fn from_py(o: *mut PyObject) -> Result<Self, ArgError> {
        if !is_str(o) {
            if type_is(o, ::std::ptr::addr_of_mut!(PyBytes_Type)) {
                return Err(ArgError::Type("bytes are not text: decode them first, e.g. b.decode()"));
            }
            return Err(ArgError::Type(""));
        }
        let mut n: isize = 0;
        let p = PyUnicode_AsUTF8AndSize(o, &mut n);
        if p.is_null() {
            // UnicodeEncodeError (a lone surrogate is not UTF-8): CPython's message is the best one.
            return Err(ArgError::PyErr);
        }
        Ok(::std::str::from_utf8_unchecked(::std::slice::from_raw_parts(p as *const u8, n as usize)))
    }
}

impl FromPy for String {
    #[inline(always)]
    unsafe fn from_py(o: *mut PyObject) -> Result<Self, ArgError> {
        <&str as FromPy>::from_py(o).map(|s| s.to_owned())
    }
}

impl<'a> IntoPy for &'a str {
    #[inline(always)]
    unsafe fn into_py(self) -> *mut PyObject {
        py_str(self)
    }
}

impl IntoPy for String {
    #[inline(always)]
    unsafe fn into_py(self) -> *mut PyObject {
        py_str(&self)
    }
}

// ---------------------------------------------------------------------------
// Buffers. `&[T]` / `&mut [T]` borrow the memory of any buffer-protocol object
// whose item format is T (zero copy). The buffer is held by a `BufHold`, whose
// Drop releases it on every path: normal return, conversion error of a later
// argument, and panics.

/// An element type that can be read from a buffer: its accepted struct-module
/// format codes (empty: any item type, used by `*const c_void`).
pub unsafe trait BufElem: 'static {
    const NAME: &'static str;
    const CODES: &'static [u8];
    /// A `*const` pointer to it also takes a `str` (as a NUL-terminated C string).
    const TEXT: bool = false;
    /// Extra validity check of the items (bool: every byte is 0 or 1).
    unsafe fn valid(_p: *const u8, _n: usize) -> bool {
        true
    }
}

macro_rules! buf_elem {
    ($($t:ty => $name:expr, $codes:expr, $text:expr);* $(;)*) => {$(
        unsafe impl BufElem for $t {
            const NAME: &'static str = $name;
            const CODES: &'static [u8] = $codes;
            const TEXT: bool = $text;
        }
    )*};
}
// 'l'/'L' (C long) and 'n'/'N' (ssize_t) name 4- or 8-byte items depending on
// the platform: the itemsize check below settles which type they match.
buf_elem!(
    i8 => "i8", b"bc", true;
    u8 => "u8", b"Bc", true;
    i16 => "i16", b"h", false;
    u16 => "u16", b"H", false;
    i32 => "i32", b"il", false;
    u32 => "u32", b"IL", false;
    i64 => "i64", b"qln", false;
    u64 => "u64", b"QLN", false;
    isize => "isize", b"nql", false;
    usize => "usize", b"NQL", false;
    f32 => "f32", b"f", false;
    f64 => "f64", b"d", false;
    ::std::os::raw::c_void => "c_void", b"", false;
);

unsafe impl BufElem for bool {
    const NAME: &'static str = "bool";
    const CODES: &'static [u8] = b"?";
    unsafe fn valid(p: *const u8, n: usize) -> bool {
        // Any other byte value is not a Rust bool (e.g. a uint8 array viewed as bool).
        ::std::slice::from_raw_parts(p, n).iter().all(|b| *b <= 1)
    }
}

/// The items of a buffer argument, and the buffer view to release when dropped
/// (if one was acquired).
///
/// Holders are created empty in the wrapper's frame and filled in place: moving
/// a `Py_buffer` right after the exporter wrote it costs a store-forwarding
/// stall (~15 ns per call), more than the rest of the argument conversion.
pub struct BufHold {
    pub view: Py_buffer,
    pub held: bool,
    data: *mut c_void,
    count: usize,
}

impl BufHold {
    #[inline(always)]
    pub fn empty() -> Self {
        BufHold { view: unsafe { ::std::mem::zeroed() }, held: false, data: ::std::ptr::null_mut(), count: 0 }
    }

    /// Borrows the C-contiguous T items of `o` (writable when asked): numpy arrays
    /// directly, any other object through the buffer protocol.
    #[inline(always)]
    pub unsafe fn acquire<T: BufElem>(&mut self, o: *mut PyObject, writable: bool) -> Result<(), ArgError> {
        if (*o).ob_type == NDARRAY_TYPE && !NDARRAY_TYPE.is_null() {
            if let Some((p, n)) = ndarray_items::<T>(o, writable) {
                self.data = p;
                self.count = n;
                return Ok(());
            }
        }
        let flags = PyBUF_ND | PyBUF_FORMAT | if writable { PyBUF_WRITABLE } else { 0 };
        if PyObject_GetBuffer(o, &mut self.view, flags) != 0 {
            return Err(buffer_failure::<T>(o, writable));
        }
        // From here on, Drop releases the view on every path.
        self.held = true;
        check_items::<T>(&self.view)?;
        if writable && self.view.readonly != 0 {
            return Err(buffer_failure::<T>(o, writable));
        }
        self.data = self.view.buf;
        self.count = self.view.len as usize / ::std::mem::size_of::<T>().max(1);
        if NDARRAY_TYPE.is_null() {
            note_ndarray_type((*o).ob_type);
        }
        Ok(())
    }

    /// The items as (pointer, count); the pointer is non-null and aligned even when empty.
    #[inline(always)]
    pub fn parts<T>(&self) -> (*mut T, usize) {
        let p = if self.count == 0 { ::std::ptr::NonNull::<T>::dangling().as_ptr() } else { self.data as *mut T };
        (p, self.count)
    }

    /// The start address, as given by the object (for raw pointer arguments).
    #[inline(always)]
    pub fn data(&self) -> *mut c_void {
        self.data
    }
}

impl Drop for BufHold {
    #[inline(always)]
    fn drop(&mut self) {
        if self.held {
            self.held = false;
            unsafe { PyBuffer_Release(&mut self.view) }
        }
    }
}

// numpy arrays are read directly: numpy's buffer export allocates and formats
// per call (~30 ns), several times this whole path. Only the object and
// descriptor fields numpy 1.x and 2.x share (their public ABI) are read, and
// only for exactly `numpy.ndarray` (found by its static type name the first
// time one passes through the buffer path). Anything unusual -- not
// C-contiguous or aligned, read-only for &mut, byte-swapped, other dtypes --
// takes the buffer-protocol path, which also composes the error messages.

#[repr(C)]
pub struct NpArrayHead {
    ob_base: PyObject,
    data: *mut c_void,
    nd: c_int,
    dimensions: *mut isize,
    strides: *mut isize,
    base: *mut PyObject,
    descr: *mut NpDescrHead,
    flags: c_int,
}

#[repr(C)]
pub struct NpDescrHead {
    ob_base: PyObject,
    typeobj: *mut PyObject,
    kind: u8,
    type_char: u8,
    byteorder: u8,
    former_flags: u8,
    type_num: c_int,
}

pub const NPY_C_CONTIGUOUS: c_int = 0x0001;
pub const NPY_ALIGNED: c_int = 0x0100;
pub const NPY_WRITEABLE: c_int = 0x0400;
pub const NPY_WARN_ON_WRITE: c_int = 1 << 31;
/// NPY_BOOL..NPY_DOUBLE: the builtin numeric types, whose type char is their buffer format code.
pub const NPY_LAST_NUMERIC: c_int = 12;

pub static mut NDARRAY_TYPE: *mut PyObject = ::std::ptr::null_mut();

#[cold]
#[inline(never)]
pub unsafe fn note_ndarray_type(t: *mut PyObject) {
    // PyTypeObject: ob_refcnt, ob_type, ob_size, then tp_name.
    let name = *((t as *const u8).add(3 * ::std::mem::size_of::<usize>()) as *const *const c_char);
    if !name.is_null() && ::std::ffi::CStr::from_ptr(name).to_bytes() == b"numpy.ndarray" {
        NDARRAY_TYPE = t;
    }
}

pub fn np_char_size(c: u8) -> usize {
    match c {
        b'?' | b'b' | b'B' => 1,
        b'h' | b'H' => 2,
        b'i' | b'I' => ::std::mem::size_of::<c_int>(),
        b'l' | b'L' => ::std::mem::size_of::<::std::os::raw::c_long>(),
        b'q' | b'Q' => 8,
        b'f' => 4,
        b'd' => 8,
        _ => 0,
    }
}

#[inline(always)]
pub unsafe fn ndarray_items<T: BufElem>(o: *mut PyObject, writable: bool) -> Option<(*mut c_void, usize)> {
    let a = o as *const NpArrayHead;
    let flags = (*a).flags;
    let need = NPY_C_CONTIGUOUS | NPY_ALIGNED | if writable { NPY_WRITEABLE } else { 0 };
    if flags & need != need || (writable && flags & NPY_WARN_ON_WRITE != 0) {
        return None;
    }
    let d = (*a).descr;
    let bo = (*d).byteorder;
    if (*d).type_num > NPY_LAST_NUMERIC || !(bo == b'=' || bo == b'|' || (bo == b'<' && cfg!(target_endian = "little"))) {
        return None;
    }
    if T::CODES.is_empty() {
        return Some(((*a).data, 0));
    }
    let c = (*d).type_char;
    if !T::CODES.contains(&c) || np_char_size(c) != ::std::mem::size_of::<T>() {
        return None;
    }
    let mut n: usize = 1;
    for i in 0..(*a).nd.max(0) as usize {
        n = n.wrapping_mul(*(*a).dimensions.add(i) as usize);
    }
    if n > 0 && !T::valid((*a).data as *const u8, n * ::std::mem::size_of::<T>()) {
        return None;
    }
    Some(((*a).data, n))
}

/// A wrapper-local holder of one argument, created empty and filled in place
/// (rows of the type table with a `holder`).
pub trait ArgHolder: Sized {
    fn empty() -> Self;
    unsafe fn fill(&mut self, o: *mut PyObject) -> Result<(), ArgError>;
    /// Told, after every argument converted, that the wrapper releases the GIL for the call.
    #[inline(always)]
    fn releasing_gil(&mut self) {}
}

#[inline(always)]
pub unsafe fn format_matches(fmt: *const c_char, codes: &[u8]) -> bool {
    let mut p = fmt as *const u8;
    if p.is_null() {
        return codes.contains(&b'B');
    }
    let mut c = *p;
    if c == b'@' || c == b'=' || (c == b'<' && cfg!(target_endian = "little"))
        || ((c == b'>' || c == b'!') && cfg!(target_endian = "big"))
    {
        p = p.add(1);
        c = *p;
    }
    c != 0 && *p.add(1) == 0 && codes.contains(&c)
}

pub unsafe fn format_text(fmt: *const c_char) -> String {
    if fmt.is_null() {
        return "B".to_string();
    }
    ::std::ffi::CStr::from_ptr(fmt).to_string_lossy().into_owned()
}

/// Checks an acquired buffer's items against T (format, size, alignment, validity).
#[inline(always)]
pub unsafe fn check_items<T: BufElem>(v: &Py_buffer) -> Result<(), ArgError> {
    if !T::CODES.is_empty() {
        if !format_matches(v.format, T::CODES) || v.itemsize as usize != ::std::mem::size_of::<T>() {
            return Err(format_error::<T>(v));
        }
        // An empty buffer's pointer is never read (parts() hands Rust a dangling aligned one):
        // CPython gives an empty array.array a 1-byte aligned dummy.
        if v.len != 0 && (v.buf as usize) % ::std::mem::align_of::<T>() != 0 {
            return Err(ArgError::Msg(CODE_BUFFER, format!(
                "the buffer's memory is not aligned for {} items; pass an aligned copy", T::NAME)));
        }
        if !T::valid(v.buf as *const u8, v.len as usize) {
            return Err(ArgError::Value("the buffer holds bytes other than 0 and 1, which are not Rust bools"));
        }
    }
    Ok(())
}

#[cold]
#[inline(never)]
pub unsafe fn format_error<T: BufElem>(v: &Py_buffer) -> ArgError {
    let codes: Vec<String> = T::CODES.iter().map(|c| format!("'{}'", *c as char)).collect();
    ArgError::Msg(CODE_TYPE, format!(
        "got a buffer of item format '{}' ({}-byte items), {} needs format {} ({}-byte items)",
        format_text(v.format), v.itemsize, T::NAME, codes.join(" or "), ::std::mem::size_of::<T>()))
}

/// Why a buffer request failed, found by asking again for any (strided) buffer.
#[cold]
#[inline(never)]
pub unsafe fn buffer_failure<T: BufElem>(o: *mut PyObject, writable: bool) -> ArgError {
    PyErr_Clear();
    let mut view: Py_buffer = ::std::mem::zeroed();
    if PyObject_GetBuffer(o, &mut view, PyBUF_RECORDS_RO) != 0 {
        PyErr_Clear();
        return ArgError::Type("");
    }
    let g = BufHold { view: view, held: true, data: ::std::ptr::null_mut(), count: 0 };
    if let Err(e) = check_items::<T>(&g.view) {
        return e;
    }
    if writable && g.view.readonly != 0 {
        return ArgError::Msg(CODE_BUFFER, format!(
            "the buffer is read-only, &mut [{}] needs a writable one (e.g. bytearray, or a numpy array with \
             a.flags.writeable set)", T::NAME));
    }
    let n = g.view.ndim.max(0) as usize;
    if n > 0 && !g.view.shape.is_null() && !g.view.strides.is_null() {
        let shape = ::std::slice::from_raw_parts(g.view.shape, n);
        let strides = ::std::slice::from_raw_parts(g.view.strides, n);
        return ArgError::Msg(CODE_BUFFER, format!(
            "the buffer is not C-contiguous (shape {:?}, strides {:?} bytes); pass a contiguous copy, e.g. \
             numpy.ascontiguousarray(a)", shape, strides));
    }
    ArgError::Msg(CODE_BUFFER, "the object cannot export a C-contiguous buffer".to_string())
}

/// Holder of a `&[T]` argument: a borrowed buffer (zero copy) or a copied list.
pub struct SliceArg<T: BufElem> {
    buf: BufHold,
    owned: Vec<T>,
    copied: bool,
}

impl<T: BufElem> SliceArg<T> {
    #[inline(always)]
    pub fn as_slice<'a>(&'a self) -> &'a [T] {
        if self.copied {
            &self.owned
        } else {
            let (p, n) = self.buf.parts::<T>();
            unsafe { ::std::slice::from_raw_parts(p as *const T, n) }
        }
    }
}

impl<T: BufElem + FromPy> ArgHolder for SliceArg<T> {
    #[inline(always)]
    fn empty() -> Self {
        SliceArg { buf: BufHold::empty(), owned: Vec::new(), copied: false }
    }

    #[inline(always)]
    unsafe fn fill(&mut self, o: *mut PyObject) -> Result<(), ArgError> {
        if is_exact_list_or_tuple(o) {
            self.owned = seq_to_vec::<T>(o)?;
            self.copied = true;
            return Ok(());
        }
        match self.buf.acquire::<T>(o, false) {
            Ok(()) => Ok(()),
            Err(e) => {
                if !self.buf.held && (is_list(o) || is_tuple(o)) {
                    self.owned = seq_to_vec::<T>(o)?;
                    self.copied = true;
                    return Ok(());
                }
                if let ArgError::Msg(CODE_BUFFER, m) = &e {
                    if m.contains("not aligned") {
                        return self.copy_unaligned(o, e);
                    }
                }
                Err(e)
            }
        }
    }
}

impl<T: BufElem> SliceArg<T> {
    /// A shared slice of a misaligned buffer (e.g. an array Dask or pickle protocol 5 received into a
    /// message frame) reads a copy; `&mut [T]` still refuses it.
    #[cold]
    #[inline(never)]
    unsafe fn copy_unaligned(&mut self, o: *mut PyObject, e: ArgError) -> Result<(), ArgError> {
        PyErr_Clear();
        let mut view: Py_buffer = ::std::mem::zeroed();
        if PyObject_GetBuffer(o, &mut view, PyBUF_ND | PyBUF_FORMAT) != 0 {
            PyErr_Clear();
            return Err(e);
        }
        let g = BufHold { view: view, held: true, data: ::std::ptr::null_mut(), count: 0 };
        if !format_matches(g.view.format, T::CODES) || g.view.itemsize as usize != ::std::mem::size_of::<T>() {
            return Err(e);
        }
        let n = g.view.len as usize / ::std::mem::size_of::<T>();
        let mut v: Vec<T> = Vec::with_capacity(n);
        ::std::ptr::copy_nonoverlapping(g.view.buf as *const u8, v.as_mut_ptr() as *mut u8, n * ::std::mem::size_of::<T>());
        v.set_len(n);
        self.owned = v;
        self.copied = true;
        Ok(())
    }
}

/// Holder of a `&mut [T]` argument: a borrowed writable buffer (zero copy).
pub struct SliceMutArg<T: BufElem> {
    buf: BufHold,
    _items: ::std::marker::PhantomData<T>,
}

impl<T: BufElem> SliceMutArg<T> {
    #[inline(always)]
    pub fn as_mut_slice<'a>(&'a mut self) -> &'a mut [T] {
        let (p, n) = self.buf.parts::<T>();
        unsafe { ::std::slice::from_raw_parts_mut(p, n) }
    }
}

impl<T: BufElem> ArgHolder for SliceMutArg<T> {
    #[inline(always)]
    fn empty() -> Self {
        SliceMutArg { buf: BufHold::empty(), _items: ::std::marker::PhantomData }
    }

    #[inline(always)]
    unsafe fn fill(&mut self, o: *mut PyObject) -> Result<(), ArgError> {
        match self.buf.acquire::<T>(o, true) {
            Ok(()) => Ok(()),
            Err(e) => {
                if is_list(o) || is_tuple(o) {
                    return Err(ArgError::Type(
                        "a list cannot be changed in place: pass a numpy array, array.array or bytearray",
                    ));
                }
                Err(e)
            }
        }
    }
}

/// The memory an argument lends to the call: (start address, byte length); length 0 for none.
pub trait MemSpan {
    fn span(&self) -> (usize, usize);
}

impl<T: BufElem> MemSpan for SliceArg<T> {
    #[inline(always)]
    fn span(&self) -> (usize, usize) {
        if self.copied {
            return (0, 0);
        }
        let (p, n) = self.buf.parts::<T>();
        (p as usize, n * ::std::mem::size_of::<T>())
    }
}

impl<T: BufElem> MemSpan for SliceMutArg<T> {
    #[inline(always)]
    fn span(&self) -> (usize, usize) {
        let (p, n) = self.buf.parts::<T>();
        (p as usize, n * ::std::mem::size_of::<T>())
    }
}

/// A mutably borrowed argument whose memory overlaps another argument's, as
/// (mutable argument, other argument); None when the call is sound. Rust lets
/// nothing alias a `&mut` borrow, and the optimizer relies on it, so such a
/// call (`f(x, x)` with `&mut [T]` and `&[T]`) is refused.
#[inline(always)]
pub fn overlapping(spans: &[(usize, (usize, usize), bool)]) -> Option<(usize, usize)> {
    for &(i, (a, la), mutable) in spans.iter() {
        if !mutable || la == 0 {
            continue;
        }
        for &(j, (b, lb), _) in spans.iter() {
            if i != j && lb != 0 && a < b + lb && b < a + la {
                return Some((i, j));
            }
        }
    }
    None
}

// ---------------------------------------------------------------------------
// Vec<T>: parameters are copied from a list, tuple or (numeric T) buffer.
// Returns are Python lists.

/// An element type of a `Vec<T>` parameter.
pub trait VecItem: FromPy {
    /// Copies a buffer-protocol object; None for element types without a buffer format.
    unsafe fn vec_from_buffer(_o: *mut PyObject) -> Option<Result<Vec<Self>, ArgError>> {
        None
    }
    /// Reserves a RustVec argument for a move when the call starts (None: not a RustVec).
    unsafe fn vec_reserve(_o: *mut PyObject) -> Option<Result<*mut c_void, ArgError>> {
        None
    }
    /// Moves the vector out of a handle reserved by `vec_reserve`.
    unsafe fn vec_take_reserved(_h: *mut c_void) -> Vec<Self> {
        unreachable!("only element types with a RustVec reserve handles")
    }
    /// Gives back a reservation that was not taken (a later argument failed).
    unsafe fn vec_release(_h: *mut c_void) {}
}

/// A by-value `Vec<T>` parameter: a RustVec is reserved at conversion and moved
/// out of its handle only when the call starts, so an error in a later argument
/// leaves the Python handle (and its data) as it was; other inputs are copied.
pub struct VecArg<T: VecItem> {
    reserved: *mut c_void,
    val: Option<Vec<T>>,
}

impl<T: VecItem> VecArg<T> {
    #[inline(always)]
    pub unsafe fn take(&mut self) -> Vec<T> {
        if !self.reserved.is_null() {
            let h = ::std::mem::replace(&mut self.reserved, ::std::ptr::null_mut());
            return T::vec_take_reserved(h);
        }
        self.val.take().expect("argument converted")
    }
}

impl<T: VecItem> ArgHolder for VecArg<T> {
    fn empty() -> Self {
        VecArg { reserved: ::std::ptr::null_mut(), val: None }
    }
    unsafe fn fill(&mut self, o: *mut PyObject) -> Result<(), ArgError> {
        if let Some(r) = T::vec_reserve(o) {
            self.reserved = r?;
            return Ok(());
        }
        self.val = Some(vec_from_py::<T>(o)?);
        Ok(())
    }
}

impl<T: VecItem> Drop for VecArg<T> {
    fn drop(&mut self) {
        if !self.reserved.is_null() {
            unsafe { T::vec_release(self.reserved) };
        }
    }
}

/// The one place a Python object becomes a `Vec<T>` parameter.
pub unsafe fn vec_from_py<T: VecItem>(o: *mut PyObject) -> Result<Vec<T>, ArgError> {
    if is_list(o) || is_tuple(o) {
        return seq_to_vec::<T>(o);
    }
    match T::vec_from_buffer(o) {
        Some(r) => r,
        None => Err(ArgError::Type("")),
    }
}

impl<T: VecItem> FromPy for Vec<T> {
    #[inline(always)]
    unsafe fn from_py(o: *mut PyObject) -> Result<Self, ArgError> {
        vec_from_py::<T>(o)
    }
}

/// An element type of a returned `Vec<T>`.
pub trait VecIntoPy: IntoPy + Sized {
    unsafe fn vec_into_py(v: Vec<Self>) -> *mut PyObject {
        list_from_iter(v.into_iter())
    }
}

impl<T: VecIntoPy> IntoPy for Vec<T> {
    #[inline(always)]
    unsafe fn into_py(self) -> *mut PyObject {
        T::vec_into_py(self)
    }
    /// Inside a list, dict or set a vector is a list (`Vec<Vec<f64>>` is a list of lists).
    unsafe fn into_py_item(self) -> *mut PyObject {
        list_from_iter(self.into_iter())
    }
}

macro_rules! vec_numeric {
    ($($t:ty),*) => {$(
        impl VecItem for $t {
            unsafe fn vec_reserve(o: *mut PyObject) -> Option<Result<*mut c_void, ArgError>> {
                vec_reserve_handle::<$t>(o)
            }
            unsafe fn vec_take_reserved(h: *mut c_void) -> Vec<Self> {
                vec_take_reserved_handle::<$t>(h)
            }
            unsafe fn vec_release(h: *mut c_void) {
                vec_release_handle(h)
            }
            unsafe fn vec_from_buffer(o: *mut PyObject) -> Option<Result<Vec<Self>, ArgError>> {
                // A RustVec reaching here is nested (Option<Vec<T>>, tuples): it is copied
                // through its buffer. Only a top-level Vec<T> moves one (VecArg).
                let mut b = BufHold::empty();
                Some(b.acquire::<$t>(o, false).map(|()| {
                    let (p, n) = b.parts::<$t>();
                    ::std::slice::from_raw_parts(p as *const $t, n).to_vec()
                }))
            }
        }
        // Numeric Vec returns become RustVec handles, without a copy (glue/handles.rs).
        impl VecIntoPy for $t {
            unsafe fn vec_into_py(v: Vec<Self>) -> *mut PyObject {
                vec_into_handle(v)
            }
        }
    )*};
}
vec_numeric!(i8, i16, i32, i64, isize, u8, u16, u32, u64, usize, f32, f64, bool);

impl VecItem for i128 {}
impl VecItem for u128 {}
impl VecItem for char {}
impl VecItem for String {}
impl<'a> VecItem for &'a str {}
impl<T: VecItem> VecItem for Vec<T> {}
impl<T: FromPy> VecItem for Option<T> {}
impl VecIntoPy for i128 {}
impl VecIntoPy for u128 {}
impl VecIntoPy for char {}
impl VecIntoPy for String {}
impl<'a> VecIntoPy for &'a str {}
impl<T: VecIntoPy> VecIntoPy for Vec<T> {}
impl<T: IntoPy> VecIntoPy for Option<T> {}
impl VecIntoPy for () {}
impl<T> VecIntoPy for *const T {}
impl<T> VecIntoPy for *mut T {}

// ---------------------------------------------------------------------------
// Option, Result.

impl<T: FromPy> FromPy for Option<T> {
    #[inline(always)]
    unsafe fn from_py(o: *mut PyObject) -> Result<Self, ArgError> {
        if is_none(o) {
            Ok(None)
        } else {
            T::from_py(o).map(Some)
        }
    }
}

impl<T: IntoPy> IntoPy for Option<T> {
    #[inline(always)]
    unsafe fn into_py(self) -> *mut PyObject {
        match self {
            Some(v) => v.into_py(),
            None => none(),
        }
    }
}

impl<T: IntoPy, E: ::std::fmt::Display> IntoPy for Result<T, E> {
    #[inline(always)]
    unsafe fn into_py(self) -> *mut PyObject {
        match self {
            Ok(v) => v.into_py(),
            Err(e) => raise_rust_error(&e.to_string()),
        }
    }
}

// ---------------------------------------------------------------------------
// Tuples (1 to 12 items): a Python tuple of exactly that many items.

macro_rules! tuples {
    ($($n:expr => ($($i:tt $t:ident),+);)*) => {$(
        impl<$($t: FromPy),+> FromPy for ($($t,)+) {
            unsafe fn from_py(o: *mut PyObject) -> Result<Self, ArgError> {
                if !is_tuple(o) {
                    return Err(ArgError::Type(""));
                }
                let got = PyTuple_Size(o);
                if got != $n {
                    return Err(ArgError::Msg(CODE_VALUE, format!("expected a tuple of {} items, got {}", $n, got)));
                }
                Ok(($(
                    match $t::from_py(PyTuple_GetItem(o, $i)) {
                        Ok(v) => v,
                        Err(e) => return Err(ArgError::Item($i, ::std::any::type_name::<$t>(), Box::new(e))),
                    },
                )+))
            }
        }

        impl<$($t: IntoPy),+> IntoPy for ($($t,)+) {
            unsafe fn into_py(self) -> *mut PyObject {
                let t = PyTuple_New($n);
                if t.is_null() {
                    return t;
                }
                $(
                    let item = self.$i.into_py();
                    if item.is_null() {
                        Py_DecRef(t);
                        return item;
                    }
                    PyTuple_SetItem(t, $i, item); // steals `item`
                )+
                t
            }
        }

        impl<$($t: FromPy),+> VecItem for ($($t,)+) {}
        impl<$($t: IntoPy),+> VecIntoPy for ($($t,)+) {}
    )*};
}
tuples! {
    1 => (0 A);
    2 => (0 A, 1 B);
    3 => (0 A, 1 B, 2 C);
    4 => (0 A, 1 B, 2 C, 3 D);
    5 => (0 A, 1 B, 2 C, 3 D, 4 E);
    6 => (0 A, 1 B, 2 C, 3 D, 4 E, 5 F);
    7 => (0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G);
    8 => (0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H);
    9 => (0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H, 8 I);
    10 => (0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H, 8 I, 9 J);
    11 => (0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H, 8 I, 9 J, 10 K);
    12 => (0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H, 8 I, 9 J, 10 K, 11 L);
}

// ---------------------------------------------------------------------------
// Raw pointers (for `extern "C"` functions). A parameter takes None (null), an
// int address, a buffer of matching items (borrowed for the call), or, for
// `*const c_char`/`*const u8`, a str passed as a NUL-terminated UTF-8 C string.
// Returned pointers become int addresses (0 for null).

/// Fills `buf` (when the object is a buffer) and returns the pointer to pass.
#[inline(always)]
pub unsafe fn ptr_from_py<T: BufElem>(buf: &mut BufHold, o: *mut PyObject, writable: bool) -> Result<*mut T, ArgError> {
    if is_none(o) {
        return Ok(::std::ptr::null_mut());
    }
    if (*o).ob_type != ::std::ptr::addr_of_mut!(PyBool_Type) && type_is(o, ::std::ptr::addr_of_mut!(PyLong_Type)) {
        let a = long_as_u64(o)?;
        if a > usize::MAX as u64 {
            return Err(ArgError::Overflow);
        }
        return Ok(a as usize as *mut T);
    }
    if is_str(o) {
        if !T::TEXT || writable {
            return Err(ArgError::Type("a str can only be passed as *const c_char or *const u8"));
        }
        let mut n: isize = 0;
        let p = PyUnicode_AsUTF8AndSize(o, &mut n);
        if p.is_null() {
            return Err(ArgError::PyErr);
        }
        let bytes = ::std::slice::from_raw_parts(p as *const u8, n as usize);
        if let Some(i) = bytes.iter().position(|b| *b == 0) {
            return Err(ArgError::Msg(CODE_VALUE, format!(
                "embedded NUL character at byte {} of a str passed as a C string", i)));
        }
        // CPython's UTF-8 buffer is NUL-terminated and lives as long as the str.
        return Ok(p as *mut T);
    }
    if T::TEXT {
        // `*const c_char` is `*const i8` or `*const u8` depending on the target: a C `char*`
        // takes any buffer of 1-byte integers (bytes, bytearray, int8/uint8 arrays).
        buf.acquire::<CharItem>(o, writable)?;
    } else {
        buf.acquire::<T>(o, writable)?;
    }
    Ok(buf.data() as *mut T)
}

/// The item of a C `char*` buffer: any 1-byte integer format.
pub struct CharItem(u8);

unsafe impl BufElem for CharItem {
    const NAME: &'static str = "c_char";
    const CODES: &'static [u8] = b"bBc";
}

/// Holder of a `*const T` argument (keeps a borrowed buffer for the call).
pub struct PtrArg<T: BufElem> {
    ptr: *mut T,
    buf: BufHold,
}

impl<T: BufElem> PtrArg<T> {
    #[inline(always)]
    pub fn as_const(&self) -> *const T {
        self.ptr as *const T
    }
}

impl<T: BufElem> ArgHolder for PtrArg<T> {
    #[inline(always)]
    fn empty() -> Self {
        PtrArg { ptr: ::std::ptr::null_mut(), buf: BufHold::empty() }
    }

    #[inline(always)]
    unsafe fn fill(&mut self, o: *mut PyObject) -> Result<(), ArgError> {
        self.ptr = ptr_from_py::<T>(&mut self.buf, o, false)?;
        Ok(())
    }
}

/// Holder of a `*mut T` argument (keeps a borrowed writable buffer for the call).
pub struct PtrMutArg<T: BufElem> {
    ptr: *mut T,
    buf: BufHold,
}

impl<T: BufElem> PtrMutArg<T> {
    #[inline(always)]
    pub fn as_mut(&self) -> *mut T {
        self.ptr
    }
}

impl<T: BufElem> ArgHolder for PtrMutArg<T> {
    #[inline(always)]
    fn empty() -> Self {
        PtrMutArg { ptr: ::std::ptr::null_mut(), buf: BufHold::empty() }
    }

    #[inline(always)]
    unsafe fn fill(&mut self, o: *mut PyObject) -> Result<(), ArgError> {
        self.ptr = ptr_from_py::<T>(&mut self.buf, o, true)?;
        Ok(())
    }
}

impl<T> IntoPy for *const T {
    #[inline(always)]
    unsafe fn into_py(self) -> *mut PyObject {
        PyLong_FromUnsignedLongLong(self as usize as c_ulonglong)
    }
}

impl<T> IntoPy for *mut T {
    #[inline(always)]
    unsafe fn into_py(self) -> *mut PyObject {
        PyLong_FromUnsignedLongLong(self as usize as c_ulonglong)
    }
}
