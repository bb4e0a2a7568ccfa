//! Lab sessions: one actor per lab and learner namespace that owns the lab's live view.
//!
//! The session is the only writer of its [`LabSnapshot`]: every change is made by building a
//! [`ServerEvent`], applying it to the snapshot, and broadcasting it, so every page that applies the
//! same events shows the same view. Inputs are learners' commands, the reports of the lab's consumer
//! instances, the broker's view of the lab's groups (pushed by the embedded broker, polled from a
//! named cluster) and a poll of the broker for offsets. Slow broker calls run in tasks of their own
//! and report back with what to do with their result, so the session never waits on the network.
//!
//! Group membership, for page instances and the learner's own consumers alike, comes from the
//! broker through [`Tracker`](grouplab_model::membership::Tracker); instance reports add what only
//! grouplab's own processes can say.
//!
//! This file holds the handles the rest of the server talks to a session through. The session
//! itself is one state type, [`actor::Session`], whose `impl` is spread over files by what the
//! code does:
//!
//! - `actor`: the state, the loop and its one `select!`, emitting events, running broker calls;
//! - `commands`: a learner's command, dispatched to the file that carries it out, where each
//!   command's request and what is done with its result sit together: `topics`, `produce`,
//!   `instances`, `progress`, `reset`, `outage` (the embedded broker down and up, and health);
//! - `reports`: an instance's report, dispatched once to the part that owns it: `kafka`,
//!   `stream` (Redis) or `queue` (RabbitMQ), or handled there when every broker's instances send it;
//! - `groups`: membership from the broker; `poll`: the broker polled for offsets and lag;
//! - `flush`: message batches to the pages (`pace` spaces them), ledgers, and the tick that has
//!   the checkpoints evaluated (`progress`);
//! - `lab_broker`: what Redis and RabbitMQ labs share; `crash`: one crash compared across brokers;
//!   `allowance`: in a class, what one learner's labs may create and produce together.

mod actor;
mod allowance;
mod commands;
mod crash;
mod flush;
mod groups;
mod instances;
mod instructor;
mod kafka;
mod lab_broker;
mod outage;
mod pace;
mod poll;
mod produce;
mod progress;
mod pulse;
mod queue;
mod reports;
mod reset;
mod stream;
mod topics;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use grouplab_protocol::{BrokerHealth, ClientCommand, LabSnapshot, ServerEvent};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::actor::Session;
pub use self::allowance::{Allowance, AllowanceLimits};
pub use self::crash::CrashBook;
pub use self::instructor::{MAX_DEMO_MESSAGES, MAX_MESSAGE_CHARS, MAX_OUTAGE_S};
pub use self::pulse::{LabPulse, Pulse, PulseSender};
use crate::lab::catalog::{Lab, LabCatalog, Reloaded};
use crate::lab::progress::ProgressStore;
use crate::supervisor::SupervisorHandle;
use grouplab_backends::kafka::{Cluster, EmbeddedBroker, GroupWatch};
use grouplab_backends::rabbitmq::Rabbit;
use grouplab_backends::redis::Redis;

/// What every session shares.
pub struct SessionDeps {
    pub cluster: Cluster,
    pub supervisor: SupervisorHandle,
    pub progress: ProgressStore,
    /// The embedded broker, which a page may take down and bring up; `None` on a named cluster.
    pub broker: Option<Arc<EmbeddedBroker>>,
    /// Whether the broker answers, watched for the whole server
    /// ([`grouplab_backends::kafka::health`]).
    pub health: watch::Receiver<BrokerHealth>,
    /// Whether others use this broker too (everyone with a `--public` server's access link, or
    /// a class's learners on a shared cluster): then no page may stop it.
    pub shared: bool,
    /// The embedded broker's groups, pushed as they change; `None` on a named cluster, whose
    /// groups are polled with DescribeGroups instead.
    pub groups: Option<GroupWatch>,
    /// Redis, for Redis Streams labs; it starts when the first of them is opened.
    pub redis: Redis,
    /// RabbitMQ, for RabbitMQ labs; likewise.
    pub rabbit: Rabbit,
    /// The latest crash on each broker, which every lab shows.
    pub crashes: Arc<CrashBook>,
    /// In a class, what the learner's labs may create and produce together.
    pub allowance: Option<Arc<Allowance>>,
    /// In a class, where the learner's labs send their pulses for the instructor's dashboard.
    pub board: Option<PulseSender>,
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
}

/// The sessions of every lab of one namespace (one learner's), started on first use.
pub struct Sessions {
    deps: Arc<SessionDeps>,
    catalog: Arc<LabCatalog>,
    namespace: String,
    /// A std Mutex is fine: it guards a map lookup or insert, never held across an await.
    running: Mutex<HashMap<String, SessionHandle>>,
}

impl Sessions {
    pub fn new(deps: SessionDeps, catalog: Arc<LabCatalog>, namespace: String) -> Self {
        Self {
            deps: Arc::new(deps),
            catalog,
            namespace,
            running: Mutex::new(HashMap::new()),
        }
    }

    pub fn catalog(&self) -> &Arc<LabCatalog> {
        &self.catalog
    }

    pub fn progress(&self) -> &ProgressStore {
        &self.deps.progress
    }

    /// Whose labs these are: the key of their progress rows and of their instances.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Tells a lab's running session that its files were read again.
    pub fn reloaded(&self, lab_id: &str, outcome: &Reloaded) {
        let handle = self
            .running
            .lock()
            .ok()
            .and_then(|running| running.get(lab_id).cloned());
        let Some(handle) = handle else {
            return;
        };
        let request = match outcome {
            Reloaded::Unchanged => return,
            Reloaded::Changed(lab) => Request::Reload {
                lab: Some(Arc::clone(lab)),
                problem: None,
            },
            Reloaded::Broken { problem } => Request::Reload {
                lab: None,
                problem: Some(problem.clone()),
            },
        };
        // A full inbox means the session is busy; the next edit tells it again.
        let _ = handle.requests.try_send(request);
    }

    /// The sessions running now, by lab id.
    pub fn running(&self) -> Vec<(String, SessionHandle)> {
        self.running.lock().map_or_else(
            |_| Vec::new(),
            |running| {
                running
                    .iter()
                    .map(|(lab, handle)| (lab.clone(), handle.clone()))
                    .collect()
            },
        )
    }

    /// The session of a lab if it runs now; none is started.
    pub fn running_session(&self, lab_id: &str) -> Option<SessionHandle> {
        self.running.lock().ok()?.get(lab_id).cloned()
    }

    /// The session of a lab, or `None` if there is no such lab.
    pub fn session(&self, lab_id: &str) -> Option<SessionHandle> {
        let lab = self.catalog.get(lab_id)?;
        let mut running = self.running.lock().ok()?;
        if let Some(handle) = running.get(lab_id) {
            return Some(handle.clone());
        }
        let problem = self.catalog.problem(lab_id);
        let handle = Session::spawn(Arc::clone(&self.deps), lab, problem, self.namespace.clone());
        running.insert(lab_id.to_owned(), handle.clone());
        Some(handle)
    }
}

/// A cloneable way to talk to one session.
#[derive(Clone)]
pub struct SessionHandle {
    requests: mpsc::Sender<Request>,
    /// The instructor's read-only views open on the lab, which its pulse does not count as the
    /// learner's pages.
    observers: Arc<AtomicUsize>,
}

/// Where a session sends what is meant for one page only.
pub type Reply = mpsc::Sender<ServerEvent>;

/// What the rest of the server asks of a session.
enum Request {
    Subscribe {
        reply: oneshot::Sender<(LabSnapshot, broadcast::Receiver<ServerEvent>)>,
    },
    Command {
        command: ClientCommand,
        reply: Reply,
    },
    /// The class's instructor acts on the lab: `Ok` says what was done, `Err` why not.
    Instructor {
        action: grouplab_protocol::class::InstructorAction,
        reply: oneshot::Sender<Result<String, String>>,
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

    /// Carries out an instructor's action on the lab.
    pub async fn instructor(
        &self,
        action: grouplab_protocol::class::InstructorAction,
    ) -> Result<String, String> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request::Instructor { action, reply })
            .await
            .map_err(|_| "their lab has closed".to_owned())?;
        answer
            .await
            .map_err(|_| "their lab closed before it answered".to_owned())?
    }

    /// Counts an instructor's read-only view of the lab while the guard lives.
    pub fn observe(&self) -> ObserverGuard {
        self.observers.fetch_add(1, Ordering::Relaxed);
        ObserverGuard(Arc::clone(&self.observers))
    }

    /// Hands a learner's command to the session; notices for that learner go to `reply`.
    pub async fn command(&self, command: ClientCommand, reply: Reply) -> bool {
        self.requests
            .send(Request::Command { command, reply })
            .await
            .is_ok()
    }
}

/// An instructor's read-only view of a lab, counted until dropped.
pub struct ObserverGuard(Arc<AtomicUsize>);

impl Drop for ObserverGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
