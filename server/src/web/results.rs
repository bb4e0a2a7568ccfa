//! A class's results for the instructor to take away (`lab::export`): every learner's steps as
//! CSV or JSON, and the roster as CSV. The instructor's link only, as the class page.

use axum::Extension;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use super::join::{Refusal, class_of, instructor_only};
use crate::class::Who;
use crate::lab::export::{RosterRow, StepRow, roster_row, step_rows, to_csv};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/class/results.csv", get(results_csv))
        .route("/class/results.json", get(results_json))
        .route("/class/roster.csv", get(roster_csv))
}

async fn results_csv(State(state): State<AppState>, who: Option<Extension<Who>>) -> Response {
    match gather(&state, who).await {
        Ok((class, steps, _)) => csv_download(&class, "results", &steps),
        Err(refusal) => refusal.into_response(),
    }
}

async fn results_json(State(state): State<AppState>, who: Option<Extension<Who>>) -> Response {
    match gather(&state, who).await {
        Ok((class, steps, _)) => match serde_json::to_string_pretty(&steps) {
            Ok(json) => download(&class, "results.json", "application/json", json),
            Err(err) => trouble(&err.to_string()).into_response(),
        },
        Err(refusal) => refusal.into_response(),
    }
}

async fn roster_csv(State(state): State<AppState>, who: Option<Extension<Who>>) -> Response {
    match gather(&state, who).await {
        Ok((class, _, roster)) => csv_download(&class, "roster", &roster),
        Err(refusal) => refusal.into_response(),
    }
}

/// The class's name, every learner's step rows and the roster, read from SQLite now.
async fn gather(
    state: &AppState,
    who: Option<Extension<Who>>,
) -> Result<(String, Vec<StepRow>, Vec<RosterRow>), Refusal> {
    let class = class_of(state)?;
    instructor_only(who.as_ref().map(|Extension(who)| who))?;
    let learners = class
        .store
        .learners()
        .await
        .map_err(|err| trouble(&err.to_string()))?;
    let (catalog, progress) = (state.worlds.catalog(), state.worlds.progress());
    let (mut steps, mut roster) = (Vec::new(), Vec::new());
    for learner in &learners {
        let history = progress
            .history(&learner.id)
            .await
            .map_err(|err| trouble(&err.to_string()))?;
        steps.extend(step_rows(catalog, learner, &history));
        roster.push(roster_row(learner, &history));
    }
    Ok((class.name().to_owned(), steps, roster))
}

fn trouble(detail: &str) -> Refusal {
    Refusal::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "The class's results cannot be read",
        detail,
    )
}

fn csv_download<T: serde::Serialize>(class: &str, what: &str, rows: &[T]) -> Response {
    match to_csv(rows) {
        Ok(csv) => download(
            class,
            &format!("{what}.csv"),
            "text/csv; charset=utf-8",
            csv,
        ),
        Err(err) => trouble(&err.to_string()).into_response(),
    }
}

/// A file to save, named after the class (`kafka-101-results.csv`).
fn download(class: &str, name: &str, content_type: &'static str, body: String) -> Response {
    let class: String = class
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let disposition = format!("attachment; filename=\"{class}-{name}\"");
    (
        StatusCode::OK,
        [
            (CONTENT_TYPE, content_type.to_owned()),
            (CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response()
}
