//! `Vec<T>` storage behind a `RustVec` handle, kept as raw parts.
//!
//! The handle stores `(ptr, len, cap)` of a `Vec<T>`; every operation rebuilds
//! the `Vec` without owning it, works on it and stores the parts back. Views
//! exported through the buffer protocol point into the allocation, so an
//! operation that would reallocate while a view exists is refused
//! ([`VecError::Exported`]), as `bytearray` refuses to resize. Every growth is
//! fallible ([`VecError::NoMemory`]): an allocation failure becomes Python's
//! `MemoryError`, never Rust's abort.

use crate::dtype::{read, write, ConvError, DType, Elem, Scalar};
use crate::with_dtype;
use std::mem::ManuallyDrop;

/// The raw parts of a `Vec<T>` (dtype kept by the owner).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawVec {
    pub ptr: *mut u8,
    pub len: usize,
    pub cap: usize,
}

/// Why a vector operation did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VecError {
    /// The element does not fit the dtype.
    Conv(ConvError),
    /// Index out of range.
    Index,
    /// The operation would reallocate while buffer views exist.
    Exported,
    /// `pop` on an empty vector.
    Empty,
    /// The allocation failed, or the size overflows.
    NoMemory,
}

impl From<ConvError> for VecError {
    fn from(e: ConvError) -> Self {
        VecError::Conv(e)
    }
}

impl RawVec {
    /// Takes the parts of `v` (the caller now owns the allocation through this value).
    pub fn from_vec<T>(v: Vec<T>) -> RawVec {
        let mut v = ManuallyDrop::new(v);
        RawVec { ptr: v.as_mut_ptr() as *mut u8, len: v.len(), cap: v.capacity() }
    }

    /// An empty vector of dtype `dt` (no allocation).
    pub fn empty(dt: DType) -> RawVec {
        with_dtype!(dt, T => RawVec::from_vec(Vec::<T>::new()))
    }

    /// An empty vector of dtype `dt` with room for `cap` elements.
    pub fn with_capacity(dt: DType, cap: usize) -> Result<RawVec, VecError> {
        with_dtype!(dt, T => {
            let mut v = Vec::<T>::new();
            v.try_reserve_exact(cap).map_err(|_| VecError::NoMemory)?;
            Ok(RawVec::from_vec(v))
        })
    }

    /// Runs `f` on the `Vec<T>` these parts describe and stores its parts back.
    ///
    /// # Safety
    /// The parts must describe a live `Vec<T>`.
    #[inline]
    pub unsafe fn with<T, R>(&mut self, f: impl FnOnce(&mut Vec<T>) -> R) -> R {
        let mut v = ManuallyDrop::new(Vec::from_raw_parts(self.ptr as *mut T, self.len, self.cap));
        // Store the parts back even if `f` panics (a reallocation may already have happened).
        struct Back<'a, T>(&'a mut RawVec, &'a mut ManuallyDrop<Vec<T>>);
        impl<T> Drop for Back<'_, T> {
            fn drop(&mut self) {
                self.0.ptr = self.1.as_mut_ptr() as *mut u8;
                self.0.len = self.1.len();
                self.0.cap = self.1.capacity();
            }
        }
        let back = Back(self, &mut v);
        f(&mut **back.1)
    }

    /// Frees the allocation.
    ///
    /// # Safety
    /// The parts must describe a live `Vec` of dtype `dt`; they are dangling afterwards.
    pub unsafe fn free(self, dt: DType) {
        with_dtype!(dt, T => drop(Vec::from_raw_parts(self.ptr as *mut T, self.len, self.cap)))
    }

    /// Pointer to element `i` (unchecked).
    #[inline(always)]
    pub fn elem_ptr(&self, dt: DType, i: usize) -> *mut u8 {
        self.ptr.wrapping_add(i * dt.size())
    }

    /// Reads element `i`.
    ///
    /// # Safety
    /// The parts must describe a live `Vec` of dtype `dt`.
    #[inline]
    pub unsafe fn get(&self, dt: DType, i: usize) -> Result<Scalar, VecError> {
        if i >= self.len {
            return Err(VecError::Index);
        }
        Ok(read(dt, self.elem_ptr(dt, i)))
    }

    /// Writes element `i` (range-checked).
    ///
    /// # Safety
    /// The parts must describe a live `Vec` of dtype `dt`.
    #[inline]
    pub unsafe fn set(&mut self, dt: DType, i: usize, s: Scalar) -> Result<(), VecError> {
        if i >= self.len {
            return Err(VecError::Index);
        }
        Ok(write(dt, self.elem_ptr(dt, i), s)?)
    }

    /// Appends one element; refused when it would reallocate while `exported`.
    ///
    /// # Safety
    /// The parts must describe a live `Vec` of dtype `dt`.
    #[inline]
    pub unsafe fn push(&mut self, dt: DType, s: Scalar, exported: bool) -> Result<(), VecError> {
        if self.len == self.cap {
            self.reserve(dt, 1, exported)?;
        }
        with_dtype!(dt, T => {
            let v = T::from_scalar(s)?;
            self.with::<T, _>(|vec| vec.push(v));
            Ok(())
        })
    }

    /// Removes and returns the last element.
    ///
    /// # Safety
    /// The parts must describe a live `Vec` of dtype `dt`.
    pub unsafe fn pop(&mut self, dt: DType) -> Result<Scalar, VecError> {
        with_dtype!(dt, T => self.with::<T, _>(|vec| vec.pop()).map(Elem::to_scalar).ok_or(VecError::Empty))
    }

    /// Makes room for `extra` more elements; refused when that reallocates while `exported`.
    ///
    /// # Safety
    /// The parts must describe a live `Vec` of dtype `dt`.
    pub unsafe fn reserve(&mut self, dt: DType, extra: usize, exported: bool) -> Result<(), VecError> {
        if self.cap - self.len >= extra {
            return Ok(());
        }
        if exported {
            return Err(VecError::Exported);
        }
        with_dtype!(dt, T => self.with::<T, _>(|vec| vec.try_reserve(extra))).map_err(|_| VecError::NoMemory)
    }

    /// Appends `n` raw elements copied from `src` (same dtype, already valid values).
    ///
    /// # Safety
    /// `src` must hold `n` valid elements of dtype `dt`, not overlapping this vector's spare capacity.
    pub unsafe fn extend_raw(&mut self, dt: DType, src: *const u8, n: usize, exported: bool) -> Result<(), VecError> {
        self.reserve(dt, n, exported)?;
        std::ptr::copy_nonoverlapping(src, self.elem_ptr(dt, self.len), n * dt.size());
        self.len += n;
        Ok(())
    }

    /// Appends a copy of the vector's own elements (`v.extend_from_within(..)`); refused when
    /// that reallocates while `exported`.
    ///
    /// # Safety
    /// The parts must describe a live `Vec` of dtype `dt`.
    pub unsafe fn extend_self(&mut self, dt: DType, exported: bool) -> Result<(), VecError> {
        let n = self.len;
        self.reserve(dt, n, exported)?;
        // After the reserve, the first n elements and the room for n more are disjoint.
        std::ptr::copy_nonoverlapping(self.ptr, self.elem_ptr(dt, n), n * dt.size());
        self.len += n;
        Ok(())
    }

    /// Copies up to `room` elements into `dst`; returns how many were copied.
    ///
    /// # Safety
    /// `dst` must be writable for `room` elements of dtype `dt`; it may overlap this
    /// vector (a view of it).
    pub unsafe fn copy_to(&self, dt: DType, dst: *mut u8, room: usize) -> usize {
        let n = self.len.min(room);
        std::ptr::copy(self.ptr, dst, n * dt.size());
        n
    }

    /// A deep copy (`Vec::clone`), with capacity equal to the length.
    ///
    /// # Safety
    /// The parts must describe a live `Vec` of dtype `dt`.
    pub unsafe fn clone(&self, dt: DType) -> Result<RawVec, VecError> {
        let mut out = RawVec::with_capacity(dt, self.len)?;
        out.extend_raw(dt, self.ptr, self.len, false).expect("fresh vector has room");
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_get_set_pop_i32() {
        let dt = DType::I32;
        let mut v = RawVec::with_capacity(dt, 0).unwrap();
        unsafe {
            for x in 0..100 {
                v.push(dt, Scalar::I(x), false).unwrap();
            }
            assert_eq!(v.len, 100);
            assert_eq!(v.get(dt, 99), Ok(Scalar::I(99)));
            assert_eq!(v.get(dt, 100), Err(VecError::Index));
            v.set(dt, 5, Scalar::I(-5)).unwrap();
            assert_eq!(v.get(dt, 5), Ok(Scalar::I(-5)));
            assert_eq!(v.set(dt, 5, Scalar::I(1 << 40)), Err(VecError::Conv(ConvError::Overflow)));
            assert_eq!(v.pop(dt), Ok(Scalar::I(99)));
            assert_eq!(v.len, 99);
            let seen: Vec<i32> = v.with::<i32, _>(|x| x.clone());
            assert_eq!(seen[..6], [0, 1, 2, 3, 4, -5]);
            v.free(dt);
        }
    }

    #[test]
    fn exported_vectors_never_reallocate() {
        let dt = DType::F64;
        let mut v = RawVec::with_capacity(dt, 2).unwrap();
        unsafe {
            v.push(dt, Scalar::F(1.0), true).unwrap();
            v.push(dt, Scalar::F(2.0), true).unwrap();
            let before = v.ptr;
            assert_eq!(v.push(dt, Scalar::F(3.0), true), Err(VecError::Exported));
            assert_eq!(v.reserve(dt, 1, true), Err(VecError::Exported));
            assert_eq!(v.ptr, before);
            assert_eq!(v.len, 2);
            v.push(dt, Scalar::F(3.0), false).unwrap();
            assert_eq!(v.len, 3);
            v.free(dt);
        }
    }

    #[test]
    fn pop_empty_and_clone_copy() {
        let dt = DType::U8;
        let mut v = RawVec::with_capacity(dt, 0).unwrap();
        unsafe {
            assert_eq!(v.pop(dt), Err(VecError::Empty));
            let src = [1u8, 2, 3, 4];
            v.extend_raw(dt, src.as_ptr(), 4, false).unwrap();
            let c = v.clone(dt).unwrap();
            v.set(dt, 0, Scalar::U(9)).unwrap();
            assert_eq!(c.get(dt, 0), Ok(Scalar::U(1)));
            let mut out = [0u8; 3];
            assert_eq!(c.copy_to(dt, out.as_mut_ptr(), 3), 3);
            assert_eq!(out, [1, 2, 3]);
            let mut big = [0u8; 10];
            assert_eq!(c.copy_to(dt, big.as_mut_ptr(), 10), 4);
            c.free(dt);
            v.free(dt);
        }
    }

    #[test]
    fn bool_and_float_vectors() {
        let mut v = RawVec::with_capacity(DType::Bool, 1).unwrap();
        unsafe {
            v.push(DType::Bool, Scalar::B(true), false).unwrap();
            assert_eq!(v.push(DType::Bool, Scalar::I(1), false), Err(VecError::Conv(ConvError::Type)));
            assert_eq!(v.len, 1);
            v.free(DType::Bool);
        }
        let mut f = RawVec::with_capacity(DType::F32, 0).unwrap();
        unsafe {
            assert_eq!(f.push(DType::F32, Scalar::F(1e300), false), Err(VecError::Conv(ConvError::Overflow)));
            f.push(DType::F32, Scalar::F(0.25), false).unwrap();
            assert_eq!(f.get(DType::F32, 0), Ok(Scalar::F(0.25)));
            f.free(DType::F32);
        }
    }

    #[test]
    fn extend_self_doubles_and_respects_views() {
        let dt = DType::I16;
        let mut v = RawVec::with_capacity(dt, 0).unwrap();
        unsafe {
            v.extend_self(dt, false).unwrap();
            assert_eq!(v.len, 0);
            for x in [1, -2, 3] {
                v.push(dt, Scalar::I(x), false).unwrap();
            }
            v.extend_self(dt, false).unwrap();
            let seen: Vec<i16> = v.with::<i16, _>(|x| x.clone());
            assert_eq!(seen, [1, -2, 3, 1, -2, 3]);
            // Full vector: doubling must reallocate, which a live view forbids.
            v.with::<i16, _>(|x| x.shrink_to_fit());
            assert_eq!(v.cap, 6);
            let before = v.ptr;
            assert_eq!(v.extend_self(dt, true), Err(VecError::Exported));
            assert_eq!((v.ptr, v.len), (before, 6));
            v.extend_self(dt, false).unwrap();
            assert_eq!(v.len, 12);
            assert_eq!(v.get(dt, 11), Ok(Scalar::I(3)));
            // Room to spare: no reallocation, so a view does not block it.
            let mut w = RawVec::with_capacity(dt, 8).unwrap();
            w.push(dt, Scalar::I(7), true).unwrap();
            w.extend_self(dt, true).unwrap();
            assert_eq!((w.get(dt, 0), w.get(dt, 1)), (Ok(Scalar::I(7)), Ok(Scalar::I(7))));
            w.free(dt);
            v.free(dt);
        }
    }

    #[test]
    fn allocation_failure_is_an_error_not_an_abort() {
        let dt = DType::U64;
        assert_eq!(RawVec::with_capacity(dt, usize::MAX / 4).err(), Some(VecError::NoMemory));
        assert_eq!(RawVec::with_capacity(dt, 1 << 60).err(), Some(VecError::NoMemory));
        let mut v = RawVec::with_capacity(dt, 0).unwrap();
        unsafe {
            v.push(dt, Scalar::U(1), false).unwrap();
            assert_eq!(v.reserve(dt, 1 << 60, false), Err(VecError::NoMemory));
            assert_eq!(v.reserve(dt, usize::MAX, false), Err(VecError::NoMemory));
            assert_eq!((v.len, v.get(dt, 0)), (1, Ok(Scalar::U(1))), "a failed reserve changes nothing");
            v.free(dt);
        }
    }

    #[test]
    fn copy_to_an_overlapping_view() {
        let dt = DType::I32;
        let mut v = RawVec::with_capacity(dt, 0).unwrap();
        unsafe {
            for x in 1..=4 {
                v.push(dt, Scalar::I(x), false).unwrap();
            }
            // Into the vector itself, one element on (memmove semantics).
            assert_eq!(v.copy_to(dt, v.elem_ptr(dt, 1), 3), 3);
            let seen: Vec<i32> = v.with::<i32, _>(|x| x.clone());
            assert_eq!(seen, [1, 1, 2, 3]);
            v.free(dt);
        }
    }
}
