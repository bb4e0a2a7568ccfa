//! No consumer instance outlives its server, however the server ends.

use std::time::Duration;

use grouplab_end2end::{LabClient, TestServer, children_of, is_running, poll_until};
use grouplab_protocol::InstanceState;

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

#[tokio::test]
async fn no_instance_outlives_a_killed_server() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let (mut server, instances) = server_with_two_instances(data.path()).await?;
    server.kill();
    poll_until("every instance process to end", DEADLINE, || {
        let instances = instances.clone();
        async move { instances.iter().all(|pid| !is_running(*pid)).then_some(()) }
    })
    .await?;
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
