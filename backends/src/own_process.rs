//! What the Redis and RabbitMQ labs share when grouplab runs their broker itself: the broker is
//! started by the first lab that needs it (Kafka labs never wait for it), as children that never
//! outlive grouplab, and it is ready once it answers; a deadline guards every call to it.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::sync::OnceCell;
use tracing::warn;

use super::CallError;

/// The program itself if it is a path to a file, or the first file of that name on the PATH.
pub fn find_program(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return program.is_file().then(|| program.to_owned());
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// A loopback port nobody listens on now.
pub fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

/// `call`, or "the broker at `url` did not answer" once `timeout` has passed.
pub async fn within<T>(
    timeout: Duration,
    url: &str,
    call: impl Future<Output = T>,
) -> Result<T, CallError> {
    tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| CallError::Unreachable {
            address: url.to_owned(),
        })
}

/// A broker that the first lab needing it starts, for the whole server: started once, and what
/// came of it kept, so that a broker that could not start says why to every lab that asks.
pub struct StartedOnce<R> {
    /// Which broker, for the log.
    name: &'static str,
    ready: OnceCell<Result<R, String>>,
}

impl<R> StartedOnce<R> {
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            ready: OnceCell::new(),
        }
    }

    /// The broker, started by `start` if nobody has started it yet; callers meanwhile wait.
    pub async fn get(
        &self,
        start: impl Future<Output = Result<R, String>>,
    ) -> Result<&R, CallError> {
        let ready = self
            .ready
            .get_or_init(|| async {
                start.await.map_err(|err| {
                    warn!(%err, "{} is not available", self.name);
                    err
                })
            })
            .await;
        ready
            .as_ref()
            .map_err(|err| CallError::Unavailable(err.clone()))
    }

    /// The broker, if it was started and came up.
    pub fn started(&self) -> Option<&R> {
        self.ready.get()?.as_ref().ok()
    }
}

/// The processes grouplab started for a broker. They die with grouplab however it ends: killed
/// by [`Children::kill`] at shutdown, when dropped (`kill_on_drop`), and by the kernel if
/// grouplab itself is killed (`setpriv --pdeathsig KILL`, see [`spawn_child`]).
#[derive(Default)]
pub struct Children {
    /// A std Mutex: it is only taken to hand the processes over to [`Children::kill`].
    processes: std::sync::Mutex<Vec<Child>>,
}

impl Children {
    pub fn new(processes: Vec<Child>) -> Self {
        Self {
            processes: std::sync::Mutex::new(processes),
        }
    }

    /// How the last process started (the broker itself, after its helpers) ended, if it has.
    pub fn last_ended(&self) -> Option<ExitStatus> {
        let mut processes = self
            .processes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        processes.last_mut()?.try_wait().ok()?
    }

    /// Kills every process: they keep nothing worth saving.
    pub async fn kill(&self) {
        let processes = std::mem::take(
            &mut *self
                .processes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for mut process in processes {
            let _ = process.kill().await;
        }
    }
}

/// Starts `program` as grouplab's own child, set up by `configure` (arguments, environment,
/// standard streams), under `setpriv --pdeathsig KILL` so that the kernel kills it if grouplab
/// dies without cleaning up, and killed when its handle is dropped.
pub fn spawn_child(
    program: &Path,
    configure: impl FnOnce(&mut Command) -> &mut Command,
) -> std::io::Result<Child> {
    let mut command = Command::new("setpriv");
    command.args(["--pdeathsig", "KILL", "--"]).arg(program);
    configure(&mut command);
    command.kill_on_drop(true).spawn()
}

/// Why a broker grouplab started never answered.
pub enum NeverAnswered<E> {
    /// Its process ended first.
    Exited(ExitStatus),
    /// It did not answer in time; the last attempt's error.
    TimedOut(E),
}

/// Asks `answers` every `retry` until it succeeds, giving up when `process` ends or `timeout`
/// has passed.
pub async fn wait_until_answers<T, E: Display, F: Future<Output = Result<T, E>>>(
    process: &mut Child,
    timeout: Duration,
    retry: Duration,
    mut answers: impl FnMut() -> F,
) -> Result<T, NeverAnswered<E>> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = process.try_wait() {
            return Err(NeverAnswered::Exited(status));
        }
        match answers().await {
            Ok(answer) => return Ok(answer),
            Err(err) if tokio::time::Instant::now() >= deadline => {
                return Err(NeverAnswered::TimedOut(err));
            }
            Err(_) => tokio::time::sleep(retry).await,
        }
    }
}
