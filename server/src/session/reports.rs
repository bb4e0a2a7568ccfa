//! An instance's report, dispatched once to the part of the session that owns it: Kafka
//! instances' reports to `kafka.rs`, Redis instances' to `stream.rs`, RabbitMQ instances' to
//! `queue.rs`. What every broker's instances report is handled here, and so is the end of an
//! instance's process, which the supervisor observes.

use grouplab_protocol::{
    EpochMillis, InstanceProblem, InstanceReport, InstanceState, InstanceView, Notice, ServerEvent,
};
use tracing::debug;

use super::actor::Session;
use super::kafka::{committed, worker_queue};
use crate::supervisor::{InstanceEvent, InstanceEventKind};
use grouplab_backends::clock::now_ms;

/// The least time between two error notices from one instance, or two refusals of one consumer.
pub(super) const INSTANCE_NOTICE_GAP_MS: u64 = 10_000;
/// The least time between two updates of a card for the same repeated client error.
const INSTANCE_PROBLEM_GAP_MS: u64 = 2_000;

/// What a report did to the instance's card.
pub(super) enum Card {
    /// It changed: the pages are sent the card now.
    Changed,
    /// The view keeps the change, and the pages hear of it at the next tick (a poll: at
    /// thousands of messages a second an instance polls hundreds of times a second).
    Kept,
    /// Nothing to send (or the handler sent what it had to itself).
    Unchanged,
}

impl Session {
    pub(super) fn on_instance_event(&mut self, event: InstanceEvent) {
        let Some(mut view) = self.view.instance(event.id).cloned() else {
            return;
        };
        let now = now_ms();
        // The stamp of the report this change is sent for. A `Polled` report is sent at the next
        // tick, not as it comes, so it keeps the stamp of the last report that was.
        let shown_at_once_since = view.reported_at_us;
        let at_us = event.at_us;
        view.reported_at_us = at_us;
        let report = match event.kind {
            InstanceEventKind::Report(mut report) => {
                // An instance reads the broker's names; the session works with the lab's.
                let prefix = self.deps.cluster.prefix();
                if !prefix.is_empty() {
                    for topic in report.topics_mut() {
                        *topic = self.deps.cluster.logical(topic);
                    }
                    // An error names `kafka-101.l3f….user-clicks`; the learner knows `user-clicks`.
                    for text in report.texts_mut() {
                        *text = text.replace(prefix, "");
                    }
                }
                report
            }
            InstanceEventKind::Exited(reason) => {
                self.on_exit(view, reason, now);
                self.forget_old_instances();
                return;
            }
        };
        let card = match report {
            // Every broker's instances.
            InstanceReport::Joining { pid } => joining(&mut view, pid),
            InstanceReport::Crashing { processed } => self.crashing(&view, processed),
            InstanceReport::Leaving => leaving(&mut view, now),
            InstanceReport::Error { message, fatal } => {
                self.client_error(&mut view, message, fatal, now)
            }
            // Kafka instances.
            InstanceReport::Message(message) => self.kafka_message(&view, message, at_us, now),
            InstanceReport::Processed {
                topic,
                partition,
                offset,
            } => self.kafka_processed(&mut view, topic, partition, offset, now),
            InstanceReport::Polled { messages } => {
                self.kafka_polled(&mut view, messages, shown_at_once_since, now)
            }
            InstanceReport::Queue { depth, paused } => worker_queue(&mut view, depth, paused),
            InstanceReport::ProcessingFailed {
                partition,
                offset,
                attempt,
                error,
                ..
            } => self.processing_failed(&mut view, partition, offset, attempt, error),
            InstanceReport::DeadLettered {
                topic,
                partition,
                offset,
                attempts,
                dead_letter_topic,
            } => self.dead_lettered(
                &mut view,
                topic,
                partition,
                offset,
                attempts,
                dead_letter_topic,
            ),
            InstanceReport::MaxPollExceeded { message } => {
                self.max_poll_exceeded(&mut view, message, now)
            }
            InstanceReport::Assigned { partitions } => self.assigned(&mut view, partitions, now),
            InstanceReport::Revoked { partitions } => self.revoked(&mut view, partitions, now),
            InstanceReport::Committed { .. } => committed(&mut view),
            // Redis instances.
            InstanceReport::Reading { .. } => self.stream_reading(&mut view),
            InstanceReport::Entry(entry) => self.stream_entry(&view, entry, at_us, now),
            InstanceReport::EntryProcessed { .. } => self.entry_processed(&mut view, now),
            InstanceReport::Acked { ids, .. } => self.entries_acked(&view, ids),
            InstanceReport::EntryFailed {
                id,
                deliveries,
                error,
                ..
            } => self.entry_failed(&mut view, id, deliveries, error, now),
            InstanceReport::EntryDeadLettered {
                id,
                deliveries,
                dead_letter_stream,
                ..
            } => self.entry_dead_lettered(&mut view, id, deliveries, dead_letter_stream),
            // RabbitMQ instances.
            InstanceReport::Consuming { queue, prefetch } => {
                self.queue_consuming(&mut view, queue, prefetch)
            }
            InstanceReport::Delivery(delivery) => self.delivery(&view, delivery, at_us, now),
            InstanceReport::DeliveryProcessed { .. } => self.delivery_processed(&mut view, now),
            InstanceReport::DeliveryRejected {
                tag,
                requeued,
                error,
                ..
            } => self.delivery_rejected(&mut view, tag, requeued, error, now),
        };
        match card {
            Card::Changed => self.emit(ServerEvent::Instance(Box::new(view))),
            Card::Kept => {
                self.view.apply(&ServerEvent::Instance(Box::new(view)));
                self.polled.insert(event.id);
            }
            Card::Unchanged => {}
        }
    }

    /// The instance is about to kill itself, as "crash after" asked.
    fn crashing(&mut self, view: &InstanceView, processed: u64) -> Card {
        let _ = self.events.send(ServerEvent::Notice(Notice::info(
            format!("Instance {} crashes now", view.name),
            format!(
                "It processed {processed} message(s), as \"crash after\" asked, and kills itself with SIGKILL: no commit, no LeaveGroup."
            ),
        )));
        Card::Unchanged
    }

    /// The instance's client reports an error. The card shows the latest error; a client that
    /// repeats one is shown again at most every [`INSTANCE_PROBLEM_GAP_MS`].
    fn client_error(
        &mut self,
        view: &mut InstanceView,
        message: String,
        fatal: bool,
        now: EpochMillis,
    ) -> Card {
        let repeated = view.problem.as_ref().is_some_and(|p| {
            p.message == message && now.saturating_sub(p.at) < INSTANCE_PROBLEM_GAP_MS
        });
        if !repeated {
            view.problem = Some(InstanceProblem {
                message: message.clone(),
                at: now,
            });
            self.emit(ServerEvent::Instance(Box::new(view.clone())));
        }
        let last = self
            .last_instance_notice
            .get(&view.id)
            .copied()
            .unwrap_or(0);
        // While the broker is known to be down the banner explains the errors, and each
        // card shows its own; a notice per instance would only repeat them.
        let explained = self.view.broker.health.outage().is_some();
        if fatal || (!explained && now.saturating_sub(last) >= INSTANCE_NOTICE_GAP_MS) {
            self.last_instance_notice.insert(view.id, now);
            let title = format!("Instance {} reports a problem", view.name);
            // A fatal error ends the instance: that notice stays until dismissed. The
            // others are on the card until it recovers, so their notice fades.
            let notice = if fatal {
                Notice::error(title, format!("{message}. The instance has stopped."))
            } else {
                Notice::warning(title, format!("{message}. Its card shows it too."))
            };
            let _ = self.events.send(ServerEvent::Notice(notice));
        }
        Card::Unchanged
    }
}

/// The process started and its client is joining.
fn joining(view: &mut InstanceView, pid: u32) -> Card {
    debug!(id = ?view.id, pid, "instance joining");
    if view.state == InstanceState::Starting {
        view.state = InstanceState::Joining;
    }
    Card::Changed
}

/// The instance was asked to stop, and is leaving its group.
fn leaving(view: &mut InstanceView, now: EpochMillis) -> Card {
    if !matches!(view.state, InstanceState::Stopping { .. }) {
        view.state = InstanceState::Stopping { since: now };
    }
    Card::Changed
}
