//! A broker outage is shown and survived, on the embedded broker (taken down and brought up
//! from the page) and on a named cluster (another grouplab's embedded broker, taken down from
//! its own page): the page says so within 2 s, the instances' errors are shown, and the lab
//! works again once the broker is back, without restarting anything.

use std::time::{Duration, Instant};

use grouplab_end2end::{LabClient, TestServer};
use grouplab_protocol::{
    BrokerHealth, ClientCommand, KeyMode, LabSnapshot, TimelineKind, TopicPartition,
};

const LAB: &str = "04-consumer-groups";
const GROUP: &str = "click-processors";
const TOPIC: &str = "user-clicks";
/// What the page must meet: the outage shown within this long of it starting.
const SHOWN_WITHIN: Duration = Duration::from_secs(2);
/// Consumers reconnect with librdkafka's back-off (up to 10 s between attempts), then rejoin.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(60);
const DEADLINE: Duration = Duration::from_secs(30);

/// Whether `count` running instances share every partition of the topic, as the broker says.
fn all_partitions_owned(view: &LabSnapshot, count: usize, partitions: i32) -> bool {
    let Some(group) = view.group(GROUP) else {
        return false;
    };
    let working: Vec<_> = group
        .members
        .iter()
        .filter(|m| m.is_working(&view.instances))
        .map(|m| m.partitions.as_slice())
        .collect();
    share_exactly(&working, count, partitions)
}

/// Whether `count` running instances say, from their own rebalance callbacks, that they share
/// every partition. On a named nisshi cluster this is the only source: nisshi's DescribeGroups
/// leaves assignments out.
fn instances_cover(view: &LabSnapshot, count: usize, partitions: i32) -> bool {
    let alive: Vec<_> = view
        .instances
        .iter()
        .filter(|i| i.is_alive())
        .map(|i| i.partitions.as_slice())
        .collect();
    share_exactly(&alive, count, partitions)
}

/// Whether `count` holders share partitions `0..partitions`, each held by exactly one.
fn share_exactly(holders: &[&[TopicPartition]], count: usize, partitions: i32) -> bool {
    let mut owned: Vec<i32> = holders
        .iter()
        .flat_map(|held| held.iter().map(|tp| tp.partition))
        .collect();
    owned.sort_unstable();
    holders.len() == count && owned == (0..partitions).collect::<Vec<_>>()
}

/// Produces 30 more messages to a topic that had 30, and waits until all 60 are in the log and
/// received: the lab works again.
async fn thirty_more(page: &mut LabClient) -> anyhow::Result<()> {
    produce(page, 30).await?;
    page.wait_until("the 30 new messages received", RECOVERY_DEADLINE, |p| {
        log_end(p.view()) == 60 && received(p.view()) >= 60
    })
    .await
}

fn received(view: &LabSnapshot) -> u64 {
    view.instances.iter().map(|i| i.received).sum()
}

fn log_end(view: &LabSnapshot) -> i64 {
    view.topic(TOPIC)
        .map(|t| t.partitions.iter().map(|p| p.log_end).sum())
        .unwrap_or(0)
}

async fn produce(page: &mut LabClient, count: u32) -> anyhow::Result<()> {
    page.send(&ClientCommand::Produce {
        topic: TOPIC.into(),
        count,
        keys: KeyMode::Rotating { distinct: 12 },
        partition: None,
        text: None,
    })
    .await
}

/// A lab with two instances that own the topic's three partitions and have read 30 messages.
async fn busy_lab(page: &mut LabClient) -> anyhow::Result<()> {
    page.create_topic(TOPIC, 3).await?;
    page.start_instances(GROUP, TOPIC, 2).await?;
    page.wait_until("two instances owning every partition", DEADLINE, |p| {
        instances_cover(p.view(), 2, 3)
    })
    .await?;
    produce(page, 30).await?;
    page.wait_until("30 messages received", DEADLINE, |p| {
        received(p.view()) == 30
    })
    .await
}

#[tokio::test]
async fn the_embedded_broker_goes_down_and_comes_back_without_a_restart() -> anyhow::Result<()> {
    embedded_outage(false).await
}

/// Longer than the session timeout: each instance's client gives up its session (its partitions
/// are revoked as lost) while the broker is away, and the group forms again once it is back.
#[tokio::test]
async fn a_long_outage_costs_the_sessions_and_the_group_forms_again() -> anyhow::Result<()> {
    embedded_outage(true).await
}

async fn embedded_outage(past_the_session_timeout: bool) -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let server = TestServer::start(data.path()).await?;
    let mut page = LabClient::open(&server, LAB).await?;
    busy_lab(&mut page).await?;
    page.wait_until("the broker shown up", DEADLINE, |p| {
        p.view().broker.health.is_up()
    })
    .await?;

    let down_at = Instant::now();
    page.send(&ClientCommand::SetBroker { up: false }).await?;
    page.wait_until(
        "the outage shown, and marked on the timeline",
        SHOWN_WITHIN,
        |p| {
            matches!(p.view().broker.health, BrokerHealth::Stopped { .. })
                && p.view()
                    .timeline
                    .iter()
                    .any(|e| matches!(e.kind, TimelineKind::BrokerDown { .. }))
        },
    )
    .await?;
    let shown = down_at.elapsed();
    // The broker really is gone: nothing listens on its address.
    assert!(
        tokio::net::TcpStream::connect(server.broker).await.is_err(),
        "the broker's port is closed while it is down"
    );
    page.wait_until("each instance's client error on its card", DEADLINE, |p| {
        p.view()
            .instances
            .iter()
            .filter(|i| i.is_alive())
            .all(|i| i.problem.is_some())
    })
    .await?;
    let errors_shown = down_at.elapsed();
    // Producing fails, and says why in a learner's words.
    produce(&mut page, 1).await?;
    page.wait_until("the failed produce explained", DEADLINE, |p| {
        p.notices.iter().any(|n| {
            n.title.starts_with("Messages were not produced") && n.detail.contains("did not answer")
        })
    })
    .await?;
    let problem = page.view().instances[0]
        .problem
        .clone()
        .expect("the card shows the error");
    println!(
        "outage shown after {} ms, the instances' errors after {} ms (\"{}\")",
        shown.as_millis(),
        errors_shown.as_millis(),
        problem.message
    );

    if past_the_session_timeout {
        page.wait_until(
            "each instance to give up its session and its partitions",
            DEADLINE,
            |p| {
                p.view()
                    .instances
                    .iter()
                    .filter(|i| i.is_alive())
                    .all(|i| i.partitions.is_empty())
            },
        )
        .await?;
        println!(
            "the instances gave up their sessions {} ms into the outage",
            down_at.elapsed().as_millis()
        );
    }

    let up_at = Instant::now();
    page.send(&ClientCommand::SetBroker { up: true }).await?;
    page.wait_until("the broker shown up again", SHOWN_WITHIN, |p| {
        p.view().broker.health.is_up()
    })
    .await?;
    let back = up_at.elapsed();
    page.wait_until(
        "the instances owning every partition again",
        RECOVERY_DEADLINE,
        |p| {
            all_partitions_owned(p.view(), 2, 3)
                && p.view()
                    .instances
                    .iter()
                    .filter(|i| i.is_alive())
                    .all(|i| i.problem.is_none())
        },
    )
    .await?;
    let recovered = up_at.elapsed();

    // What the broker stored survived: the topic with its 30 messages, and the group's offsets,
    // so the instances carry on from where they committed.
    // (The log ends are read again after the broker returns; they are waited for, not assumed.)
    page.wait_until("the topic to show its 30 messages again", DEADLINE, |p| {
        log_end(p.view()) == 30
    })
    .await
    .map_err(|err| anyhow::anyhow!("the topic kept its messages: {err}"))?;
    thirty_more(&mut page).await?;
    let again = received(page.view());
    println!(
        "broker up shown after {} ms; instances reassigned and error-free after {} ms; {again} messages received for 60 produced ({} read again after the outage)",
        back.as_millis(),
        recovered.as_millis(),
        again - 60
    );
    assert_eq!(
        page.view()
            .instances
            .iter()
            .filter(|i| i.is_alive())
            .count(),
        2,
        "both instances lived through the outage"
    );
    let (status, _) = server.get("/healthz").await?;
    assert_eq!(status, 200);
    Ok(())
}

#[tokio::test]
async fn a_named_cluster_that_goes_away_is_shown_and_survived() -> anyhow::Result<()> {
    let cluster_data = tempfile::tempdir()?;
    let cluster = TestServer::start(cluster_data.path()).await?;
    let mut cluster_page = LabClient::open(&cluster, LAB).await?;
    let data = tempfile::tempdir()?;
    let bootstrap = cluster.broker.to_string();
    let server = TestServer::start_with(data.path(), &["--bootstrap-servers", &bootstrap]).await?;
    let mut page = LabClient::open(&server, LAB).await?;
    page.wait_until("the cluster shown up", DEADLINE, |p| {
        p.view().broker.health.is_up()
    })
    .await?;
    busy_lab(&mut page).await?;

    // Only the embedded broker can be stopped from a page.
    page.send(&ClientCommand::SetBroker { up: false }).await?;
    page.wait_until("the refusal", DEADLINE, |p| {
        p.notices
            .iter()
            .any(|n| n.title.contains("cannot stop your cluster"))
    })
    .await?;

    let down_at = Instant::now();
    cluster_page
        .send(&ClientCommand::SetBroker { up: false })
        .await?;
    page.wait_until("the outage shown", SHOWN_WITHIN, |p| {
        matches!(p.view().broker.health, BrokerHealth::Down { .. })
    })
    .await?;
    let shown = down_at.elapsed();
    let BrokerHealth::Down { reason } = page.view().broker.health.clone() else {
        unreachable!()
    };
    assert!(reason.contains("did not answer"), "{reason}");
    page.wait_until("an instance's client error on its card", DEADLINE, |p| {
        p.view().instances.iter().any(|i| i.problem.is_some())
    })
    .await?;

    let up_at = Instant::now();
    cluster_page
        .send(&ClientCommand::SetBroker { up: true })
        .await?;
    page.wait_until("the cluster shown up again", SHOWN_WITHIN, |p| {
        p.view().broker.health.is_up()
    })
    .await?;
    let back = up_at.elapsed();
    page.wait_until(
        "the instances owning every partition again",
        RECOVERY_DEADLINE,
        |p| instances_cover(p.view(), 2, 3),
    )
    .await?;
    thirty_more(&mut page).await?;
    println!(
        "named cluster: outage shown after {} ms, back up shown after {} ms, recovered after {} ms",
        shown.as_millis(),
        back.as_millis(),
        up_at.elapsed().as_millis()
    );
    Ok(())
}
