//! The right column: controls, partition lanes, instance cards, messages and the timeline.
//!
//! Each group member keeps one colour (`c0`…`c7` in the style sheet) wherever it appears: its card,
//! the partitions it owns in the lanes, its messages and its timeline entries. Members grouplab
//! started are instance cards; the learner's own consumers are external cards, drawn dashed.

use grouplab_protocol::{
    Assignor, Backend, BrokerHealth, ClientCommand, CommitPolicy, ConsumerSettings, GROUP_COLOUR,
    GroupView, InstanceState, InstanceView, KeyMode, LabSetup, LabSnapshot, LagStatus, LagView,
    LedgerView, MemberView, MembershipSource, NoticeLevel, PALETTE, ProcessingMode, TimelineEntry,
    TimelineKind, TopicPartition, TopicView, limits,
};
use leptos::either::Either;
use leptos::prelude::*;

use crate::live::{LinkStatus, Live};

/// How many recent messages and timeline entries are listed.
const SHOWN_MESSAGES: usize = 14;
const SHOWN_TIMELINE: usize = 40;

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
        <section class="live" aria-label="Live view" data-broker=broker>
            <Controls setup />
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
                <Topics />
                <Groups />
                <Streams />
                <Queues />
                {compare.then(|| view! { <Crashes /> })}
                <Instances />
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

#[component]
fn Controls(setup: LabSetup) -> impl IntoView {
    let live = expect_context::<Live>();
    let topic = RwSignal::new(setup.topic.clone());
    let partitions = RwSignal::new(setup.partitions.to_string());
    let count = RwSignal::new("12".to_owned());
    let key_mode = RwSignal::new("none".to_owned());
    let fixed_key = RwSignal::new("user-1".to_owned());
    let distinct = RwSignal::new("6".to_owned());
    let target_partition = RwSignal::new(String::new());
    let text = RwSignal::new(String::new());
    let per_second = RwSignal::new("20".to_owned());
    let steady_seconds = RwSignal::new("30".to_owned());
    let group = RwSignal::new(setup.group.clone());
    let defaults = setup.consumer.clone();
    let session_s = RwSignal::new((defaults.session_timeout_ms / 1000).to_string());
    let assignor = RwSignal::new(defaults.assignor.librdkafka_name().to_owned());
    let commit = RwSignal::new(defaults.commit.key().to_owned());
    let processing_ms = RwSignal::new(defaults.processing_ms.to_string());
    let max_poll_records = RwSignal::new(defaults.max_poll_records.to_string());
    let max_poll_s = RwSignal::new((defaults.max_poll_interval_ms / 1000).to_string());
    let queue = RwSignal::new(defaults.processing == ProcessingMode::Queue);
    let static_id = RwSignal::new(defaults.static_id.clone().unwrap_or_default());
    let crash_after = RwSignal::new(
        defaults
            .crash_after
            .map(|n| n.to_string())
            .unwrap_or_default(),
    );
    let commit_interval_ms = RwSignal::new(defaults.auto_commit_interval_ms.to_string());
    let fail_on = RwSignal::new(defaults.fail_on.clone().unwrap_or_default());
    let retries = RwSignal::new(defaults.retries.to_string());
    let dead_letter = RwSignal::new(defaults.dead_letter_topic.clone().unwrap_or_default());
    let block_ms = RwSignal::new(defaults.block_ms.to_string());
    let claim_idle_ms = RwSignal::new(
        defaults
            .claim_idle_ms
            .map(|n| n.to_string())
            .unwrap_or_default(),
    );
    let prefetch = RwSignal::new(defaults.prefetch.to_string());
    let consumer_name = RwSignal::new(defaults.consumer_name.clone().unwrap_or_default());
    let requeue = RwSignal::new(defaults.requeue_on_failure);
    let backend = setup.broker;
    let redis = backend == Backend::Redis;
    let commit_label = move |c: CommitPolicy| match backend {
        Backend::Kafka => c.label(),
        Backend::Redis => c.redis_label(),
        Backend::RabbitMq => c.rabbitmq_label(),
    };

    let create_topic = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if let Some(partitions) = number(live, "partition count", &partitions.get_untracked()) {
            live.send(ClientCommand::CreateTopic {
                topic: topic.get_untracked(),
                partitions,
            });
        }
    };
    // The produce form's key choice, or `None` after telling the learner what is wrong.
    let keys = move || match key_mode.get_untracked().as_str() {
        "fixed" => Some(KeyMode::Fixed {
            key: fixed_key.get_untracked(),
        }),
        "rotating" => number(live, "number of keys", &distinct.get_untracked())
            .map(|distinct| KeyMode::Rotating { distinct }),
        "round_robin" => Some(KeyMode::RoundRobin),
        _ => Some(KeyMode::None),
    };
    let produce = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Some(count) = number(live, "message count", &count.get_untracked()) else {
            return;
        };
        let Some(keys) = keys() else {
            return;
        };
        let typed = target_partition.get_untracked();
        let partition = if typed.trim().is_empty() {
            None
        } else {
            let Some(p) = number(live, "partition", &typed) else {
                return;
            };
            Some(p)
        };
        live.send(ClientCommand::Produce {
            topic: topic.get_untracked(),
            count,
            keys,
            partition,
            text: {
                let typed = text.get_untracked();
                (!typed.trim().is_empty()).then(|| typed.trim().to_owned())
            },
        });
    };
    let produce_steadily = move |_| {
        let Some(per_second) = number(live, "rate", &per_second.get_untracked()) else {
            return;
        };
        let Some(seconds) = number(live, "duration", &steady_seconds.get_untracked()) else {
            return;
        };
        let Some(keys) = keys() else {
            return;
        };
        live.send(ClientCommand::ProduceSteadily {
            topic: topic.get_untracked(),
            per_second,
            seconds,
            keys,
        });
    };
    let add_partitions = move |_| {
        if let Some(partitions) = number(live, "partition count", &partitions.get_untracked()) {
            live.send(ClientCommand::AddPartitions {
                topic: topic.get_untracked(),
                partitions,
            });
        }
    };
    let start = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Some(seconds) = number::<u32>(live, "session timeout", &session_s.get_untracked())
        else {
            return;
        };
        let Some(processing_ms) =
            number::<u32>(live, "processing time", &processing_ms.get_untracked())
        else {
            return;
        };
        let Some(max_poll_records) =
            number::<u32>(live, "batch size", &max_poll_records.get_untracked())
        else {
            return;
        };
        let Some(max_poll_s) =
            number::<u32>(live, "max poll interval", &max_poll_s.get_untracked())
        else {
            return;
        };
        let typed = crash_after.get_untracked();
        let crash_after = if typed.trim().is_empty() {
            None
        } else {
            let Some(n) = number::<u32>(live, "crash after count", &typed) else {
                return;
            };
            Some(n)
        };
        let Some(retries) = number::<u32>(live, "number of retries", &retries.get_untracked())
        else {
            return;
        };
        let Some(block_ms) = number::<u32>(live, "read wait", &block_ms.get_untracked()) else {
            return;
        };
        let Some(prefetch) = number::<u16>(live, "prefetch", &prefetch.get_untracked()) else {
            return;
        };
        let typed = claim_idle_ms.get_untracked();
        let claim_idle_ms = if typed.trim().is_empty() {
            None
        } else {
            let Some(n) = number::<u32>(live, "claim idle time", &typed) else {
                return;
            };
            Some(n)
        };
        let Some(auto_commit_interval_ms) = number::<u32>(
            live,
            "auto-commit interval",
            &commit_interval_ms.get_untracked(),
        ) else {
            return;
        };
        let optional = |signal: RwSignal<String>| {
            let typed = signal.get_untracked();
            (!typed.trim().is_empty()).then(|| typed.trim().to_owned())
        };
        let typed = static_id.get_untracked();
        let assignor = Assignor::ALL
            .into_iter()
            .find(|a| a.librdkafka_name() == assignor.get_untracked())
            .unwrap_or_default();
        let commit = CommitPolicy::ALL
            .into_iter()
            .find(|c| c.key() == commit.get_untracked())
            .unwrap_or_default();
        let settings = ConsumerSettings {
            session_timeout_ms: seconds.saturating_mul(1000),
            assignor,
            commit,
            processing_ms,
            max_poll_records,
            max_poll_interval_ms: max_poll_s.saturating_mul(1000),
            static_id: (!typed.trim().is_empty()).then(|| typed.trim().to_owned()),
            processing: if queue.get_untracked() {
                ProcessingMode::Queue
            } else {
                ProcessingMode::InPollLoop
            },
            crash_after,
            auto_commit_interval_ms,
            fail_on: optional(fail_on),
            retries,
            dead_letter_topic: optional(dead_letter),
            block_ms,
            claim_idle_ms,
            prefetch,
            requeue_on_failure: requeue.get_untracked(),
            consumer_name: optional(consumer_name),
            ..ConsumerSettings::default()
        };
        live.send(ClientCommand::StartInstance {
            group: group.get_untracked(),
            topic: topic.get_untracked(),
            settings,
        });
    };

    view! {
        <div class="controls">
            <form class="control" novalidate on:submit=create_topic>
                <h3>{match backend { Backend::Kafka => "Topic", Backend::Redis => "Stream", Backend::RabbitMq => "Queue" }}</h3>
                <label>"Name" <input data-testid="topic-name" bind:value=topic maxlength=limits::MAX_NAME_LEN /></label>
                <label class="kafka-only">"Partitions" <input data-testid="topic-partitions" type="number" min="1" max=limits::MAX_PARTITIONS bind:value=partitions /></label>
                <button type="submit" class="kafka-only" data-testid="create-topic">"Create topic"</button>
                <button
                    type="button"
                    class="secondary kafka-only"
                    data-testid="add-partitions"
                    title="Grows the existing topic to this many partitions (Kafka never removes partitions)."
                    on:click=add_partitions
                >
                    "Grow to this many partitions"
                </button>
                <button
                    type="button"
                    class="danger-outline reset"
                    data-testid="reset-lab"
                    title="Stops the instances and deletes the lab's topics and groups; your progress is kept."
                    on:click=move |_| live.send(ClientCommand::ResetLab)
                >
                    "Reset lab"
                </button>
            </form>
            <form class="control" novalidate on:submit=produce>
                <h3>"Produce to " <code>{move || topic.get()}</code></h3>
                <label>"Messages" <input data-testid="produce-count" type="number" min="1" max=limits::MAX_PRODUCE bind:value=count /></label>
                <label class="kafka-only">"Keys"
                    <select data-testid="produce-keys" bind:value=key_mode>
                        <option value="none">"none (sticky: a batch to one partition)"</option>
                        <option value="round_robin">"none, round robin over the partitions"</option>
                        <option value="fixed">"one key"</option>
                        <option value="rotating">"rotating keys"</option>
                    </select>
                </label>
                <Show when=move || key_mode.get() == "fixed">
                    <label>"Key" <input bind:value=fixed_key maxlength=limits::MAX_KEY_LEN /></label>
                </Show>
                <Show when=move || key_mode.get() == "rotating">
                    <label>"Distinct keys" <input data-testid="produce-distinct" type="number" min="1" bind:value=distinct /></label>
                </Show>
                <label class="kafka-only">"Partition" <input data-testid="produce-partition" placeholder="any" bind:value=target_partition /></label>
                <label>"Add text" <input data-testid="produce-text" placeholder="none" bind:value=text maxlength=limits::MAX_KEY_LEN /></label>
                <button type="submit" data-testid="produce">"Produce"</button>
                <fieldset class="steady">
                    <legend>"Or steadily"</legend>
                    <label>"Per second" <input data-testid="produce-rate" type="number" min="1" max=limits::MAX_RATE bind:value=per_second /></label>
                    <label>"For (s)" <input data-testid="produce-seconds" type="number" min="1" max=limits::MAX_STEADY_SECONDS bind:value=steady_seconds /></label>
                    <button type="button" class="secondary" data-testid="produce-steadily" on:click=produce_steadily>"Produce steadily"</button>
                    <button type="button" class="secondary" data-testid="stop-producing" on:click=move |_| live.send(ClientCommand::StopProducing)>"Stop producing"</button>
                </fieldset>
            </form>
            <form class="control" novalidate on:submit=start>
                <h3>"Consumer of " <code>{move || topic.get()}</code></h3>
                <label>"Group" <input data-testid="instance-group" bind:value=group maxlength=limits::MAX_NAME_LEN /></label>
                <label>{if backend == Backend::Kafka { "Commit" } else { "Acknowledge" }}
                    <select data-testid="instance-commit" bind:value=commit>
                        {CommitPolicy::ALL.into_iter().map(|c| view! { <option value=c.key()>{commit_label(c)}</option> }).collect_view()}
                    </select>
                </label>
                <label class="rabbitmq-only">"Prefetch (0: no limit)" <input data-testid="instance-prefetch" type="number" min="0" max="1000" bind:value=prefetch /></label>
                <label class="redis-only">"Consumer name" <input data-testid="instance-consumer-name" placeholder="its client id" bind:value=consumer_name maxlength=limits::MAX_NAME_LEN /></label>
                <label class="redis-only">"Claim pending after (ms)" <input data-testid="instance-claim" type="number" min="100" placeholder="never" bind:value=claim_idle_ms /></label>
                <label>"Processing per message (ms)" <input data-testid="instance-processing" type="number" min="0" max=limits::MAX_PROCESSING_MS bind:value=processing_ms /></label>
                <label>"Crash after (messages)" <input data-testid="instance-crash-after" type="number" min="1" placeholder="never" bind:value=crash_after /></label>
                <details class="more">
                    <summary data-testid="more-settings">"More settings"</summary>
                    <label class="kafka-only">"Auto-commit every (ms)" <input data-testid="instance-commit-interval" type="number" min="100" max="60000" bind:value=commit_interval_ms /></label>
                    <label class="kafka-only">"Session timeout (s)" <input data-testid="instance-session" type="number" min="1" max="300" bind:value=session_s /></label>
                    <label class="kafka-only">"Max poll interval (s)" <input data-testid="instance-max-poll" type="number" min="1" bind:value=max_poll_s /></label>
                    <label class="not-rabbitmq">{if redis { "Entries per read (COUNT)" } else { "Messages per poll" }} <input data-testid="instance-batch" type="number" min="1" max=*limits::MAX_POLL_RECORDS.end() bind:value=max_poll_records /></label>
                    <label class="redis-only">"Read waits up to (ms, BLOCK)" <input data-testid="instance-block" type="number" min="100" max="10000" bind:value=block_ms /></label>
                    <label class="kafka-only">"Assignor"
                        <select data-testid="instance-assignor" bind:value=assignor>
                            {Assignor::ALL.into_iter().map(|a| view! { <option value=a.librdkafka_name()>{a.label()}</option> }).collect_view()}
                        </select>
                    </label>
                    <label class="kafka-only">"Static member id" <input data-testid="instance-static-id" placeholder="none (dynamic member)" bind:value=static_id maxlength=limits::MAX_NAME_LEN /></label>
                    <label class="check kafka-only"><input type="checkbox" data-testid="instance-queue" bind:checked=queue /> "Process on a worker behind a queue"</label>
                    <label>"Fail on messages containing" <input data-testid="instance-fail-on" placeholder="nothing" bind:value=fail_on maxlength=limits::MAX_KEY_LEN /></label>
                    <label class="check rabbitmq-only"><input type="checkbox" data-testid="instance-requeue" bind:checked=requeue /> "Hand a failed message back to the queue (off: reject it)"</label>
                    <label class="not-rabbitmq">"Retries" <input data-testid="instance-retries" type="number" min="0" max=limits::MAX_RETRIES bind:value=retries /></label>
                    <label class="not-rabbitmq">{if redis { "Dead-letter stream" } else { "Dead-letter topic" }} <input data-testid="instance-dead-letter" placeholder="none: retry forever" bind:value=dead_letter maxlength=limits::MAX_NAME_LEN /></label>
                </details>
                <button type="submit" data-testid="start-instance">"Start instance"</button>
            </form>
            <div class="kafka-only"><BrokerSwitch /></div>
        </div>
    }
}

/// Broker down / Broker up, for the embedded broker only: what consumers do while their
/// coordinator is gone is a lesson of its own.
#[component]
fn BrokerSwitch() -> impl IntoView {
    let live = expect_context::<Live>();
    let embedded = move || with_view(live, |v| v.broker.embedded).unwrap_or(false);
    let stopped = move || {
        with_view(live, |v| {
            matches!(v.broker.health, BrokerHealth::Stopped { .. })
        })
        .unwrap_or(false)
    };
    view! {
        <Show when=embedded>
            <div class="control broker-switch">
                <h3>"Broker"</h3>
                <p class="muted">"Stop it, watch the consumers retry, start it again: what it stored is kept."</p>
                <button
                    type="button"
                    class:danger-outline=move || !stopped()
                    data-testid="broker-switch"
                    on:click=move |_| live.send(ClientCommand::SetBroker { up: stopped() })
                >
                    {move || if stopped() { "Broker up" } else { "Broker down" }}
                </button>
            </div>
        </Show>
    }
}

#[component]
fn Topics() -> impl IntoView {
    let live = expect_context::<Live>();
    let topics = move || with_view(live, |v| v.topics.clone()).unwrap_or_default();
    view! {
        <div class="topics kafka-only">
            <For each=topics key=|t: &TopicView| (t.name.clone(), t.partitions.clone(), t.groups.clone()) let:topic>
                <TopicLanes topic />
            </For>
            <Show when=move || with_view(live, |v| v.topics.is_empty()).unwrap_or(false)>
                <p class="muted">"No topic yet. Create one above."</p>
            </Show>
        </div>
    }
}

#[component]
fn TopicLanes(topic: TopicView) -> impl IntoView {
    let live = expect_context::<Live>();
    let most = topic
        .partitions
        .iter()
        .map(|p| p.log_end)
        .max()
        .unwrap_or(0)
        .max(1);
    let groups: Vec<String> = topic.groups.iter().map(|g| g.group.clone()).collect();
    let name = topic.name.clone();
    let rows = topic
        .partitions
        .iter()
        .map(|lane| {
            let tp = TopicPartition::new(&name, lane.partition);
            let fill = (lane.log_end as f64 / most as f64 * 100.0).round();
            let cells = groups
                .iter()
                .map(|group| {
                    let committed = topic
                        .groups
                        .iter()
                        .find(|g| &g.group == group)
                        .and_then(|g| {
                            let index = topic.partitions.iter().position(|p| p.partition == lane.partition)?;
                            g.committed.get(index).copied().flatten()
                        });
                    let lag = topic.lag(group, lane.partition).unwrap_or(0);
                    let status = {
                        let (group, name, partition) = (group.clone(), name.clone(), lane.partition);
                        move || {
                            with_view(live, |v| {
                                v.lag
                                    .iter()
                                    .find(|l| l.group == group && l.topic == name)
                                    .and_then(|l| l.partitions.iter().find(|p| p.partition == partition))
                                    .map(|p| p.status)
                            })
                            .flatten()
                        }
                    };
                    let (group, tp) = (group.clone(), tp.clone());
                    let owner = move || {
                        with_view(live, |v| v.owner(&group, &tp).map(|o| (o.name.clone(), o.colour, v.is_working(o), o.is_external()))).flatten()
                    };
                    view! {
                        <td class="owner">
                            {move || match owner() {
                                Some((name, colour, alive, external)) => Either::Left(view! {
                                    <span
                                        class=format!("chip {}", colour_class(colour))
                                        class:dead=!alive
                                        class:ext=external
                                        title=if !alive { "owner has crashed: the group has not noticed yet" } else if external { "owner: your own consumer" } else { "owner" }
                                    >
                                        {name}
                                    </span>
                                }),
                                None => Either::Right(view! { <span class="chip none" title="no owner">"—"</span> }),
                            }}
                        </td>
                        <td class="num">{committed.map_or("—".to_owned(), |c| c.to_string())}</td>
                        <td class="num" class:lagging={lag > 0}>
                            {lag}
                            {move || status().filter(|s| !matches!(s, LagStatus::Measuring)).map(|s| view! {
                                <span class=format!("status {}", s.label().to_lowercase()) title="Lag status over the last polls: OK, WARNING (falling behind), STALL (owner stuck), STOP (nobody reading)">{s.label()}</span>
                            })}
                        </td>
                    }
                })
                .collect_view();
            view! {
                <tr data-testid=format!("lane-{}-{}", name, lane.partition)>
                    <th scope="row">{format!("P{}", lane.partition)}</th>
                    <td class="bar"><span style=format!("width:{fill}%")></span></td>
                    <td class="num">{lane.log_end}</td>
                    {cells}
                </tr>
            }
        })
        .collect_view();
    view! {
        <table class="lanes" data-testid=format!("topic-{}", topic.name)>
            <caption>
                <strong>{topic.name.clone()}</strong>
                {format!(" · {} partitions · {} messages", topic.partitions.len(), topic.message_count())}
            </caption>
            <thead>
                <tr>
                    <th>"Partition"</th>
                    <th>"Log"</th>
                    <th class="num">"Log end"</th>
                    {topic.groups.iter().map(|g| view! {
                        <th>{format!("{} owner", g.group)}</th>
                        <th class="num">"Committed"</th>
                        <th class="num">"Lag"</th>
                    }).collect_view()}
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
    }
}

#[component]
fn Groups() -> impl IntoView {
    let live = expect_context::<Live>();
    let groups = move || with_view(live, |v| v.groups.clone()).unwrap_or_default();
    view! {
        <div class="groups" data-testid="groups">
            <For each=groups key=|g: &GroupView| format!("{g:?}") let:group>
                <GroupPanel group />
            </For>
        </div>
    }
}

/// A Redis lab's streams: each group's position, its consumers (whoever runs them) with their
/// pending entries, and the readers that are in no group.
#[component]
fn Streams() -> impl IntoView {
    let live = expect_context::<Live>();
    let streams = move || with_view(live, |v| v.streams.clone()).unwrap_or_default();
    view! {
        <div class="streams redis-only" data-testid="streams">
            {move || streams().into_iter().map(|stream| view! {
                <div class="stream" data-stream=stream.name.clone()>
                    <h3>"Stream " <code>{stream.name.clone()}</code></h3>
                    <p class="muted">{format!(
                        "{} entr{}, newest {}",
                        stream.length,
                        if stream.length == 1 { "y" } else { "ies" },
                        stream.last_id.clone().unwrap_or_else(|| "none".into())
                    )}</p>
                    {stream.groups.into_iter().map(|group| view! {
                        <div class="stream-group" data-group=group.name.clone()>
                            <h4>"Group " <code>{group.name.clone()}</code></h4>
                            <p class="muted">{format!(
                                "last delivered {}; {} read; {} not yet handed out; {} pending",
                                group.last_delivered_id,
                                group.entries_read.map_or("?".into(), |n| n.to_string()),
                                group.lag.map_or("?".into(), |n| n.to_string()),
                                group.pending
                            )}</p>
                            <table class="consumers">
                                <thead><tr><th>"Consumer"</th><th>"Pending"</th><th>"Idle"</th><th>"Oldest pending (id ×deliveries)"</th></tr></thead>
                                <tbody>
                                    {group.consumers.into_iter().map(|c| view! {
                                        <tr data-testid="stream-consumer" data-consumer=c.name.clone() data-pending=c.pending>
                                            {consumer_cell(live, c.instance, c.name.clone(), c.colour)}
                                            <td>{c.pending}</td>
                                            <td>{format!("{:.1} s", c.idle_ms as f64 / 1000.0)}</td>
                                            <td><code>{c.entries.iter().map(|e| format!("{} ×{}", e.id, e.deliveries)).collect::<Vec<_>>().join("  ")}</code></td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        </div>
                    }).collect_view()}
                    {(!stream.loose_readers.is_empty()).then(|| view! {
                        <div class="loose-readers" data-testid="loose-readers">
                            <h4>"Readers in no group"</h4>
                            <p class="muted">"These connections read with plain XREAD: each gets every entry, nothing is shared, pending or acknowledged."</p>
                            <ul>
                                {stream.loose_readers.into_iter().map(|r| view! {
                                    <li><code>{r.client}</code>" · last command " <code>{r.command}</code></li>
                                }).collect_view()}
                            </ul>
                        </div>
                    })}
                </div>
            }).collect_view()}
        </div>
    }
}

/// The latest crash on each broker, from any lab of this server, side by side.
#[component]
fn Crashes() -> impl IntoView {
    let live = expect_context::<Live>();
    let crashes = move || with_view(live, |v| v.crashes.clone()).unwrap_or_default();
    view! {
        <Show when=move || !crashes().is_empty()>
            <div class="streams crashes" data-testid="crashes">
                <h3>"The same crash on each broker"</h3>
                <p class="muted">"The latest page instance that crashed on each broker, in any lab: what it held, when another consumer had its work, and what was delivered twice."</p>
                <table class="consumers">
                    <thead><tr><th>"Broker"</th><th>"Crashed"</th><th>"Held"</th><th>"Work moved after"</th><th>"Delivered again"</th><th>"How"</th></tr></thead>
                    <tbody>
                        {move || crashes().into_iter().map(|c| view! {
                            <tr data-testid=format!("crash-{}", c.backend.label())>
                                <td>{c.backend.label()}</td>
                                <td>{format!("{} in {}, {}", c.instance, c.lab, clock(c.at))}</td>
                                <td>{format!("{} {}", c.held, c.held_unit())}</td>
                                <td>{c.moved_after_ms.map_or_else(|| "not yet".to_owned(), |ms| format!("{:.1} s", ms as f64 / 1000.0))}</td>
                                <td>{c.delivered_again}</td>
                                <td class="muted">{c.how()}</td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </div>
        </Show>
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

/// A RabbitMQ lab's queues: what waits, what is out with consumers, and each consumer (whoever
/// runs it) with its prefetch and unacked messages.
#[component]
fn Queues() -> impl IntoView {
    let live = expect_context::<Live>();
    let queues = move || with_view(live, |v| v.queues.clone()).unwrap_or_default();
    view! {
        <div class="streams rabbitmq-only" data-testid="queues">
            {move || queues().into_iter().map(|queue| view! {
                <div class="stream" data-queue=queue.name.clone() data-testid=format!("queue-panel-{}", queue.name)>
                    <h3>"Queue " <code>{queue.name.clone()}</code></h3>
                    <p class="counts">
                        <strong data-testid=format!("ready-{}", queue.name)>{queue.ready}</strong>" ready · "
                        <strong data-testid=format!("unacked-total-{}", queue.name)>{queue.unacked}</strong>" unacked"
                        {queue.dead_letter_queue.clone().map(|target| view! { <span class="muted">" · rejected messages go to " <code>{target}</code></span> })}
                    </p>
                    <p class="muted">{format!(
                        "since it was made: {} published, {} delivered ({} redelivered), {} acknowledged",
                        queue.published, queue.delivered, queue.redelivered, queue.acked
                    )}</p>
                    {(!queue.consumers.is_empty()).then(|| view! {
                        <table class="consumers">
                            <thead><tr><th>"Consumer"</th><th>"Connection"</th><th>"Prefetch"</th><th>"Ack"</th><th>"Unacked"</th></tr></thead>
                            <tbody>
                                {queue.consumers.into_iter().map(|c| view! {
                                    <tr data-testid="queue-consumer" data-consumer=c.tag.clone() data-unacked=c.unacked>
                                        {consumer_cell(live, c.instance, c.tag.clone(), c.colour)}
                                        <td><code>{c.connection}</code></td>
                                        <td>{if c.prefetch == 0 { "no limit".to_owned() } else { c.prefetch.to_string() }}</td>
                                        <td>{if c.ack_required { "manual" } else { "auto" }}</td>
                                        <td>{c.unacked}</td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    })}
                    {(!queue.refusals.is_empty()).then(|| view! {
                        <div class="loose-readers" data-testid="refusals">
                            <h4>"Refused by RabbitMQ"</h4>
                            <p class="muted">"The broker closed these clients' channels: whatever they did next on them failed."</p>
                            <ul>
                                {queue.refusals.into_iter().map(|r| view! {
                                    <li>{clock(r.seen_at)} " " <code>{r.client}</code>": " <code>{r.operation}</code>" → " {r.error}</li>
                                }).collect_view()}
                            </ul>
                        </div>
                    })}
                </div>
            }).collect_view()}
        </div>
    }
}

/// A group's state as the broker sees it, and its members that grouplab did not start.
#[component]
fn GroupPanel(group: GroupView) -> impl IntoView {
    let leader = group.leader.as_ref().map(|id| {
        group
            .member(id)
            .map_or_else(|| id.clone(), |m| m.name.clone())
    });
    let mut facts = vec![format!("{} member(s)", group.members.len())];
    if let Some(generation) = group.generation {
        facts.push(format!("generation {generation}"));
    }
    if let Some(assignor) = &group.assignor {
        facts.push(format!("assignor {assignor}"));
    }
    if let Some(leader) = leader {
        facts.push(format!("leader {leader}"));
    }
    let source = match group.source {
        MembershipSource::Coordinator => {
            "read from the embedded broker's coordinator as it changes"
        }
        MembershipSource::Described => {
            "read with DescribeGroups from your cluster about once a second"
        }
    };
    let externals: Vec<MemberView> = group
        .members
        .iter()
        .filter(|m| m.is_external())
        .cloned()
        .collect();
    view! {
        <section class="group" data-testid=format!("group-{}", group.name)>
            <header title=source>
                <strong>{group.name.clone()}</strong>
                <span class=format!("state {}", group.state.name().to_lowercase()) data-testid=format!("group-state-{}", group.name)>
                    {group.state.name()}
                </span>
                <span class="muted">{facts.join(" · ")}</span>
            </header>
            <div class="instances">
                {externals.into_iter().map(|member| view! { <ExternalCard member /> }).collect_view()}
            </div>
        </section>
    }
}

/// A member grouplab did not start: the learner's own consumer, seen only through the broker.
#[component]
fn ExternalCard(member: MemberView) -> impl IntoView {
    let live = expect_context::<Live>();
    let (heartbeat, timeout) = (member.last_heartbeat, member.session_timeout_ms);
    let status = move || {
        let now = live.now.get();
        let (Some(at), true) = (heartbeat, now > 0) else {
            return String::new();
        };
        let silent = now.saturating_sub(at);
        match timeout {
            Some(timeout) if silent > 3_000 => format!(
                "No heartbeat for {:.1} s: removed in {:.1} s unless it speaks (session timeout)",
                silent as f64 / 1000.0,
                u64::from(timeout).saturating_sub(silent) as f64 / 1000.0
            ),
            _ => format!("Last heartbeat {:.1} s ago", silent as f64 / 1000.0),
        }
    };
    let mut about = vec![format!("client.id {}", member.client_id)];
    if let Some(host) = &member.host {
        about.push(format!("host {host}"));
    }
    if let Some(id) = &member.group_instance_id {
        about.push(format!("static member {id}"));
    }
    view! {
        <article
            class=format!("instance external {}", colour_class(member.colour))
            data-testid=format!("member-{}", member.client_id)
            title=format!("member id {}", member.member_id)
        >
            <header>
                <span class="name">{member.name.clone()}</span>
                <span class="state">"your consumer"</span>
            </header>
            <p class="owns">"Owns: " <strong data-testid=format!("member-owns-{}", member.client_id)>{partition_names(&member.partitions)}</strong></p>
            <p class="settings muted">{about.join(" · ")}</p>
            <p class="heartbeat" class:silent=move || status().starts_with("No heartbeat")>{status}</p>
            <p class="muted tip">"Stop it from its terminal: Ctrl-C leaves the group, kill -9 crashes it."</p>
        </article>
    }
}

#[component]
fn Instances() -> impl IntoView {
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
            <header>
                <span class="name">{instance.name.clone()}</span>
                <span class="state">{instance.state.label()}</span>
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
            <p class="settings muted">{summary}</p>
            <p class="status" data-testid=format!("status-{}", instance.name)>{status}</p>
            // Kept on a stopped card: a commit refused as it left says why its work is done again.
            {instance.problem.as_ref().map(|problem| view! {
                <p class="problem" role="status" data-testid=format!("problem-{}", instance.name)>
                    <span class="muted">{clock(problem.at)} " client error: "</span>
                    {problem.message.clone()}
                </p>
            })}
            <Show when=move || alive>
                <div class="buttons">
                    <button class="secondary" disabled=stopping data-testid=format!("stop-{name}") on:click=move |_| live.send(ClientCommand::StopInstance { instance: id })>
                        "Stop"
                    </button>
                    <button class="danger" data-testid=format!("crash-{name}") on:click=move |_| live.send(ClientCommand::CrashInstance { instance: id })>
                        "Crash"
                    </button>
                </div>
            </Show>
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
    let mut parts = vec![
        instance.group.clone(),
        commit,
        format!("session {} s", settings.session_timeout_ms / 1000),
        settings.assignor.label().to_owned(),
    ];
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

/// What became of each message: processed, lost, processed twice, per group and topic.
#[component]
fn Ledgers() -> impl IntoView {
    let live = expect_context::<Live>();
    let ledgers = move || with_view(live, |v| v.ledgers.clone()).unwrap_or_default();
    view! {
        <Show when=move || with_view(live, |v| !v.ledgers.is_empty()).unwrap_or(false)>
            <div class="ledgers" data-testid="ledgers">
                <h3>"Ledger"</h3>
                <p class="muted">"Every message the page's instances received: processed, lost (committed but never processed), processed twice."</p>
                <For each=ledgers key=|l: &LedgerView| format!("{l:?}") let:ledger>
                    <LedgerRow ledger />
                </For>
            </div>
        </Show>
    }
}

/// Each group's total lag over time, as a line, with how fast each of its instances processes.
#[component]
fn LagCharts() -> impl IntoView {
    let live = expect_context::<Live>();
    let lags = move || with_view(live, |v| v.lag.clone()).unwrap_or_default();
    view! {
        <Show when=move || with_view(live, |v| v.lag.iter().any(|l| l.chart.iter().any(|(_, lag)| *lag > 0))).unwrap_or(false)>
            <div class="lag-charts" data-testid="lag-charts">
                <h3>"Lag over time"</h3>
                {move || lags().into_iter().map(|lag| view! { <LagChart lag /> }).collect_view()}
            </div>
        </Show>
    }
}

#[component]
fn LagChart(lag: LagView) -> impl IntoView {
    let live = expect_context::<Live>();
    const WIDTH: f64 = 320.0;
    const HEIGHT: f64 = 80.0;
    let (Some(first), Some(last)) = (lag.chart.first(), lag.chart.last()) else {
        return None;
    };
    let span = (last.0.saturating_sub(first.0)).max(1) as f64;
    let top = lag.chart.iter().map(|(_, l)| *l).max().unwrap_or(0).max(1) as f64;
    let points: Vec<String> = lag
        .chart
        .iter()
        .map(|(at, l)| {
            let x = (at.saturating_sub(first.0)) as f64 / span * WIDTH;
            let y = HEIGHT - *l as f64 / top * HEIGHT;
            format!("{x:.1},{y:.1}")
        })
        .collect();
    let rates: Vec<String> = lag
        .rates
        .iter()
        .map(|(id, rate)| {
            let name = with_view(live, |v| v.instance(*id).map(|i| i.name.clone()))
                .flatten()
                .unwrap_or_else(|| "?".to_owned());
            format!("{name} {rate:.1}/s")
        })
        .collect();
    Some(view! {
        <figure class="lag-chart" data-testid=format!("lag-{}-{}", lag.group, lag.topic)>
            <figcaption>
                <strong>{lag.group.clone()}</strong> " on " <code>{lag.topic.clone()}</code>
                {format!(": {} behind (peak {} in the last {:.0} s)", last.1, top as i64, span / 1000.0)}
            </figcaption>
            <svg viewBox=format!("0 0 {WIDTH} {HEIGHT}") preserveAspectRatio="none" role="img" aria-label="total lag over time">
                <polyline points=points.join(" ") fill="none" stroke="currentColor" stroke-width="2" />
            </svg>
            {(!rates.is_empty()).then(|| view! { <p class="muted">"Processing: " {rates.join(" · ")}</p> })}
        </figure>
    })
}

/// Where each key landed: the default partitioner hashes the key, so a key keeps its partition.
#[component]
fn Keys() -> impl IntoView {
    let live = expect_context::<Live>();
    let keys = move || with_view(live, |v| v.keys.clone()).unwrap_or_default();
    view! {
        <Show when=move || with_view(live, |v| !v.keys.is_empty()).unwrap_or(false)>
            <div class="keys" data-testid="keys">
                <h3>"Keys → partitions"</h3>
                <ul>
                    {move || keys().into_iter().map(|k| view! {
                        <li class:split={k.partitions.len() > 1}>
                            <code>{k.key.clone()}</code> " → "
                            {k.partitions.iter().map(|p| format!("P{p}")).collect::<Vec<_>>().join(", ")}
                            {(k.partitions.len() > 1).then_some(" (partition chosen by hand)")}
                        </li>
                    }).collect_view()}
                </ul>
            </div>
        </Show>
    }
}

#[component]
fn LedgerRow(ledger: LedgerView) -> impl IntoView {
    let offsets = |sample: &[(i32, i64)], total: u64| {
        let mut shown: Vec<String> = sample.iter().map(|(p, o)| format!("P{p}@{o}")).collect();
        if total as usize > sample.len() {
            shown.push("…".to_owned());
        }
        shown.join(" ")
    };
    let lost = offsets(&ledger.lost_sample, ledger.lost);
    let twice = offsets(&ledger.duplicated_sample, ledger.duplicated);
    let id = format!("ledger-{}-{}", ledger.group, ledger.topic);
    view! {
        <div class="ledger" data-testid=id>
            <p>
                <strong>{ledger.group.clone()}</strong> " on " <code>{ledger.topic.clone()}</code> ": "
                <span data-testid="ledger-processed">{ledger.processed}</span> " processed · "
                <span class:bad={ledger.lost > 0} data-testid="ledger-lost">{ledger.lost}</span> " lost · "
                <span class:warn={ledger.duplicated > 0} data-testid="ledger-duplicated">{ledger.duplicated}</span> " processed twice"
                {(!ledger.exact).then_some(" (a floor: the record reached its cap)")}
            </p>
            {(ledger.lost > 0).then(|| view! { <p class="offsets bad">"Lost: " <code>{lost}</code></p> })}
            {(ledger.duplicated > 0).then(|| view! { <p class="offsets warn">"Twice: " <code>{twice}</code></p> })}
            {(ledger.order.keyed > 0 || ledger.order.overtaken > 0).then(|| view! {
                <p data-testid="ledger-order">
                    {format!(
                        "Order: {} keyed message(s), {} out of order within their key; {} arrived after a later message from another partition",
                        ledger.order.keyed, ledger.order.out_of_key_order, ledger.order.overtaken
                    )}
                    {ledger.order.example.clone().map(|e| format!(" ({e})"))}
                </p>
            })}
            {(!ledger.unknown.is_empty()).then(|| view! {
                <p class="muted">{format!(
                    "Partition(s) {:?} were owned by your own consumer at some point: grouplab sees its work only through its commits, so they are not judged here.",
                    ledger.unknown
                )}</p>
            })}
        </div>
    }
}

#[component]
fn Messages() -> impl IntoView {
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
fn Timeline() -> impl IntoView {
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
                    <li class=format!("{}", timeline_class(&e.kind))>
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
        } => "bad",
        TimelineKind::Assigned { .. } | TimelineKind::BrokerUp => "good",
        TimelineKind::Group { .. } => "group",
        TimelineKind::BrokerDown { .. } => "bad broker",
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
        TimelineKind::Departed { departure } => format!("{} holding {parts}", departure.describe()),
        TimelineKind::Group {
            state,
            generation,
            assignor,
            leader,
        } => {
            let mut text = format!("is {}", state.name());
            if let Some(generation) = generation {
                text.push_str(&format!(", generation {generation}"));
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
                "assigned {parts}, after {:.1} s without a working owner",
                *ms as f64 / 1000.0
            )
        }
        TimelineKind::Assigned { .. } => format!("assigned {parts}"),
        TimelineKind::Revoked => format!("revoked {parts}"),
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
