//! The scheduler owns time and turns sync requests into jobs.
//!
//! Today it serves "Sync now": the gateway creates a queued run and asks for
//! it on the requests queue; the scheduler snapshots the integration's
//! connection settings (the bind password stays sealed) into a `SyncJob` on
//! the jobs queue of the integration's partition. The job's message id is
//! the run id, so a redelivered request never yields a second job.

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use tokio_util::sync::CancellationToken;

use dirsync_bus::{Bus, Delivery, Topic};
use dirsync_core::{Clock, EncryptionMode};
use dirsync_proto::bus;
use dirsync_store::{IntegrationRecord, Store, StoreError};

pub struct Scheduler {
    pub store: Store,
    pub bus: Bus,
    pub clock: Arc<dyn Clock>,
}

const RETRY: Duration = Duration::from_secs(2);

impl Scheduler {
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!("scheduler started");
        dirsync_bus::consume(&self.bus, Topic::Requests, shutdown, |d| self.handle(d)).await?;
        tracing::info!("scheduler stopped");
        Ok(())
    }

    async fn handle(&self, delivery: Delivery) {
        let settle = match bus::SyncRequest::decode(delivery.payload.clone()) {
            Err(e) => {
                tracing::error!(error = %e, "dropping a sync request that is not a SyncRequest message");
                delivery.ack().await
            }
            Ok(req) => match self.dispatch(&req).await {
                Ok(()) => delivery.ack().await,
                Err(e) => {
                    tracing::warn!(run = %req.run_id, error = %e, "sync request not dispatched; retrying");
                    delivery.nak(RETRY).await
                }
            },
        };
        if let Err(e) = settle {
            tracing::warn!(error = %e, "settling a sync request failed");
        }
    }

    async fn dispatch(&self, req: &bus::SyncRequest) -> anyhow::Result<()> {
        let integration = match self
            .store
            .get_integration(&req.account_id, &req.integration_id)
            .await
        {
            Ok(i) => i,
            Err(StoreError::NotFound(_)) => {
                self.store
                    .fail_run(
                        &req.run_id,
                        0,
                        "the integration was deleted before the run started",
                        self.clock.now(),
                    )
                    .await?;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let job = job_for(&integration, &req.run_id, req.trigger);
        let partition = job.partition.clone();
        self.bus
            .publish(
                &Topic::Jobs {
                    partition: Some(partition.clone()),
                },
                &format!("job:{}", req.run_id),
                job.encode_to_vec().into(),
            )
            .await?;
        tracing::info!(run = %req.run_id, integration = %integration.id, %partition, "sync job queued");
        Ok(())
    }
}

pub fn job_for(integration: &IntegrationRecord, run_id: &str, trigger: i32) -> bus::SyncJob {
    let s = &integration.settings;
    bus::SyncJob {
        account_id: integration.account_id.clone(),
        integration_id: integration.id.clone(),
        run_id: run_id.to_owned(),
        kind: bus::JobKind::Full as i32,
        trigger,
        connection: Some(bus::Connection {
            host: s.host.clone(),
            alternate_host: s.alternate_host.clone().unwrap_or_default(),
            port: u32::from(s.port),
            encrypt: s.encryption.is_some(),
            encryption_mode: match s.encryption {
                None => bus::EncryptionMode::Unspecified,
                Some(EncryptionMode::Strict) => bus::EncryptionMode::Strict,
                Some(EncryptionMode::Relaxed) => bus::EncryptionMode::Relaxed,
            } as i32,
            user_dn: s.user_dn.to_string(),
            password: integration.password.clone().map(Into::into),
            root_dn: s.root_dn.to_string(),
            include_contacts: s.include_contacts,
        }),
        partition: integration.settings.partition(),
    }
}
