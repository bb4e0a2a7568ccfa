//! RabbitMQ: a lab's queue and its competing consumers, as the page shows them.
//!
//! A queue has no groups and no partitions: every consumer attached to it is a competitor, and
//! the broker deals its messages out one by one. A message handed to a consumer that must
//! acknowledge it is *unacked* until the consumer acknowledges it, rejects it, or goes away; when
//! the consumer's channel closes (a crash included), its unacked messages go straight back to the
//! queue, marked *redelivered*.

use serde::{Deserialize, Serialize};

use crate::{EpochMillis, InstanceId};

/// A queue as RabbitMQ's management API describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RabbitQueueView {
    pub name: String,
    /// Messages waiting for a consumer.
    pub ready: u64,
    /// Messages handed to consumers and not acknowledged yet.
    pub unacked: u64,
    /// Where rejected messages go (`x-dead-letter-routing-key`), if anywhere.
    pub dead_letter_queue: Option<String>,
    /// Totals since the queue was made, as far as the broker's statistics have caught up
    /// (it refreshes them every half second here).
    pub published: u64,
    pub delivered: u64,
    pub redelivered: u64,
    pub acked: u64,
    /// The consumers attached now, sorted by tag.
    pub consumers: Vec<RabbitConsumerView>,
    /// Operations the broker refused a client since the lab was opened, newest last (on the
    /// lab's main queue only: the broker's log does not always say which queue a client meant).
    pub refusals: Vec<RabbitRefusal>,
}

/// An operation RabbitMQ refused a client, closing its channel (from the broker's log).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RabbitRefusal {
    /// The client's connection name, or its address.
    pub client: String,
    /// The AMQP method, such as `exchange.declare`.
    pub operation: String,
    /// The broker's words, such as `access_refused: operation not permitted on the default exchange`.
    pub error: String,
    /// When this server read it.
    pub seen_at: EpochMillis,
}

/// One consumer of a queue: a subscription (`basic.consume`) on a channel, whoever runs it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RabbitConsumerView {
    /// The consumer tag; grouplab's instances use their client id.
    pub tag: String,
    /// The page instance that is this consumer, if one is.
    pub instance: Option<InstanceId>,
    pub colour: u8,
    /// The name its connection gave itself, or the connection's address.
    pub connection: String,
    /// How many unacked messages it may hold (`basic.qos`); 0 is no limit.
    pub prefetch: u16,
    /// Whether it acknowledges (false: auto-ack, a message counts as done once sent).
    pub ack_required: bool,
    /// Messages it holds unacked (its channel's count).
    pub unacked: u64,
}

impl RabbitQueueView {
    pub fn consumer(&self, tag: &str) -> Option<&RabbitConsumerView> {
        self.consumers.iter().find(|c| c.tag == tag)
    }
}

/// A message as a RabbitMQ consumer instance was handed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RabbitDelivery {
    pub queue: String,
    /// The channel's delivery tag: 1, 2, 3… per consumer.
    pub tag: u64,
    /// The message's `key` header, if it has one.
    pub key: Option<String>,
    /// The body as text, cut to [`crate::MAX_REPORTED_VALUE`].
    pub value: String,
    /// Whether the broker had handed this message out before (the `redelivered` flag).
    pub redelivered: bool,
}

/// What a crash of a page instance did to the work it held, measured alike on every broker, so
/// that a learner can compare Kafka's, Redis's and RabbitMQ's answers to the same crash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrashReport {
    pub backend: crate::Backend,
    /// The lab it happened in, and the instance's name there.
    pub lab: String,
    pub instance: String,
    pub at: EpochMillis,
    /// What it held as it died: partitions on Kafka, pending entries on Redis, unacked messages
    /// on RabbitMQ.
    pub held: u64,
    /// How long until another consumer had its work: a rebalance after the session timeout,
    /// a claim, or a redelivery. `None` while nobody has.
    pub moved_after_ms: Option<u64>,
    /// Messages or entries delivered a second time since the crash.
    pub delivered_again: u64,
}

impl CrashReport {
    /// What `held` counts, as the page says it.
    pub fn held_unit(&self) -> &'static str {
        match self.backend {
            crate::Backend::Kafka => "partition(s)",
            crate::Backend::Redis => "pending entr(ies)",
            crate::Backend::RabbitMq => "unacked message(s)",
        }
    }

    /// How the work moved on this broker.
    pub fn how(&self) -> &'static str {
        match self.backend {
            crate::Backend::Kafka => {
                "the group rebalanced once the session timed out; the new owner read from the last commit"
            }
            crate::Backend::Redis => {
                "nothing moved until a consumer claimed the idle entries (XAUTOCLAIM)"
            }
            crate::Backend::RabbitMq => {
                "the dropped connection put them back in the queue at once, marked redelivered"
            }
        }
    }
}
