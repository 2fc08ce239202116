
// ---------------------------------------------------------------------------
// Ownership handles (glue/handles.rs, appended to the prelude): RustBox, RustRc,
// RustArc and RustVec passed to and returned from cell functions.
//
// The handle types live in the ownership runtime (rust_runtime/, module
// `_rustcall_runtime`). A cell reaches it through the C-ABI table the runtime
// exports as a capsule, fetched on first use: cells that never see a handle
// never load the runtime. Payloads move as raw parts (`Box::into_raw`,
// `Rc::into_raw`, `Vec` pointer/length/capacity): the runtime is built by the
// same toolchain as the cell and both use the global (system) allocator, so
// either library may free them.
//
// Arguments borrow handles for the duration of a call. The handle's `borrow`
// byte enforces Rust's aliasing rules across the arguments of one call
// (`f(&mut v, &v)` is refused); moves (`Box<T>`, `Rc<T>`, `Arc<T>`) happen
// when the call starts, so a failed conversion of a later argument leaves
// the handle untouched. A by-value `Vec<T>` moves when it is converted.

pub mod __rc_handle_ffi {
    use super::PyObject;
    use ::std::os::raw::{c_char, c_void};
    unsafe extern "C" {
        pub fn PyCapsule_GetPointer(capsule: *mut PyObject, name: *const c_char) -> *mut c_void;
        pub fn PyImport_GetModule(name: *mut PyObject) -> *mut PyObject;
        pub fn PyErr_SetObject(t: *mut PyObject, v: *mut PyObject);
        pub static mut PyExc_RuntimeError: *mut PyObject;
    }
}

/// The runtime's handle object layout (rust_runtime/src/handle.rs, ABI version 2).
#[repr(C)]
pub struct RtHandle {
    pub ob: PyObject,
    pub kind: u8,
    pub dtype: u8,
    pub state: u8,
    pub borrow: u8,
    pub slot: u32,
    pub id: u64,
    pub exports: isize,
    pub owner: usize,
    pub ptr: *mut u8,
    pub len: usize,
    pub cap: usize,
    /// A RustVec's N-d shape (runtime-owned; set through its `shape` attribute).
    pub shape: *mut c_void,
}

/// The runtime's C-ABI table (rust_runtime/src/abi.rs).
#[repr(C)]
pub struct RtAbi {
    pub version: u32,
    pub handle_size: u32,
    pub types: [*mut PyObject; 4],
    pub new_handle: unsafe extern "C" fn(u8, u8, *mut u8, usize, usize) -> *mut PyObject,
    pub check: unsafe extern "C" fn(*mut PyObject, u8) -> c_int,
    pub mark_moved: unsafe extern "C" fn(*mut PyObject),
}

pub const RT_ABI_VERSION: u32 = 2;
pub const KIND_BOX: u8 = 0;
pub const KIND_RC: u8 = 1;
pub const KIND_ARC: u8 = 2;
pub const KIND_VEC: u8 = 3;
pub const ACCESS_SHARED: u8 = 0;
pub const ACCESS_MUT: u8 = 1;
pub const ACCESS_MOVE: u8 = 2;
pub const BORROW_EXCLUSIVE: u8 = 255;
pub const KIND_NAMES: [&str; 4] = ["RustBox", "RustRc", "RustArc", "RustVec"];

pub static mut RT_ABI: *const RtAbi = ::std::ptr::null();
pub static mut RT_HANDLE_ERROR: *mut PyObject = ::std::ptr::null_mut();
pub static mut RT_NAME: *mut PyObject = ::std::ptr::null_mut();

#[cold]
#[inline(never)]
pub unsafe fn rt_raise(exc: *mut PyObject, msg: &str) {
    let m = py_str(msg);
    __rc_handle_ffi::PyErr_SetObject(exc, m);
    Py_DecRef(m);
}

/// The runtime's table if the runtime is already loaded in this process (no error set otherwise).
pub unsafe fn rt_loaded() -> Option<&'static RtAbi> {
    if !RT_ABI.is_null() {
        return Some(&*RT_ABI);
    }
    // Until the runtime is loaded this runs per call (a by-value Vec<T> given a buffer): keep the name.
    if RT_NAME.is_null() {
        RT_NAME = py_str("_rustcall_runtime");
    }
    let m = __rc_handle_ffi::PyImport_GetModule(RT_NAME);
    if m.is_null() {
        PyErr_Clear();
        return None;
    }
    let cap = PyObject_GetAttrString(m, b"_ABI\0".as_ptr() as *const c_char);
    Py_DecRef(m);
    if cap.is_null() {
        PyErr_Clear();
        return None;
    }
    // The runtime module (which holds the capsule) is never unloaded.
    let p = __rc_handle_ffi::PyCapsule_GetPointer(cap, b"_rustcall_runtime._ABI\0".as_ptr() as *const c_char)
        as *const RtAbi;
    Py_DecRef(cap);
    if p.is_null() {
        PyErr_Clear();
        return None;
    }
    if (*p).version != RT_ABI_VERSION || (*p).handle_size as usize != ::std::mem::size_of::<RtHandle>() {
        return None;
    }
    let errors = PyImport_ImportModule(b"rustcall_magic.errors\0".as_ptr() as *const c_char);
    if errors.is_null() {
        PyErr_Clear();
        return None;
    }
    RT_HANDLE_ERROR = PyObject_GetAttrString(errors, b"RustHandleError\0".as_ptr() as *const c_char);
    Py_DecRef(errors);
    if RT_HANDLE_ERROR.is_null() {
        PyErr_Clear();
        return None;
    }
    RT_ABI = p;
    Some(&*p)
}

/// The runtime's table, loading (at first use: building) the runtime; Err with an exception set.
pub unsafe fn rt_abi() -> Result<&'static RtAbi, ArgError> {
    if let Some(a) = rt_loaded() {
        return Ok(a);
    }
    let m = PyImport_ImportModule(b"rustcall_magic.runtime\0".as_ptr() as *const c_char);
    if m.is_null() {
        return Err(ArgError::PyErr);
    }
    let f = PyObject_GetAttrString(m, b"_abi_capsule\0".as_ptr() as *const c_char);
    Py_DecRef(m);
    if f.is_null() {
        return Err(ArgError::PyErr);
    }
    let cap = PyObject_CallFunctionObjArgs(f, ::std::ptr::null_mut::<PyObject>());
    Py_DecRef(f);
    if cap.is_null() {
        return Err(ArgError::PyErr);
    }
    Py_DecRef(cap);
    match rt_loaded() {
        Some(a) => Ok(a),
        None => {
            rt_raise(
                __rc_handle_ffi::PyExc_RuntimeError,
                "the rustcall ownership runtime loaded in this process does not match this cell's glue",
            );
            Err(ArgError::PyErr)
        }
    }
}

/// An element type a handle can hold; `DTYPE` is the runtime's dtype code.
pub trait HandleElem: Sized + 'static {
    const DTYPE: u8;
    const NAME: &'static str;
}

macro_rules! handle_elem {
    ($($t:ty => $code:expr, $name:expr);*) => {$(
        impl HandleElem for $t { const DTYPE: u8 = $code; const NAME: &'static str = $name; }
    )*};
}
handle_elem!(i8 => 0, "i8"; i16 => 1, "i16"; i32 => 2, "i32"; i64 => 3, "i64"; u8 => 4, "u8"; u16 => 5, "u16";
             u32 => 6, "u32"; u64 => 7, "u64"; f32 => 8, "f32"; f64 => 9, "f64"; bool => 10, "bool");
// Same size and alignment as i64/u64 on the 64-bit platforms CPython's layout is declared for.
handle_elem!(isize => 3, "i64"; usize => 7, "u64");

pub const DTYPE_NAMES: [&str; 11] = ["i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "f32", "f64", "bool"];

/// `o` as a handle of `kind` holding `T`, usable with `access`; errors explain what is wrong.
pub unsafe fn handle_arg<T: HandleElem>(o: *mut PyObject, kind: u8, access: u8) -> Result<*mut RtHandle, ArgError> {
    let abi = rt_abi()?;
    if (*o).ob_type != abi.types[kind as usize] {
        return Err(ArgError::Type(""));
    }
    let h = o as *mut RtHandle;
    if (*h).dtype != T::DTYPE {
        let got = DTYPE_NAMES.get((*h).dtype as usize).copied().unwrap_or("?");
        return Err(ArgError::Msg(
            CODE_TYPE,
            format!("a {}<{}>; the function needs {} elements", KIND_NAMES[kind as usize], got, T::NAME),
        ));
    }
    if (abi.check)(o, access) != 0 {
        return Err(ArgError::PyErr);
    }
    let free = if access == ACCESS_SHARED { (*h).borrow != BORROW_EXCLUSIVE } else { (*h).borrow == 0 };
    if !free {
        rt_raise(
            RT_HANDLE_ERROR,
            &format!(
                "{}<{}> #{} is already {} by another argument of this call (Rust forbids this aliasing)",
                KIND_NAMES[kind as usize],
                T::NAME,
                (*h).id,
                if (*h).borrow == BORROW_EXCLUSIVE { "mutably borrowed or moved" } else { "borrowed" }
            ),
        );
        return Err(ArgError::PyErr);
    }
    Ok(h)
}

/// A payload a handle can carry: built from (and written back to) the handle's raw parts.
pub trait Payload: Sized {
    const KIND: u8;
    type Elem: HandleElem;
    unsafe fn from_handle(h: &RtHandle) -> Self;
    /// The raw parts (ptr, len, cap) this payload becomes in a handle; ownership passes to it.
    fn into_parts(self) -> (*mut u8, usize, usize);
}

impl<T: HandleElem> Payload for Vec<T> {
    const KIND: u8 = KIND_VEC;
    type Elem = T;
    unsafe fn from_handle(h: &RtHandle) -> Self {
        Vec::from_raw_parts(h.ptr as *mut T, h.len, h.cap)
    }
    fn into_parts(self) -> (*mut u8, usize, usize) {
        let mut v = ::std::mem::ManuallyDrop::new(self);
        (v.as_mut_ptr() as *mut u8, v.len(), v.capacity())
    }
}

impl<T: HandleElem> Payload for Box<T> {
    const KIND: u8 = KIND_BOX;
    type Elem = T;
    unsafe fn from_handle(h: &RtHandle) -> Self {
        Box::from_raw(h.ptr as *mut T)
    }
    fn into_parts(self) -> (*mut u8, usize, usize) {
        (Box::into_raw(self) as *mut u8, 0, 0)
    }
}

impl<T: HandleElem> Payload for ::std::rc::Rc<T> {
    const KIND: u8 = KIND_RC;
    type Elem = T;
    unsafe fn from_handle(h: &RtHandle) -> Self {
        ::std::rc::Rc::from_raw(h.ptr as *const T)
    }
    fn into_parts(self) -> (*mut u8, usize, usize) {
        (::std::rc::Rc::into_raw(self) as *mut u8, 0, 0)
    }
}

impl<T: HandleElem> Payload for ::std::sync::Arc<T> {
    const KIND: u8 = KIND_ARC;
    type Elem = T;
    unsafe fn from_handle(h: &RtHandle) -> Self {
        ::std::sync::Arc::from_raw(h.ptr as *const T)
    }
    fn into_parts(self) -> (*mut u8, usize, usize) {
        (::std::sync::Arc::into_raw(self) as *mut u8, 0, 0)
    }
}

/// A new handle owning `p` (NULL with an exception set; `p` is then dropped here).
pub unsafe fn payload_into_handle<P: Payload>(p: P) -> *mut PyObject {
    let abi = match rt_abi() {
        Ok(a) => a,
        Err(_) => return ::std::ptr::null_mut(),
    };
    let (ptr, len, cap) = p.into_parts();
    let o = (abi.new_handle)(P::KIND, <P::Elem as HandleElem>::DTYPE, ptr, len, cap);
    if o.is_null() {
        let h = RtHandle {
            ob: PyObject { ob_refcnt: 1, ob_type: ::std::ptr::null_mut() },
            kind: P::KIND,
            dtype: 0,
            state: 0,
            borrow: 0,
            slot: 0,
            id: 0,
            exports: 0,
            owner: 0,
            ptr,
            len,
            cap,
            shape: ::std::ptr::null_mut(),
        };
        drop(P::from_handle(&h));
    }
    o
}

/// `&X` argument: the handle's payload, borrowed for the call.
pub struct HandleRef<P: Payload> {
    h: *mut RtHandle,
    val: Option<::std::mem::ManuallyDrop<P>>,
}

impl<P: Payload> HandleRef<P> {
    #[inline(always)]
    pub fn get(&self) -> &P {
        self.val.as_ref().expect("argument converted")
    }
}

impl<P: Payload> ArgHolder for HandleRef<P> {
    fn empty() -> Self {
        HandleRef { h: ::std::ptr::null_mut(), val: None }
    }
    unsafe fn fill(&mut self, o: *mut PyObject) -> Result<(), ArgError> {
        let h = handle_arg::<P::Elem>(o, P::KIND, ACCESS_SHARED)?;
        (*h).borrow += 1;
        self.h = h;
        self.val = Some(::std::mem::ManuallyDrop::new(P::from_handle(&*h)));
        Ok(())
    }
}

impl<P: Payload> Drop for HandleRef<P> {
    fn drop(&mut self) {
        if !self.h.is_null() {
            unsafe { (*self.h).borrow -= 1 };
        }
    }
}

/// `&mut Vec<T>` argument: mutably borrowed for the call; the (possibly reallocated)
/// parts are stored back into the handle when the call ends, after a panic too.
pub struct HandleMut<T: HandleElem> {
    h: *mut RtHandle,
    val: Option<::std::mem::ManuallyDrop<Vec<T>>>,
}

impl<T: HandleElem> HandleMut<T> {
    #[inline(always)]
    pub fn get_mut(&mut self) -> &mut Vec<T> {
        self.val.as_mut().expect("argument converted")
    }
}

impl<T: HandleElem> ArgHolder for HandleMut<T> {
    fn empty() -> Self {
        HandleMut { h: ::std::ptr::null_mut(), val: None }
    }
    unsafe fn fill(&mut self, o: *mut PyObject) -> Result<(), ArgError> {
        // ACCESS_MUT refuses a vector with live buffer views: the call may reallocate it.
        let h = handle_arg::<T>(o, KIND_VEC, ACCESS_MUT)?;
        (*h).borrow = BORROW_EXCLUSIVE;
        self.h = h;
        self.val = Some(::std::mem::ManuallyDrop::new(<Vec<T> as Payload>::from_handle(&*h)));
        Ok(())
    }
}

impl<T: HandleElem> Drop for HandleMut<T> {
    fn drop(&mut self) {
        if self.h.is_null() {
            return;
        }
        unsafe {
            if let Some(v) = self.val.as_mut() {
                (*self.h).ptr = v.as_mut_ptr() as *mut u8;
                (*self.h).len = v.len();
                (*self.h).cap = v.capacity();
            }
            (*self.h).borrow = 0;
        }
    }
}

/// `Box<T>` / `Rc<T>` / `Arc<T>` argument: reserved at conversion, moved out of the
/// handle when the call starts (the Python handle then reads `moved`).
pub struct HandleMove<P: Payload> {
    h: *mut RtHandle,
    _p: ::std::marker::PhantomData<P>,
}

impl<P: Payload> HandleMove<P> {
    #[inline(always)]
    pub unsafe fn take(&mut self) -> P {
        let h = ::std::mem::replace(&mut self.h, ::std::ptr::null_mut());
        let p = P::from_handle(&*h);
        (*h).borrow = 0;
        if let Some(abi) = rt_loaded() {
            (abi.mark_moved)(h as *mut PyObject);
        }
        p
    }
}

impl<P: Payload> ArgHolder for HandleMove<P> {
    fn empty() -> Self {
        HandleMove { h: ::std::ptr::null_mut(), _p: ::std::marker::PhantomData }
    }
    unsafe fn fill(&mut self, o: *mut PyObject) -> Result<(), ArgError> {
        let h = handle_arg::<P::Elem>(o, P::KIND, ACCESS_MOVE)?;
        (*h).borrow = BORROW_EXCLUSIVE;
        self.h = h;
        Ok(())
    }
}

impl<P: Payload> Drop for HandleMove<P> {
    fn drop(&mut self) {
        if !self.h.is_null() {
            // Not taken (a later argument failed): the handle keeps its value.
            unsafe { (*self.h).borrow = 0 };
        }
    }
}

impl<T: HandleElem> MemSpan for HandleRef<Vec<T>> {
    #[inline(always)]
    fn span(&self) -> (usize, usize) {
        let v = self.get();
        (v.as_ptr() as usize, v.len() * ::std::mem::size_of::<T>())
    }
}

impl<T: HandleElem> MemSpan for HandleMut<T> {
    #[inline(always)]
    fn span(&self) -> (usize, usize) {
        match self.val.as_ref() {
            Some(v) => (v.as_ptr() as usize, v.len() * ::std::mem::size_of::<T>()),
            None => (0, 0),
        }
    }
}

pub type VecRef<T> = HandleRef<Vec<T>>;
pub type VecMut<T> = HandleMut<T>;
pub type BoxRef<T> = HandleRef<Box<T>>;
pub type BoxArg<T> = HandleMove<Box<T>>;
pub type RcRef<T> = HandleRef<::std::rc::Rc<T>>;
pub type RcArg<T> = HandleMove<::std::rc::Rc<T>>;
pub type ArcRef<T> = HandleRef<::std::sync::Arc<T>>;
pub type ArcArg<T> = HandleMove<::std::sync::Arc<T>>;

/// Reserves a RustVec for a by-value `Vec<T>` parameter (None: not a RustVec).
/// The handle is marked exclusively borrowed until `vec_take_reserved_handle`
/// moves it at call start, or `vec_release_handle` gives it back.
pub unsafe fn vec_reserve_handle<T: HandleElem>(o: *mut PyObject) -> Option<Result<*mut c_void, ArgError>> {
    let abi = rt_loaded()?;
    if (*o).ob_type != abi.types[KIND_VEC as usize] {
        return None;
    }
    Some(handle_arg::<T>(o, KIND_VEC, ACCESS_MOVE).map(|h| {
        (*h).borrow = BORROW_EXCLUSIVE;
        h as *mut c_void
    }))
}

pub unsafe fn vec_take_reserved_handle<T: HandleElem>(h: *mut c_void) -> Vec<T> {
    let h = h as *mut RtHandle;
    let v = <Vec<T> as Payload>::from_handle(&*h);
    (*h).borrow = 0;
    if let Some(abi) = rt_loaded() {
        (abi.mark_moved)(h as *mut PyObject);
    }
    v
}

pub unsafe fn vec_release_handle(h: *mut c_void) {
    (*(h as *mut RtHandle)).borrow = 0;
}

/// A returned numeric `Vec<T>` becomes a RustVec (no copy).
#[inline]
pub unsafe fn vec_into_handle<T: HandleElem>(v: Vec<T>) -> *mut PyObject {
    payload_into_handle(v)
}

impl<T: HandleElem> IntoPy for Box<T> {
    unsafe fn into_py(self) -> *mut PyObject {
        payload_into_handle(self)
    }
}

impl<T: HandleElem> IntoPy for ::std::rc::Rc<T> {
    unsafe fn into_py(self) -> *mut PyObject {
        payload_into_handle(self)
    }
}

impl<T: HandleElem> IntoPy for ::std::sync::Arc<T> {
    unsafe fn into_py(self) -> *mut PyObject {
        payload_into_handle(self)
    }
}
