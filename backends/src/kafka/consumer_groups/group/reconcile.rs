//! A member's way to its target, one heartbeat at a time (Kafka's `CurrentAssignmentBuilder`):
//! what it keeps, what it must let go of first, and what it may take once nobody holds it.

use std::collections::BTreeSet;

use super::{Group, Member, MemberState, Partitions, TopicUuid};

pub(super) fn held(member: &Member) -> impl Iterator<Item = (TopicUuid, i32)> + '_ {
    member
        .assigned
        .iter()
        .chain(member.pending_revocation.iter())
        .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
}

fn union(a: &Partitions, b: &Partitions) -> Partitions {
    let mut out = a.clone();
    for (t, ps) in b {
        out.entry(*t).or_default().extend(ps.iter().copied());
    }
    out.retain(|_, ps| !ps.is_empty());
    out
}

fn contains_any(owned: &Partitions, wanted: &Partitions) -> bool {
    wanted
        .iter()
        .any(|(t, ps)| owned.get(t).is_some_and(|o| !o.is_disjoint(ps)))
}

pub(super) fn is_subset(small: &Partitions, big: &Partitions) -> bool {
    small
        .iter()
        .all(|(t, ps)| ps.is_empty() || big.get(t).is_some_and(|b| ps.is_subset(b)))
}

/// The next step of a member towards its target (`CurrentAssignmentBuilder`).
pub(super) fn reconcile(group: &Group, member: &Member, owned: Option<&Partitions>) -> Member {
    let mut next = member.clone();
    let target_epoch = group.assignment_epoch;
    match member.state {
        MemberState::Stable if member.epoch == target_epoch => return next,
        MemberState::Stable | MemberState::UnreleasedPartitions => {
            step(group, &mut next, member.epoch, owned);
        }
        MemberState::UnrevokedPartitions => {
            // Still holding what it must let go of: nothing moves until it says it did.
            let let_go = owned.is_some_and(|o| !contains_any(o, &member.pending_revocation));
            if let_go {
                step(group, &mut next, member.epoch + 1, owned);
            }
        }
    }
    next
}

/// `computeNextAssignment`: keep what stays; revoke what goes (and wait for it); then take the
/// new partitions nobody holds any more.
pub(super) fn step(
    group: &Group,
    member: &mut Member,
    epoch_while_revoking: i32,
    owned: Option<&Partitions>,
) {
    let target = &member.target;
    let mut keep = Partitions::new();
    let mut revoke = Partitions::new();
    let mut pending = Partitions::new();
    let mut unreleased = false;
    let topics: BTreeSet<TopicUuid> = target
        .keys()
        .chain(member.assigned.keys())
        .copied()
        .collect();
    for topic in topics {
        let now: BTreeSet<i32> = member.assigned.get(&topic).cloned().unwrap_or_default();
        let wanted: BTreeSet<i32> = target.get(&topic).cloned().unwrap_or_default();
        let kept: BTreeSet<i32> = now.intersection(&wanted).copied().collect();
        let gone: BTreeSet<i32> = now.difference(&kept).copied().collect();
        let mut new: BTreeSet<i32> = BTreeSet::new();
        for p in wanted.difference(&kept) {
            match group.owners.get(&(topic, *p)) {
                Some((owner, _)) if *owner != member.id => unreleased = true,
                _ => {
                    new.insert(*p);
                }
            }
        }
        if !kept.is_empty() {
            keep.insert(topic, kept);
        }
        if !gone.is_empty() {
            revoke.insert(topic, gone);
        }
        if !new.is_empty() {
            pending.insert(topic, new);
        }
    }
    let target_epoch = group.assignment_epoch;
    // A member that already let go of them (it lost them, say) need not be asked to.
    if !revoke.is_empty() && owned.is_none_or(|o| contains_any(o, &revoke)) {
        member.state = MemberState::UnrevokedPartitions;
        set_epoch(member, epoch_while_revoking);
        member.assigned = keep;
        member.pending_revocation = revoke;
        return;
    }
    member.pending_revocation = Partitions::new();
    member.assigned = union(&keep, &pending);
    member.state = if unreleased {
        MemberState::UnreleasedPartitions
    } else {
        MemberState::Stable
    };
    set_epoch(member, target_epoch);
}

fn set_epoch(member: &mut Member, epoch: i32) {
    if member.epoch != epoch {
        member.previous_epoch = member.epoch;
        member.epoch = epoch;
    }
}
