//! The operations grouplab's own RabbitMQ refused its clients (a publish to the default
//! exchange's reserved names, say): RabbitMQ closes the client's channel and writes why in its
//! log, which is read as it grows, so that the page can say what the learner's client was refused.

use std::collections::VecDeque;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use grouplab_protocol::RabbitRefusal;

use super::management::ApiConnection;

/// How many refused operations are remembered for the page.
const MAX_REFUSALS: usize = 20;
/// The most of the broker's log read in one poll.
const MAX_LOG_READ: u64 = 1 << 20;

/// The broker's log, if grouplab runs the broker, and what was read of it.
#[derive(Default)]
pub(super) struct Refusals {
    log: Option<PathBuf>,
    /// A std Mutex: held while one poll reads the log, never across an await.
    state: std::sync::Mutex<RefusalLog>,
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

impl Refusals {
    pub(super) fn new(log: PathBuf) -> Self {
        Self {
            log: Some(log),
            state: Default::default(),
        }
    }

    /// The broker's log, for a message that points the operator to it.
    pub(super) fn log(&self) -> Option<&Path> {
        self.log.as_deref()
    }

    /// The refused operations logged since the last read: (client address, operation, error).
    pub(super) fn read(&self) -> Vec<(String, String, String)> {
        let Some(path) = &self.log else {
            return Vec::new();
        };
        let mut log = self
            .state
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
    pub(super) fn to_name(&self, fresh: &[(String, String, String)]) -> bool {
        !fresh.is_empty()
            || self
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .recent
                .iter()
                .any(|r| r.name.is_none())
    }

    /// Adds fresh refusals, names those whose client's connection is listed now, and gives
    /// back the ones remembered.
    pub(super) fn remember(
        &self,
        fresh: Vec<(String, String, String)>,
        connections: &[ApiConnection],
    ) -> Vec<RabbitRefusal> {
        let mut log = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = crate::clock::now_ms();
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
