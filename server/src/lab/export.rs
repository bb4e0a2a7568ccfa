//! A class's results, for the instructor to take away: one row per learner, lab and step, as
//! CSV or JSON, and the roster as CSV. The columns are documented in the README.

use std::collections::BTreeMap;

use grouplab_protocol::EpochMillis;
use serde::Serialize;

use super::catalog::LabCatalog;
use super::progress::LabHistory;
use crate::class::store::Learner;

/// One learner's one step of one lab.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StepRow {
    pub learner_id: String,
    pub learner: String,
    pub lab: String,
    /// Counted from 1, as the page shows it.
    pub step: usize,
    pub step_title: String,
    /// RFC 3339, UTC, to the millisecond; empty while the step is open.
    pub passed_at: Option<String>,
    /// From the step's start (the previous step passed, or the lab first opened) to its pass;
    /// empty while open, or when the start is not known.
    pub seconds_on_step: Option<u64>,
    pub hints_opened_before_passing: Option<usize>,
    pub solution_revealed_before_passing: Option<bool>,
    /// Whether the class's instructor passed the step for the learner; empty while open.
    pub passed_by_instructor: Option<bool>,
}

/// One learner on the roster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RosterRow {
    pub learner_id: String,
    pub learner: String,
    pub joined_at: String,
    pub broker_port: u16,
    pub labs_opened: usize,
    pub steps_passed: usize,
}

/// The rows of every step of every lab a learner opened or passed a step of, in the catalog's
/// order of labs (labs no longer in the catalog are left out).
pub fn step_rows(
    catalog: &LabCatalog,
    learner: &Learner,
    history: &BTreeMap<String, LabHistory>,
) -> Vec<StepRow> {
    let mut rows = Vec::new();
    for summary in catalog.summaries() {
        let (Some(lab), Some(done)) = (catalog.get(&summary.id), history.get(&summary.id)) else {
            continue;
        };
        let steps = &lab.content.steps;
        let timings = step_timings(done, steps.len());
        for (index, (step, timing)) in steps.iter().zip(timings).enumerate() {
            rows.push(StepRow {
                learner_id: learner.id.clone(),
                learner: learner.name.clone(),
                lab: summary.id.clone(),
                step: index + 1,
                step_title: step.title.clone(),
                passed_at: timing.passed_at.map(rfc3339),
                seconds_on_step: timing.seconds_on_step,
                hints_opened_before_passing: timing.hints_before,
                solution_revealed_before_passing: timing.solution_before,
                passed_by_instructor: timing.passed_at.map(|_| done.given.contains(&index)),
            });
        }
    }
    rows
}

/// What the export says about one step, from a lab's history.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StepTiming {
    pub passed_at: Option<EpochMillis>,
    pub seconds_on_step: Option<u64>,
    pub hints_before: Option<usize>,
    pub solution_before: Option<bool>,
}

/// Each step's timing, in step order.
pub fn step_timings(history: &LabHistory, steps: usize) -> Vec<StepTiming> {
    let passed: BTreeMap<usize, EpochMillis> = history.passed.iter().copied().collect();
    (0..steps)
        .map(|index| {
            let Some(&at) = passed.get(&index) else {
                return StepTiming::default();
            };
            // Steps pass in order: a step starts when the one before it passed, the first
            // when the lab was opened.
            let start = match index {
                0 => history.opened_at,
                _ => passed.get(&(index - 1)).copied(),
            };
            // A start after the pass is an opening noted after progress kept from before.
            let start = start.filter(|&start| start <= at);
            let known = !history.reveals_untimed;
            StepTiming {
                passed_at: Some(at),
                seconds_on_step: start.map(|start| (at - start) / 1000),
                hints_before: known.then(|| history.hints_at.iter().filter(|&&h| h <= at).count()),
                solution_before: known.then(|| history.solution_at.is_some_and(|s| s <= at)),
            }
        })
        .collect()
}

pub fn roster_row(learner: &Learner, history: &BTreeMap<String, LabHistory>) -> RosterRow {
    RosterRow {
        learner_id: learner.id.clone(),
        learner: learner.name.clone(),
        joined_at: rfc3339(learner.joined_at),
        broker_port: learner.broker_port,
        labs_opened: history.len(),
        steps_passed: history.values().map(|h| h.passed.len()).sum(),
    }
}

/// What an export writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Export {
    /// Every learner's steps, as CSV.
    ResultsCsv,
    /// The same rows, as JSON.
    ResultsJson,
    /// The roster, as CSV.
    RosterCsv,
}

/// `grouplab export`: a class's results from a server's data folder, which may be stopped.
#[derive(Debug, clap::Parser)]
#[command(name = "grouplab export")]
pub struct ExportArgs {
    /// The server's data folder (its `--data-dir`).
    #[arg(long, env = "GROUPLAB_DATA_DIR", default_value = ".grouplab")]
    pub data_dir: std::path::PathBuf,
    /// The labs folder (its `--labs-dir`): the labs' steps and their titles.
    #[arg(long, env = "GROUPLAB_LABS_DIR", default_value = "labs")]
    pub labs_dir: std::path::PathBuf,
    /// The class, when the data folder has served more than one.
    #[arg(long)]
    pub class: Option<String>,
    /// What to write to standard output.
    #[arg(value_enum, default_value = "results-csv")]
    pub what: Export,
}

/// Reads a data folder and writes what `args` asks for; the error says, in words, what is
/// missing.
pub async fn export(args: &ExportArgs) -> anyhow::Result<String> {
    use anyhow::Context;
    let path = args.data_dir.join("progress.sqlite3");
    anyhow::ensure!(
        path.is_file(),
        "{} has no grouplab data (no progress.sqlite3): name the server's data folder with --data-dir",
        args.data_dir.display()
    );
    let classes = crate::class::store::ClassStore::classes_in(&path)?;
    let class = match (&args.class, classes.as_slice()) {
        (Some(class), _) if classes.contains(class) => class.clone(),
        (Some(class), _) => anyhow::bail!(
            "{} has no class `{class}`; it has: {}",
            args.data_dir.display(),
            classes.join(", ")
        ),
        (None, [only]) => only.clone(),
        (None, []) => anyhow::bail!(
            "{} has never served a class (`--class`), so it has no results to export",
            args.data_dir.display()
        ),
        (None, _) => anyhow::bail!(
            "{} has served several classes: name one with --class ({})",
            args.data_dir.display(),
            classes.join(", ")
        ),
    };
    let labs_dir = args.labs_dir.clone();
    let catalog = tokio::task::spawn_blocking(move || LabCatalog::load(&labs_dir))
        .await?
        .context("the labs could not be read")?;
    let store = crate::class::store::ClassStore::open(&path, &class)?;
    let progress = super::progress::ProgressStore::open(&path)?;
    let (mut steps, mut roster) = (Vec::new(), Vec::new());
    for learner in store.learners().await? {
        let history = progress.history(&learner.id).await?;
        steps.extend(step_rows(&catalog, &learner, &history));
        roster.push(roster_row(&learner, &history));
    }
    Ok(match args.what {
        Export::ResultsCsv => to_csv(&steps)?,
        Export::ResultsJson => serde_json::to_string_pretty(&steps)? + "\n",
        Export::RosterCsv => to_csv(&roster)?,
    })
}

/// Rows as CSV, with a header line of the field names.
pub fn to_csv<T: Serialize>(rows: &[T]) -> Result<String, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in rows {
        writer.serialize(row)?;
    }
    let bytes = writer.into_inner().map_err(|err| err.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// An instant as RFC 3339 in UTC, to the millisecond (`2026-12-03T14:05:09.120Z`).
fn rfc3339(ms: EpochMillis) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64).map_or_else(
        || ms.to_string(),
        |at| at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_runs_from_the_last_pass_or_the_opening_and_counts_what_was_opened_before() {
        let history = LabHistory {
            opened_at: Some(10_000),
            passed: vec![(0, 70_000), (1, 190_500)],
            hints_at: vec![60_000, 100_000, 200_000],
            solution_at: Some(150_000),
            reveals_untimed: false,
            given: vec![1],
        };
        let timings = step_timings(&history, 3);
        assert_eq!(
            timings,
            vec![
                StepTiming {
                    passed_at: Some(70_000),
                    seconds_on_step: Some(60),
                    hints_before: Some(1),
                    solution_before: Some(false),
                },
                StepTiming {
                    passed_at: Some(190_500),
                    seconds_on_step: Some(120),
                    hints_before: Some(2),
                    solution_before: Some(true),
                },
                StepTiming::default(),
            ]
        );
    }

    #[test]
    fn progress_kept_from_before_openings_were_noted_has_no_first_duration() {
        let never_noted = LabHistory {
            opened_at: None,
            passed: vec![(0, 5_000)],
            ..LabHistory::default()
        };
        assert_eq!(step_timings(&never_noted, 1)[0].seconds_on_step, None);
        // Opened again after an upgrade: the opening noted is after the pass.
        let noted_later = LabHistory {
            opened_at: Some(9_000),
            ..never_noted
        };
        assert_eq!(step_timings(&noted_later, 1)[0].seconds_on_step, None);
    }

    #[test]
    fn hints_opened_before_they_were_timed_leave_the_before_passing_cells_empty() {
        let history = LabHistory {
            opened_at: Some(0),
            passed: vec![(0, 5_000)],
            reveals_untimed: true,
            ..LabHistory::default()
        };
        let timing = &step_timings(&history, 1)[0];
        assert_eq!(timing.seconds_on_step, Some(5));
        assert_eq!((timing.hints_before, timing.solution_before), (None, None));
    }

    #[test]
    fn instants_are_written_in_utc_to_the_millisecond() {
        assert_eq!(rfc3339(1_764_770_709_120), "2025-12-03T14:05:09.120Z");
    }

    #[test]
    fn rows_become_csv_with_a_header_and_empty_cells_for_what_is_not_known() {
        let row = StepRow {
            learner_id: "l1".into(),
            learner: "Ada, \"the first\"".into(),
            lab: "04-consumer-groups".into(),
            step: 3,
            step_title: "Produce".into(),
            passed_at: None,
            seconds_on_step: None,
            hints_opened_before_passing: None,
            solution_revealed_before_passing: None,
            passed_by_instructor: None,
        };
        let csv = to_csv(&[row]).expect("csv");
        assert_eq!(
            csv,
            "learner_id,learner,lab,step,step_title,passed_at,seconds_on_step,hints_opened_before_passing,solution_revealed_before_passing,passed_by_instructor\n\
             l1,\"Ada, \"\"the first\"\"\",04-consumer-groups,3,Produce,,,,,\n"
        );
    }
}
