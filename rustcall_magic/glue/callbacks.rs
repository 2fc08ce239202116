
// ---------------------------------------------------------------------------
// Callbacks and iterators (glue/callbacks.rs, appended to the prelude).
//
// A callback parameter (`&dyn Fn(A) -> R`, `&mut dyn FnMut(..)`, `impl Fn(..)`) is a
// `Callback<fn(A) -> R>` holder: the Python object, borrowed for the call, and, when
// the object is a `%%rust` function of exactly that Rust signature, the "native shim"
// its module registered at init. The wrapper hands the user's function a closure that
// calls the shim directly (no Python), or else converts the arguments, calls the
// object with the GIL taken (PyGILState_Ensure: the wrapper may have released it)
// and converts the result.
//
// Every cell links its own copy of std, and a panic raised by one copy aborts the
// process when another copy's catch_unwind meets it. So nothing unwinds from one
// cell into another: a native shim catches its function's panic and returns it as plain
// data (`NativeFailure`), which the caller resumes as a panic of its own, and a Python exception (or a failed conversion)
// in a callback becomes a `PyCallbackError` panic payload of the calling cell, which
// unwinds the Rust frames (destructors run) up to the wrapper; there `raise_panic`
// restores the exception as it was, traceback included.
//
// A returned iterator is a `RustIterator` object owning the boxed Rust iterator;
// `next()` converts one item at a time.

pub mod __rc_cb_ffi {
    use super::PyObject;
    use ::std::os::raw::{c_char, c_int, c_void};

    unsafe extern "C" {
        pub fn PyObject_Vectorcall(c: *mut PyObject, args: *const *mut PyObject, nargsf: usize, kw: *mut PyObject) -> *mut PyObject;
        pub fn PyGILState_Ensure() -> c_int;
        pub fn PyGILState_Release(s: c_int);
        pub fn PyCFunction_GetSelf(o: *mut PyObject) -> *mut PyObject;
        pub fn PyCapsule_New(p: *mut c_void, name: *const c_char, destructor: *mut c_void) -> *mut PyObject;
        pub fn PyCapsule_GetPointer(c: *mut PyObject, name: *const c_char) -> *mut c_void;
        pub fn PyCallable_Check(o: *mut PyObject) -> c_int;
        pub fn PyDict_GetItemString(d: *mut PyObject, k: *const c_char) -> *mut PyObject;
        pub fn PyDict_SetItemString(d: *mut PyObject, k: *const c_char, v: *mut PyObject) -> c_int;
        pub fn PyDict_New() -> *mut PyObject;
        pub fn PyErr_SetObject(t: *mut PyObject, v: *mut PyObject);
        pub fn PyException_GetTraceback(e: *mut PyObject) -> *mut PyObject;
        pub fn PyThreadState_GetDict() -> *mut PyObject;
        pub fn PyInterpreterState_Get() -> *mut c_void;
        pub fn PyInterpreterState_GetDict(i: *mut c_void) -> *mut PyObject;
        pub fn PyDict_DelItemString(d: *mut PyObject, k: *const c_char) -> c_int;
        pub fn PyDict_GetItem(d: *mut PyObject, k: *mut PyObject) -> *mut PyObject;
        pub fn PyDict_SetItem(d: *mut PyObject, k: *mut PyObject, v: *mut PyObject) -> c_int;
        pub fn PyDict_DelItem(d: *mut PyObject, k: *mut PyObject) -> c_int;
        pub fn PyUnicode_InternFromString(s: *const c_char) -> *mut PyObject;
        pub fn PyObject_GetAttr(o: *mut PyObject, name: *mut PyObject) -> *mut PyObject;
        pub static mut PyCFunction_Type: PyObject;
        pub static mut PyExc_TypeError: *mut PyObject;
    }
}

use self::__rc_cb_ffi as cbffi;

pub const PY_VECTORCALL_ARGUMENTS_OFFSET: usize = 1 << (8 * ::std::mem::size_of::<usize>() - 1);

/// A Python exception travelling through Rust frames as a panic payload (owned references).
pub struct PyCallbackError {
    t: *mut PyObject,
    v: *mut PyObject,
    tb: *mut PyObject,
}

// Only touched with the GIL held (taken in Drop when needed).
unsafe impl Send for PyCallbackError {}

impl PyCallbackError {
    /// Takes the pending exception (the GIL is held).
    pub unsafe fn fetch() -> PyCallbackError {
        let (mut t, mut v, mut tb) = (::std::ptr::null_mut(), ::std::ptr::null_mut(), ::std::ptr::null_mut());
        PyErr_Fetch(&mut t, &mut v, &mut tb);
        if t.is_null() {
            // A callable that returned NULL without an exception: CPython would raise SystemError.
            cbffi::PyErr_SetObject(cbffi::PyExc_TypeError, py_str("a callback failed without setting an exception"));
            PyErr_Fetch(&mut t, &mut v, &mut tb);
        }
        PyErr_NormalizeException(&mut t, &mut v, &mut tb);
        PyCallbackError { t: t, v: v, tb: tb }
    }

    /// Makes the exception pending again (the GIL is held); its traceback is kept.
    pub unsafe fn restore(mut self) {
        let (t, v, tb) = (self.t, self.v, self.tb);
        self.t = ::std::ptr::null_mut();
        self.v = ::std::ptr::null_mut();
        self.tb = ::std::ptr::null_mut();
        PyErr_Restore(t, v, tb);
    }
}

impl Drop for PyCallbackError {
    fn drop(&mut self) {
        if self.t.is_null() && self.v.is_null() {
            return;
        }
        // Caught and dropped by the user's code (catch_unwind): release it with the GIL.
        unsafe {
            let g = cbffi::PyGILState_Ensure();
            Py_DecRef(self.t);
            Py_DecRef(self.v);
            Py_DecRef(self.tb);
            cbffi::PyGILState_Release(g);
        }
    }
}

/// Unwinds the Rust frames with the pending Python exception (the GIL is held by `g`, released here).
#[cold]
#[inline(never)]
pub unsafe fn unwind_with_pending(g: c_int) -> ! {
    let e = PyCallbackError::fetch();
    cbffi::PyGILState_Release(g);
    ::std::panic::resume_unwind(Box::new(e))
}

/// A `%%rust` function's native entry: moves the argument tuple out of `args`, writes the
/// result to `ret`; NULL on success, else the function's panic as a `NativeFailure` (plain
/// data: no Python, so a shim runs on any thread without the GIL, on every path).
pub type NativeShim = unsafe extern "C" fn(args: *mut u8, ret: *mut u8) -> *mut NativeFailure;

/// A panic of a function of another cell, described in memory that cell frees (`free`).
#[repr(C)]
pub struct NativeFailure {
    pub function: *const u8,
    pub function_len: usize,
    pub message: *const u8,
    pub message_len: usize,
    /// Null when the panic has no location.
    pub file: *const u8,
    pub file_len: usize,
    pub line: u32,
    pub column: u32,
    /// The producer's own record of the strings, for `free`.
    pub owner: *mut c_void,
    pub free: unsafe extern "C" fn(*mut NativeFailure),
}

/// What a `NativeFailure` becomes in the calling cell: a panic payload that its wrapper
/// raises as RustPanic (with the other cell's function name and panic location).
pub struct NativePanic {
    pub function: String,
    pub message: String,
    pub location: Option<(String, u32, u32)>,
}

/// Turns a caught panic of a native function into a `NativeFailure` (this cell's memory).
#[cold]
#[inline(never)]
pub unsafe fn native_failure(function: &'static str, payload: Box<dyn Any + Send>) -> *mut NativeFailure {
    let message: String = if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_string()
    };
    // The payload's Drop is user code: keep its panic from escaping too.
    let _ = ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(move || drop(payload)));
    let loc = PANIC_LOCATION.with(|c| c.borrow_mut().take());
    let (file, line, column) = match loc {
        Some((f, l, c)) => (Some(f), l, c),
        None => (None, 0, 0),
    };
    let owned = Box::new((message, file));
    let f = NativeFailure {
        function: function.as_ptr(),
        function_len: function.len(),
        message: owned.0.as_ptr(),
        message_len: owned.0.len(),
        file: owned.1.as_ref().map_or(::std::ptr::null(), |f| f.as_ptr()),
        file_len: owned.1.as_ref().map_or(0, |f| f.len()),
        line: line,
        column: column,
        owner: Box::into_raw(owned) as *mut c_void,
        free: free_native_failure,
    };
    Box::into_raw(Box::new(f))
}

unsafe extern "C" fn free_native_failure(f: *mut NativeFailure) {
    let f = Box::from_raw(f);
    drop(Box::from_raw(f.owner as *mut (String, Option<String>)));
}

/// Reads a `NativeFailure` of another cell into this cell's memory and has that cell free it.
unsafe fn read_failure(f: *mut NativeFailure) -> NativePanic {
    let text = |p: *const u8, n: usize| String::from_utf8_lossy(::std::slice::from_raw_parts(p, n)).into_owned();
    let function = text((*f).function, (*f).function_len);
    let message = text((*f).message, (*f).message_len);
    let location = if (*f).file.is_null() { None } else { Some((text((*f).file, (*f).file_len), (*f).line, (*f).column)) };
    ((*f).free)(f);
    NativePanic { function: function, message: message, location: location }
}

/// Raises RustPanic for a native function's panic; always returns NULL.
#[cold]
#[inline(never)]
pub unsafe fn raise_native_panic(p: NativePanic) -> *mut PyObject {
    let (file, line, col) = match p.location {
        Some((f, l, c)) => (py_str(&f), l, c),
        None => (none(), 0, 0),
    };
    let (pl, pc) = (PyLong_FromLongLong(line as c_longlong), PyLong_FromLongLong(col as c_longlong));
    call_helper(RAISE_PANIC, &[py_str(&p.function), py_str(&p.message), file, pl, pc]);
    ::std::ptr::null_mut()
}

/// Resumes a native function's failure as this cell's panic (its wrapper raises RustPanic).
#[cold]
#[inline(never)]
pub unsafe fn resume_native_failure(f: *mut NativeFailure) -> ! {
    ::std::panic::resume_unwind(Box::new(read_failure(f)))
}

/// What a module registers per function in `__rustcall_native__` (a capsule's pointer).
/// `repr(C)`: the cell that reads it is another compilation.
#[repr(C)]
pub struct NativeEntry {
    pub sig: *const u8,
    pub sig_len: usize,
    /// None when the function's types cannot pass between cells natively.
    pub shim: Option<NativeShim>,
    /// The function as a `fn` pointer of the type named by `sig` (a shim that catches its
    /// panic and resumes it in the caller's cell, see `resume_elsewhere`); null with no shim.
    pub ptr: *const (),
    /// The resumer of the cell(s) passing this function as a `fn` pointer right now (null:
    /// none), how many such calls run, and how many of them are of another cell than the
    /// resumer's: while that is 0 the shim reports a panic without taking the GIL.
    pub resumer: ::std::sync::atomic::AtomicPtr<c_void>,
    pub users: ::std::sync::atomic::AtomicUsize,
    pub mixed: ::std::sync::atomic::AtomicUsize,
}

/// The capsule name says the layout of `NativeEntry` (cells of other glue versions do not match).
pub const NATIVE_CAPSULE: &[u8] = b"rustcall_magic.native.1\0";

/// A new dict for a module's native entries.
pub unsafe fn native_table() -> *mut PyObject {
    cbffi::PyDict_New()
}

/// Registers function `name` (NUL-terminated) with its fn pointer type's name and shim; the
/// entry (it lives as long as the process), or null on failure.
pub unsafe fn native_add(
    table: *mut PyObject,
    name: &'static [u8],
    sig: &'static str,
    shim: Option<NativeShim>,
    ptr: *const (),
) -> *const NativeEntry {
    let e = Box::into_raw(Box::new(NativeEntry {
        sig: sig.as_ptr(),
        sig_len: sig.len(),
        shim: shim,
        ptr: ptr,
        resumer: ::std::sync::atomic::AtomicPtr::new(::std::ptr::null_mut()),
        users: ::std::sync::atomic::AtomicUsize::new(0),
        mixed: ::std::sync::atomic::AtomicUsize::new(0),
    }));
    let cap = cbffi::PyCapsule_New(e as *mut c_void, NATIVE_CAPSULE.as_ptr() as *const c_char, ::std::ptr::null_mut());
    if cap.is_null() {
        return ::std::ptr::null();
    }
    let r = cbffi::PyDict_SetItemString(table, name.as_ptr() as *const c_char, cap);
    Py_DecRef(cap);
    if r != 0 { ::std::ptr::null() } else { e }
}

/// The `%%rust` function behind `o` (a builtin of a module with `__rustcall_native__`):
/// (its name, its entry); None for any other object.
pub unsafe fn native_entry(o: *mut PyObject) -> Option<(&'static ::std::ffi::CStr, &'static NativeEntry)> {
    if (*o).ob_type != ::std::ptr::addr_of_mut!(cbffi::PyCFunction_Type) {
        return None;
    }
    let m = cbffi::PyCFunction_GetSelf(o);
    if m.is_null() || is_none(m) {
        return None;
    }
    let attr = interned(::std::ptr::addr_of_mut!(NATIVE_ATTR_STR), b"__rustcall_native__\0");
    if attr.is_null() {
        PyErr_Clear();
        return None;
    }
    let table = cbffi::PyObject_GetAttr(m, attr);
    if table.is_null() {
        PyErr_Clear();
        return None;
    }
    // PyCFunctionObject: the header, then `m_ml` (its PyMethodDef).
    let def = *((o as *const u8).add(::std::mem::size_of::<PyObject>()) as *const *const PyMethodDef);
    let name = ::std::ffi::CStr::from_ptr((*def).ml_name);
    let cap = cbffi::PyDict_GetItemString(table, name.as_ptr());
    let found = if cap.is_null() {
        None
    } else {
        let p = cbffi::PyCapsule_GetPointer(cap, NATIVE_CAPSULE.as_ptr() as *const c_char);
        if p.is_null() {
            PyErr_Clear();
            None
        } else {
            Some((name, &*(p as *const NativeEntry)))
        }
    };
    Py_DecRef(table);
    found
}

/// Holder of a callback argument whose Rust signature is the fn pointer type `F`.
pub struct Callback<F> {
    obj: *mut PyObject,
    native: Option<NativeShim>,
    /// The thread of the call, and whether it released the GIL: a thread the Rust code
    /// started cannot take the GIL while that thread holds it (and waits for this one).
    owner: Option<::std::thread::ThreadId>,
    released: bool,
    _sig: ::std::marker::PhantomData<F>,
}

// The Python path takes the GIL for every call, and the shim of a native function is plain
// Rust: a callback may be shared with the threads the Rust function starts.
unsafe impl<F> Send for Callback<F> {}
unsafe impl<F> Sync for Callback<F> {}

impl<F: 'static> ArgHolder for Callback<F> {
    #[inline(always)]
    fn empty() -> Self {
        Callback { obj: ::std::ptr::null_mut(), native: None, owner: None, released: false, _sig: ::std::marker::PhantomData }
    }

    #[inline(always)]
    fn releasing_gil(&mut self) {
        self.released = true;
    }

    unsafe fn fill(&mut self, o: *mut PyObject) -> Result<(), ArgError> {
        if let Some((name, e)) = native_entry(o) {
            if let Some(shim) = e.shim {
                let theirs = ::std::str::from_utf8_unchecked(::std::slice::from_raw_parts(e.sig, e.sig_len));
                let ours = ::std::any::type_name::<F>();
                if theirs != ours {
                    return Err(ArgError::Msg(CODE_TYPE, format!(
                        "the %%rust function {}() has type `{}`, which is not `{}`", name.to_string_lossy(), theirs, ours)));
                }
                self.native = Some(shim);
            }
        } else if cbffi::PyCallable_Check(o) == 0 {
            return Err(ArgError::Type(""));
        }
        // Borrowed: the caller's argument array keeps it alive for the call.
        self.obj = o;
        self.owner = Some(::std::thread::current().id());
        Ok(())
    }
}

impl<F> Callback<F> {
    /// Calls the callback with the argument tuple `args` (converted, or moved to the native shim).
    #[inline(always)]
    pub unsafe fn call<A: CallArgs, R: CallRet>(&self, args: A) -> R {
        match self.native {
            Some(shim) => {
                let mut args = ::std::mem::ManuallyDrop::new(args);
                let mut ret = ::std::mem::MaybeUninit::<R>::uninit();
                // The shim moves the arguments out and writes the result.
                let e = shim(&mut *args as *mut A as *mut u8, ret.as_mut_ptr() as *mut u8);
                if !e.is_null() {
                    resume_native_failure(e);
                }
                ret.assume_init()
            }
            None => self.call_py(args),
        }
    }

    #[inline(never)]
    pub unsafe fn call_py<A: CallArgs, R: CallRet>(&self, args: A) -> R {
        if !self.released && self.owner != Some(::std::thread::current().id()) {
            // Waiting for the GIL here would wait forever: fail this thread instead.
            panic!("a Python callback was called from a thread the Rust code started while the calling thread \
                    holds the GIL; build the cell with --release-gil");
        }
        let g = cbffi::PyGILState_Ensure();
        let mut buf: [*mut PyObject; 13] = [::std::ptr::null_mut(); 13];
        let n = match args.into_py_args(&mut buf[1..]) {
            Some(n) => n,
            None => unwind_with_pending(g),
        };
        let r = cbffi::PyObject_Vectorcall(self.obj, buf.as_ptr().add(1), n | PY_VECTORCALL_ARGUMENTS_OFFSET, ::std::ptr::null_mut());
        for a in &buf[1..1 + n] {
            Py_DecRef(*a);
        }
        if r.is_null() {
            unwind_with_pending(g);
        }
        let v = R::from_callback(r);
        match v {
            Ok(v) => {
                Py_DecRef(r);
                cbffi::PyGILState_Release(g);
                v
            }
            Err(e) => {
                return_error::<R>(self.obj, r, e);
                Py_DecRef(r);
                unwind_with_pending(g)
            }
        }
    }
}

/// Sets the exception for a callback result `r` that does not convert to `R`.
#[cold]
#[inline(never)]
pub unsafe fn return_error<R>(callable: *mut PyObject, r: *mut PyObject, e: ArgError) {
    let got = ::std::ffi::CStr::from_ptr((*((*r).ob_type as *const PyTypeHead)).tp_name).to_string_lossy().into_owned();
    let what = ::std::ffi::CStr::from_ptr((*((*callable).ob_type as *const PyTypeHead)).tp_name).to_string_lossy().into_owned();
    let want = ::std::any::type_name::<R>().replace("alloc::string::", "").replace("core::option::", "");
    let (exc, detail) = match e {
        ArgError::PyErr => return,
        ArgError::Overflow => (PyExc_OverflowError, format!("an {} out of range for", got)),
        ArgError::Msg(_, m) => (cbffi::PyExc_TypeError, format!("{} ({}), expected", got, m)),
        ArgError::Value(m) | ArgError::Type(m) if !m.is_empty() => (cbffi::PyExc_TypeError, format!("{} ({}), expected", got, m)),
        _ => (cbffi::PyExc_TypeError, format!("{}, expected", got)),
    };
    PyErr_Clear();
    cbffi::PyErr_SetObject(exc, py_str(&format!("a callback ({} object) returned {} {}", what, detail, want)));
}

/// The argument tuple of a callback call: each item converted to a new reference.
pub trait CallArgs {
    /// Fills `out` and returns the count; None with an exception set (what was made is released).
    unsafe fn into_py_args(self, out: &mut [*mut PyObject]) -> Option<usize>;
}

impl CallArgs for () {
    #[inline(always)]
    unsafe fn into_py_args(self, _out: &mut [*mut PyObject]) -> Option<usize> {
        Some(0)
    }
}

macro_rules! call_args {
    ($($n:expr => ($($i:tt $t:ident),+);)*) => {$(
        impl<$($t: IntoPy),+> CallArgs for ($($t,)+) {
            #[inline(always)]
            unsafe fn into_py_args(self, out: &mut [*mut PyObject]) -> Option<usize> {
                $(
                    let o = self.$i.into_py();
                    if o.is_null() {
                        for a in &out[..$i] {
                            Py_DecRef(*a);
                        }
                        return None;
                    }
                    out[$i] = o;
                )+
                Some($n)
            }
        }
    )*};
}
call_args! {
    1 => (0 A);
    2 => (0 A, 1 B);
    3 => (0 A, 1 B, 2 C);
    4 => (0 A, 1 B, 2 C, 3 D);
    5 => (0 A, 1 B, 2 C, 3 D, 4 E);
    6 => (0 A, 1 B, 2 C, 3 D, 4 E, 5 F);
    7 => (0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G);
    8 => (0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H);
    9 => (0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H, 8 I);
    10 => (0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H, 8 I, 9 J);
    11 => (0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H, 8 I, 9 J, 10 K);
    12 => (0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H, 8 I, 9 J, 10 K, 11 L);
}

/// A callback's return value: converted from what the Python callable returned.
pub trait CallRet: Sized {
    unsafe fn from_callback(o: *mut PyObject) -> Result<Self, ArgError>;
}

impl<T: FromPy> CallRet for T {
    #[inline(always)]
    unsafe fn from_callback(o: *mut PyObject) -> Result<Self, ArgError> {
        T::from_py(o)
    }
}

impl CallRet for () {
    /// A callback of a `()` signature may return anything (a lambda's value is ignored).
    #[inline(always)]
    unsafe fn from_callback(_o: *mut PyObject) -> Result<Self, ArgError> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// `fn(A) -> R` pointers. A pointer carries no state, so the function handed to the user's code
// is the producing cell's typed shim (`__rc_p{i}`): it catches the panic of the function, but
// cannot unwind with it (its std is not the caller's). It resumes the panic with the
// "resumer" of the innermost wrapper taking a `fn` argument on this thread (the thread
// state's dict), or else of the last one entered in the process (threads the Rust code
// started): that cell's own `resume_unwind`.

pub const RESUME_KEY: &[u8] = b"rustcall_magic.resume\0";
pub const RESUME_CAPSULE: &[u8] = b"rustcall_magic.resumer\0";

/// Starts unwinding in this cell with another cell's panic `f` (which it frees).
pub type Resumer = unsafe extern "C-unwind" fn(f: *mut NativeFailure);

pub unsafe extern "C-unwind" fn resume_here(f: *mut NativeFailure) {
    resume_native_failure(f)
}

/// `RESUME_KEY` and `__rustcall_native__` as interned strs (made once: they are looked up on
/// every call that passes a `%%rust` function).
static mut RESUME_KEY_STR: *mut PyObject = ::std::ptr::null_mut();
static mut NATIVE_ATTR_STR: *mut PyObject = ::std::ptr::null_mut();

/// The interned str of `text` (NUL-terminated), cached in `slot`; null (exception set) on failure.
unsafe fn interned(slot: *mut *mut PyObject, text: &'static [u8]) -> *mut PyObject {
    if (*slot).is_null() {
        *slot = cbffi::PyUnicode_InternFromString(text.as_ptr() as *const c_char);
    }
    *slot
}

/// This cell's resumer as a capsule (made once).
pub static mut RESUMER: *mut PyObject = ::std::ptr::null_mut();

/// Holder of a `fn` pointer argument: the function of another (or this) cell, and this cell's
/// resumer installed for the call (the previous ones are restored on drop).
pub struct FnPtrArg<F> {
    ptr: *const (),
    prev: [*mut PyObject; 2],
    set: bool,
    entry: *const NativeEntry,
    mixed: bool,
    _sig: ::std::marker::PhantomData<F>,
}

impl<F: Copy + 'static> FnPtrArg<F> {
    #[inline(always)]
    pub unsafe fn get(&self) -> F {
        ::std::mem::transmute_copy::<*const (), F>(&self.ptr)
    }
}

unsafe fn resume_dicts() -> [*mut PyObject; 2] {
    [cbffi::PyThreadState_GetDict(), cbffi::PyInterpreterState_GetDict(cbffi::PyInterpreterState_Get())]
}

impl<F: Copy + 'static> ArgHolder for FnPtrArg<F> {
    #[inline(always)]
    fn empty() -> Self {
        FnPtrArg {
            ptr: ::std::ptr::null(),
            prev: [::std::ptr::null_mut(); 2],
            set: false,
            entry: ::std::ptr::null(),
            mixed: false,
            _sig: ::std::marker::PhantomData,
        }
    }

    unsafe fn fill(&mut self, o: *mut PyObject) -> Result<(), ArgError> {
        let ours = ::std::any::type_name::<F>();
        let (name, e) = match native_entry(o) {
            Some(found) => found,
            None => return Err(ArgError::Type("a `fn` pointer takes a %%rust function; declare the parameter \
                `&dyn Fn(..)` or `impl Fn(..)` to take any Python callable")),
        };
        let theirs = ::std::str::from_utf8_unchecked(::std::slice::from_raw_parts(e.sig, e.sig_len));
        if e.ptr.is_null() {
            return Err(ArgError::Msg(CODE_TYPE, format!(
                "the %%rust function {}() cannot be called natively by another cell (its types hold memory \
                 of its own allocator or of its cell)", name.to_string_lossy())));
        }
        if theirs != ours {
            return Err(ArgError::Msg(CODE_TYPE, format!(
                "the %%rust function {}() has type `{}`, which is not `{}`", name.to_string_lossy(), theirs, ours)));
        }
        if RESUMER.is_null() {
            RESUMER = cbffi::PyCapsule_New(resume_here as *mut c_void, RESUME_CAPSULE.as_ptr() as *const c_char, ::std::ptr::null_mut());
            if RESUMER.is_null() {
                return Err(ArgError::PyErr);
            }
        }
        let key = interned(::std::ptr::addr_of_mut!(RESUME_KEY_STR), RESUME_KEY);
        if key.is_null() {
            return Err(ArgError::PyErr);
        }
        let dicts = resume_dicts();
        for (k, d) in dicts.iter().enumerate() {
            if d.is_null() {
                continue;
            }
            let prev = cbffi::PyDict_GetItem(*d, key);
            Py_IncRef(prev);
            self.prev[k] = prev;
            if cbffi::PyDict_SetItem(*d, key, RESUMER) != 0 {
                return Err(ArgError::PyErr);
            }
        }
        self.set = true;
        self.ptr = e.ptr;
        // The lock-free way for the shim to find this cell (threads the Rust code starts
        // have no thread state of their own, and the GIL may be held by this thread).
        use ::std::sync::atomic::Ordering::SeqCst;
        let ours = resume_here as *mut c_void;
        e.users.fetch_add(1, SeqCst);
        match e.resumer.compare_exchange(::std::ptr::null_mut(), ours, SeqCst, SeqCst) {
            Ok(_) => {}
            Err(cur) if cur == ours => {}
            Err(_) => {
                e.mixed.fetch_add(1, SeqCst);
                self.mixed = true;
            }
        }
        self.entry = e as *const NativeEntry;
        Ok(())
    }
}

impl<F> Drop for FnPtrArg<F> {
    fn drop(&mut self) {
        if !self.set {
            return;
        }
        // Wrappers drop their holders with the GIL held (after taking it back under release_gil).
        unsafe {
            use ::std::sync::atomic::Ordering::SeqCst;
            let e = &*self.entry;
            if self.mixed {
                e.mixed.fetch_sub(1, SeqCst);
            }
            if e.users.fetch_sub(1, SeqCst) == 1 {
                let _ = e.resumer.compare_exchange(resume_here as *mut c_void, ::std::ptr::null_mut(), SeqCst, SeqCst);
            }
            // The call's exception, if any, stays pending across the dict updates.
            let (mut t, mut v, mut tb) = (::std::ptr::null_mut(), ::std::ptr::null_mut(), ::std::ptr::null_mut());
            PyErr_Fetch(&mut t, &mut v, &mut tb);
            // Made by `fill` (which set `self.set`).
            let key = RESUME_KEY_STR;
            let dicts = resume_dicts();
            for (k, d) in dicts.iter().enumerate() {
                if d.is_null() {
                    continue;
                }
                let prev = self.prev[k];
                if prev.is_null() {
                    cbffi::PyDict_DelItem(*d, key);
                    PyErr_Clear();
                } else {
                    cbffi::PyDict_SetItem(*d, key, prev);
                    Py_DecRef(prev);
                }
            }
            PyErr_Clear();
            PyErr_Restore(t, v, tb);
        }
    }
}

/// Resumes the panic `e` of the function of `entry` in the cell whose wrapper is calling
/// it through a `fn` pointer (see above). With no such wrapper the process cannot go on.
#[cold]
#[inline(never)]
pub unsafe fn resume_elsewhere(entry: *const NativeEntry, e: *mut NativeFailure) -> ! {
    use ::std::sync::atomic::Ordering::SeqCst;
    if !entry.is_null() && (*entry).mixed.load(SeqCst) == 0 {
        let r = (*entry).resumer.load(SeqCst);
        if !r.is_null() {
            // One cell passes this function right now: no need for the GIL to find it.
            (::std::mem::transmute::<*mut c_void, Resumer>(r))(e);
            ::std::process::abort()
        }
    }
    let g = cbffi::PyGILState_Ensure();
    let mut resumer: Option<Resumer> = None;
    for d in resume_dicts().iter() {
        if d.is_null() {
            continue;
        }
        let cap = cbffi::PyDict_GetItemString(*d, RESUME_KEY.as_ptr() as *const c_char);
        if !cap.is_null() {
            let p = cbffi::PyCapsule_GetPointer(cap, RESUME_CAPSULE.as_ptr() as *const c_char);
            if !p.is_null() {
                resumer = Some(::std::mem::transmute::<*mut c_void, Resumer>(p));
                break;
            }
            PyErr_Clear();
        }
    }
    cbffi::PyGILState_Release(g);
    match resumer {
        Some(r) => {
            r(e);
            ::std::process::abort()
        }
        None => {
            eprintln!("rustcall_magic: a %%rust function called through a `fn` pointer panicked with no wrapper to \
                       report to; aborting");
            ::std::process::abort()
        }
    }
}

// ---------------------------------------------------------------------------
// Iterators.

/// A `RustIterator` object: the header and the type-erased boxed iterator.
#[repr(C)]
pub struct IterObject {
    pub ob: PyObject,
    /// `Box<Box<dyn Iterator<Item = T>>>` as a raw pointer; null once exhausted or dropped.
    pub state: *mut c_void,
    /// Advances the iterator: a new reference, NULL at the end (no exception) or on error.
    pub next: unsafe fn(*mut c_void) -> *mut PyObject,
    pub drop: unsafe fn(*mut c_void),
}

/// This cell's `RustIterator` type (made on first use).
pub static mut ITER_TYPE: *mut PyObject = ::std::ptr::null_mut();

unsafe fn iter_next_of<T: IntoPy>(p: *mut c_void) -> *mut PyObject {
    let it = &mut *(p as *mut Box<dyn Iterator<Item = T>>);
    match it.next() {
        Some(v) => v.into_py(),
        None => ::std::ptr::null_mut(),
    }
}

unsafe fn iter_drop_of<T>(p: *mut c_void) {
    drop(Box::from_raw(p as *mut Box<dyn Iterator<Item = T>>));
}

/// Drops the Rust iterator of `o` (a panic in its Drop is contained and returned).
unsafe fn iter_release(o: *mut IterObject) -> Option<Box<dyn Any + Send>> {
    let p = ::std::mem::replace(&mut (*o).state, ::std::ptr::null_mut());
    if p.is_null() {
        return None;
    }
    let d = (*o).drop;
    ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(move || d(p))).err()
}

unsafe extern "C" fn iter_self(o: *mut PyObject) -> *mut PyObject {
    new_ref(o)
}

unsafe extern "C" fn iter_next(o: *mut PyObject) -> *mut PyObject {
    let it = o as *mut IterObject;
    let p = (*it).state;
    if p.is_null() {
        return ::std::ptr::null_mut();
    }
    let f = (*it).next;
    match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(move || f(p))) {
        Ok(r) => {
            if r.is_null() && PyErr_Occurred().is_null() {
                // Exhausted: the Rust iterator is dropped now, not when the object goes.
                if let Some(pp) = iter_release(it) {
                    return raise_panic("drop", pp);
                }
            }
            r
        }
        Err(payload) => {
            // An iterator that panicked is finished: later next() calls stop at once.
            let _ = iter_release(it);
            raise_panic("next", payload)
        }
    }
}

unsafe extern "C" fn iter_dealloc(o: *mut PyObject) {
    // No caller to raise to: a panic in the iterator's Drop is contained and dropped.
    let _ = iter_release(o as *mut IterObject);
    let t = (*o).ob_type;
    __rc_type_ffi::PyObject_Free(o as *mut c_void);
    Py_DecRef(t);
}

#[cold]
#[inline(never)]
pub unsafe fn iter_type() -> *mut PyObject {
    if !ITER_TYPE.is_null() {
        return ITER_TYPE;
    }
    let mut slots = [
        PyType_Slot { slot: Py_tp_iter, pfunc: iter_self as *mut c_void },
        PyType_Slot { slot: Py_tp_iternext, pfunc: iter_next as *mut c_void },
        PyType_Slot { slot: Py_tp_dealloc, pfunc: iter_dealloc as *mut c_void },
        PyType_Slot {
            slot: Py_tp_doc,
            pfunc: b"A lazy iterator over a Rust iterator's items (converted one by one).\0".as_ptr() as *mut c_void,
        },
        PyType_Slot { slot: 0, pfunc: ::std::ptr::null_mut() },
    ];
    let mut spec = PyType_Spec {
        name: b"rustcall_magic.RustIterator\0".as_ptr() as *const c_char,
        basicsize: ::std::mem::size_of::<IterObject>() as c_int,
        itemsize: 0,
        flags: Py_TPFLAGS_DEFAULT as ::std::os::raw::c_uint,
        slots: slots.as_mut_ptr(),
    };
    ITER_TYPE = __rc_type_ffi::PyType_FromSpec(&mut spec);
    ITER_TYPE
}

/// A new `RustIterator` owning `it`.
pub unsafe fn iter_into_py<T: IntoPy + 'static>(it: Box<dyn Iterator<Item = T>>) -> *mut PyObject {
    let t = iter_type();
    if t.is_null() {
        return t;
    }
    let o = __rc_type_ffi::PyType_GenericAlloc(t, 0);
    if o.is_null() {
        return o;
    }
    let io = o as *mut IterObject;
    (*io).state = Box::into_raw(Box::new(it)) as *mut c_void;
    (*io).next = iter_next_of::<T>;
    (*io).drop = iter_drop_of::<T>;
    o
}

impl<T: IntoPy + 'static> IntoPy for Box<dyn Iterator<Item = T>> {
    #[inline(always)]
    unsafe fn into_py(self) -> *mut PyObject {
        iter_into_py(self)
    }
}

impl<T: IntoPy + 'static> IntoPy for Box<dyn Iterator<Item = T> + Send> {
    #[inline(always)]
    unsafe fn into_py(self) -> *mut PyObject {
        iter_into_py(self as Box<dyn Iterator<Item = T>>)
    }
}
