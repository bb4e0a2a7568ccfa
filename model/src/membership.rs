//! Group membership: what the broker says about each group, turned into the page's group views,
//! timeline entries, and the handovers that checkpoints read.
//!
//! The broker is the one source of membership for every member, whoever runs it: the embedded
//! broker's coordinator (`backends::kafka::GroupWatch`) or a named cluster's DescribeGroups
//! (`backends::kafka::Cluster::describe_group`) produce a [`GroupObservation`]; [`Tracker::observe`]
//! compares it with the previous one and says what changed. It is a pure function of its
//! inputs, tested as tables of observations.
//!
//! What only grouplab's own instances can say (the process was killed at this instant, it was
//! asked to stop) comes in as the instances' views and refines how a departure is told.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use grouplab_protocol::{
    Departure, EpochMillis, GROUP_COLOUR, GroupProtocol, GroupState, GroupView, InstanceId,
    InstanceState, InstanceView, MemberOrigin, MemberView, MembershipSource, TimelineEntry,
    TimelineKind, TopicPartition, colours_in_use, free_colour,
};

/// One reading of a group from the broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupObservation {
    pub group: String,
    pub state: GroupState,
    pub generation: Option<i32>,
    pub assignor: Option<String>,
    pub leader: Option<String>,
    pub members: Vec<ObservedMember>,
    pub source: MembershipSource,
    /// Members the coordinator saw send LeaveGroup, with when; only the embedded broker knows this.
    pub left: Vec<(String, EpochMillis)>,
    pub protocol: GroupProtocol,
    /// Consumer protocol: the group epoch of the current targets.
    pub assignment_epoch: Option<i32>,
}

impl GroupObservation {
    /// A group the broker does not know (never joined, or deleted).
    pub fn empty(group: &str, source: MembershipSource) -> Self {
        Self {
            group: group.to_owned(),
            state: GroupState::Empty,
            generation: None,
            assignor: None,
            leader: None,
            members: Vec::new(),
            source,
            left: Vec::new(),
            protocol: GroupProtocol::Classic,
            assignment_epoch: None,
        }
    }
}

/// One member in a [`GroupObservation`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedMember {
    pub member_id: String,
    pub client_id: String,
    pub host: Option<String>,
    pub group_instance_id: Option<String>,
    /// `None` while the group rebalances and the broker holds no assignment for the member:
    /// the member keeps what the last generation gave it until the next one is formed.
    pub partitions: Option<Vec<TopicPartition>>,
    pub last_heartbeat: Option<EpochMillis>,
    pub session_timeout_ms: Option<u32>,
    /// Consumer protocol: the member's epoch, and its target while it reconciles.
    pub member_epoch: Option<i32>,
    pub target: Option<Vec<TopicPartition>>,
}

/// Partitions a member gave up by leaving or crashing, and when others owned all of them again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handover {
    pub group: String,
    /// The departed member's name as the page showed it.
    pub from: String,
    pub external: bool,
    pub departure: Departure,
    pub partitions: Vec<TopicPartition>,
    pub left_at: EpochMillis,
    pub taken_at: EpochMillis,
}

impl Handover {
    /// How long the partitions had no working owner.
    pub fn gap_ms(&self) -> u64 {
        self.taken_at.saturating_sub(self.left_at)
    }
}

/// What an observation changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The group as the page should show it now.
    Group(GroupView),
    Timeline(TimelineEntry),
    /// The group removed a crashed instance's member: the crash has been noticed.
    Noticed {
        instance: InstanceId,
        at: EpochMillis,
    },
    Handover(Handover),
}

/// A departed member's partitions, not yet owned again by working members.
#[derive(Clone, Debug)]
struct Departing {
    group: String,
    from: String,
    external: bool,
    departure: Departure,
    partitions: Vec<TopicPartition>,
    left_at: EpochMillis,
}

/// The membership of a lab's groups, as last observed.
#[derive(Default)]
pub struct Tracker {
    groups: BTreeMap<String, GroupView>,
    departing: Vec<Departing>,
    /// Since when each partition has had no working owner, per group.
    unowned_since: HashMap<(String, TopicPartition), EpochMillis>,
}

/// The most departures waiting for a handover; older ones are dropped (their group never recovered).
const MAX_DEPARTING: usize = 64;

impl Tracker {
    /// Forgets everything: the lab was reset.
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// Compares `observation` with what was known of its group, and says what changed.
    /// `instances` are the lab's instance cards, to link members to them and refine departures.
    pub fn observe(
        &mut self,
        observation: &GroupObservation,
        instances: &[InstanceView],
        now: EpochMillis,
    ) -> Vec<Change> {
        let group = observation.group.as_str();
        let previous = self.groups.get(group).cloned();
        let old_members: &[MemberView] = previous.as_ref().map_or(&[], |g| &g.members);
        let mut changes = Vec::new();
        // Under the consumer protocol an entry carries the member's epoch as of the change.
        let entry = |member: &MemberView,
                     kind: TimelineKind,
                     partitions: Vec<TopicPartition>,
                     epoch: Option<i32>| {
            Change::Timeline(TimelineEntry {
                at: now,
                group: group.to_owned(),
                instance: member.instance(),
                member: Some(member.member_id.clone()),
                name: member.name.clone(),
                colour: member.colour,
                kind,
                partitions,
                epoch,
            })
        };

        // Members that are gone: how they left, and the partitions they leave without an owner.
        let present: BTreeSet<&str> = observation
            .members
            .iter()
            .map(|m| m.member_id.as_str())
            .collect();
        for gone in old_members
            .iter()
            .filter(|m| !present.contains(m.member_id.as_str()))
        {
            let (departure, left_at) = departure(gone, observation, instances, now);
            changes.push(entry(
                gone,
                TimelineKind::Departed { departure, left_at },
                gone.partitions.clone(),
                gone.member_epoch,
            ));
            if let Some(instance) = gone.instance()
                && instances
                    .iter()
                    .any(|i| i.id == instance && matches!(i.state, InstanceState::Crashed { .. }))
            {
                changes.push(Change::Noticed { instance, at: now });
            }
            if !gone.partitions.is_empty() {
                for tp in &gone.partitions {
                    self.unowned_since
                        .entry((group.to_owned(), tp.clone()))
                        .or_insert(left_at);
                }
                self.departing.push(Departing {
                    group: group.to_owned(),
                    from: gone.name.clone(),
                    external: gone.is_external(),
                    departure,
                    partitions: gone.partitions.clone(),
                    left_at,
                });
                if self.departing.len() > MAX_DEPARTING {
                    self.departing.remove(0);
                }
            }
        }

        // The members now, with the names and colours they keep for life.
        let mut taken = colours_in_use(instances, self.groups.values().flat_map(|g| &g.members));
        let mut members: Vec<MemberView> = observation
            .members
            .iter()
            .map(|seen| {
                let old = old_members.iter().find(|m| m.member_id == seen.member_id);
                let linked = instances.iter().find(|i| i.client_id == seen.client_id);
                let (origin, name, colour) = match (linked, old) {
                    (Some(instance), _) => (
                        MemberOrigin::Instance {
                            instance: instance.id,
                        },
                        instance.name.clone(),
                        instance.colour,
                    ),
                    (None, Some(old)) => (old.origin, old.name.clone(), old.colour),
                    (None, None) => {
                        let colour = free_colour(None, &taken);
                        taken.insert(colour);
                        (
                            MemberOrigin::External,
                            external_name(&seen.client_id, &seen.member_id),
                            colour,
                        )
                    }
                };
                let mut partitions = match &seen.partitions {
                    Some(partitions) => partitions.clone(),
                    None => old.map(|m| m.partitions.clone()).unwrap_or_default(),
                };
                partitions.sort();
                MemberView {
                    member_id: seen.member_id.clone(),
                    client_id: seen.client_id.clone(),
                    host: seen.host.clone(),
                    group_instance_id: seen.group_instance_id.clone(),
                    origin,
                    name,
                    colour,
                    partitions,
                    joined_at: old.map_or(now, |m| m.joined_at),
                    last_heartbeat: seen.last_heartbeat,
                    session_timeout_ms: seen.session_timeout_ms,
                    member_epoch: seen.member_epoch,
                    target: seen.target.clone(),
                }
            })
            .collect();
        members.sort_by(|a, b| a.member_id.cmp(&b.member_id));

        for member in members
            .iter()
            .filter(|m| !old_members.iter().any(|o| o.member_id == m.member_id))
        {
            changes.push(entry(
                member,
                TimelineKind::Joined,
                Vec::new(),
                member.member_epoch,
            ));
        }

        let leader_name = observation.leader.as_ref().map(|leader| {
            members
                .iter()
                .find(|m| &m.member_id == leader)
                .map_or_else(|| leader.clone(), |m| m.name.clone())
        });
        let state_changed = previous
            .as_ref()
            .is_none_or(|p| p.state != observation.state || p.generation != observation.generation);
        if state_changed && (previous.is_some() || observation.state != GroupState::Empty) {
            changes.push(Change::Timeline(TimelineEntry {
                at: now,
                group: group.to_owned(),
                instance: None,
                member: None,
                name: group.to_owned(),
                colour: GROUP_COLOUR,
                kind: TimelineKind::Group {
                    state: observation.state,
                    generation: observation.generation,
                    assignor: observation.assignor.clone(),
                    leader: leader_name,
                    protocol: observation.protocol,
                },
                partitions: Vec::new(),
                epoch: None,
            }));
        }

        // Partitions that moved between the members that stayed or joined: every revocation
        // first, so that a partition handed from one member to another in the same generation
        // counts as never unowned.
        let old =
            |member: &MemberView| old_members.iter().find(|m| m.member_id == member.member_id);
        let before = |member: &MemberView| -> Vec<TopicPartition> {
            old(member)
                .map(|m| m.partitions.clone())
                .unwrap_or_default()
        };
        for member in &members {
            let revoked: Vec<TopicPartition> = before(member)
                .into_iter()
                .filter(|tp| !member.partitions.contains(tp))
                .collect();
            if !revoked.is_empty() {
                for tp in &revoked {
                    self.unowned_since
                        .entry((group.to_owned(), tp.clone()))
                        .or_insert(now);
                }
                // The epoch it held them in, as Kafka's "revoked from A (epoch 4)": the broker
                // asks at the new group epoch, but a member moves to it only once it let go.
                let held_in = old(member).and_then(|m| m.member_epoch);
                changes.push(entry(
                    member,
                    TimelineKind::Revoked,
                    revoked,
                    held_in.or(member.member_epoch),
                ));
            }
        }
        for member in &members {
            let had = before(member);
            let assigned: Vec<TopicPartition> = member
                .partitions
                .iter()
                .filter(|tp| !had.contains(tp))
                .cloned()
                .collect();
            if !assigned.is_empty() {
                let unowned_ms = assigned
                    .iter()
                    .filter_map(|tp| self.unowned_since.remove(&(group.to_owned(), tp.clone())))
                    .map(|since| now.saturating_sub(since))
                    .max();
                changes.push(entry(
                    member,
                    TimelineKind::Assigned { unowned_ms },
                    assigned,
                    member.member_epoch,
                ));
            }
        }

        let view = GroupView {
            name: group.to_owned(),
            state: observation.state,
            generation: observation.generation,
            assignor: observation.assignor.clone(),
            leader: observation.leader.clone(),
            members,
            source: observation.source,
            decided_at_us: 0,
            protocol: observation.protocol,
            assignment_epoch: observation.assignment_epoch,
        };
        if previous.as_ref() != Some(&view) {
            changes.push(Change::Group(view.clone()));
        }
        self.groups.insert(group.to_owned(), view);
        changes.extend(self.complete_handovers(instances, now));
        changes
    }

    /// Records a handover once working members own every partition a departed member had.
    fn complete_handovers(&mut self, instances: &[InstanceView], now: EpochMillis) -> Vec<Change> {
        let groups = &self.groups;
        let owned = |d: &Departing, tp: &TopicPartition| {
            groups.get(&d.group).is_some_and(|g| {
                g.members
                    .iter()
                    .any(|m| m.partitions.contains(tp) && m.is_working(instances))
            })
        };
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.departing)
            .into_iter()
            .partition(|d| d.partitions.iter().all(|tp| owned(d, tp)));
        self.departing = waiting;
        done.into_iter()
            .map(|d| {
                Change::Handover(Handover {
                    group: d.group,
                    from: d.from,
                    external: d.external,
                    departure: d.departure,
                    partitions: d.partitions,
                    left_at: d.left_at,
                    taken_at: now,
                })
            })
            .collect()
    }
}

/// How a member that is no longer in the group left it, and when it stopped working.
fn departure(
    gone: &MemberView,
    observation: &GroupObservation,
    instances: &[InstanceView],
    now: EpochMillis,
) -> (Departure, EpochMillis) {
    if let Some((_, at)) = observation
        .left
        .iter()
        .find(|(id, _)| *id == gone.member_id)
    {
        return (Departure::Graceful, *at);
    }
    let instance = gone
        .instance()
        .and_then(|id| instances.iter().find(|i| i.id == id));
    match instance.map(|i| &i.state) {
        Some(InstanceState::Crashed { at, .. } | InstanceState::Failed { at, .. }) => {
            (Departure::Crash, *at)
        }
        Some(InstanceState::Stopping { since }) => (Departure::Graceful, *since),
        Some(InstanceState::Stopped { at }) => (Departure::Graceful, *at),
        // Its process still runs, so whatever silenced it, it did not crash.
        Some(InstanceState::Starting | InstanceState::Joining | InstanceState::Running) => {
            (Departure::Expired, gone.last_heartbeat.unwrap_or(now))
        }
        _ => match observation.source {
            // The embedded coordinator saw every LeaveGroup: a member that sent none was expired.
            MembershipSource::Coordinator => (Departure::Crash, gone.last_heartbeat.unwrap_or(now)),
            MembershipSource::Described => (Departure::Unknown, now),
        },
    }
}

/// The page's name for a member grouplab did not start: its client id and the start of the
/// part of its member id the coordinator made up, so two copies of one script differ.
fn external_name(client_id: &str, member_id: &str) -> String {
    let unique = member_id
        .strip_prefix(client_id)
        .map(|rest| rest.trim_start_matches('-'))
        .filter(|rest| !rest.is_empty())
        .unwrap_or(member_id);
    let short: String = unique.chars().take(4).collect();
    let client = if client_id.is_empty() {
        "consumer"
    } else {
        client_id
    };
    format!("{client}·{short}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use grouplab_protocol::ConsumerSettings;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new("t", p)
    }

    fn member(id: &str, partitions: Option<&[i32]>, heartbeat: EpochMillis) -> ObservedMember {
        ObservedMember {
            member_id: format!("{id}-0a1b2c3d"),
            client_id: id.to_owned(),
            host: None,
            group_instance_id: None,
            partitions: partitions.map(|ps| ps.iter().map(|&p| tp(p)).collect()),
            last_heartbeat: Some(heartbeat),
            session_timeout_ms: Some(10_000),
            member_epoch: None,
            target: None,
        }
    }

    fn observed(
        state: GroupState,
        generation: i32,
        members: Vec<ObservedMember>,
    ) -> GroupObservation {
        GroupObservation {
            group: "g".into(),
            state,
            generation: Some(generation),
            assignor: Some("range".into()),
            leader: members.first().map(|m| m.member_id.clone()),
            members,
            source: MembershipSource::Coordinator,
            left: Vec::new(),
            assignment_epoch: None,
            protocol: Default::default(),
        }
    }

    fn instance(id: u64, name: &str, state: InstanceState) -> InstanceView {
        InstanceView {
            id: InstanceId(id),
            name: name.into(),
            colour: name.as_bytes()[0] - b'A',
            group: "g".into(),
            topic: "t".into(),
            client_id: format!("grouplab-{name}-{id}"),
            settings: ConsumerSettings::default(),
            state,
            partitions: Vec::new(),
            received: 0,
            processed: 0,
            busy: None,
            queue: None,
            failing: None,
            dead_lettered: 0,
            reported_at_us: 0,
            started_at: 0,
            problem: None,
        }
    }

    /// The changes in words, so tables read like the timeline.
    fn words(changes: &[Change]) -> Vec<String> {
        changes
            .iter()
            .filter_map(|c| match c {
                Change::Timeline(e) => {
                    let parts: Vec<String> = e
                        .partitions
                        .iter()
                        .map(|tp| tp.partition.to_string())
                        .collect();
                    Some(match &e.kind {
                        TimelineKind::Group {
                            state, generation, ..
                        } => format!("group {} {}", state.name(), generation.unwrap_or(-1)),
                        TimelineKind::Joined => format!("{} joined", e.name),
                        TimelineKind::Departed { departure, .. } => {
                            format!("{} {departure:?} [{}]", e.name, parts.join(","))
                        }
                        TimelineKind::Assigned { unowned_ms } => format!(
                            "{} +[{}] {}",
                            e.name,
                            parts.join(","),
                            unowned_ms.map_or("-".to_owned(), |ms| ms.to_string())
                        ),
                        TimelineKind::Revoked => format!("{} -[{}]", e.name, parts.join(",")),
                        other => format!("{} {other:?}", e.name),
                    })
                }
                Change::Handover(h) => Some(format!(
                    "handover {:?} from {} after {}",
                    h.departure,
                    h.from,
                    h.gap_ms()
                )),
                Change::Noticed { instance, .. } => Some(format!("noticed {}", instance.0)),
                Change::Group(_) => None,
            })
            .collect()
    }

    /// Feeds observations at the given times and checks the words each one produced.
    #[track_caller]
    fn check(
        instances: &[InstanceView],
        steps: Vec<(EpochMillis, GroupObservation)>,
        expected: &[&[&str]],
    ) -> Tracker {
        let mut tracker = Tracker::default();
        for ((at, observation), expected) in steps.into_iter().zip(expected) {
            let changes = tracker.observe(&observation, instances, at);
            assert_eq!(words(&changes), *expected, "at {at}");
        }
        tracker
    }

    #[test]
    fn a_revocation_carries_the_epoch_the_partition_was_held_in_and_the_assignment_the_new_one() {
        // Kafka 4: at group epoch 5 the broker moves P2 from a (epoch 4) to c; a stays at 4
        // until it lets go, and c is given P2 at 5 only after that.
        let at = |id: &str, epoch: i32, held: &[i32], target: Option<&[i32]>| ObservedMember {
            member_epoch: Some(epoch),
            target: target.map(|ps| ps.iter().map(|&p| tp(p)).collect()),
            ..member(id, Some(held), 1_000)
        };
        let consumer = |epoch: i32, members: Vec<ObservedMember>| GroupObservation {
            protocol: GroupProtocol::Consumer,
            assignment_epoch: Some(epoch),
            ..observed(GroupState::Stable, epoch, members)
        };
        let mut tracker = Tracker::default();
        let steps = [
            consumer(4, vec![at("a", 4, &[0, 1, 2], None)]),
            consumer(
                5,
                vec![
                    at("a", 4, &[0, 1, 2], Some(&[0, 1])),
                    at("c", 5, &[], Some(&[2])),
                ],
            ),
            consumer(
                5,
                vec![at("a", 5, &[0, 1], None), at("c", 5, &[], Some(&[2]))],
            ),
            consumer(5, vec![at("a", 5, &[0, 1], None), at("c", 5, &[2], None)]),
        ];
        let mut moves = Vec::new();
        for (i, observation) in steps.iter().enumerate() {
            for change in tracker.observe(observation, &[], 1_000 * (i as u64 + 1)) {
                if let Change::Timeline(e) = change
                    && matches!(
                        e.kind,
                        TimelineKind::Revoked | TimelineKind::Assigned { .. }
                    )
                {
                    moves.push((e.name.clone(), e.kind, e.partitions, e.epoch));
                }
            }
        }
        let a = external_name("a", "a-0a1b2c3d");
        let c = external_name("c", "c-0a1b2c3d");
        assert_eq!(
            moves,
            [
                (
                    a.clone(),
                    TimelineKind::Assigned { unowned_ms: None },
                    vec![tp(0), tp(1), tp(2)],
                    Some(4)
                ),
                (a, TimelineKind::Revoked, vec![tp(2)], Some(4)),
                (
                    c,
                    TimelineKind::Assigned {
                        unowned_ms: Some(1_000)
                    },
                    vec![tp(2)],
                    Some(5)
                ),
            ]
        );
    }

    #[test]
    fn external_members_join_split_partitions_and_keep_them_through_a_rebalance() {
        let tracker = check(
            &[],
            vec![
                (
                    100,
                    observed(
                        GroupState::PreparingRebalance,
                        0,
                        vec![member("rdkafka", None, 100)],
                    ),
                ),
                (
                    1_100,
                    observed(
                        GroupState::Stable,
                        1,
                        vec![member("rdkafka", Some(&[0, 1, 2]), 1_100)],
                    ),
                ),
                (
                    2_000,
                    observed(
                        GroupState::PreparingRebalance,
                        1,
                        vec![
                            member("rdkafka", None, 2_000),
                            member("kafkajs", None, 2_000),
                        ],
                    ),
                ),
                (
                    2_100,
                    observed(
                        GroupState::Stable,
                        2,
                        vec![
                            member("rdkafka", Some(&[0, 1]), 2_100),
                            member("kafkajs", Some(&[2]), 2_100),
                        ],
                    ),
                ),
            ],
            &[
                &["rdkafka·0a1b joined", "group PreparingRebalance 0"],
                &["group Stable 1", "rdkafka·0a1b +[0,1,2] -"],
                &["kafkajs·0a1b joined", "group PreparingRebalance 1"],
                &["group Stable 2", "rdkafka·0a1b -[2]", "kafkajs·0a1b +[2] 0"],
            ],
        );
        let group = &tracker.groups["g"];
        assert!(group.members.iter().all(MemberView::is_external));
        assert_ne!(group.members[0].colour, group.members[1].colour);
    }

    #[test]
    fn an_external_crash_is_an_expiry_timed_from_its_last_heartbeat() {
        let both = |hb_b| {
            vec![
                member("a", Some(&[0, 1]), 5_000),
                member("b", Some(&[2]), hb_b),
            ]
        };
        check(
            &[],
            vec![
                (1_000, observed(GroupState::Stable, 1, both(1_000))),
                (5_000, observed(GroupState::Stable, 1, both(2_000))),
                (
                    12_100,
                    observed(
                        GroupState::Stable,
                        1,
                        vec![member("a", Some(&[0, 1]), 12_000)],
                    ),
                ),
                (
                    12_300,
                    observed(
                        GroupState::Stable,
                        2,
                        vec![member("a", Some(&[0, 1, 2]), 12_300)],
                    ),
                ),
            ],
            &[
                &[
                    "a·0a1b joined",
                    "b·0a1b joined",
                    "group Stable 1",
                    "a·0a1b +[0,1] -",
                    "b·0a1b +[2] -",
                ],
                &[],
                &["b·0a1b Crash [2]"],
                &[
                    "group Stable 2",
                    "a·0a1b +[2] 10300",
                    "handover Crash from b·0a1b after 10300",
                ],
            ],
        );
    }

    #[test]
    fn a_leave_group_is_graceful_and_timed_from_the_leave() {
        let mut left = observed(
            GroupState::PreparingRebalance,
            1,
            vec![member("a", None, 3_000)],
        );
        left.left.push(("b-0a1b2c3d".into(), 2_950));
        check(
            &[],
            vec![
                (
                    1_000,
                    observed(
                        GroupState::Stable,
                        1,
                        vec![
                            member("a", Some(&[0]), 1_000),
                            member("b", Some(&[1]), 1_000),
                        ],
                    ),
                ),
                (3_000, left),
                (
                    3_400,
                    observed(
                        GroupState::Stable,
                        2,
                        vec![member("a", Some(&[0, 1]), 3_400)],
                    ),
                ),
            ],
            &[
                &[
                    "a·0a1b joined",
                    "b·0a1b joined",
                    "group Stable 1",
                    "a·0a1b +[0] -",
                    "b·0a1b +[1] -",
                ],
                &["b·0a1b Graceful [1]", "group PreparingRebalance 1"],
                &[
                    "group Stable 2",
                    "a·0a1b +[1] 450",
                    "handover Graceful from b·0a1b after 450",
                ],
            ],
        );
    }

    #[test]
    fn a_crashed_instance_is_linked_by_client_id_and_timed_from_the_kill() {
        let a = instance(1, "A", InstanceState::Running);
        let b_crashed = instance(
            2,
            "B",
            InstanceState::Crashed {
                at: 2_000,
                session_timeout_ms: 10_000,
                noticed_at: None,
            },
        );
        let observed_a = |partitions: &[i32]| member("grouplab-A-1", Some(partitions), 0);
        let observed_b = member("grouplab-B-2", Some(&[2]), 0);
        let mut tracker = Tracker::default();
        let running = [a.clone(), instance(2, "B", InstanceState::Running)];
        let first = tracker.observe(
            &observed(GroupState::Stable, 1, vec![observed_a(&[0, 1]), observed_b]),
            &running,
            1_000,
        );
        assert_eq!(
            words(&first),
            [
                "A joined",
                "B joined",
                "group Stable 1",
                "A +[0,1] -",
                "B +[2] -"
            ]
        );
        let crashed = [a, b_crashed];
        let expired = tracker.observe(
            &observed(GroupState::Stable, 2, vec![observed_a(&[0, 1, 2])]),
            &crashed,
            12_500,
        );
        assert_eq!(
            words(&expired),
            [
                "B Crash [2]",
                "noticed 2",
                "group Stable 2",
                "A +[2] 10500",
                "handover Crash from B after 10500"
            ]
        );
    }

    #[test]
    fn a_running_instance_that_lost_its_session_expired_and_did_not_crash() {
        let a = instance(1, "A", InstanceState::Running);
        let b = instance(2, "B", InstanceState::Running);
        let mut tracker = Tracker::default();
        let instances = [a, b];
        tracker.observe(
            &observed(
                GroupState::Stable,
                1,
                vec![
                    member("grouplab-A-1", Some(&[0, 1]), 0),
                    member("grouplab-B-2", Some(&[2]), 1_000),
                ],
            ),
            &instances,
            1_000,
        );
        let after = tracker.observe(
            &observed(
                GroupState::Stable,
                2,
                vec![member("grouplab-A-1", Some(&[0, 1, 2]), 12_000)],
            ),
            &instances,
            12_500,
        );
        assert_eq!(
            words(&after),
            [
                "B Expired [2]",
                "group Stable 2",
                "A +[2] 11500",
                "handover Expired from B after 11500"
            ]
        );
    }

    #[test]
    fn a_named_cluster_cannot_tell_how_an_external_member_left() {
        let mut before = observed(
            GroupState::Stable,
            1,
            vec![member("a", Some(&[0]), 0), member("b", Some(&[1]), 0)],
        );
        before.source = MembershipSource::Described;
        let mut after = observed(GroupState::Stable, 1, vec![member("a", Some(&[0, 1]), 0)]);
        after.source = MembershipSource::Described;
        check(
            &[],
            vec![(0, before), (900, after)],
            &[
                &[
                    "a·0a1b joined",
                    "b·0a1b joined",
                    "group Stable 1",
                    "a·0a1b +[0] -",
                    "b·0a1b +[1] -",
                ],
                &[
                    "b·0a1b Unknown [1]",
                    "a·0a1b +[1] 0",
                    "handover Unknown from b·0a1b after 0",
                ],
            ],
        );
    }
}
