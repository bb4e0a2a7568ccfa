//! The parts of a lab's session that only a Kafka lab has: the reports of Kafka consumer
//! instances. Who owns which partition is the broker's answer (`groups.rs`); these reports add
//! what only grouplab's own processes can say: each message received and processed, their polls,
//! retries and dead letters, and the client's own side of a rebalance.

use grouplab_protocol::{
    Busy, ConsumedMessage, EpochMicros, EpochMillis, Failing, InstanceProblem, InstanceState,
    InstanceView, MessageView, Notice, ServerEvent, TimelineKind, TopicPartition,
};

use super::actor::Session;
use super::reports::Card;
use grouplab_model::history::produced_number;

impl Session {
    /// A message the instance received: counted for the ledger and the order checks, and shown.
    pub(super) fn kafka_message(
        &mut self,
        view: &InstanceView,
        message: ConsumedMessage,
        at_us: EpochMicros,
        now: EpochMillis,
    ) -> Card {
        let history = &mut self.run.history;
        let tp = TopicPartition::new(&message.topic, message.partition);
        let again = history.received_before(&view.group, &tp, message.offset);
        if again {
            self.crash_delivered_again(1);
        }
        let history = &mut self.run.history;
        if !again && let Some(number) = produced_number(&message.value) {
            history
                .order
                .entry((view.group.clone(), message.topic.clone()))
                .or_default()
                .arrived(view.id, message.key.as_deref(), number, message.partition);
        }
        history.record_received(&view.group, tp, message.offset);
        self.take_message(view.id, at_us, || MessageView {
            instance: view.id,
            topic: message.topic,
            partition: message.partition,
            offset: message.offset,
            entry: None,
            key: message.key,
            value: message.value,
            at: now,
        });
        Card::Unchanged
    }

    /// A message the instance finished processing.
    pub(super) fn kafka_processed(
        &mut self,
        view: &mut InstanceView,
        topic: String,
        partition: i32,
        offset: i64,
        now: EpochMillis,
    ) -> Card {
        let history = &mut self.run.history;
        history.record_processed(&view.group, TopicPartition::new(topic, partition), offset);
        history.last_processed.insert(view.group.clone(), now);
        let recovered = view
            .failing
            .as_ref()
            .is_some_and(|f| f.partition == partition && f.offset == offset);
        if recovered {
            view.failing = None;
            self.emit(ServerEvent::Instance(Box::new(view.clone())));
        }
        self.count_processed(view.id);
        self.progress_dirty = true;
        Card::Unchanged
    }

    /// A poll returned `messages`: the loop is busy with them until the next poll.
    pub(super) fn kafka_polled(
        &mut self,
        view: &mut InstanceView,
        messages: u32,
        shown_at_once_since: EpochMicros,
        now: EpochMillis,
    ) -> Card {
        view.busy = (messages > 0).then_some(Busy {
            polled_at: now,
            messages,
        });
        view.reported_at_us = shown_at_once_since;
        Card::Kept
    }

    /// A message failed processing, and may be tried again.
    pub(super) fn processing_failed(
        &mut self,
        view: &mut InstanceView,
        partition: i32,
        offset: i64,
        attempt: u32,
        error: String,
    ) -> Card {
        let attempts = self
            .run
            .history
            .attempts
            .entry(view.group.clone())
            .or_default();
        *attempts = (*attempts).max(attempt);
        view.failing = Some(Failing {
            partition,
            offset,
            attempts: attempt,
            error,
        });
        self.progress_dirty = true;
        Card::Changed
    }

    /// A message that kept failing was written to the dead-letter topic; the partition moves on.
    pub(super) fn dead_lettered(
        &mut self,
        view: &mut InstanceView,
        topic: String,
        partition: i32,
        offset: i64,
        attempts: u32,
        dead_letter_topic: String,
    ) -> Card {
        view.failing = None;
        view.dead_lettered += 1;
        *self
            .run
            .history
            .dead_lettered
            .entry(view.group.clone())
            .or_default() += 1;
        let _ = self.events.send(ServerEvent::Notice(Notice::info(
            format!("Instance {} parked a message", view.name),
            format!(
                "`{topic}` P{partition}@{offset} failed {attempts} time(s) and went to `{dead_letter_topic}`; the partition moves on."
            ),
        )));
        self.start_poll();
        self.progress_dirty = true;
        Card::Changed
    }

    /// The client left its group because processing kept it from polling in time.
    pub(super) fn max_poll_exceeded(
        &mut self,
        view: &mut InstanceView,
        message: String,
        now: EpochMillis,
    ) -> Card {
        *self
            .run
            .history
            .poll_timeouts
            .entry(view.group.clone())
            .or_default() += 1;
        view.problem = Some(InstanceProblem { message, at: now });
        self.timeline(
            view,
            TimelineKind::PollTimeout {
                max_poll_interval_ms: view.settings.max_poll_interval_ms,
            },
            view.partitions.clone(),
            now,
        );
        self.progress_dirty = true;
        Card::Changed
    }

    /// The instance's own side of a rebalance: its state and card. The group's side (who owns
    /// what, the timeline) comes from the broker, as for every member.
    pub(super) fn assigned(
        &mut self,
        view: &mut InstanceView,
        partitions: Vec<TopicPartition>,
        now: EpochMillis,
    ) -> Card {
        self.run
            .history
            .record_regained(&view.group, &partitions, now);
        if matches!(view.state, InstanceState::Starting | InstanceState::Joining) {
            view.state = InstanceState::Running;
        }
        view.problem = None;
        if let Some(id) = &view.settings.static_id {
            let generation = self.view.group(&view.group).and_then(|g| g.generation);
            self.run
                .history
                .static_rejoined(&view.group, id, &partitions, generation);
        }
        for tp in partitions {
            if !view.partitions.contains(&tp) {
                view.partitions.push(tp);
            }
        }
        view.partitions.sort();
        self.progress_dirty = true;
        Card::Changed
    }

    /// What the consumer's own callback gave up: everything under an eager assignor, only what
    /// moves under cooperative-sticky. Drawn on the timeline, and counted for the assignor
    /// checks, unless the instance is leaving anyway.
    pub(super) fn revoked(
        &mut self,
        view: &mut InstanceView,
        partitions: Vec<TopicPartition>,
        now: EpochMillis,
    ) -> Card {
        if view.is_alive() && !matches!(view.state, InstanceState::Stopping { .. }) {
            self.run.history.record_revocation(
                &view.group,
                partitions.len(),
                view.partitions.len(),
            );
            // The instances the group had during this rebalance, the newcomer included.
            let members = self
                .view
                .instances
                .iter()
                .filter(|i| i.group == view.group && i.is_alive())
                .count();
            self.run.history.record_released(
                &view.group,
                &partitions,
                view.partitions.len(),
                now,
                members,
            );
            self.timeline(view, TimelineKind::Released, partitions.clone(), now);
        } else if let Some(id) = &view.settings.static_id {
            // A static member closing gives up what it held here, before it exits.
            let generation = self.view.group(&view.group).and_then(|g| g.generation);
            self.run
                .history
                .static_left(&view.group, id, view.partitions.clone(), generation);
        }
        view.partitions.retain(|tp| !partitions.contains(tp));
        self.progress_dirty = true;
        Card::Changed
    }
}

/// The worker queue's depth, when the instance processes off its poll loop.
pub(super) fn worker_queue(view: &mut InstanceView, depth: u32, paused: bool) -> Card {
    view.queue = Some(grouplab_protocol::QueueView { depth, paused });
    Card::Changed
}

/// A commit that works means the client reaches its coordinator again.
pub(super) fn committed(view: &mut InstanceView) -> Card {
    if view.problem.take().is_none() {
        return Card::Unchanged;
    }
    Card::Changed
}
