//! The instructor's side of a class: the dashboard page (`/class`, hydrated), its websocket
//! (`/class/ws`: the board pushed as it changes, the instructor's actions back), and a learner's
//! lab opened read-only (`/class/learners/{id}/labs/{lab}` and its socket). Every route is the
//! instructor's alone: a learner's cookie is refused.

use std::sync::Arc;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use axum::extract::{Path, State, WebSocketUpgrade};
use axum::http::header::{HOST, ORIGIN};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use futures::{SinkExt, StreamExt};
use grouplab_app::{ClassPage, Page, RosterEntry, Watching};
use grouplab_protocol::class::{ActionReport, ClassCommand, ClassEvent, InstructorAction};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::join::{Refusal, class_of, instructor_only, qr_svg};
use super::ws::{MAX_FRAME_BYTES, SEND_TIMEOUT, Viewer};
use super::{AppState, render};
use crate::class::{Class, Who, Worlds};
use crate::session::{MAX_DEMO_MESSAGES, MAX_MESSAGE_CHARS, MAX_OUTAGE_S};
use grouplab_backends::clock::now_ms;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/class", get(dashboard))
        .route("/class/ws", get(dashboard_socket))
        .route("/class/learners/{id}/labs/{lab}", get(learner_lab))
        .route(
            "/class/ws/learners/{id}/labs/{lab}",
            get(learner_lab_socket),
        )
}

/// The class, if the request is the instructor's.
fn instructor<'a>(state: &'a AppState, who: Option<&Extension<Who>>) -> Result<&'a Class, Refusal> {
    let class = class_of(state)?;
    instructor_only(who.map(|Extension(who)| who))?;
    Ok(class)
}

/// Refuses a websocket opened by a page of another site.
fn same_site(state: &AppState, headers: &HeaderMap) -> Result<(), Refusal> {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    state
        .access
        .check(header(HOST), header(ORIGIN))
        .map_err(|refused| {
            warn!(origin = ?header(ORIGIN), %refused, "an instructor's websocket was refused");
            Refusal::new(
                StatusCode::FORBIDDEN,
                "This came from another site",
                refused.to_string(),
            )
        })
}

async fn dashboard(
    State(state): State<AppState>,
    who: Option<Extension<Who>>,
    headers: HeaderMap,
    request: axum::extract::Request,
) -> Response {
    let class = match instructor(&state, who.as_ref()) {
        Ok(class) => class,
        Err(refusal) => return refusal.into_response(),
    };
    let host = headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1:3000")
        .to_owned();
    let link = format!("http://{host}/join/{}", class.code);
    let roster = match class.store.learners().await {
        Ok(learners) => learners
            .into_iter()
            .map(|l| RosterEntry {
                id: l.id,
                name: l.name,
                rejoin_code: l.rejoin_code,
                broker_port: l.broker_port,
            })
            .collect(),
        Err(err) => {
            return Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "The class cannot be read",
                err.to_string(),
            )
            .into_response();
        }
    };
    let page = Page::Class(Box::new(ClassPage {
        class: class.name().to_owned(),
        code: class.code.clone(),
        qr_svg: qr_svg(&link),
        link,
        host,
        roster,
        board: (**class.board.watch().borrow()).clone(),
    }));
    render(&state, request, page, StatusCode::OK).await
}

async fn dashboard_socket(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    who: Option<Extension<Who>>,
    headers: HeaderMap,
) -> Response {
    if let Err(refusal) = instructor(&state, who.as_ref()) {
        return refusal.into_response();
    }
    let Some(class) = state.class.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if let Err(refused) = same_site(&state, &headers) {
        return refused.into_response();
    }
    let worlds = Arc::clone(&state.worlds);
    ws.max_message_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| serve_dashboard(socket, class, worlds))
}

/// Sends the board on every change and each action's report; takes the instructor's commands.
async fn serve_dashboard(socket: WebSocket, class: Arc<Class>, worlds: Arc<Worlds>) {
    let (mut sink, mut stream) = socket.split();
    let (reports, mut report_inbox) = mpsc::channel::<ClassEvent>(16);
    let mut board = class.board.watch();
    board.mark_changed();
    let send = async move {
        loop {
            let event = tokio::select! {
                changed = board.changed() => match changed {
                    Ok(()) => ClassEvent::Board((**board.borrow_and_update()).clone()),
                    Err(_) => return,
                },
                Some(report) = report_inbox.recv() => report,
            };
            let json = serde_json::to_string(&event).expect("class events always serialize");
            match tokio::time::timeout(
                SEND_TIMEOUT,
                sink.send(Message::Text(Utf8Bytes::from(json))),
            )
            .await
            {
                Ok(Ok(())) => {}
                _ => return,
            }
        }
    };
    let receive = async move {
        while let Some(Ok(message)) = stream.next().await {
            let Message::Text(text) = message else {
                if matches!(message, Message::Close(_)) {
                    return;
                }
                continue;
            };
            let report = match serde_json::from_str::<ClassCommand>(&text) {
                Ok(ClassCommand::Act { learner, action }) => {
                    act(&class, &worlds, learner, action).await
                }
                Err(err) => ActionReport {
                    action: "an unreadable command".to_owned(),
                    at: now_ms(),
                    refused: vec![(
                        "everyone".to_owned(),
                        format!(
                            "the dashboard sent what the server does not understand ({err}); reload the page"
                        ),
                    )],
                    ..ActionReport::default()
                },
            };
            if reports.send(ClassEvent::Acted(report)).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = send => {}
        () = receive => {}
    }
}

/// What is wrong with an action as the dashboard sent it, before anyone's lab is touched.
fn check_action(action: &InstructorAction) -> Result<(), String> {
    match action {
        InstructorAction::Message { text } if text.trim().is_empty() => {
            Err("the message is empty".to_owned())
        }
        InstructorAction::Message { text } if text.chars().count() > MAX_MESSAGE_CHARS => Err(
            format!("a message may be up to {MAX_MESSAGE_CHARS} characters"),
        ),
        InstructorAction::BrokerDown { seconds } if !(1..=MAX_OUTAGE_S).contains(seconds) => {
            Err(format!("an outage lasts from 1 to {MAX_OUTAGE_S} seconds"))
        }
        InstructorAction::Produce { count } if !(1..=MAX_DEMO_MESSAGES).contains(count) => Err(
            format!("a demo produces from 1 to {MAX_DEMO_MESSAGES} messages into each lab"),
        ),
        _ => Ok(()),
    }
}

/// Carries out an action on one learner, or on every learner at once.
async fn act(
    class: &Class,
    worlds: &Worlds,
    learner: Option<String>,
    action: InstructorAction,
) -> ActionReport {
    let mut report = ActionReport {
        action: action.describe(),
        at: now_ms(),
        ..ActionReport::default()
    };
    if let Err(why) = check_action(&action) {
        report.refused.push(("everyone".to_owned(), why));
        return report;
    }
    let current = class.board.current_labs();
    let targets: Vec<(String, String, Option<String>)> = match &learner {
        Some(id) => match current.get(id) {
            Some((name, lab)) => vec![(id.clone(), name.clone(), lab.clone())],
            None => {
                report.refused.push((
                    id.clone(),
                    "nobody in the class has that id (shut out, or not joined)".to_owned(),
                ));
                return report;
            }
        },
        None => current
            .into_iter()
            .map(|(id, (name, lab))| (id, name, lab))
            .collect(),
    };
    let outcomes = futures::future::join_all(targets.into_iter().map(|(id, name, lab)| {
        let action = action.clone();
        async move { (name, act_on(worlds, &id, lab, action).await) }
    }))
    .await;
    for (name, outcome) in outcomes {
        match outcome {
            Ok(done) => report.done.push((name, done)),
            Err(why) => report.refused.push((name, why)),
        }
    }
    report.done.sort();
    report.refused.sort();
    info!(action = %report.action, done = report.done.len(), refused = report.refused.len(), "the instructor acted");
    report
}

async fn act_on(
    worlds: &Worlds,
    learner: &str,
    lab: Option<String>,
    action: InstructorAction,
) -> Result<String, String> {
    let (sessions, _) = worlds
        .started_world(learner)
        .ok_or_else(|| "has not opened a lab since grouplab started".to_owned())?;
    if matches!(action, InstructorAction::Message { .. }) {
        // On every lab they have open, not only the one they worked in last.
        let running = sessions.running();
        if running.is_empty() {
            return Err("has no lab open".to_owned());
        }
        let shown = futures::future::join_all(
            running
                .iter()
                .map(|(_, handle)| answer_within(handle.instructor(action.clone()))),
        )
        .await;
        let shown = shown.iter().filter(|r| r.is_ok()).count();
        return Ok(format!("shown in {shown} lab(s)"));
    }
    let lab = lab.ok_or_else(|| "has not opened a lab yet".to_owned())?;
    let session = sessions
        .running_session(&lab)
        .ok_or_else(|| "has not opened their current lab since grouplab started".to_owned())?;
    answer_within(session.instructor(action)).await
}

/// How long one learner's lab may take to answer an action before the dashboard says so.
const ACTION_ANSWER: std::time::Duration = std::time::Duration::from_secs(5);

async fn answer_within(
    answer: impl Future<Output = Result<String, String>>,
) -> Result<String, String> {
    tokio::time::timeout(ACTION_ANSWER, answer)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "their lab did not answer within {} s (it may be busy); try again",
                ACTION_ANSWER.as_secs()
            ))
        })
}

/// The learner of `id`, if the request is the instructor's and they are in the class.
async fn watched_learner(
    state: &AppState,
    who: Option<&Extension<Who>>,
    id: &str,
) -> Result<crate::class::Learner, Refusal> {
    let class = instructor(state, who)?;
    let learners = class.store.learners().await.map_err(|err| {
        Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "The class cannot be read",
            err.to_string(),
        )
    })?;
    learners.into_iter().find(|l| l.id == id).ok_or_else(|| {
        Refusal::new(
            StatusCode::NOT_FOUND,
            "No such learner",
            "Nobody in this class has that id, or they were shut out.",
        )
    })
}

async fn learner_lab(
    State(state): State<AppState>,
    who: Option<Extension<Who>>,
    Path((id, lab)): Path<(String, String)>,
    request: axum::extract::Request,
) -> Response {
    let learner = match watched_learner(&state, who.as_ref(), &id).await {
        Ok(learner) => learner,
        Err(refusal) => return refusal.into_response(),
    };
    let Some(found) = state.worlds.catalog().get(&lab) else {
        return Refusal::new(
            StatusCode::NOT_FOUND,
            "No such lab",
            format!("There is no lab `{lab}`."),
        )
        .into_response();
    };
    if let Err(why) = state.worlds.learner_session(&learner.id, &lab) {
        return Refusal::new(
            StatusCode::NOT_FOUND,
            "Nothing to watch yet",
            format!(
                "{}: {why} Their lab can be watched while it is open.",
                learner.name
            ),
        )
        .into_response();
    }
    let prefix = state.worlds.prefix_for(&Who::Learner(learner.clone()));
    let page = Page::Lab {
        content: Box::new(crate::lab::names::content_with_prefix(
            &found.content,
            &prefix,
        )),
        projector: false,
        learner: None,
        watching: Some(Watching {
            id: learner.id,
            name: learner.name,
        }),
    };
    render(&state, request, page, StatusCode::OK).await
}

async fn learner_lab_socket(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    who: Option<Extension<Who>>,
    headers: HeaderMap,
    Path((id, lab)): Path<(String, String)>,
) -> Response {
    let learner = match watched_learner(&state, who.as_ref(), &id).await {
        Ok(learner) => learner,
        Err(refusal) => return refusal.into_response(),
    };
    if let Err(refused) = same_site(&state, &headers) {
        return refused.into_response();
    }
    match state.worlds.learner_session(&learner.id, &lab) {
        Ok((session, ended)) => ws
            .max_message_size(MAX_FRAME_BYTES)
            .on_upgrade(move |socket| super::ws::serve(socket, session, ended, Viewer::Instructor)),
        Err(why) => (StatusCode::NOT_FOUND, why).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_out_of_bounds_are_refused_before_anything_is_done() {
        for (action, refused) in [
            (InstructorAction::Message { text: " ".into() }, true),
            (
                InstructorAction::Message {
                    text: "x".repeat(MAX_MESSAGE_CHARS + 1),
                },
                true,
            ),
            (
                InstructorAction::Message {
                    text: "Break at 11".into(),
                },
                false,
            ),
            (InstructorAction::BrokerDown { seconds: 0 }, true),
            (
                InstructorAction::BrokerDown {
                    seconds: MAX_OUTAGE_S + 1,
                },
                true,
            ),
            (InstructorAction::BrokerDown { seconds: 20 }, false),
            (InstructorAction::Produce { count: 0 }, true),
            (
                InstructorAction::Produce {
                    count: MAX_DEMO_MESSAGES + 1,
                },
                true,
            ),
            (InstructorAction::Produce { count: 50 }, false),
            (InstructorAction::CrashOne, false),
        ] {
            assert_eq!(check_action(&action).is_err(), refused, "{action:?}");
        }
    }
}
