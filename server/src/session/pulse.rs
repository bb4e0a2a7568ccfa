//! In a class, what a lab tells the instructor's dashboard: a compact summary of the learner's
//! place in it, sent from the flush tick whenever it differs from the last one sent.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use grouplab_model::stuck::REPEATED_ERRORS_WINDOW_MS;
use grouplab_protocol::{EpochMillis, InstanceState, Notice, NoticeLevel};
use tokio::sync::mpsc;

use super::actor::Session;
use grouplab_backends::clock::now_ms;

/// The error notices a lab keeps for the stuck rule: more than it needs within its window.
const ERRORS_KEPT: usize = 8;

/// One lab of one learner, as the dashboard shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabPulse {
    /// Pages of the learner's open on the lab (the instructor's read-only views not counted).
    pub pages: usize,
    /// When each step passed, in step order.
    pub passed_at: Vec<Option<EpochMillis>>,
    pub hints: usize,
    pub solution: bool,
    pub instances: usize,
    /// The lab's first group with members (else its first group) and its state.
    pub group: Option<(String, String)>,
    pub lag: Option<i64>,
    /// The learner's latest command or their instances' latest report, to the second.
    pub last_activity: Option<EpochMillis>,
    /// Error notices shown within the stuck rule's window, `(when, title)`, oldest first.
    pub errors: Vec<(EpochMillis, String)>,
    /// How many times the learner cleared the lab's progress since the session began: the
    /// board reads the lab's kept history again when it changes.
    pub cleared: u32,
}

/// A lab's pulse, with whose and which lab it is.
#[derive(Clone, Debug)]
pub struct Pulse {
    pub namespace: String,
    pub lab: String,
    pub pulse: LabPulse,
}

/// Where a class's sessions send their pulses.
pub type PulseSender = mpsc::Sender<Pulse>;

impl Session {
    /// The learner did something: a command, or one of their instances reported.
    pub(super) fn note_activity(&mut self) {
        self.activity.last = Some(now_ms());
    }

    /// Keeps an error notice the learner was shown, for the stuck rule.
    pub(super) fn note_error(&mut self, notice: &Notice) {
        if notice.level == NoticeLevel::Error {
            let errors = &mut self.activity.errors;
            errors.push_back((now_ms(), notice.title.clone()));
            while errors.len() > ERRORS_KEPT {
                errors.pop_front();
            }
        }
    }

    /// Sends the lab's pulse to the dashboard when it changed.
    pub(super) fn send_pulse(&mut self) {
        let Some(board) = &self.deps.board else {
            return;
        };
        let now = now_ms();
        let view = &self.view;
        let group = view
            .groups
            .iter()
            .find(|g| !g.members.is_empty())
            .or(view.groups.first())
            .map(|g| (g.name.clone(), g.state.name().to_owned()));
        let lag = (!view.lag.is_empty()).then(|| {
            view.lag
                .iter()
                .flat_map(|l| &l.partitions)
                .map(|p| p.lag.max(0))
                .sum()
        });
        let pulse = LabPulse {
            pages: self
                .events
                .receiver_count()
                .saturating_sub(self.observers.load(Ordering::Relaxed)),
            passed_at: view.progress.steps.iter().map(|s| s.passed_at).collect(),
            hints: view.progress.hints.len(),
            solution: view.progress.solution.is_some(),
            instances: view
                .instances
                .iter()
                .filter(|i| {
                    matches!(
                        i.state,
                        InstanceState::Starting | InstanceState::Joining | InstanceState::Running
                    )
                })
                .count(),
            group,
            lag,
            last_activity: self.activity.last.map(|at| at / 1000 * 1000),
            cleared: self.activity.cleared,
            errors: self
                .activity
                .errors
                .iter()
                .filter(|(at, _)| now.saturating_sub(*at) <= REPEATED_ERRORS_WINDOW_MS)
                .cloned()
                .collect(),
        };
        if self.activity.sent.as_ref() == Some(&pulse) {
            return;
        }
        let sent = board.try_send(Pulse {
            namespace: self.namespace.clone(),
            lab: self.lab.content.id.clone(),
            pulse: pulse.clone(),
        });
        // A full board takes the next tick's.
        if sent.is_ok() {
            self.activity.sent = Some(pulse);
        }
    }
}

/// What the learner did lately, for the dashboard.
#[derive(Debug, Default)]
pub(super) struct Activity {
    pub(super) last: Option<EpochMillis>,
    pub(super) errors: VecDeque<(EpochMillis, String)>,
    /// Clear progress presses since the session began.
    pub(super) cleared: u32,
    /// The pulse last sent.
    pub(super) sent: Option<LabPulse>,
}
