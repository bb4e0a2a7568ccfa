//! grouplab's own `rabbitmq-server` and its `epmd`, started in a private folder on free loopback
//! ports. Erlang normally starts a port-mapper daemon (`epmd -daemon`) that outlives the broker,
//! so grouplab runs its own `epmd` in the foreground on a private port and tells Erlang not to
//! start one. Both run as grouplab's own children: neither outlives grouplab.

use std::net::IpAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::sync::Mutex;
use tracing::info;

use super::management::Management;
use super::refusals::Refusals;
use super::{Ready, answers};
use crate::own_process::{
    Children, NeverAnswered, find_program, free_port, spawn_child, wait_until_answers,
};

/// How long grouplab's `rabbitmq-server` may take to answer on AMQP and on its management API.
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// How often the broker refreshes the statistics the page shows (RabbitMQ's default is 5 s).
const STATISTICS_INTERVAL_MS: u32 = 500;

const INSTALL: &str = "Install it with `scripts/setup.sh` (Debian's rabbitmq-server package), or name your own RabbitMQ with --amqp-url, then restart grouplab.";

pub(super) async fn start_own(
    program: &Path,
    epmd: &Path,
    dir: &Path,
    bind: IpAddr,
) -> Result<Ready, String> {
    let Some(program) = find_program(program) else {
        return Err(format!(
            "grouplab found no {} to start. {INSTALL}",
            program.display()
        ));
    };
    let Some(epmd) = find_program(epmd) else {
        return Err(format!(
            "grouplab found no {} (Erlang's port mapper, part of the rabbitmq-server package) to start. {INSTALL}",
            epmd.display()
        ));
    };
    let fail_dir =
        |err: std::io::Error| format!("grouplab could not prepare {}: {err}", dir.display());
    // A fresh database every time: a lab's queues are made again when it is opened. The
    // expanded plugins are kept, which saves seconds on the next start.
    let _ = std::fs::remove_dir_all(dir.join("mnesia"));
    std::fs::create_dir_all(dir.join("log")).map_err(fail_dir)?;
    let dir = std::fs::canonicalize(dir).map_err(fail_dir)?;
    let port =
        || free_port().map_err(|err| format!("grouplab found no free port for RabbitMQ: {err}"));
    let (epmd_port, amqp_port, dist_port, management_port) = (port()?, port()?, port()?, port()?);
    std::fs::write(
        dir.join("rabbitmq.conf"),
        format!(
            "{}\
             management.tcp.ip = 127.0.0.1\n\
             management.tcp.port = {management_port}\n\
             collect_statistics_interval = {STATISTICS_INTERVAL_MS}\n\
             log.console = false\n\
             log.file.level = warning\n",
            amqp_listeners(bind, amqp_port)
        ),
    )
    .map_err(fail_dir)?;
    std::fs::write(dir.join("enabled_plugins"), "[rabbitmq_management].\n").map_err(fail_dir)?;

    let spawn_failed = |what: &Path, err: std::io::Error| {
        format!(
            "grouplab could not start {} ({err}). {INSTALL}",
            what.display()
        )
    };
    let epmd_process = spawn_child(&epmd, |command| {
        command
            .args(["-port", &epmd_port.to_string(), "-address", "127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
    })
    .map_err(|err| spawn_failed(&epmd, err))?;
    let at = |name: &str| dir.join(name);
    let mut broker = spawn_child(&program, |command| {
        command
            // The script then runs Erlang in its own place (exec), so the kill reaches the broker.
            .env("RUNNING_UNDER_SYSTEMD", "1")
            .env("HOME", &dir)
            .env("ERL_EPMD_PORT", epmd_port.to_string())
            // Erlang's distribution port (for clustering and the CLI tools) would listen on
            // every address; loopback is enough for grouplab's one node.
            .env(
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "-start_epmd false -kernel inet_dist_use_interface {127,0,0,1}",
            )
            .env("RABBITMQ_NODENAME", "grouplab@localhost")
            .env("RABBITMQ_DIST_PORT", dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", at("mnesia"))
            .env("RABBITMQ_MNESIA_DIR", at("mnesia/node"))
            .env("RABBITMQ_LOG_BASE", at("log"))
            .env("RABBITMQ_CONFIG_FILE", at("rabbitmq.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", at("enabled_plugins"))
            .env("RABBITMQ_FEATURE_FLAGS_FILE", at("mnesia/feature_flags"))
            .env("RABBITMQ_PLUGINS_EXPAND_DIR", at("plugins"))
            .env("RABBITMQ_QUORUM_DIR", at("mnesia/quorum"))
            .env("RABBITMQ_STREAM_DIR", at("mnesia/stream"))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
    })
    .map_err(|err| spawn_failed(&program, err))?;

    // grouplab dials loopback as `guest`; learners' URLs name where their machines reach it.
    let amqp = format!("amqp://guest:guest@127.0.0.1:{amqp_port}/%2f");
    let learner_host = match bind {
        _ if bind.is_loopback() => "127.0.0.1".to_owned(),
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    let management = Management::new(&format!("http://127.0.0.1:{management_port}"))?;
    let log = at("log").join("grouplab@localhost.log");
    let retry = Duration::from_millis(200);
    match wait_until_answers(&mut broker, START_TIMEOUT, retry, || {
        answers(&amqp, &management)
    })
    .await
    {
        Ok(()) => {
            info!(%amqp, "RabbitMQ is up");
            Ok(Ready {
                amqp,
                learner_host,
                vhost: "%2F".to_owned(),
                management,
                publisher: Mutex::new(None),
                processes: Children::new(vec![epmd_process, broker]),
                refusals: Refusals::new(log),
            })
        }
        Err(NeverAnswered::Exited(status)) => Err(format!(
            "grouplab's rabbitmq-server ({}) stopped as it started ({status}); its log is {}.",
            program.display(),
            log.display()
        )),
        Err(NeverAnswered::TimedOut(err)) => Err(format!(
            "grouplab's rabbitmq-server did not answer within {} s ({err}); its log is {}.",
            START_TIMEOUT.as_secs(),
            log.display()
        )),
    }
}

/// The AMQP listeners' lines of `rabbitmq.conf`: loopback, which grouplab's own clients dial,
/// and `bind` besides (one listener on every address when `bind` is unspecified, since it
/// includes loopback and a second would collide with it). RabbitMQ writes an IPv6 address
/// without brackets (`:::5672`). Only `guest`, which RabbitMQ lets in
/// from loopback alone, may use the management API, which stays on loopback.
fn amqp_listeners(bind: IpAddr, port: u16) -> String {
    if bind.is_unspecified() {
        format!("listeners.tcp.1 = {bind}:{port}\n")
    } else if bind.is_loopback() {
        format!("listeners.tcp.1 = 127.0.0.1:{port}\n")
    } else {
        format!("listeners.tcp.1 = 127.0.0.1:{port}\nlisteners.tcp.2 = {bind}:{port}\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amqp_listens_on_loopback_and_on_the_address_it_is_given() {
        let cases = [
            ("127.0.0.1", "listeners.tcp.1 = 127.0.0.1:5672\n"),
            ("0.0.0.0", "listeners.tcp.1 = 0.0.0.0:5672\n"),
            (
                "10.1.2.3",
                "listeners.tcp.1 = 127.0.0.1:5672\nlisteners.tcp.2 = 10.1.2.3:5672\n",
            ),
            ("::", "listeners.tcp.1 = :::5672\n"),
        ];
        for (bind, expected) in cases {
            let bind: IpAddr = bind.parse().expect("an address");
            assert_eq!(amqp_listeners(bind, 5672), expected, "bound to {bind}");
        }
    }
}
