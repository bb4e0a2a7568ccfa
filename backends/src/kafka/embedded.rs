//! The embedded broker: nisshi, in this process, with in-memory storage.
//!
//! It runs only when no cluster was named. grouplab assembles it from nisshi's public parts
//! rather than its `Broker`, for three reasons:
//!
//! - **Membership.** nisshi answers DescribeGroups with no members, but its storage holds every
//!   group's members, heartbeats and assignments. grouplab keeps the storage, wraps the group
//!   coordinator ([`ObservedCoordinator`]) so that every join, sync, heartbeat and leave is seen as
//!   it happens, and [`GroupWatch`] turns the stored groups into observations.
//! - **Old clients.** nisshi 0.8.1 answers ApiVersions v3 with four tagged fields at their default
//!   values, which Apache Kafka leaves out; librdkafka before 2.2.0 (Debian's `kcat`) misreads them
//!   (librdkafka issue #4253, fixed by PR #4278) and fails with "Read underflow".
//!   [`KafkaApiVersions`] answers as Apache Kafka does. Drop it once nisshi stops sending them.
//! - **A quiet console.** nisshi's `Broker` prints a ready line and draws a spinner per
//!   connection; our own accept loop prints nothing.
//!
//! The broker serves its connections on a tokio runtime of its own (`broker_runtime`, shared by
//! every embedded broker in the process), so that a burst of requests (a whole class producing
//! at once) does not hold up the server's sessions and the pages' updates, which run on the
//! server's runtime.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use nisshi_broker::coordinator::group::administrator::GroupCoordinatorConfig;
use nisshi_sans_io::api_versions_response::ApiVersion;
use nisshi_sans_io::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, ConsumerGroupDescribeRequest,
    CreatePartitionsRequest, DescribeClusterRequest, EndTxnRequest, FetchRequest,
    FindCoordinatorRequest, Frame, FrameInput, JoinGroupRequest, MetadataRequest, ProduceRequest,
};
use nisshi_service::{FrameRouteService, TcpBytesLayer, TcpContext, TcpContextLayer};
use nisshi_storage::{ArcDynStorage, BrokerRegistrationRequest, Storage, StorageContainer};
use rama::extensions::Extensions;
use rama::service::BoxService;
use rama::tcp::TcpStream;
use rama::{Layer, Service};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, info, warn};
use url::Url;

use super::advertised::{AdvertisedRoute, DialedAddr};
use super::codec::InlineCodecLayer;
use super::consumer_groups::{self, ConsumerGroupLayer, ConsumerGroups};
use super::coordinator::{JoinGroupRoute, ObservedCoordinator, PeerAddr, Signals};
use super::describe::ConsumerGroupDescribeRoute;
use super::fetch::{EndTxnRoute, FetchRoute, FetchWakes, ProduceRoute};
use super::group_watch::{GroupWatch, watch_groups};
use super::partitions::{CreatePartitionsRoute, GrowableTopics};
use crate::clock::epoch_ms;

/// The node id the embedded broker uses; a single-node cluster needs only one.
const NODE_ID: i32 = 1;
const CLUSTER_ID: &str = "grouplab";
/// How often nisshi's storage sweeps expired data and transactions, as nisshi's own broker does.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(600);
const TRANSACTION_MAINTENANCE_INTERVAL: Duration = Duration::from_secs(10);
/// The consumer group protocol's group settings. The session is the one grouplab's instances
/// use under the classic protocol, and the heartbeat interval too, so that a lab compares the
/// protocols, not their timings (Kafka's defaults are 45 s and 5 s).
const CONSUMER_GROUP_SETTINGS: consumer_groups::Settings = consumer_groups::Settings {
    session_timeout_ms: 10_000,
    heartbeat_interval_ms: 1_000,
    // Kafka allows any number; a bound keeps one client from growing a group without end.
    max_size: 256,
};

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
    /// Fetches waiting for data.
    wakes: Arc<FetchWakes>,
    /// What serving needs again after an outage, and the task serving now, if any.
    /// A tokio Mutex: held across the bind when the broker comes back up.
    listener: tokio::sync::Mutex<Listener>,
    /// Whether it serves: `false` between [`EmbeddedBroker::take_down`] and `bring_up`.
    serving: watch::Sender<bool>,
    /// When it last came back up (epoch ms; 0 if it never went down).
    up_since_ms: Arc<AtomicU64>,
    watcher: JoinHandle<()>,
    /// Fences consumer-protocol members whose session ended.
    sessions: JoinHandle<()>,
}

/// How many threads serve the embedded brokers' connections: as many as a class's machine has
/// cores (2 on ours), beside the server's own runtime.
const BROKER_THREADS: usize = 2;

/// The runtime every embedded broker in this process (one per learner in a class) serves its
/// connections on, built at the first broker's start and kept until the process ends.
fn broker_runtime() -> Result<&'static tokio::runtime::Runtime, BrokerError> {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    let built = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(BROKER_THREADS)
        .thread_name("grouplab-broker")
        .enable_all()
        .build()
        .map_err(start_error)?;
    if let Err(lost) = RUNTIME.set(built) {
        // Another broker built one first. Dropping a runtime waits for its threads, which an
        // async context forbids.
        lost.shutdown_background();
    }
    Ok(RUNTIME.get().expect("set above"))
}

struct Listener {
    route: FrameRouteService<nisshi_broker::Error>,
    storage: ArcDynStorage,
    consumer_groups: Arc<ConsumerGroups>,
    server: Option<JoinHandle<()>>,
}

/// Serves `listener` (bound on the caller's runtime) on the brokers' runtime.
fn serve_on_broker_runtime(
    listener: TcpListener,
    route: FrameRouteService<nisshi_broker::Error>,
    storage: ArcDynStorage,
    consumer_groups: Arc<ConsumerGroups>,
) -> Result<JoinHandle<()>, BrokerError> {
    // Moved to the brokers' runtime's reactor, so that its connections are polled there.
    let listener = listener.into_std().map_err(start_error)?;
    Ok(broker_runtime()?.spawn(async move {
        match TcpListener::from_std(listener) {
            Ok(listener) => serve(listener, route, storage, consumer_groups).await,
            Err(err) => warn!(%err, "the embedded broker could not listen"),
        }
    }))
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
        Self::start_advertising(addr, initial_rebalance_delay, None).await
    }

    /// Starts the broker listening on `addr`, telling clients it is at `advertised_host` (on
    /// the port it listens on) unless they dialled 127.0.0.1; without one, each client is told
    /// the address it dialled (see `advertised.rs`).
    pub async fn start_advertising(
        addr: SocketAddr,
        initial_rebalance_delay: Duration,
        advertised_host: Option<String>,
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
        // Every part of the broker reads topics through this wrapper, so that they can grow.
        let topics = Arc::new(GrowableTopics::new(storage));
        let storage: ArcDynStorage = topics.clone();

        let groups = GroupWatch::new();
        let signals = Arc::new(Signals::new(groups.refusals_sender()));
        let consumer_groups = Arc::new(ConsumerGroups::new(
            CONSUMER_GROUP_SETTINGS,
            storage.clone(),
            groups.clone(),
        ));
        let coordinator = ObservedCoordinator::new(
            storage.clone(),
            GroupCoordinatorConfig {
                initial_rebalance_delay,
                ..GroupCoordinatorConfig::default()
            },
            Arc::clone(&signals),
            Arc::clone(&consumer_groups),
        );
        let wakes = Arc::new(FetchWakes::default());
        let route = routes(
            storage.clone(),
            coordinator,
            Arc::clone(&signals),
            Arc::clone(&wakes),
            topics,
            Arc::clone(&consumer_groups),
            advertised_host,
        )
        .map_err(start_error)?;
        // The group watcher neither reads nor expires anything while the broker is down, and
        // gives every member a full session timeout after it returns, as a Kafka coordinator
        // does after it loads its groups.
        let serving = watch::channel(true).0;
        let up_since_ms = Arc::new(AtomicU64::new(0));

        let watcher = tokio::spawn(watch_groups(
            storage.clone(),
            Arc::clone(&signals),
            groups.clone(),
            Arc::clone(&consumer_groups),
            serving.subscribe(),
            Arc::clone(&up_since_ms),
        ));
        let sessions =
            tokio::spawn(Arc::clone(&consumer_groups).expire_sessions(serving.subscribe()));
        let server = serve_on_broker_runtime(
            listener,
            route.clone(),
            storage.clone(),
            Arc::clone(&consumer_groups),
        )?;
        info!(%addr, ?initial_rebalance_delay, "embedded broker started");
        Ok(Self {
            addr,
            groups,
            wakes,
            listener: tokio::sync::Mutex::new(Listener {
                route,
                storage,
                consumer_groups,
                server: Some(server),
            }),
            serving,
            up_since_ms,
            watcher,
            sessions,
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

    /// How many consumers' fetches wait for data now (woken by the next produce to their
    /// partitions, or their `fetch.wait.max.ms`).
    pub fn parked_fetches(&self) -> usize {
        self.wakes.parked()
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
        listener.server = Some(serve_on_broker_runtime(
            socket,
            listener.route.clone(),
            listener.storage.clone(),
            Arc::clone(&listener.consumer_groups),
        )?);
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
        self.sessions.abort();
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        if let Some(server) = self.listener.get_mut().server.take() {
            server.abort();
        }
        self.watcher.abort();
        self.sessions.abort();
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

/// nisshi's request routes, with ApiVersions answered as Apache Kafka answers it, fetches that
/// wait on produces (`fetch.rs`), JoinGroup noting each member's host, groups described with
/// their members (`describe.rs`), CreatePartitions (`partitions.rs`), and the broker's address
/// named as each client reaches it (`advertised.rs`). ConsumerGroupHeartbeat never gets here:
/// [`ConsumerGroupLayer`] answers it before nisshi's codec.
fn routes(
    storage: ArcDynStorage,
    coordinator: ObservedCoordinator,
    signals: Arc<Signals>,
    wakes: Arc<FetchWakes>,
    topics: Arc<GrowableTopics>,
    consumer_groups: Arc<ConsumerGroups>,
    advertised_host: Option<String>,
) -> Result<FrameRouteService<nisshi_broker::Error>, nisshi_broker::Error> {
    use nisshi_broker::service::{auth, coordinator as coordination, storage as stored};
    let builder = FrameRouteService::<nisshi_broker::Error>::builder();
    let builder = stored::services(builder, storage.clone())?;
    // Registered with nisshi's, so that ApiVersions advertises it.
    let builder = builder.with_route(
        CreatePartitionsRequest::KEY,
        CreatePartitionsRoute { topics }.boxed(),
    )?;
    let builder = coordination::services(builder, coordinator)?;
    let nisshi = auth::services(builder)?.build()?;
    let routes: BTreeMap<i16, BoxService<FrameInput, Frame, nisshi_broker::Error>> = nisshi
        .api_keys()
        .map(|key| {
            let nisshi = nisshi.clone();
            let wakes = Arc::clone(&wakes);
            let service = match key {
                ApiVersionsRequest::KEY => KafkaApiVersions { nisshi }.boxed(),
                FetchRequest::KEY => FetchRoute {
                    nisshi,
                    storage: storage.clone(),
                    wakes,
                }
                .boxed(),
                ProduceRequest::KEY => ProduceRoute { nisshi, wakes }.boxed(),
                EndTxnRequest::KEY => EndTxnRoute { nisshi, wakes }.boxed(),
                ConsumerGroupDescribeRequest::KEY => ConsumerGroupDescribeRoute {
                    nisshi,
                    groups: Arc::clone(&consumer_groups),
                }
                .boxed(),
                JoinGroupRequest::KEY => JoinGroupRoute {
                    nisshi,
                    signals: Arc::clone(&signals),
                }
                .boxed(),
                MetadataRequest::KEY
                | FindCoordinatorRequest::KEY
                | DescribeClusterRequest::KEY => AdvertisedRoute {
                    nisshi,
                    configured: advertised_host.clone(),
                }
                .boxed(),
                _ => nisshi.boxed(),
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
    consumer_groups: Arc<ConsumerGroups>,
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
                    ConsumerGroupLayer { groups: Arc::clone(&consumer_groups) },
                    InlineCodecLayer,
                )
                    .into_layer(route.clone());
                connections.spawn(async move {
                    // Kept with the connection, for the routes that name a member's host.
                    let extensions = Extensions::default();
                    extensions.insert(PeerAddr(peer));
                    if let Ok(dialed) = stream.local_addr() {
                        extensions.insert(DialedAddr(dialed));
                    }
                    let stream = TcpStream::from_tokio_tcp_stream(stream, extensions);
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
/// ZkMigrationReady), which librdkafka before 2.2.0 cannot skip, and with ConsumerGroupHeartbeat,
/// which grouplab answers itself (`consumer_groups`).
#[derive(Clone, Debug)]
struct KafkaApiVersions {
    nisshi: FrameRouteService<nisshi_broker::Error>,
}

impl Service<FrameInput> for KafkaApiVersions {
    type Output = Frame;
    type Error = nisshi_broker::Error;

    async fn serve(&self, request: FrameInput) -> Result<Frame, Self::Error> {
        let mut frame = self.nisshi.serve(request).await?;
        if let Ok(mut response) = ApiVersionsResponse::try_from(frame.body.clone()) {
            if response.error_code == 0
                && let Some(keys) = response.api_keys.as_mut()
            {
                keys.retain(|k| k.api_key != consumer_groups::HEARTBEAT_KEY);
                keys.push(
                    ApiVersion::default()
                        .api_key(consumer_groups::HEARTBEAT_KEY)
                        .min_version(*consumer_groups::HEARTBEAT_VERSIONS.start())
                        .max_version(*consumer_groups::HEARTBEAT_VERSIONS.end()),
                );
                keys.sort_by_key(|k| k.api_key);
            }
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
