//! Reset lab: the lab's instances leave their groups, then what the lab owns is deleted (its
//! configured and created topics, its groups), and the lab starts a new run with the learner's
//! progress kept. On a broker that may be shared, the first press only says what would go.

use std::collections::BTreeSet;

use grouplab_protocol::{InstanceId, LabSnapshot, Notice, ServerEvent, TimelineKind};
use tracing::warn;

use super::Reply;
use super::actor::{LabRun, Session};
use grouplab_backends::CallError;
use grouplab_backends::clock::now_ms;

/// How long a first press of Reset on a named cluster waits for the second.
const RESET_CONFIRM_MS: u64 = 10_000;

/// Where a reset of the lab is.
pub(super) enum Reset {
    Idle,
    /// Waiting for the lab's instances to leave their groups; the reply is for the learner who asked.
    WaitingForExits(Reply),
    /// Deleting the lab's groups and topics.
    Deleting,
}

impl Session {
    pub(super) async fn reset_lab(&mut self, reply: &Reply) -> Result<(), Notice> {
        let now = now_ms();
        // grouplab's own broker is nobody else's; a named cluster, Redis or RabbitMQ may be shared.
        let own = self.broker_is_own();
        let confirmed = own
            || self
                .reset_asked_at
                .take()
                .is_some_and(|at| now.saturating_sub(at) <= RESET_CONFIRM_MS);
        if !confirmed {
            // A named cluster may be shared: say exactly what will go before anything does.
            self.reset_asked_at = Some(now);
            let (topics, groups) = self.resettable();
            return Err(Notice::info(
                "Press Reset again to confirm",
                format!(
                    "Reset stops this lab's instances and deletes, on your cluster, the topic(s) {} and the group(s) {}: what this lab was set up with or created. Nothing else is touched, even what the page shows. Press Reset again within {} seconds to go ahead.",
                    names(&topics),
                    names(&groups),
                    RESET_CONFIRM_MS / 1000
                ),
            ));
        }
        self.start_reset(reply.clone()).await;
        Ok(())
    }

    async fn start_reset(&mut self, reply: Reply) {
        self.reset = Reset::WaitingForExits(reply);
        if let Some(producing) = self.producing.take() {
            producing.cancel();
        }
        let alive: Vec<InstanceId> = self
            .view
            .instances
            .iter()
            .filter(|i| i.is_alive())
            .map(|i| i.id)
            .collect();
        if alive.is_empty() {
            self.finish_reset();
            return;
        }
        for id in alive {
            // An instance that already exited is fine: its exit event is on its way.
            let _ = self.deps.supervisor.stop(id).await;
        }
    }

    /// What Reset deletes: the topic and group the lab is set up with, the topics it created,
    /// and, on the embedded broker (grouplab's own), the groups its instances used.
    fn resettable(&self) -> (Vec<String>, Vec<String>) {
        let setup = &self.lab.content.setup;
        let topics: BTreeSet<String> = setup
            .topics()
            .cloned()
            .chain(self.created_topics.iter().cloned())
            .collect();
        let groups: BTreeSet<String> = if self.deps.broker.is_some() {
            self.groups.clone()
        } else {
            setup.groups().cloned().collect()
        };
        (topics.into_iter().collect(), groups.into_iter().collect())
    }

    /// The lab's instances have all exited: deletes what the lab owns.
    pub(super) fn finish_reset(&mut self) {
        let Reset::WaitingForExits(reply) = std::mem::replace(&mut self.reset, Reset::Deleting)
        else {
            return;
        };
        let broker = self.lab_broker();
        let (topics, groups) = self.resettable();
        let store = self.deps.progress.clone();
        let (namespace, lab) = (self.namespace.clone(), self.lab.content.id.clone());
        let allowance = self.deps.allowance.clone();
        self.run_outcome(async move {
            let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
            let group_refs: Vec<&str> = groups.iter().map(String::as_str).collect();
            let result = match broker {
                Ok(broker) => broker.delete(&topic_refs, &group_refs).await,
                Err(_) => Err(CallError::Refused(
                    "The lab's broker is not running, so there was nothing to delete.".to_owned(),
                )),
            };
            // Given back even when part of the delete was refused (a group still in use is
            // the usual part): the topics are then mostly gone, and a learner must not be
            // held at the cap by a Reset that said it was partial.
            if let Some(allowance) = &allowance {
                for topic in &topics {
                    allowance.release(&lab, topic);
                }
            }
            if result.is_ok()
                && let Err(err) = store.forget_created_topics(&namespace, &lab).await
            {
                warn!(%err, "the deleted topics could not be forgotten");
            }
            move |session: &mut Session| session.reset_done(result, &reply)
        });
    }

    /// What the lab owns is deleted (or could only partly be): a new run begins, with a fresh
    /// view that keeps only the learner's progress and the broker.
    fn reset_done(&mut self, result: Result<(), CallError>, reply: &Reply) {
        self.reset = Reset::Idle;
        self.generation += 1;
        // What the instructor did stays on the timeline (a reset they asked for among it), and
        // their message stays up.
        let fresh = LabSnapshot {
            progress: self.view.progress.clone(),
            broker: self.view.broker.clone(),
            timeline: self
                .view
                .timeline
                .iter()
                .filter(|e| matches!(e.kind, TimelineKind::Instructor { .. }))
                .cloned()
                .collect(),
            banner: self.view.banner.clone(),
            ..LabSnapshot::new(&self.lab.content.id, self.view.broker.clone(), 0)
        };
        self.run = LabRun::default();
        if result.is_ok() {
            self.created_topics.clear();
        }
        let setup = &self.lab.content.setup;
        self.topics = setup
            .topics()
            .cloned()
            .chain(self.created_topics.iter().cloned())
            .collect();
        self.groups = setup.groups().cloned().collect();
        self.emit(ServerEvent::Snapshot(Box::new(fresh)));
        self.observe_all_groups();
        // A Redis lab's stream and groups, or a RabbitMQ lab's queues, come back empty, as
        // the lab starts.
        self.start_lab_broker();
        let notice = match result {
            Ok(()) => Notice::info(
                "The lab was reset",
                "Its instances stopped and its topics and groups were deleted. Your progress is kept.",
            ),
            Err(err) => Notice::error(
                "The lab was only partly reset",
                format!("Instances stopped, but: {err}"),
            ),
        };
        self.tell(reply, notice);
        self.start_poll();
    }
}

/// `a`, `b` and `c`, for a notice.
fn names(list: &[String]) -> String {
    let quoted: Vec<String> = list.iter().map(|n| format!("`{n}`")).collect();
    match quoted.as_slice() {
        [] => "(none)".to_owned(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}
