//! The bus side: collector events in, each acknowledged once handled or
//! delivered again after a pause.

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use tokio_util::sync::CancellationToken;

use dirsync_bus::{Bus, Delivery, Topic};
use dirsync_core::{Clock, RunKind};
use dirsync_proto::bus::{self, collector_event::Event};
use dirsync_store::{Store, StoreError};

use crate::assemble::{Assembler, RunKey};

pub struct Reconciler {
    pub(crate) store: Store,
    pub(crate) bus: Bus,
    pub(crate) clock: Arc<dyn Clock>,
    /// Runs' batches, read as they arrive.
    pub(crate) assembler: Assembler,
}

/// What to do with a delivery once handled.
pub(crate) enum Settle {
    Ack,
    Retry(Duration),
}

impl Reconciler {
    pub fn new(store: Store, bus: Bus, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            bus,
            clock,
            assembler: Assembler::default(),
        }
    }

    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!("reconciler started");
        dirsync_bus::consume(&self.bus, Topic::Events, shutdown, |d| self.handle(d)).await?;
        tracing::info!("reconciler stopped");
        Ok(())
    }

    async fn handle(&self, delivery: Delivery) {
        let settle = match self.settle(&delivery).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "collector event not processed; retrying");
                Settle::Retry(Duration::from_secs(2))
            }
        };
        let result = match settle {
            Settle::Ack => delivery.ack().await,
            Settle::Retry(after) => delivery.nak(after).await,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "settling a collector event failed");
        }
    }

    /// A batch is staged as the bytes it arrived as; the other events are
    /// decoded whole.
    async fn settle(&self, delivery: &Delivery) -> Result<Settle, StoreError> {
        if let Ok(staged) = bus::StagedCollectorEvent::decode(delivery.payload.clone()) {
            if let Some(block) = staged.batch_lz4 {
                return self
                    .stage(&staged.run_id, staged.attempt, block, true)
                    .await;
            }
            if let Some(batch) = staged.batch {
                return self
                    .stage(&staged.run_id, staged.attempt, batch, false)
                    .await;
            }
        }
        match bus::CollectorEvent::decode(delivery.payload.clone()) {
            Err(e) => {
                tracing::error!(error = %e, "dropping a bus message that is not a CollectorEvent");
                Ok(Settle::Ack)
            }
            Ok(ev) => self.on_event(ev, delivery.delivered).await,
        }
    }

    async fn on_event(
        &self,
        mut ev: bus::CollectorEvent,
        delivered: u32,
    ) -> Result<Settle, StoreError> {
        let now = self.clock.now();
        match ev.event.take() {
            None => {
                tracing::error!(run = %ev.run_id, "dropping a collector event without content");
                Ok(Settle::Ack)
            }
            Some(Event::Started(s)) => {
                if !self
                    .store
                    .run_started(&ev.run_id, ev.attempt, &s.host, now)
                    .await?
                {
                    tracing::info!(run = %ev.run_id, attempt = ev.attempt, "stale start ignored");
                    return Ok(Settle::Ack);
                }
                // A delta's entries are few and read at its end.
                if bus::JobKind::try_from(s.kind) != Ok(bus::JobKind::Delta) {
                    let key = RunKey {
                        account_id: &ev.account_id,
                        integration_id: &ev.integration_id,
                        run_id: &ev.run_id,
                        attempt: ev.attempt,
                        memberships_unavailable: s.memberships_unavailable,
                    };
                    self.assembler.begin(&self.store, &key, now).await;
                }
                Ok(Settle::Ack)
            }
            Some(Event::Batch(b)) => {
                // Batches are staged by `settle` before this decoding; one
                // that reaches here is staged the same way.
                self.stage(&ev.run_id, ev.attempt, b.encode_to_vec().into(), false)
                    .await
            }
            Some(Event::BatchLz4(block)) => {
                self.stage(&ev.run_id, ev.attempt, block.into(), true).await
            }
            Some(Event::End(end)) if !end.error.is_empty() => {
                self.assembler.forget(&ev.run_id, ev.attempt);
                if self
                    .store
                    .fail_run(&ev.run_id, ev.attempt, &end.error, now)
                    .await?
                {
                    let kind = if bus::JobKind::try_from(end.kind) == Ok(bus::JobKind::Delta) {
                        RunKind::Delta
                    } else {
                        RunKind::Full
                    };
                    crate::metrics::run_failed(&ev.integration_id, kind);
                }
                tracing::info!(run = %ev.run_id, error = %end.error, "run failed");
                self.announce_settled(&ev.run_id).await;
                Ok(Settle::Ack)
            }
            Some(Event::End(end)) => {
                let settle = self.on_end(&ev, end, delivered).await?;
                if let Settle::Ack = settle {
                    self.announce_settled(&ev.run_id).await;
                }
                Ok(settle)
            }
        }
    }

    /// Tells the run's watchers it settled: they look at it now rather
    /// than at their next look.
    async fn announce_settled(&self, run_id: &str) {
        if let Err(e) = self.bus.announce_settled(run_id).await {
            tracing::debug!(run = %run_id, error = %e, "announcing a settled run failed; watchers find out when they next look");
        }
    }
}
