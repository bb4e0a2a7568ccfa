//! The supervisor: the one owner of consumer instance processes.
//!
//! [`Supervisor::spawn`] starts an actor task and returns a [`SupervisorHandle`], a cloneable
//! sender of requests. Each instance gets its own task that owns the [`Child`], reads its
//! reports, and applies stop and crash. What an instance does reaches its lab session as
//! [`InstanceEvent`]s on the channel the session passed when it started the instance; the channel
//! is bounded, so a fast instance is slowed down rather than having reports dropped.
//!
//! Processes cannot outlive the server: each child has its stdin held by its task (closing it asks
//! the instance to stop, and the kernel closes it when the server dies), `kill_on_drop`, and its
//! own `PR_SET_PDEATHSIG`. Each child runs in its own process group so that a Ctrl-C in the
//! server's terminal reaches the server, which stops the instances in order.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use grouplab_protocol::{
    EpochMicros, INSTANCE_CONFIG_VAR, InstanceConfig, InstanceId, InstanceReport, split_report_line,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

/// Limits and locations for consumer instances.
#[derive(Clone, Debug)]
pub struct SupervisorConfig {
    /// The `grouplab-consumer` executable.
    pub program: PathBuf,
    /// The most instances running at once on this server.
    pub max_total: usize,
    /// The most instances running at once for one owner (one learner's lab session).
    pub max_per_owner: usize,
    /// The most instances running at once for one learner, all their labs together.
    pub max_per_learner: usize,
    /// How long a stopping instance may take to leave its group before it is killed.
    pub stop_grace: Duration,
}

/// Whose instance it is: a learner's (their namespace) lab.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub learner: String,
    pub lab: String,
}

impl Owner {
    /// An owner in the server's own namespace (`default`), as tests name one.
    pub fn lab(lab: &str) -> Self {
        Self {
            learner: "default".to_owned(),
            lab: lab.to_owned(),
        }
    }
}

/// Something an instance did, for the session that started it.
#[derive(Debug)]
pub struct InstanceEvent {
    pub id: InstanceId,
    pub kind: InstanceEventKind,
    /// When the instance wrote the report (its own stamp), or when the server saw the exit.
    pub at_us: EpochMicros,
}

#[derive(Debug)]
pub enum InstanceEventKind {
    /// A report the instance wrote.
    Report(InstanceReport),
    /// The process ended; this is always the instance's last event.
    Exited(ExitReason),
}

/// Why a process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitReason {
    /// It was asked to stop and exited cleanly.
    Stopped,
    /// It was killed on purpose by a crash request.
    Crashed,
    /// It ended on its own, or a stop took longer than the grace period.
    Failed { reason: String },
}

/// Why an instance could not be started or controlled.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error(
        "{running} consumer instances are already running in this lab, the most allowed is {limit}. Stop one before starting another."
    )]
    OwnerLimit { running: usize, limit: usize },
    #[error(
        "You already run {running} consumer instances across your labs, the most allowed for one learner is {limit}. Stop one (in this lab or another) before starting another."
    )]
    LearnerLimit { running: usize, limit: usize },
    #[error(
        "{running} consumer instances are already running on this server, the most allowed is {limit}. Stop one before starting another."
    )]
    TotalLimit { running: usize, limit: usize },
    #[error(
        "The consumer program could not be started ({program}): {source}. Build it with `cargo build -p grouplab-consumer`, or name it with --consumer-program."
    )]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("This server never started that instance.")]
    UnknownInstance,
    #[error("The server is shutting down.")]
    ShuttingDown,
}

enum Request {
    Start {
        owner: Owner,
        config: Box<InstanceConfig>,
        events: mpsc::Sender<InstanceEvent>,
        reply: oneshot::Sender<Result<InstanceId, SupervisorError>>,
    },
    Control {
        id: InstanceId,
        control: Control,
        reply: oneshot::Sender<Result<(), SupervisorError>>,
    },
    Finished {
        id: InstanceId,
    },
    /// Stop every instance of one learner (shut out of a class).
    StopLearner {
        learner: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Control {
    Stop,
    Crash,
}

/// A cloneable way to ask the supervisor for things.
#[derive(Clone)]
pub struct SupervisorHandle {
    requests: mpsc::Sender<Request>,
}

impl SupervisorHandle {
    /// Starts an instance for `owner`; its events go to `events`.
    pub async fn start(
        &self,
        owner: Owner,
        config: InstanceConfig,
        events: mpsc::Sender<InstanceEvent>,
    ) -> Result<InstanceId, SupervisorError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Start {
            owner,
            config: Box::new(config),
            events,
            reply,
        })
        .await?;
        answer.await.map_err(|_| SupervisorError::ShuttingDown)?
    }

    /// Asks an instance to leave its group and exit.
    pub async fn stop(&self, id: InstanceId) -> Result<(), SupervisorError> {
        self.control(id, Control::Stop).await
    }

    /// Kills an instance with SIGKILL.
    pub async fn crash(&self, id: InstanceId) -> Result<(), SupervisorError> {
        self.control(id, Control::Crash).await
    }

    /// Stops every instance of `learner`, in all their labs, gracefully.
    pub async fn stop_learner(&self, learner: &str) -> Result<(), SupervisorError> {
        self.send(Request::StopLearner {
            learner: learner.to_owned(),
        })
        .await
    }

    async fn control(&self, id: InstanceId, control: Control) -> Result<(), SupervisorError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Control { id, control, reply }).await?;
        answer.await.map_err(|_| SupervisorError::ShuttingDown)?
    }

    async fn send(&self, request: Request) -> Result<(), SupervisorError> {
        self.requests
            .send(request)
            .await
            .map_err(|_| SupervisorError::ShuttingDown)
    }
}

struct Entry {
    owner: Owner,
    control: mpsc::Sender<Control>,
}

/// The actor that owns every instance.
pub struct Supervisor {
    config: SupervisorConfig,
    instances: HashMap<InstanceId, Entry>,
    next_id: u64,
    requests: mpsc::Sender<Request>,
    tasks: TaskTracker,
}

impl Supervisor {
    /// Starts the supervisor. When `shutdown` is cancelled it stops every instance and its task ends;
    /// await the returned tracker to know all processes are gone.
    pub fn spawn(
        config: SupervisorConfig,
        shutdown: CancellationToken,
    ) -> (SupervisorHandle, TaskTracker) {
        let (requests, inbox) = mpsc::channel(64);
        let tasks = TaskTracker::new();
        let supervisor = Supervisor {
            config,
            instances: HashMap::new(),
            next_id: 1,
            requests: requests.clone(),
            tasks: tasks.clone(),
        };
        tasks.spawn(supervisor.run(inbox, shutdown));
        (SupervisorHandle { requests }, tasks)
    }

    async fn run(mut self, mut inbox: mpsc::Receiver<Request>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                request = inbox.recv() => match request {
                    Some(request) => self.handle(request),
                    None => break,
                },
            }
        }
        info!(
            instances = self.instances.len(),
            "stopping every consumer instance"
        );
        for entry in self.instances.values() {
            let _ = entry.control.try_send(Control::Stop);
        }
        self.tasks.close();
    }

    fn handle(&mut self, request: Request) {
        match request {
            Request::Start {
                owner,
                config,
                events,
                reply,
            } => {
                let result = self.start(owner, *config, events);
                let _ = reply.send(result);
            }
            Request::Control { id, control, reply } => {
                let result = match self.instances.get(&id) {
                    // A full control channel means a stop or crash is already on its way.
                    Some(entry) => {
                        let _ = entry.control.try_send(control);
                        Ok(())
                    }
                    // It has ended, and its session may not have read so yet (a second click on
                    // Stop often lands there): nothing is left to do, and its exit is reported.
                    None if id.0 < self.next_id => Ok(()),
                    None => Err(SupervisorError::UnknownInstance),
                };
                let _ = reply.send(result);
            }
            Request::Finished { id } => {
                self.instances.remove(&id);
            }
            Request::StopLearner { learner } => {
                for entry in self.instances.values() {
                    if entry.owner.learner == learner {
                        // A full control channel means a stop or crash is already on its way.
                        let _ = entry.control.try_send(Control::Stop);
                    }
                }
            }
        }
    }

    fn start(
        &mut self,
        owner: Owner,
        config: InstanceConfig,
        events: mpsc::Sender<InstanceEvent>,
    ) -> Result<InstanceId, SupervisorError> {
        let running = self.instances.len();
        if running >= self.config.max_total {
            return Err(SupervisorError::TotalLimit {
                running,
                limit: self.config.max_total,
            });
        }
        let owned = self.instances.values().filter(|e| e.owner == owner).count();
        if owned >= self.config.max_per_owner {
            return Err(SupervisorError::OwnerLimit {
                running: owned,
                limit: self.config.max_per_owner,
            });
        }
        let learners = self
            .instances
            .values()
            .filter(|e| e.owner.learner == owner.learner)
            .count();
        if learners >= self.config.max_per_learner {
            return Err(SupervisorError::LearnerLimit {
                running: learners,
                limit: self.config.max_per_learner,
            });
        }

        let config_json = serde_json::to_string(&config).expect("instance configs serialize");
        // In the environment, not on the command line: a Redis or RabbitMQ URL carries a
        // learner's password, and `ps` shows command lines to every user of the machine.
        let mut child = Command::new(&self.config.program)
            .env(INSTANCE_CONFIG_VAR, config_json)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0)
            .spawn()
            .map_err(|source| SupervisorError::Spawn {
                program: self.config.program.display().to_string(),
                source,
            })?;

        let id = InstanceId(self.next_id);
        self.next_id += 1;
        let (control, controls) = mpsc::channel(4);
        self.instances.insert(id, Entry { owner, control });
        debug!(?id, pid = child.id(), "started consumer instance");

        let stdin = child.stdin.take().expect("stdin is piped");
        let task = InstanceTask {
            id,
            child,
            stdin: Some(stdin),
            events,
            grace: self.config.stop_grace,
        };
        let finished = self.requests.clone();
        self.tasks.spawn(async move {
            task.run(controls).await;
            let _ = finished.send(Request::Finished { id }).await;
        });
        Ok(id)
    }
}

/// Owns one child process from spawn to exit.
struct InstanceTask {
    id: InstanceId,
    child: Child,
    stdin: Option<ChildStdin>,
    events: mpsc::Sender<InstanceEvent>,
    grace: Duration,
}

/// How many of the last stderr lines are kept to explain a failure.
const STDERR_TAIL: usize = 8;

impl InstanceTask {
    async fn run(mut self, mut controls: mpsc::Receiver<Control>) {
        let stdout = self.child.stdout.take().expect("stdout is piped");
        let stderr = self.child.stderr.take().expect("stderr is piped");
        let reader = tokio::spawn(forward_reports(self.id, stdout, self.events.clone()));
        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL)));
        let stderr_reader = tokio::spawn(keep_stderr_tail(self.id, stderr, Arc::clone(&tail)));

        let mut asked: Option<Control> = None;
        let grace = tokio::time::sleep(Duration::MAX);
        tokio::pin!(grace);
        let status = loop {
            tokio::select! {
                status = self.child.wait() => break status,
                control = controls.recv(), if asked != Some(Control::Crash) => match control {
                    Some(Control::Stop) if asked.is_none() => {
                        asked = Some(Control::Stop);
                        // Closing stdin is the instance's signal to leave its group and exit.
                        self.stdin = None;
                        grace.as_mut().reset(tokio::time::Instant::now() + self.grace);
                    }
                    Some(Control::Stop) => {}
                    Some(Control::Crash) => {
                        asked = Some(Control::Crash);
                        if let Err(err) = self.child.start_kill() {
                            warn!(id = ?self.id, %err, "could not kill consumer instance");
                        }
                    }
                    // The supervisor is gone: the server is shutting down without a stop request.
                    None => {
                        asked = Some(Control::Stop);
                        self.stdin = None;
                        grace.as_mut().reset(tokio::time::Instant::now() + self.grace);
                    }
                },
                () = &mut grace => {
                    warn!(id = ?self.id, "consumer instance did not stop in time; killing it");
                    let _ = self.child.start_kill();
                    grace.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(3600));
                }
            }
        };

        // Every report is delivered before the exit, so the session sees them in order.
        let crashed_itself = reader.await.unwrap_or(false);
        let _ = stderr_reader.await;
        let tail: Vec<String> = tail
            .lock()
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default();
        // "Crash after N" ends in the instance killing itself, a crash like the page's.
        let asked = if crashed_itself && asked.is_none() {
            Some(Control::Crash)
        } else {
            asked
        };
        let reason = exit_reason(asked, status, &tail);
        debug!(id = ?self.id, ?reason, "consumer instance exited");
        let _ = self
            .events
            .send(InstanceEvent {
                id: self.id,
                kind: InstanceEventKind::Exited(reason),
                at_us: grouplab_backends::clock::now_us(),
            })
            .await;
    }
}

fn exit_reason(
    asked: Option<Control>,
    status: std::io::Result<ExitStatus>,
    stderr_tail: &[String],
) -> ExitReason {
    match (asked, status) {
        (Some(Control::Crash), _) => ExitReason::Crashed,
        (Some(Control::Stop), Ok(status)) if status.success() => ExitReason::Stopped,
        (_, Ok(status)) => {
            let how = match status.code() {
                Some(code) => format!("exited with code {code}"),
                None => "was killed by a signal".to_owned(),
            };
            let said = if stderr_tail.is_empty() {
                String::new()
            } else {
                format!(": {}", stderr_tail.join(" / "))
            };
            ExitReason::Failed {
                reason: format!("The instance {how}{said}"),
            }
        }
        (_, Err(err)) => ExitReason::Failed {
            reason: format!("The instance's exit could not be observed: {err}"),
        },
    }
}

async fn forward_reports(
    id: InstanceId,
    stdout: tokio::process::ChildStdout,
    events: mpsc::Sender<InstanceEvent>,
) -> bool {
    let mut crashing = false;
    let mut lines = BufReader::new(stdout).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let (stamp, json) = split_report_line(&line);
        let report = match serde_json::from_str::<InstanceReport>(json) {
            Ok(report) => {
                crashing |= matches!(report, InstanceReport::Crashing { .. });
                report
            }
            Err(err) => InstanceReport::Error {
                message: format!("The instance wrote a line grouplab cannot read ({err}): {line}"),
                fatal: false,
            },
        };
        let event = InstanceEvent {
            id,
            kind: InstanceEventKind::Report(report),
            at_us: stamp.unwrap_or_else(grouplab_backends::clock::now_us),
        };
        // With its session gone the reports have no reader, but stdout is still drained: an
        // instance that cannot write would die before it has left its group.
        if !events.is_closed() {
            let _ = events.send(event).await;
        }
    }
    crashing
}

async fn keep_stderr_tail(
    id: InstanceId,
    stderr: tokio::process::ChildStderr,
    tail: Arc<Mutex<VecDeque<String>>>,
) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        debug!(?id, %line, "consumer instance stderr");
        // A std Mutex is fine: the section is a push and a pop and never crosses an await.
        if let Ok(mut tail) = tail.lock() {
            if tail.len() == STDERR_TAIL {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use grouplab_protocol::ConsumerSettings;

    use super::*;

    fn supervisor(program: &str) -> (SupervisorHandle, CancellationToken) {
        let shutdown = CancellationToken::new();
        let config = SupervisorConfig {
            program: program.into(),
            max_total: 8,
            max_per_owner: 1,
            max_per_learner: 8,
            stop_grace: Duration::from_secs(5),
        };
        let (handle, _tasks) = Supervisor::spawn(config, shutdown.clone());
        (handle, shutdown)
    }

    fn instance_config() -> InstanceConfig {
        InstanceConfig {
            backend: grouplab_protocol::Backend::Kafka,
            bootstrap_servers: "127.0.0.1:9".into(),
            group: "g".into(),
            topics: vec!["t".into()],
            client_id: "c".into(),
            settings: ConsumerSettings::default(),
        }
    }

    /// A second Stop (or a Crash) can reach the supervisor after the process has ended but before
    /// its session has read the exit: that is not a failure to show the learner.
    #[tokio::test]
    async fn controlling_an_instance_that_has_already_ended_is_not_an_error() {
        // `true` ends at once, as an instance that failed to start would.
        let (handle, shutdown) = supervisor("true");
        let (events, mut reports) = mpsc::channel(16);
        let ended = handle
            .start(Owner::lab("lab"), instance_config(), events.clone())
            .await
            .expect("`true` starts");
        let exited = loop {
            let event = reports.recv().await.expect("an exit is always reported");
            if let InstanceEventKind::Exited(reason) = event.kind {
                break reason;
            }
        };
        assert!(matches!(exited, ExitReason::Failed { .. }), "{exited:?}");

        // One instance per owner: a second starts only once the supervisor has forgotten the first.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let second = loop {
            match handle
                .start(Owner::lab("lab"), instance_config(), events.clone())
                .await
            {
                Ok(id) => break id,
                Err(SupervisorError::OwnerLimit { .. }) => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "the ended instance was never forgotten"
                    );
                    tokio::task::yield_now().await;
                }
                Err(err) => panic!("{err}"),
            }
        };
        assert_ne!(second, ended);

        handle
            .stop(ended)
            .await
            .expect("stopping an ended instance");
        handle
            .crash(ended)
            .await
            .expect("crashing an ended instance");
        assert!(matches!(
            handle.stop(InstanceId(9_999)).await,
            Err(SupervisorError::UnknownInstance)
        ));
        shutdown.cancel();
    }
}
