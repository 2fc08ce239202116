//! Element types (dtypes) of the handles and their conversions.
//!
//! A dtype is one of the eleven Rust scalar types a handle can hold. Values
//! cross the Python boundary as a [`Scalar`] (the widest Rust type of their
//! family) and are narrowed with a range check: out of range is an error,
//! never a silent truncation.

/// The element type of a handle. The discriminants are part of the cell ABI.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    I8 = 0,
    I16 = 1,
    I32 = 2,
    I64 = 3,
    U8 = 4,
    U16 = 5,
    U32 = 6,
    U64 = 7,
    F32 = 8,
    F64 = 9,
    Bool = 10,
}

/// Every dtype, in discriminant order.
pub const ALL: [DType; 11] = [
    DType::I8,
    DType::I16,
    DType::I32,
    DType::I64,
    DType::U8,
    DType::U16,
    DType::U32,
    DType::U64,
    DType::F32,
    DType::F64,
    DType::Bool,
];

/// A value on its way in or out, in the widest type of its family.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar {
    I(i64),
    U(u64),
    F(f64),
    B(bool),
}

/// Why a [`Scalar`] does not fit a dtype.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvError {
    /// Right family, out of the dtype's range.
    Overflow,
    /// Wrong family (e.g. a float for an integer dtype).
    Type,
}

/// The family a dtype accepts from Python.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Int,
    Float,
    Bool,
}

impl DType {
    /// The dtype with discriminant `code`.
    pub fn from_code(code: u8) -> Option<DType> {
        ALL.get(code as usize).copied()
    }

    /// Parses a Rust type name (`"i32"`, `"f64"`, `"bool"`...).
    pub fn parse(name: &[u8]) -> Option<DType> {
        Some(match name {
            b"i8" => DType::I8,
            b"i16" => DType::I16,
            b"i32" => DType::I32,
            b"i64" => DType::I64,
            b"u8" => DType::U8,
            b"u16" => DType::U16,
            b"u32" => DType::U32,
            b"u64" => DType::U64,
            b"f32" => DType::F32,
            b"f64" => DType::F64,
            b"bool" => DType::Bool,
            _ => return None,
        })
    }

    /// The Rust type name.
    pub fn name(self) -> &'static str {
        match self {
            DType::I8 => "i8",
            DType::I16 => "i16",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::U8 => "u8",
            DType::U16 => "u16",
            DType::U32 => "u32",
            DType::U64 => "u64",
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::Bool => "bool",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::I8 | DType::U8 | DType::Bool => 1,
            DType::I16 | DType::U16 => 2,
            DType::I32 | DType::U32 | DType::F32 => 4,
            DType::I64 | DType::U64 | DType::F64 => 8,
        }
    }

    /// The family of Python values this dtype accepts.
    pub fn family(self) -> Family {
        match self {
            DType::F32 | DType::F64 => Family::Float,
            DType::Bool => Family::Bool,
            _ => Family::Int,
        }
    }

    /// The buffer-protocol (struct module) format this dtype exports, NUL-terminated.
    pub fn format(self) -> &'static [u8] {
        match self {
            DType::I8 => b"b\0",
            DType::I16 => b"h\0",
            DType::I32 => b"i\0",
            DType::I64 => b"q\0",
            DType::U8 => b"B\0",
            DType::U16 => b"H\0",
            DType::U32 => b"I\0",
            DType::U64 => b"Q\0",
            DType::F32 => b"f\0",
            DType::F64 => b"d\0",
            DType::Bool => b"?\0",
        }
    }

    /// The dtype of a native, little-endian buffer format (`"i"`, `"<i4"` style prefixes
    /// `@ = <` allowed), given the exporter's item size; None for anything else.
    ///
    /// `l`/`L` are 8 bytes on LP64 platforms (numpy's int64), so the item size decides.
    pub fn from_buffer_format(fmt: &[u8], itemsize: usize) -> Option<DType> {
        let f = match fmt {
            [] => b"B".as_slice(), // no format means unsigned bytes
            [b'@' | b'=' | b'<', rest @ ..] if cfg!(target_endian = "little") || fmt[0] != b'<' => rest,
            _ => fmt,
        };
        let dt = match f {
            b"b" => DType::I8,
            b"B" => DType::U8,
            b"?" => DType::Bool,
            b"h" | b"i" | b"l" | b"q" | b"n" => match itemsize {
                2 => DType::I16,
                4 => DType::I32,
                8 => DType::I64,
                _ => return None,
            },
            b"H" | b"I" | b"L" | b"Q" | b"N" => match itemsize {
                2 => DType::U16,
                4 => DType::U32,
                8 => DType::U64,
                _ => return None,
            },
            b"f" => DType::F32,
            b"d" => DType::F64,
            _ => return None,
        };
        if dt.size() == itemsize {
            Some(dt)
        } else {
            None
        }
    }
}

/// A Rust scalar type a handle can hold.
pub trait Elem: Copy + Default + PartialEq + std::fmt::Debug + 'static {
    /// Its dtype.
    const DTYPE: DType;
    /// Widens to a [`Scalar`].
    fn to_scalar(self) -> Scalar;
    /// Narrows a [`Scalar`], range-checked.
    fn from_scalar(s: Scalar) -> Result<Self, ConvError>;
}

macro_rules! int_elem {
    ($($t:ty => $dt:ident, $wide:ident);*) => {$(
        impl Elem for $t {
            const DTYPE: DType = DType::$dt;
            #[inline(always)]
            fn to_scalar(self) -> Scalar { Scalar::$wide(self as _) }
            #[inline(always)]
            fn from_scalar(s: Scalar) -> Result<Self, ConvError> {
                match s {
                    Scalar::I(v) => <$t>::try_from(v).map_err(|_| ConvError::Overflow),
                    Scalar::U(v) => <$t>::try_from(v).map_err(|_| ConvError::Overflow),
                    _ => Err(ConvError::Type),
                }
            }
        }
    )*};
}
int_elem!(i8 => I8, I; i16 => I16, I; i32 => I32, I; i64 => I64, I;
          u8 => U8, U; u16 => U16, U; u32 => U32, U; u64 => U64, U);

impl Elem for f64 {
    const DTYPE: DType = DType::F64;
    #[inline(always)]
    fn to_scalar(self) -> Scalar {
        Scalar::F(self)
    }
    #[inline(always)]
    fn from_scalar(s: Scalar) -> Result<Self, ConvError> {
        match s {
            Scalar::F(v) => Ok(v),
            _ => Err(ConvError::Type),
        }
    }
}

impl Elem for f32 {
    const DTYPE: DType = DType::F32;
    #[inline(always)]
    fn to_scalar(self) -> Scalar {
        Scalar::F(self as f64)
    }
    #[inline(always)]
    fn from_scalar(s: Scalar) -> Result<Self, ConvError> {
        match s {
            Scalar::F(v) => {
                let f = v as f32;
                // A finite f64 beyond f32's range would silently become inf.
                if v.is_finite() && !f.is_finite() {
                    Err(ConvError::Overflow)
                } else {
                    Ok(f)
                }
            }
            _ => Err(ConvError::Type),
        }
    }
}

impl Elem for bool {
    const DTYPE: DType = DType::Bool;
    #[inline(always)]
    fn to_scalar(self) -> Scalar {
        Scalar::B(self)
    }
    #[inline(always)]
    fn from_scalar(s: Scalar) -> Result<Self, ConvError> {
        match s {
            Scalar::B(v) => Ok(v),
            _ => Err(ConvError::Type),
        }
    }
}

/// Runs `$body` with `$T` bound to the Rust type of dtype `$dt`.
#[macro_export]
macro_rules! with_dtype {
    ($dt:expr, $T:ident => $body:expr) => {
        match $dt {
            $crate::dtype::DType::I8 => { type $T = i8; $body }
            $crate::dtype::DType::I16 => { type $T = i16; $body }
            $crate::dtype::DType::I32 => { type $T = i32; $body }
            $crate::dtype::DType::I64 => { type $T = i64; $body }
            $crate::dtype::DType::U8 => { type $T = u8; $body }
            $crate::dtype::DType::U16 => { type $T = u16; $body }
            $crate::dtype::DType::U32 => { type $T = u32; $body }
            $crate::dtype::DType::U64 => { type $T = u64; $body }
            $crate::dtype::DType::F32 => { type $T = f32; $body }
            $crate::dtype::DType::F64 => { type $T = f64; $body }
            $crate::dtype::DType::Bool => { type $T = bool; $body }
        }
    };
}

/// Reads the element at `p` as a [`Scalar`].
///
/// # Safety
/// `p` must point to a valid, aligned value of dtype `dt`.
#[inline]
pub unsafe fn read(dt: DType, p: *const u8) -> Scalar {
    if dt == DType::Bool {
        // Defence in depth: bytes enter a bool vector validated (`first_invalid_bool`) and its
        // views are read-only, but a stray byte must still read as a bool, never as UB.
        return Scalar::B(*p != 0);
    }
    with_dtype!(dt, T => (*(p as *const T)).to_scalar())
}

/// The index of the first byte of `bytes` that is not a valid Rust `bool` (only 0 and 1 are), if any.
#[inline]
pub fn first_invalid_bool(bytes: &[u8]) -> Option<usize> {
    // One OR over the bytes (vectorised) decides the common all-valid case; search only on failure.
    if bytes.iter().fold(0u8, |acc, &b| acc | b) <= 1 {
        return None;
    }
    bytes.iter().position(|&b| b > 1)
}

/// Writes `s` (range-checked) as an element of dtype `dt` at `p`.
///
/// # Safety
/// `p` must point to writable, aligned storage for one value of dtype `dt`.
#[inline]
pub unsafe fn write(dt: DType, p: *mut u8, s: Scalar) -> Result<(), ConvError> {
    with_dtype!(dt, T => { *(p as *mut T) = T::from_scalar(s)?; Ok(()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_for_every_dtype() {
        for (i, dt) in ALL.iter().enumerate() {
            assert_eq!(DType::parse(dt.name().as_bytes()), Some(*dt));
            assert_eq!(DType::from_code(i as u8), Some(*dt));
            let fmt = &dt.format()[..dt.format().len() - 1];
            assert_eq!(DType::from_buffer_format(fmt, dt.size()), Some(*dt), "{}", dt.name());
        }
        assert_eq!(DType::parse(b"i128"), None);
        assert_eq!(DType::parse(b"usize"), None);
        assert_eq!(DType::from_code(11), None);
    }

    #[test]
    fn buffer_formats_of_numpy_and_array() {
        assert_eq!(DType::from_buffer_format(b"l", 8), Some(DType::I64));
        assert_eq!(DType::from_buffer_format(b"<i", 4), Some(DType::I32));
        assert_eq!(DType::from_buffer_format(b"=L", 8), Some(DType::U64));
        assert_eq!(DType::from_buffer_format(b"", 1), Some(DType::U8));
        assert_eq!(DType::from_buffer_format(b">i", 4), None);
        assert_eq!(DType::from_buffer_format(b"i", 8), Some(DType::I64));
        assert_eq!(DType::from_buffer_format(b"d", 4), None);
        assert_eq!(DType::from_buffer_format(b"e", 2), None);
        assert_eq!(DType::from_buffer_format(b"O", 8), None);
    }

    #[test]
    fn narrowing_is_range_checked() {
        assert_eq!(i8::from_scalar(Scalar::I(127)), Ok(127));
        assert_eq!(i8::from_scalar(Scalar::I(128)), Err(ConvError::Overflow));
        assert_eq!(u8::from_scalar(Scalar::I(-1)), Err(ConvError::Overflow));
        assert_eq!(u64::from_scalar(Scalar::U(u64::MAX)), Ok(u64::MAX));
        assert_eq!(i64::from_scalar(Scalar::U(u64::MAX)), Err(ConvError::Overflow));
        assert_eq!(i32::from_scalar(Scalar::F(1.0)), Err(ConvError::Type));
        assert_eq!(f32::from_scalar(Scalar::F(1e300)), Err(ConvError::Overflow));
        assert!(f32::from_scalar(Scalar::F(f64::INFINITY)).unwrap().is_infinite());
        assert_eq!(bool::from_scalar(Scalar::I(1)), Err(ConvError::Type));
    }

    #[test]
    fn only_zero_and_one_are_bools() {
        assert_eq!(first_invalid_bool(&[]), None);
        assert_eq!(first_invalid_bool(&[0, 1, 1, 0]), None);
        assert_eq!(first_invalid_bool(&[1, 0, 2, 7, 255]), Some(2));
        assert_eq!(first_invalid_bool(&[255]), Some(0));
        let mut long = vec![1u8; 1000];
        assert_eq!(first_invalid_bool(&long), None);
        long[999] = 0x80;
        assert_eq!(first_invalid_bool(&long), Some(999));
        // 0b11 OR-folds with 0b01 to 3: caught even when every single byte is odd
        long[999] = 1;
        long[3] = 3;
        assert_eq!(first_invalid_bool(&long), Some(3));
    }

    #[test]
    fn read_write_every_dtype() {
        let mut buf = [0u64; 1];
        let p = buf.as_mut_ptr() as *mut u8;
        let cases = [
            (DType::I8, Scalar::I(-5)),
            (DType::I16, Scalar::I(-300)),
            (DType::I32, Scalar::I(-70000)),
            (DType::I64, Scalar::I(i64::MIN)),
            (DType::U8, Scalar::U(255)),
            (DType::U16, Scalar::U(65535)),
            (DType::U32, Scalar::U(4_000_000_000)),
            (DType::U64, Scalar::U(u64::MAX)),
            (DType::F32, Scalar::F(1.5)),
            (DType::F64, Scalar::F(-2.25)),
            (DType::Bool, Scalar::B(true)),
        ];
        for (dt, s) in cases {
            unsafe {
                write(dt, p, s).unwrap();
                assert_eq!(read(dt, p), s, "{}", dt.name());
            }
        }
        unsafe {
            *p = 7; // a buffer view wrote a non-0/1 byte
            assert_eq!(read(DType::Bool, p), Scalar::B(true));
        }
    }
}
