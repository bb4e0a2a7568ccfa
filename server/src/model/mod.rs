//! The lab's model: pure functions and records over what the broker and the instances said.
//! Nothing here does I/O, reads a clock or spawns a task (`tests::the_pure_modules_do_no_io` in
//! the crate's root reads the sources to keep it so): the time comes in as an argument, so
//! everything is tested as tables.
//!
//! - [`membership`]: every group member, whoever runs it, from the broker's view of the group.
//! - [`history`]: what happened in a lab beyond what its view shows now.
//! - [`ledger`]: messages lost and processed twice, from the history.
//! - [`lag`]: lag over time and its status.

pub mod history;
pub mod lag;
pub mod ledger;
pub mod membership;
