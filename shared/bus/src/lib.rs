//! The dirsync bus: durable work queues on NATS JetStream, or an in-process
//! equivalent for the embedded shape. Services hold a [`Bus`] and do not
//! know which one they have.
//!
//! Subjects and stream names live in [`names`] and nowhere else.

mod memory;
pub mod names;
mod nats;

use std::time::Duration;

use bytes::Bytes;

pub use memory::MemoryBus;
pub use names::{Names, Topic};
pub use nats::NatsBus;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("cannot connect to NATS at {url}: {message}; start it with `nats-server -js`")]
    Connect { url: String, message: String },
    #[error("JetStream {operation} failed: {message}")]
    JetStream {
        operation: &'static str,
        message: String,
    },
    #[error("NATS {operation} failed: {message}")]
    Nats {
        operation: &'static str,
        message: String,
    },
    #[error("the bus is closed")]
    Closed,
}

/// Default of [`Bus::ack_wait`].
pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(60);

/// How many times a message is delivered before the bus gives up on it.
pub const MAX_DELIVER: i64 = 5;

#[derive(Clone, Debug)]
pub enum Bus {
    Nats(Box<NatsBus>),
    Memory(MemoryBus),
}

impl Bus {
    /// JetStream at `url`, with every stream created when missing. A
    /// delivery not settled within `ack_wait` is delivered again.
    pub async fn nats(
        url: &str,
        prefix: &str,
        ack_wait: Duration,
        credentials: Option<&std::path::Path>,
    ) -> Result<Self, BusError> {
        Ok(Self::Nats(Box::new(
            NatsBus::connect(url, Names::new(prefix), ack_wait, credentials).await?,
        )))
    }

    /// The in-process bus of the embedded shape.
    pub fn in_process() -> Self {
        Self::Memory(MemoryBus::default())
    }

    /// Publishes `payload`. A second publish with the same `msg_id` within
    /// the dedupe window is dropped.
    pub async fn publish(
        &self,
        topic: &Topic,
        msg_id: &str,
        payload: Bytes,
    ) -> Result<(), BusError> {
        // The current span's trace context travels with the message.
        let headers = dirsync_telemetry::inject();
        match self {
            Self::Nats(b) => b.publish(topic, msg_id, payload, &headers).await,
            Self::Memory(b) => b.publish(topic, msg_id, payload, headers),
        }
    }

    /// A competing consumer: replicas that subscribe with the same topic
    /// share its messages, each delivered to one of them at a time.
    pub async fn subscribe(&self, topic: &Topic) -> Result<Subscription, BusError> {
        match self {
            Self::Nats(b) => Ok(Subscription::Nats(Box::new(b.subscribe(topic).await?))),
            Self::Memory(b) => Ok(Subscription::Memory(b.subscribe(topic))),
        }
    }

    /// Announces that run `run_id` settled, or may have: best effort, to
    /// whoever watches runs at the time ([`Bus::settled_runs`]); nothing is
    /// kept for later.
    pub async fn announce_settled(&self, run_id: &str) -> Result<(), BusError> {
        match self {
            Self::Nats(b) => b.announce_settled(run_id).await,
            Self::Memory(b) => {
                b.announce_settled(run_id);
                Ok(())
            }
        }
    }

    /// The runs announced as settled from now on.
    pub async fn settled_runs(&self) -> Result<SettledRuns, BusError> {
        match self {
            Self::Nats(b) => Ok(SettledRuns::Nats(Box::new(b.settled_runs().await?))),
            Self::Memory(b) => Ok(SettledRuns::Memory(b.settled_runs())),
        }
    }

    /// How long a delivery may stay unsettled before it is delivered again;
    /// long work reports progress well within it.
    pub fn ack_wait(&self) -> Duration {
        match self {
            Self::Nats(b) => b.ack_wait(),
            Self::Memory(_) => DEFAULT_ACK_WAIT,
        }
    }

    /// Whether the bus answers (for readiness).
    pub async fn healthy(&self) -> bool {
        match self {
            Self::Nats(b) => b.healthy().await,
            Self::Memory(_) => true,
        }
    }
}

pub enum Subscription {
    Nats(Box<nats::NatsSubscription>),
    Memory(memory::MemorySubscription),
}

impl Subscription {
    /// The next message; `None` when the bus is gone.
    pub async fn next(&mut self) -> Result<Option<Delivery>, BusError> {
        match self {
            Self::Nats(s) => s.next().await,
            Self::Memory(s) => Ok(s.next().await),
        }
    }
}

/// Runs announced as settled ([`Bus::announce_settled`]).
pub enum SettledRuns {
    Nats(Box<async_nats::Subscriber>),
    Memory(tokio::sync::broadcast::Receiver<String>),
}

impl SettledRuns {
    /// Returns once `run_id` is announced, or announcements may have been
    /// missed (too many at once); never while the bus is gone.
    pub async fn wait_for(&mut self, run_id: &str) {
        use futures::StreamExt;
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match self {
                Self::Nats(s) => match s.next().await {
                    Some(m) if m.payload == run_id.as_bytes() => return,
                    Some(_) => {}
                    None => std::future::pending().await,
                },
                Self::Memory(r) => match r.recv().await {
                    Ok(id) if id == run_id => return,
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => return,
                    Err(RecvError::Closed) => std::future::pending().await,
                },
            }
        }
    }
}

/// One delivery of a message. Settle it with [`Delivery::ack`] once its
/// effect is durable, or [`Delivery::nak`] to have it delivered again.
pub struct Delivery {
    pub payload: Bytes,
    /// Messages still waiting for the consumer (JetStream's count; the
    /// in-process bus does not count).
    pub pending: Option<u64>,
    /// Trace context of the publisher (`traceparent`, …).
    pub headers: Vec<(String, String)>,
    /// 1 on the first delivery, 2 on the first redelivery, …
    pub delivered: u32,
    acker: Acker,
}

enum Acker {
    Nats(Box<async_nats::jetstream::Message>),
    Memory(memory::MemoryAcker),
}

impl Delivery {
    pub async fn ack(self) -> Result<(), BusError> {
        match self.acker {
            Acker::Nats(m) => m.double_ack().await.map_err(|e| BusError::JetStream {
                operation: "ack",
                message: e.to_string(),
            }),
            Acker::Memory(_) => Ok(()),
        }
    }

    /// Delivered again after `delay`.
    pub async fn nak(self, delay: Duration) -> Result<(), BusError> {
        match self.acker {
            Acker::Nats(m) => m
                .ack_with(async_nats::jetstream::AckKind::Nak(Some(delay)))
                .await
                .map_err(|e| BusError::JetStream {
                    operation: "nak",
                    message: e.to_string(),
                }),
            Acker::Memory(a) => {
                a.redeliver(self.payload, self.headers, self.delivered, delay);
                Ok(())
            }
        }
    }

    /// Tells the bus the work is still going on (extends the ack deadline).
    pub async fn in_progress(&self) -> Result<(), BusError> {
        match &self.acker {
            Acker::Nats(m) => m
                .ack_with(async_nats::jetstream::AckKind::Progress)
                .await
                .map_err(|e| BusError::JetStream {
                    operation: "in-progress ack",
                    message: e.to_string(),
                }),
            Acker::Memory(_) => Ok(()),
        }
    }
}

/// Feeds every delivery of `topic` to `handle`, one at a time, until
/// `shutdown` is cancelled. The handler settles each delivery (ack or
/// nak); a delivery in progress when shutdown comes is finished first.
pub async fn consume<F, Fut>(
    bus: &Bus,
    topic: Topic,
    shutdown: tokio_util::sync::CancellationToken,
    mut handle: F,
) -> Result<(), BusError>
where
    F: FnMut(Delivery) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut sub = bus.subscribe(&topic).await?;
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            next = sub.next() => next?,
        };
        match next {
            Some(delivery) => {
                if let Some(pending) = delivery.pending {
                    dirsync_telemetry::metrics::metrics()
                        .pending
                        .get_or_create(&dirsync_telemetry::metrics::TopicLabels {
                            topic: names::topic_label(&topic).to_owned(),
                        })
                        .set(i64::try_from(pending).unwrap_or(i64::MAX));
                }
                if delivery.delivered > 1 {
                    dirsync_telemetry::metrics::metrics()
                        .redelivered
                        .get_or_create(&dirsync_telemetry::metrics::TopicLabels {
                            topic: names::topic_label(&topic).to_owned(),
                        })
                        .inc();
                }
                // One span per message, child of the publisher's: a sync
                // run is one trace across the services.
                let span = tracing::info_span!(
                    "consume",
                    topic = names::topic_label(&topic),
                    delivered = delivery.delivered
                );
                dirsync_telemetry::set_parent(&span, &delivery.headers);
                tracing::Instrument::instrument(handle(delivery), span).await
            }
            None => return Err(BusError::Closed),
        }
    }
}
