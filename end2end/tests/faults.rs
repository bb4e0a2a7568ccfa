//! Faults that must stay local: an instance that cannot start or that crashes on its own again
//! and again, the caps on instances, and a page that stops reading its socket. Each test says
//! what survived and what was lost.

use std::time::{Duration, Instant};

use grouplab_end2end::{LabClient, TestServer, resident_kib, workspace_binary, workspace_root};
use grouplab_protocol::{
    ClientCommand, ConsumerSettings, InstanceState, KeyMode, LabSnapshot, NoticeLevel, TimelineKind,
};

const LAB: &str = "04-consumer-groups";
const GROUP: &str = "click-processors";
const TOPIC: &str = "user-clicks";
const DEADLINE: Duration = Duration::from_secs(30);

fn start(group: &str) -> ClientCommand {
    ClientCommand::StartInstance {
        group: group.into(),
        topic: TOPIC.into(),
        settings: ConsumerSettings::default(),
    }
}

fn produce(count: u32) -> ClientCommand {
    ClientCommand::Produce {
        topic: TOPIC.into(),
        count,
        keys: KeyMode::Rotating { distinct: 12 },
        partition: None,
        text: None,
    }
}

fn failures(view: &LabSnapshot) -> usize {
    view.timeline
        .iter()
        .filter(|e| matches!(e.kind, TimelineKind::Failed { .. }))
        .count()
}

fn healthy_owns_everything(view: &LabSnapshot) -> bool {
    view.instances.iter().any(|i| {
        i.group == GROUP
            && i.state == InstanceState::Running
            && i.partitions.len() == 3
            && view
                .member_of(i.id)
                .is_some_and(|m| m.partitions.len() == 3)
    })
}

fn healthy_received(view: &LabSnapshot) -> u64 {
    view.instances
        .iter()
        .filter(|i| i.group == GROUP)
        .map(|i| i.received)
        .sum()
}

/// An instance whose program dies at start-up, started twelve times over: every failure is shown
/// with what the program said, the healthy instance beside it keeps its partitions and its
/// messages, and the per-lab cap still counts only running instances, with its refusal explained.
#[tokio::test]
async fn an_instance_that_crashes_in_a_loop_is_shown_and_harms_no_other() -> anyhow::Result<()> {
    const LOOPS: usize = 12;
    let flaky = workspace_root().join("end2end/fixtures/flaky-consumer.sh");
    let real = workspace_binary("grouplab-consumer")?;
    let data = tempfile::tempdir()?;
    let server = TestServer::start_with_consumer(
        data.path(),
        &flaky,
        &[("GROUPLAB_REAL_CONSUMER", real.as_os_str())],
        &["--max-instances-per-lab", "3"],
    )
    .await?;
    let mut page = LabClient::open(&server, LAB).await?;
    page.create_topic(TOPIC, 3).await?;
    page.send(&start(GROUP)).await?;
    page.wait_until(
        "the healthy instance owning every partition",
        DEADLINE,
        |p| healthy_owns_everything(p.view()),
    )
    .await?;

    for round in 1..=LOOPS {
        page.send(&start("crash-loop")).await?;
        page.wait_until("the crashed instance's failure", DEADLINE, |p| {
            failures(p.view()) == round
        })
        .await?;
    }
    let reasons: Vec<String> = page
        .view()
        .timeline
        .iter()
        .filter_map(|e| match &e.kind {
            TimelineKind::Failed { reason } => Some(reason.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(reasons.len(), LOOPS);
    for reason in &reasons {
        assert!(
            reason.contains("exited with code 3") && reason.contains("simulated bug"),
            "the failure says how the program ended and what it said: {reason}"
        );
    }
    // Old failed cards are dropped (four are kept), not piled up.
    page.wait_until("at most four failed cards", DEADLINE, |p| {
        p.view().instances.len() <= 1 + 4
    })
    .await?;

    // The healthy instance never noticed.
    assert!(healthy_owns_everything(page.view()));
    page.send(&produce(30)).await?;
    page.wait_until("the healthy instance's 30 messages", DEADLINE, |p| {
        healthy_received(p.view()) == 30
    })
    .await?;

    // The cap counts running instances only: two more start, the fourth is refused and says why.
    page.send(&start(GROUP)).await?;
    page.send(&start(GROUP)).await?;
    page.wait_until("three running instances", DEADLINE, |p| {
        p.view()
            .instances
            .iter()
            .filter(|i| i.group == GROUP && i.is_alive())
            .count()
            == 3
    })
    .await?;
    let notices = page.notices.len();
    page.send(&start(GROUP)).await?;
    page.wait_until("the refusal", DEADLINE, |p| p.notices.len() > notices)
        .await?;
    let refusal = page.notices.last().expect("a notice arrived").clone();
    assert_eq!(refusal.level, NoticeLevel::Error);
    assert!(
        refusal.detail.contains("the most allowed is 3") && refusal.detail.contains("Stop one"),
        "{refusal:?}"
    );
    println!(
        "{LOOPS} crash loops shown ({:?}…); healthy instance kept 3 partitions and read 30 of 30; refusal: {}",
        reasons[0], refusal.detail
    );
    Ok(())
}

#[tokio::test]
async fn a_consumer_program_that_cannot_start_is_explained() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let missing = data.path().join("no-such-consumer");
    let server = TestServer::start_with_consumer(data.path(), &missing, &[], &[]).await?;
    let mut page = LabClient::open(&server, LAB).await?;
    page.create_topic(TOPIC, 3).await?;
    for attempt in 1..=3 {
        page.send(&start(GROUP)).await?;
        page.wait_until("the explanation", DEADLINE, |p| {
            p.notices
                .iter()
                .filter(|n| n.detail.contains("could not be started"))
                .count()
                == attempt
        })
        .await?;
    }
    let notice = page.notices.last().expect("a notice arrived");
    assert!(
        notice.detail.contains("--consumer-program"),
        "it says how to fix it: {notice:?}"
    );
    assert!(
        page.view().instances.iter().all(|i| !i.is_alive()),
        "nothing runs"
    );
    let (status, _) = server.get("/healthz").await?;
    assert_eq!(status, 200, "the server keeps serving");
    Ok(())
}

/// A page that stops reading: the server's writes to it stall, what waits for it is bounded (a
/// page's own replies queue up to a fixed count, then are dropped), other pages keep getting
/// their events at once, and the stalled socket is closed after the server's send timeout.
#[tokio::test]
async fn a_page_that_stops_reading_holds_back_nothing_and_is_dropped() -> anyhow::Result<()> {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    const ASKED: usize = 4_000;

    let data = tempfile::tempdir()?;
    let server = TestServer::start(data.path()).await?;
    let mut page = LabClient::open(&server, LAB).await?;
    page.create_topic(TOPIC, 3).await?;
    page.send(&start(GROUP)).await?;
    page.wait_until("an instance owning every partition", DEADLINE, |p| {
        healthy_owns_everything(p.view())
    })
    .await?;
    // Messages in the view make its snapshot some 20 KB.
    page.send(&produce(100)).await?;
    page.wait_until("100 messages received", DEADLINE, |p| {
        healthy_received(p.view()) == 100
    })
    .await?;
    let before = resident_kib(server.pid())?;

    // A socket that is never read (its receive buffer fixed at 64 KiB, so the kernel does not
    // grow it), asking for a full snapshot of the lab 4,000 times: some 40 MB the server cannot
    // deliver.
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(64 * 1024)?;
    let stream = socket.connect(server.addr).await?;
    let (mut stalled, _) = tokio_tungstenite::client_async(server.ws_url(LAB), stream).await?;
    let resync = serde_json::to_string(&ClientCommand::Resync)?;
    // Paced, so the server has time to write most of them: a page's replies beyond 64 waiting
    // are dropped, and the point is to fill the socket.
    for n in 0..ASKED {
        stalled.send(Message::text(resync.clone())).await?;
        if n % 20 == 19 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let stalled_at = Instant::now();

    // Meanwhile, the other page's events arrive as before.
    let mut slowest = Duration::ZERO;
    for round in 1..=5u64 {
        let asked = Instant::now();
        page.send(&produce(10)).await?;
        page.wait_until("the other page's messages", DEADLINE, |p| {
            healthy_received(p.view()) == 100 + round * 10
        })
        .await?;
        slowest = slowest.max(asked.elapsed());
    }
    let during = resident_kib(server.pid())?;

    // The server gives up on the stalled page after its send timeout and closes its end, which
    // the kernel shows at once, although the close reaches the page only after what is queued.
    let stalled_port = stalled.get_ref().local_addr()?;
    grouplab_end2end::poll_until(
        "the server to close the stalled page's socket",
        Duration::from_secs(60),
        || async move {
            (grouplab_end2end::tcp_state(server.addr, stalled_port) != Some("ESTABLISHED"))
                .then_some(())
        },
    )
    .await?;
    let closed_after = stalled_at.elapsed();
    let mut snapshots = 0;
    let drained = tokio::time::timeout(DEADLINE, async {
        while let Some(Ok(message)) = stalled.next().await {
            if message
                .to_text()
                .is_ok_and(|t| t.starts_with("{\"snapshot\":"))
            {
                snapshots += 1;
            }
        }
    })
    .await;
    assert!(
        drained.is_ok(),
        "the stalled socket did not end after its close"
    );
    println!(
        "a page that stopped reading asked for {ASKED} snapshots and got {snapshots} before it was dropped, {:.1} s after it stalled; the other page's produce-to-received at most {} ms; server memory {before} KiB before, {during} KiB while stalled",
        closed_after.as_secs_f64(),
        slowest.as_millis(),
    );
    assert!(
        snapshots < ASKED,
        "replies a page does not read are dropped, not queued without end"
    );
    assert!(
        slowest < Duration::from_secs(5),
        "the other page waited {slowest:?}"
    );
    assert!(
        during < before + 50 * 1024,
        "the server grew from {before} KiB to {during} KiB"
    );
    // And it still serves a new page.
    LabClient::open(&server, LAB).await?;
    Ok(())
}
