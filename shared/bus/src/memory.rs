//! The in-process bus of the embedded shape: the same work-queue semantics
//! (competing consumers, dedupe by message id, nak → redelivery) without a
//! server.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::names::Topic;
use crate::{Acker, BusError, Delivery, MAX_DELIVER};

#[derive(Clone)]
pub struct MemoryBus {
    inner: Arc<Mutex<Inner>>,
    /// Runs announced as settled, to the watchers of the time.
    settled: tokio::sync::broadcast::Sender<String>,
}

impl Default for MemoryBus {
    fn default() -> Self {
        Self {
            inner: Arc::default(),
            settled: tokio::sync::broadcast::channel(64).0,
        }
    }
}

impl std::fmt::Debug for MemoryBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryBus")
    }
}

#[derive(Default)]
struct Inner {
    queues: HashMap<&'static str, Arc<Queue>>,
    seen: HashSet<String>,
}

struct Queue {
    tx: mpsc::UnboundedSender<Message>,
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Message>>,
}

struct Message {
    payload: Bytes,
    headers: Vec<(String, String)>,
    delivered: u32,
}

fn queue_name(topic: &Topic) -> &'static str {
    match topic {
        Topic::Requests => "requests",
        // One queue for every partition: one process runs every collector.
        Topic::Jobs { .. } => "jobs",
        Topic::Events => "events",
    }
}

impl MemoryBus {
    pub fn announce_settled(&self, run_id: &str) {
        // No receiver is no watcher: nothing to tell.
        let _ = self.settled.send(run_id.to_owned());
    }

    pub fn settled_runs(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.settled.subscribe()
    }

    fn queue(&self, topic: &Topic) -> Arc<Queue> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner
            .queues
            .entry(queue_name(topic))
            .or_insert_with(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                Arc::new(Queue {
                    tx,
                    rx: tokio::sync::Mutex::new(rx),
                })
            })
            .clone()
    }

    pub fn publish(
        &self,
        topic: &Topic,
        msg_id: &str,
        payload: Bytes,
        headers: Vec<(String, String)>,
    ) -> Result<(), BusError> {
        {
            let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            if !inner.seen.insert(format!("{}/{msg_id}", queue_name(topic))) {
                return Ok(());
            }
        }
        self.queue(topic)
            .tx
            .send(Message {
                payload,
                headers,
                delivered: 0,
            })
            .map_err(|_| BusError::Closed)
    }

    pub fn subscribe(&self, topic: &Topic) -> MemorySubscription {
        MemorySubscription {
            queue: self.queue(topic),
        }
    }
}

pub struct MemorySubscription {
    queue: Arc<Queue>,
}

impl MemorySubscription {
    pub async fn next(&mut self) -> Option<Delivery> {
        let msg = self.queue.rx.lock().await.recv().await?;
        Some(Delivery {
            pending: None,
            payload: msg.payload,
            headers: msg.headers,
            delivered: msg.delivered + 1,
            acker: Acker::Memory(MemoryAcker {
                tx: self.queue.tx.clone(),
            }),
        })
    }
}

pub struct MemoryAcker {
    tx: mpsc::UnboundedSender<Message>,
}

impl MemoryAcker {
    pub fn redeliver(
        self,
        payload: Bytes,
        headers: Vec<(String, String)>,
        delivered: u32,
        delay: Duration,
    ) {
        if i64::from(delivered) >= MAX_DELIVER {
            tracing::error!(delivered, "message dropped after its last delivery");
            return;
        }
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            // The receiver is gone only when the process is stopping.
            let _ = self.tx.send(Message {
                payload,
                headers,
                delivered,
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dedupes_and_redelivers() {
        let bus = crate::Bus::in_process();
        let t = Topic::Requests;
        bus.publish(&t, "a", Bytes::from_static(b"1"))
            .await
            .expect("publish");
        bus.publish(&t, "a", Bytes::from_static(b"1"))
            .await
            .expect("publish");
        bus.publish(&t, "b", Bytes::from_static(b"2"))
            .await
            .expect("publish");
        let mut sub = bus.subscribe(&t).await.expect("subscribe");
        let d = sub.next().await.expect("ok").expect("message");
        assert_eq!((&d.payload[..], d.delivered), (&b"1"[..], 1));
        d.nak(Duration::from_millis(1)).await.expect("nak");
        let d = sub.next().await.expect("ok").expect("message");
        assert_eq!(&d.payload[..], b"2");
        d.ack().await.expect("ack");
        let d = sub.next().await.expect("ok").expect("message");
        assert_eq!((&d.payload[..], d.delivered), (&b"1"[..], 2));
    }

    #[tokio::test]
    async fn settled_runs_are_announced_to_the_watchers_of_the_time() {
        let bus = crate::Bus::in_process();
        bus.announce_settled("before").await.expect("announce");
        let mut announced = bus.settled_runs().await.expect("watch");
        bus.announce_settled("other").await.expect("announce");
        bus.announce_settled("mine").await.expect("announce");
        let wait = tokio::time::timeout(Duration::from_secs(5), announced.wait_for("mine"));
        wait.await.expect("announced");
        // Missed announcements (more than the channel holds) wake a watcher
        // too: it looks again.
        for n in 0..100 {
            bus.announce_settled(&n.to_string())
                .await
                .expect("announce");
        }
        let wait = tokio::time::timeout(Duration::from_secs(5), announced.wait_for("never"));
        wait.await.expect("lagging watchers look again");
        // "before" came before the watch: not seen.
        let wait = tokio::time::timeout(Duration::from_millis(50), announced.wait_for("before"));
        assert!(wait.await.is_err(), "announcements are not kept");
    }
}
