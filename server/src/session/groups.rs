//! Group membership from the broker, for page instances and the learner's own consumers alike:
//! pushed by the embedded broker's group watch, or polled from a named cluster, and turned by the
//! [`Tracker`](grouplab_model::membership::Tracker) into group views, timeline entries and handovers.

use grouplab_protocol::{Departure, EpochMicros, InstanceState, Notice, ServerEvent};

use super::actor::Session;
use super::reports::INSTANCE_NOTICE_GAP_MS;
use grouplab_backends::clock::now_ms;
use grouplab_backends::kafka::Refusal;
use grouplab_model::membership::{Change, GroupObservation};

impl Session {
    /// Reads the embedded broker's latest observation of a group; `decided_at_us` is when the
    /// coordinator call that changed it came (0: not known).
    pub(super) fn observe_group(&mut self, group: &str, decided_at_us: EpochMicros) {
        if !self.is_kafka() || !self.groups.contains(group) {
            return;
        }
        if let Some(watch) = &self.deps.groups {
            let observation = watch.latest(group);
            self.on_membership(&observation, decided_at_us);
        }
    }

    pub(super) fn observe_all_groups(&mut self) {
        let groups: Vec<String> = self.groups.iter().cloned().collect();
        for group in groups {
            self.observe_group(&group, 0);
        }
    }

    /// Explains to the lab's pages why the broker refused one of its consumers.
    pub(super) fn on_refusal(&mut self, refusal: Refusal) {
        if !self.groups.contains(&refusal.group) {
            return;
        }
        let now = now_ms();
        let key = (refusal.group.clone(), refusal.client_id.clone());
        if self
            .last_refusal_notice
            .get(&key)
            .is_some_and(|at| now.saturating_sub(*at) < INSTANCE_NOTICE_GAP_MS)
        {
            return;
        }
        self.last_refusal_notice.insert(key, now);
        let notice = Notice::error(
            format!("`{}` could not join `{}`", refusal.client_id, refusal.group),
            format!("The broker refused it: {}", refusal.reason),
        );
        let _ = self.events.send(ServerEvent::Notice(notice));
    }

    /// Applies what an observation of a group changed.
    pub(super) fn on_membership(
        &mut self,
        observation: &GroupObservation,
        decided_at_us: EpochMicros,
    ) {
        let now = now_ms();
        let changes = self
            .run
            .membership
            .observe(observation, &self.view.instances, now);
        if changes.is_empty() {
            return;
        }
        for change in changes {
            match change {
                Change::Group(mut group) => {
                    group.decided_at_us = decided_at_us;
                    let before = self.view.group(&group.name).map(|g| g.generation);
                    if before != Some(group.generation) {
                        self.run
                            .history
                            .rebalanced_at
                            .insert(group.name.clone(), now);
                    }
                    for member in group.members.iter().filter(|m| m.is_external()) {
                        self.run
                            .history
                            .record_external_owner(&group.name, &member.partitions);
                    }
                    self.emit(ServerEvent::Group(group));
                }
                Change::Timeline(entry) => self.emit(ServerEvent::Timeline(entry)),
                Change::Noticed { instance, at } => {
                    if let Some(mut view) = self.view.instance(instance).cloned()
                        && let InstanceState::Crashed { noticed_at, .. } = &mut view.state
                    {
                        noticed_at.get_or_insert(at);
                        self.emit(ServerEvent::Instance(Box::new(view)));
                    }
                }
                Change::Handover(handover) => {
                    let crashed = self
                        .crash
                        .as_ref()
                        .is_some_and(|(_, report)| report.instance == handover.from);
                    if crashed && handover.departure == Departure::Crash {
                        self.crash_work_moved(handover.taken_at);
                    }
                    self.run.history.handovers.push(handover);
                }
            }
        }
        self.progress_dirty = true;
    }
}
