//! Scale-out from two members to three, under each rebalance protocol: how long each partition
//! that a running member gave up went without an owner, and how many members had to stop.
//!
//! `cargo run -p grouplab-benches --bin scale_out -- [runs] [partitions]` (defaults 5 and 6).
//! Each run starts its own embedded broker and three real consumer instances (`grouplab-consumer`,
//! rdkafka 0.39), in this order: classic with `range` (eager), classic with `cooperative-sticky`,
//! and the consumer protocol (KIP-848) with `uniform`. The figures come from the instances' own
//! rebalance callbacks, stamped by their clocks: a partition is without an owner from the revoke
//! callback that gave it up to the assign callback that got it (the same member or another).
//! The session timeout is 10 s and the heartbeat interval 1 s under every protocol.

use std::collections::{BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::Duration;

use anyhow::{Context, bail};
use grouplab_backends::kafka::{Cluster, EmbeddedBroker};
use grouplab_protocol::{
    Assignor, Backend, ConsumerSettings, GroupProtocol, InstanceConfig, InstanceId, InstanceReport,
};
use grouplab_server::config::locate_consumer_program;
use grouplab_server::supervisor::{
    InstanceEvent, InstanceEventKind, Owner, Supervisor, SupervisorConfig, SupervisorHandle,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(60);

#[derive(Clone, Copy)]
struct Protocol {
    name: &'static str,
    group_protocol: GroupProtocol,
    assignor: Assignor,
}

const PROTOCOLS: [Protocol; 3] = [
    Protocol {
        name: "classic, range (eager)",
        group_protocol: GroupProtocol::Classic,
        assignor: Assignor::Range,
    },
    Protocol {
        name: "classic, cooperative-sticky",
        group_protocol: GroupProtocol::Classic,
        assignor: Assignor::CooperativeSticky,
    },
    Protocol {
        name: "consumer (KIP-848), uniform",
        group_protocol: GroupProtocol::Consumer,
        assignor: Assignor::Uniform,
    },
];

/// What one scale-out did.
struct Outcome {
    /// For each partition a running member gave up: how long until a member got it (ms).
    gaps_ms: Vec<f64>,
    /// How many of the two first members gave up everything they held.
    stopped: usize,
    /// From the third member's start until every member held its share (ms).
    settled_ms: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runs: usize = args.first().map_or(Ok(5), |a| a.parse()).context("runs")?;
    let partitions: i32 = args
        .get(1)
        .map_or(Ok(6), |a| a.parse())
        .context("partitions")?;
    println!(
        "scale-out 2 → 3 members, {partitions} partitions, {runs} run(s) per protocol (medians over runs)"
    );
    println!(
        "{:<30} {:>10} {:>14} {:>14} {:>16} {:>12}",
        "protocol", "paused", "gap p50 (ms)", "gap max (ms)", "members stopped", "settled (ms)"
    );
    for protocol in PROTOCOLS {
        let mut outcomes = Vec::new();
        for run in 0..runs {
            let outcome = scale_out(protocol, partitions, run)
                .await
                .with_context(|| format!("{}, run {}", protocol.name, run + 1))?;
            outcomes.push(outcome);
        }
        let median = |mut values: Vec<f64>| -> f64 {
            values.sort_by(f64::total_cmp);
            values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
        };
        let paused = median(outcomes.iter().map(|o| o.gaps_ms.len() as f64).collect());
        let p50 = median(outcomes.iter().map(|o| median(o.gaps_ms.clone())).collect());
        let max = median(
            outcomes
                .iter()
                .map(|o| o.gaps_ms.iter().copied().fold(0.0, f64::max))
                .collect(),
        );
        let stopped = median(outcomes.iter().map(|o| o.stopped as f64).collect());
        let settled = median(outcomes.iter().map(|o| o.settled_ms).collect());
        println!(
            "{:<30} {paused:>10.0} {p50:>14.0} {max:>14.0} {stopped:>16.0} {settled:>12.0}",
            protocol.name
        );
    }
    Ok(())
}

fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?)
}

/// A broker, a supervisor, and what the instances' callbacks reported.
struct Run {
    supervisor: SupervisorHandle,
    events: mpsc::Receiver<InstanceEvent>,
    sender: mpsc::Sender<InstanceEvent>,
    config: InstanceConfig,
    owned: HashMap<InstanceId, BTreeSet<i32>>,
    /// (stamp µs, instance, partition, assigned?)
    moves: Vec<(u64, InstanceId, i32, bool)>,
}

impl Run {
    async fn start(&mut self) -> anyhow::Result<InstanceId> {
        Ok(self
            .supervisor
            .start(
                Owner::lab("bench"),
                self.config.clone(),
                self.sender.clone(),
            )
            .await?)
    }

    async fn wait_for(&mut self, what: &str, done: impl Fn(&Self) -> bool) -> anyhow::Result<()> {
        let until = tokio::time::Instant::now() + DEADLINE;
        while !done(self) {
            let Ok(Some(event)) = tokio::time::timeout_at(until, self.events.recv()).await else {
                bail!("timed out waiting for {what}: {:?}", self.owned);
            };
            let InstanceEventKind::Report(report) = event.kind else {
                continue;
            };
            let (partitions, assigned) = match report {
                InstanceReport::Assigned { partitions } => (partitions, true),
                InstanceReport::Revoked { partitions } => (partitions, false),
                _ => continue,
            };
            let owned = self.owned.entry(event.id).or_default();
            for tp in partitions {
                if assigned {
                    owned.insert(tp.partition);
                } else {
                    owned.remove(&tp.partition);
                }
                self.moves
                    .push((event.at_us, event.id, tp.partition, assigned));
            }
        }
        Ok(())
    }

    fn shares(&self, ids: &[InstanceId], each: usize) -> bool {
        ids.iter()
            .all(|id| self.owned.get(id).is_some_and(|o| o.len() == each))
    }
}

async fn scale_out(protocol: Protocol, partitions: i32, run: usize) -> anyhow::Result<Outcome> {
    let broker = EmbeddedBroker::start(free_addr()?, Duration::from_millis(300)).await?;
    let cluster = Cluster::connect(&broker.bootstrap_servers())?;
    cluster.wait_until_ready(Duration::from_secs(30)).await?;
    let topic = format!("scale-{run}");
    cluster.create_topic(&topic, partitions).await?;
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
    let share = usize::try_from(partitions)?;
    let mut lab = Run {
        supervisor,
        events,
        sender,
        config: InstanceConfig {
            backend: Backend::Kafka,
            bootstrap_servers: broker.bootstrap_servers(),
            group: format!("scale-{run}-group"),
            topics: vec![topic],
            client_id: "bench".into(),
            settings: ConsumerSettings {
                group_protocol: protocol.group_protocol,
                assignor: protocol.assignor,
                ..ConsumerSettings::default()
            },
        },
        owned: HashMap::new(),
        moves: Vec::new(),
    };
    // One member, then the second once the first holds everything, as a learner starts them:
    // their heartbeats are not in step.
    let a = lab.start().await?;
    lab.wait_for("the first member to hold everything", |l| {
        l.shares(&[a], share)
    })
    .await?;
    let b = lab.start().await?;
    lab.wait_for("two members with half each", |l| {
        l.shares(&[a, b], share / 2)
    })
    .await?;
    let before = lab.moves.len();
    let held: HashMap<InstanceId, usize> = [a, b]
        .iter()
        .map(|id| (*id, lab.owned.get(id).map_or(0, BTreeSet::len)))
        .collect();
    let began = std::time::Instant::now();
    let c = lab.start().await?;
    lab.wait_for("three members with a third each", |l| {
        l.shares(&[a, b, c], share / 3)
    })
    .await?;
    let settled_ms = began.elapsed().as_secs_f64() * 1000.0;

    let moves = &lab.moves[before..];
    let mut gaps_ms = Vec::new();
    let mut stopped = 0;
    for id in [a, b] {
        let revoked: Vec<&(u64, InstanceId, i32, bool)> = moves
            .iter()
            .filter(|(_, who, _, assigned)| *who == id && !assigned)
            .collect();
        if revoked.len() >= held[&id] && held[&id] > 0 {
            stopped += 1;
        }
        for (at, _, partition, _) in revoked {
            let regained = moves
                .iter()
                .filter(|(when, _, p, assigned)| *assigned && p == partition && when >= at)
                .map(|(when, ..)| *when)
                .min();
            if let Some(when) = regained {
                gaps_ms.push((when - at) as f64 / 1000.0);
            }
        }
    }
    shutdown.cancel();
    drop(broker);
    Ok(Outcome {
        gaps_ms,
        stopped,
        settled_ms,
    })
}
