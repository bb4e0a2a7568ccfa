//! How many labs one server holds: for each level, a fresh server runs that many labs at once,
//! each with one page (a websocket client applying every event), a 4-partition topic, 4 consumer
//! instances and a steady produce rate, and the benchmark reports memory per instance process,
//! the server's memory and CPU, and how long produced messages take to be counted on the page.
//!
//! The labs are copies of Lab 04 with their own topic and group (`cap-NN-clicks`,
//! `cap-NN-group`), written to a temporary labs folder.
//!
//! "Callback to page" runs, for each batch of messages a page is sent, from the consumer callback
//! that reported its oldest message (the instance's own time stamp) to the page's websocket
//! client reading it: an upper bound for every message in the batch. "Produce to page" runs from
//! the Produce command leaving the page to the page's received count reaching it: the
//! producer's delivery of the whole second's messages, the consumers' fetches, and the above.
//! The pages here are websocket clients that apply every event as the browser does; the
//! `event_to_screen` benchmark measures one page in Chromium.
//!
//! By default every page produces at the same instant each second (`together`): the worst case,
//! as if a whole class pressed Produce in the same millisecond, and the figure the earlier runs
//! in BENCHMARKS.md were taken with. `staggered` spreads the pages' ticks evenly over the second,
//! as learners working at their own pace would.
//!
//! The instances speak the classic protocol (`range`) by default; `consumer` makes them speak
//! the consumer group protocol (KIP-848, the broker's `uniform`).
//!
//!     cargo xtask build && cargo run -p grouplab-benches --bin capacity -- [levels, e.g. 10,20,40] [messages/s per lab] [seconds] [together|staggered] [classic|consumer]

use std::path::Path;
use std::time::{Duration, Instant};

use grouplab_end2end::{
    LabClient, TestServer, children_of, cpu_ticks, resident_kib, workspace_root,
};
use grouplab_protocol::{Assignor, ConsumerSettings, GroupProtocol};

const INSTANCES: usize = 4;
const PARTITIONS: i32 = 4;
const DEADLINE: Duration = Duration::from_secs(300);
/// The unit of CPU times in /proc/<pid>/stat (`getconf CLK_TCK`), 100 on Linux.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let levels: Vec<usize> = args
        .next()
        .unwrap_or_else(|| "10,20,40".to_owned())
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let rate: u32 = args.next().map_or(Ok(10), |a| a.parse())?;
    let seconds: u32 = args.next().map_or(Ok(20), |a| a.parse())?;
    let staggered = match args.next().as_deref() {
        None | Some("together") => false,
        Some("staggered") => true,
        Some(other) => {
            anyhow::bail!("the fourth argument is `together` or `staggered`, not `{other}`")
        }
    };
    let settings = match args.next().as_deref() {
        None | Some("classic") => ConsumerSettings::default(),
        Some("consumer") => ConsumerSettings {
            group_protocol: GroupProtocol::Consumer,
            assignor: Assignor::Uniform,
            ..ConsumerSettings::default()
        },
        Some(other) => {
            anyhow::bail!("the fifth argument is `classic` or `consumer`, not `{other}`")
        }
    };
    let most = levels.iter().copied().max().unwrap_or(0);

    let labs_dir = tempfile::tempdir()?;
    write_labs(labs_dir.path(), most)?;
    println!(
        "grouplab capacity: {INSTANCES} instances ({:?} protocol) and {rate} messages/s per lab, {seconds} s per level, {} cores, pages producing {}",
        settings.group_protocol,
        std::thread::available_parallelism().map_or(0, usize::from),
        if staggered {
            "staggered over each second"
        } else {
            "together each second"
        },
    );
    println!(
        "| labs | instances | instance RSS avg / max (MiB) | server RSS (MiB) | server CPU | all CPU | callback→page p50 / p99 / max (ms) | produce→page p50 / p99 / max (ms) | messages |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for labs in levels {
        level(labs_dir.path(), labs, rate, seconds, staggered, &settings).await?;
    }
    Ok(())
}

/// Copies Lab 04 `count` times, each with its own topic and group.
fn write_labs(dir: &Path, count: usize) -> anyhow::Result<()> {
    let source = workspace_root().join("labs").join("04-consumer-groups");
    let toml = std::fs::read_to_string(source.join("lab.toml"))?;
    for n in 0..count {
        let folder = dir.join(lab_id(n));
        std::fs::create_dir_all(&folder)?;
        for entry in std::fs::read_dir(&source)? {
            let entry = entry?;
            std::fs::copy(entry.path(), folder.join(entry.file_name()))?;
        }
        let own = toml
            .replace("user-clicks", &topic(n))
            .replace("click-processors", &group(n));
        std::fs::write(folder.join("lab.toml"), own)?;
    }
    Ok(())
}

fn lab_id(n: usize) -> String {
    format!("cap-{n:02}")
}

fn topic(n: usize) -> String {
    format!("cap-{n:02}-clicks")
}

fn group(n: usize) -> String {
    format!("cap-{n:02}-group")
}

async fn level(
    labs_dir: &Path,
    labs: usize,
    rate: u32,
    seconds: u32,
    staggered: bool,
    settings: &ConsumerSettings,
) -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let total = (labs * INSTANCES + 8).to_string();
    let server =
        TestServer::start_with_labs(data.path(), labs_dir, &["--max-instances", &total]).await?;
    let mut pages = Vec::with_capacity(labs);
    for n in 0..labs {
        let mut page = LabClient::open(&server, &lab_id(n)).await?;
        page.create_topic(&topic(n), PARTITIONS).await?;
        for _ in 0..INSTANCES {
            page.start_instance(&group(n), &topic(n), settings.clone())
                .await?;
        }
        pages.push(page);
    }
    for page in &mut pages {
        page.wait_until("every instance owning a partition", DEADLINE, |p| {
            p.running_evenly(INSTANCES, 1)
        })
        .await?;
    }

    let cpu_before = cpu_ticks(server.pid()) + children_ticks(server.pid());
    let server_before = cpu_ticks(server.pid());
    let started = Instant::now();
    // Each page in a task of its own, as each would be a browser: once a second it produces
    // `rate` messages and times them until its received count includes them.
    let mut tasks = Vec::with_capacity(labs);
    for (n, mut page) in pages.into_iter().enumerate() {
        let first_tick = if staggered {
            started + Duration::from_secs(1) * u32::try_from(n)? / u32::try_from(labs)?
        } else {
            started
        };
        tasks.push(tokio::spawn(async move {
            let (latencies, callbacks) = page
                .produce_each_second(&topic(n), rate, seconds, first_tick, DEADLINE)
                .await?;
            let expected = u64::from(rate) * u64::from(seconds);
            let counted = page.received_total();
            anyhow::Ok((latencies, callbacks, counted, expected))
        }));
    }
    let (mut latencies, mut callbacks, mut counted, mut produced) =
        (Vec::new(), Vec::new(), 0u64, 0u64);
    for task in tasks {
        let (lab, lab_callbacks, lab_counted, lab_expected) = task.await??;
        latencies.extend(lab);
        callbacks.extend(lab_callbacks);
        counted += lab_counted;
        produced += lab_expected;
    }
    let wall = started.elapsed().as_secs_f64();
    let all_cpu = (cpu_ticks(server.pid()) + children_ticks(server.pid()) - cpu_before) as f64
        / CLOCK_TICKS_PER_SECOND
        / wall;
    let server_cpu =
        (cpu_ticks(server.pid()) - server_before) as f64 / CLOCK_TICKS_PER_SECOND / wall;

    let instances: Vec<f64> = children_of(server.pid())
        .into_iter()
        .filter_map(|pid| resident_kib(pid).ok())
        .map(|kib| kib as f64 / 1024.0)
        .collect();
    let average = instances.iter().sum::<f64>() / instances.len().max(1) as f64;
    let largest = instances.iter().copied().fold(0.0, f64::max);
    let server_rss = resident_kib(server.pid())? as f64 / 1024.0;
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize].as_millis();
    callbacks.sort_unstable();
    anyhow::ensure!(
        !callbacks.is_empty(),
        "no batch carried its consumers' report times: is the server built from this tree?"
    );
    let event_at =
        |q: f64| callbacks[((callbacks.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0;
    // A broken run cannot print a good number: every message produced is counted once.
    anyhow::ensure!(
        counted == produced,
        "{counted} messages counted for {produced} produced"
    );
    println!(
        "| {labs} | {} | {average:.1} / {largest:.1} | {server_rss:.0} | {:.0}% | {:.0}% | {:.1} / {:.1} / {:.1} | {} / {} / {} | {produced} |",
        instances.len(),
        server_cpu * 100.0,
        all_cpu * 100.0,
        event_at(0.5),
        event_at(0.99),
        event_at(1.0),
        at(0.5),
        at(0.99),
        at(1.0),
    );
    Ok(())
}

/// The CPU time of the server's running children (the instances).
fn children_ticks(pid: u32) -> u64 {
    children_of(pid).into_iter().map(cpu_ticks).sum()
}
