//! The grouplab server.
//!
//! One process serves the lab pages and their websocket, embeds the broker (unless a cluster was
//! named), and supervises the consumer instance processes. Its parts, one module each:
//!
//! - [`config`]: command line and environment.
//! - [`broker`]: the embedded nisshi broker, and its groups read in-process.
//! - [`cluster`]: the server's own Kafka clients (admin, producer, offsets, DescribeGroups).
//! - [`health`]: whether the broker answers, probed for the whole server.
//! - [`backend`]: what differs between the brokers a lab can run on; [`redis_streams`]: the
//!   Redis labs' own `redis-server` and the server's client for it; [`rabbitmq`]: the same for
//!   RabbitMQ labs; [`own_process`]: what starting such a broker needs.
//! - [`membership`]: every group member, whoever runs it, from the broker's view of the group.
//! - [`supervisor`]: the actor that owns every consumer instance process.
//! - [`labs`] and [`checks`]: lab content from `labs/`, and checkpoint evaluation.
//! - [`session`]: one actor per lab that owns its live view, fed by instances and broker polls.
//! - [`progress`]: learners' progress in SQLite.
//! - [`web`] and [`ws`]: the router, and the websocket transport; [`access`]: who may drive a lab.
//!
//! Shutdown is decide (a [`CancellationToken`]), tell (sessions end, the supervisor stops every
//! instance), and wait (task trackers).

#![recursion_limit = "512"]

pub mod access;
pub mod backend;
pub mod broker;
pub mod checks;
pub mod cluster;
pub mod config;
pub mod health;
pub mod highlight;
pub mod labs;
pub mod lag;
pub mod ledger;
pub mod membership;
pub mod own_process;
pub mod progress;
pub mod rabbitmq;
pub mod redis_streams;
pub mod session;
pub mod supervisor;
pub mod watch;
pub mod web;
pub mod ws;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use leptos::prelude::LeptosOptions;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::access::{SiteAccess, access_token};
use crate::broker::EmbeddedBroker;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::labs::LabCatalog;
use crate::progress::ProgressStore;
use crate::rabbitmq::{Rabbit, RabbitSource};
use crate::redis_streams::{Redis, RedisSource};
use crate::session::{SessionDeps, Sessions};
use crate::supervisor::{Supervisor, SupervisorConfig};
use crate::web::AppState;

/// How long the embedded broker may take to answer its first request.
const BROKER_READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long start-up waits for a named cluster before serving the page anyway.
const CLUSTER_READY_TIMEOUT: Duration = Duration::from_secs(3);
/// How long instances get to leave their groups when the server stops.
const STOP_GRACE: Duration = Duration::from_secs(8);

/// Runs the server until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    // Refuse an exposed address before anything starts.
    let token = access_token(config.addr, config.public, config.access_token.clone())?;
    // The labs are read (and their code highlighted) while the broker starts.
    let labs_dir = config.labs_dir.clone();
    let catalog = tokio::task::spawn_blocking(move || LabCatalog::load(&labs_dir));

    let (broker, bootstrap) = match &config.bootstrap_servers {
        Some(bootstrap) => (None, bootstrap.clone()),
        None => {
            let broker =
                EmbeddedBroker::start(config.broker_addr, config.initial_rebalance_delay()).await?;
            let bootstrap = broker.bootstrap_servers();
            (Some(Arc::new(broker)), bootstrap)
        }
    };
    let cluster = Cluster::connect(&bootstrap)?;
    // The embedded broker must come up; a named cluster may come up later, so the page is not held for it.
    let patience = if broker.is_some() {
        BROKER_READY_TIMEOUT
    } else {
        CLUSTER_READY_TIMEOUT
    };
    match cluster.wait_until_ready(patience).await {
        Ok(()) => info!(%bootstrap, "broker is up"),
        Err(err) if broker.is_some() => {
            return Err(err).context("the embedded broker did not become ready");
        }
        // A named cluster may come up later; the page shows it as down until then.
        Err(err) => warn!(%err, "the Kafka cluster is not answering yet"),
    }

    let catalog = Arc::new(catalog.await.context("reading the labs failed")??);
    for (id, problem) in catalog.problems() {
        warn!(lab = %id, %problem, "this lab is listed as broken");
    }

    // Started by the first Redis lab opened, never before: Kafka labs do not wait for it.
    let redis = Redis::new(match &config.redis_url {
        Some(url) => RedisSource::Url(url.clone()),
        None => RedisSource::Own {
            program: config.redis_program.clone(),
            dir: config.data_dir.join("redis"),
        },
    });
    // Likewise started by the first RabbitMQ lab opened: it takes seconds.
    let rabbit = Rabbit::new(match &config.amqp_url {
        Some(amqp) => RabbitSource::Url {
            amqp: amqp.clone(),
            management: config.rabbitmq_management_url.clone(),
        },
        None => RabbitSource::Own {
            program: config.rabbitmq_program.clone(),
            epmd: config.epmd_program.clone(),
            dir: config.data_dir.join("rabbitmq"),
        },
    });
    let progress_path = config.data_dir.join("progress.sqlite3");
    let progress = ProgressStore::open(&progress_path)?;
    let program = config.consumer_program();
    if !program.is_file() {
        warn!(program = %program.display(), "the consumer instance program was not found; starting instances will fail until it is built");
    }
    // Shutdown is in order: the instances leave their groups while the sessions still read their
    // reports, then the sessions end, then the broker stops; each part has its own token.
    let supervisor_shutdown = CancellationToken::new();
    let sessions_shutdown = CancellationToken::new();
    let (supervisor, supervisor_tasks) = Supervisor::spawn(
        SupervisorConfig {
            program,
            max_total: config.max_instances,
            max_per_owner: config.max_instances_per_lab,
            stop_grace: STOP_GRACE,
        },
        supervisor_shutdown.clone(),
    );
    let session_tasks = TaskTracker::new();
    let health = health::monitor(
        cluster.clone(),
        broker.as_deref().map(EmbeddedBroker::serving),
        sessions_shutdown.clone(),
        &session_tasks,
    );
    let sessions = Arc::new(Sessions::new(
        SessionDeps {
            cluster,
            supervisor,
            progress,
            broker: broker.clone(),
            health,
            shared: token.is_some(),
            groups: broker.as_deref().map(EmbeddedBroker::groups),
            redis: redis.clone(),
            rabbit: rabbit.clone(),
            crashes: Default::default(),
            shutdown: sessions_shutdown.clone(),
            tasks: session_tasks.clone(),
        },
        Arc::clone(&catalog),
    ));
    watch::watch_labs(
        Arc::clone(&sessions),
        sessions_shutdown.clone(),
        &session_tasks,
    );

    let site_root = config.site_root.to_string_lossy().into_owned();
    if !config.site_root.join("pkg").join("grouplab.js").is_file() {
        warn!(site_root = %site_root, "the front end is not built: pages will render but not come alive. Build it with `cargo xtask build`.");
    }
    let leptos = LeptosOptions::builder()
        .output_name("grouplab")
        .site_root(site_root)
        .site_pkg_dir("pkg")
        .site_addr(config.addr)
        .build();
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("cannot serve the page on {}: is another grouplab running? Choose another address with --addr", config.addr))?;
    let addr = listener.local_addr()?;
    let access = Arc::new(SiteAccess::with_token(
        addr,
        &config.allowed_origins,
        token.clone(),
    )?);
    let router = web::app(AppState {
        leptos,
        sessions,
        access,
    });
    let kind = if broker.is_some() {
        "embedded broker"
    } else {
        "your Kafka cluster"
    };
    match &token {
        None => println!("grouplab is ready: open http://{addr}"),
        Some(token) => {
            println!("grouplab is ready, reachable from other machines at {addr}.");
            println!(
                "Anyone with this link can start and stop consumers and reset labs; share it only with your class:"
            );
            println!("  http://{addr}/?token={token}");
            if addr.ip().is_unspecified() {
                println!(
                    "  (put this machine's address, as the class reaches it, in place of {})",
                    addr.ip()
                );
            }
        }
    }
    println!("Kafka bootstrap servers ({kind}): {bootstrap}");

    // Events are small websocket frames: without TCP_NODELAY, Nagle's algorithm holds one back
    // until the page acknowledges the last, which costs up to 40 ms each (measured by the
    // event_to_screen benchmark).
    let listener = axum::serve::ListenerExt::tap_io(listener, |stream| {
        if let Err(err) = stream.set_nodelay(true) {
            debug!(%err, "TCP_NODELAY could not be set on a connection");
        }
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await?;

    info!("shutting down: stopping consumer instances");
    supervisor_shutdown.cancel();
    supervisor_tasks.wait().await;
    sessions_shutdown.cancel();
    session_tasks.close();
    if tokio::time::timeout(Duration::from_secs(5), session_tasks.wait())
        .await
        .is_err()
    {
        warn!("some lab tasks did not finish in time");
    }
    redis.shut_down().await;
    rabbit.shut_down().await;
    if let Some(broker) = broker {
        broker.shut_down().await;
    }
    Ok(())
}

/// A token cancelled on Ctrl-C or SIGTERM.
pub fn shutdown_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = terminate => {}
        }
        cancel.cancel();
    });
    token
}
