//! `Box<T>` storage behind a `RustBox` handle: one heap value owned by one handle.
//!
//! The handle keeps `Box::into_raw`; freeing goes back through `Box::from_raw`
//! in this library (or in a cell built by the same toolchain, when a cell takes
//! the box by value).

use crate::dtype::{ConvError, DType, Elem, Scalar};
use crate::with_dtype;

/// Allocates a `Box<T>` holding `s` (range-checked) and returns its raw pointer.
pub fn alloc(dt: DType, s: Scalar) -> Result<*mut u8, ConvError> {
    with_dtype!(dt, T => Ok(Box::into_raw(Box::new(T::from_scalar(s)?)) as *mut u8))
}

/// Frees a pointer returned by [`alloc`].
///
/// # Safety
/// `p` must come from [`alloc`] (or `Box::into_raw`) with the same dtype, and not be freed yet.
pub unsafe fn free(dt: DType, p: *mut u8) {
    with_dtype!(dt, T => drop(Box::from_raw(p as *mut T)))
}

/// Deep copy (`Box::clone`).
///
/// # Safety
/// `p` must be a live box of dtype `dt`.
pub unsafe fn clone(dt: DType, p: *const u8) -> *mut u8 {
    with_dtype!(dt, T => Box::into_raw(Box::new(*(p as *const T))) as *mut u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::{read, write, ALL};

    #[test]
    fn alloc_read_write_clone_free_every_dtype() {
        for dt in ALL {
            let v = match dt.family() {
                crate::dtype::Family::Int => Scalar::I(7),
                crate::dtype::Family::Float => Scalar::F(0.5),
                crate::dtype::Family::Bool => Scalar::B(true),
            };
            let v = if matches!(dt, DType::U8 | DType::U16 | DType::U32 | DType::U64) {
                match v {
                    Scalar::I(x) => Scalar::U(x as u64),
                    o => o,
                }
            } else {
                v
            };
            let p = alloc(dt, v).unwrap();
            unsafe {
                assert_eq!(read(dt, p), v);
                let c = clone(dt, p);
                let w = match v {
                    Scalar::B(_) => Scalar::B(false),
                    Scalar::F(_) => Scalar::F(2.0),
                    Scalar::U(_) => Scalar::U(9),
                    Scalar::I(_) => Scalar::I(9),
                };
                write(dt, p, w).unwrap();
                assert_eq!(read(dt, c), v, "the clone is a separate box");
                assert_eq!(read(dt, p), w);
                free(dt, c);
                free(dt, p);
            }
        }
    }

    #[test]
    fn alloc_rejects_out_of_range() {
        assert_eq!(alloc(DType::I8, Scalar::I(1000)).err(), Some(ConvError::Overflow));
        assert_eq!(alloc(DType::Bool, Scalar::I(1)).err(), Some(ConvError::Type));
    }
}
