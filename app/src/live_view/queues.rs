//! A RabbitMQ lab's queues.

use leptos::prelude::*;

use super::{clock, consumer_cell, consumer_table, side_list, with_view};
use crate::live::Live;

/// A RabbitMQ lab's queues: what waits, what is out with consumers, and each consumer (whoever
/// runs it) with its prefetch and unacked messages.
#[component]
pub(super) fn Queues() -> impl IntoView {
    let live = expect_context::<Live>();
    let queues = move || with_view(live, |v| v.queues.clone()).unwrap_or_default();
    view! {
        <div class="streams rabbitmq-only" data-testid="queues">
            {move || queues().into_iter().map(|queue| view! {
                <div class="stream" data-queue=queue.name.clone() data-testid=format!("queue-panel-{}", queue.name)>
                    <h3>
                        "Queue " <code>{queue.name.clone()}</code>
                        <span class="facts">
                            " · "
                            <strong data-testid=format!("ready-{}", queue.name)>{queue.ready}</strong>" ready · "
                            <strong data-testid=format!("unacked-total-{}", queue.name)>{queue.unacked}</strong>" unacked"
                            {queue.dead_letter_queue.clone().map(|target| view! { <span class="muted">" · rejected messages go to " <code>{target}</code></span> })}
                        </span>
                    </h3>
                    <p class="muted">{format!(
                        "since it was made: {} published, {} delivered ({} redelivered), {} acknowledged",
                        queue.published, queue.delivered, queue.redelivered, queue.acked
                    )}</p>
                    {(!queue.consumers.is_empty()).then(|| consumer_table(
                        &["Consumer", "Connection", "Prefetch", "Ack", "Unacked"],
                        queue.consumers.into_iter().map(|c| view! {
                                    <tr data-testid="queue-consumer" data-consumer=c.tag.clone() data-unacked=c.unacked>
                                        {consumer_cell(live, c.instance, c.tag.clone(), c.colour)}
                                        <td><code>{c.connection}</code></td>
                                        <td>{if c.prefetch == 0 { "no limit".to_owned() } else { c.prefetch.to_string() }}</td>
                                        <td>{if c.ack_required { "manual" } else { "auto" }}</td>
                                        <td>{c.unacked}</td>
                                    </tr>
                        }).collect_view(),
                    ))}
                    {(!queue.refusals.is_empty()).then(|| side_list(
                        "refusals",
                        "Refused by RabbitMQ",
                        "The broker closed these clients' channels: whatever they did next on them failed.",
                        queue.refusals.into_iter().map(|r| view! {
                            <li>{clock(r.seen_at)} " " <code>{r.client}</code>": " <code>{r.operation}</code>" → " {r.error}</li>
                        }).collect_view(),
                    ))}
                </div>
            }).collect_view()}
        </div>
    }
}
