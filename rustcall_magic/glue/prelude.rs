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

pub type PyFastFn = unsafe extern "C" fn(*mut PyObject, *const *mut PyObject, isize) -> *mut PyObject;

#[repr(C)]
pub struct PyMethodDef {
    pub ml_name: *const c_char,
    pub ml_meth: Option<PyFastFn>,
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
pub const PYTHON_API_VERSION: c_int = 1013;

unsafe extern "C" {
    pub fn PyModule_Create2(def: *mut PyModuleDef, apiver: c_int) -> *mut PyObject;
    pub fn PyImport_ImportModule(name: *const c_char) -> *mut PyObject;
    pub fn PyObject_GetAttrString(o: *mut PyObject, name: *const c_char) -> *mut PyObject;
    pub fn PyObject_CallFunctionObjArgs(callable: *mut PyObject, ...) -> *mut PyObject;
    pub fn Py_IncRef(o: *mut PyObject);
    pub fn Py_DecRef(o: *mut PyObject);
    pub fn PyErr_Occurred() -> *mut PyObject;
    pub fn PyErr_Clear();
    pub fn PyErr_ExceptionMatches(exc: *mut PyObject) -> c_int;
    pub fn PyType_IsSubtype(a: *mut PyObject, b: *mut PyObject) -> c_int;

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
}

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
}

pub trait FromPy: Sized {
    unsafe fn from_py(o: *mut PyObject) -> Result<Self, ArgError>;
}

/// Converts a Rust return value into a new reference (NULL with an exception set on failure).
pub trait IntoPy {
    unsafe fn into_py(self) -> *mut PyObject;
}

// ---------------------------------------------------------------------------
// Runtime state created once at module init.

static mut RAISE_ARG_ERROR: *mut PyObject = ::std::ptr::null_mut();
static mut RAISE_ARG_COUNT: *mut PyObject = ::std::ptr::null_mut();
static mut RAISE_PANIC: *mut PyObject = ::std::ptr::null_mut();
static mut PY_64: *mut PyObject = ::std::ptr::null_mut();
static mut PY_MASK64: *mut PyObject = ::std::ptr::null_mut();

::std::thread_local! {
    static PANIC_LOCATION: ::std::cell::RefCell<Option<(String, u32, u32)>> = ::std::cell::RefCell::new(None);
}

/// Installs the quiet panic hook and fetches the Python error helpers; 0 on success.
pub unsafe fn init_runtime() -> c_int {
    let m = PyImport_ImportModule(b"rustcall_magic.errors\0".as_ptr() as *const c_char);
    if m.is_null() {
        return -1;
    }
    RAISE_ARG_ERROR = PyObject_GetAttrString(m, b"_raise_arg_error\0".as_ptr() as *const c_char);
    RAISE_ARG_COUNT = PyObject_GetAttrString(m, b"_raise_arg_count\0".as_ptr() as *const c_char);
    RAISE_PANIC = PyObject_GetAttrString(m, b"_raise_panic\0".as_ptr() as *const c_char);
    Py_DecRef(m);
    if RAISE_ARG_ERROR.is_null() || RAISE_ARG_COUNT.is_null() || RAISE_PANIC.is_null() {
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

pub unsafe fn raise_arg_count(signature: &str, expected: isize, got: isize) -> *mut PyObject {
    let s = py_str(signature);
    let e = PyLong_FromLongLong(expected as c_longlong);
    let g = PyLong_FromLongLong(got as c_longlong);
    let r = PyObject_CallFunctionObjArgs(RAISE_ARG_COUNT, s, e, g, ::std::ptr::null_mut::<PyObject>());
    Py_DecRef(s);
    Py_DecRef(e);
    Py_DecRef(g);
    if !r.is_null() {
        Py_DecRef(r);
    }
    ::std::ptr::null_mut()
}

/// Raises the Python exception for a failed argument conversion; always returns NULL.
pub unsafe fn raise_arg_error(
    signature: &str,
    index: usize,
    name: &str,
    rust_type: &str,
    expected: &str,
    err: ArgError,
    obj: *mut PyObject,
) -> *mut PyObject {
    let (code, detail) = match err {
        ArgError::PyErr => return ::std::ptr::null_mut(),
        ArgError::Type(d) => (0, d),
        ArgError::Overflow => (1, ""),
        ArgError::Value(d) => (2, d),
    };
    PyErr_Clear();
    let args = [
        py_str(signature),
        PyLong_FromLongLong(index as c_longlong),
        py_str(name),
        py_str(rust_type),
        py_str(expected),
        PyLong_FromLongLong(code),
        py_str(detail),
    ];
    let r = PyObject_CallFunctionObjArgs(
        RAISE_ARG_ERROR,
        args[0],
        args[1],
        args[2],
        args[3],
        args[4],
        args[5],
        args[6],
        obj,
        ::std::ptr::null_mut::<PyObject>(),
    );
    for a in args.iter() {
        Py_DecRef(*a);
    }
    if !r.is_null() {
        Py_DecRef(r);
    }
    ::std::ptr::null_mut()
}

/// Turns a caught panic payload into RustPanic; always returns NULL.
pub unsafe fn raise_panic(function: &str, payload: Box<dyn Any + Send>) -> *mut PyObject {
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
    let fname = py_str(function);
    let pmsg = py_str(&msg);
    let pl = PyLong_FromLongLong(line as c_longlong);
    let pc = PyLong_FromLongLong(col as c_longlong);
    let r = PyObject_CallFunctionObjArgs(RAISE_PANIC, fname, pmsg, file, pl, pc, ::std::ptr::null_mut::<PyObject>());
    for a in [fname, pmsg, file, pl, pc].iter() {
        Py_DecRef(*a);
    }
    if !r.is_null() {
        Py_DecRef(r);
    }
    ::std::ptr::null_mut()
}

// ---------------------------------------------------------------------------
// Integers. Every conversion is range-checked: out of range is an error, never
// a silent truncation.

#[inline(always)]
unsafe fn long_as_i64(o: *mut PyObject) -> Result<i64, ArgError> {
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
unsafe fn long_as_u64(o: *mut PyObject) -> Result<u64, ArgError> {
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
unsafe fn long_split(o: *mut PyObject) -> Result<(*mut PyObject, u64), ArgError> {
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

unsafe fn join_hi_lo(hi: *mut PyObject, lo: u64) -> *mut PyObject {
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

impl FromPy for f64 {
    #[inline(always)]
    unsafe fn from_py(o: *mut PyObject) -> Result<Self, ArgError> {
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
            Err(ArgError::Type(""))
        }
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
