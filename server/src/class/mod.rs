//! A class on one server: learners who join with a code, and a world of labs for each of them.
//!
//! A *world* is one [`Sessions`]: every lab's session for one namespace, with the brokers those
//! sessions talk to. The server's own world (namespace `default`) is the only one without
//! `--class`, and the instructor's in a class. Each learner's world is started when they first
//! open a page: an embedded broker of their own on their port from `--learner-ports` (so a lab's
//! topic and group names stay exactly as written, and nothing a learner's script does reaches
//! another learner's broker), a `redis-server` of their own with their password, a RabbitMQ
//! virtual host and user of their own on the server's one `rabbitmq-server`, their progress rows,
//! and their instances under the supervisor's per-learner cap.
//!
//! Who a request is comes only from its cookie ([`Who`]); no address or frame names a learner.

pub mod codes;
pub mod store;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use self::store::{ClassStore, JoinError, Learner};
use crate::config::PortRange;
use crate::lab::catalog::{LabCatalog, Reloaded};
use crate::lab::progress::ProgressStore;
use crate::session::{CrashBook, SessionDeps, Sessions};
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
    joins: DefaultKeyedRateLimiter<IpAddr>,
    ports: PortRange,
    max_learners: usize,
}

impl Class {
    pub fn new(store: ClassStore, code: String, ports: PortRange, max_learners: usize) -> Self {
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
    /// The server's RabbitMQ, on which each learner gets a virtual host and a user.
    pub rabbit: Rabbit,
    pub data_dir: PathBuf,
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
}

/// A learner's world: their sessions, and the brokers grouplab started for them.
struct LearnerWorld {
    sessions: Arc<Sessions>,
    broker: Arc<EmbeddedBroker>,
    redis: Redis,
}

/// Every world on the server.
pub struct Worlds {
    own: Arc<Sessions>,
    parts: Option<WorldParts>,
    /// A std Mutex is fine: it guards a map lookup or insert, never held across an await.
    learners: Mutex<HashMap<String, Arc<OnceCell<LearnerWorld>>>>,
}

impl Worlds {
    /// The server's own world alone (no class).
    pub fn single(own: Arc<Sessions>) -> Self {
        Self {
            own,
            parts: None,
            learners: Mutex::new(HashMap::new()),
        }
    }

    /// The server's own world, and learners' worlds made from `parts` as they come.
    pub fn class(own: Arc<Sessions>, parts: WorldParts) -> Self {
        Self {
            own,
            parts: Some(parts),
            learners: Mutex::new(HashMap::new()),
        }
    }

    pub fn catalog(&self) -> &Arc<LabCatalog> {
        self.own.catalog()
    }

    pub fn progress(&self) -> &ProgressStore {
        self.own.progress()
    }

    /// The world of `who`, started if it is a learner's that has not run since the server started.
    pub async fn world(&self, who: &Who) -> Result<Arc<Sessions>, String> {
        let learner = match who {
            Who::Owner => return Ok(Arc::clone(&self.own)),
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
        Ok(Arc::clone(&world.sessions))
    }

    /// Tells every world's running session of a lab that its files were read again.
    pub fn reloaded(&self, lab_id: &str, outcome: &Reloaded) {
        self.own.reloaded(lab_id, outcome);
        for sessions in self.started().into_iter().map(|world| world.0) {
            sessions.reloaded(lab_id, outcome);
        }
    }

    fn started(&self) -> Vec<(Arc<Sessions>, Arc<EmbeddedBroker>, Redis)> {
        let Ok(learners) = self.learners.lock() else {
            return Vec::new();
        };
        learners
            .values()
            .filter_map(|cell| cell.get())
            .map(|world| {
                (
                    Arc::clone(&world.sessions),
                    Arc::clone(&world.broker),
                    world.redis.clone(),
                )
            })
            .collect()
    }

    /// How many learners' worlds are running.
    pub fn running_learners(&self) -> usize {
        self.started().len()
    }

    /// Stops every learner's Redis and broker (after their instances and sessions have ended).
    pub async fn shut_down_learners(&self) {
        for (_, broker, redis) in self.started() {
            redis.shut_down().await;
            broker.shut_down().await;
        }
    }
}

/// Starts a learner's broker and Redis, and their sessions.
async fn start_world(parts: &WorldParts, learner: &Learner) -> Result<LearnerWorld, String> {
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
    let bootstrap = format!("127.0.0.1:{}", learner.broker_port);
    let cluster = Cluster::connect(&bootstrap).map_err(|err| err.to_string())?;
    cluster
        .wait_until_ready(LEARNER_BROKER_READY)
        .await
        .map_err(|err| format!("Your own Kafka broker did not answer ({err})."))?;
    let health = grouplab_backends::kafka::health::monitor(
        cluster.clone(),
        Some(broker.serving()),
        parts.shutdown.clone(),
        &parts.tasks,
    );
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
    let sessions = Arc::new(Sessions::new(
        SessionDeps {
            cluster,
            supervisor: parts.supervisor.clone(),
            progress: parts.progress.clone(),
            groups: Some(broker.groups()),
            broker: Some(Arc::clone(&broker)),
            health,
            // The broker is the learner's alone: taking it down stops nobody else's lab.
            shared: false,
            redis: redis.clone(),
            rabbit: parts.rabbit.virtual_host(
                &format!("grouplab-{}", learner.id),
                &learner.id,
                &learner.secret,
            ),
            crashes: Arc::new(CrashBook::default()),
            shutdown: parts.shutdown.clone(),
            tasks: parts.tasks.clone(),
        },
        Arc::clone(&parts.catalog),
        learner.id.clone(),
    ));
    info!(learner = %learner.id, name = %learner.name, %addr, "a learner's labs started");
    Ok(LearnerWorld {
        sessions,
        broker,
        redis,
    })
}
