//! The server's own Kafka clients: create and delete topics, produce, and read offsets.
//!
//! On a named cluster, group membership is read here too, with DescribeGroups
//! ([`Cluster::describe_group`]); the embedded broker's groups are read in-process instead
//! (`GroupWatch`), since nisshi answers DescribeGroups with no members.
//! librdkafka's metadata, offset and group calls block, so they run on tokio's blocking pool.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use grouplab_protocol::{
    GroupOffsets, GroupState, KeyMode, MembershipSource, PartitionView, TopicView,
};
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use tracing::warn;

use super::wire::{client_id_of, decode_assignment};
use crate::{CallError, Produced, numbered_message};
use grouplab_model::membership::{GroupObservation, ObservedMember};

/// How long one request to the broker may take before the broker is reported as unreachable.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A failure inside grouplab rather than at the broker: logged for the operator, worded for the learner.
fn internal(detail: impl std::fmt::Display) -> CallError {
    warn!(%detail, "internal error in the cluster client");
    CallError::Internal
}

/// What one poll of the broker read.
pub struct Polled {
    /// Each topic, with whether it exists.
    pub topics: Vec<(TopicView, bool)>,
    /// The groups' membership, read only from a named cluster.
    pub groups: Vec<GroupObservation>,
}

/// Clients for one cluster, seen through a name prefix.
///
/// A class's learner on a shared cluster has a prefix (`{class}.{learner}.`): every topic and
/// group name this handle is given is prefixed on its way to the broker, and stripped from what
/// comes back, so that the session works with the lab's names and touches only the learner's own.
/// This is the one place the prefix is applied. Without a class the prefix is empty.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
    prefix: Arc<str>,
}

struct Inner {
    bootstrap: String,
    admin: AdminClient<DefaultClientContext>,
    producer: FutureProducer,
    /// A consumer that never subscribes: it reads metadata and watermarks.
    probe: BaseConsumer,
    /// One consumer per group, that never subscribes: it reads the group's committed offsets
    /// (rdkafka has no admin call for them). At most [`MAX_OFFSET_READERS`], the least recently
    /// used going first, each with when it was last used.
    /// A std Mutex is fine: it is held only to look up or insert, never across an await.
    offset_readers: Mutex<OffsetReaders>,
    /// Counts uses of the offset readers, to tell which was used least recently.
    reads: std::sync::atomic::AtomicU64,
}

/// The most offset readers kept: each is a librdkafka client with threads of its own, and a
/// learner can type any number of group names. Above the groups being watched, every read
/// creates a client and closes another, so it is sized for 40 labs with a group or two each.
const MAX_OFFSET_READERS: usize = 96;

/// Each group's offset reader, with when it was last used (a count of reads).
type OffsetReaders = HashMap<String, (Arc<BaseConsumer>, u64)>;

impl Cluster {
    pub fn connect(bootstrap: &str) -> Result<Self, CallError> {
        let refused = |e: KafkaError| CallError::Refused(e.to_string());
        let admin = base_config(bootstrap).create().map_err(refused)?;
        let producer = base_config(bootstrap)
            .set("linger.ms", "5")
            .set("message.timeout.ms", "10000")
            .create()
            .map_err(refused)?;
        let probe = base_config(bootstrap).create().map_err(refused)?;
        Ok(Self {
            prefix: Arc::from(""),
            inner: Arc::new(Inner {
                bootstrap: bootstrap.to_owned(),
                admin,
                producer,
                probe,
                offset_readers: Mutex::new(HashMap::new()),
                reads: std::sync::atomic::AtomicU64::new(0),
            }),
        })
    }

    pub fn bootstrap_servers(&self) -> &str {
        &self.inner.bootstrap
    }

    /// The same clients, with topic and group names under `prefix`.
    pub fn with_prefix(&self, prefix: &str) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            prefix: Arc::from(prefix),
        }
    }

    /// The prefix of this handle's names (empty without a class).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A lab's topic or group name as the broker knows it.
    pub fn physical(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// A name the broker gave back, as the lab knows it.
    pub fn logical(&self, name: &str) -> String {
        name.strip_prefix(&*self.prefix).unwrap_or(name).to_owned()
    }

    fn logical_error(&self, err: CallError) -> CallError {
        match err {
            CallError::TopicExists(name) => CallError::TopicExists(self.logical(&name)),
            CallError::UnknownTopic(name) => CallError::UnknownTopic(self.logical(&name)),
            other => other,
        }
    }

    /// Asks the broker for its metadata: `Ok` means it is up and answering.
    pub async fn ping(&self) -> Result<(), CallError> {
        self.ping_within(REQUEST_TIMEOUT).await
    }

    /// [`Cluster::ping`], giving up after `timeout`.
    pub async fn ping_within(&self, timeout: Duration) -> Result<(), CallError> {
        let inner = Arc::clone(&self.inner);
        blocking(move || {
            inner
                .probe
                .fetch_metadata(None, timeout)
                .map(drop)
                .map_err(|_| inner.unreachable())
        })
        .await
    }

    /// Polls [`Cluster::ping`] until it succeeds or `deadline` passes.
    pub async fn wait_until_ready(&self, deadline: Duration) -> Result<(), CallError> {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            match self.ping().await {
                Ok(()) => return Ok(()),
                Err(err) if tokio::time::Instant::now() >= until => return Err(err),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    pub async fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), CallError> {
        let topic = self.physical(topic);
        let new = NewTopic::new(&topic, partitions, TopicReplication::Fixed(1));
        let options = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
        let results = self
            .inner
            .admin
            .create_topics([&new], &options)
            .await
            .map_err(|e| self.inner.classify(e))?;
        for result in results {
            match result {
                Ok(_) => {}
                Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                    return Err(CallError::TopicExists(self.logical(&name)));
                }
                Err((name, code)) => {
                    return Err(CallError::Refused(format!("creating `{name}`: {code}")));
                }
            }
        }
        Ok(())
    }

    /// Grows a topic to `partitions` partitions in total.
    pub async fn add_partitions(&self, topic: &str, partitions: i32) -> Result<(), CallError> {
        let topic = self.physical(topic);
        let topic = topic.as_str();
        let grow = NewPartitions::new(topic, partitions as usize);
        let options = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
        let results = self
            .inner
            .admin
            .create_partitions([&grow], &options)
            .await
            .map_err(|e| match e {
                KafkaError::AdminOp(RDKafkaErrorCode::UnsupportedFeature) => {
                    CallError::Unsupported("it does not support adding partitions to a topic")
                }
                e => self.inner.classify(e),
            })?;
        for result in results {
            match result {
                Ok(_) => {}
                Err((name, RDKafkaErrorCode::UnknownTopicOrPartition)) => {
                    return Err(CallError::UnknownTopic(self.logical(&name)));
                }
                Err((name, code)) => {
                    return Err(CallError::Refused(format!(
                        "adding partitions to `{name}`: {code}"
                    )));
                }
            }
        }
        // The producer knows a topic's partitions from its own metadata, refreshed every few
        // minutes: asked now, it writes to the new partitions (and lets the page name them) at once.
        let inner = Arc::clone(&self.inner);
        let topic = topic.to_owned();
        blocking(move || {
            let _ = inner
                .producer
                .client()
                .fetch_metadata(Some(&topic), REQUEST_TIMEOUT);
            Ok(())
        })
        .await
    }

    /// Deletes topics; ones that do not exist are not an error.
    pub async fn delete_topics(&self, topics: &[&str]) -> Result<(), CallError> {
        if topics.is_empty() {
            return Ok(());
        }
        let topics: Vec<String> = topics.iter().map(|t| self.physical(t)).collect();
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        let options = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
        let results = self
            .inner
            .admin
            .delete_topics(&topics, &options)
            .await
            .map_err(|e| self.inner.classify(e))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
                Err((name, code)) => {
                    return Err(CallError::Refused(format!("deleting `{name}`: {code}")));
                }
            }
        }
        Ok(())
    }

    /// Deletes groups and their committed offsets; groups that do not exist are not an error.
    pub async fn delete_groups(&self, groups: &[&str]) -> Result<(), CallError> {
        if groups.is_empty() {
            return Ok(());
        }
        let groups: Vec<String> = groups.iter().map(|g| self.physical(g)).collect();
        let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
        let options = AdminOptions::new().request_timeout(Some(REQUEST_TIMEOUT));
        let results = self
            .inner
            .admin
            .delete_groups(&groups, &options)
            .await
            .map_err(|e| self.inner.classify(e))?;
        for result in results {
            match result {
                Ok(_)
                | Err((_, RDKafkaErrorCode::GroupIdNotFound))
                | Err((_, RDKafkaErrorCode::NotCoordinator)) => {}
                Err((name, code)) => {
                    return Err(CallError::Refused(format!(
                        "deleting group `{name}`: {code}"
                    )));
                }
            }
        }
        let removed: Vec<_> = match self.inner.offset_readers.lock() {
            Ok(mut readers) => groups.iter().filter_map(|g| readers.remove(*g)).collect(),
            Err(_) => Vec::new(),
        };
        // Closing a librdkafka client blocks until its threads end: never on a runtime worker.
        if !removed.is_empty() {
            tokio::task::spawn_blocking(move || drop(removed));
        }
        Ok(())
    }

    /// The partitions of a topic with their watermarks, or `UnknownTopic`.
    ///
    /// Three requests whatever the partition count: the topic's metadata, then every partition's
    /// log start in one ListOffsets request, then every partition's end in another (one per
    /// partition leader on a cluster; librdkafka's `fetch_watermarks` asks two per partition). Every lab's poll goes through the one probe
    /// client, and a broker answers one connection's requests one at a time, in order (Kafka does,
    /// and so does nisshi), so each request saved here is one the next lab's poll, or a produce,
    /// no longer waits behind.
    pub async fn partitions(&self, topic: &str) -> Result<Vec<PartitionView>, CallError> {
        let inner = Arc::clone(&self.inner);
        let topic = self.physical(topic);
        let read = blocking(move || {
            let ids = inner.partition_ids(&topic)?;
            let starts = inner.list_offsets(&topic, &ids, Offset::Beginning)?;
            let ends = inner.list_offsets(&topic, &ids, Offset::End)?;
            Ok(ids
                .into_iter()
                .zip(starts.into_iter().zip(ends))
                .map(|(partition, (log_start, log_end))| PartitionView {
                    partition,
                    log_start,
                    log_end,
                })
                .collect())
        });
        read.await.map_err(|err| self.logical_error(err))
    }

    /// The group's committed offset for each of `partitions` of `topic`, `None` where it never committed.
    pub async fn committed(
        &self,
        group: &str,
        topic: &str,
        partitions: &[i32],
    ) -> Result<Vec<Option<i64>>, CallError> {
        let inner = Arc::clone(&self.inner);
        let group = self.physical(group);
        let topic = self.physical(topic);
        let partitions = partitions.to_vec();
        blocking(move || {
            let reader = inner.offset_reader(&group)?;
            let mut list = TopicPartitionList::new();
            for &partition in &partitions {
                list.add_partition(&topic, partition);
            }
            let committed = reader
                .committed_offsets(list, REQUEST_TIMEOUT)
                .map_err(|e| inner.classify(e))?;
            Ok(partitions
                .iter()
                .map(
                    |&p| match committed.find_partition(&topic, p).map(|e| e.offset()) {
                        Some(Offset::Offset(offset)) => Some(offset),
                        _ => None,
                    },
                )
                .collect())
        })
        .await
    }

    /// The group's members and their assignments, with DescribeGroups.
    /// A named cluster does not say the generation, the leader, or when members last heartbeated.
    pub async fn describe_group(&self, group: &str) -> Result<GroupObservation, CallError> {
        let inner = Arc::clone(&self.inner);
        let logical = group.to_owned();
        let group = self.physical(group);
        let mut observed = blocking(move || {
            let list = inner
                .probe
                .fetch_group_list(Some(&group), REQUEST_TIMEOUT)
                .map_err(|e| inner.classify(e))?;
            let Some(info) = list.groups().iter().find(|g| g.name() == group) else {
                return Ok(GroupObservation::empty(&group, MembershipSource::Described));
            };
            let state = GroupState::parse(info.state());
            // Outside a stable group the assignments are being recomputed and read as empty.
            let stable = state == GroupState::Stable;
            let mut members: Vec<ObservedMember> = info
                .members()
                .iter()
                .map(|m| ObservedMember {
                    member_id: m.id().to_owned(),
                    // nisshi's DescribeGroups leaves the client id empty; its member ids start with it.
                    client_id: if m.client_id().is_empty() {
                        client_id_of(m.id()).to_owned()
                    } else {
                        m.client_id().to_owned()
                    },
                    host: Some(m.client_host().trim_start_matches('/').to_owned())
                        .filter(|h| !h.is_empty()),
                    group_instance_id: None,
                    partitions: stable.then(|| {
                        m.assignment()
                            .and_then(decode_assignment)
                            .unwrap_or_default()
                    }),
                    last_heartbeat: None,
                    session_timeout_ms: None,
                    member_epoch: None,
                    target: None,
                })
                .collect();
            members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
            Ok(GroupObservation {
                group,
                state: if members.is_empty() && state == GroupState::Unknown {
                    GroupState::Empty
                } else {
                    state
                },
                generation: None,
                assignor: Some(info.protocol().to_owned()).filter(|p| !p.is_empty()),
                leader: None,
                members,
                source: MembershipSource::Described,
                left: Vec::new(),
                assignment_epoch: None,
                protocol: Default::default(),
            })
        })
        .await?;
        observed.group = logical;
        for member in &mut observed.members {
            for partition in member.partitions.iter_mut().flatten() {
                partition.topic = self.logical(&partition.topic);
            }
        }
        Ok(observed)
    }

    /// Reads the watermarks of `topics` and the committed offsets of `groups` on them, and, if
    /// `describe`, the groups' members. Each topic comes back with whether it exists.
    pub async fn poll_lab(
        &self,
        topics: &[String],
        groups: &[String],
        describe: bool,
    ) -> Result<Polled, CallError> {
        let cluster = self;
        // Reading a topic's partitions already proves the broker answers; ping only when there is none.
        if topics.is_empty() {
            cluster.ping().await?;
        }
        let mut views = Vec::with_capacity(topics.len());
        for topic in topics {
            let partitions: Vec<PartitionView> = match cluster.partitions(topic).await {
                Ok(partitions) => partitions,
                Err(CallError::UnknownTopic(_)) => {
                    views.push((
                        TopicView {
                            name: topic.clone(),
                            partitions: Vec::new(),
                            groups: Vec::new(),
                        },
                        false,
                    ));
                    continue;
                }
                Err(err) => return Err(err),
            };
            let ids: Vec<i32> = partitions.iter().map(|p| p.partition).collect();
            let mut offsets = Vec::with_capacity(groups.len());
            for group in groups {
                offsets.push(GroupOffsets {
                    group: group.clone(),
                    committed: cluster.committed(group, topic, &ids).await?,
                });
            }
            views.push((
                TopicView {
                    name: topic.clone(),
                    partitions,
                    groups: offsets,
                },
                true,
            ));
        }
        let mut members = Vec::new();
        if describe {
            for group in groups {
                members.push(cluster.describe_group(group).await?);
            }
        }
        Ok(Polled {
            topics: views,
            groups: members,
        })
    }

    /// Produces `count` messages and waits until the broker has them all.
    /// Returns how many landed in each partition, indexed by partition.
    pub async fn produce(
        &self,
        topic: &str,
        count: u32,
        keys: &KeyMode,
        partition: Option<i32>,
        text: Option<&str>,
        first_number: u64,
    ) -> Result<Produced, CallError> {
        // Only the partition ids: their watermarks would cost every produce two more requests.
        let inner = Arc::clone(&self.inner);
        let physical = self.physical(topic);
        let partitions = blocking(move || inner.partition_ids(&physical))
            .await
            .map_err(|err| self.logical_error(err))?;
        if let Some(partition) = partition {
            let last = partitions.len() as i32 - 1;
            if !(0..=last).contains(&partition) {
                return Err(CallError::UnknownPartition {
                    topic: topic.to_owned(),
                    partition,
                    last,
                });
            }
        }

        let spread = partitions.len().max(1) as u64;
        let records: Vec<(Option<String>, String, Option<i32>)> = (0..u64::from(count))
            .map(|i| {
                let target = match keys {
                    KeyMode::RoundRobin if partition.is_none() => {
                        partitions.get((i % spread) as usize).copied()
                    }
                    _ => partition,
                };
                let (key, value) = numbered_message(keys, i, first_number + i, text);
                (key, value, target)
            })
            .collect();
        let physical = self.physical(topic);
        let deliveries = records.iter().map(|(key, value, target)| {
            let mut record: FutureRecord<'_, String, String> =
                FutureRecord::to(&physical).payload(value);
            if let Some(key) = key {
                record = record.key(key);
            }
            if let Some(target) = target {
                record = record.partition(*target);
            }
            self.inner.producer.send(record, REQUEST_TIMEOUT)
        });

        let mut produced = Produced::default();
        for (result, (key, ..)) in futures::future::join_all(deliveries)
            .await
            .into_iter()
            .zip(&records)
        {
            match result {
                Ok(delivery) => {
                    *produced.landed.entry(delivery.partition).or_insert(0) += 1;
                    if let Some(key) = key {
                        let placed = produced.keys.entry(key.clone()).or_default();
                        if !placed.contains(&delivery.partition) {
                            placed.push(delivery.partition);
                        }
                    }
                }
                Err((err, _)) => return Err(self.inner.classify(err)),
            }
        }
        Ok(produced)
    }
}

impl Inner {
    /// A topic's partition ids in order, from one metadata request, or `UnknownTopic`. Blocks.
    fn partition_ids(&self, topic: &str) -> Result<Vec<i32>, CallError> {
        let metadata = self
            .probe
            .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
            .map_err(|e| self.classify(e))?;
        let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
            return Err(CallError::UnknownTopic(topic.to_owned()));
        };
        if found.error().is_some() || found.partitions().is_empty() {
            return Err(CallError::UnknownTopic(topic.to_owned()));
        }
        let mut ids: Vec<i32> = found.partitions().iter().map(|p| p.id()).collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// Each of `partitions`' first (`Offset::Beginning`) or next (`Offset::End`) offset, asked
    /// in one ListOffsets request: librdkafka sends them as the times -2 and -1, which Kafka
    /// defines as exactly these. Blocks.
    fn list_offsets(
        &self,
        topic: &str,
        partitions: &[i32],
        which: Offset,
    ) -> Result<Vec<i64>, CallError> {
        let mut asked = TopicPartitionList::with_capacity(partitions.len());
        for &partition in partitions {
            asked
                .add_partition_offset(topic, partition, which)
                .map_err(internal)?;
        }
        let answered = self
            .probe
            .offsets_for_times(asked, REQUEST_TIMEOUT)
            .map_err(|e| self.classify(e))?;
        partitions
            .iter()
            .map(|&partition| {
                let found = answered
                    .find_partition(topic, partition)
                    .ok_or_else(|| CallError::UnknownTopic(topic.to_owned()))?;
                found.error().map_err(|e| self.classify(e))?;
                match found.offset() {
                    Offset::Offset(offset) => Ok(offset),
                    // Kafka always answers these two times with an offset; anything else is a
                    // broker that does not, and the page cannot show it.
                    other => Err(internal(format!(
                        "ListOffsets answered {other:?} for {topic}/{partition}"
                    ))),
                }
            })
            .collect()
    }

    fn unreachable(&self) -> CallError {
        CallError::Unreachable {
            address: self.bootstrap.clone(),
        }
    }

    fn classify(&self, err: KafkaError) -> CallError {
        // Admin results carry their code in the variant, not in `rdkafka_error_code`.
        let code = match &err {
            KafkaError::AdminOp(code) => Some(*code),
            other => other.rdkafka_error_code(),
        };
        match code {
            Some(
                RDKafkaErrorCode::MessageTimedOut
                | RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::BrokerTransportFailure,
            ) => self.unreachable(),
            Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
                CallError::Refused("the topic or partition does not exist".to_owned())
            }
            _ => CallError::Refused(err.to_string()),
        }
    }

    /// The group's offset reader, created if it has none. It blocks (creating a librdkafka
    /// client, and closing the one it replaces): call it on a blocking thread. The lock is never
    /// held while a client is created or closed, so other groups' reads do not wait for it.
    fn offset_reader(&self, group: &str) -> Result<Arc<BaseConsumer>, CallError> {
        if let Some(reader) = self.lookup_reader(group)? {
            return Ok(reader);
        }
        let created: Arc<BaseConsumer> = Arc::new(
            base_config(&self.bootstrap)
                .set("group.id", group)
                .set("enable.auto.commit", "false")
                .create()
                .map_err(internal)?,
        );
        let (reader, unused) = {
            let mut readers = self.readers()?;
            if let Some(found) = self.touch(&mut readers, group) {
                // Another read created one meanwhile: keep that one, close ours.
                (found, Some(created))
            } else {
                let oldest = (readers.len() >= MAX_OFFSET_READERS)
                    .then(|| {
                        readers
                            .iter()
                            .min_by_key(|(_, (_, used))| *used)
                            .map(|(group, _)| group.clone())
                    })
                    .flatten()
                    .and_then(|oldest| readers.remove(&oldest))
                    .map(|(reader, _)| reader);
                readers.insert(group.to_owned(), (Arc::clone(&created), self.next_use()));
                (created, oldest)
            }
        };
        drop(unused);
        Ok(reader)
    }

    fn lookup_reader(&self, group: &str) -> Result<Option<Arc<BaseConsumer>>, CallError> {
        let mut readers = self.readers()?;
        Ok(self.touch(&mut readers, group))
    }

    /// The group's reader if it has one, marked as the most recently used.
    fn touch(&self, readers: &mut OffsetReaders, group: &str) -> Option<Arc<BaseConsumer>> {
        readers.get_mut(group).map(|(reader, used)| {
            *used = self.next_use();
            Arc::clone(reader)
        })
    }

    fn readers(&self) -> Result<std::sync::MutexGuard<'_, OffsetReaders>, CallError> {
        self.offset_readers
            .lock()
            .map_err(|_| internal("the offset readers' lock was poisoned"))
    }

    fn next_use(&self) -> u64 {
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }
}

fn base_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("client.id", "grouplab-server")
        .set("socket.timeout.ms", "5000")
        .set("log_level", "3");
    config
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, CallError> + Send + 'static,
) -> Result<T, CallError> {
    tokio::task::spawn_blocking(work).await.map_err(internal)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_readers_are_capped_and_the_least_recently_used_goes_first() {
        // Creating clients needs no broker: nothing connects until a request is made.
        let cluster = Cluster::connect("127.0.0.1:9").expect("clients are created offline");
        let inner = &cluster.inner;
        inner.offset_reader("kept").expect("a reader");
        for n in 0..(MAX_OFFSET_READERS * 2) {
            inner
                .offset_reader(&format!("typed-{n}"))
                .expect("a reader");
            inner.offset_reader("kept").expect("a reader");
        }
        let readers = inner.offset_readers.lock().expect("not poisoned");
        assert_eq!(readers.len(), MAX_OFFSET_READERS);
        assert!(
            readers.contains_key("kept"),
            "a group in use keeps its reader"
        );
        assert!(!readers.contains_key("typed-0"));
    }
}
