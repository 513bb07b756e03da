//! The JetStream implementation.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures::StreamExt;

use crate::names::{Names, Topic};
use crate::{Acker, BusError, Delivery, MAX_DELIVER};

const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

#[derive(Clone)]
pub struct NatsBus {
    client: async_nats::Client,
    js: jetstream::Context,
    names: Names,
    ack_wait: Duration,
}

impl std::fmt::Debug for NatsBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBus")
            .field("names", &self.names)
            .finish()
    }
}

fn js_err(operation: &'static str) -> impl Fn(String) -> BusError {
    move |message| BusError::JetStream { operation, message }
}

impl NatsBus {
    pub async fn connect(
        url: &str,
        names: Names,
        ack_wait: Duration,
        credentials: Option<&std::path::Path>,
    ) -> Result<Self, BusError> {
        let mut options = async_nats::ConnectOptions::new();
        if let Some(path) = credentials {
            options = options
                .credentials_file(path)
                .await
                .map_err(|e| BusError::Connect {
                    url: url.to_owned(),
                    message: format!("NATS credentials file {}: {e}", path.display()),
                })?;
        }
        let client = options
            .name("dirsync")
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::SlowConsumer(sid) => {
                        tracing::error!(sid, "NATS slow consumer: messages were dropped")
                    }
                    other => tracing::info!(event = %other, "NATS connection event"),
                }
            })
            .connect(url)
            .await
            .map_err(|e| BusError::Connect {
                url: url.to_owned(),
                message: e.to_string(),
            })?;
        let js = jetstream::new(client.clone());
        let bus = Self {
            client,
            js,
            names,
            ack_wait,
        };
        for topic in [
            Topic::Requests,
            Topic::Jobs { partition: None },
            Topic::Events,
        ] {
            bus.stream(&topic).await?;
        }
        Ok(bus)
    }

    async fn stream(&self, topic: &Topic) -> Result<stream::Stream, BusError> {
        self.js
            .get_or_create_stream(stream::Config {
                name: self.names.stream(topic),
                subjects: vec![self.names.stream_subjects(topic)],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                duplicate_window: DUPLICATE_WINDOW,
                ..Default::default()
            })
            .await
            .map_err(|e| js_err("create stream")(e.to_string()))
    }

    pub async fn publish(
        &self,
        topic: &Topic,
        msg_id: &str,
        payload: Bytes,
        headers: &[(String, String)],
    ) -> Result<(), BusError> {
        let mut message = jetstream::message::PublishMessage::build()
            .payload(payload)
            .message_id(msg_id);
        for (k, v) in headers {
            message = message.header(k.as_str(), v.as_str());
        }
        let ack = self
            .js
            .send_publish(self.names.subject(topic), message)
            .await
            .map_err(|e| js_err("publish")(e.to_string()))?;
        let ack = ack
            .await
            .map_err(|e| js_err("publish ack")(e.to_string()))?;
        if ack.duplicate {
            tracing::debug!(msg_id, "duplicate publish dropped by JetStream");
        }
        Ok(())
    }

    pub async fn announce_settled(&self, run_id: &str) -> Result<(), BusError> {
        self.client
            .publish(
                self.names.settled(),
                Bytes::copy_from_slice(run_id.as_bytes()),
            )
            .await
            .map_err(|e| BusError::Nats {
                operation: "announcing a settled run",
                message: e.to_string(),
            })
    }

    pub async fn settled_runs(&self) -> Result<async_nats::Subscriber, BusError> {
        self.client
            .subscribe(self.names.settled())
            .await
            .map_err(|e| BusError::Nats {
                operation: "subscribing to settled runs",
                message: e.to_string(),
            })
    }

    pub async fn subscribe(&self, topic: &Topic) -> Result<NatsSubscription, BusError> {
        let stream = self.stream(topic).await?;
        let name = self.names.consumer(topic);
        let consumer: consumer::PullConsumer = stream
            .get_or_create_consumer(
                &name,
                consumer::pull::Config {
                    durable_name: Some(name.clone()),
                    filter_subject: self.names.subject(topic),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: self.ack_wait,
                    max_deliver: MAX_DELIVER,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| {
                let text = e.to_string();
                if text.contains("10100") || text.contains("not unique") {
                    BusError::JetStream {
                        operation: "create consumer",
                        message: format!(
                            "{name} overlaps another consumer of {}: collectors pinned to a partition and collectors for every partition cannot share a deployment; pin every collector, or none ({text})",
                            self.names.stream(topic)
                        ),
                    }
                } else {
                    js_err("create consumer")(text)
                }
            })?;
        let messages = consumer
            .stream()
            .max_messages_per_batch(prefetch(topic))
            .max_bytes_per_batch(PREFETCH_BYTES)
            .messages()
            .await
            .map_err(|e| js_err("pull")(e.to_string()))?;
        Ok(NatsSubscription { messages })
    }

    pub fn ack_wait(&self) -> Duration {
        self.ack_wait
    }

    pub async fn healthy(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }
}

/// Bytes fetched ahead per pull, at most: a reconciler busy with a batch
/// holds some megabytes of the batches after it, not 64 of 512 KB each. A
/// message is at most NATS' max_payload (1 MB by default), well below.
const PREFETCH_BYTES: usize = 8 * 1024 * 1024;

/// Messages fetched ahead per pull. A job is long work: fetching more than
/// one would park jobs in one collector's buffer (their ack deadline
/// running) while another collector idles.
fn prefetch(topic: &Topic) -> usize {
    match topic {
        Topic::Jobs { .. } => 1,
        Topic::Requests | Topic::Events => 64,
    }
}

pub struct NatsSubscription {
    messages: consumer::pull::Stream,
}

impl NatsSubscription {
    pub async fn next(&mut self) -> Result<Option<Delivery>, BusError> {
        loop {
            match self.messages.next().await {
                None => return Ok(None),
                Some(Ok(msg)) => {
                    let info = msg.info().ok();
                    let delivered = info
                        .as_ref()
                        .map(|i| u32::try_from(i.delivered).unwrap_or(u32::MAX))
                        .unwrap_or(1);
                    let pending = info.as_ref().map(|i| i.pending);
                    let headers = msg
                        .headers
                        .as_ref()
                        .map(|h| {
                            h.iter()
                                .filter(|(k, _)| !k.to_string().starts_with("Nats-"))
                                .filter_map(|(k, v)| {
                                    v.first().map(|v| (k.to_string(), v.to_string()))
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    return Ok(Some(Delivery {
                        pending,
                        payload: msg.payload.clone(),
                        headers,
                        delivered,
                        acker: Acker::Nats(Box::new(msg)),
                    }));
                }
                Some(Err(e)) => {
                    // Missed heartbeats and the like: the stream recovers.
                    tracing::warn!(error = %e, "JetStream pull error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}
