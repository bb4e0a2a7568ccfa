//! Kafka: the embedded broker grouplab runs itself, the server's own clients of whichever broker
//! is in use, and whether it answers.
//!
//! - [`embedded`]: nisshi's parts assembled in this process, with its accept loop.
//! - `codec`: requests decoded and answers encoded where they are served, not on a thread pool.
//! - `advertised`: each client told the broker's address as it reaches it.
//! - `coordinator`: nisshi's group coordinator, wrapped so that every change to a group is seen.
//! - `consumer_groups`: the consumer group protocol (KIP-848), which nisshi lacks, beside it.
//! - `group_watch`: the embedded broker's groups as observations, pushed as they change.
//! - `fetch`: fetches that wait on produces, as Apache Kafka's do, not on a timer.
//! - `describe`: groups described to admin clients with their members, as Apache Kafka does.
//! - `partitions`: topics that grow (CreatePartitions), within partitions reserved at creation.
//! - `wire`: the consumer protocol's assignment bytes and member ids, decoded.
//! - `cluster`: the server's rdkafka clients (admin, producer, offsets, DescribeGroups).
//! - [`health`]: whether the broker answers, probed for the whole server.

mod advertised;
mod cluster;
mod codec;
mod consumer_groups;
mod coordinator;
mod describe;
pub mod embedded;
mod fetch;
mod group_watch;
pub mod health;
mod partitions;
mod wire;

pub use self::cluster::{Cluster, Polled};
pub use self::coordinator::Refusal;
pub use self::embedded::{BrokerError, EmbeddedBroker};
pub use self::group_watch::{GroupChange, GroupWatch};
