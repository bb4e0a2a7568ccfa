//! The HTTP side: pages (rendered by Leptos), static files, the websocket route.

pub mod access;
pub mod dashboard;
pub mod join;
pub mod results;
pub mod ws;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRef, Path, State, WebSocketUpgrade};
use axum::http::header::{COOKIE, HOST, ORIGIN, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Html;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use grouplab_app::{LearnerBadge, Page, shell};
use grouplab_protocol::LabSummary;
use leptos::prelude::LeptosOptions;
use tower_http::services::{ServeDir, ServeFile};

use tracing::warn;

use self::access::{Admission, SiteAccess, TOKEN_COOKIE, cookie_value};
use self::join::LEARNER_COOKIE;
use crate::class::{Class, Who, Worlds};
use crate::lab::catalog::LabCatalog;
use crate::lab::progress::ProgressStore;

/// What request handlers share.
#[derive(Clone)]
pub struct AppState {
    pub leptos: LeptosOptions,
    pub worlds: Arc<Worlds>,
    pub access: Arc<SiteAccess>,
    /// The class this server serves (`--class`), if any.
    pub class: Option<Arc<Class>>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}

/// The labs as a course: the catalog, with each learner's progress.
struct Course {
    catalog: Arc<LabCatalog>,
    progress: ProgressStore,
    class: Option<String>,
}

impl Course {
    /// Every lab in course order, with the progress of `namespace`.
    async fn summaries(&self, namespace: &str) -> Vec<LabSummary> {
        let mut summaries = self.catalog.summaries();
        // Without the database the list still shows, with no progress.
        let passed = self
            .progress
            .passed_per_lab(namespace)
            .await
            .unwrap_or_default();
        for summary in &mut summaries {
            summary.passed = passed
                .get(&summary.id)
                .copied()
                .unwrap_or(0)
                .min(summary.steps);
        }
        summaries
    }

    /// What the page at `path` shows to `who`: the course at `/`, a lab at `/labs/<id>`, else nothing.
    /// `prefix` is the learner's on a shared cluster: the code they run carries it.
    async fn page(&self, who: &Who, prefix: &str, path: &str, query: Option<&str>) -> Page {
        if path == "/" {
            let (namespace, learner) = match who {
                Who::Owner => ("default", None),
                Who::Learner(learner) => (
                    learner.id.as_str(),
                    Some(LearnerBadge {
                        name: learner.name.clone(),
                        class: self.class.clone().unwrap_or_default(),
                        rejoin_code: learner.rejoin_code.clone(),
                    }),
                ),
            };
            return Page::Labs {
                labs: self.summaries(namespace).await,
                learner,
            };
        }
        path.strip_prefix("/labs/")
            .and_then(|id| self.catalog.get(id))
            .map_or(Page::NotFound, |lab| Page::Lab {
                learner: match who {
                    Who::Learner(learner) => Some(learner.name.clone()),
                    Who::Owner => None,
                },
                content: Box::new(crate::lab::names::content_with_prefix(&lab.content, prefix)),
                projector: projector(query),
                watching: None,
            })
    }
}

/// Whether a lab page's address asks for projector mode (`?projector`, kept so that an instructor
/// can bookmark it; `?projector=0` or `=off` does not).
fn projector(query: Option<&str>) -> bool {
    query.is_some_and(|query| {
        query.split('&').any(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            name == "projector" && !matches!(value, "0" | "off" | "false")
        })
    })
}

/// The whole router; tests call it without a socket.
pub fn app(state: AppState) -> Router {
    // Rendering spawns on Leptos's executor; an error only says it is already set up.
    let _ = any_spawner::Executor::init_tokio();
    let site_root = std::path::PathBuf::from(state.leptos.site_root.as_ref());
    let course = Arc::new(Course {
        catalog: Arc::clone(state.worlds.catalog()),
        progress: state.worlds.progress().clone(),
        class: state.class.as_ref().map(|class| class.name().to_owned()),
    });
    Router::new()
        .route("/ws/labs/{lab_id}", get(lab_socket))
        .route("/healthz", get(|| async { "ok" }))
        .merge(join::routes())
        .merge(dashboard::routes())
        .merge(results::routes())
        .merge(static_files(&site_root))
        .fallback(move |state, request| page(course.clone(), state, request))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_access,
        ))
        .with_state(state)
}

/// Renders the page a GET asks for (every path that is not a file or the websocket); an address
/// that shows nothing is a 404 with the "page not found" page.
async fn page(
    course: Arc<Course>,
    State(state): State<AppState>,
    request: axum::extract::Request,
) -> Response {
    if request.method() != axum::http::Method::GET && request.method() != axum::http::Method::HEAD {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let Some(who) = who_of(request.extensions().get::<Who>().cloned(), &state) else {
        return match &state.class {
            Some(class) => join::not_joined_page(class),
            None => StatusCode::UNAUTHORIZED.into_response(),
        };
    };
    let prefix = state.worlds.prefix_for(&who);
    let page = course
        .page(&who, &prefix, request.uri().path(), request.uri().query())
        .await;
    let status = match page {
        Page::NotFound => StatusCode::NOT_FOUND,
        _ => StatusCode::OK,
    };
    render(&state, request, page, status).await
}

/// Renders `page` as the answer to `request`.
async fn render(
    state: &AppState,
    request: axum::extract::Request,
    page: Page,
    status: StatusCode,
) -> Response {
    let options = state.leptos.clone();
    let render = leptos_axum::render_app_async_with_context(
        || (),
        move || shell(options.clone(), page.clone()),
    );
    let mut response = render(request).await;
    *response.status_mut() = status;
    response
}

/// The front end's files: gzip-compressed at build time (`cargo xtask site`) and sent as they are
/// to browsers that accept gzip; `no-cache` with `Last-Modified`, so a reload asks whether they
/// changed and gets a bodiless 304 when they did not, and a rebuilt front end is never stale.
fn static_files(site_root: &std::path::Path) -> Router<AppState> {
    Router::new()
        .nest_service(
            "/pkg",
            ServeDir::new(site_root.join("pkg")).precompressed_gzip(),
        )
        .route_service(
            "/grouplab.css",
            ServeFile::new(site_root.join("grouplab.css")).precompressed_gzip(),
        )
        .layer(axum::middleware::from_fn(revalidate))
}

async fn revalidate(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let mut response = next.run(request).await;
    response
        .headers_mut()
        .entry(axum::http::header::CACHE_CONTROL)
        .or_insert(axum::http::HeaderValue::from_static("no-cache"));
    response
}

/// On a public server, every request but the health check needs the access token: from the
/// cookie, or from the access link, which then sets the cookie. In a class, the token is the
/// instructor's, and a learner is known by their own cookie ([`join`]); the join pages and the
/// front end's files are open to all. The request goes on with [`Who`] it is.
async fn require_access(
    State(state): State<AppState>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path();
    if path == "/healthz" {
        return next.run(request).await;
    }
    let cookies = request
        .headers()
        .get(COOKIE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let query_token = request
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|pair| pair.strip_prefix("token=")));
    let admission = state.access.admit(cookies.as_deref(), query_token);
    if admission != Admission::Refused {
        request.extensions_mut().insert(Who::Owner);
        let mut response = next.run(request).await;
        if admission == Admission::AdmittedSetCookie {
            let cookie = format!(
                "{TOKEN_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
                state.access.token().unwrap_or_default()
            );
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().append(SET_COOKIE, value);
            }
        }
        return response;
    }
    let Some(class) = &state.class else {
        return (
            StatusCode::UNAUTHORIZED,
            Html(
                "<!doctype html><meta charset=utf-8><title>grouplab</title><main style=\"font-family:system-ui;max-width:40rem;margin:3rem auto\"><h1>This grouplab needs its access link</h1><p>It is shared with a class. Open it with the link its operator printed when it started (it ends in <code>?token=…</code>).</p></main>",
            ),
        )
            .into_response();
    };
    // The front end's files are everyone's: no database lookup for each of them.
    if join::is_static(path) {
        return next.run(request).await;
    }
    if let Some(cookie) = cookie_value(cookies.as_deref(), LEARNER_COOKIE) {
        match class.store.learner_by_cookie(cookie).await {
            Ok(Some(learner)) => {
                request.extensions_mut().insert(Who::Learner(learner));
                return next.run(request).await;
            }
            Ok(None) => {
                warn!(%path, "a learner cookie that was never issued, or was revoked, was refused");
            }
            Err(err) => {
                warn!(%err, "a learner could not be looked up");
                return join::problem_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "grouplab cannot read its class right now",
                    &err.to_string(),
                );
            }
        }
    }
    if join::is_open(path) {
        return next.run(request).await;
    }
    if path.starts_with("/ws/") {
        warn!(%path, "a lab websocket without a learner's cookie was refused");
        return (
            StatusCode::UNAUTHORIZED,
            "Join the class first: open the join link your instructor shared.",
        )
            .into_response();
    }
    join::not_joined_page(class)
}

async fn lab_socket(
    ws: WebSocketUpgrade,
    Path(lab_id): Path<String>,
    State(state): State<AppState>,
    who: Option<axum::Extension<Who>>,
    headers: HeaderMap,
) -> Response {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Err(refused) = state.access.check(header(HOST), header(ORIGIN)) {
        warn!(host = ?header(HOST), origin = ?header(ORIGIN), %refused, "a lab websocket was refused");
        return (StatusCode::FORBIDDEN, refused.to_string()).into_response();
    }
    let Some(who) = who_of(who.map(|axum::Extension(who)| who), &state) else {
        return (StatusCode::UNAUTHORIZED, "Join the class first.").into_response();
    };
    let (world, ended) = match state.worlds.world(&who).await {
        Ok(world) => world,
        Err(why) => return (StatusCode::SERVICE_UNAVAILABLE, why).into_response(),
    };
    let Some(session) = world.session(&lab_id) else {
        return (
            StatusCode::NOT_FOUND,
            format!("There is no lab `{lab_id}`."),
        )
            .into_response();
    };
    ws.max_message_size(ws::MAX_FRAME_BYTES)
        .on_upgrade(move |socket| ws::serve(socket, session, ended, ws::Viewer::Learner))
}

/// Who a request is, as the access check found: without one (a test calling a handler alone)
/// the owner, unless the server serves a class, where nobody is anyone without a cookie.
fn who_of(found: Option<Who>, state: &AppState) -> Option<Who> {
    match (found, &state.class) {
        (Some(who), _) => Some(who),
        (None, None) => Some(Who::Owner),
        (None, Some(_)) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::projector;

    #[test]
    fn projector_mode_is_asked_for_in_the_address() {
        for (query, wanted) in [
            (None, false),
            (Some(""), false),
            (Some("projector"), true),
            (Some("projector="), true),
            (Some("projector=1"), true),
            (Some("a=b&projector"), true),
            (Some("projector=0"), false),
            (Some("projector=off"), false),
            (Some("projectors"), false),
            (Some("x=projector"), false),
        ] {
            assert_eq!(projector(query), wanted, "{query:?}");
        }
    }
}
