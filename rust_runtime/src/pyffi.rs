//! The CPython C-API items the runtime uses, declared by hand (no headers, no crates).
//!
//! Layouts are those of a non-free-threaded CPython >= 3.10 release build.
//! `Py*` symbols stay undefined in the cdylib and bind to the running
//! interpreter when it is imported as an extension module.

#![allow(non_camel_case_types, non_snake_case, non_upper_case_globals, dead_code)]

use std::os::raw::{c_char, c_double, c_int, c_long, c_longlong, c_uint, c_ulonglong, c_void};

#[repr(C)]
pub struct PyObject {
    pub ob_refcnt: isize,
    pub ob_type: *mut PyObject,
}

pub type PyCFn = unsafe extern "C" fn(*mut PyObject, *mut PyObject) -> *mut PyObject;
pub type PyFastFn = unsafe extern "C" fn(*mut PyObject, *const *mut PyObject, isize) -> *mut PyObject;
pub type Getter = unsafe extern "C" fn(*mut PyObject, *mut c_void) -> *mut PyObject;
pub type Setter = unsafe extern "C" fn(*mut PyObject, *mut PyObject, *mut c_void) -> c_int;

#[repr(C)]
pub struct PyMethodDef {
    pub ml_name: *const c_char,
    pub ml_meth: *const c_void,
    pub ml_flags: c_int,
    pub ml_doc: *const c_char,
}

#[repr(C)]
pub struct PyGetSetDef {
    pub name: *const c_char,
    pub get: Option<Getter>,
    pub set: Option<Setter>,
    pub doc: *const c_char,
    pub closure: *mut c_void,
}

#[repr(C)]
pub struct PyType_Slot {
    pub slot: c_int,
    pub pfunc: *mut c_void,
}

#[repr(C)]
pub struct PyType_Spec {
    pub name: *const c_char,
    pub basicsize: c_int,
    pub itemsize: c_int,
    pub flags: c_uint,
    pub slots: *mut PyType_Slot,
}

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

pub const METH_VARARGS: c_int = 0x0001;
pub const METH_KEYWORDS: c_int = 0x0002;
pub const METH_NOARGS: c_int = 0x0004;
pub const METH_O: c_int = 0x0008;
pub const METH_FASTCALL: c_int = 0x0080;
pub const PYTHON_API_VERSION: c_int = 1013;

pub const Py_TPFLAGS_IMMUTABLETYPE: c_uint = 1 << 8;
pub const Py_TPFLAGS_DEFAULT: c_uint = 1 << 18; // Py_TPFLAGS_HAVE_VERSION_TAG
pub const Py_TPFLAGS_SEQUENCE: c_uint = 1 << 5;

pub const Py_bf_getbuffer: c_int = 1;
pub const Py_bf_releasebuffer: c_int = 2;
pub const Py_mp_length: c_int = 4;
pub const Py_sq_ass_item: c_int = 39;
pub const Py_sq_item: c_int = 44;
pub const Py_sq_length: c_int = 45;
pub const Py_tp_dealloc: c_int = 52;
pub const Py_tp_doc: c_int = 56;
pub const Py_tp_methods: c_int = 64;
pub const Py_tp_new: c_int = 65;
pub const Py_tp_repr: c_int = 66;
pub const Py_tp_getset: c_int = 73;

pub const PyBUF_WRITABLE: c_int = 0x0001;
pub const PyBUF_FORMAT: c_int = 0x0004;
pub const PyBUF_ND: c_int = 0x0008;
pub const PyBUF_STRIDES: c_int = 0x0010 | PyBUF_ND;
pub const PyBUF_C_CONTIGUOUS: c_int = 0x0020 | PyBUF_STRIDES;
pub const PyBUF_F_CONTIGUOUS: c_int = 0x0040 | PyBUF_STRIDES;

extern "C" {
    pub fn PyModule_Create2(def: *mut PyModuleDef, apiver: c_int) -> *mut PyObject;
    pub fn PyModule_AddObjectRef(m: *mut PyObject, name: *const c_char, o: *mut PyObject) -> c_int;
    pub fn PyType_FromSpec(spec: *mut PyType_Spec) -> *mut PyObject;
    pub fn PyCapsule_New(p: *mut c_void, name: *const c_char, destructor: *mut c_void) -> *mut PyObject;
    pub fn PyImport_ImportModule(name: *const c_char) -> *mut PyObject;
    pub fn PyObject_GetAttrString(o: *mut PyObject, name: *const c_char) -> *mut PyObject;
    pub fn PyObject_CallFunctionObjArgs(callable: *mut PyObject, ...) -> *mut PyObject;
    pub fn PyObject_Malloc(n: usize) -> *mut c_void;
    pub fn PyObject_Free(p: *mut c_void);
    pub fn PyObject_Init(o: *mut PyObject, t: *mut PyObject) -> *mut PyObject;
    pub fn PyObject_IsTrue(o: *mut PyObject) -> c_int;
    pub fn Py_IncRef(o: *mut PyObject);
    pub fn Py_DecRef(o: *mut PyObject);

    pub fn PyErr_Occurred() -> *mut PyObject;
    pub fn PyErr_Clear();
    pub fn PyErr_SetString(t: *mut PyObject, msg: *const c_char);
    pub fn PyErr_SetObject(t: *mut PyObject, v: *mut PyObject);
    pub fn PyErr_ExceptionMatches(exc: *mut PyObject) -> c_int;
    pub fn PyErr_NoMemory() -> *mut PyObject;

    pub fn PyLong_AsLongLongAndOverflow(o: *mut PyObject, overflow: *mut c_int) -> c_longlong;
    pub fn PyLong_AsUnsignedLongLong(o: *mut PyObject) -> c_ulonglong;
    pub fn PyLong_AsSsize_t(o: *mut PyObject) -> isize;
    pub fn PyLong_FromLongLong(v: c_longlong) -> *mut PyObject;
    pub fn PyLong_FromUnsignedLongLong(v: c_ulonglong) -> *mut PyObject;
    pub fn PyLong_FromSize_t(v: usize) -> *mut PyObject;
    pub fn PyNumber_Index(o: *mut PyObject) -> *mut PyObject;
    pub fn PyFloat_AsDouble(o: *mut PyObject) -> c_double;
    pub fn PyFloat_FromDouble(v: c_double) -> *mut PyObject;
    pub fn PyBool_FromLong(v: c_long) -> *mut PyObject;
    pub fn PyUnicode_FromStringAndSize(s: *const c_char, n: isize) -> *mut PyObject;
    pub fn PyUnicode_AsUTF8AndSize(o: *mut PyObject, n: *mut isize) -> *const c_char;

    pub fn PyTuple_Size(t: *mut PyObject) -> isize;
    pub fn PyTuple_GetItem(t: *mut PyObject, i: isize) -> *mut PyObject;
    pub fn PyTuple_New(n: isize) -> *mut PyObject;
    pub fn PyTuple_SetItem(t: *mut PyObject, i: isize, o: *mut PyObject) -> c_int;
    pub fn PyDict_GetItemString(d: *mut PyObject, k: *const c_char) -> *mut PyObject;
    pub fn PyDict_Size(d: *mut PyObject) -> isize;
    pub fn PyList_New(n: isize) -> *mut PyObject;
    pub fn PyList_SetItem(l: *mut PyObject, i: isize, o: *mut PyObject) -> c_int;
    pub fn PyList_Append(l: *mut PyObject, o: *mut PyObject) -> c_int;
    pub fn PyObject_GetIter(o: *mut PyObject) -> *mut PyObject;
    pub fn PyIter_Next(it: *mut PyObject) -> *mut PyObject;
    pub fn PyObject_LengthHint(o: *mut PyObject, default: isize) -> isize;
    pub fn PyObject_Size(o: *mut PyObject) -> isize;

    pub fn PyObject_CheckBuffer(o: *mut PyObject) -> c_int;
    pub fn PyObject_GetBuffer(o: *mut PyObject, view: *mut Py_buffer, flags: c_int) -> c_int;
    pub fn PyBuffer_Release(view: *mut Py_buffer);

    pub fn PyEval_GetFrame() -> *mut PyObject;
    pub fn PyFrame_GetLineNumber(f: *mut PyObject) -> c_int;
    pub fn PyFrame_GetCode(f: *mut PyObject) -> *mut PyObject;
    #[cfg(rc_lasti)]
    pub fn PyFrame_GetLasti(f: *mut PyObject) -> c_int;
    #[cfg(rc_lasti)]
    pub fn PyCode_Addr2Line(code: *mut PyObject, byte_offset: c_int) -> c_int;

    pub static mut _Py_NoneStruct: PyObject;
    pub static mut _Py_TrueStruct: PyObject;
    pub static mut _Py_FalseStruct: PyObject;
    pub static mut PyUnicode_Type: PyObject;
    pub static mut PyExc_TypeError: *mut PyObject;
    pub static mut PyExc_ValueError: *mut PyObject;
    pub static mut PyExc_IndexError: *mut PyObject;
    pub static mut PyExc_OverflowError: *mut PyObject;
    pub static mut PyExc_BufferError: *mut PyObject;
    pub static mut PyExc_MemoryError: *mut PyObject;
    pub static mut PyExc_RuntimeError: *mut PyObject;
}

#[inline(always)]
pub unsafe fn none() -> *mut PyObject {
    let p = std::ptr::addr_of_mut!(_Py_NoneStruct);
    Py_IncRef(p);
    p
}

#[inline(always)]
pub unsafe fn py_true() -> *mut PyObject {
    std::ptr::addr_of_mut!(_Py_TrueStruct)
}

#[inline(always)]
pub unsafe fn py_false() -> *mut PyObject {
    std::ptr::addr_of_mut!(_Py_FalseStruct)
}

#[inline(always)]
pub unsafe fn new_bool(b: bool) -> *mut PyObject {
    let p = if b { py_true() } else { py_false() };
    Py_IncRef(p);
    p
}

#[inline(always)]
pub unsafe fn incref(o: *mut PyObject) -> *mut PyObject {
    // Immediate refcount bump: cheaper than a call for the hot paths (non-debug build layout).
    (*o).ob_refcnt += 1;
    o
}

/// A Python str from Rust text.
pub unsafe fn py_str(s: &str) -> *mut PyObject {
    PyUnicode_FromStringAndSize(s.as_ptr() as *const c_char, s.len() as isize)
}

/// Sets `exc` with the Rust text `msg`; returns NULL for `return raise(...)`.
pub unsafe fn raise(exc: *mut PyObject, msg: &str) -> *mut PyObject {
    let m = py_str(msg);
    if !m.is_null() {
        PyErr_SetObject(exc, m);
        Py_DecRef(m);
    }
    std::ptr::null_mut()
}

/// The UTF-8 bytes of a str (borrowed from the object), or None when `o` is not a str.
pub unsafe fn str_bytes<'a>(o: *mut PyObject) -> Option<&'a [u8]> {
    let mut n: isize = 0;
    let p = PyUnicode_AsUTF8AndSize(o, &mut n);
    if p.is_null() {
        PyErr_Clear();
        return None;
    }
    Some(std::slice::from_raw_parts(p as *const u8, n as usize))
}

extern "C" {
    pub fn PyObject_Repr(o: *mut PyObject) -> *mut PyObject;
    pub static mut PyBool_Type: PyObject;
    pub static mut PyLong_Type: PyObject;
    pub static mut PyFloat_Type: PyObject;
}

extern "C" {
    pub fn PyDict_Items(d: *mut PyObject) -> *mut PyObject;
    pub fn PyList_Size(l: *mut PyObject) -> isize;
    pub fn PySequence_List(o: *mut PyObject) -> *mut PyObject;
    pub fn PyList_GetItem(l: *mut PyObject, i: isize) -> *mut PyObject;
}
