//! The server-side assignors of the consumer group protocol: `uniform` (the default) and
//! `range`, as Apache Kafka's group coordinator computes them (`UniformAssignor`, with its
//! homogeneous and heterogeneous builders, and `RangeAssignor`).
//!
//! An assignor sees each member's subscription and its previous target, and answers every
//! member's new target. Members come in member id order; Kafka iterates a hash map, so where
//! Kafka breaks ties by that order, grouplab breaks them by member id.

use std::collections::{BTreeMap, BTreeSet};

use super::group::{Partitions, TopicUuid};

/// The assignors the embedded broker offers, the default first (`group.consumer.assignors`).
pub const ASSIGNORS: [&str; 2] = ["uniform", "range"];

/// What an assignor knows of one member.
#[derive(Clone, Debug)]
pub struct Spec<'a> {
    pub member_id: &'a str,
    pub instance_id: Option<&'a str>,
    /// The topics it subscribes to that exist, by id.
    pub topics: BTreeSet<TopicUuid>,
    /// Its target before this assignment.
    pub previous: &'a Partitions,
}

/// Each member's new target, by member id, for `members` over topics of `counts` partitions.
pub fn assign(
    assignor: &str,
    members: &[Spec<'_>],
    counts: &BTreeMap<TopicUuid, i32>,
) -> BTreeMap<String, Partitions> {
    if assignor == "range" {
        range(members, counts)
    } else {
        uniform(members, counts)
    }
}

fn partitions_of(topic: TopicUuid, counts: &BTreeMap<TopicUuid, i32>) -> impl Iterator<Item = i32> {
    0..counts.get(&topic).copied().unwrap_or(0).max(0)
}

/// `uniform`: every member gets as even a share as possible, and keeps what it had where it can.
fn uniform(
    members: &[Spec<'_>],
    counts: &BTreeMap<TopicUuid, i32>,
) -> BTreeMap<String, Partitions> {
    let homogeneous = members
        .windows(2)
        .all(|pair| pair[0].topics == pair[1].topics);
    if homogeneous {
        uniform_homogeneous(members, counts)
    } else {
        uniform_heterogeneous(members, counts)
    }
}

/// Every member subscribes to the same topics (`UniformHomogeneousAssignmentBuilder`): each
/// gets `total / members` partitions, the first `total % members` one more. A member keeps
/// its previous partitions up to its quota, and what is left over goes to the members below
/// theirs, in order.
fn uniform_homogeneous(
    members: &[Spec<'_>],
    counts: &BTreeMap<TopicUuid, i32>,
) -> BTreeMap<String, Partitions> {
    let mut targets: BTreeMap<String, Partitions> = BTreeMap::new();
    let Some(first) = members.first() else {
        return targets;
    };
    let topics = &first.topics;
    let exists = |t: &TopicUuid, p: i32| {
        topics.contains(t) && (0..counts.get(t).copied().unwrap_or(0)).contains(&p)
    };
    let mut kept_anywhere: BTreeSet<(TopicUuid, i32)> = BTreeSet::new();
    for member in members {
        for (topic, partitions) in member.previous {
            for &p in partitions {
                if exists(topic, p) {
                    kept_anywhere.insert((*topic, p));
                }
            }
        }
    }
    let mut unassigned: Vec<(TopicUuid, i32)> = topics
        .iter()
        .flat_map(|t| partitions_of(*t, counts).map(move |p| (*t, p)))
        .filter(|tp| !kept_anywhere.contains(tp))
        .collect();
    let total: usize = topics
        .iter()
        .map(|t| partitions_of(*t, counts).count())
        .sum();
    let min_quota = total / members.len();
    let mut extra = total % members.len();
    let mut unfilled: Vec<(&str, usize)> = Vec::new();
    let mut taken: BTreeSet<(TopicUuid, i32)> = BTreeSet::new();
    for member in members {
        let mut quota = min_quota;
        if extra > 0 {
            quota += 1;
            extra -= 1;
        }
        let target = targets.entry(member.member_id.to_owned()).or_default();
        for (topic, partitions) in member.previous {
            for &p in partitions {
                // A partition two previous targets named (a stale target) goes to the first.
                if !exists(topic, p) || !taken.insert((*topic, p)) {
                    continue;
                }
                if quota > 0 {
                    target.entry(*topic).or_default().insert(p);
                    quota -= 1;
                } else {
                    unassigned.push((*topic, p));
                }
            }
        }
        if quota > 0 {
            unfilled.push((member.member_id, quota));
        }
    }
    unassigned.sort();
    let mut next = unassigned.into_iter();
    for (member_id, quota) in unfilled {
        let target = targets.entry(member_id.to_owned()).or_default();
        for (topic, p) in next.by_ref().take(quota) {
            target.entry(topic).or_default().insert(p);
        }
    }
    targets
}

/// Members subscribe to different topics (`UniformHeterogeneousAssignmentBuilder`): each keeps
/// what it had of topics it still subscribes to; free partitions go, topic by topic, to the
/// topic's least loaded subscriber; then partitions move from the most to the least loaded
/// subscriber of each topic until their loads differ by at most one.
fn uniform_heterogeneous(
    members: &[Spec<'_>],
    counts: &BTreeMap<TopicUuid, i32>,
) -> BTreeMap<String, Partitions> {
    let mut targets: BTreeMap<String, Partitions> = members
        .iter()
        .map(|m| (m.member_id.to_owned(), Partitions::new()))
        .collect();
    let mut owned: BTreeSet<(TopicUuid, i32)> = BTreeSet::new();
    for member in members {
        let target = targets.entry(member.member_id.to_owned()).or_default();
        for (topic, partitions) in member.previous {
            if !member.topics.contains(topic) {
                continue;
            }
            for &p in partitions {
                if (0..counts.get(topic).copied().unwrap_or(0)).contains(&p)
                    && owned.insert((*topic, p))
                {
                    target.entry(*topic).or_default().insert(p);
                }
            }
        }
    }
    let load = |targets: &BTreeMap<String, Partitions>, id: &str| -> usize {
        targets
            .get(id)
            .map_or(0, |t| t.values().map(BTreeSet::len).sum())
    };
    // Topics with the most partitions per subscriber first, then the fewest subscribers.
    let mut topics: Vec<(TopicUuid, Vec<&str>)> = counts
        .keys()
        .map(|t| {
            let subscribers = members
                .iter()
                .filter(|m| m.topics.contains(t))
                .map(|m| m.member_id)
                .collect::<Vec<_>>();
            (*t, subscribers)
        })
        .filter(|(_, subscribers)| !subscribers.is_empty())
        .collect();
    topics.sort_by(|(ta, sa), (tb, sb)| {
        let per = |t: &TopicUuid, s: &Vec<&str>| {
            counts.get(t).copied().unwrap_or(0) as f64 / s.len() as f64
        };
        per(tb, sb)
            .total_cmp(&per(ta, sa))
            .then(sa.len().cmp(&sb.len()))
            .then(ta.cmp(tb))
    });
    for (topic, subscribers) in &topics {
        for p in partitions_of(*topic, counts) {
            if owned.contains(&(*topic, p)) {
                continue;
            }
            let least = subscribers
                .iter()
                .min_by_key(|id| load(&targets, id))
                .copied()
                .unwrap_or_default();
            targets
                .entry(least.to_owned())
                .or_default()
                .entry(*topic)
                .or_default()
                .insert(p);
            owned.insert((*topic, p));
        }
    }
    // Kafka makes at most 16 balancing passes.
    for _ in 0..16 {
        let mut moved = false;
        for (topic, subscribers) in topics.iter().filter(|(_, s)| s.len() >= 2) {
            loop {
                let most = subscribers
                    .iter()
                    .filter(|id| {
                        targets
                            .get(**id)
                            .is_some_and(|t| t.get(topic).is_some_and(|p| !p.is_empty()))
                    })
                    .max_by_key(|id| load(&targets, id))
                    .copied();
                let least = subscribers
                    .iter()
                    .min_by_key(|id| load(&targets, id))
                    .copied();
                let (Some(most), Some(least)) = (most, least) else {
                    break;
                };
                if load(&targets, most) <= load(&targets, least) + 1 {
                    break;
                }
                let Some(p) = targets
                    .get_mut(most)
                    .and_then(|t| t.get_mut(topic))
                    .and_then(|parts| parts.pop_last())
                else {
                    break;
                };
                targets
                    .entry(least.to_owned())
                    .or_default()
                    .entry(*topic)
                    .or_default()
                    .insert(p);
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    for target in targets.values_mut() {
        target.retain(|_, parts| !parts.is_empty());
    }
    targets
}

/// `range`: per topic, consecutive partitions to its subscribers, static members first by
/// instance id, then the others by member id; the first `partitions % subscribers` get one more.
/// Not sticky: what a member had does not count.
fn range(members: &[Spec<'_>], counts: &BTreeMap<TopicUuid, i32>) -> BTreeMap<String, Partitions> {
    let mut sorted: Vec<&Spec<'_>> = members.iter().collect();
    sorted.sort_by(|a, b| match (a.instance_id, b.instance_id) {
        (Some(x), Some(y)) => x.cmp(y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.member_id.cmp(b.member_id),
    });
    let mut targets: BTreeMap<String, Partitions> = members
        .iter()
        .map(|m| (m.member_id.to_owned(), Partitions::new()))
        .collect();
    for (&topic, &count) in counts {
        let subscribers: Vec<&str> = sorted
            .iter()
            .filter(|m| m.topics.contains(&topic))
            .map(|m| m.member_id)
            .collect();
        if subscribers.is_empty() {
            continue;
        }
        let count = usize::try_from(count).unwrap_or(0);
        let quota = count / subscribers.len();
        let extra = count % subscribers.len();
        let mut next = 0;
        for (i, id) in subscribers.iter().enumerate() {
            let share = quota + usize::from(i < extra);
            let parts: BTreeSet<i32> = (next..next + share)
                .filter_map(|p| i32::try_from(p).ok())
                .collect();
            next += share;
            if !parts.is_empty() {
                targets
                    .entry((*id).to_owned())
                    .or_default()
                    .insert(topic, parts);
            }
        }
    }
    targets
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: TopicUuid = [1; 16];
    const U: TopicUuid = [2; 16];

    fn parts(list: &[(TopicUuid, &[i32])]) -> Partitions {
        list.iter()
            .map(|(t, ps)| (*t, ps.iter().copied().collect()))
            .collect()
    }

    fn spec<'a>(id: &'a str, topics: &[TopicUuid], previous: &'a Partitions) -> Spec<'a> {
        Spec {
            member_id: id,
            instance_id: None,
            topics: topics.iter().copied().collect(),
            previous,
        }
    }

    fn of(targets: &BTreeMap<String, Partitions>, id: &str) -> Vec<i32> {
        targets
            .get(id)
            .map(|t| t.values().flatten().copied().collect())
            .unwrap_or_default()
    }

    #[test]
    fn uniform_keeps_what_members_had_and_gives_the_newcomer_only_what_moves() {
        let counts = BTreeMap::from([(T, 6)]);
        let none = Partitions::new();
        let first = assign(
            "uniform",
            &[spec("a", &[T], &none), spec("b", &[T], &none)],
            &counts,
        );
        assert_eq!(of(&first, "a"), [0, 1, 2]);
        assert_eq!(of(&first, "b"), [3, 4, 5]);

        let (a, b) = (first["a"].clone(), first["b"].clone());
        let second = assign(
            "uniform",
            &[
                spec("a", &[T], &a),
                spec("b", &[T], &b),
                spec("c", &[T], &none),
            ],
            &counts,
        );
        assert_eq!(of(&second, "a"), [0, 1]);
        assert_eq!(of(&second, "b"), [3, 4]);
        assert_eq!(of(&second, "c"), [2, 5]);
    }

    #[test]
    fn uniform_gives_a_departed_members_partitions_to_the_others() {
        let counts = BTreeMap::from([(T, 5)]);
        let a = parts(&[(T, &[0, 1])]);
        let b = parts(&[(T, &[2, 3])]);
        let targets = assign(
            "uniform",
            &[spec("a", &[T], &a), spec("b", &[T], &b)],
            &counts,
        );
        assert_eq!(of(&targets, "a"), [0, 1, 4]);
        assert_eq!(of(&targets, "b"), [2, 3]);
    }

    #[test]
    fn uniform_with_different_subscriptions_balances_within_each_topic() {
        let counts = BTreeMap::from([(T, 4), (U, 2)]);
        let none = Partitions::new();
        let targets = assign(
            "uniform",
            &[spec("a", &[T, U], &none), spec("b", &[T], &none)],
            &counts,
        );
        let all: usize = targets
            .values()
            .map(|t| t.values().map(BTreeSet::len).sum::<usize>())
            .sum();
        assert_eq!(all, 6);
        assert_eq!(of(&targets, "a").len(), 3);
        assert_eq!(of(&targets, "b").len(), 3);
        assert!(!targets["b"].contains_key(&U));
    }

    #[test]
    fn range_gives_consecutive_partitions_static_members_first() {
        let counts = BTreeMap::from([(T, 5)]);
        let none = Partitions::new();
        let mut fixed = spec("z", &[T], &none);
        fixed.instance_id = Some("box-1");
        let targets = assign(
            "range",
            &[spec("a", &[T], &none), spec("b", &[T], &none), fixed],
            &counts,
        );
        assert_eq!(of(&targets, "z"), [0, 1]);
        assert_eq!(of(&targets, "a"), [2, 3]);
        assert_eq!(of(&targets, "b"), [4]);
    }
}
