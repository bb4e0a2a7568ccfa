//! Every lab's scenario, driven through the server against the real embedded broker, as a page
//! would drive it: each test does what the lab's steps ask and waits for each step to pass, then
//! checks the outcome the lab teaches. The timings each test prints are the ones the labs quote.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::Context;
use grouplab_end2end::external::{Client, ExternalConsumer, admin_describe};
use grouplab_end2end::{LabClient, TestServer, poll_until};
use grouplab_protocol::{
    Assignor, CommitPolicy, ConsumerSettings, Departure, GroupProtocol, KeyMode, LabSnapshot,
    LedgerView, ProcessingMode, TimelineKind,
};

/// Joining, a rebalance or two, and a session timeout (10 s) fit well within this.
const STEP_DEADLINE: Duration = Duration::from_secs(60);

fn ledger<'a>(view: &'a LabSnapshot, group: &str, topic: &str) -> Option<&'a LedgerView> {
    view.ledgers
        .iter()
        .find(|l| l.group == group && l.topic == topic)
}

async fn open(lab: &str) -> anyhow::Result<(tempfile::TempDir, TestServer, LabClient)> {
    let data = tempfile::tempdir()?;
    let server = TestServer::start(data.path()).await?;
    let page = LabClient::open(&server, lab).await?;
    Ok((data, server, page))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_every_group_reads_every_message_and_shares_partitions_within() -> anyhow::Result<()>
{
    let (_data, _server, mut page) = open("05-fan-out").await?;
    let began = Instant::now();
    page.create_topic("orders", 2).await?;
    page.wait_for_step(0, STEP_DEADLINE).await?;

    for _ in 0..2 {
        page.start_instance("billing", "orders", ConsumerSettings::default())
            .await?;
    }
    let two = page.wait_for_step(1, STEP_DEADLINE).await?;
    page.start_instance("audit", "orders", ConsumerSettings::default())
        .await?;
    let audit = page.wait_for_step(2, STEP_DEADLINE).await?;

    page.produce("orders", 3, KeyMode::None, Some(0), 3).await?;
    page.produce("orders", 2, KeyMode::None, Some(1), 5).await?;
    let read = page.wait_for_step(3, STEP_DEADLINE).await?;

    let view = page.view();
    let count = |name: &str| {
        view.instances
            .iter()
            .find(|i| i.name == name)
            .map_or(0, |i| i.received)
    };
    // A and B share `billing`: one got partition 0's three messages, the other partition 1's two.
    let mut billing = [count("A"), count("B")];
    billing.sort_unstable();
    assert_eq!(
        billing,
        [2, 3],
        "each billing member reads only its partition"
    );
    assert_eq!(count("C"), 5, "the audit member reads every message");
    println!(
        "fan-out: two billing members in {two:?}, audit member in {audit:?}, all read {read:?} after producing; total {:?}",
        began.elapsed()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_provisioning_leaves_a_member_idle_until_the_topic_grows() -> anyhow::Result<()> {
    let (_data, _server, mut page) = open("06-over-provisioning").await?;
    page.create_topic("sensor-readings", 3).await?;
    page.wait_for_step(0, STEP_DEADLINE).await?;
    for _ in 0..4 {
        page.start_instance(
            "sensor-readers",
            "sensor-readings",
            ConsumerSettings::default(),
        )
        .await?;
    }
    let four = page.wait_for_step(1, STEP_DEADLINE).await?;
    let idle: Vec<String> = page
        .view()
        .group("sensor-readers")
        .map(|g| {
            g.members
                .iter()
                .filter(|m| m.partitions.is_empty())
                .map(|m| m.name.clone())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(idle.len(), 1, "exactly one member is idle: {idle:?}");

    page.produce(
        "sensor-readings",
        30,
        KeyMode::Rotating { distinct: 9 },
        None,
        30,
    )
    .await?;
    page.wait_for_step(2, STEP_DEADLINE).await?;
    let idle_received = page
        .view()
        .instances
        .iter()
        .find(|i| i.name == idle[0])
        .map(|i| i.received);
    assert_eq!(idle_received, Some(0), "the idle member read nothing");

    let worker = page
        .view()
        .instances
        .iter()
        .find(|i| !idle.contains(&i.name))
        .map(|i| i.id)
        .expect("a working instance");
    page.send(&grouplab_protocol::ClientCommand::StopInstance { instance: worker })
        .await?;
    let stopped = Instant::now();
    page.wait_for_step(3, STEP_DEADLINE).await?;
    let took_over = stopped.elapsed();

    // The other fix: a fourth member again, then a fourth partition for it.
    page.start_instance(
        "sensor-readers",
        "sensor-readings",
        ConsumerSettings::default(),
    )
    .await?;
    page.wait_until("a fourth member, idle", STEP_DEADLINE, |p| {
        p.view()
            .group("sensor-readers")
            .is_some_and(|g| g.members.len() == 4)
    })
    .await?;
    page.send(&grouplab_protocol::ClientCommand::AddPartitions {
        topic: "sensor-readings".into(),
        partitions: 4,
    })
    .await?;
    let grown = Instant::now();
    page.wait_for_step(4, STEP_DEADLINE).await?;
    println!(
        "over-provisioning: four members with one idle in {four:?}; the idle one owned the stopped member's partition {took_over:?} after the stop; after growing the topic, all four worked {:?} later",
        grown.elapsed()
    );
    Ok(())
}

/// The lab's instance: 300 ms per message, batches of 10, dying after its 15th message.
fn payments(commit: CommitPolicy, crash_after: Option<u32>) -> ConsumerSettings {
    ConsumerSettings {
        commit,
        processing_ms: 300,
        max_poll_records: 10,
        crash_after,
        processing: ProcessingMode::InPollLoop,
        ..ConsumerSettings::default()
    }
}

/// A graceful stop under auto-commit commits what the instance was handed, not what its client
/// had fetched besides: closing the client polls its queue, and those messages must stay
/// uncommitted for the partition's next owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_commits_only_what_the_instance_received() -> anyhow::Result<()> {
    let (_data, _server, mut page) = open("07-commit-loss").await?;
    page.create_topic("payments", 1).await?;
    page.produce("payments", 100, KeyMode::None, None, 100)
        .await?;
    // One message per poll, each taking 200 ms: the client has fetched far more than it handed
    // over when the stop comes.
    let slow = ConsumerSettings {
        max_poll_records: 1,
        processing_ms: 200,
        ..payments(CommitPolicy::Auto, None)
    };
    let id = page
        .start_running("payments-auto", "payments", slow, STEP_DEADLINE)
        .await?;
    page.wait_until("the first message received", STEP_DEADLINE, |p| {
        p.received_total() >= 1
    })
    .await?;
    page.stop_instance(id, STEP_DEADLINE).await?;
    let received = page.view().instance(id).context("the instance")?.received;
    assert!(
        received < 100,
        "the stop came before the last message: {received}"
    );
    let lag = |p: &LabClient| {
        p.view()
            .lag
            .iter()
            .find(|l| l.group == "payments-auto")
            .and_then(|l| l.partitions.first())
            .map(|partition| partition.lag)
    };
    let left = 100 - i64::try_from(received)?;
    page.wait_until(
        &format!("the group committed after the {received} received (lag {left})"),
        STEP_DEADLINE,
        |p| lag(p) == Some(left),
    )
    .await
    .with_context(|| format!("the lag stays {:?}", lag(&page)))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_commit_loses_what_a_crash_cuts_and_commit_after_processing_repeats_it()
-> anyhow::Result<()> {
    let (_data, _server, mut page) = open("07-commit-loss").await?;
    page.create_topic("payments", 1).await?;
    page.produce("payments", 40, KeyMode::None, None, 40)
        .await?;
    page.wait_for_step(0, STEP_DEADLINE).await?;

    page.start_instance(
        "payments-auto",
        "payments",
        payments(CommitPolicy::Auto, Some(15)),
    )
    .await?;
    let crashed = page.wait_for_step(1, STEP_DEADLINE).await?;
    let auto = ledger(page.view(), "payments-auto", "payments")
        .cloned()
        .expect("the auto-commit group has a ledger");
    // The crash came after offset 14; the background commit had covered the whole second batch.
    assert_eq!(auto.processed, 15, "{auto:?}");
    assert_eq!(
        auto.lost_sample,
        (15..20).map(|o| (0, o)).collect::<Vec<_>>(),
        "{auto:?}"
    );

    page.start_instance(
        "payments-auto",
        "payments",
        payments(CommitPolicy::Auto, None),
    )
    .await?;
    let resumed = page.wait_for_step(2, STEP_DEADLINE).await?;
    // Auto-commit may commit the last batch before it is processed: wait for the work itself.
    page.wait_until("the second instance's work", STEP_DEADLINE, |p| {
        ledger(p.view(), "payments-auto", "payments").is_some_and(|l| l.processed >= 35)
    })
    .await?;
    let auto = ledger(page.view(), "payments-auto", "payments")
        .cloned()
        .expect("ledger");
    assert_eq!((auto.processed, auto.lost, auto.duplicated), (35, 5, 0));

    page.start_instance(
        "payments-safe",
        "payments",
        payments(CommitPolicy::AfterProcessing, Some(15)),
    )
    .await?;
    let safe_crashed = page.wait_for_step(3, STEP_DEADLINE).await?;
    page.start_instance(
        "payments-safe",
        "payments",
        payments(CommitPolicy::AfterProcessing, None),
    )
    .await?;
    let safe_done = page.wait_for_step(4, STEP_DEADLINE).await?;
    let safe = ledger(page.view(), "payments-safe", "payments")
        .cloned()
        .expect("the safe group has a ledger");
    assert_eq!((safe.processed, safe.lost), (40, 0), "{safe:?}");
    assert_eq!(
        safe.duplicated_sample,
        (10..15).map(|o| (0, o)).collect::<Vec<_>>(),
        "{safe:?}"
    );
    println!(
        "commit loss: auto-commit crash and handover {crashed:?} (lost {}), resumed to the end {resumed:?}; commit-after-processing crash and handover {safe_crashed:?}, all processed {safe_done:?} (twice: {})",
        auto.lost, safe.duplicated
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_processing_in_the_poll_loop_loses_the_group_and_a_worker_queue_keeps_it()
-> anyhow::Result<()> {
    let (_data, _server, mut page) = open("08-blocked-poll-loop").await?;
    page.create_topic("thumbnails", 2).await?;
    page.produce("thumbnails", 20, KeyMode::RoundRobin, None, 20)
        .await?;
    page.wait_for_step(0, STEP_DEADLINE).await?;

    let slow = ConsumerSettings {
        commit: CommitPolicy::AfterProcessing,
        processing_ms: 4000,
        max_poll_records: 5,
        max_poll_interval_ms: 10_000,
        ..ConsumerSettings::default()
    };
    page.start_instance("resizers", "thumbnails", slow.clone())
        .await?;
    let kicked = page.wait_for_step(1, STEP_DEADLINE).await?;
    let a = page.view().instances[0].id;
    page.stop_instance(a, STEP_DEADLINE).await?;

    page.start_instance(
        "resizers",
        "thumbnails",
        ConsumerSettings {
            processing: ProcessingMode::Queue,
            ..slow
        },
    )
    .await?;
    page.wait_until("the worker's queue to fill", STEP_DEADLINE, |p| {
        p.view()
            .instances
            .iter()
            .any(|i| i.queue.is_some_and(|q| q.depth > 0))
    })
    .await?;
    let steady = page.wait_for_step(2, STEP_DEADLINE).await?;
    let worker = page
        .view()
        .instances
        .iter()
        .find(|i| i.settings.processing == ProcessingMode::Queue)
        .expect("the queue instance");
    assert!(worker.processed >= 5, "it kept processing: {worker:?}");
    println!(
        "blocked poll loop: removed from the group {kicked:?} after the start; the queue instance kept the group stable for 25 s ({steady:?}), {} processed",
        worker.processed
    );
    Ok(())
}

/// A lab's solution, run as a learner runs it from a terminal.
fn solution(lab: &'static str, arg: Option<&'static str>, client_id: &'static str) -> Client {
    Client::Solution {
        lab,
        arg,
        client_id,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_is_completed_by_the_learners_own_consumers() -> anyhow::Result<()> {
    let (data, _server, mut page) = open("05-fan-out").await?;
    let bootstrap = page.view().broker.bootstrap_servers.clone();
    page.create_topic("orders", 2).await?;
    let billing = solution("05-fan-out", Some("billing"), "lab05-billing");
    let audit = solution("05-fan-out", Some("audit"), "lab05-audit");
    let consumers = [
        ExternalConsumer::start(billing, &bootstrap, data.path())?,
        ExternalConsumer::start(billing, &bootstrap, data.path())?,
        ExternalConsumer::start(audit, &bootstrap, data.path())?,
    ];
    let outputs = || {
        consumers
            .iter()
            .map(ExternalConsumer::output)
            .collect::<Vec<_>>()
            .join("\n---\n")
    };
    let joined = page.wait_for_step(2, STEP_DEADLINE).await;
    joined.with_context(outputs)?;
    page.produce("orders", 3, KeyMode::None, Some(0), 3).await?;
    page.produce("orders", 2, KeyMode::None, Some(1), 5).await?;
    page.wait_for_step(3, STEP_DEADLINE)
        .await
        .with_context(outputs)?;
    // What each terminal printed: the audit copy saw all five, each billing copy one partition's.
    let printed = |consumer: &ExternalConsumer| consumer.output().matches(" offset ").count();
    let mut billing_counts = [printed(&consumers[0]), printed(&consumers[1])];
    billing_counts.sort_unstable();
    assert_eq!(billing_counts, [2, 3], "{}", outputs());
    assert_eq!(printed(&consumers[2]), 5, "{}", outputs());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_provisioning_is_completed_by_the_learners_own_consumers() -> anyhow::Result<()> {
    let (data, _server, mut page) = open("06-over-provisioning").await?;
    let bootstrap = page.view().broker.bootstrap_servers.clone();
    page.create_topic("sensor-readings", 3).await?;
    let reader = solution("06-over-provisioning", None, "lab06-python");
    let consumers: Vec<ExternalConsumer> = (0..4)
        .map(|_| ExternalConsumer::start(reader, &bootstrap, data.path()))
        .collect::<anyhow::Result<_>>()?;
    let outputs = || {
        consumers
            .iter()
            .map(ExternalConsumer::output)
            .collect::<Vec<_>>()
            .join("\n---\n")
    };
    page.wait_for_step(1, STEP_DEADLINE)
        .await
        .with_context(outputs)?;
    page.produce(
        "sensor-readings",
        30,
        KeyMode::Rotating { distinct: 9 },
        None,
        30,
    )
    .await?;
    page.wait_for_step(2, STEP_DEADLINE)
        .await
        .with_context(outputs)?;
    // Ctrl-C in a terminal whose latest assignment is not empty.
    let working = consumers
        .iter()
        .find(|c| {
            c.output()
                .lines()
                .rev()
                .find(|l| l.starts_with("assigned:"))
                .is_some_and(|l| !l.contains("none"))
        })
        .context("a working consumer")?;
    working.interrupt()?;
    page.wait_for_step(3, STEP_DEADLINE)
        .await
        .with_context(outputs)?;
    // A fourth copy again, idle, then the topic grows under all four.
    let fourth = ExternalConsumer::start(reader, &bootstrap, data.path())?;
    page.wait_until("a fourth member, idle", STEP_DEADLINE, |p| {
        p.view()
            .group("sensor-readers")
            .is_some_and(|g| g.members.len() == 4)
    })
    .await
    .with_context(|| fourth.output())?;
    page.send(&grouplab_protocol::ClientCommand::AddPartitions {
        topic: "sensor-readings".into(),
        partitions: 4,
    })
    .await?;
    page.wait_for_step(4, STEP_DEADLINE)
        .await
        .with_context(|| format!("{}\n---\n{}", outputs(), fourth.output()))?;
    Ok(())
}

fn with_assignor(assignor: Assignor, static_id: Option<&str>) -> ConsumerSettings {
    ConsumerSettings {
        assignor,
        static_id: static_id.map(str::to_owned),
        ..ConsumerSettings::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eager_revokes_everything_cooperative_only_what_moves_and_a_static_member_returns()
-> anyhow::Result<()> {
    let (_data, _server, mut page) = open("09-assignors").await?;
    page.create_topic("events", 6).await?;
    page.wait_for_step(0, STEP_DEADLINE).await?;

    for _ in 0..2 {
        page.start_instance(
            "eager-readers",
            "events",
            with_assignor(Assignor::Range, None),
        )
        .await?;
    }
    page.wait_for_step(1, STEP_DEADLINE).await?;
    page.start_instance(
        "eager-readers",
        "events",
        with_assignor(Assignor::Range, None),
    )
    .await?;
    let eager = page.wait_for_step(2, STEP_DEADLINE).await?;

    let sticky = with_assignor(Assignor::CooperativeSticky, None);
    let began = Instant::now();
    for n in 1..=3 {
        page.start_instance("sticky-readers", "events", sticky.clone())
            .await?;
        page.wait_until(&format!("{n} sticky member(s)"), STEP_DEADLINE, |p| {
            p.view().group("sticky-readers").is_some_and(|g| {
                g.members.len() == n && g.members.iter().all(|m| !m.partitions.is_empty())
            })
        })
        .await?;
    }
    page.wait_for_step(3, STEP_DEADLINE).await?;
    let cooperative = began.elapsed();
    // Under cooperative-sticky the callbacks gave up only what moved: 3 of 6 to the second
    // member, then 1 of 3 from each to the third.
    let mut released: Vec<usize> = page
        .view()
        .timeline
        .iter()
        .filter(|e| e.group == "sticky-readers" && e.kind == TimelineKind::Released)
        .map(|e| e.partitions.len())
        .collect();
    released.sort_unstable();
    assert_eq!(released, [1, 1, 3], "what the sticky members gave up");

    page.start_instance(
        "static-readers",
        "events",
        with_assignor(Assignor::Range, Some("reader-1")),
    )
    .await?;
    page.start_instance(
        "static-readers",
        "events",
        with_assignor(Assignor::Range, Some("reader-2")),
    )
    .await?;
    page.wait_for_step(4, STEP_DEADLINE).await?;
    let generation = page
        .view()
        .group("static-readers")
        .and_then(|g| g.generation);
    let first = page
        .view()
        .instances
        .iter()
        .find(|i| i.settings.static_id.as_deref() == Some("reader-1"))
        .map(|i| i.id)
        .expect("reader-1");
    page.stop_instance(first, STEP_DEADLINE).await?;
    let restarted = Instant::now();
    page.start_instance(
        "static-readers",
        "events",
        with_assignor(Assignor::Range, Some("reader-1")),
    )
    .await?;
    let returned = page.wait_for_step(5, STEP_DEADLINE).await;
    let static_timeline: Vec<String> = page
        .view()
        .timeline
        .iter()
        .filter(|e| e.group == "static-readers")
        .map(|e| format!("{} {:?} {:?}", e.name, e.kind, e.partitions))
        .collect();
    returned.with_context(|| static_timeline.join("\n"))?;
    let back = restarted.elapsed();
    assert_eq!(
        page.view()
            .group("static-readers")
            .and_then(|g| g.generation),
        generation,
        "the group did not rebalance"
    );
    println!(
        "assignors: eager third member and full revocations in {eager:?}; three cooperative members in {cooperative:?}; a static member back on its partitions {back:?} after its restart"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_keep_their_partition_and_their_order_across_a_rebalance() -> anyhow::Result<()> {
    let (_data, _server, mut page) = open("10-keys-and-ordering").await?;
    page.create_topic("user-actions", 3).await?;
    page.wait_for_step(0, STEP_DEADLINE).await?;
    page.start_instance(
        "action-processors",
        "user-actions",
        ConsumerSettings::default(),
    )
    .await?;
    page.wait_until("A to run", STEP_DEADLINE, |p| p.running_evenly(1, 3))
        .await?;
    let keys = KeyMode::Rotating { distinct: 6 };
    page.produce("user-actions", 30, keys.clone(), None, 30)
        .await?;
    page.wait_for_step(1, STEP_DEADLINE).await?;
    let placed: Vec<(String, Vec<i32>)> = page
        .view()
        .keys
        .iter()
        .map(|k| (k.key.clone(), k.partitions.clone()))
        .collect();
    assert_eq!(placed.len(), 6, "{placed:?}");
    page.wait_for_step(2, STEP_DEADLINE).await?;

    page.start_instance(
        "action-processors",
        "user-actions",
        ConsumerSettings::default(),
    )
    .await?;
    page.wait_until("two members", STEP_DEADLINE, |p| {
        p.view().group("action-processors").is_some_and(|g| {
            g.members.len() == 2 && g.members.iter().all(|m| !m.partitions.is_empty())
        })
    })
    .await?;
    page.produce("user-actions", 30, keys.clone(), None, 60)
        .await?;
    // A is stopped at once, while messages it fetched may still wait unpolled in its client.
    // Closing the client polls them away; the instance must not commit them, or they are lost
    // to B (it did, in 4 runs of 6, before the consumer stored its offsets itself).
    let a = page.view().instances[0].id;
    page.send(&grouplab_protocol::ClientCommand::StopInstance { instance: a })
        .await?;
    page.wait_until("one member with everything", STEP_DEADLINE, |p| {
        p.view()
            .group("action-processors")
            .is_some_and(|g| g.members.len() == 1 && g.members[0].partitions.len() == 3)
    })
    .await?;
    page.produce("user-actions", 30, keys, None, 90).await?;
    page.wait_until(
        "all 90 messages received by A and B together",
        STEP_DEADLINE,
        |p| p.received_total() >= 90,
    )
    .await?;
    page.wait_for_step(3, STEP_DEADLINE).await?;
    let order = ledger(page.view(), "action-processors", "user-actions")
        .map(|l| l.order.clone())
        .expect("ledger");
    assert_eq!(order.out_of_key_order, 0, "{order:?}");
    println!("keys and ordering: {placed:?}; {order:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_blocks_its_partition_until_it_is_parked_in_the_dead_letter_topic()
-> anyhow::Result<()> {
    let (_data, _server, mut page) = open("11-retries-and-dead-letters").await?;
    page.create_topic("invoices", 2).await?;
    page.create_topic("invoices.dlq", 1).await?;
    page.wait_for_step(0, STEP_DEADLINE).await?;

    let failing = ConsumerSettings {
        commit: CommitPolicy::AfterProcessing,
        processing_ms: 100,
        max_poll_records: 1,
        fail_on: Some("poison".into()),
        retries: 3,
        ..ConsumerSettings::default()
    };
    page.start_instance("invoice-senders", "invoices", failing.clone())
        .await?;
    page.wait_until("A to run", STEP_DEADLINE, |p| p.running_evenly(1, 2))
        .await?;
    page.produce("invoices", 5, KeyMode::None, Some(0), 5)
        .await?;
    page.send(&grouplab_protocol::ClientCommand::Produce {
        topic: "invoices".into(),
        count: 1,
        keys: KeyMode::None,
        partition: Some(0),
        text: Some("poison".into()),
    })
    .await?;
    // Produces run concurrently: the next five must not land before the poison message.
    page.wait_until("the poison message in `invoices`", STEP_DEADLINE, |p| {
        p.view()
            .topic("invoices")
            .is_some_and(|t| t.message_count() >= 6)
    })
    .await?;
    page.produce("invoices", 5, KeyMode::None, Some(0), 11)
        .await?;
    let blocked = page.wait_for_step(1, STEP_DEADLINE).await?;
    let a = page.view().instances[0].clone();
    assert_eq!(a.processed, 5, "only the messages before the poison: {a:?}");
    assert!(
        a.failing.as_ref().is_some_and(|f| f.offset == 5),
        "stuck on offset 5: {a:?}"
    );
    assert_eq!(
        page.view()
            .topic("invoices")
            .and_then(|t| t.lag("invoice-senders", 0)),
        Some(6),
        "the poison and the five behind it wait"
    );

    page.stop_instance(a.id, STEP_DEADLINE).await?;
    page.start_instance(
        "invoice-senders",
        "invoices",
        ConsumerSettings {
            dead_letter_topic: Some("invoices.dlq".into()),
            ..failing
        },
    )
    .await?;
    let parked = page.wait_for_step(2, STEP_DEADLINE).await;
    let instances = format!("{:#?}", page.view().instances);
    let parked = parked.with_context(|| instances)?;
    let b = page
        .view()
        .instances
        .iter()
        .find(|i| i.settings.dead_letter_topic.is_some())
        .cloned()
        .expect("B");
    assert_eq!(b.dead_lettered, 1, "{b:?}");
    // The step passes once every message was received; the last one's work ends a moment later.
    page.wait_until("the last message's processing", STEP_DEADLINE, |p| {
        ledger(p.view(), "invoice-senders", "invoices").is_some_and(|l| l.processed >= 11)
    })
    .await?;
    let safe = ledger(page.view(), "invoice-senders", "invoices")
        .cloned()
        .expect("ledger");
    assert_eq!((safe.processed, safe.lost), (11, 0), "{safe:?}");
    println!(
        "retries and dead letters: blocked after 5 attempts in {blocked:?}; parked and caught up {parked:?} after the restart"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_builds_under_a_fast_producer_drains_with_more_members_and_stops_without_them()
-> anyhow::Result<()> {
    let (_data, _server, mut page) = open("12-lag").await?;
    page.create_topic("page-views", 4).await?;
    page.wait_for_step(0, STEP_DEADLINE).await?;
    let slow = ConsumerSettings {
        commit: CommitPolicy::AfterProcessing,
        processing_ms: 100,
        max_poll_records: 10,
        ..ConsumerSettings::default()
    };
    page.start_instance("dashboards", "page-views", slow.clone())
        .await?;
    page.wait_until("A to run", STEP_DEADLINE, |p| p.running_evenly(1, 4))
        .await?;
    let steadily = |per_second, seconds| grouplab_protocol::ClientCommand::ProduceSteadily {
        topic: "page-views".into(),
        per_second,
        seconds,
        keys: KeyMode::RoundRobin,
    };
    page.send(&steadily(25, 30)).await?;
    let behind = page.wait_for_step(1, STEP_DEADLINE).await?;
    for _ in 0..3 {
        page.start_instance("dashboards", "page-views", slow.clone())
            .await?;
    }
    let drained = page.wait_for_step(2, STEP_DEADLINE).await?;
    let rates = page
        .view()
        .lag
        .iter()
        .find(|l| l.group == "dashboards")
        .map(|l| l.rates.clone())
        .unwrap_or_default();
    assert_eq!(rates.len(), 4, "a rate per instance: {rates:?}");

    let running: Vec<_> = page
        .view()
        .instances
        .iter()
        .filter(|i| i.is_alive())
        .map(|i| i.id)
        .collect();
    for id in running {
        page.send(&grouplab_protocol::ClientCommand::StopInstance { instance: id })
            .await?;
    }
    page.wait_until("every instance to stop", STEP_DEADLINE, |p| {
        p.view().instances.iter().all(|i| !i.is_alive())
    })
    .await?;
    page.send(&grouplab_protocol::ClientCommand::StopProducing)
        .await?;
    page.send(&steadily(10, 20)).await?;
    let stopped = page.wait_for_step(3, STEP_DEADLINE).await?;
    page.send(&grouplab_protocol::ClientCommand::StopProducing)
        .await?;
    println!(
        "lag: 100 behind with WARNING {behind:?} into the steady produce; drained by four members {drained:?} later (rates {rates:?}); STOP {stopped:?} after the members left"
    );
    Ok(())
}

/// Copies a lab folder, file by file (labs hold no subfolders).
fn copy_lab(from: &std::path::Path, to: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        std::fs::copy(entry.path(), to.join(entry.file_name()))?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_lab_reloads_in_open_pages_and_a_broken_edit_is_shown_with_its_line()
-> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let labs = tempfile::tempdir()?;
    let lab = labs.path().join("05-fan-out");
    copy_lab(
        &grouplab_end2end::workspace_root().join("labs/05-fan-out"),
        &lab,
    )?;
    let server = TestServer::start_with_labs(data.path(), labs.path(), &[]).await?;
    let mut page = LabClient::open(&server, "05-fan-out").await?;

    let toml = std::fs::read_to_string(lab.join("lab.toml"))?;
    let edited = toml.replace("title = \"Create the topic\"", "title = \"Make the topic\"");
    assert_ne!(edited, toml);
    let saved = Instant::now();
    std::fs::write(lab.join("lab.toml"), &edited)?;
    let reloaded = loop {
        let event = tokio::time::timeout(STEP_DEADLINE, page.next_event()).await??;
        if let grouplab_protocol::ServerEvent::LabChanged {
            reloaded: true,
            problem: None,
        } = event
        {
            break saved.elapsed();
        }
    };
    let (status, html) = server.get("/labs/05-fan-out").await?;
    assert_eq!(status, 200);
    assert!(
        html.contains("Make the topic"),
        "the page serves the new version"
    );

    // A broken edit: the page says where, and the last good version keeps serving.
    let saved = Instant::now();
    std::fs::write(
        lab.join("lab.toml"),
        edited.replace("minutes = 25", "minutes = soon"),
    )?;
    page.wait_until("the problem to show", STEP_DEADLINE, |p| {
        p.view().lab_problem.is_some()
    })
    .await?;
    let broken = saved.elapsed();
    let problem = page.view().lab_problem.clone().unwrap_or_default();
    assert!(problem.contains("line 3"), "{problem}");
    let (status, html) = server.get("/labs/05-fan-out").await?;
    assert_eq!(status, 200);
    assert!(html.contains("Make the topic"));

    // Fixed again: the problem goes.
    std::fs::write(lab.join("lab.toml"), &edited)?;
    page.wait_until("the problem to clear", STEP_DEADLINE, |p| {
        p.view().lab_problem.is_none()
    })
    .await?;
    println!(
        "authoring: an edit reached the open page {reloaded:?} after saving; a broken edit was shown {broken:?} after saving"
    );
    Ok(())
}

/// A lab's starter file and where it should show up.
struct Starter {
    lab: &'static str,
    topic: &'static str,
    partitions: i32,
    /// The run line's argument after the broker's address, if any.
    arg: Option<&'static str>,
    group: &'static str,
    client_id: &'static str,
}

/// Every lab's starter file, run as its page says (Python, confluent-kafka), joins the lab's
/// group and shows up in the page as a member: the exercise starts from working code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_labs_starter_joins_its_group_and_shows_in_the_page() -> anyhow::Result<()> {
    let starters = [
        Starter {
            lab: "05-fan-out",
            topic: "orders",
            partitions: 2,
            arg: Some("billing"),
            group: "billing",
            client_id: "lab05-billing",
        },
        Starter {
            lab: "06-over-provisioning",
            topic: "sensor-readings",
            partitions: 3,
            arg: None,
            group: "sensor-readers",
            client_id: "lab06-python",
        },
        Starter {
            lab: "07-commit-loss",
            topic: "payments",
            partitions: 1,
            arg: None,
            group: "payments-mine",
            client_id: "lab07-python",
        },
        Starter {
            lab: "08-blocked-poll-loop",
            topic: "thumbnails",
            partitions: 2,
            arg: None,
            group: "resizers",
            client_id: "lab08-python",
        },
        Starter {
            lab: "09-assignors",
            topic: "events",
            partitions: 6,
            arg: Some("sticky-readers"),
            group: "sticky-readers",
            client_id: "lab09-python",
        },
        Starter {
            lab: "10-keys-and-ordering",
            topic: "user-actions",
            partitions: 3,
            arg: None,
            group: "action-processors",
            client_id: "lab10-python",
        },
        Starter {
            lab: "11-retries-and-dead-letters",
            topic: "invoices",
            partitions: 2,
            arg: None,
            group: "invoice-senders",
            client_id: "lab11-python",
        },
        Starter {
            lab: "16-new-rebalance-protocol",
            topic: "payments",
            partitions: 6,
            arg: Some("kip848-group"),
            group: "kip848-group",
            client_id: "lab16-python",
        },
        Starter {
            lab: "12-lag",
            topic: "page-views",
            partitions: 4,
            arg: None,
            group: "dashboards",
            client_id: "lab12-python",
        },
    ];
    let data = tempfile::tempdir()?;
    let server = TestServer::start(data.path()).await?;
    let mut checked = 0;
    for Starter {
        lab,
        topic,
        partitions,
        arg,
        group,
        client_id,
    } in starters
    {
        let mut page = LabClient::open(&server, lab).await?;
        let bootstrap = page.view().broker.bootstrap_servers.clone();
        page.create_topic(topic, partitions).await?;
        let starter = ExternalConsumer::start(
            Client::Starter {
                lab,
                arg,
                client_id,
            },
            &bootstrap,
            data.path(),
        )?;
        let joined = page
            .wait_until(
                &format!("{lab}'s starter in `{group}`"),
                STEP_DEADLINE,
                |p| {
                    p.view().group(group).is_some_and(|g| {
                        g.members
                            .iter()
                            .any(|m| m.client_id == client_id && !m.partitions.is_empty())
                    })
                },
            )
            .await;
        joined.with_context(|| starter.output())?;
        starter.interrupt()?;
        checked += 1;
    }
    // Every Kafka lab with a starter, but 04 (external.rs runs its snippets); Redis labs' run
    // in redis.rs, RabbitMQ labs' in rabbitmq.rs.
    let labs = grouplab_end2end::workspace_root().join("labs");
    let mut expected = 0;
    for entry in std::fs::read_dir(&labs)? {
        let folder = entry?.path();
        let toml = std::fs::read_to_string(folder.join("lab.toml")).unwrap_or_default();
        if folder.join("starter.py").is_file()
            && !folder.ends_with("04-consumer-groups")
            && !toml.contains("broker = \"redis\"")
            && !toml.contains("broker = \"rabbitmq\"")
        {
            expected += 1;
        }
    }
    assert_eq!(
        checked, expected,
        "every Kafka lab's starter is in the list above"
    );
    Ok(())
}

/// Reset deletes what `[setup]` names beyond the lab's own topic (lab 11's dead-letter topic)
/// and the groups its instances used, as ARCHITECTURE.md promises.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_deletes_the_labs_other_topics_too() -> anyhow::Result<()> {
    let (_data, _server, mut page) = open("11-retries-and-dead-letters").await?;
    page.create_topic("invoices", 2).await?;
    page.create_topic("invoices.dlq", 1).await?;
    page.send(&grouplab_protocol::ClientCommand::ResetLab)
        .await?;
    page.wait_until("the reset", STEP_DEADLINE, |p| {
        p.notices.iter().any(|n| n.title == "The lab was reset")
    })
    .await?;
    // Created again, the dead-letter topic is new (not "already exists") and empty.
    page.create_topic("invoices.dlq", 1).await?;
    let created = page
        .notices
        .iter()
        .filter(|n| n.title == "Topic `invoices.dlq` created")
        .count();
    assert_eq!(created, 2, "{:?}", page.notices);
    assert_eq!(
        page.view().topic("invoices.dlq").map(|t| t.message_count()),
        Some(0),
        "the dead-letter topic was deleted and created anew"
    );
    Ok(())
}

/// A consumer-protocol instance (KIP-848): the broker assigns, with `uniform`.
fn consumer_protocol() -> ConsumerSettings {
    ConsumerSettings {
        group_protocol: GroupProtocol::Consumer,
        assignor: Assignor::Uniform,
        ..ConsumerSettings::default()
    }
}

/// Lab 16: the same scale-out from two members to three, then a crash, under classic eager,
/// classic cooperative-sticky and the consumer protocol, compared; then the learner's own
/// confluent-kafka consumer with `group.protocol=consumer` joins, and leaves at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_new_rebalance_protocol_is_compared_with_both_classic_ones() -> anyhow::Result<()> {
    let (data, _server, mut page) = open("16-new-rebalance-protocol").await?;
    let bootstrap = page.view().broker.bootstrap_servers.clone();
    page.create_topic("payments", 6).await?;
    page.wait_for_step(0, STEP_DEADLINE).await?;

    // Each group: two members, a third, then a crash, with the steps each of those passes.
    let groups = [
        (
            "eager-group",
            with_assignor(Assignor::Range, None),
            None,
            1,
            2,
        ),
        (
            "sticky-group",
            with_assignor(Assignor::CooperativeSticky, None),
            None,
            3,
            4,
        ),
        ("kip848-group", consumer_protocol(), Some(5), 6, 7),
    ];
    for (group, settings, two, three, crashed) in &groups {
        for _ in 0..2 {
            page.start_instance(group, "payments", settings.clone())
                .await?;
        }
        page.wait_until(
            &format!("two members of {group} with 3 each"),
            STEP_DEADLINE,
            |p| {
                p.view().group(group).is_some_and(|g| {
                    g.members.len() == 2 && g.members.iter().all(|m| m.partitions.len() == 3)
                })
            },
        )
        .await?;
        if let Some(step) = two {
            page.wait_for_step(*step, STEP_DEADLINE).await?;
        }
        page.start_instance(group, "payments", settings.clone())
            .await?;
        page.wait_for_step(*three, STEP_DEADLINE).await?;
        if *group == "kip848-group" {
            check_reconciled(&page);
        }
        let victim = page
            .view()
            .instances
            .iter()
            .find(|i| i.group == *group && i.is_alive() && !i.partitions.is_empty())
            .map(|i| i.id)
            .expect("a running instance");
        page.send(&grouplab_protocol::ClientCommand::CrashInstance { instance: victim })
            .await?;
        page.wait_for_step(*crashed, STEP_DEADLINE).await?;
    }

    let starter = Client::Starter {
        lab: "16-new-rebalance-protocol",
        arg: Some("kip848-group"),
        client_id: "lab16-python",
    };
    let mut own = ExternalConsumer::start(starter, &bootstrap, data.path())?;
    page.wait_for_step(8, STEP_DEADLINE)
        .await
        .with_context(|| own.output())?;
    let mine = page
        .view()
        .group("kip848-group")
        .and_then(|g| {
            g.members
                .iter()
                .find(|m| m.client_id == "lab16-python")
                .cloned()
        })
        .expect("the learner's consumer is a member");
    assert!(
        mine.is_external() && !mine.partitions.is_empty(),
        "{mine:?}"
    );
    described_as_shown(&mut page, &bootstrap).await?;
    own.interrupt()?;
    page.wait_for_step(9, STEP_DEADLINE)
        .await
        .with_context(|| own.output())?;
    own.wait_exit(STEP_DEADLINE).await?;
    Ok(())
}

/// What one run of Lab 16's solution says it holds, from its own callbacks ("assigned: P0, P3
/// (member …)", "revoked: …", "lost: …", each naming only what changed): its member id, the
/// partitions it holds, and how many it has given up.
fn held_by_callbacks(output: &str) -> (Option<String>, BTreeSet<i32>, usize) {
    let mut member = None;
    let mut held = BTreeSet::new();
    let mut given_up = 0;
    for line in output.lines() {
        let Some((what, rest)) = line.split_once(": ") else {
            continue;
        };
        if !matches!(what, "assigned" | "revoked" | "lost") {
            continue;
        }
        let Some((numbers, id)) = rest.rsplit_once(" (member ") else {
            continue;
        };
        member = Some(id.trim_end_matches(')').to_owned());
        for partition in numbers
            .split(", ")
            .filter_map(|p| p.strip_prefix('P')?.parse::<i32>().ok())
        {
            if what == "assigned" {
                held.insert(partition);
            } else {
                held.remove(&partition);
                given_up += 1;
            }
        }
    }
    (member, held, given_up)
}

/// Waits until each running consumer's callbacks say it holds what the page shows its member
/// holding, and returns how many partitions each has given up so far.
async fn callbacks_agree_with_page(
    page: &LabClient,
    group: &str,
    running: &[&ExternalConsumer],
) -> anyhow::Result<Vec<usize>> {
    let shown: BTreeMap<String, BTreeSet<i32>> = page
        .view()
        .group(group)
        .map(|g| {
            g.members
                .iter()
                .map(|m| {
                    let held = m.partitions.iter().map(|tp| tp.partition).collect();
                    (m.member_id.clone(), held)
                })
                .collect()
        })
        .unwrap_or_default();
    poll_until(
        "every consumer's callbacks to add up to what the page shows it holding",
        Duration::from_secs(20),
        || {
            let told: Option<Vec<usize>> = running
                .iter()
                .map(|c| {
                    let (member, held, given_up) = held_by_callbacks(&c.output());
                    (shown.get(&member?) == Some(&held)).then_some(given_up)
                })
                .collect();
            async move { told }
        },
    )
    .await
    .with_context(|| {
        let printed: Vec<String> = running.iter().map(|c| c.output()).collect();
        format!("the page shows {shown:?}; the consumers printed {printed:#?}")
    })
}

/// Lab 16's solution (confluent-kafka 2.16, `group.protocol=consumer`) run three times, as a
/// learner would from three terminals: a newcomer takes only partitions the others give up, no
/// view the page receives shows a partition held by two members, each process's own callbacks
/// add up to what the page shows it holding, a kill -9 is noticed only when the broker's
/// session (10 s) runs out, and a Ctrl-C leaves at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_learners_consumer_protocol_members_share_hand_over_expire_and_leave()
-> anyhow::Result<()> {
    const GROUP: &str = "kip848-group";
    let (data, _server, mut page) = open("16-new-rebalance-protocol").await?;
    let bootstrap = page.view().broker.bootstrap_servers.clone();
    page.create_topic("payments", 6).await?;
    let solution = Client::Solution {
        lab: "16-new-rebalance-protocol",
        arg: Some(GROUP),
        client_id: "lab16-python",
    };

    // Every wait below looks at each view the page applies: a view that shows a partition
    // under two members is kept, and the test fails at the end if there was one.
    let held_twice = RefCell::new(Vec::new());
    let held = |p: &LabClient| -> Vec<i32> {
        p.view()
            .group(GROUP)
            .map(|g| {
                g.members
                    .iter()
                    .flat_map(|m| m.partitions.iter().map(|tp| tp.partition))
                    .collect()
            })
            .unwrap_or_default()
    };
    let watch = |p: &LabClient| {
        let held = held(p);
        let distinct: BTreeSet<i32> = held.iter().copied().collect();
        if distinct.len() != held.len() {
            held_twice
                .borrow_mut()
                .push(format!("{:?}", p.view().group(GROUP)));
        }
    };
    // `members` members hold the six partitions between them, each its target.
    let settled = |p: &LabClient, members: usize| {
        watch(p);
        let held = held(p);
        let distinct: BTreeSet<i32> = held.iter().copied().collect();
        p.view().group(GROUP).is_some_and(|group| {
            group.protocol == GroupProtocol::Consumer
                && group.members.len() == members
                && group
                    .members
                    .iter()
                    .all(|m| m.is_external() && m.target.is_none())
        }) && held.len() == 6
            && distinct == (0..6).collect()
    };

    let first = ExternalConsumer::start(solution, &bootstrap, data.path())?;
    page.wait_until("the first member to hold all six", STEP_DEADLINE, |p| {
        settled(p, 1)
    })
    .await
    .with_context(|| first.output())?;
    callbacks_agree_with_page(&page, GROUP, &[&first]).await?;
    let mut second = ExternalConsumer::start(solution, &bootstrap, data.path())?;
    page.wait_until("two members with three each", STEP_DEADLINE, |p| {
        settled(p, 2)
    })
    .await
    .with_context(|| second.output())?;
    let given_up = callbacks_agree_with_page(&page, GROUP, &[&first, &second]).await?;
    assert_eq!(given_up, [3, 0], "the first member gave up only what moved");
    let third = ExternalConsumer::start(solution, &bootstrap, data.path())?;
    page.wait_until("three members with two each", STEP_DEADLINE, |p| {
        settled(p, 3)
    })
    .await
    .with_context(|| third.output())?;
    let given_up = callbacks_agree_with_page(&page, GROUP, &[&first, &second, &third]).await?;
    assert_eq!(
        given_up,
        [4, 1, 0],
        "each earlier member gave up one partition"
    );

    // A member leaves the page's timeline under the name the page gave it.
    let name_of = |page: &LabClient, consumer: &ExternalConsumer| {
        let (member, ..) = held_by_callbacks(&consumer.output());
        page.view()
            .group(GROUP)
            .and_then(|g| {
                g.members
                    .iter()
                    .find(|m| Some(&m.member_id) == member.as_ref())
            })
            .map(|m| m.name.clone())
            .context("the consumer is a member the page shows")
    };
    let departed = |p: &LabClient, name: &str, how: Departure| {
        watch(p);
        p.view().timeline.iter().any(|e| {
            matches!(e.kind, TimelineKind::Departed { departure, .. } if departure == how)
                && e.name == name
        })
    };

    // kill -9: the client says nothing, so only the broker's session timeout removes it.
    let killed_name = name_of(&page, &third)?;
    let killed = Instant::now();
    third.kill()?;
    page.wait_until("the killed member to be fenced", STEP_DEADLINE, |p| {
        departed(p, &killed_name, Departure::Crash)
    })
    .await?;
    let noticed = killed.elapsed();
    assert!(
        noticed >= Duration::from_secs(5),
        "a killed member stays until the broker's session (10 s) runs out, but it was removed after {noticed:?}"
    );
    page.wait_until("the two others to hold three each", STEP_DEADLINE, |p| {
        settled(p, 2)
    })
    .await?;
    callbacks_agree_with_page(&page, GROUP, &[&first, &second]).await?;
    println!("kill -9 of a consumer-protocol member: fenced after {noticed:?}");

    // Ctrl-C: close() sends a heartbeat with epoch -1, and the member is gone at once.
    let left_name = name_of(&page, &second)?;
    let interrupted = Instant::now();
    second.interrupt()?;
    page.wait_until(
        "the interrupted member's leave",
        Duration::from_secs(10),
        |p| departed(p, &left_name, Departure::Graceful),
    )
    .await
    .with_context(|| second.output())?;
    let left = interrupted.elapsed();
    page.wait_until(
        "the first member to hold all six again",
        STEP_DEADLINE,
        |p| settled(p, 1),
    )
    .await?;
    callbacks_agree_with_page(&page, GROUP, &[&first]).await?;
    second.wait_exit(Duration::from_secs(10)).await?;
    println!("Ctrl-C of a consumer-protocol member: left after {left:?}");

    let held_twice = held_twice.into_inner();
    assert!(
        held_twice.is_empty(),
        "views with a partition under two members: {held_twice:?}"
    );
    Ok(())
}

/// Lab 16 once the third consumer-protocol member joined: the group is reconciled, its members
/// gave up only what moved, and the three scale-outs are compared.
fn check_reconciled(page: &LabClient) {
    let kip848 = page
        .view()
        .group("kip848-group")
        .cloned()
        .expect("the group");
    assert_eq!(kip848.protocol, GroupProtocol::Consumer);
    assert_eq!(
        kip848.assignment_epoch, kip848.generation,
        "reconciled: {kip848:?}"
    );
    assert!(
        kip848
            .members
            .iter()
            .all(|m| m.member_epoch == kip848.generation && m.target.is_none()),
        "{kip848:?}"
    );
    // The callbacks gave up only what moved: 3 of 6 to the second member, then 1 of 3 from
    // each of the first two to the third.
    let mut released: Vec<usize> = page
        .view()
        .timeline
        .iter()
        .filter(|e| e.group == "kip848-group" && e.kind == TimelineKind::Released)
        .map(|e| e.partitions.len())
        .collect();
    released.sort_unstable();
    assert_eq!(
        released,
        [1, 1, 3],
        "what the consumer-protocol members gave up"
    );
    // The broker's revocations and assignments carry the member's epoch under this protocol
    // only.
    let timeline = &page.view().timeline;
    assert!(
        timeline.iter().any(|e| e.group == "kip848-group"
            && e.kind == TimelineKind::Revoked
            && e.epoch.is_some()),
        "{timeline:?}"
    );
    assert!(
        timeline
            .iter()
            .filter(|e| e.group == "eager-group")
            .all(|e| e.epoch.is_none())
    );
    let compared = page.view().progress.steps[6].detail.clone();
    for group in ["`eager-group`", "`sticky-group`", "`kip848-group`"] {
        assert!(compared.contains(group), "{compared}");
    }
    println!("lab 16, three scale-outs compared: {compared}");
}

/// An admin client (confluent-kafka's `describe_consumer_groups`, which asks
/// ConsumerGroupDescribe) describes the consumer-protocol group as the page shows it: each member
/// by its client id and host, with the partitions the page shows it owns.
async fn described_as_shown(page: &mut LabClient, bootstrap: &str) -> anyhow::Result<()> {
    page.wait_until("kip848-group to be Stable", STEP_DEADLINE, |p| {
        p.view()
            .group("kip848-group")
            .is_some_and(|g| g.state == grouplab_protocol::GroupState::Stable)
    })
    .await?;
    let shown: BTreeMap<String, Vec<i32>> = page
        .view()
        .group("kip848-group")
        .map(|g| {
            g.members
                .iter()
                .map(|m| {
                    (
                        m.client_id.clone(),
                        m.partitions.iter().map(|tp| tp.partition).collect(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let (state, members) = admin_describe(bootstrap, "kip848-group").await?;
    assert_eq!(state, "STABLE");
    let described: BTreeMap<String, Vec<i32>> = members
        .iter()
        .map(|m| (m.client_id.clone(), m.partitions.clone()))
        .collect();
    assert_eq!(described, shown, "described: {members:?}");
    assert!(
        members.iter().all(|m| m.host == "/127.0.0.1"),
        "each member's host: {members:?}"
    );
    Ok(())
}
