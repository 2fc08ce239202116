
// ---------------------------------------------------------------------------
// Maps, sets, fixed-size arrays (glue/collections.rs, appended to the prelude).
//
// `HashMap`/`BTreeMap` <-> dict (in: any mapping), `HashSet`/`BTreeSet` <-> set
// (in: any iterable), `[T; N]` <-> a tuple (in: a tuple, list or buffer of
// exactly N items), `&[i128]`/`&[u128]` copied from a list, and `Option<H>` for
// parameter holders H (`Option<&[T]>`: None or a buffer). Everything here is
// copied: Python code may run while items convert (`__index__`), so every
// borrowed item is held by a strong reference while it converts.

pub mod __rc_coll_ffi {
    use super::PyObject;
    use ::std::os::raw::{c_char, c_int};
    unsafe extern "C" {
        pub fn PyDict_New() -> *mut PyObject;
        pub fn PyDict_SetItem(d: *mut PyObject, k: *mut PyObject, v: *mut PyObject) -> c_int;
        pub fn PyDict_Next(d: *mut PyObject, pos: *mut isize, k: *mut *mut PyObject, v: *mut *mut PyObject) -> c_int;
        pub fn PyDict_Size(d: *mut PyObject) -> isize;
        pub fn PyMapping_Items(o: *mut PyObject) -> *mut PyObject;
        pub fn PyObject_HasAttrString(o: *mut PyObject, name: *const c_char) -> c_int;
        pub fn PySet_New(iterable: *mut PyObject) -> *mut PyObject;
        pub fn PySet_Add(s: *mut PyObject, k: *mut PyObject) -> c_int;
        pub fn PyObject_GetIter(o: *mut PyObject) -> *mut PyObject;
        pub fn PyIter_Next(it: *mut PyObject) -> *mut PyObject;
        pub fn PySequence_List(o: *mut PyObject) -> *mut PyObject;
        pub static mut PyDict_Type: PyObject;
    }
}

use self::__rc_coll_ffi as cf;

#[inline(always)]
pub unsafe fn is_dict(o: *mut PyObject) -> bool {
    type_is(o, ::std::ptr::addr_of_mut!(cf::PyDict_Type))
}

/// Converts one entry (borrowed `k`, `v`) and hands it to `put`; errors name the entry.
#[inline(always)]
unsafe fn map_entry<K: FromPy, V: FromPy>(
    k: *mut PyObject,
    v: *mut PyObject,
    put: &mut impl FnMut(K, V),
) -> Result<(), ArgError> {
    // Held while they convert: a conversion may run Python code that changes the mapping.
    let (k, v) = (PyOwned(new_ref(k)), PyOwned(new_ref(v)));
    let key = K::from_py(k.0).map_err(|e| ArgError::Entry(PyOwned(new_ref(k.0)), "key", ::std::any::type_name::<K>(), Box::new(e)))?;
    let val = V::from_py(v.0).map_err(|e| ArgError::Entry(PyOwned(new_ref(k.0)), "value", ::std::any::type_name::<V>(), Box::new(e)))?;
    put(key, val);
    Ok(())
}

/// Reads the entries of a dict (directly) or of any mapping (its `items()`), converted.
pub unsafe fn map_from_py<K: FromPy, V: FromPy>(o: *mut PyObject, mut put: impl FnMut(K, V)) -> Result<(), ArgError> {
    if is_dict(o) {
        let n = cf::PyDict_Size(o);
        let mut pos: isize = 0;
        let (mut k, mut v) = (::std::ptr::null_mut(), ::std::ptr::null_mut());
        while cf::PyDict_Next(o, &mut pos, &mut k, &mut v) != 0 {
            map_entry(k, v, &mut put)?;
        }
        if cf::PyDict_Size(o) != n {
            return Err(ArgError::Value("the dict changed size while it was converted"));
        }
        return Ok(());
    }
    // Any other mapping (as dict(m) reads it): something with keys() has items().
    if is_str(o) || cf::PyObject_HasAttrString(o, b"keys\0".as_ptr() as *const c_char) == 0 {
        return Err(ArgError::Type(""));
    }
    let items = PyOwned(cf::PyMapping_Items(o));
    if items.0.is_null() {
        return Err(ArgError::PyErr);
    }
    for i in 0..PyList_Size(items.0) {
        let pair = PyList_GetItem(items.0, i);
        if !is_tuple(pair) || PyTuple_Size(pair) != 2 {
            return Err(ArgError::Type("its items() are not (key, value) pairs"));
        }
        map_entry(PyTuple_GetItem(pair, 0), PyTuple_GetItem(pair, 1), &mut put)?;
    }
    Ok(())
}

/// Reads the items of any iterable (a set, list, generator...), converted.
pub unsafe fn set_from_py<T: FromPy>(o: *mut PyObject, mut put: impl FnMut(T)) -> Result<(), ArgError> {
    if is_dict(o) {
        return Err(ArgError::Type("a dict is not a set: pass set(d) or d.keys() for its keys"));
    }
    let it = PyOwned(cf::PyObject_GetIter(o));
    if it.0.is_null() {
        PyErr_Clear();
        return Err(ArgError::Type(""));
    }
    loop {
        let item = PyOwned(cf::PyIter_Next(it.0));
        if item.0.is_null() {
            return if PyErr_Occurred().is_null() { Ok(()) } else { Err(ArgError::PyErr) };
        }
        match T::from_py(item.0) {
            Ok(x) => put(x),
            Err(e) => return Err(ArgError::Entry(PyOwned(new_ref(item.0)), "element", ::std::any::type_name::<T>(), Box::new(e))),
        }
    }
}

/// A new dict of the converted entries (NULL with an exception set on failure).
pub unsafe fn dict_from_iter<K: IntoPy, V: IntoPy>(it: impl Iterator<Item = (K, V)>) -> *mut PyObject {
    let d = PyOwned(cf::PyDict_New());
    if d.0.is_null() {
        return ::std::ptr::null_mut();
    }
    for (k, v) in it {
        let (k, v) = (PyOwned(k.into_py_item()), PyOwned(v.into_py_item()));
        if k.0.is_null() || v.0.is_null() || cf::PyDict_SetItem(d.0, k.0, v.0) != 0 {
            return ::std::ptr::null_mut();
        }
    }
    new_ref(d.0)
}

/// A new set of the converted items (NULL with an exception set on failure).
pub unsafe fn set_from_iter<T: IntoPy>(it: impl Iterator<Item = T>) -> *mut PyObject {
    let s = PyOwned(cf::PySet_New(::std::ptr::null_mut()));
    if s.0.is_null() {
        return ::std::ptr::null_mut();
    }
    for x in it {
        let x = PyOwned(x.into_py_item());
        if x.0.is_null() || cf::PySet_Add(s.0, x.0) != 0 {
            return ::std::ptr::null_mut();
        }
    }
    new_ref(s.0)
}

impl<K: FromPy + Eq + ::std::hash::Hash, V: FromPy, S: ::std::hash::BuildHasher + Default> FromPy
    for ::std::collections::HashMap<K, V, S>
{
    unsafe fn from_py(o: *mut PyObject) -> Result<Self, ArgError> {
        // Sized once for a dict: growing rehashes every key already in.
        let n = if is_dict(o) { cf::PyDict_Size(o).max(0) as usize } else { 0 };
        let mut m = Self::with_capacity_and_hasher(n, S::default());
        map_from_py(o, |k, v| {
            m.insert(k, v);
        })?;
        Ok(m)
    }
}

impl<K: IntoPy, V: IntoPy, S> IntoPy for ::std::collections::HashMap<K, V, S> {
    unsafe fn into_py(self) -> *mut PyObject {
        dict_from_iter(self.into_iter())
    }
}

impl<K: FromPy + Ord, V: FromPy> FromPy for ::std::collections::BTreeMap<K, V> {
    unsafe fn from_py(o: *mut PyObject) -> Result<Self, ArgError> {
        let mut m = Self::new();
        map_from_py(o, |k, v| {
            m.insert(k, v);
        })?;
        Ok(m)
    }
}

impl<K: IntoPy, V: IntoPy> IntoPy for ::std::collections::BTreeMap<K, V> {
    unsafe fn into_py(self) -> *mut PyObject {
        dict_from_iter(self.into_iter())
    }
}

impl<T: FromPy + Eq + ::std::hash::Hash, S: ::std::hash::BuildHasher + Default> FromPy
    for ::std::collections::HashSet<T, S>
{
    unsafe fn from_py(o: *mut PyObject) -> Result<Self, ArgError> {
        let mut s = Self::default();
        set_from_py(o, |x| {
            s.insert(x);
        })?;
        Ok(s)
    }
}

impl<T: IntoPy, S> IntoPy for ::std::collections::HashSet<T, S> {
    unsafe fn into_py(self) -> *mut PyObject {
        set_from_iter(self.into_iter())
    }
}

impl<T: FromPy + Ord> FromPy for ::std::collections::BTreeSet<T> {
    unsafe fn from_py(o: *mut PyObject) -> Result<Self, ArgError> {
        let mut s = Self::new();
        set_from_py(o, |x| {
            s.insert(x);
        })?;
        Ok(s)
    }
}

impl<T: IntoPy> IntoPy for ::std::collections::BTreeSet<T> {
    unsafe fn into_py(self) -> *mut PyObject {
        set_from_iter(self.into_iter())
    }
}

// Lists of maps and sets (`Vec<HashMap<String, i64>>`), and maps and sets inside lists.
impl<K: FromPy + Eq + ::std::hash::Hash, V: FromPy, S: ::std::hash::BuildHasher + Default> VecItem
    for ::std::collections::HashMap<K, V, S>
{
}
impl<K: IntoPy, V: IntoPy, S> VecIntoPy for ::std::collections::HashMap<K, V, S> {}
impl<K: FromPy + Ord, V: FromPy> VecItem for ::std::collections::BTreeMap<K, V> {}
impl<K: IntoPy, V: IntoPy> VecIntoPy for ::std::collections::BTreeMap<K, V> {}
impl<T: FromPy + Eq + ::std::hash::Hash, S: ::std::hash::BuildHasher + Default> VecItem
    for ::std::collections::HashSet<T, S>
{
}
impl<T: IntoPy, S> VecIntoPy for ::std::collections::HashSet<T, S> {}
impl<T: FromPy + Ord> VecItem for ::std::collections::BTreeSet<T> {}
impl<T: IntoPy> VecIntoPy for ::std::collections::BTreeSet<T> {}

// ---------------------------------------------------------------------------
// `[T; N]`: exactly N items from a tuple, list or (numeric T) buffer; a tuple out.

impl<T: VecItem, const N: usize> FromPy for [T; N] {
    unsafe fn from_py(o: *mut PyObject) -> Result<Self, ArgError> {
        let v = vec_from_py::<T>(o)?;
        if v.len() != N {
            return Err(ArgError::Msg(CODE_VALUE, format!("expected exactly {} items, got {}", N, v.len())));
        }
        match <[T; N] as ::std::convert::TryFrom<Vec<T>>>::try_from(v) {
            Ok(a) => Ok(a),
            Err(_) => unreachable!("length checked"),
        }
    }
}

impl<T: IntoPy, const N: usize> IntoPy for [T; N] {
    unsafe fn into_py(self) -> *mut PyObject {
        let t = PyOwned(PyTuple_New(N as isize));
        if t.0.is_null() {
            return ::std::ptr::null_mut();
        }
        for (i, x) in self.into_iter().enumerate() {
            let item = x.into_py_item();
            if item.is_null() {
                return ::std::ptr::null_mut();
            }
            PyTuple_SetItem(t.0, i as isize, item); // steals `item`
        }
        new_ref(t.0)
    }
}

impl<T: VecItem, const N: usize> VecItem for [T; N] {}
impl<T: IntoPy, const N: usize> VecIntoPy for [T; N] {}

// ---------------------------------------------------------------------------
// `&[i128]` / `&[u128]`: no buffer format holds 128-bit integers, so the items are
// copied from a list, tuple or any other iterable of ints (range-checked).

/// Holder of a slice argument copied item by item from a sequence or iterable.
pub struct ListSliceArg<T: FromPy> {
    owned: Vec<T>,
}

impl<T: FromPy> ListSliceArg<T> {
    #[inline(always)]
    pub fn as_slice<'a>(&'a self) -> &'a [T] {
        &self.owned
    }
}

impl<T: FromPy> ArgHolder for ListSliceArg<T> {
    fn empty() -> Self {
        ListSliceArg { owned: Vec::new() }
    }

    unsafe fn fill(&mut self, o: *mut PyObject) -> Result<(), ArgError> {
        if is_list(o) || is_tuple(o) {
            self.owned = seq_to_vec::<T>(o)?;
            return Ok(());
        }
        if is_str(o) || is_dict(o) {
            return Err(ArgError::Type(""));
        }
        let list = PyOwned(cf::PySequence_List(o));
        if list.0.is_null() {
            PyErr_Clear();
            return Err(ArgError::Type(""));
        }
        self.owned = seq_to_vec::<T>(list.0)?;
        Ok(())
    }
}

impl<T: FromPy> MemSpan for ListSliceArg<T> {
    fn span(&self) -> (usize, usize) {
        (0, 0) // a copy: shares no memory with other arguments
    }
}

// ---------------------------------------------------------------------------
// `Option<H>` for parameter holders (`Option<&[T]>`, `Option<&mut [T]>`, N-d views):
// None passes None; anything else fills the inner holder in place.

pub struct OptArg<H: ArgHolder> {
    inner: H,
    some: bool,
}

impl<H: ArgHolder> OptArg<H> {
    /// The filled holder, or None for a None argument.
    #[inline(always)]
    pub fn as_mut(&mut self) -> Option<&mut H> {
        if self.some {
            Some(&mut self.inner)
        } else {
            None
        }
    }
}

impl<H: ArgHolder> ArgHolder for OptArg<H> {
    #[inline(always)]
    fn empty() -> Self {
        OptArg { inner: H::empty(), some: false }
    }

    #[inline(always)]
    unsafe fn fill(&mut self, o: *mut PyObject) -> Result<(), ArgError> {
        if is_none(o) {
            return Ok(());
        }
        self.inner.fill(o)?;
        self.some = true;
        Ok(())
    }

    #[inline(always)]
    fn releasing_gil(&mut self) {
        self.inner.releasing_gil();
    }
}

impl<H: ArgHolder + MemSpan> MemSpan for OptArg<H> {
    #[inline(always)]
    fn span(&self) -> (usize, usize) {
        if self.some {
            self.inner.span()
        } else {
            (0, 0)
        }
    }
}
