//! Lab 15: the latest crash on each broker, side by side.

use leptos::prelude::*;

use super::{clock, consumer_table, with_view};
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
            </div>
        </Show>
    }
}
