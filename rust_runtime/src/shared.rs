//! The operations `RustRc` and `RustArc` share, written once for both pointer
//! types: a handle is one strong reference, kept as `into_raw`.
//!
//! `shared_ptr_ops!(Rc)` / `shared_ptr_ops!(Arc)` define, in the calling module:
//! `alloc`, `clone`, `release`, `strong_count` and `set_unique`.

/// Defines the strong-reference operations of one shared pointer type (`Rc` or `Arc`).
#[macro_export]
macro_rules! shared_ptr_ops {
    ($ptr:ident) => {
        use $crate::dtype::{ConvError, DType, Elem, Scalar};
        use $crate::with_dtype;

        /// Allocates a pointer holding `s` and returns its `into_raw` (strong count 1).
        pub fn alloc(dt: DType, s: Scalar) -> Result<*mut u8, ConvError> {
            with_dtype!(dt, T => Ok($ptr::into_raw($ptr::new(T::from_scalar(s)?)) as *mut u8))
        }

        /// Adds one strong reference (`clone`).
        ///
        /// # Safety
        /// `p` must be a live `into_raw` pointer of dtype `dt`.
        pub unsafe fn clone(dt: DType, p: *const u8) {
            with_dtype!(dt, T => $ptr::increment_strong_count(p as *const T))
        }

        /// Releases one strong reference; returns the strong count left (0: the value was freed).
        ///
        /// # Safety
        /// `p` must be a live `into_raw` pointer of dtype `dt` whose reference the caller owns.
        pub unsafe fn release(dt: DType, p: *const u8) -> usize {
            with_dtype!(dt, T => {
                let rc = $ptr::from_raw(p as *const T);
                let left = $ptr::strong_count(&rc) - 1;
                drop(rc);
                left
            })
        }

        /// The current strong count.
        ///
        /// # Safety
        /// `p` must be a live `into_raw` pointer of dtype `dt`.
        pub unsafe fn strong_count(dt: DType, p: *const u8) -> usize {
            with_dtype!(dt, T => {
                let rc = std::mem::ManuallyDrop::new($ptr::from_raw(p as *const T));
                $ptr::strong_count(&rc)
            })
        }

        /// Assigns through the pointer like `get_mut`: only when this is the only strong
        /// reference. Returns false (and changes nothing) when the value is shared.
        ///
        /// # Safety
        /// `p` must be a live `into_raw` pointer of dtype `dt`.
        pub unsafe fn set_unique(dt: DType, p: *const u8, s: Scalar) -> Result<bool, ConvError> {
            with_dtype!(dt, T => {
                let v = T::from_scalar(s)?;
                let mut rc = std::mem::ManuallyDrop::new($ptr::from_raw(p as *const T));
                match $ptr::get_mut(&mut rc) {
                    Some(slot) => { *slot = v; Ok(true) }
                    None => Ok(false),
                }
            })
        }
    };
}
