
// ---------------------------------------------------------------------------
// Generic functions (glue/generics.rs, appended to the prelude): `GenericDispatcher`,
// the fast path of a generic cell function. A cell with generic functions exports
// `_rustcall_dispatcher`, which makes one per function.
//
// A call looks at the arguments that carry type evidence, makes one token per
// argument (its type pointer; for a numpy array of native byte order, its dtype's
// scalar type), finds the instance registered for those tokens and calls its glue
// directly. Anything else (a miss, keywords, another argument count) goes to the
// Python owner (`rustcall_magic.generics.GenericFunction`), which infers, builds and
// registers. Every other attribute, `[]` and `repr` are the owner's, so the
// dispatcher stands for it in a namespace.
//
// Tokens are only registered for immortal types (builtins, numpy's scalar types):
// the owner decides which arguments qualify, and a token that a freed type's
// address could take again is never stored. The numpy offsets are checked by the
// owner on live objects before it passes them.

pub mod __rc_gd {
    #![allow(non_upper_case_globals)]
    use super::{none, PyObject, PyTuple_GetItem, PyTuple_Size, PyErr_Clear, PyErr_Occurred, Py_IncRef, Py_DecRef, _Py_NoneStruct, METH_FASTCALL, METH_KEYWORDS};
    use super::__rc_type_ffi::{PyType_FromSpec, PyType_Slot, PyType_Spec, PyObject_Free};
    use ::std::os::raw::{c_char, c_int, c_uint, c_void};
    use ::std::ptr::{addr_of_mut, null_mut};

    /// Most evidence-carrying positions the fast path keys on.
    const MAX_POS: usize = 4;
    /// Instances kept inside the object (no pointer to follow on a call); more go to `more`.
    const INLINE: usize = 6;
    /// Most instances the fast path remembers (later ones take the Python path).
    const MAX_ENTRIES: usize = 64;

    type VectorcallFn = unsafe extern "C" fn(*mut PyObject, *const *mut PyObject, usize, *mut PyObject) -> *mut PyObject;

    type FastKwFn = unsafe extern "C" fn(*mut PyObject, *const *mut PyObject, isize, *mut PyObject) -> *mut PyObject;

    #[derive(Clone, Copy)]
    struct Entry {
        tokens: [usize; MAX_POS],
        target: *mut PyObject,
        /// A builtin made by a cell's glue (METH_FASTCALL | METH_KEYWORDS) is called directly,
        /// with its self: the builtin's own vectorcall layer would only add a recursion check.
        meth: Option<FastKwFn>,
        slf: *mut PyObject,
    }

    /// The object layout.
    #[repr(C)]
    pub struct Dispatcher {
        ob: PyObject,
        vectorcall: Option<VectorcallFn>,
        owner: *mut PyObject,
        nargs: usize,
        npos: usize,
        positions: [usize; MAX_POS],
        /// `numpy.ndarray` (null: no numpy fast path) and the byte offsets of an array's
        /// descr, and of a descr's scalar type and byte-order character (checked by the owner).
        ndarray: *mut PyObject,
        descr_off: usize,
        typeobj_off: usize,
        byteorder_off: usize,
        len: usize,
        inline: [Entry; INLINE],
        more: *mut Vec<Entry>,
    }

    const NO_ENTRY: Entry = Entry { tokens: [0; MAX_POS], target: null_mut(), meth: None, slf: null_mut() };

    impl Dispatcher {
        unsafe fn entries(&self) -> impl Iterator<Item = &Entry> {
            self.inline[..self.len.min(INLINE)].iter().chain((*self.more).iter())
        }
    }

    #[repr(C)]
    struct PyMemberDef {
        name: *const c_char,
        type_code: c_int,
        offset: isize,
        flags: c_int,
        doc: *const c_char,
    }

    unsafe extern "C" {
        fn PyObject_Vectorcall(c: *mut PyObject, args: *const *mut PyObject, nargsf: usize, kw: *mut PyObject) -> *mut PyObject;
        fn PyVectorcall_Call(c: *mut PyObject, args: *mut PyObject, kw: *mut PyObject) -> *mut PyObject;
        fn PyObject_GetAttr(o: *mut PyObject, name: *mut PyObject) -> *mut PyObject;
        fn PyObject_GenericGetAttr(o: *mut PyObject, name: *mut PyObject) -> *mut PyObject;
        fn PyObject_GetItem(o: *mut PyObject, key: *mut PyObject) -> *mut PyObject;
        fn PyType_GenericAlloc(t: *mut PyObject, n: isize) -> *mut PyObject;
        fn PyLong_AsSize_t(o: *mut PyObject) -> usize;
        fn PyObject_Repr(o: *mut PyObject) -> *mut PyObject;
        fn PyUnicode_AsUTF8AndSize(o: *mut PyObject, n: *mut isize) -> *const c_char;
        fn PyUnicode_FromStringAndSize(s: *const c_char, n: isize) -> *mut PyObject;
        fn PyErr_SetObject(t: *mut PyObject, v: *mut PyObject);
        static mut PyExc_TypeError: *mut PyObject;
        static mut PyExc_ValueError: *mut PyObject;
        fn PyCFunction_GetFunction(o: *mut PyObject) -> *mut c_void;
        fn PyCFunction_GetSelf(o: *mut PyObject) -> *mut PyObject;
        fn PyCFunction_GetFlags(o: *mut PyObject) -> c_int;
        static mut PyCFunction_Type: PyObject;
    }


    #[repr(C)]
    struct MethodDef {
        ml_name: *const c_char,
        ml_meth: *const c_void,
        ml_flags: c_int,
        ml_doc: *const c_char,
    }

    type FastFn = unsafe extern "C" fn(*mut PyObject, *const *mut PyObject, isize) -> *mut PyObject;
    const Py_tp_dealloc: c_int = 52;
    const Py_tp_repr: c_int = 66;
    const Py_tp_methods: c_int = 64;
    const Py_TPFLAGS_DEFAULT: c_uint = 1 << 18;
    const Py_TPFLAGS_IMMUTABLETYPE: c_uint = 1 << 8;

    unsafe fn raise(exc: *mut PyObject, msg: &str) -> *mut PyObject {
        let m = PyUnicode_FromStringAndSize(msg.as_ptr() as *const c_char, msg.len() as isize);
        if !m.is_null() {
            PyErr_SetObject(exc, m);
            Py_DecRef(m);
        }
        null_mut()
    }

    unsafe fn str_bytes<'a>(o: *mut PyObject) -> Option<&'a [u8]> {
        let mut n: isize = 0;
        let p = PyUnicode_AsUTF8AndSize(o, &mut n);
        if p.is_null() {
            PyErr_Clear();
            return None;
        }
        Some(::std::slice::from_raw_parts(p as *const u8, n as usize))
    }

    const PY_VECTORCALL_ARGUMENTS_OFFSET: usize = 1 << (usize::BITS - 1);
    const Py_TPFLAGS_HAVE_VECTORCALL: c_uint = 1 << 11;
    const Py_tp_call: c_int = 50;
    const Py_tp_getattro: c_int = 58;
    const Py_tp_members: c_int = 72;
    const Py_mp_subscript: c_int = 5;
    const T_PYSSIZET: c_int = 19;
    const READONLY: c_int = 1;

    static mut GD_TYPE: *mut PyObject = null_mut();

    #[inline(always)]
    unsafe fn token(d: &Dispatcher, o: *mut PyObject) -> usize {
        let t = (*o).ob_type;
        if t == d.ndarray {
            let descr = *((o as *const u8).add(d.descr_off) as *const *const u8);
            let order = *descr.add(d.byteorder_off);
            if order != b'=' && order != b'|' {
                return 0;
            }
            // An array's token is its scalar type, tagged (a scalar of that type is another token).
            return *(descr.add(d.typeobj_off) as *const usize) | 1;
        }
        t as usize
    }

    unsafe extern "C" fn call(s: *mut PyObject, args: *const *mut PyObject, nargsf: usize, kw: *mut PyObject) -> *mut PyObject {
        let d = &*(s as *const Dispatcher);
        let n = nargsf & !PY_VECTORCALL_ARGUMENTS_OFFSET;
        if kw.is_null() && n == d.nargs {
            let mut tokens = [0usize; MAX_POS];
            for (k, &p) in d.positions[..d.npos].iter().enumerate() {
                tokens[k] = token(d, *args.add(p));
            }
            for e in d.entries() {
                if e.tokens == tokens {
                    return match e.meth {
                        Some(f) => f(e.slf, args, n as isize, kw),
                        None => PyObject_Vectorcall(e.target, args, nargsf, kw),
                    };
                }
            }
        }
        PyObject_Vectorcall(d.owner, args, nargsf, kw)
    }

    /// `register(args, target)`: calls with these arguments' tokens go to `target`.
    unsafe extern "C" fn register(s: *mut PyObject, a: *const *mut PyObject, n: isize) -> *mut PyObject {
        if n != 2 {
            return raise(PyExc_TypeError, "register(args, target) takes 2 arguments");
        }
        let d = &mut *(s as *mut Dispatcher);
        let (args, target) = (*a, *a.add(1));
        if PyTuple_Size(args) != d.nargs as isize {
            PyErr_Clear();
            return raise(PyExc_TypeError, "register(): args must be a tuple of the call's arguments");
        }
        let mut tokens = [0usize; MAX_POS];
        for (k, &p) in d.positions[..d.npos].iter().enumerate() {
            tokens[k] = token(d, PyTuple_GetItem(args, p as isize));
            if tokens[k] == 0 {
                return none();
            }
        }
        if d.len < MAX_ENTRIES && !d.entries().any(|e| e.tokens == tokens) {
            Py_IncRef(target);
            let mut meth = None;
            let mut slf = null_mut();
            if (*target).ob_type == std::ptr::addr_of_mut!(PyCFunction_Type)
                && PyCFunction_GetFlags(target) == METH_FASTCALL | METH_KEYWORDS
            {
                let f = PyCFunction_GetFunction(target);
                if !f.is_null() {
                    meth = Some(std::mem::transmute::<*mut c_void, FastKwFn>(f));
                    slf = PyCFunction_GetSelf(target); // borrowed: the target holds it
                }
            }
            let e = Entry { tokens, target, meth, slf };
            if d.len < INLINE {
                d.inline[d.len] = e;
            } else {
                (*d.more).push(e);
            }
            d.len += 1;
        }
        none()
    }

    /// `arrays(ndarray, descr_off, typeobj_off, byteorder_off)`: numpy was imported after this
    /// dispatcher was made; from now on an array's token is its dtype (no array token was
    /// registered before: the owner refuses arrays until then).
    unsafe extern "C" fn arrays(s: *mut PyObject, a: *const *mut PyObject, n: isize) -> *mut PyObject {
        if n != 4 {
            return raise(PyExc_TypeError, "arrays(ndarray, descr_off, typeobj_off, byteorder_off) takes 4 arguments");
        }
        let d = &mut *(s as *mut Dispatcher);
        let offs = (PyLong_AsSize_t(*a.add(1)), PyLong_AsSize_t(*a.add(2)), PyLong_AsSize_t(*a.add(3)));
        if !PyErr_Occurred().is_null() {
            return null_mut();
        }
        if d.ndarray.is_null() {
            Py_IncRef(*a);
            d.ndarray = *a;
            (d.descr_off, d.typeobj_off, d.byteorder_off) = offs;
        }
        none()
    }

    unsafe extern "C" fn getattro(s: *mut PyObject, name: *mut PyObject) -> *mut PyObject {
        if matches!(str_bytes(name), Some(b"register") | Some(b"arrays")) {
            return PyObject_GenericGetAttr(s, name);
        }
        PyObject_GetAttr((*(s as *mut Dispatcher)).owner, name)
    }

    unsafe extern "C" fn subscript(s: *mut PyObject, key: *mut PyObject) -> *mut PyObject {
        PyObject_GetItem((*(s as *mut Dispatcher)).owner, key)
    }

    unsafe extern "C" fn repr(s: *mut PyObject) -> *mut PyObject {
        PyObject_Repr((*(s as *mut Dispatcher)).owner)
    }

    unsafe extern "C" fn dealloc(s: *mut PyObject) {
        let d = &mut *(s as *mut Dispatcher);
        let t = (*s).ob_type;
        if !d.more.is_null() {
            for e in d.entries() {
                Py_DecRef(e.target);
            }
            drop(Box::from_raw(d.more));
        }
        if !d.owner.is_null() {
            Py_DecRef(d.owner);
        }
        PyObject_Free(s as *mut c_void);
        Py_DecRef(t);
    }

    static mut METHODS: [MethodDef; 3] = [
        MethodDef {
            ml_name: b"register\0".as_ptr() as *const c_char,
            ml_meth: register as FastFn as *const c_void,
            ml_flags: METH_FASTCALL,
            ml_doc: b"register(args, target)\n--\n\nCalls whose arguments have these arguments' types go to target.\0".as_ptr()
                as *const c_char,
        },
        MethodDef {
            ml_name: b"arrays\0".as_ptr() as *const c_char,
            ml_meth: arrays as FastFn as *const c_void,
            ml_flags: METH_FASTCALL,
            ml_doc: b"arrays(ndarray, descr_off, typeobj_off, byteorder_off)\n--\n\nKey numpy arrays by their dtype from now on.\0"
                .as_ptr() as *const c_char,
        },
        MethodDef { ml_name: null_mut(), ml_meth: null_mut(), ml_flags: 0, ml_doc: null_mut() },
    ];

    static mut MEMBERS: [PyMemberDef; 2] = [
        PyMemberDef {
            name: b"__vectorcalloffset__\0".as_ptr() as *const c_char,
            type_code: T_PYSSIZET,
            offset: std::mem::offset_of!(Dispatcher, vectorcall) as isize,
            flags: READONLY,
            doc: null_mut(),
        },
        PyMemberDef { name: null_mut(), type_code: 0, offset: 0, flags: 0, doc: null_mut() },
    ];

    unsafe fn dispatcher_type() -> *mut PyObject {
        if !GD_TYPE.is_null() {
            return GD_TYPE;
        }
        let slot = |s: c_int, p: *mut c_void| PyType_Slot { slot: s, pfunc: p };
        let slots = Box::leak(
            vec![
                slot(Py_tp_dealloc, dealloc as *mut c_void),
                slot(Py_tp_call, PyVectorcall_Call as *mut c_void),
                slot(Py_tp_getattro, getattro as *mut c_void),
                slot(Py_mp_subscript, subscript as *mut c_void),
                slot(Py_tp_repr, repr as *mut c_void),
                slot(Py_tp_methods, addr_of_mut!(METHODS) as *mut c_void),
                slot(Py_tp_members, addr_of_mut!(MEMBERS) as *mut c_void),
                slot(0, null_mut()),
            ]
            .into_boxed_slice(),
        );
        let spec = Box::leak(Box::new(PyType_Spec {
            name: b"rustcall_magic.GenericDispatcher\0".as_ptr() as *const c_char,
            basicsize: std::mem::size_of::<Dispatcher>() as c_int,
            itemsize: 0,
            flags: Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_HAVE_VECTORCALL,
            slots: slots.as_mut_ptr(),
        }));
        GD_TYPE = PyType_FromSpec(spec);
        GD_TYPE
    }

    /// `_rustcall_dispatcher(owner, nargs, positions, ndarray, descr_off, typeobj_off, byteorder_off)`
    /// (METH_FASTCALL | METH_KEYWORDS, like every method of a cell module).
    pub unsafe extern "C" fn dispatcher_new(
        _m: *mut PyObject,
        a: *const *mut PyObject,
        n: isize,
        kw: *mut PyObject,
    ) -> *mut PyObject {
        if n != 7 || (!kw.is_null() && PyTuple_Size(kw) != 0) {
            return raise(PyExc_TypeError, "_dispatcher() takes 7 arguments");
        }
        let t = dispatcher_type();
        if t.is_null() {
            return null_mut();
        }
        let size = |o: *mut PyObject| PyLong_AsSize_t(o);
        let nargs = size(*a.add(1));
        let pos = *a.add(2);
        let npos = PyTuple_Size(pos);
        if npos < 0 || npos as usize > MAX_POS {
            PyErr_Clear();
            return raise(PyExc_ValueError, "_dispatcher(): positions must be a tuple of at most 4 ints");
        }
        let mut positions = [0usize; MAX_POS];
        for (k, p) in positions.iter_mut().enumerate().take(npos as usize) {
            *p = size(PyTuple_GetItem(pos, k as isize));
            if *p >= nargs {
                return raise(PyExc_ValueError, "_dispatcher(): a position is not below nargs");
            }
        }
        let (descr_off, typeobj_off, byteorder_off) = (size(*a.add(4)), size(*a.add(5)), size(*a.add(6)));
        if !PyErr_Occurred().is_null() {
            return null_mut();
        }
        let ndarray = *a.add(3);
        let ndarray = if ndarray == std::ptr::addr_of_mut!(_Py_NoneStruct) { null_mut() } else { ndarray };
        let o = PyType_GenericAlloc(t, 0);
        if o.is_null() {
            return o;
        }
        let d = &mut *(o as *mut Dispatcher);
        d.vectorcall = Some(call);
        Py_IncRef(*a);
        d.owner = *a;
        d.nargs = nargs;
        d.npos = npos as usize;
        d.positions = positions;
        if !ndarray.is_null() {
            Py_IncRef(ndarray); // kept for the process: the type outlives every dispatcher anyway
        }
        d.ndarray = ndarray;
        d.descr_off = descr_off;
        d.typeobj_off = typeobj_off;
        d.byteorder_off = byteorder_off;
        d.len = 0;
        d.inline = [NO_ENTRY; INLINE];
        d.more = Box::into_raw(Box::new(Vec::new()));
        o
    }
}
