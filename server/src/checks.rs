//! Checkpoints: the small vocabulary labs use to say what must have happened, and its evaluation.
//!
//! A [`Check`] is data, read from a lab file. [`evaluate`] is a pure function of the lab's live
//! view (what the broker and the instances show now) and its [`History`] (what happened before),
//! so every check is tested as a table of situations, with no broker.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use grouplab_protocol::{
    Departure, EpochMillis, InstanceState, LabSnapshot, MemberView, TopicPartition, TopicView,
};
use serde::Deserialize;

pub use crate::membership::Handover;

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
    /// Every partition of the topic holds at least this many messages.
    EveryPartitionHas { topic: String, at_least: u64 },
    /// The group has exactly this many working members (whoever runs them), each owning at least `each_owns_at_least` partitions.
    GroupMembers {
        group: String,
        members: usize,
        #[serde(default)]
        each_owns_at_least: usize,
    },
    /// The working members of the group own every partition of the topic, and no partition twice.
    AssignmentComplete { group: String, topic: String },
    /// Every message in the topic was received exactly once by the group's page instances
    /// (and there is at least one). Only page instances report each message they receive.
    ReceivedExactlyOnce { group: String, topic: String },
    /// Every message in the topic was consumed by the group, whoever its members are (and there is at least one):
    /// per partition, either page instances received every message, or the group committed up to the log end.
    AllConsumed { group: String, topic: String },
    /// A page instance's client left the group because processing kept it from polling within
    /// `max.poll.interval.ms`.
    MaxPollExceeded { group: String },
    /// A running page instance of the group whose batches take longer to process than its
    /// `max.poll.interval.ms` has kept processing for `seconds` without the group rebalancing:
    /// it processes off the poll loop (the worker queue).
    NoRebalanceWhileSlow { group: String, seconds: u64 },
    /// At least `at_least` keys were produced to the topic by the page, each landing in a single
    /// partition, and together in more than one.
    KeysStayInPartition { topic: String, at_least: usize },
    /// The group's page instances received at least `at_least` keyed messages, and every
    /// message arrived after the earlier messages with its key.
    KeyOrderKept {
        group: String,
        topic: String,
        at_least: u64,
    },
    /// A page instance of the group received a message after one produced later, from another
    /// partition: there is no order across partitions.
    OrderAcrossPartitionsBroken { group: String, topic: String },
    /// The group's lag on the topic, summed over its partitions, is at least `at_least` now.
    LagAtLeast {
        group: String,
        topic: String,
        at_least: i64,
    },
    /// A partition of the topic has this lag status for the group now (see [`crate::lag`]).
    LagStatusSeen {
        group: String,
        topic: String,
        status: grouplab_protocol::LagStatus,
    },
    /// A page instance of the group tried one failing message at least `attempts` times.
    RetriedAtLeast { group: String, attempts: u32 },
    /// The group's page instances parked at least `at_least` messages in a dead-letter topic.
    DeadLettered { group: String, at_least: u64 },
    /// In a rebalance, a running page instance of the group gave up every partition it held
    /// (the eager protocol of the range and round-robin assignors).
    EagerRevokedAll { group: String },
    /// In rebalances, running page instances of the group gave up only the partitions that
    /// moved, never everything (cooperative-sticky).
    CooperativeRevokedOnlyMoved { group: String },
    /// A static member (`group.instance.id`) left and came back to the same partitions without
    /// the group rebalancing.
    StaticMemberReturned { group: String },
    /// A page instance of the group was crashed (from the page, or by its own "crash after"),
    /// or a member of it was removed after its session timed out.
    MemberCrashed { group: String },
    /// A member of the group was crashed while owning partitions, and other members took all of them over.
    CrashReassigned { group: String },
    /// A member of the group was stopped gracefully while owning partitions, and other members took all of them over.
    StopReassigned { group: String },
    /// A graceful stop's partitions were taken over sooner than a crash's were.
    StopFasterThanCrash { group: String },
    /// Every partition of the topic has a working owner in the group, and at least one working
    /// member owns none: more members than partitions.
    IdleMember { group: String, topic: String },
    /// The group's page instances lost at least this many messages: received, never processed,
    /// and committed past (see [`crate::ledger`]).
    MessagesLost {
        group: String,
        topic: String,
        at_least: u64,
    },
    /// Every message in the topic was processed by the group's page instances, and none was lost.
    NothingLost { group: String, topic: String },
    /// The group's page instances processed at least this many messages more than once.
    MessagesDuplicated {
        group: String,
        topic: String,
        at_least: u64,
    },
    /// Redis: at least `consumers` consumers of the group (whoever runs them) were handed
    /// entries, and no entry was handed to two of them by a read.
    StreamShared { group: String, consumers: usize },
    /// Redis: a consumer the page does not run (the learner's own) was handed entries.
    StreamExternalConsumer { group: String },
    /// Redis: a crashed page instance of the group was seen still holding pending entries.
    StreamLeftPending { group: String },
    /// Redis: a consumer of the group claimed entries another consumer had left pending.
    StreamClaimed { group: String },
    /// Redis: one entry was delivered to the group's consumers at least `times` times.
    StreamDeliveredAtLeast { group: String, times: u64 },
    /// Redis: the group was handed every entry of the stream (there is at least one) and
    /// holds none pending: everything was acknowledged.
    StreamAllAcknowledged { group: String, stream: String },
    /// Redis: a connection read the lab's Redis with plain `XREAD`, in no group.
    StreamReaderOutsideGroup,
    /// RabbitMQ: at least `consumers` consumers of the queue (whoever runs them) were handed messages.
    QueueShared { queue: String, consumers: usize },
    /// RabbitMQ: a consumer the page does not run (the learner's own) was handed messages of the queue.
    QueueExternalConsumer { queue: String },
    /// RabbitMQ: two page instances with a prefetch limit and different processing times were
    /// handed messages of the queue, the faster at least `ratio` times as many as the slower.
    QueueFairDispatch { queue: String, ratio: u64 },
    /// RabbitMQ: a page instance crashed holding unacked messages of the queue, and a message
    /// was then delivered again, marked redelivered.
    QueueRequeuedOnCrash { queue: String },
    /// RabbitMQ: a page instance that consumed the queue with auto-ack crashed holding messages
    /// it had been sent and had not processed: they are gone.
    QueueLostOnCrash { queue: String },
    /// RabbitMQ: the queue was seen holding at least `at_least` messages (a dead-letter queue
    /// receiving rejected ones, say).
    QueueHeld { queue: String, at_least: u64 },
    /// RabbitMQ: messages were published to the queue, and it holds none now, ready or unacked.
    QueueDrained { queue: String },
    /// RabbitMQ: grouplab's own broker refused a client an operation and closed its channel.
    QueueOperationRefused,
    /// Any lab of this server: a page instance on this broker crashed holding work, and the
    /// work reached another consumer (or, with auto-ack, was lost).
    CrashCompared { broker: grouplab_protocol::Backend },
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
            Check::EveryPartitionHas { topic, at_least } => write!(
                f,
                "every partition of `{topic}` holds at least {at_least} messages"
            ),
            Check::GroupMembers {
                group,
                members,
                each_owns_at_least: 0,
            } => write!(f, "group `{group}` has {members} working members"),
            Check::GroupMembers {
                group,
                members,
                each_owns_at_least,
            } => write!(
                f,
                "group `{group}` has {members} working members, each owning at least {each_owns_at_least} partition(s)"
            ),
            Check::AssignmentComplete { group, topic } => write!(
                f,
                "every partition of `{topic}` is owned by exactly one working member of `{group}`"
            ),
            Check::ReceivedExactlyOnce { group, topic } => write!(
                f,
                "every message in `{topic}` was received exactly once by `{group}`'s page instances"
            ),
            Check::AllConsumed { group, topic } => {
                write!(f, "every message in `{topic}` was consumed by `{group}`")
            }
            Check::MemberCrashed { group } => write!(f, "a member of `{group}` crashed"),
            Check::KeysStayInPartition { topic, at_least } => write!(
                f,
                "at least {at_least} keys of `{topic}` each landed in one partition"
            ),
            Check::KeyOrderKept {
                group,
                topic,
                at_least,
            } => write!(
                f,
                "`{group}` received at least {at_least} keyed messages of `{topic}`, each key in order"
            ),
            Check::OrderAcrossPartitionsBroken { group, topic } => write!(
                f,
                "a member of `{group}` received messages of `{topic}` out of produce order across partitions"
            ),
            Check::LagAtLeast {
                group,
                topic,
                at_least,
            } => write!(
                f,
                "`{group}` is at least {at_least} messages behind on `{topic}`"
            ),
            Check::LagStatusSeen {
                group,
                topic,
                status,
            } => write!(
                f,
                "a partition of `{topic}` shows {} for `{group}`",
                status.label()
            ),
            Check::RetriedAtLeast { group, attempts } => write!(
                f,
                "a member of `{group}` tried a failing message {attempts} times"
            ),
            Check::DeadLettered { group, at_least } => write!(
                f,
                "`{group}` parked at least {at_least} message(s) in a dead-letter topic"
            ),
            Check::EagerRevokedAll { group } => write!(
                f,
                "in `{group}`, a rebalance made a running member give up every partition"
            ),
            Check::CooperativeRevokedOnlyMoved { group } => write!(
                f,
                "in `{group}`, rebalances took from running members only the partitions that moved"
            ),
            Check::StaticMemberReturned { group } => write!(
                f,
                "a static member of `{group}` came back to its partitions without a rebalance"
            ),
            Check::MaxPollExceeded { group } => write!(
                f,
                "a member of `{group}` was removed for not polling within max.poll.interval.ms"
            ),
            Check::NoRebalanceWhileSlow { group, seconds } => write!(
                f,
                "a slow member of `{group}` kept processing for {seconds} s without a rebalance"
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
            Check::IdleMember { group, topic } => write!(
                f,
                "every partition of `{topic}` is owned in `{group}`, and a working member owns none"
            ),
            Check::MessagesLost {
                group,
                topic,
                at_least,
            } => write!(
                f,
                "`{group}` lost at least {at_least} message(s) of `{topic}`"
            ),
            Check::NothingLost { group, topic } => write!(
                f,
                "`{group}` processed every message of `{topic}` and lost none"
            ),
            Check::MessagesDuplicated {
                group,
                topic,
                at_least,
            } => write!(
                f,
                "`{group}` processed at least {at_least} message(s) of `{topic}` twice"
            ),
            Check::StreamShared { group, consumers } => write!(
                f,
                "{consumers} consumers of `{group}` were each handed entries, and no entry went to two of them"
            ),
            Check::StreamExternalConsumer { group } => write!(
                f,
                "a consumer of `{group}` that you run yourself was handed entries"
            ),
            Check::StreamLeftPending { group } => write!(
                f,
                "a crashed consumer of `{group}` still holds pending entries"
            ),
            Check::StreamClaimed { group } => write!(
                f,
                "a consumer of `{group}` claimed entries another consumer left pending"
            ),
            Check::StreamDeliveredAtLeast { group, times } => write!(
                f,
                "one entry was delivered to `{group}` at least {times} times"
            ),
            Check::StreamAllAcknowledged { group, stream } => write!(
                f,
                "`{group}` was handed every entry of `{stream}` and acknowledged them all"
            ),
            Check::StreamReaderOutsideGroup => {
                write!(f, "a reader in no group (plain XREAD) was seen")
            }
            Check::QueueShared { queue, consumers } => write!(
                f,
                "{consumers} consumers of `{queue}` were each handed messages"
            ),
            Check::QueueExternalConsumer { queue } => write!(
                f,
                "a consumer of `{queue}` that you run yourself was handed messages"
            ),
            Check::QueueFairDispatch { queue, ratio } => write!(
                f,
                "with a prefetch limit, a fast consumer of `{queue}` was handed at least {ratio} times as many messages as a slow one"
            ),
            Check::QueueRequeuedOnCrash { queue } => write!(
                f,
                "a consumer of `{queue}` crashed holding unacked messages, and they were delivered again, marked redelivered"
            ),
            Check::QueueLostOnCrash { queue } => write!(
                f,
                "an auto-ack consumer of `{queue}` crashed, and the messages it had been sent were lost"
            ),
            Check::QueueHeld { queue, at_least } => {
                write!(f, "`{queue}` held at least {at_least} message(s)")
            }
            Check::QueueDrained { queue } => write!(
                f,
                "every message published to `{queue}` was consumed and acknowledged"
            ),
            Check::QueueOperationRefused => {
                write!(f, "RabbitMQ was seen refusing a client an operation")
            }
            Check::CrashCompared { broker } => write!(
                f,
                "a consumer crashed holding work on {}, and the work moved on",
                broker.label()
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

/// What happened in a lab, beyond what its live view shows now.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// Completed handovers, oldest first.
    pub handovers: Vec<Handover>,
    /// For each group and partition: how many times a page instance of the group received each offset.
    pub received: HashMap<String, HashMap<TopicPartition, OffsetCounts>>,
    /// For each group and partition: how many times a page instance of the group finished processing each offset.
    pub processed: HashMap<String, HashMap<TopicPartition, OffsetCounts>>,
    /// For each group: how many times a page instance's client left it over a late poll.
    pub poll_timeouts: HashMap<String, u32>,
    /// For each group: when its generation last changed (a rebalance), as this server saw it.
    pub rebalanced_at: HashMap<String, EpochMillis>,
    /// For each group: when a page instance last finished processing a message.
    pub last_processed: HashMap<String, EpochMillis>,
    /// The time of the evaluation, for checks about how long something has lasted.
    pub now: EpochMillis,
    /// For each group: how many times a running page instance's revoke callback gave up every
    /// partition it held (eager) or only some of them (cooperative).
    pub revocations: HashMap<String, Revocations>,
    /// Static members that left: (group, `group.instance.id`) → the partitions held and the
    /// group's generation at the time.
    pub static_left: HashMap<(String, String), (Vec<TopicPartition>, Option<i32>)>,
    /// For each group: static members that came back to the same partitions with the group's
    /// generation unchanged, by id.
    pub static_returns: HashMap<String, Vec<String>>,
    /// For each group and topic: the order in which page instances received messages.
    pub order: HashMap<(String, String), Order>,
    /// For each group: the most attempts a page instance made at one failing message.
    pub attempts: HashMap<String, u32>,
    /// For each group: how many messages its page instances parked in a dead-letter topic.
    pub dead_lettered: HashMap<String, u64>,
    /// For each group: how many of its page instances crashed.
    pub crashed: HashMap<String, u32>,
    /// For each group: the partitions one of the learner's own consumers owned at some point.
    pub external: HashMap<String, std::collections::BTreeSet<TopicPartition>>,
    /// What Redis Streams groups did.
    pub streams: StreamHistory,
    /// What RabbitMQ queues' consumers did.
    pub queues: QueueHistory,
}

/// What a RabbitMQ lab's consumers did, as page instances reported it and as polls of the
/// management API saw it. Keyed by queue: a queue has no groups.
#[derive(Clone, Debug, Default)]
pub struct QueueHistory {
    /// For each queue: consumer tags that were handed messages.
    pub handed: HashMap<String, std::collections::BTreeSet<String>>,
    /// For each queue: the tags among those that the page does not run.
    pub handed_externally: HashMap<String, std::collections::BTreeSet<String>>,
    /// For each queue: how many messages page instances were handed.
    pub received_by_instances: HashMap<String, u64>,
    /// Each page instance that consumed a queue: what it was set to, and how much it got.
    pub workers: HashMap<grouplab_protocol::InstanceId, QueueWorker>,
    /// For each queue: the most unacked messages a page instance held as it crashed.
    pub crashed_holding: HashMap<String, u64>,
    /// For each queue: messages delivered marked redelivered after such a crash.
    pub redelivered_after_crash: HashMap<String, u64>,
    /// For each queue: messages an auto-ack page instance had been sent and not processed when it crashed.
    pub lost_on_crash: HashMap<String, u64>,
    /// For each queue: the most messages (ready and unacked) it was seen holding.
    pub most_held: HashMap<String, u64>,
    /// Whether the broker was seen refusing a client an operation (from its log).
    pub refused: bool,
}

/// One page instance's share of a queue.
#[derive(Clone, Debug, Default)]
pub struct QueueWorker {
    pub queue: String,
    pub prefetch: u16,
    pub processing_ms: u32,
    pub received: u64,
}

impl QueueHistory {
    pub fn handed_to(&mut self, queue: &str, tag: &str, external: bool) {
        self.handed
            .entry(queue.to_owned())
            .or_default()
            .insert(tag.to_owned());
        if external {
            self.handed_externally
                .entry(queue.to_owned())
                .or_default()
                .insert(tag.to_owned());
        }
    }

    /// The fastest-to-slowest ratio of messages handed to two page instances of the queue that
    /// both had a prefetch limit and differed in processing time (the slower handed two at
    /// least), with both counts.
    pub fn best_fair_ratio(&self, queue: &str) -> Option<(u64, u64, u64)> {
        let workers: Vec<&QueueWorker> = self
            .workers
            .values()
            .filter(|w| w.queue == queue && w.prefetch > 0 && w.received > 0)
            .collect();
        let mut best: Option<(u64, u64, u64)> = None;
        for slow in &workers {
            for fast in &workers {
                // Two messages at least for the slow one: a ratio over one is chance.
                if fast.processing_ms < slow.processing_ms && slow.received >= 2 {
                    let ratio = fast.received / slow.received;
                    if best.is_none_or(|(r, _, _)| ratio > r) {
                        best = Some((ratio, fast.received, slow.received));
                    }
                }
            }
        }
        best
    }
}

/// The most entry ids remembered per group, for telling first deliveries from repeats and claims.
const MAX_REMEMBERED_ENTRIES: usize = 10_000;

/// What a Redis lab's groups did, as page instances reported it and as polls of Redis saw it.
#[derive(Clone, Debug, Default)]
pub struct StreamHistory {
    /// For each group: consumers that were handed entries (page instances by their reports,
    /// others when Redis showed them holding entries).
    pub handed: HashMap<String, std::collections::BTreeSet<String>>,
    /// For each group: the consumers among those that the page does not run.
    pub handed_externally: HashMap<String, std::collections::BTreeSet<String>>,
    /// For each group: which consumer each entry was first handed to (page instances' reports),
    /// at most [`MAX_REMEMBERED_ENTRIES`].
    pub first: HashMap<String, HashMap<String, String>>,
    /// For each group: entries first handed to two different consumers: not what a group does.
    pub handed_twice: HashMap<String, u64>,
    /// For each group: entries claimed by a consumer from another, by id.
    pub claims: HashMap<String, std::collections::BTreeSet<String>>,
    /// For each group: the most entries a crashed page instance was seen holding pending.
    pub left_pending: HashMap<String, u64>,
    /// For each group: the most times one entry was delivered.
    pub most_deliveries: HashMap<String, u64>,
    /// Whether a connection reading in no group (plain `XREAD`) was seen.
    pub loose_readers: bool,
}

impl StreamHistory {
    pub fn handed_to(&mut self, group: &str, consumer: &str, external: bool) {
        self.handed
            .entry(group.to_owned())
            .or_default()
            .insert(consumer.to_owned());
        if external {
            self.handed_externally
                .entry(group.to_owned())
                .or_default()
                .insert(consumer.to_owned());
        }
    }

    /// An entry read (not claimed) by a page instance.
    pub fn first_handed(&mut self, group: &str, id: &str, consumer: &str) {
        let first = self.first.entry(group.to_owned()).or_default();
        match first.get(id) {
            Some(before) if before != consumer => {
                *self.handed_twice.entry(group.to_owned()).or_default() += 1;
            }
            Some(_) => {}
            None if first.len() < MAX_REMEMBERED_ENTRIES => {
                first.insert(id.to_owned(), consumer.to_owned());
            }
            None => {}
        }
    }

    /// How many entries page instances of the group were handed by reads.
    pub fn first_received(&self, group: &str) -> u64 {
        self.first.get(group).map_or(0, |f| f.len() as u64)
    }

    /// Records a claim; `true` if this entry's claim is news.
    pub fn claimed(&mut self, group: &str, id: &str) -> bool {
        let claims = self.claims.entry(group.to_owned()).or_default();
        claims.len() < MAX_REMEMBERED_ENTRIES && claims.insert(id.to_owned())
    }

    pub fn delivered(&mut self, group: &str, deliveries: u64) {
        let most = self.most_deliveries.entry(group.to_owned()).or_default();
        *most = (*most).max(deliveries);
    }
}

/// What the order of arrivals in one group and topic looked like, with what it needs to judge
/// the next arrival: the highest number seen per key and per instance (keys are capped by the
/// producer's limits, instances by the supervisor's).
#[derive(Clone, Debug, Default)]
pub struct Order {
    pub view: grouplab_protocol::OrderView,
    last_by_key: HashMap<String, u64>,
    last_by_instance: HashMap<grouplab_protocol::InstanceId, (u64, i32)>,
}

impl Order {
    /// One first-time arrival of message number `number` at `instance`.
    pub fn arrived(
        &mut self,
        instance: grouplab_protocol::InstanceId,
        key: Option<&str>,
        number: u64,
        partition: i32,
    ) {
        if let Some(key) = key {
            self.view.keyed += 1;
            // Looked up before inserting: most arrivals are of a key seen before.
            match self.last_by_key.get_mut(key) {
                Some(last) if number < *last => self.view.out_of_key_order += 1,
                Some(last) => *last = number,
                None => {
                    self.last_by_key.insert(key.to_owned(), number);
                }
            }
        }
        let last = self
            .last_by_instance
            .entry(instance)
            .or_insert((0, partition));
        if number < last.0 {
            self.view.overtaken += 1;
            if self.view.example.is_none() {
                self.view.example = Some(format!(
                    "#{number} (P{partition}) arrived after #{} (P{})",
                    last.0, last.1
                ));
            }
        } else {
            *last = (number, partition);
        }
    }
}

/// The number grouplab's producer writes into each value (`click #12 by user-3`), if any.
pub fn produced_number(value: &str) -> Option<u64> {
    let digits: String = value
        .strip_prefix("click #")?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// How a group's running members gave partitions up in rebalances.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Revocations {
    /// Revocations of everything a member held: the eager protocol's stop-the-world.
    pub everything: u32,
    /// Revocations of part of what a member held: the cooperative protocol's moves.
    pub some: u32,
}

/// How many times each offset of one partition was received, as runs of consecutive offsets
/// received the same number of times. Normal consumption is one run per partition however many
/// messages flow; each redelivery adds a run or two; so memory and the checks' work grow with
/// what happened, not with the number of messages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OffsetCounts {
    /// Run start → (end, exclusive; how many times each offset in it was received, at least 1).
    runs: BTreeMap<i64, (i64, u32)>,
    /// Set when a receipt was dropped because [`MAX_RUNS`] was reached: counts are then a floor.
    overflowed: bool,
}

/// The most runs one partition keeps: far more than any lab makes, and a bound on a pathological one.
pub const MAX_RUNS: usize = 10_000;

/// What a range of offsets received.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Receipts {
    /// Offsets never received.
    pub missing: u64,
    /// Offsets received more than once.
    pub duplicated: u64,
    /// Receipts beyond the first, summed over the range.
    pub extra: u64,
    /// False when the record overflowed and the numbers may be short.
    pub exact: bool,
}

impl OffsetCounts {
    pub fn record(&mut self, offset: i64) {
        let found = self
            .runs
            .range(..=offset)
            .next_back()
            .filter(|(_, (end, _))| offset < *end)
            .map(|(&start, &(end, count))| (start, end, count));
        let pieces = match found {
            Some((start, end, count)) => [
                (start, offset, count),
                (offset, offset + 1, count + 1),
                (offset + 1, end, count),
            ],
            None => [
                (offset, offset, 0),
                (offset, offset + 1, 1),
                (offset + 1, offset + 1, 0),
            ],
        };
        if self.runs.len() + 2 > MAX_RUNS {
            self.overflowed = true;
            return;
        }
        if let Some((start, ..)) = found {
            self.runs.remove(&start);
        }
        for (start, end, count) in pieces {
            if start < end {
                self.runs.insert(start, (end, count));
            }
        }
        self.merge_at(offset + 1);
        self.merge_at(offset);
    }

    /// Joins the run starting at `start` to the run just before it, if they touch and agree.
    fn merge_at(&mut self, start: i64) {
        let Some(&(end, count)) = self.runs.get(&start) else {
            return;
        };
        let before = self
            .runs
            .range(..start)
            .next_back()
            .map(|(&s, &(e, c))| (s, e, c));
        if let Some((previous, previous_end, previous_count)) = before
            && previous_end == start
            && previous_count == count
        {
            self.runs.remove(&start);
            self.runs.insert(previous, (end, count));
        }
    }

    pub fn count(&self, offset: i64) -> u32 {
        self.runs
            .range(..=offset)
            .next_back()
            .filter(|(_, (end, _))| offset < *end)
            .map_or(0, |(_, (_, count))| *count)
    }

    /// The ranges of `from..to` whose offsets were recorded `wanted` times (`0`: never), in order.
    pub fn ranges(&self, from: i64, to: i64, wanted: impl Fn(u32) -> bool) -> Vec<(i64, i64)> {
        let mut out: Vec<(i64, i64)> = Vec::new();
        let mut push = |start: i64, end: i64| {
            if start >= end {
                return;
            }
            match out.last_mut() {
                Some(last) if last.1 == start => last.1 = end,
                _ => out.push((start, end)),
            }
        };
        let mut at = from;
        let first = self
            .runs
            .range(..=from)
            .next_back()
            .map_or(from, |(&start, _)| start);
        for (&start, &(end, count)) in self.runs.range(first..to) {
            let (start, end) = (start.max(from), end.min(to));
            if start >= end {
                continue;
            }
            if wanted(0) {
                push(at, start);
            }
            if wanted(count) {
                push(start, end);
            }
            at = end;
        }
        if wanted(0) {
            push(at, to);
        }
        out
    }

    /// Whether a receipt was dropped at the cap, so that counts are a floor.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// What the offsets `from..to` received, walking runs rather than offsets.
    pub fn receipts(&self, from: i64, to: i64) -> Receipts {
        let mut receipts = Receipts {
            exact: !self.overflowed,
            ..Receipts::default()
        };
        let mut covered = 0u64;
        let first = self
            .runs
            .range(..=from)
            .next_back()
            .map_or(from, |(&start, _)| start);
        for (&start, &(end, count)) in self.runs.range(first..to) {
            let overlap = (end.min(to) - start.max(from)).max(0) as u64;
            covered += overlap;
            if count > 1 {
                receipts.duplicated += overlap;
                receipts.extra += overlap * u64::from(count - 1);
            }
        }
        receipts.missing = ((to - from).max(0) as u64).saturating_sub(covered);
        receipts
    }
}

/// What `counts`, if any, says about `from..to`: everything missing when nothing was received.
fn receipts(counts: Option<&OffsetCounts>, from: i64, to: i64) -> Receipts {
    counts.map_or(
        Receipts {
            missing: (to - from).max(0) as u64,
            exact: true,
            ..Receipts::default()
        },
        |c| c.receipts(from, to),
    )
}

impl History {
    /// Whether a page instance of the group received this offset before.
    pub fn received_before(&self, group: &str, partition: &TopicPartition, offset: i64) -> bool {
        self.received
            .get(group)
            .and_then(|g| g.get(partition))
            .is_some_and(|counts| counts.count(offset) > 0)
    }

    pub fn record_received(&mut self, group: &str, partition: TopicPartition, offset: i64) {
        self.received
            .entry(group.to_owned())
            .or_default()
            .entry(partition)
            .or_default()
            .record(offset);
    }

    pub fn record_processed(&mut self, group: &str, partition: TopicPartition, offset: i64) {
        self.processed
            .entry(group.to_owned())
            .or_default()
            .entry(partition)
            .or_default()
            .record(offset);
    }

    pub fn record_revocation(&mut self, group: &str, revoked: usize, held: usize) {
        if revoked == 0 {
            return;
        }
        let counts = self.revocations.entry(group.to_owned()).or_default();
        if revoked >= held {
            counts.everything += 1;
        } else {
            counts.some += 1;
        }
    }

    /// A static member's process exited holding `partitions`.
    pub fn static_left(
        &mut self,
        group: &str,
        id: &str,
        partitions: Vec<TopicPartition>,
        generation: Option<i32>,
    ) {
        if !partitions.is_empty() {
            self.static_left
                .insert((group.to_owned(), id.to_owned()), (partitions, generation));
        }
    }

    /// A static member was assigned `partitions`: a return if they are the ones its predecessor
    /// held and the group has not rebalanced since it left.
    pub fn static_rejoined(
        &mut self,
        group: &str,
        id: &str,
        partitions: &[TopicPartition],
        generation: Option<i32>,
    ) {
        let key = (group.to_owned(), id.to_owned());
        let Some((held, left_in)) = self.static_left.remove(&key) else {
            return;
        };
        let mut got = partitions.to_vec();
        got.sort();
        if got == held && left_in == generation {
            self.static_returns
                .entry(group.to_owned())
                .or_default()
                .push(id.to_owned());
        }
    }

    /// Notes that one of the learner's own consumers owns these partitions in `group`.
    pub fn record_external_owner(&mut self, group: &str, partitions: &[TopicPartition]) {
        if partitions.is_empty() {
            return;
        }
        let owned = self.external.entry(group.to_owned()).or_default();
        for tp in partitions {
            if !owned.contains(tp) {
                owned.insert(tp.clone());
            }
        }
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
        Check::EveryPartitionHas { topic, at_least } => {
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
        Check::GroupMembers {
            group,
            members,
            each_owns_at_least,
        } => {
            let working = working_members(view, group);
            let short: Vec<&str> = working
                .iter()
                .filter(|m| m.partitions.len() < *each_owns_at_least)
                .map(|m| m.name.as_str())
                .collect();
            if working.len() != *members {
                Verdict::wait(format!(
                    "`{group}` has {} working member(s){}; this step needs {members}.",
                    working.len(),
                    names(&working)
                ))
            } else if !short.is_empty() {
                Verdict::wait(format!(
                    "{} own(s) fewer than {each_owns_at_least} partition(s) so far.",
                    short.join(", ")
                ))
            } else {
                Verdict::pass(format!(
                    "`{group}` has {members} working member(s){}.",
                    names(&working)
                ))
            }
        }
        Check::AssignmentComplete { group, topic } => assignment_complete(view, group, topic),
        Check::ReceivedExactlyOnce { group, topic } => {
            received_exactly_once(view, history, group, topic)
        }
        Check::AllConsumed { group, topic } => all_consumed(view, history, group, topic),
        Check::MaxPollExceeded { group } => match history.poll_timeouts.get(group) {
            Some(n) => Verdict::pass(format!(
                "A member of `{group}` left the group {n} time(s) because it did not poll in time."
            )),
            None => Verdict::wait(format!(
                "Every member of `{group}` has polled within its max.poll.interval.ms so far."
            )),
        },
        Check::NoRebalanceWhileSlow { group, seconds } => {
            no_rebalance_while_slow(view, history, group, *seconds)
        }
        Check::KeysStayInPartition { topic, at_least } => {
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
        Check::KeyOrderKept {
            group,
            topic,
            at_least,
        } => with_ledger(view, history, group, topic, |ledger| {
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
        }),
        Check::OrderAcrossPartitionsBroken { group, topic } => {
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
        Check::LagAtLeast {
            group,
            topic,
            at_least,
        } => {
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
        Check::LagStatusSeen {
            group,
            topic,
            status,
        } => {
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
        Check::RetriedAtLeast { group, attempts } => {
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
        Check::DeadLettered { group, at_least } => {
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
        Check::EagerRevokedAll { group } => {
            let counts = history.revocations.get(group).copied().unwrap_or_default();
            if counts.everything > 0 {
                Verdict::pass(format!(
                    "Running members of `{group}` gave up everything they held {} time(s).",
                    counts.everything
                ))
            } else {
                Verdict::wait(format!(
                    "No running member of `{group}` has had to give up its partitions yet: add a member."
                ))
            }
        }
        Check::CooperativeRevokedOnlyMoved { group } => {
            let counts = history.revocations.get(group).copied().unwrap_or_default();
            match (counts.some, counts.everything) {
                (0, _) => Verdict::wait(format!(
                    "No running member of `{group}` has given up a partition yet: add a member."
                )),
                (some, 0) => Verdict::pass(format!(
                    "Running members of `{group}` gave up only what moved, {some} time(s), and kept the rest."
                )),
                (_, everything) => Verdict::wait(format!(
                    "Running members of `{group}` gave up everything {everything} time(s): is every member using the cooperative-sticky assignor? Reset the lab to try again."
                )),
            }
        }
        Check::StaticMemberReturned { group } => match history.static_returns.get(group) {
            Some(ids) => Verdict::pass(format!(
                "Static member(s) {} came back to their partitions with no rebalance.",
                ids.join(", ")
            )),
            None => Verdict::wait(format!(
                "No static member of `{group}` has come back to its partitions yet."
            )),
        },
        Check::MemberCrashed { group } => {
            let instances = history.crashed.get(group).copied().unwrap_or(0);
            let expired = history
                .handovers
                .iter()
                .filter(|h| h.group == *group && h.departure == Departure::Crash)
                .count();
            if instances > 0 || expired > 0 {
                Verdict::pass(format!(
                    "{} member(s) of `{group}` crashed.",
                    (instances as usize).max(expired)
                ))
            } else {
                Verdict::wait(format!("No member of `{group}` has crashed yet."))
            }
        }
        Check::CrashReassigned { group } => handed_over(history, group, Departure::Crash),
        Check::StopReassigned { group } => handed_over(history, group, Departure::Graceful),
        Check::StopFasterThanCrash { group } => {
            let fastest = |departure| {
                history
                    .handovers
                    .iter()
                    .filter(|h| h.group == *group && h.departure == departure)
                    .map(Handover::gap_ms)
                    .min()
            };
            match (fastest(Departure::Graceful), fastest(Departure::Crash)) {
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
        Check::IdleMember { group, topic } => idle_member(view, group, topic),
        Check::MessagesLost {
            group,
            topic,
            at_least,
        } => with_ledger(view, history, group, topic, |ledger| {
            let lost = ledger.lost;
            let which = examples(&ledger.lost_sample);
            if lost >= *at_least {
                Verdict::pass(format!("`{group}` lost {lost} message(s): {which}."))
            } else {
                Verdict::wait(format!(
                    "`{group}` has lost {lost} message(s) so far; this step needs {at_least}."
                ))
            }
        }),
        Check::NothingLost { group, topic } => with_ledger(view, history, group, topic, |ledger| {
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
        }),
        Check::MessagesDuplicated {
            group,
            topic,
            at_least,
        } => with_ledger(view, history, group, topic, |ledger| {
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
        }),
        Check::StreamShared { group, consumers } => {
            let streams = &history.streams;
            let handed = streams.handed.get(group).map_or(0, |h| h.len());
            let twice = streams.handed_twice.get(group).copied().unwrap_or(0);
            if twice > 0 {
                Verdict::wait(format!(
                    "{twice} entry(ies) were handed to two consumers of `{group}` by a read: reset the lab and try again."
                ))
            } else if handed >= *consumers {
                Verdict::pass(format!(
                    "{handed} consumers of `{group}` were handed entries, each entry to one of them."
                ))
            } else {
                Verdict::wait(format!(
                    "{handed} of the {consumers} consumers needed have been handed entries so far."
                ))
            }
        }
        Check::StreamExternalConsumer { group } => {
            match history.streams.handed_externally.get(group) {
                Some(names) if !names.is_empty() => Verdict::pass(format!(
                    "Your consumer {} was handed entries of `{group}`.",
                    names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                _ => Verdict::wait(format!(
                    "No consumer of `{group}` outside the page has been handed entries yet."
                )),
            }
        }
        Check::StreamLeftPending { group } => {
            match history
                .streams
                .left_pending
                .get(group)
                .copied()
                .unwrap_or(0)
            {
                0 => Verdict::wait(format!(
                    "No crashed consumer of `{group}` has been seen holding pending entries yet."
                )),
                held => Verdict::pass(format!(
                    "A crashed consumer of `{group}` was seen holding {held} pending entry(ies): nobody else gets them until they are claimed."
                )),
            }
        }
        Check::StreamClaimed { group } => {
            match history.streams.claims.get(group).map_or(0, |c| c.len()) {
                0 => Verdict::wait(format!(
                    "No consumer of `{group}` has claimed an entry yet."
                )),
                claimed => Verdict::pass(format!(
                    "{claimed} entry(ies) of `{group}` were claimed from the consumer that held them."
                )),
            }
        }
        Check::StreamDeliveredAtLeast { group, times } => {
            let most = history
                .streams
                .most_deliveries
                .get(group)
                .copied()
                .unwrap_or(0);
            if most >= *times {
                Verdict::pass(format!("An entry was delivered {most} times to `{group}`."))
            } else {
                Verdict::wait(format!(
                    "The most any entry was delivered to `{group}` is {most} time(s); this step needs {times}."
                ))
            }
        }
        Check::StreamAllAcknowledged { group, stream } => {
            let Some(found) = view.stream(stream) else {
                return Verdict::wait(format!("There is no stream `{stream}` yet."));
            };
            let Some(g) = found.group(group) else {
                return Verdict::wait(format!("`{stream}` has no group `{group}` yet."));
            };
            let caught_up =
                found.length > 0 && found.last_id.as_deref() == Some(&g.last_delivered_id);
            if caught_up && g.pending == 0 {
                Verdict::pass(format!(
                    "`{group}` was handed all {} entries of `{stream}` and acknowledged every one.",
                    found.length
                ))
            } else if !caught_up {
                Verdict::wait(format!(
                    "`{group}` has not been handed every entry of `{stream}` yet (it holds {}).",
                    found.length
                ))
            } else {
                Verdict::wait(format!(
                    "`{group}` still holds {} entry(ies) pending, unacknowledged.",
                    g.pending
                ))
            }
        }
        Check::StreamReaderOutsideGroup => {
            if history.streams.loose_readers {
                Verdict::pass("A connection reading with plain XREAD, in no group, was seen.")
            } else {
                Verdict::wait("No connection reading with plain XREAD has been seen yet.")
            }
        }
        Check::QueueShared { queue, consumers } => {
            let handed = history.queues.handed.get(queue).map_or(0, |h| h.len());
            if handed >= *consumers {
                Verdict::pass(format!(
                    "{handed} consumers of `{queue}` were handed messages, each message to one of them."
                ))
            } else {
                Verdict::wait(format!(
                    "{handed} of the {consumers} consumers needed have been handed messages of `{queue}` so far."
                ))
            }
        }
        Check::QueueExternalConsumer { queue } => {
            match history.queues.handed_externally.get(queue) {
                Some(tags) if !tags.is_empty() => Verdict::pass(format!(
                    "Your consumer {} was handed messages of `{queue}`.",
                    tags.iter()
                        .map(|t| format!("`{t}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                _ => Verdict::wait(format!(
                    "No consumer of `{queue}` outside the page has been handed messages yet."
                )),
            }
        }
        Check::QueueFairDispatch { queue, ratio } => match history.queues.best_fair_ratio(queue) {
            Some((best, fast, slow)) if best >= *ratio => Verdict::pass(format!(
                "The faster consumer of `{queue}` was handed {fast} messages, the slower {slow}: each got work only as it finished the last."
            )),
            Some((_, fast, slow)) => Verdict::wait(format!(
                "The faster consumer of `{queue}` has {fast} messages and the slower {slow}; this step needs {ratio} times as many."
            )),
            None => Verdict::wait(format!(
                "No two consumers of `{queue}` with a prefetch limit and different processing times have both been handed messages yet."
            )),
        },
        Check::QueueRequeuedOnCrash { queue } => {
            let queues = &history.queues;
            let held = queues.crashed_holding.get(queue).copied().unwrap_or(0);
            let again = queues
                .redelivered_after_crash
                .get(queue)
                .copied()
                .unwrap_or(0);
            match (held, again) {
                (0, _) => Verdict::wait(format!(
                    "No consumer of `{queue}` has crashed holding unacked messages yet."
                )),
                (held, 0) => Verdict::wait(format!(
                    "A consumer crashed holding {held} unacked message(s); none has been delivered again yet (is another consumer running?)."
                )),
                (held, again) => Verdict::pass(format!(
                    "A consumer crashed holding {held} unacked message(s); {again} message(s) were then delivered again, marked redelivered."
                )),
            }
        }
        Check::QueueLostOnCrash { queue } => {
            match history
                .queues
                .lost_on_crash
                .get(queue)
                .copied()
                .unwrap_or(0)
            {
                0 => Verdict::wait(format!(
                    "No auto-ack consumer of `{queue}` has crashed with messages it had not processed yet."
                )),
                lost => Verdict::pass(format!(
                    "An auto-ack consumer crashed before processing {lost} message(s) it had been sent: RabbitMQ counted them as done, so they are gone."
                )),
            }
        }
        Check::QueueHeld { queue, at_least } => {
            let most = history.queues.most_held.get(queue).copied().unwrap_or(0);
            if most >= *at_least {
                Verdict::pass(format!("`{queue}` was seen holding {most} message(s)."))
            } else {
                Verdict::wait(format!(
                    "`{queue}` has held at most {most} message(s) so far; this step needs {at_least}."
                ))
            }
        }
        Check::CrashCompared { broker } => {
            let found = view.crashes.iter().find(|c| c.backend == *broker);
            match found {
                Some(crash) if crash.held > 0 => match crash.moved_after_ms {
                    Some(ms) => Verdict::pass(format!(
                        "On {}, {} held {} {} as it crashed; another consumer had the work {:.1} s later.",
                        broker.label(),
                        crash.instance,
                        crash.held,
                        crash.held_unit(),
                        ms as f64 / 1000.0
                    )),
                    None => Verdict::wait(format!(
                        "{} crashed on {} holding {} {}; nobody has its work yet.",
                        crash.instance,
                        broker.label(),
                        crash.held,
                        crash.held_unit()
                    )),
                },
                Some(crash) => Verdict::wait(format!(
                    "{} crashed on {} holding nothing: crash one while it works.",
                    crash.instance,
                    broker.label()
                )),
                None => Verdict::wait(format!(
                    "No page instance has crashed on {} yet.",
                    broker.label()
                )),
            }
        }
        Check::QueueOperationRefused => {
            if history.queues.refused {
                Verdict::pass("RabbitMQ refused a client an operation and closed its channel.")
            } else {
                Verdict::wait("RabbitMQ has not refused any client anything yet.")
            }
        }
        Check::QueueDrained { queue } => {
            let Some(found) = view.queue(queue) else {
                return Verdict::wait(format!("There is no queue `{queue}` yet."));
            };
            if found.published == 0 {
                Verdict::wait(format!("Nothing has been published to `{queue}` yet."))
            } else if found.ready + found.unacked > 0 {
                Verdict::wait(format!(
                    "`{queue}` still holds {} ready and {} unacked message(s).",
                    found.ready, found.unacked
                ))
            } else {
                Verdict::pass(format!(
                    "All {} message(s) published to `{queue}` were consumed and acknowledged.",
                    found.published
                ))
            }
        }
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

fn no_rebalance_while_slow(
    view: &LabSnapshot,
    history: &History,
    group: &str,
    seconds: u64,
) -> Verdict {
    let slow = view.instances.iter().find(|i| {
        let s = &i.settings;
        i.group == group
            && i.state == InstanceState::Running
            && u64::from(s.processing_ms) * u64::from(s.max_poll_records)
                > u64::from(s.max_poll_interval_ms)
    });
    let Some(slow) = slow else {
        return Verdict::wait(format!(
            "No running instance of `{group}` takes longer to process a poll's messages than its max.poll.interval.ms."
        ));
    };
    let since = history
        .rebalanced_at
        .get(group)
        .copied()
        .unwrap_or(0)
        .max(slow.started_at);
    let steady = history.now.saturating_sub(since);
    let working = history
        .last_processed
        .get(group)
        .is_some_and(|at| *at > since && slow.processed > 0);
    if !working {
        return Verdict::wait(format!(
            "{} has not processed a message since the last rebalance of `{group}`.",
            slow.name
        ));
    }
    if steady >= seconds * 1000 {
        Verdict::pass(format!(
            "{} kept processing and `{group}` has not rebalanced for {}.",
            slow.name,
            self::seconds(steady)
        ))
    } else {
        Verdict::wait(format!(
            "{} is processing; `{group}` has been stable for {} of the {seconds} s needed.",
            slow.name,
            self::seconds(steady)
        ))
    }
}

fn idle_member(view: &LabSnapshot, group: &str, topic: &str) -> Verdict {
    let complete = assignment_complete(view, group, topic);
    if !complete.passed {
        return complete;
    }
    let working = working_members(view, group);
    let idle: Vec<&str> = working
        .iter()
        .filter(|m| !m.partitions.iter().any(|tp| tp.topic == topic))
        .map(|m| m.name.as_str())
        .collect();
    if idle.is_empty() {
        Verdict::wait(format!(
            "Every one of the {} working member(s) of `{group}` owns a partition: start more members than `{topic}` has partitions.",
            working.len()
        ))
    } else {
        Verdict::pass(format!(
            "{} of `{group}` own(s) no partition of `{topic}`: idle while the others work.",
            idle.join(", ")
        ))
    }
}

fn assignment_complete(view: &LabSnapshot, group: &str, topic: &str) -> Verdict {
    let Some(found) = view.topic(topic) else {
        return Verdict::wait(format!("There is no topic `{topic}` yet."));
    };
    let mut owners: BTreeMap<i32, Vec<&str>> = BTreeMap::new();
    for member in working_members(view, group) {
        for tp in member.partitions.iter().filter(|tp| tp.topic == topic) {
            owners.entry(tp.partition).or_default().push(&member.name);
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
            "Partition(s) {} of `{topic}` have no working owner in `{group}`.",
            unowned.join(", ")
        ))
    } else {
        let summary: Vec<String> = owners
            .iter()
            .map(|(p, names)| format!("{p}→{}", names.join(" and ")))
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

fn handed_over(history: &History, group: &str, departure: Departure) -> Verdict {
    let what = match departure {
        Departure::Crash => "crashed",
        Departure::Graceful | Departure::Unknown => "stopped",
        Departure::Expired => "lost its session",
    };
    match history
        .handovers
        .iter()
        .rev()
        .find(|h| h.group == group && h.departure == departure)
    {
        Some(h) => Verdict::pass(format!(
            "{}, {what}; its partitions moved to other members after {}.",
            h.from,
            seconds(h.gap_ms())
        )),
        None => Verdict::wait(format!(
            "Waiting for a member of `{group}` that owns partitions to be {what}, and for the others to take its partitions."
        )),
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

/// The members of a group doing work: in the group, and, for a page instance, with its process running.
fn working_members<'a>(view: &'a LabSnapshot, group: &str) -> Vec<&'a MemberView> {
    view.group(group)
        .map(|g| g.members.iter().filter(|m| view.is_working(m)).collect())
        .unwrap_or_default()
}

/// ` (A, rdkafka·3f2a)`, or nothing for no members.
fn names(members: &[&MemberView]) -> String {
    if members.is_empty() {
        return String::new();
    }
    let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    format!(" ({})", names.join(", "))
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

fn seconds(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use grouplab_protocol::{
        BrokerHealth, BrokerView, ConsumerSettings, GroupOffsets, GroupState, GroupView,
        InstanceId, InstanceState, InstanceView, MemberOrigin, MembershipSource, PartitionView,
        TopicView,
    };

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
    fn consumption_is_proven_by_instance_receipts_or_by_commits_at_the_broker() {
        let c = Check::AllConsumed {
            group: "g".into(),
            topic: "t".into(),
        };
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
    fn receipts_are_kept_as_runs_however_many_messages_flow() {
        let mut counts = OffsetCounts::default();
        for offset in 0..100_000 {
            counts.record(offset);
        }
        assert_eq!(counts.runs.len(), 1, "in-order consumption is one run");
        // A crash redelivers 40..50; one more offset arrives out of order past a gap.
        for offset in 40..50 {
            counts.record(offset);
        }
        counts.record(100_005);
        assert_eq!(counts.runs.len(), 4);
        assert_eq!(
            (counts.count(39), counts.count(45), counts.count(50)),
            (1, 2, 1)
        );
        assert_eq!(counts.count(100_002), 0);
        let all = counts.receipts(0, 100_010);
        assert_eq!(
            (all.missing, all.duplicated, all.extra, all.exact),
            (9, 10, 10, true)
        );
        assert_eq!(counts.receipts(45, 47).duplicated, 2);
        assert_eq!(counts.receipts(100_000, 100_005).missing, 5);
        // Filling the gap joins the runs again.
        for offset in 100_000..100_010 {
            if offset != 100_005 {
                counts.record(offset);
            }
        }
        assert_eq!(counts.runs.len(), 3);
        assert_eq!(counts.receipts(0, 100_010).missing, 0);
    }

    #[test]
    fn a_pathological_pattern_stops_at_the_cap_and_says_so() {
        let mut counts = OffsetCounts::default();
        for offset in (0..(MAX_RUNS as i64 * 4)).step_by(2) {
            counts.record(offset);
        }
        assert!(counts.runs.len() <= MAX_RUNS);
        assert!(!counts.receipts(0, 10).exact);
    }

    #[test]
    fn handovers_are_told_apart_by_how_the_member_left() {
        let crash = Check::CrashReassigned { group: "g".into() };
        let stop = Check::StopReassigned { group: "g".into() };
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
        let c = Check::StopFasterThanCrash { group: "g".into() };
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
        let check = Check::StreamShared {
            group: "g".into(),
            consumers: 2,
        };
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
        let check = Check::StreamAllAcknowledged {
            group: "g".into(),
            stream: "s".into(),
        };
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
        let claimed = Check::StreamClaimed { group: "g".into() };
        assert!(evaluate(&claimed, &view, &history).passed);
        let four = Check::StreamDeliveredAtLeast {
            group: "g".into(),
            times: 4,
        };
        let five = Check::StreamDeliveredAtLeast {
            group: "g".into(),
            times: 5,
        };
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
        let check = Check::QueueFairDispatch {
            queue: "q".into(),
            ratio: 3,
        };
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
        let check = Check::QueueRequeuedOnCrash { queue: "q".into() };
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
        let other = Check::QueueRequeuedOnCrash { queue: "r".into() };
        assert!(!evaluate(&other, &view, &history).passed, "another queue");
    }

    #[test]
    fn a_queue_is_drained_when_it_was_used_and_holds_nothing() {
        let check = Check::QueueDrained { queue: "q".into() };
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
        let check = Check::CrashCompared {
            broker: grouplab_protocol::Backend::Redis,
        };
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
        let kafka = Check::CrashCompared {
            broker: grouplab_protocol::Backend::Kafka,
        };
        assert!(
            !evaluate(&kafka, &with(3, Some(5_000)), &history).passed,
            "another broker"
        );
    }
}
