//! Produce, Produce steadily and Stop producing, each with what is done with the broker's answer,
//! and where the produced keys landed.

use std::collections::BTreeMap;
use std::time::Duration;

use grouplab_protocol::{
    KeyMode, KeyPlacement, Notice, ServerEvent, limits, validate_name, validate_produce,
};

use super::Reply;
use super::actor::Session;
use grouplab_backends::{CallError, Produced};

/// How often a steady produce sends what is due.
const STEADY_TICK: Duration = Duration::from_millis(100);

impl Session {
    pub(super) fn produce(
        &mut self,
        topic: String,
        count: u32,
        keys: KeyMode,
        partition: Option<i32>,
        text: Option<String>,
        reply: &Reply,
    ) -> Result<(), Notice> {
        validate_name("topic", &topic)
            .map_err(|e| Notice::error("That topic name won't work", e))?;
        self.writable(&topic)?;
        validate_produce(count, &keys)?;
        if let Some(text) = &text
            && (text.is_empty() || text.chars().count() > limits::MAX_KEY_LEN)
        {
            return Err(Notice::error(
                "That text won't work",
                format!(
                    "Text added to messages needs 1 to {} characters.",
                    limits::MAX_KEY_LEN
                ),
            ));
        }
        let permit = self.command_permit()?;
        let broker = self.lab_broker()?;
        if let Some(allowance) = &self.deps.allowance {
            allowance.take_messages(count)?;
        }
        let reply = reply.clone();
        let first = self.run.produced + 1;
        self.run.produced += u64::from(count);
        self.run_outcome(async move {
            let result = broker
                .produce(&topic, count, &keys, partition, text.as_deref(), first)
                .await;
            drop(permit);
            move |session: &mut Session| session.produced(topic, result, &reply)
        });
        Ok(())
    }

    /// The broker's answer to Produce: where the messages went, in the lab's broker's words.
    fn produced(&mut self, topic: String, result: Result<Produced, CallError>, reply: &Reply) {
        let notice = match result {
            Ok(produced) => {
                self.start_poll();
                self.place_keys(&topic, produced.keys);
                let mut parts: Vec<_> = produced.landed.into_iter().collect();
                parts.sort_unstable();
                let total: u64 = parts.iter().map(|(_, n)| n).sum();
                if self.is_redis() {
                    Notice::info(
                        format!("Added {total} entr(ies) to `{topic}`"),
                        "XADD gave each a new id at the end of the stream.",
                    )
                } else if !self.is_kafka() {
                    Notice::info(
                        format!("Published {total} message(s) to `{topic}`"),
                        "RabbitMQ confirmed each; the queue deals them out to its consumers.",
                    )
                } else {
                    let spread: Vec<String> = parts
                        .iter()
                        .map(|(p, n)| format!("partition {p}: {n}"))
                        .collect();
                    Notice::info(
                        format!("Produced {total} message(s) to `{topic}`"),
                        spread.join(", "),
                    )
                }
            }
            Err(err) => Notice::error(
                format!("Messages were not produced to `{topic}`"),
                err.to_string(),
            ),
        };
        self.tell(reply, notice);
    }

    /// Starts producing `per_second` messages a second for `seconds`, in a task of its own that
    /// sends what is due every [`STEADY_TICK`]; one at a time per lab.
    pub(super) fn produce_steadily(
        &mut self,
        topic: String,
        per_second: u32,
        seconds: u32,
        keys: KeyMode,
        reply: &Reply,
    ) -> Result<(), Notice> {
        validate_name("topic", &topic)
            .map_err(|e| Notice::error("That topic name won't work", e))?;
        self.writable(&topic)?;
        validate_produce(1, &keys)?;
        if !(1..=limits::MAX_RATE).contains(&per_second)
            || !(1..=limits::MAX_STEADY_SECONDS).contains(&seconds)
        {
            return Err(Notice::error(
                "That rate won't work",
                format!(
                    "Produce between 1 and {} messages per second, for 1 to {} seconds.",
                    limits::MAX_RATE,
                    limits::MAX_STEADY_SECONDS
                ),
            ));
        }
        if self.producing.as_ref().is_some_and(|t| !t.is_cancelled()) {
            return Err(Notice::info(
                "Already producing",
                "A steady produce is running: press Stop producing first.",
            ));
        }
        let broker = self.lab_broker()?;
        let token = self.deps.shutdown.child_token();
        self.producing = Some(token.clone());
        let total = u64::from(per_second) * u64::from(seconds);
        let first = self.run.produced + 1;
        self.run.produced += total;
        let reply = reply.clone();
        let allowance = self.deps.allowance.clone();
        let _ = reply.try_send(ServerEvent::Notice(Notice::info(
            format!("Producing {per_second} message(s) per second to `{topic}`"),
            format!("For {seconds} s ({total} messages), unless you press Stop producing."),
        )));
        self.run_outcome(async move {
            let began = tokio::time::Instant::now();
            let mut tick = tokio::time::interval(STEADY_TICK);
            let mut sent = 0u64;
            let mut result = Ok(());
            while sent < total {
                tokio::select! {
                    () = token.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let due =
                    (u64::from(per_second) * began.elapsed().as_millis() as u64 / 1000).min(total);
                if due <= sent {
                    continue;
                }
                let count = (due - sent) as u32;
                // Slowed to the learner's rate in a class, never past it.
                if let Some(allowance) = &allowance {
                    tokio::select! {
                        () = token.cancelled() => break,
                        () = allowance.wait_for_messages(count) => {}
                    }
                }
                if let Err(err) = broker
                    .produce(&topic, count, &keys, None, None, first + sent)
                    .await
                {
                    result = Err(err);
                    break;
                }
                sent = due;
            }
            move |session: &mut Session| session.produced_steadily(topic, sent, result, &reply)
        });
        Ok(())
    }

    /// A steady produce ended: it ran its course, was stopped, or the broker refused.
    fn produced_steadily(
        &mut self,
        topic: String,
        sent: u64,
        result: Result<(), CallError>,
        reply: &Reply,
    ) {
        self.producing = None;
        self.start_poll();
        let notice = match result {
            Ok(()) => Notice::info(
                format!("Steady produce to `{topic}` ended"),
                format!("{sent} message(s) were produced."),
            ),
            Err(err) => Notice::error(
                format!("Steady produce to `{topic}` stopped"),
                format!("After {sent} message(s): {err}"),
            ),
        };
        self.tell(reply, notice);
    }

    pub(super) fn stop_producing(&mut self) -> Result<(), Notice> {
        match self.producing.take() {
            Some(token) => {
                token.cancel();
                Ok(())
            }
            None => Err(Notice::info(
                "Nothing is being produced",
                "Only a steady produce runs long enough to be stopped.",
            )),
        }
    }

    /// Adds where keys landed to the view's key list, for the keys it has room for.
    fn place_keys(&mut self, topic: &str, keys: BTreeMap<String, Vec<i32>>) {
        let mut changed = Vec::new();
        for (key, partitions) in keys {
            let known = self
                .view
                .keys
                .iter()
                .find(|k| k.topic == topic && k.key == key);
            let mut all = known.map(|k| k.partitions.clone()).unwrap_or_default();
            for p in partitions {
                if !all.contains(&p) {
                    all.push(p);
                }
            }
            all.sort_unstable();
            if known.map(|k| &k.partitions) != Some(&all) {
                changed.push(KeyPlacement {
                    topic: topic.to_owned(),
                    key,
                    partitions: all,
                });
            }
        }
        if !changed.is_empty() {
            self.emit(ServerEvent::Keys {
                placements: changed,
            });
        }
    }
}
