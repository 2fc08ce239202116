//! `Arc<T>` storage behind `RustArc` handles: every handle is one strong reference.
//!
//! The counts are atomic, so clones and drops from many threads stay exact;
//! unlike `Rc`, an `Arc` handle may be used from any thread.

use crate::dtype::{ConvError, DType, Elem, Scalar};
use crate::with_dtype;
use std::sync::Arc;

/// Allocates an `Arc<T>` holding `s` and returns `Arc::into_raw` (strong count 1).
pub fn alloc(dt: DType, s: Scalar) -> Result<*mut u8, ConvError> {
    with_dtype!(dt, T => Ok(Arc::into_raw(Arc::new(T::from_scalar(s)?)) as *mut u8))
}

/// Adds one strong reference (`Arc::clone`).
///
/// # Safety
/// `p` must be a live `Arc::into_raw` pointer of dtype `dt`.
pub unsafe fn clone(dt: DType, p: *const u8) {
    with_dtype!(dt, T => Arc::increment_strong_count(p as *const T))
}

/// Releases one strong reference; returns the strong count left (0: the value was freed).
///
/// # Safety
/// `p` must be a live `Arc::into_raw` pointer of dtype `dt` whose reference the caller owns.
pub unsafe fn release(dt: DType, p: *const u8) -> usize {
    with_dtype!(dt, T => {
        let rc = Arc::from_raw(p as *const T);
        let left = Arc::strong_count(&rc) - 1;
        drop(rc);
        left
    })
}

/// The current strong count.
///
/// # Safety
/// `p` must be a live `Arc::into_raw` pointer of dtype `dt`.
pub unsafe fn strong_count(dt: DType, p: *const u8) -> usize {
    with_dtype!(dt, T => {
        let rc = std::mem::ManuallyDrop::new(Arc::from_raw(p as *const T));
        Arc::strong_count(&rc)
    })
}

/// Assigns through the Arc like `Arc::get_mut`: only when this is the only strong reference.
/// Returns false (and changes nothing) when the value is shared.
///
/// # Safety
/// `p` must be a live `Arc::into_raw` pointer of dtype `dt`.
pub unsafe fn set_unique(dt: DType, p: *const u8, s: Scalar) -> Result<bool, ConvError> {
    with_dtype!(dt, T => {
        let v = T::from_scalar(s)?;
        let mut rc = std::mem::ManuallyDrop::new(Arc::from_raw(p as *const T));
        match Arc::get_mut(&mut rc) {
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
    fn clones_from_many_threads_keep_exact_counts() {
        let p = alloc(DType::I64, Scalar::I(7)).unwrap() as usize;
        let threads: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(move || unsafe {
                for _ in 0..1000 {
                    clone(DType::I64, p as *const u8);
                }
                for _ in 0..500 {
                    release(DType::I64, p as *const u8);
                }
            }))
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        unsafe {
            assert_eq!(strong_count(DType::I64, p as *const u8), 1 + 4 * 500);
            for _ in 0..4 * 500 {
                release(DType::I64, p as *const u8);
            }
            assert_eq!(release(DType::I64, p as *const u8), 0);
        }
    }

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

}
