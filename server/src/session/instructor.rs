//! In a class, what the instructor does to a learner's lab: a hint, a step passed for them, a
//! reset, a message, and the class-wide demos (one consumer crashed, the broker down for a while,
//! messages produced). Each is what the learner's own button does, marked on their timeline as
//! the instructor's doing; what cannot apply is refused with why, for the dashboard.

use std::time::Duration;

use grouplab_protocol::class::{Banner, InstructorAction};
use grouplab_protocol::{
    GROUP_COLOUR, InstanceState, KeyMode, Notice, ServerEvent, TimelineEntry, TimelineKind,
};
use tokio::sync::mpsc;
use tracing::warn;

use super::actor::Session;
use super::reset::Reset;
use grouplab_backends::clock::now_ms;

/// The longest outage a demo may ask for: the consumers' sessions expire well before.
pub const MAX_OUTAGE_S: u32 = 120;
/// The most messages one demo produces into each learner's lab.
pub const MAX_DEMO_MESSAGES: u32 = 1_000;
/// The longest message to learners.
pub const MAX_MESSAGE_CHARS: usize = 500;

impl Session {
    /// Carries out `action` on this lab; `Ok` says what was done, `Err` why it could not be.
    pub(super) async fn on_instructor(
        &mut self,
        action: InstructorAction,
    ) -> Result<String, String> {
        if !matches!(self.reset, Reset::Idle) {
            return Err("their lab is being reset".to_owned());
        }
        let done = match &action {
            InstructorAction::Hint => {
                self.open_hint().await.map_err(|n| n.title)?;
                format!("hint {} opened", self.view.progress.hints.len())
            }
            InstructorAction::PassStep => self.pass_for_learner()?,
            InstructorAction::Reset => {
                // A shared broker's reset asks the learner to confirm what it deletes.
                if !self.broker_is_own() {
                    return Err(
                        "their lab is on a shared broker, where only they can reset it (after confirming what it deletes)"
                            .to_owned(),
                    );
                }
                let pages = self.instructor_reply.clone();
                self.reset_lab(&pages).await.map_err(|n| n.title)?;
                "reset started".to_owned()
            }
            InstructorAction::Message { text } => {
                self.emit(ServerEvent::Banner(Banner {
                    text: text.clone(),
                    at: now_ms(),
                }));
                "message shown".to_owned()
            }
            InstructorAction::CrashOne => {
                let victim = self
                    .view
                    .instances
                    .iter()
                    .filter(|i| matches!(i.state, InstanceState::Running | InstanceState::Joining))
                    // One that owns partitions shows a rebalance; any running one will do.
                    .max_by_key(|i| (i.partitions.len(), std::cmp::Reverse(i.id)))
                    .map(|i| (i.id, i.name.clone()))
                    .ok_or_else(|| "no page instance is running in their lab".to_owned())?;
                self.crash_instance(victim.0).await.map_err(|n| n.title)?;
                format!("{} crashed", victim.1)
            }
            InstructorAction::BrokerDown { seconds } => {
                if !self.is_kafka() {
                    return Err(format!(
                        "their lab runs on {}, not on their Kafka broker",
                        if self.is_redis() { "Redis" } else { "RabbitMQ" }
                    ));
                }
                let seconds = (*seconds).clamp(1, MAX_OUTAGE_S);
                self.set_broker(false).await.map_err(|n| n.title)?;
                if let Some(broker) = self.deps.broker.clone() {
                    let shutdown = self.deps.shutdown.clone();
                    self.deps.tasks.spawn(async move {
                        tokio::select! {
                            () = shutdown.cancelled() => {}
                            () = tokio::time::sleep(Duration::from_secs(u64::from(seconds))) => {
                                if let Err(err) = broker.bring_up().await {
                                    warn!(%err, "a broker the instructor took down did not come back");
                                }
                            }
                        }
                    });
                }
                format!("broker down for {seconds} s")
            }
            InstructorAction::Produce { count } => {
                let count = (*count).clamp(1, MAX_DEMO_MESSAGES);
                let topic = self.lab.content.setup.topic.clone();
                if self.is_kafka() && self.view.topic(&topic).is_none() {
                    return Err(format!("their lab's topic `{topic}` does not exist yet"));
                }
                let pages = self.instructor_reply.clone();
                self.produce(topic.clone(), count, KeyMode::None, None, None, &pages)
                    .map_err(|n| n.title)?;
                format!("producing {count} to {topic}")
            }
        };
        self.mark_instructor(&action);
        Ok(done)
    }

    /// Passes the open step as given by the instructor, kept so in the results.
    fn pass_for_learner(&mut self) -> Result<String, String> {
        let mut progress = self.view.progress.clone();
        let Some((index, status)) = progress
            .steps
            .iter_mut()
            .enumerate()
            .find(|(_, s)| s.passed_at.is_none())
        else {
            return Err("every step of their lab has passed".to_owned());
        };
        let now = now_ms();
        status.passed_at = Some(now);
        status.detail = "Passed by your instructor.".to_owned();
        let store = self.deps.progress.clone();
        let (namespace, lab) = (self.namespace.clone(), self.lab.content.id.clone());
        self.deps.tasks.spawn(async move {
            if let Err(err) = store
                .record_passed(&namespace, &lab, index, now, true)
                .await
            {
                warn!(%err, "a step the instructor passed could not be saved");
            }
        });
        self.emit(ServerEvent::Progress(progress));
        self.progress_dirty = true;
        Ok(format!("step {} passed", index + 1))
    }

    fn mark_instructor(&mut self, action: &InstructorAction) {
        self.emit(ServerEvent::Timeline(TimelineEntry {
            at: now_ms(),
            group: String::new(),
            instance: None,
            member: None,
            name: "instructor".to_owned(),
            colour: GROUP_COLOUR,
            kind: TimelineKind::Instructor {
                action: action.describe(),
            },
            partitions: Vec::new(),
            epoch: None,
        }));
    }

    /// Sends a notice to one page; an error the learner's own command met is also kept for the
    /// stuck rule (not one the instructor's action met).
    pub(super) fn tell(&mut self, reply: &super::Reply, notice: Notice) {
        if !reply.same_channel(&self.instructor_reply) {
            self.note_error(&notice);
        }
        let _ = reply.try_send(ServerEvent::Notice(notice));
    }
}

/// Where the notices about the instructor's actions on a lab go: to every page of the lab, since
/// the learner did not ask for them. One forwarding task per session, ended with it.
pub(super) fn instructor_reply(
    events: &tokio::sync::broadcast::Sender<ServerEvent>,
    tasks: &tokio_util::task::TaskTracker,
    shutdown: tokio_util::sync::CancellationToken,
) -> mpsc::Sender<ServerEvent> {
    let (reply, mut notices) = mpsc::channel::<ServerEvent>(16);
    let pages = events.clone();
    tasks.spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                notice = notices.recv() => match notice {
                    Some(event) => {
                        let _ = pages.send(event);
                    }
                    None => return,
                },
            }
        }
    });
    reply
}
