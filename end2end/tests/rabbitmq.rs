//! The RabbitMQ lab against grouplab's own `rabbitmq-server`, started the way the run command
//! starts it: page instances and the learner's own pika workers competing for one queue,
//! prefetch making a slow worker fair, a crash that hands unacked messages back at once, an
//! auto-ack crash that loses them, and a dead-letter queue. Each step of the lab must pass from
//! what RabbitMQ and the consumers did.

use std::time::{Duration, Instant};

use grouplab_end2end::external::{Client, ExternalConsumer};
use grouplab_end2end::{LabClient, TestServer, children_of, is_running, poll_until};
use grouplab_protocol::{
    Backend, BrokerHealth, ClientCommand, CommitPolicy, ConsumerSettings, InstanceId, KeyMode,
    LabSnapshot,
};

const LAB: &str = "14-rabbitmq-competing-consumers";
const QUEUE: &str = "tasks";
const DEAD: &str = "tasks.dead";
const GROUP: &str = "task-workers";
/// RabbitMQ takes seconds to boot; everything after that is quick.
const START_DEADLINE: Duration = Duration::from_secs(120);
const STEP_DEADLINE: Duration = Duration::from_secs(60);

/// What the lab's `[setup.consumer]` fills the form with.
fn lab_settings() -> ConsumerSettings {
    ConsumerSettings {
        commit: CommitPolicy::AfterProcessing,
        processing_ms: 100,
        ..ConsumerSettings::default()
    }
}

/// Publishes `count` messages (with `text` in each, if given) and waits until the queue's
/// statistics count `total` published.
async fn publish(
    page: &mut LabClient,
    count: u32,
    text: Option<&str>,
    total: u64,
) -> anyhow::Result<()> {
    page.send(&ClientCommand::Produce {
        topic: QUEUE.into(),
        count,
        keys: KeyMode::None,
        partition: None,
        text: text.map(str::to_owned),
    })
    .await?;
    page.wait_until(
        &format!("{total} published to `{QUEUE}`"),
        STEP_DEADLINE,
        |c| c.view().queue(QUEUE).is_some_and(|q| q.published >= total),
    )
    .await
}

fn alive(view: &LabSnapshot) -> Vec<InstanceId> {
    view.instances
        .iter()
        .filter(|i| i.is_alive())
        .map(|i| i.id)
        .collect()
}

/// Starts an instance and waits until it consumes; gives its id.
async fn start(page: &mut LabClient, settings: ConsumerSettings) -> anyhow::Result<InstanceId> {
    page.start_running(GROUP, QUEUE, settings, STEP_DEADLINE)
        .await
}

async fn stop_all(page: &mut LabClient) -> anyhow::Result<()> {
    for id in alive(page.view()) {
        page.stop_instance(id, STEP_DEADLINE).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rabbitmq_lab_runs_on_a_real_rabbitmq_and_every_step_passes() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let logs = tempfile::tempdir()?;
    let mut server = TestServer::start(data.path()).await?;
    let mut page = LabClient::open(&server, LAB).await?;
    anyhow::ensure!(page.view().broker.backend == Backend::RabbitMq);
    let began = Instant::now();
    page.wait_until("RabbitMQ to answer", START_DEADLINE, |c| {
        c.view().broker.health == BrokerHealth::Up
    })
    .await?;
    let url = page.view().broker.bootstrap_servers.clone();
    println!(
        "grouplab's rabbitmq-server answered {:?} after the page opened, at {url}",
        began.elapsed()
    );
    let broker_pids: Vec<u32> = children_of(server.pid());
    anyhow::ensure!(
        broker_pids.len() >= 2,
        "epmd and rabbitmq-server run as the server's children: {broker_pids:?}"
    );
    page.wait_until("both queues shown", STEP_DEADLINE, |c| {
        c.view()
            .queue(QUEUE)
            .is_some_and(|q| q.dead_letter_queue.as_deref() == Some(DEAD))
            && c.view().queue(DEAD).is_some()
    })
    .await?;

    // Step 1: three page instances are dealt 30 messages in turn.
    for _ in 0..3 {
        start(&mut page, lab_settings()).await?;
    }
    publish(&mut page, 30, None, 30).await?;
    page.wait_for_step(0, STEP_DEADLINE).await?;
    let counts: Vec<u64> = page.view().instances.iter().map(|i| i.received).collect();
    println!("30 messages were dealt to three instances as {counts:?}");
    anyhow::ensure!(
        counts == [10, 10, 10],
        "round-robin gives each 10: {counts:?}"
    );

    // Step 2: the learner's own worker joins; as written it never acknowledges.
    let mut starter = ExternalConsumer::start(
        Client::Starter {
            lab: LAB,
            arg: None,
            client_id: "learner-starter",
        },
        &url,
        logs.path(),
    )?;
    page.wait_until("the starter attached to the queue", STEP_DEADLINE, |c| {
        c.view().queue(QUEUE).is_some_and(|q| {
            q.consumers
                .iter()
                .any(|c| c.instance.is_none() && c.tag.starts_with("learner-"))
        })
    })
    .await
    .map_err(|e| e.context(starter.output()))?;
    publish(&mut page, 30, None, 60).await?;
    page.wait_until("the starter holding messages unacked", STEP_DEADLINE, |c| {
        c.view().queue(QUEUE).is_some_and(|q| {
            q.consumers
                .iter()
                .any(|c| c.instance.is_none() && c.unacked > 0)
        })
    })
    .await
    .map_err(|e| e.context(starter.output()))?;
    starter.interrupt()?;
    starter.wait_exit(STEP_DEADLINE).await?;
    let mut solution = ExternalConsumer::start(
        Client::Solution {
            lab: LAB,
            arg: None,
            client_id: "learner-solution",
        },
        &url,
        logs.path(),
    )?;
    page.wait_for_step(1, STEP_DEADLINE)
        .await
        .map_err(|e| e.context(solution.output()))?;
    solution.interrupt()?;
    solution.wait_exit(STEP_DEADLINE).await?;

    // Step 3: a slow and a fast worker; with prefetch 1 the fast one does most of the work.
    stop_all(&mut page).await?;
    let slow = start(
        &mut page,
        ConsumerSettings {
            processing_ms: 1000,
            prefetch: 1,
            ..lab_settings()
        },
    )
    .await?;
    let fast = start(
        &mut page,
        ConsumerSettings {
            prefetch: 1,
            ..lab_settings()
        },
    )
    .await?;
    publish(&mut page, 20, None, 80).await?;
    page.wait_for_step(2, STEP_DEADLINE).await?;
    let got = |id| {
        page.view()
            .instance(id)
            .map_or(0, |i: &grouplab_protocol::InstanceView| i.received)
    };
    println!(
        "with prefetch 1, the slow worker was handed {} and the fast one {}",
        got(slow),
        got(fast)
    );
    page.stop_instance(slow, STEP_DEADLINE).await?;

    // Step 4: a slow worker crashes holding unacked messages; the fast one gets them, redelivered.
    let slow = start(
        &mut page,
        ConsumerSettings {
            processing_ms: 2000,
            prefetch: 10,
            ..lab_settings()
        },
    )
    .await?;
    publish(&mut page, 20, None, 100).await?;
    page.wait_until("the slow worker holding messages", STEP_DEADLINE, |c| {
        c.view().instance(slow).is_some_and(|i| i.received >= 5)
    })
    .await?;
    page.send(&ClientCommand::CrashInstance { instance: slow })
        .await?;
    let crashed_at = Instant::now();
    page.wait_for_step(3, STEP_DEADLINE).await?;
    println!(
        "the crashed worker's messages were redelivered {:?} after the crash",
        crashed_at.elapsed()
    );
    anyhow::ensure!(
        page.view().messages.iter().any(|m| m
            .entry
            .as_deref()
            .is_some_and(|e| e.ends_with("redelivered"))),
        "the feed marks redelivered messages"
    );

    // Step 5: an auto-ack worker crashes with messages it never processed: they are gone.
    page.wait_until("the fast worker to drain the queue", STEP_DEADLINE, |c| {
        c.view()
            .queue(QUEUE)
            .is_some_and(|q| q.ready == 0 && q.unacked == 0)
    })
    .await?;
    stop_all(&mut page).await?;
    let careless = start(
        &mut page,
        ConsumerSettings {
            commit: CommitPolicy::Auto,
            processing_ms: 1000,
            ..lab_settings()
        },
    )
    .await?;
    publish(&mut page, 10, None, 110).await?;
    page.wait_until("the auto-ack worker sent all ten", STEP_DEADLINE, |c| {
        c.view()
            .instance(careless)
            .is_some_and(|i| i.received == 10)
    })
    .await?;
    page.send(&ClientCommand::CrashInstance { instance: careless })
        .await?;
    page.wait_for_step(4, STEP_DEADLINE).await?;
    let queue = page.view().queue(QUEUE).cloned().unwrap_or_default();
    anyhow::ensure!(
        queue.ready == 0 && queue.unacked == 0,
        "nothing comes back after an auto-ack crash: {queue:?}"
    );

    // Step 6: a poison message, rejected without requeueing, lands in the dead-letter queue.
    start(
        &mut page,
        ConsumerSettings {
            fail_on: Some("poison".into()),
            requeue_on_failure: false,
            ..lab_settings()
        },
    )
    .await?;
    publish(&mut page, 1, Some("poison"), 111).await?;
    page.wait_for_step(5, STEP_DEADLINE).await?;

    // Step 7: a client that declares the default exchange is refused, and the page says so.
    let refused = ExternalConsumer::start(
        Client::Script {
            lab: LAB,
            file: "default_exchange.py",
        },
        &url,
        logs.path(),
    )?;
    page.wait_for_step(6, STEP_DEADLINE)
        .await
        .map_err(|e| e.context(refused.output()))?;
    // The log is read at once; the connection's name comes from the management API, which
    // may list the connection a poll later.
    page.wait_until("the refused client named", STEP_DEADLINE, |c| {
        c.view()
            .queue(QUEUE)
            .and_then(|q| q.refusals.last())
            .is_some_and(|r| r.client.starts_with("learner-"))
    })
    .await?;
    let refusal = page
        .view()
        .queue(QUEUE)
        .and_then(|q| q.refusals.last().cloned())
        .ok_or_else(|| anyhow::anyhow!("the refusal is on the queue"))?;
    println!(
        "RabbitMQ refused {}: {} → {}",
        refusal.client, refusal.operation, refusal.error
    );
    anyhow::ensure!(
        refusal.client.starts_with("learner-")
            && refusal.operation == "exchange.declare"
            && refusal.error.contains("access_refused"),
        "the refusal names the client and what it was refused: {refusal:?}"
    );
    refused.interrupt()?;

    // Reset stops the instances and deletes the lab's queues; they come back empty.
    page.send(&ClientCommand::ResetLab).await?;
    page.wait_until("the reset", STEP_DEADLINE, |c| {
        c.notices.iter().any(|n| n.title == "The lab was reset")
    })
    .await?;
    page.wait_until("empty queues again", STEP_DEADLINE, |c| {
        [QUEUE, DEAD].iter().all(|name| {
            c.view()
                .queue(name)
                .is_some_and(|q| q.published == 0 && q.ready == 0 && q.consumers.is_empty())
        })
    })
    .await?;
    anyhow::ensure!(alive(page.view()).is_empty(), "Reset stops every instance");

    // No RabbitMQ or epmd outlives grouplab, even killed without a chance to clean up.
    server.kill();
    poll_until(
        "rabbitmq-server and epmd to die with grouplab",
        Duration::from_secs(10),
        || {
            let gone = broker_pids.iter().all(|pid| !is_running(*pid));
            async move { gone.then_some(()) }
        },
    )
    .await?;
    Ok(())
}

/// Without a rabbitmq-server to start, a RabbitMQ lab says why in the page and refuses
/// instances in the same words, while the server keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_rabbitmq_server_is_explained() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let server = TestServer::start_with(
        data.path(),
        &["--rabbitmq-program", "/nonexistent/rabbitmq-server"],
    )
    .await?;
    let mut page = LabClient::open(&server, LAB).await?;
    page.wait_until("RabbitMQ to be reported down", STEP_DEADLINE, |c| {
        matches!(&c.view().broker.health, BrokerHealth::Down { reason } if reason.contains("rabbitmq-server"))
    })
    .await?;
    page.start_instance(GROUP, QUEUE, lab_settings()).await?;
    page.wait_until("the refusal", STEP_DEADLINE, |c| {
        c.notices.iter().any(|n| {
            n.title == "RabbitMQ is not available" && n.detail.contains("scripts/setup.sh")
        })
    })
    .await?;
    anyhow::ensure!(page.view().instances.is_empty(), "no instance was started");
    Ok(())
}

/// grouplab's RabbitMQ dying mid-lab is shown in words with what to do, commands that need it
/// say so, and the server keeps serving; then Ctrl-C or SIGTERM leaves no process behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_going_away_is_explained_and_nothing_outlives_a_graceful_stop()
-> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let mut server = TestServer::start(data.path()).await?;
    let mut page = LabClient::open(&server, LAB).await?;
    page.wait_until("RabbitMQ to answer", START_DEADLINE, |c| {
        c.view().broker.health == BrokerHealth::Up
    })
    .await?;
    let brokers = children_of(server.pid());
    start(&mut page, lab_settings()).await?;
    let all = children_of(server.pid());
    anyhow::ensure!(
        all.len() == brokers.len() + 1,
        "epmd, rabbitmq-server and one instance: {all:?}"
    );
    // The broker is the child that is neither epmd nor the instance.
    let broker = brokers
        .iter()
        .copied()
        .find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|name| name.trim() == "beam.smp")
        })
        .ok_or_else(|| anyhow::anyhow!("no beam.smp among {brokers:?}"))?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(broker as i32),
        nix::sys::signal::Signal::SIGKILL,
    )?;
    page.wait_until("RabbitMQ to be shown stopped", STEP_DEADLINE, |c| {
        matches!(&c.view().broker.health, BrokerHealth::Down { reason } if reason.contains("Restart grouplab"))
    })
    .await?;
    page.send(&ClientCommand::Produce {
        topic: QUEUE.into(),
        count: 1,
        keys: KeyMode::None,
        partition: None,
        text: None,
    })
    .await?;
    page.wait_until("the produce to fail in words", STEP_DEADLINE, |c| {
        c.notices.iter().any(|n| {
            n.title.starts_with("Messages were not produced")
                && n.detail.contains("rabbitmq-server stopped")
        })
    })
    .await?;
    let (status, _) = server.get("/healthz").await?;
    anyhow::ensure!(status == 200, "the server still serves");

    server.terminate().await?;
    for pid in all {
        anyhow::ensure!(!is_running(pid), "process {pid} outlived grouplab");
    }
    Ok(())
}
