//! The seam between a lab's session and the broker the lab runs on.
//!
//! The session, the supervisor, progress, the timeline and messages are the same for every
//! broker; what differs is how a lab's stream of work is written to, read back and deleted.
//! [`LabBroker`] is that difference, one variant per broker.

use grouplab_protocol::KeyMode;

use crate::cluster::{Cluster, ClusterError, Produced};
use crate::rabbitmq::Rabbit;
use crate::redis_streams::Redis;

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
    ) -> Result<Produced, ClusterError> {
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
    pub async fn delete(&self, topics: &[&str], groups: &[&str]) -> Result<(), ClusterError> {
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
