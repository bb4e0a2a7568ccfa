//! How fast consumed messages reach a page, and what it costs.
//!
//! Starts the real `grouplab` (as built by `cargo xtask build`, the binary `scripts/run.sh` runs),
//! a topic with 6 partitions and 3 consumer instances, then produces rounds of messages and
//! measures, from the page's websocket, the time until every message is counted, the events and
//! bytes the page received, how many messages it was shown (the sample), and peak memory.
//!
//!     cargo xtask build && cargo run -p grouplab-benches --bin throughput -- [messages per round] [rounds]

use std::time::{Duration, Instant};

use grouplab_end2end::{LabClient, TestServer, children_of};
use grouplab_protocol::{ClientCommand, KeyMode, ServerEvent};

const LAB: &str = "04-consumer-groups";
const DEADLINE: Duration = Duration::from_secs(300);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let per_round: u32 = args.next().map_or(Ok(10_000), |a| a.parse())?;
    let rounds: u32 = args.next().map_or(Ok(5), |a| a.parse())?;

    let data = tempfile::tempdir()?;
    let server = TestServer::start(data.path()).await?;
    let mut page = LabClient::connect(&server, LAB).await?;
    page.next_event().await?;
    page.create_topic("bench", 6).await?;
    page.start_instances("bench-group", "bench", 3).await?;
    page.wait_until("three members owning two partitions each", DEADLINE, |p| {
        p.running_evenly(3, 2)
    })
    .await?;

    println!(
        "grouplab throughput: {rounds} rounds of {per_round} messages, 6 partitions, 3 instances"
    );
    let mut expected = 0u64;
    let mut total_time = Duration::ZERO;
    for round in 1..=rounds {
        expected += u64::from(per_round);
        let (mut events, mut bytes, mut shown) = (0u64, 0u64, 0u64);
        let started = Instant::now();
        page.send(&ClientCommand::Produce {
            topic: "bench".into(),
            count: per_round,
            keys: KeyMode::None,
            partition: None,
            text: None,
        })
        .await?;
        let until = tokio::time::Instant::now() + DEADLINE;
        while page.received_total() < expected {
            let event = tokio::time::timeout_at(until, page.next_event()).await??;
            events += 1;
            bytes += serde_json_len(&event);
            if let ServerEvent::Messages(batch) = &event {
                shown += batch.sample.len() as u64;
            }
        }
        let elapsed = started.elapsed();
        total_time += elapsed;
        println!(
            "round {round}: {per_round} messages counted by the page in {:.2} s ({:.0} msg/s); {events} events, {:.1} KiB to the page, {shown} messages shown",
            elapsed.as_secs_f64(),
            f64::from(per_round) / elapsed.as_secs_f64(),
            bytes as f64 / 1024.0,
        );
    }
    println!(
        "overall: {expected} messages in {:.2} s ({:.0} msg/s produce-to-page)",
        total_time.as_secs_f64(),
        expected as f64 / total_time.as_secs_f64()
    );
    println!("server peak memory: {} MiB", peak_mib(server.pid()));
    for pid in children_of(server.pid()) {
        println!("instance {pid} peak memory: {} MiB", peak_mib(pid));
    }
    Ok(())
}

fn serde_json_len(event: &ServerEvent) -> u64 {
    grouplab_end2end::encoded_len(event)
}

/// Peak resident memory (VmHWM) of a process, in MiB.
fn peak_mib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib / 1024)
}
