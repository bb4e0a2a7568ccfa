//! The consumer form: a page instance's group and settings, as the lab's broker understands
//! them (Kafka's commits and poll loop, Redis's reads and claims, RabbitMQ's prefetch and acks).

use grouplab_protocol::{
    Assignor, Backend, ClientCommand, CommitPolicy, ConsumerSettings, GroupProtocol,
    ProcessingMode, limits,
};
use leptos::prelude::*;

use super::number;
use crate::live::Live;

#[component]
pub(super) fn ConsumerForm(
    topic: RwSignal<String>,
    group: String,
    defaults: ConsumerSettings,
    backend: Backend,
    form: NodeRef<leptos::html::Form>,
) -> impl IntoView {
    let live = expect_context::<Live>();
    let group = RwSignal::new(group);
    let session_s = RwSignal::new((defaults.session_timeout_ms / 1000).to_string());
    let assignor = RwSignal::new(defaults.assignor.librdkafka_name().to_owned());
    let protocol = RwSignal::new(defaults.group_protocol.name().to_owned());
    // Switching the protocol picks its usual assignor: the broker's `uniform` (sticky) for the
    // consumer protocol, and back to `range` from `uniform` for the classic one.
    Effect::new(move |before: Option<String>| {
        let picked = protocol.get();
        if before.is_some_and(|before| before != picked) {
            let now = GroupProtocol::ALL
                .into_iter()
                .find(|p| p.name() == picked)
                .unwrap_or_default();
            let chosen = Assignor::ALL
                .into_iter()
                .find(|a| a.librdkafka_name() == assignor.get_untracked())
                .unwrap_or_default();
            let next = match now {
                GroupProtocol::Consumer => Assignor::Uniform,
                GroupProtocol::Classic if !chosen.runs_on(now) => Assignor::Range,
                GroupProtocol::Classic => chosen,
            };
            assignor.set(next.librdkafka_name().to_owned());
        }
        picked
    });
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
    let redis = backend == Backend::Redis;
    let commit_label = move |c: CommitPolicy| match backend {
        Backend::Kafka => c.label(),
        Backend::Redis => c.redis_label(),
        Backend::RabbitMq => c.rabbitmq_label(),
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
        let group_protocol = GroupProtocol::ALL
            .into_iter()
            .find(|p| p.name() == protocol.get_untracked())
            .unwrap_or_default();
        let settings = ConsumerSettings {
            session_timeout_ms: seconds.saturating_mul(1000),
            assignor,
            group_protocol,
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
        <form class="control" novalidate on:submit=start node_ref=form>
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
                <label class="kafka-only">
                    {move || if protocol.get() == GroupProtocol::Consumer.name() { "Session timeout (s): the broker's, under the consumer protocol" } else { "Session timeout (s)" }}
                    <input data-testid="instance-session" type="number" min="1" max="300" bind:value=session_s disabled=move || protocol.get() == GroupProtocol::Consumer.name() />
                </label>
                <label class="kafka-only">"Max poll interval (s)" <input data-testid="instance-max-poll" type="number" min="1" bind:value=max_poll_s /></label>
                <label class="not-rabbitmq">{if redis { "Entries per read (COUNT)" } else { "Messages per poll" }} <input data-testid="instance-batch" type="number" min="1" max=*limits::MAX_POLL_RECORDS.end() bind:value=max_poll_records /></label>
                <label class="redis-only">"Read waits up to (ms, BLOCK)" <input data-testid="instance-block" type="number" min="100" max="10000" bind:value=block_ms /></label>
                <label class="kafka-only">"Group protocol"
                    <select data-testid="instance-protocol" bind:value=protocol>
                        <option value=GroupProtocol::Classic.name()>"classic (JoinGroup, SyncGroup)"</option>
                        <option value=GroupProtocol::Consumer.name()>"consumer (KIP-848: the broker assigns)"</option>
                    </select>
                </label>
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
    }
}
