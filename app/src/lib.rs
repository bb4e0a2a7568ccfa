//! The grouplab pages, rendered on the server (`ssr`) and brought alive in the browser (`hydrate`).
//!
//! - The server decides what a request shows, a [`Page`], and renders it with [`shell`]; the
//!   same [`Page`] travels in the document as JSON, so the browser hydrates exactly what was
//!   rendered ([`Page::from_document`]). There is no client-side router: a link loads a page.
//! - Everything live (offsets, instances, progress) comes over the lab websocket; [`live`] owns
//!   that connection and keeps a [`grouplab_protocol::LabSnapshot`] up to date by applying events.
//! - No view is type-erased: an erased view keeps its asynchronous hydration code in the WASM
//!   module though the page never runs it (a fifth of the module). Branches are `Either`s and
//!   `Option`s instead; `tests::no_view_is_type_erased` keeps it so.

#![recursion_limit = "512"]

mod dashboard;
mod instructions;
pub mod live;
mod live_view;

pub use dashboard::{ClassPage, RosterEntry};
use grouplab_protocol::{LabContent, LabSummary};
use leptos::either::{Either, EitherOf4};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::instructions::Instructions;
use crate::live::Live;
use crate::live_view::LiveView;

/// The id of the `<script>` element that carries the page's [`Page`] to the browser.
const PAGE_DATA_ID: &str = "grouplab-page";

/// What one page shows: the server chooses it from the request, and the browser reads the same
/// value from the document to hydrate it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Page {
    /// The course: every lab in order, with the learner's progress, and who they are in a class.
    Labs {
        labs: Vec<LabSummary>,
        learner: Option<LearnerBadge>,
    },
    /// One lab's workspace; `projector` is projector mode (large type, high contrast, the current
    /// step only, keyboard shortcuts).
    Lab {
        content: Box<LabContent>,
        projector: bool,
        /// In a class, the learner's name, shown in the top bar.
        learner: Option<String>,
        /// The class's instructor looking at a learner's lab, read-only.
        #[serde(default)]
        watching: Option<Watching>,
    },
    /// A class's instructor's dashboard.
    Class(Box<ClassPage>),
    /// Any other address.
    NotFound,
}

/// The learner whose lab the instructor looks at.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Watching {
    pub id: String,
    pub name: String,
}

/// A class's learner, as their course page names them.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LearnerBadge {
    pub name: String,
    pub class: String,
    /// What lets them continue on another device, or after clearing cookies.
    pub rejoin_code: String,
}

impl Page {
    /// The document title.
    pub fn title(&self) -> String {
        match self {
            Page::Labs { .. } => "grouplab: Kafka consumer-group labs".to_owned(),
            Page::Lab {
                content,
                watching: Some(watching),
                ..
            } => format!("{} · {} · grouplab", watching.name, content.title),
            Page::Lab { content, .. } => format!("{} · grouplab", content.title),
            Page::Class(class) => format!("Class {} · grouplab", class.class),
            Page::NotFound => "Page not found · grouplab".to_owned(),
        }
    }

    /// The page as JSON that is safe inside a `<script>` element: a `<` only ever appears inside
    /// a JSON string, where `\u003c` means the same, so lab text cannot close the element.
    fn to_script_json(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|_| "\"NotFound\"".to_owned())
            .replace('<', "\\u003c")
    }

    /// The page the server rendered, read back from the document.
    #[cfg(feature = "hydrate")]
    pub fn from_document() -> Result<Page, String> {
        let text = document()
            .get_element_by_id(PAGE_DATA_ID)
            .and_then(|element| element.text_content())
            .ok_or_else(|| format!("the page has no #{PAGE_DATA_ID} element"))?;
        serde_json::from_str(&text).map_err(|err| format!("the page's data is unreadable: {err}"))
    }
}

/// The HTML document around the app, for the server to render.
pub fn shell(options: LeptosOptions, page: Page) -> impl IntoView {
    let title = page.title();
    let data = page.to_script_json();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <title>{title}</title>
                <link rel="stylesheet" href="/grouplab.css" />
                <script id=PAGE_DATA_ID type="application/json" inner_html=data></script>
                <HydrationScripts options />
            </head>
            <body>
                <App page />
            </body>
        </html>
    }
}

/// The body of every page; the browser hydrates it with the [`Page`] the server rendered.
#[component]
pub fn App(page: Page) -> impl IntoView {
    match page {
        Page::Labs { labs, learner } => EitherOf4::A(view! { <LabList labs learner /> }),
        Page::Lab {
            content,
            projector,
            learner,
            watching,
        } => EitherOf4::B(view! { <LabWorkspace content=*content projector learner watching /> }),
        Page::Class(class) => EitherOf4::C(view! { <dashboard::Dashboard page=*class /> }),
        Page::NotFound => EitherOf4::D(view! { <NotFound /> }),
    }
}

#[component]
fn NotFound() -> impl IntoView {
    view! {
        <main class="page narrow">
            <h1>"Page not found"</h1>
            <p>"There is nothing here. " <a href="/">"See all labs"</a></p>
        </main>
    }
}

#[component]
fn LabList(labs: Vec<LabSummary>, learner: Option<LearnerBadge>) -> impl IntoView {
    let learner = learner.map(|learner| {
        view! {
            <p class="learner-badge" data-testid="learner">
                "You are " <strong>{learner.name}</strong> " in the class " <strong>{learner.class}</strong>
                ". To continue on another device or after clearing cookies, open /rejoin there with your code "
                <code data-testid="rejoin-code">{learner.rejoin_code}</code> "."
            </p>
        }
    });
    let course = (!labs.is_empty()).then(|| {
        let ready: Vec<&LabSummary> = labs.iter().filter(|l| l.problem.is_none()).collect();
        let minutes: u32 = ready.iter().map(|l| l.minutes).sum();
        let done = ready
            .iter()
            .filter(|l| l.steps > 0 && l.passed == l.steps)
            .count();
        format!(
            "{} labs, about {} h {} min in all · {} completed",
            ready.len(),
            minutes / 60,
            minutes % 60,
            done
        )
    });
    view! {
        <main class="page narrow">
            <header class="brand">
                <h1>"grouplab"</h1>
                <p class="tagline">
                    "Hands-on Kafka consumer-group labs, against a real broker and real consumers."
                </p>
            </header>
            {learner}
            {match course {
                None => Either::Left(view! { <p class="problem">"No labs were found in the labs folder."</p> }),
                Some(course) => Either::Right(view! {
                    <p class="course" data-testid="course">{course}</p>
                    <ol class="lab-list" data-testid="lab-list">
                        {labs.into_iter().map(lab_card).collect_view()}
                    </ol>
                }),
            }}
        </main>
    }
}

fn lab_card(lab: LabSummary) -> impl IntoView {
    match lab.problem {
        Some(problem) => Either::Left(view! {
            <li class="lab-card broken">
                <h2>{lab.id}</h2>
                <p class="problem">"This lab could not be read: " {problem}</p>
            </li>
        }),
        None => {
            let state = match (lab.passed, lab.steps) {
                (0, _) => "not started".to_owned(),
                (passed, steps) if passed >= steps => "completed".to_owned(),
                (passed, steps) => format!("{passed} of {steps} steps"),
            };
            let percent = (lab.passed * 100).checked_div(lab.steps).unwrap_or(0);
            let difficulty_class = format!("difficulty {}", lab.difficulty);
            Either::Right(view! {
                <li class="lab-card" class:done={lab.steps > 0 && lab.passed >= lab.steps} data-testid=format!("lab-{}", lab.id)>
                    <h2>
                        <a href=format!("/labs/{}", lab.id)>{lab.title.clone()}</a>
                    </h2>
                    <p class="meta">
                        <span class=difficulty_class>{lab.difficulty}</span>
                        " · " {lab.minutes} " min · " {lab.steps} " steps · "
                        <span data-testid="lab-progress">{state}</span>
                    </p>
                    <div class="progress-bar" role="progressbar" aria-label=format!("{} progress", lab.title) aria-valuemin="0" aria-valuemax="100" aria-valuenow=percent>
                        <span style=format!("width:{percent}%")></span>
                    </div>
                    <p>{lab.summary}</p>
                </li>
            })
        }
    }
}

#[component]
fn LabWorkspace(
    content: LabContent,
    projector: bool,
    learner: Option<String>,
    watching: Option<Watching>,
) -> impl IntoView {
    let socket = match &watching {
        Some(watching) => format!("/class/ws/learners/{}/labs/{}", watching.id, content.id),
        None => format!("/ws/labs/{}", content.id),
    };
    let read_only = watching.is_some();
    let live = Live::connect(socket, read_only);
    provide_context(live);
    let title = content.title.clone();
    // On a narrow screen one pane shows at a time, chosen with the switch at the top.
    let pane = RwSignal::new("steps");
    let (toggle_href, toggle_text) = if projector {
        ("?", "Leave projector mode")
    } else {
        ("?projector", "Projector mode")
    };
    view! {
        <div class="workspace" class:projector=projector class:read-only=read_only>
            <header class="topbar">
                {match &watching {
                    Some(_) => Either::Left(view! { <a href="/class" class="back">"← Dashboard"</a> }),
                    None => Either::Right(view! { <a href="/" class="back">"← All labs"</a> }),
                }}
                <h1 title=content.title.clone()>{title}</h1>
                <span class="meta">{content.difficulty.clone()} " · " {content.minutes} " min"</span>
                <live_view::BrokerBadge />
                <live_view::LinkBadge />
                {learner.map(|name| view! { <span class="learner-name" data-testid="learner-name" title="You, in this class">{name}</span> })}
                {match watching {
                    Some(watching) => Either::Left(view! {
                        <span class="watching" data-testid="watching">{format!("{}'s lab, read-only", watching.name)}</span>
                    }),
                    None => Either::Right(view! {
                        <a class="projector-toggle" href=toggle_href data-testid="projector-toggle">{toggle_text}</a>
                    }),
                }}
            </header>
            <live_view::InstructorBanner />
            {projector.then(|| view! { <live_view::Shortcuts /> })}
            <live_view::Notices />
            <live_view::Announcer />
            <nav class="pane-switch" aria-label="Show">
                <button type="button" class="tab" class:chosen=move || pane.get() == "steps" aria-pressed=move || (pane.get() == "steps").to_string() on:click=move |_| pane.set("steps")>"Steps"</button>
                <button type="button" class="tab" class:chosen=move || pane.get() == "live" aria-pressed=move || (pane.get() == "live").to_string() data-testid="show-live" on:click=move |_| pane.set("live")>"Live view"</button>
            </nav>
            <main class="columns" data-pane=move || pane.get()>
                <Instructions content=content.clone() />
                <LiveView setup=content.setup.clone() />
            </main>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(title: &str) -> LabSummary {
        LabSummary {
            id: "lab".to_owned(),
            title: title.to_owned(),
            difficulty: "beginner".to_owned(),
            minutes: 5,
            summary: String::new(),
            problem: None,
            steps: 1,
            passed: 0,
        }
    }

    #[test]
    fn a_lab_text_cannot_close_the_script_element_that_carries_the_page() {
        let page = Page::Labs {
            labs: vec![summary("</script><script>alert(1)</script>")],
            learner: None,
        };
        let json = page.to_script_json();
        assert!(!json.contains('<'), "{json}");
        let read: Page = serde_json::from_str(&json).expect("the page reads back");
        let Page::Labs { labs, .. } = read else {
            panic!("the page came back as {read:?}");
        };
        assert_eq!(labs[0].title, "</script><script>alert(1)</script>");
    }

    /// An erased view keeps a second, asynchronous copy of its hydration code in the WASM module
    /// (see ARCHITECTURE.md, "How the front end is built"): a fifth of the module the last time.
    #[test]
    fn no_view_is_type_erased() {
        // Every source file of the crate, however the views are laid out in folders.
        fn sources(dir: &std::path::Path, found: &mut Vec<(String, String)>) {
            for entry in std::fs::read_dir(dir).expect("the crate's sources can be listed") {
                let path = entry.expect("a directory entry").path();
                if path.is_dir() {
                    sources(&path, found);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).expect("a source file reads");
                    found.push((path.display().to_string(), text));
                }
            }
        }
        let mut found = Vec::new();
        sources(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut found,
        );
        assert!(
            found
                .iter()
                .any(|(file, _)| file.ends_with("live_view/instances.rs")),
            "the view files were not found: {:?}",
            found.iter().map(|(file, _)| file).collect::<Vec<_>>()
        );
        // Spelt in pieces, so that this test does not find itself.
        let erasers = [
            concat!(".into", "_any()"),
            concat!("Any", "View"),
            concat!("leptos", "_router"),
        ];
        for (file, text) in &found {
            for eraser in erasers {
                assert!(!text.contains(eraser), "{file} uses {eraser}");
            }
        }
    }
}
