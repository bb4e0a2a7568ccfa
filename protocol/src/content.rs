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
    pub hints_html: Vec<String>,
    pub solution: Option<CodeBlock>,
    pub solution_html: String,
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
}

/// The names a lab works with; the forms are filled in with them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabSetup {
    pub topic: String,
    pub partitions: i32,
    pub group: String,
}
