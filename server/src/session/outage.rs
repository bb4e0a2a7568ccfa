//! The embedded broker taken down and brought up from a page (Broker down, Broker up), and the
//! broker's health as every Kafka lab shows it: a badge, a banner, and the timeline.

use grouplab_protocol::{
    BrokerHealth, BrokerView, GROUP_COLOUR, Notice, ServerEvent, TimelineEntry, TimelineKind,
};
use tracing::warn;

use super::actor::Session;
use grouplab_backends::clock::now_ms;

impl Session {
    /// Takes the embedded broker down or brings it back up; every lab sees the outcome through
    /// the health monitor, within a probe.
    pub(super) async fn set_broker(&mut self, up: bool) -> Result<(), Notice> {
        let Some(broker) = &self.deps.broker else {
            return Err(Notice::error(
                "grouplab cannot stop your cluster",
                "Broker down and Broker up control the embedded broker only. To see an outage on your own cluster, stop one of its brokers yourself: the page shows it within two seconds.",
            ));
        };
        if self.deps.shared {
            return Err(Notice::error(
                "Not on a shared server",
                "This grouplab serves a whole class, and stopping its broker would stop it for everyone. Run grouplab on your own machine to try an outage.",
            ));
        }
        if up {
            match broker.bring_up().await {
                Ok(true) => Ok(()),
                Ok(false) => Err(Notice::info(
                    "The broker is already up",
                    "Nothing to do: it is serving.",
                )),
                Err(err) => {
                    warn!(%err, "the embedded broker could not come back up");
                    Err(Notice::error(
                        "The broker could not start again",
                        format!(
                            "{err} Wait a few seconds and press Broker up again, or restart grouplab."
                        ),
                    ))
                }
            }
        } else if broker.take_down().await {
            Ok(())
        } else {
            Err(Notice::info(
                "The broker is already down",
                "Press Broker up to start it again.",
            ))
        }
    }

    /// Shows a change of the broker's health, and marks it on the timeline.
    pub(super) fn on_health(&mut self, health: BrokerHealth) {
        // The Kafka broker's health; a Redis or RabbitMQ lab shows its own broker's instead.
        if !self.is_kafka() || health == self.view.broker.health {
            return;
        }
        let was_up = self.view.broker.health.is_up();
        let entry = match (&health, was_up) {
            (BrokerHealth::Up, false) if self.view.broker.health != BrokerHealth::Unknown => {
                Some(TimelineKind::BrokerUp)
            }
            (BrokerHealth::Stopped { .. }, _) => Some(TimelineKind::BrokerDown {
                reason: "was stopped from a lab page (Broker down)".to_owned(),
            }),
            (BrokerHealth::Down { .. }, _) => Some(TimelineKind::BrokerDown {
                reason: "stopped answering".to_owned(),
            }),
            _ => None,
        };
        self.emit(ServerEvent::Broker(BrokerView {
            health,
            ..self.view.broker.clone()
        }));
        if let Some(kind) = entry {
            self.emit(ServerEvent::Timeline(TimelineEntry {
                at: now_ms(),
                group: String::new(),
                instance: None,
                member: None,
                name: "broker".to_owned(),
                colour: GROUP_COLOUR,
                kind,
                partitions: Vec::new(),
                epoch: None,
            }));
        }
    }
}
