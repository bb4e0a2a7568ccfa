//! `grouplab-consumer`: one consumer instance, a real rdkafka group consumer in its own process
//! (or, for a Redis lab, a Redis Streams group consumer: see [`redis_streams`]; for a RabbitMQ
//! lab, a competing consumer on a queue: see [`rabbitmq`]).
//!
//! The server starts it with one argument, an [`InstanceConfig`] as JSON, and reads
//! [`InstanceReport`]s from its stdout, one JSON line each.
//!
//! Theory of operation:
//! - The main thread subscribes and polls. librdkafka runs the rebalance and commit callbacks
//!   inside `poll`, on this same thread, so reports are written in the order things happened.
//!   Each poll returns a batch (up to `max_poll_records`) that is processed before the next
//!   poll, with commits before, during (auto-commit) or after processing as the settings say;
//!   or, in the queue mode, a worker thread processes while the main thread keeps polling.
//! - "Processing" is a pause as long as the processing time, then a `Processed` report: the
//!   server's ledger of every message is built from `Message` (received) and `Processed`.
//! - A second thread reads stdin. When stdin closes, the instance stops gracefully: it reports
//!   [`InstanceReport::Leaving`], and dropping the consumer commits and sends LeaveGroup.
//!   The server closes stdin to stop an instance, and the kernel closes it when the server dies,
//!   so an instance never outlives its server.
//! - A crash is the server sending SIGKILL: nothing here runs, and the group learns of it only
//!   when the session times out. `PR_SET_PDEATHSIG` is the backstop should the stdin thread be stuck.

mod rabbitmq;
mod redis_streams;

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::TrySendError;
use std::time::{Duration, Instant};

use grouplab_protocol::{
    Backend, CommitPolicy, CommittedOffset, ConsumedMessage, ConsumerSettings, GroupProtocol,
    InstanceConfig, InstanceReport, MAX_REPORTED_VALUE, ProcessingMode, TopicPartition,
};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{BorrowedMessage, Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

/// How long one poll waits before the loop checks whether it should stop.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How often the consumer refreshes topic metadata, so that added partitions are seen quickly.
const METADATA_REFRESH_MS: &str = "3000";
/// How many messages the internal queue holds before the poll loop pauses its partitions.
const QUEUE_CAPACITY: usize = 100;
/// How long writing one message to the dead-letter topic may take.
const DEAD_LETTER_TIMEOUT: Duration = Duration::from_secs(5);
/// The least time between two reports of the queue's depth.
const QUEUE_REPORT_GAP: Duration = Duration::from_millis(100);

fn main() -> ExitCode {
    // From the environment, which only its owner can read, not from the command line.
    let Ok(config) = std::env::var(grouplab_protocol::INSTANCE_CONFIG_VAR) else {
        eprintln!(
            "usage: {}='<instance config as JSON>' grouplab-consumer",
            grouplab_protocol::INSTANCE_CONFIG_VAR
        );
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

    let outcome = match config.backend {
        Backend::Kafka => run(&config, &stop).map_err(|err| describe(&err)),
        Backend::Redis => redis_streams::run(&config, &stop).map_err(|err| format!("Redis: {err}")),
        Backend::RabbitMq => {
            rabbitmq::run(&config, &stop).map_err(|err| format!("RabbitMQ: {err}"))
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            report(&InstanceReport::Error {
                message,
                fatal: true,
            });
            ExitCode::FAILURE
        }
    }
}

fn run(config: &InstanceConfig, stop: &Arc<AtomicBool>) -> KafkaResult<()> {
    let settings = &config.settings;
    // In the poll loop only auto-commit commits in the background; the queue's worker stores
    // what it processed and lets background commits send it.
    let background_commits =
        settings.commit == CommitPolicy::Auto || settings.processing == ProcessingMode::Queue;
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &config.bootstrap_servers)
        .set("group.id", &config.group)
        .set("client.id", &config.client_id)
        .set(
            "max.poll.interval.ms",
            settings.max_poll_interval_ms.to_string(),
        )
        .set("enable.auto.commit", background_commits.to_string())
        // Offsets are stored by this program, never by librdkafka as a poll returns a message:
        // closing the consumer (rdkafka's drop) polls until the close completes, and messages
        // fetched but never handed to the instance would have their offsets stored and then
        // committed by the close, lost to the partitions' next owner.
        .set("enable.auto.offset.store", "false")
        .set(
            "auto.commit.interval.ms",
            settings.auto_commit_interval_ms.to_string(),
        )
        // Added partitions are noticed within seconds rather than librdkafka's 5 minutes.
        .set("topic.metadata.refresh.interval.ms", METADATA_REFRESH_MS)
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false");
    match settings.group_protocol {
        GroupProtocol::Classic => {
            client
                .set(
                    "session.timeout.ms",
                    settings.session_timeout_ms.to_string(),
                )
                .set(
                    "heartbeat.interval.ms",
                    settings.heartbeat_interval_ms.to_string(),
                )
                .set(
                    "partition.assignment.strategy",
                    settings.assignor.librdkafka_name(),
                );
        }
        // The broker assigns, and sets the session timeout and the heartbeat interval:
        // librdkafka refuses those settings under this protocol.
        GroupProtocol::Consumer => {
            client
                .set("group.protocol", "consumer")
                .set("group.remote.assignor", settings.assignor.librdkafka_name());
        }
    }
    if let Some(id) = &settings.static_id {
        client.set("group.instance.id", id);
    }
    let consumer: Arc<BaseConsumer<Reporter>> = Arc::new(client.create_with_context(Reporter)?);

    let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    report(&InstanceReport::Joining {
        pid: std::process::id(),
    });

    let work = Work::new(config, Arc::clone(stop))?;
    match settings.processing {
        ProcessingMode::InPollLoop => poll_and_process(&consumer, settings, &work, stop)?,
        ProcessingMode::Queue => poll_into_queue(&consumer, settings, work, stop)?,
    }

    report(&InstanceReport::Leaving);
    // Dropping the consumer closes it: the revoke callback runs, offsets are committed, and the
    // member sends LeaveGroup, so the group rebalances at once instead of after the session timeout.
    drop(consumer);
    Ok(())
}

/// The work done for one message: a pause as long as the processing time, then a report.
/// A message matching "fail on" fails instead, and is retried, then parked in the dead-letter
/// topic if there is one. Work also counts messages for "crash after N", and kills the process
/// when the count is reached.
struct Work {
    pause: Duration,
    crash_after: Option<u64>,
    done: AtomicU64,
    fail_on: Option<String>,
    retries: u32,
    backoff: Duration,
    dead_letter: Option<(String, BaseProducer)>,
    stop: Arc<AtomicBool>,
}

/// One message to process, owned, so that it can cross to the worker thread.
struct Item {
    topic: String,
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
}

impl Item {
    fn of(message: &BorrowedMessage<'_>) -> Self {
        Self {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
        }
    }
}

impl Work {
    fn new(config: &InstanceConfig, stop: Arc<AtomicBool>) -> KafkaResult<Self> {
        let settings = &config.settings;
        let dead_letter = match &settings.dead_letter_topic {
            Some(topic) => {
                let producer: BaseProducer = ClientConfig::new()
                    .set("bootstrap.servers", &config.bootstrap_servers)
                    .set("client.id", format!("{}-dlq", config.client_id))
                    .create()?;
                Some((topic.clone(), producer))
            }
            None => None,
        };
        Ok(Self {
            pause: Duration::from_millis(settings.processing_ms.into()),
            crash_after: settings.crash_after.map(u64::from),
            done: AtomicU64::new(0),
            fail_on: settings.fail_on.clone(),
            retries: settings.retries,
            backoff: Duration::from_millis(settings.retry_backoff_ms.into()),
            dead_letter,
            stop,
        })
    }

    /// Processes one message: returns `true` once it is done (processed, or parked in the
    /// dead-letter topic), `false` when a stop is asked for while it is still failing.
    fn process(&self, item: &Item) -> bool {
        let poisoned = self.fail_on.as_ref().is_some_and(|text| {
            item.payload
                .as_deref()
                .is_some_and(|p| String::from_utf8_lossy(p).contains(text.as_str()))
        });
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            if !self.pause.is_zero() {
                std::thread::sleep(self.pause);
            }
            if !poisoned {
                break;
            }
            let text = self.fail_on.as_deref().unwrap_or_default();
            report(&InstanceReport::ProcessingFailed {
                topic: item.topic.clone(),
                partition: item.partition,
                offset: item.offset,
                attempt,
                error: format!("the message contains `{text}`, which this instance cannot process"),
            });
            if attempt > self.retries
                && let Some((dead_letter_topic, producer)) = &self.dead_letter
            {
                match park(producer, dead_letter_topic, item, attempt) {
                    Ok(()) => {
                        report(&InstanceReport::DeadLettered {
                            topic: item.topic.clone(),
                            partition: item.partition,
                            offset: item.offset,
                            attempts: attempt,
                            dead_letter_topic: dead_letter_topic.clone(),
                        });
                        break;
                    }
                    Err(err) => report(&InstanceReport::Error {
                        message: format!(
                            "Could not write to the dead-letter topic `{dead_letter_topic}`: {}",
                            describe(&err)
                        ),
                        fatal: false,
                    }),
                }
            }
            if self.stop.load(Ordering::Relaxed) {
                return false;
            }
            std::thread::sleep(self.backoff);
        }
        report(&InstanceReport::Processed {
            topic: item.topic.clone(),
            partition: item.partition,
            offset: item.offset,
        });
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if self.crash_after == Some(done) {
            report(&InstanceReport::Crashing { processed: done });
            // A real crash: no revocation, no commit, no LeaveGroup.
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        }
        true
    }
}

/// Writes a message that could not be processed to the dead-letter topic, with where it came
/// from in its headers, and waits until the broker has it.
fn park(
    producer: &BaseProducer,
    dead_letter_topic: &str,
    item: &Item,
    attempts: u32,
) -> KafkaResult<()> {
    let origin = format!("{}/{}/{}", item.topic, item.partition, item.offset);
    let attempts = attempts.to_string();
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "grouplab-origin",
            value: Some(origin.as_str()),
        })
        .insert(Header {
            key: "grouplab-attempts",
            value: Some(attempts.as_str()),
        });
    let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(dead_letter_topic).headers(headers);
    if let Some(payload) = &item.payload {
        record = record.payload(payload);
    }
    if let Some(key) = &item.key {
        record = record.key(key);
    }
    producer.send(record).map_err(|(err, _)| err)?;
    producer.flush(DEAD_LETTER_TIMEOUT)
}

/// The classic loop: poll a batch, process it, poll again. Processing longer than
/// `max.poll.interval.ms` makes the client leave its group, as Kafka's clients do.
fn poll_and_process(
    consumer: &BaseConsumer<Reporter>,
    settings: &ConsumerSettings,
    work: &Work,
    stop: &AtomicBool,
) -> KafkaResult<()> {
    let mut busy = false;
    while !stop.load(Ordering::Relaxed) {
        let batch = poll_batch(
            consumer,
            settings.max_poll_records,
            stores_on_poll(settings),
        );
        if batch.is_empty() {
            if busy {
                busy = false;
                report(&InstanceReport::Polled { messages: 0 });
            }
            continue;
        }
        busy = true;
        report(&InstanceReport::Polled {
            messages: batch.len() as u32,
        });
        let offsets = next_offsets(&batch)?;
        if settings.commit == CommitPolicy::BeforeProcessing {
            consumer.commit(&offsets, CommitMode::Sync)?;
        }
        let mut processed = TopicPartitionList::new();
        for message in &batch {
            if !work.process(&Item::of(message)) {
                // Stopping while the message still fails: it stays uncommitted for the next owner.
                break;
            }
            processed.add_partition_offset(
                message.topic(),
                message.partition(),
                Offset::Offset(message.offset() + 1),
            )?;
            // A graceful stop ends the batch early only where the rest is not committed yet, so
            // the next owner reads it again. Under auto-commit (and commit before processing)
            // the polled batch is as good as committed: stopping early would lose it.
            if stop.load(Ordering::Relaxed) && settings.commit == CommitPolicy::AfterProcessing {
                break;
            }
        }
        if settings.commit == CommitPolicy::AfterProcessing {
            // The partitions may have been taken away meanwhile; then the commit fails, is
            // reported, and the new owner reads these messages again.
            if let Err(err) = consumer.commit(&processed, CommitMode::Sync) {
                report(&InstanceReport::Error {
                    message: format!("Commit failed: {}", describe(&err)),
                    fatal: false,
                });
            }
        }
    }
    Ok(())
}

/// Whether a message's offset is stored as soon as a poll returns it, as librdkafka's
/// `enable.auto.offset.store` does; otherwise the worker stores it once it has processed it
/// (the queue with commit after processing).
fn stores_on_poll(settings: &ConsumerSettings) -> bool {
    !(settings.processing == ProcessingMode::Queue
        && settings.commit == CommitPolicy::AfterProcessing)
}

/// Stores the offset after `message`, to be committed by the next background commit. A partition
/// revoked meanwhile refuses it, which is right: its new owner reads the message again.
fn store_polled(consumer: &BaseConsumer<Reporter>, message: &BorrowedMessage<'_>) {
    let _ = consumer.store_offset_from_message(message);
}

/// Up to `max` messages: one poll that waits, then whatever is already fetched. `store` stores
/// each message's offset as the poll returns it.
fn poll_batch(
    consumer: &BaseConsumer<Reporter>,
    max: u32,
    store: bool,
) -> Vec<BorrowedMessage<'_>> {
    let mut batch = Vec::new();
    let mut wait = POLL_INTERVAL;
    while batch.len() < max as usize {
        match consumer.poll(wait) {
            None => break,
            Some(Ok(message)) => {
                report_received(&message);
                if store {
                    store_polled(consumer, &message);
                }
                batch.push(message);
            }
            Some(Err(err)) => {
                report_poll_error(&err);
                break;
            }
        }
        wait = Duration::ZERO;
    }
    batch
}

/// The offsets to commit once every message of `batch` is done: the next one per partition.
fn next_offsets(batch: &[BorrowedMessage<'_>]) -> KafkaResult<TopicPartitionList> {
    let mut next: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for message in batch {
        let entry = next
            .entry((message.topic(), message.partition()))
            .or_insert(0);
        *entry = (*entry).max(message.offset() + 1);
    }
    let mut offsets = TopicPartitionList::new();
    for ((topic, partition), offset) in next {
        offsets.add_partition_offset(topic, partition, Offset::Offset(offset))?;
    }
    Ok(offsets)
}

/// The internal-queue pattern: the poll loop only polls and hands messages to a worker thread
/// through a bounded queue, so it polls often whatever processing costs. When the queue is
/// full it pauses its partitions, which keeps it polling (and in the group) without fetching.
fn poll_into_queue(
    consumer: &Arc<BaseConsumer<Reporter>>,
    settings: &ConsumerSettings,
    work: Work,
    stop: &AtomicBool,
) -> KafkaResult<()> {
    let depth = Arc::new(AtomicU32::new(0));
    let (queue, inbox) = std::sync::mpsc::sync_channel::<Item>(QUEUE_CAPACITY);
    let worker = {
        let consumer = Arc::clone(consumer);
        let depth = Arc::clone(&depth);
        let store = settings.commit == CommitPolicy::AfterProcessing;
        std::thread::spawn(move || {
            for queued in inbox {
                depth.fetch_sub(1, Ordering::Relaxed);
                if work.stop.load(Ordering::Relaxed) {
                    // Stopping: what is left in the queue is left to the partitions' next owner.
                    break;
                }
                if work.process(&queued) && store {
                    let mut done = TopicPartitionList::new();
                    // A partition revoked meanwhile cannot be stored for; its new owner reads it again.
                    if done
                        .add_partition_offset(
                            &queued.topic,
                            queued.partition,
                            Offset::Offset(queued.offset + 1),
                        )
                        .is_ok()
                    {
                        let _ = consumer.store_offsets(&done);
                    }
                }
            }
        })
    };

    let mut pending: Option<Item> = None;
    let mut paused = false;
    let mut reported = (0u32, false);
    let mut reported_at = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if let Some(queued) = pending.take() {
            match queue.try_send(queued) {
                Ok(()) => {
                    depth.fetch_add(1, Ordering::Relaxed);
                }
                Err(TrySendError::Full(queued)) => pending = Some(queued),
                Err(TrySendError::Disconnected(_)) => break,
            }
        }
        let now_depth = depth.load(Ordering::Relaxed);
        if pending.is_some() && !paused {
            consumer.pause(&consumer.assignment()?)?;
            paused = true;
        } else if pending.is_none() && paused && now_depth <= QUEUE_CAPACITY as u32 / 2 {
            consumer.resume(&consumer.assignment()?)?;
            paused = false;
        }
        if (now_depth, paused) != reported
            && (paused != reported.1 || reported_at.elapsed() >= QUEUE_REPORT_GAP)
        {
            reported = (now_depth, paused);
            reported_at = Instant::now();
            report(&InstanceReport::Queue {
                depth: now_depth,
                paused,
            });
        }
        if pending.is_some() {
            // Paused: this poll fetches nothing but keeps the member in its group.
            let _ = consumer.poll(POLL_INTERVAL.min(QUEUE_REPORT_GAP));
            continue;
        }
        match consumer.poll(QUEUE_REPORT_GAP) {
            None => {}
            Some(Ok(message)) => {
                report_received(&message);
                if stores_on_poll(settings) {
                    store_polled(consumer, &message);
                }
                pending = Some(Item::of(&message));
            }
            Some(Err(err)) => report_poll_error(&err),
        }
    }
    // A graceful stop ends the work in hand: what waits in the queue is left for the next owner
    // (with commit after processing it was never stored, so it is read again).
    drop(queue);
    drop(pending);
    let _ = worker.join();
    Ok(())
}

/// A poll's error: the client leaving its group over a late poll is a lesson of its own.
fn report_poll_error(err: &KafkaError) {
    if err.rdkafka_error_code() == Some(RDKafkaErrorCode::PollExceeded) {
        report(&InstanceReport::MaxPollExceeded {
            message: describe(err),
        });
    } else {
        report(&InstanceReport::Error {
            message: describe(err),
            fatal: false,
        });
    }
}

fn report_received(message: &BorrowedMessage<'_>) {
    report(&InstanceReport::Message(ConsumedMessage {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
        key: message.key().map(text),
        value: message.payload().map(text).unwrap_or_default(),
    }));
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
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
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

/// rdkafka's words for an error, after what they mean for a group member where the code alone
/// would not tell a learner.
fn describe(err: &KafkaError) -> String {
    match err.rdkafka_error_code().and_then(meaning_for_a_member) {
        Some(meaning) => format!("{meaning} ({err})"),
        None => err.to_string(),
    }
}

fn meaning_for_a_member(code: RDKafkaErrorCode) -> Option<&'static str> {
    Some(match code {
        RDKafkaErrorCode::UnknownMemberId | RDKafkaErrorCode::IllegalGeneration => {
            "the group no longer counts this instance as a member (it missed its poll deadline, or its session timed out): its partitions go to another member, which reads these messages again"
        }
        RDKafkaErrorCode::RebalanceInProgress => {
            "the group is rebalancing, so these partitions may move; their next owner reads from the last commit"
        }
        RDKafkaErrorCode::FencedInstanceId => {
            "another instance joined with this static member id and took its place"
        }
        _ => return None,
    })
}

/// Whether stdout broke: then there is no one to report to.
static STDOUT_GONE: AtomicBool = AtomicBool::new(false);

/// Writes one report line (see [`grouplab_protocol::split_report_line`]). A broken stdout only stops the reports: this may run inside a
/// rebalance or commit callback of a consumer that is closing, which must still commit and
/// leave its group. The stdin watcher ends the instance when the server is gone.
fn report(report: &InstanceReport) {
    if STDOUT_GONE.load(Ordering::Relaxed) {
        return;
    }
    // Stamped as the callback reports it, so the server and the page can measure what follows.
    let at_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    let line = serde_json::to_string(report).expect("reports always serialize");
    let mut out = io::stdout().lock();
    if writeln!(out, "{at_us} {line}")
        .and_then(|()| out.flush())
        .is_err()
    {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_refused_to_a_member_the_group_removed_says_why_and_keeps_the_code() {
        let refused = describe(&KafkaError::ConsumerCommit(
            RDKafkaErrorCode::UnknownMemberId,
        ));
        assert!(
            refused.starts_with("the group no longer counts this instance as a member"),
            "{refused}"
        );
        assert!(refused.contains("UnknownMemberId"), "{refused}");

        let plain = KafkaError::ConsumerCommit(RDKafkaErrorCode::BrokerTransportFailure);
        assert_eq!(describe(&plain), plain.to_string());
    }
}
