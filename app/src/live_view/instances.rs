//! The page's instance cards: what each owns or holds, what it received and processed, its
//! poll loop, its failures, and Stop and Crash.

use grouplab_protocol::{
    Backend, ClientCommand, CommitPolicy, ConsumerSettings, GroupProtocol, InstanceState,
    InstanceView, ProcessingMode,
};
use leptos::prelude::*;

use super::{clock, colour_class, partition_names, with_view};
use crate::live::Live;

#[component]
pub(super) fn Instances() -> impl IntoView {
    let live = expect_context::<Live>();
    let instances = move || with_view(live, |v| v.instances.clone()).unwrap_or_default();
    view! {
        <div class="instances" data-testid="instances">
            // Keyed without the counts, which change on their own (see `Live::counted`).
            <For each=instances key=|i: &InstanceView| format!("{:?}", InstanceView { received: 0, processed: 0, reported_at_us: 0, ..i.clone() }) let:instance>
                <InstanceCard instance />
            </For>
            <Show when=move || {
                with_view(live, |v| v.instances.is_empty() && v.groups.iter().all(|g| g.members.is_empty())).unwrap_or(false)
            }>
                <p class="muted">"No consumers yet. Start an instance above, or run your own consumer from a terminal."</p>
            </Show>
        </div>
    }
}

#[component]
fn InstanceCard(instance: InstanceView) -> impl IntoView {
    let live = expect_context::<Live>();
    let id = instance.id;
    let alive = instance.is_alive();
    let stopping = matches!(instance.state, InstanceState::Stopping { .. });
    // Counted by every batch of messages, which only tells `live.counted`.
    let counts = move || {
        live.counted.track();
        live.view
            .with_untracked(|v| v.as_ref()?.instance(id).map(|i| (i.received, i.processed)))
            .unwrap_or_default()
    };
    // What the broker gave the instance's member: the same truth as for every other member.
    let partitions = move || {
        with_view(live, |v| {
            v.member_of(id).map(|m| partition_names(&m.partitions))
        })
        .flatten()
        .unwrap_or_else(|| "none".to_owned())
    };
    let state = instance.state.clone();
    let backend = with_view(live, |v| v.broker.backend).unwrap_or_default();
    let consumer_name = instance.consumer_name().to_owned();
    let group = instance.group.clone();
    let topic = instance.topic.clone();
    // On Redis: what this consumer holds unacknowledged, as Redis says.
    let pending = move || {
        with_view(live, |v| {
            v.stream(&topic)
                .and_then(|s| s.group(&group))
                .and_then(|g| g.consumer(&consumer_name))
                .map_or(0, |c| c.pending)
        })
        .unwrap_or(0)
    };
    // On RabbitMQ: what this consumer holds unacked, as the management API says.
    let (queue_name, tag) = (instance.topic.clone(), instance.client_id.clone());
    let unacked = move || {
        with_view(live, |v| {
            v.queue(&queue_name)
                .and_then(|q| q.consumer(&tag))
                .map_or(0, |c| c.unacked)
        })
        .unwrap_or(0)
    };
    let status = move || {
        match &state {
        InstanceState::Crashed {
            session_timeout_ms: 0,
            ..
        } if backend == Backend::RabbitMq => "Its connection dropped: RabbitMQ put what it held unacked back in the queue at once, marked redelivered".to_owned(),
        // A Redis group never times a consumer out.
        InstanceState::Crashed {
            session_timeout_ms: 0,
            ..
        } => "Still a consumer of its group: what it held stays pending until another consumer claims it".to_owned(),
        InstanceState::Crashed {
            at,
            session_timeout_ms,
            noticed_at: None,
        } => {
            let deadline = at + u64::from(*session_timeout_ms);
            let now = live.now.get();
            if now == 0 {
                String::new()
            } else if now < deadline {
                format!(
                    "The group will notice in {:.1} s (session timeout)",
                    (deadline - now) as f64 / 1000.0
                )
            } else {
                "Session timed out: waiting for the group to rebalance".to_owned()
            }
        }
        InstanceState::Crashed {
            at,
            noticed_at: Some(noticed),
            ..
        } => {
            format!(
                "The group noticed after {:.1} s",
                noticed.saturating_sub(*at) as f64 / 1000.0
            )
        }
        InstanceState::Failed { reason, .. } => reason.clone(),
        InstanceState::Joining => "Joining the group…".to_owned(),
        InstanceState::Stopping { .. } => "Finishing its work and leaving the group…".to_owned(),
        _ => String::new(),
    }
    };
    let name = instance.name.clone();
    let summary = settings_summary(&instance, backend);
    let summary_in_full = summary.clone();
    let max_poll_ms = instance.settings.max_poll_interval_ms;
    let busy = instance.busy.filter(|_| alive);
    let busy_status = move || {
        let busy = busy?;
        let now = live.now.get();
        let waited = now.saturating_sub(busy.polled_at);
        Some(format!(
            "Processing {} message(s); last poll {:.1} s ago (max poll interval {} s)",
            busy.messages,
            waited as f64 / 1000.0,
            max_poll_ms / 1000
        ))
    };
    let over = move || {
        busy.is_some_and(|b| live.now.get().saturating_sub(b.polled_at) > u64::from(max_poll_ms))
    };
    view! {
        <article
            class=format!("instance {}", colour_class(instance.colour))
            class:gone=!alive
            data-testid=format!("instance-{}", instance.name)
            data-state=instance.state.label()
        >
            // The buttons share the name's line, so that a card takes little height beside the chart.
            <header>
                <span class="name">{instance.name.clone()}</span>
                <span class="state">{instance.state.label()}</span>
                <Show when=move || alive && !live.read_only>
                    <span class="buttons">
                        <button class="secondary" disabled=stopping data-testid=format!("stop-{name}") on:click=move |_| live.send(ClientCommand::StopInstance { instance: id })>
                            "Stop"
                        </button>
                        <button class="danger" data-testid=format!("crash-{name}") on:click=move |_| live.send(ClientCommand::CrashInstance { instance: id })>
                            "Crash"
                        </button>
                    </span>
                </Show>
            </header>
            <p class="owns kafka-only">"Owns: " <strong data-testid=format!("owns-{}", instance.name)>{partitions}</strong></p>
            <p class="owns redis-only">"Pending: " <strong data-testid=format!("pending-{}", instance.name)>{pending}</strong></p>
            <p class="owns rabbitmq-only">"Unacked: " <strong data-testid=format!("unacked-{}", instance.name)>{unacked}</strong></p>
            <p class="received">
                "Received: " <strong data-testid=format!("received-{}", instance.name)>{move || counts().0}</strong>
                " · processed: " <strong data-testid=format!("processed-{}", instance.name)>{move || counts().1}</strong>
            </p>
            {instance.queue.filter(|_| alive).map(|queue| view! {
                <p class="queue" data-testid=format!("queue-{}", instance.name)>
                    {format!("Queue: {} waiting{}", queue.depth, if queue.paused { " · full: partitions paused" } else { "" })}
                </p>
            })}
            <p class="busy" class:over=over data-testid=format!("busy-{}", instance.name)>{busy_status}</p>
            {instance.failing.clone().filter(|_| alive).map(|failing| view! {
                <p class="problem" data-testid=format!("failing-{}", instance.name)>
                    {format!("Failing P{}@{}: attempt {} ({})", failing.partition, failing.offset, failing.attempts, failing.error)}
                </p>
            })}
            {(instance.dead_lettered > 0).then(|| view! {
                <p class="muted" data-testid=format!("parked-{}", instance.name)>{format!("{}: {}", match backend { Backend::Redis => "Moved to the dead-letter stream", Backend::RabbitMq => "Rejected for good", Backend::Kafka => "Parked in the dead-letter topic" }, instance.dead_lettered)}</p>
            })}
            <p class="settings muted" title=summary_in_full>{summary}</p>
            <p class="status" data-testid=format!("status-{}", instance.name)>{status}</p>
            // Kept on a stopped card: a commit refused as it left says why its work is done again.
            {instance.problem.as_ref().map(|problem| view! {
                <p class="problem" role="status" data-testid=format!("problem-{}", instance.name)>
                    <span class="muted">{clock(problem.at)} " client error: "</span>
                    {problem.message.clone()}
                </p>
            })}
        </article>
    }
}

/// The settings of an instance in one line, leaving out what is at its default.
fn settings_summary(instance: &InstanceView, backend: Backend) -> String {
    let settings = &instance.settings;
    let defaults = ConsumerSettings::default();
    if backend == Backend::RabbitMq {
        let mut parts = vec![settings.commit.rabbitmq_label().to_owned()];
        parts.push(match settings.prefetch {
            0 => "prefetch: no limit".to_owned(),
            n => format!("prefetch {n}"),
        });
        if settings.processing_ms > 0 {
            parts.push(format!("{} ms per message", settings.processing_ms));
        }
        if let Some(n) = settings.crash_after {
            parts.push(format!("crashes after {n}"));
        }
        if let Some(text) = &settings.fail_on {
            parts.push(format!(
                "fails on “{text}”, then {}",
                if settings.requeue_on_failure {
                    "requeues it"
                } else {
                    "rejects it"
                }
            ));
        }
        return parts.join(" · ");
    }
    if backend == Backend::Redis {
        let mut parts = vec![
            format!("{} as {}", instance.group, instance.consumer_name()),
            settings.commit.redis_label().to_owned(),
            format!("COUNT {}", settings.max_poll_records),
        ];
        if settings.processing_ms > 0 {
            parts.push(format!("{} ms per entry", settings.processing_ms));
        }
        if let Some(idle) = settings.claim_idle_ms {
            parts.push(format!("claims entries idle {} ms", idle));
        }
        if let Some(n) = settings.crash_after {
            parts.push(format!("crashes after {n}"));
        }
        if let Some(text) = &settings.fail_on {
            parts.push(format!("fails on “{text}”"));
            if let Some(stream) = &settings.dead_letter_topic {
                parts.push(format!("after {} retries to {stream}", settings.retries));
            }
        }
        return parts.join(" · ");
    }
    let commit = match settings.commit {
        CommitPolicy::Auto => format!(
            "{} every {} s",
            settings.commit.label(),
            f64::from(settings.auto_commit_interval_ms) / 1000.0
        ),
        other => other.label().to_owned(),
    };
    let mut parts = match settings.group_protocol {
        GroupProtocol::Classic => vec![
            instance.group.clone(),
            commit,
            format!("session {} s", settings.session_timeout_ms / 1000),
            settings.assignor.label().to_owned(),
        ],
        // The broker sets the session under this protocol.
        GroupProtocol::Consumer => vec![
            instance.group.clone(),
            commit,
            "consumer protocol".to_owned(),
            format!("{} (broker-side)", settings.assignor.librdkafka_name()),
        ],
    };
    if settings.processing_ms > 0 {
        parts.push(format!("{} ms per message", settings.processing_ms));
    }
    if settings.max_poll_records != defaults.max_poll_records {
        parts.push(format!("{} per poll", settings.max_poll_records));
    }
    if settings.max_poll_interval_ms != defaults.max_poll_interval_ms {
        parts.push(format!(
            "max poll {} s",
            settings.max_poll_interval_ms / 1000
        ));
    }
    if settings.processing == ProcessingMode::Queue {
        parts.push("worker queue".to_owned());
    }
    if let Some(id) = &settings.static_id {
        parts.push(format!("static id {id}"));
    }
    if let Some(n) = settings.crash_after {
        parts.push(format!("crashes after {n}"));
    }
    if let Some(text) = &settings.fail_on {
        parts.push(format!("fails on “{text}”, {} retries", settings.retries));
        parts.push(match &settings.dead_letter_topic {
            Some(topic) => format!("then to {topic}"),
            None => "then retries forever".to_owned(),
        });
    }
    parts.join(" · ")
}
