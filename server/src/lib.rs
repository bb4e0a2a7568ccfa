//! The grouplab server.
//!
//! One process serves the lab pages and their websocket, embeds the broker (unless a cluster was
//! named), and supervises the consumer instance processes. Its parts, a folder each, in layers:
//! a module imports only from the layers below it.
//!
//! - [`web`]: the router, the websocket transport, and who may drive a lab ([`web::access`]),
//!   with a class's join pages ([`web::join`]).
//! - [`class`]: a class's learners (joining, cookies, rejoin codes, in SQLite) and each one's
//!   world of labs with brokers of their own.
//! - [`session`]: one actor per lab that owns its live view, fed by instances and broker polls.
//!   [`watch`] tells the sessions when a lab's files change.
//! - [`supervisor`]: the actor that owns every consumer instance process.
//! - [`lab`]: lab content from `labs/` (the catalog, code highlighting) and learners' progress in
//!   SQLite.
//! - [`config`]: the command line.
//!
//! Below the server, crates of their own (they compile beside the rest of the build rather
//! than after it): `grouplab-backends` (`backends/`), the brokers a lab runs on (Kafka, embedded or
//! named; Redis; RabbitMQ), the seam the session calls them through, their errors, and the one
//! clock; `grouplab-model` (`model/`), pure records and functions over what the broker and the
//! instances said (membership, history, ledger, lag) and the checkpoints: no I/O.
//!
//! Shutdown is decide (a [`CancellationToken`]), tell (sessions end, the supervisor stops every
//! instance), and wait (task trackers).

#![recursion_limit = "512"]

pub mod class;
pub mod config;
pub mod lab;
pub mod session;
pub mod supervisor;
pub mod watch;
pub mod web;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use leptos::prelude::LeptosOptions;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::class::{Board, Class, ClassStore, WorldParts, Worlds};
use crate::config::Config;
use crate::lab::catalog::LabCatalog;
use crate::lab::progress::ProgressStore;
use crate::session::{SessionDeps, Sessions};
use crate::supervisor::{Supervisor, SupervisorConfig};
use crate::web::AppState;
use crate::web::access::{SiteAccess, access_token, check_broker_exposure};
use grouplab_backends::kafka::Cluster;
use grouplab_backends::kafka::EmbeddedBroker;
use grouplab_backends::rabbitmq::{Rabbit, RabbitSource};
use grouplab_backends::redis::{Redis, RedisSource};

/// How long the embedded broker may take to answer its first request.
const BROKER_READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long start-up waits for a named cluster before serving the page anyway.
const CLUSTER_READY_TIMEOUT: Duration = Duration::from_secs(3);
/// How long instances get to leave their groups when the server stops.
const STOP_GRACE: Duration = Duration::from_secs(8);

/// Runs the server until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    // Refuse an exposed address before anything starts.
    let mut token = access_token(config.addr, config.public, config.access_token.clone())?;
    if let Some(class) = &config.class {
        check_class(&config, class)?;
        // A class always has an instructor, who is known by the access link.
        if token.is_none() {
            token = access_token(config.addr, true, config.access_token.clone())?;
        }
    }
    if config.bootstrap_servers.is_none() {
        check_broker_exposure(
            config.broker_addr,
            config.public,
            config.advertised_host.as_deref(),
        )?;
    }
    // The labs are read (and their code highlighted) while the broker starts.
    let labs_dir = config.labs_dir.clone();
    let catalog = tokio::task::spawn_blocking(move || LabCatalog::load(&labs_dir));

    let (broker, bootstrap) = match &config.bootstrap_servers {
        Some(bootstrap) => (None, bootstrap.clone()),
        None => {
            let broker = EmbeddedBroker::start_advertising(
                config.broker_addr,
                config.initial_rebalance_delay(),
                config.advertised_host.clone(),
            )
            .await?;
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

    // Where the ports a class's learners reach listen: beyond loopback only with --public,
    // whatever --broker-addr says on a named cluster.
    let learner_ip: std::net::IpAddr = if config.public {
        config.broker_addr.ip()
    } else {
        std::net::Ipv4Addr::LOCALHOST.into()
    };
    // Started by the first Redis lab opened, never before: Kafka labs do not wait for it.
    let redis = Redis::new(match &config.redis_url {
        Some(url) => RedisSource::Url(url.clone()),
        None => RedisSource::Own {
            program: config.redis_program.clone(),
            dir: config.data_dir.join("redis"),
            bind: std::net::Ipv4Addr::LOCALHOST.into(),
            password: None,
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
            // A class's learners run their workers from their own machines.
            bind: if config.class.is_some() {
                learner_ip
            } else {
                std::net::Ipv4Addr::LOCALHOST.into()
            },
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
            max_per_learner: if config.class.is_some() {
                config.max_instances_per_learner
            } else {
                config.max_instances
            },
            stop_grace: STOP_GRACE,
        },
        supervisor_shutdown.clone(),
    );
    let session_tasks = TaskTracker::new();
    let health = grouplab_backends::kafka::health::monitor(
        cluster.clone(),
        broker.as_deref().map(EmbeddedBroker::serving),
        sessions_shutdown.clone(),
        &session_tasks,
    );
    // A class on a named cluster shares it, each learner under their own prefix.
    let shared_cluster = broker.is_none().then(|| (cluster.clone(), health.clone()));
    // There the instructor's own labs are under the class's name too, apart from every learner's
    // (learners' ids start with `l` and a hex digit), so several classes can share a cluster.
    let cluster = match &config.class {
        Some(class) if broker.is_none() => cluster.with_prefix(&format!("{class}.instructor.")),
        _ => cluster,
    };
    let sessions = Arc::new(Sessions::new(
        SessionDeps {
            cluster,
            supervisor: supervisor.clone(),
            progress: progress.clone(),
            broker: broker.clone(),
            health,
            // Everyone with the access link shares it; in a class the learners have brokers
            // of their own, and the server's is the instructor's alone.
            shared: token.is_some() && config.class.is_none(),
            groups: broker.as_deref().map(EmbeddedBroker::groups),
            redis: redis.clone(),
            rabbit: rabbit.clone(),
            crashes: Default::default(),
            allowance: None,
            board: None,
            shutdown: sessions_shutdown.clone(),
            tasks: session_tasks.clone(),
        },
        Arc::clone(&catalog),
        "default".to_owned(),
    ));
    let (worlds, class) = match &config.class {
        None => (Arc::new(Worlds::single(sessions)), None),
        Some(name) => {
            let store = ClassStore::open(&progress_path, name)?;
            let code = store.join_code(grouplab_backends::clock::now_ms()).await?;
            let board = Board::start(
                store.clone(),
                progress.clone(),
                Arc::clone(&catalog),
                sessions_shutdown.clone(),
                &session_tasks,
            );
            let parts = WorldParts {
                pulses: board.pulses(),
                supervisor,
                progress,
                catalog: Arc::clone(&catalog),
                broker_ip: learner_ip,
                advertised_host: config.advertised_host.clone(),
                initial_rebalance_delay: config.initial_rebalance_delay(),
                redis_program: config.redis_program.clone(),
                shared_cluster,
                class: name.clone(),
                rabbit: rabbit.clone(),
                data_dir: config.data_dir.clone(),
                allowance: config.allowance(),
                shutdown: sessions_shutdown.clone(),
                tasks: session_tasks.clone(),
            };
            let class = Class::new(
                store,
                code,
                config.learner_ports,
                config.max_learners,
                board,
            );
            (
                Arc::new(Worlds::class(sessions, parts)),
                Some(Arc::new(class)),
            )
        }
    };
    watch::watch_labs(
        Arc::clone(&worlds),
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
        worlds: Arc::clone(&worlds),
        access,
        class: class.clone(),
    });
    let kind = if broker.is_some() {
        "embedded broker"
    } else {
        "your Kafka cluster"
    };
    match (&token, &class) {
        (Some(token), Some(class)) => {
            println!("grouplab is ready to serve the class `{}`.", class.name());
            println!(
                "Learners join at this link (or at http://{addr}/join with the code {}):",
                class.code
            );
            println!("  http://{addr}/join/{}", class.code);
            println!(
                "Your own link, as the instructor (keep it to yourself: it shows the join code and the class):"
            );
            println!("  http://{addr}/class?token={token}");
            if addr.ip().is_unspecified() {
                println!(
                    "  (put this machine's address, as the class reaches it, in place of {})",
                    addr.ip()
                );
            }
        }
        (None, _) => println!("grouplab is ready: open http://{addr}"),
        (Some(token), None) => {
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
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
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
    worlds.shut_down_learners().await;
    redis.shut_down().await;
    rabbit.shut_down().await;
    if let Some(broker) = broker {
        broker.shut_down().await;
    }
    Ok(())
}

/// Refuses a class whose learners could not each have their own brokers.
fn check_class(config: &Config, class: &str) -> anyhow::Result<()> {
    if class.is_empty()
        || class.len() > 40
        || !class
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        anyhow::bail!(
            "--class `{class}` is not a class name: use up to 40 letters, digits, `-`, `_` and `.` (kafka-101)"
        );
    }
    if config.redis_url.is_some() {
        anyhow::bail!(
            "a class needs grouplab's own Redis servers (one per learner, each with its own password): leave out --redis-url."
        );
    }
    let ports = config.learner_ports;
    let embedded = config.bootstrap_servers.is_none();
    if embedded && (ports.contains(config.broker_addr.port()) || ports.contains(config.addr.port()))
    {
        anyhow::bail!(
            "--learner-ports {}-{} holds the page's or the embedded broker's own port: choose a range apart from both.",
            ports.first,
            ports.last
        );
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

#[cfg(test)]
mod tests {
    /// Architecture Invariant (ARCHITECTURE.md): the model crate (with the checks) is pure. Its sources
    /// use no I/O, no clock, no runtime, no broker client, and nothing from a layer above them.
    #[test]
    fn the_pure_modules_do_no_io() {
        fn sources(dir: &std::path::Path, found: &mut Vec<(String, String)>) {
            for entry in std::fs::read_dir(dir).expect("the sources can be listed") {
                let path = entry.expect("a directory entry").path();
                if path.is_dir() {
                    sources(&path, found);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).expect("a source file reads");
                    found.push((path.display().to_string(), text));
                }
            }
        }
        // The model crate, beside this one in the workspace.
        let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/src");
        let mut found = Vec::new();
        sources(&model, &mut found);
        assert!(
            found.len() >= 10,
            "the pure modules' sources were not found: {:?}",
            found.iter().map(|(file, _)| file).collect::<Vec<_>>()
        );
        // Spelt in pieces, so that this test does not find itself.
        let impure = [
            concat!("std", "::fs"),
            concat!("std", "::net"),
            concat!("std", "::io"),
            concat!("std", "::process"),
            concat!("std", "::thread"),
            concat!("std", "::env"),
            concat!("System", "Time"),
            concat!("Instant", "::now"),
            concat!("tok", "io::"),
            concat!("rd", "kafka::"),
            concat!("redis", "::"),
            concat!("la", "pin::"),
            concat!("rus", "qlite::"),
            concat!("nis", "shi_"),
            concat!("hy", "per::"),
            concat!("ax", "um::"),
            concat!("grouplab", "_backends"),
            concat!("grouplab", "_server"),
        ];
        for (file, text) in &found {
            for word in impure {
                assert!(
                    !text.contains(word),
                    "{file} names {word}, but it must stay pure"
                );
            }
        }
    }
}
