//! The Lab 04 journey in real headless Chromium: every step by clicking, every checkpoint green,
//! and the progress kept across a page reload and a server restart.

use std::time::Duration;

use fantoccini::{Client, Locator};
use grouplab_end2end::external::{Client as Consumer, ExternalConsumer};
use grouplab_end2end::{Browser, LabClient, TestServer, poll_until, shown_received};

const LAB: &str = "04-consumer-groups";
/// Long enough for a crash to be noticed after the lab's 10 s session timeout, with room to spare.
const STEP_DEADLINE: Duration = Duration::from_secs(60);

fn testid(id: &str) -> String {
    format!("[data-testid='{id}']")
}

/// Unfolds the lab's forms, as a learner does with "All controls…", when the element with this
/// test id is in them and they are folded.
async fn unfold(client: &Client, id: &str) -> anyhow::Result<()> {
    client
        .execute(
            "const el = document.querySelector(arguments[0]);
             if (el && el.closest('#lab-forms[hidden]')) {
                 document.querySelector(\"[data-testid='more-controls']\").click();
             }",
            vec![serde_json::Value::String(testid(id))],
        )
        .await?;
    Ok(())
}

/// Clicks an element once it is on the page and nothing covers it (a notice may, for a few
/// seconds). If it never can, the error says why the last try failed and what notices showed.
async fn click(client: &Client, id: &str) -> anyhow::Result<()> {
    let css = testid(id);
    let last_failure = std::cell::RefCell::new(String::new());
    let clicked = poll_until(&format!("{id} to be clickable"), STEP_DEADLINE, || async {
        if let Err(err) = unfold(client, id).await {
            *last_failure.borrow_mut() = err.to_string();
            return None;
        }
        let tried = match client.find(Locator::Css(&css)).await {
            Ok(element) => element.click().await,
            Err(err) => Err(err),
        };
        tried
            .map_err(|err| *last_failure.borrow_mut() = err.to_string())
            .ok()
    })
    .await;
    if let Err(err) = clicked {
        let notices = text(client, "notices").await;
        anyhow::bail!(
            "{err}; the last try: {}\nnotices: {notices:?}",
            last_failure.borrow()
        );
    }
    Ok(())
}

/// The text of the element with this test id, if it is on the page.
async fn text(client: &Client, id: &str) -> Option<String> {
    client
        .find(Locator::Css(&testid(id)))
        .await
        .ok()?
        .text()
        .await
        .ok()
}

async fn wait_text(client: &Client, id: &str, wanted: &str) -> anyhow::Result<()> {
    poll_until(&format!("`{wanted}` in {id}"), STEP_DEADLINE, || async {
        text(client, id)
            .await
            .filter(|t| t.contains(wanted))
            .map(|_| ())
    })
    .await
}

async fn wait_step_passed(client: &Client, step: usize) -> anyhow::Result<()> {
    let css = testid(&format!("step-{step}"));
    let result = poll_until(
        &format!("step {} to pass", step + 1),
        STEP_DEADLINE,
        || async {
            let element = client.find(Locator::Css(&css)).await.ok()?;
            (element.attr("data-passed").await.ok()?? == "true").then_some(())
        },
    )
    .await;
    if result.is_err() {
        let detail = text(client, &format!("step-{step}-detail")).await;
        let instances = text(client, "instances").await;
        let notices = text(client, "notices").await;
        anyhow::bail!(
            "step {} did not pass; the page says: {detail:?}\ninstances: {instances:?}\nnotices: {notices:?}",
            step + 1
        );
    }
    Ok(())
}

async fn open_lab(client: &Client, server: &TestServer) -> anyhow::Result<()> {
    client.goto(&server.url(&format!("/labs/{LAB}"))).await?;
    wait_text(client, "link-status", "live").await
}

/// A server of its own, a browser, and the lab's page open and live.
async fn open_lab_page(lab: &str) -> anyhow::Result<(tempfile::TempDir, TestServer, Browser)> {
    let data = tempfile::tempdir()?;
    let server = TestServer::start(data.path()).await?;
    let browser = Browser::start().await?;
    browser
        .client
        .goto(&server.url(&format!("/labs/{lab}")))
        .await?;
    wait_text(&browser.client, "link-status", "live").await?;
    Ok((data, server, browser))
}

async fn all_steps_passed(client: &Client) -> anyhow::Result<()> {
    for step in 0..6 {
        wait_step_passed(client, step).await?;
    }
    wait_text(client, "progress-count", "6 of 6").await
}

#[tokio::test]
async fn lab_04_journey_turns_every_checkpoint_green_and_keeps_progress() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let mut server = TestServer::start(data.path()).await?;
    let browser = Browser::start().await?;
    let client = &browser.client;

    // From the lab list, by the link, as a learner would.
    client.goto(&server.url("/")).await?;
    client
        .wait()
        .at_most(STEP_DEADLINE)
        .for_element(Locator::LinkText("Consumer groups"))
        .await?
        .click()
        .await?;
    wait_text(client, "link-status", "live").await?;

    // Step 1: the quick bar creates the topic the (folded) form is filled in with.
    click(client, "quick-create-topic").await?;
    wait_step_passed(client, 0).await?;
    client
        .wait()
        .at_most(STEP_DEADLINE)
        .for_element(Locator::Css(&testid("topic-user-clicks")))
        .await?;

    // Step 2: two instances share the partitions.
    click(client, "quick-start").await?;
    wait_text(client, "instances", "A").await?;
    click(client, "quick-start").await?;
    wait_step_passed(client, 1).await?;

    // Step 3: produce, and every message is received once.
    click(client, "quick-produce").await?;
    wait_step_passed(client, 2).await?;
    // The picture comes first: at 1280×720 the lanes, the member cards and the ownership chart
    // are in view without scrolling.
    screenshot(client, "lab-04-two-instances-1280x720").await?;
    picture_in_view(
        client,
        &[
            "topic-user-clicks",
            "instance-A",
            "instance-B",
            "ownership-click-processors",
        ],
    )
    .await?;

    // Step 4: crash A; its card counts down the session timeout, then B takes everything.
    click(client, "crash-A").await?;
    wait_text(client, "status-A", "will notice in").await?;
    wait_step_passed(client, 3).await?;
    wait_text(client, "owns-B", "P0 P1 P2").await?;
    wait_text(client, "status-A", "noticed after").await?;

    // Step 5: a new instance joins.
    click(client, "start-instance").await?;
    wait_step_passed(client, 4).await?;

    // Step 6: a graceful stop hands over at once.
    click(client, "stop-B").await?;
    wait_step_passed(client, 5).await?;
    wait_text(client, "progress-count", "6 of 6").await?;
    chart_gaps_match_the_timeline(client).await?;
    screenshot(client, "lab-04-ownership-after-crash-and-stop").await?;
    browser.viewport(1920, 1080).await?;
    screenshot(client, "lab-04-1920x1080").await?;
    // A phone shows one pane at a time, switched at the top.
    browser.viewport(390, 844).await?;
    screenshot(client, "lab-04-phone-steps").await?;
    click(client, "show-live").await?;
    picture_in_view(client, &["quick-produce"]).await?;
    let steps_shown = client
        .execute(
            "return document.querySelector('.instructions').getClientRects().length > 0;",
            vec![],
        )
        .await?;
    assert_eq!(
        steps_shown,
        serde_json::json!(false),
        "the steps pane still shows"
    );
    screenshot(client, "lab-04-phone-live").await?;
    browser.viewport(1280, 720).await?;
    // Projector mode is in the address, with its shortcuts' legend; P produces.
    let address = client.current_url().await?;
    client
        .goto(&format!(
            "{}?projector",
            address.as_str().trim_end_matches('?')
        ))
        .await?;
    wait_text(client, "link-status", "live").await?;
    wait_text(client, "shortcuts", "crash it").await?;
    screenshot(client, "lab-04-projector").await?;
    // The P key produces the form's 12 messages, which the running instance receives.
    let before = shown_received(client).await?;
    client
        .find(Locator::Css("body"))
        .await?
        .send_keys("p")
        .await?;
    poll_until("the P key to produce", STEP_DEADLINE, || async {
        shown_received(client)
            .await
            .ok()
            .filter(|now| *now >= before + 12)
    })
    .await?;

    // Hints open one at a time; the solution is behind a reveal.
    assert!(text(client, "hint-0").await.is_none(), "hints start closed");
    click(client, "next-hint").await?;
    wait_text(client, "hint-0", "partitions").await?;
    assert!(
        text(client, "hint-1").await.is_none(),
        "only one hint opens per click"
    );
    assert!(
        text(client, "solution").await.is_none(),
        "the solution starts hidden"
    );
    click(client, "reveal-solution").await?;
    wait_text(client, "solution", "on_assign").await?;
    // Its long lines scroll inside the code block, which stays within the instructions pane,
    // and the code is highlighted.
    let fits = client
        .execute(
            "const pre = document.querySelector(\"[data-testid='solution-code'] pre\");
             const pane = document.querySelector('.instructions');
             return [
               pre.getBoundingClientRect().right <= pane.getBoundingClientRect().right + 1,
               getComputedStyle(pre).overflowX,
               pre.querySelectorAll('span[class^=hl-]').length > 0,
             ];",
            vec![],
        )
        .await?;
    assert_eq!(
        fits,
        serde_json::json!([true, "auto", true]),
        "the solution's code block"
    );

    // A reload keeps everything.
    open_lab(client, &server).await?;
    all_steps_passed(client).await?;
    wait_text(client, "hint-0", "partitions").await?;
    wait_text(client, "solution", "on_assign").await?;

    // So does a server restart: progress lives in SQLite.
    server.terminate().await?;
    let server = TestServer::start(data.path()).await?;
    open_lab(client, &server).await?;
    all_steps_passed(client).await?;
    wait_text(client, "solution", "on_assign").await?;

    browser.close().await
}

/// Presses keys on whatever has the focus, as a keyboard does (WebDriver's codes: `\u{E004}`
/// is Tab, `\u{E007}` Enter, `\u{E008}` Shift, `\u{E00D}` Space).
async fn press(client: &Client, keys: &str) -> anyhow::Result<()> {
    client.active_element().await?.send_keys(keys).await?;
    Ok(())
}

/// Presses Tab until the element with this test id has the focus, and checks that the focus
/// shows (an outline); fails if Tab never gets there.
async fn tab_to(client: &Client, id: &str) -> anyhow::Result<()> {
    let focused = "const el = document.activeElement;
                   return el ? [el.dataset.testid || null, getComputedStyle(el).outlineStyle] : null;";
    let mut seen = Vec::new();
    for _ in 0..150 {
        let now = client.execute(focused, vec![]).await?;
        if now[0].as_str() == Some(id) {
            anyhow::ensure!(
                now[1].as_str() != Some("none"),
                "{id} has the focus but shows no outline"
            );
            return Ok(());
        }
        if let Some(on) = now[0].as_str() {
            seen.push(on.to_owned());
        }
        press(client, "\u{E004}").await?;
    }
    anyhow::bail!("Tab never reached {id}; it went through {seen:?}")
}

/// Counts the mouse's and pointer's presses on the page from now on.
async fn count_pointer_presses(client: &Client) -> anyhow::Result<()> {
    client
        .execute(
            "window.pointerPresses = 0;
             for (const kind of ['pointerdown', 'mousedown', 'touchstart']) {
               window.addEventListener(kind, () => window.pointerPresses++, true);
             }",
            vec![],
        )
        .await?;
    Ok(())
}

async fn pointer_presses(client: &Client) -> anyhow::Result<u64> {
    let count = client
        .execute("return window.pointerPresses;", vec![])
        .await?;
    count
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("the page lost its press counter: {count}"))
}

/// Lab 04 with the keyboard alone: Tab and Shift+Tab to reach controls, Enter and Space to press
/// them, the projector's shortcuts for the demo; no pointer event reaches the page.
#[tokio::test]
async fn lab_04_can_be_done_with_the_keyboard_alone() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let server = TestServer::start(data.path()).await?;
    let browser = Browser::start().await?;
    let client = &browser.client;
    client
        .goto(&server.url(&format!("/labs/{LAB}?projector")))
        .await?;
    wait_text(client, "link-status", "live").await?;
    count_pointer_presses(client).await?;

    tab_to(client, "quick-create-topic").await?;
    press(client, "\u{E007}").await?;
    wait_step_passed(client, 0).await?;
    // One Tab past the start button and Shift+Tab back, then Space presses it.
    tab_to(client, "quick-start").await?;
    press(client, "\u{E004}").await?;
    press(client, "\u{E008}\u{E004}\u{E000}").await?;
    let focused = client
        .execute(
            "return document.activeElement?.dataset.testid ?? null;",
            vec![],
        )
        .await?;
    anyhow::ensure!(
        focused.as_str() == Some("quick-start"),
        "Shift+Tab did not go back to the start button: the focus is on {focused}"
    );
    press(client, "\u{E00D}").await?;
    wait_text(client, "instance-A", "RUNNING").await?;
    // The projector's shortcuts act wherever the focus is, outside a form field.
    press(client, "n").await?;
    wait_step_passed(client, 1).await?;
    press(client, "p").await?;
    wait_step_passed(client, 2).await?;
    // X then A crashes A; its card's own Crash button is one Tab stop among the others.
    press(client, "x").await?;
    wait_text(client, "shortcuts", "letter of the instance to crash").await?;
    press(client, "a").await?;
    wait_step_passed(client, 3).await?;
    tab_to(client, "quick-start").await?;
    press(client, "\u{E007}").await?;
    wait_step_passed(client, 4).await?;
    tab_to(client, "stop-B").await?;
    press(client, "\u{E007}").await?;
    wait_step_passed(client, 5).await?;
    wait_text(client, "progress-count", "6 of 6").await?;

    // The hints and the solution open by keyboard too.
    tab_to(client, "next-hint").await?;
    press(client, "\u{E007}").await?;
    wait_text(client, "hint-0", "partitions").await?;
    tab_to(client, "reveal-solution").await?;
    press(client, "\u{E00D}").await?;
    wait_text(client, "solution", "on_assign").await?;
    assert_eq!(
        pointer_presses(client).await?,
        0,
        "a pointer pressed the page"
    );
    browser.close().await
}

#[tokio::test]
async fn bad_form_input_is_explained_in_the_page() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let server = TestServer::start(data.path()).await?;
    let browser = Browser::start().await?;
    let client = &browser.client;
    open_lab(client, &server).await?;

    unfold(client, "topic-name").await?;
    let name = client.find(Locator::Css(&testid("topic-name"))).await?;
    name.clear().await?;
    name.send_keys("my topic").await?;
    click(client, "create-topic").await?;
    wait_text(client, "notices", "contains ` `").await?;

    name.clear().await?;
    name.send_keys("user-clicks").await?;
    let count = client.find(Locator::Css(&testid("produce-count"))).await?;
    count.clear().await?;
    count.send_keys("0").await?;
    click(client, "produce").await?;
    wait_text(client, "notices", "between 1 and 10000").await?;

    browser.close().await
}

/// Broker down and Broker up from the page: the banner says so in plain words at once, and goes
/// when the broker is back.
#[tokio::test]
async fn the_broker_goes_down_and_up_from_the_page() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let server = TestServer::start(data.path()).await?;
    let browser = Browser::start().await?;
    let client = &browser.client;
    open_lab(client, &server).await?;
    wait_text(client, "broker-badge", "· up").await?;

    let pressed = std::time::Instant::now();
    click(client, "broker-switch").await?;
    wait_text(client, "broker-down", "The broker is stopped").await?;
    let shown = pressed.elapsed();
    assert!(shown < Duration::from_secs(2), "the banner took {shown:?}");
    wait_text(client, "broker-down", "Broker up").await?;
    wait_text(client, "broker-badge", "STOPPED").await?;
    wait_text(client, "timeline", "stopped from a lab page").await?;
    screenshot(client, "broker-down").await?;

    wait_text(client, "broker-switch", "Broker up").await?;
    click(client, "broker-switch").await?;
    wait_text(client, "broker-badge", "· up").await?;
    poll_until("the banner to go", STEP_DEADLINE, || async {
        client
            .find(Locator::Css(&testid("broker-down")))
            .await
            .is_err()
            .then_some(())
    })
    .await?;
    wait_text(client, "timeline", "answers again").await?;
    println!(
        "broker-down banner shown {} ms after the click",
        shown.as_millis()
    );
    browser.close().await
}

/// Each element is within the browser's viewport, and neither the window nor the live pane has
/// been scrolled to bring it there.
async fn picture_in_view(client: &Client, ids: &[&str]) -> anyhow::Result<()> {
    let ids: Vec<serde_json::Value> = ids.iter().map(|id| serde_json::json!(testid(id))).collect();
    // The layout settles once the lab's data has arrived, well within this.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let found = client
            .execute(
                "const [w, h] = [window.innerWidth, window.innerHeight];
                 const scrolled = window.scrollY + document.querySelector('.live').scrollTop;
                 const out = Array.from(arguments).filter(css => {
                   const el = document.querySelector(css);
                   if (!el) return true;
                   const r = el.getBoundingClientRect();
                   return r.height === 0 || r.top < 0 || r.left < 0 || r.bottom > h || r.right > w;
                 });
                 return { out, scrolled, size: [w, h] };",
                ids.clone(),
            )
            .await?;
        let out = found["out"].as_array().map_or(0, Vec::len);
        if out == 0 && found["scrolled"] == serde_json::json!(0) {
            return Ok(());
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "not in view without scrolling: {found}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The ownership chart's gaps end where the timeline's "assigned …" entries are, and each
/// handover's longest gap is the time the timeline states, within 100 ms; a crash's gap and a
/// graceful stop's are both there.
async fn chart_gaps_match_the_timeline(client: &Client) -> anyhow::Result<()> {
    let read = client
        .execute(
            "const gaps = Array.from(document.querySelectorAll(
                 \"[data-testid='ownership-click-processors'] svg .gap\"))
               .map(g => [g.dataset.to, Number(g.dataset.ms), g.dataset.cause]);
             const stated = Array.from(document.querySelectorAll(\"[data-testid='timeline'] li\"))
               .filter(li => li.dataset.unownedMs)
               .map(li => [li.dataset.at, Number(li.dataset.unownedMs)]);
             return { gaps, stated };",
            vec![],
        )
        .await?;
    let pairs = |key: &str| -> Vec<(String, u64, String)> {
        read[key]
            .as_array()
            .into_iter()
            .flatten()
            .map(|row| {
                (
                    row[0].as_str().unwrap_or_default().to_owned(),
                    row[1].as_u64().unwrap_or(0),
                    row[2].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    };
    let (gaps, stated) = (pairs("gaps"), pairs("stated"));
    let mut by_end: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for (at, ms, _) in &stated {
        let end = by_end.entry(at.clone()).or_default();
        end.0 = end.0.max(*ms);
    }
    for (to, ms, _) in &gaps {
        if let Some(end) = by_end.get_mut(to) {
            end.1 = end.1.max(*ms);
        }
    }
    anyhow::ensure!(!by_end.is_empty(), "no handover was stated: {read}");
    for (at, (timeline, chart)) in &by_end {
        anyhow::ensure!(
            timeline.abs_diff(*chart) <= 100,
            "the handover at {at}: the timeline says {timeline} ms, the chart {chart} ms; {read}"
        );
    }
    for cause in ["crash", "left"] {
        anyhow::ensure!(
            gaps.iter()
                .any(|(to, ms, c)| c == cause && !to.is_empty() && *ms > 0),
            "the chart has no closed {cause} gap: {read}"
        );
    }
    Ok(())
}

/// Waits until the lane of the consumer named `name` (as its card is) on a chart of what each
/// consumer held satisfies `wanted`, given its count now (empty once it is gone) and the largest
/// count it drew.
async fn wait_held(
    client: &Client,
    chart: &str,
    name: &str,
    wanted: impl Fn(&str, u64) -> bool,
) -> anyhow::Result<()> {
    // The whole history: the bars that count may be older than the default window's 30 s.
    // (Lab 15's crash chart has no window: it shows each crash from its start.)
    client
        .wait()
        .at_most(STEP_DEADLINE)
        .for_element(Locator::Css(&testid(chart)))
        .await?;
    let window = format!("{chart}-window");
    if client.find(Locator::Css(&testid(&window))).await.is_ok() {
        select(client, &window, "whole history").await?;
    }
    let last = std::cell::RefCell::new(serde_json::Value::Null);
    let found = poll_until(&format!("{name}'s lane on {chart}"), STEP_DEADLINE, || {
        let (last, wanted) = (&last, &wanted);
        async move {
            let lane = client
                .execute(
                    "const lanes = Array.from(document.querySelectorAll(arguments[0] + ' .held-lane'));
                     const lane = lanes.find(g => g.dataset.name === arguments[1]);
                     if (!lane) return { lanes: lanes.map(g => g.dataset.name) };
                     const drawn = Array.from(lane.querySelectorAll('.bars rect'))
                       .map(r => Number(r.dataset.held));
                     return [lane.dataset.held, Math.max(0, ...drawn)];",
                    vec![serde_json::json!(testid(chart)), serde_json::json!(name)],
                )
                .await
                .ok()?;
            *last.borrow_mut() = lane.clone();
            let fits = wanted(lane[0].as_str()?, lane[1].as_u64()?);
            fits.then_some(())
        }
    })
    .await;
    found.map_err(|err| anyhow::anyhow!("{err}; the lane: {}", last.borrow()))
}

/// Each consumer's count on the chart is the count its table row shows (`data-{attr}`), once
/// the two have caught up with the same poll.
async fn held_chart_matches_table(
    client: &Client,
    chart: &str,
    rows: &str,
    attr: &str,
) -> anyhow::Result<()> {
    let last = std::cell::RefCell::new(serde_json::Value::Null);
    let found = poll_until(
        &format!("{chart} to match its table"),
        STEP_DEADLINE,
        || {
            let last = &last;
            async move {
                let read = client
                    .execute(
                        "const lanes = {};
                     document.querySelectorAll(arguments[0] + ' .held-lane').forEach(g => {
                       if (g.dataset.consumer) lanes[g.dataset.consumer] = g.dataset.held;
                     });
                     const rows = {};
                     document.querySelectorAll(arguments[1]).forEach(tr => {
                       rows[tr.dataset.consumer] = tr.dataset[arguments[2]];
                     });
                     return { lanes, rows };",
                        vec![
                            serde_json::json!(testid(chart)),
                            serde_json::json!(testid(rows)),
                            serde_json::json!(attr),
                        ],
                    )
                    .await
                    .ok()?;
                let (lanes, rows) = (read["lanes"].as_object()?, read["rows"].as_object()?);
                let matches = !rows.is_empty()
                    && rows
                        .iter()
                        .all(|(consumer, count)| lanes.get(consumer) == Some(count));
                *last.borrow_mut() = read;
                matches.then_some(())
            }
        },
    )
    .await;
    found.map_err(|err| anyhow::anyhow!("{err}; chart and table: {}", last.borrow()))
}

/// Saves what the page shows when `GROUPLAB_SCREENSHOTS` names a folder, to look at by eye.
async fn screenshot(client: &Client, name: &str) -> anyhow::Result<()> {
    if let Some(dir) = std::env::var_os("GROUPLAB_SCREENSHOTS") {
        std::fs::write(
            std::path::Path::new(&dir).join(format!("{name}.png")),
            client.screenshot().await?,
        )?;
    }
    Ok(())
}

#[tokio::test]
async fn lab_04_can_be_done_with_two_copies_of_the_learners_own_script() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let server = TestServer::start(data.path()).await?;
    let bootstrap = server.broker.to_string();
    let browser = Browser::start().await?;
    let client = &browser.client;
    open_lab(client, &server).await?;

    // The page offers the learner's own consumer with this lab's broker filled in.
    wait_text(
        client,
        "consumer-run",
        &format!("python3 starter.py {bootstrap}"),
    )
    .await?;
    click(client, "consumer-tab-2").await?;
    wait_text(client, "consumer-code", "kafkajs").await?;

    click(client, "create-topic").await?;
    wait_step_passed(client, 0).await?;

    // Two terminals, one script.
    let first = ExternalConsumer::start(Consumer::Python, &bootstrap, data.path())?;
    let second = ExternalConsumer::start(Consumer::Python, &bootstrap, data.path())?;
    wait_step_passed(client, 1)
        .await
        .map_err(|e| e.context(format!("{}\n{}", first.output(), second.output())))?;
    wait_text(client, "groups", "lab04-python·").await?;
    wait_text(client, "groups", "client.id lab04-python").await?;
    screenshot(client, "external-two-members").await?;

    // Every message is consumed: the broker's committed offsets are the evidence.
    click(client, "produce").await?;
    wait_step_passed(client, 2).await?;
    wait_text(client, "step-2-detail", "committed up to the log end").await?;

    // kill -9 of one: removed after its session timeout, and the other takes everything.
    first.kill()?;
    wait_step_passed(client, 3).await?;
    screenshot(client, "external-after-crash").await?;

    // A third copy joins; then Ctrl-C of one leaves at once.
    let third = ExternalConsumer::start(Consumer::Python, &bootstrap, data.path())?;
    wait_step_passed(client, 4).await?;
    third.interrupt()?;
    wait_step_passed(client, 5).await?;
    wait_text(client, "progress-count", "6 of 6").await?;
    drop(second);
    browser.close().await
}

#[tokio::test]
async fn lab_04_can_be_done_with_a_page_instance_and_an_external_consumer() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let server = TestServer::start(data.path()).await?;
    let bootstrap = server.broker.to_string();
    let browser = Browser::start().await?;
    let client = &browser.client;
    open_lab(client, &server).await?;

    click(client, "create-topic").await?;
    wait_step_passed(client, 0).await?;
    click(client, "start-instance").await?;
    let external = ExternalConsumer::start(Consumer::Aiokafka, &bootstrap, data.path())?;
    wait_step_passed(client, 1)
        .await
        .map_err(|e| e.context(external.output()))?;
    wait_text(client, "member-lab04-aiokafka", "lab04-aiokafka").await?;
    wait_text(client, "owns-A", "P").await?;

    click(client, "produce").await?;
    wait_step_passed(client, 2).await?;

    // Crash the page's instance: the external consumer takes its partitions after the timeout.
    click(client, "crash-A").await?;
    wait_step_passed(client, 3).await?;
    wait_text(client, "member-owns-lab04-aiokafka", "P0 P1 P2").await?;

    click(client, "start-instance").await?;
    wait_step_passed(client, 4).await?;
    screenshot(client, "mixed-members").await?;

    // Ctrl-C of the learner's consumer is a graceful stop like the page's Stop button.
    external.interrupt()?;
    wait_step_passed(client, 5).await?;
    wait_text(client, "progress-count", "6 of 6").await?;
    browser.close().await
}

/// Presses Stop on an instance's card until the card says it is stopping or stopped.
async fn stop_instance(client: &Client, name: &str) -> anyhow::Result<()> {
    press_until(client, name, "stop", |state| {
        !matches!(state, "running" | "joining" | "starting")
    })
    .await
}

/// Presses Crash on an instance's card until the card says it crashed.
async fn crash_instance(client: &Client, name: &str) -> anyhow::Result<()> {
    press_until(client, name, "crash", |state| state == "crashed").await
}

/// Presses a card's button until the card's `data-state` is `done`: a card is drawn anew as its
/// counts change, and a click that lands as it is replaced does nothing.
async fn press_until(
    client: &Client,
    name: &str,
    button: &str,
    done: fn(&str) -> bool,
) -> anyhow::Result<()> {
    let (button, card) = (
        testid(&format!("{button}-{name}")),
        testid(&format!("instance-{name}")),
    );
    poll_until(
        &format!("{name}'s card to change"),
        STEP_DEADLINE,
        || async {
            let state = client
                .find(Locator::Css(&card))
                .await
                .ok()?
                .attr("data-state")
                .await
                .ok()??;
            if done(&state) {
                return Some(());
            }
            if let Ok(pressed) = client.find(Locator::Css(&button)).await {
                let _ = pressed.click().await;
            }
            None
        },
    )
    .await
}

/// Waits for grouplab's RabbitMQ, which takes seconds to boot; the badge says it is starting
/// meanwhile.
async fn wait_for_rabbitmq(client: &Client) -> anyhow::Result<()> {
    poll_until("RabbitMQ to answer", Duration::from_secs(120), || async {
        text(client, "broker-badge")
            .await
            .filter(|t| t.contains("amqp://") && t.contains("up"))
            .map(|_| ())
    })
    .await
}

/// The names on the instance cards now.
async fn card_names(client: &Client) -> anyhow::Result<Vec<String>> {
    // One script reads every card at once: element by element, a card re-rendered between two
    // reads would go stale and be missed, and a missed card would later look new.
    let names = client
        .execute(
            "return Array.from(document.querySelectorAll('article.instance'))
               .map(card => card.dataset.testid.replace(/^instance-/, ''));",
            vec![],
        )
        .await?;
    Ok(serde_json::from_value(names)?)
}

async fn start_new_instance(client: &Client) -> anyhow::Result<String> {
    let before = card_names(client).await?;
    click(client, "start-instance").await?;
    let name = poll_until("a new instance card", STEP_DEADLINE, || async {
        card_names(client)
            .await
            .ok()?
            .into_iter()
            .find(|name| !before.contains(name))
    })
    .await?;
    wait_text(client, &format!("instance-{name}"), "RUNNING").await?;
    Ok(name)
}

/// Waits until an element shows exactly this text.
async fn wait_exactly(client: &Client, id: &str, wanted: &str) -> anyhow::Result<()> {
    poll_until(&format!("{id} to show {wanted}"), STEP_DEADLINE, || async {
        (text(client, id).await?.trim() == wanted).then_some(())
    })
    .await
}

/// Waits until the number shown in an element is at least `at_least`.
async fn wait_number(client: &Client, id: &str, at_least: u64) -> anyhow::Result<()> {
    poll_until(
        &format!("{id} to reach {at_least}"),
        STEP_DEADLINE,
        || async {
            let shown: u64 = text(client, id).await?.trim().parse().ok()?;
            (shown >= at_least).then_some(())
        },
    )
    .await
}

/// Chooses an option of a select by its value.
async fn select(client: &Client, id: &str, value: &str) -> anyhow::Result<()> {
    unfold(client, id).await?;
    client
        .find(Locator::Css(&testid(id)))
        .await?
        .select_by_value(value)
        .await?;
    Ok(())
}

/// Replaces what an input holds by typing, as a learner does: select all, delete, type. (WebDriver's
/// clear() empties the field without the input event the page's form listens to.)
async fn type_into(client: &Client, id: &str, text: &str) -> anyhow::Result<()> {
    const SELECT_ALL_AND_DELETE: &str = "\u{E009}a\u{E000}\u{E003}";
    unfold(client, id).await?;
    let input = client.find(Locator::Css(&testid(id))).await?;
    input.send_keys(SELECT_ALL_AND_DELETE).await?;
    if !text.is_empty() {
        input.send_keys(text).await?;
    }
    Ok(())
}

/// Lab 07 from the course list to "completed", by clicking and typing: the consumer form's
/// commit mode, processing time and "crash after", and the ledger that shows what was lost and
/// what was processed twice.
#[tokio::test]
async fn lab_07_journey_shows_lost_then_duplicated_messages_and_completes_the_course_entry()
-> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let server = TestServer::start(data.path()).await?;
    let browser = Browser::start().await?;
    let client = &browser.client;

    // The course lists every lab in the folder.
    let labs = std::fs::read_dir(grouplab_end2end::workspace_root().join("labs"))?
        .filter_map(Result::ok)
        .filter(|entry| entry.path().join("lab.toml").is_file())
        .count();
    client.goto(&server.url("/")).await?;
    wait_text(client, "course", &format!("{labs} labs")).await?;
    wait_text(client, "lab-07-commit-loss", "not started").await?;
    client
        .find(Locator::LinkText(
            "When offsets are committed: lost and duplicated messages",
        ))
        .await?
        .click()
        .await?;
    wait_text(client, "link-status", "live").await?;

    click(client, "create-topic").await?;
    type_into(client, "produce-count", "40").await?;
    click(client, "produce").await?;
    wait_step_passed(client, 0).await?;

    // The form comes filled in: auto-commit, 300 ms per message, a crash after 15.
    click(client, "start-instance").await?;
    wait_step_passed(client, 1).await?;
    wait_text(client, "ledger-payments-auto-payments", "5 lost").await?;

    type_into(client, "instance-crash-after", "").await?;
    click(client, "start-instance").await?;
    wait_step_passed(client, 2).await?;

    type_into(client, "instance-group", "payments-safe").await?;
    select(client, "instance-commit", "after_processing").await?;
    type_into(client, "instance-crash-after", "15").await?;
    click(client, "start-instance").await?;
    wait_step_passed(client, 3).await?;

    type_into(client, "instance-crash-after", "").await?;
    click(client, "start-instance").await?;
    wait_step_passed(client, 4).await?;
    wait_text(client, "ledger-payments-safe-payments", "5 processed twice").await?;
    wait_text(client, "progress-count", "5 of 5").await?;
    screenshot(client, "lab-07-done").await?;

    client.goto(&server.url("/")).await?;
    wait_text(client, "lab-07-commit-loss", "completed").await?;
    browser.close().await
}

/// A course author's edit shows in an open page by itself; a broken edit is explained on top of
/// the last good version.
#[tokio::test]
async fn an_open_page_follows_edits_of_its_lab() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let labs = tempfile::tempdir()?;
    let lab = labs.path().join(LAB);
    std::fs::create_dir_all(&lab)?;
    for entry in std::fs::read_dir(grouplab_end2end::workspace_root().join("labs").join(LAB))? {
        let entry = entry?;
        std::fs::copy(entry.path(), lab.join(entry.file_name()))?;
    }
    let server = TestServer::start_with_labs(data.path(), labs.path(), &[]).await?;
    let browser = Browser::start().await?;
    let client = &browser.client;
    open_lab(client, &server).await?;

    let toml = std::fs::read_to_string(lab.join("lab.toml"))?;
    let edited = toml.replace(
        "title = \"Create the topic\"",
        "title = \"Create the click topic\"",
    );
    std::fs::write(lab.join("lab.toml"), &edited)?;
    wait_text(client, "step-0", "Create the click topic").await?;
    wait_text(client, "link-status", "live").await?;

    std::fs::write(
        lab.join("lab.toml"),
        edited.replace("minutes = 45", "minutes = ?"),
    )?;
    wait_text(client, "lab-problem", "line 3").await?;
    wait_text(client, "step-0", "Create the click topic").await?;
    browser.close().await
}

/// Lab 05 by clicking and typing: two groups, the group field of the consumer form, and the
/// produce form's partition field; each group's lanes fill in side by side.
#[tokio::test]
async fn lab_05_journey_reads_one_topic_with_two_groups() -> anyhow::Result<()> {
    let (_data, _server, browser) = open_lab_page("05-fan-out").await?;
    let client = &browser.client;

    click(client, "create-topic").await?;
    wait_step_passed(client, 0).await?;
    click(client, "start-instance").await?;
    wait_text(client, "instances", "A").await?;
    click(client, "start-instance").await?;
    wait_step_passed(client, 1).await?;

    type_into(client, "instance-group", "audit").await?;
    click(client, "start-instance").await?;
    wait_step_passed(client, 2).await?;

    type_into(client, "produce-count", "3").await?;
    type_into(client, "produce-partition", "0").await?;
    click(client, "produce").await?;
    type_into(client, "produce-partition", "1").await?;
    click(client, "produce").await?;
    wait_step_passed(client, 3).await?;
    // Both groups' columns, in the same lanes.
    wait_text(client, "topic-orders", "billing owner").await?;
    wait_text(client, "topic-orders", "audit owner").await?;
    wait_text(client, "progress-count", "4 of 4").await?;
    screenshot(client, "lab-05-done").await?;
    browser.close().await
}

/// Lab 06 by clicking: four instances on three partitions, one idle, then a stop hands its
/// partition to the idle one, and a grown topic puts four members to work.
#[tokio::test]
async fn lab_06_journey_makes_the_idle_member_take_over() -> anyhow::Result<()> {
    let (_data, _server, browser) = open_lab_page("06-over-provisioning").await?;
    let client = &browser.client;

    click(client, "create-topic").await?;
    wait_step_passed(client, 0).await?;
    for name in ["A", "B", "C", "D"] {
        click(client, "start-instance").await?;
        wait_text(client, "instances", name).await?;
    }
    wait_step_passed(client, 1).await?;

    select(client, "produce-keys", "rotating").await?;
    type_into(client, "produce-count", "30").await?;
    click(client, "produce").await?;
    wait_step_passed(client, 2).await?;

    // Stop a member that owns a partition; the idle one takes it.
    let mut working = None;
    for name in ["A", "B", "C", "D"] {
        if text(client, &format!("owns-{name}"))
            .await
            .is_some_and(|owns| owns != "none")
        {
            working = Some(name);
            break;
        }
    }
    let working = working.ok_or_else(|| anyhow::anyhow!("no instance owns a partition"))?;
    stop_instance(client, working).await?;
    wait_step_passed(client, 3).await?;

    // The other fix: a fourth instance again, then a fourth partition for it.
    click(client, "start-instance").await?;
    wait_text(client, "instances", "E").await?;
    type_into(client, "topic-partitions", "4").await?;
    click(client, "add-partitions").await?;
    wait_text(client, "notices", "now has 4 partitions").await?;
    wait_step_passed(client, 4).await?;
    wait_text(client, "progress-count", "5 of 5").await?;
    browser.close().await
}

/// Lab 10 by clicking: rotating keys, the key list, order across partitions, and per-key order
/// kept through two rebalances.
#[tokio::test]
async fn lab_10_journey_keeps_order_per_key() -> anyhow::Result<()> {
    let (_data, _server, browser) = open_lab_page("10-keys-and-ordering").await?;
    let client = &browser.client;

    click(client, "create-topic").await?;
    wait_step_passed(client, 0).await?;
    click(client, "start-instance").await?;
    wait_text(client, "owns-A", "P0 P1 P2").await?;
    select(client, "produce-keys", "rotating").await?;
    type_into(client, "produce-distinct", "6").await?;
    type_into(client, "produce-count", "30").await?;
    click(client, "produce").await?;
    wait_step_passed(client, 1).await?;
    wait_text(client, "keys", "user-5").await?;
    wait_step_passed(client, 2).await?;

    click(client, "start-instance").await?;
    wait_text(client, "owns-B", "P").await?;
    click(client, "produce").await?;
    // A stops at once, as a learner would click: see `labs.rs::keys_keep_their_partition…`.
    stop_instance(client, "A").await?;
    wait_text(client, "owns-B", "P0 P1 P2").await?;
    click(client, "produce").await?;
    wait_step_passed(client, 3).await?;
    wait_text(client, "progress-count", "4 of 4").await?;
    browser.close().await
}

/// Lab 11 by clicking: the poison message blocks, then the dead-letter topic (a field under
/// More settings) lets the partition move on.
#[tokio::test]
async fn lab_11_journey_parks_the_poison_message() -> anyhow::Result<()> {
    let (_data, _server, browser) = open_lab_page("11-retries-and-dead-letters").await?;
    let client = &browser.client;

    click(client, "create-topic").await?;
    wait_text(client, "notices", "created").await?;
    type_into(client, "topic-name", "invoices.dlq").await?;
    type_into(client, "topic-partitions", "1").await?;
    click(client, "create-topic").await?;
    wait_step_passed(client, 0).await?;

    type_into(client, "topic-name", "invoices").await?;
    click(client, "start-instance").await?;
    wait_text(client, "owns-A", "P0").await?;
    type_into(client, "produce-count", "5").await?;
    type_into(client, "produce-partition", "0").await?;
    click(client, "produce").await?;
    type_into(client, "produce-count", "1").await?;
    type_into(client, "produce-text", "poison").await?;
    click(client, "produce").await?;
    type_into(client, "produce-count", "5").await?;
    type_into(client, "produce-text", "").await?;
    click(client, "produce").await?;
    wait_text(client, "failing-A", "Failing P0@5").await?;
    wait_step_passed(client, 1).await?;

    stop_instance(client, "A").await?;
    click(client, "more-settings").await?;
    type_into(client, "instance-dead-letter", "invoices.dlq").await?;
    click(client, "start-instance").await?;
    wait_text(client, "parked-B", "1").await?;
    wait_step_passed(client, 2).await?;
    wait_text(client, "progress-count", "3 of 3").await?;
    browser.close().await
}

/// Lab 08 by clicking: the prefilled slow instance leaves its group, then the worker-queue
/// instance (a checkbox under More settings) keeps it stable.
#[tokio::test]
async fn lab_08_journey_moves_slow_work_off_the_poll_loop() -> anyhow::Result<()> {
    let (_data, _server, browser) = open_lab_page("08-blocked-poll-loop").await?;
    let client = &browser.client;

    click(client, "create-topic").await?;
    type_into(client, "produce-count", "20").await?;
    click(client, "produce").await?;
    wait_step_passed(client, 0).await?;

    click(client, "start-instance").await?;
    wait_text(client, "busy-A", "max poll interval 10 s").await?;
    wait_step_passed(client, 1).await?;

    stop_instance(client, "A").await?;
    click(client, "more-settings").await?;
    click(client, "instance-queue").await?;
    click(client, "start-instance").await?;
    wait_text(client, "queue-B", "waiting").await?;
    wait_step_passed(client, 2).await?;
    wait_text(client, "progress-count", "3 of 3").await?;
    // The removed member's failed commit is the lesson, shown on its card: no notice about it
    // may stay over the controls until someone dismisses it.
    let sticky = client.find_all(Locator::Css(".notice.error")).await?;
    if let Some(first) = sticky.first() {
        anyhow::bail!(
            "an error notice stays on the page: {:?}",
            first.text().await?
        );
    }
    browser.close().await
}

/// Lab 09 by clicking: the assignor and the static member id under More settings.
#[tokio::test]
async fn lab_09_journey_compares_assignors_and_restarts_a_static_member() -> anyhow::Result<()> {
    let (_data, _server, browser) = open_lab_page("09-assignors").await?;
    let client = &browser.client;

    click(client, "create-topic").await?;
    wait_step_passed(client, 0).await?;
    click(client, "start-instance").await?;
    wait_text(client, "instances", "A").await?;
    click(client, "start-instance").await?;
    wait_step_passed(client, 1).await?;
    click(client, "start-instance").await?;
    wait_step_passed(client, 2).await?;

    type_into(client, "instance-group", "sticky-readers").await?;
    click(client, "more-settings").await?;
    let assignor = client
        .find(Locator::Css(&testid("instance-assignor")))
        .await?;
    assignor.select_by_value("cooperative-sticky").await?;
    for (name, owns) in [("D", "P0"), ("E", "P"), ("F", "P")] {
        click(client, "start-instance").await?;
        wait_text(client, &format!("owns-{name}"), owns).await?;
    }
    wait_step_passed(client, 3).await?;

    type_into(client, "instance-group", "static-readers").await?;
    assignor.select_by_value("range").await?;
    type_into(client, "instance-static-id", "reader-1").await?;
    click(client, "start-instance").await?;
    wait_text(client, "owns-G", "P").await?;
    type_into(client, "instance-static-id", "reader-2").await?;
    click(client, "start-instance").await?;
    wait_step_passed(client, 4).await?;

    stop_instance(client, "G").await?;
    wait_text(client, "instance-G", "STOPPED").await?;
    type_into(client, "instance-static-id", "reader-1").await?;
    click(client, "start-instance").await?;
    wait_step_passed(client, 5).await?;
    wait_text(client, "progress-count", "6 of 6").await?;
    browser.close().await
}

/// Lab 16 by clicking: the consumer group protocol chosen in the form switches the assignor to
/// the broker's `uniform`, and the group panel shows the protocol, the epochs and each member's.
#[tokio::test]
async fn lab_16_starts_consumer_protocol_members_from_the_form() -> anyhow::Result<()> {
    let (_data, _server, browser) = open_lab_page("16-new-rebalance-protocol").await?;
    let client = &browser.client;

    click(client, "create-topic").await?;
    wait_step_passed(client, 0).await?;
    type_into(client, "instance-group", "kip848-group").await?;
    click(client, "more-settings").await?;
    select(client, "instance-protocol", "consumer").await?;
    // The broker's assignor is chosen with the consumer protocol.
    wait_value(client, "instance-assignor", "uniform").await?;
    click(client, "start-instance").await?;
    wait_text(client, "owns-A", "P0 P1 P2 P3 P4 P5").await?;
    click(client, "start-instance").await?;
    wait_text(client, "owns-B", "P").await?;
    wait_text(client, "group-facts-kip848-group", "consumer protocol").await?;
    wait_text(client, "group-state-kip848-group", "Stable").await?;
    wait_text(client, "group-facts-kip848-group", "assignment epoch 2").await?;
    wait_text(
        client,
        "group-targets-kip848-group",
        "epoch 2: holds its target",
    )
    .await?;
    wait_text(client, "instance-A", "consumer protocol").await?;
    client
        .execute(
            "document.querySelector('[data-testid=\"groups\"]').scrollIntoView()",
            vec![],
        )
        .await?;
    screenshot(client, "lab16-consumer-protocol-group").await?;

    // Back to classic: the assignor goes back to one the clients run.
    select(client, "instance-protocol", "classic").await?;
    wait_value(client, "instance-assignor", "range").await?;
    browser.close().await
}

/// Waits until the form control `id` holds `wanted`.
async fn wait_value(client: &Client, id: &str, wanted: &str) -> anyhow::Result<()> {
    let control = client.find(Locator::Css(&testid(id))).await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let value = control.prop("value").await?;
        if value.as_deref() == Some(wanted) {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            anyhow::bail!("{id} holds {value:?}, not {wanted:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Lab 12 by clicking: a steady produce, lag and its statuses, more members, then none.
#[tokio::test]
async fn lab_12_journey_builds_drains_and_stops_lag() -> anyhow::Result<()> {
    let (_data, _server, browser) = open_lab_page("12-lag").await?;
    let client = &browser.client;

    click(client, "create-topic").await?;
    wait_step_passed(client, 0).await?;
    click(client, "start-instance").await?;
    wait_text(client, "owns-A", "P0 P1 P2 P3").await?;
    select(client, "produce-keys", "round_robin").await?;
    type_into(client, "produce-rate", "25").await?;
    type_into(client, "produce-seconds", "30").await?;
    click(client, "produce-steadily").await?;
    wait_step_passed(client, 1).await?;
    wait_text(client, "lag-charts", "dashboards").await?;
    wait_text(client, "topic-page-views", "WARNING").await?;

    for name in ["B", "C", "D"] {
        click(client, "start-instance").await?;
        wait_text(client, "instances", name).await?;
    }
    wait_step_passed(client, 2).await?;

    for name in ["A", "B", "C", "D"] {
        stop_instance(client, name).await?;
    }
    click(client, "stop-producing").await?;
    type_into(client, "produce-rate", "10").await?;
    type_into(client, "produce-seconds", "20").await?;
    click(client, "produce-steadily").await?;
    wait_step_passed(client, 3).await?;
    wait_text(client, "topic-page-views", "STOP").await?;
    click(client, "stop-producing").await?;
    wait_text(client, "progress-count", "4 of 4").await?;
    browser.close().await
}

/// The Redis Streams lab by clicking, beside the learner's own redis-py consumers: the stream
/// panel lists every consumer with its pending entries, a crashed instance keeps its entries
/// until a survivor claims them, a poison entry is moved aside, and plain XREAD readers are
/// shown as readers in no group.
#[tokio::test]
async fn lab_13_journey_shares_a_redis_stream_and_claims_a_crashed_consumers_entries()
-> anyhow::Result<()> {
    const LAB: &str = "13-redis-streams";
    let (data, _server, browser) = open_lab_page(LAB).await?;
    let client = &browser.client;
    wait_text(client, "broker-badge", "Redis redis://127.0.0.1:").await?;
    let badge = text(client, "broker-badge").await.unwrap_or_default();
    let url = badge
        .split_whitespace()
        .find(|word| word.starts_with("redis://"))
        .unwrap_or_default()
        .to_owned();

    for name in ["A", "B", "C"] {
        click(client, "start-instance").await?;
        wait_text(client, "instances", name).await?;
    }
    // The card's state is drawn in capitals.
    wait_text(client, "instance-C", "RUNNING").await?;
    type_into(client, "produce-count", "30").await?;
    click(client, "produce").await?;
    wait_step_passed(client, 0).await?;
    wait_text(client, "streams", "30 entries").await?;

    let mut solution = ExternalConsumer::start(
        Consumer::Solution {
            lab: LAB,
            arg: None,
            client_id: "learner-solution",
        },
        &url,
        data.path(),
    )?;
    click(client, "produce").await?;
    wait_text(client, "streams", "yours").await?;
    wait_step_passed(client, 1).await?;
    solution.interrupt()?;
    solution.wait_exit(STEP_DEADLINE).await?;

    for name in ["A", "B", "C"] {
        stop_instance(client, name).await?;
    }
    type_into(client, "instance-processing", "1000").await?;
    click(client, "more-settings").await?;
    type_into(client, "instance-batch", "10").await?;
    click(client, "start-instance").await?;
    wait_text(client, "instance-D", "RUNNING").await?;
    type_into(client, "produce-count", "10").await?;
    click(client, "produce").await?;
    wait_text(client, "received-D", "1").await?;
    crash_instance(client, "D").await?;
    wait_text(client, "status-D", "stays pending").await?;
    wait_step_passed(client, 2).await?;

    type_into(client, "instance-processing", "200").await?;
    type_into(client, "instance-claim", "5000").await?;
    click(client, "start-instance").await?;
    wait_text(client, "timeline", "claimed").await?;
    wait_step_passed(client, 3).await?;
    // The chart shows D holding entries until E claimed them, and holds what the table holds.
    wait_held(client, "held-orders/order-workers", "D", |now, most| {
        now == "0" && most >= 1
    })
    .await?;
    held_chart_matches_table(
        client,
        "held-orders/order-workers",
        "stream-consumer",
        "pending",
    )
    .await?;
    screenshot(client, "lab-13-claimed").await?;

    stop_instance(client, "E").await?;
    // A stopping consumer finishes the read it is blocked in, and would take the poison entry.
    wait_text(client, "instance-E", "STOPPED").await?;
    type_into(client, "instance-claim", "1000").await?;
    type_into(client, "instance-fail-on", "poison").await?;
    type_into(client, "instance-dead-letter", "orders.dead").await?;
    click(client, "start-instance").await?;
    type_into(client, "produce-count", "1").await?;
    type_into(client, "produce-text", "poison").await?;
    click(client, "produce").await?;
    // Only four gone cards are kept, and a dropped card's name is used again: this one is A.
    wait_text(client, "parked-A", "dead-letter stream: 1").await?;
    wait_step_passed(client, 4).await?;

    let reader = Consumer::Script {
        lab: LAB,
        file: "xread_reader.py",
    };
    let _readers = [
        ExternalConsumer::start(reader, &url, data.path())?,
        ExternalConsumer::start(reader, &url, data.path())?,
    ];
    wait_text(client, "loose-readers", "xread").await?;
    type_into(client, "produce-text", "").await?;
    click(client, "produce").await?;
    wait_step_passed(client, 5).await?;
    wait_text(client, "progress-count", "6 of 6").await?;
    screenshot(client, "lab-13-done").await?;
    browser.close().await
}

/// Lab 14 on grouplab's own RabbitMQ: round-robin, the learner's own worker, prefetch, a crash
/// that hands unacked messages back, an auto-ack crash that loses them, and a dead-letter queue.
#[tokio::test]
async fn lab_14_journey_shares_a_rabbitmq_queue_and_requeues_a_crashed_workers_messages()
-> anyhow::Result<()> {
    const LAB: &str = "14-rabbitmq-competing-consumers";
    let (data, _server, browser) = open_lab_page(LAB).await?;
    let client = &browser.client;
    // RabbitMQ takes seconds to boot; the badge says it is starting meanwhile.
    wait_for_rabbitmq(client).await?;
    let badge = text(client, "broker-badge").await.unwrap_or_default();
    let url = badge
        .split_whitespace()
        .find(|word| word.starts_with("amqp://"))
        .unwrap_or_default()
        .to_owned();

    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(start_new_instance(client).await?);
    }
    type_into(client, "produce-count", "30").await?;
    click(client, "produce").await?;
    wait_step_passed(client, 0).await?;
    for name in &workers {
        wait_text(client, &format!("received-{name}"), "10").await?;
    }

    let mut solution = ExternalConsumer::start(
        Consumer::Solution {
            lab: LAB,
            arg: None,
            client_id: "learner-solution",
        },
        &url,
        data.path(),
    )?;
    wait_text(client, "queues", "yours").await?;
    click(client, "produce").await?;
    wait_step_passed(client, 1).await?;
    solution.interrupt()?;
    solution.wait_exit(STEP_DEADLINE).await?;
    for name in &workers {
        stop_instance(client, name).await?;
    }

    type_into(client, "instance-prefetch", "1").await?;
    type_into(client, "instance-processing", "1000").await?;
    let slow = start_new_instance(client).await?;
    type_into(client, "instance-processing", "100").await?;
    start_new_instance(client).await?;
    type_into(client, "produce-count", "20").await?;
    click(client, "produce").await?;
    wait_step_passed(client, 2).await?;
    stop_instance(client, &slow).await?;

    type_into(client, "instance-prefetch", "10").await?;
    type_into(client, "instance-processing", "2000").await?;
    let slow = start_new_instance(client).await?;
    click(client, "produce").await?;
    wait_number(client, &format!("received-{slow}"), 5).await?;
    // RabbitMQ's management API lists a new consumer within its statistics interval (5 s): the
    // crash waits until the queue panel, and so the chart, shows what the slow worker holds.
    poll_until("the queue panel to show the slow worker's unacked messages", STEP_DEADLINE, || async {
        let unacked = client
            .execute(
                "const row = Array.from(document.querySelectorAll(\"[data-testid='queue-consumer']\"))
                   .find(r => r.querySelector('td')?.textContent.trim().startsWith(arguments[0]));
                 return row ? Number(row.dataset.unacked) : null;",
                vec![serde_json::json!(slow)],
            )
            .await
            .ok()?;
        (unacked.as_u64()? >= 5).then_some(())
    })
    .await?;
    crash_instance(client, &slow).await?;
    wait_text(client, &format!("status-{slow}"), "back in the queue").await?;
    wait_step_passed(client, 3).await?;
    wait_text(client, "messages", "redelivered").await?;
    // The chart shows the slow worker holding its prefetch until its crash, then gone.
    wait_held(client, "held-tasks", &slow, |now, most| {
        now.is_empty() && most >= 5
    })
    .await?;
    held_chart_matches_table(client, "held-tasks", "queue-consumer", "unacked").await?;
    screenshot(client, "lab-14-requeued").await?;

    // Let the fast worker finish, then stop it, so the auto-ack worker is alone.
    wait_exactly(client, "ready-tasks", "0").await?;
    wait_exactly(client, "unacked-total-tasks", "0").await?;
    for name in card_names(client).await? {
        let state = text(client, &format!("instance-{name}"))
            .await
            .unwrap_or_default();
        if state.contains("RUNNING") {
            stop_instance(client, &name).await?;
        }
    }
    select(client, "instance-commit", "auto").await?;
    type_into(client, "instance-processing", "1000").await?;
    let careless = start_new_instance(client).await?;
    type_into(client, "produce-count", "10").await?;
    click(client, "produce").await?;
    wait_number(client, &format!("received-{careless}"), 10).await?;
    crash_instance(client, &careless).await?;
    wait_step_passed(client, 4).await?;

    select(client, "instance-commit", "after_processing").await?;
    type_into(client, "instance-processing", "100").await?;
    click(client, "more-settings").await?;
    type_into(client, "instance-fail-on", "poison").await?;
    click(client, "instance-requeue").await?;
    let picky = start_new_instance(client).await?;
    type_into(client, "produce-count", "1").await?;
    type_into(client, "produce-text", "poison").await?;
    click(client, "produce").await?;
    wait_text(client, &format!("parked-{picky}"), "Rejected for good: 1").await?;
    wait_step_passed(client, 5).await?;
    wait_text(client, "queue-panel-tasks.dead", "1 ready").await?;

    let _refused = ExternalConsumer::start(
        Consumer::Script {
            lab: LAB,
            file: "default_exchange.py",
        },
        &url,
        data.path(),
    )?;
    wait_text(
        client,
        "refusals",
        "operation not permitted on the default exchange",
    )
    .await?;
    wait_step_passed(client, 6).await?;
    wait_text(client, "progress-count", "7 of 7").await?;
    screenshot(client, "lab-14-done").await?;
    browser.close().await
}

/// Lab 15 by clicking: a crash on Kafka on its own page, then the same on lab 13's (Redis) and
/// lab 14's (RabbitMQ) pages, and back to lab 15, whose table and steps compare the three.
#[tokio::test]
async fn lab_15_journey_compares_the_same_crash_on_three_brokers() -> anyhow::Result<()> {
    const LAB: &str = "15-same-crash-three-brokers";
    let (_data, server, browser) = open_lab_page(LAB).await?;
    let client = &browser.client;

    click(client, "create-topic").await?;
    wait_text(client, "notices", "created").await?;
    let a = start_new_instance(client).await?;
    let b = start_new_instance(client).await?;
    wait_text(client, &format!("owns-{b}"), "P").await?;
    select(client, "produce-keys", "round_robin").await?;
    type_into(client, "produce-count", "20").await?;
    click(client, "produce").await?;
    wait_number(client, &format!("received-{a}"), 1).await?;
    crash_instance(client, &a).await?;
    wait_text(client, "crashes", "Kafka").await?;
    wait_step_passed(client, 0).await?;

    client.goto(&server.url("/labs/13-redis-streams")).await?;
    wait_text(client, "link-status", "live").await?;
    wait_text(client, "broker-badge", "redis://").await?;
    type_into(client, "instance-processing", "1000").await?;
    click(client, "more-settings").await?;
    type_into(client, "instance-batch", "10").await?;
    let slow = start_new_instance(client).await?;
    type_into(client, "produce-count", "10").await?;
    click(client, "produce").await?;
    wait_number(client, &format!("received-{slow}"), 1).await?;
    crash_instance(client, &slow).await?;
    type_into(client, "instance-processing", "100").await?;
    type_into(client, "instance-claim", "5000").await?;
    start_new_instance(client).await?;
    wait_text(client, "timeline", "claimed").await?;

    client
        .goto(&server.url("/labs/14-rabbitmq-competing-consumers"))
        .await?;
    wait_text(client, "link-status", "live").await?;
    wait_for_rabbitmq(client).await?;
    type_into(client, "instance-prefetch", "10").await?;
    type_into(client, "instance-processing", "2000").await?;
    let slow = start_new_instance(client).await?;
    type_into(client, "instance-prefetch", "1").await?;
    type_into(client, "instance-processing", "100").await?;
    start_new_instance(client).await?;
    type_into(client, "produce-count", "20").await?;
    click(client, "produce").await?;
    wait_number(client, &format!("received-{slow}"), 5).await?;
    crash_instance(client, &slow).await?;
    wait_text(client, &format!("status-{slow}"), "back in the queue").await?;

    client.goto(&server.url(&format!("/labs/{LAB}"))).await?;
    wait_text(client, "link-status", "live").await?;
    wait_step_passed(client, 1).await?;
    wait_step_passed(client, 2).await?;
    wait_text(client, "progress-count", "3 of 3").await?;
    for broker in ["Kafka", "Redis Streams", "RabbitMQ"] {
        wait_text(client, &format!("crash-{broker}"), " s").await?;
        // Its lane on the chart: work held from the crash, none once another consumer had it.
        wait_held(client, "crash-chart", broker, |now, most| {
            now == "0" && most >= 1
        })
        .await?;
    }
    screenshot(client, "lab-15-compared").await?;
    browser.close().await
}

/// The violations of impact serious or critical that axe-core (pinned in end2end/clients) finds
/// on the page as it is now; `state` names it in the failure.
async fn no_serious_accessibility_violations(client: &Client, state: &str) -> anyhow::Result<()> {
    let script =
        grouplab_end2end::workspace_root().join("end2end/clients/node_modules/axe-core/axe.min.js");
    let axe = std::fs::read_to_string(&script).map_err(|err| {
        anyhow::anyhow!(
            "{}: {err}; scripts/setup.sh --tests installs axe-core",
            script.display()
        )
    })?;
    client.execute(&axe, vec![]).await?;
    let found = client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             window.axe.run(document, { resultTypes: ['violations'] })
               .then(result => done(result.violations
                 .filter(v => v.impact === 'serious' || v.impact === 'critical')
                 .map(v => ({ id: v.id, impact: v.impact, help: v.help,
                              nodes: v.nodes.slice(0, 4).map(n => n.target.join(' ')) }))))
               .catch(err => done([{ id: 'axe failed', help: String(err) }]));",
            vec![],
        )
        .await?;
    anyhow::ensure!(
        found.as_array().is_some_and(Vec::is_empty),
        "{state}: {}",
        serde_json::to_string_pretty(&found)?
    );
    Ok(())
}

/// axe-core on the course page and on lab pages in the states a class sees: empty, with
/// instances running, after a crash, in projector mode, and the Redis and RabbitMQ labs.
#[tokio::test]
async fn the_pages_have_no_serious_accessibility_violations() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let server = TestServer::start(data.path()).await?;
    let browser = Browser::start().await?;
    let client = &browser.client;

    client.goto(&server.url("/")).await?;
    wait_text(client, "course", "labs").await?;
    no_serious_accessibility_violations(client, "the course page").await?;

    open_lab(client, &server).await?;
    no_serious_accessibility_violations(client, "Lab 04, empty").await?;
    click(client, "quick-create-topic").await?;
    wait_step_passed(client, 0).await?;
    click(client, "quick-start").await?;
    wait_text(client, "instances", "A").await?;
    click(client, "quick-start").await?;
    wait_step_passed(client, 1).await?;
    no_serious_accessibility_violations(client, "Lab 04, two instances").await?;
    click(client, "more-controls").await?;
    no_serious_accessibility_violations(client, "Lab 04, the forms unfolded").await?;
    click(client, "crash-A").await?;
    wait_text(client, "status-A", "noticed after").await?;
    no_serious_accessibility_violations(client, "Lab 04, after a crash").await?;
    client
        .goto(&server.url(&format!("/labs/{LAB}?projector")))
        .await?;
    wait_text(client, "link-status", "live").await?;
    no_serious_accessibility_violations(client, "Lab 04 in projector mode").await?;
    browser.close().await
}

/// Every lab, with two instances running and messages produced, shows its picture first at
/// 1280×720, in plain and in projector mode: the partitions (or the stream's or queue's
/// consumers), the instance cards and the chart over time, in view without scrolling. axe-core
/// finds nothing serious on each.
#[tokio::test]
async fn every_lab_shows_its_picture_without_scrolling() -> anyhow::Result<()> {
    // The lab, what shows its partitions or consumers, and its chart over time.
    const LABS: [(&str, &str, &str); 12] = [
        (
            "04-consumer-groups",
            "topic-user-clicks",
            "ownership-click-processors",
        ),
        ("05-fan-out", "topic-orders", "ownership-billing"),
        (
            "06-over-provisioning",
            "topic-sensor-readings",
            "ownership-sensor-readers",
        ),
        (
            "07-commit-loss",
            "topic-payments",
            "ownership-payments-auto",
        ),
        (
            "08-blocked-poll-loop",
            "topic-thumbnails",
            "ownership-resizers",
        ),
        ("09-assignors", "topic-events", "ownership-eager-readers"),
        (
            "10-keys-and-ordering",
            "topic-user-actions",
            "ownership-action-processors",
        ),
        (
            "11-retries-and-dead-letters",
            "topic-invoices",
            "ownership-invoice-senders",
        ),
        ("12-lag", "topic-page-views", "ownership-dashboards"),
        (
            "13-redis-streams",
            "stream-consumer",
            "held-orders/order-workers",
        ),
        (
            "14-rabbitmq-competing-consumers",
            "queue-consumer",
            "held-tasks",
        ),
        (
            "15-same-crash-three-brokers",
            "topic-jobs",
            "ownership-job-workers",
        ),
    ];
    let data = tempfile::tempdir()?;
    let server = TestServer::start(data.path()).await?;
    let browser = Browser::start().await?;
    let client = &browser.client;
    let mut failures = Vec::new();
    for (lab, partitions, chart) in LABS {
        client.goto(&server.url(&format!("/labs/{lab}"))).await?;
        wait_text(client, "link-status", "live").await?;
        if lab.starts_with("13-") {
            wait_text(client, "broker-badge", "redis://").await?;
        } else if lab.starts_with("14-") {
            wait_for_rabbitmq(client).await?;
        } else {
            click(client, "quick-create-topic").await?;
            client
                .wait()
                .at_most(STEP_DEADLINE)
                .for_element(Locator::Css(&testid(partitions)))
                .await?;
        }
        for name in ["A", "B"] {
            click(client, "quick-start").await?;
            wait_text(client, &format!("instance-{name}"), "RUNNING").await?;
        }
        click(client, "quick-produce").await?;
        // The messages may all land on one partition, so either instance may be the one to get them.
        poll_until(
            "an instance to receive a message",
            STEP_DEADLINE,
            || async {
                let mut received = 0;
                for name in ["A", "B"] {
                    received += text(client, &format!("received-{name}"))
                        .await?
                        .trim()
                        .parse::<u64>()
                        .ok()?;
                }
                (received >= 1).then_some(())
            },
        )
        .await?;
        let picture = [partitions, "instance-A", "instance-B", chart];
        if let Err(err) = picture_in_view(client, &picture).await {
            failures.push(format!("{lab}: {err}"));
        }
        screenshot(client, &format!("lab-{lab}-1280x720")).await?;
        if let Err(err) = no_serious_accessibility_violations(client, lab).await {
            failures.push(format!("{lab}: {err}"));
        }
        client
            .goto(&server.url(&format!("/labs/{lab}?projector")))
            .await?;
        wait_text(client, "shortcuts", "crash it").await?;
        // In projector mode's large type, Lab 09's six partitions and three groups leave the
        // lower lanes of its chart below the fold (by about 130 px): the table and cards must fit.
        let picture = if lab.starts_with("09-") {
            &picture[..3]
        } else {
            &picture[..]
        };
        if let Err(err) = picture_in_view(client, picture).await {
            failures.push(format!("{lab} in projector mode: {err}"));
        }
        screenshot(client, &format!("lab-{lab}-projector")).await?;
    }
    anyhow::ensure!(failures.is_empty(), "{}", failures.join("\n"));
    browser.close().await
}

/// Joins the class in `client`'s browser as `name`, through the join link's form, and opens Lab 04.
async fn join_class(
    client: &Client,
    server: &TestServer,
    code: &str,
    name: &str,
) -> anyhow::Result<()> {
    client.goto(&server.url(&format!("/join/{code}"))).await?;
    client
        .wait()
        .at_most(STEP_DEADLINE)
        .for_element(Locator::Css("input[name=name]"))
        .await?
        .send_keys(name)
        .await?;
    client
        .find(Locator::Css("form.door-form button[type=submit]"))
        .await?
        .click()
        .await?;
    wait_text(client, "learner", name).await?;
    open_lab(client, server).await?;
    wait_text(client, "learner-name", name).await
}

#[tokio::test]
async fn two_learners_in_two_browsers_and_their_instructor_on_the_dashboard() -> anyhow::Result<()>
{
    let data = tempfile::tempdir()?;
    let first = grouplab_end2end::free_port_range(2);
    let ports = format!("{first}-{}", first + 1);
    let token = "instructor-token-for-tests";
    let server = TestServer::start_with(
        data.path(),
        &[
            "--class",
            "kafka-101",
            "--access-token",
            token,
            "--learner-ports",
            &ports,
        ],
    )
    .await?;
    let code = server.class_join_code(token).await?;
    // Two browsers: two cookie jars, as two learners' laptops.
    let ada_browser = Browser::start().await?;
    let bob_browser = Browser::start().await?;
    let (ada, bob) = (&ada_browser.client, &bob_browser.client);
    join_class(ada, &server, &code, "Ada").await?;
    join_class(bob, &server, &code, "Bob").await?;

    // Ada does steps 1 to 3 with two page instances.
    click(ada, "quick-create-topic").await?;
    wait_step_passed(ada, 0).await?;
    click(ada, "quick-start").await?;
    wait_text(ada, "instances", "A").await?;
    click(ada, "quick-start").await?;
    wait_step_passed(ada, 1).await?;
    click(ada, "quick-produce").await?;
    wait_step_passed(ada, 2).await?;
    screenshot(ada, "class-ada-lab-04").await?;

    // Bob's page shows none of it: no topic, no instance, no messages, no progress.
    wait_text(bob, "progress-count", "0 of 6").await?;
    assert!(
        bob.find(Locator::Css(&testid("topic-user-clicks")))
            .await
            .is_err()
    );
    assert!(bob.find(Locator::Css(&testid("instance-A"))).await.is_err());
    assert_eq!(shown_received(bob).await?, 0);

    // Bob's own topic and one instance, under the same names: still none of Ada's.
    click(bob, "quick-create-topic").await?;
    wait_step_passed(bob, 0).await?;
    click(bob, "quick-start").await?;
    wait_text(bob, "instances", "A").await?;
    wait_text(bob, "progress-count", "1 of 6").await?;
    assert!(
        bob.find(Locator::Css(&testid("instance-B"))).await.is_err(),
        "Ada's B is not Bob's"
    );
    assert_eq!(
        shown_received(bob).await?,
        0,
        "Ada's messages are not in Bob's lab"
    );
    wait_text(ada, "progress-count", "3 of 6").await?;
    screenshot(bob, "class-bob-lab-04").await?;

    // The instructor's dashboard, in a third browser: a tile per learner, live.
    let desk_browser = Browser::start().await?;
    let desk = &desk_browser.client;
    desk.goto(&server.url(&format!("/class?token={token}")))
        .await?;
    wait_text(desk, "board-link", "live").await?;
    wait_text(desk, "tile-Ada", "step 4 of 6").await?;
    wait_text(desk, "tile-Bob", "step 2 of 6").await?;
    wait_text(desk, "funnel-04-consumer-groups", "2 opened").await?;

    // Bob sends the same bad command three times (as a page of his would): he is flagged stuck.
    let bob_cookie = bob.get_named_cookie("grouplab_learner").await?;
    let mut bob_socket = LabClient::open_as(
        &server,
        LAB,
        &format!("grouplab_learner={}", bob_cookie.value()),
    )
    .await?;
    for _ in 0..3 {
        bob_socket
            .send(&grouplab_protocol::ClientCommand::CreateTopic {
                topic: "no spaces allowed".into(),
                partitions: 3,
            })
            .await?;
    }
    wait_text(desk, "tile-Bob", "same error 3 times").await?;
    screenshot(desk, "class-dashboard-bob-stuck").await?;

    // A message to Ada alone: her page shows it, Bob's does not; once dismissed, a reload of
    // her page does not bring it back.
    desk.find(Locator::Css(&testid("message-to")))
        .await?
        .select_by_label("Ada")
        .await?;
    type_into(desk, "message-text", "Ada, a word please").await?;
    click(desk, "send-message").await?;
    wait_text(ada, "instructor-message", "Ada, a word please").await?;
    wait_text(desk, "action-done", "Ada").await?;
    assert!(
        bob.find(Locator::Css(&testid("instructor-banner")))
            .await
            .is_err(),
        "the message was Ada's alone"
    );
    click(ada, "dismiss-banner").await?;
    ada.refresh().await?;
    wait_text(ada, "link-status", "live").await?;
    wait_text(ada, "progress-count", "3 of 6").await?;
    assert!(
        ada.find(Locator::Css(&testid("instructor-banner")))
            .await
            .is_err(),
        "a dismissed message stays dismissed"
    );

    // The instructor gives Bob a hint, then passes his step 2 for him.
    click_css(desk, "[data-testid='tile-Bob'] [data-testid='give-hint']").await?;
    wait_text(bob, "hint-0", "").await?;
    click_css(desk, "[data-testid='tile-Bob'] [data-testid='pass-step']").await?;
    wait_text(bob, "progress-count", "2 of 6").await?;
    wait_text(desk, "tile-Bob", "step 3 of 6").await?;
    wait_text(bob, "timeline", "passed the open step").await?;

    // Crash one consumer in each group: both learners' pages show the crash, marked as the
    // instructor's, and the rebalance that hands the crashed one's partitions over.
    click(bob, "quick-start").await?;
    wait_text(bob, "instances", "B").await?;
    wait_text(desk, "tile-Bob", "2 instance(s)").await?;
    click(desk, "crash-each").await?;
    wait_text(desk, "action-done", "Bob").await?;
    for page in [ada, bob] {
        wait_text(page, "timeline", "crashed one consumer").await?;
        poll_until("a crashed card", STEP_DEADLINE, || async {
            page.find(Locator::Css("[data-state='crashed']"))
                .await
                .ok()
                .map(|_| ())
        })
        .await?;
        wait_text(page, "timeline", "without a working owner").await?;
    }
    screenshot(desk, "class-dashboard-after-crash").await?;
    screenshot(bob, "class-bob-after-crash").await?;

    // Watching Bob's lab, read-only: his view, with no control that acts.
    click_css(desk, "[data-testid='tile-Bob'] [data-testid='watch']").await?;
    wait_text(desk, "watching", "Bob's lab, read-only").await?;
    wait_text(desk, "link-status", "live").await?;
    wait_text(desk, "progress-count", "2 of 6").await?;
    // Bob's running instance B is shown, without its Stop and Crash buttons.
    poll_until(
        "Bob's running B in the read-only view",
        STEP_DEADLINE,
        || async {
            desk.find(Locator::Css(
                "[data-testid='instance-B'][data-state='running']",
            ))
            .await
            .ok()
            .map(|_| ())
        },
    )
    .await?;
    for control in [
        testid("quick-start"),
        testid("next-hint"),
        testid("clear-progress"),
        "[data-testid^='stop-']".to_owned(),
        "[data-testid^='crash-']".to_owned(),
    ] {
        assert!(
            desk.find(Locator::Css(&control)).await.is_err(),
            "the read-only view has no {control}"
        );
    }
    screenshot(desk, "class-watching-bob").await?;

    // Resetting Ada's lab from the dashboard.
    desk.goto(&server.url("/class")).await?;
    wait_text(desk, "board-link", "live").await?;
    click_css(desk, "[data-testid='tile-Ada'] [data-testid='reset-lab']").await?;
    wait_text(ada, "timeline", "reset the lab").await?;
    poll_until("Ada's topic to go", STEP_DEADLINE, || async {
        ada.find(Locator::Css(&testid("topic-user-clicks")))
            .await
            .is_err()
            .then_some(())
    })
    .await?;
    drop(bob_socket);
    desk_browser.close().await?;
    ada_browser.close().await?;
    bob_browser.close().await?;
    Ok(())
}

/// Clicks the element `css` selects, once it is on the page.
async fn click_css(client: &Client, css: &str) -> anyhow::Result<()> {
    poll_until(&format!("{css} to be clickable"), STEP_DEADLINE, || async {
        client
            .find(Locator::Css(css))
            .await
            .ok()?
            .click()
            .await
            .ok()
    })
    .await
}
