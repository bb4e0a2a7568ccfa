//! The instructor's dashboard: one task that gathers the class's labs' pulses
//! ([`crate::session::Pulse`]) and the progress kept in SQLite, and publishes the whole
//! [`ClassBoard`] whenever it changes (at most every [`PUBLISH_EVERY`]) and every second, so
//! that times on a step and the stuck flag move on the server's clock.
//!
//! What lasts (steps passed and when, hints, the solution, when each lab was opened) is read from
//! the progress store, so the board after a restart is the board before it; what is live (pages
//! open, instances, the group, lag, activity, error notices) comes from the pulses.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use grouplab_model::stuck::{LearnerPace, Stuck, stuck};
use grouplab_protocol::EpochMillis;
use grouplab_protocol::class::{ClassBoard, LabFunnel, LabTile, LearnerTile};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

use super::store::{ClassStore, Learner};
use crate::lab::catalog::LabCatalog;
use crate::lab::export::step_timings;
use crate::lab::progress::{LabHistory, ProgressStore};
use crate::session::{LabPulse, Pulse, PulseSender};
use grouplab_backends::clock::now_ms;

/// The soonest a changed board is published again after the last time.
const PUBLISH_EVERY: Duration = Duration::from_millis(250);
/// How often the board is published even when nothing came: time moves on.
const REFRESH_EVERY: Duration = Duration::from_secs(1);
/// Pulses waiting for the board; a lab whose pulse finds it full sends it at its next tick.
const PULSES_WAITING: usize = 1024;

/// The dashboard's handle: where sessions send their pulses, and the board as it is now.
#[derive(Clone)]
pub struct Board {
    pulses: PulseSender,
    roster: mpsc::Sender<()>,
    board: watch::Receiver<Arc<ClassBoard>>,
}

impl Board {
    /// Starts the board's task, which reads the roster and every learner's kept progress first.
    pub fn start(
        store: ClassStore,
        progress: ProgressStore,
        catalog: Arc<LabCatalog>,
        shutdown: CancellationToken,
        tasks: &TaskTracker,
    ) -> Self {
        let (pulses, pulse_inbox) = mpsc::channel(PULSES_WAITING);
        let (roster, roster_inbox) = mpsc::channel(1);
        let (publish, board) = watch::channel(Arc::new(ClassBoard::default()));
        let gatherer = Gatherer {
            store,
            progress,
            catalog,
            learners: Vec::new(),
            histories: HashMap::new(),
            labs: HashMap::new(),
        };
        tasks.spawn(gatherer.run(pulse_inbox, roster_inbox, publish, shutdown));
        Self {
            pulses,
            roster,
            board,
        }
    }

    /// Where a learner's sessions send their pulses.
    pub fn pulses(&self) -> PulseSender {
        self.pulses.clone()
    }

    /// Tells the board that someone joined or was shut out.
    pub fn roster_changed(&self) {
        // A full channel means a reload is already due.
        let _ = self.roster.try_send(());
    }

    /// The board now, and every board after it.
    pub fn watch(&self) -> watch::Receiver<Arc<ClassBoard>> {
        self.board.clone()
    }

    /// The lab each learner worked in last, by learner id.
    pub fn current_labs(&self) -> HashMap<String, (String, Option<String>)> {
        self.board
            .borrow()
            .learners
            .iter()
            .map(|tile| {
                (
                    tile.id.clone(),
                    (
                        tile.name.clone(),
                        tile.lab.as_ref().map(|lab| lab.id.clone()),
                    ),
                )
            })
            .collect()
    }
}

/// A lab's latest pulse, with when its pages were last seen opening.
#[derive(Clone, Debug, Default)]
struct LabLive {
    pulse: LabPulse,
    /// When a page of the learner's last opened on it (a pulse with pages after one without).
    opened_seen: EpochMillis,
}

struct Gatherer {
    store: ClassStore,
    progress: ProgressStore,
    catalog: Arc<LabCatalog>,
    learners: Vec<Learner>,
    /// Each learner's kept progress by lab, with the passes their live labs report since.
    histories: HashMap<String, BTreeMap<String, LabHistory>>,
    /// Each learner's live labs: `(learner, lab)`.
    labs: HashMap<(String, String), LabLive>,
}

impl Gatherer {
    async fn run(
        mut self,
        mut pulses: mpsc::Receiver<Pulse>,
        mut roster: mpsc::Receiver<()>,
        publish: watch::Sender<Arc<ClassBoard>>,
        shutdown: CancellationToken,
    ) {
        self.reload_roster().await;
        let mut refresh = tokio::time::interval(REFRESH_EVERY);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut changed = true;
        let mut last_published = tokio::time::Instant::now();
        loop {
            let due = last_published + PUBLISH_EVERY;
            tokio::select! {
                () = shutdown.cancelled() => return,
                Some(pulse) = pulses.recv() => {
                    self.take(pulse).await;
                    changed = true;
                }
                Some(()) = roster.recv() => {
                    self.reload_roster().await;
                    changed = true;
                }
                _ = refresh.tick() => changed = true,
                () = tokio::time::sleep_until(due), if changed => {
                    let board = self.board(now_ms());
                    publish.send_if_modified(|old| {
                        let modified = **old != board;
                        if modified {
                            *old = Arc::new(board);
                        }
                        modified
                    });
                    changed = false;
                    last_published = tokio::time::Instant::now();
                }
            }
        }
    }

    async fn reload_roster(&mut self) {
        match self.store.learners().await {
            Ok(learners) => self.learners = learners,
            Err(err) => warn!(%err, "the dashboard could not read the class's learners"),
        }
        let unread: Vec<String> = self
            .learners
            .iter()
            .filter(|l| !self.histories.contains_key(&l.id))
            .map(|l| l.id.clone())
            .collect();
        for learner in unread {
            self.reload_history(&learner).await;
        }
        let ids: std::collections::HashSet<&String> = self.learners.iter().map(|l| &l.id).collect();
        self.histories.retain(|id, _| ids.contains(id));
        self.labs.retain(|(id, _), _| ids.contains(id));
    }

    async fn reload_history(&mut self, learner: &str) {
        match self.progress.history(learner).await {
            Ok(history) => {
                self.histories.insert(learner.to_owned(), history);
            }
            Err(err) => warn!(%err, %learner, "the dashboard could not read a learner's progress"),
        }
    }

    /// Takes a lab's pulse: what it says of progress goes over what was read from the store.
    async fn take(
        &mut self,
        Pulse {
            namespace,
            lab,
            pulse,
        }: Pulse,
    ) {
        let key = (namespace.clone(), lab.clone());
        let previous = self.labs.get(&key).cloned();
        // A lab seen for the first time (its opening is kept before its first pulse), or whose
        // progress was cleared (opened anew), is read from the store again.
        if previous
            .as_ref()
            .is_none_or(|old| old.pulse.cleared != pulse.cleared)
        {
            self.reload_history(&namespace).await;
        }
        let now = now_ms();
        let opened_seen = match &previous {
            Some(old) if old.pulse.pages > 0 || pulse.pages == 0 => old.opened_seen,
            _ if pulse.pages > 0 => now,
            _ => 0,
        };
        let history = self
            .histories
            .entry(namespace)
            .or_default()
            .entry(lab)
            .or_default();
        history.passed = pulse
            .passed_at
            .iter()
            .enumerate()
            .filter_map(|(step, at)| at.map(|at| (step, at)))
            .collect();
        self.labs.insert(key, LabLive { pulse, opened_seen });
    }

    fn board(&self, now: EpochMillis) -> ClassBoard {
        let empty = BTreeMap::new();
        let summaries = self.catalog.summaries();
        let steps_of = |lab: &str| {
            summaries
                .iter()
                .find(|s| s.id == lab)
                .map(|s| (s.title.clone(), s.steps))
        };
        // The class's times on a step, worked out once per step and board.
        let times = std::cell::RefCell::new(HashMap::<(String, usize), Vec<u64>>::new());
        let learners = self
            .learners
            .iter()
            .map(|learner| {
                let history = self.histories.get(&learner.id).unwrap_or(&empty);
                let live: Vec<(&String, &LabLive)> = self
                    .labs
                    .iter()
                    .filter(|((id, _), _)| id == &learner.id)
                    .map(|((_, lab), live)| (lab, live))
                    .collect();
                tile(learner, history, &live, now, &steps_of, |lab, step| {
                    times
                        .borrow_mut()
                        .entry((lab.to_owned(), step))
                        .or_insert_with(|| self.step_times(lab, step))
                        .clone()
                })
            })
            .collect();
        let funnel = summaries
            .iter()
            .filter_map(|summary| {
                let opened: Vec<&LabHistory> = self
                    .learners
                    .iter()
                    .filter_map(|l| self.histories.get(&l.id)?.get(&summary.id))
                    .collect();
                (!opened.is_empty()).then(|| LabFunnel {
                    lab: summary.id.clone(),
                    title: summary.title.clone(),
                    opened: opened.len(),
                    passed: (0..summary.steps)
                        .map(|step| {
                            opened
                                .iter()
                                .filter(|h| h.passed.iter().any(|(s, _)| *s == step))
                                .count()
                        })
                        .collect(),
                })
            })
            .collect();
        ClassBoard {
            now,
            learners,
            funnel,
        }
    }

    /// How long each learner who passed `step` of `lab` took on it, in milliseconds.
    fn step_times(&self, lab: &str, step: usize) -> Vec<u64> {
        self.learners
            .iter()
            .filter_map(|l| self.histories.get(&l.id)?.get(lab))
            .filter_map(|history| {
                step_timings(history, step + 1)
                    .get(step)?
                    .seconds_on_step
                    .map(|s| s * 1000)
            })
            .collect()
    }
}

/// One learner's tile, from their kept progress and their live labs.
fn tile(
    learner: &Learner,
    history: &BTreeMap<String, LabHistory>,
    live: &[(&String, &LabLive)],
    now: EpochMillis,
    steps_of: &dyn Fn(&str) -> Option<(String, usize)>,
    step_times: impl Fn(&str, usize) -> Vec<u64>,
) -> LearnerTile {
    let online = live.iter().any(|(_, l)| l.pulse.pages > 0);
    let last_activity = live.iter().filter_map(|(_, l)| l.pulse.last_activity).max();
    // The lab worked in last: the latest of its activity, its page opening, its opening and its passes.
    let touched = |lab: &str| {
        let kept = history.get(lab).map_or(0, |h| {
            h.passed
                .iter()
                .map(|(_, at)| *at)
                .chain(h.opened_at)
                .max()
                .unwrap_or(0)
        });
        let seen = live
            .iter()
            .find(|(id, _)| id.as_str() == lab)
            .map_or(0, |(_, l)| {
                l.pulse.last_activity.unwrap_or(0).max(l.opened_seen)
            });
        kept.max(seen)
    };
    let current = history
        .keys()
        .chain(live.iter().map(|(lab, _)| *lab))
        .filter(|lab| steps_of(lab).is_some())
        .max_by_key(|lab| (touched(lab), (*lab).clone()));
    let lab = current.and_then(|lab| {
        let (title, steps) = steps_of(lab)?;
        let kept = history.get(lab).cloned().unwrap_or_default();
        let pulse = live
            .iter()
            .find(|(id, _)| *id == lab)
            .map(|(_, l)| &l.pulse);
        let passed = kept.passed.len().min(steps);
        let open = (0..steps).find(|step| !kept.passed.iter().any(|(s, _)| s == step));
        let on_step_since = open.and_then(|step| match step {
            0 => kept.opened_at,
            _ => kept
                .passed
                .iter()
                .find(|(s, _)| *s == step - 1)
                .map(|(_, at)| *at),
        });
        Some((
            open,
            LabTile {
                id: lab.clone(),
                title,
                steps,
                passed,
                on_step_since,
                hints: pulse.map_or(kept.hints_at.len(), |p| p.hints),
                solution: pulse.map_or(kept.solution_at.is_some(), |p| p.solution),
                instances: pulse.map_or(0, |p| p.instances),
                group: pulse.and_then(|p| p.group.clone()),
                lag: pulse.and_then(|p| p.lag),
            },
        ))
    });
    // Only a learner with a page open can be stuck: one who left is not waiting for help.
    let stuck_now = lab.as_ref().filter(|_| online).and_then(|(open, tile)| {
        let pace = LearnerPace {
            on_step_since: tile.on_step_since,
            last_activity,
            errors: {
                let mut errors: Vec<(EpochMillis, String)> = live
                    .iter()
                    .flat_map(|(_, l)| l.pulse.errors.iter().cloned())
                    .collect();
                errors.sort();
                errors
            },
        };
        let times = open.map_or_else(Vec::new, |step| step_times(&tile.id, step));
        stuck(&pace, &times, now).map(|why| say_stuck(&why))
    });
    LearnerTile {
        id: learner.id.clone(),
        name: learner.name.clone(),
        online,
        lab: lab.map(|(_, tile)| tile),
        last_activity,
        stuck: stuck_now,
    }
}

/// Why a learner is flagged, in the instructor's words.
pub fn say_stuck(why: &Stuck) -> String {
    let minutes = |ms: u64| format!("{} min", ms.div_ceil(60_000));
    match why {
        Stuck::SlowOnStep {
            on_step_ms,
            class_median_ms: Some(median),
        } => format!(
            "{} on this step; the class's median is {}",
            minutes(*on_step_ms),
            minutes(*median)
        ),
        Stuck::SlowOnStep { on_step_ms, .. } => format!("{} on this step", minutes(*on_step_ms)),
        Stuck::Idle { idle_ms } => format!("nothing done for {}", minutes(*idle_ms)),
        Stuck::SameError { title, times } => {
            format!("the same error {times} times in a minute: “{title}”")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    fn learner() -> Learner {
        Learner {
            id: "l1".into(),
            name: "Ada".into(),
            rejoin_code: String::new(),
            broker_port: 0,
            secret: String::new(),
            joined_at: 0,
        }
    }

    fn steps_of(lab: &str) -> Option<(String, usize)> {
        match lab {
            "04" => Some(("Groups".into(), 3)),
            "05" => Some(("Lag".into(), 2)),
            _ => None,
        }
    }

    #[test]
    fn a_tile_shows_the_lab_worked_in_last_with_its_open_step_and_live_state() {
        let history = BTreeMap::from([
            (
                "04".to_owned(),
                LabHistory {
                    opened_at: Some(10 * MIN),
                    passed: vec![(0, 12 * MIN)],
                    hints_at: vec![11 * MIN],
                    ..LabHistory::default()
                },
            ),
            (
                "05".to_owned(),
                LabHistory {
                    opened_at: Some(MIN),
                    ..LabHistory::default()
                },
            ),
            // A lab no longer in the catalog is never the current one.
            (
                "gone".to_owned(),
                LabHistory {
                    opened_at: Some(99 * MIN),
                    ..LabHistory::default()
                },
            ),
        ]);
        let lab = "04".to_owned();
        let live = LabLive {
            pulse: LabPulse {
                pages: 1,
                hints: 2,
                instances: 2,
                group: Some(("g".into(), "Stable".into())),
                lag: Some(7),
                last_activity: Some(13 * MIN),
                ..LabPulse::default()
            },
            opened_seen: 10 * MIN,
        };
        let tile = tile(
            &learner(),
            &history,
            &[(&lab, &live)],
            14 * MIN,
            &steps_of,
            |_, _| Vec::new(),
        );
        assert!(tile.online);
        assert_eq!(tile.last_activity, Some(13 * MIN));
        assert_eq!(tile.stuck, None);
        assert_eq!(
            tile.lab,
            Some(LabTile {
                id: "04".into(),
                title: "Groups".into(),
                steps: 3,
                passed: 1,
                on_step_since: Some(12 * MIN),
                hints: 2,
                solution: false,
                instances: 2,
                group: Some(("g".into(), "Stable".into())),
                lag: Some(7),
            })
        );
    }

    #[test]
    fn only_a_learner_with_a_page_open_is_flagged() {
        let history = BTreeMap::from([(
            "04".to_owned(),
            LabHistory {
                opened_at: Some(0),
                ..LabHistory::default()
            },
        )]);
        let lab = "04".to_owned();
        let errors = vec![(20 * MIN, "Topic `x` was not created".to_owned()); 3];
        let open = LabLive {
            pulse: LabPulse {
                pages: 1,
                last_activity: Some(20 * MIN),
                errors,
                ..LabPulse::default()
            },
            opened_seen: 0,
        };
        let now = 20 * MIN + 1000;
        // Twenty minutes on the first step: slow comes first.
        let flagged = tile(
            &learner(),
            &history,
            &[(&lab, &open)],
            now,
            &steps_of,
            |_, _| Vec::new(),
        );
        assert_eq!(flagged.stuck.as_deref(), Some("21 min on this step"));
        let closed = LabLive {
            pulse: LabPulse {
                pages: 0,
                ..open.pulse.clone()
            },
            ..open
        };
        let gone = tile(
            &learner(),
            &history,
            &[(&lab, &closed)],
            now,
            &steps_of,
            |_, _| Vec::new(),
        );
        assert_eq!(gone.stuck, None);
        assert!(!gone.online);
    }

    #[test]
    fn the_reasons_read_as_sentences() {
        for (why, said) in [
            (
                Stuck::SlowOnStep {
                    on_step_ms: 11 * MIN,
                    class_median_ms: Some(4 * MIN),
                },
                "11 min on this step; the class's median is 4 min",
            ),
            (Stuck::Idle { idle_ms: 6 * MIN }, "nothing done for 6 min"),
            (
                Stuck::SameError {
                    title: "No topic".into(),
                    times: 3,
                },
                "the same error 3 times in a minute: “No topic”",
            ),
        ] {
            assert_eq!(say_stuck(&why), said);
        }
    }
}
