//! nisshi's classic group coordinator, wrapped so that every call that may change a group is
//! seen as it happens: the group watcher is woken, each member's client id and each LeaveGroup
//! are remembered (the stored group keeps neither), and a refused join is explained.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use grouplab_protocol::{EpochMicros, EpochMillis};
use nisshi_broker::coordinator::group::administrator::{Controller, GroupCoordinatorConfig};
use nisshi_broker::coordinator::group::{Coordinator, OffsetCommit};
use nisshi_sans_io::delete_groups_response::DeletableGroupResult;
use nisshi_sans_io::join_group_request::JoinGroupRequestProtocol;
use nisshi_sans_io::leave_group_request::MemberIdentity;
use nisshi_sans_io::offset_commit_request::OffsetCommitRequestTopic;
use nisshi_sans_io::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use nisshi_sans_io::offset_fetch_request::{OffsetFetchRequestGroup, OffsetFetchRequestTopic};
use nisshi_sans_io::sync_group_request::SyncGroupRequestAssignment;
use nisshi_sans_io::{
    Body, DeleteGroupsResponse, DescribeGroupsResponse, ErrorCode, Frame, FrameInput,
    JoinGroupResponse, OffsetCommitResponse, OffsetFetchResponse,
};
use nisshi_service::FrameRouteService;
use nisshi_storage::{ArcDynStorage, GroupDetailResponse, Storage};
use rama::Service;
use rama::extensions::Extension;
use tokio::sync::{Notify, broadcast};
use tracing::debug;

use super::consumer_groups::{ConsumerGroups, OffsetRequest};
use super::describe::with_members_described;
use crate::clock::{epoch_ms, now_us};

/// How long a LeaveGroup is remembered, to tell a graceful departure from an expiry; also how
/// long a joining member's client id is kept before it appears in its group.
const LEAVE_MEMORY_MS: u64 = 120_000;

/// What the coordinator wrapper tells the group watcher.
#[derive(Debug)]
pub(super) struct Signals {
    /// Woken by every coordinator call that may change a group.
    pub(super) changed: Notify,
    /// The groups those calls named since the watcher last looked, with when the first of those
    /// calls came: only these are read again, so a heartbeat costs one group's read, not every
    /// group's.
    touched: Mutex<BTreeMap<String, EpochMicros>>,
    /// The client id and host each member joined with, and when; the stored group keeps neither.
    /// A std Mutex is fine here and below: held for a map operation, never across an await.
    joined: Mutex<HashMap<String, Joined>>,
    /// Per group, the members that sent LeaveGroup and when.
    leaves: Mutex<HashMap<String, Vec<(String, EpochMillis)>>>,
    /// Where refused joins are told.
    refusals: broadcast::Sender<Refusal>,
}

/// What a member's JoinGroup said of its client.
#[derive(Clone, Debug, Default)]
struct Joined {
    client_id: Option<String>,
    /// As Apache Kafka gives it: `/` and the address the member connected from.
    host: Option<String>,
    at: EpochMillis,
}

/// The address a connection to the embedded broker comes from, kept with the connection.
#[derive(Clone, Copy, Debug)]
pub(super) struct PeerAddr(pub(super) SocketAddr);

impl Extension for PeerAddr {}

/// A consumer the coordinator would not let into a group: it never becomes a member, so without
/// this the learner would see nothing at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub group: String,
    pub client_id: String,
    /// Why, in a learner's words.
    pub reason: String,
}

impl Signals {
    pub(super) fn new(refusals: broadcast::Sender<Refusal>) -> Self {
        Self {
            changed: Notify::new(),
            touched: Mutex::default(),
            joined: Mutex::default(),
            leaves: Mutex::default(),
            refusals,
        }
    }

    /// Marks a group as changed and wakes the watcher.
    fn touch(&self, group: &str) {
        if let Ok(mut touched) = self.touched.lock()
            && !touched.contains_key(group)
        {
            touched.insert(group.to_owned(), now_us());
        }
        self.changed.notify_one();
    }

    pub(super) fn take_touched(&self) -> BTreeMap<String, EpochMicros> {
        self.touched
            .lock()
            .map(|mut touched| std::mem::take(&mut *touched))
            .unwrap_or_default()
    }

    fn note_leave(&self, group: &str, members: impl IntoIterator<Item = String>) {
        let now = epoch_ms(SystemTime::now());
        if let Ok(mut leaves) = self.leaves.lock() {
            let list = leaves.entry(group.to_owned()).or_default();
            list.retain(|(_, at)| now.saturating_sub(*at) < LEAVE_MEMORY_MS);
            list.extend(members.into_iter().map(|m| (m, now)));
        }
    }

    pub(super) fn leaves(&self, group: &str) -> Vec<(String, EpochMillis)> {
        self.leaves
            .lock()
            .map(|leaves| leaves.get(group).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    pub(super) fn client_id(&self, member_id: &str) -> Option<String> {
        self.joined.lock().ok()?.get(member_id)?.client_id.clone()
    }

    pub(super) fn host(&self, member_id: &str) -> Option<String> {
        self.joined.lock().ok()?.get(member_id)?.host.clone()
    }

    fn note_client_id(&self, member_id: &str, client_id: &str) {
        self.note(member_id, |joined| {
            joined.client_id = Some(client_id.to_owned())
        });
    }

    /// Notes where a member connected from, as its JoinGroup came.
    pub(super) fn note_host(&self, member_id: &str, peer: SocketAddr) {
        self.note(member_id, |joined| {
            joined.host = Some(format!("/{}", peer.ip()))
        });
    }

    fn note(&self, member_id: &str, change: impl FnOnce(&mut Joined)) {
        if let Ok(mut joined) = self.joined.lock() {
            let entry = joined.entry(member_id.to_owned()).or_default();
            change(entry);
            entry.at = epoch_ms(SystemTime::now());
        }
    }

    /// Forgets what is no longer needed, so a server that runs for a whole course stays small:
    /// client ids and hosts of members no group has (after a grace period for members still joining),
    /// and LeaveGroups older than [`LEAVE_MEMORY_MS`].
    pub(super) fn prune(&self, members: &BTreeSet<&str>, now: EpochMillis) {
        if let Ok(mut joined) = self.joined.lock() {
            joined.retain(|id, joined| {
                members.contains(id.as_str()) || now.saturating_sub(joined.at) < LEAVE_MEMORY_MS
            });
        }
        if let Ok(mut leaves) = self.leaves.lock() {
            for list in leaves.values_mut() {
                list.retain(|(_, at)| now.saturating_sub(*at) < LEAVE_MEMORY_MS);
            }
            leaves.retain(|_, list| !list.is_empty());
        }
    }
}

/// nisshi's group coordinator, unchanged, with every call that may change a group reported to
/// the group watcher as it happens.
#[derive(Clone, Debug)]
pub(super) struct ObservedCoordinator {
    inner: Controller<ArcDynStorage>,
    storage: ArcDynStorage,
    signals: Arc<Signals>,
    /// The consumer-protocol groups beside nisshi's: their commits are checked there, and
    /// classic members are kept out of them.
    consumer_groups: Arc<ConsumerGroups>,
}

impl ObservedCoordinator {
    pub(super) fn new(
        storage: ArcDynStorage,
        config: GroupCoordinatorConfig,
        signals: Arc<Signals>,
        consumer_groups: Arc<ConsumerGroups>,
    ) -> Self {
        Self {
            inner: Controller::new(storage.clone(), config),
            storage,
            signals,
            consumer_groups,
        }
    }

    /// Tells the lab why a JoinGroup was refused, for the refusals a learner can fix.
    async fn explain_refusal(
        &self,
        group: &str,
        client_id: Option<&str>,
        protocols: Option<&[JoinGroupRequestProtocol]>,
        session_timeout_ms: i32,
        code: i16,
    ) {
        let offered: Vec<&str> = protocols
            .unwrap_or_default()
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        let reason = match ErrorCode::try_from(code) {
            Ok(ErrorCode::InconsistentGroupProtocol) => {
                let chosen = self
                    .storage
                    .describe_groups(Some(&[group.to_owned()]), false)
                    .await
                    .ok()
                    .and_then(|groups| groups.into_iter().next())
                    .and_then(|named| match named.response {
                        GroupDetailResponse::Found(detail) => detail.state.protocol_name(),
                        GroupDetailResponse::ErrorCode(_) => None,
                    })
                    .filter(|name| !name.is_empty());
                format!(
                    "it offers the assignor(s) {}, but the group's members use {}. Members of one group must agree on an assignor, by name: configure one the others have.",
                    offered.join(", "),
                    chosen.as_deref().unwrap_or("another one")
                )
            }
            Ok(ErrorCode::InvalidSessionTimeout) => format!(
                "its session timeout of {session_timeout_ms} ms is outside what the broker allows. Choose one between 6 and 300 seconds."
            ),
            _ => return,
        };
        // No lab listening is fine.
        let _ = self.signals.refusals.send(Refusal {
            group: group.to_owned(),
            client_id: client_id.unwrap_or("a consumer").to_owned(),
            reason,
        });
    }

    /// Wakes the watcher now, and again shortly, for a call that changes the group while it
    /// waits (a JoinGroup is held for the whole join phase).
    fn wake_during(&self, group: &str) {
        self.signals.touch(group);
        let signals = Arc::clone(&self.signals);
        let group = group.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            signals.touch(&group);
        });
    }
}

#[async_trait]
impl Coordinator for ObservedCoordinator {
    async fn join(
        &self,
        api_version: i16,
        client_id: Option<&str>,
        group_id: &str,
        session_timeout_ms: i32,
        rebalance_timeout_ms: Option<i32>,
        member_id: &str,
        group_instance_id: Option<&str>,
        protocol_type: &str,
        protocols: Option<&[JoinGroupRequestProtocol]>,
        reason: Option<&str>,
    ) -> nisshi_broker::Result<Body> {
        // Marked before the check, so that a consumer-protocol member creating the group at
        // this instant sees this join (and the reverse).
        let _joining = self.consumer_groups.classic_joining(group_id);
        if self.consumer_groups.refuses_classic(group_id) {
            // No lab listening is fine.
            let _ = self.signals.refusals.send(Refusal {
                group: group_id.to_owned(),
                client_id: client_id.unwrap_or("a consumer").to_owned(),
                reason: "it uses the classic group protocol, but the group's members use the consumer protocol (group.protocol=consumer). Members of one group must use one protocol: set group.protocol=consumer, or use another group.".to_owned(),
            });
            return Ok(JoinGroupResponse::default()
                .throttle_time_ms(Some(0))
                .error_code(INCONSISTENT_GROUP_PROTOCOL)
                .generation_id(-1)
                .protocol_type(None)
                .protocol_name(None)
                .leader(String::new())
                .skip_assignment(Some(false))
                .member_id(member_id.to_owned())
                .members(Some(Vec::new()))
                .into());
        }
        if let (Some(client_id), false) = (client_id, member_id.is_empty()) {
            self.signals.note_client_id(member_id, client_id);
        }
        self.wake_during(group_id);
        let body = self
            .inner
            .join(
                api_version,
                client_id,
                group_id,
                session_timeout_ms,
                rebalance_timeout_ms,
                member_id,
                group_instance_id,
                protocol_type,
                protocols,
                reason,
            )
            .await;
        if let Ok(body) = &body
            && let Ok(response) = JoinGroupResponse::try_from(body.clone())
        {
            if let (Some(client_id), false) = (client_id, response.member_id.is_empty()) {
                self.signals.note_client_id(&response.member_id, client_id);
            }
            if response.error_code != 0 {
                self.explain_refusal(
                    group_id,
                    client_id,
                    protocols,
                    session_timeout_ms,
                    response.error_code,
                )
                .await;
            }
        }
        self.signals.touch(group_id);
        body
    }

    async fn sync(
        &self,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        group_instance_id: Option<&str>,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Option<&[SyncGroupRequestAssignment]>,
    ) -> nisshi_broker::Result<Body> {
        self.wake_during(group_id);
        let body = self
            .inner
            .sync(
                group_id,
                generation_id,
                member_id,
                group_instance_id,
                protocol_type,
                protocol_name,
                assignments,
            )
            .await;
        self.signals.touch(group_id);
        body
    }

    async fn heartbeat(
        &self,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> nisshi_broker::Result<Body> {
        let body = self
            .inner
            .heartbeat(group_id, generation_id, member_id, group_instance_id)
            .await;
        self.signals.touch(group_id);
        body
    }

    async fn leave(
        &self,
        group_id: &str,
        member_id: Option<&str>,
        members: Option<&[MemberIdentity]>,
    ) -> nisshi_broker::Result<Body> {
        let leaving = member_id
            .map(str::to_owned)
            .into_iter()
            .chain(
                members
                    .unwrap_or_default()
                    .iter()
                    .map(|m| m.member_id.clone()),
            )
            .filter(|id| !id.is_empty());
        self.signals.note_leave(group_id, leaving);
        let body = self.inner.leave(group_id, member_id, members).await;
        self.signals.touch(group_id);
        body
    }

    /// A consumer-protocol member's commit is checked against its member epoch here, then stored
    /// by nisshi as a commit from outside any classic group (Kafka's own check is
    /// `ConsumerGroup.validateOffsetCommit`).
    async fn offset_commit(&self, detail: OffsetCommit<'_>) -> nisshi_broker::Result<Body> {
        let checked = self.consumer_groups.check_offsets(
            OffsetRequest::Commit,
            detail.group_id,
            detail.member_id.unwrap_or_default(),
            detail.generation_id_or_member_epoch.unwrap_or(-1),
        );
        match checked {
            None => self.inner.offset_commit(detail).await,
            Some(Ok(())) => {
                self.inner
                    .offset_commit(OffsetCommit {
                        generation_id_or_member_epoch: Some(-1),
                        member_id: None,
                        group_instance_id: None,
                        ..detail
                    })
                    .await
            }
            Some(Err((code, message))) => {
                debug!(
                    group = detail.group_id,
                    code, message, "an offset commit was refused"
                );
                Ok(commit_refused(detail.topics, code))
            }
        }
    }

    async fn offset_fetch(
        &self,
        group_id: Option<&str>,
        topics: Option<&[OffsetFetchRequestTopic]>,
        groups: Option<&[OffsetFetchRequestGroup]>,
        require_stable: Option<bool>,
    ) -> nisshi_broker::Result<Body> {
        // A consumer-protocol member's fetch (OffsetFetch v9 names it) must carry its current
        // epoch, as Kafka checks (`ConsumerGroup.validateOffsetFetch`); the group is answered
        // with the error and no offsets.
        let refused: Vec<(String, i16)> = groups
            .unwrap_or_default()
            .iter()
            .filter_map(|group| {
                let checked = self.consumer_groups.check_offsets(
                    OffsetRequest::Fetch,
                    &group.group_id,
                    group.member_id.as_deref().unwrap_or_default(),
                    group.member_epoch.unwrap_or(-1),
                )?;
                checked.err().map(|(code, message)| {
                    debug!(
                        group = group.group_id,
                        code, message, "an offset fetch was refused"
                    );
                    (group.group_id.clone(), code)
                })
            })
            .collect();
        let body = self
            .inner
            .offset_fetch(group_id, topics, groups, require_stable)
            .await?;
        if refused.is_empty() {
            return Ok(body);
        }
        match OffsetFetchResponse::try_from(body.clone()) {
            Ok(mut response) => {
                for group in response.groups.iter_mut().flatten() {
                    if let Some((_, code)) = refused.iter().find(|(id, _)| *id == group.group_id) {
                        group.error_code = *code;
                        group.topics = Some(Vec::new());
                    }
                }
                Ok(response.into())
            }
            Err(_) => Ok(body),
        }
    }

    /// A consumer-protocol group with members is not deleted (NON_EMPTY_GROUP, as Kafka answers);
    /// nisshi would find only its empty classic record, and delete its offsets.
    async fn delete_groups(&self, group_ids: &[String]) -> nisshi_broker::Result<Body> {
        let (busy, free): (Vec<String>, Vec<String>) = group_ids
            .iter()
            .cloned()
            .partition(|group| self.consumer_groups.has_members(group));
        for group in &free {
            self.consumer_groups.forget_if_empty(group);
        }
        let mut body = if free.is_empty() {
            DeleteGroupsResponse::default()
                .throttle_time_ms(0)
                .results(Some(Vec::new()))
                .into()
        } else {
            self.inner.delete_groups(&free).await?
        };
        if !busy.is_empty()
            && let Ok(mut response) = DeleteGroupsResponse::try_from(body.clone())
        {
            response
                .results
                .get_or_insert_default()
                .extend(busy.into_iter().map(|group| {
                    DeletableGroupResult::default()
                        .group_id(group)
                        .error_code(NON_EMPTY_GROUP)
                }));
            body = response.into();
        }
        for group in group_ids {
            self.signals.touch(group);
        }
        Ok(body)
    }

    async fn list_groups(&self, states_filter: Option<&[String]>) -> nisshi_broker::Result<Body> {
        self.inner.list_groups(states_filter).await
    }

    async fn describe_groups(
        &self,
        group_ids: Option<&[String]>,
        include_authorized_operations: bool,
    ) -> nisshi_broker::Result<Body> {
        let body = self
            .inner
            .describe_groups(group_ids, include_authorized_operations)
            .await?;
        match DescribeGroupsResponse::try_from(body.clone()) {
            Ok(described) => Ok(
                with_members_described(&self.storage, &self.signals, described)
                    .await
                    .into(),
            ),
            Err(_) => Ok(body),
        }
    }
}

/// Kafka's INCONSISTENT_GROUP_PROTOCOL.
const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
/// Kafka's NON_EMPTY_GROUP.
const NON_EMPTY_GROUP: i16 = 68;

/// An OffsetCommit answer refusing every partition with `code`.
fn commit_refused(topics: Option<&[OffsetCommitRequestTopic]>, code: i16) -> Body {
    let topics = topics
        .unwrap_or_default()
        .iter()
        .map(|topic| {
            OffsetCommitResponseTopic::default()
                .name(topic.name.clone())
                .partitions(Some(
                    topic
                        .partitions
                        .iter()
                        .flatten()
                        .map(|p| {
                            OffsetCommitResponsePartition::default()
                                .partition_index(p.partition_index)
                                .error_code(code)
                        })
                        .collect(),
                ))
        })
        .collect();
    OffsetCommitResponse::default()
        .throttle_time_ms(Some(0))
        .topics(Some(topics))
        .into()
}

/// nisshi's JoinGroup route, noting where each member connected from: the coordinator never
/// sees the connection, and DescribeGroups names each member's host.
#[derive(Clone, Debug)]
pub(super) struct JoinGroupRoute {
    pub(super) nisshi: FrameRouteService<nisshi_broker::Error>,
    pub(super) signals: Arc<Signals>,
}

impl Service<FrameInput> for JoinGroupRoute {
    type Output = Frame;
    type Error = nisshi_broker::Error;

    async fn serve(&self, input: FrameInput) -> Result<Frame, Self::Error> {
        let peer = input.extensions.get_ref::<PeerAddr>().copied();
        let frame = self.nisshi.serve(input).await?;
        if let (Some(PeerAddr(peer)), Ok(joined)) =
            (peer, JoinGroupResponse::try_from(frame.body.clone()))
            && !joined.member_id.is_empty()
        {
            self.signals.note_host(&joined.member_id, peer);
        }
        Ok(frame)
    }
}
