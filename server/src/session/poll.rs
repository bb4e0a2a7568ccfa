//! The broker polled for what the page shows of it (every 0.7 s while a page is open): on Kafka
//! the topics' offsets and watermarks, the groups' lag and the instances' processing rates.
//! Redis and RabbitMQ labs poll their streams and queues instead (`stream.rs`, `queue.rs`).

use std::collections::BTreeSet;

use grouplab_protocol::{InstanceId, ServerEvent, TopicPartition};

use super::actor::Session;
use grouplab_backends::CallError;
use grouplab_backends::clock::now_ms;
use grouplab_backends::kafka::Polled;

/// How many polls a processing rate is measured over (about 5 s).
const RATE_SAMPLES: usize = 8;

impl Session {
    /// Asks the lab's broker for what the page shows of it: offsets and watermarks (and, on a
    /// named cluster, the groups' members) on Kafka, the streams on Redis, the queues on RabbitMQ.
    pub(super) fn start_poll(&mut self) {
        if self.polling {
            return;
        }
        if self.is_redis() {
            self.start_stream_poll();
            return;
        }
        if !self.is_kafka() {
            self.start_queue_poll();
            return;
        }
        let cluster = self.deps.cluster.clone();
        let topics: Vec<String> = self.topics.iter().cloned().collect();
        let groups: Vec<String> = self.groups.iter().cloned().collect();
        let describe = self.deps.groups.is_none();
        self.run_poll(
            async move { cluster.poll_lab(&topics, &groups, describe).await },
            Session::on_polled,
        );
    }

    /// Runs one poll of the lab's broker in a task of its own; `apply` takes its result, unless
    /// a reset came meanwhile: a poll started before a reset cannot bring back what it deleted.
    pub(super) fn run_poll<T: Send + 'static>(
        &mut self,
        poll: impl Future<Output = T> + Send + 'static,
        apply: fn(&mut Session, T),
    ) {
        self.polling = true;
        let generation = self.generation;
        self.run_outcome(async move {
            let result = poll.await;
            move |session: &mut Session| {
                session.polling = false;
                if generation == session.generation {
                    apply(session, result);
                }
            }
        });
    }

    /// Applies a poll; a failed one changes nothing, since the health monitor tells the page
    /// when the broker is down.
    fn on_polled(&mut self, result: Result<Polled, CallError>) {
        let Ok(Polled { topics, groups }) = result else {
            return;
        };
        for observation in groups {
            self.on_membership(&observation, 0);
        }
        for (topic, exists) in topics {
            let known = self.view.topic(&topic.name);
            match (exists, known) {
                (false, Some(_)) => self.emit(ServerEvent::TopicRemoved { topic: topic.name }),
                (true, Some(known)) if *known == topic => {}
                (true, _) => {
                    self.emit(ServerEvent::Topic(topic));
                    self.progress_dirty = true;
                }
                (false, None) => {}
            }
        }
        self.sample_lag();
    }

    /// Measures every group's lag on every topic it commits to, and the processing rate of
    /// each running instance, after a poll.
    fn sample_lag(&mut self) {
        let now = now_ms();
        for instance in &self.view.instances {
            let samples = self.run.rates.entry(instance.id).or_default();
            samples.push_back((now, instance.processed));
            if samples.len() > RATE_SAMPLES {
                samples.pop_front();
            }
        }
        let alive: BTreeSet<InstanceId> = self
            .view
            .instances
            .iter()
            .filter(|i| i.is_alive())
            .map(|i| i.id)
            .collect();
        self.run.rates.retain(|id, _| alive.contains(id));
        let mut views = Vec::new();
        for group in &self.groups {
            for topic in &self.view.topics {
                let owned = |partition| {
                    self.view
                        .owner(group, &TopicPartition::new(&topic.name, partition))
                        .is_some_and(|m| self.view.is_working(m))
                };
                let Some(mut lag) = self.run.lag.sample(group, topic, owned, now) else {
                    continue;
                };
                lag.rates = self
                    .view
                    .instances
                    .iter()
                    .filter(|i| i.group == *group && i.topic == topic.name && i.is_alive())
                    .filter_map(|i| {
                        let samples = self.run.rates.get(&i.id)?;
                        let (first, last) = (samples.front()?, samples.back()?);
                        let ms = last.0.saturating_sub(first.0);
                        (ms > 0).then(|| (i.id, (last.1 - first.1) as f64 * 1000.0 / ms as f64))
                    })
                    .collect();
                views.push(lag);
            }
        }
        for lag in views {
            // Only a change of lag or status can change a check's verdict; the chart moves on
            // every poll and needs no re-evaluation.
            let known = self
                .view
                .lag
                .iter()
                .find(|l| l.group == lag.group && l.topic == lag.topic);
            if known.map(|l| &l.partitions) != Some(&lag.partitions) {
                self.progress_dirty = true;
            }
            self.emit(ServerEvent::Lag(lag));
        }
    }
}
