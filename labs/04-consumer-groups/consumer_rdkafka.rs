//! Lab 04 in Rust: a member of click-processors that prints its rebalances and messages.
//!
//! Cargo.toml: rdkafka = "0.39", tokio = { version = "1", features = ["full"] }
//! Run:        cargo run -- BOOTSTRAP   (Ctrl-C leaves the group cleanly)

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::Message;

/// Prints each rebalance as librdkafka reports it.
struct ShowRebalances;

impl ClientContext for ShowRebalances {}

impl ConsumerContext for ShowRebalances {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let partitions = |list: &rdkafka::TopicPartitionList| -> Vec<i32> {
            list.elements().iter().map(|e| e.partition()).collect()
        };
        match rebalance {
            Rebalance::Assign(list) => println!("assigned: {:?}", partitions(list)),
            Rebalance::Revoke(list) => println!("revoked: {:?}", partitions(list)),
            Rebalance::Error(err) => println!("rebalance failed: {err}"),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), rdkafka::error::KafkaError> {
    let bootstrap = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9092".to_owned());
    let consumer: StreamConsumer<ShowRebalances> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "click-processors")
        .set("client.id", "lab04-rust")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        .create_with_context(ShowRebalances)?;
    consumer.subscribe(&["user-clicks"])?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            received = consumer.recv() => match received {
                Ok(message) => {
                    let value = message.payload().map(String::from_utf8_lossy).unwrap_or_default();
                    println!("partition {} offset {}: {value}", message.partition(), message.offset());
                }
                Err(err) => println!("error: {err}"),
            },
        }
    }
    // Dropping the consumer closes it: it commits and sends LeaveGroup, so the group rebalances at once.
    drop(consumer);
    Ok(())
}
