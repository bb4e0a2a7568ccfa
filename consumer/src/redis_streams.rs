//! A Redis Streams consumer in a group, the loop the Redis lab teaches:
//! claim what others left pending too long (`XAUTOCLAIM`), read new entries (`XREADGROUP … >`),
//! process each, and acknowledge it (`XACK`) before, after, or never (`NOACK`), as the settings say.
//!
//! An entry that fails stays pending with this consumer, unacknowledged; only a claim delivers
//! it again (its delivery count climbs), and past `retries` deliveries it is copied to the
//! dead-letter stream and acknowledged. A graceful stop finishes the entries in hand,
//! acknowledges them, and deletes the consumer from its group if it holds nothing pending.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use grouplab_protocol::{CommitPolicy, InstanceConfig, InstanceReport, StreamEntry};
use redis::streams::{
    StreamAutoClaimOptions, StreamId, StreamPendingCountReply, StreamReadOptions, StreamReadReply,
};
use redis::{Commands, Connection, RedisResult, Value};

use crate::{report, text};

/// How many more pending entries than it claimed a consumer reads back for their delivery counts.
const PENDING_LOOKUP_SLACK: usize = 1_000;
/// How long to wait before trying again after Redis failed a call.
const RETRY_AFTER: Duration = Duration::from_millis(500);

pub fn run(config: &InstanceConfig, stop: &AtomicBool) -> RedisResult<()> {
    let stream = config
        .topics
        .first()
        .map(String::as_str)
        .unwrap_or_default();
    let reader = Reader {
        stream,
        group: &config.group,
        // The consumer's name in its group is the instance's client id, which links it to its card.
        consumer: config
            .settings
            .consumer_name
            .as_deref()
            .unwrap_or(&config.client_id),
        config,
        done: AtomicU64::new(0),
    };
    let client = redis::Client::open(config.bootstrap_servers.as_str())?;
    let mut con = reader.connect(&client)?;
    report(&InstanceReport::Joining {
        pid: std::process::id(),
    });
    reader.create_group(&mut con)?;
    report(&InstanceReport::Reading {
        stream: stream.to_owned(),
        group: config.group.clone(),
    });

    while !stop.load(Ordering::Relaxed) {
        if let Err(err) = reader.round(&mut con) {
            report(&InstanceReport::Error {
                message: format!("Redis: {err}"),
                fatal: false,
            });
            std::thread::sleep(RETRY_AFTER);
            if let Ok(fresh) = reader.connect(&client) {
                con = fresh;
            }
        }
    }

    report(&InstanceReport::Leaving);
    reader.leave(&mut con);
    Ok(())
}

struct Reader<'a> {
    stream: &'a str,
    group: &'a str,
    consumer: &'a str,
    config: &'a InstanceConfig,
    done: AtomicU64,
}

impl Reader<'_> {
    fn connect(&self, client: &redis::Client) -> RedisResult<Connection> {
        let mut con = client.get_connection()?;
        // Named, so that `CLIENT LIST` (and grouplab's page) can tell which instance it is.
        redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg(self.consumer)
            .query::<()>(&mut con)?;
        Ok(con)
    }

    /// Creates the group at the start of the stream, unless it exists.
    fn create_group(&self, con: &mut Connection) -> RedisResult<()> {
        match con.xgroup_create_mkstream::<_, _, _, ()>(self.stream, self.group, "0") {
            Err(err) if err.code() == Some("BUSYGROUP") => Ok(()),
            other => other,
        }
    }

    /// One claim, one read, and the work on what they handed over.
    fn round(&self, con: &mut Connection) -> RedisResult<()> {
        let settings = &self.config.settings;
        let count = settings.max_poll_records as usize;
        if let Some(idle) = settings.claim_idle_ms {
            let claimed: redis::streams::StreamAutoClaimReply = con.xautoclaim_options(
                self.stream,
                self.group,
                self.consumer,
                idle,
                "0-0",
                StreamAutoClaimOptions::default().count(count),
            )?;
            if !claimed.claimed.is_empty() {
                let deliveries = self.deliveries(con, &claimed.claimed)?;
                self.work(con, &claimed.claimed, &deliveries, true)?;
            }
        }
        let mut options = StreamReadOptions::default()
            .group(self.group, self.consumer)
            .count(count)
            .block(settings.block_ms as usize);
        if settings.commit == CommitPolicy::Auto {
            options = options.noack();
        }
        let read: Option<StreamReadReply> = con.xread_options(&[self.stream], &[">"], &options)?;
        let entries: Vec<StreamId> = read
            .into_iter()
            .flat_map(|reply| reply.keys)
            .flat_map(|key| key.ids)
            .collect();
        if !entries.is_empty() {
            self.work(con, &entries, &HashMap::new(), false)?;
        }
        Ok(())
    }

    /// How many times each of these entries (now pending with this consumer) was delivered.
    fn deliveries(
        &self,
        con: &mut Connection,
        ids: &[StreamId],
    ) -> RedisResult<HashMap<String, u64>> {
        let (Some(first), Some(last)) = (ids.first(), ids.last()) else {
            return Ok(HashMap::new());
        };
        // The range may also hold entries this consumer had pending before: leave room for them.
        let pending: StreamPendingCountReply = con.xpending_consumer_count(
            self.stream,
            self.group,
            &first.id,
            &last.id,
            ids.len() + PENDING_LOOKUP_SLACK,
            self.consumer,
        )?;
        Ok(pending
            .ids
            .into_iter()
            .map(|p| (p.id, p.times_delivered as u64))
            .collect())
    }

    /// Processes entries in order, acknowledging as the commit policy says.
    fn work(
        &self,
        con: &mut Connection,
        entries: &[StreamId],
        deliveries: &HashMap<String, u64>,
        claimed: bool,
    ) -> RedisResult<()> {
        let settings = &self.config.settings;
        // Every entry a read returns is this consumer's (and pending) from that moment.
        for entry in entries {
            let (key, value) = fields(entry);
            report(&InstanceReport::Entry(StreamEntry {
                stream: self.stream.to_owned(),
                id: entry.id.clone(),
                key,
                value: text(value.as_bytes()),
                deliveries: deliveries.get(&entry.id).copied().unwrap_or(1),
                claimed,
            }));
        }
        if settings.commit == CommitPolicy::BeforeProcessing {
            for entry in entries {
                self.ack(con, &entry.id)?;
            }
        }
        for entry in entries {
            let delivered = deliveries.get(&entry.id).copied().unwrap_or(1);
            let (_, value) = fields(entry);
            if settings.processing_ms > 0 {
                std::thread::sleep(Duration::from_millis(settings.processing_ms.into()));
            }
            let poisoned = settings
                .fail_on
                .as_ref()
                .is_some_and(|text| value.contains(text.as_str()));
            if poisoned {
                self.failed(con, entry, &value, delivered)?;
                continue;
            }
            report(&InstanceReport::EntryProcessed {
                stream: self.stream.to_owned(),
                id: entry.id.clone(),
            });
            if settings.commit == CommitPolicy::AfterProcessing {
                self.ack(con, &entry.id)?;
            }
            let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
            if settings.crash_after.map(u64::from) == Some(done) {
                report(&InstanceReport::Crashing { processed: done });
                // A real crash: whatever this consumer holds stays pending with it.
                let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
            }
        }
        Ok(())
    }

    /// A poison entry: it stays pending, unless it was delivered more often than the retries
    /// allow and there is a dead-letter stream to move it to.
    fn failed(
        &self,
        con: &mut Connection,
        entry: &StreamId,
        value: &str,
        deliveries: u64,
    ) -> RedisResult<()> {
        let settings = &self.config.settings;
        let text = settings.fail_on.as_deref().unwrap_or_default();
        report(&InstanceReport::EntryFailed {
            stream: self.stream.to_owned(),
            id: entry.id.clone(),
            deliveries,
            error: format!("the entry contains `{text}`, which this instance cannot process"),
        });
        if let Some(dead_letter) = &settings.dead_letter_topic
            && deliveries > u64::from(settings.retries)
        {
            let origin = format!("{}/{}", self.stream, entry.id);
            con.xadd::<_, _, _, _, ()>(
                dead_letter,
                "*",
                &[
                    ("value", value),
                    ("origin", origin.as_str()),
                    ("deliveries", deliveries.to_string().as_str()),
                ],
            )?;
            self.ack(con, &entry.id)?;
            report(&InstanceReport::EntryDeadLettered {
                stream: self.stream.to_owned(),
                id: entry.id.clone(),
                deliveries,
                dead_letter_stream: dead_letter.clone(),
            });
        }
        Ok(())
    }

    fn ack(&self, con: &mut Connection, id: &str) -> RedisResult<()> {
        con.xack::<_, _, _, ()>(self.stream, self.group, &[id])?;
        report(&InstanceReport::Acked {
            stream: self.stream.to_owned(),
            ids: vec![id.to_owned()],
        });
        Ok(())
    }

    /// A clean goodbye: a consumer that holds nothing pending is deleted from its group, since
    /// deleting one that does would drop its pending entries unprocessed.
    fn leave(&self, con: &mut Connection) {
        let pending: RedisResult<StreamPendingCountReply> =
            con.xpending_consumer_count(self.stream, self.group, "-", "+", 1, self.consumer);
        if matches!(pending, Ok(p) if p.ids.is_empty()) {
            let _ = con.xgroup_delconsumer::<_, _, _, ()>(self.stream, self.group, self.consumer);
        }
    }
}

/// The entry's `key` and `value` fields; an entry written by someone else shows all its fields.
fn fields(entry: &StreamId) -> (Option<String>, String) {
    let field = |name: &str| match entry.map.get(name) {
        Some(Value::BulkString(bytes)) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Some(Value::SimpleString(s)) => Some(s.clone()),
        _ => None,
    };
    let value = field("value").unwrap_or_else(|| {
        let mut names: Vec<&String> = entry.map.keys().collect();
        names.sort();
        names
            .into_iter()
            .map(|name| format!("{name}={}", field(name).unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(" ")
    });
    (field("key"), value)
}
