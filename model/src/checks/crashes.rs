//! The one check that reads every broker: the same crash compared across Kafka, Redis Streams and
//! RabbitMQ (lab 15).

use std::fmt;

use grouplab_protocol::LabSnapshot;
use serde::Deserialize;

use super::{Rule, Verdict};
use crate::history::History;

/// Any lab of this server: a page instance on this broker crashed holding work, and the
/// work reached another consumer (or, with auto-ack, was lost).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrashCompared {
    pub broker: grouplab_protocol::Backend,
}

impl Rule for CrashCompared {
    fn evaluate(&self, view: &LabSnapshot, _history: &History) -> Verdict {
        let Self { broker } = self;
        let found = view.crashes.iter().find(|c| c.backend == *broker);
        match found {
            Some(crash) if crash.held > 0 => match crash.moved_after_ms {
                Some(ms) => Verdict::pass(format!(
                    "On {}, {} held {} {} as it crashed; another consumer had the work {:.1} s later.",
                    broker.label(),
                    crash.instance,
                    crash.held,
                    crash.held_unit(),
                    ms as f64 / 1000.0
                )),
                None => Verdict::wait(format!(
                    "{} crashed on {} holding {} {}; nobody has its work yet.",
                    crash.instance,
                    broker.label(),
                    crash.held,
                    crash.held_unit()
                )),
            },
            Some(crash) => Verdict::wait(format!(
                "{} crashed on {} holding nothing: crash one while it works.",
                crash.instance,
                broker.label()
            )),
            None => Verdict::wait(format!(
                "No page instance has crashed on {} yet.",
                broker.label()
            )),
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { broker } = self;
        write!(
            f,
            "a consumer crashed holding work on {}, and the work moved on",
            broker.label()
        )
    }
}
