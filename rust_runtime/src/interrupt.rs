//! Ctrl-C for long Rust calls: the process-wide state behind `rustcall::check_interrupt()`.
//!
//! Every `%%rust` cell links its own copy of the glue, so the pending flag
//! lives here (the runtime is loaded once per process) and cells reach it
//! through the capsule `_rustcall_runtime._INTERRUPT`, fetched at module init
//! by cells that call `check_interrupt`.
//!
//! The flag is set by a C-level `SIGINT` handler chained in front of the one
//! installed (Python's own, which trips the interpreter's handler): it works
//! whether or not the thread running Rust holds the GIL, in any thread.
//! `signal.signal()` (IPython and ipykernel call it around every cell)
//! replaces the C-level handler, so [`arm`] is idempotent and cheap to call
//! again: rustcall_magic calls it when a cell that uses the flag loads and
//! before each IPython cell runs.
//!
//! `active` counts the calls in progress into such cells: the first one to
//! start clears a flag left by a signal that arrived while no call was running
//! (Python has handled that one already).

use std::os::raw::{c_int, c_void};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

/// Bumped whenever [`InterruptState`]'s layout changes (the glue checks it).
pub const INTERRUPT_VERSION: u32 = 1;

#[repr(C)]
pub struct InterruptState {
    pub version: u32,
    /// Non-zero after SIGINT, until the next call starts with no other running.
    pub pending: AtomicU32,
    /// Calls in progress into cells that check the flag.
    pub active: AtomicUsize,
}

pub static STATE: InterruptState =
    InterruptState { version: INTERRUPT_VERSION, pending: AtomicU32::new(0), active: AtomicUsize::new(0) };

/// The handler (address and flags) that was installed when this one was chained in front of it.
static PREV_HANDLER: AtomicUsize = AtomicUsize::new(0);
static PREV_FLAGS: AtomicUsize = AtomicUsize::new(0);

#[cfg(target_os = "linux")]
mod sys {
    use std::os::raw::c_int;
    #[repr(C)]
    pub struct SigAction {
        pub handler: usize,
        pub mask: [u64; 16],
        pub flags: c_int,
        pub restorer: usize,
    }
    pub const SA_SIGINFO: c_int = 4;
    pub const SA_ONSTACK: c_int = 0x0800_0000;
    pub const SA_RESTART: c_int = 0x1000_0000;
}

#[cfg(target_os = "macos")]
mod sys {
    use std::os::raw::c_int;
    #[repr(C)]
    pub struct SigAction {
        pub handler: usize,
        pub mask: u32,
        pub flags: c_int,
    }
    pub const SA_SIGINFO: c_int = 0x40;
    pub const SA_ONSTACK: c_int = 0x1;
    pub const SA_RESTART: c_int = 0x2;
}

#[cfg(any(target_os = "linux", target_os = "macos"))]
mod imp {
    use super::sys::*;
    use super::*;

    const SIGINT: c_int = 2;
    /// `SIG_DFL` and `SIG_IGN`: nothing to chain to (and an ignored Ctrl-C must stay ignored).
    const LAST_SPECIAL: usize = 1;

    unsafe extern "C" {
        fn sigaction(sig: c_int, act: *const SigAction, old: *mut SigAction) -> c_int;
    }

    type Plain = unsafe extern "C" fn(c_int);
    type Info = unsafe extern "C" fn(c_int, *mut c_void, *mut c_void);

    unsafe extern "C" fn on_sigint(sig: c_int, info: *mut c_void, ctx: *mut c_void) {
        STATE.pending.store(1, Ordering::SeqCst);
        let prev = PREV_HANDLER.load(Ordering::Acquire);
        if prev > LAST_SPECIAL {
            if PREV_FLAGS.load(Ordering::Acquire) as c_int & SA_SIGINFO != 0 {
                (std::mem::transmute::<usize, Info>(prev))(sig, info, ctx);
            } else {
                (std::mem::transmute::<usize, Plain>(prev))(sig);
            }
        }
    }

    /// 1 when the handler is in place, 0 when SIGINT is ignored or default (left alone), -1 on error.
    pub unsafe fn arm() -> c_int {
        let mut cur: SigAction = std::mem::zeroed();
        if sigaction(SIGINT, std::ptr::null(), &mut cur) != 0 {
            return -1;
        }
        let ours = on_sigint as Info as usize;
        if cur.handler == ours {
            return 1;
        }
        if cur.handler <= LAST_SPECIAL {
            return 0;
        }
        PREV_FLAGS.store(cur.flags as usize, Ordering::Release);
        PREV_HANDLER.store(cur.handler, Ordering::Release);
        let mut new: SigAction = std::mem::zeroed();
        new.handler = ours;
        new.mask = cur.mask;
        new.flags = SA_SIGINFO | (cur.flags & (SA_ONSTACK | SA_RESTART));
        if sigaction(SIGINT, &new, std::ptr::null_mut()) != 0 {
            return -1;
        }
        1
    }

    /// Whether the C-level SIGINT handler is this one now.
    pub unsafe fn armed() -> bool {
        let mut cur: SigAction = std::mem::zeroed();
        sigaction(SIGINT, std::ptr::null(), &mut cur) == 0 && cur.handler == on_sigint as Info as usize
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
mod imp {
    use super::*;
    pub unsafe fn arm() -> c_int {
        0
    }
    pub unsafe fn armed() -> bool {
        false
    }
}

pub use imp::{arm, armed};

/// Clears a flag no running call can see (a signal Python has handled already).
pub fn clear_if_idle() {
    if STATE.active.load(Ordering::SeqCst) == 0 {
        STATE.pending.store(0, Ordering::SeqCst);
    }
}
