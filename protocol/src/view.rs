//! The live view of one lab, as the browser shows it.

use serde::{Deserialize, Serialize};

use crate::{
    ConsumerSettings, Departure, EpochMillis, GroupProtocol, GroupState, GroupView, MemberView,
    PROTOCOL_VERSION, ServerEvent, Solution, TopicPartition,
};

/// How many timeline entries a snapshot keeps.
pub const MAX_TIMELINE: usize = 200;
/// How many recent messages a snapshot keeps.
pub const MAX_MESSAGES: usize = 60;

/// Everything a lab page shows live.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabSnapshot {
    pub protocol_version: u32,
    pub lab_id: String,
    pub broker: BrokerView,
    /// Topics, sorted by name.
    pub topics: Vec<TopicView>,
    /// The lab's consumer groups with every member, whoever runs it; sorted by name.
    pub groups: Vec<GroupView>,
    /// Instances, sorted by id; stopped and crashed ones stay until their name is reused.
    pub instances: Vec<InstanceView>,
    /// The newest [`MAX_TIMELINE`] entries, oldest first.
    pub timeline: Vec<TimelineEntry>,
    /// The newest [`MAX_MESSAGES`] sampled messages, oldest first.
    pub messages: Vec<MessageView>,
    /// What happened to each message, per group and topic the lab's instances consumed.
    pub ledgers: Vec<LedgerView>,
    /// Each group's lag on each topic it commits to, over time, with a status per partition.
    pub lag: Vec<LagView>,
    /// What is wrong with the latest edit of the lab's files, while the last good version serves.
    pub lab_problem: Option<String>,
    /// The partition each key of the lab's produced messages landed in, by topic and key;
    /// at most [`MAX_KEYS_SHOWN`].
    pub keys: Vec<KeyPlacement>,
    /// On a Redis lab, its streams with their groups, consumers and pending entries, sorted by name.
    pub streams: Vec<crate::StreamView>,
    /// On a RabbitMQ lab, its queues with their consumers, sorted by name.
    pub queues: Vec<crate::RabbitQueueView>,
    /// On a Redis or RabbitMQ lab, what each consumer held over time: the newest
    /// [`crate::held::MAX_HELD_SAMPLES`] changes of each source, oldest first.
    #[serde(default)]
    pub held: Vec<crate::held::HeldSample>,
    /// The latest crash of a page instance on each broker, in any lab of this server.
    pub crashes: Vec<crate::CrashReport>,
    pub progress: ProgressView,
    /// In a class, the instructor's latest message to this learner.
    #[serde(default)]
    pub banner: Option<crate::class::Banner>,
}

impl LabSnapshot {
    pub fn new(lab_id: impl Into<String>, broker: BrokerView, steps: usize) -> Self {
        Self {
            protocol_version: PROTOCOL_VERSION,
            lab_id: lab_id.into(),
            broker,
            topics: Vec::new(),
            groups: Vec::new(),
            instances: Vec::new(),
            timeline: Vec::new(),
            messages: Vec::new(),
            ledgers: Vec::new(),
            keys: Vec::new(),
            lag: Vec::new(),
            streams: Vec::new(),
            queues: Vec::new(),
            held: Vec::new(),
            crashes: Vec::new(),
            lab_problem: None,
            progress: ProgressView::new(steps),
            banner: None,
        }
    }

    /// Applies one event. The server and the browser both change their view only through this.
    pub fn apply(&mut self, event: &ServerEvent) {
        match event {
            ServerEvent::Snapshot(snapshot) => *self = (**snapshot).clone(),
            ServerEvent::Broker(broker) => self.broker = broker.clone(),
            ServerEvent::Topic(topic) => {
                upsert(&mut self.topics, topic.clone(), |t| t.name.clone());
            }
            ServerEvent::TopicRemoved { topic } => self.topics.retain(|t| &t.name != topic),
            ServerEvent::Group(group) => {
                upsert(&mut self.groups, group.clone(), |g| g.name.clone());
            }
            ServerEvent::GroupRemoved { group } => self.groups.retain(|g| &g.name != group),
            ServerEvent::Instance(instance) => {
                upsert(&mut self.instances, (**instance).clone(), |i| i.id);
            }
            ServerEvent::InstanceRemoved { instance } => {
                self.instances.retain(|i| i.id != *instance)
            }
            ServerEvent::Timeline(entry) => {
                self.timeline.push(entry.clone());
                trim_front(&mut self.timeline, MAX_TIMELINE);
            }
            ServerEvent::Messages(batch) => {
                for (id, count) in &batch.received {
                    if let Some(instance) = self.instances.iter_mut().find(|i| i.id == *id) {
                        instance.received += count;
                    }
                }
                for (id, count) in &batch.processed {
                    if let Some(instance) = self.instances.iter_mut().find(|i| i.id == *id) {
                        instance.processed += count;
                    }
                }
                self.messages.extend(batch.sample.iter().cloned());
                trim_front(&mut self.messages, MAX_MESSAGES);
            }
            ServerEvent::Keys { placements } => {
                for placement in placements {
                    if self.keys.len() >= MAX_KEYS_SHOWN
                        && !self
                            .keys
                            .iter()
                            .any(|k| k.topic == placement.topic && k.key == placement.key)
                    {
                        continue;
                    }
                    upsert(&mut self.keys, placement.clone(), |k| {
                        (k.topic.clone(), k.key.clone())
                    });
                }
            }
            ServerEvent::LabChanged { problem, .. } => self.lab_problem = problem.clone(),
            ServerEvent::Lag(lag) => {
                upsert(&mut self.lag, lag.clone(), |l| {
                    (l.group.clone(), l.topic.clone())
                });
            }
            ServerEvent::Ledger(ledger) => {
                upsert(&mut self.ledgers, ledger.clone(), |l| {
                    (l.group.clone(), l.topic.clone())
                });
            }
            ServerEvent::Stream(stream) => {
                match self.streams.iter_mut().find(|s| s.name == stream.name) {
                    Some(found) => *found = stream.clone(),
                    None => {
                        self.streams.push(stream.clone());
                        self.streams.sort_by(|a, b| a.name.cmp(&b.name));
                    }
                }
            }
            ServerEvent::StreamRemoved { stream } => self.streams.retain(|s| &s.name != stream),
            ServerEvent::Queue(queue) => {
                match self.queues.iter_mut().find(|q| q.name == queue.name) {
                    Some(found) => *found = queue.clone(),
                    None => {
                        self.queues.push(queue.clone());
                        self.queues.sort_by(|a, b| a.name.cmp(&b.name));
                    }
                }
            }
            ServerEvent::QueueRemoved { queue } => self.queues.retain(|q| &q.name != queue),
            ServerEvent::Held(sample) => {
                self.held.push(sample.clone());
                // Each source keeps its own newest samples: a busy queue does not push a quiet
                // one's history out.
                let of_source = self
                    .held
                    .iter()
                    .filter(|s| s.source == sample.source)
                    .count();
                if of_source > crate::held::MAX_HELD_SAMPLES
                    && let Some(oldest) = self.held.iter().position(|s| s.source == sample.source)
                {
                    self.held.remove(oldest);
                }
            }
            ServerEvent::Crashes(crashes) => self.crashes = crashes.clone(),
            ServerEvent::Progress(progress) => self.progress = progress.clone(),
            ServerEvent::Notice(_) => {}
            ServerEvent::Banner(banner) => self.banner = Some(banner.clone()),
        }
    }

    pub fn stream(&self, name: &str) -> Option<&crate::StreamView> {
        self.streams.iter().find(|s| s.name == name)
    }

    /// The newest sample of a stream group's or a queue's counts.
    pub fn last_held(&self, source: &str) -> Option<&crate::held::HeldSample> {
        self.held.iter().rev().find(|s| s.source == source)
    }

    pub fn queue(&self, name: &str) -> Option<&crate::RabbitQueueView> {
        self.queues.iter().find(|q| q.name == name)
    }

    pub fn topic(&self, name: &str) -> Option<&TopicView> {
        self.topics.iter().find(|t| t.name == name)
    }

    pub fn instance(&self, id: InstanceId) -> Option<&InstanceView> {
        self.instances.iter().find(|i| i.id == id)
    }

    pub fn group(&self, name: &str) -> Option<&GroupView> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// The member that owns a partition in a group, as the broker sees it: possibly a crashed
    /// instance that the group has not noticed yet.
    pub fn owner(&self, group: &str, partition: &TopicPartition) -> Option<&MemberView> {
        self.group(group)?
            .members
            .iter()
            .find(|m| m.partitions.contains(partition))
    }

    /// The group member an instance is, once it has joined.
    pub fn member_of(&self, instance: InstanceId) -> Option<&MemberView> {
        self.groups
            .iter()
            .flat_map(|g| &g.members)
            .find(|m| m.instance() == Some(instance))
    }

    /// Whether a member is doing work: in its group, and, if grouplab runs it, its process is running.
    /// An external member counts until the coordinator removes it.
    pub fn is_working(&self, member: &MemberView) -> bool {
        member.is_working(&self.instances)
    }
}

fn upsert<T, K: PartialEq + Ord>(items: &mut Vec<T>, item: T, key: impl Fn(&T) -> K) {
    let k = key(&item);
    match items.binary_search_by(|probe| key(probe).cmp(&k)) {
        Ok(index) => items[index] = item,
        Err(index) => items.insert(index, item),
    }
}

fn trim_front<T>(items: &mut Vec<T>, max: usize) {
    if items.len() > max {
        items.drain(..items.len() - max);
    }
}

/// Which broker the lab talks to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerView {
    /// Which broker the lab runs on.
    #[serde(default)]
    pub backend: crate::Backend,
    /// The address to give a consumer: the page shows it so learners can connect their own scripts.
    pub bootstrap_servers: String,
    /// `true` for the broker embedded in the grouplab server, `false` for a cluster named by the user.
    pub embedded: bool,
    pub health: BrokerHealth,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokerHealth {
    /// Not yet checked.
    Unknown,
    Up,
    /// The broker did not answer; `reason` says what failed, in a learner's words.
    Down {
        reason: String,
    },
    /// The embedded broker was taken down from a lab page ("Broker down"), since `since`.
    Stopped {
        since: EpochMillis,
    },
}

impl BrokerHealth {
    /// Whether clients can reach the broker now, as far as grouplab knows.
    pub fn is_up(&self) -> bool {
        matches!(self, Self::Up)
    }

    /// What the page says while the broker cannot be reached, in a learner's words.
    pub fn outage(&self) -> Option<String> {
        match self {
            Self::Unknown | Self::Up => None,
            Self::Down { reason } => Some(reason.clone()),
            Self::Stopped { .. } => Some(
                "The embedded broker is down: it was stopped from a lab page. Consumers keep retrying and lose their group after their session timeout; producing and creating topics fail. Press \"Broker up\" to start it again with everything it stored.".to_owned(),
            ),
        }
    }
}

/// A topic's partitions drawn as lanes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicView {
    pub name: String,
    pub partitions: Vec<PartitionView>,
    /// The committed offsets of each group that reads this topic.
    pub groups: Vec<GroupOffsets>,
}

impl TopicView {
    /// The group's committed offset on a partition, if it has one.
    pub fn committed(&self, group: &str, partition: i32) -> Option<i64> {
        let index = self
            .partitions
            .iter()
            .position(|p| p.partition == partition)?;
        let offsets = self.groups.iter().find(|g| g.group == group)?;
        offsets.committed.get(index).copied().flatten()
    }

    /// Messages in the partition that the group has not committed yet.
    pub fn lag(&self, group: &str, partition: i32) -> Option<i64> {
        let lane = self.partitions.iter().find(|p| p.partition == partition)?;
        let offsets = self.groups.iter().find(|g| g.group == group)?;
        let index = self
            .partitions
            .iter()
            .position(|p| p.partition == partition)?;
        let committed = offsets.committed.get(index).copied().flatten();
        Some(lag(lane, committed))
    }

    /// The group's lag summed over all partitions.
    pub fn total_lag(&self, group: &str) -> i64 {
        self.partitions
            .iter()
            .filter_map(|p| self.lag(group, p.partition))
            .sum()
    }

    /// Messages in the topic, counted from each partition's first retained offset.
    pub fn message_count(&self) -> i64 {
        self.partitions
            .iter()
            .map(|p| p.log_end - p.log_start)
            .sum()
    }
}

/// The lag of a group on one partition: what lies between its committed offset and the log end.
/// Without a commit the group starts from the earliest retained offset (`auto.offset.reset=earliest`).
pub fn lag(partition: &PartitionView, committed: Option<i64>) -> i64 {
    let from = committed
        .unwrap_or(partition.log_start)
        .max(partition.log_start);
    (partition.log_end - from).max(0)
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PartitionView {
    pub partition: i32,
    /// The first retained offset (the low watermark).
    pub log_start: i64,
    /// The offset the next message will get (the high watermark).
    pub log_end: i64,
}

/// One group's committed offsets, in the order of [`TopicView::partitions`]; `None` where it never committed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GroupOffsets {
    pub group: String,
    pub committed: Vec<Option<i64>>,
}

/// A lab-wide instance number; it never repeats within a server's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InstanceId(pub u64);

/// A consumer instance as the learner sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceView {
    pub id: InstanceId,
    /// The learner-facing name: A, B, C…
    pub name: String,
    /// An index into the page's palette; the same name always gets the same colour.
    pub colour: u8,
    pub group: String,
    pub topic: String,
    /// The `client.id` the instance uses, unique on this server, which links it to its group member.
    pub client_id: String,
    pub settings: ConsumerSettings,
    pub state: InstanceState,
    /// The partitions the instance's own rebalance callbacks say it holds.
    /// The page shows ownership from the broker ([`MemberView::partitions`]); this is the consumer's side.
    pub partitions: Vec<TopicPartition>,
    /// Messages received, counted exactly.
    pub received: u64,
    /// Messages whose processing finished, counted exactly.
    pub processed: u64,
    pub started_at: EpochMillis,
    /// The client's latest error (a broker it cannot reach, a failed commit), until it works again.
    pub problem: Option<InstanceProblem>,
    /// The poll loop's latest poll that returned messages, while it processes them.
    pub busy: Option<Busy>,
    /// The internal queue, for an instance that processes on a worker.
    pub queue: Option<QueueView>,
    /// The message whose processing keeps failing, while it is retried.
    pub failing: Option<Failing>,
    /// Messages parked in the dead-letter topic so far.
    pub dead_lettered: u64,
    /// When the instance wrote the last report that was sent to the pages as it came (its
    /// callback's clock; `Polled` reports, sent at the server's next tick, do not count); 0
    /// before the first. The latency benchmark compares it with the time the page applies it.
    #[serde(default)]
    pub reported_at_us: crate::EpochMicros,
}

/// A message an instance keeps failing to process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failing {
    pub partition: i32,
    pub offset: i64,
    pub attempts: u32,
    pub error: String,
}

/// A poll loop busy processing what its last poll returned: no poll happens until it is done,
/// so the time since `polled_at` counts against `max.poll.interval.ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Busy {
    pub polled_at: EpochMillis,
    pub messages: u32,
}

/// An instance's internal queue between its poll loop and its worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueView {
    pub depth: u32,
    /// Whether the poll loop paused its partitions because the queue is full.
    pub paused: bool,
}

/// The fate of every message of one topic in one group: processed, lost, processed twice.
///
/// Only page instances report what they process; a partition that one of the learner's own
/// consumers owned at some point is listed in `unknown`, and its messages are not judged.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerView {
    pub group: String,
    pub topic: String,
    /// Messages processed at least once.
    pub processed: u64,
    /// Messages below the group's committed offset that no member processed: the group will never read them.
    pub lost: u64,
    /// Messages processed more than once.
    pub duplicated: u64,
    /// Some lost messages, as (partition, offset), lowest first.
    pub lost_sample: Vec<(i32, i64)>,
    /// Some duplicated messages, as (partition, offset), lowest first.
    pub duplicated_sample: Vec<(i32, i64)>,
    /// Partitions the learner's own consumers owned: processing there is known only through commits.
    pub unknown: Vec<i32>,
    /// False when the record of one partition overflowed its cap and the counts are a floor.
    pub exact: bool,
    /// The order in which messages arrived.
    pub order: OrderView,
}

/// A group's lag on one topic: the total over time, each partition's lag and status, and how
/// fast each of the group's page instances processes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LagView {
    pub group: String,
    pub topic: String,
    /// (time, total lag), oldest first, one per poll of the broker; at most [`LAG_POINTS`].
    pub chart: Vec<(EpochMillis, i64)>,
    pub partitions: Vec<PartitionLag>,
    /// Messages processed per second by each page instance of the group, over the last seconds.
    pub rates: Vec<(InstanceId, f64)>,
}

/// How many points a lag chart keeps: about a minute and a half of polls.
pub const LAG_POINTS: usize = 128;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionLag {
    pub partition: i32,
    pub lag: i64,
    pub status: LagStatus,
}

/// A partition's health in the spirit of Burrow's rules, judged over the last polls (the
/// window): how its lag and the group's committed offset moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LagStatus {
    /// Not enough polls yet to judge.
    #[default]
    Measuring,
    /// Lag was zero at some point in the window, or did not grow over it.
    Ok,
    /// The group commits, but lag grew over the window: it is falling behind.
    Warning,
    /// Lag, a working owner, and a committed offset that did not move over the window: stuck.
    Stall,
    /// Lag, no working owner, and a committed offset that did not move: nobody is reading.
    Stop,
}

impl LagStatus {
    pub fn label(self) -> &'static str {
        match self {
            Self::Measuring => "…",
            Self::Ok => "OK",
            Self::Warning => "WARNING",
            Self::Stall => "STALL",
            Self::Stop => "STOP",
        }
    }
}

/// Where the messages with one key landed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPlacement {
    pub topic: String,
    pub key: String,
    /// One partition, unless messages with this key were sent to a chosen partition.
    pub partitions: Vec<i32>,
}

/// The most keys a lab's view lists.
pub const MAX_KEYS_SHOWN: usize = 200;

/// In what order a group's page instances received messages, against the order they were
/// produced (the number grouplab's producer puts in each value, `click #N`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderView {
    /// Messages with a key received for the first time.
    pub keyed: u64,
    /// Of those, how many arrived after a later message with the same key.
    pub out_of_key_order: u64,
    /// Messages that arrived at an instance after a message produced later (from another
    /// partition): order across partitions.
    pub overtaken: u64,
    /// One overtaking, in words: "#4 arrived after #12 (P1 after P0)".
    pub example: Option<String>,
}

/// How many offsets a ledger lists as examples.
pub const LEDGER_SAMPLE: usize = 12;

/// An error an instance's client reported, as it worded it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceProblem {
    pub message: String,
    pub at: EpochMillis,
}

impl InstanceView {
    /// Its consumer's name in a Redis group: the one it was given, or its client id.
    pub fn consumer_name(&self) -> &str {
        self.settings
            .consumer_name
            .as_deref()
            .unwrap_or(&self.client_id)
    }

    /// Whether the process is still running (or about to).
    pub fn is_alive(&self) -> bool {
        matches!(
            self.state,
            InstanceState::Starting
                | InstanceState::Joining
                | InstanceState::Running
                | InstanceState::Stopping { .. }
        )
    }
}

/// The lifecycle of a consumer instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    /// The process was started and has not reported yet.
    Starting,
    /// The consumer subscribed and waits for its first assignment.
    Joining,
    /// The consumer is a member of its group (possibly with no partitions, if there are more members than partitions).
    Running,
    /// A graceful stop was asked for: the consumer is committing and leaving.
    Stopping { since: EpochMillis },
    /// The process was killed. Its group keeps it as a member until `noticed_at`, when another member takes its partitions.
    Crashed {
        at: EpochMillis,
        session_timeout_ms: u32,
        noticed_at: Option<EpochMillis>,
    },
    /// The consumer left its group and the process exited.
    Stopped { at: EpochMillis },
    /// The process ended on its own, or could not start.
    Failed { at: EpochMillis, reason: String },
}

impl InstanceState {
    /// A short word for the instance card.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Joining => "joining",
            Self::Running => "running",
            Self::Stopping { .. } => "stopping",
            Self::Crashed { .. } => "crashed",
            Self::Stopped { .. } => "stopped",
            Self::Failed { .. } => "failed",
        }
    }
}

/// A consumed message shown in the page; only grouplab's own instances report each message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageView {
    pub instance: InstanceId,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// On Redis, the entry's id; on RabbitMQ, the delivery tag (neither has partitions or offsets).
    pub entry: Option<String>,
    pub key: Option<String>,
    pub value: String,
    pub at: EpochMillis,
}

/// Something that happened to a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub at: EpochMillis,
    pub group: String,
    pub instance: Option<InstanceId>,
    /// The group member concerned, if any.
    pub member: Option<String>,
    /// The instance's or member's name and colour, kept here because its card may be gone by the time the entry is read.
    pub name: String,
    pub colour: u8,
    pub kind: TimelineKind,
    pub partitions: Vec<TopicPartition>,
    /// Consumer protocol: the member's epoch when the group was seen so (its revocations and
    /// assignments carry it).
    #[serde(default)]
    pub epoch: Option<i32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimelineKind {
    /// An instance process started.
    Started,
    /// A member joined the group.
    Joined,
    /// A member is no longer in the group. `left_at` is when it stopped working, as far as is
    /// known (its LeaveGroup, its crash, its last heartbeat); the entry's own time is when its
    /// group was seen without it. 0 when not known.
    Departed {
        departure: Departure,
        #[serde(default)]
        left_at: EpochMillis,
    },
    /// The group changed state or generation.
    Group {
        state: GroupState,
        generation: Option<i32>,
        assignor: Option<String>,
        /// The leader's name as the page shows it.
        leader: Option<String>,
        /// Under the consumer protocol, `generation` is the group epoch.
        #[serde(default)]
        protocol: GroupProtocol,
    },
    /// A rebalance gave the member partitions. `unowned_ms` is the longest any of them had no working owner before.
    Assigned { unowned_ms: Option<u64> },
    /// A rebalance took partitions away from the member.
    Revoked,
    /// The learner asked for a graceful stop.
    Stopping,
    /// The instance left its group and exited.
    Stopped,
    /// The instance was killed without leaving its group.
    Crashed,
    /// The instance's own revoke callback gave these partitions up (the broker's view of the
    /// same rebalance is in `Revoked` and `Assigned` entries).
    Released,
    /// The instance's client left its group because processing kept it from polling within
    /// `max.poll.interval.ms`; its partitions go to the others.
    PollTimeout { max_poll_interval_ms: u32 },
    /// The instance's process ended unexpectedly, or failed to start.
    Failed { reason: String },
    /// The broker stopped answering, or was taken down from a page; the entry concerns every
    /// group. `reason` is short: "stopped answering".
    BrokerDown { reason: String },
    /// The broker answers again.
    BrokerUp,
    /// A Redis consumer claimed entries that another consumer had left pending (`XAUTOCLAIM`).
    Claimed { entries: Vec<String> },
    /// The class's instructor acted on the lab (`action` as [`crate::class::InstructorAction::describe`] says it).
    Instructor { action: String },
}

/// The learner's progress through a lab.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressView {
    /// One entry per step, in order.
    pub steps: Vec<StepStatus>,
    /// The hints opened so far, in order, as HTML: the page has no other copy of them.
    pub hints: Vec<String>,
    /// The solution, once revealed: the page has no other copy of it.
    pub solution: Option<Solution>,
}

impl ProgressView {
    pub fn new(steps: usize) -> Self {
        Self {
            steps: vec![StepStatus::default(); steps],
            hints: Vec::new(),
            solution: None,
        }
    }

    /// The first step not passed yet, if any.
    pub fn current_step(&self) -> Option<usize> {
        self.steps.iter().position(|s| s.passed_at.is_none())
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepStatus {
    /// When the server saw the step's checkpoint pass; it stays passed.
    pub passed_at: Option<EpochMillis>,
    /// What the server sees now for this step's checkpoint, for the learner to compare with the goal.
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MessageBatch, Notice};

    fn broker() -> BrokerView {
        BrokerView {
            backend: Default::default(),
            bootstrap_servers: "127.0.0.1:9092".into(),
            embedded: true,
            health: BrokerHealth::Up,
        }
    }

    #[test]
    fn a_busy_source_does_not_push_a_quiet_ones_history_out() {
        use crate::held::{HeldSample, MAX_HELD_SAMPLES};
        let sample = |at: u64, source: &str| HeldSample {
            at,
            source: source.to_owned(),
            waiting: Some(at),
            consumers: Vec::new(),
        };
        let mut view = LabSnapshot::new("14-rabbitmq", broker(), 1);
        view.apply(&ServerEvent::Held(sample(1, "tasks.dead")));
        for at in 0..(MAX_HELD_SAMPLES as u64 + 50) {
            view.apply(&ServerEvent::Held(sample(10 + at, "tasks")));
        }
        let busy: Vec<_> = view.held.iter().filter(|s| s.source == "tasks").collect();
        assert_eq!(busy.len(), MAX_HELD_SAMPLES);
        assert_eq!(
            busy[0].at,
            10 + 50,
            "the oldest of the busy source went first"
        );
        assert_eq!(view.last_held("tasks.dead").map(|s| s.at), Some(1));
    }

    fn instance(id: u64, name: &str) -> InstanceView {
        InstanceView {
            id: InstanceId(id),
            name: name.into(),
            colour: 0,
            group: "g".into(),
            topic: "t".into(),
            client_id: format!("grouplab-{name}-{id}"),
            settings: ConsumerSettings::default(),
            state: InstanceState::Running,
            partitions: vec![TopicPartition::new("t", 0)],
            received: 0,
            processed: 0,
            busy: None,
            queue: None,
            failing: None,
            dead_lettered: 0,
            reported_at_us: 0,
            started_at: 1,
            problem: None,
        }
    }

    #[test]
    fn events_round_trip_through_json() {
        let mut snapshot = LabSnapshot::new("lab", broker(), 2);
        snapshot.instances.push(instance(1, "A"));
        let events = [
            ServerEvent::Snapshot(Box::new(snapshot)),
            ServerEvent::Instance(Box::new(instance(2, "B"))),
            ServerEvent::Timeline(TimelineEntry {
                at: 5,
                group: "g".into(),
                instance: Some(InstanceId(2)),
                member: Some("grouplab-B-2-0f3c".into()),
                name: "B".into(),
                colour: 1,
                kind: TimelineKind::Assigned {
                    unowned_ms: Some(10_250),
                },
                partitions: vec![TopicPartition::new("t", 2)],
                epoch: None,
            }),
            ServerEvent::Notice(Notice::error("Broker down", "Start it again.")),
            ServerEvent::Keys {
                placements: vec![KeyPlacement {
                    topic: "t".into(),
                    key: "user-1".into(),
                    partitions: vec![2],
                }],
            },
            ServerEvent::Ledger(LedgerView {
                group: "g".into(),
                topic: "t".into(),
                lost: 5,
                lost_sample: vec![(0, 15)],
                ..LedgerView::default()
            }),
        ];
        for event in events {
            let json = serde_json::to_string(&event).expect("events serialize");
            let back: ServerEvent = serde_json::from_str(&json).expect("events deserialize");
            assert_eq!(back, event, "{json}");
        }
    }

    #[test]
    fn applying_events_upserts_in_id_order_and_counts_exactly() {
        let mut view = LabSnapshot::new("lab", broker(), 1);
        view.apply(&ServerEvent::Instance(Box::new(instance(2, "B"))));
        view.apply(&ServerEvent::Instance(Box::new(instance(1, "A"))));
        let mut crashed = instance(1, "A");
        crashed.state = InstanceState::Crashed {
            at: 9,
            session_timeout_ms: 10_000,
            noticed_at: None,
        };
        view.apply(&ServerEvent::Instance(Box::new(crashed.clone())));
        assert_eq!(
            view.instances.iter().map(|i| i.id.0).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(view.instances[0], crashed);

        let batch = MessageBatch {
            sample: Vec::new(),
            received: vec![(InstanceId(2), 1_000), (InstanceId(1), 3)],
            processed: vec![(InstanceId(1), 2)],
            reported_us: None,
        };
        view.apply(&ServerEvent::Messages(batch.clone()));
        view.apply(&ServerEvent::Messages(batch));
        assert_eq!(view.instances[0].received, 6);
        assert_eq!(view.instances[0].processed, 4);
        assert_eq!(view.instances[1].received, 2_000);
        assert_eq!(view.instances[1].processed, 0);
    }

    fn member(id: &str, origin: crate::MemberOrigin, partitions: &[i32]) -> MemberView {
        MemberView {
            member_id: id.into(),
            client_id: id.into(),
            host: None,
            group_instance_id: None,
            origin,
            name: id.into(),
            colour: 0,
            partitions: partitions
                .iter()
                .map(|&p| TopicPartition::new("t", p))
                .collect(),
            joined_at: 0,
            last_heartbeat: None,
            session_timeout_ms: None,
            member_epoch: None,
            target: None,
        }
    }

    #[test]
    fn owners_come_from_group_members_whoever_runs_them() {
        let mut view = LabSnapshot::new("lab", broker(), 1);
        let mut crashed = instance(1, "A");
        crashed.state = InstanceState::Crashed {
            at: 1,
            session_timeout_ms: 10_000,
            noticed_at: None,
        };
        view.apply(&ServerEvent::Instance(Box::new(crashed)));
        let group = GroupView {
            name: "g".into(),
            state: GroupState::Stable,
            generation: Some(3),
            assignor: Some("range".into()),
            leader: Some("ext".into()),
            members: vec![
                member(
                    "a",
                    crate::MemberOrigin::Instance {
                        instance: InstanceId(1),
                    },
                    &[0],
                ),
                member("ext", crate::MemberOrigin::External, &[1, 2]),
            ],
            source: crate::MembershipSource::Coordinator,
            decided_at_us: 0,
            assignment_epoch: None,
            protocol: Default::default(),
        };
        view.apply(&ServerEvent::Group(group.clone()));
        view.apply(&ServerEvent::Group(group));
        assert_eq!(view.groups.len(), 1);
        let owner = |p| {
            view.owner("g", &TopicPartition::new("t", p))
                .map(|m| m.name.as_str())
        };
        assert_eq!(
            (owner(0), owner(2), owner(3)),
            (Some("a"), Some("ext"), None)
        );
        let working: Vec<_> = view.groups[0]
            .members
            .iter()
            .filter(|m| view.is_working(m))
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(working, ["ext"], "a crashed instance's member does no work");
        assert_eq!(
            view.member_of(InstanceId(1)).map(|m| m.name.as_str()),
            Some("a")
        );
        view.apply(&ServerEvent::GroupRemoved { group: "g".into() });
        assert!(view.groups.is_empty());
    }

    #[test]
    fn timeline_and_messages_keep_only_the_newest() {
        let mut view = LabSnapshot::new("lab", broker(), 1);
        for at in 0..(MAX_TIMELINE as u64 + 10) {
            view.apply(&ServerEvent::Timeline(TimelineEntry {
                at,
                group: "g".into(),
                instance: None,
                member: None,
                name: String::new(),
                colour: 0,
                kind: TimelineKind::Revoked,
                partitions: Vec::new(),
                epoch: None,
            }));
        }
        assert_eq!(view.timeline.len(), MAX_TIMELINE);
        assert_eq!(view.timeline[0].at, 10);
    }

    #[track_caller]
    fn check_lag(log_start: i64, log_end: i64, committed: Option<i64>, expected: i64) {
        let lane = PartitionView {
            partition: 0,
            log_start,
            log_end,
        };
        assert_eq!(lag(&lane, committed), expected);
    }

    #[test]
    fn lag_counts_what_the_group_has_not_committed() {
        check_lag(0, 10, Some(4), 6);
        check_lag(0, 10, None, 10);
        check_lag(5, 10, None, 5);
        check_lag(5, 10, Some(2), 5);
        check_lag(0, 10, Some(10), 0);
        check_lag(0, 0, None, 0);
    }
}
