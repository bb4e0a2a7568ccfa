//! Lab content and what learners did with it.
//!
//! - [`catalog`]: the labs read from `labs/`, each checked as it is read.
//! - [`export`]: a class's results and roster, as CSV and JSON.
//! - [`highlight`]: code blocks highlighted once, when a lab is read.
//! - [`names`]: a lab's code with a class's learner's prefix on a shared cluster.
//! - [`progress`]: passed steps, opened hints and revealed solutions, in SQLite.

pub mod catalog;
pub mod export;
pub mod highlight;
pub mod names;
pub mod progress;
