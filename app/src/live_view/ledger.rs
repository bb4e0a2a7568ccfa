//! What became of each message (the ledger), where keys landed, and lag over time.

use grouplab_protocol::{LagView, LedgerView};
use leptos::prelude::*;

use super::with_view;
use crate::live::Live;

/// What became of each message: processed, lost, processed twice, per group and topic.
#[component]
pub(super) fn Ledgers() -> impl IntoView {
    let live = expect_context::<Live>();
    let ledgers = move || with_view(live, |v| v.ledgers.clone()).unwrap_or_default();
    view! {
        <Show when=move || with_view(live, |v| !v.ledgers.is_empty()).unwrap_or(false)>
            <div class="ledgers" data-testid="ledgers">
                <h3>"Ledger"</h3>
                <p class="muted">"Every message the page's instances received: processed, lost (committed but never processed), processed twice."</p>
                <For each=ledgers key=|l: &LedgerView| format!("{l:?}") let:ledger>
                    <LedgerRow ledger />
                </For>
            </div>
        </Show>
    }
}

#[component]
fn LedgerRow(ledger: LedgerView) -> impl IntoView {
    let offsets = |sample: &[(i32, i64)], total: u64| {
        let mut shown: Vec<String> = sample.iter().map(|(p, o)| format!("P{p}@{o}")).collect();
        if total as usize > sample.len() {
            shown.push("…".to_owned());
        }
        shown.join(" ")
    };
    let lost = offsets(&ledger.lost_sample, ledger.lost);
    let twice = offsets(&ledger.duplicated_sample, ledger.duplicated);
    let id = format!("ledger-{}-{}", ledger.group, ledger.topic);
    view! {
        <div class="ledger" data-testid=id>
            <p>
                <strong>{ledger.group.clone()}</strong> " on " <code>{ledger.topic.clone()}</code> ": "
                <span data-testid="ledger-processed">{ledger.processed}</span> " processed · "
                <span class:bad={ledger.lost > 0} data-testid="ledger-lost">{ledger.lost}</span> " lost · "
                <span class:warn={ledger.duplicated > 0} data-testid="ledger-duplicated">{ledger.duplicated}</span> " processed twice"
                {(!ledger.exact).then_some(" (a floor: the record reached its cap)")}
            </p>
            {(ledger.lost > 0).then(|| view! { <p class="offsets bad">"Lost: " <code>{lost}</code></p> })}
            {(ledger.duplicated > 0).then(|| view! { <p class="offsets warn">"Twice: " <code>{twice}</code></p> })}
            {(ledger.order.keyed > 0 || ledger.order.overtaken > 0).then(|| view! {
                <p data-testid="ledger-order">
                    {format!(
                        "Order: {} keyed message(s), {} out of order within their key; {} arrived after a later message from another partition",
                        ledger.order.keyed, ledger.order.out_of_key_order, ledger.order.overtaken
                    )}
                    {ledger.order.example.clone().map(|e| format!(" ({e})"))}
                </p>
            })}
            {(!ledger.unknown.is_empty()).then(|| view! {
                <p class="muted">{format!(
                    "Partition(s) {:?} were owned by your own consumer at some point: grouplab sees its work only through its commits, so they are not judged here.",
                    ledger.unknown
                )}</p>
            })}
        </div>
    }
}

/// Where each key landed: the default partitioner hashes the key, so a key keeps its partition.
#[component]
pub(super) fn Keys() -> impl IntoView {
    let live = expect_context::<Live>();
    let keys = move || with_view(live, |v| v.keys.clone()).unwrap_or_default();
    view! {
        <Show when=move || with_view(live, |v| !v.keys.is_empty()).unwrap_or(false)>
            <div class="keys" data-testid="keys">
                <h3>"Keys → partitions"</h3>
                <ul>
                    {move || keys().into_iter().map(|k| view! {
                        <li class:split={k.partitions.len() > 1}>
                            <code>{k.key.clone()}</code> " → "
                            {k.partitions.iter().map(|p| format!("P{p}")).collect::<Vec<_>>().join(", ")}
                            {(k.partitions.len() > 1).then_some(" (partition chosen by hand)")}
                        </li>
                    }).collect_view()}
                </ul>
            </div>
        </Show>
    }
}

/// Each group's total lag over time, as a line, with how fast each of its instances processes.
#[component]
pub(super) fn LagCharts() -> impl IntoView {
    let live = expect_context::<Live>();
    let lags = move || with_view(live, |v| v.lag.clone()).unwrap_or_default();
    view! {
        <Show when=move || with_view(live, |v| v.lag.iter().any(|l| l.chart.iter().any(|(_, lag)| *lag > 0))).unwrap_or(false)>
            <div class="lag-charts" data-testid="lag-charts">
                <h3>"Lag over time"</h3>
                {move || lags().into_iter().map(|lag| view! { <LagChart lag /> }).collect_view()}
            </div>
        </Show>
    }
}

#[component]
fn LagChart(lag: LagView) -> impl IntoView {
    let live = expect_context::<Live>();
    const WIDTH: f64 = 320.0;
    const HEIGHT: f64 = 80.0;
    let (Some(first), Some(last)) = (lag.chart.first(), lag.chart.last()) else {
        return None;
    };
    let span = (last.0.saturating_sub(first.0)).max(1) as f64;
    let top = lag.chart.iter().map(|(_, l)| *l).max().unwrap_or(0).max(1) as f64;
    let points: Vec<String> = lag
        .chart
        .iter()
        .map(|(at, l)| {
            let x = (at.saturating_sub(first.0)) as f64 / span * WIDTH;
            let y = HEIGHT - *l as f64 / top * HEIGHT;
            format!("{x:.1},{y:.1}")
        })
        .collect();
    let rates: Vec<String> = lag
        .rates
        .iter()
        .map(|(id, rate)| {
            let name = with_view(live, |v| v.instance(*id).map(|i| i.name.clone()))
                .flatten()
                .unwrap_or_else(|| "?".to_owned());
            format!("{name} {rate:.1}/s")
        })
        .collect();
    Some(view! {
        <figure class="lag-chart" data-testid=format!("lag-{}-{}", lag.group, lag.topic)>
            <figcaption>
                <strong>{lag.group.clone()}</strong> " on " <code>{lag.topic.clone()}</code>
                {format!(": {} behind (peak {} in the last {:.0} s)", last.1, top as i64, span / 1000.0)}
            </figcaption>
            <svg viewBox=format!("0 0 {WIDTH} {HEIGHT}") preserveAspectRatio="none" role="img" aria-label="total lag over time">
                <polyline points=points.join(" ") fill="none" stroke="currentColor" stroke-width="2" />
            </svg>
            {(!rates.is_empty()).then(|| view! { <p class="muted">"Processing: " {rates.join(" · ")}</p> })}
        </figure>
    })
}
