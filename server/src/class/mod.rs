//! A class on one server: learners who join with a code, and a world of labs for each of them.
//!
//! A *world* is one [`Sessions`]: every lab's session for one namespace, with the brokers those
//! sessions talk to. The server's own world (namespace `default`) is the only one without
//! `--class`, and the instructor's in a class. Each learner's world is started when they first
//! open a page: an embedded broker of their own on their port from `--learner-ports` (so a lab's
//! topic and group names stay exactly as written, and a learner's script, given their address,
//! works on their broker alone), a `redis-server` of their own with their password, a RabbitMQ
//! virtual host and user of their own on the server's one `rabbitmq-server`, their progress rows,
//! and their instances under the supervisor's per-learner cap.
//!
//! Who a request is comes only from its cookie ([`Who`]); no address or frame names a learner.
//! The brokers ask nobody who they are: a learner's broker is theirs in that grouplab gives
//! nobody else its address, not because it would refuse anyone who found it.

pub mod board;
pub mod codes;
pub mod store;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use grouplab_protocol::BrokerHealth;
use tokio::sync::{OnceCell, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use self::board::Board;
pub use self::store::{ClassStore, JoinError, Learner};
use crate::config::PortRange;
use crate::lab::catalog::{LabCatalog, Reloaded};
use crate::lab::progress::ProgressStore;
use crate::session::{
    Allowance, AllowanceLimits, CrashBook, PulseSender, SessionDeps, SessionHandle, Sessions,
};
use crate::supervisor::SupervisorHandle;
use grouplab_backends::kafka::{Cluster, EmbeddedBroker};
use grouplab_backends::rabbitmq::Rabbit;
use grouplab_backends::redis::{Redis, RedisSource};

/// How long a learner's own broker may take to answer its first request.
const LEARNER_BROKER_READY: Duration = Duration::from_secs(20);

/// Joins and rejoins allowed from one address: a burst of the class's size and this many more
/// (a whole room behind one NAT joins at once, with a few typing mistakes), then one per
/// [`JOIN_REFILL`], which leaves guessing a six-letter class code (30 bits) or a rejoin code
/// (50 bits) hopeless.
const JOIN_SPARE: u32 = 20;
const JOIN_REFILL: Duration = Duration::from_secs(1);

/// Who sent a request, from its cookie alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Who {
    /// The server's own learner (no class), or the instructor (the access link) in a class.
    Owner,
    Learner(Learner),
}

/// The class a server serves (`--class`).
pub struct Class {
    pub store: ClassStore,
    pub code: String,
    /// The instructor's dashboard.
    pub board: Board,
    joins: DefaultKeyedRateLimiter<IpAddr>,
    ports: PortRange,
    max_learners: usize,
}

impl Class {
    pub fn new(
        store: ClassStore,
        code: String,
        ports: PortRange,
        max_learners: usize,
        board: Board,
    ) -> Self {
        let quota = Quota::with_period(JOIN_REFILL)
            .expect("the refill period is not zero")
            .allow_burst(
                NonZeroU32::new(
                    u32::try_from(max_learners)
                        .unwrap_or(u32::MAX)
                        .saturating_add(JOIN_SPARE),
                )
                .expect("the burst is not zero"),
            );
        Self {
            store,
            code,
            board,
            joins: RateLimiter::keyed(quota),
            ports,
            max_learners,
        }
    }

    pub fn name(&self) -> &str {
        self.store.class()
    }

    /// Whether another join or rejoin from `from` may be tried now.
    pub fn may_try_joining(&self, from: IpAddr) -> bool {
        self.joins.check_key(&from).is_ok()
    }

    /// Whether `typed` is this class's code (however it was typed).
    pub fn is_code(&self, typed: &str) -> bool {
        codes::normalise(typed) == self.code
    }

    pub async fn join(&self, name: &str, now: u64) -> Result<(Learner, String), JoinError> {
        self.store
            .join(name, self.ports, self.max_learners, now)
            .await
    }
}

/// What a learner's world is made from, besides their own brokers.
pub struct WorldParts {
    pub supervisor: SupervisorHandle,
    pub progress: ProgressStore,
    pub catalog: Arc<LabCatalog>,
    /// The address learners' brokers listen on (the embedded broker's; loopback unless `--public`).
    pub broker_ip: IpAddr,
    pub advertised_host: Option<String>,
    pub initial_rebalance_delay: Duration,
    pub redis_program: PathBuf,
    /// The named cluster every learner shares, with its health: each learner's topics and groups
    /// carry their prefix there (`{class}.{learner}.`). `None` with an embedded broker each.
    pub shared_cluster: Option<(Cluster, watch::Receiver<BrokerHealth>)>,
    /// The class's name, the first part of a learner's prefix on a shared cluster.
    pub class: String,
    /// The server's RabbitMQ, on which each learner gets a virtual host and a user.
    pub rabbit: Rabbit,
    pub data_dir: PathBuf,
    /// What each learner's labs may create and produce together.
    pub allowance: AllowanceLimits,
    /// Where learners' labs send their pulses for the instructor's dashboard.
    pub pulses: PulseSender,
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
}

/// A learner's world: their sessions, and the brokers grouplab started for them.
struct LearnerWorld {
    sessions: Arc<Sessions>,
    /// Cancelled when the learner is shut out: their pages' sockets close, and their sessions
    /// and health monitor end.
    ended: CancellationToken,
    /// Their own embedded broker; `None` on a shared cluster.
    broker: Option<Arc<EmbeddedBroker>>,
    redis: Redis,
    /// Their virtual host on the class's RabbitMQ.
    rabbit: Rabbit,
}

/// Every world on the server.
pub struct Worlds {
    own: Arc<Sessions>,
    /// Never cancelled: the owner is never shut out.
    own_ended: CancellationToken,
    parts: Option<WorldParts>,
    /// A std Mutex is fine: it guards a map lookup or insert, never held across an await.
    learners: Mutex<HashMap<String, Arc<OnceCell<LearnerWorld>>>>,
    /// Learners shut out since the server started: their worlds are never started again.
    shut: Mutex<std::collections::HashSet<String>>,
}

impl Worlds {
    /// The server's own world alone (no class).
    pub fn single(own: Arc<Sessions>) -> Self {
        Self {
            own,
            own_ended: CancellationToken::new(),
            parts: None,
            learners: Mutex::new(HashMap::new()),
            shut: Mutex::new(std::collections::HashSet::new()),
        }
    }

    /// The server's own world, and learners' worlds made from `parts` as they come.
    pub fn class(own: Arc<Sessions>, parts: WorldParts) -> Self {
        Self {
            own,
            own_ended: CancellationToken::new(),
            parts: Some(parts),
            learners: Mutex::new(HashMap::new()),
            shut: Mutex::new(std::collections::HashSet::new()),
        }
    }

    pub fn catalog(&self) -> &Arc<LabCatalog> {
        self.own.catalog()
    }

    pub fn progress(&self) -> &ProgressStore {
        self.own.progress()
    }

    /// The world of `who`, started if it is a learner's that has not run since the server
    /// started, with the token that ends its pages' sockets.
    pub async fn world(&self, who: &Who) -> Result<(Arc<Sessions>, CancellationToken), String> {
        let learner = match who {
            Who::Owner => return Ok((Arc::clone(&self.own), self.own_ended.clone())),
            Who::Learner(learner) => learner,
        };
        let Some(parts) = &self.parts else {
            return Err("This grouplab serves no class.".to_owned());
        };
        let cell = {
            let mut learners = self
                .learners
                .lock()
                .map_err(|_| "grouplab's list of learners is unusable".to_owned())?;
            Arc::clone(learners.entry(learner.id.clone()).or_default())
        };
        let world = cell.get_or_try_init(|| start_world(parts, learner)).await?;
        // Shut out while this request was on its way, or while the world was starting.
        if self.is_shut(&learner.id) {
            stop_world(parts, &learner.id, world).await;
            return Err("You are no longer in this class.".to_owned());
        }
        Ok((Arc::clone(&world.sessions), world.ended.clone()))
    }

    fn is_shut(&self, learner: &str) -> bool {
        self.shut.lock().map_or(true, |shut| shut.contains(learner))
    }

    /// Ends a learner's world once they are shut out: it is never started again, their pages'
    /// sockets close, their sessions end, their instances stop, and their own broker and Redis
    /// stop (what they stored goes with them).
    pub async fn shut_out(&self, learner: &str) {
        let Some(parts) = &self.parts else {
            return;
        };
        if let Ok(mut shut) = self.shut.lock() {
            shut.insert(learner.to_owned());
        }
        let cell = match self.learners.lock() {
            Ok(mut learners) => learners.remove(learner),
            Err(_) => None,
        };
        match cell.as_deref().and_then(OnceCell::get) {
            Some(world) => stop_world(parts, learner, world).await,
            // Never started, or starting: `world` stops it when it is ready.
            None => {
                if let Err(err) = parts.supervisor.stop_learner(learner).await {
                    warn!(%learner, %err, "a shut-out learner's instances could not be stopped");
                }
            }
        }
    }

    /// Tells every world's running session of a lab that its files were read again.
    pub fn reloaded(&self, lab_id: &str, outcome: &Reloaded) {
        self.own.reloaded(lab_id, outcome);
        for sessions in self.started().into_iter().map(|world| world.0) {
            sessions.reloaded(lab_id, outcome);
        }
    }

    /// The prefix of a learner's topic and group names: on a shared cluster, `{class}.{id}.`;
    /// with brokers of their own, and for the owner, none.
    pub fn prefix_for(&self, who: &Who) -> String {
        match (who, &self.parts) {
            (Who::Learner(learner), Some(parts)) if parts.shared_cluster.is_some() => {
                learner_prefix(parts, learner)
            }
            _ => String::new(),
        }
    }

    fn started(&self) -> Vec<(Arc<Sessions>, Option<Arc<EmbeddedBroker>>, Redis)> {
        let Ok(learners) = self.learners.lock() else {
            return Vec::new();
        };
        learners
            .values()
            .filter_map(|cell| cell.get())
            .map(|world| {
                (
                    Arc::clone(&world.sessions),
                    world.broker.clone(),
                    world.redis.clone(),
                )
            })
            .collect()
    }

    /// A learner's world if it runs, with the token that ends when they are shut out: the
    /// instructor's actions and views never start one.
    pub fn started_world(&self, learner: &str) -> Option<(Arc<Sessions>, CancellationToken)> {
        let learners = self.learners.lock().ok()?;
        learners
            .get(learner)?
            .get()
            .map(|world| (Arc::clone(&world.sessions), world.ended.clone()))
    }

    /// A learner's lab session for the instructor's read-only view, if their world and that
    /// lab run now (looking starts nothing, and so records no opening of theirs), with the token
    /// that ends when they are shut out.
    pub fn learner_session(
        &self,
        learner: &str,
        lab: &str,
    ) -> Result<(SessionHandle, CancellationToken), String> {
        let (sessions, ended) = self
            .started_world(learner)
            .ok_or_else(|| "They have not opened a lab since grouplab started.".to_owned())?;
        let session = sessions
            .running_session(lab)
            .ok_or_else(|| "They have not opened this lab since grouplab started.".to_owned())?;
        Ok((session, ended))
    }

    /// Stops every learner's Redis and broker (after their instances and sessions have ended).
    pub async fn shut_down_learners(&self) {
        for (_, broker, redis) in self.started() {
            redis.shut_down().await;
            if let Some(broker) = broker {
                broker.shut_down().await;
            }
        }
    }
}

/// Stops a shut-out learner's world: sockets and sessions first, so that nothing starts an
/// instance again, then their instances, then their brokers.
async fn stop_world(parts: &WorldParts, learner: &str, world: &LearnerWorld) {
    world.ended.cancel();
    if let Err(err) = parts.supervisor.stop_learner(learner).await {
        warn!(%learner, %err, "a shut-out learner's instances could not be stopped");
    }
    world.redis.shut_down().await;
    world.rabbit.shut_down().await;
    if let Some(broker) = &world.broker {
        broker.shut_down().await;
    }
}

fn learner_prefix(parts: &WorldParts, learner: &Learner) -> String {
    format!("{}.{}.", parts.class, learner.id)
}

/// Starts a learner's broker (or their view of the shared cluster) and Redis, and their sessions.
async fn start_world(parts: &WorldParts, learner: &Learner) -> Result<LearnerWorld, String> {
    let ended = parts.shutdown.child_token();
    let (cluster, broker, health) = match &parts.shared_cluster {
        Some((cluster, health)) => (
            cluster.with_prefix(&learner_prefix(parts, learner)),
            None,
            health.clone(),
        ),
        None => {
            let (cluster, broker, health) = start_broker(parts, learner, &ended).await?;
            (cluster, Some(broker), health)
        }
    };
    let redis = Redis::new(RedisSource::Own {
        program: parts.redis_program.clone(),
        dir: parts
            .data_dir
            .join("learners")
            .join(&learner.id)
            .join("redis"),
        bind: parts.broker_ip,
        password: Some(learner.secret.clone()),
    });
    let rabbit = parts.rabbit.virtual_host(
        &format!("grouplab-{}", learner.id),
        &learner.id,
        &learner.secret,
    );
    let sessions = Arc::new(Sessions::new(
        SessionDeps {
            cluster,
            supervisor: parts.supervisor.clone(),
            progress: parts.progress.clone(),
            groups: broker.as_deref().map(EmbeddedBroker::groups),
            // A shared cluster is not the learner's to stop.
            shared: broker.is_none(),
            broker: broker.clone(),
            health,
            redis: redis.clone(),
            rabbit: rabbit.clone(),
            crashes: Arc::new(CrashBook::default()),
            allowance: Some(Arc::new(Allowance::new(parts.allowance))),
            board: Some(parts.pulses.clone()),
            shutdown: ended.clone(),
            tasks: parts.tasks.clone(),
        },
        Arc::clone(&parts.catalog),
        learner.id.clone(),
    ));
    info!(learner = %learner.id, name = %learner.name, "a learner's labs started");
    Ok(LearnerWorld {
        sessions,
        ended,
        broker,
        redis,
        rabbit,
    })
}

/// Starts a learner's own embedded broker on their port, and its clients and health monitor.
async fn start_broker(
    parts: &WorldParts,
    learner: &Learner,
    ended: &CancellationToken,
) -> Result<(Cluster, Arc<EmbeddedBroker>, watch::Receiver<BrokerHealth>), String> {
    let addr = SocketAddr::new(parts.broker_ip, learner.broker_port);
    let broker = EmbeddedBroker::start_advertising(
        addr,
        parts.initial_rebalance_delay,
        parts.advertised_host.clone(),
    )
    .await
    .map_err(|err| {
        warn!(learner = %learner.id, %addr, %err, "a learner's broker did not start");
        format!(
            "Your own Kafka broker could not start on port {} ({err}). Tell your instructor: another program may hold that port.",
            learner.broker_port
        )
    })?;
    let broker = Arc::new(broker);
    let cluster = Cluster::connect(&broker.bootstrap_servers()).map_err(|err| err.to_string())?;
    cluster
        .wait_until_ready(LEARNER_BROKER_READY)
        .await
        .map_err(|err| format!("Your own Kafka broker did not answer ({err})."))?;
    let health = grouplab_backends::kafka::health::monitor(
        cluster.clone(),
        Some(broker.serving()),
        ended.clone(),
        &parts.tasks,
    );
    Ok((cluster, broker, health))
}
