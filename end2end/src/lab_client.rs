//! [`LabClient`]: a lab's websocket, kept as the page keeps it.

use std::time::Duration;

use anyhow::{Context, bail};

use crate::{START_DEADLINE, TestServer};

/// A websocket client that keeps a lab view the way the page does: by applying every event.
pub struct LabClient {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    pub view: Option<grouplab_protocol::LabSnapshot>,
    /// Every notice received, oldest first.
    pub notices: Vec<grouplab_protocol::Notice>,
}

impl LabClient {
    pub async fn connect(server: &TestServer, lab: &str) -> anyhow::Result<Self> {
        let (socket, _) = tokio_tungstenite::connect_async(server.ws_url(lab)).await?;
        Ok(Self {
            socket,
            view: None,
            notices: Vec::new(),
        })
    }

    /// Connects as the learner whose cookie (`name=value`) this is, as their page does.
    pub async fn connect_as(server: &TestServer, lab: &str, cookie: &str) -> anyhow::Result<Self> {
        Self::connect_url(&server.ws_url(lab), cookie).await
    }

    /// Opens the lab socket at `path` (an instructor's read-only view of a learner's lab, say)
    /// with `cookie`, and waits for the snapshot.
    pub async fn open_path(server: &TestServer, path: &str, cookie: &str) -> anyhow::Result<Self> {
        let url = format!("ws://{}{path}", server.addr);
        let mut client = Self::connect_url(&url, cookie).await?;
        client
            .wait_until("the snapshot", START_DEADLINE, |c| c.view.is_some())
            .await?;
        Ok(client)
    }

    async fn connect_url(url: &str, cookie: &str) -> anyhow::Result<Self> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = url.into_client_request()?;
        request
            .headers_mut()
            .insert("Cookie", cookie.parse().context("a cookie header")?);
        let (socket, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Self {
            socket,
            view: None,
            notices: Vec::new(),
        })
    }

    /// [`LabClient::connect_as`], then waits for the snapshot.
    pub async fn open_as(server: &TestServer, lab: &str, cookie: &str) -> anyhow::Result<Self> {
        let mut client = Self::connect_as(server, lab, cookie).await?;
        client
            .wait_until("the snapshot", START_DEADLINE, |c| c.view.is_some())
            .await?;
        Ok(client)
    }

    /// Connects and waits for the snapshot, as a page does before it shows anything.
    pub async fn open(server: &TestServer, lab: &str) -> anyhow::Result<Self> {
        let mut client = Self::connect(server, lab).await?;
        client
            .wait_until("the snapshot", Duration::from_secs(10), |c| {
                c.view.is_some()
            })
            .await?;
        Ok(client)
    }

    pub async fn send(&mut self, command: &grouplab_protocol::ClientCommand) -> anyhow::Result<()> {
        self.send_text(&serde_json::to_string(command)?).await
    }

    pub async fn send_text(&mut self, text: &str) -> anyhow::Result<()> {
        use futures::SinkExt;
        self.socket
            .send(tokio_tungstenite::tungstenite::Message::text(text))
            .await?;
        Ok(())
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) -> anyhow::Result<()> {
        use futures::SinkExt;
        self.socket
            .send(tokio_tungstenite::tungstenite::Message::binary(bytes))
            .await?;
        Ok(())
    }

    /// Reads one event and applies it.
    pub async fn next_event(&mut self) -> anyhow::Result<grouplab_protocol::ServerEvent> {
        use futures::StreamExt;
        use grouplab_protocol::ServerEvent;
        loop {
            let message = self
                .socket
                .next()
                .await
                .context("the server closed the socket")??;
            let tokio_tungstenite::tungstenite::Message::Text(text) = message else {
                continue;
            };
            let event: ServerEvent = serde_json::from_str(&text).with_context(|| {
                format!("the server sent an event the protocol cannot read: {text}")
            })?;
            match (&event, &mut self.view) {
                (ServerEvent::Snapshot(snapshot), _) => self.view = Some((**snapshot).clone()),
                (ServerEvent::Notice(notice), _) => self.notices.push(notice.clone()),
                (event, Some(view)) => view.apply(event),
                (event, None) => bail!("an event came before the snapshot: {event:?}"),
            }
            return Ok(event);
        }
    }

    /// Reads events until the view satisfies `done`, failing after `deadline`.
    pub async fn wait_until(
        &mut self,
        what: &str,
        deadline: Duration,
        done: impl Fn(&Self) -> bool,
    ) -> anyhow::Result<()> {
        let until = tokio::time::Instant::now() + deadline;
        while !done(self) {
            match tokio::time::timeout_at(until, self.next_event()).await {
                Ok(result) => {
                    result?;
                }
                Err(_) => bail!(
                    "timed out after {deadline:?} waiting for {what}; notices: {:?}",
                    self.notices
                ),
            }
        }
        Ok(())
    }

    /// Creates a topic and waits until its lanes are in the view.
    pub async fn create_topic(&mut self, topic: &str, partitions: i32) -> anyhow::Result<()> {
        self.send(&grouplab_protocol::ClientCommand::CreateTopic {
            topic: topic.into(),
            partitions,
        })
        .await?;
        self.wait_until(&format!("the lanes of `{topic}`"), START_DEADLINE, |p| {
            p.view().topic(topic).is_some()
        })
        .await
    }

    /// Asks for `count` instances of `group` reading `topic`, with the default settings.
    pub async fn start_instances(
        &mut self,
        group: &str,
        topic: &str,
        count: usize,
    ) -> anyhow::Result<()> {
        for _ in 0..count {
            self.send(&grouplab_protocol::ClientCommand::StartInstance {
                group: group.into(),
                topic: topic.into(),
                settings: grouplab_protocol::ConsumerSettings::default(),
            })
            .await?;
        }
        Ok(())
    }

    /// Asks for one instance of `group` reading `topic`, with these settings.
    pub async fn start_instance(
        &mut self,
        group: &str,
        topic: &str,
        settings: grouplab_protocol::ConsumerSettings,
    ) -> anyhow::Result<()> {
        self.send(&grouplab_protocol::ClientCommand::StartInstance {
            group: group.into(),
            topic: topic.into(),
            settings,
        })
        .await
    }

    /// Starts one instance, waits until it runs (joined, or reading), and gives its id.
    pub async fn start_running(
        &mut self,
        group: &str,
        topic: &str,
        settings: grouplab_protocol::ConsumerSettings,
        deadline: Duration,
    ) -> anyhow::Result<grouplab_protocol::InstanceId> {
        let before: Vec<_> = self.view().instances.iter().map(|i| i.id).collect();
        self.start_instance(group, topic, settings).await?;
        let new = |view: &grouplab_protocol::LabSnapshot| {
            view.instances
                .iter()
                .find(|i| {
                    !before.contains(&i.id) && i.state == grouplab_protocol::InstanceState::Running
                })
                .map(|i| i.id)
        };
        self.wait_until("the new instance running", deadline, |c| {
            new(c.view()).is_some()
        })
        .await?;
        new(self.view()).context("the new instance is gone")
    }

    /// Stops an instance gracefully and waits until its process has exited.
    pub async fn stop_instance(
        &mut self,
        instance: grouplab_protocol::InstanceId,
        deadline: Duration,
    ) -> anyhow::Result<()> {
        self.send(&grouplab_protocol::ClientCommand::StopInstance { instance })
            .await?;
        self.wait_until(&format!("instance {} to stop", instance.0), deadline, |c| {
            c.view().instance(instance).is_some_and(|i| !i.is_alive())
        })
        .await
    }

    /// Produces `count` messages and waits until the topic holds at least `total` of them.
    pub async fn produce(
        &mut self,
        topic: &str,
        count: u32,
        keys: grouplab_protocol::KeyMode,
        partition: Option<i32>,
        total: i64,
    ) -> anyhow::Result<()> {
        self.send(&grouplab_protocol::ClientCommand::Produce {
            topic: topic.into(),
            count,
            keys,
            partition,
            text: None,
        })
        .await?;
        self.wait_until(
            &format!("{total} messages in `{topic}`"),
            START_DEADLINE,
            |c| {
                c.view()
                    .topic(topic)
                    .is_some_and(|t| t.message_count() >= total)
            },
        )
        .await
    }

    /// At the start of each of `seconds` seconds from `started`, produces `rate` messages to
    /// `topic` and reads events until the page has counted them. Returns, per second, how long
    /// its messages took to be counted, and, per message batch received, how long it had been
    /// since its oldest message's consumer callback (µs, the instances' clock).
    pub async fn produce_each_second(
        &mut self,
        topic: &str,
        rate: u32,
        seconds: u32,
        started: std::time::Instant,
        deadline: Duration,
    ) -> anyhow::Result<(Vec<Duration>, Vec<u64>)> {
        let mut latencies = Vec::new();
        let mut callbacks = Vec::new();
        let mut expected = self.received_total();
        for second in 0..seconds {
            let tick = started + Duration::from_secs(u64::from(second));
            tokio::time::sleep_until(tick.into()).await;
            let sent = std::time::Instant::now();
            self.send(&grouplab_protocol::ClientCommand::Produce {
                topic: topic.into(),
                count: rate,
                keys: grouplab_protocol::KeyMode::RoundRobin,
                partition: None,
                text: None,
            })
            .await?;
            expected += u64::from(rate);
            let until = tokio::time::Instant::now() + deadline;
            while self.received_total() < expected {
                let event = tokio::time::timeout_at(until, self.next_event())
                    .await
                    .context("the produced messages were not counted in time")??;
                if let grouplab_protocol::ServerEvent::Messages(batch) = &event
                    && let Some(span) = batch.reported_us
                {
                    callbacks.push(crate::now_us().saturating_sub(span.first));
                }
            }
            latencies.push(sent.elapsed());
        }
        Ok((latencies, callbacks))
    }

    /// Waits until step `index` (0-based) of the lab has passed, and returns how long that took;
    /// on timeout the error says what the step's checks saw last.
    pub async fn wait_for_step(
        &mut self,
        index: usize,
        deadline: Duration,
    ) -> anyhow::Result<Duration> {
        let began = std::time::Instant::now();
        let result = self
            .wait_until(&format!("step {}", index + 1), deadline, |c| {
                c.view()
                    .progress
                    .steps
                    .get(index)
                    .is_some_and(|s| s.passed_at.is_some())
            })
            .await;
        if let Err(err) = result {
            let detail = self
                .view()
                .progress
                .steps
                .get(index)
                .map(|s| s.detail.clone())
                .unwrap_or_default();
            bail!("{err}\nthe step's checks said: {detail}");
        }
        Ok(began.elapsed())
    }

    /// Whether exactly `count` instances run, each holding `partitions` partitions by its own
    /// rebalance callbacks: the steady state benchmarks start from.
    pub fn running_evenly(&self, count: usize, partitions: usize) -> bool {
        let running: Vec<_> = self
            .view()
            .instances
            .iter()
            .filter(|i| i.state == grouplab_protocol::InstanceState::Running)
            .collect();
        running.len() == count && running.iter().all(|i| i.partitions.len() == partitions)
    }

    /// Messages received by every instance in the view, counted exactly.
    pub fn received_total(&self) -> u64 {
        self.view().instances.iter().map(|i| i.received).sum()
    }

    pub fn view(&self) -> &grouplab_protocol::LabSnapshot {
        self.view.as_ref().expect("the snapshot arrived")
    }
}

/// The size of an event as the server sends it, in bytes of JSON.
pub fn encoded_len(event: &grouplab_protocol::ServerEvent) -> u64 {
    serde_json::to_string(event).map_or(0, |json| json.len() as u64)
}
