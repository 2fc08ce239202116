//! `Rc<T>` storage behind `RustRc` handles: every handle is one strong reference.
//!
//! `Rc` is `!Send`: a handle records the thread that created the allocation
//! and every use from another thread is refused ([`thread_token`]). The
//! counts themselves are plain (non-atomic); all handle operations run with
//! the interpreter lock held, so they never race.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The next thread token to hand out (0 means "no owner").
static NEXT_TOKEN: AtomicUsize = AtomicUsize::new(1);

std::thread_local! {
    static TOKEN: Cell<usize> = const { Cell::new(0) };
}

/// An identifier of the current thread, never given to another thread of the process.
///
/// Not the address of a thread-local: a thread started after another one ended
/// may get the same address, and would pass for the owner of its `Rc`s.
#[inline(always)]
pub fn thread_token() -> usize {
    TOKEN.with(|t| match t.get() {
        0 => {
            let token = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
            t.set(token);
            token
        }
        token => token,
    })
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
        assert_ne!(here, 0, "0 means no owner");
        let there = std::thread::spawn(thread_token).join().unwrap();
        assert_ne!(here, there);
    }

    #[test]
    fn a_thread_started_after_another_ended_gets_a_new_token() {
        // One after the other, so a thread may reuse the stack and TLS of the one before.
        let mut seen = std::collections::HashSet::new();
        for _ in 0..50 {
            let token = std::thread::spawn(thread_token).join().unwrap();
            assert!(seen.insert(token), "token {token} given to two threads");
        }
    }
}
