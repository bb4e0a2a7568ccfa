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
//!
//! - `process`: grouplab's own `rabbitmq-server` and `epmd`;
//! - `management`: the management API's answers, read as the page needs them;
//! - `refusals`: operations the broker refused clients, read from its log.

mod management;
mod process;
mod refusals;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use grouplab_protocol::{KeyMode, RabbitConsumerView, RabbitQueueView, RabbitRefusal};
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tokio::sync::Mutex;
use tracing::warn;

use self::management::{
    ApiChannel, ApiConnection, ApiConsumer, ApiQueue, Management, consumer_view,
};
use self::process::start_own;
use self::refusals::Refusals;
use super::own_process::{Children, StartedOnce, within};
use super::{CallError, Produced, numbered_message};

/// How long one call to RabbitMQ may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Where RabbitMQ comes from.
#[derive(Clone, Debug)]
pub enum RabbitSource {
    /// The operator's own RabbitMQ: its AMQP URL and its management API's URL.
    Url { amqp: String, management: String },
    /// A `rabbitmq-server` (and `epmd`) grouplab starts, keeping everything in `dir`. Its AMQP
    /// port listens on loopback and on `bind` (every address when `bind` is unspecified); its
    /// management API on loopback only.
    Own {
        program: PathBuf,
        epmd: PathBuf,
        dir: PathBuf,
        bind: std::net::IpAddr,
    },
    /// A virtual host of its own on another `Rabbit` (a class's learner's), reached by a user of
    /// its own: created through the management API when first used.
    VirtualHost {
        server: Rabbit,
        vhost: String,
        user: String,
        password: String,
    },
}

impl std::fmt::Debug for Rabbit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Rabbit").field(&self.inner.source).finish()
    }
}

/// RabbitMQ for the whole server, started on first use.
#[derive(Clone)]
pub struct Rabbit {
    inner: Arc<Inner>,
}

struct Inner {
    source: RabbitSource,
    ready: StartedOnce<Ready>,
    /// Set by [`Rabbit::shut_down`]: a virtual host still being made then is deleted as soon
    /// as it is ready.
    closed: std::sync::atomic::AtomicBool,
}

struct Ready {
    /// What grouplab dials; for its own broker, as `guest` on loopback, the only place RabbitMQ
    /// lets `guest` in from.
    amqp: String,
    /// Where a learner's machine reaches the AMQP port: the host of the URLs made for virtual
    /// hosts (`0.0.0.0` is then read as the name the page was opened with).
    learner_host: String,
    /// The virtual host the lab's queues live in, as the management API's paths spell it.
    vhost: String,
    management: Management,
    /// One publishing channel with confirms, made again when the connection drops.
    publisher: Mutex<Option<(Connection, Channel)>>,
    /// grouplab's own `epmd` and `rabbitmq-server` (the last), if it started them.
    processes: Children,
    /// What grouplab's own broker's log says it refused clients.
    refusals: Refusals,
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
                ready: StartedOnce::new("RabbitMQ"),
                closed: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// Whether this is grouplab's own RabbitMQ (or a virtual host of it), which nobody else uses.
    pub fn is_own(&self) -> bool {
        match &self.inner.source {
            RabbitSource::Own { .. } => true,
            RabbitSource::VirtualHost { server, .. } => server.is_own(),
            RabbitSource::Url { .. } => false,
        }
    }

    /// A virtual host `vhost` of this RabbitMQ, reached as `user` with `password`: a class's
    /// learner's, whose queues, connections and consumers no other learner's user can see.
    pub fn virtual_host(&self, vhost: &str, user: &str, password: &str) -> Self {
        Self::new(RabbitSource::VirtualHost {
            server: self.clone(),
            vhost: vhost.to_owned(),
            user: user.to_owned(),
            password: password.to_owned(),
        })
    }

    /// Stops grouplab's own broker and port mapper, if it started them; for a virtual host,
    /// deletes it (which closes its connections) and its user, if they were made.
    pub async fn shut_down(&self) {
        self.inner
            .closed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let Some(ready) = self.inner.ready.started() else {
            return;
        };
        match &self.inner.source {
            RabbitSource::VirtualHost { .. } => self.delete_virtual_host(ready).await,
            RabbitSource::Own { .. } | RabbitSource::Url { .. } => ready.processes.kill().await,
        }
    }

    /// Deletes a virtual host source's virtual host and user (nothing for other sources).
    async fn delete_virtual_host(&self, ready: &Ready) {
        let RabbitSource::VirtualHost { vhost, user, .. } = &self.inner.source else {
            return;
        };
        for path in [format!("/api/vhosts/{vhost}"), format!("/api/users/{user}")] {
            if let Err(err) = ready.management.delete(&path).await {
                warn!(%err, "a learner's RabbitMQ virtual host or user could not be deleted");
            }
        }
    }

    /// The AMQP URL consumers connect to, once RabbitMQ is up.
    pub async fn url(&self) -> Result<String, CallError> {
        Ok(self.ready().await?.amqp.clone())
    }

    async fn ready(&self) -> Result<&Ready, CallError> {
        let ready = self.started().await?;
        match ready.stopped() {
            Some(why) => Err(CallError::Unavailable(why)),
            None => Ok(ready),
        }
    }

    async fn started(&self) -> Result<&Ready, CallError> {
        let ready = self.inner.ready.get(start(&self.inner.source)).await?;
        if self.inner.closed.load(std::sync::atomic::Ordering::SeqCst) {
            // Shut down while it was being made: what was made goes too.
            self.delete_virtual_host(ready).await;
            return Err(CallError::Unavailable(
                "This RabbitMQ was shut down.".to_owned(),
            ));
        }
        Ok(ready)
    }

    /// The publishing channel, connecting again if the last connection is gone.
    async fn with_channel<T, F>(&self, call: impl Fn(Channel) -> F) -> Result<T, CallError>
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
            return Err(CallError::Internal);
        };
        let result = within(CALL_TIMEOUT, &ready.amqp, call(channel.clone())).await?;
        result.map_err(|err| refused(&ready.amqp, err))
    }

    /// Declares a lab's queue (nothing kept on disk), sending rejected messages to
    /// `dead_letter` if given; a queue that exists with the same settings is left as it is.
    pub async fn declare(&self, queue: &str, dead_letter: Option<&str>) -> Result<(), CallError> {
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
            CallError::Refused(detail) if detail.contains("PRECONDITION_FAILED") => {
                CallError::Refused(format!(
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
    ) -> Result<Produced, CallError> {
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
    pub async fn delete(&self, queues: &[&str]) -> Result<(), CallError> {
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
    pub async fn describe(&self, queues: &[String]) -> Result<QueuesPolled, CallError> {
        let ready = self.ready().await?;
        let api = &ready.management;
        let fresh = ready.refusals.read();
        let consumers: Vec<ApiConsumer> = api
            .get(&format!("/api/consumers/{}", ready.vhost))
            .await?
            .unwrap_or_default();
        let wanted: BTreeSet<&str> = queues.iter().map(String::as_str).collect();
        let watched: Vec<&ApiConsumer> = consumers
            .iter()
            .filter(|c| wanted.contains(c.queue.name.as_str()))
            .collect();
        // Unacked counts are per channel, and connection names per connection: read them only
        // when someone consumes.
        let (channels, connections) = if watched.is_empty() && !ready.refusals.to_name(&fresh) {
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
            let queue: Option<ApiQueue> = api
                .get(&format!("/api/queues/{}/{name}", ready.vhost))
                .await?;
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
            refusals: ready.refusals.remember(fresh, &connections),
        })
    }
}

impl Ready {
    /// Why grouplab's own broker is gone, if it exited (it is not started again).
    fn stopped(&self) -> Option<String> {
        let status = self.processes.last_ended()?;
        Some(format!(
            "grouplab's rabbitmq-server stopped ({status}){}. Restart grouplab to start it again.",
            self.refusals
                .log()
                .map(|log| format!("; its log is {}", log.display()))
                .unwrap_or_default()
        ))
    }
}

fn refused(url: &str, err: lapin::Error) -> CallError {
    use lapin::ErrorKind;
    match err.kind() {
        ErrorKind::IOError(_) | ErrorKind::InvalidConnectionState(_) => CallError::Unreachable {
            address: url.to_owned(),
        },
        _ => CallError::Refused(err.to_string()),
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
        RabbitSource::VirtualHost {
            server,
            vhost,
            user,
            password,
        } => {
            // Boxed: starting a virtual host waits for the server it lives on to start.
            let ready = Box::pin(server.ready())
                .await
                .map_err(|err| err.to_string())?;
            let api = ready.management.clone();
            let create = async {
                api.put(&format!("/api/vhosts/{vhost}"), &serde_json::json!({}))
                    .await?;
                api.put(
                    &format!("/api/users/{user}"),
                    &serde_json::json!({ "password": password, "tags": "" }),
                )
                .await?;
                api.put(
                    &format!("/api/permissions/{vhost}/{user}"),
                    &serde_json::json!({ "configure": ".*", "write": ".*", "read": ".*" }),
                )
                .await
            };
            create.await.map_err(|err| {
                format!("grouplab could not make your own RabbitMQ virtual host ({err}).")
            })?;
            let mut amqp = url::Url::parse(&ready.amqp)
                .map_err(|err| format!("RabbitMQ's URL is not valid: {err}"))?;
            let named =
                amqp.set_username(user).is_ok() && amqp.set_password(Some(password)).is_ok();
            if !named {
                return Err("RabbitMQ's URL cannot carry a user".to_owned());
            }
            amqp.set_path(vhost);
            if amqp.set_host(Some(&ready.learner_host)).is_err() {
                return Err(format!(
                    "RabbitMQ's address {} cannot be put in a URL",
                    ready.learner_host
                ));
            }
            Ok(Ready {
                amqp: amqp.to_string(),
                learner_host: ready.learner_host.clone(),
                vhost: vhost.clone(),
                management: api,
                publisher: Mutex::new(None),
                processes: Children::default(),
                // The broker's log is everyone's: another learner's refusals are not shown.
                refusals: Refusals::default(),
            })
        }
        RabbitSource::Url { amqp, management } => {
            let api = Management::new(management)?;
            answers(amqp, &api).await.map_err(|err| {
                format!("RabbitMQ at {amqp} (management API at {management}) did not answer ({err}). Check that it runs with the management plugin, or start grouplab without --amqp-url to use its own.")
            })?;
            Ok(Ready {
                amqp: amqp.clone(),
                learner_host: url::Url::parse(amqp)
                    .ok()
                    .and_then(|url| url.host_str().map(str::to_owned))
                    .unwrap_or_else(|| "127.0.0.1".to_owned()),
                vhost: vhost_of(amqp),
                management: api,
                publisher: Mutex::new(None),
                processes: Children::default(),
                refusals: Refusals::default(),
            })
        }
        RabbitSource::Own {
            program,
            epmd,
            dir,
            bind,
        } => start_own(program, epmd, dir, *bind).await,
    }
}

/// The virtual host an AMQP URL names, as the management API's paths spell it (`%2F` for `/`).
fn vhost_of(amqp: &str) -> String {
    match url::Url::parse(amqp).map(|url| url.path().trim_start_matches('/').to_owned()) {
        Ok(path) if !path.is_empty() => path,
        _ => "%2F".to_owned(),
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
