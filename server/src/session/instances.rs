//! Start instance, Stop instance (graceful) and Crash instance (SIGKILL), and what becomes of an
//! instance's card when its process ends. The supervisor does the starting and signalling; the
//! session names the instance, gives it a colour, and keeps its card.

use std::collections::BTreeSet;

use grouplab_protocol::{
    Backend, ConsumerSettings, EpochMillis, InstanceConfig, InstanceId, InstanceState,
    InstanceView, Notice, ServerEvent, TimelineKind, colours_in_use, free_colour, validate_name,
};

use super::actor::Session;
use super::reset::Reset;
use crate::supervisor::{ExitReason, Owner};
use grouplab_backends::clock::now_ms;

/// How many stopped or crashed instance cards a page keeps.
const KEEP_GONE_INSTANCES: usize = 4;

impl Session {
    fn alive_instance(&self, id: InstanceId) -> Result<InstanceView, Notice> {
        match self.view.instance(id) {
            Some(view) if view.is_alive() => Ok(view.clone()),
            Some(view) => Err(Notice::info(
                format!("Instance {} is not running", view.name),
                "It has already stopped or crashed.",
            )),
            None => Err(Notice::info(
                "No such instance",
                "Reload the page to see the current instances.",
            )),
        }
    }

    pub(super) async fn start_instance(
        &mut self,
        group: String,
        topic: String,
        mut settings: ConsumerSettings,
    ) -> Result<(), Notice> {
        validate_name("group", &group)
            .map_err(|e| Notice::error("That group name won't work", e))?;
        validate_name("topic", &topic)
            .map_err(|e| Notice::error("That topic name won't work", e))?;
        if let Some(problem) = settings.problem() {
            return Err(Notice::error("Those consumer settings won't work", problem));
        }
        if let Some(dead_letter) = &settings.dead_letter_topic {
            // An instance writes there: only to a topic of this lab, and never back into its own.
            if *dead_letter == topic || !self.topics.contains(dead_letter) {
                return Err(Notice::error(
                    "That dead-letter topic won't work",
                    format!(
                        "`{dead_letter}` must be another topic of this lab: create it first with the topic form, then start the instance."
                    ),
                ));
            }
        }
        // Kafka needs several heartbeats per session; a third of the timeout is its own rule of thumb.
        settings.heartbeat_interval_ms = settings
            .heartbeat_interval_ms
            .clamp(100, settings.session_timeout_ms / 3);
        settings.auto_commit_interval_ms = settings.auto_commit_interval_ms.clamp(100, 60_000);

        let name = self.next_name();
        // Unique on this server, so the instance's group member can be found by its client id.
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let client_id = format!("grouplab-{name}-{}", &unique[..6]);
        let backend = self.lab.content.setup.broker;
        let bootstrap_servers = match backend {
            Backend::Kafka => self.deps.cluster.bootstrap_servers().to_owned(),
            Backend::Redis | Backend::RabbitMq => self
                .lab_url
                .clone()
                .ok_or_else(|| self.lab_broker_unavailable())?,
        };
        if !self.is_kafka() && !self.topics.contains(&topic) {
            let word = self.topic_word();
            return Err(Notice::error(
                format!("`{topic}` is not one of this lab's {word}"),
                format!(
                    "Instances read the lab's own {word}: type one of their names in the form."
                ),
            ));
        }
        // On Kafka the instance is given the broker's names (a class's learner's prefix on a
        // shared cluster), and its reports are renamed back as they come in.
        let (physical_group, physical_topic, mut physical_settings) = (
            self.deps.cluster.physical(&group),
            self.deps.cluster.physical(&topic),
            settings.clone(),
        );
        if let Some(dead_letter) = &mut physical_settings.dead_letter_topic {
            *dead_letter = self.deps.cluster.physical(dead_letter);
        }
        let kafka = backend == Backend::Kafka;
        let config = InstanceConfig {
            backend,
            bootstrap_servers,
            group: if kafka { physical_group } else { group.clone() },
            topics: vec![if kafka { physical_topic } else { topic.clone() }],
            client_id: client_id.clone(),
            settings: if kafka {
                physical_settings
            } else {
                settings.clone()
            },
        };
        let id = self
            .deps
            .supervisor
            .start(
                Owner {
                    learner: self.namespace.clone(),
                    lab: self.lab.content.id.clone(),
                },
                config,
                self.instance_events.clone(),
            )
            .await
            .map_err(|e| Notice::error("The instance could not be started", e.to_string()))?;
        let now = now_ms();
        let view = InstanceView {
            id,
            colour: free_colour(
                Some(name_colour(&name)),
                &colours_in_use(
                    &self.view.instances,
                    self.view.groups.iter().flat_map(|g| &g.members),
                ),
            ),
            name,
            group: group.clone(),
            topic: topic.clone(),
            client_id,
            settings,
            state: InstanceState::Starting,
            partitions: Vec::new(),
            received: 0,
            processed: 0,
            started_at: now,
            problem: None,
            busy: None,
            queue: None,
            failing: None,
            dead_lettered: 0,
            reported_at_us: 0,
        };
        let new_group = self.groups.insert(group.clone());
        self.topics.insert(topic);
        self.timeline(&view, TimelineKind::Started, Vec::new(), now);
        self.emit(ServerEvent::Instance(Box::new(view)));
        self.forget_old_instances();
        if new_group {
            self.observe_group(&group, 0);
        }
        Ok(())
    }

    pub(super) async fn stop_instance(&mut self, instance: InstanceId) -> Result<(), Notice> {
        let view = self.alive_instance(instance)?;
        self.deps
            .supervisor
            .stop(instance)
            .await
            .map_err(|e| Notice::error("The instance could not be stopped", e.to_string()))?;
        let now = now_ms();
        let mut view = view;
        if !matches!(view.state, InstanceState::Stopping { .. }) {
            view.state = InstanceState::Stopping { since: now };
            self.timeline(&view, TimelineKind::Stopping, view.partitions.clone(), now);
            self.emit(ServerEvent::Instance(Box::new(view)));
        }
        Ok(())
    }

    pub(super) async fn crash_instance(&mut self, instance: InstanceId) -> Result<(), Notice> {
        self.alive_instance(instance)?;
        self.deps
            .supervisor
            .crash(instance)
            .await
            .map_err(|e| Notice::error("The instance could not be crashed", e.to_string()))?;
        Ok(())
    }

    /// The first name from A, B, C… that no card in the page uses.
    fn next_name(&self) -> String {
        let used: BTreeSet<&str> = self
            .view
            .instances
            .iter()
            .map(|i| i.name.as_str())
            .collect();
        (0..)
            .map(|n: u32| {
                let letter = char::from(b'A' + (n % 26) as u8);
                if n < 26 {
                    letter.to_string()
                } else {
                    format!("{letter}{}", n / 26 + 1)
                }
            })
            .find(|name| !used.contains(name.as_str()))
            .expect("names never run out")
    }

    pub(super) fn forget_old_instances(&mut self) {
        let gone: Vec<InstanceId> = self
            .view
            .instances
            .iter()
            .filter(|i| !i.is_alive() && i.partitions.is_empty())
            .map(|i| i.id)
            .collect();
        let excess = gone.len().saturating_sub(KEEP_GONE_INSTANCES);
        for id in gone.into_iter().take(excess) {
            self.emit(ServerEvent::InstanceRemoved { instance: id });
        }
    }

    /// A page instance's process ended: stopped, crashed, or failed.
    pub(super) fn on_exit(&mut self, mut view: InstanceView, reason: ExitReason, now: EpochMillis) {
        self.last_instance_notice.remove(&view.id);
        let held = std::mem::take(&mut view.partitions);
        if let Some(id) = &view.settings.static_id {
            let generation = self.view.group(&view.group).and_then(|g| g.generation);
            self.run
                .history
                .static_left(&view.group, id, held.clone(), generation);
        }
        view.busy = None;
        view.queue = None;
        let (state, kind) = match reason {
            ExitReason::Stopped => (InstanceState::Stopped { at: now }, TimelineKind::Stopped),
            ExitReason::Crashed => {
                *self
                    .run
                    .history
                    .crashed
                    .entry(view.group.clone())
                    .or_default() += 1;
                if self.is_kafka() {
                    self.crash_began(&view, held.len() as u64, now);
                } else if self.is_redis() {
                    let pending = self
                        .view
                        .stream(&view.topic)
                        .and_then(|s| s.group(&view.group))
                        .and_then(|g| g.consumer(view.consumer_name()))
                        .map_or(0, |c| c.pending);
                    self.crash_began(&view, pending, now);
                } else {
                    self.queue_crashed(&view, now);
                }
                (
                    InstanceState::Crashed {
                        at: now,
                        // A Redis group never times a consumer out: what it held stays pending.
                        // RabbitMQ needs no timeout: the dropped connection requeues at once.
                        session_timeout_ms: if !self.is_kafka() {
                            0
                        } else {
                            view.settings.session_timeout_ms
                        },
                        noticed_at: None,
                    },
                    TimelineKind::Crashed,
                )
            }
            ExitReason::Failed { reason } => {
                let _ = self.events.send(ServerEvent::Notice(Notice::error(
                    format!("Instance {} ended unexpectedly", view.name),
                    format!("{reason}. Start another instance to continue."),
                )));
                (
                    InstanceState::Failed {
                        at: now,
                        reason: reason.clone(),
                    },
                    TimelineKind::Failed { reason },
                )
            }
        };
        view.state = state;
        self.timeline(&view, kind, held, now);
        self.emit(ServerEvent::Instance(Box::new(view)));
        self.progress_dirty = true;
        if matches!(self.reset, Reset::WaitingForExits(_))
            && !self.view.instances.iter().any(InstanceView::is_alive)
        {
            self.finish_reset();
        }
    }
}

/// The palette index for a name: A is 0, B is 1, and so on, so a name keeps its colour.
fn name_colour(name: &str) -> u8 {
    name.bytes().next().map_or(0, |b| b.saturating_sub(b'A'))
}
