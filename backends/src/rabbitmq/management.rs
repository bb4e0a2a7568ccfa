//! RabbitMQ's management API, as far as the page needs it: queues with their counts, consumers
//! with their channels (prefetch, unacked) and connections (the client's connection name).

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use grouplab_protocol::RabbitConsumerView;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

use crate::CallError;

/// How long one call to the management API may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The management API's answers, as far as the page needs them.
#[derive(Deserialize)]
pub(super) struct ApiQueue {
    #[serde(default)]
    pub(super) messages_ready: u64,
    #[serde(default)]
    pub(super) messages_unacknowledged: u64,
    #[serde(default)]
    pub(super) arguments: BTreeMap<String, serde_json::Value>,
    pub(super) message_stats: Option<ApiStats>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct ApiStats {
    pub(super) publish: u64,
    pub(super) deliver_get: u64,
    pub(super) redeliver: u64,
    pub(super) ack: u64,
}

#[derive(Deserialize)]
pub(super) struct ApiConsumer {
    pub(super) consumer_tag: String,
    pub(super) queue: ApiName,
    pub(super) channel_details: ApiChannelDetails,
    #[serde(default)]
    pub(super) prefetch_count: u16,
    #[serde(default)]
    pub(super) ack_required: bool,
}

#[derive(Deserialize)]
pub(super) struct ApiName {
    pub(super) name: String,
}

#[derive(Deserialize)]
pub(super) struct ApiChannelDetails {
    pub(super) name: String,
    pub(super) connection_name: String,
    #[serde(default)]
    pub(super) peer_host: String,
    #[serde(default)]
    pub(super) peer_port: u16,
}

#[derive(Deserialize)]
pub(super) struct ApiChannel {
    pub(super) name: String,
    #[serde(default)]
    pub(super) messages_unacknowledged: u64,
}

#[derive(Deserialize)]
pub(super) struct ApiConnection {
    pub(super) name: String,
    #[serde(default)]
    pub(super) client_properties: BTreeMap<String, serde_json::Value>,
}

/// RabbitMQ's management API over HTTP.
#[derive(Clone)]
pub(super) struct Management {
    pub(super) base: String,
    authorization: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Management {
    /// `base` is `http://user:password@host:port` or `http://host:port` (then guest, guest).
    pub(super) fn new(base: &str) -> Result<Self, String> {
        let url = url::Url::parse(base)
            .map_err(|err| format!("the management URL `{base}` is not valid: {err}"))?;
        let user = if url.username().is_empty() {
            "guest"
        } else {
            url.username()
        };
        let password = url.password().unwrap_or("guest");
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let host = url.host_str().unwrap_or("127.0.0.1");
        let port = url.port_or_known_default().unwrap_or(15672);
        Ok(Self {
            base: format!("{}://{host}:{port}", url.scheme()),
            authorization: format!("Basic {credentials}"),
            client: Client::builder(TokioExecutor::new()).build_http(),
        })
    }

    /// A GET of `path`; `None` when the API says there is no such thing (404).
    pub(super) async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<Option<T>, CallError> {
        let unreachable = || CallError::Unreachable {
            address: self.base.clone(),
        };
        let request = hyper::Request::get(format!("{}{path}", self.base))
            .header(hyper::header::AUTHORIZATION, &self.authorization)
            .body(Full::new(Bytes::new()))
            .map_err(|err| CallError::Refused(err.to_string()))?;
        let call = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|_| unreachable())?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|_| unreachable())?
                .to_bytes();
            Ok::<_, CallError>((status, body))
        };
        let (status, body) = tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .map_err(|_| unreachable())??;
        if status == hyper::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(CallError::Refused(format!(
                "RabbitMQ's management API answered {status} to {path}"
            )));
        }
        serde_json::from_slice(&body).map(Some).map_err(|err| {
            CallError::Refused(format!(
                "RabbitMQ's management API sent an answer grouplab cannot read ({err})"
            ))
        })
    }
}

impl Management {
    /// A PUT of `body` (JSON) to `path`, which creates or updates what it names.
    pub(super) async fn put(&self, path: &str, body: &serde_json::Value) -> Result<(), CallError> {
        self.change(hyper::Method::PUT, path, body.to_string())
            .await
    }

    /// A DELETE of what `path` names; already gone is fine.
    pub(super) async fn delete(&self, path: &str) -> Result<(), CallError> {
        match self
            .change(hyper::Method::DELETE, path, String::new())
            .await
        {
            Err(CallError::Refused(message)) if message.contains(" 404 ") => Ok(()),
            result => result,
        }
    }

    async fn change(
        &self,
        method: hyper::Method,
        path: &str,
        body: String,
    ) -> Result<(), CallError> {
        let unreachable = || CallError::Unreachable {
            address: self.base.clone(),
        };
        let request = hyper::Request::builder()
            .method(&method)
            .uri(format!("{}{path}", self.base))
            .header(hyper::header::AUTHORIZATION, &self.authorization)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|err| CallError::Refused(err.to_string()))?;
        let response = tokio::time::timeout(CALL_TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| unreachable())?
            .map_err(|_| unreachable())?;
        let status = response.status();
        if !status.is_success() {
            return Err(CallError::Refused(format!(
                "RabbitMQ's management API answered {status} to a {method} of {path}"
            )));
        }
        Ok(())
    }
}

/// A consumer as the page shows it, from the management API's consumer, channel and connection.
pub(super) fn consumer_view(
    consumer: &ApiConsumer,
    channels: &[ApiChannel],
    connections: &[ApiConnection],
) -> RabbitConsumerView {
    let channel = &consumer.channel_details;
    let named = connections
        .iter()
        .find(|c| c.name == channel.connection_name)
        .and_then(|c| c.client_properties.get("connection_name"))
        .and_then(serde_json::Value::as_str);
    RabbitConsumerView {
        tag: consumer.consumer_tag.clone(),
        instance: None,
        colour: 0,
        connection: named.map_or_else(
            || format!("{}:{}", channel.peer_host, channel.peer_port),
            str::to_owned,
        ),
        prefetch: consumer.prefetch_count,
        ack_required: consumer.ack_required,
        unacked: channels
            .iter()
            .find(|c| c.name == channel.name)
            .map_or(0, |c| c.messages_unacknowledged),
    }
}
