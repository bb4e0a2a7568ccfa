//! Lab content as the page shows it: instructions, code, hints and the solution.
//!
//! The server reads labs from `labs/` and renders their Markdown to HTML once, at start-up.

use serde::{Deserialize, Serialize};

/// One line of the lab list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabSummary {
    pub id: String,
    pub title: String,
    pub difficulty: String,
    pub minutes: u32,
    pub summary: String,
    /// Set when the lab's files could not be read: what is wrong, for the course author.
    pub problem: Option<String>,
    /// How many steps the lab has.
    pub steps: usize,
    /// How many of them this server's learner has passed.
    pub passed: usize,
}

/// A whole lab, for its page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabContent {
    pub id: String,
    pub title: String,
    pub difficulty: String,
    pub minutes: u32,
    pub objectives: Vec<String>,
    pub intro_html: String,
    pub steps: Vec<StepContent>,
    pub starter: Option<CodeBlock>,
    /// Consumers the learner can run from a terminal against the lab's broker, one per client.
    pub consumers: Vec<ConsumerSnippet>,
    /// How many hints the lab has. Their text stays on the server until each is opened, and then
    /// arrives in the learner's progress ([`crate::ProgressView::hints`]).
    pub hint_count: u32,
    /// Whether the lab has a solution. It stays on the server until revealed
    /// ([`crate::ProgressView::solution`]).
    pub has_solution: bool,
    /// Values the live panel's forms start with.
    pub setup: LabSetup,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepContent {
    pub title: String,
    pub body_html: String,
    /// The checkpoint in words: what the server waits to see.
    pub checkpoint: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeBlock {
    pub language: String,
    pub file_name: String,
    pub code: String,
    /// The code as highlighted HTML (escaped, with `hl-` classed spans), made by the server
    /// when it read the lab; empty when no grammar fits, and the page shows `code` instead.
    #[serde(default)]
    pub html: String,
}

/// A lab's solution: its code and the notes under it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Solution {
    pub code: CodeBlock,
    pub notes_html: String,
}

/// A consumer the learner runs from a terminal, in one client library.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerSnippet {
    /// The language and client, e.g. "Python · confluent-kafka".
    pub label: String,
    /// How to install the client.
    pub install: String,
    /// How to run the file; the page puts the broker's address in place of [`BOOTSTRAP_PLACEHOLDER`].
    pub run: String,
    pub code: CodeBlock,
}

/// Where a snippet's run line takes the broker's bootstrap address.
pub const BOOTSTRAP_PLACEHOLDER: &str = "{bootstrap}";

/// The names a lab works with; the forms are filled in with them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabSetup {
    /// The broker the lab runs on; on Redis, `topic` names the stream and `partitions` is 1.
    #[serde(default)]
    pub broker: crate::Backend,
    pub topic: String,
    pub partitions: i32,
    pub group: String,
    /// More groups the lab watches from the start, so that the learner's own consumers in them
    /// show up before any instance joins them.
    pub other_groups: Vec<String>,
    /// More topics the lab works with (a dead-letter topic, say), shown and reset with it.
    pub other_topics: Vec<String>,
    /// RabbitMQ: the queue (one of `other_topics`) that the lab's queue sends rejected messages to.
    #[serde(default)]
    pub dead_letter_queue: Option<String>,
    /// Whether the page shows the latest crash on each broker side by side (lab 15).
    #[serde(default)]
    pub compare_crashes: bool,
    /// What the page's "Start instance" form starts with.
    pub consumer: crate::ConsumerSettings,
}

impl LabSetup {
    /// Every topic the lab works with from the start: its own, then the others.
    pub fn topics(&self) -> impl Iterator<Item = &String> {
        std::iter::once(&self.topic).chain(&self.other_topics)
    }

    /// Every group the lab watches from the start: its own, then the others.
    pub fn groups(&self) -> impl Iterator<Item = &String> {
        std::iter::once(&self.group).chain(&self.other_groups)
    }
}
