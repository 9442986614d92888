//! wsloop
#![deny(missing_docs)]
pub mod protocol;
