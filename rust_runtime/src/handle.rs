//! The four handle types (`RustBox`, `RustRc`, `RustArc`, `RustVec`) as CPython
//! extension types built with `PyType_FromSpec`.
//!
//! All four share one object layout, [`Handle`] (also read by cell glue
//! through the ABI of `abi.rs`): the handle's state, its dtype, its registry
//! slot and the payload — a raw `Box`/`Rc`/`Arc` pointer or the raw parts of a
//! `Vec`. A handle owns its payload while `alive`; `drop()`, a move into a
//! cell function, or collection by the GC ends it exactly once.
//!
//! Python code can run while a cell call converts its arguments (a later
//! argument's `__index__`), after the glue already borrowed earlier handle
//! arguments (the `borrow` byte). While lent, a handle refuses everything that
//! frees, moves, reallocates, writes or exports its payload ([`check_change`]);
//! while lent exclusively (`&mut`, or reserved for a move) it refuses reads too
//! ([`check_read`]), as Rust allows no other access next to a `&mut`. Any code
//! that runs Python code (a conversion, an iterator) re-checks afterwards.

use crate::convert::{from_py, raise_conv, to_py, Raised};
use crate::dtype::{first_invalid_bool, read, DType, Scalar};
use crate::panic::guard;
use crate::pyffi::*;
use crate::registry::*;
use crate::vec::{RawVec, VecError};
use crate::{arc, boxed, rc};
use std::os::raw::{c_char, c_int, c_void};
use std::ptr::{addr_of_mut, null_mut};

/// The object layout of every handle. Part of the cell ABI (see `abi.rs`).
#[repr(C)]
pub struct Handle {
    pub ob: PyObject,
    pub kind: u8,
    pub dtype: u8,
    pub state: u8,
    /// Borrows by the arguments of a running cell call (0: none; `BORROW_EXCLUSIVE`: `&mut` or
    /// reserved for a move; else the count of `&` borrows). Only cell glue writes it; the
    /// runtime reads it to refuse Python's use of a lent handle.
    pub borrow: u8,
    pub slot: u32,
    pub id: u64,
    /// Buffer views currently exported (Vec only).
    pub exports: isize,
    /// The creating thread's token (checked for Rc).
    pub owner: usize,
    /// Box/Rc/Arc: the raw pointer in `data.ptr`; Vec: the raw parts.
    pub data: RawVec,
    /// Vec only: the N-d shape its buffer views export (`v.shape = (3, 4)`), a leaked
    /// `Box<Vec<usize>>`; null for none. Ignored while the length differs from its product.
    pub shape: *mut Vec<usize>,
}

pub static mut TYPES: [*mut PyObject; 4] = [null_mut(); 4];
pub static mut HANDLE_ERROR: *mut PyObject = null_mut();
static mut REGISTRY: Registry = Registry::new();
/// Payload allocations made and released by handles (for tests: each exactly once).
pub static mut PAYLOADS: (u64, u64) = (0, 0);

const TYPE_NAMES: [&str; 4] = ["RustBox", "RustRc", "RustArc", "RustVec"];

/// The registry (only touched with the interpreter lock held).
#[inline(always)]
pub unsafe fn registry() -> &'static mut Registry {
    &mut *addr_of_mut!(REGISTRY)
}

/// `o` as a handle of `kind`, if it is one.
#[inline(always)]
pub unsafe fn as_kind<'a>(o: *mut PyObject, kind: u8) -> Option<&'a mut Handle> {
    if (*o).ob_type == TYPES[kind as usize] {
        Some(&mut *(o as *mut Handle))
    } else {
        None
    }
}

/// `o` as any handle, if it is one.
#[inline(always)]
pub unsafe fn as_handle<'a>(o: *mut PyObject) -> Option<&'a mut Handle> {
    let t = (*o).ob_type;
    if !t.is_null() && (*std::ptr::addr_of!(TYPES)).contains(&t) {
        Some(&mut *(o as *mut Handle))
    } else {
        None
    }
}

#[inline(always)]
pub fn dtype_of(h: &Handle) -> DType {
    DType::from_code(h.dtype).expect("handle dtype is valid")
}

/// `RustRc<f64> #7`, for messages.
pub fn label(h: &Handle) -> String {
    format!("{}<{}> #{}", TYPE_NAMES[h.kind as usize], dtype_of(h).name(), h.id)
}

/// Raises RustHandleError with `msg`.
pub unsafe fn handle_error(msg: &str) -> *mut PyObject {
    raise(HANDLE_ERROR, msg)
}

/// Ok when `h` may be used now: alive, and for Rc on its creating thread. Raises otherwise.
#[inline(always)]
pub unsafe fn check_usable(h: &Handle) -> Result<(), Raised> {
    if h.state != STATE_ALIVE {
        let what = match h.state {
            STATE_MOVED => "was moved into a Rust function",
            _ => "was dropped",
        };
        handle_error(&format!("{} {}; it can no longer be used", label(h), what));
        return Err(Raised);
    }
    if h.kind == KIND_RC && h.owner != rc::thread_token() {
        handle_error(&format!(
            "{} was created on another thread; Rc is !Send (use RustArc to share across threads)",
            label(h)
        ));
        return Err(Raised);
    }
    Ok(())
}

/// Raises RustHandleError: `h` is lent to a running cell call, so `action` must wait for it.
#[cold]
#[inline(never)]
unsafe fn raise_lent(h: &Handle, action: &str) -> Raised {
    handle_error(&format!(
        "cannot {} {}: it is lent to a running Rust call ({}) until that call returns",
        action,
        label(h),
        lent_as(h.borrow)
    ));
    Raised
}

/// Ok when Python may read `h` now (usable, not lent exclusively to a running call); raises
/// RustHandleError otherwise.
#[inline(always)]
pub unsafe fn check_read(h: &Handle, action: &str) -> Result<(), Raised> {
    check_usable(h)?;
    if !may_read(h.borrow) {
        return Err(raise_lent(h, action));
    }
    Ok(())
}

/// Ok when Python may free, move, reallocate, write or export `h` now (usable, not lent to a
/// running call); raises RustHandleError otherwise.
#[inline(always)]
pub unsafe fn check_change(h: &Handle, action: &str) -> Result<(), Raised> {
    check_usable(h)?;
    if !may_change(h.borrow) {
        return Err(raise_lent(h, action));
    }
    Ok(())
}

/// Where the Python code creating a handle is: (owned code object or 0, position in it).
///
/// The position is the instruction's byte offset where `PyFrame_GetLasti` exists (3.11+),
/// else the line. Turning an offset into a line walks the code's line table from its
/// start, a cost that grows with the function; [`origin_line`] pays it only when a row
/// is shown, not on every creation.
#[inline(always)]
unsafe fn capture_origin() -> (usize, u32) {
    let f = PyEval_GetFrame();
    if f.is_null() {
        return (0, 0);
    }
    let code = PyFrame_GetCode(f);
    #[cfg(rc_lasti)]
    let pos = PyFrame_GetLasti(f).max(0) as u32;
    #[cfg(not(rc_lasti))]
    let pos = PyFrame_GetLineNumber(f) as u32;
    (code as usize, pos)
}

/// The line of an origin captured by [`capture_origin`] (0 when unknown).
pub unsafe fn origin_line(origin: usize, pos: u32) -> i64 {
    if origin == 0 {
        return 0;
    }
    #[cfg(rc_lasti)]
    return PyCode_Addr2Line(origin as *mut PyObject, pos as std::os::raw::c_int) as i64;
    #[cfg(not(rc_lasti))]
    return pos as i64;
}

/// Releases an origin token handed back by the registry.
#[inline(always)]
pub unsafe fn release_origin(o: usize) {
    if o != 0 {
        Py_DecRef(o as *mut PyObject);
    }
}

/// A new alive handle owning `data`; NULL (MemoryError) leaves `data` with the caller.
pub unsafe fn new_handle(kind: u8, dt: DType, data: RawVec, owner: usize) -> *mut PyObject {
    let o = PyObject_Malloc(std::mem::size_of::<Handle>()) as *mut Handle;
    if o.is_null() {
        return PyErr_NoMemory();
    }
    PyObject_Init(o as *mut PyObject, TYPES[kind as usize]);
    let (origin, line) = capture_origin();
    let (slot, id) = registry().register(kind, dt as u8, o as usize, origin, line);
    let h = &mut *o;
    h.kind = kind;
    h.dtype = dt as u8;
    h.state = STATE_ALIVE;
    h.borrow = 0;
    h.slot = slot;
    h.id = id;
    h.exports = 0;
    h.owner = owner;
    h.data = data;
    h.shape = null_mut();
    PAYLOADS.0 += 1;
    o as *mut PyObject
}

/// The current value (Box/Rc/Arc) of a usable handle.
#[inline(always)]
unsafe fn value_of(h: &Handle) -> Scalar {
    read(dtype_of(h), h.data.ptr)
}

/// Ends an alive handle: releases its payload (unless `state` is MOVED: the payload
/// then belongs to whoever took it) and records the end in the registry.
pub unsafe fn end_handle(h: &mut Handle, state: u8) {
    debug_assert_eq!(h.state, STATE_ALIVE);
    let dt = dtype_of(h);
    let mut last = None;
    let mut strong_left = 0;
    let len = h.data.len;
    if state != STATE_MOVED {
        match h.kind {
            KIND_BOX => {
                last = Some(value_of(h));
                boxed::free(dt, h.data.ptr);
            }
            KIND_RC => {
                last = Some(value_of(h));
                strong_left = rc::release(dt, h.data.ptr);
            }
            KIND_ARC => {
                last = Some(value_of(h));
                strong_left = arc::release(dt, h.data.ptr);
            }
            _ => h.data.free(dt),
        }
        PAYLOADS.1 += 1;
    } else {
        strong_left = match h.kind {
            KIND_RC => rc::strong_count(dt, h.data.ptr),
            KIND_ARC => arc::strong_count(dt, h.data.ptr),
            _ => 0,
        };
    }
    h.state = state;
    h.data = RawVec { ptr: null_mut(), len: 0, cap: 0 };
    release_origin(registry().end(h.slot, state, last, len, strong_left));
}

/// Marks a handle whose payload was taken by a cell function as moved.
pub unsafe fn mark_moved(h: &mut Handle) {
    PAYLOADS.1 += 1;
    end_handle(h, STATE_MOVED);
}

// ---------------------------------------------------------------------------
// Slots shared by the four types.

unsafe extern "C" fn dealloc(o: *mut PyObject) {
    let h = &mut *(o as *mut Handle);
    if h.state == STATE_ALIVE {
        // The GC (or the last reference) frees an undropped handle, once. An Rc released
        // here from another thread is still safe: every Rc operation holds the interpreter lock.
        // Never touch the error indicator here: a dealloc can run while an exception is pending.
        guard("dealloc", (), || end_handle(h, STATE_COLLECTED));
    }
    if !h.shape.is_null() {
        drop(Box::from_raw(h.shape));
    }
    let t = (*o).ob_type;
    PyObject_Free(o as *mut c_void);
    Py_DecRef(t);
}

unsafe fn repr_obj(v: *mut PyObject) -> String {
    if v.is_null() {
        PyErr_Clear();
        return "?".to_string();
    }
    let r = PyObject_Repr(v);
    Py_DecRef(v);
    if r.is_null() {
        PyErr_Clear();
        return "?".to_string();
    }
    let s = str_bytes(r).map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
    Py_DecRef(r);
    s
}

unsafe fn vec_preview(h: &Handle, max: usize) -> String {
    let dt = dtype_of(h);
    let n = h.data.len.min(max);
    let mut parts: Vec<String> = (0..n).map(|i| repr_obj(to_py(read(dt, h.data.elem_ptr(dt, i))))).collect();
    if h.data.len > max {
        parts.push("...".to_string());
    }
    format!("[{}]", parts.join(", "))
}

unsafe extern "C" fn repr(o: *mut PyObject) -> *mut PyObject {
    guard("repr", null_mut(), || {
        let h = &*(o as *mut Handle);
        let head = format!("{}<{}>", TYPE_NAMES[h.kind as usize], dtype_of(h).name());
        let body = if h.state == STATE_MOVED {
            "<moved>".to_string()
        } else if h.state != STATE_ALIVE {
            "<dropped>".to_string()
        } else if h.kind == KIND_RC && h.owner != rc::thread_token() {
            "<owned by another thread>".to_string()
        } else if !may_read(h.borrow) {
            "<lent to a running Rust call>".to_string()
        } else {
            match h.kind {
                KIND_BOX => repr_obj(to_py(value_of(h))),
                KIND_RC | KIND_ARC => {
                    let dt = dtype_of(h);
                    let n = if h.kind == KIND_RC {
                        rc::strong_count(dt, h.data.ptr)
                    } else {
                        arc::strong_count(dt, h.data.ptr)
                    };
                    format!("{}, strong_count={}", repr_obj(to_py(value_of(h))), n)
                }
                _ => format!("len={}, {}", h.data.len, vec_preview(h, 8)),
            }
        };
        py_str(&format!("{head}({body})"))
    })
}

// -- getters / setters ----------------------------------------------------------

unsafe extern "C" fn get_value(o: *mut PyObject, _c: *mut c_void) -> *mut PyObject {
    let h = &*(o as *mut Handle);
    if check_read(h, "read").is_err() {
        return null_mut();
    }
    to_py(value_of(h))
}

unsafe extern "C" fn set_value(o: *mut PyObject, v: *mut PyObject, _c: *mut c_void) -> c_int {
    guard("value", -1, || {
        let h = &mut *(o as *mut Handle);
        if v.is_null() {
            raise(PyExc_TypeError, "cannot delete a handle's value");
            return -1;
        }
        if check_change(h, "assign to").is_err() {
            return -1;
        }
        let dt = dtype_of(h);
        let s = match from_py(dt, v) {
            Ok(s) => s,
            Err(_) => return -1,
        };
        // The conversion ran Python code (`__index__`...) that may have dropped or lent the
        // handle: look again, through a fresh reference.
        let h = &mut *(o as *mut Handle);
        if check_change(h, "assign to").is_err() {
            return -1;
        }
        let r = match h.kind {
            KIND_BOX => crate::dtype::write(dt, h.data.ptr, s).map(|_| true),
            KIND_RC => rc::set_unique(dt, h.data.ptr, s),
            _ => arc::set_unique(dt, h.data.ptr, s),
        };
        match r {
            Ok(true) => 0,
            Ok(false) => {
                let n = if h.kind == KIND_RC {
                    rc::strong_count(dt, h.data.ptr)
                } else {
                    arc::strong_count(dt, h.data.ptr)
                };
                handle_error(&format!(
                    "cannot assign through {}: the value is shared (strong_count={}); Rust allows it only \
                     for the sole owner (get_mut)",
                    label(h),
                    n
                ));
                -1
            }
            Err(e) => {
                raise_conv(dt, e, v);
                -1
            }
        }
    })
}

unsafe extern "C" fn get_dropped(o: *mut PyObject, _c: *mut c_void) -> *mut PyObject {
    new_bool((*(o as *mut Handle)).state != STATE_ALIVE)
}

unsafe extern "C" fn get_state(o: *mut PyObject, _c: *mut c_void) -> *mut PyObject {
    py_str(STATE_NAMES[(*(o as *mut Handle)).state as usize])
}

unsafe extern "C" fn get_dtype(o: *mut PyObject, _c: *mut c_void) -> *mut PyObject {
    py_str(dtype_of(&*(o as *mut Handle)).name())
}

unsafe extern "C" fn get_id(o: *mut PyObject, _c: *mut c_void) -> *mut PyObject {
    PyLong_FromUnsignedLongLong((*(o as *mut Handle)).id)
}

unsafe extern "C" fn get_strong_count(o: *mut PyObject, _c: *mut c_void) -> *mut PyObject {
    let h = &*(o as *mut Handle);
    if check_read(h, "read").is_err() {
        return null_mut();
    }
    let dt = dtype_of(h);
    let n = if h.kind == KIND_RC { rc::strong_count(dt, h.data.ptr) } else { arc::strong_count(dt, h.data.ptr) };
    PyLong_FromSize_t(n)
}

/// The N-d shape of a vector: the one set, while its product is the length; else `[len]`.
pub unsafe fn shape_of(h: &Handle) -> Vec<usize> {
    if !h.shape.is_null() && (*h.shape).iter().product::<usize>() == h.data.len {
        return (*h.shape).clone();
    }
    vec![h.data.len]
}

unsafe extern "C" fn get_shape(o: *mut PyObject, _c: *mut c_void) -> *mut PyObject {
    let h = &*(o as *mut Handle);
    if check_read(h, "read").is_err() {
        return null_mut();
    }
    let shape = shape_of(h);
    let t = PyTuple_New(shape.len() as isize);
    if t.is_null() {
        return t;
    }
    for (i, n) in shape.iter().enumerate() {
        PyTuple_SetItem(t, i as isize, PyLong_FromSize_t(*n));
    }
    t
}

/// `v.shape = (3, 4)`: the shape buffer views export (numpy.asarray(v) is then 3x4);
/// the product must be the length. `None` (or del) makes the vector 1-D again.
unsafe extern "C" fn set_shape(o: *mut PyObject, value: *mut PyObject, _c: *mut c_void) -> c_int {
    guard("shape", -1, || {
        let h = &mut *(o as *mut Handle);
        if check_usable(h).is_err() {
            return -1;
        }
        let given = !value.is_null() && value != addr_of_mut!(_Py_NoneStruct);
        let not_ints = |h: &Handle| {
            PyErr_Clear();
            raise(PyExc_TypeError, &format!("the shape of {} must be a tuple of ints", label(h)));
            -1
        };
        let mut shape: Vec<usize> = Vec::new();
        if given {
            let list = PySequence_List(value);
            if list.is_null() {
                return not_ints(h);
            }
            for i in 0..PyList_Size(list) {
                let n = PyLong_AsSsize_t(PyList_GetItem(list, i));
                if n < 0 {
                    Py_DecRef(list);
                    if !PyErr_Occurred().is_null() {
                        return not_ints(h);
                    }
                    raise(PyExc_ValueError, &format!("the shape of {} cannot have negative sizes", label(h)));
                    return -1;
                }
                shape.push(n as usize);
            }
            Py_DecRef(list);
            let total = shape.iter().try_fold(1usize, |a, n| a.checked_mul(*n));
            if total != Some(h.data.len) {
                raise(
                    PyExc_ValueError,
                    &format!("cannot reshape {} of length {} into shape {:?}", label(h), h.data.len, shape),
                );
                return -1;
            }
        }
        if !h.shape.is_null() {
            drop(Box::from_raw(h.shape));
            h.shape = null_mut();
        }
        if given {
            h.shape = Box::into_raw(Box::new(shape));
        }
        0
    })
}

unsafe extern "C" fn get_capacity(o: *mut PyObject, _c: *mut c_void) -> *mut PyObject {
    let h = &*(o as *mut Handle);
    if check_read(h, "read").is_err() {
        return null_mut();
    }
    PyLong_FromSize_t(h.data.cap)
}

// -- methods ------------------------------------------------------------------------

/// Ends the handle now (idempotent). Refused (RustHandleError) while lent to a running call,
/// and (BufferError) while buffer views of a RustVec exist.
pub unsafe fn drop_handle(h: &mut Handle) -> Result<(), Raised> {
    if h.state != STATE_ALIVE {
        return Ok(());
    }
    check_change(h, "drop")?;
    if h.exports > 0 {
        raise(
            PyExc_BufferError,
            &format!("cannot drop {}: {} buffer view(s) of it still exist", label(h), h.exports),
        );
        return Err(Raised);
    }
    end_handle(h, STATE_DROPPED);
    Ok(())
}

unsafe extern "C" fn m_drop(o: *mut PyObject, _a: *mut PyObject) -> *mut PyObject {
    guard("drop", null_mut(), || match drop_handle(&mut *(o as *mut Handle)) {
        Ok(()) => none(),
        Err(_) => null_mut(),
    })
}

unsafe extern "C" fn m_enter(o: *mut PyObject, _a: *mut PyObject) -> *mut PyObject {
    let h = &*(o as *mut Handle);
    if check_usable(h).is_err() {
        return null_mut();
    }
    incref(o)
}

unsafe extern "C" fn m_exit(o: *mut PyObject, _args: *const *mut PyObject, _n: isize) -> *mut PyObject {
    m_drop(o, null_mut())
}

unsafe extern "C" fn m_clone(o: *mut PyObject, _a: *mut PyObject) -> *mut PyObject {
    guard("clone", null_mut(), || {
        let h = &*(o as *mut Handle);
        if check_read(h, "clone").is_err() {
            return null_mut();
        }
        let dt = dtype_of(h);
        let data = match h.kind {
            KIND_BOX => RawVec { ptr: boxed::clone(dt, h.data.ptr), len: 0, cap: 0 },
            KIND_RC => {
                rc::clone(dt, h.data.ptr);
                h.data
            }
            KIND_ARC => {
                arc::clone(dt, h.data.ptr);
                h.data
            }
            _ => match h.data.clone(dt) {
                Ok(data) => data,
                Err(e) => return raise_vec(h, e, "clone"),
            },
        };
        let r = new_handle(h.kind, dt, data, h.owner);
        if r.is_null() {
            let mut tmp = Handle { ob: PyObject { ob_refcnt: 1, ob_type: null_mut() }, data, shape: null_mut(), ..*h };
            free_payload(&mut tmp);
        } else if !h.shape.is_null() {
            (*(r as *mut Handle)).shape = Box::into_raw(Box::new((*h.shape).clone()));
        }
        r
    })
}

unsafe fn free_payload(h: &mut Handle) {
    let dt = dtype_of(h);
    match h.kind {
        KIND_BOX => boxed::free(dt, h.data.ptr),
        KIND_RC => {
            rc::release(dt, h.data.ptr);
        }
        KIND_ARC => {
            arc::release(dt, h.data.ptr);
        }
        _ => h.data.free(dt),
    }
}

unsafe fn raise_vec(h: &Handle, e: VecError, what: &str) -> *mut PyObject {
    match e {
        VecError::Index => raise(PyExc_IndexError, &format!("{} index out of range (len {})", label(h), h.data.len)),
        VecError::Empty => raise(PyExc_IndexError, &format!("pop from empty {}", label(h))),
        VecError::Exported => raise(
            PyExc_BufferError,
            &format!(
                "cannot {} {}: it would reallocate while {} buffer view(s) of it exist",
                what,
                label(h),
                h.exports
            ),
        ),
        VecError::NoMemory => raise(
            PyExc_MemoryError,
            &format!("cannot {} {}: not enough memory for the elements", what, label(h)),
        ),
        VecError::Conv(_) => null_mut(), // raised by the caller with the offending value
    }
}

unsafe extern "C" fn m_push(o: *mut PyObject, v: *mut PyObject) -> *mut PyObject {
    guard("push", null_mut(), || {
        let h = &mut *(o as *mut Handle);
        if check_change(h, "push to").is_err() {
            return null_mut();
        }
        let dt = dtype_of(h);
        let s = match from_py(dt, v) {
            Ok(s) => s,
            Err(_) => return null_mut(),
        };
        // The conversion ran Python code that may have dropped, lent or viewed the vector.
        let h = &mut *(o as *mut Handle);
        if check_change(h, "push to").is_err() {
            return null_mut();
        }
        match h.data.push(dt, s, h.exports > 0) {
            Ok(()) => none(),
            Err(VecError::Conv(e)) => {
                raise_conv(dt, e, v);
                null_mut()
            }
            Err(e) => raise_vec(h, e, "push to"),
        }
    })
}

unsafe extern "C" fn m_pop(o: *mut PyObject, _a: *mut PyObject) -> *mut PyObject {
    guard("pop", null_mut(), || {
        let h = &mut *(o as *mut Handle);
        if check_change(h, "pop from").is_err() {
            return null_mut();
        }
        match h.data.pop(dtype_of(h)) {
            Ok(s) => to_py(s),
            Err(e) => raise_vec(h, e, "pop"),
        }
    })
}

/// A C-contiguous buffer of `o` and its dtype, or None (no buffer / other layout; no error set).
pub unsafe fn get_buffer(o: *mut PyObject, writable: bool) -> Option<(Py_buffer, Option<DType>)> {
    if PyObject_CheckBuffer(o) == 0 {
        return None;
    }
    let mut view: Py_buffer = std::mem::zeroed();
    let flags = PyBUF_FORMAT | PyBUF_C_CONTIGUOUS | if writable { PyBUF_WRITABLE } else { 0 };
    if PyObject_GetBuffer(o, &mut view, flags) != 0 {
        PyErr_Clear();
        return None;
    }
    let fmt: &[u8] = if view.format.is_null() {
        b""
    } else {
        std::ffi::CStr::from_ptr(view.format).to_bytes()
    };
    let dt = DType::from_buffer_format(fmt, view.itemsize as usize);
    Some((view, dt))
}

/// Appends the items of `src` (a buffer of the same dtype: one copy; else any iterable;
/// `src` being the vector itself appends a copy of it, as `list.extend` does).
///
/// Takes a raw pointer and re-borrows after every call that can run Python code (an
/// iterator, a conversion): that code may drop, lend or view the vector meanwhile.
pub unsafe fn extend_from(hp: *mut Handle, src: *mut PyObject) -> Result<(), Raised> {
    let dt = dtype_of(&*hp);
    if src == hp as *mut PyObject {
        // No buffer view of itself is taken, so none is counted against a reallocation.
        let h = &mut *hp;
        return h.data.extend_self(dt, h.exports > 0).map_err(|e| {
            raise_vec(h, e, "extend");
            Raised
        });
    }
    if let Some((mut view, vdt)) = get_buffer(src, false) {
        if vdt == Some(dt) {
            let h = &mut *hp;
            let n = view.len as usize / dt.size();
            let bytes = std::slice::from_raw_parts(view.buf as *const u8, view.len as usize);
            // Any byte can sit in a Python bool buffer; Rust's bool must be 0 or 1.
            if dt == DType::Bool {
                if let Some(i) = first_invalid_bool(bytes) {
                    let b = bytes[i];
                    PyBuffer_Release(&mut view);
                    raise(
                        PyExc_ValueError,
                        &format!(
                            "{}: item {} of the buffer is {}, not a bool (a Rust bool is the byte 0 or 1)",
                            label(h),
                            i,
                            b
                        ),
                    );
                    return Err(Raised);
                }
            }
            // Copy through a temporary when `src` is a view of this very vector.
            let r = if view.buf as *mut u8 >= h.data.ptr && (view.buf as *mut u8) < h.data.elem_ptr(dt, h.data.cap) {
                let tmp: Vec<u8> = bytes.to_vec();
                h.data.extend_raw(dt, tmp.as_ptr(), n, h.exports > 0)
            } else {
                h.data.extend_raw(dt, view.buf as *const u8, n, h.exports > 0)
            };
            PyBuffer_Release(&mut view);
            return match r {
                Ok(()) => Ok(()),
                Err(e) => {
                    raise_vec(h, e, "extend");
                    Err(Raised)
                }
            };
        }
        PyBuffer_Release(&mut view);
    }
    let it = PyObject_GetIter(src);
    if it.is_null() {
        return Err(Raised);
    }
    let r = extend_from_iter(hp, dt, src, it);
    Py_DecRef(it);
    r
}

/// Most elements a `__length_hint__` (a guess, which may lie) reserves ahead of the items.
const MAX_GUESSED_RESERVE: usize = 1 << 16;

/// The iterator half of [`extend_from`]: all of `it`'s items, or none (on any error the
/// vector is cut back to its length before, as `bytearray.extend` leaves itself unchanged).
unsafe fn extend_from_iter(hp: *mut Handle, dt: DType, src: *mut PyObject, it: *mut PyObject) -> Result<(), Raised> {
    let start = (*hp).data.len;
    // A real len() is trusted: no room for it is a MemoryError at once, as for
    // list(range(2**40)). A length hint only gets a bounded head start, and its failure
    // is ignored (the pushes below report what really happens).
    let size = PyObject_Size(src);
    let (wanted, guessed) = if size >= 0 {
        (size as usize, false)
    } else {
        PyErr_Clear();
        let hint = PyObject_LengthHint(src, 0);
        if hint < 0 {
            PyErr_Clear();
        }
        (hint.max(0) as usize, true)
    };
    // len() and the hint ran Python code: the vector may have been dropped or lent meanwhile.
    check_change(&*hp, "extend")?;
    if wanted > 0 {
        let h = &mut *hp;
        let exported = h.exports > 0;
        match h.data.reserve(dt, if guessed { wanted.min(MAX_GUESSED_RESERVE) } else { wanted }, exported) {
            Err(e) if !guessed => {
                raise_vec(h, e, "extend");
                return Err(Raised);
            }
            _ => {}
        }
    }
    loop {
        let item = PyIter_Next(it);
        if item.is_null() {
            if PyErr_Occurred().is_null() {
                return Ok(());
            }
            truncate_back(hp, start);
            return Err(Raised);
        }
        let r = match from_py(dt, item) {
            Ok(s) => match check_change(&*hp, "extend") {
                Err(r) => Err(r),
                Ok(()) => {
                    let h = &mut *hp;
                    match h.data.push(dt, s, h.exports > 0) {
                        Ok(()) => Ok(()),
                        Err(VecError::Conv(e)) => {
                            raise_conv(dt, e, item);
                            Err(Raised)
                        }
                        Err(e) => {
                            raise_vec(h, e, "extend");
                            Err(Raised)
                        }
                    }
                }
            },
            Err(r) => Err(r),
        };
        Py_DecRef(item);
        if r.is_err() {
            truncate_back(hp, start);
            return r;
        }
    }
}

/// Cuts a failed extend back to `len` (elements are plain values: nothing to drop), unless
/// the items' own Python code dropped, lent or shortened the vector meanwhile.
unsafe fn truncate_back(hp: *mut Handle, len: usize) {
    let h = &mut *hp;
    if h.state == STATE_ALIVE && may_change(h.borrow) && h.data.len > len {
        h.data.len = len;
    }
}

unsafe extern "C" fn m_extend(o: *mut PyObject, src: *mut PyObject) -> *mut PyObject {
    guard("extend", null_mut(), || {
        if check_change(&*(o as *mut Handle), "extend").is_err() {
            return null_mut();
        }
        match extend_from(o as *mut Handle, src) {
            Ok(()) => none(),
            Err(_) => null_mut(),
        }
    })
}

/// `list(v)` in one step.
pub unsafe fn to_list(h: &Handle) -> *mut PyObject {
    let dt = dtype_of(h);
    let l = PyList_New(h.data.len as isize);
    if l.is_null() {
        return l;
    }
    for i in 0..h.data.len {
        let v = to_py(read(dt, h.data.elem_ptr(dt, i)));
        if v.is_null() {
            Py_DecRef(l);
            return null_mut();
        }
        PyList_SetItem(l, i as isize, v);
    }
    l
}

unsafe extern "C" fn m_to_list(o: *mut PyObject, _a: *mut PyObject) -> *mut PyObject {
    guard("to_list", null_mut(), || {
        let h = &*(o as *mut Handle);
        if check_read(h, "read").is_err() {
            return null_mut();
        }
        to_list(h)
    })
}

/// Copies the vector's elements into the writable buffer `out`; returns the count copied.
pub unsafe fn copy_into(h: &Handle, out: *mut PyObject) -> *mut PyObject {
    let dt = dtype_of(h);
    let (mut view, vdt) = match get_buffer(out, true) {
        Some(v) => v,
        None => {
            return raise(
                PyExc_TypeError,
                "copy_to_python() needs a writable, C-contiguous buffer (numpy array, array.array, bytearray...)",
            )
        }
    };
    if vdt != Some(dt) {
        let fmt = if view.format.is_null() {
            "B".to_string()
        } else {
            String::from_utf8_lossy(std::ffi::CStr::from_ptr(view.format).to_bytes()).into_owned()
        };
        PyBuffer_Release(&mut view);
        return raise(
            PyExc_TypeError,
            &format!("copy_to_python(): {} needs a buffer of {} items, got format {:?}", label(h), dt.name(), fmt),
        );
    }
    // `out` may be a view of this very vector: copy_to copies as memmove does.
    let n = h.data.copy_to(dt, view.buf as *mut u8, view.len as usize / dt.size());
    PyBuffer_Release(&mut view);
    PyLong_FromSize_t(n)
}

unsafe extern "C" fn m_copy_into(o: *mut PyObject, out: *mut PyObject) -> *mut PyObject {
    guard("copy_to_python", null_mut(), || {
        let h = &*(o as *mut Handle);
        if check_read(h, "copy").is_err() {
            return null_mut();
        }
        copy_into(h, out)
    })
}

// -- sequence and buffer slots of RustVec ---------------------------------------------

unsafe extern "C" fn sq_length(o: *mut PyObject) -> isize {
    let h = &*(o as *mut Handle);
    if check_read(h, "read").is_err() {
        return -1;
    }
    h.data.len as isize
}

unsafe extern "C" fn sq_item(o: *mut PyObject, i: isize) -> *mut PyObject {
    let h = &*(o as *mut Handle);
    if h.state != STATE_ALIVE || !may_read(h.borrow) {
        check_read(h, "read").ok();
        return null_mut();
    }
    // The interpreter already added len() to a negative index: one still negative is out of range.
    match usize::try_from(i).map_err(|_| VecError::Index).and_then(|j| h.data.get(dtype_of(h), j)) {
        Ok(s) => to_py(s),
        Err(e) => raise_vec(h, e, ""),
    }
}

unsafe extern "C" fn sq_ass_item(o: *mut PyObject, i: isize, v: *mut PyObject) -> c_int {
    guard("__setitem__", -1, || {
        let h = &mut *(o as *mut Handle);
        if check_change(h, "assign to").is_err() {
            return -1;
        }
        if v.is_null() {
            raise(PyExc_TypeError, &format!("{} does not support item deletion; use pop()", label(h)));
            return -1;
        }
        let dt = dtype_of(h);
        let j = match usize::try_from(i) {
            Ok(j) if j < h.data.len => j,
            _ => {
                raise_vec(h, VecError::Index, "");
                return -1;
            }
        };
        let s = match from_py(dt, v) {
            Ok(s) => s,
            Err(_) => return -1,
        };
        // The conversion ran Python code that may have dropped, lent or shortened the vector
        // (`set` checks the index again).
        let h = &mut *(o as *mut Handle);
        if check_change(h, "assign to").is_err() {
            return -1;
        }
        match h.data.set(dt, j, s) {
            Ok(()) => 0,
            Err(VecError::Conv(e)) => {
                raise_conv(dt, e, v);
                -1
            }
            Err(e) => {
                raise_vec(h, e, "");
                -1
            }
        }
    })
}

unsafe extern "C" fn bf_getbuffer(o: *mut PyObject, view: *mut Py_buffer, flags: c_int) -> c_int {
    guard("getbuffer", -1, || {
        let h = &mut *(o as *mut Handle);
        // A view outlives any check: none while a running call may free or reallocate the vector
        // (`&mut`, a move). While calls only share it (`&Vec<T>`, as Rust lets `&` borrows
        // coexist), a read-only view is fine: nothing can reallocate it under the view.
        let shared = h.borrow != 0 && may_read(h.borrow) && flags & PyBUF_WRITABLE == 0;
        let allowed = if shared {
            check_read(h, "export a buffer view of")
        } else {
            check_change(h, "export a buffer view of")
        };
        if allowed.is_err() {
            (*view).obj = null_mut();
            return -1;
        }
        let dt = dtype_of(h);
        // Bool views are read-only: Python could store bytes other than 0/1, which Rust must never
        // read as a bool. (Reading views, e.g. np.asarray(v), work; writes go through v[i] = x.)
        let readonly = dt == DType::Bool || shared;
        if readonly && flags & PyBUF_WRITABLE != 0 {
            raise(
                PyExc_BufferError,
                &format!(
                    "{} exports read-only buffer views (a view could store bytes that are not valid bools); \
                     assign through v[i] = True instead",
                    label(h)
                ),
            );
            (*view).obj = null_mut();
            return -1;
        }
        // shape and strides must outlive the view and not follow later pushes or reshapes: one
        // small block per view, [shape..., strides...] (C order).
        let shape = if flags & PyBUF_ND == PyBUF_ND { shape_of(h) } else { vec![h.data.len] };
        let ndim = shape.len();
        let mut dims: Vec<isize> = Vec::with_capacity(2 * ndim);
        dims.extend(shape.iter().map(|n| *n as isize));
        dims.resize(2 * ndim, 0);
        let mut stride = dt.size() as isize;
        for k in (0..ndim).rev() {
            dims[ndim + k] = stride;
            stride *= dims[k];
        }
        // C order only: a Fortran-order request is refused unless the orders coincide.
        let long_axes = shape.iter().filter(|n| **n > 1).count();
        if flags & PyBUF_F_CONTIGUOUS == PyBUF_F_CONTIGUOUS && long_axes > 1 {
            raise(PyExc_BufferError, &format!("{} is C-contiguous, not Fortran-contiguous", label(h)));
            (*view).obj = null_mut();
            return -1;
        }
        let dims = Box::into_raw(Box::new(dims));
        let v = &mut *view;
        v.buf = h.data.ptr as *mut c_void;
        v.obj = incref(o);
        v.len = (h.data.len * dt.size()) as isize;
        v.itemsize = dt.size() as isize;
        v.readonly = readonly as c_int;
        v.ndim = ndim as c_int;
        v.format = if flags & PyBUF_FORMAT != 0 { dt.format().as_ptr() as *mut c_char } else { null_mut() };
        let base = (*dims).as_mut_ptr();
        v.shape = if flags & PyBUF_ND == PyBUF_ND { base } else { null_mut() };
        v.strides = if flags & PyBUF_STRIDES == PyBUF_STRIDES { base.add(ndim) } else { null_mut() };
        v.suboffsets = null_mut();
        v.internal = dims as *mut c_void;
        h.exports += 1;
        0
    })
}

unsafe extern "C" fn bf_releasebuffer(o: *mut PyObject, view: *mut Py_buffer) {
    let h = &mut *(o as *mut Handle);
    h.exports -= 1;
    let dims = (*view).internal as *mut Vec<isize>;
    if !dims.is_null() {
        drop(Box::from_raw(dims));
        (*view).internal = null_mut();
    }
}

// -- constructors ------------------------------------------------------------------------

/// Parses a dtype argument: a Rust type name, or None (then `infer` decides).
unsafe fn parse_dtype(o: *mut PyObject) -> Result<Option<DType>, Raised> {
    if o.is_null() || o == addr_of_mut!(_Py_NoneStruct) {
        return Ok(None);
    }
    match str_bytes(o) {
        Some(b) => match DType::parse(b) {
            Some(d) => Ok(Some(d)),
            None => {
                raise(
                    PyExc_ValueError,
                    &format!(
                        "unknown dtype {:?}; expected one of i8, i16, i32, i64, u8, u16, u32, u64, f32, f64, bool",
                        String::from_utf8_lossy(b)
                    ),
                );
                Err(Raised)
            }
        },
        None => {
            raise(PyExc_TypeError, "dtype must be a str such as 'i32' or 'f64'");
            Err(Raised)
        }
    }
}

/// The dtype Python's own scalar types map to when none is given.
unsafe fn infer_scalar_dtype(v: *mut PyObject) -> Option<DType> {
    let t = (*v).ob_type;
    if t == addr_of_mut!(PyBool_Type) {
        Some(DType::Bool)
    } else if t == addr_of_mut!(PyLong_Type) {
        Some(DType::I64)
    } else if t == addr_of_mut!(PyFloat_Type) {
        Some(DType::F64)
    } else {
        None
    }
}

/// (first argument or NULL, dtype argument or NULL) of `Type(value, dtype=None)`, from a
/// vectorcall (positional `args`, keyword names `kwnames`).
unsafe fn two_args(
    name: &str,
    args: *const *mut PyObject,
    nargs: usize,
    kwnames: *mut PyObject,
) -> Result<(*mut PyObject, *mut PyObject), Raised> {
    let nkw = if kwnames.is_null() { 0 } else { PyTuple_Size(kwnames) as usize };
    let mut value = if nargs >= 1 { *args } else { null_mut() };
    let mut dtype = if nargs >= 2 { *args.add(1) } else { null_mut() };
    let mut bad = nargs > 2;
    for k in 0..nkw {
        let key = str_bytes(PyTuple_GetItem(kwnames, k as isize)).unwrap_or(b"");
        let slot = match key {
            b"dtype" => &mut dtype,
            b"value" | b"items" if nargs == 0 => &mut value,
            _ => {
                bad = true;
                continue;
            }
        };
        if !slot.is_null() {
            bad = true;
        }
        *slot = *args.add(nargs + k);
    }
    if bad || value.is_null() {
        raise(PyExc_TypeError, &format!("{name}() takes a value and an optional dtype, e.g. {name}(42, 'i32')"));
        return Err(Raised);
    }
    Ok((value, dtype))
}

/// Arguments of a `tp_new` call as a vectorcall (the slow path: subclass-style calls).
unsafe fn tuple_args(args: *mut PyObject, kw: *mut PyObject) -> (Vec<*mut PyObject>, *mut PyObject, Vec<*mut PyObject>) {
    let n = PyTuple_Size(args).max(0) as usize;
    let mut all: Vec<*mut PyObject> = (0..n).map(|i| PyTuple_GetItem(args, i as isize)).collect();
    let mut names = Vec::new();
    let mut kwnames = null_mut();
    if !kw.is_null() && PyDict_Size(kw) > 0 {
        let items = PyDict_Items(kw);
        let m = PyList_Size(items);
        kwnames = PyTuple_New(m);
        for i in 0..m {
            let pair = PyList_GetItem(items, i);
            let k = PyTuple_GetItem(pair, 0);
            PyTuple_SetItem(kwnames, i, incref(k));
            all.push(PyTuple_GetItem(pair, 1));
        }
        names.push(items);
    }
    (all, kwnames, names)
}

unsafe fn scalar_new(kind: u8, args: *const *mut PyObject, nargs: usize, kwnames: *mut PyObject) -> *mut PyObject {
    let name = TYPE_NAMES[kind as usize];
    let (v, d) = match two_args(name, args, nargs, kwnames) {
        Ok(x) => x,
        Err(_) => return null_mut(),
    };
    let dt = match parse_dtype(d) {
        Ok(Some(dt)) => dt,
        Ok(None) => match infer_scalar_dtype(v) {
            Some(dt) => dt,
            None => return raise(PyExc_TypeError, &format!("{name}() needs a dtype for a value of this type")),
        },
        Err(_) => return null_mut(),
    };
    let s = match from_py(dt, v) {
        Ok(s) => s,
        Err(_) => return null_mut(),
    };
    let p = match kind {
        KIND_BOX => boxed::alloc(dt, s),
        KIND_RC => rc::alloc(dt, s),
        _ => arc::alloc(dt, s),
    };
    let p = match p {
        Ok(p) => p,
        Err(e) => {
            raise_conv(dt, e, v);
            return null_mut();
        }
    };
    let data = RawVec { ptr: p, len: 0, cap: 0 };
    let owner = if kind == KIND_RC { rc::thread_token() } else { 0 };
    let r = new_handle(kind, dt, data, owner);
    if r.is_null() {
        let mut tmp = Handle {
            ob: PyObject { ob_refcnt: 1, ob_type: null_mut() },
            kind,
            dtype: dt as u8,
            state: 0,
            borrow: 0,
            slot: 0,
            id: 0,
            exports: 0,
            owner,
            data,
            shape: null_mut(),
        };
        free_payload(&mut tmp);
    }
    r
}

const VECTORCALL_NARGS: usize = !(1usize << 63);

/// Calls `f` with the tuple/dict arguments of `tp_new` turned into a vectorcall.
unsafe fn via_tuple(
    args: *mut PyObject,
    kw: *mut PyObject,
    f: unsafe fn(*const *mut PyObject, usize, *mut PyObject) -> *mut PyObject,
) -> *mut PyObject {
    let (all, kwnames, keep) = tuple_args(args, kw);
    let nk = if kwnames.is_null() { 0 } else { PyTuple_Size(kwnames) as usize };
    let r = f(all.as_ptr(), all.len() - nk, kwnames);
    if !kwnames.is_null() {
        Py_DecRef(kwnames);
    }
    for o in keep {
        Py_DecRef(o);
    }
    r
}

macro_rules! constructors {
    ($($new:ident, $vc:ident, $body:ident, $kind:expr, $name:expr);*) => {$(
        unsafe fn $body(a: *const *mut PyObject, n: usize, kwnames: *mut PyObject) -> *mut PyObject {
            guard($name, null_mut(), || ctor($kind, a, n, kwnames))
        }
        unsafe extern "C" fn $new(_t: *mut PyObject, args: *mut PyObject, kw: *mut PyObject) -> *mut PyObject {
            via_tuple(args, kw, $body)
        }
        unsafe extern "C" fn $vc(_t: *mut PyObject, a: *const *mut PyObject, nargsf: usize, kwnames: *mut PyObject) -> *mut PyObject {
            $body(a, nargsf & VECTORCALL_NARGS, kwnames)
        }
    )*};
}

unsafe fn ctor(kind: u8, a: *const *mut PyObject, n: usize, kwnames: *mut PyObject) -> *mut PyObject {
    if kind != KIND_VEC {
        return scalar_new(kind, a, n, kwnames);
    }
    match two_args("RustVec", a, n, kwnames) {
        Ok((src, d)) => vec_from(src, d),
        Err(_) => null_mut(),
    }
}

constructors!(box_new, box_vc, box_body, KIND_BOX, "RustBox"; rc_new, rc_vc, rc_body, KIND_RC, "RustRc";
              arc_new, arc_vc, arc_body, KIND_ARC, "RustArc"; vec_new, vec_vc, vec_body, KIND_VEC, "RustVec");

type VectorcallFn = unsafe extern "C" fn(*mut PyObject, *const *mut PyObject, usize, *mut PyObject) -> *mut PyObject;

/// Byte offsets in PyTypeObject (3.10-3.13, 64-bit): tp_dealloc, tp_new, tp_vectorcall.
const OFF_DEALLOC: usize = 48;
const OFF_NEW: usize = 312;
const OFF_VECTORCALL: usize = 400;

/// Lets `RustBox(...)` skip the argument tuple and `tp_init` (as builtin classes do), when the
/// type object has the expected layout; otherwise calls keep going through `tp_new`.
unsafe fn set_vectorcall(t: *mut PyObject, newf: *mut c_void, vc: VectorcallFn) {
    let base = t as *mut u8;
    let at = |off: usize| *(base.add(off) as *const *mut c_void);
    if at(OFF_DEALLOC) == dealloc as *mut c_void && at(OFF_NEW) == newf && at(OFF_VECTORCALL).is_null() {
        *(base.add(OFF_VECTORCALL) as *mut *mut c_void) = vc as *mut c_void;
    }
}

/// A new RustVec holding the items of `src` (buffer: one copy; else any iterable).
pub unsafe fn vec_from(src: *mut PyObject, d: *mut PyObject) -> *mut PyObject {
    // A RustVec source is copied: it must be readable (not dropped, moved or lent), and gives its dtype.
    let source = if src.is_null() { None } else { as_kind(src, KIND_VEC) };
    if let Some(h) = &source {
        if check_read(h, "copy").is_err() {
            return null_mut();
        }
    }
    let dt = match parse_dtype(d) {
        Ok(Some(dt)) => dt,
        Ok(None) if source.is_some() => dtype_of(source.as_ref().expect("checked")),
        Ok(None) => match get_buffer(src, false) {
            Some((mut view, vdt)) => {
                PyBuffer_Release(&mut view);
                match vdt {
                    Some(dt) => dt,
                    None => return raise(PyExc_TypeError, "RustVec: this buffer's item type has no Rust dtype"),
                }
            }
            None => {
                return raise(
                    PyExc_TypeError,
                    "RustVec needs a dtype unless built from a typed buffer, e.g. RustVec([1, 2], 'i32')",
                )
            }
        },
        Err(_) => return null_mut(),
    };
    let o = new_handle(KIND_VEC, dt, RawVec::empty(dt), 0);
    if o.is_null() {
        return o;
    }
    if !src.is_null() && extend_from(o as *mut Handle, src).is_err() {
        Py_DecRef(o);
        return null_mut();
    }
    o
}

// -- type objects -------------------------------------------------------------------------

macro_rules! cstr {
    ($s:expr) => {
        concat!($s, "\0").as_ptr() as *const c_char
    };
}

macro_rules! meth {
    ($name:expr, $f:expr, $flags:expr, $doc:expr) => {
        PyMethodDef { ml_name: cstr!($name), ml_meth: $f as *const c_void, ml_flags: $flags, ml_doc: cstr!($doc) }
    };
}

const METH_END: PyMethodDef =
    PyMethodDef { ml_name: std::ptr::null(), ml_meth: std::ptr::null(), ml_flags: 0, ml_doc: std::ptr::null() };

macro_rules! getset {
    ($name:expr, $get:expr, $set:expr, $doc:expr) => {
        PyGetSetDef { name: cstr!($name), get: Some($get), set: $set, doc: cstr!($doc), closure: null_mut() }
    };
}

const GETSET_END: PyGetSetDef =
    PyGetSetDef { name: std::ptr::null(), get: None, set: None, doc: std::ptr::null(), closure: null_mut() };

type GetFn = unsafe extern "C" fn(*mut PyObject, *mut c_void) -> *mut PyObject;
type SetFn = unsafe extern "C" fn(*mut PyObject, *mut PyObject, *mut c_void) -> c_int;
type FastFn = unsafe extern "C" fn(*mut PyObject, *const *mut PyObject, isize) -> *mut PyObject;
type ObjFn = unsafe extern "C" fn(*mut PyObject, *mut PyObject) -> *mut PyObject;

static mut SCALAR_METHODS: [PyMethodDef; 5] = [
    meth!("drop", m_drop as ObjFn, METH_NOARGS, "drop()\n--\n\nFree the value now (idempotent). Later use raises RustHandleError."),
    meth!("clone", m_clone as ObjFn, METH_NOARGS, "clone()\n--\n\nRust's clone(): a new handle (Box: a copy; Rc/Arc: one more strong reference)."),
    meth!("__enter__", m_enter as ObjFn, METH_NOARGS, ""),
    meth!("__exit__", m_exit as FastFn, METH_FASTCALL, ""),
    METH_END,
];

static mut VEC_METHODS: [PyMethodDef; 11] = [
    meth!("drop", m_drop as ObjFn, METH_NOARGS, "drop()\n--\n\nFree the vector now (idempotent). Raises BufferError while views exist."),
    meth!("clone", m_clone as ObjFn, METH_NOARGS, "clone()\n--\n\nA deep copy (Vec::clone)."),
    meth!("push", m_push as ObjFn, METH_O, "push(value)\n--\n\nAppend one element (range-checked). Raises BufferError if it would reallocate while views exist."),
    meth!("pop", m_pop as ObjFn, METH_NOARGS, "pop()\n--\n\nRemove and return the last element. Raises IndexError when empty."),
    meth!("extend", m_extend as ObjFn, METH_O, "extend(items)\n--\n\nAppend every item of an iterable or buffer (v.extend(v) appends a copy of v)."),
    meth!("to_list", m_to_list as ObjFn, METH_NOARGS, "to_list()\n--\n\nThe elements as a Python list."),
    meth!("copy_to_python", m_copy_into as ObjFn, METH_O, "copy_to_python(out)\n--\n\nCopy elements into a writable buffer of the same item type; returns the count copied (bounded by out)."),
    meth!("__enter__", m_enter as ObjFn, METH_NOARGS, ""),
    meth!("__exit__", m_exit as FastFn, METH_FASTCALL, ""),
    meth!("__reduce__", m_reduce as ObjFn, METH_NOARGS, ""),
    METH_END,
];

unsafe extern "C" fn m_reduce(o: *mut PyObject, _a: *mut PyObject) -> *mut PyObject {
    raise(PyExc_TypeError, &format!("{} cannot be pickled: it owns Rust memory", label(&*(o as *mut Handle))))
}

static mut BOX_GETSET: [PyGetSetDef; 6] = [
    getset!("value", get_value as GetFn, Some(set_value as SetFn), "The boxed value (read and write)."),
    getset!("dropped", get_dropped as GetFn, None, "True once dropped, moved or collected."),
    getset!("state", get_state as GetFn, None, "'alive', 'dropped' or 'moved'."),
    getset!("dtype", get_dtype as GetFn, None, "The Rust element type, e.g. 'i32'."),
    getset!("id", get_id as GetFn, None, "The handle's id in live_handles()."),
    GETSET_END,
];

static mut SHARED_GETSET: [PyGetSetDef; 7] = [
    getset!("value", get_value as GetFn, Some(set_value as SetFn), "The shared value; assignment only when strong_count == 1 (get_mut)."),
    getset!("strong_count", get_strong_count as GetFn, None, "Strong references to the value (Rc::strong_count)."),
    getset!("dropped", get_dropped as GetFn, None, "True once dropped, moved or collected."),
    getset!("state", get_state as GetFn, None, "'alive', 'dropped' or 'moved'."),
    getset!("dtype", get_dtype as GetFn, None, "The Rust element type, e.g. 'i64'."),
    getset!("id", get_id as GetFn, None, "The handle's id in live_handles()."),
    GETSET_END,
];

static mut VEC_GETSET: [PyGetSetDef; 7] = [
    getset!("capacity", get_capacity as GetFn, None, "Elements the allocation can hold without reallocating."),
    getset!("shape", get_shape as GetFn, Some(set_shape as SetFn), "The shape buffer views export, e.g. (3, 4) for a returned Array; (len,) when unset or when the length changed. Assign a tuple whose product is len(v), or None."),
    getset!("dropped", get_dropped as GetFn, None, "True once dropped, moved or collected."),
    getset!("state", get_state as GetFn, None, "'alive', 'dropped' or 'moved'."),
    getset!("dtype", get_dtype as GetFn, None, "The Rust element type, e.g. 'f64'."),
    getset!("id", get_id as GetFn, None, "The handle's id in live_handles()."),
    GETSET_END,
];

const BOX_DOC: &[u8] = b"RustBox(value, dtype=None)\n--\n\nA Rust Box<T> owned by Python. dtype: i8..i64, u8..u64, f32, f64, bool \
(default from the value: int -> i64, float -> f64, bool -> bool). .value reads and writes it; .drop() frees it.\0";
const RC_DOC: &[u8] = b"RustRc(value, dtype=None)\n--\n\nA Rust Rc<T>: .clone() adds a strong reference, .strong_count counts them. \
Rc is !Send: use from another thread raises RustHandleError.\0";
const ARC_DOC: &[u8] = b"RustArc(value, dtype=None)\n--\n\nA Rust Arc<T>: like RustRc, with atomic counts usable from any thread.\0";
const VEC_DOC: &[u8] = b"RustVec(items, dtype=None)\n--\n\nA Rust Vec<T> owned by Python: len, indexing (negative too), push/pop/extend, \
iteration, and the buffer protocol (np.asarray(v) is a zero-copy view; read-only for bool, whose bytes must stay 0 or 1). \
While a running Rust call borrows it, it cannot be changed, dropped or viewed (RustHandleError).\0";

unsafe fn make_type(name: &[u8], doc: &[u8], slots: &mut Vec<PyType_Slot>) -> *mut PyObject {
    slots.push(PyType_Slot { slot: Py_tp_dealloc, pfunc: dealloc as *mut c_void });
    slots.push(PyType_Slot { slot: Py_tp_repr, pfunc: repr as *mut c_void });
    slots.push(PyType_Slot { slot: Py_tp_doc, pfunc: doc.as_ptr() as *mut c_void });
    slots.push(PyType_Slot { slot: 0, pfunc: null_mut() });
    // The spec and slot array must outlive the type: leak them (four small, one-time allocations).
    let slots = Box::leak(std::mem::take(slots).into_boxed_slice());
    let spec = Box::leak(Box::new(PyType_Spec {
        name: name.as_ptr() as *const c_char,
        basicsize: std::mem::size_of::<Handle>() as c_int,
        itemsize: 0,
        flags: Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
        slots: slots.as_mut_ptr(),
    }));
    PyType_FromSpec(spec)
}

/// Creates the four types; 0 on success.
pub unsafe fn init_types() -> c_int {
    let slot = |s: c_int, p: *mut c_void| PyType_Slot { slot: s, pfunc: p };
    let scalar_methods = addr_of_mut!(SCALAR_METHODS) as *mut c_void;
    let news: [(*mut c_void, VectorcallFn, &[u8], &[u8]); 3] = [
        (box_new as *mut c_void, box_vc, b"rustcall_magic.RustBox\0", BOX_DOC),
        (rc_new as *mut c_void, rc_vc, b"rustcall_magic.RustRc\0", RC_DOC),
        (arc_new as *mut c_void, arc_vc, b"rustcall_magic.RustArc\0", ARC_DOC),
    ];
    for (kind, (newf, vc, name, doc)) in news.iter().enumerate() {
        let getset = if kind == KIND_BOX as usize {
            addr_of_mut!(BOX_GETSET) as *mut c_void
        } else {
            addr_of_mut!(SHARED_GETSET) as *mut c_void
        };
        let mut slots = vec![slot(Py_tp_new, *newf), slot(Py_tp_methods, scalar_methods), slot(Py_tp_getset, getset)];
        let t = make_type(name, doc, &mut slots);
        if t.is_null() {
            return -1;
        }
        set_vectorcall(t, *newf, *vc);
        TYPES[kind] = t;
    }
    let mut slots = vec![
        slot(Py_tp_new, vec_new as *mut c_void),
        slot(Py_tp_methods, addr_of_mut!(VEC_METHODS) as *mut c_void),
        slot(Py_tp_getset, addr_of_mut!(VEC_GETSET) as *mut c_void),
        slot(Py_sq_length, sq_length as *mut c_void),
        slot(Py_sq_item, sq_item as *mut c_void),
        slot(Py_sq_ass_item, sq_ass_item as *mut c_void),
        slot(Py_bf_getbuffer, bf_getbuffer as *mut c_void),
        slot(Py_bf_releasebuffer, bf_releasebuffer as *mut c_void),
    ];
    let t = make_type(b"rustcall_magic.RustVec\0", VEC_DOC, &mut slots);
    if t.is_null() {
        return -1;
    }
    set_vectorcall(t, vec_new as *mut c_void, vec_vc);
    TYPES[KIND_VEC as usize] = t;
    0
}
