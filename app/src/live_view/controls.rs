//! The lab's controls: the topic (or stream, or queue) form, the produce form, the consumer
//! form (`consumer_form.rs`), and the embedded broker's switch. The name typed in the topic form
//! is the one the other forms act on.

use grouplab_protocol::{Backend, BrokerHealth, ClientCommand, KeyMode, LabSetup, limits};
use leptos::html;
use leptos::prelude::*;

use super::consumer_form::ConsumerForm;
use super::{number, with_view};
use crate::live::Live;

#[component]
pub(super) fn Controls(setup: LabSetup) -> impl IntoView {
    let live = expect_context::<Live>();
    let topic = RwSignal::new(setup.topic.clone());
    let backend = setup.broker;
    let topic_form = NodeRef::<html::Form>::new();
    let produce_form = NodeRef::<html::Form>::new();
    let consumer_form = NodeRef::<html::Form>::new();
    // The full forms are folded so that the live picture is what a lab page shows first; the
    // quick bar sends them as they are filled in (the lab's defaults until the learner edits them).
    let open = RwSignal::new(false);
    let submit = move |form: NodeRef<html::Form>| {
        move |_| {
            if let Some(form) = form.get_untracked() {
                let _ = form.request_submit();
            }
        }
    };
    let topic_missing = move || {
        with_view(live, |v| {
            let name = topic.get();
            !v.topics.iter().any(|t| t.name == name)
        })
        .unwrap_or(false)
    };
    view! {
        <div class="controls">
            <div class="quickbar" role="toolbar" aria-label="Lab actions">
                <Show when=topic_missing>
                    <button type="button" class="kafka-only" data-testid="quick-create-topic" on:click=submit(topic_form)>
                        "Create topic " <code>{move || topic.get()}</code>
                    </button>
                </Show>
                <button type="button" data-testid="quick-produce" on:click=submit(produce_form)>
                    "Produce"
                </button>
                <button type="button" data-testid="quick-start" on:click=submit(consumer_form)>
                    "Start instance"
                </button>
                <button
                    type="button"
                    class="secondary"
                    data-testid="more-controls"
                    aria-expanded=move || open.get().to_string()
                    aria-controls="lab-forms"
                    on:click=move |_| open.update(|o| *o = !*o)
                >
                    {move || if open.get() { "Fold the forms" } else { "All controls…" }}
                </button>
            </div>
            <div id="lab-forms" class="forms" data-testid="lab-forms" hidden=move || !open.get()>
                <TopicForm topic partitions=setup.partitions backend form=topic_form />
                <ProduceForm topic form=produce_form />
                <ConsumerForm topic group=setup.group.clone() defaults=setup.consumer.clone() backend form=consumer_form />
                <div class="kafka-only"><BrokerSwitch /></div>
            </div>
        </div>
    }
}

/// Create topic, Grow to this many partitions, and Reset lab.
#[component]
fn TopicForm(
    topic: RwSignal<String>,
    partitions: i32,
    backend: Backend,
    form: NodeRef<html::Form>,
) -> impl IntoView {
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
        <form class="control" novalidate on:submit=create_topic node_ref=form>
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
fn ProduceForm(topic: RwSignal<String>, form: NodeRef<html::Form>) -> impl IntoView {
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
        <form class="control" novalidate on:submit=produce node_ref=form>
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

/// Projector mode's keyboard shortcuts, for a demo: P produces, N starts an instance, X then an
/// instance's letter crashes it, G then a letter stops it gracefully. They act only when no
/// form field has the focus, and only in projector mode (single-key shortcuts would surprise
/// someone typing elsewhere), with their legend on screen.
#[component]
pub fn Shortcuts() -> impl IntoView {
    #[cfg(feature = "hydrate")]
    let live = expect_context::<Live>();
    // The first key of a two-key shortcut, waiting for an instance's letter.
    let pending = RwSignal::new(None::<char>);
    #[cfg(feature = "hydrate")]
    {
        let handle = window_event_listener(leptos::ev::keydown, move |ev| {
            if ev.ctrl_key() || ev.meta_key() || ev.alt_key() || ev.repeat() {
                return;
            }
            if let Some(target) = ev.target() {
                use wasm_bindgen::JsCast;
                if let Some(element) = target.dyn_ref::<web_sys::Element>()
                    && matches!(element.tag_name().as_str(), "INPUT" | "SELECT" | "TEXTAREA")
                {
                    return;
                }
            }
            let key = ev.key();
            // Shift (for a capital letter) or Caps Lock is not a key of its own here.
            if matches!(key.as_str(), "Shift" | "CapsLock") {
                return;
            }
            let mut chars = key.chars();
            let (Some(key), None) = (chars.next(), chars.next()) else {
                pending.set(None);
                return;
            };
            let key = key.to_ascii_uppercase();
            match pending.get_untracked() {
                Some(action) => {
                    pending.set(None);
                    let id = with_view(live, |v| {
                        v.instances
                            .iter()
                            .rev()
                            .find(|i| i.name.eq_ignore_ascii_case(&key.to_string()) && i.is_alive())
                            .map(|i| i.id)
                    })
                    .flatten();
                    match (action, id) {
                        ('X', Some(instance)) => {
                            live.send(ClientCommand::CrashInstance { instance })
                        }
                        ('G', Some(instance)) => {
                            live.send(ClientCommand::StopInstance { instance })
                        }
                        _ => live.notify(grouplab_protocol::Notice::error(
                            "No such instance",
                            format!("No running instance is called {key}."),
                        )),
                    }
                }
                None => match key {
                    'P' => click("quick-produce"),
                    'N' => click("quick-start"),
                    'X' | 'G' => pending.set(Some(key)),
                    _ => return,
                },
            }
            ev.prevent_default();
        });
        on_cleanup(move || handle.remove());
    }
    let waiting = move || match pending.get() {
        Some('X') => "X: now the letter of the instance to crash".to_owned(),
        Some(_) => "G: now the letter of the instance to stop".to_owned(),
        None => String::new(),
    };
    view! {
        <aside class="shortcuts" aria-label="Keyboard shortcuts" data-testid="shortcuts">
            <kbd>"P"</kbd> " produce · " <kbd>"N"</kbd> " start an instance · "
            <kbd>"X"</kbd> " then a letter: crash it · " <kbd>"G"</kbd> " then a letter: stop it gracefully"
            <strong class="pending" aria-live="polite">{waiting}</strong>
        </aside>
    }
}

/// Clicks the page's button with this test id, as the learner would.
#[cfg(feature = "hydrate")]
fn click(testid: &str) {
    use wasm_bindgen::JsCast;
    if let Some(button) = document()
        .query_selector(&format!("[data-testid='{testid}']"))
        .ok()
        .flatten()
        .and_then(|element| element.dyn_into::<web_sys::HtmlElement>().ok())
    {
        button.click();
    }
}
