//! What Redis and RabbitMQ labs share: grouplab starts their broker when the first such lab is
//! opened (Kafka labs never wait for it), the lab's stream or queue is made once it answers, and
//! its health is whether it answers the lab's polls.

use std::collections::BTreeSet;

use grouplab_protocol::{
    Backend, BrokerHealth, BrokerView, InstanceId, InstanceView, Notice, ServerEvent, free_colour,
};

use super::actor::Session;
use grouplab_backends::CallError;
use grouplab_backends::LabBroker;

impl Session {
    fn backend(&self) -> Backend {
        self.lab.content.setup.broker
    }

    pub(super) fn is_kafka(&self) -> bool {
        self.backend() == Backend::Kafka
    }

    pub(super) fn is_redis(&self) -> bool {
        self.backend() == Backend::Redis
    }

    /// What the lab calls its topics, as a learner reads it.
    pub(super) fn topic_word(&self) -> &'static str {
        match self.backend() {
            Backend::Kafka => "topics",
            Backend::Redis => "streams",
            Backend::RabbitMq => "queues",
        }
    }

    /// Whether the lab's broker is grouplab's own, which nobody else uses.
    pub(super) fn broker_is_own(&self) -> bool {
        match self.backend() {
            Backend::Kafka => self.deps.broker.is_some(),
            Backend::Redis => self.deps.redis.is_own(),
            Backend::RabbitMq => self.deps.rabbit.is_own(),
        }
    }

    /// The answer to a command that needs the lab's Redis or RabbitMQ before it has answered,
    /// or when it cannot.
    pub(super) fn lab_broker_unavailable(&self) -> Notice {
        let name = match self.backend() {
            Backend::RabbitMq => "RabbitMQ",
            _ => "Redis",
        };
        match &self.view.broker.health {
            BrokerHealth::Down { reason } => {
                Notice::error(format!("{name} is not available"), reason.clone())
            }
            _ => Notice::info(
                format!("{name} is still starting"),
                format!(
                    "grouplab starts its own {name} when a {name} lab is first opened; it takes {}. Try again in a few seconds.",
                    if self.backend() == Backend::RabbitMq {
                        "several seconds"
                    } else {
                        "a moment"
                    }
                ),
            ),
        }
    }

    /// On Redis and RabbitMQ, grouplab writes only to the lab's own streams or queues: the
    /// broker may hold anyone's.
    pub(super) fn writable(&self, topic: &str) -> Result<(), Notice> {
        if !self.is_kafka() && !self.topics.contains(topic) {
            let word = self.topic_word();
            return Err(Notice::error(
                format!("`{topic}` is not one of this lab's {word}"),
                format!(
                    "On {}, grouplab works only with the lab's own {word}: {}.",
                    self.backend().label(),
                    self.topics
                        .iter()
                        .map(|t| format!("`{t}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        Ok(())
    }

    /// The broker this lab's commands go to.
    pub(super) fn lab_broker(&self) -> Result<LabBroker, Notice> {
        match self.backend() {
            Backend::Kafka => Ok(LabBroker::Kafka(self.deps.cluster.clone())),
            _ if self.lab_url.is_none() => Err(self.lab_broker_unavailable()),
            Backend::Redis => Ok(LabBroker::Redis(self.deps.redis.clone())),
            Backend::RabbitMq => Ok(LabBroker::RabbitMq(self.deps.rabbit.clone())),
        }
    }

    /// Starts the lab's Redis or RabbitMQ if nobody has yet, and makes the lab's groups on its
    /// stream, or its queues.
    pub(super) fn start_lab_broker(&mut self) {
        let setup = &self.lab.content.setup;
        match setup.broker {
            Backend::Kafka => {}
            Backend::Redis => {
                let redis = self.deps.redis.clone();
                let stream = setup.topic.clone();
                let groups: Vec<String> = setup.groups().cloned().collect();
                self.run_outcome(async move {
                    let ready = async {
                        let url = redis.url().await?;
                        for group in &groups {
                            redis.create_group(&stream, group).await?;
                        }
                        Ok(url)
                    };
                    let result = ready.await;
                    move |session: &mut Session| session.on_lab_broker_ready(result)
                });
            }
            Backend::RabbitMq => {
                let rabbit = self.deps.rabbit.clone();
                let main = setup.topic.clone();
                let dead_letter = setup.dead_letter_queue.clone();
                let others: Vec<String> = setup.other_topics.clone();
                self.run_outcome(async move {
                    let ready = async {
                        let url = rabbit.url().await?;
                        // The dead-letter queue first, so that nothing rejected is lost.
                        for queue in &others {
                            rabbit.declare(queue, None).await?;
                        }
                        rabbit.declare(&main, dead_letter.as_deref()).await?;
                        Ok(url)
                    };
                    let result = ready.await;
                    move |session: &mut Session| session.on_lab_broker_ready(result)
                });
            }
        }
    }

    /// The lab's Redis or RabbitMQ answered (and the lab's groups or queues exist), at this
    /// URL, or cannot be used.
    fn on_lab_broker_ready(&mut self, result: Result<String, CallError>) {
        let broker = match result {
            Ok(url) => {
                self.lab_url = Some(url.clone());
                BrokerView {
                    backend: self.backend(),
                    bootstrap_servers: url,
                    embedded: self.broker_is_own(),
                    health: BrokerHealth::Up,
                }
            }
            Err(err) => BrokerView {
                health: BrokerHealth::Down {
                    reason: err.to_string(),
                },
                ..self.view.broker.clone()
            },
        };
        if broker != self.view.broker {
            self.emit(ServerEvent::Broker(broker));
        }
        self.start_poll();
    }

    /// The colours of the running instances, which consumers the page does not run must not take.
    pub(super) fn instance_colours(&self) -> BTreeSet<u8> {
        self.view
            .instances
            .iter()
            .filter(|i| i.is_alive())
            .map(|i| i.colour)
            .collect()
    }

    /// A Redis or RabbitMQ consumer named `name` (in `group`, on Redis) is the page instance
    /// whose consumer has that name (its client id unless it was given one), in its colour; any
    /// other keeps the colour it had (`previous`), or takes one nobody has. Of instances that
    /// share a name, a running one wins.
    pub(super) fn link_consumer(
        &self,
        name: &str,
        group: Option<&str>,
        previous: Option<u8>,
        taken: &mut BTreeSet<u8>,
    ) -> (Option<InstanceId>, u8) {
        let named =
            |i: &&InstanceView| i.consumer_name() == name && group.is_none_or(|g| i.group == g);
        let instance = self
            .view
            .instances
            .iter()
            .filter(named)
            .max_by_key(|i| (i.is_alive(), i.started_at));
        match instance {
            Some(instance) => (Some(instance.id), instance.colour),
            None => {
                let colour = free_colour(previous, taken);
                taken.insert(colour);
                (None, colour)
            }
        }
    }

    /// Shows the lab broker's health as its latest poll found it.
    pub(super) fn polled_health(&mut self, error: Option<&CallError>) {
        let health = match error {
            None => BrokerHealth::Up,
            Some(err) => BrokerHealth::Down {
                reason: err.to_string(),
            },
        };
        if health != self.view.broker.health {
            self.emit(ServerEvent::Broker(BrokerView {
                health,
                ..self.view.broker.clone()
            }));
        }
    }
}
