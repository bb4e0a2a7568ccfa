//! Create topic and Grow to this many partitions, each with what is done with the broker's answer.

use grouplab_protocol::{Notice, limits, validate_name, validate_partitions};
use tracing::warn;

use super::Reply;
use super::actor::Session;
use super::allowance::Reserved;
use grouplab_backends::CallError;

impl Session {
    pub(super) fn create_topic(
        &mut self,
        topic: String,
        partitions: i32,
        reply: &Reply,
    ) -> Result<(), Notice> {
        validate_name("topic", &topic)
            .map_err(|e| Notice::error("That topic name won't work", e))?;
        validate_partitions(partitions)
            .map_err(|e| Notice::error("That partition count won't work", e))?;
        let permit = self.command_permit()?;
        let reserved = match &self.deps.allowance {
            Some(allowance) => {
                Some(allowance.reserve_topic(&self.lab.content.id, &topic, partitions as u32)?)
            }
            None => None,
        };
        let cluster = self.deps.cluster.clone();
        let reply = reply.clone();
        self.run_outcome(async move {
            let result = cluster.create_topic(&topic, partitions).await;
            drop(permit);
            move |session: &mut Session| {
                if result.is_err() {
                    session.give_back(reserved);
                }
                session.topic_created(topic, result, &reply)
            }
        });
        Ok(())
    }

    /// The broker's answer to Create topic: a topic created is the lab's to show and to delete.
    fn topic_created(&mut self, topic: String, result: Result<(), CallError>, reply: &Reply) {
        let notice = match result {
            Ok(()) => {
                self.topics.insert(topic.clone());
                if self.created_topics.insert(topic.clone()) {
                    let store = self.deps.progress.clone();
                    let (namespace, lab) = (self.namespace.clone(), self.lab.content.id.clone());
                    let created = topic.clone();
                    self.deps.tasks.spawn(async move {
                        if let Err(err) =
                            store.record_created_topic(&namespace, &lab, &created).await
                        {
                            warn!(%err, "a created topic could not be recorded");
                        }
                    });
                }
                self.start_poll();
                Notice::info(
                    format!("Topic `{topic}` created"),
                    "Its partitions appear as lanes on the right.",
                )
            }
            Err(err) => Notice::error(format!("Topic `{topic}` was not created"), err.to_string()),
        };
        self.tell(reply, notice);
    }

    /// Grows one of the lab's topics; Kafka can add partitions but never take them away.
    pub(super) fn add_partitions(
        &mut self,
        topic: String,
        partitions: i32,
        reply: &Reply,
    ) -> Result<(), Notice> {
        validate_name("topic", &topic)
            .map_err(|e| Notice::error("That topic name won't work", e))?;
        validate_partitions(partitions)
            .map_err(|e| Notice::error("That partition count won't work", e))?;
        // Only a topic this lab works with: the page must not reshape anyone else's.
        let Some(now) = self
            .view
            .topic(&topic)
            .filter(|_| self.topics.contains(&topic))
            .map(|t| t.partitions.len() as i32)
        else {
            return Err(Notice::error(
                format!("`{topic}` is not one of this lab's topics"),
                "Create it first; grouplab only changes topics the lab works with.",
            ));
        };
        if partitions <= now {
            return Err(Notice::info(
                format!("`{topic}` already has {now} partitions"),
                format!("Kafka can add partitions but never remove them: type more than {now}."),
            ));
        }
        if partitions - now > limits::MAX_ADDED_PARTITIONS {
            return Err(Notice::error(
                "That is a lot of partitions at once",
                format!(
                    "Add at most {} partitions at a time.",
                    limits::MAX_ADDED_PARTITIONS
                ),
            ));
        }
        let permit = self.command_permit()?;
        let reserved = match &self.deps.allowance {
            Some(allowance) => {
                Some(allowance.reserve_growth(&self.lab.content.id, &topic, partitions as u32)?)
            }
            None => None,
        };
        let cluster = self.deps.cluster.clone();
        let reply = reply.clone();
        self.run_outcome(async move {
            let result = cluster.add_partitions(&topic, partitions).await;
            drop(permit);
            move |session: &mut Session| {
                if result.is_err() {
                    session.give_back(reserved);
                }
                session.partitions_added(topic, partitions, result, &reply)
            }
        });
        Ok(())
    }

    /// Gives back to the learner's allowance what a refused create or growth counted.
    fn give_back(&self, reserved: Option<Reserved>) {
        if let (Some(allowance), Some(reserved)) = (&self.deps.allowance, reserved) {
            allowance.undo(reserved);
        }
    }

    /// The broker's answer to growing a topic.
    fn partitions_added(
        &mut self,
        topic: String,
        partitions: i32,
        result: Result<(), CallError>,
        reply: &Reply,
    ) {
        let notice = match result {
            Ok(()) => {
                self.start_poll();
                Notice::info(
                    format!("`{topic}` now has {partitions} partitions"),
                    "Consumers see the new partitions when they next refresh the topic's metadata (every 3 s for the page's instances, every 5 minutes by default for Kafka clients), and the group rebalances.",
                )
            }
            Err(err) => Notice::error(
                format!("Partitions were not added to `{topic}`"),
                err.to_string(),
            ),
        };
        self.tell(reply, notice);
    }
}
