//! Applications built on the public [`Handler`](crate::Handler) trait.

mod api;
mod broadcast;
pub mod chat;
mod echo;
mod kept;
pub mod pubsub;

pub use api::{read_key_file, Api, MIN_KEY_BYTES};
pub use broadcast::Broadcast;
pub use chat::Chat;
pub use echo::Echo;
pub use pubsub::PubSub;
