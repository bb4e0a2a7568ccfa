//! Partition ownership over time: a lane per partition, coloured by its owner (with the owner's
//! name on it, not colour alone), hatched where the owner no longer worked, outlined where no one
//! did, with joins, crashes, stops, session-timeout expiries and generations marked on one time
//! axis. It follows the present, can be paused and scrolled back, and has a table as its text
//! alternative. The data is [`grouplab_protocol::ownership::ownership`], read from the timeline.

use grouplab_protocol::TopicPartition;
use grouplab_protocol::ownership::{GapCause, Lane, Mark, MarkKind, Ownership, ownership};
use leptos::prelude::*;

use super::time_axis::{self, AXIS, AxisMark, MARKS, TimeWindow, WIDTH, clock_tick};
use super::{clock, colour_class, with_view};
use crate::live::Live;

/// The lane names' column, and a lane.
const LABELS: f64 = 34.0;
/// A lane's height: thinner when a topic has many partitions, so that the chart stays beside
/// the cards at 1280×720.
fn lane_height(lanes: usize) -> f64 {
    if lanes > 4 { 13.0 } else { 22.0 }
}

/// The room between lanes, likewise.
fn lane_gap(lanes: usize) -> f64 {
    if lanes > 4 { 2.0 } else { 4.0 }
}

#[component]
pub(super) fn OwnershipCharts() -> impl IntoView {
    let live = expect_context::<Live>();
    let groups = move || {
        with_view(live, |v| {
            v.groups
                .iter()
                .filter(|g| v.timeline.iter().any(|e| e.group == g.name))
                .map(|g| g.name.clone())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
    };
    view! {
        <div class="ownership kafka-only">
            <For each=groups key=|g: &String| g.clone() let:group>
                <OwnershipChart group />
            </For>
        </div>
    }
}

#[component]
fn OwnershipChart(group: String) -> impl IntoView {
    let live = expect_context::<Live>();
    let chart = {
        let group = group.clone();
        Memo::new(move |_| {
            with_view(live, |v| {
                let partitions: Vec<TopicPartition> = v
                    .topics
                    .iter()
                    .filter(|t| t.groups.iter().any(|g| g.group == group))
                    .flat_map(|t| {
                        t.partitions
                            .iter()
                            .map(|p| TopicPartition::new(&t.name, p.partition))
                    })
                    .collect();
                let members = v
                    .groups
                    .iter()
                    .find(|g| g.name == group)
                    .map_or(&[][..], |g| &g.members[..]);
                ownership(&v.timeline, &group, &partitions, members)
            })
            .unwrap_or_default()
        })
    };
    let now = Signal::derive(move || {
        let newest = with_view(live, |v| v.timeline.last().map(|e| e.at))
            .flatten()
            .unwrap_or(0);
        live.now.get().max(newest)
    });
    let time = TimeWindow::new(now, Signal::derive(move || chart.with(|c| c.start)));
    let testid = format!("ownership-{group}");
    // The hatching's pattern, one per chart so that ids stay unique in the page.
    let pattern: String = format!("not-working-{group}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let heading = format!("Owners over time · {group}");
    view! {
        <figure class="ownership-chart" data-testid=testid.clone()>
            <figcaption>
                <strong title=heading.clone()>{heading.clone()}</strong>
                {time.controls(&testid)}
            </figcaption>
            {time.scrub(&testid)}
            {move || {
                let (start, end) = time.span();
                let pattern = pattern.clone();
                chart.with(|c| drawing(c, start, end, time.now(), pattern))
            }}
            <div class="as-table" id=format!("{testid}-table")>
                {move || time.table_open().then(|| chart.with(|c| table(c, time.now())))}
            </div>
        </figure>
    }
}

/// The chart itself, from `start` to `end`.
fn drawing(
    chart: &Ownership,
    start: u64,
    end: u64,
    now: u64,
    pattern: String,
) -> impl IntoView + use<> {
    let lane = lane_height(chart.lanes.len());
    let gap = lane_gap(chart.lanes.len());
    let height = MARKS + chart.lanes.len() as f64 * (lane + gap) + AXIS;
    let x = time_axis::x_of(start, end, LABELS);
    let lanes = chart
        .lanes
        .iter()
        .enumerate()
        .map(|(row, chart_lane)| {
            let y = MARKS + row as f64 * (lane + gap);
            draw_lane(chart_lane, y, lane, end, now, x, &pattern)
        })
        .collect_view();
    let marks: Vec<AxisMark> = chart
        .marks
        .iter()
        .map(|mark| AxisMark {
            at: mark.at,
            label: mark_label(mark),
            title: describe_mark(mark),
            kind: mark_class(mark.kind),
        })
        .collect();
    let marks = time_axis::marks(&marks, start, end, height, &x);
    let ticks = time_axis::axis(start, end, height, &x, clock_tick);
    let summary = summary(chart, now);
    view! {
        <svg
            class="ownership-svg"
            viewBox=format!("0 0 {WIDTH} {height}")
            role="img"
            aria-label=summary
            data-start=start.to_string()
            data-end=end.to_string()
        >
            <defs>
                <pattern id=pattern.clone() width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">
                    <rect width="6" height="6" fill="#ffffff" fill-opacity="0.55" />
                    <line x1="0" y1="0" x2="0" y2="6" stroke="#1b1f24" stroke-width="2" />
                </pattern>
            </defs>
            {lanes}
            {marks}
            {ticks}
        </svg>
    }
}

fn draw_lane<X: Fn(u64) -> f64 + Copy + 'static>(
    lane: &Lane,
    y: f64,
    height: f64,
    end: u64,
    now: u64,
    x: X,
    pattern: &str,
) -> impl IntoView + use<X> {
    let hatch = format!("url(#{pattern})");
    let name = format!("P{}", lane.partition.partition);
    let spans = lane
        .spans
        .iter()
        .map(|span| {
            let (left, right) = (x(span.from), x(span.to.unwrap_or(end)));
            let width = (right - left).max(0.0);
            let dead = span.stopped_working.map(|at| {
                let from = x(at);
                view! { <rect class="not-working" x=from y=y width=(right - from).max(0.0) height=height fill=hatch.clone() /> }
            });
            let label = (width > 14.0).then(|| {
                view! { <text class="owner" x=left + 4.0 y=y + height / 2.0 + 5.0>{span.owner.clone()}</text> }
            });
            view! {
                <g class=format!("span {}", colour_class(span.colour)) data-owner=span.owner.clone()>
                    <rect x=left y=y width=width height=height rx="3" />
                    {dead}
                    {label}
                </g>
            }
        })
        .collect_view();
    let partition = lane.partition.partition;
    let gaps = lane
        .gaps
        .iter()
        .filter(|gap| gap.to.is_none_or(|to| to > gap.from))
        .map(|gap| {
            let (left, right) = (x(gap.from), x(gap.to.unwrap_or(end)));
            let ms = gap.length_ms(now);
            let seconds = format!("{:.1} s", ms as f64 / 1000.0);
            view! {
                <g
                    class="gap"
                    class:open=gap.to.is_none()
                    data-partition=partition.to_string()
                    data-from=gap.from.to_string()
                    data-to=gap.to.map(|t| t.to_string()).unwrap_or_default()
                    data-ms=ms.to_string()
                    data-cause=cause_name(gap.cause)
                >
                    <rect x=left y=y + 1.0 width=(right - left).max(1.0) height=height - 2.0 />
                    <text x=(left + right) / 2.0 y=y + height / 2.0 + 5.0 text-anchor="middle">{seconds}</text>
                </g>
            }
        })
        .collect_view();
    view! {
        <g class="lane" data-partition=partition.to_string()>
            <text class="lane-name" x="2" y=y + height / 2.0 + 5.0>{name}</text>
            <rect class="lane-bg" x=LABELS y=y width=WIDTH - LABELS - 4.0 height=height />
            {spans}
            {gaps}
        </g>
    }
}

/// The chart in words, for a screen reader: who owns what now, and the last gap.
fn summary(chart: &Ownership, now: u64) -> String {
    let owners: Vec<String> = chart
        .lanes
        .iter()
        .map(|lane| {
            let owner =
                lane.spans
                    .last()
                    .filter(|s| s.to.is_none())
                    .map_or("nobody".to_owned(), |s| {
                        if s.stopped_working.is_some() {
                            format!("{} (not working)", s.owner)
                        } else {
                            s.owner.clone()
                        }
                    });
            format!("P{} {owner}", lane.partition.partition)
        })
        .collect();
    let last_gap = chart
        .lanes
        .iter()
        .flat_map(|l| l.gaps.iter().map(move |g| (l.partition.partition, g)))
        .filter(|(_, g)| g.length_ms(now) > 0)
        .max_by_key(|(_, g)| g.from)
        .map(|(partition, gap)| {
            format!(
                "; last gap: P{partition} without a working owner for {:.1} s",
                gap.length_ms(now) as f64 / 1000.0
            )
        })
        .unwrap_or_default();
    format!(
        "Partition owners of {} over time. Now: {}{last_gap}",
        chart.group,
        owners.join(", ")
    )
}

/// Every span and gap as rows.
fn table(chart: &Ownership, now: u64) -> impl IntoView + use<> {
    let rows = chart
        .lanes
        .iter()
        .flat_map(|lane| {
            let partition = lane.partition.partition;
            let spans = lane.spans.iter().map(move |s| {
                let what = match s.stopped_working {
                    Some(at) => format!("{}, not working from {}", s.owner, clock(at)),
                    None => s.owner.clone(),
                };
                (partition, s.from, what, s.to.map(clock), String::new())
            });
            let gaps = lane
                .gaps
                .iter()
                .filter(|g| g.length_ms(now) > 0)
                .map(move |g| {
                    (
                        partition,
                        g.from,
                        format!("no working owner ({})", cause_name(g.cause)),
                        g.to.map(clock),
                        format!("{:.1} s", g.length_ms(now) as f64 / 1000.0),
                    )
                });
            spans.chain(gaps).collect::<Vec<_>>()
        })
        .map(|(partition, from, what, to, length)| {
            view! {
                <tr>
                    <td>{format!("P{partition}")}</td>
                    <td>{what}</td>
                    <td>{clock(from)}</td>
                    <td>{to.unwrap_or_else(|| "now".to_owned())}</td>
                    <td>{length}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <table class="consumers">
            <thead><tr><th>"Partition"</th><th>"Owner"</th><th>"From"</th><th>"To"</th><th>"Gap"</th></tr></thead>
            <tbody>{rows}</tbody>
        </table>
    }
}

fn mark_label(mark: &Mark) -> String {
    match mark.kind {
        MarkKind::Generation(_) | MarkKind::Epoch(_) => mark.kind.label(),
        kind => format!("{} {}", kind.label(), mark.name),
    }
}

fn describe_mark(mark: &Mark) -> String {
    match mark.kind {
        MarkKind::Joined => format!("{} joined", mark.name),
        MarkKind::Crashed => format!("{} crashed", mark.name),
        MarkKind::Stopping => format!("{} asked to stop", mark.name),
        MarkKind::SessionExpired => format!("{}'s session timed out", mark.name),
        MarkKind::Left => format!("{} left the group", mark.name),
        MarkKind::Generation(generation) => format!("generation {generation}"),
        MarkKind::Epoch(epoch) => format!("group epoch {epoch}"),
    }
}

fn mark_class(kind: MarkKind) -> &'static str {
    match kind {
        MarkKind::Joined => "joined",
        MarkKind::Crashed => "crashed",
        MarkKind::Stopping => "stopping",
        MarkKind::SessionExpired => "expired",
        MarkKind::Left => "left",
        MarkKind::Generation(_) | MarkKind::Epoch(_) => "generation",
    }
}

fn cause_name(cause: GapCause) -> &'static str {
    match cause {
        GapCause::Crash => "crash",
        GapCause::Left => "left",
        GapCause::Expired => "session expired",
        GapCause::Rebalance => "rebalance",
    }
}
