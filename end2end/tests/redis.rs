//! The Redis Streams lab against grouplab's own `redis-server`, started the way the run command
//! starts it: page instances and the learner's own redis-py consumers in one group, a crash
//! that leaves entries pending until a survivor claims them, a poison entry moved aside, and
//! readers in no group. Each step of the lab must pass from what Redis and the consumers did.

use std::time::{Duration, Instant};

use grouplab_end2end::external::{Client, ExternalConsumer};
use grouplab_end2end::{LabClient, TestServer, children_of, is_running, poll_until};
use grouplab_protocol::{
    Backend, BrokerHealth, ClientCommand, ConsumerSettings, InstanceState, KeyMode, LabSnapshot,
    StreamConsumerView, TimelineKind,
};

const LAB: &str = "13-redis-streams";
const STREAM: &str = "orders";
const GROUP: &str = "order-workers";
/// Redis starting, a few reads, and a claim after 5 s of idleness fit well within this.
const STEP_DEADLINE: Duration = Duration::from_secs(60);

/// What the lab's `[setup.consumer]` fills the form with.
fn lab_settings() -> ConsumerSettings {
    ConsumerSettings {
        commit: grouplab_protocol::CommitPolicy::AfterProcessing,
        processing_ms: 200,
        max_poll_records: 5,
        block_ms: 2000,
        ..ConsumerSettings::default()
    }
}

/// Produces `count` entries (with `text` in each, if given) and waits until the stream holds `total`.
async fn produce(
    page: &mut LabClient,
    count: u32,
    text: Option<&str>,
    total: u64,
) -> anyhow::Result<()> {
    page.send(&ClientCommand::Produce {
        topic: STREAM.into(),
        count,
        keys: KeyMode::None,
        partition: None,
        text: text.map(str::to_owned),
    })
    .await?;
    page.wait_until(
        &format!("{total} entries in `{STREAM}`"),
        STEP_DEADLINE,
        |c| c.view().stream(STREAM).is_some_and(|s| s.length >= total),
    )
    .await
}

fn consumers(view: &LabSnapshot) -> Vec<&StreamConsumerView> {
    view.stream(STREAM)
        .and_then(|s| s.group(GROUP))
        .map(|g| g.consumers.iter().collect())
        .unwrap_or_default()
}

fn alive(view: &LabSnapshot) -> Vec<grouplab_protocol::InstanceId> {
    view.instances
        .iter()
        .filter(|i| i.is_alive())
        .map(|i| i.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_streams_lab_runs_on_a_real_redis_and_every_step_passes() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let logs = tempfile::tempdir()?;
    let mut server = TestServer::start(data.path()).await?;
    let mut page = LabClient::open(&server, LAB).await?;
    let began = Instant::now();
    page.wait_until("Redis to answer", STEP_DEADLINE, |c| {
        c.view().broker.health == BrokerHealth::Up
    })
    .await?;
    let url = page.view().broker.bootstrap_servers.clone();
    println!(
        "grouplab's redis-server answered {:?} after the page opened, at {url}",
        began.elapsed()
    );
    let redis_pids: Vec<u32> = children_of(server.pid());
    anyhow::ensure!(!redis_pids.is_empty(), "the server has no child process");

    // Step 1: three page instances share the stream, each entry to one.
    for _ in 0..3 {
        page.start_instance(GROUP, STREAM, lab_settings()).await?;
    }
    page.wait_until("three instances reading", STEP_DEADLINE, |c| {
        c.view()
            .instances
            .iter()
            .filter(|i| i.state == InstanceState::Running)
            .count()
            == 3
    })
    .await?;
    produce(&mut page, 30, None, 30).await?;
    page.wait_for_step(0, STEP_DEADLINE).await?;
    page.wait_until("30 entries processed", STEP_DEADLINE, |c| {
        c.view().instances.iter().map(|i| i.processed).sum::<u64>() == 30
    })
    .await?;
    let counts: Vec<u64> = page.view().instances.iter().map(|i| i.received).collect();
    println!("30 entries were dealt to three instances as {counts:?}");
    anyhow::ensure!(
        counts.iter().sum::<u64>() == 30,
        "each entry goes to one consumer: {counts:?}"
    );

    // Step 2: the learner's own consumer joins; as written it never acknowledges.
    let mut starter = ExternalConsumer::start(
        Client::Starter {
            lab: LAB,
            arg: None,
            client_id: "learner-starter",
        },
        &url,
        logs.path(),
    )?;
    // Redis 7.0 makes a consumer when a read hands it something, not while the read waits.
    produce(&mut page, 30, None, 60).await?;
    page.wait_until("the starter holding entries pending", STEP_DEADLINE, |c| {
        consumers(c.view())
            .iter()
            .any(|c| c.name.starts_with("learner-") && c.pending > 0)
    })
    .await
    .map_err(|e| e.context(starter.output()))?;
    starter.interrupt()?;
    starter.wait_exit(STEP_DEADLINE).await?;
    // The solution acknowledges, and claims what the starter left pending once it is 5 s idle.
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

    // Step 3: stop everyone, then crash an instance holding entries.
    for id in alive(page.view()) {
        page.stop_instance(id, STEP_DEADLINE).await?;
    }
    solution.interrupt()?;
    solution.wait_exit(STEP_DEADLINE).await?;
    page.start_instance(
        GROUP,
        STREAM,
        ConsumerSettings {
            processing_ms: 1000,
            max_poll_records: 10,
            ..lab_settings()
        },
    )
    .await?;
    page.wait_until("the slow instance reading", STEP_DEADLINE, |c| {
        c.view()
            .instances
            .iter()
            .any(|i| i.is_alive() && i.state == InstanceState::Running)
    })
    .await?;
    produce(&mut page, 10, None, 70).await?;
    let slow = alive(page.view())[0];
    page.wait_until(
        "the slow instance to be handed entries",
        STEP_DEADLINE,
        |c| c.view().instance(slow).is_some_and(|i| i.received > 0),
    )
    .await?;
    page.send(&ClientCommand::CrashInstance { instance: slow })
        .await?;
    let crashed_at = Instant::now();
    page.wait_for_step(2, STEP_DEADLINE).await?;
    let crashed_name = page
        .view()
        .instance(slow)
        .map(|i| i.client_id.clone())
        .unwrap_or_default();
    let left = consumers(page.view())
        .iter()
        .find(|c| c.name == crashed_name)
        .map_or(0, |c| c.pending);
    println!("the crashed instance left {left} entries pending");
    anyhow::ensure!(left > 0, "a crash leaves the entries in hand pending");

    // Step 4: a survivor claims them after 5 s idle.
    page.start_instance(
        GROUP,
        STREAM,
        ConsumerSettings {
            claim_idle_ms: Some(5000),
            ..lab_settings()
        },
    )
    .await?;
    page.wait_for_step(3, STEP_DEADLINE).await?;
    let claimed = page
        .view()
        .timeline
        .iter()
        .find(|e| matches!(e.kind, TimelineKind::Claimed { .. }))
        .map(|e| e.at);
    anyhow::ensure!(claimed.is_some(), "the claim is on the timeline");
    println!(
        "a survivor claimed them {:?} after the crash",
        crashed_at.elapsed()
    );
    anyhow::ensure!(
        consumers(page.view()).iter().all(|c| c.pending == 0),
        "after the claim nothing is pending"
    );

    // Step 5: a poison entry is delivered again and again, then moved aside.
    // A stopping consumer finishes the read it is blocked in: wait until it has exited.
    for id in alive(page.view()) {
        page.stop_instance(id, STEP_DEADLINE).await?;
    }
    page.start_instance(
        GROUP,
        STREAM,
        ConsumerSettings {
            fail_on: Some("poison".into()),
            claim_idle_ms: Some(1000),
            retries: 3,
            dead_letter_topic: Some("orders.dead".into()),
            ..lab_settings()
        },
    )
    .await?;
    produce(&mut page, 1, Some("poison"), 71).await?;
    page.wait_for_step(4, STEP_DEADLINE).await?;
    page.wait_until("the entry in `orders.dead`", STEP_DEADLINE, |c| {
        c.view()
            .stream("orders.dead")
            .is_some_and(|s| s.length == 1)
    })
    .await?;

    // Step 6: two readers in no group each get every entry.
    let reader = Client::Script {
        lab: LAB,
        file: "xread_reader.py",
    };
    let readers = [
        ExternalConsumer::start(reader, &url, logs.path())?,
        ExternalConsumer::start(reader, &url, logs.path())?,
    ];
    page.wait_until("two readers in no group", STEP_DEADLINE, |c| {
        c.view()
            .stream(STREAM)
            .is_some_and(|s| s.loose_readers.len() >= 2)
    })
    .await?;
    produce(&mut page, 3, None, 74).await?;
    page.wait_for_step(5, STEP_DEADLINE).await?;
    for reader in &readers {
        let output = reader.output();
        poll_until("a reader to print all three entries", STEP_DEADLINE, || {
            let output = reader.output();
            async move { (output.matches(" got ").count() >= 3).then_some(()) }
        })
        .await
        .map_err(|e| e.context(output))?;
    }

    // Reset stops the instances and deletes the lab's streams; the group comes back empty.
    page.send(&ClientCommand::ResetLab).await?;
    page.wait_until("the reset", STEP_DEADLINE, |c| {
        c.notices.iter().any(|n| n.title == "The lab was reset")
    })
    .await?;
    page.wait_until("an empty stream with its group again", STEP_DEADLINE, |c| {
        c.view().stream(STREAM).is_some_and(|s| {
            s.length == 0 && s.group(GROUP).is_some_and(|g| g.consumers.is_empty())
        }) && c.view().stream("orders.dead").is_none()
    })
    .await?;
    anyhow::ensure!(alive(page.view()).is_empty(), "Reset stops every instance");

    // No Redis outlives grouplab, even killed without a chance to clean up.
    server.kill();
    poll_until(
        "redis-server to die with grouplab",
        Duration::from_secs(10),
        || {
            let gone = redis_pids.iter().all(|pid| !is_running(*pid));
            async move { gone.then_some(()) }
        },
    )
    .await?;
    Ok(())
}

/// Without a redis-server to start, a Redis lab says why in the page and refuses instances in
/// the same words, while the server and its Kafka labs keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_redis_server_is_explained_and_kafka_labs_keep_working() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let server = TestServer::start_with(
        data.path(),
        &["--redis-program", "/nonexistent/redis-server"],
    )
    .await?;
    let mut page = LabClient::open(&server, LAB).await?;
    anyhow::ensure!(page.view().broker.backend == Backend::Redis);
    page.wait_until("Redis to be reported down", STEP_DEADLINE, |c| {
        matches!(&c.view().broker.health, BrokerHealth::Down { reason } if reason.contains("redis-server"))
    })
    .await?;
    page.start_instance(GROUP, STREAM, lab_settings()).await?;
    page.wait_until("the refusal", STEP_DEADLINE, |c| {
        c.notices
            .iter()
            .any(|n| n.title == "Redis is not available" && n.detail.contains("scripts/setup.sh"))
    })
    .await?;
    anyhow::ensure!(page.view().instances.is_empty(), "no instance was started");

    let mut kafka = LabClient::open(&server, "04-consumer-groups").await?;
    kafka.create_topic("user-clicks", 3).await?;
    Ok(())
}

/// Ctrl-C or SIGTERM: the instance leaves its group (deleting its consumer, having nothing
/// pending), and grouplab's redis-server stops with the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_stops_redis_and_its_instances() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let mut server = TestServer::start(data.path()).await?;
    let mut page = LabClient::open(&server, LAB).await?;
    page.wait_until("Redis to answer", STEP_DEADLINE, |c| {
        c.view().broker.health == BrokerHealth::Up
    })
    .await?;
    let redis = children_of(server.pid());
    page.start_instance(GROUP, STREAM, lab_settings()).await?;
    page.wait_until("the instance reading", STEP_DEADLINE, |c| {
        c.view()
            .instances
            .iter()
            .any(|i| i.state == InstanceState::Running)
    })
    .await?;
    let all = children_of(server.pid());
    anyhow::ensure!(
        all.len() == redis.len() + 1,
        "redis-server and one instance: {all:?}"
    );
    server.terminate().await?;
    for pid in all {
        anyhow::ensure!(!is_running(pid), "process {pid} outlived grouplab");
    }
    Ok(())
}

/// Redis going away mid-lab is shown as the broker being down, commands that need it say so,
/// and the server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_going_away_is_shown_and_the_server_keeps_running() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let server = TestServer::start(data.path()).await?;
    let mut page = LabClient::open(&server, LAB).await?;
    page.wait_until("Redis to answer", STEP_DEADLINE, |c| {
        c.view().broker.health == BrokerHealth::Up
    })
    .await?;
    for pid in children_of(server.pid()) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )?;
    }
    page.wait_until("Redis to be shown down", STEP_DEADLINE, |c| {
        matches!(c.view().broker.health, BrokerHealth::Down { .. })
    })
    .await?;
    page.send(&ClientCommand::Produce {
        topic: STREAM.into(),
        count: 1,
        keys: KeyMode::None,
        partition: None,
        text: None,
    })
    .await?;
    page.wait_until("the produce to fail in words", STEP_DEADLINE, |c| {
        c.notices.iter().any(|n| {
            n.title.starts_with("Messages were not produced") && n.detail.contains("redis://")
        })
    })
    .await?;
    let (status, _) = server.get("/healthz").await?;
    anyhow::ensure!(status == 200, "the server still serves");
    Ok(())
}

/// On a Redis that is not grouplab's own (`--redis-url`), the page writes only to the lab's own
/// streams, and Reset asks twice before it deletes them; nobody else's keys are touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_named_redis_only_the_labs_own_streams_are_written_and_reset_asks_twice()
-> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut redis = tokio::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(data.path())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let cli = |args: &[&str]| {
        let output = std::process::Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args)
            .output();
        output.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    poll_until("the named Redis to answer", STEP_DEADLINE, || {
        let answer = cli(&["PING"]).unwrap_or_default();
        async move { (answer == "PONG").then_some(()) }
    })
    .await?;
    cli(&["SET", "someone-elses", "keep me"])?;

    let url = format!("redis://127.0.0.1:{port}/");
    let server = TestServer::start_with(data.path(), &["--redis-url", &url]).await?;
    let mut page = LabClient::open(&server, LAB).await?;
    page.wait_until("the named Redis to answer", STEP_DEADLINE, |c| {
        c.view().broker.health == BrokerHealth::Up && c.view().broker.bootstrap_servers == url
    })
    .await?;
    produce(&mut page, 3, None, 3).await?;

    // A stream the lab does not own is refused, and not made.
    for name in ["someone-elses", "other-stream"] {
        page.send(&ClientCommand::Produce {
            topic: name.into(),
            count: 1,
            keys: KeyMode::None,
            partition: None,
            text: None,
        })
        .await?;
        page.wait_until("the refusal", STEP_DEADLINE, |c| {
            c.notices
                .iter()
                .any(|n| n.title == format!("`{name}` is not one of this lab's streams"))
        })
        .await?;
    }
    anyhow::ensure!(
        cli(&["TYPE", "someone-elses"])? == "string",
        "the key is untouched"
    );
    anyhow::ensure!(
        cli(&["EXISTS", "other-stream"])? == "0",
        "no stream was made"
    );

    // The first Reset only says what it would delete.
    page.send(&ClientCommand::ResetLab).await?;
    page.wait_until("Reset to ask again", STEP_DEADLINE, |c| {
        c.notices
            .iter()
            .any(|n| n.title == "Press Reset again to confirm")
    })
    .await?;
    anyhow::ensure!(cli(&["XLEN", STREAM])? == "3", "nothing was deleted yet");
    page.send(&ClientCommand::ResetLab).await?;
    page.wait_until("the reset", STEP_DEADLINE, |c| {
        c.notices.iter().any(|n| n.title == "The lab was reset")
    })
    .await?;
    page.wait_until("an empty stream again", STEP_DEADLINE, |c| {
        c.view().stream(STREAM).is_some_and(|s| s.length == 0)
    })
    .await?;
    anyhow::ensure!(
        cli(&["GET", "someone-elses"])? == "keep me",
        "Reset deletes only the lab's streams"
    );
    drop(server);
    redis.kill().await?;
    Ok(())
}

/// An instance can be given its consumer name: two given one name are one consumer to Redis,
/// sharing one pending entries list, and the stream panel links that consumer to them. A name
/// Redis tools would choke on is refused in words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_given_one_consumer_name_are_one_consumer() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let server = TestServer::start(data.path()).await?;
    let mut page = LabClient::open(&server, LAB).await?;
    page.wait_until("Redis to answer", STEP_DEADLINE, |c| {
        c.view().broker.health == BrokerHealth::Up
    })
    .await?;
    page.start_instance(
        GROUP,
        STREAM,
        ConsumerSettings {
            consumer_name: Some("two words".into()),
            ..lab_settings()
        },
    )
    .await?;
    page.wait_until("the refusal", STEP_DEADLINE, |c| {
        c.notices.iter().any(|n| {
            n.title == "Those consumer settings won't work" && n.detail.contains("consumer name")
        })
    })
    .await?;
    let named = ConsumerSettings {
        consumer_name: Some("shared".into()),
        ..lab_settings()
    };
    page.start_instance(GROUP, STREAM, named.clone()).await?;
    page.start_instance(GROUP, STREAM, named).await?;
    page.wait_until("two instances reading", STEP_DEADLINE, |c| {
        c.view()
            .instances
            .iter()
            .filter(|i| i.state == InstanceState::Running)
            .count()
            == 2
    })
    .await?;
    produce(&mut page, 6, None, 6).await?;
    page.wait_until("six entries processed", STEP_DEADLINE, |c| {
        c.view().instances.iter().map(|i| i.processed).sum::<u64>() == 6
    })
    .await?;
    let names: Vec<(String, bool)> = consumers(page.view())
        .iter()
        .map(|c| (c.name.clone(), c.instance.is_some()))
        .collect();
    anyhow::ensure!(
        names == [("shared".to_owned(), true)],
        "one consumer, linked to the instances: {names:?}"
    );
    Ok(())
}
