//! The left column: objectives, steps with their checkpoints, starter code, hints and the solution.

use grouplab_protocol::{
    BOOTSTRAP_PLACEHOLDER, ClientCommand, CodeBlock, ConsumerSnippet, LabContent, ProgressView,
};
use leptos::either::Either;
use leptos::prelude::*;

use crate::live::Live;

#[component]
pub fn Instructions(content: LabContent) -> impl IntoView {
    let live = expect_context::<Live>();
    let progress = Memo::new(move |_| live.view.with(|v| v.as_ref().map(|v| v.progress.clone())));
    // The current step stays in view: when it changes, the pane scrolls to it.
    #[cfg(feature = "hydrate")]
    {
        let current =
            Memo::new(move |_| progress.with(|p| p.as_ref().and_then(ProgressView::current_step)));
        Effect::new(move |_| {
            if let Some(index) = current.get() {
                scroll_to_step(index);
            }
        });
    }
    let step_count = content.steps.len();
    let passed = move || {
        progress.with(|p| {
            p.as_ref().map_or(0, |p| {
                p.steps.iter().filter(|s| s.passed_at.is_some()).count()
            })
        })
    };

    let steps = content
        .steps
        .iter()
        .cloned()
        .enumerate()
        .map(|(index, step)| {
            let status = move || progress.with(|p| p.as_ref().and_then(|p| p.steps.get(index).cloned()));
            let is_passed = move || status().is_some_and(|s| s.passed_at.is_some());
            let is_current = move || progress.with(|p| p.as_ref().and_then(ProgressView::current_step)) == Some(index);
            view! {
                <li
                    class="step"
                    class:passed=is_passed
                    class:current=is_current
                    data-testid=format!("step-{index}")
                    data-passed=move || is_passed().to_string()
                >
                    <div class="step-head">
                        <span class="step-mark" aria-hidden="true">
                            {move || if is_passed() { "✓".to_owned() } else { (index + 1).to_string() }}
                        </span>
                        <h3>{step.title}</h3>
                    </div>
                    <div class="step-body" inner_html=step.body_html></div>
                    <p class="checkpoint">
                        <span class="label">"Checkpoint: "</span>
                        {step.checkpoint}
                    </p>
                    <p class="check-detail" data-testid=format!("step-{index}-detail")>
                        {move || status().map(|s| s.detail).unwrap_or_default()}
                    </p>
                </li>
            }
        })
        .collect_view();

    // Hints and the solution come from the server only once opened, in the learner's progress.
    let hint_count = content.hint_count as usize;
    let opened_hints =
        move || progress.with(|p| p.as_ref().map(|p| p.hints.clone()).unwrap_or_default());
    let opened = move || progress.with(|p| p.as_ref().map_or(0, |p| p.hints.len()));
    let solution = move || progress.with(|p| p.as_ref().and_then(|p| p.solution.clone()));

    view! {
        <section class="instructions" aria-label="Instructions" tabindex="0">
            <div class="progress-line">
                <strong data-testid="progress-count">{passed} " of " {step_count}</strong>
                " steps checked"
            </div>
            <details class="about" open=move || passed() == 0>
                <summary>"About this lab"</summary>
                <h2>"Objectives"</h2>
                <ul class="objectives">
                    {content.objectives.iter().map(|o| view! { <li>{o.clone()}</li> }).collect_view()}
                </ul>
                <div class="intro" inner_html=content.intro_html.clone()></div>
            </details>
            <h2>"Steps"</h2>
            <ol class="steps">{steps}</ol>
            {if content.consumers.is_empty() {
                content.starter.clone().map(|code| Either::Left(view! {
                    <h2>"Starter code"</h2>
                    <Code block=code testid="starter" />
                }))
            } else {
                Some(Either::Right(view! { <OwnConsumer snippets=content.consumers.clone() /> }))
            }}
            <h2>"Hints"</h2>
            <ol class="hints">
                {move || opened_hints()
                    .into_iter()
                    .enumerate()
                    .map(|(index, html)| view! {
                        <li class="hint" data-testid=format!("hint-{index}") inner_html=html></li>
                    })
                    .collect_view()}
            </ol>
            {(!live.read_only).then(|| view! {
                <Show
                    when=move || { opened() < hint_count }
                    fallback=|| view! { <p class="muted">"All hints are open."</p> }
                >
                    <button class="secondary" data-testid="next-hint" on:click=move |_| live.send(ClientCommand::OpenHint)>
                        {move || format!("Show hint {} of {hint_count}", opened() + 1)}
                    </button>
                </Show>
            })}
            {content.has_solution.then(|| view! {
                <h2>"Solution"</h2>
                {move || match solution() {
                    Some(solution) => Either::Left(view! {
                        <div class="solution" data-testid="solution">
                            <Code block=solution.code.clone() testid="solution-code" />
                            <div inner_html=solution.notes_html.clone()></div>
                        </div>
                    }),
                    None => Either::Right((!live.read_only).then(|| view! {
                        <button class="secondary" data-testid="reveal-solution" on:click=move |_| live.send(ClientCommand::RevealSolution)>
                            "Reveal the solution"
                        </button>
                    })),
                }}
            })}
            {(!live.read_only).then(|| view! {
                <div class="lab-actions">
                    <button
                        class="danger-outline"
                        data-testid="clear-progress"
                        on:click=move |_| live.send(ClientCommand::ClearProgress)
                    >
                        "Clear my progress"
                    </button>
                </div>
            })}
        </section>
    }
}

/// The broker's address as a learner's machine reaches it: a broker listening on every address
/// (`0.0.0.0`, `[::]`) is reached at the name the page was opened with, where the broker then
/// names itself by the address dialled.
fn reachable_from(bootstrap: &str, page_host: &str) -> String {
    if page_host.is_empty() {
        return bootstrap.to_owned();
    }
    let host = if page_host.contains(':') && !page_host.starts_with('[') {
        format!("[{page_host}]")
    } else {
        page_host.to_owned()
    };
    // A URL (`redis://:password@0.0.0.0:port/`) names its host after `//` or `@`.
    if bootstrap.contains("://") {
        return ["@", "//"]
            .iter()
            .find_map(|before| {
                ["0.0.0.0:", "[::]:"].iter().find_map(|any| {
                    let at = format!("{before}{any}");
                    bootstrap
                        .contains(&at)
                        .then(|| bootstrap.replacen(&at, &format!("{before}{host}:"), 1))
                })
            })
            .unwrap_or_else(|| bootstrap.to_owned());
    }
    bootstrap
        .split(',')
        .map(|server| match server.rsplit_once(':') {
            Some(("0.0.0.0" | "[::]", port)) => format!("{host}:{port}"),
            _ => server.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The learner's own consumer: one tab per client, with the lab's broker address in the run line.
#[component]
fn OwnConsumer(snippets: Vec<ConsumerSnippet>) -> impl IntoView {
    let live = expect_context::<Live>();
    let chosen = RwSignal::new(0usize);
    let bootstrap = move || {
        let listening = live
            .view
            .with(|v| v.as_ref().map(|v| v.broker.bootstrap_servers.clone()))
            .unwrap_or_else(|| "BOOTSTRAP".to_owned());
        // Rendered on the server, the page's own name is not known yet.
        #[cfg(feature = "hydrate")]
        let page_host = window().location().hostname().unwrap_or_default();
        #[cfg(not(feature = "hydrate"))]
        let page_host = String::new();
        reachable_from(&listening, &page_host)
    };
    let tabs = snippets
        .iter()
        .enumerate()
        .map(|(index, snippet)| {
            view! {
                <button
                    role="tab"
                    class="tab"
                    class:chosen=move || chosen.get() == index
                    aria-selected=move || (chosen.get() == index).to_string()
                    data-testid=format!("consumer-tab-{index}")
                    on:click=move |_| chosen.set(index)
                >
                    {snippet.label.clone()}
                </button>
            }
        })
        .collect_view();
    let panels = snippets
        .into_iter()
        .enumerate()
        .map(|(index, snippet)| {
            let run = snippet.run.clone();
            let run_line = move || run.replace(BOOTSTRAP_PLACEHOLDER, &bootstrap());
            view! {
                <Show when=move || chosen.get() == index>
                    <div class="consumer" role="tabpanel" data-testid=format!("consumer-{index}")>
                        <p><span class="label">"Install: "</span><code>{snippet.install.clone()}</code></p>
                        <p><span class="label">"Run: "</span><code data-testid="consumer-run">{run_line.clone()}</code></p>
                        <Code block=snippet.code.clone() testid="consumer-code" />
                    </div>
                </Show>
            }
        })
        .collect_view();
    view! {
        <h2>"Your own consumer"</h2>
        <p class="muted">
            "Run it from a terminal against this lab's broker: it joins the group beside the page's instances, shows up on the right with its client id, and counts in every check. "
            "Ctrl-C closes it cleanly; kill -9 crashes it."
        </p>
        <div class="tabs" role="tablist">{tabs}</div>
        {panels}
    }
}

/// A code block with a copy button.
#[component]
fn Code(block: CodeBlock, testid: &'static str) -> impl IntoView {
    let copied = RwSignal::new(false);
    let code = block.code.clone();
    let copy = move |_| {
        #[cfg(feature = "hydrate")]
        {
            let clipboard = window().navigator().clipboard();
            let _ = clipboard.write_text(&code);
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = &code;
        copied.set(true);
        set_timeout(move || copied.set(false), std::time::Duration::from_secs(2));
    };
    view! {
        <figure class="code" data-testid=testid>
            <figcaption>
                <span>{block.file_name.clone()} " · " {block.language.clone()}</span>
                <button class="copy" data-testid=format!("{testid}-copy") on:click=copy>
                    {move || if copied.get() { "Copied" } else { "Copy" }}
                </button>
            </figcaption>
            {if block.html.is_empty() {
                Either::Left(view! { <pre tabindex="0"><code>{block.code.clone()}</code></pre> })
            } else {
                Either::Right(view! { <pre tabindex="0"><code class="highlighted" inner_html=block.html.clone()></code></pre> })
            }}
        </figure>
    }
}

/// Scrolls the instructions pane, when it scrolls on its own, so that step `index` is at its top.
#[cfg(feature = "hydrate")]
fn scroll_to_step(index: usize) {
    use wasm_bindgen::JsCast;
    let document = document();
    let (Some(pane), Some(step)) = (
        document.query_selector(".instructions").ok().flatten(),
        document
            .query_selector(&format!("[data-testid='step-{index}']"))
            .ok()
            .flatten()
            .and_then(|step| step.dyn_into::<web_sys::HtmlElement>().ok()),
    ) else {
        return;
    };
    if pane.scroll_height() > pane.client_height() {
        pane.set_scroll_top(step.offset_top() - 8);
    }
}

#[cfg(test)]
mod tests {
    use super::reachable_from;

    #[test]
    fn a_broker_on_every_address_is_named_as_the_page_was_reached() {
        assert_eq!(reachable_from("0.0.0.0:9092", "10.0.0.5"), "10.0.0.5:9092");
        assert_eq!(
            reachable_from("[::]:9092", "lab.school.example"),
            "lab.school.example:9092"
        );
        assert_eq!(reachable_from("0.0.0.0:9092", "fe80::1"), "[fe80::1]:9092");
        // A broker on one address, or a named cluster, is shown as it is.
        assert_eq!(
            reachable_from("127.0.0.1:9092", "10.0.0.5"),
            "127.0.0.1:9092"
        );
        assert_eq!(
            reachable_from("k1:9092,k2:9092", "10.0.0.5"),
            "k1:9092,k2:9092"
        );
        assert_eq!(reachable_from("0.0.0.0:9092", ""), "0.0.0.0:9092");
        assert_eq!(
            reachable_from("redis://:pw@0.0.0.0:9300/", "10.0.0.5"),
            "redis://:pw@10.0.0.5:9300/"
        );
        assert_eq!(
            reachable_from("amqp://0.0.0.0:5672/%2F", "lab.school.example"),
            "amqp://lab.school.example:5672/%2F"
        );
        assert_eq!(
            reachable_from("redis://:pw@127.0.0.1:9300/", "10.0.0.5"),
            "redis://:pw@127.0.0.1:9300/"
        );
    }
}
