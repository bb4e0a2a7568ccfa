//! A Redis lab's streams.

use leptos::prelude::*;

use super::{consumer_cell, consumer_table, side_list, with_view};
use crate::live::Live;

/// A Redis lab's streams: each group's position, its consumers (whoever runs them) with their
/// pending entries, and the readers that are in no group.
#[component]
pub(super) fn Streams() -> impl IntoView {
    let live = expect_context::<Live>();
    let streams = move || with_view(live, |v| v.streams.clone()).unwrap_or_default();
    view! {
        <div class="streams redis-only" data-testid="streams">
            {move || streams().into_iter().map(|stream| view! {
                <div class="stream" data-stream=stream.name.clone()>
                    <h3>
                        "Stream " <code>{stream.name.clone()}</code>
                        <span class="facts muted">{format!(
                            " · {} entr{}, newest {}",
                            stream.length,
                            if stream.length == 1 { "y" } else { "ies" },
                            stream.last_id.clone().unwrap_or_else(|| "none".into())
                        )}</span>
                    </h3>
                    {stream.groups.into_iter().map(|group| view! {
                        <div class="stream-group" data-group=group.name.clone()>
                            <h4>
                                "Group " <code>{group.name.clone()}</code>
                                <span class="facts muted">{format!(
                                    " · last delivered {}; {} read; {} not yet handed out; {} pending",
                                    group.last_delivered_id,
                                    group.entries_read.map_or("?".into(), |n| n.to_string()),
                                    group.lag.map_or("?".into(), |n| n.to_string()),
                                    group.pending
                                )}</span>
                            </h4>
                            {consumer_table(
                                &["Consumer", "Pending", "Idle", "Oldest pending (id ×deliveries)"],
                                group.consumers.into_iter().map(|c| view! {
                                        <tr data-testid="stream-consumer" data-consumer=c.name.clone() data-pending=c.pending>
                                            {consumer_cell(live, c.instance, c.name.clone(), c.colour)}
                                            <td>{c.pending}</td>
                                            <td>{format!("{:.1} s", c.idle_ms as f64 / 1000.0)}</td>
                                            <td><code>{c.entries.iter().map(|e| format!("{} ×{}", e.id, e.deliveries)).collect::<Vec<_>>().join("  ")}</code></td>
                                        </tr>
                                }).collect_view(),
                            )}
                        </div>
                    }).collect_view()}
                    {(!stream.loose_readers.is_empty()).then(|| side_list(
                        "loose-readers",
                        "Readers in no group",
                        "These connections read with plain XREAD: each gets every entry, nothing is shared, pending or acknowledged.",
                        stream.loose_readers.into_iter().map(|r| view! {
                            <li><code>{r.client}</code>" · last command " <code>{r.command}</code></li>
                        }).collect_view(),
                    ))}
                </div>
            }).collect_view()}
        </div>
    }
}
