
// ---------------------------------------------------------------------------
// N-d arrays (glue/ndarray.rs, appended to the prelude; a cell reaches these as
// `rustcall::NdArray`, `rustcall::NdArrayMut`, `rustcall::Array`).
//
// `NdArray<'_, T>` / `NdArrayMut<'_, T>` parameters are views of any buffer
// (numpy arrays in C or Fortran order, transposes, slices with negative steps,
// memoryviews): the buffer is borrowed for the call, never copied. Strides are
// counted in elements (numpy's `a.strides` are bytes: divide by `a.itemsize`).
// A returned `Array<T>` (a Vec and a shape) becomes a numpy array over the Rust
// allocation (a RustVec with `.shape` when numpy is not installed).

/// Most dimensions a view can have (numpy allows 64 since 2.0, 32 before).
pub const ND_MAX: usize = 64;

/// A read-only N-d view of a buffer argument: any shape, any strides, no copy.
///
/// `a[[i, j]]` reads an element (panics when out of bounds); `.get([i, j])` is
/// the checked form. Strides are in elements and may be negative or zero.
pub struct NdArray<'a, T> {
    ptr: *const T,
    shape: &'a [usize],
    strides: &'a [isize],
}

/// A writable N-d view of a buffer argument: like [`NdArray`], plus `a[[i, j]] = x`,
/// `.get_mut(..)`, `.as_mut_slice()` and `.fill(x)`. Writes are seen by Python.
pub struct NdArrayMut<'a, T> {
    ptr: *mut T,
    shape: &'a [usize],
    strides: &'a [isize],
    _mut: ::std::marker::PhantomData<&'a mut T>,
}

impl<'a, T: 'a> Clone for NdArray<'a, T> {
    fn clone(&self) -> Self {
        NdArray { ptr: self.ptr, shape: self.shape, strides: self.strides }
    }
}
impl<'a, T: 'a> Copy for NdArray<'a, T> {}

/// Offset in elements of `index` in a view, or None when out of bounds (or of another rank).
#[inline(always)]
pub fn nd_offset(shape: &[usize], strides: &[isize], index: &[usize]) -> Option<isize> {
    if index.len() != shape.len() {
        return None;
    }
    let mut off = 0isize;
    for k in 0..index.len() {
        if index[k] >= shape[k] {
            return None;
        }
        off += index[k] as isize * strides[k];
    }
    Some(off)
}

#[cold]
#[inline(never)]
pub fn nd_index_panic(shape: &[usize], index: &[usize]) -> ! {
    if index.len() != shape.len() {
        panic!("index {:?} has {} dimensions, but the array has {} (shape {:?})", index, index.len(), shape.len(), shape)
    }
    panic!("index {:?} is out of bounds for an array of shape {:?}", index, shape)
}

/// True unless every index of the view provably reaches its own element: sorted by stride,
/// each axis must step past everything the smaller axes reach (a sufficient test, exact for
/// every layout numpy makes by slicing and transposing).
pub fn nd_self_overlapping(shape: &[usize], strides: &[isize]) -> bool {
    if shape.iter().any(|n| *n == 0) {
        return false;
    }
    let mut axes: Vec<(usize, usize)> =
        (0..shape.len()).filter(|&k| shape[k] > 1).map(|k| (strides[k].unsigned_abs(), shape[k])).collect();
    axes.sort_unstable();
    let mut reach = 0usize;
    for (stride, n) in axes {
        if stride <= reach || stride == 0 {
            return true;
        }
        reach += stride * (n - 1);
    }
    false
}

/// True when the strides are those of C order (a dimension of length 0 or 1 may have any stride).
pub fn nd_c_contiguous(shape: &[usize], strides: &[isize]) -> bool {
    let mut expect = 1isize;
    for k in (0..shape.len()).rev() {
        if shape[k] == 0 {
            return true;
        }
        if shape[k] != 1 && strides[k] != expect {
            return false;
        }
        expect *= shape[k] as isize;
    }
    true
}

/// True when the strides are those of Fortran order (column-major).
pub fn nd_f_contiguous(shape: &[usize], strides: &[isize]) -> bool {
    let mut expect = 1isize;
    for k in 0..shape.len() {
        if shape[k] == 0 {
            return true;
        }
        if shape[k] != 1 && strides[k] != expect {
            return false;
        }
        expect *= shape[k] as isize;
    }
    true
}

/// The accessors of the layout, the same for [`NdArray`] and [`NdArrayMut`] (both have
/// `shape` and `strides` fields borrowed for `'a`).
macro_rules! nd_layout_methods {
    () => {
        /// Length of each dimension (numpy's `a.shape`).
        #[inline(always)]
        pub fn shape(&self) -> &'a [usize] {
            self.shape
        }

        /// Distance between neighbours along each dimension, in elements (numpy's `a.strides`
        /// divided by the item size); negative for reversed axes.
        #[inline(always)]
        pub fn strides(&self) -> &'a [isize] {
            self.strides
        }

        /// Number of dimensions.
        #[inline(always)]
        pub fn ndim(&self) -> usize {
            self.shape.len()
        }

        /// Number of elements (the product of the shape).
        #[inline(always)]
        pub fn len(&self) -> usize {
            self.shape.iter().product()
        }

        #[inline(always)]
        pub fn is_empty(&self) -> bool {
            self.len() == 0
        }

        /// True when the elements are laid out in C order without gaps (numpy's `a.flags.c_contiguous`).
        pub fn is_c_contiguous(&self) -> bool {
            nd_c_contiguous(self.shape, self.strides)
        }

        /// True when the elements are laid out in Fortran order without gaps.
        pub fn is_f_contiguous(&self) -> bool {
            nd_f_contiguous(self.shape, self.strides)
        }
    };
}

impl<'a, T: 'a> NdArray<'a, T> {
    /// A view of `ptr` with `shape` and `strides` (in elements).
    ///
    /// # Safety
    /// Every index within `shape` must address a valid `T` that nothing writes for `'a`.
    pub unsafe fn from_raw_parts(ptr: *const T, shape: &'a [usize], strides: &'a [isize]) -> Self {
        assert_eq!(shape.len(), strides.len(), "shape and strides must have the same length");
        NdArray { ptr, shape, strides }
    }

    nd_layout_methods!();

    /// Address of the element at index 0 (for dimensions of length 0: not to be read).
    #[inline(always)]
    pub fn as_ptr(&self) -> *const T {
        self.ptr
    }

    /// The element at `index` (one entry per dimension), or None when out of bounds.
    #[inline(always)]
    pub fn get<I: AsRef<[usize]>>(&self, index: I) -> Option<&'a T> {
        nd_offset(self.shape, self.strides, index.as_ref()).map(|off| unsafe { &*self.ptr.offset(off) })
    }

    /// The elements in C order as one slice, when they are C-contiguous (else None).
    pub fn as_slice(&self) -> Option<&'a [T]> {
        if !self.is_c_contiguous() {
            return None;
        }
        let n = self.len();
        let p = if n == 0 { ::std::ptr::NonNull::<T>::dangling().as_ptr() as *const T } else { self.ptr };
        Some(unsafe { ::std::slice::from_raw_parts(p, n) })
    }

    /// The view of index `i` along the first axis: one dimension fewer (a row of a matrix).
    /// Panics when `i` is out of bounds or the view is 0-dimensional.
    pub fn subview(&self, i: usize) -> NdArray<'a, T> {
        assert!(!self.shape.is_empty(), "a 0-dimensional array has no rows");
        if i >= self.shape[0] {
            nd_index_panic(&self.shape[..1], &[i]);
        }
        NdArray { ptr: unsafe { self.ptr.offset(i as isize * self.strides[0]) }, shape: &self.shape[1..], strides: &self.strides[1..] }
    }

    /// The views along the first axis, in order (the rows of a matrix).
    pub fn outer_iter(&self) -> NdOuter<'a, T> {
        assert!(!self.shape.is_empty(), "a 0-dimensional array has no rows");
        NdOuter { view: *self, next: 0 }
    }

    /// Row `i` of a 2-D array, as a 1-D view. Panics unless the array is 2-D and `i` in bounds.
    pub fn row(&self, i: usize) -> NdArray<'a, T> {
        self.expect_2d("row");
        self.subview(i)
    }

    /// Column `j` of a 2-D array, as a 1-D view. Panics unless the array is 2-D and `j` in bounds.
    pub fn column(&self, j: usize) -> NdArray<'a, T> {
        self.expect_2d("column");
        if j >= self.shape[1] {
            nd_index_panic(&self.shape[1..], &[j]);
        }
        NdArray { ptr: unsafe { self.ptr.offset(j as isize * self.strides[1]) }, shape: &self.shape[..1], strides: &self.strides[..1] }
    }

    /// The rows of a 2-D array, each a 1-D view (`.as_slice()` is Some for C-order rows).
    pub fn rows(&self) -> NdOuter<'a, T> {
        self.expect_2d("rows");
        self.outer_iter()
    }

    fn expect_2d(&self, what: &str) {
        if self.shape.len() != 2 {
            panic!("{}() needs a 2-D array, this one has shape {:?}", what, self.shape);
        }
    }

    /// Every element, in C (row-major) order, whatever the strides.
    pub fn iter(&self) -> NdIter<'a, T> {
        NdIter::new(self.ptr, self.shape, self.strides)
    }

    /// A copy of the elements in C order.
    pub fn to_vec(&self) -> Vec<T>
    where
        T: Clone,
    {
        match self.as_slice() {
            Some(s) => s.to_vec(),
            None => self.iter().cloned().collect(),
        }
    }
}

/// `a[[i, j]]` (panics when out of bounds), and `v[i]` on a 1-D view (a row), for a view type.
macro_rules! nd_index_impls {
    ($view:ident) => {
        impl<'a, T: 'a, const N: usize> ::std::ops::Index<[usize; N]> for $view<'a, T> {
            type Output = T;
            #[inline(always)]
            fn index(&self, index: [usize; N]) -> &T {
                match nd_offset(self.shape, self.strides, &index) {
                    Some(off) => unsafe { &*self.ptr.offset(off) },
                    None => nd_index_panic(self.shape, &index),
                }
            }
        }

        impl<'a, T: 'a> ::std::ops::Index<usize> for $view<'a, T> {
            type Output = T;
            #[inline(always)]
            fn index(&self, i: usize) -> &T {
                &self[[i]]
            }
        }
    };
}

nd_index_impls!(NdArray);

impl<'a, T: 'a + ::std::fmt::Debug> ::std::fmt::Debug for NdArray<'a, T> {
    fn fmt(&self, f: &mut ::std::fmt::Formatter) -> ::std::fmt::Result {
        write!(f, "NdArray(shape={:?}, strides={:?}, ", self.shape, self.strides)?;
        f.debug_list().entries(self.iter().take(20)).finish()?;
        write!(f, "{})", if self.len() > 20 { " ..." } else { "" })
    }
}

/// Iterator over the views along the first axis of an [`NdArray`].
pub struct NdOuter<'a, T> {
    view: NdArray<'a, T>,
    next: usize,
}

impl<'a, T: 'a> Iterator for NdOuter<'a, T> {
    type Item = NdArray<'a, T>;
    fn next(&mut self) -> Option<NdArray<'a, T>> {
        if self.next >= self.view.shape[0] {
            return None;
        }
        self.next += 1;
        Some(self.view.subview(self.next - 1))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.view.shape[0] - self.next;
        (n, Some(n))
    }
}

impl<'a, T: 'a> ExactSizeIterator for NdOuter<'a, T> {}

/// Iterator over every element of a view in C order (an odometer over the index).
pub struct NdIter<'a, T> {
    ptr: *const T,
    shape: &'a [usize],
    strides: &'a [isize],
    index: [usize; ND_MAX],
    offset: isize,
    left: usize,
}

impl<'a, T: 'a> NdIter<'a, T> {
    fn new(ptr: *const T, shape: &'a [usize], strides: &'a [isize]) -> Self {
        NdIter { ptr, shape, strides, index: [0; ND_MAX], offset: 0, left: shape.iter().product() }
    }

    /// Offset of the current element; then steps the odometer.
    #[inline(always)]
    fn step(&mut self) -> Option<isize> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let here = self.offset;
        let mut k = self.shape.len();
        while k > 0 {
            k -= 1;
            self.index[k] += 1;
            self.offset += self.strides[k];
            if self.index[k] < self.shape[k] {
                break;
            }
            self.offset -= self.strides[k] * self.shape[k] as isize;
            self.index[k] = 0;
        }
        Some(here)
    }
}

impl<'a, T: 'a> Iterator for NdIter<'a, T> {
    type Item = &'a T;
    #[inline(always)]
    fn next(&mut self) -> Option<&'a T> {
        self.step().map(|off| unsafe { &*self.ptr.offset(off) })
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<'a, T: 'a> ExactSizeIterator for NdIter<'a, T> {}

impl<'a, T: 'a> NdArrayMut<'a, T> {
    /// A writable view of `ptr` with `shape` and `strides` (in elements).
    ///
    /// # Safety
    /// Every index within `shape` must address a valid `T` that nothing else reads or writes
    /// for `'a`, and no two indices may address the same element.
    pub unsafe fn from_raw_parts(ptr: *mut T, shape: &'a [usize], strides: &'a [isize]) -> Self {
        assert_eq!(shape.len(), strides.len(), "shape and strides must have the same length");
        NdArrayMut { ptr, shape, strides, _mut: ::std::marker::PhantomData }
    }

    /// A read-only view, borrowing this one.
    #[inline(always)]
    pub fn view(&self) -> NdArray<'_, T> {
        NdArray { ptr: self.ptr, shape: self.shape, strides: self.strides }
    }

    /// A writable view, reborrowing this one (e.g. to pass it on and keep using this one after).
    #[inline(always)]
    pub fn reborrow(&mut self) -> NdArrayMut<'_, T> {
        NdArrayMut { ptr: self.ptr, shape: self.shape, strides: self.strides, _mut: ::std::marker::PhantomData }
    }

    nd_layout_methods!();

    #[inline(always)]
    pub fn as_mut_ptr(&mut self) -> *mut T {
        self.ptr
    }

    #[inline(always)]
    pub fn get<I: AsRef<[usize]>>(&self, index: I) -> Option<&T> {
        nd_offset(self.shape, self.strides, index.as_ref()).map(|off| unsafe { &*self.ptr.offset(off) })
    }

    #[inline(always)]
    pub fn get_mut<I: AsRef<[usize]>>(&mut self, index: I) -> Option<&mut T> {
        nd_offset(self.shape, self.strides, index.as_ref()).map(|off| unsafe { &mut *self.ptr.offset(off) })
    }

    /// The elements in C order, when C-contiguous (else None).
    pub fn as_slice(&self) -> Option<&[T]> {
        self.view().as_slice()
    }

    /// The elements in C order as one writable slice, when C-contiguous (else None).
    pub fn as_mut_slice(&mut self) -> Option<&mut [T]> {
        if !self.is_c_contiguous() {
            return None;
        }
        let n = self.len();
        let p = if n == 0 { ::std::ptr::NonNull::<T>::dangling().as_ptr() } else { self.ptr };
        Some(unsafe { ::std::slice::from_raw_parts_mut(p, n) })
    }

    /// The writable view of index `i` along the first axis (a row of a matrix).
    pub fn subview_mut(&mut self, i: usize) -> NdArrayMut<'_, T> {
        assert!(!self.shape.is_empty(), "a 0-dimensional array has no rows");
        if i >= self.shape[0] {
            nd_index_panic(&self.shape[..1], &[i]);
        }
        let ptr = unsafe { self.ptr.offset(i as isize * self.strides[0]) };
        NdArrayMut { ptr, shape: &self.shape[1..], strides: &self.strides[1..], _mut: ::std::marker::PhantomData }
    }

    /// Row `i` of a 2-D array, writable.
    pub fn row_mut(&mut self, i: usize) -> NdArrayMut<'_, T> {
        if self.shape.len() != 2 {
            panic!("row_mut() needs a 2-D array, this one has shape {:?}", self.shape);
        }
        self.subview_mut(i)
    }

    /// Every element in C order (see [`NdArray::iter`]).
    pub fn iter(&self) -> NdIter<'_, T> {
        NdIter::new(self.ptr, self.shape, self.strides)
    }

    /// Every element in C order, writable.
    pub fn iter_mut(&mut self) -> NdIterMut<'_, T> {
        NdIterMut { inner: NdIter::new(self.ptr, self.shape, self.strides), _mut: ::std::marker::PhantomData }
    }

    /// Sets every element to `value`.
    pub fn fill(&mut self, value: T)
    where
        T: Clone,
    {
        for x in self.iter_mut() {
            *x = value.clone();
        }
    }
}

/// Writable iterator over every element of an [`NdArrayMut`] in C order.
pub struct NdIterMut<'a, T> {
    inner: NdIter<'a, T>,
    _mut: ::std::marker::PhantomData<&'a mut T>,
}

impl<'a, T: 'a> Iterator for NdIterMut<'a, T> {
    type Item = &'a mut T;
    #[inline(always)]
    fn next(&mut self) -> Option<&'a mut T> {
        // Distinct indices address distinct elements (a writable view never overlaps itself).
        let p = self.inner.ptr as *mut T;
        self.inner.step().map(|off| unsafe { &mut *p.offset(off) })
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

nd_index_impls!(NdArrayMut);

impl<'a, T: 'a, const N: usize> ::std::ops::IndexMut<[usize; N]> for NdArrayMut<'a, T> {
    #[inline(always)]
    fn index_mut(&mut self, index: [usize; N]) -> &mut T {
        match nd_offset(self.shape, self.strides, &index) {
            Some(off) => unsafe { &mut *self.ptr.offset(off) },
            None => nd_index_panic(self.shape, &index),
        }
    }
}

impl<'a, T: 'a> ::std::ops::IndexMut<usize> for NdArrayMut<'a, T> {
    #[inline(always)]
    fn index_mut(&mut self, i: usize) -> &mut T {
        &mut self[[i]]
    }
}

impl<'a, T: 'a + ::std::fmt::Debug> ::std::fmt::Debug for NdArrayMut<'a, T> {
    fn fmt(&self, f: &mut ::std::fmt::Formatter) -> ::std::fmt::Result {
        write!(f, "NdArrayMut(")?;
        ::std::fmt::Debug::fmt(&self.view(), f)?;
        write!(f, ")")
    }
}

// ---------------------------------------------------------------------------
// Parameter holders: the buffer (PyBUF_STRIDES | PyBUF_FORMAT) and the strides in elements.

/// Holder of an N-d view argument; `view()`/`view_mut()` hand it to the function.
pub struct NdHold<T: BufElem> {
    buf: BufHold,
    ptr: *mut T,
    ndim: usize,
    /// The sizes: the buffer view's or the numpy array's (isize read as usize); null: `shape1`.
    dims: *const usize,
    shape1: [usize; 1],
    strides: [isize; ND_MAX],
}

impl<T: BufElem> NdHold<T> {
    fn empty() -> Self {
        NdHold {
            buf: BufHold::empty(),
            ptr: ::std::ptr::null_mut(),
            ndim: 0,
            dims: ::std::ptr::null(),
            shape1: [0],
            strides: [0; ND_MAX],
        }
    }

    fn shape(&self) -> &[usize] {
        if self.ndim == 0 {
            return &[]; // a 0-d buffer (a scalar) may give no shape
        }
        if self.dims.is_null() {
            return &self.shape1[..];
        }
        // Sizes are never negative: an isize array read as usize.
        unsafe { ::std::slice::from_raw_parts(self.dims, self.ndim) }
    }

    /// Reads a numpy array's own fields (numpy's buffer export costs a few hundred ns per
    /// call); false for anything unusual, which then takes the buffer protocol (and its
    /// error messages). The caller's reference keeps the array alive for the call.
    #[inline(always)]
    unsafe fn fill_numpy(&mut self, o: *mut PyObject, writable: bool) -> bool {
        let a = o as *const NpArrayHead;
        let flags = (*a).flags;
        let need = NPY_ALIGNED | if writable { NPY_WRITEABLE } else { 0 };
        if flags & need != need || (writable && flags & NPY_WARN_ON_WRITE != 0) || T::CODES.is_empty() {
            return false;
        }
        let d = (*a).descr;
        let bo = (*d).byteorder;
        if (*d).type_num > NPY_LAST_NUMERIC || !(bo == b'=' || bo == b'|' || (bo == b'<' && cfg!(target_endian = "little"))) {
            return false;
        }
        let c = (*d).type_char;
        let size = ::std::mem::size_of::<T>();
        if !T::CODES.contains(&c) || np_char_size(c) != size || (*a).nd < 0 || (*a).nd as usize > ND_MAX {
            return false;
        }
        self.ndim = (*a).nd as usize;
        self.dims = (*a).dimensions as *const usize;
        let empty = self.shape().iter().any(|n| *n == 0);
        for k in 0..self.ndim {
            let s = *(*a).strides.add(k);
            if s % size as isize != 0 && *self.dims.add(k) > 1 && !empty {
                return false;
            }
            self.strides[k] = s / size as isize;
        }
        self.ptr = (*a).data as *mut T;
        if !empty && T::CODES == b"?" {
            let view = NdArray { ptr: self.ptr as *const u8, shape: self.shape(), strides: &self.strides[..self.ndim] };
            if view.iter().any(|b| *b > 1) {
                return false;
            }
        }
        true
    }

    unsafe fn fill(&mut self, o: *mut PyObject, writable: bool, what: &str) -> Result<(), ArgError> {
        if (*o).ob_type == NDARRAY_TYPE && !NDARRAY_TYPE.is_null() && self.fill_numpy(o, writable) {
            return Ok(());
        }
        let flags = PyBUF_STRIDES | PyBUF_FORMAT | if writable { PyBUF_WRITABLE } else { 0 };
        if PyObject_GetBuffer(o, &mut self.buf.view, flags) != 0 {
            return Err(nd_buffer_failure::<T>(o, writable, what));
        }
        self.buf.held = true; // released by BufHold's Drop on every path
        if NDARRAY_TYPE.is_null() {
            note_ndarray_type((*o).ob_type);
        }
        let v = &self.buf.view;
        self.dims = v.shape as *const usize;
        if !T::CODES.is_empty() && (!format_matches(v.format, T::CODES) || v.itemsize as usize != ::std::mem::size_of::<T>()) {
            return Err(format_error::<T>(v));
        }
        if v.ndim < 0 || v.ndim as usize > ND_MAX {
            return Err(ArgError::Msg(CODE_BUFFER, format!("a buffer of {} dimensions (at most {} are supported)", v.ndim, ND_MAX)));
        }
        self.ndim = v.ndim as usize;
        if v.shape.is_null() && self.ndim != 0 {
            // An exporter that gave no shape describes one dimension of len / itemsize items.
            self.ndim = 1;
            self.shape1 = [v.len as usize / ::std::mem::size_of::<T>().max(1)];
        }
        let size = ::std::mem::size_of::<T>() as isize;
        let align = ::std::mem::align_of::<T>();
        // A copy on the stack (the loop below writes `self.strides`).
        let mut dims = [0usize; ND_MAX];
        dims[..self.ndim].copy_from_slice(self.shape());
        let shape = &dims[..self.ndim];
        let empty = shape.iter().any(|n| *n == 0);
        let mut stride = size;
        for k in (0..self.ndim).rev() {
            let s = if v.strides.is_null() { stride } else { *v.strides.add(k) };
            stride *= shape[k] as isize;
            if s % size != 0 && shape[k] > 1 && !empty {
                return Err(ArgError::Msg(CODE_BUFFER, format!(
                    "the buffer's strides ({} bytes along axis {}) are not a multiple of the {}-byte items; \
                     pass a copy, e.g. numpy.ascontiguousarray(a)", s, k, size)));
            }
            self.strides[k] = s / size;
        }
        if !empty && (v.buf as usize) % align != 0 {
            return Err(ArgError::Msg(CODE_BUFFER, format!(
                "the buffer's memory is not aligned for {} items; pass an aligned copy", T::NAME)));
        }
        self.ptr = v.buf as *mut T;
        // Bool items must be 0 or 1 (a uint8 buffer viewed as bool could hold anything).
        if !empty && T::CODES == b"?" {
            let view = NdArray { ptr: self.ptr as *const u8, shape, strides: &self.strides[..self.ndim] };
            if view.iter().any(|b| *b > 1) {
                return Err(ArgError::Value("the buffer holds bytes other than 0 and 1, which are not Rust bools"));
            }
        }
        Ok(())
    }

    /// The extent of the elements in memory as (start, byte length): the aliasing check
    /// compares extents (as numpy.may_share_memory does).
    fn extent(&self) -> (usize, usize) {
        let shape = self.shape();
        if self.ptr.is_null() || shape.iter().any(|n| *n == 0) {
            return (0, 0);
        }
        let size = ::std::mem::size_of::<T>() as isize;
        let (mut lo, mut hi) = (0isize, 0isize);
        for k in 0..self.ndim {
            let d = (shape[k] as isize - 1) * self.strides[k] * size;
            if d < 0 { lo += d } else { hi += d }
        }
        ((self.ptr as isize + lo) as usize, (hi - lo + size) as usize)
    }
}

/// Why a strided buffer request failed.
#[cold]
#[inline(never)]
pub unsafe fn nd_buffer_failure<T: BufElem>(o: *mut PyObject, writable: bool, what: &str) -> ArgError {
    PyErr_Clear();
    if is_list(o) || is_tuple(o) {
        return ArgError::Type("a list is not a buffer: pass a numpy array, e.g. numpy.asarray(x)");
    }
    let mut view: Py_buffer = ::std::mem::zeroed();
    if PyObject_GetBuffer(o, &mut view, PyBUF_RECORDS_RO) != 0 {
        PyErr_Clear();
        return ArgError::Type("");
    }
    let g = BufHold { view: view, held: true, data: ::std::ptr::null_mut(), count: 0 };
    if let Err(e) = check_items::<T>(&g.view) {
        return e;
    }
    if writable && g.view.readonly != 0 {
        return ArgError::Msg(CODE_BUFFER, format!(
            "the buffer is read-only, {}<{}> needs a writable one (e.g. a numpy array with a.flags.writeable set)",
            what, T::NAME));
    }
    ArgError::Msg(CODE_BUFFER, "the object cannot export a strided buffer".to_string())
}

/// Holder of an `NdArray<T>` argument.
pub struct NdArg<T: BufElem>(NdHold<T>);

impl<T: BufElem> NdArg<T> {
    #[inline(always)]
    pub fn view<'a>(&'a self) -> NdArray<'a, T> {
        let h = &self.0;
        NdArray { ptr: h.ptr as *const T, shape: h.shape(), strides: &h.strides[..h.ndim] }
    }
}

impl<T: BufElem> ArgHolder for NdArg<T> {
    fn empty() -> Self {
        NdArg(NdHold::empty())
    }
    unsafe fn fill(&mut self, o: *mut PyObject) -> Result<(), ArgError> {
        self.0.fill(o, false, "NdArray")
    }
}

impl<T: BufElem> MemSpan for NdArg<T> {
    fn span(&self) -> (usize, usize) {
        self.0.extent()
    }
}

/// Holder of an `NdArrayMut<T>` argument.
pub struct NdMutArg<T: BufElem>(NdHold<T>);

impl<T: BufElem> NdMutArg<T> {
    #[inline(always)]
    pub fn view_mut<'a>(&'a mut self) -> NdArrayMut<'a, T> {
        let h: &'a NdHold<T> = &self.0;
        NdArrayMut { ptr: h.ptr, shape: h.shape(), strides: &h.strides[..h.ndim], _mut: ::std::marker::PhantomData }
    }
}

impl<T: BufElem> ArgHolder for NdMutArg<T> {
    fn empty() -> Self {
        NdMutArg(NdHold::empty())
    }
    unsafe fn fill(&mut self, o: *mut PyObject) -> Result<(), ArgError> {
        self.0.fill(o, true, "NdArrayMut")?;
        // Rust's `&mut` rule inside one view: no two indices may reach the same element
        // (broadcast views have stride 0; as_strided can make any overlap).
        if nd_self_overlapping(self.0.shape(), &self.0.strides[..self.0.ndim]) {
            return Err(ArgError::Msg(CODE_VALUE, format!(
                "the buffer reaches some elements by several indices (a stride of 0, as in a broadcast \
                 view, or overlapping strides); NdArrayMut<{}> needs distinct elements: pass a copy", T::NAME)));
        }
        Ok(())
    }
}

impl<T: BufElem> MemSpan for NdMutArg<T> {
    fn span(&self) -> (usize, usize) {
        self.0.extent()
    }
}

// ---------------------------------------------------------------------------
// Array<T>: an owned N-d array in C order, returned to Python without a copy.

/// An owned N-d array: its elements in C (row-major) order and its shape.
///
/// Returned from a `%%rust` function it becomes a numpy array over the same
/// memory (no copy; its base is the `RustVec` that owns the allocation), or that
/// `RustVec`, with `.shape` set, when numpy is not installed.
#[derive(Clone, PartialEq, Debug)]
pub struct Array<T> {
    data: Vec<T>,
    shape: Vec<usize>,
    strides: Vec<isize>,
}

/// The shape given to [`Array::try_from_vec`] does not match the number of elements.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ShapeError {
    pub len: usize,
    pub shape: Vec<usize>,
}

impl ::std::fmt::Display for ShapeError {
    fn fmt(&self, f: &mut ::std::fmt::Formatter) -> ::std::fmt::Result {
        write!(f, "{} elements cannot have shape {:?}", self.len, self.shape)
    }
}

impl ::std::error::Error for ShapeError {}

fn c_strides(shape: &[usize]) -> Vec<isize> {
    let mut strides = vec![0isize; shape.len()];
    let mut s = 1isize;
    for k in (0..shape.len()).rev() {
        strides[k] = s;
        s *= shape[k] as isize;
    }
    strides
}

impl<T> Array<T> {
    /// `data` (C order) with `shape`; Err when the product of the shape is not `data.len()`.
    pub fn try_from_vec<S: Into<Vec<usize>>>(data: Vec<T>, shape: S) -> Result<Self, ShapeError> {
        let shape = shape.into();
        let total = shape.iter().try_fold(1usize, |a, n| a.checked_mul(*n));
        if total != Some(data.len()) || shape.len() > ND_MAX {
            return Err(ShapeError { len: data.len(), shape });
        }
        let strides = c_strides(&shape);
        Ok(Array { data, shape, strides })
    }

    /// `data` (C order) with `shape`, e.g. `Array::from_vec(v, [3, 4])`. Panics when the
    /// product of the shape is not `data.len()` (see [`Array::try_from_vec`]).
    pub fn from_vec<S: Into<Vec<usize>>>(data: Vec<T>, shape: S) -> Self {
        match Self::try_from_vec(data, shape) {
            Ok(a) => a,
            Err(e) => panic!("Array::from_vec: {}", e),
        }
    }

    /// An array of `shape` whose every element is `value`.
    pub fn from_elem<S: Into<Vec<usize>>>(shape: S, value: T) -> Self
    where
        T: Clone,
    {
        let shape = shape.into();
        let n = shape.iter().product();
        Self::from_vec(vec![value; n], shape)
    }

    /// An array of `shape` filled with `T::default()` (0 for numbers).
    pub fn zeros<S: Into<Vec<usize>>>(shape: S) -> Self
    where
        T: Default + Clone,
    {
        Self::from_elem(shape, T::default())
    }

    /// An array of `shape` whose element at each index is `f(index)`, filled in C order.
    pub fn from_fn<S: Into<Vec<usize>>, F: FnMut(&[usize]) -> T>(shape: S, mut f: F) -> Self {
        let shape = shape.into();
        let n: usize = shape.iter().product();
        let mut data = Vec::with_capacity(n);
        let mut index = vec![0usize; shape.len()];
        for _ in 0..n {
            data.push(f(&index));
            let mut k = shape.len();
            while k > 0 {
                k -= 1;
                index[k] += 1;
                if index[k] < shape[k] {
                    break;
                }
                index[k] = 0;
            }
        }
        Self::from_vec(data, shape)
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// C-order strides in elements.
    pub fn strides(&self) -> &[isize] {
        &self.strides
    }

    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The elements in C order.
    pub fn as_slice(&self) -> &[T] {
        &self.data
    }

    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.data
    }

    /// The elements in C order, giving up the shape.
    pub fn into_vec(self) -> Vec<T> {
        self.data
    }

    pub fn get<I: AsRef<[usize]>>(&self, index: I) -> Option<&T> {
        nd_offset(&self.shape, &self.strides, index.as_ref()).map(|off| &self.data[off as usize])
    }

    pub fn get_mut<I: AsRef<[usize]>>(&mut self, index: I) -> Option<&mut T> {
        nd_offset(&self.shape, &self.strides, index.as_ref()).map(move |off| &mut self.data[off as usize])
    }

    /// A read-only view (rows, columns, iteration as for arguments).
    pub fn view(&self) -> NdArray<'_, T> {
        NdArray { ptr: self.data.as_ptr(), shape: &self.shape, strides: &self.strides }
    }

    /// A writable view.
    pub fn view_mut(&mut self) -> NdArrayMut<'_, T> {
        NdArrayMut { ptr: self.data.as_mut_ptr(), shape: &self.shape, strides: &self.strides, _mut: ::std::marker::PhantomData }
    }
}

impl<T, const N: usize> ::std::ops::Index<[usize; N]> for Array<T> {
    type Output = T;
    #[inline(always)]
    fn index(&self, index: [usize; N]) -> &T {
        match nd_offset(&self.shape, &self.strides, &index) {
            Some(off) => &self.data[off as usize],
            None => nd_index_panic(&self.shape, &index),
        }
    }
}

impl<T, const N: usize> ::std::ops::IndexMut<[usize; N]> for Array<T> {
    #[inline(always)]
    fn index_mut(&mut self, index: [usize; N]) -> &mut T {
        match nd_offset(&self.shape, &self.strides, &index) {
            Some(off) => &mut self.data[off as usize],
            None => nd_index_panic(&self.shape, &index),
        }
    }
}

/// numpy.asarray, once per process copy of the glue; null when numpy is not installed.
pub static mut NP_ASARRAY: *mut PyObject = ::std::ptr::null_mut();
pub static mut NP_LOOKED: bool = false;

pub unsafe fn np_asarray() -> *mut PyObject {
    if !NP_LOOKED {
        NP_LOOKED = true;
        let np = PyImport_ImportModule(b"numpy\0".as_ptr() as *const c_char);
        if np.is_null() {
            PyErr_Clear();
        } else {
            NP_ASARRAY = PyObject_GetAttrString(np, b"asarray\0".as_ptr() as *const c_char);
            Py_DecRef(np);
            if NP_ASARRAY.is_null() {
                PyErr_Clear();
            }
        }
    }
    NP_ASARRAY
}

impl<T: HandleElem> IntoPy for Array<T> {
    unsafe fn into_py(self) -> *mut PyObject {
        let Array { data, shape, .. } = self;
        // The elements move into a RustVec (no copy); its shape is what its buffer exports.
        let v = PyOwned(vec_into_handle(data));
        if v.0.is_null() {
            return ::std::ptr::null_mut();
        }
        let t = PyOwned(PyTuple_New(shape.len() as isize));
        if t.0.is_null() {
            return ::std::ptr::null_mut();
        }
        for (i, n) in shape.iter().enumerate() {
            PyTuple_SetItem(t.0, i as isize, PyLong_FromUnsignedLongLong(*n as c_ulonglong));
        }
        if __rc_nd_ffi::PyObject_SetAttrString(v.0, b"shape\0".as_ptr() as *const c_char, t.0) != 0 {
            return ::std::ptr::null_mut();
        }
        let asarray = np_asarray();
        if asarray.is_null() {
            return new_ref(v.0);
        }
        PyObject_CallFunctionObjArgs(asarray, v.0, ::std::ptr::null_mut::<PyObject>())
    }
}

impl<T: HandleElem> VecIntoPy for Array<T> {}

pub mod __rc_nd_ffi {
    use super::PyObject;
    use ::std::os::raw::{c_char, c_int};
    unsafe extern "C" {
        pub fn PyObject_SetAttrString(o: *mut PyObject, name: *const c_char, v: *mut PyObject) -> c_int;
    }
}
