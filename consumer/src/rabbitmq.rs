//! A RabbitMQ competing consumer, the loop the RabbitMQ lab teaches: attach to the queue with a
//! prefetch limit (`basic.qos`, `basic.consume`), process each message the broker hands over, and
//! acknowledge it after processing, on receipt, or never (auto-ack), as the settings say.
//!
//! A message whose processing fails is handed back (`basic.nack` with requeue: it is delivered
//! again, marked redelivered, possibly to another consumer) or rejected for good (`requeue`
//! false: the queue dead-letters it if it says where, or drops it). The wait before handing it
//! back is the retry backoff, so a poison message cannot spin.
//!
//! Each message is reported as the broker sends it, then processed one at a time, in the order
//! they came. A graceful stop cancels the subscription, finishes the message in hand, and closes
//! the channel: what the consumer held unacked goes back to the queue (with auto-ack, what it was
//! sent and had not processed is lost, as with any auto-ack consumer). A crash (SIGKILL) closes nothing; the broker sees the TCP
//! connection drop and requeues the same messages at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use grouplab_protocol::{CommitPolicy, InstanceConfig, InstanceReport, RabbitDelivery};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties};

use crate::{report, text};

/// How often the loop looks at the stop flag while no message comes.
const STOP_CHECK: Duration = Duration::from_millis(100);
/// How long a graceful close may take before the process just ends.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

pub fn run(config: &InstanceConfig, stop: &AtomicBool) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| format!("could not start the consumer's runtime: {err}"))?;
    runtime
        .block_on(consume(config, stop))
        .map_err(|err| err.to_string())
}

async fn consume(config: &InstanceConfig, stop: &AtomicBool) -> lapin::Result<()> {
    let settings = &config.settings;
    let queue = config
        .topics
        .first()
        .map(String::as_str)
        .unwrap_or_default();
    report(&InstanceReport::Joining {
        pid: std::process::id(),
    });
    // Named after the instance, so that the management API (and grouplab's page) can tell
    // which instance a connection is.
    let properties =
        ConnectionProperties::default().with_connection_name(config.client_id.clone().into());
    let connection = Connection::connect(&config.bootstrap_servers, properties).await?;
    let channel = connection.create_channel().await?;
    channel
        .basic_qos(settings.prefetch, BasicQosOptions::default())
        .await?;
    let auto_ack = settings.commit == CommitPolicy::Auto;
    // The consumer tag is the client id too: it links the queue's consumer to its card.
    let deliveries = channel
        .basic_consume(
            queue.into(),
            config.client_id.as_str().into(),
            BasicConsumeOptions {
                no_ack: auto_ack,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    report(&InstanceReport::Consuming {
        queue: queue.to_owned(),
        prefetch: settings.prefetch,
    });

    // Every message the broker sends is reported as it arrives, so the card's count is what
    // the broker handed over (all of it at once with auto-ack or no prefetch limit); the worker
    // below takes them one at a time.
    let mut arrived = receive(deliveries, queue.to_owned());
    let mut worker = Worker {
        config,
        queue,
        channel: &channel,
        done: 0,
    };
    let mut tick = tokio::time::interval(STOP_CHECK);
    while !stop.load(Ordering::Relaxed) {
        tokio::select! {
            next = arrived.recv() => match next {
                Some(Ok(delivery)) => worker.handle(delivery).await?,
                Some(Err(err)) => return Err(err),
                None => {
                    report(&InstanceReport::Error {
                        message: "RabbitMQ cancelled this consumer (was its queue deleted?)".into(),
                        fatal: true,
                    });
                    return Ok(());
                }
            },
            _ = tick.tick() => {}
        }
    }

    report(&InstanceReport::Leaving);
    let goodbye = async {
        channel
            .basic_cancel(
                config.client_id.as_str().into(),
                BasicCancelOptions::default(),
            )
            .await?;
        // Closing the channel hands back what this consumer held unacked, prefetched included.
        channel.close(200, "grouplab: stopped".into()).await?;
        connection.close(200, "grouplab: stopped".into()).await
    };
    match tokio::time::timeout(CLOSE_TIMEOUT, goodbye).await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}

/// Reports each delivery as the broker sends it, and hands it on to the worker.
fn receive(
    mut deliveries: lapin::Consumer,
    queue: String,
) -> tokio::sync::mpsc::UnboundedReceiver<lapin::Result<Delivery>> {
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(delivery) = deliveries.next().await {
            if let Ok(delivery) = &delivery {
                report(&InstanceReport::Delivery(RabbitDelivery {
                    queue: queue.clone(),
                    tag: delivery.delivery_tag,
                    key: header_key(delivery),
                    value: text(&delivery.data),
                    redelivered: delivery.redelivered,
                }));
            }
            if sender.send(delivery).is_err() {
                break;
            }
        }
    });
    receiver
}

struct Worker<'a> {
    config: &'a InstanceConfig,
    queue: &'a str,
    channel: &'a Channel,
    done: u64,
}

impl Worker<'_> {
    async fn handle(&mut self, delivery: Delivery) -> lapin::Result<()> {
        let settings = &self.config.settings;
        let tag = delivery.delivery_tag;
        let value = text(&delivery.data);
        // Acknowledged already: on receipt, or by the broker as it sent it (auto-ack).
        let settled = settings.commit != CommitPolicy::AfterProcessing;
        if settings.commit == CommitPolicy::BeforeProcessing {
            self.channel
                .basic_ack(tag, BasicAckOptions::default())
                .await?;
        }
        if settings.processing_ms > 0 {
            tokio::time::sleep(Duration::from_millis(settings.processing_ms.into())).await;
        }
        let poisoned = settings
            .fail_on
            .as_ref()
            .is_some_and(|text| value.contains(text.as_str()));
        if poisoned {
            return self.failed(tag, settled).await;
        }
        if !settled {
            self.channel
                .basic_ack(tag, BasicAckOptions::default())
                .await?;
        }
        report(&InstanceReport::DeliveryProcessed {
            queue: self.queue.to_owned(),
            tag,
            acked: !settled,
        });
        self.done += 1;
        if settings.crash_after.map(u64::from) == Some(self.done) {
            report(&InstanceReport::Crashing {
                processed: self.done,
            });
            // A real crash: the broker requeues what this consumer holds when its socket drops.
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        }
        Ok(())
    }

    /// A poison message: handed back after the retry backoff, or rejected for good.
    async fn failed(&self, tag: u64, settled: bool) -> lapin::Result<()> {
        let settings = &self.config.settings;
        let text = settings.fail_on.as_deref().unwrap_or_default();
        let mut error =
            format!("the message contains `{text}`, which this instance cannot process");
        let requeued = !settled && settings.requeue_on_failure;
        if settled {
            error.push_str("; it was acknowledged already, so it is gone");
        } else {
            tokio::time::sleep(Duration::from_millis(settings.retry_backoff_ms.into())).await;
            self.channel
                .basic_nack(
                    tag,
                    BasicNackOptions {
                        multiple: false,
                        requeue: requeued,
                    },
                )
                .await?;
        }
        report(&InstanceReport::DeliveryRejected {
            queue: self.queue.to_owned(),
            tag,
            requeued,
            error,
        });
        Ok(())
    }
}

/// The message's `key` header, as grouplab's producer writes it.
fn header_key(delivery: &Delivery) -> Option<String> {
    let headers = delivery.properties.headers().as_ref()?;
    match headers.inner().get("key")? {
        AMQPValue::LongString(key) => Some(key.to_string()),
        AMQPValue::ShortString(key) => Some(key.to_string()),
        _ => None,
    }
}
