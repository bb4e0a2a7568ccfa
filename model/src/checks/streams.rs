//! Checks on a Redis Streams lab: entries shared within a group, pending after a crash, claimed,
//! delivered again, acknowledged, and readers in no group.

use std::fmt;

use grouplab_protocol::LabSnapshot;
use serde::Deserialize;

use super::{Rule, Verdict};
use crate::history::History;

/// Redis: at least `consumers` consumers of the group (whoever runs them) were handed
/// entries, and no entry was handed to two of them by a read.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamShared {
    pub group: String,
    pub consumers: usize,
}

impl Rule for StreamShared {
    fn evaluate(&self, _view: &LabSnapshot, history: &History) -> Verdict {
        let Self { group, consumers } = self;
        let streams = &history.streams;
        let handed = streams.handed.get(group).map_or(0, |h| h.len());
        let twice = streams.handed_twice.get(group).copied().unwrap_or(0);
        if twice > 0 {
            Verdict::wait(format!(
                "{twice} entry(ies) were handed to two consumers of `{group}` by a read: reset the lab and try again."
            ))
        } else if handed >= *consumers {
            Verdict::pass(format!(
                "{handed} consumers of `{group}` were handed entries, each entry to one of them."
            ))
        } else {
            Verdict::wait(format!(
                "{handed} of the {consumers} consumers needed have been handed entries so far."
            ))
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { group, consumers } = self;
        write!(
            f,
            "{consumers} consumers of `{group}` were each handed entries, and no entry went to two of them"
        )
    }
}

/// Redis: a consumer the page does not run (the learner's own) was handed entries.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamExternalConsumer {
    pub group: String,
}

impl Rule for StreamExternalConsumer {
    fn evaluate(&self, _view: &LabSnapshot, history: &History) -> Verdict {
        let Self { group } = self;
        match history.streams.handed_externally.get(group) {
            Some(names) if !names.is_empty() => Verdict::pass(format!(
                "Your consumer {} was handed entries of `{group}`.",
                names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            _ => Verdict::wait(format!(
                "No consumer of `{group}` outside the page has been handed entries yet."
            )),
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { group } = self;
        write!(
            f,
            "a consumer of `{group}` that you run yourself was handed entries"
        )
    }
}

/// Redis: a crashed page instance of the group was seen still holding pending entries.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamLeftPending {
    pub group: String,
}

impl Rule for StreamLeftPending {
    fn evaluate(&self, _view: &LabSnapshot, history: &History) -> Verdict {
        let Self { group } = self;
        match history
            .streams
            .left_pending
            .get(group)
            .copied()
            .unwrap_or(0)
        {
            0 => Verdict::wait(format!(
                "No crashed consumer of `{group}` has been seen holding pending entries yet."
            )),
            held => Verdict::pass(format!(
                "A crashed consumer of `{group}` was seen holding {held} pending entry(ies): nobody else gets them until they are claimed."
            )),
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { group } = self;
        write!(
            f,
            "a crashed consumer of `{group}` still holds pending entries"
        )
    }
}

/// Redis: a consumer of the group claimed entries another consumer had left pending.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamClaimed {
    pub group: String,
}

impl Rule for StreamClaimed {
    fn evaluate(&self, _view: &LabSnapshot, history: &History) -> Verdict {
        let Self { group } = self;
        match history.streams.claims.get(group).map_or(0, |c| c.len()) {
            0 => Verdict::wait(format!(
                "No consumer of `{group}` has claimed an entry yet."
            )),
            claimed => Verdict::pass(format!(
                "{claimed} entry(ies) of `{group}` were claimed from the consumer that held them."
            )),
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { group } = self;
        write!(
            f,
            "a consumer of `{group}` claimed entries another consumer left pending"
        )
    }
}

/// Redis: one entry was delivered to the group's consumers at least `times` times.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamDeliveredAtLeast {
    pub group: String,
    pub times: u64,
}

impl Rule for StreamDeliveredAtLeast {
    fn evaluate(&self, _view: &LabSnapshot, history: &History) -> Verdict {
        let Self { group, times } = self;
        let most = history
            .streams
            .most_deliveries
            .get(group)
            .copied()
            .unwrap_or(0);
        if most >= *times {
            Verdict::pass(format!("An entry was delivered {most} times to `{group}`."))
        } else {
            Verdict::wait(format!(
                "The most any entry was delivered to `{group}` is {most} time(s); this step needs {times}."
            ))
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { group, times } = self;
        write!(
            f,
            "one entry was delivered to `{group}` at least {times} times"
        )
    }
}

/// Redis: the group was handed every entry of the stream (there is at least one) and
/// holds none pending: everything was acknowledged.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamAllAcknowledged {
    pub group: String,
    pub stream: String,
}

impl Rule for StreamAllAcknowledged {
    fn evaluate(&self, view: &LabSnapshot, _history: &History) -> Verdict {
        let Self { group, stream } = self;
        let Some(found) = view.stream(stream) else {
            return Verdict::wait(format!("There is no stream `{stream}` yet."));
        };
        let Some(g) = found.group(group) else {
            return Verdict::wait(format!("`{stream}` has no group `{group}` yet."));
        };
        let caught_up = found.length > 0 && found.last_id.as_deref() == Some(&g.last_delivered_id);
        if caught_up && g.pending == 0 {
            Verdict::pass(format!(
                "`{group}` was handed all {} entries of `{stream}` and acknowledged every one.",
                found.length
            ))
        } else if !caught_up {
            Verdict::wait(format!(
                "`{group}` has not been handed every entry of `{stream}` yet (it holds {}).",
                found.length
            ))
        } else {
            Verdict::wait(format!(
                "`{group}` still holds {} entry(ies) pending, unacknowledged.",
                g.pending
            ))
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { group, stream } = self;
        write!(
            f,
            "`{group}` was handed every entry of `{stream}` and acknowledged them all"
        )
    }
}

/// Redis: a connection read the lab's Redis with plain `XREAD`, in no group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamReaderOutsideGroup;

impl Rule for StreamReaderOutsideGroup {
    fn evaluate(&self, _view: &LabSnapshot, history: &History) -> Verdict {
        if history.streams.loose_readers {
            Verdict::pass("A connection reading with plain XREAD, in no group, was seen.")
        } else {
            Verdict::wait("No connection reading with plain XREAD has been seen yet.")
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a reader in no group (plain XREAD) was seen")
    }
}
