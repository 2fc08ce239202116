
// ---------------------------------------------------------------------------
// Ctrl-C inside long calls (glue/interrupt.rs, appended to the prelude):
// `rustcall::check_interrupt()`.
//
// The pending flag is process-wide, in the ownership runtime (each cell has
// its own copy of this glue): a cell that calls `check_interrupt` fetches the
// runtime's capsule `_rustcall_runtime._INTERRUPT` at module init and keeps
// the pointer. A C-level SIGINT handler (rust_runtime/src/interrupt.rs) sets
// the flag with or without the GIL; `check_interrupt` then unwinds with an
// [`Interrupted`] payload (destructors run), which the wrapper's
// `catch_unwind` turns into KeyboardInterrupt.

pub mod __rc_interrupt_ffi {
    use super::PyObject;
    use ::std::os::raw::c_int;
    unsafe extern "C" {
        pub fn PyErr_CheckSignals() -> c_int;
        pub fn PyErr_SetNone(t: *mut PyObject);
        pub fn PyErr_Occurred() -> *mut PyObject;
        pub static mut PyExc_KeyboardInterrupt: *mut PyObject;
    }
}

/// The runtime's interrupt state (rust_runtime/src/interrupt.rs, version 1).
#[repr(C)]
pub struct InterruptState {
    pub version: u32,
    pub pending: ::std::sync::atomic::AtomicU32,
    pub active: ::std::sync::atomic::AtomicUsize,
}

pub const INTERRUPT_VERSION: u32 = 1;

/// This cell's pointer to the process-wide state (null until the cell's init fetched it).
pub static INTERRUPT_STATE: ::std::sync::atomic::AtomicPtr<InterruptState> =
    ::std::sync::atomic::AtomicPtr::new(::std::ptr::null_mut());

/// The panic payload of an interrupted call.
pub struct Interrupted;

/// Returns at once unless Ctrl-C (SIGINT) arrived during the current call; then unwinds out
/// of the call (running destructors) and the caller gets KeyboardInterrupt. Call it every
/// so often in a long loop: it costs a load and a branch.
#[inline(always)]
pub fn check_interrupt() {
    if interrupt_pending() {
        interrupted();
    }
}

/// True once Ctrl-C (SIGINT) arrived during the current call: for a loop that stops by
/// itself (returning a partial result) instead of unwinding.
#[inline(always)]
pub fn interrupt_pending() -> bool {
    let p = INTERRUPT_STATE.load(::std::sync::atomic::Ordering::Relaxed);
    !p.is_null() && unsafe { (*p).pending.load(::std::sync::atomic::Ordering::Relaxed) } != 0
}

#[cold]
#[inline(never)]
pub fn interrupted() -> ! {
    // resume_unwind does not run the panic hook: nothing is printed or recorded.
    ::std::panic::resume_unwind(Box::new(Interrupted))
}

/// A call into a cell that checks for interrupts: the first call to start (none other
/// running) clears a flag left by a signal Python has handled already.
pub struct InterruptScope(*const InterruptState);

impl InterruptScope {
    #[inline(always)]
    pub fn enter() -> Self {
        let p = INTERRUPT_STATE.load(::std::sync::atomic::Ordering::Relaxed) as *const InterruptState;
        if !p.is_null() {
            unsafe {
                if (*p).active.fetch_add(1, ::std::sync::atomic::Ordering::SeqCst) == 0 {
                    (*p).pending.store(0, ::std::sync::atomic::Ordering::SeqCst);
                }
            }
        }
        InterruptScope(p)
    }
}

impl Drop for InterruptScope {
    #[inline(always)]
    fn drop(&mut self) {
        if !self.0.is_null() {
            unsafe { (*self.0).active.fetch_sub(1, ::std::sync::atomic::Ordering::SeqCst) };
        }
    }
}

/// Fetches the process-wide state (loading the runtime and chaining its SIGINT handler); 0 on success.
pub unsafe fn init_interrupt() -> c_int {
    if !INTERRUPT_STATE.load(::std::sync::atomic::Ordering::Relaxed).is_null() {
        return 0;
    }
    let m = PyImport_ImportModule(b"rustcall_magic.runtime\0".as_ptr() as *const c_char);
    if m.is_null() {
        return -1;
    }
    let f = PyObject_GetAttrString(m, b"_interrupt_capsule\0".as_ptr() as *const c_char);
    Py_DecRef(m);
    if f.is_null() {
        return -1;
    }
    let cap = PyObject_CallFunctionObjArgs(f, ::std::ptr::null_mut::<PyObject>());
    Py_DecRef(f);
    if cap.is_null() {
        return -1;
    }
    let p = __rc_handle_ffi::PyCapsule_GetPointer(cap, b"_rustcall_runtime._INTERRUPT\0".as_ptr() as *const c_char)
        as *mut InterruptState;
    Py_DecRef(cap); // the runtime module holds the capsule and is never unloaded
    if p.is_null() {
        return -1;
    }
    if (*p).version != INTERRUPT_VERSION {
        rt_raise(
            __rc_handle_ffi::PyExc_RuntimeError,
            "rustcall: the ownership runtime's interrupt state has another version than this cell's glue",
        );
        return -1;
    }
    INTERRUPT_STATE.store(p, ::std::sync::atomic::Ordering::Relaxed);
    0
}

/// Raises what an interrupted call raises: the exception of Python's own SIGINT handler when it
/// runs here (the main thread: usually KeyboardInterrupt), else KeyboardInterrupt. Returns NULL.
#[cold]
#[inline(never)]
pub unsafe fn raise_interrupted() -> *mut PyObject {
    if __rc_interrupt_ffi::PyErr_CheckSignals() == 0 || __rc_interrupt_ffi::PyErr_Occurred().is_null() {
        __rc_interrupt_ffi::PyErr_SetNone(__rc_interrupt_ffi::PyExc_KeyboardInterrupt);
    }
    ::std::ptr::null_mut()
}
