//! A class on one server: learners join with the class code, each gets labs and a broker of
//! their own, their own consumers join their own groups only, and every attempt to be someone
//! else is refused. Run against the real `grouplab` binary with `--class`.

use std::time::Duration;

use anyhow::Context;
use grouplab_end2end::external::{Client, ExternalConsumer};
use grouplab_end2end::{
    Dashboard, LabClient, TestServer, children_of, free_port_range, http_post, poll_until,
};
use grouplab_protocol::{ClientCommand, ConsumerSettings, LabSnapshot};

const LAB: &str = "04-consumer-groups";
const TOPIC: &str = "user-clicks";
const GROUP: &str = "click-processors";
const TOKEN: &str = "instructor-token-for-tests";
/// Joining a group, with the embedded broker's 300 ms initial delay and Python's start.
const JOIN_DEADLINE: Duration = Duration::from_secs(45);

/// The server's arguments for a class whose learners' brokers use `ports` from `first`.
fn class_args(first: u16, ports: u16) -> Vec<String> {
    vec![
        "--class".into(),
        "kafka-101".into(),
        "--access-token".into(),
        TOKEN.into(),
        "--learner-ports".into(),
        format!("{first}-{}", first + ports - 1),
        "--max-learners".into(),
        ports.to_string(),
    ]
}

async fn start(data: &std::path::Path, args: &[String]) -> anyhow::Result<TestServer> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    TestServer::start_with(data, &args).await
}

/// The join code, read from the instructor's class page.
async fn join_code(server: &TestServer) -> anyhow::Result<String> {
    server.class_join_code(TOKEN).await
}

/// Posts the join form from the page's own origin; returns the status and the learner's cookie.
async fn join(
    server: &TestServer,
    code: &str,
    name: &str,
) -> anyhow::Result<(u16, Option<String>)> {
    server.join_class(code, name).await
}

/// A class of two, Ada and Bob, on a server started with `extra` arguments as well; their cookies.
async fn ada_and_bob(
    data: &std::path::Path,
    extra: &[String],
) -> anyhow::Result<(TestServer, String, String)> {
    let mut args = class_args(free_port_range(2), 2);
    args.extend_from_slice(extra);
    ada_and_bob_with(data, &args).await
}

/// A class of two, Ada and Bob, on a server started with exactly `args`; their cookies.
async fn ada_and_bob_with(
    data: &std::path::Path,
    args: &[String],
) -> anyhow::Result<(TestServer, String, String)> {
    let server = start(data, args).await?;
    let code = join_code(&server).await?;
    let ada = join(&server, &code, "Ada")
        .await?
        .1
        .context("Ada's cookie")?;
    let bob = join(&server, &code, "Bob")
        .await?
        .1
        .context("Bob's cookie")?;
    Ok((server, ada, bob))
}

/// The status of a lab websocket handshake with these cookies.
async fn socket_status(server: &TestServer, cookie: Option<&str>) -> anyhow::Result<u16> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = server.ws_url(LAB).into_client_request()?;
    if let Some(cookie) = cookie {
        request.headers_mut().insert("Cookie", cookie.parse()?);
    }
    Ok(match tokio_tungstenite::connect_async(request).await {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(err) => return Err(err.into()),
    })
}

/// The client ids of the group's members in a learner's view.
fn members(view: &LabSnapshot) -> Vec<String> {
    let mut ids: Vec<String> = view
        .group(GROUP)
        .map(|g| g.members.iter().map(|m| m.client_id.clone()).collect())
        .unwrap_or_default();
    ids.sort();
    ids
}

/// The group's committed offsets on the lab's topic, summed over its partitions.
fn committed_total(view: &LabSnapshot) -> i64 {
    view.topic(TOPIC).map_or(0, |t| {
        (0..3)
            .filter_map(|partition| t.committed(GROUP, partition))
            .sum()
    })
}

/// What only this learner's page may show: their one page instance and their own consumer.
fn only_own(view: &LabSnapshot, own_instance: &str) -> bool {
    view.instances.iter().all(|i| i.client_id == own_instance)
        && members(view)
            .iter()
            .all(|id| id == own_instance || id == "lab04-python")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_learners_run_lab_04_apart_each_with_their_own_broker_and_consumers()
-> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let first = free_port_range(3);
    let mut args = class_args(first, 3);
    args.extend(["--max-topics-per-learner".to_owned(), "2".to_owned()]);
    let mut server = start(data.path(), &args).await?;
    let code = join_code(&server).await?;

    // Joining, and what is refused.
    let (status, ada) = join(&server, &code, "Ada").await?;
    assert_eq!(status, 303, "Ada's join");
    let ada = ada.context("Ada's join sets a cookie")?;
    let (status, bob) = join(&server, &code, "Bob").await?;
    assert_eq!(status, 303, "Bob's join");
    let bob = bob.context("Bob's join sets a cookie")?;
    assert_eq!(
        join(&server, &code, "ada").await?,
        (409, None),
        "a taken name"
    );
    assert_eq!(join(&server, "ZZZZZZ", "Cy").await?.0, 404, "a wrong code");
    let (status, _, _) = http_post(
        server.addr,
        "/join",
        "Origin: http://evil.example\r\n",
        &format!("code={code}&name=Eve"),
    )
    .await?;
    assert_eq!(status, 403, "a join posted by another site's page");
    assert_eq!(
        socket_status(&server, None).await?,
        401,
        "a websocket without a cookie"
    );
    let guessed = format!("grouplab_learner={}", "0".repeat(64));
    assert_eq!(
        socket_status(&server, Some(&guessed)).await?,
        401,
        "a guessed cookie"
    );
    let (status, _, _) = server
        .request("/", &format!("Cookie: {guessed}\r\n"))
        .await?;
    assert_eq!(status, 401, "a guessed cookie on the course page");
    let (status, _, _) = server
        .request("/class", &format!("Cookie: {ada}\r\n"))
        .await?;
    assert_eq!(status, 403, "a learner on the instructor's page");
    let (status, _, body) = server.request("/", &format!("Cookie: {ada}\r\n")).await?;
    assert_eq!(status, 200);
    assert!(
        body.contains("<strong>Ada</strong>"),
        "Ada's course page names her"
    );

    // Each learner's lab talks to their own broker, on their port.
    let mut ada_page = LabClient::open_as(&server, LAB, &ada).await?;
    let mut bob_page = LabClient::open_as(&server, LAB, &bob).await?;
    let ada_broker = ada_page.view().broker.bootstrap_servers.clone();
    let bob_broker = bob_page.view().broker.bootstrap_servers.clone();
    assert_eq!(ada_broker, format!("127.0.0.1:{first}"));
    assert_eq!(bob_broker, format!("127.0.0.1:{}", first + 1));

    // Both create the lab's topic, as written, and start one page instance and their own
    // consumer, with the address their page shows.
    ada_page.create_topic(TOPIC, 3).await?;
    bob_page.create_topic(TOPIC, 3).await?;
    let ada_instance = ada_page
        .start_running(GROUP, TOPIC, ConsumerSettings::default(), JOIN_DEADLINE)
        .await?;
    let bob_instance = bob_page
        .start_running(GROUP, TOPIC, ConsumerSettings::default(), JOIN_DEADLINE)
        .await?;
    let ada_id = ada_page
        .view()
        .instance(ada_instance)
        .context("Ada's instance")?
        .client_id
        .clone();
    let bob_id = bob_page
        .view()
        .instance(bob_instance)
        .context("Bob's instance")?
        .client_id
        .clone();
    let ada_python = ExternalConsumer::start(Client::Python, &ada_broker, data.path())?;
    let bob_python = ExternalConsumer::start(Client::Python, &bob_broker, data.path())?;
    ada_page
        .wait_for_step(1, JOIN_DEADLINE)
        .await
        .with_context(|| ada_python.output())?;
    bob_page
        .wait_for_step(1, JOIN_DEADLINE)
        .await
        .with_context(|| bob_python.output())?;
    assert_eq!(
        members(ada_page.view()),
        {
            let mut m = vec![ada_id.clone(), "lab04-python".to_owned()];
            m.sort();
            m
        },
        "Ada's group holds her instance and her own consumer"
    );
    assert!(
        only_own(ada_page.view(), &ada_id),
        "{:?}",
        ada_page.view().instances
    );
    assert!(
        only_own(bob_page.view(), &bob_id),
        "{:?}",
        bob_page.view().instances
    );

    // Messages: each sees their own.
    ada_page
        .produce(TOPIC, 30, grouplab_protocol::KeyMode::None, None, 30)
        .await?;
    bob_page
        .produce(TOPIC, 7, grouplab_protocol::KeyMode::None, None, 7)
        .await?;
    bob_page
        .wait_until("Bob's group to commit his 7 messages", JOIN_DEADLINE, |p| {
            committed_total(p.view()) == 7
        })
        .await?;
    ada_page
        .wait_until("Ada's 30 messages", JOIN_DEADLINE, |p| {
            p.view()
                .topic(TOPIC)
                .is_some_and(|t| t.message_count() == 30)
        })
        .await?;
    assert_eq!(
        bob_page.view().topic(TOPIC).map(|t| t.message_count()),
        Some(7),
        "Bob's topic holds only his messages"
    );

    // Ada's Reset leaves Bob's topic, group and committed offsets as they were.
    drop(ada_python);
    ada_page.send(&ClientCommand::ResetLab).await?;
    ada_page
        .wait_until("Ada's topic to be deleted", JOIN_DEADLINE, |p| {
            p.view().topic(TOPIC).is_none()
        })
        .await?;
    // The Reset gave Ada's topic back to her allowance (two at once in this class): two fit.
    ada_page.create_topic("after-reset-1", 1).await?;
    ada_page.create_topic("after-reset-2", 1).await?;
    // Bob's topic is read from his broker after the reset: one more message makes 8, all committed.
    bob_page
        .produce(TOPIC, 1, grouplab_protocol::KeyMode::None, None, 8)
        .await?;
    bob_page
        .wait_until("Bob's group to commit all 8 messages", JOIN_DEADLINE, |p| {
            p.view()
                .topic(TOPIC)
                .is_some_and(|t| t.message_count() == 8)
                && committed_total(p.view()) == 8
        })
        .await?;
    assert!(members(bob_page.view()).contains(&bob_id));
    assert!(only_own(bob_page.view(), &bob_id));
    drop(bob_python);
    drop(ada_page);
    drop(bob_page);

    // The instructor shuts Bob out: his open page's socket closes, his instance stops, and his
    // cookie is refused.
    let mut bob_open = LabClient::open_as(&server, LAB, &bob).await?;
    assert_eq!(
        instance_processes(server.pid()),
        1,
        "Bob's instance runs (Ada's Reset stopped hers)"
    );
    shut_out(&server, &learner_id(&server, "Bob").await?).await?;
    let closed = tokio::time::timeout(JOIN_DEADLINE, async {
        while bob_open.next_event().await.is_ok() {}
    })
    .await;
    assert!(
        closed.is_ok(),
        "Bob's open page is closed when he is shut out"
    );
    let server_pid = server.pid();
    poll_until("Bob's instance to stop", JOIN_DEADLINE, || async move {
        (instance_processes(server_pid) == 0).then_some(())
    })
    .await?;
    assert_eq!(
        socket_status(&server, Some(&bob)).await?,
        401,
        "Bob's revoked cookie"
    );
    let (status, _, _) = server.request("/", &format!("Cookie: {bob}\r\n")).await?;
    assert_eq!(status, 401, "Bob's revoked cookie on the course page");

    // Each refusal is in the server's log, for the instructor to read.
    for (what, text) in [
        ("a taken name", "a join was refused"),
        ("a wrong code", "a join with a wrong class code was refused"),
        ("another site's form", "evil.example"),
        (
            "a websocket without a cookie",
            "a lab websocket without a learner's cookie was refused",
        ),
        (
            "a guessed or revoked cookie",
            "a learner cookie that was never issued, or was revoked, was refused",
        ),
        (
            "a learner on the class page",
            "a learner was refused the instructor's page",
        ),
    ] {
        assert!(server.logged(text) > 0, "{what} is not logged as `{text}`");
    }

    // A restart keeps the class: Ada is still Ada, with her progress and her port.
    server.terminate().await?;
    let server = start(data.path(), &args).await?;
    assert_eq!(
        join_code(&server).await?,
        code,
        "the join code lasts a restart"
    );
    let (status, _, body) = server.request("/", &format!("Cookie: {ada}\r\n")).await?;
    assert_eq!(status, 200);
    assert!(body.contains("<strong>Ada</strong>"), "Ada is still in");
    let ada_page = LabClient::open_as(&server, LAB, &ada).await?;
    assert_eq!(ada_page.view().broker.bootstrap_servers, ada_broker);
    assert!(
        ada_page.view().progress.steps[1].passed_at.is_some(),
        "Ada's passed steps last the restart"
    );
    assert_eq!(
        socket_status(&server, Some(&bob)).await?,
        401,
        "Bob stays out"
    );

    // The instructor's results say what Ada's page says, step by step; Bob, shut out, is not
    // in them, and a learner cannot read them.
    let (status, _, csv) = server
        .request(
            "/class/results.csv",
            &format!("Cookie: grouplab_token={TOKEN}\r\n"),
        )
        .await?;
    assert_eq!(status, 200, "{csv}");
    let rows: Vec<std::collections::HashMap<String, String>> =
        csv::Reader::from_reader(csv.as_bytes())
            .deserialize()
            .collect::<Result<_, _>>()?;
    let shown = &ada_page.view().progress.steps;
    let ada_rows: Vec<_> = rows
        .iter()
        .filter(|r| r["learner"] == "Ada" && r["lab"] == LAB)
        .collect();
    assert_eq!(
        ada_rows.len(),
        shown.len(),
        "a row per step of Lab 04: {csv}"
    );
    for (row, step) in ada_rows.iter().zip(shown) {
        let exported = match row["passed_at"].as_str() {
            "" => None,
            at => Some(
                chrono::DateTime::parse_from_rfc3339(at)
                    .map_err(|err| anyhow::anyhow!("`{at}` is not RFC 3339: {err}"))?
                    .timestamp_millis() as u64,
            ),
        };
        assert_eq!(exported, step.passed_at, "step {} of {csv}", row["step"]);
        assert_eq!(
            row["hints_opened_before_passing"].is_empty(),
            step.passed_at.is_none()
        );
    }
    assert!(
        !ada_rows[0]["seconds_on_step"].is_empty(),
        "step 1 runs from the lab's opening"
    );
    assert!(rows.iter().all(|r| r["learner"] != "Bob"));
    // The command line reads the same from the data folder.
    let exported = std::process::Command::new(grouplab_end2end::workspace_binary("grouplab")?)
        .arg("export")
        .arg("--data-dir")
        .arg(data.path())
        .arg("--labs-dir")
        .arg(grouplab_end2end::workspace_root().join("labs"))
        .output()?;
    assert!(
        exported.status.success(),
        "{}",
        String::from_utf8_lossy(&exported.stderr)
    );
    assert_eq!(
        String::from_utf8(exported.stdout)?,
        csv,
        "`grouplab export` writes what the class page's link gives"
    );
    let (status, _, roster) = server
        .request(
            "/class/roster.csv",
            &format!("Cookie: grouplab_token={TOKEN}\r\n"),
        )
        .await?;
    assert_eq!(status, 200);
    assert!(
        roster.lines().nth(1).is_some_and(|l| l.contains(",Ada,")),
        "{roster}"
    );
    for path in [
        "/class/results.csv",
        "/class/results.json",
        "/class/roster.csv",
    ] {
        let (status, _, _) = server.request(path, &format!("Cookie: {ada}\r\n")).await?;
        assert_eq!(status, 403, "a learner's cookie on {path}");
    }

    // Ada's labs together may have two topics (this class's cap), and produce one full produce
    // at once, then 500 messages a second.
    let mut ada_lab_05 = LabClient::open_as(&server, "05-fan-out", &ada).await?;
    ada_lab_05.create_topic("first", 1).await?;
    ada_lab_05.create_topic("second", 1).await?;
    ada_lab_05
        .send(&ClientCommand::CreateTopic {
            topic: "third".into(),
            partitions: 1,
        })
        .await?;
    ada_lab_05
        .wait_until("the notice of the topics cap", JOIN_DEADLINE, |p| {
            has_notice(p, "as many topics as this class allows")
        })
        .await?;
    let full = ClientCommand::Produce {
        topic: "first".into(),
        count: 10_000,
        keys: grouplab_protocol::KeyMode::None,
        partition: None,
        text: None,
    };
    ada_lab_05.send(&full).await?;
    ada_lab_05.send(&full).await?;
    ada_lab_05
        .wait_until("the notice of the produce cap", JOIN_DEADLINE, |p| {
            has_notice(p, "producing faster than this class allows")
        })
        .await?;
    ada_lab_05
        .wait_until("the first 10,000 messages", JOIN_DEADLINE, |p| {
            p.view()
                .topic("first")
                .is_some_and(|t| t.message_count() == 10_000)
        })
        .await?;
    assert!(ada_lab_05.view().topic("third").is_none());
    drop(ada_lab_05);

    // Joins are rate-limited per address: a burst of the class's size and 20 more, then refusals.
    let mut statuses = Vec::new();
    for n in 0..30 {
        statuses.push(join(&server, "ZZZZZZ", &format!("x{n}")).await?.0);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(server.logged("past the rate limit was refused") > 0);
    Ok(())
}

/// Whether the page was told `title` (part of it).
fn has_notice(page: &LabClient, title: &str) -> bool {
    page.notices.iter().any(|n| n.title.contains(title))
}

/// How many consumer instance processes the server runs.
fn instance_processes(server: u32) -> usize {
    children_of(server)
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|name| name.starts_with("grouplab-consum"))
        })
        .count()
}

/// Opens `lab` as each learner, waits until each page is `ready`, and gives the pages with the
/// broker URL each shows.
async fn open_both(
    server: &TestServer,
    lab: &str,
    cookies: [&str; 2],
    (what, deadline): (&str, Duration),
    ready: impl Fn(&LabClient) -> bool,
) -> anyhow::Result<(Vec<LabClient>, Vec<String>)> {
    let mut pages = Vec::new();
    for cookie in cookies {
        let mut page = LabClient::open_as(server, lab, cookie).await?;
        page.wait_until(what, deadline, &ready).await?;
        pages.push(page);
    }
    let urls = pages
        .iter()
        .map(|p| p.view().broker.bootstrap_servers.clone())
        .collect();
    Ok((pages, urls))
}

/// Has each page produce its count to `topic`, and starts that learner's own copy of `lab`'s
/// solution against the broker URL their page shows.
async fn produce_and_run_own_solution(
    pages: &mut [LabClient],
    urls: &[String],
    counts: [u32; 2],
    topic: &str,
    lab: &'static str,
    logs: &std::path::Path,
) -> anyhow::Result<Vec<ExternalConsumer>> {
    let mut consumers = Vec::new();
    for ((page, url), count) in pages.iter_mut().zip(urls).zip(counts) {
        page.send(&ClientCommand::Produce {
            topic: topic.into(),
            count,
            keys: grouplab_protocol::KeyMode::None,
            partition: None,
            text: None,
        })
        .await?;
        consumers.push(ExternalConsumer::start(
            Client::Solution {
                lab,
                arg: None,
                client_id: "learner-solution",
            },
            url,
            logs,
        )?);
    }
    Ok(consumers)
}

/// The first consumer of `order-workers` in a learner's Redis lab, and how far the group read.
fn redis_readers(view: &LabSnapshot) -> (Vec<String>, Option<u64>) {
    let group = view
        .stream("orders")
        .and_then(|s| s.groups.iter().find(|g| g.name == "order-workers"));
    (
        group
            .map(|g| g.consumers.iter().map(|c| c.name.clone()).collect())
            .unwrap_or_default(),
        group.and_then(|g| g.entries_read),
    )
}

/// What a Redis at `url`'s host and port answers a `PING` sent without its password.
async fn ping_without_password(url: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = url
        .rsplit_once('@')
        .map(|(_, rest)| rest.trim_end_matches('/'))
        .context("the URL carries a password")?;
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    stream.write_all(b"PING\r\n").await?;
    let mut answer = vec![0; 256];
    let read = stream.read(&mut answer).await?;
    Ok(String::from_utf8_lossy(&answer[..read]).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_learners_redis_consumers_on_one_stream_name_see_only_their_own_entries()
-> anyhow::Result<()> {
    const REDIS_LAB: &str = "13-redis-streams";
    let data = tempfile::tempdir()?;
    let (server, ada, bob) = ada_and_bob(data.path(), &[]).await?;
    let (mut pages, urls) = open_both(
        &server,
        REDIS_LAB,
        [&ada, &bob],
        ("the learner's own Redis", JOIN_DEADLINE),
        |p| p.view().broker.bootstrap_servers.starts_with("redis://:"),
    )
    .await?;
    assert_ne!(urls[0], urls[1], "each learner has a Redis of their own");
    for url in &urls {
        let answer = ping_without_password(url).await?;
        assert!(
            answer.starts_with("-NOAUTH"),
            "without the password: {answer}"
        );
    }

    // The same stream and group names, different entries: 5 for Ada, 3 for Bob.
    let consumers =
        produce_and_run_own_solution(&mut pages, &urls, [5, 3], "orders", REDIS_LAB, data.path())
            .await?;
    for ((page, consumer), count) in pages.iter_mut().zip(&consumers).zip([5u64, 3]) {
        page.wait_until(
            &format!("the learner's own consumer to read all {count} entries"),
            JOIN_DEADLINE,
            |p| {
                let (readers, read) = redis_readers(p.view());
                readers.len() == 1 && read == Some(count)
            },
        )
        .await
        .with_context(|| consumer.output())?;
        assert_eq!(page.view().stream("orders").map(|s| s.length), Some(count));
    }
    let readers: Vec<Vec<String>> = pages.iter().map(|p| redis_readers(p.view()).0).collect();
    assert_ne!(
        readers[0], readers[1],
        "each page shows its own learner's consumer"
    );

    // A learner's password is on no command line, which `ps` shows every user of the machine:
    // neither their redis-server's nor their page instance's.
    pages[0]
        .start_running(
            "order-workers",
            "orders",
            ConsumerSettings::default(),
            JOIN_DEADLINE,
        )
        .await?;
    for url in &urls {
        let password = url
            .trim_start_matches("redis://:")
            .split('@')
            .next()
            .context("the URL's password")?;
        for pid in children_of(server.pid()) {
            let command = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            assert!(
                !String::from_utf8_lossy(&command).contains(password),
                "a learner's Redis password is on a command line"
            );
        }
    }

    // Each learner's redis-server is the server's child, and none outlives it.
    let children = grouplab_end2end::children_of(server.pid());
    assert!(
        children.len() >= 3,
        "two learners' redis-servers and Ada's instance: {children:?}"
    );
    drop(consumers);
    let mut server = server;
    server.terminate().await?;
    let left: Vec<u32> = children
        .into_iter()
        .filter(|&pid| grouplab_end2end::is_running(pid))
        .collect();
    assert!(
        left.is_empty(),
        "still running after the server stopped: {left:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_learners_rabbitmq_workers_on_one_queue_name_see_only_their_own_messages()
-> anyhow::Result<()> {
    const RABBIT_LAB: &str = "14-rabbitmq-competing-consumers";
    const QUEUE: &str = "tasks";
    /// grouplab's own RabbitMQ takes seconds to start.
    const RABBIT_DEADLINE: Duration = Duration::from_secs(120);
    let data = tempfile::tempdir()?;
    let (server, ada, bob) = ada_and_bob(data.path(), &[]).await?;
    let (mut pages, urls) = open_both(
        &server,
        RABBIT_LAB,
        [&ada, &bob],
        ("the learner's own virtual host", RABBIT_DEADLINE),
        |p| {
            p.view().broker.health == grouplab_protocol::BrokerHealth::Up
                && p.view().queue(QUEUE).is_some()
        },
    )
    .await?;
    assert_ne!(
        urls[0], urls[1],
        "each learner has a user and virtual host of their own"
    );
    assert!(
        urls.iter().all(|url| !url.contains("guest")),
        "no learner is given the broker's administrator: {urls:?}"
    );

    // The same queue name, different messages: 4 for Ada, 2 for Bob, each to their own worker.
    let workers =
        produce_and_run_own_solution(&mut pages, &urls, [4, 2], QUEUE, RABBIT_LAB, data.path())
            .await?;
    for ((page, worker), count) in pages.iter_mut().zip(&workers).zip([4u64, 2]) {
        page.wait_until(
            &format!("the learner's own worker to acknowledge all {count} messages"),
            RABBIT_DEADLINE,
            |p| {
                p.view().queue(QUEUE).is_some_and(|q| {
                    q.consumers.len() == 1 && q.published == count && q.acked == count
                })
            },
        )
        .await
        .with_context(|| worker.output())?;
    }

    // Shutting Bob out deletes his virtual host and his user: his URL no longer opens a
    // connection, while Ada's still does.
    shut_out(&server, &learner_id(&server, "Bob").await?).await?;
    let bob_url = urls[1].clone();
    poll_until("Bob's RabbitMQ user to be deleted", RABBIT_DEADLINE, || {
        let url = bob_url.clone();
        async move { (!amqp_connects(&url).ok()?).then_some(()) }
    })
    .await?;
    assert!(
        amqp_connects(&urls[0])?,
        "Ada's URL still opens a connection"
    );
    drop(workers);
    Ok(())
}

/// Whether a pika connection opens with `url` (as a learner's worker would).
fn amqp_connects(url: &str) -> anyhow::Result<bool> {
    let python = grouplab_end2end::workspace_root().join("end2end/clients/.venv/bin/python");
    let status = std::process::Command::new(python)
        .args([
            "-c",
            "import pika, sys; pika.BlockingConnection(pika.URLParameters(sys.argv[1])).close()",
            url,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .context("the tests' Python (scripts/setup.sh --tests makes it)")?;
    Ok(status.success())
}

/// The instructor shuts a learner out with their row's button.
async fn shut_out(server: &TestServer, learner: &str) -> anyhow::Result<()> {
    let cookie = format!(
        "Cookie: grouplab_token={TOKEN}\r\nOrigin: http://{}\r\n",
        server.addr
    );
    let (status, _, _) = http_post(
        server.addr,
        &format!("/class/learners/{learner}/revoke"),
        &cookie,
        "",
    )
    .await?;
    anyhow::ensure!(status == 303, "the instructor's shut-out answered {status}");
    Ok(())
}

/// A learner's id, from their row on the instructor's class page.
async fn learner_id(server: &TestServer, name: &str) -> anyhow::Result<String> {
    let (_, body) = server.get(&format!("/class?token={TOKEN}")).await?;
    body.split("data-testid=\"learner-row\"")
        .find(|row| row.contains(&format!("<td>{name}</td>")))
        .and_then(|row| row.split("/class/learners/").nth(1))
        .and_then(|rest| rest.split('/').next())
        .map(str::to_owned)
        .with_context(|| format!("{name} is on the roster"))
}

/// The topics a cluster lists, asked with Debian's kcat (as an operator would).
fn cluster_topics(bootstrap: &str) -> anyhow::Result<Vec<String>> {
    let out = std::process::Command::new("kcat")
        .args(["-L", "-b", bootstrap])
        .output()
        .context("kcat (installed by scripts/setup.sh --tests)")?;
    let listing = String::from_utf8_lossy(&out.stdout);
    Ok(listing
        .lines()
        .filter_map(|line| line.trim().strip_prefix("topic \""))
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_class_on_a_named_cluster_gives_each_learner_their_own_prefix() -> anyhow::Result<()> {
    // Another grouplab's embedded broker is the class's cluster, as the named-cluster tests do.
    let cluster_data = tempfile::tempdir()?;
    let cluster = TestServer::start(cluster_data.path()).await?;
    let bootstrap = cluster.broker.to_string();
    let data = tempfile::tempdir()?;
    let (server, ada, bob) = ada_and_bob(
        data.path(),
        &["--bootstrap-servers".to_owned(), bootstrap.clone()],
    )
    .await?;
    let ada_prefix = format!("kafka-101.{}.", learner_id(&server, "Ada").await?);
    let bob_prefix = format!("kafka-101.{}.", learner_id(&server, "Bob").await?);

    // Both use the lab's names; the cluster holds each under its learner's prefix.
    let mut pages = Vec::new();
    for cookie in [&ada, &bob] {
        let mut page = LabClient::open_as(&server, LAB, cookie).await?;
        assert_eq!(page.view().broker.bootstrap_servers, bootstrap);
        page.create_topic(TOPIC, 3).await?;
        let instance = page
            .start_running(GROUP, TOPIC, ConsumerSettings::default(), JOIN_DEADLINE)
            .await?;
        page.wait_until("the instance owning every partition", JOIN_DEADLINE, |p| {
            p.view().group(GROUP).is_some_and(|g| {
                g.members.len() == 1
                    && g.members[0].partitions.len() == 3
                    && g.members[0].partitions.iter().all(|tp| tp.topic == TOPIC)
            }) && p
                .view()
                .instance(instance)
                .is_some_and(|i| i.partitions.len() == 3)
        })
        .await?;
        pages.push(page);
    }
    let topics = cluster_topics(&bootstrap)?;
    let ada_topic = format!("{ada_prefix}{TOPIC}");
    let bob_topic = format!("{bob_prefix}{TOPIC}");
    assert!(
        topics.contains(&ada_topic) && topics.contains(&bob_topic),
        "{topics:?}"
    );
    assert!(
        !topics.iter().any(|t| t == TOPIC),
        "no learner writes the bare name: {topics:?}"
    );

    // The code a learner runs carries their names.
    let (_, _, page) = server
        .request(&format!("/labs/{LAB}"), &format!("Cookie: {ada}\r\n"))
        .await?;
    assert!(page.contains(&ada_topic), "Ada's snippets name her topic");
    assert!(!page.contains(&bob_prefix), "and nothing of Bob's");

    // Ada's Reset deletes her topic only.
    pages[0].send(&ClientCommand::ResetLab).await?;
    pages[0].send(&ClientCommand::ResetLab).await?;
    pages[0]
        .wait_until("Ada's topic to be deleted", JOIN_DEADLINE, |p| {
            p.view().topic(TOPIC).is_none()
        })
        .await?;
    let topics = cluster_topics(&bootstrap)?;
    assert!(!topics.contains(&ada_topic), "{topics:?}");
    assert!(topics.contains(&bob_topic), "Bob's topic stays: {topics:?}");
    Ok(())
}

/// The status of a websocket handshake at `path` with these cookies.
async fn path_status(
    server: &TestServer,
    path: &str,
    cookie: Option<&str>,
    origin: Option<&str>,
) -> anyhow::Result<u16> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{}{path}", server.addr).into_client_request()?;
    if let Some(cookie) = cookie {
        request.headers_mut().insert("Cookie", cookie.parse()?);
    }
    if let Some(origin) = origin {
        request.headers_mut().insert("Origin", origin.parse()?);
    }
    Ok(match tokio_tungstenite::connect_async(request).await {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(err) => return Err(err.into()),
    })
}

/// A lab as the board keeps it across a restart: its id, steps passed and hints opened.
type KeptLab = (String, usize, usize);

/// Whether the view's timeline has the instructor's `action` (part of its words).
fn instructor_did(view: &LabSnapshot, action: &str) -> bool {
    view.timeline.iter().any(|e| {
        matches!(&e.kind, grouplab_protocol::TimelineKind::Instructor { action: said } if said.contains(action))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_instructor_watches_every_learner_helps_one_and_crashes_a_consumer_in_each_group()
-> anyhow::Result<()> {
    use grouplab_protocol::class::InstructorAction;
    use grouplab_protocol::{InstanceState, TimelineKind};
    let data = tempfile::tempdir()?;
    let args = class_args(free_port_range(2), 2);
    let (mut server, ada, bob) = ada_and_bob_with(data.path(), &args).await?;
    let ada_id = learner_id(&server, "Ada").await?;
    let bob_id = learner_id(&server, "Bob").await?;
    let mut desk = Dashboard::open(&server, TOKEN).await?;
    desk.wait_until(
        "a tile per learner, in the order they joined",
        Duration::from_secs(5),
        |b| {
            b.learners
                .iter()
                .map(|l| l.name.as_str())
                .eq(["Ada", "Bob"])
        },
    )
    .await?;
    assert!(
        desk.board
            .learners
            .iter()
            .all(|l| !l.online && l.lab.is_none())
    );

    // Only the instructor reaches the dashboard and the read-only views.
    let watch = format!("/class/ws/learners/{bob_id}/labs/{LAB}");
    let instructor = format!("grouplab_token={TOKEN}");
    for path in ["/class/ws", watch.as_str()] {
        assert_eq!(
            path_status(&server, path, Some(&ada), None).await?,
            403,
            "Ada's cookie on {path}"
        );
        assert_eq!(
            path_status(&server, path, None, None).await?,
            401,
            "no cookie on {path}"
        );
        assert_eq!(
            path_status(
                &server,
                path,
                Some(&instructor),
                Some("http://evil.example")
            )
            .await?,
            403,
            "another site's page with the instructor's cookie on {path}"
        );
    }
    assert_eq!(
        path_status(&server, &watch, Some(&instructor), None).await?,
        404,
        "a lab Bob has not opened: nothing to watch, and nothing started"
    );
    let (status, _, _) = server
        .request(
            &format!("/class/learners/{bob_id}/labs/{LAB}"),
            &format!("Cookie: {ada}\r\n"),
        )
        .await?;
    assert_eq!(status, 403, "Ada's cookie on Bob's lab, read-only");

    // Ada works through steps 1 and 2; her tile follows.
    let mut ada_page = LabClient::open_as(&server, LAB, &ada).await?;
    let mut bob_page = LabClient::open_as(&server, LAB, &bob).await?;
    desk.wait_until("both online in Lab 04", JOIN_DEADLINE, |b| {
        b.learners
            .iter()
            .all(|l| l.online && l.lab.as_ref().is_some_and(|lab| lab.id == LAB))
    })
    .await?;
    ada_page.create_topic(TOPIC, 3).await?;
    for _ in 0..2 {
        ada_page
            .start_running(GROUP, TOPIC, ConsumerSettings::default(), JOIN_DEADLINE)
            .await?;
    }
    ada_page.wait_for_step(1, JOIN_DEADLINE).await?;
    desk.wait_until("Ada's tile at step 3 of 6", Duration::from_secs(5), |b| {
        b.learners.iter().any(|l| {
            l.name == "Ada"
                && l.lab
                    .as_ref()
                    .is_some_and(|lab| lab.passed == 2 && lab.instances == 2)
        })
    })
    .await?;
    let ada_tile = desk.tile("Ada").context("Ada's tile")?.clone();
    let ada_lab = ada_tile.lab.context("Ada's lab")?;
    assert_eq!(
        ada_lab
            .group
            .as_ref()
            .map(|(g, s)| (g.as_str(), s.as_str())),
        Some((GROUP, "Stable"))
    );
    assert!(ada_lab.on_step_since.is_some() && ada_tile.last_activity.is_some());
    let funnel = desk
        .board
        .funnel
        .iter()
        .find(|f| f.lab == LAB)
        .context("Lab 04's funnel")?;
    assert_eq!(
        (funnel.opened, funnel.passed[0], funnel.passed[1]),
        (2, 1, 1)
    );

    // Bob makes the same mistake three times: he is flagged stuck, with why.
    for _ in 0..3 {
        bob_page
            .send(&ClientCommand::CreateTopic {
                topic: "no spaces allowed".into(),
                partitions: 3,
            })
            .await?;
    }
    desk.wait_until("Bob flagged stuck", Duration::from_secs(5), |b| {
        b.learners.iter().any(|l| {
            l.name == "Bob"
                && l.stuck
                    .as_deref()
                    .is_some_and(|s| s.contains("same error 3 times"))
        })
    })
    .await?;
    assert_eq!(
        desk.tile("Ada").and_then(|t| t.stuck.clone()),
        None,
        "Ada is not stuck"
    );

    // The instructor helps Bob: a hint, then step 1 passed for him.
    let report = desk.act(Some(&bob_id), InstructorAction::Hint).await?;
    assert_eq!(report.done.len(), 1, "{report:?}");
    let report = desk.act(Some(&bob_id), InstructorAction::PassStep).await?;
    assert_eq!(
        report.done,
        [("Bob".to_owned(), "step 1 passed".to_owned())],
        "{report:?}"
    );
    bob_page
        .wait_until(
            "the hint and the step the instructor gave",
            JOIN_DEADLINE,
            |p| {
                p.view().progress.hints.len() == 1
                    && p.view().progress.steps[0].passed_at.is_some()
                    && instructor_did(p.view(), "passed the open step")
            },
        )
        .await?;
    assert_eq!(ada_page.view().progress.hints.len(), 0, "Ada got no hint");

    // Looking at Bob's lab read-only: the same view, and no command acts.
    let mut looking =
        LabClient::open_path(&server, &watch, &format!("grouplab_token={TOKEN}")).await?;
    assert_eq!(looking.view().progress.hints.len(), 1);
    looking.send(&ClientCommand::ResetLab).await?;
    looking
        .wait_until("the read-only notice", JOIN_DEADLINE, |p| {
            has_notice(p, "read-only")
        })
        .await?;

    // A message to everyone reaches both learners' pages.
    let report = desk
        .act(
            None,
            InstructorAction::Message {
                text: "Break until 11:00".into(),
            },
        )
        .await?;
    assert_eq!(report.done.len(), 2, "{report:?}");
    for page in [&mut ada_page, &mut bob_page] {
        page.wait_until("the instructor's banner", JOIN_DEADLINE, |p| {
            p.view()
                .banner
                .as_ref()
                .is_some_and(|b| b.text == "Break until 11:00")
        })
        .await?;
    }
    let report = desk
        .act(
            Some(&ada_id),
            InstructorAction::Message {
                text: "Ada, see me".into(),
            },
        )
        .await?;
    assert_eq!(report.done.len(), 1, "{report:?}");
    ada_page
        .wait_until("Ada's own message", JOIN_DEADLINE, |p| {
            p.view()
                .banner
                .as_ref()
                .is_some_and(|b| b.text == "Ada, see me")
        })
        .await?;
    // A page Ada opens afterwards shows it too.
    let later = LabClient::open_as(&server, LAB, &ada).await?;
    assert_eq!(
        later.view().banner.as_ref().map(|b| b.text.as_str()),
        Some("Ada, see me"),
        "the message on a page opened after it"
    );
    drop(later);
    let report = desk
        .act(
            None,
            InstructorAction::Message {
                text: "x".repeat(501),
            },
        )
        .await?;
    assert!(
        report.done.is_empty() && !report.refused.is_empty(),
        "{report:?}"
    );

    // Crash one consumer in each group: refused for nobody once both run two instances; both
    // pages show the crash, the instructor's doing, and the rebalance that follows.
    bob_page.create_topic(TOPIC, 3).await?;
    for _ in 0..2 {
        bob_page
            .start_running(GROUP, TOPIC, ConsumerSettings::default(), JOIN_DEADLINE)
            .await?;
    }
    desk.wait_until(
        "Bob's two instances on his tile",
        Duration::from_secs(5),
        |b| {
            b.learners
                .iter()
                .any(|l| l.name == "Bob" && l.lab.as_ref().is_some_and(|lab| lab.instances == 2))
        },
    )
    .await?;
    let report = desk.act(None, InstructorAction::CrashOne).await?;
    assert_eq!(report.done.len(), 2, "{report:?}");
    assert!(report.refused.is_empty(), "{report:?}");
    for page in [&mut ada_page, &mut bob_page] {
        page.wait_until(
            "one crashed instance, and the other owning every partition",
            JOIN_DEADLINE,
            |p| {
                let view = p.view();
                let crashed = view
                    .instances
                    .iter()
                    .filter(|i| matches!(i.state, InstanceState::Crashed { .. }))
                    .count();
                let survivor_owns_all = view
                    .instances
                    .iter()
                    .any(|i| i.state == InstanceState::Running && i.partitions.len() == 3);
                crashed == 1
                    && survivor_owns_all
                    && instructor_did(view, "crashed one consumer")
                    && view
                        .timeline
                        .iter()
                        .any(|e| matches!(e.kind, TimelineKind::Crashed))
            },
        )
        .await?;
    }

    // The same demo with no running instance left to spare is refused for that learner, by name.
    let report = desk.act(Some(&ada_id), InstructorAction::Reset).await?;
    assert_eq!(report.done.len(), 1, "{report:?}");
    ada_page
        .wait_until("Ada's lab reset by the instructor", JOIN_DEADLINE, |p| {
            p.view().topic(TOPIC).is_none() && instructor_did(p.view(), "reset the lab")
        })
        .await?;
    let report = desk.act(Some(&ada_id), InstructorAction::CrashOne).await?;
    assert_eq!(
        report.refused,
        [(
            "Ada".to_owned(),
            "no page instance is running in their lab".to_owned()
        )],
        "{report:?}"
    );

    // Produce into every learner's lab: Bob's topic gets them, Ada's (reset) is not there.
    let report = desk
        .act(None, InstructorAction::Produce { count: 5 })
        .await?;
    assert_eq!(report.done.len(), 1, "{report:?}");
    assert_eq!(
        report.refused,
        [(
            "Ada".to_owned(),
            format!("their lab's topic `{TOPIC}` does not exist yet")
        )],
        "{report:?}"
    );
    bob_page
        .wait_until(
            "the instructor's 5 messages in Bob's topic",
            JOIN_DEADLINE,
            |p| {
                p.view()
                    .topic(TOPIC)
                    .is_some_and(|t| t.message_count() == 5)
                    && instructor_did(p.view(), "produced 5 messages")
            },
        )
        .await?;

    // Bob's broker down for 2 s: his page sees it stop, then answer again.
    let report = desk
        .act(Some(&bob_id), InstructorAction::BrokerDown { seconds: 2 })
        .await?;
    assert_eq!(report.done.len(), 1, "{report:?}");
    bob_page
        .wait_until("Bob's broker stopped", JOIN_DEADLINE, |p| {
            matches!(
                p.view().broker.health,
                grouplab_protocol::BrokerHealth::Stopped { .. }
            )
        })
        .await?;
    bob_page
        .wait_until("Bob's broker back", JOIN_DEADLINE, |p| {
            p.view().broker.health.is_up()
        })
        .await?;
    assert!(
        ada_page.view().broker.health.is_up(),
        "Ada's broker stayed up"
    );

    // The export matches both learners' pages row by row: when each step passed, and that the
    // instructor passed Bob's step 1 (and nobody else's).
    let cookie = format!("Cookie: grouplab_token={TOKEN}\r\n");
    let expected = |name: &str, page: &LabClient| -> Vec<(String, String, String)> {
        page.view()
            .progress
            .steps
            .iter()
            .enumerate()
            .map(|(index, step)| {
                let by_instructor = match step.passed_at {
                    None => "",
                    Some(_) if name == "Bob" && index == 0 => "true",
                    Some(_) => "false",
                };
                (
                    (index + 1).to_string(),
                    step.passed_at.map_or_else(String::new, |at| at.to_string()),
                    by_instructor.to_owned(),
                )
            })
            .collect()
    };
    let wanted = [
        ("Ada", expected("Ada", &ada_page)),
        ("Bob", expected("Bob", &bob_page)),
    ];
    let server_ref = &server;
    let cookie_ref = &cookie;
    poll_until("the export to match both pages", JOIN_DEADLINE, || async {
        let (status, _, csv) = server_ref
            .request("/class/results.csv", cookie_ref)
            .await
            .ok()?;
        let rows: Vec<std::collections::HashMap<String, String>> =
            csv::Reader::from_reader(csv.as_bytes())
                .deserialize()
                .collect::<Result<_, _>>()
                .ok()?;
        let exported = |name: &str| -> Vec<(String, String, String)> {
            rows.iter()
                .filter(|r| r["learner"] == name && r["lab"] == LAB)
                .map(|r| {
                    let at = match r["passed_at"].as_str() {
                        "" => String::new(),
                        at => chrono::DateTime::parse_from_rfc3339(at)
                            .map_or_else(|_| at.to_owned(), |t| t.timestamp_millis().to_string()),
                    };
                    (r["step"].clone(), at, r["passed_by_instructor"].clone())
                })
                .collect()
        };
        (status == 200 && wanted.iter().all(|(name, rows)| &exported(name) == rows)).then_some(())
    })
    .await
    .with_context(|| format!("the pages say {wanted:?}"))?;

    // Only the instructor may shut a learner out.
    let (status, _, _) = http_post(
        server.addr,
        &format!("/class/learners/{bob_id}/revoke"),
        &format!("Cookie: {ada}\r\nOrigin: http://{}\r\n", server.addr),
        "",
    )
    .await?;
    assert_eq!(status, 403, "Ada shutting Bob out");

    // The instructor's view is not one of Bob's pages: with his own closed, he is offline.
    drop(bob_page);
    desk.wait_until(
        "Bob offline while the instructor still looks",
        Duration::from_secs(5),
        |b| b.learners.iter().any(|l| l.name == "Bob" && !l.online),
    )
    .await?;
    drop(looking);

    // The board lasts a restart: each learner's lab, steps passed and hints, from the database.
    fn kept(board: &grouplab_protocol::class::ClassBoard) -> Vec<(String, Option<KeptLab>)> {
        board
            .learners
            .iter()
            .map(|l| {
                let lab = l
                    .lab
                    .as_ref()
                    .map(|lab| (lab.id.clone(), lab.passed, lab.hints));
                (l.name.clone(), lab)
            })
            .collect()
    }
    let before = kept(&desk.board);
    assert!(
        before.iter().all(|(_, lab)| lab
            .as_ref()
            .is_some_and(|(id, passed, _)| id == LAB && *passed >= 1)),
        "{before:?}"
    );
    drop(ada_page);
    drop(desk);
    server.terminate().await?;
    let server = start(data.path(), &args).await?;
    let mut desk = Dashboard::open(&server, TOKEN).await?;
    desk.wait_until("the board as it was", Duration::from_secs(10), |b| {
        kept(b) == before
    })
    .await?;
    Ok(())
}
