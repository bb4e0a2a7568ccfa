//! The consumer instance's side: how the server starts one, and what it reports back.

use serde::{Deserialize, Serialize};

use crate::GroupProtocol;

/// The environment variable that carries an instance's [`InstanceConfig`], as JSON.
pub const INSTANCE_CONFIG_VAR: &str = "GROUPLAB_INSTANCE_CONFIG";

/// How the server configures one consumer instance process.
///
/// It is passed as JSON in [`INSTANCE_CONFIG_VAR`] (not on the command line, which every user
/// of the machine can read, since a Redis or RabbitMQ URL carries a password); nothing in it
/// is interpreted by a shell.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceConfig {
    /// The broker the instance consumes from.
    #[serde(default)]
    pub backend: crate::Backend,
    /// The broker's address: Kafka's bootstrap list `host:port[,host:port…]`, or a `redis://` URL.
    pub bootstrap_servers: String,
    /// The consumer group to join.
    pub group: String,
    /// The topics to subscribe to (on Redis, the one stream to read).
    pub topics: Vec<String>,
    /// The client id the broker sees, so that the learner can tell instances apart in broker tools.
    pub client_id: String,
    /// Consumer settings a lab or a learner may change.
    pub settings: ConsumerSettings,
}

/// The consumer settings that matter for group behaviour, and how the instance processes messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsumerSettings {
    /// How long the broker waits without a heartbeat before it declares a member dead.
    pub session_timeout_ms: u32,
    /// How often the member sends a heartbeat.
    pub heartbeat_interval_ms: u32,
    /// When offsets are committed, relative to processing.
    pub commit: CommitPolicy,
    /// How often background commits happen under [`CommitPolicy::Auto`].
    pub auto_commit_interval_ms: u32,
    /// The partition assignment strategy: the client's under the classic protocol, the
    /// broker's (`group.remote.assignor`) under the consumer protocol.
    pub assignor: Assignor,
    /// The rebalance protocol the client speaks (`group.protocol`). Under the consumer protocol
    /// the broker sets the session timeout and the heartbeat interval.
    #[serde(default)]
    pub group_protocol: GroupProtocol,
    /// How long processing one message takes (the instance sleeps, as slow work would).
    pub processing_ms: u32,
    /// The most messages one poll hands to processing, as Java's `max.poll.records`.
    pub max_poll_records: u32,
    /// The longest time between two polls before the client leaves its group (`max.poll.interval.ms`).
    pub max_poll_interval_ms: u32,
    /// Static membership: the member's `group.instance.id`, kept across restarts.
    pub static_id: Option<String>,
    /// Where processing runs: in the poll loop, or on a worker fed through a bounded queue.
    pub processing: ProcessingMode,
    /// The instance kills itself (SIGKILL) right after processing this many messages.
    pub crash_after: Option<u32>,
    /// Processing fails for every message whose value contains this text (a poison message).
    pub fail_on: Option<String>,
    /// How many times a failed message is tried again before it is given up on.
    pub retries: u32,
    /// How long to wait before trying a failed message again.
    pub retry_backoff_ms: u32,
    /// Where a message goes once its retries are used up; without one the consumer keeps
    /// retrying it, and its partition is blocked behind it. On Redis, a stream.
    pub dead_letter_topic: Option<String>,
    /// Redis: how long one `XREADGROUP` waits for new entries (`BLOCK`).
    pub block_ms: u32,
    /// Redis: before each read, take over entries that other consumers have left pending this
    /// long (`XAUTOCLAIM … min-idle-time`); never, when empty.
    pub claim_idle_ms: Option<u32>,
    /// Redis: the consumer's name in its group; the instance's client id when empty. Two
    /// instances given one name share one pending entries list.
    pub consumer_name: Option<String>,
    /// RabbitMQ: how many unacked messages the broker may hand this consumer at once
    /// (`basic.qos`); 0 is no limit, RabbitMQ's default.
    pub prefetch: u16,
    /// RabbitMQ: whether a message whose processing failed goes back to the queue
    /// (`basic.nack` with requeue), or is rejected for good (dead-lettered, if the queue says where).
    pub requeue_on_failure: bool,
}

impl Default for ConsumerSettings {
    /// Teaching defaults: a crash is noticed after 10 s, long enough to watch the countdown and
    /// short enough to keep a class waiting only briefly (Kafka's own default is 45 s).
    /// Processing is instant, so a lab that does not care about it sees messages at once.
    fn default() -> Self {
        Self {
            session_timeout_ms: 10_000,
            heartbeat_interval_ms: 1_000,
            commit: CommitPolicy::Auto,
            auto_commit_interval_ms: 1_000,
            assignor: Assignor::Range,
            group_protocol: GroupProtocol::Classic,
            processing_ms: 0,
            max_poll_records: 10,
            max_poll_interval_ms: 300_000,
            static_id: None,
            processing: ProcessingMode::InPollLoop,
            crash_after: None,
            fail_on: None,
            retries: 3,
            retry_backoff_ms: 500,
            dead_letter_topic: None,
            block_ms: 2_000,
            claim_idle_ms: None,
            consumer_name: None,
            prefetch: 0,
            requeue_on_failure: true,
        }
    }
}

impl ConsumerSettings {
    /// Why these settings cannot run, in words a learner understands; `None` when they can.
    pub fn problem(&self) -> Option<String> {
        use crate::limits;
        if !limits::SESSION_TIMEOUT_MS.contains(&self.session_timeout_ms) {
            return Some(format!(
                "Choose a session timeout between {} and {} seconds.",
                limits::SESSION_TIMEOUT_MS.start() / 1000,
                limits::SESSION_TIMEOUT_MS.end() / 1000
            ));
        }
        if self.processing_ms > limits::MAX_PROCESSING_MS {
            return Some(format!(
                "Processing one message may take at most {} seconds here.",
                limits::MAX_PROCESSING_MS / 1000
            ));
        }
        if !limits::MAX_POLL_RECORDS.contains(&self.max_poll_records) {
            return Some(format!(
                "A poll may hand over between {} and {} messages.",
                limits::MAX_POLL_RECORDS.start(),
                limits::MAX_POLL_RECORDS.end()
            ));
        }
        if !limits::MAX_POLL_INTERVAL_MS.contains(&self.max_poll_interval_ms) {
            return Some(format!(
                "Choose a max poll interval between {} and {} seconds.",
                limits::MAX_POLL_INTERVAL_MS.start() / 1000,
                limits::MAX_POLL_INTERVAL_MS.end() / 1000
            ));
        }
        if self.max_poll_interval_ms < self.session_timeout_ms {
            return Some(format!(
                "The max poll interval ({} s) cannot be shorter than the session timeout ({} s): Kafka clients refuse that.",
                self.max_poll_interval_ms / 1000,
                self.session_timeout_ms / 1000
            ));
        }
        if !self.assignor.runs_on(self.group_protocol) {
            return Some(match self.group_protocol {
                GroupProtocol::Classic => "The uniform assignor runs in the broker, under the consumer group protocol: choose that protocol, or another assignor.".to_owned(),
                GroupProtocol::Consumer => format!(
                    "Under the consumer group protocol the broker assigns partitions, with the uniform or the range assignor; {} runs only in classic clients.",
                    self.assignor.label()
                ),
            });
        }
        if let Some(id) = &self.static_id
            && let Err(problem) = crate::validate_name("static member id", id)
        {
            return Some(problem);
        }
        if let Some(text) = &self.fail_on
            && (text.is_empty() || text.len() > limits::MAX_KEY_LEN)
        {
            return Some(format!(
                "\"Fail on\" needs 1 to {} characters; leave it empty for no failures.",
                limits::MAX_KEY_LEN
            ));
        }
        if self.retries > limits::MAX_RETRIES {
            return Some(format!("Retry at most {} times.", limits::MAX_RETRIES));
        }
        if !limits::RETRY_BACKOFF_MS.contains(&self.retry_backoff_ms) {
            return Some(format!(
                "Wait between {} ms and {} s before a retry.",
                limits::RETRY_BACKOFF_MS.start(),
                limits::RETRY_BACKOFF_MS.end() / 1000
            ));
        }
        if let Some(topic) = &self.dead_letter_topic
            && let Err(problem) = crate::validate_name("dead-letter topic", topic)
        {
            return Some(problem);
        }
        if !(100..=10_000).contains(&self.block_ms) {
            return Some("A read may wait between 0.1 and 10 seconds for new entries.".into());
        }
        if let Some(idle) = self.claim_idle_ms
            && !(100..=600_000).contains(&idle)
        {
            return Some(
                "Claim entries left pending between 0.1 and 600 seconds; leave it empty to never claim."
                    .into(),
            );
        }
        if let Some(name) = &self.consumer_name
            && let Err(problem) = crate::validate_name("consumer name", name)
        {
            return Some(problem);
        }
        if self.prefetch > 1_000 {
            return Some("Prefetch at most 1,000 messages; 0 means no limit.".into());
        }
        if self.crash_after == Some(0) {
            return Some(
                "\"Crash after\" needs at least 1 message; leave it empty for no crash.".into(),
            );
        }
        None
    }
}

/// When a consumer commits the offsets of what it read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitPolicy {
    /// The client commits in the background what polls returned, processed or not
    /// (`enable.auto.commit`): a crash mid-batch loses the rest of the batch.
    #[default]
    Auto,
    /// The consumer commits a batch once it has processed all of it: a crash mid-batch
    /// re-delivers the processed part (at least once).
    AfterProcessing,
    /// The consumer commits a batch as soon as it polled it, then processes it: a crash
    /// mid-batch loses the rest (at most once).
    BeforeProcessing,
}

impl CommitPolicy {
    pub const ALL: [CommitPolicy; 3] = [Self::Auto, Self::AfterProcessing, Self::BeforeProcessing];

    /// The name in forms and lab files.
    pub fn key(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::AfterProcessing => "after_processing",
            Self::BeforeProcessing => "before_processing",
        }
    }

    /// The name shown to a learner on RabbitMQ, where a message is acknowledged rather than committed.
    pub fn rabbitmq_label(self) -> &'static str {
        match self {
            Self::Auto => "auto-ack: done once sent",
            Self::AfterProcessing => "ack after processing",
            Self::BeforeProcessing => "ack on receipt, before processing",
        }
    }

    /// The name shown to a learner on Redis, where an entry is acknowledged rather than committed.
    pub fn redis_label(self) -> &'static str {
        match self {
            Self::Auto => "never: read with NOACK",
            Self::AfterProcessing => "ack after processing",
            Self::BeforeProcessing => "ack on read, before processing",
        }
    }

    /// The name shown to a learner.
    pub fn label(self) -> &'static str {
        match self {
            Self::Auto => "auto-commit",
            Self::AfterProcessing => "commit after processing",
            Self::BeforeProcessing => "commit before processing",
        }
    }
}

/// Where an instance processes the messages it polls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessingMode {
    /// The poll loop processes each batch before it polls again: slow processing delays the
    /// next poll, and past `max.poll.interval.ms` the client leaves its group.
    #[default]
    InPollLoop,
    /// The poll loop hands messages to a worker thread through a bounded queue and keeps
    /// polling; when the queue is full it pauses its partitions instead of blocking.
    Queue,
}

/// The three assignors Kafka clients ship with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Assignor {
    /// Consecutive partitions per member: with 3 partitions and 2 members, 0 and 1 go to the first.
    #[default]
    Range,
    /// Partitions dealt one by one to each member in turn.
    RoundRobin,
    /// Keeps what each member had and moves only what must move, without stopping everyone.
    CooperativeSticky,
    /// The consumer protocol's default, run by the broker: even shares, kept where it can.
    Uniform,
}

impl Assignor {
    /// The value of librdkafka's `partition.assignment.strategy` for this assignor.
    pub fn librdkafka_name(self) -> &'static str {
        match self {
            Self::Range => "range",
            Self::RoundRobin => "roundrobin",
            Self::CooperativeSticky => "cooperative-sticky",
            Self::Uniform => "uniform",
        }
    }

    /// Every assignor, in the order a form lists them.
    pub const ALL: [Assignor; 4] = [
        Self::Range,
        Self::RoundRobin,
        Self::CooperativeSticky,
        Self::Uniform,
    ];

    /// Whether the consumer protocol's broker runs it (`range` and `uniform`); under the classic
    /// protocol the clients run every one but `uniform`.
    pub fn runs_on(self, protocol: GroupProtocol) -> bool {
        match protocol {
            GroupProtocol::Classic => self != Self::Uniform,
            GroupProtocol::Consumer => matches!(self, Self::Range | Self::Uniform),
        }
    }

    /// The name shown to a learner.
    pub fn label(self) -> &'static str {
        match self {
            Self::Range => "range",
            Self::RoundRobin => "round robin",
            Self::CooperativeSticky => "cooperative sticky",
            Self::Uniform => "uniform (consumer protocol)",
        }
    }
}

/// One partition of one topic.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

/// An offset a consumer committed for one partition: the next offset it will read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// What a consumer instance reports to the server, one JSON line on its stdout each.
///
/// The instance cannot report its own death: a SIGKILL is observed by the supervisor
/// from the process's exit status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "report", rename_all = "snake_case")]
pub enum InstanceReport {
    /// The consumer subscribed and is joining its group.
    Joining { pid: u32 },
    /// A rebalance gave this member these partitions (eager: its whole set; cooperative: the added ones).
    Assigned { partitions: Vec<TopicPartition> },
    /// A rebalance took these partitions away.
    Revoked { partitions: Vec<TopicPartition> },
    /// A message was consumed.
    Message(ConsumedMessage),
    /// Offsets were committed to the group.
    Committed { offsets: Vec<CommittedOffset> },
    /// Something went wrong; `fatal` errors end the instance.
    Error { message: String, fatal: bool },
    /// A graceful stop began: the consumer is committing and leaving its group.
    Leaving,
    /// A poll handed this many messages to processing (the poll loop is busy until `Processed`
    /// has been reported for each of them, unless processing runs on a queue).
    Polled { messages: u32 },
    /// One message was processed: its work is done.
    Processed {
        topic: String,
        partition: i32,
        offset: i64,
    },
    /// How many messages wait in the internal queue ([`ProcessingMode::Queue`]), when it changes.
    Queue { depth: u32, paused: bool },
    /// Processing a message failed (attempt 1 is the first try); it will be tried again, or
    /// parked in the dead-letter topic, or (without one) tried again forever.
    ProcessingFailed {
        topic: String,
        partition: i32,
        offset: i64,
        attempt: u32,
        error: String,
    },
    /// A message whose retries were used up was written to the dead-letter topic; its partition moves on.
    DeadLettered {
        topic: String,
        partition: i32,
        offset: i64,
        attempts: u32,
        dead_letter_topic: String,
    },
    /// The instance reached its "crash after" count and is about to kill itself with SIGKILL.
    Crashing { processed: u64 },
    /// The client left its group because the application did not poll within
    /// `max.poll.interval.ms`; it rejoins at its next poll. `message` is librdkafka's.
    MaxPollExceeded { message: String },
    /// Redis: the consumer group exists and the consumer reads from it.
    Reading { stream: String, group: String },
    /// Redis: an entry was handed to this consumer, by a read or by a claim.
    Entry(StreamEntry),
    /// Redis: an entry was processed (its work is done; it may or may not be acknowledged yet).
    EntryProcessed { stream: String, id: String },
    /// Redis: entries were acknowledged (`XACK`) and left the pending entries list.
    Acked { stream: String, ids: Vec<String> },
    /// Redis: processing an entry failed; it stays pending (unacknowledged) to be delivered again.
    EntryFailed {
        stream: String,
        id: String,
        deliveries: u64,
        error: String,
    },
    /// Redis: an entry delivered too often was copied to the dead-letter stream and acknowledged.
    EntryDeadLettered {
        stream: String,
        id: String,
        deliveries: u64,
        dead_letter_stream: String,
    },
    /// RabbitMQ: the consumer is attached to the queue (`basic.consume`) and waits for messages.
    Consuming { queue: String, prefetch: u16 },
    /// RabbitMQ: the broker handed this consumer a message.
    Delivery(crate::RabbitDelivery),
    /// RabbitMQ: a message was processed; `acked` when the consumer acknowledged it now.
    DeliveryProcessed {
        queue: String,
        tag: u64,
        acked: bool,
    },
    /// RabbitMQ: processing a message failed, and the consumer gave it back to the queue
    /// (`requeued`) or rejected it for good (dead-lettered, if the queue says where).
    DeliveryRejected {
        queue: String,
        tag: u64,
        requeued: bool,
        error: String,
    },
}

impl InstanceReport {
    /// Every Kafka topic name the report carries, to be renamed where the broker's names are not
    /// the lab's (a class's learner's prefix on a shared cluster).
    pub fn topics_mut(&mut self) -> Vec<&mut String> {
        match self {
            Self::Assigned { partitions } | Self::Revoked { partitions } => {
                partitions.iter_mut().map(|p| &mut p.topic).collect()
            }
            Self::Message(message) => vec![&mut message.topic],
            Self::Committed { offsets } => offsets.iter_mut().map(|o| &mut o.topic).collect(),
            Self::Processed { topic, .. } | Self::ProcessingFailed { topic, .. } => vec![topic],
            Self::DeadLettered {
                topic,
                dead_letter_topic,
                ..
            } => vec![topic, dead_letter_topic],
            _ => Vec::new(),
        }
    }

    /// The client's own words the report carries (an error's message), which may name topics
    /// as the broker knows them.
    pub fn texts_mut(&mut self) -> Vec<&mut String> {
        match self {
            Self::Error { message, .. } | Self::MaxPollExceeded { message } => vec![message],
            Self::ProcessingFailed { error, .. } => vec![error],
            _ => Vec::new(),
        }
    }
}

/// Splits one line of an instance's stdout into its time stamp and its report.
///
/// An instance writes each report as its own line: the time it was written, in microseconds since
/// the Unix epoch, a space, then the [`InstanceReport`] as JSON. A line without the stamp is
/// all report.
pub fn split_report_line(line: &str) -> (Option<crate::EpochMicros>, &str) {
    match line.split_once(' ') {
        Some((stamp, report)) if !stamp.is_empty() && stamp.bytes().all(|b| b.is_ascii_digit()) => {
            (stamp.parse().ok(), report)
        }
        _ => (None, line),
    }
}

/// A Redis stream entry, as a consumer was handed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamEntry {
    pub stream: String,
    pub id: String,
    /// The entry's `key` field, if it has one.
    pub key: Option<String>,
    /// The entry's `value` field (or its fields, written out), cut to [`MAX_REPORTED_VALUE`].
    pub value: String,
    /// How many times the entry has been delivered, this time included.
    pub deliveries: u64,
    /// Whether it came by claiming it from another consumer.
    pub claimed: bool,
}

/// One consumed message, as the instance saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumedMessage {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The key as text (lossy UTF-8), if the message had one.
    pub key: Option<String>,
    /// The value as text (lossy UTF-8), cut to [`MAX_REPORTED_VALUE`] characters.
    pub value: String,
}

/// The longest message value an instance reports; longer values are cut, since the page only shows them.
pub const MAX_REPORTED_VALUE: usize = 200;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_a_report_carries_can_be_renamed_in_its_fields_and_its_words() {
        let mut failed = InstanceReport::ProcessingFailed {
            topic: "p.orders".into(),
            partition: 0,
            offset: 1,
            attempt: 1,
            error: "cannot write to p.orders-dlq".into(),
        };
        for topic in failed.topics_mut() {
            *topic = topic.replace("p.", "");
        }
        for text in failed.texts_mut() {
            *text = text.replace("p.", "");
        }
        assert_eq!(
            failed,
            InstanceReport::ProcessingFailed {
                topic: "orders".into(),
                partition: 0,
                offset: 1,
                attempt: 1,
                error: "cannot write to orders-dlq".into(),
            }
        );
        let mut error = InstanceReport::Error {
            message: "Subscribed topic not available: p.orders".into(),
            fatal: false,
        };
        assert_eq!(error.texts_mut().len(), 1);
        assert!(InstanceReport::Leaving.texts_mut().is_empty());
    }

    #[test]
    fn a_report_line_is_a_time_stamp_then_the_report() {
        assert_eq!(
            split_report_line(r#"1732380000123456 {"report":"leaving"}"#),
            (Some(1_732_380_000_123_456), r#"{"report":"leaving"}"#)
        );
        // Without a stamp, the whole line is the report; JSON never starts with a digit run
        // followed by a space that this would take for a stamp.
        assert_eq!(
            split_report_line(r#"{"report":"error","message":"a b"}"#),
            (None, r#"{"report":"error","message":"a b"}"#)
        );
        assert_eq!(split_report_line(" {}"), (None, " {}"));
        // A stamp too large for 64 bits is no stamp.
        assert_eq!(
            split_report_line("99999999999999999999999 {}"),
            (None, "{}")
        );
    }

    #[track_caller]
    fn round_trip(report: InstanceReport, expected_json: &str) {
        let json = serde_json::to_string(&report).expect("reports serialize");
        assert_eq!(json, expected_json);
        let back: InstanceReport = serde_json::from_str(&json).expect("reports deserialize");
        assert_eq!(back, report);
    }

    #[test]
    fn instance_reports_round_trip_as_tagged_json_lines() {
        round_trip(
            InstanceReport::Joining { pid: 7 },
            r#"{"report":"joining","pid":7}"#,
        );
        round_trip(
            InstanceReport::Assigned {
                partitions: vec![TopicPartition::new("t", 0)],
            },
            r#"{"report":"assigned","partitions":[{"topic":"t","partition":0}]}"#,
        );
        round_trip(
            InstanceReport::Message(ConsumedMessage {
                topic: "t".into(),
                partition: 2,
                offset: 41,
                key: None,
                value: "v".into(),
            }),
            r#"{"report":"message","topic":"t","partition":2,"offset":41,"key":null,"value":"v"}"#,
        );
        round_trip(InstanceReport::Leaving, r#"{"report":"leaving"}"#);
        round_trip(
            InstanceReport::Delivery(crate::RabbitDelivery {
                queue: "q".into(),
                tag: 3,
                key: None,
                value: "v".into(),
                redelivered: true,
            }),
            r#"{"report":"delivery","queue":"q","tag":3,"key":null,"value":"v","redelivered":true}"#,
        );
    }

    #[test]
    fn settings_fill_missing_fields_with_teaching_defaults() {
        let settings: ConsumerSettings =
            serde_json::from_str(r#"{"commit":"after_processing","processing_ms":300}"#)
                .expect("partial settings parse");
        assert_eq!(settings.commit, CommitPolicy::AfterProcessing);
        assert_eq!(settings.processing_ms, 300);
        assert_eq!(
            settings.session_timeout_ms,
            ConsumerSettings::default().session_timeout_ms
        );
    }

    #[test]
    fn settings_that_cannot_run_are_explained() {
        let ok = ConsumerSettings::default();
        assert_eq!(ok.problem(), None);
        let cases = [
            ConsumerSettings {
                session_timeout_ms: 500,
                ..ok.clone()
            },
            ConsumerSettings {
                max_poll_interval_ms: 5_000,
                ..ok.clone()
            },
            ConsumerSettings {
                max_poll_records: 0,
                ..ok.clone()
            },
            ConsumerSettings {
                processing_ms: 3_600_000,
                ..ok.clone()
            },
            ConsumerSettings {
                static_id: Some("has space".into()),
                ..ok.clone()
            },
            ConsumerSettings {
                crash_after: Some(0),
                ..ok.clone()
            },
        ];
        for settings in cases {
            assert!(settings.problem().is_some(), "{settings:?}");
        }
    }

    #[test]
    fn assignors_use_librdkafka_names() {
        let names: Vec<_> = Assignor::ALL.iter().map(|a| a.librdkafka_name()).collect();
        assert_eq!(
            names,
            ["range", "roundrobin", "cooperative-sticky", "uniform"]
        );
    }

    #[test]
    fn each_protocol_takes_only_the_assignors_that_run_under_it() {
        let with = |group_protocol, assignor| ConsumerSettings {
            group_protocol,
            assignor,
            ..ConsumerSettings::default()
        };
        assert!(
            with(GroupProtocol::Classic, Assignor::CooperativeSticky)
                .problem()
                .is_none()
        );
        assert!(
            with(GroupProtocol::Consumer, Assignor::Uniform)
                .problem()
                .is_none()
        );
        assert!(
            with(GroupProtocol::Consumer, Assignor::Range)
                .problem()
                .is_none()
        );
        let sticky = with(GroupProtocol::Consumer, Assignor::CooperativeSticky)
            .problem()
            .expect("refused");
        assert!(sticky.contains("the broker assigns"), "{sticky}");
        let uniform = with(GroupProtocol::Classic, Assignor::Uniform)
            .problem()
            .expect("refused");
        assert!(uniform.contains("consumer group protocol"), "{uniform}");
    }
}
