//! What each Redis or RabbitMQ consumer held over time, the counterpart of Kafka's partition
//! ownership: a lane per consumer with its pending entries or unacked messages as a step area
//! (its name and count written on it, not colour alone), a lane for what waits, starts, stops,
//! crashes and claims marked on the time axis. It follows the present, can be paused and scrolled
//! back, and has a table as its text alternative. The data is
//! [`grouplab_protocol::held::held_chart`], read from the samples the server keeps.

use grouplab_protocol::held::{HeldChart, Step, held_chart};
use grouplab_protocol::{LabSnapshot, TimelineKind};
use leptos::prelude::*;

use super::time_axis::{self, AXIS, AxisMark, MARKS, TimeWindow, WIDTH, clock_tick};
use super::{clock, colour_class, with_view};
use crate::live::Live;

/// The lane names' column, and a lane.
const LABELS: f64 = 128.0;
const LANE: f64 = 22.0;
const LANE_GAP: f64 = 4.0;

/// One chart per stream group or queue that has had a consumer.
#[component]
pub(super) fn HeldCharts() -> impl IntoView {
    let live = expect_context::<Live>();
    let sources = move || {
        with_view(live, |v| {
            let mut sources: Vec<String> = v
                .held
                .iter()
                .filter(|s| !s.consumers.is_empty())
                .map(|s| s.source.clone())
                .collect();
            sources.sort();
            sources.dedup();
            sources
        })
        .unwrap_or_default()
    };
    view! {
        <div class="ownership held">
            <For each=sources key=|s: &String| s.clone() let:source>
                <HeldChartView source />
            </For>
        </div>
    }
}

#[component]
fn HeldChartView(source: String) -> impl IntoView {
    let live = expect_context::<Live>();
    let chart = {
        let source = source.clone();
        Memo::new(move |_| with_view(live, |v| held_chart(&v.held, &source)).unwrap_or_default())
    };
    let now = Signal::derive(move || {
        let newest = with_view(live, |v| v.held.last().map(|s| s.at))
            .flatten()
            .unwrap_or(0);
        live.now.get().max(newest)
    });
    let time = TimeWindow::new(now, Signal::derive(move || chart.with(|c| c.start)));
    let (unit, heading) = match source.split_once('/') {
        Some((stream, group)) => (
            "pending",
            format!("Pending per consumer · {group} on {stream}"),
        ),
        None => ("unacked", format!("Unacked per consumer · {source}")),
    };
    let testid = format!("held-{source}");
    view! {
        <figure class="ownership-chart" data-testid=testid.clone()>
            <figcaption>
                <strong title=heading.clone()>{heading.clone()}</strong>
                {time.controls(&testid)}
            </figcaption>
            {time.scrub(&testid)}
            {move || {
                let (start, end) = time.span();
                let lanes = with_view(live, |v| chart.with(|c| lanes(c, v, unit))).unwrap_or_default();
                let marks = with_view(live, |v| chart.with(|c| marks(c, v))).unwrap_or_default();
                let summary = chart.with(|c| summary(c, &lanes, unit));
                step_lanes(lanes, &marks, start, end, clock_tick, summary)
            }}
            <div class="as-table" id=format!("{testid}-table")>
                {move || time.table_open().then(|| {
                    let lanes = with_view(live, |v| chart.with(|c| lanes(c, v, unit))).unwrap_or_default();
                    table(&lanes, unit)
                })}
            </div>
        </figure>
    }
}

/// A lane to draw: a count over time, on a scale of its own or shared with its neighbours.
pub(super) struct StepLane {
    /// Written in the names' column: a page instance's name, or the consumer's own.
    pub name: String,
    /// For the tests and the style sheet: the consumer's name as the broker knows it.
    pub key: String,
    pub colour: String,
    pub steps: Vec<Step>,
    /// The count that fills the lane's height.
    pub scale: u64,
    /// Written at the lane's right end: its count now, or what it stands for.
    pub note: String,
}

/// The chart's lanes: what waits, then each consumer on one shared scale.
fn lanes(chart: &HeldChart, view: &LabSnapshot, unit: &str) -> Vec<StepLane> {
    let waiting_scale = chart
        .waiting
        .iter()
        .filter_map(|s| s.held)
        .max()
        .unwrap_or(0);
    let waiting_now = chart.waiting.last().and_then(|s| s.held);
    let waiting = StepLane {
        name: if unit == "pending" {
            "not handed out".to_owned()
        } else {
            "ready".to_owned()
        },
        key: String::new(),
        colour: "waiting".to_owned(),
        steps: chart.waiting.clone(),
        scale: waiting_scale,
        note: waiting_now.map_or_else(|| "?".to_owned(), |n| n.to_string()),
    };
    // A page instance by its letter, also once its card is gone (the timeline still names it).
    let letter = |id| {
        view.instance(id).map(|i| i.name.clone()).or_else(|| {
            view.timeline
                .iter()
                .rev()
                .find(|e| e.instance == Some(id))
                .map(|e| e.name.clone())
        })
    };
    let consumers = chart.lanes.iter().map(|lane| StepLane {
        name: lane
            .instance
            .and_then(letter)
            .unwrap_or_else(|| lane.name.clone()),
        key: lane.name.clone(),
        colour: colour_class(lane.colour),
        steps: lane.steps.clone(),
        scale: chart.max_held,
        note: lane
            .now()
            .map_or_else(|| "gone".to_owned(), |n| format!("{n} {unit}")),
    });
    std::iter::once(waiting).chain(consumers).collect()
}

/// Starts, stops, crashes and failures of the chart's page instances, and claims.
fn marks(chart: &HeldChart, view: &LabSnapshot) -> Vec<AxisMark> {
    view.timeline
        .iter()
        .filter(|e| {
            e.instance
                .is_some_and(|id| chart.lanes.iter().any(|l| l.instance == Some(id)))
                || matches!(e.kind, TimelineKind::Claimed { .. })
                    && chart.source.ends_with(&format!("/{}", e.group))
        })
        .filter_map(|e| {
            let (kind, label, title) = match &e.kind {
                TimelineKind::Started => ("joined", "start", format!("{} started", e.name)),
                TimelineKind::Stopping => ("stopping", "stop", format!("{} asked to stop", e.name)),
                TimelineKind::Crashed | TimelineKind::Failed { .. } => {
                    ("crashed", "crash", format!("{} crashed", e.name))
                }
                TimelineKind::Claimed { entries } => (
                    "generation",
                    "claim",
                    format!("{} claimed {} entries", e.name, entries.len()),
                ),
                _ => return None,
            };
            Some(AxisMark {
                at: e.at,
                label: format!("{label} {}", e.name),
                title,
                kind,
            })
        })
        .collect()
}

/// The chart in words, for a screen reader: what each holds now.
fn summary(chart: &HeldChart, lanes: &[StepLane], unit: &str) -> String {
    let now: Vec<String> = lanes
        .iter()
        .map(|l| format!("{} {}", l.name, l.note))
        .collect();
    format!(
        "{unit} over time on {}. Now: {}",
        chart.source,
        now.join(", ")
    )
}

/// Lanes of step areas on one time axis, with marks above them.
pub(super) fn step_lanes(
    lanes: Vec<StepLane>,
    marks: &[AxisMark],
    start: u64,
    end: u64,
    tick: fn(u64) -> String,
    summary: String,
) -> impl IntoView + use<> {
    let height = MARKS + lanes.len() as f64 * (LANE + LANE_GAP) + AXIS;
    let x = time_axis::x_of(start, end, LABELS);
    let drawn = lanes
        .into_iter()
        .enumerate()
        .map(|(row, lane)| draw_lane(lane, MARKS + row as f64 * (LANE + LANE_GAP), start, end, &x))
        .collect_view();
    let marks = time_axis::marks(marks, start, end, height, &x);
    let ticks = time_axis::axis(start, end, height, &x, tick);
    view! {
        <svg
            class="ownership-svg held-svg"
            viewBox=format!("0 0 {WIDTH} {height}")
            role="img"
            aria-label=summary
            data-start=start.to_string()
            data-end=end.to_string()
        >
            {drawn}
            {marks}
            {ticks}
        </svg>
    }
}

fn draw_lane(
    lane: StepLane,
    y: f64,
    start: u64,
    end: u64,
    x: &dyn Fn(u64) -> f64,
) -> impl IntoView + use<> {
    let scale = lane.scale.max(1) as f64;
    let now = lane.steps.last().and_then(|s| s.held);
    let bars = lane
        .steps
        .iter()
        .enumerate()
        .filter_map(|(i, step)| {
            let to = lane.steps.get(i + 1).map_or(end, |next| next.at);
            let held = step.held.filter(|n| *n > 0)?;
            (to >= start && step.at <= end).then(|| {
                let (left, right) = (x(step.at), x(to));
                let tall = (held as f64 / scale).min(1.0) * (LANE - 2.0);
                view! {
                    <rect
                        x=left
                        y=y + LANE - tall
                        width=(right - left).max(0.5)
                        height=tall
                        data-at=step.at.to_string()
                        data-held=held.to_string()
                    />
                }
            })
        })
        .collect_view();
    let name: String = lane.name.chars().take(13).collect();
    view! {
        <g
            class=format!("held-lane {}", lane.colour)
            data-consumer=lane.key
            data-name=lane.name.clone()
            data-held=now.map(|n| n.to_string()).unwrap_or_default()
        >
            <text class="lane-name" x="2" y=y + LANE / 2.0 + 5.0>{name}</text>
            <rect class="lane-bg" x=LABELS y=y width=WIDTH - LABELS - 4.0 height=LANE />
            <g class="bars">{bars}</g>
            <text class="count" x=WIDTH - 8.0 y=y + LANE / 2.0 + 5.0 text-anchor="end">{lane.note}</text>
        </g>
    }
}

/// Every step of every lane as rows.
fn table(lanes: &[StepLane], unit: &str) -> impl IntoView + use<> {
    let rows = lanes
        .iter()
        .flat_map(|lane| {
            lane.steps.iter().map(|step| {
                view! {
                    <tr>
                        <td>{lane.name.clone()}</td>
                        <td>{clock(step.at)}</td>
                        // The waiting lane (no key) may not know its count; a consumer's lane
                        // has none once it is no longer a consumer.
                        <td>{step.held.map_or_else(|| if lane.key.is_empty() { "unknown" } else { "gone" }.to_owned(), |n| n.to_string())}</td>
                    </tr>
                }
            })
        })
        .collect_view();
    let unit = format!("Count ({unit}, or waiting)");
    view! {
        <table class="consumers">
            <thead><tr><th>"Lane"</th><th>"From"</th><th>{unit}</th></tr></thead>
            <tbody>{rows}</tbody>
        </table>
    }
}
