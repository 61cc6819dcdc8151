//! Pickle: the [`vm`] walks a stream symbolically and the [`policy`] turns what it saw into
//! findings.

pub(crate) mod input;
pub mod policy;
pub mod vm;
