//! `grouplab-consumer`: one consumer instance, a real rdkafka group consumer in its own process.
//!
//! The server starts it with one argument, an [`InstanceConfig`] as JSON, and reads
//! [`InstanceReport`]s from its stdout, one JSON line each.
//!
//! Theory of operation:
//! - The main thread subscribes and polls. librdkafka runs the rebalance and commit callbacks
//!   inside `poll`, on this same thread, so reports are written in the order things happened.
//! - A second thread reads stdin. When stdin closes, the instance stops gracefully: it reports
//!   [`InstanceReport::Leaving`], and dropping the consumer commits and sends LeaveGroup.
//!   The server closes stdin to stop an instance, and the kernel closes it when the server dies,
//!   so an instance never outlives its server.
//! - A crash is the server sending SIGKILL: nothing here runs, and the group learns of it only
//!   when the session times out. `PR_SET_PDEATHSIG` is the backstop should the stdin thread be stuck.

use std::io::{self, Read, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use grouplab_protocol::{
    CommittedOffset, ConsumedMessage, InstanceConfig, InstanceReport, MAX_REPORTED_VALUE,
    TopicPartition,
};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

/// How long one poll waits before the loop checks whether it should stop.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

fn main() -> ExitCode {
    let Some(config) = std::env::args().nth(1) else {
        eprintln!("usage: grouplab-consumer '<instance config as JSON>'");
        return ExitCode::from(2);
    };
    let config: InstanceConfig = match serde_json::from_str(&config) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("grouplab-consumer: the instance config is not valid: {err}");
            return ExitCode::from(2);
        }
    };

    die_with_parent();
    let stop = Arc::new(AtomicBool::new(false));
    watch_stdin(Arc::clone(&stop));

    match run(&config, &stop) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            report(&InstanceReport::Error {
                message: describe(&err),
                fatal: true,
            });
            ExitCode::FAILURE
        }
    }
}

fn run(config: &InstanceConfig, stop: &AtomicBool) -> KafkaResult<()> {
    let settings = &config.settings;
    let consumer: BaseConsumer<Reporter> = ClientConfig::new()
        .set("bootstrap.servers", &config.bootstrap_servers)
        .set("group.id", &config.group)
        .set("client.id", &config.client_id)
        .set(
            "session.timeout.ms",
            settings.session_timeout_ms.to_string(),
        )
        .set(
            "heartbeat.interval.ms",
            settings.heartbeat_interval_ms.to_string(),
        )
        .set("enable.auto.commit", settings.auto_commit.to_string())
        .set(
            "auto.commit.interval.ms",
            settings.auto_commit_interval_ms.to_string(),
        )
        .set(
            "partition.assignment.strategy",
            settings.assignor.librdkafka_name(),
        )
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .create_with_context(Reporter)?;

    let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    report(&InstanceReport::Joining {
        pid: std::process::id(),
    });

    while !stop.load(Ordering::Relaxed) {
        match consumer.poll(POLL_INTERVAL) {
            None => {}
            Some(Ok(message)) => {
                report(&InstanceReport::Message(ConsumedMessage {
                    topic: message.topic().to_owned(),
                    partition: message.partition(),
                    offset: message.offset(),
                    key: message.key().map(text),
                    value: message.payload().map(text).unwrap_or_default(),
                }));
                if !settings.auto_commit {
                    // Processing here is reporting the message; commit right after it.
                    consumer.commit_message(&message, CommitMode::Async)?;
                }
            }
            Some(Err(err)) => report(&InstanceReport::Error {
                message: describe(&err),
                fatal: false,
            }),
        }
    }

    report(&InstanceReport::Leaving);
    // Dropping the consumer closes it: the revoke callback runs, offsets are committed, and the
    // member sends LeaveGroup, so the group rebalances at once instead of after the session timeout.
    drop(consumer);
    Ok(())
}

/// Hands rdkafka's callbacks to the server as reports, and nothing more.
struct Reporter;

impl ClientContext for Reporter {
    fn error(&self, error: KafkaError, reason: &str) {
        report(&InstanceReport::Error {
            message: format!("{}: {reason}", describe(&error)),
            fatal: false,
        });
    }
}

impl ConsumerContext for Reporter {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => report(&InstanceReport::Assigned {
                partitions: partitions(list),
            }),
            Rebalance::Revoke(list) => report(&InstanceReport::Revoked {
                partitions: partitions(list),
            }),
            Rebalance::Error(err) => report(&InstanceReport::Error {
                message: format!("Rebalance failed: {}", describe(err)),
                fatal: false,
            }),
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => {
                let offsets: Vec<CommittedOffset> = offsets
                    .elements()
                    .iter()
                    .filter_map(|e| match e.offset() {
                        Offset::Offset(offset) => Some(CommittedOffset {
                            topic: e.topic().to_owned(),
                            partition: e.partition(),
                            offset,
                        }),
                        _ => None,
                    })
                    .collect();
                if !offsets.is_empty() {
                    report(&InstanceReport::Committed { offsets });
                }
            }
            // Nothing new to commit is routine for background commits.
            Err(KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
            Err(err) => report(&InstanceReport::Error {
                message: format!("Commit failed: {}", describe(&err)),
                fatal: false,
            }),
        }
    }
}

fn partitions(list: &TopicPartitionList) -> Vec<TopicPartition> {
    let mut partitions: Vec<TopicPartition> = list
        .elements()
        .iter()
        .map(|e| TopicPartition::new(e.topic(), e.partition()))
        .collect();
    partitions.sort();
    partitions
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .take(MAX_REPORTED_VALUE)
        .collect()
}

fn describe(err: &KafkaError) -> String {
    err.to_string()
}

/// Whether stdout broke: then there is no one to report to.
static STDOUT_GONE: AtomicBool = AtomicBool::new(false);

/// Writes one report line. A broken stdout only stops the reports: this may run inside a
/// rebalance or commit callback of a consumer that is closing, which must still commit and
/// leave its group. The stdin watcher ends the instance when the server is gone.
fn report(report: &InstanceReport) {
    if STDOUT_GONE.load(Ordering::Relaxed) {
        return;
    }
    let line = serde_json::to_string(report).expect("reports always serialize");
    let mut out = io::stdout().lock();
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        STDOUT_GONE.store(true, Ordering::Relaxed);
    }
}

/// Sets `stop` when stdin closes or says anything: the server's way to ask for a graceful stop.
fn watch_stdin(stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        // Any outcome (EOF, an error, or a byte) means stop.
        let _ = io::stdin().read(&mut buf);
        stop.store(true, Ordering::Relaxed);
    });
}

/// Asks the kernel to kill this process when the server dies, even if the stdin thread could not react.
fn die_with_parent() {
    #[cfg(target_os = "linux")]
    {
        let parent = std::os::unix::process::parent_id();
        let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
        // The parent may have died before the request took effect; then we were re-parented.
        if std::os::unix::process::parent_id() != parent {
            std::process::exit(1);
        }
    }
}
