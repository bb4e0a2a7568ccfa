//! A class on one server: `learners` learners join one `--class` server at once (each a
//! websocket client that applies every event as the page does), each opens Lab 04 (which starts
//! their own embedded broker), creates its topic, starts two instances and produces `rate`
//! messages a second for `seconds`.
//!
//! An instructor's dashboard is open throughout: it reports how long after a learner's page
//! showed step 2 passed their tile showed it, and, at the end, how long a class-wide "crash one
//! consumer in each group" took to show on each learner's page.
//!
//! It reports: join → live lab (the join form's POST to the lab's first snapshot) p50/p95/max and
//! for the whole class; the join's own answer (server side); the checkpoint latency (the event
//! after which Lab 04's step 2 holds, to the step shown passed); callback → page p50/p99; the
//! server's memory at rest, with every learner's labs open, and with their instances; memory per
//! learner on the server besides their instances, and per instance process; CPU.
//!
//! The first `browsers` learners (3 by default) join in headless Chromium instead, through the
//! join page's form, and keep their lab page open while the benchmark drives their lab over a
//! websocket of its own with their cookie: it reports their join → live lab in the browser, and
//! how far their page's shown counts trailed the websocket's at the end (an upper bound: each
//! page is read in turn, every 100 ms). Chromium runs on the
//! same 2 cores as the server (a learner's runs on their laptop), so it costs the server CPU.
//!
//!     cargo xtask build && cargo run -p grouplab-benches --bin classroom -- [learners] [messages/s per learner] [seconds] [browsers]

use std::time::{Duration, Instant};

use anyhow::Context;
use fantoccini::Locator;
use grouplab_end2end::{
    Browser, Dashboard, LabClient, TestServer, children_of, cpu_ticks, free_port_range, poll_until,
    resident_kib, shown_received, wait_until_live,
};
use grouplab_protocol::class::InstructorAction;
use grouplab_protocol::{InstanceState, LabSnapshot};
use std::collections::HashMap;

const LAB: &str = "04-consumer-groups";
const TOPIC: &str = "user-clicks";
const GROUP: &str = "click-processors";
const TOKEN: &str = "classroom-benchmark-token";
const DEADLINE: Duration = Duration::from_secs(300);
/// The unit of CPU times in /proc/<pid>/stat.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// What one learner measured.
struct Learner {
    /// The join's own answer, for a learner who joined over HTTP (not in a browser).
    join_answer: Option<Duration>,
    join_to_live: Duration,
    checkpoint: Duration,
    callbacks: Vec<u64>,
    counted: u64,
    produced: u64,
    /// When the learner's websocket had counted every message they produced.
    finished: Instant,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let learners: u16 = args.next().map_or(Ok(40), |a| a.parse())?;
    let rate: u32 = args.next().map_or(Ok(10), |a| a.parse())?;
    let seconds: u32 = args.next().map_or(Ok(20), |a| a.parse())?;
    let browsers: u16 = args.next().map_or(Ok(3), |a| a.parse())?;
    let browsers = browsers.min(learners);

    let data = tempfile::tempdir()?;
    let first = free_port_range(learners);
    let ports = format!("{first}-{}", first + learners - 1);
    let instances = (usize::from(learners) * 2 + 8).to_string();
    let server = TestServer::start_with(
        data.path(),
        &[
            "--class",
            "bench",
            "--access-token",
            TOKEN,
            "--learner-ports",
            &ports,
            "--max-learners",
            &learners.to_string(),
            "--max-instances",
            &instances,
        ],
    )
    .await?;
    let code = server.class_join_code(TOKEN).await?;
    let at_rest = resident_kib(server.pid())? as f64 / 1024.0;
    println!(
        "grouplab classroom: {learners} learners, Lab 04 with 2 instances each, {rate} messages/s per learner for {seconds} s, {} cores",
        std::thread::available_parallelism().map_or(0, usize::from)
    );

    // The browsers are started first: a learner's browser is running before the class begins.
    let mut started_browsers = Vec::new();
    for _ in 0..browsers {
        started_browsers.push(Browser::start().await?);
    }

    // The whole class joins at once; each learner opens the lab as soon as they are in.
    let server = std::sync::Arc::new(server);
    let began = Instant::now();
    let mut joining = Vec::new();
    let mut browser_joins = Vec::new();
    for (n, browser) in started_browsers.into_iter().enumerate() {
        let (server, code) = (std::sync::Arc::clone(&server), code.clone());
        browser_joins.push(tokio::spawn(async move {
            let (cookie, live) = join_in_browser(&browser, &server, &code, n).await?;
            anyhow::Ok((browser, cookie, live, format!("browser{n}")))
        }));
    }
    for n in browsers..learners {
        let (server, code) = (std::sync::Arc::clone(&server), code.clone());
        joining.push(tokio::spawn(async move {
            let sent = Instant::now();
            let (status, cookie) = server.join_class(&code, &format!("learner{n}")).await?;
            let join_answer = sent.elapsed();
            anyhow::ensure!(status == 303, "a join answered {status}");
            let cookie = cookie.context("a join sets a cookie")?;
            let page = LabClient::open_as(&server, LAB, &cookie).await?;
            anyhow::Ok((
                page,
                Some(join_answer),
                sent.elapsed(),
                format!("learner{n}"),
            ))
        }));
    }
    let mut pages = Vec::new();
    let mut open_browsers = Vec::new();
    let mut browser_live = Vec::new();
    for task in browser_joins {
        let (browser, cookie, live, name) = task.await??;
        // The benchmark drives this learner's lab over a websocket of its own, as for the rest.
        pages.push((
            LabClient::open_as(&server, LAB, &cookie).await?,
            None,
            live,
            name,
        ));
        browser_live.push(live);
        open_browsers.push(browser);
    }
    for task in joining {
        pages.push(task.await??);
    }
    let whole_class = began.elapsed();
    let worlds_open = resident_kib(server.pid())? as f64 / 1024.0;

    // The instructor's dashboard notes when each learner's tile first shows step 2 passed.
    let mut desk = Dashboard::open(&server, TOKEN).await?;
    let watching = tokio::spawn(async move {
        let mut tiles_passed: HashMap<String, Instant> = HashMap::new();
        let until = tokio::time::Instant::now() + DEADLINE;
        while tiles_passed.len() < usize::from(learners) {
            for tile in &desk.board.learners {
                if tile.lab.as_ref().is_some_and(|lab| lab.passed >= 2) {
                    tiles_passed
                        .entry(tile.name.clone())
                        .or_insert_with(Instant::now);
                }
            }
            tokio::time::timeout_at(until, desk.next())
                .await
                .context("every tile to show step 2 passed")??;
        }
        anyhow::Ok((desk, tiles_passed))
    });

    // Each learner creates the topic and starts two instances; the checkpoint latency runs from
    // the event after which step 2 holds to the event that shows it passed.
    let mut ready = Vec::new();
    for (mut page, join_answer, join_to_live, name) in pages {
        ready.push(tokio::spawn(async move {
            page.create_topic(TOPIC, 3).await?;
            page.start_instances(GROUP, TOPIC, 2).await?;
            let until = tokio::time::Instant::now() + DEADLINE;
            let mut holds_since = None;
            loop {
                if step_passed(page.view(), 1) {
                    break;
                }
                if holds_since.is_none() && step_2_holds(page.view()) {
                    holds_since = Some(Instant::now());
                }
                tokio::time::timeout_at(until, page.next_event())
                    .await
                    .context("step 2 did not pass in time")??;
            }
            let shown_passed = Instant::now();
            let checkpoint = holds_since.map_or(Duration::ZERO, |since| since.elapsed());
            anyhow::Ok((
                page,
                join_answer,
                join_to_live,
                checkpoint,
                (name, shown_passed),
            ))
        }));
    }
    let mut pages = Vec::new();
    let mut shown_passed = Vec::new();
    for task in ready {
        let (page, join_answer, join_to_live, checkpoint, shown) = task.await??;
        pages.push((page, join_answer, join_to_live, checkpoint));
        shown_passed.push(shown);
    }
    let (mut desk, tiles_passed) = watching.await??;
    // The dashboard keeps reading its boards while the class produces, as the page does.
    let (stop_reading, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let reading = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                read = desk.next() => read?,
            }
        }
        anyhow::Ok(desk)
    });
    let tile_lag: Vec<f64> = shown_passed
        .iter()
        .map(|(name, shown)| {
            tiles_passed.get(name).map_or(f64::INFINITY, |tile| {
                tile.saturating_duration_since(*shown).as_secs_f64() * 1000.0
            })
        })
        .collect();
    let with_instances = resident_kib(server.pid())? as f64 / 1024.0;

    let cpu_before = cpu_ticks(server.pid());
    let started = Instant::now();
    let mut running = Vec::new();
    for (mut page, join_answer, join_to_live, checkpoint) in pages {
        running.push(tokio::spawn(async move {
            let (_, callbacks) = page
                .produce_each_second(TOPIC, rate, seconds, started, DEADLINE)
                .await?;
            let produced = u64::from(rate) * u64::from(seconds);
            anyhow::Ok((
                Learner {
                    join_answer,
                    join_to_live,
                    checkpoint,
                    callbacks,
                    counted: page.received_total(),
                    produced,
                    finished: Instant::now(),
                },
                page,
            ))
        }));
    }
    let mut measured = Vec::new();
    let mut pages = Vec::new();
    for task in running {
        let (learner, page) = task.await??;
        measured.push(learner);
        pages.push(page);
    }
    // The browsers' learners are the first ones: how long after their websocket counted every
    // message their page showed it.
    let mut browser_trail = Vec::new();
    for (browser, learner) in open_browsers.iter().zip(&measured) {
        poll_until("a browser page to show every message", DEADLINE, || async {
            let shown = shown_received(&browser.client).await.ok()?;
            (shown >= learner.counted).then_some(())
        })
        .await?;
        browser_trail.push(learner.finished.elapsed());
    }
    for browser in open_browsers {
        browser.close().await?;
    }

    // The instructor crashes one consumer in each learner's group: the time from the action to
    // each learner's page showing the crash.
    let _ = stop_reading.send(());
    let mut desk = reading.await??;
    let crash_sent = Instant::now();
    let waits: Vec<_> = pages
        .into_iter()
        .map(|mut page| {
            tokio::spawn(async move {
                page.wait_until("the instructor's crash", DEADLINE, |p| {
                    p.view()
                        .instances
                        .iter()
                        .any(|i| matches!(i.state, InstanceState::Crashed { .. }))
                })
                .await?;
                anyhow::Ok(crash_sent.elapsed())
            })
        })
        .collect();
    let report = desk.act(None, InstructorAction::CrashOne).await?;
    anyhow::ensure!(
        report.done.len() == usize::from(learners),
        "the class-wide crash: {report:?}"
    );
    let mut crash_shown = Vec::new();
    for wait in waits {
        crash_shown.push(wait.await??.as_secs_f64() * 1000.0);
    }
    let server_cpu = (cpu_ticks(server.pid()) - cpu_before) as f64
        / CLOCK_TICKS_PER_SECOND
        / started.elapsed().as_secs_f64();
    let instance_rss: Vec<f64> = children_of(server.pid())
        .into_iter()
        .filter_map(|pid| resident_kib(pid).ok())
        .map(|kib| kib as f64 / 1024.0)
        .collect();
    let counted: u64 = measured.iter().map(|l| l.counted).sum();
    let produced: u64 = measured.iter().map(|l| l.produced).sum();
    anyhow::ensure!(
        counted == produced,
        "{counted} messages counted for {produced} produced"
    );

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let joins: Vec<f64> = measured.iter().map(|l| ms(l.join_to_live)).collect();
    let answers: Vec<f64> = measured
        .iter()
        .filter_map(|l| l.join_answer.map(ms))
        .collect();
    let browser_live: Vec<f64> = browser_live.into_iter().map(ms).collect();
    let browser_trail: Vec<f64> = browser_trail.into_iter().map(ms).collect();
    let checkpoints: Vec<f64> = measured.iter().map(|l| ms(l.checkpoint)).collect();
    let callbacks: Vec<f64> = measured
        .iter()
        .flat_map(|l| l.callbacks.iter().map(|&us| us as f64 / 1000.0))
        .collect();
    let n = f64::from(learners);
    println!("| measure | figure |");
    println!("|---|---|");
    println!(
        "| join answered (server side) p50 / p95 / max | {} ms |",
        quantiles(&answers, &[0.5, 0.95, 1.0])
    );
    println!(
        "| join → live lab p50 / p95 / max | {} ms |",
        quantiles(&joins, &[0.5, 0.95, 1.0])
    );
    println!(
        "| the whole class joined and live | {:.1} s |",
        whole_class.as_secs_f64()
    );
    if browsers > 0 {
        println!(
            "| Chromium (learners in it: {browsers}): join form → live lab page p50 / max | {} ms |",
            quantiles(&browser_live, &[0.5, 1.0])
        );
        println!(
            "| Chromium: last message counted by the websocket → shown on the page, max | {} ms |",
            quantiles(&browser_trail, &[1.0])
        );
    }
    println!(
        "| checkpoint (step 2 holds → shown passed) p50 / p99 / max | {} ms |",
        quantiles(&checkpoints, &[0.5, 0.99, 1.0])
    );
    println!(
        "| callback → page p50 / p99 / max | {} ms |",
        quantiles(&callbacks, &[0.5, 0.99, 1.0])
    );
    println!(
        "| a learner's step 2 passes (shown on their page) → the instructor's tile shows it p50 / p99 / max | {} ms |",
        quantiles(&tile_lag, &[0.5, 0.99, 1.0])
    );
    println!(
        "| class-wide \"crash one consumer in each group\" → shown on each page p50 / last | {} ms |",
        quantiles(&crash_shown, &[0.5, 1.0])
    );
    println!(
        "| server RSS: at rest / every learner's lab open / with instances | {at_rest:.0} / {worlds_open:.0} / {with_instances:.0} MiB |"
    );
    println!(
        "| server RSS per learner, besides instances (labs open − at rest, ÷ learners) | {:.1} MiB |",
        (worlds_open - at_rest) / n
    );
    println!(
        "| instance RSS avg / max ({} processes) | {:.1} / {:.1} MiB |",
        instance_rss.len(),
        instance_rss.iter().sum::<f64>() / instance_rss.len().max(1) as f64,
        instance_rss.iter().copied().fold(0.0, f64::max)
    );
    println!(
        "| server CPU while producing | {:.0}% |",
        server_cpu * 100.0
    );
    println!("| messages counted | {counted} |");
    Ok(())
}

/// Learner `n` joins in `browser` through the join page's form, as a learner does, and opens
/// Lab 04 from their course page; their cookie, and the time from the form's submit to the lab
/// page live.
async fn join_in_browser(
    browser: &Browser,
    server: &TestServer,
    code: &str,
    n: usize,
) -> anyhow::Result<(String, Duration)> {
    let page = &browser.client;
    page.goto(&server.url(&format!("/join/{code}"))).await?;
    let name = page
        .wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css("input[name=name]"))
        .await?;
    let submitted = Instant::now();
    name.send_keys(&format!("browser{n}")).await?;
    page.find(Locator::Css("form.door-form button[type=submit]"))
        .await?
        .click()
        .await?;
    page.wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css(&format!("a[href='/labs/{LAB}']")))
        .await?
        .click()
        .await?;
    wait_until_live(page, DEADLINE).await?;
    let live = submitted.elapsed();
    let cookie = page
        .get_named_cookie("grouplab_learner")
        .await
        .context("the join set the learner's cookie in the browser")?;
    Ok((format!("grouplab_learner={}", cookie.value()), live))
}

/// Whether Lab 04's step `index` (0-based) has passed in a learner's view.
fn step_passed(view: &LabSnapshot, index: usize) -> bool {
    view.progress
        .steps
        .get(index)
        .is_some_and(|s| s.passed_at.is_some())
}

/// Whether the view already shows what step 2 checks: two members, each owning a partition.
fn step_2_holds(view: &LabSnapshot) -> bool {
    view.group(GROUP)
        .is_some_and(|g| g.members.len() == 2 && g.members.iter().all(|m| !m.partitions.is_empty()))
}

/// The figures at these quantiles, as `a / b / c`.
fn quantiles(values: &[f64], at: &[f64]) -> String {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    at.iter()
        .map(|q| {
            sorted
                .get(((sorted.len().max(1) - 1) as f64 * q).round() as usize)
                .map_or_else(|| "-".to_owned(), |v| format!("{v:.0}"))
        })
        .collect::<Vec<_>>()
        .join(" / ")
}
