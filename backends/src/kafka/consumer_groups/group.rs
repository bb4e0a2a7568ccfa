//! Consumer groups under the consumer group protocol (KIP-848), as Apache Kafka 4's group
//! coordinator runs them (`GroupMetadataManager.consumerGroupHeartbeat`, `ConsumerGroup`,
//! `CurrentAssignmentBuilder`, `TargetAssignmentBuilder`): pure state, driven by heartbeats and
//! by the clock the caller passes in, so that every rule is tested without a broker.
//!
//! - The **group epoch** goes up when the group changes: a member joins, leaves or is fenced,
//!   a subscription changes, or a subscribed topic grows or appears.
//! - The **target assignment** is recomputed by the server-side assignor on the first heartbeat
//!   after that; its epoch (the assignment epoch) becomes the group epoch.
//! - Each **member** reconciles towards its target one heartbeat at a time: a partition is
//!   revoked from its owner, and given to its next owner only once the owner has said it let go,
//!   so no partition ever has two owners. The member's epoch reaches the assignment epoch when
//!   it holds all of its target.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use self::checks::{fenced_instance, find_member, unknown_member, validate};
use self::reconcile::{held, reconcile};
use super::assignor::{self, ASSIGNORS, Spec};

mod checks;
mod reconcile;

/// A topic id, as the protocol carries it.
pub type TopicUuid = [u8; 16];
/// Partitions, by topic id.
pub type Partitions = BTreeMap<TopicUuid, BTreeSet<i32>>;

/// A topic on the broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicMeta {
    pub id: TopicUuid,
    pub partitions: i32,
}

/// The broker's topics, by name, as the coordinator reads them for a heartbeat.
pub type Topics = BTreeMap<String, TopicMeta>;

/// Kafka's error codes that the coordinator answers with.
pub mod code {
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const INVALID_REQUEST: i16 = 42;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    pub const GROUP_MAX_SIZE_REACHED: i16 = 81;
    pub const FENCED_INSTANCE_ID: i16 = 82;
    pub const FENCED_MEMBER_EPOCH: i16 = 110;
    pub const UNRELEASED_INSTANCE_ID: i16 = 111;
    pub const UNSUPPORTED_ASSIGNOR: i16 = 112;
    pub const STALE_MEMBER_EPOCH: i16 = 113;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const INVALID_REGULAR_EXPRESSION: i16 = 128;
}

/// A heartbeat the coordinator refused: Kafka's error code and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    pub code: i16,
    pub message: String,
}

fn refused(code: i16, message: impl Into<String>) -> Refused {
    Refused {
        code,
        message: message.into(),
    }
}

/// The broker's group settings (`group.consumer.*`).
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// How long a member may go without a heartbeat before it is fenced.
    pub session_timeout_ms: u64,
    /// How often members are told to heartbeat.
    pub heartbeat_interval_ms: i32,
    /// The most members a group may have.
    pub max_size: usize,
}

/// One ConsumerGroupHeartbeat, decoded. `None` fields mean "unchanged since the last one".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Heartbeat {
    pub version: i16,
    pub group_id: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// The partitions the member owns now.
    pub topic_partitions: Option<Partitions>,
    /// From the request header and the connection: what describe shows.
    pub client_id: String,
    pub client_host: String,
}

impl Heartbeat {
    /// Whether the member sent everything (it joins, or rejoins after an error): then it is
    /// told its whole assignment.
    fn is_full(&self) -> bool {
        self.member_epoch == 0
            || (self.rebalance_timeout_ms != -1
                && self.subscribed_topic_names.is_some()
                && self.topic_partitions.is_some())
    }
}

/// The answer to an accepted heartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The member's partitions, when they changed or it sent a full request.
    pub assignment: Option<Partitions>,
}

/// Where a member is in reconciling towards its target (`MemberState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberState {
    /// It holds its whole target at the assignment epoch.
    Stable,
    /// It must let go of partitions first (`pending_revocation`).
    UnrevokedPartitions,
    /// Partitions of its target are still held by members that have not let go.
    UnreleasedPartitions,
}

/// One member of a consumer group.
#[derive(Clone, Debug)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub subscribed: BTreeSet<String>,
    pub regex: Option<String>,
    pub server_assignor: Option<String>,
    pub epoch: i32,
    pub previous_epoch: i32,
    pub state: MemberState,
    /// What it holds and may work on.
    pub assigned: Partitions,
    /// What it holds and was asked to let go of.
    pub pending_revocation: Partitions,
    /// What the assignor gave it.
    pub target: Partitions,
    pub last_heartbeat_ms: u64,
    /// When it is fenced unless it heartbeats again.
    pub session_deadline_ms: u64,
    /// When it is fenced unless it has let go by then, and at which epoch it was asked to.
    pub rebalance_deadline: Option<(u64, i32)>,
}

impl Member {
    fn new(id: &str, now_ms: u64) -> Self {
        Self {
            id: id.to_owned(),
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            rebalance_timeout_ms: -1,
            subscribed: BTreeSet::new(),
            regex: None,
            server_assignor: None,
            epoch: 0,
            previous_epoch: 0,
            state: MemberState::Stable,
            assigned: Partitions::new(),
            pending_revocation: Partitions::new(),
            target: Partitions::new(),
            last_heartbeat_ms: now_ms,
            session_deadline_ms: now_ms,
            rebalance_deadline: None,
        }
    }

    /// A static member that left for a restart and may come back to its partitions.
    pub fn is_away(&self) -> bool {
        self.epoch == LEAVE_STATIC
    }
}

const LEAVE: i32 = -1;
const LEAVE_STATIC: i32 = -2;

/// The group states ConsumerGroupDescribe names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    /// The group changed and the new target is not computed yet.
    Assigning,
    /// Some member does not hold its target yet.
    Reconciling,
    Stable,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::Assigning => "Assigning",
            Self::Reconciling => "Reconciling",
            Self::Stable => "Stable",
        }
    }
}

/// One consumer group.
#[derive(Clone, Debug, Default)]
pub struct Group {
    pub id: String,
    pub epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, Member>,
    /// The subscribed topics that exist, as of the last epoch.
    pub subscribed: BTreeMap<String, TopicMeta>,
    /// Who holds each partition now (assigned or pending revocation), and at which epoch.
    owners: HashMap<(TopicUuid, i32), (String, i32)>,
    /// Since when it has had no members: an empty group is forgotten after [`EMPTY_GROUP_MS`].
    empty_since_ms: Option<u64>,
}

/// How long a consumer group with no members is kept (its committed offsets stay with nisshi).
pub const EMPTY_GROUP_MS: u64 = 60_000;

impl Group {
    fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            ..Self::default()
        }
    }

    pub fn state(&self) -> GroupState {
        if self.members.is_empty() {
            GroupState::Empty
        } else if self.epoch > self.assignment_epoch {
            GroupState::Assigning
        } else if self
            .members
            .values()
            .any(|m| m.state != MemberState::Stable || m.epoch != self.assignment_epoch)
        {
            GroupState::Reconciling
        } else {
            GroupState::Stable
        }
    }

    /// The assignor most members asked for, else the default.
    pub fn assignor(&self) -> &'static str {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some(name) = member.server_assignor.as_deref() {
                *votes.entry(name).or_default() += 1;
            }
        }
        let preferred = votes
            .into_iter()
            .max_by_key(|(_, n)| *n)
            .map(|(name, _)| name);
        ASSIGNORS
            .into_iter()
            .find(|a| Some(*a) == preferred)
            .unwrap_or(ASSIGNORS[0])
    }

    /// Who holds `partition` now, if anyone.
    #[cfg(test)]
    pub fn owner(&self, topic: TopicUuid, partition: i32) -> Option<&str> {
        self.owners
            .get(&(topic, partition))
            .map(|(m, _)| m.as_str())
    }

    fn release(&mut self, member: &Member) {
        for (topic, partition) in held(member) {
            if self
                .owners
                .get(&(topic, partition))
                .is_some_and(|(m, _)| *m == member.id)
            {
                self.owners.remove(&(topic, partition));
            }
        }
    }

    fn hold(&mut self, member: &Member) {
        for (topic, partition) in held(member) {
            let previous = self
                .owners
                .insert((topic, partition), (member.id.clone(), member.epoch));
            // Kafka treats this as a bug in its coordinator (IllegalStateException).
            debug_assert!(
                previous.as_ref().is_none_or(|(m, _)| *m == member.id),
                "partition {partition} given to {} while {previous:?} holds it",
                member.id
            );
        }
    }

    /// Stores `member` in place of its old self, keeping the ownership index true.
    fn put(&mut self, member: Member) {
        if let Some(old) = self.members.remove(&member.id) {
            self.release(&old);
        }
        self.hold(&member);
        self.members.insert(member.id.clone(), member);
    }

    /// Removes a member and bumps the epoch, so the others share its partitions.
    fn fence(&mut self, member_id: &str) -> Option<Member> {
        let member = self.members.remove(member_id)?;
        self.release(&member);
        self.epoch += 1;
        Some(member)
    }

    /// Reads the subscribed topics from the broker's; bumps the epoch if they changed. A name
    /// the heartbeat did not look up (another member subscribed to it meanwhile) keeps what the
    /// group knew of it.
    fn refresh_subscriptions(&mut self, topics: &Topics, looked_up: &BTreeSet<String>) -> bool {
        let names: BTreeSet<&String> = self
            .members
            .values()
            .flat_map(|m| m.subscribed.iter())
            .collect();
        let subscribed: BTreeMap<String, TopicMeta> = names
            .into_iter()
            .filter_map(|name| {
                let known = if looked_up.contains(name) {
                    topics.get(name)
                } else {
                    self.subscribed.get(name)
                };
                Some((name.clone(), known?.clone()))
            })
            .collect();
        let changed = subscribed != self.subscribed;
        self.subscribed = subscribed;
        changed
    }

    /// Recomputes every member's target with the group's assignor (`TargetAssignmentBuilder`).
    fn assign(&mut self) {
        let counts: BTreeMap<TopicUuid, i32> = self
            .subscribed
            .values()
            .map(|t| (t.id, t.partitions))
            .collect();
        let assignor = self.assignor();
        let targets = {
            let specs: Vec<Spec<'_>> = self
                .members
                .values()
                .map(|m| Spec {
                    member_id: &m.id,
                    instance_id: m.instance_id.as_deref(),
                    topics: m
                        .subscribed
                        .iter()
                        .filter_map(|name| self.subscribed.get(name).map(|t| t.id))
                        .collect(),
                    previous: &m.target,
                })
                .collect();
            assignor::assign(assignor, &specs, &counts)
        };
        for (id, member) in &mut self.members {
            member.target = targets.get(id).cloned().unwrap_or_default();
        }
        self.assignment_epoch = self.epoch;
    }

    /// The partitions a member holds as Kafka describes them: topic name, then partitions.
    pub fn named<'a>(
        &'a self,
        partitions: &'a Partitions,
    ) -> impl Iterator<Item = (&'a str, &'a BTreeSet<i32>)> {
        partitions.iter().filter_map(|(id, parts)| {
            let name = self
                .subscribed
                .iter()
                .find(|(_, t)| t.id == *id)
                .map(|(name, _)| name.as_str())?;
            Some((name, parts))
        })
    }
}

/// Every consumer group on the broker.
#[derive(Debug)]
pub struct Groups {
    pub settings: Settings,
    groups: BTreeMap<String, Group>,
}

impl Groups {
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            groups: BTreeMap::new(),
        }
    }

    pub fn get(&self, group: &str) -> Option<&Group> {
        self.groups.get(group)
    }

    /// Forgets an empty group (a classic group takes its name, or it was deleted).
    pub fn remove_if_empty(&mut self, group: &str) -> bool {
        if self.groups.get(group).is_some_and(|g| g.members.is_empty()) {
            self.groups.remove(group);
            true
        } else {
            false
        }
    }

    /// Answers one heartbeat. `classic_members` says whether a classic group of that name has
    /// members: Kafka would convert it (online upgrade); grouplab refuses, as Kafka does with
    /// `group.consumer.migration.policy=disabled`.
    #[cfg(test)]
    pub fn heartbeat(
        &mut self,
        request: &Heartbeat,
        topics: &Topics,
        classic_members: bool,
        now_ms: u64,
    ) -> Result<Answer, Refused> {
        let looked_up: BTreeSet<String> = topics.keys().cloned().collect();
        self.heartbeat_looked_up(request, topics, &looked_up, classic_members, now_ms)
    }

    /// [`Groups::heartbeat`], saying which topic names `topics` answers for: a name looked up
    /// that `topics` does not hold does not exist.
    pub fn heartbeat_looked_up(
        &mut self,
        request: &Heartbeat,
        topics: &Topics,
        looked_up: &BTreeSet<String>,
        classic_members: bool,
        now_ms: u64,
    ) -> Result<Answer, Refused> {
        validate(request)?;
        if request.member_epoch == LEAVE || request.member_epoch == LEAVE_STATIC {
            return self.leave(request, now_ms);
        }
        let settings = self.settings;
        if !self.groups.contains_key(&request.group_id) {
            if request.member_epoch != 0 {
                return Err(refused(
                    code::GROUP_ID_NOT_FOUND,
                    format!("Group {} not found.", request.group_id),
                ));
            }
            if classic_members {
                return Err(refused(
                    code::GROUP_ID_NOT_FOUND,
                    format!(
                        "Group {} is not a consumer group: its members use the classic protocol. Stop them, or use another group.",
                        request.group_id
                    ),
                ));
            }
        }
        let group = self
            .groups
            .entry(request.group_id.clone())
            .or_insert_with(|| Group::new(&request.group_id));

        let mut member = find_member(group, request, settings, now_ms)?;
        let new_member = !group.members.contains_key(&member.id);

        // The member as this heartbeat updates it.
        if let Some(id) = &request.instance_id {
            member.instance_id = Some(id.clone());
        }
        if let Some(rack) = &request.rack_id {
            member.rack_id = Some(rack.clone());
        }
        if request.rebalance_timeout_ms != -1 {
            member.rebalance_timeout_ms = request.rebalance_timeout_ms;
        }
        if let Some(assignor) = &request.server_assignor {
            member.server_assignor = Some(assignor.clone());
        }
        member.client_id = request.client_id.clone();
        member.client_host = request.client_host.clone();
        let mut bump = group.epoch == 0;
        if let Some(names) = &request.subscribed_topic_names {
            let names: BTreeSet<String> = names.iter().cloned().collect();
            if names != member.subscribed {
                member.subscribed = names;
                bump = true;
            }
        }
        if request.subscribed_topic_regex.is_some()
            && request.subscribed_topic_regex != member.regex
        {
            member.regex = request.subscribed_topic_regex.clone();
        }
        member.last_heartbeat_ms = now_ms;
        member.session_deadline_ms = now_ms + settings.session_timeout_ms;
        let before = member.assigned.clone();

        group.put(member.clone());
        group.empty_since_ms = None;
        if group.refresh_subscriptions(topics, looked_up) {
            bump = true;
        }
        if bump || new_member {
            group.epoch += 1;
        }
        if group.epoch > group.assignment_epoch {
            group.assign();
        }
        let current = group.members.get(&member.id).cloned().unwrap_or(member);
        let mut next = reconcile(group, &current, request.topic_partitions.as_ref());
        // The rebalance timer runs while the member must let go, and starts again when a new
        // round of revocations moves it to another epoch (Kafka reschedules it then too).
        next.rebalance_deadline = match next.state {
            MemberState::UnrevokedPartitions => match current.rebalance_deadline {
                Some((at, epoch)) if epoch == next.epoch => Some((at, epoch)),
                _ => Some((
                    now_ms + u64::try_from(next.rebalance_timeout_ms.max(0)).unwrap_or(0),
                    next.epoch,
                )),
            },
            _ => None,
        };
        let changed = next.assigned != before;
        let answer = Answer {
            member_id: next.id.clone(),
            member_epoch: next.epoch,
            heartbeat_interval_ms: settings.heartbeat_interval_ms,
            assignment: (request.is_full() || changed).then(|| next.assigned.clone()),
        };
        group.put(next);
        Ok(answer)
    }

    /// A member leaving (epoch -1), or a static member leaving for a restart (epoch -2).
    fn leave(&mut self, request: &Heartbeat, now_ms: u64) -> Result<Answer, Refused> {
        let unknown = || unknown_member(&request.member_id, &request.group_id);
        let group = self.groups.get_mut(&request.group_id).ok_or_else(unknown)?;
        let member = match &request.instance_id {
            Some(instance) => {
                let member = group
                    .members
                    .values()
                    .find(|m| m.instance_id.as_ref() == Some(instance))
                    .ok_or_else(unknown)?;
                if member.id != request.member_id {
                    return Err(fenced_instance(&request.member_id, instance));
                }
                member.clone()
            }
            None => group
                .members
                .get(&request.member_id)
                .cloned()
                .ok_or_else(unknown)?,
        };
        if request.member_epoch == LEAVE_STATIC {
            // It keeps its partitions and its target until its session ends.
            let mut away = member;
            away.epoch = LEAVE_STATIC;
            away.pending_revocation = Partitions::new();
            away.state = MemberState::Stable;
            away.rebalance_deadline = None;
            away.last_heartbeat_ms = now_ms;
            group.put(away);
        } else {
            group.fence(&member.id);
        }
        Ok(Answer {
            member_id: request.member_id.clone(),
            member_epoch: request.member_epoch,
            heartbeat_interval_ms: 0,
            assignment: None,
        })
    }

    /// Fences every member whose session ended, or which did not let go of its partitions within
    /// its rebalance timeout, and forgets groups empty for [`EMPTY_GROUP_MS`]. Returns the groups
    /// that changed, with the members fenced (a group forgotten is no longer in [`Groups::get`]).
    pub fn expire(&mut self, now_ms: u64) -> Vec<(String, Vec<String>)> {
        let mut changed = Vec::new();
        self.groups.retain(|name, group| {
            if !group.members.is_empty() {
                group.empty_since_ms = None;
                return true;
            }
            let since = *group.empty_since_ms.get_or_insert(now_ms);
            let keep = now_ms.saturating_sub(since) < EMPTY_GROUP_MS;
            if !keep {
                changed.push((name.clone(), Vec::new()));
            }
            keep
        });
        for (name, group) in &mut self.groups {
            let late: Vec<String> = group
                .members
                .values()
                .filter(|m| {
                    m.session_deadline_ms <= now_ms
                        || m.rebalance_deadline
                            .is_some_and(|(at, epoch)| at <= now_ms && m.epoch == epoch)
                })
                .map(|m| m.id.clone())
                .collect();
            for id in &late {
                group.fence(id);
            }
            if !late.is_empty() {
                changed.push((name.clone(), late));
            }
        }
        changed
    }

    /// Gives every member a whole session from `now_ms`: the broker was down, and nobody could
    /// heartbeat.
    pub fn renew_sessions(&mut self, now_ms: u64) {
        let session = self.settings.session_timeout_ms;
        for member in self
            .groups
            .values_mut()
            .flat_map(|g| g.members.values_mut())
        {
            member.session_deadline_ms = member.session_deadline_ms.max(now_ms + session);
            if let Some((at, _)) = member.rebalance_deadline.as_mut() {
                let timeout = u64::try_from(member.rebalance_timeout_ms.max(0)).unwrap_or(0);
                *at = (*at).max(now_ms + timeout);
            }
        }
    }

    /// Checks a member's offset commit or fetch against its member epoch (Kafka's
    /// `ConsumerGroup.validateOffsetCommit` and `validateOffsetFetch`). `None` if the group is
    /// not a consumer group, so the classic coordinator decides.
    pub fn check_offsets(
        &self,
        request: OffsetRequest,
        group: &str,
        member_id: &str,
        epoch: i32,
    ) -> Option<Result<(), Refused>> {
        let found = self.groups.get(group)?;
        let from_outside = match request {
            // An admin's commit (a negative epoch) only while the group has no members.
            OffsetRequest::Commit => epoch < 0 && found.members.is_empty(),
            // A fetch from outside the group (no member id, a negative epoch) is always answered.
            OffsetRequest::Fetch => member_id.is_empty() && epoch < 0,
        };
        if from_outside {
            return Some(Ok(()));
        }
        let Some(member) = found.members.get(member_id) else {
            return Some(Err(unknown_member(member_id, group)));
        };
        if epoch != member.epoch {
            return Some(Err(refused(
                code::STALE_MEMBER_EPOCH,
                format!(
                    "The member epoch {epoch} is not the member's epoch {}.",
                    member.epoch
                ),
            )));
        }
        Some(Ok(()))
    }

    /// Whether the group is a consumer group with members (classic members cannot join it).
    pub fn has_members(&self, group: &str) -> bool {
        self.groups
            .get(group)
            .is_some_and(|g| !g.members.is_empty())
    }
}

/// Which offset request a member sent, for [`Groups::check_offsets`]: they differ only in who
/// may send one from outside the group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetRequest {
    Commit,
    Fetch,
}

#[cfg(test)]
mod tests;
