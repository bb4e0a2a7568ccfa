//! Lag over time: each poll of the broker adds a sample per group and topic, from which the
//! page gets a chart of the total and a status per partition in the spirit of Burrow's rules.
//!
//! The rules, over the last [`WINDOW`] samples of a partition (about 7 s of polls):
//! - **OK**: lag was zero in some sample, or it did not grow from the first to the last;
//! - **WARNING**: the committed offset moved but lag grew: the group is falling behind;
//! - **STALL**: lag in every sample, the committed offset never moved, and a working member owns
//!   the partition: alive but stuck (a blocked poll loop, a poison message);
//! - **STOP**: the same with no working owner: nobody reads the partition.
//!
//! Kept small: [`WINDOW`] samples per partition and [`LAG_POINTS`] chart points per group and topic.

use std::collections::{HashMap, VecDeque};

use grouplab_protocol::{
    EpochMillis, LAG_POINTS, LagStatus, LagView, PartitionLag, TopicView, lag,
};

/// How many samples a partition's status is judged over.
pub const WINDOW: usize = 10;

#[derive(Default)]
pub struct LagTracker {
    series: HashMap<(String, String), Series>,
}

#[derive(Default)]
struct Series {
    chart: VecDeque<(EpochMillis, i64)>,
    /// Per partition, the last samples of (committed offset, lag), oldest first.
    windows: HashMap<i32, VecDeque<(Option<i64>, i64)>>,
}

impl LagTracker {
    /// Adds a sample of `group` on `topic`; `owned` says whether a working member owns a
    /// partition. Returns the view to show, or `None` if the group has no offsets on the topic.
    pub fn sample(
        &mut self,
        group: &str,
        topic: &TopicView,
        owned: impl Fn(i32) -> bool,
        now: EpochMillis,
    ) -> Option<LagView> {
        topic.groups.iter().find(|g| g.group == group)?;
        let series = self
            .series
            .entry((group.to_owned(), topic.name.clone()))
            .or_default();
        let mut total = 0;
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for lane in &topic.partitions {
            let committed = topic.committed(group, lane.partition);
            let behind = lag(lane, committed);
            total += behind;
            let window = series.windows.entry(lane.partition).or_default();
            window.push_back((committed, behind));
            if window.len() > WINDOW {
                window.pop_front();
            }
            partitions.push(PartitionLag {
                partition: lane.partition,
                lag: behind,
                status: status(window, owned(lane.partition)),
            });
        }
        series.chart.push_back((now, total));
        if series.chart.len() > LAG_POINTS {
            series.chart.pop_front();
        }
        Some(LagView {
            group: group.to_owned(),
            topic: topic.name.clone(),
            chart: series.chart.iter().copied().collect(),
            partitions,
            rates: Vec::new(),
        })
    }

    pub fn clear(&mut self) {
        self.series.clear();
    }
}

/// A partition's status from its window of (committed offset, lag) samples, oldest first.
pub fn status(window: &VecDeque<(Option<i64>, i64)>, owned: bool) -> LagStatus {
    if window.len() < 3 {
        return LagStatus::Measuring;
    }
    let (Some(first), Some(last)) = (window.front(), window.back()) else {
        return LagStatus::Measuring;
    };
    if window.iter().any(|(_, lag)| *lag == 0) {
        return LagStatus::Ok;
    }
    let moved = window.iter().any(|(committed, _)| *committed != first.0);
    match (moved, owned) {
        (false, true) => LagStatus::Stall,
        (false, false) => LagStatus::Stop,
        (true, _) if last.1 > first.1 => LagStatus::Warning,
        (true, _) => LagStatus::Ok,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn judge(samples: &[(Option<i64>, i64)], owned: bool, expected: LagStatus) {
        let window: VecDeque<_> = samples.iter().copied().collect();
        assert_eq!(status(&window, owned), expected, "{samples:?}");
    }

    #[test]
    fn statuses_follow_the_documented_rules() {
        judge(&[(Some(0), 5), (Some(5), 0)], true, LagStatus::Measuring);
        judge(
            &[(Some(0), 5), (Some(5), 0), (Some(8), 2)],
            true,
            LagStatus::Ok,
        );
        // Committing, and the lag shrinks: fine.
        judge(
            &[(Some(0), 9), (Some(5), 7), (Some(9), 4)],
            true,
            LagStatus::Ok,
        );
        // Committing, but the lag grows: falling behind.
        judge(
            &[(Some(0), 5), (Some(5), 9), (Some(9), 14)],
            true,
            LagStatus::Warning,
        );
        // Never committing with lag, and owned: stuck.
        judge(
            &[(Some(5), 5), (Some(5), 9), (Some(5), 14)],
            true,
            LagStatus::Stall,
        );
        // The same with nobody owning the partition.
        judge(&[(None, 5), (None, 9), (None, 14)], false, LagStatus::Stop);
    }
}
