//! The learner's own consumers: Lab 04's snippet files, run exactly as the page shows them, with
//! the clients the test command installs (`scripts/setup.sh --tests`): a Python virtual
//! environment with confluent-kafka and aiokafka, KafkaJS from npm, Debian's `kcat`, and the Rust
//! example built from the lab's file.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

use crate::{poll_until, workspace_root};

/// One of Lab 04's consumer snippets, or another lab's solution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Client {
    /// `starter.py`, confluent-kafka, before the learner fills in the TODOs.
    PythonStarter,
    /// `solution.py`, confluent-kafka.
    Python,
    /// `consumer_aiokafka.py`.
    Aiokafka,
    /// `consumer_kafkajs.js`.
    Kafkajs,
    /// `consumer_rdkafka.rs`, built as the `lab04-rdkafka` example.
    Rust,
    /// `consumer_kcat.sh`, Debian's kcat (librdkafka 2.0.2).
    Kcat,
    /// Another lab's `solution.py` (confluent-kafka), with an argument after the bootstrap
    /// address if it takes one; `client_id` is the one the file sets.
    Solution {
        lab: &'static str,
        arg: Option<&'static str>,
        client_id: &'static str,
    },
    /// Another lab's `starter.py`, the same way.
    Starter {
        lab: &'static str,
        arg: Option<&'static str>,
        client_id: &'static str,
    },
    /// Any Python file of a lab, run with the broker's address (for Redis, its URL).
    Script {
        lab: &'static str,
        file: &'static str,
    },
}

impl Client {
    pub const ALL: [Client; 6] = [
        Self::PythonStarter,
        Self::Python,
        Self::Aiokafka,
        Self::Kafkajs,
        Self::Rust,
        Self::Kcat,
    ];

    /// The `client.id` the snippet sets, which the page shows.
    pub fn client_id(self) -> &'static str {
        match self {
            Self::PythonStarter => "lab04-starter",
            Self::Python => "lab04-python",
            Self::Aiokafka => "lab04-aiokafka",
            Self::Kafkajs => "lab04-kafkajs",
            Self::Rust => "lab04-rust",
            Self::Kcat => "lab04-kcat",
            Self::Solution { client_id, .. } | Self::Starter { client_id, .. } => client_id,
            Self::Script { file, .. } => file,
        }
    }

    fn command(self, bootstrap: &str) -> anyhow::Result<Command> {
        let root = workspace_root();
        let lab = root.join("labs").join("04-consumer-groups");
        let clients = root.join("end2end").join("clients");
        let python = clients.join(".venv").join("bin").join("python");
        let mut command = match self {
            Self::PythonStarter | Self::Python | Self::Aiokafka => {
                let file = match self {
                    Self::PythonStarter => "starter.py",
                    Self::Python => "solution.py",
                    _ => "consumer_aiokafka.py",
                };
                let mut command = learner_process(need(&python)?);
                command.arg("-u").arg(lab.join(file));
                command
            }
            Self::Kafkajs => {
                need(&clients.join("node_modules").join("kafkajs"))?;
                let mut command = learner_process("node");
                command
                    .arg(lab.join("consumer_kafkajs.js"))
                    .env("NODE_PATH", clients.join("node_modules"));
                command
            }
            Self::Rust => learner_process(need(&rust_example()?)?),
            Self::Kcat => {
                need(Path::new("/usr/bin/kcat"))?;
                let mut command = learner_process("sh");
                command.arg(lab.join("consumer_kcat.sh"));
                command
            }
            Self::Script { lab, file } => {
                let mut command = learner_process(need(&python)?);
                command
                    .arg("-u")
                    .arg(root.join("labs").join(lab).join(file))
                    .arg(bootstrap);
                return Ok(command);
            }
            Self::Solution { lab, arg, .. } | Self::Starter { lab, arg, .. } => {
                let file = match self {
                    Self::Starter { .. } => "starter.py",
                    _ => "solution.py",
                };
                let mut command = learner_process(need(&python)?);
                command
                    .arg("-u")
                    .arg(root.join("labs").join(lab).join(file))
                    .arg(bootstrap);
                command.args(arg);
                return Ok(command);
            }
        };
        command.arg(bootstrap);
        Ok(command)
    }
}

fn need(path: &Path) -> anyhow::Result<&Path> {
    if path.exists() {
        Ok(path)
    } else {
        bail!(
            "{} is missing: run `scripts/setup.sh --tests` (the test command does) to install the test clients",
            path.display()
        )
    }
}

/// The Rust snippet, built by `cargo test` as an example next to this test's executable.
fn rust_example() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join("examples").join("lab04-rdkafka"))
        .find(|candidate| candidate.is_file())
        .context("the lab04-rdkafka example is not built: run `cargo test -p grouplab-end2end`")
}

/// A learner's program, started as from a terminal: with Ctrl-C (SIGINT) and SIGQUIT at their
/// defaults. A test command started in the background by a non-interactive shell has them
/// ignored, and that would pass to the learner's process: Python then never stops on Ctrl-C.
fn learner_process(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new("env");
    command.arg("--default-signal=INT,QUIT").arg(program);
    command
}

/// A running snippet; killed when dropped.
pub struct ExternalConsumer {
    pub client: Client,
    child: Child,
    log: PathBuf,
}

impl ExternalConsumer {
    /// Starts `client` against `bootstrap`, its output in a file under `logs`.
    pub fn start(client: Client, bootstrap: &str, logs: &Path) -> anyhow::Result<Self> {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let log = logs.join(format!("{}-{n}.log", client.client_id()));
        let out = std::fs::File::create(&log)?;
        let child = client
            .command(bootstrap)?
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("could not start the {client:?} consumer"))?;
        Ok(Self { client, child, log })
    }

    pub fn pid(&self) -> i32 {
        self.child.id().map_or(0, |pid| pid as i32)
    }

    /// Ctrl-C: the snippet closes its consumer, which commits and sends LeaveGroup.
    pub fn interrupt(&self) -> anyhow::Result<()> {
        self.signal(nix::sys::signal::Signal::SIGINT)
    }

    /// `kill -9`: the consumer says nothing; its group notices after the session timeout.
    pub fn kill(&self) -> anyhow::Result<()> {
        self.signal(nix::sys::signal::Signal::SIGKILL)
    }

    fn signal(&self, signal: nix::sys::signal::Signal) -> anyhow::Result<()> {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal)?;
        Ok(())
    }

    /// Waits for the process to exit.
    pub async fn wait_exit(&mut self, deadline: Duration) -> anyhow::Result<()> {
        let child = &mut self.child;
        poll_until(&format!("{:?} to exit", self.client), deadline, || {
            let exited = child.try_wait().ok().flatten().is_some();
            async move { exited.then_some(()) }
        })
        .await
    }

    /// What the snippet printed, for a failing test's message.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// One member of a group as an admin client describes it: its client id, its host, and the
/// partitions assigned to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DescribedMember {
    pub client_id: String,
    pub host: String,
    pub partitions: Vec<i32>,
}

/// How confluent-kafka's `AdminClient.describe_consumer_groups` (librdkafka's
/// `DescribeConsumerGroups`, the call admin tools make) describes `group`: its state and its
/// members.
pub async fn admin_describe(
    bootstrap: &str,
    group: &str,
) -> anyhow::Result<(String, Vec<DescribedMember>)> {
    const SCRIPT: &str = r#"
import json, sys
from confluent_kafka.admin import AdminClient
admin = AdminClient({"bootstrap.servers": sys.argv[1]})
described = admin.describe_consumer_groups([sys.argv[2]])[sys.argv[2]].result(timeout=10)
print(json.dumps({
    "state": described.state.name,
    "members": [{
        "client_id": m.client_id,
        "host": m.host,
        "partitions": sorted(tp.partition for tp in m.assignment.topic_partitions),
    } for m in described.members],
}))
"#;
    let python = workspace_root()
        .join("end2end")
        .join("clients")
        .join(".venv")
        .join("bin")
        .join("python");
    let output = Command::new(need(&python)?)
        .arg("-c")
        .arg(SCRIPT)
        .arg(bootstrap)
        .arg(group)
        .output()
        .await
        .context("could not run the admin client")?;
    if !output.status.success() {
        bail!(
            "the admin client failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("the admin client printed {:?}", output.stdout))?;
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    let members = answer["members"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| DescribedMember {
            client_id: text(&m["client_id"]),
            host: text(&m["host"]),
            partitions: m["partitions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p.as_i64().and_then(|p| i32::try_from(p).ok()))
                .collect(),
        })
        .collect();
    Ok((text(&answer["state"]), members))
}
