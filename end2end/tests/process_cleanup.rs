//! No consumer instance outlives its server, however the server ends.

use std::time::{Duration, Instant};

use grouplab_end2end::{LabClient, TestServer, children_of, is_running, poll_until};
use grouplab_protocol::{ClientCommand, InstanceState};

const LAB: &str = "04-consumer-groups";
const DEADLINE: Duration = Duration::from_secs(45);

/// Starts a server with two running instances; returns it, with the instances' process ids.
async fn server_with_two_instances(
    data: &std::path::Path,
) -> anyhow::Result<(TestServer, Vec<u32>)> {
    let server = TestServer::start(data).await?;
    let mut page = LabClient::connect(&server, LAB).await?;
    page.next_event().await?;
    page.create_topic("user-clicks", 3).await?;
    page.start_instances("click-processors", "user-clicks", 2)
        .await?;
    page.wait_until("two running instances", DEADLINE, |p| {
        p.view()
            .instances
            .iter()
            .filter(|i| i.state == InstanceState::Running)
            .count()
            == 2
    })
    .await?;
    let server_pid = server.pid();
    let instances = poll_until("two instance processes", DEADLINE, || async move {
        let children = children_of(server_pid);
        (children.len() == 2).then_some(children)
    })
    .await?;
    Ok((server, instances))
}

/// SIGKILL, as the OOM killer or a power cut would: the instances go within 2 s, and a restart
/// finds the learner's progress (a passed step, an opened hint) as it was.
#[tokio::test]
async fn no_instance_outlives_a_killed_server_and_progress_survives_it() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let (mut server, instances) = server_with_two_instances(data.path()).await?;
    let mut page = LabClient::open(&server, LAB).await?;
    page.wait_until("the first step passed", DEADLINE, |p| {
        p.view().progress.steps[0].passed_at.is_some()
    })
    .await?;
    page.send(&ClientCommand::OpenHint).await?;
    page.wait_until("the hint", DEADLINE, |p| p.view().progress.hints.len() == 1)
        .await?;
    let progress = page.view().progress.clone();

    let killed = Instant::now();
    server.kill();
    poll_until("every instance process to end", DEADLINE, || {
        let instances = instances.clone();
        async move { instances.iter().all(|pid| !is_running(*pid)).then_some(()) }
    })
    .await?;
    let gone = killed.elapsed();
    println!(
        "instances gone {} ms after the server's SIGKILL",
        gone.as_millis()
    );
    assert!(
        gone < Duration::from_secs(2),
        "instances outlived the server by {gone:?}"
    );

    let server = TestServer::start(data.path()).await?;
    let page = LabClient::open(&server, LAB).await?;
    let after = &page.view().progress;
    assert_eq!(after.hints, progress.hints, "the opened hint is still open");
    assert_eq!(
        after.steps[0].passed_at, progress.steps[0].passed_at,
        "the passed step is still passed"
    );
    Ok(())
}

#[tokio::test]
async fn sigterm_stops_the_instances_and_the_server() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let (mut server, instances) = server_with_two_instances(data.path()).await?;
    server.terminate().await?;
    assert!(
        instances.iter().all(|pid| !is_running(*pid)),
        "instances were left running"
    );
    Ok(())
}

#[tokio::test]
async fn a_refusal_to_start_is_one_clear_line_without_a_backtrace() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let busy = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))?;
    let output = tokio::process::Command::new(grouplab_end2end::workspace_binary("grouplab")?)
        .arg("--addr")
        .arg(busy.local_addr()?.to_string())
        .arg("--broker-addr")
        .arg(grouplab_end2end::free_addr().to_string())
        .arg("--data-dir")
        .arg(data.path())
        .current_dir(grouplab_end2end::workspace_root())
        .env("RUST_BACKTRACE", "1")
        .env("RUST_LOG", "off")
        .output()
        .await?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("could not start") && stderr.contains("Choose another address with --addr"),
        "{stderr}"
    );
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "one line, no backtrace: {stderr}"
    );
    Ok(())
}

#[tokio::test]
async fn an_address_other_machines_reach_needs_public_and_then_the_access_link()
-> anyhow::Result<()> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::http::HeaderValue;

    let everywhere =
        std::net::SocketAddr::from(([0, 0, 0, 0], grouplab_end2end::free_addr().port()));
    let data = tempfile::tempdir()?;
    let refused = tokio::process::Command::new(grouplab_end2end::workspace_binary("grouplab")?)
        .arg("--addr")
        .arg(everywhere.to_string())
        .arg("--broker-addr")
        .arg(grouplab_end2end::free_addr().to_string())
        .arg("--data-dir")
        .arg(data.path())
        .current_dir(grouplab_end2end::workspace_root())
        .env("RUST_LOG", "off")
        .output()
        .await?;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--public"), "{stderr}");

    const TOKEN: &str = "classroom-token-0123456789";
    let server = TestServer::start_at(
        data.path(),
        everywhere,
        &["--public", "--access-token", TOKEN],
    )
    .await?;
    let (status, _, page) = server.request("/", "").await?;
    assert_eq!(status, 401);
    assert!(page.contains("access link"), "{page}");
    let (status, head, _) = server.request(&format!("/?token={TOKEN}"), "").await?;
    assert_eq!(status, 200);
    assert!(
        head.contains(&format!("grouplab_token={TOKEN}")) && head.contains("HttpOnly"),
        "{head}"
    );
    let cookie = format!("Cookie: grouplab_token={TOKEN}\r\n");
    let (status, _, page) = server.request(&format!("/labs/{LAB}"), &cookie).await?;
    assert_eq!(status, 200);
    assert!(page.contains("Create the topic"));
    let (status, _, _) = server
        .request(&format!("/labs/{LAB}"), "Cookie: grouplab_token=guess\r\n")
        .await?;
    assert_eq!(status, 401);

    let url = server.ws_url(LAB);
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401)
        }
        Err(other) => anyhow::bail!("the socket failed for another reason: {other}"),
        Ok(_) => anyhow::bail!("a socket without the access token was opened"),
    }
    let mut request = url.into_client_request()?;
    request.headers_mut().insert(
        "Cookie",
        HeaderValue::from_str(&format!("grouplab_token={TOKEN}"))?,
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
    use futures::StreamExt;
    let first = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await?
        .ok_or_else(|| anyhow::anyhow!("the socket closed"))??;
    assert!(first.to_text()?.starts_with("{\"snapshot\":"));
    Ok(())
}
