//! The consumer instance's side: how the server starts one, and what it reports back.

use serde::{Deserialize, Serialize};

/// How the server configures one consumer instance process.
///
/// It is passed as a single JSON argument; nothing in it is interpreted by a shell.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceConfig {
    /// The broker's bootstrap address, `host:port[,host:port…]`.
    pub bootstrap_servers: String,
    /// The consumer group to join.
    pub group: String,
    /// The topics to subscribe to.
    pub topics: Vec<String>,
    /// The client id the broker sees, so that the learner can tell instances apart in broker tools.
    pub client_id: String,
    /// Consumer settings a lab or a learner may change.
    pub settings: ConsumerSettings,
}

/// The consumer settings that matter for group behaviour.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerSettings {
    /// How long the broker waits without a heartbeat before it declares a member dead.
    pub session_timeout_ms: u32,
    /// How often the member sends a heartbeat.
    pub heartbeat_interval_ms: u32,
    /// Whether offsets are committed in the background (`true`) or after each message (`false`).
    pub auto_commit: bool,
    /// How often background commits happen when `auto_commit` is on.
    pub auto_commit_interval_ms: u32,
    /// The partition assignment strategy.
    pub assignor: Assignor,
}

impl Default for ConsumerSettings {
    /// Teaching defaults: a crash is noticed after 10 s, long enough to watch the countdown and
    /// short enough to keep a class waiting only briefly (Kafka's own default is 45 s).
    fn default() -> Self {
        Self {
            session_timeout_ms: 10_000,
            heartbeat_interval_ms: 1_000,
            auto_commit: true,
            auto_commit_interval_ms: 1_000,
            assignor: Assignor::Range,
        }
    }
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
}

impl Assignor {
    /// The value of librdkafka's `partition.assignment.strategy` for this assignor.
    pub fn librdkafka_name(self) -> &'static str {
        match self {
            Self::Range => "range",
            Self::RoundRobin => "roundrobin",
            Self::CooperativeSticky => "cooperative-sticky",
        }
    }

    /// Every assignor, in the order a form lists them.
    pub const ALL: [Assignor; 3] = [Self::Range, Self::RoundRobin, Self::CooperativeSticky];

    /// The name shown to a learner.
    pub fn label(self) -> &'static str {
        match self {
            Self::Range => "range",
            Self::RoundRobin => "round robin",
            Self::CooperativeSticky => "cooperative sticky",
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
    }

    #[test]
    fn settings_fill_missing_fields_with_teaching_defaults() {
        let settings: ConsumerSettings =
            serde_json::from_str(r#"{"auto_commit":false}"#).expect("partial settings parse");
        assert!(!settings.auto_commit);
        assert_eq!(
            settings.session_timeout_ms,
            ConsumerSettings::default().session_timeout_ms
        );
    }

    #[test]
    fn assignors_use_librdkafka_names() {
        let names: Vec<_> = Assignor::ALL.iter().map(|a| a.librdkafka_name()).collect();
        assert_eq!(names, ["range", "roundrobin", "cooperative-sticky"]);
    }
}
