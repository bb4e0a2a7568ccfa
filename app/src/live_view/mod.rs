//! The right column: controls, partition lanes, groups, instance cards, messages and the timeline.
//!
//! Each group member keeps one colour (`c0`…`c7` in the style sheet) wherever it appears: its card,
//! the partitions it owns in the lanes, its messages and its timeline entries. Members grouplab
//! started are instance cards; the learner's own consumers are external cards, drawn dashed.
//!
//! One file per part: `status` (badges, notices, the screen reader's announcements), `controls`
//! (a quick bar over folded forms) and `consumer_form`, `lanes`, `groups`, `instances`,
//! `ownership` (partition ownership over time), `held` (its Redis and RabbitMQ counterpart: what each
//! consumer held over time), `time_axis` (what the charts over time share), `streams` (Redis),
//! `queues` (RabbitMQ), `crashes` (lab 15), `ledger`
//! (ledger, keys, lag) and `feed` (messages, timeline). This file lays them out and holds what
//! they share.

mod consumer_form;
mod controls;
mod crashes;
mod feed;
mod groups;
mod held;
mod instances;
mod lanes;
mod ledger;
mod ownership;
mod queues;
mod status;
mod streams;
mod time_axis;

use grouplab_protocol::{
    Backend, BrokerHealth, GROUP_COLOUR, LabSetup, LabSnapshot, PALETTE, TopicPartition,
};
use leptos::prelude::*;

use self::controls::Controls;
pub use self::controls::Shortcuts;
use self::crashes::Crashes;
use self::feed::{Messages, Timeline};
use self::groups::Groups;
use self::held::HeldCharts;
use self::instances::Instances;
use self::lanes::Topics;
use self::ledger::{Keys, LagCharts, Ledgers};
use self::ownership::OwnershipCharts;
use self::queues::Queues;
pub use self::status::{Announcer, BrokerBadge, InstructorBanner, LinkBadge, Notices};
use self::streams::Streams;
use crate::live::Live;

#[component]
pub fn LiveView(setup: LabSetup) -> impl IntoView {
    let live = expect_context::<Live>();
    let connected = move || live.view.with(Option::is_some);
    // What only one broker has is hidden by the style sheet (`.kafka-only`, `.redis-only`,
    // `.rabbitmq-only`, and `.not-rabbitmq` for what Kafka and Redis share).
    let compare = setup.compare_crashes;
    let broker = match setup.broker {
        Backend::Kafka => "kafka",
        Backend::Redis => "redis",
        Backend::RabbitMq => "rabbitmq",
    };
    view! {
        <section class="live" aria-label="Live view" data-broker=broker tabindex="0">
            {(!live.read_only).then(|| view! { <Controls setup /> })}
            <Show when=move || with_view(live, |v| v.lab_problem.is_some()).unwrap_or(false)>
                <div class="banner" role="alert" data-testid="lab-problem">
                    <strong>"The latest edit of this lab cannot be read; the last good version is shown."</strong>
                    <p><code>{move || with_view(live, |v| v.lab_problem.clone()).flatten()}</code></p>
                </div>
            </Show>
            <Show when=move || with_view(live, |v| v.broker.health.outage().is_some()).unwrap_or(false)>
                <div class="banner" role="alert" data-testid="broker-down">
                    <strong>{move || {
                        if with_view(live, |v| matches!(v.broker.health, BrokerHealth::Stopped { .. })).unwrap_or(false) {
                            "The broker is stopped."
                        } else {
                            "The broker is not answering."
                        }
                    }}</strong>
                    <p>{move || with_view(live, |v| v.broker.health.outage()).flatten()}</p>
                </div>
            </Show>
            <Show
                when=connected
                fallback=|| view! { <p class="muted waiting">"Connecting to the lab…"</p> }
            >
                // The picture first: partitions and their owners, the group and its members,
                // and ownership over time; what the labs add after it.
                <Topics />
                <Groups />
                <Streams />
                <Queues />
                {compare.then(|| view! { <Crashes /> })}
                <Instances />
                <OwnershipCharts />
                <HeldCharts />
                <LagCharts />
                <Ledgers />
                <Keys />
                <div class="feeds">
                    <Messages />
                    <Timeline />
                </div>
            </Show>
        </section>
    }
}

fn colour_class(colour: u8) -> String {
    if colour == GROUP_COLOUR {
        "cg".to_owned()
    } else {
        format!("c{}", colour % PALETTE)
    }
}

fn partition_names(partitions: &[TopicPartition]) -> String {
    if partitions.is_empty() {
        "none".to_owned()
    } else {
        partitions
            .iter()
            .map(|tp| format!("P{}", tp.partition))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn with_view<T>(live: Live, f: impl FnOnce(&LabSnapshot) -> T) -> Option<T> {
    live.view.with(|v| v.as_ref().map(f))
}
/// Parses a number typed in a form, or tells the learner what is wrong.
fn number<T: std::str::FromStr>(live: Live, what: &str, text: &str) -> Option<T> {
    match text.trim().parse() {
        Ok(n) => Some(n),
        Err(_) => {
            live.notify(grouplab_protocol::Notice::error(
                format!("The {what} is not a number"),
                format!("`{text}` is not a whole number: type digits only."),
            ));
            None
        }
    }
}
/// A Redis or RabbitMQ consumer's table cell: the name of its page instance, or its own (then
/// the learner runs it), in its colour.
fn consumer_cell(
    live: Live,
    instance: Option<grouplab_protocol::InstanceId>,
    own_name: String,
    colour: u8,
) -> impl IntoView {
    let yours = instance.is_none();
    let name = instance
        .and_then(|id| with_view(live, |v| v.instance(id).map(|i| i.name.clone())).flatten())
        .unwrap_or(own_name);
    view! {
        <td>
            <span class=format!("chip {}", colour_class(colour))>{name}</span>
            {yours.then(|| view! { <span class="muted">" yours"</span> })}
        </td>
    }
}
/// A wall-clock time of day for the timeline, in the browser's time zone.
fn clock(at: u64) -> String {
    #[cfg(feature = "hydrate")]
    {
        let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(at as f64));
        format!(
            "{:02}:{:02}:{:02}.{:03}",
            date.get_hours(),
            date.get_minutes(),
            date.get_seconds(),
            date.get_milliseconds()
        )
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let ms = at % 86_400_000;
        format!(
            "{:02}:{:02}:{:02}.{:03}",
            ms / 3_600_000,
            ms / 60_000 % 60,
            ms / 1000 % 60,
            ms % 1000
        )
    }
}

/// A table of a stream's or a queue's consumers (whoever runs them), or of crashes.
fn consumer_table(columns: &'static [&'static str], rows: impl IntoView) -> impl IntoView {
    view! {
        <table class="consumers">
            <thead><tr>{columns.iter().map(|column| view! { <th>{*column}</th> }).collect_view()}</tr></thead>
            <tbody>{rows}</tbody>
        </table>
    }
}

/// A box under a stream or a queue listing what its consumers table does not show: readers in
/// no group, operations the broker refused.
fn side_list(
    testid: &'static str,
    title: &'static str,
    note: &'static str,
    items: impl IntoView,
) -> impl IntoView {
    view! {
        <div class="loose-readers" data-testid=testid>
            <h4>{title}</h4>
            <p class="muted">{note}</p>
            <ul>{items}</ul>
        </div>
    }
}
