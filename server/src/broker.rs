//! The embedded broker: nisshi, in this process, with in-memory storage.
//!
//! It runs only when no cluster was named. grouplab assembles it from nisshi's public parts
//! rather than its `Broker`, for three reasons:
//!
//! - **Membership.** nisshi answers DescribeGroups with no members, but its storage holds every
//!   group's members, heartbeats and assignments. grouplab keeps the storage, wraps the group
//!   coordinator ([`ObservedCoordinator`]) so that every join, sync, heartbeat and leave is seen as
//!   it happens, and [`GroupWatch`] turns the stored groups into [`GroupObservation`]s.
//! - **Old clients.** nisshi 0.8.1 answers ApiVersions v3 with four tagged fields at their default
//!   values, which Apache Kafka leaves out; librdkafka before 2.2.0 (Debian's `kcat`) misreads them
//!   (librdkafka issue #4253, fixed by PR #4278) and fails with "Read underflow".
//!   [`KafkaApiVersions`] answers as Apache Kafka does. Drop it once nisshi stops sending them.
//! - **A quiet console.** nisshi's `Broker` prints a ready line and draws a spinner per
//!   connection; our own accept loop prints nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use grouplab_protocol::{EpochMicros, EpochMillis, GroupState, MembershipSource};
use nisshi_broker::coordinator::group::administrator::{Controller, GroupCoordinatorConfig};
use nisshi_broker::coordinator::group::{Coordinator, OffsetCommit};
use nisshi_sans_io::join_group_request::JoinGroupRequestProtocol;
use nisshi_sans_io::leave_group_request::MemberIdentity;
use nisshi_sans_io::offset_fetch_request::{OffsetFetchRequestGroup, OffsetFetchRequestTopic};
use nisshi_sans_io::sync_group_request::SyncGroupRequestAssignment;
use nisshi_sans_io::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, Body, ErrorCode, Frame, FrameInput,
    JoinGroupResponse,
};
use nisshi_service::{
    BytesFrameLayer, FrameRouteService, TcpBytesLayer, TcpContext, TcpContextLayer,
};
use nisshi_storage::{
    ArcDynStorage, BrokerRegistrationRequest, ConsumerGroupState, GroupDetail, GroupDetailResponse,
    Storage, StorageContainer,
};
use rama::extensions::Extensions;
use rama::service::BoxService;
use rama::tcp::TcpStream;
use rama::{Layer, Service};
use tokio::net::TcpListener;
use tokio::sync::{Notify, broadcast, watch};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, info, warn};
use url::Url;

use crate::membership::{GroupObservation, ObservedMember, client_id_of, decode_assignment};

/// The node id the embedded broker uses; a single-node cluster needs only one.
const NODE_ID: i32 = 1;
const CLUSTER_ID: &str = "grouplab";
/// How often the stored groups are read when nothing wakes the watcher: often enough to show a
/// member's session expiring within a fraction of a second.
const WATCH_TICK: Duration = Duration::from_millis(200);
/// The least time between two reads of the stored groups, so a burst of heartbeats costs one read.
const WATCH_GAP: Duration = Duration::from_millis(15);
/// How long a LeaveGroup is remembered, to tell a graceful departure from an expiry; also how
/// long a joining member's client id is kept before it appears in its group.
const LEAVE_MEMORY_MS: u64 = 120_000;
/// How often nisshi's storage sweeps expired data and transactions, as nisshi's own broker does.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(600);
const TRANSACTION_MAINTENANCE_INTERVAL: Duration = Duration::from_secs(10);

/// Why the embedded broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(
        "The address {addr} is already in use, so the embedded broker cannot listen there. Another Kafka broker may be running: stop it, start grouplab with --broker-addr 127.0.0.1:<another port>, or use that broker with --bootstrap-servers {addr}."
    )]
    AddressInUse { addr: SocketAddr },
    #[error("The embedded broker cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("The embedded broker could not start: {0}")]
    Start(String),
}

fn start_error(err: impl std::fmt::Display) -> BrokerError {
    BrokerError::Start(err.to_string())
}

/// A running embedded broker; dropping it stops the broker and closes every connection.
///
/// It can also be taken down and brought up again on the same address while grouplab runs
/// ([`EmbeddedBroker::take_down`], [`EmbeddedBroker::bring_up`]), as a broker restart: its
/// storage (topics, messages, committed offsets, groups) survives, its connections do not.
pub struct EmbeddedBroker {
    addr: SocketAddr,
    groups: GroupWatch,
    /// What serving needs again after an outage, and the task serving now, if any.
    /// A tokio Mutex: held across the bind when the broker comes back up.
    listener: tokio::sync::Mutex<Listener>,
    /// Whether it serves: `false` between [`EmbeddedBroker::take_down`] and `bring_up`.
    serving: watch::Sender<bool>,
    /// When it last came back up (epoch ms; 0 if it never went down).
    up_since_ms: Arc<AtomicU64>,
    watcher: JoinHandle<()>,
}

struct Listener {
    route: FrameRouteService<nisshi_broker::Error>,
    storage: ArcDynStorage,
    server: Option<JoinHandle<()>>,
}

impl EmbeddedBroker {
    /// Starts the broker listening on `addr`.
    ///
    /// `initial_rebalance_delay` is how long an empty group waits for more members before its
    /// first assignment, as Kafka's `group.initial.rebalance.delay.ms`.
    pub async fn start(
        addr: SocketAddr,
        initial_rebalance_delay: Duration,
    ) -> Result<Self, BrokerError> {
        let listener = bind(addr).await?;
        let addr = listener.local_addr().map_err(start_error)?;
        let advertised = Url::parse(&format!("tcp://{addr}")).map_err(start_error)?;

        let mut storage = StorageContainer::builder();
        storage.with_factory(Arc::new(nisshi_storage_dynostore::MemoryEngineFactory));
        let storage: ArcDynStorage = storage
            .cluster_id(CLUSTER_ID)
            .node_id(NODE_ID)
            .advertised_listener(advertised)
            .storage(Url::parse("memory://").expect("a constant URL parses"))
            .silent(true)
            .build()
            .await
            .map_err(start_error)?;
        storage
            .register_broker(BrokerRegistrationRequest {
                broker_id: NODE_ID,
                cluster_id: CLUSTER_ID.to_owned(),
                incarnation_id: uuid::Uuid::new_v4(),
                rack: None,
            })
            .await
            .map_err(start_error)?;

        let groups = GroupWatch::new();
        let signals = Arc::new(Signals {
            changed: Notify::new(),
            touched: Mutex::default(),
            client_ids: Mutex::default(),
            leaves: Mutex::default(),
            refusals: groups.refusals.clone(),
        });
        let coordinator = ObservedCoordinator {
            storage: storage.clone(),
            inner: Controller::new(
                storage.clone(),
                GroupCoordinatorConfig {
                    initial_rebalance_delay,
                    ..GroupCoordinatorConfig::default()
                },
            ),
            signals: Arc::clone(&signals),
        };
        let route = routes(storage.clone(), coordinator).map_err(start_error)?;
        // The group watcher neither reads nor expires anything while the broker is down, and
        // gives every member a full session timeout after it returns, as a Kafka coordinator
        // does after it loads its groups.
        let serving = watch::channel(true).0;
        let up_since_ms = Arc::new(AtomicU64::new(0));

        let watcher = tokio::spawn(watch_groups(
            storage.clone(),
            Arc::clone(&signals),
            groups.clone(),
            serving.subscribe(),
            Arc::clone(&up_since_ms),
        ));
        let server = tokio::spawn(serve(listener, route.clone(), storage.clone()));
        info!(%addr, ?initial_rebalance_delay, "embedded broker started");
        Ok(Self {
            addr,
            groups,
            listener: tokio::sync::Mutex::new(Listener {
                route,
                storage,
                server: Some(server),
            }),
            serving,
            up_since_ms,
            watcher,
        })
    }

    /// The address clients connect to.
    pub fn bootstrap_servers(&self) -> String {
        self.addr.to_string()
    }

    /// Every group's membership, as the coordinator changes it.
    pub fn groups(&self) -> GroupWatch {
        self.groups.clone()
    }

    /// Whether the broker is serving, as it changes: `false` after [`EmbeddedBroker::take_down`].
    pub fn serving(&self) -> watch::Receiver<bool> {
        self.serving.subscribe()
    }

    /// Stops serving, as a broker that goes away: the port closes and every client connection
    /// drops, so clients see connection failures. Returns `false` if it was already down.
    pub async fn take_down(&self) -> bool {
        let mut listener = self.listener.lock().await;
        let Some(server) = listener.server.take() else {
            return false;
        };
        self.serving.send_replace(false);
        server.abort();
        // Wait until the task is gone, so its listener and connections are closed.
        let _ = server.await;
        warn!(addr = %self.addr, "the embedded broker was taken down from a lab page");
        true
    }

    /// Serves again on the same address, with everything it stored. Returns `false` if it was
    /// already up.
    pub async fn bring_up(&self) -> Result<bool, BrokerError> {
        let mut listener = self.listener.lock().await;
        if listener.server.is_some() {
            return Ok(false);
        }
        let socket = bind(self.addr).await?;
        listener.server = Some(tokio::spawn(serve(
            socket,
            listener.route.clone(),
            listener.storage.clone(),
        )));
        self.up_since_ms
            .store(epoch_ms(SystemTime::now()), Ordering::SeqCst);
        self.serving.send_replace(true);
        info!(addr = %self.addr, "the embedded broker is back up");
        Ok(true)
    }

    /// Stops the broker for good: the server calls this last, after the sessions ended.
    pub async fn shut_down(&self) {
        let mut listener = self.listener.lock().await;
        if let Some(server) = listener.server.take() {
            server.abort();
        }
        self.watcher.abort();
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        if let Some(server) = self.listener.get_mut().server.take() {
            server.abort();
        }
        self.watcher.abort();
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, BrokerError> {
    TcpListener::bind(addr).await.map_err(|source| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            BrokerError::AddressInUse { addr }
        } else {
            BrokerError::Listen { addr, source }
        }
    })
}

/// nisshi's request routes, with ApiVersions answered as Apache Kafka answers it.
fn routes(
    storage: ArcDynStorage,
    coordinator: ObservedCoordinator,
) -> Result<FrameRouteService<nisshi_broker::Error>, nisshi_broker::Error> {
    use nisshi_broker::service::{auth, coordinator as coordination, storage as stored};
    let builder = FrameRouteService::<nisshi_broker::Error>::builder();
    let builder = stored::services(builder, storage)?;
    let builder = coordination::services(builder, coordinator)?;
    let nisshi = auth::services(builder)?.build()?;
    let routes: BTreeMap<i16, BoxService<FrameInput, Frame, nisshi_broker::Error>> = nisshi
        .api_keys()
        .map(|key| {
            let service = if key == ApiVersionsRequest::KEY {
                KafkaApiVersions {
                    nisshi: nisshi.clone(),
                }
                .boxed()
            } else {
                nisshi.clone().boxed()
            };
            (key, service)
        })
        .collect();
    Ok(FrameRouteService::new(Arc::new(routes)))
}

/// Accepts connections and serves each in a task of its own until the broker is dropped.
async fn serve(
    listener: TcpListener,
    route: FrameRouteService<nisshi_broker::Error>,
    storage: ArcDynStorage,
) {
    let mut connections = JoinSet::new();
    let mut maintenance = tokio::time::interval(MAINTENANCE_INTERVAL);
    let mut transactions = tokio::time::interval(TRANSACTION_MAINTENANCE_INTERVAL);
    maintenance.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    transactions.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        // Out of file descriptors, usually: back off instead of spinning.
                        warn!(%err, "the embedded broker could not accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let service = (
                    TcpContextLayer::new(TcpContext::default().cluster_id(Some(CLUSTER_ID.into()))),
                    TcpBytesLayer,
                    BytesFrameLayer::default(),
                )
                    .into_layer(route.clone());
                connections.spawn(async move {
                    let stream = TcpStream::from_tokio_tcp_stream(stream, Extensions::default());
                    if let Err(err) = service.serve(stream).await {
                        debug!(%peer, ?err, "a broker connection ended");
                    }
                });
            }
            _ = maintenance.tick() => {
                if let Err(err) = storage.maintain(SystemTime::now()).await {
                    debug!(?err, "storage maintenance failed");
                }
            }
            _ = transactions.tick() => {
                if let Err(err) = storage.maintain_transactions(SystemTime::now()).await {
                    debug!(?err, "transaction maintenance failed");
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// ApiVersions as Apache Kafka answers it: nisshi's answer without the tagged fields that hold
/// only their default values (SupportedFeatures, FinalizedFeaturesEpoch, FinalizedFeatures,
/// ZkMigrationReady), which librdkafka before 2.2.0 cannot skip.
#[derive(Clone, Debug)]
struct KafkaApiVersions {
    nisshi: FrameRouteService<nisshi_broker::Error>,
}

impl Service<FrameInput> for KafkaApiVersions {
    type Output = Frame;
    type Error = nisshi_broker::Error;

    async fn serve(&self, request: FrameInput) -> Result<Frame, Self::Error> {
        let mut frame = self.nisshi.serve(request).await?;
        if let Ok(response) = ApiVersionsResponse::try_from(frame.body.clone()) {
            frame.body = response
                .supported_features(None)
                .finalized_features_epoch(None)
                .finalized_features(None)
                .zk_migration_ready(None)
                .into();
        }
        Ok(frame)
    }
}

/// What the coordinator wrapper tells the group watcher.
#[derive(Debug)]
struct Signals {
    /// Woken by every coordinator call that may change a group.
    changed: Notify,
    /// The groups those calls named since the watcher last looked, with when the first of those
    /// calls came: only these are read again, so a heartbeat costs one group's read, not every
    /// group's.
    touched: Mutex<BTreeMap<String, EpochMicros>>,
    /// The client id each member joined with, and when; the stored group does not keep it.
    /// A std Mutex is fine here and below: held for a map operation, never across an await.
    client_ids: Mutex<HashMap<String, (String, EpochMillis)>>,
    /// Per group, the members that sent LeaveGroup and when.
    leaves: Mutex<HashMap<String, Vec<(String, EpochMillis)>>>,
    /// Where refused joins are told.
    refusals: broadcast::Sender<Refusal>,
}

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
    /// Marks a group as changed and wakes the watcher.
    fn touch(&self, group: &str) {
        if let Ok(mut touched) = self.touched.lock()
            && !touched.contains_key(group)
        {
            touched.insert(group.to_owned(), crate::session::now_us());
        }
        self.changed.notify_one();
    }

    fn take_touched(&self) -> BTreeMap<String, EpochMicros> {
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

    fn leaves(&self, group: &str) -> Vec<(String, EpochMillis)> {
        self.leaves
            .lock()
            .map(|leaves| leaves.get(group).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    fn client_id(&self, member_id: &str) -> Option<String> {
        Some(self.client_ids.lock().ok()?.get(member_id)?.0.clone())
    }

    fn note_client_id(&self, member_id: &str, client_id: &str) {
        if let Ok(mut ids) = self.client_ids.lock() {
            ids.insert(
                member_id.to_owned(),
                (client_id.to_owned(), epoch_ms(SystemTime::now())),
            );
        }
    }

    /// Forgets what is no longer needed, so a server that runs for a whole course stays small:
    /// client ids of members no group has (after a grace period for members still joining),
    /// and LeaveGroups older than [`LEAVE_MEMORY_MS`].
    fn prune(&self, members: &BTreeSet<&str>, now: EpochMillis) {
        if let Ok(mut ids) = self.client_ids.lock() {
            ids.retain(|id, (_, at)| {
                members.contains(id.as_str()) || now.saturating_sub(*at) < LEAVE_MEMORY_MS
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
/// the [`GroupWatch`] as it happens.
#[derive(Clone, Debug)]
struct ObservedCoordinator {
    inner: Controller<ArcDynStorage>,
    storage: ArcDynStorage,
    signals: Arc<Signals>,
}

impl ObservedCoordinator {
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

    async fn offset_commit(&self, detail: OffsetCommit<'_>) -> nisshi_broker::Result<Body> {
        self.inner.offset_commit(detail).await
    }

    async fn offset_fetch(
        &self,
        group_id: Option<&str>,
        topics: Option<&[OffsetFetchRequestTopic]>,
        groups: Option<&[OffsetFetchRequestGroup]>,
        require_stable: Option<bool>,
    ) -> nisshi_broker::Result<Body> {
        self.inner
            .offset_fetch(group_id, topics, groups, require_stable)
            .await
    }

    async fn delete_groups(&self, group_ids: &[String]) -> nisshi_broker::Result<Body> {
        let body = self.inner.delete_groups(group_ids).await;
        for group in group_ids {
            self.signals.touch(group);
        }
        body
    }

    async fn list_groups(&self, states_filter: Option<&[String]>) -> nisshi_broker::Result<Body> {
        self.inner.list_groups(states_filter).await
    }

    async fn describe_groups(
        &self,
        group_ids: Option<&[String]>,
        include_authorized_operations: bool,
    ) -> nisshi_broker::Result<Body> {
        self.inner
            .describe_groups(group_ids, include_authorized_operations)
            .await
    }
}

/// The latest observation of every group on the embedded broker, and a feed of which changed.
#[derive(Clone)]
pub struct GroupWatch {
    /// A std Mutex is fine: held to read or replace one entry, never across an await.
    latest: Arc<Mutex<HashMap<String, Arc<GroupObservation>>>>,
    changes: broadcast::Sender<GroupChange>,
    refusals: broadcast::Sender<Refusal>,
}

impl GroupWatch {
    fn new() -> Self {
        Self {
            latest: Arc::default(),
            changes: broadcast::channel(1024).0,
            refusals: broadcast::channel(64).0,
        }
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
    fn publish(&self, observation: GroupObservation, decided_at_us: EpochMicros) {
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
async fn watch_groups(
    storage: ArcDynStorage,
    signals: Arc<Signals>,
    watch: GroupWatch,
    serving: watch::Receiver<bool>,
    up_since_ms: Arc<AtomicU64>,
) {
    let mut tick = tokio::time::interval(WATCH_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
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
        let touched = signals.take_touched();
        if every_group {
            read_every_group(&storage, &signals, &watch, up_since).await;
        } else if !touched.is_empty() {
            read_groups(&storage, &signals, &watch, up_since, &touched).await;
        }
        tokio::time::sleep(WATCH_GAP).await;
    }
}

/// Reads every stored group, forgets groups that are gone, and prunes what the signals remember.
async fn read_every_group(
    storage: &ArcDynStorage,
    signals: &Signals,
    watch: &GroupWatch,
    up_since: EpochMillis,
) {
    let details = match storage.list_groups().await {
        Ok(details) => details,
        Err(err) => {
            debug!(?err, "the stored groups could not be read");
            return;
        }
    };
    let now = SystemTime::now();
    let read_at_us = crate::session::now_us();
    let mut seen = Vec::with_capacity(details.len());
    let mut members = BTreeSet::new();
    for named in &details {
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
    for gone in watch.known().into_iter().filter(|g| !seen.contains(g)) {
        watch.publish(
            GroupObservation::empty(&gone, MembershipSource::Coordinator),
            read_at_us,
        );
    }
}

/// Reads only the named groups: the ones a coordinator call just touched.
async fn read_groups(
    storage: &ArcDynStorage,
    signals: &Signals,
    watch: &GroupWatch,
    up_since: EpochMillis,
    groups: &BTreeMap<String, EpochMicros>,
) {
    let names: Vec<String> = groups.keys().cloned().collect();
    let details = match storage.describe_groups(Some(&names), false).await {
        Ok(details) => details,
        Err(err) => {
            debug!(?err, "the touched groups could not be read");
            return;
        }
    };
    let now = SystemTime::now();
    for named in &details {
        let decided_at_us = groups
            .get(&named.name)
            .copied()
            .unwrap_or_else(crate::session::now_us);
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
            host: None,
            group_instance_id: member.join_response.group_instance_id.clone(),
            partitions: formed.then(|| {
                assignments
                    .get(member_id)
                    .and_then(|bytes| decode_assignment(bytes))
                    .unwrap_or_default()
            }),
            last_heartbeat: member.last_contact.map(epoch_ms),
            session_timeout_ms: u32::try_from(detail.session_timeout_ms).ok(),
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
    }
}

fn epoch_ms(at: SystemTime) -> EpochMillis {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as EpochMillis)
}
