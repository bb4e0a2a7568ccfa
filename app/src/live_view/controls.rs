//! The lab's controls: the topic (or stream, or queue) form, the produce form, the consumer
//! form (`consumer_form.rs`), and the embedded broker's switch. The name typed in the topic form
//! is the one the other forms act on.

use grouplab_protocol::{Backend, BrokerHealth, ClientCommand, KeyMode, LabSetup, limits};
use leptos::prelude::*;

use super::consumer_form::ConsumerForm;
use super::{number, with_view};
use crate::live::Live;

#[component]
pub(super) fn Controls(setup: LabSetup) -> impl IntoView {
    let topic = RwSignal::new(setup.topic.clone());
    let backend = setup.broker;
    view! {
        <div class="controls">
            <TopicForm topic partitions=setup.partitions backend />
            <ProduceForm topic />
            <ConsumerForm topic group=setup.group.clone() defaults=setup.consumer.clone() backend />
            <div class="kafka-only"><BrokerSwitch /></div>
        </div>
    }
}

/// Create topic, Grow to this many partitions, and Reset lab.
#[component]
fn TopicForm(topic: RwSignal<String>, partitions: i32, backend: Backend) -> impl IntoView {
    let live = expect_context::<Live>();
    let partitions = RwSignal::new(partitions.to_string());
    let create_topic = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if let Some(partitions) = number(live, "partition count", &partitions.get_untracked()) {
            live.send(ClientCommand::CreateTopic {
                topic: topic.get_untracked(),
                partitions,
            });
        }
    };
    let add_partitions = move |_| {
        if let Some(partitions) = number(live, "partition count", &partitions.get_untracked()) {
            live.send(ClientCommand::AddPartitions {
                topic: topic.get_untracked(),
                partitions,
            });
        }
    };
    view! {
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
    }
}

/// Produce a number of messages, or steadily for a while.
#[component]
fn ProduceForm(topic: RwSignal<String>) -> impl IntoView {
    let live = expect_context::<Live>();
    let count = RwSignal::new("12".to_owned());
    let key_mode = RwSignal::new("none".to_owned());
    let fixed_key = RwSignal::new("user-1".to_owned());
    let distinct = RwSignal::new("6".to_owned());
    let target_partition = RwSignal::new(String::new());
    let text = RwSignal::new(String::new());
    let per_second = RwSignal::new("20".to_owned());
    let steady_seconds = RwSignal::new("30".to_owned());
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
    view! {
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
