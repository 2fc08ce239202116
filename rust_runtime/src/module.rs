//! The extension module `_rustcall_runtime`: the four types, module functions, the
//! registry's Python entry points and the cell ABI capsule.

use crate::dtype::DType;
use crate::handle::*;
use crate::panic::guard;
use crate::pyffi::*;
use crate::registry::*;
use std::os::raw::{c_char, c_void};
use std::ptr::{addr_of_mut, null_mut};

type FastFn = unsafe extern "C" fn(*mut PyObject, *const *mut PyObject, isize) -> *mut PyObject;
type ObjFn = unsafe extern "C" fn(*mut PyObject, *mut PyObject) -> *mut PyObject;

unsafe fn arg_count(name: &str, n: isize, lo: isize, hi: isize) -> bool {
    if n < lo || n > hi {
        raise(PyExc_TypeError, &format!("{name}() takes {lo} to {hi} arguments ({n} given)"));
        return false;
    }
    true
}

/// `o` as a RustVec Python may read now; None with TypeError/RustHandleError set.
unsafe fn vec_arg<'a>(name: &str, o: *mut PyObject) -> Option<&'a mut Handle> {
    match as_kind(o, KIND_VEC) {
        Some(h) => {
            if check_read(h, "read").is_err() {
                None
            } else {
                Some(h)
            }
        }
        None => {
            raise(PyExc_TypeError, &format!("{name}() needs a RustVec"));
            None
        }
    }
}

unsafe extern "C" fn f_create_rust_vec(_m: *mut PyObject, a: *const *mut PyObject, n: isize) -> *mut PyObject {
    guard("create_rust_vec", null_mut(), || {
        if !arg_count("create_rust_vec", n, 1, 2) {
            return null_mut();
        }
        vec_from(*a, if n == 2 { *a.add(1) } else { null_mut() })
    })
}

unsafe extern "C" fn f_copy_to_python(_m: *mut PyObject, a: *const *mut PyObject, n: isize) -> *mut PyObject {
    guard("copy_to_python", null_mut(), || {
        if !arg_count("copy_to_python", n, 2, 2) {
            return null_mut();
        }
        match vec_arg("copy_to_python", *a) {
            Some(h) => copy_into(h, *a.add(1)),
            None => null_mut(),
        }
    })
}

unsafe extern "C" fn f_to_list(_m: *mut PyObject, v: *mut PyObject) -> *mut PyObject {
    guard("to_list", null_mut(), || match vec_arg("to_list", v) {
        Some(h) => to_list(h),
        None => null_mut(),
    })
}

unsafe extern "C" fn f_drop(_m: *mut PyObject, o: *mut PyObject) -> *mut PyObject {
    guard("drop", null_mut(), || {
        let h = match as_handle(o) {
            Some(h) => h,
            None => return raise(PyExc_TypeError, "drop() needs a RustBox, RustRc, RustArc or RustVec"),
        };
        // Rust's drop(x) consumes x: a second drop is a use after move. (drop_handle refuses
        // a handle lent to a running call.)
        if check_usable(h).is_err() {
            return null_mut();
        }
        match drop_handle(h) {
            Ok(()) => none(),
            Err(_) => null_mut(),
        }
    })
}

unsafe fn tuple(items: &[*mut PyObject]) -> *mut PyObject {
    let t = PyTuple_New(items.len() as isize);
    for (i, it) in items.iter().enumerate() {
        PyTuple_SetItem(t, i as isize, *it);
    }
    t
}

unsafe fn preview_alive(h: &Handle) -> *mut PyObject {
    let dt = dtype_of(h);
    // Lent exclusively to a running call: no reads, as everywhere else.
    if !may_read(h.borrow) {
        return if h.kind == KIND_VEC { tuple(&[PyLong_FromSize_t(h.data.len), none()]) } else { none() };
    }
    if h.kind == KIND_VEC {
        let n = h.data.len.min(8);
        let l = PyList_New(n as isize);
        for i in 0..n {
            PyList_SetItem(l, i as isize, crate::convert::to_py(crate::dtype::read(dt, h.data.elem_ptr(dt, i))));
        }
        return tuple(&[PyLong_FromSize_t(h.data.len), l]);
    }
    if h.kind == KIND_RC && h.owner != crate::rc::thread_token() {
        return none();
    }
    crate::convert::to_py(crate::dtype::read(dt, h.data.ptr))
}

unsafe fn row(r: &Record) -> *mut PyObject {
    let (strong, preview) = if r.state == STATE_ALIVE {
        let h = &*(r.obj as *mut Handle);
        let dt = dtype_of(h);
        let strong = match r.kind {
            KIND_RC => PyLong_FromSize_t(crate::rc::strong_count(dt, h.data.ptr)),
            KIND_ARC => PyLong_FromSize_t(crate::arc::strong_count(dt, h.data.ptr)),
            _ => PyLong_FromSize_t(1),
        };
        (strong, preview_alive(h))
    } else {
        let strong = match r.kind {
            KIND_RC | KIND_ARC => PyLong_FromSize_t(r.strong_left),
            _ => PyLong_FromSize_t(0),
        };
        let preview = match (r.kind, r.last) {
            (KIND_VEC, _) => tuple(&[PyLong_FromSize_t(r.last_len), none()]),
            (_, Some(s)) => crate::convert::to_py(s),
            _ => none(),
        };
        (strong, preview)
    };
    let origin = if r.origin == 0 { none() } else { incref(r.origin as *mut PyObject) };
    tuple(&[
        PyLong_FromUnsignedLongLong(r.id),
        py_str(KIND_NAMES[r.kind as usize]),
        py_str(DType::from_code(r.dtype).map(|d| d.name()).unwrap_or("?")),
        py_str(STATE_NAMES[r.state as usize]),
        strong,
        preview,
        origin,
        PyLong_FromLongLong(crate::handle::origin_line(r.origin, r.pos)),
    ])
}

unsafe extern "C" fn f_rows(_m: *mut PyObject, a: *const *mut PyObject, n: isize) -> *mut PyObject {
    guard("_rows", null_mut(), || {
        let with_ended = n < 1 || PyObject_IsTrue(*a) == 1;
        let reg = registry();
        let out = PyList_New(0);
        let mut recs: Vec<Record> = Vec::new();
        if with_ended {
            recs.extend(reg.ended().copied());
        }
        recs.extend(reg.alive().copied());
        recs.sort_by_key(|r| r.id);
        for r in &recs {
            let t = row(r);
            PyList_Append(out, t);
            Py_DecRef(t);
        }
        out
    })
}

unsafe extern "C" fn f_version(_m: *mut PyObject, _a: *mut PyObject) -> *mut PyObject {
    PyLong_FromUnsignedLongLong(registry().version())
}

unsafe extern "C" fn f_set_history(_m: *mut PyObject, n: *mut PyObject) -> *mut PyObject {
    let v = PyLong_AsSsize_t(n);
    if v < 0 {
        if PyErr_Occurred().is_null() {
            raise(PyExc_ValueError, "history size must be >= 0");
        }
        return null_mut();
    }
    for o in registry().set_history(v as usize) {
        release_origin(o);
    }
    none()
}

unsafe extern "C" fn f_stats(_m: *mut PyObject, _a: *mut PyObject) -> *mut PyObject {
    let reg = registry();
    let (created, ended) = reg.totals();
    let (allocs, frees) = *addr_of_mut!(PAYLOADS);
    tuple(&[
        PyLong_FromUnsignedLongLong(created),
        PyLong_FromUnsignedLongLong(ended),
        PyLong_FromSize_t(reg.alive_count()),
        PyLong_FromUnsignedLongLong(allocs),
        PyLong_FromUnsignedLongLong(frees),
    ])
}

macro_rules! cstr {
    ($s:expr) => {
        concat!($s, "\0").as_ptr() as *const c_char
    };
}

macro_rules! meth {
    ($name:expr, $f:expr, $flags:expr, $doc:expr) => {
        PyMethodDef { ml_name: cstr!($name), ml_meth: $f as *const c_void, ml_flags: $flags, ml_doc: cstr!($doc) }
    };
}

static mut METHODS: [PyMethodDef; 10] = [
    meth!("create_rust_vec", f_create_rust_vec as FastFn, METH_FASTCALL,
          "create_rust_vec(items, dtype=None)\n--\n\nA RustVec copied from a buffer (dtype from its format) or an iterable."),
    meth!("copy_to_python", f_copy_to_python as FastFn, METH_FASTCALL,
          "copy_to_python(vec, out)\n--\n\nCopy a RustVec into a writable buffer of the same item type; returns the count copied."),
    meth!("to_list", f_to_list as ObjFn, METH_O, "to_list(vec)\n--\n\nA RustVec's elements as a list."),
    meth!("drop", f_drop as ObjFn, METH_O,
          "drop(handle)\n--\n\nDrop a handle, as Rust's drop(x): a second drop raises RustHandleError."),
    meth!("_rows", f_rows as FastFn, METH_FASTCALL, "Registry rows (id, kind, dtype, state, strong, preview, code, line)."),
    meth!("_version", f_version as ObjFn, METH_NOARGS, "Registry version (changes on every event)."),
    meth!("_set_history", f_set_history as ObjFn, METH_O, "Keep at most N ended records."),
    meth!("_stats", f_stats as ObjFn, METH_NOARGS, "(created, ended, alive, payload allocs, payload frees)."),
    meth!("_select", f_select as FastFn, METH_FASTCALL,
          "_select(min_id, max_alive, max_ended)\n--\n\nNewest alive rows, latest ended rows, counts per state."),
    PyMethodDef { ml_name: std::ptr::null(), ml_meth: std::ptr::null(), ml_flags: 0, ml_doc: std::ptr::null() },
];

static mut MODULE_DEF: PyModuleDef = PyModuleDef {
    m_base: PyModuleDef_Base {
        ob_base: PyObject { ob_refcnt: 1, ob_type: null_mut() },
        m_init: null_mut(),
        m_index: 0,
        m_copy: null_mut(),
    },
    m_name: b"_rustcall_runtime\0".as_ptr() as *const c_char,
    m_doc: b"Ownership runtime of rustcall_magic (Box/Rc/Arc/Vec handles).\0".as_ptr() as *const c_char,
    m_size: -1,
    m_methods: null_mut(),
    m_slots: null_mut(),
    m_traverse: null_mut(),
    m_clear: null_mut(),
    m_free: null_mut(),
};

/// Module init: errors helpers, panic hook, types, functions, ABI capsule.
#[no_mangle]
pub unsafe extern "C" fn PyInit__rustcall_runtime() -> *mut PyObject {
    let errors = PyImport_ImportModule(b"rustcall_magic.errors\0".as_ptr() as *const c_char);
    if errors.is_null() {
        return null_mut();
    }
    HANDLE_ERROR = PyObject_GetAttrString(errors, b"RustHandleError\0".as_ptr() as *const c_char);
    let ok = !HANDLE_ERROR.is_null() && crate::panic::init(errors) == 0;
    Py_DecRef(errors);
    if !ok || init_types() != 0 {
        return null_mut();
    }
    let def = addr_of_mut!(MODULE_DEF);
    (*def).m_methods = addr_of_mut!(METHODS) as *mut PyMethodDef;
    let m = PyModule_Create2(def, PYTHON_API_VERSION);
    if m.is_null() {
        return m;
    }
    let names: [&[u8]; 4] = [b"RustBox\0", b"RustRc\0", b"RustArc\0", b"RustVec\0"];
    for (i, n) in names.iter().enumerate() {
        if PyModule_AddObjectRef(m, n.as_ptr() as *const c_char, TYPES[i]) != 0 {
            Py_DecRef(m);
            return null_mut();
        }
    }
    let cap = crate::abi::capsule();
    if cap.is_null() || PyModule_AddObjectRef(m, b"_ABI\0".as_ptr() as *const c_char, cap) != 0 {
        Py_DecRef(m);
        return null_mut();
    }
    Py_DecRef(cap);
    let v = PyLong_FromUnsignedLongLong(crate::abi::ABI_VERSION as u64);
    PyModule_AddObjectRef(m, b"ABI_VERSION\0".as_ptr() as *const c_char, v);
    Py_DecRef(v);
    m
}

/// Vec of tuples -> list (steals each tuple).
unsafe fn list_of(items: Vec<*mut PyObject>) -> *mut PyObject {
    let l = PyList_New(items.len() as isize);
    for (i, t) in items.into_iter().enumerate() {
        PyList_SetItem(l, i as isize, t);
    }
    l
}

/// `_select(min_id, max_alive, max_ended)`: what a view shows, at a cost set by what it shows
/// (a slot scan in Rust, no Python object per alive handle not returned).
///
/// Returns `(alive_rows, ended_rows, counts)`: rows of the `max_alive` newest alive handles
/// with an id above `min_id` (by id, oldest first), rows of the `max_ended` most recently
/// ended handles in the history (in the order they ended, oldest first), and
/// `(alive, dropped, moved, collected, created_total, ended_total, alive_above_min_id)`, the
/// ended states counted since the start (not only over the bounded history).
unsafe extern "C" fn f_select(_m: *mut PyObject, a: *const *mut PyObject, n: isize) -> *mut PyObject {
    guard("_select", null_mut(), || {
        if !arg_count("_select", n, 3, 3) {
            return null_mut();
        }
        let min_id = PyLong_AsUnsignedLongLong(*a);
        let max_alive = PyLong_AsSsize_t(*a.add(1));
        let max_ended = PyLong_AsSsize_t(*a.add(2));
        if !PyErr_Occurred().is_null() {
            return null_mut();
        }
        if max_alive < 0 || max_ended < 0 {
            return raise(PyExc_ValueError, "_select() needs counts >= 0");
        }
        let (max_alive, max_ended) = (max_alive as usize, max_ended as usize);
        let reg = registry();
        let mut alive: Vec<&Record> = Vec::new();
        let mut above = reg.alive_count();
        if max_alive > 0 {
            alive.extend(reg.alive().filter(|r| r.id > min_id));
            above = alive.len();
            if alive.len() > max_alive {
                // Keep the newest max_alive without sorting the rest.
                let cut = alive.len() - max_alive;
                alive.select_nth_unstable_by_key(cut, |r| r.id);
                alive.drain(..cut);
            }
            alive.sort_unstable_by_key(|r| r.id);
        } else if min_id > 0 {
            above = reg.alive().filter(|r| r.id > min_id).count();
        }
        let alive_rows = list_of(alive.iter().map(|r| row(r)).collect());
        // The history is bounded (set_history), so a pass over it is cheap.
        let ended: Vec<&Record> = reg.ended().collect();
        let skip = ended.len().saturating_sub(max_ended);
        let ended_rows = list_of(ended[skip..].iter().map(|r| row(r)).collect());
        let (created, ended_total) = reg.totals();
        let (dropped, moved, collected) = reg.ended_by_state();
        let counts = tuple(&[
            PyLong_FromSize_t(reg.alive_count()),
            PyLong_FromUnsignedLongLong(dropped),
            PyLong_FromUnsignedLongLong(moved),
            PyLong_FromUnsignedLongLong(collected),
            PyLong_FromUnsignedLongLong(created),
            PyLong_FromUnsignedLongLong(ended_total),
            PyLong_FromSize_t(above),
        ]);
        tuple(&[alive_rows, ended_rows, counts])
    })
}
