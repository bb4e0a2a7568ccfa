//! What the server tells the browser.

use serde::{Deserialize, Serialize};

use crate::{
    BrokerView, GroupView, InstanceView, LabSnapshot, LedgerView, MessageView, ProgressView,
    TimelineEntry, TopicView,
};

/// A change to a lab's live view, or the whole view.
///
/// Each variant but [`ServerEvent::Notice`] is applied to a [`LabSnapshot`] by [`LabSnapshot::apply`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerEvent {
    /// The whole view: sent first on every connection, and again to a page that fell behind.
    Snapshot(Box<LabSnapshot>),
    /// The broker's address or health changed.
    Broker(BrokerView),
    /// A topic's partitions, offsets or lag changed; replaces the topic of that name.
    Topic(TopicView),
    /// A topic is gone (the lab was reset).
    TopicRemoved { topic: String },
    /// A group's state, generation or members changed; replaces the group of that name.
    Group(GroupView),
    /// A group is no longer shown (the lab was reset).
    GroupRemoved { group: String },
    /// An instance changed state or partitions; replaces the instance with that id.
    Instance(Box<InstanceView>),
    /// An instance card is gone: old stopped and crashed instances are dropped to keep the page short.
    InstanceRemoved { instance: crate::InstanceId },
    /// Something happened to a group: an assignment, a revocation, a crash, a stop.
    Timeline(TimelineEntry),
    /// Messages consumed since the last batch: a sample to show, and exact counts.
    Messages(MessageBatch),
    /// Keys landed in partitions (after a Produce); merged into the view's key list.
    Keys {
        placements: Vec<crate::KeyPlacement>,
    },
    /// The lab's files changed: `reloaded` when a new version now serves (a page shows it by
    /// loading itself again), `problem` when the latest edit cannot be read.
    LabChanged {
        reloaded: bool,
        problem: Option<String>,
    },
    /// A group's lag on a topic was measured again (after each poll of the broker).
    Lag(crate::LagView),
    /// A group's ledger of one topic changed; replaces the ledger of that group and topic.
    Ledger(LedgerView),
    /// A Redis stream, its groups or their consumers changed; replaces the stream of that name.
    Stream(crate::StreamView),
    /// A Redis stream is gone (the lab was reset).
    StreamRemoved { stream: String },
    /// A RabbitMQ queue or its consumers changed; replaces the queue of that name.
    Queue(crate::RabbitQueueView),
    /// A RabbitMQ queue is gone (the lab was reset).
    QueueRemoved { queue: String },
    /// A stream group's or a queue's consumers hold other counts than at the last sample.
    Held(crate::held::HeldSample),
    /// The latest crash on each broker changed (in this lab or another).
    Crashes(Vec<crate::CrashReport>),
    /// The learner's progress changed: a checkpoint passed, a hint opened.
    Progress(ProgressView),
    /// Something the learner should read: an error with what to do, or a confirmation.
    Notice(Notice),
    /// The instructor's latest message to the learner, kept in the view (protocol version 10).
    Banner(crate::class::Banner),
}

/// Consumed messages, batched so that a fast stream costs one event per batch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageBatch {
    /// The messages to show: all of them at low rates, a sample at high rates.
    pub sample: Vec<MessageView>,
    /// How many messages each instance received in this batch, sampled or not.
    pub received: Vec<(crate::InstanceId, u64)>,
    /// How many messages each instance finished processing in this batch.
    #[serde(default)]
    pub processed: Vec<(crate::InstanceId, u64)>,
    /// When the consumers' callbacks reported the oldest and the newest message counted in this
    /// batch; the latency benchmark compares them with the time the page applies the batch.
    #[serde(default)]
    pub reported_us: Option<ReportedSpan>,
}

/// The first and the last of some consumer reports' time stamps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedSpan {
    pub first: crate::EpochMicros,
    pub last: crate::EpochMicros,
}

impl ReportedSpan {
    /// Widens the span to include `at` (or starts one).
    pub fn include(span: &mut Option<Self>, at: crate::EpochMicros) {
        match span {
            Some(span) => {
                span.first = span.first.min(at);
                span.last = span.last.max(at);
            }
            None => {
                *span = Some(Self {
                    first: at,
                    last: at,
                })
            }
        }
    }
}

/// A message for the learner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub level: NoticeLevel,
    /// What happened, in one line.
    pub title: String,
    /// What it means and what to do.
    pub detail: String,
}

impl Notice {
    pub fn error(title: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            level: NoticeLevel::Error,
            title: title.into(),
            detail: detail.into(),
        }
    }

    pub fn warning(title: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            level: NoticeLevel::Warning,
            title: title.into(),
            detail: detail.into(),
        }
    }

    pub fn info(title: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            level: NoticeLevel::Info,
            title: title.into(),
            detail: detail.into(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeLevel {
    /// A confirmation; it goes away after a few seconds.
    Info,
    /// Something went wrong that is also shown where it happened (an instance's card), so the
    /// notice goes away after a while instead of covering the page until dismissed.
    Warning,
    /// Something went wrong that nothing else shows; it stays until dismissed.
    Error,
}

#[cfg(test)]
mod tests {
    use super::ReportedSpan;

    #[test]
    fn a_reported_span_widens_to_every_time_included() {
        let mut span = None;
        ReportedSpan::include(&mut span, 50);
        assert_eq!(
            span,
            Some(ReportedSpan {
                first: 50,
                last: 50
            })
        );
        // Reports may reach the server out of order (each instance has its own pipe).
        for at in [70, 20, 60] {
            ReportedSpan::include(&mut span, at);
        }
        assert_eq!(
            span,
            Some(ReportedSpan {
                first: 20,
                last: 70
            })
        );
    }
}
