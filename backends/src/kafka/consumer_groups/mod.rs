//! The consumer group protocol (KIP-848, `group.protocol=consumer`) on the embedded broker,
//! beside nisshi's classic coordinator.
//!
//! nisshi 0.8.1 has no ConsumerGroupHeartbeat: a consumer using the new protocol was silently
//! never assigned anything. grouplab answers it here, following Apache Kafka 4's coordinator
//! (`group.rs`, `assignor.rs`), and owns what goes with it:
//!
//! - **ConsumerGroupHeartbeat** (API 68, v0 and v1) is read from the frame's bytes before
//!   nisshi's codec sees it ([`ConsumerGroupLayer`], `wire.rs`), since nisshi cannot read v1;
//!   ApiVersions advertises it (`embedded.rs`).
//! - **ConsumerGroupDescribe** (API 69) describes these groups with their members, epochs,
//!   assignments and targets (`describe.rs`).
//! - **OffsetCommit** from a member is checked against its member epoch (STALE_MEMBER_EPOCH),
//!   then stored by nisshi as a commit from outside any classic group (`coordinator.rs`).
//! - **Sessions**: a ticker fences members whose session or rebalance timeout passed.
//! - **What the page sees**: every change is published on the [`GroupWatch`] as a
//!   [`GroupObservation`] with the protocol, the epochs and each member's target.
//!
//! A classic consumer cannot join a consumer group that has members (INCONSISTENT_GROUP_PROTOCOL),
//! and a consumer-protocol member cannot join a classic group that has members
//! (GROUP_ID_NOT_FOUND): Kafka's behaviour with `group.consumer.migration.policy=disabled`.

mod assignor;
mod group;
mod wire;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use grouplab_model::membership::{GroupObservation, ObservedMember};
use grouplab_protocol::{EpochMillis, GroupProtocol, GroupState, MembershipSource, TopicPartition};
use nisshi_sans_io::consumer_group_describe_response::{self as described, DescribedGroup};
use nisshi_sans_io::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use nisshi_sans_io::{BytesInput, ConsumerGroupHeartbeatResponse, Frame, Header};
use nisshi_storage::{ArcDynStorage, GroupDetailResponse, Storage, TopicId};
use rama::extensions::ExtensionsRef;
use rama::{Layer, Service};
use tokio::sync::{broadcast, watch};
use tokio_util::bytes::Bytes;
use tracing::debug;

use self::group::{
    Group, Groups, Heartbeat, MemberState, Partitions, Refused, TopicMeta, Topics, code,
};
pub(super) use self::group::{OffsetRequest, Settings};
pub(super) use self::wire::{HEARTBEAT_KEY, HEARTBEAT_VERSIONS};
use self::wire::{peek_header, read_heartbeat};
use super::coordinator::{PeerAddr, Refusal};
use super::group_watch::GroupWatch;
use super::wire::api_key_of;
use crate::clock::{now_ms, now_us};

/// How often sessions are checked: a crashed member is fenced within this of its timeout.
const EXPIRY_TICK: Duration = Duration::from_millis(100);
/// How long a member's leave is remembered, to tell a clean leave from a fenced member.
const LEAVE_MEMORY_MS: EpochMillis = 120_000;

/// Every consumer group on the embedded broker, and what they need of the broker.
pub(super) struct ConsumerGroups {
    /// A std Mutex is fine: held for one heartbeat's decision, never across an await.
    groups: Mutex<Groups>,
    storage: ArcDynStorage,
    watch: GroupWatch,
    /// Where refused joins are told, as for the classic coordinator's.
    refusals: broadcast::Sender<Refusal>,
    /// Groups a JoinGroup (classic) or a joining heartbeat (consumer protocol) is deciding on
    /// now, with how many: each side marks itself before it looks at the other, so that two
    /// clients creating one group with different protocols at the same instant are never both
    /// let in.
    deciding: Mutex<Deciding>,
    /// Per group, the members that left with epoch -1, and when.
    leaves: Mutex<HashMap<String, Vec<(String, EpochMillis)>>>,
}

impl std::fmt::Debug for ConsumerGroups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerGroups").finish_non_exhaustive()
    }
}

impl ConsumerGroups {
    pub(super) fn new(settings: Settings, storage: ArcDynStorage, watch: GroupWatch) -> Self {
        Self {
            groups: Mutex::new(Groups::new(settings)),
            storage,
            refusals: watch.refusals_sender(),
            watch,
            deciding: Mutex::default(),
            leaves: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Groups> {
        // A panic while deciding a heartbeat leaves state that is still whole: go on with it.
        self.groups
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `group` is a consumer-protocol group (the classic coordinator's views of it are
    /// not the page's).
    pub(super) fn owns(&self, group: &str) -> bool {
        self.lock().get(group).is_some()
    }

    /// Marks a classic JoinGroup for `group` as under way, until the guard is dropped.
    pub(super) fn classic_joining(self: &Arc<Self>, group: &str) -> DecidingGuard {
        DecidingGuard::new(Arc::clone(self), group, Protocol::Classic)
    }

    /// Whether a classic member may not join `group`: it is a consumer group with members, or a
    /// consumer-protocol member is joining it now. An empty one is forgotten, so that the
    /// classic group takes its name.
    pub(super) fn refuses_classic(&self, group: &str) -> bool {
        if self.is_deciding(group, Protocol::Consumer) {
            return true;
        }
        let mut groups = self.lock();
        if groups.remove_if_empty(group) {
            return false;
        }
        groups.has_members(group)
    }

    /// Whether `group` is a consumer-protocol group with members.
    pub(super) fn has_members(&self, group: &str) -> bool {
        self.lock().has_members(group)
    }

    /// Forgets an empty consumer group that is being deleted.
    pub(super) fn forget_if_empty(&self, group: &str) {
        if self.lock().remove_if_empty(group) {
            self.watch.publish(
                GroupObservation::empty(group, MembershipSource::Coordinator),
                now_us(),
            );
        }
    }

    /// A member's offset commit or fetch: `None` if the group is not a consumer group.
    pub(super) fn check_offsets(
        &self,
        request: OffsetRequest,
        group: &str,
        member_id: &str,
        epoch: i32,
    ) -> Option<Result<(), (i16, String)>> {
        self.lock()
            .check_offsets(request, group, member_id, epoch)
            .map(|checked| checked.map_err(|r| (r.code, r.message)))
    }

    fn is_deciding(&self, group: &str, protocol: Protocol) -> bool {
        self.deciding.lock().is_ok_and(|deciding| {
            deciding
                .get(&(group.to_owned(), protocol))
                .is_some_and(|n| *n > 0)
        })
    }

    /// Answers one ConsumerGroupHeartbeat.
    async fn heartbeat(self: &Arc<Self>, mut request: Heartbeat) -> ConsumerGroupHeartbeatResponse {
        let names: BTreeSet<String> = {
            let groups = self.lock();
            groups
                .get(&request.group_id)
                .map(|g| {
                    g.members
                        .values()
                        .flat_map(|m| m.subscribed.iter().cloned())
                        .collect()
                })
                .unwrap_or_default()
        };
        let names: BTreeSet<String> = names
            .into_iter()
            .chain(request.subscribed_topic_names.iter().flatten().cloned())
            .collect();
        let topics = self.topics(&names).await;
        let _joining = (request.member_epoch == 0)
            .then(|| DecidingGuard::new(Arc::clone(self), &request.group_id, Protocol::Consumer));
        let classic_members = request.member_epoch == 0
            && !self.owns(&request.group_id)
            && (self.is_deciding(&request.group_id, Protocol::Classic)
                || self.classic_members(&request.group_id).await);
        let decided_at_us = now_us();
        let (outcome, observation) = {
            let mut groups = self.lock();
            let outcome = match &topics {
                Some(topics) => {
                    groups.heartbeat_looked_up(&request, topics, &names, classic_members, now_ms())
                }
                // The client retries, as with a coordinator that is loading.
                None => Err(Refused {
                    code: code::COORDINATOR_NOT_AVAILABLE,
                    message: "The broker could not read its topics; try again.".to_owned(),
                }),
            };
            // A member that left is remembered before the group is shown without it, so that
            // the page tells a clean leave from a crash.
            if request.member_epoch == -1 && outcome.is_ok() {
                self.note_leave(&request.group_id, std::mem::take(&mut request.member_id));
            }
            let observation = groups
                .get(&request.group_id)
                .map(|g| self.observe(g, groups.settings));
            (outcome, observation)
        };
        if let Some(observation) = observation {
            self.watch.publish(observation, decided_at_us);
        }
        match outcome {
            Ok(answer) => ConsumerGroupHeartbeatResponse::default()
                .throttle_time_ms(0)
                .error_code(0)
                .error_message(None)
                .member_id(Some(answer.member_id))
                .member_epoch(answer.member_epoch)
                .heartbeat_interval_ms(answer.heartbeat_interval_ms)
                .assignment(answer.assignment.map(|a| {
                    Assignment::default().topic_partitions(Some(
                        a.into_iter()
                            .map(|(topic, parts)| {
                                TopicPartitions::default()
                                    .topic_id(topic)
                                    .partitions(Some(parts.into_iter().collect()))
                            })
                            .collect(),
                    ))
                })),
            Err(Refused { code, message }) => {
                debug!(
                    group = request.group_id,
                    code, message, "a heartbeat was refused"
                );
                if classic_members {
                    // No lab listening is fine.
                    let _ = self.refusals.send(Refusal {
                        group: request.group_id.clone(),
                        client_id: if request.client_id.is_empty() {
                            "a consumer".to_owned()
                        } else {
                            request.client_id.clone()
                        },
                        reason: "it uses the consumer group protocol (group.protocol=consumer), but the group's members use the classic protocol. Members of one group must use one protocol: remove group.protocol=consumer, or use another group.".to_owned(),
                    });
                }
                ConsumerGroupHeartbeatResponse::default()
                    .throttle_time_ms(0)
                    .error_code(code)
                    .error_message(Some(message))
                    .member_id(None)
                    .member_epoch(0)
                    .heartbeat_interval_ms(0)
                    .assignment(None)
            }
        }
    }

    /// The named topics that exist, with their ids and partition counts; `None` if storage
    /// could not be read (not: the topics do not exist).
    async fn topics(&self, names: &BTreeSet<String>) -> Option<Topics> {
        if names.is_empty() {
            return Some(Topics::new());
        }
        let wanted: Vec<TopicId> = names.iter().map(|n| TopicId::Name(n.clone())).collect();
        let found = self.storage.metadata(Some(&wanted)).await.ok()?;
        let topics = found
            .topics
            .into_iter()
            .filter(|t| t.error_code == 0)
            .filter_map(|t| {
                let partitions = i32::try_from(t.partitions.as_ref()?.len()).ok()?;
                Some((
                    t.name?,
                    TopicMeta {
                        id: t.topic_id?,
                        partitions,
                    },
                ))
            })
            .collect();
        Some(topics)
    }

    /// Whether nisshi holds a classic group of that name with members.
    async fn classic_members(&self, group: &str) -> bool {
        self.storage
            .describe_groups(Some(&[group.to_owned()]), false)
            .await
            .ok()
            .and_then(|groups| groups.into_iter().next())
            .is_some_and(|named| match named.response {
                GroupDetailResponse::Found(detail) => !detail.members.is_empty(),
                GroupDetailResponse::ErrorCode(_) => false,
            })
    }

    fn note_leave(&self, group: &str, member: String) {
        let now = now_ms();
        if let Ok(mut leaves) = self.leaves.lock() {
            let list = leaves.entry(group.to_owned()).or_default();
            list.retain(|(_, at)| now.saturating_sub(*at) < LEAVE_MEMORY_MS);
            list.push((member, now));
        }
    }

    /// The group as the page sees it.
    fn observe(&self, group: &Group, settings: Settings) -> GroupObservation {
        let named = |partitions: &Partitions| -> Vec<TopicPartition> {
            group
                .named(partitions)
                .flat_map(|(topic, parts)| {
                    parts.iter().map(move |p| TopicPartition::new(topic, *p))
                })
                .collect()
        };
        let state = match group.state() {
            group::GroupState::Empty => GroupState::Empty,
            group::GroupState::Assigning => GroupState::Assigning,
            group::GroupState::Reconciling => GroupState::Reconciling,
            group::GroupState::Stable => GroupState::Stable,
        };
        let members = group
            .members
            .values()
            .map(|m| {
                // A partition it was asked to let go of is still its own until it says so.
                let mut partitions = named(&m.assigned);
                partitions.extend(named(&m.pending_revocation));
                partitions.sort();
                let mut target = named(&m.target);
                target.sort();
                let reconciling = m.state != MemberState::Stable || target != partitions;
                ObservedMember {
                    member_id: m.id.clone(),
                    client_id: m.client_id.clone(),
                    host: Some(m.client_host.clone()).filter(|h| !h.is_empty()),
                    group_instance_id: m.instance_id.clone(),
                    partitions: Some(partitions),
                    last_heartbeat: Some(m.last_heartbeat_ms),
                    session_timeout_ms: u32::try_from(settings.session_timeout_ms).ok(),
                    member_epoch: Some(m.epoch),
                    target: reconciling.then_some(target),
                }
            })
            .collect();
        let now = now_ms();
        let left = self
            .leaves
            .lock()
            .map(|mut leaves| {
                let list = leaves.entry(group.id.clone()).or_default();
                list.retain(|(_, at)| now.saturating_sub(*at) < LEAVE_MEMORY_MS);
                let left = list.clone();
                if left.is_empty() {
                    leaves.remove(&group.id);
                }
                left
            })
            .unwrap_or_default();
        GroupObservation {
            group: group.id.clone(),
            state,
            generation: Some(group.epoch),
            assignor: Some(group.assignor().to_owned()),
            leader: None,
            members,
            source: MembershipSource::Coordinator,
            left,
            protocol: GroupProtocol::Consumer,
            assignment_epoch: Some(group.assignment_epoch),
        }
    }

    /// ConsumerGroupDescribe's answer for one group (`ConsumerGroup.asDescribedGroup`).
    pub(super) fn describe(&self, group_id: &str) -> DescribedGroup {
        let groups = self.lock();
        let Some(group) = groups.get(group_id) else {
            return DescribedGroup::default()
                .error_code(code::GROUP_ID_NOT_FOUND)
                .error_message(Some(format!("Group {group_id} is not a consumer group.")))
                .group_id(group_id.to_owned())
                .authorized_operations(i32::MIN);
        };
        let assignment = |partitions: &Partitions| {
            described::Assignment::default().topic_partitions(Some(
                group
                    .named(partitions)
                    .map(|(name, parts)| {
                        let id = group.subscribed.get(name).map(|t| t.id).unwrap_or_default();
                        described::TopicPartitions::default()
                            .topic_id(id)
                            .topic_name(name.to_owned())
                            .partitions(Some(parts.iter().copied().collect()))
                    })
                    .collect(),
            ))
        };
        let members = group
            .members
            .values()
            .map(|m| {
                described::Member::default()
                    .member_id(m.id.clone())
                    .instance_id(m.instance_id.clone())
                    .rack_id(m.rack_id.clone())
                    .member_epoch(m.epoch)
                    .client_id(m.client_id.clone())
                    .client_host(m.client_host.clone())
                    .subscribed_topic_names(Some(m.subscribed.iter().cloned().collect()))
                    .subscribed_topic_regex(m.regex.clone())
                    .assignment(assignment(&m.assigned))
                    .target_assignment(assignment(&m.target))
            })
            .collect();
        DescribedGroup::default()
            .error_code(0)
            .error_message(None)
            .group_id(group_id.to_owned())
            .group_state(group.state().name().to_owned())
            .group_epoch(group.epoch)
            .assignment_epoch(group.assignment_epoch)
            .assignor_name(group.assignor().to_owned())
            .members(Some(members))
            .authorized_operations(i32::MIN)
    }

    /// Fences members whose session or rebalance timeout passed, while the broker serves. After
    /// an outage every member gets a whole session again, as after a coordinator restart.
    pub(super) async fn expire_sessions(self: Arc<Self>, mut serving: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(EXPIRY_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut was_down = false;
        loop {
            tick.tick().await;
            if !*serving.borrow_and_update() {
                was_down = true;
                continue;
            }
            let decided_at_us = now_us();
            let observations: Vec<GroupObservation> = {
                let mut groups = self.lock();
                if was_down {
                    groups.renew_sessions(now_ms());
                    was_down = false;
                }
                let changed = groups.expire(now_ms());
                let settings = groups.settings;
                changed
                    .iter()
                    .map(|(name, _)| match groups.get(name) {
                        Some(group) => self.observe(group, settings),
                        // Forgotten after it stayed empty.
                        None => GroupObservation::empty(name, MembershipSource::Coordinator),
                    })
                    .collect()
            };
            for observation in observations {
                self.watch.publish(observation, decided_at_us);
            }
        }
    }
}

/// The two protocols a joining client may speak, for [`ConsumerGroups::deciding`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Protocol {
    Classic,
    Consumer,
}

/// How many joins of each protocol are being decided, per group.
type Deciding = HashMap<(String, Protocol), usize>;

/// A join being decided; dropping it (the decision made, or the request abandoned) unmarks it.
pub(super) struct DecidingGuard {
    groups: Arc<ConsumerGroups>,
    key: (String, Protocol),
}

impl DecidingGuard {
    fn new(groups: Arc<ConsumerGroups>, group: &str, protocol: Protocol) -> Self {
        let key = (group.to_owned(), protocol);
        if let Ok(mut deciding) = groups.deciding.lock() {
            *deciding.entry(key.clone()).or_default() += 1;
        }
        Self { groups, key }
    }
}

impl Drop for DecidingGuard {
    fn drop(&mut self) {
        if let Ok(mut deciding) = self.groups.deciding.lock()
            && let Some(n) = deciding.get_mut(&self.key)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                deciding.remove(&self.key);
            }
        }
    }
}

/// Puts [`ConsumerGroupService`] between the connection's bytes and nisshi's frame codec.
#[derive(Clone, Debug)]
pub(super) struct ConsumerGroupLayer {
    pub(super) groups: Arc<ConsumerGroups>,
}

impl<S> Layer<S> for ConsumerGroupLayer {
    type Service = ConsumerGroupService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ConsumerGroupService {
            inner,
            groups: Arc::clone(&self.groups),
        }
    }
}

/// Answers ConsumerGroupHeartbeat frames itself and hands every other frame to nisshi.
#[derive(Clone, Debug)]
pub(super) struct ConsumerGroupService<S> {
    inner: S,
    groups: Arc<ConsumerGroups>,
}

impl<S> Service<BytesInput> for ConsumerGroupService<S>
where
    S: Service<BytesInput, Output = Bytes>,
    S::Error: From<nisshi_sans_io::Error>,
{
    type Output = Bytes;
    type Error = S::Error;

    async fn serve(&self, input: BytesInput) -> Result<Bytes, Self::Error> {
        if api_key_of(&input.bytes) != Some(HEARTBEAT_KEY) {
            return self.inner.serve(input).await;
        }
        let Some((header, mut heartbeat)) = read_heartbeat(&input.bytes) else {
            let version = peek_header(&input.bytes).map(|h| h.api_version);
            debug!(?version, supported = ?HEARTBEAT_VERSIONS, "a ConsumerGroupHeartbeat could not be read");
            return Err(nisshi_sans_io::Error::Message(
                "a malformed ConsumerGroupHeartbeat request".to_owned(),
            )
            .into());
        };
        if let Some(PeerAddr(peer)) = input.extensions().get_ref::<PeerAddr>() {
            heartbeat.client_host = format!("/{}", peer.ip());
        }
        let response = self.groups.heartbeat(heartbeat).await;
        // Both versions answer in the same shape: nisshi encodes it at version 0.
        Frame::response(
            Header::Response {
                correlation_id: header.correlation_id,
            },
            response.into(),
            HEARTBEAT_KEY,
            0,
        )
        .map_err(Into::into)
    }
}
