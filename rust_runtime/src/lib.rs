//! Ownership runtime of rustcall_magic: `Box<T>`, `Rc<T>`, `Arc<T>` and `Vec<T>`
//! held by Python as handles, with Rust's rules enforced at run time.
//!
//! The crate has two faces:
//! - a pure-Rust core (dtypes, typed storage, the live-handle registry),
//!   tested by `cargo test` without an interpreter;
//! - behind the `python` feature, CPython extension types written against a
//!   hand-declared C-API (`pyffi.rs`): no crates, no headers; `Py*` symbols
//!   bind to the running interpreter when the module is imported.
//!
//! Exports of the built module are prefixed `rt_` (Rust side) and every
//! allocation made here is freed here: cell modules reach the runtime through
//! the C-ABI table of `abi.rs`, never by freeing runtime memory themselves
//! except for `Vec`/`Box`/`Rc`/`Arc` parts moved with the same toolchain.

#![allow(clippy::missing_safety_doc)]

pub mod shared;

pub mod arc;
pub mod boxed;
pub mod dtype;
pub mod rc;
pub mod registry;
pub mod vec;

#[cfg(feature = "python")]
pub mod abi;
#[cfg(feature = "python")]
pub mod convert;
#[cfg(feature = "python")]
pub mod handle;
#[cfg(feature = "python")]
pub mod module;
#[cfg(feature = "python")]
pub mod panic;
#[cfg(feature = "python")]
pub mod pyffi;
