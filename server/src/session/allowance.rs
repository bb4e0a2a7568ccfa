//! What one learner's labs may make and send together, in a class: topics and partitions
//! created through their pages, and messages produced by them. Each lab's own limits
//! (`grouplab_protocol::limits`) still apply to each command; this is the learner's total
//! across their labs, so that one learner cannot take the machine's memory or CPU from the rest.
//!
//! It counts what the pages do. A learner's own scripts talk to their broker directly, which
//! has no quotas (nisshi has none), so they are bounded only by the learner's own broker being
//! theirs alone (a class's embedded brokers) or by the cluster's own quotas (a named cluster).

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use grouplab_protocol::{Notice, limits};

/// A learner's totals, from the server's options.
#[derive(Clone, Copy, Debug)]
pub struct AllowanceLimits {
    /// Topics their labs' pages may have created at once.
    pub topics: usize,
    /// Partitions those topics may have together.
    pub partitions: u32,
    /// Messages their pages may produce a second, together; one produce of the largest size a
    /// lab allows may always go at once when nothing else was produced for a while.
    pub messages_per_second: NonZeroU32,
}

/// What a reservation counted, to give back if the broker refuses.
#[derive(Debug)]
#[must_use = "a reservation the broker refuses is given back with `Allowance::undo`"]
pub struct Reserved {
    key: (String, String),
    partitions: u32,
    previous: Option<u32>,
}

/// One learner's use of their allowance.
pub struct Allowance {
    limits: AllowanceLimits,
    /// Each topic a page created, by lab and name, with its partitions.
    /// A std Mutex: held for a map update, never across an await.
    topics: Mutex<BTreeMap<(String, String), u32>>,
    produce: DefaultDirectRateLimiter,
}

impl Allowance {
    pub fn new(limits: AllowanceLimits) -> Self {
        let burst = NonZeroU32::new(limits::MAX_PRODUCE).expect("the produce limit is not zero");
        let quota = Quota::per_second(limits.messages_per_second)
            .allow_burst(burst.max(limits.messages_per_second));
        Self {
            limits,
            topics: Mutex::new(BTreeMap::new()),
            produce: RateLimiter::direct(quota),
        }
    }

    /// Counts a topic a lab is about to create, or to create again (the broker may say it
    /// exists); the caller gives it back with [`Self::undo`] if the broker refuses it.
    pub fn reserve_topic(
        &self,
        lab: &str,
        topic: &str,
        partitions: u32,
    ) -> Result<Reserved, Notice> {
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        let key = (lab.to_owned(), topic.to_owned());
        if !topics.contains_key(&key) && topics.len() >= self.limits.topics {
            return Err(Notice::error(
                "You have made as many topics as this class allows",
                format!(
                    "Your labs may have {} topics at once. Reset a lab you have finished to delete its topics, then try again.",
                    self.limits.topics
                ),
            ));
        }
        self.count(&mut topics, key, partitions)
    }

    /// Counts the partitions a lab's topic is about to grow to (a topic of the lab's setup,
    /// never created by the page, counts from its first growth); the caller gives the growth
    /// back with [`Self::undo`] if the broker refuses it.
    pub fn reserve_growth(
        &self,
        lab: &str,
        topic: &str,
        partitions: u32,
    ) -> Result<Reserved, Notice> {
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        self.count(&mut topics, (lab.to_owned(), topic.to_owned()), partitions)
    }

    fn count(
        &self,
        topics: &mut BTreeMap<(String, String), u32>,
        key: (String, String),
        partitions: u32,
    ) -> Result<Reserved, Notice> {
        let used: u32 = topics
            .iter()
            .filter(|(k, _)| **k != key)
            .map(|(_, n)| n)
            .sum();
        if used + partitions > self.limits.partitions {
            return Err(Notice::error(
                "That is more partitions than this class allows",
                format!(
                    "Your labs' topics may have {} partitions together, and have {used}. Reset a lab you have finished to delete its topics, or ask for fewer.",
                    self.limits.partitions
                ),
            ));
        }
        let previous = topics.insert(key.clone(), partitions);
        Ok(Reserved {
            key,
            partitions,
            previous,
        })
    }

    /// Gives back what the broker refused: the topic counts as it did before, unless another
    /// command counted it anew meanwhile.
    pub fn undo(&self, reserved: Reserved) {
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        if topics.get(&reserved.key) != Some(&reserved.partitions) {
            return;
        }
        match reserved.previous {
            Some(previous) => topics.insert(reserved.key, previous),
            None => topics.remove(&reserved.key),
        };
    }

    /// A lab's topic is gone (the broker refused it, or Reset deleted it).
    pub fn release(&self, lab: &str, topic: &str) {
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        topics.remove(&(lab.to_owned(), topic.to_owned()));
    }

    /// Takes `count` messages from the produce allowance, or says how long until they fit.
    pub fn take_messages(&self, count: u32) -> Result<(), Notice> {
        let Some(count) = NonZeroU32::new(count) else {
            return Ok(());
        };
        match self.produce.check_n(count) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => {
                let wait = not_until.wait_time_from(self.produce.clock().now());
                Err(self.produce_refused(wait))
            }
            Err(_too_many) => Err(self.produce_refused(Duration::ZERO)),
        }
    }

    /// Waits until `count` messages fit in the produce allowance, for a steady produce, which
    /// is slowed to the learner's rate rather than stopped.
    pub async fn wait_for_messages(&self, count: u32) {
        let Some(count) = NonZeroU32::new(count) else {
            return;
        };
        // More than the burst never fits at once: take it one second's worth at a time.
        let step = count.min(self.limits.messages_per_second);
        let mut left = count.get();
        while left > 0 {
            let now = NonZeroU32::new(left.min(step.get())).expect("left is not zero");
            let _ = self.produce.until_n_ready(now).await;
            left -= now.get();
        }
    }

    fn produce_refused(&self, wait: Duration) -> Notice {
        let when = if wait.is_zero() {
            "Ask for fewer at once".to_owned()
        } else {
            format!("Try again in {} s", wait.as_secs_f64().ceil().max(1.0))
        };
        Notice::error(
            "You are producing faster than this class allows",
            format!(
                "Your labs may produce {} messages a second together. {when}.",
                self.limits.messages_per_second
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowance(topics: usize, partitions: u32, rate: u32) -> Allowance {
        Allowance::new(AllowanceLimits {
            topics,
            partitions,
            messages_per_second: NonZeroU32::new(rate).expect("not zero"),
        })
    }

    #[test]
    fn topics_are_counted_across_labs_and_given_back() {
        let a = allowance(2, 100, 10);
        let _ = a.reserve_topic("04", "user-clicks", 3).expect("first");
        let _ = a.reserve_topic("06", "orders", 3).expect("second");
        let refused = a.reserve_topic("07", "more", 1).expect_err("a third");
        assert!(refused.detail.contains("2 topics at once"), "{refused:?}");
        // Creating the same topic again is not another topic; the broker's refusal (it exists)
        // leaves it counted as before.
        let again = a.reserve_topic("06", "orders", 1).expect("the same topic");
        a.undo(again);
        let refused = a
            .reserve_growth("04", "user-clicks", 98)
            .expect_err("98 + 3 > 100");
        assert!(refused.detail.contains("and have 3"), "{refused:?}");
        a.release("04", "user-clicks");
        let _ = a.reserve_topic("07", "more", 1).expect("after a release");
    }

    #[test]
    fn partitions_are_counted_across_topics_and_growths() {
        let a = allowance(10, 10, 10);
        let _ = a.reserve_topic("04", "a", 6).expect("6 of 10");
        let refused = a.reserve_topic("06", "b", 5).expect_err("11 of 10");
        assert!(refused.detail.contains("and have 6"), "{refused:?}");
        let _ = a.reserve_topic("06", "b", 4).expect("10 of 10");
        let refused = a.reserve_growth("04", "a", 7).expect_err("growth past 10");
        assert!(
            refused.detail.contains("10 partitions together"),
            "{refused:?}"
        );
        a.release("06", "b");
        let growth = a.reserve_growth("04", "a", 9).expect("9 of 10");
        // A later growth counted meanwhile is not undone by an earlier one's refusal.
        let later = a.reserve_growth("04", "a", 10).expect("10 of 10");
        a.undo(growth);
        let refused = a.reserve_topic("06", "b", 1).expect_err("still 10 of 10");
        assert!(refused.detail.contains("and have 10"), "{refused:?}");
        a.undo(later);
        // Undone, "a" has 9 again, since the later growth counted from the earlier one.
        let _ = a.reserve_topic("06", "b", 1).expect("10 of 10");
        // A setup topic the page never created counts from its first growth, and is gone
        // again when that growth is refused.
        a.release("06", "b");
        let setup = a.reserve_growth("05", "setup", 1).expect("10 of 10");
        a.undo(setup);
        let _ = a
            .reserve_topic("06", "b", 1)
            .expect("the growth was given back");
    }

    #[test]
    fn a_learner_produces_a_burst_then_at_their_rate() {
        let a = allowance(10, 10, 1_000);
        a.take_messages(limits::MAX_PRODUCE)
            .expect("one full produce");
        let refused = a.take_messages(1_000).expect_err("right after");
        assert!(
            refused.detail.contains("1000 messages a second"),
            "{refused:?}"
        );
        assert!(refused.detail.contains("Try again in"), "{refused:?}");
        a.take_messages(0).expect("nothing always fits");
    }
}
