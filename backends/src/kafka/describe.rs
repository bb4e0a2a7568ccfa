//! What a group is, as the embedded broker describes it to admin clients and Kafka's tools.
//!
//! - DescribeGroups (a classic group): nisshi names the members and the state, and leaves each
//!   member's client id, host, subscription and assignment empty; grouplab fills them in, as Apache
//!   Kafka does (`GroupMetadata.summary`), from what it noted as members joined and from the stored
//!   group.
//! - ConsumerGroupDescribe (KIP-848): nisshi answers it for classic groups too, with no members and
//!   the leader's member id as the assignor, so admin clients that ask it first (librdkafka's
//!   `DescribeConsumerGroups`, confluent-kafka's `AdminClient`) showed every group empty. Apache
//!   Kafka answers GROUP_ID_NOT_FOUND for a group that is not a consumer-protocol group, and those
//!   clients then ask DescribeGroups; grouplab answers the same way, and describes its
//!   consumer-protocol groups (`consumer_groups`) with their members, epochs and targets.

use nisshi_sans_io::consumer_group_describe_response::DescribedGroup;
use nisshi_sans_io::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, DescribeGroupsResponse, ErrorCode,
    Frame, FrameInput,
};
use nisshi_service::FrameRouteService;
use nisshi_storage::{ArcDynStorage, GroupDetailResponse, Storage};
use rama::Service;

use std::sync::Arc;

use super::consumer_groups::ConsumerGroups;
use super::coordinator::Signals;
use super::wire::client_id_of;

/// nisshi's DescribeGroups answer, with each member described as Apache Kafka describes it:
/// its client id and host (which grouplab noted as it joined), its static instance id, and,
/// in a Stable group, its subscription and assignment with the group's assignor
/// (`GroupMetadata.summary`). nisshi leaves all of these empty.
pub(super) async fn with_members_described(
    storage: &ArcDynStorage,
    signals: &Signals,
    mut described: DescribeGroupsResponse,
) -> DescribeGroupsResponse {
    for group in described.groups.iter_mut().flatten() {
        if group.error_code != 0 {
            continue;
        }
        let stored = storage
            .describe_groups(Some(std::slice::from_ref(&group.group_id)), false)
            .await
            .ok()
            .and_then(|groups| groups.into_iter().next())
            .and_then(|named| match named.response {
                GroupDetailResponse::Found(detail) => Some(detail),
                GroupDetailResponse::ErrorCode(_) => None,
            });
        let stable = group.group_state == "Stable";
        if stable && let Some(name) = stored.as_ref().and_then(|d| d.state.protocol_name()) {
            group.protocol_data = name;
        }
        let assignments = stored.as_ref().map(|d| d.state.assignments());
        for member in group.members.iter_mut().flatten() {
            let id = member.member_id.clone();
            member.client_id = signals
                .client_id(&id)
                .unwrap_or_else(|| client_id_of(&id).to_owned());
            member.client_host = signals.host(&id).unwrap_or_default();
            let joined = stored
                .as_ref()
                .and_then(|detail| detail.members.get(&id))
                .map(|m| &m.join_response);
            if let Some(joined) = joined {
                member.group_instance_id = joined.group_instance_id.clone();
                if stable {
                    member.member_metadata = joined.metadata.clone();
                }
            }
            if stable && let Some(bytes) = assignments.as_ref().and_then(|a| a.get(&id)) {
                member.member_assignment = bytes.clone();
            }
        }
    }
    described
}

/// ConsumerGroupDescribe, answered as Apache Kafka answers it: consumer-protocol groups with
/// their members, epochs, assignments and targets; GROUP_ID_NOT_FOUND for classic groups.
#[derive(Clone, Debug)]
pub(super) struct ConsumerGroupDescribeRoute {
    pub(super) nisshi: FrameRouteService<nisshi_broker::Error>,
    pub(super) groups: Arc<ConsumerGroups>,
}

impl Service<FrameInput> for ConsumerGroupDescribeRoute {
    type Output = Frame;
    type Error = nisshi_broker::Error;

    async fn serve(&self, input: FrameInput) -> Result<Frame, Self::Error> {
        let Ok(request) = ConsumerGroupDescribeRequest::try_from(input.frame.body.clone()) else {
            return self.nisshi.serve(input).await;
        };
        let groups = request
            .group_ids
            .unwrap_or_default()
            .into_iter()
            .map(|group| {
                if group.is_empty() {
                    return DescribedGroup::default()
                        .error_code(i16::from(ErrorCode::InvalidGroupId))
                        .error_message(Some("The group id can't be empty.".to_owned()))
                        .group_id(group)
                        .authorized_operations(i32::MIN);
                }
                self.groups.describe(&group)
            })
            .collect();
        let mut frame = input.frame;
        frame.body = ConsumerGroupDescribeResponse::default()
            .throttle_time_ms(0)
            .groups(Some(groups))
            .into();
        Ok(frame)
    }
}
