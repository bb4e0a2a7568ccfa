//! Checks on what the group's consumers received and processed: exactly once, all of it, in
//! order per key, lost or processed twice (the ledger), lag, retries and dead letters.

use std::collections::HashMap;
use std::fmt;

use grouplab_protocol::{LabSnapshot, TopicPartition, TopicView};
use serde::Deserialize;

use super::{Rule, Verdict};
use crate::history::{History, receipts};

/// Every message in the topic was received exactly once by the group's page instances
/// (and there is at least one). Only page instances report each message they receive.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceivedExactlyOnce {
    pub group: String,
    pub topic: String,
}

impl Rule for ReceivedExactlyOnce {
    fn evaluate(&self, view: &LabSnapshot, history: &History) -> Verdict {
        let Self { group, topic } = self;
        received_exactly_once(view, history, group, topic)
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { group, topic } = self;
        write!(
            f,
            "every message in `{topic}` was received exactly once by `{group}`'s page instances"
        )
    }
}

/// Every message in the topic was consumed by the group, whoever its members are (and there is at least one):
/// per partition, either page instances received every message, or the group committed up to the log end.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllConsumed {
    pub group: String,
    pub topic: String,
}

impl Rule for AllConsumed {
    fn evaluate(&self, view: &LabSnapshot, history: &History) -> Verdict {
        let Self { group, topic } = self;
        all_consumed(view, history, group, topic)
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { group, topic } = self;
        write!(f, "every message in `{topic}` was consumed by `{group}`")
    }
}

/// The group's page instances received at least `at_least` keyed messages, and every
/// message arrived after the earlier messages with its key.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyOrderKept {
    pub group: String,
    pub topic: String,
    pub at_least: u64,
}

impl Rule for KeyOrderKept {
    fn evaluate(&self, view: &LabSnapshot, history: &History) -> Verdict {
        let Self {
            group,
            topic,
            at_least,
        } = self;
        with_ledger(view, history, group, topic, |ledger| {
            let order = &ledger.order;
            if order.out_of_key_order > 0 {
                Verdict::wait(format!(
                    "{} message(s) arrived after a later message with the same key.",
                    order.out_of_key_order
                ))
            } else if order.keyed < *at_least {
                Verdict::wait(format!(
                    "`{group}` has received {} keyed message(s) of `{topic}`, each key in order; this step needs {at_least}.",
                    order.keyed
                ))
            } else {
                Verdict::pass(format!(
                    "All {} keyed messages arrived in order within their key.",
                    order.keyed
                ))
            }
        })
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            group,
            topic,
            at_least,
        } = self;
        write!(
            f,
            "`{group}` received at least {at_least} keyed messages of `{topic}`, each key in order"
        )
    }
}

/// A page instance of the group received a message after one produced later, from another
/// partition: there is no order across partitions.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderAcrossPartitionsBroken {
    pub group: String,
    pub topic: String,
}

impl Rule for OrderAcrossPartitionsBroken {
    fn evaluate(&self, view: &LabSnapshot, history: &History) -> Verdict {
        let Self { group, topic } = self;
        with_ledger(view, history, group, topic, |ledger| {
            match &ledger.order.example {
                Some(example) => Verdict::pass(format!(
                    "{} message(s) arrived after a later one, e.g. {example}.",
                    ledger.order.overtaken
                )),
                None => Verdict::wait(format!(
                    "So far every member of `{group}` received `{topic}` in produce order: produce a burst to several partitions while one member owns them."
                )),
            }
        })
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { group, topic } = self;
        write!(
            f,
            "a member of `{group}` received messages of `{topic}` out of produce order across partitions"
        )
    }
}

/// The group's lag on the topic, summed over its partitions, is at least `at_least` now.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LagAtLeast {
    pub group: String,
    pub topic: String,
    pub at_least: i64,
}

impl Rule for LagAtLeast {
    fn evaluate(&self, view: &LabSnapshot, _history: &History) -> Verdict {
        let Self {
            group,
            topic,
            at_least,
        } = self;
        let Some(found) = view.topic(topic) else {
            return Verdict::wait(format!("There is no topic `{topic}` yet."));
        };
        let behind = found.total_lag(group);
        if found.groups.iter().any(|g| g.group == *group) && behind >= *at_least {
            Verdict::pass(format!("`{group}` is {behind} messages behind."))
        } else {
            Verdict::wait(format!(
                "`{group}` is {behind} messages behind on `{topic}`; this step needs {at_least}."
            ))
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            group,
            topic,
            at_least,
        } = self;
        write!(
            f,
            "`{group}` is at least {at_least} messages behind on `{topic}`"
        )
    }
}

/// A partition of the topic has this lag status for the group now (see [`crate::lag`]).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LagStatusSeen {
    pub group: String,
    pub topic: String,
    pub status: grouplab_protocol::LagStatus,
}

impl Rule for LagStatusSeen {
    fn evaluate(&self, view: &LabSnapshot, _history: &History) -> Verdict {
        let Self {
            group,
            topic,
            status,
        } = self;
        let now = view
            .lag
            .iter()
            .find(|l| l.group == *group && l.topic == *topic);
        let with: Vec<String> = now
            .map(|l| {
                l.partitions
                    .iter()
                    .filter(|p| p.status == *status)
                    .map(|p| format!("P{}", p.partition))
                    .collect()
            })
            .unwrap_or_default();
        if with.is_empty() {
            let seen: Vec<String> = now
                .map(|l| {
                    l.partitions
                        .iter()
                        .map(|p| format!("P{} {}", p.partition, p.status.label()))
                        .collect()
                })
                .unwrap_or_default();
            Verdict::wait(format!(
                "No partition shows {} yet (now: {}).",
                status.label(),
                if seen.is_empty() {
                    "not measured".to_owned()
                } else {
                    seen.join(", ")
                }
            ))
        } else {
            Verdict::pass(format!("{} show(s) {}.", with.join(", "), status.label()))
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            group,
            topic,
            status,
        } = self;
        write!(
            f,
            "a partition of `{topic}` shows {} for `{group}`",
            status.label()
        )
    }
}

/// A page instance of the group tried one failing message at least `attempts` times.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetriedAtLeast {
    pub group: String,
    pub attempts: u32,
}

impl Rule for RetriedAtLeast {
    fn evaluate(&self, _view: &LabSnapshot, history: &History) -> Verdict {
        let Self { group, attempts } = self;
        let most = history.attempts.get(group).copied().unwrap_or(0);
        if most >= *attempts {
            Verdict::pass(format!(
                "A member of `{group}` tried one message {most} times."
            ))
        } else {
            Verdict::wait(format!(
                "The most attempts at one message in `{group}` so far: {most} of {attempts}."
            ))
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { group, attempts } = self;
        write!(
            f,
            "a member of `{group}` tried a failing message {attempts} times"
        )
    }
}

/// The group's page instances parked at least `at_least` messages in a dead-letter topic.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLettered {
    pub group: String,
    pub at_least: u64,
}

impl Rule for DeadLettered {
    fn evaluate(&self, _view: &LabSnapshot, history: &History) -> Verdict {
        let Self { group, at_least } = self;
        let parked = history.dead_lettered.get(group).copied().unwrap_or(0);
        if parked >= *at_least {
            Verdict::pass(format!(
                "`{group}` parked {parked} message(s) in its dead-letter topic."
            ))
        } else {
            Verdict::wait(format!(
                "`{group}` has parked {parked} of the {at_least} message(s) needed."
            ))
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { group, at_least } = self;
        write!(
            f,
            "`{group}` parked at least {at_least} message(s) in a dead-letter topic"
        )
    }
}

/// The group's page instances lost at least this many messages: received, never processed,
/// and committed past (see [`crate::ledger`]).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessagesLost {
    pub group: String,
    pub topic: String,
    pub at_least: u64,
}

impl Rule for MessagesLost {
    fn evaluate(&self, view: &LabSnapshot, history: &History) -> Verdict {
        let Self {
            group,
            topic,
            at_least,
        } = self;
        with_ledger(view, history, group, topic, |ledger| {
            let lost = ledger.lost;
            let which = examples(&ledger.lost_sample);
            if lost >= *at_least {
                Verdict::pass(format!("`{group}` lost {lost} message(s): {which}."))
            } else {
                Verdict::wait(format!(
                    "`{group}` has lost {lost} message(s) so far; this step needs {at_least}."
                ))
            }
        })
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            group,
            topic,
            at_least,
        } = self;
        write!(
            f,
            "`{group}` lost at least {at_least} message(s) of `{topic}`"
        )
    }
}

/// Every message in the topic was processed by the group's page instances, and none was lost.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NothingLost {
    pub group: String,
    pub topic: String,
}

impl Rule for NothingLost {
    fn evaluate(&self, view: &LabSnapshot, history: &History) -> Verdict {
        let Self { group, topic } = self;
        with_ledger(view, history, group, topic, |ledger| {
            let total = view.topic(topic).map_or(0, |t| t.message_count()) as u64;
            if !ledger.unknown.is_empty() {
                Verdict::wait(format!(
                    "Your own consumer owned partition(s) {:?} of `{topic}` in `{group}`: grouplab cannot see what it processed, so only page instances can show this step.",
                    ledger.unknown
                ))
            } else if ledger.lost > 0 {
                Verdict::wait(format!(
                    "`{group}` lost {} message(s): {}. Reset the lab to try again.",
                    ledger.lost,
                    examples(&ledger.lost_sample)
                ))
            } else if total == 0 || ledger.processed < total {
                Verdict::wait(format!(
                    "`{group}` has processed {} of the {total} messages in `{topic}`.",
                    ledger.processed
                ))
            } else {
                Verdict::pass(format!(
                    "`{group}` processed all {total} messages and lost none."
                ))
            }
        })
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { group, topic } = self;
        write!(
            f,
            "`{group}` processed every message of `{topic}` and lost none"
        )
    }
}

/// The group's page instances processed at least this many messages more than once.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessagesDuplicated {
    pub group: String,
    pub topic: String,
    pub at_least: u64,
}

impl Rule for MessagesDuplicated {
    fn evaluate(&self, view: &LabSnapshot, history: &History) -> Verdict {
        let Self {
            group,
            topic,
            at_least,
        } = self;
        with_ledger(view, history, group, topic, |ledger| {
            let twice = ledger.duplicated;
            if twice >= *at_least {
                Verdict::pass(format!(
                    "`{group}` processed {twice} message(s) more than once: {}.",
                    examples(&ledger.duplicated_sample)
                ))
            } else {
                Verdict::wait(format!(
                    "`{group}` has processed {twice} message(s) twice so far; this step needs {at_least}."
                ))
            }
        })
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            group,
            topic,
            at_least,
        } = self;
        write!(
            f,
            "`{group}` processed at least {at_least} message(s) of `{topic}` twice"
        )
    }
}

/// Runs `judge` on the group's ledger of the topic, once there is one.
fn with_ledger(
    view: &LabSnapshot,
    history: &History,
    group: &str,
    topic: &str,
    judge: impl FnOnce(&grouplab_protocol::LedgerView) -> Verdict,
) -> Verdict {
    let Some(found) = view.topic(topic) else {
        return Verdict::wait(format!("There is no topic `{topic}` yet."));
    };
    match crate::ledger::ledger(history, group, found) {
        Some(ledger) => judge(&ledger),
        None => Verdict::wait(format!("No instance of `{group}` has read `{topic}` yet.")),
    }
}

/// `P0@15, P0@16, …` for a list of (partition, offset).
fn examples(sample: &[(i32, i64)]) -> String {
    let shown: Vec<String> = sample
        .iter()
        .map(|(partition, offset)| format!("P{partition}@{offset}"))
        .collect();
    if shown.is_empty() {
        "none".to_owned()
    } else {
        shown.join(", ")
    }
}

fn received_exactly_once(
    view: &LabSnapshot,
    history: &History,
    group: &str,
    topic: &str,
) -> Verdict {
    let found = match topic_with_messages(view, topic) {
        Ok(found) => found,
        Err(verdict) => return verdict,
    };
    let empty = HashMap::new();
    let received = history.received.get(group).unwrap_or(&empty);
    let (mut missing, mut duplicated, mut total, mut exact) = (0u64, 0u64, 0u64, true);
    for lane in &found.partitions {
        let counts = received.get(&TopicPartition::new(topic, lane.partition));
        let seen = receipts(counts, lane.log_start, lane.log_end);
        total += (lane.log_end - lane.log_start).max(0) as u64;
        missing += seen.missing;
        duplicated += seen.duplicated;
        exact &= seen.exact;
    }
    if !exact {
        Verdict::wait(format!(
            "`{group}` received too many scattered redeliveries to check one by one; reset the lab to try again."
        ))
    } else if duplicated > 0 {
        Verdict::wait(format!(
            "{duplicated} of {total} messages were received more than once by `{group}` (at-least-once delivery after a rebalance); reset the lab to try again."
        ))
    } else if missing > 0 {
        Verdict::wait(format!(
            "{} of {total} messages received; {missing} not received yet.",
            total - missing
        ))
    } else {
        Verdict::pass(format!("All {total} messages were received exactly once."))
    }
}

/// The topic, if it exists and holds messages; otherwise what the learner should do first.
fn topic_with_messages<'a>(view: &'a LabSnapshot, topic: &str) -> Result<&'a TopicView, Verdict> {
    match view.topic(topic) {
        None => Err(Verdict::wait(format!("There is no topic `{topic}` yet."))),
        Some(found) if found.message_count() == 0 => Err(Verdict::wait(format!(
            "`{topic}` has no messages yet: produce some."
        ))),
        Some(found) => Ok(found),
    }
}

/// Per partition, the best evidence that the group consumed every message: page instances
/// report each message they receive; any member's commits show up at the broker.
fn all_consumed(view: &LabSnapshot, history: &History, group: &str, topic: &str) -> Verdict {
    let found = match topic_with_messages(view, topic) {
        Ok(found) => found,
        Err(verdict) => return verdict,
    };
    let empty = HashMap::new();
    let received = history.received.get(group).unwrap_or(&empty);
    let committed = found.groups.iter().find(|g| g.group == group);
    let (mut by_instances, mut by_commits, mut behind) = (Vec::new(), Vec::new(), Vec::new());
    let mut duplicates = 0u64;
    for (index, lane) in found.partitions.iter().enumerate() {
        if lane.log_end == lane.log_start {
            continue;
        }
        let name = format!("P{}", lane.partition);
        let counts = received.get(&TopicPartition::new(topic, lane.partition));
        let seen = receipts(counts, lane.log_start, lane.log_end);
        let commit = committed.and_then(|g| g.committed.get(index).copied().flatten());
        if seen.missing == 0 {
            duplicates += seen.extra;
            by_instances.push(name);
        } else if commit.is_some_and(|c| c >= lane.log_end) {
            by_commits.push(name);
        } else {
            let done = commit.unwrap_or(lane.log_start).max(lane.log_start);
            behind.push(format!(
                "{name} ({} of {})",
                (lane.log_end - done).max(0),
                lane.log_end - lane.log_start
            ));
        }
    }
    let mut evidence = Vec::new();
    if !by_instances.is_empty() {
        evidence.push(format!(
            "{}: every message received by page instances",
            by_instances.join(", ")
        ));
    }
    if !by_commits.is_empty() {
        evidence.push(format!(
            "{}: `{group}` committed up to the log end (seen at the broker; your own consumers report nothing else)",
            by_commits.join(", ")
        ));
    }
    if duplicates > 0 {
        evidence.push(format!(
            "{duplicates} message(s) were received twice (at-least-once delivery)"
        ));
    }
    if behind.is_empty() {
        Verdict::pass(format!(
            "All {} messages consumed. {}.",
            found.message_count(),
            evidence.join("; ")
        ))
    } else {
        Verdict::wait(format!(
            "Not consumed yet: {}. A consumer commits a little after it reads, so give it a second.",
            behind.join(", ")
        ))
    }
}
