//! The brokers a lab can run on, and the seam between a lab's session and them.
//!
//! The session, the supervisor, progress, the timeline and messages are the same for every
//! broker; what differs is how a lab's stream of work is written to, read back and deleted.
//! [`LabBroker`] is that difference, one variant per broker. What the brokers share is here too:
//! the error of a call worded for a learner ([`CallError`]), what a produce wrote ([`Produced`]),
//! and the numbered messages every produce writes ([`numbered_message`]).
//!
//! - [`kafka`]: the embedded broker, the server's Kafka clients, and the broker's health.
//! - [`redis`]: the Redis Streams labs' `redis-server` and the server's client for it.
//! - [`rabbitmq`]: the RabbitMQ labs' `rabbitmq-server`, its AMQP client and management API.
//! - [`own_process`]: what starting such a broker as grouplab's own child needs.
//! - [`clock`]: the one clock, here in the lowest layer that reads the time.

pub mod clock;
pub mod kafka;
pub mod own_process;
pub mod rabbitmq;
pub mod redis;

use std::collections::HashMap;

use grouplab_protocol::KeyMode;

use self::kafka::Cluster;
use self::rabbitmq::Rabbit;
use self::redis::Redis;

/// What went wrong in a call to a lab's broker (Kafka, Redis or RabbitMQ), worded for a learner.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    #[error(
        "The broker at {address} did not answer. Check that it is running and reachable from this machine; grouplab and the consumers reconnect by themselves once it answers again."
    )]
    Unreachable { address: String },
    #[error("A topic named `{0}` already exists.")]
    TopicExists(String),
    #[error("There is no topic named `{0}`. Create it first.")]
    UnknownTopic(String),
    #[error("Partition {partition} does not exist: `{topic}` has partitions 0 to {last}.")]
    UnknownPartition {
        topic: String,
        partition: i32,
        last: i32,
    },
    #[error("The broker refused: {0}")]
    Refused(String),
    #[error("This broker cannot do that: {0}.")]
    Unsupported(&'static str),
    /// The broker could not be started or reached at all; the text says why and what to do.
    #[error("{0}")]
    Unavailable(String),
    #[error(
        "grouplab hit a problem of its own while talking to the broker (the details are in its log). Try again, and restart grouplab if it repeats."
    )]
    Internal,
}

/// Where one Produce command's messages landed, as the broker acknowledged them.
#[derive(Debug, Default)]
pub struct Produced {
    /// Messages per partition.
    pub landed: HashMap<i32, u64>,
    /// The partitions each key landed in: one per key, unless a partition was forced.
    pub keys: std::collections::BTreeMap<String, Vec<i32>>,
}

/// The `i`-th message of one produce, numbered `number`: its key as `keys` says, and its value
/// `click #N` (`by <key>`, then `: <text>`), which the ledger and the order checks read back.
pub fn numbered_message(
    keys: &KeyMode,
    i: u64,
    number: u64,
    text: Option<&str>,
) -> (Option<String>, String) {
    let key = match keys {
        KeyMode::None | KeyMode::RoundRobin => None,
        KeyMode::Fixed { key } => Some(key.clone()),
        KeyMode::Rotating { distinct } => {
            Some(format!("user-{}", i % u64::from((*distinct).max(1))))
        }
    };
    let mut value = match &key {
        Some(key) => format!("click #{number} by {key}"),
        None => format!("click #{number}"),
    };
    if let Some(text) = text {
        value.push_str(": ");
        value.push_str(text);
    }
    (key, value)
}

/// The broker calls a session makes that differ between brokers.
#[derive(Clone)]
pub enum LabBroker {
    Kafka(Cluster),
    Redis(Redis),
    RabbitMq(Rabbit),
}

impl LabBroker {
    /// Writes `count` numbered messages (`click #N`), keyed as `keys` says; on Kafka, to one
    /// `partition` if given (a stream has none).
    pub async fn produce(
        &self,
        topic: &str,
        count: u32,
        keys: &KeyMode,
        partition: Option<i32>,
        text: Option<&str>,
        first_number: u64,
    ) -> Result<Produced, CallError> {
        match self {
            Self::Kafka(cluster) => {
                cluster
                    .produce(topic, count, keys, partition, text, first_number)
                    .await
            }
            Self::Redis(redis) => redis.produce(topic, count, keys, text, first_number).await,
            Self::RabbitMq(rabbit) => rabbit.produce(topic, count, keys, text, first_number).await,
        }
    }

    /// Deletes what a reset deletes: groups then topics on Kafka; streams (with their groups) on
    /// Redis; queues (with their messages) on RabbitMQ.
    pub async fn delete(&self, topics: &[&str], groups: &[&str]) -> Result<(), CallError> {
        match self {
            Self::Kafka(cluster) => {
                cluster.delete_groups(groups).await?;
                cluster.delete_topics(topics).await
            }
            Self::Redis(redis) => redis.delete(topics).await,
            Self::RabbitMq(rabbit) => rabbit.delete(topics).await,
        }
    }
}
