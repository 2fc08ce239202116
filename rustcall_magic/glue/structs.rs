
// ---------------------------------------------------------------------------
// User types (glue/structs.rs, appended to the prelude): a cell's `pub struct`
// becomes a CPython heap type (PyType_FromSpec: no crates, no headers).
//
// An instance is an `Inst<T>`: the object header, a RefCell-like borrow count
// (> 0 shared borrows, -1 one `&mut`), a state byte and the Rust value. The
// value is dropped exactly once: by `.drop()` (or the end of a `with` block),
// or when the object is deallocated while still alive. Moves (`self` methods,
// by-value arguments) read the value out and mark the object moved; any later
// use raises RustHandleError, as does use of a dropped or poisoned instance or
// of a non-`Send` value from a thread other than its creator's.
//
// Which traits a type implements is found by rustc, not by reading the cell:
// `Probe::<T>::X` resolves to an inherent constant when `T` satisfies the
// bound, and to the trait default (None/false) otherwise. The generated code
// names concrete types only, so the choice is made at compile time.

pub mod __rc_type_ffi {
    use super::PyObject;
    use ::std::os::raw::{c_char, c_int, c_uint, c_ulong, c_void};

    #[repr(C)]
    pub struct PyType_Slot {
        pub slot: c_int,
        pub pfunc: *mut c_void,
    }

    #[repr(C)]
    pub struct PyType_Spec {
        pub name: *const c_char,
        pub basicsize: c_int,
        pub itemsize: c_int,
        pub flags: c_uint,
        pub slots: *mut PyType_Slot,
    }

    pub type Getter = unsafe extern "C" fn(*mut PyObject, *mut c_void) -> *mut PyObject;
    pub type Setter = unsafe extern "C" fn(*mut PyObject, *mut PyObject, *mut c_void) -> c_int;

    #[repr(C)]
    pub struct PyGetSetDef {
        pub name: *const c_char,
        pub get: Option<Getter>,
        pub set: Option<Setter>,
        pub doc: *const c_char,
        pub closure: *mut c_void,
    }

    unsafe extern "C" {
        pub fn PyType_FromSpec(spec: *mut PyType_Spec) -> *mut PyObject;
        pub fn PyType_FromSpecWithBases(spec: *mut PyType_Spec, bases: *mut PyObject) -> *mut PyObject;
        pub fn PyType_GenericAlloc(t: *mut PyObject, n: isize) -> *mut PyObject;
        pub fn PyObject_Free(p: *mut c_void);
        pub fn PyThread_get_thread_ident() -> c_ulong;
        pub fn PyErr_SetObject(t: *mut PyObject, v: *mut PyObject);
        pub fn PyModule_AddObject(m: *mut PyObject, name: *const c_char, o: *mut PyObject) -> c_int;
        pub fn PyDict_Next(d: *mut PyObject, pos: *mut isize, k: *mut *mut PyObject, v: *mut *mut PyObject) -> c_int;
        pub fn PyDict_Size(d: *mut PyObject) -> isize;
        pub fn PyObject_SetAttrString(o: *mut PyObject, name: *const c_char, v: *mut PyObject) -> c_int;
        pub fn PyCFunction_NewEx(def: *mut super::PyMethodDef, s: *mut PyObject, m: *mut PyObject) -> *mut PyObject;
        pub fn PyInstanceMethod_New(f: *mut PyObject) -> *mut PyObject;
        pub fn PyStaticMethod_New(f: *mut PyObject) -> *mut PyObject;
        pub fn PyDict_New() -> *mut PyObject;
        pub fn PyList_Append(l: *mut PyObject, o: *mut PyObject) -> c_int;
        pub fn PyDict_SetItemString(d: *mut PyObject, k: *const c_char, v: *mut PyObject) -> c_int;
        pub static mut _Py_NotImplementedStruct: PyObject;
        pub static mut PyExc_TypeError: *mut PyObject;
        pub static mut PyExc_ValueError: *mut PyObject;
    }
}

use self::__rc_type_ffi::{PyGetSetDef, PyType_Slot, PyType_Spec};

pub const Py_mp_length: c_int = 4;
pub const Py_nb_add: c_int = 7;
pub const Py_nb_multiply: c_int = 29;
pub const Py_nb_negative: c_int = 30;
pub const Py_nb_remainder: c_int = 34;
pub const Py_nb_subtract: c_int = 36;
pub const Py_nb_true_divide: c_int = 37;
pub const Py_tp_dealloc: c_int = 52;
pub const Py_tp_doc: c_int = 56;
pub const Py_tp_hash: c_int = 59;
pub const Py_tp_iter: c_int = 62;
pub const Py_tp_iternext: c_int = 63;
pub const Py_tp_methods: c_int = 64;
pub const Py_tp_new: c_int = 65;
pub const Py_tp_repr: c_int = 66;
pub const Py_tp_richcompare: c_int = 67;
pub const Py_tp_str: c_int = 70;
pub const Py_tp_getset: c_int = 73;
pub const METH_STATIC: c_int = 0x0020;
pub const Py_TPFLAGS_DEFAULT: u32 = 1 << 18;
pub const Py_TPFLAGS_BASETYPE: u32 = 1 << 10;

// Zero is never a live state: memory the interpreter allocated without our
// constructor (it cannot happen while tp_new is always set) reads as unusable.
pub const ST_ALIVE: u8 = 1;
pub const ST_MOVED: u8 = 2;
pub const ST_DROPPED: u8 = 3;
pub const ST_POISONED: u8 = 4;

pub type ReprFn = unsafe extern "C" fn(*mut PyObject) -> *mut PyObject;
pub type RichFn = unsafe extern "C" fn(*mut PyObject, *mut PyObject, c_int) -> *mut PyObject;
pub type HashFn = unsafe extern "C" fn(*mut PyObject) -> isize;
pub type BinFn = unsafe extern "C" fn(*mut PyObject, *mut PyObject) -> *mut PyObject;
pub type LenFn = unsafe extern "C" fn(*mut PyObject) -> isize;
pub type NewFn = unsafe extern "C" fn(*mut PyObject, *mut PyObject, *mut PyObject) -> *mut PyObject;

/// The object layout of every user type's instances.
#[repr(C)]
pub struct Inst<T> {
    pub ob: PyObject,
    pub borrow: isize,
    pub state: u8,
    /// The creating thread's ident, for types that are not `Send` (0 otherwise).
    pub owner: usize,
    /// The method whose panic poisoned the instance.
    pub poisoned_by: &'static str,
    /// This object's index in the module's live-instance list (`US_LIVE`).
    pub slot: usize,
    pub value: ::std::mem::MaybeUninit<T>,
}

/// One live instance of any of the module's types: the object, its type's name, state
/// reader and `Debug` text (the fields before `value` sit at the same offsets for every `T`).
pub struct LiveEntry {
    obj: *mut PyObject,
    name: &'static str,
    repr: Option<ReprFn>,
}

/// The module's instances whose objects exist (rows of `rc.live_handles()`). Only touched
/// with the interpreter lock held.
pub static mut US_LIVE: Vec<LiveEntry> = Vec::new();

/// Changes on every creation, move, drop, poisoning and deallocation of an instance: live
/// views poll it (`_rustcall_version()`) instead of being called per operation.
pub static mut US_VERSION: u64 = 0;

#[inline(always)]
pub unsafe fn bump() {
    US_VERSION = US_VERSION.wrapping_add(1);
}

/// `_rustcall_version()`: the module's instance-change counter.
pub unsafe extern "C" fn us_version(
    _m: *mut PyObject,
    _a: *const *mut PyObject,
    _n: isize,
    _k: *mut PyObject,
) -> *mut PyObject {
    PyLong_FromUnsignedLongLong(US_VERSION as c_ulonglong)
}

/// Implemented by the generated code for every exported user type of the cell.
pub unsafe trait UserType: Sized + 'static {
    /// The Rust name (as the cell spells it).
    const NAME: &'static str;
    /// `T: Send`: instances may be used from any thread.
    const SEND: bool;
    /// `T: Copy`: by-value uses copy instead of moving.
    const COPY: bool;
    /// `__repr__` from `Debug`, when the type has it (the preview of its registry rows).
    const DEBUG: Option<ReprFn>;
    /// The heap type object (set once by the module's init).
    unsafe fn type_object() -> *mut PyObject;
    /// An enum with data changes class with its variant (after a `&mut` borrow too).
    const RETYPE: bool = false;
    /// The class of an instance holding `v` (an enum's variant class).
    #[inline(always)]
    unsafe fn type_for(_v: &Self) -> *mut PyObject {
        Self::type_object()
    }
    /// True when `t` is the class of some instance of `T`.
    #[inline(always)]
    unsafe fn owns_type(t: *mut PyObject) -> bool {
        t == Self::type_object()
    }
}

pub static mut US_HANDLE_ERROR: *mut PyObject = ::std::ptr::null_mut();

/// Fetches what user types need from Python (RustHandleError); 0 on success.
pub unsafe fn init_user_types() -> c_int {
    let errors = PyImport_ImportModule(b"rustcall_magic.errors\0".as_ptr() as *const c_char);
    if errors.is_null() {
        return -1;
    }
    US_HANDLE_ERROR = PyObject_GetAttrString(errors, b"RustHandleError\0".as_ptr() as *const c_char);
    Py_DecRef(errors);
    if US_HANDLE_ERROR.is_null() { -1 } else { 0 }
}

/// Sets `exc` with message `msg` (the handles' raiser, under the name the generated code uses).
pub use self::rt_raise as us_raise;

#[inline(always)]
pub unsafe fn inst<T>(o: *mut PyObject) -> *mut Inst<T> {
    o as *mut Inst<T>
}

#[inline(always)]
pub unsafe fn thread_ident() -> usize {
    __rc_type_ffi::PyThread_get_thread_ident() as usize
}

/// RustHandleError for an instance that cannot be used (moved, dropped, poisoned, other thread).
#[cold]
#[inline(never)]
pub unsafe fn state_error<T: UserType>(i: *mut Inst<T>) -> ArgError {
    let msg = match (*i).state {
        ST_ALIVE => format!(
            "this `{}` is not `Send`: it can only be used by the thread that created it",
            T::NAME
        ),
        ST_MOVED => format!(
            "this `{}` was moved (consumed by a `self` method or passed by value); it can no longer be used",
            T::NAME
        ),
        ST_DROPPED => format!("this `{}` was dropped; it can no longer be used", T::NAME),
        ST_POISONED => format!(
            "this `{}` is poisoned: method `{}` panicked while it held `&mut self`",
            T::NAME,
            (*i).poisoned_by
        ),
        _ => format!("this `{}` was never initialized", T::NAME),
    };
    us_raise(US_HANDLE_ERROR, &msg);
    ArgError::PyErr
}

#[inline(always)]
pub unsafe fn usable<T: UserType>(i: *mut Inst<T>) -> Result<(), ArgError> {
    if (*i).state != ST_ALIVE || (!T::SEND && (*i).owner != thread_ident()) {
        return Err(state_error::<T>(i));
    }
    Ok(())
}

/// Attribute `name` (NUL-terminated) of `o` as text; "" when it is missing or not a str
/// (the error is cleared). For error messages.
#[cold]
#[inline(never)]
pub unsafe fn attr_text(o: *mut PyObject, name: &[u8]) -> String {
    let a = PyObject_GetAttrString(o, name.as_ptr() as *const c_char);
    let mut n: isize = 0;
    let s = if a.is_null() { ::std::ptr::null() } else { PyUnicode_AsUTF8AndSize(a, &mut n) };
    let text = if s.is_null() {
        String::new()
    } else {
        String::from_utf8_lossy(::std::slice::from_raw_parts(s as *const u8, n as usize)).into_owned()
    };
    Py_DecRef(a);
    PyErr_Clear();
    text
}

/// TypeError detail for an object that is not an instance of this cell's `T`.
#[cold]
#[inline(never)]
pub unsafe fn not_instance<T: UserType>(o: *mut PyObject) -> ArgError {
    let t = (*o).ob_type;
    let name_s = attr_text(t, b"__qualname__\0");
    let module_s = attr_text(t, b"__module__\0");
    let ours_s = attr_text(T::type_object(), b"__module__\0");
    if name_s == T::NAME && module_s != ours_s {
        return ArgError::Msg(
            CODE_TYPE,
            format!(
                "got a `{}` of another cell (module {}), but this function takes the `{}` of module {} \
                 (re-running a cell defines a new class; build a new instance)",
                T::NAME, module_s, T::NAME, ours_s
            ),
        );
    }
    ArgError::Type("")
}

#[inline(always)]
pub unsafe fn checked<T: UserType>(o: *mut PyObject) -> Result<*mut Inst<T>, ArgError> {
    if !T::owns_type((*o).ob_type) {
        return Err(not_instance::<T>(o));
    }
    let i = inst::<T>(o);
    usable::<T>(i)?;
    Ok(i)
}

#[cold]
#[inline(never)]
pub fn borrow_error(name: &str, wanted_mut: bool, held: isize) -> ArgError {
    let held_text = if held < 0 { "mutably borrowed (`&mut`)" } else { "borrowed (`&`)" };
    let wanted = if wanted_mut { "a `&mut` borrow" } else { "a `&` borrow" };
    ArgError::Msg(
        CODE_VALUE,
        format!(
            "this `{}` is already {} in this call, and {} must not alias it (Rust's borrowing rule): pass a clone",
            name, held_text, wanted
        ),
    )
}

/// The instance behind `o`, unborrowed until now, taken by the one exclusive borrow
/// (`&mut`, or reserved for a move): no other borrow may alias it.
#[inline(always)]
pub unsafe fn reserve<T: UserType>(o: *mut PyObject) -> Result<*mut Inst<T>, ArgError> {
    let i = unborrowed::<T>(o)?;
    (*i).borrow = -1;
    Ok(i)
}

/// The instance behind `o` when no borrow holds it.
#[inline(always)]
pub unsafe fn unborrowed<T: UserType>(o: *mut PyObject) -> Result<*mut Inst<T>, ArgError> {
    let i = checked::<T>(o)?;
    if (*i).borrow != 0 {
        return Err(borrow_error(T::NAME, true, (*i).borrow));
    }
    Ok(i)
}

/// Reads the value out of `i`: a `Copy` value is copied, any other is moved (the instance
/// becomes unusable).
#[inline(always)]
pub unsafe fn move_out<T: UserType>(i: *mut Inst<T>) -> T {
    let v = ::std::ptr::read((*i).value.as_ptr());
    if !T::COPY {
        (*i).state = ST_MOVED;
        bump();
    }
    v
}

/// `&T` argument or `&self`: a shared borrow for the duration of the call.
pub struct UserRef<T: UserType> {
    p: *mut Inst<T>,
}

impl<T: UserType> UserRef<T> {
    #[inline(always)]
    pub unsafe fn get(&self) -> &T {
        &*(*self.p).value.as_ptr()
    }
}

impl<T: UserType> ArgHolder for UserRef<T> {
    #[inline(always)]
    fn empty() -> Self {
        UserRef { p: ::std::ptr::null_mut() }
    }
    #[inline(always)]
    unsafe fn fill(&mut self, o: *mut PyObject) -> Result<(), ArgError> {
        let i = checked::<T>(o)?;
        if (*i).borrow < 0 {
            return Err(borrow_error(T::NAME, false, (*i).borrow));
        }
        (*i).borrow += 1;
        self.p = i;
        Ok(())
    }
}

impl<T: UserType> Drop for UserRef<T> {
    #[inline(always)]
    fn drop(&mut self) {
        if !self.p.is_null() {
            unsafe { (*self.p).borrow -= 1 };
        }
    }
}

/// `&mut T` argument or `&mut self`: the one borrow for the duration of the call.
pub struct UserMut<T: UserType> {
    p: *mut Inst<T>,
}

impl<T: UserType> UserMut<T> {
    #[inline(always)]
    pub unsafe fn get_mut(&mut self) -> &mut T {
        &mut *(*self.p).value.as_mut_ptr()
    }
    /// A panic left the value half-updated: no later use may see it (Rust's `Mutex` rule).
    #[cold]
    pub unsafe fn poison(&mut self, method: &'static str) {
        if !self.p.is_null() {
            (*self.p).state = ST_POISONED;
            (*self.p).poisoned_by = method;
            bump();
        }
    }
}

impl<T: UserType> ArgHolder for UserMut<T> {
    #[inline(always)]
    fn empty() -> Self {
        UserMut { p: ::std::ptr::null_mut() }
    }
    #[inline(always)]
    unsafe fn fill(&mut self, o: *mut PyObject) -> Result<(), ArgError> {
        self.p = reserve::<T>(o)?;
        Ok(())
    }
}

impl<T: UserType> Drop for UserMut<T> {
    #[inline(always)]
    fn drop(&mut self) {
        if !self.p.is_null() {
            unsafe {
                (*self.p).borrow = 0;
                if T::RETYPE && (*self.p).state == ST_ALIVE {
                    retype::<T>(self.p);
                }
            }
        }
    }
}

/// Gives an enum instance the class of its current variant (a `&mut` method may have changed it).
pub unsafe fn retype<T: UserType>(i: *mut Inst<T>) {
    let t = T::type_for(&*(*i).value.as_ptr());
    let o = i as *mut PyObject;
    if (*o).ob_type != t {
        Py_IncRef(t);
        let old = (*o).ob_type;
        (*o).ob_type = t;
        Py_DecRef(old);
    }
}

/// A by-value `T` argument or `self`: reserved at conversion (no other borrow may
/// alias it), moved out when the call starts; a `Copy` type is copied instead.
pub struct UserArg<T: UserType> {
    p: *mut Inst<T>,
}

impl<T: UserType> UserArg<T> {
    #[inline(always)]
    pub unsafe fn take(&mut self) -> T {
        let i = ::std::mem::replace(&mut self.p, ::std::ptr::null_mut());
        (*i).borrow = 0;
        move_out(i)
    }
}

impl<T: UserType> ArgHolder for UserArg<T> {
    #[inline(always)]
    fn empty() -> Self {
        UserArg { p: ::std::ptr::null_mut() }
    }
    #[inline(always)]
    unsafe fn fill(&mut self, o: *mut PyObject) -> Result<(), ArgError> {
        self.p = reserve::<T>(o)?;
        Ok(())
    }
}

impl<T: UserType> Drop for UserArg<T> {
    #[inline(always)]
    fn drop(&mut self) {
        if !self.p.is_null() {
            unsafe { (*self.p).borrow = 0 };
        }
    }
}

/// A `T` nested in another parameter type (`Option<T>`, `Vec<T>`, tuples): moved when converted.
pub unsafe fn user_from_py<T: UserType>(o: *mut PyObject) -> Result<T, ArgError> {
    Ok(move_out(unborrowed::<T>(o)?))
}

/// A new Python instance owning `v`.
pub unsafe fn user_into_py<T: UserType>(v: T) -> *mut PyObject {
    let o = __rc_type_ffi::PyType_GenericAlloc(T::type_for(&v), 0);
    if o.is_null() {
        drop(v);
        return o;
    }
    let i = inst::<T>(o);
    (*i).borrow = 0;
    (*i).state = ST_ALIVE;
    (*i).owner = if T::SEND { 0 } else { thread_ident() };
    (*i).poisoned_by = "";
    (*i).value = ::std::mem::MaybeUninit::new(v);
    let live = &mut *::std::ptr::addr_of_mut!(US_LIVE);
    (*i).slot = live.len();
    live.push(LiveEntry { obj: o, name: T::NAME, repr: T::DEBUG });
    bump();
    o
}

/// Runs the value's `Drop` (user code: a panic there is contained and handed back).
pub unsafe fn drop_value<T: UserType>(i: *mut Inst<T>) -> Option<Box<dyn Any + Send>> {
    let p = (*i).value.as_mut_ptr();
    ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| ::std::ptr::drop_in_place(p))).err()
}

/// Marks the instance dropped and runs the value's `Drop` (`.drop()`, the end of a `with` block).
pub unsafe fn drop_now<T: UserType>(i: *mut Inst<T>) -> Option<Box<dyn Any + Send>> {
    (*i).state = ST_DROPPED;
    bump();
    drop_value::<T>(i)
}

/// None, or RustPanic for a panic in `Drop` (the value is dropped either way).
pub unsafe fn dropped(panic: Option<Box<dyn Any + Send>>) -> *mut PyObject {
    match panic {
        None => none(),
        Some(p) => raise_panic("drop", p),
    }
}

pub unsafe extern "C" fn us_dealloc<T: UserType>(o: *mut PyObject) {
    let i = inst::<T>(o);
    let st = (*i).state;
    if st == ST_ALIVE || st == ST_POISONED {
        // A value that is not `Send` must not be dropped by another thread (its `Rc`
        // counts are not atomic): it is leaked instead.
        if T::SEND || (*i).owner == thread_ident() {
            // No caller to raise to: a panic in `Drop` here is contained and dropped.
            let _ = drop_value::<T>(i);
        }
    }
    bump();
    let live = &mut *::std::ptr::addr_of_mut!(US_LIVE);
    let slot = (*i).slot;
    live.swap_remove(slot);
    if slot < live.len() {
        (*inst::<()>(live[slot].obj)).slot = slot;
    }
    let t = (*o).ob_type;
    __rc_type_ffi::PyObject_Free(o as *mut c_void);
    Py_DecRef(t);
}

/// `_rustcall_instances()`: one (id, kind, state, preview) tuple per instance whose object
/// exists, oldest first; the preview is the `Debug` text of an alive value that has it.
pub unsafe extern "C" fn us_instances(
    _m: *mut PyObject,
    _a: *const *mut PyObject,
    _n: isize,
    _k: *mut PyObject,
) -> *mut PyObject {
    let live = &*::std::ptr::addr_of!(US_LIVE);
    let list = PyList_New(0);
    if list.is_null() {
        return list;
    }
    let me = thread_ident();
    for e in live.iter() {
        let h = inst::<()>(e.obj);
        let state = match (*h).state {
            ST_ALIVE => "alive",
            ST_MOVED => "moved",
            ST_DROPPED => "dropped",
            ST_POISONED => "poisoned",
            _ => "uninitialized",
        };
        // Debug is user code: only for a value no call is changing, on a thread that may read it.
        let readable = (*h).state == ST_ALIVE && (*h).borrow >= 0 && ((*h).owner == 0 || (*h).owner == me);
        let preview = match e.repr {
            Some(f) if readable => {
                let r = f(e.obj);
                if r.is_null() {
                    PyErr_Clear();
                    py_str("?")
                } else {
                    r
                }
            }
            _ => py_str("-"),
        };
        let row = PyTuple_New(4);
        PyTuple_SetItem(row, 0, PyLong_FromUnsignedLongLong(e.obj as usize as c_ulonglong));
        PyTuple_SetItem(row, 1, py_str(e.name));
        PyTuple_SetItem(row, 2, py_str(state));
        PyTuple_SetItem(row, 3, preview);
        __rc_type_ffi::PyList_Append(list, row);
        Py_DecRef(row);
    }
    list
}

/// Raises for a receiver that could not be borrowed; returns NULL.
#[cold]
#[inline(never)]
pub unsafe fn raise_self_error(e: ArgError) -> *mut PyObject {
    match e {
        ArgError::PyErr => {}
        ArgError::Msg(_, m) => us_raise(__rc_type_ffi::PyExc_ValueError, &m),
        _ => us_raise(__rc_type_ffi::PyExc_TypeError, "bad receiver"),
    }
    ::std::ptr::null_mut()
}

/// `.drop()`: runs `Drop` now; later use raises RustHandleError. Dropping twice is an error.
pub unsafe extern "C" fn us_drop<T: UserType>(
    o: *mut PyObject,
    _a: *const *mut PyObject,
    nargs: isize,
    kw: *mut PyObject,
) -> *mut PyObject {
    if nargs != 0 || (!kw.is_null() && PyTuple_Size(kw) != 0) {
        us_raise(__rc_type_ffi::PyExc_TypeError, "drop() takes no arguments");
        return ::std::ptr::null_mut();
    }
    let i = inst::<T>(o);
    if (*i).state == ST_POISONED && (T::SEND || (*i).owner == thread_ident()) {
        return dropped(drop_now::<T>(i));
    }
    if let Err(e) = usable::<T>(i) {
        return raise_self_error(e);
    }
    if (*i).borrow != 0 {
        us_raise(__rc_type_ffi::PyExc_ValueError, "cannot drop a value that is borrowed");
        return ::std::ptr::null_mut();
    }
    dropped(drop_now::<T>(i))
}

pub unsafe extern "C" fn us_enter<T: UserType>(
    o: *mut PyObject,
    _a: *const *mut PyObject,
    _n: isize,
    _k: *mut PyObject,
) -> *mut PyObject {
    if let Err(e) = usable::<T>(inst::<T>(o)) {
        return raise_self_error(e);
    }
    new_ref(o)
}

/// `__exit__`: drops the value unless it was already moved or dropped inside the block.
pub unsafe extern "C" fn us_exit<T: UserType>(
    o: *mut PyObject,
    _a: *const *mut PyObject,
    _n: isize,
    _k: *mut PyObject,
) -> *mut PyObject {
    let i = inst::<T>(o);
    let st = (*i).state;
    if (st == ST_ALIVE || st == ST_POISONED) && (*i).borrow == 0 && (T::SEND || (*i).owner == thread_ident()) {
        if let Some(p) = drop_now::<T>(i) {
            return raise_panic("drop", p);
        }
    }
    PyBool_FromLong(0)
}

/// `tp_new` of a type without a constructor.
pub unsafe extern "C" fn us_no_new<T: UserType>(
    _t: *mut PyObject,
    _a: *mut PyObject,
    _k: *mut PyObject,
) -> *mut PyObject {
    us_raise(
        __rc_type_ffi::PyExc_TypeError,
        &format!(
            "`{}` has no constructor: give it `pub fn new(...) -> Self`, make every field `pub`, or derive `Default`",
            T::NAME
        ),
    );
    ::std::ptr::null_mut()
}

/// The item array of a tuple (`PyTupleObject.ob_item`, after the variable-size object head).
#[inline(always)]
pub unsafe fn tuple_items(t: *mut PyObject) -> *const *mut PyObject {
    (t as *const u8).add(::std::mem::size_of::<PyObject>() + ::std::mem::size_of::<isize>()) as *const *mut PyObject
}

/// Calls the fastcall constructor `f` with a `tp_new`'s argument tuple and keyword dict.
#[inline(always)]
pub unsafe fn call_with_tuple(f: PyFastKwFn, args: *mut PyObject, kwds: *mut PyObject) -> *mut PyObject {
    let n = PyTuple_Size(args);
    if kwds.is_null() || __rc_type_ffi::PyDict_Size(kwds) == 0 {
        return f(::std::ptr::null_mut(), tuple_items(args), n, ::std::ptr::null_mut());
    }
    call_with_keywords(f, args, kwds)
}

#[cold]
#[inline(never)]
pub unsafe fn call_with_keywords(f: PyFastKwFn, args: *mut PyObject, kwds: *mut PyObject) -> *mut PyObject {
    let n = PyTuple_Size(args);
    let nkw = __rc_type_ffi::PyDict_Size(kwds);
    let mut all: Vec<*mut PyObject> = Vec::with_capacity((n + nkw) as usize);
    for k in 0..n {
        all.push(PyTuple_GetItem(args, k));
    }
    let names = PyTuple_New(nkw);
    if names.is_null() {
        return names;
    }
    let (mut pos, mut key, mut val, mut j) = (0isize, ::std::ptr::null_mut(), ::std::ptr::null_mut(), 0isize);
    while __rc_type_ffi::PyDict_Next(kwds, &mut pos, &mut key, &mut val) != 0 {
        PyTuple_SetItem(names, j, new_ref(key));
        all.push(val);
        j += 1;
    }
    let r = f(::std::ptr::null_mut(), all.as_ptr(), n, names);
    Py_DecRef(names);
    r
}

// ---- trait probes ----------------------------------------------------------

pub struct Probe<T>(::std::marker::PhantomData<T>);

pub trait NotCopy {
    const IS_COPY: bool = false;
}
impl<T> NotCopy for Probe<T> {}
impl<T: Copy> Probe<T> {
    pub const IS_COPY: bool = true;
}

pub trait NotSend {
    const IS_SEND: bool = false;
}
impl<T> NotSend for Probe<T> {}
impl<T: Send> Probe<T> {
    pub const IS_SEND: bool = true;
}

pub trait NoDefault {
    const DEFAULT: Option<fn() -> *mut PyObject> = None;
}
impl<T> NoDefault for Probe<T> {}
impl<T: Default + UserType> Probe<T> {
    pub const DEFAULT: Option<fn() -> *mut PyObject> = Some(default_new::<T>);
}
pub fn default_new<T: Default + UserType>() -> *mut PyObject {
    match ::std::panic::catch_unwind(|| T::default()) {
        Ok(v) => unsafe { user_into_py(v) },
        Err(p) => unsafe { raise_panic("default", p) },
    }
}

pub trait NoDebug {
    const REPR: Option<ReprFn> = None;
}
impl<T> NoDebug for Probe<T> {}
impl<T: ::std::fmt::Debug + UserType> Probe<T> {
    pub const REPR: Option<ReprFn> = Some(us_repr::<T>);
}

pub trait NoDisplay {
    const STR: Option<ReprFn> = None;
}
impl<T> NoDisplay for Probe<T> {}
impl<T: ::std::fmt::Display + UserType> Probe<T> {
    pub const STR: Option<ReprFn> = Some(us_str::<T>);
}

/// Applies `f` to the value behind `o` under a shared borrow (a panic becomes RustPanic `what`).
#[inline(always)]
pub unsafe fn with_ref<T: UserType, F: FnOnce(&T) -> *mut PyObject>(o: *mut PyObject, what: &str, f: F) -> *mut PyObject {
    let mut h: UserRef<T> = ArgHolder::empty();
    if let Err(e) = h.fill(o) {
        return raise_self_error(e);
    }
    match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| f(h.get()))) {
        Ok(r) => r,
        Err(p) => raise_panic(what, p),
    }
}

pub unsafe extern "C" fn us_repr<T: ::std::fmt::Debug + UserType>(o: *mut PyObject) -> *mut PyObject {
    with_ref::<T, _>(o, "fmt (Debug)", |v: &T| py_str(&format!("{:?}", v)))
}

pub unsafe extern "C" fn us_str<T: ::std::fmt::Display + UserType>(o: *mut PyObject) -> *mut PyObject {
    with_ref::<T, _>(o, "fmt (Display)", |v: &T| py_str(&format!("{}", v)))
}

pub trait NoClone {
    const CLONE: Option<PyFastKwFn> = None;
}
impl<T> NoClone for Probe<T> {}
impl<T: Clone + UserType> Probe<T> {
    pub const CLONE: Option<PyFastKwFn> = Some(us_clone::<T>);
}

/// `.clone()`, `copy.copy` and `copy.deepcopy` (a Rust clone owns its data: deep).
pub unsafe extern "C" fn us_clone<T: Clone + UserType>(
    o: *mut PyObject,
    _a: *const *mut PyObject,
    _n: isize,
    _k: *mut PyObject,
) -> *mut PyObject {
    with_ref::<T, _>(o, "clone", |x: &T| user_into_py(x.clone()))
}

pub const CMP_LT: c_int = 0;
pub const CMP_LE: c_int = 1;
pub const CMP_EQ: c_int = 2;
pub const CMP_NE: c_int = 3;
pub const CMP_GT: c_int = 4;
pub const CMP_GE: c_int = 5;

pub trait NoPartialEq {
    const RICH_EQ: Option<RichFn> = None;
}
impl<T> NoPartialEq for Probe<T> {}
impl<T: PartialEq + UserType> Probe<T> {
    pub const RICH_EQ: Option<RichFn> = Some(us_richcmp_eq::<T>);
}

pub trait NoPartialOrd {
    const RICH_ORD: Option<RichFn> = None;
}
impl<T> NoPartialOrd for Probe<T> {}
impl<T: PartialOrd + UserType> Probe<T> {
    pub const RICH_ORD: Option<RichFn> = Some(us_richcmp_ord::<T>);
}

pub unsafe fn not_implemented() -> *mut PyObject {
    let p = ::std::ptr::addr_of_mut!(__rc_type_ffi::_Py_NotImplementedStruct);
    Py_IncRef(p);
    p
}

/// Borrows both operands (shared) and applies `f`; NotImplemented when `b` is not a `T`.
pub unsafe fn with_pair<T: UserType>(
    a: *mut PyObject,
    b: *mut PyObject,
    what: &str,
    f: &dyn Fn(&T, &T) -> *mut PyObject,
) -> *mut PyObject {
    if !T::owns_type((*a).ob_type) || !T::owns_type((*b).ob_type) {
        return not_implemented();
    }
    let (mut ha, mut hb): (UserRef<T>, UserRef<T>) = (ArgHolder::empty(), ArgHolder::empty());
    if let Err(e) = ha.fill(a) {
        return raise_self_error(e);
    }
    if let Err(e) = hb.fill(b) {
        return raise_self_error(e);
    }
    match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| f(ha.get(), hb.get()))) {
        Ok(r) => r,
        Err(p) => raise_panic(what, p),
    }
}

pub unsafe extern "C" fn us_richcmp_eq<T: PartialEq + UserType>(a: *mut PyObject, b: *mut PyObject, op: c_int) -> *mut PyObject {
    if op != CMP_EQ && op != CMP_NE {
        return not_implemented();
    }
    with_pair::<T>(a, b, "eq", &|x: &T, y: &T| {
        let eq = x == y;
        PyBool_FromLong(if eq == (op == CMP_EQ) { 1 } else { 0 })
    })
}

pub unsafe extern "C" fn us_richcmp_ord<T: PartialOrd + UserType>(a: *mut PyObject, b: *mut PyObject, op: c_int) -> *mut PyObject {
    with_pair::<T>(a, b, "partial_cmp", &|x: &T, y: &T| {
        let r = match op {
            CMP_LT => x < y,
            CMP_LE => x <= y,
            CMP_EQ => x == y,
            CMP_NE => x != y,
            CMP_GT => x > y,
            _ => x >= y,
        };
        PyBool_FromLong(if r { 1 } else { 0 })
    })
}

pub trait NoHash {
    const HASH: Option<HashFn> = None;
}
impl<T> NoHash for Probe<T> {}
impl<T: ::std::hash::Hash + Eq + UserType> Probe<T> {
    pub const HASH: Option<HashFn> = Some(us_hash::<T>);
}

pub unsafe extern "C" fn us_hash<T: ::std::hash::Hash + Eq + UserType>(o: *mut PyObject) -> isize {
    use ::std::hash::Hasher;
    let mut h: UserRef<T> = ArgHolder::empty();
    if let Err(e) = h.fill(o) {
        raise_self_error(e);
        return -1;
    }
    match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| {
        let mut s = ::std::collections::hash_map::DefaultHasher::new();
        h.get().hash(&mut s);
        s.finish() as isize
    })) {
        Ok(-1) => -2, // -1 means "error" to the interpreter
        Ok(v) => v,
        Err(p) => {
            raise_panic("hash", p);
            -1
        }
    }
}

pub trait NoIterator {
    const NEXT: Option<ReprFn> = None;
}
impl<T> NoIterator for Probe<T> {}
impl<T: Iterator + UserType> Probe<T>
where
    T::Item: IntoPy,
{
    pub const NEXT: Option<ReprFn> = Some(us_next::<T>);
}

pub unsafe extern "C" fn us_iter_self(o: *mut PyObject) -> *mut PyObject {
    new_ref(o)
}

/// `__next__`: `Iterator::next` under a `&mut` borrow; None ends the iteration.
pub unsafe extern "C" fn us_next<T: Iterator + UserType>(o: *mut PyObject) -> *mut PyObject
where
    T::Item: IntoPy,
{
    let mut h: UserMut<T> = ArgHolder::empty();
    if let Err(e) = h.fill(o) {
        return raise_self_error(e);
    }
    match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| h.get_mut().next().map(|v| v.into_py()))) {
        Ok(Some(r)) => r,
        Ok(None) => ::std::ptr::null_mut(), // no exception set: StopIteration
        Err(p) => {
            h.poison("next");
            raise_panic("next", p)
        }
    }
}

/// Arithmetic on clones of both operands (Rust's operators consume them; Python's must not).
macro_rules! us_binop {
    ($probe:ident, $no:ident, $tr:ident, $method:ident, $f:ident) => {
        pub trait $no {
            const $probe: Option<BinFn> = None;
        }
        impl<T> $no for Probe<T> {}
        impl<T: ::std::ops::$tr<Output = O> + Clone + UserType, O: IntoPy> Probe<T> {
            pub const $probe: Option<BinFn> = Some($f::<T, O>);
        }
        pub unsafe extern "C" fn $f<T: ::std::ops::$tr<Output = O> + Clone + UserType, O: IntoPy>(
            a: *mut PyObject,
            b: *mut PyObject,
        ) -> *mut PyObject {
            with_pair::<T>(a, b, stringify!($method), &|x: &T, y: &T| {
                ::std::ops::$tr::$method(x.clone(), y.clone()).into_py()
            })
        }
    };
}
us_binop!(ADD, NoAdd, Add, add, us_add);
us_binop!(SUB, NoSub, Sub, sub, us_sub);
us_binop!(MUL, NoMul, Mul, mul, us_mul);
us_binop!(DIV, NoDiv, Div, div, us_div);
us_binop!(REM, NoRem, Rem, rem, us_rem);

pub trait NoNeg {
    const NEG: Option<ReprFn> = None;
}
impl<T> NoNeg for Probe<T> {}
impl<T: ::std::ops::Neg<Output = O> + Clone + UserType, O: IntoPy> Probe<T> {
    pub const NEG: Option<ReprFn> = Some(us_neg::<T, O>);
}
pub unsafe extern "C" fn us_neg<T: ::std::ops::Neg<Output = O> + Clone + UserType, O: IntoPy>(a: *mut PyObject) -> *mut PyObject {
    with_ref::<T, _>(a, "neg", |x: &T| (-x.clone()).into_py())
}

/// `a op r` for an instance `a` and a converted right-hand side `r` (on a clone of `a`:
/// Rust's operators consume their operands, Python's must not).
pub unsafe fn rhs_op<T: UserType + Clone, R, O: IntoPy>(a: *mut PyObject, r: R, what: &str, f: fn(T, R) -> O) -> *mut PyObject {
    with_ref::<T, _>(a, what, |x: &T| f(x.clone(), r).into_py())
}

/// `l op b` for a converted left-hand side `l` and an instance `b` (on a clone of `b`).
pub unsafe fn lhs_op<T: UserType + Clone, L, O: IntoPy>(l: L, b: *mut PyObject, what: &str, f: fn(L, T) -> O) -> *mut PyObject {
    with_ref::<T, _>(b, what, |x: &T| f(l, x.clone()).into_py())
}

/// What the generated code knows per type, beyond the probes.
pub struct TypeParts {
    pub name: &'static [u8],
    pub doc: &'static [u8],
    pub new: Option<NewFn>,
    pub methods: Vec<PyMethodDef>,
    pub getset: Vec<PyGetSetDef>,
    pub len: Option<LenFn>,
    /// Field names for positional `case S(a, b)` patterns.
    pub match_args: &'static [&'static str],
    /// An enum with data: one class per variant, subclasses of the enum's class.
    pub variants: Vec<VariantParts>,
    /// Number-protocol slots written for `impl Op<R> for S` (they replace the probes' `Self` ones).
    pub ops: Vec<(c_int, BinFn)>,
}

/// The class of one variant of an enum with data (`Shape.Circle`).
pub struct VariantParts {
    /// `module.Circle` (NUL-terminated) and the attribute of the enum's class, `Circle`.
    pub name: &'static [u8],
    pub attr: &'static str,
    pub doc: &'static [u8],
    pub new: NewFn,
    pub getset: Vec<PyGetSetDef>,
    pub match_args: &'static [&'static str],
}

/// `tp_new` of an enum with data but no `new`: its variants construct it.
pub unsafe extern "C" fn us_variant_new_only<T: UserType>(
    _t: *mut PyObject,
    _a: *mut PyObject,
    _k: *mut PyObject,
) -> *mut PyObject {
    us_raise(
        __rc_type_ffi::PyExc_TypeError,
        &format!("`{}` is an enum: construct one of its variants, e.g. `{}.<Variant>(...)`", T::NAME, T::NAME),
    );
    ::std::ptr::null_mut()
}

/// Sets `names` (field names) as `__match_args__` of class `t`; false with an exception set on failure.
pub unsafe fn set_match_args(t: *mut PyObject, names: &[&str]) -> bool {
    if names.is_empty() {
        return true;
    }
    let tuple = PyTuple_New(names.len() as isize);
    for (k, n) in names.iter().enumerate() {
        PyTuple_SetItem(tuple, k as isize, py_str(n));
    }
    let ok = __rc_type_ffi::PyObject_SetAttrString(t, b"__match_args__\0".as_ptr() as *const c_char, tuple);
    Py_DecRef(tuple);
    ok == 0
}

/// A type's property table, closed by its empty entry, for the life of the process (the
/// interpreter keeps a pointer to it; a cell's code is never unloaded).
pub fn leak_getset(mut getset: Vec<PyGetSetDef>) -> &'static mut [PyGetSetDef] {
    getset.push(PyGetSetDef {
        name: ::std::ptr::null(),
        get: None,
        set: None,
        doc: ::std::ptr::null(),
        closure: ::std::ptr::null_mut(),
    });
    Box::leak(getset.into_boxed_slice())
}

/// Creates the variant classes of enum class `base` into `out` (in variant order) and sets
/// each as an attribute of `base`; false with an exception set on failure.
pub unsafe fn make_variants(base: *mut PyObject, parts: Vec<VariantParts>, out: &mut [*mut PyObject]) -> bool {
    let bases = PyTuple_New(1);
    PyTuple_SetItem(bases, 0, new_ref(base));
    let base_name = PyObject_GetAttrString(base, b"__qualname__\0".as_ptr() as *const c_char);
    for (k, v) in parts.into_iter().enumerate() {
        let getset = leak_getset(v.getset);
        let mut slots = vec![
            PyType_Slot { slot: Py_tp_new, pfunc: v.new as *mut c_void },
            PyType_Slot { slot: Py_tp_doc, pfunc: v.doc.as_ptr() as *mut c_void },
            PyType_Slot { slot: Py_tp_getset, pfunc: getset.as_mut_ptr() as *mut c_void },
            PyType_Slot { slot: 0, pfunc: ::std::ptr::null_mut() },
        ];
        let mut spec = PyType_Spec {
            name: v.name.as_ptr() as *const c_char,
            basicsize: 0, // the enum's layout
            itemsize: 0,
            flags: Py_TPFLAGS_DEFAULT,
            slots: slots.as_mut_ptr(),
        };
        let t = __rc_type_ffi::PyType_FromSpecWithBases(&mut spec, bases);
        if t.is_null() {
            Py_DecRef(bases);
            Py_DecRef(base_name);
            return false;
        }
        out[k] = t; // kept for good, like the enum's class
        let vattr = format!("{}\0", v.attr);
        let mut n: isize = 0;
        let bn = if base_name.is_null() { ::std::ptr::null() } else { PyUnicode_AsUTF8AndSize(base_name, &mut n) };
        let qual = if bn.is_null() {
            v.attr.to_string()
        } else {
            format!("{}.{}", String::from_utf8_lossy(::std::slice::from_raw_parts(bn as *const u8, n as usize)), v.attr)
        };
        let q = py_str(&qual);
        let ok = __rc_type_ffi::PyObject_SetAttrString(t, b"__qualname__\0".as_ptr() as *const c_char, q) == 0
            && set_match_args(t, v.match_args)
            && __rc_type_ffi::PyObject_SetAttrString(base, vattr.as_ptr() as *const c_char, t) == 0;
        Py_DecRef(q);
        if !ok {
            Py_DecRef(bases);
            Py_DecRef(base_name);
            return false;
        }
    }
    Py_DecRef(bases);
    Py_DecRef(base_name);
    true
}

macro_rules! slot {
    ($s:expr, $id:expr, $f:expr) => {
        if let Some(f) = $f {
            $s.push(PyType_Slot { slot: $id, pfunc: f as *mut c_void });
        }
    };
}

pub fn method_def(name: &'static [u8], f: PyFastKwFn, doc: &'static [u8]) -> PyMethodDef {
    PyMethodDef {
        ml_name: name.as_ptr() as *const c_char,
        ml_meth: Some(f),
        ml_flags: METH_FASTCALL | METH_KEYWORDS,
        ml_doc: doc.as_ptr() as *const c_char,
    }
}

/// Creates the heap type of `T` from its generated parts and the traits rustc found;
/// adds it to module `m` under its name. NULL with an exception set on failure.
pub unsafe fn make_type<T: UserType>(
    m: *mut PyObject,
    parts: TypeParts,
    probes: Probes,
    variant_types: &mut [*mut PyObject],
) -> *mut PyObject {
    // The interpreter's allocator aligns objects to 16 bytes: a value needing more cannot live in one.
    if ::std::mem::align_of::<Inst<T>>() > 16 {
        us_raise(
            __rc_type_ffi::PyExc_TypeError,
            &format!("`{}` needs an alignment of {} bytes; Python objects are aligned to 16", T::NAME, ::std::mem::align_of::<T>()),
        );
        return ::std::ptr::null_mut();
    }
    let mut methods = parts.methods;
    methods.push(method_def(b"drop\0", us_drop::<T>, b"drop($self, /)\n--\n\nRun Rust's `Drop` now; later use raises RustHandleError.\0"));
    methods.push(method_def(b"__enter__\0", us_enter::<T>, b"\0"));
    methods.push(method_def(b"__exit__\0", us_exit::<T>, b"Drop the value at the end of the `with` block.\0"));
    if let Some(c) = probes.clone {
        methods.push(method_def(b"clone\0", c, b"clone($self, /)\n--\n\nA new instance holding `Clone::clone` of this value.\0"));
        methods.push(method_def(b"__copy__\0", c, b"\0"));
        methods.push(method_def(b"__deepcopy__\0", c, b"\0"));
    }
    methods.push(PyMethodDef { ml_name: ::std::ptr::null(), ml_meth: None, ml_flags: 0, ml_doc: ::std::ptr::null() });
    // The interpreter keeps pointers to the method and property tables: they live as
    // long as the process (a cell's code is never unloaded).
    let methods: &'static mut [PyMethodDef] = Box::leak(methods.into_boxed_slice());
    let getset = leak_getset(parts.getset);
    let mut slots: Vec<PyType_Slot> = Vec::new();
    let dealloc: unsafe extern "C" fn(*mut PyObject) = us_dealloc::<T>;
    slots.push(PyType_Slot { slot: Py_tp_dealloc, pfunc: dealloc as *mut c_void });
    let new: NewFn = parts.new.unwrap_or(us_no_new::<T>);
    slots.push(PyType_Slot { slot: Py_tp_new, pfunc: new as *mut c_void });
    slots.push(PyType_Slot { slot: Py_tp_doc, pfunc: parts.doc.as_ptr() as *mut c_void });
    slots.push(PyType_Slot { slot: Py_tp_methods, pfunc: methods.as_mut_ptr() as *mut c_void });
    slots.push(PyType_Slot { slot: Py_tp_getset, pfunc: getset.as_mut_ptr() as *mut c_void });
    slot!(slots, Py_tp_repr, probes.repr);
    slot!(slots, Py_tp_str, probes.str_);
    slot!(slots, Py_tp_richcompare, probes.rich_ord.or(probes.rich_eq));
    slot!(slots, Py_tp_hash, probes.hash);
    slot!(slots, Py_mp_length, parts.len);
    if probes.next.is_some() {
        let it: ReprFn = us_iter_self;
        slots.push(PyType_Slot { slot: Py_tp_iter, pfunc: it as *mut c_void });
    }
    slot!(slots, Py_tp_iternext, probes.next);
    let ops: &Vec<(c_int, BinFn)> = &parts.ops; // (closures before edition 2021 capture whole variables)
    let op = |id: c_int, probe: Option<BinFn>| ops.iter().find(|o| o.0 == id).map(|o| o.1).or(probe);
    slot!(slots, Py_nb_add, op(Py_nb_add, probes.add));
    slot!(slots, Py_nb_subtract, op(Py_nb_subtract, probes.sub));
    slot!(slots, Py_nb_multiply, op(Py_nb_multiply, probes.mul));
    slot!(slots, Py_nb_true_divide, op(Py_nb_true_divide, probes.div));
    slot!(slots, Py_nb_remainder, op(Py_nb_remainder, probes.rem));
    slot!(slots, Py_nb_negative, probes.neg);
    slots.push(PyType_Slot { slot: 0, pfunc: ::std::ptr::null_mut() });
    let mut spec = PyType_Spec {
        name: parts.name.as_ptr() as *const c_char,
        basicsize: ::std::mem::size_of::<Inst<T>>() as c_int,
        itemsize: 0,
        // Py_TPFLAGS_BASETYPE only for an enum, whose variant classes share its layout. Not
        // immutable: `__match_args__` and variant classes are set after creation.
        flags: Py_TPFLAGS_DEFAULT | if parts.variants.is_empty() { 0 } else { Py_TPFLAGS_BASETYPE },
        slots: slots.as_mut_ptr(),
    };
    let t = __rc_type_ffi::PyType_FromSpec(&mut spec);
    if t.is_null() {
        return t;
    }
    if !set_match_args(t, parts.match_args) || !make_variants(t, parts.variants, variant_types) {
        Py_DecRef(t);
        return ::std::ptr::null_mut();
    }
    let name: &'static [u8] = parts.name; // (closures of editions before 2021 capture whole variables)
    let short = name.iter().rposition(|&c| c == b'.').map(|k| &name[k + 1..]).unwrap_or(name);
    Py_IncRef(t);
    if __rc_type_ffi::PyModule_AddObject(m, short.as_ptr() as *const c_char, t) != 0 {
        Py_DecRef(t);
        Py_DecRef(t);
        return ::std::ptr::null_mut();
    }
    t
}

/// The protocol functions rustc found for one type (see `Probe`).
pub struct Probes {
    pub repr: Option<ReprFn>,
    pub str_: Option<ReprFn>,
    pub clone: Option<PyFastKwFn>,
    pub rich_eq: Option<RichFn>,
    pub rich_ord: Option<RichFn>,
    pub hash: Option<HashFn>,
    pub next: Option<ReprFn>,
    pub add: Option<BinFn>,
    pub sub: Option<BinFn>,
    pub mul: Option<BinFn>,
    pub div: Option<BinFn>,
    pub rem: Option<BinFn>,
    pub neg: Option<ReprFn>,
}

// ---- fieldless enums --------------------------------------------------------
// A fieldless `pub enum` is an enum.Enum subclass (rustcall_magic.usertypes) whose
// members are the values: a conversion is a pointer comparison with the members
// the module's init kept, a return hands out a new reference to one of them.

/// TypeError detail for an object that is not a member of this cell's enum `name`.
#[cold]
#[inline(never)]
pub unsafe fn enum_mismatch(o: *mut PyObject, cls: *mut PyObject, name: &str) -> ArgError {
    let t = (*o).ob_type;
    if t != cls && PyType_IsSubtype(t, cls) == 0 {
        if attr_text(t, b"__qualname__\0") == name {
            return ArgError::Msg(
                CODE_TYPE,
                format!(
                    "got a `{}` member of another cell, but this function takes the `{}` of its own cell \
                     (re-running a cell defines a new class)",
                    name, name
                ),
            );
        }
    }
    ArgError::Type("")
}

/// Makes the enum class of a fieldless enum, keeps its members in `members` (in variant
/// order) and adds it to module `m`. `methods`: (definition, static?) per exported fn.
pub unsafe fn make_enum(
    m: *mut PyObject,
    name: &str,
    doc: &str,
    variants: &[(&str, i64)],
    methods: Vec<(PyMethodDef, bool)>,
    members: &mut [*mut PyObject],
) -> *mut PyObject {
    let helpers = PyImport_ImportModule(b"rustcall_magic.usertypes\0".as_ptr() as *const c_char);
    if helpers.is_null() {
        return helpers;
    }
    let make = PyObject_GetAttrString(helpers, b"make_enum\0".as_ptr() as *const c_char);
    Py_DecRef(helpers);
    if make.is_null() {
        return make;
    }
    let module_name = PyObject_GetAttrString(m, b"__name__\0".as_ptr() as *const c_char);
    let list = PyList_New(variants.len() as isize);
    for (k, (v, d)) in variants.iter().enumerate() {
        let pair = PyTuple_New(2);
        PyTuple_SetItem(pair, 0, py_str(v));
        PyTuple_SetItem(pair, 1, PyLong_FromLongLong(*d as c_longlong));
        PyList_SetItem(list, k as isize, pair);
    }
    let dict = __rc_type_ffi::PyDict_New();
    for (def, is_static) in methods {
        // The function object keeps a pointer to its definition: it lives as long as the process.
        let def: &'static mut PyMethodDef = Box::leak(Box::new(def));
        let f = __rc_type_ffi::PyCFunction_NewEx(def, ::std::ptr::null_mut(), module_name);
        let d = if f.is_null() {
            f
        } else if is_static {
            __rc_type_ffi::PyStaticMethod_New(f)
        } else {
            __rc_type_ffi::PyInstanceMethod_New(f)
        };
        Py_DecRef(f);
        if d.is_null() || __rc_type_ffi::PyDict_SetItemString(dict, def.ml_name, d) != 0 {
            Py_DecRef(d);
            Py_DecRef(dict);
            Py_DecRef(list);
            Py_DecRef(module_name);
            Py_DecRef(make);
            return ::std::ptr::null_mut();
        }
        Py_DecRef(d);
    }
    let (pyname, pydoc) = (py_str(name), py_str(doc));
    let cls = PyObject_CallFunctionObjArgs(
        make,
        module_name,
        pyname,
        pydoc,
        list,
        dict,
        ::std::ptr::null_mut::<PyObject>(),
    );
    Py_DecRef(make);
    Py_DecRef(module_name);
    Py_DecRef(pyname);
    Py_DecRef(pydoc);
    Py_DecRef(list);
    Py_DecRef(dict);
    if cls.is_null() {
        return cls;
    }
    for (k, (v, _)) in variants.iter().enumerate() {
        let vname = format!("{}\0", v);
        members[k] = PyObject_GetAttrString(cls, vname.as_ptr() as *const c_char); // kept for good
        if members[k].is_null() {
            Py_DecRef(cls);
            return ::std::ptr::null_mut();
        }
    }
    let mname = format!("{}\0", name);
    Py_IncRef(cls);
    if __rc_type_ffi::PyModule_AddObject(m, mname.as_ptr() as *const c_char, cls) != 0 {
        Py_DecRef(cls);
        Py_DecRef(cls);
        return ::std::ptr::null_mut();
    }
    cls
}
