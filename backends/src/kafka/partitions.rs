//! Topics that grow: CreatePartitions on the embedded broker.
//!
//! nisshi 0.8.1 has no CreatePartitions route, and its storage cannot change a topic's
//! partition count: every partition access is checked against the count the topic was created
//! with. grouplab's storage wrapper ([`GrowableTopics`]) creates each topic with
//! [`RESERVED_PARTITIONS`] partitions and shows only as many as were asked for: Metadata and
//! DescribeTopicPartitions list the visible ones, and produce, fetch and offsets refuse the
//! others as unknown. CreatePartitions ([`CreatePartitionsRoute`]) makes more of them visible.
//! Existing partitions keep their data and their committed offsets, and clients see the new ones
//! at their next metadata refresh, as on Apache Kafka.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use grouplab_protocol::limits;
use nisshi_sans_io::create_partitions_response::CreatePartitionsTopicResult;
use nisshi_sans_io::create_topics_request::CreatableTopic;
use nisshi_sans_io::delete_groups_response::DeletableGroupResult;
use nisshi_sans_io::delete_records_request::DeleteRecordsTopic;
use nisshi_sans_io::delete_records_response::DeleteRecordsTopicResult;
use nisshi_sans_io::describe_cluster_response::DescribeClusterBroker;
use nisshi_sans_io::describe_configs_response::DescribeConfigsResult;
use nisshi_sans_io::describe_topic_partitions_response::DescribeTopicPartitionsResponseTopic;
use nisshi_sans_io::fetch_response::AbortedTransaction;
use nisshi_sans_io::incremental_alter_configs_request::AlterConfigsResource;
use nisshi_sans_io::incremental_alter_configs_response::AlterConfigsResourceResponse;
use nisshi_sans_io::record::deflated;
use nisshi_sans_io::txn_offset_commit_response::TxnOffsetCommitResponseTopic;
use nisshi_sans_io::{
    ConfigResource, CreatePartitionsRequest, CreatePartitionsResponse, ErrorCode, Frame,
    FrameInput, IsolationLevel, ListOffset, ScramMechanism,
};
use nisshi_storage::*;
use rama::Service;
use url::Url;
use uuid::Uuid;

/// How many partitions each topic has in storage: as many as the page lets a topic have.
pub(super) const RESERVED_PARTITIONS: i32 = limits::MAX_PARTITIONS;

/// nisshi's storage, with topics created larger than they look, so that they can grow.
#[derive(Debug)]
pub(super) struct GrowableTopics {
    inner: ArcDynStorage,
    /// How many partitions each topic shows. A std Mutex is fine: held for a map operation,
    /// never across an await.
    visible: Mutex<HashMap<String, i32>>,
}

impl GrowableTopics {
    pub(super) fn new(inner: ArcDynStorage) -> Self {
        Self {
            inner,
            visible: Mutex::default(),
        }
    }

    /// How many partitions `topic` shows, if grouplab created it.
    fn visible(&self, topic: &str) -> Option<i32> {
        self.visible.lock().ok()?.get(topic).copied()
    }

    fn set_visible(&self, topic: &str, partitions: i32) {
        if let Ok(mut visible) = self.visible.lock() {
            visible.insert(topic.to_owned(), partitions);
        }
    }

    fn forget(&self, topic: &str) {
        if let Ok(mut visible) = self.visible.lock() {
            visible.remove(topic);
        }
    }

    /// Refuses a partition the topic does not show, as a broker refuses one that does not exist.
    fn readable(&self, partition: &Topition) -> Result<()> {
        match self.visible(partition.topic()) {
            Some(visible) if partition.partition >= visible => {
                Err(Error::Api(ErrorCode::UnknownTopicOrPartition))
            }
            _ => Ok(()),
        }
    }

    /// The name of a topic named by name or by id.
    async fn name_of(&self, topic: &TopicId) -> Option<String> {
        match topic {
            TopicId::Name(name) => Some(name.clone()),
            TopicId::Id(_) => {
                self.inner
                    .metadata(Some(std::slice::from_ref(topic)))
                    .await
                    .ok()?
                    .topics
                    .into_iter()
                    .next()?
                    .name
            }
        }
    }

    /// Grows `topic` to `count` partitions; `Ok(None)` if it may (`validate_only`: without doing it).
    async fn grow(
        &self,
        topic: &str,
        count: i32,
        validate_only: bool,
    ) -> (ErrorCode, Option<String>) {
        let Some(current) = self.visible(topic) else {
            return (
                ErrorCode::UnknownTopicOrPartition,
                Some(format!("The topic '{topic}' does not exist.")),
            );
        };
        if count < current {
            return (
                ErrorCode::InvalidPartitions,
                Some(format!(
                    "Topic currently has {current} partitions, which is higher than the requested {count}."
                )),
            );
        }
        if count == current {
            return (
                ErrorCode::InvalidPartitions,
                Some(format!("Topic already has {current} partitions.")),
            );
        }
        if count > RESERVED_PARTITIONS {
            return (
                ErrorCode::InvalidPartitions,
                Some(format!(
                    "grouplab's embedded broker holds at most {RESERVED_PARTITIONS} partitions per topic."
                )),
            );
        }
        if !validate_only {
            self.set_visible(topic, count);
        }
        (ErrorCode::None, None)
    }
}

#[async_trait]
impl Storage for GrowableTopics {
    async fn register_broker(&self, broker_registration: BrokerRegistrationRequest) -> Result<()> {
        self.inner.register_broker(broker_registration).await
    }

    async fn create_topic(&self, topic: CreatableTopic, validate_only: bool) -> Result<Uuid> {
        let mut topic = topic;
        let visible = topic.num_partitions;
        if !validate_only && visible > 0 {
            topic.num_partitions = visible.max(RESERVED_PARTITIONS);
        }
        let id = self
            .inner
            .create_topic(topic.clone(), validate_only)
            .await?;
        if !validate_only {
            self.set_visible(&topic.name, visible);
        }
        Ok(id)
    }

    async fn incremental_alter_resource(
        &self,
        resource: AlterConfigsResource,
    ) -> Result<AlterConfigsResourceResponse> {
        self.inner.incremental_alter_resource(resource).await
    }

    async fn delete_records(
        &self,
        topics: &[DeleteRecordsTopic],
    ) -> Result<Vec<DeleteRecordsTopicResult>> {
        self.inner.delete_records(topics).await
    }

    async fn delete_topic(&self, topic: &TopicId) -> Result<ErrorCode> {
        let name = self.name_of(topic).await;
        let code = self.inner.delete_topic(topic).await?;
        if let Some(name) = name {
            self.forget(&name);
        }
        Ok(code)
    }

    async fn brokers(&self) -> Result<Vec<DescribeClusterBroker>> {
        self.inner.brokers().await
    }

    async fn produce(
        &self,
        transaction_id: Option<&str>,
        topition: &Topition,
        batch: deflated::Batch,
    ) -> Result<i64> {
        self.readable(topition)?;
        self.inner.produce(transaction_id, topition, batch).await
    }

    async fn fetch(
        &self,
        topition: &'_ Topition,
        offset: i64,
        min_bytes: u32,
        max_bytes: u32,
        isolation: IsolationLevel,
        max_wait: Duration,
    ) -> Result<Vec<deflated::Batch>> {
        self.readable(topition)?;
        self.inner
            .fetch(topition, offset, min_bytes, max_bytes, isolation, max_wait)
            .await
    }

    async fn offset_stage(&self, topition: &Topition) -> Result<OffsetStage> {
        self.readable(topition)?;
        self.inner.offset_stage(topition).await
    }

    async fn list_offsets(
        &self,
        isolation_level: IsolationLevel,
        offsets: &[(Topition, ListOffset)],
    ) -> Result<Vec<(Topition, ListOffsetResponse)>> {
        self.inner.list_offsets(isolation_level, offsets).await
    }

    async fn offset_commit(
        &self,
        group_id: &str,
        retention_time_ms: Option<Duration>,
        offsets: &[(Topition, OffsetCommitRequest)],
    ) -> Result<Vec<(Topition, ErrorCode)>> {
        self.inner
            .offset_commit(group_id, retention_time_ms, offsets)
            .await
    }

    async fn offset_fetch(
        &self,
        group_id: Option<&str>,
        topics: &[Topition],
        require_stable: Option<bool>,
    ) -> Result<BTreeMap<Topition, i64>> {
        self.inner
            .offset_fetch(group_id, topics, require_stable)
            .await
    }

    async fn committed_offset_topitions(&self, group_id: &str) -> Result<BTreeMap<Topition, i64>> {
        self.inner.committed_offset_topitions(group_id).await
    }

    async fn metadata(&self, topics: Option<&[TopicId]>) -> Result<MetadataResponse> {
        let mut found = self.inner.metadata(topics).await?;
        for topic in &mut found.topics {
            if let (Some(name), Some(partitions)) = (&topic.name, topic.partitions.as_mut()) {
                let visible = self.visible(name);
                partitions.retain(|p| visible.is_none_or(|n| p.partition_index < n));
            }
        }
        Ok(found)
    }

    async fn upsert_user_scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
        credential: ScramCredential,
    ) -> Result<()> {
        self.inner
            .upsert_user_scram_credential(user, mechanism, credential)
            .await
    }

    async fn delete_user_scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Result<()> {
        self.inner
            .delete_user_scram_credential(user, mechanism)
            .await
    }

    async fn user_scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Result<Option<ScramCredential>> {
        self.inner.user_scram_credential(user, mechanism).await
    }

    async fn describe_config(
        &self,
        name: &str,
        resource: ConfigResource,
        keys: Option<&[String]>,
    ) -> Result<DescribeConfigsResult> {
        self.inner.describe_config(name, resource, keys).await
    }

    async fn list_groups(&self) -> Result<Vec<NamedGroupDetail>> {
        self.inner.list_groups().await
    }

    async fn delete_groups(
        &self,
        group_ids: Option<&[String]>,
    ) -> Result<Vec<DeletableGroupResult>> {
        self.inner.delete_groups(group_ids).await
    }

    async fn describe_groups(
        &self,
        group_ids: Option<&[String]>,
        include_authorized_operations: bool,
    ) -> Result<Vec<NamedGroupDetail>> {
        self.inner
            .describe_groups(group_ids, include_authorized_operations)
            .await
    }

    async fn describe_topic_partitions(
        &self,
        topics: Option<&[TopicId]>,
        partition_limit: i32,
        cursor: Option<Topition>,
    ) -> Result<Vec<DescribeTopicPartitionsResponseTopic>> {
        let mut found = self
            .inner
            .describe_topic_partitions(topics, partition_limit, cursor)
            .await?;
        for topic in &mut found {
            if let (Some(name), Some(partitions)) = (&topic.name, topic.partitions.as_mut()) {
                let visible = self.visible(name);
                partitions.retain(|p| visible.is_none_or(|n| p.partition_index < n));
            }
        }
        Ok(found)
    }

    async fn group_with_version(&self, group_id: &str) -> Result<Option<(GroupDetail, Version)>> {
        self.inner.group_with_version(group_id).await
    }

    async fn update_group(
        &self,
        group_id: &str,
        detail: GroupDetail,
        version: Option<Version>,
    ) -> Result<Version, UpdateError<GroupDetail>> {
        self.inner.update_group(group_id, detail, version).await
    }

    async fn init_producer(
        &self,
        transaction_id: Option<&str>,
        transaction_timeout_ms: i32,
        producer_id: Option<i64>,
        producer_epoch: Option<i16>,
    ) -> Result<ProducerIdResponse> {
        self.inner
            .init_producer(
                transaction_id,
                transaction_timeout_ms,
                producer_id,
                producer_epoch,
            )
            .await
    }

    async fn txn_add_offsets(
        &self,
        transaction_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        group_id: &str,
    ) -> Result<ErrorCode> {
        self.inner
            .txn_add_offsets(transaction_id, producer_id, producer_epoch, group_id)
            .await
    }

    async fn txn_add_partitions(
        &self,
        partitions: TxnAddPartitionsRequest,
    ) -> Result<TxnAddPartitionsResponse> {
        self.inner.txn_add_partitions(partitions).await
    }

    async fn txn_offset_commit(
        &self,
        offsets: TxnOffsetCommitRequest,
    ) -> Result<Vec<TxnOffsetCommitResponseTopic>> {
        self.inner.txn_offset_commit(offsets).await
    }

    async fn txn_end(
        &self,
        transaction_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        committed: bool,
    ) -> Result<ErrorCode> {
        self.inner
            .txn_end(transaction_id, producer_id, producer_epoch, committed)
            .await
    }

    async fn maintain(&self, _now: SystemTime) -> Result<()> {
        self.inner.maintain(_now).await
    }

    async fn maintain_transactions(&self, _now: SystemTime) -> Result<()> {
        self.inner.maintain_transactions(_now).await
    }

    async fn aborted_transactions(
        &self,
        _topition: &Topition,
        _offset: i64,
        _last_stable_offset: i64,
    ) -> Result<Vec<AbortedTransaction>> {
        self.inner
            .aborted_transactions(_topition, _offset, _last_stable_offset)
            .await
    }

    async fn cluster_id(&self) -> Result<String> {
        self.inner.cluster_id().await
    }

    async fn node(&self) -> Result<i32> {
        self.inner.node().await
    }

    async fn advertised_listener(&self) -> Result<Url> {
        self.inner.advertised_listener().await
    }

    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }
}

/// CreatePartitions (API key 37), which nisshi does not have: grows topics within their
/// reserve, and answers as Apache Kafka does (INVALID_PARTITIONS for a count that is not larger).
#[derive(Clone, Debug)]
pub(super) struct CreatePartitionsRoute {
    pub(super) topics: Arc<GrowableTopics>,
}

impl Service<FrameInput> for CreatePartitionsRoute {
    type Output = Frame;
    type Error = nisshi_broker::Error;

    async fn serve(&self, input: FrameInput) -> std::result::Result<Frame, Self::Error> {
        let mut frame = input.frame;
        let request = CreatePartitionsRequest::try_from(frame.body.clone())
            .map_err(|err| nisshi_broker::Error::Message(err.to_string()))?;
        let mut results = Vec::new();
        for topic in request.topics.unwrap_or_default() {
            let (code, message) = if topic.assignments.is_some() {
                (
                    ErrorCode::InvalidReplicaAssignment,
                    Some(
                        "The embedded broker has one broker: leave replica assignments out."
                            .to_owned(),
                    ),
                )
            } else {
                self.topics
                    .grow(&topic.name, topic.count, request.validate_only)
                    .await
            };
            results.push(
                CreatePartitionsTopicResult::default()
                    .name(topic.name)
                    .error_code(i16::from(code))
                    .error_message(message),
            );
        }
        frame.body = CreatePartitionsResponse::default()
            .throttle_time_ms(0)
            .results(Some(results))
            .into();
        Ok(frame)
    }
}
