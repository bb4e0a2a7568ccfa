//! The embedded broker: nisshi, in this process, with in-memory storage.
//!
//! It runs only when no cluster was named. It is started with nisshi's builder and `serve`
//! (never its `main`, which installs signal handlers of its own), and stopped by aborting the task.

use std::net::SocketAddr;
use std::time::Duration;

use nisshi_broker::broker::Broker;
use nisshi_broker::coordinator::group::administrator::{Controller, GroupCoordinatorConfig};
use nisshi_storage::ArcDynStorage;
use tokio::task::JoinHandle;
use tracing::{error, info};
use url::Url;

/// The node id the embedded broker uses; a single-node cluster needs only one.
const NODE_ID: i32 = 1;

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

/// A running embedded broker; dropping it stops the broker.
pub struct EmbeddedBroker {
    addr: SocketAddr,
    task: JoinHandle<()>,
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
        // nisshi reports a busy port only in its log; finding out first gives the learner a clear message.
        match std::net::TcpListener::bind(addr) {
            Ok(probe) => drop(probe),
            Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => {
                return Err(BrokerError::AddressInUse { addr });
            }
            Err(source) => return Err(BrokerError::Listen { addr, source }),
        }

        let url =
            Url::parse(&format!("tcp://{addr}")).map_err(|e| BrokerError::Start(e.to_string()))?;
        let storage = Url::parse("memory://").expect("a constant URL parses");
        let mut broker = Broker::<Controller<ArcDynStorage>, ArcDynStorage>::builder()
            .node_id(NODE_ID)
            .cluster_id("grouplab")
            .incarnation_id(uuid::Uuid::new_v4())
            .advertised_listener(url.clone())
            .listener(url)
            .storage(storage)
            .silent(true)
            .group_coordinator(GroupCoordinatorConfig {
                initial_rebalance_delay,
                ..GroupCoordinatorConfig::default()
            })
            .build()
            .await
            .map_err(|e| BrokerError::Start(e.to_string()))?;

        let task = tokio::spawn(async move {
            if let Err(err) = broker.serve(tokio::time::Instant::now()).await {
                error!(%err, "the embedded broker stopped");
            }
        });
        info!(%addr, ?initial_rebalance_delay, "embedded broker started");
        Ok(Self { addr, task })
    }

    /// The address clients connect to.
    pub fn bootstrap_servers(&self) -> String {
        self.addr.to_string()
    }

    /// Whether the broker task has ended (it only ends on a fatal error).
    pub fn has_stopped(&self) -> bool {
        self.task.is_finished()
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        self.task.abort();
    }
}
