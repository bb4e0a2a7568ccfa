//! Who owned each partition of a group over time, read from the lab's timeline: the data of the
//! page's ownership chart and of its table.
//!
//! A partition is *owned* from the entry that assigned it to a member until the entry that took it
//! away. Its owner may stop *working* before that: a crashed consumer keeps its partitions until
//! the coordinator's session timeout expires, and the chart shows that stretch hatched. A *gap*
//! is the time a partition had no working owner: from the owner's crash (or its departure, or a
//! revocation) to the next assignment. Gaps end where the timeline's "assigned … after N s without
//! a working owner" entries say they do, since both are read from the same entries.

use serde::{Deserialize, Serialize};

use crate::{
    Departure, EpochMillis, GroupProtocol, MemberView, TimelineEntry, TimelineKind, TopicPartition,
};

/// One group's partitions over time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ownership {
    pub group: String,
    /// One lane per partition, sorted by topic and partition.
    pub lanes: Vec<Lane>,
    /// What happened to the group's members and generations, oldest first.
    pub marks: Vec<Mark>,
    /// The earliest time any lane or mark mentions.
    pub start: Option<EpochMillis>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lane {
    pub partition: TopicPartition,
    /// Oldest first; only the last may be open.
    pub spans: Vec<Span>,
    /// Oldest first; only the last may be open.
    pub gaps: Vec<Gap>,
}

/// A member's ownership of one partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub owner: String,
    pub colour: u8,
    pub from: EpochMillis,
    /// `None` while it still owns the partition.
    pub to: Option<EpochMillis>,
    /// When the owner stopped working while still owning the partition (a crash).
    pub stopped_working: Option<EpochMillis>,
}

/// A stretch with no working owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    pub from: EpochMillis,
    /// `None` while no one works on the partition yet.
    pub to: Option<EpochMillis>,
    pub cause: GapCause,
}

impl Gap {
    /// The gap's length, up to `now` while it is open.
    pub fn length_ms(&self, now: EpochMillis) -> u64 {
        self.to.unwrap_or(now).saturating_sub(self.from)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GapCause {
    /// The owner's process was killed or failed.
    Crash,
    /// The owner left the group.
    Left,
    /// The owner's session expired while its process ran.
    Expired,
    /// A rebalance took the partition away to give it to someone else.
    Rebalance,
}

/// Something to mark on the chart's time axis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub at: EpochMillis,
    pub kind: MarkKind,
    /// The member concerned, or the group for a generation.
    pub name: String,
    pub colour: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarkKind {
    Joined,
    /// Killed with SIGKILL, or failed.
    Crashed,
    /// A graceful stop was asked for.
    Stopping,
    /// The coordinator removed a member after its session timeout.
    SessionExpired,
    /// The member left the group (LeaveGroup).
    Left,
    /// The group's new generation.
    Generation(i32),
    /// A consumer-protocol group's new group epoch.
    Epoch(i32),
}

impl MarkKind {
    /// The short label drawn on the axis.
    pub fn label(self) -> String {
        match self {
            Self::Joined => "joined".to_owned(),
            Self::Crashed => "crash".to_owned(),
            Self::Stopping => "stop".to_owned(),
            Self::SessionExpired => "timeout".to_owned(),
            Self::Left => "left".to_owned(),
            Self::Generation(generation) => format!("gen {generation}"),
            Self::Epoch(epoch) => format!("epoch {epoch}"),
        }
    }
}

/// Reads `group`'s ownership from the lab's timeline (oldest first). `partitions` are the
/// partitions the group reads now, so that a lane shows before anyone owns it; `members` are its
/// members now: the timeline keeps only its newest entries, so a member whose assignment is older
/// than all of them owns its partitions from the oldest entry on.
pub fn ownership(
    timeline: &[TimelineEntry],
    group: &str,
    partitions: &[TopicPartition],
    members: &[MemberView],
) -> Ownership {
    let mut chart = Ownership {
        group: group.to_owned(),
        ..Ownership::default()
    };
    for tp in partitions {
        chart.lane(tp);
    }
    let entries: Vec<&TimelineEntry> = timeline.iter().filter(|e| e.group == group).collect();
    chart.start = entries.iter().map(|e| e.at).min();
    if let Some(start) = chart.start {
        for member in members {
            for tp in &member.partitions {
                let assigned_since = entries.iter().any(|e| {
                    matches!(e.kind, TimelineKind::Assigned { .. }) && e.partitions.contains(tp)
                });
                if !assigned_since {
                    chart.lane(tp).assign(&member.name, member.colour, start);
                }
            }
        }
    }
    let mut generation = None;
    for entry in entries {
        let at = entry.at;
        let mut mark = |kind| {
            chart.marks.push(Mark {
                at,
                kind,
                name: entry.name.clone(),
                colour: entry.colour,
            })
        };
        match &entry.kind {
            TimelineKind::Joined => mark(MarkKind::Joined),
            TimelineKind::Crashed | TimelineKind::Failed { .. } => {
                mark(MarkKind::Crashed);
                chart.stopped_working(&entry.name, at);
            }
            TimelineKind::Stopping => mark(MarkKind::Stopping),
            TimelineKind::Group {
                generation: Some(g),
                protocol,
                ..
            } if generation != Some(*g) => {
                generation = Some(*g);
                mark(match protocol {
                    GroupProtocol::Classic => MarkKind::Generation(*g),
                    GroupProtocol::Consumer => MarkKind::Epoch(*g),
                });
            }
            TimelineKind::Departed { departure, left_at } => {
                let (kind, cause) = match departure {
                    Departure::Crash => (MarkKind::SessionExpired, GapCause::Crash),
                    Departure::Expired => (MarkKind::SessionExpired, GapCause::Expired),
                    Departure::Graceful | Departure::Unknown => (MarkKind::Left, GapCause::Left),
                };
                mark(kind);
                // It stopped working when it left, crashed or last sent a heartbeat, which
                // may be a session timeout before its group was seen without it.
                let since = if *left_at == 0 {
                    at
                } else {
                    (*left_at).min(at)
                };
                for tp in &entry.partitions {
                    chart.lane(tp).release(&entry.name, since, at, cause);
                }
            }
            TimelineKind::Revoked => {
                for tp in &entry.partitions {
                    chart
                        .lane(tp)
                        .release(&entry.name, at, at, GapCause::Rebalance);
                }
            }
            TimelineKind::Assigned { .. } => {
                for tp in &entry.partitions {
                    chart.lane(tp).assign(&entry.name, entry.colour, at);
                }
            }
            _ => {}
        }
    }
    chart
}

impl Ownership {
    fn lane(&mut self, tp: &TopicPartition) -> &mut Lane {
        let index = match self.lanes.binary_search_by(|l| l.partition.cmp(tp)) {
            Ok(index) => index,
            Err(index) => {
                self.lanes.insert(
                    index,
                    Lane {
                        partition: tp.clone(),
                        spans: Vec::new(),
                        gaps: Vec::new(),
                    },
                );
                index
            }
        };
        &mut self.lanes[index]
    }

    /// `owner` stopped working at `at`: the partitions it still owns have no working owner.
    fn stopped_working(&mut self, owner: &str, at: EpochMillis) {
        for lane in &mut self.lanes {
            if let Some(span) = lane.open_span_of(owner)
                && span.stopped_working.is_none()
            {
                span.stopped_working = Some(at);
                lane.open_gap(at, GapCause::Crash);
            }
        }
    }
}

impl Lane {
    fn open_span_of(&mut self, owner: &str) -> Option<&mut Span> {
        self.spans
            .last_mut()
            .filter(|s| s.to.is_none() && s.owner == owner)
    }

    fn open_gap(&mut self, at: EpochMillis, cause: GapCause) {
        if self.gaps.last().is_none_or(|g| g.to.is_some()) {
            self.gaps.push(Gap {
                from: at,
                to: None,
                cause,
            });
        }
    }

    /// `owner` no longer owns the partition from `at`, and worked on it until `since`.
    fn release(&mut self, owner: &str, since: EpochMillis, at: EpochMillis, cause: GapCause) {
        if let Some(span) = self.open_span_of(owner) {
            span.to = Some(at);
            if since < at && span.stopped_working.is_none() {
                span.stopped_working = Some(since);
            }
            self.open_gap(since, cause);
        }
    }

    fn assign(&mut self, owner: &str, colour: u8, at: EpochMillis) {
        if let Some(span) = self.spans.last_mut().filter(|s| s.to.is_none()) {
            span.to = Some(at);
        }
        // A partition handed over within one observation had no gap.
        if self
            .gaps
            .last()
            .is_some_and(|g| g.to.is_none() && g.from >= at)
        {
            self.gaps.pop();
        } else if let Some(gap) = self.gaps.last_mut().filter(|g| g.to.is_none()) {
            gap.to = Some(at);
        }
        self.spans.push(Span {
            owner: owner.to_owned(),
            colour,
            from: at,
            to: None,
            stopped_working: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GroupState;

    fn tp(partition: i32) -> TopicPartition {
        TopicPartition::new("user-clicks", partition)
    }

    fn entry(at: EpochMillis, name: &str, kind: TimelineKind, partitions: &[i32]) -> TimelineEntry {
        TimelineEntry {
            at,
            group: "click-processors".to_owned(),
            instance: None,
            member: None,
            name: name.to_owned(),
            colour: name.as_bytes()[0] - b'A',
            kind,
            partitions: partitions.iter().copied().map(tp).collect(),
            epoch: None,
        }
    }

    fn assigned(at: EpochMillis, name: &str, partitions: &[i32]) -> TimelineEntry {
        entry(
            at,
            name,
            TimelineKind::Assigned { unowned_ms: None },
            partitions,
        )
    }

    fn generation(at: EpochMillis, generation: i32) -> TimelineEntry {
        entry(
            at,
            "G",
            TimelineKind::Group {
                state: GroupState::Stable,
                generation: Some(generation),
                assignor: None,
                leader: None,
                protocol: GroupProtocol::Classic,
            },
            &[],
        )
    }

    /// A span as `(owner, from, to, stopped working)`.
    type SpanRow = (String, u64, Option<u64>, Option<u64>);
    /// A gap as `(from, to, cause)`.
    type GapRow = (u64, Option<u64>, GapCause);

    /// Each lane's spans and gaps.
    fn lanes(chart: &Ownership) -> Vec<(Vec<SpanRow>, Vec<GapRow>)> {
        chart
            .lanes
            .iter()
            .map(|lane| {
                (
                    lane.spans
                        .iter()
                        .map(|s| (s.owner.clone(), s.from, s.to, s.stopped_working))
                        .collect(),
                    lane.gaps.iter().map(|g| (g.from, g.to, g.cause)).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn a_crash_leaves_its_partitions_without_a_working_owner_until_they_are_reassigned() {
        let timeline = [
            assigned(1_000, "A", &[0, 1]),
            generation(1_000, 1),
            assigned(2_000, "B", &[1]),
            entry(2_000, "A", TimelineKind::Revoked, &[1]),
            entry(5_000, "B", TimelineKind::Crashed, &[]),
            entry(
                14_000,
                "B",
                TimelineKind::Departed {
                    departure: Departure::Crash,
                    left_at: 5_000,
                },
                &[1],
            ),
            assigned(14_300, "A", &[1]),
        ];
        let chart = ownership(&timeline, "click-processors", &[tp(0), tp(1), tp(2)], &[]);
        let a = || "A".to_owned();
        let b = || "B".to_owned();
        assert_eq!(
            lanes(&chart),
            vec![
                (vec![(a(), 1_000, None, None)], vec![]),
                (
                    vec![
                        (a(), 1_000, Some(2_000), None),
                        (b(), 2_000, Some(14_000), Some(5_000)),
                        (a(), 14_300, None, None),
                    ],
                    vec![(5_000, Some(14_300), GapCause::Crash)]
                ),
                // Nobody has read partition 2 yet: a lane with nothing on it.
                (vec![], vec![]),
            ]
        );
        let marks: Vec<(u64, MarkKind)> = chart.marks.iter().map(|m| (m.at, m.kind)).collect();
        assert_eq!(
            marks,
            vec![
                (1_000, MarkKind::Generation(1)),
                (5_000, MarkKind::Crashed),
                (14_000, MarkKind::SessionExpired)
            ]
        );
        assert_eq!(chart.start, Some(1_000));
    }

    #[test]
    fn a_graceful_stop_leaves_a_gap_from_its_departure_to_the_reassignment() {
        let timeline = [
            assigned(1_000, "A", &[0]),
            assigned(1_000, "B", &[1]),
            entry(3_000, "B", TimelineKind::Stopping, &[]),
            entry(
                3_100,
                "B",
                TimelineKind::Departed {
                    departure: Departure::Graceful,
                    left_at: 3_080,
                },
                &[1],
            ),
            entry(3_150, "A", TimelineKind::Revoked, &[0]),
            assigned(3_400, "A", &[0, 1]),
        ];
        let chart = ownership(&timeline, "click-processors", &[], &[]);
        assert_eq!(
            lanes(&chart)
                .into_iter()
                .map(|(_, gaps)| gaps)
                .collect::<Vec<_>>(),
            vec![
                vec![(3_150, Some(3_400), GapCause::Rebalance)],
                // From its LeaveGroup, a little before its group was seen without it.
                vec![(3_080, Some(3_400), GapCause::Left)],
            ]
        );
        assert_eq!(chart.lanes[1].gaps[0].length_ms(0), 320);
    }

    #[test]
    fn a_gap_stays_open_until_someone_takes_the_partition_and_other_groups_do_not_count() {
        let mut other = assigned(2_500, "C", &[0]);
        other.group = "audit".to_owned();
        let timeline = [
            assigned(1_000, "A", &[0]),
            entry(2_000, "A", TimelineKind::Crashed, &[]),
            // A second report of the same death does not move the gap's start.
            entry(
                2_200,
                "A",
                TimelineKind::Failed {
                    reason: "killed".to_owned(),
                },
                &[],
            ),
            other,
        ];
        let chart = ownership(&timeline, "click-processors", &[], &[]);
        let gap = &chart.lanes[0].gaps[0];
        assert_eq!((gap.from, gap.to), (2_000, None));
        assert_eq!(gap.length_ms(6_000), 4_000);
        assert_eq!(chart.lanes.len(), 1);
        assert_eq!(chart.lanes[0].spans.len(), 1, "{chart:?}");
    }

    #[test]
    fn a_partition_moved_within_one_rebalance_has_no_gap() {
        let timeline = [
            assigned(1_000, "A", &[0, 1]),
            entry(2_000, "A", TimelineKind::Revoked, &[1]),
            assigned(2_000, "B", &[1]),
        ];
        let chart = ownership(&timeline, "click-processors", &[], &[]);
        assert_eq!(chart.lanes[1].gaps, vec![]);
        assert_eq!(chart.lanes[1].spans.len(), 2);
    }

    #[test]
    fn a_member_that_went_silent_stopped_working_at_its_last_heartbeat() {
        // The learner's own consumer, killed: no crash entry, only its expiry a session later.
        let timeline = [
            assigned(1_000, "D", &[0]),
            entry(
                14_000,
                "D",
                TimelineKind::Departed {
                    departure: Departure::Crash,
                    left_at: 4_000,
                },
                &[0],
            ),
            assigned(14_200, "A", &[0]),
        ];
        let chart = ownership(&timeline, "click-processors", &[], &[]);
        let lane = &chart.lanes[0];
        assert_eq!(
            (lane.spans[0].stopped_working, lane.spans[0].to),
            (Some(4_000), Some(14_000))
        );
        assert_eq!(lane.gaps[0].length_ms(0), 10_200);
    }

    #[test]
    fn an_owner_assigned_before_the_oldest_entry_owns_its_partitions_from_it() {
        let member = MemberView {
            member_id: "m-1".to_owned(),
            client_id: "grouplab-A".to_owned(),
            host: None,
            group_instance_id: None,
            origin: crate::MemberOrigin::External,
            name: "A".to_owned(),
            colour: 0,
            partitions: vec![tp(0)],
            joined_at: 0,
            last_heartbeat: None,
            session_timeout_ms: None,
            member_epoch: None,
            target: None,
        };
        let timeline = [
            generation(5_000, 7),
            entry(6_000, "A", TimelineKind::Crashed, &[0]),
        ];
        let chart = ownership(&timeline, "click-processors", &[tp(0)], &[member]);
        let span = &chart.lanes[0].spans[0];
        assert_eq!(
            (span.owner.as_str(), span.from, span.stopped_working),
            ("A", 5_000, Some(6_000))
        );
        assert_eq!(chart.lanes[0].gaps[0].from, 6_000);
    }
}
