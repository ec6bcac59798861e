//! Actors: the supervisor routes inbox work to one pair actor per connection, which is the
//! only writer of that connection's objects (docs/architecture.md, "The flow", steps 2 and 3).

pub mod apply;
pub mod confirm;
pub mod cross_check;
pub mod fetch;
pub mod jobs;
pub mod limiter;
pub mod pair;
pub mod pull;
pub mod replay_preview;
pub mod supervisor;
pub mod sweep;

pub use supervisor::{Supervisor, SupervisorHandle};
