//! The parts of a lab's session that only a Redis Streams lab has: polling its streams, and the
//! reports of Redis consumer instances.

use std::collections::HashMap;

use grouplab_protocol::held::HeldSample;
use grouplab_protocol::{
    EpochMicros, EpochMillis, GROUP_COLOUR, InstanceProblem, InstanceState, InstanceView,
    MessageView, Notice, ServerEvent, StreamEntry, StreamView, TimelineEntry, TimelineKind,
};

use super::actor::Session;
use super::reports::Card;
use grouplab_backends::CallError;
use grouplab_backends::clock::now_ms;
use grouplab_backends::redis::loose_readers_since;

/// What one poll of a Redis lab read.
pub(super) struct StreamsPolled {
    /// Each of the lab's streams, `None` when it does not exist.
    streams: Vec<(String, Option<StreamView>)>,
    /// Connections reading with plain `XREAD` (name or address, command).
    loose: Vec<(String, String)>,
}

impl Session {
    pub(super) fn start_stream_poll(&mut self) {
        if self.lab_url.is_none() {
            return;
        }
        let redis = self.deps.redis.clone();
        let streams: Vec<String> = self.topics.iter().cloned().collect();
        let poll = async move {
            let mut found = Vec::new();
            for stream in streams {
                let view = redis.describe(&stream).await?;
                found.push((stream, view));
            }
            Ok(StreamsPolled {
                streams: found,
                loose: redis.loose_readers().await?,
            })
        };
        self.run_poll(poll, Session::on_streams_polled);
    }

    /// Shows what Redis holds now, and learns from it what the checks need: who was handed
    /// entries, what a crashed instance left pending, and entries that moved (claims).
    fn on_streams_polled(&mut self, result: Result<StreamsPolled, CallError>) {
        // Redis's health is whether it answers the polls.
        self.polled_health(result.as_ref().err());
        let Ok(polled) = result else {
            return;
        };
        let now = now_ms();
        let main = self.lab.content.setup.topic.clone();
        for (name, found) in polled.streams {
            let known = self.view.stream(&name).cloned();
            let Some(mut stream) = found else {
                if known.is_some() {
                    self.emit(ServerEvent::StreamRemoved { stream: name });
                }
                continue;
            };
            if name == main {
                let before = known.as_ref().map_or(&[][..], |k| &k.loose_readers);
                stream.loose_readers = loose_readers_since(polled.loose.clone(), before, now);
                if !stream.loose_readers.is_empty() {
                    self.run.history.streams.loose_readers = true;
                }
            }
            self.link_consumers(&mut stream);
            self.learn_from(&stream, now);
            for sample in HeldSample::of_stream(&stream, now) {
                self.record_held(sample);
            }
            if known.as_ref() != Some(&stream) {
                self.emit(ServerEvent::Stream(stream));
                self.progress_dirty = true;
            }
        }
    }

    /// Links each consumer to the page instance of that client id, and gives it a colour.
    fn link_consumers(&self, stream: &mut StreamView) {
        let mut taken = self.instance_colours();
        for group in &mut stream.groups {
            for consumer in &mut group.consumers {
                let previous = self
                    .view
                    .stream(&stream.name)
                    .and_then(|s| s.group(&group.name))
                    .and_then(|g| g.consumer(&consumer.name))
                    .map(|c| c.colour);
                (consumer.instance, consumer.colour) =
                    self.link_consumer(&consumer.name, Some(&group.name), previous, &mut taken);
            }
        }
    }

    fn learn_from(&mut self, stream: &StreamView, now: EpochMillis) {
        let mut owners = HashMap::new();
        let mut crashed_held = Vec::new();
        for group in &stream.groups {
            if !self.groups.contains(&group.name) {
                continue;
            }
            let history = &mut self.run.history.streams;
            let externals: Vec<&str> = group
                .consumers
                .iter()
                .filter(|c| c.instance.is_none())
                .map(|c| c.name.as_str())
                .collect();
            for consumer in &group.consumers {
                if consumer.instance.is_none() && consumer.pending > 0 {
                    history.handed_to(&group.name, &consumer.name, true);
                }
                let crashed = consumer
                    .instance
                    .and_then(|id| self.view.instance(id))
                    .is_some_and(|i| matches!(i.state, InstanceState::Crashed { .. }));
                if crashed {
                    let left = history.left_pending.entry(group.name.clone()).or_default();
                    *left = (*left).max(consumer.pending);
                    if let Some(id) = consumer.instance {
                        crashed_held.push((id, consumer.pending));
                    }
                }
                for entry in &consumer.entries {
                    history.delivered(&group.name, entry.deliveries);
                    owners.insert(
                        (group.name.clone(), entry.id.clone()),
                        consumer.name.clone(),
                    );
                }
            }
            // Entries the group was handed beyond what page instances received went to the
            // others; with one other consumer, they went to it.
            let received_by_instances = history.first_received(&group.name);
            if let ([external], Some(read)) = (externals.as_slice(), group.entries_read)
                && read > received_by_instances
            {
                history.handed_to(&group.name, external, true);
            }
        }
        // Claims by consumers the page does not run; instances report their own.
        let mut claims = Vec::new();
        for ((group, id), owner) in &owners {
            let external = stream
                .group(group)
                .and_then(|g| g.consumer(owner))
                .is_some_and(|c| c.instance.is_none());
            if let Some(before) = self.run.pending_owners.get(&(group.clone(), id.clone()))
                && before != owner
                && external
                && self.run.history.streams.claimed(group, id)
            {
                claims.push((group.clone(), owner.clone(), id.clone()));
            }
        }
        self.run
            .pending_owners
            .retain(|(group, _), _| !stream.groups.iter().any(|g| &g.name == group));
        self.run.pending_owners.extend(owners);
        for (id, pending) in crashed_held {
            self.crash_held(id, pending);
        }
        if !claims.is_empty() {
            self.crash_work_moved(now);
            self.crash_delivered_again(claims.len() as u64);
        }
        self.timeline_claims(stream, claims, now);
    }

    /// One timeline entry per consumer that claimed entries since the last poll.
    fn timeline_claims(
        &mut self,
        stream: &StreamView,
        claims: Vec<(String, String, String)>,
        now: EpochMillis,
    ) {
        let mut by_consumer: std::collections::BTreeMap<(String, String), Vec<String>> =
            Default::default();
        for (group, consumer, id) in claims {
            by_consumer.entry((group, consumer)).or_default().push(id);
        }
        for ((group, consumer), mut entries) in by_consumer {
            entries.sort();
            let found = stream
                .group(&group)
                .and_then(|g| g.consumer(&consumer))
                .cloned();
            let instance = found.as_ref().and_then(|c| c.instance);
            let name = instance
                .and_then(|id| self.view.instance(id))
                .map_or(consumer.clone(), |i| i.name.clone());
            self.emit(ServerEvent::Timeline(TimelineEntry {
                at: now,
                group,
                instance,
                member: Some(consumer),
                name,
                colour: found.map_or(GROUP_COLOUR, |c| c.colour),
                kind: TimelineKind::Claimed { entries },
                partitions: Vec::new(),
                epoch: None,
            }));
        }
    }

    /// One timeline entry per instance that claimed entries since the last flush.
    pub(super) fn flush_claims(&mut self) {
        for (id, entries) in std::mem::take(&mut self.run.claims) {
            if let Some(view) = self.view.instance(id).cloned() {
                self.timeline(
                    &view,
                    TimelineKind::Claimed { entries },
                    Vec::new(),
                    now_ms(),
                );
            }
        }
    }

    /// The instance's client reads the stream in its group.
    pub(super) fn stream_reading(&mut self, view: &mut InstanceView) -> Card {
        if matches!(view.state, InstanceState::Starting | InstanceState::Joining) {
            view.state = InstanceState::Running;
        }
        view.problem = None;
        self.start_poll();
        Card::Changed
    }

    /// An entry the instance was handed: by its group's read, or claimed from another consumer.
    pub(super) fn stream_entry(
        &mut self,
        view: &InstanceView,
        entry: StreamEntry,
        at_us: EpochMicros,
        now: EpochMillis,
    ) -> Card {
        let history = &mut self.run.history.streams;
        history.delivered(&view.group, entry.deliveries);
        let held = (view.group.clone(), entry.id.clone());
        // An entry this consumer claims back from itself is a retry, not a takeover.
        let from_another = self
            .run
            .pending_owners
            .get(&held)
            .is_none_or(|owner| owner != view.consumer_name());
        let taken_over = entry.claimed && from_another;
        if taken_over {
            history.claimed(&view.group, &entry.id);
            self.run
                .claims
                .entry(view.id)
                .or_default()
                .push(entry.id.clone());
        } else if !entry.claimed {
            history.first_handed(&view.group, &entry.id, view.consumer_name());
        }
        history.handed_to(&view.group, view.consumer_name(), false);
        if view.settings.commit != grouplab_protocol::CommitPolicy::Auto {
            self.run
                .pending_owners
                .insert(held, view.consumer_name().to_owned());
        }
        if taken_over {
            self.crash_work_moved(now);
            self.crash_delivered_again(1);
        }
        self.take_message(view.id, at_us, || MessageView {
            instance: view.id,
            topic: entry.stream.clone(),
            partition: 0,
            offset: -1,
            entry: Some(entry.id.clone()),
            key: entry.key.clone(),
            value: entry.value.clone(),
            at: now,
        });
        Card::Unchanged
    }

    /// An entry the instance finished processing.
    pub(super) fn entry_processed(&mut self, view: &mut InstanceView, now: EpochMillis) -> Card {
        self.run
            .history
            .last_processed
            .insert(view.group.clone(), now);
        self.count_processed(view.id);
        self.progress_dirty = true;
        if view.problem.take().is_some() {
            return Card::Changed;
        }
        Card::Unchanged
    }

    /// Entries the instance acknowledged (`XACK`): no longer pending with it.
    pub(super) fn entries_acked(&mut self, view: &InstanceView, ids: Vec<String>) -> Card {
        for id in ids {
            self.run.pending_owners.remove(&(view.group.clone(), id));
        }
        Card::Unchanged
    }

    /// An entry failed processing; it stays pending.
    pub(super) fn entry_failed(
        &mut self,
        view: &mut InstanceView,
        id: String,
        deliveries: u64,
        error: String,
        now: EpochMillis,
    ) -> Card {
        let attempts = self
            .run
            .history
            .attempts
            .entry(view.group.clone())
            .or_default();
        *attempts = (*attempts).max(deliveries as u32);
        view.problem = Some(InstanceProblem {
            message: format!("entry {id}, delivery {deliveries}: {error}; left pending"),
            at: now,
        });
        self.progress_dirty = true;
        Card::Changed
    }

    /// An entry that failed every delivery was copied to the dead-letter stream and acknowledged.
    pub(super) fn entry_dead_lettered(
        &mut self,
        view: &mut InstanceView,
        id: String,
        deliveries: u64,
        dead_letter_stream: String,
    ) -> Card {
        view.dead_lettered += 1;
        view.problem = None;
        *self
            .run
            .history
            .dead_lettered
            .entry(view.group.clone())
            .or_default() += 1;
        let _ = self.events.send(ServerEvent::Notice(Notice::info(
            format!("Instance {} moved an entry aside", view.name),
            format!(
                "Entry {id} was delivered {deliveries} time(s) and failed each time: it was copied to `{dead_letter_stream}` and acknowledged."
            ),
        )));
        self.start_poll();
        self.progress_dirty = true;
        Card::Changed
    }
}
