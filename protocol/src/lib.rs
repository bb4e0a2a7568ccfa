//! The contracts between grouplab's processes.
//!
//! Three conversations cross a process boundary, and each has its own closed enum:
//!
//! - browser → server: [`ClientCommand`], one JSON text frame per command on the lab websocket;
//! - server → browser: [`ServerEvent`], a [`ServerEvent::Snapshot`] first, then changes;
//! - consumer instance → server: [`InstanceReport`], one JSON line per report on the instance's stdout,
//!   after the server started it with an [`InstanceConfig`].
//!
//! The browser's view of a lab is a [`LabSnapshot`].
//! The server keeps one per lab session and changes it only through [`LabSnapshot::apply`],
//! the same function the browser runs on every event, so the two cannot drift apart.
//!
//! Nothing here depends on tokio, rdkafka or the DOM: this crate compiles for the server and for WASM.

pub mod class;
mod command;
mod content;
mod event;
mod group;
pub mod held;
mod instance;
pub mod ownership;
mod queue;
mod stream;
mod view;

pub use command::*;
pub use content::*;
pub use event::*;
pub use group::*;
pub use instance::*;
pub use queue::*;
pub use stream::*;
pub use view::*;

/// The version of the browser ↔ server protocol.
///
/// It is sent in every snapshot; a page built for another version asks the learner to reload.
pub const PROTOCOL_VERSION: u32 = 11;

/// Milliseconds since the Unix epoch, the time stamp used everywhere in the protocol.
pub type EpochMillis = u64;

/// Microseconds since the Unix epoch: when a consumer's callback fired, so that the time an
/// event takes to reach the screen can be measured (the page reads the same clock).
pub type EpochMicros = u64;
