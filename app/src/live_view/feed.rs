//! The newest messages and the timeline.

use grouplab_protocol::{GroupProtocol, TimelineEntry, TimelineKind, TopicPartition};
use leptos::prelude::*;

use super::{clock, colour_class, with_view};
use crate::live::Live;

/// How many recent messages and timeline entries are listed.
const SHOWN_MESSAGES: usize = 14;
const SHOWN_TIMELINE: usize = 40;

#[component]
pub(super) fn Messages() -> impl IntoView {
    let live = expect_context::<Live>();
    let rows = move || {
        live.fed.track();
        with_view(live, |v| {
            v.messages
                .iter()
                .rev()
                .take(SHOWN_MESSAGES)
                .map(|m| {
                    let (name, colour) = v
                        .instance(m.instance)
                        .map_or((String::from("?"), 0), |i| (i.name.clone(), i.colour));
                    (name, colour, m.clone())
                })
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
    };
    view! {
        <div class="messages">
            <h3>"Messages received"</h3>
            <p class="muted">"Recent ones; at high rates a sample, while the counts stay exact."</p>
            <ul data-testid="messages">
                {move || rows().into_iter().map(|(name, colour, m)| view! {
                    <li>
                        <span class=format!("chip {}", colour_class(colour))>{name}</span>
                        <code>{match &m.entry {
                            Some(id) => id.clone(),
                            None => format!("P{}@{}", m.partition, m.offset),
                        }}</code>
                        {m.key.map(|k| view! { <span class="key">{k}</span> })}
                        <span class="value">{m.value}</span>
                    </li>
                }).collect_view()}
            </ul>
        </div>
    }
}

#[component]
pub(super) fn Timeline() -> impl IntoView {
    let live = expect_context::<Live>();
    let rows = move || {
        with_view(live, |v| {
            v.timeline
                .iter()
                .rev()
                .take(SHOWN_TIMELINE)
                .map(|e| (e.colour, e.clone()))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
    };
    view! {
        <div class="timeline">
            <h3>"Timeline"</h3>
            <ol data-testid="timeline">
                {move || rows().into_iter().map(|(colour, e)| view! {
                    <li
                        class=format!("{}", timeline_class(&e.kind))
                        data-at=e.at.to_string()
                        data-unowned-ms=match e.kind {
                            TimelineKind::Assigned { unowned_ms: Some(ms) } => ms.to_string(),
                            _ => String::new(),
                        }
                    >
                        <time>{clock(e.at)}</time>
                        <span class=format!("chip {}", colour_class(colour))>{e.name.clone()}</span>
                        <span>{describe(&e)}</span>
                    </li>
                }).collect_view()}
            </ol>
        </div>
    }
}

fn timeline_class(kind: &TimelineKind) -> &'static str {
    match kind {
        TimelineKind::Crashed
        | TimelineKind::PollTimeout { .. }
        | TimelineKind::Failed { .. }
        | TimelineKind::Departed {
            departure: grouplab_protocol::Departure::Crash | grouplab_protocol::Departure::Expired,
            ..
        } => "bad",
        TimelineKind::Assigned { .. } | TimelineKind::BrokerUp => "good",
        TimelineKind::Group { .. } => "group",
        TimelineKind::BrokerDown { .. } => "bad broker",
        TimelineKind::Instructor { .. } => "instructor",
        _ => "",
    }
}

fn partition_list(partitions: &[TopicPartition]) -> String {
    if partitions.is_empty() {
        return "no partitions".to_owned();
    }
    partitions
        .iter()
        .map(|tp| format!("P{}", tp.partition))
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe(entry: &TimelineEntry) -> String {
    let parts = partition_list(&entry.partitions);
    match &entry.kind {
        TimelineKind::Started => format!("started in {}", entry.group),
        TimelineKind::Joined => format!("joined {}", entry.group),
        TimelineKind::Departed { departure, .. } => {
            format!("{} holding {parts}", departure.describe())
        }
        TimelineKind::Group {
            state,
            generation,
            assignor,
            leader,
            protocol,
        } => {
            let mut text = format!("is {}", state.name());
            match (generation, protocol) {
                (Some(epoch), GroupProtocol::Consumer) => {
                    text.push_str(&format!(", group epoch {epoch}"))
                }
                (Some(generation), GroupProtocol::Classic) => {
                    text.push_str(&format!(", generation {generation}"))
                }
                (None, _) => {}
            }
            if let Some(assignor) = assignor {
                text.push_str(&format!(", {assignor}"));
            }
            if let Some(leader) = leader {
                text.push_str(&format!(", leader {leader}"));
            }
            text
        }
        TimelineKind::Assigned {
            unowned_ms: Some(ms),
        } if *ms >= 50 => {
            format!(
                "assigned {parts}{}, after {:.1} s without a working owner",
                at_epoch(entry.epoch),
                *ms as f64 / 1000.0
            )
        }
        TimelineKind::Assigned { .. } => format!("assigned {parts}{}", at_epoch(entry.epoch)),
        TimelineKind::Revoked => format!("revoked {parts}{}", at_epoch(entry.epoch)),
        TimelineKind::Released => format!("its revoke callback gave up {parts}"),
        TimelineKind::Stopping if entry.partitions.is_empty() => "asked to stop".to_owned(),
        TimelineKind::Stopping => format!("asked to stop, holding {parts}"),
        TimelineKind::Stopped => "its process exited".to_owned(),
        // A Redis consumer holds entries, not partitions: its stream panel shows them.
        TimelineKind::Crashed if entry.partitions.is_empty() => "crashed (SIGKILL)".to_owned(),
        TimelineKind::Crashed => format!("crashed (SIGKILL) holding {parts}"),
        TimelineKind::PollTimeout {
            max_poll_interval_ms,
        } => format!(
            "did not poll within max.poll.interval.ms ({} s): its client left the group holding {parts}",
            max_poll_interval_ms / 1000
        ),
        TimelineKind::Failed { reason } => format!("failed: {reason}"),
        TimelineKind::BrokerDown { reason } => {
            format!("{reason}; consumers retry and cannot reach their coordinator")
        }
        TimelineKind::BrokerUp => "answers again; the consumers reconnect and rejoin".to_owned(),
        TimelineKind::Claimed { entries } => format!(
            "claimed {} pending entr{} from another consumer ({}); each is delivered again",
            entries.len(),
            if entries.len() == 1 { "y" } else { "ies" },
            entries.join(", ")
        ),
        TimelineKind::Instructor { action } => action.clone(),
    }
}

/// Under the consumer protocol, the member's epoch after a move: " (epoch N)".
fn at_epoch(epoch: Option<i32>) -> String {
    epoch.map_or_else(String::new, |epoch| format!(" (epoch {epoch})"))
}
