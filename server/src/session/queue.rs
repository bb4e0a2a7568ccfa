//! The parts of a lab's session that only a RabbitMQ lab has: polling its queues through the
//! management API, and the reports of RabbitMQ consumer instances.

use grouplab_protocol::held::HeldSample;
use grouplab_protocol::{
    CommitPolicy, EpochMicros, EpochMillis, InstanceProblem, InstanceState, InstanceView,
    MessageView, Notice, RabbitDelivery, RabbitQueueView, RabbitRefusal, ServerEvent,
};

use super::actor::Session;
use super::reports::Card;
use grouplab_backends::CallError;
use grouplab_backends::clock::now_ms;
use grouplab_backends::rabbitmq::QueuesPolled;
use grouplab_model::history::QueueWorker;

impl Session {
    pub(super) fn start_queue_poll(&mut self) {
        if self.lab_url.is_none() {
            return;
        }
        let rabbit = self.deps.rabbit.clone();
        let queues: Vec<String> = self.topics.iter().cloned().collect();
        self.run_poll(
            async move { rabbit.describe(&queues).await },
            Session::on_queues_polled,
        );
    }

    /// Shows what RabbitMQ holds now, and learns from it what the checks need: which consumers
    /// the page does not run were handed messages, and how full each queue got.
    fn on_queues_polled(&mut self, result: Result<QueuesPolled, CallError>) {
        // RabbitMQ's health is whether it answers the polls.
        self.polled_health(result.as_ref().err());
        let Ok(polled) = result else {
            return;
        };
        let main = self.lab.content.setup.topic.clone();
        let refusals: Vec<RabbitRefusal> = polled
            .refusals
            .into_iter()
            .filter(|r| r.seen_at >= self.opened_at)
            .collect();
        if !refusals.is_empty() {
            self.run.history.queues.refused = true;
        }
        for (name, found) in polled.queues {
            let known = self.view.queue(&name).cloned();
            let Some(mut queue) = found else {
                if known.is_some() {
                    self.emit(ServerEvent::QueueRemoved { queue: name });
                }
                continue;
            };
            if name == main {
                queue.refusals = refusals.clone();
            }
            self.link_queue_consumers(&mut queue);
            self.learn_from_queue(&queue, known.as_ref());
            self.record_held(HeldSample::of_queue(&queue, now_ms()));
            if known.as_ref() != Some(&queue) {
                self.emit(ServerEvent::Queue(queue));
                self.progress_dirty = true;
            }
        }
    }

    /// Links each consumer to the page instance of that tag (its client id), and gives the
    /// others a colour each.
    fn link_queue_consumers(&self, queue: &mut RabbitQueueView) {
        let mut taken = self.instance_colours();
        for consumer in &mut queue.consumers {
            let previous = self
                .view
                .queue(&queue.name)
                .and_then(|q| q.consumer(&consumer.tag))
                .map(|c| c.colour);
            (consumer.instance, consumer.colour) =
                self.link_consumer(&consumer.tag, None, previous, &mut taken);
        }
    }

    fn learn_from_queue(&mut self, queue: &RabbitQueueView, before: Option<&RabbitQueueView>) {
        let history = &mut self.run.history.queues;
        let held = history.most_held.entry(queue.name.clone()).or_default();
        *held = (*held).max(queue.ready + queue.unacked);
        let externals: Vec<&str> = queue
            .consumers
            .iter()
            .filter(|c| c.instance.is_none())
            .map(|c| c.tag.as_str())
            .collect();
        for consumer in &queue.consumers {
            if consumer.instance.is_none() && consumer.unacked > 0 {
                history.handed_to(&queue.name, &consumer.tag, true);
            }
        }
        // Deliveries beyond what page instances received went to the others; with one other
        // consumer, they went to it (an auto-ack consumer never shows unacked messages).
        let by_instances = history
            .received_by_instances
            .get(&queue.name)
            .copied()
            .unwrap_or(0);
        let delivered_more = before.is_some_and(|b| queue.delivered > b.delivered);
        if let [external] = externals.as_slice()
            && delivered_more
            && queue.delivered > by_instances
        {
            history.handed_to(&queue.name, external, true);
        }
        // Redeliveries the broker counted after a crash (to anyone, the learner's own included).
        if let Some(before) = before
            && history.crashed_holding.contains_key(&queue.name)
            && queue.redelivered > before.redelivered
        {
            let again = queue.redelivered - before.redelivered;
            *history
                .redelivered_after_crash
                .entry(queue.name.clone())
                .or_default() += again;
            self.crash_work_moved(now_ms());
            self.crash_delivered_again(again);
        }
    }

    /// What a RabbitMQ instance held as it crashed: unacked messages go back to the queue;
    /// with auto-ack, what it had been sent and not processed is lost.
    pub(super) fn queue_crashed(&mut self, view: &InstanceView, now: EpochMillis) {
        let queue = &view.topic;
        // Counts not yet flushed to the page are in the batch.
        let batched = |counts: &[(grouplab_protocol::InstanceId, u64)]| {
            counts
                .iter()
                .find(|(id, _)| *id == view.id)
                .map_or(0, |(_, n)| *n)
        };
        let received = view.received + batched(&self.run.batch.received);
        let processed = view.processed + batched(&self.run.batch.processed);
        let unprocessed = received.saturating_sub(processed);
        let history = &mut self.run.history.queues;
        if view.settings.commit == CommitPolicy::Auto {
            if unprocessed > 0 {
                *history.lost_on_crash.entry(queue.clone()).or_default() += unprocessed;
            }
            // What it held is lost: nothing will move.
            self.crash_began(view, unprocessed, now);
            return;
        }
        // The poll's count includes prefetched messages the instance never reported.
        let unacked = self
            .view
            .queue(queue)
            .and_then(|q| q.consumer(&view.client_id))
            .map_or(0, |c| c.unacked)
            .max(unprocessed);
        if unacked > 0 {
            let held = history.crashed_holding.entry(queue.clone()).or_default();
            *held = (*held).max(unacked);
        }
        self.crash_began(view, unacked, now);
    }

    /// The instance's client consumes the queue, with this prefetch.
    pub(super) fn queue_consuming(
        &mut self,
        view: &mut InstanceView,
        queue: String,
        prefetch: u16,
    ) -> Card {
        if matches!(view.state, InstanceState::Starting | InstanceState::Joining) {
            view.state = InstanceState::Running;
        }
        view.problem = None;
        self.run.history.queues.workers.insert(
            view.id,
            QueueWorker {
                queue,
                prefetch,
                processing_ms: view.settings.processing_ms,
                received: 0,
            },
        );
        self.start_poll();
        Card::Changed
    }

    /// A message the queue delivered to the instance.
    pub(super) fn delivery(
        &mut self,
        view: &InstanceView,
        delivery: RabbitDelivery,
        at_us: EpochMicros,
        now: EpochMillis,
    ) -> Card {
        let history = &mut self.run.history.queues;
        history.handed_to(&delivery.queue, &view.client_id, false);
        *history
            .received_by_instances
            .entry(delivery.queue.clone())
            .or_default() += 1;
        if let Some(worker) = history.workers.get_mut(&view.id) {
            worker.received += 1;
        }
        // The broker's own count catches redeliveries to the learner's consumers; the
        // instances' flags are seen at once.
        if delivery.redelivered && history.crashed_holding.contains_key(&delivery.queue) {
            *history
                .redelivered_after_crash
                .entry(delivery.queue.clone())
                .or_default() += 1;
            // Counted again from the broker's statistics; the instance is quicker.
            self.crash_work_moved(now);
        }
        self.take_message(view.id, at_us, || MessageView {
            instance: view.id,
            topic: delivery.queue.clone(),
            partition: 0,
            offset: -1,
            entry: Some(format!(
                "#{}{}",
                delivery.tag,
                if delivery.redelivered {
                    " redelivered"
                } else {
                    ""
                }
            )),
            key: delivery.key.clone(),
            value: delivery.value.clone(),
            at: now,
        });
        Card::Unchanged
    }

    /// A message the instance finished processing.
    pub(super) fn delivery_processed(&mut self, view: &mut InstanceView, now: EpochMillis) -> Card {
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

    /// A message failed processing: handed back to the queue, or rejected.
    pub(super) fn delivery_rejected(
        &mut self,
        view: &mut InstanceView,
        tag: u64,
        requeued: bool,
        error: String,
        now: EpochMillis,
    ) -> Card {
        let outcome = if requeued {
            "handed back to the queue"
        } else if self.lab.content.setup.dead_letter_queue.is_some() {
            "rejected: the queue dead-letters it"
        } else {
            "rejected: the queue drops it"
        };
        view.problem = Some(InstanceProblem {
            message: format!("message #{tag}: {error}; {outcome}"),
            at: now,
        });
        if !requeued {
            view.dead_lettered += 1;
            let _ = self.events.send(ServerEvent::Notice(Notice::info(
                format!("Instance {} rejected a message", view.name),
                format!("{error}; {outcome}."),
            )));
        }
        self.start_poll();
        self.progress_dirty = true;
        Card::Changed
    }
}
