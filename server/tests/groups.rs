//! Consumer-group behaviour against the real embedded broker, with real consumer instance processes.
//!
//! Each test starts its own broker on a free port and uses its own topic and group. Every wait is a
//! poll of what the instances reported, under a deadline.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use grouplab_backends::kafka::Cluster;
use grouplab_backends::kafka::EmbeddedBroker;
use grouplab_protocol::{
    Assignor, Backend, ConsumerSettings, GroupProtocol, InstanceConfig, InstanceId, InstanceReport,
    KeyMode,
};
use grouplab_server::config::locate_consumer_program;
use grouplab_server::supervisor::{
    ExitReason, InstanceEvent, InstanceEventKind, Owner, Supervisor, SupervisorConfig,
    SupervisorHandle,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The longest any single expectation may take; the crash test waits a session timeout within it.
const DEADLINE: Duration = Duration::from_secs(60);
/// A short session timeout keeps the crash tests quick.
const SESSION_TIMEOUT_MS: u32 = 4_000;

fn free_addr() -> SocketAddr {
    let probe = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port");
    probe.local_addr().expect("local address")
}

/// A broker, a supervisor, and everything the lab's instances reported so far.
struct Lab {
    _broker: EmbeddedBroker,
    cluster: Cluster,
    supervisor: SupervisorHandle,
    shutdown: CancellationToken,
    events: mpsc::Receiver<InstanceEvent>,
    sender: mpsc::Sender<InstanceEvent>,
    owned: HashMap<InstanceId, BTreeSet<i32>>,
    /// Every (partition, offset) received, and by whom.
    received: BTreeMap<(i32, i64), Vec<InstanceId>>,
    exits: HashMap<InstanceId, ExitReason>,
    /// Every assignment and revocation the instances' callbacks reported, with their stamps.
    moves: Vec<Move>,
    topic: String,
    group: String,
}

/// One partition given to, or taken from, an instance, as its rebalance callback reported it.
#[derive(Clone, Copy, Debug)]
struct Move {
    at_us: u64,
    instance: InstanceId,
    partition: i32,
    assigned: bool,
}

impl Lab {
    async fn new(name: &str, partitions: i32) -> Self {
        let broker = EmbeddedBroker::start(free_addr(), Duration::from_millis(300))
            .await
            .expect("the embedded broker starts");
        let cluster = Cluster::connect(&broker.bootstrap_servers()).expect("clients are created");
        cluster
            .wait_until_ready(Duration::from_secs(30))
            .await
            .expect("the broker answers");
        let topic = format!("{name}-topic");
        cluster
            .create_topic(&topic, partitions)
            .await
            .expect("the topic is created");
        let shutdown = CancellationToken::new();
        let (supervisor, _tasks) = Supervisor::spawn(
            SupervisorConfig {
                program: locate_consumer_program(),
                max_total: 8,
                max_per_owner: 8,
                max_per_learner: 8,
                stop_grace: Duration::from_secs(10),
            },
            shutdown.clone(),
        );
        let (sender, events) = mpsc::channel(1024);
        Self {
            _broker: broker,
            cluster,
            supervisor,
            shutdown,
            events,
            sender,
            owned: HashMap::new(),
            received: BTreeMap::new(),
            exits: HashMap::new(),
            moves: Vec::new(),
            topic,
            group: format!("{name}-group"),
        }
    }

    async fn start(&mut self) -> InstanceId {
        self.start_with(ConsumerSettings {
            session_timeout_ms: SESSION_TIMEOUT_MS,
            heartbeat_interval_ms: 500,
            ..ConsumerSettings::default()
        })
        .await
    }

    async fn start_with(&mut self, settings: ConsumerSettings) -> InstanceId {
        let config = InstanceConfig {
            backend: Backend::Kafka,
            bootstrap_servers: self.cluster.bootstrap_servers().to_owned(),
            group: self.group.clone(),
            topics: vec![self.topic.clone()],
            client_id: "test".into(),
            settings,
        };
        self.supervisor
            .start(Owner::lab("test"), config, self.sender.clone())
            .await
            .expect("the instance starts")
    }

    fn record(&mut self, event: InstanceEvent) {
        let moved = |partitions: &[grouplab_protocol::TopicPartition], assigned: bool| {
            partitions
                .iter()
                .map(|tp| Move {
                    at_us: event.at_us,
                    instance: event.id,
                    partition: tp.partition,
                    assigned,
                })
                .collect::<Vec<_>>()
        };
        match event.kind {
            InstanceEventKind::Report(InstanceReport::Assigned { partitions }) => {
                self.moves.extend(moved(&partitions, true));
                let owned = self.owned.entry(event.id).or_default();
                owned.extend(partitions.iter().map(|tp| tp.partition));
            }
            InstanceEventKind::Report(InstanceReport::Revoked { partitions }) => {
                self.moves.extend(moved(&partitions, false));
                let owned = self.owned.entry(event.id).or_default();
                for tp in partitions {
                    owned.remove(&tp.partition);
                }
            }
            InstanceEventKind::Report(InstanceReport::Message(m)) => {
                self.received
                    .entry((m.partition, m.offset))
                    .or_default()
                    .push(event.id);
            }
            InstanceEventKind::Exited(reason) => {
                self.owned.remove(&event.id);
                self.exits.insert(event.id, reason);
            }
            InstanceEventKind::Report(_) => {}
        }
    }

    /// Reads events until `done` holds, failing after [`DEADLINE`] with `what`.
    async fn wait_for(&mut self, what: &str, done: impl Fn(&Self) -> bool) {
        let until = tokio::time::Instant::now() + DEADLINE;
        while !done(self) {
            match tokio::time::timeout_at(until, self.events.recv()).await {
                Ok(Some(event)) => self.record(event),
                Ok(None) => panic!("the event channel closed while waiting for {what}"),
                Err(_) => panic!(
                    "timed out waiting for {what}; owned: {:?}, exits: {:?}",
                    self.owned, self.exits
                ),
            }
        }
    }

    fn owns(&self, id: InstanceId) -> BTreeSet<i32> {
        self.owned.get(&id).cloned().unwrap_or_default()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn all(partitions: i32) -> BTreeSet<i32> {
    (0..partitions).collect()
}

/// Both instances own partitions, and together they own each partition exactly once.
fn split_between(lab: &Lab, a: InstanceId, b: InstanceId, partitions: i32) -> bool {
    let (left, right) = (lab.owns(a), lab.owns(b));
    !left.is_empty()
        && !right.is_empty()
        && left.is_disjoint(&right)
        && left.union(&right).copied().collect::<BTreeSet<_>>() == all(partitions)
}

#[tokio::test]
async fn two_members_split_the_partitions_and_each_message_reaches_one() {
    let mut lab = Lab::new("split", 3).await;
    let a = lab.start().await;
    let b = lab.start().await;
    lab.wait_for("both members to share the partitions", |lab| {
        split_between(lab, a, b, 3)
    })
    .await;

    let landed = lab
        .cluster
        .produce(&lab.topic.clone(), 30, &KeyMode::None, None, None, 1)
        .await
        .expect("messages are produced");
    assert_eq!(landed.landed.values().sum::<u64>(), 30);
    lab.wait_for("all 30 messages to be received", |lab| {
        lab.received.len() == 30
    })
    .await;

    for ((partition, offset), receivers) in &lab.received {
        assert_eq!(
            receivers.len(),
            1,
            "P{partition}@{offset} received by {receivers:?}"
        );
        let owner = if lab.owns(a).contains(partition) {
            a
        } else {
            b
        };
        assert_eq!(
            receivers[0], owner,
            "P{partition}@{offset} went to a member that does not own it"
        );
    }
}

#[tokio::test]
async fn crash_waits_for_session_timeout_then_moves_partitions_to_the_survivor() {
    let mut lab = Lab::new("crash", 3).await;
    let a = lab.start().await;
    let b = lab.start().await;
    lab.wait_for("both members to share the partitions", |lab| {
        split_between(lab, a, b, 3)
    })
    .await;

    let crashed_at = Instant::now();
    lab.supervisor.crash(a).await.expect("the crash is sent");
    lab.wait_for("the crashed process to exit", |lab| {
        lab.exits.contains_key(&a)
    })
    .await;
    assert_eq!(lab.exits[&a], ExitReason::Crashed);
    lab.wait_for("the survivor to own every partition", |lab| {
        lab.owns(b) == all(3)
    })
    .await;
    let gap = crashed_at.elapsed();
    // A killed member sends no LeaveGroup: the group can only notice it through missing heartbeats.
    assert!(
        gap >= Duration::from_millis(u64::from(SESSION_TIMEOUT_MS) / 2),
        "partitions moved {gap:?} after the crash, too soon for a session timeout of {SESSION_TIMEOUT_MS} ms"
    );
}

#[tokio::test]
async fn graceful_stop_rebalances_at_once() {
    let mut lab = Lab::new("stop", 3).await;
    let a = lab.start().await;
    let b = lab.start().await;
    lab.wait_for("both members to share the partitions", |lab| {
        split_between(lab, a, b, 3)
    })
    .await;

    let stopped_at = Instant::now();
    lab.supervisor.stop(a).await.expect("the stop is sent");
    lab.wait_for("the survivor to own every partition", |lab| {
        lab.owns(b) == all(3)
    })
    .await;
    let gap = stopped_at.elapsed();
    lab.wait_for("the stopped process to exit", |lab| {
        lab.exits.contains_key(&a)
    })
    .await;
    assert_eq!(lab.exits[&a], ExitReason::Stopped);
    // LeaveGroup lets the group rebalance without waiting for the session to time out.
    assert!(
        gap < Duration::from_millis(u64::from(SESSION_TIMEOUT_MS)),
        "partitions moved {gap:?} after a graceful stop; that is no sooner than a crash"
    );
}

#[tokio::test]
async fn instance_cap_is_enforced_with_a_clear_message() {
    let broker = EmbeddedBroker::start(free_addr(), Duration::from_millis(300))
        .await
        .expect("the embedded broker starts");
    let shutdown = CancellationToken::new();
    let (supervisor, tasks) = Supervisor::spawn(
        SupervisorConfig {
            program: locate_consumer_program(),
            max_total: 5,
            max_per_owner: 1,
            max_per_learner: 8,
            stop_grace: Duration::from_secs(10),
        },
        shutdown.clone(),
    );
    let (sender, mut events) = mpsc::channel(64);
    let config = InstanceConfig {
        backend: Backend::Kafka,
        bootstrap_servers: broker.bootstrap_servers(),
        group: "cap".into(),
        topics: vec!["cap".into()],
        client_id: "test".into(),
        settings: ConsumerSettings::default(),
    };
    supervisor
        .start(Owner::lab("lab"), config.clone(), sender.clone())
        .await
        .expect("the first instance starts");
    let refused = supervisor
        .start(Owner::lab("lab"), config.clone(), sender.clone())
        .await
        .expect_err("the second instance of one lab is refused");
    assert!(
        refused.to_string().contains("the most allowed is 1"),
        "{refused}"
    );
    supervisor
        .start(Owner::lab("another lab"), config, sender)
        .await
        .expect("another lab has its own cap");

    // Shutting the supervisor down stops every instance, and each reports its exit.
    shutdown.cancel();
    let mut exits = 0;
    while exits < 2 {
        let event = tokio::time::timeout(DEADLINE, events.recv())
            .await
            .expect("instances exit before the deadline")
            .expect("events keep coming until every instance exited");
        if let InstanceEventKind::Exited(reason) = event.kind {
            assert_eq!(reason, ExitReason::Stopped);
            exits += 1;
        }
    }
    tokio::time::timeout(DEADLINE, tasks.wait())
        .await
        .expect("the supervisor's tasks end");
}

#[tokio::test]
async fn a_missing_consumer_program_is_reported_not_fatal() {
    let shutdown = CancellationToken::new();
    let (supervisor, _tasks) = Supervisor::spawn(
        SupervisorConfig {
            program: "/nonexistent/grouplab-consumer".into(),
            max_total: 1,
            max_per_owner: 1,
            max_per_learner: 8,
            stop_grace: Duration::from_secs(1),
        },
        shutdown.clone(),
    );
    let (sender, _events) = mpsc::channel(4);
    let config = InstanceConfig {
        backend: Backend::Kafka,
        bootstrap_servers: "127.0.0.1:1".into(),
        group: "g".into(),
        topics: vec!["t".into()],
        client_id: "test".into(),
        settings: ConsumerSettings::default(),
    };
    let err = supervisor
        .start(Owner::lab("lab"), config.clone(), sender.clone())
        .await
        .expect_err("spawning a missing program fails");
    assert!(err.to_string().contains("could not be started"), "{err}");
    // The failure took no slot: the supervisor still answers.
    let again = supervisor
        .start(Owner::lab("lab"), config, sender)
        .await
        .expect_err("still missing");
    assert!(
        again.to_string().contains("could not be started"),
        "{again}"
    );
    shutdown.cancel();
}

/// A consumer-protocol instance (KIP-848): the broker assigns, with its session timeout.
fn consumer_protocol() -> ConsumerSettings {
    ConsumerSettings {
        group_protocol: GroupProtocol::Consumer,
        assignor: Assignor::Uniform,
        ..ConsumerSettings::default()
    }
}

/// The partitions each instance was given and had taken away, in the order the callbacks ran.
fn revoked_by(lab: &Lab, instance: InstanceId, after_us: u64) -> Vec<i32> {
    lab.moves
        .iter()
        .filter(|m| m.instance == instance && !m.assigned && m.at_us >= after_us)
        .map(|m| m.partition)
        .collect()
}

/// From the callbacks' stamps: no partition was ever held by two instances at once. A partition
/// counts as held from the callback that assigned it until the one that revoked it (or the exit).
#[track_caller]
fn assert_never_owned_twice(lab: &Lab) {
    let mut moves = lab.moves.clone();
    moves.sort_by_key(|m| m.at_us);
    let mut holder: HashMap<i32, InstanceId> = HashMap::new();
    for m in &moves {
        if m.assigned {
            if let Some(other) = holder.get(&m.partition)
                && *other != m.instance
                && !lab.exits.contains_key(other)
            {
                panic!(
                    "P{} was assigned to {:?} while {other:?} still held it; moves: {moves:?}",
                    m.partition, m.instance
                );
            }
            holder.insert(m.partition, m.instance);
        } else if holder.get(&m.partition) == Some(&m.instance) {
            holder.remove(&m.partition);
        }
    }
}

#[tokio::test]
async fn consumer_protocol_members_share_the_topic_and_a_third_takes_only_what_moves() {
    let mut lab = Lab::new("kip848-scale", 6).await;
    let a = lab.start_with(consumer_protocol()).await;
    let b = lab.start_with(consumer_protocol()).await;
    lab.wait_for(
        "two consumer-protocol members to share 6 partitions",
        |lab| split_between(lab, a, b, 6) && lab.owns(a).len() == 3,
    )
    .await;
    let before = (lab.owns(a), lab.owns(b));
    let scaled_at = grouplab_backends::clock::now_us();

    let c = lab.start_with(consumer_protocol()).await;
    lab.wait_for("the third member to get its share", |lab| {
        [a, b, c].iter().all(|id| lab.owns(*id).len() == 2)
    })
    .await;
    let owned: BTreeSet<i32> = [a, b, c].iter().flat_map(|id| lab.owns(*id)).collect();
    assert_eq!(owned, all(6));
    // Only what moved was revoked: one partition from each of the first two, and they kept the rest.
    assert_eq!(revoked_by(&lab, a, scaled_at).len(), 1, "{:?}", lab.moves);
    assert_eq!(revoked_by(&lab, b, scaled_at).len(), 1, "{:?}", lab.moves);
    assert!(lab.owns(a).is_subset(&before.0));
    assert!(lab.owns(b).is_subset(&before.1));
    assert_never_owned_twice(&lab);

    // A clean stop sends a leave (epoch -1): its partitions move at once, long before the
    // broker's 10 s session timeout.
    let stopped_at = Instant::now();
    lab.supervisor.stop(c).await.expect("the stop is sent");
    lab.wait_for(
        "the others to take the stopped member's partitions",
        |lab| lab.owns(a).len() + lab.owns(b).len() == 6,
    )
    .await;
    assert!(
        stopped_at.elapsed() < Duration::from_secs(8),
        "partitions moved {:?} after a clean stop",
        stopped_at.elapsed()
    );

    // A crash (SIGKILL) sends nothing: its partitions move after the session timeout.
    let crashed_at = Instant::now();
    lab.supervisor.crash(b).await.expect("the crash is sent");
    lab.wait_for("the survivor to own every partition", |lab| {
        lab.owns(a) == all(6)
    })
    .await;
    assert!(
        crashed_at.elapsed() >= Duration::from_secs(5),
        "partitions moved {:?} after a crash, too soon for the broker's 10 s session",
        crashed_at.elapsed()
    );
    assert_never_owned_twice(&lab);

    // Messages reach the owner, and its commits (with its member epoch) are accepted.
    let landed = lab
        .cluster
        .produce(&lab.topic.clone(), 12, &KeyMode::None, None, None, 1)
        .await
        .expect("messages are produced");
    assert_eq!(landed.landed.values().sum::<u64>(), 12);
    lab.wait_for("all 12 messages to be received", |lab| {
        lab.received.len() >= 12
    })
    .await;
    let deadline = Instant::now() + DEADLINE;
    loop {
        let committed = lab
            .cluster
            .committed(&lab.group.clone(), &lab.topic.clone(), &[0, 1, 2, 3, 4, 5])
            .await
            .unwrap_or_default();
        if committed.iter().flatten().sum::<i64>() >= 12 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "commits never landed: {committed:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_static_consumer_protocol_member_restarts_without_moving_anything() {
    let mut lab = Lab::new("kip848-static", 4).await;
    let a = lab.start_with(consumer_protocol()).await;
    let fixed = ConsumerSettings {
        static_id: Some("box-1".to_owned()),
        ..consumer_protocol()
    };
    let b = lab.start_with(fixed.clone()).await;
    lab.wait_for("two members to share 4 partitions", |lab| {
        split_between(lab, a, b, 4) && lab.owns(a).len() == 2
    })
    .await;
    let (kept_a, kept_b) = (lab.owns(a), lab.owns(b));
    let restarted_at = grouplab_backends::clock::now_us();
    lab.supervisor.stop(b).await.expect("the stop is sent");
    lab.wait_for("the static member to exit", |lab| {
        lab.exits.contains_key(&b)
    })
    .await;
    let again = lab.start_with(fixed).await;
    lab.wait_for("the restarted member to get its partitions back", |lab| {
        lab.owns(again) == kept_b
    })
    .await;
    assert_eq!(lab.owns(a), kept_a);
    assert!(
        revoked_by(&lab, a, restarted_at).is_empty(),
        "the other member lost partitions: {:?}",
        lab.moves
    );
}

#[tokio::test]
async fn classic_and_consumer_protocol_members_cannot_share_a_group_and_are_told_why() {
    let mut lab = Lab::new("kip848-mixed", 2).await;
    let mut refusals = lab._broker.groups().refusals();
    let a = lab.start_with(consumer_protocol()).await;
    lab.wait_for("the consumer-protocol member to hold everything", |lab| {
        lab.owns(a) == all(2)
    })
    .await;
    // A classic member of the same group is refused (INCONSISTENT_GROUP_PROTOCOL), with words.
    let b = lab.start().await;
    let refusal = tokio::time::timeout(DEADLINE, async {
        loop {
            match refusals.recv().await {
                Ok(refusal) if refusal.group == lab.group => return refusal,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(err) => panic!("the refusals ended: {err}"),
            }
        }
    })
    .await
    .expect("the classic member is refused");
    assert!(
        refusal.reason.contains("consumer protocol"),
        "{}",
        refusal.reason
    );
    assert!(lab.owns(b).is_empty());
    assert_eq!(
        lab.owns(a),
        all(2),
        "the consumer-protocol member kept everything"
    );

    // The reverse: a consumer-protocol member of a classic group with members is refused
    // (GROUP_ID_NOT_FOUND, as Kafka with its migration policy disabled), with words.
    lab.group = format!("{}-classic", lab.group);
    let c = lab.start().await;
    lab.wait_for("the classic member to hold everything", |lab| {
        lab.owns(c) == all(2)
    })
    .await;
    let d = lab.start_with(consumer_protocol()).await;
    let group = lab.group.clone();
    let refusal = tokio::time::timeout(DEADLINE, async {
        loop {
            match refusals.recv().await {
                Ok(refusal) if refusal.group == group => return refusal,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(err) => panic!("the refusals ended: {err}"),
            }
        }
    })
    .await
    .expect("the consumer-protocol member is refused");
    assert!(
        refusal.reason.contains("classic protocol"),
        "{}",
        refusal.reason
    );
    assert!(lab.owns(d).is_empty());
}
