//! Checkpoints: the small vocabulary labs use to say what must have happened, and its evaluation.
//!
//! A [`Check`] is data, read from a lab file. Each kind of check is a type of its own, in the
//! file of its family, with its evaluation and its wording side by side ([`Rule`]):
//! [`topics`], [`groups`], [`delivery`], [`streams`] (Redis), [`queues`] (RabbitMQ) and
//! [`crashes`] (across brokers). [`evaluate`] is a pure function of the lab's live view (what the
//! broker and the instances show now) and its [`History`] (what happened before), so every check
//! is tested as a table of situations, with no broker.

pub mod crashes;
pub mod delivery;
pub mod groups;
pub mod queues;
pub mod streams;
pub mod topics;

use std::fmt;

use grouplab_protocol::LabSnapshot;
use serde::Deserialize;

use crate::history::History;

/// One condition a step waits for, as a lab file names it (`kind = "topic_exists"`, then the
/// check's own fields): the kinds are this enum's variants in snake case, and each kind's fields
/// are those of its type, in the file of its family. The variants keep the order lab authors
/// have always seen in the error for an unknown kind.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Check {
    TopicExists(topics::TopicExists),
    MessagesProduced(topics::MessagesProduced),
    EveryPartitionHas(topics::EveryPartitionHas),
    GroupMembers(groups::GroupMembers),
    AssignmentComplete(groups::AssignmentComplete),
    ReceivedExactlyOnce(delivery::ReceivedExactlyOnce),
    AllConsumed(delivery::AllConsumed),
    MaxPollExceeded(groups::MaxPollExceeded),
    NoRebalanceWhileSlow(groups::NoRebalanceWhileSlow),
    KeysStayInPartition(topics::KeysStayInPartition),
    KeyOrderKept(delivery::KeyOrderKept),
    OrderAcrossPartitionsBroken(delivery::OrderAcrossPartitionsBroken),
    LagAtLeast(delivery::LagAtLeast),
    LagStatusSeen(delivery::LagStatusSeen),
    RetriedAtLeast(delivery::RetriedAtLeast),
    DeadLettered(delivery::DeadLettered),
    EagerRevokedAll(groups::EagerRevokedAll),
    CooperativeRevokedOnlyMoved(groups::CooperativeRevokedOnlyMoved),
    StaticMemberReturned(groups::StaticMemberReturned),
    MemberCrashed(groups::MemberCrashed),
    CrashReassigned(groups::CrashReassigned),
    StopReassigned(groups::StopReassigned),
    StopFasterThanCrash(groups::StopFasterThanCrash),
    IdleMember(groups::IdleMember),
    MessagesLost(delivery::MessagesLost),
    NothingLost(delivery::NothingLost),
    MessagesDuplicated(delivery::MessagesDuplicated),
    StreamShared(streams::StreamShared),
    StreamExternalConsumer(streams::StreamExternalConsumer),
    StreamLeftPending(streams::StreamLeftPending),
    StreamClaimed(streams::StreamClaimed),
    StreamDeliveredAtLeast(streams::StreamDeliveredAtLeast),
    StreamAllAcknowledged(streams::StreamAllAcknowledged),
    /// Redis: a connection read the lab's Redis with plain `XREAD`, in no group.
    StreamReaderOutsideGroup,
    QueueShared(queues::QueueShared),
    QueueExternalConsumer(queues::QueueExternalConsumer),
    QueueFairDispatch(queues::QueueFairDispatch),
    QueueRequeuedOnCrash(queues::QueueRequeuedOnCrash),
    QueueLostOnCrash(queues::QueueLostOnCrash),
    QueueHeld(queues::QueueHeld),
    QueueDrained(queues::QueueDrained),
    /// RabbitMQ: grouplab's own broker refused a client an operation and closed its channel.
    QueueOperationRefused,
    CrashCompared(crashes::CrashCompared),
    GroupProtocolIs(groups::GroupProtocolIs),
    RebalancesCompared(groups::RebalancesCompared),
}

/// A kind of check: whether it holds, and what it says, side by side.
trait Rule {
    /// Whether the check holds now, and what the server sees, for the learner.
    fn evaluate(&self, view: &LabSnapshot, history: &History) -> Verdict;
    /// The checkpoint in words, as the page shows it under each step.
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

impl Check {
    fn rule(&self) -> &dyn Rule {
        match self {
            Check::TopicExists(check) => check,
            Check::MessagesProduced(check) => check,
            Check::EveryPartitionHas(check) => check,
            Check::KeysStayInPartition(check) => check,
            Check::GroupMembers(check) => check,
            Check::AssignmentComplete(check) => check,
            Check::IdleMember(check) => check,
            Check::MemberCrashed(check) => check,
            Check::CrashReassigned(check) => check,
            Check::StopReassigned(check) => check,
            Check::StopFasterThanCrash(check) => check,
            Check::EagerRevokedAll(check) => check,
            Check::CooperativeRevokedOnlyMoved(check) => check,
            Check::StaticMemberReturned(check) => check,
            Check::GroupProtocolIs(check) => check,
            Check::RebalancesCompared(check) => check,
            Check::MaxPollExceeded(check) => check,
            Check::NoRebalanceWhileSlow(check) => check,
            Check::ReceivedExactlyOnce(check) => check,
            Check::AllConsumed(check) => check,
            Check::KeyOrderKept(check) => check,
            Check::OrderAcrossPartitionsBroken(check) => check,
            Check::LagAtLeast(check) => check,
            Check::LagStatusSeen(check) => check,
            Check::RetriedAtLeast(check) => check,
            Check::DeadLettered(check) => check,
            Check::MessagesLost(check) => check,
            Check::NothingLost(check) => check,
            Check::MessagesDuplicated(check) => check,
            Check::StreamShared(check) => check,
            Check::StreamExternalConsumer(check) => check,
            Check::StreamLeftPending(check) => check,
            Check::StreamClaimed(check) => check,
            Check::StreamDeliveredAtLeast(check) => check,
            Check::StreamAllAcknowledged(check) => check,
            Check::StreamReaderOutsideGroup => &streams::StreamReaderOutsideGroup,
            Check::QueueShared(check) => check,
            Check::QueueExternalConsumer(check) => check,
            Check::QueueFairDispatch(check) => check,
            Check::QueueRequeuedOnCrash(check) => check,
            Check::QueueLostOnCrash(check) => check,
            Check::QueueHeld(check) => check,
            Check::QueueDrained(check) => check,
            Check::QueueOperationRefused => &queues::QueueOperationRefused,
            Check::CrashCompared(check) => check,
        }
    }
}

impl fmt::Display for Check {
    /// The checkpoint in words, as the page shows it under each step.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.rule().describe(f)
    }
}

/// Evaluates one check against what the server observed.
pub fn evaluate(check: &Check, view: &LabSnapshot, history: &History) -> Verdict {
    check.rule().evaluate(view, history)
}

/// The outcome of one check: whether it holds, and what the server sees, for the learner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub passed: bool,
    pub detail: String,
}

impl Verdict {
    pub(crate) fn pass(detail: impl Into<String>) -> Self {
        Self {
            passed: true,
            detail: detail.into(),
        }
    }

    pub(crate) fn wait(detail: impl Into<String>) -> Self {
        Self {
            passed: false,
            detail: detail.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use grouplab_protocol::{
        BrokerHealth, BrokerView, ConsumerSettings, Departure, GroupOffsets, GroupState, GroupView,
        InstanceId, InstanceState, InstanceView, MemberOrigin, MemberView, MembershipSource,
        PartitionView, TopicPartition, TopicView,
    };

    use crate::history::{QueueHistory, QueueWorker, StreamHistory};
    use crate::membership::Handover;

    /// A lab view with topic `t` (one entry per partition: its log end) and instances
    /// `(name, state, partitions)` in group `g`.
    fn view(log_ends: &[i64], instances: &[(&str, InstanceState, &[i32])]) -> LabSnapshot {
        let broker = BrokerView {
            backend: Default::default(),
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
        let mut members = Vec::new();
        for (n, (name, state, partitions)) in instances.iter().enumerate() {
            let id = InstanceId(n as u64 + 1);
            let partitions: Vec<TopicPartition> = partitions
                .iter()
                .map(|&p| TopicPartition::new("t", p))
                .collect();
            view.instances.push(InstanceView {
                id,
                name: (*name).into(),
                colour: n as u8,
                group: "g".into(),
                topic: "t".into(),
                client_id: format!("grouplab-{name}-{}", id.0),
                settings: ConsumerSettings::default(),
                state: state.clone(),
                partitions: partitions.clone(),
                received: 0,
                processed: 0,
                busy: None,
                queue: None,
                failing: None,
                dead_lettered: 0,
                reported_at_us: 0,
                started_at: 0,
                problem: None,
            });
            members.push(member(
                name,
                MemberOrigin::Instance { instance: id },
                partitions,
            ));
        }
        view.groups.push(GroupView {
            name: "g".into(),
            state: GroupState::Stable,
            generation: Some(1),
            assignor: None,
            leader: None,
            members,
            source: MembershipSource::Coordinator,
            decided_at_us: 0,
            assignment_epoch: None,
            protocol: Default::default(),
        });
        view
    }

    fn member(name: &str, origin: MemberOrigin, partitions: Vec<TopicPartition>) -> MemberView {
        MemberView {
            member_id: format!("{name}-id"),
            client_id: name.into(),
            host: None,
            group_instance_id: None,
            origin,
            name: name.into(),
            colour: 0,
            partitions,
            joined_at: 0,
            last_heartbeat: None,
            session_timeout_ms: None,
            member_epoch: None,
            target: None,
        }
    }

    /// Adds an external member of `g` owning `partitions` of `t`.
    fn with_external(mut view: LabSnapshot, name: &str, partitions: &[i32]) -> LabSnapshot {
        let partitions = partitions
            .iter()
            .map(|&p| TopicPartition::new("t", p))
            .collect();
        view.groups[0]
            .members
            .push(member(name, MemberOrigin::External, partitions));
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
            from: "A".into(),
            external: false,
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
        let c = |partitions| {
            Check::TopicExists(topics::TopicExists {
                topic: "t".into(),
                partitions,
            })
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
        let c = Check::MessagesProduced(topics::MessagesProduced {
            topic: "t".into(),
            at_least: 10,
        });
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
        let c = Check::GroupMembers(groups::GroupMembers {
            group: "g".into(),
            members: 2,
            each_owns_at_least: 1,
        });
        let none = History::default();
        let joining = InstanceState::Joining;
        check(
            c.clone(),
            &view(&[0; 3], &[("A", RUNNING, &[0, 1, 2])]),
            &none,
            false,
            "1 working",
        );
        check(
            c.clone(),
            &view(&[0; 3], &[("A", RUNNING, &[0, 1, 2]), ("B", joining, &[])]),
            &none,
            false,
            "1 working",
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
            "2 working",
        );
        // The learner's own consumers count like page instances.
        check(
            c.clone(),
            &with_external(
                view(&[0; 3], &[("A", RUNNING, &[0, 1])]),
                "rdkafka·3f2a",
                &[2],
            ),
            &none,
            true,
            "(A, rdkafka·3f2a)",
        );
        check(
            c,
            &with_external(with_external(view(&[0; 3], &[]), "x", &[0, 1]), "y", &[]),
            &none,
            false,
            "y own(s) fewer",
        );
    }

    #[test]
    fn assignment_must_cover_the_topic_without_overlap() {
        let c = Check::AssignmentComplete(groups::AssignmentComplete {
            group: "g".into(),
            topic: "t".into(),
        });
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
            &with_external(view(&[0; 3], &[("A", RUNNING, &[0, 1])]), "ext", &[1, 2]),
            &none,
            false,
            "1 (A and ext)",
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
        let c = Check::ReceivedExactlyOnce(delivery::ReceivedExactlyOnce {
            group: "g".into(),
            topic: "t".into(),
        });
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
    fn consumption_is_proven_by_instance_receipts_or_by_commits_at_the_broker() {
        let c = Check::AllConsumed(delivery::AllConsumed {
            group: "g".into(),
            topic: "t".into(),
        });
        let lanes = |committed: Vec<Option<i64>>| {
            let mut v = view(&[2, 1, 0], &[]);
            v.topics[0].groups.push(GroupOffsets {
                group: "g".into(),
                committed,
            });
            v
        };
        let none = History::default();
        check(c.clone(), &view(&[0, 0], &[]), &none, false, "no messages");
        check(
            c.clone(),
            &lanes(vec![Some(2), Some(0), None]),
            &none,
            false,
            "Not consumed yet: P1 (1 of 1)",
        );
        check(
            c.clone(),
            &lanes(vec![Some(2), Some(1), None]),
            &none,
            true,
            "P0, P1: `g` committed up to the log end",
        );
        check(
            c.clone(),
            &lanes(vec![None, Some(1), None]),
            &received(&[(0, &[0, 1, 1])]),
            true,
            "P0: every message received by page instances; P1: `g` committed",
        );
        check(
            c,
            &lanes(vec![Some(1), Some(1), None]),
            &received(&[(0, &[0, 1, 1])]),
            true,
            "1 message(s) were received twice",
        );
    }

    #[test]
    fn handovers_are_told_apart_by_how_the_member_left() {
        let crash = Check::CrashReassigned(groups::CrashReassigned { group: "g".into() });
        let stop = Check::StopReassigned(groups::StopReassigned { group: "g".into() });
        let lanes = view(&[0], &[]);
        let mut history = History::default();
        check(crash.clone(), &lanes, &history, false, "Waiting");
        history.handovers.push(handover(Departure::Graceful, 300));
        check(crash.clone(), &lanes, &history, false, "crashed");
        check(
            stop.clone(),
            &lanes,
            &history,
            true,
            "A, stopped; its partitions moved to other members after 0.3 s",
        );
        history.handovers.push(handover(Departure::Crash, 10_400));
        check(crash, &lanes, &history, true, "after 10.4 s");
        let mut other = History::default();
        other.handovers.push(Handover {
            group: "other".into(),
            ..handover(Departure::Graceful, 1)
        });
        check(stop, &lanes, &other, false, "Waiting");
    }

    #[test]
    fn a_stop_must_hand_over_sooner_than_a_crash() {
        let c = Check::StopFasterThanCrash(groups::StopFasterThanCrash { group: "g".into() });
        let lanes = view(&[0], &[]);
        let mut history = History::default();
        check(c.clone(), &lanes, &history, false, "No crash");
        history.handovers.push(handover(Departure::Crash, 10_000));
        check(c.clone(), &lanes, &history, false, "No graceful stop");
        history
            .handovers
            .push(handover(Departure::Graceful, 12_000));
        check(c.clone(), &lanes, &history, false, "not sooner");
        history.handovers.push(handover(Departure::Graceful, 250));
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
                Check::GroupMembers(groups::GroupMembers {
                    group: "g".into(),
                    members: 2,
                    each_owns_at_least: 0
                }),
                Check::TopicExists(topics::TopicExists {
                    topic: "t".into(),
                    partitions: None
                })
            ]
        );
        let unknown = toml::from_str::<Wrapper>("[[check]]\nkind = \"group_size\"\ngroup = \"g\"");
        assert!(unknown.is_err());
    }

    fn stream_view(length: u64, last_delivered: &str, pending: u64) -> LabSnapshot {
        let broker = BrokerView {
            backend: Default::default(),
            bootstrap_servers: "redis://127.0.0.1:1/".into(),
            embedded: true,
            health: BrokerHealth::Up,
        };
        let mut view = LabSnapshot::new("lab", broker, 1);
        view.streams.push(grouplab_protocol::StreamView {
            name: "s".into(),
            length,
            last_id: (length > 0).then(|| format!("{length}-0")),
            groups: vec![grouplab_protocol::StreamGroupView {
                name: "g".into(),
                last_delivered_id: last_delivered.into(),
                pending,
                ..Default::default()
            }],
            loose_readers: Vec::new(),
        });
        view
    }

    #[test]
    fn a_stream_is_shared_when_enough_consumers_were_handed_entries_and_none_twice() {
        let check = Check::StreamShared(streams::StreamShared {
            group: "g".into(),
            consumers: 2,
        });
        let view = stream_view(0, "0-0", 0);
        let mut history = History::default();
        history.streams.first_handed("g", "1-0", "a");
        history.streams.handed_to("g", "a", false);
        assert!(
            !evaluate(&check, &view, &history).passed,
            "one consumer is not two"
        );
        history.streams.first_handed("g", "2-0", "b");
        history.streams.handed_to("g", "b", false);
        assert!(evaluate(&check, &view, &history).passed);
        // The same entry read by two consumers is not what a group does.
        history.streams.first_handed("g", "1-0", "b");
        assert!(!evaluate(&check, &view, &history).passed);
    }

    #[test]
    fn all_acknowledged_needs_every_entry_handed_out_and_nothing_pending() {
        let check = Check::StreamAllAcknowledged(streams::StreamAllAcknowledged {
            group: "g".into(),
            stream: "s".into(),
        });
        let history = History::default();
        assert!(
            !evaluate(&check, &stream_view(0, "0-0", 0), &history).passed,
            "an empty stream"
        );
        assert!(
            !evaluate(&check, &stream_view(5, "4-0", 0), &history).passed,
            "one not handed out"
        );
        assert!(
            !evaluate(&check, &stream_view(5, "5-0", 2), &history).passed,
            "two pending"
        );
        assert!(evaluate(&check, &stream_view(5, "5-0", 0), &history).passed);
    }

    #[test]
    fn claims_and_deliveries_are_counted_once_per_entry() {
        let mut streams = StreamHistory::default();
        assert!(streams.claimed("g", "1-0"));
        assert!(
            !streams.claimed("g", "1-0"),
            "a second sight of one claim is not news"
        );
        streams.delivered("g", 2);
        streams.delivered("g", 4);
        streams.delivered("g", 3);
        let history = History {
            streams,
            ..History::default()
        };
        let view = stream_view(1, "1-0", 0);
        let claimed = Check::StreamClaimed(streams::StreamClaimed { group: "g".into() });
        assert!(evaluate(&claimed, &view, &history).passed);
        let four = Check::StreamDeliveredAtLeast(streams::StreamDeliveredAtLeast {
            group: "g".into(),
            times: 4,
        });
        let five = Check::StreamDeliveredAtLeast(streams::StreamDeliveredAtLeast {
            group: "g".into(),
            times: 5,
        });
        assert!(evaluate(&four, &view, &history).passed);
        assert!(!evaluate(&five, &view, &history).passed);
    }

    fn empty_view() -> LabSnapshot {
        stream_view(0, "0-0", 0)
    }

    fn worker(prefetch: u16, processing_ms: u32, received: u64) -> QueueWorker {
        QueueWorker {
            queue: "q".into(),
            prefetch,
            processing_ms,
            received,
        }
    }

    #[test]
    fn fair_dispatch_needs_a_prefetch_limit_and_a_faster_worker_that_got_more() {
        let check = Check::QueueFairDispatch(queues::QueueFairDispatch {
            queue: "q".into(),
            ratio: 3,
        });
        let judge = |workers: Vec<QueueWorker>| {
            let history = History {
                queues: QueueHistory {
                    workers: workers
                        .into_iter()
                        .enumerate()
                        .map(|(i, w)| (grouplab_protocol::InstanceId(i as u64), w))
                        .collect(),
                    ..QueueHistory::default()
                },
                ..History::default()
            };
            evaluate(&check, &empty_view(), &history).passed
        };
        // Round-robin without a limit: ten each.
        assert!(!judge(vec![worker(0, 1000, 10), worker(0, 100, 10)]));
        // Without a limit, a lopsided split is not what prefetch did.
        assert!(!judge(vec![worker(0, 1000, 2), worker(0, 100, 18)]));
        // The same speed: no slow worker to be fair to.
        assert!(!judge(vec![worker(1, 100, 2), worker(1, 100, 18)]));
        assert!(!judge(vec![worker(1, 1000, 7), worker(1, 100, 13)]));
        assert!(
            !judge(vec![worker(1, 1000, 1), worker(1, 100, 4)]),
            "one message to the slow one is too early to tell"
        );
        assert!(judge(vec![worker(1, 1000, 2), worker(1, 100, 18)]));
        // The slow one's count is the divisor, whichever was started first.
        assert!(judge(vec![worker(1, 100, 18), worker(1, 1000, 2)]));
    }

    #[test]
    fn a_crash_counts_as_requeued_only_once_something_is_redelivered() {
        let check = Check::QueueRequeuedOnCrash(queues::QueueRequeuedOnCrash { queue: "q".into() });
        let mut history = History::default();
        let view = empty_view();
        assert!(!evaluate(&check, &view, &history).passed, "no crash yet");
        history.queues.crashed_holding.insert("q".into(), 9);
        assert!(
            !evaluate(&check, &view, &history).passed,
            "nothing redelivered yet"
        );
        history.queues.redelivered_after_crash.insert("q".into(), 9);
        assert!(evaluate(&check, &view, &history).passed);
        let other = Check::QueueRequeuedOnCrash(queues::QueueRequeuedOnCrash { queue: "r".into() });
        assert!(!evaluate(&other, &view, &history).passed, "another queue");
    }

    #[test]
    fn a_queue_is_drained_when_it_was_used_and_holds_nothing() {
        let check = Check::QueueDrained(queues::QueueDrained { queue: "q".into() });
        let history = History::default();
        let with = |published, ready, unacked| {
            let mut view = empty_view();
            view.queues.push(grouplab_protocol::RabbitQueueView {
                name: "q".into(),
                published,
                ready,
                unacked,
                ..Default::default()
            });
            view
        };
        assert!(
            !evaluate(&check, &empty_view(), &history).passed,
            "no queue"
        );
        assert!(
            !evaluate(&check, &with(0, 0, 0), &history).passed,
            "never used"
        );
        assert!(
            !evaluate(&check, &with(30, 3, 0), &history).passed,
            "three ready"
        );
        assert!(
            !evaluate(&check, &with(30, 0, 2), &history).passed,
            "two unacked"
        );
        assert!(evaluate(&check, &with(30, 0, 0), &history).passed);
    }

    #[test]
    fn a_crash_is_compared_once_its_work_moved() {
        let check = Check::CrashCompared(crashes::CrashCompared {
            broker: grouplab_protocol::Backend::Redis,
        });
        let history = History::default();
        let with = |held, moved_after_ms| {
            let mut view = empty_view();
            view.crashes.push(grouplab_protocol::CrashReport {
                backend: grouplab_protocol::Backend::Redis,
                lab: "Redis".into(),
                instance: "A".into(),
                at: 1,
                held,
                moved_after_ms,
                delivered_again: 0,
            });
            view
        };
        assert!(
            !evaluate(&check, &empty_view(), &history).passed,
            "no crash"
        );
        assert!(
            !evaluate(&check, &with(0, Some(10)), &history).passed,
            "it held nothing"
        );
        assert!(
            !evaluate(&check, &with(3, None), &history).passed,
            "nothing moved yet"
        );
        assert!(evaluate(&check, &with(3, Some(5_000)), &history).passed);
        let kafka = Check::CrashCompared(crashes::CrashCompared {
            broker: grouplab_protocol::Backend::Kafka,
        });
        assert!(
            !evaluate(&kafka, &with(3, Some(5_000)), &history).passed,
            "another broker"
        );
    }

    #[test]
    fn a_groups_protocol_is_read_from_the_broker() {
        let check = |protocol| {
            Check::GroupProtocolIs(groups::GroupProtocolIs {
                group: "g".into(),
                protocol,
            })
        };
        let running = view(&[0, 0], &[("A", InstanceState::Running, &[0, 1])]);
        let consumer = check(grouplab_protocol::GroupProtocol::Consumer);
        let verdict = evaluate(&consumer, &running, &History::default());
        assert!(!verdict.passed);
        assert!(
            verdict.detail.contains("group.protocol=consumer"),
            "{}",
            verdict.detail
        );
        let mut kip848 = running.clone();
        kip848.groups[0].protocol = grouplab_protocol::GroupProtocol::Consumer;
        kip848.groups[0].assignment_epoch = Some(1);
        let verdict = evaluate(&consumer, &kip848, &History::default());
        assert!(verdict.passed);
        assert!(
            verdict.detail.contains("group epoch 1, assignment epoch 1"),
            "{}",
            verdict.detail
        );
        assert!(
            !evaluate(&consumer, &empty_view(), &History::default()).passed,
            "no members"
        );
    }

    #[test]
    fn rebalances_are_compared_once_each_group_had_one() {
        let check = Check::RebalancesCompared(groups::RebalancesCompared {
            groups: vec!["eager".into(), "kip848".into()],
            members: 3,
        });
        let tp = |p| TopicPartition::new("t", p);
        let mut history = History::default();
        // Eager: a member gives up both its partitions and gets one back 3 s later.
        history.record_released("eager", &[tp(0), tp(1)], 2, 1_000, 3);
        history.record_regained("eager", &[tp(0)], 4_000);
        // A rebalance with two members (a crash, say) is not compared.
        history.record_released("kip848", &[tp(2)], 1, 5_000, 2);
        history.record_regained("kip848", &[tp(2)], 9_000);
        let verdict = evaluate(&check, &empty_view(), &history);
        assert!(!verdict.passed);
        assert!(verdict.detail.contains("`kip848`"), "{}", verdict.detail);
        // Consumer protocol: one partition moves, in 0.4 s.
        history.record_released("kip848", &[tp(2)], 3, 10_000, 3);
        history.record_regained("kip848", &[tp(2)], 10_400);
        let verdict = evaluate(&check, &empty_view(), &history);
        assert!(verdict.passed, "{}", verdict.detail);
        assert!(
            verdict
                .detail
                .contains("`eager`: 1 partition handover(s), the longest 3.0 s"),
            "{}",
            verdict.detail
        );
        assert!(
            verdict.detail.contains("1 member(s) gave up everything"),
            "{}",
            verdict.detail
        );
        assert!(
            verdict
                .detail
                .contains("`kip848`: 1 partition handover(s), the longest 400 ms"),
            "{}",
            verdict.detail
        );
        assert!(
            verdict.detail.contains("0 member(s) gave up everything"),
            "{}",
            verdict.detail
        );
    }
}
