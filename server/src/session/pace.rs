//! When batches of consumed messages may leave for the pages: up to [`BATCH_BURST`] back to back,
//! as a burst from one fetch needs, and beyond that one per [`BATCH_PACE`], so that a flood costs
//! at most 250 events a second.

use std::time::Duration;

/// The least time between two batches once a burst is spent.
const BATCH_PACE: Duration = Duration::from_millis(4);
/// How many batches may leave back to back.
const BATCH_BURST: u32 = 8;

/// When message batches may leave: a token bucket of [`BATCH_BURST`] batches refilled one per
/// [`BATCH_PACE`], kept as one instant (the generic cell rate algorithm): `theoretical` is when
/// the bucket would be full again if nothing more were sent.
#[derive(Clone, Copy, Debug)]
pub(super) struct Pace {
    theoretical: tokio::time::Instant,
}

impl Pace {
    pub(super) fn new(now: tokio::time::Instant) -> Self {
        Self { theoretical: now }
    }

    /// The earliest a batch that is ready at `now` may leave.
    pub(super) fn leaves_at(self, now: tokio::time::Instant) -> tokio::time::Instant {
        let tolerance = BATCH_PACE * (BATCH_BURST - 1);
        self.theoretical
            .checked_sub(tolerance)
            .map_or(now, |earliest| earliest.max(now))
    }

    /// Notes a batch sent at `now`.
    pub(super) fn sent(&mut self, now: tokio::time::Instant) {
        self.theoretical = self.theoretical.max(now) + BATCH_PACE;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_batches_leaves_at_once_and_a_flood_is_paced() {
        let start = tokio::time::Instant::now();
        let mut pace = Pace::new(start);
        for _ in 0..BATCH_BURST {
            assert_eq!(pace.leaves_at(start), start);
            pace.sent(start);
        }
        assert_eq!(pace.leaves_at(start), start + BATCH_PACE);

        // A flood: each batch one pace after the one before.
        let mut at = start;
        for _ in 0..100 {
            at = pace.leaves_at(at);
            pace.sent(at);
        }
        assert_eq!(at, start + BATCH_PACE * 100);
        assert_eq!(pace.leaves_at(at), at + BATCH_PACE);

        // A quiet spell as long as the burst refills it.
        let later = at + BATCH_PACE * BATCH_BURST;
        for _ in 0..BATCH_BURST {
            assert_eq!(pace.leaves_at(later), later);
            pace.sent(later);
        }
        assert_eq!(pace.leaves_at(later), later + BATCH_PACE);
    }
}
