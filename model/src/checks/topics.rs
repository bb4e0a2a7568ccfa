//! Checks on topics: that they exist, what was produced to them, and where keys landed.

use std::fmt;

use grouplab_protocol::LabSnapshot;
use serde::Deserialize;

use super::{Rule, Verdict};
use crate::history::History;

/// The topic exists, with this many partitions if given.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicExists {
    pub topic: String,
    pub partitions: Option<i32>,
}

impl Rule for TopicExists {
    fn evaluate(&self, view: &LabSnapshot, _history: &History) -> Verdict {
        let Self { topic, partitions } = self;
        match (view.topic(topic), partitions) {
            (None, _) => Verdict::wait(format!("There is no topic `{topic}` yet.")),
            (Some(found), Some(n)) if found.partitions.len() != *n as usize => {
                Verdict::wait(format!(
                    "`{topic}` has {} partitions; this step needs {n}. Reset the lab and create it again.",
                    found.partitions.len()
                ))
            }
            (Some(found), _) => Verdict::pass(format!(
                "`{topic}` exists with {} partitions.",
                found.partitions.len()
            )),
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self {
                topic,
                partitions: Some(n),
            } => write!(f, "topic `{topic}` exists with {n} partitions"),
            Self {
                topic,
                partitions: None,
            } => write!(f, "topic `{topic}` exists"),
        }
    }
}

/// At least this many messages were written to the topic.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessagesProduced {
    pub topic: String,
    pub at_least: u64,
}

impl Rule for MessagesProduced {
    fn evaluate(&self, view: &LabSnapshot, _history: &History) -> Verdict {
        let Self { topic, at_least } = self;
        let count = view.topic(topic).map_or(0, |t| t.message_count());
        let count = u64::try_from(count).unwrap_or(0);
        if count >= *at_least {
            Verdict::pass(format!("`{topic}` holds {count} messages."))
        } else {
            Verdict::wait(format!(
                "`{topic}` holds {count} of the {at_least} messages needed."
            ))
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { topic, at_least } = self;
        write!(f, "at least {at_least} messages were produced to `{topic}`")
    }
}

/// Every partition of the topic holds at least this many messages.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EveryPartitionHas {
    pub topic: String,
    pub at_least: u64,
}

impl Rule for EveryPartitionHas {
    fn evaluate(&self, view: &LabSnapshot, _history: &History) -> Verdict {
        let Self { topic, at_least } = self;
        let Some(found) = view.topic(topic) else {
            return Verdict::wait(format!("There is no topic `{topic}` yet."));
        };
        let short: Vec<String> = found
            .partitions
            .iter()
            .filter(|lane| ((lane.log_end - lane.log_start).max(0) as u64) < *at_least)
            .map(|lane| format!("P{} ({})", lane.partition, lane.log_end - lane.log_start))
            .collect();
        if short.is_empty() {
            Verdict::pass(format!(
                "Every partition of `{topic}` holds at least {at_least} messages."
            ))
        } else {
            Verdict::wait(format!(
                "These partitions hold fewer than {at_least} messages: {}.",
                short.join(", ")
            ))
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { topic, at_least } = self;
        write!(
            f,
            "every partition of `{topic}` holds at least {at_least} messages"
        )
    }
}

/// At least `at_least` keys were produced to the topic by the page, each landing in a single
/// partition, and together in more than one.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysStayInPartition {
    pub topic: String,
    pub at_least: usize,
}

impl Rule for KeysStayInPartition {
    fn evaluate(&self, view: &LabSnapshot, _history: &History) -> Verdict {
        let Self { topic, at_least } = self;
        let keys: Vec<_> = view.keys.iter().filter(|k| k.topic == *topic).collect();
        let split: Vec<&str> = keys
            .iter()
            .filter(|k| k.partitions.len() > 1)
            .map(|k| k.key.as_str())
            .collect();
        let used: std::collections::BTreeSet<i32> = keys
            .iter()
            .flat_map(|k| k.partitions.iter().copied())
            .collect();
        if !split.is_empty() {
            Verdict::wait(format!(
                "Key(s) {} landed in more than one partition: a partition was chosen by hand. Reset the lab to try again.",
                split.join(", ")
            ))
        } else if keys.len() < *at_least || used.len() < 2 {
            Verdict::wait(format!(
                "{} key(s) of `{topic}` landed in {} partition(s); this step needs {at_least} keys over more than one partition.",
                keys.len(),
                used.len()
            ))
        } else {
            Verdict::pass(format!(
                "{} keys landed in {} partitions, each key in exactly one.",
                keys.len(),
                used.len()
            ))
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { topic, at_least } = self;
        write!(
            f,
            "at least {at_least} keys of `{topic}` each landed in one partition"
        )
    }
}
