//! Fetches that wait for data the way Apache Kafka's do: parked until a produce reaches one of
//! their partitions, or until their `max_wait_ms` ends.
//!
//! nisshi 0.8.1 serves a Fetch with no data by reading storage again and again, sleeping half the
//! time left between reads (`FetchService::fetch`): a message produced just after a consumer's
//! fetch parked waited up to half of `fetch.wait.max.ms` (250 ms with librdkafka's default), and
//! every parked fetch re-read every partition it asked for, many times a second. Here a Fetch
//! first asks storage where each of its partitions ends; if any has data past the fetch offset
//! (or cannot be read at all, which nisshi then answers with its error), nisshi serves it at once.
//! Otherwise it parks on [`FetchWakes`] until the Produce route ([`ProduceRoute`]) reports a write
//! to one of its partitions, or its deadline passes, and then nisshi answers it. `min_bytes` is
//! honoured as "any data": a fetch is answered as soon as one record is readable, as Kafka does
//! for the default `fetch.min.bytes` of 1.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use nisshi_sans_io::{FetchRequest, Frame, FrameInput, ProduceResponse};
use nisshi_service::FrameRouteService;
use nisshi_storage::{ArcDynStorage, Storage, TopicId, Topition};
use rama::Service;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The fetches parked on each partition, woken by writes to it.
#[derive(Debug, Default)]
pub(super) struct FetchWakes {
    /// A std Mutex is fine: held to add or take a partition's list, never across an await.
    parked: Mutex<HashMap<Topition, Vec<Weak<Notify>>>>,
    /// How many fetches are waiting now.
    waiting: AtomicUsize,
}

/// Counts one fetch as waiting while it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl FetchWakes {
    /// How many fetches wait for data now.
    pub(super) fn parked(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Wakes the fetches parked on `partition`.
    fn written(&self, partition: &Topition) {
        let parked = self
            .parked
            .lock()
            .ok()
            .and_then(|mut parked| parked.remove(partition));
        for waiter in parked.into_iter().flatten() {
            if let Some(waiter) = waiter.upgrade() {
                waiter.notify_one();
            }
        }
    }

    /// Wakes every parked fetch: a transaction's end makes its writes readable at once.
    fn everything(&self) {
        let parked = self
            .parked
            .lock()
            .map(|mut parked| std::mem::take(&mut *parked))
            .unwrap_or_default();
        for waiter in parked.into_values().flatten() {
            if let Some(waiter) = waiter.upgrade() {
                waiter.notify_one();
            }
        }
    }

    /// Parks `waiter` on each of `partitions` until the next write to one of them.
    fn park(&self, waiter: &Arc<Notify>, partitions: &[Topition]) {
        if let Ok(mut parked) = self.parked.lock() {
            for partition in partitions {
                let list = parked.entry(partition.clone()).or_default();
                list.retain(|w| w.strong_count() > 0);
                list.push(Arc::downgrade(waiter));
            }
        }
    }
}

/// nisshi's Fetch route, asked only once there is something to answer.
#[derive(Clone, Debug)]
pub(super) struct FetchRoute {
    pub(super) nisshi: FrameRouteService<nisshi_broker::Error>,
    pub(super) storage: ArcDynStorage,
    pub(super) wakes: Arc<FetchWakes>,
}

/// One partition a fetch asks for, and from where.
struct Wanted {
    partition: Topition,
    offset: i64,
}

impl FetchRoute {
    /// The partitions the fetch asks for, by name (Fetch v13 and later name topics by id).
    async fn wanted(&self, fetch: &FetchRequest) -> Vec<Wanted> {
        let mut wanted = Vec::new();
        for topic in fetch.topics.iter().flatten() {
            let name = match &topic.topic {
                Some(name) => Some(name.clone()),
                None => self
                    .storage
                    .metadata(Some(&[TopicId::from(topic)]))
                    .await
                    .ok()
                    .and_then(|found| found.topics.into_iter().next())
                    .and_then(|found| found.name),
            };
            // A topic that cannot be named is answered by nisshi at once, with its error.
            let Some(name) = name else {
                return Vec::new();
            };
            for partition in topic.partitions.iter().flatten() {
                wanted.push(Wanted {
                    partition: Topition::new(name.clone(), partition.partition),
                    offset: partition.fetch_offset,
                });
            }
        }
        wanted
    }

    /// Whether nisshi has something to answer now: data past a fetch offset, or a partition it
    /// cannot read (nisshi answers with the error).
    async fn ready(&self, wanted: &[Wanted], read_committed: bool) -> bool {
        for want in wanted {
            match self.storage.offset_stage(&want.partition).await {
                Ok(stage) => {
                    let end = if read_committed {
                        stage.last_stable
                    } else {
                        stage.high_watermark
                    };
                    if want.offset < stage.log_start || want.offset < end {
                        return true;
                    }
                }
                Err(_) => return true,
            }
        }
        false
    }
}

impl Service<FrameInput> for FetchRoute {
    type Output = Frame;
    type Error = nisshi_broker::Error;

    async fn serve(&self, mut input: FrameInput) -> Result<Frame, Self::Error> {
        let Ok(mut fetch) = FetchRequest::try_from(input.frame.body.clone()) else {
            return self.nisshi.serve(input).await;
        };
        let wait = Duration::from_millis(u64::try_from(fetch.max_wait_ms).unwrap_or(0));
        let deadline = Instant::now() + wait;
        let wanted = self.wanted(&fetch).await;
        let read_committed = fetch.isolation_level == Some(1);
        let waiter = Arc::new(Notify::new());
        let partitions: Vec<Topition> = wanted.iter().map(|w| w.partition.clone()).collect();
        loop {
            // Parked before looking, so that a write between the look and the wait still wakes it.
            let woken = waiter.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            self.wakes.park(&waiter, &partitions);
            let ready = wanted.is_empty() || self.ready(&wanted, read_committed).await;
            if ready || Instant::now() >= deadline {
                break;
            }
            let _waiting = Waiting::new(&self.wakes.waiting);
            tokio::select! {
                () = woken => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
        // nisshi answers at once when there are records (`min_bytes` 0); with no time left, it
        // reads once (with 0 it would answer no partitions at all, not even their watermarks).
        let left = deadline.saturating_duration_since(Instant::now());
        fetch.max_wait_ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX).max(1);
        fetch.min_bytes = 0;
        input.frame.body = fetch.into();
        self.nisshi.serve(input).await
    }
}

/// nisshi's Produce route, telling the parked fetches which partitions were written.
#[derive(Clone, Debug)]
pub(super) struct ProduceRoute {
    pub(super) nisshi: FrameRouteService<nisshi_broker::Error>,
    pub(super) wakes: Arc<FetchWakes>,
}

impl Service<FrameInput> for ProduceRoute {
    type Output = Frame;
    type Error = nisshi_broker::Error;

    async fn serve(&self, input: FrameInput) -> Result<Frame, Self::Error> {
        let frame = self.nisshi.serve(input).await?;
        if let Ok(produced) = ProduceResponse::try_from(frame.body.clone()) {
            for topic in produced.responses.iter().flatten() {
                for partition in topic.partition_responses.iter().flatten() {
                    if partition.error_code == 0 {
                        self.wakes
                            .written(&Topition::new(topic.name.clone(), partition.index));
                    }
                }
            }
        }
        Ok(frame)
    }
}

/// nisshi's EndTxn route, waking every parked fetch: a committed transaction's writes become
/// readable to `read_committed` consumers at once.
#[derive(Clone, Debug)]
pub(super) struct EndTxnRoute {
    pub(super) nisshi: FrameRouteService<nisshi_broker::Error>,
    pub(super) wakes: Arc<FetchWakes>,
}

impl Service<FrameInput> for EndTxnRoute {
    type Output = Frame;
    type Error = nisshi_broker::Error;

    async fn serve(&self, input: FrameInput) -> Result<Frame, Self::Error> {
        let frame = self.nisshi.serve(input).await?;
        self.wakes.everything();
        Ok(frame)
    }
}
