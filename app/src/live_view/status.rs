//! What the page says about its connections: the broker's badge, the live link's badge, and the
//! notices (confirmations, warnings, errors) in the learner's words.

use grouplab_protocol::{Backend, BrokerHealth, NoticeLevel};
use leptos::prelude::*;

use super::with_view;
use crate::live::{LinkStatus, Live};

#[component]
pub fn BrokerBadge() -> impl IntoView {
    let live = expect_context::<Live>();
    let text = move || {
        with_view(live, |v| {
            let kind = match v.broker.backend {
                Backend::Redis => "Redis",
                Backend::RabbitMq => "RabbitMQ",
                Backend::Kafka if v.broker.embedded => "embedded broker",
                Backend::Kafka => "Kafka cluster",
            };
            // Redis and RabbitMQ have no address until grouplab has started them.
            if v.broker.bootstrap_servers.is_empty() && v.broker.health == BrokerHealth::Unknown {
                return format!("{kind} · starting…");
            }
            let health = match &v.broker.health {
                BrokerHealth::Unknown => "checking…",
                BrokerHealth::Up => "up",
                BrokerHealth::Down { .. } => "DOWN",
                BrokerHealth::Stopped { .. } => "STOPPED",
            };
            format!("{kind} {} · {health}", v.broker.bootstrap_servers)
        })
        .unwrap_or_default()
    };
    let down = move || with_view(live, |v| v.broker.health.outage().is_some()).unwrap_or(false);
    let reason = move || {
        with_view(live, |v| v.broker.health.outage())
            .flatten()
            .unwrap_or_default()
    };
    view! {
        <span
            class="badge broker"
            class:down=down
            title=move || Some(reason()).filter(|r| !r.is_empty()).unwrap_or_else(text)
            data-testid="broker-badge"
        >
            {text}
        </span>
    }
}

#[component]
pub fn LinkBadge() -> impl IntoView {
    let live = expect_context::<Live>();
    let (text, class) = (
        move || match live.status.get() {
            LinkStatus::Connecting => "connecting…",
            LinkStatus::Live => "live",
            LinkStatus::Reconnecting => "reconnecting…",
            LinkStatus::Outdated => "page outdated: reload",
        },
        move || format!("badge link-{:?}", live.status.get()).to_lowercase(),
    );
    view! { <span class=class data-testid="link-status">{text}</span> }
}

#[component]
pub fn Notices() -> impl IntoView {
    let live = expect_context::<Live>();
    view! {
        <div class="notices" aria-live="polite" data-testid="notices">
            <For each=move || live.notices.get() key=|n| n.id let:shown>
                <div
                    class="notice"
                    class:error=shown.notice.level == NoticeLevel::Error
                    class:warning=shown.notice.level == NoticeLevel::Warning
                    role=if shown.notice.level == NoticeLevel::Info { "status" } else { "alert" }
                >
                    <strong>{shown.notice.title.clone()}</strong>
                    <p>{shown.notice.detail.clone()}</p>
                    <button class="dismiss" aria-label="Dismiss" on:click=move |_| live.dismiss(shown.id)>
                        "×"
                    </button>
                </div>
            </For>
        </div>
    }
}

/// The class instructor's latest message, until the learner dismisses it (a newer one shows again).
#[component]
pub fn InstructorBanner() -> impl IntoView {
    let live = expect_context::<Live>();
    // Kept in the browser, so that a dismissed message stays dismissed on a reload.
    let dismissed = RwSignal::new(dismissed_banner());
    let banner = move || {
        with_view(live, |v| v.banner.clone())
            .flatten()
            .filter(|banner| dismissed.get() != Some(banner.at))
    };
    view! {
        {move || banner().map(|banner| {
            let at = banner.at;
            view! {
                <div class="instructor-banner" role="alert" data-testid="instructor-banner">
                    <strong>"From your instructor: "</strong>
                    <span data-testid="instructor-message">{banner.text}</span>
                    <button class="dismiss" aria-label="Dismiss the message" data-testid="dismiss-banner" on:click=move |_| {
                        dismiss_banner(at);
                        dismissed.set(Some(at));
                    }>
                        "×"
                    </button>
                </div>
            }
        })}
    }
}

/// Where the browser keeps the time of the instructor's message the learner dismissed last.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
const DISMISSED_BANNER_KEY: &str = "grouplab-dismissed-banner";

fn dismissed_banner() -> Option<u64> {
    #[cfg(feature = "hydrate")]
    {
        window()
            .local_storage()
            .ok()
            .flatten()
            .and_then(|storage| storage.get_item(DISMISSED_BANNER_KEY).ok().flatten())
            .and_then(|at| at.parse().ok())
    }
    #[cfg(not(feature = "hydrate"))]
    None
}

fn dismiss_banner(at: u64) {
    #[cfg(feature = "hydrate")]
    if let Some(storage) = window().local_storage().ok().flatten() {
        let _ = storage.set_item(DISMISSED_BANNER_KEY, &at.to_string());
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = at;
}

/// A polite live region that tells a screen reader what changed in the lab, one sentence per
/// rebalance ("Rebalance, generation 3: A owns P0 and P1, C owns P2") and per step passed: the
/// group's view only says who owns what once every member has its partitions.
#[component]
pub fn Announcer() -> impl IntoView {
    let live = expect_context::<Live>();
    // What to announce: each stable group's generation and owners, and the steps passed.
    let said = Memo::new(move |_| {
        with_view(live, |v| {
            let groups: Vec<(String, Option<i32>, String)> = v
                .groups
                .iter()
                .filter(|g| g.state == grouplab_protocol::GroupState::Stable)
                .map(|g| {
                    let owners: Vec<String> = g
                        .members
                        .iter()
                        .filter(|m| !m.partitions.is_empty())
                        .map(|m| {
                            let names: Vec<String> = m
                                .partitions
                                .iter()
                                .map(|tp| format!("P{}", tp.partition))
                                .collect();
                            format!("{} owns {}", m.name, and_list(&names))
                        })
                        .collect();
                    (g.name.clone(), g.generation, owners.join(", "))
                })
                .collect();
            let passed: Vec<usize> = v
                .progress
                .steps
                .iter()
                .enumerate()
                .filter(|(_, s)| s.passed_at.is_some())
                .map(|(index, _)| index + 1)
                .collect();
            (groups, passed)
        })
    });
    let text = RwSignal::new(String::new());
    Effect::new(move |before: Option<Option<AnnouncerState>>| {
        let now = said.get();
        let before = before.flatten();
        if let (Some((groups, passed)), Some((old_groups, old_passed))) = (&now, &before) {
            let mut sentences: Vec<String> = groups
                .iter()
                .filter(|g| !old_groups.contains(g) && !g.2.is_empty())
                .map(|(name, generation, owners)| match generation {
                    Some(generation) => {
                        format!("Rebalance of {name}, generation {generation}: {owners}.")
                    }
                    None => format!("Rebalance of {name}: {owners}."),
                })
                .collect();
            sentences.extend(
                passed
                    .iter()
                    .filter(|step| !old_passed.contains(step))
                    .map(|step| format!("Step {step} passed.")),
            );
            if !sentences.is_empty() {
                text.set(sentences.join(" "));
            }
        }
        now
    });
    view! { <div class="visually-hidden" aria-live="polite" role="status" data-testid="announcer">{text}</div> }
}

type AnnouncerState = (Vec<(String, Option<i32>, String)>, Vec<usize>);

/// "P0", "P0 and P1", "P0, P1 and P2".
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}
