//! `Rc<T>` storage behind `RustRc` handles: every handle is one strong reference.
//!
//! `Rc` is `!Send`: a handle records the thread that created the allocation
//! and every use from another thread is refused ([`thread_token`]). The
//! counts themselves are plain (non-atomic); all handle operations run with
//! the interpreter lock held, so they never race.

use crate::dtype::{ConvError, DType, Elem, Scalar};
use crate::with_dtype;
use std::rc::Rc;

std::thread_local! {
    static TOKEN: u8 = const { 0 };
}

/// A cheap identifier of the current thread (the address of a thread-local).
#[inline(always)]
pub fn thread_token() -> usize {
    TOKEN.with(|t| t as *const u8 as usize)
}

/// Allocates an `Rc<T>` holding `s` and returns `Rc::into_raw` (strong count 1).
pub fn alloc(dt: DType, s: Scalar) -> Result<*mut u8, ConvError> {
    with_dtype!(dt, T => Ok(Rc::into_raw(Rc::new(T::from_scalar(s)?)) as *mut u8))
}

/// Adds one strong reference (`Rc::clone`).
///
/// # Safety
/// `p` must be a live `Rc::into_raw` pointer of dtype `dt`.
pub unsafe fn clone(dt: DType, p: *const u8) {
    with_dtype!(dt, T => Rc::increment_strong_count(p as *const T))
}

/// Releases one strong reference; returns the strong count left (0: the value was freed).
///
/// # Safety
/// `p` must be a live `Rc::into_raw` pointer of dtype `dt` whose reference the caller owns.
pub unsafe fn release(dt: DType, p: *const u8) -> usize {
    with_dtype!(dt, T => {
        let rc = Rc::from_raw(p as *const T);
        let left = Rc::strong_count(&rc) - 1;
        drop(rc);
        left
    })
}

/// The current strong count.
///
/// # Safety
/// `p` must be a live `Rc::into_raw` pointer of dtype `dt`.
pub unsafe fn strong_count(dt: DType, p: *const u8) -> usize {
    with_dtype!(dt, T => {
        let rc = std::mem::ManuallyDrop::new(Rc::from_raw(p as *const T));
        Rc::strong_count(&rc)
    })
}

/// Assigns through the Rc like `Rc::get_mut`: only when this is the only strong reference.
/// Returns false (and changes nothing) when the value is shared.
///
/// # Safety
/// `p` must be a live `Rc::into_raw` pointer of dtype `dt`.
pub unsafe fn set_unique(dt: DType, p: *const u8, s: Scalar) -> Result<bool, ConvError> {
    with_dtype!(dt, T => {
        let v = T::from_scalar(s)?;
        let mut rc = std::mem::ManuallyDrop::new(Rc::from_raw(p as *const T));
        match Rc::get_mut(&mut rc) {
            Some(slot) => { *slot = v; Ok(true) }
            None => Ok(false),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::read;

    #[test]
    fn counts_follow_clone_and_release() {
        let p = alloc(DType::F64, Scalar::F(1.5)).unwrap();
        unsafe {
            assert_eq!(strong_count(DType::F64, p), 1);
            clone(DType::F64, p);
            clone(DType::F64, p);
            assert_eq!(strong_count(DType::F64, p), 3);
            assert_eq!(set_unique(DType::F64, p, Scalar::F(2.0)), Ok(false));
            assert_eq!(read(DType::F64, p), Scalar::F(1.5));
            assert_eq!(release(DType::F64, p), 2);
            assert_eq!(release(DType::F64, p), 1);
            assert_eq!(set_unique(DType::F64, p, Scalar::F(2.0)), Ok(true));
            assert_eq!(read(DType::F64, p), Scalar::F(2.0));
            assert_eq!(release(DType::F64, p), 0);
        }
    }

    #[test]
    fn thread_tokens_differ_between_threads() {
        let here = thread_token();
        assert_eq!(here, thread_token());
        let there = std::thread::spawn(thread_token).join().unwrap();
        assert_ne!(here, there);
    }
}
