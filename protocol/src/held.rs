//! What each Redis or RabbitMQ consumer held over time: the pending entries of a stream group's
//! consumers, or the unacked messages of a queue's consumers. It is the Redis and RabbitMQ labs'
//! counterpart of partition ownership: where Kafka hands a consumer partitions, these brokers
//! hand it messages, and a crash leaves them with the dead consumer (Redis, until a claim) or
//! sends them straight back (RabbitMQ).
//!
//! The server records a [`HeldSample`] whenever a poll of the broker finds different counts, and
//! [`held_chart`] turns a source's samples into one step line per consumer for the page.

use serde::{Deserialize, Serialize};

use crate::{EpochMillis, InstanceId, RabbitQueueView, StreamView};

/// How many samples a snapshot keeps of each source (a stream's group, a queue): a new one is
/// made only when a count changes.
pub const MAX_HELD_SAMPLES: usize = 600;

/// What a source's consumers held at one moment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldSample {
    pub at: EpochMillis,
    /// A stream group (`orders/order-workers`) or a queue (`tasks`).
    pub source: String,
    /// What waits for a consumer: a queue's ready messages, or a group's entries not handed out
    /// yet when Redis can tell.
    pub waiting: Option<u64>,
    /// Its consumers, sorted by name.
    pub consumers: Vec<HeldBy>,
}

/// One consumer's count in a [`HeldSample`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldBy {
    pub name: String,
    /// The page instance that is this consumer, if one is.
    pub instance: Option<InstanceId>,
    pub colour: u8,
    /// Pending entries (Redis) or unacked messages (RabbitMQ).
    pub held: u64,
}

impl HeldSample {
    /// One sample per group of a stream.
    pub fn of_stream(stream: &StreamView, at: EpochMillis) -> Vec<Self> {
        stream
            .groups
            .iter()
            .map(|group| Self {
                at,
                source: stream_source(&stream.name, &group.name),
                waiting: group.lag,
                consumers: group
                    .consumers
                    .iter()
                    .map(|c| HeldBy {
                        name: c.name.clone(),
                        instance: c.instance,
                        colour: c.colour,
                        held: c.pending,
                    })
                    .collect(),
            })
            .collect()
    }

    pub fn of_queue(queue: &RabbitQueueView, at: EpochMillis) -> Self {
        Self {
            at,
            source: queue.name.clone(),
            waiting: Some(queue.ready),
            consumers: queue
                .consumers
                .iter()
                .map(|c| HeldBy {
                    name: c.tag.clone(),
                    instance: c.instance,
                    colour: c.colour,
                    held: c.unacked,
                })
                .collect(),
        }
    }

    /// Whether it shows what `other` shows, whenever each was taken.
    pub fn same_counts(&self, other: &Self) -> bool {
        self.source == other.source
            && self.waiting == other.waiting
            && self.consumers == other.consumers
    }
}

/// The source name of a stream's group.
pub fn stream_source(stream: &str, group: &str) -> String {
    format!("{stream}/{group}")
}

/// One source's counts over time, as the page draws them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldChart {
    pub source: String,
    /// When the first sample was taken.
    pub start: Option<EpochMillis>,
    pub waiting: Vec<Step>,
    /// One per consumer ever seen, sorted by name.
    pub lanes: Vec<HeldLane>,
    /// The largest count any consumer held, so that lanes share one scale.
    pub max_held: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldLane {
    pub name: String,
    pub instance: Option<InstanceId>,
    pub colour: u8,
    /// Oldest first, each differing from the one before.
    pub steps: Vec<Step>,
}

/// From `at` on, until the next step, a count held: `None` while it was not a consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub at: EpochMillis,
    pub held: Option<u64>,
}

impl HeldLane {
    /// What it holds after its last step.
    pub fn now(&self) -> Option<u64> {
        self.steps.last().and_then(|s| s.held)
    }
}

/// Reads `source`'s samples (oldest first) into one step line per consumer.
pub fn held_chart(samples: &[HeldSample], source: &str) -> HeldChart {
    let mut chart = HeldChart {
        source: source.to_owned(),
        ..HeldChart::default()
    };
    for sample in samples.iter().filter(|s| s.source == source) {
        chart.start.get_or_insert(sample.at);
        push_step(&mut chart.waiting, sample.at, sample.waiting);
        for by in &sample.consumers {
            if !chart.lanes.iter().any(|l| l.name == by.name) {
                chart.lanes.push(HeldLane {
                    name: by.name.clone(),
                    instance: by.instance,
                    colour: by.colour,
                    steps: Vec::new(),
                });
            }
            chart.max_held = chart.max_held.max(by.held);
        }
        for lane in &mut chart.lanes {
            let by = sample.consumers.iter().find(|c| c.name == lane.name);
            if let Some(by) = by {
                lane.instance = by.instance.or(lane.instance);
                lane.colour = by.colour;
            }
            push_step(&mut lane.steps, sample.at, by.map(|c| c.held));
        }
    }
    chart.lanes.sort_by(|a, b| a.name.cmp(&b.name));
    chart
}

fn push_step(steps: &mut Vec<Step>, at: EpochMillis, held: Option<u64>) {
    if steps.last().is_none_or(|last| last.held != held) {
        steps.push(Step { at, held });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: EpochMillis, waiting: u64, consumers: &[(&str, u64)]) -> HeldSample {
        HeldSample {
            at,
            source: "tasks".to_owned(),
            waiting: Some(waiting),
            consumers: consumers
                .iter()
                .map(|(name, held)| HeldBy {
                    name: (*name).to_owned(),
                    instance: None,
                    colour: name.as_bytes()[0] - b'A',
                    held: *held,
                })
                .collect(),
        }
    }

    fn steps(lane: &HeldLane) -> Vec<(EpochMillis, Option<u64>)> {
        lane.steps.iter().map(|s| (s.at, s.held)).collect()
    }

    #[test]
    fn a_crashed_consumers_messages_go_back_and_to_the_survivor() {
        let samples = [
            sample(1_000, 20, &[]),
            sample(1_500, 9, &[("A", 10), ("B", 1)]),
            sample(2_000, 8, &[("A", 9), ("B", 1)]),
            // A is killed: RabbitMQ puts its nine back in the queue at once.
            sample(2_500, 17, &[("B", 1)]),
            sample(3_000, 16, &[("B", 1)]),
        ];
        let chart = held_chart(&samples, "tasks");
        assert_eq!(chart.start, Some(1_000));
        assert_eq!(chart.max_held, 10);
        let names: Vec<&str> = chart.lanes.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["A", "B"]);
        assert_eq!(
            steps(&chart.lanes[0]),
            [(1_500, Some(10)), (2_000, Some(9)), (2_500, None)]
        );
        // An unchanged count makes no step.
        assert_eq!(steps(&chart.lanes[1]), [(1_500, Some(1))]);
        assert_eq!(chart.lanes[0].now(), None);
        let waiting: Vec<_> = chart.waiting.iter().map(|s| s.held).collect();
        assert_eq!(waiting, [Some(20), Some(9), Some(8), Some(17), Some(16)]);
    }

    #[test]
    fn other_sources_are_left_out_and_an_empty_source_has_no_lanes() {
        let mut other = sample(1_000, 3, &[("C", 2)]);
        other.source = "tasks.dead".to_owned();
        let chart = held_chart(&[other.clone()], "tasks");
        assert_eq!(
            chart,
            HeldChart {
                source: "tasks".to_owned(),
                ..HeldChart::default()
            }
        );
        assert_eq!(held_chart(&[other], "tasks.dead").lanes.len(), 1);
    }

    #[test]
    fn a_stream_gives_a_sample_per_group_and_equal_counts_are_the_same() {
        let stream = StreamView {
            name: "orders".to_owned(),
            groups: vec![crate::StreamGroupView {
                name: "order-workers".to_owned(),
                lag: Some(4),
                consumers: vec![crate::StreamConsumerView {
                    name: "A".to_owned(),
                    pending: 3,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let first = HeldSample::of_stream(&stream, 1_000);
        let later = HeldSample::of_stream(&stream, 2_000);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].source, "orders/order-workers");
        assert_eq!(first[0].waiting, Some(4));
        assert_eq!(first[0].consumers[0].held, 3);
        assert!(first[0].same_counts(&later[0]));
        assert!(!first[0].same_counts(&sample(1_000, 4, &[("A", 3)])));
        // A changed count, a changed wait, a consumer gone: each is a new sample.
        let mut changed = later[0].clone();
        changed.consumers[0].held = 2;
        assert!(!first[0].same_counts(&changed));
        let mut changed = later[0].clone();
        changed.waiting = Some(5);
        assert!(!first[0].same_counts(&changed));
        let mut changed = later[0].clone();
        changed.consumers.clear();
        assert!(!first[0].same_counts(&changed));
    }
}
