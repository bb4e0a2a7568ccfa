//! What reaches the pages in batches and at the tick: consumed messages, counted exactly and
//! sampled for the feed, sent as soon as the pace allows ([`Pace`](super::pace::Pace)); the cards
//! of instances that polled; and, when something changed, the ledgers and the checkpoints.

use grouplab_protocol::{EpochMicros, InstanceId, MessageView, ReportedSpan, ServerEvent};

use super::actor::Session;
use grouplab_model::ledger::ledger;

/// The most messages shown per flush interval; counts stay exact beyond it.
const SAMPLE_PER_FLUSH: usize = 12;

impl Session {
    /// Counts one more message (entry, delivery) an instance reported receiving at `at_us`, in
    /// the next batch, and shows it if this interval has room for it.
    pub(super) fn take_message(
        &mut self,
        id: InstanceId,
        at_us: EpochMicros,
        message: impl FnOnce() -> MessageView,
    ) {
        match self.run.batch.received.iter_mut().find(|(i, _)| *i == id) {
            Some((_, count)) => *count += 1,
            None => self.run.batch.received.push((id, 1)),
        }
        ReportedSpan::include(&mut self.run.batch.reported_us, at_us);
        if self.sampled < SAMPLE_PER_FLUSH {
            self.sampled += 1;
            self.run.batch.sample.push(message());
        }
        self.progress_dirty = true;
        self.batch_soon();
    }

    /// Counts one more message processed by an instance, in the next batch.
    pub(super) fn count_processed(&mut self, id: InstanceId) {
        match self.run.batch.processed.iter_mut().find(|(i, _)| *i == id) {
            Some((_, count)) => *count += 1,
            None => self.run.batch.processed.push((id, 1)),
        }
        self.batch_soon();
    }

    /// Makes the batch due: now, unless the pace says to wait.
    fn batch_soon(&mut self) {
        if self.run.batch_due.is_none() {
            self.run.batch_due = Some(self.batch_pace.leaves_at(tokio::time::Instant::now()));
        }
    }

    /// Sends the consumed messages counted since the last batch.
    pub(super) fn send_batch(&mut self) {
        self.run.batch_due = None;
        if !self.run.batch.received.is_empty() || !self.run.batch.processed.is_empty() {
            self.batch_pace.sent(tokio::time::Instant::now());
            let batch = std::mem::take(&mut self.run.batch);
            self.emit(ServerEvent::Messages(batch));
        }
    }

    /// The tick: the sample shown is counted anew, polled cards are sent, and when something
    /// changed, the ledgers and the checkpoints are worked out again.
    pub(super) fn flush(&mut self) {
        self.flush_claims();
        self.sampled = 0;
        for id in std::mem::take(&mut self.polled) {
            if let Some(view) = self.view.instance(id).cloned() {
                self.emit(ServerEvent::Instance(Box::new(view)));
            }
        }
        if self.progress_dirty {
            self.progress_dirty = false;
            self.update_ledgers();
            self.evaluate_progress();
        }
        self.send_pulse();
    }

    /// Sends every ledger that changed: one per group and topic its page instances touched.
    fn update_ledgers(&mut self) {
        let mut changed = Vec::new();
        for group in &self.groups {
            for topic in &self.view.topics {
                let Some(ledger) = ledger(&self.run.history, group, topic) else {
                    continue;
                };
                let known = self
                    .view
                    .ledgers
                    .iter()
                    .find(|l| l.group == ledger.group && l.topic == ledger.topic);
                if known != Some(&ledger) {
                    changed.push(ledger);
                }
            }
        }
        for ledger in changed {
            self.emit(ServerEvent::Ledger(ledger));
        }
    }
}
