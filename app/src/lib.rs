//! The grouplab pages, rendered on the server (`ssr`) and brought alive in the browser (`hydrate`).
//!
//! - [`App`] routes between the lab list and a lab page.
//! - Lab content comes from two server functions, [`list_labs`] and [`get_lab`], so it is in the
//!   first HTML the learner receives.
//! - Everything live (offsets, instances, progress) comes over the lab websocket; [`live`] owns
//!   that connection and keeps a [`grouplab_protocol::LabSnapshot`] up to date by applying events.

#![recursion_limit = "512"]

mod instructions;
pub mod live;
mod live_view;

use grouplab_protocol::{LabContent, LabSummary};
use leptos::prelude::*;
use leptos_meta::{MetaTags, Title, provide_meta_context};
use leptos_router::components::{A, Route, Router, Routes};
use leptos_router::hooks::use_params_map;
use leptos_router::path;

use crate::instructions::Instructions;
use crate::live::Live;
use crate::live_view::LiveView;

/// Where the server's lab content comes from, provided as context to the server functions.
#[cfg(feature = "ssr")]
pub trait LabSource: Send + Sync {
    /// Every lab in course order, with the learner's progress.
    fn summaries(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<LabSummary>> + Send + '_>>;
    fn lab(&self, id: &str) -> Option<LabContent>;
}

/// The context value the server provides for [`list_labs`] and [`get_lab`].
#[cfg(feature = "ssr")]
#[derive(Clone)]
pub struct Labs(pub std::sync::Arc<dyn LabSource>);

/// Every lab, for the list page.
#[server]
pub async fn list_labs() -> Result<Vec<LabSummary>, ServerFnError> {
    let labs =
        use_context::<Labs>().ok_or_else(|| ServerFnError::new("the labs are not loaded"))?;
    Ok(labs.0.summaries().await)
}

/// One lab's content, or `None` if there is no lab with that id.
#[server]
pub async fn get_lab(id: String) -> Result<Option<LabContent>, ServerFnError> {
    let labs =
        use_context::<Labs>().ok_or_else(|| ServerFnError::new("the labs are not loaded"))?;
    Ok(labs.0.lab(&id))
}

/// The HTML document around the app.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <link rel="stylesheet" href="/grouplab.css" />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Title text="grouplab" />
        <Router>
            <Routes fallback=|| view! { <NotFound /> }>
                <Route path=path!("/") view=LabList />
                // Async: the server waits for the lab before it answers, so an unknown lab is a 404.
                <Route path=path!("/labs/:id") view=LabPage ssr=leptos_router::SsrMode::Async />
            </Routes>
        </Router>
    }
}

#[component]
fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <main class="page narrow">
            <h1>"Page not found"</h1>
            <p>"There is nothing here. " <A href="/">"See all labs"</A></p>
        </main>
    }
}

#[component]
fn LabList() -> impl IntoView {
    let labs = Resource::new(|| (), |()| list_labs());
    view! {
        <Title text="grouplab: Kafka consumer-group labs" />
        <main class="page narrow">
            <header class="brand">
                <h1>"grouplab"</h1>
                <p class="tagline">
                    "Hands-on Kafka consumer-group labs, against a real broker and real consumers."
                </p>
            </header>
            <Suspense fallback=|| view! { <p>"Loading labs…"</p> }>
                {move || Suspend::new(async move {
                    match labs.await {
                        Ok(list) if list.is_empty() => {
                            view! { <p class="problem">"No labs were found in the labs folder."</p> }
                                .into_any()
                        }
                        Ok(list) => {
                            let ready: Vec<&LabSummary> = list.iter().filter(|l| l.problem.is_none()).collect();
                            let minutes: u32 = ready.iter().map(|l| l.minutes).sum();
                            let done = ready.iter().filter(|l| l.steps > 0 && l.passed == l.steps).count();
                            let course = format!(
                                "{} labs, about {} h {} min in all · {} completed",
                                ready.len(),
                                minutes / 60,
                                minutes % 60,
                                done
                            );
                            view! {
                                <p class="course" data-testid="course">{course}</p>
                                <ol class="lab-list" data-testid="lab-list">
                                    {list.into_iter().map(lab_card).collect_view()}
                                </ol>
                            }
                                .into_any()
                        }
                        Err(err) => {
                            view! {
                                <p class="problem">"The labs could not be loaded: " {err.to_string()}</p>
                            }
                                .into_any()
                        }
                    }
                })}
            </Suspense>
        </main>
    }
}

fn lab_card(lab: LabSummary) -> impl IntoView {
    match lab.problem {
        Some(problem) => view! {
            <li class="lab-card broken">
                <h2>{lab.id}</h2>
                <p class="problem">"This lab could not be read: " {problem}</p>
            </li>
        }
        .into_any(),
        None => {
            let state = match (lab.passed, lab.steps) {
                (0, _) => "not started".to_owned(),
                (passed, steps) if passed >= steps => "completed".to_owned(),
                (passed, steps) => format!("{passed} of {steps} steps"),
            };
            let percent = (lab.passed * 100).checked_div(lab.steps).unwrap_or(0);
            let difficulty_class = format!("difficulty {}", lab.difficulty);
            view! {
                <li class="lab-card" class:done={lab.steps > 0 && lab.passed >= lab.steps} data-testid=format!("lab-{}", lab.id)>
                    <h2>
                        <A href=format!("/labs/{}", lab.id)>{lab.title}</A>
                    </h2>
                    <p class="meta">
                        <span class=difficulty_class>{lab.difficulty}</span>
                        " · " {lab.minutes} " min · " {lab.steps} " steps · "
                        <span data-testid="lab-progress">{state}</span>
                    </p>
                    <div class="progress-bar" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow=percent>
                        <span style=format!("width:{percent}%")></span>
                    </div>
                    <p>{lab.summary}</p>
                </li>
            }
            .into_any()
        }
    }
}

#[component]
fn LabPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let lab = Resource::new(id, get_lab);
    view! {
        <Suspense fallback=|| view! { <main class="page"><p>"Loading the lab…"</p></main> }>
            {move || Suspend::new(async move {
                match lab.await {
                    Ok(Some(content)) => view! { <LabWorkspace content /> }.into_any(),
                    Ok(None) => view! { <NotFound /> }.into_any(),
                    Err(err) => {
                        view! {
                            <main class="page narrow">
                                <p class="problem">"The lab could not be loaded: " {err.to_string()}</p>
                            </main>
                        }
                            .into_any()
                    }
                }
            })}
        </Suspense>
    }
}

#[component]
fn LabWorkspace(content: LabContent) -> AnyView {
    let live = Live::connect(content.id.clone());
    provide_context(live);
    let title = content.title.clone();
    view! {
        <Title text=format!("{title} · grouplab") />
        <div class="workspace">
            <header class="topbar">
                <A href="/" attr:class="back">"← All labs"</A>
                <h1>{title}</h1>
                <span class="meta">{content.difficulty.clone()} " · " {content.minutes} " min"</span>
                <live_view::BrokerBadge />
                <live_view::LinkBadge />
            </header>
            <live_view::Notices />
            <div class="columns">
                <Instructions content=content.clone() />
                <LiveView setup=content.setup.clone() />
            </div>
        </div>
    }
    .into_any()
}
