//! Python values <-> [`Scalar`]s of a dtype, with the project's rules: integers are
//! range-checked (OverflowError, never truncation), floats accept any real
//! number, `bool` accepts only `True`/`False`.

use crate::dtype::{ConvError, DType, Family, Scalar};
use crate::pyffi::*;
use std::os::raw::c_int;

/// Why a Python value could not become an element; the Python exception is set.
pub struct Raised;

/// Converts `o` for dtype `dt`, raising TypeError/OverflowError on failure.
#[inline]
pub unsafe fn from_py(dt: DType, o: *mut PyObject) -> Result<Scalar, Raised> {
    match dt.family() {
        Family::Int => {
            // Floats are refused (no silent truncation); ints and __index__ objects pass.
            let mut overflow: c_int = 0;
            let v = PyLong_AsLongLongAndOverflow(o, &mut overflow);
            if overflow == 0 {
                if v == -1 && !PyErr_Occurred().is_null() {
                    return Err(type_error(dt, o));
                }
                return Ok(Scalar::I(v));
            }
            if overflow > 0 {
                let idx = PyNumber_Index(o);
                if !idx.is_null() {
                    let u = PyLong_AsUnsignedLongLong(idx);
                    Py_DecRef(idx);
                    if !(u == u64::MAX && !PyErr_Occurred().is_null()) {
                        return Ok(Scalar::U(u));
                    }
                }
                PyErr_Clear();
            }
            Err(overflow_error(dt, o))
        }
        Family::Float => {
            let v = PyFloat_AsDouble(o);
            if v == -1.0 && !PyErr_Occurred().is_null() {
                if PyErr_ExceptionMatches(PyExc_OverflowError) != 0 {
                    PyErr_Clear();
                    return Err(overflow_error(dt, o));
                }
                return Err(type_error(dt, o));
            }
            Ok(Scalar::F(v))
        }
        Family::Bool => {
            if o == py_true() {
                Ok(Scalar::B(true))
            } else if o == py_false() {
                Ok(Scalar::B(false))
            } else {
                numpy_bool(o).map(Scalar::B).ok_or_else(|| type_error(dt, o))
            }
        }
    }
}

/// Raises for a [`ConvError`] found after a Python value became a Scalar.
pub unsafe fn raise_conv(dt: DType, e: ConvError, o: *mut PyObject) -> Raised {
    match e {
        ConvError::Overflow => overflow_error(dt, o),
        ConvError::Type => type_error(dt, o),
    }
}

/// The start of a type object: its header and `tp_name` (stable in every CPython 3.x).
#[repr(C)]
struct PyTypeHead {
    ob_base: PyObject,
    ob_size: isize,
    tp_name: *const std::os::raw::c_char,
}

/// `tp_name` of `o`'s type: a builtin's bare name, else qualified (`numpy.bool`).
unsafe fn type_name(o: *mut PyObject) -> String {
    let name = std::ffi::CStr::from_ptr((*((*o).ob_type as *const PyTypeHead)).tp_name);
    name.to_string_lossy().into_owned()
}

/// The value of a numpy bool scalar (`numpy.bool`, `numpy.bool_` before numpy 2): not a
/// subclass of bool, but what a bool array's items are. None for anything else.
#[cold]
unsafe fn numpy_bool(o: *mut PyObject) -> Option<bool> {
    if !matches!(type_name(o).as_str(), "numpy.bool" | "numpy.bool_") {
        return None;
    }
    match PyObject_IsTrue(o) {
        -1 => {
            PyErr_Clear();
            None
        }
        v => Some(v == 1),
    }
}

unsafe fn type_error(dt: DType, o: *mut PyObject) -> Raised {
    PyErr_Clear();
    let want = match dt.family() {
        Family::Int => "int",
        Family::Float => "float or int",
        Family::Bool => "bool",
    };
    raise(PyExc_TypeError, &format!("{} element must be {}, not {}", dt.name(), want, type_name(o)));
    Raised
}

unsafe fn overflow_error(dt: DType, o: *mut PyObject) -> Raised {
    PyErr_Clear();
    let r = crate::pyffi::PyObject_GetAttrString(o, b"__repr__\0".as_ptr() as *const _);
    let mut shown = String::from("value");
    if !r.is_null() {
        let s = PyObject_CallFunctionObjArgs(r, std::ptr::null_mut::<PyObject>());
        Py_DecRef(r);
        if !s.is_null() {
            if let Some(b) = str_bytes(s) {
                shown = String::from_utf8_lossy(b).into_owned();
                if shown.len() > 40 {
                    shown = format!("{}...{}", &shown[..18], &shown[shown.len() - 18..]);
                }
            }
            Py_DecRef(s);
        }
    }
    PyErr_Clear();
    raise(PyExc_OverflowError, &format!("{} is out of range for {}", shown, dt.name()));
    Raised
}

/// A new reference to the Python value of `s`.
#[inline]
pub unsafe fn to_py(s: Scalar) -> *mut PyObject {
    match s {
        Scalar::I(v) => PyLong_FromLongLong(v),
        Scalar::U(v) => PyLong_FromUnsignedLongLong(v),
        Scalar::F(v) => PyFloat_FromDouble(v),
        Scalar::B(v) => new_bool(v),
    }
}
