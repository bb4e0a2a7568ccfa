//! Partition ownership over time: a lane per partition, coloured by its owner (with the owner's
//! name on it, not colour alone), hatched where the owner no longer worked, outlined where no one
//! did, with joins, crashes, stops, session-timeout expiries and generations marked on one time
//! axis. It follows the present, can be paused and scrolled back, and has a table as its text
//! alternative. The data is [`grouplab_protocol::ownership::ownership`], read from the timeline.

use grouplab_protocol::TopicPartition;
use grouplab_protocol::ownership::{GapCause, Lane, Mark, MarkKind, Ownership, ownership};
use leptos::prelude::*;

use super::{clock, colour_class, with_view};
use crate::live::Live;

/// The chart's drawing size, in the SVG's own units; it scales to the pane's width.
const WIDTH: f64 = 800.0;
const LABELS: f64 = 34.0;
const MARKS: f64 = 40.0;
/// Rows of mark labels above the lanes.
const LABEL_ROWS: usize = 3;
const LANE: f64 = 22.0;
const LANE_GAP: f64 = 4.0;
const AXIS: f64 = 16.0;

/// The spans of history the chart can show, in seconds; `None` is all of it.
const WINDOWS: [(Option<u64>, &str); 3] = [
    (Some(30), "last 30 s"),
    (Some(120), "last 2 min"),
    (None, "whole history"),
];

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
    let window = RwSignal::new(Some(30u64));
    // Where the chart ends while paused; `None` follows the present.
    let paused_at = RwSignal::new(None::<u64>);
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
    // The present: the browser's clock, or the newest entry while it has not ticked yet.
    let now = move || {
        let ticked = live.now.get();
        let newest = with_view(live, |v| v.timeline.last().map(|e| e.at))
            .flatten()
            .unwrap_or(0);
        ticked.max(newest)
    };
    let span = move || {
        let end = paused_at.get().unwrap_or_else(now);
        let first = chart.with(|c| c.start).unwrap_or(end);
        // A window longer than the history starts where the history does.
        let start = window.get().map_or(first, |seconds| {
            end.saturating_sub(seconds * 1000)
                .max(first.saturating_sub(500))
        });
        (start.min(end.saturating_sub(1_000)), end)
    };
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
    let table_open = RwSignal::new(false);
    let (window_id, pause_id, scroll_id) = (
        format!("{testid}-window"),
        format!("{testid}-pause"),
        format!("{testid}-scroll"),
    );
    let heading = format!("Who owned each partition of {group}");
    let latest = move || {
        chart.with(|c| {
            c.marks
                .last()
                .map(|m| format!("Latest: {} at {}", describe_mark(m), clock(m.at)))
        })
    };
    let toggle_pause = move |_| {
        paused_at.set(match paused_at.get_untracked() {
            Some(_) => None,
            None => Some(now()),
        })
    };
    view! {
        <figure class="ownership-chart" data-testid=testid>
            <figcaption>
                <strong>{heading}</strong>
                <span class="muted latest">{latest}</span>
                <span class="chart-controls">
                    <label>
                        "Show "
                        <select
                            data-testid=window_id
                            on:change=move |ev| {
                                let chosen = event_target_value(&ev);
                                window.set(WINDOWS.iter().find(|(_, name)| *name == chosen).and_then(|(w, _)| *w));
                            }
                        >
                            {WINDOWS.iter().map(|(_, name)| view! { <option value=*name>{*name}</option> }).collect_view()}
                        </select>
                    </label>
                    <button
                        type="button"
                        class="secondary"
                        data-testid=pause_id
                        aria-pressed=move || paused_at.get().is_some().to_string()
                        on:click=toggle_pause
                    >
                        {move || if paused_at.get().is_some() { "Follow live" } else { "Pause" }}
                    </button>
                </span>
            </figcaption>
            <Show when=move || paused_at.get().is_some()>
                <label class="scrub">
                    "Scroll back "
                    <input
                        type="range"
                        data-testid=scroll_id.clone()
                        min=move || chart.with(|c| c.start).unwrap_or(0).to_string()
                        max=move || now().to_string()
                        step="100"
                        prop:value=move || paused_at.get().unwrap_or(0).to_string()
                        on:input=move |ev| {
                            if let Ok(end) = event_target_value(&ev).parse::<u64>() {
                                paused_at.set(Some(end));
                            }
                        }
                    />
                </label>
            </Show>
            {move || {
                let (start, end) = span();
                let pattern = pattern.clone();
                chart.with(|c| drawing(c, start, end, now(), pattern))
            }}
            <details class="as-table" on:toggle=move |_| table_open.update(|open| *open = !*open)>
                <summary>"As a table"</summary>
                // Drawn only while open: it is the chart again, in words.
                {move || table_open.get().then(|| chart.with(|c| table(c, now())))}
            </details>
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
    let height = MARKS + chart.lanes.len() as f64 * (LANE + LANE_GAP) + AXIS;
    let length = end.saturating_sub(start).max(1) as f64;
    let x = move |at: u64| {
        LABELS + (at.clamp(start, end) - start) as f64 / length * (WIDTH - LABELS - 4.0)
    };
    let lanes = chart
        .lanes
        .iter()
        .enumerate()
        .map(|(row, lane)| {
            let y = MARKS + row as f64 * (LANE + LANE_GAP);
            draw_lane(lane, y, end, now, x, &pattern)
        })
        .collect_view();
    // Each label goes on the first of the rows where it does not run into the one before; a mark
    // with no room keeps its line, and the table has it.
    let mut row_ends = [f64::MIN; LABEL_ROWS];
    let marks = chart
        .marks
        .iter()
        .filter(|m| m.at >= start && m.at <= end)
        .map(|mark| {
            let at = x(mark.at);
            let label = mark_label(mark);
            let width = label.chars().count() as f64 * 6.2;
            // Near the right edge the label ends at the edge instead of running past it.
            let label_x = (at + 2.0).min(WIDTH - width - 2.0);
            let row = row_ends.iter().position(|end| *end < label_x);
            if let Some(row) = row {
                row_ends[row] = label_x + width + 4.0;
            }
            let label_y = row.map(|row| 11.0 + row as f64 * 12.0);
            let class = format!("mark {}", mark_class(mark.kind));
            view! {
                <g class=class data-kind=mark_class(mark.kind) data-at=mark.at.to_string()>
                    <line x1=at x2=at y1=label_y.unwrap_or(MARKS - 4.0) + 2.0 y2=height - AXIS />
                    <title>{format!("{} at {}", describe_mark(mark), clock(mark.at))}</title>
                    {label_y.map(|y| view! { <text x=label_x y=y>{label}</text> })}
                </g>
            }
        })
        .collect_view();
    let ticks = ticks(start, end)
        .into_iter()
        .map(|at| {
            let tx = x(at);
            view! {
                <g class="tick">
                    <line x1=tx x2=tx y1=height - AXIS y2=height - AXIS + 4.0 />
                    <text x=tx y=height - 2.0 text-anchor="middle">{clock(at)[..8].to_owned()}</text>
                </g>
            }
        })
        .collect_view();
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
                view! { <rect class="not-working" x=from y=y width=(right - from).max(0.0) height=LANE fill=hatch.clone() /> }
            });
            let label = (width > 14.0).then(|| {
                view! { <text class="owner" x=left + 4.0 y=y + LANE / 2.0 + 5.0>{span.owner.clone()}</text> }
            });
            view! {
                <g class=format!("span {}", colour_class(span.colour)) data-owner=span.owner.clone()>
                    <rect x=left y=y width=width height=LANE rx="3" />
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
                    <rect x=left y=y + 1.0 width=(right - left).max(1.0) height=LANE - 2.0 />
                    <text x=(left + right) / 2.0 y=y + LANE / 2.0 + 5.0 text-anchor="middle">{seconds}</text>
                </g>
            }
        })
        .collect_view();
    view! {
        <g class="lane" data-partition=partition.to_string()>
            <text class="lane-name" x="2" y=y + LANE / 2.0 + 5.0>{name}</text>
            <rect class="lane-bg" x=LABELS y=y width=WIDTH - LABELS - 4.0 height=LANE />
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

/// Tick times on whole, round seconds, about six of them.
fn ticks(start: u64, end: u64) -> Vec<u64> {
    let length = end.saturating_sub(start);
    let step = [
        1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000,
    ]
    .into_iter()
    .find(|step| length / step <= 6)
    .unwrap_or(1_800_000);
    let first = start.div_ceil(step) * step;
    (0..)
        .map(|n| first + n * step)
        .take_while(|at| *at <= end)
        .collect()
}

fn mark_label(mark: &Mark) -> String {
    match mark.kind {
        MarkKind::Generation(_) => mark.kind.label(),
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
    }
}

fn mark_class(kind: MarkKind) -> &'static str {
    match kind {
        MarkKind::Joined => "joined",
        MarkKind::Crashed => "crashed",
        MarkKind::Stopping => "stopping",
        MarkKind::SessionExpired => "expired",
        MarkKind::Left => "left",
        MarkKind::Generation(_) => "generation",
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
