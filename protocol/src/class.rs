//! The instructor's dashboard of a class: what the server pushes over `/class/ws`
//! ([`ClassEvent`]) and what the instructor sends back ([`ClassCommand`]).

use serde::{Deserialize, Serialize};

use crate::EpochMillis;

/// The whole dashboard: sent on every change (at most a few times a second) and every second,
/// so that times on a step count on the server's clock, not the instructor's browser's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassBoard {
    /// The server's clock when the board was made.
    pub now: EpochMillis,
    /// Every learner in the class, in the order they joined.
    pub learners: Vec<LearnerTile>,
    /// Each lab that any learner opened, in course order: how far the class got.
    pub funnel: Vec<LabFunnel>,
}

/// One learner's tile.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LearnerTile {
    pub id: String,
    pub name: String,
    /// Whether one of their lab pages is open now.
    pub online: bool,
    /// The lab they worked in last.
    pub lab: Option<LabTile>,
    /// Their latest command or their instances' latest report, since the server started.
    pub last_activity: Option<EpochMillis>,
    /// Why they may need help, in a sentence, when the stuck rule says so.
    pub stuck: Option<String>,
}

/// Where a learner is in the lab they worked in last.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabTile {
    pub id: String,
    pub title: String,
    pub steps: usize,
    pub passed: usize,
    /// Since when the open step is open (the step before it passed, or the lab opened); `None`
    /// once every step passed, or when not known.
    pub on_step_since: Option<EpochMillis>,
    pub hints: usize,
    pub solution: bool,
    /// Page instances running now (their own consumers show in the group).
    pub instances: usize,
    /// The lab's first group that has members or committed, with its state (`Stable`, …).
    pub group: Option<(String, String)>,
    /// The total lag of the lab's groups at the last poll.
    pub lag: Option<i64>,
}

/// How many learners passed each step of a lab.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabFunnel {
    pub lab: String,
    pub title: String,
    /// Learners who opened it.
    pub opened: usize,
    /// Learners who passed each step, in step order.
    pub passed: Vec<usize>,
}

/// What the instructor asks of one learner's lab, or of every learner's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum InstructorAction {
    /// Open the next hint of their current lab.
    Hint,
    /// Pass the open step of their current lab, recorded as given by the instructor.
    PassStep,
    /// Reset their current lab (instances stopped, topics and groups deleted).
    Reset,
    /// A banner on their lab pages, until they dismiss it.
    Message { text: String },
    /// SIGKILL one running page instance of their current lab.
    CrashOne,
    /// Take their own embedded broker down for `seconds`, then bring it back.
    BrokerDown { seconds: u32 },
    /// Produce `count` messages to their current lab's topic.
    Produce { count: u32 },
}

impl InstructorAction {
    /// The action as the learner's timeline and the dashboard say it ("crashed one consumer").
    pub fn describe(&self) -> String {
        match self {
            Self::Hint => "opened the next hint".to_owned(),
            Self::PassStep => "passed the open step".to_owned(),
            Self::Reset => "reset the lab".to_owned(),
            Self::Message { .. } => "sent a message".to_owned(),
            Self::CrashOne => "crashed one consumer (SIGKILL)".to_owned(),
            Self::BrokerDown { seconds } => format!("took the broker down for {seconds} s"),
            Self::Produce { count } => format!("produced {count} messages"),
        }
    }
}

/// The instructor's dashboard → server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassCommand {
    /// An action on one learner (by id), or on every learner with `learner: None`.
    Act {
        learner: Option<String>,
        #[serde(flatten)]
        action: InstructorAction,
    },
}

/// Server → the instructor's dashboard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassEvent {
    Board(ClassBoard),
    /// What an action did, for whom, and for whom it could not apply, with why.
    Acted(ActionReport),
}

/// The outcome of one [`ClassCommand::Act`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionReport {
    pub action: String,
    pub at: EpochMillis,
    /// `(learner's name, what was done)`.
    pub done: Vec<(String, String)>,
    /// `(learner's name, why not)`.
    pub refused: Vec<(String, String)>,
}

/// A message from the instructor, shown on a learner's lab pages until dismissed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Banner {
    pub text: String,
    pub at: EpochMillis,
}
