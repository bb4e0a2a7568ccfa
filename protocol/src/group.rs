//! Consumer groups and their members, whoever runs them.
//!
//! A member is anything that joined a group through the broker: a consumer instance grouplab
//! supervises, or the learner's own code (any client, any language). Both are [`MemberView`]s,
//! read from the broker; what grouplab knows only about its own instances (process state, every
//! message received) stays on [`crate::InstanceView`], linked by [`MemberOrigin::Instance`].

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::{EpochMillis, InstanceId, InstanceState, InstanceView, TopicPartition};

/// How many colours the page's palette has (`c0`…`c7` in the style sheet).
pub const PALETTE: u8 = 8;
/// The colour of group-wide timeline entries, outside the members' palette.
pub const GROUP_COLOUR: u8 = 255;

/// The colours the page shows now: running instances' and group members'.
pub fn colours_in_use<'a>(
    instances: &[InstanceView],
    members: impl IntoIterator<Item = &'a MemberView>,
) -> BTreeSet<u8> {
    instances
        .iter()
        .filter(|i| i.is_alive())
        .map(|i| i.colour % PALETTE)
        .chain(members.into_iter().map(|m| m.colour % PALETTE))
        .collect()
}

/// `preferred` if nobody shows it, else the first colour nobody shows, so two members on the
/// page share a colour only when there are more of them than colours.
pub fn free_colour(preferred: Option<u8>, taken: &BTreeSet<u8>) -> u8 {
    preferred
        .map(|p| p % PALETTE)
        .into_iter()
        .chain(0..PALETTE)
        .find(|c| !taken.contains(c))
        .unwrap_or_else(|| preferred.unwrap_or(taken.len() as u8) % PALETTE)
}

/// One consumer group as the broker describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupView {
    pub name: String,
    pub state: GroupState,
    /// The generation of the current assignment; a named cluster's DescribeGroups does not give it.
    pub generation: Option<i32>,
    /// The assignor the members agreed on (`range`, `roundrobin`, `cooperative-sticky`).
    pub assignor: Option<String>,
    /// The member id of the leader, which computed the assignment; not known on a named cluster.
    pub leader: Option<String>,
    /// Members, sorted by member id.
    pub members: Vec<MemberView>,
    pub source: MembershipSource,
    /// On the embedded broker, when the coordinator call that led to this view came (the
    /// latency benchmark's start); 0 when not known.
    #[serde(default)]
    pub decided_at_us: crate::EpochMicros,
    /// Which rebalance protocol the group's members speak. Under the consumer protocol,
    /// `generation` is the group epoch.
    #[serde(default)]
    pub protocol: GroupProtocol,
    /// The consumer protocol's assignment epoch: the group epoch of the current targets.
    #[serde(default)]
    pub assignment_epoch: Option<i32>,
}

/// The two rebalance protocols of Kafka consumer groups.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupProtocol {
    /// JoinGroup and SyncGroup: every member rejoins, a leader assigns (`group.protocol=classic`).
    #[default]
    Classic,
    /// KIP-848: the broker assigns and members reconcile one partition move at a time
    /// (`group.protocol=consumer`).
    Consumer,
}

impl GroupProtocol {
    /// The value of a client's `group.protocol`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Classic => "classic",
            Self::Consumer => "consumer",
        }
    }

    pub const ALL: [GroupProtocol; 2] = [Self::Classic, Self::Consumer];
}

impl GroupView {
    pub fn member(&self, member_id: &str) -> Option<&MemberView> {
        self.members.iter().find(|m| m.member_id == member_id)
    }
}

/// Where a group's membership was read from, so the page can say how exact it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MembershipSource {
    /// The embedded broker's own group coordinator: every join, leave and expiry as it happens.
    Coordinator,
    /// DescribeGroups polled from a named cluster: members and assignments, about once a second.
    Described,
}

/// Kafka's classic group states.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupState {
    #[default]
    Unknown,
    /// No members.
    Empty,
    /// Members are (re)joining; the coordinator waits for all of them.
    PreparingRebalance,
    /// Everyone joined; the coordinator waits for the leader's assignment.
    CompletingRebalance,
    /// Every member has its partitions.
    Stable,
    /// The group is being removed.
    Dead,
    /// Consumer protocol: the group changed, and the broker has not computed the new targets.
    Assigning,
    /// Consumer protocol: some members do not hold their target yet; partitions move one
    /// revocation at a time.
    Reconciling,
}

impl GroupState {
    /// Kafka's name for the state, as `kafka-consumer-groups.sh --describe` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unknown => "Unknown",
            Self::Empty => "Empty",
            Self::PreparingRebalance => "PreparingRebalance",
            Self::CompletingRebalance => "CompletingRebalance",
            Self::Stable => "Stable",
            Self::Dead => "Dead",
            Self::Assigning => "Assigning",
            Self::Reconciling => "Reconciling",
        }
    }

    /// Reads Kafka's name for a state; anything else is `Unknown`.
    pub fn parse(name: &str) -> Self {
        match name {
            "Empty" => Self::Empty,
            "PreparingRebalance" => Self::PreparingRebalance,
            "CompletingRebalance" | "AwaitingSync" => Self::CompletingRebalance,
            "Stable" => Self::Stable,
            "Dead" => Self::Dead,
            "Assigning" => Self::Assigning,
            "Reconciling" => Self::Reconciling,
            _ => Self::Unknown,
        }
    }
}

/// Who started a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberOrigin {
    /// A consumer instance grouplab started and supervises.
    Instance { instance: InstanceId },
    /// Anything else: the learner's own consumer, in any language.
    External,
}

/// One member of a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    /// The id the coordinator gave the member (`{client id}-{uuid}`).
    pub member_id: String,
    /// The `client.id` the member's client sent.
    pub client_id: String,
    /// Where the member connects from; the embedded broker does not record it.
    pub host: Option<String>,
    /// Set for static membership (`group.instance.id`).
    pub group_instance_id: Option<String>,
    pub origin: MemberOrigin,
    /// The name the page shows: an instance's letter, or the client id and the start of the member id.
    pub name: String,
    /// An index into the page's palette, kept for the member's life.
    pub colour: u8,
    /// The partitions the group's current generation gave this member.
    pub partitions: Vec<TopicPartition>,
    pub joined_at: EpochMillis,
    /// When the coordinator last heard from the member; only the embedded broker knows it.
    pub last_heartbeat: Option<EpochMillis>,
    /// How long the coordinator waits for a heartbeat before it removes the member.
    pub session_timeout_ms: Option<u32>,
    /// Consumer protocol: the member's epoch (the group epoch it caught up with).
    #[serde(default)]
    pub member_epoch: Option<i32>,
    /// Consumer protocol: where the broker is moving this member's partitions to, while it
    /// does not hold exactly that (`None` once it does).
    #[serde(default)]
    pub target: Option<Vec<TopicPartition>>,
}

impl MemberView {
    pub fn is_external(&self) -> bool {
        self.origin == MemberOrigin::External
    }

    pub fn instance(&self) -> Option<InstanceId> {
        match self.origin {
            MemberOrigin::Instance { instance } => Some(instance),
            MemberOrigin::External => None,
        }
    }

    /// Whether the member does work: in its group, and, if grouplab runs it, with its process
    /// running. An external member counts until the coordinator removes it.
    pub fn is_working(&self, instances: &[InstanceView]) -> bool {
        self.instance().is_none_or(|id| {
            instances
                .iter()
                .any(|i| i.id == id && i.state == InstanceState::Running)
        })
    }
}

/// How a member left its group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Departure {
    /// It sent LeaveGroup (a clean close), so the group rebalanced at once.
    Graceful,
    /// It went silent (killed, or its process hung) and the coordinator removed it after its session timeout.
    Crash,
    /// It is gone, and the cluster does not say how: DescribeGroups shows no difference between the two.
    Unknown,
    /// A page instance whose process still runs was removed after its session timeout: its
    /// heartbeats stopped reaching the broker (a broker outage, a stalled client), not a crash.
    Expired,
}

impl Departure {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Graceful => "left the group (LeaveGroup)",
            Self::Crash => "removed after its session timeout (no heartbeat)",
            Self::Unknown => "left the group",
            Self::Expired => {
                "lost its session while its process still ran (no heartbeat reached the broker)"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(preferred: Option<u8>, taken: &[u8], expected: u8) {
        let taken: BTreeSet<u8> = taken.iter().copied().collect();
        assert_eq!(
            free_colour(preferred, &taken),
            expected,
            "{preferred:?} with {taken:?}"
        );
    }

    #[test]
    fn a_new_member_gets_a_colour_nobody_shows() {
        check(Some(1), &[], 1);
        check(Some(1), &[1], 0);
        check(Some(9), &[0], 1);
        check(None, &[0, 1, 3], 2);
        // More members than colours: instances keep their own, externals take turns.
        check(Some(2), &[0, 1, 2, 3, 4, 5, 6, 7], 2);
        check(None, &[0, 1, 2, 3, 4, 5, 6, 7], 0);
    }
}
