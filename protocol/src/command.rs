//! What the browser asks the server to do, one JSON text frame per command.

use serde::{Deserialize, Serialize};

use crate::{ConsumerSettings, InstanceId, Notice};

/// A learner's action on the lab page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum ClientCommand {
    /// Create a topic with this many partitions.
    CreateTopic { topic: String, partitions: i32 },
    /// Produce `count` messages to a topic.
    Produce {
        topic: String,
        count: u32,
        keys: KeyMode,
        /// Send every message to this partition instead of letting the key decide.
        partition: Option<i32>,
        /// Text added to every message's value (`click #12 by user-3: TEXT`), to mark some
        /// messages, such as a poison message for the retry lab.
        #[serde(default)]
        text: Option<String>,
    },
    /// Produce `per_second` messages every second for `seconds` seconds, so that lag can build up.
    ProduceSteadily {
        topic: String,
        per_second: u32,
        seconds: u32,
        keys: KeyMode,
    },
    /// Stop a steady produce before its time is up.
    StopProducing,
    /// Grow a topic to `partitions` partitions (Kafka can add partitions, never remove them).
    AddPartitions { topic: String, partitions: i32 },
    /// Start one consumer instance process in a group.
    StartInstance {
        group: String,
        topic: String,
        settings: ConsumerSettings,
    },
    /// Close an instance gracefully: it commits, leaves its group, and exits.
    StopInstance { instance: InstanceId },
    /// Kill an instance with SIGKILL: it leaves nothing behind, and its group notices only when its session times out.
    CrashInstance { instance: InstanceId },
    /// Stop every instance of this lab and delete its topics and groups, to start the exercise over.
    ResetLab,
    /// Forget this lab's progress: checkpoints, opened hints and the revealed solution.
    ClearProgress,
    /// Show the next hint.
    OpenHint,
    /// Show the solution.
    RevealSolution,
    /// Send a fresh snapshot; the page asks after it finds its view out of date.
    Resync,
    /// Stop (`up: false`) or restart (`up: true`) the embedded broker on its address, keeping
    /// what it stored, to see what consumers do while their coordinator is gone.
    SetBroker { up: bool },
}

/// How produced messages are keyed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum KeyMode {
    /// No key, and the producer picks partitions: librdkafka's sticky partitioner (KIP-480), as
    /// Apache Kafka's clients do, sends a whole batch to one partition, so a burst usually lands
    /// in a single partition.
    #[default]
    None,
    /// No key, and message `i` goes to partition `i % partitions`: an even spread.
    RoundRobin,
    /// Every message has this key, so all of them land in one partition.
    Fixed { key: String },
    /// Keys `user-0` … `user-(distinct-1)` in turn: each key always lands in the same partition.
    Rotating { distinct: u32 },
}

/// Limits on what one command may ask for, checked by the server and shown by the page.
pub mod limits {
    /// The most partitions a lab topic may have.
    pub const MAX_PARTITIONS: i32 = 64;
    /// The most messages one Produce command may send.
    pub const MAX_PRODUCE: u32 = 10_000;
    /// The longest topic or group name.
    pub const MAX_NAME_LEN: usize = 100;
    /// The longest fixed key.
    pub const MAX_KEY_LEN: usize = 100;
    /// The most distinct rotating keys.
    pub const MAX_DISTINCT_KEYS: u32 = 1_000;
    /// The shortest and longest session timeouts an instance may use.
    pub const SESSION_TIMEOUT_MS: std::ops::RangeInclusive<u32> = 1_000..=300_000;
    /// The longest an instance may take to process one message.
    pub const MAX_PROCESSING_MS: u32 = 120_000;
    /// How many messages one poll may hand to processing.
    pub const MAX_POLL_RECORDS: std::ops::RangeInclusive<u32> = 1..=500;
    /// The shortest and longest `max.poll.interval.ms` an instance may use.
    pub const MAX_POLL_INTERVAL_MS: std::ops::RangeInclusive<u32> = 1_000..=3_600_000;
    /// The fastest steady produce, in messages per second.
    pub const MAX_RATE: u32 = 1_000;
    /// The longest steady produce, in seconds.
    pub const MAX_STEADY_SECONDS: u32 = 600;
    /// The most retries of one failed message.
    pub const MAX_RETRIES: u32 = 20;
    /// The shortest and longest wait before a retry.
    pub const RETRY_BACKOFF_MS: std::ops::RangeInclusive<u32> = 10..=60_000;
    /// The most partitions one AddPartitions command may add.
    pub const MAX_ADDED_PARTITIONS: i32 = 16;
}

/// Why a topic or group name is refused, in words a learner understands.
pub fn validate_name(kind: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!(
            "The {kind} name is empty: type a name such as `user-clicks`."
        ));
    }
    if name.len() > limits::MAX_NAME_LEN {
        return Err(format!(
            "The {kind} name is {} characters long; Kafka names may have at most {}.",
            name.len(),
            limits::MAX_NAME_LEN
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("`{name}` is not allowed as a {kind} name."));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "The {kind} name `{name}` contains `{bad}`: use only letters, digits, `.`, `_` and `-`."
        ));
    }
    Ok(())
}

/// Why a partition count is refused.
pub fn validate_partitions(partitions: i32) -> Result<(), String> {
    if (1..=limits::MAX_PARTITIONS).contains(&partitions) {
        Ok(())
    } else {
        Err(format!(
            "A topic needs between 1 and {} partitions; {partitions} is outside that range.",
            limits::MAX_PARTITIONS
        ))
    }
}

/// Why a Produce command is refused, as the notice a learner sees.
pub fn validate_produce(count: u32, keys: &KeyMode) -> Result<(), Notice> {
    if !(1..=limits::MAX_PRODUCE).contains(&count) {
        return Err(Notice::error(
            "That number of messages won't work",
            format!(
                "Produce between 1 and {} messages at a time.",
                limits::MAX_PRODUCE
            ),
        ));
    }
    match keys {
        KeyMode::Fixed { key } if key.is_empty() || key.len() > limits::MAX_KEY_LEN => {
            Err(Notice::error(
                "That key won't work",
                format!("A key needs 1 to {} characters.", limits::MAX_KEY_LEN),
            ))
        }
        KeyMode::Rotating { distinct } if !(1..=limits::MAX_DISTINCT_KEYS).contains(distinct) => {
            Err(Notice::error(
                "That number of keys won't work",
                format!("Rotate between 1 and {} keys.", limits::MAX_DISTINCT_KEYS),
            ))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_through_json() {
        let commands = [
            ClientCommand::CreateTopic {
                topic: "user-clicks".into(),
                partitions: 3,
            },
            ClientCommand::Produce {
                topic: "user-clicks".into(),
                count: 10,
                keys: KeyMode::Rotating { distinct: 4 },
                partition: None,
                text: Some("poison".into()),
            },
            ClientCommand::StartInstance {
                group: "click-processors".into(),
                topic: "user-clicks".into(),
                settings: ConsumerSettings::default(),
            },
            ClientCommand::CrashInstance {
                instance: InstanceId(3),
            },
            ClientCommand::OpenHint,
        ];
        for command in commands {
            let json = serde_json::to_string(&command).expect("commands serialize");
            let back: ClientCommand = serde_json::from_str(&json).expect("commands deserialize");
            assert_eq!(back, command, "{json}");
        }
    }

    #[test]
    fn crash_and_stop_are_distinct_commands() {
        let stop = serde_json::to_string(&ClientCommand::StopInstance {
            instance: InstanceId(1),
        })
        .expect("serialize");
        let crash = serde_json::to_string(&ClientCommand::CrashInstance {
            instance: InstanceId(1),
        })
        .expect("serialize");
        assert_eq!(stop, r#"{"command":"stop_instance","instance":1}"#);
        assert_eq!(crash, r#"{"command":"crash_instance","instance":1}"#);
    }

    #[track_caller]
    fn check_name(name: &str, accepted: bool) {
        assert_eq!(validate_name("topic", name).is_ok(), accepted, "{name:?}");
    }

    #[test]
    fn names_follow_kafka_rules() {
        check_name("user-clicks", true);
        check_name("a.b_c-9", true);
        check_name("", false);
        check_name("..", false);
        check_name("has space", false);
        check_name("semi;colon", false);
        check_name("rm -rf /", false);
        check_name(&"x".repeat(101), false);
    }

    #[test]
    fn partition_counts_are_bounded() {
        assert!(validate_partitions(1).is_ok());
        assert!(validate_partitions(64).is_ok());
        assert!(validate_partitions(0).is_err());
        assert!(validate_partitions(65).is_err());
        assert!(validate_partitions(-3).is_err());
    }
}
