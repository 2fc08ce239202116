//! `Rc<T>` storage behind `RustRc` handles: every handle is one strong reference.
//!
//! `Rc` is `!Send`: a handle records the thread that created the allocation
//! and every use from another thread is refused ([`thread_token`]). The
//! counts themselves are plain (non-atomic); all handle operations run with
//! the interpreter lock held, so they never race.

use std::rc::Rc;

std::thread_local! {
    static TOKEN: u8 = const { 0 };
}

/// A cheap identifier of the current thread (the address of a thread-local).
#[inline(always)]
pub fn thread_token() -> usize {
    TOKEN.with(|t| t as *const u8 as usize)
}

crate::shared_ptr_ops!(Rc);

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
