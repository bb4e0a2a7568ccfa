//! A class's doors: the join page (the class code and a display name), the rejoin page (a
//! learner's own code), and the instructor's class page (the join link, its code and QR code,
//! and the learners, each of whom can be shut out).
//!
//! These are plain server-rendered forms, with no script: they must work on any phone a learner
//! brings. A join or rejoin is rate-limited per address and must come from the page's own origin
//! (a form on another site cannot sign a learner's browser in); a learner is then known by an
//! HttpOnly, SameSite=Strict cookie whose SHA-256 alone is kept ([`crate::class::store`]).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, Form, Path, State};
use axum::http::header::{HOST, LOCATION, ORIGIN, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::Deserialize;
use tracing::{info, warn};

use super::AppState;
use crate::class::{Class, JoinError, Learner, Who};
use grouplab_backends::clock::now_ms;

/// The cookie that identifies a class's learner.
pub const LEARNER_COOKIE: &str = "grouplab_learner";

/// How long a learner's cookie lasts in their browser: longer than any course (a class never
/// expires anyone mid-class; the instructor shuts a learner out instead).
const COOKIE_MAX_AGE_S: u64 = 180 * 24 * 3600;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/join", get(join_form).post(join))
        .route("/join/{code}", get(join_form_with_code))
        .route("/rejoin", get(rejoin_form).post(rejoin))
        .route("/rejoin/{code}", get(rejoin_form_with_code))
        .route("/class/learners/{id}/revoke", post(revoke))
}

/// Paths anyone may open on a class server: the doors, and the files the pages need.
pub fn is_open(path: &str) -> bool {
    path == "/join"
        || path == "/rejoin"
        || path
            .strip_prefix("/join/")
            .is_some_and(|code| !code.contains('/'))
        || path
            .strip_prefix("/rejoin/")
            .is_some_and(|code| !code.contains('/'))
        || is_static(path)
}

/// The front end's files, the same for everyone.
pub fn is_static(path: &str) -> bool {
    path == "/grouplab.css" || path.starts_with("/pkg/")
}

/// Text as HTML.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page around `body`.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content=\"width=device-width, initial-scale=1\"><title>{} · grouplab</title><link rel=stylesheet href=/grouplab.css></head><body><main class=\"page narrow door\">{body}</main></body></html>",
        escape(title)
    );
    (status, Html(html)).into_response()
}

/// A page that says what went wrong, in a learner's words.
pub fn problem_page(status: StatusCode, title: &str, text: &str) -> Response {
    page(
        status,
        title,
        &format!(
            "<h1>{}</h1><p data-testid=problem>{}</p><p><a href=/join>Join a class</a> · <a href=/rejoin>Continue with a rejoin code</a></p>",
            escape(title),
            escape(text)
        ),
    )
}

/// A page refused, said as [`problem_page`] says it.
pub struct Refusal {
    status: StatusCode,
    title: &'static str,
    text: String,
}

impl Refusal {
    pub(super) fn new(status: StatusCode, title: &'static str, text: impl Into<String>) -> Self {
        Self {
            status,
            title,
            text: text.into(),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        problem_page(self.status, self.title, &self.text)
    }
}

/// What someone who has not joined sees on every other page of a class server.
pub fn not_joined_page(class: &Class) -> Response {
    page(
        StatusCode::UNAUTHORIZED,
        "Join the class",
        &format!(
            "<h1>This grouplab serves the class {}</h1><p>Join with the link your instructor shared, or type the class code below.</p>{}<p>Joined before, on another device or before clearing cookies? <a href=/rejoin>Continue with your rejoin code</a>.</p>",
            escape(class.name()),
            join_fields("", "", None)
        ),
    )
}

/// Why a form was refused, above it; nothing when it was not.
fn problem_line(problem: Option<&str>) -> String {
    problem
        .map(|p| {
            format!(
                "<p class=\"door-problem\" role=alert data-testid=problem>{}</p>",
                escape(p)
            )
        })
        .unwrap_or_default()
}

/// The join form, filled in with what was typed, and why it was refused.
fn join_fields(code: &str, name: &str, problem: Option<&str>) -> String {
    let problem = problem_line(problem);
    format!(
        "<form method=post action=/join class=door-form>{problem}<label>Class code <input name=code required autocomplete=off autocapitalize=characters value=\"{}\"></label><label>Your name, as the class will see it <input name=name required maxlength=32 autocomplete=name value=\"{}\"></label><button type=submit>Join</button></form>",
        escape(code),
        escape(name)
    )
}

/// The page for a learner already in: where to go next.
fn already_in(learner: &Learner) -> Response {
    page(
        StatusCode::OK,
        "You are in",
        &format!(
            "<h1>You are in, {}</h1><p><a href=/ data-testid=go-to-labs>Go to your labs</a>.</p><p>Your rejoin code is <code>{}</code>: it lets you continue on another device.</p>",
            escape(&learner.name),
            escape(&learner.rejoin_code)
        ),
    )
}

pub(super) fn class_of(state: &AppState) -> Result<&Class, Refusal> {
    state.class.as_deref().ok_or_else(|| {
        Refusal::new(
            StatusCode::NOT_FOUND,
            "No class here",
            "This grouplab serves one learner and has no class to join: open its labs at /.",
        )
    })
}

async fn join_form(State(state): State<AppState>, who: Option<Extension<Who>>) -> Response {
    show_join(&state, who, "")
}

async fn join_form_with_code(
    State(state): State<AppState>,
    who: Option<Extension<Who>>,
    Path(code): Path<String>,
) -> Response {
    show_join(&state, who, &code)
}

fn show_join(state: &AppState, who: Option<Extension<Who>>, code: &str) -> Response {
    let class = match class_of(state) {
        Ok(class) => class,
        Err(refusal) => return refusal.into_response(),
    };
    if let Some(Extension(Who::Learner(learner))) = &who {
        return already_in(learner);
    }
    // The code in the link is checked with the name, by the rate-limited POST: a page that
    // said at once whether a code is right would let anyone try every code.
    page(
        StatusCode::OK,
        "Join the class",
        &format!(
            "<h1>Join the class {}</h1><p>Type your name: you will see your own labs, with a Kafka broker of your own, and your instructor will see your progress.</p>{}<p>Already joined on this device? <a href=/>Open your labs</a>. On another one? <a href=/rejoin>Continue with your rejoin code</a>.</p>",
            escape(class.name()),
            join_fields(code, "", None)
        ),
    )
}

#[derive(Deserialize)]
struct JoinForm {
    #[serde(default)]
    code: String,
    #[serde(default)]
    name: String,
}

/// Where a request came from, for the rate limit (unknown without a socket: tests).
fn peer(connect: Option<Extension<ConnectInfo<SocketAddr>>>) -> IpAddr {
    connect.map_or(
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        |Extension(ConnectInfo(addr))| addr.ip(),
    )
}

/// The class a join or rejoin form was posted to, and from where, unless it must be refused.
fn door<'a>(
    state: &'a AppState,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: &HeaderMap,
    what: &str,
) -> Result<(&'a Class, IpAddr), Refusal> {
    let class = class_of(state)?;
    let from = peer(connect);
    check_post(state, class, headers, from, what)?;
    Ok((class, from))
}

/// Refuses a form posted by a page of another site, or one posted too often from one address.
fn check_post(
    state: &AppState,
    class: &Class,
    headers: &HeaderMap,
    from: IpAddr,
    what: &str,
) -> Result<(), Refusal> {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Err(refused) = state.access.check(header(HOST), header(ORIGIN)) {
        warn!(%from, origin = ?header(ORIGIN), %refused, "a {what} was refused");
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "This form came from another site",
            refused.to_string(),
        ));
    }
    if !class.may_try_joining(from) {
        warn!(%from, "a {what} past the rate limit was refused");
        return Err(Refusal::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many tries",
            "Too many joins came from your network in a short time. Wait a few seconds, then try again.",
        ));
    }
    Ok(())
}

/// Lets a learner in: their cookie is set, and they go to their labs.
fn let_in(cookie: &str) -> Response {
    let mut response = (StatusCode::SEE_OTHER, [(LOCATION, "/")]).into_response();
    let cookie = format!(
        "{LEARNER_COOKIE}={cookie}; Path=/; HttpOnly; SameSite=Strict; Max-Age={COOKIE_MAX_AGE_S}"
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(SET_COOKIE, value);
    }
    response
}

async fn join(
    State(state): State<AppState>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(form): Form<JoinForm>,
) -> Response {
    let (class, from) = match door(&state, connect, &headers, "join") {
        Ok(door) => door,
        Err(refusal) => return refusal.into_response(),
    };
    let refused = |status: StatusCode, err: JoinError| {
        page(
            status,
            "Join the class",
            &format!(
                "<h1>Join the class {}</h1>{}",
                escape(class.name()),
                join_fields(&form.code, &form.name, Some(&err.to_string()))
            ),
        )
    };
    if !class.is_code(&form.code) {
        warn!(%from, "a join with a wrong class code was refused");
        return refused(StatusCode::NOT_FOUND, JoinError::WrongCode);
    }
    match class.join(&form.name, now_ms()).await {
        Ok((learner, cookie)) => {
            info!(learner = %learner.id, name = %learner.name, %from, "a learner joined the class");
            class.board.roster_changed();
            let_in(&cookie)
        }
        Err(err) => {
            warn!(%from, %err, "a join was refused");
            let status = match err {
                JoinError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
                JoinError::NameTaken(_) => StatusCode::CONFLICT,
                _ => StatusCode::BAD_REQUEST,
            };
            refused(status, err)
        }
    }
}

fn rejoin_fields(code: &str, problem: Option<&str>) -> String {
    let problem = problem_line(problem);
    format!(
        "<h1>Continue where you left off</h1><p>Type the rejoin code shown on your course page (such as <code>ABCDE-FGHJK</code>).</p><form method=post action=/rejoin class=door-form>{problem}<label>Rejoin code <input name=code required autocomplete=off autocapitalize=characters value=\"{}\"></label><button type=submit>Continue</button></form><p>New to the class? <a href=/join>Join it</a>.</p>",
        escape(code)
    )
}

async fn rejoin_form(State(state): State<AppState>) -> Response {
    match class_of(&state) {
        Ok(_) => page(StatusCode::OK, "Rejoin", &rejoin_fields("", None)),
        Err(refusal) => refusal.into_response(),
    }
}

async fn rejoin_form_with_code(
    State(state): State<AppState>,
    Path(code): Path<String>,
) -> Response {
    match class_of(&state) {
        Ok(_) => page(StatusCode::OK, "Rejoin", &rejoin_fields(&code, None)),
        Err(refusal) => refusal.into_response(),
    }
}

#[derive(Deserialize)]
struct RejoinForm {
    #[serde(default)]
    code: String,
}

async fn rejoin(
    State(state): State<AppState>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(form): Form<RejoinForm>,
) -> Response {
    let (class, from) = match door(&state, connect, &headers, "rejoin") {
        Ok(door) => door,
        Err(refusal) => return refusal.into_response(),
    };
    match class.store.rejoin(&form.code, now_ms()).await {
        Ok((learner, cookie)) => {
            info!(learner = %learner.id, %from, "a learner rejoined on another device");
            let_in(&cookie)
        }
        Err(err) => {
            warn!(%from, %err, "a rejoin was refused");
            page(
                StatusCode::NOT_FOUND,
                "Rejoin",
                &rejoin_fields(&form.code, Some(&err.to_string())),
            )
        }
    }
}

/// Only the instructor (the access link) may see the class page or act on learners.
pub(super) fn instructor_only(who: Option<&Who>) -> Result<(), Refusal> {
    match who {
        Some(Who::Owner) => Ok(()),
        Some(Who::Learner(learner)) => {
            warn!(learner = %learner.id, "a learner was refused the instructor's page");
            Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "This page is the instructor's",
                "Only the instructor's link opens the class page. Your labs are at /.",
            ))
        }
        None => Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            "This page is the instructor's",
            "Open it with the instructor's link that grouplab printed when it started.",
        )),
    }
}

/// A QR code of `text` as an SVG element, dark on light, sized by the page.
pub(super) fn qr_svg(text: &str) -> String {
    match qrcode::QrCode::new(text.as_bytes()) {
        Ok(code) => code
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(240, 240)
            .quiet_zone(true)
            .build()
            // The XML declaration has no place inside HTML.
            .split_once("?>")
            .map_or_else(String::new, |(_, svg)| svg.to_owned()),
        Err(err) => format!("<p>No QR code: {}</p>", escape(&err.to_string())),
    }
}

async fn revoke(
    State(state): State<AppState>,
    who: Option<Extension<Who>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let class = match class_of(&state) {
        Ok(class) => class,
        Err(refusal) => return refusal.into_response(),
    };
    if let Err(refusal) = instructor_only(who.as_ref().map(|Extension(who)| who)) {
        return refusal.into_response();
    }
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Err(refused) = state.access.check(header(HOST), header(ORIGIN)) {
        return problem_page(StatusCode::FORBIDDEN, "Refused", &refused.to_string());
    }
    match class.store.revoke(&id, now_ms()).await {
        Ok(true) => {
            info!(learner = %id, "the instructor shut a learner out");
            state.worlds.shut_out(&id).await;
            class.board.roster_changed();
            (StatusCode::SEE_OTHER, [(LOCATION, "/class")]).into_response()
        }
        Ok(false) => problem_page(
            StatusCode::NOT_FOUND,
            "No such learner",
            "Nobody in this class has that id, or they were already shut out.",
        ),
        Err(err) => problem_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "The class cannot be changed",
            &err.to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::{escape, is_open, qr_svg};

    #[test]
    fn only_the_doors_and_the_files_are_open() {
        for open in [
            "/join",
            "/join/ABCDEF",
            "/rejoin",
            "/rejoin/ABCDE-FGHJK",
            "/grouplab.css",
            "/pkg/grouplab.js",
        ] {
            assert!(is_open(open), "{open}");
        }
        for closed in [
            "/",
            "/labs/04-consumer-groups",
            "/ws/labs/04-consumer-groups",
            "/class",
            "/join/a/b",
            "/joined",
        ] {
            assert!(!is_open(closed), "{closed}");
        }
    }

    #[test]
    fn text_cannot_become_markup() {
        assert_eq!(
            escape("<b a=\"x\">'&"),
            "&lt;b a=&quot;x&quot;&gt;&#39;&amp;"
        );
    }

    #[test]
    fn the_join_link_becomes_an_svg_qr_code() {
        let svg = qr_svg("http://10.0.0.5:3000/join/ABCDEF");
        assert!(svg.trim_start().starts_with("<svg"), "{svg}");
        assert!(svg.contains("<path") || svg.contains("<rect"), "{svg}");
    }
}
