//! Lab sessions: one actor per lab (and, later, per learner namespace) that owns the lab's live view.
//!
//! The session is the only writer of its [`LabSnapshot`]: every change is made by building a
//! [`ServerEvent`], applying it to the snapshot, and broadcasting it, so every page that applies the
//! same events shows the same view. Inputs are learners' commands, the reports of the lab's consumer
//! instances, the broker's view of the lab's groups (pushed by the embedded broker, polled from a
//! named cluster) and a poll of the broker for offsets. Slow broker calls run in tasks of their own
//! and report back, so the session never waits on the network.
//!
//! Group membership, for page instances and the learner's own consumers alike, comes from the
//! broker through [`Tracker`]; instance reports add what only grouplab's own processes can say.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use grouplab_protocol::{
    Backend, BrokerHealth, BrokerView, Busy, ClientCommand, ConsumerSettings, EpochMicros,
    EpochMillis, Failing, GROUP_COLOUR, InstanceConfig, InstanceId, InstanceProblem,
    InstanceReport, InstanceState, InstanceView, KeyMode, KeyPlacement, LabSnapshot, MessageBatch,
    MessageView, Notice, ProgressView, QueueView, ReportedSpan, ServerEvent, TimelineEntry,
    TimelineKind, TopicPartition, colours_in_use, free_colour, limits, validate_name,
    validate_partitions, validate_produce,
};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

mod crash;
mod lab_broker;
mod queue;
mod stream;

use crate::broker::{EmbeddedBroker, GroupWatch, Refusal};
use crate::checks::{History, evaluate, produced_number};
use crate::cluster::{Cluster, ClusterError, Polled};
use crate::labs::{Lab, LabCatalog};
use crate::membership::{Change, GroupObservation, Tracker};
use crate::progress::ProgressStore;
use crate::redis_streams::Redis;
use crate::supervisor::{ExitReason, InstanceEvent, InstanceEventKind, SupervisorHandle};

/// How often the broker is asked for offsets and watermarks.
const POLL_INTERVAL: Duration = Duration::from_millis(700);
/// How often checkpoints are evaluated (and the messages shown are counted anew).
const FLUSH_INTERVAL: Duration = Duration::from_millis(250);
/// Batches of consumed messages to the pages are paced ([`Pace`]): up to [`BATCH_BURST`] leave
/// back to back, as a burst from one fetch needs, and beyond that one per `BATCH_PACE`, so a
/// flood costs at most 250 events a second.
const BATCH_PACE: Duration = Duration::from_millis(4);
const BATCH_BURST: u32 = 8;
/// The most instance reports handled in one turn of a session's loop.
const INSTANCE_EVENTS_AT_ONCE: usize = 256;
/// The most messages shown per [`FLUSH_INTERVAL`]; counts stay exact beyond it.
const SAMPLE_PER_FLUSH: usize = 12;
/// How many stopped or crashed instance cards a page keeps.
const KEEP_GONE_INSTANCES: usize = 4;
/// How many events a page may fall behind before it is sent a fresh snapshot.
const EVENT_BUFFER: usize = 1024;
/// The least time between two error notices from one instance, or two refusals of one consumer.
const INSTANCE_NOTICE_GAP_MS: u64 = 10_000;
/// The least time between two updates of a card for the same repeated client error.
const INSTANCE_PROBLEM_GAP_MS: u64 = 2_000;

/// How many polls a processing rate is measured over (about 5 s).
const RATE_SAMPLES: usize = 8;
/// How often a steady produce sends what is due.
const STEADY_TICK: Duration = Duration::from_millis(100);

/// The most learner commands (create topic, produce) of one lab running at once.
const MAX_COMMANDS_IN_FLIGHT: usize = 8;
/// How long a lab keeps polling the broker after its last page closed.
const UNWATCHED_POLL: Duration = Duration::from_secs(60);

/// How long a first press of Reset on a named cluster waits for the second.
const RESET_CONFIRM_MS: u64 = 10_000;

/// `a`, `b` and `c`, for a notice.
fn names(list: &[String]) -> String {
    let quoted: Vec<String> = list.iter().map(|n| format!("`{n}`")).collect();
    match quoted.as_slice() {
        [] => "(none)".to_owned(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// What a learner reads when the progress database fails; the error itself goes to the log.
const PROGRESS_STORE_TROUBLE: &str = "grouplab keeps progress in a small database in its data folder (`--data-dir`, `.grouplab` by default), and could not write it. Check that the disk has space and the folder is writable; the details are in grouplab's log.";

/// What every session shares.
pub struct SessionDeps {
    pub cluster: Cluster,
    pub supervisor: SupervisorHandle,
    pub progress: ProgressStore,
    /// The embedded broker, which a page may take down and bring up; `None` on a named cluster.
    pub broker: Option<Arc<EmbeddedBroker>>,
    /// Whether the broker answers, watched for the whole server ([`crate::health`]).
    pub health: watch::Receiver<BrokerHealth>,
    /// Whether the server serves a class (`--public`): then no page may stop the broker.
    pub shared: bool,
    /// The embedded broker's groups, pushed as they change; `None` on a named cluster, whose
    /// groups are polled with DescribeGroups instead.
    pub groups: Option<GroupWatch>,
    /// Redis, for Redis Streams labs; it starts when the first of them is opened.
    pub redis: Redis,
    /// RabbitMQ, for RabbitMQ labs; likewise.
    pub rabbit: crate::rabbitmq::Rabbit,
    /// The latest crash on each broker, which every lab shows.
    pub crashes: Arc<crash::CrashBook>,
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
}

/// The sessions of every lab, started on first use.
pub struct Sessions {
    deps: Arc<SessionDeps>,
    catalog: Arc<LabCatalog>,
    /// A std Mutex is fine: it guards a map lookup or insert, never held across an await.
    running: Mutex<HashMap<String, SessionHandle>>,
}

impl Sessions {
    pub fn new(deps: SessionDeps, catalog: Arc<LabCatalog>) -> Self {
        Self {
            deps: Arc::new(deps),
            catalog,
            running: Mutex::new(HashMap::new()),
        }
    }

    pub fn catalog(&self) -> &Arc<LabCatalog> {
        &self.catalog
    }

    pub fn progress(&self) -> &ProgressStore {
        &self.deps.progress
    }

    /// Tells a lab's running session that its files were read again.
    pub fn reloaded(&self, lab_id: &str, outcome: &crate::labs::Reloaded) {
        let handle = self
            .running
            .lock()
            .ok()
            .and_then(|running| running.get(lab_id).cloned());
        let Some(handle) = handle else {
            return;
        };
        let request = match outcome {
            crate::labs::Reloaded::Unchanged => return,
            crate::labs::Reloaded::Changed(lab) => Request::Reload {
                lab: Some(Arc::clone(lab)),
                problem: None,
            },
            crate::labs::Reloaded::Broken { problem } => Request::Reload {
                lab: None,
                problem: Some(problem.clone()),
            },
        };
        // A full inbox means the session is busy; the next edit tells it again.
        let _ = handle.requests.try_send(request);
    }

    /// The session of a lab in the default namespace, or `None` if there is no such lab.
    pub fn session(&self, lab_id: &str) -> Option<SessionHandle> {
        let lab = self.catalog.get(lab_id)?;
        let mut running = self.running.lock().ok()?;
        if let Some(handle) = running.get(lab_id) {
            return Some(handle.clone());
        }
        let problem = self.catalog.problem(lab_id);
        let handle = Session::spawn(Arc::clone(&self.deps), lab, problem, "default".to_owned());
        running.insert(lab_id.to_owned(), handle.clone());
        Some(handle)
    }
}

/// A cloneable way to talk to one session.
#[derive(Clone)]
pub struct SessionHandle {
    requests: mpsc::Sender<Request>,
}

/// Where a session sends what is meant for one page only.
pub type Reply = mpsc::Sender<ServerEvent>;

enum Request {
    Subscribe {
        reply: oneshot::Sender<(LabSnapshot, broadcast::Receiver<ServerEvent>)>,
    },
    Command {
        command: ClientCommand,
        reply: Reply,
    },
    /// The lab's files changed: a new version to serve, or what is wrong with the edit.
    Reload {
        lab: Option<Arc<Lab>>,
        problem: Option<String>,
    },
}

impl SessionHandle {
    /// The current view and every event after it, with nothing missed in between.
    pub async fn subscribe(&self) -> Option<(LabSnapshot, broadcast::Receiver<ServerEvent>)> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request::Subscribe { reply })
            .await
            .ok()?;
        answer.await.ok()
    }

    /// Hands a learner's command to the session; notices for that learner go to `reply`.
    pub async fn command(&self, command: ClientCommand, reply: Reply) -> bool {
        self.requests
            .send(Request::Command { command, reply })
            .await
            .is_ok()
    }
}

/// The result of a broker call made in a task of its own.
enum Outcome {
    /// A poll's result, with the generation it started in: a reset makes older polls stale.
    Polled {
        generation: u64,
        result: Result<Polled, ClusterError>,
    },
    TopicCreated {
        topic: String,
        result: Result<(), ClusterError>,
        reply: Reply,
    },
    Produced {
        topic: String,
        result: Result<crate::cluster::Produced, ClusterError>,
        reply: Reply,
    },
    ProducedSteadily {
        topic: String,
        sent: u64,
        result: Result<(), ClusterError>,
        reply: Reply,
    },
    PartitionsAdded {
        topic: String,
        partitions: i32,
        result: Result<(), ClusterError>,
        reply: Reply,
    },
    ResetDone {
        result: Result<(), ClusterError>,
        reply: Reply,
    },
    /// The lab's Redis or RabbitMQ answered (and the lab's groups or queues exist), at this
    /// URL, or cannot be used.
    LabBrokerReady(Result<String, ClusterError>),
    /// A poll of a Redis lab's streams, and of the readers in no group.
    StreamsPolled {
        generation: u64,
        result: Result<stream::StreamsPolled, ClusterError>,
    },
    /// A poll of a RabbitMQ lab's queues.
    QueuesPolled {
        generation: u64,
        result: Result<crate::rabbitmq::QueuesPolled, ClusterError>,
    },
}

/// Where a reset of the lab is.
enum Reset {
    Idle,
    /// Waiting for the lab's instances to leave their groups; the reply is for the learner who asked.
    WaitingForExits(Reply),
    /// Deleting the lab's groups and topics.
    Deleting,
}

struct Session {
    deps: Arc<SessionDeps>,
    lab: Arc<Lab>,
    namespace: String,
    view: LabSnapshot,
    history: History,
    events: broadcast::Sender<ServerEvent>,
    instance_events: mpsc::Sender<InstanceEvent>,
    outcomes: mpsc::Sender<Outcome>,
    /// Topics the page shows: the lab's own, and any created from the page.
    topics: BTreeSet<String>,
    /// Groups whose members and offsets the page shows.
    groups: BTreeSet<String>,
    /// Topics this lab created with Create topic (kept in the progress store): Reset may delete
    /// them. A topic merely named in a command is shown, never deleted.
    created_topics: BTreeSet<String>,
    /// On a named cluster, when the learner first pressed Reset: a second press confirms.
    reset_asked_at: Option<EpochMillis>,
    /// Slots for learner commands that talk to the broker.
    commands_in_flight: Arc<tokio::sync::Semaphore>,
    /// Since when no page has been subscribed.
    unwatched_since: Option<tokio::time::Instant>,
    membership: Tracker,
    batch: MessageBatch,
    /// When the batch being filled is to be sent; `None` while it is empty.
    batch_due: Option<tokio::time::Instant>,
    /// When the next batch may leave.
    batch_pace: Pace,
    /// Messages shown since the last [`FLUSH_INTERVAL`] tick.
    sampled: usize,
    /// Instances that polled since the last tick, whose cards the pages are to be sent.
    polled: BTreeSet<InstanceId>,
    polling: bool,
    /// Bumped by every reset, so that a poll started before it cannot bring back what it deleted.
    generation: u64,
    produced: u64,
    reset: Reset,
    last_instance_notice: HashMap<InstanceId, EpochMillis>,
    /// When each refused consumer (group and client id) was last told about, so a client that
    /// retries every second is explained once in a while, not every second.
    last_refusal_notice: HashMap<(String, String), EpochMillis>,
    progress_dirty: bool,
    lag: crate::lag::LagTracker,
    /// Processed counts of each instance at the last polls, to measure processing rates.
    rates: HashMap<InstanceId, std::collections::VecDeque<(EpochMillis, u64)>>,
    /// The steady produce running, if any: cancel it to stop.
    producing: Option<CancellationToken>,
    /// On a Redis or RabbitMQ lab, the URL of its broker once it answers.
    lab_url: Option<String>,
    /// When the session began: a RabbitMQ lab shows the refusals its broker logged since.
    opened_at: EpochMillis,
    /// The latest crash of one of this lab's instances, measured as its work moves.
    crash: Option<(InstanceId, grouplab_protocol::CrashReport)>,
    /// On a Redis lab, what the streams' pending entries lists held at the last poll, to see
    /// entries move from one consumer to another (claims).
    pending_owners: HashMap<(String, String), String>,
    /// On a Redis lab, entries page instances claimed since the last flush, for the timeline.
    claims: std::collections::BTreeMap<InstanceId, Vec<String>>,
}

impl Session {
    fn spawn(
        deps: Arc<SessionDeps>,
        lab: Arc<Lab>,
        catalog_problem: Option<String>,
        namespace: String,
    ) -> SessionHandle {
        let (requests, inbox) = mpsc::channel(64);
        let (instance_events, instance_inbox) = mpsc::channel(1024);
        let (outcomes, outcome_inbox) = mpsc::channel(64);
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let broker = match lab.content.setup.broker {
            Backend::Kafka => BrokerView {
                backend: Backend::Kafka,
                bootstrap_servers: deps.cluster.bootstrap_servers().to_owned(),
                embedded: deps.broker.is_some(),
                health: deps.health.borrow().clone(),
            },
            // Shown once the broker answers (`Outcome::LabBrokerReady`).
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
            history: History::default(),
            events,
            instance_events,
            outcomes,
            membership: Tracker::default(),
            created_topics: BTreeSet::new(),
            reset_asked_at: None,
            commands_in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_COMMANDS_IN_FLIGHT)),
            unwatched_since: None,
            batch: MessageBatch::default(),
            batch_due: None,
            batch_pace: Pace::new(tokio::time::Instant::now()),
            sampled: 0,
            polled: BTreeSet::new(),
            polling: false,
            generation: 0,
            produced: 0,
            reset: Reset::Idle,
            last_instance_notice: HashMap::new(),
            last_refusal_notice: HashMap::new(),
            progress_dirty: true,
            lag: crate::lag::LagTracker::default(),
            rates: HashMap::new(),
            producing: None,
            lab_url: None,
            opened_at: now_ms(),
            crash: None,
            pending_owners: HashMap::new(),
            claims: Default::default(),
        };
        deps.tasks
            .spawn(session.run(inbox, instance_inbox, outcome_inbox));
        SessionHandle { requests }
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
                .batch_due
                .is_some_and(|due| due <= tokio::time::Instant::now())
            {
                self.send_batch();
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                Some(request) = inbox.recv() => self.on_request(request).await,
                Some(event) = instance_inbox.recv() => {
                    self.on_instance_event(event);
                    // Reports already waiting are taken now, so that they leave in the same batch
                    // rather than one gap later; bounded, so that a flood cannot starve the rest.
                    for _ in 1..INSTANCE_EVENTS_AT_ONCE {
                        let Ok(event) = instance_inbox.try_recv() else { break };
                        self.on_instance_event(event);
                    }
                }
                Some(outcome) = outcome_inbox.recv() => self.on_outcome(outcome),
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
                () = tokio::time::sleep_until(self.batch_due.unwrap_or_else(tokio::time::Instant::now)),
                    if self.batch_due.is_some() => self.send_batch(),
            }
        }
    }

    async fn load_progress(&mut self) {
        match self
            .deps
            .progress
            .load(&self.namespace, &self.lab.content.id)
            .await
        {
            Ok(stored) => {
                let progress = &mut self.view.progress;
                for (step, at) in stored.passed {
                    if let Some(status) = progress.steps.get_mut(step) {
                        status.passed_at = Some(at);
                    }
                }
                progress.hints = self
                    .lab
                    .hints_html
                    .iter()
                    .take(stored.hints_opened as usize)
                    .cloned()
                    .collect();
                if stored.solution_revealed {
                    progress.solution = self.lab.solution.clone();
                }
            }
            Err(err) => warn!(%err, "progress could not be loaded"),
        }
        match self
            .deps
            .progress
            .created_topics(&self.namespace, &self.lab.content.id)
            .await
        {
            Ok(created) => {
                self.topics.extend(created.iter().cloned());
                self.created_topics = created.into_iter().collect();
            }
            Err(err) => warn!(%err, "the topics this lab created could not be read"),
        }
    }

    /// Changes the view and tells every page.
    fn emit(&mut self, event: ServerEvent) {
        self.view.apply(&event);
        // Having no page open is fine.
        let _ = self.events.send(event);
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
                if let Err(notice) = self.on_command(command, &reply).await {
                    let _ = reply.try_send(ServerEvent::Notice(notice));
                }
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

    async fn on_command(&mut self, command: ClientCommand, reply: &Reply) -> Result<(), Notice> {
        if !matches!(self.reset, Reset::Idle) && !matches!(command, ClientCommand::Resync) {
            return Err(Notice::info(
                "The lab is being reset",
                "Wait a moment: the instances are leaving their groups, then topics and groups are deleted.",
            ));
        }
        match command {
            ClientCommand::CreateTopic { .. } | ClientCommand::AddPartitions { .. }
                if !self.is_kafka() =>
            {
                return Err(if self.is_redis() {
                    Notice::info(
                        "A Redis lab has its streams already",
                        "A stream has no partitions to create or add: it is one log, and its consumer groups share its entries one by one. Reset the lab to start the stream afresh.",
                    )
                } else {
                    Notice::info(
                        "A RabbitMQ lab has its queues already",
                        "A queue has no partitions to create or add: its consumers compete for its messages one by one. Reset the lab to start the queues afresh.",
                    )
                });
            }
            ClientCommand::CreateTopic { topic, partitions } => {
                validate_name("topic", &topic)
                    .map_err(|e| Notice::error("That topic name won't work", e))?;
                validate_partitions(partitions)
                    .map_err(|e| Notice::error("That partition count won't work", e))?;
                let permit = self.command_permit()?;
                let cluster = self.deps.cluster.clone();
                let reply = reply.clone();
                self.run_outcome(async move {
                    let result = cluster.create_topic(&topic, partitions).await;
                    drop(permit);
                    Outcome::TopicCreated {
                        topic,
                        result,
                        reply,
                    }
                });
            }
            ClientCommand::Produce {
                topic,
                count,
                keys,
                partition,
                text,
            } => {
                validate_name("topic", &topic)
                    .map_err(|e| Notice::error("That topic name won't work", e))?;
                self.writable(&topic)?;
                validate_produce(count, &keys)?;
                if let Some(text) = &text
                    && (text.is_empty() || text.chars().count() > limits::MAX_KEY_LEN)
                {
                    return Err(Notice::error(
                        "That text won't work",
                        format!(
                            "Text added to messages needs 1 to {} characters.",
                            limits::MAX_KEY_LEN
                        ),
                    ));
                }
                let permit = self.command_permit()?;
                let broker = self.lab_broker()?;
                let reply = reply.clone();
                let first = self.produced + 1;
                self.produced += u64::from(count);
                self.run_outcome(async move {
                    let result = broker
                        .produce(&topic, count, &keys, partition, text.as_deref(), first)
                        .await;
                    drop(permit);
                    Outcome::Produced {
                        topic,
                        result,
                        reply,
                    }
                });
            }
            ClientCommand::ProduceSteadily {
                topic,
                per_second,
                seconds,
                keys,
            } => self.produce_steadily(topic, per_second, seconds, keys, reply)?,
            ClientCommand::StopProducing => match self.producing.take() {
                Some(token) => token.cancel(),
                None => {
                    return Err(Notice::info(
                        "Nothing is being produced",
                        "Only a steady produce runs long enough to be stopped.",
                    ));
                }
            },
            ClientCommand::AddPartitions { topic, partitions } => {
                self.add_partitions(topic, partitions, reply)?
            }
            ClientCommand::StartInstance {
                group,
                topic,
                settings,
            } => self.start_instance(group, topic, settings).await?,
            ClientCommand::StopInstance { instance } => {
                let view = self.alive_instance(instance)?;
                self.deps.supervisor.stop(instance).await.map_err(|e| {
                    Notice::error("The instance could not be stopped", e.to_string())
                })?;
                let now = now_ms();
                let mut view = view;
                if !matches!(view.state, InstanceState::Stopping { .. }) {
                    view.state = InstanceState::Stopping { since: now };
                    self.timeline(&view, TimelineKind::Stopping, view.partitions.clone(), now);
                    self.emit(ServerEvent::Instance(Box::new(view)));
                }
            }
            ClientCommand::CrashInstance { instance } => {
                self.alive_instance(instance)?;
                self.deps.supervisor.crash(instance).await.map_err(|e| {
                    Notice::error("The instance could not be crashed", e.to_string())
                })?;
            }
            ClientCommand::ResetLab => {
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
            }
            ClientCommand::ClearProgress => {
                if let Err(err) = self
                    .deps
                    .progress
                    .clear(&self.namespace, &self.lab.content.id)
                    .await
                {
                    warn!(%err, "progress could not be cleared");
                    return Err(Notice::error(
                        "Progress could not be cleared",
                        PROGRESS_STORE_TROUBLE,
                    ));
                }
                self.emit(ServerEvent::Progress(ProgressView::new(
                    self.lab.content.steps.len(),
                )));
                self.progress_dirty = true;
            }
            ClientCommand::OpenHint => {
                let mut progress = self.view.progress.clone();
                let Some(next) = self.lab.hints_html.get(progress.hints.len()) else {
                    return Err(Notice::info(
                        "No more hints",
                        "Every hint of this lab is open already.",
                    ));
                };
                progress.hints.push(next.clone());
                self.save_reveals(&progress).await?;
                self.emit(ServerEvent::Progress(progress));
            }
            ClientCommand::RevealSolution => {
                let mut progress = self.view.progress.clone();
                progress.solution = self.lab.solution.clone();
                self.save_reveals(&progress).await?;
                self.emit(ServerEvent::Progress(progress));
            }
            ClientCommand::Resync => {
                let _ = reply.try_send(ServerEvent::Snapshot(Box::new(self.view.clone())));
            }
            ClientCommand::SetBroker { up } => self.set_broker(up).await?,
        }
        Ok(())
    }

    /// Takes the embedded broker down or brings it back up; every lab sees the outcome through
    /// the health monitor, within a probe.
    async fn set_broker(&mut self, up: bool) -> Result<(), Notice> {
        let Some(broker) = &self.deps.broker else {
            return Err(Notice::error(
                "grouplab cannot stop your cluster",
                "Broker down and Broker up control the embedded broker only. To see an outage on your own cluster, stop one of its brokers yourself: the page shows it within two seconds.",
            ));
        };
        if self.deps.shared {
            return Err(Notice::error(
                "Not on a shared server",
                "This grouplab serves a whole class, and stopping its broker would stop it for everyone. Run grouplab on your own machine to try an outage.",
            ));
        }
        if up {
            match broker.bring_up().await {
                Ok(true) => Ok(()),
                Ok(false) => Err(Notice::info(
                    "The broker is already up",
                    "Nothing to do: it is serving.",
                )),
                Err(err) => {
                    warn!(%err, "the embedded broker could not come back up");
                    Err(Notice::error(
                        "The broker could not start again",
                        format!(
                            "{err} Wait a few seconds and press Broker up again, or restart grouplab."
                        ),
                    ))
                }
            }
        } else if broker.take_down().await {
            Ok(())
        } else {
            Err(Notice::info(
                "The broker is already down",
                "Press Broker up to start it again.",
            ))
        }
    }

    /// Shows a change of the broker's health, and marks it on the timeline.
    fn on_health(&mut self, health: BrokerHealth) {
        // The Kafka broker's health; a Redis or RabbitMQ lab shows its own broker's instead.
        if !self.is_kafka() || health == self.view.broker.health {
            return;
        }
        let was_up = self.view.broker.health.is_up();
        let entry = match (&health, was_up) {
            (BrokerHealth::Up, false) if self.view.broker.health != BrokerHealth::Unknown => {
                Some(TimelineKind::BrokerUp)
            }
            (BrokerHealth::Stopped { .. }, _) => Some(TimelineKind::BrokerDown {
                reason: "was stopped from a lab page (Broker down)".to_owned(),
            }),
            (BrokerHealth::Down { .. }, _) => Some(TimelineKind::BrokerDown {
                reason: "stopped answering".to_owned(),
            }),
            _ => None,
        };
        self.emit(ServerEvent::Broker(BrokerView {
            health,
            ..self.view.broker.clone()
        }));
        if let Some(kind) = entry {
            self.emit(ServerEvent::Timeline(TimelineEntry {
                at: now_ms(),
                group: String::new(),
                instance: None,
                member: None,
                name: "broker".to_owned(),
                colour: GROUP_COLOUR,
                kind,
                partitions: Vec::new(),
            }));
        }
    }

    async fn save_reveals(&self, progress: &ProgressView) -> Result<(), Notice> {
        self.deps
            .progress
            .record_reveals(
                &self.namespace,
                &self.lab.content.id,
                progress.hints.len() as u32,
                progress.solution.is_some(),
            )
            .await
            .map_err(|err| {
                warn!(%err, "progress could not be saved");
                Notice::error("Your progress could not be saved", PROGRESS_STORE_TROUBLE)
            })
    }

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

    async fn start_instance(
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
        let config = InstanceConfig {
            backend,
            bootstrap_servers,
            group: group.clone(),
            topics: vec![topic.clone()],
            client_id: client_id.clone(),
            settings: settings.clone(),
        };
        let id = self
            .deps
            .supervisor
            .start(&self.lab.content.id, config, self.instance_events.clone())
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

    /// Starts producing `per_second` messages a second for `seconds`, in a task of its own that
    /// sends what is due every [`STEADY_TICK`]; one at a time per lab.
    fn produce_steadily(
        &mut self,
        topic: String,
        per_second: u32,
        seconds: u32,
        keys: KeyMode,
        reply: &Reply,
    ) -> Result<(), Notice> {
        validate_name("topic", &topic)
            .map_err(|e| Notice::error("That topic name won't work", e))?;
        self.writable(&topic)?;
        validate_produce(1, &keys)?;
        if !(1..=limits::MAX_RATE).contains(&per_second)
            || !(1..=limits::MAX_STEADY_SECONDS).contains(&seconds)
        {
            return Err(Notice::error(
                "That rate won't work",
                format!(
                    "Produce between 1 and {} messages per second, for 1 to {} seconds.",
                    limits::MAX_RATE,
                    limits::MAX_STEADY_SECONDS
                ),
            ));
        }
        if self.producing.as_ref().is_some_and(|t| !t.is_cancelled()) {
            return Err(Notice::info(
                "Already producing",
                "A steady produce is running: press Stop producing first.",
            ));
        }
        let broker = self.lab_broker()?;
        let token = self.deps.shutdown.child_token();
        self.producing = Some(token.clone());
        let total = u64::from(per_second) * u64::from(seconds);
        let first = self.produced + 1;
        self.produced += total;
        let reply = reply.clone();
        let _ = reply.try_send(ServerEvent::Notice(Notice::info(
            format!("Producing {per_second} message(s) per second to `{topic}`"),
            format!("For {seconds} s ({total} messages), unless you press Stop producing."),
        )));
        self.run_outcome(async move {
            let began = tokio::time::Instant::now();
            let mut tick = tokio::time::interval(STEADY_TICK);
            let mut sent = 0u64;
            let mut result = Ok(());
            while sent < total {
                tokio::select! {
                    () = token.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let due =
                    (u64::from(per_second) * began.elapsed().as_millis() as u64 / 1000).min(total);
                if due <= sent {
                    continue;
                }
                let count = (due - sent) as u32;
                if let Err(err) = broker
                    .produce(&topic, count, &keys, None, None, first + sent)
                    .await
                {
                    result = Err(err);
                    break;
                }
                sent = due;
            }
            Outcome::ProducedSteadily {
                topic,
                sent,
                result,
                reply,
            }
        });
        Ok(())
    }

    /// Grows one of the lab's topics; Kafka can add partitions but never take them away.
    fn add_partitions(
        &mut self,
        topic: String,
        partitions: i32,
        reply: &Reply,
    ) -> Result<(), Notice> {
        validate_name("topic", &topic)
            .map_err(|e| Notice::error("That topic name won't work", e))?;
        validate_partitions(partitions)
            .map_err(|e| Notice::error("That partition count won't work", e))?;
        // Only a topic this lab works with: the page must not reshape anyone else's.
        let Some(now) = self
            .view
            .topic(&topic)
            .filter(|_| self.topics.contains(&topic))
            .map(|t| t.partitions.len() as i32)
        else {
            return Err(Notice::error(
                format!("`{topic}` is not one of this lab's topics"),
                "Create it first; grouplab only changes topics the lab works with.",
            ));
        };
        if partitions <= now {
            return Err(Notice::info(
                format!("`{topic}` already has {now} partitions"),
                format!("Kafka can add partitions but never remove them: type more than {now}."),
            ));
        }
        if partitions - now > limits::MAX_ADDED_PARTITIONS {
            return Err(Notice::error(
                "That is a lot of partitions at once",
                format!(
                    "Add at most {} partitions at a time.",
                    limits::MAX_ADDED_PARTITIONS
                ),
            ));
        }
        let permit = self.command_permit()?;
        let cluster = self.deps.cluster.clone();
        let reply = reply.clone();
        self.run_outcome(async move {
            let result = cluster.add_partitions(&topic, partitions).await;
            drop(permit);
            Outcome::PartitionsAdded {
                topic,
                partitions,
                result,
                reply,
            }
        });
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

    fn forget_old_instances(&mut self) {
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

    fn on_instance_event(&mut self, event: InstanceEvent) {
        let Some(mut view) = self.view.instance(event.id).cloned() else {
            return;
        };
        let now = now_ms();
        // The stamp of the report this change is sent for. A `Polled` report is sent at the next
        // tick, not as it comes, so it keeps the stamp of the last report that was.
        let shown_at_once_since = view.reported_at_us;
        view.reported_at_us = event.at_us;
        let event = match self.on_stream_report(&mut view, event, now) {
            Some(event) => event,
            None => return,
        };
        let event = match self.on_queue_report(&mut view, event, now) {
            Some(event) => event,
            None => return,
        };
        match event.kind {
            InstanceEventKind::Report(InstanceReport::Message(message)) => {
                let tp = TopicPartition::new(&message.topic, message.partition);
                let again = self
                    .history
                    .received_before(&view.group, &tp, message.offset);
                if again {
                    self.crash_delivered_again(1);
                }
                if !again && let Some(number) = produced_number(&message.value) {
                    self.history
                        .order
                        .entry((view.group.clone(), message.topic.clone()))
                        .or_default()
                        .arrived(view.id, message.key.as_deref(), number, message.partition);
                }
                self.history
                    .record_received(&view.group, tp, message.offset);
                self.take_message(view.id, event.at_us, || MessageView {
                    instance: view.id,
                    topic: message.topic,
                    partition: message.partition,
                    offset: message.offset,
                    entry: None,
                    key: message.key,
                    value: message.value,
                    at: now,
                });
                return;
            }
            InstanceEventKind::Report(InstanceReport::Processed {
                topic,
                partition,
                offset,
            }) => {
                self.history.record_processed(
                    &view.group,
                    TopicPartition::new(topic, partition),
                    offset,
                );
                self.history.last_processed.insert(view.group.clone(), now);
                if view
                    .failing
                    .as_ref()
                    .is_some_and(|f| f.partition == partition && f.offset == offset)
                {
                    view.failing = None;
                    self.emit(ServerEvent::Instance(Box::new(view.clone())));
                }
                self.count_processed(view.id);
                self.progress_dirty = true;
                return;
            }
            InstanceEventKind::Report(InstanceReport::Polled { messages }) => {
                view.busy = (messages > 0).then_some(Busy {
                    polled_at: now,
                    messages,
                });
                view.reported_at_us = shown_at_once_since;
                // A fast stream means hundreds of polls a second: the view keeps each at once,
                // and the pages hear of the latest at the next tick.
                self.view.apply(&ServerEvent::Instance(Box::new(view)));
                self.polled.insert(event.id);
                return;
            }
            InstanceEventKind::Report(InstanceReport::Queue { depth, paused }) => {
                view.queue = Some(QueueView { depth, paused });
            }
            InstanceEventKind::Report(InstanceReport::ProcessingFailed {
                partition,
                offset,
                attempt,
                error,
                ..
            }) => {
                let attempts = self.history.attempts.entry(view.group.clone()).or_default();
                *attempts = (*attempts).max(attempt);
                view.failing = Some(Failing {
                    partition,
                    offset,
                    attempts: attempt,
                    error,
                });
                self.progress_dirty = true;
            }
            InstanceEventKind::Report(InstanceReport::DeadLettered {
                topic,
                partition,
                offset,
                attempts,
                dead_letter_topic,
            }) => {
                view.failing = None;
                view.dead_lettered += 1;
                *self
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
            }
            InstanceEventKind::Report(InstanceReport::MaxPollExceeded { message }) => {
                *self
                    .history
                    .poll_timeouts
                    .entry(view.group.clone())
                    .or_default() += 1;
                view.problem = Some(InstanceProblem { message, at: now });
                self.timeline(
                    &view,
                    TimelineKind::PollTimeout {
                        max_poll_interval_ms: view.settings.max_poll_interval_ms,
                    },
                    view.partitions.clone(),
                    now,
                );
                self.progress_dirty = true;
            }
            InstanceEventKind::Report(InstanceReport::Crashing { processed }) => {
                let _ = self.events.send(ServerEvent::Notice(Notice::info(
                    format!("Instance {} crashes now", view.name),
                    format!(
                        "It processed {processed} message(s), as \"crash after\" asked, and kills itself with SIGKILL: no commit, no LeaveGroup."
                    ),
                )));
                return;
            }
            InstanceEventKind::Report(InstanceReport::Joining { pid }) => {
                debug!(id = ?view.id, pid, "instance joining");
                if view.state == InstanceState::Starting {
                    view.state = InstanceState::Joining;
                }
            }
            // The instance's own side of a rebalance: its state and card. The group's side
            // (who owns what, the timeline) comes from the broker, as for every member.
            InstanceEventKind::Report(InstanceReport::Assigned { partitions }) => {
                if matches!(view.state, InstanceState::Starting | InstanceState::Joining) {
                    view.state = InstanceState::Running;
                }
                view.problem = None;
                if let Some(id) = &view.settings.static_id {
                    let generation = self.view.group(&view.group).and_then(|g| g.generation);
                    self.history
                        .static_rejoined(&view.group, id, &partitions, generation);
                }
                for tp in partitions {
                    if !view.partitions.contains(&tp) {
                        view.partitions.push(tp);
                    }
                }
                view.partitions.sort();
                self.progress_dirty = true;
            }
            InstanceEventKind::Report(InstanceReport::Revoked { partitions }) => {
                // What the consumer's own callback gave up: everything under an eager assignor,
                // only what moves under cooperative-sticky. Drawn on the timeline, and counted
                // for the assignor checks, unless the instance is leaving anyway.
                if view.is_alive() && !matches!(view.state, InstanceState::Stopping { .. }) {
                    self.history.record_revocation(
                        &view.group,
                        partitions.len(),
                        view.partitions.len(),
                    );
                    self.timeline(&view, TimelineKind::Released, partitions.clone(), now);
                } else if let Some(id) = &view.settings.static_id {
                    // A static member closing gives up what it held here, before it exits.
                    let generation = self.view.group(&view.group).and_then(|g| g.generation);
                    self.history
                        .static_left(&view.group, id, view.partitions.clone(), generation);
                }
                view.partitions.retain(|tp| !partitions.contains(tp));
                self.progress_dirty = true;
            }
            // A commit that works means the client reaches its coordinator again.
            InstanceEventKind::Report(InstanceReport::Committed { .. }) => {
                if view.problem.take().is_none() {
                    return;
                }
            }
            InstanceEventKind::Report(InstanceReport::Leaving) => {
                if !matches!(view.state, InstanceState::Stopping { .. }) {
                    view.state = InstanceState::Stopping { since: now };
                }
            }
            InstanceEventKind::Report(InstanceReport::Error { message, fatal }) => {
                // The card shows the latest error; a client that repeats one is shown again at
                // most every INSTANCE_PROBLEM_GAP_MS.
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
                return;
            }
            // Redis and RabbitMQ reports, handled by `on_stream_report` and `on_queue_report` above.
            InstanceEventKind::Report(
                InstanceReport::Reading { .. }
                | InstanceReport::Entry(_)
                | InstanceReport::EntryProcessed { .. }
                | InstanceReport::Acked { .. }
                | InstanceReport::EntryFailed { .. }
                | InstanceReport::EntryDeadLettered { .. }
                | InstanceReport::Consuming { .. }
                | InstanceReport::Delivery(_)
                | InstanceReport::DeliveryProcessed { .. }
                | InstanceReport::DeliveryRejected { .. },
            ) => return,
            InstanceEventKind::Exited(reason) => {
                self.on_exit(view, reason, now);
                self.forget_old_instances();
                return;
            }
        }
        self.emit(ServerEvent::Instance(Box::new(view)));
    }

    /// Counts one more message (entry, delivery) an instance reported receiving at `at_us`, in
    /// the next batch, and shows it if this interval has room for it.
    fn take_message(
        &mut self,
        id: InstanceId,
        at_us: EpochMicros,
        message: impl FnOnce() -> MessageView,
    ) {
        match self.batch.received.iter_mut().find(|(i, _)| *i == id) {
            Some((_, count)) => *count += 1,
            None => self.batch.received.push((id, 1)),
        }
        ReportedSpan::include(&mut self.batch.reported_us, at_us);
        if self.sampled < SAMPLE_PER_FLUSH {
            self.sampled += 1;
            self.batch.sample.push(message());
        }
        self.progress_dirty = true;
        self.batch_soon();
    }

    /// Counts one more message processed by an instance, in the next batch.
    fn count_processed(&mut self, id: InstanceId) {
        match self.batch.processed.iter_mut().find(|(i, _)| *i == id) {
            Some((_, count)) => *count += 1,
            None => self.batch.processed.push((id, 1)),
        }
        self.batch_soon();
    }

    /// Makes the batch due: now, unless the pace says to wait.
    fn batch_soon(&mut self) {
        if self.batch_due.is_none() {
            self.batch_due = Some(self.batch_pace.leaves_at(tokio::time::Instant::now()));
        }
    }

    /// Sends the consumed messages counted since the last batch.
    fn send_batch(&mut self) {
        self.batch_due = None;
        if !self.batch.received.is_empty() || !self.batch.processed.is_empty() {
            self.batch_pace.sent(tokio::time::Instant::now());
            let batch = std::mem::take(&mut self.batch);
            self.emit(ServerEvent::Messages(batch));
        }
    }

    fn on_exit(&mut self, mut view: InstanceView, reason: ExitReason, now: EpochMillis) {
        self.last_instance_notice.remove(&view.id);
        let held = std::mem::take(&mut view.partitions);
        if let Some(id) = &view.settings.static_id {
            let generation = self.view.group(&view.group).and_then(|g| g.generation);
            self.history
                .static_left(&view.group, id, held.clone(), generation);
        }
        view.busy = None;
        view.queue = None;
        let (state, kind) = match reason {
            ExitReason::Stopped => (InstanceState::Stopped { at: now }, TimelineKind::Stopped),
            ExitReason::Crashed => {
                *self.history.crashed.entry(view.group.clone()).or_default() += 1;
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

    /// Reads a group's membership from the embedded broker, if it is one of this lab's.
    /// Reads the embedded broker's latest observation of a group; `decided_at_us` is when the
    /// coordinator call that changed it came (0: not known).
    fn observe_group(&mut self, group: &str, decided_at_us: EpochMicros) {
        if !self.is_kafka() || !self.groups.contains(group) {
            return;
        }
        if let Some(watch) = &self.deps.groups {
            let observation = watch.latest(group);
            self.on_membership(&observation, decided_at_us);
        }
    }

    fn observe_all_groups(&mut self) {
        let groups: Vec<String> = self.groups.iter().cloned().collect();
        for group in groups {
            self.observe_group(&group, 0);
        }
    }

    /// Explains to the lab's pages why the broker refused one of its consumers.
    fn on_refusal(&mut self, refusal: Refusal) {
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
    fn on_membership(&mut self, observation: &GroupObservation, decided_at_us: EpochMicros) {
        let now = now_ms();
        let changes = self
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
                        self.history.rebalanced_at.insert(group.name.clone(), now);
                    }
                    for member in group.members.iter().filter(|m| m.is_external()) {
                        self.history
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
                    if crashed && handover.departure == grouplab_protocol::Departure::Crash {
                        self.crash_work_moved(handover.taken_at);
                    }
                    self.history.handovers.push(handover);
                }
            }
        }
        self.progress_dirty = true;
    }

    fn timeline(
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
        }));
    }

    /// A slot for one learner command that talks to the broker; a lab with
    /// [`MAX_COMMANDS_IN_FLIGHT`] of them still running is busy, rather than queueing without end.
    fn command_permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Notice> {
        Arc::clone(&self.commands_in_flight)
            .try_acquire_owned()
            .map_err(|_| {
                Notice::info(
                    "The lab is busy",
                    format!(
                        "{MAX_COMMANDS_IN_FLIGHT} of this lab's requests to the broker are still running. Try again in a moment."
                    ),
                )
            })
    }

    /// Whether to poll the broker: yes while a page is open, and for [`UNWATCHED_POLL`] after
    /// the last one closed; a lab nobody watches stops polling until the next page subscribes.
    fn watched(&mut self) -> bool {
        if self.events.receiver_count() > 0 {
            self.unwatched_since = None;
            return true;
        }
        let since = *self
            .unwatched_since
            .get_or_insert_with(tokio::time::Instant::now);
        since.elapsed() < UNWATCHED_POLL
    }

    fn run_outcome(&self, work: impl Future<Output = Outcome> + Send + 'static) {
        let outcomes = self.outcomes.clone();
        self.deps.tasks.spawn(async move {
            let _ = outcomes.send(work.await).await;
        });
    }

    fn start_poll(&mut self) {
        if self.polling {
            return;
        }
        if self.is_redis() {
            self.start_stream_poll();
            return;
        }
        if !self.is_kafka() {
            self.start_queue_poll();
            return;
        }
        self.polling = true;
        let cluster = self.deps.cluster.clone();
        let topics: Vec<String> = self.topics.iter().cloned().collect();
        let groups: Vec<String> = self.groups.iter().cloned().collect();
        let generation = self.generation;
        let describe = self.deps.groups.is_none();
        self.run_outcome(async move {
            let result = cluster.poll_lab(&topics, &groups, describe).await;
            Outcome::Polled { generation, result }
        });
    }

    fn on_outcome(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Polled { generation, result } => {
                self.polling = false;
                if generation == self.generation {
                    self.on_polled(result);
                }
            }
            Outcome::TopicCreated {
                topic,
                result,
                reply,
            } => {
                let notice = match result {
                    Ok(()) => {
                        self.topics.insert(topic.clone());
                        if self.created_topics.insert(topic.clone()) {
                            let store = self.deps.progress.clone();
                            let (namespace, lab) =
                                (self.namespace.clone(), self.lab.content.id.clone());
                            let created = topic.clone();
                            self.deps.tasks.spawn(async move {
                                if let Err(err) =
                                    store.record_created_topic(&namespace, &lab, &created).await
                                {
                                    warn!(%err, "a created topic could not be recorded");
                                }
                            });
                        }
                        self.start_poll();
                        Notice::info(
                            format!("Topic `{topic}` created"),
                            "Its partitions appear as lanes on the right.",
                        )
                    }
                    Err(err) => {
                        Notice::error(format!("Topic `{topic}` was not created"), err.to_string())
                    }
                };
                let _ = reply.try_send(ServerEvent::Notice(notice));
            }
            Outcome::Produced {
                topic,
                result,
                reply,
            } => {
                let notice = match result {
                    Ok(produced) => {
                        self.start_poll();
                        self.place_keys(&topic, produced.keys);
                        let mut parts: Vec<_> = produced.landed.into_iter().collect();
                        parts.sort_unstable();
                        let total: u64 = parts.iter().map(|(_, n)| n).sum();
                        if self.is_redis() {
                            Notice::info(
                                format!("Added {total} entr(ies) to `{topic}`"),
                                "XADD gave each a new id at the end of the stream.",
                            )
                        } else if !self.is_kafka() {
                            Notice::info(
                                format!("Published {total} message(s) to `{topic}`"),
                                "RabbitMQ confirmed each; the queue deals them out to its consumers.",
                            )
                        } else {
                            let spread: Vec<String> = parts
                                .iter()
                                .map(|(p, n)| format!("partition {p}: {n}"))
                                .collect();
                            Notice::info(
                                format!("Produced {total} message(s) to `{topic}`"),
                                spread.join(", "),
                            )
                        }
                    }
                    Err(err) => Notice::error(
                        format!("Messages were not produced to `{topic}`"),
                        err.to_string(),
                    ),
                };
                let _ = reply.try_send(ServerEvent::Notice(notice));
            }
            Outcome::ProducedSteadily {
                topic,
                sent,
                result,
                reply,
            } => {
                self.producing = None;
                self.start_poll();
                let notice = match result {
                    Ok(()) => Notice::info(
                        format!("Steady produce to `{topic}` ended"),
                        format!("{sent} message(s) were produced."),
                    ),
                    Err(err) => Notice::error(
                        format!("Steady produce to `{topic}` stopped"),
                        format!("After {sent} message(s): {err}"),
                    ),
                };
                let _ = reply.try_send(ServerEvent::Notice(notice));
            }
            Outcome::PartitionsAdded {
                topic,
                partitions,
                result,
                reply,
            } => {
                let notice = match result {
                    Ok(()) => {
                        self.start_poll();
                        Notice::info(
                            format!("`{topic}` now has {partitions} partitions"),
                            "Consumers see the new partitions when they next refresh the topic's metadata (every 3 s for the page's instances, every 5 minutes by default for Kafka clients), and the group rebalances.",
                        )
                    }
                    Err(ClusterError::Unsupported(_)) if self.deps.broker.is_some() => {
                        Notice::error(
                            format!("Partitions were not added to `{topic}`"),
                            "The embedded broker (nisshi 0.8.1) does not support adding partitions to a topic; Apache Kafka does. Run grouplab against a Kafka cluster (`--bootstrap`, see the README) to try it, or follow the lab's steps for the embedded broker.",
                        )
                    }
                    Err(err) => Notice::error(
                        format!("Partitions were not added to `{topic}`"),
                        err.to_string(),
                    ),
                };
                let _ = reply.try_send(ServerEvent::Notice(notice));
            }
            Outcome::LabBrokerReady(result) => self.on_lab_broker_ready(result),
            Outcome::QueuesPolled { generation, result } => {
                self.polling = false;
                if generation == self.generation {
                    self.on_queues_polled(result);
                }
            }
            Outcome::StreamsPolled { generation, result } => {
                self.polling = false;
                if generation == self.generation {
                    self.on_streams_polled(result);
                }
            }
            Outcome::ResetDone { result, reply } => {
                self.reset = Reset::Idle;
                self.pending_owners.clear();
                self.claims.clear();
                self.generation += 1;
                let fresh = LabSnapshot {
                    progress: self.view.progress.clone(),
                    broker: self.view.broker.clone(),
                    ..LabSnapshot::new(&self.lab.content.id, self.view.broker.clone(), 0)
                };
                self.history = History::default();
                self.lag.clear();
                self.rates.clear();
                self.membership.clear();
                self.batch = MessageBatch::default();
                self.batch_due = None;
                self.produced = 0;
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
                let _ = reply.try_send(ServerEvent::Notice(notice));
                self.start_poll();
            }
        }
    }

    /// Applies a poll; a failed one changes nothing, since the health monitor tells the page
    /// when the broker is down.
    fn on_polled(&mut self, result: Result<Polled, ClusterError>) {
        let Ok(Polled { topics, groups }) = result else {
            return;
        };
        for observation in groups {
            self.on_membership(&observation, 0);
        }
        for (topic, exists) in topics {
            let known = self.view.topic(&topic.name);
            match (exists, known) {
                (false, Some(_)) => self.emit(ServerEvent::TopicRemoved { topic: topic.name }),
                (true, Some(known)) if *known == topic => {}
                (true, _) => {
                    self.emit(ServerEvent::Topic(topic));
                    self.progress_dirty = true;
                }
                (false, None) => {}
            }
        }
        self.sample_lag();
    }

    /// Measures every group's lag on every topic it commits to, and the processing rate of
    /// each running instance, after a poll.
    fn sample_lag(&mut self) {
        let now = now_ms();
        for instance in &self.view.instances {
            let samples = self.rates.entry(instance.id).or_default();
            samples.push_back((now, instance.processed));
            if samples.len() > RATE_SAMPLES {
                samples.pop_front();
            }
        }
        let alive: BTreeSet<InstanceId> = self
            .view
            .instances
            .iter()
            .filter(|i| i.is_alive())
            .map(|i| i.id)
            .collect();
        self.rates.retain(|id, _| alive.contains(id));
        let mut views = Vec::new();
        for group in &self.groups {
            for topic in &self.view.topics {
                let owned = |partition| {
                    self.view
                        .owner(group, &TopicPartition::new(&topic.name, partition))
                        .is_some_and(|m| self.view.is_working(m))
                };
                let Some(mut lag) = self.lag.sample(group, topic, owned, now) else {
                    continue;
                };
                lag.rates = self
                    .view
                    .instances
                    .iter()
                    .filter(|i| i.group == *group && i.topic == topic.name && i.is_alive())
                    .filter_map(|i| {
                        let samples = self.rates.get(&i.id)?;
                        let (first, last) = (samples.front()?, samples.back()?);
                        let ms = last.0.saturating_sub(first.0);
                        (ms > 0).then(|| (i.id, (last.1 - first.1) as f64 * 1000.0 / ms as f64))
                    })
                    .collect();
                views.push(lag);
            }
        }
        for lag in views {
            // Only a change of lag or status can change a check's verdict; the chart moves on
            // every poll and needs no re-evaluation.
            let known = self
                .view
                .lag
                .iter()
                .find(|l| l.group == lag.group && l.topic == lag.topic);
            if known.map(|l| &l.partitions) != Some(&lag.partitions) {
                self.progress_dirty = true;
            }
            self.emit(ServerEvent::Lag(lag));
        }
    }

    fn flush(&mut self) {
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
    }

    /// Adds where keys landed to the view's key list, for the keys it has room for.
    fn place_keys(&mut self, topic: &str, keys: std::collections::BTreeMap<String, Vec<i32>>) {
        let mut changed = Vec::new();
        for (key, partitions) in keys {
            let known = self
                .view
                .keys
                .iter()
                .find(|k| k.topic == topic && k.key == key);
            let mut all = known.map(|k| k.partitions.clone()).unwrap_or_default();
            for p in partitions {
                if !all.contains(&p) {
                    all.push(p);
                }
            }
            all.sort_unstable();
            if known.map(|k| &k.partitions) != Some(&all) {
                changed.push(KeyPlacement {
                    topic: topic.to_owned(),
                    key,
                    partitions: all,
                });
            }
        }
        if !changed.is_empty() {
            self.emit(ServerEvent::Keys {
                placements: changed,
            });
        }
    }

    /// Sends every ledger that changed: one per group and topic its page instances touched.
    fn update_ledgers(&mut self) {
        let mut changed = Vec::new();
        for group in &self.groups {
            for topic in &self.view.topics {
                let Some(ledger) = crate::ledger::ledger(&self.history, group, topic) else {
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

    /// Checks steps in order: a step is checked once every step before it has passed, and stays passed.
    fn evaluate_progress(&mut self) {
        let mut progress = self.view.progress.clone();
        let now = now_ms();
        let mut newly_passed = Vec::new();
        let mut blocked = false;
        for (index, checks) in self.lab.checks.iter().enumerate() {
            let Some(status) = progress.steps.get_mut(index) else {
                break;
            };
            if status.passed_at.is_some() {
                continue;
            }
            if blocked {
                status.detail.clear();
                continue;
            }
            self.history.now = now;
            let verdicts: Vec<_> = checks
                .iter()
                .map(|c| evaluate(c, &self.view, &self.history))
                .collect();
            if verdicts.iter().all(|v| v.passed) {
                status.passed_at = Some(now);
                newly_passed.push(index);
            } else {
                blocked = true;
            }
            status.detail = verdicts
                .iter()
                .map(|v| v.detail.as_str())
                .collect::<Vec<_>>()
                .join(" ");
        }
        if progress != self.view.progress {
            for step in newly_passed {
                let store = self.deps.progress.clone();
                let (namespace, lab) = (self.namespace.clone(), self.lab.content.id.clone());
                self.deps.tasks.spawn(async move {
                    if let Err(err) = store.record_passed(&namespace, &lab, step, now).await {
                        warn!(%err, "a passed step could not be saved");
                    }
                });
            }
            self.emit(ServerEvent::Progress(progress));
        }
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

    fn finish_reset(&mut self) {
        let Reset::WaitingForExits(reply) = std::mem::replace(&mut self.reset, Reset::Deleting)
        else {
            return;
        };
        let broker = self.lab_broker();
        let (topics, groups) = self.resettable();
        let store = self.deps.progress.clone();
        let (namespace, lab) = (self.namespace.clone(), self.lab.content.id.clone());
        self.run_outcome(async move {
            let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
            let group_refs: Vec<&str> = groups.iter().map(String::as_str).collect();
            let result = match broker {
                Ok(broker) => broker.delete(&topic_refs, &group_refs).await,
                Err(_) => Err(ClusterError::Refused(
                    "The lab's broker is not running, so there was nothing to delete.".to_owned(),
                )),
            };
            if result.is_ok()
                && let Err(err) = store.forget_created_topics(&namespace, &lab).await
            {
                warn!(%err, "the deleted topics could not be forgotten");
            }
            Outcome::ResetDone { result, reply }
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

/// The palette index for a name: A is 0, B is 1, and so on, so a name keeps its colour.
fn name_colour(name: &str) -> u8 {
    name.bytes().next().map_or(0, |b| b.saturating_sub(b'A'))
}

pub fn now_ms() -> EpochMillis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as EpochMillis)
}

/// The current time in microseconds since the Unix epoch, the clock instances stamp reports with.
pub fn now_us() -> EpochMicros {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as EpochMicros)
}

/// When message batches may leave: a token bucket of [`BATCH_BURST`] batches refilled one per
/// [`BATCH_PACE`], kept as one instant (the generic cell rate algorithm): `theoretical` is when
/// the bucket would be full again if nothing more were sent.
#[derive(Clone, Copy, Debug)]
struct Pace {
    theoretical: tokio::time::Instant,
}

impl Pace {
    fn new(now: tokio::time::Instant) -> Self {
        Self { theoretical: now }
    }

    /// The earliest a batch that is ready at `now` may leave.
    fn leaves_at(self, now: tokio::time::Instant) -> tokio::time::Instant {
        let tolerance = BATCH_PACE * (BATCH_BURST - 1);
        self.theoretical
            .checked_sub(tolerance)
            .map_or(now, |earliest| earliest.max(now))
    }

    /// Notes a batch sent at `now`.
    fn sent(&mut self, now: tokio::time::Instant) {
        self.theoretical = self.theoretical.max(now) + BATCH_PACE;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_batches_leaves_at_once_and_a_flood_is_paced() {
        let start = tokio::time::Instant::now();
        let mut pace = Pace::new(start);
        for _ in 0..BATCH_BURST {
            assert_eq!(pace.leaves_at(start), start);
            pace.sent(start);
        }
        assert_eq!(pace.leaves_at(start), start + BATCH_PACE);

        // A flood: each batch one pace after the one before.
        let mut at = start;
        for _ in 0..100 {
            at = pace.leaves_at(at);
            pace.sent(at);
        }
        assert_eq!(at, start + BATCH_PACE * 100);
        assert_eq!(pace.leaves_at(at), at + BATCH_PACE);

        // A quiet spell as long as the burst refills it.
        let later = at + BATCH_PACE * BATCH_BURST;
        for _ in 0..BATCH_BURST {
            assert_eq!(pace.leaves_at(later), later);
            pace.sent(later);
        }
        assert_eq!(pace.leaves_at(later), later + BATCH_PACE);
    }
}
