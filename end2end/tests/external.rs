//! The learner's own consumers, in any client, are group members like the page's instances:
//! Lab 04's snippets run against the real embedded broker, and the page's view (a websocket
//! client applying every event, as the page does) must show each of them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::Context;
use grouplab_end2end::external::{Client, ExternalConsumer, admin_describe};
use grouplab_end2end::{LabClient, TestServer};
use grouplab_protocol::{
    ClientCommand, ConsumerSettings, Departure, GroupState, LabSnapshot, MemberOrigin,
    MembershipSource, TimelineKind,
};

const LAB: &str = "04-consumer-groups";
const GROUP: &str = "click-processors";
const TOPIC: &str = "user-clicks";
/// Joining needs the client's start-up, the broker's rebalance delay and a rebalance per newcomer.
const JOIN_DEADLINE: Duration = Duration::from_secs(60);
/// The snippets' session timeout (10 s), with room for the rebalance after it.
const EXPIRY_DEADLINE: Duration = Duration::from_secs(30);

/// The client ids of the group's members, each with the partitions of the topic it owns.
fn owners(view: &LabSnapshot) -> BTreeMap<String, BTreeSet<i32>> {
    view.group(GROUP)
        .map(|g| {
            g.members
                .iter()
                .map(|m| {
                    let partitions = m.partitions.iter().map(|tp| tp.partition).collect();
                    (m.client_id.clone(), partitions)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether exactly `clients` are the members, and they own `0..partitions` with no overlap.
fn split_between(view: &LabSnapshot, clients: &[&str], partitions: i32) -> bool {
    let owners = owners(view);
    let members: BTreeSet<&str> = owners.keys().map(String::as_str).collect();
    let wanted: BTreeSet<&str> = clients.iter().copied().collect();
    let owned: Vec<i32> = owners.values().flatten().copied().collect();
    let distinct: BTreeSet<i32> = owned.iter().copied().collect();
    members == wanted
        && owned.len() == distinct.len()
        && distinct == (0..partitions).collect()
        && view
            .group(GROUP)
            .is_some_and(|g| g.state == GroupState::Stable)
}

/// How long ago, on this machine's clock, the server stamped the newest timeline entry about
/// the member with this client id: the time from the server seeing it to this page applying it.
fn since_stamped(view: &LabSnapshot, client_id: &str) -> Option<u64> {
    let entry = view
        .timeline
        .iter()
        .rev()
        .find(|e| e.name.starts_with(client_id))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_millis() as u64;
    Some(now.saturating_sub(entry.at))
}

/// Whether the timeline says the member with this client id left the group this way.
fn departed(view: &LabSnapshot, client_id: &str, how: Departure) -> bool {
    view.timeline.iter().any(|e| {
        matches!(e.kind, TimelineKind::Departed { departure, .. } if departure == how)
            && e.name.starts_with(client_id)
    })
}

/// An admin client (confluent-kafka's `describe_consumer_groups`) describes the group as the page
/// shows it: every member by its client id, its host, and the partitions the page shows it owns.
async fn described_as_shown(bootstrap: &str, view: &LabSnapshot) -> anyhow::Result<()> {
    let (state, members) = admin_describe(bootstrap, GROUP).await?;
    assert_eq!(state, "STABLE");
    let described: BTreeMap<String, BTreeSet<i32>> = members
        .iter()
        .map(|m| (m.client_id.clone(), m.partitions.iter().copied().collect()))
        .collect();
    assert_eq!(described, owners(view), "described: {members:?}");
    assert!(
        members.iter().all(|m| m.host == "/127.0.0.1"),
        "each member's host: {members:?}"
    );
    Ok(())
}

/// Starts the server, opens Lab 04's view and creates its topic with `partitions`.
async fn lab(partitions: i32) -> anyhow::Result<(tempfile::TempDir, TestServer, LabClient)> {
    let data = tempfile::tempdir()?;
    let server = TestServer::start(data.path()).await?;
    let mut page = LabClient::open(&server, LAB).await?;
    page.create_topic(TOPIC, partitions).await?;
    Ok((data, server, page))
}

fn outputs(consumers: &[&ExternalConsumer]) -> String {
    consumers
        .iter()
        .map(|c| format!("--- {:?} printed:\n{}", c.client, c.output()))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn four_clients_share_a_topic_a_kill_is_an_expiry_and_ctrl_c_is_a_leave() -> anyhow::Result<()>
{
    let (data, server, mut page) = lab(4).await?;
    let bootstrap = server.broker.to_string();
    let clients = [
        Client::Python,
        Client::Aiokafka,
        Client::Kafkajs,
        Client::Kcat,
    ];
    let mut running = Vec::new();
    for client in clients {
        running.push(ExternalConsumer::start(client, &bootstrap, data.path())?);
    }
    let ids: Vec<&str> = clients.iter().map(|c| c.client_id()).collect();
    page.wait_until(
        "four external members sharing the four partitions",
        JOIN_DEADLINE,
        |p| split_between(p.view(), &ids, 4),
    )
    .await
    .with_context(|| outputs(&running.iter().collect::<Vec<_>>()))?;
    let group = page.view().group(GROUP).context("the group is shown")?;
    assert_eq!(group.source, MembershipSource::Coordinator);
    assert!(group.generation.is_some() && group.leader.is_some());
    assert!(
        group
            .members
            .iter()
            .all(|m| m.origin == MemberOrigin::External)
    );
    assert!(
        group
            .members
            .iter()
            .all(|m| m.name.starts_with(&m.client_id)),
        "each external member is named after its client id: {:?}",
        group.members
    );
    described_as_shown(&bootstrap, page.view()).await?;

    // kill -9 of kcat: nothing is sent, so only the session timeout removes it.
    let killed = Instant::now();
    running[3].kill()?;
    page.wait_until(
        "kcat's member to be removed after its session timeout",
        EXPIRY_DEADLINE,
        |p| departed(p.view(), "lab04-kcat", Departure::Crash),
    )
    .await?;
    let noticed = killed.elapsed();
    assert!(
        noticed >= Duration::from_secs(5),
        "a killed member stays until its session times out (10 s), but it was removed after {noticed:?}"
    );
    page.wait_until(
        "the three others to own the four partitions",
        EXPIRY_DEADLINE,
        |p| split_between(p.view(), &ids[..3], 4),
    )
    .await?;
    println!("kill -9 of kcat: removed from the group after {noticed:?}");

    // Ctrl-C of aiokafka: it sends LeaveGroup, and the group knows at once.
    let interrupted = Instant::now();
    running[1].interrupt()?;
    page.wait_until("aiokafka's LeaveGroup", Duration::from_secs(10), |p| {
        departed(p.view(), "lab04-aiokafka", Departure::Graceful)
    })
    .await
    .with_context(|| running[1].output())?;
    let left = interrupted.elapsed();
    let to_page = since_stamped(page.view(), "lab04-aiokafka");
    page.wait_until(
        "the two others to own the four partitions",
        EXPIRY_DEADLINE,
        |p| {
            split_between(
                p.view(),
                &ids[..1]
                    .iter()
                    .chain(&ids[2..3])
                    .copied()
                    .collect::<Vec<_>>(),
                4,
            )
        },
    )
    .await?;
    println!(
        "Ctrl-C of aiokafka: a graceful leave shown after {left:?} (aiokafka's own close included); server to page: {to_page:?} ms"
    );
    assert!(
        !departed(page.view(), "lab04-aiokafka", Departure::Crash),
        "a LeaveGroup is never reported as a crash"
    );
    running[1].wait_exit(Duration::from_secs(10)).await?;
    Ok(())
}

#[tokio::test]
async fn a_page_instance_and_the_learners_own_consumers_split_one_topic() -> anyhow::Result<()> {
    let (data, server, mut page) = lab(3).await?;
    let bootstrap = server.broker.to_string();
    let starter = ExternalConsumer::start(Client::PythonStarter, &bootstrap, data.path())?;
    let rust = ExternalConsumer::start(Client::Rust, &bootstrap, data.path())?;
    page.send(&ClientCommand::StartInstance {
        group: GROUP.into(),
        topic: TOPIC.into(),
        settings: ConsumerSettings::default(),
    })
    .await?;
    page.wait_until(
        "a page instance and two external consumers sharing three partitions",
        JOIN_DEADLINE,
        |p| {
            let Some(group) = p.view().group(GROUP) else {
                return false;
            };
            let instances = group.members.iter().filter(|m| !m.is_external()).count();
            let ids: Vec<&str> = group.members.iter().map(|m| m.client_id.as_str()).collect();
            instances == 1
                && ids.contains(&"lab04-starter")
                && ids.contains(&"lab04-rust")
                && split_between(p.view(), &ids, 3)
        },
    )
    .await
    .with_context(|| outputs(&[&starter, &rust]))?;
    let view = page.view();
    let member = view
        .group(GROUP)
        .and_then(|g| g.members.iter().find(|m| !m.is_external()))
        .cloned()
        .context("the instance is a member")?;
    let instance = view.instances.first().context("the instance has a card")?;
    assert_eq!(member.instance(), Some(instance.id));
    assert_eq!(
        member.name, instance.name,
        "the member shows the instance's name"
    );
    assert_eq!(member.colour, instance.colour, "and its colour");
    let instance_client = member.client_id.clone();
    described_as_shown(&bootstrap, page.view()).await?;

    rust.interrupt()?;
    page.wait_until(
        "the Rust consumer's LeaveGroup",
        Duration::from_secs(10),
        |p| departed(p.view(), "lab04-rust", Departure::Graceful),
    )
    .await
    .with_context(|| rust.output())?;
    let ids = ["lab04-starter", instance_client.as_str()];
    page.wait_until(
        "the starter and the instance to own all three",
        EXPIRY_DEADLINE,
        |p| split_between(p.view(), &ids, 3),
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn every_snippet_of_lab_04_joins_its_group() -> anyhow::Result<()> {
    let (data, server, mut page) = lab(6).await?;
    let bootstrap = server.broker.to_string();
    let mut running = Vec::new();
    for client in Client::ALL {
        running.push(ExternalConsumer::start(client, &bootstrap, data.path())?);
    }
    let ids: Vec<&str> = Client::ALL.iter().map(|c| c.client_id()).collect();
    page.wait_until(
        "all six snippets sharing six partitions",
        JOIN_DEADLINE,
        |p| split_between(p.view(), &ids, 6),
    )
    .await
    .with_context(|| outputs(&running.iter().collect::<Vec<_>>()))?;
    Ok(())
}

#[tokio::test]
async fn a_consumer_refused_for_its_assignors_is_explained_not_invisible() -> anyhow::Result<()> {
    let (data, server, mut page) = lab(3).await?;
    page.send(&ClientCommand::StartInstance {
        group: GROUP.into(),
        topic: TOPIC.into(),
        settings: ConsumerSettings {
            assignor: grouplab_protocol::Assignor::CooperativeSticky,
            ..ConsumerSettings::default()
        },
    })
    .await?;
    page.wait_until("the instance to own the topic", JOIN_DEADLINE, |p| {
        owners(p.view()).values().flatten().count() == 3
    })
    .await?;
    // The Python snippet offers librdkafka's defaults, range and roundrobin: neither is the group's.
    let python = ExternalConsumer::start(Client::Python, &server.broker.to_string(), data.path())?;
    page.wait_until("a notice explaining the refusal", JOIN_DEADLINE, |p| {
        p.notices.iter().any(|n| {
            n.title.contains("`lab04-python` could not join")
                && n.detail.contains("range, roundrobin")
                && n.detail.contains("cooperative-sticky")
        })
    })
    .await
    .with_context(|| python.output())?;
    assert_eq!(
        owners(page.view()).len(),
        1,
        "the refused consumer never became a member"
    );
    Ok(())
}

/// No Apache Kafka can be installed here, so the named-cluster path (DescribeGroups, polled) is
/// tested against another grouplab's embedded broker, as far as nisshi's DescribeGroups goes.
#[tokio::test]
async fn a_named_cluster_shows_its_groups_members_from_describe_groups() -> anyhow::Result<()> {
    let cluster_data = tempfile::tempdir()?;
    let cluster = TestServer::start(cluster_data.path()).await?;
    let bootstrap = cluster.broker.to_string();
    let data = tempfile::tempdir()?;
    let server = TestServer::start_with(data.path(), &["--bootstrap-servers", &bootstrap]).await?;
    let mut page = LabClient::open(&server, LAB).await?;
    assert!(!page.view().broker.embedded);
    page.create_topic(TOPIC, 3).await?;

    let python = ExternalConsumer::start(Client::Python, &bootstrap, data.path())?;
    page.wait_until("the member, read with DescribeGroups", JOIN_DEADLINE, |p| {
        p.view().group(GROUP).is_some_and(|g| {
            g.source == MembershipSource::Described
                && g.members.len() == 1
                && g.members[0].client_id == "lab04-python"
                && g.members[0].is_external()
        })
    })
    .await
    .with_context(|| python.output())?;
    let group = page
        .view()
        .group(GROUP)
        .context("the group is shown")?
        .clone();
    println!("a named cluster (nisshi) describes the group as: {group:?}");
    assert_eq!(
        group.generation, None,
        "DescribeGroups does not say the generation"
    );

    python.interrupt()?;
    page.wait_until("the member to be gone", EXPIRY_DEADLINE, |p| {
        departed(p.view(), "lab04-python", Departure::Unknown)
    })
    .await?;
    Ok(())
}

/// Stops a grouplab running two instances next to the learner's own consumer, and returns how
/// long until the learner's consumer owned every partition. The broker must outlive the stopping
/// server, so that server uses another grouplab's embedded broker, whose page watches the group.
async fn handover_when_the_server_stops(
    signal: nix::sys::signal::Signal,
) -> anyhow::Result<Duration> {
    let (data, cluster, mut watcher) = lab(3).await?;
    let bootstrap = cluster.broker.to_string();
    let mut server =
        TestServer::start_with(data.path(), &["--bootstrap-servers", &bootstrap]).await?;
    let mut page = LabClient::open(&server, LAB).await?;
    for _ in 0..2 {
        page.send(&ClientCommand::StartInstance {
            group: GROUP.into(),
            topic: TOPIC.into(),
            settings: ConsumerSettings::default(),
        })
        .await?;
    }
    let python = ExternalConsumer::start(Client::Python, &bootstrap, data.path())?;
    watcher
        .wait_until(
            "two instances and the learner's consumer sharing three partitions",
            JOIN_DEADLINE,
            |p| {
                let owners = owners(p.view());
                owners.len() == 3 && owners.values().all(|partitions| partitions.len() == 1)
            },
        )
        .await
        .with_context(|| python.output())?;

    let stopping = Instant::now();
    server.stop_with(signal).await?;
    watcher
        .wait_until(
            "the learner's consumer to own every partition",
            EXPIRY_DEADLINE,
            |p| {
                owners(p.view())
                    .get("lab04-python")
                    .is_some_and(|owned| owned.len() == 3)
            },
        )
        .await?;
    let handover = stopping.elapsed();
    let view = watcher.view();
    let left: Vec<&str> = view
        .timeline
        .iter()
        .filter(|e| e.name.starts_with("grouplab-"))
        .filter_map(|e| match e.kind {
            TimelineKind::Departed { departure, .. } => Some(if departure == Departure::Graceful {
                "left"
            } else {
                "expired"
            }),
            _ => None,
        })
        .collect();
    assert_eq!(
        left,
        ["left", "left"],
        "both instances sent LeaveGroup before exiting"
    );
    Ok(handover)
}

#[tokio::test]
async fn on_sigterm_the_instances_leave_their_group_before_the_server_exits() -> anyhow::Result<()>
{
    let handover = handover_when_the_server_stops(nix::sys::signal::Signal::SIGTERM).await?;
    println!("SIGTERM: the learner's consumer owned every partition after {handover:?}");
    Ok(())
}

#[tokio::test]
async fn on_ctrl_c_the_instances_leave_their_group_before_the_server_exits() -> anyhow::Result<()> {
    let handover = handover_when_the_server_stops(nix::sys::signal::Signal::SIGINT).await?;
    println!("Ctrl-C: the learner's consumer owned every partition after {handover:?}");
    Ok(())
}

/// On a shared cluster, Reset deletes only what the lab was set up with or created, says so
/// before it does, and leaves a topic and group it merely named (someone else's) alone.
#[tokio::test]
async fn reset_on_a_named_cluster_leaves_what_the_lab_did_not_create() -> anyhow::Result<()> {
    let cluster_data = tempfile::tempdir()?;
    let cluster = TestServer::start(cluster_data.path()).await?;
    let mut owner = LabClient::open(&cluster, LAB).await?;
    // Someone else's topic and group, with committed offsets.
    owner.create_topic("payments", 1).await?;
    owner
        .send(&ClientCommand::Produce {
            topic: "payments".into(),
            count: 3,
            keys: grouplab_protocol::KeyMode::None,
            partition: None,
            text: None,
        })
        .await?;
    owner
        .send(&ClientCommand::StartInstance {
            group: "billing".into(),
            topic: "payments".into(),
            settings: ConsumerSettings::default(),
        })
        .await?;
    let committed = |p: &LabClient| {
        p.view()
            .topic("payments")
            .and_then(|t| t.groups.iter().find(|g| g.group == "billing"))
            .and_then(|g| g.committed.first().copied().flatten())
    };
    owner
        .wait_until("billing's commits on payments", JOIN_DEADLINE, |p| {
            committed(p) == Some(3)
        })
        .await?;

    let data = tempfile::tempdir()?;
    let bootstrap = cluster.broker.to_string();
    let server = TestServer::start_with(data.path(), &["--bootstrap-servers", &bootstrap]).await?;
    let mut page = LabClient::open(&server, LAB).await?;
    page.create_topic(TOPIC, 3).await?;
    // Naming someone else's topic and group in a command does not make them the lab's.
    page.send(&ClientCommand::StartInstance {
        group: "billing".into(),
        topic: "payments".into(),
        settings: ConsumerSettings::default(),
    })
    .await?;
    owner
        .wait_until(
            "the lab's topic on the shared cluster",
            JOIN_DEADLINE,
            |p| p.view().topic(TOPIC).is_some(),
        )
        .await?;

    page.send(&ClientCommand::ResetLab).await?;
    page.wait_until(
        "Reset to say what it will delete",
        Duration::from_secs(10),
        |p| {
            p.notices
                .iter()
                .any(|n| n.title.contains("Press Reset again"))
        },
    )
    .await?;
    let warning = page
        .notices
        .iter()
        .find(|n| n.title.contains("Press Reset again"))
        .context("the warning")?
        .detail
        .clone();
    assert!(
        warning.contains("`user-clicks`") && warning.contains("`click-processors`"),
        "{warning}"
    );
    assert!(
        !warning.contains("payments") && !warning.contains("billing"),
        "{warning}"
    );
    assert!(
        owner.view().topic(TOPIC).is_some(),
        "nothing is deleted before the second press"
    );

    page.send(&ClientCommand::ResetLab).await?;
    page.wait_until("the reset", JOIN_DEADLINE, |p| {
        p.notices.iter().any(|n| n.title == "The lab was reset")
    })
    .await?;
    owner
        .wait_until("the lab's own topic to be deleted", JOIN_DEADLINE, |p| {
            p.view().topic(TOPIC).is_none()
        })
        .await?;
    assert!(
        owner.view().topic("payments").is_some(),
        "someone else's topic survives"
    );
    owner
        .wait_until("a poll after the reset", Duration::from_secs(10), |p| {
            committed(p).is_some()
        })
        .await?;
    assert_eq!(
        committed(&owner),
        Some(3),
        "someone else's group keeps its offsets"
    );
    Ok(())
}
