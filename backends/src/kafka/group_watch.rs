//! Every group on the embedded broker as it changes: read from nisshi's storage whenever the
//! coordinator touches a group, and on a tick to see sessions expire, and published as
//! [`GroupObservation`]s.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use grouplab_protocol::{EpochMicros, EpochMillis, GroupState, MembershipSource};
use nisshi_sans_io::ErrorCode;
use nisshi_storage::{
    ArcDynStorage, ConsumerGroupState, GroupDetail, GroupDetailResponse, NamedGroupDetail, Storage,
};
use tokio::sync::{broadcast, watch};
use tracing::debug;

use super::consumer_groups::ConsumerGroups;
use super::coordinator::{Refusal, Signals};
use super::wire::{client_id_of, decode_assignment};
use crate::clock::{epoch_ms, now_us};
use grouplab_model::membership::{GroupObservation, ObservedMember};

/// How often the stored groups are read when nothing wakes the watcher: often enough to show a
/// member's session expiring within a fraction of a second.
const WATCH_TICK: Duration = Duration::from_millis(200);
/// The least time between two reads of the stored groups, so a burst of heartbeats costs one read.
const WATCH_GAP: Duration = Duration::from_millis(15);

/// The latest observation of every group on the embedded broker, and a feed of which changed.
#[derive(Clone)]
pub struct GroupWatch {
    /// A std Mutex is fine: held to read or replace one entry, never across an await.
    latest: Arc<Mutex<HashMap<String, Arc<GroupObservation>>>>,
    changes: broadcast::Sender<GroupChange>,
    refusals: broadcast::Sender<Refusal>,
}

impl GroupWatch {
    pub(super) fn new() -> Self {
        Self {
            latest: Arc::default(),
            changes: broadcast::channel(1024).0,
            refusals: broadcast::channel(64).0,
        }
    }

    /// Where the coordinator tells the joins it refused.
    pub(super) fn refusals_sender(&self) -> broadcast::Sender<Refusal> {
        self.refusals.clone()
    }

    /// Joins the coordinator refused, as they happen.
    pub fn refusals(&self) -> broadcast::Receiver<Refusal> {
        self.refusals.subscribe()
    }

    /// Groups as they change; a receiver that lags should re-read its groups.
    pub fn subscribe(&self) -> broadcast::Receiver<GroupChange> {
        self.changes.subscribe()
    }

    /// The group as last observed; a group the broker does not know is empty.
    pub fn latest(&self, group: &str) -> Arc<GroupObservation> {
        self.latest
            .lock()
            .ok()
            .and_then(|latest| latest.get(group).cloned())
            .unwrap_or_else(|| {
                Arc::new(GroupObservation::empty(
                    group,
                    MembershipSource::Coordinator,
                ))
            })
    }

    /// Keeps the observation; if it differs from the last, tells the subscribers, with when the
    /// coordinator call that led to it came (`decided_at_us`).
    pub(super) fn publish(&self, observation: GroupObservation, decided_at_us: EpochMicros) {
        let name = observation.group.clone();
        let changed = match self.latest.lock() {
            Ok(mut latest) => {
                let same = latest.get(&name).is_some_and(|old| **old == observation);
                if !same {
                    latest.insert(name.clone(), Arc::new(observation));
                }
                !same
            }
            Err(_) => false,
        };
        if changed {
            // No session listening is fine.
            let _ = self.changes.send(GroupChange {
                group: name,
                decided_at_us,
            });
        }
    }

    fn known(&self) -> Vec<String> {
        self.latest
            .lock()
            .map(|latest| latest.keys().cloned().collect())
            .unwrap_or_default()
    }
}

/// A group whose observation changed.
#[derive(Clone, Debug)]
pub struct GroupChange {
    pub group: String,
    /// When the coordinator call that changed it came; for a session that expired, when the
    /// watcher saw it (the broker makes no call for that).
    pub decided_at_us: EpochMicros,
}

/// Reads the groups the coordinator touched whenever it touches one, and every stored group on a
/// tick to see sessions expire, and publishes what changed.
pub(super) async fn watch_groups(
    storage: ArcDynStorage,
    signals: Arc<Signals>,
    watch: GroupWatch,
    consumer_groups: Arc<ConsumerGroups>,
    serving: watch::Receiver<bool>,
    up_since_ms: Arc<AtomicU64>,
) {
    let mut tick = tokio::time::interval(WATCH_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // The groups nisshi has stored, as last read: nisshi logs a group it has not stored yet as an
    // error when it is described, and a JoinGroup touches its group before nisshi stores it.
    let mut stored = BTreeSet::new();
    loop {
        let every_group = tokio::select! {
            () = signals.changed.notified() => false,
            _ = tick.tick() => true,
        };
        // While the broker is down its groups stand still: nobody can join, leave or heartbeat.
        if !*serving.borrow() {
            continue;
        }
        let up_since = up_since_ms.load(Ordering::SeqCst);
        let mut touched = signals.take_touched();
        // A consumer-protocol group is published by its own coordinator; nisshi holds at most
        // an empty classic group of that name, for its committed offsets.
        touched.retain(|group, _| !consumer_groups.owns(group));
        if every_group {
            if let Some(found) =
                read_every_group(&storage, &signals, &watch, &consumer_groups, up_since).await
            {
                stored = found;
            }
        } else if !touched.is_empty() {
            read_groups(&storage, &signals, &watch, up_since, &touched, &mut stored).await;
        }
        tokio::time::sleep(WATCH_GAP).await;
    }
}

/// Reads every stored group, forgets groups that are gone, and prunes what the signals remember.
/// Returns the names of the groups nisshi has stored, or `None` if they could not be read.
async fn read_every_group(
    storage: &ArcDynStorage,
    signals: &Signals,
    watch: &GroupWatch,
    consumer_groups: &ConsumerGroups,
    up_since: EpochMillis,
) -> Option<BTreeSet<String>> {
    let details = match storage.list_groups().await {
        Ok(details) => details,
        Err(err) => {
            debug!(?err, "the stored groups could not be read");
            return None;
        }
    };
    let now = SystemTime::now();
    let read_at_us = now_us();
    let mut seen = Vec::with_capacity(details.len());
    let mut members = BTreeSet::new();
    for named in &details {
        if consumer_groups.owns(&named.name) {
            seen.push(named.name.clone());
            continue;
        }
        if let GroupDetailResponse::Found(detail) = &named.response {
            let leaves = signals.leaves(&named.name);
            watch.publish(
                observe(&named.name, detail, signals, leaves, now, up_since),
                read_at_us,
            );
            members.extend(detail.members.keys().map(String::as_str));
            seen.push(named.name.clone());
        }
    }
    signals.prune(&members, epoch_ms(now));
    for gone in watch
        .known()
        .into_iter()
        .filter(|g| !seen.contains(g) && !consumer_groups.owns(g))
    {
        watch.publish(
            GroupObservation::empty(&gone, MembershipSource::Coordinator),
            read_at_us,
        );
    }
    Some(found_names(&details))
}

/// The names of the groups nisshi answered with a stored group.
fn found_names(details: &[NamedGroupDetail]) -> BTreeSet<String> {
    details
        .iter()
        .filter(|named| matches!(named.response, GroupDetailResponse::Found(_)))
        .map(|named| named.name.clone())
        .collect()
}

/// Reads only the named groups: the ones a coordinator call just touched. Those nisshi had not
/// stored at the last read (`stored`, kept up to date here) are looked up among the stored groups
/// instead of described, and are empty if they are not there yet.
async fn read_groups(
    storage: &ArcDynStorage,
    signals: &Signals,
    watch: &GroupWatch,
    up_since: EpochMillis,
    groups: &BTreeMap<String, EpochMicros>,
    stored: &mut BTreeSet<String>,
) {
    let (known, new): (Vec<String>, Vec<String>) = groups
        .keys()
        .cloned()
        .partition(|name| stored.contains(name));
    let mut details = Vec::with_capacity(groups.len());
    if !known.is_empty() {
        match storage.describe_groups(Some(&known), false).await {
            Ok(described) => details.extend(described),
            Err(err) => {
                debug!(?err, "the touched groups could not be read");
                return;
            }
        }
    }
    if !new.is_empty() {
        let listed = match storage.list_groups().await {
            Ok(listed) => listed,
            Err(err) => {
                debug!(?err, "the stored groups could not be read");
                return;
            }
        };
        let mut listed: BTreeMap<String, NamedGroupDetail> = listed
            .into_iter()
            .filter(|named| new.contains(&named.name))
            .map(|named| (named.name.clone(), named))
            .collect();
        details.extend(new.iter().map(|name| {
            listed.remove(name).unwrap_or_else(|| {
                NamedGroupDetail::error_code(name.clone(), ErrorCode::GroupIdNotFound)
            })
        }));
    }
    let found = found_names(&details);
    for name in groups.keys() {
        if found.contains(name) {
            stored.insert(name.clone());
        } else {
            stored.remove(name);
        }
    }
    let now = SystemTime::now();
    for named in &details {
        let decided_at_us = groups.get(&named.name).copied().unwrap_or_else(now_us);
        let observation = match &named.response {
            GroupDetailResponse::Found(detail) => {
                let leaves = signals.leaves(&named.name);
                observe(&named.name, detail, signals, leaves, now, up_since)
            }
            GroupDetailResponse::ErrorCode(_) => {
                GroupObservation::empty(&named.name, MembershipSource::Coordinator)
            }
        };
        watch.publish(observation, decided_at_us);
    }
}

/// One stored group as an observation. A member of a formed group whose session has expired is
/// left out at once, although nisshi removes it only when the group is next touched.
fn observe(
    group: &str,
    detail: &GroupDetail,
    signals: &Signals,
    left: Vec<(String, EpochMillis)>,
    now: SystemTime,
    up_since_ms: EpochMillis,
) -> GroupObservation {
    let up_since = UNIX_EPOCH + Duration::from_millis(up_since_ms);
    let session_timeout =
        Duration::from_millis(u64::try_from(detail.session_timeout_ms).unwrap_or(0));
    let assignments = detail.state.assignments();
    let formed = matches!(detail.state, nisshi_storage::GroupState::Formed { .. });
    let members: Vec<ObservedMember> = detail
        .members
        .iter()
        .filter(|(_, member)| {
            !formed
                || member.last_contact.is_none_or(|last| {
                    now.duration_since(last.max(up_since)).unwrap_or_default() <= session_timeout
                })
        })
        .map(|(member_id, member)| ObservedMember {
            member_id: member_id.clone(),
            client_id: signals
                .client_id(member_id)
                .unwrap_or_else(|| client_id_of(member_id).to_owned()),
            host: signals.host(member_id),
            group_instance_id: member.join_response.group_instance_id.clone(),
            partitions: formed.then(|| {
                assignments
                    .get(member_id)
                    .and_then(|bytes| decode_assignment(bytes))
                    .unwrap_or_default()
            }),
            last_heartbeat: member.last_contact.map(epoch_ms),
            session_timeout_ms: u32::try_from(detail.session_timeout_ms).ok(),
            member_epoch: None,
            target: None,
        })
        .collect();
    let state = if members.is_empty() {
        GroupState::Empty
    } else {
        match ConsumerGroupState::from(detail) {
            ConsumerGroupState::PreparingRebalance => GroupState::PreparingRebalance,
            ConsumerGroupState::CompletingRebalance => GroupState::CompletingRebalance,
            ConsumerGroupState::Stable => GroupState::Stable,
            ConsumerGroupState::Empty => GroupState::Empty,
            ConsumerGroupState::Dead => GroupState::Dead,
            _ => GroupState::Unknown,
        }
    };
    GroupObservation {
        group: group.to_owned(),
        state,
        generation: Some(detail.generation_id),
        assignor: detail.state.protocol_name().filter(|p| !p.is_empty()),
        leader: detail.state.leader().filter(|l| !l.is_empty()),
        members,
        source: MembershipSource::Coordinator,
        left,
        assignment_epoch: None,
        protocol: Default::default(),
    }
}
