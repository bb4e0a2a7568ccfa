//! What happened in a lab, beyond what its live view shows now: the records a lab's session
//! writes as instances report and the broker answers, and that the checks and the ledger read.
//! Pure data and its bookkeeping: no clock, no I/O.

use std::collections::{BTreeMap, HashMap};

use grouplab_protocol::{EpochMillis, TopicPartition};

use super::membership::Handover;

/// What happened in a lab, beyond what its live view shows now.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// Completed handovers, oldest first.
    pub handovers: Vec<Handover>,
    /// For each group and partition: how many times a page instance of the group received each offset.
    pub received: HashMap<String, HashMap<TopicPartition, OffsetCounts>>,
    /// For each group and partition: how many times a page instance of the group finished processing each offset.
    pub processed: HashMap<String, HashMap<TopicPartition, OffsetCounts>>,
    /// For each group: how many times a page instance's client left it over a late poll.
    pub poll_timeouts: HashMap<String, u32>,
    /// For each group: when its generation last changed (a rebalance), as this server saw it.
    pub rebalanced_at: HashMap<String, EpochMillis>,
    /// For each group: when a page instance last finished processing a message.
    pub last_processed: HashMap<String, EpochMillis>,
    /// The time of the evaluation, for checks about how long something has lasted.
    pub now: EpochMillis,
    /// For each group: how many times a running page instance's revoke callback gave up every
    /// partition it held (eager) or only some of them (cooperative).
    pub revocations: HashMap<String, Revocations>,
    /// Partitions a running page instance's callback gave up, when, and how many page
    /// instances the group had then, until the next callback that is given them (the same
    /// instance or another).
    pub released: HashMap<(String, TopicPartition), (EpochMillis, usize)>,
    /// For each group and number of its page instances during the rebalance: how long
    /// partitions taken from running members went without an owner, from the callbacks of the
    /// members giving them up and getting them. A scale-out from 2 to 3 counts under 3.
    pub pauses: HashMap<(String, usize), Pauses>,
    /// Static members that left: (group, `group.instance.id`) → the partitions held and the
    /// group's generation at the time.
    pub static_left: HashMap<(String, String), (Vec<TopicPartition>, Option<i32>)>,
    /// For each group: static members that came back to the same partitions with the group's
    /// generation unchanged, by id.
    pub static_returns: HashMap<String, Vec<String>>,
    /// For each group and topic: the order in which page instances received messages.
    pub order: HashMap<(String, String), Order>,
    /// For each group: the most attempts a page instance made at one failing message.
    pub attempts: HashMap<String, u32>,
    /// For each group: how many messages its page instances parked in a dead-letter topic.
    pub dead_lettered: HashMap<String, u64>,
    /// For each group: how many of its page instances crashed.
    pub crashed: HashMap<String, u32>,
    /// For each group: the partitions one of the learner's own consumers owned at some point.
    pub external: HashMap<String, std::collections::BTreeSet<TopicPartition>>,
    /// What Redis Streams groups did.
    pub streams: StreamHistory,
    /// What RabbitMQ queues' consumers did.
    pub queues: QueueHistory,
}

/// What a RabbitMQ lab's consumers did, as page instances reported it and as polls of the
/// management API saw it. Keyed by queue: a queue has no groups.
#[derive(Clone, Debug, Default)]
pub struct QueueHistory {
    /// For each queue: consumer tags that were handed messages.
    pub handed: HashMap<String, std::collections::BTreeSet<String>>,
    /// For each queue: the tags among those that the page does not run.
    pub handed_externally: HashMap<String, std::collections::BTreeSet<String>>,
    /// For each queue: how many messages page instances were handed.
    pub received_by_instances: HashMap<String, u64>,
    /// Each page instance that consumed a queue: what it was set to, and how much it got.
    pub workers: HashMap<grouplab_protocol::InstanceId, QueueWorker>,
    /// For each queue: the most unacked messages a page instance held as it crashed.
    pub crashed_holding: HashMap<String, u64>,
    /// For each queue: messages delivered marked redelivered after such a crash.
    pub redelivered_after_crash: HashMap<String, u64>,
    /// For each queue: messages an auto-ack page instance had been sent and not processed when it crashed.
    pub lost_on_crash: HashMap<String, u64>,
    /// For each queue: the most messages (ready and unacked) it was seen holding.
    pub most_held: HashMap<String, u64>,
    /// Whether the broker was seen refusing a client an operation (from its log).
    pub refused: bool,
}

/// One page instance's share of a queue.
#[derive(Clone, Debug, Default)]
pub struct QueueWorker {
    pub queue: String,
    pub prefetch: u16,
    pub processing_ms: u32,
    pub received: u64,
}

impl QueueHistory {
    pub fn handed_to(&mut self, queue: &str, tag: &str, external: bool) {
        self.handed
            .entry(queue.to_owned())
            .or_default()
            .insert(tag.to_owned());
        if external {
            self.handed_externally
                .entry(queue.to_owned())
                .or_default()
                .insert(tag.to_owned());
        }
    }

    /// The fastest-to-slowest ratio of messages handed to two page instances of the queue that
    /// both had a prefetch limit and differed in processing time (the slower handed two at
    /// least), with both counts.
    pub fn best_fair_ratio(&self, queue: &str) -> Option<(u64, u64, u64)> {
        let workers: Vec<&QueueWorker> = self
            .workers
            .values()
            .filter(|w| w.queue == queue && w.prefetch > 0 && w.received > 0)
            .collect();
        let mut best: Option<(u64, u64, u64)> = None;
        for slow in &workers {
            for fast in &workers {
                // Two messages at least for the slow one: a ratio over one is chance.
                if fast.processing_ms < slow.processing_ms && slow.received >= 2 {
                    let ratio = fast.received / slow.received;
                    if best.is_none_or(|(r, _, _)| ratio > r) {
                        best = Some((ratio, fast.received, slow.received));
                    }
                }
            }
        }
        best
    }
}

/// The most entry ids remembered per group, for telling first deliveries from repeats and claims.
const MAX_REMEMBERED_ENTRIES: usize = 10_000;

/// What a Redis lab's groups did, as page instances reported it and as polls of Redis saw it.
#[derive(Clone, Debug, Default)]
pub struct StreamHistory {
    /// For each group: consumers that were handed entries (page instances by their reports,
    /// others when Redis showed them holding entries).
    pub handed: HashMap<String, std::collections::BTreeSet<String>>,
    /// For each group: the consumers among those that the page does not run.
    pub handed_externally: HashMap<String, std::collections::BTreeSet<String>>,
    /// For each group: which consumer each entry was first handed to (page instances' reports),
    /// at most [`MAX_REMEMBERED_ENTRIES`].
    pub first: HashMap<String, HashMap<String, String>>,
    /// For each group: entries first handed to two different consumers: not what a group does.
    pub handed_twice: HashMap<String, u64>,
    /// For each group: entries claimed by a consumer from another, by id.
    pub claims: HashMap<String, std::collections::BTreeSet<String>>,
    /// For each group: the most entries a crashed page instance was seen holding pending.
    pub left_pending: HashMap<String, u64>,
    /// For each group: the most times one entry was delivered.
    pub most_deliveries: HashMap<String, u64>,
    /// Whether a connection reading in no group (plain `XREAD`) was seen.
    pub loose_readers: bool,
}

impl StreamHistory {
    pub fn handed_to(&mut self, group: &str, consumer: &str, external: bool) {
        self.handed
            .entry(group.to_owned())
            .or_default()
            .insert(consumer.to_owned());
        if external {
            self.handed_externally
                .entry(group.to_owned())
                .or_default()
                .insert(consumer.to_owned());
        }
    }

    /// An entry read (not claimed) by a page instance.
    pub fn first_handed(&mut self, group: &str, id: &str, consumer: &str) {
        let first = self.first.entry(group.to_owned()).or_default();
        match first.get(id) {
            Some(before) if before != consumer => {
                *self.handed_twice.entry(group.to_owned()).or_default() += 1;
            }
            Some(_) => {}
            None if first.len() < MAX_REMEMBERED_ENTRIES => {
                first.insert(id.to_owned(), consumer.to_owned());
            }
            None => {}
        }
    }

    /// How many entries page instances of the group were handed by reads.
    pub fn first_received(&self, group: &str) -> u64 {
        self.first.get(group).map_or(0, |f| f.len() as u64)
    }

    /// Records a claim; `true` if this entry's claim is news.
    pub fn claimed(&mut self, group: &str, id: &str) -> bool {
        let claims = self.claims.entry(group.to_owned()).or_default();
        claims.len() < MAX_REMEMBERED_ENTRIES && claims.insert(id.to_owned())
    }

    pub fn delivered(&mut self, group: &str, deliveries: u64) {
        let most = self.most_deliveries.entry(group.to_owned()).or_default();
        *most = (*most).max(deliveries);
    }
}

/// What the order of arrivals in one group and topic looked like, with what it needs to judge
/// the next arrival: the highest number seen per key and per instance (keys are capped by the
/// producer's limits, instances by the supervisor's).
#[derive(Clone, Debug, Default)]
pub struct Order {
    pub view: grouplab_protocol::OrderView,
    last_by_key: HashMap<String, u64>,
    last_by_instance: HashMap<grouplab_protocol::InstanceId, (u64, i32)>,
}

impl Order {
    /// One first-time arrival of message number `number` at `instance`.
    pub fn arrived(
        &mut self,
        instance: grouplab_protocol::InstanceId,
        key: Option<&str>,
        number: u64,
        partition: i32,
    ) {
        if let Some(key) = key {
            self.view.keyed += 1;
            // Looked up before inserting: most arrivals are of a key seen before.
            match self.last_by_key.get_mut(key) {
                Some(last) if number < *last => self.view.out_of_key_order += 1,
                Some(last) => *last = number,
                None => {
                    self.last_by_key.insert(key.to_owned(), number);
                }
            }
        }
        let last = self
            .last_by_instance
            .entry(instance)
            .or_insert((0, partition));
        if number < last.0 {
            self.view.overtaken += 1;
            if self.view.example.is_none() {
                self.view.example = Some(format!(
                    "#{number} (P{partition}) arrived after #{} (P{})",
                    last.0, last.1
                ));
            }
        } else {
            *last = (number, partition);
        }
    }
}

/// The number grouplab's producer writes into each value (`click #12 by user-3`), if any.
pub fn produced_number(value: &str) -> Option<u64> {
    let digits: String = value
        .strip_prefix("click #")?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// How a group's running members gave partitions up in rebalances.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Revocations {
    /// Revocations of everything a member held: the eager protocol's stop-the-world.
    pub everything: u32,
    /// Revocations of part of what a member held: the cooperative protocol's moves.
    pub some: u32,
}

/// How long partitions of one group went without a working owner in rebalances among running
/// members (scale-outs, not crashes or stops).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pauses {
    /// How many times a partition was given up by a running member and given again.
    pub partitions: u32,
    /// The longest of those times.
    pub longest_ms: u64,
    /// How many times a running member gave up everything it held.
    pub stopped: u32,
}

/// How long a partition given up is waited for: one not given again by then is forgotten.
const RELEASE_MEMORY_MS: EpochMillis = 120_000;

/// How many times each offset of one partition was received, as runs of consecutive offsets
/// received the same number of times. Normal consumption is one run per partition however many
/// messages flow; each redelivery adds a run or two; so memory and the checks' work grow with
/// what happened, not with the number of messages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OffsetCounts {
    /// Run start → (end, exclusive; how many times each offset in it was received, at least 1).
    runs: BTreeMap<i64, (i64, u32)>,
    /// Set when a receipt was dropped because [`MAX_RUNS`] was reached: counts are then a floor.
    overflowed: bool,
}

/// The most runs one partition keeps: far more than any lab makes, and a bound on a pathological one.
pub const MAX_RUNS: usize = 10_000;

/// What a range of offsets received.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Receipts {
    /// Offsets never received.
    pub missing: u64,
    /// Offsets received more than once.
    pub duplicated: u64,
    /// Receipts beyond the first, summed over the range.
    pub extra: u64,
    /// False when the record overflowed and the numbers may be short.
    pub exact: bool,
}

impl OffsetCounts {
    pub fn record(&mut self, offset: i64) {
        let found = self
            .runs
            .range(..=offset)
            .next_back()
            .filter(|(_, (end, _))| offset < *end)
            .map(|(&start, &(end, count))| (start, end, count));
        let pieces = match found {
            Some((start, end, count)) => [
                (start, offset, count),
                (offset, offset + 1, count + 1),
                (offset + 1, end, count),
            ],
            None => [
                (offset, offset, 0),
                (offset, offset + 1, 1),
                (offset + 1, offset + 1, 0),
            ],
        };
        if self.runs.len() + 2 > MAX_RUNS {
            self.overflowed = true;
            return;
        }
        if let Some((start, ..)) = found {
            self.runs.remove(&start);
        }
        for (start, end, count) in pieces {
            if start < end {
                self.runs.insert(start, (end, count));
            }
        }
        self.merge_at(offset + 1);
        self.merge_at(offset);
    }

    /// Joins the run starting at `start` to the run just before it, if they touch and agree.
    fn merge_at(&mut self, start: i64) {
        let Some(&(end, count)) = self.runs.get(&start) else {
            return;
        };
        let before = self
            .runs
            .range(..start)
            .next_back()
            .map(|(&s, &(e, c))| (s, e, c));
        if let Some((previous, previous_end, previous_count)) = before
            && previous_end == start
            && previous_count == count
        {
            self.runs.remove(&start);
            self.runs.insert(previous, (end, count));
        }
    }

    pub fn count(&self, offset: i64) -> u32 {
        self.runs
            .range(..=offset)
            .next_back()
            .filter(|(_, (end, _))| offset < *end)
            .map_or(0, |(_, (_, count))| *count)
    }

    /// The ranges of `from..to` whose offsets were recorded `wanted` times (`0`: never), in order.
    pub fn ranges(&self, from: i64, to: i64, wanted: impl Fn(u32) -> bool) -> Vec<(i64, i64)> {
        let mut out: Vec<(i64, i64)> = Vec::new();
        let mut push = |start: i64, end: i64| {
            if start >= end {
                return;
            }
            match out.last_mut() {
                Some(last) if last.1 == start => last.1 = end,
                _ => out.push((start, end)),
            }
        };
        let mut at = from;
        let first = self
            .runs
            .range(..=from)
            .next_back()
            .map_or(from, |(&start, _)| start);
        for (&start, &(end, count)) in self.runs.range(first..to) {
            let (start, end) = (start.max(from), end.min(to));
            if start >= end {
                continue;
            }
            if wanted(0) {
                push(at, start);
            }
            if wanted(count) {
                push(start, end);
            }
            at = end;
        }
        if wanted(0) {
            push(at, to);
        }
        out
    }

    /// Whether a receipt was dropped at the cap, so that counts are a floor.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// What the offsets `from..to` received, walking runs rather than offsets.
    pub fn receipts(&self, from: i64, to: i64) -> Receipts {
        let mut receipts = Receipts {
            exact: !self.overflowed,
            ..Receipts::default()
        };
        let mut covered = 0u64;
        let first = self
            .runs
            .range(..=from)
            .next_back()
            .map_or(from, |(&start, _)| start);
        for (&start, &(end, count)) in self.runs.range(first..to) {
            let overlap = (end.min(to) - start.max(from)).max(0) as u64;
            covered += overlap;
            if count > 1 {
                receipts.duplicated += overlap;
                receipts.extra += overlap * u64::from(count - 1);
            }
        }
        receipts.missing = ((to - from).max(0) as u64).saturating_sub(covered);
        receipts
    }
}

/// What `counts`, if any, says about `from..to`: everything missing when nothing was received.
pub fn receipts(counts: Option<&OffsetCounts>, from: i64, to: i64) -> Receipts {
    counts.map_or(
        Receipts {
            missing: (to - from).max(0) as u64,
            exact: true,
            ..Receipts::default()
        },
        |c| c.receipts(from, to),
    )
}

impl History {
    /// Whether a page instance of the group received this offset before.
    pub fn received_before(&self, group: &str, partition: &TopicPartition, offset: i64) -> bool {
        self.received
            .get(group)
            .and_then(|g| g.get(partition))
            .is_some_and(|counts| counts.count(offset) > 0)
    }

    pub fn record_received(&mut self, group: &str, partition: TopicPartition, offset: i64) {
        self.received
            .entry(group.to_owned())
            .or_default()
            .entry(partition)
            .or_default()
            .record(offset);
    }

    pub fn record_processed(&mut self, group: &str, partition: TopicPartition, offset: i64) {
        self.processed
            .entry(group.to_owned())
            .or_default()
            .entry(partition)
            .or_default()
            .record(offset);
    }

    pub fn record_revocation(&mut self, group: &str, revoked: usize, held: usize) {
        if revoked == 0 {
            return;
        }
        let counts = self.revocations.entry(group.to_owned()).or_default();
        if revoked >= held {
            counts.everything += 1;
        } else {
            counts.some += 1;
        }
    }

    /// A running member's revoke callback gave up `partitions` at `now`.
    pub fn record_released(
        &mut self,
        group: &str,
        partitions: &[TopicPartition],
        held: usize,
        now: EpochMillis,
        members: usize,
    ) {
        if partitions.is_empty() {
            return;
        }
        self.released
            .retain(|_, (since, _)| now.saturating_sub(*since) < RELEASE_MEMORY_MS);
        if partitions.len() >= held {
            self.pauses
                .entry((group.to_owned(), members))
                .or_default()
                .stopped += 1;
        }
        for tp in partitions {
            self.released
                .insert((group.to_owned(), tp.clone()), (now, members));
        }
    }

    /// A member's assign callback got `partitions` at `now`: those given up in a rebalance
    /// were without an owner since.
    pub fn record_regained(
        &mut self,
        group: &str,
        partitions: &[TopicPartition],
        now: EpochMillis,
    ) {
        for tp in partitions {
            if let Some((since, members)) = self.released.remove(&(group.to_owned(), tp.clone())) {
                let pauses = self.pauses.entry((group.to_owned(), members)).or_default();
                pauses.partitions += 1;
                pauses.longest_ms = pauses.longest_ms.max(now.saturating_sub(since));
            }
        }
    }

    /// A static member's process exited holding `partitions`.
    pub fn static_left(
        &mut self,
        group: &str,
        id: &str,
        partitions: Vec<TopicPartition>,
        generation: Option<i32>,
    ) {
        if !partitions.is_empty() {
            self.static_left
                .insert((group.to_owned(), id.to_owned()), (partitions, generation));
        }
    }

    /// A static member was assigned `partitions`: a return if they are the ones its predecessor
    /// held and the group has not rebalanced since it left.
    pub fn static_rejoined(
        &mut self,
        group: &str,
        id: &str,
        partitions: &[TopicPartition],
        generation: Option<i32>,
    ) {
        let key = (group.to_owned(), id.to_owned());
        let Some((held, left_in)) = self.static_left.remove(&key) else {
            return;
        };
        let mut got = partitions.to_vec();
        got.sort();
        if got == held && left_in == generation {
            self.static_returns
                .entry(group.to_owned())
                .or_default()
                .push(id.to_owned());
        }
    }

    /// Notes that one of the learner's own consumers owns these partitions in `group`.
    pub fn record_external_owner(&mut self, group: &str, partitions: &[TopicPartition]) {
        if partitions.is_empty() {
            return;
        }
        let owned = self.external.entry(group.to_owned()).or_default();
        for tp in partitions {
            if !owned.contains(tp) {
                owned.insert(tp.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_are_kept_as_runs_however_many_messages_flow() {
        let mut counts = OffsetCounts::default();
        for offset in 0..100_000 {
            counts.record(offset);
        }
        assert_eq!(counts.runs.len(), 1, "in-order consumption is one run");
        // A crash redelivers 40..50; one more offset arrives out of order past a gap.
        for offset in 40..50 {
            counts.record(offset);
        }
        counts.record(100_005);
        assert_eq!(counts.runs.len(), 4);
        assert_eq!(
            (counts.count(39), counts.count(45), counts.count(50)),
            (1, 2, 1)
        );
        assert_eq!(counts.count(100_002), 0);
        let all = counts.receipts(0, 100_010);
        assert_eq!(
            (all.missing, all.duplicated, all.extra, all.exact),
            (9, 10, 10, true)
        );
        assert_eq!(counts.receipts(45, 47).duplicated, 2);
        assert_eq!(counts.receipts(100_000, 100_005).missing, 5);
        // Filling the gap joins the runs again.
        for offset in 100_000..100_010 {
            if offset != 100_005 {
                counts.record(offset);
            }
        }
        assert_eq!(counts.runs.len(), 3);
        assert_eq!(counts.receipts(0, 100_010).missing, 0);
    }

    #[test]
    fn a_pathological_pattern_stops_at_the_cap_and_says_so() {
        let mut counts = OffsetCounts::default();
        for offset in (0..(MAX_RUNS as i64 * 4)).step_by(2) {
            counts.record(offset);
        }
        assert!(counts.runs.len() <= MAX_RUNS);
        assert!(!counts.receipts(0, 10).exact);
    }
}
