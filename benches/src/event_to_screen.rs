//! How long an event takes from a consumer's callback to the page in headless Chromium, and what
//! grouplab adds to a rebalance.
//!
//! Every report a consumer instance writes carries the time its callback wrote it (µs), the
//! server passes it on (`InstanceView::reported_at_us`, `MessageBatch::reported_us`), and so does
//! the embedded broker's group watcher for the coordinator call behind a group change
//! (`GroupView::decided_at_us`). The benchmark sets `window.grouplabBench` to an array; the page
//! then logs, for each such event, when it received it and when the page had applied it (after
//! the effects it woke ran). The same clock on one machine makes the differences latencies.
//!
//! 1. **Rebalance.** Three instances are started by clicking Start in the page, one at a time,
//!    then one is stopped. For each start: click → its assignment applied in the page, minus the
//!    broker's own part (the instance's `Joining` report, written as it subscribed, to its
//!    assignment callback). For every assignment and revocation: callback → page. For every group
//!    change: the broker's coordinator call → page.
//! 2. **Messages.** At each rate, messages are produced for some seconds (in a Produce command
//!    every 100 ms, like the page's steady produce) to the three instances; per message, callback → page. Messages share a batch
//!    (one event per 4 ms at most), so a batch's messages are spread between its first and last
//!    report: each message's time is interpolated between them; the batch's oldest is exact.
//!    Frame times come from `requestAnimationFrame` in the page during the run.
//!
//! A run checks itself: every message produced must be counted in the page's log of batches and
//! shown in the page's counters, or it fails without printing figures.
//!
//!     cargo xtask build && cargo run -p grouplab-benches --bin event_to_screen -- [rates, e.g. 100,1000,10000] [seconds per rate]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use grouplab_end2end::{
    Browser, LabClient, TestServer, poll_until, shown_received, wait_until_live,
};
use grouplab_protocol::{ClientCommand, InstanceId, InstanceState, KeyMode, ServerEvent};
use tokio::sync::mpsc;

const LAB: &str = "04-consumer-groups";
const DEADLINE: Duration = Duration::from_secs(120);
/// How often the benchmark sends a Produce command during a rate's run: as often as the page's
/// own steady produce does (whose rate stops at 1,000 a second).
const PRODUCE_TICK: Duration = Duration::from_millis(100);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let rates: Vec<u32> = args
        .next()
        .unwrap_or_else(|| "100,1000,10000".to_owned())
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let seconds: u32 = args.next().map_or(Ok(10), |a| a.parse())?;

    let data = tempfile::tempdir()?;
    let server = TestServer::start(data.path()).await?;
    let recorder = Recorder::open(&server).await?;
    let browser = Browser::start().await?;
    let page = &browser.client;
    page.goto(&server.url(&format!("/labs/{LAB}"))).await?;
    wait_until_live(page, DEADLINE).await?;
    page.execute(
        "window.grouplabBench = [];
         window.grouplabFrames = [];
         const frame = t => { window.grouplabFrames.push(t); requestAnimationFrame(frame); };
         requestAnimationFrame(frame);",
        vec![],
    )
    .await?;
    click(page, "create-topic").await?;
    let topic = recorder
        .wait("the lab's topic", |seen| {
            seen.view.topics.first().map(|t| t.name.clone())
        })
        .await?;
    println!(
        "grouplab event to screen: lab {LAB}, topic `{topic}`, {} cores",
        std::thread::available_parallelism().map_or(0, usize::from)
    );

    // 1. Rebalances, by clicking.
    let mut starts = Vec::new();
    for n in 1..=3 {
        let clicked_us = click(page, "start-instance").await?;
        let (joining_us, assigned_us) = recorder
            .wait("the new instance's assignment", |seen| {
                seen.instances.iter().find_map(|i| {
                    let assigned = i.assigned_us?;
                    (seen.instances.len() == n && i.id == seen.instances[n - 1].id)
                        .then_some((i.joining_us?, assigned))
                })
            })
            .await?;
        let shown_us = applied(page, "instance-assigned", assigned_us).await?;
        starts.push(StartTiming {
            click_to_shown: shown_us - clicked_us,
            broker: (assigned_us - joining_us) as f64,
        });
        // Let the group settle: every running instance holds partitions again.
        recorder
            .wait("the group to settle", |seen| {
                let running = seen
                    .view
                    .instances
                    .iter()
                    .filter(|i| i.state == InstanceState::Running);
                (running.clone().count() == n && running.clone().all(|i| !i.partitions.is_empty()))
                    .then_some(())
            })
            .await?;
    }
    let stopped = recorder.with(|seen| seen.instances[0].id);
    recorder.send(ClientCommand::StopInstance { instance: stopped })?;
    recorder
        .wait("the group to settle after a stop", |seen| {
            let running: Vec<_> = seen
                .view
                .instances
                .iter()
                .filter(|i| i.state == InstanceState::Running)
                .collect();
            let partitions = seen.view.topics.first().map_or(0, |t| t.partitions.len());
            let held: usize = running.iter().map(|i| i.partitions.len()).sum();
            (running.len() == 2
                && held == partitions
                && running.iter().all(|i| !i.partitions.is_empty()))
            .then_some(())
        })
        .await?;
    // The last assignment's event may still be on its way to the page.
    settle(page).await?;
    let log = take_log(page).await?;

    println!();
    println!("## Our overhead on a rebalance");
    println!();
    println!(
        "| start | click → assignment shown (ms) | broker: subscribe → assignment callback (ms) | ours (ms) |"
    );
    println!("|---|---|---|---|");
    for (n, start) in starts.iter().enumerate() {
        println!(
            "| {} | {:.1} | {:.1} | {:.1} |",
            n + 1,
            start.click_to_shown / 1000.0,
            start.broker / 1000.0,
            (start.click_to_shown - start.broker) / 1000.0
        );
    }
    let callbacks: Vec<f64> = log
        .iter()
        .filter(|e| e.kind.starts_with("instance"))
        .map(|e| e.applied - e.first)
        .collect();
    let decisions: Vec<f64> = log
        .iter()
        .filter(|e| e.kind == "group")
        .map(|e| e.applied - e.first)
        .collect();
    ensure!(
        !callbacks.is_empty() && !decisions.is_empty(),
        "the page logged no instance or group event: is the front end built from this tree?"
    );
    println!();
    println!("| path | events | p50 (ms) | p99 (ms) | max (ms) |");
    println!("|---|---|---|---|---|");
    row(
        "instance callback (assigned, revoked, …) → page",
        &callbacks,
    );
    row("broker's coordinator call → group shown", &decisions);
    // Where the instance events' time goes: before the page has them, and in the page.
    let in_page: Vec<f64> = log
        .iter()
        .filter(|e| e.kind.starts_with("instance"))
        .map(|e| e.applied - e.received)
        .collect();
    row("of the instance events: page received → applied", &in_page);

    // 2. Messages at each rate, with the ownership chart on screen: its frames are part of them.
    let chart = page
        .execute(
            "const r = document.querySelector(\"[data-testid='ownership-click-processors'] svg\")?.getBoundingClientRect();
             return r ? [r.top, r.bottom, window.innerWidth, window.innerHeight] : null;",
            vec![],
        )
        .await?;
    let chart: Option<[f64; 4]> = serde_json::from_value(chart)?;
    let Some([top, bottom, width, height]) = chart else {
        bail!("the ownership chart is not on the page");
    };
    ensure!(
        top >= 0.0 && bottom <= height,
        "the ownership chart is not on screen ({top:.0}..{bottom:.0} px of {height:.0})"
    );
    println!();
    println!(
        "The ownership chart is on screen during the runs: y {top:.0}..{bottom:.0} of a {width:.0}×{height:.0} viewport."
    );
    println!();
    println!("## Messages: callback → page");
    println!();
    println!(
        "| rate (msg/s) | messages | batches | p50 (ms) | p99 (ms) | max (ms) | callback → server → page received p50 (ms) | frames: p50 / p99 / max (ms) | frames over 20 ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut produced_total = recorder.with(|seen| seen.received_total());
    for rate in rates {
        page.execute(
            "window.grouplabBench.length = 0; window.grouplabFrames.length = 0;",
            vec![],
        )
        .await?;
        let total = u64::from(rate) * u64::from(seconds);
        produce_at(&recorder, &topic, rate, seconds).await?;
        produced_total += total;
        recorder
            .wait("every message counted", |seen| {
                (seen.received_total() >= produced_total).then_some(())
            })
            .await?;
        settle(page).await?;
        let log = take_log(page).await?;
        let frames = take_frames(page).await?;
        let batches: Vec<&Entry> = log.iter().filter(|e| e.kind == "messages").collect();
        let counted: u64 = batches.iter().map(|e| e.count).sum();
        ensure!(
            counted == total,
            "at {rate} msg/s the page's log counted {counted} messages of {total}: events were lost"
        );
        let shown = shown_received(page).await?;
        ensure!(
            shown == produced_total,
            "at {rate} msg/s the page's counters show {shown} messages received, not {produced_total}"
        );
        let mut per_message = Vec::with_capacity(total as usize);
        for batch in &batches {
            let count = batch.count.max(1);
            let step = if count > 1 {
                (batch.last - batch.first) / (count - 1) as f64
            } else {
                0.0
            };
            for i in 0..count {
                per_message.push(batch.applied - (batch.first + step * i as f64));
            }
        }
        let oldest_max = batches
            .iter()
            .map(|e| e.applied - e.first)
            .fold(0.0, f64::max);
        let to_page: Vec<f64> = batches.iter().map(|e| e.received - e.last).collect();
        let (p50, p99, _) = percentiles(&mut per_message);
        let (received_p50, _, _) = percentiles(&mut to_page.clone());
        let mut gaps: Vec<f64> = frames.windows(2).map(|w| w[1] - w[0]).collect();
        let long = gaps.iter().filter(|g| **g > 20.0).count();
        let (f50, f99, fmax) = percentiles(&mut gaps);
        println!(
            "| {rate} | {total} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {f50:.1} / {f99:.1} / {fmax:.1} | {long} of {} |",
            batches.len(),
            p50 / 1000.0,
            p99 / 1000.0,
            oldest_max / 1000.0,
            received_p50 / 1000.0,
            gaps.len(),
        );
    }
    browser.close().await?;
    Ok(())
}

struct StartTiming {
    /// From the click to the page applying the instance's first assignment, µs.
    click_to_shown: f64,
    /// The broker's part: the instance's subscribe to its assignment callback, µs.
    broker: f64,
}

/// One event the page logged (see `app/src/live.rs`), times in µs.
#[derive(Debug)]
struct Entry {
    kind: String,
    first: f64,
    last: f64,
    received: f64,
    applied: f64,
    count: u64,
}

/// What the benchmark's websocket client saw of the instances: when each reported joining and
/// its first assignment (the instances' own stamps).
struct Seen {
    view: grouplab_protocol::LabSnapshot,
    instances: Vec<SeenInstance>,
    /// The titles of the notices the server sent, oldest first.
    notices: Vec<String>,
}

struct SeenInstance {
    id: InstanceId,
    joining_us: Option<u64>,
    assigned_us: Option<u64>,
}

impl Seen {
    fn received_total(&self) -> u64 {
        self.view.instances.iter().map(|i| i.received).sum()
    }

    fn record(&mut self, event: &ServerEvent) {
        if let ServerEvent::Notice(notice) = event {
            self.notices
                .push(format!("{}: {}", notice.title, notice.detail));
        }
        let ServerEvent::Instance(view) = event else {
            return;
        };
        let index = match self.instances.iter().position(|i| i.id == view.id) {
            Some(index) => index,
            None => {
                self.instances.push(SeenInstance {
                    id: view.id,
                    joining_us: None,
                    assigned_us: None,
                });
                self.instances.len() - 1
            }
        };
        let seen = &mut self.instances[index];
        if view.state == InstanceState::Joining && seen.joining_us.is_none() {
            seen.joining_us = Some(view.reported_at_us);
        }
        if !view.partitions.is_empty() && seen.assigned_us.is_none() {
            seen.assigned_us = Some(view.reported_at_us);
        }
    }
}

/// A websocket client of the lab that reads every event in a task of its own, so that it never
/// falls behind, and sends commands for the benchmark.
struct Recorder {
    seen: Arc<Mutex<Seen>>,
    commands: mpsc::UnboundedSender<ClientCommand>,
}

impl Recorder {
    async fn open(server: &TestServer) -> anyhow::Result<Self> {
        let mut client = LabClient::open(server, LAB).await?;
        let seen = Arc::new(Mutex::new(Seen {
            view: client.view().clone(),
            instances: Vec::new(),
            notices: Vec::new(),
        }));
        let (commands, mut inbox) = mpsc::unbounded_channel::<ClientCommand>();
        let shared = Arc::clone(&seen);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    Some(command) = inbox.recv() => {
                        if client.send(&command).await.is_err() {
                            break;
                        }
                    }
                    event = client.next_event() => {
                        let Ok(event) = event else { break };
                        let mut seen = shared.lock().expect("the recorder's lock");
                        seen.record(&event);
                        // Applied again rather than cloned: a clone of the whole view per event
                        // would cost this machine's two cores more than the page does.
                        match event {
                            ServerEvent::Snapshot(snapshot) => seen.view = *snapshot,
                            event => seen.view.apply(&event),
                        }
                    }
                }
            }
        });
        Ok(Self { seen, commands })
    }

    fn send(&self, command: ClientCommand) -> anyhow::Result<()> {
        self.commands
            .send(command)
            .map_err(|_| anyhow::anyhow!("the lab's websocket closed"))
    }

    fn with<T>(&self, read: impl FnOnce(&Seen) -> T) -> T {
        read(&self.seen.lock().expect("the recorder's lock"))
    }

    async fn wait<T>(&self, what: &str, found: impl Fn(&Seen) -> Option<T>) -> anyhow::Result<T> {
        let result = poll_until(what, DEADLINE, || async { self.with(&found) }).await;
        result.with_context(|| {
            let notices = self.with(|seen| seen.notices.clone());
            format!("the server's notices: {notices:?}")
        })
    }
}

/// Produces `rate` messages a second for `seconds`, in a command every [`PRODUCE_TICK`].
async fn produce_at(
    recorder: &Recorder,
    topic: &str,
    rate: u32,
    seconds: u32,
) -> anyhow::Result<()> {
    let total = u64::from(rate) * u64::from(seconds);
    let began = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(PRODUCE_TICK);
    let mut sent = 0u64;
    while sent < total {
        tick.tick().await;
        let due = (u64::from(rate) * began.elapsed().as_micros() as u64 / 1_000_000).min(total);
        if due > sent {
            recorder.send(ClientCommand::Produce {
                topic: topic.to_owned(),
                count: u32::try_from(due - sent)?,
                keys: KeyMode::None,
                partition: None,
                text: None,
            })?;
            sent = due;
        }
    }
    Ok(())
}

/// Clicks a button from the page's own script and gives the page's clock at the click, µs.
async fn click(page: &fantoccini::Client, testid: &str) -> anyhow::Result<f64> {
    let at = page
        .execute(
            "const button = document.querySelector(`[data-testid='${arguments[0]}']`);
             const at = (performance.timeOrigin + performance.now()) * 1000;
             button.click();
             return at;",
            vec![testid.into()],
        )
        .await?;
    at.as_f64().context("the page gave no time for the click")
}

/// When the page applied the event of `kind` reported at `reported_us`.
async fn applied(page: &fantoccini::Client, kind: &str, reported_us: u64) -> anyhow::Result<f64> {
    poll_until("the page to apply the event", DEADLINE, || async {
        let entries = read_log(page).await.ok()?;
        entries
            .iter()
            .find(|e| e.kind == kind && e.first as u64 == reported_us)
            .map(|e| e.applied)
    })
    .await
}

/// Waits until the page has logged nothing new for 300 ms.
async fn settle(page: &fantoccini::Client) -> anyhow::Result<()> {
    let until = tokio::time::Instant::now() + DEADLINE;
    let mut before = read_log(page).await?.len();
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = read_log(page).await?.len();
        if now == before {
            return Ok(());
        }
        ensure!(
            tokio::time::Instant::now() < until,
            "the page kept logging events for {DEADLINE:?}"
        );
        before = now;
    }
}

async fn read_log(page: &fantoccini::Client) -> anyhow::Result<Vec<Entry>> {
    let raw = page.execute("return window.grouplabBench;", vec![]).await?;
    let rows: Vec<(String, f64, f64, f64, f64, f64)> = serde_json::from_value(raw)?;
    Ok(rows
        .into_iter()
        .map(|(kind, first, last, received, applied, count)| Entry {
            kind,
            first,
            last,
            received,
            applied,
            count: count as u64,
        })
        .collect())
}

async fn take_log(page: &fantoccini::Client) -> anyhow::Result<Vec<Entry>> {
    let log = read_log(page).await?;
    if log.is_empty() {
        bail!("the page logged no event");
    }
    Ok(log)
}

/// The page's `requestAnimationFrame` times during the run, ms.
async fn take_frames(page: &fantoccini::Client) -> anyhow::Result<Vec<f64>> {
    let raw = page
        .execute("return window.grouplabFrames;", vec![])
        .await?;
    Ok(serde_json::from_value(raw)?)
}

/// p50, p99 and max of `samples` (sorted in place).
fn percentiles(samples: &mut [f64]) -> (f64, f64, f64) {
    if samples.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99), samples[samples.len() - 1])
}

fn row(what: &str, samples_us: &[f64]) {
    let (p50, p99, max) = percentiles(&mut samples_us.to_vec());
    println!(
        "| {what} | {} | {:.1} | {:.1} | {:.1} |",
        samples_us.len(),
        p50 / 1000.0,
        p99 / 1000.0,
        max / 1000.0
    );
}
