//! Redis Streams labs: grouplab's own `redis-server`, and the server's client for it.
//!
//! Unless the operator names a Redis (`--redis-url`), the first Redis lab that is opened starts
//! `redis-server` on a free loopback port with nothing kept on disk (no RDB, no AOF); Kafka labs
//! never wait for it. It runs under `setpriv --pdeathsig KILL`, held by a task on a runtime
//! worker thread, with `kill_on_drop`: it cannot outlive grouplab.
//!
//! The server reads a stream the way a learner would inspect one: `XLEN`, `XINFO GROUPS`,
//! `XINFO CONSUMERS`, `XPENDING`, and `CLIENT LIST` for readers that are in no group.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use grouplab_protocol::{
    KeyMode, LooseReader, MAX_PENDING_SHOWN, PendingEntry, StreamConsumerView, StreamGroupView,
    StreamView,
};
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{StreamInfoConsumersReply, StreamInfoGroupsReply, StreamPendingCountReply};
use tracing::info;

use super::own_process::{
    Children, NeverAnswered, StartedOnce, find_program, free_port, spawn_child, wait_until_answers,
    within,
};
use super::{CallError, Produced, numbered_message};

/// How long grouplab's `redis-server` may take to answer its first `PING`.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one call to Redis may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// Where Redis comes from.
#[derive(Clone, Debug)]
pub enum RedisSource {
    /// The operator's own Redis, at this URL.
    Url(String),
    /// A `redis-server` grouplab starts: this program, with this working folder, listening on
    /// `bind` (loopback unless the server is `--public`), and asking for `password` if one is given.
    Own {
        program: PathBuf,
        dir: PathBuf,
        bind: std::net::IpAddr,
        password: Option<String>,
    },
}

/// Redis for the whole server, started on first use.
#[derive(Clone)]
pub struct Redis {
    inner: Arc<Inner>,
}

struct Inner {
    source: RedisSource,
    ready: StartedOnce<Ready>,
}

struct Ready {
    url: String,
    connection: ConnectionManager,
    /// grouplab's own `redis-server`, if it started one.
    process: Children,
}

impl Redis {
    pub fn new(source: RedisSource) -> Self {
        Self {
            inner: Arc::new(Inner {
                source,
                ready: StartedOnce::new("Redis"),
            }),
        }
    }

    /// Whether this is grouplab's own Redis, which nobody else uses.
    pub fn is_own(&self) -> bool {
        matches!(self.inner.source, RedisSource::Own { .. })
    }

    /// Stops grouplab's own `redis-server`, if it started one; it keeps nothing worth saving.
    pub async fn shut_down(&self) {
        if let Some(ready) = self.inner.ready.started() {
            ready.process.kill().await;
        }
    }

    /// The URL consumers connect to, once Redis is up.
    pub async fn url(&self) -> Result<String, CallError> {
        Ok(self.ready().await?.url.clone())
    }

    async fn ready(&self) -> Result<&Ready, CallError> {
        self.inner.ready.get(start(&self.inner.source)).await
    }

    async fn connection(&self) -> Result<(ConnectionManager, String), CallError> {
        let ready = self.ready().await?;
        Ok((ready.connection.clone(), ready.url.clone()))
    }

    /// Creates the group at the start of the stream (and the stream, if it is missing); a group
    /// that exists is left as it is.
    pub async fn create_group(&self, stream: &str, group: &str) -> Result<(), CallError> {
        let (mut con, url) = self.connection().await?;
        let created: redis::RedisResult<()> = within(
            CALL_TIMEOUT,
            &url,
            con.xgroup_create_mkstream(stream, group, "0"),
        )
        .await?;
        match created {
            Err(err) if err.code() == Some("BUSYGROUP") => Ok(()),
            other => other.map_err(|err| refused(&url, err)),
        }
    }

    /// Appends `count` entries with the same numbering and keys as Kafka's produce
    /// (`key` and `value` fields); `partition` has no meaning on a stream.
    pub async fn produce(
        &self,
        stream: &str,
        count: u32,
        keys: &KeyMode,
        text: Option<&str>,
        first_number: u64,
    ) -> Result<Produced, CallError> {
        let (mut con, url) = self.connection().await?;
        let mut pipe = redis::pipe();
        for i in 0..u64::from(count) {
            let (key, value) = numbered_message(keys, i, first_number + i, text);
            let mut fields = vec![("value", value)];
            if let Some(key) = key {
                fields.push(("key", key));
            }
            pipe.xadd(stream, "*", &fields).ignore();
        }
        within(CALL_TIMEOUT, &url, pipe.query_async::<()>(&mut con))
            .await?
            .map_err(|err| refused(&url, err))?;
        Ok(Produced {
            landed: [(0, u64::from(count))].into(),
            keys: BTreeMap::new(),
        })
    }

    /// The stream as the page shows it, or `None` if it does not exist.
    /// Consumers are not linked to instances here: the session does that.
    pub async fn describe(&self, stream: &str) -> Result<Option<StreamView>, CallError> {
        let (mut con, url) = self.connection().await?;
        let fail = |err| refused(&url, err);
        let exists: bool = within(CALL_TIMEOUT, &url, con.exists(stream))
            .await?
            .map_err(fail)?;
        if !exists {
            return Ok(None);
        }
        let length: u64 = within(CALL_TIMEOUT, &url, con.xlen(stream))
            .await?
            .map_err(fail)?;
        let newest: redis::streams::StreamRangeReply =
            within(CALL_TIMEOUT, &url, con.xrevrange_count(stream, "+", "-", 1))
                .await?
                .map_err(fail)?;
        let groups: StreamInfoGroupsReply = within(CALL_TIMEOUT, &url, con.xinfo_groups(stream))
            .await?
            .map_err(fail)?;
        let mut views = Vec::new();
        for group in groups.groups {
            let consumers: StreamInfoConsumersReply =
                within(CALL_TIMEOUT, &url, con.xinfo_consumers(stream, &group.name))
                    .await?
                    .map_err(fail)?;
            let mut consumer_views = Vec::new();
            for consumer in consumers.consumers {
                let mut entries = Vec::new();
                if consumer.pending > 0 {
                    let pending: StreamPendingCountReply = within(
                        CALL_TIMEOUT,
                        &url,
                        con.xpending_consumer_count(
                            stream,
                            &group.name,
                            "-",
                            "+",
                            MAX_PENDING_SHOWN,
                            &consumer.name,
                        ),
                    )
                    .await?
                    .map_err(fail)?;
                    entries = pending
                        .ids
                        .into_iter()
                        .map(|p| PendingEntry {
                            id: p.id,
                            idle_ms: p.last_delivered_ms as u64,
                            deliveries: p.times_delivered as u64,
                        })
                        .collect();
                }
                consumer_views.push(StreamConsumerView {
                    name: consumer.name,
                    instance: None,
                    colour: 0,
                    pending: consumer.pending as u64,
                    idle_ms: consumer.idle as u64,
                    entries,
                });
            }
            consumer_views.sort_by(|a, b| a.name.cmp(&b.name));
            views.push(StreamGroupView {
                name: group.name,
                last_delivered_id: group.last_delivered_id,
                entries_read: group.entries_read.map(|n| n as u64),
                lag: group.lag.map(|n| n as u64),
                pending: group.pending as u64,
                consumers: consumer_views,
            });
        }
        views.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Some(StreamView {
            name: stream.to_owned(),
            length,
            last_id: newest.ids.into_iter().next().map(|e| e.id),
            groups: views,
            loose_readers: Vec::new(),
        }))
    }

    /// Connections whose latest command is a plain `XREAD`: readers in no group. `CLIENT LIST`
    /// does not say which stream they read, so every lab on this Redis sees them all.
    pub async fn loose_readers(&self) -> Result<Vec<(String, String)>, CallError> {
        let (mut con, url) = self.connection().await?;
        let list: String = within(
            CALL_TIMEOUT,
            &url,
            redis::cmd("CLIENT").arg("LIST").query_async(&mut con),
        )
        .await?
        .map_err(|err| refused(&url, err))?;
        Ok(parse_client_list(&list))
    }

    /// Deletes the streams (with their groups and pending entries).
    pub async fn delete(&self, streams: &[&str]) -> Result<(), CallError> {
        if streams.is_empty() {
            return Ok(());
        }
        let (mut con, url) = self.connection().await?;
        within(CALL_TIMEOUT, &url, con.del::<_, ()>(streams))
            .await?
            .map_err(|err| refused(&url, err))
    }
}

/// Readers in no group from a `CLIENT LIST` reply: (name or address, command).
fn parse_client_list(list: &str) -> Vec<(String, String)> {
    list.lines()
        .filter_map(|line| {
            let field = |name: &str| {
                line.split(' ')
                    .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
            };
            let command = field("cmd")?;
            if command != "xread" {
                return None;
            }
            let client = field("name")
                .filter(|n| !n.is_empty())
                .or_else(|| field("addr"))?;
            Some((client.to_owned(), command.to_owned()))
        })
        .collect()
}

/// Adds this server's first-seen times to readers, keeping those seen before.
pub fn loose_readers_since(
    found: Vec<(String, String)>,
    before: &[LooseReader],
    now: grouplab_protocol::EpochMillis,
) -> Vec<LooseReader> {
    let mut readers: Vec<LooseReader> = found
        .into_iter()
        .map(|(client, command)| {
            let since = before
                .iter()
                .find(|r| r.client == client)
                .map_or(now, |r| r.since);
            LooseReader {
                client,
                command,
                since,
            }
        })
        .collect();
    readers.sort_by(|a, b| a.client.cmp(&b.client));
    readers.dedup_by(|a, b| a.client == b.client);
    readers
}

fn refused(url: &str, err: redis::RedisError) -> CallError {
    if err.is_io_error() || err.is_connection_dropped() || err.is_connection_refusal() {
        CallError::Unreachable {
            address: url.to_owned(),
        }
    } else {
        CallError::Refused(err.to_string())
    }
}

/// Connects to the operator's Redis, or starts grouplab's own and waits for its first answer.
async fn start(source: &RedisSource) -> Result<Ready, String> {
    match source {
        RedisSource::Url(url) => {
            let connection = connect(url).await.map_err(|err| {
                format!("Redis at {url} did not answer ({err}). Check that it runs, or start grouplab without --redis-url to use its own.")
            })?;
            Ok(Ready {
                url: url.clone(),
                connection,
                process: Children::default(),
            })
        }
        RedisSource::Own {
            program,
            dir,
            bind,
            password,
        } => {
            std::fs::create_dir_all(dir)
                .map_err(|err| format!("grouplab could not make {}: {err}", dir.display()))?;
            let Some(program) = find_program(program) else {
                return Err(format!(
                    "grouplab found no {} to start. Install it with `scripts/setup.sh` (Debian's redis-server package), or name your own Redis with --redis-url, then restart grouplab.",
                    program.display()
                ));
            };
            let port = free_port()
                .map_err(|err| format!("grouplab found no free port for Redis: {err}"))?;
            // The password goes in a file only its owner reads, not on the command line,
            // which every user of the machine sees in `ps`.
            let config = dir.join("redis.conf");
            let mut lines = String::new();
            if let Some(password) = password {
                lines.push_str(&format!("requirepass \"{password}\"\n"));
            }
            write_private(&config, &lines)
                .map_err(|err| format!("grouplab could not write {}: {err}", config.display()))?;
            let mut process = spawn_child(&program, |command| {
                command.arg(&config);
                // grouplab's own clients and instances dial loopback, which every address
                // but one of loopback's own must add.
                command.arg("--bind");
                if bind.is_loopback() {
                    command.arg("127.0.0.1");
                } else if bind.is_unspecified() {
                    command.arg(bind.to_string());
                } else {
                    command.args(["127.0.0.1".to_owned(), bind.to_string()]);
                }
                command
                    .args(["--port", &port.to_string()])
                    .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                    .args(["--protected-mode", "yes", "--loglevel", "warning"])
                    .arg("--dir")
                    .arg(dir)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::inherit())
            })
            .map_err(|err| {
                format!(
                    "grouplab could not start {} ({err}). Install it with `scripts/setup.sh` (Debian's redis-server package), or name your own with --redis-url, then restart grouplab.",
                    program.display()
                )
            })?;
            // Every address, or loopback: learners' machines reach the first at the page's name.
            let host = if bind.is_unspecified() {
                "0.0.0.0"
            } else {
                "127.0.0.1"
            };
            let url = match password {
                Some(password) => format!("redis://:{password}@{host}:{port}/"),
                None => format!("redis://{host}:{port}/"),
            };
            let retry = Duration::from_millis(50);
            match wait_until_answers(&mut process, START_TIMEOUT, retry, || connect(&url)).await {
                Ok(connection) => {
                    info!(port, "Redis is up");
                    Ok(Ready {
                        url,
                        connection,
                        process: Children::new(vec![process]),
                    })
                }
                Err(NeverAnswered::Exited(status)) => Err(format!(
                    "grouplab's redis-server ({}) stopped as it started ({status}); its own message is in grouplab's output.",
                    program.display()
                )),
                Err(NeverAnswered::TimedOut(err)) => Err(format!(
                    "grouplab's redis-server did not answer within {} s ({err}).",
                    START_TIMEOUT.as_secs()
                )),
            }
        }
    }
}

/// A connection that reconnects by itself when Redis comes back (the operator's may restart).
async fn connect(url: &str) -> redis::RedisResult<ConnectionManager> {
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CALL_TIMEOUT))
        .set_response_timeout(Some(CALL_TIMEOUT))
        .set_number_of_retries(2);
    let mut con = ConnectionManager::new_with_config(client, config).await?;
    redis::cmd("PING").query_async::<()>(&mut con).await?;
    Ok(con)
}

/// Writes `text` to `path`, readable by its owner only.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // A file made by an older run keeps its mode: narrow it too.
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_in_no_group_are_found_in_client_list() {
        let list = "id=3 addr=127.0.0.1:5000 laddr=127.0.0.1:6379 fd=8 name= age=9 idle=0 flags=b db=0 cmd=xread\n\
                    id=4 addr=127.0.0.1:5001 laddr=127.0.0.1:6379 fd=9 name=grouplab-A-123456 age=9 idle=0 flags=b db=0 cmd=xreadgroup\n\
                    id=5 addr=127.0.0.1:5002 laddr=127.0.0.1:6379 fd=10 name=zeph age=2 idle=0 flags=N db=0 cmd=xread\n";
        assert_eq!(
            parse_client_list(list),
            [
                ("127.0.0.1:5000".to_owned(), "xread".to_owned()),
                ("zeph".to_owned(), "xread".to_owned())
            ]
        );
    }

    #[test]
    fn a_reader_keeps_the_time_it_was_first_seen() {
        let before = [LooseReader {
            client: "zeph".into(),
            command: "xread".into(),
            since: 5,
        }];
        let now = loose_readers_since(
            vec![
                ("zeph".into(), "xread".into()),
                ("new".into(), "xread".into()),
            ],
            &before,
            9,
        );
        assert_eq!(
            now.iter()
                .map(|r| (r.client.as_str(), r.since))
                .collect::<Vec<_>>(),
            [("new", 9), ("zeph", 5)]
        );
    }
}
