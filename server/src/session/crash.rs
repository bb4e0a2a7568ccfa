//! The same crash on three brokers: each lab measures what a crash of one of its page instances
//! did to the work it held (how much, how long until another consumer had it, what was
//! delivered again), and the server keeps the latest crash per broker for every lab to show.

use grouplab_protocol::{CrashReport, EpochMillis, InstanceId, InstanceView, ServerEvent};
use tokio::sync::watch;

use super::actor::Session;

/// The latest crash measured on each broker, in any lab of this server.
pub struct CrashBook {
    latest: watch::Sender<Vec<CrashReport>>,
}

impl Default for CrashBook {
    fn default() -> Self {
        Self {
            latest: watch::Sender::new(Vec::new()),
        }
    }
}

impl CrashBook {
    /// Replaces the report of that broker's latest crash, or of this one as it is measured further.
    fn record(&self, report: CrashReport) {
        self.latest.send_if_modified(|latest| {
            let slot = latest.iter_mut().find(|r| r.backend == report.backend);
            match slot {
                Some(known) if *known == report => false,
                Some(known) => {
                    *known = report;
                    true
                }
                None => {
                    latest.push(report);
                    latest.sort_by_key(|r| r.backend as u8);
                    true
                }
            }
        });
    }

    pub fn subscribe(&self) -> watch::Receiver<Vec<CrashReport>> {
        self.latest.subscribe()
    }
}

impl Session {
    /// A page instance crashed holding `held` (partitions, pending entries or unacked
    /// messages): this lab's crash to measure from now on.
    pub(super) fn crash_began(&mut self, view: &InstanceView, held: u64, at: EpochMillis) {
        let report = CrashReport {
            backend: self.lab.content.setup.broker,
            lab: self.lab.content.title.clone(),
            instance: view.name.clone(),
            at,
            held,
            moved_after_ms: None,
            delivered_again: 0,
        };
        self.crash = Some((view.id, report.clone()));
        self.deps.crashes.record(report);
    }

    /// More was seen held by the crashed instance than at the crash (Redis shows its pending
    /// entries only at the next poll).
    pub(super) fn crash_held(&mut self, instance: InstanceId, held: u64) {
        self.update_crash(|id, report| {
            if id == instance && held > report.held {
                report.held = held;
            }
        });
    }

    /// The crashed instance's work reached another consumer now.
    pub(super) fn crash_work_moved(&mut self, now: EpochMillis) {
        self.update_crash(|_, report| {
            if report.moved_after_ms.is_none() {
                report.moved_after_ms = Some(now.saturating_sub(report.at));
            }
        });
    }

    /// `count` more messages or entries were delivered a second time since the crash.
    pub(super) fn crash_delivered_again(&mut self, count: u64) {
        self.update_crash(|_, report| report.delivered_again += count);
    }

    fn update_crash(&mut self, change: impl FnOnce(InstanceId, &mut CrashReport)) {
        let Some((id, report)) = &mut self.crash else {
            return;
        };
        let before = report.clone();
        change(*id, report);
        if *report != before {
            self.deps.crashes.record(report.clone());
        }
    }

    /// Shows the latest crashes, when they changed.
    pub(super) fn on_crashes(&mut self, crashes: Vec<CrashReport>) {
        if crashes != self.view.crashes {
            self.emit(ServerEvent::Crashes(crashes));
            self.progress_dirty = true;
        }
    }
}
