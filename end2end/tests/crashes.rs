//! Lab 15, the same crash on three brokers: a page instance holding work is crashed on Kafka
//! (lab 15's own page), on Redis Streams (lab 13) and on RabbitMQ (lab 14), all on one server,
//! and lab 15 compares what each broker did with the work. Each step must pass from the crashes
//! measured in the other labs' sessions.

use std::time::Duration;

use grouplab_end2end::{LabClient, TestServer};
use grouplab_protocol::{
    Backend, BrokerHealth, ClientCommand, CommitPolicy, ConsumerSettings, CrashReport, InstanceId,
    KeyMode,
};

const LAB: &str = "15-same-crash-three-brokers";
/// RabbitMQ's start, and Kafka's 10 s session timeout, fit well within this.
const DEADLINE: Duration = Duration::from_secs(120);

async fn start(
    page: &mut LabClient,
    group: &str,
    topic: &str,
    settings: ConsumerSettings,
) -> anyhow::Result<InstanceId> {
    page.start_running(group, topic, settings, DEADLINE).await
}

/// Produces `count` messages to `topic` (any broker) without waiting for them; on Kafka, round
/// robin over the partitions, so that every member is handed some.
async fn produce(page: &mut LabClient, topic: &str, count: u32) -> anyhow::Result<()> {
    page.send(&ClientCommand::Produce {
        topic: topic.into(),
        count,
        keys: KeyMode::RoundRobin,
        partition: None,
        text: None,
    })
    .await
}

/// Crashes `instance` once it has received `at_least` messages.
async fn crash_busy(
    page: &mut LabClient,
    instance: InstanceId,
    at_least: u64,
) -> anyhow::Result<()> {
    page.wait_until("the instance holding work", DEADLINE, |c| {
        c.view()
            .instance(instance)
            .is_some_and(|i| i.received >= at_least)
    })
    .await?;
    page.send(&ClientCommand::CrashInstance { instance }).await
}

fn row(page: &LabClient, backend: Backend) -> Option<CrashReport> {
    page.view()
        .crashes
        .iter()
        .find(|c| c.backend == backend)
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_crash_on_each_broker_is_measured_and_compared() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let server = TestServer::start(data.path()).await?;
    let mut compare = LabClient::open(&server, LAB).await?;
    // The other brokers start while Kafka's part runs.
    let mut redis = LabClient::open(&server, "13-redis-streams").await?;
    let mut rabbit = LabClient::open(&server, "14-rabbitmq-competing-consumers").await?;

    // Kafka, on this lab's own page.
    compare.create_topic("jobs", 2).await?;
    let kafka_settings = ConsumerSettings {
        commit: CommitPolicy::AfterProcessing,
        processing_ms: 500,
        max_poll_records: 5,
        ..ConsumerSettings::default()
    };
    let a = start(&mut compare, "job-workers", "jobs", kafka_settings.clone()).await?;
    start(&mut compare, "job-workers", "jobs", kafka_settings).await?;
    compare
        .wait_until("both own a partition", DEADLINE, |c| {
            c.view().group("job-workers").is_some_and(|g| {
                g.members.iter().all(|m| m.partitions.len() == 1) && g.members.len() == 2
            })
        })
        .await?;
    produce(&mut compare, "jobs", 20).await?;
    crash_busy(&mut compare, a, 1).await?;
    compare.wait_for_step(0, DEADLINE).await?;

    // Redis Streams, on lab 13's page.
    redis
        .wait_until("Redis to answer", DEADLINE, |c| {
            c.view().broker.health == BrokerHealth::Up
        })
        .await?;
    let redis_settings = ConsumerSettings {
        commit: CommitPolicy::AfterProcessing,
        max_poll_records: 10,
        block_ms: 2000,
        ..ConsumerSettings::default()
    };
    let slow = start(
        &mut redis,
        "order-workers",
        "orders",
        ConsumerSettings {
            processing_ms: 1000,
            ..redis_settings.clone()
        },
    )
    .await?;
    produce(&mut redis, "orders", 10).await?;
    crash_busy(&mut redis, slow, 1).await?;
    start(
        &mut redis,
        "order-workers",
        "orders",
        ConsumerSettings {
            processing_ms: 100,
            claim_idle_ms: Some(5000),
            ..redis_settings
        },
    )
    .await?;
    compare.wait_for_step(1, DEADLINE).await?;

    // RabbitMQ, on lab 14's page.
    rabbit
        .wait_until("RabbitMQ to answer", DEADLINE, |c| {
            c.view().broker.health == BrokerHealth::Up
        })
        .await?;
    let rabbit_settings = ConsumerSettings {
        commit: CommitPolicy::AfterProcessing,
        ..ConsumerSettings::default()
    };
    let slow = start(
        &mut rabbit,
        "task-workers",
        "tasks",
        ConsumerSettings {
            prefetch: 10,
            processing_ms: 2000,
            ..rabbit_settings.clone()
        },
    )
    .await?;
    start(
        &mut rabbit,
        "task-workers",
        "tasks",
        ConsumerSettings {
            prefetch: 1,
            processing_ms: 100,
            ..rabbit_settings
        },
    )
    .await?;
    produce(&mut rabbit, "tasks", 20).await?;
    crash_busy(&mut rabbit, slow, 5).await?;
    compare.wait_for_step(2, DEADLINE).await?;
    compare
        .wait_until("RabbitMQ's redeliveries counted", DEADLINE, |c| {
            c.view()
                .crashes
                .iter()
                .any(|r| r.backend == Backend::RabbitMq && r.delivered_again > 0)
        })
        .await?;

    let rows: Vec<CrashReport> = [Backend::Kafka, Backend::Redis, Backend::RabbitMq]
        .into_iter()
        .filter_map(|b| row(&compare, b))
        .collect();
    for crash in &rows {
        println!(
            "{}: {} held {} {}; work moved after {:?} ms; {} delivered again",
            crash.backend.label(),
            crash.instance,
            crash.held,
            crash.held_unit(),
            crash.moved_after_ms,
            crash.delivered_again
        );
    }
    anyhow::ensure!(rows.len() == 3, "one row per broker: {rows:?}");
    let moved = |b| row(&compare, b).and_then(|c| c.moved_after_ms).unwrap_or(0);
    // The lesson in numbers: RabbitMQ at once, Redis after the claim's idle time, Kafka after
    // the session timeout.
    anyhow::ensure!(
        moved(Backend::RabbitMq) < 2_000
            && moved(Backend::Redis) >= 4_000
            && moved(Backend::Kafka) >= 8_000,
        "the three brokers moved the work in their own times: {rows:?}"
    );
    Ok(())
}
