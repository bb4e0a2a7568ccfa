//! The ledger: what became of every message a group's page instances touched.
//!
//! Built from the instances' reports (received, processed) and the broker's committed offsets,
//! kept as runs in [`History`] so that it stays small however many messages flow:
//!
//! - **lost**: received by a page instance, never processed by any, and below the group's
//!   committed offset, so the group will never read it again (auto-commit, or a commit before
//!   processing, followed by a crash);
//! - **duplicated**: processed more than once (a commit after processing that a crash cut short).
//!
//! Partitions one of the learner's own consumers owned are listed as unknown: their processing is
//! visible only through commits, so they are not judged.

use grouplab_protocol::{LEDGER_SAMPLE, LedgerView, TopicPartition, TopicView};

use super::history::{History, OffsetCounts};

/// The ledger of `group` on `topic`, or `None` when no page instance of the group touched it.
pub fn ledger(history: &History, group: &str, topic: &TopicView) -> Option<LedgerView> {
    let received = history.received.get(group);
    let processed = history.processed.get(group);
    let touched = |tp: &TopicPartition| {
        received.is_some_and(|r| r.contains_key(tp))
            || processed.is_some_and(|p| p.contains_key(tp))
    };
    let partitions: Vec<TopicPartition> = topic
        .partitions
        .iter()
        .map(|lane| TopicPartition::new(&topic.name, lane.partition))
        .collect();
    if !partitions.iter().any(touched) {
        return None;
    }
    let external = history.external.get(group);
    let mut view = LedgerView {
        group: group.to_owned(),
        topic: topic.name.clone(),
        exact: true,
        order: history
            .order
            .get(&(group.to_owned(), topic.name.clone()))
            .map(|o| o.view.clone())
            .unwrap_or_default(),
        ..LedgerView::default()
    };
    let empty = OffsetCounts::default();
    for (lane, tp) in topic.partitions.iter().zip(&partitions) {
        let got = received.and_then(|r| r.get(tp)).unwrap_or(&empty);
        let done = processed.and_then(|p| p.get(tp)).unwrap_or(&empty);
        view.exact &= !got.overflowed() && !done.overflowed();
        let (from, to) = (lane.log_start, lane.log_end);
        for (start, end) in done.ranges(from, to, |count| count >= 1) {
            view.processed += (end - start) as u64;
        }
        for (start, end) in done.ranges(from, to, |count| count >= 2) {
            view.duplicated += (end - start) as u64;
            sample(&mut view.duplicated_sample, lane.partition, start, end);
        }
        if external.is_some_and(|owned| owned.contains(tp)) {
            view.unknown.push(lane.partition);
            continue;
        }
        let committed = topic.committed(group, lane.partition).unwrap_or(from);
        for (start, end) in got.ranges(from, committed.min(to), |count| count >= 1) {
            for (gap_start, gap_end) in done.ranges(start, end, |count| count == 0) {
                view.lost += (gap_end - gap_start) as u64;
                sample(&mut view.lost_sample, lane.partition, gap_start, gap_end);
            }
        }
    }
    Some(view)
}

/// Adds offsets `start..end` of a partition to an example list, up to [`LEDGER_SAMPLE`].
fn sample(list: &mut Vec<(i32, i64)>, partition: i32, start: i64, end: i64) {
    let room = LEDGER_SAMPLE.saturating_sub(list.len());
    list.extend((start..end).take(room).map(|offset| (partition, offset)));
}

#[cfg(test)]
mod tests {
    use grouplab_protocol::{GroupOffsets, PartitionView};

    use super::*;

    fn topic(log_end: i64, committed: Option<i64>) -> TopicView {
        TopicView {
            name: "t".into(),
            partitions: vec![PartitionView {
                partition: 0,
                log_start: 0,
                log_end,
            }],
            groups: vec![GroupOffsets {
                group: "g".into(),
                committed: vec![committed],
            }],
        }
    }

    fn history(received: std::ops::Range<i64>, processed: &[i64]) -> History {
        let mut history = History::default();
        for offset in received {
            history.record_received("g", TopicPartition::new("t", 0), offset);
        }
        for &offset in processed {
            history.record_processed("g", TopicPartition::new("t", 0), offset);
        }
        history
    }

    #[test]
    fn a_group_that_touched_nothing_has_no_ledger() {
        assert_eq!(ledger(&History::default(), "g", &topic(10, None)), None);
    }

    #[test]
    fn received_but_unprocessed_messages_below_the_commit_are_lost() {
        // Auto-commit: a batch 10..20 was polled and committed; the crash came after 15.
        let processed: Vec<i64> = (0..15).collect();
        let view = ledger(&history(0..20, &processed), "g", &topic(40, Some(20))).expect("ledger");
        assert_eq!(view.processed, 15);
        assert_eq!(view.lost, 5);
        assert_eq!(
            view.lost_sample,
            vec![(0, 15), (0, 16), (0, 17), (0, 18), (0, 19)]
        );
        assert_eq!(view.duplicated, 0);
    }

    #[test]
    fn unprocessed_messages_above_the_commit_are_not_lost_but_pending() {
        // Commit after processing: the crash after 15 left the commit at 10, so 10..20 will be read again.
        let processed: Vec<i64> = (0..15).collect();
        let view = ledger(&history(0..20, &processed), "g", &topic(40, Some(10))).expect("ledger");
        assert_eq!(view.lost, 0);
    }

    #[test]
    fn messages_processed_twice_are_duplicated() {
        let mut processed: Vec<i64> = (0..20).collect();
        processed.extend(10..15);
        let view = ledger(&history(0..20, &processed), "g", &topic(20, Some(20))).expect("ledger");
        assert_eq!(view.processed, 20);
        assert_eq!(view.duplicated, 5);
        assert_eq!(view.duplicated_sample.len(), 5);
        assert_eq!(view.lost, 0);
    }

    #[test]
    fn a_partition_the_learners_own_consumer_owned_is_not_judged() {
        let mut history = history(0..20, &[0, 1]);
        history.record_external_owner("g", &[TopicPartition::new("t", 0)]);
        let view = ledger(&history, "g", &topic(20, Some(20))).expect("ledger");
        assert_eq!(view.unknown, vec![0]);
        assert_eq!(view.lost, 0);
    }

    #[test]
    fn samples_stop_at_the_cap() {
        let view = ledger(&history(0..100, &[]), "g", &topic(100, Some(100))).expect("ledger");
        assert_eq!(view.lost, 100);
        assert_eq!(view.lost_sample.len(), LEDGER_SAMPLE);
    }
}
