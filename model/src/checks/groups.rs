//! Checks on a group's membership as the broker tells it: its working members and who owns
//! what, how partitions moved when a member crashed or stopped, which partitions a rebalance
//! revoked (eager against cooperative), static members, and the poll loop's deadline.

use std::collections::BTreeMap;
use std::fmt;

use grouplab_protocol::{Departure, GroupProtocol, InstanceState, LabSnapshot, MemberView};
use serde::Deserialize;

use super::{Rule, Verdict};
use crate::history::History;
use crate::membership::Handover;

/// The group has exactly this many working members (whoever runs them), each owning at least `each_owns_at_least` partitions.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupMembers {
    pub group: String,
    pub members: usize,
    #[serde(default)]
    pub each_owns_at_least: usize,
}

impl Rule for GroupMembers {
    fn evaluate(&self, view: &LabSnapshot, _history: &History) -> Verdict {
        let Self {
            group,
            members,
            each_owns_at_least,
        } = self;
        let working = working_members(view, group);
        let short: Vec<&str> = working
            .iter()
            .filter(|m| m.partitions.len() < *each_owns_at_least)
            .map(|m| m.name.as_str())
            .collect();
        if working.len() != *members {
            Verdict::wait(format!(
                "`{group}` has {} working member(s){}; this step needs {members}.",
                working.len(),
                names(&working)
            ))
        } else if !short.is_empty() {
            Verdict::wait(format!(
                "{} own(s) fewer than {each_owns_at_least} partition(s) so far.",
                short.join(", ")
            ))
        } else {
            Verdict::pass(format!(
                "`{group}` has {members} working member(s){}.",
                names(&working)
            ))
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self {
                group,
                members,
                each_owns_at_least: 0,
            } => write!(f, "group `{group}` has {members} working members"),
            Self {
                group,
                members,
                each_owns_at_least,
            } => write!(
                f,
                "group `{group}` has {members} working members, each owning at least {each_owns_at_least} partition(s)"
            ),
        }
    }
}

/// The working members of the group own every partition of the topic, and no partition twice.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignmentComplete {
    pub group: String,
    pub topic: String,
}

impl Rule for AssignmentComplete {
    fn evaluate(&self, view: &LabSnapshot, _history: &History) -> Verdict {
        let Self { group, topic } = self;
        assignment_complete(view, group, topic)
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { group, topic } = self;
        write!(
            f,
            "every partition of `{topic}` is owned by exactly one working member of `{group}`"
        )
    }
}

/// Every partition of the topic has a working owner in the group, and at least one working
/// member owns none: more members than partitions.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdleMember {
    pub group: String,
    pub topic: String,
}

impl Rule for IdleMember {
    fn evaluate(&self, view: &LabSnapshot, _history: &History) -> Verdict {
        let Self { group, topic } = self;
        idle_member(view, group, topic)
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { group, topic } = self;
        write!(
            f,
            "every partition of `{topic}` is owned in `{group}`, and a working member owns none"
        )
    }
}

/// A page instance of the group was crashed (from the page, or by its own "crash after"),
/// or a member of it was removed after its session timed out.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberCrashed {
    pub group: String,
}

impl Rule for MemberCrashed {
    fn evaluate(&self, _view: &LabSnapshot, history: &History) -> Verdict {
        let Self { group } = self;
        let instances = history.crashed.get(group).copied().unwrap_or(0);
        let expired = history
            .handovers
            .iter()
            .filter(|h| h.group == *group && h.departure == Departure::Crash)
            .count();
        if instances > 0 || expired > 0 {
            Verdict::pass(format!(
                "{} member(s) of `{group}` crashed.",
                (instances as usize).max(expired)
            ))
        } else {
            Verdict::wait(format!("No member of `{group}` has crashed yet."))
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { group } = self;
        write!(f, "a member of `{group}` crashed")
    }
}

/// A member of the group was crashed while owning partitions, and other members took all of them over.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrashReassigned {
    pub group: String,
}

impl Rule for CrashReassigned {
    fn evaluate(&self, _view: &LabSnapshot, history: &History) -> Verdict {
        let Self { group } = self;
        handed_over(history, group, Departure::Crash)
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { group } = self;
        write!(
            f,
            "a crashed member's partitions were taken over by the rest of `{group}`"
        )
    }
}

/// A member of the group was stopped gracefully while owning partitions, and other members took all of them over.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopReassigned {
    pub group: String,
}

impl Rule for StopReassigned {
    fn evaluate(&self, _view: &LabSnapshot, history: &History) -> Verdict {
        let Self { group } = self;
        handed_over(history, group, Departure::Graceful)
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { group } = self;
        write!(
            f,
            "a stopped member's partitions were taken over by the rest of `{group}`"
        )
    }
}

/// A graceful stop's partitions were taken over sooner than a crash's were.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopFasterThanCrash {
    pub group: String,
}

impl Rule for StopFasterThanCrash {
    fn evaluate(&self, _view: &LabSnapshot, history: &History) -> Verdict {
        let Self { group } = self;
        let fastest = |departure| {
            history
                .handovers
                .iter()
                .filter(|h| h.group == *group && h.departure == departure)
                .map(Handover::gap_ms)
                .min()
        };
        match (fastest(Departure::Graceful), fastest(Departure::Crash)) {
            (Some(stop), Some(crash)) if stop < crash => Verdict::pass(format!(
                "After a stop the partitions moved in {}; after a crash, in {}.",
                seconds(stop),
                seconds(crash)
            )),
            (Some(stop), Some(crash)) => Verdict::wait(format!(
                "After a stop the partitions moved in {}, not sooner than after a crash ({}).",
                seconds(stop),
                seconds(crash)
            )),
            (None, Some(_)) => Verdict::wait("No graceful stop has been handed over yet."),
            (_, None) => Verdict::wait("No crash has been handed over yet."),
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { group } = self;
        write!(
            f,
            "in `{group}`, partitions moved sooner after a graceful stop than after a crash"
        )
    }
}

/// In a rebalance, a running page instance of the group gave up every partition it held
/// (the eager protocol of the range and round-robin assignors).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EagerRevokedAll {
    pub group: String,
}

impl Rule for EagerRevokedAll {
    fn evaluate(&self, _view: &LabSnapshot, history: &History) -> Verdict {
        let Self { group } = self;
        let counts = history.revocations.get(group).copied().unwrap_or_default();
        if counts.everything > 0 {
            Verdict::pass(format!(
                "Running members of `{group}` gave up everything they held {} time(s).",
                counts.everything
            ))
        } else {
            Verdict::wait(format!(
                "No running member of `{group}` has had to give up its partitions yet: add a member."
            ))
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { group } = self;
        write!(
            f,
            "in `{group}`, a rebalance made a running member give up every partition"
        )
    }
}

/// In rebalances, running page instances of the group gave up only the partitions that
/// moved, never everything (cooperative-sticky).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CooperativeRevokedOnlyMoved {
    pub group: String,
}

impl Rule for CooperativeRevokedOnlyMoved {
    fn evaluate(&self, _view: &LabSnapshot, history: &History) -> Verdict {
        let Self { group } = self;
        let counts = history.revocations.get(group).copied().unwrap_or_default();
        match (counts.some, counts.everything) {
            (0, _) => Verdict::wait(format!(
                "No running member of `{group}` has given up a partition yet: add a member."
            )),
            (some, 0) => Verdict::pass(format!(
                "Running members of `{group}` gave up only what moved, {some} time(s), and kept the rest."
            )),
            (_, everything) => Verdict::wait(format!(
                "Running members of `{group}` gave up everything {everything} time(s): is every member using the cooperative-sticky assignor? Reset the lab to try again."
            )),
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { group } = self;
        write!(
            f,
            "in `{group}`, rebalances took from running members only the partitions that moved"
        )
    }
}

/// The group, as the broker sees it, has members and speaks this rebalance protocol.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupProtocolIs {
    pub group: String,
    pub protocol: GroupProtocol,
}

impl Rule for GroupProtocolIs {
    fn evaluate(&self, view: &LabSnapshot, _history: &History) -> Verdict {
        let Self { group, protocol } = self;
        let Some(seen) = view.group(group).filter(|g| !g.members.is_empty()) else {
            return Verdict::wait(format!("`{group}` has no members yet."));
        };
        if seen.protocol != *protocol {
            return Verdict::wait(format!(
                "`{group}` uses the {} protocol: its members must set group.protocol={}. Reset the lab to start the group again.",
                seen.protocol.name(),
                protocol.name()
            ));
        }
        let epochs = match (seen.protocol, seen.generation, seen.assignment_epoch) {
            (GroupProtocol::Consumer, Some(group_epoch), Some(assignment)) => {
                format!(": group epoch {group_epoch}, assignment epoch {assignment}")
            }
            (GroupProtocol::Classic, Some(generation), _) => format!(": generation {generation}"),
            _ => String::new(),
        };
        Verdict::pass(format!(
            "`{group}` uses the {} protocol, with {} member(s){epochs}.",
            seen.protocol.name(),
            seen.members.len()
        ))
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { group, protocol } = self;
        write!(f, "`{group}` uses the {} group protocol", protocol.name())
    }
}

/// Each group has been through a rebalance among running page instances while it had `members`
/// of them (a scale-out from 2 to 3 counts under 3), and the verdict lays them side by side: how
/// many partitions stopped, for how long at most, and how many members gave up everything.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RebalancesCompared {
    pub groups: Vec<String>,
    pub members: usize,
}

impl Rule for RebalancesCompared {
    fn evaluate(&self, _view: &LabSnapshot, history: &History) -> Verdict {
        let mut lines = Vec::new();
        let mut missing = Vec::new();
        for group in &self.groups {
            match history.pauses.get(&(group.clone(), self.members)) {
                Some(pauses) => {
                    lines.push(format!(
                        "`{group}`: {} partition handover(s), the longest {} without an owner, {} member(s) gave up everything",
                        pauses.partitions,
                        short_time(pauses.longest_ms),
                        pauses.stopped
                    ));
                }
                None => missing.push(format!("`{group}`")),
            }
        }
        if missing.is_empty() {
            Verdict::pass(format!("{}.", lines.join("; ")))
        } else {
            Verdict::wait(format!(
                "No rebalance among {} running members in {} yet: add a member to it.",
                self.members,
                missing.join(", ")
            ))
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let groups: Vec<String> = self.groups.iter().map(|g| format!("`{g}`")).collect();
        write!(
            f,
            "a rebalance among {} members of each of {}, and their pauses compared",
            self.members,
            groups.join(", ")
        )
    }
}

/// A static member (`group.instance.id`) left and came back to the same partitions without
/// the group rebalancing.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticMemberReturned {
    pub group: String,
}

impl Rule for StaticMemberReturned {
    fn evaluate(&self, _view: &LabSnapshot, history: &History) -> Verdict {
        let Self { group } = self;
        match history.static_returns.get(group) {
            Some(ids) => Verdict::pass(format!(
                "Static member(s) {} came back to their partitions with no rebalance.",
                ids.join(", ")
            )),
            None => Verdict::wait(format!(
                "No static member of `{group}` has come back to its partitions yet."
            )),
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { group } = self;
        write!(
            f,
            "a static member of `{group}` came back to its partitions without a rebalance"
        )
    }
}

/// A page instance's client left the group because processing kept it from polling within
/// `max.poll.interval.ms`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaxPollExceeded {
    pub group: String,
}

impl Rule for MaxPollExceeded {
    fn evaluate(&self, _view: &LabSnapshot, history: &History) -> Verdict {
        let Self { group } = self;
        match history.poll_timeouts.get(group) {
            Some(n) => Verdict::pass(format!(
                "A member of `{group}` left the group {n} time(s) because it did not poll in time."
            )),
            None => Verdict::wait(format!(
                "Every member of `{group}` has polled within its max.poll.interval.ms so far."
            )),
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { group } = self;
        write!(
            f,
            "a member of `{group}` was removed for not polling within max.poll.interval.ms"
        )
    }
}

/// A running page instance of the group whose batches take longer to process than its
/// `max.poll.interval.ms` has kept processing for `seconds` without the group rebalancing:
/// it processes off the poll loop (the worker queue).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoRebalanceWhileSlow {
    pub group: String,
    pub seconds: u64,
}

impl Rule for NoRebalanceWhileSlow {
    fn evaluate(&self, view: &LabSnapshot, history: &History) -> Verdict {
        let Self { group, seconds } = self;
        no_rebalance_while_slow(view, history, group, *seconds)
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { group, seconds } = self;
        write!(
            f,
            "a slow member of `{group}` kept processing for {seconds} s without a rebalance"
        )
    }
}

fn no_rebalance_while_slow(
    view: &LabSnapshot,
    history: &History,
    group: &str,
    seconds: u64,
) -> Verdict {
    let slow = view.instances.iter().find(|i| {
        let s = &i.settings;
        i.group == group
            && i.state == InstanceState::Running
            && u64::from(s.processing_ms) * u64::from(s.max_poll_records)
                > u64::from(s.max_poll_interval_ms)
    });
    let Some(slow) = slow else {
        return Verdict::wait(format!(
            "No running instance of `{group}` takes longer to process a poll's messages than its max.poll.interval.ms."
        ));
    };
    let since = history
        .rebalanced_at
        .get(group)
        .copied()
        .unwrap_or(0)
        .max(slow.started_at);
    let steady = history.now.saturating_sub(since);
    let working = history
        .last_processed
        .get(group)
        .is_some_and(|at| *at > since && slow.processed > 0);
    if !working {
        return Verdict::wait(format!(
            "{} has not processed a message since the last rebalance of `{group}`.",
            slow.name
        ));
    }
    if steady >= seconds * 1000 {
        Verdict::pass(format!(
            "{} kept processing and `{group}` has not rebalanced for {}.",
            slow.name,
            self::seconds(steady)
        ))
    } else {
        Verdict::wait(format!(
            "{} is processing; `{group}` has been stable for {} of the {seconds} s needed.",
            slow.name,
            self::seconds(steady)
        ))
    }
}

fn idle_member(view: &LabSnapshot, group: &str, topic: &str) -> Verdict {
    let complete = assignment_complete(view, group, topic);
    if !complete.passed {
        return complete;
    }
    let working = working_members(view, group);
    let idle: Vec<&str> = working
        .iter()
        .filter(|m| !m.partitions.iter().any(|tp| tp.topic == topic))
        .map(|m| m.name.as_str())
        .collect();
    if idle.is_empty() {
        Verdict::wait(format!(
            "Every one of the {} working member(s) of `{group}` owns a partition: start more members than `{topic}` has partitions.",
            working.len()
        ))
    } else {
        Verdict::pass(format!(
            "{} of `{group}` own(s) no partition of `{topic}`: idle while the others work.",
            idle.join(", ")
        ))
    }
}

fn assignment_complete(view: &LabSnapshot, group: &str, topic: &str) -> Verdict {
    let Some(found) = view.topic(topic) else {
        return Verdict::wait(format!("There is no topic `{topic}` yet."));
    };
    let mut owners: BTreeMap<i32, Vec<&str>> = BTreeMap::new();
    for member in working_members(view, group) {
        for tp in member.partitions.iter().filter(|tp| tp.topic == topic) {
            owners.entry(tp.partition).or_default().push(&member.name);
        }
    }
    let unowned: Vec<String> = found
        .partitions
        .iter()
        .filter(|p| !owners.contains_key(&p.partition))
        .map(|p| p.partition.to_string())
        .collect();
    let shared: Vec<String> = owners
        .iter()
        .filter(|(_, names)| names.len() > 1)
        .map(|(p, names)| format!("{p} ({})", names.join(" and ")))
        .collect();
    if !shared.is_empty() {
        Verdict::wait(format!("Partition(s) owned twice: {}.", shared.join(", ")))
    } else if !unowned.is_empty() {
        Verdict::wait(format!(
            "Partition(s) {} of `{topic}` have no working owner in `{group}`.",
            unowned.join(", ")
        ))
    } else {
        let summary: Vec<String> = owners
            .iter()
            .map(|(p, names)| format!("{p}→{}", names.join(" and ")))
            .collect();
        Verdict::pass(format!(
            "Each partition has one owner: {}.",
            summary.join(", ")
        ))
    }
}

fn handed_over(history: &History, group: &str, departure: Departure) -> Verdict {
    let what = match departure {
        Departure::Crash => "crashed",
        Departure::Graceful | Departure::Unknown => "stopped",
        Departure::Expired => "lost its session",
    };
    match history
        .handovers
        .iter()
        .rev()
        .find(|h| h.group == group && h.departure == departure)
    {
        Some(h) => Verdict::pass(format!(
            "{}, {what}; its partitions moved to other members after {}.",
            h.from,
            seconds(h.gap_ms())
        )),
        None => Verdict::wait(format!(
            "Waiting for a member of `{group}` that owns partitions to be {what}, and for the others to take its partitions."
        )),
    }
}

/// The members of a group doing work: in the group, and, for a page instance, with its process running.
fn working_members<'a>(view: &'a LabSnapshot, group: &str) -> Vec<&'a MemberView> {
    view.group(group)
        .map(|g| g.members.iter().filter(|m| view.is_working(m)).collect())
        .unwrap_or_default()
}

/// ` (A, rdkafka·3f2a)`, or nothing for no members.
fn names(members: &[&MemberView]) -> String {
    if members.is_empty() {
        return String::new();
    }
    let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    format!(" ({})", names.join(", "))
}

/// A pause, in milliseconds below a second.
fn short_time(ms: u64) -> String {
    if ms < 1_000 {
        format!("{ms} ms")
    } else {
        seconds(ms)
    }
}

fn seconds(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}
