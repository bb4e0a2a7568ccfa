//! Whether the broker answers, watched for the whole server: one probe, every lab reads it.
//!
//! Every [`PROBE_INTERVAL`] the monitor asks the cluster for its metadata and waits at most
//! [`PROBE_TIMEOUT`], so a broker that goes away shows as down within
//! `PROBE_INTERVAL + PROBE_TIMEOUT` (1.3 s), and one that comes back as up within about
//! `PROBE_INTERVAL`. An embedded broker taken down from a page shows as
//! [`BrokerHealth::Stopped`] the moment it stops serving, without waiting for a probe.

use std::time::Duration;

use grouplab_protocol::{BrokerHealth, EpochMillis};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::clock::now_ms;
use crate::kafka::Cluster;

/// How often the broker is asked whether it is there.
const PROBE_INTERVAL: Duration = Duration::from_millis(300);
/// How long one probe waits for an answer; on loopback or a LAN an answer takes milliseconds.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Starts the monitor; the receiver holds the latest health, [`BrokerHealth::Unknown`] until
/// the first probe answers or fails.
///
/// `serving` is the embedded broker's own state (`None` for a named cluster).
pub fn monitor(
    cluster: Cluster,
    serving: Option<watch::Receiver<bool>>,
    shutdown: CancellationToken,
    tasks: &TaskTracker,
) -> watch::Receiver<BrokerHealth> {
    let (health, receiver) = watch::channel(BrokerHealth::Unknown);
    tasks.spawn(run(cluster, serving, health, shutdown));
    receiver
}

async fn run(
    cluster: Cluster,
    mut serving: Option<watch::Receiver<bool>>,
    health: watch::Sender<BrokerHealth>,
    shutdown: CancellationToken,
) {
    let mut probe = tokio::time::interval(PROBE_INTERVAL);
    probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stopped_since: Option<EpochMillis> = None;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = next_change(&mut serving) => {
                if changed.is_err() {
                    serving = None;
                }
            }
            _ = probe.tick() => {}
        }
        let stopped = serving.as_ref().is_some_and(|s| !*s.borrow());
        let next = if stopped {
            BrokerHealth::Stopped {
                since: *stopped_since.get_or_insert_with(now_ms),
            }
        } else {
            stopped_since = None;
            let answer = tokio::select! {
                () = shutdown.cancelled() => return,
                answer = cluster.ping_within(PROBE_TIMEOUT) => answer,
            };
            // The broker may have been taken down while the probe waited.
            if serving.as_ref().is_some_and(|s| !*s.borrow()) {
                continue;
            }
            match answer {
                Ok(()) => BrokerHealth::Up,
                Err(err) => BrokerHealth::Down {
                    reason: err.to_string(),
                },
            }
        };
        health.send_if_modified(|current| {
            if *current == next {
                return false;
            }
            match &next {
                BrokerHealth::Up => info!("the broker answers"),
                BrokerHealth::Down { reason } => warn!(%reason, "the broker does not answer"),
                BrokerHealth::Stopped { .. } => warn!("the embedded broker is stopped"),
                BrokerHealth::Unknown => {}
            }
            *current = next;
            true
        });
    }
}

async fn next_change(
    serving: &mut Option<watch::Receiver<bool>>,
) -> Result<(), watch::error::RecvError> {
    match serving {
        Some(serving) => serving.changed().await,
        None => std::future::pending().await,
    }
}
