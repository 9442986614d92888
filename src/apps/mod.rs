//! Applications built on the public [`Handler`](crate::Handler) trait.

mod echo;

pub use echo::Echo;
