//! The C-ABI table cell modules use to pass handles into and out of `%%rust` functions.
//!
//! The runtime module exports it as the capsule `_rustcall_runtime._ABI`; a
//! cell that has handle parameters or returns fetches it once at module init.
//! Cells read a handle's payload straight from the shared [`Handle`] layout
//! (checked by `handle_size`) and call back here for everything that touches
//! the registry or raises. Payloads moved out of or into a handle are raw
//! `Box`/`Rc`/`Arc` pointers and `Vec` raw parts: both libraries use the
//! global (system) allocator and the runtime is built by the cell's own
//! toolchain (the cache keys of both include it), so either side may free them.

use crate::dtype::DType;
use crate::handle::{check_usable, label, mark_moved, new_handle, Handle, TYPES};
use crate::pyffi::*;
use crate::registry::{KIND_RC, KIND_VEC};
use crate::vec::RawVec;
use std::os::raw::c_int;

/// Bumped whenever the table or the `Handle` layout changes.
pub const ABI_VERSION: u32 = 2;

/// Borrow kinds for [`RuntimeAbi::check`].
pub const ACCESS_SHARED: u8 = 0;
pub const ACCESS_MUT: u8 = 1;
pub const ACCESS_MOVE: u8 = 2;

#[repr(C)]
pub struct RuntimeAbi {
    pub version: u32,
    pub handle_size: u32,
    /// The type objects of RustBox, RustRc, RustArc, RustVec (kind order).
    pub types: [*mut PyObject; 4],
    /// A new alive handle owning the payload; NULL with an exception set (payload stays with the caller).
    pub new_handle: unsafe extern "C" fn(kind: u8, dtype: u8, ptr: *mut u8, len: usize, cap: usize) -> *mut PyObject,
    /// 0 when the handle may be used with `access` now; else -1 with RustHandleError/BufferError set.
    pub check: unsafe extern "C" fn(h: *mut PyObject, access: u8) -> c_int,
    /// Marks the handle moved: its payload now belongs to the cell function.
    pub mark_moved: unsafe extern "C" fn(h: *mut PyObject),
}

unsafe extern "C" fn abi_new_handle(kind: u8, dtype: u8, ptr: *mut u8, len: usize, cap: usize) -> *mut PyObject {
    let dt = match DType::from_code(dtype) {
        Some(d) if kind <= KIND_VEC => d,
        _ => return raise(PyExc_RuntimeError, "rustcall runtime: bad handle kind or dtype from a cell"),
    };
    let owner = if kind == KIND_RC { crate::rc::thread_token() } else { 0 };
    crate::panic::guard("new_handle", std::ptr::null_mut(), || new_handle(kind, dt, RawVec { ptr, len, cap }, owner))
}

unsafe extern "C" fn abi_check(o: *mut PyObject, access: u8) -> c_int {
    // The `borrow` byte is left to the glue: it explains aliasing between one call's arguments.
    let h = &*(o as *mut Handle);
    if check_usable(h).is_err() {
        return -1;
    }
    if access != ACCESS_SHARED && h.exports > 0 {
        let what = if access == ACCESS_MOVE { "move" } else { "mutably borrow" };
        raise(
            PyExc_BufferError,
            &format!("cannot {} {}: {} buffer view(s) of it exist (release them first)", what, label(h), h.exports),
        );
        return -1;
    }
    0
}

unsafe extern "C" fn abi_mark_moved(o: *mut PyObject) {
    mark_moved(&mut *(o as *mut Handle));
}

static mut TABLE: RuntimeAbi = RuntimeAbi {
    version: ABI_VERSION,
    handle_size: std::mem::size_of::<Handle>() as u32,
    types: [std::ptr::null_mut(); 4],
    new_handle: abi_new_handle,
    check: abi_check,
    mark_moved: abi_mark_moved,
};

/// The capsule holding the table (types filled in).
pub unsafe fn capsule() -> *mut PyObject {
    let t = &mut *std::ptr::addr_of_mut!(TABLE);
    t.types = TYPES;
    PyCapsule_New(t as *mut RuntimeAbi as *mut _, b"_rustcall_runtime._ABI\0".as_ptr() as *const _, std::ptr::null_mut())
}
