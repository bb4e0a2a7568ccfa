//! The embedded broker's frame codec, run where the request is served.
//!
//! nisshi's `BytesFrameLayer` decodes every request and encodes every response on tokio's
//! blocking pool, two thread hand-offs per request. Kafka requests are mostly a few hundred
//! bytes, and a class's broker answers thousands a second, so the hand-offs (thread wake-ups and
//! context switches) cost more than the work: at 40 labs they were most of the server's kernel
//! time and a quarter of its CPU (BENCHMARKS.md, 2026-12-04). [`InlineCodecLayer`] decodes and
//! encodes in the connection's task, and leaves the blocking pool to frames large enough to hold
//! a thread up: a request, or a fetch's records, over [`INLINE_BYTES`].
//!
//! ApiVersions, and anything too short to name its API, still go through nisshi's layer, which
//! answers a version it does not know as Kafka does.

use nisshi_sans_io::{
    ApiKey, ApiVersionsRequest, Body, ByteSize, BytesInput, Frame, FrameInput, Header,
};
use nisshi_service::{BytesFrameLayer, BytesFrameService};
use rama::{Layer, Service};
use tokio_util::bytes::Bytes;

use super::wire::api_key_of;

/// Frames up to this size are decoded and encoded in the connection's task.
const INLINE_BYTES: usize = 64 * 1024;

/// Bytes to frames and back, in the connection's task for all but large frames.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct InlineCodecLayer;

impl<S: Clone> Layer<S> for InlineCodecLayer {
    type Service = InlineCodec<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InlineCodec {
            nisshi: BytesFrameLayer::default().into_layer(inner.clone()),
            inner,
        }
    }
}

#[derive(Clone, Debug)]
pub(super) struct InlineCodec<S> {
    /// nisshi's codec, for ApiVersions.
    nisshi: BytesFrameService<S>,
    inner: S,
}

impl<S> Service<BytesInput> for InlineCodec<S>
where
    S: Service<FrameInput, Output = Frame, Error = nisshi_broker::Error>,
{
    type Output = Bytes;
    type Error = nisshi_broker::Error;

    async fn serve(&self, input: BytesInput) -> Result<Bytes, Self::Error> {
        if api_key_of(&input.bytes).is_none_or(|key| key == ApiVersionsRequest::KEY) {
            return self.nisshi.serve(input).await;
        }
        let BytesInput { bytes, extensions } = input;
        let frame = if bytes.len() <= INLINE_BYTES {
            Frame::request_from_bytes(bytes)?
        } else {
            tokio::task::spawn_blocking(move || Frame::request_from_bytes(bytes)).await??
        };
        let api_key = frame.api_key()?;
        let api_version = frame.api_version()?;
        let header = Header::Response {
            correlation_id: frame.correlation_id()?,
        };
        let Frame { body, .. } = self.inner.serve(FrameInput { frame, extensions }).await?;
        if records_bytes(&body) <= INLINE_BYTES {
            Ok(Frame::response(header, body, api_key, api_version)?)
        } else {
            Ok(tokio::task::spawn_blocking(move || {
                Frame::response(header, body, api_key, api_version)
            })
            .await??)
        }
    }
}

/// How many bytes of records a response carries: only a fetch's answer carries any at size.
fn records_bytes(body: &Body) -> usize {
    let Body::FetchResponse(response) = body else {
        return 0;
    };
    response
        .responses
        .iter()
        .flatten()
        .flat_map(|topic| topic.partitions.iter().flatten())
        .filter_map(|partition| partition.records.as_ref())
        // A size it cannot tell counts as large.
        .map(|records| records.size_in_bytes().unwrap_or(usize::MAX))
        .fold(0, usize::saturating_add)
}
