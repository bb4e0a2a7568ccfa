//! How long grouplab takes to start, and a lab page to load, in headless Chromium.
//!
//! - **Start**: the built server (`target/debug/grouplab`, what `scripts/run.sh` runs) from its
//!   spawn to "broker ready and page served": `/healthz` answers only once the embedded broker
//!   does, then the lab page is fetched.
//! - **The run command**: the same, from `scripts/run.sh` (already built: it checks the setup,
//!   asks cargo whether the front end and the binaries are up to date, then starts the server).
//! - **Load**: navigation to the lab page until it shows the live lab (the page's
//!   `performance.mark("grouplab-live")`: hydrated, websocket open, snapshot applied), first with
//!   an empty cache, then on reloads, which revalidate the front end's files (304s).
//!
//!     cargo xtask build && cargo run -p grouplab-benches --bin start_and_load -- [runs]

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use fantoccini::Locator;
use grouplab_end2end::{
    Browser, START_DEADLINE, TestServer, free_addr, http_fetch, kill_group, poll_until,
    workspace_root,
};

const LAB: &str = "04-consumer-groups";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::args().nth(1).map_or(Ok(5), |a| a.parse())?;
    println!("grouplab start and load: {runs} runs each");

    let mut starts = Vec::new();
    for _ in 0..runs {
        let data = tempfile::tempdir()?;
        let spawned = Instant::now();
        let server = TestServer::start(data.path()).await?;
        let (status, page) = server.get(&format!("/labs/{LAB}")).await?;
        anyhow::ensure!(
            status == 200 && page.contains("Consumer groups"),
            "the lab page was not served"
        );
        starts.push(spawned.elapsed());
    }
    report("start: spawn → broker ready and lab page served", &starts);

    let mut commands = Vec::new();
    for _ in 0..runs {
        commands.push(run_command().await?);
    }
    report(
        "the run command, already built: scripts/run.sh → lab page served",
        &commands,
    );

    let data = tempfile::tempdir()?;
    let server = TestServer::start(data.path()).await?;
    let (mut first, mut reloads) = (Vec::new(), Vec::new());
    for run in 0..runs {
        // A new browser profile per run: its first load has an empty cache.
        let browser = Browser::start().await?;
        let client = &browser.client;
        let url = server.url(&format!("/labs/{LAB}"));
        for load in 0..2 {
            if load == 0 {
                client.goto(&url).await?;
            } else {
                client.refresh().await?;
            }
            let live = poll_until(
                "the page to show the live lab",
                Duration::from_secs(30),
                || async {
                    let marked = client
                        .execute(
                            "const m = performance.getEntriesByName('grouplab-live')[0]; return m ? m.startTime : null;",
                            vec![],
                        )
                        .await
                        .ok()?;
                    marked.as_f64()
                },
            )
            .await?;
            let status = client
                .find(Locator::Css("[data-testid='link-status']"))
                .await?
                .text()
                .await?;
            anyhow::ensure!(status == "live", "the page says {status:?}");
            let elapsed = Duration::from_secs_f64(live / 1000.0);
            if load == 0 {
                first.push(elapsed);
            } else {
                reloads.push(elapsed);
            }
        }
        browser.close().await?;
        if run == 0 {
            let (_, _, wasm) = server
                .fetch("/pkg/grouplab_bg.wasm", "Accept-Encoding: gzip\r\n")
                .await?;
            println!("front end: {} KiB of WASM sent gzipped", wasm.len() / 1024);
        }
    }
    report("load: navigation → live lab, empty cache", &first);
    report("load: reload → live lab (front end revalidated)", &reloads);
    Ok(())
}

/// Runs `scripts/run.sh` on free ports until it serves the lab page, then interrupts it.
async fn run_command() -> anyhow::Result<Duration> {
    let data = tempfile::tempdir()?;
    let (addr, broker) = (free_addr(), free_addr());
    let started = Instant::now();
    let mut child = Command::new(workspace_root().join("scripts").join("run.sh"))
        .arg("--addr")
        .arg(addr.to_string())
        .arg("--broker-addr")
        .arg(broker.to_string())
        .arg("--data-dir")
        .arg(data.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group, so that one signal reaches cargo, xtask and the server.
        .process_group(0)
        .spawn()
        .context("could not run scripts/run.sh")?;
    let group = nix::unistd::Pid::from_raw(i32::try_from(child.id())?);
    let served = poll_until(
        "scripts/run.sh to serve the lab page",
        START_DEADLINE,
        || async {
            let (status, _, page) = http_fetch(addr, &format!("/labs/{LAB}"), "").await.ok()?;
            (status == 200 && String::from_utf8_lossy(&page).contains("Consumer groups"))
                .then_some(())
        },
    )
    .await
    .map(|()| started.elapsed());
    nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGINT)?;
    let exited = poll_until("scripts/run.sh to stop", START_DEADLINE, || {
        let status = child.try_wait();
        async move { status.ok().flatten() }
    })
    .await;
    if exited.is_err() {
        kill_group(&mut child);
    }
    // The server shuts down on its own signal, perhaps after the script's process has gone.
    let closed = poll_until("the server to stop listening", START_DEADLINE, || async {
        tokio::net::TcpStream::connect(addr)
            .await
            .is_err()
            .then_some(())
    })
    .await;
    let served = served?;
    exited?;
    closed?;
    Ok(served)
}

fn report(what: &str, samples: &[Duration]) {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let median = ms[ms.len() / 2];
    println!(
        "{what}: median {median:.0} ms, min {:.0} ms, max {:.0} ms ({} runs)",
        ms[0],
        ms[ms.len() - 1],
        ms.len()
    );
}
