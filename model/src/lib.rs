//! The lab's model: pure functions and records over what the broker and the instances said, and
//! the checkpoints evaluated on them. Nothing here does I/O, reads a clock or spawns a task: the
//! crate depends on nothing but the protocol's types and serde, and the server's test
//! `tests::the_pure_modules_do_no_io` reads its sources to keep it so. The time comes in as an
//! argument, so everything is tested as tables.
//!
//! - [`membership`]: every group member, whoever runs it, from the broker's view of the group.
//! - [`history`]: what happened in a lab beyond what its view shows now.
//! - [`ledger`]: messages lost and processed twice, from the history.
//! - [`lag`]: lag over time and its status.
//! - [`checks`]: the checkpoint vocabulary labs use, each family's evaluation beside its wording.
//! - [`stuck`]: in a class, who may need the instructor.

pub mod checks;
pub mod history;
pub mod lag;
pub mod ledger;
pub mod membership;
pub mod stuck;
