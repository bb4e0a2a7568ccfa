//! What the charts over time share: the window of history shown, pausing and scrolling back,
//! the ticks of the time axis and the marks of what happened on it.

use leptos::prelude::*;

use super::clock;

/// The spans of history a chart can show, in seconds; `None` is all of it.
const WINDOWS: [(Option<u64>, &str); 3] = [
    (Some(30), "last 30 s"),
    (Some(120), "last 2 min"),
    (None, "whole history"),
];

/// The chart's drawing width, in the SVG's own units; it scales to the pane's width.
pub(super) const WIDTH: f64 = 800.0;
/// Rows of mark labels above the lanes, and the room they take.
const LABEL_ROWS: usize = 3;
pub(super) const MARKS: f64 = 40.0;
/// The time axis under the lanes.
pub(super) const AXIS: f64 = 16.0;

/// How much of a chart's history shows, and whether it follows the present.
#[derive(Clone, Copy)]
pub(super) struct TimeWindow {
    seconds: RwSignal<Option<u64>>,
    /// Where the chart ends while paused; `None` follows the present.
    paused_at: RwSignal<Option<u64>>,
    /// The present: the browser's clock, or the newest data while it has not ticked yet.
    now: Signal<u64>,
    /// When the history starts.
    first: Signal<Option<u64>>,
    /// Whether the chart's text alternative, its table, shows under it.
    table: RwSignal<bool>,
}

impl TimeWindow {
    pub(super) fn new(now: Signal<u64>, first: Signal<Option<u64>>) -> Self {
        Self {
            seconds: RwSignal::new(Some(30)),
            paused_at: RwSignal::new(None),
            now,
            first,
            table: RwSignal::new(false),
        }
    }

    /// Whether the table is open: a chart draws it, the chart again in words, only then.
    pub(super) fn table_open(self) -> bool {
        self.table.get()
    }

    pub(super) fn now(self) -> u64 {
        self.now.get()
    }

    /// The times the chart shows now, at least a second apart.
    pub(super) fn span(self) -> (u64, u64) {
        let end = self.paused_at.get().unwrap_or_else(|| self.now.get());
        let first = self.first.get().unwrap_or(end);
        // A window longer than the history starts where the history does.
        let start = self.seconds.get().map_or(first, |seconds| {
            end.saturating_sub(seconds * 1000)
                .max(first.saturating_sub(500))
        });
        (start.min(end.saturating_sub(1_000)), end)
    }

    /// The window's choice, the pause button and the table's toggle: `{testid}-window`,
    /// `{testid}-pause` and `{testid}-table-toggle`, which shows the element `{testid}-table`.
    pub(super) fn controls(self, testid: &str) -> impl IntoView + use<> {
        let toggle_pause = move |_| {
            self.paused_at.set(match self.paused_at.get_untracked() {
                Some(_) => None,
                None => Some(self.now.get_untracked()),
            })
        };
        view! {
            <span class="chart-controls">
                <label>
                    "Show "
                    <select
                        data-testid=format!("{testid}-window")
                        on:change=move |ev| {
                            let chosen = event_target_value(&ev);
                            self.seconds.set(WINDOWS.iter().find(|(_, name)| *name == chosen).and_then(|(w, _)| *w));
                        }
                    >
                        {WINDOWS.iter().map(|(_, name)| view! { <option value=*name>{*name}</option> }).collect_view()}
                    </select>
                </label>
                <button
                    type="button"
                    class="secondary"
                    data-testid=format!("{testid}-pause")
                    aria-pressed=move || self.paused_at.get().is_some().to_string()
                    on:click=toggle_pause
                >
                    {move || if self.paused_at.get().is_some() { "Follow live" } else { "Pause" }}
                </button>
                <button
                    type="button"
                    class="secondary"
                    data-testid=format!("{testid}-table-toggle")
                    aria-expanded=move || self.table.get().to_string()
                    aria-controls=format!("{testid}-table")
                    on:click=move |_| self.table.update(|open| *open = !*open)
                >
                    "Table"
                </button>
            </span>
        }
    }

    /// While paused, a slider to scroll back through the history, `{testid}-scroll`.
    pub(super) fn scrub(self, testid: &str) -> impl IntoView + use<> {
        let id = format!("{testid}-scroll");
        view! {
            <Show when=move || self.paused_at.get().is_some()>
                <label class="scrub">
                    "Scroll back "
                    <input
                        type="range"
                        data-testid=id.clone()
                        min=move || self.first.get().unwrap_or(0).to_string()
                        max=move || self.now.get().to_string()
                        step="100"
                        prop:value=move || self.paused_at.get().unwrap_or(0).to_string()
                        on:input=move |ev| {
                            if let Ok(end) = event_target_value(&ev).parse::<u64>() {
                                self.paused_at.set(Some(end));
                            }
                        }
                    />
                </label>
            </Show>
        }
    }
}

/// Maps a time to the chart's x, between the lane names (`left`) and the right edge.
pub(super) fn x_of(start: u64, end: u64, left: f64) -> impl Fn(u64) -> f64 + Copy + 'static {
    let length = end.saturating_sub(start).max(1) as f64;
    move |at: u64| left + (at.clamp(start, end) - start) as f64 / length * (WIDTH - left - 4.0)
}

/// The time axis at the chart's bottom: about six ticks on whole, round seconds, each labelled.
pub(super) fn axis(
    start: u64,
    end: u64,
    height: f64,
    x: &dyn Fn(u64) -> f64,
    label: fn(u64) -> String,
) -> impl IntoView + use<> {
    ticks(start, end)
        .into_iter()
        .map(|at| {
            let tx = x(at);
            view! {
                <g class="tick">
                    <line x1=tx x2=tx y1=height - AXIS y2=height - AXIS + 4.0 />
                    <text x=tx y=height - 2.0 text-anchor="middle">{label(at)}</text>
                </g>
            }
        })
        .collect_view()
}

/// A wall-clock tick label: hours, minutes and seconds.
pub(super) fn clock_tick(at: u64) -> String {
    clock(at)[..8].to_owned()
}

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

/// Something that happened, marked on the time axis by a line with a short label.
pub(super) struct AxisMark {
    pub at: u64,
    /// Drawn on the axis: "crash A".
    pub label: String,
    /// Said in full in its tooltip: "A crashed".
    pub title: String,
    /// Its kind, for the style sheet and the tests: `crashed`, `joined`…
    pub kind: &'static str,
}

/// The marks between `start` and `end`, each label on the first of the rows above the lanes
/// where it does not run into the one before; a mark with no room keeps its line.
pub(super) fn marks(
    marks: &[AxisMark],
    start: u64,
    end: u64,
    height: f64,
    x: &dyn Fn(u64) -> f64,
) -> impl IntoView + use<> {
    let mut row_ends = [f64::MIN; LABEL_ROWS];
    marks
        .iter()
        .filter(|m| m.at >= start && m.at <= end)
        .map(|mark| {
            let at = x(mark.at);
            let width = mark.label.chars().count() as f64 * 6.2;
            // Near the right edge the label ends at the edge instead of running past it.
            let label_x = (at + 2.0).min(WIDTH - width - 2.0);
            let row = row_ends.iter().position(|end| *end < label_x);
            if let Some(row) = row {
                row_ends[row] = label_x + width + 4.0;
            }
            let label_y = row.map(|row| 11.0 + row as f64 * 12.0);
            let label = mark.label.clone();
            view! {
                <g class=format!("mark {}", mark.kind) data-kind=mark.kind data-at=mark.at.to_string()>
                    <line x1=at x2=at y1=label_y.unwrap_or(MARKS - 4.0) + 2.0 y2=height - AXIS />
                    <title>{format!("{} at {}", mark.title, clock(mark.at))}</title>
                    {label_y.map(|y| view! { <text x=label_x y=y>{label}</text> })}
                </g>
            }
        })
        .collect_view()
}
