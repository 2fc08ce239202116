//! Panics inside the runtime become `RustPanic`, never an abort or stderr noise.
//!
//! Every entry point the interpreter calls runs its body through [`guard`]
//! (`catch_unwind` costs nothing until a panic happens). A quiet hook records
//! the panic location; the Python helper `errors._raise_panic` builds the
//! exception.

use crate::pyffi::*;
use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};

std::thread_local! {
    static LOCATION: RefCell<Option<(String, u32, u32)>> = const { RefCell::new(None) };
}

static mut RAISE_PANIC: *mut PyObject = std::ptr::null_mut();

/// Installs the quiet hook and remembers the Python helper; 0 on success.
pub unsafe fn init(errors_module: *mut PyObject) -> i32 {
    RAISE_PANIC = PyObject_GetAttrString(errors_module, b"_raise_panic\0".as_ptr() as *const _);
    if RAISE_PANIC.is_null() {
        return -1;
    }
    std::panic::set_hook(Box::new(|info: &std::panic::PanicHookInfo| {
        let loc = info.location().map(|l| (l.file().to_string(), l.line(), l.column()));
        LOCATION.with(|c| *c.borrow_mut() = loc);
    }));
    0
}

/// Runs `f`; a panic raises RustPanic naming `what` and returns `err`.
#[inline(always)]
pub fn guard<R>(what: &str, err: R, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            unsafe { raise_panic(what, payload) };
            err
        }
    }
}

unsafe fn raise_panic(what: &str, payload: Box<dyn std::any::Any + Send>) {
    let msg: String = if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_string()
    };
    let loc = LOCATION.with(|c| c.borrow_mut().take());
    let (file, line, col) = match loc {
        Some((f, l, c)) => (py_str(&f), l, c),
        None => (none(), 0, 0),
    };
    let fname = py_str(what);
    let pmsg = py_str(&msg);
    let pl = PyLong_FromLongLong(line as i64);
    let pc = PyLong_FromLongLong(col as i64);
    if RAISE_PANIC.is_null() {
        raise(PyExc_RuntimeError, &format!("Rust panic in {what}: {msg}"));
    } else {
        let r = PyObject_CallFunctionObjArgs(RAISE_PANIC, fname, pmsg, file, pl, pc, std::ptr::null_mut::<PyObject>());
        if !r.is_null() {
            Py_DecRef(r);
        }
    }
    for a in [fname, pmsg, file, pl, pc] {
        Py_DecRef(a);
    }
}
