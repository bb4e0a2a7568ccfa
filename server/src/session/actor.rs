//! The session's state and its loop: one `select!` over the learner's requests, the instances'
//! reports, the results of broker calls, the embedded broker's group changes and refusals, the
//! broker's health, the server's crash book, and the poll and flush ticks.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use grouplab_protocol::held::HeldSample;
use grouplab_protocol::{
    Backend, BrokerHealth, BrokerView, CrashReport, EpochMillis, InstanceId, InstanceView,
    LabSnapshot, MessageBatch, ServerEvent, TimelineEntry, TimelineKind, TopicPartition,
};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{Semaphore, broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::pace::Pace;
use super::pulse::Activity;
use super::reset::Reset;
use super::{Request, SessionDeps, SessionHandle};
use crate::lab::catalog::Lab;
use crate::supervisor::InstanceEvent;
use grouplab_backends::clock::now_ms;
use grouplab_backends::kafka::GroupWatch;
use grouplab_model::history::History;
use grouplab_model::lag::LagTracker;
use grouplab_model::membership::Tracker;

/// How often the broker is asked for offsets and watermarks.
const POLL_INTERVAL: Duration = Duration::from_millis(700);
/// How often checkpoints are evaluated (and the messages shown are counted anew).
pub(super) const FLUSH_INTERVAL: Duration = Duration::from_millis(250);
/// The most instance reports handled in one turn of a session's loop.
const INSTANCE_EVENTS_AT_ONCE: usize = 256;
/// How many events a page may fall behind before it is sent a fresh snapshot.
const EVENT_BUFFER: usize = 1024;
/// The most learner commands (create topic, produce) of one lab running at once.
pub(super) const MAX_COMMANDS_IN_FLIGHT: usize = 8;
/// How long a lab keeps polling the broker after its last page closed.
const UNWATCHED_POLL: Duration = Duration::from_secs(60);

/// What to do with the result of a broker call that ran in a task of its own: the call's file
/// writes it beside the call, and the loop runs it on the session when the result comes.
pub(super) type Outcome = Box<dyn FnOnce(&mut Session) + Send>;

/// One lab's session: the only writer of its view.
pub(super) struct Session {
    pub(super) deps: Arc<SessionDeps>,
    pub(super) lab: Arc<Lab>,
    pub(super) namespace: String,
    pub(super) view: LabSnapshot,
    /// What the lab has seen since it was last set up; a reset starts a new one.
    pub(super) run: LabRun,
    pub(super) events: broadcast::Sender<ServerEvent>,
    pub(super) instance_events: mpsc::Sender<InstanceEvent>,
    outcomes: mpsc::Sender<Outcome>,
    /// Topics the page shows: the lab's own, and any created from the page.
    pub(super) topics: BTreeSet<String>,
    /// Groups whose members and offsets the page shows.
    pub(super) groups: BTreeSet<String>,
    /// Topics this lab created with Create topic (kept in the progress store): Reset may delete
    /// them. A topic merely named in a command is shown, never deleted.
    pub(super) created_topics: BTreeSet<String>,
    /// On a named cluster, when the learner first pressed Reset: a second press confirms.
    pub(super) reset_asked_at: Option<EpochMillis>,
    /// Slots for learner commands that talk to the broker.
    pub(super) commands_in_flight: Arc<Semaphore>,
    /// Since when no page has been subscribed.
    unwatched_since: Option<tokio::time::Instant>,
    /// When the next batch may leave.
    pub(super) batch_pace: Pace,
    /// Messages shown since the last [`FLUSH_INTERVAL`] tick.
    pub(super) sampled: usize,
    /// Instances that polled since the last tick, whose cards the pages are to be sent.
    pub(super) polled: BTreeSet<InstanceId>,
    pub(super) polling: bool,
    /// Bumped by every reset, so that a poll started before it cannot bring back what it deleted.
    pub(super) generation: u64,
    pub(super) reset: Reset,
    pub(super) last_instance_notice: HashMap<InstanceId, EpochMillis>,
    /// When each refused consumer (group and client id) was last told about, so a client that
    /// retries every second is explained once in a while, not every second.
    pub(super) last_refusal_notice: HashMap<(String, String), EpochMillis>,
    pub(super) progress_dirty: bool,
    /// The steady produce running, if any: cancel it to stop.
    pub(super) producing: Option<CancellationToken>,
    /// On a Redis or RabbitMQ lab, the URL of its broker once it answers.
    pub(super) lab_url: Option<String>,
    /// When the session began: a RabbitMQ lab shows the refusals its broker logged since.
    pub(super) opened_at: EpochMillis,
    /// The latest crash of one of this lab's instances, measured as its work moves.
    pub(super) crash: Option<(InstanceId, CrashReport)>,
    /// What the learner did lately, and the last pulse sent to a class's dashboard.
    pub(super) activity: Activity,
    /// The instructor's read-only views of this lab open now.
    pub(super) observers: Arc<AtomicUsize>,
    /// Where notices about the instructor's actions go: every page of the lab.
    pub(super) instructor_reply: super::Reply,
}

/// Everything a lab has seen since it was last set up, which a reset forgets: one value that a
/// reset rebuilds, so that no part of it can be left behind.
#[derive(Default)]
pub(super) struct LabRun {
    pub(super) history: History,
    pub(super) membership: Tracker,
    pub(super) lag: LagTracker,
    /// Processed counts of each instance at the last polls, to measure processing rates.
    pub(super) rates: HashMap<InstanceId, VecDeque<(EpochMillis, u64)>>,
    /// Messages counted since the last batch was sent.
    pub(super) batch: MessageBatch,
    /// When the batch being filled is to be sent; `None` while it is empty.
    pub(super) batch_due: Option<tokio::time::Instant>,
    /// Messages produced from the page, which numbers the next one.
    pub(super) produced: u64,
    /// On a Redis lab, what the streams' pending entries lists held at the last poll, to see
    /// entries move from one consumer to another (claims).
    pub(super) pending_owners: HashMap<(String, String), String>,
    /// On a Redis lab, entries page instances claimed since the last flush, for the timeline.
    pub(super) claims: BTreeMap<InstanceId, Vec<String>>,
}

impl Session {
    pub(super) fn spawn(
        deps: Arc<SessionDeps>,
        lab: Arc<Lab>,
        catalog_problem: Option<String>,
        namespace: String,
    ) -> SessionHandle {
        let (requests, inbox) = mpsc::channel(64);
        let (instance_events, instance_inbox) = mpsc::channel(1024);
        let (outcomes, outcome_inbox) = mpsc::channel(64);
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let observers = Arc::new(AtomicUsize::new(0));
        let instructor_reply =
            super::instructor::instructor_reply(&events, &deps.tasks, deps.shutdown.clone());
        let broker = match lab.content.setup.broker {
            Backend::Kafka => BrokerView {
                backend: Backend::Kafka,
                bootstrap_servers: deps.cluster.bootstrap_servers().to_owned(),
                embedded: deps.broker.is_some(),
                health: deps.health.borrow().clone(),
            },
            // Shown once the broker answers (`Session::on_lab_broker_ready`).
            backend => BrokerView {
                backend,
                bootstrap_servers: String::new(),
                embedded: true,
                health: BrokerHealth::Unknown,
            },
        };
        let setup = &lab.content.setup;
        let session = Session {
            view: LabSnapshot {
                lab_problem: catalog_problem,
                ..LabSnapshot::new(&lab.content.id, broker, lab.content.steps.len())
            },
            topics: setup.topics().cloned().collect(),
            groups: setup.groups().cloned().collect(),
            deps: Arc::clone(&deps),
            lab,
            namespace,
            run: LabRun::default(),
            events,
            instance_events,
            outcomes,
            created_topics: BTreeSet::new(),
            reset_asked_at: None,
            commands_in_flight: Arc::new(Semaphore::new(MAX_COMMANDS_IN_FLIGHT)),
            unwatched_since: None,
            batch_pace: Pace::new(tokio::time::Instant::now()),
            sampled: 0,
            polled: BTreeSet::new(),
            polling: false,
            generation: 0,
            reset: Reset::Idle,
            last_instance_notice: HashMap::new(),
            last_refusal_notice: HashMap::new(),
            progress_dirty: true,
            producing: None,
            lab_url: None,
            opened_at: now_ms(),
            crash: None,
            activity: Activity::default(),
            observers: Arc::clone(&observers),
            instructor_reply,
        };
        deps.tasks
            .spawn(session.run(inbox, instance_inbox, outcome_inbox));
        SessionHandle {
            requests,
            observers,
        }
    }

    async fn run(
        mut self,
        mut inbox: mpsc::Receiver<Request>,
        mut instance_inbox: mpsc::Receiver<InstanceEvent>,
        mut outcome_inbox: mpsc::Receiver<Outcome>,
    ) {
        self.load_progress().await;
        self.start_lab_broker();
        let mut group_changes = self.deps.groups.as_ref().map(GroupWatch::subscribe);
        let mut refusals = self.deps.groups.as_ref().map(GroupWatch::refusals);
        let mut health = self.deps.health.clone();
        self.on_health(health.borrow_and_update().clone());
        let mut crashes = self.deps.crashes.subscribe();
        self.on_crashes(crashes.borrow_and_update().clone());
        self.observe_all_groups();
        let mut poll = tokio::time::interval(POLL_INTERVAL);
        let mut flush = tokio::time::interval(FLUSH_INTERVAL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let shutdown = self.deps.shutdown.clone();
        loop {
            // A batch with no gap left to wait leaves at once. Its timer would fire only at the
            // timer's next millisecond tick: 1-2 ms that every message after a quiet spell paid.
            if self
                .run
                .batch_due
                .is_some_and(|due| due <= tokio::time::Instant::now())
            {
                self.send_batch();
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                Some(request) = inbox.recv() => self.on_request(request).await,
                Some(event) = instance_inbox.recv() => {
                    self.note_activity();
                    self.on_instance_event(event);
                    // Reports already waiting are taken now, so that they leave in the same batch
                    // rather than one gap later; bounded, so that a flood cannot starve the rest.
                    for _ in 1..INSTANCE_EVENTS_AT_ONCE {
                        let Ok(event) = instance_inbox.try_recv() else { break };
                        self.on_instance_event(event);
                    }
                }
                Some(outcome) = outcome_inbox.recv() => outcome(&mut self),
                change = next_change(&mut group_changes) => match change {
                    Ok(change) => self.observe_group(&change.group, change.decided_at_us),
                    Err(RecvError::Lagged(_)) => self.observe_all_groups(),
                    Err(RecvError::Closed) => group_changes = None,
                },
                refusal = next_change(&mut refusals) => match refusal {
                    Ok(refusal) => self.on_refusal(refusal),
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => refusals = None,
                },
                Ok(()) = health.changed() => {
                    let now = health.borrow_and_update().clone();
                    self.on_health(now);
                }
                Ok(()) = crashes.changed() => {
                    let now = crashes.borrow_and_update().clone();
                    self.on_crashes(now);
                }
                _ = poll.tick() => if self.watched() { self.start_poll() },
                _ = flush.tick() => self.flush(),
                () = tokio::time::sleep_until(self.run.batch_due.unwrap_or_else(tokio::time::Instant::now)),
                    if self.run.batch_due.is_some() => self.send_batch(),
            }
        }
    }

    /// Changes the view and tells every page.
    pub(super) fn emit(&mut self, event: ServerEvent) {
        self.view.apply(&event);
        // Having no page open is fine.
        let _ = self.events.send(event);
    }

    /// Keeps a stream group's or a queue's counts for the chart of what each consumer held,
    /// when they differ from the last ones kept.
    pub(super) fn record_held(&mut self, sample: HeldSample) {
        let last = self.view.last_held(&sample.source);
        // A source nobody has consumed from yet (a dead-letter queue, say) has nothing to chart.
        let unused = last.is_none() && sample.consumers.is_empty();
        let same = last.is_some_and(|last| last.same_counts(&sample));
        if !unused && !same {
            self.emit(ServerEvent::Held(sample));
        }
    }

    async fn on_request(&mut self, request: Request) {
        match request {
            Request::Subscribe { reply } => {
                let _ = reply.send((self.view.clone(), self.events.subscribe()));
                // A lab that stopped polling while nobody watched catches up at once.
                self.unwatched_since = None;
                self.start_poll();
            }
            Request::Command { command, reply } => {
                if !matches!(command, grouplab_protocol::ClientCommand::Resync) {
                    self.note_activity();
                }
                if let Err(notice) = self.on_command(command, &reply).await {
                    self.tell(&reply, notice);
                }
            }
            Request::Instructor { action, reply } => {
                let _ = reply.send(self.on_instructor(action).await);
            }
            Request::Reload { lab, problem } => self.on_reload(lab, problem),
        }
    }

    /// Serves a new version of the lab, keeping what happened (topics, instances, history) and
    /// the learner's progress, or shows what is wrong with an edit while the old version serves.
    fn on_reload(&mut self, lab: Option<Arc<Lab>>, problem: Option<String>) {
        let reloaded = lab.is_some();
        if let Some(lab) = lab {
            let setup = &lab.content.setup;
            self.topics.extend(setup.topics().cloned());
            self.groups.extend(setup.groups().cloned());
            self.lab = lab;
            let steps = self.lab.content.steps.len();
            let mut progress = self.view.progress.clone();
            progress.steps.resize(steps, Default::default());
            progress.hints.truncate(self.lab.hints_html.len());
            if progress != self.view.progress {
                self.emit(ServerEvent::Progress(progress));
            }
            self.progress_dirty = true;
            self.observe_all_groups();
        }
        self.emit(ServerEvent::LabChanged { reloaded, problem });
    }

    /// Puts an instance's doing on the timeline.
    pub(super) fn timeline(
        &mut self,
        view: &InstanceView,
        kind: TimelineKind,
        partitions: Vec<TopicPartition>,
        at: EpochMillis,
    ) {
        let member = self.view.member_of(view.id).map(|m| m.member_id.clone());
        self.emit(ServerEvent::Timeline(TimelineEntry {
            at,
            group: view.group.clone(),
            instance: Some(view.id),
            member,
            name: view.name.clone(),
            colour: view.colour,
            kind,
            partitions,
            epoch: None,
        }));
    }

    /// Whether to poll the broker: yes while a page is open, and for [`UNWATCHED_POLL`] after
    /// the last one closed; a lab nobody watches stops polling until the next page subscribes.
    pub(super) fn watched(&mut self) -> bool {
        if self.events.receiver_count() > 0 {
            self.unwatched_since = None;
            return true;
        }
        let since = *self
            .unwatched_since
            .get_or_insert_with(tokio::time::Instant::now);
        since.elapsed() < UNWATCHED_POLL
    }

    /// Runs a broker call in a task of its own; what it returns is run on the session when the
    /// call is done, as the loop's next turn takes it.
    pub(super) fn run_outcome<F>(&self, work: impl Future<Output = F> + Send + 'static)
    where
        F: FnOnce(&mut Session) + Send + 'static,
    {
        let outcomes = self.outcomes.clone();
        self.deps.tasks.spawn(async move {
            let then: Outcome = Box::new(work.await);
            let _ = outcomes.send(then).await;
        });
    }
}

/// The next change from the embedded broker, or never on a named cluster.
async fn next_change<T: Clone>(
    changes: &mut Option<broadcast::Receiver<T>>,
) -> Result<T, RecvError> {
    match changes {
        Some(changes) => changes.recv().await,
        None => std::future::pending().await,
    }
}
