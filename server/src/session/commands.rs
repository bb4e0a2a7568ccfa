//! A learner's command, dispatched to the file that carries it out. A command the session cannot
//! take now, or that does not apply to the lab's broker, is answered here.

use std::sync::Arc;

use grouplab_protocol::{ClientCommand, Notice};
use tokio::sync::OwnedSemaphorePermit;

use super::Reply;
use super::actor::{MAX_COMMANDS_IN_FLIGHT, Session};
use super::reset::Reset;

impl Session {
    pub(super) async fn on_command(
        &mut self,
        command: ClientCommand,
        reply: &Reply,
    ) -> Result<(), Notice> {
        if !matches!(self.reset, Reset::Idle) && !matches!(command, ClientCommand::Resync) {
            return Err(Notice::info(
                "The lab is being reset",
                "Wait a moment: the instances are leaving their groups, then topics and groups are deleted.",
            ));
        }
        match command {
            ClientCommand::CreateTopic { .. } | ClientCommand::AddPartitions { .. }
                if !self.is_kafka() =>
            {
                return Err(if self.is_redis() {
                    Notice::info(
                        "A Redis lab has its streams already",
                        "A stream has no partitions to create or add: it is one log, and its consumer groups share its entries one by one. Reset the lab to start the stream afresh.",
                    )
                } else {
                    Notice::info(
                        "A RabbitMQ lab has its queues already",
                        "A queue has no partitions to create or add: its consumers compete for its messages one by one. Reset the lab to start the queues afresh.",
                    )
                });
            }
            ClientCommand::CreateTopic { topic, partitions } => {
                self.create_topic(topic, partitions, reply)?
            }
            ClientCommand::Produce {
                topic,
                count,
                keys,
                partition,
                text,
            } => self.produce(topic, count, keys, partition, text, reply)?,
            ClientCommand::ProduceSteadily {
                topic,
                per_second,
                seconds,
                keys,
            } => self.produce_steadily(topic, per_second, seconds, keys, reply)?,
            ClientCommand::StopProducing => self.stop_producing()?,
            ClientCommand::AddPartitions { topic, partitions } => {
                self.add_partitions(topic, partitions, reply)?
            }
            ClientCommand::StartInstance {
                group,
                topic,
                settings,
            } => self.start_instance(group, topic, settings).await?,
            ClientCommand::StopInstance { instance } => self.stop_instance(instance).await?,
            ClientCommand::CrashInstance { instance } => self.crash_instance(instance).await?,
            ClientCommand::ResetLab => self.reset_lab(reply).await?,
            ClientCommand::ClearProgress => self.clear_progress().await?,
            ClientCommand::OpenHint => self.open_hint().await?,
            ClientCommand::RevealSolution => self.reveal_solution().await?,
            ClientCommand::Resync => {
                let _ = reply.try_send(grouplab_protocol::ServerEvent::Snapshot(Box::new(
                    self.view.clone(),
                )));
            }
            ClientCommand::SetBroker { up } => self.set_broker(up).await?,
        }
        Ok(())
    }

    /// A slot for one learner command that talks to the broker; a lab with
    /// [`MAX_COMMANDS_IN_FLIGHT`] of them still running is busy, rather than queueing without end.
    pub(super) fn command_permit(&self) -> Result<OwnedSemaphorePermit, Notice> {
        Arc::clone(&self.commands_in_flight)
            .try_acquire_owned()
            .map_err(|_| {
                Notice::info(
                    "The lab is busy",
                    format!(
                        "{MAX_COMMANDS_IN_FLIGHT} of this lab's requests to the broker are still running. Try again in a moment."
                    ),
                )
            })
    }
}
