//! Checks on a RabbitMQ lab: a queue dealing messages to competing consumers, fair dispatch with
//! a prefetch limit, what a crash requeues or loses, and refused operations.

use std::fmt;

use grouplab_protocol::LabSnapshot;
use serde::Deserialize;

use super::{Rule, Verdict};
use crate::history::History;

/// RabbitMQ: at least `consumers` consumers of the queue (whoever runs them) were handed messages.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueShared {
    pub queue: String,
    pub consumers: usize,
}

impl Rule for QueueShared {
    fn evaluate(&self, _view: &LabSnapshot, history: &History) -> Verdict {
        let Self { queue, consumers } = self;
        let handed = history.queues.handed.get(queue).map_or(0, |h| h.len());
        if handed >= *consumers {
            Verdict::pass(format!(
                "{handed} consumers of `{queue}` were handed messages, each message to one of them."
            ))
        } else {
            Verdict::wait(format!(
                "{handed} of the {consumers} consumers needed have been handed messages of `{queue}` so far."
            ))
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { queue, consumers } = self;
        write!(
            f,
            "{consumers} consumers of `{queue}` were each handed messages"
        )
    }
}

/// RabbitMQ: a consumer the page does not run (the learner's own) was handed messages of the queue.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueExternalConsumer {
    pub queue: String,
}

impl Rule for QueueExternalConsumer {
    fn evaluate(&self, _view: &LabSnapshot, history: &History) -> Verdict {
        let Self { queue } = self;
        match history.queues.handed_externally.get(queue) {
            Some(tags) if !tags.is_empty() => Verdict::pass(format!(
                "Your consumer {} was handed messages of `{queue}`.",
                tags.iter()
                    .map(|t| format!("`{t}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            _ => Verdict::wait(format!(
                "No consumer of `{queue}` outside the page has been handed messages yet."
            )),
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { queue } = self;
        write!(
            f,
            "a consumer of `{queue}` that you run yourself was handed messages"
        )
    }
}

/// RabbitMQ: two page instances with a prefetch limit and different processing times were
/// handed messages of the queue, the faster at least `ratio` times as many as the slower.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueFairDispatch {
    pub queue: String,
    pub ratio: u64,
}

impl Rule for QueueFairDispatch {
    fn evaluate(&self, _view: &LabSnapshot, history: &History) -> Verdict {
        let Self { queue, ratio } = self;
        match history.queues.best_fair_ratio(queue) {
            Some((best, fast, slow)) if best >= *ratio => Verdict::pass(format!(
                "The faster consumer of `{queue}` was handed {fast} messages, the slower {slow}: each got work only as it finished the last."
            )),
            Some((_, fast, slow)) => Verdict::wait(format!(
                "The faster consumer of `{queue}` has {fast} messages and the slower {slow}; this step needs {ratio} times as many."
            )),
            None => Verdict::wait(format!(
                "No two consumers of `{queue}` with a prefetch limit and different processing times have both been handed messages yet."
            )),
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { queue, ratio } = self;
        write!(
            f,
            "with a prefetch limit, a fast consumer of `{queue}` was handed at least {ratio} times as many messages as a slow one"
        )
    }
}

/// RabbitMQ: a page instance crashed holding unacked messages of the queue, and a message
/// was then delivered again, marked redelivered.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueRequeuedOnCrash {
    pub queue: String,
}

impl Rule for QueueRequeuedOnCrash {
    fn evaluate(&self, _view: &LabSnapshot, history: &History) -> Verdict {
        let Self { queue } = self;
        let queues = &history.queues;
        let held = queues.crashed_holding.get(queue).copied().unwrap_or(0);
        let again = queues
            .redelivered_after_crash
            .get(queue)
            .copied()
            .unwrap_or(0);
        match (held, again) {
            (0, _) => Verdict::wait(format!(
                "No consumer of `{queue}` has crashed holding unacked messages yet."
            )),
            (held, 0) => Verdict::wait(format!(
                "A consumer crashed holding {held} unacked message(s); none has been delivered again yet (is another consumer running?)."
            )),
            (held, again) => Verdict::pass(format!(
                "A consumer crashed holding {held} unacked message(s); {again} message(s) were then delivered again, marked redelivered."
            )),
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { queue } = self;
        write!(
            f,
            "a consumer of `{queue}` crashed holding unacked messages, and they were delivered again, marked redelivered"
        )
    }
}

/// RabbitMQ: a page instance that consumed the queue with auto-ack crashed holding messages
/// it had been sent and had not processed: they are gone.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueLostOnCrash {
    pub queue: String,
}

impl Rule for QueueLostOnCrash {
    fn evaluate(&self, _view: &LabSnapshot, history: &History) -> Verdict {
        let Self { queue } = self;
        match history
            .queues
            .lost_on_crash
            .get(queue)
            .copied()
            .unwrap_or(0)
        {
            0 => Verdict::wait(format!(
                "No auto-ack consumer of `{queue}` has crashed with messages it had not processed yet."
            )),
            lost => Verdict::pass(format!(
                "An auto-ack consumer crashed before processing {lost} message(s) it had been sent: RabbitMQ counted them as done, so they are gone."
            )),
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { queue } = self;
        write!(
            f,
            "an auto-ack consumer of `{queue}` crashed, and the messages it had been sent were lost"
        )
    }
}

/// RabbitMQ: the queue was seen holding at least `at_least` messages (a dead-letter queue
/// receiving rejected ones, say).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueHeld {
    pub queue: String,
    pub at_least: u64,
}

impl Rule for QueueHeld {
    fn evaluate(&self, _view: &LabSnapshot, history: &History) -> Verdict {
        let Self { queue, at_least } = self;
        let most = history.queues.most_held.get(queue).copied().unwrap_or(0);
        if most >= *at_least {
            Verdict::pass(format!("`{queue}` was seen holding {most} message(s)."))
        } else {
            Verdict::wait(format!(
                "`{queue}` has held at most {most} message(s) so far; this step needs {at_least}."
            ))
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { queue, at_least } = self;
        write!(f, "`{queue}` held at least {at_least} message(s)")
    }
}

/// RabbitMQ: messages were published to the queue, and it holds none now, ready or unacked.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueDrained {
    pub queue: String,
}

impl Rule for QueueDrained {
    fn evaluate(&self, view: &LabSnapshot, _history: &History) -> Verdict {
        let Self { queue } = self;
        let Some(found) = view.queue(queue) else {
            return Verdict::wait(format!("There is no queue `{queue}` yet."));
        };
        if found.published == 0 {
            Verdict::wait(format!("Nothing has been published to `{queue}` yet."))
        } else if found.ready + found.unacked > 0 {
            Verdict::wait(format!(
                "`{queue}` still holds {} ready and {} unacked message(s).",
                found.ready, found.unacked
            ))
        } else {
            Verdict::pass(format!(
                "All {} message(s) published to `{queue}` were consumed and acknowledged.",
                found.published
            ))
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { queue } = self;
        write!(
            f,
            "every message published to `{queue}` was consumed and acknowledged"
        )
    }
}

/// RabbitMQ: grouplab's own broker refused a client an operation and closed its channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueOperationRefused;

impl Rule for QueueOperationRefused {
    fn evaluate(&self, _view: &LabSnapshot, history: &History) -> Verdict {
        if history.queues.refused {
            Verdict::pass("RabbitMQ refused a client an operation and closed its channel.")
        } else {
            Verdict::wait("RabbitMQ has not refused any client anything yet.")
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RabbitMQ was seen refusing a client an operation")
    }
}
