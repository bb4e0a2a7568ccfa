//! Lab 15: the latest crash on each broker, side by side.

use leptos::prelude::*;

use grouplab_protocol::CrashReport;
use grouplab_protocol::held::Step;

use super::held::{StepLane, step_lanes};
use super::{clock, colour_class, consumer_table, with_view};
use crate::live::Live;

/// The latest crash on each broker, from any lab of this server, side by side.
#[component]
pub(super) fn Crashes() -> impl IntoView {
    let live = expect_context::<Live>();
    let crashes = move || with_view(live, |v| v.crashes.clone()).unwrap_or_default();
    view! {
        <Show when=move || !crashes().is_empty()>
            <div class="streams crashes" data-testid="crashes">
                <h3>"The same crash on each broker"</h3>
                <p class="muted">"The latest page instance that crashed on each broker, in any lab: what it held, when another consumer had its work, and what was delivered twice."</p>
                {consumer_table(
                    &["Broker", "Crashed", "Held", "Work moved after", "Delivered again", "How"],
                    move || crashes().into_iter().map(|c| view! {
                            <tr data-testid=format!("crash-{}", c.backend.label())>
                                <td>{c.backend.label()}</td>
                                <td>{format!("{} in {}, {}", c.instance, c.lab, clock(c.at))}</td>
                                <td>{format!("{} {}", c.held, c.held_unit())}</td>
                                <td>{c.moved_after_ms.map_or_else(|| "not yet".to_owned(), |ms| format!("{:.1} s", ms as f64 / 1000.0))}</td>
                                <td>{c.delivered_again}</td>
                                <td class="muted">{c.how()}</td>
                            </tr>
                    }).collect_view(),
                )}
                <figure class="ownership-chart" data-testid="crash-chart">
                    <figcaption><strong>"What each crashed consumer held, in seconds from its crash"</strong></figcaption>
                    {move || crash_chart(&crashes(), live.now.get())}
                </figure>
            </div>
        </Show>
    }
}

/// How much of a crash whose work never moved the chart draws.
const UNMOVED_SHOWN_MS: u64 = 60_000;

/// One lane per broker on one axis of seconds since each crash: the work held, until another
/// consumer had it.
fn crash_chart(crashes: &[CrashReport], now: u64) -> impl IntoView + use<> {
    // A crash whose work has not moved (yet, or ever: auto-acked messages are gone) draws up to
    // a minute, so that an old one does not squeeze the others' handovers into slivers.
    let waited = |c: &CrashReport| {
        c.moved_after_ms
            .unwrap_or_else(|| now.saturating_sub(c.at).min(UNMOVED_SHOWN_MS))
    };
    let longest = crashes.iter().map(waited).max().unwrap_or(0);
    let end = (longest + longest / 8).max(1_000);
    let lanes: Vec<StepLane> = crashes
        .iter()
        .map(|c| {
            let mut steps = vec![Step {
                at: 0,
                held: Some(c.held),
            }];
            steps.extend(c.moved_after_ms.map(|at| Step { at, held: Some(0) }));
            StepLane {
                name: c.backend.label().to_owned(),
                key: c.backend.label().to_owned(),
                colour: colour_class(c.backend as u8),
                steps,
                scale: c.held,
                note: match c.moved_after_ms {
                    Some(ms) => format!(
                        "{} {} for {:.1} s",
                        c.held,
                        c.held_unit(),
                        ms as f64 / 1000.0
                    ),
                    None => format!(
                        "{} {}, not handed to another consumer",
                        c.held,
                        c.held_unit()
                    ),
                },
            }
        })
        .collect();
    let summary = lanes
        .iter()
        .map(|l| format!("{}: {}", l.name, l.note))
        .collect::<Vec<_>>()
        .join("; ");
    step_lanes(lanes, &[], 0, end, seconds, summary)
}

fn seconds(ms: u64) -> String {
    format!("{} s", ms / 1000)
}
