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
        <span class="badge broker" class:down=down title=reason data-testid="broker-badge">
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
