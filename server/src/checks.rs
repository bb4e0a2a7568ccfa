//! Checkpoints: the small vocabulary labs use to say what must have happened, and its evaluation.
//!
//! A [`Check`] is data, read from a lab file. [`evaluate`] is a pure function of the lab's live
//! view (what the broker and the instances show now) and its [`History`] (what happened before),
//! so every check is tested as a table of situations, with no broker.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use grouplab_protocol::{EpochMillis, InstanceId, InstanceState, LabSnapshot, TopicPartition};
use serde::Deserialize;

/// One condition a step waits for.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Check {
    /// The topic exists, with this many partitions if given.
    TopicExists {
        topic: String,
        partitions: Option<i32>,
    },
    /// At least this many messages were written to the topic.
    MessagesProduced { topic: String, at_least: u64 },
    /// The group has exactly this many running members, each owning at least `each_owns_at_least` partitions.
    GroupMembers {
        group: String,
        members: usize,
        #[serde(default)]
        each_owns_at_least: usize,
    },
    /// The running members of the group own every partition of the topic, and no partition twice.
    AssignmentComplete { group: String, topic: String },
    /// Every message in the topic was received by exactly one member of the group (and there is at least one).
    ReceivedExactlyOnce { group: String, topic: String },
    /// A member of the group was crashed while owning partitions, and other members took all of them over.
    CrashReassigned { group: String },
    /// A member of the group was stopped gracefully while owning partitions, and other members took all of them over.
    StopReassigned { group: String },
    /// A graceful stop's partitions were taken over sooner than a crash's were.
    StopFasterThanCrash { group: String },
}

impl fmt::Display for Check {
    /// The checkpoint in words, as the page shows it under each step.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::TopicExists {
                topic,
                partitions: Some(n),
            } => write!(f, "topic `{topic}` exists with {n} partitions"),
            Check::TopicExists {
                topic,
                partitions: None,
            } => write!(f, "topic `{topic}` exists"),
            Check::MessagesProduced { topic, at_least } => {
                write!(f, "at least {at_least} messages were produced to `{topic}`")
            }
            Check::GroupMembers {
                group,
                members,
                each_owns_at_least: 0,
            } => write!(f, "group `{group}` has {members} running members"),
            Check::GroupMembers {
                group,
                members,
                each_owns_at_least,
            } => write!(
                f,
                "group `{group}` has {members} running members, each owning at least {each_owns_at_least} partition(s)"
            ),
            Check::AssignmentComplete { group, topic } => write!(
                f,
                "every partition of `{topic}` is owned by exactly one running member of `{group}`"
            ),
            Check::ReceivedExactlyOnce { group, topic } => write!(
                f,
                "every message in `{topic}` was received by exactly one member of `{group}`"
            ),
            Check::CrashReassigned { group } => write!(
                f,
                "a crashed member's partitions were taken over by the rest of `{group}`"
            ),
            Check::StopReassigned { group } => write!(
                f,
                "a stopped member's partitions were taken over by the rest of `{group}`"
            ),
            Check::StopFasterThanCrash { group } => write!(
                f,
                "in `{group}`, partitions moved sooner after a graceful stop than after a crash"
            ),
        }
    }
}

/// The outcome of one check: whether it holds, and what the server sees, for the learner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub passed: bool,
    pub detail: String,
}

impl Verdict {
    fn pass(detail: impl Into<String>) -> Self {
        Self {
            passed: true,
            detail: detail.into(),
        }
    }

    fn wait(detail: impl Into<String>) -> Self {
        Self {
            passed: false,
            detail: detail.into(),
        }
    }
}

/// How a member lost its partitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Departure {
    Crash,
    Stop,
}

/// Partitions a member lost by a crash or a stop, and other members took over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handover {
    pub group: String,
    pub from: InstanceId,
    pub departure: Departure,
    pub partitions: Vec<TopicPartition>,
    pub left_at: EpochMillis,
    pub taken_at: EpochMillis,
}

impl Handover {
    /// How long the partitions had no working owner.
    pub fn gap_ms(&self) -> u64 {
        self.taken_at.saturating_sub(self.left_at)
    }
}

/// What happened in a lab, beyond what its live view shows now.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// Completed handovers, oldest first.
    pub handovers: Vec<Handover>,
    /// For each group and partition: how many times a member of the group received each offset.
    pub received: HashMap<String, HashMap<TopicPartition, OffsetCounts>>,
}

/// How many times each offset of one partition was received. Offsets are dense from the first one seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OffsetCounts {
    counts: BTreeMap<i64, u32>,
}

impl OffsetCounts {
    pub fn record(&mut self, offset: i64) {
        *self.counts.entry(offset).or_insert(0) += 1;
    }

    pub fn count(&self, offset: i64) -> u32 {
        self.counts.get(&offset).copied().unwrap_or(0)
    }
}

impl History {
    pub fn record_received(&mut self, group: &str, partition: TopicPartition, offset: i64) {
        self.received
            .entry(group.to_owned())
            .or_default()
            .entry(partition)
            .or_default()
            .record(offset);
    }
}

/// Evaluates one check against what the server observed.
pub fn evaluate(check: &Check, view: &LabSnapshot, history: &History) -> Verdict {
    match check {
        Check::TopicExists { topic, partitions } => match (view.topic(topic), partitions) {
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
        },
        Check::MessagesProduced { topic, at_least } => {
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
        Check::GroupMembers {
            group,
            members,
            each_owns_at_least,
        } => {
            let running: Vec<_> = view
                .instances
                .iter()
                .filter(|i| i.group == *group && i.state == InstanceState::Running)
                .collect();
            let short: Vec<&str> = running
                .iter()
                .filter(|i| i.partitions.len() < *each_owns_at_least)
                .map(|i| i.name.as_str())
                .collect();
            if running.len() != *members {
                Verdict::wait(format!(
                    "`{group}` has {} running member(s); this step needs {members}.",
                    running.len()
                ))
            } else if !short.is_empty() {
                Verdict::wait(format!(
                    "{} own(s) fewer than {each_owns_at_least} partition(s) so far.",
                    short.join(", ")
                ))
            } else {
                Verdict::pass(format!("`{group}` has {members} running member(s)."))
            }
        }
        Check::AssignmentComplete { group, topic } => assignment_complete(view, group, topic),
        Check::ReceivedExactlyOnce { group, topic } => {
            received_exactly_once(view, history, group, topic)
        }
        Check::CrashReassigned { group } => handed_over(history, group, Departure::Crash),
        Check::StopReassigned { group } => handed_over(history, group, Departure::Stop),
        Check::StopFasterThanCrash { group } => {
            let fastest = |departure| {
                history
                    .handovers
                    .iter()
                    .filter(|h| h.group == *group && h.departure == departure)
                    .map(Handover::gap_ms)
                    .min()
            };
            match (fastest(Departure::Stop), fastest(Departure::Crash)) {
                (Some(stop), Some(crash)) if stop < crash => Verdict::pass(format!(
                    "After a stop the partitions moved in {}; after a crash, in {}.",
                    seconds(stop),
                    seconds(crash)
                )),
                (Some(stop), Some(crash)) => Verdict::wait(format!(
                    "After a stop the partitions moved in {}, not sooner than after a crash ({}).",
                    seconds(stop),
                    seconds(crash)
                )),
                (None, Some(_)) => Verdict::wait("No graceful stop has been handed over yet."),
                (_, None) => Verdict::wait("No crash has been handed over yet."),
            }
        }
    }
}

fn assignment_complete(view: &LabSnapshot, group: &str, topic: &str) -> Verdict {
    let Some(found) = view.topic(topic) else {
        return Verdict::wait(format!("There is no topic `{topic}` yet."));
    };
    let mut owners: BTreeMap<i32, Vec<&str>> = BTreeMap::new();
    for instance in view
        .instances
        .iter()
        .filter(|i| i.group == group && i.state == InstanceState::Running)
    {
        for tp in instance.partitions.iter().filter(|tp| tp.topic == topic) {
            owners.entry(tp.partition).or_default().push(&instance.name);
        }
    }
    let unowned: Vec<String> = found
        .partitions
        .iter()
        .filter(|p| !owners.contains_key(&p.partition))
        .map(|p| p.partition.to_string())
        .collect();
    let shared: Vec<String> = owners
        .iter()
        .filter(|(_, names)| names.len() > 1)
        .map(|(p, names)| format!("{p} ({})", names.join(" and ")))
        .collect();
    if !shared.is_empty() {
        Verdict::wait(format!("Partition(s) owned twice: {}.", shared.join(", ")))
    } else if !unowned.is_empty() {
        Verdict::wait(format!(
            "Partition(s) {} of `{topic}` have no running owner in `{group}`.",
            unowned.join(", ")
        ))
    } else {
        let summary: Vec<String> = owners
            .iter()
            .map(|(p, names)| format!("{p}→{}", names.join("")))
            .collect();
        Verdict::pass(format!(
            "Each partition has one owner: {}.",
            summary.join(", ")
        ))
    }
}

fn received_exactly_once(
    view: &LabSnapshot,
    history: &History,
    group: &str,
    topic: &str,
) -> Verdict {
    let Some(found) = view.topic(topic) else {
        return Verdict::wait(format!("There is no topic `{topic}` yet."));
    };
    if found.message_count() == 0 {
        return Verdict::wait(format!("`{topic}` has no messages yet: produce some."));
    }
    let empty = HashMap::new();
    let received = history.received.get(group).unwrap_or(&empty);
    let (mut missing, mut duplicated, mut total) = (0u64, 0u64, 0u64);
    for lane in &found.partitions {
        let counts = received.get(&TopicPartition::new(topic, lane.partition));
        for offset in lane.log_start..lane.log_end {
            total += 1;
            match counts.map_or(0, |c| c.count(offset)) {
                0 => missing += 1,
                1 => {}
                _ => duplicated += 1,
            }
        }
    }
    if duplicated > 0 {
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

fn handed_over(history: &History, group: &str, departure: Departure) -> Verdict {
    let what = match departure {
        Departure::Crash => "crashed",
        Departure::Stop => "stopped",
    };
    match history
        .handovers
        .iter()
        .rev()
        .find(|h| h.group == group && h.departure == departure)
    {
        Some(h) => Verdict::pass(format!(
            "The {what} member's partitions moved to other members after {}.",
            seconds(h.gap_ms())
        )),
        None => Verdict::wait(format!(
            "Waiting for a member of `{group}` that owns partitions to be {what}, and for the others to take its partitions."
        )),
    }
}

fn seconds(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use grouplab_protocol::{
        BrokerHealth, BrokerView, ConsumerSettings, InstanceView, PartitionView, TopicView,
    };

    /// A lab view with topic `t` (one entry per partition: its log end) and instances
    /// `(name, state, partitions)` in group `g`.
    fn view(log_ends: &[i64], instances: &[(&str, InstanceState, &[i32])]) -> LabSnapshot {
        let broker = BrokerView {
            bootstrap_servers: "b".into(),
            embedded: true,
            health: BrokerHealth::Up,
        };
        let mut view = LabSnapshot::new("lab", broker, 1);
        if !log_ends.is_empty() {
            view.topics.push(TopicView {
                name: "t".into(),
                partitions: log_ends
                    .iter()
                    .enumerate()
                    .map(|(p, &log_end)| PartitionView {
                        partition: p as i32,
                        log_start: 0,
                        log_end,
                    })
                    .collect(),
                groups: Vec::new(),
            });
        }
        for (n, (name, state, partitions)) in instances.iter().enumerate() {
            view.instances.push(InstanceView {
                id: InstanceId(n as u64 + 1),
                name: (*name).into(),
                colour: n as u8,
                group: "g".into(),
                topic: "t".into(),
                settings: ConsumerSettings::default(),
                state: state.clone(),
                partitions: partitions
                    .iter()
                    .map(|&p| TopicPartition::new("t", p))
                    .collect(),
                received: 0,
                started_at: 0,
            });
        }
        view
    }

    fn received(entries: &[(i32, &[i64])]) -> History {
        let mut history = History::default();
        for (partition, offsets) in entries {
            for &offset in *offsets {
                history.record_received("g", TopicPartition::new("t", *partition), offset);
            }
        }
        history
    }

    fn handover(departure: Departure, gap: u64) -> Handover {
        Handover {
            group: "g".into(),
            from: InstanceId(1),
            departure,
            partitions: vec![TopicPartition::new("t", 0)],
            left_at: 1_000,
            taken_at: 1_000 + gap,
        }
    }

    #[track_caller]
    fn check(check_: Check, view: &LabSnapshot, history: &History, passed: bool, detail: &str) {
        let verdict = evaluate(&check_, view, history);
        assert_eq!(verdict.passed, passed, "{check_}: {}", verdict.detail);
        assert!(
            verdict.detail.contains(detail),
            "{check_}: expected {detail:?} in {:?}",
            verdict.detail
        );
    }

    const RUNNING: InstanceState = InstanceState::Running;

    fn crashed() -> InstanceState {
        InstanceState::Crashed {
            at: 1,
            session_timeout_ms: 10_000,
            noticed_at: None,
        }
    }

    #[test]
    fn topic_exists_needs_the_right_partition_count() {
        let c = |partitions| Check::TopicExists {
            topic: "t".into(),
            partitions,
        };
        let none = History::default();
        check(c(Some(3)), &view(&[], &[]), &none, false, "no topic");
        check(
            c(Some(3)),
            &view(&[0, 0], &[]),
            &none,
            false,
            "has 2 partitions",
        );
        check(
            c(Some(3)),
            &view(&[0, 0, 0], &[]),
            &none,
            true,
            "3 partitions",
        );
        check(c(None), &view(&[0], &[]), &none, true, "exists");
    }

    #[test]
    fn messages_produced_counts_every_partition() {
        let c = Check::MessagesProduced {
            topic: "t".into(),
            at_least: 10,
        };
        let none = History::default();
        check(
            c.clone(),
            &view(&[3, 3, 3], &[]),
            &none,
            false,
            "9 of the 10",
        );
        check(c, &view(&[4, 3, 3], &[]), &none, true, "10 messages");
    }

    #[test]
    fn group_members_counts_running_members_that_own_partitions() {
        let c = Check::GroupMembers {
            group: "g".into(),
            members: 2,
            each_owns_at_least: 1,
        };
        let none = History::default();
        let joining = InstanceState::Joining;
        check(
            c.clone(),
            &view(&[0; 3], &[("A", RUNNING, &[0, 1, 2])]),
            &none,
            false,
            "1 running",
        );
        check(
            c.clone(),
            &view(&[0; 3], &[("A", RUNNING, &[0, 1, 2]), ("B", joining, &[])]),
            &none,
            false,
            "1 running",
        );
        check(
            c.clone(),
            &view(&[0; 3], &[("A", RUNNING, &[0, 1, 2]), ("B", RUNNING, &[])]),
            &none,
            false,
            "B own(s) fewer",
        );
        check(
            c.clone(),
            &view(
                &[0; 3],
                &[
                    ("A", RUNNING, &[0, 1]),
                    ("B", RUNNING, &[2]),
                    ("C", crashed(), &[]),
                ],
            ),
            &none,
            true,
            "2 running",
        );
    }

    #[test]
    fn assignment_must_cover_the_topic_without_overlap() {
        let c = Check::AssignmentComplete {
            group: "g".into(),
            topic: "t".into(),
        };
        let none = History::default();
        check(
            c.clone(),
            &view(&[0; 3], &[("A", RUNNING, &[0, 1]), ("B", RUNNING, &[2])]),
            &none,
            true,
            "0→A, 1→A, 2→B",
        );
        check(
            c.clone(),
            &view(&[0; 3], &[("A", RUNNING, &[0, 1]), ("B", RUNNING, &[1, 2])]),
            &none,
            false,
            "1 (A and B)",
        );
        // A crashed member still holds partition 2 as far as the group knows, but nobody works on it.
        check(
            c,
            &view(&[0; 3], &[("A", RUNNING, &[0, 1]), ("B", crashed(), &[2])]),
            &none,
            false,
            "Partition(s) 2",
        );
    }

    #[test]
    fn every_message_must_be_received_exactly_once() {
        let c = Check::ReceivedExactlyOnce {
            group: "g".into(),
            topic: "t".into(),
        };
        let lanes = view(&[2, 1], &[]);
        check(
            c.clone(),
            &view(&[0, 0], &[]),
            &History::default(),
            false,
            "no messages",
        );
        check(
            c.clone(),
            &lanes,
            &received(&[(0, &[0])]),
            false,
            "2 not received",
        );
        check(
            c.clone(),
            &lanes,
            &received(&[(0, &[0, 1]), (1, &[0])]),
            true,
            "All 3",
        );
        check(
            c.clone(),
            &lanes,
            &received(&[(0, &[0, 1, 1]), (1, &[0])]),
            false,
            "1 of 3 messages were received more than once",
        );
        let mut other_group = received(&[(0, &[0, 1]), (1, &[0])]);
        other_group
            .received
            .insert("other".into(), other_group.received["g"].clone());
        other_group.received.remove("g");
        check(c, &lanes, &other_group, false, "3 not received");
    }

    #[test]
    fn handovers_are_told_apart_by_how_the_member_left() {
        let crash = Check::CrashReassigned { group: "g".into() };
        let stop = Check::StopReassigned { group: "g".into() };
        let lanes = view(&[0], &[]);
        let mut history = History::default();
        check(crash.clone(), &lanes, &history, false, "Waiting");
        history.handovers.push(handover(Departure::Stop, 300));
        check(crash.clone(), &lanes, &history, false, "crashed");
        check(stop.clone(), &lanes, &history, true, "after 0.3 s");
        history.handovers.push(handover(Departure::Crash, 10_400));
        check(crash, &lanes, &history, true, "after 10.4 s");
        let mut other = History::default();
        other.handovers.push(Handover {
            group: "other".into(),
            ..handover(Departure::Stop, 1)
        });
        check(stop, &lanes, &other, false, "Waiting");
    }

    #[test]
    fn a_stop_must_hand_over_sooner_than_a_crash() {
        let c = Check::StopFasterThanCrash { group: "g".into() };
        let lanes = view(&[0], &[]);
        let mut history = History::default();
        check(c.clone(), &lanes, &history, false, "No crash");
        history.handovers.push(handover(Departure::Crash, 10_000));
        check(c.clone(), &lanes, &history, false, "No graceful stop");
        history.handovers.push(handover(Departure::Stop, 12_000));
        check(c.clone(), &lanes, &history, false, "not sooner");
        history.handovers.push(handover(Departure::Stop, 250));
        check(c, &lanes, &history, true, "0.2 s; after a crash, in 10.0 s");
    }

    #[test]
    fn checks_read_from_lab_toml() {
        #[derive(Deserialize)]
        struct Wrapper {
            check: Vec<Check>,
        }
        let parsed: Wrapper = toml::from_str(
            r#"
            [[check]]
            kind = "group_members"
            group = "g"
            members = 2
            [[check]]
            kind = "topic_exists"
            topic = "t"
            "#,
        )
        .expect("checks parse");
        assert_eq!(
            parsed.check,
            [
                Check::GroupMembers {
                    group: "g".into(),
                    members: 2,
                    each_owns_at_least: 0
                },
                Check::TopicExists {
                    topic: "t".into(),
                    partitions: None
                }
            ]
        );
        let unknown = toml::from_str::<Wrapper>("[[check]]\nkind = \"group_size\"\ngroup = \"g\"");
        assert!(unknown.is_err());
    }
}
