//! The checks a heartbeat passes before it changes anything (Kafka's
//! `throwIfConsumerGroupHeartbeatRequestIsInvalid`, and `GroupMetadataManager`'s member lookup
//! and epoch checks): its fields, who the member is, and whether its epoch may be believed.

use super::super::assignor::ASSIGNORS;
use super::reconcile::is_subset;
use super::{
    Group, Heartbeat, LEAVE, LEAVE_STATIC, Member, MemberState, Partitions, Refused, Settings,
    code, refused,
};

/// Kafka's checks of a heartbeat's fields (`throwIfConsumerGroupHeartbeatRequestIsInvalid`).
pub(super) fn validate(request: &Heartbeat) -> Result<(), Refused> {
    let invalid = |message: &str| Err(refused(code::INVALID_REQUEST, message));
    if request.group_id.is_empty() {
        return invalid("GroupId can't be empty.");
    }
    if request.instance_id.as_deref() == Some("") {
        return invalid("InstanceId can't be empty.");
    }
    if request.rack_id.as_deref() == Some("") {
        return invalid("RackId can't be empty.");
    }
    let epoch = request.member_epoch;
    if (request.version >= 1 || epoch > 0 || epoch == LEAVE) && request.member_id.is_empty() {
        return invalid("MemberId can't be empty.");
    }
    if epoch == 0 {
        if request.rebalance_timeout_ms == -1 {
            return invalid("RebalanceTimeoutMs must be provided in first request.");
        }
        if request
            .topic_partitions
            .as_ref()
            .is_none_or(|tp| !tp.is_empty())
        {
            return invalid("TopicPartitions must be empty when (re-)joining.");
        }
        if request.subscribed_topic_names.is_none() && request.subscribed_topic_regex.is_none() {
            return invalid(
                "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
            );
        }
    } else if epoch == LEAVE_STATIC && request.instance_id.is_none() {
        return invalid("InstanceId can't be null.");
    } else if epoch < LEAVE_STATIC {
        return invalid("MemberEpoch is invalid.");
    }
    if request.subscribed_topic_regex.is_some() {
        return Err(refused(
            code::INVALID_REGULAR_EXPRESSION,
            "grouplab's embedded broker does not resolve topic patterns yet: subscribe by topic name.",
        ));
    }
    if let Some(assignor) = &request.server_assignor
        && !ASSIGNORS.contains(&assignor.as_str())
    {
        return Err(refused(
            code::UNSUPPORTED_ASSIGNOR,
            format!(
                "ServerAssignor {assignor} is not supported. Supported assignors: uniform, range."
            ),
        ));
    }
    Ok(())
}

/// The member a heartbeat comes from, new or known, after Kafka's identity and epoch checks.
pub(super) fn find_member(
    group: &mut Group,
    request: &Heartbeat,
    settings: Settings,
    now_ms: u64,
) -> Result<Member, Refused> {
    let joining = request.member_epoch == 0;
    let full = || {
        refused(
            code::GROUP_MAX_SIZE_REACHED,
            format!(
                "The consumer group has reached its maximum capacity of {} members.",
                settings.max_size
            ),
        )
    };
    let unknown = || unknown_member(&request.member_id, &group.id);
    if let Some(instance) = &request.instance_id {
        let existing = group
            .members
            .values()
            .find(|m| m.instance_id.as_ref() == Some(instance))
            .cloned();
        match existing {
            None if joining => {
                if group.members.len() >= settings.max_size {
                    return Err(full());
                }
                let mut member = Member::new(&new_member_id(group, request)?, now_ms);
                member.instance_id = Some(instance.clone());
                return Ok(member);
            }
            None => return Err(unknown()),
            Some(old) if joining => {
                if !old.is_away() && old.id != request.member_id {
                    return Err(refused(
                        code::UNRELEASED_INSTANCE_ID,
                        format!(
                            "Static member {} with instance id {instance} cannot join the group because the instance id is owned by {}.",
                            request.member_id, old.id
                        ),
                    ));
                }
                // The restarted member takes its old self's place and partitions.
                let id = if old.id == request.member_id {
                    old.id.clone()
                } else {
                    new_member_id(group, request)?
                };
                group.release(&old);
                group.members.remove(&old.id);
                let mut member = old;
                member.id = id;
                member.epoch = 0;
                member.previous_epoch = 0;
                member.state = MemberState::Stable;
                member.pending_revocation = Partitions::new();
                group.put(member.clone());
                return Ok(member);
            }
            Some(old) => {
                if old.id != request.member_id {
                    return Err(fenced_instance(&request.member_id, instance));
                }
                check_epoch(&old, request)?;
                return Ok(old);
            }
        }
    }
    match group.members.get(&request.member_id) {
        Some(member) if joining => {
            // A rejoin with epoch 0 (after an error): the member starts again from nothing.
            let mut member = member.clone();
            member.epoch = 0;
            member.previous_epoch = 0;
            member.state = MemberState::Stable;
            group.release(&member);
            member.assigned = Partitions::new();
            member.pending_revocation = Partitions::new();
            Ok(member)
        }
        Some(member) => {
            check_epoch(member, request)?;
            Ok(member.clone())
        }
        None if joining => {
            if group.members.len() >= settings.max_size {
                return Err(full());
            }
            Ok(Member::new(&new_member_id(group, request)?, now_ms))
        }
        None => Err(unknown()),
    }
}

/// The id of a joining member: the one its client chose, or a new one for a v0 client that
/// left it empty; never one that another member of the group uses.
fn new_member_id(group: &Group, request: &Heartbeat) -> Result<String, Refused> {
    if request.member_id.is_empty() {
        return Ok(uuid::Uuid::new_v4().to_string());
    }
    if group.members.contains_key(&request.member_id) {
        return Err(refused(
            code::INVALID_REQUEST,
            format!(
                "MemberId {} is already used by another member of group {}.",
                request.member_id, group.id
            ),
        ));
    }
    Ok(request.member_id.clone())
}

/// `throwIfMemberEpochIsInvalid`: a member ahead of the coordinator, or behind it by more than
/// one lost answer, is fenced and must rejoin.
fn check_epoch(member: &Member, request: &Heartbeat) -> Result<(), Refused> {
    let received = request.member_epoch;
    let fenced = || {
        refused(
            code::FENCED_MEMBER_EPOCH,
            format!(
                "The consumer group member has a greater member epoch ({received}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.",
                member.epoch
            ),
        )
    };
    if received > member.epoch {
        return Err(fenced());
    }
    if received < member.epoch {
        let lost_answer = received == member.previous_epoch
            && request
                .topic_partitions
                .as_ref()
                .is_some_and(|owned| is_subset(owned, &member.assigned));
        if !lost_answer {
            return Err(refused(
                code::FENCED_MEMBER_EPOCH,
                format!(
                    "The consumer group member has a smaller member epoch ({received}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.",
                    member.epoch
                ),
            ));
        }
    }
    Ok(())
}

/// UNKNOWN_MEMBER_ID, in Kafka's words.
pub(super) fn unknown_member(member_id: &str, group: &str) -> Refused {
    refused(
        code::UNKNOWN_MEMBER_ID,
        format!("Member {member_id} is not a member of group {group}."),
    )
}

/// FENCED_INSTANCE_ID, in Kafka's words: the static member's instance id now belongs to
/// another member id.
pub(super) fn fenced_instance(member_id: &str, instance: &str) -> Refused {
    refused(
        code::FENCED_INSTANCE_ID,
        format!(
            "Static member {member_id} with instance id {instance} was fenced by another member."
        ),
    )
}
