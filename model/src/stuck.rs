//! Who in a class may need the instructor: the **stuck** rule, over what the class's data says
//! about one learner and the class's pace. Pure: the time comes in as an argument.
//!
//! A learner is stuck when any of these holds (each with the figures that raised it):
//! - **slow on a step**: they have been on their open step longer than both [`SLOW_STEP_MS`] and
//!   twice the class's median time on that step (the median of those who passed it; with fewer
//!   than [`MEDIAN_QUORUM`] of them, [`SLOW_STEP_MS`] alone);
//! - **idle**: a step is open and they did nothing for [`IDLE_MS`];
//! - **the same error again and again**: the same error notice [`REPEATED_ERRORS`] times within
//!   [`REPEATED_ERRORS_WINDOW_MS`].

use grouplab_protocol::EpochMillis;

/// Time on a step below which nobody is flagged slow, whatever the class's pace: 5 minutes.
pub const SLOW_STEP_MS: u64 = 5 * 60 * 1000;
/// How many learners must have passed a step before its median counts.
pub const MEDIAN_QUORUM: usize = 3;
/// No activity for this long, with a step open: 5 minutes.
pub const IDLE_MS: u64 = 5 * 60 * 1000;
/// The same error notice this many times …
pub const REPEATED_ERRORS: usize = 3;
/// … within this window: a minute.
pub const REPEATED_ERRORS_WINDOW_MS: u64 = 60 * 1000;

/// What the rule reads about one learner.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LearnerPace {
    /// When their open step started (the step before it passed, or the lab opened); `None`
    /// when no step is open (no lab opened, or every step passed).
    pub on_step_since: Option<EpochMillis>,
    /// Their latest command or their instances' latest report.
    pub last_activity: Option<EpochMillis>,
    /// The error notices they were shown, `(when, title)`, oldest first.
    pub errors: Vec<(EpochMillis, String)>,
}

/// Why a learner is flagged, with the figures, for the instructor's tile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stuck {
    SlowOnStep {
        on_step_ms: u64,
        class_median_ms: Option<u64>,
    },
    Idle {
        idle_ms: u64,
    },
    SameError {
        title: String,
        times: usize,
    },
}

/// The first reason, in the order above, that `learner` is stuck at `now`; `step_times` are
/// the times the class's learners who passed their open step took on it.
pub fn stuck(learner: &LearnerPace, step_times: &[u64], now: EpochMillis) -> Option<Stuck> {
    let since = learner.on_step_since?;
    let on_step_ms = now.saturating_sub(since);
    let class_median_ms = (step_times.len() >= MEDIAN_QUORUM)
        .then(|| median(step_times))
        .flatten();
    let slow_after = class_median_ms.map_or(SLOW_STEP_MS, |m| SLOW_STEP_MS.max(2 * m));
    if on_step_ms > slow_after {
        return Some(Stuck::SlowOnStep {
            on_step_ms,
            class_median_ms,
        });
    }
    let idle_ms = now.saturating_sub(learner.last_activity.unwrap_or(since).max(since));
    if idle_ms > IDLE_MS {
        return Some(Stuck::Idle { idle_ms });
    }
    let recent: Vec<&String> = learner
        .errors
        .iter()
        .filter(|(at, _)| now.saturating_sub(*at) <= REPEATED_ERRORS_WINDOW_MS)
        .map(|(_, title)| title)
        .collect();
    recent.iter().find_map(|title| {
        let times = recent.iter().filter(|t| t == &title).count();
        (times >= REPEATED_ERRORS).then(|| Stuck::SameError {
            title: (*title).clone(),
            times,
        })
    })
}

/// The median of `values` (the lower middle one of an even count); `None` when empty.
pub fn median(values: &[u64]) -> Option<u64> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len().saturating_sub(1) / 2).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60 * 1000;
    const NOW: EpochMillis = 100 * MIN;

    fn on_step_for(minutes: u64) -> LearnerPace {
        LearnerPace {
            on_step_since: Some(NOW - minutes * MIN),
            last_activity: Some(NOW),
            errors: Vec::new(),
        }
    }

    #[test]
    fn slow_is_longer_than_both_five_minutes_and_twice_the_class_median() {
        let fast_class = [MIN, MIN, 2 * MIN];
        let slow_class = [4 * MIN, 5 * MIN, 6 * MIN];
        let cases: [(&str, LearnerPace, &[u64], bool); 7] = [
            ("4 min, nobody passed yet", on_step_for(4), &[], false),
            ("6 min, nobody passed yet", on_step_for(6), &[], true),
            (
                "6 min, two passed fast (no quorum)",
                on_step_for(6),
                &[MIN, MIN],
                true,
            ),
            (
                "4 min, the class took 1 min",
                on_step_for(4),
                &fast_class,
                false,
            ),
            (
                "6 min, the class took 1 min",
                on_step_for(6),
                &fast_class,
                true,
            ),
            (
                "9 min, the class took 5 min",
                on_step_for(9),
                &slow_class,
                false,
            ),
            (
                "11 min, the class took 5 min",
                on_step_for(11),
                &slow_class,
                true,
            ),
        ];
        for (case, learner, times, expected) in cases {
            let flagged = matches!(stuck(&learner, times, NOW), Some(Stuck::SlowOnStep { .. }));
            assert_eq!(flagged, expected, "{case}");
        }
        assert_eq!(
            stuck(&on_step_for(11), &slow_class, NOW),
            Some(Stuck::SlowOnStep {
                on_step_ms: 11 * MIN,
                class_median_ms: Some(5 * MIN),
            })
        );
    }

    #[test]
    fn idle_is_five_minutes_without_activity_on_an_open_step() {
        let idle = |since: u64, last: Option<u64>| {
            stuck(
                &LearnerPace {
                    on_step_since: Some(NOW - since * MIN),
                    last_activity: last.map(|l| NOW - l * MIN),
                    errors: Vec::new(),
                },
                &[10 * MIN, 10 * MIN, 10 * MIN],
                NOW,
            )
        };
        assert_eq!(idle(4, None), None, "the step itself started 4 min ago");
        assert_eq!(idle(8, Some(4)), None, "active 4 min ago");
        assert_eq!(idle(8, Some(6)), Some(Stuck::Idle { idle_ms: 6 * MIN }));
        assert_eq!(
            idle(6, Some(30)),
            Some(Stuck::Idle { idle_ms: 6 * MIN }),
            "activity before the step started counts from the step's start"
        );
    }

    #[test]
    fn the_same_error_three_times_in_a_minute() {
        let with_errors = |errors: &[(u64, &str)]| LearnerPace {
            on_step_since: Some(NOW - MIN),
            last_activity: Some(NOW),
            errors: errors
                .iter()
                .map(|(s, t)| (NOW - s * 1000, (*t).to_owned()))
                .collect(),
        };
        /// Each case: its name, the errors `(seconds ago, title)`, and what is flagged.
        type Case<'a> = (&'a str, &'a [(u64, &'a str)], Option<Stuck>);
        let cases: [Case; 4] = [
            ("twice", &[(10, "A"), (5, "A")], None),
            (
                "three times in 50 s",
                &[(50, "A"), (10, "A"), (5, "A")],
                Some(Stuck::SameError {
                    title: "A".into(),
                    times: 3,
                }),
            ),
            (
                "three times over 70 s",
                &[(70, "A"), (10, "A"), (5, "A")],
                None,
            ),
            (
                "three different errors",
                &[(30, "A"), (20, "B"), (5, "C")],
                None,
            ),
        ];
        for (case, errors, expected) in cases {
            assert_eq!(stuck(&with_errors(errors), &[], NOW), expected, "{case}");
        }
    }

    #[test]
    fn nobody_with_no_open_step_is_stuck() {
        let done = LearnerPace {
            on_step_since: None,
            last_activity: Some(0),
            errors: vec![(NOW, "A".into()); 3],
        };
        assert_eq!(stuck(&done, &[], NOW), None);
    }

    #[test]
    fn the_median_is_the_lower_middle() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3]), Some(3));
        assert_eq!(median(&[4, 1, 3, 2]), Some(2));
        assert_eq!(median(&[5, 1, 3]), Some(3));
    }
}
