//! RabbitMQ labs: grouplab's own `rabbitmq-server`, and the server's clients for it.
//!
//! Unless the operator names a RabbitMQ (`--amqp-url`), the first RabbitMQ lab that is opened
//! starts one, which takes seconds; Kafka and Redis labs never wait for it. Everything it keeps is
//! in one private folder under grouplab's data folder: node name, ports, database, logs, config.
//! Erlang normally starts a port-mapper daemon (`epmd -daemon`) that outlives the broker, so
//! grouplab runs its own `epmd` in the foreground on a private port and tells Erlang not to start
//! one. Both run under `setpriv --pdeathsig KILL` with `kill_on_drop`: neither outlives grouplab.
//!
//! The server declares, fills and deletes the lab's queues over AMQP (`lapin`) and reads them, with
//! their consumers, from the management API, the way a learner's tools would.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use grouplab_protocol::{KeyMode, RabbitConsumerView, RabbitQueueView, RabbitRefusal};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde::Deserialize;
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, OnceCell};
use tracing::{info, warn};

use crate::cluster::{ClusterError, Produced, numbered_message};
use crate::own_process::{find_program, free_port, within};

/// How long grouplab's `rabbitmq-server` may take to answer on AMQP and on its management API.
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// How long one call to RabbitMQ may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the broker refreshes the statistics the page shows (RabbitMQ's default is 5 s).
const STATISTICS_INTERVAL_MS: u32 = 500;
/// How many refused operations are remembered for the page.
const MAX_REFUSALS: usize = 20;
/// The most of the broker's log read in one poll.
const MAX_LOG_READ: u64 = 1 << 20;

/// Where RabbitMQ comes from.
#[derive(Clone, Debug)]
pub enum RabbitSource {
    /// The operator's own RabbitMQ: its AMQP URL and its management API's URL.
    Url { amqp: String, management: String },
    /// A `rabbitmq-server` (and `epmd`) grouplab starts, keeping everything in `dir`.
    Own {
        program: PathBuf,
        epmd: PathBuf,
        dir: PathBuf,
    },
}

/// RabbitMQ for the whole server, started on first use.
#[derive(Clone)]
pub struct Rabbit {
    inner: Arc<Inner>,
}

struct Inner {
    source: RabbitSource,
    ready: OnceCell<Result<Ready, String>>,
}

struct Ready {
    amqp: String,
    management: Management,
    /// One publishing channel with confirms, made again when the connection drops.
    publisher: Mutex<Option<(Connection, Channel)>>,
    /// grouplab's own `rabbitmq-server` and `epmd`, if it started them; dropping kills them.
    processes: std::sync::Mutex<Vec<Child>>,
    /// grouplab's own broker's log, where it writes the operations it refuses clients.
    log: Option<PathBuf>,
    refusals: std::sync::Mutex<RefusalLog>,
}

/// What grouplab's own broker logged about refused operations, read as the log grows.
#[derive(Default)]
struct RefusalLog {
    offset: u64,
    /// The client whose channel error's explanation is on the next line.
    waiting: Option<String>,
    recent: VecDeque<Refused>,
}

/// One refusal as logged: the client's address, and its connection name once the management
/// API has listed the connection (it may lag behind the log by a poll or two).
struct Refused {
    address: String,
    name: Option<String>,
    operation: String,
    error: String,
    seen_at: grouplab_protocol::EpochMillis,
}

/// The queues of a lab, and what clients were refused lately (grouplab's own broker only).
pub struct QueuesPolled {
    pub queues: Vec<(String, Option<RabbitQueueView>)>,
    pub refusals: Vec<RabbitRefusal>,
}

impl Rabbit {
    pub fn new(source: RabbitSource) -> Self {
        Self {
            inner: Arc::new(Inner {
                source,
                ready: OnceCell::new(),
            }),
        }
    }

    /// Whether this is grouplab's own RabbitMQ, which nobody else uses.
    pub fn is_own(&self) -> bool {
        matches!(self.inner.source, RabbitSource::Own { .. })
    }

    /// Stops grouplab's own broker and port mapper, if it started them.
    pub async fn shut_down(&self) {
        let Some(Ok(ready)) = self.inner.ready.get() else {
            return;
        };
        let processes = std::mem::take(
            &mut *ready
                .processes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for mut process in processes {
            let _ = process.kill().await;
        }
    }

    /// The AMQP URL consumers connect to, once RabbitMQ is up.
    pub async fn url(&self) -> Result<String, ClusterError> {
        Ok(self.ready().await?.amqp.clone())
    }

    async fn ready(&self) -> Result<&Ready, ClusterError> {
        let ready = self.started().await?;
        match ready.stopped() {
            Some(why) => Err(ClusterError::Unavailable(why)),
            None => Ok(ready),
        }
    }

    async fn started(&self) -> Result<&Ready, ClusterError> {
        let ready = self
            .inner
            .ready
            .get_or_init(|| async {
                start(&self.inner.source).await.map_err(|err| {
                    warn!(%err, "RabbitMQ is not available");
                    err
                })
            })
            .await;
        ready
            .as_ref()
            .map_err(|err| ClusterError::Unavailable(err.clone()))
    }

    /// The publishing channel, connecting again if the last connection is gone.
    async fn with_channel<T, F>(&self, call: impl Fn(Channel) -> F) -> Result<T, ClusterError>
    where
        F: Future<Output = lapin::Result<T>>,
    {
        let ready = self.ready().await?;
        let mut publisher = ready.publisher.lock().await;
        let usable = publisher.as_ref().is_some_and(|(connection, channel)| {
            connection.status().connected() && channel.status().connected()
        });
        if !usable {
            *publisher = None;
            let connection = within(
                CALL_TIMEOUT,
                &ready.amqp,
                connect(&ready.amqp, "grouplab-server"),
            )
            .await?
            .map_err(|err| refused(&ready.amqp, err))?;
            let channel = within(CALL_TIMEOUT, &ready.amqp, open_channel(&connection))
                .await?
                .map_err(|err| refused(&ready.amqp, err))?;
            *publisher = Some((connection, channel));
        }
        let Some((_, channel)) = publisher.as_ref() else {
            return Err(ClusterError::Internal);
        };
        let result = within(CALL_TIMEOUT, &ready.amqp, call(channel.clone())).await?;
        result.map_err(|err| refused(&ready.amqp, err))
    }

    /// Declares a lab's queue (nothing kept on disk), sending rejected messages to
    /// `dead_letter` if given; a queue that exists with the same settings is left as it is.
    pub async fn declare(
        &self,
        queue: &str,
        dead_letter: Option<&str>,
    ) -> Result<(), ClusterError> {
        let mut arguments = FieldTable::default();
        if let Some(dead_letter) = dead_letter {
            // The default exchange routes by queue name: rejected messages land in that queue.
            arguments.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString("".into()),
            );
            arguments.insert(
                "x-dead-letter-routing-key".into(),
                AMQPValue::LongString(dead_letter.into()),
            );
        }
        self.with_channel(|channel| {
            let arguments = arguments.clone();
            async move {
                channel
                    .queue_declare(queue.into(), QueueDeclareOptions::default(), arguments)
                    .await
                    .map(|_| ())
            }
        })
        .await
        .map_err(|err| match err {
            ClusterError::Refused(detail) if detail.contains("PRECONDITION_FAILED") => {
                ClusterError::Refused(format!(
                    "the queue `{queue}` already exists on this RabbitMQ with other settings ({detail}). Delete it, or use grouplab's own RabbitMQ."
                ))
            }
            other => other,
        })
    }

    /// Publishes `count` messages with the same numbering and keys as Kafka's produce (the key in
    /// a `key` header), through the default exchange to the queue, and waits for the broker's
    /// confirms.
    pub async fn produce(
        &self,
        queue: &str,
        count: u32,
        keys: &KeyMode,
        text: Option<&str>,
        first_number: u64,
    ) -> Result<Produced, ClusterError> {
        self.with_channel(|channel| async move {
            let mut confirms = Vec::with_capacity(count as usize);
            for i in 0..u64::from(count) {
                let (key, value) = numbered_message(keys, i, first_number + i, text);
                let mut properties = BasicProperties::default();
                if let Some(key) = key {
                    let mut headers = FieldTable::default();
                    headers.insert("key".into(), AMQPValue::LongString(key.into()));
                    properties = properties.with_headers(headers);
                }
                let confirm = channel
                    .basic_publish(
                        "".into(),
                        queue.into(),
                        BasicPublishOptions::default(),
                        value.as_bytes(),
                        properties,
                    )
                    .await?;
                confirms.push(confirm);
            }
            for confirm in confirms {
                confirm.await?;
            }
            Ok(())
        })
        .await?;
        Ok(Produced {
            landed: [(0, u64::from(count))].into(),
            keys: BTreeMap::new(),
        })
    }

    /// Deletes the lab's queues, with the messages they hold.
    pub async fn delete(&self, queues: &[&str]) -> Result<(), ClusterError> {
        for queue in queues {
            self.with_channel(|channel| async move {
                channel
                    .queue_delete((*queue).into(), QueueDeleteOptions::default())
                    .await
                    .map(|_| ())
            })
            .await?;
        }
        Ok(())
    }

    /// The queues as the page shows them (`None` for a queue that does not exist), read from
    /// the management API. Consumers are not linked to instances here: the session does that.
    pub async fn describe(&self, queues: &[String]) -> Result<QueuesPolled, ClusterError> {
        let ready = self.ready().await?;
        let api = &ready.management;
        let fresh = ready.read_log();
        let consumers: Vec<ApiConsumer> = api.get("/api/consumers/%2F").await?.unwrap_or_default();
        let wanted: BTreeSet<&str> = queues.iter().map(String::as_str).collect();
        let watched: Vec<&ApiConsumer> = consumers
            .iter()
            .filter(|c| wanted.contains(c.queue.name.as_str()))
            .collect();
        // Unacked counts are per channel, and connection names per connection: read them only
        // when someone consumes.
        let (channels, connections) = if watched.is_empty() && !ready.refusals_to_name(&fresh) {
            (Vec::new(), Vec::new())
        } else {
            (
                api.get::<Vec<ApiChannel>>("/api/channels?columns=name,messages_unacknowledged")
                    .await?
                    .unwrap_or_default(),
                api.get::<Vec<ApiConnection>>("/api/connections?columns=name,client_properties")
                    .await?
                    .unwrap_or_default(),
            )
        };
        let mut found = Vec::new();
        for name in queues {
            let queue: Option<ApiQueue> = api.get(&format!("/api/queues/%2F/{name}")).await?;
            let view = queue.map(|queue| {
                let mut consumers: Vec<RabbitConsumerView> = watched
                    .iter()
                    .filter(|c| &c.queue.name == name)
                    .map(|c| consumer_view(c, &channels, &connections))
                    .collect();
                consumers.sort_by(|a, b| a.tag.cmp(&b.tag));
                let stats = queue.message_stats.unwrap_or_default();
                RabbitQueueView {
                    name: name.clone(),
                    ready: queue.messages_ready,
                    unacked: queue.messages_unacknowledged,
                    dead_letter_queue: match queue.arguments.get("x-dead-letter-routing-key") {
                        Some(serde_json::Value::String(target)) => Some(target.clone()),
                        _ => None,
                    },
                    published: stats.publish,
                    delivered: stats.deliver_get,
                    redelivered: stats.redeliver,
                    acked: stats.ack,
                    consumers,
                    refusals: Vec::new(),
                }
            });
            found.push((name.clone(), view));
        }
        Ok(QueuesPolled {
            queues: found,
            refusals: ready.remember_refusals(fresh, &connections),
        })
    }
}

impl Ready {
    /// Why grouplab's own broker is gone, if it exited (it is not started again).
    fn stopped(&self) -> Option<String> {
        let mut processes = self
            .processes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let status = processes.last_mut()?.try_wait().ok()??;
        Some(format!(
            "grouplab's rabbitmq-server stopped ({status}){}. Restart grouplab to start it again.",
            self.log
                .as_ref()
                .map(|log| format!("; its log is {}", log.display()))
                .unwrap_or_default()
        ))
    }

    /// The refused operations logged since the last read: (client address, operation, error).
    fn read_log(&self) -> Vec<(String, String, String)> {
        let Some(path) = &self.log else {
            return Vec::new();
        };
        let mut log = self
            .refusals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Ok(mut file) = std::fs::File::open(path) else {
            return Vec::new();
        };
        let mut text = Vec::new();
        let read = file
            .seek(std::io::SeekFrom::Start(log.offset))
            .and_then(|_| file.take(MAX_LOG_READ).read_to_end(&mut text));
        if read.is_err() {
            return Vec::new();
        }
        // Only whole lines: a line being written is read next time.
        let whole = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        log.offset += whole as u64;
        let text = String::from_utf8_lossy(&text[..whole]);
        parse_refusals(&text, &mut log.waiting)
    }

    /// Whether some refusal waits for its client's connection name.
    fn refusals_to_name(&self, fresh: &[(String, String, String)]) -> bool {
        !fresh.is_empty()
            || self
                .refusals
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .recent
                .iter()
                .any(|r| r.name.is_none())
    }

    /// Adds fresh refusals, names those whose client's connection is listed now, and gives
    /// back the ones remembered.
    fn remember_refusals(
        &self,
        fresh: Vec<(String, String, String)>,
        connections: &[ApiConnection],
    ) -> Vec<RabbitRefusal> {
        let mut log = self
            .refusals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = crate::session::now_ms();
        for (address, operation, error) in fresh {
            log.recent.push_back(Refused {
                address,
                name: None,
                operation,
                error,
                seen_at: now,
            });
            if log.recent.len() > MAX_REFUSALS {
                log.recent.pop_front();
            }
        }
        for refused in log.recent.iter_mut().filter(|r| r.name.is_none()) {
            let prefix = format!("{} ->", refused.address);
            refused.name = connections
                .iter()
                .find(|c| c.name.starts_with(&prefix))
                .and_then(|c| c.client_properties.get("connection_name"))
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned);
        }
        log.recent
            .iter()
            .map(|r| RabbitRefusal {
                client: match &r.name {
                    Some(name) => format!("{name} ({})", r.address),
                    None => r.address.clone(),
                },
                operation: r.operation.clone(),
                error: r.error.clone(),
                seen_at: r.seen_at,
            })
            .collect()
    }
}

/// Refused operations in RabbitMQ's log: a "Channel error on connection … (ADDRESS -> …)" line,
/// then "operation METHOD caused a channel exception ERROR". `waiting` carries a first line whose
/// second is not read yet.
fn parse_refusals(text: &str, waiting: &mut Option<String>) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    for line in text.lines() {
        if line.contains("Channel error on connection") {
            *waiting = line
                .split_once(" (")
                .and_then(|(_, rest)| rest.split_once(" -> "))
                .map(|(address, _)| address.to_owned());
        } else if let Some(address) = waiting.take()
            && let Some((_, rest)) = line.split_once("operation ")
            && let Some((operation, error)) = rest.split_once(" caused a channel exception ")
        {
            found.push((address, operation.to_owned(), error.trim().to_owned()));
        }
    }
    found
}

fn consumer_view(
    consumer: &ApiConsumer,
    channels: &[ApiChannel],
    connections: &[ApiConnection],
) -> RabbitConsumerView {
    let channel = &consumer.channel_details;
    let named = connections
        .iter()
        .find(|c| c.name == channel.connection_name)
        .and_then(|c| c.client_properties.get("connection_name"))
        .and_then(serde_json::Value::as_str);
    RabbitConsumerView {
        tag: consumer.consumer_tag.clone(),
        instance: None,
        colour: 0,
        connection: named.map_or_else(
            || format!("{}:{}", channel.peer_host, channel.peer_port),
            str::to_owned,
        ),
        prefetch: consumer.prefetch_count,
        ack_required: consumer.ack_required,
        unacked: channels
            .iter()
            .find(|c| c.name == channel.name)
            .map_or(0, |c| c.messages_unacknowledged),
    }
}

/// The management API's answers, as far as the page needs them.
#[derive(Deserialize)]
struct ApiQueue {
    #[serde(default)]
    messages_ready: u64,
    #[serde(default)]
    messages_unacknowledged: u64,
    #[serde(default)]
    arguments: BTreeMap<String, serde_json::Value>,
    message_stats: Option<ApiStats>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct ApiStats {
    publish: u64,
    deliver_get: u64,
    redeliver: u64,
    ack: u64,
}

#[derive(Deserialize)]
struct ApiConsumer {
    consumer_tag: String,
    queue: ApiName,
    channel_details: ApiChannelDetails,
    #[serde(default)]
    prefetch_count: u16,
    #[serde(default)]
    ack_required: bool,
}

#[derive(Deserialize)]
struct ApiName {
    name: String,
}

#[derive(Deserialize)]
struct ApiChannelDetails {
    name: String,
    connection_name: String,
    #[serde(default)]
    peer_host: String,
    #[serde(default)]
    peer_port: u16,
}

#[derive(Deserialize)]
struct ApiChannel {
    name: String,
    #[serde(default)]
    messages_unacknowledged: u64,
}

#[derive(Deserialize)]
struct ApiConnection {
    name: String,
    #[serde(default)]
    client_properties: BTreeMap<String, serde_json::Value>,
}

/// RabbitMQ's management API over HTTP.
struct Management {
    base: String,
    authorization: String,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl Management {
    /// `base` is `http://user:password@host:port` or `http://host:port` (then guest, guest).
    fn new(base: &str) -> Result<Self, String> {
        let url = url::Url::parse(base)
            .map_err(|err| format!("the management URL `{base}` is not valid: {err}"))?;
        let user = if url.username().is_empty() {
            "guest"
        } else {
            url.username()
        };
        let password = url.password().unwrap_or("guest");
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let host = url.host_str().unwrap_or("127.0.0.1");
        let port = url.port_or_known_default().unwrap_or(15672);
        Ok(Self {
            base: format!("{}://{host}:{port}", url.scheme()),
            authorization: format!("Basic {credentials}"),
            client: Client::builder(TokioExecutor::new()).build_http(),
        })
    }

    /// A GET of `path`; `None` when the API says there is no such thing (404).
    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<Option<T>, ClusterError> {
        let unreachable = || ClusterError::Unreachable {
            bootstrap: self.base.clone(),
        };
        let request = hyper::Request::get(format!("{}{path}", self.base))
            .header(hyper::header::AUTHORIZATION, &self.authorization)
            .body(Empty::new())
            .map_err(|err| ClusterError::Refused(err.to_string()))?;
        let call = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|_| unreachable())?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|_| unreachable())?
                .to_bytes();
            Ok::<_, ClusterError>((status, body))
        };
        let (status, body) = tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .map_err(|_| unreachable())??;
        if status == hyper::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(ClusterError::Refused(format!(
                "RabbitMQ's management API answered {status} to {path}"
            )));
        }
        serde_json::from_slice(&body).map(Some).map_err(|err| {
            ClusterError::Refused(format!(
                "RabbitMQ's management API sent an answer grouplab cannot read ({err})"
            ))
        })
    }
}

fn refused(url: &str, err: lapin::Error) -> ClusterError {
    use lapin::ErrorKind;
    match err.kind() {
        ErrorKind::IOError(_) | ErrorKind::InvalidConnectionState(_) => ClusterError::Unreachable {
            bootstrap: url.to_owned(),
        },
        _ => ClusterError::Refused(err.to_string()),
    }
}

async fn connect(url: &str, name: &str) -> lapin::Result<Connection> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    Connection::connect(url, properties).await
}

async fn open_channel(connection: &Connection) -> lapin::Result<Channel> {
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

/// Connects to the operator's RabbitMQ, or starts grouplab's own and waits until it answers.
async fn start(source: &RabbitSource) -> Result<Ready, String> {
    match source {
        RabbitSource::Url { amqp, management } => {
            let api = Management::new(management)?;
            answers(amqp, &api).await.map_err(|err| {
                format!("RabbitMQ at {amqp} (management API at {management}) did not answer ({err}). Check that it runs with the management plugin, or start grouplab without --amqp-url to use its own.")
            })?;
            Ok(Ready {
                amqp: amqp.clone(),
                management: api,
                publisher: Mutex::new(None),
                processes: std::sync::Mutex::new(Vec::new()),
                log: None,
                refusals: Default::default(),
            })
        }
        RabbitSource::Own { program, epmd, dir } => start_own(program, epmd, dir).await,
    }
}

/// Whether RabbitMQ takes an AMQP connection and its management API answers.
async fn answers(amqp: &str, api: &Management) -> Result<(), String> {
    let connection = within(CALL_TIMEOUT, amqp, connect(amqp, "grouplab-server"))
        .await
        .map_err(|err| err.to_string())?
        .map_err(|err| err.to_string())?;
    let _ = connection.close(200, "grouplab: checked".into()).await;
    api.get::<serde_json::Value>("/api/overview")
        .await
        .map_err(|err| err.to_string())?;
    Ok(())
}

const INSTALL: &str = "Install it with `scripts/setup.sh` (Debian's rabbitmq-server package), or name your own RabbitMQ with --amqp-url, then restart grouplab.";

async fn start_own(program: &Path, epmd: &Path, dir: &Path) -> Result<Ready, String> {
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
            "listeners.tcp.1 = 127.0.0.1:{amqp_port}\n\
             management.tcp.ip = 127.0.0.1\n\
             management.tcp.port = {management_port}\n\
             collect_statistics_interval = {STATISTICS_INTERVAL_MS}\n\
             log.console = false\n\
             log.file.level = warning\n"
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
    let epmd_process = Command::new("setpriv")
        .args(["--pdeathsig", "KILL", "--"])
        .arg(&epmd)
        .args(["-port", &epmd_port.to_string(), "-address", "127.0.0.1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|err| spawn_failed(&epmd, err))?;
    let mut processes = vec![epmd_process];
    let at = |name: &str| dir.join(name);
    let broker = Command::new("setpriv")
        .args(["--pdeathsig", "KILL", "--"])
        .arg(&program)
        // The script then runs Erlang in its own place (exec), so the kill reaches the broker.
        .env("RUNNING_UNDER_SYSTEMD", "1")
        .env("HOME", &dir)
        .env("ERL_EPMD_PORT", epmd_port.to_string())
        .env("RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS", "-start_epmd false")
        .env("RABBITMQ_NODENAME", "grouplab@localhost")
        .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
        .env("RABBITMQ_NODE_PORT", amqp_port.to_string())
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
        .kill_on_drop(true)
        .spawn()
        .map_err(|err| spawn_failed(&program, err))?;
    processes.push(broker);

    let amqp = format!("amqp://guest:guest@127.0.0.1:{amqp_port}/%2f");
    let management = Management::new(&format!("http://127.0.0.1:{management_port}"))?;
    let log = at("log").join("grouplab@localhost.log");
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    loop {
        if let Some(Ok(Some(status))) = processes.last_mut().map(Child::try_wait) {
            return Err(format!(
                "grouplab's rabbitmq-server ({}) stopped as it started ({status}); its log is {}.",
                program.display(),
                log.display()
            ));
        }
        match answers(&amqp, &management).await {
            Ok(()) => {
                info!(%amqp, "RabbitMQ is up");
                return Ok(Ready {
                    amqp,
                    management,
                    publisher: Mutex::new(None),
                    processes: std::sync::Mutex::new(processes),
                    log: Some(log),
                    refusals: Default::default(),
                });
            }
            Err(err) if tokio::time::Instant::now() >= deadline => {
                return Err(format!(
                    "grouplab's rabbitmq-server did not answer within {} s ({err}); its log is {}.",
                    START_TIMEOUT.as_secs(),
                    log.display()
                ));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_operations_are_read_from_the_log_even_split_across_reads() {
        let first = "2026-11-23 15:52:42.953753+00:00 [warning] <0.634.0> Message store rebuilding indices\n\
            2026-11-23 15:52:43.214319+00:00 [error] <0.792.0> Channel error on connection <0.783.0> (127.0.0.1:37248 -> 127.0.0.1:25672, vhost: '/', user: 'guest'), channel 1:\n";
        let second = "2026-11-23 15:52:43.214319+00:00 [error] <0.792.0> operation exchange.declare caused a channel exception access_refused: operation not permitted on the default exchange\n";
        let mut waiting = None;
        assert!(parse_refusals(first, &mut waiting).is_empty());
        assert_eq!(waiting.as_deref(), Some("127.0.0.1:37248"));
        assert_eq!(
            parse_refusals(second, &mut waiting),
            [(
                "127.0.0.1:37248".to_owned(),
                "exchange.declare".to_owned(),
                "access_refused: operation not permitted on the default exchange".to_owned()
            )]
        );
        assert!(waiting.is_none());
        // An explanation with no error line before it is not a refusal.
        assert!(parse_refusals(second, &mut waiting).is_empty());
    }
}
