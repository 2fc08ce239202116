//! `Arc<T>` storage behind `RustArc` handles: every handle is one strong reference.
//!
//! The counts are atomic, so clones and drops from many threads stay exact;
//! unlike `Rc`, an `Arc` handle may be used from any thread.

use std::sync::Arc;

crate::shared_ptr_ops!(Arc);

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
