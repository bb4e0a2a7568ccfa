//! Redis Streams: a lab's stream and its consumer groups, as the page shows them.
//!
//! A Redis consumer group has no partitions: every entry of the stream is handed to one consumer
//! of the group, stays in that consumer's pending entries list until it is acknowledged
//! (`XACK`), and is only delivered again when someone claims it (`XCLAIM`, `XAUTOCLAIM`).

use serde::{Deserialize, Serialize};

use crate::{EpochMillis, InstanceId};

/// Which broker a lab runs on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// Kafka: topics, partitions, consumer groups that share partitions.
    #[default]
    Kafka,
    /// Redis Streams: a stream, consumer groups that share its entries (`XREADGROUP`, `XACK`).
    Redis,
    /// RabbitMQ: a queue, competing consumers that share its messages (`basic.consume`, `basic.ack`).
    #[serde(rename = "rabbitmq")]
    RabbitMq,
}

impl Backend {
    /// The broker's name, as the page says it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Kafka => "Kafka",
            Self::Redis => "Redis Streams",
            Self::RabbitMq => "RabbitMQ",
        }
    }
}

/// How many pending entries the page lists per consumer; the count is always exact.
pub const MAX_PENDING_SHOWN: usize = 20;

/// A stream as Redis describes it (`XINFO STREAM`, `XINFO GROUPS`, `XINFO CONSUMERS`, `XPENDING`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamView {
    pub name: String,
    /// How many entries the stream holds.
    pub length: u64,
    /// The id of the newest entry, if any.
    pub last_id: Option<String>,
    /// The stream's consumer groups, sorted by name.
    pub groups: Vec<StreamGroupView>,
    /// Connections reading the stream with plain `XREAD`, in no group: each of them gets every entry.
    pub loose_readers: Vec<LooseReader>,
}

/// One consumer group of a stream.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamGroupView {
    pub name: String,
    /// The id of the newest entry handed to any consumer of the group.
    pub last_delivered_id: String,
    /// How many entries the group has been handed in all (Redis 7's `entries-read`), when known.
    pub entries_read: Option<u64>,
    /// Entries of the stream not yet handed to anyone in the group, when Redis can tell.
    pub lag: Option<u64>,
    /// Entries handed out and not yet acknowledged, over all consumers.
    pub pending: u64,
    /// The group's consumers, sorted by name.
    pub consumers: Vec<StreamConsumerView>,
}

/// One consumer of a group: whoever runs it, it exists from its first `XREADGROUP` until it is
/// deleted (`XGROUP DELCONSUMER`); a crashed consumer stays, holding its pending entries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamConsumerView {
    pub name: String,
    /// The page instance that is this consumer, if one is.
    pub instance: Option<InstanceId>,
    pub colour: u8,
    /// How many entries it holds unacknowledged (exact).
    pub pending: u64,
    /// How long since it last read or claimed (Redis's `idle`).
    pub idle_ms: u64,
    /// Its oldest pending entries, at most [`MAX_PENDING_SHOWN`].
    pub entries: Vec<PendingEntry>,
}

/// An entry handed to a consumer and not acknowledged yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingEntry {
    pub id: String,
    /// How long since it was last delivered.
    pub idle_ms: u64,
    /// How many times it was delivered (a claim counts as a delivery).
    pub deliveries: u64,
}

/// A connection that reads the lab's stream outside any group (`CLIENT LIST`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LooseReader {
    /// The connection's name (`CLIENT SETNAME`), or its address.
    pub client: String,
    /// Its latest command, as Redis names it (`xread`).
    pub command: String,
    /// When this server first saw it.
    pub since: EpochMillis,
}

impl StreamView {
    pub fn group(&self, name: &str) -> Option<&StreamGroupView> {
        self.groups.iter().find(|g| g.name == name)
    }
}

impl StreamGroupView {
    pub fn consumer(&self, name: &str) -> Option<&StreamConsumerView> {
        self.consumers.iter().find(|c| c.name == name)
    }
}
